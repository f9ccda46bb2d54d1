/**
 * FilesSink's bytes not yet written. DirState is a direction's state in the sink (file name,
 * pending chunks, held copy, record counters). PendingQueue owns the directions with pending
 * bytes, in order of their first pending byte, and the copies held for sparse ones; `add` files
 * a data view (synchronously, kept as a view), `take` hands over what a flush writes now: every
 * direction that is closed, has coalesceBytes pending, or whose oldest pending bytes are
 * coalesceBatches batches old; of those last, a sparse one (fewer than coalesceBytes / 8 pending)
 * is instead copied out of the read chunks and held, until the copies of all directions would
 * pass maxHeldBytes (a spill: then every held direction is written). `lowest` tells which read
 * chunks the pending views keep alive. It counts into the sink's heldCopied, peakHeld and
 * heldSpills.
 */
import type { Direction } from '../core/events.js';
import type { GapRecord, OverlapRecord } from './connection-records.js';

export interface DirState {
  readonly dir: Direction;
  /** Final file name; null until the first data. */
  name: string | null;
  /** The path written until the close: DIR/NAME.part ('' until partOf made it: a file written whole never needs it). */
  part: string;
  /** Chunks of the batch being written (views of the events' data); null when none. */
  pending: Uint8Array[] | null;
  /** Bytes pending (`held` and `pending`), and the number of the batch that added the first chunk of `pending`. */
  pendingBytes: number;
  pendingSince: number;
  /** Pending bytes copied out of the read chunks (they come before `pending`), and how many of its bytes are used; null when none (see maxHeldBytes). */
  held: Uint8Array | null;
  heldLen: number;
  queued: boolean;
  /** The connection closed (or the input ended): the next flush writes what is pending. */
  closed: boolean;
  /** Some of its bytes went to the descriptor pool (its file exists as NAME.part). */
  written: boolean;
  /** Written whole (see ThreadWrites.split): its file has its final name. */
  whole: boolean;
  bytes: number;
  gaps: number;
  missing: number;
  overlaps: number;
  /** null until the first entry (a SYN flood's connections have none). */
  gapList: GapRecord[] | null;
  overlapList: OverlapRecord[] | null;
  unlisted: number;
}

export function newDir(dir: Direction): DirState {
  return { dir, name: null, part: '', pending: null, pendingBytes: 0, pendingSince: 0, held: null, heldLen: 0, queued: false, closed: false, written: false, whole: false, bytes: 0, gaps: 0, missing: 0, overlaps: 0, gapList: null, overlapList: null, unlisted: 0 };
}

/** What a flush writes: its directions, and chunks[i], what dirs[i]'s file gets. */
export interface Taken {
  dirs: DirState[];
  chunks: Uint8Array[][];
}

/** The sink's counters that PendingQueue keeps (see FilesSinkStats). */
export interface HeldCounters {
  heldCopied: number;
  peakHeld: number;
  heldSpills: number;
}

/** The smallest copy buffer of a direction (it grows by doubling). */
const HELD_MIN = 256;

export class PendingQueue {
  /** Bytes of the copy buffers of all directions (see maxHeldBytes). */
  private heldBytes = 0;
  private readonly queue: DirState[] = [];

  constructor(
    private readonly coalesceBytes: number,
    private readonly coalesceBatches: number,
    private readonly maxHeldBytes: number,
    private readonly counters: HeldCounters,
  ) {}

  /** add appends `data` (kept as a view) to the direction's pending chunks; `batch` is the number of the batch it came in. */
  add(d: DirState, data: Uint8Array, batch: number): void {
    if (d.pending === null) {
      d.pending = [];
      d.pendingSince = batch;
    }
    d.pending.push(data);
    d.pendingBytes += data.length;
    d.bytes += data.length;
    if (!d.queued) {
      d.queued = true;
      this.queue.push(d);
    }
  }

  /**
   * take takes the directions to write now (all of them when `all`) and their chunks out of the
   * queue, holding the old sparse ones instead (see the module comment); `batch` is the number of
   * the last batch collected.
   */
  take(batch: number, all: boolean): Taken {
    const dirs: DirState[] = [];
    const chunks: Uint8Array[][] = [];
    const queue = this.queue;
    // sparse directions whose views got old are copied out (hold), unless the copies would pass
    // maxHeldBytes: then every direction holding some is written now (a spill)
    const spill = !all && this.heldWouldPass(batch);
    if (spill) this.counters.heldSpills++;
    let kept = 0;
    for (let i = 0; i < queue.length; i++) {
      const d = queue[i]!;
      const old = d.pending !== null && batch - d.pendingSince >= this.coalesceBatches;
      if (all || d.closed || d.pendingBytes >= this.coalesceBytes || (spill && d.held !== null) || (old && !this.hold(d, spill))) {
        dirs.push(d);
        chunks.push(this.takePending(d));
        d.queued = false;
      } else {
        queue[kept++] = d;
      }
    }
    queue.length = kept;
    return { dirs, chunks };
  }

  /** lowest: the lower of `min` and the lowest `rank` of the read chunks the queued directions' pending views are of (see FilesSink.heldFrom). */
  lowest(rank: (buf: ArrayBufferLike) => number, min: number): number {
    const queue = this.queue;
    for (let i = 0; i < queue.length; i++) {
      const r = firstRank(queue[i]!.pending, rank);
      if (r < min) min = r;
    }
    return min;
  }

  /** holdable: a direction whose pending views are old and few enough to be copied out (see maxHeldBytes). */
  private holdable(d: DirState): boolean {
    return this.maxHeldBytes > 0 && d.pendingBytes < this.coalesceBytes / 8;
  }

  /** heldWouldPass: copying the old views of the holdable directions would pass maxHeldBytes. */
  private heldWouldPass(batch: number): boolean {
    if (this.maxHeldBytes === 0) return false;
    let total = this.heldBytes;
    const queue = this.queue;
    for (let i = 0; i < queue.length; i++) {
      const d = queue[i]!;
      if (d.pending === null || batch - d.pendingSince < this.coalesceBatches || d.closed || !this.holdable(d)) continue;
      total += heldSize(d) - (d.held?.length ?? 0);
      if (total > this.maxHeldBytes) return true;
    }
    return false;
  }

  /**
   * hold copies a sparse direction's pending views into its copy buffer, so that they keep no
   * read chunk alive; false (write it instead) when it is not sparse or a spill is on.
   */
  private hold(d: DirState, spill: boolean): boolean {
    if (spill || !this.holdable(d)) return false;
    const size = heldSize(d);
    let held = d.held;
    if (held === null || held.length < size) {
      const bigger = new Uint8Array(size);
      if (held !== null) bigger.set(held.subarray(0, d.heldLen));
      this.heldBytes += size - (held?.length ?? 0);
      if (this.heldBytes > this.counters.peakHeld) this.counters.peakHeld = this.heldBytes;
      d.held = held = bigger;
    }
    const views = d.pending!;
    let at = d.heldLen;
    for (let i = 0; i < views.length; i++) {
      held.set(views[i]!, at);
      at += views[i]!.length;
    }
    this.counters.heldCopied += at - d.heldLen;
    d.heldLen = at;
    d.pending = null;
    return true;
  }

  /** takePending takes what a direction has pending to be written: its copy, then its views. */
  private takePending(d: DirState): Uint8Array[] {
    let chunks = d.pending ?? [];
    if (d.held !== null) {
      chunks = [d.held.subarray(0, d.heldLen), ...chunks];
      this.heldBytes -= d.held.length;
      d.held = null;
      d.heldLen = 0;
    }
    d.pending = null;
    d.pendingBytes = 0;
    return chunks;
  }
}

/** heldSize: the copy buffer a direction's pending bytes need: its pending bytes, or double its buffer, at least HELD_MIN. */
function heldSize(d: DirState): number {
  const has = d.held?.length ?? 0;
  if (d.pendingBytes <= has) return has;
  return Math.max(d.pendingBytes, has * 2, HELD_MIN);
}

/** firstRank: the rank of the first view in `list` whose buffer has one (not Infinity); Infinity when none. */
export function firstRank(list: readonly Uint8Array[] | null, rank: (buf: ArrayBufferLike) => number): number {
  if (list === null) return Infinity;
  for (let i = 0; i < list.length; i++) {
    const r = rank(list[i]!.buffer);
    if (r !== Infinity) return r;
  }
  return Infinity;
}
