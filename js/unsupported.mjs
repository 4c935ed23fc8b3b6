// See unsupported.cjs: outside Node.js, importing fork-router fails with a
// message that says what to do.
import './unsupported.cjs';
