// Types for the ESM entry: the same API as the CommonJS one.
import * as fork from './index.js';

export * from './index.js';
export default fork;
