// Shared by the end-to-end tests: temp configs, a forkd process, output readers.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
export { startForkd, tempConfig, ROOT, FORKD } from '../../scripts/lib/forkd.mjs';

// Reads every JSON Lines record under `p` (a file, its rotated siblings, or a directory).
export function readJsonl(p) {
  const files = [];
  if (existsSync(p) && statSync(p).isDirectory()) {
    for (const f of readdirSync(p).sort()) files.push(path.join(p, f));
  } else {
    const dir = path.dirname(p);
    const ext = path.extname(p);
    const stem = path.basename(p, ext);
    if (existsSync(dir)) {
      for (const f of readdirSync(dir).sort()) {
        if (f === path.basename(p) || (f.startsWith(stem + '-') && f.endsWith(ext))) {
          files.push(path.join(dir, f));
        }
      }
    }
  }
  const out = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line));
  }
  return out;
}

// Counts how often each id occurs.
export function idCounts(records, field = '_fork_id') {
  const m = new Map();
  for (const r of records) m.set(r[field], (m.get(r[field]) ?? 0) + 1);
  return m;
}

export function endpointFor(dir) {
  return `ipc://${dir}/.fork/fork.sock`;
}
