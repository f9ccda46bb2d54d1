/**
 * Flow is one TCP connection as the demux tracks it: both directions under one key. The demux
 * (flow-table) creates and numbers flows; the reassembler keeps its per-connection state in
 * `state` and marks `closed` when it has closed the connection.
 * (Owned by the TCP demux and reassembler; see ARCHITECTURE.md.)
 */
import type { Endpoint } from './events.js';

export interface Flow {
  /** Connection number, from 0 in order of first packet (tshark's tcp.stream). */
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly vlan: number[];
  /** True when the SYN was not seen. */
  midstream: boolean;
  /** Set by the reassembler once it emitted the close event. */
  closed: boolean;
  /** The reassembler's per-connection state. */
  state: unknown;
}
