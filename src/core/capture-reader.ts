/**
 * CaptureReader: the incremental capture-file parser, the first stage of the pipeline.
 * Classic pcap (both byte orders, µs and ns magic) and pcapng (any number of sections, each with
 * its own byte order and interfaces) are told apart by the magic, never by the file name.
 *
 * Contract:
 * - `write(chunk, emit)` takes bytes of any size and emits, in one or more batches of at most
 *   `maxBatch` packets, every record that chunk completed (nothing when it completed none).
 * - `Packet.data` is a view into the chunk (no copy). Only a record that spans two chunks is
 *   assembled into a buffer of its own. At most one record's worth of bytes is held between
 *   writes: a pcap record (16 + 256 KiB), a pcapng packet block (its length, at most
 *   MAX_HELD_BLOCK) or a block header; blocks the reader does not interpret are skipped as
 *   they stream past, whatever their length.
 * - Errors are PcapflowError with `offset` (input byte offset of the record or block at fault),
 *   `packet` (the index that record would have had) and `file` (option). Every packet before
 *   the fault is emitted first; the error is then thrown, and thrown again by any later call.
 *   `end()` throws when the input stopped inside the file header (CAPTURE_EMPTY) or inside a
 *   record (PCAP_TRUNCATED_RECORD / PCAPNG_TRUNCATED_BLOCK).
 * - A record whose captured length exceeds the file's (or interface's) snaplen is read in full
 *   and counted in `stats.overSnaplen`, as Wireshark does (libpcap too accepts it, cutting it to
 *   the snaplen); with `strictSnaplen` it is PCAP_RECORD_TOO_LARGE. A classic pcap record over
 *   MAX_RECORD_SIZE (256 KiB, libpcap's and Wireshark's limit) is always PCAP_RECORD_TOO_LARGE.
 * - No allocation follows a length read from the input: a length is checked against its limit
 *   before anything is held, and nothing held is ever larger than MAX_HELD_BLOCK.
 *
 * Corruption (see "Limits and failure modes" in the README):
 * - Classic pcap has no framing to check, so any fault stops the reader with an error: a record
 *   over 256 KiB (PCAP_RECORD_TOO_LARGE), a record cut short (PCAP_TRUNCATED_RECORD).
 * - pcapng: a packet is emitted only from a block whose leading and trailing lengths agree.
 *   · A block whose framing is sound (sane length, trailing length equal) but whose content is
 *     not is skipped and counted in `stats.badBlocks`: a packet block shorter than its header,
 *     whose captured length runs past the block or exceeds 256 KiB, or that names an interface
 *     the section does not describe (or describes with a corrupt block); an interface block too
 *     short or whose options run past it (it still takes its interface id, so that the ids of
 *     the interfaces after it stay right, but its packets are skipped and counted).
 *   · A block whose trailing length differs from its leading length is skipped by the leading
 *     length (counted in `badBlocks`) only if the block after it is sound (or the input ends
 *     right after it); if that one's framing is bad too, the reader stops with PCAPNG_BAD_BLOCK
 *     at the first bad block's offset. So a single damaged length is survived, and garbage is
 *     never read as blocks for long.
 *   · A length that cannot be followed (under 12, not a multiple of 4, over 16 MiB), a section
 *     header that cannot be read (PCAPNG_BAD_SECTION) and a block that runs past the end of the
 *     input (PCAPNG_TRUNCATED_BLOCK) stop the reader. With `strictSnaplen`, a captured length
 *     over the interface's snaplen is PCAP_RECORD_TOO_LARGE.
 */

import { type ErrorCode, PcapflowError } from './errors.js';
import { Packet, type PacketPool } from './packet.js';
import type { Stage } from './stage.js';
import { BOM_BE, BOM_LE, BT_EPB, BT_IDB, BT_PB, BT_SHB, BT_SPB, IF_TSOFFSET, IF_TSRESOL, OPT_ENDOFOPT, TsUnit } from './pcapng-format.js';

/** Largest captured length of one record (libpcap's and Wireshark's maximum snaplen). */
export const MAX_RECORD_SIZE = 262144;
/** Largest pcapng block the reader holds whole (packet blocks, SHB, IDB): a maximal packet plus 64 KiB of header and options. */
export const MAX_HELD_BLOCK = MAX_RECORD_SIZE + 65536;
/** Largest pcapng block of any type (libpcap's limit); a longer length is taken as corruption. */
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024;
/** Packets per emitted batch, at most. */
export const DEFAULT_MAX_BATCH = 4096;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_MAGIC_US_SWAPPED = 0xd4c3b2a1;
const PCAP_MAGIC_NS_SWAPPED = 0x4d3cb2a1;
const PCAP_FILE_HEADER = 24;
const PCAP_RECORD_HEADER = 16;
const EPB_HEADER = 28;
const SPB_HEADER = 12;
const SHB_MIN = 28;
const IDB_MIN = 20;

const MODE_HEADER = 0; // before the file header (pcap) or the first SHB (pcapng)
const MODE_RECORDS = 1;
const MODE_TRAILER = 2; // the 4-byte trailing length of a skipped block

export type CaptureFormat = 'pcap' | 'pcapng';

export interface CaptureReaderOptions {
  /** Index of the first packet (1-based numbering continued across files). Default 1. */
  firstIndex?: number;
  /** Input name copied onto errors. */
  file?: string;
  /** Treat a captured length over the snaplen as PCAP_RECORD_TOO_LARGE. Default false. */
  strictSnaplen?: boolean;
  /** Packets per emitted batch, at most. Default 4096. */
  maxBatch?: number;
  /** Where packets come from: reused ones when the consumer gives them back (see PacketPool). Default: new ones. */
  pool?: PacketPool;
}

/** CaptureReaderStats: live counters (a type alias, so it satisfies Stage's index signature). */
export type CaptureReaderStats = {
  /** Packets emitted. */
  packets: number;
  /** Input bytes written. */
  bytes: number;
  /** pcapng Section Header Blocks read (1 for classic pcap). */
  sections: number;
  /** pcapng Interface Description Blocks read (1 for classic pcap). */
  interfaces: number;
  /** pcapng blocks of types the reader does not interpret, skipped by their length (statistics, name resolution, custom, ...). */
  blocksSkipped: number;
  /** pcapng blocks skipped because they were corrupt, packet blocks on a corrupt interface included (see the file comment). */
  badBlocks: number;
  /** Records whose captured length exceeds the snaplen (read in full). */
  overSnaplen: number;
  /** Records cut by the snaplen (captured length < original length). */
  truncated: number;
  /** Records assembled from two or more chunks (copied). */
  spanning: number;
};

/** One pcapng interface of the current section. */
class Iface {
  constructor(
    readonly id: number,
    readonly linkType: number,
    readonly snaplen: number,
    readonly ts: TsUnit,
    /** False for an interface whose block was corrupt: it keeps its id, its packets are skipped. */
    readonly usable: boolean,
  ) {}
}

/** CaptureReader: see the file comment for the contract. */
export class CaptureReader implements Stage<Uint8Array, Packet[]> {
  readonly stats: CaptureReaderStats = { packets: 0, bytes: 0, sections: 0, interfaces: 0, blocksSkipped: 0, badBlocks: 0, overSnaplen: 0, truncated: 0, spanning: 0 };
  private readonly file: string | undefined;
  private readonly strict: boolean;
  private readonly maxBatch: number;
  private readonly pool: PacketPool | null;
  private readonly firstIndex: number;

  private fmt: CaptureFormat | null = null;
  private readonly linkTypeList: number[] = [];
  private index: number;
  private mode = MODE_HEADER;
  private failure: PcapflowError | null = null;

  /** Input offset of the current chunk's first byte. */
  private base = 0;
  /** Byte order of the file (pcap) or of the current section (pcapng). */
  private le = true;

  // classic pcap
  private nanos = false;
  private snaplen = 0;
  private linkType = 0;
  /** Captured lengths above this raise PCAP_RECORD_TOO_LARGE. */
  private recordLimit = MAX_RECORD_SIZE;

  // pcapng
  private ifaces: Iface[] = [];
  private ifaceCount = 0;

  // a record that spans chunks
  private pend: Uint8Array | null = null;
  private pendLen = 0;
  private pendStart = 0;

  // a skipped pcapng block streaming past
  private skipLeft = 0;
  private skipLen = 0;
  private skipStart = 0;
  /** The skipped block is corrupt (already counted in badBlocks), not merely of an unknown type. */
  private skipBad = false;
  /** Offset of a block skipped for a trailing length that differs; -1 once a sound block followed it. */
  private resyncFrom = -1;

  // the batch being filled during one write
  private batch: Packet[] = [];
  private emitFn: ((out: Packet[]) => void) | null = null;

  constructor(options: CaptureReaderOptions = {}) {
    this.firstIndex = options.firstIndex ?? 1;
    this.index = this.firstIndex;
    this.file = options.file;
    this.strict = options.strictSnaplen ?? false;
    this.maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.pool = options.pool ?? null;
  }

  /** The format sniffed from the magic; null before the first 4 bytes. */
  get format(): CaptureFormat | null {
    return this.fmt;
  }

  /** Distinct link types, in the order the file declared them (pcap header, pcapng IDBs). */
  get linkTypes(): readonly number[] {
    return this.linkTypeList;
  }

  /** The index the next packet will get (`firstIndex + stats.packets`). */
  get nextIndex(): number {
    return this.index;
  }

  write(chunk: Uint8Array, emit: (out: Packet[]) => void): void {
    if (this.failure) throw this.failure;
    const end = chunk.length;
    this.stats.bytes += end;
    this.emitFn = emit;
    // packets point into the chunk: a plain Uint8Array over it, so that later views (payloads) are
    // plain Uint8Arrays too, which are cheaper to make than Buffers
    const plain = chunk.constructor === Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, end);
    try {
      if (end > 0) this.consume(plain, end);
    } catch (err) {
      this.fail(err);
    }
    this.flushBatch();
    this.emitFn = null;
    this.base += end;
  }

  end(emit: (out: Packet[]) => void): void {
    if (this.failure) throw this.failure;
    this.emitFn = emit;
    try {
      if (this.mode === MODE_HEADER) {
        const what = this.stats.bytes === 0 ? 'input is empty' : `input ended after ${this.stats.bytes} bytes, inside the file header`;
        throw this.error('CAPTURE_EMPTY', what, 0);
      }
      if (this.skipLeft > 0 || this.mode === MODE_TRAILER) {
        throw this.error('PCAPNG_TRUNCATED_BLOCK', `input ended inside a ${this.skipLen}-byte block`, this.skipStart);
      }
      if (this.pend !== null) {
        const code: ErrorCode = this.fmt === 'pcap' ? 'PCAP_TRUNCATED_RECORD' : 'PCAPNG_TRUNCATED_BLOCK';
        throw this.error(code, `input ended inside a ${this.fmt === 'pcap' ? 'record' : 'block'} (${this.pendLen} bytes of it present)`, this.pendStart);
      }
    } catch (err) {
      this.fail(err);
    }
    this.emitFn = null;
  }

  // ---------------------------------------------------------------------------------------

  private fail(err: unknown): never {
    this.flushBatch();
    this.emitFn = null;
    if (err instanceof PcapflowError) this.failure = err;
    throw err;
  }

  private error(code: ErrorCode, message: string, offset: number): PcapflowError {
    return new PcapflowError(code, message, { packet: this.index, offset, file: this.file });
  }

  private flushBatch(): void {
    if (this.batch.length > 0 && this.emitFn !== null) {
      const out = this.batch;
      this.batch = [];
      this.emitFn(out);
    }
  }

  private push(p: Packet): void {
    this.batch.push(p);
    this.stats.packets++;
    if (this.batch.length >= this.maxBatch) this.flushBatch();
  }

  /** consume walks one chunk: skipped-block bytes, the spanning record, whole records, then stashes the tail. */
  private consume(chunk: Uint8Array, end: number): void {
    const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    while (pos < end) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, end - pos);
        this.skipLeft -= n;
        pos += n;
        if (this.skipLeft === 0) this.mode = MODE_TRAILER;
        continue;
      }
      if (this.pend !== null) {
        pos = this.fillPending(chunk, pos, end);
        continue;
      }
      if (this.mode === MODE_RECORDS && this.fmt === 'pcap') {
        pos = this.runPcap(chunk, dv, pos, end);
        if (pos >= end) break;
      }
      const avail = end - pos;
      const off = this.base + pos;
      const n = this.need(dv, pos, avail, off);
      if (n > avail) {
        const held = new Uint8Array(n);
        held.set(chunk.subarray(pos, end));
        this.pend = held;
        this.pendLen = avail;
        this.pendStart = off;
        break;
      }
      this.record(chunk, dv, pos, n, off);
      pos += n;
    }
  }

  /** fillPending copies bytes into the held record; when it is whole, parses it. Returns the new position. */
  private fillPending(chunk: Uint8Array, pos: number, end: number): number {
    let held = this.pend as Uint8Array;
    for (;;) {
      const take = Math.min(held.length - this.pendLen, end - pos);
      held.set(chunk.subarray(pos, pos + take), this.pendLen);
      this.pendLen += take;
      pos += take;
      if (this.pendLen < held.length) return pos;
      const dv = new DataView(held.buffer, held.byteOffset, held.byteLength);
      const n = this.need(dv, 0, this.pendLen, this.pendStart);
      if (n > this.pendLen) {
        const bigger = new Uint8Array(n);
        bigger.set(held);
        held = bigger;
        this.pend = held;
        continue;
      }
      this.pend = null;
      this.stats.spanning++;
      this.record(held, dv, 0, n, this.pendStart);
      return pos;
    }
  }

  /**
   * need tells how many bytes the next record takes, validating what it can see: the header size
   * when fewer than that are available, else the whole record's length (a skipped block's
   * "record" is its 8-byte header). Throws on a corrupt header.
   */
  private need(dv: DataView, pos: number, avail: number, off: number): number {
    if (this.mode === MODE_TRAILER) return 4;
    if (this.mode === MODE_HEADER) {
      if (avail < 4) return 4;
      const magic = dv.getUint32(pos, false);
      if (magic === BT_SHB) {
        this.fmt = 'pcapng';
        return this.needBlock(dv, pos, avail, off);
      }
      if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_US_SWAPPED || magic === PCAP_MAGIC_NS_SWAPPED) {
        this.fmt = 'pcap';
        return PCAP_FILE_HEADER;
      }
      throw this.error('CAPTURE_BAD_MAGIC', `not a pcap or pcapng file (magic ${magic.toString(16).padStart(8, '0')})`, off);
    }
    if (this.fmt === 'pcap') {
      if (avail < PCAP_RECORD_HEADER) return PCAP_RECORD_HEADER;
      const caplen = dv.getUint32(pos + 8, this.le);
      if (caplen > this.recordLimit) this.tooLarge(caplen, this.snaplen, off);
      return PCAP_RECORD_HEADER + caplen;
    }
    return this.needBlock(dv, pos, avail, off);
  }

  /**
   * needBlock: how many bytes of a pcapng block to hold, from its 8-byte header: the block's
   * length for the types the reader interprets (at most MAX_HELD_BLOCK), else 8 (the header
   * alone: the body is skipped as it streams past). A length that cannot be followed throws.
   */
  private needBlock(dv: DataView, pos: number, avail: number, off: number): number {
    if (avail < 8) return 8;
    const type = dv.getUint32(pos, this.le);
    if (type === BT_SHB) {
      if (avail < 12) return 12;
      const bom = dv.getUint32(pos + 8, true);
      if (bom !== BOM_LE && bom !== BOM_BE) throw this.error('PCAPNG_BAD_SECTION', `section header with byte-order magic ${bom.toString(16)}`, off);
      const len = dv.getUint32(pos + 4, bom === BOM_LE);
      if (len < SHB_MIN || len % 4 !== 0 || len > MAX_HELD_BLOCK) throw this.error('PCAPNG_BAD_BLOCK', `section header block length ${len}`, off);
      return len;
    }
    const len = dv.getUint32(pos + 4, this.le);
    if (len < 12 || len % 4 !== 0 || len > MAX_BLOCK_SIZE) {
      if (this.resyncFrom >= 0) throw this.unsynced(this.resyncFrom, `block of type ${type} with length ${len}`);
      throw this.error('PCAPNG_BAD_BLOCK', `block of type ${type} with length ${len}`, off);
    }
    if (type === BT_EPB || type === BT_PB || type === BT_SPB || type === BT_IDB) return len > MAX_HELD_BLOCK ? 8 : len;
    return 8;
  }

  /** unsynced: the error when the block after a skipped corrupt block is not sound either. */
  private unsynced(at: number, what: string): PcapflowError {
    return this.error('PCAPNG_BAD_BLOCK', `trailing block length differs from the leading one, and the block after it is corrupt too (${what})`, at);
  }

  private tooLarge(caplen: number, snaplen: number, off: number): never {
    const limit = caplen > MAX_RECORD_SIZE ? `the maximum of ${MAX_RECORD_SIZE}` : `the snaplen of ${snaplen}`;
    throw this.error('PCAP_RECORD_TOO_LARGE', `record captures ${caplen} bytes, more than ${limit}`, off);
  }

  /** record parses one whole record of `len` bytes at `pos` (input offset `off`). */
  private record(buf: Uint8Array, dv: DataView, pos: number, len: number, off: number): void {
    if (this.mode === MODE_TRAILER) {
      const trailer = dv.getUint32(pos, this.le);
      this.mode = MODE_RECORDS;
      if (trailer !== this.skipLen) this.badFraming(this.skipStart, `trailing block length ${trailer} differs from ${this.skipLen}`, !this.skipBad);
      else this.resyncFrom = -1;
      return;
    }
    if (this.fmt === 'pcap') {
      if (this.mode === MODE_HEADER) this.pcapHeader(dv, pos, off);
      else this.pcapRecord(buf, dv, pos, off);
      return;
    }
    this.block(buf, dv, pos, len, off);
  }

  // --- classic pcap ----------------------------------------------------------------------

  private pcapHeader(dv: DataView, pos: number, off: number): void {
    const magic = dv.getUint32(pos, false);
    this.le = magic === PCAP_MAGIC_US_SWAPPED || magic === PCAP_MAGIC_NS_SWAPPED;
    this.nanos = magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_NS_SWAPPED;
    const major = dv.getUint16(pos + 4, this.le);
    const minor = dv.getUint16(pos + 6, this.le);
    if (major !== 2) throw this.error('PCAP_BAD_VERSION', `pcap version ${major}.${minor}, expected 2.x`, off);
    this.snaplen = dv.getUint32(pos + 16, this.le);
    this.linkType = dv.getUint32(pos + 20, this.le) & 0xffff;
    this.recordLimit = this.strict && this.snaplen > 0 && this.snaplen < MAX_RECORD_SIZE ? this.snaplen : MAX_RECORD_SIZE;
    this.linkTypeList.push(this.linkType);
    this.stats.sections = 1;
    this.stats.interfaces = 1;
    this.mode = MODE_RECORDS;
  }

  /** runPcap: the hot loop over the whole pcap records of a chunk. Returns where it stopped. */
  private runPcap(buf: Uint8Array, dv: DataView, pos: number, end: number): number {
    const le = this.le;
    const limit = this.recordLimit;
    const snaplen = this.snaplen;
    const nsMul = this.nanos ? 1 : 1000;
    const linkType = this.linkType;
    while (end - pos >= PCAP_RECORD_HEADER) {
      const caplen = dv.getUint32(pos + 8, le);
      if (caplen > limit) return pos; // need() raises the error
      const next = pos + PCAP_RECORD_HEADER + caplen;
      if (next > end) return pos;
      const p = this.pool === null ? new Packet() : this.pool.take();
      p.index = this.index++;
      let sec = dv.getUint32(pos, le);
      let ns = dv.getUint32(pos + 4, le) * nsMul;
      if (ns >= 1e9) {
        sec += Math.floor(ns / 1e9);
        ns %= 1e9;
      }
      p.tsSec = sec;
      p.tsNsec = ns;
      p.caplen = caplen;
      const len = dv.getUint32(pos + 12, le);
      p.len = len;
      p.linkType = linkType;
      p.dataBuf = buf;
      p.dataOff = pos + PCAP_RECORD_HEADER;
      p.dataEnd = next;
      if (len > caplen) this.stats.truncated++;
      if (caplen > snaplen && snaplen !== 0) this.stats.overSnaplen++;
      this.batch.push(p);
      this.stats.packets++;
      if (this.batch.length >= this.maxBatch) this.flushBatch();
      pos = next;
    }
    return pos;
  }

  /** pcapRecord: one record assembled across chunks (same fields as runPcap). */
  private pcapRecord(buf: Uint8Array, dv: DataView, pos: number, off: number): void {
    const end = this.runPcap(buf, dv, pos, buf.length);
    if (end === pos) throw this.error('PCAP_TRUNCATED_RECORD', 'record shorter than its header says', off);
  }

  // --- pcapng ----------------------------------------------------------------------------

  private block(buf: Uint8Array, dv: DataView, pos: number, len: number, off: number): void {
    const le = this.le;
    const type = dv.getUint32(pos, le);
    if (len === 8 && type !== BT_SHB) {
      // not held: skip the body as it streams past (an unknown type, or a block too large to hold)
      const blockLen = dv.getUint32(pos + 4, le);
      const bad = type === BT_EPB || type === BT_PB || type === BT_SPB || type === BT_IDB;
      if (bad) {
        this.stats.badBlocks++;
        if (type === BT_IDB) this.addIface(0, 0, new TsUnit(), false);
      } else {
        this.stats.blocksSkipped++;
      }
      this.skipBad = bad;
      this.skipLen = blockLen;
      this.skipStart = off;
      this.skipLeft = blockLen - 12;
      if (this.skipLeft === 0) this.mode = MODE_TRAILER;
      return;
    }
    if (type === BT_SHB) {
      this.sectionBlock(dv, pos, len, off);
      this.resyncFrom = -1;
      return;
    }
    const trailer = dv.getUint32(pos + len - 4, le);
    if (trailer !== len) {
      if (type === BT_IDB) this.addIface(0, 0, new TsUnit(), false);
      this.badFraming(off, `trailing block length ${trailer} differs from ${len}`, true);
      return;
    }
    this.resyncFrom = -1;
    switch (type) {
      case BT_EPB:
      case BT_PB:
        this.packetBlock(buf, dv, pos, len, off, type);
        return;
      case BT_SPB:
        this.simplePacketBlock(buf, dv, pos, len);
        return;
      case BT_IDB:
        this.interfaceBlock(dv, pos, len);
        return;
      default:
        throw this.error('PCAPNG_BAD_BLOCK', `unexpected block type ${type}`, off);
    }
  }

  /**
   * badFraming: a block whose trailing length differs from its leading length. It is skipped
   * (reading goes on at its leading length) unless the block before it was skipped for the same
   * fault: then the reader stops at the first of them.
   */
  private badFraming(off: number, what: string, count: boolean): void {
    if (this.resyncFrom >= 0) throw this.unsynced(this.resyncFrom, what);
    if (count) this.stats.badBlocks++;
    this.resyncFrom = off;
  }

  private checkTrailer(dv: DataView, pos: number, len: number, off: number, le: boolean): void {
    const trailer = dv.getUint32(pos + len - 4, le);
    if (trailer !== len) throw this.error('PCAPNG_BAD_BLOCK', `trailing block length ${trailer} differs from ${len}`, off);
  }

  private sectionBlock(dv: DataView, pos: number, len: number, off: number): void {
    const le = dv.getUint32(pos + 8, true) === BOM_LE;
    const major = dv.getUint16(pos + 12, le);
    const minor = dv.getUint16(pos + 14, le);
    if (major !== 1) throw this.error('PCAPNG_BAD_SECTION', `pcapng version ${major}.${minor}, expected 1.x`, off);
    const optEnd = pos + len - 4;
    let p = pos + 24;
    while (p + 4 <= optEnd) {
      const code = dv.getUint16(p, le);
      const olen = dv.getUint16(p + 2, le);
      if (code === OPT_ENDOFOPT) break;
      const next = p + 4 + ((olen + 3) & ~3);
      if (next > optEnd) throw this.error('PCAPNG_BAD_SECTION', `section header option ${code} (${olen} bytes) runs past the block`, off);
      p = next;
    }
    this.checkTrailer(dv, pos, len, off, le);
    this.le = le;
    this.ifaces = [];
    this.stats.sections++;
    this.mode = MODE_RECORDS;
  }

  /** interfaceBlock reads an IDB whose framing was checked; a corrupt one still takes its id, as an unusable interface. */
  private interfaceBlock(dv: DataView, pos: number, len: number): void {
    if (len < IDB_MIN) {
      this.stats.badBlocks++;
      this.addIface(0, 0, new TsUnit(), false);
      return;
    }
    const le = this.le;
    const linkType = dv.getUint16(pos + 8, le);
    const snaplen = dv.getUint32(pos + 12, le);
    let tsresol = 6;
    let tsoffset = 0;
    const optEnd = pos + len - 4;
    let p = pos + 16;
    while (p + 4 <= optEnd) {
      const code = dv.getUint16(p, le);
      const olen = dv.getUint16(p + 2, le);
      if (code === OPT_ENDOFOPT) break;
      const next = p + 4 + ((olen + 3) & ~3);
      if (next > optEnd) {
        this.stats.badBlocks++;
        this.addIface(linkType, snaplen, new TsUnit(), false);
        return;
      }
      if (code === IF_TSRESOL && olen >= 1) tsresol = dv.getUint8(p + 4);
      else if (code === IF_TSOFFSET && olen >= 8) tsoffset = Number(dv.getBigInt64(p + 4, le));
      p = next;
    }
    this.addIface(linkType, snaplen, new TsUnit(tsresol, tsoffset), true);
  }

  private addIface(linkType: number, snaplen: number, ts: TsUnit, usable: boolean): void {
    this.ifaces.push(new Iface(this.ifaceCount++, linkType, snaplen, ts, usable));
    this.stats.interfaces++;
    if (usable && !this.linkTypeList.includes(linkType)) this.linkTypeList.push(linkType);
  }

  /** iface: the usable interface `id` of this section, or null (the block is then skipped as corrupt). */
  private iface(id: number): Iface | null {
    const f = this.ifaces[id];
    return f !== undefined && f.usable ? f : null;
  }

  private packetBlock(buf: Uint8Array, dv: DataView, pos: number, len: number, off: number, type: number): void {
    const le = this.le;
    if (len < EPB_HEADER + 4) {
      this.stats.badBlocks++;
      return;
    }
    const caplen = dv.getUint32(pos + 20, le);
    const f = this.iface(type === BT_EPB ? dv.getUint32(pos + 8, le) : dv.getUint16(pos + 8, le));
    if (f === null || caplen > MAX_RECORD_SIZE || EPB_HEADER + caplen + 4 > len) {
      this.stats.badBlocks++;
      return;
    }
    if (caplen > f.snaplen && f.snaplen !== 0) {
      if (this.strict) this.tooLarge(caplen, f.snaplen, off);
      this.stats.overSnaplen++;
    }
    const ts = f.ts;
    ts.split(dv.getUint32(pos + 12, le), dv.getUint32(pos + 16, le));
    const p = this.pool === null ? new Packet() : this.pool.take();
    p.index = this.index++;
    p.tsSec = ts.sec;
    p.tsNsec = ts.nsec;
    p.caplen = caplen;
    p.len = dv.getUint32(pos + 24, le);
    p.linkType = f.linkType;
    p.iface = f.id;
    p.dataBuf = buf;
    p.dataOff = pos + EPB_HEADER;
    p.dataEnd = pos + EPB_HEADER + caplen;
    if (p.len > caplen) this.stats.truncated++;
    this.push(p);
  }

  private simplePacketBlock(buf: Uint8Array, dv: DataView, pos: number, len: number): void {
    const le = this.le;
    const f = this.iface(0);
    const origLen = len < SPB_HEADER + 4 ? 0 : dv.getUint32(pos + 8, le);
    let caplen = Math.min(origLen, len - SPB_HEADER - 4);
    if (f !== null && f.snaplen !== 0 && caplen > f.snaplen) caplen = f.snaplen;
    if (f === null || len < SPB_HEADER + 4 || caplen > MAX_RECORD_SIZE) {
      this.stats.badBlocks++;
      return;
    }
    const p = this.pool === null ? new Packet() : this.pool.take();
    p.index = this.index++;
    p.caplen = caplen;
    p.len = origLen;
    p.linkType = f.linkType;
    p.iface = f.id;
    p.dataBuf = buf;
    p.dataOff = pos + SPB_HEADER;
    p.dataEnd = pos + SPB_HEADER + caplen;
    if (origLen > caplen) this.stats.truncated++;
    this.push(p);
  }
}
