/**
 * ReorderWindow puts packets back in capture-time order within a bounded window, before the
 * demux sees them: what a multi-queue NIC, a SPAN port or a capture of several interfaces writes
 * slightly out of order (each packet keeping its own timestamp) comes out as it happened, so an
 * ACK no longer precedes the data it acknowledges, a SYN no longer follows its connection's first
 * data, and a FIN or RST no longer comes before the last bytes of its direction.
 *
 * Contract:
 * - Every packet comes out exactly once; `end()` gives out whatever is held.
 * - A packet moves ahead of packets that arrived before it only when they arrived at most
 *   `packets` packets before it, their timestamps are later than its own, and by at most
 *   `seconds`: packets out of order by more than that stay in file order (a clock step, a
 *   single bogus timestamp far ahead or behind, seen in real captures, does not drag the packets
 *   around it). Equal timestamps keep file order, so a capture in time order comes out unchanged.
 * - At most `packets` packets and `maxBytes` captured bytes are held (the oldest in time leaves
 *   first); so each packet is delayed by at most that many later packets. Held packets are the
 *   caller's Packet objects, not copies: their `data` views keep their read chunks alive
 *   (oldestHeldChunk tells a ChunkPool which).
 * - `packets: 0` turns the window off: batches pass through untouched.
 *
 * Throws PcapflowError INVALID_OPTION for bad options, nothing per packet. Pure: no node:* import.
 */
import { PcapflowError } from './errors.js';
import { planMemory } from './memory-budget.js';
import { Packet } from './packet.js';
import type { Stage } from './stage.js';

export interface ReorderOptions {
  /** Most packets held, and how many packets a packet may move ahead of. Default 1024; 0: off. */
  packets?: number;
  /** How much later (seconds of capture time) a packet's timestamp may be than one that moves ahead of it. Default 60. */
  seconds?: number;
  /** Most captured bytes held (sum of `data.length`). Default 8 MiB (the reorder part of the memory budget's out-of-order share). */
  maxBytes?: number;
}

export const REORDER_DEFAULTS: Required<ReorderOptions> = {
  packets: 1024,
  seconds: 60,
  maxBytes: planMemory().reorderMaxBytes,
};

export interface ReorderStats {
  /** Packets that went through. */
  packets: number;
  /** Packets that moved ahead of at least one packet read before them. */
  reordered: number;
  /** The most packets one packet moved ahead of. */
  maxMoved: number;
  /**
   * Packets that still came out earlier in time than a packet given out before them (out of
   * order by more than the window): the demux and reassembler see them out of order.
   */
  leftOutOfOrder: number;
  /** Packets held now, and the most ever. */
  held: number;
  peakHeld: number;
}

function checkOptions(o: ReorderOptions): Required<ReorderOptions> {
  const r = { ...REORDER_DEFAULTS };
  if (o.packets !== undefined) {
    if (!Number.isSafeInteger(o.packets) || o.packets < 0 || o.packets > 1 << 20) {
      throw new PcapflowError('INVALID_OPTION', `reorder packets must be a whole number from 0 to ${1 << 20}, got ${String(o.packets)}`);
    }
    r.packets = o.packets;
  }
  if (o.seconds !== undefined) {
    if (typeof o.seconds !== 'number' || !Number.isFinite(o.seconds) || o.seconds < 0) {
      throw new PcapflowError('INVALID_OPTION', `reorder seconds must be a number >= 0, got ${String(o.seconds)}`);
    }
    r.seconds = o.seconds;
  }
  if (o.maxBytes !== undefined) {
    if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes < 0) {
      throw new PcapflowError('INVALID_OPTION', `reorder maxBytes must be a whole number of bytes, got ${String(o.maxBytes)}`);
    }
    r.maxBytes = o.maxBytes;
  }
  return r;
}

export class ReorderWindow implements Stage<Packet[], Packet[]> {
  readonly options: Readonly<Required<ReorderOptions>>;
  readonly stats: ReorderStats = { packets: 0, reordered: 0, maxMoved: 0, leftOutOfOrder: 0, held: 0, peakHeld: 0 };
  /**
   * Packets given out since the last call of takePassed (only when trackPassed was set): a
   * caller that recycles Packet objects gives these back once the stages after this one are done.
   */
  private passed: Packet[] | null = null;
  /** The held packets in order, a ring: `ring[(head + i) & mask]`, i < size; `seq` their arrival numbers. */
  private ring: Packet[];
  private seq: Float64Array;
  private head = 0;
  private size = 0;
  private readonly mask: number;
  private bytes = 0;
  private arrivals = 0;
  /** Timestamp of the last packet given out. */
  private lastSec = -1;
  private lastNsec = 0;

  constructor(options: ReorderOptions = {}) {
    this.options = checkOptions(options);
    let cap = 1;
    while (cap < this.options.packets + 1) cap *= 2;
    // filled, so that the array stays packed
    this.ring = new Array<Packet>(cap).fill(NO_PACKET);
    this.seq = new Float64Array(cap);
    this.mask = cap - 1;
  }

  /** trackPassed makes write and end record the packets they give out (see takePassed). */
  trackPassed(): void {
    this.passed = [];
  }

  /** takePassed returns the packets given out since the last call (trackPassed), and forgets them. */
  takePassed(): Packet[] {
    const p = this.passed;
    if (p === null || p.length === 0) return EMPTY_PASSED;
    this.passed = [];
    return p;
  }

  /**
   * oldestHeldChunk: the lowest `rank` of the buffers the held packets' data views belong to
   * (Infinity when none), for a ChunkPool (holders).
   */
  oldestHeldChunk(rank: (buf: ArrayBufferLike) => number): number {
    let best = Infinity;
    let last: ArrayBufferLike | null = null;
    for (let i = 0; i < this.size; i++) {
      const buf = this.ring[(this.head + i) & this.mask]!.dataBuf.buffer;
      if (buf === last) continue;
      last = buf;
      const r = rank(buf);
      if (r < best) best = r;
    }
    return best;
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    const o = this.options;
    if (o.packets === 0) {
      this.stats.packets += batch.length;
      if (this.passed !== null) for (let i = 0; i < batch.length; i++) this.passed.push(batch[i]!);
      emit(batch);
      return;
    }
    const out: Packet[] = [];
    const max = o.packets;
    const maxBytes = o.maxBytes;
    const ring = this.ring;
    const mask = this.mask;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (this.size > 0 && later(ring[(this.head + this.size - 1) & mask]!, p)) this.insert(p);
      else this.append(p); // in time order: the common case
      while (this.size > max || (this.bytes > maxBytes && this.size > 0)) out.push(this.shift());
    }
    this.stats.packets += batch.length;
    this.stats.held = this.size;
    if (this.size > this.stats.peakHeld) this.stats.peakHeld = this.size;
    if (out.length > 0) {
      if (this.passed !== null) for (let i = 0; i < out.length; i++) this.passed.push(out[i]!);
      emit(out);
    }
  }

  end(emit: (out: Packet[]) => void): void {
    if (this.size === 0) return;
    const out: Packet[] = [];
    while (this.size > 0) out.push(this.shift());
    this.stats.held = 0;
    if (this.passed !== null) for (let i = 0; i < out.length; i++) this.passed.push(out[i]!);
    emit(out);
  }

  /** append puts `p`, not earlier in time than any held packet, after them. */
  private append(p: Packet): void {
    const j = (this.head + this.size) & this.mask;
    this.ring[j] = p;
    this.seq[j] = ++this.arrivals;
    this.size++;
    this.bytes += p.dataEnd - p.dataOff;
  }

  /** insert puts `p`, earlier in time than the newest held packet, in its place (see the class comment). */
  private insert(p: Packet): void {
    const ring = this.ring;
    const seq = this.seq;
    const mask = this.mask;
    const n = ++this.arrivals;
    this.bytes += p.dataEnd - p.dataOff;
    let at = this.size;
    const sec = p.tsSec;
    const nsec = p.tsNsec;
    // out of order: move back past held packets that are later in time, arrived within the
    // window and are not later by more than `seconds`
    const far = n - this.options.packets;
    const limit = this.options.seconds;
    while (at > 0) {
      const j = (this.head + at - 1) & mask;
      const q = ring[j]!;
      if (!later(q, p)) break;
      if (seq[j]! < far || q.tsSec - sec + (q.tsNsec - nsec) * 1e-9 > limit) break;
      at--;
    }
    const moved = this.size - at;
    if (moved > 0) {
      for (let k = this.size; k > at; k--) {
        const to = (this.head + k) & mask;
        const from = (this.head + k - 1) & mask;
        ring[to] = ring[from]!;
        seq[to] = seq[from]!;
      }
      this.stats.reordered++;
      if (moved > this.stats.maxMoved) this.stats.maxMoved = moved;
    }
    const j = (this.head + at) & mask;
    ring[j] = p;
    seq[j] = n;
    this.size++;
  }

  private shift(): Packet {
    const h = this.head;
    const p = this.ring[h]!;
    this.ring[h] = NO_PACKET;
    this.head = (h + 1) & this.mask;
    this.size--;
    this.bytes -= p.dataEnd - p.dataOff;
    if (this.lastSec > p.tsSec || (this.lastSec === p.tsSec && this.lastNsec > p.tsNsec)) this.stats.leftOutOfOrder++;
    else {
      this.lastSec = p.tsSec;
      this.lastNsec = p.tsNsec;
    }
    return p;
  }
}

/** later: `a`'s timestamp is later than `b`'s. */
function later(a: Packet, b: Packet): boolean {
  return a.tsSec > b.tsSec || (a.tsSec === b.tsSec && a.tsNsec > b.tsNsec);
}

const EMPTY_PASSED: Packet[] = [];
const NO_PACKET = new Packet();
