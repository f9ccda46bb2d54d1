/**
 * TcpDemux sorts decoded TCP segments into connections. For every packet that carries a TCP
 * segment (`skip === null`, `proto === 6`) it sets `pkt.flow`, `pkt.dir` (0 client to server,
 * 1 server to client) and, when it ended other connections just before this packet, `pkt.expired`.
 * Other packets pass through untouched (`flow` stays null). Batches are passed on as they came.
 *
 * Key: both addresses, both ports and the VLAN ids (tcpflow leaves VLANs out and merges distinct
 * connections; pcapflow does not). The table is an array of chains of entries, indexed by a
 * direction-independent hash (doubled when it holds as many entries as chains), so no string or
 * object is built per packet.
 *
 * Roles: the client is the sender of a SYN (without ACK); when a SYN-ACK comes first, its receiver.
 * When the first packet is neither (`midstream`), the endpoint with the lower port is the server
 * (well-known ports are below ephemeral ones); equal ports make the sender the client.
 *
 * Numbering follows tshark's `tcp.stream` (Wireshark 4.0): connections are numbered from 0 in
 * order of first packet, and a SYN (without ACK) whose sequence number differs from the base
 * sequence number Wireshark would hold for that direction (the SYN's ISN; seq-1 of the first
 * segment when no SYN was seen; ack-1 of the peer's first ACK) starts a new connection on the same
 * addresses and ports; the old one ends with `endedBy = 'reused'`. A SYN with the same ISN stays
 * in the old connection even after FIN or RST, as tshark 4.0 keeps it: it is that connection's SYN
 * again (a retransmission, or a capture that shows it late), since a new connection on the same
 * addresses and ports takes a new ISN (RFC 9293 3.4.1; reuse out of TIME-WAIT even needs a
 * higher one). This is how pcapflow reads the "a SYN on a 4-tuple whose earlier connection
 * has closed starts a new connection": a new SYN does, a repeated one does not. Checked on every
 * shared capture by stream-tshark-diff.test.ts (arkime tcp-reassembly-scenarios reuses a port
 * after FIN with both a new and the same ISN).
 *
 * Limits (capture time, never the wall clock):
 * - `idleTimeout` (seconds, default 300; 0 disables): a connection with no packet for that long
 *   ends (`endedBy = 'idle'`) when a later packet of another connection arrives, or a tick: a
 *   packet with `skip === 'tick'` (tickPacket), which a live source sends while the link is quiet
 *   and which carries no segment, only its time (the demux sets its `expired` and counts it in
 *   `ticks`; the reassembler closes those flows and ignores the tick). `expire(sec, nsec)` does
 *   the same for a caller that drives the cores itself. At end of input the reassembler's `end()`
 *   closes whatever is left. A packet never ends its own connection by
 *   the timeout: a connection that speaks again after a long silence was not dead (TCP keepalives
 *   come every 2 hours by default), and a single bogus timestamp far ahead (seen in real pcapng
 *   files) must not split the connection it belongs to. tshark, which has no timeout, agrees.
 * - `maxConnections` (default: the connection-table share of the 256 MiB memory budget, see
 *   memory-budget.ts; `memoryBudget` changes it): the table never holds more; to admit a new one
 *   it ends the least recently active connection that has seen FIN both ways or RST, else the
 *   least recently active one (`endedBy = 'evicted'`): O(1), both are list heads. Entries stay in
 *   the table after FIN/RST (late ACKs and retransmissions must not start a new connection), so
 *   the limit counts them.
 *
 * Throws PcapflowError INVALID_OPTION for bad options, nothing per packet. Pure: no node:* import.
 */
import { formatIp } from './addr.js';
import { PcapflowError } from './errors.js';
import type { Endpoint } from './events.js';
import type { Flow, FlowEnd } from './flow.js';
import { checkBudget, DEFAULT_MEMORY_BUDGET, planMemory } from './memory-budget.js';
import { Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './packet.js';
import type { Stage } from './stage.js';

export interface TcpDemuxOptions {
  /**
   * Most connections held at once (open, or finished but still lingering). Default: the
   * connection-table share of `memoryBudget` (planMemory in memory-budget.ts): 65 536 with the
   * default 256 MiB.
   */
  maxConnections?: number;
  /** Seconds of capture time without a packet after which a connection ends. Default 300; 0 disables. */
  idleTimeout?: number;
  /** The memory budget (bytes) that `maxConnections` defaults from. Default 256 MiB. */
  memoryBudget?: number;
}

export const DEMUX_DEFAULTS: Required<TcpDemuxOptions> = {
  maxConnections: planMemory().maxConnections,
  idleTimeout: 300,
  memoryBudget: DEFAULT_MEMORY_BUDGET,
};

export interface TcpDemuxStats {
  /** Packets that carried a TCP segment and got a flow. */
  packets: number;
  /** Packets passed through without a flow (not TCP, or skipped by a decoder). */
  passed: number;
  /** Connections created (the next connection number). */
  connections: number;
  /** Connections picked up without a SYN or SYN-ACK. */
  midstream: number;
  /**
   * SYNs taken as their connection's own, captured late (lateSyn): the connection was first seen
   * without a SYN, at most LATE_SYN_SECONDS before, and the SYN's sequence number is at most
   * LATE_SYN_BYTES below the base inferred from its first packets.
   */
  lateSyn: number;
  /** Connections ended because a new SYN reused their addresses and ports. */
  reused: number;
  /** Connections ended by the idle timeout. */
  idleExpired: number;
  /** Connections ended by the maxConnections limit (the memory budget's share), least recently active first. */
  evicted: number;
  /** Tick packets (skip 'tick', see tickPacket) and expire() calls: points of time without a packet. */
  ticks: number;
  /** Connections in the table now, and the most ever. */
  live: number;
  peakLive: number;
}

/**
 * tickPacket: a packet that carries no segment, only a point of capture time (`skip = 'tick'`):
 * "every packet captured before this time came before it". The decoders are not meant to see it
 * (a live pipeline adds it after decoding, see LiveDecodeTransform); TcpDemux ends the connections
 * idle at that time and attaches them to it (`expired`), and TcpReassembler closes them (reason
 * idle) and otherwise ignores it. Sinks never see it.
 */
export function tickPacket(tsSec: number, tsNsec: number): Packet {
  const p = new Packet();
  p.tsSec = tsSec;
  p.tsNsec = tsNsec;
  p.skip = 'tick';
  return p;
}

// FlowEntry.bits: what a connection has shown, one small integer (a lingering entry stays small)
const FLAG_FIN0 = 1;
const FLAG_FIN1 = 2;
const FLAG_RST = 4;
/** In the finished list (FIN both ways or RST), else the active one. */
const FINISHED = 8;
const MIDSTREAM = 16;
const CLOSED = 32;
/** Base sequence number known, per direction (BASE_SET << dir). */
const BASE_SET = 64;
/** SYN seen, per direction (SYN_SEEN << dir). */
const SYN_SEEN = 256;

/** A late SYN (lateSyn) comes at most this long after its connection's first packet (seconds of capture time)... */
const LATE_SYN_SECONDS = 60;
/** ... and its sequence number is at most this far below the base inferred from the packets before it. */
const LATE_SYN_BYTES = 1 << 24;

/**
 * lateSyn: a SYN of direction `dir` whose sequence number `seq` differs from the base `base` that
 * the entry inferred without a SYN is that connection's own, captured late (a reordered capture),
 * not a new connection reusing the addresses and ports: no SYN of that direction was seen, the
 * connection is young (LATE_SYN_SECONDS) and the SYN lies just before what was seen
 * (LATE_SYN_BYTES). tshark 4.0 starts a new stream there; a new connection's random ISN falls in
 * that range once in 256.
 */
function lateSyn(e: FlowEntry, dir: number, base: number, seq: number, now: number): boolean {
  if (e.bits & (SYN_SEEN << dir) || now - e.born > LATE_SYN_SECONDS) return false;
  const below = (base - seq) >>> 0;
  return below > 0 && below <= LATE_SYN_BYTES;
}

/**
 * FlowEntry is the demux's Flow: the public fields plus the table's private links. Kept small (a
 * SYN flood fills the table with them): IPv4 addresses are held as 16-bit halves (small integers,
 * no object), IPv6 ones in one 32-byte copy, and the `client`/`server` endpoints (strings) are
 * only made when someone reads them. Flags are bits of one small integer, and base sequence numbers
 * int32s (small integers too, where a uint32 past 2^31 would be a boxed number): 50 000 finished
 * connections lingering in the table were a third of a short-connection run's live heap.
 */
class FlowEntry implements Flow {
  readonly id: number;
  readonly vlan: number[];
  endedBy: FlowEnd | null = null;
  state: unknown = null;

  // --- demux private ---
  /** IPv4 client and server addresses as high and low 16 bits; 0 for IPv6. */
  readonly c0: number;
  readonly c1: number;
  readonly s0: number;
  readonly s1: number;
  /** IPv6: client address (bytes 0-15) then server address (16-31), a copy; null for IPv4. */
  readonly v6: Uint8Array | null;
  readonly portC: number;
  readonly portS: number;
  readonly hash: number;
  /** Next entry with the same hash. */
  chain: FlowEntry | null = null;
  /** LRU list links (which list: FINISHED in `bits`). */
  prev: FlowEntry | null = null;
  next: FlowEntry | null = null;
  /** Capture time (seconds) of the last packet, monotonic. */
  last = 0;
  /** Capture time (seconds) of the first packet (see LATE_SYN_*). */
  born = 0;
  /** Wireshark's per-direction base sequence number (to tell a new SYN from a retransmitted one), as an int32 (`seq | 0`); set when BASE_SET << dir is. */
  base0 = 0;
  base1 = 0;
  /** FLAG_FIN0, FLAG_FIN1, FLAG_RST, FINISHED, MIDSTREAM, CLOSED, BASE_SET << dir, SYN_SEEN << dir. */
  bits = 0;
  private ep: Endpoint | null = null;
  private sp: Endpoint | null = null;

  constructor(id: number, hash: number, addrC: Uint8Array, portC: number, addrS: Uint8Array, portS: number, vlan: number[], midstream: boolean) {
    this.id = id;
    this.hash = hash;
    if (addrC.length === 4) {
      this.c0 = (addrC[0]! << 8) | addrC[1]!;
      this.c1 = (addrC[2]! << 8) | addrC[3]!;
      this.s0 = (addrS[0]! << 8) | addrS[1]!;
      this.s1 = (addrS[2]! << 8) | addrS[3]!;
      this.v6 = null;
    } else {
      this.c0 = this.c1 = this.s0 = this.s1 = 0;
      const v6 = new Uint8Array(addrC.length + addrS.length);
      v6.set(addrC, 0);
      v6.set(addrS, addrC.length);
      this.v6 = v6;
    }
    this.portC = portC;
    this.portS = portS;
    this.vlan = vlan.length === 0 ? vlan : vlan.slice();
    if (midstream) this.bits = MIDSTREAM;
  }

  /** True when the connection's first packet was neither a SYN nor a SYN-ACK (the reassembler clears it when a late SYN shows up). */
  get midstream(): boolean {
    return (this.bits & MIDSTREAM) !== 0;
  }

  set midstream(v: boolean) {
    this.bits = v ? this.bits | MIDSTREAM : this.bits & ~MIDSTREAM;
  }

  /** Set by the reassembler at its close event; the endpoints made for the events are let go then (a closed entry lingers in the table, see the class comment). */
  get closed(): boolean {
    return (this.bits & CLOSED) !== 0;
  }

  set closed(v: boolean) {
    this.bits = v ? this.bits | CLOSED : this.bits & ~CLOSED;
    if (v) this.ep = this.sp = null;
  }

  get client(): Endpoint {
    return (this.ep ??= { ip: this.addr(0), port: this.portC });
  }

  get server(): Endpoint {
    return (this.sp ??= { ip: this.addr(1), port: this.portS });
  }

  /** addr: the client's (0) or server's (1) address as tshark prints it. */
  private addr(which: 0 | 1): string {
    if (this.v6 !== null) return formatIp(this.v6.subarray(which * 16, which * 16 + 16));
    const h = which === 0 ? this.c0 : this.s0;
    const l = which === 0 ? this.c1 : this.s1;
    return `${h >>> 8}.${h & 0xff}.${l >>> 8}.${l & 0xff}`;
  }
}

/**
 * flowHash: the demux's direction-independent hash of a flow's key (addresses, ports, VLAN ids);
 * flows on the same key (port reuse: `c<N>` file names) have the same hash. Only for flows this
 * module made.
 */
export function flowHash(f: Flow): number {
  return (f as FlowEntry).hash;
}

/** sameV6 tells whether the `len` bytes of `a` at `off` equal the 16 bytes of `v6` from `at`. */
function sameV6(v6: Uint8Array, at: number, a: Uint8Array, off: number, len: number): boolean {
  if (len !== 16) return false;
  for (let i = 0; i < 16; i++) if (v6[at + i] !== a[off + i]) return false;
  return true;
}

/** A doubly linked LRU list of entries, oldest first. */
class LruList {
  head: FlowEntry | null = null;
  tail: FlowEntry | null = null;
  size = 0;

  push(e: FlowEntry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.size++;
  }

  remove(e: FlowEntry): void {
    if (e.prev === null) this.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = e.next = null;
    this.size--;
  }
}

/** hashAddr hashes `len` address bytes at `off` of `a`, and a port. */
function hashAddr(a: Uint8Array, off: number, len: number, port: number): number {
  let h = 0x811c9dc5;
  for (let i = off; i < off + len; i++) h = Math.imul(h ^ a[i]!, 0x01000193);
  h = Math.imul(h ^ port, 0x01000193);
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
}

function sameVlan(a: number[], b: number[]): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function checkOptions(o: TcpDemuxOptions): Required<TcpDemuxOptions> {
  const r = { ...DEMUX_DEFAULTS };
  if (o.memoryBudget !== undefined) {
    r.memoryBudget = checkBudget(o.memoryBudget);
    r.maxConnections = planMemory(r.memoryBudget).maxConnections;
  }
  if (o.maxConnections !== undefined) {
    if (!Number.isInteger(o.maxConnections) || o.maxConnections < 1) {
      throw new PcapflowError('INVALID_OPTION', `maxConnections must be an integer >= 1, got ${o.maxConnections}`);
    }
    r.maxConnections = o.maxConnections;
  }
  if (o.idleTimeout !== undefined) {
    if (typeof o.idleTimeout !== 'number' || !(o.idleTimeout >= 0)) {
      throw new PcapflowError('INVALID_OPTION', `idleTimeout must be a number of seconds >= 0, got ${o.idleTimeout}`);
    }
    r.idleTimeout = o.idleTimeout;
  }
  return r;
}

export class TcpDemux implements Stage<Packet[], Packet[]> {
  readonly options: Readonly<Required<TcpDemuxOptions>>;
  readonly stats: TcpDemuxStats = {
    packets: 0,
    passed: 0,
    connections: 0,
    midstream: 0,
    lateSyn: 0,
    reused: 0,
    idleExpired: 0,
    evicted: 0,
    ticks: 0,
    live: 0,
    peakLive: 0,
  };

  /** The table: chains of entries by hash, in a power-of-two array (faster than a Map here). */
  private buckets: Array<FlowEntry | null> = new Array<FlowEntry | null>(1024).fill(null);
  private mask = 1023;
  private readonly active = new LruList();
  private readonly finished = new LruList();
  /** Latest capture time seen (seconds); time never runs backwards here. */
  private now = -Infinity;
  /** Flows ended while handling the current packet; attached to it. */
  private ended: Flow[] | null = null;

  constructor(options: TcpDemuxOptions = {}) {
    this.options = checkOptions(options);
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    for (let i = 0; i < batch.length; i++) this.demux(batch[i]!);
    if (batch.length > 0) emit(batch);
  }

  /** end holds nothing back: the reassembler closes the connections still open (reason eof). */
  end(_emit: (out: Packet[]) => void): void {
    this.buckets = new Array<FlowEntry | null>(1024).fill(null);
    this.mask = 1023;
    this.active.head = this.active.tail = null;
    this.finished.head = this.finished.tail = null;
    this.active.size = this.finished.size = 0;
    this.stats.live = 0;
  }

  /**
   * expire ends the connections idle for longer than `idleTimeout` at capture time (tsSec,
   * tsNsec), as a packet of no connection at that time would (idle timeout 0: none), and returns
   * them (`endedBy = 'idle'`), or null when none. The caller must let the reassembler close them:
   * pass them in `expired` of a packet without a flow (tickPacket does all this in-band). Time
   * never runs backwards here: an earlier time ends nothing.
   */
  expire(tsSec: number, tsNsec: number): Flow[] | null {
    this.stats.ticks++;
    const t = tsSec + tsNsec * 1e-9;
    if (t > this.now) this.now = t;
    this.ended = null;
    if (this.options.idleTimeout > 0) this.expireIdle();
    const ended = this.ended;
    this.ended = null;
    return ended;
  }

  private demux(pkt: Packet): void {
    if (pkt.skip !== null || pkt.proto !== 6 || pkt.tcpHeaderLen < 20) {
      if (pkt.skip === 'tick') pkt.expired = this.expire(pkt.tsSec, pkt.tsNsec);
      else this.stats.passed++;
      return;
    }
    this.stats.packets++;
    const t = pkt.tsSec + pkt.tsNsec * 1e-9;
    if (t > this.now) this.now = t;
    this.ended = null;

    // the addresses are read where the IP decoder found them (no views made per packet)
    const sb = pkt.srcBuf;
    const so = pkt.srcOff;
    const db = pkt.dstBuf;
    const dof = pkt.dstOff;
    const alen = pkt.addrLen;
    const sport = pkt.sport;
    const dport = pkt.dport;
    const vlan = pkt.vlan;
    let h = (hashAddr(sb, so, alen, sport) + hashAddr(db, dof, alen, dport)) | 0;
    for (let i = 0; i < vlan.length; i++) h = Math.imul(h ^ vlan[i]!, 0x01000193);
    h &= 0x3fffffff; // a small integer: a Map key without a heap number

    let e = this.buckets[h & this.mask] as FlowEntry | null;
    let dir: 0 | 1 = 0;
    if (alen === 4) {
      const a0 = (sb[so]! << 8) | sb[so + 1]!;
      const a1 = (sb[so + 2]! << 8) | sb[so + 3]!;
      const b0 = (db[dof]! << 8) | db[dof + 1]!;
      const b1 = (db[dof + 2]! << 8) | db[dof + 3]!;
      while (e !== null) {
        if (e.v6 === null && sameVlan(e.vlan, vlan)) {
          if (e.portC === sport && e.portS === dport && e.c1 === a1 && e.s1 === b1 && e.c0 === a0 && e.s0 === b0) {
            dir = 0;
            break;
          }
          if (e.portS === sport && e.portC === dport && e.s1 === a1 && e.c1 === b1 && e.s0 === a0 && e.c0 === b0) {
            dir = 1;
            break;
          }
        }
        e = e.chain;
      }
    } else {
      while (e !== null) {
        const v6 = e.v6;
        if (v6 !== null && sameVlan(e.vlan, vlan)) {
          if (e.portC === sport && e.portS === dport && sameV6(v6, 0, sb, so, alen) && sameV6(v6, 16, db, dof, alen)) {
            dir = 0;
            break;
          }
          if (e.portS === sport && e.portC === dport && sameV6(v6, 16, sb, so, alen) && sameV6(v6, 0, db, dof, alen)) {
            dir = 1;
            break;
          }
        }
        e = e.chain;
      }
    }

    // The packet's own connection is touched before the idle sweep: it never ends by the timeout
    // that this very packet would trigger (see the class comment).
    if (e !== null) this.touch(e);
    if (this.options.idleTimeout > 0) this.expireIdle();

    const flags = pkt.flags;
    if (e !== null && (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      const set = (e.bits & (BASE_SET << dir)) !== 0;
      const base = dir === 0 ? e.base0 : e.base1;
      const seq = pkt.seq | 0;
      if (set && base !== seq && lateSyn(e, dir, base, seq, this.now)) {
        // the connection's own SYN, captured after some of its packets (a reordered capture):
        // its ISN is the base now
        if (dir === 0) e.base0 = seq;
        else e.base1 = seq;
        this.stats.lateSyn++;
      } else if (set && base !== seq) {
        this.endFlow(e, 'reused');
        this.stats.reused++;
        e = null;
      }
    }

    if (e === null) {
      if (this.active.size + this.finished.size >= this.options.maxConnections) this.evictOne();
      let clientIsSrc: boolean;
      let midstream = false;
      if (flags & TCP_SYN) {
        clientIsSrc = (flags & TCP_ACK) === 0;
      } else {
        midstream = true;
        clientIsSrc = !(sport < dport);
        this.stats.midstream++;
      }
      const src = pkt.src;
      const dst = pkt.dst;
      e = clientIsSrc
        ? new FlowEntry(this.stats.connections, h, src, sport, dst, dport, vlan, midstream)
        : new FlowEntry(this.stats.connections, h, dst, dport, src, sport, vlan, midstream);
      dir = clientIsSrc ? 0 : 1;
      this.stats.connections++;
      const live = this.active.size + this.finished.size;
      if (live >= this.buckets.length) this.grow();
      const b = h & this.mask;
      e.chain = this.buckets[b] as FlowEntry | null;
      this.buckets[b] = e;
      e.last = this.now;
      e.born = this.now;
      this.active.push(e);
      this.stats.live = this.active.size + this.finished.size;
      if (this.stats.live > this.stats.peakLive) this.stats.peakLive = this.stats.live;
    }

    // Wireshark's base sequence numbers, per direction (see the class comment).
    const other = 1 - dir;
    if (!(e.bits & (BASE_SET << dir))) {
      const base = flags & TCP_SYN ? pkt.seq | 0 : (pkt.seq - 1) | 0;
      if (dir === 0) e.base0 = base;
      else e.base1 = base;
      e.bits |= BASE_SET << dir;
    }
    if (!(e.bits & (BASE_SET << other)) && flags & TCP_ACK) {
      if (other === 0) e.base0 = (pkt.ack - 1) | 0;
      else e.base1 = (pkt.ack - 1) | 0;
      e.bits |= BASE_SET << other;
    }

    if (flags & TCP_SYN) e.bits |= SYN_SEEN << dir;

    if (flags & (TCP_FIN | TCP_RST) && !(e.bits & FINISHED)) {
      e.bits |= flags & TCP_RST ? FLAG_RST : dir === 0 ? FLAG_FIN0 : FLAG_FIN1;
      if (e.bits & FLAG_RST || (e.bits & (FLAG_FIN0 | FLAG_FIN1)) === (FLAG_FIN0 | FLAG_FIN1)) {
        this.active.remove(e);
        e.bits |= FINISHED;
        this.finished.push(e);
      }
    }

    pkt.flow = e;
    pkt.dir = dir;
    pkt.expired = this.ended;
  }

  /** grow doubles the bucket array (the table holds as many entries as buckets). */
  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    const buckets = new Array<FlowEntry | null>(n).fill(null);
    const mask = n - 1;
    for (let i = 0; i < old.length; i++) {
      for (let e = old[i] as FlowEntry | null; e !== null; ) {
        const next = e.chain;
        const b = e.hash & mask;
        e.chain = buckets[b] as FlowEntry | null;
        buckets[b] = e;
        e = next;
      }
    }
    this.buckets = buckets;
    this.mask = mask;
  }

  /** touch marks `e` active now: the tail of its LRU list. */
  private touch(e: FlowEntry): void {
    if (e.next !== null) {
      const list = e.bits & FINISHED ? this.finished : this.active;
      list.remove(e);
      list.push(e);
    }
    e.last = this.now;
  }

  private expireIdle(): void {
    const limit = this.now - this.options.idleTimeout;
    for (;;) {
      const a = this.active.head;
      const f = this.finished.head;
      let e: FlowEntry | null;
      if (a !== null && a.last < limit && (f === null || a.last <= f.last)) e = a;
      else if (f !== null && f.last < limit) e = f;
      else break;
      this.endFlow(e, 'idle');
      this.stats.idleExpired++;
    }
  }

  private evictOne(): void {
    const e = this.finished.head ?? this.active.head;
    if (e === null) return;
    this.endFlow(e, 'evicted');
    this.stats.evicted++;
  }

  /** endFlow removes `e` from the table and its list and records it for the current packet. */
  private endFlow(e: FlowEntry, why: FlowEnd): void {
    const b = e.hash & this.mask;
    let c = this.buckets[b] as FlowEntry | null;
    if (c === e) {
      this.buckets[b] = e.chain;
    } else {
      while (c !== null && c.chain !== e) c = c.chain;
      if (c !== null) c.chain = e.chain;
    }
    e.chain = null;
    (e.bits & FINISHED ? this.finished : this.active).remove(e);
    e.endedBy = why;
    if (this.ended === null) this.ended = [e];
    else this.ended.push(e);
    this.stats.live = this.active.size + this.finished.size;
  }
}
