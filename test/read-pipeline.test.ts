/**
 * The library's read pipeline (readCaptures, ReadPipeline; src/read-pipeline.ts) against
 * `pcapflow read` (main() in-process): the same files and the same NDJSON byte for byte, with
 * the sinks' threads and the chunk pool engaged too, every input form, and each option reaching
 * its stage.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import type { StreamEvent } from '../src/core/events.js';
import { planMemory } from '../src/core/memory-budget.js';
import { FilesSink } from '../src/sinks/files-sink.js';
import { HTTP_READ_SIZE, HttpSink } from '../src/sinks/http-sink.js';
import { TLS_READ_SIZE, TlsSink } from '../src/sinks/tls-sink.js';
import { NdjsonSink } from '../src/sinks/ndjson-sink.js';
import { createRequire } from 'node:module';
import { heapFlagGiven, readCaptures, ReadPipeline, renderThreadByDefault, RENDER_THREAD_MIN_INPUT, tuneHeap, type ReadCapturesOptions, type ReadInput } from '../src/read-pipeline.js';
import * as api from '../src/index.js';
import type { TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeCapture } from '../bench/synth.js';
import { runCli } from './helpers/cli-run.js';
import { dirContents } from './helpers/dir-contents.js';
import { FIXTURES, REPO_ROOT, sharedCaptures, SHARED_PCAPS } from './helpers/env.js';
import { CollectingWritable } from './helpers/sink-events.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-read-pipeline-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => path.join(tmp, `out${dirs++}`);
const shared = (name: string): string => path.join(SHARED_PCAPS, name);

/** The captures compared: every shared one and the fixtures. */
function captures(): string[] {
  return [...sharedCaptures(), ...fs.readdirSync(FIXTURES).filter((f) => /\.pcap(ng)?$/.test(f)).map((f) => path.join(FIXTURES, f))];
}

/** settle: the promise's error (null when it resolved). */
function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

/** cliFiles: `pcapflow read ARGS --sink files -o DIR`: the directory's contents and the exit code. */
async function cliFiles(inputs: string[], args: string[] = []): Promise<{ out: Map<string, string>; code: number }> {
  const dir = newDir();
  const r = await runCli(['read', ...inputs, '--sink', 'files', '-o', dir, ...args]);
  return { out: dirContents(dir), code: r.code };
}

/** cliNdjson: `pcapflow read ARGS --sink ndjson`: stdout and the exit code. */
async function cliNdjson(inputs: string[], args: string[] = []): Promise<{ out: string; code: number }> {
  const r = await runCli(['read', ...inputs, '--sink', 'ndjson', ...args]);
  return { out: r.stdout, code: r.code };
}

type Options = Omit<ReadCapturesOptions, 'sink'>;

/** libFiles: readCaptures into a files sink described by `sink` (dir added). */
async function libFiles(inputs: ReadInput | ReadInput[], options: Options = {}, sink: Record<string, unknown> = {}): Promise<{ out: Map<string, string>; error: unknown; stats: api.ReadStats | null }> {
  const dir = newDir();
  let stats: api.ReadStats | null = null;
  const error = await settle(readCaptures(inputs, { ...options, sink: { type: 'files', dir, ...sink } }).then((s) => (stats = s)));
  return { out: dirContents(dir), error, stats };
}

/** libNdjson: readCaptures into an NDJSON sink described by `sink` (a collecting destination added). */
async function libNdjson(inputs: ReadInput | ReadInput[], options: Options = {}, sink: Record<string, unknown> = {}): Promise<{ out: string; error: unknown; stats: api.ReadStats | null }> {
  const dest = new CollectingWritable();
  let stats: api.ReadStats | null = null;
  const error = await settle(readCaptures(inputs, { ...options, sink: { type: 'ndjson', dest, ...sink } }).then((s) => (stats = s)));
  return { out: dest.text(), error, stats };
}

/** Both sinks' threads on from the first byte, for any segment size: the pool and the shared chunks get used on small captures. */
const FILES_THREAD = { writeThread: { minAverage: 1, minFiles: 1, afterBytes: 0 } };
const NDJSON_THREAD = { renderThread: { afterBytes: 0, minAverage: 0 } };

describe('read size', () => {
  /** A Writable sink that counts the batches it takes; `readSize` as given. */
  const counting = (readSize?: number): Writable & { batches: number } => {
    const w = Object.assign(
      new Writable({
        objectMode: true,
        write(_b: StreamEvent[], _e, done) {
          w.batches++;
          done();
        },
      }),
      { batches: 0 },
      readSize === undefined ? {} : { readSize },
    );
    return w;
  };

  it("reads in the read size a sink of the caller's own asks for (HttpSink's and TlsSink's 128 KiB), unless readSize is given", async () => {
    const file = shared('pcapplusplus__mixed-126-conns.pcap');
    const size = fs.statSync(file).size;
    const plain = counting();
    await readCaptures(file, { sink: plain, reorder: false });
    const small = counting(16 * 1024);
    await readCaptures(file, { sink: small, reorder: false });
    const given = counting(16 * 1024);
    await readCaptures(file, { sink: given, reorder: false, readSize: 512 * 1024 });
    expect(plain.batches).toBeLessThanOrEqual(Math.ceil(size / (512 * 1024)) + 1);
    expect(small.batches).toBeGreaterThanOrEqual(Math.floor(size / (16 * 1024)));
    expect(given.batches).toBe(plain.batches);
    const dest = (): Writable => new Writable({ write: (_c, _e, done) => done() });
    expect(new HttpSink({ dest: dest() }).readSize).toBe(HTTP_READ_SIZE);
    expect(new TlsSink({ dest: dest() }).readSize).toBe(TLS_READ_SIZE);
  });
});

describe('tuneHeap', () => {
  it('leaves a heap growing percent given to node alone (command line or NODE_OPTIONS)', () => {
    expect(heapFlagGiven([], undefined)).toBe(false);
    expect(heapFlagGiven(['--max-old-space-size=100'], '--enable-source-maps')).toBe(false);
    expect(heapFlagGiven(['--heap-growing-percent=30'], undefined)).toBe(true);
    expect(heapFlagGiven([], '--heap_growing_percent=30 --trace-gc')).toBe(true);
  });

  it('sets the V8 flag at most once per process', () => {
    const v8 = createRequire(import.meta.url)('node:v8') as typeof import('node:v8');
    const spy = vi.spyOn(v8, 'setFlagsFromString');
    try {
      tuneHeap();
      tuneHeap();
      expect(spy.mock.calls.filter(([f]) => f.startsWith('--heap-growing-percent')).length).toBeLessThanOrEqual(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('holds the young generation at YOUNG_GENERATION_CAP, with a worker started on the way (workerStarted); V8 alone grows it past, as for an input under CAP_YOUNG_FROM', () => {
    // a child process, so that the flags stay out of this one; allocation that survives a
    // scavenge or two (what makes V8 grow the young generation), and a worker started before the
    // cap is reached, as the sinks do (a worker's heap puts V8's growth factor back)
    const script = `
      const { tuneHeap, workerStarted, YOUNG_GENERATION_CAP } = await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/heap.js'))});
      const v8 = await import('node:v8');
      const { Worker } = await import('node:worker_threads');
      if (process.env.TUNE === '1') tuneHeap();
      // a small input first: no cap for it; an input of unknown size later in the process sets it
      if (process.env.TUNE === 'small') tuneHeap(8 << 20);
      if (process.env.TUNE === 'later') {
        tuneHeap(8 << 20);
        tuneHeap(null);
      }
      const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      let keep = [];
      let most = 0;
      for (let step = 0; step < 400; step++) {
        for (let k = 0; k < 20000; k++) {
          keep.push({ a: k, b: [k] });
          if (keep.length > 300000) keep = keep.slice(150000);
        }
        if (step === 3) {
          const w = new Worker('setTimeout(() => {}, 200)', { eval: true });
          workerStarted(w);
          await new Promise((r) => w.once('online', r));
        }
        await new Promise((r) => setImmediate(r));
        most = Math.max(most, young());
      }
      console.log(JSON.stringify({ most, cap: YOUNG_GENERATION_CAP }));
    `;
    const run = (tune: string): { most: number; cap: number } =>
      JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, TUNE: tune } })) as { most: number; cap: number };
    const tuned = run('1');
    const plain = run('0');
    expect(tuned.most).toBeLessThanOrEqual(tuned.cap);
    expect(plain.most).toBeGreaterThan(tuned.cap);
    expect(run('small').most).toBeGreaterThan(tuned.cap);
    expect(run('later').most).toBeLessThanOrEqual(tuned.cap);
  });
});

describe('readCaptures gives what pcapflow read gives', () => {
  it('on every shared capture, files and NDJSON, with the sinks as the CLI builds them and with their threads on small shared chunks', async () => {
    let reused = 0;
    let failed = 0;
    for (const file of captures()) {
      const what = path.basename(file);
      const cf = await cliFiles([file]);
      const cn = await cliNdjson([file]);
      const lf = await libFiles(file);
      const ln = await libNdjson(file);
      expect(isDeepStrictEqual(lf.out, cf.out), `${what} files`).toBe(true);
      expect(ln.out, `${what} ndjson`).toBe(cn.out);
      // a corrupt capture: the CLI exits 1 after writing what came before the fault; the library rejects with the same PcapflowError
      expect(lf.error === null, what).toBe(cf.code === 0);
      expect(ln.error === null, what).toBe(cn.code === 0);
      if (lf.error !== null) {
        failed++;
        expect(isPcapflowError(lf.error), what).toBe(true);
      }
      const tf = await libFiles(file, { readSize: 4096, reorder: { packets: 8 } }, FILES_THREAD);
      const tn = await libNdjson(file, { readSize: 4096, reorder: { packets: 8 } }, NDJSON_THREAD);
      const cf8 = await cliFiles([file], ['--reorder-window', '8']);
      const cn8 = await cliNdjson([file], ['--reorder-window', '8']);
      expect(isDeepStrictEqual(tf.out, cf8.out), `${what} files, write thread`).toBe(true);
      expect(tn.out, `${what} ndjson, render thread`).toBe(cn8.out);
      expect(String(tf.error), what).toBe(String(lf.error));
      reused += tn.stats?.readChunks?.reused ?? 0;
    }
    expect(failed).toBeGreaterThan(0); // the corrupt captures are among them
    // the pool was wired and used (the files sink asks for shared chunks only after a flush of
    // 1 MiB or more, which these captures hardly have: the next test has it)
    expect(reused).toBeGreaterThan(100);
  }, 600_000);

  it('on many interleaved connections, with the chunks recycled by the pool', async () => {
    const file = path.join(tmp, 'many.pcap');
    await (writeCapture(file, { conns: 32, bytesPerConn: 1_000_000, mss: 1448, interleave: 4 }) as Promise<unknown>);
    const cf = await cliFiles([file]);
    const cn = await cliNdjson([file]);
    // the files sink asks for shared chunks after a flush of 1 MiB or more: with 128 KiB reads the
    // 32 connections reach 64 KiB pending within a batch or two (with 64 KiB reads, only under load)
    const tf = await libFiles(file, { readSize: 131072 }, FILES_THREAD);
    const tn = await libNdjson(file, { readSize: 131072 }, NDJSON_THREAD);
    expect(isDeepStrictEqual(tf.out, cf.out)).toBe(true);
    expect(tn.out).toBe(cn.out);
    expect(tf.stats!.readChunks!.reused).toBeGreaterThan(50);
    expect(tn.stats!.readChunks!.reused).toBeGreaterThan(50);
    expect((tf.stats!.sink as { threadFlushes: number }).threadFlushes).toBeGreaterThan(0);
  }, 120_000);

  it('with several inputs, merged by time or concatenated', async () => {
    const inputs = [shared('zeek__http-get-baseline.pcap'), shared('zeek__http-get-vlan.pcap'), shared('suricata-verify__tcp-gap.pcap')];
    expect((await libNdjson(inputs)).out).toBe((await cliNdjson(inputs)).out);
    expect((await libNdjson(inputs, { order: 'concat' })).out).toBe((await cliNdjson(inputs, ['--concat'])).out);
    expect(isDeepStrictEqual((await libFiles(inputs, { order: 'concat' })).out, (await cliFiles(inputs, ['--concat'])).out)).toBe(true);
  });

  it('with a filter, an encoding and reassembly options', async () => {
    const file = shared('pcapplusplus__mixed-126-conns.pcap');
    const l = await libNdjson(file, { filter: 'tcp port 80', reassembly: { overlap: 'last', maxBytes: 1000 } }, { encoding: 'hex' });
    const c = await cliNdjson([file], ['--filter', 'tcp port 80', '--overlap', 'last', '--max-bytes', '1000', '--encoding', 'hex']);
    expect(l.out).toBe(c.out);
    expect(l.stats!.filter!.dropped).toBeGreaterThan(0);
    expect(l.out).not.toBe((await libNdjson(file)).out);
  });
});

describe('inputs', () => {
  const file = shared('zeek__http-get-baseline.pcap');

  it('reads a stream of capture bytes, and `-` from options.stdin, as the file', async () => {
    const plain = await libNdjson(file);
    expect((await libNdjson(fs.createReadStream(file))).out).toBe(plain.out);
    expect((await libNdjson(['-'], { stdin: fs.createReadStream(file) })).out).toBe(plain.out);
    expect((await libNdjson([fs.createReadStream(file), shared('zeek__http-get-vlan.pcap')])).out).toBe((await libNdjson([file, shared('zeek__http-get-vlan.pcap')])).out);
  });

  it('takes one stream at most', () => {
    expect(() => new ReadPipeline([fs.createReadStream(file), '-'], { sink: { type: 'stdout', dest: new CollectingWritable() } })).toThrow(/only one input/);
    expect(() => new ReadPipeline([], { sink: { type: 'stdout', dest: new CollectingWritable() } })).toThrow(/no capture input/);
  });

  it('rejects with the CLI error for a missing file', async () => {
    const l = await libNdjson(path.join(tmp, 'nope.pcap'));
    expect((l.error as { code?: string }).code).toBe('INPUT_NOT_FOUND');
  });
});

describe('options reach the stages', () => {
  const file = shared('zeek__http-get-baseline.pcap');
  const files = (options: Options, sink: Record<string, unknown> = {}): ReadPipeline => new ReadPipeline(file, { ...options, sink: { type: 'files', dir: newDir(), ...sink } });

  it('the memory budget sets every share, each overridden by its own option', () => {
    const budget = 64 << 20;
    const plan = planMemory(budget);
    const p = files({ memoryBudget: budget });
    expect(p.tcp.demux.options.maxConnections).toBe(plan.maxConnections);
    expect((p.tcp as TcpStreamTransform).reassembler.options.maxBufferedTotal).toBe(plan.maxBufferedTotal);
    expect((p.tcp as TcpStreamTransform).reassembler.options.maxBufferedPerConnection).toBe(plan.maxBufferedPerConnection);
    expect(p.tcp.reorder!.options.maxBytes).toBe(plan.reorderMaxBytes);
    expect((p.tcp.decoder.ip.defrag as unknown as { maxBytes: number }).maxBytes).toBe(plan.fragmentMaxBytes);
    expect((p.sink as FilesSink).maxHeldBytes).toBe(plan.heldOutputBytes);

    const q = files({ memoryBudget: budget, demux: { maxConnections: 10 }, reassembly: { maxBufferedTotal: 1000 }, decoder: { fragmentMaxBytes: 5000 }, reorder: { maxBytes: 3000 } }, { maxHeldBytes: 7 });
    expect(q.tcp.demux.options.maxConnections).toBe(10);
    expect((q.tcp as TcpStreamTransform).reassembler.options.maxBufferedTotal).toBe(1000);
    expect((q.tcp.decoder.ip.defrag as unknown as { maxBytes: number }).maxBytes).toBe(5000);
    expect(q.tcp.reorder!.options.maxBytes).toBe(3000);
    expect((q.sink as FilesSink).maxHeldBytes).toBe(7);

    // without a budget: the default one's shares, as the CLI's
    const d = files({});
    expect((d.tcp.decoder.ip.defrag as unknown as { maxBytes: number }).maxBytes).toBe(planMemory().fragmentMaxBytes);
    expect((d.sink as FilesSink).maxHeldBytes).toBe(planMemory().heldOutputBytes);
  });

  it('the reorder window, and the reassembler waits as long', () => {
    const p = files({ reorder: { packets: 16, seconds: 5 } });
    expect(p.tcp.reorder!.options).toMatchObject({ packets: 16, seconds: 5 });
    expect((p.tcp as TcpStreamTransform).reassembler.options.waitPackets).toBe(16);
    const off = files({ reorder: false });
    expect(off.tcp.reorder).toBeNull();
    expect((off.tcp as TcpStreamTransform).reassembler.options.waitPackets).toBe(0);
    expect((files({ reorder: { packets: 16 }, reassembly: { waitPackets: 3 } }).tcp as TcpStreamTransform).reassembler.options.waitPackets).toBe(3);
    expect(files({ demux: { idleTimeout: 7 }, reassembly: { chunking: 'push', overlap: 'last' } }).tcp.demux.options.idleTimeout).toBe(7);
  });

  it('shared read chunks from a pool only for a sink with a thread and plain chunking', () => {
    expect(files({}).chunks).not.toBeNull();
    expect(files({}, { writeThread: false }).chunks).toBeNull();
    expect(files({ reassembly: { chunking: 'push' } }).chunks).toBeNull();
    const dest = new CollectingWritable();
    expect(new ReadPipeline(file, { sink: { type: 'ndjson', dest } }).chunks).toBeNull(); // small input: no render thread
    expect(new ReadPipeline(file, { sink: { type: 'ndjson', dest, renderThread: true } }).chunks).not.toBeNull();
    expect(new ReadPipeline(file, { sink: { type: 'ndjson', dest, renderThread: true, encoding: 'utf8' } }).chunks).toBeNull();
    expect(new ReadPipeline(file, { sink: new NdjsonSink({ dest }) }).chunks).not.toBeNull(); // a sink of one's own: shared only if it asks
    expect(new ReadPipeline(file, { sink: { type: 'stdout', dest } }).chunks).toBeNull();
    expect(renderThreadByDefault(null)).toBe(false);
    expect(renderThreadByDefault(RENDER_THREAD_MIN_INPUT - 1)).toBe(false);
    expect(renderThreadByDefault(RENDER_THREAD_MIN_INPUT)).toBe(os.availableParallelism() > 1);
  });

  it('any object-mode Writable takes the events; stats come in --stats order', async () => {
    const events: StreamEvent[] = [];
    const sink = new Writable({
      objectMode: true,
      write(batch: StreamEvent[], _enc, done) {
        events.push(...batch);
        done();
      },
    });
    const stats = await api.readCaptures([file], { sink, filter: 'tcp' });
    const lines = (await libNdjson(file)).out.trim().split('\n');
    expect(events.map((e) => e.type)).toEqual(lines.map((l) => (JSON.parse(l) as { type: string }).type));
    expect(Object.keys(stats)).toEqual(['reader', 'filter', 'reorder', 'decoder', 'demux', 'reassembler', 'sink']);
    const cli = await runCli(['read', file, '--sink', 'ndjson', '--filter', 'tcp', '--stats']);
    const stages = [...new Set(cli.stderr.trim().split('\n').map((l) => l.split(/[.[ ]/)[0]))];
    expect(stages).toEqual(['reader', 'filter', 'reorder', 'decoder', 'demux', 'reassembler', 'sink']);
  });
});
