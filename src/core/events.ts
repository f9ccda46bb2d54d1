/**
 * Stream events: the typed union the reassembler emits and every sink consumes. This is the
 * library's public contract; the NDJSON sink writes these field names as they are.
 *
 * `ts` is always the capture time as a string of seconds with 9 decimals ("1258544215.037210000"),
 * so that no precision is lost to floats.
 */

export interface Endpoint {
  /** Address as tshark prints it: dotted quad, or compressed IPv6 ("2001:db8::1"). */
  ip: string;
  port: number;
}

export type Direction = 'c2s' | 's2c';

/** TCP options seen on a direction's SYN (or first segment). Absent fields were not seen. */
export interface TcpOptionsSeen {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
}

export type CloseReason = 'fin' | 'rst' | 'idle' | 'eof' | 'evicted';

/** Why bytes were skipped: the event that forced delivery past a hole. */
export type GapReason =
  | 'fin' // a FIN came while a hole was still open
  | 'rst'
  | 'idle'
  | 'eof'
  | 'evicted'
  | 'limit' // an out-of-order buffer limit forced delivery
  | 'acked' // the peer acknowledged bytes that were never captured
  | 'truncated'; // the snaplen cut the payload, or the frame was shorter than its IP length: bytes the IP header counts but the capture lacks

export interface OpenEvent {
  type: 'open';
  conn: number;
  ts: string;
  client: Endpoint;
  server: Endpoint;
  /** VLAN ids, outermost first; [] when untagged. */
  vlan: number[];
  /** True when the connection was picked up without seeing its SYN. */
  midstream: boolean;
  options: { c2s: TcpOptionsSeen; s2c: TcpOptionsSeen };
}

export interface DataEvent {
  type: 'data';
  conn: number;
  dir: Direction;
  /** Byte offset of the first byte of `data` in this direction's stream (0 = first byte after the SYN). */
  offset: number;
  ts: string;
  /** The bytes. A view: valid for as long as you hold it, but never write into it. */
  data: Uint8Array;
}

export interface GapEvent {
  type: 'gap';
  conn: number;
  dir: Direction;
  /** Stream offset of the first missing byte. */
  offset: number;
  /** Number of missing bytes. */
  len: number;
  ts: string;
  reason: GapReason;
}

export interface OverlapEvent {
  type: 'overlap';
  conn: number;
  dir: Direction;
  /** Stream offset of the first byte where the overlapping data differed. */
  offset: number;
  /** Length of the overlapping range that differed. */
  len: number;
  ts: string;
  /** Which copy was kept: the one received first, or the last one. */
  kept: 'first' | 'last';
}

/** Per-direction counters in a close event. */
export interface DirectionSummary {
  /** Stream bytes delivered as data events. */
  bytes: number;
  /** Segments seen in this direction (all, including pure ACKs). */
  packets: number;
  /** Segments that carried only bytes already received. */
  retransmitted: number;
  /** Segments that arrived ahead of a hole and were buffered. */
  outOfOrder: number;
  gaps: number;
  /** Bytes never captured (sum of gap lengths). */
  missing: number;
  overlaps: number;
  /** First and last capture time of a segment in this direction; null when none was seen. */
  firstTs: string | null;
  lastTs: string | null;
  /** Bytes received past the `maxBytes` cap (tcpflow's -b) and not delivered; 0 without a cap. */
  capped: number;
}

export interface CloseEvent {
  type: 'close';
  conn: number;
  ts: string;
  reason: CloseReason;
  client: Endpoint;
  server: Endpoint;
  vlan: number[];
  c2s: DirectionSummary;
  s2c: DirectionSummary;
}

export type StreamEvent = OpenEvent | DataEvent | GapEvent | OverlapEvent | CloseEvent;

let lastSec = -1;
let lastSecText = '';

/** formatTs renders seconds and nanoseconds as the `ts` string ("S.NNNNNNNNN"). */
export function formatTs(sec: number, nsec: number): string {
  // the "S." part is kept for the next call: consecutive events mostly share their second
  if (sec !== lastSec) {
    lastSec = sec;
    lastSecText = `${sec}.`;
  }
  const n = String(nsec);
  return n.length === 9 ? lastSecText + n : lastSecText + '000000000'.slice(n.length) + n;
}
