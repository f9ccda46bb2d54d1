/** `pcapflow read`: reassemble every TCP connection and send its streams to a sink. */
import { PacketPool } from '../core/packet.js';
import { PcapflowError } from '../core/errors.js';
import { FilterTransform } from '../transforms/filter-transform.js';
import { TcpStreamTransform } from '../transforms/tcp-transforms.js';
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { COLLECT_EVERY, openCaptures, type OpenCapturesOptions, READ_SIZE } from '../sources/capture-source.js';
import { ChunkPool } from '../sources/chunk-pool.js';
import { FilesSink } from '../sinks/files-sink.js';
import { NdjsonSink } from '../sinks/ndjson-sink.js';
import { runPipeline } from '../pipeline.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames, parseCount } from './options.js';
import type { ReorderOptions } from '../core/reorder.js';
import { planMemory } from '../core/memory-budget.js';
import { fullCollection } from './collect.js';
import { createSink, parseStreamArgs, renderThreadOn, type StreamArgs, writeThreadOn } from './sink-options.js';

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
}

/**
 * sharedChunks: read files into SharedArrayBuffers when a sink's second thread takes their bytes
 * (`render`: renderThreadOn; writeThreadOn), with a full collection every 32 MiB of new ones so that
 * peak memory stays as without them. With plain chunking they come from a ChunkPool
 * (chunkPoolFor), which reuses them: no zero-filling and no collection while it can.
 * The write thread does not use chunks it cannot share without a copy, so without a collector it
 * gets none.
 */
function sharedChunks(args: StreamArgs, render: boolean, sink: Writable, tcp: TcpStreamTransform, plain: boolean): OpenCapturesOptions['sharedChunks'] {
  if (!render && !writeThreadOn(args)) return false;
  const collect = fullCollection();
  if (collect === null) return render;
  if (!(sink instanceof FilesSink || sink instanceof NdjsonSink)) return { collect };
  const when = (): boolean => sink.wantsSharedChunks;
  if (!plain) return { collect, when };
  // the first new chunk collects too (since starts full): the ordinary chunks read before
  // sharing began go then
  const chunks = chunkPoolFor(sink, tcp, READ_SIZE, { collect: { run: collect, every: COLLECT_EVERY, since: COLLECT_EVERY } });
  return { when, pool: chunks };
}

/**
 * chunkPoolFor: a ChunkPool of `size`-byte chunks whose holders are the sink (FilesSink: data to
 * be written; NdjsonSink: payloads its render thread still encodes) and the reassembler (views
 * kept for overlap checks): in `pcapflow read --sink files|ndjson` with plain chunking, nothing
 * else reads a chunk after its batch (bench/PROFILE.md, "Fourth pass"). Call before the first
 * packet.
 */
export function chunkPoolFor(sink: FilesSink | NdjsonSink, tcp: TcpStreamTransform, size: number, options: ConstructorParameters<typeof ChunkPool>[1] = {}): ChunkPool {
  const chunks = new ChunkPool(size, options);
  chunks.hold((rank) => sink.heldFrom(rank));
  chunks.hold((rank) => tcp.reassembler.oldestKeptChunk(rank));
  const reorder = tcp.reorder;
  if (reorder !== null) chunks.hold((rank) => reorder.oldestHeldChunk(rank));
  tcp.reassembler.trackChunks(chunks.owns);
  return chunks;
}

/** fileBytes: the total size of `inputs` when all are files one can stat, else null (stdin, a missing file: the source reports those). */
function fileBytes(inputs: readonly string[]): number | null {
  let total = 0;
  for (const name of inputs) {
    if (name === '-') return null;
    try {
      total += statSync(name).size;
    } catch {
      return null;
    }
  }
  return total;
}

/** reorderOptions: --reorder-window and --reorder-seconds, and the window's share of the memory budget. Throws INVALID_OPTION. */
export function reorderOptions(args: ReadCommand, memoryBudget: number | undefined): ReorderOptions {
  const o: ReorderOptions = {};
  if (args.reorderWindow !== undefined) o.packets = parseCount('reorder-window', args.reorderWindow, 0, 1 << 20);
  if (args.reorderSeconds !== undefined) {
    const v = args.reorderSeconds.trim() === '' ? NaN : Number(args.reorderSeconds);
    if (!Number.isFinite(v) || v < 0) throw new PcapflowError('INVALID_OPTION', `--reorder-seconds must be a number of seconds >= 0, not ${JSON.stringify(args.reorderSeconds)}`);
    o.seconds = v;
  }
  if (memoryBudget !== undefined) o.maxBytes = planMemory(memoryBudget).reorderMaxBytes;
  return o;
}

/** runRead runs `pcapflow read`; resolves to the exit code. */
export async function runRead(args: ReadCommand, io: CliIo): Promise<number> {
  const { decoder: decoderOptions, demux: demuxOptions, reassembly: reassemblyOptions } = parseStreamArgs(args);
  const filter = args.filter !== undefined && args.filter !== '' ? new FilterTransform(args.filter) : null;
  const inputs = inputNames(args.inputs);
  const bytes = fileBytes(inputs);
  const sink = createSink(args, io, bytes);

  // A queue of one batch (a whole read chunk's packets) after the source, and decoding, demux and
  // reassembly chained in one Transform (see tcp-transforms.ts): packets that wait in queues
  // outlive V8's young generation, which cost a SYN flood some 50 MB of RSS and a fifth of its
  // time, and a capture of small segments a quarter of its time.
  // The packets go back to the source's pool after the TCP stage: nothing else holds them.
  const pool = new PacketPool();
  const reorder = reorderOptions(args, reassemblyOptions.memoryBudget);
  // the reassembler waits as long for bytes it knows are missing (TcpReassemblerOptions.waitPackets)
  if (reorder.packets !== undefined) reassemblyOptions.waitPackets = reorder.packets;
  const tcp = new TcpStreamTransform({ decoder: decoderOptions, demux: demuxOptions, reassembly: reassemblyOptions, reorder, pool });
  // merged inputs (several, not --concat) share chunks only while one of them is open (see
  // CaptureSource), which keeps the pool's holders' read order
  const shared = sharedChunks(args, renderThreadOn(args, bytes), sink, tcp, reassemblyOptions.chunking !== 'push');
  const source = openCaptures(inputs, { stdin: io.stdin, highWaterMark: 1, pool, sharedChunks: shared, order: args.concat === true ? 'concat' : 'time' });
  const chunks = typeof shared === 'object' ? shared.pool : undefined;
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, source) : null;
  try {
    await runPipeline(filter === null ? [source, tcp, sink] : [source, filter, tcp, sink], sink);
  } finally {
    progress?.stop();
    if (args.stats) {
      printStats(io.stderr, [
        ['reader', source.inputStats()],
        ...(filter === null ? [] : [['filter', filter.core.stats] as [string, object]]),
        ...(tcp.reorder === null ? [] : [['reorder', tcp.reorder.stats] as [string, object]]),
        ['decoder', tcp.decoder.stats],
        ['demux', tcp.demux.stats],
        ['reassembler', tcp.reassembler.stats],
        ['sink', sink.stats],
        ...(chunks === undefined ? [] : [['readChunks', chunks.stats] as [string, object]]),
      ]);
    }
  }
  return 0;
}
