import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import { ndjsonLine, PURE_ENCODERS } from '../src/core/format.js';
import { isPcapflowError } from '../src/core/errors.js';
import { openCaptures } from '../src/sources/capture-source.js';
import { SharedFileStream } from '../src/sources/shared-file-stream.js';
import { NdjsonSink } from '../src/sinks/ndjson-sink.js';
import { RenderThread } from '../src/sinks/render-thread.js';
import { TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
import { runPipeline } from '../src/pipeline.js';
import { renderThreadOn, type StreamArgs } from '../src/cli/sink-options.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeCapture } from '../bench/synth.js';
import { sharedCaptures } from './helpers/env.js';
import { closeEvent, CollectingWritable, dataEvent, endpoints, openEvent, pattern } from './helpers/sink-events.js';
import { runCli } from './helpers/cli-run.js';

/** A destination that takes one write at a time, each on a later turn of the event loop, and keeps them. */
class SlowCollect extends Writable {
  readonly chunks: Buffer[] = [];
  constructor() {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    setImmediate(cb);
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-render-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A thread that starts at once, whatever the payload sizes. */
const AT_ONCE = { afterBytes: 0, minAverage: 0 };

/** ndjson runs `pcapflow read`'s pipeline into an NdjsonSink and returns what it wrote. */
async function ndjson(
  file: string,
  opts: { shared: boolean; renderThread: boolean | { afterBytes?: number; minAverage?: number }; encoding?: 'base64' | 'hex'; dest?: Writable },
): Promise<{ text: string; sink: NdjsonSink; error: unknown }> {
  const dest = opts.dest ?? new CollectingWritable();
  const sink = new NdjsonSink({ dest, encoding: opts.encoding ?? 'base64', renderThread: opts.renderThread });
  const source = openCaptures([file], { sharedChunks: opts.shared, readSize: 64 * 1024 });
  const error = await runPipeline([source, new TcpStreamTransform({ decoder: { onError: 'skip' } }), sink], sink).then(
    () => null,
    (e: unknown) => e,
  );
  const text = dest instanceof CollectingWritable ? dest.text() : '';
  return { text, sink, error };
}

describe('NdjsonSink with its render thread', () => {
  it('writes the same bytes as without it on every shared capture, base64 and hex, payloads shared or copied', async () => {
    let threaded = 0;
    for (const file of sharedCaptures()) {
      for (const encoding of ['base64', 'hex'] as const) {
        const plain = await ndjson(file, { shared: false, renderThread: false, encoding });
        for (const shared of [true, false]) {
          const viaThread = await ndjson(file, { shared, renderThread: AT_ONCE, encoding });
          expect(viaThread.text, `${path.basename(file)} ${encoding} shared=${shared}`).toBe(plain.text);
          expect(String(viaThread.error)).toBe(String(plain.error));
          if (viaThread.sink.stats.batches > 0) expect(viaThread.sink.threaded).toBe(true);
          if (viaThread.sink.threaded) threaded++;
        }
      }
    }
    expect(threaded).toBeGreaterThan(100);
  }, 120_000);

  it('writes the same bytes on a 20 MB capture of 8 interleaved connections (the default thresholds)', async () => {
    const file = path.join(tmp, 'many.pcap');
    await writeCapture(file, { conns: 8, bytesPerConn: 2_500_000, mss: 1448, interleave: 4 });
    const plain = await ndjson(file, { shared: false, renderThread: false });
    const threaded = await ndjson(file, { shared: true, renderThread: {} });
    expect(threaded.sink.threaded).toBe(true);
    expect(threaded.text).toBe(plain.text);
    expect(plain.text.length).toBeGreaterThan(25_000_000);
  }, 60_000);

  it('does not start on small segments (below minAverage) nor on a small capture', async () => {
    const small = path.join(tmp, 'small.pcap');
    await writeCapture(small, { conns: 2, bytesPerConn: 1_500_000, mss: 200, ackEvery: 1, interleave: 1 });
    const a = await ndjson(small, { shared: true, renderThread: {} });
    expect(a.sink.threaded).toBe(false);
    const b = await ndjson(sharedCaptures()[0]!, { shared: true, renderThread: {} });
    expect(b.sink.threaded).toBe(false);
    const c = await ndjson(small, { shared: true, renderThread: { minAverage: 100 } });
    expect(c.sink.threaded).toBe(true);
    expect(c.text).toBe(a.text);
  }, 60_000);

  it('renders batches of few payload bytes for their other lines (a SYN flood\'s opens and closes) itself, in order', async () => {
    // heavy batches (40 data events of 2 KB) and flood-like ones (500 opens and closes, one small data event)
    const batches: StreamEvent[][] = [];
    let conn = 0;
    let off = 0;
    for (let b = 0; b < 24; b++) {
      const batch: StreamEvent[] = [];
      if (b % 3 === 0) {
        for (let i = 0; i < 40; i++, off += 2048) batch.push(dataEvent(0, 's2c', off, pattern(0, 's2c', off, 2048)));
      } else {
        for (let i = 0; i < 250; i++, conn++) {
          const o = openEvent(1000 + conn, endpoints(conn).client, endpoints(conn).server);
          batch.push(o, closeEvent(o, 0, 0));
        }
        batch.push(dataEvent(0, 's2c', off, pattern(0, 's2c', off, 10)));
        off += 10;
      }
      batches.push(batch);
    }
    const run = async (renderThread: boolean | typeof AT_ONCE): Promise<{ text: string; sink: NdjsonSink }> => {
      const dest = new SlowCollect();
      const sink = new NdjsonSink({ dest, renderThread });
      await pipeline(Readable.from(batches, { objectMode: true }), sink);
      return { text: Buffer.concat(dest.chunks).toString('latin1'), sink };
    };
    const plain = await run(false);
    const threaded = await run(AT_ONCE);
    expect(threaded.text).toBe(plain.text);
    expect(threaded.sink.threaded).toBe(true);
    // the heavy batches went to the thread, the light ones were rendered here
    expect(threaded.sink.batchesOnThread).toBe(8);
  });

  it('pushes back on its writer when the destination is slow, and keeps the order', async () => {
    const file = path.join(tmp, 'bulk.pcap');
    await writeCapture(file, { conns: 1, bytesPerConn: 3_000_000, mss: 1448 });
    const plain = await ndjson(file, { shared: false, renderThread: false });
    const dest = new SlowCollect();
    const sink = new NdjsonSink({ dest, renderThread: AT_ONCE });
    const tcp = new TcpStreamTransform();
    await runPipeline([openCaptures([file], { sharedChunks: true, readSize: 64 * 1024 }), tcp, sink], sink);
    expect(Buffer.concat(dest.chunks).toString('utf8')).toBe(plain.text);
    expect(sink.stats.drains).toBeGreaterThan(0);
  }, 60_000);

  it('stops quietly when its reader goes away (EPIPE from head -c 100), like the sink without it', async () => {
    const file = path.join(tmp, 'epipe.pcap');
    await writeCapture(file, { conns: 1, bytesPerConn: 4_000_000, mss: 1448 });
    const child = spawn('head', ['-c', '100'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const got: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => got.push(b));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const { sink, error } = await ndjson(file, { shared: true, renderThread: AT_ONCE, dest: child.stdin });
    expect(error).toBe(null);
    expect(await exited).toBe(0);
    expect(sink.closedEarly).toBe(true);
    expect(Buffer.concat(got)).toHaveLength(100);
  }, 60_000);
});

describe('NdjsonSink and a destination destroyed without an error (a child process stdin when the child exits)', () => {
  const batch: StreamEvent[] = [{ type: 'data', conn: 0, dir: 'c2s', offset: 0, ts: '1.000000000', data: new Uint8Array(4000) }];
  for (const renderThread of [false, AT_ONCE]) {
    it(`counts it as closed early, renderThread=${JSON.stringify(renderThread)}`, async () => {
      const dest = new CollectingWritable();
      const sink = new NdjsonSink({ dest, renderThread });
      const write = (): Promise<void> => new Promise((resolve, reject) => sink.write(batch, (err) => (err ? reject(err) : resolve())));
      await write();
      // the thread's text may come later than the callback: wait until the first batch is out
      for (let i = 0; i < 200 && dest.chunks.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      dest.destroy();
      await write();
      await new Promise<void>((resolve, reject) => {
        sink.on('error', reject);
        sink.end(resolve);
      });
      expect(sink.closedEarly).toBe(true);
      expect(dest.chunks.length).toBeGreaterThan(0);
    });
  }
});

describe('RenderThread', () => {
  const events: StreamEvent[] = [
    { type: 'data', conn: 0, dir: 'c2s', offset: 0, ts: '1.000000000', data: new Uint8Array([1, 2, 3, 4]) },
    { type: 'gap', conn: 0, dir: 'c2s', offset: 4, len: 10, ts: '1.000000001', reason: 'acked' },
  ];
  const line = (e: StreamEvent): string => ndjsonLine(e, PURE_ENCODERS.base64);

  it('answers jobs in the order posted', async () => {
    const thread = new RenderThread('base64', () => undefined);
    const texts: string[] = [];
    await new Promise<void>((resolve) => {
      for (let i = 0; i < 20; i++) {
        const batch = i % 2 === 0 ? events : [events[1]!];
        thread.render(batch, line, (t) => {
          texts.push(Buffer.from(t).toString());
          if (texts.length === 20) resolve();
        });
      }
    });
    await thread.stop();
    for (let i = 0; i < 20; i++) {
      const batch = i % 2 === 0 ? events : [events[1]!];
      expect(texts[i]).toBe(batch.map(line).join(''));
    }
  });

  it('reports a thread that died with jobs waiting, once', async () => {
    const failures: Error[] = [];
    const thread = new RenderThread('hex', (err) => failures.push(err));
    thread.render(events, line, () => undefined);
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/render thread exited/);
  });

  it('fails the sink with OUTPUT_FAILED when the thread dies', async () => {
    const dest = new CollectingWritable();
    const sink = new NdjsonSink({ dest, renderThread: AT_ONCE });
    const first = new Promise<void>((resolve, reject) => sink.write(events, (err) => (err ? reject(err) : resolve())));
    await first;
    const thread = (sink as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread;
    sink.write(events);
    await thread.worker.terminate();
    const err = await new Promise<unknown>((resolve) => {
      sink.on('error', resolve);
      sink.end();
    });
    expect(isPcapflowError(err) && err.code).toBe('OUTPUT_FAILED');
  });
});

describe('SharedFileStream and sharedChunks', () => {
  it('reads a file whole into SharedArrayBuffer chunks', async () => {
    const file = sharedCaptures()[0]!;
    const chunks: Uint8Array[] = [];
    for await (const c of new SharedFileStream(file, 4096)) chunks.push(c as Uint8Array);
    expect(chunks.every((c) => c.buffer instanceof SharedArrayBuffer)).toBe(true);
    expect(Buffer.concat(chunks).equals(fs.readFileSync(file))).toBe(true);
  });

  it('gives packets whose bytes are in SharedArrayBuffers, and INPUT_NOT_FOUND for a missing file', async () => {
    const batches: unknown[][] = [];
    const source = openCaptures([sharedCaptures()[0]!], { sharedChunks: true });
    for await (const b of source) batches.push(b as unknown[]);
    const first = (batches[0] as Array<{ data: Uint8Array }>)[0]!;
    expect(first.data.buffer instanceof SharedArrayBuffer).toBe(true);
    const missing = openCaptures([path.join(tmp, 'nope.pcap')], { sharedChunks: true });
    const err = await (async () => {
      try {
        for await (const _ of missing) void _;
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isPcapflowError(err) && err.code).toBe('INPUT_NOT_FOUND');
  });
});

describe('NdjsonSink with its render thread, writing to a file stream or a pipe (the texts\' memory reused)', () => {
  const file = path.join(tmp, 'recycle.pcap');
  const written = writeCapture(file, { conns: 6, bytesPerConn: 3_000_000, mss: 1448, interleave: 4 }) as Promise<unknown>;

  it('writes the same bytes as without the thread, the texts recycled', async () => {
    await written;
    const plain = await ndjson(file, { shared: false, renderThread: false });
    const recycle = vi.spyOn(RenderThread.prototype, 'recycle');
    try {
      const out = path.join(tmp, 'recycle.ndjson');
      const dest = fs.createWriteStream(out);
      const { error } = await ndjson(file, { shared: true, renderThread: AT_ONCE, dest });
      expect(error).toBe(null);
      expect(fs.readFileSync(out, 'utf8') === plain.text).toBe(true);
      const toFile = recycle.mock.calls.length;
      expect(toFile).toBeGreaterThan(20);

      const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
      const got: Buffer[] = [];
      cat.stdout.on('data', (b: Buffer) => got.push(b));
      const exited = new Promise<number | null>((resolve) => cat.on('close', resolve));
      const piped = await ndjson(file, { shared: true, renderThread: AT_ONCE, dest: cat.stdin });
      expect(piped.error).toBe(null);
      expect(await exited).toBe(0);
      expect(Buffer.concat(got).toString('utf8') === plain.text).toBe(true);
      expect(recycle.mock.calls.length - toFile).toBeGreaterThan(20);
    } finally {
      recycle.mockRestore();
    }
  }, 60_000);

  it('does not reuse the texts it gave a stream that may keep them', async () => {
    await written;
    const recycle = vi.spyOn(RenderThread.prototype, 'recycle');
    try {
      const plain = await ndjson(file, { shared: false, renderThread: false });
      const kept = await ndjson(file, { shared: true, renderThread: AT_ONCE });
      expect(kept.text === plain.text).toBe(true);
      expect(recycle).not.toHaveBeenCalled();
    } finally {
      recycle.mockRestore();
    }
  }, 60_000);
});

describe('pcapflow read --sink ndjson --render-thread', () => {
  it('prints the same lines as without it, base64 and hex', async () => {
    const file = path.join(tmp, 'cli.pcap');
    await writeCapture(file, { conns: 3, bytesPerConn: 1_000_000, mss: 1448, interleave: 4 });
    for (const encoding of ['base64', 'hex']) {
      const plain = await runCli(['read', file, '--sink', 'ndjson', '--encoding', encoding]);
      const threaded = await runCli(['read', file, '--sink', 'ndjson', '--encoding', encoding, '--render-thread', '--stats']);
      expect(plain.code).toBe(0);
      expect(threaded.code).toBe(0);
      expect(threaded.stdout).toBe(plain.stdout);
      expect(plain.stdout.split('\n').length).toBeGreaterThan(2000);
    }
  }, 60_000);
});

describe('renderThreadOn (--render-thread)', () => {
  const args = (over: Partial<StreamArgs>): StreamArgs => ({ sink: 'ndjson', encoding: 'base64', direction: 'both', overlap: 'first', chunking: 'plain', idleTimeout: '300', onError: 'skip', ...over });
  it('is on for NDJSON base64/hex when asked, by default for capture files of 128 MiB or more with 2+ cores, never for utf8 and other sinks', () => {
    expect(renderThreadOn(args({ renderThread: true }))).toBe(true);
    expect(renderThreadOn(args({ renderThread: false }), 1 << 30)).toBe(false);
    expect(renderThreadOn(args({ encoding: 'hex', renderThread: true }))).toBe(true);
    expect(renderThreadOn(args({ encoding: 'utf8', renderThread: true }))).toBe(false);
    expect(renderThreadOn(args({ encoding: 'utf8' }), 1 << 30)).toBe(false);
    expect(renderThreadOn(args({ sink: 'files', renderThread: true }))).toBe(false);
    expect(renderThreadOn(args({}))).toBe(false);
    expect(renderThreadOn(args({}), 128 << 20)).toBe(os.availableParallelism() > 1);
    expect(renderThreadOn(args({}), (128 << 20) - 1)).toBe(false);
    expect(renderThreadOn(args({ renderThread: true }), 1000)).toBe(true);
  });
});
