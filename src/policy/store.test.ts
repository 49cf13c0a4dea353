import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parsePolicy } from './parse.js';
import { PolicyStore } from './store.js';
import { PolicyError } from './types.js';

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const healthz = { method: 'GET', path: '/healthz' };
const spansFor = (store: PolicyStore) => store.current().match(healthz).rule.spans;

describe('PolicyStore', () => {
  let dir: string;
  let store: PolicyStore;
  let invalid: PolicyError[];
  let logs: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sidetrace-policy-'));
    invalid = [];
    logs = [];
    store = new PolicyStore({ onInvalid: (e) => invalid.push(e), log: (l) => logs.push(l), pollIntervalMs: 50 });
  });
  afterEach(() => {
    store.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with the default policy', () => {
    expect(store.current().effective).toEqual(parsePolicy('').effective);
  });

  it('load(text): applies valid text; invalid text keeps the last good, counts and logs one line', () => {
    expect(store.load('routes: [{ match: { path: /healthz }, spans: false }]')).toBe(true);
    expect(spansFor(store)).toBe(false);
    expect(store.load('routes: [{ match: { path: /healthz, methods: [GET, "b d"] }, spans: true }]', 'annotation')).toBe(false);
    expect(spansFor(store)).toBe(false);
    expect(invalid.map((e) => e.path)).toEqual(['routes[0].match.methods[1]']);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain('annotation');
    expect(logs[0]).toContain('routes[0].match.methods[1]');
    expect(logs[0]).toContain('ST_POLICY_INVALID');
    expect(logs[0]).not.toContain('\n');
  });

  it('reloads a file: valid → invalid keeps the last good and counts once → valid again applies', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'routes: [{ match: { path: /healthz }, spans: false }]\n');
    store.watchFile(file);
    // The first load is synchronous.
    expect(spansFor(store)).toBe(false);

    writeFileSync(file, 'routes: [{ match: { path: /healthz }, spanz: true }]\n');
    await until(() => invalid.length === 1, 'the invalid policy to be rejected');
    expect(invalid[0]!.path).toBe('routes[0].spanz');
    expect(spansFor(store)).toBe(false);
    expect(logs.some((l) => l.includes(file) && l.includes('routes[0].spanz'))).toBe(true);

    // Rewriting the same bad text (new mtime, same content) is not counted again.
    writeFileSync(file, 'routes: [{ match: { path: /healthz }, spanz: true }]\n');
    await sleep(300);
    expect(invalid).toHaveLength(1);

    writeFileSync(file, 'routes: [{ match: { path: /healthz }, spans: true, maxBodyBytes: 9 }]\n');
    await until(() => store.current().match(healthz).rule.maxBodyBytes === 9, 'the fixed policy to apply');
    expect(spansFor(store)).toBe(true);
    expect(invalid).toHaveLength(1);
  });

  it('follows a Kubernetes-style atomic ..data symlink swap', async () => {
    // The layout kubelet writes for ConfigMap and downward-API volumes.
    const v1 = join(dir, '..2026_11_21_10_00_00.1');
    mkdirSync(v1);
    writeFileSync(join(v1, 'policy.json'), '{"default": {"sample": 0.5}}');
    symlinkSync('..2026_11_21_10_00_00.1', join(dir, '..data'));
    symlinkSync('..data/policy.json', join(dir, 'policy.json'));
    store.watchFile(join(dir, 'policy.json'));
    expect(store.current().match(healthz).rule.sample).toBe(0.5);

    const v2 = join(dir, '..2026_11_21_10_05_00.2');
    mkdirSync(v2);
    writeFileSync(join(v2, 'policy.json'), '{"default": {"sample": 0.25}}');
    symlinkSync('..2026_11_21_10_05_00.2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(v1, { recursive: true });
    await until(() => store.current().match(healthz).rule.sample === 0.25, 'the swapped policy to apply');
    expect(invalid).toHaveLength(0);
  });

  it('a missing file reports through onError and is picked up once it appears', async () => {
    const file = join(dir, 'later.yaml');
    const errors: Error[] = [];
    store.watchFile(file, (e) => errors.push(e));
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ENOENT']);
    expect(spansFor(store)).toBe(true);
    writeFileSync(file, 'default: { spans: false }');
    await until(() => spansFor(store) === false, 'the new file to apply');
  });

  it('an invalid file at start keeps the previous policy', () => {
    store.load('default: { maxBodyBytes: 5 }');
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'default: { maxBodyBytes: 1e9 }');
    store.watchFile(file);
    expect(store.current().match(healthz).rule.maxBodyBytes).toBe(5);
    expect(invalid.map((e) => e.path)).toEqual(['default.maxBodyBytes']);
  });

  it('stop() ends watching', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'default: { sample: 0.5 }');
    store.watchFile(file);
    store.stop();
    writeFileSync(file, 'default: { sample: 0.75 }');
    await sleep(300);
    expect(store.current().match(healthz).rule.sample).toBe(0.5);
  });
});
