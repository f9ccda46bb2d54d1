import { Transform, type TransformCallback } from 'node:stream';
import type { Stage } from '../core/stage.js';

/** Options of a StageTransform. */
export interface StageTransformOptions {
  /** Outputs (batches) held on the readable side before backpressure. Default 4. */
  readableHighWaterMark?: number;
  /** Inputs held on the writable side before backpressure. Default 4 (objects) or 1 MiB (bytes). */
  writableHighWaterMark?: number;
  /** False when the input is bytes rather than objects (the capture reader). Default true. */
  writableObjectMode?: boolean;
}

/**
 * StageTransform wraps a pure Stage core in a Transform whose readable side is in object mode.
 * Backpressure is the Transform's own: `_transform` is not called again until the outputs
 * already pushed have been read down to the high-water mark.
 *
 * Errors: a PcapflowError thrown by the core errors the stream only after every output emitted
 * before the fault has been read (erroring at once would destroy the stream and drop them);
 * until then no more input is taken.
 */
export class StageTransform<In, Out> extends Transform {
  readonly core: Stage<In, Out>;
  private readonly pushOut: (out: Out) => void;
  private deferred: (() => void) | null = null;

  constructor(core: Stage<In, Out>, options: StageTransformOptions = {}) {
    const objectInput = options.writableObjectMode ?? true;
    super({
      writableObjectMode: objectInput,
      readableObjectMode: true,
      readableHighWaterMark: options.readableHighWaterMark ?? 4,
      writableHighWaterMark: options.writableHighWaterMark ?? (objectInput ? 4 : 1 << 20),
    });
    this.core = core;
    this.pushOut = (out: Out) => {
      this.push(out);
    };
  }

  override _transform(chunk: In, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.core.write(chunk, this.pushOut);
    } catch (err) {
      this.coreFailed(err as Error, callback);
      return;
    }
    callback();
  }

  /** coreFailed handles an error the core threw from write: by default, failAfterDrain. */
  protected coreFailed(err: Error, callback: TransformCallback): void {
    this.failAfterDrain(callback, err);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.core.end(this.pushOut);
    } catch (err) {
      this.failAfterDrain(callback, err as Error);
      return;
    }
    callback();
  }

  /** read: Readable's own, plus the deferred failure (see failAfterDrain). */
  override read(size?: number): Out | null {
    const out = super.read(size) as Out | null;
    if (this.deferred !== null && this.readableLength === 0) {
      const fail = this.deferred;
      this.deferred = null;
      process.nextTick(fail);
    }
    return out;
  }

  /** failAfterDrain fails the stream with `err` once the outputs already pushed have been read. */
  protected failAfterDrain(callback: TransformCallback, err: Error): void {
    if (this.readableLength === 0) callback(err);
    else this.deferred = () => callback(err);
  }
}
