import { CaptureReader, type CaptureReaderOptions } from '../core/capture-reader.js';
import type { Packet } from '../core/packet.js';
import { StageTransform, type StageTransformOptions } from '../transforms/stage-transform.js';

export interface ReaderTransformOptions extends CaptureReaderOptions {
  /** Batches held on the readable side before backpressure. Default 4. */
  readableHighWaterMark?: number;
  /** Bytes held on the writable side before backpressure. Default 1 MiB. */
  writableHighWaterMark?: number;
}

/**
 * ReaderTransform wraps one CaptureReader: bytes in (Buffers, not object mode), `Packet[]`
 * batches out (object mode). A PcapflowError from the reader errors the stream after every batch
 * before the fault was read; input that ends inside a header or record errors it from the flush.
 */
export class ReaderTransform extends StageTransform<Uint8Array, Packet[]> {
  declare readonly core: CaptureReader;

  constructor(options: ReaderTransformOptions = {}) {
    const streamOptions: StageTransformOptions = { writableObjectMode: false };
    if (options.readableHighWaterMark !== undefined) streamOptions.readableHighWaterMark = options.readableHighWaterMark;
    if (options.writableHighWaterMark !== undefined) streamOptions.writableHighWaterMark = options.writableHighWaterMark;
    super(new CaptureReader(options), streamOptions);
  }
}
