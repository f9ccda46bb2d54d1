import fs from 'node:fs';

/** Counters of an FdPool; keys are stable. */
export interface FdPoolStats {
  /** Files opened for the first time (created or truncated). */
  opened: number;
  /** Files opened again in append mode after an eviction. */
  reopened: number;
  /** Descriptors closed to make room (least recently used first). */
  evicted: number;
  /** writev() calls. */
  writes: number;
  bytes: number;
  /** Most descriptors open at once. */
  peakOpen: number;
}

interface Entry {
  readonly path: string;
  fd: number;
  /** The file was created by this pool: later opens append. */
  created: boolean;
  /** Operations using the descriptor right now: a pinned entry is never evicted. */
  pins: number;
}

const OPEN_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC;
const OPEN_APPEND = fs.constants.O_WRONLY | fs.constants.O_APPEND;

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, 0o644, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (err) => (err ? reject(err) : resolve()));
  });
}

function writevFd(fd: number, chunks: readonly Uint8Array[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, chunks as Uint8Array[], (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * FdPool keeps at most `maxOpen` file descriptors open for many files, least recently used
 * first out: a file evicted from the pool is closed and reopened in append mode when it is next
 * written, so any number of files can be written without running out of descriptors and
 * without losing a byte. The first open of a path creates or truncates it.
 *
 * Concurrency: operations on different paths may run at once (each pins its descriptor while it
 * runs, and the pool never holds more than maxOpen descriptors, counting those being opened); at
 * most maxOpen operations may run at once, and operations on one path must not overlap (the
 * caller serialises them). Errors are Node's fs errors (with `code` and `path`), passed through
 * as they are: the caller wraps them. EMFILE/ENFILE on open makes the pool close one more of its
 * own descriptors and retry, as long as it has one to close.
 */
export class FdPool {
  readonly maxOpen: number;
  readonly stats: FdPoolStats = { opened: 0, reopened: 0, evicted: 0, writes: 0, bytes: 0, peakOpen: 0 };
  /** Every path the pool knows (open or not), until `close(path)`. */
  private readonly entries = new Map<string, Entry>();
  /** Open entries, least recently used first (Map iteration order = insertion order). */
  private readonly lru = new Map<string, Entry>();
  /** Descriptors open or being opened (never above maxOpen). */
  private reserved = 0;

  constructor(maxOpen: number) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) throw new RangeError(`maxOpen must be a positive integer, got ${maxOpen}`);
    this.maxOpen = maxOpen;
  }

  /** Descriptors open right now. */
  get openCount(): number {
    return this.lru.size;
  }

  /**
   * write appends `chunks` to `path` with one writev (more only on a partial write), opening the
   * file first when it is not open (created or truncated on its first open, appended later).
   */
  async write(path: string, chunks: readonly Uint8Array[]): Promise<void> {
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += chunks[i]!.byteLength;
    const entry = await this.acquire(path);
    try {
      let rest = chunks;
      let left = total;
      while (left > 0) {
        const n = await writevFd(entry.fd, rest);
        this.stats.writes++;
        this.stats.bytes += n;
        left -= n;
        if (left > 0) rest = dropPrefix(rest, n);
      }
    } finally {
      entry.pins--;
    }
  }

  /**
   * writeSync is write with synchronous calls on this thread (open, writev, and the close of an
   * evicted descriptor): for a caller whose writes must not wait for the thread pool (live
   * capture). Do not mix it with pending asynchronous calls on the same pool.
   */
  writeSync(path: string, chunks: readonly Uint8Array[]): void {
    const entry = this.entryOf(path);
    if (entry.fd >= 0) this.touch(entry);
    else {
      if (this.reserved >= this.maxOpen) fs.closeSync(this.takeVictim());
      else this.reserved++;
      let fd: number;
      try {
        fd = fs.openSync(path, entry.created ? OPEN_APPEND : OPEN_NEW, 0o644);
      } catch (err) {
        this.reserved--;
        throw err;
      }
      this.opened(entry, fd);
    }
    let rest = chunks;
    let left = 0;
    for (let i = 0; i < chunks.length; i++) left += chunks[i]!.byteLength;
    while (left > 0) {
      const n = fs.writevSync(entry.fd, rest as Uint8Array[]);
      this.stats.writes++;
      this.stats.bytes += n;
      left -= n;
      if (left > 0) rest = dropPrefix(rest, n);
    }
  }

  /** closeSync is close with a synchronous call. */
  closeSync(path: string): void {
    const fd = this.forget(path);
    if (fd >= 0) fs.closeSync(fd);
  }

  /** forget drops `path` and returns its open descriptor, whose slot it releases (the caller closes it); -1 when none is open. */
  private forget(path: string): number {
    const entry = this.entries.get(path);
    if (entry === undefined) return -1;
    this.entries.delete(path);
    if (entry.fd < 0 || !this.lru.delete(path)) return -1;
    const fd = entry.fd;
    entry.fd = -1;
    this.reserved--;
    return fd;
  }

  /**
   * lease opens `path` as write does and returns its descriptor, pinned (never evicted) until
   * release(path): for a caller that writes to it by other means (a write thread).
   */
  async lease(path: string): Promise<number> {
    return (await this.acquire(path)).fd;
  }

  /** release unpins a leased descriptor and counts the `writes` calls and `bytes` made to it. */
  release(path: string, writes: number, bytes: number): void {
    const entry = this.entries.get(path);
    if (entry !== undefined && entry.pins > 0) entry.pins--;
    this.stats.writes += writes;
    this.stats.bytes += bytes;
  }

  /** close closes the file's descriptor if it is open and forgets the path. */
  async close(path: string): Promise<void> {
    const fd = this.forget(path);
    if (fd >= 0) await closeFd(fd);
  }

  /** closeAll closes every open descriptor and forgets every path; the first error is thrown after all were tried. */
  async closeAll(): Promise<void> {
    let first: unknown = null;
    for (const path of [...this.entries.keys()]) {
      try {
        await this.close(path);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== null) throw first;
  }

  private async acquire(path: string): Promise<Entry> {
    const entry = this.entryOf(path);
    entry.pins++;
    if (entry.fd >= 0) {
      this.touch(entry);
      return entry;
    }
    try {
      await this.reserve();
      let fd: number;
      while (true) {
        try {
          fd = await openFd(path, entry.created ? OPEN_APPEND : OPEN_NEW);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // The process ran out of descriptors elsewhere: give one of ours back and retry.
          if ((code === 'EMFILE' || code === 'ENFILE') && (await this.evictOne())) continue;
          this.reserved--;
          throw err;
        }
      }
      this.opened(entry, fd);
      return entry;
    } catch (err) {
      entry.pins--;
      throw err;
    }
  }

  /** reserve takes one descriptor slot, evicting the least recently used unpinned file when full. */
  private async reserve(): Promise<void> {
    if (this.reserved < this.maxOpen) {
      this.reserved++;
      return;
    }
    // Take over the victim's slot: `reserved` does not change.
    await closeFd(this.takeVictim());
  }

  /** evictOne closes one unpinned descriptor and releases its slot; false when none can go. */
  private async evictOne(): Promise<boolean> {
    const victim = this.pickVictim();
    if (victim === null) return false;
    try {
      await this.closeVictim(victim);
    } finally {
      this.reserved--;
    }
    return true;
  }

  private pickVictim(): Entry | null {
    for (const e of this.lru.values()) {
      if (e.pins === 0) return e;
    }
    return null;
  }

  private async closeVictim(victim: Entry): Promise<void> {
    await closeFd(this.evict(victim));
  }

  /** takeVictim evicts the least recently used unpinned file (its slot goes to the caller) and returns its descriptor to close. */
  private takeVictim(): number {
    const victim = this.pickVictim();
    if (victim === null) throw new Error('FdPool: more concurrent operations than maxOpen');
    return this.evict(victim);
  }

  /** evict takes `victim` out of the open files and returns its descriptor, to be closed by the caller. */
  private evict(victim: Entry): number {
    this.lru.delete(victim.path);
    const fd = victim.fd;
    victim.fd = -1;
    this.stats.evicted++;
    return fd;
  }

  /** entryOf: the entry of `path`, made when the pool does not know it yet. */
  private entryOf(path: string): Entry {
    let entry = this.entries.get(path);
    if (entry === undefined) {
      entry = { path, fd: -1, created: false, pins: 0 };
      this.entries.set(path, entry);
    }
    return entry;
  }

  /** touch makes an open entry the most recently used. */
  private touch(entry: Entry): void {
    this.lru.delete(entry.path);
    this.lru.set(entry.path, entry);
  }

  /** opened records a descriptor just opened for `entry` (created, or reopened in append mode). */
  private opened(entry: Entry, fd: number): void {
    if (entry.created) this.stats.reopened++;
    else this.stats.opened++;
    entry.created = true;
    entry.fd = fd;
    this.lru.set(entry.path, entry);
    if (this.lru.size > this.stats.peakOpen) this.stats.peakOpen = this.lru.size;
  }
}

/** dropPrefix returns the chunks that remain after the first `n` bytes (views, no copy). */
function dropPrefix(chunks: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = n;
  for (const c of chunks) {
    if (skip >= c.byteLength) {
      skip -= c.byteLength;
      continue;
    }
    out.push(skip > 0 ? c.subarray(skip) : c);
    skip = 0;
  }
  return out;
}
