/**
 * tcp-transforms: the object-mode Transforms around the TCP cores. `TcpDemuxTransform` takes and
 * gives `Packet[]` batches (TcpDemux); `TcpReassemblerTransform` takes demuxed `Packet[]` batches
 * and gives `StreamEvent[]` batches (TcpReassembler), flushing every open connection (reason eof)
 * when its input ends. Errors are the cores' (PcapflowError INVALID_OPTION from the constructors).
 *
 * The final flush can close a whole connection table at once (hundreds of thousands after a SYN
 * flood): TcpReassemblerTransform closes them END_STEP at a time (TcpReassembler.endSome) and
 * waits for its reader between steps, so the events of the flush are never all in memory at once.
 */
import type { TransformCallback } from 'node:stream';
import { TcpDemux, type TcpDemuxOptions } from '../core/flow-table.js';
import type { Packet } from '../core/packet.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../core/reassembler.js';
import type { StreamEvent } from '../core/events.js';
import { StageTransform } from './stage-transform.js';

/** Connections closed per output batch of the final flush. */
const END_STEP = 2048;

/**
 * Batches held on each side of the TCP transforms. One, not StageTransform's four: a batch is a
 * whole read chunk's packets (some 14 000 of them in a SYN flood) or their events, and whatever
 * waits in a queue outlives V8's young generation, so deep queues made the collector copy and
 * promote nearly everything (a SYN flood ran three times slower). The stages are synchronous:
 * a deeper queue buys nothing.
 */
const QUEUE = { readableHighWaterMark: 1, writableHighWaterMark: 1 };

export class TcpDemuxTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: TcpDemux;

  constructor(options: TcpDemuxOptions = {}) {
    super(new TcpDemux(options), QUEUE);
  }
}

export class TcpReassemblerTransform extends StageTransform<Packet[], StreamEvent[]> {
  declare readonly core: TcpReassembler;
  /** The next step of the final flush, waiting for the reader (see read()). */
  private resumeFlush: (() => void) | null = null;

  constructor(options: TcpReassemblerOptions = {}) {
    super(new TcpReassembler(options), QUEUE);
  }

  override _flush(callback: TransformCallback): void {
    const step = (): void => {
      try {
        while (!this.core.endSome((out) => this.push(out), END_STEP)) {
          if (this.readableLength >= this.readableHighWaterMark) {
            this.resumeFlush = step;
            return;
          }
        }
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback();
    };
    step();
  }

  override read(size?: number): StreamEvent[] | null {
    const out = super.read(size);
    if (this.resumeFlush !== null && this.readableLength < this.readableHighWaterMark) {
      const resume = this.resumeFlush;
      this.resumeFlush = null;
      process.nextTick(resume);
    }
    return out;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.resumeFlush = null;
    callback(err);
  }
}
