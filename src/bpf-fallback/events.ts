// The node agent's events as user space sees them, decoded from the kernel's ring-buffer
// records (native/bpf/abi.h is the byte layout; native.ts's decodeBatch decodes the addon's raw
// batches into these shapes). Declared once here; the decoder, the conn table and the
// reassembler all import them.

export interface SockAddr {
  /** Dotted IPv4 or RFC 5952 IPv6 text; '' when unknown (connection first seen mid-stream). */
  address: string;
  port: number;
}

export type Role = 'client' | 'server' | 'unknown';

interface EventBase {
  /** Kernel-assigned id, unique per connection for the agent's lifetime (< 2^53). */
  connId: number;
  /** Process id (tgid) and thread id. */
  pid: number;
  tid: number;
  fd: number;
  /** CLOCK_MONOTONIC nanoseconds from bpf_ktime_get_ns(), as a JS number (µs precision kept). */
  tsNs: number;
}

export interface ConnOpenEvent extends EventBase {
  kind: 'open';
  role: Role;
  local: SockAddr;
  remote: SockAddr;
  /** Process name (task comm, 16 bytes max). */
  comm: string;
}

export interface DataEvent extends EventBase {
  kind: 'data';
  /** egress: the process wrote it; ingress: the process read it. */
  direction: 'egress' | 'ingress';
  /** syscall: bytes on the socket; tls: plaintext from SSL_read/SSL_write uprobes. */
  source: 'syscall' | 'tls';
  /** Offset of this event's first byte in its (connection, direction, source) stream. */
  pos: number;
  /** Bytes the call moved; `data` may be shorter (per-event cap). */
  size: number;
  data: Buffer;
}

export interface ConnCloseEvent extends EventBase {
  kind: 'close';
  bytesSent: number;
  bytesReceived: number;
}

export interface ProcExecEvent {
  kind: 'exec';
  pid: number;
  tsNs: number;
  comm: string;
}

export interface ProcExitEvent {
  kind: 'exit';
  pid: number;
  tsNs: number;
}

export type AgentEvent = ConnOpenEvent | DataEvent | ConnCloseEvent | ProcExecEvent | ProcExitEvent;

/** Counters the BPF programs keep themselves (per-CPU arrays, summed by the addon). */
export interface KernelCounters {
  eventsSent: number;
  /** Ring buffer reservations that failed: events lost in the kernel. */
  eventsDropped: number;
  bytesCaptured: number;
  /** Payload bytes not copied because of the per-event cap. */
  bytesTruncated: number;
}
