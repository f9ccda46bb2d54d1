/**
 * `pcapflow http --extract DIR` (src/sinks/http-extract.ts): names made safe from hostile URIs and
 * Content-Disposition values, bodies written decoded (or raw) and named in the records,
 * incomplete bodies kept, nothing ever overwritten or written outside DIR.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpTransactionRecord } from '../src/core/http-records.js';
import type { HttpEvent } from '../src/core/http.js';
import { baseOf, BodyExtractor, safeBaseName } from '../src/sinks/http-extract.js';
import { REPO_ROOT } from './helpers/env.js';
import { runCli } from './helpers/cli-run.js';

const APP_HTTP = path.resolve(REPO_ROOT, '../shared/pcaps-app/http');
const EXAMPLE = path.join(REPO_ROOT, 'examples/http-get.pcap');
const tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-extract-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SAFE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

describe('safe names', () => {
  it('never leaves the directory, never a device name, never over 100 bytes', () => {
    const hostile = ['..', '.', '../../etc/passwd', '/etc/shadow', 'C:\\Windows\\system32', 'a\0b', 'x\x01\x1f\x7fy', 'a'.repeat(300), 'CON', 'nul.txt', 'com1', 'LPT9.log', 'ünïcödé', '', '.hidden', '-rf', '%2e%2e%2f'];
    for (const h of hostile) {
      const s = safeBaseName(h);
      expect(s, JSON.stringify(h)).toMatch(SAFE);
      expect(s.length).toBeLessThanOrEqual(101);
      expect(/^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i.test(s), s).toBe(false);
      expect(path.basename(path.join('/x', s))).toBe(s);
    }
  });

  it('takes the Content-Disposition filename, else the last segment of the URI path', () => {
    expect(baseOf('/a/b/c.jpg?x=1#f', [])).toBe('c.jpg');
    expect(baseOf('http://host/dl/report%20final.pdf', [])).toBe('report_final.pdf');
    expect(baseOf('/', [])).toBe('body');
    expect(baseOf('/x', [['Content-Disposition', 'attachment; filename="../../evil.exe"']])).toBe('evil.exe');
    expect(baseOf('/x', [['Content-Disposition', "attachment; filename*=UTF-8''na%C3%AFve.txt"]])).toBe('na_ve.txt');
  });
});

describe('pcapflow http --extract', () => {
  const run = async (file: string, dir: string, ...more: string[]): Promise<HttpTransactionRecord[]> => {
    const r = await runCli(['http', file, '--extract', dir, ...more]);
    expect(r.code).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as HttpTransactionRecord)
      .filter((x) => x.type === 'http');
  };

  it('writes the example body, named in its record; a second run into the same directory overwrites nothing', async () => {
    const parent = mkdtempSync(path.join(tmp, 'p-'));
    const dir = path.join(parent, 'out');
    const [t] = await run(EXAMPLE, dir);
    expect(t!.response!.file).toBe('c0-t0-res-CHANGES.bro-aux.txt');
    const body = readFileSync(path.join(dir, t!.response!.file!));
    expect(body.length).toBe(4705);
    expect(createHash('sha256').update(body).digest('hex')).toBe(t!.response!.sha256);
    const [again] = await run(EXAMPLE, dir);
    expect(again!.response!.file).toBe('c0-t0-res-CHANGES.bro-aux.txt-1');
    expect(readdirSync(dir).sort()).toEqual(['c0-t0-res-CHANGES.bro-aux.txt', 'c0-t0-res-CHANGES.bro-aux.txt-1']);
    expect(readdirSync(parent)).toEqual(['out']); // nothing beside it
  });

  it.skipIf(!existsSync(APP_HTTP))('decoded by default, as on the wire with --raw-bodies; incomplete bodies kept and marked', async () => {
    const gz = path.join(APP_HTTP, 'zeek__http-gzip-content-encoding.pcap');
    const [d] = await run(gz, path.join(tmp, 'dec'));
    expect(createHash('sha256').update(readFileSync(path.join(tmp, 'dec', d!.response!.file!))).digest('hex')).toBe('202b775be087f5af98e95120e42769a9b3488f84c5aa79c4f4c1093d348f849c');
    const [r] = await run(gz, path.join(tmp, 'raw'), '--raw-bodies');
    expect(statSync(path.join(tmp, 'raw', r!.response!.file!)).size).toBe(r!.response!.bodyBytes);
    const gaps = await run(path.join(APP_HTTP, 'suricata-verify__http-gap-simple.pcap'), path.join(tmp, 'gaps'));
    expect(gaps.map((t) => [t.response!.file, t.response!.complete])).toEqual([
      ['c0-t0-res-1', true],
      ['c0-t1-res-2', false],
      ['c0-t2-res-3', true],
    ]);
    expect(statSync(path.join(tmp, 'gaps', 'c0-t1-res-2')).size).toBe(gaps[1]!.response!.bodyBytes);
    expect(readdirSync(path.join(tmp, 'gaps')).some((f) => f.endsWith('.part'))).toBe(false);
  });
});

describe('BodyExtractor', () => {
  it.each([
    ['on this thread', 4096],
    ['by the write thread', 0],
    ['on this thread, then by the write thread', 10],
  ])('writes small bodies whole (%s) and large ones through NAME.part, spills what passes its held bound, and overwrites nothing on a second run', async (_how, hereFiles) => {
    const dir = mkdtempSync(path.join(tmp, 'whole-'));
    // 80 bodies of 60 KiB open at once (4.8 MB: past the 4 MiB held for all), one of 200 KiB, one of 10 bytes
    const sizes = [...Array<number>(80).fill(60 * 1024), 200 * 1024, 10];
    const bodies = sizes.map((n, i) => Buffer.from(Array.from({ length: n }, (_, k) => (k * 31 + i) & 0xff)));
    const ev = (e: Record<string, unknown>): HttpEvent => ({ ts: '0', ...e }) as unknown as HttpEvent;
    for (const run of [0, 1]) {
      const x = new BodyExtractor(dir, false, undefined, hereFiles);
      const write = async (events: HttpEvent[]): Promise<void> => {
        x.write(events);
        await x.flush();
      };
      await write(bodies.flatMap((_, i) => [ev({ type: 'http_request', conn: i, dir: 'c2s', seq: 0, uri: `/f${i}.bin`, headers: [] }), ev({ type: 'http_response', conn: i, dir: 's2c', seq: 0, request: 0, headers: [] })]));
      for (let off = 0; off < 200 * 1024; off += 4096) {
        // one batch per round: every body's next 4 KiB
        await write(bodies.flatMap((b, i) => (off < b.length ? [ev({ type: 'http_body', conn: i, dir: 's2c', seq: 0, offset: off, data: b.subarray(off, off + 4096) })] : [])));
      }
      await write(bodies.map((b, i) => ev({ type: 'http_end', conn: i, dir: 's2c', seq: 0, framing: 'length', bodyBytes: b.length, missing: 0, complete: true, reason: 'ok', trailers: [] })));
      await x.end();
      expect(x.stats).toEqual({ files: bodies.length, bytes: bodies.reduce((a, b) => a + b.length, 0), incomplete: 0 });
      bodies.forEach((b, i) => {
        const name = x.fileOf(i, 's2c', 0);
        expect(name).toBe(`c${i}-t0-res-f${i}.bin${run === 0 ? '' : '-1'}`);
        expect(readFileSync(path.join(dir, name!)).equals(b), name).toBe(true);
      });
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
    expect(readdirSync(dir).length).toBe(2 * bodies.length);
  });
});

describe('BodyExtractor and the write thread', () => {
  it('fails with OUTPUT_FAILED, and overwrites nothing, when a file of a name it gave appears in DIR during the run', async () => {
    const dir = mkdtempSync(path.join(tmp, 'race-'));
    const ev = (e: Record<string, unknown>): HttpEvent => ({ ts: '0', ...e }) as unknown as HttpEvent;
    const x = new BodyExtractor(dir, false, undefined, 0);
    x.write([ev({ type: 'http_request', conn: 0, dir: 'c2s', seq: 0, uri: '/a.bin', headers: [] }), ev({ type: 'http_response', conn: 0, dir: 's2c', seq: 0, request: 0, headers: [] })]);
    // someone else writes the name the body will take, after the run listed DIR
    writeFileSync(path.join(dir, 'c0-t0-res-a.bin'), 'theirs');
    x.write([
      ev({ type: 'http_body', conn: 0, dir: 's2c', seq: 0, offset: 0, data: Buffer.from('ours') }),
      ev({ type: 'http_end', conn: 0, dir: 's2c', seq: 0, framing: 'length', bodyBytes: 4, missing: 0, complete: true, reason: 'ok', trailers: [] }),
    ]);
    await expect(x.end()).rejects.toMatchObject({ code: 'OUTPUT_FAILED', message: expect.stringMatching(/appeared in the directory during the run/) });
    expect(readFileSync(path.join(dir, 'c0-t0-res-a.bin'), 'utf8')).toBe('theirs');
  });
});
