// Worker for bench/isolation.mjs: follows a JSON Lines file and reports, per
// phase, each line's latency: now minus its `t` (the send time, ms epoch).
import { parentPort, workerData } from 'node:worker_threads';
import { openSync, readSync, existsSync } from 'node:fs';

let phase = 'warmup';
let stop = false;
parentPort.on('message', (m) => {
  if (m.phase === 'stop') stop = true;
  else phase = m.phase;
});

const buf = Buffer.alloc(1 << 22);
let fd = -1;
let pos = 0;
let rest = '';
const T = /"t":([0-9.]+)/;
const poll = () => {
  if (stop) return;
  if (fd < 0 && existsSync(workerData.path)) fd = openSync(workerData.path, 'r');
  if (fd >= 0) {
    const out = [];
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      const now = performance.timeOrigin + performance.now();
      const text = rest + buf.toString('utf8', 0, n);
      const lines = text.split('\n');
      rest = lines.pop();
      for (const l of lines) {
        const m = T.exec(l);
        if (m) out.push(now - Number(m[1]));
      }
    }
    if (out.length) parentPort.postMessage({ phase, latencies: out });
  }
  setTimeout(poll, 2);
};
poll();
