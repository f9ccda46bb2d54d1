import { PcapflowError } from '../core/errors.js';
import type { DataEvent, StreamEvent } from '../core/events.js';
import { dataJsonHead, ndjsonLine, PAYLOAD_ENCODINGS, PURE_ENCODERS, type PayloadEncoder, type PayloadEncoding } from '../core/format.js';
import { ByteSink, type ByteSinkOptions, type RawWrites } from './byte-sink.js';
import { RenderThread } from './render-thread.js';
import { TakenBound } from './shared-index.js';

export interface NdjsonSinkOptions extends ByteSinkOptions {
  /** How `data` carries the payload bytes: 'base64' (default), 'hex' or 'utf8' (lossy). */
  encoding?: PayloadEncoding;
  /**
   * Encode base64/hex payloads on a worker thread (RenderThread); the output is the same.
   * Payloads in SharedArrayBuffers (openCaptures' `sharedChunks`) reach it without a copy. The
   * thread starts once a window of `afterBytes` payload bytes (default 1 MiB) came with
   * `minAverage` payload bytes or more per event on average, every event counted (default 1024).
   * Default false; ignored for 'utf8'.
   * Written to Node's own streams (stdout, files, sockets), the texts' memory is reused.
   */
  renderThread?: boolean | { afterBytes?: number; minAverage?: number };
}

/**
 * Defaults of renderThread's afterBytes and minAverage: a tiny capture never starts the thread,
 * and on small segments (interactive traffic) packing each event for the thread costs about
 * what encoding it here does, so there it is not started either. Starting it costs about 0.1 s
 * of CPU, which inputs of 30-60 MB do not win back (1.10-1.23x their time): the CLI uses it by
 * default only for inputs of 128 MiB or more.
 */
const THREAD_AFTER = 1 << 20;
/**
 * Every event counts: short connections (an open and a close per 1-3 data events of ~1 KiB,
 * ~600 bytes per event) took 1.27x the time with the thread (2.18 s against 1.71 s, the bench's
 * `short`); full segments of long connections are ~1400 bytes per event.
 */
const THREAD_MIN_AVG = 1024;
/** Batches posted to the render thread and not yet taken by the destination, before the sink pushes back. */
const THREAD_INFLIGHT = 4;
/**
 * A batch whose payload bytes are fewer than this many per other event (open, close, gap,
 * overlap: their lines, 200-700 bytes, are rendered on the main thread either way) is rendered
 * on the main thread, after the batches posted before it were answered: the thread would only
 * copy its lines, and a SYN flood's batches (thousands of opens and closes, megabytes of text
 * each) held up to 100 MB in the thread's buffers (bench/PROFILE.md, "Sixth pass").
 */
const THREAD_MIN_PAYLOAD_PER_EVENT = 256;

/**
 * Buffer's own encoders, called on the event's Uint8Array as it is (they take any byte view), so
 * that no Buffer object is made per chunk. Same text as PURE_ENCODERS (tested).
 */
const bufferProto = Buffer.prototype as unknown as {
  base64Slice(this: Uint8Array, start: number, end: number): string;
  hexSlice(this: Uint8Array, start: number, end: number): string;
};
export const NATIVE_ENCODERS: Readonly<Record<PayloadEncoding, PayloadEncoder>> = {
  base64: (d) => bufferProto.base64Slice.call(d, 0, d.length),
  hex: (d) => bufferProto.hexSlice.call(d, 0, d.length),
  utf8: PURE_ENCODERS.utf8,
};

const EMPTY_BUFFER = Buffer.alloc(0);

/** Bytes of output a data event's text takes at most besides its encoded payload (header, quotes, newline). */
const DATA_LINE_OVERHEAD = 160;

/**
 * NdjsonSink writes one JSON object per event per line, in the order received; each batch's lines
 * are joined and written with one write(), so a line is never split between writes. Backpressure,
 * EPIPE (`closedEarly`) and OUTPUT_FAILED are ByteSink's. A batch is rendered into one Buffer:
 * a data line's fixed part and its encoded payload are copied into it as they are made, so
 * no string the size of the batch is ever built. Throws PcapflowError INVALID_OPTION
 * for an unknown encoding.
 *
 * Lines, by `type` (field names are those of src/core/events.ts; `ts` is always a string of
 * seconds with 9 decimals, so no precision is lost; fields always appear in this order):
 *
 *   {"type":"open","conn":0,"ts":"1258544215.037210000",
 *    "client":{"ip":"10.0.0.1","port":43210},"server":{"ip":"10.0.0.2","port":80},
 *    "vlan":[],"midstream":false,"options":{"c2s":{"mss":1460,"wscale":7,"sackPermitted":true},"s2c":{}}}
 *      conn: connection number from 0 (tshark's tcp.stream); vlan: VLAN ids, outermost first;
 *      midstream: the SYN was not seen; options: TCP options seen per direction (absent = not seen).
 *   {"type":"data","conn":0,"dir":"c2s","offset":0,"ts":"...","len":78,"data":"R0VUIC8g..."}
 *      dir: "c2s" (client to server) or "s2c"; offset: stream offset of the first byte (0 = first
 *      byte after the SYN); len: number of bytes; data: the bytes in the chosen encoding.
 *   {"type":"gap","conn":0,"dir":"s2c","offset":1448,"len":1448,"ts":"...","reason":"acked"}
 *      bytes [offset, offset+len) were never captured; reason: fin|rst|idle|eof|evicted|limit|acked|truncated.
 *   {"type":"overlap","conn":0,"dir":"c2s","offset":10,"len":4,"ts":"...","kept":"first"}
 *      a retransmission carried different bytes for [offset, offset+len); kept: "first" or "last".
 *   {"type":"close","conn":0,"ts":"...","reason":"fin","client":{...},"server":{...},"vlan":[],
 *    "c2s":{"bytes":78,"packets":5,"retransmitted":0,"outOfOrder":0,"gaps":0,"missing":0,"overlaps":0,
 *           "firstTs":"...","lastTs":"..."},"s2c":{...}}
 *      reason: fin|rst|idle|eof|evicted; per direction: bytes delivered, segments seen,
 *      retransmitted and out-of-order segments, gaps and missing bytes, overlaps, first/last
 *      segment time (null when none).
 *
 * Getting one stream back: the default base64 `data` of each chunk is padded on its own, and GNU
 * coreutils `base64 -d` decodes such padded chunks one per line as one stream (tested with
 * coreutils 9.1 in test/ndjson-sink.test.ts), so
 *   jq -r 'select(.type=="data" and .conn==3 and .dir=="c2s") | .data' | base64 -d
 * gives the stream. Decoders that stop at the first `=` (some BSD and busybox builds) do not; use
 * `--encoding hex` and `xxd -r -p` there, which has no padding at all.
 */
export class NdjsonSink extends ByteSink {
  readonly encoding: PayloadEncoding;
  private readonly encode: PayloadEncoder;
  /** Renders the batches rendered on this thread. */
  private readonly lines: NdjsonLines;
  private readonly useThread: boolean;
  private readonly threadAfter: number;
  private readonly threadMinAvg: number;
  /** Payload bytes and data events of the current window while the thread is not started. */
  private unthreaded = 0;
  private unthreadedEvents = 0;
  private thread: RenderThread | null = null;
  private started = false;
  private threadFailure: PcapflowError | null = null;
  /** Batches posted to the thread whose text the destination has not taken yet. */
  private inflight = 0;
  /** The callback of the batch that filled the window, and settle's. */
  private held: ((error?: Error | null) => void) | null = null;
  /** A batch to render here once the batches posted before it are answered (see payloadLight). */
  private light: { batch: readonly StreamEvent[]; callback: (error?: Error | null) => void } | null = null;
  private settled: ((error?: Error | null) => void) | null = null;
  private readonly lineOf = (e: StreamEvent): string => ndjsonLine(e, this.encode);
  /** Batches posted to the render thread and not answered yet, oldest first: it reads their payloads. */
  private readonly posted: Array<readonly StreamEvent[]> = [];
  /** Bounds the chunks of the data on its way here (see heldFrom). */
  private readonly taken = new TakenBound();

  constructor(options: NdjsonSinkOptions = {}) {
    const encoding = options.encoding ?? 'base64';
    if (!PAYLOAD_ENCODINGS.includes(encoding)) {
      throw new PcapflowError('INVALID_OPTION', `unknown encoding ${JSON.stringify(encoding)}: use base64, hex or utf8`);
    }
    super(options);
    this.encoding = encoding;
    this.encode = NATIVE_ENCODERS[encoding];
    this.lines = new NdjsonLines(encoding);
    const rt = options.renderThread ?? false;
    this.useThread = rt !== false && encoding !== 'utf8';
    this.threadAfter = (typeof rt === 'object' ? rt.afterBytes : undefined) ?? THREAD_AFTER;
    this.threadMinAvg = (typeof rt === 'object' ? rt.minAverage : undefined) ?? THREAD_MIN_AVG;
  }

  /**
   * True while the render thread runs: payloads in SharedArrayBuffers then reach it without a
   * copy (a source may read into them only then: see openCaptures' `sharedChunks.when`).
   */
  get wantsSharedChunks(): boolean {
    return this.thread !== null;
  }

  /** True once batches went to the render thread. */
  get threaded(): boolean {
    return this.started;
  }

  /** Batches rendered by the render thread (the others, here). */
  batchesOnThread = 0;

  /**
   * heldFrom tells a pool of read chunks which it may refill: the lowest `rank` (Infinity for a
   * buffer that is no read chunk) among the chunks that the render thread still reads payloads
   * of (batches posted and not answered), and of the last data taken. Like FilesSink.heldFrom it
   * relies on data views arriving in read order (the reassembler's plain chunking): a chunk
   * ranked below the last data taken has no data in transit to the sink either. Batches
   * rendered here are copied into their text at once and hold nothing.
   */
  heldFrom(rank: (buf: ArrayBufferLike) => number): number {
    let min = this.taken.lowest(rank);
    for (let i = 0; i < this.posted.length; i++) {
      const r = firstDataRank(this.posted[i]!, rank);
      if (r < min) min = r;
    }
    return min;
  }

  protected override writeBatch(batch: readonly StreamEvent[], callback: (error?: Error | null) => void): void {
    for (let i = batch.length - 1; i >= 0; i--) {
      const e = batch[i]!;
      if (e.type === 'data') {
        this.taken.took(e.data.buffer);
        break;
      }
    }
    if (!this.started && !this.startThread(batch)) return super.writeBatch(batch, callback);
    const thread = this.thread;
    if (this.threadFailure !== null || thread === null) return callback(this.threadFailure ?? new PcapflowError('OUTPUT_FAILED', 'NDJSON render thread already stopped'));
    if (payloadLight(batch)) {
      // rendered here once every batch posted was answered, so that its text follows theirs
      if (this.posted.length === 0) return super.writeBatch(batch, callback);
      this.light = { batch, callback };
      return;
    }
    try {
      thread.render(batch, this.lineOf, (text) => {
        this.posted.shift();
        this.writeText(text, (err) => this.written(err), this.destReleases ? () => thread.recycle(text) : undefined);
        const light = this.light;
        if (light !== null && this.posted.length === 0) {
          this.light = null;
          super.writeBatch(light.batch, light.callback);
        }
      });
    } catch (err) {
      return callback(err as Error);
    }
    this.posted.push(batch);
    this.batchesOnThread++;
    this.inflight++;
    if (this.inflight < THREAD_INFLIGHT) callback();
    else this.held = callback;
  }

  protected override settle(callback: (error?: Error | null) => void): void {
    if (this.thread === null) return callback();
    this.settled = callback;
    this.release();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const thread = this.thread;
    if (thread === null) return super._destroy(err, callback);
    this.thread = null;
    thread.stop().then(
      () => super._destroy(err, callback),
      () => super._destroy(err, callback),
    );
  }

  /** startThread starts the render thread once enough payload went by; true when it runs. */
  private startThread(batch: readonly StreamEvent[]): boolean {
    if (!this.useThread) return false;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      if (e.type === 'data') this.unthreaded += e.data.length;
    }
    this.unthreadedEvents += batch.length;
    if (this.unthreaded < this.threadAfter) return false;
    const avg = this.unthreadedEvents === 0 ? 0 : this.unthreaded / this.unthreadedEvents;
    this.unthreaded = 0;
    this.unthreadedEvents = 0;
    if (avg < this.threadMinAvg) return false;
    this.started = true;
    this.thread = new RenderThread(this.encoding as 'base64' | 'hex', (err) => {
      this.threadFailure = new PcapflowError('OUTPUT_FAILED', `NDJSON render thread failed: ${err.message}`, { cause: err });
      this.release();
    });
    return true;
  }

  /** written: the destination took a batch of the thread's. */
  private written(err?: Error | null): void {
    if (err && this.threadFailure === null) this.threadFailure = err as PcapflowError;
    this.inflight--;
    this.release();
  }

  /** release lets the held batch go once the window has room, and settle once nothing is in flight. */
  private release(): void {
    const failure = this.threadFailure;
    if (failure !== null && this.light !== null) {
      const light = this.light;
      this.light = null;
      light.callback(failure);
    }
    if (this.held !== null && (this.inflight < THREAD_INFLIGHT || failure !== null)) {
      const held = this.held;
      this.held = null;
      held(failure);
    }
    if (this.settled !== null && (this.inflight === 0 || failure !== null)) {
      const settled = this.settled;
      this.settled = null;
      const thread = this.thread;
      this.thread = null;
      const done = (): void => settled(failure);
      if (thread === null) done();
      else thread.stop().then(done, done);
    }
  }

  protected override render(batch: readonly StreamEvent[]): Buffer {
    const lines = this.lines;
    lines.begin(lines.estimate(batch));
    for (let i = 0; i < batch.length; i++) lines.line(batch[i]!);
    return lines.take();
  }
}

/** payloadLight: the batch's payload is small beside its other events' lines (see THREAD_MIN_PAYLOAD_PER_EVENT). */
function payloadLight(batch: readonly StreamEvent[]): boolean {
  let payload = 0;
  let others = 0;
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i]!;
    if (e.type === 'data') payload += e.data.length;
    else others++;
  }
  return payload < others * THREAD_MIN_PAYLOAD_PER_EVENT;
}

/** firstDataRank: the rank of the first data event's buffer in `batch` that has one (Infinity when none). */
function firstDataRank(batch: readonly StreamEvent[], rank: (buf: ArrayBufferLike) => number): number {
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i]!;
    if (e.type !== 'data') continue;
    const r = rank(e.data.buffer);
    if (r !== Infinity) return r;
  }
  return Infinity;
}

/**
 * NdjsonLines renders events as NDJSON lines into one Buffer (NdjsonSink's rendering; a shard
 * worker's too): a data line's fixed part and its encoded payload are copied in as they are
 * made, so no string the size of the batch is ever built. `begin`, then `line` per event (`at`
 * is the end of the lines so far), then `take`.
 */
export class NdjsonLines {
  out: Buffer = EMPTY_BUFFER;
  at = 0;
  private readonly encoding: PayloadEncoding;
  private readonly encode: PayloadEncoder;
  private readonly perByte: number;

  constructor(encoding: PayloadEncoding) {
    this.encoding = encoding;
    this.encode = NATIVE_ENCODERS[encoding];
    this.perByte = encoding === 'base64' ? 4 / 3 : encoding === 'hex' ? 2 : 6;
  }

  /** estimate: the bytes the lines of `batch` take, about (a short estimate costs a copy). */
  estimate(batch: readonly StreamEvent[]): number {
    let size = 0;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      // a close line is ~520 bytes, an open line ~280 (IPv4)
      size += e.type === 'data' ? DATA_LINE_OVERHEAD + Math.ceil(e.data.length * this.perByte) + 4 : e.type === 'close' ? 768 : 384;
    }
    return size;
  }

  /** Whether every Buffer is one of its own memory (transferable): see begin. */
  private own = false;

  /** begin starts a new Buffer of `size` bytes, not zeroed; `own`: of its own memory (allocUnsafeSlow), so that it can be transferred to another thread; or `reuse` (of `size` bytes or more). */
  begin(size: number, own = false, reuse?: ArrayBuffer): void {
    this.own = own;
    this.out = reuse !== undefined && reuse.byteLength >= size ? Buffer.from(reuse) : own ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
    this.at = 0;
  }

  /** line appends the line of `e`. */
  line(e: StreamEvent): void {
    if (e.type === 'data') this.dataLine(e);
    else this.put(ndjsonLine(e, this.encode));
  }

  /** take: the lines since begin (a view of the Buffer). */
  take(): Buffer {
    const out = this.out;
    this.out = EMPTY_BUFFER;
    return out.subarray(0, this.at);
  }

  private dataLine(e: DataEvent): void {
    this.put(dataJsonHead(e));
    if (this.encoding === 'utf8') this.put(this.encode(e.data));
    else this.putAscii(this.encode(e.data));
    if (this.out.length - this.at < 3) this.room(3);
    const out = this.out;
    out[this.at] = 0x22; // "}\n
    out[this.at + 1] = 0x7d;
    out[this.at + 2] = 0x0a;
    this.at += 3;
  }

  /** put appends text as UTF-8. */
  private put(text: string): void {
    const room = this.out.length - this.at;
    if (text.length * 3 > room) this.room(Buffer.byteLength(text));
    this.at += (this.out as unknown as RawWrites).utf8Write(text, this.at, this.out.length - this.at);
  }

  /** putAscii appends text known to be ASCII (base64, hex): a plain copy. */
  private putAscii(text: string): void {
    if (text.length > this.out.length - this.at) this.room(text.length);
    this.at += (this.out as unknown as RawWrites).latin1Write(text, this.at, this.out.length - this.at);
  }

  /** room makes room for n more bytes (the estimate fell short: a long utf8 escape, a big open event). */
  private room(n: number): void {
    if (n <= this.out.length - this.at) return;
    const size = Math.max(this.out.length * 2, this.at + n + 1024);
    const bigger = this.own ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
    this.out.copy(bigger, 0, 0, this.at);
    this.out = bigger;
  }
}
