// The container's command (Dockerfile, Dockerfile.alpine): runs forkd and the
// standalone Next.js server side by side, from the directory that holds the
// copy of .next/standalone (server.js, node_modules), fork.yaml and this file.
// It needs nothing but node: no shell, no package of the base image.
//
//   1. forkd, through fork-router's launcher in the standalone copy
//      (node_modules/fork-router/js/forkd.cjs), which runs the prebuilt forkd
//      for this platform, also in that copy. The server waits (10 s at most)
//      until forkd's socket, .fork/fork.sock, accepts a connection: the
//      endpoint fork-router connects to by default from this directory.
//   2. `node server.js`: the app, on $PORT at $HOSTNAME.
//   3. SIGTERM or SIGINT stops the server first (no new requests, so no new
//      events), then forkd, which drains what it accepted to the stores
//      before it exits; the exit status is forkd's. If either exits on its
//      own, the other is stopped the same way and the status is the first's.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

process.chdir(path.dirname(fileURLToPath(import.meta.url)));
const SOCKET = path.join('.fork', 'fork.sock');
const log = (msg) => process.stderr.write(`start: ${msg}\n`);

// A node child process; `done` resolves to its exit status.
function run(args) {
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  child.done = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? 128 + (constants.signals[signal] ?? 0))),
  );
  return child;
}

function stop(child) {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  return child ? child.done : Promise.resolve(0);
}

// forkd is ready once its socket accepts a connection (a socket file left by
// an earlier forkd refuses them).
const listening = () =>
  new Promise((resolve) => {
    const s = connect(SOCKET);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

let server;
let stopping = false;
const forkd = run(['node_modules/fork-router/js/forkd.cjs', 'run', '--config', 'fork.yaml']);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    log('stopping (the server, then forkd once it has drained)');
    await stop(server);
    process.exit(await stop(forkd));
  });
}

const deadline = Date.now() + 10000;
let first;
forkd.done.then((code) => (first ??= { who: 'forkd', code }));
while (!(await listening())) {
  if (stopping) await new Promise(() => {}); // the signal handler exits
  if (first) {
    log(`forkd exited (${first.code}) before opening ${SOCKET}`);
    process.exit(first.code || 1);
  }
  if (Date.now() > deadline) {
    log(`forkd did not open ${SOCKET} within 10 s`);
    await stop(forkd);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

if (!stopping) {
  server = run(['server.js']);
  const ended = await Promise.race([
    forkd.done.then((code) => ({ who: 'forkd', code })),
    server.done.then((code) => ({ who: 'the server', code })),
  ]);
  if (!stopping) {
    stopping = true;
    log(`${ended.who} exited (${ended.code}); stopping ${ended.who === 'forkd' ? 'the server' : 'forkd once it has drained'}`);
    await stop(ended.who === 'forkd' ? server : forkd);
    process.exit(ended.code);
  }
}
