/**
 * SynTable: the reassembler's compact table of connections that have shown only a SYN (or
 * SYN-ACK), and what becomes of a row: a Conn (toConn) or an open and a close event (close).
 * Pure: no node:* import.
 */
import { formatTs, type CloseReason, type DirectionSummary, type StreamEvent, type TcpOptionsSeen } from './events.js';
import type { Flow } from './flow.js';
import { TCP_ACK, type Packet } from './packet.js';
import { Conn, NO_OPTIONS, NO_TRAFFIC } from './reassembler-state.js';
import { seqAdd } from './seq.js';
import { tcpOptions } from './tcp-decoder.js';

/**
 * SynTable holds the connections that have shown nothing but a SYN (or SYN-ACK) without data
 * from one side, and copies of it: what a SYN flood leaves behind by the million. One row per
 * connection in typed arrays, so such a connection costs no object here (`flow.state` holds its
 * row number); it becomes a full Conn (toConn) when any other packet of it comes, and a close
 * before that gives the same open and close events a Conn would (close).
 */
export class SynTable {
  /** The flow of each row; null for a free row. */
  flows: Array<Flow | null> = [];
  private readonly free: number[] = [];
  size = 0;
  firstSec = new Float64Array(0);
  lastSec = new Float64Array(0);
  lastT = new Float64Array(0);
  firstNsec = new Int32Array(0);
  lastNsec = new Int32Array(0);
  seq = new Uint32Array(0);
  /** The acknowledgment number of a SYN-ACK (the peer's ISN + 1), and whether the row's packet was one. */
  ack = new Uint32Array(0);
  synAck = new Uint8Array(0);
  win = new Int32Array(0);
  packets = new Int32Array(0);
  /** Direction of the SYN; its options: mss and wscale (-1: absent), sackPermitted (0/1). */
  dir = new Uint8Array(0);
  mss = new Int32Array(0);
  wscale = new Int32Array(0);
  sack = new Uint8Array(0);

  add(flow: Flow, pkt: Packet, t: number): number {
    let r = this.free.pop();
    if (r === undefined) {
      r = this.flows.length;
      if (r >= this.firstSec.length) this.grow(Math.max(1024, r * 2));
      this.flows.push(flow);
    } else {
      this.flows[r] = flow;
    }
    this.size++;
    this.firstSec[r] = this.lastSec[r] = pkt.tsSec;
    this.firstNsec[r] = this.lastNsec[r] = pkt.tsNsec;
    this.lastT[r] = t;
    this.seq[r] = pkt.seq;
    this.ack[r] = pkt.ack;
    this.synAck[r] = pkt.flags & TCP_ACK ? 1 : 0;
    this.win[r] = pkt.win;
    this.packets[r] = 1;
    this.dir[r] = pkt.dir;
    const o = tcpOptions(pkt);
    this.mss[r] = o.mss ?? -1;
    this.wscale[r] = o.wscale ?? -1;
    this.sack[r] = o.sackPermitted ? 1 : 0;
    return r;
  }

  remove(r: number): void {
    this.flows[r] = null;
    this.free.push(r);
    this.size--;
  }

  /** options: the SYN's options as the open event shows them (NO_OPTIONS when none). */
  options(r: number): TcpOptionsSeen {
    const mss = this.mss[r]!;
    const wscale = this.wscale[r]!;
    const sack = this.sack[r]!;
    if (mss < 0 && wscale < 0 && sack === 0) return NO_OPTIONS;
    const o: TcpOptionsSeen = {};
    if (mss >= 0) o.mss = mss;
    if (wscale >= 0) o.wscale = wscale;
    if (sack) o.sackPermitted = true;
    return o;
  }

  /**
   * toConn turns row `r` into the Conn that its packets would have made (the SYN's effects: that
   * side's counters, times, window, options and stream start), sets it as `flow.state` and frees
   * the row.
   */
  toConn(r: number, flow: Flow): Conn {
    const c = new Conn(flow, this.firstSec[r]!, this.firstNsec[r]!);
    c.lastT = this.lastT[r]!;
    const d = c.sides[this.dir[r]!]!;
    d.packets = this.packets[r]!;
    d.firstSec = this.firstSec[r]!;
    d.firstNsec = this.firstNsec[r]!;
    d.lastSec = this.lastSec[r]!;
    d.lastNsec = this.lastNsec[r]!;
    d.win = this.win[r]!;
    d.optsSeen = true;
    d.opts = this.options(r);
    d.sawSyn = true;
    d.sync(seqAdd(this.seq[r]!, 1));
    // a SYN-ACK acknowledges the peer's ISN + 1: where the peer's stream starts
    if (this.synAck[r]) c.sides[this.dir[r]! ^ 1]!.sync(this.ack[r]!);
    this.remove(r);
    flow.state = c;
    return c;
  }

  /**
   * close ends the connection of row `r` (reason `why`, at sec, nsec): pushes its open event and
   * then its close event (those a Conn with the same packets would give) to `out`, marks the
   * flow closed and frees the row.
   */
  close(r: number, why: CloseReason, sec: number, nsec: number, out: StreamEvent[]): void {
    const f = this.flows[r]!;
    const first = formatTs(this.firstSec[r]!, this.firstNsec[r]!);
    const opts = this.options(r);
    const dir = this.dir[r]!;
    const packets = this.packets[r]!;
    out.push({
      type: 'open',
      conn: f.id,
      ts: first,
      client: f.client,
      server: f.server,
      vlan: f.vlan,
      midstream: f.midstream,
      options: dir === 0 ? { c2s: opts, s2c: NO_OPTIONS } : { c2s: NO_OPTIONS, s2c: opts },
    });
    const sent: DirectionSummary = {
      bytes: 0,
      packets,
      retransmitted: 0,
      outOfOrder: 0,
      gaps: 0,
      missing: 0,
      overlaps: 0,
      firstTs: first,
      lastTs: packets === 1 ? first : formatTs(this.lastSec[r]!, this.lastNsec[r]!),
      capped: 0,
    };
    out.push({
      type: 'close',
      conn: f.id,
      ts: formatTs(sec, nsec),
      reason: why,
      client: f.client,
      server: f.server,
      vlan: f.vlan,
      c2s: dir === 0 ? sent : NO_TRAFFIC,
      s2c: dir === 0 ? NO_TRAFFIC : sent,
    });
    f.closed = true;
    f.state = null;
    this.remove(r);
  }

  private grow(n: number): void {
    const f64 = (a: Float64Array): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    const u8 = (a: Uint8Array): Uint8Array<ArrayBuffer> => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    this.firstSec = f64(this.firstSec);
    this.lastSec = f64(this.lastSec);
    this.lastT = f64(this.lastT);
    this.firstNsec = i32(this.firstNsec);
    this.lastNsec = i32(this.lastNsec);
    const seq = new Uint32Array(n);
    seq.set(this.seq);
    this.seq = seq;
    const ack = new Uint32Array(n);
    ack.set(this.ack);
    this.ack = ack;
    this.synAck = u8(this.synAck);
    this.win = i32(this.win);
    this.packets = i32(this.packets);
    this.dir = u8(this.dir);
    this.mss = i32(this.mss);
    this.wscale = i32(this.wscale);
    this.sack = u8(this.sack);
  }
}
