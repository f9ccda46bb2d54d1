/**
 * tcp-transforms: the object-mode Transforms around the TCP cores. `TcpDemuxTransform` takes and
 * gives `Packet[]` batches (TcpDemux); `TcpReassemblerTransform` takes demuxed `Packet[]` batches
 * and gives `StreamEvent[]` batches (TcpReassembler), flushing every open connection (reason eof)
 * when its input ends. `TcpStreamTransform` is decode + demux + reassembly in one Transform: the
 * same three cores, chained synchronously (with ShardSelect after the demux for `shard`). Errors
 * are the cores' (PcapflowError INVALID_OPTION from the constructors, the decoder's codes under
 * onError 'fail').
 *
 * The final flush can close a whole connection table at once (hundreds of thousands after a SYN
 * flood): TcpReassemblerTransform closes them END_STEP at a time (TcpReassembler.endSome) and
 * waits for its reader between steps, so the events of the flush are never all in memory at once.
 */
import type { TransformCallback } from 'node:stream';
import { TcpDemux, type TcpDemuxOptions } from '../core/flow-table.js';
import type { Packet, PacketPool } from '../core/packet.js';
import { PacketDecoder, type PacketDecoderOptions } from '../core/packet-decoder.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../core/reassembler.js';
import type { StreamEvent } from '../core/events.js';
import { ReorderWindow, type ReorderOptions } from '../core/reorder.js';
import { ShardSelect, type ShardSpec } from '../core/shard-key.js';
import { StageChain, type Stage } from '../core/stage.js';
import { withInflate } from './decode-transforms.js';
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

/**
 * ReorderTransform: the capture-time reorder window (ReorderWindow) as a Transform, for a
 * pipeline assembled stage by stage: put it between PacketDecodeTransform and TcpDemuxTransform
 * (decoding errors then come in file order, after every packet read before the fault). Its packets are the
 * caller's (held across batches): do not recycle them before they come out.
 */
export class ReorderTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: ReorderWindow;

  constructor(options: ReorderOptions = {}) {
    super(new ReorderWindow(options), QUEUE);
  }
}

export class TcpDemuxTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: TcpDemux;

  constructor(options: TcpDemuxOptions = {}) {
    super(new TcpDemux(options), QUEUE);
  }
}

/**
 * ReassemblingTransform: a Transform whose last core is a TcpReassembler. At the end of its input
 * it ends the cores before the reassembler (`endEarlier`), then closes the reassembler's
 * connections END_STEP at a time, waiting for its reader between steps. When a core throws (a
 * decoder under onError 'fail'), it does the same before failing, as separate transforms would:
 * the stages after the faulty one end as at end of input, so every connection closes.
 */
abstract class ReassemblingTransform<In> extends StageTransform<In, StreamEvent[]> {
  /** The next step of the final flush, waiting for the reader (see read()). */
  private resumeFlush: (() => void) | null = null;

  protected abstract readonly reassembler: TcpReassembler;

  /** endEarlier ends the cores before the reassembler; their last outputs go through the rest. */
  protected abstract endEarlier(push: (out: StreamEvent[]) => void): void;

  override _flush(callback: TransformCallback): void {
    this.finish(callback);
  }

  protected override coreFailed(err: Error, callback: TransformCallback): void {
    this.finish(() => this.failAfterDrain(callback, err));
  }

  private finish(callback: TransformCallback): void {
    const push = (out: StreamEvent[]): void => {
      this.push(out);
    };
    try {
      this.endEarlier(push);
    } catch (err) {
      callback(err as Error);
      return;
    }
    const step = (): void => {
      try {
        while (!this.reassembler.endSome(push, END_STEP)) {
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

/**
 * ShardSelectTransform: ShardSelect (core/shard-key.ts) as a Transform, for a pipeline assembled
 * stage by stage: put it between TcpDemuxTransform and TcpReassemblerTransform to keep one
 * shard's connections (`--shard K/N`).
 */
export class ShardSelectTransform extends StageTransform<Packet[], Packet[]> {
  declare readonly core: ShardSelect;

  constructor(shard: ShardSpec) {
    super(new ShardSelect(shard), QUEUE);
  }
}

export class TcpReassemblerTransform extends ReassemblingTransform<Packet[]> {
  declare readonly core: TcpReassembler;
  protected readonly reassembler: TcpReassembler;

  constructor(options: TcpReassemblerOptions = {}) {
    const core = new TcpReassembler(options);
    super(core, QUEUE);
    this.reassembler = core;
  }

  protected endEarlier(): void {
    // nothing before the reassembler
  }
}

export interface TcpStreamOptions {
  decoder?: PacketDecoderOptions;
  demux?: TcpDemuxOptions;
  reassembly?: TcpReassemblerOptions;
  /**
   * The capture-time reorder window after decoding (ReorderWindow, core/reorder.ts): packets
   * out of time order by at most this much are put back in order. Default REORDER_DEFAULTS (1024
   * packets, 60 s, 8 MiB); `false` or `{ packets: 0 }` turns it off.
   */
  reorder?: ReorderOptions | false;
  /**
   * Give every packet back to this pool once its batch went through the three cores (they keep
   * no Packet). Only when nothing else holds the batches: the source that takes packets from the
   * same pool, with no tee or other consumer between.
   */
  pool?: PacketPool;
  /**
   * Keep only this shard's connections (ShardSelect, core/shard-key.ts, right after the demux):
   * the demux sees every packet, so connection numbers and every kept connection's events are
   * those of the run without it. Default: every connection.
   */
  shard?: ShardSpec;
}

/** selectStage: ShardSelect when a shard is asked for (none otherwise: the chain is the same as without the option). */
function selectStage(shard: ShardSpec | undefined): ShardSelect | null {
  return shard === undefined ? null : new ShardSelect(shard);
}

/**
 * TcpStreamTransform takes `Packet[]` batches as read (a capture source's) and gives the
 * `StreamEvent[]` batches of their TCP connections: PacketDecoder, TcpDemux and TcpReassembler
 * chained synchronously (StageChain) in one Transform. The output equals that of the three
 * Transforms piped one into the next; a batch goes through all three before the next is taken,
 * so its packets are garbage while still young and no queue sits between the stages (on a
 * capture of small segments this is a quarter of the time). The cores are at `decoder`, `demux`
 * and `reassembler` for their stats. The decoder gets node:zlib's inflate as PacketDecodeTransform's does.
 */
export class TcpStreamTransform extends ReassemblingTransform<Packet[]> {
  /** The reorder window; null when turned off. */
  readonly reorder: ReorderWindow | null;
  readonly decoder: PacketDecoder;
  readonly demux: TcpDemux;
  /** The shard selection after the demux; null without `shard`. */
  readonly select: ShardSelect | null;
  readonly reassembler: TcpReassembler;
  private readonly earlier: StageChain<Packet[], Packet[]>;
  private readonly pool: PacketPool | null;
  /** The packets of the batch being processed (the decoder drops skipped ones from the batch itself). */
  private readonly inBatch: Packet[] = [];

  constructor(options: TcpStreamOptions = {}) {
    const decoder = new PacketDecoder(withInflate(options.decoder ?? {}));
    const demux = new TcpDemux(options.demux);
    const reassembler = new TcpReassembler(options.reassembly);
    const reorder = options.reorder === false ? null : new ReorderWindow(options.reorder);
    const first: Stage<unknown, unknown>[] = reorder === null || reorder.options.packets === 0 ? [] : [reorder as Stage<unknown, unknown>];
    const select = selectStage(options.shard);
    const after: Stage<unknown, unknown>[] = select === null ? [] : [select as Stage<unknown, unknown>];
    super(new StageChain<Packet[], StreamEvent[]>([decoder, ...first, demux, ...after, reassembler] as Stage<unknown, unknown>[]), QUEUE);
    this.reorder = first.length === 0 ? null : reorder;
    this.decoder = decoder;
    this.demux = demux;
    this.select = select;
    this.reassembler = reassembler;
    this.earlier = new StageChain<Packet[], Packet[]>([decoder, ...first, demux, ...after] as Stage<unknown, unknown>[]);
    this.pool = options.pool ?? null;
    if (this.pool !== null && this.reorder !== null) this.reorder.trackPassed();
  }

  override _transform(batch: Packet[], enc: BufferEncoding, callback: TransformCallback): void {
    const pool = this.pool;
    if (pool === null) return super._transform(batch, enc, callback);
    const held = this.inBatch;
    for (let i = 0; i < batch.length; i++) held.push(batch[i]!);
    super._transform(batch, enc, callback);
    const reorder = this.reorder;
    if (reorder === null) {
      pool.release(held);
    } else {
      // the window holds packets across batches: give back those the decoder skipped (they never
      // enter it) and those that came out of it, through the cores
      let n = 0;
      for (let i = 0; i < held.length; i++) if (held[i]!.skip !== null) held[n++] = held[i]!;
      held.length = n;
      pool.release(held);
      pool.release(reorder.takePassed());
    }
    held.length = 0;
  }

  protected endEarlier(push: (out: StreamEvent[]) => void): void {
    this.earlier.end((packets) => this.reassembler.write(packets, push));
  }
}

/**
 * TcpFrontTransform is TcpStreamTransform without the reassembler: decoding, the reorder window,
 * the demux (and ShardSelect with `shard`) chained in one Transform, giving demuxed `Packet[]`
 * batches (for ShardSink, which reassembles on worker threads). Packets the decoder skipped are dropped from the batches.
 */
export class TcpFrontTransform extends StageTransform<Packet[], Packet[]> {
  readonly reorder: ReorderWindow | null;
  readonly decoder: PacketDecoder;
  readonly demux: TcpDemux;
  /** The shard selection after the demux; null without `shard`. */
  readonly select: ShardSelect | null;

  constructor(options: Omit<TcpStreamOptions, 'reassembly' | 'pool'> = {}) {
    const decoder = new PacketDecoder(withInflate(options.decoder ?? {}));
    const demux = new TcpDemux(options.demux);
    const reorder = options.reorder === false ? null : new ReorderWindow(options.reorder);
    const first: Stage<unknown, unknown>[] = reorder === null || reorder.options.packets === 0 ? [] : [reorder as Stage<unknown, unknown>];
    const select = selectStage(options.shard);
    const after: Stage<unknown, unknown>[] = select === null ? [] : [select as Stage<unknown, unknown>];
    super(new StageChain<Packet[], Packet[]>([decoder, ...first, demux, ...after] as Stage<unknown, unknown>[]), QUEUE);
    this.reorder = first.length === 0 ? null : reorder;
    this.decoder = decoder;
    this.demux = demux;
    this.select = select;
  }
}
