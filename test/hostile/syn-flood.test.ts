/**
 * A SYN flood (issue 5): 2 000 000 SYN-only connection attempts, never answered, with 10 real
 * connections interleaved (bench/synth.js writeSynFlood), read by the CLI into --sink files with
 * the default memory budget (256 MiB). Peak RSS (/usr/bin/time, else VmHWM polled from /proc)
 * must stay under the budget plus 100 MB; the real connections come out whole; the SYN-only
 * ones write no file but one connections.ndjson line each (reason evicted, or eof for those
 * still held at the end). Generating and reading take some 30 s here (2 CPUs), so the test has
 * its own timeout.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMeasured } from '../helpers/peak-rss.js';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { payloadByte, writeSynFlood } from '../../bench/synth.js';

const SYNS = 2_000_000;
const REAL = 10;
const BYTES = 200_000;
const BUDGET_MB = 256;

async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  }
  return n;
}

describe('SYN flood: 2 M SYN-only attempts and 10 real connections', () => {
  let tmp = '';
  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'pf-synflood-'));
    await writeSynFlood(path.join(tmp, 'flood.pcap'), { syns: SYNS, realConns: REAL, bytesPerConn: BYTES });
  }, 120_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('stays under the memory budget plus 100 MB, keeps the real connections whole, writes no file for a SYN', { timeout: 300_000 }, async () => {
    const out = path.join(tmp, 'out');
    const r = await runMeasured(['read', path.join(tmp, 'flood.pcap'), '--sink', 'files', '-o', out, '--stats']);
    expect(r.code).toBe(0);
    console.log(`SYN flood ${SYNS}: ${r.seconds.toFixed(1)} s, peak RSS ${r.peakMb.toFixed(0)} MB`);
    expect(r.peakMb).toBeLessThan(BUDGET_MB + 100);
    expect(r.seconds).toBeLessThan(120); // it took 162 s before the fixes

    const stat = (name: string): number => Number(new RegExp(`^${name.replace('.', '\\.')}\\s+(\\d+)`, 'm').exec(r.stderr)?.[1] ?? NaN);
    expect(stat('demux.evicted')).toBeGreaterThan(SYNS / 2);
    expect(stat('reassembler.evicted')).toBe(stat('demux.evicted'));
    expect(stat('sink.connections')).toBe(SYNS + REAL);

    // the files: one per real connection (the server's bytes), nothing for the SYNs
    const files = readdirSync(out).filter((f) => f !== 'connections.ndjson');
    expect(files).toHaveLength(REAL);
    for (let c = 0; c < REAL; c++) {
      const name = `010.100.000.001.00080-010.101.000.${String(c + 1).padStart(3, '0')}.${40000 + c}`;
      const data = readFileSync(path.join(out, name));
      expect(data.length).toBe(BYTES);
      let bad = -1;
      for (let i = 0; i < BYTES && bad < 0; i++) if (data[i] !== payloadByte(c, i)) bad = i;
      expect(bad).toBe(-1);
    }
    // one record per connection; a SYN's record: no file, one packet, evicted (or eof at the end)
    const records = path.join(out, 'connections.ndjson');
    expect(await countLines(records)).toBe(SYNS + REAL);
    const buf = Buffer.alloc(4096);
    const fd = openSync(records, 'r');
    readSync(fd, buf, 0, buf.length, 0);
    closeSync(fd);
    const head = buf.toString('utf8').split('\n')[0]!;
    const first = JSON.parse(head) as { reason: string; c2s: { file: string | null; packets: number; bytes: number }; s2c: { file: string | null; packets: number } };
    expect(first).toMatchObject({ reason: 'evicted', c2s: { file: null, packets: 1, bytes: 0 }, s2c: { file: null, packets: 0 } });
  });
});
