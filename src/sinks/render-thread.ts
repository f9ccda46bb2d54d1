import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { workerStarted } from '../heap.js';
import type { StreamEvent } from '../core/events.js';
import { dataJsonHead } from '../core/format.js';
import type { RawWrites } from './byte-sink.js';
import { SharedIndex } from './shared-index.js';

/**
 * RenderThread encodes the payloads of NDJSON data lines (base64 or hex) on a worker thread, so
 * that the main thread, which reads, decodes and reassembles, does not spend a third of its time
 * in the encoder and in copying its text.
 *
 * Per batch the main thread packs, into one transferred buffer: each data line's head (the JSON
 * before the payload), each other event's whole line, and the payload of any data event whose
 * bytes are not in a SharedArrayBuffer. A payload in a SharedArrayBuffer (a read chunk of
 * openCaptures' `sharedChunks`) is passed as its offset and length only, with no copy. The worker
 * writes the batch's text into a buffer it transfers back. Batches are answered in the order
 * posted. The text equals NdjsonSink's own rendering byte for byte (tested).
 */

/** Int32 fields per event in a job's descriptor: head/line position and length in `aux`, payload source, offset, length. */
const FIELDS = 5;
/** Payload source: none (the line is all in aux). */
const NO_PAYLOAD = -2;
/** Payload source: copied into aux. */
const IN_AUX = -1;

export interface RenderJob {
  aux: ArrayBuffer;
  desc: Int32Array;
  sabs: SharedArrayBuffer[];
  /** Buffers of earlier texts that nothing reads any more (see RenderThread.recycle). */
  spare: ArrayBuffer[];
}

/** Recycled text buffers kept (by each side) for later batches. */
const SPARE_MAX = 8;
/** The smallest text buffer the worker allocates, so that a recycled one fits most batches. */
const TEXT_MIN = 1 << 20;

/**
 * The worker's code: self-contained (it runs from its source text, as CommonJS), so it repeats
 * the descriptor layout (FIELDS, NO_PAYLOAD, IN_AUX), SPARE_MAX and TEXT_MIN as literals.
 */
function renderWorker(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const hex = (wt.workerData as { hex: boolean }).hex;
  const proto = Buffer.prototype as unknown as Record<'hexSlice' | 'base64Slice', (this: Uint8Array, s: number, e: number) => string>;
  const slice = hex ? proto.hexSlice : proto.base64Slice;
  const port = wt.parentPort!;
  const free: ArrayBuffer[] = [];
  port.on('message', (m: RenderJob) => {
    for (const b of m.spare) if (free.push(b) > 8) free.shift(); // SPARE_MAX
    const aux = new Uint8Array(m.aux);
    const srcs = m.sabs.map((s) => new Uint8Array(s));
    const d = m.desc;
    let size = 0;
    for (let i = 0; i < d.length; i += 5) {
      const n = d[i + 4]!;
      size += d[i + 1]! + (d[i + 2] === -2 ? 0 : (hex ? 2 * n : 4 * Math.ceil(n / 3)) + 3);
    }
    let out: Buffer | null = null;
    for (let i = 0; i < free.length; i++) {
      if (free[i]!.byteLength >= size) {
        out = Buffer.from(free.splice(i, 1)[0]!);
        break;
      }
    }
    out ??= Buffer.from(new ArrayBuffer(Math.max(size, 1 << 20))); // TEXT_MIN
    let at = 0;
    for (let i = 0; i < d.length; i += 5) {
      const pos = d[i]!;
      const len = d[i + 1]!;
      for (let j = 0; j < len; j++) out[at + j] = aux[pos + j]!;
      at += len;
      const src = d[i + 2]!;
      if (src === -2) continue;
      const off = d[i + 3]!;
      const text = slice.call(src === -1 ? aux : srcs[src]!, off, off + d[i + 4]!);
      at += (out as unknown as RawWrites).latin1Write(text, at, size - at);
      out[at++] = 0x22; // "}\n
      out[at++] = 0x7d;
      out[at++] = 0x0a;
    }
    const buf = out.buffer as ArrayBuffer;
    port.postMessage({ out: buf, len: at }, [buf]);
  });
}

export class RenderThread {
  private readonly worker: Worker;
  /** Handlers of the jobs posted and not answered, oldest first. */
  private readonly waiting: Array<(text: Uint8Array) => void> = [];
  private stopping = false;
  private failed = false;

  /** Text buffers given back (recycle) and not yet sent to the worker. */
  private spare: ArrayBuffer[] = [];

  /** `onFailure` is called once if the thread fails: an error in it, or its exit other than by stop(). */
  constructor(encoding: 'base64' | 'hex', onFailure: (err: Error) => void) {
    this.worker = new (workerThreads().Worker)(`(${renderWorker.toString()})()`, { eval: true, workerData: { hex: encoding === 'hex' } });
    workerStarted(this.worker);
    this.worker.unref();
    const fail = (err: Error): void => {
      if (this.failed || this.stopping) return;
      this.failed = true;
      onFailure(err);
    };
    this.worker.on('message', (m: { out: ArrayBuffer; len: number }) => {
      const done = this.waiting.shift();
      if (this.waiting.length === 0) this.worker.unref();
      done?.(new Uint8Array(m.out, 0, m.len));
    });
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`render thread exited with code ${code}`)));
  }

  /** render packs `batch` (`line` renders a non-data event's whole line) and posts it; `done` gets its text, in posting order. */
  render(batch: readonly StreamEvent[], line: (e: StreamEvent) => string, done: (text: Uint8Array) => void): void {
    const job = pack(batch, line, this.spare);
    this.spare = [];
    if (this.waiting.length === 0) this.worker.ref();
    this.waiting.push(done);
    this.worker.postMessage(job, [job.aux, job.desc.buffer as ArrayBuffer, ...job.spare]);
  }

  /**
   * recycle gives back a text this thread made once nothing reads it any more (the destination
   * wrote it): its memory goes back to the worker with the next batch, which writes a later text
   * into it. Without it every batch's text is a new buffer, and the dead ones wait for a
   * collection: 146 MB against 117 MB of peak RSS on a 1.6 GB capture. `text` is unusable after.
   */
  recycle(text: Uint8Array): void {
    const buf = text.buffer;
    if (this.stopping || this.spare.length >= SPARE_MAX || !(buf instanceof ArrayBuffer) || buf.byteLength < TEXT_MIN) return;
    this.spare.push(buf);
  }

  /** stop ends the thread (jobs still waiting are dropped). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.waiting.length = 0;
    await this.worker.terminate();
  }
}

/** Room kept free in `aux` for a data line's head (its numbers and time are far shorter). */
const HEAD_ROOM = 1024;

/** grow returns a bigger copy of `aux`'s first `at` bytes with at least `n` bytes free after them. */
function grow(aux: Buffer, at: number, n: number): Buffer {
  const bigger = Buffer.allocUnsafeSlow(Math.max(aux.length * 2, at + n + HEAD_ROOM));
  bigger.set(aux.subarray(0, at));
  return bigger;
}

/** pack builds a batch's job (see RenderThread). */
export function pack(batch: readonly StreamEvent[], line: (e: StreamEvent) => string, spare: ArrayBuffer[] = []): RenderJob {
  const desc = new Int32Array(batch.length * FIELDS);
  const shared = new SharedIndex();
  let aux: Buffer = Buffer.allocUnsafeSlow(batch.length * 128 + HEAD_ROOM);
  let at = 0;
  let k = 0;
  for (let i = 0; i < batch.length; i++, k += FIELDS) {
    const e = batch[i]!;
    const pos = at;
    if (e.type !== 'data') {
      const text = line(e);
      if (aux.length - at < text.length * 3) aux = grow(aux, at, text.length * 3);
      at += (aux as unknown as RawWrites).utf8Write(text, at, aux.length - at);
      desc[k] = pos;
      desc[k + 1] = at - pos;
      desc[k + 2] = NO_PAYLOAD;
      continue;
    }
    if (aux.length - at < HEAD_ROOM) aux = grow(aux, at, HEAD_ROOM);
    at += (aux as unknown as RawWrites).latin1Write(dataJsonHead(e), at, aux.length - at);
    const data = e.data;
    const s = shared.of(data.buffer);
    desc[k] = pos;
    desc[k + 1] = at - pos;
    desc[k + 4] = data.length;
    if (s >= 0) {
      desc[k + 2] = s;
      desc[k + 3] = data.byteOffset;
    } else {
      if (aux.length - at < data.length) aux = grow(aux, at, data.length);
      aux.set(data, at);
      desc[k + 2] = IN_AUX;
      desc[k + 3] = at;
      at += data.length;
    }
  }
  // aux came from allocUnsafeSlow: its own ArrayBuffer, starting at 0, transferred as a whole
  return { aux: aux.buffer as ArrayBuffer, desc, sabs: shared.list, spare };
}
