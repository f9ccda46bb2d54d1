/**
 * FilesSink's use of its write thread (the option writeThread) and its files written whole.
 * ThreadWrites owns the WriteThread (started by the first job that needs it), the option's
 * thresholds and the answer of wantsSharedChunks (`suits`). `split` picks the files of a flush
 * that are written whole (closed before their first write, at most WHOLE_MAX_BYTES, when at least
 * WHOLE_MIN_FILES of them); `writeWhole` writes those under their final names (the first
 * hereFiles of a run here with synchronous calls, later ones by the thread); `write` writes a
 * flush of open files through the thread when its shape suits it (threadFit), else returns null
 * for the descriptor pool to write it. Failures are OUTPUT_FAILED naming the file; the counters
 * threadFlushes and wholeFiles are the sink's.
 */
import fs from 'node:fs';
import type { FdPool } from './fd-pool.js';
import { outputError, type FileNamer } from './files-layout.js';
import type { DirState, Taken } from './files-pending.js';
import { WriteThread, writevAllSync } from './write-thread.js';

/** The option writeThread (see FilesSinkOptions). */
export type WriteThreadOption = boolean | { minAverage?: number; minFiles?: number; afterBytes?: number; hereFiles?: number; early?: boolean };

/** The sink's counters that ThreadWrites keeps (see FilesSinkStats). */
export interface ThreadCounters {
  threadFlushes: number;
  wholeFiles: number;
}

/** Fewest files a flush writes whole through the write thread (split): fewer go to the thread pool. */
const WHOLE_MIN_FILES = 8;
/** The files a run writes whole on the main thread before it starts the write thread (writeWholeHere). */
const WHOLE_HERE_FILES = 4096;

/** Files written whole in one flush that make the sink ask for shared read chunks (wantsSharedChunks). */
const WHOLE_SHARE_FILES = 64;
/** Largest file written whole (its bytes may be copied into the job). */
const WHOLE_MAX_BYTES = 1 << 20;
/** Most files in one writeWhole job. */
const WHOLE_JOB_FILES = 1024;

/** Default of writeThread's minAverage. */
const THREAD_MIN_AVERAGE = 512;

/** Default of writeThread's minFiles. */
const THREAD_MIN_FILES = 8;

/** Default of writeThread's afterBytes. */
const THREAD_AFTER_BYTES = 64 << 20;

/** Bytes a flush needs for its shape to set wantsSharedChunks. */
const SHAPE_BYTES = 1 << 20;

export class ThreadWrites {
  /** The write thread; null until a job needed it. */
  thread: WriteThread | null = null;
  /** The last flush of SHAPE_BYTES or more (or of WHOLE_SHARE_FILES files written whole) was of the shape the thread takes: the sink's wantsSharedChunks. */
  suits = false;
  /** Smallest average chunk a flush sent to the write thread has; 0 when there is no write thread. */
  private readonly minAverage: number;
  private readonly minFiles: number;
  private readonly afterBytes: number;
  private readonly hereFiles: number;
  private readonly syncWrites: boolean;
  /** The option's `early`: start the thread at the first flush with a file to write whole. */
  private readonly early: boolean;

  constructor(
    option: WriteThreadOption,
    syncWrites: boolean,
    private readonly namer: FileNamer,
    private readonly pool: FdPool,
    private readonly counters: ThreadCounters,
  ) {
    this.minAverage = option === false ? 0 : typeof option === 'object' ? (option.minAverage ?? THREAD_MIN_AVERAGE) : THREAD_MIN_AVERAGE;
    this.minFiles = typeof option === 'object' ? (option.minFiles ?? THREAD_MIN_FILES) : THREAD_MIN_FILES;
    this.afterBytes = typeof option === 'object' ? (option.afterBytes ?? THREAD_AFTER_BYTES) : THREAD_AFTER_BYTES;
    this.hereFiles = typeof option === 'object' ? (option.hereFiles ?? WHOLE_HERE_FILES) : WHOLE_HERE_FILES;
    this.syncWrites = syncWrites;
    if (syncWrites) {
      this.minAverage = 0;
      this.hereFiles = Infinity;
    }
    this.early = typeof option === 'object' && option.early === true && this.minAverage > 0;
  }

  /**
   * split: the directions of the flush that can be written whole, and the rest; null when fewer
   * than WHOLE_MIN_FILES (or no write thread and no syncWrites): closed, never written before (no
   * NAME.part yet) and at most WHOLE_MAX_BYTES. A capture of short connections then costs one
   * message per flush instead of an open, a writev, a close and a rename handed to the thread
   * pool for every file (bench/PROFILE.md, "Seventh pass").
   */
  split(f: Taken): { whole: Taken; rest: Taken } | null {
    if (this.minAverage === 0 && !this.syncWrites) return null;
    let count = 0;
    for (let i = 0; i < f.dirs.length; i++) if (wholeFile(f.dirs[i]!)) count++;
    if (count > 0 && this.early) this.thread ??= new WriteThread();
    if (count < WHOLE_MIN_FILES) return null;
    const whole: Taken = { dirs: [], chunks: [] };
    const rest: Taken = { dirs: [], chunks: [] };
    for (let i = 0; i < f.dirs.length; i++) {
      const to = wholeFile(f.dirs[i]!) ? whole : rest;
      to.dirs.push(f.dirs[i]!);
      to.chunks.push(f.chunks[i]!);
    }
    return { whole, rest };
  }

  /** writeWhole writes the files `split` chose whole, through the write thread in jobs of at most WHOLE_JOB_FILES files (or here, see writeWholeHere), and marks them `whole`. */
  async writeWhole(f: Taken): Promise<void> {
    // the thread takes the files' bytes without a copy when they are in shared read chunks: worth
    // asking for when short connections close by the dozen
    if (f.dirs.length >= WHOLE_SHARE_FILES) this.suits = true;
    if (this.thread === null && this.counters.wholeFiles + f.dirs.length <= this.hereFiles) return this.writeWholeHere(f);
    const thread = (this.thread ??= new WriteThread());
    const prefix = this.namer.prefix;
    const dirs = f.dirs;
    for (let start = 0; start < dirs.length; start += WHOLE_JOB_FILES) {
      const end = Math.min(dirs.length, start + WHOLE_JOB_FILES);
      const names: string[] = [];
      const chunks: Uint8Array[][] = [];
      for (let i = start; i < end; i++) {
        names.push(dirs[i]!.name!);
        chunks.push(f.chunks[i]!);
      }
      // under the final name at once: created, written and closed in one go (see FilesSink)
      const r = await thread.writeWhole(prefix, names, '', chunks);
      if (r.error !== null) {
        const part = prefix + dirs[start + r.error.file]!.name!;
        const cause = new Error(r.error.message);
        throw outputError(part, r.error.code === null ? cause : Object.assign(cause, { code: r.error.code }));
      }
      for (let i = start; i < end; i++) dirs[i]!.whole = true;
      this.counters.wholeFiles += end - start;
    }
  }

  /**
   * writeWholeHere is writeWhole on this thread, with synchronous calls: the first
   * `hereFiles` files of a run (see writeThread), so that a small capture does not start a thread (starting
   * one costs some 150 ms of CPU here, more than writing a few thousand small files: open, writev
   * and close take 15-25 µs a file).
   */
  private writeWholeHere(f: Taken): void {
    const dirs = f.dirs;
    for (let i = 0; i < dirs.length; i++) {
      const file = this.namer.prefix + dirs[i]!.name!;
      try {
        const fd = fs.openSync(file, 'w', 0o644);
        try {
          const chunks = f.chunks[i]!;
          let left = 0;
          for (let j = 0; j < chunks.length; j++) left += chunks[j]!.length;
          writevAllSync(fs, fd, chunks, left, [0]);
        } finally {
          fs.closeSync(fd);
        }
      } catch (err) {
        throw outputError(file, err);
      }
      dirs[i]!.whole = true;
      this.counters.wholeFiles++;
    }
  }

  /**
   * write: the flush of open files written through the write thread when it is on, `collected`
   * (the bytes of data collected in the run) reached afterBytes and the flush's shape suits it
   * (minFiles files or more, chunks of minAverage bytes on average, nearly all in shared read
   * chunks); null when it is not the thread's (the descriptor pool writes it). A flush of
   * SHAPE_BYTES or more sets `suits`.
   */
  write(f: Taken, collected: number): Promise<void> | null {
    if (this.minAverage > 0 && f.dirs.length > 0 && collected >= this.afterBytes) {
      const fit = threadFit(f.chunks, this.minAverage);
      const shaped = fit.fit !== 'no' && f.dirs.length >= this.minFiles;
      // a small flush (a few files that reached coalesceBytes between two rounds) does not
      // speak for the traffic
      if (fit.bytes >= SHAPE_BYTES) this.suits = shaped;
      if (shaped && fit.fit === 'shared') {
        this.thread ??= new WriteThread();
        return this.flushThread(f, this.thread);
      }
    }
    return null;
  }

  /**
   * flushThread is a flush through the write thread: the files' descriptors are leased (opened
   * when needed) in groups the descriptor pool can hold at once, and each group is one job.
   */
  private async flushThread(f: Taken, thread: WriteThread): Promise<void> {
    this.counters.threadFlushes++;
    const pool = this.pool;
    const namer = this.namer;
    const group = Math.min(pool.maxOpen, 512);
    for (let start = 0; start < f.dirs.length; start += group) {
      const end = Math.min(f.dirs.length, start + group);
      const fds: number[] = [];
      try {
        for (let i = start; i < end; i++) {
          const part = namer.partOf(f.dirs[i]!);
          try {
            fds.push(await pool.lease(part));
          } catch (err) {
            throw outputError(part, err);
          }
        }
        const r = await thread.write(fds, f.chunks.slice(start, end));
        for (let i = 0; i < fds.length; i++) pool.release(namer.partOf(f.dirs[start + i]!), i < r.written.length ? 1 : 0, r.written[i] ?? 0);
        fds.length = 0;
        if (r.error !== null) {
          const part = namer.partOf(f.dirs[start + r.error.file]!);
          const cause = new Error(r.error.message);
          throw outputError(part, r.error.code === null ? cause : Object.assign(cause, { code: r.error.code }));
        }
      } finally {
        for (let i = 0; i < fds.length; i++) pool.release(namer.partOf(f.dirs[start + i]!), 0, 0);
      }
    }
  }
}

/** wholeFile: a direction `split` can write whole. */
function wholeFile(d: DirState): boolean {
  return d.closed && !d.written && d.bytes <= WHOLE_MAX_BYTES;
}

/**
 * threadFit: 'no' when a flush's chunks average less than `minAverage` bytes; else 'shared' when
 * at least 7/8 of its bytes are in SharedArrayBuffers (the rest is copied to the thread), else
 * 'copy' (the thread would copy too much); and the flush's bytes.
 */
function threadFit(chunks: readonly (readonly Uint8Array[])[], minAverage: number): { fit: 'no' | 'shared' | 'copy'; bytes: number } {
  let count = 0;
  let total = 0;
  let shared = 0;
  for (let i = 0; i < chunks.length; i++) {
    const list = chunks[i]!;
    count += list.length;
    for (let j = 0; j < list.length; j++) {
      const c = list[j]!;
      total += c.length;
      if (c.buffer instanceof SharedArrayBuffer) shared += c.length;
    }
  }
  if (count === 0 || total < count * minAverage) return { fit: 'no', bytes: total };
  return { fit: shared * 8 >= total * 7 ? 'shared' : 'copy', bytes: total };
}
