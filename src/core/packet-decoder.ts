/**
 * PacketDecoder: frame → IP → TCP on each packet in one pass, the fast path the CLI uses. It
 * owns one FrameDecoder, IpDecoder and TcpDecoder and calls their `decode(pkt)` in turn, so a
 * batch is walked once and compacted once.
 *
 * Options are the IpDecoder's (keepSkipped, onError, fragmentMaxBytes, fragmentTimeout,
 * inflate). Throws only what the three decoders throw under onError 'fail' (LINK_MALFORMED,
 * LINK_UNSUPPORTED, IPV4_BAD_HEADER, IPV6_BAD_HEADER, IP_FRAGMENT_INVALID, TCP_BAD_HEADER), after
 * emitting the packets of the batch that precede the fault.
 */
import { FrameDecoder, runBatch } from './frame-decoder.js';
import { IpDecoder, type IpDecoderOptions } from './ip-decoder.js';
import type { Packet } from './packet.js';
import type { Stage } from './stage.js';
import { TcpDecoder } from './tcp-decoder.js';

export type PacketDecoderOptions = IpDecoderOptions;

export class PacketDecoder implements Stage<Packet[], Packet[]> {
  readonly frame: FrameDecoder;
  readonly ip: IpDecoder;
  readonly tcp: TcpDecoder;
  private readonly keepSkipped: boolean;
  private readonly decodeFn: (p: Packet) => boolean;

  constructor(options: PacketDecoderOptions = {}) {
    this.keepSkipped = options.keepSkipped ?? false;
    this.frame = new FrameDecoder(options);
    this.ip = new IpDecoder(options);
    this.tcp = new TcpDecoder(options);
    this.decodeFn = (p) => this.decode(p);
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    runBatch(batch, emit, this.keepSkipped, this.decodeFn);
  }

  /** end drops fragments still waiting for reassembly (counted in incompleteExpired); emits nothing. */
  end(): void {
    this.ip.end();
  }

  /** decode runs the three decoders on one packet; true when it carries a TCP segment. */
  decode(p: Packet): boolean {
    return this.frame.decode(p) && this.ip.decode(p) && this.tcp.decode(p);
  }

  /**
   * stats, merged: packets, bytes, tcp, truncated (TCP segments with payload bytes missing),
   * shortFrames (frames not cut by the snaplen whose IP length runs past their end), payloadBytes,
   * ip, vlanTagged, ipv4, ipv6, tunnels, skipped and `skipped.<reason>` (every
   * reason of the three stages), `linkType.<n>`, `unsupportedLinkType.<n>`, `notTcpProto.<n>`,
   * and the fragment stats: fragments, datagramsReassembled, incompleteExpired, overlaps,
   * fragmentsInvalid, bytesHeld, droppedByCap.
   */
  get stats(): Readonly<Record<string, number>> {
    const f = this.frame.stats;
    const i = this.ip.stats;
    const t = this.tcp.stats;
    const s: Record<string, number> = {};
    for (const src of [f, i, t]) {
      for (const k in src) {
        if (k === 'packets' || k === 'skipped' || k === 'tcp' || k === 'truncated') continue;
        s[k] = src[k]!;
      }
    }
    s.packets = f.packets!;
    s.bytes = f.bytes!;
    s.tcp = t.tcp!;
    s.truncated = t.truncated!;
    s.skipped = f.skipped! + i.skipped! + t.skipped!;
    return s;
  }
}
