import { createReadStream } from 'node:fs';
import { addAbortSignal, Readable } from 'node:stream';
import { CaptureReader, DEFAULT_MAX_BATCH } from '../core/capture-reader.js';
import { isPcapflowError, PcapflowError } from '../core/errors.js';
import type { Packet, PacketPool } from '../core/packet.js';
import { CaptureInput, type InputStats, newInputStats } from './capture-input.js';
import type { ChunkPool } from './chunk-pool.js';
import { type SharedChunksCollect, SharedFileStream } from './shared-file-stream.js';

/**
 * Bytes asked of the file system per read. Every packet, and every in-order data event, is in the
 * chunk it was read in, and one view held on (pending in a sink, kept for overlap checks) keeps
 * its whole chunk alive: 512 KiB chunks held peak RSS on a capture of small segments at ~140 MB
 * where 1 MiB chunks took ~165 MB, at the same speed (1 MiB is no faster on large segments).
 */
export const READ_SIZE = 1 << 19;

/** Default of sharedChunks' collectEvery: peak RSS as without shared chunks on the bench captures (measured). */
export const COLLECT_EVERY = 32 << 20;

/** Bytes per read while a merge looks for a file input's first packet (see CaptureSource). */
export const PEEK_READ_SIZE = 1 << 14;
/** Inputs a merge looks at at once for their first packet (descriptors open meanwhile). */
export const PEEK_CONCURRENCY = 8;

/**
 * How several inputs are read: `time` merges their packets by timestamp (as mergecap does),
 * `concat` reads one input after another in the order given.
 */
export type CaptureOrder = 'time' | 'concat';

export type { InputStats } from './capture-input.js';

export interface OpenCapturesOptions {
  /**
   * Several inputs: merged by timestamp (`time`, the default, as mergecap does) or read one after
   * another (`concat`). A single input is read as it is either way. See CaptureSource.
   */
  order?: CaptureOrder;
  /** The stream read for the input `-`. Default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** Opens a path (tests inject a spy). Default fs.createReadStream. */
  openFile?: (path: string, options: { highWaterMark: number }) => NodeJS.ReadableStream;
  /**
   * Read files into SharedArrayBuffer chunks (SharedFileStream), so that the packets' bytes can
   * go to a worker thread without a copy (NdjsonSink's renderThread, FilesSink's writeThread).
   * Default false. Ignored with openFile and for stdin; a gzip input's chunks are zlib's own after
   * its first read. Merged inputs read shared chunks only while a single input is open (a
   * rotation, mostly), so that the packets in shared chunks reach the consumer in read order, as
   * a ChunkPool's holders need; while two or more are open their chunks are ordinary ones. With
   * `collect`, that full collection runs every `collectEvery` bytes of chunks (default 32 MiB); with `when`, a chunk is shared
   * only when `when()` says so at its read; with `pool`, shared chunks come from that ChunkPool
   * (see SharedFileStream).
   */
  sharedChunks?: boolean | { collect?: () => void; collectEvery?: number; when?: () => boolean; pool?: ChunkPool };
  /** Bytes per file read. Default 512 KiB. */
  readSize?: number;
  /** Batches held by the source before it stops reading. Default 4. */
  highWaterMark?: number;
  /** Index of the first packet (of the first input, or of the merged order). Default 1. */
  firstIndex?: number;
  /** Passed to every CaptureReader. */
  strictSnaplen?: boolean;
  maxBatch?: number;
  /** Given to every CaptureReader: packets come from it (see PacketPool). */
  pool?: PacketPool;
  /** Aborting destroys the source (with an AbortError) and closes the open inputs. */
  signal?: AbortSignal;
}

/** A file input of a merge not opened yet, and its first packet's timestamp. */
interface Waiting {
  order: number;
  sec: number;
  nsec: number;
}

/** before: packet time (sa, na) of input `oa` comes before (sb, nb) of input `ob` in the merged order. */
function before(sa: number, na: number, oa: number, sb: number, nb: number, ob: number): boolean {
  return sa < sb || (sa === sb && (na < nb || (na === nb && oa < ob)));
}

/** Lane: an open input of a merge, with the packets read from it that the merge has not taken yet. */
class Lane {
  /** Packets read and not merged yet: batches from the reader, the next one from `pos` of `batches[at]`. */
  batches: Packet[][] = [];
  at = 0;
  pos = 0;
  /** No more packets will come: its end was read, or `fault`. */
  done = false;
  /** The fault that ended it, raised once its packets before it are merged. */
  fault: Error | null = null;
  /** Its first packet has been merged (stats.firstIndex is set). */
  started = false;
  readonly emit = (batch: Packet[]): void => {
    this.batches.push(batch);
  };

  constructor(
    readonly input: CaptureInput,
    /** Position in the input list: breaks timestamp ties (lower first). */
    readonly order: number,
  ) {}

  /** The next packet to merge, or null when none is read. */
  get head(): Packet | null {
    const b = this.batches[this.at];
    return b === undefined ? null : (b[this.pos] as Packet);
  }
}

/**
 * CaptureSource: an object-mode Readable of `Packet[]` batches read from capture inputs (paths,
 * `-` for stdin), pcap or pcapng, each possibly gzip-compressed (see CaptureInput).
 *
 * One input, or `order: 'concat'`: the inputs are read one after another in the order given, each
 * with its own CaptureReader whose numbering continues the previous one's. It pulls: a chunk is
 * read from the current input only when the consumer wants more batches, so the bytes read ahead
 * stay within the file stream's buffer (`readSize`) plus `highWaterMark` batches.
 *
 * Several inputs with `order: 'time'` (the default): their packets are merged by timestamp, as
 * mergecap merges files: the next packet is always the earliest of every input's next packet, on
 * equal timestamps the one of the input given first (mergecap 4.0 takes the later one's), each
 * input's own order kept. Packet indexes number the merged order from `firstIndex`. First every
 * file is opened to read its first packet's timestamp (PEEK_READ_SIZE reads) and closed again,
 * PEEK_CONCURRENCY files at a time; stdin, which cannot be read twice, stays open (named twice,
 * it is INVALID_OPTION). Then a file is opened only when the merge reaches its first packet,
 * and closed at its end, so inputs whose time ranges do not overlap (a
 * tcpdump -C/-G rotation) are open one at a time (two for a moment at a boundary), and inputs
 * that overlap (several interfaces, a TAP's two ports) are open together, one descriptor each.
 * Each input's link types stay on its packets (`Packet.linkType`, `Packet.iface` within its own
 * file). A packet's data stays a view of its own input's chunk, so the chunks of the open inputs
 * are live at once, and used out of read order: chunks are shared (`sharedChunks`) only while one
 * input is open. Then every packet in a shared chunk reaches the consumer after those of the
 * shared chunks read before it: an input is alone only once every other one's packets are
 * merged, and each input's packets keep their order.
 *
 * `destroy()` (or the abort signal) closes the open files. Errors: the reader's PcapflowError
 * (tagged with the input name; offsets in the decompressed stream for gzip), CaptureInput's
 * (INPUT_NOT_FOUND, INPUT_READ_FAILED, CAPTURE_COMPRESSED, CAPTURE_TRUNCATED_COMPRESSED,
 * CAPTURE_CORRUPT_COMPRESSED). Every packet before a fault is delivered first; when merging,
 * that is every packet merged before the faulty input's next one would have been (its `packet`
 * is the merged index that one would have had), and a fault found while looking for the first
 * packets (a missing file, not a capture) stops the source before any packet.
 */
export class CaptureSource extends Readable {
  private readonly names: string[];
  private readonly options: OpenCapturesOptions;
  private readonly stats: InputStats[];
  private readonly readSize: number;
  private nextInput = 0;
  private nextIndex: number;
  private cur: CaptureInput | null = null;
  /** The collection schedule shared by the inputs read into shared chunks (sharedChunks.collect). */
  private collect: SharedChunksCollect | null = null;
  private wantMore = false;
  private failure: Error | null = null;
  private pumping = false;
  private readonly pushBatch: (batch: Packet[]) => void;
  private readonly wake = (): void => this.pump();

  // merging by time (several inputs, order 'time')
  private readonly merging: boolean;
  /** no: the first packets are not looked for yet; running; done: merging. */
  private peekState: 'no' | 'running' | 'done' = 'no';
  /** The inputs whose first packet is being looked for. */
  private readonly peeking = new Set<Lane>();
  /** Open inputs. */
  private lanes: Lane[] = [];
  /** File inputs not opened yet, by first packet time, from `waitAt`. */
  private waiting: Waiting[] = [];
  private waitAt = 0;
  /** The merged batch being filled. */
  private out: Packet[] = [];
  private readonly maxBatch: number;

  constructor(inputs: string[], options: OpenCapturesOptions = {}) {
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? 4 });
    this.names = [...inputs];
    this.options = options;
    this.readSize = options.readSize ?? READ_SIZE;
    this.nextIndex = options.firstIndex ?? 1;
    this.stats = this.names.map((file) => newInputStats(file));
    this.merging = (options.order ?? 'time') === 'time' && this.names.length > 1;
    this.maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.pushBatch = (batch: Packet[]) => {
      if (!this.push(batch)) this.wantMore = false;
    };
    if (options.signal) addAbortSignal(options.signal, this);
  }

  /** Per-input statistics, in input order (a snapshot). */
  inputStats(): InputStats[] {
    if (this.cur) this.cur.syncStats();
    for (const lane of this.lanes) if (!lane.done) lane.input.syncStats();
    return this.stats.map((s) => ({ ...s, linkTypes: [...s.linkTypes] }));
  }

  override _read(): void {
    this.wantMore = true;
    if (this.merging && this.peekState !== 'done') {
      if (this.peekState === 'no') {
        this.peekState = 'running';
        if (this.names.indexOf('-') !== this.names.lastIndexOf('-')) {
          this.fail(new PcapflowError('INVALID_OPTION', 'stdin (-) is named twice: it can be read once', { file: '-' }));
          return;
        }
        this.peekAll().then(
          () => {
            this.peekState = 'done';
            this.pump();
          },
          (err: unknown) => this.fail(this.tag(err)),
        );
      }
      return;
    }
    this.pump();
  }

  /**
   * read: Readable's own, plus the deferred failure. A fault found while batches before it are
   * still buffered destroys the source only once the consumer has read them all (destroying at
   * once would drop them).
   */
  override read(size?: number): Packet[] | null {
    const out = super.read(size) as Packet[] | null;
    if (this.failure !== null && this.readableLength === 0) this.failNow();
    return out;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.closeAll(err ? 'failed' : null);
    for (const lane of this.peeking) {
      lane.input.release(true);
      lane.input.wake(); // the peek sees `destroyed` and stops
    }
    callback(err);
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      if (this.merging) this.pumpMerged();
      else this.pumpConcat();
    } catch (err) {
      this.fail(this.tag(err));
    } finally {
      this.pumping = false;
    }
  }

  /** pumpConcat reads the inputs one after another. */
  private pumpConcat(): void {
    while (this.wantMore && this.failure === null && !this.destroyed) {
      const cur = this.cur ?? this.openNext();
      if (cur === null) {
        this.push(null);
        return;
      }
      const chunk = cur.next();
      if (chunk === null) {
        if (!cur.ended) return; // wake (bytes, end or a fault) calls pump again
        this.finish(cur);
        continue;
      }
      cur.reader.write(chunk, this.pushBatch);
    }
  }

  /** fail stops reading (closing the inputs) and errors the source once the batches before the fault are read. */
  private fail(err: Error): void {
    if (this.failure !== null || this.destroyed) return;
    this.failure = err;
    this.wantMore = false;
    this.closeAll('failed');
    if (this.readableLength === 0) this.failNow();
  }

  /** closeAll releases the open inputs (destroying their streams), marking them `state` (merged ones stay 'reading'). */
  private closeAll(state: 'failed' | null): void {
    const cur = this.cur;
    if (cur) {
      cur.syncStats();
      if (state !== null) cur.stats.state = state;
      cur.release(true);
      this.cur = null;
    }
    for (const lane of this.lanes) {
      if (!lane.done) lane.input.syncStats();
      lane.input.release(true);
    }
    this.lanes = [];
  }

  private failNow(): void {
    const err = this.failure;
    if (err === null || this.destroyed) return;
    process.nextTick(() => this.destroy(err));
  }

  private openNext(): CaptureInput | null {
    if (this.nextInput >= this.names.length) return null;
    const i = this.nextInput++;
    const stats = this.stats[i] as InputStats;
    const input = this.openInput(i, this.readSize, stats, this.nextIndex);
    stats.state = 'reading';
    stats.firstIndex = this.nextIndex;
    this.cur = input;
    return input;
  }

  /** openInput opens input `i` (reads of `readSize` bytes, into shared chunks unless `plain`) with a reader numbering from `firstIndex`. */
  private openInput(i: number, readSize: number, stats: InputStats, firstIndex: number, plain = false): CaptureInput {
    const name = this.names[i] as string;
    const isStdin = name === '-';
    let input: CaptureInput | null = null;
    const raw = (isStdin ? (this.options.stdin ?? process.stdin) : this.openFile(name, readSize, () => input?.gzip === true, plain)) as Readable;
    const reader = new CaptureReader({ file: name, firstIndex, strictSnaplen: this.options.strictSnaplen, maxBatch: this.options.maxBatch, pool: this.options.pool });
    input = new CaptureInput(name, stats, reader, raw, { isStdin, chunkSize: readSize, wake: this.wake });
    return input;
  }

  /**
   * openFile opens a path, into shared chunks unless `plain`; `gzip` tells (from the second read
   * on) that the chunks go to a gunzip, which needs no shared ones.
   */
  private openFile(name: string, readSize: number, gzip: () => boolean, plain: boolean): NodeJS.ReadableStream {
    if (this.options.openFile) return this.options.openFile(name, { highWaterMark: readSize });
    const shared = plain ? false : (this.options.sharedChunks ?? false);
    // Merged inputs share a chunk only while one input is open (see CaptureSource): the packets
    // in shared chunks then still reach the consumer in read order, as a ChunkPool's holders need.
    const mine = this.merging ? () => !gzip() && this.lanes.length <= 1 : () => !gzip();
    if (shared === true) return new SharedFileStream(name, readSize, { when: mine });
    if (shared !== false) {
      if (this.collect === null && shared.collect !== undefined) this.collect = { run: shared.collect, every: shared.collectEvery ?? COLLECT_EVERY, since: 0 };
      const collect = this.collect ?? undefined;
      const only = shared.when;
      const when = only === undefined ? mine : () => mine() && only();
      return new SharedFileStream(name, readSize, { collect, when, ...(shared.pool === undefined ? {} : { pool: shared.pool }) });
    }
    return createReadStream(name, { highWaterMark: readSize });
  }

  /** finish ends the current input's reader (which throws on a record cut short) and moves on. */
  private finish(cur: CaptureInput): void {
    cur.reader.end(this.pushBatch);
    cur.syncStats();
    cur.stats.state = 'done';
    this.nextIndex = cur.reader.nextIndex;
    cur.release(false);
    this.cur = null;
  }

  // --- merging by time -------------------------------------------------------------------

  /** openLane opens input `i` for the merge (`peek`: to read its first packet only, in small plain reads). */
  private openLane(i: number, stats: InputStats, peek: boolean): Lane {
    const stdin = this.names[i] === '-';
    return new Lane(this.openInput(i, peek && !stdin ? PEEK_READ_SIZE : this.readSize, stats, 1, peek), i);
  }

  /**
   * peekAll reads each input's first packet, PEEK_CONCURRENCY inputs at a time: a file's
   * timestamp goes to `waiting` and the file is closed (the merge opens it again when it reaches
   * that time); stdin stays open as a lane. An input with no packet is done. A fault before an
   * input's first packet rejects, once every file before it was looked at: it is the first
   * file's fault in the order given, whatever finished first, and stdin, which may wait long for
   * a packet, does not hold it up.
   */
  private peekAll(): Promise<void> {
    const n = this.names.length;
    const finished: boolean[] = new Array<boolean>(n).fill(false);
    const faults: Array<Error | null> = new Array<Error | null>(n).fill(null);
    let next = 0;
    let running = 0;
    let first = 0; // every input before it was looked at, without a fault
    let faulted = false;
    let settled = false;
    return new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        while (first < n && finished[first] === true && faults[first] === null) first++;
        if (first === n || this.destroyed) {
          settled = true;
          this.waiting.sort((a, b) => (before(a.sec, a.nsec, a.order, b.sec, b.nsec, b.order) ? -1 : 1));
          resolve();
          return;
        }
        for (let j = first; j < n; j++) {
          if (finished[j] !== true) {
            if (this.names[j] === '-') continue; // stdin may wait long for its first packet: a file's fault is not held up
            return;
          }
          const fault = faults[j];
          if (fault === undefined || fault === null) continue;
          settled = true;
          (this.stats[j] as InputStats).state = 'failed';
          reject(this.laneFault(fault));
          return;
        }
      };
      const start = (): void => {
        while (!settled && !faulted && running < PEEK_CONCURRENCY && next < n) {
          const i = next++;
          running++;
          this.peek(i)
            .catch((err: unknown) => this.tag(err))
            .then((fault) => {
              running--;
              finished[i] = true;
              faults[i] = fault;
              if (fault !== null) faulted = true;
              if (settled) return;
              settle();
              start();
            });
        }
      };
      start();
      if (n === 0) settle();
    });
  }

  /** peek reads input `i`'s first packet (see peekAll); resolves once a file's descriptor is closed, to the fault before its first packet, if any. */
  private async peek(i: number): Promise<Error | null> {
    const stdin = this.names[i] === '-';
    const stats = this.stats[i] as InputStats;
    // a file is read again from its start: the counts of this look go nowhere (unless it has no packet)
    const lane = this.openLane(i, stdin ? stats : newInputStats(stats.file), true);
    this.peeking.add(lane);
    while (!this.fill(lane)) {
      await new Promise<void>((resolve) => {
        lane.input.wake = resolve;
      });
      if (this.destroyed) return null;
    }
    this.peeking.delete(lane);
    const head = lane.head;
    if (head !== null && stdin) {
      stats.state = 'reading';
      lane.input.wake = this.wake;
      this.lanes.push(lane);
      return null;
    }
    if (head !== null) {
      this.waiting.push({ order: i, sec: head.tsSec, nsec: head.tsNsec });
      lane.input.release(true);
    } else {
      Object.assign(stats, lane.input.stats, { file: stats.file, firstIndex: 0, state: 'done' });
    }
    await lane.input.closed(); // at most PEEK_CONCURRENCY descriptors
    return head === null ? lane.fault : null;
  }

  /**
   * fill reads `lane`'s input until it has a packet to merge or is done (true), or until no bytes
   * are at hand (false: its wake follows). A fault ends the lane (`fault`, raised once its
   * packets are merged).
   */
  private fill(lane: Lane): boolean {
    const input = lane.input;
    try {
      while (lane.at >= lane.batches.length) {
        if (lane.done) return true;
        const chunk = input.next();
        if (chunk === null) {
          if (!input.ended) return false;
          input.reader.end(lane.emit);
          lane.done = true;
          input.syncStats();
          input.stats.state = 'done';
          input.release(false);
          continue;
        }
        input.reader.write(chunk, lane.emit);
      }
    } catch (err) {
      lane.fault = this.tag(err);
      lane.done = true;
      input.syncStats();
      input.release(true);
    }
    return true;
  }

  /** laneFault: an input's fault, its `packet` the merged index its next packet would have had. */
  private laneFault(err: Error): Error {
    if (!(err instanceof PcapflowError) || err.packet === undefined) return err;
    return new PcapflowError(err.code, err.message, { packet: this.nextIndex, offset: err.offset, file: err.file, conn: err.conn, column: err.column, cause: err.cause });
  }

  /** pumpMerged merges the open inputs' packets, opening a waiting file when the merge reaches its first packet. */
  private pumpMerged(): void {
    if (this.peekState !== 'done') return;
    while (this.wantMore && this.failure === null && !this.destroyed) {
      const lanes = this.lanes;
      // every open input has its next packet at hand, or is finished
      for (let i = 0; i < lanes.length; ) {
        const lane = lanes[i] as Lane;
        if (lane.at < lane.batches.length) {
          i++;
          continue;
        }
        if (!this.fill(lane)) {
          this.flushOut();
          return; // its wake calls pump again
        }
        if (lane.at < lane.batches.length) {
          i++;
          continue;
        }
        if (lane.fault !== null) {
          this.flushOut();
          lane.input.stats.state = 'failed';
          this.fail(this.laneFault(lane.fault));
          return;
        }
        lanes.splice(i, 1);
      }
      // the earliest next packet, unless a waiting file's first one comes before it
      let best: Lane | null = null;
      let bp: Packet | null = null;
      for (const lane of lanes) {
        const p = lane.head as Packet;
        if (bp === null || before(p.tsSec, p.tsNsec, lane.order, bp.tsSec, bp.tsNsec, (best as Lane).order)) {
          best = lane;
          bp = p;
        }
      }
      const w = this.waiting[this.waitAt];
      if (w !== undefined && (bp === null || before(w.sec, w.nsec, w.order, bp.tsSec, bp.tsNsec, (best as Lane).order))) {
        this.waitAt++;
        const stats = this.stats[w.order] as InputStats;
        stats.state = 'reading';
        lanes.push(this.openLane(w.order, stats, false));
        continue;
      }
      if (best === null) {
        this.flushOut();
        this.push(null);
        return;
      }
      // take `best`'s packets up to the next packet of another input (or waiting file)
      let bSec = Infinity;
      let bNsec = 0;
      let bOrder = Infinity;
      if (w !== undefined) {
        bSec = w.sec;
        bNsec = w.nsec;
        bOrder = w.order;
      }
      for (const lane of lanes) {
        if (lane === best) continue;
        const p = lane.head as Packet;
        if (before(p.tsSec, p.tsNsec, lane.order, bSec, bNsec, bOrder)) {
          bSec = p.tsSec;
          bNsec = p.tsNsec;
          bOrder = lane.order;
        }
      }
      this.run(best, bSec, bNsec, bOrder);
    }
  }

  /** run moves `lane`'s packets before time (bSec, bNsec) of input bOrder to the merged batch, numbering them. */
  private run(lane: Lane, bSec: number, bNsec: number, bOrder: number): void {
    const later = lane.order > bOrder;
    if (!lane.started) {
      lane.started = true;
      lane.input.stats.firstIndex = this.nextIndex;
    }
    const max = this.maxBatch;
    let out = this.out;
    while (lane.at < lane.batches.length) {
      const batch = lane.batches[lane.at] as Packet[];
      for (let i = lane.pos; i < batch.length; i++) {
        const p = batch[i] as Packet;
        const s = p.tsSec;
        if (s > bSec || (s === bSec && (p.tsNsec > bNsec || (p.tsNsec === bNsec && later)))) {
          lane.pos = i;
          this.out = out;
          return;
        }
        p.index = this.nextIndex++;
        out.push(p);
        if (out.length >= max) {
          this.out = [];
          this.pushBatch(out);
          out = this.out;
          if (!this.wantMore) {
            lane.pos = i + 1;
            if (lane.pos >= batch.length) this.nextBatch(lane);
            return;
          }
        }
      }
      this.nextBatch(lane);
      // a batch ends with a read batch of an input (a read chunk's packets), as when not merging:
      // larger batches keep packets waiting longer (past V8's young generation)
      if (out.length > 0) {
        this.out = [];
        this.pushBatch(out);
        out = this.out;
        if (!this.wantMore) return;
      }
    }
    this.out = out;
  }

  /** nextBatch moves `lane` on to its next read batch (dropping the list once all are taken). */
  private nextBatch(lane: Lane): void {
    lane.pos = 0;
    if (++lane.at >= lane.batches.length) {
      lane.batches = [];
      lane.at = 0;
    }
  }

  /** flushOut pushes the merged batch being filled, if any. */
  private flushOut(): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    this.pushBatch(out);
  }

  private tag(err: unknown): Error {
    if (isPcapflowError(err)) return err;
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** openCaptures returns a CaptureSource over `inputs` (paths, `-` = stdin): merged by timestamp, or in order with `order: 'concat'`. */
export function openCaptures(inputs: string[], options: OpenCapturesOptions = {}): CaptureSource {
  return new CaptureSource(inputs, options);
}

/** captureInputStats: per-input statistics of a source (which inputs were read, packets each). */
export function captureInputStats(source: CaptureSource): InputStats[] {
  return source.inputStats();
}
