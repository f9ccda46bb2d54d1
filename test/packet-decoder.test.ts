import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { formatIp } from '../src/core/addr.js';
import { isPcapflowError } from '../src/core/errors.js';
import { FrameDecoder } from '../src/core/frame-decoder.js';
import { IpDecoder } from '../src/core/ip-decoder.js';
import { PacketDecoder } from '../src/core/packet-decoder.js';
import type { Packet } from '../src/core/packet.js';
import { TcpDecoder } from '../src/core/tcp-decoder.js';
import { FrameDecodeTransform, IpDecodeTransform, PacketDecodeTransform, TcpDecodeTransform } from '../src/transforms/decode-transforms.js';
import { ethIpv4Tcp, ethIpv6Tcp, ethernet, ipv4, ipv4Fragments, makePacket, tcp } from './helpers/packet-builder.js';

/** A mixed bag: TCP over v4/v6/VLAN, ARP, UDP, an unsupported link, fragments, a truncated and a malformed segment. */
function mixed(): Packet[] {
  const frags = ipv4Fragments({ id: 5 }, tcp({ sport: 7, payload: new Uint8Array(100) }), 64).map((p) => ethernet({ type: 0x0800, payload: p }));
  const frames: Array<[Uint8Array, { linkType?: number; snaplen?: number }]> = [
    [ethIpv4Tcp({ sport: 1, payload: 'a' }), {}],
    [ethIpv6Tcp({ sport: 2, payload: 'bb' }), {}],
    [ethIpv4Tcp({ sport: 3, vlan: [10, 20] }), {}],
    [ethernet({ type: 0x0806, payload: new Uint8Array(28) }), {}],
    [ethernet({ type: 0x0800, payload: ipv4({ proto: 17, payload: new Uint8Array(8) }) }), {}],
    [ipv4({ payload: tcp({}) }), { linkType: 147 }],
    [frags[0]!, {}],
    [frags[1]!, {}],
    [ethIpv4Tcp({ sport: 4, payload: new Uint8Array(500) }), { snaplen: 100 }],
    [ethIpv4Tcp({ sport: 5, dataOffset: 2 }), {}],
    [ethIpv4Tcp({ sport: 6 }), { snaplen: 40 }],
  ];
  return frames.map(([f, s], i) => makePacket(f, { ...s, index: i + 1 }));
}

function summary(p: Packet): string {
  return `${p.index} ${p.skip ?? 'tcp'} ${formatIp(p.src)} ${formatIp(p.dst)} ${p.sport} ${p.dport} ${p.seq} ${p.payloadLen} ${p.payload.length} ${p.fragments} [${p.vlan.join(',')}]`;
}

describe('PacketDecoder', () => {
  it('decodes frame, IP and TCP in one pass with merged stats', () => {
    const dec = new PacketDecoder();
    const out: Packet[] = [];
    dec.write(mixed(), (b) => out.push(...b));
    expect(out.map((p) => p.index)).toEqual([1, 2, 3, 8, 9]);
    expect(out.map((p) => p.sport)).toEqual([1, 2, 3, 7, 4]);
    expect(out[2]!.vlan).toEqual([10, 20]);
    expect(out[3]!.fragments).toBe(2);
    expect(dec.stats).toMatchObject({
      packets: 11,
      tcp: 5,
      truncated: 1,
      skipped: 6,
      'skipped.not-ip': 1,
      'skipped.not-tcp': 1,
      'skipped.link-unsupported': 1,
      'skipped.fragment': 1,
      'skipped.tcp-malformed': 1,
      'skipped.tcp-truncated': 1,
      'linkType.1': 10,
      'linkType.147': 1,
      'unsupportedLinkType.147': 1,
      'notTcpProto.17': 1,
      fragments: 2,
      datagramsReassembled: 1,
      bytesHeld: 0,
    });
    expect(dec.stats.bytes).toBe(mixed().reduce((n, p) => n + p.caplen, 0));
  });

  it('gives the same packets as the three stages chained', () => {
    const one: string[] = [];
    new PacketDecoder({ keepSkipped: true }).write(mixed(), (b) => one.push(...b.map(summary)));
    const chained: string[] = [];
    const t = new TcpDecoder({ keepSkipped: true });
    const i = new IpDecoder({ keepSkipped: true });
    new FrameDecoder({ keepSkipped: true }).write(mixed(), (b) => i.write(b, (b2) => t.write(b2, (b3) => chained.push(...b3.map(summary)))));
    expect(one).toEqual(chained);
    expect(one).toHaveLength(11);
  });

  it('under fail, emits the packets before the fault and throws with its index', () => {
    const dec = new PacketDecoder({ onError: 'fail' });
    const out: number[] = [];
    let code = '';
    try {
      dec.write(mixed(), (b) => out.push(...b.map((p) => p.index)));
    } catch (e) {
      if (isPcapflowError(e)) code = `${e.code}@${e.packet}`;
    }
    expect(code).toBe('LINK_UNSUPPORTED@6');
    expect(out).toEqual([1, 2, 3]);
  });

  it('end() gives up on incomplete datagrams', () => {
    const dec = new PacketDecoder();
    dec.write(mixed().slice(6, 7), () => {});
    expect(dec.stats.bytesHeld).toBe(64);
    dec.end();
    expect(dec.stats).toMatchObject({ bytesHeld: 0, incompleteExpired: 1 });
  });
});

async function through(transforms: Transform[], batches: Packet[][]): Promise<Packet[]> {
  const out: Packet[] = [];
  const sink = new Writable({
    objectMode: true,
    highWaterMark: 1,
    write(b: Packet[], _enc, cb) {
      out.push(...b);
      cb();
    },
  });
  const streams: Array<Readable | Transform | Writable> = [Readable.from(batches), ...transforms, sink];
  await pipeline(streams);
  return out;
}

describe('decode transforms', () => {
  it('PacketDecodeTransform equals the three transforms chained', async () => {
    const pkts = mixed();
    const one = await through([new PacketDecodeTransform()], [pkts.slice(0, 4), pkts.slice(4)]);
    const pkts2 = mixed();
    const three = await through([new FrameDecodeTransform(), new IpDecodeTransform(), new TcpDecodeTransform()], [pkts2.slice(0, 4), pkts2.slice(4)]);
    expect(one.map(summary)).toEqual(three.map(summary));
    expect(one.map((p) => p.index)).toEqual([1, 2, 3, 8, 9]);
  });

  it('a PcapflowError reaches the pipeline, after the earlier batches', async () => {
    const pkts = mixed();
    const t = new PacketDecodeTransform({ onError: 'fail' });
    const seen: number[] = [];
    const sink = new Writable({
      objectMode: true,
      write(b: Packet[], _enc, cb) {
        seen.push(...b.map((p) => p.index));
        cb();
      },
    });
    const err = await pipeline(Readable.from([pkts.slice(0, 3), pkts.slice(3)]), t, sink).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPcapflowError(err) ? err.code : err).toBe('LINK_UNSUPPORTED');
    expect(seen).toEqual([1, 2, 3]);
    expect(t.core.stats.packets).toBe(6);
  });
});
