import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../src/core/frame-decoder.js';
import { IpDecoder } from '../src/core/ip-decoder.js';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_NS, TCP_PSH, TCP_SYN, TCP_URG, type Packet } from '../src/core/packet.js';
import type { OnError } from '../src/core/stage.js';
import { TcpDecoder, tcpOptions } from '../src/core/tcp-decoder.js';
import { ethIpv4Tcp, ethernet, fromXX, hex, ipv4, makePacket, tcp, type PacketSpec, codeOf } from './helpers/packet-builder.js';

function decode(data: Uint8Array, spec: PacketSpec = {}, onError: OnError = 'skip', dec = new TcpDecoder({ onError })): Packet {
  const p = makePacket(data, spec);
  if (new FrameDecoder().decode(p) && new IpDecoder().decode(p)) dec.decode(p);
  return p;
}

// 17:16:09.924505 IP 131.155.215.69.46656 > 137.116.81.94.80: Flags [S], seq 797190859, win 27200,
//   options [mss 1360,sackOK,TS val 1131021154 ecr 0,nop,wscale 7], length 0 (tcpdump__tcp-handshake-sll-nsec.pcap frame 1)
const SLL_SYN = fromXX(`
	0x0000:  0004 0200 0000 0000 0000 0000 0000 0800  ................
	0x0010:  4500 003c 29a9 4000 4006 db5f 839b d745  E..<).@.@.._...E
	0x0020:  8974 515e b640 0050 2f84 2acb 0000 0000  .tQ^.@.P/.*.....
	0x0030:  a002 6a40 50c4 0000 0204 0550 0402 080a  ..j@P......P....
	0x0040:  436a 0362 0000 0000 0103 0307            Cj.b........`);

describe('TcpDecoder', () => {
  it('decodes every field of a real SYN', () => {
    const p = decode(SLL_SYN, { linkType: 113 });
    expect({ skip: p.skip, sport: p.sport, dport: p.dport, seq: p.seq, ack: p.ack, flags: p.flags, win: p.win, urg: p.urgPtr, hl: p.tcpHeaderLen, len: p.payloadLen, present: p.payload.length }).toEqual({
      skip: null,
      sport: 46656,
      dport: 80,
      seq: 797190859,
      ack: 0,
      flags: TCP_SYN,
      win: 27200,
      urg: 0,
      hl: 40,
      len: 0,
      present: 0,
    });
  });

  it('seq and ack are unsigned; all 9 flag bits are kept; urgent pointer is read', () => {
    const all = TCP_FIN | TCP_SYN | TCP_PSH | TCP_ACK | TCP_URG | TCP_ECE | TCP_CWR | TCP_NS;
    const p = decode(ethIpv4Tcp({ seq: 0xfffffff0, ack: 0x80000001, flags: all, urgPtr: 0xbeef, win: 0 }));
    expect([p.seq, p.ack, p.flags, p.urgPtr, p.win]).toEqual([0xfffffff0, 0x80000001, all, 0xbeef, 0]);
    expect(p.seq).toBeGreaterThan(0);
  });

  it('payload is a view of the captured bytes', () => {
    const p = decode(ethIpv4Tcp({ payload: 'GET / HTTP/1.1\r\n' }));
    expect(new TextDecoder().decode(p.payload)).toBe('GET / HTTP/1.1\r\n');
    expect(p.payload.buffer).toBe(p.data.buffer);
    expect(p.payloadLen).toBe(16);
  });

  it('payload cut by the snaplen: payloadLen keeps the wire length (tshark tcp.len)', () => {
    const dec = new TcpDecoder();
    const p = decode(ethIpv4Tcp({ payload: new Uint8Array(1000) }), { snaplen: 96 }, 'skip', dec);
    expect([p.skip, p.payloadLen, p.payload.length]).toEqual([null, 1000, 96 - 54]);
    expect(dec.stats).toMatchObject({ tcp: 1, truncated: 1, payloadBytes: 42 });
  });

  // 19:43:41.634774 IP 201.186.157.67.60827 > 128.3.26.249.smtp: Flags [SEW], seq 1041724894, win 5840,
  //   options [mss 1460,sackOK,TS [|tcp]> (zeek__snaplen68-truncated.pcap frame 1: caplen 68 of 74)
  it('options cut by the snaplen: still decoded from the fixed header, as tshark does', () => {
    const dec = new TcpDecoder({ onError: 'fail' });
    const p = decode(
      fromXX(`
	0x0000:  eaf6 1c2d 9fd2 800b 983b b9ec 0800 4500  ...-.....;....E.
	0x0010:  003c 38e0 4000 3306 0ce2 c9ba 9d43 8003  .<8.@.3......C..
	0x0020:  1af9 ed9b 0019 3e17 75de 0000 0000 a0c2  ......>.u.......
	0x0030:  16d0 90d6 0000 0204 05b4 0402 0808 0000  ................
	0x0040:  0001 0000                                ....`),
      { len: 74 },
      'fail',
      dec,
    );
    expect([p.skip, p.sport, p.dport, p.seq, p.flags, p.tcpHeaderLen, p.payloadLen, p.payload.length]).toEqual([null, 60827, 25, 1041724894, TCP_SYN | TCP_ECE | TCP_CWR, 40, 0, 0]);
    expect(dec.stats.optionsTruncated).toBe(1);
    expect(tcpOptions(p)).toEqual({ mss: 1460, sackPermitted: true, truncated: true });
    const cutInside = decode(ethIpv4Tcp({ options: hex('0204 05b4 0402 080a 00000001 00000002') }), { snaplen: 14 + 20 + 30 });
    expect(tcpOptions(cutInside)).toEqual({ mss: 1460, sackPermitted: true, truncated: true });
  });

  it('a fixed header cut by the snaplen is tcp-truncated, never thrown', () => {
    const p = makePacket(ethIpv4Tcp(), { snaplen: 14 + 20 + 12, index: 8 });
    new FrameDecoder().decode(p);
    new IpDecoder().decode(p);
    expect(codeOf(() => new TcpDecoder({ onError: 'fail' }).decode(p))).toBeUndefined();
    expect(p.skip).toBe('tcp-truncated');
  });

  // a frame shorter than its IP length although caplen == len (zeek__tcp-reassembly-gaps-halfclose.pcap frame 7)
  it('a short frame with its whole header: payload the bytes present, payloadLen from the IP header', () => {
    const dec = new TcpDecoder({ onError: 'fail' });
    const f = ethIpv4Tcp({ options: hex('0101 080a 00000001 00000002'), payload: new Uint8Array(1448).fill(0x62) });
    const p = decode(f.slice(0, f.length - 8), {}, 'fail', dec);
    expect([p.skip, p.caplen === p.len, p.tcpHeaderLen, p.payloadLen, p.payload.length]).toEqual([null, true, 32, 1448, 1440]);
    expect(dec.stats).toMatchObject({ tcp: 1, truncated: 1, payloadBytes: 1440, optionsTruncated: 0 });
  });

  it('a short frame that cuts the TCP header (fixed part or options) is tcp-malformed; the snaplen the same is not', () => {
    const f = ethIpv4Tcp({ options: hex('0204 05b4 0402 080a 00000001 00000002'), payload: 'data' });
    for (const keep of [14 + 20 + 12, 14 + 20 + 30]) {
      expect(decode(f.slice(0, keep)).skip).toBe('tcp-malformed');
      expect(codeOf(() => decode(f.slice(0, keep), { index: 6 }, 'fail'))).toBe('TCP_BAD_HEADER@6');
    }
    expect(decode(f, { snaplen: 14 + 20 + 12 }).skip).toBe('tcp-truncated');
    expect(decode(f, { snaplen: 14 + 20 + 30 }).skip).toBeNull();
  });

  it.each([
    ['data offset < 5', ethIpv4Tcp({ dataOffset: 4 })],
    ['a header longer than the segment', ethernet({ type: 0x0800, payload: ipv4({ payload: tcp({ dataOffset: 8 }) }) })],
    ['a segment shorter than 20 bytes', ethernet({ type: 0x0800, payload: ipv4({ payload: hex('0050 0050 0000') }) })],
  ])('%s is tcp-malformed; TCP_BAD_HEADER under fail', (_name, frame) => {
    expect(decode(frame).skip).toBe('tcp-malformed');
    expect(codeOf(() => decode(frame, { index: 12 }, 'fail'))).toBe('TCP_BAD_HEADER@12');
  });

  it('drops skipped packets from its batch unless keepSkipped', () => {
    const mk = (): Packet[] =>
      [ethIpv4Tcp(), ethIpv4Tcp({ dataOffset: 3 }), ethIpv4Tcp({ sport: 9 })].map((f, i) => {
        const p = makePacket(f, { index: i + 1 });
        new FrameDecoder().decode(p);
        new IpDecoder().decode(p);
        return p;
      });
    const dec = new TcpDecoder();
    const out: number[] = [];
    dec.write(mk(), (b) => out.push(...b.map((p) => p.index)));
    expect(out).toEqual([1, 3]);
    expect(dec.stats).toMatchObject({ packets: 3, tcp: 2, skipped: 1, 'skipped.tcp-malformed': 1 });
    const kept: Array<string | null> = [];
    new TcpDecoder({ keepSkipped: true }).write(mk(), (b) => kept.push(...b.map((p) => p.skip)));
    expect(kept).toEqual([null, 'tcp-malformed', null]);
  });
});

describe('tcpOptions', () => {
  it('parses MSS, SACK-permitted, timestamps and window scale of a real SYN', () => {
    expect(tcpOptions(decode(SLL_SYN, { linkType: 113 }))).toEqual({ mss: 1360, sackPermitted: true, tsVal: 1131021154, tsEcr: 0, wscale: 7 });
  });

  it('parses SACK blocks as unsigned pairs', () => {
    const opts = hex('050a fffffff0 00000010 080a 00000001 00000002 ' + '0512 00000100 00000200 00000300 00000400');
    const p = decode(ethIpv4Tcp({ options: opts }));
    expect(tcpOptions(p)).toEqual({ tsVal: 1, tsEcr: 2, sack: [[0x100, 0x200], [0x300, 0x400]] });
    const one = decode(ethIpv4Tcp({ options: hex('0101 050a fffffff0 00000010') }));
    expect(tcpOptions(one).sack).toEqual([[0xfffffff0, 0x10]]);
  });

  it('stops at end-of-list and ignores unknown kinds', () => {
    const p = decode(ethIpv4Tcp({ options: hex('1e04 abcd 0204 0218 00 0303 07') }));
    expect(tcpOptions(p)).toEqual({ mss: 536 });
  });

  it('flags an option whose length is invalid or runs past the header', () => {
    expect(tcpOptions(decode(ethIpv4Tcp({ options: hex('0204 05b4 0301') })))).toEqual({ mss: 1460, malformed: true });
    expect(tcpOptions(decode(ethIpv4Tcp({ options: hex('0101 0108 0a00') })))).toEqual({ malformed: true });
  });

  it('a header without options gives {}', () => {
    expect(tcpOptions(decode(ethIpv4Tcp()))).toEqual({});
  });
});
