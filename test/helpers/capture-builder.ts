/**
 * capture-builder: build classic pcap and pcapng files from packet bytes, for tests.
 *
 * - `buildPcap(packets, { linkType, nanos?, bigEndian?, snaplen? })`: a classic pcap file.
 *   Timestamps are given as seconds + nanoseconds; a µs file stores `floor(tsNsec / 1000)`.
 * - `PcapngBuilder`: sections (either byte order), interfaces (link type, snaplen, if_tsresol,
 *   if_tsoffset), Enhanced / Simple / obsolete Packet Blocks, arbitrary other blocks, and raw
 *   bytes for corruption tests. `build()` returns the file.
 * - `concat(...)`, `hex(...)`: small byte helpers.
 */

export interface PcapPacketSpec {
  data: Uint8Array;
  tsSec?: number;
  /** Nanoseconds within the second. */
  tsNsec?: number;
  /** Original length; default data.length. */
  len?: number;
  /** Captured length written in the record header; default data.length (set it to forge corrupt records). */
  caplen?: number;
}

export interface PcapOptions {
  linkType: number;
  /** Nanosecond magic (a1b23c4d) instead of microseconds. */
  nanos?: boolean;
  bigEndian?: boolean;
  /** Default 262144. */
  snaplen?: number;
  /** Default 2.4. */
  versionMajor?: number;
  versionMinor?: number;
  /** The whole 32-bit link-type field (upper bits carry FCS information); default linkType. */
  linkTypeField?: number;
}

/** buildPcap returns a classic pcap file holding `packets`. */
export function buildPcap(packets: PcapPacketSpec[], opts: PcapOptions): Uint8Array {
  const le = !opts.bigEndian;
  let size = 24;
  for (const p of packets) size += 16 + p.data.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, opts.nanos ? 0xa1b23c4d : 0xa1b2c3d4, le);
  dv.setUint16(4, opts.versionMajor ?? 2, le);
  dv.setUint16(6, opts.versionMinor ?? 4, le);
  dv.setUint32(16, opts.snaplen ?? 262144, le);
  dv.setUint32(20, opts.linkTypeField ?? opts.linkType, le);
  let pos = 24;
  for (const p of packets) {
    const ns = p.tsNsec ?? 0;
    dv.setUint32(pos, p.tsSec ?? 0, le);
    dv.setUint32(pos + 4, opts.nanos ? ns : Math.floor(ns / 1000), le);
    dv.setUint32(pos + 8, p.caplen ?? p.data.length, le);
    dv.setUint32(pos + 12, p.len ?? p.data.length, le);
    out.set(p.data, pos + 16);
    pos += 16 + p.data.length;
  }
  return out;
}

/** A pcapng option: code and value bytes (padding is added). */
export interface PcapngOption {
  code: number;
  value: Uint8Array;
}

export interface SectionSpec {
  bigEndian?: boolean;
  versionMajor?: number;
  versionMinor?: number;
  options?: PcapngOption[];
}

export interface IfaceSpec {
  linkType: number;
  /** 0 = no limit. Default 0. */
  snaplen?: number;
  /** The raw if_tsresol byte (bit 7 set: 2^-n); omitted = no option (10^-6). */
  tsresol?: number;
  /** if_tsoffset in seconds (signed 64-bit). */
  tsoffset?: bigint;
  options?: PcapngOption[];
}

export interface EpbSpec {
  iface: number;
  data: Uint8Array;
  /** Timestamp in the interface's units. */
  ts?: bigint;
  len?: number;
  /** Captured length field; default data.length (forge corrupt blocks with it). */
  caplen?: number;
  /** Trailing block length; default the real one (forge corrupt blocks with it). */
  trailer?: number;
  options?: PcapngOption[];
}

/** PcapngBuilder: blocks are appended in call order; each section uses its own byte order. */
export class PcapngBuilder {
  private readonly parts: Uint8Array[] = [];
  private le = true;

  /** Bytes appended so far (the offset the next block will start at). */
  get length(): number {
    let n = 0;
    for (const p of this.parts) n += p.length;
    return n;
  }

  section(spec: SectionSpec = {}): this {
    this.le = !spec.bigEndian;
    const head = new Uint8Array(16);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, 0x1a2b3c4d, this.le);
    dv.setUint16(4, spec.versionMajor ?? 1, this.le);
    dv.setUint16(6, spec.versionMinor ?? 0, this.le);
    dv.setInt32(8, -1, this.le);
    dv.setInt32(12, -1, this.le);
    return this.block(0x0a0d0d0a, concat(head, this.options(spec.options)));
  }

  iface(spec: IfaceSpec): this {
    const head = new Uint8Array(8);
    const dv = new DataView(head.buffer);
    dv.setUint16(0, spec.linkType, this.le);
    dv.setUint32(4, spec.snaplen ?? 0, this.le);
    const opts: PcapngOption[] = [...(spec.options ?? [])];
    if (spec.tsresol !== undefined) opts.push({ code: 9, value: Uint8Array.of(spec.tsresol) });
    if (spec.tsoffset !== undefined) {
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigInt64(0, spec.tsoffset, this.le);
      opts.push({ code: 14, value: v });
    }
    return this.block(1, concat(head, this.options(opts)));
  }

  epb(spec: EpbSpec): this {
    const head = new Uint8Array(20);
    const dv = new DataView(head.buffer);
    const ts = spec.ts ?? 0n;
    dv.setUint32(0, spec.iface, this.le);
    dv.setUint32(4, Number(ts >> 32n), this.le);
    dv.setUint32(8, Number(ts & 0xffffffffn), this.le);
    dv.setUint32(12, spec.caplen ?? spec.data.length, this.le);
    dv.setUint32(16, spec.len ?? spec.data.length, this.le);
    return this.block(6, concat(head, pad(spec.data), this.options(spec.options)), { trailer: spec.trailer });
  }

  /** Obsolete Packet Block (type 2): 16-bit interface id and drops count. */
  pb(spec: EpbSpec): this {
    const head = new Uint8Array(20);
    const dv = new DataView(head.buffer);
    const ts = spec.ts ?? 0n;
    dv.setUint16(0, spec.iface, this.le);
    dv.setUint32(4, Number(ts >> 32n), this.le);
    dv.setUint32(8, Number(ts & 0xffffffffn), this.le);
    dv.setUint32(12, spec.caplen ?? spec.data.length, this.le);
    dv.setUint32(16, spec.len ?? spec.data.length, this.le);
    return this.block(2, concat(head, pad(spec.data)));
  }

  /** Simple Packet Block: `len` is the original length (default data.length). */
  spb(data: Uint8Array, len?: number): this {
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, len ?? data.length, this.le);
    return this.block(3, concat(head, pad(data)));
  }

  /** Any block: type, body (padded to 4), and optionally forged total/trailing lengths. */
  block(type: number, body: Uint8Array, forge: { total?: number; trailer?: number } = {}): this {
    const b = pad(body);
    const total = 12 + b.length;
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, type, this.le);
    dv.setUint32(4, forge.total ?? total, this.le);
    out.set(b, 8);
    dv.setUint32(total - 4, forge.trailer ?? total, this.le);
    this.parts.push(out);
    return this;
  }

  /** Raw bytes, as they are. */
  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    return this;
  }

  build(): Uint8Array {
    return concat(...this.parts);
  }

  private options(opts: PcapngOption[] | undefined): Uint8Array {
    if (opts === undefined || opts.length === 0) return new Uint8Array(0);
    const parts: Uint8Array[] = [];
    for (const o of opts) {
      const h = new Uint8Array(4);
      const dv = new DataView(h.buffer);
      dv.setUint16(0, o.code, this.le);
      dv.setUint16(2, o.value.length, this.le);
      parts.push(h, pad(o.value));
    }
    parts.push(new Uint8Array(4)); // opt_endofopt
    return concat(...parts);
  }
}

/** pad returns `b` padded with zeros to a multiple of 4 bytes. */
export function pad(b: Uint8Array): Uint8Array {
  const rem = b.length % 4;
  if (rem === 0) return b;
  const out = new Uint8Array(b.length + 4 - rem);
  out.set(b);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** hex turns "00 01 ab" (spaces and newlines ignored) into bytes. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** bytesOf returns `n` bytes, byte i = (seed + i) & 0xff: distinct, easy-to-check payloads. */
export function bytesOf(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (seed + i) & 0xff;
  return out;
}
