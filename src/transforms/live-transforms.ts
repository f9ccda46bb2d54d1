/**
 * live-transforms: the object-mode Transform that differs in the live pipeline (`pcapflow live`),
 * whose source puts ClockTick objects between its `Packet[]` batches (see core/live-idle.ts):
 *
 *   LiveSource → [PcapWriteTransform] → LiveDecodeTransform → TcpDemuxTransform
 *   → TcpReassemblerTransform → sink
 *
 * LiveDecodeTransform: the packet decoder (PacketDecoder) for batches; a tick does not go through
 * the decoders: it becomes a batch holding one tick packet (`skip = 'tick'`), in order after the
 * batches before it, which the demux turns into idle expiries and the reassembler closes.
 *
 * Errors are the cores' PcapflowErrors, passed to the stream as StageTransform does.
 */
import type { TransformCallback } from 'node:stream';
import { ClockTick } from '../core/live-idle.js';
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
      this.push([chunk.packet()]);
      callback();
      return;
    }
    super._transform(chunk, encoding, callback);
  }
}
