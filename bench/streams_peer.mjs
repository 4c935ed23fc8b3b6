// The peer of bench/streams.mjs: a plain Node.js SSE broadcaster. Events
// come from the parent over IPC; each is written to every open connection.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const conns = new Set();
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.write('retry: 1000\n\n');
  conns.add(res);
  req.on('close', () => conns.delete(res));
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m.hwm) {
    const s = readFileSync('/proc/self/status', 'utf8');
    process.send({ hwm: Number(s.match(/VmHWM:\s+(\d+)/)[1]) * 1024 });
    return;
  }
  const frame = `id: ${m.i}\ndata: ${m.record}\n\n`;
  for (const c of conns) c.write(frame);
});
