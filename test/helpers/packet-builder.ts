/**
 * packet-builder: small pure helpers that build packet bytes for tests (Ethernet, VLAN, IPv4,
 * IPv6, fragments, TCP), with correct IPv4 header and TCP checksums so the results also read
 * cleanly in tcpdump/tshark. Plus `fromXX` to paste `tcpdump -XX` output, `makePacket` to wrap
 * bytes in a Packet as the capture reader would, and `writePcap` to build a classic pcap file.
 */
import { parseIp } from '../../src/core/addr.js';
import { isPcapflowError } from '../../src/core/errors.js';
import { Packet } from '../../src/core/packet.js';

/** hex parses hex digits, ignoring whitespace: hex('4500 0028') */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex: ${s}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * fromXX parses the hex dump that `tcpdump -XX` prints ("\t0x0010:  31ee 0000 ...  1....") and
 * returns the bytes; lines that are not dump lines (the summary line) are ignored.
 */
export function fromXX(dump: string): Uint8Array {
  let all = '';
  for (const line of dump.split('\n')) {
    const m = /^\s*0x[0-9a-f]+:\s\s(.*)$/.exec(line);
    if (m === null) continue;
    all += m[1]!.split('  ')[0]!;
  }
  return hex(all);
}

/** concat joins byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function addr(text: string, len: 4 | 16): Uint8Array {
  const a = parseIp(text);
  if (a === null || a.length !== len) throw new Error(`bad address ${text}`);
  return a;
}

function put16(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >> 8) & 0xff;
  b[i + 1] = v & 0xff;
}

function put32(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >>> 24) & 0xff;
  b[i + 1] = (v >>> 16) & 0xff;
  b[i + 2] = (v >>> 8) & 0xff;
  b[i + 3] = v & 0xff;
}

/** checksum is the Internet checksum (RFC 1071) of the given parts, summed as one byte string. */
export function checksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd = false;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      sum += odd ? p[i]! : p[i]! << 8;
      odd = !odd;
    }
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface TcpSpec {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** Flag bits (TCP_SYN | TCP_ACK ...); default ACK. */
  flags?: number;
  win?: number;
  urgPtr?: number;
  /** Raw option bytes, padded with zeros (end of option list) to a multiple of 4. */
  options?: Uint8Array;
  payload?: Uint8Array | string;
  /** Override the data offset (in 32-bit words) to build malformed headers. */
  dataOffset?: number;
}

function payloadBytes(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

/** tcp builds a TCP header + payload; with `src`/`dst` (4 or 16 bytes) it fills the checksum. */
export function tcp(spec: TcpSpec, src?: Uint8Array, dst?: Uint8Array): Uint8Array {
  const opts = spec.options ?? new Uint8Array(0);
  const optLen = (opts.length + 3) & ~3;
  const hl = 20 + optLen;
  const payload = payloadBytes(spec.payload);
  const b = new Uint8Array(hl + payload.length);
  put16(b, 0, spec.sport ?? 1234);
  put16(b, 2, spec.dport ?? 80);
  put32(b, 4, spec.seq ?? 1000);
  put32(b, 8, spec.ack ?? 0);
  const flags = spec.flags ?? 0x10;
  b[12] = ((spec.dataOffset ?? hl / 4) << 4) | ((flags >> 8) & 1);
  b[13] = flags & 0xff;
  put16(b, 14, spec.win ?? 65535);
  put16(b, 18, spec.urgPtr ?? 0);
  b.set(opts, 20);
  b.set(payload, hl);
  if (src !== undefined && dst !== undefined) {
    const pseudo = new Uint8Array(src.length * 2 + (src.length === 4 ? 4 : 8));
    pseudo.set(src, 0);
    pseudo.set(dst, src.length);
    if (src.length === 4) {
      pseudo[9] = 6;
      put16(pseudo, 10, b.length);
    } else {
      put32(pseudo, 32, b.length);
      pseudo[39] = 6;
    }
    put16(b, 16, checksum(pseudo, b));
  }
  return b;
}

export interface Ipv4Spec {
  src?: string;
  dst?: string;
  proto?: number;
  id?: number;
  ttl?: number;
  df?: boolean;
  /** More-fragments flag. */
  mf?: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset?: number;
  /** Raw option bytes (padded with zeros to a multiple of 4). */
  options?: Uint8Array;
  /** Override the total length field (e.g. 0 for TSO captures). */
  totalLength?: number;
  /** Override the IHL (in 32-bit words) to build malformed headers. */
  ihl?: number;
  /** Override the version nibble. */
  version?: number;
  payload: Uint8Array;
}

/** ipv4 builds an IPv4 header (with its checksum) + payload. */
export function ipv4(spec: Ipv4Spec): Uint8Array {
  const opts = spec.options ?? new Uint8Array(0);
  const hl = 20 + ((opts.length + 3) & ~3);
  const b = new Uint8Array(hl + spec.payload.length);
  b[0] = ((spec.version ?? 4) << 4) | (spec.ihl ?? hl / 4);
  put16(b, 2, spec.totalLength ?? b.length);
  put16(b, 4, spec.id ?? 1);
  put16(b, 6, (spec.df ? 0x4000 : 0) | (spec.mf ? 0x2000 : 0) | ((spec.fragOffset ?? 0) >> 3));
  b[8] = spec.ttl ?? 64;
  b[9] = spec.proto ?? 6;
  b.set(addr(spec.src ?? '10.0.0.1', 4), 12);
  b.set(addr(spec.dst ?? '10.0.0.2', 4), 16);
  b.set(opts, 20);
  put16(b, 10, checksum(b.subarray(0, hl)));
  b.set(spec.payload, hl);
  return b;
}

export interface Ipv6Spec {
  src?: string;
  dst?: string;
  /** Next header of the first header after the fixed header. */
  nextHeader?: number;
  hopLimit?: number;
  /** Override the payload length field (e.g. 0 for jumbograms). */
  payloadLength?: number;
  /** Everything after the fixed header: extension headers and the upper-layer bytes. */
  payload: Uint8Array;
}

/** ipv6 builds an IPv6 fixed header + payload. */
export function ipv6(spec: Ipv6Spec): Uint8Array {
  const b = new Uint8Array(40 + spec.payload.length);
  b[0] = 0x60;
  put16(b, 4, spec.payloadLength ?? spec.payload.length);
  b[6] = spec.nextHeader ?? 6;
  b[7] = spec.hopLimit ?? 64;
  b.set(addr(spec.src ?? '2001:db8::1', 16), 8);
  b.set(addr(spec.dst ?? '2001:db8::2', 16), 24);
  b.set(spec.payload, 40);
  return b;
}

/**
 * ext6 builds a generic IPv6 extension header (hop-by-hop 0, routing 43, destination options 60):
 * next header, length in 8-byte units after the first 8, then `body` padded with zeros (Pad1/PadN-free
 * zero bytes are valid Pad1 options).
 */
export function ext6(nextHeader: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const len = (2 + body.length + 7) & ~7;
  const b = new Uint8Array(len);
  b[0] = nextHeader;
  b[1] = len / 8 - 1;
  b.set(body, 2);
  return b;
}

/** frag6 builds an IPv6 fragment header. */
export function frag6(nextHeader: number, offset: number, more: boolean, id: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = nextHeader;
  put16(b, 2, (offset & 0xfff8) | (more ? 1 : 0));
  put32(b, 4, id);
  return b;
}

/** ah builds an IPv6/IPv4 Authentication Header with an ICV of `icvLen` bytes (length field (n+2)*4). */
export function ah(nextHeader: number, icvLen = 12): Uint8Array {
  const b = new Uint8Array(12 + icvLen);
  b[0] = nextHeader;
  b[1] = b.length / 4 - 2;
  put32(b, 4, 0x1234);
  put32(b, 8, 1);
  return b;
}

export interface EthSpec {
  dst?: Uint8Array;
  src?: Uint8Array;
  /** VLAN ids, outermost first; each tag uses `tpid` (default 0x8100). */
  vlan?: number[];
  tpid?: number;
  type: number;
  payload: Uint8Array;
}

/** ethernet builds an Ethernet II frame, with 802.1Q tags when `vlan` is given. */
export function ethernet(spec: EthSpec): Uint8Array {
  const tags = spec.vlan ?? [];
  const b = new Uint8Array(14 + 4 * tags.length + spec.payload.length);
  b.set(spec.dst ?? hex('000c29000002'), 0);
  b.set(spec.src ?? hex('000c29000001'), 6);
  let o = 12;
  for (const v of tags) {
    put16(b, o, spec.tpid ?? 0x8100);
    put16(b, o + 2, v & 0x0fff);
    o += 4;
  }
  put16(b, o, spec.type);
  b.set(spec.payload, o + 2);
  return b;
}

export interface EthIpTcpSpec extends TcpSpec {
  src?: string;
  dst?: string;
  vlan?: number[];
  ipId?: number;
  ttl?: number;
}

/** ethIpv4Tcp builds Ethernet (+ VLAN tags) / IPv4 / TCP with valid checksums. */
export function ethIpv4Tcp(spec: EthIpTcpSpec = {}): Uint8Array {
  const src = spec.src ?? '10.0.0.1';
  const dst = spec.dst ?? '10.0.0.2';
  const seg = tcp(spec, addr(src, 4), addr(dst, 4));
  const ip: Ipv4Spec = { src, dst, proto: 6, id: spec.ipId ?? 1, df: true, payload: seg };
  if (spec.ttl !== undefined) ip.ttl = spec.ttl;
  const eth: EthSpec = { type: 0x0800, payload: ipv4(ip) };
  if (spec.vlan !== undefined) eth.vlan = spec.vlan;
  return ethernet(eth);
}

/** ethIpv6Tcp builds Ethernet (+ VLAN tags) / IPv6 / TCP with a valid checksum. */
export function ethIpv6Tcp(spec: EthIpTcpSpec = {}): Uint8Array {
  const src = spec.src ?? '2001:db8::1';
  const dst = spec.dst ?? '2001:db8::2';
  const seg = tcp(spec, addr(src, 16), addr(dst, 16));
  const eth: EthSpec = { type: 0x86dd, payload: ipv6({ src, dst, nextHeader: 6, payload: seg }) };
  if (spec.vlan !== undefined) eth.vlan = spec.vlan;
  return ethernet(eth);
}

/**
 * ipv4Fragments splits `payload` (the transport segment) into IPv4 packets of at most
 * `fragSize` payload bytes (rounded down to a multiple of 8), in order; reorder them as needed.
 */
export function ipv4Fragments(spec: Omit<Ipv4Spec, 'payload' | 'mf' | 'fragOffset'>, payload: Uint8Array, fragSize: number): Uint8Array[] {
  const step = fragSize & ~7;
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += step) {
    const end = Math.min(off + step, payload.length);
    out.push(ipv4({ ...spec, fragOffset: off, mf: end < payload.length, payload: payload.subarray(off, end) }));
  }
  return out;
}

/** ipv6Fragments splits `payload` (what follows the fragment header) into IPv6 packets with a fragment header. */
export function ipv6Fragments(spec: Omit<Ipv6Spec, 'payload' | 'nextHeader'>, nextHeader: number, id: number, payload: Uint8Array, fragSize: number): Uint8Array[] {
  const step = fragSize & ~7;
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += step) {
    const end = Math.min(off + step, payload.length);
    out.push(ipv6({ ...spec, nextHeader: 44, payload: concat(frag6(nextHeader, off, end < payload.length, id), payload.subarray(off, end)) }));
  }
  return out;
}

export interface PacketSpec {
  linkType?: number;
  index?: number;
  tsSec?: number;
  tsNsec?: number;
  /** Original length; default the byte count (so caplen < len means truncated). */
  len?: number;
  /** Cut the bytes to this many (the snaplen); `len` stays the full length unless given. */
  snaplen?: number;
}

/** makePacket wraps bytes in a Packet as the capture reader fills it. */
export function makePacket(data: Uint8Array, spec: PacketSpec = {}): Packet {
  const p = new Packet();
  const cut = spec.snaplen !== undefined && spec.snaplen < data.length ? data.subarray(0, spec.snaplen) : data;
  p.index = spec.index ?? 1;
  p.tsSec = spec.tsSec ?? 1_700_000_000;
  p.tsNsec = spec.tsNsec ?? 0;
  p.data = cut;
  p.caplen = cut.length;
  p.len = spec.len ?? data.length;
  p.linkType = spec.linkType ?? 1;
  return p;
}

/** writePcap builds a classic little-endian microsecond pcap file of the given frames. */
export function writePcap(frames: Array<{ data: Uint8Array; tsSec?: number; tsUsec?: number; len?: number }>, linkType = 1, snaplen = 262144): Uint8Array {
  const parts: Uint8Array[] = [];
  const h = new DataView(new ArrayBuffer(24));
  h.setUint32(0, 0xa1b2c3d4, true);
  h.setUint16(4, 2, true);
  h.setUint16(6, 4, true);
  h.setUint32(16, snaplen, true);
  h.setUint32(20, linkType, true);
  parts.push(new Uint8Array(h.buffer));
  for (const f of frames) {
    const r = new DataView(new ArrayBuffer(16));
    r.setUint32(0, f.tsSec ?? 1_700_000_000, true);
    r.setUint32(4, f.tsUsec ?? 0, true);
    r.setUint32(8, f.data.length, true);
    r.setUint32(12, f.len ?? f.data.length, true);
    parts.push(new Uint8Array(r.buffer), f.data);
  }
  return concat(...parts);
}

/** codeOf runs `fn` and gives `CODE@packet` of the PcapflowError it throws, undefined when it throws none (other errors pass). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (isPcapflowError(e)) return `${e.code}@${e.packet}`;
    throw e;
  }
  return undefined;
}
