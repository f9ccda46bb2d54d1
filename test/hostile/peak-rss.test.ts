/**
 * Memory that the budget really bounds (issue 13): peak RSS of `pcapflow read` stays under the
 * default memory budget (256 MiB) plus 100 MB, with `--sink files` and with `--sink ndjson`, for
 *   (a) a SYN flood of 2 000 000 never-answered SYNs with, in the same seconds, 2 000 short
 *       connections (50 at a time) and 20 that stay open throughout (bench/synth.js
 *       writeFloodMix), and
 *   (b) 10 000 connections open throughout that each exchange a few hundred bytes once a second,
 *       amid 20 MB/s of bulk traffic (writeSparseMany),
 * and every byte of every real stream comes out right (the files; and in (b) the NDJSON data lines).
 * Before issue 13, (a) peaked at 490-510 MB with files (the connections.ndjson records piled up
 * while slow flushes were in flight) and 330-380 MB with NDJSON (the render thread copied the
 * flood's record lines). The captures are written to tmp in a few seconds; the two sinks run at
 * once. Peak RSS as syn-flood.test.ts measures it (test/helpers/peak-rss.ts).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lines, runMeasured, statOf } from '../helpers/peak-rss.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { payloadByte, writeFloodMix, writeSparseMany } from '../../bench/synth.js';

const BUDGET_MB = 256;
const BOUND_MB = BUDGET_MB + 100;

/** A stream the capture carries: its file name (tcpflow's), pattern key (see bench/synth.js) and length. */
interface Stream {
  name: string;
  key: number;
  len: number;
}

/** firstBad: the index of the first byte of `data` (stream offset `from`) that is not `key`'s pattern; -1 when all are. */
function firstBad(data: Uint8Array, key: number, from: number): number {
  for (let i = 0; i < data.length; i++) if (data[i] !== payloadByte(key, from + i)) return i;
  return -1;
}

/** checkFiles: the output directory holds exactly the expected files (and connections.ndjson), each byte right. */
function checkFiles(out: string, streams: Stream[]): void {
  const names = readdirSync(out).filter((f) => f !== 'connections.ndjson');
  expect(names.length).toBe(streams.length);
  for (const s of streams) {
    const data = readFileSync(path.join(out, s.name));
    if (data.length !== s.len || firstBad(data, s.key, 0) >= 0) expect.fail(`${s.name}: ${data.length} bytes (want ${s.len}), first bad byte ${firstBad(data, s.key, 0)}`);
  }
}

const pad = (ip: string, port: number): string => `${ip.split('.').map((p) => p.padStart(3, '0')).join('.')}.${String(port).padStart(5, '0')}`;

/**
 * ndjsonCheck follows the NDJSON output: the open events of the real connections (10.10x.*
 * clients) name their streams, and each data line's bytes must continue its stream and be its
 * pattern. `done()` checks that every stream came whole and returns the lines seen.
 */
function ndjsonCheck(streams: Stream[]): { onStdout: (chunk: Buffer) => void; done: () => number } {
  const byName = new Map(streams.map((s) => [s.name, s]));
  const conns = new Map<number, { c2s: Stream | undefined; s2c: Stream | undefined }>();
  const got = new Map<Stream, number>();
  let count = 0;
  const errors: string[] = [];
  const onLine = (b: Buffer): void => {
    count++;
    // {"type":"open" / {"type":"data": the letter after `{"type":"`
    if (b[9] === 0x6f) {
      if (b.indexOf('"ip":"10.10') < 0) return;
      const e = JSON.parse(b.toString('latin1')) as { conn: number; client: { ip: string; port: number }; server: { ip: string; port: number } };
      const c = pad(e.client.ip, e.client.port);
      const s = pad(e.server.ip, e.server.port);
      conns.set(e.conn, { c2s: byName.get(`${c}-${s}`), s2c: byName.get(`${s}-${c}`) });
    } else if (b[9] === 0x64) {
      const e = JSON.parse(b.toString('latin1')) as { conn: number; dir: 'c2s' | 's2c'; offset: number; data: string };
      const s = conns.get(e.conn)?.[e.dir];
      if (s === undefined) return void errors.push(`data of unexpected conn ${e.conn} ${e.dir}`);
      const at = got.get(s) ?? 0;
      const data = Buffer.from(e.data, 'base64');
      if (e.offset !== at) errors.push(`${s.name}: data at ${e.offset}, expected ${at}`);
      else if (firstBad(data, s.key, at) >= 0) errors.push(`${s.name}: wrong byte at ${at + firstBad(data, s.key, at)}`);
      got.set(s, at + data.length);
    }
  };
  return {
    onStdout: lines(onLine),
    done: () => {
      for (const s of streams) if ((got.get(s) ?? 0) !== s.len) errors.push(`${s.name}: ${got.get(s) ?? 0} bytes of ${s.len}`);
      expect(errors.slice(0, 5)).toEqual([]);
      return count;
    },
  };
}

/**
 * both runs the capture through both sinks at once; checks the bound, the files, and (with
 * `readNdjson`) the NDJSON data lines, else only that every event was written (a SYN flood's
 * 1.4 GB of open and close lines are not worth reading here).
 */
async function both(label: string, capture: string, out: string, streams: Stream[], readNdjson: boolean): Promise<{ files: string; ndjson: string }> {
  const nd = readNdjson ? ndjsonCheck(streams) : null;
  const [files, ndjson] = await Promise.all([
    runMeasured(['read', capture, '--sink', 'files', '-o', out, '--stats']),
    runMeasured(['read', capture, '--sink', 'ndjson', '--stats'], nd?.onStdout),
  ]);
  console.log(`${label}: --sink files peak RSS ${files.peakMb.toFixed(0)} MB (${files.seconds.toFixed(1)} s), --sink ndjson ${ndjson.peakMb.toFixed(0)} MB (${ndjson.seconds.toFixed(1)} s); bound ${BOUND_MB} MB`);
  expect(files.code, files.stderr).toBe(0);
  expect(ndjson.code, ndjson.stderr).toBe(0);
  checkFiles(out, streams);
  const events = statOf(ndjson.stderr, 'sink.events');
  expect(statOf(ndjson.stderr, 'sink.dropped')).toBe(0);
  if (nd !== null) expect(nd.done()).toBe(events);
  expect(files.peakMb).toBeLessThan(BOUND_MB);
  expect(ndjson.peakMb).toBeLessThan(BOUND_MB);
  return { files: files.stderr, ndjson: ndjson.stderr };
}

describe('peak RSS under the memory budget plus 100 MB', () => {
  let tmp = '';
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'pf-peakrss-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('(a) 2 M unanswered SYNs with 2 000 short and 20 long connections in the same seconds', { timeout: 300_000 }, async () => {
    const capture = path.join(tmp, 'flood-mix.pcap');
    const w = (await writeFloodMix(capture, { syns: 2_000_000, shortConns: 2000, concurrent: 50, longConns: 20, seconds: 10 })) as { files: Stream[] };
    expect(w.files.length).toBe(2 * 2020);
    const r = await both('(a) SYN flood + 2 000 short connections', capture, path.join(tmp, 'a-out'), w.files, false);
    rmSync(capture);
    // the flood went through the connection table: most SYN-only connections were evicted
    expect(statOf(r.files, 'demux.evicted')).toBeGreaterThan(1_000_000);
    expect(statOf(r.files, 'reassembler.closedFin')).toBe(2020);
  });

  it('(b) 10 000 connections sending a little every second amid bulk traffic', { timeout: 300_000 }, async () => {
    const capture = path.join(tmp, 'sparse-many.pcap');
    const w = (await writeSparseMany(capture, { conns: 10_000, seconds: 6, bulkConns: 2, bulkRate: 20e6 })) as { files: Stream[] };
    expect(w.files.length).toBe(2 * 10_000 + 2);
    const r = await both('(b) 10 000 sparse connections + bulk', capture, path.join(tmp, 'b-out'), w.files, true);
    rmSync(capture);
    // the sparse directions' bytes were copied out of the read chunks and held, not written every 8 batches
    expect(statOf(r.files, 'sink.heldCopied')).toBeGreaterThan(1_000_000);
    expect(statOf(r.files, 'sink.peakHeld')).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(statOf(r.files, 'demux.evicted')).toBe(0);
  });
});
