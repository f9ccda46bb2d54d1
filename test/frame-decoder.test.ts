import { describe, expect, it } from 'vitest';
import { FrameDecoder, type DecoderOptions } from '../src/core/frame-decoder.js';
import { NO_VLAN, type Packet } from '../src/core/packet.js';
import { concat, ethIpv4Tcp, ethIpv6Tcp, ethernet, fromXX, hex, ipv4, makePacket, tcp, type PacketSpec, codeOf } from './helpers/packet-builder.js';

function frame(data: Uint8Array, spec: PacketSpec = {}, options: DecoderOptions = {}): Packet {
  const p = makePacket(data, spec);
  new FrameDecoder(options).decode(p);
  return p;
}

const IPV4_TCP = ipv4({ payload: tcp({ flags: 0x02 }) });

describe('Ethernet II', () => {
  it('finds IPv4 after 14 bytes, untagged frames share the empty vlan array', () => {
    const p = frame(ethIpv4Tcp());
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 14]);
    expect(p.vlan).toBe(NO_VLAN);
  });

  it('finds IPv6', () => {
    const p = frame(ethIpv6Tcp());
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 6, 14]);
  });

  // 21:42:06.869344 IP 141.142.228.5.59856 > 192.150.187.43.80: Flags [S] (zeek__http-get-qinqinq.pcap frame 1)
  const QINQINQ = fromXX(`
	0x0000:  0010 db88 d2ef c8bc c896 d2a0 8100 001e  ................
	0x0010:  8100 0014 8100 000a 0800 4500 0040 df8e  ..........E..@..
	0x0020:  4000 4006 6dd3 8d8e e405 c096 bb2b e9d0  @.@.m........+..
	0x0030:  0050 fe21 323a 0000 0000 b002 ffff 3bc0  .P.!2:........;.
	0x0040:  0000 0204 05b4 0103 0304 0101 080a 164a  ...............J
	0x0050:  dd20 0000 0000 0402 0000                 ..........`);

  it('keeps three stacked 802.1Q ids, outermost first', () => {
    const p = frame(QINQINQ);
    expect([p.netVersion, p.netOffset, p.vlan]).toEqual([4, 26, [30, 20, 10]]);
  });

  it('walks 802.1ad (0x88a8) and 0x9100 outer tags', () => {
    const inner = ethernet({ type: 0x0800, vlan: [5], payload: IPV4_TCP });
    for (const tpid of [0x88a8, 0x9100]) {
      const outer = concat(inner.subarray(0, 12), hex(tpid.toString(16).padStart(4, '0') + '0fff'), inner.subarray(12));
      const p = frame(outer);
      expect([p.netVersion, p.netOffset, p.vlan]).toEqual([4, 22, [4095, 5]]);
    }
  });

  it('reads only the 12-bit VLAN id (priority and DEI bits dropped)', () => {
    const f = ethernet({ type: 0x0800, vlan: [100], payload: IPV4_TCP });
    f[14] = 0xe0 | f[14]!; // PCP 7
    expect(frame(f).vlan).toEqual([100]);
  });

  // 18:49:06.874907 MPLS (label 29, tc 6, [S], ttl 255) IP 10.1.2.1.11001 > 10.34.0.1.23: Flags [S] (zeek__mixed-vlan-mpls.pcap frame 1)
  it('walks an MPLS label to the bottom of the stack', () => {
    const p = frame(
      fromXX(`
	0x0000:  0030 96e6 fc39 0030 9605 2838 8847 0001  .0...9.0..(8.G..
	0x0010:  ddff 45c0 002c 0000 0000 ff06 a4e7 0a01  ..E..,..........
	0x0020:  0201 0a22 0001 2af9 0017 9832 0ffb 0000  ..."..*....2....
	0x0030:  0000 6002 1020 a240 0000 0204 0218       ..\`....@......`),
    );
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 18]);
  });

  it('walks a stack of three MPLS labels (0x8848 too) to IPv6', () => {
    const labels = hex('00010000 00020000 000031ff');
    const v6 = ethIpv6Tcp().subarray(14);
    for (const type of [0x8847, 0x8848]) {
      const p = frame(ethernet({ type, payload: concat(labels, v6) }));
      expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 6, 26]);
    }
  });

  it('MPLS with a pseudowire control word (nibble 0) is not IP', () => {
    const p = frame(ethernet({ type: 0x8847, payload: concat(hex('000011ff 00000000'), IPV4_TCP) }));
    expect(p.skip).toBe('not-ip');
  });

  // 13:49:52.465481 PPPoE [ses 0xdde5] IP 10.3.65.35.5068 > 185.8.212.46.80: Flags [S] (pcapplusplus__http-rst-qinq-pppoe.pcap frame 1)
  it('walks QinQ + PPPoE session + PPP to IPv4', () => {
    const p = frame(
      fromXX(`
	0x0000:  442b 03cd 5200 6cf0 49d4 fea8 8100 03ab  D+..R.l.I.......
	0x0010:  8100 02e8 8864 1100 dde5 0036 0021 4500  .....d.....6.!E.
	0x0020:  0034 3626 4000 8006 ec40 0a03 4123 b908  .46&@....@..A#..
	0x0030:  d42e 13cc 0050 9cd2 de46 0000 0000 8002  .....P...F......
	0x0040:  2000 e791 0000 0204 05a0 0103 0308 0101  ................
	0x0050:  0402                                     ..`),
    );
    expect([p.skip, p.netVersion, p.netOffset, p.vlan]).toEqual([null, 4, 30, [939, 744]]);
  });

  it('PPPoE with PPP IPv6 (0x0057), compressed PPP protocol, and LCP (not IP)', () => {
    const v6 = ethIpv6Tcp().subarray(14);
    const p6 = frame(ethernet({ type: 0x8864, payload: concat(hex('1100 0001 0000 0057'), v6) }));
    expect([p6.netVersion, p6.netOffset]).toEqual([6, 22]);
    const pc = frame(ethernet({ type: 0x8864, payload: concat(hex('1100 0001 0000 21'), IPV4_TCP) }));
    expect([pc.netVersion, pc.netOffset]).toEqual([4, 21]);
    const lcp = frame(ethernet({ type: 0x8864, payload: hex('1100 0001 0006 c021 01010004') }));
    expect(lcp.skip).toBe('not-ip');
  });

  it('802.3 length field with LLC/SNAP carries an ethertype; other LLC is not IP', () => {
    const snap = frame(ethernet({ type: IPV4_TCP.length + 8, payload: concat(hex('aaaa03 000000 0800'), IPV4_TCP) }));
    expect([snap.skip, snap.netVersion, snap.netOffset]).toEqual([null, 4, 22]);
    const stp = frame(ethernet({ type: 38, payload: hex('424203 0000 00 00' + '00'.repeat(33)) }));
    expect(stp.skip).toBe('not-ip');
  });

  it('ARP is not IP', () => {
    const p = frame(ethernet({ type: 0x0806, payload: new Uint8Array(28) }));
    expect([p.skip, p.netVersion]).toEqual(['not-ip', 0]);
  });
});

describe('Linux cooked captures', () => {
  // 17:16:09.924505 IP 131.155.215.69.46656 > 137.116.81.94.80: Flags [S] (tcpdump__tcp-handshake-sll-nsec.pcap frame 1)
  it('SLL (113): 16-byte header, protocol at 14', () => {
    const p = frame(
      fromXX(`
	0x0000:  0004 0200 0000 0000 0000 0000 0000 0800  ................
	0x0010:  4500 003c 29a9 4000 4006 db5f 839b d745  E..<).@.@.._...E
	0x0020:  8974 515e b640 0050 2f84 2acb 0000 0000  .tQ^.@.P/.*.....
	0x0030:  a002 6a40 50c4 0000 0204 0550 0402 080a  ..j@P......P....
	0x0040:  436a 0362 0000 0000 0103 0307            Cj.b........`),
      { linkType: 113 },
    );
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 16]);
  });

  // 00:11:23.613927 ifb0 Out IP 192.168.1.253.56478 > 192.168.1.21.80: Flags [S] (suricata-verify__sll2-http-small.pcap frame 1)
  it('SLL2 (276): 20-byte header, protocol at 0', () => {
    const p = frame(
      fromXX(`
	0x0000:  0800 0000 0000 0002 0001 0406 aa76 3071  .............v0q
	0x0010:  b0e7 0000 4500 003c 45a9 4000 4006 70b0  ....E..<E.@.@.p.
	0x0020:  c0a8 01fd c0a8 0115 dc9e 0050 8b0b 4393  ...........P..C.
	0x0030:  0000 0000 a002 faf0 d70c 0000 0204 05b4  ................
	0x0040:  0402 080a c5be 8053 0000 0000 0103 0307  .......S........`),
      { linkType: 276 },
    );
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 20]);
  });

  it('SLL with an ARP protocol is not IP; a 10-byte SLL frame is malformed', () => {
    expect(frame(concat(hex('0000 0001 0006 000000000000 0000 0806'), new Uint8Array(28)), { linkType: 113 }).skip).toBe('not-ip');
    expect(frame(new Uint8Array(10), { linkType: 113 }).skip).toBe('link-malformed');
  });
});

describe('raw IP and friends', () => {
  // 20:23:15.526632 IP6 2001:618:400::5199:cc70.35995 > 2001:618:1:8000::5.80: Flags [S] (pcapplusplus__dlt12-raw-ipv6-4-http.pcap frame 1)
  const RAW_V6 = fromXX(`
	0x0000:  6000 0000 0028 0640 2001 0618 0400 0000  \`....(.@........
	0x0010:  0000 0000 5199 cc70 2001 0618 0001 8000  ....Q..p........
	0x0020:  0000 0000 0000 0005 8c9b 0050 6ae7 0736  ...........Pj..6
	0x0030:  0000 0000 a002 1630 299c 0000 0204 058c  .......0).......
	0x0040:  0402 080a 00dd 1a39 0000 0000 0103 0302  .......9........`);

  it.each([101, 12, 14])('link type %i: the version nibble decides', (linkType) => {
    const p6 = frame(RAW_V6, { linkType });
    expect([p6.skip, p6.netVersion, p6.netOffset]).toEqual([null, 6, 0]);
    const p4 = frame(IPV4_TCP, { linkType });
    expect([p4.skip, p4.netVersion, p4.netOffset]).toEqual([null, 4, 0]);
    const bad = frame(hex('50000000'), { linkType });
    expect(bad.skip).toBe('not-ip');
  });

  // 07:56:29.595534 IP 172.24.133.205.43090 > 172.24.133.205.8000: Flags [S] (zeek__http-basic-auth-linktype228.pcap frame 1)
  it('228 is IPv4 and 229 is IPv6, with no link header', () => {
    const v4 = fromXX(`
	0x0000:  4500 003c 44f8 4000 4006 91f8 ac18 85cd  E..<D.@.@.......
	0x0010:  ac18 85cd a852 1f40 00b5 8bdb 0000 0000  .....R.@........
	0x0020:  a002 ffd7 b913 0000 0204 ffd7 0402 080a  ................
	0x0030:  66c7 763a 0000 0000 0103 0307            f.v:........`);
    expect([frame(v4, { linkType: 228 }).netVersion, frame(v4, { linkType: 228 }).netOffset]).toEqual([4, 0]);
    expect(frame(RAW_V6, { linkType: 229 }).netVersion).toBe(6);
  });

  // 07:41:49.579093 IP 127.0.0.1.55229 > 127.0.0.1.8000: Flags [S] (suricata-verify__null-http-range-41-conns.pcap frame 1: AF 2, little-endian)
  it('NULL (0): AF 2 in host byte order, either order accepted', () => {
    const le = fromXX(`
	0x0000:  0200 0000 4500 0040 0000 4000 4006 0000  ....E..@..@.@...
	0x0010:  7f00 0001 7f00 0001 d7bd 1f40 bcb5 ec9d  ...........@....
	0x0020:  0000 0000 b002 ffff fe34 0000 0204 3fd8  .........4....?.
	0x0030:  0103 0305 0101 080a 230a 8454 0000 0000  ........#..T....
	0x0040:  0402 0000                                ....`);
    expect([frame(le, { linkType: 0 }).netVersion, frame(le, { linkType: 0 }).netOffset]).toEqual([4, 4]);
    const be = concat(hex('00000002'), le.subarray(4));
    expect(frame(be, { linkType: 0 }).netVersion).toBe(4);
  });

  it('NULL: AF 10, 24, 28 and 30 are IPv6 (gopacket__null-loopback-ipv6-http.pcap uses 30)', () => {
    for (const af of [10, 24, 28, 30]) {
      const le = concat(new Uint8Array([af, 0, 0, 0]), RAW_V6);
      const be = concat(new Uint8Array([0, 0, 0, af]), RAW_V6);
      expect([frame(le, { linkType: 0 }).netVersion, frame(be, { linkType: 0 }).netVersion]).toEqual([6, 6]);
    }
    expect(frame(concat(hex('07000000'), RAW_V6), { linkType: 0 }).skip).toBe('not-ip');
  });

  it('LOOP (108): AF in network byte order only', () => {
    expect(frame(concat(hex('00000002'), IPV4_TCP), { linkType: 108 }).netVersion).toBe(4);
    expect(frame(concat(hex('00000018'), RAW_V6), { linkType: 108 }).netVersion).toBe(6);
    expect(frame(concat(hex('02000000'), IPV4_TCP), { linkType: 108 }).skip).toBe('not-ip');
  });
});

describe('NFLOG and 802.11', () => {
  // 18:51:10.937225 IP 10.10.10.10.54064 > 52.43.228.156.80: Flags [S] (arkime__nflog-http.pcap frame 1)
  it('NFLOG (239): walks the TLVs to the payload TLV (type 9)', () => {
    const p = frame(
      fromXX(`
	0x0000:  0200 0028 0800 0100 0000 0316 0500 0a00  ...(............
	0x0010:  0000 0000 0800 0500 0000 0002 0800 0b00  ................
	0x0020:  0000 064c 0800 0e00 0000 0402 4000 0900  ...L........@...
	0x0030:  4500 003c c8fe 4000 4006 b6aa 0a0a 0a0a  E..<..@.@.......
	0x0040:  342b e49c d330 0050 f1ea 5c7f 0000 0000  4+...0.P..\\.....
	0x0050:  a002 3908 fc4d 0000 0204 05b4 0402 080a  ..9..M..........
	0x0060:  a12a 9481 0000 0000 0103 0307            .*..........`),
      { linkType: 239 },
    );
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 48]);
  });

  it('NFLOG without a payload TLV is not IP', () => {
    expect(frame(hex('02000028 0800 0100 00000316'), { linkType: 239 }).skip).toBe('not-ip');
  });

  // 02:45:53.739049 ... 11.0 Mb/s 2462 MHz 11b IP 172.5.5.113.49417 > 14.17.32.211.80: Flags [S] (arkime__80211-radiotap-http.pcap frame 1; ends in a 4-byte FCS)
  const RADIOTAP = fromXX(`
	0x0000:  0000 2400 2f40 00a0 2008 0000 0000 0000  ..$./@..........
	0x0010:  28eb 6828 0000 0000 1016 9e09 a000 ba00  (.h(............
	0x0020:  0000 ba00 0801 0201 8825 9340 6b6f f8a9  .........%.@ko..
	0x0030:  d01e 90a3 8825 9340 6b6f 20b7 aaaa 0300  .....%.@ko......
	0x0040:  0000 0800 4500 003c f931 4000 4006 6130  ....E..<.1@.@.a0
	0x0050:  ac05 0571 0e11 20d3 c109 0050 9674 0dd6  ...q.......P.t..
	0x0060:  0000 0000 a002 ffff 0d1b 0000 0204 05b4  ................
	0x0070:  0402 080a ffff f4e7 0000 0000 0103 0306  ................
	0x0080:  38ac 82fa                                8...`);

  it('radiotap (127) + 802.11 data + LLC/SNAP', () => {
    const p = frame(RADIOTAP, { linkType: 127 });
    expect([p.skip, p.netVersion, p.netOffset]).toEqual([null, 4, 68]);
  });

  it('802.11 QoS data with to-DS and from-DS adds address 4 and QoS control', () => {
    const rt = RADIOTAP.subarray(0, 36);
    const wlan = concat(hex('8803'), new Uint8Array(22), new Uint8Array(6), hex('0000'), hex('aaaa03 000000 0800'), IPV4_TCP);
    const p = frame(concat(rt, wlan), { linkType: 127 });
    expect([p.netVersion, p.netOffset]).toEqual([4, 36 + 32 + 8]);
  });

  it('802.11 management, protected and null-data frames are not IP', () => {
    const rt = RADIOTAP.subarray(0, 36);
    const body = concat(hex('aaaa03 000000 0800'), IPV4_TCP);
    expect(frame(concat(rt, hex('8000'), new Uint8Array(22), body), { linkType: 127 }).skip).toBe('not-ip'); // beacon
    expect(frame(concat(rt, hex('0841'), new Uint8Array(22), body), { linkType: 127 }).skip).toBe('not-ip'); // protected
    expect(frame(concat(rt, hex('4801'), new Uint8Array(22), body), { linkType: 127 }).skip).toBe('not-ip'); // null data
  });
});

describe('skips and errors', () => {
  it('an unknown link type is link-unsupported, counted per link type; LINK_UNSUPPORTED under fail', () => {
    const dec = new FrameDecoder();
    dec.decode(makePacket(IPV4_TCP, { linkType: 147 }));
    dec.decode(makePacket(IPV4_TCP, { linkType: 147 }));
    dec.decode(makePacket(IPV4_TCP, { linkType: 9 }));
    expect(dec.stats).toMatchObject({ packets: 3, 'skipped.link-unsupported': 3, 'unsupportedLinkType.147': 2, 'unsupportedLinkType.9': 1, 'linkType.147': 2 });
    expect(codeOf(() => new FrameDecoder({ onError: 'fail' }).decode(makePacket(IPV4_TCP, { linkType: 147, index: 7 })))).toBe('LINK_UNSUPPORTED@7');
  });

  it('a link header cut by the snaplen is link-truncated and never thrown', () => {
    const f = ethernet({ type: 0x0800, vlan: [1, 2], payload: IPV4_TCP });
    for (const snaplen of [10, 16, 20]) {
      const p = makePacket(f, { snaplen, index: 3 });
      expect(codeOf(() => new FrameDecoder({ onError: 'fail' }).decode(p))).toBeUndefined();
      expect(p.skip).toBe('link-truncated');
    }
  });

  it('a frame shorter than its link header is link-malformed; LINK_MALFORMED under fail', () => {
    expect(frame(new Uint8Array(10)).skip).toBe('link-malformed');
    expect(frame(new Uint8Array(2), { linkType: 0 }).skip).toBe('link-malformed');
    expect(frame(hex('0000 2400'), { linkType: 127 }).skip).toBe('link-malformed');
    expect(codeOf(() => frame(new Uint8Array(13), { index: 42 }, { onError: 'fail' }))).toBe('LINK_MALFORMED@42');
  });

  it('drops skipped packets from the batch unless keepSkipped', () => {
    const batch = () => [makePacket(ethIpv4Tcp(), { index: 1 }), makePacket(ethernet({ type: 0x0806, payload: new Uint8Array(28) }), { index: 2 }), makePacket(IPV4_TCP, { index: 3, linkType: 147 }), makePacket(ethIpv6Tcp(), { index: 4 })];
    const out: Packet[][] = [];
    const dec = new FrameDecoder();
    dec.write(batch(), (b) => out.push(b));
    expect(out.map((b) => b.map((p) => p.index))).toEqual([[1, 4]]);
    expect(dec.stats).toMatchObject({ packets: 4, ip: 2, skipped: 2, 'skipped.not-ip': 1, 'skipped.link-unsupported': 1, 'linkType.1': 3 });

    const kept: Packet[][] = [];
    new FrameDecoder({ keepSkipped: true }).write(batch(), (b) => kept.push(b));
    expect(kept[0]!.map((p) => p.skip)).toEqual([null, 'not-ip', 'link-unsupported', null]);
  });

  it('emits nothing for a batch whose packets are all skipped', () => {
    const out: Packet[][] = [];
    new FrameDecoder().write([makePacket(IPV4_TCP, { linkType: 147 })], (b) => out.push(b));
    expect(out).toEqual([]);
  });

  it('passes packets that arrive already skipped without decoding them again', () => {
    const p = makePacket(ethIpv4Tcp());
    p.skip = 'not-ip';
    const dec = new FrameDecoder({ keepSkipped: true });
    const out: Packet[][] = [];
    dec.write([p], (b) => out.push(b));
    expect(out[0]![0]!.skip).toBe('not-ip');
    expect(dec.stats.packets).toBe(0);
  });

  it('under fail, emits the packets before the fault, then throws', () => {
    const out: number[] = [];
    const dec = new FrameDecoder({ onError: 'fail' });
    const batch = [makePacket(ethIpv4Tcp(), { index: 1 }), makePacket(ethIpv4Tcp(), { index: 2 }), makePacket(new Uint8Array(5), { index: 3 }), makePacket(ethIpv4Tcp(), { index: 4 })];
    expect(codeOf(() => dec.write(batch, (b) => out.push(...b.map((p) => p.index))))).toBe('LINK_MALFORMED@3');
    expect(out).toEqual([1, 2]);
  });

  it('counts VLAN-tagged frames', () => {
    const dec = new FrameDecoder();
    dec.decode(makePacket(ethIpv4Tcp({ vlan: [7] })));
    dec.decode(makePacket(ethIpv4Tcp()));
    expect(dec.stats.vlanTagged).toBe(1);
  });
});
