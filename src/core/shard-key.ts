/**
 * shard-key: which connections one of N cooperating pcapflow processes keeps (`--shard K/N`,
 * ReadCapturesOptions.shard), and the ShardSelect stage that drops the others right after the
 * demux. Pure: no node:* import.
 *
 * The connection key (SHARD KEY, version 1) is FNV-1a 32 over this byte string, a function of the
 * unordered pair of endpoints and the VLAN ids only, so both directions of a connection, and every
 * connection reusing the same addresses and ports, have one key on every machine and version:
 *   1. the address length: one byte, 4 (IPv4) or 16 (IPv6);
 *   2. the lower endpoint: its address bytes (network order), then its port (2 bytes, big-endian);
 *   3. the higher endpoint, the same way. An endpoint is lower when its address bytes are lower,
 *      compared as unsigned bytes from the first; on equal addresses, when its port is lower;
 *   4. the number of VLAN tags (one byte), then each VLAN id (2 bytes, big-endian), outermost first.
 * FNV-1a 32: h = 0x811c9dc5; for each byte b: h = ((h XOR b) * 0x01000193) mod 2^32.
 *
 * The shard of a connection, of N shards numbered 1 to N: K = floor(key * N / 2^32) + 1 (the high
 * bits of the key: FNV-1a's low bits mix poorly, its last multiplication keeps the parity of the
 * last byte). Shards nest: shard K of N is the union of shards 2K-1 and 2K of 2N.
 */
import { PcapflowError } from './errors.js';
import type { Packet } from './packet.js';
import type { Stage } from './stage.js';

/** One shard of several: `index` from 1 to `count`, as `--shard K/N` writes it. */
export interface ShardSpec {
  index: number;
  count: number;
}

/** The most shards (`count`). */
export const MAX_SHARDS = 65536;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * checkShard validates a ShardSpec (integers, 1 <= index <= count <= MAX_SHARDS) and returns a
 * copy. Throws PcapflowError INVALID_OPTION.
 */
export function checkShard(s: ShardSpec): ShardSpec {
  const { index, count } = (s ?? {}) as Partial<ShardSpec>;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_SHARDS) {
    throw new PcapflowError('INVALID_OPTION', `shard count must be a whole number from 1 to ${MAX_SHARDS}, got ${String(count)}`);
  }
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > count) {
    throw new PcapflowError('INVALID_OPTION', `shard index must be a whole number from 1 to the count (${count}), got ${String(index)}`);
  }
  return { index, count };
}

/**
 * parseShard reads `K/N` (`--shard`: shard K of N, K from 1 to N, as in `1/4` ... `4/4`). Throws
 * PcapflowError INVALID_OPTION naming the option.
 */
export function parseShard(text: string): ShardSpec {
  const m = /^\s*(\d{1,6})\s*\/\s*(\d{1,6})\s*$/.exec(text);
  if (m === null) throw new PcapflowError('INVALID_OPTION', `--shard must be K/N (shard K of N, K from 1 to N, e.g. 1/4), not ${JSON.stringify(text)}`);
  try {
    return checkShard({ index: Number(m[1]), count: Number(m[2]) });
  } catch (err) {
    throw new PcapflowError('INVALID_OPTION', `--shard ${text}: ${(err as Error).message}`);
  }
}

function fnvByte(h: number, b: number): number {
  return Math.imul(h ^ b, FNV_PRIME);
}

function fnvPort(h: number, port: number): number {
  return fnvByte(fnvByte(h, (port >>> 8) & 0xff), port & 0xff);
}

/**
 * shardKey: the SHARD KEY (module comment) of the endpoints (`len` address bytes at `aOff` of `a`,
 * port `aPort`) and (at `bOff` of `b`, `bPort`) and the VLAN ids `vlan`: an unsigned 32-bit
 * integer, the same whichever endpoint comes first.
 */
export function shardKey(a: Uint8Array, aOff: number, aPort: number, b: Uint8Array, bOff: number, bPort: number, len: number, vlan: readonly number[]): number {
  let cmp = 0;
  for (let i = 0; i < len && cmp === 0; i++) cmp = a[aOff + i]! - b[bOff + i]!;
  if (cmp === 0) cmp = aPort - bPort;
  if (cmp > 0) {
    const t = a;
    a = b;
    b = t;
    const o = aOff;
    aOff = bOff;
    bOff = o;
    const p = aPort;
    aPort = bPort;
    bPort = p;
  }
  let h = fnvByte(FNV_OFFSET, len);
  for (let i = 0; i < len; i++) h = fnvByte(h, a[aOff + i]!);
  h = fnvPort(h, aPort);
  for (let i = 0; i < len; i++) h = fnvByte(h, b[bOff + i]!);
  h = fnvPort(h, bPort);
  h = fnvByte(h, vlan.length & 0xff);
  for (let i = 0; i < vlan.length; i++) h = fnvPort(h, vlan[i]!);
  return h >>> 0;
}

/** shardOfKey: the shard (1 to `count`) of a connection whose SHARD KEY is `key`. */
export function shardOfKey(key: number, count: number): number {
  return Math.floor(((key >>> 0) * count) / 4294967296) + 1;
}

/** packetShardKey: the SHARD KEY of a decoded TCP packet's connection (its addresses, ports and VLAN ids). */
export function packetShardKey(p: Packet): number {
  return shardKey(p.srcBuf, p.srcOff, p.sport, p.dstBuf, p.dstOff, p.dport, p.addrLen, p.vlan);
}

export interface ShardSelectStats {
  /** Connections left to the other shards. */
  otherConnections: number;
  /** Packets of other shards' connections: passed on without their connection (`flow` null). */
  otherPackets: number;
}

/**
 * A Flow's `state` once ShardSelect found it outside the shard. The flow is also marked `closed`,
 * so that a reassembler never closes it when the demux ends it (an idle, evicted or reused
 * connection in `Packet.expired`), and a ShardRouter never announces it.
 */
const OTHER_SHARD: unknown = Object.freeze({ otherShard: true });

/**
 * ShardSelect sits between TcpDemux and the reassembler (TcpReassembler, or ShardRouter for
 * `--workers`) and keeps the connections of one shard (ShardSpec; shardOfKey of packetShardKey):
 * a packet of another shard's connection goes on with `flow` null, so that the reassembler
 * handles it as it does a packet without a connection: it counts it toward `waitPackets` and
 * closes the flows in its `expired` list (connections of this shard the demux ended there), and
 * does nothing else with it (TcpReassembler counts it in `ignored`). The demux still sees every
 * packet, so connection numbers (tshark's tcp.stream), roles, idle timeouts, evictions and reuse
 * are those of the unsharded run, and so is every event of a kept connection, in the same order,
 * as long as no limit shared by all connections is reached (the out-of-order total, the
 * held-output share, and the trimming of delivered views kept for overlap checks, which counts
 * the read chunks of kept connections only).
 *
 * It decides on a connection's packets while its `flow.state` is null (the reassembler sets it
 * at the first packet it handles, a ShardRouter when it announces the flow; the answer is the
 * same for every packet of the connection) and remembers a connection of another shard in
 * `flow.state` (OTHER_SHARD) and `closed`. A connection the reassembler closed (`closed`, state
 * null again) is this shard's. Batches go on as they came (the same array). Throws
 * INVALID_OPTION for a bad ShardSpec.
 */
export class ShardSelect implements Stage<Packet[], Packet[]> {
  readonly shard: ShardSpec;
  readonly stats: ShardSelectStats = { otherConnections: 0, otherPackets: 0 };

  constructor(shard: ShardSpec) {
    this.shard = checkShard(shard);
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    const { index, count } = this.shard;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const f = p.flow;
      if (f === null) continue;
      const state = f.state;
      if (state === OTHER_SHARD) {
        p.flow = null;
        this.stats.otherPackets++;
      } else if (state === null && !f.closed && shardOfKey(packetShardKey(p), count) !== index) {
        f.state = OTHER_SHARD;
        f.closed = true;
        p.flow = null;
        this.stats.otherConnections++;
        this.stats.otherPackets++;
      }
    }
    if (batch.length > 0) emit(batch);
  }

  end(_emit: (out: Packet[]) => void): void {
    // holds nothing
  }
}

/**
 * PacketShard: `pcapflow packets --shard K/N`: keeps a TCP packet when its connection (the SHARD
 * KEY of its addresses, ports and VLAN ids) is in shard K, and every other packet (not TCP, or
 * not decoded) in shard 1 only, so that the N outputs are disjoint and together the unsharded
 * one. Batches go on filtered (a new array), or not at all when nothing is kept. Throws
 * INVALID_OPTION for a bad ShardSpec.
 */
export class PacketShard implements Stage<Packet[], Packet[]> {
  readonly stats = { kept: 0, otherShards: 0 };
  private readonly spec: ShardSpec;

  constructor(spec: ShardSpec) {
    this.spec = checkShard(spec);
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    const out: Packet[] = [];
    for (const p of batch) {
      const tcp = p.skip === null && p.proto === 6 && p.tcpHeaderLen >= 20;
      const shard = tcp ? shardOfKey(packetShardKey(p), this.spec.count) : 1;
      if (shard === this.spec.index) out.push(p);
    }
    this.stats.kept += out.length;
    this.stats.otherShards += batch.length - out.length;
    if (out.length > 0) emit(out);
  }

  end(_emit: (out: Packet[]) => void): void {}
}
