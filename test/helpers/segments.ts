/**
 * segments: build TCP Packets directly (the fields the decoders would set), for the demux and
 * reassembler tests, and run them through TcpDemux + TcpReassembler.
 *
 *   const c = new Conv();                 // 10.0.0.1:40000 -> 10.0.0.2:80, no VLAN
 *   c.c('S', 100)                         // client SYN, ISN 100
 *   c.s('SA', 500, 101)                   // server SYN-ACK
 *   c.c('PA', 101, 501, 'GET /')          // client data
 *
 * Flags are letters: S SYN, A ACK, P PSH, F FIN, R RST, U URG. Time advances by 1 ms per packet
 * unless `at(seconds)` sets it.
 */
import type { StreamEvent } from '../../src/core/events.js';
import { TcpDemux, type TcpDemuxOptions } from '../../src/core/flow-table.js';
import { Packet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../../src/core/packet.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../../src/core/reassembler.js';

export function parseFlags(f: string): number {
  let v = 0;
  for (const ch of f) {
    if (ch === 'S') v |= TCP_SYN;
    else if (ch === 'A') v |= TCP_ACK;
    else if (ch === 'P') v |= TCP_PSH;
    else if (ch === 'F') v |= TCP_FIN;
    else if (ch === 'R') v |= TCP_RST;
    else if (ch === 'U') v |= TCP_URG;
    else throw new Error(`unknown flag ${ch}`);
  }
  return v;
}

function ipBytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

export interface SegExtra {
  /** Bytes on the wire when more than the captured `data` (snaplen truncation). */
  wireLen?: number;
  win?: number;
  /** TCP option bytes (padded to 4 here). */
  options?: number[];
}

let globalIndex = 0;

/** Conv makes the packets of one 4-tuple. */
export class Conv {
  readonly cAddr: Uint8Array;
  readonly sAddr: Uint8Array;
  time = 1_000_000;
  constructor(
    client = '10.0.0.1:40000',
    server = '10.0.0.2:80',
    readonly vlan: number[] = [],
  ) {
    const [ci, cp] = client.split(':');
    const [si, sp] = server.split(':');
    this.cAddr = ipBytes(ci!);
    this.sAddr = ipBytes(si!);
    this.cPort = Number(cp);
    this.sPort = Number(sp);
  }
  readonly cPort: number;
  readonly sPort: number;

  /** at sets the capture time (seconds) of the next packet. */
  at(sec: number): this {
    this.time = sec;
    return this;
  }

  /** c: a segment from the client. */
  c(flags: string, seq: number, ack = 0, data: string | Uint8Array = '', extra: SegExtra = {}): Packet {
    return this.make(true, flags, seq, ack, data, extra);
  }

  /** s: a segment from the server. */
  s(flags: string, seq: number, ack = 0, data: string | Uint8Array = '', extra: SegExtra = {}): Packet {
    return this.make(false, flags, seq, ack, data, extra);
  }

  private make(fromClient: boolean, flags: string, seq: number, ack: number, data: string | Uint8Array, extra: SegExtra): Packet {
    const p = new Packet();
    p.index = ++globalIndex;
    const t = this.time;
    this.time = Math.round((this.time + 0.001) * 1e6) / 1e6;
    p.tsSec = Math.floor(t);
    p.tsNsec = Math.round((t - Math.floor(t)) * 1e9);
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const opts = extra.options ?? [];
    const optLen = (opts.length + 3) & ~3;
    const hdr = 20 + optLen;
    const l4 = new Uint8Array(hdr + bytes.length);
    l4.set(opts, 20);
    l4.set(bytes, hdr);
    p.vlan = this.vlan;
    p.netVersion = 4;
    p.src = fromClient ? this.cAddr : this.sAddr;
    p.dst = fromClient ? this.sAddr : this.cAddr;
    p.proto = 6;
    p.l4 = l4;
    p.l4Len = hdr + (extra.wireLen ?? bytes.length);
    p.sport = fromClient ? this.cPort : this.sPort;
    p.dport = fromClient ? this.sPort : this.cPort;
    p.seq = seq >>> 0;
    p.ack = ack >>> 0;
    p.flags = parseFlags(flags);
    p.win = extra.win ?? 65535;
    p.tcpHeaderLen = hdr;
    p.payload = l4.subarray(hdr);
    p.payloadLen = extra.wireLen ?? bytes.length;
    p.caplen = p.len = 14 + 20 + p.l4Len;
    return p;
  }
}

/** run passes packets through a fresh TcpDemux + TcpReassembler (in batches of `batch`) and returns every event. */
export function run(packets: Packet[], options: TcpReassemblerOptions & TcpDemuxOptions = {}, batch = 3): StreamEvent[] {
  const demux = new TcpDemux({ maxConnections: options.maxConnections, idleTimeout: options.idleTimeout });
  const reasm = new TcpReassembler({
    overlap: options.overlap,
    chunking: options.chunking,
    maxBufferedPerConnection: options.maxBufferedPerConnection,
    maxBufferedTotal: options.maxBufferedTotal,
    pushMaxBytes: options.pushMaxBytes,
    overlapCheckBytes: options.overlapCheckBytes,
    waitPackets: options.waitPackets,
  });
  const events: StreamEvent[] = [];
  const take = (evs: StreamEvent[]): void => {
    events.push(...evs);
  };
  for (let i = 0; i < packets.length; i += batch) {
    demux.write(packets.slice(i, i + batch), (out) => reasm.write(out, take));
  }
  demux.end(() => undefined);
  const written = events.length;
  reasm.end(take);
  lastStats = { demux: demux.stats, reasm: reasm.stats, fromEnd: events.length - written };
  return events;
}

/** Stats of the last `run`, and how many events came from `end()` rather than `write()`. */
export let lastStats: { demux: TcpDemux['stats']; reasm: TcpReassembler['stats']; fromEnd: number } | null = null;

export interface StreamText {
  c2s: string;
  s2c: string;
}

/** streams concatenates each connection's data events per direction (latin1 text), checking offsets are contiguous with gaps. */
export function streams(events: StreamEvent[]): Map<number, StreamText> {
  const out = new Map<number, StreamText>();
  const next = new Map<string, number>();
  for (const e of events) {
    if (e.type !== 'data' && e.type !== 'gap') continue;
    const k = `${e.conn}/${e.dir}`;
    const at = next.get(k) ?? 0;
    if (e.offset !== at) throw new Error(`${k}: event at offset ${e.offset}, expected ${at}`);
    const len = e.type === 'data' ? e.data.length : e.len;
    next.set(k, at + len);
    if (e.type === 'gap') continue;
    let s = out.get(e.conn);
    if (!s) out.set(e.conn, (s = { c2s: '', s2c: '' }));
    s[e.dir] += Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length).toString('latin1');
  }
  return out;
}

/** kinds lists the events as short strings: "open 0", "data 0 c2s 0 GET", "gap 0 s2c 5+3 acked", "close 0 fin". */
export function kinds(events: StreamEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'open':
        return `open ${e.conn}`;
      case 'data':
        return `data ${e.conn} ${e.dir} ${e.offset} ${Buffer.from(e.data).toString('latin1')}`;
      case 'gap':
        return `gap ${e.conn} ${e.dir} ${e.offset}+${e.len} ${e.reason}`;
      case 'overlap':
        return `overlap ${e.conn} ${e.dir} ${e.offset}+${e.len} ${e.kept}`;
      case 'close':
        return `close ${e.conn} ${e.reason}`;
    }
  });
}

/**
 * tcpSegment: a decoded TCP packet between `client`:40000 and 10.0.0.1:80 at `t` milliseconds
 * after 1 700 000 000 s, as the decoders would leave it (for tests that build many connections
 * without Conv's bookkeeping).
 */
export function tcpSegment(client: Uint8Array, fromClient: boolean, flags: number, seq: number, ack: number, data: Uint8Array, t: number): Packet {
  const p = new Packet();
  p.tsSec = 1_700_000_000 + Math.floor(t / 1000);
  p.tsNsec = (t % 1000) * 1_000_000;
  p.netVersion = 4;
  const server = SERVER_10_0_0_1;
  p.src = fromClient ? client : server;
  p.dst = fromClient ? server : client;
  p.proto = 6;
  p.sport = fromClient ? 40000 : 80;
  p.dport = fromClient ? 80 : 40000;
  p.seq = seq >>> 0;
  p.ack = ack >>> 0;
  p.flags = flags;
  p.win = 65535;
  p.tcpHeaderLen = 20;
  p.payload = data;
  p.payloadLen = data.length;
  p.l4Len = 20 + data.length;
  return p;
}

const SERVER_10_0_0_1 = Uint8Array.of(10, 0, 0, 1);
