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
  /** How many files of this run used each base name (for `c<N>`; the key is `SUB/BASE` with subdirs). */
  private readonly nameCounts = new Map<string, number>();
  /** Subdirectories made so far (`SUB/`), and the last connection bin named (floor(conn / 1000)) with its `SUB/`. */
  private readonly madeDirs = new Set<string>();
  private lastBin = -1;
  private lastSub = '';

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
    let base = dir === 'c2s' ? flowBaseName(client, server, vlan) : flowBaseName(server, client, vlan);
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
        if (!this.madeDirs.has(sub)) {
          const made = this.prefix + sub;
          try {
            fs.mkdirSync(made, { recursive: true });
          } catch (err) {
            throw outputError(made, err);
          }
          this.madeDirs.add(sub);
        }
        this.lastBin = bin;
        this.lastSub = sub;
      }
      base = this.lastSub + base;
    }
    const count = this.nameCounts.get(base) ?? 0;
    this.nameCounts.set(base, count + 1);
    return flowFileName(base, count);
  }

  /** partOf: the path a named direction's file has until its close, DIR/NAME.part (made once, then cached in `d.part`). */
  partOf(d: PartPath): string {
    if (d.part === '') d.part = this.prefix + d.name! + PART_SUFFIX;
    return d.part;
  }
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
