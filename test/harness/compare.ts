/**
 * compare: what the netns harness checks a reassembler's output against: the bytes each
 * application wrote (the logs of traffic-client.mjs and traffic-server.mjs).
 *
 * Everything is keyed on (client ip, client port, server ip, server port), so the same checks
 * read pcapflow's files, tcpflow's files (both named `SRCIP.SPORT-DSTIP.DPORT[--VLAN]`) and
 * tshark's `follow,tcp,raw` output.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { type FollowStream, parseFollowRaw } from '../helpers/tshark-follow.js';

export interface Endpoint {
  ip: string;
  port: number;
}

/** One ndjson line of a traffic log (see traffic-common.mjs). */
interface LogRecord {
  side: 'client' | 'server';
  id: number;
  mode: string;
  client: Endpoint;
  server: Endpoint;
  wrote: number;
  wroteSha256: string;
  wroteFile: string;
  received: number;
  receivedSha256: string;
  end: string;
  error: string;
}

/** AppConnection is one connection as its two applications saw it. */
export interface AppConnection {
  key: string;
  id: number;
  mode: string;
  client: Endpoint;
  server: Endpoint;
  /** Files holding exactly the bytes the client (c2s) and the server (s2c) wrote. */
  c2sFile: string;
  c2sLen: number;
  s2cFile: string;
  s2cLen: number;
  clientEnd: string;
  serverEnd: string;
}

export function connKey(client: Endpoint, server: Endpoint): string {
  return `${client.ip}|${client.port}|${server.ip}|${server.port}`;
}

function readNdjson<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

/**
 * loadAppLogs joins the client and server logs on the 4-tuple. `problems` lists what makes the
 * run itself unusable: a connection only one side logged, a reused 4-tuple, an error end, or
 * bytes one application received that differ from what the other wrote (the applications
 * must agree before a reassembler can be judged).
 */
export function loadAppLogs(logDir: string): { conns: AppConnection[]; problems: string[] } {
  const problems: string[] = [];
  const clients = readNdjson<LogRecord>(path.join(logDir, 'client.ndjson'));
  const servers = new Map<string, LogRecord>();
  for (const s of readNdjson<LogRecord>(path.join(logDir, 'server.ndjson'))) {
    const k = connKey(s.client, s.server);
    if (servers.has(k)) problems.push(`server logged 4-tuple ${k} twice`);
    servers.set(k, s);
  }
  const conns: AppConnection[] = [];
  const seen = new Set<string>();
  for (const c of clients) {
    const key = connKey(c.client, c.server);
    if (seen.has(key)) problems.push(`client logged 4-tuple ${key} twice`);
    seen.add(key);
    const s = servers.get(key);
    if (s === undefined) {
      problems.push(`connection ${c.id} (${key}) has no server log`);
      continue;
    }
    servers.delete(key);
    if (c.end === 'error' || s.end === 'error') problems.push(`connection ${c.id} (${key}) ended in error: ${c.error || s.error}`);
    if (s.received !== c.wrote || s.receivedSha256 !== c.wroteSha256) problems.push(`connection ${c.id}: server received other bytes than the client wrote`);
    if (c.received !== s.wrote || c.receivedSha256 !== s.wroteSha256) problems.push(`connection ${c.id}: client received other bytes than the server wrote`);
    conns.push({
      key,
      id: c.id,
      mode: c.mode,
      client: c.client,
      server: c.server,
      c2sFile: path.join(logDir, c.wroteFile),
      c2sLen: c.wrote,
      s2cFile: path.join(logDir, s.wroteFile),
      s2cLen: s.wrote,
      clientEnd: c.end,
      serverEnd: s.end,
    });
  }
  for (const k of servers.keys()) problems.push(`server connection ${k} has no client log`);
  return { conns, problems };
}

/** tcpflowIp is an address as tcpflow writes it in file names: IPv4 octets padded to 3 digits. */
function tcpflowIp(ip: string): string {
  if (ip.includes(':')) return ip; // IPv6: Node and tcpflow both print the RFC 5952 form
  return ip
    .split('.')
    .map((o) => o.padStart(3, '0'))
    .join('.');
}

/** flowFileName is tcpflow's `%A.%a-%B.%b%V%v` for one direction (`--VID` when tagged). */
export function flowFileName(src: Endpoint, dst: Endpoint, vlan: number | null): string {
  const base = `${tcpflowIp(src.ip)}.${String(src.port).padStart(5, '0')}-${tcpflowIp(dst.ip)}.${String(dst.port).padStart(5, '0')}`;
  return vlan === null ? base : `${base}--${vlan}`;
}

/** A direction's verdict: equal, or why not. */
export interface DirectionResult {
  equal: boolean;
  detail: string;
}

export interface ConnResult {
  conn: AppConnection;
  c2s: DirectionResult;
  s2c: DirectionResult;
}

/** tally counts the directions equal to the applications' bytes and describes the others (one line each). */
export function tally(results: ReadonlyArray<Pick<ConnResult, 'conn' | 'c2s' | 's2c'>>): { equal: number; total: number; bad: string[] } {
  let equal = 0;
  const bad: string[] = [];
  for (const r of results) {
    for (const [dir, d] of [
      ['c2s', r.c2s],
      ['s2c', r.s2c],
    ] as const) {
      if (d.equal) equal++;
      else bad.push(`connection ${r.conn.id} (${r.conn.mode}, ${r.conn.key}) ${dir}: ${d.detail}`);
    }
  }
  return { equal, total: results.length * 2, bad };
}

/** compareBytes says whether `got` equals `want`, else where they first differ. */
export function compareBytes(want: Buffer, got: Buffer): DirectionResult {
  if (want.equals(got)) return { equal: true, detail: '' };
  const n = Math.min(want.length, got.length);
  let i = 0;
  while (i < n && want[i] === got[i]) i++;
  return { equal: false, detail: `${got.length} bytes, want ${want.length}; first difference at ${i}` };
}

function checkFile(want: string, wantLen: number, file: string): DirectionResult {
  const exists = existsSync(file);
  if (wantLen === 0) return exists ? { equal: false, detail: `${path.basename(file)} exists but the application wrote nothing` } : { equal: true, detail: '' };
  if (!exists) return { equal: false, detail: `${path.basename(file)} missing` };
  return compareBytes(readFileSync(want), readFileSync(file));
}

/**
 * compareFlowDir checks a directory of tcpflow-named files: for every connection, each direction's
 * file equals what that side's application wrote, and a direction where it wrote nothing has no
 * file. `extra` lists files that belong to no logged connection (besides the given ignorable names);
 * `wanted` maps each expected file name to the log file holding its bytes.
 */
export function compareFlowDir(
  dir: string,
  conns: AppConnection[],
  vlan: number | null,
  ignore: readonly string[] = [],
): { results: ConnResult[]; extra: string[]; wanted: Map<string, string> } {
  const expected = new Set<string>(ignore);
  const wanted = new Map<string, string>();
  const results = conns.map((conn) => {
    const c2sName = flowFileName(conn.client, conn.server, vlan);
    const s2cName = flowFileName(conn.server, conn.client, vlan);
    expected.add(c2sName);
    expected.add(s2cName);
    wanted.set(c2sName, conn.c2sFile);
    wanted.set(s2cName, conn.s2cFile);
    return {
      conn,
      c2s: checkFile(conn.c2sFile, conn.c2sLen, path.join(dir, c2sName)),
      s2c: checkFile(conn.s2cFile, conn.s2cLen, path.join(dir, s2cName)),
    };
  });
  const extra = readdirSync(dir).filter((f) => !expected.has(f));
  return { results, extra, wanted };
}

/** The parts of a pcapflow connections.ndjson record the harness checks. */
export interface ConnectionsRecord {
  conn: number;
  reason: string;
  client: Endpoint;
  server: Endpoint;
  vlan: number[];
  midstream: boolean;
  c2s: { bytes: number; gaps: number; missing: number; retransmitted: number; file: string | null };
  s2c: { bytes: number; gaps: number; missing: number; retransmitted: number; file: string | null };
}

/**
 * checkConnectionsFile reads DIR/connections.ndjson and checks, for every logged connection: a
 * record exists, no gaps and no missing bytes (every hole in these captures was filled by a
 * retransmission: a byte an application received passed the capture point), the file names are
 * the expected ones (null for an empty direction), the VLAN, and the close reason (rst for the
 * modes that reset, fin otherwise). Records of other 4-tuples, or further records of a logged
 * 4-tuple (stray segments after a RST), are allowed only when they carry no bytes.
 */
export function checkConnectionsFile(dir: string, conns: AppConnection[], vlan: number | null): { problems: string[]; records: number } {
  const file = path.join(dir, 'connections.ndjson');
  if (!existsSync(file)) return { problems: ['connections.ndjson missing'], records: 0 };
  const recs = readNdjson<ConnectionsRecord>(file);
  const byKey = new Map<string, ConnectionsRecord[]>();
  for (const r of recs) {
    const k = connKey(r.client, r.server);
    const list = byKey.get(k);
    if (list === undefined) byKey.set(k, [r]);
    else list.push(r);
  }
  const problems: string[] = [];
  for (const c of conns) {
    const list = byKey.get(c.key) ?? [];
    byKey.delete(c.key);
    const withData = list.filter((r) => r.c2s.bytes + r.s2c.bytes > 0);
    const rec = withData[0] ?? list[0];
    const at = `connection ${c.id} (${c.mode}, ${c.key})`;
    if (rec === undefined) {
      problems.push(`${at}: no record`);
      continue;
    }
    if (withData.length > 1) problems.push(`${at}: ${withData.length} records carry data`);
    for (const [dir2, r, len, name] of [
      ['c2s', rec.c2s, c.c2sLen, flowFileName(c.client, c.server, vlan)],
      ['s2c', rec.s2c, c.s2cLen, flowFileName(c.server, c.client, vlan)],
    ] as const) {
      if (r.gaps !== 0 || r.missing !== 0) problems.push(`${at} ${dir2}: ${r.gaps} gaps, ${r.missing} bytes missing`);
      if (r.bytes !== len) problems.push(`${at} ${dir2}: ${r.bytes} bytes, the application wrote ${len}`);
      const wantFile = len === 0 ? null : name;
      if (r.file !== wantFile) problems.push(`${at} ${dir2}: file ${String(r.file)}, want ${String(wantFile)}`);
    }
    const wantVlan = vlan === null ? [] : [vlan];
    if (JSON.stringify(rec.vlan) !== JSON.stringify(wantVlan)) problems.push(`${at}: vlan ${JSON.stringify(rec.vlan)}`);
    const wantReason = c.mode === 'rst-client' || c.mode === 'rst-server' ? 'rst' : 'fin';
    if (rec.reason !== wantReason) problems.push(`${at}: reason ${rec.reason}, want ${wantReason}`);
    if (rec.midstream) problems.push(`${at}: marked midstream`);
  }
  for (const [k, list] of byKey) {
    for (const r of list) if (r.c2s.bytes + r.s2c.bytes > 0) problems.push(`record of unlogged connection ${k} carries data`);
  }
  return { problems, records: recs.length };
}

/**
 * tsharkFollow runs `tshark -z follow,tcp,raw,N` for streams 0..count-1 in one pass and returns
 * each stream's two directions keyed on the 4-tuple. Node 0 is the side that sent the stream's
 * first packet (the client, as every capture here starts at the SYN).
 */
export function tsharkFollow(pcap: string, count: number): Map<string, { c2s: Buffer; s2c: Buffer }> {
  const args = ['-r', pcap, '-o', 'tcp.reassemble_out_of_order:TRUE', '-q'];
  for (let i = 0; i < count; i++) args.push('-z', `follow,tcp,raw,${i}`);
  const out = execFileSync('tshark', args, { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const streams = new Map<string, { c2s: Buffer; s2c: Buffer }>();
  const parseNode = (line: string): Endpoint => {
    const m = /^Node [01]: \[?([^\]]*?)\]?:(\d+)$/.exec(line.trim());
    if (m === null) throw new Error(`tshark follow: bad node line ${line}`);
    return { ip: m[1] ?? '', port: Number(m[2]) };
  };
  for (const block of out.split(/^={10,}$/m)) {
    const lines = block.split('\n');
    const n0 = lines.findIndex((l) => l.startsWith('Node 0:'));
    if (n0 < 0 || !(lines[n0 + 1] ?? '').startsWith('Node 1:')) continue;
    const client = parseNode(lines[n0] ?? '');
    const server = parseNode(lines[n0 + 1] ?? '');
    const c2s: string[] = [];
    const s2c: string[] = [];
    for (const l of lines.slice(n0 + 2)) {
      if (l.trim() === '') continue;
      if (l.startsWith('\t')) s2c.push(l.trim());
      else c2s.push(l.trim());
    }
    streams.set(connKey(client, server), { c2s: Buffer.from(c2s.join(''), 'hex'), s2c: Buffer.from(s2c.join(''), 'hex') });
  }
  return streams;
}

/** compareFollow checks tshark's follow output against the applications, like compareFlowDir. */
export function compareFollow(streams: Map<string, { c2s: Buffer; s2c: Buffer }>, conns: AppConnection[]): ConnResult[] {
  return conns.map((conn) => {
    const s = streams.get(conn.key);
    if (s === undefined) return { conn, c2s: { equal: false, detail: 'no stream' }, s2c: { equal: false, detail: 'no stream' } };
    return {
      conn,
      c2s: compareBytes(readFileSync(conn.c2sFile), s.c2s),
      s2c: compareBytes(readFileSync(conn.s2cFile), s.s2c),
    };
  });
}

/** CaptureCounts: what the capture shows, from tshark's dissection of every frame. */
export interface CaptureCounts {
  frames: number;
  /** Longest frame: at most 1514 (1518 tagged) when every frame is one segment. */
  maxFrame: number;
  /** Frames with an 802.1Q tag. */
  vlanFrames: number;
  /** Frames tshark flags as tcp.analysis.retransmission. */
  retransmissions: number;
  /** Data segments that start beyond the highest byte seen so far in their direction (a hole opens). */
  holes: number;
  /** Data segments that bring bytes below the highest seen, never seen before (a hole is filled). */
  holeFills: number;
  /** Data segments whose bytes were all seen before (duplicates). */
  duplicates: number;
  resets: number;
  streams: number;
}

/**
 * captureCounts reads every frame's stream, source port, relative sequence number and payload
 * length with tshark and follows which bytes of each direction the capture has seen, to count
 * holes, hole fills and duplicates; plus VLAN frames, RSTs and tshark's retransmission flag.
 */
export function captureCounts(pcap: string): CaptureCounts {
  const out = execFileSync(
    'tshark',
    ['-r', pcap, '-T', 'fields', '-E', 'separator=,', '-e', 'tcp.stream', '-e', 'tcp.srcport', '-e', 'tcp.seq', '-e', 'tcp.len', '-e', 'vlan.id', '-e', 'tcp.analysis.retransmission', '-e', 'tcp.flags.reset', '-e', 'frame.len'],
    { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const c: CaptureCounts = { frames: 0, maxFrame: 0, vlanFrames: 0, retransmissions: 0, holes: 0, holeFills: 0, duplicates: 0, resets: 0, streams: 0 };
  const streams = new Set<string>();
  // Per direction: the byte ranges seen, merged and sorted, as [start, end) pairs.
  const seen = new Map<string, Array<[number, number]>>();
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [stream = '', sport = '', seq = '', len = '', vid = '', retr = '', rst = '', flen = '0'] = line.split(',');
    c.frames++;
    c.maxFrame = Math.max(c.maxFrame, Number(flen));
    if (vid !== '') c.vlanFrames++;
    if (retr !== '') c.retransmissions++;
    if (rst === '1' || rst === 'True') c.resets++;
    if (stream === '') continue;
    streams.add(stream);
    const n = Number(len);
    if (n === 0) continue;
    const dir = `${stream}/${sport}`;
    const s = Number(seq);
    const e = s + n;
    const ranges = seen.get(dir) ?? [];
    const top = ranges.length === 0 ? 1 : ranges[ranges.length - 1]![1]; // relative seq 1 = first data byte
    if (ranges.some(([a, b]) => a <= s && e <= b)) c.duplicates++;
    else if (s > top) c.holes++;
    else if (s < top) c.holeFills++;
    ranges.push([s, e]);
    ranges.sort((x, y) => x[0] - y[0]);
    const merged: Array<[number, number]> = [];
    for (const [a, b] of ranges) {
      const last = merged[merged.length - 1];
      if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    seen.set(dir, merged);
  }
  c.streams = streams.size;
  return c;
}

/** How tshark's follow output for one direction differs from what the application wrote. */
export type FollowDiff =
  /** tshark numbered more than one stream for the connection's 4-tuple (their bytes are joined in stream order). */
  | 'split'
  /** tshark wrote "[N bytes missing in capture file]" in place of N bytes (which the capture has, in these tests). */
  | 'gap-text'
  /** the start of the direction is missing (no text in its place). */
  | 'lost-start'
  /** bytes are missing inside the direction (no text in their place). */
  | 'hole'
  /** the end of the direction is missing. */
  | 'short'
  /** tshark has bytes of this direction out of their order (joined split streams). */
  | 'order'
  /** tshark has bytes the application did not write. */
  | 'foreign'
  /** tshark has no stream for the 4-tuple. */
  | 'no-stream';

export interface FollowDirection extends DirectionResult {
  diffs: FollowDiff[];
}

export interface FollowResult {
  conn: AppConnection;
  c2s: FollowDirection;
  s2c: FollowDirection;
  /** tshark streams for this 4-tuple, and whether tshark took the server for node 0 (of the first). */
  streams: number;
  serverFirst: boolean;
}

const MISSING_TEXT = /^\[(-?\d+) bytes missing in capture file\]\0/;

/**
 * classifyFollow walks tshark's bytes (`got`) along the application's (`want`) and says how they
 * differ: each "[N bytes missing in capture file]" text stands for N bytes; bytes tshark skips
 * without a text are a lost start or a hole; a missing end is short; bytes found only earlier in
 * `want` are out of order, bytes not found at all foreign (the walk stops at either).
 */
export function classifyFollow(want: Buffer, got: Buffer): FollowDirection {
  const r = compareBytes(want, got);
  if (r.equal) return { ...r, diffs: [] };
  if (got.length === 0) return { ...r, diffs: ['lost-start'] };
  const diffs = new Set<FollowDiff>();
  let i = 0;
  let w = 0;
  let stopped = false;
  while (i < got.length) {
    if (got[i] === 0x5b) {
      const m = MISSING_TEXT.exec(got.subarray(i, i + 64).toString('latin1'));
      if (m !== null) {
        diffs.add('gap-text');
        i += m[0].length;
        w += Number(m[1]);
        continue;
      }
    }
    if (w < want.length && got[i] === want[w]) {
      i++;
      w++;
      continue;
    }
    const probe = got.subarray(i, i + 32);
    const at = want.indexOf(probe, w);
    if (at > w) {
      diffs.add(w === 0 ? 'lost-start' : 'hole');
      w = at;
      continue;
    }
    diffs.add(want.indexOf(probe) >= 0 ? 'order' : 'foreign');
    stopped = true;
    break;
  }
  if (!stopped && w < want.length) diffs.add('short');
  return { ...r, diffs: [...diffs] };
}

/**
 * tsharkFollowAll runs `tshark -z follow,tcp,raw,N` on every stream of `pcap` (one run, more when
 * tshark numbers more streams than guessed: following a stream that does not exist gives an
 * empty block, so the guess is generous). Asynchronous, so that other work can run beside it; the
 * output stays beside the capture (`PCAP.follow-0.txt`).
 */
export async function tsharkFollowAll(pcap: string, guess: number): Promise<FollowStream[]> {
  const out: FollowStream[] = [];
  let from = 0;
  let to = Math.ceil(guess * 1.25) + 16;
  for (;;) {
    const args = ['-r', pcap, '-o', 'tcp.reassemble_out_of_order:TRUE', '-n', '-q'];
    for (let i = from; i < to; i++) args.push('-z', `follow,tcp,raw,${i}`);
    // into a file, not a pipe: tshark then runs on while this process is busy (a pipe would fill)
    const file = `${pcap}.follow-${from}.txt`;
    const fd = openSync(file, 'w');
    try {
      await new Promise<void>((resolve, reject) => {
        const child = spawn('tshark', args, { stdio: ['ignore', fd, 'ignore'] });
        child.on('error', reject);
        child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`tshark -r ${pcap}: exit ${code ?? signal}`))));
      });
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(file, 'utf8');
    const got = parseFollowRaw(text).filter((s) => s.nodes[0].port !== 0);
    out.push(...got);
    if (!got.some((s) => s.stream === to - 1)) return out;
    from = to;
    to *= 2;
  }
}

/**
 * compareFollowStreams checks tshark's follow output against the applications on captures that
 * may be out of order: a connection's streams are found by their two endpoints whichever tshark
 * took for node 0 (the sender of the stream's first packet: the server when its packet comes
 * first), and several streams of one 4-tuple are joined in stream order (and noted 'split': no
 * one stream tshark follows holds the connection).
 */
export function compareFollowStreams(follows: FollowStream[], conns: AppConnection[]): FollowResult[] {
  const byKey = new Map<string, FollowStream[]>();
  for (const s of [...follows].sort((a, b) => a.stream - b.stream)) {
    for (const k of new Set([connKey(s.nodes[0], s.nodes[1]), connKey(s.nodes[1], s.nodes[0])])) {
      const list = byKey.get(k);
      if (list === undefined) byKey.set(k, [s]);
      else list.push(s);
    }
  }
  return conns.map((conn) => {
    const list = byKey.get(conn.key) ?? [];
    if (list.length === 0) {
      const none: FollowDirection = { equal: false, detail: 'no stream', diffs: ['no-stream'] };
      return { conn, c2s: none, s2c: none, streams: 0, serverFirst: false };
    }
    const clientIsNode0 = (s: FollowStream): boolean => s.nodes[0].ip === conn.client.ip && s.nodes[0].port === conn.client.port;
    const c2s = Buffer.concat(list.map((s) => s.data[clientIsNode0(s) ? 0 : 1]));
    const s2c = Buffer.concat(list.map((s) => s.data[clientIsNode0(s) ? 1 : 0]));
    const dir = (want: string, got: Buffer): FollowDirection => {
      const r = classifyFollow(readFileSync(want), got);
      if (list.length === 1) return r;
      return { equal: false, detail: r.equal ? `the bytes, in ${list.length} streams` : `${list.length} streams: ${r.detail}`, diffs: ['split', ...r.diffs] };
    };
    return { conn, c2s: dir(conn.c2sFile, c2s), s2c: dir(conn.s2cFile, s2c), streams: list.length, serverFirst: !clientIsNode0(list[0]!) };
  });
}
