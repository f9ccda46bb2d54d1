import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Direction, StreamEvent } from '../src/core/events.js';
import { ndjsonLine, PURE_ENCODERS } from '../src/core/format.js';
import { NdjsonSink } from '../src/sinks/ndjson-sink.js';
import { closeEvent, CollectingWritable, dataEvent, drive, endpoints, gapEvent, openEvent, pattern, SlowWritable } from './helpers/sink-events.js';
import { needTool } from './helpers/env.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-ndjson-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Stream {
  events: StreamEvent[][];
  /** The bytes of each (conn, dir). */
  expected: Map<string, Buffer>;
}

/** interleaved builds `conns` connections whose chunks (random sizes, some empty) interleave across batches. */
function interleaved(conns: number, chunksPer: number, seed: number): Stream {
  const sizes = fc.sample(fc.integer({ min: 0, max: 700 }), { seed, numRuns: conns * chunksPer * 2 });
  const parts = new Map<string, Uint8Array[]>();
  const events: StreamEvent[][] = [];
  const opens = [];
  for (let c = 0; c < conns; c++) {
    const { client, server } = endpoints(c);
    opens.push(openEvent(c, client, server));
  }
  events.push(opens);
  const offsets = new Map<string, number>();
  let k = 0;
  for (let i = 0; i < chunksPer; i++) {
    const batch: StreamEvent[] = [];
    for (let c = 0; c < conns; c++) {
      for (const dir of ['c2s', 's2c'] as Direction[]) {
        const key = `${c}/${dir}`;
        const off = offsets.get(key) ?? 0;
        const n = sizes[k++]!;
        const data = pattern(c, dir, off, n);
        batch.push(dataEvent(c, dir, off, data));
        offsets.set(key, off + n);
        const list = parts.get(key) ?? [];
        list.push(data);
        parts.set(key, list);
      }
    }
    events.push(batch);
  }
  events.push(opens.map((o) => closeEvent(o, offsets.get(`${o.conn}/c2s`)!, offsets.get(`${o.conn}/s2c`)!)));
  const expected = new Map<string, Buffer>();
  for (const [key, list] of parts) expected.set(key, Buffer.concat(list));
  return { events, expected };
}

describe('NdjsonSink', () => {
  it('one line per event, in order, one write per batch; lines parse back to the events', async () => {
    for (const encoding of ['base64', 'hex', 'utf8'] as const) {
      const dest = new CollectingWritable();
      const sink = new NdjsonSink({ dest, encoding });
      const { events } = interleaved(3, 4, 1);
      events.splice(2, 0, [gapEvent(1, 'c2s', 5, 10), { type: 'overlap', conn: 2, dir: 's2c', offset: 1, len: 2, ts: '1.000000000', kept: 'first' }]);
      await drive(sink, events);
      expect(dest.writes).toBe(events.length);
      const lines = dest.text().split('\n');
      expect(lines.pop()).toBe('');
      const flat = events.flat();
      expect(lines).toHaveLength(flat.length);
      lines.forEach((line, i) => {
        const o = JSON.parse(line) as Record<string, unknown>;
        const e = flat[i]!;
        if (e.type === 'data') {
          const { data, ...rest } = e;
          expect(o).toMatchObject({ ...rest, len: data.length });
          expect(typeof o.ts).toBe('string');
          if (encoding !== 'utf8') expect(new Uint8Array(Buffer.from(o.data as string, encoding))).toEqual(data);
        } else {
          expect(o).toEqual({ ...e });
        }
      });
    }
  });

  it('renders every line as ndjsonLine does, also where the size estimate falls short', async () => {
    const big = { ip: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', port: 65535 };
    const open = { ...openEvent(7, big, { ...big, port: 1 }, Array.from({ length: 40 }, (_v, i) => 4000 + i)), options: { c2s: { mss: 1460, wscale: 14, sackPermitted: true }, s2c: { mss: 9000 } } };
    // every byte value: control bytes escape to 6 characters in utf8 mode, high bytes to U+FFFD
    const all = Uint8Array.from({ length: 3000 }, (_v, i) => (i * 7) % 256);
    const batch: StreamEvent[] = [open, dataEvent(7, 'c2s', 0, all), dataEvent(7, 's2c', 0, new Uint8Array(0)), gapEvent(7, 'c2s', 3000, 10), dataEvent(7, 'c2s', 3010, all.subarray(1, 2))];
    for (const encoding of ['base64', 'hex', 'utf8'] as const) {
      const dest = new CollectingWritable();
      await drive(new NdjsonSink({ dest, encoding }), [batch]);
      expect(dest.text()).toBe(batch.map((e) => ndjsonLine(e, PURE_ENCODERS[encoding])).join(''));
      expect(dest.writes).toBe(1);
    }
  });

  it('rejects an unknown encoding with INVALID_OPTION', () => {
    expect(() => new NdjsonSink({ encoding: 'base32' as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('honours backpressure: a slow destination bounds what is buffered', async () => {
    const dest = new SlowWritable();
    const sink = new NdjsonSink({ dest });
    const { events } = interleaved(5, 400, 2);
    const { maxAhead } = await drive(sink, events);
    expect(sink.stats.drains).toBeGreaterThan(100);
    expect(maxAhead).toBeLessThanOrEqual(10);
    // one batch is 10 data lines of at most 700 bytes (base64 ~ 934 chars + ~110 of fields)
    expect(dest.maxBuffered).toBeLessThanOrEqual(10 * 1100);
  });

  it('stops quietly on EPIPE (a real pipe to head -c 100) and exposes closedEarly', async () => {
    const child = spawn('head', ['-c', '100'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const got: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => got.push(b));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const sink = new NdjsonSink({ dest: child.stdin });
    const { events } = interleaved(4, 2000, 3);
    await drive(sink, events);
    expect(await exited).toBe(0);
    expect(sink.closedEarly).toBe(true);
    expect(sink.stats.dropped).toBeGreaterThan(0);
    expect(Buffer.concat(got).toString()).toMatch(/^\{"type":"open","conn":0,/);
    expect(Buffer.concat(got)).toHaveLength(100);
  });
});

// The README recipe: one stream out of the NDJSON with jq, decoded by the coreutils tool. Each
// chunk's base64 is padded on its own line; GNU base64 -d decodes the lines as one stream.
describe('NDJSON recipes with the real jq, base64 and xxd', () => {
  const haveTools = needTool('jq') && needTool('base64') && needTool('xxd');

  it.runIf(haveTools)("jq -r 'select(...) | .data' | base64 -d gives the stream, for every connection and direction", async () => {
    const { events, expected } = interleaved(4, 60, 4);
    const file = path.join(tmp, 'b64.ndjson');
    const sink = new NdjsonSink({ dest: fs.createWriteStream(file) });
    await drive(sink, events);
    for (const [key, bytes] of expected) {
      const [conn, dir] = key.split('/');
      const jq = `select(.type=="data" and .conn==${conn} and .dir=="${dir}") | .data`;
      const out = execFileSync('sh', ['-c', `jq -r '${jq}' "$1" | base64 -d`, 'sh', file], { maxBuffer: 1 << 26 });
      expect(out.equals(bytes)).toBe(true);
    }
  });

  it.runIf(haveTools)('--encoding hex with xxd -r -p gives the stream too', async () => {
    const { events, expected } = interleaved(2, 40, 5);
    const file = path.join(tmp, 'hex.ndjson');
    const sink = new NdjsonSink({ dest: fs.createWriteStream(file), encoding: 'hex' });
    await drive(sink, events);
    for (const [key, bytes] of expected) {
      const [conn, dir] = key.split('/');
      const jq = `select(.type=="data" and .conn==${conn} and .dir=="${dir}") | .data`;
      const out = execFileSync('sh', ['-c', `jq -r '${jq}' "$1" | xxd -r -p`, 'sh', file], { maxBuffer: 1 << 26 });
      expect(out.equals(bytes)).toBe(true);
    }
  });

  it.runIf(haveTools)('base64 -d decodes padded chunks one per line, whatever their lengths', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 10 }), { maxLength: 30 }), (chunks) => {
        const input = chunks.map((c) => Buffer.from(c).toString('base64') + '\n').join('');
        const out = execFileSync('base64', ['-d'], { input });
        expect(out.equals(Buffer.concat(chunks))).toBe(true);
      }),
      { seed: 11, numRuns: 40 },
    );
  });
});
