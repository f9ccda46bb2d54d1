/**
 * shard-batch: how the main thread hands demuxed TCP packets to shard workers (`--workers N`)
 * and how a worker gets them back as Packets. Pure: no node:* import.
 *
 * A connection's packets all go to shard `shardOf(flow, n)` (the demux's hash of its key: a key
 * reused by a later connection, whose file gets a `c<N>` name, lands on the same shard). Each
 * input batch becomes one ShardBatch per shard: a Float64Array of records, the payload bytes
 * (copied: the worker owns them) and the flows it sees for the first time. Records:
 * - a packet: its number in the demux's output (`k`, from 1, as TcpReassembler counts packets
 *   for waitPackets), `sub` PACKET_SUB, and the fields the reassembler reads;
 * - a flow the demux ended just before packet `k` (Packet.expired): `sub` 1 + its place in that
 *   list, `endedBy`, and that packet's time.
 * `upTo` is the last packet number of the input batch (shards with no record get it too), so
 * that a worker ends the waits due by then as one reassembler would.
 */
import type { Endpoint } from './events.js';
import type { Flow, FlowEnd } from './flow.js';
import { flowHash } from './flow-table.js';
import { Packet, TCP_SYN } from './packet.js';

/** Record fields (Float64Array slots). */
const K = 0;
const SUB = 1;
const FLOW = 2;
const DIR = 3;
const FLAGS = 4;
const SEQ = 5;
const ACK = 6;
const WIN = 7;
const PAYLOAD_LEN = 8;
const SEC = 9;
const NSEC = 10;
const OFF = 11;
const LEN = 12;
const HDR = 13;
const HDR_LEN = 14;
const TCP_HDR_LEN = 15;
/** An ended flow's record: K, SUB, FLOW, then these (in the packet's slots). */
const ENDED_BY = 3;
const ENDED_SEC = 4;
const ENDED_NSEC = 5;
/** Slots per record. */
export const RECORD = 16;

/** `sub` of a packet's own record: after the flows ended just before it. */
export const PACKET_SUB = 2 ** 30;

/** Payload buffers are at least this large: TcpReassembler takes views of buffers of 64 KiB or more as read chunks (SentViews.trim). */
const BYTES_MIN = 64 * 1024;

const ENDED_CODES: readonly FlowEnd[] = ['idle', 'evicted', 'reused'];

/** A flow as a worker first learns of it. */
export interface ShardFlowInfo {
  id: number;
  client: Endpoint;
  server: Endpoint;
  vlan: number[];
  midstream: boolean;
}

/** One input batch's share for one shard (posted with `records.buffer` and `bytes.buffer` transferred). */
export interface ShardBatch {
  records: Float64Array;
  /** Records in `records`. */
  count: number;
  bytes: Uint8Array;
  flows: ShardFlowInfo[];
  /** The last packet number of the input batch. */
  upTo: number;
}

/** shardOf: the shard (0..n-1) of a flow the demux made. */
export function shardOf(f: Flow, n: number): number {
  return (Math.imul(flowHash(f), 0x9e3779b1) >>> 0) % n;
}

/** Marks a flow whose worker knows it (Flow.state on the main thread, where no reassembler runs). */
const KNOWN = 1;

/**
 * ShardRouter splits demuxed packet batches into ShardBatches, numbering packets as one
 * reassembler would count them. The flows' `state` marks the flows announced to their worker:
 * a router is the only reader of the demux's flows on the main thread.
 */
export class ShardRouter {
  readonly n: number;
  /** Packets routed (the last packet number). */
  packets = 0;
  /** Packets without a flow (not TCP): counted here, as the reassembler's `ignored`. */
  ignored = 0;
  private recs: Float64Array[];
  private counts: number[];
  private bytes: Uint8Array[];
  private used: number[];
  private flows: ShardFlowInfo[][];

  private readonly alloc: (size: number) => Uint8Array;

  /**
   * `alloc` makes the payload buffers (each is transferred with its batch): default `new
   * Uint8Array`; the sink passes Buffer.allocUnsafeSlow, which does not zero them.
   */
  constructor(n: number, alloc: (size: number) => Uint8Array = (size) => new Uint8Array(size)) {
    this.n = n;
    this.alloc = alloc;
    this.recs = [];
    this.counts = [];
    this.bytes = [];
    this.used = [];
    this.flows = [];
    for (let i = 0; i < n; i++) this.reset(i, 256, BYTES_MIN);
  }

  /** route adds a demuxed batch (TcpDemux's output, in order) to the shards' batches. */
  route(batch: readonly Packet[]): void {
    const n = this.n;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const k = ++this.packets;
      const expired = p.expired;
      if (expired !== null) {
        for (let j = 0; j < expired.length; j++) {
          const f = expired[j]!;
          if (f.state !== KNOWN) continue; // no packet of it reached a worker
          const s = shardOf(f, n);
          const r = this.record(s);
          r[K] = k;
          r[SUB] = 1 + j;
          r[FLOW] = f.id;
          r[ENDED_BY] = ENDED_CODES.indexOf(f.endedBy ?? 'evicted');
          r[ENDED_SEC] = p.tsSec;
          r[ENDED_NSEC] = p.tsNsec;
        }
      }
      const f = p.flow;
      if (f === null) {
        if (p.skip !== 'tick') this.ignored++;
        continue;
      }
      const s = shardOf(f, n);
      if (f.state !== KNOWN) {
        this.flows[s]!.push({ id: f.id, client: f.client, server: f.server, vlan: f.vlan, midstream: f.midstream });
        f.state = KNOWN;
        f.closed = true; // lets the demux entry drop the endpoints just made (nothing closes it here)
      }
      const hdr = p.flags & TCP_SYN ? Math.min(p.tcpHeaderLen, p.l4End - p.l4Off) : 0;
      const payload = p.payload;
      const at = this.reserve(s, hdr + payload.length);
      const bytes = this.bytes[s]!;
      if (hdr > 0) bytes.set(p.l4Buf.subarray(p.l4Off, p.l4Off + hdr), at);
      if (payload.length > 0) bytes.set(payload, at + hdr);
      const base = this.counts[s]! * RECORD;
      const rec = this.grow(s);
      rec[base + K] = k;
      rec[base + SUB] = PACKET_SUB;
      rec[base + FLOW] = f.id;
      rec[base + DIR] = p.dir;
      rec[base + FLAGS] = p.flags;
      rec[base + SEQ] = p.seq;
      rec[base + ACK] = p.ack;
      rec[base + WIN] = p.win;
      rec[base + PAYLOAD_LEN] = p.payloadLen;
      rec[base + SEC] = p.tsSec;
      rec[base + NSEC] = p.tsNsec;
      rec[base + OFF] = at + hdr;
      rec[base + LEN] = payload.length;
      rec[base + HDR] = at;
      rec[base + HDR_LEN] = hdr;
      rec[base + TCP_HDR_LEN] = p.tcpHeaderLen;
      this.counts[s]!++;
    }
  }

  /** take: shard s's batch so far (possibly empty), and a fresh one started. */
  take(s: number): ShardBatch {
    const out: ShardBatch = { records: this.recs[s]!, count: this.counts[s]!, bytes: this.bytes[s]!, flows: this.flows[s]!, upTo: this.packets };
    // the next batch starts at about this one's size
    this.reset(s, Math.max(256, this.counts[s]! * 2), Math.max(BYTES_MIN, this.used[s]! + (this.used[s]! >> 2)));
    return out;
  }

  private reset(s: number, records: number, bytes: number): void {
    this.recs[s] = new Float64Array(records * RECORD);
    this.counts[s] = 0;
    this.bytes[s] = this.alloc(bytes);
    this.used[s] = 0;
    this.flows[s] = [];
  }

  /** record: an ended-flow record of shard s (six slots set by the caller), counted. */
  private record(s: number): Float64Array {
    const base = this.counts[s]! * RECORD;
    const rec = this.grow(s);
    this.counts[s]!++;
    return rec.subarray(base, base + RECORD);
  }

  /** grow: shard s's records with room for one more. */
  private grow(s: number): Float64Array {
    let rec = this.recs[s]!;
    const need = (this.counts[s]! + 1) * RECORD;
    if (need > rec.length) {
      const next = new Float64Array(Math.max(need, rec.length * 2));
      next.set(rec);
      this.recs[s] = rec = next;
    }
    return rec;
  }

  /** reserve: the offset of `len` free bytes in shard s's buffer. */
  private reserve(s: number, len: number): number {
    const at = this.used[s]!;
    const bytes = this.bytes[s]!;
    if (at + len > bytes.length) {
      const next = this.alloc(Math.max(at + len, bytes.length * 2));
      next.set(bytes.subarray(0, at));
      this.bytes[s] = next;
    }
    this.used[s] = at + len;
    return at;
  }
}

/** A worker's copy of a flow (see ShardFlowInfo); the reassembler keeps its state in it. */
class ShardFlow implements Flow {
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly vlan: number[];
  midstream: boolean;
  closed = false;
  endedBy: FlowEnd | null = null;
  state: unknown = null;

  constructor(info: ShardFlowInfo) {
    this.id = info.id;
    this.client = info.client;
    this.server = info.server;
    this.vlan = info.vlan;
    this.midstream = info.midstream;
  }
}

/** What ShardReader.next() read: a packet (`packet` set, `ended` null) or an ended flow (`ended` set). */
export interface ShardItem {
  k: number;
  sub: number;
  packet: Packet | null;
  ended: Flow | null;
  /** For an ended flow: the time of the packet it was ended before. */
  sec: number;
  nsec: number;
}

/**
 * ShardFlows: a worker's flows by number. A flow leaves once the demux ended it (its ended
 * record was read), so the map holds no more flows than the demux's table.
 */
export class ShardFlows {
  private readonly byId = new Map<number, ShardFlow>();

  /** add takes a batch's new flows. */
  add(infos: readonly ShardFlowInfo[]): void {
    for (const info of infos) this.byId.set(info.id, new ShardFlow(info));
  }

  get(id: number): Flow | undefined {
    return this.byId.get(id);
  }

  delete(id: number): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

/**
 * readShardBatch calls `each` for every record of `b` in order, with one reused Packet (valid
 * until the next call) or the ended flow. Records of flows it does not know are skipped.
 */
export function readShardBatch(b: ShardBatch, flows: ShardFlows, each: (item: ShardItem) => void): void {
  flows.add(b.flows);
  const rec = b.records;
  const bytes = b.bytes;
  const pkt = new Packet();
  const item: ShardItem = { k: 0, sub: 0, packet: null, ended: null, sec: 0, nsec: 0 };
  for (let i = 0; i < b.count; i++) {
    const base = i * RECORD;
    const f = flows.get(rec[base + FLOW]!);
    if (f === undefined) continue;
    item.k = rec[base + K]!;
    item.sub = rec[base + SUB]!;
    if (item.sub !== PACKET_SUB) {
      f.endedBy = ENDED_CODES[rec[base + ENDED_BY]!]!;
      item.packet = null;
      item.ended = f;
      item.sec = rec[base + ENDED_SEC]!;
      item.nsec = rec[base + ENDED_NSEC]!;
      each(item);
      flows.delete(f.id);
      continue;
    }
    pkt.flow = f;
    pkt.dir = rec[base + DIR] as 0 | 1;
    pkt.flags = rec[base + FLAGS]!;
    pkt.seq = rec[base + SEQ]!;
    pkt.ack = rec[base + ACK]!;
    pkt.win = rec[base + WIN]!;
    pkt.payloadLen = rec[base + PAYLOAD_LEN]!;
    pkt.tsSec = rec[base + SEC]!;
    pkt.tsNsec = rec[base + NSEC]!;
    const off = rec[base + OFF]!;
    pkt.payload = bytes.subarray(off, off + rec[base + LEN]!);
    const hdr = rec[base + HDR]!;
    pkt.l4Buf = bytes;
    pkt.l4Off = hdr;
    pkt.l4End = hdr + rec[base + HDR_LEN]!;
    pkt.tcpHeaderLen = rec[base + TCP_HDR_LEN]!;
    item.packet = pkt;
    item.ended = null;
    each(item);
  }
}
