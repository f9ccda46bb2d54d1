import { Transform, type TransformCallback } from 'node:stream';
import type { Stage } from '../core/stage.js';

/**
 * StageTransform wraps a pure Stage core in an object-mode Transform. Backpressure is the
 * Transform's own: `_transform` is not called again until the readable side has been read.
 * A PcapflowError thrown by the core is passed to the callback, so the stream errors after the
 * outputs emitted before the fault.
 */
export class StageTransform<In, Out> extends Transform {
  readonly core: Stage<In, Out>;
  private readonly pushOut: (out: Out) => void;

  constructor(core: Stage<In, Out>, options: { readableHighWaterMark?: number; writableHighWaterMark?: number } = {}) {
    super({ objectMode: true, readableHighWaterMark: options.readableHighWaterMark ?? 16, writableHighWaterMark: options.writableHighWaterMark ?? 16 });
    this.core = core;
    this.pushOut = (out: Out) => {
      this.push(out);
    };
  }

  override _transform(chunk: In, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.core.write(chunk, this.pushOut);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.core.end(this.pushOut);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }
}
