/**
 * The reassembler's state per connection (Conn, kept in `flow.state`) and per direction (Side),
 * with the helpers that read it (windowBound) and the shared empty values the open and close
 * events use (NO_OPTIONS, NO_TRAFFIC, synOptions). Only TcpReassembler (reassembler.ts) and its
 * parts (SentViews in reassembler-sent.ts, SynTable in syn-table.ts) use them; the methods the
 * comments name (expireSkips, take, ...) are TcpReassembler's unless a class is named (SentViews
 * .trim), and "the class comment" is its class comment. Pure: no node:* import.
 */
import { formatTs, type DirectionSummary, type TcpOptionsSeen } from './events.js';
import type { Flow } from './flow.js';
import { EMPTY, type Packet } from './packet.js';
import { SegmentBuffer } from './stream-buffer.js';
import { tcpOptions } from './tcp-decoder.js';

/** One direction of a connection. */
export class Side {
  readonly name: 'c2s' | 's2c';
  /** Sequence number of stream offset 0 is known. */
  synced = false;
  sawSyn = false;
  /** Sequence number of stream offset 0. */
  base = 0;
  /** Next stream offset to deliver, and its sequence number. */
  nextOff = 0;
  nextSeq = 0;
  readonly buf = new SegmentBuffer();
  finKnown = false;
  /** Sequence number and stream offset of the FIN (the offset just past the last byte). */
  finSeq = 0;
  finOff = 0;
  finDone = false;
  /**
   * The stream start was taken from a segment, not a SYN, less than waitPackets packets ago: its
   * bytes are held (not delivered) until then or its SYN, since an earlier segment or the SYN
   * may still move the start back (rebase); provUntil is the packet count when it ends.
   */
  provisional = false;
  provUntil = 0;
  /** The lowest ACK of this side's stream the peer sent before this side's stream started (synced). */
  ackLow = 0;
  ackLowSet = false;
  /** Highest stream offset the peer acknowledged (capped at the FIN), and the capture time of that ACK. */
  ackedOff = 0;
  ackedT = -Infinity;
  /**
   * A hole the peer acknowledged that waits (waitPackets): the packet count at which it becomes
   * a gap (0: none), how far, and the time of the packet that started the wait.
   */
  skipUntil = 0;
  skipTarget = 0;
  /** A later hole acknowledged while one waits: it waits in turn (expireSkips). */
  skipMore = 0;
  skipSec = 0;
  skipNsec = 0;
  /** Last window this side advertised (for the peer's zero-window probes). */
  win = -1;
  /** A segment set aside as beyond any window (a copy), -1 when none: [junkOff, junkOff+junkLen). */
  junkOff = -1;
  junkLen = 0;
  junkData: Uint8Array = EMPTY;
  junkSec = 0;
  junkNsec = 0;
  junkPsh = false;
  junkFin = false;
  /** Options of this side's SYN (a shared empty object until one was seen: never mutate it). */
  opts: TcpOptionsSeen = NO_OPTIONS;
  optsSeen = false;
  // counters for the close summary
  bytes = 0;
  packets = 0;
  retransmitted = 0;
  outOfOrder = 0;
  gaps = 0;
  missing = 0;
  overlaps = 0;
  firstSec = -1;
  firstNsec = 0;
  lastSec = -1;
  lastNsec = 0;
  /** Bytes past `maxBytes` not delivered (see the class comment). */
  capped = 0;
  // delivered bytes not yet acknowledged by the peer (views), for overlap checks; null until used
  // (entries sentHead..sentLen-1; the arrays come from and go back to the reassembler's pool, so
  // a stream acknowledged segment by segment allocates no arrays per packet)
  sentOff: number[] | null = null;
  sentData: Uint8Array[] | null = null;
  sentHead = 0;
  sentLen = 0;
  sentBytes = 0;
  /** The reassembler's chunk generation when this side began to hold views (see SentViews.trim), and that of its latest entry in the trim queue. */
  sentGen = 0;
  sentQueued = -1;
  /**
   * The first buffer of the kept views that trackChunks' predicate calls a read chunk, and the
   * chunk generation when it was kept; null while the side keeps none (see oldestKeptChunk).
   */
  sentChunk: ArrayBufferLike | null = null;
  sentChunkGen = 0;
  // push chunking; null until used
  pend: Uint8Array[] | null = null;
  pendLen = 0;
  pendOff = 0;
  pendSec = 0;
  pendNsec = 0;

  constructor(name: 'c2s' | 's2c') {
    this.name = name;
  }

  /** holdsSent: some delivered bytes are kept for overlap checks. */
  holdsSent(): boolean {
    return this.sentHead < this.sentLen;
  }

  /**
   * dropSent forgets delivered bytes below `upTo` (acknowledged), or the oldest while over `cap`.
   * Returns true when nothing is kept any more (the caller gives the arrays back).
   */
  dropSent(upTo: number, cap: number): boolean {
    const offs = this.sentOff;
    const datas = this.sentData;
    if (offs === null || datas === null) return false;
    let h = this.sentHead;
    const n = this.sentLen;
    while (h < n) {
      const d = datas[h]!;
      if (offs[h]! + d.length > upTo && this.sentBytes <= cap) break;
      this.sentBytes -= d.length;
      datas[h] = EMPTY;
      h++;
    }
    if (h === n) {
      this.sentHead = this.sentLen = 0;
      this.sentChunk = null;
      return true;
    }
    if (h >= 64 && h * 2 >= n) {
      offs.copyWithin(0, h, n);
      datas.copyWithin(0, h, n);
      datas.fill(EMPTY, n - h, n);
      this.sentLen = n - h;
      h = 0;
    }
    this.sentHead = h;
    return false;
  }

  sync(base: number): void {
    this.synced = true;
    this.base = base;
    this.nextOff = 0;
    this.nextSeq = base;
  }

  /** rebase moves the start of a stream nothing was delivered of back by `delta` bytes (provisional). */
  rebase(delta: number): void {
    this.base = (this.base - delta) >>> 0;
    this.nextSeq = this.base;
    this.buf.rebase(delta);
    if (this.finKnown) this.finOff += delta;
    if (this.ackedOff > 0) this.ackedOff += delta;
    if (this.skipTarget > 0) this.skipTarget += delta;
    if (this.skipMore > 0) this.skipMore += delta;
    if (this.junkOff >= 0) this.junkOff += delta;
  }

  summary(): DirectionSummary {
    return {
      bytes: this.bytes,
      packets: this.packets,
      retransmitted: this.retransmitted,
      outOfOrder: this.outOfOrder,
      gaps: this.gaps,
      missing: this.missing,
      overlaps: this.overlaps,
      firstTs: this.firstSec < 0 ? null : formatTs(this.firstSec, this.firstNsec),
      lastTs: this.lastSec < 0 ? null : formatTs(this.lastSec, this.lastNsec),
      capped: this.capped,
    };
  }
}

/** The options of a side whose SYN was not seen, or of a SYN without any (shared: never mutate it). */
export const NO_OPTIONS: TcpOptionsSeen = Object.freeze({});

/** The summary of a direction that sent nothing (shared: events are read-only). */
export const NO_TRAFFIC: DirectionSummary = Object.freeze({
  bytes: 0,
  packets: 0,
  retransmitted: 0,
  outOfOrder: 0,
  gaps: 0,
  missing: 0,
  overlaps: 0,
  firstTs: null,
  lastTs: null,
  capped: 0,
});

/** synOptions: the options of a SYN as the open event shows them (only those present). */
export function synOptions(pkt: Packet): TcpOptionsSeen {
  const t = tcpOptions(pkt);
  const o: TcpOptionsSeen = {};
  if (t.mss !== undefined) o.mss = t.mss;
  if (t.wscale !== undefined) o.wscale = t.wscale;
  if (t.sackPermitted) o.sackPermitted = true;
  return o;
}

/** A packet of a connection held until its SYN may have come (Conn.stash): what take() reads of it. */
export interface Stashed {
  sec: number;
  nsec: number;
  flags: number;
  seq: number;
  ack: number;
  win: number;
  dir: 0 | 1;
  payloadLen: number;
  payload: Uint8Array;
}

/** Per-connection state, kept in `flow.state`. */
export class Conn {
  readonly flow: Flow;
  readonly sides: [Side, Side] = [new Side('c2s'), new Side('s2c')];
  opened = false;
  firstSec: number;
  firstNsec: number;
  /** Index+1 of the side whose RST is held (see the class comment); 0 when none. */
  heldRst = 0;
  /**
   * Packets of a connection first seen without a SYN, held (copies) while its SYN or SYN-ACK may
   * still come (waitPackets; see stashed): null when none are held.
   */
  stash: Stashed[] | null = null;
  stashBytes = 0;
  /**
   * An RST that waits for missing bytes (waitPackets): the packet count at which it closes
   * the connection anyway (0: none), its time, its side and its stream offset.
   */
  rstUntil = 0;
  rstSec = 0;
  rstNsec = 0;
  rstDir = 0;
  rstOff = 0;
  /** Out-of-order bytes held in both directions. */
  buffered = 0;
  /** Latest capture time (seconds) of the connection's packets, and whether time ever went back. */
  lastT = -Infinity;
  disordered = false;

  constructor(flow: Flow, sec: number, nsec: number) {
    this.flow = flow;
    this.firstSec = sec;
    this.firstNsec = nsec;
  }
}

/** The largest window a receiver can offer: 65535 unscaled, 65535 << 14 scaled (RFC 7323). */
const MAX_WINDOW = 65535;
const MAX_SCALED_WINDOW = 65535 * 2 ** 14;

/**
 * windowBound is how far past the receiver's left window edge sender `d` could possibly send:
 * 65535 when window scaling is known to be off (a SYN without the option: scaling needs both),
 * 65535 << the receiver's shift when both SYNs carried it, else the largest scaled window.
 */
export function windowBound(d: Side, o: Side): number {
  const dOff = d.optsSeen && d.opts.wscale === undefined;
  const oOff = o.optsSeen && o.opts.wscale === undefined;
  if (dOff || oOff) return MAX_WINDOW;
  if (d.optsSeen && o.optsSeen) return MAX_WINDOW * 2 ** Math.min(o.opts.wscale ?? 0, 14);
  return MAX_SCALED_WINDOW;
}

/**
 * WaitQueue: connections (with a side index) that wait until a packet count, in the order they
 * were pushed, which is the order of their counts (each is the count then plus one fixed wait).
 * The reassembler keeps one per kind of wait (stash, provisional start, acknowledged hole, RST).
 * An entry whose wait was ended or renewed meanwhile is still popped: the caller checks `at`
 * against the connection's own count.
 */
export class WaitQueue {
  private conns: Array<Conn | null> = [];
  private dirs: number[] = [];
  private ats: number[] = [];
  private head = 0;
  /** The entry popDue took last: its connection, side index and packet count. */
  conn: Conn | null = null;
  dir = 0;
  at = 0;

  /** headAt: the count of the first entry (the next one due: counts are pushed in order); Infinity when none. */
  get headAt(): number {
    return this.head < this.conns.length ? this.ats[this.head]! : Infinity;
  }

  /** pending: some entry is queued. */
  get pending(): boolean {
    return this.head < this.conns.length;
  }

  push(c: Conn, dir: number, at: number): void {
    this.conns.push(c);
    this.dirs.push(dir);
    this.ats.push(at);
  }

  /** popDue takes the first entry into conn, dir and at when its count is `now` or less; false when none is due. */
  popDue(now: number): boolean {
    const h = this.head;
    if (h >= this.conns.length || this.ats[h]! > now) return false;
    this.conn = this.conns[h]!;
    this.dir = this.dirs[h]!;
    this.at = this.ats[h]!;
    this.conns[h] = null;
    this.head = h + 1;
    if (this.head === this.conns.length) {
      this.conns = [];
      this.dirs = [];
      this.ats = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.conns.length) {
      this.conns = this.conns.slice(this.head);
      this.dirs = this.dirs.slice(this.head);
      this.ats = this.ats.slice(this.head);
      this.head = 0;
    }
    return true;
  }
}
