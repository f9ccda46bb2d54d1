/**
 * Corrupt and cut captures (issue 5): for each kind of fault, the documented behaviour, and,
 * end to end through the built CLI, that whatever was decoded before a fault is written out.
 * The text below is the README's "Limits and failure modes: corrupt captures".
 *
 * ### Corrupt and cut captures
 *
 * pcapflow never guesses past a fault it cannot frame, and never throws away what it decoded
 * before one.
 *
 * | Fault | Classic pcap | pcapng |
 * |---|---|---|
 * | not a capture (magic) / input ends inside the file header | `CAPTURE_BAD_MAGIC` / `CAPTURE_EMPTY` | same |
 * | a record or block cut by the end of the input | `PCAP_TRUNCATED_RECORD` | `PCAPNG_TRUNCATED_BLOCK` (also when a block's length runs past the end) |
 * | a captured length over 256 KiB | `PCAP_RECORD_TOO_LARGE` | the block is skipped by its length, counted in `badBlocks` |
 * | a block length that cannot be followed (under 12, not a multiple of 4, over 16 MiB) | | `PCAPNG_BAD_BLOCK` |
 * | trailing block length differs from the leading one | | the block is skipped by its leading length and counted in `badBlocks` if the block after it is sound (or the input ends there); if that one is bad too, `PCAPNG_BAD_BLOCK` at the first one |
 * | a packet block whose captured length runs past it, shorter than its header, or naming an interface not described (or described by a corrupt block) | | skipped, counted in `badBlocks` |
 * | an interface block too short or whose options run past it | | keeps its interface id (so the ids after it stay right); the block and each packet on it count in `badBlocks` |
 * | a section header that cannot be read (byte order, version, options, length) | | `PCAPNG_BAD_SECTION` or `PCAPNG_BAD_BLOCK` |
 * | a file version other than 2.x | `PCAP_BAD_VERSION` | |
 * | a malformed link, IP or TCP header | counted per reason and skipped; with `--on-error fail`, its code | same |
 *
 * An error code in the table stops the run. Before it stops, pcapflow ends everything as at a
 * normal end of input: the connections still open are closed (reason `eof`, gaps reported),
 * `--sink files` closes and renames every file (no `.part` file is left) and writes every
 * connection's line to connections.ndjson, `--sink ndjson` and `--sink stdout` write whole lines
 * only, ending with the close events. Then it prints `pcapflow: CODE: message (file F, packet N,
 * offset O)` on stderr and exits with status 1. The same holds for a later input that cannot be
 * opened (`INPUT_NOT_FOUND`) and for a decoder error under `--on-error fail`. Only an output
 * fault (`OUTPUT_FAILED`) stops at once.
 *
 * Skipped pcapng blocks are counted: `--stats` prints `reader[i].badBlocks` (corrupt blocks
 * skipped) beside `reader[i].blocksSkipped` (blocks of types pcapflow does not read).
 *
 * Why pcapng resync is safe: a packet is read only from a block whose leading and trailing
 * lengths agree and whose captured length fits inside it, and after a block skipped for
 * differing lengths the next block must be sound or the reader stops. Garbage is never read as
 * packets: the fuzz tests set the block lengths of real pcapng captures to hostile values and
 * cut them, and check that every packet read is one of the original packets, in order. (pcapng
 * has no checksum: damage inside a block that leaves its two lengths equal, such as a range of
 * L-8 bytes repeated over an L-byte block, is read as it is, by pcapflow as by any reader.)
 * Classic pcap has no framing to check: a damaged length under 256 KiB makes the bytes
 * after it read as records of garbage, as with every pcap reader; such frames are counted as
 * malformed by the decoders and the run usually ends in one of the errors above.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloseEvent, StreamEvent } from '../../src/core/events.js';
import type { ConnectionRecord } from '../../src/sinks/connection-records.js';
import { REPO_ROOT, SHARED_PCAPS } from '../helpers/env.js';
import { readCapture } from '../helpers/read-capture.js';
import { collect, runCapture } from '../helpers/tcp-pipeline.js';

const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');
const shared = (name: string): string => path.join(SHARED_PCAPS, name);

/** A record (classic pcap) or block (pcapng) of a capture: where it starts, its length and type. */
interface Rec {
  off: number;
  len: number;
  type: number;
}

/** records walks a valid little-endian capture. */
function records(b: Buffer): Rec[] {
  const out: Rec[] = [];
  if (b.readUInt32BE(0) === 0x0a0d0d0a) {
    for (let off = 0; off + 12 <= b.length; ) {
      const len = b.readUInt32LE(off + 4);
      out.push({ off, len, type: b.readUInt32LE(off) });
      off += len;
    }
  } else {
    for (let off = 24; off + 16 <= b.length; ) {
      const len = 16 + b.readUInt32LE(off + 8);
      out.push({ off, len, type: 0 });
      off += len;
    }
  }
  return out;
}

/** newestMtime: the latest modification time of the files under `dir`. */
function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-corrupt-'));
  // the CLI runs from dist: build it when it is missing or older than the sources
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js')) || newestMtime(path.join(REPO_ROOT, 'src')) > newestMtime(path.join(REPO_ROOT, 'dist'))) {
    // tsc emits even when a file fails to type-check; `npm test` type-checks on its own
    spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
    if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) throw new Error('npm run build produced no dist/cli/main.js');
  }
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------
// The faults, made from real captures.

interface Fault {
  name: string;
  /** Builds the corrupt capture; returns its bytes. */
  make: () => Buffer;
  /** The error code the run ends with; null for a fault that is skipped (exit 0). */
  code: string | null;
  /** Bytes the oracle reads: the packets before the fault (default: the corrupt file itself, whose reader error ends it). */
  oracle?: (bytes: Buffer) => Buffer;
  args?: string[];
  /** pcapng blocks skipped as corrupt. */
  badBlocks?: number;
  /** A second input after the capture. */
  then?: string;
}

const HTTP49 = 'zeek__http-methods-49-conns.pcap';
const PCAPNG15 = 'pcapplusplus__pcapng-eth-and-sll.pcapng';

/** at: the record or block of `file` at the given fraction of its records, and all of them. */
function at(file: string, fraction: number): { bytes: Buffer; recs: Rec[]; rec: Rec } {
  const bytes = readFileSync(shared(file));
  const recs = records(bytes);
  const rec = recs[Math.floor(recs.length * fraction)]!;
  return { bytes, recs, rec };
}

const FAULTS: Fault[] = [
  {
    name: 'classic pcap cut inside a record, half-way',
    make: () => {
      const { bytes, rec } = at(HTTP49, 0.5);
      return bytes.subarray(0, rec.off + 30);
    },
    code: 'PCAP_TRUNCATED_RECORD',
  },
  {
    name: 'classic pcap whose record header claims 4 GB, half-way',
    make: () => {
      const { bytes, rec } = at(HTTP49, 0.5);
      const b = Buffer.from(bytes);
      b.writeUInt32LE(0xfffffff0, rec.off + 8);
      return b;
    },
    code: 'PCAP_RECORD_TOO_LARGE',
  },
  {
    name: 'the real capture whose record 19 claims 3.9 GB (suricata-verify)',
    make: () => readFileSync(shared('suricata-verify__smtp-corrupt-record-header.pcap')),
    code: 'PCAP_RECORD_TOO_LARGE',
  },
  {
    name: 'pcapng cut inside a block, half-way',
    make: () => {
      const { bytes, rec } = at(PCAPNG15, 0.5);
      return bytes.subarray(0, rec.off + 40);
    },
    code: 'PCAPNG_TRUNCATED_BLOCK',
  },
  {
    name: 'pcapng block whose length cannot be followed, half-way',
    make: () => {
      const { bytes, rec } = at(PCAPNG15, 0.5);
      const b = Buffer.from(bytes);
      b.writeUInt32LE(rec.len + 2, rec.off + 4);
      return b;
    },
    code: 'PCAPNG_BAD_BLOCK',
  },
  {
    name: 'pcapng block whose length runs past the end of the file',
    make: () => {
      const { bytes, rec } = at(PCAPNG15, 0.5);
      const b = Buffer.from(bytes);
      b.writeUInt32LE(0x100000, rec.off + 4);
      return b;
    },
    code: 'PCAPNG_TRUNCATED_BLOCK',
    badBlocks: 1, // a packet block too large to hold: skipped as it streams past, until the input ends
  },
  {
    name: 'pcapng: two blocks in a row whose trailing length differs',
    make: () => {
      const { bytes, recs, rec } = at(PCAPNG15, 0.5);
      const b = Buffer.from(bytes);
      const next = recs[recs.indexOf(rec) + 1]!;
      b.writeUInt32LE(7, rec.off + rec.len - 4);
      b.writeUInt32LE(7, next.off + next.len - 4);
      return b;
    },
    code: 'PCAPNG_BAD_BLOCK',
    badBlocks: 1, // the first was skipped; the second stops the reader
  },
  {
    name: 'pcapng: one block whose trailing length differs is skipped and counted (exit 0)',
    make: () => {
      const { bytes, rec } = at(PCAPNG15, 0.5);
      const b = Buffer.from(bytes);
      b.writeUInt32LE(7, rec.off + rec.len - 4);
      return b;
    },
    code: null,
    badBlocks: 1,
  },
  {
    name: 'a malformed IPv4 header under --on-error fail',
    make: () => {
      const { bytes, rec } = at(HTTP49, 0.5);
      const b = Buffer.from(bytes);
      b[rec.off + 16 + 14] = 0x45 - 0x40 + 0x30; // Ethernet + IPv4: version 3
      return b;
    },
    code: 'IPV4_BAD_HEADER',
    args: ['--on-error', 'fail'],
    oracle: (b) => b.subarray(0, at(HTTP49, 0.5).rec.off),
  },
  {
    name: 'a second input that cannot be opened',
    make: () => readFileSync(shared(HTTP49)).subarray(0, at(HTTP49, 0.5).rec.off),
    code: 'INPUT_NOT_FOUND',
    then: '/nonexistent/capture.pcap',
    // read one after another: merged by time (the default), a missing input stops the run before any packet (test/capture-merge.test.ts)
    args: ['--concat'],
  },
];

describe('corrupt captures: the reader stops or skips as documented', () => {
  for (const f of FAULTS.filter((x) => x.then === undefined && x.args === undefined)) {
    it(f.name, () => {
      const bytes = f.make();
      const r = readCapture(new Uint8Array(bytes), { chunk: 65536 });
      expect(r.error?.code ?? null).toBe(f.code);
      expect(r.reader.stats.badBlocks).toBe(f.badBlocks ?? 0);
      expect(r.packets.length).toBeGreaterThan(0);
    });
  }
});

interface CliRun {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function cli(args: string[]): CliRun {
  const r = spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** expected: the synchronous pipeline's events on the bytes before the fault (a reader error ends it as end of input). */
function expected(f: Fault, file: string): { events: StreamEvent[]; closes: Map<number, CloseEvent> } {
  let oracleFile = file;
  if (f.oracle !== undefined) {
    oracleFile = path.join(tmp, `${path.basename(file)}.oracle`);
    writeFileSync(oracleFile, f.oracle(readFileSync(file)));
  }
  const { events } = runCapture(oracleFile);
  const closes = new Map<number, CloseEvent>();
  for (const e of events) if (e.type === 'close') closes.set(e.conn, e);
  return { events, closes };
}

function checkExit(f: Fault, r: CliRun): void {
  if (f.code === null) {
    expect(r.status, r.stderr).toBe(0);
  } else {
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^pcapflow: ${f.code}: `, 'm'));
  }
}

describe('corrupt captures end to end: what was decoded before the fault is written out', () => {
  FAULTS.forEach((f, i) => {
    const input = (): { file: string; args: string[] } => {
      const file = path.join(tmp, `fault-${i}.${f.name.includes('pcapng') ? 'pcapng' : 'pcap'}`);
      writeFileSync(file, f.make());
      return { file, args: [file, ...(f.then !== undefined ? [f.then] : []), ...(f.args ?? [])] };
    };

    it(`${f.name}: --sink files closes and renames every file, connections.ndjson is complete`, () => {
      const { file, args } = input();
      const out = path.join(tmp, `out-${i}`);
      const r = cli(['read', ...args, '--sink', 'files', '-o', out, '--stats']);
      checkExit(f, r);
      if (f.badBlocks !== undefined) expect(r.stderr).toMatch(new RegExp(`^reader\\[0\\]\\.badBlocks +${f.badBlocks}$`, 'm'));
      const names = readdirSync(out);
      expect(names.filter((n) => n.endsWith('.part'))).toEqual([]);
      const text = readFileSync(path.join(out, 'connections.ndjson'), 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      const recs = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as ConnectionRecord);
      const { events, closes } = expected(f, file);
      expect(closes.size).toBeGreaterThan(0);
      expect(recs.map((c) => c.conn).sort((a, b) => a - b)).toEqual([...closes.keys()].sort((a, b) => a - b));
      const data = collect(events);
      let files = 0;
      for (const rec of recs) {
        expect(rec.reason).toBe(closes.get(rec.conn)!.reason);
        for (const dir of ['c2s', 's2c'] as const) {
          const want = data.get(rec.conn)?.[dir] ?? Buffer.alloc(0);
          const name = rec[dir].file;
          if (want.length === 0) {
            expect(name).toBeNull();
            continue;
          }
          files++;
          expect(readFileSync(path.join(out, name!)).equals(want), `conn ${rec.conn} ${dir}`).toBe(true);
        }
      }
      expect(names.length).toBe(files + 1);
    });

    it(`${f.name}: --sink ndjson writes whole lines, every connection closed`, () => {
      const { file, args } = input();
      const r = cli(['read', ...args, '--sink', 'ndjson']);
      checkExit(f, r);
      const text = r.stdout.toString('utf8');
      expect(text.endsWith('\n')).toBe(true);
      const got = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; conn: number; dir?: 'c2s' | 's2c'; data?: string; reason?: string });
      const { events, closes } = expected(f, file);
      expect(got.filter((e) => e.type === 'open').length).toBe(closes.size);
      const gotCloses = got.filter((e) => e.type === 'close');
      expect(gotCloses.map((e) => [e.conn, e.reason])).toEqual([...events.filter((e): e is CloseEvent => e.type === 'close')].map((e) => [e.conn, e.reason]));
      const data = collect(events);
      const parts = new Map<string, Buffer[]>();
      for (const e of got) {
        if (e.type !== 'data') continue;
        const k = `${e.conn} ${e.dir}`;
        parts.set(k, [...(parts.get(k) ?? []), Buffer.from(e.data!, 'base64')]);
      }
      for (const [conn, d] of data) {
        for (const dir of ['c2s', 's2c'] as const) expect(Buffer.concat(parts.get(`${conn} ${dir}`) ?? []).equals(d[dir]), `conn ${conn} ${dir}`).toBe(true);
      }
    });
  });
});
