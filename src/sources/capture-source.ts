import { createReadStream } from 'node:fs';
import { addAbortSignal, Readable } from 'node:stream';
import { type CaptureFormat, CaptureReader } from '../core/capture-reader.js';
import { isPcapflowError, PcapflowError } from '../core/errors.js';
import type { Packet, PacketPool } from '../core/packet.js';
import type { ChunkPool } from './chunk-pool.js';
import { type SharedChunksCollect, SharedFileStream } from './shared-file-stream.js';

/**
 * Bytes asked of the file system per read. Every packet, and every in-order data event, is in the
 * chunk it was read in, and one view held on (pending in a sink, kept for overlap checks) keeps
 * its whole chunk alive: 512 KiB chunks held peak RSS on a capture of small segments at ~140 MB
 * where 1 MiB chunks took ~165 MB, at the same speed (1 MiB is no faster on large segments).
 */
export const READ_SIZE = 1 << 19;

/** Default of sharedChunks' collectEvery: peak RSS as without shared chunks on the bench captures (measured). */
export const COLLECT_EVERY = 32 << 20;

export interface OpenCapturesOptions {
  /** The stream read for the input `-`. Default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** Opens a path (tests inject a spy). Default fs.createReadStream. */
  openFile?: (path: string, options: { highWaterMark: number }) => NodeJS.ReadableStream;
  /**
   * Read files into SharedArrayBuffer chunks (SharedFileStream), so that the packets' bytes can
   * go to a worker thread without a copy (NdjsonSink's renderThread, FilesSink's writeThread).
   * Default false. Ignored with openFile and for stdin. With `collect`, that full collection
   * runs every `collectEvery` bytes of chunks (default 32 MiB); with `when`, a chunk is shared
   * only when `when()` says so at its read; with `pool`, shared chunks come from that ChunkPool
   * (see SharedFileStream).
   */
  sharedChunks?: boolean | { collect?: () => void; collectEvery?: number; when?: () => boolean; pool?: ChunkPool };
  /** Bytes per file read. Default 512 KiB. */
  readSize?: number;
  /** Batches held by the source before it stops reading. Default 4. */
  highWaterMark?: number;
  /** Index of the first packet of the first input. Default 1. */
  firstIndex?: number;
  /** Passed to every CaptureReader. */
  strictSnaplen?: boolean;
  maxBatch?: number;
  /** Given to every CaptureReader: packets come from it (see PacketPool). */
  pool?: PacketPool;
  /** Aborting destroys the source (with an AbortError) and closes the open input. */
  signal?: AbortSignal;
}

/** InputStats: what the source did with one input. */
export interface InputStats {
  /** The name as given (`-` for stdin). */
  file: string;
  /** pending: not reached yet; reading; done: read to the end; failed: the source stopped on it. */
  state: 'pending' | 'reading' | 'done' | 'failed';
  /** Index of this input's first packet. */
  firstIndex: number;
  packets: number;
  /** Bytes of this input parsed. */
  bytes: number;
  format: CaptureFormat | null;
  linkTypes: number[];
  sections: number;
  interfaces: number;
  blocksSkipped: number;
  /** pcapng blocks skipped because they were corrupt (CaptureReaderStats.badBlocks). */
  badBlocks: number;
}

interface Current {
  name: string;
  stream: Readable;
  reader: CaptureReader;
  stats: InputStats;
  ended: boolean;
  isStdin: boolean;
  onReadable: () => void;
  onEnd: () => void;
  onError: (err: Error) => void;
}

const ignore = (): void => undefined;

const NOT_FOUND = new Set(['ENOENT', 'EACCES', 'EPERM', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

/**
 * CaptureSource: an object-mode Readable of `Packet[]` batches read from several capture inputs,
 * one after another in the order given. Each input gets its own CaptureReader whose numbering
 * continues the previous one's. It pulls: a chunk is read from the current input only when the
 * consumer wants more batches, so the bytes read ahead stay within the file stream's buffer
 * (`readSize`) plus `highWaterMark` batches. `destroy()` (or the abort signal) closes the open
 * file. Errors: the reader's PcapflowError (tagged with the input name), INPUT_NOT_FOUND for a
 * path that cannot be opened, INPUT_READ_FAILED for another read error.
 */
export class CaptureSource extends Readable {
  private readonly names: string[];
  private readonly options: OpenCapturesOptions;
  private readonly stats: InputStats[];
  private nextInput = 0;
  private nextIndex: number;
  private cur: Current | null = null;
  /** The collection schedule shared by the inputs read into shared chunks (sharedChunks.collect). */
  private collect: SharedChunksCollect | null = null;
  private wantMore = false;
  private failure: Error | null = null;
  private pumping = false;
  private readonly pushBatch: (batch: Packet[]) => void;

  constructor(inputs: string[], options: OpenCapturesOptions = {}) {
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? 4 });
    this.names = [...inputs];
    this.options = options;
    this.nextIndex = options.firstIndex ?? 1;
    this.stats = this.names.map((file) => ({ file, state: 'pending', firstIndex: 0, packets: 0, bytes: 0, format: null, linkTypes: [], sections: 0, interfaces: 0, blocksSkipped: 0, badBlocks: 0 }));
    this.pushBatch = (batch: Packet[]) => {
      if (!this.push(batch)) this.wantMore = false;
    };
    if (options.signal) addAbortSignal(options.signal, this);
  }

  /** Per-input statistics, in input order (a snapshot). */
  inputStats(): InputStats[] {
    if (this.cur) this.syncStats(this.cur);
    return this.stats.map((s) => ({ ...s, linkTypes: [...s.linkTypes] }));
  }

  override _read(): void {
    this.wantMore = true;
    this.pump();
  }

  /**
   * read: Readable's own, plus the deferred failure. A fault found while batches before it are
   * still buffered destroys the source only once the consumer has read them all (destroying at
   * once would drop them).
   */
  override read(size?: number): Packet[] | null {
    const out = super.read(size) as Packet[] | null;
    if (this.failure !== null && this.readableLength === 0) this.failNow();
    return out;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const cur = this.cur;
    if (cur) {
      this.syncStats(cur);
      if (err) cur.stats.state = 'failed';
      this.release(cur, true);
    }
    callback(err);
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.wantMore && this.failure === null && !this.destroyed) {
        const cur = this.cur ?? this.openNext();
        if (cur === null) {
          this.push(null);
          return;
        }
        const chunk = cur.stream.read() as Buffer | string | null;
        if (chunk === null) {
          if (!cur.ended) return; // 'readable' or 'end' calls pump again
          this.finish(cur);
          continue;
        }
        cur.reader.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, this.pushBatch);
      }
    } catch (err) {
      this.fail(this.tag(err));
    } finally {
      this.pumping = false;
    }
  }

  /** fail stops reading (closing the input) and errors the source once the batches before the fault are read. */
  private fail(err: Error): void {
    if (this.failure !== null || this.destroyed) return;
    this.failure = err;
    this.wantMore = false;
    const cur = this.cur;
    if (cur) {
      this.syncStats(cur);
      cur.stats.state = 'failed';
      this.release(cur, true);
    }
    if (this.readableLength === 0) this.failNow();
  }

  private failNow(): void {
    const err = this.failure;
    if (err === null || this.destroyed) return;
    process.nextTick(() => this.destroy(err));
  }

  private openNext(): Current | null {
    if (this.nextInput >= this.names.length) return null;
    const i = this.nextInput++;
    const name = this.names[i] as string;
    const stats = this.stats[i] as InputStats;
    const isStdin = name === '-';
    const readSize = this.options.readSize ?? READ_SIZE;
    const stream = (isStdin ? (this.options.stdin ?? process.stdin) : this.openFile(name, readSize)) as Readable;
    const reader = new CaptureReader({ file: name, firstIndex: this.nextIndex, strictSnaplen: this.options.strictSnaplen, maxBatch: this.options.maxBatch, pool: this.options.pool });
    stats.state = 'reading';
    stats.firstIndex = this.nextIndex;
    const cur: Current = {
      name,
      stream,
      reader,
      stats,
      ended: stream.readableEnded === true,
      isStdin,
      onReadable: () => this.pump(),
      onEnd: () => {
        cur.ended = true;
        this.pump();
      },
      onError: (err: Error) => this.fail(this.readError(err, name)),
    };
    stream.on('readable', cur.onReadable);
    stream.on('end', cur.onEnd);
    stream.on('error', cur.onError);
    this.cur = cur;
    return cur;
  }

  private openFile(name: string, readSize: number): NodeJS.ReadableStream {
    if (this.options.openFile) return this.options.openFile(name, { highWaterMark: readSize });
    const shared = this.options.sharedChunks ?? false;
    if (shared === true) return new SharedFileStream(name, readSize);
    if (shared !== false) {
      if (this.collect === null && shared.collect !== undefined) this.collect = { run: shared.collect, every: shared.collectEvery ?? COLLECT_EVERY, since: 0 };
      const collect = this.collect ?? undefined;
      return new SharedFileStream(name, readSize, { collect, ...(shared.when === undefined ? {} : { when: shared.when }), ...(shared.pool === undefined ? {} : { pool: shared.pool }) });
    }
    return createReadStream(name, { highWaterMark: readSize });
  }

  /** finish ends the current input's reader (which throws on a record cut short) and moves on. */
  private finish(cur: Current): void {
    cur.reader.end(this.pushBatch);
    this.syncStats(cur);
    cur.stats.state = 'done';
    this.nextIndex = cur.reader.nextIndex;
    this.release(cur, false);
  }

  private release(cur: Current, destroy: boolean): void {
    cur.stream.removeListener('readable', cur.onReadable);
    cur.stream.removeListener('end', cur.onEnd);
    cur.stream.removeListener('error', cur.onError);
    cur.stream.on('error', ignore); // a late error from a released input must not crash the process
    if (cur.isStdin) cur.stream.pause();
    else if (destroy) cur.stream.destroy();
    if (this.cur === cur) this.cur = null;
  }

  private syncStats(cur: Current): void {
    const s = cur.reader.stats;
    cur.stats.packets = s.packets;
    cur.stats.bytes = s.bytes;
    cur.stats.format = cur.reader.format;
    cur.stats.linkTypes = [...cur.reader.linkTypes];
    cur.stats.sections = s.sections;
    cur.stats.interfaces = s.interfaces;
    cur.stats.blocksSkipped = s.blocksSkipped;
    cur.stats.badBlocks = s.badBlocks;
  }

  private tag(err: unknown): Error {
    if (isPcapflowError(err)) return err;
    return err instanceof Error ? err : new Error(String(err));
  }

  private readError(err: Error, name: string): PcapflowError {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND.has(code)) return new PcapflowError('INPUT_NOT_FOUND', `cannot open ${name}: ${err.message}`, { file: name, cause: err });
    return new PcapflowError('INPUT_READ_FAILED', `cannot read ${name}: ${err.message}`, { file: name, cause: err });
  }
}

/** openCaptures returns a CaptureSource over `inputs` (paths, `-` = stdin), read in order. */
export function openCaptures(inputs: string[], options: OpenCapturesOptions = {}): CaptureSource {
  return new CaptureSource(inputs, options);
}

/** captureInputStats: per-input statistics of a source (which inputs were read, packets each). */
export function captureInputStats(source: CaptureSource): InputStats[] {
  return source.inputStats();
}
