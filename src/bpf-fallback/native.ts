// The kernel side as JS sees it: loads native/build/sidetrace_bpf.node, decodes its ring-buffer
// batches (layout: native/bpf/abi.h) into AgentEvent arrays, and finds OpenSSL in processes to
// attach the TLS uprobes to, once per library file, detaching when its last process exits.

import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AgentEvent, DataEvent, KernelCounters, Role, SockAddr } from './events.js';
import { payloadView } from './protocols/protocol.js';

export interface AgentCaptureOptions {
  /** Ring buffer bytes (rounded up to a power of two of pages); default 8 MiB. */
  ringBytes?: number;
  /** Payload bytes per data event, at most 16384 (default). */
  chunkBytes?: number;
  /** Payload bytes copied from one call over all its chunks; at most 1 MiB, default 64 KiB. */
  maxBytesPerCall?: number;
  /** Alias of maxBytesPerCall, as the agent command names it. */
  maxPayloadBytes?: number;
  /** Batch size the reader thread hands over (default 96 KiB, addon.c says why) and how many may wait for JS (84). */
  batchBytes?: number;
  maxPendingBatches?: number;
  /** Sockets of these uids, or with these local/remote ports, are not traced (the sidecar's). */
  skipUids?: number[];
  skipPorts?: number[];
  /** Processes never traced, filtered in the kernel: the agent should pass its own pid, or its
   * span export is traced and exported again. */
  skipPids?: number[];
  /** TLS uprobes (default true). With false, uprobe support is not required. */
  tls?: boolean;
  /** procfs root (tests). */
  procRoot?: string;
}

/** KernelCounters plus what the loader and this wrapper count. eventsSent counts every record
 * the programs tried to send, so eventsSent - eventsReceived === eventsDropped once drained. */
export interface NativeCounters extends KernelCounters {
  eventsReceived: number;
  connsOpened: number;
  /** TLS plaintext whose socket could not be found (dropped in the kernel). */
  tlsUnattributed: number;
  /** Socket calls not traced because of skipUids/skipPorts. */
  skippedCalls: number;
  batchesDelivered: number;
  tlsLibraries: number;
  tlsAttachErrors: number;
}

export interface AgentCapture {
  /** Resolves once the system OpenSSL carries its probes. */
  readonly ready: Promise<void>;
  /** Batches in ring-buffer order. Each data event's `data` views the batch's memory: copy what
   * is kept past the callback, or the whole batch stays alive. */
  onBatch(cb: (events: AgentEvent[]) => void): void;
  /** Batches as the addon delivered them (native/bpf/abi.h records; readBatch reads them), for
   * a reader that needs no event objects (ConnTable.handleBatch). Payload views of a batch keep
   * all of its memory alive, as above. A raw listener reports each exec and exit record's pid to
   * releaseTls (the capture reads raw batches no further). */
  onRawBatch(cb: (batch: Buffer) => void): void;
  /** Drops pid's hold on the TLS libraries it was attached through (its exec or exit); once no
   * process holds a library its probes are detached. Idempotent. */
  releaseTls(pid: number): void;
  counters(): NativeCounters;
  /** Attaches the uprobes to the OpenSSL libraries (and a statically linked OpenSSL, as in node)
   * of pid. Resolves with how many libraries now cover pid; never rejects. */
  attachTls(pid: number): Promise<number>;
  /** Stops and restarts event production in the kernel (the programs check a config flag). */
  pause(): void;
  resume(): void;
  close(): void;
}

interface Addon {
  open(opts: object, onBatch: (buf: Buffer, count: number) => void): unknown;
  close(h: unknown): void;
  counters(h: unknown): Record<string, number>;
  setEnabled(h: unknown, on: boolean): void;
  /** One delivered batch is handled: the reader may hand over another (its backpressure). */
  release(h: unknown): void;
  attachTls(h: unknown, path: string): number;
  detachTls(h: unknown, id: number): void;
}

const ADDON_PATH = new URL('../../native/build/sidetrace_bpf.node', import.meta.url).pathname;

export class AgentCaptureError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AgentCaptureError';
  }
}

let addon: Addon | undefined;
function loadAddon(): Addon {
  if (addon) return addon;
  const path = process.env.SIDETRACE_NATIVE_ADDON ?? ADDON_PATH;
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (err) {
    throw new AgentCaptureError(
      'ST_AGENT_ADDON_MISSING',
      `ST_AGENT_ADDON_MISSING: cannot load ${path} (${(err as Error).message}); build it with bash scripts/setup.sh (or bash scripts/build-native.sh)`,
    );
  }
  return addon;
}

// Offsets into the records (abi.h). The header is 32 bytes.
const EV_OPEN = 1;
const EV_DATA = 2;
const EV_CLOSE = 3;
const EV_EXEC = 4;
const EV_EXIT = 5;
const DATA_HEADER = 56;
const ROLES: Role[] = ['unknown', 'client', 'server'];
const TWO_32 = 4294967296;

// Fields of the header and of data records, the agent's hottest loop, are read through one
// DataView per batch: its little-endian getters are inlined (a read costs about a quarter of four
// byte loads and adds), while Buffer's readUInt32LE validates its offset on every call and was
// not inlined. Those reads stay within the record bounds checked once per record. The other
// records are rare and read byte by byte, as before: their fields are not bounds-checked against
// the record's length, and a byte read past a batch gives NaN where a DataView would throw.
function u32(b: Buffer, off: number): number {
  return b[off] + b[off + 1] * 256 + b[off + 2] * 65536 + b[off + 3] * 16777216;
}

function i32(b: Buffer, off: number): number {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24);
}

function u64(b: Buffer, off: number): number {
  return u32(b, off) + u32(b, off + 4) * TWO_32;
}

function dvU64(v: DataView, off: number): number {
  return v.getUint32(off, true) + v.getUint32(off + 4, true) * TWO_32;
}

function comm(b: Buffer, off: number): string {
  let end = off;
  while (end < off + 16 && b[end] !== 0) end++;
  return b.toString('latin1', off, end);
}

/** RFC 5952 text of a 16-byte IPv6 address (IPv4-mapped ones as ::ffff:a.b.c.d). */
function ipv6(b: Buffer, off: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(off + i * 2));
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

function sockAddr(b: Buffer, family: number, addrOff: number, port: number): SockAddr {
  if (family === 2) return { address: `${b[addrOff]}.${b[addrOff + 1]}.${b[addrOff + 2]}.${b[addrOff + 3]}`, port };
  if (family === 10) return { address: ipv6(b, addrOff), port };
  return { address: '', port };
}

/**
 * Receives one batch's records in order from readBatch. Data records, nearly all of them, come as
 * their fields and where their payload sits in the batch, with no event object: the connection
 * table takes most payloads as they are, and building an object per record and an array of them
 * was the largest allocation of the decode path. Other records come decoded.
 */
export interface BatchSink {
  /** `batch[at, at + length)` holds the payload's captured bytes (`length` ≤ `size`). */
  data(connId: number, pid: number, tsNs: number, direction: 'egress' | 'ingress', source: 'syscall' | 'tls', pos: number, size: number, batch: Buffer, at: number, length: number): void;
  event(ev: Exclude<AgentEvent, DataEvent>): void;
}

/** Reads one batch (records back to back, each [u32 length][record]) into `sink`. The hot path
 * of the agent. */
export function readBatch(buf: Buffer, sink: BatchSink): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = v.getUint32(off, true);
    const r = off + 4;
    off = r + len;
    if (len < 32 || off > buf.length) break;
    const type = v.getUint32(r, true);
    const pid = v.getUint32(r + 4, true);
    const tsNs = dvU64(v, r + 16);
    if (type === EV_DATA && len >= DATA_HEADER) {
      const captured = v.getUint32(r + 48, true);
      sink.data(
        dvU64(v, r + 24),
        pid,
        tsNs,
        buf[r + 52] === 0 ? 'egress' : 'ingress',
        buf[r + 53] === 0 ? 'syscall' : 'tls',
        dvU64(v, r + 32),
        dvU64(v, r + 40),
        buf,
        r + DATA_HEADER,
        Math.min(captured, len - DATA_HEADER),
      );
    } else if (type === EV_OPEN) {
      const family = buf[r + 33];
      sink.event({
        kind: 'open',
        pid,
        tid: u32(buf, r + 8),
        fd: i32(buf, r + 12),
        tsNs,
        connId: u64(buf, r + 24),
        role: ROLES[buf[r + 32]] ?? 'unknown',
        local: sockAddr(buf, family, r + 40, buf[r + 34] | (buf[r + 35] << 8)),
        remote: sockAddr(buf, family, r + 56, buf[r + 36] | (buf[r + 37] << 8)),
        comm: comm(buf, r + 72),
      });
    } else if (type === EV_CLOSE) {
      sink.event({
        kind: 'close',
        pid,
        tid: u32(buf, r + 8),
        fd: i32(buf, r + 12),
        tsNs,
        connId: u64(buf, r + 24),
        bytesSent: u64(buf, r + 32),
        bytesReceived: u64(buf, r + 40),
      });
    } else if (type === EV_EXEC) {
      sink.event({ kind: 'exec', pid, tsNs, comm: comm(buf, r + 32) });
    } else if (type === EV_EXIT) {
      sink.event({ kind: 'exit', pid, tsNs });
    }
  }
}

/** Decodes one batch into events, data payloads as views of the batch (tests, e2e suites, and
 * capture listeners that want events). */
export function decodeBatch(buf: Buffer): AgentEvent[] {
  const out: AgentEvent[] = [];
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  readBatch(buf, {
    data(connId, pid, tsNs, direction, source, pos, size, batch, at, length) {
      const r = at - DATA_HEADER;
      out.push({ kind: 'data', pid, tid: v.getUint32(r + 8, true), fd: v.getInt32(r + 12, true), tsNs, connId, pos, size, direction, source, data: payloadView(batch, at, length) });
    },
    event(ev) {
      out.push(ev);
    },
  });
  return out;
}


// Where distributions put the system OpenSSL: attached at open and never detached, so a
// short-lived process (curl, python) is covered before user space even hears of its exec.
const SYSTEM_LIBSSL = [
  '/usr/lib/x86_64-linux-gnu/libssl.so.3',
  '/usr/lib/x86_64-linux-gnu/libssl.so.1.1',
  '/usr/lib/aarch64-linux-gnu/libssl.so.3',
  '/usr/lib/aarch64-linux-gnu/libssl.so.1.1',
  '/usr/lib64/libssl.so.3',
  '/usr/lib64/libssl.so.1.1',
  '/lib/libssl.so.3',
  '/usr/lib/libssl.so.3',
];
const LIBSSL = /\/libssl[^/]*\.so(\.[0-9.]+)?$/;
// Libraries mapped by the dynamic loader (or dlopen'ed, as python's _ssl) appear after exec:
// look again while nothing is found.
const RESCAN_AFTER_EXEC_MS = [100, 1000];
// Longest the event loop is held handling batches in one turn: timers, export and /metrics get
// a turn at least this often under overload, and one turn still covers a burst of batches.
const DRAIN_BUDGET_MS = 20;

interface TlsLibrary {
  id: number;
  pinned: boolean;
  pids: Set<number>;
}

/** Tracks which OpenSSL files carry uprobes and which processes use them. */
class TlsAttacher {
  private readonly libs = new Map<string, TlsLibrary>(); // by "dev:ino"
  private readonly notSsl = new Set<string>(); // executables without OpenSSL symbols
  private readonly byPid = new Map<number, Set<string>>();
  attachErrors = 0;
  /** Set at close: rescans still scheduled must not touch the closed handle. */
  stopped = false;

  constructor(
    private readonly native: Addon,
    private readonly handle: unknown,
    private readonly procRoot: string,
  ) {}

  get libraryCount(): number {
    return this.libs.size;
  }

  async pinSystemLibraries(): Promise<void> {
    for (const path of SYSTEM_LIBSSL) await this.attachFile(path, undefined, true);
  }

  async attachPid(pid: number, rescans: readonly number[]): Promise<number> {
    let covered = 0;
    if (this.stopped) return covered;
    try {
      const maps = await readFile(`${this.procRoot}/${pid}/maps`, 'latin1');
      const seen = new Set<string>();
      for (const line of maps.split('\n')) {
        const slash = line.indexOf('/');
        if (slash < 0) continue;
        const path = line.slice(slash);
        if (!LIBSSL.test(path) || seen.has(path)) continue;
        seen.add(path);
        if (await this.attachFile(`${this.procRoot}/${pid}/root${path}`, pid, false)) covered++;
      }
      // OpenSSL linked into the executable itself (node).
      if (await this.attachFile(`${this.procRoot}/${pid}/exe`, pid, false)) covered++;
    } catch {
      return covered; // the process is gone, or its maps are unreadable
    }
    const [delay, ...later] = rescans;
    if (delay !== undefined && covered === 0) {
      setTimeout(() => void this.attachPid(pid, later), delay).unref();
    }
    return covered;
  }

  private async attachFile(path: string, pid: number | undefined, pinned: boolean): Promise<boolean> {
    let key: string;
    try {
      const st = await stat(path);
      key = `${st.dev}:${st.ino}`;
    } catch {
      return false;
    }
    let lib = this.libs.get(key);
    if (!lib) {
      if (this.notSsl.has(key) || this.stopped) return false;
      try {
        lib = { id: this.native.attachTls(this.handle, path), pinned, pids: new Set() };
      } catch (err) {
        // Executables mostly have no OpenSSL: remember that instead of resolving again.
        if (/No such file or directory/.test((err as Error).message)) this.notSsl.add(key);
        else this.attachErrors++;
        return false;
      }
      this.libs.set(key, lib);
    }
    if (pid !== undefined) {
      lib.pids.add(pid);
      let keys = this.byPid.get(pid);
      if (!keys) this.byPid.set(pid, (keys = new Set()));
      keys.add(key);
    }
    return true;
  }

  /** A process ended (or replaced its image): libraries no process uses any more lose their probes. */
  release(pid: number): void {
    const keys = this.byPid.get(pid);
    if (!keys) return;
    this.byPid.delete(pid);
    for (const key of keys) {
      const lib = this.libs.get(key);
      if (!lib) continue;
      lib.pids.delete(pid);
      if (lib.pids.size === 0 && !lib.pinned) {
        this.native.detachTls(this.handle, lib.id);
        this.libs.delete(key);
      }
    }
  }
}

export function openAgentCapture(opts: AgentCaptureOptions = {}): AgentCapture {
  const native = loadAddon();
  const listeners: ((events: AgentEvent[]) => void)[] = [];
  const rawListeners: ((batch: Buffer) => void)[] = [];
  let received = 0;
  let tls: TlsAttacher | undefined;

  // Batches are handled from the event loop for up to DRAIN_BUDGET_MS per turn, not in the addon's
  // callback: node's threadsafe-function dispatch makes up to 1,000 calls before it yields, and
  // under overload the reader refilled its queue all along, so timers, export and /metrics
  // stalled for seconds. The reader waits while maxPendingBatches are delivered and not
  // released, so the kernel's ring, not this queue, absorbs what JS cannot keep up with (and
  // counts its drops).
  const delivered: Buffer[] = [];
  const deliveredCounts: number[] = [];
  let draining = false;
  let closed = false;
  const handleBatch = (buf: Buffer, count: number) => {
    received += count;
    // Events are decoded only for listeners that take them. Raw listeners read the batch
    // themselves and report its exec and exit records to releaseTls: walking every batch a
    // second time here to find them was ~3% of the agent's JS thread at 10k req/s (perf).
    const events = listeners.length > 0 ? decodeBatch(buf) : undefined;
    if (tls && events !== undefined) {
      for (const ev of events) {
        // On exec the agent calls attachTls for the new image.
        if (ev.kind === 'exit' || ev.kind === 'exec') tls.release(ev.pid);
      }
    }
    if (events !== undefined) for (const cb of listeners) cb(events);
    for (const cb of rawListeners) cb(buf);
  };
  const drain = () => {
    draining = false;
    const until = performance.now() + DRAIN_BUDGET_MS;
    try {
      while (!closed && delivered.length > 0) {
        const buf = delivered.shift()!;
        const count = deliveredCounts.shift()!;
        try {
          handleBatch(buf, count);
        } finally {
          // Released as soon as handled: the reader refills while the rest are handled.
          if (!closed) native.release(handle);
        }
        if (performance.now() >= until) break;
      }
    } finally {
      if (!closed && delivered.length > 0) {
        draining = true;
        setImmediate(drain);
      }
    }
  };
  const onRaw = (buf: Buffer, count: number) => {
    if (closed) return;
    delivered.push(buf);
    deliveredCounts.push(count);
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  };

  const perCall = Math.min(opts.maxBytesPerCall ?? opts.maxPayloadBytes ?? 65536, 1 << 20);
  let handle: unknown;
  try {
    handle = native.open(
      {
        ringBytes: opts.ringBytes,
        chunkBytes: opts.chunkBytes,
        maxBytesPerCall: perCall,
        batchBytes: opts.batchBytes,
        maxPendingBatches: opts.maxPendingBatches,
        skipUids: opts.skipUids ?? [],
        skipPorts: opts.skipPorts ?? [],
        skipPids: opts.skipPids ?? [],
        tls: opts.tls === false ? 0 : 1,
      },
      onRaw,
    );
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'ST_AGENT_LOAD_FAILED';
    throw new AgentCaptureError(code, (err as Error).message);
  }

  const procRoot = opts.procRoot ?? '/proc';
  let ready = Promise.resolve();
  if (opts.tls !== false) {
    const attacher = new TlsAttacher(native, handle, procRoot);
    tls = attacher;
    ready = attacher.pinSystemLibraries();
  }
  const capture: AgentCapture = {
    ready,
    onBatch(cb) {
      listeners.push(cb);
    },
    onRawBatch(cb) {
      rawListeners.push(cb);
    },
    releaseTls(pid) {
      tls?.release(pid);
    },
    counters() {
      const c = native.counters(handle);
      return {
        eventsSent: c.eventsAttempted,
        eventsDropped: c.eventsDropped,
        bytesCaptured: c.bytesCaptured,
        bytesTruncated: c.bytesTruncated,
        eventsReceived: received,
        connsOpened: c.connsOpened,
        tlsUnattributed: c.tlsUnattributed,
        skippedCalls: c.skippedCalls,
        batchesDelivered: c.batchesDelivered,
        tlsLibraries: tls?.libraryCount ?? 0,
        tlsAttachErrors: tls?.attachErrors ?? 0,
      };
    },
    attachTls(pid) {
      if (!tls || closed) return Promise.resolve(0);
      return tls.attachPid(pid, RESCAN_AFTER_EXEC_MS);
    },
    pause() {
      native.setEnabled(handle, false);
    },
    resume() {
      native.setEnabled(handle, true);
    },
    close() {
      if (closed) return;
      // What was delivered is handled before the reader stops: its events were counted received.
      for (let buf = delivered.shift(); buf !== undefined; buf = delivered.shift()) handleBatch(buf, deliveredCounts.shift()!);
      closed = true;
      if (tls) tls.stopped = true;
      native.close(handle);
    },
  };
  return capture;
}
