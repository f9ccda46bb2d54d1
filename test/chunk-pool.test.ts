import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openCaptures } from '../src/sources/capture-source.js';
import { ChunkPool } from '../src/sources/chunk-pool.js';
import { FilesSink } from '../src/sinks/files-sink.js';
import { NdjsonSink } from '../src/sinks/ndjson-sink.js';
import { TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
import { runPipeline } from '../src/pipeline.js';
import { chunkPoolFor } from '../src/cli/read-command.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeCapture } from '../bench/synth.js';
import { sharedCaptures } from './helpers/env.js';
import { dirContents } from './helpers/dir-contents.js';
import { CollectingWritable } from './helpers/sink-events.js';
import { buildPcap, type PcapPacketSpec } from './helpers/capture-builder.js';
import { ethIpv4Tcp } from './helpers/packet-builder.js';

const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;
const PSH = 0x08;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-pool-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;

/**
 * runInto reads `file` into `sink` through the TCP stages: with ordinary chunks, or (`pooled`)
 * with shared chunks of `readSize` bytes from a ChunkPool whose holders are the sink and the
 * reassembler, poisoned when refilled. Resolves to the pool and the pipeline's error (null).
 */
async function runInto(sink: FilesSink | NdjsonSink, file: string, pooled: boolean, readSize: number, keep: number): Promise<{ pool: ChunkPool | null; error: unknown }> {
  // a small reorder window: with chunks this small the default one would hold hundreds of them
  const tcp = new TcpStreamTransform({ decoder: { onError: 'skip' }, reorder: { packets: 8 } });
  const pool = pooled ? chunkPoolFor(sink, tcp, readSize, { poison: true, keep }) : null;
  const source = openCaptures([file], { readSize, sharedChunks: pool === null ? false : { pool } });
  const error = await runPipeline([source, tcp, sink], sink).then(
    () => null,
    (e: unknown) => e,
  );
  return { pool, error };
}

/**
 * files runs `pcapflow read --sink files`'s pipeline: plain (ordinary chunks, no thread) or the
 * way the CLI runs it with the pool (shared chunks from a ChunkPool, every flush on the write
 * thread), with small chunks, recycled as soon as the holders allow, poisoned when recycled.
 */
async function files(file: string, pooled: boolean, readSize: number, keep = 1 << 20): Promise<{ dir: string; pool: ChunkPool | null; error: unknown }> {
  const dir = path.join(tmp, `out${dirs++}`);
  const sink = new FilesSink({ dir, maxOpenFiles: 16, writeThread: pooled ? { minAverage: 1, minFiles: 1, afterBytes: 0 } : false });
  return { dir, ...(await runInto(sink, file, pooled, readSize, keep)) };
}

/**
 * ndjson runs `pcapflow read --sink ndjson`'s pipeline: plain (no thread), or with every payload
 * encoded on the render thread from shared chunks of a ChunkPool, recycled as soon as the
 * holders allow, poisoned when recycled.
 */
async function ndjson(file: string, pooled: boolean, readSize: number, keep = 1 << 20): Promise<{ text: string; pool: ChunkPool | null; error: unknown }> {
  const dest = new CollectingWritable();
  const sink = new NdjsonSink({ dest, renderThread: pooled ? { afterBytes: 0, minAverage: 0 } : false });
  const run = await runInto(sink, file, pooled, readSize, keep);
  return { text: dest.text(), ...run };
}

/**
 * A capture in which the reassembler alone still reads an old chunk: connection A's server sends
 * 1000 bytes that are not acknowledged, connection B then carries 300 KB, and A's server sends
 * the same 1000 bytes again (a retransmission, compared with the kept bytes), which are then
 * acknowledged. If that chunk were recycled, the comparison would see other bytes: an overlap.
 */
function lateRetransmission(): Uint8Array {
  const pkts: PcapPacketSpec[] = [];
  let t = 0;
  const add = (spec: Parameters<typeof ethIpv4Tcp>[0]): void => {
    pkts.push({ data: ethIpv4Tcp(spec), tsSec: 1_700_000_000, tsNsec: (t += 1000) });
  };
  const conn = (cport: number, f: (c2s: (o: object) => void, s2c: (o: object) => void) => void): void => {
    const c2s = (o: object): void => add({ src: '10.0.0.1', dst: '10.0.0.2', sport: cport, dport: 80, ...o });
    const s2c = (o: object): void => add({ src: '10.0.0.2', dst: '10.0.0.1', sport: 80, dport: cport, ...o });
    f(c2s, s2c);
  };
  const kept = new Uint8Array(1000).map((_, i) => (i * 7) & 0xff);
  conn(1000, (c2s, s2c) => {
    c2s({ seq: 100, flags: SYN });
    s2c({ seq: 500, ack: 101, flags: SYN | ACK });
    c2s({ seq: 101, ack: 501, flags: ACK });
    s2c({ seq: 501, ack: 101, flags: ACK | PSH, payload: kept });
  });
  conn(2000, (c2s, s2c) => {
    c2s({ seq: 100, flags: SYN });
    s2c({ seq: 500, ack: 101, flags: SYN | ACK });
    c2s({ seq: 101, ack: 501, flags: ACK });
    for (let i = 0; i < 300; i++) {
      s2c({ seq: 501 + i * 1000, ack: 101, flags: ACK, payload: new Uint8Array(1000).fill(i & 0xff) });
      c2s({ seq: 101, ack: 501 + (i + 1) * 1000, flags: ACK });
    }
    s2c({ seq: 300_501, ack: 101, flags: FIN | ACK });
    c2s({ seq: 101, ack: 300_502, flags: FIN | ACK });
    s2c({ seq: 300_502, ack: 102, flags: ACK });
  });
  conn(1000, (c2s, s2c) => {
    s2c({ seq: 501, ack: 101, flags: ACK | PSH, payload: kept });
    c2s({ seq: 101, ack: 1501, flags: ACK });
    s2c({ seq: 1501, ack: 101, flags: FIN | ACK });
    c2s({ seq: 101, ack: 1502, flags: FIN | ACK });
    s2c({ seq: 1502, ack: 102, flags: ACK });
  });
  return buildPcap(pkts, { linkType: 1 });
}

/** The two pipelines a pool serves, run plain or pooled; `output` is what must not change. */
const PIPELINES = [
  {
    name: 'files',
    run: async (file: string, pooled: boolean, readSize: number) => {
      const r = await files(file, pooled, readSize);
      return { output: dirContents(r.dir), pool: r.pool, error: r.error };
    },
  },
  {
    name: 'ndjson --render-thread',
    run: async (file: string, pooled: boolean, readSize: number) => {
      const r = await ndjson(file, pooled, readSize);
      return { output: r.text, pool: r.pool, error: r.error };
    },
  },
];

let many: Promise<string> | null = null;
/** manyCapture: 32 interleaved connections of 1 MB each, written once. */
function manyCapture(): Promise<string> {
  const file = path.join(tmp, 'many.pcap');
  many ??= (writeCapture(file, { conns: 32, bytesPerConn: 1_000_000, mss: 1448, interleave: 4 }) as Promise<unknown>).then(() => file);
  return many;
}

for (const pipeline of PIPELINES) {
  describe(`read chunks recycled from a ChunkPool (pcapflow read --sink ${pipeline.name})`, () => {
    it('gives the same output as without it on every shared capture, recycled chunks poisoned', async () => {
      let reused = 0;
      for (const file of sharedCaptures()) {
        for (const readSize of [4096, 65536]) {
          const plain = await pipeline.run(file, false, readSize);
          const pooled = await pipeline.run(file, true, readSize);
          const what = `${path.basename(file)} readSize=${readSize}`;
          expect(isDeepStrictEqual(pooled.output, plain.output), what).toBe(true);
          expect(String(pooled.error), what).toBe(String(plain.error));
          reused += pooled.pool!.stats.reused;
        }
      }
      // how many depends on timing (a flush or a batch in flight holds its chunks); most captures are too small to reuse any
      expect(reused).toBeGreaterThan(100);
    }, 300_000);

    it('gives the same output on many interleaved connections', async () => {
      const file = await manyCapture();
      const plain = await pipeline.run(file, false, 65536);
      const pooled = await pipeline.run(file, true, 65536);
      expect(isDeepStrictEqual(pooled.output, plain.output)).toBe(true);
      expect(pooled.pool!.stats.reused).toBeGreaterThan(50);
    }, 60_000);
  });
}

describe('ChunkPool', () => {
  it('is not refilled while the reassembler keeps its bytes for overlap checks', async () => {
    const file = path.join(tmp, 'late-retransmission.pcap');
    fs.writeFileSync(file, lateRetransmission());
    const plain = await files(file, false, 4096);
    // the chunk kept for A blocks the refilling of all later ones until 16 are out, and is then
    // forgotten (left to the collector), never refilled
    const pooled = await files(file, true, 4096, 16);
    expect(dirContents(pooled.dir)).toEqual(dirContents(plain.dir));
    expect(pooled.pool!.stats.forgotten).toBeGreaterThan(0);
    const record = JSON.parse(fs.readFileSync(path.join(pooled.dir, 'connections.ndjson'), 'utf8').split('\n')[1]!) as { s2c: { retransmitted: number; overlaps: number } };
    expect(record.s2c).toMatchObject({ retransmitted: 1, overlaps: 0 });
    expect(pooled.pool!.stats.reused).toBeGreaterThan(20);
    const plainLines = await ndjson(file, false, 4096);
    const pooledLines = await ndjson(file, true, 4096, 16);
    expect(pooledLines.text).toBe(plainLines.text);
    expect(pooledLines.text).not.toContain('"type":"overlap"');
    expect(pooledLines.pool!.stats.forgotten).toBeGreaterThan(0);
  });

  it('refills the oldest chunk only once every holder is past it, and forgets one past `keep`', () => {
    let held = 0;
    const pool = new ChunkPool(16, { keep: 3, poison: true });
    pool.hold(() => held);
    const a = pool.take();
    const b = pool.take();
    expect(pool.rank(a)).toBe(1);
    expect(pool.rank(b)).toBe(2);
    expect(pool.rank(new SharedArrayBuffer(16))).toBe(Infinity);
    new Uint8Array(a).fill(1);
    held = 1; // a (rank 1) is still read
    const c = pool.take();
    expect(c).not.toBe(a);
    held = 2; // a is free
    const d = pool.take();
    expect(d).toBe(a);
    expect(pool.rank(a)).toBe(4);
    expect(new Uint8Array(a).every((x) => x === 0xee)).toBe(true);
    held = 0; // nothing free: b, c, a out; keep 3 reached, so b is forgotten
    const e = pool.take();
    expect(pool.owns(b)).toBe(false);
    expect(e).not.toBe(b);
    expect(pool.stats).toEqual({ allocated: 4, reused: 1, forgotten: 1 });
  });
});
