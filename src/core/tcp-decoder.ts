/**
 * TcpDecoder: the transport layer. For each packet whose `l4`/`l4Len` the IP decoder set, it
 * sets sport, dport, seq, ack (unsigned), flags (9 bits), win, urgPtr, tcpHeaderLen, payload (a
 * view of the bytes present; the shared EMPTY when none) and payloadLen (l4Len minus the header length: tshark's tcp.len,
 * also when the snaplen cut the bytes short), or `skip`.
 *
 * A data offset below 5 or a header longer than the segment is 'tcp-malformed' (PcapflowError
 * TCP_BAD_HEADER under onError 'fail'); a fixed 20-byte header cut by the snaplen is
 * 'tcp-truncated', never an error. When only the options are cut (a SYN in a snaplen-68 capture),
 * the segment is still decoded, as tshark does: every field comes from the fixed header, the
 * payload is empty and payloadLen tells what was on the wire (`optionsTruncated` counts them).
 * A frame shorter than its IP length although the snaplen did not cut it (caplen == len; the
 * IpDecoder's `shortFrames`) is decoded the same way when its whole TCP header, options
 * included, is present: payload the bytes present, payloadLen from the IP header; a header
 * not whole in such a frame is 'tcp-malformed'. Options are not parsed here: `tcpOptions(pkt)`
 * reads them on demand. Checksums are not verified (tshark does not by default either).
 */
import { PcapflowError } from './errors.js';
import { bump, LayerDecoder, type DecoderOptions } from './frame-decoder.js';
import { EMPTY, type Packet, type SkipReason } from './packet.js';

export class TcpDecoder extends LayerDecoder {
  private packets = 0;
  private tcp = 0;
  private truncated = 0;
  private payloadBytes = 0;
  private optionsTruncated = 0;

  constructor(options: DecoderOptions = {}) {
    super(options);
  }

  /**
   * stats: packets, tcp (segments decoded), truncated (segments with payload bytes missing: cut
   * by the snaplen, or a frame shorter than its IP length),
   * payloadBytes (payload bytes present), optionsTruncated (segments whose options the snaplen
   * cut), skipped, `skipped.<reason>`.
   */
  override get stats(): Readonly<Record<string, number>> {
    return this.skipStats({
      packets: this.packets,
      tcp: this.tcp,
      truncated: this.truncated,
      payloadBytes: this.payloadBytes,
      optionsTruncated: this.optionsTruncated,
    });
  }

  /** decode fills the TCP fields of one packet, or its `skip`; throws PcapflowError TCP_BAD_HEADER under onError 'fail'. */
  override decode(p: Packet): boolean {
    this.packets++;
    const b = p.l4Buf;
    const o = p.l4Off; // the segment is bytes o..o+n of b
    const n = p.l4End - o;
    const l4Len = p.l4Len;
    if (l4Len < 20) return this.skip(p, 'tcp-malformed', `TCP segment of ${l4Len} bytes is shorter than a header`);
    // n < l4Len: bytes are missing, cut by the snaplen (caplen < len) or else by a frame shorter
    // than its IP length, where the header must be whole
    if (n < 20) return p.caplen < p.len ? this.skip(p, 'tcp-truncated', '') : this.skip(p, 'tcp-malformed', `TCP header cut short: ${n} bytes in a frame shorter than its IP length`);
    const hl = (b[o + 12]! >> 4) * 4;
    if (hl < 20) return this.skip(p, 'tcp-malformed', `TCP data offset ${hl / 4} < 5`);
    if (hl > l4Len) return this.skip(p, 'tcp-malformed', `TCP header of ${hl} bytes beyond the ${l4Len}-byte segment`);
    if (hl > n && p.caplen >= p.len) return this.skip(p, 'tcp-malformed', `TCP header of ${hl} bytes beyond the ${n} bytes of a frame shorter than its IP length`);
    p.sport = (b[o]! << 8) | b[o + 1]!;
    p.dport = (b[o + 2]! << 8) | b[o + 3]!;
    p.seq = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
    p.ack = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
    p.flags = ((b[o + 12]! & 1) << 8) | b[o + 13]!;
    p.win = (b[o + 14]! << 8) | b[o + 15]!;
    p.urgPtr = (b[o + 18]! << 8) | b[o + 19]!;
    p.tcpHeaderLen = hl;
    const start = hl < n ? hl : n; // options cut by the snaplen: no payload present
    if (hl > n) this.optionsTruncated++;
    p.payload = start === n ? EMPTY : b.subarray(o + start, o + n);
    p.payloadLen = l4Len - hl;
    this.tcp++;
    this.payloadBytes += n - start;
    if (n - start < p.payloadLen) this.truncated++;
    return true;
  }

  private skip(p: Packet, reason: SkipReason, message: string): false {
    p.skip = reason;
    bump(this.skipped, reason);
    if (reason === 'tcp-malformed' && this.failOnError) throw new PcapflowError('TCP_BAD_HEADER', message, { packet: p.index });
    return false;
  }
}

/** TcpOptions: the options of one TCP header; absent fields were not present. */
export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  /** SACK blocks as [left edge, right edge) pairs, unsigned 32-bit. */
  sack?: Array<[number, number]>;
  tsVal?: number;
  tsEcr?: number;
  /** True when an option's length was invalid or ran past the header: parsing stopped there. */
  malformed?: boolean;
  /** True when the snaplen cut the options: only those captured were read. */
  truncated?: boolean;
}

/**
 * tcpOptions parses the options of a decoded TCP packet (bytes 20..tcpHeaderLen of `l4`, as far
 * as captured). Lazy: call it only when needed (the demux does, on SYNs). Never throws.
 */
export function tcpOptions(p: Packet): TcpOptions {
  const o: TcpOptions = {};
  const b = p.l4;
  let end = p.tcpHeaderLen;
  if (end > b.length) {
    end = b.length;
    o.truncated = true;
  }
  let i = 20;
  while (i < end) {
    const kind = b[i]!;
    if (kind === 0) break; // end of option list
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 2 > end) {
      if (!o.truncated) o.malformed = true;
      break;
    }
    const len = b[i + 1]!;
    if (len < 2 || (i + len > end && (!o.truncated || i + len > p.tcpHeaderLen))) {
      o.malformed = true;
      break;
    }
    if (i + len > end) break; // cut by the snaplen
    switch (kind) {
      case 2:
        if (len === 4) o.mss = (b[i + 2]! << 8) | b[i + 3]!;
        break;
      case 3:
        if (len === 3) o.wscale = b[i + 2]!;
        break;
      case 4:
        if (len === 2) o.sackPermitted = true;
        break;
      case 5:
        if ((len - 2) % 8 === 0) {
          const blocks: Array<[number, number]> = [];
          for (let j = i + 2; j < i + len; j += 8) blocks.push([u32(b, j), u32(b, j + 4)]);
          o.sack = blocks;
        }
        break;
      case 8:
        if (len === 10) {
          o.tsVal = u32(b, i + 2);
          o.tsEcr = u32(b, i + 6);
        }
        break;
      default:
        break;
    }
    i += len;
  }
  return o;
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}
