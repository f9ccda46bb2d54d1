/**
 * stream-compare: pcapflow's side of the stream differential tests (tshark, tcpflow). runFlows
 * reads a capture through CaptureReader → PacketDecoder (skipped packets kept, IPComp inflated,
 * as the CLI does) → TcpDemux → TcpReassembler synchronously and keeps, per connection, each
 * direction's bytes with the gaps and overlaps between them, the frames it holds, and the
 * payloads of packets that came after its close. A `variant` changes the input in one named,
 * documented way, so that a test can show that a difference has exactly that cause (pcapflow
 * with the cause removed gives the other tool's bytes).
 */
import { readFileSync } from 'node:fs';
import { CaptureReader } from '../../src/core/capture-reader.js';
import type { CloseEvent, Direction, GapReason, OpenEvent, StreamEvent } from '../../src/core/events.js';
import { TcpDemux } from '../../src/core/flow-table.js';
import { NO_VLAN, type Packet } from '../../src/core/packet.js';
import { PacketDecoder } from '../../src/core/packet-decoder.js';
import { TcpReassembler } from '../../src/core/reassembler.js';
import { zlibInflate } from '../../src/transforms/decode-transforms.js';

/** One stretch of a direction's stream: bytes, or a gap pcapflow reported. */
export interface Piece {
  off: number;
  /** The bytes (null for a gap). */
  data: Buffer | null;
  /** Gap length and reason (0 / null for data). */
  len: number;
  reason: GapReason | null;
}

export interface DirStream {
  bytes: Buffer;
  pieces: Piece[];
  /** Overlap events: [offset, end) ranges where copies differed. */
  overlaps: Array<[number, number]>;
}

export interface ConnRecord {
  conn: number;
  open: OpenEvent;
  close: CloseEvent | null;
  dirs: Record<Direction, DirStream>;
  /** Frames (1-based) the demux placed in this connection. */
  frames: number[];
  /** Payloads of this connection's packets that came after its close event, per direction. */
  afterClose: Record<Direction, Buffer[]>;
  /** Bytes captured after a frame's TCP segment ended (Ethernet padding of short frames), per direction. */
  padding: Record<Direction, Buffer[]>;
}

/**
 * Variants (each changes one thing and says what it shows):
 * - `no-vlan`: VLAN ids dropped after decoding: pcapflow then keys connections as tshark and
 *   tcpflow do.
 * - `fragments-reversed`: the frames holding IPv4 fragments of one datagram are fed in reverse
 *   order, so that pcapflow's first-copy-wins defragmentation keeps what came last.
 * - `first-fragment-only`: of each fragmented IPv4 datagram only the first fragment is kept, made
 *   into a whole datagram (more-fragments flag cleared), as a reader that does not reassemble
 *   fragments would take it.
 */
export type Variant = 'no-vlan' | 'fragments-reversed' | 'first-fragment-only';

export interface FlowRun {
  conns: Map<number, ConnRecord>;
  connOfFrame: Map<number, number>;
  /** Why the decoder skipped a frame (frames it skipped only). */
  skipOfFrame: Map<number, string>;
  vlanOfFrame: Map<number, number[]>;
  /** Frames that carry a SYN without ACK (a connection's first SYN, or one captured late). */
  lateSynFrames: number[];
  decoder: PacketDecoder;
  demux: TcpDemux;
  reasm: TcpReassembler;
  events: StreamEvent[];
  /** The reader's error on a broken file (the run ends there, like end of input); null when none. */
  error: unknown;
}

function readAll(file: string): { packets: Packet[]; error: unknown } {
  const reader = new CaptureReader({ file });
  const packets: Packet[] = [];
  const take = (b: Packet[]): void => {
    for (const p of b) packets.push(p);
  };
  let error: unknown = null;
  try {
    reader.write(readFileSync(file), take);
    reader.end(take);
  } catch (e) {
    error = e;
  }
  return { packets, error };
}

const u16 = (d: Uint8Array, i: number): number => (d[i]! << 8) | d[i + 1]!;

/** The frames to change for a variant, found by a plain decode of the same capture. */
function prepare(file: string, variant: Variant): { order: number[] | null; firstOnly: Map<number, number> | null } {
  const { packets } = readAll(file);
  const dec = new PacketDecoder({ keepSkipped: true, onError: 'skip', inflate: zlibInflate });
  const groups = new Map<string, number[]>();
  const netOffset = new Map<number, number>();
  dec.write(packets, (out) => {
    for (const p of out) {
      if ((variant === 'fragments-reversed' || variant === 'first-fragment-only') && p.netVersion === 4 && (p.skip === 'fragment' || p.fragments > 0)) {
        const d = p.data;
        const o = p.netOffset;
        const key = `${d.subarray(o + 12, o + 20).join('.')}/${u16(d, o + 4)}/${d[o + 9]}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = []));
        g.push(p.index);
        netOffset.set(p.index, o);
      }
    }
  });
  let order: number[] | null = null;
  let firstOnly: Map<number, number> | null = null;
  if (variant === 'first-fragment-only') {
    firstOnly = new Map();
    for (const g of groups.values()) for (const i of g) firstOnly.set(i, netOffset.get(i)!);
  }
  if (variant === 'fragments-reversed') {
    order = packets.map((p) => p.index);
    for (const g of groups.values()) {
      if (g.length < 2) continue;
      const pos = g.map((i) => order!.indexOf(i));
      const rev = [...g].reverse();
      pos.forEach((at, k) => (order![at] = rev[k]!));
    }
  }
  return { order, firstOnly };
}

function emptyDir(): DirStream {
  return { bytes: Buffer.alloc(0), pieces: [], overlaps: [] };
}

/** runFlows runs `file` through pcapflow (optionally changed by `variant`) and records every connection. */
export function runFlows(file: string, variant: Variant | null = null): FlowRun {
  const prep = variant === 'fragments-reversed' || variant === 'first-fragment-only' ? prepare(file, variant) : null;
  const { packets: raw, error } = readAll(file);
  let packets = raw;
  if (prep !== null) {
    if (prep.firstOnly !== null) {
      const keep: Packet[] = [];
      for (const p of packets) {
        const o = prep.firstOnly.get(p.index);
        if (o === undefined) {
          keep.push(p);
          continue;
        }
        const d = p.data;
        if (((d[o + 6]! & 0x1f) | d[o + 7]!) !== 0) continue; // not the first fragment: dropped
        const copy = Uint8Array.from(d);
        copy[o + 6] = d[o + 6]! & 0x40; // keep DF, clear MF and the offset
        copy[o + 7] = 0;
        p.data = copy;
        keep.push(p);
      }
      packets = keep;
    }
    if (prep.order !== null) {
      const byIndex = new Map(packets.map((p) => [p.index, p]));
      packets = prep.order.map((i) => byIndex.get(i)!);
    }
  }
  const decoder = new PacketDecoder({ keepSkipped: true, onError: 'skip', inflate: zlibInflate });
  const demux = new TcpDemux();
  const reasm = new TcpReassembler();
  const events: StreamEvent[] = [];
  const connOfFrame = new Map<number, number>();
  const skipOfFrame = new Map<number, string>();
  const vlanOfFrame = new Map<number, number[]>();
  const lateSynFrames: number[] = [];
  const conns = new Map<number, ConnRecord>();
  const parts = new Map<number, Record<Direction, Buffer[]>>();
  const rec = (conn: number): ConnRecord => {
    let r = conns.get(conn);
    if (!r) {
      r = { conn, open: null as unknown as OpenEvent, close: null, dirs: { c2s: emptyDir(), s2c: emptyDir() }, frames: [], afterClose: { c2s: [], s2c: [] }, padding: { c2s: [], s2c: [] } };
      conns.set(conn, r);
      parts.set(conn, { c2s: [], s2c: [] });
    }
    return r;
  };
  const take = (evs: StreamEvent[]): void => {
    for (const e of evs) {
      events.push(e);
      const r = rec(e.conn);
      if (e.type === 'open') r.open = e;
      else if (e.type === 'close') r.close = e;
      else if (e.type === 'data') {
        const b = Buffer.from(e.data);
        r.dirs[e.dir].pieces.push({ off: e.offset, data: b, len: 0, reason: null });
        parts.get(e.conn)![e.dir].push(b);
      } else if (e.type === 'gap') r.dirs[e.dir].pieces.push({ off: e.offset, data: null, len: e.len, reason: e.reason });
      else r.dirs[e.dir].overlaps.push([e.offset, e.offset + e.len]);
    }
  };
  const decoded = (batch: Packet[]): void => {
    for (const p of batch) {
      if (p.skip !== null) skipOfFrame.set(p.index, p.skip);
      else {
        if (variant === 'no-vlan') p.vlan = NO_VLAN;
        vlanOfFrame.set(p.index, p.vlan);
        if ((p.flags & 0x12) === 0x02) lateSynFrames.push(p.index);
      }
    }
    demux.write(batch, (b) => {
      // one packet at a time, to tell which came after their connection's close
      for (const p of b) {
        if (p.flow !== null) {
          connOfFrame.set(p.index, p.flow.id);
          rec(p.flow.id).frames.push(p.index);
          const r = rec(p.flow.id);
          const dir = p.dir === 0 ? 'c2s' : 's2c';
          if (p.flow.closed && p.payload.length > 0) r.afterClose[dir].push(Buffer.from(p.payload));
          if (p.l4.buffer === p.data.buffer) {
            const end = p.l4.byteOffset - p.data.byteOffset + p.l4Len;
            if (end < p.data.length) r.padding[dir].push(Buffer.from(p.data.subarray(end)));
          }
        }
        reasm.write([p], take);
      }
    });
  };
  decoder.write(packets, decoded);
  decoder.end();
  demux.end(() => undefined);
  reasm.end(take);
  for (const [conn, p] of parts) {
    const r = conns.get(conn)!;
    r.dirs.c2s.bytes = Buffer.concat(p.c2s);
    r.dirs.s2c.bytes = Buffer.concat(p.s2c);
  }
  return { conns, connOfFrame, skipOfFrame, vlanOfFrame, lateSynFrames, decoder, demux, reasm, events, error };
}
