// A checkout's src/ transpiled by esbuild (no bundling: the addon is found relative to the module)
// into a directory of the bench's, beside a link to package.json: the relative layout of dist/, so
// the benches measure this checkout (or a given revision), not whatever dist/ holds.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Transpiles srcRoot/src/**.ts (tests and declarations left out) into dir/src. */
export async function transpileSrc(srcRoot, dir, { sourcemap = false } = {}) {
  const entryPoints = listTs(path.join(srcRoot, 'src'));
  await build({ entryPoints, outdir: path.join(dir, 'src'), outbase: path.join(srcRoot, 'src'), format: 'esm', platform: 'node', target: 'node20', sourcemap, logLevel: 'warning' });
  symlinkSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
}

/**
 * `rev`'s src/ (WORKTREE: the working tree's) transpiled afresh into
 * bench/out/<prefix>-<short sha, or worktree>/; returns that directory.
 */
export async function prepareRevision(rev, prefix) {
  const label = rev === 'WORKTREE' ? 'worktree' : execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', rev], { encoding: 'utf8' }).trim();
  const dir = path.join(ROOT, 'bench/out', `${prefix}-${label}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let srcRoot = ROOT;
  if (rev !== 'WORKTREE') {
    srcRoot = path.join(dir, 'tree');
    mkdirSync(srcRoot);
    execFileSync('sh', ['-c', `git -C "${ROOT}" archive ${rev} src | tar -x -C "${srcRoot}"`]);
  }
  await transpileSrc(srcRoot, dir);
  return dir;
}

function listTs(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTs(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}
