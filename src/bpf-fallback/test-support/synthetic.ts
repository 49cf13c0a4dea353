// Builds AgentEvent sequences the way the kernel emits them (open, data with stream positions
// and monotonic times, close), from the bytes each side wrote: for parser and span tests that
// run without the kernel.

import type { AgentEvent, ConnOpenEvent, DataEvent, Role, SockAddr } from '../events.js';

export interface Write {
  /** Who wrote the bytes: the traced process (egress) or its peer (ingress, the process read them). */
  direction: 'egress' | 'ingress';
  data: Buffer | string;
}

export interface SyntheticConn {
  connId: number;
  pid?: number;
  role?: Role;
  local?: SockAddr;
  remote?: SockAddr;
  comm?: string;
  source?: 'syscall' | 'tls';
  /** Kernel time of the open; each write is 1 ms after the previous. */
  startNs?: number;
  stepNs?: number;
  /** Per-event payload cap: longer writes become events with data cut to this size. */
  capBytes?: number;
  /** Split each write into events of at most this many bytes (like several read() calls). */
  splitBytes?: number;
  open?: boolean;
  close?: boolean;
}

export function connEvents(c: SyntheticConn, writes: readonly Write[]): AgentEvent[] {
  const pid = c.pid ?? 4242;
  const step = c.stepNs ?? 1e6;
  let ts = c.startNs ?? 1e12;
  const base = { connId: c.connId, pid, tid: pid, fd: 7 };
  const out: AgentEvent[] = [];
  if (c.open !== false) {
    const open: ConnOpenEvent = {
      ...base,
      kind: 'open',
      tsNs: ts,
      role: c.role ?? 'client',
      local: c.local ?? { address: '10.0.0.1', port: 40000 + (c.connId % 20000) },
      remote: c.remote ?? { address: '10.0.0.2', port: 8080 },
      comm: c.comm ?? 'curl',
    };
    out.push(open);
  }
  const pos = { egress: 0, ingress: 0 };
  for (const w of writes) {
    const bytes = typeof w.data === 'string' ? Buffer.from(w.data, 'latin1') : w.data;
    const split = c.splitBytes ?? Math.max(bytes.length, 1);
    for (let off = 0; off < bytes.length; off += split) {
      ts += step;
      const piece = bytes.subarray(off, Math.min(bytes.length, off + split));
      const data = c.capBytes !== undefined && piece.length > c.capBytes ? piece.subarray(0, c.capBytes) : piece;
      const ev: DataEvent = { ...base, kind: 'data', tsNs: ts, direction: w.direction, source: c.source ?? 'syscall', pos: pos[w.direction], size: piece.length, data };
      pos[w.direction] += piece.length;
      out.push(ev);
    }
  }
  if (c.close !== false) out.push({ ...base, kind: 'close', tsNs: ts + step, bytesSent: pos.egress, bytesReceived: pos.ingress });
  return out;
}
