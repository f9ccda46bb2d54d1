import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { formatIp } from '../src/core/addr.js';
import { FrameDecoder } from '../src/core/frame-decoder.js';
import { IpDecoder, type IpDecoderOptions } from '../src/core/ip-decoder.js';
import type { Packet } from '../src/core/packet.js';
import { zlibInflate } from '../src/transforms/decode-transforms.js';
import { ah, concat, ethIpv4Tcp, ethIpv6Tcp, ethernet, ext6, fromXX, hex, ipv4, ipv4Fragments, ipv6, ipv6Fragments, makePacket, tcp, type PacketSpec, codeOf } from './helpers/packet-builder.js';

function decode(data: Uint8Array, spec: PacketSpec = {}, options: IpDecoderOptions = {}, dec = new IpDecoder(options)): Packet {
  const p = makePacket(data, spec);
  if (new FrameDecoder().decode(p)) dec.decode(p);
  return p;
}

function addrs(p: Packet): string {
  return `${formatIp(p.src)} > ${formatIp(p.dst)}`;
}

const SEG = tcp({ sport: 5000, dport: 80, payload: 'hello world' }); // 31 bytes
const eth4 = (payload: Uint8Array): Uint8Array => ethernet({ type: 0x0800, payload });
const eth6 = (payload: Uint8Array): Uint8Array => ethernet({ type: 0x86dd, payload });

describe('IPv4', () => {
  it('sets addresses, protocol and the transport segment as a view', () => {
    const f = ethIpv4Tcp({ src: '192.0.2.1', dst: '198.51.100.7', payload: 'abc' });
    const p = decode(f);
    expect([p.skip, addrs(p), p.proto, p.l4Len, p.l4.length, p.fragments]).toEqual([null, '192.0.2.1 > 198.51.100.7', 6, 23, 23, 0]);
    expect(p.l4.buffer).toBe(p.data.buffer);
    expect(p.l4.byteOffset).toBe(p.data.byteOffset + 34);
  });

  it('skips IPv4 options (IHL 6 and 15)', () => {
    for (const opts of [hex('01010100'), hex('07' + '27' + '04' + '00'.repeat(37))]) {
      const p = decode(eth4(ipv4({ options: opts, payload: SEG })));
      expect([p.skip, p.l4Len, p.l4[0], p.l4[1]]).toEqual([null, 31, 0x13, 0x88]);
    }
  });

  it('trims Ethernet padding beyond the total length', () => {
    const small = ipv4({ payload: tcp({}) }); // 40 bytes
    const f = concat(eth4(small), new Uint8Array(6)); // 60-byte minimum frame
    const p = decode(f);
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 20, 20]);
  });

  it('total length 0 (TSO capture) means the rest of the frame', () => {
    const p = decode(eth4(ipv4({ totalLength: 0, payload: SEG })));
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 31, 31]);
  });

  it('total length 0 in a frame the snaplen cut: the wire length counts', () => {
    const big = tcp({ payload: new Uint8Array(1000) });
    const p = decode(eth4(ipv4({ totalLength: 0, payload: big })), { snaplen: 100 });
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 1020, 100 - 34]);
  });

  it('a payload cut by the snaplen passes with l4Len from the header', () => {
    const dec = new IpDecoder();
    const p = decode(eth4(ipv4({ payload: tcp({ payload: new Uint8Array(1400) }) })), { snaplen: 96 }, {}, dec);
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 1420, 62]);
    expect(dec.stats.truncated).toBe(1);
  });

  it('a header cut by the snaplen is ip-truncated, never thrown', () => {
    for (const snaplen of [14 + 10, 14 + 22]) {
      const p = makePacket(eth4(ipv4({ options: hex('01010100'), payload: SEG })), { snaplen });
      new FrameDecoder().decode(p);
      expect(codeOf(() => new IpDecoder({ onError: 'fail' }).decode(p))).toBeUndefined();
      expect(p.skip).toBe('ip-truncated');
    }
  });

  it('a total length beyond the bytes of an uncut frame (a short frame): the bytes present, l4Len from the header, never thrown', () => {
    const f = eth4(ipv4({ totalLength: 200, payload: SEG }));
    const dec = new IpDecoder({ onError: 'fail' });
    const p = decode(f, {}, {}, dec);
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 180, 31]);
    expect(dec.stats).toMatchObject({ tcp: 1, truncated: 1, shortFrames: 1, skipped: 0 });
  });

  it.each([
    ['IHL < 5', { ihl: 4 }],
    ['version 5', { version: 5 }],
    ['total length < header length', { totalLength: 16 }],
  ])('%s is malformed; IPV4_BAD_HEADER under fail', (_name, over) => {
    const f = eth4(ipv4({ ...over, payload: SEG }));
    expect(decode(f).skip).toBe('ipv4-malformed');
    expect(codeOf(() => decode(f, { index: 5 }, { onError: 'fail' }))).toBe('IPV4_BAD_HEADER@5');
  });

  it('a frame shorter than 20 IP bytes and not cut is malformed', () => {
    expect(decode(eth4(hex('4500 0014 0000'))).skip).toBe('ipv4-malformed');
  });

  it('IPv6 bytes where the link type promises IPv4 (228) are malformed', () => {
    expect(decode(ethIpv6Tcp().subarray(14), { linkType: 228 }).skip).toBe('ipv4-malformed');
  });

  it('non-TCP protocols are not-tcp, counted by protocol, with addresses set', () => {
    const dec = new IpDecoder();
    const udp = decode(eth4(ipv4({ proto: 17, src: '10.1.1.1', payload: new Uint8Array(8) })), {}, {}, dec);
    decode(eth4(ipv4({ proto: 1, payload: new Uint8Array(8) })), {}, {}, dec);
    decode(eth4(ipv4({ proto: 17, payload: new Uint8Array(8) })), {}, {}, dec);
    expect([udp.skip, udp.proto, formatIp(udp.src)]).toEqual(['not-tcp', 17, '10.1.1.1']);
    expect(dec.stats).toMatchObject({ 'skipped.not-tcp': 3, 'notTcpProto.17': 2, 'notTcpProto.1': 1, tcp: 0, ipv4: 3 });
  });

  it('AH (51) over IPv4 is walked to TCP', () => {
    const p = decode(eth4(ipv4({ proto: 51, payload: concat(ah(6), SEG) })));
    expect([p.skip, p.proto, p.l4Len]).toEqual([null, 6, 31]);
  });
});

describe('IPv6', () => {
  it('sets addresses and the segment', () => {
    const p = decode(ethIpv6Tcp({ src: 'fe80::1', dst: '2001:db8::abcd', payload: 'xyz' }));
    expect([p.skip, addrs(p), p.proto, p.l4Len]).toEqual([null, 'fe80::1 > 2001:db8::abcd', 6, 23]);
  });

  // 16:44:12.497486 IP6 2001:db8:1::2 > 2001:db8:1::1: DSTOPT (padn) 36951 > 80: Flags [S] (zeek__ipv6-ext-headers-tcp.pcap frame 4)
  it('walks a destination options header (real packet)', () => {
    const p = decode(
      fromXX(`
	0x0000:  aa00 0400 0a04 0010 1895 316a 86dd 6000  ..........1j..\`.
	0x0010:  0000 001c 3c40 2001 0db8 0001 0000 0000  ....<@..........
	0x0020:  0000 0000 0002 2001 0db8 0001 0000 0000  ................
	0x0030:  0000 0000 0001 0600 0104 0000 0000 9057  ...............W
	0x0040:  0050 e31e bd4e 0000 0000 5002 2000 0357  .P...N....P....W
	0x0050:  0000                                     ..`),
    );
    expect([p.skip, addrs(p), p.l4Len, p.l4[0], p.l4[1]]).toEqual([null, '2001:db8:1::2 > 2001:db8:1::1', 20, 0x90, 0x57]);
  });

  // 16:44:14.322735 IP6 2001:db8:1::2 > 2001:db8:1::1: RT6 (len=0, type=0, segleft=0) 45805 > 80: Flags [S] (frame 33)
  // 16:44:13.354053 IP6 2001:db8:1::2 > 2001:db8:1::1: frag (0x00000000:0|20) 59694 > 80: Flags [S] (frame 13: atomic fragment)
  it('walks a routing header and an atomic fragment header (real packets)', () => {
    const rt = decode(
      fromXX(`
	0x0000:  aa00 0400 0a04 0010 1895 316a 86dd 6000  ..........1j..\`.
	0x0010:  0000 001c 2b40 2001 0db8 0001 0000 0000  ....+@..........
	0x0020:  0000 0000 0002 2001 0db8 0001 0000 0000  ................
	0x0030:  0000 0000 0001 0600 0000 0000 0000 b2ed  ................
	0x0040:  0050 1bc7 6adf 0000 0000 5002 2000 fa87  .P..j.....P.....
	0x0050:  0000                                     ..`),
    );
    expect([rt.skip, rt.l4Len, rt.l4[0], rt.l4[1]]).toEqual([null, 20, 0xb2, 0xed]);
    const dec = new IpDecoder();
    const fr = decode(
      fromXX(`
	0x0000:  aa00 0400 0a04 0010 1895 316a 86dd 6000  ..........1j..\`.
	0x0010:  0000 001c 2c40 2001 0db8 0001 0000 0000  ....,@..........
	0x0020:  0000 0000 0002 2001 0db8 0001 0000 0000  ................
	0x0030:  0000 0000 0001 0600 0000 0000 0000 e92e  ................
	0x0040:  0050 6981 7905 0000 0000 5002 2000 6866  .Pi.y.....P...hf
	0x0050:  0000                                     ..`),
      {},
      {},
      dec,
    );
    expect([fr.skip, fr.l4Len, fr.fragments, fr.l4[0], fr.l4[1]]).toEqual([null, 20, 0, 0xe9, 0x2e]);
    expect(dec.defrag.stats.fragments).toBe(0);
  });

  it('walks a long chain: hop-by-hop, destination options, routing, mobility-style, destination options', () => {
    const chain = concat(ext6(60, hex('0102 0000')), ext6(43, new Uint8Array(12)), ext6(135), ext6(60, new Uint8Array(20)), ext6(6));
    // hop-by-hop first: its next header is 60
    const payload = concat(chain, SEG);
    const p = decode(eth6(ipv6({ nextHeader: 0, payload })));
    expect([p.skip, p.proto, p.l4Len, p.l4[0], p.l4[1]]).toEqual([null, 6, 31, 0x13, 0x88]);
  });

  it('ESP (50), No Next Header (59) and UDP are not-tcp', () => {
    for (const nh of [50, 59, 17]) {
      const p = decode(eth6(ipv6({ nextHeader: 60, payload: concat(ext6(nh), new Uint8Array(16)) })));
      expect([p.skip, p.proto]).toEqual(['not-tcp', nh]);
    }
  });

  it('a jumbogram: payload length 0 and the Jumbo Payload option', () => {
    const seg = tcp({ payload: new Uint8Array(70000) });
    const hbh = ext6(6, hex('c204' + (8 + seg.length).toString(16).padStart(8, '0')));
    const p = decode(eth6(ipv6({ nextHeader: 0, payloadLength: 0, payload: concat(hbh, seg) })));
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 70020, 70020]);
  });

  it('a jumbogram cut by the snaplen keeps the jumbo length', () => {
    const seg = tcp({ payload: new Uint8Array(70000) });
    const hbh = ext6(6, hex('c204' + (8 + seg.length).toString(16).padStart(8, '0')));
    const p = decode(eth6(ipv6({ nextHeader: 0, payloadLength: 0, payload: concat(hbh, seg) })), { snaplen: 200 });
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 70020, 200 - 14 - 48]);
  });

  it('payload length beyond the bytes of an uncut frame (a short frame): the bytes present, l4Len from the header, never thrown', () => {
    const f = eth6(ipv6({ payloadLength: 500, payload: SEG }));
    const dec = new IpDecoder({ onError: 'fail' });
    const p = decode(f, {}, {}, dec);
    expect([p.skip, p.l4Len, p.l4.length]).toEqual([null, 500, 31]);
    expect(dec.stats).toMatchObject({ tcp: 1, truncated: 1, shortFrames: 1, skipped: 0 });
  });

  it('an extension header running past the payload length is malformed', () => {
    const f = eth6(ipv6({ nextHeader: 60, payload: hex('06 05 0000 0000 0000') }));
    expect(decode(f).skip).toBe('ipv6-malformed');
    expect(codeOf(() => decode(f, { index: 2 }, { onError: 'fail' }))).toBe('IPV6_BAD_HEADER@2');
  });

  it('an IPv6 header or extension header cut by the snaplen is ip-truncated', () => {
    expect(decode(ethIpv6Tcp(), { snaplen: 14 + 30 }).skip).toBe('ip-truncated');
    const f = eth6(ipv6({ nextHeader: 60, payload: concat(ext6(6, new Uint8Array(30)), SEG) }));
    expect(decode(f, { snaplen: 14 + 40 + 10 }).skip).toBe('ip-truncated');
  });

  it('version nibble 4 inside an IPv6 ethertype is malformed', () => {
    expect(decode(eth6(ipv6({ payload: SEG }).map((b, i) => (i === 0 ? 0x40 : b)))).skip).toBe('ipv6-malformed');
  });
});

describe('short frames (IP length past the end of a frame the snaplen did not cut)', () => {
  const BIG = tcp({ sport: 5000, dport: 80, payload: new Uint8Array(1000).fill(0x61) }); // 1020 bytes
  /** the first `keep` bytes of a frame, with caplen == len: a frame shorter than its IP length */
  const short = (f: Uint8Array, keep: number): Uint8Array => f.slice(0, keep);

  it('IPv4 and IPv6: counted in shortFrames and truncated, the segment is the bytes present', () => {
    const dec = new IpDecoder();
    const p4 = decode(short(eth4(ipv4({ payload: BIG })), 14 + 20 + 500), {}, {}, dec);
    expect([p4.skip, p4.caplen === p4.len, p4.l4Len, p4.l4.length]).toEqual([null, true, 1020, 500]);
    const p6 = decode(short(eth6(ipv6({ payload: BIG })), 14 + 40 + 300), {}, {}, dec);
    expect([p6.skip, p6.l4Len, p6.l4.length]).toEqual([null, 1020, 300]);
    expect(dec.stats).toMatchObject({ tcp: 2, truncated: 2, shortFrames: 2, skipped: 0 });
  });

  it('Ethernet padding is still trimmed and no short frame; a snaplen cut is no short frame either', () => {
    const dec = new IpDecoder();
    const pad = decode(concat(eth4(ipv4({ payload: tcp({}) })), new Uint8Array(6)), {}, {}, dec);
    expect([pad.skip, pad.l4Len, pad.l4.length]).toEqual([null, 20, 20]);
    const cut = decode(eth4(ipv4({ payload: BIG })), { snaplen: 96 }, {}, dec);
    expect([cut.skip, cut.l4Len, cut.l4.length]).toEqual([null, 1020, 96 - 34]);
    expect(dec.stats).toMatchObject({ tcp: 2, truncated: 1, shortFrames: 0 });
  });

  it('a short frame of another protocol is counted and not-tcp', () => {
    const dec = new IpDecoder();
    expect(decode(short(eth4(ipv4({ proto: 17, payload: new Uint8Array(100) })), 14 + 20 + 8), {}, {}, dec).skip).toBe('not-tcp');
    expect(dec.stats).toMatchObject({ shortFrames: 1, 'skipped.not-tcp': 1 });
  });

  it('a header that does not fit in a short frame is malformed, as before (thrown under fail)', () => {
    // an inner IPv4 header (IPv4-in-IPv4) cut by the frame's end
    const tun = short(eth4(ipv4({ proto: 4, payload: ipv4({ payload: BIG }) })), 14 + 20 + 12);
    expect(decode(tun).skip).toBe('ipv4-malformed');
    expect(codeOf(() => decode(tun, { index: 3 }, { onError: 'fail' }))).toBe('IPV4_BAD_HEADER@3');
    // an IPv6 destination options header cut by the frame's end
    const ext = short(eth6(ipv6({ nextHeader: 60, payload: concat(ext6(6, new Uint8Array(30)), BIG) })), 14 + 40 + 10);
    expect(decode(ext).skip).toBe('ipv6-malformed');
    expect(codeOf(() => decode(ext, { index: 4 }, { onError: 'fail' }))).toBe('IPV6_BAD_HEADER@4');
    // the same headers cut by the snaplen stay ip-truncated
    expect(decode(eth4(ipv4({ proto: 4, payload: ipv4({ payload: BIG }) })), { snaplen: 14 + 20 + 12 }).skip).toBe('ip-truncated');
  });

  it('a tunnel in a short frame: the inner segment is the bytes present; an inner length past the outer in a whole frame stays malformed', () => {
    const inner = ipv4({ src: '172.16.0.1', dst: '172.16.0.2', payload: BIG });
    const p = decode(short(eth4(ipv4({ proto: 4, payload: inner })), 14 + 40 + 100));
    expect([p.skip, addrs(p), p.l4Len, p.l4.length]).toEqual([null, '172.16.0.1 > 172.16.0.2', 1020, 100]);
    const longer = ipv4({ totalLength: 2000, payload: BIG });
    expect(decode(eth4(ipv4({ proto: 4, payload: longer }))).skip).toBe('ipv4-malformed');
  });

  it('a short fragment is not reassembled (ip-truncated), so its datagram never completes', () => {
    for (const v6 of [false, true]) {
      const dec = new IpDecoder();
      const parts = v6
        ? ipv6Fragments({}, 6, 77, BIG, 512).map(eth6)
        : ipv4Fragments({ id: 77 }, BIG, 512).map(eth4);
      const first = decode(short(parts[0]!, parts[0]!.length - 100), {}, {}, dec);
      const last = decode(parts[1]!, {}, {}, dec);
      expect([first.skip, last.skip, last.fragments]).toEqual(['ip-truncated', 'fragment', 0]);
      expect(dec.stats).toMatchObject({ shortFrames: 1, tcp: 0, datagramsReassembled: 0 });
      dec.end();
      expect(dec.stats.incompleteExpired).toBe(1);
    }
  });
});

describe('tunnels', () => {
  // 08:07:44.116403 IP6 2002::2 > 2000::1: AH(spi=0xc9ec8968,seq=0x1): IP6 4000::1.12764 > 2003::8c00:1.80: Flags [S]
  // (libpcap__ipv6-ah-ipcomp-tunnel-http.pcap frame 1)
  it('AH then IPv6-in-IPv6: the inner addresses are reported', () => {
    const dec = new IpDecoder();
    const p = decode(
      fromXX(`
	0x0000:  000c 295e 06d2 aabb cc00 0000 86dd 6000  ..)^..........\`.
	0x0010:  0000 0064 3340 2002 0000 0000 0000 0000  ...d3@..........
	0x0020:  0000 0000 0002 2000 0000 0000 0000 0000  ................
	0x0030:  0000 0000 0001 2904 0000 c9ec 8968 0000  ......)......h..
	0x0040:  0001 d324 5b1e c979 f817 6e5c 38d0 6000  ...$[..y..n\\8.\`.
	0x0050:  0000 0024 0640 4000 0000 0000 0000 0000  ...$.@@.........
	0x0060:  0000 0000 0001 2003 0000 0000 0000 0000  ................
	0x0070:  0000 8c00 0001 31dc 0050 9a12 1652 0000  ......1..P...R..
	0x0080:  0000 9002 0b40 0cc8 0000 0204 05a0 0402  .....@..........
	0x0090:  080a 04c2 70c2 0000 0000                 ....p.....`),
      {},
      {},
      dec,
    );
    expect([p.skip, addrs(p), p.l4Len]).toEqual([null, '4000::1 > 2003::8c00:1', 36]);
    expect(dec.stats.tunnels).toBe(1);
  });

  it('IPv4-in-IPv4 (4) and IPv6-in-IPv4 (41)', () => {
    const inner4 = ipv4({ src: '172.16.0.1', dst: '172.16.0.2', payload: SEG });
    const p4 = decode(eth4(ipv4({ proto: 4, payload: inner4 })));
    expect([p4.skip, addrs(p4), p4.l4Len]).toEqual([null, '172.16.0.1 > 172.16.0.2', 31]);
    const inner6 = ipv6({ src: 'fd00::1', dst: 'fd00::2', payload: SEG });
    const p6 = decode(eth4(ipv4({ proto: 41, payload: inner6 })));
    expect([p6.skip, addrs(p6), p6.l4Len]).toEqual([null, 'fd00::1 > fd00::2', 31]);
  });

  it('a malformed inner header is malformed; a cut inner header is ip-truncated', () => {
    const inner = ipv4({ ihl: 3, payload: SEG });
    expect(decode(eth4(ipv4({ proto: 4, payload: inner }))).skip).toBe('ipv4-malformed');
    expect(decode(eth4(ipv4({ proto: 4, payload: ipv4({ payload: SEG }) })), { snaplen: 14 + 20 + 10 }).skip).toBe('ip-truncated');
  });

  it('IPComp (108) is inflated when an inflate function is given, else not-tcp', () => {
    const inner = ipv6({ src: '4000::1', dst: '2003::8c00:1', payload: SEG });
    const ipcomp = concat(hex('29 00 635c'), deflateRawSync(inner));
    const f = eth6(ipv6({ nextHeader: 51, payload: concat(ah(108), ipcomp) }));
    const p = decode(f, {}, { inflate: zlibInflate });
    expect([p.skip, addrs(p), p.l4Len]).toEqual([null, '4000::1 > 2003::8c00:1', 31]);
    const q = decode(f);
    expect([q.skip, q.proto]).toEqual(['not-tcp', 108]);
    const garbage = eth6(ipv6({ nextHeader: 108, payload: hex('2900635c ffffffffffff') }));
    expect(decode(garbage, {}, { inflate: zlibInflate }).skip).toBe('not-tcp');
  });

  it('tunnels nested deeper than 8 levels stop as not-tcp', () => {
    let pkt = ipv4({ payload: SEG });
    for (let i = 0; i < 9; i++) pkt = ipv4({ proto: 4, payload: pkt });
    expect(decode(eth4(pkt)).skip).toBe('not-tcp');
  });
});

describe('batches', () => {
  it('drops skipped packets unless keepSkipped; counts both versions', () => {
    const mk = () => {
      const ps = [makePacket(ethIpv4Tcp(), { index: 1 }), makePacket(eth4(ipv4({ proto: 17, payload: new Uint8Array(8) })), { index: 2 }), makePacket(ethIpv6Tcp(), { index: 3 })];
      for (const p of ps) new FrameDecoder().decode(p);
      return ps;
    };
    const dec = new IpDecoder();
    const out: number[][] = [];
    dec.write(mk(), (b) => out.push(b.map((p) => p.index)));
    expect(out).toEqual([[1, 3]]);
    expect(dec.stats).toMatchObject({ packets: 3, ipv4: 2, ipv6: 1, tcp: 2, skipped: 1 });
    const kept: Array<string | null> = [];
    new IpDecoder({ keepSkipped: true }).write(mk(), (b) => kept.push(...b.map((p) => p.skip)));
    expect(kept).toEqual([null, 'not-tcp', null]);
  });
});
