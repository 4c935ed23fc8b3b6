import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { startKafka } from '../tests/e2e/servers/kafka.mjs';
import { freePort } from '../tests/e2e/helpers.mjs';
import { purchases } from './workload.mjs';
const N = Number(process.argv[2] ?? 600000);
const kafka = await startKafka({ partitions: 3 });
await kafka.createTopic('prof', 3);
const adminPort = await freePort();
const { dir, config } = tempConfig(`admin: 127.0.0.1:${adminPort}
wal: { fsync: batch }
destinations:
  bus: { type: kafka, brokers: "${kafka.brokers}", topic: prof, key: userId }
`, 'fork-kprof-');
const forkd = await startForkd(config);
const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 100000, timeoutMs: 60000 });
const delivered = async () => { const t = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(); return Number(/fork_destination_delivered_total\{destination="bus"\} (\S+)/.exec(t)[1]); };
async function route(events) {
  const inFlight = new Set();
  for (let i = 0; i < events.length; i += 1000) {
    const p = client.routeMany(events.slice(i, i + 1000), 'bus', { ack: 'accepted' });
    inFlight.add(p); p.then(() => inFlight.delete(p), () => {});
    if (inFlight.size * 1000 >= 20000) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}
await route(Array.from({ length: 2000 }, purchases(7)));
while ((await delivered()) < 2000) await sleep(50);
const events = Array.from({ length: N }, purchases(99));
const perf = spawn('perf', ['record', '-F', '1999', '-g', '--call-graph', 'dwarf,16384', '-p', String(forkd.pid), '-o', '/tmp/kp/perf.data'], { stdio: 'inherit' });
await sleep(500);
const t0 = performance.now();
await route(events);
const acc = performance.now() - t0;
while ((await delivered()) < 2000 + N) await sleep(20);
const s = (performance.now() - t0) / 1000;
perf.kill('SIGINT');
await new Promise((r) => perf.on('exit', r));
console.log(`${N} events: accepted ${(acc/1000).toFixed(2)} s, delivered ${s.toFixed(2)} s = ${Math.round(N / s)} ev/s`);
await client.close(); await forkd.stop(); await kafka.stop();
