import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaptureReader } from '../src/core/capture-reader.js';
import { ADD_COMPLETE, ADD_DROPPED, ADD_HELD, ADD_INVALID, Defragmenter } from '../src/core/defrag.js';
import { isPcapflowError } from '../src/core/errors.js';
import { PacketDecoder, type PacketDecoderOptions } from '../src/core/packet-decoder.js';
import type { Packet } from '../src/core/packet.js';
import { FIXTURES } from './helpers/env.js';
import { concat, ethernet, ext6, hex, ipv4, ipv4Fragments, ipv6, ipv6Fragments, makePacket, tcp } from './helpers/packet-builder.js';

const SRC = hex('0a000001');
const DST = hex('0a000002');

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

/** run decodes frames (Ethernet) through a PacketDecoder with keepSkipped, 1 s apart unless given. */
function run(frames: Uint8Array[], options: PacketDecoderOptions = {}, times?: number[]): { pkts: Packet[]; dec: PacketDecoder } {
  const dec = new PacketDecoder({ keepSkipped: true, ...options });
  const pkts = frames.map((f, i) => makePacket(f, { index: i + 1, tsSec: 1000 + (times?.[i] ?? i) }));
  dec.write(pkts.slice(), () => {});
  return { pkts, dec };
}

const eth4 = (p: Uint8Array): Uint8Array => ethernet({ type: 0x0800, payload: p });
const eth6 = (p: Uint8Array): Uint8Array => ethernet({ type: 0x86dd, payload: p });

const SEG = tcp({ sport: 1111, dport: 80, seq: 77, flags: 0x18, payload: bytes(300) }); // 320 bytes
const FRAGS = ipv4Fragments({ id: 0x4242, proto: 6 }, SEG, 80).map(eth4); // 4 fragments

describe('IPv4 fragments through the decoder', () => {
  it('in order: fragments are skipped, the last one carries the reassembled segment', () => {
    const { pkts, dec } = run(FRAGS);
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', null]);
    const last = pkts[3]!;
    expect([last.fragments, last.l4Len, last.sport, last.seq, last.payloadLen]).toEqual([4, 320, 1111, 77, 300]);
    expect(Array.from(last.payload)).toEqual(Array.from(bytes(300)));
    expect(dec.stats).toMatchObject({ fragments: 4, datagramsReassembled: 1, bytesHeld: 0, overlaps: 0, 'skipped.fragment': 3, tcp: 1 });
  });

  it('out of order: the frame that completes the datagram carries it', () => {
    const order = [2, 0, 3, 1];
    const { pkts } = run(order.map((i) => FRAGS[i]!));
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', null]);
    expect(Array.from(pkts[3]!.payload)).toEqual(Array.from(bytes(300)));
  });

  it('duplicated fragments: held once, not counted as overlaps', () => {
    const { pkts, dec } = run([FRAGS[0]!, FRAGS[0]!, FRAGS[1]!, FRAGS[2]!, FRAGS[1]!, FRAGS[3]!]);
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', 'fragment', 'fragment', null]);
    expect([pkts[5]!.fragments, pkts[5]!.payloadLen]).toEqual([6, 300]);
    expect(Array.from(pkts[5]!.payload)).toEqual(Array.from(bytes(300)));
    expect(dec.stats.overlaps).toBe(0);
  });

  it('overlapping fragments with different bytes: the first copy wins and the overlap is counted', () => {
    const evil = SEG.slice(40, 160);
    evil.fill(0x45, 0, 40); // bytes 40..80 differ from the first copy
    const f0 = eth4(ipv4({ id: 9, mf: true, payload: SEG.subarray(0, 80) }));
    const f1 = eth4(ipv4({ id: 9, mf: true, fragOffset: 40, payload: evil }));
    const f2 = eth4(ipv4({ id: 9, fragOffset: 160, payload: SEG.subarray(160) }));
    const { pkts, dec } = run([f0, f1, f2]);
    expect(pkts[2]!.skip).toBeNull();
    expect(Array.from(pkts[2]!.l4)).toEqual(Array.from(SEG));
    expect(dec.stats.overlaps).toBe(1);
  });

  it('real capture, out of order (zeek fragmented-4: offsets 0, 48, 72, 24)', () => {
    const reader = new CaptureReader();
    const pkts: Packet[] = [];
    const dec = new PacketDecoder({ keepSkipped: true });
    const take = (b: Packet[]): void => dec.write(b, (out) => pkts.push(...out));
    reader.write(readFileSync(path.join(FIXTURES, 'zeek__ipv4-frags-out-of-order.pcap')), take);
    reader.end(take);
    expect(pkts.map((p) => p.skip)).toEqual([null, 'fragment', 'fragment', 'fragment', null, null]);
    const p = pkts[4]!;
    expect([p.index, p.fragments, p.sport, p.dport, p.payloadLen]).toEqual([5, 4, 7790, 80, 69]);
    // The fragment at 24 (48 bytes) overlaps the one at 48 that came first, with other bytes. The
    // first copy wins here (tshark instead keeps the lower-offset fragment: "...IiALQTI\0d.exe").
    expect(new TextDecoder().decode(p.payload)).toBe('GET /msadc/..%2f../..%2f../..%2f../winnt/system32/cmd.exe?/c+dir+c:\\\n');
    expect(dec.stats.overlaps).toBe(1);
  });

  it('a fragment the snaplen cut is ip-truncated and not held', () => {
    const dec = new PacketDecoder({ keepSkipped: true });
    const p = makePacket(FRAGS[0]!, { snaplen: 60 });
    dec.write([p], () => {});
    expect(p.skip).toBe('ip-truncated');
    expect(dec.stats.bytesHeld).toBe(0);
  });

  it('keys on (src, dst, id, proto): interleaved datagrams do not mix', () => {
    const other = ipv4Fragments({ id: 0x4242, proto: 6, src: '10.9.9.9' }, tcp({ payload: bytes(100, 5) }), 64).map(eth4);
    const { pkts } = run([FRAGS[0]!, other[0]!, FRAGS[1]!, FRAGS[2]!, other[1]!, FRAGS[3]!]);
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', 'fragment', null, null]);
    expect(Array.from(pkts[4]!.payload)).toEqual(Array.from(bytes(100, 5)));
    expect(Array.from(pkts[5]!.payload)).toEqual(Array.from(bytes(300)));
  });
});

describe('IPv6 fragments', () => {
  it('real capture (LINKTYPE_IPV6): three fragments make one 444-byte segment', () => {
    const reader = new CaptureReader();
    const pkts: Packet[] = [];
    const dec = new PacketDecoder({ keepSkipped: true });
    const take = (b: Packet[]): void => dec.write(b, (out) => pkts.push(...out));
    reader.write(readFileSync(path.join(FIXTURES, 'suricata-verify__ipv6-frag-tcp-linktype229.pcap')), take);
    reader.end(take);
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', null]);
    const p = pkts[2]!;
    expect([p.fragments, p.sport, p.dport, p.payloadLen, p.l4Len]).toEqual([3, 12345, 8080, 1000, 1020]);
  });

  it('extension headers after the fragment header are walked once reassembled', () => {
    const payload = concat(ext6(6, new Uint8Array(6)), SEG); // destination options in the fragmentable part
    const frames = ipv6Fragments({}, 60, 0xdeadbeef, payload, 96).map(eth6);
    const { pkts } = run(frames.reverse());
    expect(pkts.at(-1)!.skip).toBeNull();
    expect([pkts.at(-1)!.fragments, pkts.at(-1)!.payloadLen, pkts.at(-1)!.seq]).toEqual([frames.length, 300, 77]);
  });

  it('a fragment header cut by the snaplen is ip-truncated; a non-final fragment not a multiple of 8 is fragment-invalid', () => {
    const frames = ipv6Fragments({}, 6, 1, SEG, 96).map(eth6);
    expect(run([frames[0]!.subarray(0, 14 + 44)]).pkts[0]!.skip).toBe('ipv6-malformed'); // not cut: payload length lies
    const cut = new PacketDecoder({ keepSkipped: true });
    const p = makePacket(frames[0]!, { snaplen: 14 + 44 });
    cut.write([p], () => {});
    expect(p.skip).toBe('ip-truncated');
    const odd = eth6(ipv6({ nextHeader: 44, payload: concat(hex('06000001 00000001'), new Uint8Array(13)) }));
    expect(run([odd]).pkts[0]!.skip).toBe('fragment-invalid');
  });
});

describe('limits', () => {
  it('an incomplete datagram expires after the timeout, measured in capture time', () => {
    const other = ipv4Fragments({ id: 7 }, tcp({ payload: bytes(100) }), 64).map(eth4);
    const { pkts, dec } = run([FRAGS[0]!, FRAGS[1]!, other[0]!, FRAGS[2]!, FRAGS[3]!], {}, [0, 10, 29, 31, 32]);
    // At t=31 the datagram that began at t=0 is older than 30 s: dropped; its later fragments start a new one.
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', 'fragment', 'fragment']);
    expect(dec.stats).toMatchObject({ incompleteExpired: 1, datagramsReassembled: 0 });
    dec.end();
    expect(dec.stats).toMatchObject({ incompleteExpired: 3, bytesHeld: 0 });
  });

  it('a shorter timeout option applies', () => {
    const { pkts, dec } = run(FRAGS, { fragmentTimeout: 2 }, [0, 1, 2, 3]);
    expect(pkts.at(-1)!.skip).toBe('fragment');
    expect(dec.stats.incompleteExpired).toBe(1);
  });

  it('an expired datagram is dropped even when no fragment follows', () => {
    const { dec } = run([FRAGS[0]!, eth4(ipv4({ payload: tcp({}) }))], {}, [0, 100]);
    expect(dec.stats).toMatchObject({ incompleteExpired: 1, bytesHeld: 0 });
  });

  it('the byte cap evicts the oldest datagram first, then refuses what cannot fit', () => {
    const a = ipv4Fragments({ id: 1 }, tcp({ payload: bytes(140) }), 80).map(eth4); // 80 + 80
    const b = ipv4Fragments({ id: 2 }, tcp({ payload: bytes(140) }), 80).map(eth4);
    const { pkts, dec } = run([a[0]!, b[0]!, a[1]!, b[1]!], { fragmentMaxBytes: 100, onError: 'fail' });
    // b[0] evicts a; a[1] then starts a new datagram, evicting b; b[1] evicts a again.
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment', 'fragment']);
    expect(dec.stats).toMatchObject({ droppedByCap: 3, bytesHeld: 80, datagramsReassembled: 0 });
    const big = run([FRAGS[0]!], { fragmentMaxBytes: 50, onError: 'fail' });
    expect(big.pkts[0]!.skip).toBe('fragment-invalid');
    expect(big.dec.stats).toMatchObject({ droppedByCap: 1, bytesHeld: 0 });
  });

  it('the cap counts held bytes, so a completed datagram frees them', () => {
    const { pkts, dec } = run([...FRAGS, ...FRAGS], { fragmentMaxBytes: 320 });
    expect([pkts[3]!.skip, pkts[7]!.skip]).toEqual([null, null]);
    expect(dec.stats).toMatchObject({ droppedByCap: 0, datagramsReassembled: 2, bytesHeld: 0 });
  });
});

describe('invalid fragments (teardrop and friends)', () => {
  const cases: Array<[string, Uint8Array[]]> = [
    ['a non-final fragment whose length is not a multiple of 8', [eth4(ipv4({ id: 3, mf: true, payload: bytes(20) }))]],
    ['a non-final fragment with no data', [eth4(ipv4({ id: 3, mf: true, fragOffset: 8, payload: new Uint8Array(0) }))]],
    ['a datagram past 65535 bytes', [eth4(ipv4({ id: 3, fragOffset: 65512, payload: bytes(24) }))]],
    ['a second final fragment with another end', [FRAGS[3]!, eth4(ipv4({ id: 0x4242, fragOffset: 160, payload: bytes(24) }))]],
    ['a final fragment before data already held', [FRAGS[2]!, eth4(ipv4({ id: 0x4242, fragOffset: 80, payload: bytes(16) }))]],
    ['data beyond the final fragment', [FRAGS[1]!, eth4(ipv4({ id: 0x4242, fragOffset: 160, payload: bytes(16) })), eth4(ipv4({ id: 0x4242, mf: true, fragOffset: 176, payload: bytes(16) }))]],
  ];

  it.each(cases)('%s is fragment-invalid; IP_FRAGMENT_INVALID under fail', (_name, frames) => {
    const { pkts, dec } = run(frames);
    expect(pkts.at(-1)!.skip).toBe('fragment-invalid');
    expect(dec.stats.fragmentsInvalid).toBe(1);
    let code: string | undefined;
    try {
      run(frames, { onError: 'fail' });
    } catch (e) {
      if (isPcapflowError(e)) code = `${e.code}@${e.packet}`;
    }
    expect(code).toBe(`IP_FRAGMENT_INVALID@${frames.length}`);
  });

  it('an invalid fragment does not harm the datagram being held', () => {
    const bad = eth4(ipv4({ id: 0x4242, fragOffset: 80, payload: bytes(16) })); // a final fragment ending at 96 while 160.. is held
    const { pkts } = run([FRAGS[0]!, FRAGS[2]!, bad, FRAGS[1]!, FRAGS[3]!]);
    expect(pkts.map((p) => p.skip)).toEqual(['fragment', 'fragment', 'fragment-invalid', 'fragment', null]);
    expect(Array.from(pkts[4]!.payload)).toEqual(Array.from(bytes(300)));
  });
});

describe('Defragmenter', () => {
  it('copies what it holds: later writes into the source do not change the datagram', () => {
    const d = new Defragmenter();
    const first = bytes(16);
    expect(d.add(4, SRC, DST, 1, 6, 6, 0, true, first, 0, 0)).toBe(ADD_HELD);
    first.fill(0);
    expect(d.add(4, SRC, DST, 1, 6, 6, 16, false, bytes(8, 2), 0, 0)).toBe(ADD_COMPLETE);
    expect(Array.from(d.datagram.subarray(0, 16))).toEqual(Array.from(bytes(16)));
    expect([d.datagramFragments, d.datagramProto, d.pending]).toEqual([2, 6, 0]);
  });

  it('returns ADD_INVALID and ADD_DROPPED as documented', () => {
    const d = new Defragmenter({ maxBytes: 8 });
    expect(d.add(4, SRC, DST, 1, 6, 6, 0, true, bytes(12), 0, 0)).toBe(ADD_INVALID);
    expect(d.add(4, SRC, DST, 1, 6, 6, 0, true, bytes(16), 0, 0)).toBe(ADD_DROPPED);
    expect(d.stats).toMatchObject({ fragments: 2, fragmentsInvalid: 1, droppedByCap: 1, bytesHeld: 0 });
  });

  it('property: any order, with duplicates, rebuilds the datagram exactly once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 40 }), fc.array(fc.nat(), { minLength: 1, maxLength: 80 }), (size, unit, picks) => {
        const data = bytes(size, size);
        const step = unit * 8;
        const frags: Array<[number, Uint8Array]> = [];
        for (let o = 0; o < size; o += step) frags.push([o, data.subarray(o, Math.min(o + step, size))]);
        // every fragment once, in an order given by picks, plus some duplicates
        const order = frags.map((_, i) => i).sort((x, y) => ((picks[x % picks.length]! * 7919 + x) % 101) - ((picks[y % picks.length]! * 7919 + y) % 101));
        const d = new Defragmenter();
        let completions = 0;
        for (const [k, i] of order.entries()) {
          const dup = picks[k % picks.length]! % 3 === 0 && k > 0 ? order[k - 1]! : -1;
          for (const j of dup >= 0 && dup !== i ? [dup, i] : [i]) {
            const [o, b] = frags[j]!;
            const r = d.add(4, SRC, DST, 5, 6, 6, o, o + b.length < size, b, 0, 0);
            if (r === ADD_COMPLETE) {
              completions++;
              expect(Array.from(d.datagram)).toEqual(Array.from(data));
            }
          }
        }
        expect(completions).toBe(1);
      }),
      { seed: 20240611, numRuns: 150 },
    );
  });
});

describe('Defragmenter: a datagram of thousands of tiny fragments (regression, issue 5 fuzzing)', () => {
  // Each fragment used to re-sort the datagram's pieces: 8 189 fragments of 8 bytes took 3 to 6
  // seconds (quadratic). Sorted insertion makes it a binary search and a splice per fragment.
  it('reassembles 8 190 fragments in any order, in linear-ish time', () => {
    const n = 8189;
    const data = bytes(n * 8 + 3); // 65 515 bytes: the largest IPv4 datagram payload
    for (const order of ['forward', 'reverse', 'scattered']) {
      const idx = Array.from({ length: n }, (_, i) => i);
      if (order === 'reverse') idx.reverse();
      if (order === 'scattered') idx.sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n));
      const d = new Defragmenter();
      const t0 = performance.now();
      for (const i of idx) expect(d.add(4, SRC, DST, 9, 6, 6, i * 8, true, data.subarray(i * 8, i * 8 + 8), 0, 0)).toBe(ADD_HELD);
      expect(d.add(4, SRC, DST, 9, 6, 6, n * 8, false, data.subarray(n * 8), 0, 0)).toBe(ADD_COMPLETE);
      expect(performance.now() - t0, order).toBeLessThan(2000);
      expect(Buffer.from(d.datagram).equals(Buffer.from(data))).toBe(true);
      expect(d.datagramFragments).toBe(n + 1);
    }
  });
});
