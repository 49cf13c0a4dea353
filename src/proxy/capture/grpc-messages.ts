// Counts gRPC messages in one direction as chunks pass, from their 5-byte length prefixes, so
// message events carry exact sizes even for bodies beyond the capture limit. Per chunk it only
// walks the prefixes; per message it stores two numbers.

export class GrpcMessageSizes {
  /** Per message: payload length * 2 + compressed flag. */
  readonly messages: number[] = [];
  /** Per message: when its prefix was seen (epoch ms). */
  readonly times: number[] = [];
  /** Set when a prefix had a flag other than 0/1: the stream is not gRPC framing; stop counting. */
  invalid = false;
  private skip = 0;
  private headerBytes = 0;
  private flag = 0;
  private length = 0;

  add(chunk: Buffer, now: number): void {
    if (this.invalid) return;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - i);
        this.skip -= step;
        i += step;
        continue;
      }
      const b = chunk[i++];
      if (this.headerBytes === 0) {
        if (b > 1) {
          this.invalid = true;
          return;
        }
        this.flag = b;
        this.length = 0;
      } else {
        this.length = this.length * 256 + b;
      }
      if (++this.headerBytes === 5) {
        this.messages.push(this.length * 2 + this.flag);
        this.times.push(now);
        this.skip = this.length;
        this.headerBytes = 0;
      }
    }
  }
}
