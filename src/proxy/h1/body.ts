// Finds where an HTTP/1.x body ends in a byte stream (Content-Length, chunked, until close)
// without copying it: the caller forwards the consumed bytes verbatim, and payload slices
// (de-chunked views into the same buffers) go to capture. Pure state machine, no I/O.

import type { RawHeaders } from '../exchange.js';
import { BodyKind, parseFieldLine, type H1Error } from './head.js';

/** Receives payload bytes (subarray views, never copies) as the reader finds them. */
export interface BodySink {
  bodyData(chunk: Buffer): void;
}

const CR = 13;
const LF = 10;

const enum S {
  Size,
  SizeMore,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  Done,
}

const HEX = new Int8Array(256).fill(-1);
for (let b = 0; b < 10; b++) HEX[0x30 + b] = b;
for (let b = 0; b < 6; b++) {
  HEX[0x41 + b] = 10 + b;
  HEX[0x61 + b] = 10 + b;
}

/** Longest chunk extensions Node accepts (its 413 threshold). */
const MAX_LINE = 16 * 1024;

export class BodyReader {
  kind: BodyKind = BodyKind.None;
  done = true;
  error: H1Error | null = null;
  /** Trailer fields of a chunked body, once done (undefined when there were none). */
  trailers: RawHeaders | undefined;
  private remaining = 0;
  private state = S.Done;
  /** Pieces of the trailer line being received (lines may span reads). */
  private line: Buffer[] = [];
  private lineLen = 0;
  private trailerBytes = 0;

  constructor(private readonly maxTrailerSize = 16 * 1024) {}

  reset(kind: BodyKind, length: number): void {
    this.kind = kind;
    this.error = null;
    this.trailers = undefined;
    this.line.length = 0;
    this.lineLen = 0;
    this.trailerBytes = 0;
    this.remaining = length;
    this.state = kind === BodyKind.Chunked ? S.Size : S.Data;
    this.done = kind === BodyKind.None || (kind === BodyKind.Length && length === 0);
  }

  /**
   * Consumes body bytes of buf[start..]; returns how many belong to this body (it stops at the
   * body's end, leaving the rest for the next message). Check `done` and `error` afterwards.
   */
  feed(buf: Buffer, start: number, sink: BodySink): number {
    if (this.done || this.error) return 0;
    const end = buf.length;
    if (this.kind === BodyKind.UntilClose) {
      if (end > start) sink.bodyData(start === 0 ? buf : buf.subarray(start));
      return end - start;
    }
    if (this.kind === BodyKind.Length) {
      const n = Math.min(this.remaining, end - start);
      if (n > 0) sink.bodyData(start === 0 && n === end ? buf : buf.subarray(start, start + n));
      this.remaining -= n;
      if (this.remaining === 0) this.done = true;
      return n;
    }
    let i = start;
    while (i < end) {
      const b = buf[i];
      switch (this.state) {
        case S.Size: {
          const d = HEX[b];
          if (d < 0) return this.fail(`invalid chunk size byte 0x${b.toString(16)}`, i - start);
          this.remaining = d;
          this.state = S.SizeMore;
          this.lineLen = 1;
          i++;
          break;
        }
        case S.SizeMore: {
          const d = HEX[b];
          if (d >= 0) {
            this.remaining = this.remaining * 16 + d;
            if (this.remaining > Number.MAX_SAFE_INTEGER) return this.fail('chunk size too large', i - start);
          } else if (b === 0x3b) {
            this.state = S.Ext;
          } else if (b === CR) {
            this.state = S.SizeLf;
          } else {
            return this.fail(`invalid chunk size byte 0x${b.toString(16)}`, i - start);
          }
          i++;
          break;
        }
        case S.Ext:
          // Extensions are forwarded untouched; only what llhttp rejects (CTLs) is refused.
          if (b === CR) this.state = S.SizeLf;
          else if ((b < 0x20 && b !== 9) || b === 0x7f) return this.fail(`invalid chunk extension byte 0x${b.toString(16)}`, i - start);
          else if (++this.lineLen > MAX_LINE) return this.fail('chunk extensions too long', i - start, 413);
          i++;
          break;
        case S.SizeLf:
          if (b !== LF) return this.fail('chunk size line not ended by CRLF', i - start);
          this.state = this.remaining === 0 ? S.Trailer : S.Data;
          this.lineLen = 0;
          i++;
          break;
        case S.Data: {
          const n = Math.min(this.remaining, end - i);
          sink.bodyData(buf.subarray(i, i + n));
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = S.DataCr;
          break;
        }
        case S.DataCr:
          if (b !== CR) return this.fail('chunk data not followed by CRLF', i - start);
          this.state = S.DataLf;
          i++;
          break;
        case S.DataLf:
          if (b !== LF) return this.fail('chunk data not followed by CRLF', i - start);
          this.state = S.Size;
          i++;
          break;
        case S.Trailer: {
          const lf = buf.indexOf(LF, i);
          const stop = lf < 0 ? end : lf + 1;
          this.line.push(buf.subarray(i, stop));
          this.lineLen += stop - i;
          this.trailerBytes += stop - i;
          i = stop;
          if (this.trailerBytes > this.maxTrailerSize) return this.fail('trailer section too large', i - start);
          if (lf >= 0) {
            const err = this.trailerLine();
            if (err) return this.fail(err, i - start);
            if (this.done) return i - start;
          }
          break;
        }
        case S.Done:
          return i - start;
      }
    }
    return i - start;
  }

  private trailerLine(): string | null {
    const line = this.line.length === 1 ? this.line[0] : Buffer.concat(this.line, this.lineLen);
    this.line.length = 0;
    this.lineLen = 0;
    const end = line.length - 2;
    if (end < 0 || line[end] !== CR) return 'trailer line ended by LF without CR';
    if (end === 0) {
      this.state = S.Done;
      this.done = true;
      return null;
    }
    this.trailers ??= [];
    const e = parseFieldLine(line, 0, end, this.trailers);
    return e ? `trailer: ${e.message}` : null;
  }

  private fail(message: string, consumed: number, status: 400 | 413 = 400): number {
    this.error = { code: status === 413 ? 'ST_H1_CHUNK_EXTENSIONS_OVERFLOW' : 'ST_H1_INVALID_CHUNK', message, status };
    return consumed;
  }
}
