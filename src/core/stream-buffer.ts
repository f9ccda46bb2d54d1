/**
 * SegmentBuffer holds one direction's out-of-order bytes: segments that arrived ahead of a hole,
 * as stream offsets (JS numbers, past 2^32 when needed), sorted and never overlapping. It owns its
 * bytes: `insert` copies what it keeps, so a small view never pins a reader's large chunk, and
 * the copies may be written in place (policy `last`). A piece with `data === null` stands for
 * bytes that were on the wire but cut by the snaplen (a truncated segment's tail).
 *
 * Memory: `cost` is what the held pieces take: their bytes plus SEGMENT_OVERHEAD each (the
 * piece, its own ArrayBuffer and the slot), so that a flood of one-byte segments is charged what
 * it really costs. Copies are made with Uint8Array.prototype.slice (copyBytes): a Buffer's own
 * `slice` is a view, which would keep the whole read chunk alive.
 *
 * Bytes at stream offsets from `keepTo` on (insert's last argument: the reassembler's maxBytes)
 * are not kept: they are held as pieces without data marked `capped`, which stand for bytes
 * received but dropped by the cap.
 *
 * Overlaps: a new segment only adds the byte ranges nobody holds yet. Where it overlaps held real
 * bytes, `policy` decides (`first`: keep the held bytes; `last`: overwrite them with the new ones)
 * and the span from the first to the last differing byte is reported in `diffStart`/`diffEnd`.
 * Truncated (null) pieces are never replaced, and never replace held bytes.
 *
 * Pure, no I/O, throws nothing. Used by TcpReassembler (reassembler.ts).
 */

/**
 * SEGMENT_OVERHEAD: bytes of memory one held piece costs besides its data (measured with 1e5
 * one-byte pieces: the BufferedSegment, the Uint8Array and its ArrayBuffer, the list slot).
 */
export const SEGMENT_OVERHEAD = 256;

/** copyBytes copies data[from, to) into a new array of its own (also when `data` is a Buffer). */
export function copyBytes(data: Uint8Array, from: number, to: number): Uint8Array {
  return Uint8Array.prototype.slice.call(data, from, to);
}

const NO_SEGS: BufferedSegment[] = [];

/** BufferedSegment is one held piece: [off, end) with its bytes (or null when they were not captured, or `capped`). */
export class BufferedSegment {
  off: number;
  end: number;
  data: Uint8Array | null;
  /** No data because the bytes lie past the cap (received, dropped); false for a truncated piece. */
  capped = false;
  /** Capture time of the packet that brought it. */
  sec: number;
  nsec: number;
  /** PSH was set on that packet and this piece ends where the packet's payload ended. */
  psh: boolean;

  constructor(off: number, end: number, data: Uint8Array | null, sec: number, nsec: number, psh: boolean) {
    this.off = off;
    this.end = end;
    this.data = data;
    this.sec = sec;
    this.nsec = nsec;
    this.psh = psh;
  }
}

export type OverlapPolicy = 'first' | 'last';

export class SegmentBuffer {
  /** NO_SEGS (shared, never written) until the first insert. */
  private segs: BufferedSegment[] = NO_SEGS;
  /** Index of the first live segment in `segs` (shifted ones are dropped lazily). */
  private head = 0;
  /** Sequence space held: the sum of (end - off) over the segments, truncated pieces included. */
  bytes = 0;
  /** Memory held: bytes of data plus SEGMENT_OVERHEAD per piece. */
  cost = 0;
  /** After `insert`: first and last+1 offsets of the bytes that differed from held bytes; -1 when none. */
  diffStart = -1;
  diffEnd = -1;

  get count(): number {
    return this.segs.length - this.head;
  }

  /** first returns the lowest segment, or null when empty. */
  first(): BufferedSegment | null {
    return this.segs[this.head] ?? null;
  }

  /** lastEnd returns the end offset of the highest segment, or -1 when empty. */
  lastEnd(): number {
    const n = this.segs.length;
    return n > this.head ? this.segs[n - 1]!.end : -1;
  }

  /** rebase adds `delta` to the offsets of every segment held (the stream's start moved back). */
  rebase(delta: number): void {
    for (let i = this.head; i < this.segs.length; i++) {
      const s = this.segs[i]!;
      s.off += delta;
      s.end += delta;
    }
  }

  /** shift removes and returns the lowest segment, or null when empty. */
  shift(): BufferedSegment | null {
    const s = this.segs[this.head];
    if (s === undefined) return null;
    this.segs[this.head] = undefined as unknown as BufferedSegment;
    this.head++;
    this.bytes -= s.end - s.off;
    this.cost -= (s.data === null ? 0 : s.data.length) + SEGMENT_OVERHEAD;
    if (this.head === this.segs.length) {
      this.segs.length = 0;
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.segs.length) {
      this.segs.splice(0, this.head);
      this.head = 0;
    }
    return s;
  }

  /**
   * insert adds [off, end): `data` holds the bytes present from `off` (data.length <= end - off;
   * the rest of the range was cut by the snaplen). Bytes from offset `keepTo` on are not kept
   * (a `capped` piece stands for them). Returns how much sequence space was added (0: the whole
   * range was already held). Sets diffStart/diffEnd.
   */
  insert(off: number, end: number, data: Uint8Array, sec: number, nsec: number, psh: boolean, policy: OverlapPolicy, keepTo = Infinity): number {
    this.diffStart = -1;
    this.diffEnd = -1;
    if (this.segs === NO_SEGS) this.segs = [];
    const presentEnd = off + data.length;
    // [off, keptEnd): bytes kept; [keptEnd, presentEnd): received past the cap; [presentEnd, end): not captured
    const keptEnd = presentEnd < keepTo ? presentEnd : keepTo > off ? keepTo : off;
    let added = 0;
    if (keptEnd > off) added += this.insertPiece(off, keptEnd, data, off, sec, nsec, psh && keptEnd === end, policy, false);
    if (presentEnd > keptEnd) added += this.insertPiece(keptEnd, presentEnd, null, off, sec, nsec, false, policy, true);
    if (presentEnd < end) added += this.insertPiece(presentEnd, end, null, off, sec, nsec, false, policy, false);
    return added;
  }

  /** clear drops everything. */
  clear(): void {
    this.segs = NO_SEGS;
    this.head = 0;
    this.bytes = 0;
    this.cost = 0;
  }

  private insertPiece(off: number, end: number, data: Uint8Array | null, dataOff: number, sec: number, nsec: number, psh: boolean, policy: OverlapPolicy, capped: boolean): number {
    const segs = this.segs;
    // first segment whose end is past `off`
    let lo = this.head;
    let hi = segs.length;
    if (hi > lo && segs[hi - 1]!.end <= off) lo = hi; // the common case: appending past the last
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.end <= off) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    let pos = off;
    let added = 0;
    while (pos < end) {
      const s = segs[i];
      if (s === undefined || s.off >= end) {
        segs.splice(i, 0, this.piece(pos, end, data, dataOff, sec, nsec, psh, capped));
        added += end - pos;
        break;
      }
      if (s.off > pos) {
        segs.splice(i, 0, this.piece(pos, s.off, data, dataOff, sec, nsec, false, capped));
        added += s.off - pos;
        i++;
        pos = s.off;
      }
      const oe = end < s.end ? end : s.end;
      if (data !== null && s.data !== null) this.overlap(s, pos, oe, data, dataOff, policy);
      pos = oe;
      i++;
    }
    this.bytes += added;
    return added;
  }

  private piece(off: number, end: number, data: Uint8Array | null, dataOff: number, sec: number, nsec: number, psh: boolean, capped: boolean): BufferedSegment {
    const s = new BufferedSegment(off, end, data === null ? null : copyBytes(data, off - dataOff, end - dataOff), sec, nsec, psh);
    s.capped = capped;
    this.cost += (s.data === null ? 0 : s.data.length) + SEGMENT_OVERHEAD;
    return s;
  }

  /** overlap compares the new bytes of [from, to) with held segment `s` and applies the policy. */
  private overlap(s: BufferedSegment, from: number, to: number, data: Uint8Array, dataOff: number, policy: OverlapPolicy): void {
    const held = s.data!;
    let first = -1;
    let last = -1;
    for (let p = from; p < to; p++) {
      if (held[p - s.off] !== data[p - dataOff]) {
        if (first < 0) first = p;
        last = p;
      }
    }
    if (first < 0) return;
    if (this.diffStart < 0 || first < this.diffStart) this.diffStart = first;
    if (last + 1 > this.diffEnd) this.diffEnd = last + 1;
    if (policy === 'last') held.set(data.subarray(from - dataOff, to - dataOff), from - s.off);
  }
}
