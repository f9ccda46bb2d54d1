/**
 * Content-Encoding decoding of HTTP bodies (src/transforms/http-decode.ts): each coding and stacks
 * of them on bodies cut into many events, what happens on an unsupported coding, corrupt data, a
 * gap and a decompression bomb; and on shared captures, the decoded sizes and digest that Zeek's
 * own baselines give.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { HttpEndEvent, HttpEvent } from '../src/core/http.js';
import type { HttpTransactionRecord } from '../src/core/http-records.js';
import { HttpBodyDecoder } from '../src/transforms/http-decode.js';
import { REPO_ROOT } from './helpers/env.js';
import { runCli } from './helpers/cli-run.js';

const APP_HTTP = path.resolve(REPO_ROOT, '../shared/pcaps-app/http');

/** events: a response with `encoding` whose wire body is `wire`, cut into `piece`-byte body events. */
function events(encoding: string, wire: Buffer, piece = 100, missingAt = -1): HttpEvent[] {
  const out: HttpEvent[] = [
    {
      type: 'http_response',
      conn: 0,
      dir: 's2c',
      ts: '1',
      firstTs: '1',
      seq: 0,
      version: 'HTTP/1.1',
      headers: [['Content-Encoding', encoding]],
      afterResync: false,
      status: 200,
      reason: 'OK',
      request: 0,
      interim: false,
    },
  ];
  let missing = 0;
  for (let off = 0; off < wire.length; off += piece) {
    if (off === missingAt) {
      missing = piece;
      continue;
    }
    out.push({ type: 'http_body', conn: 0, dir: 's2c', seq: 0, ts: '1', offset: off, data: wire.subarray(off, off + piece) });
  }
  out.push({ type: 'http_end', conn: 0, dir: 's2c', seq: 0, ts: '1', framing: 'length', bodyBytes: wire.length - missing, missing, complete: missing === 0, reason: missing === 0 ? 'ok' : 'gap', trailers: [] });
  return out;
}

async function decode(evs: HttpEvent[], options = {}): Promise<{ body: Buffer; end: HttpEndEvent }> {
  const out = await new HttpBodyDecoder(options).process(evs);
  const parts = out.filter((e) => e.type === 'http_decoded');
  let at = 0;
  for (const p of parts) {
    expect(p.offset).toBe(at);
    at += p.data.length;
  }
  return { body: Buffer.concat(parts.map((p) => p.data)), end: out.find((e) => e.type === 'http_end')! };
}

const text = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(2000));

describe('HttpBodyDecoder', () => {
  it('decodes at most maxActive bodies at once; one past it keeps its wire bytes and says why; a place freed is taken again', async () => {
    const wire = zlib.gzipSync(text);
    const heads = (conn: number): HttpEvent[] => events('gzip', wire).slice(0, 1).map((e) => ({ ...e, conn }));
    const bodyAndEnd = (conn: number): HttpEvent[] => events('gzip', wire, 1000).slice(1).map((e) => ({ ...e, conn }));
    const d = new HttpBodyDecoder({ maxActive: 2 });
    // three bodies begin before any ends; then a fourth begins after the first ended
    const out = [...(await d.process([...heads(0), ...heads(1), ...heads(2)])), ...(await d.process([...bodyAndEnd(0), ...bodyAndEnd(1), ...bodyAndEnd(2)])), ...(await d.process([...heads(3), ...bodyAndEnd(3)]))];
    const ends = out.filter((e): e is HttpEndEvent => e.type === 'http_end');
    expect(ends.map((e) => [e.conn, e.decoded?.error ?? null, e.decoded?.bytes])).toEqual([
      [0, null, text.length],
      [1, null, text.length],
      [2, "not decoded: 2 bodies decoding at once (the memory budget's share)", 0],
      [3, null, text.length],
    ]);
    expect(out.filter((e) => e.type === 'http_body' && e.conn === 2).length).toBeGreaterThan(0);
  });

  it('decodes gzip, x-gzip, deflate (zlib-wrapped and raw), br and stacks, whatever the cuts', async () => {
    const cases: Array<[string, Buffer]> = [
      ['gzip', zlib.gzipSync(text)],
      ['x-gzip', zlib.gzipSync(text)],
      ['deflate', zlib.deflateSync(text)],
      ['deflate', zlib.deflateRawSync(text)],
      ['br', zlib.brotliCompressSync(text)],
      ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(text))],
      ['GZIP, identity, deflate', zlib.deflateSync(zlib.gzipSync(text))],
    ];
    for (const [coding, wire] of cases) {
      for (const piece of [1, 7, 100, 100_000]) {
        const { body, end } = await decode(events(coding, wire, piece));
        expect(body.equals(text), `${coding} in ${piece}-byte pieces`).toBe(true);
        expect(end.decoded).toMatchObject({ bytes: text.length, error: null, capped: null });
      }
    }
  });

  it('keeps an unsupported coding as it is, says why, and keeps what decoded before a fault or a gap', async () => {
    const z = await decode(events('zstd', Buffer.from('whatever')));
    expect(z.body.length).toBe(0);
    expect(z.end.decoded).toMatchObject({ codings: ['zstd'], bytes: 0, error: 'unsupported Content-Encoding zstd' });
    const gz = zlib.gzipSync(text);
    const cut = Buffer.concat([gz.subarray(0, 500), Buffer.from('garbage garbage garbage')]);
    const bad = await decode(events('gzip', cut, 50));
    expect(bad.end.decoded?.error).toMatch(/./);
    expect(text.subarray(0, bad.body.length).equals(bad.body)).toBe(true);
    const gap = await decode(events('gzip', gz, 100, 300));
    expect(gap.end.decoded?.error).toBe('gap');
    expect(text.subarray(0, gap.body.length).equals(gap.body)).toBe(true);
  });

  it('caps a decompression bomb by decoded bytes and by ratio, and says which', async () => {
    const zeros = Buffer.alloc(20 << 20);
    const bomb = zlib.gzipSync(zeros);
    const bytes = await decode(events('gzip', bomb, 4096), { maxBodyBytes: 1 << 20, maxRatio: 1e9 });
    expect(bytes.body.length).toBe(1 << 20);
    expect(bytes.end.decoded).toMatchObject({ capped: 'bytes', bytes: 1 << 20 });
    // brotli packs 20 MB of zeros into a few bytes: far past 1000 decoded bytes per wire byte
    const ratio = await decode(events('br', zlib.brotliCompressSync(zeros), 4096));
    expect(ratio.end.decoded?.capped).toBe('ratio');
    expect(ratio.body.length).toBeLessThanOrEqual(1 << 20);
  });
});

describe.skipIf(!existsSync(APP_HTTP))("pcapflow http decodes as Zeek's baselines say", () => {
  const first = async (file: string): Promise<HttpTransactionRecord[]> =>
    (await runCli(['http', path.join(APP_HTTP, file)])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as HttpTransactionRecord);

  it('gzip (digest of the decoded body), x-gzip and raw deflate (decoded lengths)', async () => {
    const [gz] = await first('zeek__http-gzip-content-encoding.pcap');
    // expected/zeek/scripts.base.frameworks.file-analysis.http.get/get-gzip.out
    expect(gz!.response).toMatchObject({ encodings: ['gzip'], decodedBytes: 197, decodeError: null, sha256: '202b775be087f5af98e95120e42769a9b3488f84c5aa79c4f4c1093d348f849c' });
    // expected/zeek/scripts.base.protocols.http.x-gzip/http.log: response_body_len 19
    expect((await first('zeek__http-x-gzip-content-encoding.pcap'))[0]!.response).toMatchObject({ decodedBytes: 19, decodeError: null });
    // expected/zeek/scripts.base.protocols.http.missing-zlib-header/http.log: response_body_len 13249
    for (const t of await first('zeek__http-deflate-raw-no-zlib-header.pcap')) expect(t.response).toMatchObject({ decodedBytes: 13249, decodeError: null });
    // a gzip header on a plain body: the decode error, the raw body kept
    const [plain] = await first('suricata-verify__http-gzip-header-plaintext-body.pcap');
    expect(plain!.request.decodeError).toMatch(/header/);
    expect(plain!.request.sha256).toBeUndefined();
  });
});
