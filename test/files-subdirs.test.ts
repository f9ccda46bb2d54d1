/**
 * `--sink files --subdirs k|m|g` (FilesSink's subdirs, tcpflow's -Fk/-Fm/-Fg): files binned by
 * connection number into subdirectories, the names inside them tcpflow's, `c<N>` counted per
 * subdirectory, connections.ndjson's `file` fields relative to the output directory.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import type { ConnectionRecord } from '../src/sinks/connection-records.js';
import { CONNECTIONS_FILE, FilesSink, type FilesSinkOptions } from '../src/sinks/files-sink.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeShortConns } from '../bench/synth.js';
import { runCli } from './helpers/cli-run.js';
import { hasTool } from './helpers/env.js';
import { connectionRecords } from './helpers/dir-contents.js';
import { closeEvent, dataEvent, drive, openEvent } from './helpers/sink-events.js';

const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const root = fs.mkdtempSync(path.join(base, 'pcapflow-subdirs-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (): string => path.join(root, `out${dirCount++}`);

/** tree: every file under `dir` (paths relative to it, `/`-separated) with its size and SHA-256. */
function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(name);
      else {
        const bytes = fs.readFileSync(path.join(dir, name));
        out.set(name, `${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`);
      }
    }
  };
  walk('');
  return out;
}

const records = connectionRecords;

const p3 = (n: number): string => String(n).padStart(3, '0');

/** The subdirectory tcpflow's -Fk/-Fm/-Fg template gives connection `conn` (as FilesSink's subdirs documents). */
function subdirOf(mode: 'k' | 'm' | 'g', conn: number): string {
  const k = p3(Math.floor(conn / 1e3) % 1000);
  const m = p3(Math.floor(conn / 1e6) % 1000);
  const g = p3(Math.floor(conn / 1e9) % 1000);
  if (mode === 'k') return `${k}/`;
  if (mode === 'm') return `${m}000-${m}999/${m}${k}/`;
  return `${g}000000-${g}999999/${g}${m}000-${g}${m}999/${g}${m}${k}/`;
}

describe('--subdirs on 2500 short connections', () => {
  let capture = '';
  let flat = '';
  let flatFiles = new Map<string, string>();
  let flatRecords: ConnectionRecord[] = [];

  beforeAll(async () => {
    // no shared capture has 1000 connections (the largest has 126): a synthetic one
    capture = path.join(root, 'short.pcap');
    await writeShortConns(capture, { conns: 2500, concurrent: 50, seconds: 5 });
    flat = newDir();
    const r = await runCli(['read', capture, '--sink', 'files', '-o', flat]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    flatFiles = tree(flat);
    flatRecords = records(flat);
  });

  it('writes the flat layout without the option', () => {
    expect(flatRecords).toHaveLength(2500);
    for (const e of fs.readdirSync(flat, { withFileTypes: true })) expect(e.isFile()).toBe(true);
    expect(flatFiles.size).toBe(5001); // both directions of every connection, and connections.ndjson
    for (const rec of flatRecords) {
      expect(rec.c2s.file).not.toContain('/');
      expect(rec.s2c.file).not.toContain('/');
    }
  });

  for (const [mode, thread] of [
    ['k', true],
    ['k', false],
    ['m', true],
    ['g', true],
  ] as const) {
    it(`--subdirs ${mode}${thread ? '' : ' --no-write-thread'}: the flat files, byte for byte, in tcpflow's directories`, async () => {
      const dir = newDir();
      const r = await runCli(['read', capture, '--sink', 'files', '-o', dir, '--subdirs', mode, ...(thread ? [] : ['--no-write-thread'])]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const files = tree(dir);
      const recs = records(dir);
      // the records are the flat run's, each file in its connection's subdirectory
      expect(recs).toHaveLength(flatRecords.length);
      for (let i = 0; i < recs.length; i++) {
        const rec = recs[i]!;
        const want = flatRecords[i]!;
        const sub = subdirOf(mode, rec.conn);
        expect(rec).toEqual({ ...want, c2s: { ...want.c2s, file: sub + want.c2s.file! }, s2c: { ...want.s2c, file: sub + want.s2c.file! } });
        expect(fs.statSync(path.join(dir, rec.c2s.file!)).isFile()).toBe(true);
        expect(fs.statSync(path.join(dir, rec.s2c.file!)).isFile()).toBe(true);
      }
      // flattened, the files are the flat run's; nothing else was written (no .part left)
      const flattened = new Map<string, string>();
      const perDir = new Map<string, number>();
      for (const [rel, hash] of files) {
        if (rel === CONNECTIONS_FILE) continue;
        const at = rel.lastIndexOf('/');
        expect(at).toBeGreaterThan(0);
        expect(flattened.has(rel.slice(at + 1))).toBe(false);
        flattened.set(rel.slice(at + 1), hash);
        perDir.set(rel.slice(0, at + 1), (perDir.get(rel.slice(0, at + 1)) ?? 0) + 1);
      }
      expect(flattened).toEqual(new Map([...flatFiles].filter(([name]) => name !== CONNECTIONS_FILE)));
      expect([...perDir.keys()].sort()).toEqual([0, 1000, 2000].map((c) => subdirOf(mode, c)));
      expect([...perDir.values()]).toEqual([2000, 2000, 1000]);
    });
  }

  it.skipIf(!hasTool('tcpflow'))('gives the files tcpflow -Fk gives, flattened (its bins number directions, ours connections)', () => {
    const dir = newDir();
    execFileSync('tcpflow', ['-Fk', '-r', capture, '-o', dir], { stdio: 'ignore' });
    const theirs = new Map<string, string>();
    for (const [rel, hash] of tree(dir)) {
      if (rel === 'report.xml') continue;
      expect(rel).toMatch(/^\d{3}\/[^/]+$/);
      theirs.set(rel.slice(4), hash);
    }
    expect(theirs).toEqual(new Map([...flatFiles].filter(([name]) => name !== CONNECTIONS_FILE)));
  });

  it('rejects a value other than k, m or g with a usage error', async () => {
    const r = await runCli(['read', capture, '--sink', 'files', '-o', newDir(), '--subdirs', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('subdirs');
  });

  it('is listed by read --help', async () => {
    const r = await runCli(['read', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--subdirs\b/);
  });
});

describe('FilesSink subdirs', () => {
  const A = { ip: '10.0.0.1', port: 40000 };
  const B = { ip: '10.0.0.2', port: 80 };
  const AB = '010.000.000.001.40000-010.000.000.002.00080';
  const BA = '010.000.000.002.00080-010.000.000.001.40000';

  /** One connection A-B (a reused 4-tuple each time) per number in `conns`, 1 byte each way. */
  function reused(conns: number[]): StreamEvent[][] {
    return conns.map((c) => {
      const o = openEvent(c, A, B);
      return [o, dataEvent(c, 'c2s', 0, Uint8Array.of(c & 0xff)), dataEvent(c, 's2c', 0, Uint8Array.of(c & 0xff)), closeEvent(o, 1, 1)];
    });
  }

  async function run(options: Omit<FilesSinkOptions, 'dir'>, conns: number[]): Promise<{ dir: string; files: string[] }> {
    const dir = newDir();
    const sink = new FilesSink({ dir, ...options });
    await drive(sink, reused(conns));
    const recs = records(dir);
    return { dir, files: recs.map((r) => r.c2s.file!) };
  }

  it('counts c<N> per subdirectory, as tcpflow -Fk does (the first name free in the directory)', async () => {
    // tcpflow 1.6.1 -Fk on a reused 4-tuple: 000/NAME, 000/NAMEc1, 002/NAME (its flow.cpp
    // new_filename counts up until the open with O_EXCL succeeds in the binned path)
    const { dir, files } = await run({ subdirs: 'k' }, [0, 1, 1500, 1_000_001, 2999]);
    expect(files).toEqual([`000/${AB}`, `000/${AB}c1`, `001/${AB}`, `000/${AB}c2`, `002/${AB}`]);
    expect(fs.readFileSync(path.join(dir, '000', `${AB}c2`))).toEqual(Buffer.of(1_000_001 & 0xff));
    expect(fs.readFileSync(path.join(dir, '000', `${BA}c2`))).toEqual(Buffer.of(1_000_001 & 0xff));
    expect(records(dir).map((r) => r.s2c.file)).toEqual([`000/${BA}`, `000/${BA}c1`, `001/${BA}`, `000/${BA}c2`, `002/${BA}`]);
  });

  it('nests m and g as tcpflow does', async () => {
    expect((await run({ subdirs: 'm' }, [1_234_567, 999_999])).files).toEqual([`001000-001999/001234/${AB}`, `000000-000999/000999/${AB}`]);
    expect((await run({ subdirs: 'g' }, [12_345_678_901])).files).toEqual([`012000000-012999999/012345000-012345999/012345678/${AB}`]);
  });

  it('stays flat without the option', async () => {
    expect((await run({}, [0, 1500])).files).toEqual([AB, `${AB}c1`]);
  });

  it('rejects an unknown subdirs value', () => {
    expect(() => new FilesSink({ dir: newDir(), subdirs: 'x' as 'k' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('fails with OUTPUT_FAILED when a subdirectory cannot be made', async () => {
    const dir = newDir();
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '000'), 'in the way');
    const sink = new FilesSink({ dir, subdirs: 'k' });
    await expect(drive(sink, reused([0]))).rejects.toMatchObject({ code: 'OUTPUT_FAILED', file: path.join(dir, '000/') });
    expect(fs.readFileSync(path.join(dir, '000'), 'utf8')).toBe('in the way');
  });
});
