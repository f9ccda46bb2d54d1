/**
 * IpDecoder: the network layer. For each packet whose `netVersion`/`netOffset` the frame decoder
 * set, it sets the addresses (srcBuf/srcOff, dstBuf/dstOff, addrLen: read as `src`/`dst`), `proto`,
 * the segment (l4Buf/l4Off/l4End: `l4`), `l4Len` and `fragments`, or `skip`. No view is made
 * per packet: the fields point into the packet's bytes.
 *
 * - IPv4: version, IHL >= 5 and the total length are checked. Total length 0 (TSO captures)
 *   means "the rest of the frame" (its wire length). Bytes past the total length (Ethernet
 *   padding) are cut off. Options are skipped.
 * - IPv6: the payload length, then the extension-header chain: hop-by-hop (with the Jumbo
 *   Payload option when the payload length is 0), routing, destination options, mobility, HIP,
 *   shim6, fragment (atomic fragments pass through), AH (both versions). ESP, No Next Header
 *   and every non-TCP protocol: skip 'not-tcp', counted per protocol (`notTcpProto.<n>`).
 * - IP-in-IP (4) and IPv6-in-IP (41): the inner packet is decoded; `src`/`dst` are the inner
 *   addresses, as tshark reports them for TCP. IPComp (108) is decoded only when the `inflate`
 *   option is given (the core imports no zlib; the transform passes node:zlib's raw inflate).
 * - Fragments (both versions) go to a Defragmenter (copies, byte cap, capture-time timeout):
 *   a fragment that does not complete its datagram gets skip 'fragment'; the frame that
 *   completes it carries the reassembled segment (`l4` a new buffer, `fragments` = count).
 *
 * Truncated is not malformed: a header or length beyond the captured bytes of a packet the
 * snaplen cut (caplen < len) gives skip 'ip-truncated'; a TCP segment cut inside its payload
 * passes with `l4Len` as the IP header gives it and `l4` the bytes present. A truncated fragment
 * cannot be reassembled: 'ip-truncated'.
 *
 * Short frames: a frame the snaplen did not cut (caplen == len) whose outer IPv4 total length
 * or IPv6 payload length runs past its end (tshark: "IPv4 total length exceeds packet length")
 * is taken as truncated too, as tshark does: counted in `shortFrames`, its TCP segment passes
 * with `l4Len` from the IP header and `l4` the bytes present (the reassembler reports the rest
 * as a `truncated` gap). Only payload bytes may be missing: a header that does not fit in such
 * a frame (an inner IP header, an extension header; the TCP header is checked by the
 * TcpDecoder) is malformed, as before. A short fragment is not reassembled (its missing
 * bytes would be garbage in the datagram): 'ip-truncated', as a fragment the snaplen cut; its
 * datagram stays incomplete and expires. The same for a short IPComp payload (not inflated).
 * An inner (tunnelled) length past the outer one, in a frame that has all its bytes, stays
 * malformed.
 *
 * With `onError: 'fail'` a malformed header throws
 * PcapflowError IPV4_BAD_HEADER / IPV6_BAD_HEADER, an invalid fragment IP_FRAGMENT_INVALID.
 * A fragment dropped by the byte cap is skipped ('fragment-invalid') and never thrown.
 */
import { ADD_COMPLETE, ADD_HELD, ADD_INVALID, Defragmenter } from './defrag.js';
import { PcapflowError, type ErrorCode } from './errors.js';
import { bump, LayerDecoder, type DecoderOptions } from './frame-decoder.js';
import { EMPTY, type Packet, type SkipReason } from './packet.js';

export interface IpDecoderOptions extends DecoderOptions {
  /** Most fragment payload bytes held for reassembly; default 64 MiB. */
  fragmentMaxBytes?: number;
  /** Capture-time seconds an incomplete datagram is kept after its first fragment; default 30. */
  fragmentTimeout?: number;
  /** Raw DEFLATE decompressor for IPComp payloads (null result = cannot); IPComp is 'not-tcp' without it. */
  inflate?: ((data: Uint8Array) => Uint8Array | null) | null;
}

/** Deepest nesting of IP-in-IP tunnels followed. */
const MAX_DEPTH = 8;

function u16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

export class IpDecoder extends LayerDecoder {
  /** The reassembly table; its stats are merged into this stage's. */
  readonly defrag: Defragmenter;
  private readonly inflate: ((data: Uint8Array) => Uint8Array | null) | null;
  private packets = 0;
  private v4 = 0;
  private v6 = 0;
  private tcp = 0;
  private truncated = 0;
  private shortFrames = 0;
  private tunnels = 0;
  private readonly notTcpByProto = new Map<string | number, number>();

  constructor(options: IpDecoderOptions = {}) {
    super(options);
    this.inflate = options.inflate ?? null;
    const d: { maxBytes?: number; timeout?: number } = {};
    if (options.fragmentMaxBytes !== undefined) d.maxBytes = options.fragmentMaxBytes;
    if (options.fragmentTimeout !== undefined) d.timeout = options.fragmentTimeout;
    this.defrag = new Defragmenter(d);
  }

  /** end drops the datagrams still incomplete (counted in incompleteExpired); emits nothing. */
  override end(): void {
    this.defrag.flush();
  }

  /**
   * stats: packets, ipv4, ipv6 (outer header), tcp (segments found), truncated (segments with
   * bytes missing), shortFrames (frames not cut by the snaplen whose IP length runs past their
   * end, TCP or not), tunnels, skipped, `skipped.<reason>`, `notTcpProto.<n>`, and the
   * Defragmenter's: fragments, datagramsReassembled, incompleteExpired, overlaps,
   * fragmentsInvalid, bytesHeld, droppedByCap.
   */
  override get stats(): Readonly<Record<string, number>> {
    const s = this.skipStats({
      packets: this.packets,
      ipv4: this.v4,
      ipv6: this.v6,
      tcp: this.tcp,
      truncated: this.truncated,
      shortFrames: this.shortFrames,
      tunnels: this.tunnels,
    });
    for (const [k, v] of this.notTcpByProto) s[`notTcpProto.${k}`] = v;
    Object.assign(s, this.defrag.stats);
    return s;
  }

  /**
   * decode fills the IP fields of one packet, or its `skip`; returns true when a TCP segment was
   * found. Throws PcapflowError (IPV4_BAD_HEADER, IPV6_BAD_HEADER, IP_FRAGMENT_INVALID) under
   * onError 'fail'.
   */
  override decode(p: Packet): boolean {
    this.packets++;
    const df = this.defrag;
    if (df.pending > 0) df.expire(p.tsSec, p.tsNsec);

    // offsets are in buf: the frame is p.dataOff..p.dataEnd of p.dataBuf
    let buf = p.dataBuf;
    let off = p.dataOff + p.netOffset;
    let version = p.netVersion;
    let capEnd = p.dataEnd; // end of the captured bytes of this layer
    let wireEnd = p.dataOff + p.len > capEnd ? p.dataOff + p.len : capEnd; // end of this layer on the wire
    let fragments = 0;
    // the addresses: alen bytes at so (source) and so + alen (destination) in abuf
    let abuf = EMPTY;
    let so = 0;
    let alen = 0;
    let nh = -1;
    let pos: number;
    let declEnd: number;
    if (version === 4) this.v4++;
    else if (version === 6) this.v6++;

    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      const avail = capEnd - off;
      const cut = wireEnd > capEnd; // bytes of this layer are missing (the snaplen cut them, or a short frame)
      if (version === 4) {
        if (avail < 20) return this.bad(p, cut, 4, 'IPv4 header cut short');
        const b0 = buf[off]!;
        const hl = (b0 & 15) * 4;
        if (b0 >> 4 !== 4) return this.bad(p, false, 4, `IP version ${b0 >> 4} in an IPv4 header`);
        if (hl < 20) return this.bad(p, false, 4, `IPv4 header length ${hl} < 20`);
        if (hl > avail) return this.bad(p, cut, 4, 'IPv4 header beyond the captured bytes');
        let total = u16(buf, off + 2);
        if (total === 0) total = wireEnd - off; // TSO: the length was never filled in
        if (total < hl) return this.bad(p, false, 4, `IPv4 total length ${total} < header length ${hl}`);
        declEnd = off + total;
        if (declEnd > capEnd) {
          if (!cut) {
            if (depth > 0) return this.bad(p, false, 4, `IPv4 total length ${total} beyond the ${avail} bytes present`);
            this.shortFrames++; // a short frame: the bytes present, the rest missing
          }
        } else {
          capEnd = declEnd; // trim Ethernet padding
        }
        wireEnd = declEnd;
        abuf = buf;
        so = off + 12;
        alen = 4;
        nh = buf[off + 9]!;
        pos = off + hl;
        const ff = u16(buf, off + 6);
        if ((ff & 0x3fff) !== 0) {
          if (wireEnd > capEnd) return this.skipCut(p, abuf, so, alen, nh);
          const r = df.add(4, abuf.subarray(so, so + 4), abuf.subarray(so + 4, so + 8), u16(buf, off + 4), nh, nh, (ff & 0x1fff) * 8, (ff & 0x2000) !== 0, buf.subarray(pos, capEnd), p.tsSec, p.tsNsec);
          if (r !== ADD_COMPLETE) return this.fragmentNotDone(p, r, abuf, so, alen, nh);
          buf = df.datagram;
          pos = 0;
          capEnd = wireEnd = declEnd = buf.length;
          fragments += df.datagramFragments;
        }
      } else if (version === 6) {
        if (avail < 40) return this.bad(p, cut, 6, 'IPv6 header cut short');
        if (buf[off]! >> 4 !== 6) return this.bad(p, false, 6, `IP version ${buf[off]! >> 4} in an IPv6 header`);
        let plen = u16(buf, off + 4);
        nh = buf[off + 6]!;
        pos = off + 40;
        abuf = buf;
        so = off + 8;
        alen = 16;
        if (plen === 0) {
          const j = nh === 0 ? jumboLength(buf, pos, capEnd) : -1;
          plen = j >= 0 ? j : wireEnd - pos; // jumbogram, else TSO-style "the rest"
        }
        declEnd = pos + plen;
        if (declEnd > capEnd) {
          if (!cut) {
            if (depth > 0) return this.bad(p, false, 6, `IPv6 payload length ${plen} beyond the ${avail - 40} bytes present`);
            this.shortFrames++; // a short frame: the bytes present, the rest missing
          }
        } else {
          capEnd = declEnd;
        }
        wireEnd = declEnd;
      } else {
        return this.skip(p, 'not-ip', null, '');
      }

      // The protocol chain after the IP header: extension headers, AH, IPComp, tunnels, TCP.
      for (;;) {
        switch (nh) {
          case 6: {
            setAddrs(p, abuf, so, alen);
            p.proto = 6;
            p.l4Buf = buf;
            p.l4Off = pos;
            p.l4End = capEnd;
            p.l4Len = declEnd - pos;
            p.fragments = fragments;
            this.tcp++;
            if (capEnd < declEnd) this.truncated++;
            return true;
          }
          case 4:
          case 41:
            this.tunnels++;
            version = nh === 4 ? 4 : 6;
            off = pos;
            break;
          case 0:
          case 43:
          case 60:
          case 135:
          case 139:
          case 140:
          case 51: {
            // Generic extension header (length in 8-byte units after the first 8) or AH (4-byte units after the first 8).
            if (nh !== 51 && version !== 6) return this.notTcp(p, abuf, so, alen, nh);
            const v = version;
            if (pos + 2 > declEnd) return this.bad(p, false, v, `extension header ${nh} beyond the packet`);
            if (pos + 2 > capEnd) return this.skipTruncated(p, abuf, so, alen, nh, version);
            const l = nh === 51 ? (buf[pos + 1]! + 2) * 4 : (buf[pos + 1]! + 1) * 8;
            if (pos + l > declEnd) return this.bad(p, false, v, `extension header ${nh} of ${l} bytes beyond the packet`);
            if (pos + l > capEnd) return this.skipTruncated(p, abuf, so, alen, nh, version);
            nh = buf[pos]!;
            pos += l;
            continue;
          }
          case 44: {
            if (version !== 6) return this.notTcp(p, abuf, so, alen, nh);
            if (pos + 8 > declEnd) return this.bad(p, false, 6, 'IPv6 fragment header beyond the packet');
            if (pos + 8 > capEnd) return this.skipTruncated(p, abuf, so, alen, nh, version);
            const fo = u16(buf, pos + 2) & 0xfff8;
            const more = (buf[pos + 3]! & 1) !== 0;
            const fnh = buf[pos]!;
            if (fo === 0 && !more) {
              // Atomic fragment (RFC 6946): not fragmented at all.
              nh = fnh;
              pos += 8;
              continue;
            }
            if (capEnd < declEnd) return this.skipCut(p, abuf, so, alen, nh);
            const r = df.add(6, abuf.subarray(so, so + 16), abuf.subarray(so + 16, so + 32), u32(buf, pos + 4), 0, fnh, fo, more, buf.subarray(pos + 8, capEnd), p.tsSec, p.tsNsec);
            if (r !== ADD_COMPLETE) return this.fragmentNotDone(p, r, abuf, so, alen, fnh);
            buf = df.datagram;
            pos = 0;
            capEnd = wireEnd = declEnd = buf.length;
            nh = df.datagramProto;
            fragments += df.datagramFragments;
            continue;
          }
          case 108: {
            // IPComp: next header, flags, CPI, then the compressed payload.
            if (this.inflate === null) return this.notTcp(p, abuf, so, alen, nh);
            if (pos + 4 > declEnd) return this.bad(p, false, version, 'IPComp header beyond the packet');
            if (capEnd < declEnd) return this.skipCut(p, abuf, so, alen, nh);
            const out = this.inflate(buf.subarray(pos + 4, capEnd));
            if (out === null) return this.notTcp(p, abuf, so, alen, nh);
            nh = buf[pos]!;
            buf = out;
            pos = 0;
            capEnd = wireEnd = declEnd = buf.length;
            continue;
          }
          default:
            return this.notTcp(p, abuf, so, alen, nh);
        }
        break; // a tunnel: decode the inner IP header
      }
    }
    return this.notTcp(p, abuf, so, alen, nh); // tunnels nested too deep
  }

  private notTcp(p: Packet, abuf: Uint8Array, so: number, alen: number, proto: number): false {
    setAddrs(p, abuf, so, alen);
    p.proto = proto;
    bump(this.notTcpByProto, proto);
    return this.skip(p, 'not-tcp', null, '');
  }

  /** skipTruncated: a header after the IP header that does not fit: 'ip-truncated' when the snaplen cut it, malformed in a short frame. */
  private skipTruncated(p: Packet, abuf: Uint8Array, so: number, alen: number, proto: number, version: number): false {
    setAddrs(p, abuf, so, alen);
    p.proto = proto;
    if (p.caplen >= p.len) return this.bad(p, false, version, `header ${proto} runs past the end of a frame shorter than its IP length`);
    return this.skip(p, 'ip-truncated', null, '');
  }

  /**
   * skipCut: a payload that must be whole (a fragment, to be reassembled; an IPComp payload, to
   * be inflated) with bytes missing, by the snaplen or a short frame: 'ip-truncated'.
   */
  private skipCut(p: Packet, abuf: Uint8Array, so: number, alen: number, proto: number): false {
    setAddrs(p, abuf, so, alen);
    p.proto = proto;
    return this.skip(p, 'ip-truncated', null, '');
  }

  private fragmentNotDone(p: Packet, r: number, abuf: Uint8Array, so: number, alen: number, proto: number): false {
    setAddrs(p, abuf, so, alen);
    p.proto = proto;
    if (r === ADD_HELD) return this.skip(p, 'fragment', null, '');
    if (r === ADD_INVALID) return this.skip(p, 'fragment-invalid', 'IP_FRAGMENT_INVALID', 'invalid IP fragment (offset, length or overlap with the final fragment)');
    return this.skip(p, 'fragment-invalid', null, ''); // dropped by the byte cap
  }

  /**
   * bad: a header that does not fit is 'ip-truncated' when the snaplen cut it (`cut`: bytes are
   * missing, and caplen < len: not a short frame), else malformed.
   */
  private bad(p: Packet, cut: boolean, version: number, message: string): false {
    if (cut && p.caplen < p.len) return this.skip(p, 'ip-truncated', null, '');
    return version === 4 ? this.skip(p, 'ipv4-malformed', 'IPV4_BAD_HEADER', message) : this.skip(p, 'ipv6-malformed', 'IPV6_BAD_HEADER', message);
  }

  private skip(p: Packet, reason: SkipReason, code: ErrorCode | null, message: string): false {
    p.skip = reason;
    bump(this.skipped, reason);
    if (code !== null && this.failOnError) throw new PcapflowError(code, message, { packet: p.index });
    return false;
  }
}

/** setAddrs points the packet's addresses at `alen` bytes at `so` (source) and `so + alen` (destination) of `abuf`. */
function setAddrs(p: Packet, abuf: Uint8Array, so: number, alen: number): void {
  p.srcBuf = abuf;
  p.dstBuf = abuf;
  p.srcOff = so;
  p.dstOff = so + alen;
  p.addrLen = alen;
}

/**
 * jumboLength reads the Jumbo Payload option (type 0xC2, RFC 2675) of the hop-by-hop header at
 * `pos`: the IPv6 packet length without the 40-byte header. -1 when absent or unreadable.
 */
function jumboLength(b: Uint8Array, pos: number, capEnd: number): number {
  if (pos + 2 > capEnd) return -1;
  const end = pos + (b[pos + 1]! + 1) * 8;
  if (end > capEnd) return -1;
  let i = pos + 2;
  while (i < end) {
    const t = b[i]!;
    if (t === 0) {
      i++;
      continue;
    }
    if (i + 2 > end) return -1;
    const l = b[i + 1]!;
    if (t === 0xc2 && l === 4 && i + 6 <= end) return u32(b, i + 2);
    i += 2 + l;
  }
  return -1;
}
