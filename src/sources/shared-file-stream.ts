import fs from 'node:fs';
import { Readable } from 'node:stream';

/**
 * SharedFileStream reads a file in chunks of `chunkSize` bytes, each chunk in a SharedArrayBuffer
 * of its own, so that views of the bytes (packets, data events) can be handed to a worker thread
 * without a copy (NdjsonSink's render thread). Otherwise it is a byte Readable like
 * fs.createReadStream: one read in flight, errors are Node's fs errors (ENOENT at open, ...), and
 * destroy() closes the descriptor.
 */
export class SharedFileStream extends Readable {
  private fd = -1;
  private readonly file: string;
  private readonly chunkSize: number;

  constructor(file: string, chunkSize: number) {
    super({ highWaterMark: chunkSize });
    this.file = file;
    this.chunkSize = chunkSize;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    fs.open(this.file, 'r', (err, fd) => {
      if (err) return callback(err);
      this.fd = fd;
      callback();
    });
  }

  override _read(): void {
    const buf = new Uint8Array(new SharedArrayBuffer(this.chunkSize));
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
