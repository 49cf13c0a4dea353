// The live capture policy: holds the policy in force, and reloads it from a file (the injector
// mounts the `sidetrace.io/capture-policy` pod annotation as a downward-API file) when it changes.
// An invalid policy never replaces a good one: it is counted, logged in one line and ignored.

import { readFileSync, unwatchFile, watch, watchFile, type FSWatcher, type StatsListener } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { defaultPolicy, parsePolicy } from './parse.js';
import { PolicyError, type CompiledPolicy } from './types.js';

export interface PolicyStoreOptions {
  /** Called once per rejected policy text (e.g. to increment `sidetrace_policy_errors_total`). */
  onInvalid?: (err: PolicyError) => void;
  /** One line per rejected or reloaded policy; default: stderr. */
  log?: (line: string) => void;
  /** The policy before anything is loaded; default: defaultPolicy(). */
  initial?: CompiledPolicy;
  /** Stat-polling interval for watchFile. */
  pollIntervalMs?: number;
}

// fs.watch events come in bursts (truncate + write, or the several renames of a ConfigMap
// update): wait this long and read once.
const SETTLE_MS = 25;

export class PolicyStore {
  private policy: CompiledPolicy;
  private readonly onInvalid: (err: PolicyError) => void;
  private readonly log: (line: string) => void;
  private readonly pollIntervalMs: number;
  private watched: { path: string; onError: (err: Error) => void; listener: StatsListener; dirWatcher: FSWatcher | undefined } | undefined;
  /** The last text read from the file, valid or not: unchanged text is neither re-applied nor re-counted. */
  private lastText: string | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private reading = false;
  private rereadPending = false;

  constructor(options: PolicyStoreOptions = {}) {
    this.policy = options.initial ?? defaultPolicy();
    this.onInvalid = options.onInvalid ?? (() => {});
    this.log = options.log ?? ((line) => process.stderr.write(line + '\n'));
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
  }

  /** The policy in force now; cheap enough to call per request. */
  current(): CompiledPolicy {
    return this.policy;
  }

  /** Applies a policy given as text (YAML or JSON). Returns false if it was invalid and ignored. */
  load(text: string, source = 'text'): boolean {
    try {
      this.policy = parsePolicy(text);
      return true;
    } catch (e) {
      const err = e instanceof PolicyError ? e : new PolicyError('', String(e));
      this.onInvalid(err);
      this.log(`sidetrace: capture policy from ${source} rejected, keeping the last good one: ${err.message.replace(/\s*\n\s*/g, ' ')} (${err.code})`);
      return false;
    }
  }

  /**
   * Loads `path` now (synchronously, so the policy is in force when this returns) and again on
   * every change. `onError` gets read errors (missing file, permissions); the policy stays as is.
   * Replaces any file watched before.
   */
  watchFile(path: string, onError: (err: Error) => void = () => {}): void {
    this.stop();
    try {
      const text = readFileSync(path, 'utf8');
      this.lastText = text;
      this.load(text, path);
    } catch (e) {
      onError(e as Error);
    }
    const listener: StatsListener = () => this.scheduleReread();
    // Polling stat() follows symlinks, so it sees Kubernetes' atomic `..data` symlink swap on
    // ConfigMap / downward-API volumes, which an inotify watch on the file itself misses.
    watchFile(path, { interval: this.pollIntervalMs, persistent: false }, listener);
    // Watching the directory catches that swap (and plain writes) immediately, where supported.
    let dirWatcher: FSWatcher | undefined;
    try {
      dirWatcher = watch(dirname(path), { persistent: false }, () => this.scheduleReread());
      dirWatcher.on('error', () => dirWatcher?.close());
    } catch {
      dirWatcher = undefined;
    }
    this.watched = { path, onError, listener, dirWatcher };
  }

  /** Stops watching; the policy in force stays. */
  stop(): void {
    const w = this.watched;
    if (w === undefined) return;
    this.watched = undefined;
    unwatchFile(w.path, w.listener);
    w.dirWatcher?.close();
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.lastText = undefined;
  }

  private scheduleReread(): void {
    if (this.settleTimer !== undefined || this.watched === undefined) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.reread();
    }, SETTLE_MS);
  }

  private async reread(): Promise<void> {
    if (this.reading) {
      this.rereadPending = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.rereadPending = false;
        const w = this.watched;
        if (w === undefined) return;
        let text: string;
        try {
          text = await readFile(w.path, 'utf8');
        } catch (e) {
          if (this.watched === w) w.onError(e as Error);
          continue;
        }
        if (this.watched !== w || text === this.lastText) continue;
        this.lastText = text;
        if (this.load(text, w.path)) this.log(`sidetrace: capture policy reloaded from ${w.path}`);
      } while (this.rereadPending);
    } finally {
      this.reading = false;
    }
  }
}
