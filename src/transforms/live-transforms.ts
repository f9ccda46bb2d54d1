/**
 * live-transforms: the object-mode Transforms that differ in the live pipeline (`pcapflow live`),
 * whose source puts ClockTick objects between its `Packet[]` batches (see core/live-idle.ts):
 *
 *   LiveSource → [PcapWriteTransform] → LiveDecodeTransform → TcpDemuxTransform → LiveIdleTransform
 *   → TcpReassemblerTransform → sink
 *
 * - LiveDecodeTransform: the packet decoder (PacketDecoder) for batches; a tick becomes a batch
 *   holding one clock packet, which the demux takes as a packet of the clock connection.
 * - LiveIdleTransform: LiveIdle, which keeps the clock connection out of the reassembler.
 *
 * Errors are the cores' PcapflowErrors, passed to the stream as StageTransform does.
 */
import type { TransformCallback } from 'node:stream';
import { ClockTick, clockPacket, LiveIdle } from '../core/live-idle.js';
import type { Packet } from '../core/packet.js';
import { PacketDecoder, type PacketDecoderOptions } from '../core/packet-decoder.js';
import { zlibInflate } from './decode-transforms.js';
import { StageTransform } from './stage-transform.js';

export class LiveDecodeTransform extends StageTransform<Packet[] | ClockTick, Packet[]> {
  declare readonly core: PacketDecoder;

  constructor(options: PacketDecoderOptions = {}) {
    super(new PacketDecoder(options.inflate === undefined ? { ...options, inflate: zlibInflate } : options));
  }

  override _transform(chunk: Packet[] | ClockTick, encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk instanceof ClockTick) {
      this.push([clockPacket(chunk)]);
      callback();
      return;
    }
    super._transform(chunk, encoding, callback);
  }
}

export class LiveIdleTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: LiveIdle;

  constructor() {
    super(new LiveIdle());
  }
}
