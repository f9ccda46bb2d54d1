/**
 * The read pipeline, built one way for the CLI (`pcapflow read`) and the library: capture
 * inputs, an optional filter, TcpStreamTransform (decode, reorder, demux, reassembly) and a sink,
 * with the machinery that makes it fast and small behind it: reused Packet objects, read chunks
 * in SharedArrayBuffers for the sinks' worker threads, taken from a ChunkPool whose holders are
 * the sink and the TCP stages, and the sinks' thread defaults.
 */
import { statSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { PcapflowError } from './core/errors.js';
import { fullCollection, tuneHeap } from './heap.js';
import { RENDER_THREAD_MIN_INPUT, renderThreadByDefault } from './render-thread-default.js';
import type { PacketFilter, FilterStats } from './core/filter.js';
import type { TcpDemuxOptions, TcpDemuxStats } from './core/flow-table.js';
import { DEFAULT_MEMORY_BUDGET, planMemory } from './core/memory-budget.js';
import { PacketPool } from './core/packet.js';
import type { PacketDecoderOptions } from './core/packet-decoder.js';
import type { TcpReassemblerOptions, TcpReassemblerStats } from './core/reassembler.js';
import type { ReorderOptions, ReorderStats } from './core/reorder.js';
import { checkShard, type ShardSelectStats, type ShardSpec } from './core/shard-key.js';
import { runPipeline } from './pipeline.js';
import { FilesSink, type FilesSinkOptions } from './sinks/files-sink.js';
import { NdjsonSink, type NdjsonSinkOptions } from './sinks/ndjson-sink.js';
import { StdoutSink, type StdoutSinkOptions } from './sinks/stdout-sink.js';
import { type CaptureOrder, type CaptureSource, COLLECT_EVERY, type InputStats, openCaptures, type OpenCapturesOptions, READ_SIZE } from './sources/capture-source.js';
import { ChunkPool } from './sources/chunk-pool.js';
import { FilterTransform } from './transforms/filter-transform.js';
import { ShardSink } from './sinks/shard-sink.js';
import { TcpFrontTransform, TcpStreamTransform } from './transforms/tcp-transforms.js';

/** A capture input: a file name, `-` (ReadCapturesOptions.stdin, default process.stdin), or a stream of capture bytes. */
export type ReadInput = string | NodeJS.ReadableStream;

/**
 * A sink the pipeline builds, with the options of its class; what is left unset gets the CLI's
 * defaults: `files` writes from a second thread (`writeThread: true`) and holds sparse output
 * within the memory budget's share (`maxHeldBytes`); `ndjson` encodes payloads on a second
 * thread (`renderThread`) when the inputs are capture files of RENDER_THREAD_MIN_INPUT bytes or
 * more and there are 2 or more cores.
 */
export type ReadSinkSpec = ({ type: 'files' } & FilesSinkOptions) | ({ type: 'ndjson' } & NdjsonSinkOptions) | ({ type: 'stdout' } & StdoutSinkOptions);

export interface ReadCapturesOptions {
  /**
   * Where the events go: a sink described here (ReadSinkSpec: built with the CLI's defaults), a
   * FilesSink, NdjsonSink or StdoutSink of your own (their threads, if you turned them on, get
   * shared read chunks), or any object-mode Writable of `StreamEvent[]` batches.
   */
  sink: ReadSinkSpec | Writable;
  /** The stream read for the input `-`. Default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** Several inputs: merged by timestamp (`time`, default) or read one after another (`concat`). */
  order?: CaptureOrder;
  /** A pcap-filter(7) expression (or a compiled filter): packets it does not select are dropped before decoding. */
  filter?: string | PacketFilter;
  decoder?: PacketDecoderOptions;
  demux?: TcpDemuxOptions;
  reassembly?: TcpReassemblerOptions;
  /**
   * The capture-time reorder window (default 1024 packets, 60 s); `false` or `{ packets: 0 }`
   * turns it off. The reassembler waits as many packets for bytes it knows are missing
   * (`reassembly.waitPackets`, unless set).
   */
  reorder?: ReorderOptions | false;
  /**
   * Everything held, in bytes (planMemory; default 256 MiB): sets the fragment cap, the files
   * sink's held output, the out-of-order and reorder caps and the connection count, each unless
   * given in its own options.
   */
  memoryBudget?: number;
  /**
   * Bytes per file read: the size of the batches the stages pass on. Default: the sink's own
   * `readSize` when it is a Writable that has one (HttpSink, TlsSink: 128 KiB), else 512 KiB.
   * Tests use small ones.
   */
  readSize?: number;
  /** Aborting destroys the source (with an AbortError) and closes the open inputs. */
  signal?: AbortSignal;
  /**
   * Reassemble and render on this many worker threads (ShardSink): connections are split among
   * them by a hash of their addresses and ports, decoding, the reorder window and the demux stay
   * on this thread, and the output is put back in one thread's order, byte for byte the same
   * while no memory limit is reached (each worker gets 1/N of the out-of-order and held-output
   * budgets). For a `files` or `ndjson` sink spec (not `stdout`, not a Writable of your own).
   * Default 0: everything on this thread.
   */
  workers?: number;
  /**
   * Keep only the connections of shard `index` (1 to `count`) of `count`, as `--shard K/N` does:
   * shard = floor(key * count / 2^32) + 1 of the connection's SHARD KEY (FNV-1a 32 of its
   * addresses, ports and VLAN ids, direction-independent; core/shard-key.ts). The packets of other
   * shards' connections are dropped right after the demux, which still sees every packet: `count`
   * runs over the same inputs give disjoint outputs whose union is the output without the option
   * (the same files and connections.ndjson records, every connection's events in the same order,
   * the same connection numbers: tshark's `tcp.stream`), as long as no limit shared by all
   * connections is reached. Works with `workers`. Default: every connection.
   */
  shard?: ShardSpec;
  /**
   * Tune V8's heap for the run (tuneHeap, heap.ts: process-wide V8 flags, for every thread: the
   * old generation grows by at most HEAP_GROWING_PERCENT between full collections, the young one
   * stops at YOUNG_GENERATION_CAP). Default true; false leaves V8's own heuristics, which let the
   * heap grow to about four times its live data here.
   */
  tuneHeap?: boolean;
}

/** Every stage's counters (what `pcapflow read --stats` prints, in this order). */
export interface ReadStats {
  reader: InputStats[];
  filter?: FilterStats;
  reorder?: ReorderStats;
  decoder: Readonly<Record<string, number>>;
  demux: TcpDemuxStats;
  /** With `shard`: the connections and packets left to the other shards. */
  shard?: ShardSelectStats;
  reassembler: TcpReassemblerStats;
  /** The sink's `stats` (undefined for a Writable without them). */
  sink: unknown;
  /** The ChunkPool's counters when read chunks were shared through one. */
  readChunks?: ChunkPool['stats'];
}

export { RENDER_THREAD_MIN_INPUT, renderThreadByDefault };
export { fullCollection, heapFlagGiven, HEAP_GROWING_PERCENT, tuneHeap, YOUNG_GENERATION_CAP } from './heap.js';

/**
 * ReadPipeline: `pcapflow read` as a library object. The constructor builds and checks
 * everything (throws PcapflowError INVALID_OPTION, FILTER_SYNTAX); `run()` reads the inputs
 * through the filter, decoder, reorder window, demux and reassembler into the sink and resolves
 * to the stages' counters once the sink has finished (errors as runPipeline's: the output before
 * a fault is finished first). `inputStats()` and `stats` can be read while it runs (progress).
 */
export class ReadPipeline {
  readonly source: CaptureSource;
  readonly filter: FilterTransform | null;
  /** Decoding, the reorder window, the demux and (without workers) the reassembler. */
  readonly tcp: TcpStreamTransform | TcpFrontTransform;
  readonly sink: Writable;
  /** The pool of shared read chunks, when the sink's threads may take them (see sharedChunks). */
  readonly chunks: ChunkPool | null;
  private running: Promise<ReadStats> | null = null;

  constructor(inputs: ReadInput | readonly ReadInput[], options: ReadCapturesOptions) {
    const { names, stdin } = inputNamesOf(Array.isArray(inputs) ? (inputs as readonly ReadInput[]) : [inputs as ReadInput], options.stdin);
    const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
    const plan = planMemory(budget);
    const explicitBudget = options.memoryBudget !== undefined;
    const fileBytes = fileBytesOf(names);
    const spec = isWritable(options.sink) ? null : options.sink;
    if (options.tuneHeap !== false) tuneHeap(fileBytes);
    const workers = options.workers ?? 0;
    if (!Number.isInteger(workers) || workers < 0 || workers > 256) throw new PcapflowError('INVALID_OPTION', `workers must be an integer from 0 to 256, got ${workers}`);
    if (workers > 0 && (spec === null || spec.type === 'stdout')) throw new PcapflowError('INVALID_OPTION', 'workers needs a files or ndjson sink (given as a sink spec)');
    this.filter = options.filter === undefined || options.filter === '' ? null : new FilterTransform(options.filter);
    const shard = options.shard === undefined ? {} : { shard: checkShard(options.shard) };

    const decoder: PacketDecoderOptions = { ...options.decoder };
    decoder.fragmentMaxBytes ??= plan.fragmentMaxBytes;
    const demux: TcpDemuxOptions = { ...options.demux };
    if (explicitBudget) demux.memoryBudget ??= budget;
    const reassembly: TcpReassemblerOptions = { ...options.reassembly };
    if (explicitBudget) reassembly.memoryBudget ??= budget;
    const reorder: ReorderOptions | false = options.reorder === false ? false : { ...options.reorder };
    if (reorder !== false) reorder.maxBytes ??= plan.reorderMaxBytes;
    // the reassembler waits as long for bytes it knows are missing (TcpReassemblerOptions.waitPackets)
    const window = reorder === false ? 0 : reorder.packets;
    if (window !== undefined) reassembly.waitPackets ??= window;

    // Packets go back to the source's pool after the TCP stage: nothing else holds them. A
    // queue of one batch after the source, and decoding, demux and reassembly chained in one
    // Transform: packets that wait in queues outlive V8's young generation, which cost a SYN
    // flood some 50 MB of RSS and a fifth of its time (see tcp-transforms.ts).
    const pool = new PacketPool();
    const readSize = options.readSize ?? (spec === null ? sinkReadSize(options.sink as Writable) : null) ?? READ_SIZE;
    let shared: OpenCapturesOptions['sharedChunks'] = false;
    if (workers > 0) {
      // a files or ndjson spec (checked above); each worker gets 1/N of the shares (ShardSink)
      const s = spec as Exclude<ReadSinkSpec, { type: 'stdout' }>;
      this.tcp = new TcpFrontTransform({ decoder, demux, reorder, ...shard });
      const sink = s.type === 'files' ? { ...s, maxHeldBytes: s.maxHeldBytes ?? plan.heldOutputBytes } : s;
      this.sink = new ShardSink({ workers, sink, reassembly: { ...reassembly, maxBufferedTotal: reassembly.maxBufferedTotal ?? plan.maxBufferedTotal }, pool });
    } else {
      this.sink = spec === null ? (options.sink as Writable) : buildSink(spec, plan.heldOutputBytes, fileBytes);
      const tcp = new TcpStreamTransform({ decoder, demux, reassembly, reorder, pool, ...shard });
      this.tcp = tcp;
      const threads = spec === null ? this.sink instanceof FilesSink || this.sink instanceof NdjsonSink : specThreads(this.sink, spec, fileBytes);
      if (threads) shared = sharedChunks(this.sink as FilesSink | NdjsonSink, tcp, readSize, reassembly.chunking !== 'push', fileBytes);
    }
    this.chunks = typeof shared === 'object' ? (shared.pool ?? null) : null;
    const sourceOptions: OpenCapturesOptions = { highWaterMark: 1, pool, sharedChunks: shared, order: options.order ?? 'time', readSize };
    if (stdin !== undefined) sourceOptions.stdin = stdin;
    if (options.signal !== undefined) sourceOptions.signal = options.signal;
    this.source = openCaptures(names, sourceOptions);
  }

  /** run reads everything into the sink; resolves to `stats` once the sink has finished. Called again, returns the same promise. */
  run(): Promise<ReadStats> {
    if (this.running === null) abandonOnFault(this.sink, [this.source, this.filter, this.tcp]);
    this.running ??= runPipeline(this.filter === null ? [this.source, this.tcp, this.sink] : [this.source, this.filter, this.tcp, this.sink], this.sink).then(() => this.stats);
    return this.running;
  }

  /** Each input's counters (bytes, packets, state), live. */
  inputStats(): InputStats[] {
    return this.source.inputStats();
  }

  /** Every stage's counters, live (see ReadStats). */
  get stats(): ReadStats {
    // in print order: reader, filter, reorder, decoder, demux, shard, reassembler, sink, readChunks
    return {
      reader: this.source.inputStats(),
      ...(this.filter === null ? {} : { filter: this.filter.core.stats }),
      ...(this.tcp.reorder === null ? {} : { reorder: this.tcp.reorder.stats }),
      decoder: this.tcp.decoder.stats,
      demux: this.tcp.demux.stats,
      ...(this.tcp.select === null ? {} : { shard: this.tcp.select.stats }),
      reassembler: this.tcp instanceof TcpStreamTransform ? this.tcp.reassembler.stats : ((this.sink as ShardSink).reassemblerStats ?? ({} as TcpReassemblerStats)),
      sink: (this.sink as { stats?: unknown }).stats,
      ...(this.chunks === null ? {} : { readChunks: this.chunks.stats }),
    };
  }
}

/**
 * abandonOnFault: a sink with an `abandon(err)` method (NatsSink) hears of a fault in a stage
 * before it, before runPipeline ends it as at end of input (these listeners are added first), so
 * that it can tell the end after a fault from the end of the input (see NatsSink.abandon).
 */
function abandonOnFault(sink: Writable, stages: readonly (NodeJS.EventEmitter | null)[]): void {
  const abandon = (sink as { abandon?: unknown }).abandon;
  if (typeof abandon !== 'function') return;
  for (const s of stages) s?.once('error', (err: unknown) => (abandon as (err: unknown) => void).call(sink, err));
}

/**
 * readCaptures reassembles every TCP connection of `inputs` (file names, `-` for
 * `options.stdin`, or one stream of capture bytes) into `options.sink`, as `pcapflow read`
 * does, and resolves to every stage's counters. See ReadPipeline.
 */
export async function readCaptures(inputs: ReadInput | readonly ReadInput[], options: ReadCapturesOptions): Promise<ReadStats> {
  return new ReadPipeline(inputs, options).run();
}

/**
 * chunkPoolFor: a ChunkPool of `size`-byte chunks whose holders are the sink (FilesSink: data to
 * be written; NdjsonSink: payloads its render thread still encodes), the reassembler (views
 * kept for overlap checks) and the reorder window (packets it holds): with plain chunking and
 * nothing between the source and these stages, nothing else reads a chunk after its batch
 * (bench/PROFILE.md, "Fourth pass"). Call before the first packet.
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

/**
 * sharedChunks: how the source reads files when the sink may hand their bytes to a second thread
 * (FilesSink's write thread, NdjsonSink's render thread): into SharedArrayBuffers, only while
 * the sink asks (`wantsSharedChunks`; a SharedArrayBuffer comes zero-filled), from a ChunkPool
 * (chunkPoolFor) with plain chunking, so that they are reused. Merged inputs (several, `time`
 * order) share chunks only while one of them is open (see CaptureSource), which keeps the pool's
 * holders' read order.
 *
 * V8 does not count SharedArrayBuffers when it schedules collections, so new chunks count toward
 * a full collection every COLLECT_EVERY bytes (fullCollection, taken at the first one). With the
 * pool the first new chunk collects too, for the ordinary chunks read before sharing began;
 * with push chunking (which can emit an old view after newer ones) there is no pool and every
 * shared chunk is new. Measured (issue 14, 569 MB of 200 connections, --sink files, 15 runs
 * each): with the pool that one collection put peak RSS at 126-151 MB (median 135) against
 * 129-153 (146) without, the time within the noise; with push chunking 214-218 MB against
 * 296-308. Payload-encoding runs (NDJSON) and inputs the threads never start on (57 MB) allocate
 * few or no shared chunks and did not differ. Files (`fileBytes`) of COLLECT_EVERY bytes or
 * less skip that first collection: what was read before sharing is less than one period's
 * worth, and the collection cost 2 000 short connections (8 MB) some 20 ms of their 0.6 s.
 */
function sharedChunks(sink: FilesSink | NdjsonSink, tcp: TcpStreamTransform, readSize: number, plain: boolean, fileBytes: number | null): OpenCapturesOptions['sharedChunks'] {
  let gc: (() => void) | null | undefined;
  const collect = (): void => (gc === undefined ? (gc = fullCollection()) : gc)?.();
  const when = (): boolean => sink.wantsSharedChunks;
  if (!plain) return { collect, when };
  const small = fileBytes !== null && fileBytes <= COLLECT_EVERY;
  const pool = chunkPoolFor(sink, tcp, readSize, { collect: { run: collect, every: COLLECT_EVERY, since: small ? 0 : COLLECT_EVERY } });
  return { when, pool };
}

/**
 * EARLY_WRITE_THREAD_INPUT: from this many bytes of capture files on, a files sink's write
 * thread starts at the first flush with a closed connection's file and takes the files written
 * whole from the first (FilesSink's `early`, and `hereFiles` 0, not 4096): on such an input of
 * short connections it starts anyway, and started early its heap is made before the main
 * thread's young generation reaches its cap, which V8 lets grow past it while a worker's heap is
 * made (heap.ts, workerStarted). Measured on 50 000 short connections: peak RSS 144 MiB against
 * 173 before (with the smaller demux entries and name table), the same CPU time.
 */
export const EARLY_WRITE_THREAD_INPUT = 64 * 1024 * 1024;

/**
 * buildSink builds the sink `spec` describes, with the pipeline's defaults (see ReadSinkSpec):
 * `heldOutputBytes` for a files sink's maxHeldBytes, `fileBytes` (the input's size, null when
 * not files) for the render thread's default. Throws INVALID_OPTION for an unknown type.
 */
export function buildSink(spec: ReadSinkSpec, heldOutputBytes: number, fileBytes: number | null): Writable {
  if (spec.type === 'files') {
    const { type: _type, ...o } = spec;
    const thread = o.writeThread ?? true;
    const early = thread === true && fileBytes !== null && fileBytes >= EARLY_WRITE_THREAD_INPUT;
    return new FilesSink({ ...o, writeThread: early ? { hereFiles: 0, early: true } : thread, maxHeldBytes: o.maxHeldBytes ?? heldOutputBytes });
  }
  if (spec.type === 'ndjson') {
    const { type: _type, ...o } = spec;
    return new NdjsonSink({ ...o, renderThread: o.renderThread ?? renderThreadByDefault(fileBytes) });
  }
  if (spec.type === 'stdout') {
    const { type: _type, ...o } = spec;
    return new StdoutSink(o);
  }
  throw new PcapflowError('INVALID_OPTION', `unknown sink type ${JSON.stringify((spec as { type?: unknown }).type)}: use files, ndjson or stdout`);
}

/** specThreads: the sink built from `spec` may take shared read chunks on a second thread. */
function specThreads(sink: Writable, spec: ReadSinkSpec, fileBytes: number | null): boolean {
  if (spec.type === 'files') return sink instanceof FilesSink && spec.writeThread !== false;
  if (spec.type === 'ndjson') return sink instanceof NdjsonSink && (spec.renderThread ?? renderThreadByDefault(fileBytes)) !== false && spec.encoding !== 'utf8';
  return false;
}

/** sinkReadSize: the read size a sink of the caller's own asks for (a positive integer `readSize`), else null. */
function sinkReadSize(sink: Writable): number | null {
  const n = (sink as { readSize?: unknown }).readSize;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : null;
}

function isWritable(sink: ReadSinkSpec | Writable): sink is Writable {
  return typeof (sink as { write?: unknown }).write === 'function';
}

/** inputNamesOf: the inputs as names for openCaptures, a stream of capture bytes becoming `-`. Throws INVALID_OPTION for two stdin-like inputs. */
function inputNamesOf(inputs: readonly ReadInput[], stdin: NodeJS.ReadableStream | undefined): { names: string[]; stdin: NodeJS.ReadableStream | undefined } {
  if (inputs.length === 0) throw new PcapflowError('INVALID_OPTION', 'no capture input given');
  let stream: NodeJS.ReadableStream | undefined;
  const names = inputs.map((input) => {
    if (typeof input === 'string') return input;
    if (!(input instanceof Readable) && typeof (input as { pipe?: unknown }).pipe !== 'function') {
      throw new PcapflowError('INVALID_OPTION', `a capture input is a file name, '-' or a readable stream, not ${typeof input}`);
    }
    if (stream !== undefined || inputs.includes('-')) throw new PcapflowError('INVALID_OPTION', "only one input can be a stream (or '-')");
    stream = input;
    return '-';
  });
  return { names, stdin: stream ?? stdin };
}

/** fileBytesOf: the total size of `names` when all are files one can stat, else null (stdin, a missing file: the source reports those). */
function fileBytesOf(names: readonly string[]): number | null {
  let total = 0;
  for (const name of names) {
    if (name === '-') return null;
    try {
      total += statSync(name).size;
    } catch {
      return null;
    }
  }
  return total;
}
