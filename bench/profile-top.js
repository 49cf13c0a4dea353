// Summarises a V8 .cpuprofile (node --cpu-prof) as the functions with the most self time, which
// is where a proxy's per-request cost actually goes. Also usable alone:
//   node bench/profile-top.js DIR_OR_FILE [N]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function topSelfTime(dirOrFile, n = 25) {
  const files = statSync(dirOrFile).isDirectory()
    ? readdirSync(dirOrFile).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dirOrFile, f))
    : [dirOrFile];
  if (files.length === 0) return `no .cpuprofile in ${dirOrFile} (did the process exit cleanly?)\n`;
  const self = new Map();
  let busy = 0;
  let idle = 0;
  for (const file of files) {
    const prof = JSON.parse(readFileSync(file, 'utf8'));
    const byId = new Map(prof.nodes.map((node) => [node.id, node]));
    for (let i = 0; i < prof.samples.length; i++) {
      const { callFrame: cf } = byId.get(prof.samples[i]);
      const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
      const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
      const dt = prof.timeDeltas[i] ?? 0;
      // Idle time says nothing about cost; shares are of the time the process was busy.
      if (key === '(idle)') {
        idle += dt;
        continue;
      }
      self.set(key, (self.get(key) ?? 0) + dt);
      busy += dt;
    }
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const lines = rows.map(([k, us]) => `${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${k}`);
  return `top ${n} functions by self time; busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s ` +
    `(${files.length} profile(s)); % of busy time:\n${lines.join('\n')}\n`;
}

/** node_modules/<pkg>/..., dist/..., or node:... instead of absolute file URLs. */
function shortUrl(url) {
  const p = url.replace(/^file:\/\//, '');
  const nm = p.lastIndexOf('/node_modules/');
  if (nm >= 0) return p.slice(nm + 1);
  const dist = p.lastIndexOf('/dist/');
  return dist >= 0 ? p.slice(dist + 1) : p;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(topSelfTime(process.argv[2], Number(process.argv[3] ?? 25)));
}
