// The agent's connection table: one entry per kernel connection id with its reassembly streams,
// detected protocol and parser state. Events are applied batch by batch; parsing runs once per
// touched connection at the end of a batch (so both directions of a batch are present), or at
// once on a gap or close. Memory is bounded per connection and in total (least recently active
// connections are evicted first); a process exit frees every connection of that pid.

import type { AgentMetrics } from './agent-metrics.js';
import type { AgentEvent, ConnOpenEvent, ProcExecEvent, ProcExitEvent, Role, SockAddr } from './events.js';
import { readBatch, type BatchSink } from './native.js';
import { payloadView, type HttpRecord, type MessageType, type TimedFrame } from './protocols/protocol.js';
import { PROTOCOLS, type AnyProtocol } from './protocols/registry.js';
import { ByteStream, DEFAULT_STREAM_LIMITS, ParseBuffer, type Segment, type StreamLimits } from './reassembly.js';

export interface ConnTableOptions {
  metrics: AgentMetrics;
  /** Receives every stitched exchange with its connection. Must not throw (errors are counted). */
  onRecord: (conn: ConnView, record: HttpRecord) => void;
  /** Body bytes kept per message. */
  maxBodyBytes?: number;
  /** Unparsed bytes one direction may hold (a head or frame larger than this is invalid). */
  maxBufferedBytes?: number;
  /** Bytes held by all connections together; beyond it the least recently active are evicted. */
  maxTotalBytes?: number;
  maxConnections?: number;
  /** Connections silent for this long (kernel time) are dropped. */
  idleTimeoutNs?: number;
  streamLimits?: StreamLimits;
}

/** How handleBatch treats a batch's records beyond applying them. */
export interface BatchOptions {
  /** Records of these processes are skipped (the agent's own). */
  ignorePids?: ReadonlySet<number>;
  /** Sees each exec and exit record of the other processes before the table applies it. */
  onProcessEvent?: (ev: ProcExecEvent | ProcExitEvent) => void;
}

/** What span building needs to know about a connection. */
export interface ConnView {
  readonly connId: number;
  readonly pid: number;
  readonly comm: string;
  readonly role: Role;
  readonly local: SockAddr;
  readonly remote: SockAddr;
  readonly source: 'syscall' | 'tls';
  /** The direction requests flow in: egress means the process is the client. */
  readonly requestDir: 'egress' | 'ingress';
}

const DEFAULTS = {
  maxBodyBytes: 64 * 1024,
  maxBufferedBytes: 1024 * 1024 + 64,
  maxTotalBytes: 64 * 1024 * 1024,
  maxConnections: 65536,
  idleTimeoutNs: 300e9,
};

// Bytes seen on both directions without a protocol match before a connection is given up on.
const DETECT_LIMIT = 8 * 1024;
const MID_STREAM_DETECT_LIMIT = 256 * 1024;
const UNKNOWN_ADDR: SockAddr = Object.freeze({ address: '', port: 0 });

type Dir = 'egress' | 'ingress';
const DIRS: readonly Dir[] = ['egress', 'ingress'];
/** Where requests may flow, per socket role: [request direction, response direction]. */
type Order = readonly [readonly [Dir, 'request'], readonly [Dir, 'response']];
const CLIENT_ORDER: readonly Order[] = [[['egress', 'request'], ['ingress', 'response']]];
const SERVER_ORDER: readonly Order[] = [[['ingress', 'request'], ['egress', 'response']]];
const EITHER_ORDER: readonly Order[] = [...CLIENT_ORDER, ...SERVER_ORDER];

/**
 * Frames taken in place, and the kernel time of each (its first and last byte's: one event's).
 * Two arrays, not a TimedFrame per frame: the times are kept unboxed in a double array, and most
 * frames go from here straight into the protocol's messages (Protocol.assemble).
 */
interface HeldFrames {
  frames: unknown[];
  times: number[];
}

function newHeld(): HeldFrames {
  return { frames: [], times: [] };
}

class Connection implements ConnView {
  role: Role;
  local: SockAddr;
  remote: SockAddr;
  comm: string;
  source: 'syscall' | 'tls' = 'syscall';
  lastNs: number;
  streams: Record<Dir, ByteStream>;
  bufs: Record<Dir, ParseBuffer> = { egress: new ParseBuffer(), ingress: new ParseBuffer() };
  /** Seen from after its start, or bytes were lost before the protocol was known. */
  midStream = false;
  protocol: AnyProtocol | undefined;
  state: unknown;
  /** Which direction carries requests, once known. */
  requestDir: Dir = 'egress';
  unsupported = false;
  /** Bytes discarded while looking for a message start mid-stream. */
  detectBytes = 0;
  frames: { request: TimedFrame<unknown>[]; response: TimedFrame<unknown>[] } = { request: [], response: [] };
  /** Frames taken in place as their data arrived (takeInPlace), handed on when their direction
   * is parsed: stitching sees them when it would have seen them parsed from bytes. */
  held: Record<MessageType, HeldFrames> = { request: newHeld(), response: newHeld() };
  /** Orphaned responses already counted. */
  orphansCounted = 0;
  /** Bytes last charged to the table's total. */
  charged = 0;
  dirty = false;

  constructor(
    readonly connId: number,
    readonly pid: number,
    open: ConnOpenEvent | undefined,
    tsNs: number,
    private readonly limits: StreamLimits,
    private readonly counters: AgentMetrics,
  ) {
    this.role = open?.role ?? 'unknown';
    this.local = open?.local ?? UNKNOWN_ADDR;
    this.remote = open?.remote ?? UNKNOWN_ADDR;
    this.comm = open?.comm ?? '';
    this.lastNs = tsNs;
    this.streams = this.newStreams(open !== undefined);
    if (open === undefined) this.midStream = true;
  }

  /** `opened`: the connection was seen from its start, so its streams begin at position 0. */
  newStreams(opened: boolean): Record<Dir, ByteStream> {
    const start = opened ? 0 : -1;
    return { egress: new ByteStream(this.limits, this.counters, start), ingress: new ByteStream(this.limits, this.counters, start) };
  }

  bytes(): number {
    let n = this.bufs.egress.length + this.bufs.ingress.length + this.streams.egress.buffered + this.streams.ingress.buffered;
    if (this.protocol !== undefined) n += this.protocol.retainedBytes(this.state);
    return n;
  }
}

/** mem[at, at + length) as a Buffer: mem itself when that is all of it (handle's events). */
function view(mem: Buffer, at: number, length: number): Buffer {
  return at === 0 && length === mem.length ? mem : payloadView(mem, at, length);
}

export class ConnTable implements BatchSink {
  private readonly conns = new Map<number, Connection>();
  private readonly byPid = new Map<number, Set<number>>();
  private readonly dirty: Connection[] = [];
  private readonly segs: Segment[] = [];
  /** What emit has the protocol stitch into: one array for every connection and call, not one
   * per connection (HTTP/1 kept one in its state) or per call. */
  private readonly records: HttpRecord[] = [];
  private total = 0;
  private idleCheckedNs = 0;
  private readonly o: Required<Omit<ConnTableOptions, 'onRecord' | 'metrics'>>;
  /** handleBatch's state while readBatch feeds it: records applied, latest kernel time, options. */
  private batchEvents = 0;
  private batchLatest = 0;
  private batchOptions: BatchOptions | undefined;
  /** The batch options' ignored pids for data records: one pid (the agent's own, as the agent
   * runs) is a compare per record, more a Set lookup (-1 and undefined: none). */
  private ignoredPid = -1;
  private ignoredPids: ReadonlySet<number> | undefined;

  constructor(private readonly opts: ConnTableOptions) {
    this.o = {
      maxBodyBytes: opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
      maxBufferedBytes: opts.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes,
      maxTotalBytes: opts.maxTotalBytes ?? DEFAULTS.maxTotalBytes,
      maxConnections: opts.maxConnections ?? DEFAULTS.maxConnections,
      idleTimeoutNs: opts.idleTimeoutNs ?? DEFAULTS.idleTimeoutNs,
      streamLimits: opts.streamLimits ?? DEFAULT_STREAM_LIMITS,
    };
  }

  get size(): number {
    return this.conns.size;
  }

  /** Bytes held by all connections (as of the last batch end). */
  get totalBytes(): number {
    return this.total;
  }

  /** Applies one batch of events in order. Never throws: a failing connection is dropped and counted. */
  handle(events: readonly AgentEvent[]): void {
    let latest = 0;
    this.opts.metrics.events.inc(events.length);
    for (const ev of events) {
      if (ev.tsNs > latest) latest = ev.tsNs;
      this.tryApply(ev);
    }
    this.endBatch(latest);
  }

  /**
   * Applies one capture batch (native/bpf/abi.h records, as the addon hands them over), as
   * handle(decodeBatch(batch)) does: data records are read in place, without an event object
   * per record and an array of them (the decode path's largest allocation).
   */
  handleBatch(batch: Buffer, options?: BatchOptions): void {
    this.batchEvents = 0;
    this.batchLatest = 0;
    this.batchOptions = options;
    const ignored = options?.ignorePids;
    this.ignoredPid = ignored?.size === 1 ? ignored.values().next().value! : -1;
    this.ignoredPids = ignored !== undefined && ignored.size > 1 ? ignored : undefined;
    try {
      // The table is the sink itself: its methods are the same functions for every table, so
      // readBatch's calls to them stay monomorphic (closures made per table were a new call
      // target, and a deoptimisation, for each).
      readBatch(batch, this);
    } finally {
      this.batchOptions = undefined;
      this.opts.metrics.events.inc(this.batchEvents);
    }
    this.endBatch(this.batchLatest);
  }

  /** BatchSink: a data record of the batch handleBatch is reading (not to be called otherwise). */
  data(connId: number, pid: number, tsNs: number, direction: Dir, source: 'syscall' | 'tls', pos: number, size: number, batch: Buffer, at: number, length: number): void {
    if (pid === this.ignoredPid || this.ignoredPids?.has(pid) === true) return;
    this.batchEvents++;
    if (tsNs > this.batchLatest) this.batchLatest = tsNs;
    try {
      this.takeData(this.connFor(connId, pid, tsNs), direction, source, pos, size, batch, at, length, tsNs, true);
    } catch {
      this.opts.metrics.parseErrors.inc();
      this.drop(connId);
    }
  }

  /** BatchSink: any other record of the batch handleBatch is reading (not to be called otherwise). */
  event(ev: Exclude<AgentEvent, { kind: 'data' }>): void {
    const o = this.batchOptions;
    if (o?.ignorePids?.has(ev.pid) === true) return;
    this.batchEvents++;
    if (ev.tsNs > this.batchLatest) this.batchLatest = ev.tsNs;
    if (o?.onProcessEvent !== undefined && (ev.kind === 'exec' || ev.kind === 'exit')) o.onProcessEvent(ev);
    this.tryApply(ev);
  }

  private tryApply(ev: AgentEvent): void {
    try {
      this.apply(ev);
    } catch {
      this.opts.metrics.parseErrors.inc();
      if (ev.kind === 'open' || ev.kind === 'data' || ev.kind === 'close') this.drop(ev.connId);
    }
  }

  /** Parses what the batch brought, per touched connection, then enforces the limits. */
  private endBatch(latest: number): void {
    const m = this.opts.metrics;
    for (const conn of this.dirty) {
      conn.dirty = false;
      if (!this.conns.has(conn.connId)) continue;
      try {
        for (const dir of DIRS) {
          conn.streams[dir].tick(this.segs);
          this.feed(conn, dir);
        }
        this.pump(conn, false);
        conn.bufs.egress.detach();
        conn.bufs.ingress.detach();
        this.charge(conn);
      } catch {
        m.parseErrors.inc();
        this.drop(conn.connId);
      }
    }
    this.dirty.length = 0;
    this.enforceLimits(latest);
  }

  /** Stitches and frees every connection (agent shutdown). */
  closeAll(): void {
    for (const conn of [...this.conns.values()]) this.finish(conn);
  }

  private apply(ev: AgentEvent): void {
    switch (ev.kind) {
      case 'open': {
        const old = this.conns.get(ev.connId);
        if (old !== undefined) this.finish(old);
        this.add(new Connection(ev.connId, ev.pid, ev, ev.tsNs, this.o.streamLimits, this.opts.metrics));
        return;
      }
      case 'data':
        this.takeData(this.connFor(ev.connId, ev.pid, ev.tsNs), ev.direction, ev.source, ev.pos, ev.size, ev.data, 0, ev.data.length, ev.tsNs, false);
        return;
      case 'close': {
        const conn = this.conns.get(ev.connId);
        // Socket byte counts bound the syscall streams: bytes after the last event were lost.
        if (conn !== undefined) this.finish(conn, conn.source === 'syscall' ? { egress: ev.bytesSent, ingress: ev.bytesReceived } : undefined);
        return;
      }
      case 'exit': {
        const ids = this.byPid.get(ev.pid);
        if (ids === undefined) return;
        for (const id of [...ids]) {
          const conn = this.conns.get(id);
          if (conn !== undefined) this.finish(conn);
        }
        this.byPid.delete(ev.pid);
        return;
      }
      case 'exec':
        return;
    }
  }

  /** The connection of a data event; one first seen mid-stream is added. */
  private connFor(connId: number, pid: number, tsNs: number): Connection {
    let conn = this.conns.get(connId);
    if (conn === undefined) {
      conn = new Connection(connId, pid, undefined, tsNs, this.o.streamLimits, this.opts.metrics);
      this.add(conn);
    }
    return conn;
  }

  private add(conn: Connection): void {
    this.conns.set(conn.connId, conn);
    let ids = this.byPid.get(conn.pid);
    if (ids === undefined) this.byPid.set(conn.pid, (ids = new Set()));
    ids.add(conn.connId);
    this.opts.metrics.connections.inc();
  }

  /**
   * One data event, its captured bytes mem[at, at + length). `inPlace`: the event came in a
   * capture batch (handleBatch), and frames the protocol takes without parsing text are taken
   * from it in place. handle's events never are, so the property tests that run both
   * (test-support/run.ts) compare this fast path with the general one.
   */
  private takeData(conn: Connection, direction: Dir, source: 'syscall' | 'tls', pos: number, size: number, mem: Buffer, at: number, length: number, tsNs: number, inPlace: boolean): void {
    if (source === 'tls' && conn.source === 'syscall') {
      // TLS plaintext replaces the ciphertext: parsing starts over on the plaintext streams.
      conn.source = 'tls';
      conn.streams = conn.newStreams(false);
      conn.bufs = { egress: new ParseBuffer(), ingress: new ParseBuffer() };
      conn.protocol = undefined;
      conn.state = undefined;
      conn.unsupported = false;
      conn.midStream = false;
      conn.frames = { request: [], response: [] };
      conn.held = { request: newHeld(), response: newHeld() };
      this.opts.metrics.tlsConnections.inc();
    } else if (source !== conn.source) return;
    if (conn.unsupported) return;
    if (tsNs > conn.lastNs) conn.lastNs = tsNs;
    // Named loads after a compare, on this path and the others of every record: a keyed load by
    // a variable name was a visible share of the per-record time.
    const stream = direction === 'egress' ? conn.streams.egress : conn.streams.ingress;
    // In-order events (nearly all) skip the Segment and the feed loop.
    if (stream.takeNext(pos, size, length, tsNs)) {
      if (!inPlace || !this.takeInPlace(conn, direction, stream, mem, at, length, tsNs)) this.append(conn, direction, stream, view(mem, at, length), tsNs);
    } else {
      stream.accept({ pos, size, data: view(mem, at, length), tsNs }, this.segs);
      this.feed(conn, direction);
    }
    if (!conn.dirty) {
      conn.dirty = true;
      this.dirty.push(conn);
      // Re-insert so the Map's order is least recently active first (eviction order).
      this.conns.delete(conn.connId);
      this.conns.set(conn.connId, conn);
    }
  }

  /**
   * The in-order bytes mem[at, at + length) of a direction with nothing waiting to be parsed:
   * the frames the protocol takes in place (a repeated HTTP/1 head and its body) are held as
   * parsed, and what is left goes to the parse buffer. False when nothing was taken (the caller
   * appends it all). A repeated head so costs no Buffer view, no parse-buffer round and no scan.
   */
  private takeInPlace(conn: Connection, dir: Dir, stream: ByteStream, mem: Buffer, at: number, length: number, tsNs: number): boolean {
    const protocol = conn.protocol;
    const buf = dir === 'egress' ? conn.bufs.egress : conn.bufs.ingress;
    if (protocol?.parseInPlace === undefined || buf.length !== 0 || buf.resyncing) return false;
    const type = this.typeOf(conn, dir);
    const held = type === 'request' ? conn.held.request : conn.held.response;
    const before = held.frames.length;
    const taken = protocol.parseInPlace(type, mem, at, length, conn.state, tsNs, held.frames);
    if (taken === 0) return false;
    // Times as parse gives them: the first and last byte's, both this event's.
    for (let k = held.frames.length - before; k > 0; k--) held.times.push(tsNs);
    if (taken < length) this.append(conn, dir, stream, view(mem, at + taken, length - taken), tsNs);
    return true;
  }

  /** Moves released segments of one direction into its parse buffer; gaps are handled in place. */
  private feed(conn: Connection, dir: Dir): void {
    const segs = this.segs;
    if (segs.length === 0) return;
    const stream = conn.streams[dir];
    for (const seg of segs) {
      if (seg.kind === 'data') this.append(conn, dir, stream, seg.data, seg.tsNs);
      else this.gap(conn, dir, seg);
    }
    // Emptied by pops: `length = 0` is a runtime call that also drops the array's capacity.
    while (segs.length > 0) segs.pop();
  }

  /** In-order bytes of one direction into its parse buffer. */
  private append(conn: Connection, dir: Dir, stream: ByteStream, data: Buffer, tsNs: number): void {
    const buf = dir === 'egress' ? conn.bufs.egress : conn.bufs.ingress;
    if (buf.length === 0 && !buf.resyncing && conn.protocol === undefined && stream.firstPos > 0) {
      conn.midStream = true;
      buf.resyncing = true;
    }
    buf.append(data, tsNs);
  }

  private gap(conn: Connection, dir: Dir, seg: Segment & { kind: 'gap' }): void {
    const buf = conn.bufs[dir];
    // What arrived before the hole may be enough to know the protocol: then it is parsed first.
    if (conn.protocol === undefined && !conn.unsupported) this.detect(conn);
    if (conn.protocol === undefined) {
      conn.midStream = true;
      buf.clear();
      buf.resyncing = true;
      return;
    }
    const type = this.typeOf(conn, dir);
    // Parse what arrived before the hole, then let the parser absorb it or resynchronise. The
    // requests that arrived before it first, as at the end of a batch (pump): a response's framing
    // depends on the requests parsed (HEAD), and handleBatch takes repeated request heads as they
    // arrive, so without this a lossy response stream parsed differently there than in handle.
    if (type === 'response') this.parse(conn, 'request');
    this.parse(conn, type);
    if (buf.length === 0 && !buf.resyncing && conn.protocol.skip(type, seg.length, conn.state)) return;
    this.emit(conn, false);
    conn.protocol.resync(type, conn.state, seg);
    buf.clear();
    buf.resyncing = true;
  }

  private typeOf(conn: Connection, dir: Dir): MessageType {
    return dir === conn.requestDir ? 'request' : 'response';
  }

  private pump(conn: Connection, eof: boolean): void {
    if (conn.protocol === undefined && !this.detect(conn)) return;
    this.parse(conn, 'request');
    this.parse(conn, 'response');
    this.emit(conn, eof);
  }

  private emit(conn: Connection, eof: boolean): void {
    const protocol = conn.protocol!;
    const records = this.records;
    try {
      protocol.stitch(conn.frames.request, conn.frames.response, conn.state, eof, records);
      const m = this.opts.metrics;
      const orphans = protocol.orphans(conn.state);
      m.orphanResponses.inc(orphans - conn.orphansCounted);
      conn.orphansCounted = orphans;
      for (const r of records) {
        m.records.inc();
        try {
          this.opts.onRecord(conn, r);
        } catch {
          m.parseErrors.inc();
        }
      }
    } finally {
      // Emptied now, or the table would keep the last records, their heads' text and the capture
      // batch their bodies view, until the next stitch; and, were a stitch to throw part way, the
      // next one (of any connection) would hand its records on as that connection's.
      while (records.length > 0) records.pop();
    }
  }

  /** Picks the protocol and which direction carries requests; false while undecided. */
  private detect(conn: Connection): boolean {
    const { egress, ingress } = conn.bufs;
    if (egress.length === 0 && ingress.length === 0) return false;
    const orders = conn.role === 'client' ? CLIENT_ORDER : conn.role === 'server' ? SERVER_ORDER : EITHER_ORDER;
    let undecided = false;
    for (const protocol of PROTOCOLS) {
      for (const order of orders) {
        for (const [dir, type] of order) {
          const buf = conn.bufs[dir];
          if (buf.length === 0) continue;
          buf.pullAll();
          let at = 0;
          if (buf.resyncing) {
            at = protocol.findFrameBoundary(type, buf.buf, 0, protocol.createState({ midStream: true, maxBodyBytes: 0 }));
            if (at < 0) continue;
          }
          const verdict = protocol.detect(type, at === 0 ? buf.buf : buf.buf.subarray(at));
          if (verdict === undefined) undecided = true;
          if (verdict !== true) continue;
          conn.protocol = protocol;
          conn.requestDir = order[0][0];
          conn.state = protocol.createState({ midStream: conn.midStream, maxBodyBytes: this.o.maxBodyBytes });
          return true;
        }
      }
    }
    const total = egress.length + ingress.length;
    if (conn.midStream && !undecided) {
      // No message start in what arrived: drop it and look again in what comes next, a while.
      conn.detectBytes += total;
      egress.clear();
      ingress.clear();
      if (conn.detectBytes > MID_STREAM_DETECT_LIMIT) this.giveUp(conn);
    } else if (!undecided || total > DETECT_LIMIT) this.giveUp(conn);
    return false;
  }

  private giveUp(conn: Connection): void {
    conn.unsupported = true;
    conn.bufs.egress.clear();
    conn.bufs.ingress.clear();
    this.opts.metrics.unsupportedConnections.inc();
  }

  private parse(conn: Connection, type: MessageType): void {
    const protocol = conn.protocol!;
    const dir: Dir = type === 'request' ? conn.requestDir : conn.requestDir === 'egress' ? 'ingress' : 'egress';
    const buf = dir === 'egress' ? conn.bufs.egress : conn.bufs.ingress;
    const frames = type === 'request' ? conn.frames.request : conn.frames.response;
    // Frames taken in place came before anything in the buffer.
    const held = type === 'request' ? conn.held.request : conn.held.response;
    if (held.frames.length > 0) {
      const taken = held.frames;
      const times = held.times;
      for (let i = 0; i < taken.length; i++) {
        // Assembled as stitch would assemble them, when no frame of this type waits before them
        // (after a gap a parse may leave frames for a later stitch): no TimedFrame per frame.
        if (frames.length === 0 && protocol.assemble !== undefined) protocol.assemble(type, taken[i], times[i], times[i], conn.state);
        else frames.push({ frame: taken[i], startNs: times[i], endNs: times[i] });
      }
      // Emptied by pops: `length = 0` is a runtime call that also drops the arrays' capacity.
      while (taken.length > 0) taken.pop();
      while (times.length > 0) times.pop();
    }
    let from = 0;
    // Runs on an empty buffer too: a parser may end a message whose last bytes were lost.
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (buf.resyncing) {
        buf.pullAll();
        const at = protocol.findFrameBoundary(type, buf.buf, from, conn.state);
        from = 0;
        if (at < 0) {
          buf.clear();
          return;
        }
        buf.consume(at);
        buf.resyncing = false;
      }
      const startNs = buf.timeAt(0);
      const r = protocol.parseFrame(type, buf.buf, conn.state, startNs);
      if (r.kind === 'success') {
        frames.push({ frame: r.frame, startNs, endNs: r.consumed > 0 ? buf.timeAt(r.consumed - 1) : startNs });
        buf.consume(r.consumed);
      } else if (r.kind === 'ignored' && r.consumed > 0) {
        buf.consume(r.consumed);
      } else if (r.kind === 'needs-more-data' && buf.pull()) {
        continue;
      } else if (r.kind === 'needs-more-data' && buf.length <= this.o.maxBufferedBytes) {
        return;
      } else {
        this.opts.metrics.parseErrors.inc();
        this.emit(conn, false);
        protocol.resync(type, conn.state);
        buf.resyncing = true;
        from = 1;
      }
    }
  }

  /** Close or exit: parse and stitch what is left, then free. */
  private finish(conn: Connection, ends?: Record<Dir, number>): void {
    try {
      for (const dir of DIRS) {
        conn.streams[dir].flush(this.segs, ends?.[dir]);
        this.feed(conn, dir);
      }
      if (!conn.unsupported) this.pump(conn, true);
    } catch {
      this.opts.metrics.parseErrors.inc();
    }
    this.drop(conn.connId);
  }

  private drop(connId: number): void {
    const conn = this.conns.get(connId);
    if (conn === undefined) return;
    this.conns.delete(connId);
    this.total -= conn.charged;
    conn.charged = 0;
    const ids = this.byPid.get(conn.pid);
    if (ids !== undefined) {
      ids.delete(connId);
      if (ids.size === 0) this.byPid.delete(conn.pid);
    }
  }

  private charge(conn: Connection): void {
    const n = conn.bytes();
    this.total += n - conn.charged;
    conn.charged = n;
  }

  private enforceLimits(nowNs: number): void {
    const { maxTotalBytes, maxConnections, idleTimeoutNs } = this.o;
    const over = this.total > maxTotalBytes || this.conns.size > maxConnections;
    // Idleness is checked at most once per second of kernel time: batches can be a few events.
    if (!over && nowNs - this.idleCheckedNs < 1e9) return;
    this.idleCheckedNs = nowNs;
    for (const conn of this.conns.values()) {
      const idle = nowNs - conn.lastNs > idleTimeoutNs;
      if (!idle && this.total <= maxTotalBytes && this.conns.size <= maxConnections) break;
      // Least recently active first; an evicted connection's finished exchanges still count.
      this.opts.metrics.evictions.inc();
      this.finish(conn);
    }
  }
}
