// Body capture for one direction: references the forwarded chunks up to the rule's limit and
// counts the full size. Nothing is copied until the span is kept and `bytes()` is called.

export class BodyCapture {
  /** Full body size in bytes, including what was not kept. */
  size = 0;
  private kept = 0;
  private chunks: Buffer[] | undefined;

  /** limit 0: count only. */
  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    const len = chunk.length;
    this.size += len;
    const room = this.limit - this.kept;
    if (room <= 0 || len === 0) return;
    // Chunks are referenced, not copied: handlers hand over buffers they never reuse.
    const part = len <= room ? chunk : chunk.subarray(0, room);
    if (this.chunks === undefined) this.chunks = [part];
    else this.chunks.push(part);
    this.kept += part.length;
  }

  /** Bytes kept (at most the limit). */
  get keptSize(): number {
    return this.kept;
  }

  get truncated(): boolean {
    return this.size > this.kept;
  }

  /** The kept bytes as one buffer; concatenates once, at span end. */
  bytes(): Buffer {
    const chunks = this.chunks;
    if (chunks === undefined) return EMPTY;
    if (chunks.length === 1) return chunks[0];
    const all = Buffer.concat(chunks, this.kept);
    this.chunks = [all];
    return all;
  }
}

const EMPTY = Buffer.alloc(0);
