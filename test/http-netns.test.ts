/**
 * Oracle (c) of issue 15: real HTTP between two network namespaces. A node:http server and client
 * (test/harness/http-server.mjs, http-client.mjs) exchange keep-alive transactions, pipelined
 * requests on a raw socket, chunked bodies with trailers, gzip, br, deflate (zlib-wrapped and raw)
 * and `gzip, br` bodies, an Expect: 100-continue upload, HEAD, a conditional GET answered 304,
 * multipart/form-data, chunked and gzip request bodies, a response delimited by the connection's
 * close, a CONNECT tunnel and a body of 100 MiB, over IPv4 and IPv6, captured with tcpdump under
 * 3% loss before the capture point (holes later filled by retransmissions) and 2% after it
 * (duplicates). Both applications log every body they sent and received (length and SHA-256, as
 * on the wire and decoded); they must agree with each other, and `pcapflow http --extract` must
 * agree with them on:
 *
 * (a) the capture: every logged transaction, and no other, with its method, URI and status, every
 *     body complete, nothing missing, the decoded body's digest, the extracted file's bytes; HEAD
 *     and 304 without a body, the CONNECT tunnel reported and its bytes counted, and where the
 *     records list a multipart body's parts, each part as the client sent it;
 * (b) the capture shuffled within windows of 8 records, timestamps kept (shuffle.mjs), with
 *     --raw-bodies: the same, the files equal to the wire bodies;
 * (c) the capture with every copy of a few data segments inside three bodies of known length cut
 *     out (drop-segments.mjs: an identity response followed by more transactions on its
 *     connection, a gzip response, a multipart request): each of those reports exactly the bytes
 *     cut as `missing` and is incomplete, its file is the body without them (the gzip one: what
 *     decoded before the gap), and every other transaction is exact as in (a).
 *
 * Needs root and `ip netns` (skipped otherwise; under CI=true, root without netns support is a
 * failure). PCAPFLOW_HARNESS_KEEP=1 keeps the captures, logs and outputs.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpMessageRecord, HttpRecord, HttpTransactionRecord } from '../src/core/http-records.js';
import { type CaptureRun, type CaptureSpec, HARNESS_DIR, SERVER_V4, SERVER_V6, netnsSupport, runCapture, sweepStale, teardownAll } from './harness/scenario.js';
import { captureLine, expectSoundCapture } from './helpers/netns-capture.js';
import { REPO_ROOT } from './helpers/env.js';

const SPEC: CaptureSpec & { seed: number } = { name: 'http', loss: 0.03, dup: 0.02, vlan: null, rtoMinMs: 5, seed: 7 };
const BIG = 100 * 1024 * 1024;
const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');
const execFileAsync = promisify(execFile);

/** canRun: root with netns support; skip with a message otherwise (a failure under CI when root). */
function canRun(): boolean {
  const why = netnsSupport();
  if (why === null) return true;
  if (process.env.CI && process.getuid?.() === 0) throw new Error(`netns HTTP: running as root under CI but ${why}`);
  console.warn(`skipping the netns HTTP oracle: ${why} (it needs root and ip netns)`);
  return false;
}

const CAN_RUN = canRun();

interface Endpoint {
  ip: string;
  port: number;
}

/** A body in the applications' logs (test/harness/http-common.mjs). */
interface BodyLog {
  wireBytes: number;
  wireSha256: string;
  bytes: number;
  sha256: string;
  encodings: string[];
  wireFile: string | null;
  file: string | null;
}

interface DigestLog {
  bytes: number;
  sha256: string;
}

/** A transaction as one application logged it. */
interface TransLog {
  side: 'client' | 'server';
  case: string;
  client: Endpoint;
  server: Endpoint;
  trans: number;
  method: string;
  uri: string;
  status: number;
  request: BodyLog;
  response: BodyLog;
  tunnel?: { target: string; c2s: DigestLog; s2c: DigestLog } | null;
  c2sEnd: number | null;
  s2cEnd: number | null;
  /** multipart/form-data requests (client): each part as sent. */
  parts?: PartLog[];
  error?: string;
}

interface PartLog {
  name: string;
  filename: string | null;
  bytes: number;
  sha256?: string;
}

const keyOf = (client: Endpoint, server: Endpoint, trans: number): string => `${client.ip}|${client.port}|${server.ip}|${server.port}|${trans}`;

function readLog(file: string): TransLog[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as TransLog)
    : [];
}

/**
 * loadLogs joins the two applications' logs on (4-tuple, place in the connection): what one sent
 * must be what the other received. Each transaction comes back with the request as the client
 * logged it and the response as the server did (their kept bodies are in those logs).
 */
function loadLogs(logDir: string): { trans: TransLog[]; problems: string[] } {
  const problems: string[] = [];
  const client = readLog(path.join(logDir, 'http-client.ndjson'));
  const server = new Map(readLog(path.join(logDir, 'http-server.ndjson')).map((t) => [keyOf(t.client, t.server, t.trans), t]));
  const body = (b: BodyLog): string => `${b.wireBytes} ${b.wireSha256} ${b.bytes} ${b.sha256} ${b.encodings.join(',')}`;
  const trans: TransLog[] = [];
  for (const c of client) {
    const key = keyOf(c.client, c.server, c.trans);
    const s = server.get(key);
    server.delete(key);
    if (s === undefined) {
      problems.push(`${key} ${c.method} ${c.uri}: the server did not log it`);
      continue;
    }
    for (const t of [c, s]) if (t.error !== undefined) problems.push(`${key}: ${t.side}: ${t.error}`);
    if (`${c.method} ${c.uri} ${c.status}` !== `${s.method} ${s.uri} ${s.status}`) problems.push(`${key}: client ${c.method} ${c.uri} ${c.status}, server ${s.method} ${s.uri} ${s.status}`);
    if (body(c.request) !== body(s.request)) problems.push(`${key}: the request the client sent is not the one the server received`);
    if (body(c.response) !== body(s.response)) problems.push(`${key}: the response the server sent is not the one the client received`);
    if (JSON.stringify(c.tunnel ?? null) !== JSON.stringify(s.tunnel ?? null)) problems.push(`${key}: the tunnel's bytes differ`);
    trans.push({ ...c, response: s.response, s2cEnd: s.s2cEnd });
  }
  for (const key of server.keys()) problems.push(`${key}: the client did not log it`);
  return { trans, problems };
}

/** fileSha256 digests a file a piece at a time (the 100 MiB body is never read whole). */
function fileSha256(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** withoutHoles: `buf` without the byte ranges [a, b) of `holes` (sorted, apart). */
function withoutHoles(buf: Buffer, holes: ReadonlyArray<readonly [number, number]>): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const [a, b] of holes) {
    parts.push(buf.subarray(at, a));
    at = b;
  }
  parts.push(buf.subarray(at));
  return Buffer.concat(parts);
}

/** A cut made by drop-segments.mjs: the holes (stream offsets) it left in one direction. */
interface Cut {
  dir: 'c2s' | 's2c';
  client: Endpoint;
  server: Endpoint;
  start: number;
  end: number;
  frames: number;
  holes: Array<[number, number]>;
  missing: number;
}

/** A cut inside one logged body: the transaction, the message, and where its body lies in the stream. */
interface BodyCut {
  key: string;
  message: 'request' | 'response';
  bodyStart: number;
  cut: Cut;
}

interface Run {
  name: string;
  /** What pcapflow read, and how long it took. */
  input: string;
  seconds: number;
  records: HttpRecord[];
  stats: Map<string, number>;
  extractDir: string;
  raw: boolean;
  cuts: BodyCut[];
}

/** pcapflow runs `pcapflow http INPUT --extract DIR --stats`. */
async function pcapflow(name: string, input: string, extractDir: string, raw: boolean, cuts: BodyCut[]): Promise<Run> {
  const t0 = Date.now();
  const { stdout, stderr } = await execFileAsync('node', [BIN, 'http', input, '--extract', extractDir, '--stats', ...(raw ? ['--raw-bodies'] : [])], { maxBuffer: 256 << 20 });
  const stats = new Map<string, number>();
  for (const m of stderr.matchAll(/^(\S+)\s+(\d+)$/gm)) stats.set(m[1]!, Number(m[2]));
  const records = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as HttpRecord);
  return { name, input, seconds: (Date.now() - t0) / 1000, records, stats, extractDir, raw, cuts };
}

interface Checked {
  problems: string[];
  transactions: number;
  bodies: number;
  /** Body bytes on the wire (de-chunked) and decoded, over every message checked. */
  wireBytes: number;
  decodedBytes: number;
  cut: number;
}

/**
 * check: pcapflow's records and extracted files against the logged transactions (see the file
 * comment); a message with a cut must report exactly its holes, every other one must be exact.
 */
function check(run: Run, trans: TransLog[], logDir: string): Checked {
  const out: Checked = { problems: [], transactions: 0, bodies: 0, wireBytes: 0, decodedBytes: 0, cut: 0 };
  const bad = (s: string): void => void out.problems.push(`${run.name}: ${s}`);
  const records = new Map<string, HttpTransactionRecord>();
  for (const r of run.records) {
    if (r.type !== 'http') bad(`${r.reason} record in conn ${r.conn} ${r.dir} at ${r.offset}`);
    else records.set(keyOf(r.client, r.server, r.trans), r);
  }
  const cuts = new Map(run.cuts.map((c) => [`${c.key} ${c.message}`, c]));
  for (const t of trans) {
    const key = keyOf(t.client, t.server, t.trans);
    const r = records.get(key);
    records.delete(key);
    const where = `${key} ${t.method} ${t.uri}`;
    if (r === undefined) {
      bad(`${where}: no record`);
      continue;
    }
    out.transactions++;
    if (r.request.method !== t.method || r.request.uri !== t.uri || r.response?.status !== t.status) bad(`${where}: record says ${r.request.method} ${r.request.uri} ${r.response?.status}, want status ${t.status}`);
    if (r.response === null) continue;
    if (t.method === 'CONNECT') {
      if (JSON.stringify(r.tunnel) !== JSON.stringify({ reason: 'connect', target: t.uri })) bad(`${where}: tunnel ${JSON.stringify(r.tunnel)}`);
    } else if (r.tunnel !== undefined) bad(`${where}: a tunnel`);
    if (t.method === 'HEAD' || t.status === 304) {
      // no body, whatever the headers say (HEAD carries the GET's Content-Length)
      const cl = r.response.headers.find(([n]) => n.toLowerCase() === 'content-length')?.[1];
      if (t.method === 'HEAD' && !(Number(cl) > 0)) bad(`${where}: the HEAD response has no Content-Length to ignore`);
      if (r.response.bodyBytes !== 0 || r.response.file !== undefined) bad(`${where}: a body of ${r.response.bodyBytes} bytes`);
    }
    for (const message of ['request', 'response'] as const) {
      const want = t[message];
      const got: HttpMessageRecord = r[message]!;
      const at = `${where} ${message}`;
      const c = cuts.get(`${key} ${message}`);
      out.wireBytes += want.wireBytes;
      out.decodedBytes += want.bytes;
      if (want.bytes > 0) out.bodies++;
      if (JSON.stringify(got.encodings) !== JSON.stringify(want.encodings)) bad(`${at}: encodings ${got.encodings.join(',')}, want ${want.encodings.join(',')}`);
      if (c === undefined) {
        const fields = `${got.complete} ${got.missing} ${got.bodyBytes} ${got.decodedBytes} ${got.decodeError} ${got.sha256}`;
        const wanted = `true 0 ${want.wireBytes} ${want.bytes} null ${want.sha256}`;
        if (fields !== wanted) bad(`${at}: complete missing bodyBytes decodedBytes decodeError sha256: ${fields}, want ${wanted}`);
        // the parts of a multipart body, where the records list them (per-part extraction, issue 15)
        const parts = (got as { parts?: PartLog[] }).parts;
        if (message === 'request' && t.parts !== undefined && parts !== undefined) {
          const list = (ps: PartLog[]): string => JSON.stringify(ps.map((x) => [x.name, x.filename, x.bytes, x.sha256]));
          if (list(parts) !== list(t.parts)) bad(`${at}: parts ${list(parts)}, want ${list(t.parts)}`);
        }
        const size = run.raw ? want.wireBytes : want.bytes;
        if (size === 0) {
          if (got.file !== undefined) bad(`${at}: a file for an empty body`);
          continue;
        }
        if (got.file === undefined) bad(`${at}: no file`);
        else {
          const file = path.join(run.extractDir, got.file);
          if (!existsSync(file) || statSync(file).size !== size) bad(`${at}: file ${got.file} is not ${size} bytes`);
          else if (fileSha256(file) !== (run.raw ? want.wireSha256 : want.sha256)) bad(`${at}: file ${got.file} differs from the body sent`);
        }
        continue;
      }
      // cut: exactly the holes missing, and the file is what is left
      out.cut++;
      const holes = c.cut.holes.map(([a, b]) => [a - c.bodyStart, b - c.bodyStart] as const);
      if (holes.some(([a, b]) => a < 0 || b > want.wireBytes) || c.cut.missing === 0) bad(`${at}: the cut ${JSON.stringify(c.cut.holes)} is not inside the body`);
      const fields = `${got.complete} ${got.missing} ${got.bodyBytes} ${got.sha256 === undefined}`;
      const wanted = `false ${c.cut.missing} ${want.wireBytes - c.cut.missing} true`;
      if (fields !== wanted) bad(`${at}: complete missing bodyBytes no-sha256: ${fields}, want ${wanted}`);
      const wire = readFileSync(path.join(logDir, want.wireFile ?? 'no kept body'));
      const file = got.file === undefined ? null : readFileSync(path.join(run.extractDir, got.file));
      if (want.encodings.length === 0) {
        const left = withoutHoles(wire, holes);
        if (got.decodedBytes !== left.length || got.decodeError !== null) bad(`${at}: decodedBytes ${got.decodedBytes}, decodeError ${got.decodeError}`);
        if (file === null || !file.equals(left)) bad(`${at}: the file is not the body without the bytes cut`);
      } else {
        // decoded up to the gap: a proper prefix of the decoded body
        const decoded = readFileSync(path.join(logDir, want.file ?? 'no kept body'));
        if (got.decodeError !== 'gap' || got.decodedBytes === null || !(got.decodedBytes > 0 && got.decodedBytes < decoded.length)) bad(`${at}: decodeError ${got.decodeError}, decodedBytes ${got.decodedBytes} of ${decoded.length}`);
        if (file === null || file.length !== got.decodedBytes || !file.equals(decoded.subarray(0, file.length))) bad(`${at}: the file is not the decoded body's first ${got.decodedBytes} bytes`);
      }
    }
  }
  for (const [key, r] of records) bad(`${key} ${r.request.method} ${r.request.uri}: a record of no logged transaction`);
  const missing = run.cuts.reduce((n, c) => n + c.cut.missing, 0);
  for (const stat of ['http.missingBytes', 'reassembler.missingBytes']) if (run.stats.get(stat) !== missing) bad(`${stat} ${run.stats.get(stat)}, want ${missing}`);
  const tunnel = trans.reduce((n, t) => n + (t.tunnel ? t.tunnel.c2s.bytes + t.tunnel.s2c.bytes : 0), 0);
  if (run.stats.get('http.tunnelBytes') !== tunnel) bad(`http.tunnelBytes ${run.stats.get('http.tunnelBytes')}, want ${tunnel}`);
  return out;
}

describe.skipIf(!CAN_RUN)('netns HTTP: real node:http traffic under loss, reordering and cut segments', () => {
  let work = '';
  let capture: CaptureRun<typeof SPEC> | null = null;
  let trans: TransLog[] = [];
  const problems: string[] = [];
  const runs = new Map<string, Promise<Run>>();
  const results: Array<[string, Run, Checked]> = [];
  let derived = '';
  const t0 = Date.now();

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-http-netns-'));
    if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'pipe' });
    sweepStale();
    try {
      capture = await runCapture(SPEC, work, null, (logDir) => ({
        server: [path.join(HARNESS_DIR, 'http-server.mjs'), '--log', logDir, '--hosts', `${SERVER_V4},${SERVER_V6}`, '--seed', String(SPEC.seed)],
        client: [path.join(HARNESS_DIR, 'http-client.mjs'), '--log', logDir, '--targets', `${SERVER_V4},${SERVER_V6}`, '--seed', String(SPEC.seed), '--big', String(BIG)],
        clientTimeoutMs: 100_000,
        serverDone: () => readLog(path.join(logDir, 'http-server.ndjson')).length >= readLog(path.join(logDir, 'http-client.ndjson')).length,
      }));
    } finally {
      teardownAll();
    }
    const logs = loadLogs(capture.logDir);
    trans = logs.trans;
    problems.push(...logs.problems);
    const pcap = capture.pcap;
    // the three runs go on side by side (2 cores: pcapflow, and the rewriting of the capture)
    runs.set('capture', pcapflow('capture', pcap, path.join(work, 'out-capture'), false, []));
    const shuffled = path.join(work, 'shuffled.pcap');
    runs.set(
      'shuffled',
      execFileAsync('node', [path.join(HARNESS_DIR, 'shuffle.mjs'), pcap, shuffled, '--window', '8', '--seed', '1']).then(({ stdout }) => {
        derived += `shuffled: ${stdout.trim()}\n`;
        return pcapflow('shuffled (window 8), --raw-bodies', shuffled, path.join(work, 'out-shuffled'), true, []);
      }),
    );
    // cuts: inside an identity response with more transactions after it on its connection, a
    // gzip response, and a multipart request; each a few segments, well inside the body
    const pick = (kase: string, ip: string, uri: string): TransLog => {
      const t = trans.find((x) => x.case === kase && x.client.ip === ip && x.uri === uri);
      if (t === undefined) throw new Error(`no ${kase} ${uri} over ${ip} in the logs`);
      return t;
    };
    const targets: Array<[TransLog, 'request' | 'response', number, number]> = [
      [pick('keepalive', '10.201.0.1', '/ka/body?size=300000'), 'response', 100_000, 4000],
      [pick('encodings', 'fd00:201::1', '/enc/gzip?size=400000&kind=text&enc=gzip'), 'response', 20_000, 3000],
      [pick('uploads', '10.201.0.1', '/upload/form'), 'request', 30_000, 2000],
    ];
    const bodyCuts: BodyCut[] = targets.map(([t, message, at, len]) => {
      const end = message === 'request' ? t.c2sEnd : t.s2cEnd;
      if (end === null) throw new Error(`${t.uri}: no stream offset logged`);
      const bodyStart = end - t[message].wireBytes;
      const dir = message === 'request' ? 'c2s' : 's2c';
      return { key: keyOf(t.client, t.server, t.trans), message, bodyStart, cut: { dir, client: t.client, server: t.server, start: bodyStart + at, end: bodyStart + at + len, frames: 0, holes: [], missing: 0 } };
    });
    const gapped = path.join(work, 'cut.pcap');
    const args = bodyCuts.flatMap((c) => ['--range', [c.cut.client.ip, c.cut.client.port, c.cut.server.ip, c.cut.server.port, c.cut.dir, c.cut.start, c.cut.end].join(',')]);
    runs.set(
      'cut',
      execFileAsync('node', [path.join(HARNESS_DIR, 'drop-segments.mjs'), pcap, gapped, ...args]).then(({ stdout }) => {
        const done = JSON.parse(stdout) as { ranges: Cut[] };
        done.ranges.forEach((r, i) => (bodyCuts[i]!.cut = r));
        derived += `cut: ${done.ranges.map((r) => `${r.dir} ${r.client.ip}:${r.client.port} ${r.frames} frames, holes ${JSON.stringify(r.holes)}`).join('; ')}\n`;
        return pcapflow('cut segments', gapped, path.join(work, 'out-cut'), false, bodyCuts);
      }),
    );
    for (const p of runs.values()) p.catch(() => undefined); // reported where awaited
  }, 180_000);

  afterAll(() => {
    teardownAll();
    const head = ['input', 'pcapflow s', 'transactions', 'bodies', 'wire bytes', 'decoded bytes', 'cut', 'problems'];
    const rows = results.map(([, r, c]) => [r.name, r.seconds.toFixed(1), String(c.transactions), String(c.bodies), String(c.wireBytes), String(c.decodedBytes), String(c.cut), String(c.problems.length)]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
    const c = capture;
    console.log(
      [
        captureLine(`netns HTTP: ${trans.length} transactions logged`, c),
        derived.trim(),
        fmt(head),
        ...rows.map(fmt),
        `total ${((Date.now() - t0) / 1000).toFixed(1)} s; captures in ${process.env.PCAPFLOW_HARNESS_KEEP ? work : '(removed)'}`,
      ].join('\n'),
    );
    if (work !== '' && !process.env.PCAPFLOW_HARNESS_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('captures the traffic: no namespace left, the applications agree, the capture is complete, loss shows', () => {
    expectSoundCapture(capture, problems);
    // every case ran on both address families, and the big body is whole
    for (const kase of ['keepalive', 'encodings', 'uploads', 'pipeline', 'close', 'connect']) {
      for (const ip of ['10.201.0.1', 'fd00:201::1']) expect.soft(trans.some((t) => t.case === kase && t.client.ip === ip), `${kase} over ${ip}`).toBe(true);
    }
    expect(trans.find((t) => t.case === 'big')?.response.bytes).toBe(BIG);
    expect(trans.filter((t) => t.method === 'HEAD').length).toBe(4);
    expect(trans.filter((t) => t.status === 304).length).toBe(2);
    expect(trans.filter((t) => t.method === 'CONNECT' && t.tunnel).length).toBe(2);
    expect(new Set(trans.flatMap((t) => t.response.encodings)).size).toBe(3); // gzip, br, deflate
  });

  for (const name of ['capture', 'shuffled', 'cut']) {
    it(`${name}: pcapflow's transactions, bodies and files equal what the applications sent`, async () => {
      const pending = runs.get(name);
      if (pending === undefined) throw new Error('not run: the capture failed');
      const run = await pending;
      const checked = check(run, trans, capture!.logDir);
      results.push([name, run, checked]);
      rmSync(run.extractDir, { recursive: true, force: true });
      expect(checked.problems.slice(0, 30), `${checked.problems.length} problems`).toEqual([]);
      expect(checked.transactions).toBe(trans.length);
      expect(checked.cut).toBe(run.cuts.length);
    }, 180_000);
  }
});
