// Body capture for one direction: references the forwarded chunks up to the rule's limit and
// counts the full size. Nothing is copied until the span is kept and `bytes()` is called.

export class BodyCapture {
  /** Full body size in bytes, including what was not kept. */
  size = 0;
  private kept = 0;
  /** The first chunk kept, and those after it: most bodies arrive in one chunk, kept without an array. */
  private first: Buffer | undefined;
  private more: Buffer[] | undefined;

  /** limit 0: count only. */
  constructor(private limit: number) {}

  /** Empty again, for another body: an exchange started again reuses its captures. */
  reset(limit: number): void {
    this.limit = limit;
    this.size = 0;
    this.kept = 0;
    this.first = undefined;
    this.more = undefined;
  }

  add(chunk: Buffer): void {
    const len = chunk.length;
    this.size += len;
    const room = this.limit - this.kept;
    if (room <= 0 || len === 0) return;
    // Chunks are referenced, not copied: handlers hand over buffers they never reuse.
    const part = len <= room ? chunk : chunk.subarray(0, room);
    if (this.first === undefined) this.first = part;
    else (this.more ??= []).push(part);
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
    const first = this.first;
    if (first === undefined) return EMPTY;
    const more = this.more;
    if (more === undefined) return first;
    more.unshift(first);
    const all = Buffer.concat(more, this.kept);
    this.first = all;
    this.more = undefined;
    return all;
  }
}

const EMPTY = Buffer.alloc(0);
