/**
 * SentViews: the delivered bytes each direction keeps, as views, until the peer acknowledges
 * them (Side.sentOff/sentData, at most `overlapCheckBytes` a direction), so that TcpReassembler
 * can tell a retransmission with different bytes (an `overlap` event with `kept: 'first'`).
 *
 * A view keeps its whole read chunk alive, so the views are bounded in read chunks too: sides
 * are queued by the chunk generation (a count of the read chunks seen in delivered views) at
 * which they began to hold views, and trim() drops those of sides that began SENT_CHUNKS chunks
 * ago or more. track() and oldestChunk() tell a pool of read chunks which ones are still read.
 * Emptied arrays go back to a small pool for the next side. Pure: no node:* import.
 */
import type { Side } from './reassembler-state.js';

/** Delivered views kept for overlap checks pin their read chunk: at most this many recent chunks' worth (trim; 4 MiB of input). */
const SENT_CHUNKS = 8;
/** Pairs of emptied overlap-check arrays kept for reuse. */
const SENT_POOL = 64;
/** A view's buffer this large is a read chunk (or a live slab), not a copy of one segment. */
const CHUNK_MIN = 64 * 1024;

export class SentViews {
  /** Read chunks seen in delivered views (a generation count), and the last one. */
  private chunkGen = 0;
  private chunkBuf: ArrayBufferLike | null = null;
  /** Sides holding delivered views, in order of when they began to (with the generation then). */
  private q: Side[] = [];
  private qGen: number[] = [];
  private head = 0;
  /** Emptied overlap-check arrays, for the next side that holds some (see drop). */
  private readonly offPool: number[][] = [];
  private readonly dataPool: Uint8Array[][] = [];
  private isChunk: ((buf: ArrayBufferLike) => boolean) | null = null;
  /**
   * The last buffer isChunk said no to: a pool never takes a buffer back once it is not one of
   * its chunks (new chunks are new buffers), so the answer holds, and a capture whose chunks are
   * not pooled asks once per chunk instead of once per segment.
   */
  private notChunk: ArrayBufferLike | null = null;

  /** track: note, per side, the first kept view whose buffer `isChunk` calls a read chunk (TcpReassembler.trackChunks). */
  track(isChunk: (buf: ArrayBufferLike) => boolean): void {
    this.isChunk = isChunk;
  }

  /**
   * oldestChunk: the lowest `rank` of the read chunks the kept views belong to; Infinity when
   * none. Relies on delivered views coming in read order (plain chunking: a data view is always
   * of the packet being processed): a side whose views began at a later chunk generation holds
   * no older chunk, so the scan of the trim queue stops there.
   */
  oldestChunk(rank: (buf: ArrayBufferLike) => number): number {
    const q = this.q;
    const qGen = this.qGen;
    let bestGen = Infinity;
    let best = Infinity;
    for (let h = this.head; h < q.length; h++) {
      if (qGen[h]! > bestGen) break;
      const d = q[h]!;
      if (d.sentGen !== qGen[h] || !d.holdsSent() || d.sentChunk === null) continue;
      const r = rank(d.sentChunk);
      if (r < best) best = r;
      if (d.sentChunkGen < bestGen) bestGen = d.sentChunkGen;
    }
    return best;
  }

  /** keep: side d delivered `data` at stream offset `off`; keep the view, at most `cap` bytes for the side. */
  keep(d: Side, off: number, data: Uint8Array, cap: number): void {
    const buf = data.buffer;
    if (buf !== this.chunkBuf && buf.byteLength >= CHUNK_MIN) {
      this.chunkBuf = buf;
      this.chunkGen++;
    }
    if (d.sentOff === null || d.sentData === null) {
      d.sentOff = this.offPool.pop() ?? [];
      d.sentData = this.dataPool.pop() ?? [];
    }
    if (d.sentHead === d.sentLen) {
      d.sentGen = this.chunkGen;
      // one queue entry per side and generation: a side emptied by every ACK begins again
      // with each segment, and trim treats a repeated entry like the first
      if (d.sentQueued !== this.chunkGen) {
        d.sentQueued = this.chunkGen;
        this.q.push(d);
        this.qGen.push(this.chunkGen);
      }
    }
    d.sentOff[d.sentLen] = off;
    d.sentData[d.sentLen] = data;
    if (d.sentChunk === null && this.isChunk !== null && buf !== this.notChunk) {
      if (this.isChunk(buf)) {
        d.sentChunk = buf;
        d.sentChunkGen = this.chunkGen;
      } else this.notChunk = buf;
    }
    d.sentLen++;
    d.sentBytes += data.length;
    if (d.sentBytes > cap) this.drop(d, -1, cap);
  }

  /** pending: some side is queued for trim(). */
  get pending(): boolean {
    return this.head < this.q.length;
  }

  /**
   * trim drops the views of sides that began to hold them SENT_CHUNKS read chunks ago or more
   * and returns how many sides it emptied: an idle connection whose last bytes were never
   * acknowledged would keep a read chunk (512 KiB) each, so without this the chunks kept would
   * grow with the number of such connections. A retransmission that comes later than that is no
   * longer checked against what was delivered.
   */
  trim(): number {
    const q = this.q;
    const qGen = this.qGen;
    const limit = this.chunkGen - SENT_CHUNKS;
    let dropped = 0;
    let h = this.head;
    while (h < q.length && qGen[h]! <= limit) {
      const d = q[h]!;
      if (d.sentGen === qGen[h] && d.holdsSent()) {
        this.drop(d, Infinity, 0);
        dropped++;
      }
      q[h] = undefined as unknown as Side;
      h++;
    }
    if (h === q.length) {
      this.q = [];
      this.qGen = [];
      h = 0;
    } else if (h >= 1024 && h * 2 >= q.length) {
      this.q = q.slice(h);
      this.qGen = qGen.slice(h);
      h = 0;
    }
    this.head = h;
    return dropped;
  }

  /** drop is Side.dropSent, giving the side's arrays back to the pool once they hold nothing. */
  drop(d: Side, upTo: number, cap: number): void {
    if (!d.dropSent(upTo, cap)) return;
    const offs = d.sentOff!;
    const datas = d.sentData!;
    d.sentOff = null;
    d.sentData = null;
    // a burst's long arrays are left to the collector; the pool stays small
    if (this.offPool.length < SENT_POOL && offs.length <= 1024) {
      this.offPool.push(offs);
      this.dataPool.push(datas);
    }
  }
}

/**
 * sentDiff compares the part of a segment (`len` bytes at stream offset `off`, `payload` the
 * captured ones) below d.nextOff with the delivered bytes side d still keeps: the range from the
 * first to the last byte that differs, or null when none does.
 */
export function sentDiff(d: Side, off: number, payload: Uint8Array, len: number): { offset: number; len: number } | null {
  const present = payload.length < len ? payload.length : len;
  const stop = off + present < d.nextOff ? off + present : d.nextOff;
  let first = -1;
  let last = -1;
  const offs = d.sentOff!;
  const datas = d.sentData!;
  for (let i = d.sentHead; i < d.sentLen; i++) {
    const so = offs[i]!;
    const sd = datas[i]!;
    const from = so > off ? so : off;
    const to = so + sd.length < stop ? so + sd.length : stop;
    for (let p = from; p < to; p++) {
      if (sd[p - so] !== payload[p - off]) {
        if (first < 0) first = p;
        last = p;
      }
    }
  }
  return first < 0 ? null : { offset: first, len: last + 1 - first };
}
