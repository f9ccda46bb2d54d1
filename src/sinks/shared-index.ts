/**
 * SharedIndex numbers the SharedArrayBuffers a job for a worker refers to: `of(buf)` is the
 * buffer's index in `list` (added on first sight), or -1 when `buf` is not shared (the caller
 * copies those bytes into the job). Consecutive views mostly share a read chunk, so the last
 * answer is kept.
 */
export class SharedIndex {
  readonly list: SharedArrayBuffer[] = [];
  private last: ArrayBufferLike | null = null;
  private lastIndex = -1;

  of(buf: ArrayBufferLike): number {
    if (buf === this.last) return this.lastIndex;
    if (!(buf instanceof SharedArrayBuffer)) return -1;
    let i = this.list.indexOf(buf);
    if (i < 0) i = this.list.push(buf) - 1;
    this.last = buf;
    this.lastIndex = i;
    return i;
  }
}
