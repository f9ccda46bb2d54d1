/**
 * Several inputs merged by timestamp (openCaptures' default order 'time', `pcapflow read a b`):
 * the merged order and numbering, ties, stdin among the inputs, faults, the descriptors a
 * rotated set keeps open, and the real tools: per-direction captures split with tcpdump read
 * together give the whole capture's streams, `mergecap` then read gives what reading the parts
 * does, and a `tcpdump -C` rotation gives the whole file's streams.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PcapflowError } from '../src/core/errors.js';
import { type Packet } from '../src/core/packet.js';
import { captureInputStats, openCaptures, type OpenCapturesOptions, PEEK_CONCURRENCY } from '../src/sources/capture-source.js';
import { buildPcap, bytesOf, PcapngBuilder, type PcapPacketSpec } from './helpers/capture-builder.js';
import { runCli } from './helpers/cli-run.js';
import { needTool, SHARED_PCAPS } from './helpers/env.js';

let dir = '';
const file = (name: string): string => path.join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-merge-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** collect reads a source to its end (or error): the packets (fields copied: the objects are not reused here), the batch sizes, the error. */
async function collect(source: Readable): Promise<{ packets: Packet[]; sizes: number[]; error: PcapflowError | null }> {
  const packets: Packet[] = [];
  const sizes: number[] = [];
  try {
    for await (const batch of source) {
      sizes.push((batch as Packet[]).length);
      packets.push(...(batch as Packet[]));
    }
  } catch (err) {
    return { packets, sizes, error: err as PcapflowError };
  }
  return { packets, sizes, error: null };
}

/** tag: the first data byte of a packet, which these tests set to name it. */
const tag = (p: Packet): number => p.data[0] as number;
const pkt = (t: number, tsSec: number, tsNsec = 0): PcapPacketSpec => ({ data: Uint8Array.of(t, ...bytesOf(59, t)), tsSec, tsNsec });

/** spyOpen: an openFile that counts the files open at once (from the call to the stream's close). */
function spyOpen(): { options: Pick<OpenCapturesOptions, 'openFile'>; open: () => number; max: () => number; resetMax: () => void; opened: () => number } {
  let open = 0;
  let max = 0;
  let opened = 0;
  return {
    options: {
      openFile: (p, o) => {
        const s = createReadStream(p, o);
        open++;
        opened++;
        max = Math.max(max, open);
        s.once('close', () => open--);
        return s;
      },
    },
    open: () => open,
    max: () => max,
    resetMax: () => {
      max = open;
    },
    opened: () => opened,
  };
}

describe('merging inputs by timestamp', () => {
  it('interleaves packets by time, numbers the merged order, keeps each input order and link type', async () => {
    writeFileSync(file('m-a.pcap'), buildPcap([pkt(0xa1, 1), pkt(0xa2, 3), pkt(0xa3, 3, 500_000), pkt(0xa4, 9)], { linkType: 1 }));
    // nanosecond, big-endian, another link type
    writeFileSync(file('m-b.pcap'), buildPcap([pkt(0xb1, 2), pkt(0xb2, 3, 200), pkt(0xb3, 4)], { linkType: 113, nanos: true, bigEndian: true }));
    const source = openCaptures([file('m-a.pcap'), file('m-b.pcap')]);
    const { packets, error } = await collect(source);
    expect(error).toBeNull();
    expect(packets.map(tag)).toEqual([0xa1, 0xb1, 0xa2, 0xb2, 0xa3, 0xb3, 0xa4]);
    expect(packets.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(packets.map((p) => p.linkType)).toEqual([1, 113, 1, 113, 1, 113, 1]);
    expect(captureInputStats(source).map((s) => [s.state, s.firstIndex, s.packets, s.format, s.linkTypes])).toEqual([
      ['done', 1, 4, 'pcap', [1]],
      ['done', 2, 3, 'pcap', [113]],
    ]);
  });

  it('on equal timestamps takes the input named first (mergecap takes the later one), each input in its own order', async () => {
    writeFileSync(file('t-a.pcap'), buildPcap([pkt(0xa1, 1), pkt(0xa2, 2), pkt(0xa3, 2), pkt(0xa5, 5)], { linkType: 1 }));
    writeFileSync(file('t-b.pcap'), buildPcap([pkt(0xb2, 2), pkt(0xb3, 3), pkt(0xb5, 5)], { linkType: 1 }));
    writeFileSync(file('t-c.pcap'), buildPcap([pkt(0xc2, 2)], { linkType: 1 }));
    const abc = await collect(openCaptures([file('t-a.pcap'), file('t-b.pcap'), file('t-c.pcap')]));
    expect(abc.packets.map(tag)).toEqual([0xa1, 0xa2, 0xa3, 0xb2, 0xc2, 0xb3, 0xa5, 0xb5]);
    const cba = await collect(openCaptures([file('t-c.pcap'), file('t-b.pcap'), file('t-a.pcap')]));
    expect(cba.packets.map(tag)).toEqual([0xa1, 0xc2, 0xb2, 0xa2, 0xa3, 0xb3, 0xb5, 0xa5]);
  });

  it('keeps an input whose timestamps go backwards in its own order (as mergecap does)', async () => {
    writeFileSync(file('back-a.pcap'), buildPcap([pkt(0xa1, 5), pkt(0xa2, 1), pkt(0xa3, 6)], { linkType: 1 }));
    writeFileSync(file('back-b.pcap'), buildPcap([pkt(0xb1, 2), pkt(0xb2, 7)], { linkType: 1 }));
    const { packets } = await collect(openCaptures([file('back-a.pcap'), file('back-b.pcap')]));
    expect(packets.map(tag)).toEqual([0xb1, 0xa1, 0xa2, 0xa3, 0xb2]);
  });

  it('order concat reads one input after another', async () => {
    const { packets } = await collect(openCaptures([file('m-a.pcap'), file('m-b.pcap')], { order: 'concat' }));
    expect(packets.map(tag)).toEqual([0xa1, 0xa2, 0xa3, 0xa4, 0xb1, 0xb2, 0xb3]);
    expect(packets.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('merges stdin (pcapng, read in 3-byte pieces) with files, from firstIndex, in batches of at most maxBatch', async () => {
    const ng = new PcapngBuilder().section().iface({ linkType: 101, tsresol: 9 });
    for (let i = 0; i < 20; i++) ng.epb({ iface: 0, data: Uint8Array.of(0x50 + i, 1, 2, 3), ts: BigInt(i * 2 + 1) * 1_000_000_000n + 7n });
    const bytes = ng.build();
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 3) parts.push(Buffer.from(bytes.subarray(i, i + 3)));
    const evens = Array.from({ length: 20 }, (_, i) => pkt(0x10 + i, i * 2 + 2));
    writeFileSync(file('evens.pcap'), buildPcap(evens, { linkType: 1 }));
    const source = openCaptures([file('evens.pcap'), '-'], { stdin: Readable.from(parts), firstIndex: 100, maxBatch: 3 });
    const { packets, sizes, error } = await collect(source);
    expect(error).toBeNull();
    const want: number[] = [];
    for (let i = 0; i < 20; i++) want.push(0x50 + i, 0x10 + i);
    expect(packets.map(tag)).toEqual(want);
    expect(packets.map((p) => p.index)).toEqual(want.map((_, i) => 100 + i));
    expect(packets[0]?.tsNsec).toBe(7);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
    expect(captureInputStats(source).map((s) => [s.file, s.state, s.firstIndex, s.packets, s.format])).toEqual([
      [file('evens.pcap'), 'done', 101, 20, 'pcap'],
      ['-', 'done', 100, 20, 'pcapng'],
    ]);
  });

  it('a missing file is reported at once, even while stdin has sent no packet yet', async () => {
    const stdin = new PassThrough(); // never written to
    const { packets, error } = await collect(openCaptures(['-', file('m-a.pcap'), file('no-such-either.pcap')], { stdin }));
    expect(packets).toEqual([]);
    expect(error).toMatchObject({ code: 'INPUT_NOT_FOUND', file: file('no-such-either.pcap') });
    expect(stdin.listenerCount('readable')).toBe(0); // released
  });

  it('stdin named twice is INVALID_OPTION', async () => {
    const { packets, error } = await collect(openCaptures(['-', file('m-a.pcap'), '-'], { stdin: Readable.from([]) }));
    expect(packets).toEqual([]);
    expect(error).toMatchObject({ code: 'INVALID_OPTION', file: '-' });
  });

  it('an input with no packet is done and counted, and stays out of the way', async () => {
    writeFileSync(file('header-only.pcap'), buildPcap([], { linkType: 1 }));
    const source = openCaptures([file('header-only.pcap'), file('m-a.pcap')]);
    const { packets, error } = await collect(source);
    expect(error).toBeNull();
    expect(packets.map(tag)).toEqual([0xa1, 0xa2, 0xa3, 0xa4]);
    expect(captureInputStats(source).map((s) => [s.state, s.firstIndex, s.packets, s.bytes, s.format])).toEqual([
      ['done', 0, 0, 24, 'pcap'],
      ['done', 1, 4, 24 + 4 * 76, 'pcap'],
    ]);
  });

  it('a missing input or one that is not a capture stops the merge before any packet', async () => {
    const missing = file('no-such.pcap');
    const a = openCaptures([file('m-a.pcap'), missing, file('m-b.pcap')]);
    const r = await collect(a);
    expect(r.packets).toEqual([]);
    expect(r.error).toMatchObject({ code: 'INPUT_NOT_FOUND', file: missing });
    expect(captureInputStats(a).map((s) => s.state)).toEqual(['pending', 'failed', 'pending']);
    writeFileSync(file('not-a-capture.txt'), 'hello, this is not a capture file at all');
    const b = await collect(openCaptures([file('m-a.pcap'), file('not-a-capture.txt')]));
    expect(b.packets).toEqual([]);
    expect(b.error).toMatchObject({ code: 'CAPTURE_BAD_MAGIC', file: file('not-a-capture.txt'), packet: 1, offset: 0 });
  });

  it('a fault inside an input stops the merge where its next packet would come, after every packet merged before', async () => {
    // input 0: packets at 1, 3, 5, then a corrupt record; input 1: packets at 2, 4, 6, 8
    const bad = buildPcap([pkt(0xa1, 1), pkt(0xa3, 3), pkt(0xa5, 5), { data: bytesOf(10), caplen: 1 << 30, tsSec: 7 }, pkt(0xa9, 9)], { linkType: 1 });
    writeFileSync(file('f-bad.pcap'), bad);
    writeFileSync(file('f-good.pcap'), buildPcap([pkt(0xb2, 2), pkt(0xb4, 4), pkt(0xb6, 6), pkt(0xb8, 8)], { linkType: 1 }));
    const source = openCaptures([file('f-bad.pcap'), file('f-good.pcap')], { maxBatch: 1, highWaterMark: 1 });
    const { packets, error } = await collect(source);
    // after 0xa5 the merge needs input 0's next packet: the corrupt record
    expect(packets.map(tag)).toEqual([0xa1, 0xb2, 0xa3, 0xb4, 0xa5]);
    expect(error).toMatchObject({ code: 'PCAP_RECORD_TOO_LARGE', file: file('f-bad.pcap'), packet: 6, offset: 24 + 3 * 76 });
    expect(captureInputStats(source).map((s) => s.state)).toEqual(['failed', 'reading']);

    // cut inside a record: where the cut record falls in time is not known, so the merge stops
    // as soon as it needs that input's next packet (after 0xa3: before 0xb4)
    const cut = buildPcap([pkt(0xa1, 1), pkt(0xa3, 3), pkt(0xa5, 5)], { linkType: 1 });
    writeFileSync(file('f-cut.pcap'), cut.subarray(0, cut.length - 10));
    const c = await collect(openCaptures([file('f-good.pcap'), file('f-cut.pcap')]));
    expect(c.packets.map(tag)).toEqual([0xa1, 0xb2, 0xa3]);
    expect(c.error).toMatchObject({ code: 'PCAP_TRUNCATED_RECORD', file: file('f-cut.pcap'), packet: 4 });
  });

  it('destroying the source closes every open input', async () => {
    const spy = spyOpen();
    const body = bytesOf(500);
    const big = (t: number, off: number): Uint8Array => buildPcap(Array.from({ length: 5000 }, (_, i) => ({ data: Uint8Array.of(t, ...body), tsSec: i * 2 + off })), { linkType: 1 });
    writeFileSync(file('big-a.pcap'), big(0xa0, 0));
    writeFileSync(file('big-b.pcap'), big(0xb0, 1));
    const source = openCaptures([file('big-a.pcap'), file('big-b.pcap')], spy.options);
    let seen = 0;
    for await (const batch of source) {
      seen += (batch as Packet[]).length;
      if (seen > 1000) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(spy.open()).toBe(0);
    expect(spy.opened()).toBe(4); // two looks at the first packets, two reads
  });
});

describe('a rotated set of many files', () => {
  const FILES = 300;
  const PER_FILE = 10;
  let names: string[] = [];
  let all: PcapPacketSpec[] = [];

  beforeAll(() => {
    const rot = file('rot');
    mkdirSync(rot);
    all = Array.from({ length: FILES * PER_FILE }, (_, i) => ({ data: Uint8Array.of(i & 0xff, i >> 8, ...bytesOf(58, i)), tsSec: 1000 + Math.floor(i / 3), tsNsec: (i % 3) * 1000 }));
    names = [];
    for (let f = 0; f < FILES; f++) {
      const name = path.join(rot, `part${f}`);
      writeFileSync(name, buildPcap(all.slice(f * PER_FILE, (f + 1) * PER_FILE), { linkType: 1 }));
      names.push(name);
    }
  });

  const check = (packets: Packet[]): void => {
    expect(packets.length).toBe(all.length);
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i] as Packet;
      if (p.index !== i + 1 || p.data[0] !== (i & 0xff) || p.data[1] !== i >> 8) throw new Error(`packet ${i + 1} out of place: index ${p.index}, tag ${p.data[0]}/${p.data[1]}`);
    }
  };

  // A file read to its end closes asynchronously while the next one opens: "open" below counts
  // streams from their creation to their 'close' event, so one or two more than the inputs being
  // read can show for a moment under load; what matters is that it does not grow with the files.
  it('merged: the packets in file order, at most PEEK_CONCURRENCY files open while looking, a few while merging', async () => {
    const spy = spyOpen();
    let maxPeeking = -1;
    const source = openCaptures(names, spy.options);
    const packets: Packet[] = [];
    for await (const batch of source) {
      if (maxPeeking < 0) {
        maxPeeking = spy.max(); // the first batch comes once every first packet was looked at
        spy.resetMax();
      }
      packets.push(...(batch as Packet[]));
    }
    check(packets);
    expect(maxPeeking).toBeLessThanOrEqual(PEEK_CONCURRENCY);
    expect(maxPeeking).toBeGreaterThan(1);
    expect(spy.max()).toBeLessThanOrEqual(4);
    expect(spy.opened()).toBe(2 * FILES);
    expect(captureInputStats(source).every((s, f) => s.state === 'done' && s.packets === PER_FILE && s.firstIndex === f * PER_FILE + 1)).toBe(true);
  });

  it('the same listed in another order (a shell glob sorts part10 before part2)', async () => {
    const shuffled = [...names].sort();
    const { packets, error } = await collect(openCaptures(shuffled));
    expect(error).toBeNull();
    check(packets);
  });

  it('/proc/self/fd: the descriptors do not grow with the number of files', async () => {
    const fdDir = '/proc/self/fd';
    if (!existsSync(fdDir)) return; // no procfs here
    const before = readdirSync(fdDir).length;
    let max = 0;
    const source = openCaptures(names, { readSize: 256 });
    const packets: Packet[] = [];
    for await (const batch of source) {
      packets.push(...(batch as Packet[]));
      max = Math.max(max, readdirSync(fdDir).length);
    }
    check(packets);
    expect(max - before).toBeLessThanOrEqual(4); // one or two files (a third closing), and slack for the runtime's own: not 300
  });

  it('concat: the same, one file at a time', async () => {
    const spy = spyOpen();
    const { packets } = await collect(openCaptures(names, { ...spy.options, order: 'concat' }));
    check(packets);
    expect(spy.max()).toBeLessThanOrEqual(4);
  });
});

describe('with the real tools (tcpdump, mergecap)', () => {
  const haveTools = needTool('tcpdump') && needTool('mergecap');
  const captures = [
    'zeek__http-get-baseline.pcap',
    'pcapplusplus__mixed-126-conns.pcap',
    'zeek__http-methods-49-conns.pcap',
    'suricata-verify__ftp-data-80-conns.pcap',
    'pcapplusplus__nanosecs-big-endian-http.pcap',
    'zeek__ssh-many-duplicates.pcap',
    'arkime__http-retransmissions-overlaps.pcap',
  ];
  const ndjson = async (args: string[]): Promise<string> => {
    const r = await runCli(['read', ...args, '--sink', 'ndjson']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };
  const packetsNdjson = async (args: string[]): Promise<string> => {
    const r = await runCli(['packets', ...args, '--format', 'ndjson']);
    expect(r.code).toBe(0);
    return r.stdout;
  };

  it.skipIf(!haveTools).each(captures)('%s split per direction with tcpdump: read c2s s2c = read the whole capture', async (name) => {
    const whole = path.join(SHARED_PCAPS, name);
    const base = file(`dir-${name}`);
    // the side whose source port is above its destination port (mostly the clients), and the rest
    const side = 'tcp and tcp[0:2] > tcp[2:2]';
    execFileSync('tcpdump', ['--time-stamp-precision=nano', '-r', whole, '-w', `${base}.c2s`, side], { stdio: 'ignore' });
    execFileSync('tcpdump', ['--time-stamp-precision=nano', '-r', whole, '-w', `${base}.s2c`, `not (${side})`], { stdio: 'ignore' });
    const expected = await ndjson([whole]);
    expect(expected.length).toBeGreaterThan(0);
    expect(await ndjson([`${base}.c2s`, `${base}.s2c`])).toBe(expected);
    expect(await ndjson([`${base}.s2c`, `${base}.c2s`])).toBe(expected);
    // mergecap's file, read: the same packets, numbered alike
    execFileSync('mergecap', ['-F', 'nsecpcap', '-w', `${base}.merged`, `${base}.c2s`, `${base}.s2c`], { stdio: 'ignore' });
    expect(await packetsNdjson([`${base}.c2s`, `${base}.s2c`])).toBe(await packetsNdjson([`${base}.merged`]));
  });

  it.skipIf(!haveTools)('a tcpdump -C rotation read merged, or with --concat, gives the whole capture', async () => {
    const whole = path.join(SHARED_PCAPS, 'pcapplusplus__mixed-126-conns.pcap');
    const rot = file('tcpdump-rot');
    mkdirSync(rot);
    execFileSync('tcpdump', ['-Z', os.userInfo().username, '-r', whole, '-w', path.join(rot, 'part'), '-C', '1'], { stdio: 'ignore' });
    const parts = readdirSync(rot).sort((a, b) => a.length - b.length || a.localeCompare(b)).map((f) => path.join(rot, f));
    expect(parts.length).toBeGreaterThanOrEqual(3);
    const expected = await ndjson([whole]);
    expect(await ndjson(parts)).toBe(expected);
    expect(await ndjson(['--concat', ...parts])).toBe(expected);
    expect(await packetsNdjson(parts)).toBe(await packetsNdjson([whole]));
  });

  it('--concat on packets keeps the file order and numbering', async () => {
    const a = file('m-a.pcap');
    const b = file('m-b.pcap');
    const idx = (out: string): Array<[number, string]> => out.trim().split('\n').map((l) => JSON.parse(l) as { index: number; ts: string }).map((o) => [o.index, o.ts]);
    expect(idx(await packetsNdjson(['--concat', a, b])).map(([, ts]) => ts.split('.')[0])).toEqual(['1', '3', '3', '9', '2', '3', '4']);
    expect(idx(await packetsNdjson([a, b])).map(([i, ts]) => `${i}:${ts.split('.')[0]}`)).toEqual(['1:1', '2:2', '3:3', '4:3', '5:3', '6:4', '7:9']);
  });

  it('--stats lists each merged input with the index of its first packet', async () => {
    const r = await runCli(['packets', file('m-a.pcap'), file('m-b.pcap'), '--stats', '--format', 'ndjson']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^reader\[0\]\.firstIndex\s+1$/m);
    expect(r.stderr).toMatch(/^reader\[1\]\.firstIndex\s+2$/m);
    expect(r.stderr).toMatch(/^reader\[1\]\.packets\s+3$/m);
  });
});

describe('merged inputs through pcapflow read (packet pool, shared chunks)', () => {
  it('gives the same streams as the mergecap-equivalent single file, with the files sink and the write thread', async () => {
    // two captures of the same period: the one capture, split by packet number parity (ties impossible: distinct times)
    const whole = path.join(SHARED_PCAPS, 'zeek__http-methods-49-conns.pcap');
    const bytes = readFileSync(whole);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const le = dv.getUint32(0, true) === 0xa1b2c3d4;
    const even: Uint8Array[] = [bytes.subarray(0, 24)];
    const odd: Uint8Array[] = [bytes.subarray(0, 24)];
    let pos = 24;
    for (let i = 0; pos < bytes.length; i++) {
      const next = pos + 16 + dv.getUint32(pos + 8, le);
      (i % 2 === 0 ? even : odd).push(bytes.subarray(pos, next));
      pos = next;
    }
    writeFileSync(file('even.pcap'), Buffer.concat(even));
    writeFileSync(file('odd.pcap'), Buffer.concat(odd));
    const listing = (d: string): Record<string, string> => Object.fromEntries(readdirSync(d).sort().map((f) => [f, readFileSync(path.join(d, f)).toString('hex')]));
    const one = await runCli(['read', whole, '--sink', 'files', '-o', file('files-one')]);
    const two = await runCli(['read', file('odd.pcap'), file('even.pcap'), '--sink', 'files', '-o', file('files-two')]);
    expect([one.code, two.code]).toEqual([0, 0]);
    expect(listing(file('files-two'))).toEqual(listing(file('files-one')));
    const n1 = await runCli(['read', whole, '--sink', 'ndjson', '--render-thread']);
    const n2 = await runCli(['read', file('even.pcap'), file('odd.pcap'), '--sink', 'ndjson', '--render-thread']);
    expect(n2.stdout).toBe(n1.stdout);
  });
});

describe('merged inputs with shared chunks from a poisoned ChunkPool (pcapflow read with the threads)', () => {
  /** The records of a classic pcap (header apart), as byte views. */
  const records = (bytes: Uint8Array): { header: Uint8Array; recs: Uint8Array[] } => {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const le = dv.getUint32(0, true) === 0xa1b2c3d4 || dv.getUint32(0, true) === 0xa1b23c4d;
    const recs: Uint8Array[] = [];
    for (let pos = 24; pos < bytes.length; ) {
      const next = pos + 16 + dv.getUint32(pos + 8, le);
      recs.push(bytes.subarray(pos, next));
      pos = next;
    }
    return { header: bytes.subarray(0, 24), recs };
  };

  /** run reads `inputs` as pcapflow read does with --sink ndjson --render-thread / --sink files (the write thread), chunks from a poisoned pool. */
  const run = async (inputs: string[], sinkKind: 'ndjson' | 'files', pooled: boolean): Promise<{ output: unknown; reused: number }> => {
    const { TcpStreamTransform } = await import('../src/transforms/tcp-transforms.js');
    const { NdjsonSink } = await import('../src/sinks/ndjson-sink.js');
    const { FilesSink } = await import('../src/sinks/files-sink.js');
    const { runPipeline } = await import('../src/pipeline.js');
    const { chunkPoolFor } = await import('../src/cli/read-command.js');
    const { CollectingWritable } = await import('./helpers/sink-events.js');
    const { dirContents } = await import('./helpers/dir-contents.js');
    const readSize = 16384;
    const tcp = new TcpStreamTransform({ decoder: { onError: 'skip' }, reorder: { packets: 8 } });
    const dest = new CollectingWritable();
    const out = file(`pool-out-${Math.random().toString(36).slice(2)}`);
    const sink =
      sinkKind === 'ndjson'
        ? new NdjsonSink({ dest, renderThread: pooled ? { afterBytes: 0, minAverage: 0 } : false })
        : new FilesSink({ dir: out, maxOpenFiles: 16, writeThread: pooled ? { minAverage: 1, minFiles: 1, afterBytes: 0 } : false });
    const pool = pooled ? chunkPoolFor(sink, tcp, readSize, { poison: true }) : null;
    const source = openCaptures(inputs, { readSize, sharedChunks: pool === null ? false : { pool } });
    await runPipeline([source, tcp, sink], sink);
    return { output: sinkKind === 'ndjson' ? dest.text() : dirContents(out), reused: pool?.stats.reused ?? 0 };
  };

  let whole = '';
  let rotation: string[] = [];
  let overlapping: string[] = [];
  beforeAll(async () => {
    // @ts-expect-error bench/synth.js is plain JavaScript without types
    const { writeCapture } = (await import('../bench/synth.js')) as { writeCapture: (f: string, o: object) => Promise<unknown> };
    whole = file('pool-whole.pcap');
    await writeCapture(whole, { conns: 12, bytesPerConn: 200_000, mss: 1448, interleave: 4 });
    const { header, recs } = records(new Uint8Array(readFileSync(whole)));
    // a rotation of 40 files, and three overlapping captures (packets dealt round robin)
    rotation = [];
    const per = Math.ceil(recs.length / 40);
    for (let f = 0; f * per < recs.length; f++) {
      rotation.push(file(`pool-rot-${f}.pcap`));
      writeFileSync(rotation[f] as string, Buffer.concat([header, ...recs.slice(f * per, (f + 1) * per)]));
    }
    overlapping = [0, 1, 2].map((k) => {
      const name = file(`pool-ovl-${k}.pcap`);
      writeFileSync(name, Buffer.concat([header, ...recs.filter((_, i) => i % 3 === k)]));
      return name;
    });
  });

  for (const sinkKind of ['ndjson', 'files'] as const) {
    it(`${sinkKind}: a rotation and overlapping inputs give the whole capture's output, recycled chunks poisoned`, async () => {
      const plain = await run([whole], sinkKind, false);
      const rot = await run(rotation, sinkKind, true);
      expect(isDeepStrictEqual(rot.output, plain.output)).toBe(true);
      expect(rot.reused).toBeGreaterThan(20); // one file open at a time: the pool serves it
      const ovl = await run(overlapping, sinkKind, true);
      expect(isDeepStrictEqual(ovl.output, plain.output)).toBe(true);
      // two overlapping inputs over a rotation of the same packets: one, two or three files open in turn
      const inputs = [...overlapping.slice(0, 2), ...rotation];
      const mixed = await run(inputs, sinkKind, true);
      expect(isDeepStrictEqual(mixed.output, (await run(inputs, sinkKind, false)).output)).toBe(true);
    }, 120_000);
  }
});
