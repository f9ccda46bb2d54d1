/**
 * `pcapflow read`: reassemble every TCP connection and send its streams to a sink. The pipeline
 * itself (and what makes it fast: pools, shared read chunks, the sinks' threads) is the
 * library's ReadPipeline (src/read-pipeline.ts); this file maps the options onto it and prints
 * progress and stats.
 */
import { Writable } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import type { ReorderOptions } from '../core/reorder.js';
import { parseShard } from '../core/shard-key.js';
import { ReadPipeline, type ReadCapturesOptions } from '../read-pipeline.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames, parseCount } from './options.js';
import { parseStreamArgs, sinkSpec, type StreamArgs } from './sink-options.js';
import type { NatsArgs } from './nats-options.js';

/** Kept here for the tests that build a pool by hand. */
export { chunkPoolFor } from '../read-pipeline.js';

export interface ReadCommand extends StreamArgs {
  inputs: string[];
  /** Read the inputs one after another instead of merging them by timestamp. */
  concat?: boolean;
  /** pcap filter expression; packets that do not match are dropped before decoding. */
  filter?: string;
  stats: boolean;
  progress?: boolean;
  /** --reorder-window (packets, 0: off) and --reorder-seconds. */
  reorderWindow?: string;
  reorderSeconds?: string;
  /** --workers N (ReadPipeline's workers). */
  workers?: string;
  /** --shard K/N (ReadPipeline's shard). */
  shard?: string;
}

/** reorderOptions: --reorder-window and --reorder-seconds (the window's byte cap comes from the memory budget in ReadPipeline). Throws INVALID_OPTION. */
export function reorderOptions(args: ReadCommand): ReorderOptions {
  const o: ReorderOptions = {};
  if (args.reorderWindow !== undefined) o.packets = parseCount('reorder-window', args.reorderWindow, 0, 1 << 20);
  if (args.reorderSeconds !== undefined) {
    const v = args.reorderSeconds.trim() === '' ? NaN : Number(args.reorderSeconds);
    if (!Number.isFinite(v) || v < 0) throw new PcapflowError('INVALID_OPTION', `--reorder-seconds must be a number of seconds >= 0, not ${JSON.stringify(args.reorderSeconds)}`);
    o.seconds = v;
  }
  return o;
}

/**
 * readPipelineOptions: what `read` and `http` give ReadPipeline besides the sink: the input
 * order, the filter, the shard, the decoder, demux, reassembly and reorder options and the
 * memory budget.
 * Throws INVALID_OPTION.
 */
export function readPipelineOptions(args: ReadCommand, io: CliIo): Omit<ReadCapturesOptions, 'sink'> {
  const { decoder, demux, reassembly } = parseStreamArgs(args);
  return {
    stdin: io.stdin,
    order: args.concat === true ? 'concat' : 'time',
    ...(args.filter === undefined ? {} : { filter: args.filter }),
    ...(args.shard === undefined ? {} : { shard: parseShard(String(args.shard)) }),
    decoder,
    demux,
    reassembly,
    reorder: reorderOptions(args),
    ...(reassembly.memoryBudget === undefined ? {} : { memoryBudget: reassembly.memoryBudget }),
  };
}

/**
 * runIntoSink runs read's pipeline over `args`' inputs into an application-layer sink of the
 * caller's (`http`, `tls`), with the progress bar and, with --stats, every stage's counters and
 * then `sinkStats()`; resolves to the exit code.
 */
export async function runIntoSink(args: ReadCommand, io: CliIo, options: Omit<ReadCapturesOptions, 'sink'>, sink: Writable, sinkStats: () => Array<[string, unknown]>): Promise<number> {
  const pipeline = new ReadPipeline(inputNames(args.inputs), { ...options, sink });
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, pipeline) : null;
  try {
    await pipeline.run();
  } finally {
    progress?.stop();
    if (args.stats) {
      const stages = Object.entries(pipeline.stats).filter(([k]) => k !== 'sink');
      printStats(io.stderr, [...stages, ...sinkStats()]);
    }
  }
  return 0;
}

/** runRead runs `pcapflow read`; resolves to the exit code. */
export async function runRead(args: ReadCommand, io: CliIo): Promise<number> {
  const options = readPipelineOptions(args, io);
  const inputs = inputNames(args.inputs);
  // --sink nats: a Writable built here (nats-options.ts, loaded only then), not a sink spec
  const workers = args.workers === undefined ? 0 : parseCount('workers', args.workers, 0, 256);
  const sink = args.sink === 'nats' ? (await import('./nats-options.js')).natsSinkFor(args as ReadCommand & NatsArgs, inputs, options.shard, io) : sinkSpec(args, io);
  let pipeline: ReadPipeline;
  try {
    pipeline = new ReadPipeline(inputs, { ...options, sink, workers });
  } catch (err) {
    if (sink instanceof Writable) sink.destroy(); // a NATS sink already connecting
    throw err;
  }
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, pipeline) : null;
  try {
    await pipeline.run();
  } finally {
    progress?.stop();
    if (args.stats) printStats(io.stderr, Object.entries(pipeline.stats));
  }
  return 0;
}
