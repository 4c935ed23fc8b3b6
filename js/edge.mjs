// ESM entry of the edge build (edge-light and worker conditions): the
// CommonJS module is the implementation.
import fork from './edge.cjs';

export const { routeData, routeMany, createClient, getDefaultClient, warmup, ForkError, codes, version, subscribe, streamResponse } = fork;
export default fork;
