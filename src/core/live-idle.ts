/**
 * live-idle: idle timeouts for live input, where time goes on while no packet arrives.
 *
 * TcpDemux ends idle connections when a TCP packet of another connection arrives: capture time is
 * its clock. On a quiet interface no packet comes, so a live source sends ClockTick objects in
 * its stream of `Packet[]` batches: "capture time is now T, and every packet captured before T
 * came before this tick" (ticks are in-band, so the order holds through every stage).
 *
 * The decoding stage turns each tick into a clock packet (clockPacket): a synthetic TCP SYN at T
 * from 0.0.0.0 port 0 to 0.0.0.0 port 0, an address and port no real TCP segment carries. To the
 * demux it is an ordinary packet of one more connection, the clock connection, so it ends the
 * connections idle for longer than its `idleTimeout` exactly as a real packet at T would, and a
 * later packet on their addresses and ports starts a new connection. LiveIdle, between the demux
 * and the reassembler, keeps the clock out of the output: it drops clock packets (and any packet
 * of a clock connection), passes the connections a clock packet ended on to the reassembler in
 * `expired` of a packet without a flow (the reassembler closes them, reason `idle`, and ignores
 * the packet), and removes clock connections from every `expired` list.
 *
 * Visible side effects, documented in the README: the clock connection takes a connection number
 * (the first tick comes before any packet, so it is number 0 and real connections are numbered
 * from 1), and the demux counts clock packets in its `packets`, `connections` and `live` stats.
 *
 * Throws nothing. Pure: no node:* import.
 */
import type { Flow } from './flow.js';
import { EMPTY, Packet, TCP_SYN } from './packet.js';
import type { Stage } from './stage.js';

/** ClockTick: a point of capture time sent in-band between batches by a live source. */
export class ClockTick {
  readonly tsSec: number;
  readonly tsNsec: number;
  constructor(tsSec: number, tsNsec: number) {
    this.tsSec = tsSec;
    this.tsNsec = tsNsec;
  }
}

/** `iface` of a clock packet: no capture interface has a negative id. */
export const CLOCK_IFACE = -1;
const ZERO_ADDR = new Uint8Array(4);

/** clockPacket: the decoded TCP packet that stands for `tick` before the demux (see the file comment). */
export function clockPacket(tick: ClockTick): Packet {
  const p = new Packet();
  p.index = 0;
  p.iface = CLOCK_IFACE;
  p.tsSec = tick.tsSec;
  p.tsNsec = tick.tsNsec;
  p.netVersion = 4;
  p.src = ZERO_ADDR;
  p.dst = ZERO_ADDR;
  p.proto = 6;
  p.l4Len = 20;
  p.flags = TCP_SYN;
  p.tcpHeaderLen = 20;
  p.payload = EMPTY;
  return p;
}

/** isClockFlow: the connection the demux made of clock packets. */
export function isClockFlow(f: Flow): boolean {
  return f.client.port === 0 && f.server.port === 0 && f.client.ip === '0.0.0.0' && f.server.ip === '0.0.0.0';
}

export interface LiveIdleStats {
  /** Clock packets received (one per tick). */
  ticks: number;
  /** Connections the demux ended on a clock packet (closed by the reassembler, reason `idle`). */
  idleEnded: number;
  /** Packets of a clock connection that were not clock packets (crafted traffic), dropped. */
  dropped: number;
}

export class LiveIdle implements Stage<Packet[], Packet[]> {
  readonly stats: LiveIdleStats = { ticks: 0, idleEnded: 0, dropped: 0 };
  /** The current clock connection (the demux replaces it when it evicts or expires it). */
  private clock: Flow | null = null;

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    let drop = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.expired !== null) p.expired = withoutClock(p.expired);
      const f = p.flow;
      if (f === null) continue;
      if (p.iface === CLOCK_IFACE && p.index === 0) {
        this.stats.ticks++;
        this.clock = f;
        drop++;
      } else if (f === this.clock || (f.client.port === 0 && f.server.port === 0 && isClockFlow(f))) {
        this.stats.dropped++;
        drop++;
      }
    }
    if (drop === 0) {
      if (batch.length > 0) emit(batch);
      return;
    }
    // Clock packets come alone (one per tick): this path is rare and may allocate.
    const out: Packet[] = [];
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const f = p.flow;
      if (f !== null && (f === this.clock || isClockFlow(f))) {
        if (p.expired === null) continue;
        if (p.iface === CLOCK_IFACE) this.stats.idleEnded += p.expired.length;
        p.flow = null; // the reassembler closes `expired`, then ignores the packet
      }
      out.push(p);
    }
    if (out.length > 0) emit(out);
  }

  end(): void {
    this.clock = null;
  }
}

/** withoutClock: `expired` without clock connections (null when none is left). */
function withoutClock(expired: Flow[]): Flow[] | null {
  let n = 0;
  for (let i = 0; i < expired.length; i++) if (!isClockFlow(expired[i]!)) expired[n++] = expired[i]!;
  expired.length = n;
  return n === 0 ? null : expired;
}
