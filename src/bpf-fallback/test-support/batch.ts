// Encodes AgentEvents into a capture batch as the addon delivers it (native/bpf/abi.h records,
// each [u32 length][record]), written field by field at the C offsets: for tests that drive
// ConnTable.handleBatch with the same events they give handle.

import type { AgentEvent } from '../events.js';

export function encodeBatch(events: readonly AgentEvent[]): Buffer {
  const parts: Buffer[] = [];
  for (const ev of events) {
    const r = encodeRecord(ev);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(r.length);
    parts.push(len, r);
  }
  return Buffer.concat(parts);
}

function header(type: number, size: number, ev: AgentEvent): Buffer {
  const r = Buffer.alloc(size);
  r.writeUInt32LE(type, 0);
  r.writeUInt32LE(ev.pid, 4);
  r.writeUInt32LE('tid' in ev ? ev.tid : 0, 8);
  r.writeInt32LE('fd' in ev ? ev.fd : -1, 12);
  r.writeBigUInt64LE(BigInt(ev.tsNs), 16);
  r.writeBigUInt64LE(BigInt('connId' in ev ? ev.connId : 0), 24);
  return r;
}

function encodeRecord(ev: AgentEvent): Buffer {
  switch (ev.kind) {
    case 'open': {
      const r = header(1, 88, ev);
      r[32] = ev.role === 'client' ? 1 : ev.role === 'server' ? 2 : 0;
      const v4 = (a: string) => (a === '' ? [] : a.split('.').map(Number));
      r[33] = ev.local.address === '' ? 0 : 2;
      r.writeUInt16LE(ev.local.port, 34);
      r.writeUInt16LE(ev.remote.port, 36);
      Buffer.from(v4(ev.local.address)).copy(r, 40);
      Buffer.from(v4(ev.remote.address)).copy(r, 56);
      r.write(ev.comm.slice(0, 15), 72, 'latin1');
      return r;
    }
    case 'data': {
      const r = header(2, 56 + ev.data.length, ev);
      r.writeBigUInt64LE(BigInt(ev.pos), 32);
      r.writeBigUInt64LE(BigInt(ev.size), 40);
      r.writeUInt32LE(ev.data.length, 48);
      r[52] = ev.direction === 'egress' ? 0 : 1;
      r[53] = ev.source === 'syscall' ? 0 : 1;
      ev.data.copy(r, 56);
      return r;
    }
    case 'close': {
      const r = header(3, 48, ev);
      r.writeBigUInt64LE(BigInt(ev.bytesSent), 32);
      r.writeBigUInt64LE(BigInt(ev.bytesReceived), 40);
      return r;
    }
    case 'exec': {
      const r = header(4, 48, ev);
      r.write(ev.comm.slice(0, 15), 32, 'latin1');
      return r;
    }
    case 'exit':
      return header(5, 48, ev);
  }
}
