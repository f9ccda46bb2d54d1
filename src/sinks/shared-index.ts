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

/**
 * TakenBound is a sink's part of a ChunkPool holder's answer (heldFrom) for data still on its
 * way to the sink: `took(buf)` names the buffer of the last data the sink took, and
 * `lowest(rank)` is that buffer's rank, or the highest such rank seen before when it is no pool
 * chunk (a copy, rank Infinity, says nothing). With plain chunking data views arrive in read
 * order, so a chunk ranked below it has no data in transit to the sink.
 */
export class TakenBound {
  private last: ArrayBufferLike | null = null;
  private bound = -1;

  took(buf: ArrayBufferLike): void {
    this.last = buf;
  }

  lowest(rank: (buf: ArrayBufferLike) => number): number {
    if (this.last !== null) {
      const r = rank(this.last);
      if (r !== Infinity && r > this.bound) this.bound = r;
    }
    return this.bound;
  }
}
