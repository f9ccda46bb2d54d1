import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RECORD_SIZE } from '../src/core/capture-reader.js';
import { TsUnit } from '../src/core/pcapng-format.js';
import { buildPcap, bytesOf, concat, PcapngBuilder, type PcapPacketSpec } from './helpers/capture-builder.js';
import { needTool, sharedCaptures } from './helpers/env.js';
import { describePacket, readCapture } from './helpers/read-capture.js';

const PKTS: PcapPacketSpec[] = [
  { data: bytesOf(60, 1), tsSec: 1700000000, tsNsec: 123456000 },
  { data: bytesOf(1514, 2), tsSec: 1700000001, tsNsec: 999999000, len: 1514 },
  { data: bytesOf(96, 3), tsSec: 1700000002, tsNsec: 0, len: 1500 },
];

/** offsetOfRecord: byte offset of the i-th (0-based) record of a classic pcap built from `pkts`. */
function offsetOfRecord(pkts: PcapPacketSpec[], i: number): number {
  let off = 24;
  for (let k = 0; k < i; k++) off += 16 + (pkts[k] as PcapPacketSpec).data.length;
  return off;
}

describe('CaptureReader: classic pcap', () => {
  for (const bigEndian of [false, true]) {
    for (const nanos of [false, true]) {
      it(`reads ${bigEndian ? 'big' : 'little'}-endian ${nanos ? 'ns' : 'µs'} files`, () => {
        const pkts: PcapPacketSpec[] = nanos ? [...PKTS, { data: bytesOf(10, 9), tsSec: 4294967295, tsNsec: 999999999 }] : PKTS;
        const bytes = buildPcap(pkts, { linkType: 113, bigEndian, nanos, snaplen: 65535 });
        const r = readCapture(bytes);
        expect(r.error).toBeNull();
        expect(r.reader.format).toBe('pcap');
        expect(r.reader.linkTypes).toEqual([113]);
        expect(r.packets.map((p) => [p.index, p.tsSec, p.tsNsec, p.caplen, p.len, p.linkType, p.iface])).toEqual(
          pkts.map((s, i) => [i + 1, s.tsSec, nanos ? s.tsNsec : Math.floor((s.tsNsec ?? 0) / 1000) * 1000, s.data.length, s.len ?? s.data.length, 113, 0]),
        );
        r.packets.forEach((p, i) => expect(Buffer.from(p.data).equals(Buffer.from((pkts[i] as PcapPacketSpec).data))).toBe(true));
        expect(r.reader.stats).toMatchObject({ packets: pkts.length, bytes: bytes.length, sections: 1, interfaces: 1, truncated: 1 });
      });
    }
  }

  it('takes the link type from the low 16 bits (upper bits carry FCS information)', () => {
    const bytes = buildPcap(PKTS, { linkType: 1, linkTypeField: 0x14000001 });
    const r = readCapture(bytes);
    expect(r.error).toBeNull();
    expect(r.packets.every((p) => p.linkType === 1)).toBe(true);
  });

  it('numbers packets from firstIndex', () => {
    const r = readCapture(buildPcap(PKTS, { linkType: 1 }), {}, { firstIndex: 101 });
    expect(r.packets.map((p) => p.index)).toEqual([101, 102, 103]);
    expect(r.reader.nextIndex).toBe(104);
  });

  it('gives views into the chunk, and copies only a record that spans chunks', () => {
    const bytes = buildPcap(PKTS, { linkType: 1 });
    const whole = readCapture(bytes);
    for (const p of whole.packets) expect(p.data.buffer).toBe(bytes.buffer);
    expect(whole.reader.stats.spanning).toBe(0);
    // cut inside the second record's data
    const cut = offsetOfRecord(PKTS, 1) + 16 + 100;
    const split = readCapture(bytes, { cuts: [cut] });
    const [p1, p2, p3] = split.packets;
    expect(p1?.data.buffer).toBe(bytes.buffer);
    expect(p2?.data.buffer).not.toBe(bytes.buffer);
    expect(p3?.data.buffer).toBe(bytes.buffer);
    expect(split.reader.stats.spanning).toBe(1);
    expect(split.packets.map(describePacket)).toEqual(whole.packets.map(describePacket));
  });

  it('emits one batch per write with the records that write completed, split at maxBatch', () => {
    const bytes = buildPcap(PKTS, { linkType: 1 });
    const cut = offsetOfRecord(PKTS, 2) + 5; // third record completed by the second write
    const r = readCapture(bytes, { cuts: [cut] });
    expect(r.perWrite).toEqual([2, 1]);
    expect(r.batches.map((b) => b.length)).toEqual([2, 1]);

    const many: PcapPacketSpec[] = Array.from({ length: 5000 }, (_, i) => ({ data: bytesOf(20, i) }));
    const big = readCapture(buildPcap(many, { linkType: 1 }));
    expect(big.batches.map((b) => b.length)).toEqual([4096, 904]);
    const small = readCapture(buildPcap(many, { linkType: 1 }), {}, { maxBatch: 1000 });
    expect(small.batches.length).toBe(5);
  });

  it('rejects a file that is not a capture as soon as the magic is seen', () => {
    const bytes = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = readCapture(bytes, { chunk: 4 }, { file: 'x.txt' });
    expect(r.error?.code).toBe('CAPTURE_BAD_MAGIC');
    expect(r.error).toMatchObject({ offset: 0, packet: 1, file: 'x.txt' });
    expect(r.thrownBy).toBe('write');
    expect(r.perWrite).toEqual([]);
  });

  it('reports an empty input and a file header cut short as CAPTURE_EMPTY', () => {
    const empty = readCapture(new Uint8Array(0));
    expect(empty.error?.code).toBe('CAPTURE_EMPTY');
    expect(empty.thrownBy).toBe('end');
    const header = buildPcap([], { linkType: 1 });
    for (const n of [2, 10, 23]) {
      const r = readCapture(header.subarray(0, n));
      expect(r.error?.code).toBe('CAPTURE_EMPTY');
      expect(r.error?.offset).toBe(0);
    }
    const justHeader = readCapture(header);
    expect(justHeader.error).toBeNull();
    expect(justHeader.packets).toEqual([]);
  });

  it('rejects a version other than 2.x', () => {
    const r = readCapture(buildPcap(PKTS, { linkType: 1, versionMajor: 1, versionMinor: 4 }), {}, { file: 'v.pcap' });
    expect(r.error?.code).toBe('PCAP_BAD_VERSION');
    expect(r.error).toMatchObject({ offset: 0, packet: 1, file: 'v.pcap' });
    expect(r.packets).toEqual([]);
  });

  it('rejects a record over 256 KiB after delivering the records before it, without reading ahead', () => {
    const pkts: PcapPacketSpec[] = [...PKTS.slice(0, 2), { data: bytesOf(8), caplen: MAX_RECORD_SIZE + 1 }, { data: bytesOf(40) }];
    const bytes = buildPcap(pkts, { linkType: 1 });
    const at = offsetOfRecord(pkts, 2);
    // the chunk ends right after the bad record header: the error comes from that write
    const r = readCapture(bytes, { cuts: [at + 16] }, { file: 'big.pcap' });
    expect(r.error?.code).toBe('PCAP_RECORD_TOO_LARGE');
    expect(r.error).toMatchObject({ offset: at, packet: 3, file: 'big.pcap' });
    expect(r.thrownBy).toBe('write');
    expect(r.packets.map((p) => p.index)).toEqual([1, 2]);
    // the error is sticky
    expect(() => r.reader.write(new Uint8Array(4), () => undefined)).toThrow(r.error as Error);
  });

  it('reads a record up to 256 KiB, and one over the snaplen unless strictSnaplen is set', () => {
    const pkts: PcapPacketSpec[] = [{ data: bytesOf(MAX_RECORD_SIZE) }, { data: bytesOf(2000) }];
    const bytes = buildPcap(pkts, { linkType: 1, snaplen: 1600 });
    const r = readCapture(bytes, { chunk: 65536 });
    expect(r.error).toBeNull();
    expect(r.packets.map((p) => p.caplen)).toEqual([MAX_RECORD_SIZE, 2000]);
    expect(r.reader.stats.overSnaplen).toBe(2);
    const strict = readCapture(bytes, {}, { strictSnaplen: true });
    expect(strict.error?.code).toBe('PCAP_RECORD_TOO_LARGE');
    expect(strict.error).toMatchObject({ offset: 24, packet: 1 });
  });

  it('reports a record cut off at the end of input from end(), after every whole record', () => {
    const bytes = buildPcap(PKTS, { linkType: 1 });
    const at = offsetOfRecord(PKTS, 2);
    for (const cutAt of [at + 1, at + 15, at + 16, at + 50]) {
      const r = readCapture(bytes.subarray(0, cutAt), { chunk: 7 }, { file: 'cut.pcap' });
      expect(r.error?.code).toBe('PCAP_TRUNCATED_RECORD');
      expect(r.error).toMatchObject({ offset: at, packet: 3, file: 'cut.pcap' });
      expect(r.thrownBy).toBe('end');
      expect(r.packets.length).toBe(2);
    }
  });

  it('normalises a microsecond field of a million or more into the seconds', () => {
    const bytes = buildPcap([{ data: bytesOf(4) }], { linkType: 1 });
    new DataView(bytes.buffer).setUint32(28, 2_500_000, true);
    const r = readCapture(bytes);
    expect([r.packets[0]?.tsSec, r.packets[0]?.tsNsec]).toEqual([2, 500_000_000]);
  });
});

describe('CaptureReader: pcapng', () => {
  it('reads several sections of both byte orders; interface ids restart per section but Packet.iface is unique', () => {
    const b = new PcapngBuilder()
      .section()
      .iface({ linkType: 1, snaplen: 65535 })
      .iface({ linkType: 113 })
      .epb({ iface: 1, data: bytesOf(42, 1), ts: 1700000000_000001n, len: 60 })
      .block(5, bytesOf(32)) // Interface Statistics Block: skipped
      .epb({ iface: 0, data: bytesOf(61, 2), ts: 1700000000_000002n })
      .section({ bigEndian: true })
      .iface({ linkType: 0, tsresol: 9 })
      .block(0x40000bad, bytesOf(13)) // custom block: skipped
      .epb({ iface: 0, data: bytesOf(33, 3), ts: 1700000000_123456789n })
      .section()
      .iface({ linkType: 101 });
    b.epb({ iface: 0, data: bytesOf(20, 4), ts: 5n });
    const bytes = b.build();
    const r = readCapture(bytes);
    expect(r.error).toBeNull();
    expect(r.reader.format).toBe('pcapng');
    expect(r.packets.map((p) => [p.index, p.iface, p.linkType, p.tsSec, p.tsNsec, p.caplen, p.len])).toEqual([
      [1, 1, 113, 1700000000, 1000, 42, 60],
      [2, 0, 1, 1700000000, 2000, 61, 61],
      [3, 2, 0, 1700000000, 123456789, 33, 33],
      [4, 3, 101, 0, 5000, 20, 20],
    ]);
    expect(Buffer.from(r.packets[2]?.data ?? []).equals(Buffer.from(bytesOf(33, 3)))).toBe(true);
    expect(r.reader.linkTypes).toEqual([1, 113, 0, 101]);
    expect(r.reader.stats).toMatchObject({ packets: 4, sections: 3, interfaces: 4, blocksSkipped: 2 });
  });

  it('converts if_tsresol (10^-n and 2^-n) and if_tsoffset exactly', () => {
    const bytes = new PcapngBuilder()
      .section()
      .iface({ linkType: 1, tsresol: 9 })
      .iface({ linkType: 1, tsresol: 3, tsoffset: 1000n })
      .iface({ linkType: 1, tsresol: 0x80 | 10 }) // 2^-10 s
      .iface({ linkType: 1, tsresol: 0x80 | 32 }) // 2^-32 s (BigInt path)
      .iface({ linkType: 1, tsresol: 12, tsoffset: -5n }) // picoseconds
      .iface({ linkType: 1, tsresol: 0 }) // seconds
      .epb({ iface: 0, data: bytesOf(1), ts: 18446744073709551615n }) // 2^64 - 1 ns
      .epb({ iface: 1, data: bytesOf(1), ts: 1700000000_999n })
      .epb({ iface: 2, data: bytesOf(1), ts: (1700000000n << 10n) + 512n + 1n })
      .epb({ iface: 3, data: bytesOf(1), ts: (1700000000n << 32n) + (1n << 31n) })
      .epb({ iface: 4, data: bytesOf(1), ts: 1000000_123456789012n }) // 2^64 ps is only 213 days
      .epb({ iface: 5, data: bytesOf(1), ts: 1700000000n })
      .build();
    const r = readCapture(bytes);
    expect(r.error).toBeNull();
    expect(r.packets.map((p) => [p.tsSec, p.tsNsec])).toEqual([
      [18446744073, 709551615],
      [1700000000 + 1000, 999000000],
      [1700000000, 500976562], // (512 + 1) / 1024 s = 0.5009765625 s, truncated to the ns
      [1700000000, 500000000],
      [1000000 - 5, 123456789],
      [1700000000, 0],
    ]);
  });

  it('TsUnit matches BigInt arithmetic on random 64-bit timestamps (property)', () => {
    const resolutions = [6, 9, 3, 0, 1, 7, 8, 0x80 | 10, 0x80 | 20, 0x80 | 23, 0x80 | 24, 0x80 | 30, 12, 15];
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(...resolutions), (ts, res) => {
        const unit = new TsUnit(res, 0);
        unit.split(Number(ts >> 32n), Number(ts & 0xffffffffn));
        const per = res & 0x80 ? 1n << BigInt(res & 0x7f) : 10n ** BigInt(res);
        const sec = ts / per;
        const nsec = ((ts % per) * 1_000_000_000n) / per;
        if (sec < 2n ** 53n) expect(unit.sec).toBe(Number(sec));
        expect(unit.nsec).toBe(Number(nsec));
      }),
      { seed: 4242, numRuns: 3000 },
    );
  });

  it('reads Simple Packet Blocks (interface 0, no timestamp, caplen = min(len, snaplen, room))', () => {
    const bytes = new PcapngBuilder()
      .section()
      .iface({ linkType: 1, snaplen: 100 })
      .spb(bytesOf(60, 1)) // whole
      .spb(bytesOf(100, 2), 1500) // cut by the snaplen
      .spb(bytesOf(50, 3), 80) // cut by the block (original 80, only 52 bytes of room after padding)
      .build();
    const r = readCapture(bytes);
    expect(r.error).toBeNull();
    expect(r.packets.map((p) => [p.iface, p.tsSec, p.tsNsec, p.caplen, p.len])).toEqual([
      [0, 0, 0, 60, 60],
      [0, 0, 0, 100, 1500],
      [0, 0, 0, 52, 80],
    ]);
    expect(Buffer.from(r.packets[1]?.data ?? []).equals(Buffer.from(bytesOf(100, 2)))).toBe(true);
  });

  it('reads the obsolete Packet Block', () => {
    const bytes = new PcapngBuilder().section().iface({ linkType: 1 }).iface({ linkType: 113 }).pb({ iface: 1, data: bytesOf(30), ts: 1700000000_000042n, len: 90 }).build();
    const r = readCapture(bytes);
    expect(r.error).toBeNull();
    expect(r.packets.map((p) => [p.iface, p.linkType, p.tsSec, p.tsNsec, p.caplen, p.len])).toEqual([[1, 113, 1700000000, 42000, 30, 90]]);
  });

  it('skips a large unknown block as it streams past and still checks its trailing length', () => {
    const big = bytesOf(1 << 20);
    const good = new PcapngBuilder().section().iface({ linkType: 1 }).block(4, big).epb({ iface: 0, data: bytesOf(10) }).build();
    const r = readCapture(good, { chunk: 4096 });
    expect(r.error).toBeNull();
    expect(r.packets.length).toBe(1);
    expect(r.reader.stats.blocksSkipped).toBe(1);
    expect(r.reader.stats.spanning).toBe(0); // nothing was assembled: the skipped bytes were never held
    // a trailing length that differs: the block is skipped by its leading length, since the next block is sound
    const bad = new PcapngBuilder().section().iface({ linkType: 1 }).block(4, big, { trailer: 999 }).epb({ iface: 0, data: bytesOf(10) }).build();
    const e = readCapture(bad, { chunk: 4093 });
    expect(e.error).toBeNull();
    expect(e.packets.length).toBe(1);
    expect(e.reader.stats).toMatchObject({ blocksSkipped: 1, badBlocks: 1, spanning: 0 });
    // ... but not when the block after it is not sound either
    const b = new PcapngBuilder().section().iface({ linkType: 1 });
    const at = b.length;
    const worse = b.block(4, big, { trailer: 999 }).epb({ iface: 0, data: bytesOf(10), trailer: 7 }).epb({ iface: 0, data: bytesOf(10) }).build();
    const w = readCapture(worse, { chunk: 4093 });
    expect(w.error?.code).toBe('PCAPNG_BAD_BLOCK');
    expect(w.error?.offset).toBe(at);
    expect(w.packets.length).toBe(0);
  });

  describe('errors carry offset, packet and file, after the packets before the fault', () => {
    const lead = (): PcapngBuilder => new PcapngBuilder().section().iface({ linkType: 1 }).epb({ iface: 0, data: bytesOf(50) }).epb({ iface: 0, data: bytesOf(51) });
    const cases: { name: string; code: string; build: (b: PcapngBuilder) => void }[] = [
      { name: 'block length not a multiple of 4', code: 'PCAPNG_BAD_BLOCK', build: (b) => void b.block(6, bytesOf(40), { total: 50 }) },
      { name: 'block length under 12', code: 'PCAPNG_BAD_BLOCK', build: (b) => void b.block(6, bytesOf(40), { total: 8 }) },
      { name: 'huge block length', code: 'PCAPNG_BAD_BLOCK', build: (b) => void b.block(0x99, bytesOf(40), { total: 0x7ffffff0 }) },
      {
        name: 'trailing length differs, and the next block is corrupt too',
        code: 'PCAPNG_BAD_BLOCK',
        build: (b) => void b.epb({ iface: 0, data: bytesOf(40), trailer: 1234 }).block(6, bytesOf(40), { total: 50 }),
      },
      { name: 'section version 2', code: 'PCAPNG_BAD_SECTION', build: (b) => void b.section({ versionMajor: 2 }) },
      {
        name: 'section option running past the block',
        code: 'PCAPNG_BAD_SECTION',
        build: (b) => {
          const shb = new PcapngBuilder().section({ options: [{ code: 2, value: bytesOf(8) }] }).build();
          new DataView(shb.buffer).setUint16(26, 200, true); // option length 200 in a 44-byte block
          b.raw(shb);
        },
      },
      {
        name: 'section byte-order magic garbled',
        code: 'PCAPNG_BAD_SECTION',
        build: (b) => {
          const shb = new PcapngBuilder().section().build();
          shb[8] = 0;
          b.raw(shb);
        },
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const b = lead();
        const at = b.length;
        c.build(b);
        const bytes = concat(b.build(), new PcapngBuilder().section().iface({ linkType: 1 }).epb({ iface: 0, data: bytesOf(9) }).build());
        for (const chunk of [bytes.length, 5]) {
          const r = readCapture(bytes, { chunk }, { file: 'bad.pcapng' });
          expect(r.error?.code).toBe(c.code);
          expect(r.error).toMatchObject({ offset: at, packet: 3, file: 'bad.pcapng' });
          expect(r.packets.map((p) => p.caplen)).toEqual([50, 51]);
        }
      });
    }

    it('a simple packet block before any interface is skipped as corrupt', () => {
      const r = readCapture(new PcapngBuilder().section().spb(bytesOf(10)).iface({ linkType: 1 }).spb(bytesOf(11)).build());
      expect(r.error).toBeNull();
      expect(r.packets.map((p) => p.caplen)).toEqual([11]);
      expect(r.reader.stats.badBlocks).toBe(1);
    });

    it('input ending inside a packet block or a skipped block', () => {
      const b = lead();
      const at = b.length;
      const full = b.epb({ iface: 0, data: bytesOf(100) }).build();
      for (const cutAt of [at + 3, at + 20, full.length - 1]) {
        const r = readCapture(full.subarray(0, cutAt), { chunk: 11 });
        expect(r.error?.code).toBe('PCAPNG_TRUNCATED_BLOCK');
        expect(r.error).toMatchObject({ offset: at, packet: 3 });
        expect(r.thrownBy).toBe('end');
        expect(r.packets.length).toBe(2);
      }
      const s = lead().block(0x1234, bytesOf(500)).build();
      for (const cutAt of [at + 9, at + 300, s.length - 2]) {
        const r = readCapture(s.subarray(0, cutAt), { chunk: 64 });
        expect(r.error?.code).toBe('PCAPNG_TRUNCATED_BLOCK');
        expect(r.error).toMatchObject({ offset: at, packet: 3 });
      }
    });

    it('input ending inside the first section header', () => {
      const shb = new PcapngBuilder().section().build();
      const r = readCapture(shb.subarray(0, 20));
      expect(r.error?.code).toBe('CAPTURE_EMPTY');
    });
  });
});

describe('CaptureReader: corrupt pcapng blocks whose framing is sound are skipped and counted', () => {
  const lead = (): PcapngBuilder => new PcapngBuilder().section().iface({ linkType: 1 }).epb({ iface: 0, data: bytesOf(50) });
  const badIdb = (b: PcapngBuilder): void => {
    const shbLen = new PcapngBuilder().section().build().length;
    const idb = new PcapngBuilder().section().iface({ linkType: 113, tsresol: 9 }).build().subarray(shbLen);
    new DataView(idb.buffer, idb.byteOffset).setUint16(16 + 2, 64, true); // the first option (at +16) claims 64 bytes
    b.raw(idb);
  };
  const cases: { name: string; build: (b: PcapngBuilder) => void; after?: (b: PcapngBuilder) => void; bad?: number }[] = [
    { name: 'trailing length differs (the next block is sound)', build: (b) => void b.epb({ iface: 0, data: bytesOf(40), trailer: 1234 }) },
    { name: 'packet data past the block', build: (b) => void b.epb({ iface: 0, data: bytesOf(40), caplen: 100 }) },
    { name: 'caplen over 256 KiB', build: (b) => void b.epb({ iface: 0, data: bytesOf(40), caplen: MAX_RECORD_SIZE + 4 }) },
    { name: 'a packet block shorter than its header', build: (b) => void b.block(6, bytesOf(8)) },
    { name: 'unknown interface', build: (b) => void b.epb({ iface: 1, data: bytesOf(40) }) },
    { name: 'a packet block too large to hold, skipped as it streams past', build: (b) => void b.block(6, bytesOf(400_000)) },
    {
      // the corrupt IDB keeps id 1, so that the interface after it is still id 2
      name: 'interface option running past the block: its packets are skipped too',
      build: (b) => {
        badIdb(b);
        b.iface({ linkType: 101 }).epb({ iface: 1, data: bytesOf(40) });
      },
      after: (b) => void b.epb({ iface: 2, data: bytesOf(52) }),
      bad: 2,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const b = lead();
      c.build(b);
      b.epb({ iface: 0, data: bytesOf(51) });
      c.after?.(b);
      const bytes = b.build();
      for (const chunk of [bytes.length, 5, 4093]) {
        const r = readCapture(bytes, { chunk });
        expect(r.error).toBeNull();
        expect(r.packets.map((p) => [p.index, p.caplen])).toEqual(c.after ? [[1, 50], [2, 51], [3, 52]] : [[1, 50], [2, 51]]);
        expect(r.reader.stats.badBlocks).toBe(c.bad ?? 1);
      }
    });
  }

  it('strictSnaplen still stops at a packet over the snaplen', () => {
    const b = new PcapngBuilder().section().iface({ linkType: 1, snaplen: 40 });
    const at = b.length;
    const r = readCapture(b.epb({ iface: 0, data: bytesOf(41) }).build(), {}, { strictSnaplen: true });
    expect(r.error).toMatchObject({ code: 'PCAP_RECORD_TOO_LARGE', offset: at });
  });
});

describe('CaptureReader: re-chunking', () => {
  const arbPacket = fc.record({
    data: fc.uint8Array({ minLength: 0, maxLength: 300 }),
    tsSec: fc.nat({ max: 0xffffffff }),
    tsNsec: fc.nat({ max: 999999999 }),
  });

  /** A random valid capture: classic pcap in any flavour, or pcapng with random sections and blocks. */
  const arbCapture = fc.oneof(
    fc.record({ pkts: fc.array(arbPacket, { maxLength: 30 }), nanos: fc.boolean(), bigEndian: fc.boolean() }).map(({ pkts, nanos, bigEndian }) => buildPcap(pkts, { linkType: 1, nanos, bigEndian })),
    fc
      .array(
        fc.record({
          bigEndian: fc.boolean(),
          tsresol: fc.constantFrom(6, 9, 0x80 | 20, 12),
          items: fc.array(fc.oneof(arbPacket.map((p) => ({ kind: 'epb' as const, p })), fc.uint8Array({ maxLength: 40 }).map((b) => ({ kind: 'other' as const, b })), arbPacket.map((p) => ({ kind: 'spb' as const, p }))), { maxLength: 12 }),
        }),
        { minLength: 1, maxLength: 4 },
      )
      .map((sections) => {
        const b = new PcapngBuilder();
        for (const s of sections) {
          b.section({ bigEndian: s.bigEndian }).iface({ linkType: 1, tsresol: s.tsresol }).iface({ linkType: 113 });
          for (const it of s.items) {
            if (it.kind === 'epb') b.epb({ iface: it.p.tsSec & 1, data: it.p.data, ts: BigInt(it.p.tsSec) * 1000n + BigInt(it.p.tsNsec) });
            else if (it.kind === 'spb') b.spb(it.p.data);
            else b.block(0x0bad, it.b);
          }
        }
        return b.build();
      }),
  );

  it('splitting a valid capture anywhere gives the same packets (property)', () => {
    fc.assert(
      fc.property(arbCapture, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (bytes, rawCuts, oneByte) => {
        const whole = readCapture(bytes);
        expect(whole.error).toBeNull();
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const split = oneByte ? readCapture(bytes, { chunk: 1 }) : readCapture(bytes, { cuts });
        expect(split.error).toBeNull();
        expect(split.packets.map(describePacket)).toEqual(whole.packets.map(describePacket));
        expect(split.reader.stats.packets).toBe(whole.reader.stats.packets);
      }),
      { seed: 20240611, numRuns: 300 },
    );
  });

  it('every shared capture reads the same in 1-byte (files under 30 kB), 1000-byte and 64 KiB chunks', () => {
    const files = sharedCaptures().filter((f) => readFileSync(f).length < 200_000);
    expect(files.length).toBeGreaterThan(40);
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(f));
      const whole = readCapture(bytes);
      const expected = whole.packets.map(describePacket);
      for (const chunk of bytes.length < 30_000 ? [1, 1000, 65536] : [1000, 65536]) {
        const r = readCapture(bytes, { chunk });
        expect(r.packets.map(describePacket), `${path.basename(f)} in ${chunk}-byte chunks`).toEqual(expected);
        expect(r.error?.code).toBe(whole.error?.code);
        expect(r.error?.offset).toBe(whole.error?.offset);
      }
    }
  });
});

describe('CaptureReader: pcapng against tshark', () => {
  const files = sharedCaptures().filter((f) => f.endsWith('.pcapng') && !f.includes('shb-option-too-long'));
  it.runIf(files.length > 0 && needTool('tshark'))('timestamps, lengths and per-section interface ids agree', () => {
    for (const f of files) {
      const out = execFileSync('tshark', ['-r', f, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'frame.cap_len', '-e', 'frame.interface_id'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      // tshark 4.0 also lists some non-packet blocks as frames; they have no interface id
      const rows = out
        .split('\n')
        .map((l) => l.split('\t'))
        .filter((c) => c.length === 4 && c[3] !== '');
      const r = readCapture(new Uint8Array(readFileSync(f)));
      expect(r.error).toBeNull();
      expect(r.packets.length, path.basename(f)).toBe(rows.length);
      // Packet.iface is unique across sections, tshark's restarts per section: the mapping must be a function
      const local = new Map<number, number>();
      r.packets.forEach((p, i) => {
        const [time, len, caplen, ifaceId] = rows[i] as string[];
        const seen = local.get(p.iface) ?? Number(ifaceId);
        local.set(p.iface, seen);
        expect(seen).toBe(Number(ifaceId));
        expect(p.iface).toBeGreaterThanOrEqual(seen);
        const mine = p.tsSec === 0 && p.tsNsec === 0 && time === '' ? '' : `${p.tsSec}.${String(p.tsNsec).padStart(9, '0')}`;
        expect(`${mine} ${p.len} ${p.caplen}`, `${path.basename(f)} packet ${p.index}`).toBe(`${time} ${len} ${caplen}`);
      });
    }
  });
});
