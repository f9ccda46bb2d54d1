import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import { openCaptures } from '../src/sources/capture-source.js';
import { SharedFileStream } from '../src/sources/shared-file-stream.js';
import { FilesSink, type FilesSinkOptions } from '../src/sinks/files-sink.js';
import { WriteThread } from '../src/sinks/write-thread.js';
import { TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
import { runPipeline } from '../src/pipeline.js';
import { fullCollection } from '../src/cli/collect.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeCapture, writeShortConns } from '../bench/synth.js';
import { sharedCaptures } from './helpers/env.js';
import { dirContents } from './helpers/dir-contents.js';
import { runCli } from './helpers/cli-run.js';
import { closeEvent, dataEvent, drive, openEvent } from './helpers/sink-events.js';
import type { StreamEvent } from '../src/core/events.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-wthread-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;


/** files runs `pcapflow read`'s pipeline into a FilesSink in a new directory. */
async function files(file: string, opts: { shared: boolean; writeThread: FilesSinkOptions['writeThread'] }): Promise<{ dir: string; sink: FilesSink; error: unknown }> {
  const dir = path.join(tmp, `out${dirs++}`);
  const sink = new FilesSink({ dir, writeThread: opts.writeThread, maxOpenFiles: 16 });
  const source = openCaptures([file], { sharedChunks: opts.shared, readSize: 64 * 1024 });
  const error = await runPipeline([source, new TcpStreamTransform({ decoder: { onError: 'skip' } }), sink], sink).then(
    () => null,
    (e: unknown) => e,
  );
  return { dir, sink, error };
}

/** A thread that takes every flush whose bytes are shared. */
const ALWAYS = { minAverage: 1, minFiles: 1, afterBytes: 0 };

describe('FilesSink with its write thread', () => {
  it('writes the same files as the thread pool on every shared capture, chunks shared or not', async () => {
    let threaded = 0;
    for (const file of sharedCaptures()) {
      const plain = await files(file, { shared: false, writeThread: false });
      for (const shared of [true, false]) {
        const viaThread = await files(file, { shared, writeThread: ALWAYS });
        const what = `${path.basename(file)} shared=${shared}`;
        expect(dirContents(viaThread.dir), what).toEqual(dirContents(plain.dir));
        expect(String(viaThread.error), what).toBe(String(plain.error));
        // a flush whose bytes are not shared goes to the thread pool
        if (!shared) expect(viaThread.sink.stats.threadFlushes, what).toBe(0);
        // files of connections that closed before their first write go to the thread whole
        threaded += viaThread.sink.stats.threadFlushes + viaThread.sink.stats.wholeFiles;
      }
    }
    expect(threaded).toBeGreaterThan(50);
  }, 180_000);

  it('takes the flushes of many connections of full segments with the CLI defaults, and writes what the thread pool writes', async () => {
    const file = path.join(tmp, 'many.pcap');
    // past the default afterBytes (64 MiB)
    await writeCapture(file, { conns: 24, bytesPerConn: 4_500_000, mss: 1448, interleave: 4 });
    const a = path.join(tmp, 'cli-thread');
    const b = path.join(tmp, 'cli-pool');
    const viaThread = await runCli(['read', file, '--sink', 'files', '-o', a, '--stats']);
    const viaPool = await runCli(['read', file, '--sink', 'files', '-o', b, '--stats', '--no-write-thread']);
    expect(viaThread.code).toBe(0);
    expect(viaPool.code).toBe(0);
    expect(Number(/sink\.threadFlushes\s+(\d+)/.exec(viaThread.stderr)?.[1])).toBeGreaterThan(0);
    expect(Number(/sink\.threadFlushes\s+(\d+)/.exec(viaPool.stderr)?.[1])).toBe(0);
    expect(dirContents(a)).toEqual(dirContents(b));
    expect(dirContents(a).size).toBe(24 * 2 + 1);
  }, 60_000);

  it('leaves one connection, and small segments, to the thread pool', async () => {
    const one = path.join(tmp, 'one.pcap');
    await writeCapture(one, { conns: 1, bytesPerConn: 3_000_000, mss: 1448, interleave: 1 });
    const small = path.join(tmp, 'small.pcap');
    await writeCapture(small, { conns: 16, bytesPerConn: 100_000, mss: 200, interleave: 4 });
    for (const file of [one, small]) {
      const r = await files(file, { shared: true, writeThread: { afterBytes: 0 } });
      expect(r.error).toBeNull();
      expect(r.sink.stats.threadFlushes, path.basename(file)).toBe(0);
      expect(r.sink.wantsSharedChunks).toBe(false);
    }
  }, 60_000);

  it('does not start before afterBytes (64 MiB by default)', async () => {
    const file = path.join(tmp, 'many-small.pcap');
    await writeCapture(file, { conns: 24, bytesPerConn: 400_000, mss: 1448, interleave: 4 });
    const byDefault = await files(file, { shared: true, writeThread: true });
    expect(byDefault.sink.stats.threadFlushes).toBe(0);
    const early = await files(file, { shared: true, writeThread: { afterBytes: 1 << 20 } });
    expect(early.sink.stats.threadFlushes).toBeGreaterThan(0);
    expect(dirContents(early.dir)).toEqual(dirContents(byDefault.dir));
  }, 60_000);

  it('a full disk (ENOSPC) under the thread fails with OUTPUT_FAILED naming the file', async () => {
    if (!fs.existsSync('/dev/full')) return;
    const dir = path.join(tmp, 'full');
    fs.mkdirSync(dir);
    const A = { ip: '10.180.156.1', port: 40008 };
    const B = { ip: '10.180.156.2', port: 80 };
    const part = path.join(dir, '010.180.156.001.40008-010.180.156.002.00080.part');
    fs.symlinkSync('/dev/full', part);
    const bytes = new Uint8Array(new SharedArrayBuffer(4096)).fill(0x41);
    const sink = new FilesSink({ dir, writeThread: ALWAYS });
    const err = await drive(sink, [[openEvent(0, A, B), dataEvent(0, 'c2s', 0, bytes)]]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(sink.stats.threadFlushes).toBe(1);
    expect(err).toMatchObject({ code: 'OUTPUT_FAILED', file: part });
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC' });
  });

  it('writes the files of short connections whole (open, write, close, rename in the thread): the same files as the thread pool', async () => {
    const file = path.join(tmp, 'short.pcap');
    await writeShortConns(file, { conns: 400, concurrent: 20, seconds: 2 });
    const viaThread = await files(file, { shared: true, writeThread: { hereFiles: 0 } });
    const here = await files(file, { shared: true, writeThread: true });
    const viaPool = await files(file, { shared: false, writeThread: false });
    expect(viaThread.error).toBeNull();
    expect(here.error).toBeNull();
    expect(viaThread.sink.stats.wholeFiles).toBeGreaterThan(700);
    expect(here.sink.stats.wholeFiles).toBe(viaThread.sink.stats.wholeFiles);
    // the default writes the first 4096 on the main thread: no thread started
    expect((here.sink as unknown as { thread: unknown }).thread).toBeNull();
    expect((viaThread.sink as unknown as { thread: unknown }).thread).not.toBeNull();
    expect(viaPool.sink.stats.wholeFiles).toBe(0);
    expect(dirContents(viaThread.dir)).toEqual(dirContents(viaPool.dir));
    expect(dirContents(here.dir)).toEqual(dirContents(viaPool.dir));
    expect(dirContents(viaThread.dir).size).toBe(800 + 1);
  }, 60_000);

  it.each([
    ['by the thread', 0],
    ['on the main thread', 4096],
  ])('a file written whole (%s) that cannot be written fails with OUTPUT_FAILED naming it', async (_how, hereFiles) => {
    if (!fs.existsSync('/dev/full')) return;
    const dir = path.join(tmp, `whole-full-${hereFiles}`);
    fs.mkdirSync(dir);
    const B = { ip: '10.180.156.2', port: 80 };
    const batch: StreamEvent[] = [];
    for (let i = 0; i < 12; i++) {
      const A = { ip: '10.180.156.1', port: 40000 + i };
      const o = openEvent(i, A, B);
      batch.push(o, dataEvent(i, 'c2s', 0, Buffer.from(`request ${i}`)), closeEvent(o, 9, 0));
    }
    // written whole: under its final name at once, no NAME.part
    const part = path.join(dir, '010.180.156.001.40005-010.180.156.002.00080');
    fs.symlinkSync('/dev/full', part);
    const sink = new FilesSink({ dir, writeThread: { hereFiles } });
    const err = await drive(sink, [batch]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'OUTPUT_FAILED', file: part });
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC' });
    // the files before it were written whole
    expect(fs.readFileSync(path.join(dir, '010.180.156.001.40004-010.180.156.002.00080'), 'utf8')).toBe('request 4');
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('fails with OUTPUT_FAILED when the thread dies', async () => {
    const file = path.join(tmp, 'many2.pcap');
    await writeCapture(file, { conns: 16, bytesPerConn: 400_000, mss: 1448, interleave: 4 });
    const dir = path.join(tmp, 'killed');
    const sink = new FilesSink({ dir, writeThread: ALWAYS, coalesceBytes: 0 });
    const source = openCaptures([file], { sharedChunks: true, readSize: 64 * 1024 });
    const tcp = new TcpStreamTransform();
    let killed = false;
    tcp.on('data', () => {
      const thread = (sink as unknown as { thread: { worker: { terminate(): Promise<number> } } | null }).thread;
      if (thread !== null && !killed) {
        killed = true;
        void thread.worker.terminate();
      }
    });
    const err = await runPipeline([source, tcp, sink], sink).then(
      () => null,
      (e: unknown) => e,
    );
    expect(killed).toBe(true);
    expect(isPcapflowError(err) && err.code).toBe('OUTPUT_FAILED');
    expect((err as Error).message).toMatch(/write thread exited/);
  }, 60_000);
});

describe('WriteThread', () => {
  it('appends shared and copied chunks to each descriptor, in order', async () => {
    const sab = new Uint8Array(new SharedArrayBuffer(64));
    for (let i = 0; i < 64; i++) sab[i] = i;
    const other = new Uint8Array(new SharedArrayBuffer(8)).fill(0xaa);
    const plain = Buffer.from('plain bytes');
    const a = path.join(tmp, 'wa');
    const b = path.join(tmp, 'wb');
    const fa = fs.openSync(a, 'w');
    const fb = fs.openSync(b, 'w');
    const thread = new WriteThread();
    const r = await thread.write(
      [fa, fb],
      [
        [sab.subarray(10, 20), plain, sab.subarray(0, 3), other],
        [plain.subarray(6), sab.subarray(60)],
      ],
    );
    await thread.stop();
    fs.closeSync(fa);
    fs.closeSync(fb);
    expect(r).toEqual({ written: [10 + 11 + 3 + 8, 5 + 4], error: null });
    expect(fs.readFileSync(a)).toEqual(Buffer.concat([sab.subarray(10, 20), plain, sab.subarray(0, 3), other]));
    expect(fs.readFileSync(b)).toEqual(Buffer.concat([plain.subarray(6), sab.subarray(60)]));
  });

  it('writes files whole: NAME.part created, written, closed, renamed to NAME; a failure names the file, later ones are not written', async () => {
    const dir = path.join(tmp, 'whole');
    fs.mkdirSync(dir);
    fs.mkdirSync(path.join(dir, 'c.part'));
    const sab = new Uint8Array(new SharedArrayBuffer(16)).fill(0x62);
    const thread = new WriteThread();
    const ok = await thread.writeWhole(`${dir}/`, ['a', 'b'], '.part', [[Buffer.from('first'), sab.subarray(0, 3)], [Buffer.from('second')]]);
    const bad = await thread.writeWhole(`${dir}/`, ['x', 'c', 'y'], '.part', [[Buffer.from('x')], [Buffer.from('c')], [Buffer.from('y')]]);
    await thread.stop();
    expect(ok).toEqual({ written: [8, 6], error: null });
    expect(fs.readFileSync(path.join(dir, 'a'), 'utf8')).toBe('firstbbb');
    expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).toBe('second');
    expect(bad.error).toMatchObject({ code: 'EISDIR', file: 1 });
    expect(fs.readFileSync(path.join(dir, 'x'), 'utf8')).toBe('x');
    expect(fs.readdirSync(dir).sort()).toEqual(['a', 'b', 'c.part', 'x']);
  });

  it('reports the errno code and the file that failed; the files before it were written', async () => {
    const a = path.join(tmp, 'wc');
    const fa = fs.openSync(a, 'w');
    const full = fs.openSync('/dev/full', 'w');
    const thread = new WriteThread();
    const r = await thread.write([fa, full], [[Buffer.from('ok')], [Buffer.from('lost')]]);
    await thread.stop();
    fs.closeSync(fa);
    fs.closeSync(full);
    expect(r.written).toEqual([2, 0]);
    expect(r.error).toMatchObject({ code: 'ENOSPC', file: 1 });
    expect(fs.readFileSync(a, 'utf8')).toBe('ok');
  });
});

describe('shared chunks on demand, and their collection', () => {
  it('shares a chunk only when `when` says so, and collects every `every` bytes of shared chunks', async () => {
    const file = sharedCaptures().find((f) => fs.statSync(f).size > 200_000)!;
    let share = false;
    let runs = 0;
    const stream = new SharedFileStream(file, 16 * 1024, { when: () => (share = !share), collect: { every: 64 * 1024, run: () => runs++, since: 0 } });
    const kinds: boolean[] = [];
    let bytes = 0;
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      kinds.push(chunk.buffer instanceof SharedArrayBuffer);
      bytes += chunk.length;
    }
    expect(bytes).toBe(fs.statSync(file).size);
    expect(kinds.slice(0, 4)).toEqual([true, false, true, false]);
    // every read allocates a chunk, the last one (the end of the file) included; every other one is shared
    expect(runs).toBe(Math.floor(Math.ceil((kinds.length + 1) / 2) / 4));
    expect(runs).toBeGreaterThan(0);
  });

  it('fullCollection gives a gc function without putting one on the global object', () => {
    const gc = fullCollection();
    expect(typeof gc).toBe('function');
    gc!();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
