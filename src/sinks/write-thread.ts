import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { workerStarted } from '../heap.js';
import { SharedIndex } from './shared-index.js';

/**
 * WriteThread appends bytes to open file descriptors on a worker thread (writevSync), so that
 * the main thread, which reads, decodes and reassembles, neither copies the bytes into the
 * kernel nor wakes a thread-pool thread for every file it writes: one message carries a whole
 * flush (many files).
 *
 * A job lists, per file, its descriptor and its chunks (`write`), or its paths and chunks
 * (`writeWhole`: a file written whole, from its creation to its close, and renamed if it was
 * written under a temporary name; what short connections need: system calls that the main
 * thread would otherwise hand to the thread pool one by one). A chunk in a
 * SharedArrayBuffer (a read chunk of openCaptures' `sharedChunks`) travels as its offset and
 * length only; any other chunk is copied into the job's transferred buffer. Jobs are answered in
 * the order posted: the byte count written per file, or the first failure (errno code and the
 * file's index in the job), after which the job's later files were not written.
 */

/** Int32 fields per chunk in a job's descriptor: source (-1 the job's buffer, k its k-th SharedArrayBuffer), offset, length. */
const FIELDS = 3;
const IN_AUX = -1;

export interface WriteJob {
  /** Per file: descriptor, number of chunks. */
  files: Int32Array;
  /** Per chunk: FIELDS values. */
  desc: Int32Array;
  aux: ArrayBuffer;
  sabs: SharedArrayBuffer[];
  /** writeWhole's jobs: the files' names (joined by newlines), their directory prefix and the suffix of the path written until the rename (the descriptors in `files` are unused), and whether a file must not exist yet (O_EXCL); null for `write`. */
  whole: { prefix: string; names: string; suffix: string; exclusive?: boolean } | null;
}

/**
 * A job's answer: bytes written per file, or the failure: the file's errno code (null when the
 * thread itself failed: it died or was stopped) and its index in the job.
 */
export interface WriteResult {
  written: number[];
  error: { code: string | null; message: string; file: number } | null;
}

/**
 * writevAllSync writes the `left` bytes of `chunks` to `fd` with `fsm.writevSync`, continuing
 * after a partial write; `progress[0]` counts the bytes written (read it after a throw). The
 * worker runs it from its source text (so it takes `fs` as an argument); FilesSink calls it too.
 */
export function writevAllSync(fsm: { writevSync(fd: number, b: Uint8Array[]): number }, fd: number, chunks: readonly Uint8Array[], left: number, progress: number[]): void {
  let views = chunks as Uint8Array[];
  let rest = left;
  while (rest > 0) {
    let w = fsm.writevSync(fd, views);
    progress[0]! += w;
    rest -= w;
    if (rest === 0) return;
    const next: Uint8Array[] = [];
    for (const v of views) {
      if (w >= v.length) {
        w -= v.length;
        continue;
      }
      next.push(w > 0 ? v.subarray(w) : v);
      w = 0;
    }
    views = next;
  }
}

/**
 * The worker's code: it runs from its source text (as CommonJS, after writevAllSync's), so it
 * repeats the descriptor layout as literals. A partial write is continued until all is written.
 */
function writeWorker(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const port = wt.parentPort!;
  port.on('message', (m: WriteJob) => {
    const aux = new Uint8Array(m.aux);
    const srcs = m.sabs.map((s) => new Uint8Array(s));
    const written: number[] = [];
    const names = m.whole === null ? null : m.whole.names.split('\n');
    const prefix = m.whole?.prefix ?? '';
    const suffix = m.whole?.suffix ?? '';
    let k = 0;
    for (let f = 0; f < m.files.length; f += 2) {
      let fd = m.files[f]!;
      const n = m.files[f + 1]!;
      const views: Uint8Array[] = [];
      let left = 0;
      for (let j = 0; j < n; j++, k += 3) {
        const src = m.desc[k]!;
        const len = m.desc[k + 2]!;
        views.push((src === -1 ? aux : srcs[src]!).subarray(m.desc[k + 1]!, m.desc[k + 1]! + len));
        left += len;
      }
      const progress = [0];
      try {
        if (names !== null) fd = fs.openSync(prefix + names[f / 2]! + suffix, m.whole!.exclusive === true ? 'wx' : 'w', 0o644);
        writevAllSync(fs, fd, views, left, progress);
        if (names !== null) {
          const opened = fd;
          fd = -1;
          fs.closeSync(opened);
          if (suffix !== '') {
            const name = prefix + names[f / 2]!;
            fs.renameSync(name + suffix, name);
          }
        }
      } catch (err) {
        if (names !== null && fd >= 0) fs.closeSync(fd);
        const e = err as NodeJS.ErrnoException;
        written.push(progress[0]!);
        port.postMessage({ written, error: { code: e.code ?? 'EIO', message: e.message, file: f / 2 } } satisfies WriteResult);
        return;
      }
      written.push(progress[0]!);
    }
    port.postMessage({ written, error: null } satisfies WriteResult);
  });
}

/**
 * WRITE_THREAD_YOUNG_MB: the write thread's young generation (MB). It only receives messages and
 * makes small arrays: on 50 000 short connections its heap peaked at 7 MB with 2, against 13 MB
 * (8 of them young) without a limit; its CPU was measured only with the other changes of that
 * round (bench/PROFILE.md, "Short connections under 150 MiB").
 */
const WRITE_THREAD_YOUNG_MB = 2;

export class WriteThread {
  private readonly worker: Worker;
  /** Handlers of the jobs posted and not answered, oldest first. */
  private readonly waiting: Array<(r: WriteResult) => void> = [];
  private stopping = false;
  private failure: Error | null = null;

  constructor() {
    this.worker = new (workerThreads().Worker)(`const writevAllSync = ${writevAllSync.toString()};\n(${writeWorker.toString()})()`, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: WRITE_THREAD_YOUNG_MB } });
    workerStarted(this.worker);
    this.worker.unref();
    const fail = (err: Error): void => {
      if (this.failure !== null || this.stopping) return;
      this.failure = err;
      const waiting = this.waiting.splice(0);
      for (const done of waiting) done(threadFailed(err));
    };
    this.worker.on('message', (r: WriteResult) => {
      const done = this.waiting.shift();
      if (this.waiting.length === 0) this.worker.unref();
      done?.(r);
    });
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`write thread exited with code ${code}`)));
  }

  /** write appends each `chunks[i]` to descriptor `fds[i]` (in order, one file after the other). */
  write(fds: readonly number[], chunks: readonly (readonly Uint8Array[])[]): Promise<WriteResult> {
    return this.post(pack(fds, chunks, null));
  }

  /**
   * writeWhole writes each `chunks[i]` to a new file `prefix + names[i] + suffix` (created or
   * truncated; `exclusive`: created, failing with EEXIST when it exists), closes it and, when
   * `suffix` is not empty, renames it to `prefix + names[i]`, one file after the other. Names
   * must not contain a newline.
   */
  writeWhole(prefix: string, names: readonly string[], suffix: string, chunks: readonly (readonly Uint8Array[])[], exclusive = false): Promise<WriteResult> {
    return this.post(pack(new Array<number>(chunks.length).fill(-1), chunks, { prefix, names: names.join('\n'), suffix, exclusive }));
  }

  private post(job: WriteJob): Promise<WriteResult> {
    if (this.failure !== null) return Promise.resolve(threadFailed(this.failure));
    return new Promise((resolve) => {
      if (this.waiting.length === 0) this.worker.ref();
      this.waiting.push(resolve);
      this.worker.postMessage(job, [job.aux, job.desc.buffer as ArrayBuffer, job.files.buffer as ArrayBuffer]);
    });
  }

  /** stop ends the thread at once; a job still waiting gets no answer (call it once every job was answered). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
  }
}

/** threadFailed: the answer of every job when the thread itself failed (no errno code). */
function threadFailed(err: Error): WriteResult {
  return { written: [], error: { code: null, message: err.message, file: 0 } };
}

/** pack builds a job (see WriteThread). */
export function pack(fds: readonly number[], chunks: readonly (readonly Uint8Array[])[], whole: WriteJob['whole'] = null): WriteJob {
  let count = 0;
  let copied = 0;
  for (const list of chunks) {
    count += list.length;
    for (const c of list) if (!(c.buffer instanceof SharedArrayBuffer)) copied += c.length;
  }
  const files = new Int32Array(fds.length * 2);
  const desc = new Int32Array(count * FIELDS);
  const aux = new Uint8Array(new ArrayBuffer(copied));
  const shared = new SharedIndex();
  let at = 0;
  let k = 0;
  for (let f = 0; f < fds.length; f++) {
    const list = chunks[f]!;
    files[2 * f] = fds[f]!;
    files[2 * f + 1] = list.length;
    for (let j = 0; j < list.length; j++, k += FIELDS) {
      const c = list[j]!;
      const s = shared.of(c.buffer);
      desc[k + 2] = c.length;
      if (s >= 0) {
        desc[k] = s;
        desc[k + 1] = c.byteOffset;
      } else {
        aux.set(c, at);
        desc[k] = IN_AUX;
        desc[k + 1] = at;
        at += c.length;
      }
    }
  }
  return { files, desc, aux: aux.buffer, sabs: shared.list, whole };
}
