/**
 * TcpReassembler turns demuxed TCP segments (packets with `flow` and `dir` set by TcpDemux) into
 * each connection's two byte streams, as StreamEvent batches: one output batch per input batch
 * (none when a batch produced no event), and the rest from `end()`.
 *
 * Contract, per connection:
 * - `open` first (held back while only SYN/SYN-ACK without data were seen, so it carries both
 *   sides' options; at the latest it comes just before the first other event), `close` last,
 *   and nothing for the connection after its close.
 * - `data` events in stream order per direction; offsets count bytes from the first byte after
 *   the SYN (or from the first segment seen when the SYN was not: midstream). In-order payloads are
 *   passed as views of the packet; only out-of-order bytes are copied (SegmentBuffer). With
 *   `chunking: 'push'` a direction's in-order bytes are grouped until a segment with PSH (or
 *   `pushMaxBytes`, a gap, the FIN or the close), one copy per grouped chunk.
 * - A hole is never filled: when bytes beyond it must be delivered, a `gap` event (offset, len,
 *   reason) comes first. Reasons: `acked` (the peer acknowledged bytes never captured; taken
 *   when the sender's next segment comes past them or the ACK covers its FIN, since captures
 *   sometimes show an ACK just before the data it acknowledges; at the latest at the close), `fin` /
 *   `rst` / `idle` / `eof` / `evicted` (the connection ended), `limit` (a buffer limit), `truncated`
 *   (the snaplen cut them: payloadLen > payload.length).
 * - Retransmitted and duplicate bytes are dropped (counted). Overlaps between out-of-order bytes
 *   held and new ones follow `overlap` (`first`, default: held bytes win; `last`: new bytes win)
 *   with an `overlap` event when the bytes differ. Bytes already delivered always win (the
 *   receiving TCP had already accepted them): a later segment that differs from them gives an
 *   `overlap` event with `kept: 'first'` whatever the policy, as long as those bytes are still
 *   kept for the check (as views, until the peer ACKs them, at most `overlapCheckBytes` per
 *   direction, and only when the peer's packets are in the capture).
 * - Data on a SYN (TCP Fast Open) is stream data. Keepalives (0 or 1 byte at next-1) and
 *   zero-window probes (1 byte at next while the peer advertises window 0) are not data.
 * - Close reasons: `fin` (FIN both ways and all bytes up to each FIN delivered, or FIN both ways
 *   when the connection is ended otherwise), `rst` (an RST; its payload is delivered first, as
 *   tshark shows it; bytes the peer sends after it, in flight when it was sent, are not taken,
 *   while tshark shows them), `idle` / `evicted` (the demux ended the flow: idle timeout, connection limit,
 *   or 4-tuple reuse by a new SYN, which is reported as `evicted`), `eof` (end of input).
 *   An RST or a bare FIN from a side that has not answered the peer's SYN yet does not end the
 *   connection at once (a refused connection, or an evasion that goes on with a SYN-ACK): an RST
 *   so held closes the connection as `rst` only when it ends otherwise.
 * - Junk: a segment that starts further past the receiver's left window edge (the highest of the
 *   next byte due and the highest ACK seen) than any window it could have offered (65535 when a
 *   SYN shows window scaling off, 65535 << the receiver's shift when both SYNs carry it, else
 *   65535 << 14) is not buffered: it is set aside, and dropped (stats `outOfWindow`) unless the
 *   next such segment continues it exactly, which shows that the stream really went there (a
 *   capture that lost more than a window and every ACK in between). Its FIN is ignored.
 * - Reordered captures: a hole the peer acknowledged is skipped when the sender goes past it with
 *   a segment captured at or after the ACK's time, not with one that was sent before (a shuffled
 *   or merged capture); once a connection's capture times went backwards, a hole before an
 *   acknowledged FIN likewise waits for a packet the sender sent after the ACK, or the close
 *   (reason `acked` either way), since the missing segments may still come.
 * - Limits: out-of-order bytes per connection (`maxBufferedPerConnection`, default 4 MiB) and in
 *   all (`maxBufferedTotal`, default 64 MiB). Going over one forces delivery past the oldest hole
 *   (a `gap` with reason `limit`, counted in `limitHits`) until back under it.
 *
 * Throws PcapflowError INVALID_OPTION for bad options; nothing per packet. Pure: no node:* import.
 */
import {
  formatTs,
  type CloseReason,
  type GapReason,
  type StreamEvent,
} from './events.js';
import type { Flow } from './flow.js';
import { EMPTY, Packet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from './packet.js';
import {
  checkReassemblerOptions,
  newReassemblerStats,
  type TcpReassemblerOptions,
  type TcpReassemblerStats,
} from './reassembler-options.js';
import { Conn, Side, synOptions, WaitQueue, windowBound } from './reassembler-state.js';
import { SentViews, sentDiff } from './reassembler-sent.js';
import { seqAdd, seqDiff } from './seq.js';
import type { Stage } from './stage.js';
import { copyBytes } from './stream-buffer.js';
import { SynTable } from './syn-table.js';

export { REASSEMBLER_DEFAULTS, type TcpReassemblerOptions, type TcpReassemblerStats } from './reassembler-options.js';

/** Connections closed per output batch by end(). */
const END_BATCH = 2048;

/** Most packets and bytes one connection holds while its SYN may still come. */
const STASH_PACKETS = 32;
const STASH_BYTES = 64 * 1024;


export class TcpReassembler implements Stage<Packet[], StreamEvent[]> {
  readonly options: Readonly<Required<TcpReassemblerOptions>>;
  readonly stats: TcpReassemblerStats = newReassemblerStats();

  /** Open connections (full or SYN-only). */
  private readonly live = new Set<Conn>();
  /** Open connections that showed only a SYN so far (see SynTable). */
  private readonly syn = new SynTable();
  /** end(): the connections left to close, in order of first packet (flow id); null before end. */
  private ending: Array<Flow | null> | null = null;
  private endAt = 0;
  /** Delivered views kept for overlap checks (reassembler-sent.ts). */
  private readonly sent = new SentViews();
  /** Packets seen (every packet given to write), for waitPackets. */
  private packetNo = 0;
  /** Sides whose start is provisional (Side.provisional). */
  private readonly provQ = new WaitQueue();
  /** Sides whose acknowledged hole waits (Side.skipUntil). */
  private readonly skipQ = new WaitQueue();
  /** Connections whose packets are stashed (Conn.stash), until they are taken anyway. */
  private readonly stashQ = new WaitQueue();
  /** Bytes of all stashes (at most an eighth of maxBufferedTotal: past it, new connections are not stashed). */
  private stashBytes = 0;
  /** The packet replay() fills from a stashed one. */
  private readonly scratch = new Packet();
  /** Connections whose RST waits (Conn.rstUntil). */
  private readonly rstQ = new WaitQueue();
  /** Connections holding out-of-order bytes, oldest first (the total limit trims these). */
  private readonly holding = new Set<Conn>();
  /** Events of the batch being handled. */
  private out: StreamEvent[] = [];

  /** Stream offset from which bytes are not kept: maxBytes, or Infinity. */
  private readonly keepTo: number;

  constructor(options: TcpReassemblerOptions = {}) {
    this.options = checkReassemblerOptions(options);
    this.keepTo = this.options.maxBytes > 0 ? this.options.maxBytes : Infinity;
  }

  /**
   * trackChunks makes the reassembler note, per side, the first view it keeps for overlap checks
   * whose buffer `isChunk` calls a read chunk, so that oldestKeptChunk can tell a pool of read
   * chunks which ones it still reads. `isChunk` must never say yes to a buffer it once said no to
   * (ChunkPool.owns: a chunk, once forgotten, is never handed out again). Set before the first
   * packet.
   */
  trackChunks(isChunk: (buf: ArrayBufferLike) => boolean): void {
    this.sent.track(isChunk);
  }

  /**
   * oldestKeptChunk: the lowest `rank` of the read chunks (see trackChunks) that the views kept
   * for overlap checks belong to; Infinity when none. Relies on delivered views coming in read
   * order (plain chunking: a data view is always of the packet being processed): a side whose
   * views began at a later chunk generation holds no older chunk, so the scan of the trim queue
   * stops there.
   */
  oldestKeptChunk(rank: (buf: ArrayBufferLike) => number): number {
    return this.sent.oldestChunk(rank);
  }

  write(batch: Packet[], emit: (out: StreamEvent[]) => void): void {
    for (let i = 0; i < batch.length; i++) this.packet(batch[i]!);
    this.batchDone();
    this.flushOut(emit);
  }

  /**
   * end closes every open connection (reason eof unless FIN both ways or a held RST), in order of
   * first packet, flushing all: one output batch per END_BATCH connections.
   */
  end(emit: (out: StreamEvent[]) => void): void {
    while (!this.endSome(emit, END_BATCH));
  }

  /**
   * endSome is end() in steps, for a caller that waits for its consumer between them (the
   * Transform does): it closes up to `max` more connections, emits their events as one batch,
   * and returns true once every connection is closed.
   */
  endSome(emit: (out: StreamEvent[]) => void, max: number): boolean {
    if (this.ending === null) {
      const flows: Flow[] = [];
      for (const c of this.live) flows.push(c.flow);
      for (const f of this.syn.flows) if (f !== null) flows.push(f);
      this.ending = flows.sort((a, b) => a.id - b.id);
      this.endAt = 0;
    }
    const list = this.ending;
    const stop = Math.min(list.length, this.endAt + Math.max(1, max));
    for (; this.endAt < stop; this.endAt++) {
      const f = list[this.endAt]!;
      list[this.endAt] = null; // let it go once closed
      const state = f.state as Conn | number | null;
      if (f.closed || state === null) continue;
      if (typeof state === 'number') {
        this.closeSyn(state, 'eof', this.syn.lastSec[state]!, this.syn.lastNsec[state]!);
      } else {
        const c = state;
        this.close(c, 'eof', c.sides[0].lastSec >= c.sides[1].lastSec ? c.sides[0].lastSec : c.sides[1].lastSec, this.lastNsec(c));
      }
    }
    this.flushOut(emit);
    return this.endAt >= list.length;
  }

  private flushOut(emit: (out: StreamEvent[]) => void): void {
    if (this.out.length > 0) {
      const out = this.out;
      this.out = [];
      emit(out);
    }
  }

  private lastNsec(c: Conn): number {
    const a = c.sides[0];
    const b = c.sides[1];
    if (a.lastSec > b.lastSec) return a.lastNsec;
    if (b.lastSec > a.lastSec) return b.lastNsec;
    return a.lastNsec > b.lastNsec ? a.lastNsec : b.lastNsec;
  }

  private packet(pkt: Packet): void {
    this.advance(this.packetNo + 1);
    const expired = pkt.expired;
    if (expired !== null) {
      for (let i = 0; i < expired.length; i++) this.closeEnded(expired[i]!, pkt.tsSec, pkt.tsNsec);
    }
    this.own(pkt);
  }

  // A shard worker (core/shard-reassembly.ts) drives the three steps of packet() itself, with the
  // packet counts of the whole input, so that its events are those one reassembler would emit.

  /** nextDue: the packet count at which the next wait (waitPackets) ends; Infinity when none waits. */
  nextDue(): number {
    return Math.min(this.stashQ.headAt, this.provQ.headAt, this.skipQ.headAt, this.rstQ.headAt);
  }

  /**
   * advance is packet()'s first step as at the n-th packet of the input (n at least the last
   * count given): the waits due by then end. Their events are taken with moveEvents.
   */
  advance(n: number): void {
    this.packetNo = n;
    if (this.stashQ.pending) this.expireStashes();
    if (this.provQ.pending) this.expireProvisional();
    if (this.skipQ.pending) this.expireSkips();
    if (this.rstQ.pending) this.expireRst();
  }

  /** closeEnded is packet()'s second step for one flow of `pkt.expired`: the demux ended it (closed as idle or evicted at sec, nsec). */
  closeEnded(f: Flow, sec: number, nsec: number): void {
    const c = f.state as Conn | number | null;
    if (c === null || f.closed) return;
    const why = f.endedBy === 'idle' ? 'idle' : 'evicted';
    if (typeof c === 'number') this.closeSyn(c, why, sec, nsec);
    else this.close(c, why, sec, nsec);
  }

  /** moveEvents appends the events emitted since the last call (by advance, closeEnded, own) to `dst`; returns how many. */
  moveEvents(dst: StreamEvent[]): number {
    const out = this.out;
    const n = out.length;
    for (let i = 0; i < n; i++) dst.push(out[i]!);
    out.length = 0;
    return n;
  }

  /** batchDone is what write() does after a batch's packets (drops delivered views kept too long, see SentViews.trim). */
  batchDone(): void {
    if (this.sent.pending) this.stats.sentTrimmed += this.sent.trim();
  }

  /** own is packet()'s last step: the packet's own segment (after advance and closeEnded). */
  own(pkt: Packet): void {
    const sec = pkt.tsSec;
    const nsec = pkt.tsNsec;
    const flow = pkt.flow;
    if (flow === null) {
      if (pkt.skip !== 'tick') this.stats.ignored++;
      return;
    }
    if (flow.closed) {
      this.stats.afterClose++;
      return;
    }
    this.stats.packets++;
    const flags = pkt.flags;
    const len = pkt.payloadLen;
    const t = sec + nsec * 1e-9;
    let state = flow.state as Conn | number | null;
    if (state === null) {
      this.stats.connections++;
      if (flags & TCP_SYN && len === 0 && !(flags & (TCP_FIN | TCP_RST))) {
        // Only a SYN so far: a row in the SynTable, all a SYN flood leaves behind.
        flow.state = this.syn.add(flow, pkt, t);
        this.stats.synOnly++;
        return;
      }
      state = new Conn(flow, sec, nsec);
      flow.state = state;
      this.live.add(state);
      if (!(flags & TCP_SYN) && this.options.waitPackets > 0 && this.stashBytes < this.options.maxBufferedTotal >> 3) {
        // no SYN seen yet: it may still come (a reordered capture), so wait before starting midstream
        state.stash = [];
        this.stashQ.push(state, 0, this.packetNo + this.options.waitPackets);
      }
    } else if (typeof state === 'number') {
      const syn = this.syn;
      const r = state;
      if (pkt.dir === syn.dir[r] && flags & TCP_SYN && len === 0 && !(flags & (TCP_FIN | TCP_RST)) && pkt.seq === syn.seq[r] && t >= syn.lastT[r]!) {
        // the same SYN again
        syn.packets[r]!++;
        syn.lastSec[r] = sec;
        syn.lastNsec[r] = nsec;
        syn.lastT[r] = t;
        syn.win[r] = pkt.win;
        return;
      }
      state = this.upgrade(r, flow);
    }
    const c = state;
    if (c.stash !== null && this.stashed(c, pkt)) return;
    this.take(c, pkt);
  }

  /** take handles a packet of connection `c` (a Conn, not stashed): the stream logic. */
  private take(c: Conn, pkt: Packet): void {
    const sec = pkt.tsSec;
    const nsec = pkt.tsNsec;
    const flags = pkt.flags;
    const len = pkt.payloadLen;
    const t = sec + nsec * 1e-9;
    if (t >= c.lastT) c.lastT = t;
    else if (!c.disordered) {
      c.disordered = true;
      this.stats.disordered++;
    }
    const dir = pkt.dir;
    const d = c.sides[dir];
    const o = c.sides[dir ^ 1]!;
    d.packets++;
    if (d.firstSec < 0) {
      d.firstSec = sec;
      d.firstNsec = nsec;
    }
    d.lastSec = sec;
    d.lastNsec = nsec;
    d.win = pkt.win;

    if (flags & TCP_SYN && !d.optsSeen) {
      d.optsSeen = true;
      d.opts = synOptions(pkt);
    }
    if (!c.opened && !(flags & TCP_SYN && len === 0)) this.open(c);

    // What this side acknowledges of the peer's stream: a hole the peer got past is a gap.
    if (flags & TCP_ACK) {
      if (o.synced) this.acked(c, o, pkt.ack, sec, nsec, t);
      else if (!o.ackLowSet || seqDiff(pkt.ack, o.ackLow) < 0) {
        // the lowest ACK of o's stream before it starts: o sent the bytes from there
        o.ackLow = pkt.ack;
        o.ackLowSet = true;
      }
    }

    // Where this side's stream starts.
    if (!d.synced) {
      if (flags & TCP_SYN) {
        d.sawSyn = true;
        d.sync(seqAdd(pkt.seq, 1));
      } else if (len === 0 && (o.sawSyn || !(flags & (TCP_FIN | TCP_RST)))) {
        // A pure ACK says nothing about where data starts; an RST or bare FIN from a side that
        // has not answered the peer's SYN is held (RST) or ignored (FIN), see the class comment.
        if (flags & TCP_RST) {
          c.heldRst = dir + 1;
          this.stats.heldRst++;
        } else if (flags & TCP_FIN) {
          this.stats.ignoredFin++;
        }
        return;
      } else {
        // The first segment seen: the stream starts there, or at the lowest ACK of it the peer
        // sent before, when that is a little lower (the bytes in between were sent and not seen
        // yet: a reordered capture, or lost; tshark's base takes the peer's first ACK too).
        const back = d.ackLowSet ? seqDiff(pkt.seq, d.ackLow) : 0;
        d.sync(back > 0 && back <= windowBound(d, o) ? d.ackLow : pkt.seq);
        this.provisional(c, d);
      }
      if (c.heldRst === dir + 1) c.heldRst = 0;
    } else if (flags & TCP_SYN) {
      d.sawSyn = true;
      const isn1 = seqAdd(pkt.seq, 1);
      if (d.provisional) {
        // the start taken from a segment: the SYN says where it really is
        const back = seqDiff(d.base, isn1);
        if (back > 0 && back <= windowBound(d, o)) d.rebase(back);
        this.endProvisional(c, d);
      }
      // A SYN with another ISN before any byte was delivered (SYN-ACK after stray segments): restart.
      if (isn1 !== d.base && d.nextOff === 0 && d.buf.count === 0 && d.gaps === 0) {
        d.sync(isn1);
        if (d.finKnown) {
          d.finOff = seqDiff(d.finSeq, isn1);
          d.finDone = d.finOff <= 0;
        }
      }
    }

    // a SYN-ACK acknowledges the peer's ISN + 1: where the peer's stream starts, if not known yet
    // (its SYN was not seen, or comes later in a reordered capture)
    if ((flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) {
      if (!o.synced) o.sync(pkt.ack);
      else if (o.provisional) {
        const back = seqDiff(o.base, pkt.ack);
        if (back > 0 && back <= windowBound(o, d)) o.rebase(back);
        this.endProvisional(c, o);
      }
    }
    const segSeq = flags & TCP_SYN ? seqAdd(pkt.seq, 1) : pkt.seq;
    // stream offset, from the nearest known point: the next byte due, or past a hole that waits
    // (waitPackets) the highest acknowledged byte, which may be more than 2^31 ahead of it
    const off = d.ackedOff > d.nextOff ? d.ackedOff + seqDiff(segSeq, seqAdd(d.base, d.ackedOff)) : d.nextOff + seqDiff(segSeq, d.nextSeq);
    let junk = false;
    if (len <= 1 && off === d.nextOff - 1 && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
      this.stats.keepalives++;
    } else if (len > 0) {
      const psh = (flags & TCP_PSH) !== 0;
      if (len === 1 && off === d.nextOff && o.win === 0 && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        this.stats.zeroWindowProbes++;
      } else if (off > d.nextOff && off - (d.ackedOff > d.nextOff ? d.ackedOff : d.nextOff) > windowBound(d, o)) {
        junk = this.outOfWindow(c, d, off, pkt.payload, len, (flags & TCP_FIN) !== 0, sec, nsec, psh);
        if (!junk) this.segment(c, d, off, pkt.payload, len, sec, nsec, psh);
      } else {
        this.segment(c, d, off, pkt.payload, len, sec, nsec, psh);
      }
    }
    if (c.disordered && d.finKnown && !d.finDone && d.ackedOff >= d.finOff && d.finOff > d.nextOff && t >= d.ackedT) {
      // d sent this after the ACK of its FIN, and the hole before the FIN is still open
      this.waitSkip(c, d, d.finOff, sec, nsec);
    }
    if (flags & TCP_RST) {
      if (c.rstUntil === 0 && this.options.waitPackets > 0 && this.missingBeforeRst(c, d, off)) {
        // bytes are missing before it that may still come (see waitPackets)
        c.rstUntil = this.packetNo + this.options.waitPackets;
        c.rstSec = sec;
        c.rstNsec = nsec;
        c.rstDir = dir;
        c.rstOff = off;
        this.rstQ.push(c, dir, c.rstUntil);
        this.stats.rstWaited++;
        return;
      }
      if (c.rstUntil === 0) {
        this.close(c, 'rst', sec, nsec);
        return;
      }
    }
    if (c.rstUntil !== 0) {
      // a packet of a connection whose RST waits: it closes once nothing is missing
      if (!this.missingBeforeRst(c, c.sides[c.rstDir]!, c.rstOff)) {
        this.stats.rstWaitFilled++;
        this.close(c, 'rst', c.rstSec, c.rstNsec);
      }
      return;
    }
    if (flags & TCP_FIN && !d.finKnown && !junk) {
      d.finKnown = true;
      d.finOff = off + len;
      d.finSeq = seqAdd(segSeq, len);
    }
    if (d.finKnown && !d.finDone) this.checkFin(c, d);
    if (d.finDone && o.finDone) this.close(c, 'fin', sec, nsec);
  }

  /**
   * stashed handles a packet of a connection whose packets are stashed (first seen without a
   * SYN): another packet is stashed (a copy; true); a SYN or SYN-ACK, the connection's start
   * captured late, is taken first and the stashed packets after it, so that the connection is
   * not midstream and its offsets count from the SYN (true); when the stash is full it is taken
   * as it is and false is returned (the caller takes the packet).
   */
  private stashed(c: Conn, pkt: Packet): boolean {
    const stash = c.stash!;
    const flags = pkt.flags;
    if (!(flags & TCP_SYN)) {
      const n = pkt.payload.length;
      if (stash.length < STASH_PACKETS && c.stashBytes + n <= STASH_BYTES) {
        stash.push({
          sec: pkt.tsSec,
          nsec: pkt.tsNsec,
          flags,
          seq: pkt.seq,
          ack: pkt.ack,
          win: pkt.win,
          dir: pkt.dir,
          payloadLen: pkt.payloadLen,
          payload: n === 0 ? EMPTY : copyBytes(pkt.payload, 0, n),
        });
        c.stashBytes += n;
        this.stashBytes += n;
        return true;
      }
      this.replay(c);
      return false;
    }
    // the SYN (or SYN-ACK) of a connection first seen without one
    c.flow.midstream = false;
    this.stats.lateSyn++;
    const first = c.firstSec + c.firstNsec * 1e-9;
    if (pkt.tsSec + pkt.tsNsec * 1e-9 < first) {
      c.firstSec = pkt.tsSec;
      c.firstNsec = pkt.tsNsec;
    }
    c.stash = null;
    this.take(c, pkt);
    c.stash = stash;
    this.replay(c);
    return true;
  }

  /** replay takes the stashed packets of `c`, in the order they came, and forgets the stash. */
  private replay(c: Conn): void {
    const stash = c.stash;
    if (stash === null) return;
    c.stash = null;
    this.stashBytes -= c.stashBytes;
    c.stashBytes = 0;
    // where each side's stream starts, from all the packets held: the lowest data sequence number
    // or, a little lower, the lowest ACK of it (as take() does for the packets before the first)
    for (let dir = 0; dir < 2; dir++) {
      const d = c.sides[dir]!;
      if (d.synced) continue;
      let low = 0;
      let lowSet = false;
      for (let i = 0; i < stash.length; i++) {
        const s = stash[i]!;
        if (s.dir === dir && s.payloadLen > 0 && !(s.flags & (TCP_SYN | TCP_RST)) && (!lowSet || seqDiff(s.seq, low) < 0)) {
          low = s.seq;
          lowSet = true;
        }
        if (s.dir !== dir && s.flags & TCP_ACK && (!d.ackLowSet || seqDiff(s.ack, d.ackLow) < 0)) {
          d.ackLow = s.ack;
          d.ackLowSet = true;
        }
      }
      if (!lowSet) continue;
      const back = d.ackLowSet ? seqDiff(low, d.ackLow) : 0;
      d.sync(back > 0 && back <= windowBound(d, c.sides[dir ^ 1]!) ? d.ackLow : low);
      this.provisional(c, d);
    }
    const p = this.scratch;
    p.flow = c.flow;
    for (let i = 0; i < stash.length; i++) {
      if (c.flow.closed) {
        this.stats.afterClose++;
        continue;
      }
      const s = stash[i]!;
      p.tsSec = s.sec;
      p.tsNsec = s.nsec;
      p.flags = s.flags;
      p.seq = s.seq;
      p.ack = s.ack;
      p.win = s.win;
      p.dir = s.dir;
      p.payloadLen = s.payloadLen;
      p.payload = s.payload;
      this.take(c, p);
    }
    p.flow = null;
    p.payload = EMPTY;
  }

  /** expireStashes takes the stashes that waited waitPackets packets: those connections start midstream. */
  private expireStashes(): void {
    const q = this.stashQ;
    while (q.popDue(this.packetNo)) {
      const c = q.conn!;
      if (c.stash !== null && !c.flow.closed) this.replay(c);
    }
  }


  /**
   * missingBeforeRst: bytes are missing that were sent before side `d`'s RST at stream offset
   * `off` and may still come: a hole before `off` (within a window of it), out-of-order bytes
   * held in either direction, or bytes either side acknowledged and the capture has not shown.
   */
  private missingBeforeRst(c: Conn, d: Side, off: number): boolean {
    const o = c.sides[d === c.sides[0] ? 1 : 0];
    if (d.synced && off > d.nextOff && off - d.nextOff <= windowBound(d, o)) return true;
    for (const s of c.sides) {
      if (s.synced && (s.buf.count > 0 || s.ackedOff > s.nextOff)) return true;
    }
    return false;
  }

  /** provisional: side d's start was taken from a segment: hold its bytes for waitPackets packets (see Side.provisional). */
  private provisional(c: Conn, d: Side): void {
    const wait = this.options.waitPackets;
    if (wait === 0) return;
    d.provisional = true;
    d.provUntil = this.packetNo + wait;
    this.provQ.push(c, d === c.sides[0] ? 0 : 1, d.provUntil);
  }

  /** endProvisional: side d's start is settled: deliver what is contiguous from it. */
  private endProvisional(c: Conn, d: Side): void {
    if (!d.provisional) return;
    d.provisional = false;
    d.provUntil = 0;
    this.drain(c, d);
    if (d.finKnown && !d.finDone) this.checkFin(c, d);
  }

  /** expireProvisional settles the starts taken from segments waitPackets packets ago (and closes a connection that finished meanwhile). */
  private expireProvisional(): void {
    const q = this.provQ;
    while (q.popDue(this.packetNo)) {
      const c = q.conn!;
      const d = c.sides[q.dir]!;
      if (!d.provisional || d.provUntil !== q.at || c.flow.closed) continue;
      this.endProvisional(c, d);
      this.settle(c, d.lastSec, d.lastNsec);
    }
  }

  /**
   * settle closes `c` when a wait that ended leaves nothing to wait for: its RST waited for bytes
   * that are all there now (closed as at the RST), or FIN both ways is done (closed at sec, nsec).
   */
  private settle(c: Conn, sec: number, nsec: number): void {
    if (c.rstUntil !== 0) {
      if (!this.missingBeforeRst(c, c.sides[c.rstDir]!, c.rstOff)) this.close(c, 'rst', c.rstSec, c.rstNsec);
    } else if (c.sides[0].finDone && c.sides[1].finDone) this.close(c, 'fin', sec, nsec);
  }


  /**
   * waitSkip: the hole of side d below `to` is to become an `acked` gap: at once with waitPackets
   * 0, else once waitPackets more packets have passed (expireSkips), unless the bytes came.
   */
  private waitSkip(c: Conn, d: Side, to: number, sec: number, nsec: number): void {
    const wait = this.options.waitPackets;
    if (wait === 0) {
      this.skipTo(c, d, to, 'acked', sec, nsec);
      if (d.finKnown && !d.finDone) this.checkFin(c, d);
      return;
    }
    if (d.skipUntil !== 0) {
      if (d.nextOff < d.skipTarget) {
        // the hole that waits is still open: this one waits after it
        if (to > d.skipMore) d.skipMore = to;
        return;
      }
      d.skipUntil = 0; // it filled: this one waits from now
    }
    d.skipTarget = to;
    d.skipMore = 0;
    d.skipUntil = this.packetNo + wait;
    d.skipSec = sec;
    d.skipNsec = nsec;
    this.skipQ.push(c, d === c.sides[0] ? 0 : 1, d.skipUntil);
  }

  /** expireSkips turns the acknowledged holes that waited waitPackets packets into gaps (waitSkip), as at the packet that started the wait. */
  private expireSkips(): void {
    const q = this.skipQ;
    while (q.popDue(this.packetNo)) {
      const c = q.conn!;
      const d = c.sides[q.dir]!;
      if (c.flow.closed || d.skipUntil !== q.at) continue;
      d.skipUntil = 0;
      const sec = d.skipSec;
      const nsec = d.skipNsec;
      if (d.skipTarget > d.nextOff) this.skipTo(c, d, d.skipTarget, 'acked', sec, nsec);
      if (d.skipMore > d.nextOff) this.waitSkip(c, d, d.skipMore, sec, nsec);
      if (d.finKnown && !d.finDone) this.checkFin(c, d);
      this.settle(c, sec, nsec);
    }
  }


  /** expireRst closes the connections whose RST waited waitPackets packets (missingBeforeRst) as at the RST. */
  private expireRst(): void {
    const q = this.rstQ;
    while (q.popDue(this.packetNo)) {
      const c = q.conn!;
      if (c.rstUntil === q.at && !c.flow.closed) this.close(c, 'rst', c.rstSec, c.rstNsec);
    }
  }


  /** upgrade turns SynTable row `r` into the Conn its packets would have made (SynTable.toConn), in its place. */
  private upgrade(r: number, flow: Flow): Conn {
    const c = this.syn.toConn(r, flow);
    this.live.add(c);
    return c;
  }

  /** closeSyn closes the connection of SynTable row `r`: its open event, then its close (as close() would for the Conn). */
  private closeSyn(r: number, why: CloseReason, sec: number, nsec: number): void {
    this.syn.close(r, why, sec, nsec, this.out);
    this.stats.synOnlyClosed++;
    this.countClose(why);
  }

  private countClose(reason: CloseReason): void {
    const s = this.stats;
    if (reason === 'fin') s.closedFin++;
    else if (reason === 'rst') s.closedRst++;
    else if (reason === 'idle') s.idleClosed++;
    else if (reason === 'evicted') s.evicted++;
    else s.closedEof++;
  }

  private open(c: Conn): void {
    c.opened = true;
    const f = c.flow;
    this.out.push({
      type: 'open',
      conn: f.id,
      ts: formatTs(c.firstSec, c.firstNsec),
      client: f.client,
      server: f.server,
      vlan: f.vlan,
      midstream: f.midstream,
      options: { c2s: { ...c.sides[0].opts }, s2c: { ...c.sides[1].opts } },
    });
  }

  /**
   * outOfWindow handles a segment that starts beyond any window the receiver could have offered.
   * It is set aside (copied) in place of the one set aside before, which is dropped (counted in
   * `outOfWindow`), and true is returned: the caller ignores the segment's FIN, which is kept
   * with it. When it continues exactly the one set aside, the stream really went there (the
   * capture lost more than a window and every ACK that would show it): that one is taken and
   * false is returned, so the caller takes this one too. An ACK past its start also takes it
   * (acked()).
   */
  private outOfWindow(c: Conn, d: Side, off: number, payload: Uint8Array, len: number, fin: boolean, sec: number, nsec: number, psh: boolean): boolean {
    if (d.junkOff >= 0 && !d.junkFin && off === d.junkOff + d.junkLen) {
      this.takeJunk(c, d);
      return false;
    }
    if (d.junkOff >= 0) this.stats.outOfWindow++;
    d.junkOff = off;
    d.junkLen = len;
    d.junkData = copyBytes(payload, 0, len < payload.length ? len : payload.length);
    d.junkSec = sec;
    d.junkNsec = nsec;
    d.junkPsh = psh;
    d.junkFin = fin;
    return true;
  }

  /** takeJunk takes the segment set aside by outOfWindow() (and its FIN) after all. */
  private takeJunk(c: Conn, d: Side): void {
    const off = d.junkOff;
    const len = d.junkLen;
    const data = d.junkData;
    d.junkOff = -1;
    d.junkData = EMPTY;
    this.segment(c, d, off, data, len, d.junkSec, d.junkNsec, d.junkPsh);
    if (d.junkFin && !d.finKnown) {
      d.finKnown = true;
      d.finOff = off + len;
      d.finSeq = seqAdd(d.base, off + len);
    }
    if (d.finKnown && !d.finDone) this.checkFin(c, d);
  }

  /** segment takes `len` bytes at stream offset `off` (`payload` holds the captured ones). */
  private segment(c: Conn, d: Side, off: number, payload: Uint8Array, len: number, sec: number, nsec: number, psh: boolean): void {
    if (d.provisional && off < 0 && -off <= windowBound(d, c.sides[d === c.sides[0] ? 1 : 0])) {
      // bytes before the start taken from a later segment: the stream starts here
      d.rebase(-off);
      off = 0;
    }
    const end = off + len;
    if (off > d.nextOff && d.ackedOff > d.nextOff && sec + nsec * 1e-9 >= d.ackedT) {
      // The peer acknowledged bytes that never came, and d sends past the hole after that ACK (a
      // segment captured later but sent before it, in a reordered capture, may still be followed
      // by the missing ones): the hole is a gap up to this segment (which may itself lie below
      // the ACK: a reordered or resent segment).
      this.waitSkip(c, d, off < d.ackedOff ? off : d.ackedOff, sec, nsec);
    }
    if (off < d.nextOff && d.holdsSent()) this.checkSent(c, d, off, payload, len, sec, nsec);
    if (end <= d.nextOff) {
      d.retransmitted++;
      this.stats.retransmitted++;
      return;
    }
    let present = payload.length < len ? payload.length : len;
    let data = present === payload.length ? payload : payload.subarray(0, present);
    if (off < d.nextOff) {
      const cut = d.nextOff - off;
      if (cut >= present) {
        data = payload.subarray(0, 0);
        present = 0;
      } else {
        data = data.subarray(cut);
        present -= cut;
      }
      off = d.nextOff;
    }
    const head = d.buf.first();
    if (off === d.nextOff && (head === null || head.off >= end) && !d.provisional) {
      // in order: pass the view on
      if (present > 0) this.deliver(c, d, off, data, sec, nsec, psh && present === end - off);
      if (off + present < end) this.gap(c, d, off + present, end - off - present, 'truncated', sec, nsec);
      d.nextOff = end;
      d.nextSeq = seqAdd(d.base, end);
      if (head !== null) this.drain(c, d);
      return;
    }
    const before = d.buf.cost;
    const added = d.buf.insert(off, end, data, sec, nsec, psh, this.options.overlap, this.keepTo);
    if (d.buf.diffStart >= 0) {
      d.overlaps++;
      this.stats.overlaps++;
      this.out.push({
        type: 'overlap',
        conn: c.flow.id,
        dir: d.name,
        offset: d.buf.diffStart,
        len: d.buf.diffEnd - d.buf.diffStart,
        ts: formatTs(sec, nsec),
        kept: this.options.overlap,
      });
    }
    if (added === 0) {
      d.retransmitted++;
      this.stats.retransmitted++;
    } else if (off > d.nextOff) {
      d.outOfOrder++;
      this.stats.outOfOrder++;
    }
    this.account(c, d.buf.cost - before);
    if (off === d.nextOff) this.drain(c, d);
    this.enforceLimits(c, d, sec, nsec);
    if (this.stats.bufferedBytes > this.stats.peakBufferedBytes) this.stats.peakBufferedBytes = this.stats.bufferedBytes;
  }

  /**
   * checkSent compares the part of a segment below d.nextOff with the delivered bytes still kept;
   * differing bytes give an overlap event (the delivered copy was kept: kept 'first').
   */
  private checkSent(c: Conn, d: Side, off: number, payload: Uint8Array, len: number, sec: number, nsec: number): void {
    const diff = sentDiff(d, off, payload, len);
    if (diff === null) return;
    d.overlaps++;
    this.stats.overlaps++;
    this.out.push({ type: 'overlap', conn: c.flow.id, dir: d.name, offset: diff.offset, len: diff.len, ts: formatTs(sec, nsec), kept: 'first' });
  }

  /** account records a change in held out-of-order bytes. */
  private account(c: Conn, delta: number): void {
    if (delta === 0) return;
    const was = c.buffered;
    c.buffered += delta;
    const s = this.stats;
    s.bufferedBytes += delta;
    if (was === 0 && c.buffered > 0) this.holding.add(c);
    else if (c.buffered === 0) this.holding.delete(c);
  }

  /** drain delivers the held segments that have become contiguous with d.nextOff. */
  private drain(c: Conn, d: Side): void {
    if (d.provisional) return;
    const buf = d.buf;
    const before = buf.cost;
    for (let s = buf.first(); s !== null && s.off <= d.nextOff; s = buf.first()) {
      buf.shift();
      if (s.end <= d.nextOff) continue;
      const cut = d.nextOff - s.off;
      if (s.capped) {
        d.capped += s.end - d.nextOff;
        this.stats.cappedBytes += s.end - d.nextOff;
      } else if (s.data === null) {
        this.gap(c, d, d.nextOff, s.end - d.nextOff, 'truncated', s.sec, s.nsec);
      } else {
        this.deliver(c, d, d.nextOff, cut > 0 ? s.data.subarray(cut) : s.data, s.sec, s.nsec, s.psh);
      }
      d.nextOff = s.end;
    }
    d.nextSeq = seqAdd(d.base, d.nextOff);
    this.account(c, buf.cost - before);
  }

  /** skipTo delivers everything below `to`, with a gap for each hole; then whatever is contiguous. */
  private skipTo(c: Conn, d: Side, to: number, reason: GapReason, sec: number, nsec: number): void {
    if (d.provisional) this.endProvisional(c, d);
    this.drain(c, d);
    while (d.nextOff < to) {
      const head = d.buf.first();
      const holeEnd = head === null || head.off > to ? to : head.off;
      if (holeEnd > d.nextOff) {
        this.gap(c, d, d.nextOff, holeEnd - d.nextOff, reason, sec, nsec);
        d.nextOff = holeEnd;
        d.nextSeq = seqAdd(d.base, holeEnd);
      }
      this.drain(c, d);
    }
  }

  /** acked handles an acknowledgment of side `o`'s stream. */
  private acked(c: Conn, o: Side, ack: number, sec: number, nsec: number, t: number): void {
    const diff = seqDiff(ack, o.nextSeq);
    if (o.holdsSent()) this.sent.drop(o, o.nextOff + diff, this.options.overlapCheckBytes);
    // from the highest acknowledged byte when a hole waits before it (see packet())
    let to = o.ackedOff > o.nextOff ? o.ackedOff + seqDiff(ack, seqAdd(o.base, o.ackedOff)) : o.nextOff + diff;
    if (to <= o.nextOff) return;
    // The peer acknowledged up to a segment set aside as out of window: the stream went there,
    // and the hole before it is acknowledged.
    if (o.junkOff >= 0 && to >= o.junkOff) {
      if (o.junkOff > o.ackedOff) o.ackedOff = o.junkOff;
      this.takeJunk(c, o);
    }
    if (o.finKnown && to > o.finOff) to = o.finOff;
    if (to > o.ackedOff) {
      o.ackedOff = to;
      o.ackedT = t;
    }
    // The hole is skipped when the FIN is acknowledged, or later when o sends past it (segment()):
    // captures sometimes show an ACK just before the data it acknowledges. In a connection whose
    // capture times went backwards, the data may come long after: the hole waits for a packet o
    // sent after the ACK (packet()), or the close.
    if (o.finKnown && to === o.finOff && to > o.nextOff && !c.disordered) this.waitSkip(c, o, to, sec, nsec);
  }

  /** checkFin marks side d finished once every byte up to its FIN was delivered. */
  private checkFin(c: Conn, d: Side): void {
    if (d.nextOff >= d.finOff) {
      d.finDone = true;
      if (d.pendLen > 0) this.flushPending(c, d);
    }
  }

  private enforceLimits(c: Conn, d: Side, sec: number, nsec: number): void {
    const per = this.options.maxBufferedPerConnection;
    while (c.buffered > per) {
      const side = d.buf.count > 0 ? d : c.sides[d === c.sides[0] ? 1 : 0];
      this.forceHole(c, side, sec, nsec);
    }
    const total = this.options.maxBufferedTotal;
    while (this.stats.bufferedBytes > total) {
      const victim = this.holding.values().next().value;
      if (victim === undefined) break;
      const side = victim.sides[0].buf.count > 0 ? victim.sides[0] : victim.sides[1];
      this.forceHole(victim, side, sec, nsec);
    }
  }

  /** forceHole skips the hole before side d's first held segment (reason limit). */
  private forceHole(c: Conn, d: Side, sec: number, nsec: number): void {
    const head = d.buf.first();
    if (head === null) return;
    this.stats.limitHits++;
    this.skipTo(c, d, head.off, 'limit', sec, nsec);
    this.drain(c, d);
    if (d.finKnown && !d.finDone) this.checkFin(c, d);
  }

  private deliver(c: Conn, d: Side, off: number, data: Uint8Array, sec: number, nsec: number, psh: boolean): void {
    const maxBytes = this.options.maxBytes;
    if (maxBytes > 0 && off + data.length > maxBytes) {
      const keep = off >= maxBytes ? 0 : maxBytes - off;
      d.capped += data.length - keep;
      this.stats.cappedBytes += data.length - keep;
      if (keep === 0) return;
      data = data.subarray(0, keep);
    }
    d.bytes += data.length;
    this.stats.bytes += data.length;
    const cap = this.options.overlapCheckBytes;
    if (cap > 0 && c.sides[d === c.sides[0] ? 1 : 0].packets > 0) this.sent.keep(d, off, data, cap);
    if (this.options.chunking === 'plain') {
      this.dataEvent(c, d, off, data, sec, nsec);
      return;
    }
    if (d.pendLen === 0) d.pendOff = off;
    (d.pend ??= []).push(data);
    d.pendLen += data.length;
    d.pendSec = sec;
    d.pendNsec = nsec;
    if (psh || d.pendLen >= this.options.pushMaxBytes) this.flushPending(c, d);
  }

  private flushPending(c: Conn, d: Side): void {
    const pend = d.pend!;
    let data: Uint8Array;
    if (pend.length === 1) {
      data = pend[0]!;
    } else {
      data = new Uint8Array(d.pendLen);
      let p = 0;
      for (let i = 0; i < pend.length; i++) {
        data.set(pend[i]!, p);
        p += pend[i]!.length;
      }
    }
    pend.length = 0;
    d.pendLen = 0;
    this.dataEvent(c, d, d.pendOff, data, d.pendSec, d.pendNsec);
  }

  private dataEvent(c: Conn, d: Side, off: number, data: Uint8Array, sec: number, nsec: number): void {
    this.stats.chunks++;
    this.out.push({ type: 'data', conn: c.flow.id, dir: d.name, offset: off, ts: formatTs(sec, nsec), data });
  }

  private gap(c: Conn, d: Side, off: number, len: number, reason: GapReason, sec: number, nsec: number): void {
    const maxBytes = this.options.maxBytes;
    if (maxBytes > 0 && off + len > maxBytes) {
      // nothing past the cap is kept, so nothing past it is missing
      if (off >= maxBytes) return;
      len = maxBytes - off;
    }
    if (d.pendLen > 0) this.flushPending(c, d);
    d.gaps++;
    d.missing += len;
    this.stats.gaps++;
    this.stats.missingBytes += len;
    this.out.push({ type: 'gap', conn: c.flow.id, dir: d.name, offset: off, len, ts: formatTs(sec, nsec), reason });
  }

  /** close flushes both directions (gaps carry `why` unless FIN both ways) and emits the close event. */
  private close(c: Conn, why: CloseReason, sec: number, nsec: number): void {
    if (c.stash !== null) {
      // the packets held while a SYN might come: taken before the connection ends
      this.replay(c);
      if (c.flow.closed) return;
    }
    const a = c.sides[0];
    const b = c.sides[1];
    let reason: CloseReason = why;
    if (why !== 'rst' && a.finKnown && b.finKnown) reason = 'fin';
    else if (why !== 'fin' && (c.heldRst !== 0 || c.rstUntil !== 0)) reason = 'rst';
    if (!c.opened) this.open(c);
    const gapReason: GapReason = why;
    for (const d of c.sides) {
      if (d.provisional) this.endProvisional(c, d);
      if (c.flow.closed) return;
      if (d.synced) {
        let to = d.buf.lastEnd();
        if (d.finKnown && d.finOff > to) to = d.finOff;
        // holes the peer acknowledged keep that reason
        if (d.ackedOff > d.nextOff) this.skipTo(c, d, d.ackedOff < to ? d.ackedOff : to, 'acked', sec, nsec);
        if (to > d.nextOff) this.skipTo(c, d, to, gapReason, sec, nsec);
      }
      if (d.junkOff >= 0) {
        this.stats.outOfWindow++;
        d.junkOff = -1;
        d.junkData = EMPTY;
      }
      if (d.pendLen > 0) this.flushPending(c, d);
      if (d.buf.count > 0) {
        this.account(c, -d.buf.cost);
        d.buf.clear();
      }
      if (d.holdsSent()) this.sent.drop(d, Infinity, 0);
      d.sentBytes = 0;
    }
    const f = c.flow;
    this.out.push({
      type: 'close',
      conn: f.id,
      ts: formatTs(sec, nsec),
      reason,
      client: f.client,
      server: f.server,
      vlan: f.vlan,
      c2s: a.summary(),
      s2c: b.summary(),
    });
    f.closed = true;
    f.state = null;
    this.live.delete(c);
    this.holding.delete(c);
    this.countClose(reason);
  }
}
