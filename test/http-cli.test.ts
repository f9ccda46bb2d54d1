/**
 * `pcapflow http` and the transaction records (src/core/http-records.ts, src/sinks/http-sink.ts):
 * the record of the example capture checked field by field (its body digest against the body cut
 * from the reassembled stream), records at gaps and resyncs on shared captures, the text form,
 * and a jq recipe of the README.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HttpEvent } from '../src/core/http.js';
import { contentRange, HttpRecords, type HttpRecord, type HttpTransactionRecord } from '../src/core/http-records.js';
import { REPO_ROOT, needTool } from './helpers/env.js';
import { BIN, ensureBuilt } from './helpers/live-net.js';
import { runCli } from './helpers/cli-run.js';

const EXAMPLE = path.join(REPO_ROOT, 'examples/http-get.pcap');
const APP_HTTP = path.resolve(REPO_ROOT, '../shared/pcaps-app/http');

const records = (stdout: string): HttpRecord[] =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as HttpRecord);

describe('pcapflow http', () => {
  it('one record per transaction: the example GET, its headers in wire order, its body digest', async () => {
    const r = await runCli(['http', EXAMPLE]);
    expect(r.code).toBe(0);
    const [t, ...more] = records(r.stdout) as HttpTransactionRecord[];
    expect(more).toEqual([]);
    expect(t).toMatchObject({
      type: 'http',
      conn: 0,
      trans: 0,
      client: { ip: '141.142.228.5', port: 59856 },
      server: { ip: '192.150.187.43', port: 80 },
      request: { method: 'GET', uri: '/download/CHANGES.bro-aux.txt', version: 'HTTP/1.1', bodyBytes: 0, missing: 0, complete: true, encodings: [] },
      response: { status: 200, reason: 'OK', version: 'HTTP/1.1', contentType: 'text/plain; charset=UTF-8', bodyBytes: 4705, missing: 0, complete: true, encodings: [] },
    });
    expect(t!.request.headers[0]).toEqual(['User-Agent', 'Wget/1.14 (darwin12.2.0)']);
    expect(t!.response!.headers.map(([n]) => n)).toContain('Content-Length');
    expect(Number(t!.tsResponse) > Number(t!.ts)).toBe(true);
    // the digest is the response body's: the last 4705 bytes of the server's stream
    const dir = mkdtempSync(path.join(tmpdir(), 'pcapflow-http-'));
    try {
      expect((await runCli(['read', EXAMPLE, '--sink', 'files', '-o', dir])).code).toBe(0);
      const s2c = readdirSync(dir).find((f) => f.startsWith('192.150.187.043'))!;
      const body = readFileSync(path.join(dir, s2c)).subarray(-4705);
      expect(t!.response!.sha256).toBe(createHash('sha256').update(body).digest('hex'));
      expect(t!.request.sha256).toBe(createHash('sha256').digest('hex')); // empty body
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!existsSync(APP_HTTP))('records missing bytes and resyncs, and the text form says the same', async () => {
    const simple = records((await runCli(['http', path.join(APP_HTTP, 'suricata-verify__http-gap-simple.pcap')])).stdout) as HttpTransactionRecord[];
    expect(simple.map((t) => [t.trans, t.request.uri, t.response?.status, t.response?.missing, t.response?.complete])).toEqual([
      [0, '/1', 200, 0, true],
      [1, '/2', 200, 14, false],
      [2, '/3', 200, 0, true],
    ]);
    expect(simple[1]!.response!.sha256).toBeUndefined(); // not the whole body
    const text = (await runCli(['http', path.join(APP_HTTP, 'suricata-verify__http-gap-simple.pcap'), '--format', 'text'])).stdout.trim().split('\n');
    expect(text).toHaveLength(3);
    expect(text[1]).toMatch(/ conn 0 #1 127\.0\.0\.1:51297 -> 127\.0\.0\.1:8080 GET \/2 -> 200 OK \(text\/html, 56 bytes\) \[14 bytes missing\]$/);
    // a multipart request's parts, in the text form too
    const upload = (await runCli(['http', path.join(APP_HTTP, 'suricata-verify__http-multipart-post-chunked-reply.pcap'), '--format', 'text'])).stdout.trim();
    expect(upload).toMatch(/ POST \/ \(399 bytes\) \[2 parts: "toto\.txt" 24 bytes, "titi\.txt" 25 bytes\] -> 200 OK /);
    const whole = records((await runCli(['http', path.join(APP_HTTP, 'suricata-verify__http-gap-whole-body.pcap')])).stdout);
    const err = whole.find((x) => x.type === 'http-error');
    // the gap holds /1's body and 2 bytes after it, too few for a message: no response lost, /2 answered /2
    expect(err).toMatchObject({ type: 'http-error', conn: 0, dir: 's2c', reason: 'resync', bytesSkipped: 2, lost: 0 });
    const wholeT = whole.filter((x): x is HttpTransactionRecord => x.type === 'http');
    expect(wholeT.map((t) => [t.request.uri, t.response?.status, t.response?.bodyBytes, t.response?.missing])).toEqual([
      ['/1', 200, 0, 12],
      ['/2', 200, 70, 0],
      ['/3', 200, 12, 0],
    ]);
    const range = records((await runCli(['http', path.join(APP_HTTP, 'suricata-verify__http-206-range-500-1000.pcap')])).stdout) as HttpTransactionRecord[];
    expect(range.map((t) => [t.response?.status, t.response?.bodyBytes, t.response?.contentRange])).toEqual([[206, 501, { start: 500, end: 1000, size: expect.any(Number) as number }]]);
  });

  it.skipIf(!needTool('jq'))('the README recipe: every request and its status', () => {
    ensureBuilt();
    const out = execFileSync('sh', ['-c', `node ${BIN} http ${EXAMPLE} | jq -c '{conn, method: .request.method, uri: .request.uri, status: .response.status}'`], { encoding: 'utf8' });
    expect(out).toBe('{"conn":0,"method":"GET","uri":"/download/CHANGES.bro-aux.txt","status":200}\n');
    if (!existsSync(APP_HTTP)) return;
    const jq = (file: string, filter: string): string => execFileSync('sh', ['-c', `node ${BIN} http ${path.join(APP_HTTP, file)} | jq -c '${filter}'`], { encoding: 'utf8' });
    expect(jq('suricata-verify__http-gap-simple.pcap', 'select(.type=="http" and (.response.missing > 0 or .response.complete == false)) | {conn, trans, uri: .request.uri}')).toBe('{"conn":0,"trans":1,"uri":"/2"}\n');
    expect(jq('suricata-verify__http-gap-whole-body.pcap', 'select(.type=="http-error")')).toMatch(/^\{"type":"http-error","conn":0,"dir":"s2c","offset":\d+,"reason":"resync","bytesSkipped":\d+,"lost":0\}\n$/);
  });
});

describe('HttpRecords', () => {
  it('reads Content-Range, and leaves out what does not parse', () => {
    expect(contentRange('bytes 500-1000/146515')).toEqual({ start: 500, end: 1000, size: 146515 });
    expect(contentRange('bytes 0-0/*')).toEqual({ start: 0, end: 0, size: null });
    for (const bad of [undefined, 'bytes */100', 'items 1-2/3', 'bytes 9-1/10', 'bytes 1-2']) expect(contentRange(bad), String(bad)).toBeNull();
  });

  const digest = () => ({ update: () => undefined, hex: () => 'x' });
  const head = { conn: 1, ts: '1.0', firstTs: '0.5', version: 'HTTP/1.1', headers: [] as Array<[string, string]>, afterResync: false };
  const ep = { ip: '10.0.0.1', port: 1 };

  it('emits in request order once both messages ended, skips interim responses, and flushes at the connection end', () => {
    const r = new HttpRecords(digest);
    const out: HttpRecord[] = [];
    const ev: HttpEvent[] = [
      { ...head, type: 'http_request', dir: 'c2s', seq: 0, method: 'GET', uri: '/a', client: ep, server: ep },
      { type: 'http_end', conn: 1, dir: 'c2s', seq: 0, ts: '1', framing: 'none', bodyBytes: 0, missing: 0, complete: true, reason: 'ok', trailers: [] },
      { ...head, type: 'http_request', dir: 'c2s', seq: 1, method: 'GET', uri: '/b', client: ep, server: ep },
      { type: 'http_end', conn: 1, dir: 'c2s', seq: 1, ts: '1', framing: 'none', bodyBytes: 0, missing: 0, complete: true, reason: 'ok', trailers: [] },
      { ...head, type: 'http_response', dir: 's2c', seq: 0, status: 100, reason: 'Continue', request: 0, interim: true },
      { type: 'http_end', conn: 1, dir: 's2c', seq: 0, ts: '1', framing: 'none', bodyBytes: 0, missing: 0, complete: true, reason: 'ok', trailers: [] },
      { ...head, type: 'http_response', dir: 's2c', seq: 1, status: 200, reason: 'OK', request: 0, interim: false },
      { type: 'http_end', conn: 1, dir: 's2c', seq: 1, ts: '1', framing: 'length', bodyBytes: 3, missing: 0, complete: true, reason: 'ok', trailers: [] },
    ];
    r.write(ev, (o) => out.push(...o));
    expect(out.map((x) => (x as HttpTransactionRecord).request.uri)).toEqual(['/a']);
    r.write([{ type: 'http_close', conn: 1, ts: '2' }], (o) => out.push(...o));
    expect(out.map((x) => [(x as HttpTransactionRecord).trans, (x as HttpTransactionRecord).request.uri, (x as HttpTransactionRecord).response?.status ?? null])).toEqual([
      [0, '/a', 200],
      [1, '/b', null],
    ]);
    expect(r.stats).toMatchObject({ transactions: 2, withoutResponse: 1 });
  });
});
