/**
 * http-decode: Content-Encoding decoding of HTTP bodies with node:zlib (issue 15, item 4), after
 * the HttpParser. HttpBodyDecoder takes `HttpEvent[]` and gives them back with, for each body
 * whose Content-Encoding it decodes, `http_decoded` events (the decoded bytes as they come, at
 * their offset in the decoded body) before that message's `http_end`, whose `decoded` then says
 * how it went. HttpDecodeTransform is it as an object-mode Transform.
 *
 * Codings: gzip and x-gzip, deflate (zlib-wrapped or raw, told by the first two bytes), br, and
 * stacks of them (`Content-Encoding: gzip, br` is undone br first). Anything else (zstd, which
 * Node 20's zlib lacks; compress) is not decoded: `decoded.error` says so and the wire body is
 * what there is. A body with bytes missing (a gap) is decoded up to the gap: what follows cannot
 * be (`error: 'gap'`). A corrupt stream keeps what decoded before the fault, with zlib's reason.
 *
 * Bombs: decoding stops at `maxBodyBytes` decoded bytes per body (default 64 MiB) or when the
 * decoded bytes pass `maxRatio` times the wire bytes after the first MiB (default 1000), and
 * `decoded.capped` records which. Memory: zlib's state per body being decoded; decoded bytes are
 * passed on, never held.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { BrotliDecompress, Gunzip, Inflate, InflateRaw } from 'node:zlib';
import { zlib } from '../builtins.js';
import { contentCodings, type HttpEvent } from '../core/http.js';

export interface HttpDecodeOptions {
  /** Decoded bytes per body, at most. Default 64 MiB. */
  maxBodyBytes?: number;
  /** Decoded bytes per wire byte, at most, once a body has decoded 1 MiB. Default 1000. */
  maxRatio?: number;
  /**
   * Bodies decoding at once, at most (each holds a zlib or brotli state, DECODER_COST reckoned):
   * the memory budget's share. A body that begins past it is not decoded (`decodeError` says why; its
   * wire bytes are kept). Default 256.
   */
  maxActive?: number;
}

/** What one decoding body is reckoned to hold (zlib's 32 KiB window and its state; brotli's ring buffer as it grows): maxActive = a share / this. */
export const DECODER_COST = 64 * 1024;

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_RATIO = 1000;
const RATIO_FROM = 1024 * 1024;

type Engine = Gunzip | Inflate | InflateRaw | BrotliDecompress;

/** One decoding step of a chain: its engine is made on the first bytes (deflate needs to see them). */
class Step {
  engine: Engine | null = null;
  /** deflate: a first byte held until the second comes (the two tell zlib-wrapped from raw). */
  pending: Buffer | null = null;
  constructor(readonly coding: string) {}
}

class Decoding {
  steps: Step[];
  wire = 0;
  decoded = 0;
  error: string | null = null;
  capped: 'bytes' | 'ratio' | null = null;
  /** Counted in HttpBodyDecoder's bodies decoding at once. */
  counted = false;
  constructor(codings: string[]) {
    this.steps = codings.map((c) => new Step(c));
  }

  /** close frees the engines (zlib's state). */
  close(): void {
    for (const s of this.steps) s.engine?.close();
  }
}

/** decodedInto: where `feed` puts the decoded bytes of `e`'s message: `http_decoded` events in `out`. */
function decodedInto(out: HttpEvent[], e: { conn: number; dir: 'c2s' | 's2c'; seq: number; ts: string }, d: Decoding): (chunk: Buffer) => void {
  return (chunk) => out.push({ type: 'http_decoded', conn: e.conn, dir: e.dir, seq: e.seq, ts: e.ts, offset: d.decoded - chunk.length, data: chunk });
}

const SUPPORTED = new Set(['gzip', 'x-gzip', 'deflate', 'br']);

/** encodedHead: is `e` a message head with a Content-Encoding? */
function encodedHead(e: HttpEvent): boolean {
  return (e.type === 'http_request' || e.type === 'http_response') && contentCodings(e.headers).length > 0;
}

/** HttpBodyDecoder: see the file comment. `process` runs one batch; batches must not overlap. */
export class HttpBodyDecoder {
  readonly stats = { decodedBodies: 0, decodedBytes: 0, decodeErrors: 0, capped: 0 };
  private readonly maxBodyBytes: number;
  private readonly maxRatio: number;
  private readonly maxActive: number;
  private readonly active = new Map<string, Decoding>();
  /** Bodies decoding now (counted: not refused at their head). */
  private decoding = 0;

  constructor(options: HttpDecodeOptions = {}) {
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.maxRatio = options.maxRatio ?? DEFAULT_MAX_RATIO;
    this.maxActive = Math.max(1, options.maxActive ?? 256);
  }

  /** forget ends the decoding of the message `key`: its engines freed, its place counted back. */
  private forget(key: string, d: Decoding): void {
    d.close();
    this.active.delete(key);
    if (d.counted) this.decoding--;
  }

  async process(events: readonly HttpEvent[]): Promise<readonly HttpEvent[]> {
    if (this.active.size === 0 && !events.some(encodedHead)) return events; // nothing to decode: the batch as it came
    const out: HttpEvent[] = [];
    for (const e of events) {
      if (e.type === 'http_request' || e.type === 'http_response') {
        const codings = contentCodings(e.headers).reverse(); // applied first to last: undone last to first
        if (codings.length > 0) {
          const d = new Decoding(codings);
          const unknown = codings.find((c) => !SUPPORTED.has(c));
          if (unknown !== undefined) d.error = `unsupported Content-Encoding ${unknown}`;
          else if (this.decoding >= this.maxActive) d.error = `not decoded: ${this.maxActive} bodies decoding at once (the memory budget's share)`;
          else d.counted = true;
          if (d.counted) this.decoding++;
          this.active.set(`${e.conn} ${e.dir} ${e.seq}`, d);
        }
        out.push(e);
      } else if (e.type === 'http_body') {
        out.push(e);
        if (this.active.size === 0) continue;
        const d = this.active.get(`${e.conn} ${e.dir} ${e.seq}`);
        if (d === undefined || d.error !== null || d.capped !== null) continue;
        if (e.offset !== d.wire) {
          d.error = 'gap';
          continue;
        }
        d.wire += e.data.length;
        await this.feed(d, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength), false, decodedInto(out, e, d));
      } else if (e.type === 'http_end') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        const d = this.active.get(key);
        if (d !== undefined) {
          if (d.error === null && d.capped === null) {
            if (e.missing > 0) d.error = 'gap';
            else await this.feed(d, Buffer.alloc(0), true, decodedInto(out, e, d));
          }
          this.forget(key, d);
          this.stats.decodedBodies++;
          if (d.error !== null) this.stats.decodeErrors++;
          if (d.capped !== null) this.stats.capped++;
          out.push({ ...e, decoded: { codings: d.steps.map((s) => s.coding).reverse(), bytes: d.decoded, error: d.error, capped: d.capped } });
          continue;
        }
        out.push(e);
      } else if (e.type === 'http_close') {
        for (const [key, d] of this.active) if (key.startsWith(`${e.conn} `)) this.forget(key, d);
        out.push(e);
      } else out.push(e);
    }
    return out;
  }

  /** feed runs `input` through the steps in turn; `emit` gets the last step's output, counted and capped. */
  private async feed(d: Decoding, input: Buffer, last: boolean, emit: (chunk: Buffer) => void): Promise<void> {
    let data = [input];
    try {
      for (const step of d.steps) {
        const next: Buffer[] = [];
        for (const piece of data) next.push(...(await run(step, piece, last)));
        if (last) next.push(...(await finish(step)));
        data = next;
      }
    } catch (err) {
      d.error = err instanceof Error ? err.message : String(err);
      return;
    }
    for (const chunk of data) {
      if (chunk.length === 0) continue;
      let c = chunk;
      if (d.decoded + c.length > this.maxBodyBytes) {
        c = c.subarray(0, this.maxBodyBytes - d.decoded);
        d.capped = 'bytes';
      }
      if (d.decoded + c.length > RATIO_FROM && d.decoded + c.length > d.wire * this.maxRatio) {
        d.capped = 'ratio';
        c = c.subarray(0, Math.max(0, Math.min(c.length, RATIO_FROM - d.decoded)));
      }
      d.decoded += c.length;
      this.stats.decodedBytes += c.length;
      if (c.length > 0) emit(c);
      if (d.capped !== null) return;
    }
  }
}

function engineFor(step: Step, first: Buffer): Engine {
  const z = zlib();
  if (step.coding === 'br') return z.createBrotliDecompress();
  if (step.coding === 'deflate') {
    // RFC 9110's deflate is zlib-wrapped; many servers send it raw
    const wrapped = first.length >= 2 && (first[0]! & 0x0f) === 8 && ((first[0]! << 8) | first[1]!) % 31 === 0;
    return wrapped ? z.createInflate() : z.createInflateRaw();
  }
  return z.createGunzip();
}

/** run writes `piece` to the step's engine and resolves with what it gave once flushed. */
function run(step: Step, piece: Buffer, last: boolean): Promise<Buffer[]> {
  if (step.engine === null && step.pending !== null) {
    piece = Buffer.concat([step.pending, piece]);
    step.pending = null;
  }
  if (piece.length === 0) return Promise.resolve([]);
  if (step.engine === null && step.coding === 'deflate' && piece.length < 2 && !last) {
    step.pending = piece;
    return Promise.resolve([]);
  }
  if (step.engine === null) step.engine = engineFor(step, piece);
  const engine = step.engine;
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const onData = (c: Buffer): void => void got.push(c);
    const onError = (err: Error): void => {
      engine.removeListener('data', onData);
      reject(err);
    };
    engine.on('data', onData);
    engine.once('error', onError);
    engine.write(piece);
    const z = zlib();
    const flush = step.coding === 'br' ? z.constants.BROTLI_OPERATION_FLUSH : z.constants.Z_SYNC_FLUSH;
    engine.flush(flush, () => {
      engine.removeListener('data', onData);
      engine.removeListener('error', onError);
      resolve(got);
    });
  });
}

/** finish ends the step's engine and resolves with its last output (rejects on a stream cut short). */
async function finish(step: Step): Promise<Buffer[]> {
  const held = step.pending !== null ? await run(step, Buffer.alloc(0), true) : [];
  const engine = step.engine;
  if (engine === null) return held;
  const rest = await new Promise<Buffer[]>((resolve, reject) => {
    const got: Buffer[] = [];
    engine.on('data', (c: Buffer) => void got.push(c));
    engine.once('error', reject);
    engine.once('end', () => resolve(got));
    engine.end();
  });
  return [...held, ...rest];
}

/** HttpDecodeTransform: HttpBodyDecoder as an object-mode Transform, `HttpEvent[]` in and out. */
export class HttpDecodeTransform extends Transform {
  readonly core: HttpBodyDecoder;
  constructor(options: HttpDecodeOptions = {}) {
    super({ objectMode: true, highWaterMark: 4 });
    this.core = new HttpBodyDecoder(options);
  }

  override _transform(batch: HttpEvent[], _enc: BufferEncoding, callback: TransformCallback): void {
    this.core.process(batch).then(
      (out) => {
        if (out.length > 0) this.push(out);
        callback();
      },
      (err: unknown) => callback(err as Error),
    );
  }
}
