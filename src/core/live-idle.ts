/**
 * live-idle: idle timeouts for live input, where time goes on while no packet arrives.
 *
 * TcpDemux ends idle connections when a TCP packet of another connection arrives: capture time is
 * its clock. On a quiet interface no packet comes, so a live source sends ClockTick objects in
 * its stream of `Packet[]` batches: "capture time is now T, and every packet captured before T
 * came before this tick" (ticks are in-band, so the order holds through every stage).
 *
 * After decoding, a tick becomes a tick packet (tickPacket in flow-table.ts: a Packet with
 * `skip = 'tick'` and no segment): TcpDemux ends the connections idle at T exactly as a packet at
 * T would and attaches them to it (`expired`), TcpReassembler closes them (reason `idle`) and
 * ignores the tick otherwise, and no sink ever sees it. Ticks take no connection number, so live
 * connections are numbered from 0, as `pcapflow read` numbers the `--write-pcap` file.
 *
 * Throws nothing. Pure: no node:* import.
 */
import { tickPacket } from './flow-table.js';
import type { Packet } from './packet.js';

/** ClockTick: a point of capture time sent in-band between batches by a live source. */
export class ClockTick {
  readonly tsSec: number;
  readonly tsNsec: number;
  constructor(tsSec: number, tsNsec: number) {
    this.tsSec = tsSec;
    this.tsNsec = tsNsec;
  }

  /** packet: the tick packet that carries this tick through the demux and the reassembler. */
  packet(): Packet {
    return tickPacket(this.tsSec, this.tsNsec);
  }
}
