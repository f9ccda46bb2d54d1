/**
 * ShardSink: the end of a `--workers N` read pipeline. It takes the demux's packet batches
 * (TcpDemux's output: decoded, reordered and demuxed on this thread), sends each connection's
 * packets to worker `shardOf(flow, N)` (ShardRouter; each worker reassembles and renders its
 * connections, shard-worker.ts) and puts the workers' keyed output back in one reassembler's
 * order (KeyedMerge): NDJSON lines to `dest`, or connections.ndjson for the files the workers
 * write themselves. The output is byte for byte that of one thread, as long as no memory limit
 * is reached (each worker gets 1/N of the out-of-order buffer and held-output budgets).
 *
 * Backpressure: at most INFLIGHT batches per worker are not yet taken by its sink, and merged
 * output waiting for the destination stops the intake too. Errors: a worker's PcapflowError
 * (OUTPUT_FAILED for a files sink that cannot write) fails the sink with its code; a worker that
 * dies fails it with OUTPUT_FAILED.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { workerStarted } from '../heap.js';
import { PcapflowError, type ErrorCode } from '../core/errors.js';
import { KeyedMerge } from '../core/keyed-merge.js';
import type { Packet, PacketPool } from '../core/packet.js';
import type { TcpReassemblerOptions, TcpReassemblerStats } from '../core/reassembler.js';
import { ShardRouter } from '../core/shard-batch.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';
import type { FilesSinkOptions } from './files-sink.js';
import type { ShardWorkerData } from './shard-worker.js';
import type { PayloadEncoding } from '../core/format.js';

/** Batches sent to a worker and not yet taken by its sink. */
const INFLIGHT = 2;
/** Output buffers smaller than this are not given back to the workers. */
const SPARE_MIN = 64 << 10;
/** Merged output bytes waiting for the destination before the intake stops. */
const OUT_WAITING = 8 << 20;

export interface ShardSinkOptions {
  /** Worker threads (shards), 1 or more. */
  workers: number;
  /** What the workers make: one file per direction (FilesSinkOptions), or NDJSON lines. */
  sink: ({ type: 'files' } & FilesSinkOptions) | ({ type: 'ndjson'; encoding?: PayloadEncoding } & ByteSinkOptions);
  /** The reassembler's options (each worker's). */
  reassembly?: TcpReassemblerOptions;
  /** Packets go back to this pool once routed (they are copied into the shard batches). */
  pool?: PacketPool;
  /**
   * The young generation of each worker, in MiB (V8's resourceLimits); default 8: against 32,
   * 0.97x the time and 40-58 MB less peak RSS with 2 workers (bench/PROFILE.md, "Heap growth").
   */
  youngGenerationMb?: number;
}

/**
 * Merged bytes to the destination: each hand-over's views written corked (writeViews), not
 * copied. A batch's `written` runs once the destination is done with its bytes, when it is one
 * of Node's own streams (ByteSink.destReleases), else never.
 */
class BytesSink extends ByteSink<ViewBatch> {
  protected override render(batch: ViewBatch): Uint8Array {
    return batch.length === 1 ? batch[0]! : Buffer.concat(batch);
  }

  protected override writeBatch(batch: ViewBatch, callback: (error?: Error | null) => void): void {
    this.writeViews(batch, callback, this.destReleases ? batch.written : undefined);
  }
}

/** Views to write, and what to do once the destination is done with them. */
type ViewBatch = Uint8Array[] & { written?: () => void };

/**
 * workerUrl: the compiled worker next to this module (dist/sinks), also when this module runs from
 * source (tests) or from the command line's bundle (dist/cli/pcapflow.cjs).
 */
function workerUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL('../../dist/sinks/shard-worker.js', here);
  return here.endsWith('.cjs') ? new URL('../sinks/shard-worker.js', here) : new URL('./shard-worker.js', here);
}

export class ShardSink extends Writable {
  readonly workers: number;
  readonly router: ShardRouter;
  private readonly threads: Worker[] = [];
  private readonly inflight: number[];
  private readonly merge: KeyedMerge;
  private readonly pool: PacketPool | null;
  private held: ((error?: Error | null) => void) | null = null;
  private failure: PcapflowError | null = null;
  private finals: Array<{ reassembler: TcpReassemblerStats; sink: unknown } | null>;
  private whenDone: (() => void) | null = null;
  /** ndjson: the destination; files: connections.ndjson's descriptor. */
  private readonly bytesOut: BytesSink | null = null;
  private recordsFd = -1;
  private readonly recordsPath: string | null = null;
  private outWaiting = 0;
  private readonly views: Uint8Array[] = [];

  constructor(options: ShardSinkOptions) {
    super({ objectMode: true, highWaterMark: 1 });
    const n = options.workers;
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new PcapflowError('INVALID_OPTION', `workers must be an integer from 1 to 256, got ${n}`);
    this.workers = n;
    this.router = new ShardRouter(n, (size) => Buffer.allocUnsafeSlow(size));
    this.inflight = new Array<number>(n).fill(0);
    this.merge = new KeyedMerge(n);
    this.finals = new Array(n).fill(null);
    this.pool = options.pool ?? null;
    const spec = options.sink;
    const reassembly = { ...options.reassembly };
    let data: ShardWorkerData;
    if (spec.type === 'files') {
      const { type: _t, recordsTo: _r, ...files } = spec;
      files.writeThread = { hereFiles: Infinity };
      if (files.maxHeldBytes !== undefined) files.maxHeldBytes = Math.floor(files.maxHeldBytes / n);
      data = { mode: 'files', reassembly, files };
      this.recordsPath = path.join(spec.dir, 'connections.ndjson');
    } else {
      const { type: _t, encoding, ...byteOptions } = spec;
      data = { mode: 'ndjson', reassembly, encoding: encoding ?? 'base64' };
      this.bytesOut = new BytesSink({ ...byteOptions, highWaterMark: 4 });
      this.bytesOut.on('error', (err) => this.fail(err));
      this.bytesOut.on('drain', () => this.maybeRelease());
      this.bytesOut.on('closedEarly', () => {
        // the reader went away: nothing more to do, and the workers must not keep the process alive
        for (const w of this.threads) void w.terminate();
        const held = this.held;
        this.held = null;
        held?.();
        this.whenDone?.();
        this.emit('closedEarly');
      });
    }
    if (reassembly.maxBufferedTotal !== undefined) reassembly.maxBufferedTotal = Math.floor(reassembly.maxBufferedTotal / n);
    const { Worker } = workerThreads();
    const young = options.youngGenerationMb ?? 8;
    for (let s = 0; s < n; s++) {
      const w = new Worker(workerUrl(), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: young } });
      workerStarted(w);
      w.on('message', (m: WorkerMessage) => this.message(s, m));
      w.on('error', (err) => this.fail(new PcapflowError('OUTPUT_FAILED', `shard worker ${s} failed: ${err.message}`, { cause: err })));
      w.on('exit', (code) => {
        if (this.finals[s] === null && code !== 0) this.fail(new PcapflowError('OUTPUT_FAILED', `shard worker ${s} exited with code ${code}`));
      });
      this.threads.push(w);
    }
  }

  /** True once the NDJSON destination closed early (EPIPE). */
  get closedEarly(): boolean {
    return this.bytesOut?.closedEarly ?? false;
  }

  /** The workers' reassembler counters, summed (peaks too), with the packets without a flow counted here; null until every worker is done. */
  get reassemblerStats(): TcpReassemblerStats | null {
    if (this.finals.some((f) => f === null)) return null;
    const sum = sumStats(this.finals.map((f) => f!.reassembler as unknown as Record<string, unknown>)) as unknown as TcpReassemblerStats;
    sum.ignored += this.router.ignored;
    return sum;
  }

  /** The sinks' counters, summed over the workers (files), or the destination's (ndjson). */
  get stats(): unknown {
    if (this.bytesOut !== null) return this.bytesOut.stats;
    if (this.finals.some((f) => f === null)) return null;
    return sumStats(this.finals.map((f) => f!.sink as Record<string, unknown>));
  }

  override _construct(callback: (error?: Error | null) => void): void {
    if (this.recordsPath === null) return callback();
    fs.mkdir(path.dirname(this.recordsPath), { recursive: true }, (err) => {
      if (err) return callback(outputError(path.dirname(this.recordsPath!), err));
      fs.open(this.recordsPath!, 'w', 0o644, (err2, fd) => {
        if (err2) return callback(outputError(this.recordsPath!, err2));
        this.recordsFd = fd;
        callback();
      });
    });
  }

  override _write(batch: Packet[], _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    if (this.closedEarly) return callback();
    this.router.route(batch);
    this.pool?.release(batch);
    this.send();
    if (this.blocked()) this.held = callback;
    else callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    if (this.closedEarly) return callback();
    for (const w of this.threads) w.postMessage({ type: 'end', upTo: this.router.packets });
    this.whenDone = () => {
      this.whenDone = null;
      if (this.failure !== null) return callback(this.failure);
      if (this.closedEarly) return callback();
      this.finishOutput(callback);
    };
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    for (const w of this.threads) void w.terminate();
    if (this.recordsFd >= 0) {
      fs.closeSync(this.recordsFd);
      this.recordsFd = -1;
    }
    if (this.bytesOut !== null && !this.bytesOut.destroyed && err !== null) this.bytesOut.destroy();
    callback(err);
  }

  /** send posts every shard's batch of the packets routed since the last call. */
  private send(): void {
    for (let s = 0; s < this.workers; s++) {
      const b = this.router.take(s);
      this.threads[s]!.postMessage({ type: 'batch', batch: b }, [b.records.buffer as ArrayBuffer, b.bytes.buffer as ArrayBuffer]);
      this.inflight[s]!++;
    }
  }

  private blocked(): boolean {
    for (let s = 0; s < this.workers; s++) if (this.inflight[s]! > INFLIGHT) return true;
    return this.outWaiting > OUT_WAITING || (this.bytesOut !== null && this.bytesOut.writableNeedDrain);
  }

  private maybeRelease(): void {
    if (this.held === null || this.blocked()) return;
    const cb = this.held;
    this.held = null;
    cb(this.failure);
  }

  private message(s: number, m: WorkerMessage): void {
    if (this.failure !== null) return;
    switch (m.type) {
      case 'ack':
        this.inflight[s]!--;
        this.maybeRelease();
        return;
      case 'out':
        this.merge.add(s, m.bytes, m.ks, m.subs, m.ends, m.lowK, m.lowSub);
        this.drainMerge();
        return;
      case 'done':
        this.finals[s] = { reassembler: m.reassembler, sink: m.sink };
        if (this.finals.every((f) => f !== null)) {
          this.drainMerge();
          for (const w of this.threads) void w.terminate();
          this.whenDone?.();
        }
        return;
      case 'error':
        this.fail(new PcapflowError(m.code, m.message, m.file === undefined ? {} : { file: m.file }));
        return;
    }
  }

  /** drainMerge writes what the merge can release. */
  private drainMerge(): void {
    const views = this.views;
    // NDJSON: the buffers of the hand-overs released go back to their workers once written
    const finished: Array<number | Uint8Array> | undefined = this.bytesOut === null ? undefined : [];
    const bytes = this.merge.take(views, finished);
    if (views.length === 0) return;
    if (this.bytesOut !== null) {
      const list: ViewBatch = views.splice(0);
      this.outWaiting += bytes;
      // the hand-overs' buffers go back to their workers for their next lines, once written
      // (fresh memory costs a page fault per 4 KiB when first written)
      if (finished!.length > 0) list.written = () => this.giveBack(finished!);
      this.bytesOut.write(list, () => {
        this.outWaiting -= bytes;
        this.maybeRelease();
      });
      return;
    }
    try {
      for (const v of views) {
        let at = 0;
        while (at < v.length) at += fs.writeSync(this.recordsFd, v, at);
      }
    } catch (err) {
      this.fail(outputError(this.recordsPath!, err));
    }
    views.length = 0;
  }

  /** giveBack posts the buffers of `finished` (source, bytes pairs) back to their workers. */
  private giveBack(finished: Array<number | Uint8Array>): void {
    if (this.failure !== null || this.closedEarly) return;
    for (let i = 0; i < finished.length; i += 2) {
      const buf = (finished[i + 1] as Uint8Array).buffer as ArrayBuffer;
      if (buf.byteLength >= SPARE_MIN) this.threads[finished[i] as number]!.postMessage({ type: 'spare', buffer: buf }, [buf]);
    }
  }

  private finishOutput(callback: (error?: Error | null) => void): void {
    if (this.bytesOut !== null) {
      this.bytesOut.end((err?: Error | null) => callback(err ?? this.failure));
      return;
    }
    const fd = this.recordsFd;
    this.recordsFd = -1;
    fs.close(fd, (err) => callback(err ? outputError(this.recordsPath!, err) : null));
  }

  private fail(err: unknown): void {
    if (this.failure !== null) return;
    this.failure = err instanceof PcapflowError ? err : new PcapflowError('OUTPUT_FAILED', String((err as Error)?.message ?? err), { cause: err });
    const held = this.held;
    this.held = null;
    held?.(this.failure);
    const done = this.whenDone;
    if (done !== null) done();
    else if (held === null) this.destroy(this.failure);
  }
}

type WorkerMessage =
  | { type: 'ack' }
  | { type: 'out'; bytes: Uint8Array; ks: Float64Array; subs: Float64Array; ends: Uint32Array; lowK: number; lowSub: number }
  | { type: 'done'; reassembler: TcpReassemblerStats; sink: unknown }
  | { type: 'error'; code: ErrorCode; message: string; file?: string };

/** sumStats adds up counters key by key (numbers; nested objects of numbers too). */
function sumStats(list: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of list) {
    if (s === null || typeof s !== 'object') continue;
    for (const [k, v] of Object.entries(s)) {
      if (typeof v === 'number') out[k] = ((out[k] as number | undefined) ?? 0) + v;
      else if (v !== null && typeof v === 'object') out[k] = sumStats([(out[k] as Record<string, unknown>) ?? {}, v as Record<string, unknown>]);
    }
  }
  return out;
}

function outputError(file: string, err: unknown): PcapflowError {
  const code = (err as NodeJS.ErrnoException)?.code ?? String(err);
  return new PcapflowError('OUTPUT_FAILED', `cannot write ${file}: ${code}`, { file, cause: err });
}
