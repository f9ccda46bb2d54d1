import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { ChunkPool } from './chunk-pool.js';

/** How dead shared chunks get freed: `run` (a full collection) after every `every` bytes of new chunks. */
export interface SharedChunksCollect {
  run: () => void;
  every: number;
  /** Chunk bytes allocated since the last run. */
  since: number;
}

/** allocated counts `bytes` of new shared chunks against `c`, running its collection when they reach `c.every`. */
export function allocated(c: SharedChunksCollect, bytes: number): void {
  c.since += bytes;
  if (c.since >= c.every) {
    c.since = 0;
    c.run();
  }
}

/**
 * SharedFileStream reads a file in chunks of `chunkSize` bytes, each chunk in a SharedArrayBuffer
 * of its own, so that views of the bytes (packets, data events) can be handed to a worker thread
 * without a copy (NdjsonSink's render thread, FilesSink's write thread). Otherwise it is a byte
 * Readable like fs.createReadStream: one read in flight, errors are Node's fs errors (ENOENT at
 * open, ...), and destroy() closes the descriptor.
 *
 * V8 does not count SharedArrayBuffer memory when it schedules collections, so chunks nobody
 * holds any more can wait long for one: `collect.run` (a full collection) is called once every
 * `collect.every` bytes allocated for chunks, counted in `collect.since` (streams given the same
 * object count together). A SharedArrayBuffer also comes zero-filled (about 0.1 s per 300 MB
 * here): with `when`, a chunk is shared only when `when()` says so at its read, else it is an
 * ordinary Buffer. With `pool`
 * (of chunks of `chunkSize` bytes), shared chunks come from the pool, which reuses them and
 * counts the new ones against its own `collect`.
 */
export class SharedFileStream extends Readable {
  private fd = -1;
  private readonly file: string;
  private readonly chunkSize: number;
  private readonly collect: SharedChunksCollect | null;
  private readonly when: (() => boolean) | null;
  private readonly pool: ChunkPool | null;

  constructor(file: string, chunkSize: number, options: { collect?: SharedChunksCollect; when?: () => boolean; pool?: ChunkPool } = {}) {
    super({ highWaterMark: chunkSize });
    this.file = file;
    this.chunkSize = chunkSize;
    this.collect = options.collect ?? null;
    this.when = options.when ?? null;
    this.pool = options.pool !== undefined && options.pool.size === chunkSize ? options.pool : null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    fs.open(this.file, 'r', (err, fd) => {
      if (err) return callback(err);
      this.fd = fd;
      callback();
    });
  }

  override _read(): void {
    let buf: Uint8Array;
    if (this.when !== null && !this.when()) {
      buf = Buffer.allocUnsafeSlow(this.chunkSize);
    } else if (this.pool !== null) {
      buf = new Uint8Array(this.pool.take());
    } else {
      if (this.collect !== null) allocated(this.collect, this.chunkSize);
      buf = new Uint8Array(new SharedArrayBuffer(this.chunkSize));
    }
    fs.read(this.fd, buf, 0, this.chunkSize, null, (err, n) => {
      if (err) {
        this.destroy(err);
        return;
      }
      if (!this.destroyed) this.push(n === 0 ? null : n === this.chunkSize ? buf : buf.subarray(0, n));
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.fd < 0) return callback(err);
    const fd = this.fd;
    this.fd = -1;
    fs.close(fd, () => callback(err));
  }
}
