/**
 * Flow is one TCP connection as the demux tracks it: both directions under one key. The demux
 * (flow-table.ts, TcpDemux) creates and numbers flows and sets `endedBy` when it ends one (idle
 * timeout, eviction, 4-tuple reused by a new SYN); the reassembler (reassembler.ts,
 * TcpReassembler) keeps its per-connection state in `state` and sets `closed` once it has emitted
 * the close event. Nothing else writes a Flow.
 */
import type { Endpoint } from './events.js';

/** Why the demux ended a flow before the reassembler closed it on its own. */
export type FlowEnd =
  | 'idle' // no packet for `idleTimeout` seconds of capture time
  | 'evicted' // dropped to stay under the demux's `maxConnections`
  | 'reused'; // a SYN with another ISN started a new connection on the same addresses and ports

export interface Flow {
  /** Connection number, from 0 in order of first packet (tshark's tcp.stream). */
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  /** VLAN ids, outermost first; [] when untagged. */
  readonly vlan: number[];
  /** True when the connection's first packet was neither a SYN nor a SYN-ACK. */
  midstream: boolean;
  /** Set by the reassembler once it emitted the close event. */
  closed: boolean;
  /** Set by the demux when it ends the flow (the packet carrying it in `expired` comes next). */
  endedBy: FlowEnd | null;
  /** The reassembler's per-connection state; null until the reassembler sees the flow. */
  state: unknown;
}
