/**
 * Defragmenter: IPv4 and IPv6 fragment reassembly, used by the IP decoder.
 *
 * Datagrams are keyed by (version, source, destination, identification, protocol); IPv6 keys
 * pass protocol 0, since only the first fragment's next header counts (RFC 8200), and that one
 * is returned with the datagram. Fragments may come in any order, duplicated or overlapping:
 * the first copy of a byte wins, and an overlap whose bytes differ from what is held is counted
 * (`overlaps`). Nonsense is rejected (ADD_INVALID) without harming what is held: an empty
 * non-final fragment, a non-final fragment whose length is not a multiple of 8, a datagram past
 * the maximum size (65 515 payload bytes for IPv4, 65 535 for IPv6), a second final fragment
 * with another end, data beyond the final fragment's end (the teardrop family).
 *
 * Ownership: the Defragmenter holds COPIES of fragment payloads (a fragment's view must not pin
 * a reader chunk); the reassembled datagram is a new buffer that the caller then owns.
 *
 * Limits, both driven by capture time and reported in `stats`:
 * - `timeout` (default 30 s): an incomplete datagram is dropped once a packet stamped more than
 *   `timeout` seconds after its first fragment is seen (`incompleteExpired`). The check walks the
 *   table in arrival order and stops at the first datagram still young, so it costs O(1) when
 *   nothing expires; timestamps that go backwards only delay expiry.
 * - `maxBytes` (default 64 MiB): payload bytes held. A fragment that would exceed it first
 *   evicts the oldest other incomplete datagrams; if it still does not fit its own datagram is
 *   dropped. Each datagram given up this way counts in `droppedByCap`.
 * `flush()` (end of input) drops whatever is still incomplete, counted in `incompleteExpired`.
 *
 * Never throws: the IP decoder turns ADD_INVALID into a skip or PcapflowError IP_FRAGMENT_INVALID.
 */

export interface DefragOptions {
  /** Most fragment payload bytes held at once; default 64 MiB. */
  maxBytes?: number;
  /** Capture-time seconds after its first fragment that an incomplete datagram is dropped; default 30. */
  timeout?: number;
}

/** add() results. */
export const ADD_HELD = 0;
export const ADD_COMPLETE = 1;
export const ADD_INVALID = 2;
export const ADD_DROPPED = 3;

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT = 30;

interface Piece {
  start: number;
  end: number;
  data: Uint8Array;
}

interface Datagram {
  firstTs: number;
  /** Held pieces, sorted by start, never overlapping. */
  pieces: Piece[];
  /** End of the datagram once the final fragment (MF clear) is seen; -1 before. */
  total: number;
  /** Highest end of any fragment. */
  maxEnd: number;
  /** Payload bytes held (= bytes covered, since pieces never overlap). */
  bytes: number;
  /** Fragments accepted, duplicates included. */
  count: number;
  /** Protocol (IPv6: next header) of the offset-0 fragment; -1 before it is seen. */
  proto: number;
}

export class Defragmenter {
  private readonly maxBytes: number;
  private readonly timeout: number;
  private readonly table = new Map<string, Datagram>();

  /** After ADD_COMPLETE: the reassembled payload, the number of fragments and the first fragment's protocol. */
  datagram: Uint8Array = new Uint8Array(0);
  datagramFragments = 0;
  datagramProto = -1;

  private nFragments = 0;
  private nReassembled = 0;
  private nExpired = 0;
  private nOverlaps = 0;
  private nInvalid = 0;
  private held = 0;
  private nDroppedByCap = 0;

  constructor(options: DefragOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
  }

  /** pending is the number of incomplete datagrams held. */
  get pending(): number {
    return this.table.size;
  }

  /**
   * stats: fragments (fragments offered), datagramsReassembled, incompleteExpired, overlaps
   * (overlaps with differing bytes), fragmentsInvalid, bytesHeld (now), droppedByCap.
   */
  get stats(): Readonly<Record<string, number>> {
    return {
      fragments: this.nFragments,
      datagramsReassembled: this.nReassembled,
      incompleteExpired: this.nExpired,
      overlaps: this.nOverlaps,
      fragmentsInvalid: this.nInvalid,
      bytesHeld: this.held,
      droppedByCap: this.nDroppedByCap,
    };
  }

  /**
   * add offers one fragment: `offset` in bytes, `more` the MF flag, `payload` the bytes after the
   * IP header (copied if held). Time is the packet's capture time. Returns ADD_HELD, ADD_COMPLETE
   * (see `datagram`, `datagramFragments`, `datagramProto`), ADD_INVALID or ADD_DROPPED.
   */
  add(
    version: number,
    src: Uint8Array,
    dst: Uint8Array,
    id: number,
    keyProto: number,
    proto: number,
    offset: number,
    more: boolean,
    payload: Uint8Array,
    tsSec: number,
    tsNsec: number,
  ): number {
    this.nFragments++;
    const now = tsSec + tsNsec / 1e9;
    if (this.table.size > 0) this.expireAt(now);

    const len = payload.length;
    const end = offset + len;
    const max = version === 4 ? 65515 : 65535;
    if ((more && (len === 0 || (len & 7) !== 0)) || end > max) return this.invalid();

    const key = fragmentKey(version, src, dst, id, keyProto);
    let dg = this.table.get(key);
    if (dg !== undefined) {
      if (!more && ((dg.total >= 0 && dg.total !== end) || dg.maxEnd > end)) return this.invalid();
      if (more && dg.total >= 0 && end > dg.total) return this.invalid();
    }

    // Byte cap: evict the oldest other datagrams, then give up on this one.
    if (this.held + len > this.maxBytes) {
      for (const [k, other] of this.table) {
        if (this.held + len <= this.maxBytes) break;
        if (other === dg) continue;
        this.drop(k, other);
        this.nDroppedByCap++;
      }
      if (this.held + len > this.maxBytes) {
        if (dg !== undefined) this.drop(key, dg);
        this.nDroppedByCap++;
        return ADD_DROPPED;
      }
    }

    if (dg === undefined) {
      dg = { firstTs: now, pieces: [], total: -1, maxEnd: 0, bytes: 0, count: 0, proto: -1 };
      this.table.set(key, dg);
    }
    dg.count++;
    if (!more) dg.total = end;
    if (end > dg.maxEnd) dg.maxEnd = end;
    if (offset === 0) dg.proto = proto;
    if (len > 0) this.insert(dg, offset, payload);

    if (dg.total < 0 || dg.bytes !== dg.total) return ADD_HELD;

    // Complete: copy the pieces into one buffer.
    const out = new Uint8Array(dg.total);
    for (const pc of dg.pieces) out.set(pc.data, pc.start);
    this.drop(key, dg);
    this.nReassembled++;
    this.datagram = out;
    this.datagramFragments = dg.count;
    this.datagramProto = dg.proto;
    return ADD_COMPLETE;
  }

  /** expire drops incomplete datagrams older than the timeout at capture time (tsSec, tsNsec). */
  expire(tsSec: number, tsNsec: number): void {
    if (this.table.size > 0) this.expireAt(tsSec + tsNsec / 1e9);
  }

  /** flush drops every incomplete datagram (end of input), counted as expired. */
  flush(): void {
    for (const [k, dg] of this.table) {
      this.drop(k, dg);
      this.nExpired++;
    }
  }

  private expireAt(now: number): void {
    for (const [k, dg] of this.table) {
      if (now - dg.firstTs <= this.timeout) break;
      this.drop(k, dg);
      this.nExpired++;
    }
  }

  private drop(key: string, dg: Datagram): void {
    this.table.delete(key);
    this.held -= dg.bytes;
  }

  private invalid(): number {
    this.nInvalid++;
    return ADD_INVALID;
  }

  /**
   * insert copies the bytes of [offset, offset+len) that no held piece covers; first copy wins.
   * The pieces stay sorted without a sort: a binary search finds the first piece the fragment
   * reaches, and new pieces are spliced in place, so a datagram of thousands of tiny fragments
   * costs O(log n) plus a memmove per fragment, not O(n log n) (a quadratic fragment flood).
   */
  private insert(dg: Datagram, offset: number, payload: Uint8Array): void {
    const end = offset + payload.length;
    const pieces = dg.pieces;
    let lo = 0;
    let hi = pieces.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pieces[mid]!.end <= offset) lo = mid + 1;
      else hi = mid;
    }
    let pos = offset;
    let differ = false;
    let i = lo;
    for (; i < pieces.length && pos < end; i++) {
      const pc = pieces[i]!;
      if (pc.start >= end) break;
      if (pc.start > pos) {
        pieces.splice(i, 0, this.piece(dg, pos, copy(payload, pos - offset, pc.start - offset)));
        i++; // pc moved one place up
      }
      // Overlap [max(pos, pc.start), min(pc.end, end)): compare.
      const a = Math.max(pos, pc.start);
      const b = Math.min(pc.end, end);
      if (!differ) {
        for (let x = a; x < b; x++) {
          if (payload[x - offset] !== pc.data[x - pc.start]) {
            differ = true;
            break;
          }
        }
      }
      pos = b;
    }
    if (pos < end) pieces.splice(i, 0, this.piece(dg, pos, copy(payload, pos - offset, payload.length)));
    if (differ) this.nOverlaps++;
  }

  /** piece makes a held piece of `data` at `start` and counts its bytes. */
  private piece(dg: Datagram, start: number, data: Uint8Array): Piece {
    dg.bytes += data.length;
    this.held += data.length;
    return { start, end: start + data.length, data };
  }
}

/** copy returns a fresh copy of b[from, to) (Buffer.slice would return a view). */
function copy(b: Uint8Array, from: number, to: number): Uint8Array {
  const c = new Uint8Array(to - from);
  c.set(b.subarray(from, to));
  return c;
}

/** fragmentKey packs the reassembly key into a string (bytes as char codes). */
function fragmentKey(version: number, src: Uint8Array, dst: Uint8Array, id: number, proto: number): string {
  let k = String.fromCharCode(version, proto & 0xff, id >>> 16, id & 0xffff);
  for (let i = 0; i < src.length; i++) k += String.fromCharCode(src[i]!);
  for (let i = 0; i < dst.length; i++) k += String.fromCharCode(dst[i]!);
  return k;
}
