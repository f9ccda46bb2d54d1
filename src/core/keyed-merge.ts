/**
 * KeyedMerge puts the output of several shard workers back into the order one thread would have
 * written it. Each source hands over groups of bytes, each with a key (k, sub): the packet
 * number that caused it and its place at that packet (see shard-batch.ts); keys rise within a
 * source and no two sources share one. With each hand-over a source also says the lowest key it
 * may still send (`low`). A group is released once no source can send a lower key. Pure.
 */

interface Part {
  bytes: Uint8Array;
  ks: Float64Array;
  subs: Float64Array;
  ends: Uint32Array;
  /** Next group. */
  at: number;
}

function less(k1: number, s1: number, k2: number, s2: number): boolean {
  return k1 < k2 || (k1 === k2 && s1 < s2);
}

export class KeyedMerge {
  private readonly parts: Part[][];
  private readonly lowK: number[];
  private readonly lowSub: number[];
  /** Bytes handed over and not yet released. */
  pendingBytes = 0;

  constructor(readonly n: number) {
    this.parts = Array.from({ length: n }, () => []);
    this.lowK = new Array<number>(n).fill(0);
    this.lowSub = new Array<number>(n).fill(0);
  }

  /**
   * add takes source s's groups: group i is bytes[ends[i-1] .. ends[i]) (from 0) with key (ks[i],
   * subs[i]); then s sends no key below (lowK, lowSub) (Infinity: s is done).
   */
  add(s: number, bytes: Uint8Array, ks: Float64Array, subs: Float64Array, ends: Uint32Array, lowK: number, lowSub: number): void {
    if (ks.length > 0) {
      this.parts[s]!.push({ bytes, ks, subs, ends, at: 0 });
      this.pendingBytes += ends[ends.length - 1]!;
    }
    this.lowK[s] = lowK;
    this.lowSub[s] = lowSub;
  }

  /**
   * take appends the groups that can be released, in key order, to `out` (views; runs of one
   * source joined); returns their bytes. `finished`, when given, gets a source, bytes pair for
   * each hand-over all of whose groups are now released: once the views are written, that
   * source may have its buffer back.
   */
  take(out: Uint8Array[], finished?: Array<number | Uint8Array>): number {
    let total = 0;
    const n = this.n;
    for (;;) {
      // the source with the lowest next key (its first group, or its low when it has none)
      let best = -1;
      let bk = Infinity;
      let bs = Infinity;
      for (let s = 0; s < n; s++) {
        const q = this.parts[s]!;
        const p = q[0];
        const k = p === undefined ? this.lowK[s]! : p.ks[p.at]!;
        const sub = p === undefined ? this.lowSub[s]! : p.subs[p.at]!;
        if (best < 0 || less(k, sub, bk, bs)) {
          best = s;
          bk = k;
          bs = sub;
        }
      }
      const q = this.parts[best]!;
      const p = q[0];
      if (p === undefined) return total; // the lowest is a source that may still send
      // the bound: the lowest next key of the others
      let ok = Infinity;
      let os = Infinity;
      for (let s = 0; s < n; s++) {
        if (s === best) continue;
        const o = this.parts[s]![0];
        const k = o === undefined ? this.lowK[s]! : o.ks[o.at]!;
        const sub = o === undefined ? this.lowSub[s]! : o.subs[o.at]!;
        if (less(k, sub, ok, os)) {
          ok = k;
          os = sub;
        }
      }
      const from = p.at === 0 ? 0 : p.ends[p.at - 1]!;
      let i = p.at;
      while (i < p.ks.length && less(p.ks[i]!, p.subs[i]!, ok, os)) i++;
      if (i === p.at) return total; // another source's low ties with it: wait for that source
      const to = p.ends[i - 1]!;
      if (to > from) out.push(p.bytes.subarray(from, to));
      total += to - from;
      this.pendingBytes -= to - from;
      p.at = i;
      if (i === p.ks.length) {
        q.shift();
        finished?.push(best, p.bytes);
      }
    }
  }

  /** done: every source said it is done and everything was released. */
  get done(): boolean {
    for (let s = 0; s < this.n; s++) if (this.parts[s]!.length > 0 || this.lowK[s] !== Infinity) return false;
    return true;
  }
}
