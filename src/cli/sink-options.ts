/**
 * sink-options: what `pcapflow read` and `pcapflow live` share after the source: the yargs
 * definitions of the sink, demux, reassembly and memory options, their checking (PcapflowError
 * INVALID_OPTION naming the option), and the sink they select.
 *
 * `--memory-budget` sets the one budget (planMemory, core/memory-budget.ts) that the fragment
 * cap, the out-of-order limits and the connection count default from; `--max-connections`,
 * `--max-buffer` and `--max-buffer-per-conn` override a share each.
 */
import type { Writable } from 'node:stream';
import type { Argv } from 'yargs';
import { PcapflowError } from '../core/errors.js';
import type { TcpDemuxOptions } from '../core/flow-table.js';
import type { PayloadEncoding } from '../core/format.js';
import type { TcpReassemblerOptions } from '../core/reassembler.js';
import { DEFAULT_MEMORY_BUDGET, MIN_MEMORY_BUDGET, planMemory } from '../core/memory-budget.js';
import type { PacketDecoderOptions } from '../core/packet-decoder.js';
import type { OnError } from '../core/stage.js';
import { buildSink, type ReadSinkSpec } from '../read-pipeline.js';
import { renderThreadByDefault } from '../render-thread-default.js';
import type { CliIo } from './main.js';
import { parseChoice, parseCount, parseSeconds } from './options.js';

/** The parsed sink, demux and reassembly options (yargs camel-cases the names). */
export interface StreamArgs {
  sink: string;
  out?: string;
  encoding: string;
  direction: string;
  overlap: string;
  chunking: string;
  idleTimeout: string;
  maxConnections?: string;
  maxBufferPerConn?: string;
  maxBuffer?: string;
  maxOpenFiles?: string;
  /** --subdirs k|m|g (FilesSink's subdirs). */
  subdirs?: string;
  memoryBudget?: string;
  maxBytes?: string;
  onError: string;
  /** --render-thread / --no-render-thread; unset: see renderThreadOn. */
  renderThread?: boolean;
  /** --write-thread (on by default). */
  writeThread?: boolean;
}

/** The library options the stream arguments map to. */
export interface StreamSettings {
  onError: OnError;
  /** The decoder options the memory budget sets (fragmentMaxBytes), with onError. */
  decoder: PacketDecoderOptions;
  demux: TcpDemuxOptions;
  reassembly: TcpReassemblerOptions;
}

/** streamOptions adds the sink, demux and reassembly options to a command. */
export function streamOptions(y: Argv, timeWord = 'capture time'): Argv {
  return limitOptions(
    y
      .option('sink', { describe: 'where the streams go (nats: a JetStream stream, see --nats-url)', choices: ['stdout', 'ndjson', 'files', 'nats'], default: 'stdout' })
      .option('out', { alias: 'o', describe: 'output directory for --sink files', type: 'string' })
      .option('encoding', { describe: 'payload encoding for --sink ndjson', choices: ['base64', 'utf8', 'hex'], default: 'base64' })
      .option('render-thread', { describe: 'encode --sink ndjson payloads (base64, hex) on a second thread (default: on for `read` of 128 MiB or more of capture files, with 2+ cores)', type: 'boolean' })
      .option('write-thread', { describe: 'write --sink files from a second thread (captures read from files, segments of 512+ bytes)', type: 'boolean', default: true })
      .option('direction', { describe: 'which directions --sink stdout prints', choices: ['c2s', 's2c', 'both'], default: 'both' }),
    timeWord,
  )
    .option('max-open-files', { describe: 'file descriptors --sink files keeps open at once', type: 'string' })
    .option('subdirs', {
      describe: 'spread --sink files over subdirectories by connection number, as tcpflow -Fk/-Fm/-Fg: k = 000/ (1000 connections each), m = 000000-000999/000000/, g = 3 levels; connections.ndjson then gives paths relative to -o',
      type: 'string',
      choices: ['k', 'm', 'g'],
    });
}

/** limitOptions: the demux and reassembly options every command that reassembles takes (`read`, `live`, `http`). */
export function limitOptions(y: Argv, timeWord = 'capture time'): Argv {
  return y
    .option('overlap', { describe: 'which copy wins when retransmitted bytes differ', choices: ['first', 'last'], default: 'first' })
    .option('chunking', { describe: 'plain in-order chunks, or grouped on PSH boundaries', choices: ['plain', 'push'], default: 'plain' })
    .option('idle-timeout', { describe: `close a connection after this many seconds of ${timeWord} without packets`, type: 'string', default: '300' })
    .option('max-connections', { describe: 'live connections kept; beyond it the oldest idle one is evicted', type: 'string' })
    .option('max-buffer-per-conn', { describe: 'out-of-order bytes held per connection (k, m, g suffixes)', type: 'string' })
    .option('max-buffer', { describe: 'out-of-order bytes held in total (k, m, g suffixes)', type: 'string' })
    .option('memory-budget', {
      describe: 'memory for held data: 1/16 IP fragments, 1/16 output of sparse connections, 1/4 out-of-order bytes, 5/8 connections (k, m, g suffixes)',
      type: 'string',
      default: `${DEFAULT_MEMORY_BUDGET >> 20}m`,
    })
    .option('max-bytes', { describe: 'keep at most this many bytes of each stream direction, like tcpflow -b; the rest is counted (k, m, g suffixes)', type: 'string' });
}

/** memoryBudgetOf: --memory-budget in bytes (the default when unset). Throws INVALID_OPTION. */
function memoryBudgetOf(args: StreamArgs): number {
  return args.memoryBudget === undefined ? DEFAULT_MEMORY_BUDGET : parseCount('memory-budget', args.memoryBudget, MIN_MEMORY_BUDGET, 2 ** 50, true);
}

/** parseStreamArgs checks the demux and reassembly options. Throws INVALID_OPTION. */
export function parseStreamArgs(args: StreamArgs): StreamSettings {
  const onError = parseChoice<OnError>('on-error', args.onError, ['skip', 'fail']);
  const memoryBudget = memoryBudgetOf(args);
  const plan = planMemory(memoryBudget);
  const decoder: PacketDecoderOptions = { onError, fragmentMaxBytes: plan.fragmentMaxBytes };
  const demux: TcpDemuxOptions = { idleTimeout: parseSeconds('idle-timeout', args.idleTimeout), memoryBudget };
  if (args.maxConnections !== undefined) demux.maxConnections = parseCount('max-connections', args.maxConnections, 1, 1e8);
  const reassembly: TcpReassemblerOptions = {
    overlap: parseChoice('overlap', args.overlap, ['first', 'last'] as const),
    chunking: parseChoice('chunking', args.chunking, ['plain', 'push'] as const),
    memoryBudget,
  };
  if (args.maxBytes !== undefined) reassembly.maxBytes = parseCount('max-bytes', args.maxBytes, 1, 2 ** 50, true);
  if (args.maxBufferPerConn !== undefined) {
    reassembly.maxBufferedPerConnection = parseCount('max-buffer-per-conn', args.maxBufferPerConn, 0, 2 ** 40, true);
  }
  if (args.maxBuffer !== undefined) reassembly.maxBufferedTotal = parseCount('max-buffer', args.maxBuffer, 0, 2 ** 40, true);
  return { onError, decoder, demux, reassembly };
}

/** Capture files of this many bytes or more get the render thread by default (see renderThreadOn). */
export { RENDER_THREAD_MIN_INPUT } from '../render-thread-default.js';

/**
 * renderThreadOn: whether NDJSON payloads (base64, hex) are encoded on a second thread
 * (NdjsonSink's renderThread). --render-thread / --no-render-thread decide; unset, it is on when
 * the input is capture files (the source can then read them into shared chunks, so that the
 * thread gets the bytes without a copy) of `fileBytes` >= RENDER_THREAD_MIN_INPUT in all (null:
 * not all files), and there are 2 or more cores. On the bulk and many bench captures and a 1.5 GB
 * one it took 0.82-0.96x the time, peak RSS within 6 MB of one thread's (less on many); starting it costs
 * about 0.1 s of CPU, which inputs of 30-60 MB did not win back (1.10-1.23x).
 */
export function renderThreadOn(args: StreamArgs, fileBytes: number | null = null): boolean {
  if (args.sink !== 'ndjson' || args.encoding === 'utf8') return false;
  return args.renderThread ?? renderThreadByDefault(fileBytes);
}

/**
 * writeThreadOn: whether --sink files may write from a second thread (--write-thread, on by
 * default). It takes a flush only when its bytes are in shared read chunks and its segments
 * average 512 bytes or more (FilesSink's writeThread): many connections of full segments took
 * 0.90x the time with it; small segments were slower, so they stay on the thread pool.
 */
export function writeThreadOn(args: StreamArgs): boolean {
  return args.sink === 'files' && args.writeThread !== false;
}

/** subdirsOf: --subdirs as FilesSink options ({} when unset: flat). Throws INVALID_OPTION. */
function subdirsOf(args: StreamArgs): { subdirs?: 'k' | 'm' | 'g' } {
  return args.subdirs === undefined ? {} : { subdirs: parseChoice('subdirs', args.subdirs, ['k', 'm', 'g'] as const) };
}

/**
 * createSink builds the sink `--sink` names for `pcapflow live`: sinkSpec's description, built as
 * ReadPipeline builds it (buildSink), the held-output share from --memory-budget. Throws
 * INVALID_OPTION (files without -o, bad values). The files sink writes with synchronous calls
 * (FilesSink's syncWrites): waiting for the thread pool held up the pipeline at 1.8 Gbit/s.
 */
export function createSink(args: StreamArgs, io: CliIo): Writable & { stats: object } {
  const spec = sinkSpec(args, io);
  // live: synchronous writes (the kernel's capture buffer holds the packets meanwhile); through
  // the thread pool the files sink fell behind at 1.8 Gbit/s on 2 cores and packets were dropped
  if (spec.type === 'files') {
    spec.syncWrites = true;
    spec.writeThread = false;
  }
  return buildSink(spec, planMemory(memoryBudgetOf(args)).heldOutputBytes, null) as Writable & { stats: object };
}

/**
 * sinkSpec describes the sink `--sink` names for `pcapflow read`'s ReadPipeline, which builds it
 * with its defaults (the render thread for large inputs, the held-output share of the budget).
 * The same options as createSink (keep the two in step). Throws INVALID_OPTION.
 */
export function sinkSpec(args: StreamArgs, io: CliIo): ReadSinkSpec {
  if (args.sink === 'nats') throw new PcapflowError('INVALID_OPTION', '--sink nats is for `pcapflow read` and `pcapflow live`');
  const sinkKind = parseChoice('sink', args.sink, ['stdout', 'ndjson', 'files'] as const);
  if (sinkKind === 'files') {
    if (args.out === undefined || args.out === '') throw new PcapflowError('INVALID_OPTION', '--sink files needs an output directory: -o DIR');
    const maxOpenFiles = args.maxOpenFiles === undefined ? undefined : parseCount('max-open-files', args.maxOpenFiles, 1, 1e6);
    return { type: 'files', dir: args.out, writeThread: writeThreadOn(args), ...(maxOpenFiles === undefined ? {} : { maxOpenFiles }), ...subdirsOf(args) };
  }
  if (sinkKind === 'ndjson') {
    const encoding = parseChoice<PayloadEncoding>('encoding', args.encoding, ['base64', 'utf8', 'hex']);
    return { type: 'ndjson', dest: io.stdout, encoding, ...(args.renderThread === undefined ? {} : { renderThread: args.renderThread }) };
  }
  const direction = parseChoice('direction', args.direction, ['c2s', 's2c', 'both'] as const);
  return { type: 'stdout', dest: io.stdout, direction };
}

/**
 * natsOptions: the options naming a NATS JetStream stream and run, shared by `read --sink nats`
 * and `consume` (checked in nats-options.ts).
 */
export function natsOptions(y: Argv): Argv {
  return y
    .option('nats-url', { describe: 'NATS servers for --sink nats and consume, comma-separated (host:port or nats://host:port)', type: 'string' })
    .option('nats-stream', { describe: 'the JetStream stream (--sink nats creates it when missing, never alters it)', type: 'string', default: 'PCAPFLOW' })
    .option('nats-subject-prefix', { describe: 'subjects are PREFIX.RUN.SHARD.BUCKET.TYPE (a stream created by --sink nats takes PREFIX.>)', type: 'string', default: 'pcapflow' })
    .option('run-id', { describe: 'the run: message ids are RUN:SHARD:SEQ, so a restart with the same id adds no copy (read default: a hash of the inputs\' paths, sizes and times and the options)', type: 'string' });
}

/**
 * natsSinkOptions: natsOptions and what only `--sink nats` takes (`read` and `live`): the
 * stream's settings when it creates it, and the window of unacknowledged publishes.
 */
export function natsSinkOptions(y: Argv): Argv {
  return natsOptions(y)
    .option('nats-replicas', { describe: 'replicas of the stream when --sink nats creates it', type: 'string', default: '1' })
    .option('nats-duplicate-window', { describe: 'seconds the stream drops copies of a message id, when --sink nats creates it (a restart within it adds no copy)', type: 'string', default: '600' })
    .option('nats-max-pending', {
      describe: 'publishes waiting for their acknowledgement at most; past it `read` waits and `live` queues, then drops and counts packets (--max-queue)',
      type: 'string',
      default: '1024',
    })
    .option('nats-max-pending-bytes', { describe: 'payload bytes waiting for their acknowledgement at most (k, m, g suffixes)', type: 'string', default: '16m' })
    .option('nats-retry-seconds', {
      describe: 'how long one message is published again (timeouts, no server, 503) before the run fails with OUTPUT_FAILED',
      type: 'string',
      default: '60',
    });
}
