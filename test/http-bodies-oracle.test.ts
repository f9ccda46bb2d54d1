/**
 * Oracle for `pcapflow http` (issue 15, item 7a) on every shared capture with HTTP: those of
 * ../shared/pcaps where tshark or pcapflow finds HTTP, ../shared/pcaps-app/http, and the
 * ../shared/pcaps-app/ja4 captures that TSHARK-HTTP.tsv lists. pcapflow runs through the library
 * (readCaptures into the HttpSink of `pcapflow http --extract DIR`: decoded bodies, one file each).
 *
 * 1. Fields: for every request and response tshark 4.0 shows (TSHARK-HTTP.tsv), its
 *    Content-Length, Content-Encoding and Transfer-Encoding are pcapflow's, pcapflow's
 *    `encodings` are the Content-Encoding's tokens, and its body is Content-Length bytes long.
 * 2. Bodies: every object `tshark --export-objects http` writes (asked of sharkd, the same library
 *    and tap in one process for all captures, with the frame each object came from; that it
 *    exports what tshark writes is checked on a sample) must be one of pcapflow's bodies of the
 *    same connection and direction, byte for byte (SHA-256). Whatever is left on either side is a
 *    difference that DIFFERENCES lists with its reason, and each reason is checked where it is
 *    claimed (REASONS), never taken on trust.
 * 3. Zeek's baselines (../shared/pcaps-app/expected/zeek): http.log's method, URI, status and
 *    decoded body lengths, files.log's sizes and the extracted files against pcapflow's records
 *    and files. Multipart parts are left to their own test; whole multipart bodies are compared.
 *
 * Read from ../shared, as the captures' licences ask.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import type { Direction, Endpoint, StreamEvent } from '../src/core/events.js';
import { headerValues } from '../src/core/http.js';
import type { HttpErrorRecord, HttpMessageRecord, HttpRecord, HttpResponseRecord, HttpTransactionRecord } from '../src/core/http-records.js';
import { readCaptures } from '../src/read-pipeline.js';
import { HttpSink } from '../src/sinks/http-sink.js';
import { needTool, REPO_ROOT, sharedCaptures, SHARED_PCAPS } from './helpers/env.js';
import { Sharkd, type ExportObject } from './helpers/sharkd.js';

const APP = path.resolve(REPO_ROOT, '../shared/pcaps-app');
const ZEEK = path.join(APP, 'expected/zeek');
const have = existsSync(path.join(APP, 'TSHARK-HTTP.tsv')) && existsSync(SHARED_PCAPS);
const tshark = have && needTool('tshark') && needTool('sharkd');

const execFileAsync = promisify(execFile);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const same = (a: Endpoint, b: Endpoint): boolean => a.ip === b.ip && a.port === b.port;

// ---------------------------------------------------------------------------------------------
// The captures

interface Capture {
  /** The file name (unique over the three folders). */
  name: string;
  file: string;
}

/** TSHARK-HTTP.tsv's rows, each a list of its columns (see COLUMN). */
function tsvRows(): string[][] {
  return readFileSync(path.join(APP, 'TSHARK-HTTP.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
}

/** TSHARK-HTTP.tsv's columns. */
const COLUMN = { file: 0, stream: 1, frame: 2, method: 3, uri: 4, code: 6, contentLength: 8, contentEncoding: 9, transferEncoding: 10, requestIn: 13 } as const;

function captures(rows: readonly string[][]): Capture[] {
  const app = readdirSync(path.join(APP, 'http'))
    .filter((f) => /\.pcap(ng)?$/.test(f))
    .map((f) => path.join(APP, 'http', f));
  const ja4 = [...new Set(rows.map((r) => r[COLUMN.file]!).filter((f) => f.startsWith('ja4/')))].map((f) => path.join(APP, f));
  const list = [...sharedCaptures(), ...app, ...ja4].map((file) => ({ name: path.basename(file), file }));
  if (new Set(list.map((c) => c.name)).size !== list.length) throw new Error('two captures of one name');
  return list;
}

// ---------------------------------------------------------------------------------------------
// pcapflow's side: records, bodies, connections

/** The sink of `pcapflow http --extract`, noting every connection's endpoints on the way. */
class TappedHttpSink extends HttpSink {
  readonly conns = new Map<number, { client: Endpoint; server: Endpoint }>();
  override _write(batch: readonly StreamEvent[], enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    for (const e of batch) if (e.type === 'open') this.conns.set(e.conn, { client: e.client, server: e.server });
    super._write(batch, enc, callback);
  }
}

/** One message of pcapflow's, with its extracted body. */
interface PfMessage {
  conn: number;
  dir: Direction;
  /** Its transaction; null for a response to no request (extracted as `c<conn>-tr<seq>-res-…`, in no record). */
  tx: HttpTransactionRecord | null;
  record: HttpMessageRecord | null;
  /** `c<conn>-t<trans>-<req|res>` (`-tr<seq>-` for a response to no request). */
  id: string;
  /** The extracted (decoded) body; empty when no file was written. */
  body: Buffer;
}

interface PfRun {
  transactions: HttpTransactionRecord[];
  errors: HttpErrorRecord[];
  messages: PfMessage[];
  conns: Map<number, { client: Endpoint; server: Endpoint }>;
  /** The read's error code (a capture cut short, ...), or null. */
  error: string | null;
}

async function runPcapflow(file: string, dir: string): Promise<PfRun> {
  let text = '';
  const dest = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const sink = new TappedHttpSink({ dest, extract: { dir } });
  let error: string | null = null;
  try {
    await readCaptures([file], { sink });
  } catch (err) {
    error = isPcapflowError(err) ? err.code : String(err);
  }
  const records = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as HttpRecord);
  const transactions = records.filter((r): r is HttpTransactionRecord => r.type === 'http');
  const messages: PfMessage[] = [];
  const named = new Set<string>();
  const body = (file: string | undefined): Buffer => {
    if (file === undefined) return Buffer.alloc(0);
    named.add(file);
    return readFileSync(path.join(dir, file));
  };
  for (const tx of transactions) {
    messages.push({ conn: tx.conn, dir: 'c2s', tx, record: tx.request, id: `c${tx.conn}-t${tx.trans}-req`, body: body(tx.request.file) });
    if (tx.response !== null) messages.push({ conn: tx.conn, dir: 's2c', tx, record: tx.response, id: `c${tx.conn}-t${tx.trans}-res`, body: body(tx.response.file) });
  }
  for (const f of existsSync(dir) ? readdirSync(dir).sort() : []) {
    const m = /^c(\d+)-tr(\d+)-res-/.exec(f);
    if (m !== null && !named.has(f)) messages.push({ conn: Number(m[1]), dir: 's2c', tx: null, record: null, id: `c${m[1]}-tr${m[2]}-res`, body: readFileSync(path.join(dir, f)) });
  }
  return { transactions, errors: records.filter((r): r is HttpErrorRecord => r.type === 'http-error'), messages, conns: sink.conns, error };
}

/** hasHttp: pcapflow took connection `conn` as HTTP (a transaction or an http-error record in it). */
const hasHttp = (pf: PfRun, conn: number): boolean => pf.transactions.some((t) => t.conn === conn) || pf.errors.some((e) => e.conn === conn);

// ---------------------------------------------------------------------------------------------
// tshark's side: the exported objects and where each came from

interface TObject extends ExportObject {
  sha: string;
  /** pcapflow's connection with the frame's addresses and ports, and the frame's direction in it. */
  conn: number | null;
  dir: Direction | null;
  /** The frame holds a request or response head; else tshark found none for these bytes ("Continuation"). */
  head: boolean;
  /** tshark flags the frame a retransmission. */
  retransmission: boolean;
}

const FRAME_FIELDS = ['tcp.stream:-1', 'ip.src:-1', 'ipv6.src:-1', 'tcp.srcport:-1', 'ip.dst:-1', 'ipv6.dst:-1', 'tcp.dstport:-1', 'http.request:0', 'http.response:0', 'tcp.analysis.retransmission:0'];

/** connOf: pcapflow's connection of tshark's stream `stream` (the same number, else the only one with these endpoints). */
function connOf(pf: PfRun, stream: number, src: Endpoint, dst: Endpoint): { conn: number; dir: Direction } | null {
  const dirIn = (c: { client: Endpoint; server: Endpoint }): Direction | null => (same(c.client, src) && same(c.server, dst) ? 'c2s' : same(c.server, src) && same(c.client, dst) ? 's2c' : null);
  const numbered = pf.conns.get(stream);
  if (numbered !== undefined && dirIn(numbered) !== null) return { conn: stream, dir: dirIn(numbered)! };
  const found = [...pf.conns].filter(([, c]) => dirIn(c) !== null);
  return found.length === 1 ? { conn: found[0]![0], dir: dirIn(found[0]![1])! } : null;
}

/** The HTTP requests and responses in a `stat:http` tap's tree. */
function httpMessages(stats: unknown): number {
  type Node = { name: string; count: number; sub?: Node[] };
  const walk = (nodes: Node[] | undefined): number => (nodes ?? []).reduce((n, x) => n + (/^HTTP (Request|Response) Packets$/.test(x.name) ? x.count : walk(x.sub)), 0);
  return walk((stats as { stats?: Node[] } | undefined)?.stats);
}

/**
 * tsharkObjects: the loaded capture's exported HTTP objects, each placed in pcapflow's
 * connections, and how many HTTP requests and responses tshark finds (one pass over the capture).
 */
async function tsharkObjects(sharkd: Sharkd, pf: PfRun): Promise<{ objects: TObject[]; messages: number }> {
  const taps = await sharkd.tap(['eo:http', 'stat:http']);
  const objects = await sharkd.objects(taps.get('eo:http'));
  const messages = httpMessages(taps.get('stats:http'));
  if (objects.length === 0) return { objects: [], messages };
  const frames = new Map((await sharkd.frames(`frame.number in {${[...new Set(objects.map((o) => o.pkt))].join(', ')}}`, FRAME_FIELDS)).map((f) => [f.num, f.values]));
  const placed = objects.map((o) => {
    const [stream, ip4s, ip6s, sport, ip4d, ip6d, dport, request, response, retrans] = frames.get(o.pkt) ?? [];
    const at = stream === undefined || stream === '' ? null : connOf(pf, Number(stream), { ip: ip4s || ip6s!, port: Number(sport) }, { ip: ip4d || ip6d!, port: Number(dport) });
    return { ...o, sha: sha256(o.data), conn: at?.conn ?? null, dir: at?.dir ?? null, head: request !== '' || response !== '', retransmission: (retrans ?? '') !== '' };
  });
  return { objects: placed, messages };
}

// ---------------------------------------------------------------------------------------------
// Comparing the two

type Diff =
  | { kind: 'tshark-only'; key: string; obj: TObject }
  | { kind: 'pcapflow-only'; key: string; msg: PfMessage }
  | { kind: 'pieces'; key: string; msg: PfMessage; objs: TObject[] };

interface Compared {
  /** Objects equal to pcapflow's body of the same connection and direction. */
  agree: Array<{ obj: TObject; msg: PfMessage }>;
  diffs: Diff[];
}

/**
 * compare pairs each object with the first of pcapflow's bodies of its connection and direction
 * that has its bytes; objects left that lie inside one of pcapflow's bodies left are its pieces;
 * the rest are differences (pcapflow's empty bodies are no difference).
 */
function compare(objs: readonly TObject[], msgs: readonly PfMessage[]): Compared {
  const used = new Set<PfMessage>();
  const placed = new Set<TObject>();
  const agree: Compared['agree'] = [];
  const fits = (o: TObject, m: PfMessage): boolean => o.conn === m.conn && o.dir === m.dir;
  // objects of retransmitted frames last: a copy of a message is not the message (empty bodies all look alike)
  for (const o of [...objs.filter((x) => !x.retransmission), ...objs.filter((x) => x.retransmission)]) {
    const m = msgs.find((x) => !used.has(x) && fits(o, x) && sha256(x.body) === o.sha);
    if (m === undefined) continue;
    used.add(m);
    placed.add(o);
    agree.push({ obj: o, msg: m });
  }
  const pieces = new Map<PfMessage, TObject[]>();
  for (const o of objs) {
    if (placed.has(o) || o.data.length === 0) continue;
    const m = msgs.find((x) => !used.has(x) && fits(o, x) && x.body.includes(o.data));
    if (m === undefined) continue;
    placed.add(o);
    pieces.set(m, [...(pieces.get(m) ?? []), o]);
  }
  const diffs: Diff[] = [];
  for (const [msg, list] of pieces) diffs.push({ kind: 'pieces', key: `pieces ${msg.id} ${list.length} objects`, msg, objs: list });
  for (const o of objs) if (!placed.has(o)) diffs.push({ kind: 'tshark-only', key: `tshark-only frame ${o.pkt} c${o.conn ?? '?'} ${o.dir ?? '?'} ${o.data.length} B`, obj: o });
  for (const m of msgs) {
    if (used.has(m) || pieces.has(m) || (m.body.length === 0 && (m.record?.bodyBytes ?? 0) === 0)) continue;
    diffs.push({ kind: 'pcapflow-only', key: `pcapflow-only ${m.id} ${m.body.length} B`, msg: m });
  }
  return { agree, diffs };
}

interface Ctx {
  pf: PfRun;
  /** Messages whose body tshark exports only with tcp.reassemble_out_of_order on (ids). */
  oooFixed: Set<string>;
}

const incomplete = (m: HttpMessageRecord | null): boolean => m !== null && (m.missing > 0 || !m.complete || m.decodeError !== null);
const msgOf = (d: Diff): PfMessage | null => (d.kind === 'tshark-only' ? null : d.msg);
const objOf = (d: Diff): TObject | null => (d.kind === 'tshark-only' ? d.obj : null);

/** Every reason a body may differ, with how it is checked where it is claimed. */
const REASONS = {
  'incomplete': {
    why: "pcapflow writes an incomplete body too (a gap in it, the capture's end, a decoding error) and its record says so; tshark exports none",
    check: (d: Diff) => d.kind === 'pcapflow-only' && incomplete(d.msg.record),
  },
  'out-of-order': {
    why: 'segments captured out of order (a retransmission filling a hole after the segments behind it, a reordered capture): tshark 4.0 does not reassemble them by default (tcp.reassemble_out_of_order), so it exports the body in headerless pieces or not at all; checked: with that preference on, tshark exports pcapflow\'s body',
    check: (d: Diff, ctx: Ctx) => {
      const m = msgOf(d);
      if (m !== null) return ctx.oooFixed.has(m.id);
      const o = objOf(d)!;
      return !o.head && ctx.pf.messages.some((x) => x.conn === o.conn && x.dir === o.dir && ctx.oooFixed.has(x.id));
    },
  },
  'after-gap': {
    why: "a segment lost in an earlier body of the connection: tshark's reassembly stops at the hole and it parses no later message; pcapflow knows that body's length, skips the hole and parses the next (whole, checked)",
    check: (d: Diff, ctx: Ctx) =>
      d.kind === 'pcapflow-only' &&
      d.msg.tx !== null &&
      !incomplete(d.msg.record) &&
      ctx.pf.messages.some((x) => x.conn === d.msg.conn && x.dir === d.msg.dir && x.tx !== null && x.tx.trans < d.msg.tx!.trans && (x.record?.missing ?? 0) > 0),
  },
  'continuation': {
    why: 'bytes after a gap or a lost head: tshark exports them as an object of their own though it found no message head for them (its frame holds none: "Continuation"); pcapflow gives them to no message, it resyncs at the next start line',
    check: (d: Diff, ctx: Ctx) => d.kind === 'tshark-only' && !d.obj.head && d.obj.conn !== null && hasHttp(ctx.pf, d.obj.conn),
  },
  'no-message': {
    why: "a connection where pcapflow finds no HTTP/1.x message: it takes a connection as HTTP when the client's first bytes are a request line (not a SOCKS handshake, an HTTP/0.9 or malformed request line, nothing at all), and after a gap in a head it needs a start line at a line start; tshark dissects by port and exports what it finds (checked: no record of pcapflow's in that connection)",
    check: (d: Diff, ctx: Ctx) => d.kind === 'tshark-only' && d.obj.conn !== null && !hasHttp(ctx.pf, d.obj.conn),
  },
  'no-tcp': {
    why: 'TCP inside GRE, ERSPAN and VXLAN, which pcapflow does not decode: it has no such connection',
    check: (d: Diff) => d.kind === 'tshark-only' && d.obj.conn === null,
  },
  'tunnel': {
    why: "a 2xx answer to CONNECT has no body (RFC 9110 9.3.6): what follows its head is the tunnel's, which pcapflow counts and does not parse; tshark takes it as the answer's body",
    check: (d: Diff, ctx: Ctx) => d.kind === 'tshark-only' && d.obj.dir === 's2c' && d.obj.head && ctx.pf.transactions.some((t) => t.conn === d.obj.conn && t.tunnel?.reason === 'connect' && t.response !== null && t.response.status < 300),
  },
  'retransmission': {
    why: 'a retransmitted response that tshark dissects again as a new response (answering no request) and exports its empty body a second time',
    check: (d: Diff) => d.kind === 'tshark-only' && d.obj.retransmission && d.obj.data.length === 0,
  },
  'stacked-codings': {
    why: 'a stack of Content-Encodings (`identity, identity, gzip, identity, gzip, gzip`): tshark decodes only a Content-Encoding that is one coding it knows, and exports nothing else; pcapflow decodes the stack (its record: whole, no decoding error)',
    check: (d: Diff) => d.kind === 'pcapflow-only' && (d.msg.record?.encodings.length ?? 0) >= 2 && !incomplete(d.msg.record),
  },
  'bare-lf-chunks': {
    why: "chunk framing with bare LF line ends (libhtp issue 83): tshark ends the body after the first chunk (its object is a prefix of pcapflow's body, checked); pcapflow takes a bare LF as a line end there too, as everywhere in a head",
    check: (d: Diff) =>
      d.kind === 'pieces' && d.objs.length === 1 && d.objs[0]!.data.length < d.msg.body.length && d.msg.body.subarray(0, d.objs[0]!.data.length).equals(d.objs[0]!.data) && headerValues(d.msg.record?.headers ?? [], 'transfer-encoding').join() === 'chunked',
  },
  'head-line': {
    why: "a head line with no colon (`Mozilla 4.0 (compatible; ...)` after a CONNECT line): tshark ends the head before it and takes it as a body; pcapflow, as Zeek (request_body_len 0), keeps the head going to its empty line",
    check: (d: Diff, ctx: Ctx) =>
      d.kind === 'tshark-only' &&
      d.obj.dir === 'c2s' &&
      /^[^:\r\n]+\r?\n\r?\n$/.test(d.obj.data.toString('latin1')) &&
      ctx.pf.transactions.some((t) => t.conn === d.obj.conn && t.request.bodyBytes === 0 && t.request.complete),
  },
} satisfies Record<string, { why: string; check: (d: Diff, ctx: Ctx) => boolean }>;
type Reason = keyof typeof REASONS;

/**
 * Every difference of every capture: `n` differences whose key (see compare) matches `what`, for
 * `reason`, and what happens there. Frame numbers are tshark's.
 */
const DIFFERENCES: Record<string, Array<{ what: RegExp; n: number; reason: Reason; why: string }>> = {
  // ../shared/pcaps-app/http
  'suricata-verify__http-206-range-sequential-file.pcap': [
    { what: /^pieces c0-t0-res 7 objects$/, n: 1, reason: 'out-of-order', why: "the first 206's head segment is captured after body segments behind it: tshark exports seven of them, an object each; pcapflow has the whole 10000 bytes" },
  ],
  'suricata-verify__http-chunk-extension-bare-lf.pcap': [{ what: /^pieces c0-t0-req 1 objects$/, n: 1, reason: 'bare-lf-chunks', why: 'chunks `tototata` and `titi`: tshark keeps the first (8 bytes), pcapflow both (12)' }],
  'suricata-verify__http-connect-then-get.pcap': [{ what: /^tshark-only frame 7 c0 s2c 1 B$/, n: 1, reason: 'tunnel', why: "an LF after the CONNECT's 200 head, then a GET inside the tunnel" }],
  'suricata-verify__http-gap-beyond-body.pcap': [
    {
      what: /^tshark-only frame 24 c0 s2c 169 B$/,
      n: 1,
      reason: 'continuation',
      why: "the gap takes /1's body and the head of /2's answer: tshark exports the rest of /2's body glued to /3's whole answer; /3's status line comes mid-line, so pcapflow, as Suricata (test.yaml), gives /2 and /3 no response",
    },
  ],
  'suricata-verify__http-gap-simple.pcap': [{ what: /^pcapflow-only c0-t1-res 56 B$/, n: 1, reason: 'incomplete', why: "14 of the 70 bytes of /2's body are missing (Suricata: 70 bytes TRUNCATED, gaps)" }],
  'suricata-verify__http-gzip-header-plaintext-body.pcap': [
    { what: /^pcapflow-only c0-t0-req 0 B$/, n: 1, reason: 'incomplete', why: 'a request body labelled gzip that is plain JSON: nothing decodes (decodeError: incorrect header check), and tshark, failing too, exports nothing' },
  ],
  'suricata-verify__http-gzip-stacked-encodings.pcap': [{ what: /^pcapflow-only c0-t0-res 24 B$/, n: 1, reason: 'stacked-codings', why: 'gzip applied three times' }],
  'suricata-verify__http-pipelined-chunked-with-gap.pcap': [
    { what: /^pcapflow-only c0-t2-res 34152 B$/, n: 1, reason: 'after-gap', why: '733 bytes of skip-link-focus-fix.js are missing (Suricata: 3 files, that one TRUNCATED); the JPEG after it is whole' },
  ],
  'zeek__http-206-concurrent-range-requests.pcap': [
    { what: /^pcapflow-only c1-t0-res 10001 B$/, n: 1, reason: 'out-of-order', why: "the retransmission that fills connection 1's hole comes after the segment behind it (Zeek's http.log: 10001 bytes)" },
  ],
  'zeek__http-connect-smtp-tunnel.pcap': [{ what: /^tshark-only frame 4 c0 c2s 55 B$/, n: 1, reason: 'head-line', why: 'the line after `CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0`' }],
  'zeek__http-content-range-gap.pcap': [
    { what: /^pcapflow-only c0-t0-res 8973 B$/, n: 1, reason: 'incomplete', why: "1380 bytes of the 206 body are missing (Zeek's extract_files.thefile holds the same bytes around a hole, checked below)" },
  ],
  'zeek__http-entity-gap.pcap': [{ what: /^pcapflow-only c0-t0-res 3257 B$/, n: 1, reason: 'incomplete', why: "1448 bytes of the body are missing (Zeek's extract_files.file0, checked below)" }],
  // ../shared/pcaps-app/ja4
  'CVE-2018-6794.pcap': [
    {
      what: /^tshark-only frame 21 c2 s2c 20 B$/,
      n: 1,
      reason: 'no-message',
      why: "the server answers right after its SYN-ACK, before any request (the CVE's evasion), and in this connection the client never sends (in the two others pcapflow's answers to no request are tshark's objects)",
    },
  ],
  'gre-erspan-vxlan.pcap': [{ what: /^tshark-only frame 5 c\? \? 8 B$/, n: 1, reason: 'no-tcp', why: 'one GET inside GRE, ERSPAN and VXLAN' }],
  // ../shared/pcaps
  'arkime__http-retransmissions-overlaps.pcap': [
    { what: /^tshark-only frame (42|86) c0 s2c 0 B$/, n: 2, reason: 'retransmission', why: 'two chunked 200s with empty bodies are retransmitted whole' },
  ],
  'arkime__socks5-http.pcap': [{ what: /^tshark-only frame 9 c0 s2c 258 B$/, n: 1, reason: 'no-message', why: 'HTTP behind a SOCKS5 handshake' }],
  'arkime__socks5-http-ipv4-frags.pcap': [{ what: /^tshark-only frame 67 c0 s2c 258 B$/, n: 1, reason: 'no-message', why: 'HTTP behind a SOCKS5 handshake' }],
  'pcapplusplus__mixed-126-conns.pcap': [
    { what: /^tshark-only frame 13(48|50) c2[78] s2c 90 B$/, n: 2, reason: 'no-message', why: "only the server's side of these connections is captured (a 400 answer): the client sends nothing" },
    { what: /^tshark-only frame (2945|3009) c105 s2c \d+ B$/, n: 2, reason: 'out-of-order', why: 'echo.js (gzip): fast retransmissions fill holes after the segments behind them; tshark exports two of those segments as objects' },
    { what: /^pcapflow-only c105-t0-res 57486 B$/, n: 1, reason: 'out-of-order', why: 'that echo.js, whole and decoded' },
    { what: /^pcapflow-only c90-t0-res 630 B$/, n: 1, reason: 'out-of-order', why: "a 302's last segment is captured after the FIN behind it (tshark: a retransmission)" },
  ],
  'suricata-verify__http-ooo-rst-truncated.pcap': [{ what: /^pcapflow-only c0-t0-res 52161 B$/, n: 1, reason: 'incomplete', why: 'the download ends in RST with 6440 bytes of the body never captured' }],
  'suricata-verify__tcp-urgent-http.pcap': [
    {
      what: /^tshark-only frame 8 c0 c2s 156 B$/,
      n: 1,
      reason: 'continuation',
      why: 'the request line is cut around 2 urgent bytes (`GET /malic`, URG `XY`, `ious HTTP/1.1`): tshark does not put the request together and exports its rest; pcapflow keeps urgent bytes in the stream (GET /malicXYious)',
    },
  ],
  'tcpflow__http-lines-randomized.pcapng': [{ what: /^pcapflow-only c0-t0-res 1590 B$/, n: 1, reason: 'out-of-order', why: "tcpflow__http-lines-ordered.pcap's packets shuffled" }],
  'tcpflow__jpegs-http.cap': [
    { what: /^tshark-only frame \d+ c\d+ s2c \d+ B$/, n: 6, reason: 'continuation', why: 'answers whose head segment was never captured (tshark: ACKed unseen segment): pcapflow has their requests without an answer' },
  ],
  'zeek__http-methods-49-conns.pcap': [
    {
      what: /^tshark-only frame \d+ c\d+ (c2s|s2c) \d+ B$/,
      n: 55,
      reason: 'no-message',
      why: "Zeek's methods test sends request lines that are not HTTP/1.x (`OPTIONS HTTP/1.1`, `GET / HTTP/1.`, `GET /HTTP/1.1`, methods of non-ASCII bytes, ...): tshark parses them leniently and exports the 400 pages and the requests' rest",
    },
  ],
  'zeek__ipv6-ext-headers-tcp.pcap': [{ what: /^tshark-only frame (7|18|28|38) c[0-3] s2c 88 B$/, n: 4, reason: 'no-message', why: 'HTTP/0.9: `GET /bad.html` answered with a bare body' }],
  'zeek__mixed-vlan-mpls.pcap': [{ what: /^tshark-only frame (39|40|41) c2 s2c \d+ B$/, n: 3, reason: 'no-message', why: 'HTTP/0.9: `GET /` answered with a bare page' }],
  'zeek__tcp-reassembly-gaps-halfclose.pcap': [
    { what: /^tshark-only frame 110 c0 c2s 903 B$/, n: 1, reason: 'continuation', why: 'a `SEARCH /AAAA...` exploit whose request line runs for 32 KB through holes: pcapflow finds no start line after them and says so (an `unresumed` http-error record, the request lost)' },
  ],
};

// ---------------------------------------------------------------------------------------------
// Fields (TSHARK-HTTP.tsv)

interface TsvMessage {
  stream: number;
  frame: number;
  /** `STREAM METHOD URI` of a request; '' for a response (its request is the one at frame `requestIn`). */
  key: string;
  kind: 'req' | 'res';
  status?: number;
  requestIn?: number;
  /** The header's value as tshark shows it ('' when absent); undefined when the frame's messages cannot be told apart. */
  contentLength?: string;
  contentEncoding?: string;
  transferEncoding?: string;
}

/** unescape: a field value as sent, from tshark's `-T fields` text (which escapes tab, CR, LF and backslash). */
const unescape = (v: string): string => v.replace(/\\([tnr\\])/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));

/** tsvMessages: tshark's requests and responses of TSV file `file`, in frame order. */
function tsvMessages(rows: readonly string[][], file: string): TsvMessage[] {
  const out: TsvMessage[] = [];
  const value = (r: readonly string[], col: number, k: number): string | undefined => {
    const v = unescape(r[col] ?? '');
    if (k === 1 || v === '') return v;
    return undefined; // several messages in the frame: whose header is it?
  };
  for (const r of rows) {
    if (r[COLUMN.file] !== file) continue;
    const stream = Number(r[COLUMN.stream]);
    const frame = Number(r[COLUMN.frame]);
    const fields = (k: number) => ({
      contentLength: value(r, COLUMN.contentLength, k),
      contentEncoding: value(r, COLUMN.contentEncoding, k),
      transferEncoding: value(r, COLUMN.transferEncoding, k),
    });
    if (r[COLUMN.method] !== '') {
      const methods = r[COLUMN.method]!.split('|');
      const uris = r[COLUMN.uri]!.split('|');
      methods.forEach((m, i) => out.push({ stream, frame, key: `${stream} ${m} ${uris[i]}`, kind: 'req', ...fields(methods.length) }));
    } else if (r[COLUMN.code] !== '') {
      const codes = r[COLUMN.code]!.split('|');
      const reqIn = r[COLUMN.requestIn]!.split('|');
      codes.forEach((c, i) => out.push({ stream, frame, key: '', kind: 'res', status: Number(c), requestIn: reqIn[i] === undefined || reqIn[i] === '' ? undefined : Number(reqIn[i]), ...fields(codes.length) }));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Zeek's logs

/** zeekLog: a Zeek TSV log's rows as column name to value (a cut log names its columns on its first line). */
function zeekLog(file: string): Array<Record<string, string>> {
  let fields: string[] | null = null;
  const rows: Array<Record<string, string>> = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '' || line.startsWith('### BTest')) continue;
    if (line.startsWith('#fields\t')) fields = line.split('\t').slice(1);
    else if (line.startsWith('#')) continue;
    else if (fields === null) fields = line.split('\t');
    else {
      const v = line.split('\t');
      rows.push(Object.fromEntries(fields.map((f, i) => [f, v[i] ?? ''])));
    }
  }
  return rows;
}

/** baselineFile: an extracted file of Zeek's baselines, without the btest header line some of them carry. */
function baselineFile(file: string): Buffer {
  const b = readFileSync(file);
  const head = Buffer.from('### BTest baseline data');
  return b.subarray(0, head.length).equals(head) ? b.subarray(b.indexOf(0x0a) + 1) : b;
}

/** The SHA256 lines of a Zeek file-analysis `.out`, in order. */
const outDigests = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(/^SHA256: ([0-9a-f]{64})$/gm)].map((m) => m[1]!);

/**
 * withHole: does Zeek's extracted `zeek` (holes as zeros) hold pcapflow's incomplete `body` (holes
 * left out) with one hole of `hole` bytes?
 */
function withHole(body: Buffer, zeek: Buffer, hole: number): boolean {
  if (zeek.length !== body.length + hole) return false;
  let k = 0;
  while (k < body.length && body[k] === zeek[k]) k++;
  for (let start = k; start >= Math.max(0, k - hole); start--) {
    if (zeek.subarray(start, start + hole).every((b) => b === 0) && zeek.subarray(0, start).equals(body.subarray(0, start)) && zeek.subarray(start + hole).equals(body.subarray(start))) return true;
  }
  return false;
}

/** Zeek's http.log baselines and the capture each was made from (../shared/pcaps-app/README.md). */
const ZEEK_HTTP_LOGS: Array<{ log: string; capture: string }> = [
  { log: 'scripts.base.protocols.http.100-continue/http.log', capture: 'zeek__http-100-continue-post-chunked-reply.pcap' },
  { log: 'scripts.base.protocols.http.101-switching-protocols/http.log', capture: 'zeek__http-websocket-101-upgrade.pcap' },
  { log: 'scripts.base.protocols.http.261.chunk-2pow64-overflow/http.log', capture: 'zeek__http-261-chunk-size-2pow64-overflow.pcap' },
  { log: 'scripts.base.protocols.http.261.chunked-rest/http.log', capture: 'zeek__http-261-multi-value-te.pcap' },
  { log: 'scripts.base.protocols.http.261.cl-0-expect-100/http.log', capture: 'zeek__http-261-expect-100-cl0.pcap' },
  { log: 'scripts.base.protocols.http.261.te-cl-desync/http.log', capture: 'zeek__http-261-te-cl-desync.pcap' },
  { log: 'scripts.base.protocols.http.concurrent-range-requests/http.log', capture: 'zeek__http-206-concurrent-range-requests.pcap' },
  { log: 'scripts.base.protocols.http.content-length-overflow/http.log', capture: 'zeek__http-content-length-over-2gb.pcap' },
  { log: 'scripts.base.protocols.http.http-connect/http.log', capture: 'zeek__http-connect-smtp-tunnel.pcap' },
  { log: 'scripts.base.protocols.http.http-connect-with-header/http.log', capture: 'zeek__http-connect-tls-tunnel.pcap' },
  { log: 'scripts.base.protocols.http.http-pipelining/http.log', capture: 'zeek__http-pipelined-requests-gzip.pcap' },
  { log: 'scripts.base.protocols.http.missing-zlib-header/http.log', capture: 'zeek__http-deflate-raw-no-zlib-header.pcap' },
  { log: 'scripts.base.protocols.http.multipart-body-length/http.log', capture: 'zeek__http-multipart-form-data-post.pcap' },
  { log: 'scripts.base.protocols.http.multipart-extract/http.log', capture: 'zeek__http-multipart-post-httpbin.pcap' },
  { log: 'scripts.base.protocols.http.smuggle-http-request/http.log.cut', capture: 'zeek__http-smuggle-gzip-request-body.pcap' },
  { log: 'scripts.base.protocols.http.upgrade-to-tcp/http.log.cut', capture: 'zeek__http-docker-head-204-101-upgrade-tcp.pcap' },
  { log: 'scripts.base.protocols.http.x-gzip/http.log', capture: 'zeek__http-x-gzip-content-encoding.pcap' },
];

/** Where pcapflow's http.log fields differ from Zeek's, and why. */
const ZEEK_DIFFERENCES: Array<{ capture: string; field: string; zeek: string; pcapflow: string; why: string }> = [
  {
    capture: 'zeek__http-connect-smtp-tunnel.pcap',
    field: 'uri',
    zeek: 'mailin03.sul.t-online.de:25 /',
    pcapflow: 'mailin03.sul.t-online.de:25',
    why: 'a request line with an extra word before its version (`CONNECT host:25 / HTTP/1.0`): Zeek keeps it in the URI, pcapflow takes the first word after the method as the target',
  },
  {
    capture: 'zeek__http-smuggle-gzip-request-body.pcap',
    field: 'request_body_len',
    zeek: '57',
    pcapflow: '65',
    why: "a gzip body cut short (a stored block announcing 255 bytes, 65 sent; decodeError: unexpected end of file): all 65 decode, and tshark's exported object is those 65 bytes (the bodies test); Zeek, which parses the decoded message/rfc822 as a nested entity (its weird.log: HTTP_nested_transfer_encoding_header), counts 57",
  },
];

/** Captures of tshark's export checked against `tshark --export-objects` itself: codings, names, pieces, empty objects, none. */
const TSHARK_SAMPLE = [
  'zeek__http-pipelined-requests-gzip.pcap',
  'suricata-verify__http-brotli-chunked-204.pcap',
  'suricata-verify__http-206-range-sequential-file.pcap',
  'arkime__http-retransmissions-overlaps.pcap',
  'zeek__http-methods-49-conns.pcap',
  'suricata-verify__http-gzip-stacked-encodings.pcap',
];

// ---------------------------------------------------------------------------------------------

/** inParallel: `work` on every item, `n` at a time, each worker with a sharkd session of its own; results in the items' order. */
async function inParallel<I, T>(n: number, items: readonly I[], work: (sharkd: Sharkd, item: I) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      const sharkd = new Sharkd();
      try {
        while (next < items.length) {
          const i = next++;
          out[i] = await work(sharkd, items[i]!);
        }
      } finally {
        sharkd.close();
      }
    }),
  );
  return out;
}

describe.skipIf(!have)('pcapflow http against tshark and Zeek, on the shared captures', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-http-oracle-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const rows = have ? tsvRows() : [];
  const list = have ? captures(rows) : [];
  const runs = new Map<string, PfRun>();
  const run = (name: string): PfRun => {
    const r = runs.get(name);
    if (r === undefined) throw new Error(`no run of ${name}`);
    return r;
  };

  beforeAll(async () => {
    for (const [i, c] of list.entries()) {
      const dir = path.join(tmp, String(i));
      mkdirSync(dir);
      runs.set(c.name, await runPcapflow(c.file, dir));
    }
  }, 120_000);

  it('has the length and codings tshark shows for every request and response (TSHARK-HTTP.tsv)', () => {
    const files = [...new Set(rows.map((r) => r[COLUMN.file]!))];
    const problems: string[] = [];
    const counts = { messages: 0, paired: 0, contentLength: 0, contentEncoding: 0, transferEncoding: 0, bodyLength: 0, notAttributable: 0 };
    const unpaired = new Map<string, number>();
    for (const file of files) {
      const pf = run(path.basename(file));
      const tsv = tsvMessages(rows, file);
      counts.messages += tsv.length;
      // requests by stream, method and target, in order; a response by the request it answers
      const pfByKey = new Map<string, HttpTransactionRecord[]>();
      for (const t of [...pf.transactions].sort((a, b) => a.conn - b.conn || a.trans - b.trans)) {
        const key = `${t.conn} ${t.request.method} ${t.request.uri}`;
        pfByKey.set(key, [...(pfByKey.get(key) ?? []), t]);
      }
      const seen = new Map<string, number>();
      const txOf = new Map<TsvMessage, HttpTransactionRecord>();
      const txOfFrame = new Map<number, HttpTransactionRecord>();
      for (const m of tsv) {
        if (m.kind !== 'req') continue;
        const n = seen.get(m.key) ?? 0;
        seen.set(m.key, n + 1);
        const tx = pfByKey.get(m.key)?.[n];
        if (tx === undefined) continue;
        txOf.set(m, tx);
        if (!txOfFrame.has(m.frame)) txOfFrame.set(m.frame, tx);
      }
      for (const m of tsv) {
        const tx = m.kind === 'req' ? txOf.get(m) : m.requestIn === undefined ? undefined : txOfFrame.get(m.requestIn);
        const rec = m.kind === 'req' ? tx?.request : tx?.response;
        if (tx === undefined || rec === undefined || rec === null || (m.kind === 'res' && (rec as HttpResponseRecord).status !== m.status)) {
          // a message tshark has and pcapflow's records have not: why (test/http-captures.test.ts has the lists)
          const why =
            m.kind === 'res' && m.status! < 200
              ? 'interim' // 1xx: no record of its own
              : m.kind === 'res' && m.requestIn === undefined
                ? 'answers-no-request' // tshark pairs it with no request either; pcapflow extracts its body as c<conn>-tr<seq>-res-…
                : pf.conns.size === 0
                  ? 'no-tcp'
                  : pf.transactions.some((t) => t.conn === m.stream && t.tunnel?.reason === 'connect')
                    ? 'in-tunnel'
                    : null;
          if (why === null) problems.push(`${file} frame ${m.frame}: tshark's ${m.kind === 'req' ? m.key : m.status} is not pcapflow's`);
          else unpaired.set(why, (unpaired.get(why) ?? 0) + 1);
          continue;
        }
        counts.paired++;
        const where = `${file} frame ${m.frame} (c${tx.conn}-t${tx.trans} ${m.kind})`;
        const header = (name: string): string => headerValues(rec.headers, name).join('|');
        const fields = [
          ['content-length', m.contentLength, 'contentLength'],
          ['content-encoding', m.contentEncoding, 'contentEncoding'],
          ['transfer-encoding', m.transferEncoding, 'transferEncoding'],
        ] as const;
        for (const [name, want, count] of fields) {
          if (want === undefined) {
            counts.notAttributable++;
            continue;
          }
          counts[count]++;
          if (header(name) !== want) problems.push(`${where}: ${name} ${JSON.stringify(header(name))}, tshark ${JSON.stringify(want)}`);
        }
        if (m.contentEncoding !== undefined) {
          const tokens = m.contentEncoding
            .split(/[,|]/)
            .map((t) => t.trim().toLowerCase())
            .filter((t) => t !== '' && t !== 'identity');
          if (JSON.stringify(rec.encodings) !== JSON.stringify(tokens)) problems.push(`${where}: encodings ${JSON.stringify(rec.encodings)}, tshark's Content-Encoding ${JSON.stringify(m.contentEncoding)}`);
        }
        const noBody = m.kind === 'res' && (tx.request.method === 'HEAD' || m.status! < 200 || m.status === 204 || m.status === 304 || (tx.request.method === 'CONNECT' && m.status! < 300));
        if (m.contentLength !== undefined && /^\d+$/.test(m.contentLength) && (m.transferEncoding ?? '') === '' && rec.complete && !noBody) {
          counts.bodyLength++;
          if (rec.bodyBytes !== Number(m.contentLength)) problems.push(`${where}: body ${rec.bodyBytes} bytes, Content-Length ${m.contentLength}`);
        }
      }
    }
    console.log(`fields vs TSHARK-HTTP.tsv: ${JSON.stringify(counts)}; tshark's messages not in pcapflow's records: ${JSON.stringify(Object.fromEntries(unpaired))}`);
    expect(problems).toEqual([]);
    expect(counts.paired).toBeGreaterThanOrEqual(380); // as found when this test was written
  });

  it.skipIf(!tshark)('has every body tshark --export-objects http writes, or a listed difference with its checked reason', { timeout: 120_000 }, async () => {
    // what tshark exports, two sharkd sessions at a time (two cores); again with
    // tcp.reassemble_out_of_order on where there are differences, for the reason of that name
    const seen = await inParallel(2, list, async (sharkd, c) => {
      const pf = run(c.name);
      const loaded = await sharkd.load(c.file, { 'tcp.reassemble_out_of_order': 'FALSE' });
      const { objects, messages } = loaded ? await tsharkObjects(sharkd, pf) : { objects: [], messages: 0 };
      const compared = compare(objects, pf.messages);
      const oooFixed = new Set<string>();
      if (compared.diffs.length > 0 && (await sharkd.load(c.file, { 'tcp.reassemble_out_of_order': 'TRUE' }))) {
        const before = new Set(compared.agree.map((a) => a.msg.id));
        for (const a of compare((await tsharkObjects(sharkd, pf)).objects, pf.messages).agree) if (!before.has(a.msg.id) && a.obj.data.length > 0) oooFixed.add(a.msg.id);
      }
      return { objects, messages, compared, oooFixed };
    });
    const unexplained: string[] = [];
    const byReason = new Map<Reason, number>();
    const totals = { captures: list.length, withHttp: 0, objects: 0, emptyObjects: 0, bodies: 0, agree: 0, agreeEmpty: 0, differences: 0 };
    for (const [n, c] of list.entries()) {
      const pf = run(c.name);
      const { objects, messages, compared, oooFixed } = seen[n]!;
      if (objects.length === 0 && messages === 0 && pf.transactions.length === 0 && pf.errors.length === 0) continue;
      const { agree, diffs } = compared;
      totals.withHttp++;
      totals.objects += objects.length;
      totals.emptyObjects += objects.filter((o) => o.data.length === 0).length;
      totals.bodies += pf.messages.filter((m) => m.body.length > 0).length;
      totals.agree += agree.length;
      totals.agreeEmpty += agree.filter((a) => a.obj.data.length === 0).length;
      totals.differences += diffs.length;
      const ctx: Ctx = { pf, oooFixed };
      const listed = DIFFERENCES[c.name] ?? [];
      const claimed = listed.map(() => 0);
      for (const d of diffs) {
        const i = listed.findIndex((l) => l.what.test(d.key));
        const fits = (Object.keys(REASONS) as Reason[]).filter((r) => REASONS[r].check(d, ctx)).join(', ') || 'none';
        if (i < 0) {
          unexplained.push(`${c.name}: ${d.key} (reasons that hold: ${fits})`);
          continue;
        }
        claimed[i]!++;
        if (REASONS[listed[i]!.reason].check(d, ctx)) byReason.set(listed[i]!.reason, (byReason.get(listed[i]!.reason) ?? 0) + 1);
        else unexplained.push(`${c.name}: ${d.key}: listed as ${listed[i]!.reason}, which does not hold (reasons that hold: ${fits})`);
      }
      listed.forEach((l, i) => claimed[i] === l.n || unexplained.push(`${c.name}: ${l.what} (${l.reason}) listed ${l.n} times, found ${claimed[i]}`));
    }
    for (const name of Object.keys(DIFFERENCES)) if (!list.some((c) => c.name === name)) unexplained.push(`${name}: listed, not a capture here`);
    console.log(`bodies vs tshark --export-objects http: ${JSON.stringify(totals)}; differences by reason: ${JSON.stringify(Object.fromEntries(byReason))}`);
    expect(unexplained).toEqual([]);
    expect(totals.agree).toBeGreaterThanOrEqual(530); // as found when this test was written
  });

  it.skipIf(!tshark)('sharkd exports the objects tshark --export-objects http writes (a sample)', { timeout: 60_000 }, async () => {
    const sample = TSHARK_SAMPLE.map((name) => list.find((c) => c.name === name)!);
    const theirs = await inParallel(2, sample, async (_, c) => {
      const dir = path.join(tmp, `tshark-${c.name}`);
      mkdirSync(dir);
      await execFileAsync('tshark', ['-r', c.file, '-q', '--export-objects', `http,${dir}`]);
      return readdirSync(dir)
        .map((f) => sha256(readFileSync(path.join(dir, f))))
        .sort();
    });
    const mine = await inParallel(1, sample, async (sharkd, c) => {
      expect(await sharkd.load(c.file, { 'tcp.reassemble_out_of_order': 'FALSE' })).toBe(true);
      return (await sharkd.exportObjects('http')).map((o) => sha256(o.data)).sort();
    });
    sample.forEach((c, i) => expect(mine[i], c.name).toEqual(theirs[i]));
    expect(theirs.flat().length).toBeGreaterThan(50);
  });

  it("has what Zeek's baselines have: http.log, files.log, extracted files", () => {
    const problems: string[] = [];
    const counts = { logs: 0, rows: 0, fields: 0, files: 0, explained: 0 };
    const differ = (capture: string, field: string, zeek: string, mine: string): void => {
      counts.fields++;
      if (zeek === mine) return;
      if (ZEEK_DIFFERENCES.some((d) => d.capture === capture && d.field === field && d.zeek === zeek && d.pcapflow === mine)) counts.explained++;
      else problems.push(`${capture}: ${field} ${JSON.stringify(mine)}, Zeek ${JSON.stringify(zeek)}`);
    };
    // http.log: the transaction by its connection's endpoints (conn.log's for a cut log) and trans_depth, else by method and URI
    for (const { log, capture } of ZEEK_HTTP_LOGS) {
      counts.logs++;
      const pf = run(capture);
      const connLog = path.join(ZEEK, path.dirname(log), 'conn.log');
      const uids = new Map(existsSync(connLog) ? zeekLog(connLog).map((r) => [r.uid!, r]) : []);
      const used = new Set<HttpTransactionRecord>();
      for (const row of zeekLog(path.join(ZEEK, log))) {
        counts.rows++;
        const ids = [row, uids.get(row.uid ?? '')].find((r) => r?.['id.orig_h'] !== undefined);
        let tx: HttpTransactionRecord | undefined;
        if (ids !== undefined && row.trans_depth !== undefined) {
          tx = pf.transactions.find((t) => same(t.client, { ip: ids['id.orig_h']!, port: Number(ids['id.orig_p']) }) && same(t.server, { ip: ids['id.resp_h']!, port: Number(ids['id.resp_p']) }) && t.trans === Number(row.trans_depth) - 1);
        } else {
          tx = pf.transactions.find((t) => !used.has(t) && t.request.method === row.method && t.request.uri === row.uri);
        }
        if (tx === undefined) {
          problems.push(`${capture}: no transaction for ${log} row ${JSON.stringify(row)}`);
          continue;
        }
        used.add(tx);
        const mine: Record<string, string> = {
          method: tx.request.method,
          uri: tx.request.uri,
          status_code: tx.response === null ? '-' : String(tx.response.status),
          request_body_len: String(tx.request.decodedBytes),
          response_body_len: String(tx.response?.decodedBytes ?? 0),
        };
        for (const field of Object.keys(mine)) if (row[field] !== undefined) differ(capture, field, row[field]!, mine[field]!);
      }
    }
    // extracted files, and the digests Zeek's file analysis printed
    const responses = (capture: string): HttpResponseRecord[] => run(capture).transactions.flatMap((t) => (t.response === null ? [] : [t.response]));
    const bodyOf = (capture: string, r: HttpMessageRecord): Buffer => run(capture).messages.find((m) => m.record === r)!.body;
    const file = (dir: string, name: string): Buffer => baselineFile(path.join(ZEEK, dir, name));
    const sameBody = (capture: string, r: HttpResponseRecord | undefined, zeek: Buffer, digest: string | undefined, what: string): void => {
      counts.files++;
      if (r === undefined) problems.push(`${capture}: no response for ${what}`);
      else if (!bodyOf(capture, r).equals(zeek) || (digest !== undefined && r.sha256 !== digest)) problems.push(`${capture}: the body is not ${what}`);
    };
    const get = 'scripts.base.frameworks.file-analysis.http.get';
    // get.pcap, and six captures of the same TCP payload (../shared/pcaps/README.md)
    for (const c of ['baseline', 'vlan', 'qinq', 'qinqinq', 'synack-first', 'midstream', 'no-fins']) sameBody(`zeek__http-get-${c}.pcap`, responses(`zeek__http-get-${c}.pcap`)[0], file(get, '1-file'), outDigests(path.join(ZEEK, get, 'get.out'))[0], `${get}/1-file`);
    sameBody('zeek__http-gzip-content-encoding.pcap', responses('zeek__http-gzip-content-encoding.pcap')[0], file(get, '2-file'), outDigests(path.join(ZEEK, get, 'get-gzip.out'))[0], `${get}/2-file`);
    const pipeline = 'scripts.base.frameworks.file-analysis.http.pipeline';
    const pipelined = responses('zeek__http-pipelined-requests-gzip.pcap');
    outDigests(path.join(ZEEK, pipeline, 'out')).forEach((d, i) => sameBody('zeek__http-pipelined-requests-gzip.pcap', pipelined[i], file(pipeline, `${i + 1}-file`), d, `${pipeline}/${i + 1}-file`));
    // the multipart test's fourth file is the response (the first three are parts: their own test)
    const multipart = 'scripts.base.frameworks.file-analysis.http.multipart';
    sameBody('zeek__http-multipart-post-httpbin.pcap', responses('zeek__http-multipart-post-httpbin.pcap')[0], file(multipart, '4-file'), outDigests(path.join(ZEEK, multipart, 'out'))[3], `${multipart}/4-file`);
    // two 206s of one PDF: put together by Content-Range, Zeek's file of 555523 bytes
    const partial = 'scripts.base.frameworks.file-analysis.http.partial-content';
    const pdf = Buffer.alloc(Number(readFileSync(path.join(ZEEK, partial, 'a.size'), 'utf8').match(/^(\d+) file-0$/m)![1]));
    let filled = 0;
    for (const r of responses('zeek__http-206-two-ranges-pdf.pcap')) {
      const body = bodyOf('zeek__http-206-two-ranges-pdf.pcap', r);
      body.copy(pdf, r.contentRange!.start);
      filled += body.length;
    }
    counts.files++;
    if (filled !== pdf.length || sha256(pdf) !== outDigests(path.join(ZEEK, partial, 'a.out'))[0]) problems.push(`zeek__http-206-two-ranges-pdf.pcap: the ranges put together are not ${partial}/a.out's file`);
    // bodies with a hole: Zeek fills it with zeros, pcapflow leaves it out
    const rangeGap = responses('zeek__http-content-range-gap.pcap')[0]!;
    const thefile = file('scripts.base.protocols.http.content-range-gap', 'extract_files.thefile');
    counts.files++;
    if (!thefile.subarray(0, rangeGap.contentRange!.start).every((b) => b === 0) || !withHole(bodyOf('zeek__http-content-range-gap.pcap', rangeGap), thefile.subarray(rangeGap.contentRange!.start), rangeGap.missing)) {
      problems.push('zeek__http-content-range-gap.pcap: the body is not extract_files.thefile at its Content-Range, around its hole');
    }
    const entity = responses('zeek__http-entity-gap.pcap')[0]!;
    counts.files++;
    if (!withHole(bodyOf('zeek__http-entity-gap.pcap', entity), file('scripts.base.protocols.http.entity-gap', 'extract_files.file0'), entity.missing) || !readFileSync(path.join(ZEEK, 'scripts.base.protocols.http.entity-gap/entity_data'), 'utf8').includes(`<${entity.missing} byte gap>`)) {
      problems.push('zeek__http-entity-gap.pcap: the body is not extract_files.file0 around its hole');
    }
    // files.log: a range's bytes seen, the whole file's size, the bytes before the range
    const hole = responses('zeek__http-206-large-hole.pcap')[0]!;
    const [large] = zeekLog(path.join(ZEEK, 'scripts.base.files.extract.limit-large-hole/files-1.log'));
    differ('zeek__http-206-large-hole.pcap', 'seen_bytes', large!.seen_bytes!, String(hole.decodedBytes));
    differ('zeek__http-206-large-hole.pcap', 'total_bytes', large!.total_bytes!, String(hole.contentRange?.size));
    differ('zeek__http-206-large-hole.pcap', 'missing_bytes', large!.missing_bytes!, String(hole.contentRange?.start));
    // three connections' ranges of one file: Zeek's one file, seen bytes and the holes between
    const ranges = responses('zeek__http-206-concurrent-range-requests.pcap');
    const seen = ranges.reduce((n, r) => n + (r.decodedBytes ?? 0), 0);
    for (const row of zeekLog(path.join(ZEEK, 'scripts.base.protocols.http.concurrent-range-requests/files.log'))) {
      differ('zeek__http-206-concurrent-range-requests.pcap', 'seen_bytes', row.seen_bytes!, String(seen));
      differ('zeek__http-206-concurrent-range-requests.pcap', 'total_bytes', row.total_bytes!, String(ranges[0]!.contentRange?.size));
      differ('zeek__http-206-concurrent-range-requests.pcap', 'missing_bytes', row.missing_bytes!, String(Math.max(...ranges.map((r) => r.contentRange!.end + 1)) - seen));
    }
    // not compared: the byteranges test's files.log (the parts of a multipart/byteranges body) and
    // limit-large-hole's extract_files.1 (empty: Zeek's extraction limit)
    console.log(`Zeek's baselines: ${JSON.stringify(counts)}`);
    expect(problems).toEqual([]);
    expect(counts.explained).toBe(ZEEK_DIFFERENCES.length);
  });
});
