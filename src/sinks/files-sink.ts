import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import type {
  CloseEvent,
  OpenEvent,
  StreamEvent,
} from '../core/events.js';
import { planMemory } from '../core/memory-budget.js';
import { FdPool, type FdPoolStats } from './fd-pool.js';
import { RecordWriter } from './connection-records.js';
import { FileNamer, isOutputError, outputError, PART_SUFFIX } from './files-layout.js';
import { firstRank, newDir, PendingQueue, type DirState, type Taken } from './files-pending.js';
import { ThreadWrites, type WriteThreadOption } from './files-thread.js';
import type { WriteThread } from './write-thread.js';
import { TakenBound } from './shared-index.js';

export { PART_SUFFIX };

export interface FilesSinkOptions {
  /** Output directory; created (with its parents) when missing. */
  dir: string;
  /**
   * Spread the files over subdirectories of `dir` by connection number (the record's `conn`,
   * from 0 in order of open, tshark's tcp.stream), as tcpflow's `-Fk`/`-Fm`/`-Fg` do (default:
   * none, every file in `dir`). With K = floor(conn / 1000) % 1000, M = floor(conn / 10^6) %
   * 1000, G = floor(conn / 10^9) % 1000, each printed as 3 digits:
   * - `'k'`: `KKK/` (1 level; 1000 directories, which wrap around past 1 000 000 connections);
   * - `'m'`: `MMM000-MMM999/MMMKKK/` (2 levels, up to 10^9 connections);
   * - `'g'`: `GGG000000-GGG999999/GGGMMM000-GGGMMM999/GGGMMMKKK/` (3 levels).
   * Connection 1234567 with `'m'`: `001000-001999/001234/NAME`. The names inside are tcpflow's;
   * `c<N>` counts per directory, as tcpflow's does (it takes the first name free in that
   * directory). The directory names and nesting are tcpflow's; its number is that of the
   * direction (a connection's two directions are two numbers), so its directories hold 1000 files
   * and a connection's two files may be in two; here they hold at most 2000 files, and both files
   * of a connection are side by side in the directory its `conn` tells. Bins by connection count
   * rather than by time (tcpflow's `-T %T/...` templates), so that a directory's size is bounded
   * however bursty the traffic: 2000 files, far below the 10 000 entries tcpflow warns at (with
   * `'k'` past 10^6 connections, 2000 more per million: take `'m'` there). The `file` fields of connections.ndjson are
   * then paths relative to `dir` (`000/010.000.000.001.00080-...`). A subdirectory is made (fs
   * mkdirSync, once) before its first file is named.
   */
  subdirs?: 'k' | 'm' | 'g';
  /**
   * Most flow-file descriptors open at once (default: defaultMaxOpenFiles(), half the soft limit, 16 to 1024). Files beyond it are closed least
   * recently used first and reopened in append mode when written again. connections.ndjson holds
   * one more descriptor for the whole run.
   */
  maxOpenFiles?: number;
  /** Files written (or closed and renamed) at once within a batch (default 4, at most maxOpenFiles). */
  concurrency?: number;
  /** Gaps and overlaps listed per direction in connections.ndjson (default 1000); the rest are counted in `unlisted`. */
  maxListed?: number;
  /**
   * Gaps and overlaps held for the records of all connections still open (default 100 000, about
   * 10 MB); past it they are counted in `unlisted` too, so that crafted input cannot grow the
   * lists without bound.
   */
  maxListedTotal?: number;
  /**
   * A direction's bytes are written once this many are pending (default 64 KiB), or when its
   * oldest pending bytes are `coalesceBatches` batches old (default 8), or when its connection
   * closes. 0 writes every batch's bytes at once.
   */
  coalesceBytes?: number;
  coalesceBatches?: number;
  /**
   * A direction whose pending bytes are `coalesceBatches` batches old and fewer than
   * coalesceBytes / 8 (a connection that sends a little now and then amid other traffic) is
   * not written then: its bytes are copied out of the read chunks (which the views would keep
   * alive) and held until it has coalesceBytes, its connection closes, or the copies of all
   * directions would pass this many bytes; then every held direction is written (default: the
   * held-output share of the default memory budget, 16 MiB; 0 copies nothing).
   */
  maxHeldBytes?: number;
  /**
   * While a write is in flight, batches are taken at once until this many bytes were collected
   * since it started (default 4 MiB): data, and the connections.ndjson records of the
   * connections that closed; 0 makes every batch wait for the write before it.
   */
  aheadBytes?: number;
  /** Batches buffered before the sink pushes back on its writer (object mode); default 1 (see tcp-transforms.ts). */
  highWaterMark?: number;
  /**
   * Write the files from a worker thread (default false): one message per flush instead of a
   * thread-pool write per file, and no copy for bytes in SharedArrayBuffers (openCaptures'
   * `sharedChunks`). A flush goes to the thread only when nearly all its bytes are in
   * SharedArrayBuffers and its chunks average at least `minAverage` bytes (default 512; smaller
   * ones cost the thread more than they save) and it writes `minFiles` files or more (default 8:
   * one or two files gain nothing from it), once `afterBytes` bytes were collected (default 64
   * MiB: on a smaller input, starting the thread costs more than it saves); other flushes are
   * written as without it. The thread starts at the first flush it takes. `wantsSharedChunks`
   * tells the source whether to share.
   * Files of connections that closed before their first write are written whole (ThreadWrites,
   * files-thread.ts): the first `hereFiles` of a run (default 4096) on this thread with
   * synchronous calls, later ones by the thread, whatever their shape. `early: true` starts the
   * thread at the first flush with a file to write whole (see EARLY_WRITE_THREAD_INPUT in
   * read-pipeline.ts).
   */
  writeThread?: WriteThreadOption;
  /**
   * Where the connections.ndjson lines go instead of that file (a shard worker hands them to the
   * thread that writes the file): called in order of close with each flush's lines (bytes valid
   * only during the call) and their count; no connections.ndjson is made.
   */
  recordsTo?: (lines: Uint8Array, count: number) => void;
  /**
   * Write, close and rename with synchronous calls on this thread instead of the thread pool
   * (and files of connections that closed before their first write whole, here): for live
   * capture, where a write waiting for a pool thread on a busy machine held up the pipeline
   * until packets were dropped, while the kernel's capture buffer absorbs the time a synchronous
   * write takes. Default false. The write thread (writeThread) is not used with it.
   */
  syncWrites?: boolean;
}

/** The descriptor pool's size when the process limit cannot be read. */
export const DEFAULT_MAX_OPEN_FILES = 64;

/**
 * openFilesLimit reads the soft limit on open files from /proc/self/limits (Linux); null when it
 * cannot be read or is unlimited. `text` is for tests.
 */
export function openFilesLimit(text?: string): number | null {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = fs.readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  return m === null || m[1] === 'unlimited' ? null : Number(m[1]);
}

/**
 * defaultMaxOpenFiles: half the process's soft limit on open files (the rest stays free for
 * inputs, stdio and libraries), between 16 and 1024; DEFAULT_MAX_OPEN_FILES when the limit is
 * unknown. Reopening files is what costs most when many connections interleave, so the pool is
 * as large as the limit comfortably allows.
 */
export function defaultMaxOpenFiles(limit: number | null = openFilesLimit()): number {
  if (limit === null) return DEFAULT_MAX_OPEN_FILES;
  return Math.max(16, Math.min(1024, Math.floor(limit / 2)));
}
export const CONNECTIONS_FILE = 'connections.ndjson';

/** Counters of a FilesSink; keys are stable. */
export interface FilesSinkStats extends FdPoolStats {
  batches: number;
  events: number;
  /** Flow files created (renamed to their final name at close). */
  files: number;
  /** Records written to connections.ndjson. */
  connections: number;
  gaps: number;
  overlaps: number;
  /** Flushes written by the write thread (writeThread). */
  threadFlushes: number;
  /** Files written whole (created, written, closed and renamed) by the write thread: short connections. */
  wholeFiles: number;
  /** Bytes copied out of read chunks for sparse directions (maxHeldBytes), the most held at once, and the flushes that wrote them all for room. */
  heldCopied: number;
  peakHeld: number;
  heldSpills: number;
}

interface ConnState {
  readonly open: OpenEvent;
  readonly c2s: DirState;
  readonly s2c: DirState;
  lastTs: string;
  close: CloseEvent | null;
}

/** What one flush writes: each direction's chunks (Taken), the connections closed, their record lines. */
interface Flush extends Taken {
  closing: ConnState[];
  lines: Buffer;
  lineCount: number;
}

const DEFAULT_MAX_LISTED_TOTAL = 100_000;

/**
 * Defaults of coalesceBytes and coalesceBatches: many interleaved connections then cost a few
 * large writev calls instead of one small one per file per batch. The pending chunks are views
 * of read chunks, so the age bound also bounds the read chunks they keep alive (8 batches of
 * input, some 4 MiB).
 */
const COALESCE_BYTES = 64 * 1024;
const COALESCE_BATCHES = 8;

/** Default of maxHeldBytes: the held-output share of the default memory budget. */
const MAX_HELD_BYTES = planMemory().heldOutputBytes;

/**
 * Default of aheadBytes: while a write is in flight, batches are taken at once until this many
 * bytes were collected since it started; then the next batch waits for it. A disk that is slow for a moment (the
 * kernel's copy takes 1.5 ms a MiB on average, several ms now and then) then does not stall the
 * stages before the sink; a disk that stays slower than they are still slows them.
 */
const AHEAD_BYTES = 4 << 20;

function writeAllFd(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number): void => {
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
        if (err) return reject(err);
        if (off + n < buf.length) step(off + n);
        else resolve();
      });
    };
    step(0);
  });
}

/**
 * FilesSink writes each connection direction that carries data to its own file in `dir`, named
 * as tcpflow names them (`%A.%a-%B.%b%V%v%C%c`, see flowBaseName/flowFileName in
 * src/core/format.ts): `SRCIP.SPORT-DSTIP.DPORT`, `--<vlan>` when tagged, `c<N>` when N earlier
 * files of this run had the same name (a reused 4-tuple). An empty direction gets no file. With
 * the option `subdirs` (tcpflow's -Fk/-Fm/-Fg), the files go to subdirectories of `dir` by
 * connection number (`000/NAME`, made on this thread when first needed), `c<N>` counts per
 * subdirectory, and the file names in connections.ndjson are paths relative to `dir`.
 *
 * Each file holds exactly its direction's bytes in stream order, with nothing at gaps; the gaps
 * (and overlaps) are listed in DIR/connections.ndjson, one ConnectionRecord per closed
 * connection, written after its files were renamed. A file is written as NAME.part and renamed to
 * NAME when its connection closes (or at the end), so a watcher only sees finished files; except a
 * file written whole by the write thread (a connection that closed before its first write, see
 * ThreadWrites in files-thread.ts), which is created under its final name, written with one
 * writev and closed at once (a rename per file was a fifth of the work on short connections). The
 * directory is treated as this run's: existing files with the same names are replaced, and
 * connections.ndjson is truncated at start.
 *
 * Parts (each module's comment states its contract): files-layout.ts names the files and makes
 * the subdirectories (FileNamer); files-pending.ts keeps the bytes not yet written and the copies
 * of sparse directions (PendingQueue); files-thread.ts decides what the write thread writes and
 * writes the files written whole (ThreadWrites); connection-records.ts renders the records. This
 * class collects the events, keeps the connections and their gap lists, and runs the flushes.
 *
 * Writes: each batch's chunks are collected per file and written with one writev per file
 * (FdPool: an LRU of at most maxOpenFiles descriptors; an evicted file is reopened in append
 * mode). One such write is in flight while the next batches are collected (see _write); once 4
 * MiB (data and record lines) were collected meanwhile, the next batch waits for it, so a slow
 * disk slows the pipeline, and memory holds at most highWaterMark batches, the bytes pending per
 * file (64 KiB or 8 batches old, see coalesceBytes), the write in flight and 4 MiB plus one
 * batch, plus the bookkeeping of open connections (their names and listed gaps) and one counter
 * per distinct base name used in the run (for `c<N>`; per subdirectory and base name with subdirs).
 * With `writeThread`, a flush of many files of shared chunks is written by a WriteThread
 * instead, as one job (see the option).
 *
 * Errors: any file-system failure (ENOSPC, EACCES, ENOENT, EMFILE beyond the pool, ...) fails
 * the sink with PcapflowError OUTPUT_FAILED, with the file in `file` and the fs error as
 * `cause`; a data, gap or overlap event for a connection never opened is OUTPUT_FAILED too (the
 * producer broke the event order). After a failure, descriptors are closed and .part files are
 * left as they are.
 */
export class FilesSink extends Writable {
  readonly dir: string;
  /** `dir` normalized, with a trailing separator (FileNamer's prefix): a file's path is prefix + name. */
  private readonly prefix: string;
  private readonly pool: FdPool;
  private readonly concurrency: number;
  private readonly maxListed: number;
  private readonly maxListedTotal: number;
  /** The most bytes of copies held for sparse directions (the option maxHeldBytes). */
  readonly maxHeldBytes: number;
  private readonly aheadBytes: number;
  /** Gap and overlap entries held in the lists of connections not yet written. */
  private listed = 0;
  private readonly conns = new Map<number, ConnState>();
  private recordsFd = -1;
  private readonly recordsTo: ((lines: Uint8Array, count: number) => void) | null;
  private readonly syncWrites: boolean;
  /** The write in flight (a flush, or the final one), so that destroy waits for it before closing descriptors. */
  private inflight: Promise<void> | null = null;
  /** The callback of a batch collected while a flush was in flight. */
  private held: ((error?: Error | null) => void) | null = null;
  /** The failure of a flush whose batch was already acknowledged. */
  private failure: Error | null = null;
  private readonly counters = { batches: 0, events: 0, files: 0, connections: 0, gaps: 0, overlaps: 0, threadFlushes: 0, wholeFiles: 0, heldCopied: 0, peakHeld: 0, heldSpills: 0 };
  /** Bytes collected since the flush in flight took its share, data and record lines (see _write). */
  private ahead = 0;
  /** Connections closed in this batch, in order: their state, or the finished line of one that wrote no file. */
  private readonly closing: ConnState[] = [];
  /** Bytes of data collected so far. */
  private collectedBytes = 0;
  /** Bounds the chunks of the data on its way here (see heldFrom). */
  private readonly taken = new TakenBound();
  /** The chunks of the flush being written; null between flushes. */
  private flushing: Uint8Array[][] | null = null;
  /** File names, subdirectories and NAME.part paths (files-layout.ts). */
  private readonly namer: FileNamer;
  /** The directions with bytes not yet written, and the copies held for sparse ones (files-pending.ts). */
  private readonly pending: PendingQueue;
  /** The write thread and the files written whole (files-thread.ts). */
  private readonly threads: ThreadWrites;

  constructor(options: FilesSinkOptions) {
    const maxOpen = options.maxOpenFiles ?? defaultMaxOpenFiles();
    const concurrency = options.concurrency ?? 4;
    // Checked before super(): a half-built stream would still run _construct.
    const subdirs = options.subdirs ?? null;
    if (subdirs !== null && subdirs !== 'k' && subdirs !== 'm' && subdirs !== 'g') {
      throw new PcapflowError('INVALID_OPTION', `subdirs must be 'k', 'm' or 'g', got ${JSON.stringify(subdirs)}`);
    }
    positiveInteger('maxOpenFiles', maxOpen);
    positiveInteger('concurrency', concurrency);
    positiveInteger('maxListed', options.maxListed ?? 1000, 0);
    positiveInteger('maxListedTotal', options.maxListedTotal ?? DEFAULT_MAX_LISTED_TOTAL, 0);
    positiveInteger('coalesceBytes', options.coalesceBytes ?? COALESCE_BYTES, 0);
    positiveInteger('coalesceBatches', options.coalesceBatches ?? COALESCE_BATCHES, 0);
    positiveInteger('aheadBytes', options.aheadBytes ?? AHEAD_BYTES, 0);
    positiveInteger('maxHeldBytes', options.maxHeldBytes ?? MAX_HELD_BYTES, 0);
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? 1 });
    this.dir = options.dir;
    this.prefix = path.join(options.dir, 'x').slice(0, -1);
    this.namer = new FileNamer(this.prefix, subdirs);
    this.pool = new FdPool(maxOpen);
    this.concurrency = Math.min(concurrency, maxOpen);
    this.maxListed = options.maxListed ?? 1000;
    this.maxListedTotal = options.maxListedTotal ?? DEFAULT_MAX_LISTED_TOTAL;
    this.maxHeldBytes = options.maxHeldBytes ?? MAX_HELD_BYTES;
    this.pending = new PendingQueue(options.coalesceBytes ?? COALESCE_BYTES, options.coalesceBatches ?? COALESCE_BATCHES, this.maxHeldBytes, this.counters);
    this.aheadBytes = options.aheadBytes ?? AHEAD_BYTES;
    this.recordsTo = options.recordsTo ?? null;
    this.syncWrites = options.syncWrites ?? false;
    this.threads = new ThreadWrites(options.writeThread ?? false, this.syncWrites, this.namer, this.pool, this.counters);
  }

  /**
   * wantsSharedChunks: the write thread is on and the last flush of 1 MiB or more was of the
   * shape it takes (files and average chunk size), so the bytes read next had better be in
   * SharedArrayBuffers (openCaptures' sharedChunks `when`).
   */
  get wantsSharedChunks(): boolean {
    return this.threads.suits;
  }

  /** The write thread; null until a job needed it. */
  private get thread(): WriteThread | null {
    return this.threads.thread;
  }

  /**
   * heldFrom tells a pool of read chunks which it may refill: the lowest `rank` (Infinity for a
   * buffer that is no read chunk) among the chunks that data still to be written (pending or in
   * the flush being written) are views of, and of the last data collected. It relies on data
   * views arriving in read order (the reassembler's plain chunking): a chunk ranked below the
   * last collected data's has no data in transit to the sink either, and the first read-chunk
   * view of a file's pending list is its oldest.
   */
  heldFrom(rank: (buf: ArrayBufferLike) => number): number {
    let min = this.pending.lowest(rank, this.taken.lowest(rank));
    const flushing = this.flushing;
    if (flushing !== null) {
      for (let i = 0; i < flushing.length; i++) {
        const r = firstRank(flushing[i]!, rank);
        if (r < min) min = r;
      }
    }
    return min;
  }

  /** Live counters (a fresh object each read). */
  get stats(): Readonly<FilesSinkStats> {
    return { ...this.counters, ...this.pool.stats };
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const records = path.join(this.dir, CONNECTIONS_FILE);
    fs.mkdir(this.dir, { recursive: true }, (err) => {
      if (err) return callback(outputError(this.dir, err));
      if (this.recordsTo !== null) return callback();
      fs.open(records, 'w', 0o644, (err2, fd) => {
        if (err2) return callback(outputError(records, err2));
        this.recordsFd = fd;
        callback();
      });
    });
  }

  /**
   * _write collects the batch synchronously, then writes it while later batches are collected:
   * one write (a Flush) is in flight at a time; batches that arrive meanwhile are taken at once
   * until aheadBytes were collected, and the callback of the next one is held until the write
   * finished and the next started. So the pipeline upstream keeps working while the kernel
   * copies bytes. A failure of a write whose batch was already acknowledged fails the next
   * write or the final.
   */
  override _write(batch: readonly StreamEvent[], _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    try {
      this.collect(batch);
    } catch (err) {
      return callback(err as Error);
    }
    if (this.inflight === null) {
      this.startFlush();
      callback();
    } else if (this.ahead < this.aheadBytes) {
      callback();
    } else {
      this.held = callback;
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    const work = (async () => {
      if (this.inflight !== null) await this.inflight;
      if (this.failure !== null) throw this.failure;
      for (const st of this.conns.values()) this.connClosed(st);
      this.conns.clear();
      await this.flush(this.takeFlush(true));
      await this.thread?.stop();
      await this.pool.closeAll();
      await this.closeRecords();
    })();
    this.track(
      work,
      () => callback(),
      (err) => callback(isOutputError(err) ? err : outputError(this.dir, err)),
    );
  }

  /** startFlush starts writing what was collected; when done, it starts the next one for a held batch and releases it. */
  private startFlush(): void {
    this.track(
      this.flush(this.takeFlush()),
      () => {
        const held = this.held;
        this.held = null;
        if (held === null) return;
        this.startFlush();
        held();
      },
      (err) => {
        this.failure = err as Error;
        const held = this.held;
        this.held = null;
        held?.(this.failure);
      },
    );
  }

  /** track keeps `work` as the write in flight until it settles, then runs `done` or `failed`. */
  private track(work: Promise<void>, done: () => void, failed: (err: unknown) => void): void {
    this.inflight = work;
    work.then(
      () => {
        this.inflight = null;
        done();
      },
      (err: unknown) => {
        this.inflight = null;
        failed(err);
      },
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const pending = this.inflight ?? Promise.resolve();
    pending
      .catch(() => undefined)
      .then(async () => {
        await this.thread?.stop().catch(() => undefined);
        await this.pool.closeAll().catch(() => undefined);
        await this.closeRecords().catch(() => undefined);
      })
      .then(() => callback(err));
  }

  /** collect files the batch's chunks per direction and its gaps, overlaps and closes (synchronous). */
  private collect(batch: readonly StreamEvent[]): void {
    this.counters.batches++;
    this.counters.events += batch.length;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      switch (e.type) {
        case 'data': {
          if (e.data.length === 0) break;
          const st = this.state(e.conn);
          const d = e.dir === 'c2s' ? st.c2s : st.s2c;
          if (d.name === null) this.nameFile(st, d);
          this.pending.add(d, e.data, this.counters.batches);
          this.taken.took(e.data.buffer);
          this.ahead += e.data.length;
          this.collectedBytes += e.data.length;
          st.lastTs = e.ts;
          break;
        }
        case 'open': {
          const next = batch[i + 1];
          if (next !== undefined && next.type === 'close' && next.conn === e.conn) {
            // closed at once, no data (a SYN flood's connections): its record, without state
            const before = this.records.length;
            this.records.quiet(e, next);
            this.ahead += this.records.length - before;
            i++;
            break;
          }
          this.conns.set(e.conn, { open: e, c2s: newDir('c2s'), s2c: newDir('s2c'), lastTs: e.ts, close: null });
          break;
        }
        case 'gap': {
          const st = this.state(e.conn);
          const d = e.dir === 'c2s' ? st.c2s : st.s2c;
          d.gaps++;
          d.missing += e.len;
          this.counters.gaps++;
          st.lastTs = e.ts;
          d.gapList = this.keepListed(d, d.gapList, { offset: e.offset, len: e.len, reason: e.reason });
          break;
        }
        case 'overlap': {
          const st = this.state(e.conn);
          const d = e.dir === 'c2s' ? st.c2s : st.s2c;
          d.overlaps++;
          this.counters.overlaps++;
          st.lastTs = e.ts;
          d.overlapList = this.keepListed(d, d.overlapList, { offset: e.offset, len: e.len, kept: e.kept });
          break;
        }
        case 'close': {
          const st = this.state(e.conn);
          st.close = e;
          this.conns.delete(e.conn);
          this.connClosed(st);
          break;
        }
      }
    }
  }

  /**
   * keepListed appends `item` to a direction's gap or overlap list while the per-direction and
   * total limits allow, else counts it in `unlisted`; returns the (possibly new) list.
   */
  private keepListed<T>(d: DirState, list: T[] | null, item: T): T[] | null {
    if ((list?.length ?? 0) >= this.maxListed || this.listed >= this.maxListedTotal) {
      d.unlisted++;
      return list;
    }
    this.listed++;
    const out = list ?? [];
    out.push(item);
    return out;
  }

  private state(conn: number): ConnState {
    const st = this.conns.get(conn);
    if (st === undefined) {
      throw new PcapflowError('OUTPUT_FAILED', `event for connection ${conn} before its open event`, { conn });
    }
    return st;
  }

  /** nameFile gives a direction its file name (FileNamer.name: tcpflow's, `SUB/` first with the option subdirs) and counts the file. */
  private nameFile(st: ConnState, d: DirState): void {
    d.name = this.namer.name(st.open, d.dir);
    this.counters.files++;
  }

  /**
   * takeFlush takes everything collected so far (the files' chunks, as PendingQueue.take gives
   * them, the closed connections and their record lines) out of the collecting state, so that
   * the next batch collects into fresh state while this is written.
   */
  private takeFlush(all = false): Flush {
    const { dirs, chunks } = this.pending.take(this.counters.batches, all);
    this.ahead = 0;
    // the writer's two buffers take turns: the other one is free, its flush has finished
    const lineCount = this.records.lines;
    const flush: Flush = { dirs, chunks, closing: this.closing.splice(0), lines: this.records.take(), lineCount };
    return flush;
  }

  /** flush writes a Flush (see flushChunks); heldFrom sees its chunks meanwhile. */
  private async flush(f: Flush): Promise<void> {
    this.flushing = f.chunks;
    try {
      await this.flushChunks(f);
    } finally {
      this.flushing = null;
    }
  }

  /**
   * flushChunks: the files written whole (see ThreadWrites.split) go to ThreadWrites.writeWhole;
   * the others get one writev per file (or one job of the write thread); then the closed
   * connections' renames and records.
   */
  private async flushChunks(all: Flush): Promise<void> {
    const split = this.threads.split(all);
    if (split === null) {
      await this.flushOpen(all);
      return this.finishClosed(all);
    }
    const wholeDone = this.threads.writeWhole(split.whole);
    const restDone = this.flushOpen(split.rest);
    // both settle before either failure is reported: no write is left running
    const [a, b] = await Promise.allSettled([wholeDone, restDone]);
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
    await this.finishClosed(all);
  }

  /** flushOpen: one writev per file (or one job of the write thread, ThreadWrites.write). */
  private async flushOpen(f: Taken): Promise<void> {
    for (const d of f.dirs) d.written = true;
    const viaThread = this.threads.write(f, this.collectedBytes);
    if (viaThread !== null) return viaThread;
    if (this.syncWrites) {
      for (let i = 0; i < f.dirs.length; i++) {
        const part = this.namer.partOf(f.dirs[i]!);
        try {
          this.pool.writeSync(part, f.chunks[i]!);
        } catch (err) {
          throw outputError(part, err);
        }
      }
      return;
    }
    const indexes = f.dirs.map((_d, i) => i);
    await this.runAll(indexes, async (i) => {
      const part = this.namer.partOf(f.dirs[i]!);
      try {
        await this.pool.write(part, f.chunks[i]!);
      } catch (err) {
        throw outputError(part, err);
      }
    });
  }

  /**
   * connClosed takes a connection that closed (or is still open at the end): its files are renamed
   * by the next finishClosed, and its record line is rendered now, in order of close.
   */
  private connClosed(st: ConnState): void {
    this.closing.push(st);
    st.c2s.closed = true;
    st.s2c.closed = true;
    const before = this.records.length;
    this.records.connection(st.open, st.close, st.lastTs, st.c2s, st.s2c);
    this.ahead += this.records.length - before;
    this.listed -= (st.c2s.gapList?.length ?? 0) + (st.c2s.overlapList?.length ?? 0) + (st.s2c.gapList?.length ?? 0) + (st.s2c.overlapList?.length ?? 0);
  }

  /**
   * The records of the connections closed since the last flush, written as bytes as they close
   * (RecordWriter): a SYN flood closes thousands of connections per batch, and holding their lines
   * as strings until the write made V8 promote and then slowly flatten them. The lines count
   * toward aheadBytes like data: a flood's records are megabytes a batch, and while a slow flush
   * (many files) was in flight they piled up here without bound (bench/PROFILE.md, "Sixth pass").
   */
  private readonly records = new RecordWriter();

  /** finishClosed closes and renames the files of the flush's closed connections, then writes its records. */
  private async finishClosed(f: Flush): Promise<void> {
    if (f.closing.length === 0 && f.lines.length === 0) return;
    const files: DirState[] = [];
    for (const st of f.closing) {
      if (st.c2s.name !== null && !st.c2s.whole) files.push(st.c2s);
      if (st.s2c.name !== null && !st.s2c.whole) files.push(st.s2c);
    }
    if (this.syncWrites) {
      for (const d of files) {
        const part = this.namer.partOf(d);
        try {
          this.pool.closeSync(part);
          fs.renameSync(part, this.prefix + d.name!);
        } catch (err) {
          throw outputError(part, err);
        }
      }
    } else {
      await this.runAll(files, async (d) => {
        const part = this.namer.partOf(d);
        const final = this.prefix + d.name!;
        try {
          await this.pool.close(part);
          await fs.promises.rename(part, final);
        } catch (err) {
          throw outputError(part, err);
        }
      });
    }
    if (this.recordsTo !== null) {
      this.recordsTo(f.lines, f.lineCount);
      this.counters.connections += f.lineCount;
      return;
    }
    const records = path.join(this.dir, CONNECTIONS_FILE);
    try {
      if (this.syncWrites) {
        for (let at = 0; at < f.lines.length; ) at += fs.writeSync(this.recordsFd, f.lines, at);
      } else await writeAllFd(this.recordsFd, f.lines);
    } catch (err) {
      throw outputError(records, err);
    }
    this.counters.connections += f.lineCount;
  }

  /** runAll runs `fn` over `items`, `concurrency` at a time; on a failure it starts no more and waits for the running ones. */
  private async runAll<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    if (items.length === 0) return;
    let next = 0;
    let failure: unknown = null;
    const worker = async (): Promise<void> => {
      while (failure === null && next < items.length) {
        const item = items[next++]!;
        try {
          await fn(item);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = Math.min(this.concurrency, items.length); i > 0; i--) workers.push(worker());
    await Promise.all(workers);
    if (failure !== null) throw failure;
  }

  private async closeRecords(): Promise<void> {
    if (this.recordsFd < 0) return;
    const fd = this.recordsFd;
    this.recordsFd = -1;
    await new Promise<void>((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
  }
}

function positiveInteger(name: string, n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min) {
    throw new PcapflowError('INVALID_OPTION', `${name} must be an integer >= ${min}, got ${n}`);
  }
}

