/**
 * tcp-transforms: the object-mode Transforms around the TCP cores. `TcpDemuxTransform` takes and
 * gives `Packet[]` batches (TcpDemux); `TcpReassemblerTransform` takes demuxed `Packet[]` batches
 * and gives `StreamEvent[]` batches (TcpReassembler), flushing every open connection (reason eof)
 * when its input ends. Errors are the cores' (PcapflowError INVALID_OPTION from the constructors).
 */
import { TcpDemux, type TcpDemuxOptions } from '../core/flow-table.js';
import type { Packet } from '../core/packet.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../core/reassembler.js';
import type { StreamEvent } from '../core/events.js';
import { StageTransform } from './stage-transform.js';

export class TcpDemuxTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: TcpDemux;

  constructor(options: TcpDemuxOptions = {}) {
    super(new TcpDemux(options));
  }
}

export class TcpReassemblerTransform extends StageTransform<Packet[], StreamEvent[]> {
  declare readonly core: TcpReassembler;

  constructor(options: TcpReassemblerOptions = {}) {
    super(new TcpReassembler(options));
  }
}
