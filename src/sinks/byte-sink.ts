import { closeSync, fstatSync, ftruncateSync, openSync, readSync, WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';

/** Options shared by the sinks that write text to a byte stream (stdout, NDJSON). */
export interface ByteSinkOptions {
  /** Where the text goes; process.stdout by default. */
  dest?: NodeJS.WritableStream;
  /**
   * End `dest` when the sink finishes. Default true, except for process.stdout and
   * process.stderr, which are never ended (as with Readable.pipe).
   */
  end?: boolean;
  /** Batches the sink buffers before it pushes back on its writer (object mode); default 4. */
  highWaterMark?: number;
}

/** Counters of a ByteSink; keys are stable (printed by `--stats`). */
export interface ByteSinkStats {
  batches: number;
  /** Items (events, packets) received. */
  events: number;
  /** write() calls on the destination. */
  writes: number;
  /** Characters (of text) or bytes (of rendered bytes) handed to the destination. */
  chars: number;
  /** Times a write returned false and the sink waited for 'drain'. */
  drains: number;
  /** Items dropped after the destination closed early (EPIPE). */
  dropped: number;
}

/**
 * ByteSink is the object-mode Writable behind the stdout and NDJSON sinks (and BatchSink): it
 * consumes batches (arrays: StreamEvent[] by default), renders each batch to one string or Buffer (`render`, given by the subclass) and
 * hands it to `dest` with a single write() call.
 *
 * Backpressure: when write() returns false, the batch's callback waits for the destination's
 * 'drain' (or its 'close'/'error'), so a slow reader slows the pipeline and at most
 * highWaterMark batches plus one rendered batch are held.
 *
 * Closed pipe: when the destination reports EPIPE (its reader went away, as with `| head`) or
 * is destroyed, the sink stops quietly: later batches are counted in `stats.dropped` and
 * discarded, it finishes without error, `closedEarly` becomes true and a 'closedEarly' event is
 * emitted once (a caller may then stop reading its input). Any other destination error fails
 * the sink with PcapflowError OUTPUT_FAILED (cause attached). A render error fails the sink too.
 *
 * Whole lines: when the destination is a regular file (stdout redirected to a file, say) and a
 * write fails (a full disk), the file is truncated back to the end of the last batch that was
 * written completely, so it never ends in half a line.
 */
export abstract class ByteSink<T extends readonly unknown[] = readonly StreamEvent[]> extends Writable {
  /** True once the destination closed before everything was written. */
  closedEarly = false;
  readonly stats: ByteSinkStats = { batches: 0, events: 0, writes: 0, chars: 0, drains: 0, dropped: 0 };
  protected readonly dest: NodeJS.WritableStream;
  /**
   * `dest` is one of Node's own byte streams (process.stdout or stderr, a file stream, a socket or
   * pipe), which is done with a chunk once that chunk's write calls back: writeText's `written`
   * may then reuse its memory. Other streams may keep the chunks they were given.
   */
  protected readonly destReleases: boolean;
  private readonly endDest: boolean;
  private failure: PcapflowError | null = null;
  /** For a regular-file destination: its descriptor and its size when the sink started. */
  private readonly fileFd: number | null;
  private startSize = 0;
  /** For a regular-file destination: bytes handed to it (see checkFileSize). */
  private fileBytes = 0;
  private readonly onDestError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.markClosedEarly();
    else if (this.failure === null && !this.closedEarly) {
      this.failure = new PcapflowError('OUTPUT_FAILED', `cannot write output: ${err.code ?? err.message}`, { cause: err });
      this.cutToWholeLines();
    }
  };

  constructor(options: ByteSinkOptions = {}) {
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? 4 });
    this.dest = options.dest ?? process.stdout;
    this.endDest = options.end ?? (this.dest !== process.stdout && this.dest !== process.stderr);
    this.destReleases = this.dest === process.stdout || this.dest === process.stderr || this.dest instanceof WriteStream || this.dest instanceof Socket;
    this.fileFd = regularFileFd(this.dest);
    if (this.fileFd !== null) this.startSize = fstatSync(this.fileFd).size;
    this.dest.on('error', this.onDestError);
  }

  /** render turns one batch into the text (or the bytes) to write (empty writes nothing). */
  protected abstract render(batch: T): string | Uint8Array;

  /** renderEnd is what to write after the last batch ('' by default). */
  protected renderEnd(): string | Uint8Array {
    return '';
  }

  override _write(batch: T, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    this.stats.batches++;
    this.stats.events += batch.length;
    if (this.destClosed()) {
      this.stats.dropped += batch.length;
      return callback(this.failure);
    }
    this.writeBatch(batch, callback);
  }

  /**
   * writeBatch renders the batch and writes it. A subclass that renders elsewhere overrides it
   * and hands each batch's text, in order, to writeText; settle then waits for what is pending.
   */
  protected writeBatch(batch: T, callback: (error?: Error | null) => void): void {
    let text: string | Uint8Array;
    try {
      text = this.render(batch);
    } catch (err) {
      return callback(err as Error);
    }
    this.writeText(text, callback);
  }

  /** settle calls back once every batch taken was handed to writeText (at once by default). */
  protected settle(callback: (error?: Error | null) => void): void {
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.settle((err) => (err ? callback(err) : this.finalWrite(callback)));
  }

  private finalWrite(callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    const finish = (err?: Error | null): void => {
      if (err) return callback(err);
      this.checkFileSize();
      if (!this.endDest || this.destClosed()) return callback(this.failure);
      this.waitFor('finish', callback);
      this.dest.end();
    };
    if (this.destClosed()) return callback(this.failure);
    let text: string | Uint8Array;
    try {
      text = this.renderEnd();
    } catch (err) {
      return callback(err as Error);
    }
    this.writeText(text, finish);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // The error listener stays on dest: an EPIPE may still arrive after the last write, and an
    // unhandled 'error' on stdout would crash the process.
    callback(err);
  }

  /**
   * writeViews hands several texts or byte views to the destination as one batch (dropped, once
   * the destination closed early): written corked, so a stream with writev takes them in one
   * call, and never joined into one buffer. `callback` once dest took them (it may still hold
   * them); `written`, if given, once dest wrote all of them without an error (never, if they were
   * not written).
   */
  protected writeViews(chunks: readonly (string | Uint8Array)[], callback: (error?: Error | null) => void, written?: () => void): void {
    if (this.failure !== null) return callback(this.failure);
    if (this.destClosed()) return callback(this.failure);
    let last = -1;
    let total = 0;
    for (let i = 0; i < chunks.length; i++) {
      const n = chunks[i]!.length;
      if (n > 0) last = i;
      total += n;
    }
    if (last < 0) return callback();
    this.stats.writes++;
    this.stats.chars += total;
    if (this.fileFd !== null) for (const c of chunks) this.fileBytes += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
    const dest = this.dest as NodeJS.WritableStream & { cork?: () => void; uncork?: () => void };
    const corked = last > 0 && dest.cork !== undefined;
    if (corked) dest.cork!();
    // the last write's answer tells whether the stream's buffer is full
    for (let i = 0; i < last; i++) if (chunks[i]!.length > 0) this.dest.write(chunks[i]!);
    const ok = written === undefined ? this.dest.write(chunks[last]!) : this.dest.write(chunks[last]!, (err?: Error | null) => err ?? written());
    if (corked) dest.uncork!();
    if (ok) return callback(this.failure);
    this.stats.drains++;
    this.waitFor('drain', callback);
  }

  /** writeText hands one batch's text (or bytes) to the destination, as writeViews does. */
  protected writeText(text: string | Uint8Array, callback: (error?: Error | null) => void, written?: () => void): void {
    this.writeViews([text], callback, written);
  }

  /** waitFor calls back once `event`, 'error' or 'close' happens on dest (or at once if it is gone). */
  private waitFor(event: 'drain' | 'finish', callback: (error?: Error | null) => void): void {
    if (this.destGone()) return callback(this.failure);
    const dest = this.dest;
    const done = (): void => {
      dest.off(event, done);
      dest.off('error', done);
      dest.off('close', done);
      if (this.failure === null && this.destGone()) this.markClosedEarly();
      callback(this.failure);
    };
    dest.on(event, done);
    dest.on('error', done);
    dest.on('close', done);
  }

  /**
   * checkFileSize: a regular-file destination must have grown by every byte handed to it.
   * process.stdout redirected to a file writes synchronously and ignores a short write (a disk
   * that fills up mid-write), so the last write can lose bytes without an error: that is
   * OUTPUT_FAILED (ENOSPC) too, cut to whole lines.
   */
  private checkFileSize(): void {
    if (this.fileFd === null || this.failure !== null || this.closedEarly) return;
    let size: number;
    try {
      size = fstatSync(this.fileFd).size;
    } catch {
      return;
    }
    if (size >= this.startSize + this.fileBytes) return;
    this.failure = new PcapflowError('OUTPUT_FAILED', `cannot write output: ENOSPC (${size - this.startSize} of ${this.fileBytes} bytes written)`);
    this.cutToWholeLines();
  }

  /**
   * cutToWholeLines truncates a regular-file destination after its last newline (never below
   * the size it had when the sink started), so a failed write leaves no half line. Best effort:
   * the error reported is the write error. (A short write can be lost silently by Node's
   * synchronous stdout stream, so the file itself is read back rather than counting bytes.)
   */
  private cutToWholeLines(): void {
    if (this.fileFd === null) return;
    let reader = -1;
    try {
      const fd = this.fileFd;
      // The destination may be open for writing only (a shell's `>`): read it through /proc.
      reader = openSync(`/proc/self/fd/${fd}`, 'r');
      let end = fstatSync(fd).size;
      const window = Buffer.allocUnsafe(64 * 1024);
      while (end > this.startSize) {
        const from = Math.max(this.startSize, end - window.length);
        const n = readSync(reader, window, 0, end - from, from);
        const nl = window.subarray(0, n).lastIndexOf(0x0a);
        if (nl >= 0) {
          end = from + nl + 1;
          break;
        }
        end = from;
      }
      ftruncateSync(fd, end);
    } catch {
      // no /proc, or the descriptor is gone: the error reported stays the write error
    } finally {
      if (reader >= 0) closeSync(reader);
    }
  }

  /**
   * destClosed: the destination closed early, or is gone now (destroyed without an error this sink
   * saw, as a child process's stdin is when the child exits): that is closing early too.
   */
  private destClosed(): boolean {
    if (this.closedEarly) return true;
    if (!this.destGone()) return false;
    this.markClosedEarly();
    return true;
  }

  /**
   * destGone: the destination was destroyed (by its own error or by someone else). Destroyed by
   * its own error (`errored`), whose 'error' event may not have reached this sink yet (a write to
   * a full disk fails at once, and the event comes on a later tick): that error is taken now, so
   * it is a failure, not closing early.
   */
  private destGone(): boolean {
    const dest = this.dest as { destroyed?: boolean; writableFinished?: boolean; errored?: unknown };
    if (dest.destroyed !== true || dest.writableFinished === true) return false;
    if (dest.errored instanceof Error && this.failure === null && !this.closedEarly) this.onDestError(dest.errored as NodeJS.ErrnoException);
    return true;
  }

  private markClosedEarly(): void {
    if (this.closedEarly || this.failure !== null) return;
    this.closedEarly = true;
    this.emit('closedEarly');
  }
}

/**
 * BatchSink is a ByteSink for any kind of batch, rendered by the given function (one write()
 * per batch); `pcapflow packets` uses it for its packet lines. Same backpressure, EPIPE and
 * OUTPUT_FAILED behaviour as every ByteSink.
 */
export class BatchSink<T extends readonly unknown[]> extends ByteSink<T> {
  private readonly renderBatch: (batch: T) => string;

  constructor(render: (batch: T) => string, options: ByteSinkOptions = {}) {
    super(options);
    this.renderBatch = render;
  }

  protected override render(batch: T): string {
    return this.renderBatch(batch);
  }
}

/** Buffer's own writers (what buf.write(text, at, encoding) calls after checking its arguments). */
export interface RawWrites {
  utf8Write(text: string, offset: number, length: number): number;
  latin1Write(text: string, offset: number, length: number): number;
}

/** regularFileFd: the descriptor of a destination that writes to a regular file, else null. */
function regularFileFd(dest: NodeJS.WritableStream): number | null {
  const fd = (dest as { fd?: unknown }).fd;
  if (typeof fd !== 'number') return null;
  try {
    return fstatSync(fd).isFile() ? fd : null;
  } catch {
    return null;
  }
}
