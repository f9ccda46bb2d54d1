/**
 * multipart/form-data requests in `pcapflow http` (issue 15, item 6): the `parts` of the request
 * records and the part files of `--extract` (src/core/multipart.ts, src/core/http-records.ts,
 * src/sinks/http-extract.ts), checked against Zeek's own baselines for the same captures (and
 * two Suricata tests), read from ../shared where their licences keep them; plus hostile part
 * filenames that must never leave the directory.
 *
 * Zeek and pcapflow differ on purpose in these ways (each check below says which it meets):
 * - Zeek makes a file of every MIME part, form fields included (their fuids in http.log,
 *   `N-file` extracted); pcapflow writes files only for parts with a filename (uploads) and lists
 *   form fields in `parts` with their size and digest, so form values do not fill DIR.
 * - Zeek's orig_mime_types are sniffed from the content (libmagic-like signatures); pcapflow's
 *   `contentType` is the part's Content-Type header, as sent. They agree on these captures.
 * - Zeek stops making files past HTTP::max_files_orig (15) and calls a hook for each part past
 *   it; pcapflow lists up to 256 parts and counts the rest in `partsError`.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpEvent, HttpRequestEvent } from '../src/core/http.js';
import { HttpRecords, type HttpRecord, type HttpTransactionRecord } from '../src/core/http-records.js';
import { formBoundary, MultipartParser, type MultipartEvent } from '../src/core/multipart.js';
import { BodyExtractor } from '../src/sinks/http-extract.js';
import { REPO_ROOT, SHARED_PCAPS, needTool } from './helpers/env.js';
import { runCli } from './helpers/cli-run.js';
import { parseHttpCapture } from './helpers/http-capture.js';

const APP = path.resolve(REPO_ROOT, '../shared/pcaps-app');
const HTTP = path.join(APP, 'http');
const ZEEK = path.join(APP, 'expected/zeek');
const SURICATA = path.join(APP, 'expected/suricata-verify');
const HTTPBIN = path.join(HTTP, 'zeek__http-multipart-post-httpbin.pcap');
const WEBKIT = path.join(HTTP, 'zeek__http-multipart-form-data-post.pcap');
const tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-multipart-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const SAFE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** zeekLog: the rows of a Zeek TSV log as field → value. */
function zeekLog(file: string): Array<Record<string, string>> {
  const lines = readFileSync(file, 'utf8').split('\n');
  const fields = lines.find((l) => l.startsWith('#fields\t'))!.split('\t').slice(1);
  return lines.filter((l) => l !== '' && !l.startsWith('#')).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [fields[i]!, v])));
}
const zeekSet = (v: string | undefined): string[] => (v === undefined || v === '-' ? [] : v.split(','));

async function http(file: string, dir: string): Promise<HttpTransactionRecord[]> {
  const r = await runCli(['http', file, '--extract', dir]);
  expect(r.code).toBe(0);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as HttpRecord)
    .filter((x): x is HttpTransactionRecord => x.type === 'http');
}

describe.skipIf(!existsSync(ZEEK) || !existsSync(HTTP))('Zeek baselines', () => {
  it('multipart.pcap (curl, 3 form fields): the parts Zeek extracted, byte for byte, and its http.log', async () => {
    const dir = path.join(tmp, 'httpbin');
    const [t, ...more] = await http(HTTPBIN, dir);
    expect(more).toEqual([]);
    const parts = t!.request.parts!;
    expect(t!.request.partsError).toBeNull();
    // scripts.base.frameworks.file-analysis.http.multipart: 1-file..3-file are the parts' contents,
    // 4-file the response's; `out` prints each file's SHA256 in the same order
    const fa = path.join(ZEEK, 'scripts.base.frameworks.file-analysis.http.multipart');
    const zeekFiles = ['1-file', '2-file', '3-file'].map((f) => readFileSync(path.join(fa, f)));
    expect(parts.map((p) => [p.bytes, p.sha256, p.complete])).toEqual(zeekFiles.map((b) => [b.length, sha256(b), true]));
    const response = readFileSync(path.join(fa, '4-file'));
    expect(t!.response!.sha256).toBe(sha256(response));
    expect(readFileSync(path.join(dir, t!.response!.file!)).equals(response)).toBe(true);
    const outSums = [...readFileSync(path.join(fa, 'out'), 'utf8').matchAll(/^SHA256: ([0-9a-f]{64})$/gm)].map((m) => m[1]);
    expect(outSums).toEqual([...parts.map((p) => p.sha256), t!.response!.sha256]);
    expect(parts.map((p) => [p.name, p.filename, p.contentType])).toEqual([
      ['example', null, null],
      ['example2', null, null],
      ['example3', null, null],
    ]);
    // difference: Zeek writes these form fields to files; they have no filename, so pcapflow does not
    expect(parts.every((p) => p.file === undefined)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['c0-t0-req-post', 'c0-t0-res-post']);

    // scripts.base.protocols.http.multipart-extract/http.log (and multipart-file-limit/http.log, the same
    // run without the limit): one fuid per part, no filenames, no sniffed MIME type (`test` matches no
    // signature; no Content-Type header in the parts either), body lengths of the outer entity
    for (const log of ['scripts.base.protocols.http.multipart-extract/http.log', 'scripts.base.protocols.http.multipart-file-limit/http.log']) {
      const [row, ...rest] = zeekLog(path.join(ZEEK, log));
      expect(rest).toEqual([]);
      expect(Number(row!.request_body_len)).toBe(t!.request.bodyBytes);
      expect(Number(row!.response_body_len)).toBe(t!.response!.bodyBytes);
      expect(zeekSet(row!.orig_fuids)).toHaveLength(parts.length);
      expect(zeekSet(row!.orig_filenames)).toEqual(parts.flatMap((p) => (p.filename === null ? [] : [p.filename])));
      expect(zeekSet(row!.orig_mime_types)).toEqual(parts.flatMap((p) => (p.contentType === null ? [] : [p.contentType])));
    }
  });

  it('multipart-file-limit: with a limit of one part, the one Zeek keeps, and the two it reports past the limit', async () => {
    // Zeek's HTTP::max_files_orig = 1: http-limited.log keeps the first part's fuid and the hook
    // prints "max_files reached" once per part past it; the parser's maxParts = 1 lists the first
    // part and counts the others in `omitted`. With the hook breaking (limit ignored) all three stay.
    const base = path.join(ZEEK, 'scripts.base.protocols.http.multipart-file-limit');
    const limited = zeekLog(path.join(base, 'http-limited.log'))[0]!;
    const reached = readFileSync(path.join(base, 'out-limited'), 'utf8').split('\n').filter((l) => l === 'max_files reached').length;
    const ignored = zeekLog(path.join(base, 'http-limit-ignored.log'))[0]!;

    const { out } = await parseHttpCapture(HTTPBIN);
    const req = out.find((e): e is HttpRequestEvent => e.type === 'http_request')!;
    const boundary = formBoundary(req.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1]);
    expect(typeof boundary).toBe('string');
    const run = (maxParts: number): { listed: number; omitted: number; error: string | null } => {
      const p = new MultipartParser(boundary as string, { maxParts });
      let listed = 0;
      const emit = (e: MultipartEvent): void => void (e.type === 'part' && listed++);
      for (const e of out) if (e.type === 'http_body' && e.dir === 'c2s' && e.seq === req.seq) p.write(e.data, emit);
      p.end(emit);
      return { listed, omitted: p.omitted, error: p.error };
    };
    expect(run(1)).toEqual({ listed: zeekSet(limited.orig_fuids).length, omitted: reached, error: 'parts past the first 1: 2 not listed' });
    expect(run(256)).toEqual({ listed: zeekSet(ignored.orig_fuids).length, omitted: 0, error: null });
  });

  it('multipart-form-data.pcap (Chrome, one file): the file, its name and type, the outer body length', async () => {
    const dir = path.join(tmp, 'webkit');
    const [t] = await http(WEBKIT, dir);
    const [row] = zeekLog(path.join(ZEEK, 'scripts.base.protocols.http.multipart-body-length/http.log'));
    // request_body_len counts the outer entity once (what the Zeek test is about)
    expect(t!.request.bodyBytes).toBe(Number(row!.request_body_len));
    expect(t!.response).toBeNull(); // no response in the capture: Zeek's status_code is unset
    expect(row!.status_code).toBe('-');
    const parts = t!.request.parts!;
    expect(parts).toHaveLength(zeekSet(row!.orig_fuids).length);
    expect(parts.map((p) => p.filename)).toEqual(zeekSet(row!.orig_filenames));
    // Zeek sniffs text/plain from the content; the part's header says text/plain too
    expect(parts.map((p) => p.contentType)).toEqual(zeekSet(row!.orig_mime_types));
    expect(parts[0]).toMatchObject({ index: 0, name: 'file1', complete: true, file: 'c0-t0-req-p0-test.txt' });
    // Zeek has no baseline of this file's bytes: they are cut here from the whole body (itself
    // request_body_len bytes, as Zeek counts) between the part's head and the close delimiter
    const whole = readFileSync(path.join(dir, t!.request.file!));
    expect(whole.length).toBe(Number(row!.request_body_len));
    const from = whole.indexOf('\r\n\r\n') + 4;
    const to = whole.indexOf('\r\n------WebKitFormBoundaryBtaeRs4vBuzQzpSa--');
    const file = readFileSync(path.join(dir, parts[0]!.file!));
    expect(file.equals(whole.subarray(from, to))).toBe(true);
    expect(file.length).toBe(584);
    expect(parts[0]!.bytes).toBe(584);
    expect(parts[0]!.sha256).toBe(sha256(file));
  });
});

describe.skipIf(!existsSync(SURICATA) || !existsSync(HTTP))('Suricata tests', () => {
  it('file-match-crossed: the two uploaded files, as Suricata stored them', async () => {
    const dir = path.join(tmp, 'crossed');
    const [t] = await http(path.join(HTTP, 'suricata-verify__http-multipart-post-chunked-reply.pcap'), dir);
    const parts = t!.request.parts!;
    expect(parts.map((p) => [p.name, p.filename, p.contentType, p.file])).toEqual([
      ['upload1', 'toto.txt', 'text/plain', 'c0-t0-req-p0-toto.txt'],
      ['upload2', 'titi.txt', 'text/plain', 'c0-t0-req-p1-titi.txt'],
    ]);
    for (const [i, name] of ['toto.txt', 'titi.txt'].entries()) expect(readFileSync(path.join(dir, parts[i]!.file!)).equals(readFileSync(path.join(SURICATA, 'file-match-crossed', name)))).toBe(true);
    // test.yaml: one fileinfo event for each of these digests
    const yaml = readFileSync(path.join(SURICATA, 'file-match-crossed/test.yaml'), 'utf8');
    const sums = [...yaml.matchAll(/fileinfo\.sha256: ([0-9a-f]{64})/g)].map((m) => m[1]).sort();
    expect(parts.map((p) => p.sha256).sort()).toEqual(sums);
  });

  it('http-multiple100: the uploaded capture file, fileinfo.size bytes, readable as a capture', async () => {
    const dir = path.join(tmp, 'multiple100');
    const [t] = await http(path.join(HTTP, 'suricata-verify__http-multiple-100-continue-upload.pcap'), dir);
    const yaml = readFileSync(path.join(SURICATA, 'http-multiple100/test.yaml'), 'utf8');
    const [p, ...more] = t!.request.parts!;
    expect(more).toEqual([]);
    expect(p).toMatchObject({ filename: 'otherhtp.pcap', contentType: 'application/octet-stream', complete: true, bytes: Number(/fileinfo\.size: (\d+)/.exec(yaml)![1]) });
    // the upload is itself a pcap: one byte more or less at either end and it would not read to its end
    const r = await runCli(['packets', path.join(dir, p!.file!)]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBeGreaterThan(10);
  });
});

describe.skipIf(!existsSync(path.join(SHARED_PCAPS, 'suricata-verify__http-upload-file-cut-mid-record.pcap')))('a real upload (a stealer sending its loot: ten form fields and a zip)', () => {
  it('every part listed, the zip written whole; an empty multipart body has no parts and no error', async () => {
    const dir = path.join(tmp, 'loot');
    // the capture ends inside a packet record: the run reports it and still gives every record
    const r = await runCli(['http', path.join(SHARED_PCAPS, 'suricata-verify__http-upload-file-cut-mid-record.pcap'), '--extract', dir]);
    const ts = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as HttpRecord)
      .filter((x): x is HttpTransactionRecord => x.type === 'http' && x.request.parts !== undefined);
    expect(ts.map((t) => [t.trans, t.request.bodyBytes, t.request.parts!.length, t.request.partsError])).toEqual([
      [0, 25, 0, null], // `--BOUNDARY--` and nothing else
      [7, 134727, 11, null],
    ]);
    const parts = ts[1]!.request.parts!;
    expect(parts.filter((p) => p.filename !== null).map((p) => [p.index, p.name, p.contentType, p.complete])).toEqual([[10, 'logs', 'zip', true]]);
    expect(parts.every((p) => p.complete && p.sha256 !== undefined && (p.file === undefined) === (p.filename === null))).toBe(true);
    // the zip is what the whole body holds between the part's head and the close delimiter
    const whole = readFileSync(path.join(dir, ts[1]!.request.file!));
    const from = whole.indexOf('\r\n\r\n', whole.indexOf('name="logs"')) + 4;
    const to = whole.lastIndexOf('\r\n--1BEF0A57BE110FD467A--');
    const zip = readFileSync(path.join(dir, parts[10]!.file!));
    expect(zip.equals(whole.subarray(from, to))).toBe(true);
    expect(zip.subarray(0, 4).toString('latin1')).toBe('PK\x03\x04');
  });
});

describe('part files under hostile names', () => {
  const ep = { ip: '10.0.0.1', port: 1 };
  const request = (seq: number, headers: Array<[string, string]>): HttpRequestEvent => ({
    type: 'http_request',
    conn: 0,
    dir: 'c2s',
    seq,
    ts: '1.0',
    firstTs: '1.0',
    version: 'HTTP/1.1',
    headers,
    afterResync: false,
    method: 'POST',
    uri: '/upload',
    client: ep,
    server: ep,
  });
  const enc = new TextEncoder();
  /** events: a request with `body` in pieces of `size` bytes, then its end. */
  const events = (seq: number, headers: Array<[string, string]>, body: string, size: number): HttpEvent[] => {
    const bytes = enc.encode(body);
    const out: HttpEvent[] = [request(seq, headers)];
    for (let o = 0; o < bytes.length; o += size) out.push({ type: 'http_body', conn: 0, dir: 'c2s', seq, ts: '1', offset: o, data: bytes.subarray(o, o + size) });
    out.push({ type: 'http_end', conn: 0, dir: 'c2s', seq, ts: '1', framing: 'length', bodyBytes: bytes.length, missing: 0, complete: true, reason: 'ok', trailers: [] });
    return out;
  };
  const part = (disposition: string, content: string): string => `--XyZ\r\nContent-Disposition: form-data; ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n${content}\r\n`;
  const hashOf = () => {
    const h = createHash('sha256');
    return { update: (d: Uint8Array) => void h.update(d), hex: () => h.digest('hex') };
  };
  /** run: the events through the extractor, then the records (as HttpSink does), into `dir`. */
  const run = (dir: string, evs: HttpEvent[], raw = false): HttpTransactionRecord[] => {
    const x = new BodyExtractor(dir, raw);
    const records = new HttpRecords(hashOf, (conn, d, seq, p) => x.fileOf(conn, d, seq, p));
    const out: HttpRecord[] = [];
    x.write(evs);
    records.write(evs, (r) => out.push(...r));
    records.end((r) => out.push(...r));
    return out as HttpTransactionRecord[];
  };
  const CT: Array<[string, string]> = [['Content-Type', 'multipart/form-data; boundary=XyZ']];

  it('never outside DIR, never a device name, never over the length limit; each part whole in its file', () => {
    const names = ['../../etc/passwd', '/etc/shadow', 'C:\\Windows\\system32\\evil.exe', 'a\u0000b.txt', 'x'.repeat(300), 'CON', 'nul.txt', '..', '.', '.hidden', '-rf', 'same.txt', 'same.txt', '%2e%2e%2fup', 'ünï.txt'];
    const body = `${names.map((n, i) => part(`name="f${i}"; filename="${n}"`, `content ${i}`)).join('')}${part('name="field"', 'not a file')}${part('name="none"; filename=""', '')}--XyZ--\r\n`;
    const parent = mkdtempSync(path.join(tmp, 'hostile-'));
    const dir = path.join(parent, 'out');
    const [t] = run(dir, events(0, CT, body, 7));
    const parts = t!.request.parts!;
    expect(parts).toHaveLength(names.length + 2);
    expect(parts.map((p) => p.filename)).toEqual([...names, null, '']);
    expect(t!.request.partsError).toBeNull();
    const files = readdirSync(dir).sort();
    // one file per part with a non-empty filename, and the whole body; nothing beside DIR
    expect(files).toHaveLength(names.length + 1);
    expect(readdirSync(parent)).toEqual(['out']);
    expect(parts.slice(-2).every((p) => p.file === undefined)).toBe(true);
    for (const [i, p] of parts.slice(0, names.length).entries()) {
      const f = p.file!;
      expect(f, names[i]).toMatch(SAFE);
      expect(f.startsWith(`c0-t0-req-p${i}-`)).toBe(true);
      expect(Buffer.byteLength(f)).toBeLessThanOrEqual(`c0-t0-req-p${i}-`.length + 100 + 2);
      expect(/^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i.test(f.slice(`c0-t0-req-p${i}-`.length))).toBe(false);
      expect(readFileSync(path.join(dir, f), 'latin1')).toBe(`content ${i}`);
      expect(p.sha256).toBe(sha256(enc.encode(`content ${i}`)));
    }
    expect(parts.map((p) => p.file?.replace(/^c0-t0-req-p\d+-/, ''))).toEqual([
      'passwd',
      'shadow',
      'evil.exe',
      'a_b.txt',
      'x'.repeat(100),
      '_CON',
      '_nul.txt',
      'body',
      'body',
      'hidden',
      'rf',
      'same.txt',
      'same.txt',
      '_2e_2e_2fup',
      '_n_.txt',
      undefined,
      undefined,
    ]);
    // a second run into the same DIR overwrites nothing
    const [again] = run(dir, events(0, CT, body, 4096));
    expect(again!.request.parts![0]!.file).toBe('c0-t0-req-p0-passwd-1');
    expect(readdirSync(dir)).toHaveLength(2 * (names.length + 1));
    expect(readdirSync(dir).some((f) => f.endsWith('.part'))).toBe(false);
  });

  it('a body cut inside a part: the file is kept and marked, the error in the record; no boundary: no parts', () => {
    const dir = path.join(tmp, 'cut');
    const body = part('name="a"; filename="a.bin"', 'whole') + part('name="b"; filename="b.bin"', 'cut sh').slice(0, -2);
    const [t] = run(dir, events(0, CT, body, 5));
    expect(t!.request.parts!.map((p) => [p.file, p.bytes, p.complete, p.sha256 === undefined])).toEqual([
      ['c0-t0-req-p0-a.bin', 5, true, false],
      ['c0-t0-req-p1-b.bin', 6, false, true],
    ]);
    expect(t!.request.partsError).toBe('ended before the closing boundary');
    expect(readFileSync(path.join(dir, 'c0-t0-req-p1-b.bin'), 'latin1')).toBe('cut sh');
    const [nb] = run(path.join(tmp, 'nb'), events(0, [['Content-Type', 'multipart/form-data']], body, 5));
    expect(nb!.request).toMatchObject({ parts: [], partsError: 'no boundary' });
    const [plain] = run(path.join(tmp, 'plain'), events(0, [['Content-Type', 'text/plain']], body, 5));
    expect(plain!.request.parts).toBeUndefined();
    expect('partsError' in plain!.request).toBe(false);
  });

  it('parts of an encoded body come from its decoded bytes, with --raw-bodies too; without --extract they are listed, not written', () => {
    const plain = enc.encode(`${part('name="f"; filename="f.txt"', 'decoded content')}--XyZ--\r\n`);
    const wire = enc.encode('not really gzip');
    const evs: HttpEvent[] = [
      request(0, [...CT, ['Content-Encoding', 'gzip']]),
      { type: 'http_body', conn: 0, dir: 'c2s', seq: 0, ts: '1', offset: 0, data: wire },
      { type: 'http_decoded', conn: 0, dir: 'c2s', seq: 0, ts: '1', offset: 0, data: plain },
      { type: 'http_end', conn: 0, dir: 'c2s', seq: 0, ts: '1', framing: 'length', bodyBytes: wire.length, missing: 0, complete: true, reason: 'ok', trailers: [], decoded: { codings: ['gzip'], bytes: plain.length, error: null, capped: null } },
    ];
    const dir = path.join(tmp, 'raw');
    const [t] = run(dir, evs, true);
    expect(t!.request.parts).toMatchObject([{ filename: 'f.txt', bytes: 15, complete: true, file: 'c0-t0-req-p0-f.txt' }]);
    expect(t!.request.file).toBe('c0-t0-req-upload');
    expect(readFileSync(path.join(dir, 'c0-t0-req-upload'), 'latin1')).toBe('not really gzip');
    expect(readFileSync(path.join(dir, 'c0-t0-req-p0-f.txt'), 'latin1')).toBe('decoded content');
    const records = new HttpRecords(hashOf);
    const out: HttpRecord[] = [];
    records.write(evs, (r) => out.push(...r));
    records.end((r) => out.push(...r));
    expect((out[0] as HttpTransactionRecord).request.parts).toEqual([
      { index: 0, name: 'f', filename: 'f.txt', contentType: 'application/octet-stream', bytes: 15, complete: true, sha256: sha256(enc.encode('decoded content')) },
    ]);
  });
});

describe.skipIf(!needTool('jq') || !existsSync(HTTP))('README recipe', () => {
  it('every uploaded file with its request, size, digest and extracted file', async () => {
    const dir = path.join(tmp, 'recipe');
    const r = await runCli(['http', path.join(HTTP, 'suricata-verify__http-multipart-post-chunked-reply.pcap'), '--extract', dir]);
    const out = execFileSync('jq', ['-c', 'select(.type=="http") | {conn, trans, uri: .request.uri} + (.request.parts[]? | select(.filename != null and .filename != "") | {filename, bytes, sha256, file})'], { input: r.stdout, encoding: 'utf8' });
    // what Suricata stored of the two uploads (file-match-crossed)
    const want = ['toto.txt', 'titi.txt'].map((name, i) => {
      const b = existsSync(SURICATA) ? readFileSync(path.join(SURICATA, 'file-match-crossed', name)) : null;
      return JSON.stringify({ conn: 0, trans: 0, uri: '/', filename: name, bytes: b?.length, sha256: b === null ? undefined : sha256(b), file: `c0-t0-req-p${i}-${name}` });
    });
    if (existsSync(SURICATA)) expect(out).toBe(`${want.join('\n')}\n`);
    else expect(out.trim().split('\n')).toHaveLength(2);
  });
});
