/**
 * Compressed inputs: gzip (told by its magic, whatever the name, stdin too) is decompressed as it
 * streams and gives the packets of the plain capture; a gzip input cut short or corrupt gives
 * every packet before the fault, then CAPTURE_TRUNCATED_COMPRESSED / CAPTURE_CORRUPT_COMPRESSED
 * with offsets in the decompressed stream; zstd, xz, bzip2 and lz4 are CAPTURE_COMPRESSED,
 * naming the command that decompresses them.
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { constants, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from '../src/core/packet.js';
import { compressionOf } from '../src/sources/capture-input.js';
import { captureInputStats, openCaptures, type OpenCapturesOptions } from '../src/sources/capture-source.js';
import { buildPcap, bytesOf, concat, PcapngBuilder } from './helpers/capture-builder.js';
import { runCli } from './helpers/cli-run.js';
import { SHARED_PCAPS } from './helpers/env.js';
import { describePacket, readCapture } from './helpers/read-capture.js';
import { collectSource } from './helpers/read-capture.js';

let dir = '';
const file = (name: string): string => path.join(dir, name);

/** A pcap of 3000 packets of 1 to 1500 bytes: about 2.3 MB, several read chunks and zlib output chunks. */
let plain: Uint8Array = new Uint8Array(0);
let ng: Uint8Array = new Uint8Array(0);
let gz: Buffer = Buffer.alloc(0);

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-gz-'));
  plain = buildPcap(
    Array.from({ length: 3000 }, (_, i) => ({ data: bytesOf(1 + ((i * 7919) % 1500), i), tsSec: 1000 + i, tsNsec: i * 1000 })),
    { linkType: 1 },
  );
  gz = gzipSync(plain);
  writeFileSync(file('x.pcap'), plain);
  writeFileSync(file('x.pcap.gz'), gz);
  writeFileSync(file('x-no-extension'), gz);
  const b = new PcapngBuilder().section().iface({ linkType: 1, tsresol: 9 });
  for (let i = 0; i < 500; i++) b.epb({ iface: 0, data: bytesOf(100 + i, i), ts: 5_000_000_000n + BigInt(i) });
  ng = b.build();
  writeFileSync(file('y.pcapng.gz'), gzipSync(ng));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});


const expected = (bytes: Uint8Array): string[] => readCapture(bytes).packets.map(describePacket);

/** pieces: a stream of `bytes` in pieces of `size`, standing in for stdin. */
function pieces(bytes: Uint8Array, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(Buffer.from(bytes.subarray(i, i + size)));
  return Readable.from(parts);
}

describe('gzip inputs', () => {
  it.each([
    ['x.pcap.gz', {}],
    ['x-no-extension', {}],
    ['x.pcap.gz', { readSize: 13 }],
    ['x.pcap.gz', { sharedChunks: true }],
  ] as Array<[string, OpenCapturesOptions]>)('%s (%j) gives the packets of the plain capture', async (name, options) => {
    const source = openCaptures([file(name)], options);
    const { packets, error } = await collectSource(source);
    expect(error).toBeNull();
    expect(packets.map(describePacket)).toEqual(expected(plain));
    const [s] = captureInputStats(source);
    expect(s).toMatchObject({ state: 'done', compression: 'gzip', compressedBytes: gz.length, bytes: plain.length, packets: 3000, format: 'pcap' });
  });

  it('reads gzip on stdin, also a byte at a time, and pcapng', async () => {
    const one = await collectSource(openCaptures(['-'], { stdin: pieces(gz, 1) }));
    expect(one.error).toBeNull();
    expect(one.packets.map(describePacket)).toEqual(expected(plain));
    const two = await collectSource(openCaptures(['-'], { stdin: pieces(gzipSync(ng), 4096) }));
    expect(two.error).toBeNull();
    expect(two.packets.map(describePacket)).toEqual(expected(ng));
  });

  it('reads concatenated gzip members one after another (as gzip -d does)', async () => {
    const cut = 1_000_003;
    writeFileSync(file('members.gz'), concat(gzipSync(plain.subarray(0, cut)), gzipSync(plain.subarray(cut, cut + 10)), gzipSync(plain.subarray(cut + 10))));
    const { packets, error } = await collectSource(openCaptures([file('members.gz')]));
    expect(error).toBeNull();
    expect(packets.map(describePacket)).toEqual(expected(plain));
  });

  it('a plain file keeps its chunks unshared from the gzip path: the same packets either way', async () => {
    const a = await collectSource(openCaptures([file('x.pcap')], { sharedChunks: true }));
    expect(a.packets.map(describePacket)).toEqual(expected(plain));
    expect(captureInputStats(openCaptures([file('x.pcap')]))[0]).toMatchObject({ compression: null, compressedBytes: 0 });
  });

  it('cut short: every packet of the decompressed part, then CAPTURE_TRUNCATED_COMPRESSED with decompressed offsets', async () => {
    for (const at of [gz.length - 1, Math.floor(gz.length * 0.6), 11]) {
      writeFileSync(file('cut.gz'), gz.subarray(0, at));
      // what a decompressor gives of the cut file (zlib's sync flush decompresses a cut stream without error)
      const part = gunzipSync(gz.subarray(0, at), { finishFlush: constants.Z_SYNC_FLUSH });
      const whole = readCapture(part);
      const source = openCaptures([file('cut.gz')], { readSize: 64 * 1024 });
      const { packets, error } = await collectSource(source);
      expect(packets.map(describePacket)).toEqual(whole.packets.map(describePacket));
      expect(error).toMatchObject({ code: 'CAPTURE_TRUNCATED_COMPRESSED', file: file('cut.gz'), packet: whole.packets.length + 1, offset: part.length });
      expect(error?.message).toMatch(/gzip input ended inside its compressed stream/);
      expect(captureInputStats(source)[0]).toMatchObject({ state: 'failed', compressedBytes: at });
    }
  });

  it('corrupt: the packets before the fault, then CAPTURE_CORRUPT_COMPRESSED', async () => {
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 6] = (badCrc[badCrc.length - 6] as number) ^ 0xff; // the CRC32 in the trailer
    writeFileSync(file('crc.gz'), badCrc);
    const all = expected(plain);
    const crc = await collectSource(openCaptures([file('crc.gz')]));
    // zlib does not hand over the output of the step (at most one 512 KiB output chunk) that found the fault
    expect(crc.packets.length).toBeGreaterThan(2000);
    expect(crc.packets.map(describePacket)).toEqual(all.slice(0, crc.packets.length));
    expect(crc.error).toMatchObject({ code: 'CAPTURE_CORRUPT_COMPRESSED', file: file('crc.gz'), packet: crc.packets.length + 1 });
    expect(crc.error?.message).toMatch(/^corrupt gzip data: incorrect data check/);
    writeFileSync(file('garbage.gz'), concat(gz, new TextEncoder().encode('trailing garbage')));
    const garbage = await collectSource(openCaptures([file('garbage.gz')]));
    expect(garbage.packets.length).toBeGreaterThan(2000);
    expect(garbage.packets.map(describePacket)).toEqual(all.slice(0, garbage.packets.length));
    expect(garbage.error?.code).toBe('CAPTURE_CORRUPT_COMPRESSED');
    // zero bytes after the last member are padding, as gzip -d takes them
    writeFileSync(file('zeros.gz'), concat(gz, new Uint8Array(1000)));
    const zeros = await collectSource(openCaptures([file('zeros.gz')]));
    expect(zeros.error).toBeNull();
    expect(zeros.packets.map(describePacket)).toEqual(all);
  });

  it('tells short inputs apart: empty, a lone gzip magic, a lone pcap magic', async () => {
    const cases: Array<[string, Uint8Array, string]> = [
      ['empty', new Uint8Array(0), 'CAPTURE_EMPTY'],
      ['gzip-magic', Uint8Array.of(0x1f, 0x8b, 0x08), 'CAPTURE_TRUNCATED_COMPRESSED'],
      ['pcap-magic', Uint8Array.of(0xd4, 0xc3, 0xb2, 0xa1), 'CAPTURE_EMPTY'],
      ['bz', Uint8Array.of(0x42, 0x5a, 0x68), 'CAPTURE_COMPRESSED'],
      ['junk', Uint8Array.of(1, 2, 3, 4, 5), 'CAPTURE_BAD_MAGIC'],
    ];
    for (const [name, bytes, code] of cases) {
      writeFileSync(file(name), bytes);
      const { packets, error } = await collectSource(openCaptures([file(name)]));
      expect(packets).toEqual([]);
      expect(error?.code, name).toBe(code);
    }
  });

  it('gzip and plain inputs merge by timestamp like plain ones', async () => {
    const evens = buildPcap(Array.from({ length: 100 }, (_, i) => ({ data: bytesOf(60, i), tsSec: 1000 + i, tsNsec: i * 1000 + 500_000 })), { linkType: 113 });
    writeFileSync(file('evens.pcap'), evens);
    writeFileSync(file('evens.pcap.gz'), gzipSync(evens));
    const a = await collectSource(openCaptures([file('x.pcap'), file('evens.pcap')]));
    const b = await collectSource(openCaptures([file('x.pcap.gz'), '-'], { stdin: pieces(gzipSync(evens), 1000) }));
    expect(a.error).toBeNull();
    expect(b.error).toBeNull();
    expect(b.packets.map(describePacket)).toEqual(a.packets.map(describePacket));
    expect(a.packets.length).toBe(3100);
    expect(a.packets.slice(0, 4).map((p) => p.linkType)).toEqual([1, 113, 1, 113]);
  });

  it('bounds the read-ahead of a slow consumer (no whole-file buffer)', async () => {
    const big = buildPcap(Array.from({ length: 40000 }, (_, i) => ({ data: bytesOf(1400, i), tsSec: i })), { linkType: 1 });
    writeFileSync(file('big.gz'), gzipSync(big, { level: 1 }));
    const source = openCaptures([file('big.gz')], { highWaterMark: 1, openFile: (p, o) => createReadStream(p, o) });
    let delivered = 24;
    let maxAhead = 0;
    for await (const batch of source) {
      for (const p of batch as Packet[]) delivered += 16 + p.caplen;
      maxAhead = Math.max(maxAhead, (captureInputStats(source)[0]?.bytes ?? 0) - delivered);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(delivered).toBe(big.length);
    expect(big.length).toBeGreaterThan(50 << 20);
    // decompressed bytes parsed and not yet delivered: a read chunk's packets and zlib's output chunk
    expect(maxAhead).toBeLessThan(4 << 20);
  });
});

describe('other compression formats', () => {
  const formats: Array<[string, number[], string]> = [
    ['zstd', [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00], 'zstd -dc'],
    ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz -dc'],
    ['bzip2', [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41], 'bzip2 -dc'],
    ['lz4', [0x04, 0x22, 0x4d, 0x18, 0x64, 0x40], 'lz4 -dc'],
  ];

  it.each(formats)('%s is CAPTURE_COMPRESSED, naming the command that decompresses it', async (format, magic, cmd) => {
    const name = file(`capture ${format}.pcap`);
    writeFileSync(name, concat(Uint8Array.from(magic), bytesOf(100)));
    expect(compressionOf(Uint8Array.from(magic))).toBe(format);
    const { packets, error } = await collectSource(openCaptures([name]));
    expect(packets).toEqual([]);
    expect(error).toMatchObject({ code: 'CAPTURE_COMPRESSED', file: name, offset: 0 });
    expect(error?.message).toContain(`${format}-compressed`);
    expect(error?.message).toContain(`${cmd} '${name}' | pcapflow read -`);
    const stdin = await collectSource(openCaptures(['-'], { stdin: pieces(concat(Uint8Array.from(magic), bytesOf(100)), 2) }));
    expect(stdin.error?.code).toBe('CAPTURE_COMPRESSED');
    expect(stdin.error?.message).toContain(`| ${cmd} | pcapflow read -`);
  });

  it('no capture magic is mistaken for a compressed one', () => {
    for (const m of [[0xa1, 0xb2, 0xc3, 0xd4], [0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d], [0x4d, 0x3c, 0xb2, 0xa1], [0x0a, 0x0d, 0x0d, 0x0a]]) {
      expect(compressionOf(Uint8Array.from([...m, 0, 0]))).toBeNull();
    }
  });
});

describe('pcapflow read on compressed inputs', () => {
  it('reads a gzip capture as the plain one, and says how to read a zstd one (exit 1)', async () => {
    const real = path.join(SHARED_PCAPS, 'pcapplusplus__mixed-126-conns.pcap');
    writeFileSync(file('mixed.pcap.gz'), gzipSync(readFileSync(real)));
    const want = await runCli(['read', real, '--sink', 'ndjson']);
    const got = await runCli(['read', file('mixed.pcap.gz'), '--sink', 'ndjson']);
    expect(got.code).toBe(0);
    expect(got.stdout).toBe(want.stdout);
    const pk = await runCli(['packets', '-', '--format', 'ndjson'], Readable.from([gzipSync(readFileSync(real))]));
    expect(pk.stdout).toBe((await runCli(['packets', real, '--format', 'ndjson'])).stdout);
    const stats = await runCli(['read', file('mixed.pcap.gz'), '--sink', 'ndjson', '--stats']);
    expect(stats.stderr).toMatch(/^reader\[0\]\.compression\s+gzip$/m);

    writeFileSync(file('x.pcap.zst'), concat(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd), bytesOf(64)));
    const z = await runCli(['read', file('x.pcap.zst')]);
    expect(z.code).toBe(1);
    expect(z.stderr).toBe(`pcapflow: CAPTURE_COMPRESSED: input is zstd-compressed, which pcapflow does not decompress (it reads gzip): decompress it into a pipe, e.g. \`zstd -dc ${file('x.pcap.zst')} | pcapflow read -\` (file ${file('x.pcap.zst')}, offset 0)\n`);
  });

  it('a cut gzip capture: the streams up to the cut, then CAPTURE_TRUNCATED_COMPRESSED (exit 1)', async () => {
    const real = readFileSync(path.join(SHARED_PCAPS, 'pcapplusplus__mixed-126-conns.pcap'));
    const z = gzipSync(real);
    writeFileSync(file('mixed-cut.pcap.gz'), z.subarray(0, z.length >> 1));
    const r = await runCli(['read', file('mixed-cut.pcap.gz'), '--sink', 'ndjson']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pcapflow: CAPTURE_TRUNCATED_COMPRESSED: .*\(file .*mixed-cut\.pcap\.gz, packet \d+, offset \d+\)\n$/);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; reason?: string });
    expect(lines.filter((l) => l.type === 'data').length).toBeGreaterThan(100);
    expect(lines.at(-1)?.type).toBe('close');
  });
});
