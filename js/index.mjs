// ESM entry: the CommonJS module is the implementation (one copy of the
// state, whichever way the package is loaded).
import fork from './index.cjs';

export const { routeData, routeMany, createClient, getDefaultClient, warmup, ForkError, codes, version, subscribe, streamResponse } = fork;
export default fork;
