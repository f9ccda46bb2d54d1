/**
 * FrameDecoder: the link layer. For each packet it finds the network header and sets `vlan`,
 * `netVersion` (4 or 6) and `netOffset`, or sets `skip`.
 *
 * Link types: Ethernet II (1) with 802.1Q/802.1ad/0x9100 tag stacks, MPLS label stacks, PPPoE
 * session + PPP, 802.3 + LLC/SNAP; Linux SLL (113) and SLL2 (276); raw IP (101, 12, 14);
 * IPv4 (228); IPv6 (229); BSD NULL (0, AF in either byte order) and LOOP (108, network order);
 * NFLOG (239); 802.11 with radiotap (127). Anything else: skip 'link-unsupported', counted per
 * link type. A link payload that is not IP (ARP, LLDP, STP, ...): skip 'not-ip'.
 *
 * Truncated is not malformed: a link header cut by the snaplen (caplen < len) gives
 * 'link-truncated', never an error. With `onError: 'fail'` a malformed link header throws
 * PcapflowError LINK_MALFORMED and an unsupported link type LINK_UNSUPPORTED, with the packet index.
 *
 * Batches: `write` decodes each packet in place and compacts the batch array it was given (the
 * array is reused, packets are never copied); skipped packets are dropped unless `keepSkipped`.
 * Packets that arrive with `skip` already set are passed through untouched (or dropped).
 */
import { PcapflowError } from './errors.js';
import type { Packet, SkipReason } from './packet.js';
import type { OnError, Stage } from './stage.js';

/** DecoderOptions are shared by every decoder stage. */
export interface DecoderOptions {
  /** Pass skipped packets on with `skip` set (for `pcapflow packets`); default false: count and drop. */
  keepSkipped?: boolean;
  /** 'skip' (default): count malformed packets and skip them; 'fail': throw PcapflowError. */
  onError?: OnError;
}

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW_12 = 12;
export const LINKTYPE_RAW_14 = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IEEE802_11_RADIOTAP = 127;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_NFLOG = 239;
export const LINKTYPE_LINUX_SLL2 = 276;

/** The link types FrameDecoder understands. */
export const SUPPORTED_LINK_TYPES: readonly number[] = [
  LINKTYPE_NULL,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW_12,
  LINKTYPE_RAW_14,
  LINKTYPE_RAW,
  LINKTYPE_LOOP,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_IEEE802_11_RADIOTAP,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_NFLOG,
  LINKTYPE_LINUX_SLL2,
];

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = 0x8100;
const ETH_QINQ = 0x88a8;
const ETH_QINQ_OLD = 0x9100;
const ETH_MPLS = 0x8847;
const ETH_MPLS_MC = 0x8848;
const ETH_PPPOE_SESSION = 0x8864;

/** Result of the ethertype walk: an IP version, or a skip reason. */
const NOT_IP = 0;
const TRUNC = -1;
const MALFORMED = -2;

function u16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}

/** bump adds `n` to a counter in a map (skip reasons, link types, protocols); shared by the decoder stages. */
export function bump(map: Map<string | number, number>, key: string | number, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

/** compactBatch drops skipped packets from `batch` in place unless `keep`; returns the batch. */
export function compactBatch(batch: Packet[], n: number, keep: boolean): Packet[] {
  if (keep) {
    if (n < batch.length) batch.length = n;
    return batch;
  }
  let j = 0;
  for (let i = 0; i < n; i++) {
    const p = batch[i]!;
    if (p.skip === null) batch[j++] = p;
  }
  batch.length = j;
  return batch;
}

/**
 * runBatch is the shared `write` loop of the decoder stages: decode every packet that carries no
 * skip, compact, emit a non-empty batch. When `decode` throws, the packets before the fault are
 * emitted first, then the error propagates.
 */
export function runBatch(batch: Packet[], emit: (out: Packet[]) => void, keep: boolean, decode: (p: Packet) => boolean): void {
  let i = 0;
  try {
    for (; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.skip === null) decode(p);
    }
  } catch (err) {
    const out = compactBatch(batch, i, keep);
    if (out.length > 0) emit(out);
    throw err;
  }
  const out = compactBatch(batch, batch.length, keep);
  if (out.length > 0) emit(out);
}

/**
 * LayerDecoder is what the three per-layer decoders share: `write` runs `decode` over a batch
 * (runBatch: skipped packets dropped unless keepSkipped, the packets before a fault emitted
 * before the error), skips are counted per reason, `end` emits nothing. A subclass gives
 * `decode` and its stats.
 */
export abstract class LayerDecoder implements Stage<Packet[], Packet[]> {
  protected readonly keepSkipped: boolean;
  protected readonly failOnError: boolean;
  protected readonly skipped = new Map<string | number, number>();
  private readonly decodeFn: (p: Packet) => boolean;

  constructor(options: DecoderOptions) {
    this.keepSkipped = options.keepSkipped ?? false;
    this.failOnError = (options.onError ?? 'skip') === 'fail';
    this.decodeFn = (p) => this.decode(p);
  }

  /** decode decodes one packet's layer, or sets its `skip`; true when the next layer can go on. */
  abstract decode(p: Packet): boolean;

  abstract get stats(): Readonly<Record<string, number>>;

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    runBatch(batch, emit, this.keepSkipped, this.decodeFn);
  }

  end(): void {}

  /** skipStats adds `skipped.<reason>` per reason and `skipped` (their sum) to `s`; returns it. */
  protected skipStats(s: Record<string, number>): Record<string, number> {
    let skipped = 0;
    for (const [k, v] of this.skipped) {
      s[`skipped.${k}`] = v;
      skipped += v;
    }
    s.skipped = skipped;
    return s;
  }
}

export class FrameDecoder extends LayerDecoder {
  private packets = 0;
  private bytes = 0;
  private ip = 0;
  private tagged = 0;
  private readonly perLinkType = new Map<string | number, number>();
  /** The link type of the current run of packets and how many it has not yet added to perLinkType. */
  private runLinkType = -1;
  private runCount = 0;
  private readonly unsupported = new Map<string | number, number>();

  constructor(options: DecoderOptions = {}) {
    super(options);
  }

  /**
   * stats: packets, bytes (captured), ip (packets whose network header was found), vlanTagged,
   * skipped, `skipped.<reason>`, `linkType.<n>` (packets per link type) and
   * `unsupportedLinkType.<n>`.
   */
  override get stats(): Readonly<Record<string, number>> {
    const s = this.skipStats({ packets: this.packets, bytes: this.bytes, ip: this.ip, vlanTagged: this.tagged });
    if (this.runCount > 0) {
      bump(this.perLinkType, this.runLinkType, this.runCount);
      this.runCount = 0;
    }
    for (const [k, v] of this.perLinkType) s[`linkType.${k}`] = v;
    for (const [k, v] of this.unsupported) s[`unsupportedLinkType.${k}`] = v;
    return s;
  }

  /**
   * decode sets vlan, netVersion and netOffset of one packet, or its `skip`; returns true when an
   * IP header was found. Throws PcapflowError (LINK_MALFORMED, LINK_UNSUPPORTED) under onError 'fail'.
   */
  override decode(p: Packet): boolean {
    this.packets++;
    this.bytes += p.caplen;
    const lt = p.linkType;
    // packets of one link type come in runs: count the run, add it to the map when it ends
    if (lt === this.runLinkType) this.runCount++;
    else this.newRun(lt);
    // the frame is bytes base..base+n of b (offsets below are from base; netOffset is too)
    const b = p.dataBuf;
    const base = p.dataOff;
    const n = p.dataEnd - base;
    let r: number; // 4 or 6, or NOT_IP / TRUNC / MALFORMED
    switch (lt) {
      case LINKTYPE_ETHERNET:
        r = n < 14 ? TRUNC : this.ethertype(p, u16(b, base + 12), base + 14);
        break;
      case LINKTYPE_RAW:
      case LINKTYPE_RAW_12:
      case LINKTYPE_RAW_14:
        p.netOffset = 0;
        r = n < 1 ? TRUNC : nibble(b, base);
        break;
      case LINKTYPE_IPV4:
        p.netOffset = 0;
        r = 4;
        break;
      case LINKTYPE_IPV6:
        p.netOffset = 0;
        r = 6;
        break;
      case LINKTYPE_LINUX_SLL:
        r = n < 16 ? TRUNC : this.ethertype(p, u16(b, base + 14), base + 16);
        break;
      case LINKTYPE_LINUX_SLL2:
        r = n < 20 ? TRUNC : this.ethertype(p, u16(b, base), base + 20);
        break;
      case LINKTYPE_NULL:
      case LINKTYPE_LOOP: {
        if (n < 4) {
          r = TRUNC;
          break;
        }
        let af = ((b[base]! << 24) | (b[base + 1]! << 16) | (b[base + 2]! << 8) | b[base + 3]!) >>> 0;
        // NULL: host byte order of the capturing machine, so accept either order. The AF values
        // are small, so a value with a zero low half is the other byte order.
        if (lt === LINKTYPE_NULL && (af & 0xffff) === 0) af = (b[base + 1]! << 8) | b[base]!;
        p.netOffset = 4;
        r = af === 2 ? 4 : af === 10 || af === 24 || af === 28 || af === 30 ? 6 : NOT_IP;
        break;
      }
      case LINKTYPE_NFLOG:
        r = this.nflog(p);
        break;
      case LINKTYPE_IEEE802_11_RADIOTAP:
        r = this.radiotap(p);
        break;
      default:
        bump(this.unsupported, lt);
        return this.skip(p, 'link-unsupported', 'LINK_UNSUPPORTED', `link type ${lt} is not supported`);
    }
    if (r === 4 || r === 6) {
      p.netVersion = r;
      this.ip++;
      if (p.vlan.length > 0) this.tagged++;
      return true;
    }
    if (r === NOT_IP) return this.skip(p, 'not-ip', null, '');
    if (r === TRUNC && p.caplen < p.len) return this.skip(p, 'link-truncated', null, '');
    return this.skip(p, 'link-malformed', 'LINK_MALFORMED', `link-layer header of link type ${lt} is malformed or cut short`);
  }

  private newRun(lt: number): void {
    if (this.runCount > 0) bump(this.perLinkType, this.runLinkType, this.runCount);
    this.runLinkType = lt;
    this.runCount = 1;
  }

  private skip(p: Packet, reason: SkipReason, code: 'LINK_MALFORMED' | 'LINK_UNSUPPORTED' | null, message: string): false {
    p.skip = reason;
    p.netVersion = 0;
    bump(this.skipped, reason);
    if (code !== null && this.failOnError) throw new PcapflowError(code, message, { packet: p.index });
    return false;
  }

  /**
   * ethertype walks an ethertype chain starting with `type` at offset `off` of p.dataBuf (the
   * first byte after the type field): VLAN tags, MPLS, PPPoE, 802.3/LLC/SNAP. Sets vlan and
   * netOffset (from the frame's start, as always).
   */
  private ethertype(p: Packet, type: number, off: number): number {
    const b = p.dataBuf;
    const n = p.dataEnd; // where the frame ends in b
    const base = p.dataOff;
    for (;;) {
      switch (type) {
        case ETH_IPV4:
          p.netOffset = off - base;
          return 4;
        case ETH_IPV6:
          p.netOffset = off - base;
          return 6;
        case ETH_VLAN:
        case ETH_QINQ:
        case ETH_QINQ_OLD: {
          if (off + 4 > n) return TRUNC;
          const vid = u16(b, off) & 0x0fff;
          if (p.vlan.length === 0) p.vlan = [vid];
          else p.vlan.push(vid);
          type = u16(b, off + 2);
          off += 4;
          continue;
        }
        case ETH_MPLS:
        case ETH_MPLS_MC: {
          // Labels of 4 bytes until the bottom-of-stack bit, then the IP version nibble.
          for (;;) {
            if (off + 4 > n) return TRUNC;
            const bos = b[off + 2]! & 1;
            off += 4;
            if (bos) break;
          }
          if (off >= n) return TRUNC;
          const v = b[off]! >> 4;
          if (v === 4 || v === 6) {
            p.netOffset = off - base;
            return v;
          }
          return NOT_IP; // pseudowire control word, Ethernet over MPLS, ...
        }
        case ETH_PPPOE_SESSION: {
          // PPPoE header (6 bytes) then the PPP protocol (2 bytes, or 1 when compressed: odd first byte).
          if (off + 7 > n) return TRUNC;
          off += 6;
          let proto = b[off]!;
          if (proto & 1) {
            off += 1;
          } else {
            if (off + 2 > n) return TRUNC;
            proto = u16(b, off);
            off += 2;
          }
          if (proto === 0x21) {
            p.netOffset = off - base;
            return 4;
          }
          if (proto === 0x57) {
            p.netOffset = off - base;
            return 6;
          }
          return NOT_IP;
        }
        default:
          if (type <= 1500) {
            // 802.3 length field: LLC, and SNAP (AA AA 03, OUI, ethertype) carries an ethertype.
            if (off + 3 > n) return TRUNC;
            if (b[off] === 0xaa && b[off + 1] === 0xaa && b[off + 2] === 0x03) {
              if (off + 8 > n) return TRUNC;
              type = u16(b, off + 6);
              off += 8;
              if (type <= 1500) return NOT_IP;
              continue;
            }
            return NOT_IP;
          }
          return NOT_IP;
      }
    }
  }

  /**
   * nflog: Linux netfilter log (239). A 4-byte header (family, version, resource id), then TLVs
   * (length and type in host byte order, length including the 4-byte TLV header, padded to 4).
   * TLV type 9 (NFULA_PAYLOAD) holds the network packet.
   */
  private nflog(p: Packet): number {
    const b = p.data;
    const n = b.length;
    if (n < 4) return TRUNC;
    let off = 4;
    // Byte order: the first TLV's length must be >= 4 and fit; pick the order that makes it so.
    let le = true;
    if (off + 4 <= n) {
      const l = b[off]! | (b[off + 1]! << 8);
      le = l >= 4 && off + l <= n ? true : !(u16(b, off) >= 4 && off + u16(b, off) <= n);
    }
    while (off + 4 <= n) {
      const len = le ? b[off]! | (b[off + 1]! << 8) : u16(b, off);
      const type = (le ? b[off + 2]! | (b[off + 3]! << 8) : u16(b, off + 2)) & 0x3fff; // without the nested and byte-order flags
      if (len < 4) return MALFORMED;
      if (type === 9) {
        if (off + 4 >= n) return TRUNC;
        const v = b[off + 4]! >> 4;
        if (v !== 4 && v !== 6) return NOT_IP;
        p.netOffset = off + 4;
        return v;
      }
      off += (len + 3) & ~3;
    }
    return off > n ? TRUNC : NOT_IP;
  }

  /**
   * radiotap: the radiotap header (little-endian length at 2), then an 802.11 frame. Only data
   * frames that are not protected and carry LLC/SNAP reach IP.
   */
  private radiotap(p: Packet): number {
    const b = p.dataBuf;
    const base = p.dataOff;
    const n = p.dataEnd; // offsets below are in b
    if (n - base < 4) return TRUNC;
    const rtLen = b[base + 2]! | (b[base + 3]! << 8);
    if (rtLen < 8) return MALFORMED;
    let off = base + rtLen;
    if (off + 24 > n) return TRUNC;
    const fc0 = b[off]!;
    const fc1 = b[off + 1]!;
    const ftype = (fc0 >> 2) & 3;
    const subtype = (fc0 >> 4) & 15;
    if (ftype !== 2) return NOT_IP; // management or control
    if (subtype & 4) return NOT_IP; // null data: no body
    if (fc1 & 0x40) return NOT_IP; // protected: encrypted body
    let hl = 24;
    if ((fc1 & 3) === 3) hl += 6; // to-DS and from-DS: address 4
    if (subtype & 8) {
      hl += 2; // QoS control
      if (fc1 & 0x80) hl += 4; // +HTC
    }
    off += hl;
    if (off + 8 > n) return TRUNC;
    if (b[off] !== 0xaa || b[off + 1] !== 0xaa || b[off + 2] !== 0x03) return NOT_IP;
    return this.ethertype(p, u16(b, off + 6), off + 8);
  }
}

/** nibble reads the IP version nibble of raw-IP link types. */
function nibble(b: Uint8Array, off: number): number {
  const v = b[off]! >> 4;
  return v === 4 || v === 6 ? v : NOT_IP;
}
