/**
 * Packet formatting for `pcapflow packets`: one line per packet, as text for people (like
 * `tcpdump -r`) or as an NDJSON object for tools. Pure: no I/O.
 */
import { formatTs } from './events.js';
import { formatIp } from './addr.js';
import type { Packet } from './packet.js';

const FLAG_LETTERS = 'FSRPAUECN';

/** tcpFlagString gives the set flags as letters in bit order: SYN+ACK is "SA", FIN+ACK "FA". */
export function tcpFlagString(flags: number): string {
  let s = '';
  for (let i = 0; i < FLAG_LETTERS.length; i++) if (flags & (1 << i)) s += FLAG_LETTERS[i];
  return s;
}

/** The JSON object `pcapflow packets --format ndjson` prints for one packet. */
export interface PacketJson {
  index: number;
  ts: string;
  link: number;
  iface: number;
  caplen: number;
  len: number;
  vlan: number[];
  src: string | null;
  dst: string | null;
  proto: number | null;
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: string;
  win?: number;
  payload?: number;
  fragments?: number;
  skip?: string;
}

/** packetJson builds the NDJSON record for a decoded (or skipped) packet. */
export function packetJson(p: Packet): PacketJson {
  const j: PacketJson = {
    index: p.index,
    ts: formatTs(p.tsSec, p.tsNsec),
    link: p.linkType,
    iface: p.iface,
    caplen: p.caplen,
    len: p.len,
    vlan: p.vlan,
    src: p.src.length > 0 ? formatIp(p.src) : null,
    dst: p.dst.length > 0 ? formatIp(p.dst) : null,
    proto: p.proto >= 0 ? p.proto : null,
  };
  if (p.skip === null) {
    j.sport = p.sport;
    j.dport = p.dport;
    j.seq = p.seq;
    j.ack = p.ack;
    j.flags = tcpFlagString(p.flags);
    j.win = p.win;
    j.payload = p.payloadLen;
    if (p.fragments > 0) j.fragments = p.fragments;
  } else {
    j.skip = p.skip;
  }
  return j;
}

/** packetText renders one packet as a line for people. */
export function packetText(p: Packet): string {
  const head = `${p.index} ${formatTs(p.tsSec, p.tsNsec)}${p.vlan.length > 0 ? ` vlan ${p.vlan.join('.')}` : ''}`;
  const src = p.src.length > 0 ? formatIp(p.src) : '';
  const dst = p.dst.length > 0 ? formatIp(p.dst) : '';
  if (p.skip !== null) {
    const ip = src !== '' ? ` ${src} > ${dst}${p.proto >= 0 ? ` proto ${p.proto}` : ''}` : '';
    return `${head}${ip} [${p.skip}] link ${p.linkType}, caplen ${p.caplen}, len ${p.len}`;
  }
  const truncated = p.payload.length < p.payloadLen ? ` (captured ${p.payload.length})` : '';
  const frags = p.fragments > 0 ? `, ${p.fragments} fragments` : '';
  return (
    `${head} ${src}.${p.sport} > ${dst}.${p.dport}: Flags [${tcpFlagString(p.flags)}], ` +
    `seq ${p.seq}, ack ${p.ack}, win ${p.win}, length ${p.payloadLen}${truncated}${frags}`
  );
}
