/**
 * Issue 16 (4): `pcapflow tls` against real node:tls traffic between two network namespaces. A
 * node:tls server and client (test/harness/tls-server.mjs, tls-client.mjs) make TLS 1.3 and 1.2
 * handshakes, ALPN [h2, http/1.1] with the server choosing either, SNI choosing the certificate, a
 * client certificate, resumption (TLS 1.2 ticket and session id, TLS 1.3 PSK) and two refused
 * handshakes (no shared version, no shared cipher: an alert), over IPv4 and IPv6, captured with
 * tcpdump under 3% loss before the capture point and 2% after it (duplicates). The certificates
 * are made here with openssl (a test CA, two server certificates and a client one, random
 * serials). Both endpoints log what node reports (tls-common.mjs); they must agree with each
 * other, and for every connection `pcapflow tls`, on the capture and on a copy shuffled within
 * windows of 8 records (timestamps kept), must give:
 *   - serverHello.version = getProtocol(); the cipher's IANA name (CIPHER_NAMES) =
 *     getCipher().standardName; serverHello.alpn = alpnProtocol up to TLS 1.2 (null in TLS 1.3,
 *     whose choice is encrypted), clientHello.alpn = the list offered; clientHello.sni = the servername the client connected with (and the server's
 *     `servername` where it reports one);
 *   - certificates (TLS 1.2 full handshakes) = the client's getPeerCertificate(true) chain, and
 *     clientCertificates = the server's: subject, issuer, serial, SHA-256 fingerprint, validity;
 *     none where the handshake sent none (TLS 1.3, resumed);
 *   - resumed = isSessionReused() (on both ends);
 *   - complete, nothing missing, no alerts or errors; a refused one: no ServerHello, missing
 *     serverHello, and exactly the server's fatal alert whose number the client's error reports.
 * The capture must also show handshake segments repeated or after a hole (handshakeHits), so that
 * loss and duplicates are known to have reached the handshakes, not only the bytes after them.
 *
 * Needs root, `ip netns` and openssl (skipped otherwise; under CI=true, root without them is a
 * failure). PCAPFLOW_HARNESS_KEEP=1 keeps the capture, logs and certificates.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TlsCertificateInfo, TlsJsonRecord } from '../src/sinks/tls-sink.js';
import { type CaptureRun, type CaptureSpec, HARNESS_DIR, SERVER_V4, SERVER_V6, netnsSupport, runCapture, sweepStale, teardownAll } from './harness/scenario.js';
import { captureLine, expectSoundCapture } from './helpers/netns-capture.js';
import { hasTool, REPO_ROOT } from './helpers/env.js';

const SPEC: CaptureSpec = { name: 'tls', loss: 0.08, dup: 0.05, vlan: null, rtoMinMs: 5 };
const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');
const execFileAsync = promisify(execFile);

/** canRun: root with netns support and openssl; skip with a message otherwise (a failure under CI when root). */
function canRun(): boolean {
  const why = netnsSupport() ?? (hasTool('openssl') ? null : 'openssl is not installed');
  if (why === null) return true;
  if (process.env.CI && process.getuid?.() === 0) throw new Error(`netns TLS: running as root under CI but ${why}`);
  console.warn(`skipping the netns TLS oracle: ${why} (it needs root, ip netns and openssl)`);
  return false;
}

const CAN_RUN = canRun();

/** getProtocol() names of the versions a ServerHello selects (RFC 8446, 5246). */
const VERSIONS: Record<string, number> = { 'TLSv1.2': 0x0303, 'TLSv1.3': 0x0304 };

/**
 * IANA names (the TLS Cipher Suites registry; RFC 8446, 5289, 7905) of the suites these cases can
 * negotiate, by code: node's getCipher().standardName is this name. A suite not listed fails the test.
 */
const CIPHER_NAMES: Record<number, string> = {
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0xc02f: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  0xc030: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  0xcca8: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
};

interface Endpoint {
  ip: string;
  port: number;
}

/** A certificate as node's getPeerCertificate() gives it (tls-common.mjs). */
interface CertLog {
  subject: Record<string, string>;
  issuer: Record<string, string>;
  serial: string;
  fingerprint256: string;
  validFrom: string;
  validTo: string;
}

/** One connection as one endpoint logged it (tls-common.mjs). */
interface ConnLog {
  side: 'client' | 'server';
  case: string;
  client: Endpoint;
  server: Endpoint;
  protocol: string | null;
  alpn: string | null;
  servername: string | null;
  cipher: { name: string; standardName: string; version: string } | null;
  peer: CertLog[];
  reused: boolean;
  error: { code: string | null; message: string } | null;
  offered?: string[];
}

/** A connection: both endpoints' logs. */
interface Conn {
  key: string;
  client: ConnLog;
  server: ConnLog;
}

const keyOf = (client: Endpoint, server: Endpoint): string => `${client.ip}|${client.port}|${server.ip}|${server.port}`;

function readLog(file: string): ConnLog[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ConnLog)
    : [];
}

/** makeCertificates: a test CA and, signed by it, the server's, the alt server's and the client's certificates (tls-common.mjs FILES). */
function makeCertificates(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/O=pcapflow tests/CN=pcapflow test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  const leaf = (name: string, subject: string, sans: string, usage: string): void => {
    writeFileSync(path.join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nsubjectAltName=${sans}\nextendedKeyUsage=${usage}\n`);
    ossl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    // no -set_serial: openssl picks a random 159-bit serial
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  };
  leaf('server', '/C=XX/O=pcapflow tests/CN=server.test', `DNS:server.test,DNS:h1.test,IP:${SERVER_V4},IP:${SERVER_V6}`, 'serverAuth');
  leaf('alt', '/O=pcapflow tests/OU=alt/CN=alt.test', 'DNS:alt.test', 'serverAuth');
  leaf('client', '/O=pcapflow tests/CN=client.test', 'DNS:client.test', 'clientAuth');
}

/** loadLogs joins the two endpoints' logs on the 4-tuple; they must agree on what they negotiated. */
function loadLogs(logDir: string): { conns: Conn[]; problems: string[] } {
  const problems: string[] = [];
  const server = new Map(readLog(path.join(logDir, 'tls-server.ndjson')).map((c) => [keyOf(c.client, c.server), c]));
  const conns: Conn[] = [];
  for (const c of readLog(path.join(logDir, 'tls-client.ndjson'))) {
    const key = keyOf(c.client, c.server);
    const s = server.get(key);
    server.delete(key);
    if (s === undefined) {
      problems.push(`${key} ${c.case}: the server did not log it`);
      continue;
    }
    const at = `${key} ${c.case}`;
    if ((c.error === null) !== (s.error === null)) problems.push(`${at}: client error ${c.error?.code}, server error ${s.error?.code}`);
    if (c.error === null) {
      const agreed = (l: ConnLog): string => JSON.stringify([l.case, l.protocol, l.alpn, l.cipher?.standardName, l.reused]);
      if (agreed(c) !== agreed(s)) problems.push(`${at}: client ${agreed(c)}, server ${agreed(s)}`);
      if (s.servername !== null && s.servername !== c.servername) problems.push(`${at}: the server saw SNI ${s.servername}, the client sent ${c.servername}`);
    }
    conns.push({ key, client: c, server: s });
  }
  for (const key of server.keys()) problems.push(`${key}: the client did not log it`);
  return { conns, problems };
}

interface Run {
  name: string;
  seconds: number;
  records: TlsJsonRecord[];
}

async function pcapflow(name: string, input: string): Promise<Run> {
  const t0 = Date.now();
  const { stdout } = await execFileAsync('node', [BIN, 'tls', input], { maxBuffer: 64 << 20 });
  const records = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TlsJsonRecord);
  return { name, seconds: (Date.now() - t0) / 1000, records };
}

/** The fields pcapflow and node both give of a certificate, each side's way put into one form. */
const dn = (o: Record<string, string>): string =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
const iso = (date: string): string => new Date(Date.parse(date)).toISOString();
const fromNode = (c: CertLog): string[] => [dn(c.subject), dn(c.issuer), c.serial, c.fingerprint256.replace(/:/g, '').toLowerCase(), iso(c.validFrom), iso(c.validTo)];
const fromPcapflow = (c: TlsCertificateInfo): Array<string | null> => [c.subject, c.issuer, c.serial, c.sha256, c.notBefore, c.notAfter];

interface PacketLine {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  seq?: number;
  flags?: string;
  payload?: number;
}

interface DataEvent {
  type: string;
  client?: Endpoint;
  server?: Endpoint;
  conn: number;
  dir?: 'c2s' | 's2c';
  offset?: number;
  data?: string;
}

/**
 * handshakeHits: in how many connection directions the capture shows a segment of the clear
 * handshake (the stream up to its first record that is not a handshake record) twice, or after a
 * hole (the segment before it was lost before the capture point): proof that loss and duplicates
 * reached the handshakes, not only the data after them. From `pcapflow read --sink ndjson` (the
 * stream bytes) and `pcapflow packets --format ndjson` (the segments' sequence numbers).
 */
async function handshakeHits(pcap: string): Promise<{ directions: number; segments: number }> {
  const ndjson = async (args: string[]): Promise<unknown[]> =>
    (await execFileAsync('node', [BIN, ...args], { maxBuffer: 64 << 20 })).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as unknown);
  // each direction's stream, then where its clear handshake ends
  const streams = new Map<string, Buffer[]>();
  const opened = new Map<number, [Endpoint, Endpoint]>();
  for (const e of (await ndjson(['read', pcap, '--sink', 'ndjson'])) as DataEvent[]) {
    if (e.type === 'open' && e.client !== undefined && e.server !== undefined) opened.set(e.conn, [e.client, e.server]);
    const ends = opened.get(e.conn);
    if (e.type !== 'data' || e.data === undefined || ends === undefined) continue;
    const key = e.dir === 'c2s' ? keyOf(ends[0], ends[1]) : keyOf(ends[1], ends[0]);
    streams.set(key, [...(streams.get(key) ?? []), Buffer.from(e.data, 'base64')]);
  }
  const handshakeEnd = new Map<string, number>();
  for (const [key, parts] of streams) {
    const b = Buffer.concat(parts);
    let at = 0;
    while (at + 5 <= b.length && b[at] === 22) at += 5 + b.readUInt16BE(at + 3);
    handshakeEnd.set(key, Math.min(at, b.length));
  }
  // the segments: offsets from the SYN's sequence number
  const isn = new Map<string, number>();
  const reach = new Map<string, number>();
  const hit = new Set<string>();
  let segments = 0;
  for (const p of (await ndjson(['packets', pcap, '--format', 'ndjson'])) as PacketLine[]) {
    if (p.seq === undefined || p.sport === undefined || p.dport === undefined) continue;
    const key = keyOf({ ip: p.src, port: p.sport }, { ip: p.dst, port: p.dport });
    if (p.flags?.includes('S')) isn.set(key, p.seq);
    const base = isn.get(key);
    if (base === undefined || !p.payload) continue;
    const off = (p.seq - base - 1) >>> 0;
    const end = reach.get(key) ?? 0;
    if (off < (handshakeEnd.get(key) ?? 0) && off !== end) {
      segments++;
      hit.add(key);
    }
    reach.set(key, Math.max(end, off + p.payload));
  }
  return { directions: hit.size, segments };
}

interface Checked {
  problems: string[];
  handshakes: number;
  tls13: number;
  tls12: number;
  alpn: number;
  sni: number;
  resumed: number;
  chains: number;
  clientChains: number;
  refused: number;
}

/** check: every logged connection's record against what its endpoints reported (see the file comment). */
function check(run: Run, conns: Conn[]): Checked {
  const out: Checked = { problems: [], handshakes: 0, tls13: 0, tls12: 0, alpn: 0, sni: 0, resumed: 0, chains: 0, clientChains: 0, refused: 0 };
  const records = new Map(run.records.map((r) => [keyOf(r.client, r.server), r]));
  for (const { key, client: c, server: s } of conns) {
    const at = `${run.name}: ${key} ${c.case}`;
    const bad = (what: string, got: unknown, want: unknown): void => {
      if (JSON.stringify(got) !== JSON.stringify(want)) out.problems.push(`${at}: ${what} ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    };
    const r = records.get(key);
    records.delete(key);
    if (r === undefined) {
      out.problems.push(`${at}: no record`);
      continue;
    }
    bad('clientHello.sni', r.clientHello?.sni, c.servername);
    bad('clientHello.alpn', r.clientHello?.alpn, c.offered);
    if (c.error !== null) {
      // refused: the server's fatal alert, the one the client's error names
      out.refused++;
      const alert = /SSL alert number (\d+)/.exec(c.error.message);
      bad('alerts', r.alerts, [{ dir: 's2c', level: 2, description: alert === null ? `no alert in ${c.error.message}` : Number(alert[1]) }]);
      bad('serverHello, resumed, complete, missing, errors', [r.serverHello, r.resumed, r.complete, r.missing, r.errors], [null, null, false, ['serverHello'], []]);
      continue;
    }
    out.handshakes++;
    const sh = r.serverHello;
    if (sh === null) {
      out.problems.push(`${at}: no ServerHello`);
      continue;
    }
    bad('serverHello.version', sh.version, VERSIONS[c.protocol ?? ''] ?? `getProtocol() ${c.protocol}`);
    bad('cipher', CIPHER_NAMES[sh.cipher] ?? `0x${sh.cipher.toString(16)} (not in CIPHER_NAMES)`, c.cipher?.standardName);
    // TLS 1.3 sends the server's choice in EncryptedExtensions: not on the wire in the clear
    bad('serverHello.alpn', sh.alpn, sh.version === 0x0304 ? null : c.alpn);
    if (c.alpn !== null && !(c.offered ?? []).includes(c.alpn)) out.problems.push(`${at}: the server chose ${c.alpn}, not offered`);
    bad('resumed', r.resumed, c.reused);
    bad('complete, missing, errors, alerts', [r.complete, r.missing, r.errors, r.alerts], [true, [], [], []]);
    // certificates: in the clear in a TLS 1.2 full handshake only
    const sent = c.protocol === 'TLSv1.2' && !c.reused;
    bad('certificates', r.certificates.map(fromPcapflow), sent ? c.peer.map(fromNode) : []);
    bad('clientCertificates', r.clientCertificates.map(fromPcapflow), sent ? s.peer.map(fromNode) : []);
    if (sent && c.peer.length === 0) out.problems.push(`${at}: the client logged no server certificate`);
    if (sh.version === 0x0304) out.tls13++;
    else out.tls12++;
    if (c.alpn !== null) out.alpn++;
    if (c.servername !== null) out.sni++;
    if (c.reused) out.resumed++;
    if (sent) out.chains++;
    if (sent && s.peer.length > 0) out.clientChains++;
  }
  for (const [key, r] of records) out.problems.push(`${run.name}: ${key}: a record of no logged connection (sni ${r.clientHello?.sni})`);
  return out;
}

describe.skipIf(!CAN_RUN)('netns TLS: real node:tls handshakes under loss and reordering', () => {
  let work = '';
  let capture: CaptureRun | null = null;
  let conns: Conn[] = [];
  const problems: string[] = [];
  const runs = new Map<string, Promise<Run>>();
  const results: Array<[Run, Checked]> = [];
  let derived = '';
  let hits: Promise<{ directions: number; segments: number }> | null = null;
  const t0 = Date.now();

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-tls-netns-'));
    if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'pipe' });
    const certs = path.join(work, 'certs');
    makeCertificates(certs);
    sweepStale();
    try {
      capture = await runCapture(SPEC, work, null, (logDir) => ({
        server: [path.join(HARNESS_DIR, 'tls-server.mjs'), '--log', logDir, '--certs', certs, '--hosts', `${SERVER_V4},${SERVER_V6}`],
        client: [path.join(HARNESS_DIR, 'tls-client.mjs'), '--log', logDir, '--certs', certs, '--targets', `${SERVER_V4},${SERVER_V6}`],
        clientTimeoutMs: 30_000,
        serverDone: () => readLog(path.join(logDir, 'tls-server.ndjson')).length >= readLog(path.join(logDir, 'tls-client.ndjson')).length,
      }));
    } finally {
      teardownAll();
    }
    const logs = loadLogs(capture.logDir);
    conns = logs.conns;
    problems.push(...logs.problems);
    const pcap = capture.pcap;
    runs.set('capture', pcapflow('capture', pcap));
    hits = handshakeHits(pcap);
    hits.catch(() => undefined);
    const shuffled = path.join(work, 'shuffled.pcap');
    runs.set(
      'shuffled',
      execFileAsync('node', [path.join(HARNESS_DIR, 'shuffle.mjs'), pcap, shuffled, '--window', '8', '--seed', '1']).then(({ stdout }) => {
        derived += `shuffled: ${stdout.trim()}\n`;
        return pcapflow('shuffled (window 8)', shuffled);
      }),
    );
    for (const p of runs.values()) p.catch(() => undefined); // reported where awaited
  }, 60_000);

  afterAll(() => {
    teardownAll();
    const c = capture;
    console.log(
      [
        captureLine(`netns TLS: ${conns.length} connections logged`, c),
        derived.trim(),
        ...results.map(([r, k]) => `${r.name}: ${r.seconds.toFixed(1)} s, ${r.records.length} records; handshakes ${k.handshakes} (TLS 1.3 ${k.tls13}, 1.2 ${k.tls12}), alpn ${k.alpn}, sni ${k.sni}, resumed ${k.resumed}, server chains ${k.chains}, client chains ${k.clientChains}, refused ${k.refused}; problems ${k.problems.length}`),
        `total ${((Date.now() - t0) / 1000).toFixed(1)} s; files in ${process.env.PCAPFLOW_HARNESS_KEEP ? work : '(removed)'}`,
      ].join('\n'),
    );
    if (work !== '' && !process.env.PCAPFLOW_HARNESS_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('captures the handshakes: no namespace left, the endpoints agree, the capture is complete, loss shows', () => {
    expectSoundCapture(capture, problems);
    // 15 connections per address family, every case on both
    expect(conns.length).toBe(30);
    for (const ip of ['10.201.0.1', 'fd00:201::1']) expect(conns.filter((x) => x.client.client.ip === ip).length, ip).toBe(15);
    expect(conns.filter((x) => x.client.reused).length).toBe(6);
    expect(conns.filter((x) => x.client.error !== null).length).toBe(4);
  });

  it('loss and duplicates reached the handshakes themselves', async () => {
    const h = await hits!;
    derived += `handshake segments repeated or after a hole: ${h.segments}, in ${h.directions} connection directions\n`;
    expect(h.directions).toBeGreaterThan(0);
  }, 60_000);

  for (const name of ['capture', 'shuffled']) {
    it(`${name}: every record equals what both endpoints reported`, async () => {
      const pending = runs.get(name);
      if (pending === undefined) throw new Error('not run: the capture failed');
      const run = await pending;
      const k = check(run, conns);
      results.push([run, k]);
      expect(k.problems.slice(0, 30), `${k.problems.length} problems`).toEqual([]);
      expect(run.records.length).toBe(conns.length);
      // 26 handshakes (8 TLS 1.3, 18 TLS 1.2; 6 resumed, 6 with ALPN), 4 refused; certificates in 14 (2 with a client's)
      expect([k.handshakes, k.tls13, k.tls12, k.resumed, k.alpn, k.chains, k.clientChains, k.refused]).toEqual([26, 8, 18, 6, 6, 14, 2, 4]);
    }, 60_000);
  }
});
