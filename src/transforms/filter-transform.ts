/**
 * FilterTransform: the FilterStage core (src/core/filter.ts) as an object-mode Transform,
 * `Packet[]` in, `Packet[]` out, holding only the packets that match a pcap filter expression.
 * Put it right after the capture source, before decoding. The expression is compiled in the
 * constructor, which throws PcapflowError FILTER_SYNTAX; the stream itself raises no error.
 */
import { FilterStage, type PacketFilter } from '../core/filter.js';
import type { Packet } from '../core/packet.js';
import { StageTransform } from './stage-transform.js';

export class FilterTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: FilterStage;
  constructor(filter: string | PacketFilter) {
    super(new FilterStage(filter));
  }
}
