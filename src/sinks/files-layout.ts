/**
 * Where FilesSink's files go. FileNamer gives a direction its file name, tcpflow's
 * (`SRCIP.SPORT-DSTIP.DPORT`, `--<vlan>`, `c<N>` for the N-th reuse of a name), under its
 * subdirectory `SUB/` with the option subdirs, and the path NAME.part it is written to until its
 * close. It owns the name counters and the set of subdirectories made; a subdirectory is made
 * (synchronously, on the calling thread) before the first name in it is returned, so that a
 * name can be opened by any thread. outputError is the sink's one failure for a path that could
 * not be written (PcapflowError OUTPUT_FAILED, the fs error as `cause`).
 */
import fs from 'node:fs';
import { PcapflowError } from '../core/errors.js';
import type { Direction, OpenEvent } from '../core/events.js';
import { flowBaseName, flowFileName } from '../core/format.js';

export const PART_SUFFIX = '.part';

/** The option subdirs (see FilesSinkOptions): tcpflow's -Fk, -Fm, -Fg. */
export type Subdirs = 'k' | 'm' | 'g';

/** What partOf needs of a direction: its final name and the cached NAME.part path ('' until made). */
export interface PartPath {
  readonly name: string | null;
  part: string;
}

export class FileNamer {
  /** The output directory normalized, with a trailing separator: a file's path is prefix + name (path.join per file cost 100 MB of garbage on 100 000 files). */
  readonly prefix: string;
  /** The option subdirs; null: flat. */
  private readonly subdirs: Subdirs | null;
  /** How many files of this run used each base name (for `c<N>`; per subdirectory with subdirs). */
  private readonly nameCounts = new NameCounts();
  /** Subdirectories made so far (`SUB/`, numbered from 0 for nameCounts), and the last connection bin named (floor(conn / 1000)) with its `SUB/` and number. */
  private readonly madeDirs = new Map<string, number>();
  private lastBin = -1;
  private lastSub = '';
  private lastSubId = -1;

  constructor(prefix: string, subdirs: Subdirs | null) {
    this.prefix = prefix;
    this.subdirs = subdirs;
  }

  /**
   * name: the file name of the connection's direction `dir`, tcpflow's, `SUB/` first with the
   * option subdirs (made here if new). `c<N>` counts per directory, as tcpflow's first free name
   * in the directory does. Throws OUTPUT_FAILED when the subdirectory cannot be made, or with
   * subdirs when `open.conn` is not an integer >= 0.
   */
  name(open: OpenEvent, dir: Direction): string {
    const { client, server, vlan } = open;
    const base = dir === 'c2s' ? flowBaseName(client, server, vlan) : flowBaseName(server, client, vlan);
    if (this.subdirs !== null) {
      const conn = open.conn;
      if (!Number.isSafeInteger(conn) || conn < 0) {
        throw new PcapflowError('OUTPUT_FAILED', `connection number ${conn} is not an integer >= 0: no subdirectory for it`, { conn });
      }
      const bin = Math.floor(conn / 1000);
      if (bin !== this.lastBin) {
        const k = String(bin % 1000).padStart(3, '0');
        const m = String(Math.floor(bin / 1000) % 1000).padStart(3, '0');
        const g = String(Math.floor(bin / 1_000_000) % 1000).padStart(3, '0');
        // tcpflow's -Fk, -Fm, -Fg templates: %K/, %M000-%M999/%M%K/, %G000000-%G999999/%G%M000-%G%M999/%G%M%K/
        const sub = this.subdirs === 'k' ? `${k}/` : this.subdirs === 'm' ? `${m}000-${m}999/${m}${k}/` : `${g}000000-${g}999999/${g}${m}000-${g}${m}999/${g}${m}${k}/`;
        let id = this.madeDirs.get(sub);
        if (id === undefined) {
          const made = this.prefix + sub;
          try {
            fs.mkdirSync(made, { recursive: true });
          } catch (err) {
            throw outputError(made, err);
          }
          id = this.madeDirs.size;
          this.madeDirs.set(sub, id);
        }
        this.lastBin = bin;
        this.lastSub = sub;
        this.lastSubId = id;
      }
      const count = this.nameCounts.use(base, this.lastSubId);
      return flowFileName(this.lastSub + base, count);
    }
    return flowFileName(base, this.nameCounts.use(base, -1));
  }

  /** partOf: the path a named direction's file has until its close, DIR/NAME.part (made once, then cached in `d.part`). */
  partOf(d: PartPath): string {
    if (d.part === '') d.part = this.prefix + d.name! + PART_SUFFIX;
    return d.part;
  }
}

/**
 * NameCounts counts the uses of each base name in a run, per directory (`dir`: a number >= 0
 * for each subdirectory, -1 without subdirs). The names of two IPv4 endpoints without VLAN (`AAA.BBB.CCC.DDD.PPPPP-` twice, less
 * the last dash: nearly all) are kept as five int32s in an open-addressing table; others in a
 * Map. A run of 50 000 short connections names 100 000 files: as string keys of a Map they were
 * some 10 MB of live heap to the end of the run, in the table about 4 MB.
 */
export class NameCounts {
  /** SLOT int32s a slot: address A, address B, ports (A's << 16 | B's), directory, count (0: empty). */
  private table = new Int32Array(SLOT * 1024);
  private mask = 1023;
  private size = 0;
  private readonly other = new Map<string, number>();

  /** use counts one more use of `base` in `dir` and returns how many came before it. */
  use(base: string, dir: number): number {
    if (!packName(base)) {
      const key = dir < 0 ? base : `${dir}/${base}`;
      const n = this.other.get(key) ?? 0;
      this.other.set(key, n + 1);
      return n;
    }
    const t = this.table;
    const at = this.slot(PACKED[0]!, PACKED[1]!, PACKED[2]!, dir);
    const n = t[at + 4]!;
    t[at + 4] = n + 1;
    if (n === 0) {
      t[at] = PACKED[0]!;
      t[at + 1] = PACKED[1]!;
      t[at + 2] = PACKED[2]!;
      t[at + 3] = dir;
      if (++this.size * 2 > this.mask + 1) this.grow();
    }
    return n;
  }

  /** slot: the offset of the key's slot in the table, or of the empty slot where it would go. */
  private slot(a: number, b: number, ports: number, dir: number): number {
    const t = this.table;
    let i = (Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(ports ^ dir, 0x85ebca6b), 0xc2b2ae35) >>> 15) & this.mask;
    for (;;) {
      const at = i * SLOT;
      if (t[at + 4] === 0 || (t[at] === a && t[at + 1] === b && t[at + 2] === ports && t[at + 3] === dir)) return at;
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.table;
    const slots = (this.mask + 1) * 2;
    this.table = new Int32Array(SLOT * slots);
    this.mask = slots - 1;
    for (let from = 0; from < old.length; from += SLOT) {
      if (old[from + 4] === 0) continue;
      const to = this.slot(old[from]!, old[from + 1]!, old[from + 2]!, old[from + 3]!);
      this.table.set(old.subarray(from, from + SLOT), to);
    }
  }
}

const SLOT = 5;
/** packName's result: address A, address B, ports. */
const PACKED = new Int32Array(3);

/**
 * packName: whether `base` is the name of two IPv4 endpoints without VLAN (43 characters,
 * `AAA.BBB.CCC.DDD.PPPPP-AAA.BBB.CCC.DDD.PPPPP`, each part zero-padded decimal); if so its
 * addresses and ports are in PACKED.
 */
function packName(base: string): boolean {
  if (base.length !== 43 || base.charCodeAt(21) !== 45) return false;
  for (let side = 0; side < 2; side++) {
    const o = side * 22;
    let addr = 0;
    for (let k = 0; k < 4; k++) {
      const v = digits(base, o + k * 4, 3);
      if (v < 0 || v > 255 || base.charCodeAt(o + k * 4 + 3) !== 46) return false;
      addr = (addr << 8) | v;
    }
    const port = digits(base, o + 16, 5);
    if (port < 0 || port > 65535) return false;
    PACKED[side] = addr;
    PACKED[2] = side === 0 ? port << 16 : PACKED[2]! | port;
  }
  return true;
}

/** digits: the decimal number in `n` characters of `s` from `at`, or -1 when one is not a digit. */
function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** outputError: `err` when it is a PcapflowError already, else OUTPUT_FAILED naming `file`, with `err` as its cause. */
export function outputError(file: string, err: unknown): PcapflowError {
  if (isOutputError(err)) return err;
  return new PcapflowError('OUTPUT_FAILED', `cannot write ${file}: ${errCode(err)}`, { file, cause: err });
}

export function isOutputError(err: unknown): err is PcapflowError {
  return err instanceof PcapflowError;
}

function errCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message;
}
