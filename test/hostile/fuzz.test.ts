/**
 * Fuzzing (issue 5): the capture reader, the packet decoders and the whole synchronous pipeline
 * (CaptureReader → PacketDecoder → TcpDemux → TcpReassembler) on random bytes and on real
 * captures from ../shared/pcaps with bytes flipped, records cut, ranges deleted or repeated and
 * length fields set to hostile values (pcap caplen/len, pcapng block total and trailing length,
 * option lengths, IDB link type and snaplen, EPB interface and caplen).
 *
 * Properties, for every input:
 * - nothing but a PcapflowError escapes (under onError 'skip' the decoders throw nothing);
 * - every case finishes within a time bound (a hang or a quadratic loop fails it);
 * - no allocation is driven by an untrusted length: every `new Uint8Array(n)` / `new ArrayBuffer(n)`
 *   the reader makes is at most MAX_HELD_BLOCK, whatever length a header claims;
 * - what comes out is well formed: packets (data.length = caplen <= 256 KiB, consecutive
 *   indices), decoded fields (views inside the frame, payload <= payloadLen, input bytes never
 *   written), stream events (open first, one close last, contiguous offsets per direction,
 *   close counters equal to the events, out-of-order bytes within the cap);
 * - pcapng resync never takes garbage for packets: when only block lengths were damaged
 *   (leading or trailing lengths set to any value, the file cut), every packet read is one of
 *   the original packets, bytes included, in order. Deleted or repeated ranges are left out of
 *   this property: they can damage a block in place while keeping its lengths consistent (a
 *   range of L-8 bytes repeated over a block of L bytes puts its own leading length where the
 *   trailing one is read), which no pcapng reader can tell, since the format has no checksum.
 *
 * The multipart/form-data parser (src/core/multipart.ts) is fuzzed on its own: mutated bodies
 * in random pieces, with gaps, must give well-formed parts, hold no more than the boundary (or a
 * part's header block, up to its limit) between pieces, and give the same parts however split.
 *
 * The TLS parser (src/core/tls.ts) likewise: mutated handshakes (hostile lengths written over
 * record, message and vector lengths) in random pieces, with gaps, must throw nothing, hold no
 * more than its caps, allocate nothing larger, give well-formed records (a fingerprint only with
 * its hello) and, without gaps, the same record however split.
 *
 * CI runs a seeded, bounded set (FUZZ_SEED, default 5; a few seconds per property). `npm run fuzz`
 * (fuzz/run.mjs) runs the same properties for FUZZ_SECONDS each with a random seed, which it prints.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaptureReader, MAX_HELD_BLOCK, MAX_RECORD_SIZE } from '../../src/core/capture-reader.js';
import { isPcapflowError, PcapflowError } from '../../src/core/errors.js';
import type { StreamEvent } from '../../src/core/events.js';
import { TcpDemux } from '../../src/core/flow-table.js';
import { SUPPORTED_LINK_TYPES } from '../../src/core/frame-decoder.js';
import { Packet } from '../../src/core/packet.js';
import { PacketDecoder } from '../../src/core/packet-decoder.js';
import { MultipartParser, type MultipartEvent } from '../../src/core/multipart.js';
import { TcpReassembler } from '../../src/core/reassembler.js';
import { TlsParser, type TlsRecord } from '../../src/core/tls.js';
import { zlibInflate } from '../../src/transforms/decode-transforms.js';
import { SHARED_PCAPS } from '../helpers/env.js';
import { ascii, clientHello, ext, record, serverFlight, serverHello, sslv2Hello } from '../helpers/tls-build.js';
import { nodeHashes } from '../helpers/tls-capture.js';

// ------------------------------------------------------------------------------------------
// Run size: bounded and seeded in CI; long and random under `npm run fuzz`.

const FUZZ_SECONDS = Number(process.env.FUZZ_SECONDS ?? 0);
const SEED = Number(process.env.FUZZ_SEED ?? 5);
const LONG = FUZZ_SECONDS > 0;

/** fast-check parameters: `runs` cases in CI, or as many as fit in FUZZ_SECONDS. */
function params(runs: number): fc.Parameters<unknown> {
  if (!LONG) return { seed: SEED, numRuns: runs, endOnFailure: true };
  return { seed: SEED, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: FUZZ_SECONDS * 1000, markInterruptAsFailure: false, endOnFailure: true };
}
const TEST_TIMEOUT = LONG ? FUZZ_SECONDS * 1000 + 120_000 : 60_000;

/** Cases run per property, summed into the report printed at the end of a long run. */
const ran = new Map<string, number>();
function count(name: string): void {
  ran.set(name, (ran.get(name) ?? 0) + 1);
}

/** Time bound of one case (a hang or quadratic work fails it). Generous: CI machines are slow. */
const CASE_MS = 5000;

/** ok: a cheap assertion for per-packet invariants (vitest's expect is too slow for millions of calls). */
function ok(cond: boolean, what: string): void {
  if (!cond) throw new Error(`invariant broken: ${what}`);
}

// ------------------------------------------------------------------------------------------
// Allocation probe: the largest typed array or ArrayBuffer created by a length while `fn` runs.

const RealU8 = globalThis.Uint8Array;
const RealAB = globalThis.ArrayBuffer;
let maxAlloc = 0;
const probe = <T extends object>(real: T): T =>
  new Proxy(real, {
    construct(target, args, newTarget) {
      if (typeof args[0] === 'number' && args[0] > maxAlloc) maxAlloc = args[0];
      return Reflect.construct(target as unknown as new (...a: unknown[]) => object, args, newTarget as new (...a: unknown[]) => object) as object;
    },
  });
const ProbeU8 = probe(RealU8);
const ProbeAB = probe(RealAB);

/** probed runs `fn` with Uint8Array and ArrayBuffer instrumented; returns the largest length allocated. */
function probed(fn: () => void): number {
  maxAlloc = 0;
  globalThis.Uint8Array = ProbeU8;
  globalThis.ArrayBuffer = ProbeAB;
  try {
    fn();
  } finally {
    globalThis.Uint8Array = RealU8;
    globalThis.ArrayBuffer = RealAB;
  }
  return maxAlloc;
}

// ------------------------------------------------------------------------------------------
// Seeds: real captures, cut at a record boundary to at most SEED_BYTES.

const SEED_BYTES = 48 * 1024;
const SEED_FILES = [
  'pcapplusplus__many-interfaces.pcapng',
  'gopacket__pcapng-be-3sections-test202.pcapng',
  'zeek__pcapng-multi-interface-tsresol.pcapng',
  'tcpflow__http-lines-randomized.pcapng',
  'pcapplusplus__pcapng-eth-and-sll.pcapng',
  'zeek__ldap-gap-126-interfaces.pcapng',
  'arkime__80211-radiotap-http.pcap',
  'arkime__nflog-http.pcap',
  'pcapplusplus__http-rst-qinq-pppoe.pcap',
  'zeek__mixed-vlan-mpls.pcap',
  'libpcap__ipv6-ah-ipcomp-tunnel-http.pcap',
  'pcapplusplus__nanosecs-big-endian-http.pcap',
  'suricata-verify__sll2-http-small.pcap',
  'gopacket__null-loopback-ipv6-http.pcap',
  'zeek__ipv4-frags-out-of-order.pcap',
  'arkime__socks5-http-ipv4-frags.pcap',
  'suricata-verify__vlan-ipv6-frag-tcp.pcap',
  'zeek__ipv6-ext-headers-tcp.pcap',
  'tcpdump__bigtcp-ipv6-jumbo.pcap',
  'pcapplusplus__raw-ip-v4-v6.pcap',
  'zeek__http-basic-auth-linktype228.pcap',
  'suricata-verify__ipv6-frag-tcp-linktype229.pcap',
  'arkime__tcp-reassembly-scenarios.pcap',
  'zeek__tcp-reassembly-gaps-halfclose.pcap',
  'arkime__http-retransmissions-overlaps.pcap',
  'pcapplusplus__mixed-126-conns.pcap',
  'tcpdump__pptp-big-endian.pcap',
  'zeek__snaplen68-truncated.pcap',
  'pcapplusplus__dlt12-raw-ipv6-4-http.pcap',
];

/** A field of a capture's framing that a mutation may set: where, how wide, which byte order. */
interface Field {
  pos: number;
  size: 2 | 4;
  le: boolean;
  kind: 'pcap-header' | 'caplen' | 'len' | 'ts' | 'total' | 'trailer' | 'option' | 'idb' | 'epb-iface' | 'epb-caplen' | 'shb';
}

interface Seed {
  name: string;
  bytes: Uint8Array;
  pcapng: boolean;
  fields: Field[];
  /** The seed's packets as comparable strings (packetKey). */
  packets: string[];
}

/** walk lists the framing fields of a valid capture and the offset after the last whole record within `limit` bytes. */
function walk(b: Uint8Array, limit: number): { fields: Field[]; end: number; pcapng: boolean } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: Field[] = [];
  const magic = dv.getUint32(0, false);
  if (magic !== 0x0a0d0d0a) {
    const le = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
    fields.push({ pos: 4, size: 2, le, kind: 'pcap-header' }, { pos: 16, size: 4, le, kind: 'pcap-header' }, { pos: 20, size: 4, le, kind: 'pcap-header' });
    let off = 24;
    while (off + 16 <= b.length) {
      const next = off + 16 + dv.getUint32(off + 8, le);
      if (next > b.length || next > limit) break;
      fields.push({ pos: off + 4, size: 4, le, kind: 'ts' }, { pos: off + 8, size: 4, le, kind: 'caplen' }, { pos: off + 12, size: 4, le, kind: 'len' });
      off = next;
    }
    return { fields, end: off, pcapng: false };
  }
  let off = 0;
  let le = true;
  const options = (from: number, to: number): void => {
    let p = from;
    while (p + 4 <= to) {
      fields.push({ pos: p + 2, size: 2, le, kind: 'option' });
      const code = dv.getUint16(p, le);
      const len = dv.getUint16(p + 2, le);
      if (code === 0) break;
      p += 4 + ((len + 3) & ~3);
    }
  };
  while (off + 12 <= b.length) {
    if (dv.getUint32(off, false) === 0x0a0d0d0a) le = dv.getUint32(off + 8, true) === 0x1a2b3c4d;
    const type = dv.getUint32(off, le);
    const len = dv.getUint32(off + 4, le);
    if (off + len > b.length || (off + len > limit && off > 0)) break;
    fields.push({ pos: off + 4, size: 4, le, kind: 'total' }, { pos: off + len - 4, size: 4, le, kind: 'trailer' });
    if (type === 0x0a0d0d0a) {
      fields.push({ pos: off + 12, size: 2, le, kind: 'shb' });
      options(off + 24, off + len - 4);
    } else if (type === 1) {
      fields.push({ pos: off + 8, size: 2, le, kind: 'idb' }, { pos: off + 12, size: 4, le, kind: 'idb' });
      options(off + 16, off + len - 4);
    } else if (type === 6) {
      const caplen = dv.getUint32(off + 20, le);
      fields.push({ pos: off + 8, size: 4, le, kind: 'epb-iface' }, { pos: off + 20, size: 4, le, kind: 'epb-caplen' });
      options(off + 28 + ((caplen + 3) & ~3), off + len - 4);
    }
    off += len;
  }
  return { fields, end: off, pcapng: true };
}

/** packetKey: a packet as a comparable string (without its index). */
function packetKey(p: Packet): string {
  return `${p.tsSec}.${p.tsNsec} ${p.caplen}/${p.len} lt${p.linkType} if${p.iface} ${Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('hex')}`;
}

function loadSeeds(): Seed[] {
  return SEED_FILES.map((name) => {
    const all = new RealU8(readFileSync(path.join(SHARED_PCAPS, name)));
    const w = walk(all, SEED_BYTES);
    const bytes = all.slice(0, w.end);
    const r = readAll(bytes, [bytes.length]);
    if (r.error !== null) throw new Error(`seed ${name} does not read cleanly: ${r.error.code}`);
    return { name, bytes, pcapng: w.pcapng, fields: w.fields.filter((f) => f.pos + f.size <= bytes.length), packets: r.packets.map(packetKey) };
  });
}

// ------------------------------------------------------------------------------------------
// Mutations.

const INTERESTING = [
  0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 16, 20, 24, 27, 28, 31, 32, 64, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, MAX_RECORD_SIZE - 1, MAX_RECORD_SIZE,
  MAX_RECORD_SIZE + 1, MAX_RECORD_SIZE + 16, MAX_HELD_BLOCK - 4, MAX_HELD_BLOCK, MAX_HELD_BLOCK + 4, 16 * 1024 * 1024, 16 * 1024 * 1024 + 4, 0x7ffffffc, 0x7fffffff,
  0x80000000, 0xfffffff0, 0xfffffffc, 0xffffffff,
];

type Mutation =
  | { op: 'flip'; at: number; value: number }
  | { op: 'cut'; at: number }
  | { op: 'delete'; at: number; len: number }
  | { op: 'repeat'; at: number; len: number }
  | { op: 'field'; which: number; value: number; delta: number };


const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cut' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('field' as const),
      which: fc.nat(),
      value: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat({ max: 0xffffffff })),
      delta: fc.constantFrom(0, 0, 0, 1, -1, 4, -4, 8, -8, 3),
    }),
  },
);

/** mutate applies the mutations in order; `framingOnly`: every one was a cut or set a block's leading or trailing length. */
function mutate(seed: Seed, muts: Mutation[]): { bytes: Uint8Array; framingOnly: boolean } {
  let b = new RealU8(seed.bytes);
  let framingOnly = true;
  for (const m of muts) {
    if (b.length === 0) break;
    switch (m.op) {
      case 'flip':
        b[m.at % b.length] = m.value;
        framingOnly = false;
        break;
      case 'cut':
        b = b.slice(0, m.at % (b.length + 1));
        break;
      case 'delete': {
        framingOnly = false;
        const at = m.at % b.length;
        const out = new RealU8(b.length - Math.min(m.len, b.length - at));
        out.set(b.subarray(0, at));
        out.set(b.subarray(at + m.len), at);
        b = out;
        break;
      }
      case 'repeat': {
        framingOnly = false;
        const at = m.at % b.length;
        const piece = b.subarray(at, Math.min(b.length, at + m.len));
        const out = new RealU8(b.length + piece.length);
        out.set(b.subarray(0, at + piece.length));
        out.set(piece, at + piece.length);
        out.set(b.subarray(at + piece.length), at + 2 * piece.length);
        b = out;
        break;
      }
      case 'field': {
        const f = seed.fields[m.which % seed.fields.length];
        if (f === undefined || f.pos + f.size > b.length) break;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const orig = f.size === 2 ? dv.getUint16(f.pos, f.le) : dv.getUint32(f.pos, f.le);
        const v = m.delta !== 0 ? orig + m.delta : m.value;
        if (f.size === 2) dv.setUint16(f.pos, v & 0xffff, f.le);
        else dv.setUint32(f.pos, v >>> 0, f.le);
        if (f.kind !== 'total' && f.kind !== 'trailer') framingOnly = false;
        break;
      }
    }
  }
  return { bytes: b, framingOnly };
}

// ------------------------------------------------------------------------------------------
// Runners and invariants.

interface ReadAll {
  packets: Packet[];
  error: PcapflowError | null;
  reader: CaptureReader;
}

/** readAll writes `bytes` in pieces of the given sizes (cycled), then ends; non-PcapflowErrors escape. */
function readAll(bytes: Uint8Array, sizes: readonly number[], onBatch?: (b: Packet[]) => void): ReadAll {
  const reader = new CaptureReader({ file: 'fuzz', maxBatch: 64 });
  const packets: Packet[] = [];
  const emit = (batch: Packet[]): void => {
    for (const p of batch) packets.push(p);
    onBatch?.(batch);
  };
  let error: PcapflowError | null = null;
  try {
    let pos = 0;
    for (let i = 0; pos < bytes.length; i++) {
      const n = Math.max(1, sizes[i % sizes.length]!);
      reader.write(bytes.subarray(pos, pos + n), emit);
      pos += n;
    }
    reader.end(emit);
  } catch (e) {
    if (!isPcapflowError(e)) throw e;
    error = e;
  }
  if (error !== null) {
    // a failed reader throws the same error again, and emits nothing more
    const again = (): void => reader.write(new RealU8(8), () => expect.unreachable('emitted after its error'));
    expect(again).toThrow(error);
  }
  return { packets, error, reader };
}

function checkPackets(packets: Packet[]): void {
  let index = 1;
  for (const p of packets) {
    ok(p.index === index++, `packet index ${p.index}`);
    ok(p.data.length === p.caplen, `packet ${p.index}: data.length ${p.data.length} != caplen ${p.caplen}`);
    ok(p.caplen <= MAX_RECORD_SIZE, `packet ${p.index}: caplen ${p.caplen}`);
    ok(Number.isInteger(p.tsNsec) && p.tsNsec >= 0 && p.tsNsec < 1e9, `packet ${p.index}: tsNsec ${p.tsNsec}`);
    ok(Number.isFinite(p.tsSec), `packet ${p.index}: tsSec ${p.tsSec}`);
  }
}

/** isSubsequence: every packet read is one of the seed's, in order. */
function isSubsequence(got: string[], of: string[]): boolean {
  let j = 0;
  for (const g of got) {
    while (j < of.length && of[j] !== g) j++;
    if (j === of.length) return false;
    j++;
  }
  return true;
}

function within(buf: Uint8Array, view: Uint8Array): boolean {
  return view.buffer === buf.buffer && view.byteOffset >= buf.byteOffset && view.byteOffset + view.length <= buf.byteOffset + buf.length;
}

const SKIP_REASONS = new Set([
  'link-unsupported', 'link-malformed', 'link-truncated', 'not-ip', 'ipv4-malformed', 'ipv6-malformed', 'ip-truncated', 'fragment', 'fragment-invalid', 'not-tcp',
  'tcp-malformed', 'tcp-truncated',
]);

/** decodeAll runs packets through a PacketDecoder one batch at a time and checks every decoded field. */
function decodeAll(packets: Packet[], onError: 'skip' | 'fail', keepSkipped = true): { out: Packet[]; error: PcapflowError | null; decoder: PacketDecoder } {
  const decoder = new PacketDecoder({ onError, keepSkipped, inflate: zlibInflate, fragmentMaxBytes: 1 << 16, fragmentTimeout: 5 });
  const copies = packets.map((p) => RealU8.from(p.data));
  const out: Packet[] = [];
  let error: PcapflowError | null = null;
  try {
    for (let i = 0; i < packets.length; i += 7) decoder.write(packets.slice(i, i + 7), (b) => out.push(...b));
    decoder.end();
  } catch (e) {
    if (!isPcapflowError(e)) throw e;
    if (onError === 'skip') throw new Error(`onError 'skip' threw ${e.code}`, { cause: e });
    error = e;
  }
  packets.forEach((p, i) => ok(Buffer.from(p.data).equals(Buffer.from(copies[i]!)), `the decoder wrote into frame ${p.index}`));
  for (const p of out) {
    const at = `packet ${p.index}`;
    if (p.skip !== null) {
      ok(SKIP_REASONS.has(p.skip), `${at}: skip ${p.skip}`);
      continue;
    }
    ok(p.netVersion === 4 || p.netVersion === 6, `${at}: netVersion ${p.netVersion}`);
    ok(p.netOffset <= p.data.length, `${at}: netOffset ${p.netOffset}`);
    ok(p.src.length === 4 || p.src.length === 16, `${at}: src length ${p.src.length}`);
    ok(p.dst.length === p.src.length, `${at}: dst length ${p.dst.length}`);
    ok(p.proto === 6, `${at}: proto ${p.proto}`);
    // a view into the frame, unless rebuilt (fragments, IPComp)
    if (p.l4.buffer === p.data.buffer) ok(within(p.data, p.l4) || p.l4.length === 0, `${at}: l4 outside the frame`);
    ok(p.l4.length <= p.l4Len, `${at}: l4 ${p.l4.length} > l4Len ${p.l4Len}`);
    ok(p.tcpHeaderLen >= 20 && p.tcpHeaderLen <= 60, `${at}: tcpHeaderLen ${p.tcpHeaderLen}`);
    ok(within(p.l4, p.payload) || p.payload.length === 0, `${at}: payload outside l4`);
    ok(p.payload.length <= p.payloadLen, `${at}: payload ${p.payload.length} > payloadLen ${p.payloadLen}`);
    ok(p.payloadLen === p.l4Len - p.tcpHeaderLen, `${at}: payloadLen ${p.payloadLen}`);
    ok(p.sport >= 0 && p.sport < 65536 && p.dport >= 0 && p.dport < 65536, `${at}: ports`);
    ok(p.seq >= 0 && p.seq <= 0xffffffff && p.ack >= 0 && p.ack <= 0xffffffff, `${at}: seq/ack`);
  }
  const s = decoder.stats;
  expect(s.packets).toBe(error === null ? packets.length : s.packets);
  expect(s.bytesHeld).toBeLessThanOrEqual(1 << 16);
  return { out, error, decoder };
}

const PIPE_LIMITS = { maxConnections: 8, maxBufferedPerConnection: 4096, maxBufferedTotal: 12288 };

/** pipeline runs the four synchronous stages on `bytes`; a reader error ends the input as end of file would. */
function pipeline(bytes: Uint8Array, sizes: readonly number[], opts: { idleTimeout: number; overlap: 'first' | 'last'; chunking: 'plain' | 'push' }): StreamEvent[] {
  const decoder = new PacketDecoder({ onError: 'skip', inflate: zlibInflate, fragmentMaxBytes: 1 << 16 });
  const demux = new TcpDemux({ maxConnections: PIPE_LIMITS.maxConnections, idleTimeout: opts.idleTimeout });
  const reasm = new TcpReassembler({ ...PIPE_LIMITS, overlap: opts.overlap, chunking: opts.chunking, pushMaxBytes: 3000 });
  const events: StreamEvent[] = [];
  const take = (evs: StreamEvent[]): void => {
    for (const e of evs) events.push(e);
  };
  const afterDemux = (batch: Packet[]): void => {
    reasm.write(batch, take);
    ok(reasm.stats.bufferedBytes <= PIPE_LIMITS.maxBufferedTotal, `bufferedBytes ${reasm.stats.bufferedBytes}`);
  };
  const decoded = (batch: Packet[]): void => demux.write(batch, afterDemux);
  readAll(bytes, sizes, (batch) => decoder.write(batch, decoded));
  decoder.end();
  demux.end(() => undefined);
  reasm.end(take);
  expect(demux.stats.live).toBeLessThanOrEqual(PIPE_LIMITS.maxConnections);
  expect(reasm.stats.peakBufferedBytes).toBeLessThanOrEqual(PIPE_LIMITS.maxBufferedTotal + 65536);
  return events;
}

/** checkEvents: open first, one close last, contiguous data and gap offsets, close counters equal to the events. */
function checkEvents(events: StreamEvent[]): void {
  interface Dir {
    end: number;
    started: boolean;
    bytes: number;
    missing: number;
  }
  const conns = new Map<number, { closed: boolean; c2s: Dir; s2c: Dir }>();
  const dir = (): Dir => ({ end: 0, started: false, bytes: 0, missing: 0 });
  for (const e of events) {
    if (e.type === 'open') {
      ok(!conns.has(e.conn), `conn ${e.conn} opened twice`);
      conns.set(e.conn, { closed: false, c2s: dir(), s2c: dir() });
      continue;
    }
    const c = conns.get(e.conn);
    if (c === undefined) throw new Error(`event ${e.type} before open of conn ${e.conn}`);
    ok(!c.closed, `event ${e.type} after close of conn ${e.conn}`);
    if (e.type === 'close') {
      c.closed = true;
      for (const d of ['c2s', 's2c'] as const) {
        ok(e[d].bytes === c[d].bytes, `conn ${e.conn} ${d}: close says ${e[d].bytes} bytes, data events ${c[d].bytes}`);
        ok(e[d].missing === c[d].missing, `conn ${e.conn} ${d}: close says ${e[d].missing} missing, gap events ${c[d].missing}`);
      }
      continue;
    }
    if (e.type === 'overlap') continue;
    const d = c[e.dir];
    const len = e.type === 'data' ? e.data.length : e.len;
    ok(len > 0, `conn ${e.conn}: empty ${e.type} event`);
    ok(!d.started || e.offset === d.end, `conn ${e.conn} ${e.dir}: ${e.type} at offset ${e.offset}, expected ${d.end}`);
    d.started = true;
    d.end = e.offset + len;
    if (e.type === 'data') d.bytes += len;
    else d.missing += len;
  }
  for (const [id, c] of conns) ok(c.closed, `conn ${id} never closed`);
}

/** timed fails a case that takes longer than CASE_MS. */
function timed<T>(what: string, fn: () => T): T {
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  if (ms > CASE_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms`);
  return r;
}

const arbSizes = fc.oneof(
  fc.constant([1 << 20]),
  fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 8 }),
  fc.constantFrom([1], [3], [7], [64], [1000], [65536]),
);

// ------------------------------------------------------------------------------------------

const seeds = loadSeeds();
const arbSeed = fc.constantFrom(...seeds);

describe('fuzz: CaptureReader', () => {
  it(
    'random bytes, bare or after a valid pcap or pcapng header',
    () => {
      const headers = [new RealU8(0), seeds.find((s) => !s.pcapng)!.bytes.subarray(0, 24), seeds.find((s) => s.pcapng)!.bytes.subarray(0, 28 + 20)];
      fc.assert(
        fc.property(fc.constantFrom(...headers), fc.uint8Array({ maxLength: 4096 }), arbSizes, (head, body, sizes) => {
          count('reader/random');
          const bytes = new RealU8(head.length + body.length);
          bytes.set(head);
          bytes.set(body, head.length);
          let r: ReadAll | null = null;
          const alloc = probed(() => (r = timed('read', () => readAll(bytes, sizes))));
          expect(alloc).toBeLessThanOrEqual(MAX_HELD_BLOCK);
          checkPackets(r!.packets);
        }),
        params(300),
      );
    },
    TEST_TIMEOUT,
  );

  it(
    'real captures with bytes flipped, records cut, ranges deleted or repeated and length fields set',
    () => {
      fc.assert(
        fc.property(arbSeed, fc.array(arbMutation, { minLength: 1, maxLength: 4 }), arbSizes, (seed, muts, sizes) => {
          count('reader/mutated');
          const { bytes, framingOnly } = mutate(seed, muts);
          let r: ReadAll | null = null;
          const alloc = probed(() => (r = timed('read', () => readAll(bytes, sizes.length === 1 && sizes[0] === 1 ? [17] : sizes))));
          expect(alloc).toBeLessThanOrEqual(MAX_HELD_BLOCK);
          const { packets } = r!;
          checkPackets(packets);
          if (seed.pcapng && framingOnly) expect(isSubsequence(packets.map(packetKey), seed.packets), 'a packet that was not in the capture').toBe(true);
        }),
        params(600),
      );
    },
    TEST_TIMEOUT,
  );
});

describe('fuzz: PacketDecoder', () => {
  const realFrames: Packet[] = [];
  for (const s of seeds) realFrames.push(...readAll(s.bytes, [s.bytes.length]).packets);

  /** frame wraps bytes in a Packet as the reader would. */
  const frame = (data: Uint8Array, linkType: number, cut: number, index: number): Packet => {
    const p = new Packet();
    p.index = index;
    p.tsSec = 1700000000 + index;
    p.data = data;
    p.caplen = data.length;
    p.len = data.length + cut;
    p.linkType = linkType;
    return p;
  };

  const arbLinkType = fc.constantFrom(...SUPPORTED_LINK_TYPES, 147, 9999);
  const arbFrame = fc.record({ lt: arbLinkType, data: fc.uint8Array({ maxLength: 200 }), cut: fc.constantFrom(0, 0, 1, 100) });

  it(
    'random frames under every supported link type',
    () => {
      fc.assert(
        fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 40 }), fc.constantFrom('skip' as const, 'fail' as const), (frames, onError) => {
          count('decoder/random');
          const packets = frames.map((f, i) => frame(f.data, f.lt, f.cut, i + 1));
          timed('decode', () => decodeAll(packets, onError));
        }),
        params(400),
      );
    },
    TEST_TIMEOUT,
  );

  it(
    'real frames with bytes flipped, overwritten or cut, under their own or another link type',
    () => {
      const arbMut = fc.record({
        which: fc.nat(),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        cutTo: fc.option(fc.nat(), { freq: 3 }),
        lt: fc.option(arbLinkType, { freq: 6 }),
        wireCut: fc.constantFrom(0, 0, 0, 7),
      });
      fc.assert(
        fc.property(fc.array(arbMut, { minLength: 1, maxLength: 30 }), fc.constantFrom('skip' as const, 'fail' as const), (muts, onError) => {
          count('decoder/mutated');
          const packets = muts.map((m, i) => {
            const src = realFrames[m.which % realFrames.length]!;
            let data = RealU8.from(src.data);
            for (const [at, v] of m.flips) if (data.length > 0) data[at % data.length] = v;
            if (m.cutTo !== null) data = data.subarray(0, m.cutTo % (data.length + 1));
            return frame(data, m.lt ?? src.linkType, src.len - src.caplen + m.wireCut, i + 1);
          });
          timed('decode', () => decodeAll(packets, onError));
        }),
        params(600),
      );
    },
    TEST_TIMEOUT,
  );
});

// ------------------------------------------------------------------------------------------
// The multipart/form-data parser.

const MP_B = '------------------------22a5480273a448e1';
const mpPart = (nl: string, disposition: string, type: string | null, content: string): string =>
  `--${MP_B}${nl}Content-Disposition: form-data; ${disposition}${nl}${type === null ? '' : `Content-Type: ${type}${nl}`}${nl}${content}${nl}`;
const MP_SEEDS = ['\r\n', '\n'].flatMap((nl) => [
  `preamble${nl}${mpPart(nl, 'name="a"', null, 'value')}${mpPart(nl, 'name="f"; filename="x.bin"', 'application/octet-stream', `bin\r\nary${nl}--${MP_B}x\u0000\xff`)}--${MP_B}--${nl}epilogue`,
  `${mpPart(nl, 'name="e"; filename=""', null, '')}${mpPart(nl, 'name="g"; filename="C:\\a\\b.txt"', 'text/plain', 'x'.repeat(300))}--${MP_B}--`,
  mpPart(nl, 'name="cut"; filename="c"', null, 'no close delimiter'),
]).map((t) => Uint8Array.from(t, (c) => c.charCodeAt(0) & 0xff));

type MpOp = { op: 'flip'; at: number; value: number } | { op: 'delete'; at: number; len: number } | { op: 'repeat'; at: number; len: number } | { op: 'insert'; at: number; text: string };
const arbMpOp: fc.Arbitrary<MpOp> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constantFrom('delete' as const, 'repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 80 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.constantFrom(`\r\n--${MP_B}`, `\n--${MP_B}--`, `--${MP_B}\r\n`, '\r\n\r\n', '\n\n', '--', '\r', ' \t', `Content-Disposition: form-data; name="x"; filename="../y"\r\n`, 'X: '.repeat(40)),
  }),
);

/** mpMutate applies the operations in order. */
function mpMutate(seed: Uint8Array, ops: MpOp[]): Uint8Array {
  let b = seed;
  for (const m of ops) {
    const at = m.at % (b.length + 1);
    if (m.op === 'flip') {
      if (b.length === 0) continue;
      b = b.slice();
      b[m.at % b.length] = m.value;
    } else if (m.op === 'delete') {
      const out = new RealU8(b.length - Math.min(m.len, b.length - at));
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + m.len), at);
      b = out;
    } else {
      const ins = m.op === 'insert' ? Uint8Array.from(m.text, (c: string) => c.charCodeAt(0) & 0xff) : b.slice(at, at + m.len);
      const out = new RealU8(b.length + ins.length);
      out.set(b.subarray(0, at));
      out.set(ins, at);
      out.set(b.subarray(at), at + ins.length);
      b = out;
    }
  }
  return b;
}

/** mpRun parses `body` in pieces of `sizes`, a gap before each piece in `gaps`; checks the events and what is held. */
function mpRun(body: Uint8Array, boundary: string, sizes: readonly number[], gaps: ReadonlySet<number>, maxHeaderBytes: number, maxParts: number): { parts: string[]; error: string | null } {
  const p = new MultipartParser(boundary, { maxHeaderBytes, maxParts });
  const parts: string[] = [];
  let open: { index: number; bytes: number; hash: number; head: string } | null = null;
  const emit = (e: MultipartEvent): void => {
    if (e.type === 'part') {
      ok(open === null, 'a part inside a part');
      ok(e.index === parts.length && e.index < maxParts, `part index ${e.index}`);
      open = { index: e.index, bytes: 0, hash: 0, head: JSON.stringify([e.name, e.filename, e.contentType]) };
      return;
    }
    ok(open !== null && open.index === e.index, `${e.type} of part ${e.index} not open`);
    if (e.type === 'data') {
      ok(e.data.length > 0, 'empty data');
      open!.bytes += e.data.length;
      for (const x of e.data) open!.hash = (open!.hash * 31 + x) >>> 0;
    } else {
      ok(e.bytes === open!.bytes, `end says ${e.bytes} bytes, data ${open!.bytes}`);
      parts.push(`${open!.head} ${e.bytes} ${open!.hash} ${e.complete}`);
      open = null;
    }
  };
  const bound = Math.max(boundary.length + 5, maxHeaderBytes);
  let pos = 0;
  for (let i = 0; pos < body.length; i++) {
    if (gaps.has(i)) p.gap(emit);
    const n = Math.max(1, sizes[i % sizes.length]!);
    p.write(body.subarray(pos, pos + n), emit);
    pos += n;
    ok(p.heldBytes <= bound, `holds ${p.heldBytes} bytes`);
  }
  p.end(emit);
  ok(open === null, 'a part left open');
  ok(p.parts === parts.length, 'parts count');
  return { parts, error: p.error };
}

describe('fuzz: MultipartParser', () => {
  it(
    'mutated multipart bodies in random pieces, with gaps: well-formed parts, bounded memory, the same parts however split',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...MP_SEEDS),
          fc.array(arbMpOp, { maxLength: 6 }),
          arbSizes,
          fc.array(fc.nat({ max: 40 }), { maxLength: 2 }),
          fc.record({ boundary: fc.constantFrom(MP_B, MP_B, MP_B.slice(0, 10), '-', ''), maxHeaderBytes: fc.constantFrom(64, 16384), maxParts: fc.constantFrom(1, 3, 256) }),
          (seed, ops, sizes, gaps, o) => {
            count('multipart/mutated');
            const body = mpMutate(seed, ops);
            const split = timed('multipart', () => mpRun(body, o.boundary, sizes, new Set(gaps), o.maxHeaderBytes, o.maxParts));
            if (gaps.length === 0) expect(split).toEqual(mpRun(body, o.boundary, [body.length + 1], new Set(), o.maxHeaderBytes, o.maxParts));
          },
        ),
        params(600),
      );
    },
    TEST_TIMEOUT,
  );
});

// ------------------------------------------------------------------------------------------
// TLS handshakes: seeds built by hand (test/helpers/tls-build.ts), one connection each.

const TLS_SEEDS: Array<{ c2s: number[]; s2c: number[] }> = [
  { c2s: record(22, clientHello()), s2c: serverFlight() },
  { c2s: [...record(22, clientHello()), ...record(20, [1])], s2c: [...record(22, serverHello({ version: 0x0304, hrr: true })), ...record(20, [1]), ...record(22, serverHello({ version: 0x0304 })), ...record(23, [1, 2])] },
  { c2s: [...sslv2Hello([0x0700c0, 0x00002f]), ...record(22, [16, 0, 0, 1, 0])], s2c: [...serverFlight([[0x30], [0x30, 1, 2, 3, 4, 5, 6, 7]]), ...record(21, [2, 40])] },
  { c2s: [...ascii('CONNECT a:443 HTTP/1.1\r\n\r\n'), ...record(22, clientHello([ext(0x0029, [0, 1, 2])]))], s2c: [...ascii('HTTP/1.1 200 OK\r\n\r\n'), ...serverFlight()] },
];

type TlsOp = { op: 'flip'; at: number; value: number } | { op: 'delete' | 'repeat'; at: number; len: number } | { op: 'length'; at: number; value: readonly number[] };
const arbTlsOp: fc.Arbitrary<TlsOp> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constantFrom('delete' as const, 'repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ op: fc.constant('length' as const), at: fc.nat(), value: fc.constantFrom([0xff, 0xff], [0xff, 0xff, 0xff], [0, 0], [0, 0, 0], [0x40, 0x01], [0x80, 0x00], [0, 1], [0x16, 3, 3]) }),
);

function tlsMutate(bytes: number[], ops: readonly TlsOp[]): number[] {
  const b = bytes.slice();
  for (const m of ops) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.op === 'flip') b[at] = m.value;
    else if (m.op === 'length') b.splice(at, m.value.length, ...m.value);
    else if (m.op === 'delete') b.splice(at, m.len);
    else b.splice(at, 0, ...b.slice(at, at + m.len));
  }
  return b;
}

const JA4_SHAPE = /^t(13|12|11|10|s3|s2|00)[di]\d{4}[0-9A-Za-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$/;

/** tlsRun feeds both directions (all client bytes, then the server's) in pieces of `sizes`, a gap before each piece in `gaps`. */
function tlsRun(c2s: number[], s2c: number[], sizes: readonly number[], gaps: ReadonlySet<number>, o: { maxHandshakeBytes: number; probeBytes: number }): TlsRecord[] {
  const parser = new TlsParser({ hashes: nodeHashes, ...o });
  const out: TlsRecord[] = [];
  const emit = (r: TlsRecord[]): void => void out.push(...r);
  const ep = (port: number) => ({ ip: '10.0.0.1', port });
  const summary = { bytes: 0, packets: 0, retransmitted: 0, outOfOrder: 0, gaps: 0, missing: 0, overlaps: 0, firstTs: null, lastTs: null, capped: 0 };
  parser.write([{ type: 'open', conn: 1, ts: '1.000000000', client: ep(1), server: ep(2), vlan: [], midstream: false, options: { c2s: {}, s2c: {} } }], emit);
  const bound = 2 * (o.maxHandshakeBytes + o.probeBytes);
  let piece = 0;
  for (const [dir, bytes] of [['c2s', c2s], ['s2c', s2c]] as const) {
    let offset = 0;
    for (let pos = 0; pos < bytes.length; piece++) {
      if (gaps.has(piece)) {
        parser.write([{ type: 'gap', conn: 1, dir, offset, len: 7, ts: '1.000000000', reason: 'acked' }], emit);
        offset += 7;
      }
      const n = Math.max(1, sizes[piece % sizes.length]!);
      const data = RealU8.from(bytes.slice(pos, pos + n));
      parser.write([{ type: 'data', conn: 1, dir, offset, ts: '1.000000000', data }], emit);
      pos += n;
      offset += data.length;
      ok(parser.stats.heldBytes <= bound, `holds ${parser.stats.heldBytes} bytes`);
    }
  }
  parser.write([{ type: 'close', conn: 1, ts: '2.000000000', reason: 'fin', client: ep(1), server: ep(2), vlan: [], c2s: summary, s2c: summary }], emit);
  parser.end(emit);
  ok(parser.stats.heldBytes === 0, 'bytes held after the end');
  ok(out.length <= 1, `${out.length} records for one connection`);
  for (const r of out) {
    ok((r.ja4 !== null) === (r.clientHello !== null), 'ja4 without its hello, or a hello without ja4');
    ok(r.ja4 === null || JA4_SHAPE.test(r.ja4), `ja4 ${r.ja4}`);
    ok(r.ja3 === null || r.ja3Hash === nodeHashes.md5(r.ja3), 'ja3 hash');
    ok((r.ja3s !== null) === (r.serverHello !== null), 'ja3s without its hello');
    ok(!r.complete || (r.errors.length === 0 && r.missing.length === 0), 'complete with errors');
    ok(r.certificates.length <= 16 && r.alerts.length <= 16, 'caps');
  }
  return out;
}

describe('fuzz: TlsParser', () => {
  it(
    'mutated handshakes in random pieces, with gaps: no exception, bounded memory and allocations, well-formed records, the same however split',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...TLS_SEEDS),
          fc.array(arbTlsOp, { maxLength: 4 }),
          fc.array(arbTlsOp, { maxLength: 4 }),
          arbSizes,
          fc.array(fc.nat({ max: 30 }), { maxLength: 2 }),
          fc.record({ maxHandshakeBytes: fc.constantFrom(64, 300, 65536), probeBytes: fc.constantFrom(16, 8192) }),
          (seed, opsC, opsS, sizes, gaps, o) => {
            count('tls/mutated');
            const c2s = tlsMutate(seed.c2s, opsC);
            const s2c = tlsMutate(seed.s2c, opsS);
            let split: TlsRecord[] = [];
            const biggest = probed(() => {
              split = timed('tls', () => tlsRun(c2s, s2c, sizes, new Set(gaps), o));
            });
            // the parser's own buffers are bounded by its caps; the test allocates each piece it feeds
            ok(biggest <= Math.max(o.maxHandshakeBytes, o.probeBytes, 64) || biggest <= Math.max(...sizes.map((n) => Math.min(n, Math.max(c2s.length, s2c.length)))), `allocated ${biggest}`);
            if (gaps.length === 0) expect(split).toEqual(tlsRun(c2s, s2c, [1 << 20], new Set(), o));
          },
        ),
        params(600),
      );
    },
    TEST_TIMEOUT,
  );
});

describe('fuzz: reader → decoder → demux → reassembler', () => {
  const tcpSeeds = seeds.filter((s) => s.packets.length > 3);
  it(
    'mutated real captures, with small connection and buffer limits',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...tcpSeeds),
          fc.array(arbMutation, { minLength: 0, maxLength: 4 }),
          arbSizes,
          fc.record({ idleTimeout: fc.constantFrom(0, 1, 300), overlap: fc.constantFrom('first' as const, 'last' as const), chunking: fc.constantFrom('plain' as const, 'push' as const) }),
          (seed, muts, sizes, opts) => {
            count('pipeline/mutated');
            const { bytes } = mutate(seed, muts);
            const events = timed('pipeline', () => pipeline(bytes, sizes.length === 1 && sizes[0] === 1 ? [17] : sizes, opts));
            checkEvents(events);
          },
        ),
        params(250),
      );
    },
    TEST_TIMEOUT,
  );

  it('reports how many inputs ran', () => {
    const total = [...ran.values()].reduce((a, b) => a + b, 0);
    if (LONG) console.log(`fuzz seed ${SEED}: ${JSON.stringify(Object.fromEntries(ran))} (${total} inputs)`);
    expect(total).toBeGreaterThan(0);
  });
});

// ------------------------------------------------------------------------------------------
// Crafted lengths: a claim of up to 4 GB is an error (or a streamed skip) before any allocation
// of that size, and a block longer than a small file neither waits nor allocates.

describe('hostile lengths', () => {
  const pcapHead = seeds.find((s) => s.name === 'arkime__tcp-reassembly-scenarios.pcap')!.bytes.subarray(0, 24);
  const le32 = (...v: number[]): Uint8Array => {
    const out = new RealU8(v.length * 4);
    const dv = new DataView(out.buffer);
    v.forEach((x, i) => dv.setUint32(i * 4, x >>> 0, true));
    return out;
  };
  const cat = (...parts: Uint8Array[]): Uint8Array => {
    const out = new RealU8(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const shb = le32(0x0a0d0d0a, 28, 0x1a2b3c4d, 0x00000001, 0xffffffff, 0xffffffff, 28);
  const idb = le32(1, 20, 1, 0, 20);
  const cases: { name: string; bytes: Uint8Array; code: string | null }[] = [
    { name: 'pcap record claiming 4 GB', bytes: cat(pcapHead, le32(1, 2, 0xffffffff, 0xffffffff), new RealU8(100)), code: 'PCAP_RECORD_TOO_LARGE' },
    { name: 'pcap record claiming 256 KiB + 1', bytes: cat(pcapHead, le32(1, 2, MAX_RECORD_SIZE + 1, 60), new RealU8(100)), code: 'PCAP_RECORD_TOO_LARGE' },
    { name: 'pcap record claiming 256 KiB in a small file', bytes: cat(pcapHead, le32(1, 2, MAX_RECORD_SIZE, 60), new RealU8(100)), code: 'PCAP_TRUNCATED_RECORD' },
    { name: 'pcapng section claiming 4 GB', bytes: cat(le32(0x0a0d0d0a, 0xfffffffc, 0x1a2b3c4d, 1), new RealU8(100)), code: 'PCAPNG_BAD_BLOCK' },
    { name: 'pcapng EPB claiming 4 GB', bytes: cat(shb, idb, le32(6, 0xfffffffc, 0, 0, 0, 60, 60), new RealU8(100)), code: 'PCAPNG_BAD_BLOCK' },
    // sound framing, corrupt content: skipped and counted, no error
    { name: 'pcapng EPB with caplen 4 GB', bytes: cat(shb, idb, le32(6, 128, 0, 0, 0, 0xffffffff, 60), new RealU8(96), le32(128)), code: null },
    { name: 'pcapng IDB claiming 4 GB', bytes: cat(shb, le32(1, 0xfffffffc, 1, 0), new RealU8(100)), code: 'PCAPNG_BAD_BLOCK' },
    { name: 'pcapng unknown block claiming 4 GB', bytes: cat(shb, le32(0x99, 0xfffffffc), new RealU8(100)), code: 'PCAPNG_BAD_BLOCK' },
    { name: 'pcapng unknown block of 16 MiB in a 200-byte file', bytes: cat(shb, le32(0x99, 16 * 1024 * 1024), new RealU8(100)), code: 'PCAPNG_TRUNCATED_BLOCK' },
    { name: 'pcapng EPB of 320 KiB in a 200-byte file', bytes: cat(shb, idb, le32(6, MAX_HELD_BLOCK, 0, 0, 0, 60, 60), new RealU8(100)), code: 'PCAPNG_TRUNCATED_BLOCK' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code ?? 'skipped'}, nothing large allocated`, () => {
      for (const sizes of [[c.bytes.length], [1], [5], [29]]) {
        const before = process.memoryUsage().arrayBuffers;
        let r: ReadAll | null = null;
        const alloc = probed(() => (r = timed('read', () => readAll(c.bytes, sizes))));
        expect(r!.error?.code ?? null).toBe(c.code);
        if (c.code === null) expect(r!.reader.stats.badBlocks).toBe(1);
        expect(alloc).toBeLessThanOrEqual(MAX_HELD_BLOCK);
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
      }
    });
  }

  it('work is linear: 4 MB of the smallest blocks and records read in well under a second each', () => {
    const repeat = (head: Uint8Array, unit: Uint8Array, n: number): Uint8Array => {
      const out = new RealU8(head.length + unit.length * n);
      out.set(head);
      for (let i = 0; i < n; i++) out.set(unit, head.length + i * unit.length);
      return out;
    };
    const tiny = repeat(shb, le32(0x99, 16, 0, 16), 1 << 18);
    const t0 = performance.now();
    const r = readAll(tiny, [4093]);
    expect(r.error).toBeNull();
    expect(r.reader.stats.blocksSkipped).toBe(1 << 18);
    const pcap = repeat(pcapHead, le32(1, 2, 0, 0), 1 << 18);
    const r2 = readAll(pcap, [4093]);
    expect(r2.error).toBeNull();
    expect(r2.packets.length).toBe(1 << 18);
    expect(performance.now() - t0).toBeLessThan(CASE_MS);
  });
});
