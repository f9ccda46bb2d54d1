import { allocated, type SharedChunksCollect } from './shared-file-stream.js';

/** Default of `keep`: 48 chunks of 512 KiB (the CLI's) are 24 MiB; many connections used 29. */
const DEFAULT_KEEP = 48;

/**
 * ChunkPool hands out the SharedArrayBuffers a SharedFileStream reads into and takes back the
 * ones nothing reads any more, so that a long capture neither zero-fills a new buffer for every
 * read nor leaves dead ones for a collection V8 does not schedule for them (see
 * SharedFileStream).
 *
 * Each chunk gets a rank when it is handed out (1, 2, 3, ... in read order). `holders` report
 * the lowest rank they may still read (Infinity: none); a chunk ranked below all of them is
 * refilled, the oldest first. The pool is only as safe as its holders' reports: the CLI pairs it
 * with FilesSink.heldFrom and TcpReassembler.oldestKeptChunk, which cover every view of a read
 * chunk that outlives its batch in `pcapflow read --sink files` with plain chunking (see
 * bench/PROFILE.md, "Fourth pass"). Chunks handed out and not yet refilled are at most `keep`
 * (default 48); past it the oldest is forgotten (left to the collector) and a new one allocated.
 * Refilling goes in rank order, so one chunk held long (a connection's unacknowledged bytes kept
 * for overlap checks) holds back the refilling of the later ones until it is forgotten.
 * New chunks (not reused ones) count against `collect` (see SharedFileStream). `poison` fills a
 * chunk with 0xee before it is handed out again (tests).
 */
export class ChunkPool {
  readonly size: number;
  readonly stats = { allocated: 0, reused: 0, forgotten: 0 };
  private readonly holders: Array<(rank: (buf: ArrayBufferLike) => number) => number> = [];
  private readonly ranks = new WeakMap<ArrayBufferLike, number>();
  /** Chunks handed out, oldest first (from `head`). */
  private out: SharedArrayBuffer[] = [];
  private head = 0;
  private next = 1;
  private readonly keep: number;
  private readonly poison: boolean;
  private readonly collect: SharedChunksCollect | null;

  constructor(size: number, options: { keep?: number; poison?: boolean; collect?: SharedChunksCollect } = {}) {
    this.size = size;
    this.keep = options.keep ?? DEFAULT_KEEP;
    this.poison = options.poison ?? false;
    this.collect = options.collect ?? null;
  }

  /** hold adds a holder: given `rank`, it returns the lowest rank it may still read (Infinity for none). */
  hold(holder: (rank: (buf: ArrayBufferLike) => number) => number): void {
    this.holders.push(holder);
  }

  /** rank: a chunk's rank, Infinity for a buffer the pool did not hand out. */
  readonly rank = (buf: ArrayBufferLike): number => this.ranks.get(buf) ?? Infinity;

  /** owns: the buffer is a chunk of this pool. */
  readonly owns = (buf: ArrayBufferLike): boolean => this.ranks.has(buf);

  /** take returns a chunk to read into: the oldest one no holder reads any more, else a new one. */
  take(): SharedArrayBuffer {
    let chunk: SharedArrayBuffer | null = null;
    if (this.head < this.out.length) {
      const oldest = this.out[this.head]!;
      if (this.ranks.get(oldest)! < this.bound()) {
        chunk = oldest;
        this.head++;
        this.stats.reused++;
        if (this.poison) new Uint8Array(chunk).fill(0xee);
      } else if (this.out.length - this.head >= this.keep) {
        this.ranks.delete(oldest);
        this.head++;
        this.stats.forgotten++;
      }
    }
    if (chunk === null) {
      chunk = new SharedArrayBuffer(this.size);
      this.stats.allocated++;
      if (this.collect !== null) allocated(this.collect, this.size);
    }
    if (this.head >= 1024 && this.head * 2 >= this.out.length) {
      this.out = this.out.slice(this.head);
      this.head = 0;
    }
    this.ranks.set(chunk, this.next++);
    this.out.push(chunk);
    return chunk;
  }

  private bound(): number {
    let min = Infinity;
    for (const h of this.holders) {
      const r = h(this.rank);
      if (r < min) min = r;
    }
    return min;
  }
}
