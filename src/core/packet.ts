/**
 * Packet is the one object that travels from the capture reader through the decoders. The reader
 * creates it with every field initialised (one hidden class for all packets); each decoding
 * stage fills in its own fields in place and never replaces the object. Stages pass packets on
 * in batches (`Packet[]`).
 *
 * Ownership: `data` is in the chunk the reader read (no copy). Views stay valid as long
 * as they are referenced (a Buffer keeps its parent alive), so later stages may keep them, but
 * nobody may write into them. Stages that must hold bytes for long (fragment and out-of-order
 * buffers) copy them, so that one small view does not pin a whole read chunk.
 */

import type { Flow } from './flow.js';

/** Why a packet was not decoded down to TCP. `null` on a packet that carries a TCP segment. */
export type SkipReason =
  | 'link-unsupported' // link type pcapflow does not decode
  | 'link-malformed' // link header cut short or inconsistent
  | 'link-truncated' // snaplen cut the frame inside the link header
  | 'not-ip' // link payload is not IPv4/IPv6 (ARP, LLDP, ...)
  | 'ipv4-malformed'
  | 'ipv6-malformed'
  | 'ip-truncated' // snaplen cut the packet inside the IP header; or a fragment or IPComp payload with bytes missing (snaplen, or a frame shorter than its IP length)
  | 'fragment' // an IP fragment held for reassembly (the completing frame carries the datagram)
  | 'fragment-invalid' // bad fragment offsets/lengths, or a fragment dropped by the limits
  | 'not-tcp' // IP payload is another protocol (UDP, ICMP, ESP, ...)
  | 'tcp-malformed' // data offset < 5 or beyond the segment, or a TCP header cut by the end of a frame shorter than its IP length
  | 'tcp-truncated' // snaplen cut the packet inside the TCP header
  | 'tick'; // no packet: a point of capture time from a live source (tickPacket, flow-table.ts); the demux expires idle connections at it

export class Packet {
  // --- set by the capture reader ---
  /** 1-based packet index, as tshark numbers frames; continues across input files. */
  index = 0;
  /** Capture timestamp: whole seconds since the epoch. */
  tsSec = 0;
  /** Capture timestamp: nanoseconds within the second (0..999 999 999). */
  tsNsec = 0;
  /** Captured length: bytes present in `data`. */
  caplen = 0;
  /** Original length on the wire. `len > caplen` means the snaplen cut the packet. */
  len = 0;
  /** LINKTYPE_* value of the interface the packet came from. */
  linkType = 0;
  /** pcapng interface id (0 for classic pcap); unique across sections of one file. */
  iface = 0;
  /**
   * The captured bytes: dataOff..dataEnd of `dataBuf` (the reader's chunk, or a copy for a record
   * that spanned two chunks). Kept as offsets so that reading makes no view per packet; `data`
   * gives them as a view.
   */
  dataBuf: Uint8Array = EMPTY;
  dataOff = 0;
  dataEnd = 0;

  // --- set by the frame decoder ---
  /** VLAN ids, outermost first. Shared empty array when untagged: never mutate. */
  vlan: number[] = NO_VLAN;
  /** Network protocol of the link payload: 4, 6, or 0 when not IP. */
  netVersion = 0;
  /** Offset of the network header in `data`. */
  netOffset = 0;

  // --- set by the IP decoder ---
  /**
   * Source and destination addresses: `addrLen` bytes (4 or 16; 0 when none was decoded) at
   * `srcOff` in `srcBuf` and at `dstOff` in `dstBuf` (`data`, or a reassembled datagram). Kept as
   * offsets so that decoding makes no view per packet; `src` and `dst` give them as views.
   */
  srcBuf: Uint8Array = EMPTY;
  srcOff = 0;
  dstBuf: Uint8Array = EMPTY;
  dstOff = 0;
  addrLen = 0;
  /** IP protocol number of the transport payload (6 = TCP), -1 when unknown. */
  proto = -1;
  /** Non-zero when the transport segment was rebuilt from this many IP fragments. */
  fragments = 0;
  /**
   * The transport segment (TCP header + payload) as captured: bytes l4Off..l4End of `l4Buf`
   * (`data`, or a reassembled or inflated buffer); `l4` gives it as a view.
   */
  l4Buf: Uint8Array = EMPTY;
  l4Off = 0;
  l4End = 0;
  /** Length of the transport segment as the IP header gives it (may exceed l4.length when truncated). */
  l4Len = 0;

  // --- set by the TCP decoder ---
  sport = 0;
  dport = 0;
  /** Sequence and acknowledgment numbers, unsigned 32-bit. */
  seq = 0;
  ack = 0;
  /** TCP flag bits (TCP_FIN, TCP_SYN, ...), the low 9 bits of bytes 12-13. */
  flags = 0;
  win = 0;
  urgPtr = 0;
  /** TCP header length in bytes (data offset * 4). */
  tcpHeaderLen = 0;
  /** The payload bytes present in the capture, a view. */
  payload: Uint8Array = EMPTY;
  /**
   * Payload length as the IP header gives it (tshark's tcp.len); `payloadLen - payload.length` bytes
   * are missing: cut by the snaplen, or not in a frame shorter than its IP length (there tshark's
   * tcp.len counts the bytes present).
   */
  payloadLen = 0;

  /** Why this packet carries no TCP segment; null when it does. */
  skip: SkipReason | null = null;

  // --- set by the TCP demux ---
  /** The connection this segment belongs to; null before the demux. */
  flow: Flow | null = null;
  /** Direction within the connection: 0 client to server, 1 server to client. */
  dir: 0 | 1 = 0;
  /** Connections the demux ended just before this packet (idle, evicted, replaced); the reassembler closes them first. */
  expired: Flow[] | null = null;

  /** reset gives every field its initial value again (PacketPool reuses packets). */
  reset(): void {
    this.index = this.tsSec = this.tsNsec = this.caplen = this.len = this.linkType = this.iface = 0;
    this.dataBuf = EMPTY;
    this.dataOff = this.dataEnd = 0;
    this.vlan = NO_VLAN;
    this.netVersion = this.netOffset = 0;
    this.srcBuf = this.dstBuf = EMPTY;
    this.srcOff = this.dstOff = this.addrLen = 0;
    this.proto = -1;
    this.fragments = 0;
    this.l4Buf = EMPTY;
    this.l4Off = this.l4End = this.l4Len = 0;
    this.sport = this.dport = this.seq = this.ack = this.flags = this.win = this.urgPtr = this.tcpHeaderLen = 0;
    this.payload = EMPTY;
    this.payloadLen = 0;
    this.skip = null;
    this.flow = null;
    this.dir = 0;
    this.expired = null;
  }

  /** The captured bytes as a view; setting it points dataBuf at the array. */
  get data(): Uint8Array {
    return this.dataBuf.subarray(this.dataOff, this.dataEnd);
  }
  set data(a: Uint8Array) {
    this.dataBuf = a;
    this.dataOff = 0;
    this.dataEnd = a.length;
  }

  /** The source address (4 or 16 bytes; empty when none) as a view; setting it points srcBuf at the array. */
  get src(): Uint8Array {
    return this.addrLen === 0 ? EMPTY : this.srcBuf.subarray(this.srcOff, this.srcOff + this.addrLen);
  }
  set src(a: Uint8Array) {
    this.srcBuf = a;
    this.srcOff = 0;
    this.addrLen = a.length;
  }

  /** The destination address as a view; setting it points dstBuf at the array. */
  get dst(): Uint8Array {
    return this.addrLen === 0 ? EMPTY : this.dstBuf.subarray(this.dstOff, this.dstOff + this.addrLen);
  }
  set dst(a: Uint8Array) {
    this.dstBuf = a;
    this.dstOff = 0;
    this.addrLen = a.length;
  }

  /** The transport segment as a view; setting it points l4Buf at the array. */
  get l4(): Uint8Array {
    return this.l4Buf.subarray(this.l4Off, this.l4End);
  }
  set l4(a: Uint8Array) {
    this.l4Buf = a;
    this.l4Off = 0;
    this.l4End = a.length;
  }
}

export const EMPTY: Uint8Array = new Uint8Array(0);
export const NO_VLAN: number[] = [];

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;
export const TCP_NS = 0x100;

/**
 * PacketPool hands out Packet objects and takes back those nobody holds any more, so that a
 * pipeline that knows when it is done with a batch allocates no Packet per packet (a third of
 * the garbage of a capture of small segments). `take` gives a packet in its initial state;
 * `release` must only get packets no stage or consumer will read again (their byte views stay
 * valid: only the Packet objects are reused). Keeps at most `max` free packets.
 */
export class PacketPool {
  private readonly free: Packet[] = [];
  constructor(readonly max = 1 << 16) {}

  take(): Packet {
    const p = this.free.pop();
    if (p === undefined) return new Packet();
    p.reset();
    return p;
  }

  release(packets: readonly Packet[]): void {
    const free = this.free;
    for (let i = 0; i < packets.length && free.length < this.max; i++) free.push(packets[i]!);
  }
}

/** A batch of packets, the unit passed between stages. */
export type PacketBatch = Packet[];
