import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import { TcpDemux } from '../src/core/flow-table.js';
import { Packet } from '../src/core/packet.js';
import { hasTool, needTool, SHARED_PCAPS } from './helpers/env.js';
import { Conv } from './helpers/segments.js';
import { collect, runCapture } from './helpers/tcp-pipeline.js';

function demux(packets: Packet[], options = {}): { d: TcpDemux; conns: number[]; dirs: number[] } {
  const d = new TcpDemux(options);
  d.write(packets, () => undefined);
  return { d, conns: packets.map((p) => p.flow?.id ?? -1), dirs: packets.map((p) => p.dir) };
}

describe('TcpDemux', () => {
  it('copies the addresses it keeps, so a flow never pins the chunk its first packet came in', () => {
    const chunk = Buffer.alloc(1 << 20); // a Buffer's slice() is a view: the demux must not use it
    chunk.set([10, 0, 0, 1, 10, 0, 0, 2], 100);
    const p = new Packet();
    p.index = 1;
    p.src = chunk.subarray(100, 104);
    p.dst = chunk.subarray(104, 108);
    p.proto = 6;
    p.sport = 40000;
    p.dport = 80;
    p.flags = 0x02;
    p.tcpHeaderLen = 20;
    new TcpDemux().write([p], () => undefined);
    // IPv4 addresses are kept as numbers: nothing of the packet is referenced
    const flow = p.flow as unknown as Record<string, unknown>;
    for (const v of Object.values(flow)) expect(v instanceof Uint8Array && v.buffer === chunk.buffer).toBe(false);
    expect(p.flow!.client).toEqual({ ip: '10.0.0.1', port: 40000 });
    // IPv6 ones in one copy of their own
    const q = new Packet();
    chunk.set([0x20, 0x01, 0x0d, 0xb8], 200);
    chunk[215] = 1;
    chunk.set([0x20, 0x01, 0x0d, 0xb8], 216);
    chunk[231] = 2;
    Object.assign(q, { index: 2, src: chunk.subarray(200, 216), dst: chunk.subarray(216, 232), proto: 6, sport: 40000, dport: 80, flags: 0x02, tcpHeaderLen: 20 });
    new TcpDemux().write([q], () => undefined);
    const v6 = (q.flow as unknown as { v6: Uint8Array }).v6;
    expect(v6.buffer.byteLength).toBe(32);
    expect(q.flow!.client.ip).toBe('2001:db8::1');
    expect(q.flow!.server.ip).toBe('2001:db8::2');
  });

  it('keys on addresses, ports and VLAN ids; both directions share one flow', () => {
    const a = new Conv('10.0.0.1:40000', '10.0.0.2:80');
    const v = new Conv('10.0.0.1:40000', '10.0.0.2:80', [10]);
    const v2 = new Conv('10.0.0.1:40000', '10.0.0.2:80', [10, 20]);
    const p = new Conv('10.0.0.1:40001', '10.0.0.2:80');
    const { conns, dirs, d } = demux([a.c('S', 1), v.c('S', 1), a.s('SA', 9, 2), v2.c('S', 1), v.s('SA', 5, 2), p.c('S', 1), a.c('A', 2, 10)]);
    expect(conns).toEqual([0, 1, 0, 2, 1, 3, 0]);
    expect(dirs).toEqual([0, 0, 1, 0, 1, 0, 0]);
    expect(d.stats).toMatchObject({ packets: 7, connections: 4, live: 4 });
  });

  it('passes non-TCP packets through without a flow', () => {
    const a = new Conv();
    const udp = a.c('A', 1);
    udp.proto = 17;
    const skipped = a.c('A', 1);
    skipped.skip = 'tcp-truncated';
    const { conns, d } = demux([udp, skipped, new Packet()]);
    expect(conns).toEqual([-1, -1, -1]);
    expect(d.stats.passed).toBe(3);
  });

  it.each([
    ['SYN first', (c: Conv) => [c.c('S', 1), c.s('SA', 9, 2)], '10.0.0.1', false],
    ['SYN-ACK first', (c: Conv) => [c.s('SA', 9, 2), c.c('S', 1)], '10.0.0.1', false],
    ['midstream, client first', (c: Conv) => [c.c('A', 1, 9)], '10.0.0.1', true],
    ['midstream, server first', (c: Conv) => [c.s('A', 9, 1)], '10.0.0.1', true],
  ])('roles: %s', (_n, make, client, midstream) => {
    const c = new Conv();
    const pk = make(c);
    demux(pk);
    const f = pk[0]!.flow!;
    expect(f.client.ip).toBe(client);
    expect(f.server).toEqual({ ip: '10.0.0.2', port: 80 });
    expect(f.midstream).toBe(midstream);
    for (const p of pk) expect(p.dir).toBe(Buffer.from(p.src).equals(c.cAddr) ? 0 : 1);
  });

  it('formats IPv6 endpoints as tshark does', () => {
    const c = new Conv();
    const p = c.c('S', 1);
    p.src = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]);
    p.dst = Uint8Array.from([...new Array<number>(15).fill(0), 1]);
    demux([p]);
    expect(p.flow!.client.ip).toBe('2001:db8::1');
    expect(p.flow!.server.ip).toBe('::1');
  });

  it('starts a new connection on a SYN with another ISN, not on a retransmitted SYN', () => {
    const c = new Conv();
    const { conns, d } = demux([c.c('S', 100), c.c('S', 100), c.s('SA', 5, 101), c.c('FA', 101, 6), c.s('FA', 6, 102), c.c('S', 100), c.c('S', 7000), c.s('SA', 50, 7001), c.c('A', 7001, 51)]);
    expect(conns).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1]);
    expect(d.stats.reused).toBe(1);
  });

  it('a SYN after midstream packets compares with seq-1 of the first segment (as Wireshark)', () => {
    const c = new Conv();
    const { conns } = demux([c.c('A', 101, 9), c.c('S', 100), c.c('S', 55)]);
    expect(conns).toEqual([0, 0, 1]);
  });

  it('ends idle connections in capture time and attaches them to the next packet of another connection', () => {
    const a = new Conv('10.0.0.1:40000', '10.0.0.2:80').at(100);
    const b = new Conv('10.0.0.3:40000', '10.0.0.2:80').at(150);
    const p1 = a.c('S', 1);
    const p2 = b.c('S', 1);
    b.at(400);
    const p3 = b.c('A', 2, 9); // a was quiet for exactly 300 s: not yet idle
    b.at(400.5);
    const p4 = b.c('A', 2, 9); // a is now idle: it ends just before p4
    a.at(401);
    const p5 = a.c('A', 2, 9); // a's 4-tuple again: a new (midstream) connection
    const { conns, d } = demux([p1, p2, p3, p4, p5], { idleTimeout: 300 });
    expect(p3.expired).toBeNull();
    expect(p4.expired?.map((f) => [f.id, f.endedBy])).toEqual([[0, 'idle']]);
    expect(conns).toEqual([0, 1, 1, 1, 2]);
    expect(d.stats.idleExpired).toBe(1);
  });

  it('a packet never ends its own connection by the idle timeout (keepalive after hours, bogus timestamp)', () => {
    // pcapplusplus__pcapng-eth-and-sll.pcapng: the SYN-ACK's timestamp is 1.47e9 s late
    const a = new Conv('10.0.0.1:40000', '10.0.0.2:80').at(100);
    const b = new Conv('10.0.0.3:40000', '10.0.0.2:80').at(100);
    const p1 = a.c('S', 1);
    const p2 = b.c('S', 1);
    a.at(100 + 1.47e9);
    const p3 = a.s('SA', 9, 2);
    a.at(101);
    const p4 = a.c('A', 2, 10);
    const { conns, d } = demux([p1, p2, p3, p4], { idleTimeout: 300 });
    expect(conns).toEqual([0, 1, 0, 0]);
    // the jump ended the other, silent connection
    expect(p3.expired?.map((f) => [f.id, f.endedBy])).toEqual([[1, 'idle']]);
    expect(d.stats.idleExpired).toBe(1);
  });

  it('evicts finished connections before active ones at maxConnections', () => {
    const convs = [1, 2, 3, 4].map((i) => new Conv(`10.0.0.${i}:40000`, '10.0.0.9:80'));
    const [c1, c2, c3, c4] = convs as [Conv, Conv, Conv, Conv];
    const pk = [c1.c('S', 1), c2.c('S', 1), c2.c('R', 2), c3.c('S', 1), c1.c('A', 2, 9), c4.c('S', 1)];
    const { d } = demux(pk, { maxConnections: 2 });
    // c3 arrives: c2 (RST, finished) goes first; c4 arrives: c3 is the least recently active
    expect(pk[3]!.expired?.map((f) => [f.id, f.endedBy])).toEqual([[1, 'evicted']]);
    expect(pk[5]!.expired?.map((f) => [f.id, f.endedBy])).toEqual([[2, 'evicted']]);
    expect(d.stats).toMatchObject({ evicted: 2, live: 2, peakLive: 2 });
  });

  it('rejects bad options with INVALID_OPTION', () => {
    for (const o of [{ maxConnections: 0 }, { maxConnections: 1.5 }, { idleTimeout: -1 }, { idleTimeout: Number.NaN }]) {
      try {
        new TcpDemux(o);
        expect.unreachable();
      } catch (e) {
        expect(isPcapflowError(e) && e.code).toBe('INVALID_OPTION');
      }
    }
  });
});

/**
 * Connection numbers against tshark's tcp.stream on a few captures chosen for their numbering
 * cases. stream-tshark-diff.test.ts checks every shared capture, with the documented exceptions
 * (VLAN ids are part of pcapflow's key; tshark numbers streams for TCP headers quoted in ICMP).
 */
const NUMBERING: Array<[string, string]> = [
  ['arkime__tcp-reassembly-scenarios.pcap', 'port reuse after FIN (new ISN: new stream; same ISN: same stream), SYN-ACK first'],
  ['suricata-verify__rst-fin-before-synack-evasion.pcap', 'RST and FIN before the SYN-ACK stay in the connection'],
  ['zeek__tcp-fast-open-http.pcap', 'two connections interleaved'],
  ['pcapplusplus__mixed-126-conns.pcap', '126 connections, VLAN and IPv6 frames'],
  ['suricata-verify__ftp-data-80-conns.pcap', '80 connections, half-closes and RSTs'],
  ['zeek__http-methods-49-conns.pcap', '49 connections'],
  ['suricata-verify__syn-flood-200.pcap', '200 SYN-only connections'],
];

describe.runIf(hasTool('tshark'))('connection numbers match tshark tcp.stream', () => {
  it.each(NUMBERING)('%s (%s)', (name) => {
    if (!needTool('tshark')) return;
    const file = path.join(SHARED_PCAPS, name);
    const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.number', '-e', 'tcp.stream', '-Y', 'tcp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const r = runCapture(file);
    let compared = 0;
    for (const line of out.split('\n')) {
      const [frame, stream] = line.split('\t');
      if (!stream) continue;
      expect(r.connOfFrame.get(Number(frame)), `frame ${frame}`).toBe(Number(stream));
      compared++;
    }
    expect(compared).toBeGreaterThan(0);
    expect(compared).toBe(r.connOfFrame.size);
  });

  it('exception: a SYN captured after its connection\'s first packets joins that connection (tshark 4.0 starts a new stream there)', () => {
    // tcpflow's http-lines-randomized: the client's SYN is frame 10, after 9 packets of its connection
    const r = runCapture(path.join(SHARED_PCAPS, 'tcpflow__http-lines-randomized.pcapng'));
    expect(new Set(r.connOfFrame.values())).toEqual(new Set([0]));
    const opens = r.events.filter((e) => e.type === 'open');
    expect(opens).toHaveLength(1);
    expect(opens[0]).toMatchObject({ midstream: false });
  });

  it('exception: a connection whose two directions carry different VLAN ids is two connections here', () => {
    const r = runCapture(path.join(SHARED_PCAPS, 'zeek__ldap-gap-126-interfaces.pcapng'));
    // tshark: one stream; the client's packets are on VLAN 81, the server's on VLAN 80
    const opens = r.events.filter((e) => e.type === 'open');
    expect(opens.map((e) => e.type === 'open' && e.vlan)).toEqual([[81], [80]]);
  });
});

describe('smoke: real captures through reader, decoder, demux and reassembler', () => {
  const GET = ['baseline', 'vlan', 'qinq', 'qinqinq', 'synack-first', 'midstream', 'no-fins'];
  it.each(GET)('zeek__http-get-%s.pcap gives the 136-byte request and the 5007-byte response', (v) => {
    const r = runCapture(path.join(SHARED_PCAPS, `zeek__http-get-${v}.pcap`), {}, 1000);
    expect(r.error).toBeNull();
    const s = collect(r.events);
    expect([...s.keys()]).toEqual([0]);
    const st = s.get(0)!;
    expect(st.c2s.length).toBe(136);
    expect(st.s2c.length).toBe(5007);
    expect(st.c2s.subarray(0, 4).toString()).toBe('GET ');
    expect(st.s2c.subarray(0, 9).toString()).toBe('HTTP/1.1 ');
    expect(r.events.some((e) => e.type === 'gap')).toBe(false);
    const close = r.events.at(-1)!;
    expect(close.type === 'close' && close.reason).toBe(v === 'no-fins' ? 'eof' : 'fin');
  });

  it('all get variants give byte-identical streams', () => {
    const ref = collect(runCapture(path.join(SHARED_PCAPS, 'zeek__http-get-baseline.pcap')).events).get(0)!;
    for (const v of GET) {
      const st = collect(runCapture(path.join(SHARED_PCAPS, `zeek__http-get-${v}.pcap`)).events).get(0)!;
      expect(st.c2s.equals(ref.c2s), v).toBe(true);
      expect(st.s2c.equals(ref.s2c), v).toBe(true);
    }
  });

  it('tcp-rst-with-data: the RST payload is part of the stream, as tshark shows', () => {
    const r = runCapture(path.join(SHARED_PCAPS, 'suricata-verify__tcp-rst-with-data.pcap'));
    const st = collect(r.events).get(0)!;
    expect(st.c2s.toString()).toBe('Access Denied');
    expect(st.s2c.toString()).toBe('Please Let Me In!');
  });

  it('zeek ftp-bigtransfer: offsets pass 4 GiB across gaps and the 32-bit wrap', () => {
    const r = runCapture(path.join(SHARED_PCAPS, 'zeek__ftp-bigtransfer-4gb-gaps.pcap'));
    const data = r.events.filter((e) => e.type === 'data' && e.conn === 2);
    const last = data.at(-1)!;
    expect(last.type === 'data' && last.offset + last.data.length).toBe(5_416_666_670);
    const close = r.events.find((e) => e.type === 'close' && e.conn === 2)!;
    expect(close.type === 'close' && close.reason).toBe('fin');
    expect(close.type === 'close' && close.s2c.bytes + close.s2c.missing).toBe(5_416_666_670);
  });
});
