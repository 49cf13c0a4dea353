// A raw HTTP/2 frame writer and reader, for attacks node:http2's client refuses to make
// (rapid reset floods) and for checking exactly which frames a server sends back.

import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settings(ack = false): Buffer {
  return frame(FrameType.SETTINGS, ack ? ACK : 0, 0);
}

/**
 * HEADERS for `GET /` with END_STREAM, HPACK-encoded with static-table indexes only
 * (:method GET = 2, :scheme http = 6, :path / = 4; :authority as a literal without indexing)
 * so every frame is independent of the connection's dynamic table.
 */
export function getHeaders(streamId: number, authority = 'localhost'): Buffer {
  const auth = Buffer.from(authority, 'latin1');
  const block = Buffer.concat([Buffer.from([0x82, 0x86, 0x84, 0x01, auth.length]), auth]);
  return frame(FrameType.HEADERS, END_STREAM | END_HEADERS, streamId, block);
}

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits a byte stream into frames as they arrive. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly frames: Frame[] = [];

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      this.frames.push({
        type: this.buf[3],
        flags: this.buf[4],
        streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: this.buf.subarray(9, 9 + len),
      });
      this.buf = this.buf.subarray(9 + len);
    }
  }

  /** The error code of the first GOAWAY received, if any. */
  goawayCode(): number | undefined {
    const g = this.frames.find((f) => f.type === FrameType.GOAWAY);
    return g === undefined ? undefined : g.payload.readUInt32BE(4);
  }
}

/** A raw connection: sends the preface and SETTINGS, ACKs the server's SETTINGS, records frames. */
export async function rawH2Connect(port: number): Promise<{ socket: net.Socket; reader: FrameReader; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const reader = new FrameReader();
  let acked = false;
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    if (!acked && reader.frames.some((f) => f.type === FrameType.SETTINGS && (f.flags & ACK) === 0)) {
      acked = true;
      if (socket.writable) socket.write(settings(true));
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(Buffer.concat([PREFACE, settings()]));
  return { socket, reader, closed };
}
