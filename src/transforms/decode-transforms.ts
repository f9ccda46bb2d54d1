/**
 * Decode transforms: the frame, IP, TCP and one-pass packet decoders as object-mode Transforms
 * (`Packet[]` in, `Packet[]` out). Thin: each wraps its core in a StageTransform; the core is at
 * `.core` for its stats. Errors are the cores' PcapflowErrors, passed to the stream.
 *
 * The IP-decoding transforms give the core node:zlib's raw inflate for IPComp payloads, unless
 * the caller passes its own `inflate` (or null to leave IPComp undecoded).
 */
import { zlib } from '../builtins.js';
import { FrameDecoder, type DecoderOptions } from '../core/frame-decoder.js';
import { IpDecoder, type IpDecoderOptions } from '../core/ip-decoder.js';
import { PacketDecoder, type PacketDecoderOptions } from '../core/packet-decoder.js';
import type { Packet } from '../core/packet.js';
import { TcpDecoder } from '../core/tcp-decoder.js';
import { StageTransform } from './stage-transform.js';

/** An IPComp datagram never inflates beyond an IPv6 jumbo-free datagram; more is a bomb. */
const MAX_INFLATED = 1 << 17;

/**
 * zlibInflate decompresses an IPComp DEFLATE payload (raw, or with a zlib header); null when it
 * is not DEFLATE or would inflate beyond 128 KiB.
 */
export function zlibInflate(data: Uint8Array): Uint8Array | null {
  try {
    return zlib().inflateRawSync(data, { maxOutputLength: MAX_INFLATED });
  } catch {
    try {
      return zlib().inflateSync(data, { maxOutputLength: MAX_INFLATED });
    } catch {
      return null;
    }
  }
}

/** withInflate: the options with node:zlib's inflate unless the caller chose one (or null). */
export function withInflate<T extends IpDecoderOptions>(options: T): T {
  return options.inflate === undefined ? { ...options, inflate: zlibInflate } : options;
}

export class FrameDecodeTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: FrameDecoder;
  constructor(options: DecoderOptions = {}) {
    super(new FrameDecoder(options));
  }
}

export class IpDecodeTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: IpDecoder;
  constructor(options: IpDecoderOptions = {}) {
    super(new IpDecoder(withInflate(options)));
  }
}

export class TcpDecodeTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: TcpDecoder;
  constructor(options: DecoderOptions = {}) {
    super(new TcpDecoder(options));
  }
}

export class PacketDecodeTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: PacketDecoder;
  constructor(options: PacketDecoderOptions = {}) {
    super(new PacketDecoder(withInflate(options)));
  }
}
