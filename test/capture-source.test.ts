import { createReadStream, type ReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PcapflowError } from '../src/core/errors.js';
import type { Packet } from '../src/core/packet.js';
import { captureInputStats, openCaptures, type OpenCapturesOptions } from '../src/sources/capture-source.js';
import { ReaderTransform } from '../src/sources/reader-transform.js';
import { buildPcap, bytesOf, PcapngBuilder, type PcapPacketSpec } from './helpers/capture-builder.js';
import { SHARED_PCAPS } from './helpers/env.js';
import { describePacket, readCapture } from './helpers/read-capture.js';
import { collectSource } from './helpers/read-capture.js';

let dir = '';
const fileA = (): string => path.join(dir, 'a.pcap');
const fileB = (): string => path.join(dir, 'b.pcap');
const fileCut = (): string => path.join(dir, 'cut.pcap');
const fileBig = (): string => path.join(dir, 'big.pcap');

const pktsA: PcapPacketSpec[] = [1, 2, 3].map((i) => ({ data: bytesOf(60 + i, i), tsSec: 100 + i }));
const pktsB: PcapPacketSpec[] = [1, 2, 3, 4].map((i) => ({ data: bytesOf(80 + i, 10 + i), tsSec: 200 + i, tsNsec: 5000 }));
const stdinBytes = new PcapngBuilder().section().iface({ linkType: 113, tsresol: 9 }).epb({ iface: 0, data: bytesOf(44, 7), ts: 300_000000001n }).epb({ iface: 0, data: bytesOf(45, 8), ts: 301_000000002n }).build();

const BIG_PACKETS = 38000;
const BIG_SIZE = 1500;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-source-'));
  writeFileSync(fileA(), buildPcap(pktsA, { linkType: 1 }));
  writeFileSync(fileB(), buildPcap(pktsB, { linkType: 1, nanos: true, bigEndian: true }));
  const cut = buildPcap(pktsB, { linkType: 1 });
  writeFileSync(fileCut(), cut.subarray(0, cut.length - 10));
  const payload = bytesOf(BIG_SIZE);
  const big = buildPcap(
    Array.from({ length: BIG_PACKETS }, (_, i) => ({ data: payload, tsSec: i })),
    { linkType: 1 },
  );
  writeFileSync(fileBig(), big);
  mkdirSync(path.join(dir, 'a-directory'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});


/** chunked: a stream of `bytes` in pieces of `size`, standing in for stdin. */
function chunked(bytes: Uint8Array, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(Buffer.from(bytes.subarray(i, i + size)));
  return Readable.from(parts);
}

describe('openCaptures', () => {
  it('reads files and stdin in order with order concat, numbering continued across inputs', async () => {
    const source = openCaptures([fileA(), '-', fileB()], { stdin: chunked(stdinBytes, 7), order: 'concat' });
    const { packets, error } = await collectSource(source);
    expect(error).toBeNull();
    expect(packets.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(packets.map((p) => p.tsSec)).toEqual([101, 102, 103, 300, 301, 201, 202, 203, 204]);
    expect(packets.map((p) => p.linkType)).toEqual([1, 1, 1, 113, 113, 1, 1, 1, 1]);
    expect(packets[4]?.tsNsec).toBe(2);
    expect(captureInputStats(source).map((s) => [s.file, s.state, s.firstIndex, s.packets, s.format])).toEqual([
      [fileA(), 'done', 1, 3, 'pcap'],
      ['-', 'done', 4, 2, 'pcapng'],
      [fileB(), 'done', 6, 4, 'pcap'],
    ]);
    expect(source.inputStats()[1]?.bytes).toBe(stdinBytes.length);
  });

  it('starts at firstIndex and yields the same packets as the reader', async () => {
    const { packets } = await collectSource(openCaptures([fileB()], { firstIndex: 50, readSize: 13 }));
    const direct = readCapture(new Uint8Array(readFileSync(fileB())), {}, { firstIndex: 50 });
    expect(packets.map(describePacket)).toEqual(direct.packets.map(describePacket));
  });

  it('reads real captures one after another', async () => {
    const a = path.join(SHARED_PCAPS, 'zeek__http-get-baseline.pcap');
    const b = path.join(SHARED_PCAPS, 'pcapplusplus__pcapng-eth-and-sll.pcapng');
    const source = openCaptures([a, b]);
    const { packets, error } = await collectSource(source);
    expect(error).toBeNull();
    expect(packets.length).toBe(14 + 159);
    expect(packets.every((p, i) => p.index === i + 1)).toBe(true);
    expect(captureInputStats(source).map((s) => s.packets)).toEqual([14, 159]);
  });

  it('delivers the earlier inputs, then fails with INPUT_NOT_FOUND for a missing path (order concat)', async () => {
    const missing = path.join(dir, 'no-such.pcap');
    const source = openCaptures([fileA(), missing, fileB()], { order: 'concat' });
    const { packets, error } = await collectSource(source);
    expect(packets.length).toBe(3);
    expect(error?.code).toBe('INPUT_NOT_FOUND');
    expect(error?.file).toBe(missing);
    expect(captureInputStats(source).map((s) => s.state)).toEqual(['done', 'failed', 'pending']);
  });

  it('fails with INPUT_READ_FAILED when the path cannot be read (a directory)', async () => {
    const { error } = await collectSource(openCaptures([path.join(dir, 'a-directory')]));
    expect(error?.code).toBe('INPUT_READ_FAILED');
    expect(error?.file).toBe(path.join(dir, 'a-directory'));
  });

  it('delivers every batch before a fault to a slow consumer, then errors', async () => {
    const bad = path.join(dir, 'bad-record.pcap');
    writeFileSync(bad, buildPcap([...pktsA, ...pktsB, { data: bytesOf(10), caplen: 1 << 30 }, ...pktsB], { linkType: 1 }));
    const source = openCaptures([fileB(), bad], { maxBatch: 1, highWaterMark: 2 });
    const out: Packet[] = [];
    const err = await pipeline(
      source,
      new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(batch: Packet[], _enc, done) {
          out.push(...batch);
          setTimeout(done, 3);
        },
      }),
    ).catch((e: unknown) => e as PcapflowError);
    expect(err).toMatchObject({ code: 'PCAP_RECORD_TOO_LARGE', file: bad, packet: 12 });
    expect(out.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(captureInputStats(source).map((s) => [s.state, s.packets])).toEqual([
      ['done', 4],
      ['failed', 7],
    ]);
  });

  it('tags capture errors with the input name, after the packets before the fault', async () => {
    const { packets, error } = await collectSource(openCaptures([fileA(), fileCut()]));
    expect(packets.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(error?.code).toBe('PCAP_TRUNCATED_RECORD');
    expect(error).toMatchObject({ file: fileCut(), packet: 7 });
  });

  it('stops reading the file while a slow consumer catches up (bounded read-ahead)', async () => {
    let fsStream: ReadStream | null = null;
    const options: OpenCapturesOptions = {
      openFile: (p, o) => {
        fsStream = createReadStream(p, o);
        return fsStream;
      },
    };
    const total = readFileSync(fileBig()).length;
    expect(total).toBeGreaterThan(50 * 1024 * 1024);
    let delivered = 24;
    let maxAhead = 0;
    let batches = 0;
    const slow = new Writable({
      objectMode: true,
      highWaterMark: 1,
      write(batch: Packet[], _enc, done) {
        for (const p of batch) delivered += 16 + p.caplen;
        const read = (fsStream as ReadStream | null)?.bytesRead ?? 0;
        maxAhead = Math.max(maxAhead, read - delivered);
        batches++;
        setTimeout(done, 2);
      },
    });
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    await pipeline(openCaptures([fileBig()], options), slow);
    const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    console.log(`backpressure: ${total} bytes in ${batches} batches, max read ahead ${maxAhead} bytes, heap+buffers grew ${heapAfter - heapBefore} bytes`);
    expect(delivered).toBe(total);
    // the file stream's buffer (1 MiB) + the source's 4 batches + the consumer's 1, each under ~1 MiB
    expect(maxAhead).toBeLessThan(8 * 1024 * 1024);
    expect(maxAhead).toBeGreaterThan(0);
  });

  it('closes the file when the consumer stops early (destroy)', async () => {
    let fsStream: ReadStream | null = null;
    const source = openCaptures([fileBig()], {
      openFile: (p, o) => {
        fsStream = createReadStream(p, o);
        return fsStream;
      },
    });
    let seen = 0;
    for await (const batch of source) {
      seen += (batch as Packet[]).length;
      break; // like `| head`: for-await's break destroys the source
    }
    expect(seen).toBeGreaterThan(0);
    const s = fsStream as unknown as ReadStream;
    if (!s.closed) await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(s.closed).toBe(true);
    expect(s.bytesRead).toBeLessThan(8 * 1024 * 1024);
  });

  it('an AbortSignal destroys the source and closes the file', async () => {
    let fsStream: ReadStream | null = null;
    const ac = new AbortController();
    const source = openCaptures([fileBig()], {
      signal: ac.signal,
      openFile: (p, o) => {
        fsStream = createReadStream(p, o);
        return fsStream;
      },
    });
    const got: Packet[] = [];
    const error = await new Promise<Error | null>((resolve) => {
      source.on('data', (batch: Packet[]) => {
        got.push(...batch);
        if (got.length > 1000) ac.abort();
      });
      source.on('error', resolve);
      source.on('end', () => resolve(null));
    });
    expect(error?.name).toBe('AbortError');
    const s = fsStream as unknown as ReadStream;
    if (!s.closed) await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(s.closed).toBe(true);
    expect(captureInputStats(source)[0]?.state).toBe('failed');
  });
});

describe('ReaderTransform', () => {
  it('turns bytes into the same packet batches as the reader, under backpressure', async () => {
    const bytes = readFileSync(fileB());
    const t = new ReaderTransform({ firstIndex: 7 });
    expect(t.writableObjectMode).toBe(false);
    expect(t.readableObjectMode).toBe(true);
    const out: Packet[] = [];
    await pipeline(
      chunked(bytes, 5),
      t,
      new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(batch: Packet[], _enc, done) {
          out.push(...batch);
          setImmediate(done);
        },
      }),
    );
    const direct = readCapture(new Uint8Array(bytes), {}, { firstIndex: 7 });
    expect(out.map(describePacket)).toEqual(direct.packets.map(describePacket));
    expect(t.core.stats.packets).toBe(4);
  });

  it('a fault inside a chunk errors the stream only after a slow consumer has the batches before it', async () => {
    const bytes = buildPcap([...pktsA, { data: bytesOf(10), caplen: 1 << 30 }, ...pktsB], { linkType: 1 });
    const out: Packet[] = [];
    const err = await pipeline(
      Readable.from([Buffer.from(bytes)]),
      new ReaderTransform({ maxBatch: 1 }),
      new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(batch: Packet[], _enc, done) {
          out.push(...batch);
          setTimeout(done, 5);
        },
      }),
    ).catch((e: unknown) => e as PcapflowError);
    expect(err?.code).toBe('PCAP_RECORD_TOO_LARGE');
    expect(out.map((p) => p.index)).toEqual([1, 2, 3]);
  });

  it('errors after the batches before the fault, and from the flush when the input is cut', async () => {
    const out: Packet[] = [];
    const t = new ReaderTransform({ file: 'cut' });
    const err = await pipeline(
      Readable.from([readFileSync(fileCut())]),
      t,
      new Writable({
        objectMode: true,
        write(batch: Packet[], _enc, done) {
          out.push(...batch);
          done();
        },
      }),
    ).catch((e: unknown) => e as PcapflowError);
    expect(err?.code).toBe('PCAP_TRUNCATED_RECORD');
    expect(err?.file).toBe('cut');
    expect(out.length).toBe(3);
  });
});
