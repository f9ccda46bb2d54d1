// npm run bench: pcapflow's benchmark. It makes its captures itself (bench/synth.js, into
// bench/data/, reused when present), then runs each command of each scenario several times,
// alternating the commands run by run so that drift in machine speed hits them alike, and
// reports per command: wall seconds (median), MB/s of capture and packets/s (from that median),
// CPU seconds user + system (median), peak RSS (median and max over the runs), and two ratios to
// the scenario's reference: reference wall / command wall and reference CPU / command CPU (>= 1:
// the command is at least as fast, or uses at most as much CPU). Whole processes are measured with
// /usr/bin/time (%e %U %S %M). After the timed runs of a TCP scenario it checks that the files
// `pcapflow read --sink files` wrote equal tcpflow's, flow by flow (on the reordered capture:
// equal pcapflow's own on the capture in order, see below); where the capture's maker reports
// its flows (the short captures), the check also requires tcpflow to have written all of them.
//
//   npm run bench                      all scenarios, 5 runs each
//   npm run bench -- --quick           small captures (about a tenth), 3 runs: a fast check
//   npm run bench -- --runs 3 --only bulk   a scenario by its name (short: not short-2k), else all whose names contain it
//   npm run bench -- --no-node-pcap    skip node_pcap (otherwise installed into bench/node_pcap/ on first use)
//   npm run bench -- --only nats       the NATS part alone (issue 17); --no-nats skips it
//
// Scenarios: decode (floors: a plain Node read loop, read + decode, read + reassembly without a
// sink), bulk (one connection), many (200 parallel connections, interleaved; plus a row with
// --reorder-window 0, the cost of the reorder window on a capture in time order), small
// (interactive: small segments, an ACK for each), reordered (the many capture with its packets
// shuffled within windows of 64 by test/harness/shuffle.mjs, timestamps kept; made once next to
// it in bench/data/). tcpflow is not exact on reordered captures (other bytes, extra c1 files), so
// there pcapflow's files are checked against pcapflow's on the capture in order (one untimed run),
// and tcpflow's differences from pcapflow are printed as information. short (issue 14: 50 000
// short connections, 100 open at a time over 60 s, each a handshake, one request, a response of
// 1-20 KiB skewed small, FINs: about 205 MB, 100 000 flow files; --quick: 5 000 connections),
// short-2k (the same, 2 000 connections, 50 at a time over 5 s, about 8 MB; the same with
// --quick); both by synth.js's writeShortConns, files checked against tcpflow's. live (issue 18;
// not with --quick): bench/live-rate.js, the share of one transfer pcapflow live, tcpflow and
// tcpdump -w keep at tbf-shaped rates through a veth between two namespaces. http-small and
// http-large (issue 15): HTTP/1.1 keep-alive connections by synth.js's writeHttp (many small
// transactions; a few bodies of megabytes), `pcapflow http --extract` beside `tcpflow -e http`
// (the ratios' reference) and `tshark --export-objects http`; checked: every response body
// pcapflow extracted equals the one the synth wrote (sha256), and no body is missing. tls (issue
// 16): 50 000 short TLS connections (--quick: 5 000) by synth.js's writeTls, 100 open at a time
// over 60 s, each a TLS 1.3 or 1.2 handshake of one of four client profiles (Chrome with GREASE
// and a shuffled extension order, Firefox, curl, a TLS 1.2-only Java client; SNI and ALPN varied;
// TLS 1.2 with one or two DER certificates), then a few KB of application data, FINs; `pcapflow
// tls` beside `pcapflow read --sink ndjson` (the ratios' reference: target <= 1.2x its time) and
// `tshark -T fields -e tls.handshake.ja3` (target: >= 20x its speed); checked: every connection's
// record equals what the synth built (JA3 and JA3S strings, JA4, SNI, version, ALPN, certificate
// SHA-256s, complete), those computed by the synth from the values it put in. nats (issue 17;
// also with --only nats, not with --no-nats, skipped when nats-server is missing): on the bulk and
// many captures, `pcapflow read F --sink ndjson > FILE` (a file on this disk, the ratios'
// reference) beside `--sink nats` into one nats-server (stream replicas 1) and into a 3-node
// JetStream cluster on loopback (replicas 3), servers started here with their stores under
// bench/data/nats-* (removed afterwards); the stream is deleted before each run (the sink creates
// it afresh, a new run id each run, so the duplicate window makes no run free); checked after each
// run: the stream holds every message (the NDJSON's events, plus cut parts, plus the end message),
// none twice. Also reported: messages/s and the servers' CPU seconds (from /proc) per run.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveRateReady, runLiveRate } from './live-rate.js';
import { writeCapture, writeHttp, writeShortConns, writeTls } from './synth.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const DATA = path.join(HERE, 'data');
const OUT = path.join(DATA, 'out');
const PCAPFLOW = path.join(ROOT, 'bin', 'pcapflow.js');
const NODE_PCAP = path.join(HERE, 'node_pcap');
const SHUFFLE = path.join(ROOT, 'test', 'harness', 'shuffle.mjs');
const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const QUICK = args.includes('--quick');
const RUNS = Number(flag('runs', QUICK ? 3 : 5));
const ONLY = flag('only', '');
const WANT_NODE_PCAP = !args.includes('--no-node-pcap');
const WANT_NATS = !args.includes('--no-nats');
const MB = 1024 * 1024;
/** Capture sizes are scaled down by this with --quick. */
const SCALE = QUICK ? 0.1 : 1;

const have = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/** nodePcapReady installs node_pcap into bench/node_pcap/ on first use; false (with a note) when it cannot. */
function nodePcapReady() {
  if (!WANT_NODE_PCAP) return false;
  const binding = path.join(NODE_PCAP, 'node_modules', 'pcap', 'build', 'Release', 'pcap_binding.node');
  if (!existsSync(binding)) {
    process.stderr.write('bench: installing node_pcap (npm package pcap@3) into bench/node_pcap/ ...\n');
    const r = spawnSync('npm', ['install', '--prefix', NODE_PCAP, '--no-audit', '--no-fund'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status === 0 && !existsSync(binding)) spawnSync('npm', ['rebuild', '--prefix', NODE_PCAP, 'pcap'], { encoding: 'utf8' });
    if (!existsSync(binding)) {
      notes.push(`node_pcap skipped: it did not build (npm install --prefix bench/node_pcap: ${(r.stderr || '').trim().split('\n').pop()})`);
      return false;
    }
  }
  const probe = spawnSync('node', ['-e', `require(${JSON.stringify(path.join(NODE_PCAP, 'node_modules', 'pcap'))})`], { encoding: 'utf8' });
  if (probe.status !== 0) {
    notes.push(`node_pcap skipped: it does not load (${probe.stderr.trim().split('\n').pop()})`);
    return false;
  }
  return true;
}

const notes = [];
const tcpflowOk = have('tcpflow');
if (!tcpflowOk) notes.push('tcpflow not found: its rows, the ratios and the file check are skipped');
const nodePcapOk = ONLY === 'nats' ? false : nodePcapReady(); // the NATS part has no node_pcap row

const outDir = (name) => path.join(OUT, name);
const fresh = (dir) => () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
};

/**
 * The commands of a TCP scenario; tcpflow is the reference of the ratio. `files` names the output
 * directory (under OUT) of a command whose files the scenario's file check compares, `what` how
 * the check's line names it. reorderOff: a row with --reorder-window 0 (many only).
 */
function tcpCommands({ reorderOff = false } = {}) {
  const pf = outDir('pcapflow');
  const tf = outDir('tcpflow');
  const pool = outDir('pcapflow-pool');
  const noReorder = outDir('pcapflow-no-reorder');
  const workers = outDir('pcapflow-w2');
  return [
    { name: 'tcpflow -r F -o D', argv: (f) => ['tcpflow', '-r', f, '-o', tf], before: fresh(tf), ok: tcpflowOk, ref: true },
    { name: 'pcapflow read F --sink files -o D', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'files', '-o', pf], before: fresh(pf), ok: true, files: 'pcapflow', what: '' },
    { name: 'pcapflow read F --sink files -o D --reorder-window 0', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'files', '-o', noReorder, '--reorder-window', '0'], before: fresh(noReorder), ok: reorderOff, files: 'pcapflow-no-reorder', what: ' (--reorder-window 0)' },
    { name: 'pcapflow read F --sink files -o D --no-write-thread', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'files', '-o', pool, '--no-write-thread'], before: fresh(pool), ok: true, files: 'pcapflow-pool', what: ' (--no-write-thread)' },
    { name: 'pcapflow read F --sink files -o D --workers 2', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'files', '-o', workers, '--workers', '2'], before: fresh(workers), ok: true, files: 'pcapflow-w2', what: ' (--workers 2)', oneThread: 'pcapflow read F --sink files -o D' },
    { name: 'pcapflow read F --sink ndjson > /dev/null', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'ndjson'], ok: true },
    { name: 'pcapflow read F --sink ndjson --no-render-thread > /dev/null', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'ndjson', '--no-render-thread'], ok: true },
    { name: 'pcapflow read F --sink ndjson --workers 2 > /dev/null', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'ndjson', '--workers', '2'], ok: true, oneThread: 'pcapflow read F --sink ndjson > /dev/null' },
    { name: 'node_pcap TCPTracker', argv: (f) => ['node', path.join(HERE, 'node-pcap-tracker.js'), f], ok: nodePcapOk },
  ];
}

/**
 * Capture specs: `file`, its name in bench/data/ (it encodes the recipe, so a capture made once
 * is reused only by the same recipe) and `make(path)`, which writes it and resolves to the synth's
 * summary ({packets, bytes}, plus files: the expected flow files, for some); or, shuffled, `base`
 * (a spec) and `shuffle` ({window, seed} for test/harness/shuffle.mjs).
 */
const TAG = QUICK ? '-quick' : '';

/** flowCapture: writeCapture's recipe; --quick scales bytesPerConn. */
function flowCapture(name, { conns, bytesPerConn, mss, ackEvery = 2, interleave = 4 }) {
  const p = { conns, bytesPerConn: Math.round(bytesPerConn * SCALE), mss, ackEvery, interleave };
  return { file: `${name}${TAG}-${p.conns}x${p.bytesPerConn}-mss${p.mss}-ack${p.ackEvery}-i${p.interleave}.pcap`, make: (f) => writeCapture(f, p) };
}

/**
 * shortCapture: writeShortConns's recipe, every parameter passed (the defaults here are synth.js's
 * at the time of writing; the file name holds them all); --quick scales conns unless scale is false.
 */
function shortCapture(name, opts = {}, { scale = true } = {}) {
  const p = { conns: 50_000, concurrent: 100, seconds: 60, respMin: 1024, respMax: 20_480, ...opts };
  if (scale) p.conns = Math.max(1, Math.round(p.conns * SCALE));
  return { file: `${name}-${p.conns}c-p${p.concurrent}-${p.seconds}s-resp${p.respMin}-${p.respMax}.pcap`, make: (f) => writeShortConns(f, p) };
}

/** shuffledCapture: `base` with its packets shuffled within windows of `window` (shuffle.mjs). */
const shuffledCapture = (base, { window, seed }) => ({ file: base.file.replace(/\.pcap$/, `-shuffle-w${window}-s${seed}.pcap`), base, shuffle: { window, seed } });

/** The many capture: the many scenario's, and shuffled, the reordered scenario's. */
const MANY = flowCapture('many', { conns: 200, bytesPerConn: 2.5 * MB, mss: 1448, interleave: 4 });
const BULK = flowCapture('bulk', { conns: 1, bytesPerConn: 300 * MB, mss: 1448 });

/**
 * httpCapture: writeHttp's recipe, every parameter in the file name; the bodies it wrote (uri,
 * len, sha256) are kept next to the capture as FILE.bodies.json. --quick scales conns.
 */
function httpCapture(name, opts) {
  const p = { conns: 10_000, concurrent: 100, seconds: 60, trans: 4, bodyMin: 200, bodyMax: 8192, ...opts };
  p.conns = Math.max(1, Math.round(p.conns * SCALE));
  return { file: `${name}-${p.conns}c-p${p.concurrent}-${p.seconds}s-t${p.trans}-body${p.bodyMin}-${p.bodyMax}.pcap`, make: (f) => writeHttp(f, p) };
}

/** The commands of an HTTP scenario; tcpflow -e http is the reference of the ratio. */
function httpCommands() {
  const pf = outDir('pcapflow-http');
  const tf = outDir('tcpflow-http');
  const ts = outDir('tshark-http');
  const tsharkOk = have('tshark');
  if (!tsharkOk) notes.push('tshark not found: its http rows are skipped');
  return [
    { name: 'tcpflow -e http -r F -o D', argv: (f) => ['tcpflow', '-e', 'http', '-r', f, '-o', tf], before: fresh(tf), ok: tcpflowOk, ref: true },
    { name: 'tshark -r F -q --export-objects http,D', argv: (f) => ['tshark', '-r', f, '-q', '--export-objects', `http,${ts}`], before: fresh(ts), ok: tsharkOk, tshark: true },
    { name: 'pcapflow http F --extract D > /dev/null', argv: (f) => ['node', PCAPFLOW, 'http', f, '--extract', pf], before: fresh(pf), ok: true, extract: true },
    { name: 'pcapflow http F > /dev/null', argv: (f) => ['node', PCAPFLOW, 'http', f], ok: true },
  ];
}

/**
 * checkHttp runs `pcapflow http F --extract D` once more (untimed, its NDJSON kept) and checks
 * it against the bodies the synth wrote: every one found (by URI) with its sha256, length and
 * complete, each extracted file holding exactly those bytes. Returns the report line and ok.
 */
function checkHttp(file, bodiesFile) {
  const want = new Map(JSON.parse(readFileSync(bodiesFile, 'utf8')).map((b) => [b.uri, b]));
  const dir = outDir('pcapflow-http-check');
  fresh(dir)();
  const r = spawnSync('node', [PCAPFLOW, 'http', file, '--extract', dir], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const problems = [];
  if (r.status !== 0) problems.push(`exit ${r.status}: ${r.stderr.slice(-300)}`);
  let same = 0;
  let bytes = 0;
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line);
    if (rec.type !== 'http') {
      problems.push(`${rec.type} record: ${line.slice(0, 200)}`);
      continue;
    }
    const b = want.get(rec.request.uri);
    const res = rec.response;
    if (b === undefined || res === null) {
      problems.push(`unexpected ${rec.request.uri}${res === null ? ' without a response' : ''}`);
      continue;
    }
    want.delete(rec.request.uri);
    const f = res.file === undefined ? null : path.join(dir, res.file);
    const fileOk = f !== null && statSync(f).size === b.len && createHash('sha256').update(readFileSync(f)).digest('hex') === b.sha256;
    if (res.status !== 200 || !res.complete || res.bodyBytes !== b.len || res.sha256 !== b.sha256 || !fileOk) problems.push(`differs: ${rec.request.uri}`);
    else {
      same++;
      bytes += b.len;
    }
  }
  for (const uri of want.keys()) problems.push(`missing: ${uri}`);
  rmSync(dir, { recursive: true, force: true });
  return problems.length === 0
    ? { ok: true, line: `http check: OK, all ${same} response bodies pcapflow extracted equal the synth's (${(bytes / 1e6).toFixed(0)} MB, sha256 of record and file)` }
    : { ok: false, line: `http check: FAILED, ${problems.length} problems: ${problems.slice(0, 5).join('; ')}` };
}

/**
 * tlsCapture: writeTls's recipe, every parameter in the file name; the expected records (client,
 * fingerprints, SNI, ...) are kept next to the capture as FILE.expect.json. --quick scales conns.
 */
function tlsCapture(name, opts = {}) {
  const p = { conns: 50_000, concurrent: 100, seconds: 60, respMin: 1024, respMax: 16_384, tls13Share: 0.6, ...opts };
  p.conns = Math.max(1, Math.round(p.conns * SCALE));
  return { file: `${name}-${p.conns}c-p${p.concurrent}-${p.seconds}s-resp${p.respMin}-${p.respMax}-tls13x${p.tls13Share}.pcap`, make: (f) => writeTls(f, p) };
}

/** The commands of the tls scenario; `pcapflow read --sink ndjson` is the reference of the ratio. */
function tlsCommands() {
  const tsharkOk = have('tshark');
  if (!tsharkOk) notes.push('tshark not found: its tls row and ratio are skipped');
  return [
    { name: 'pcapflow read F --sink ndjson > /dev/null', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'ndjson'], ok: true, ref: true },
    { name: 'pcapflow tls F > /dev/null', argv: (f) => ['node', PCAPFLOW, 'tls', f], ok: true, tls: true },
    { name: 'tshark -r F -T fields -e tls.handshake.ja3 > /dev/null', argv: (f) => ['tshark', '-r', f, '-T', 'fields', '-e', 'tls.handshake.ja3'], ok: tsharkOk, tshark: true },
  ];
}

/**
 * checkTls runs `pcapflow tls F` once more (untimed) and checks its records against the synth's
 * expectations: one record per connection (keyed by the client's address and port), each
 * complete, with the JA3 and JA3S strings and hashes, JA4, SNI, selected version, the server's
 * ALPN and the SHA-256 of each certificate the synth built. Returns the report line and ok.
 */
function checkTls(file, expectFile) {
  const want = new Map(JSON.parse(readFileSync(expectFile, 'utf8')).map((e) => [e.client, e]));
  const total = want.size;
  const r = spawnSync('node', [PCAPFLOW, 'tls', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const problems = [];
  if (r.status !== 0) problems.push(`exit ${r.status}: ${r.stderr.slice(-300)}`);
  let same = 0;
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line);
    const key = `${rec.client.ip}:${rec.client.port}`;
    const e = want.get(key);
    if (e === undefined) {
      problems.push(`unexpected record for ${key}`);
      continue;
    }
    want.delete(key);
    const got = { complete: rec.complete, sni: rec.clientHello?.sni ?? null, ja3: rec.ja3, ja3Hash: rec.ja3Hash, ja4: rec.ja4, ja3s: rec.ja3s, ja3sHash: rec.ja3sHash, version: rec.serverHello?.version ?? null, alpn: rec.serverHello?.alpn ?? null, certs: rec.certificates.map((c) => c.sha256) };
    const exp = { complete: true, sni: e.sni, ja3: e.ja3, ja3Hash: e.ja3Hash, ja4: e.ja4, ja3s: e.ja3s, ja3sHash: e.ja3sHash, version: e.version, alpn: e.alpn, certs: e.certs };
    const diff = Object.keys(exp).filter((k) => JSON.stringify(got[k]) !== JSON.stringify(exp[k]));
    if (diff.length > 0) problems.push(`${key} (${e.profile}) differs in ${diff.join(', ')}`);
    else same++;
  }
  for (const key of want.keys()) problems.push(`missing: ${key}`);
  return problems.length === 0
    ? { ok: true, line: `tls check: OK, all ${same} of ${total} connections' records equal the synth's (JA3/JA3S strings and hashes, JA4, SNI, version, ALPN, certificate SHA-256s; complete)` }
    : { ok: false, line: `tls check: FAILED, ${problems.length} problems (${same} of ${total} equal): ${problems.slice(0, 5).join('; ')}` };
}

/** nats-server on PATH, or where Debian puts it (/usr/sbin, often not on a user's PATH); null when missing. */
const NATS_SERVER = have('nats-server') ? 'nats-server' : existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null;

/** freePorts: `count` distinct free loopback ports (held open together, then released). */
async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** serverCpu: the CPU seconds (user + system) the processes `pids` used so far, from /proc. */
function serverCpu(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  }
  return ticks / 100; // USER_HZ
}

/**
 * natsServers starts nats-server processes with JetStream on loopback: one node (`nodes` 1) or
 * a cluster of `nodes`, each with its store in bench/data/nats-NAME-I. Resolves to {urls, pids,
 * stop()} once a stream of `nodes` replicas can be created; stop() ends them and removes the stores.
 */
async function natsServers(name, nodes) {
  const ports = await freePorts(nodes * 2);
  const procs = [];
  const stores = [];
  const stop = async () => {
    await Promise.all(
      procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const d of stores) rmSync(d, { recursive: true, force: true });
  };
  const cluster = ports.slice(nodes);
  for (let i = 0; i < nodes; i++) {
    const store = path.join(DATA, `nats-${name}-${i}`);
    rmSync(store, { recursive: true, force: true });
    mkdirSync(store, { recursive: true });
    stores.push(store);
    const argv = ['-js', '-a', '127.0.0.1', '-p', String(ports[i]), '-sd', store, '--server_name', `${name}${i}`];
    if (nodes > 1) {
      const routes = cluster.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`);
      argv.push('--cluster_name', name, '--cluster', `nats://127.0.0.1:${cluster[i]}`, '--routes', routes.join(','));
    }
    const p = spawn(NATS_SERVER, argv, { stdio: 'ignore' });
    p.on('error', () => {});
    procs.push(p);
  }
  const urls = ports.slice(0, nodes).map((p) => `127.0.0.1:${p}`);
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      await withJsm(urls, async (jsm) => {
        await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'], num_replicas: nodes });
        await jsm.streams.delete('PROBE');
      });
      break;
    } catch (err) {
      if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) {
        await stop();
        throw new Error(`nats-server (${name}, ${nodes} nodes) did not come up: ${err.message}`, { cause: err });
      }
      await sleep(100);
    }
  }
  return { urls, pids: procs.map((p) => p.pid), stop };
}

/** withJsm runs `f` with a JetStream manager connected to `urls`. */
async function withJsm(urls, f) {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: urls, timeout: 2000 });
  try {
    return await f(await jetstreamManager(nc, { timeout: 5000 }));
  } finally {
    await nc.close();
  }
}

/** deleteStream: `stream` gone from the servers at `urls` (no error when it was not there). */
async function deleteStream(urls, stream) {
  await withJsm(urls, async (jsm) => {
    try {
      await jsm.streams.delete(stream);
    } catch (err) {
      if (err.name !== 'StreamNotFoundError') throw err;
    }
  });
}

/** countLines: the newlines in `file`. */
function countLines(file) {
  const fd = openSync(file, 'r');
  let n = 0;
  for (;;) {
    const got = readSync(fd, hashBuf, 0, hashBuf.length, null);
    if (got === 0) break;
    for (let i = hashBuf.indexOf(10, 0); i >= 0 && i < got; i = hashBuf.indexOf(10, i + 1)) n++;
  }
  closeSync(fd);
  return n;
}

/** statOf: a `--stats` counter from pcapflow's stderr (NaN when missing). */
const statOf = (stderr, name) => Number(new RegExp(`^${name.replace('.', '\\.')}\\s+(\\d+)`, 'm').exec(stderr)?.[1]);

/**
 * runNats: the NATS part (see the head of this file). For each capture, the commands alternate
 * run by run after one warm-up run of the NDJSON command; each NATS run is checked against the stream, and the
 * single-node target of issue 17 (bulk: at least half the NDJSON-to-file throughput, peak RSS at
 * most 150 MB) is reported as met or missed (information: the exit status does not depend on it).
 */
async function runNats() {
  if (NATS_SERVER === null) {
    console.log('## nats: skipped (nats-server not found on PATH or in /usr/sbin)\n');
    return;
  }
  const version = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' }).stdout.trim();
  let single = null;
  let cluster = null;
  try {
    single = await natsServers('single', 1);
    cluster = await natsServers('cluster', 3);
    const STREAM = 'BENCH';
    const ndjsonFile = path.join(OUT, 'nats-ndjson.ndjson');
    let runNo = 0;
    const natsCommand = (name, servers, replicas) => ({
      name,
      servers,
      argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'nats', '--nats-url', servers.urls.join(','), '--nats-replicas', String(replicas), '--nats-stream', STREAM, '--nats-subject-prefix', 'bench', '--run-id', `bench-${process.pid}-${++runNo}`, '--stats'],
    });
    const commands = [
      { name: 'pcapflow read F --sink ndjson > FILE', argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'ndjson'], stdout: ndjsonFile, ref: true },
      natsCommand('pcapflow read F --sink nats (1 node, replicas 1)', single, 1),
      natsCommand('pcapflow read F --sink nats (3-node cluster, replicas 3)', cluster, 3),
    ];
    console.log(`## nats: --sink nats into JetStream (issue 17), ${version}; stores and NDJSON file on ${DATA}`);
    console.log('one node: nats-server -js (file store); cluster: 3 nodes, routes on loopback; a fresh stream BENCH per run (deleted before it, created by the sink with the replicas given), a new --run-id each run');
    console.log('');
    let targetMet = null;
    for (const [label, spec] of [
      ['bulk', BULK],
      ['many', MANY],
    ]) {
      const { file } = await ensureCapture(spec);
      const size = statSync(file).size;
      let events = null;
      const results = commands.map(() => []);
      const once = async (c) => {
        if (c.servers) await deleteStream(c.servers.urls, STREAM);
        mkdirSync(OUT, { recursive: true });
        const cpu0 = c.servers ? serverCpu(c.servers.pids) : 0;
        const r = timeOnce(c, file);
        if (c.servers) {
          r.serverCpu = serverCpu(c.servers.pids) - cpu0;
          r.messages = statOf(r.stderr, 'sink.acked');
          const cut = statOf(r.stderr, 'sink.cut');
          const sent = statOf(r.stderr, 'sink.events');
          const dup = statOf(r.stderr, 'sink.duplicates');
          const info = await withJsm(c.servers.urls, (jsm) => jsm.streams.info(STREAM));
          // layout 2 packs adjacent data events: at most one message per event (and cut part), plus the end
          const most = events === null ? NaN : events + cut + 1;
          r.ok = info.state.messages === r.messages && r.messages >= 1 && r.messages <= most && sent === events && dup === 0 && info.config.num_replicas === c.servers.urls.length;
          if (!r.ok) r.problem = `stream ${info.state.messages} messages (replicas ${info.config.num_replicas}), sink acked ${r.messages} (${dup} duplicates) of ${sent} events, expected the stream to hold every acked message, at most ${most} (${events} events + ${cut} cut parts + the end)`;
          await deleteStream(c.servers.urls, STREAM);
        } else {
          const lines = countLines(c.stdout);
          if (events !== null && lines !== events) throw new Error(`the NDJSON of ${label} has ${lines} lines, before ${events}`);
          events = lines;
          r.messages = lines;
          rmSync(c.stdout, { force: true });
        }
        return r;
      };
      await once(commands[0]); // warm-up (the page cache), untimed; it counts the events
      for (let r = 0; r < RUNS; r++) for (const [i, c] of commands.entries()) results[i].push(await once(c));
      console.log(`### nats, ${label}: ${path.basename(file)}, ${(size / 1e6).toFixed(0)} MB, ${events} events`);
      console.log('');
      console.log('| command | wall s (median) | MB/s | messages/s | CPU s user+sys (median) | peak RSS MB (median) | peak RSS MB (max) | servers\' CPU s (median) | ratio to NDJSON to file (throughput) |');
      console.log('|---|---|---|---|---|---|---|---|---|');
      const med = (i, key) => median(results[i].map((x) => x[key]));
      commands.forEach((c, i) => {
        const wall = med(i, 'wall');
        const rssMax = Math.max(...results[i].map((x) => x.rssMb));
        const ratio = c.ref ? '1.00 (ref)' : (med(0, 'wall') / wall).toFixed(2);
        const srv = c.servers ? med(i, 'serverCpu').toFixed(2) : '-';
        const rate = c.servers ? `${(med(i, 'messages') / wall / 1000).toFixed(1)} k` : `${(events / wall / 1000).toFixed(1)} k (events)`;
        console.log(`| ${c.name} | ${wall.toFixed(2)} | ${(size / 1e6 / wall).toFixed(0)} | ${rate} | ${med(i, 'cpu').toFixed(2)} | ${med(i, 'rssMb').toFixed(0)} | ${rssMax.toFixed(0)} | ${srv} | ${ratio} |`);
      });
      console.log('');
      for (const [i, c] of commands.entries()) {
        if (!c.servers) continue;
        const bad = results[i].filter((x) => !x.ok);
        console.log(bad.length === 0 ? `stream check (${c.name}): OK, every run's stream held all ${results[i][0].messages} messages, none twice` : `stream check (${c.name}): FAILED in ${bad.length} of ${results[i].length} runs: ${bad[0].problem}`);
        checks.push(bad.length === 0);
      }
      if (label === 'bulk') {
        const ratio = med(0, 'wall') / med(1, 'wall');
        const rss = Math.max(...results[1].map((x) => x.rssMb));
        targetMet = ratio >= 0.5 && rss <= 150;
        console.log(`target (issue 17, one node, bulk): throughput >= 0.5 of NDJSON to file and peak RSS <= 150 MB: ${targetMet ? 'met' : 'MISSED'} (${ratio.toFixed(2)}, ${rss.toFixed(0)} MB)`);
      }
      console.log('');
    }
  } finally {
    await single?.stop();
    await cluster?.stop();
    rmSync(OUT, { recursive: true, force: true });
  }
}

/**
 * Scenarios: a capture recipe and the commands to compare; `ref` marks the ratio's reference.
 * checkFiles: 'tcpflow' (the files equal tcpflow's) or 'unshuffled' (the files equal pcapflow's
 * on the capture before shuffle.mjs; tcpflow's differences printed as information).
 */
const SCENARIOS = [
  {
    name: 'decode',
    what: 'floors, bulk capture: a plain Node read loop; read + decode down to TCP; read + decode + demux + reassembly with the events discarded (what `pcapflow read` does before any sink)',
    capture: BULK,
    commands: [
      { name: 'node read loop (floor)', argv: (f) => ['node', path.join(HERE, 'read-loop.js'), f], ok: true, ref: true },
      { name: 'pcapflow read+decode (library)', argv: (f) => ['node', path.join(HERE, 'decode.js'), f], ok: true },
      { name: 'pcapflow read+decode+reassembly, no sink (library)', argv: (f) => ['node', path.join(HERE, 'decode.js'), f, 'reassemble'], ok: true },
    ],
  },
  {
    name: 'bulk',
    what: 'one connection, MTU-size segments, an ACK every 2',
    capture: BULK,
    commands: tcpCommands(),
    checkFiles: 'tcpflow',
  },
  {
    name: 'many',
    what: '200 parallel connections, interleaved 4 segments at a time; --reorder-window 0: the reorder window (default 1024) off, its cost on a capture in time order',
    capture: MANY,
    commands: tcpCommands({ reorderOff: true }),
    checkFiles: 'tcpflow',
  },
  {
    name: 'small',
    what: 'interactive: 20 connections, 200-byte segments, an ACK for each',
    capture: flowCapture('small', { conns: 20, bytesPerConn: 4_000_000, mss: 200, ackEvery: 1, interleave: 1 }),
    commands: tcpCommands(),
    checkFiles: 'tcpflow',
  },
  {
    name: 'reordered',
    what: 'the many capture with its packets shuffled within windows of 64 (test/harness/shuffle.mjs, timestamps kept): pcapflow puts them back in order (--reorder-window, default 1024)',
    capture: shuffledCapture(MANY, { window: 64, seed: 1 }),
    commands: tcpCommands(),
    checkFiles: 'unshuffled',
  },
  {
    name: 'short',
    what: 'short connections (issue 14): 50 000 (--quick: 5 000), 100 open at a time over 60 s, each a handshake, one request of 100-600 bytes, a response of 1-20 KiB skewed small (median 1.2 KiB), FINs: two flow files each',
    capture: shortCapture('short'),
    commands: tcpCommands(),
    checkFiles: 'tcpflow',
  },
  {
    name: 'short-2k',
    what: 'short connections as in short, 2 000 of them, 50 open at a time over 5 s (also with --quick)',
    capture: shortCapture('short', { conns: 2000, concurrent: 50, seconds: 5 }, { scale: false }),
    commands: tcpCommands(),
    checkFiles: 'tcpflow',
  },
  {
    name: 'http-small',
    what: 'HTTP/1.1 (issue 15): 10 000 keep-alive connections (--quick: 1 000), 100 open at a time over 60 s, 4 GETs each answered 200 with a Content-Length body of 200 B-8 KiB skewed small',
    capture: httpCapture('http-small', {}),
    commands: httpCommands(),
    checkHttp: true,
  },
  {
    name: 'http-large',
    what: 'HTTP/1.1 (issue 15): 16 connections (--quick: 2), 4 open at a time over 20 s, 2 GETs each answered with a body of 2-16 MiB',
    capture: httpCapture('http-large', { conns: 16, concurrent: 4, seconds: 20, trans: 2, bodyMin: 2 * MB, bodyMax: 16 * MB }),
    commands: httpCommands(),
    checkHttp: true,
  },
  {
    name: 'tls',
    what: 'TLS (issue 16): 50 000 short connections (--quick: 5 000), 100 open at a time over 60 s, each a TLS 1.3 (60% of those offering it) or 1.2 handshake of one of four client profiles (Chrome with GREASE and shuffled extensions, Firefox, curl, TLS 1.2-only Java; SNI and ALPN varied; 1.2: one or two certificates), an encrypted request and a response of 1-16 KiB skewed small, FINs',
    capture: tlsCapture('tls'),
    commands: tlsCommands(),
    checkTls: true,
  },
];

/**
 * ensureCapture makes the scenario's capture (a spec, above) in bench/data/ unless it is there;
 * resolves to {file, flows (the number of flow files the capture holds, when its maker lists
 * them: kept next to the capture as FILE.json; else undefined)} or, for a shuffled one, {file,
 * base (the capture in order), shuffled (shuffle.mjs's JSON summary, kept as FILE.json)}.
 */
async function ensureCapture(spec) {
  mkdirSync(DATA, { recursive: true });
  const file = path.join(DATA, spec.file);
  if (spec.shuffle) {
    const { shuffle } = spec;
    const { file: base } = await ensureCapture(spec.base);
    if (!existsSync(file) || !existsSync(`${file}.json`)) {
      process.stderr.write(`bench: writing ${file} (shuffle.mjs) ...\n`);
      const summary = execFileSync('node', [SHUFFLE, base, `${file}.tmp`, '--window', String(shuffle.window), '--seed', String(shuffle.seed)], { encoding: 'utf8' }).trim();
      writeFileSync(`${file}.json`, `${summary}\n`);
      execFileSync('mv', [`${file}.tmp`, file]);
    }
    return { file, base, shuffled: JSON.parse(readFileSync(`${file}.json`, 'utf8')) };
  }
  const summary = `${file}.json`;
  if (!existsSync(file)) {
    process.stderr.write(`bench: writing ${file} ...\n`);
    const made = await spec.make(`${file}.tmp`);
    rmSync(summary, { force: true });
    if (made?.files) writeFileSync(summary, `${JSON.stringify({ packets: made.packets, bytes: made.bytes, flows: made.files.length })}\n`);
    if (made?.bodies) writeFileSync(`${file}.bodies.json`, `${JSON.stringify(made.bodies)}\n`);
    if (made?.expect) writeFileSync(`${file}.expect.json`, `${JSON.stringify(made.expect)}\n`);
    execFileSync('mv', [`${file}.tmp`, file]);
  }
  return { file, flows: existsSync(summary) ? JSON.parse(readFileSync(summary, 'utf8')).flows : undefined };
}

/**
 * timeOnce runs command `c` on `file` under /usr/bin/time: {wall, cpu, rssMb, stderr (the
 * command's, without time's line)}. Its stdout goes to /dev/null, or to the file c.stdout names.
 */
function timeOnce(c, file) {
  c.before?.();
  const devnull = openSync(c.stdout ?? '/dev/null', 'w');
  try {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', ...c.argv(file)], { encoding: 'utf8', stdio: ['ignore', devnull, 'pipe'], maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${c.argv(file).join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
    const last = r.stderr.trim().split('\n').pop() ?? '';
    const [wall, user, sys, rssKb] = last.split(' ').map(Number);
    if (![wall, user, sys, rssKb].every(Number.isFinite)) throw new Error(`${c.argv(file).join(' ')}: /usr/bin/time printed no figures: ${last}`);
    return { wall, cpu: user + sys, rssMb: rssKb / 1024, stderr: r.stderr.slice(0, r.stderr.length - last.length) };
  } finally {
    closeSync(devnull);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** countPackets: the records of a classic pcap (walks the record headers). */
function countPackets(file) {
  const fd = openSync(file, 'r');
  const hdr = Buffer.alloc(16);
  const size = statSync(file).size;
  let pos = 24;
  let n = 0;
  readSync(fd, hdr, 0, 4, 0);
  const le = hdr.readUInt32LE(0) === 0xa1b2c3d4 || hdr.readUInt32LE(0) === 0xa1b23c4d;
  while (pos + 16 <= size) {
    readSync(fd, hdr, 0, 16, pos);
    pos += 16 + (le ? hdr.readUInt32LE(8) : hdr.readUInt32BE(8));
    n++;
  }
  closeSync(fd);
  return n;
}

/** hashFile's read buffer, shared: a fresh 4 MiB per file cost 26 s per 100 000 small files. */
const hashBuf = Buffer.allocUnsafe(4 * MB);

function hashFile(file) {
  const h = createHash('sha1');
  const fd = openSync(file, 'r');
  const buf = hashBuf;
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
  }
  closeSync(fd);
  return h.digest('hex');
}

/** Not flow files: pcapflow's connections.ndjson, tcpflow's report.xml and alerts.txt. */
const NOT_FLOWS = ['connections.ndjson', 'report.xml', 'alerts.txt'];

/**
 * compareFiles: the flow files in outDir(name) against those in outDir(ref), same names and same
 * bytes (tcpflow's by default). missing: in ref only; extra: in name only; differs: contents.
 */
function compareFiles(name, ref = 'tcpflow') {
  const flowFiles = (dir) => readdirSync(dir).filter((f) => !NOT_FLOWS.includes(f) && !f.endsWith('.part')).sort();
  const pf = flowFiles(outDir(name));
  const tf = flowFiles(outDir(ref));
  const pfSet = new Set(pf);
  const tfSet = new Set(tf);
  const missing = tf.filter((f) => !pfSet.has(f));
  const extra = pf.filter((f) => !tfSet.has(f));
  const differs = [];
  let same = 0;
  let bytes = 0;
  for (const f of pf) {
    if (!tfSet.has(f)) continue;
    const a = path.join(outDir(name), f);
    const b = path.join(outDir(ref), f);
    const sa = statSync(a).size;
    if (sa !== statSync(b).size || hashFile(a) !== hashFile(b)) differs.push(f);
    else {
      same++;
      bytes += sa;
    }
  }
  const problems = [...missing.map((f) => `missing in ${name}: ${f}`), ...extra.map((f) => `not in ${ref}: ${f}`), ...differs.map((f) => `differs: ${f}`)];
  return { ok: problems.length === 0, same, total: tf.length, bytes, problems, missing, extra, differs };
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${process.platform} ${process.arch}, Node ${process.version}`;
const tcpflowVersion = tcpflowOk ? spawnSync('tcpflow', ['-V'], { encoding: 'utf8' }).stdout.trim() : 'none';
console.log(`machine: ${machine}; ${tcpflowVersion}${nodePcapOk ? '; node_pcap (pcap) 3.x' : ''}`);
console.log(`runs per command: ${RUNS} (medians; commands alternate run by run; captures read from the page cache after a warm-up run)`);
console.log(`command: npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`);
console.log('ratio wall = reference wall time / command wall time: >= 1.0 means the command is at least as fast as the reference (tcpflow; the read loop for decode; read --sink ndjson for tls)');
console.log('ratio CPU = reference CPU s / command CPU s (user + system, all threads): >= 1.0 means the command uses at most the reference\'s CPU time\n');

const checks = [];
for (const sc of SCENARIOS) {
  if (ONLY && !(SCENARIOS.some((x) => x.name === ONLY) ? sc.name === ONLY : sc.name.includes(ONLY))) continue;
  const { file, base, shuffled, flows } = await ensureCapture(sc.capture);
  const size = statSync(file).size;
  const packets = countPackets(file);
  const commands = sc.commands.filter((c) => c.ok);
  const results = commands.map(() => []);
  for (const c of commands) timeOnce(c, file); // warm-up (page cache, JIT)
  for (let r = 0; r < RUNS; r++) {
    commands.forEach((c, i) => results[i].push(timeOnce(c, file)));
  }
  console.log(`## ${sc.name}: ${sc.what}`);
  console.log(`capture: ${path.basename(file)}, ${(size / 1e6).toFixed(0)} MB, ${packets} packets`);
  if (shuffled) {
    const sh = `node test/harness/shuffle.mjs ${path.basename(base)} F --window ${shuffled.window} --seed ${shuffled.seed}`;
    console.log(`made by: ${sh} (mode ${shuffled.mode}): ${shuffled.moved} of ${shuffled.records} packets moved, at most ${shuffled.maxDisplacement} places`);
  }
  console.log('');
  console.log('| command | wall s (median) | MB/s | packets/s | CPU s user+sys (median) | peak RSS MB (median) | peak RSS MB (max) | ratio wall (ref / this) | ratio CPU (ref / this) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const refIndex = commands.findIndex((c) => c.ref);
  const med = (i, key) => median(results[i].map((x) => x[key]));
  const ratio = (i, key) => (refIndex < 0 ? 'n/a' : i === refIndex ? '1.00 (ref)' : (med(refIndex, key) / med(i, key)).toFixed(2));
  commands.forEach((c, i) => {
    const wall = med(i, 'wall');
    const rssMax = Math.max(...results[i].map((x) => x.rssMb));
    console.log(
      `| ${c.name} | ${wall.toFixed(2)} | ${(size / 1e6 / wall).toFixed(0)} | ${(packets / wall / 1e6).toFixed(2)} M | ${med(i, 'cpu').toFixed(2)} | ${med(i, 'rssMb').toFixed(0)} | ${rssMax.toFixed(0)} | ${ratio(i, 'wall')} | ${ratio(i, 'cpu')} |`,
    );
  });
  console.log('');
  // --workers against one thread (the same command without it), and its connections.ndjson
  for (const [i, c] of commands.entries()) {
    const j = commands.findIndex((o) => o.name === c.oneThread);
    if (j < 0) continue;
    console.log(`${c.name} against one thread: wall ${(med(j, 'wall') / med(i, 'wall')).toFixed(2)}, CPU ${(med(j, 'cpu') / med(i, 'cpu')).toFixed(2)} (one thread's / this; >= 1.0: faster, less CPU)`);
    if (c.files) {
      const same = readFileSync(path.join(outDir(c.files), 'connections.ndjson')).equals(readFileSync(path.join(outDir(commands[j].files), 'connections.ndjson')));
      console.log(`connections.ndjson check${c.what}: ${same ? 'OK, byte-identical to one thread\'s' : 'FAILED, differs from one thread\'s'}`);
      checks.push(same);
    }
  }
  console.log('');
  if (sc.checkHttp) {
    const tshark = commands.findIndex((c) => c.tshark);
    const extract = commands.findIndex((c) => c.extract);
    if (tshark >= 0) {
      const t = median(results[tshark].map((x) => x.wall)) / median(results[extract].map((x) => x.wall));
      console.log(`pcapflow http --extract against tshark --export-objects http: ${t.toFixed(1)}x its speed (wall, medians)`);
    }
    const c = checkHttp(file, `${file}.bodies.json`);
    console.log(c.line);
    checks.push(c.ok);
    console.log('');
  }
  if (sc.checkTls) {
    const ref = commands.findIndex((c) => c.ref);
    const tls = commands.findIndex((c) => c.tls);
    const tshark = commands.findIndex((c) => c.tshark);
    const wall = (i) => median(results[i].map((x) => x.wall));
    console.log(`pcapflow tls against read --sink ndjson: ${(wall(tls) / wall(ref)).toFixed(2)}x its time (target <= 1.2; wall, medians)`);
    if (tshark >= 0) console.log(`pcapflow tls against tshark ja3: ${(wall(tshark) / wall(tls)).toFixed(1)}x its speed (target >= 20; wall, medians)`);
    const c = checkTls(file, `${file}.expect.json`);
    console.log(c.line);
    checks.push(c.ok);
    console.log('');
  }
  const filesCommands = commands.filter((c) => c.files);
  if (sc.checkFiles === 'tcpflow' && tcpflowOk) {
    for (const { files, what } of filesCommands) {
      const c = compareFiles(files);
      // tcpflow must have written every flow the capture holds, or the check would pass on a part
      if (flows !== undefined && c.total !== flows) {
        c.problems.unshift(`tcpflow wrote ${c.total} flow files, the capture holds ${flows}`);
        c.ok = false;
      }
      const line = c.ok
        ? `files check (${sc.name})${what}: OK, pcapflow's ${c.same} flow files equal tcpflow's (${(c.bytes / 1e6).toFixed(0)} MB${flows !== undefined ? `; all ${flows} flows of the capture` : ''})`
        : `files check (${sc.name})${what}: FAILED, ${c.problems.length} problems: ${c.problems.slice(0, 5).join('; ')}`;
      console.log(`${line}`);
      checks.push(c.ok);
    }
    console.log('');
  }
  if (sc.checkFiles === 'unshuffled') {
    // the reference: pcapflow's files on the capture in order (one untimed run)
    const ref = 'pcapflow-in-order';
    timeOnce({ argv: (f) => ['node', PCAPFLOW, 'read', f, '--sink', 'files', '-o', outDir(ref)], before: fresh(outDir(ref)) }, base);
    for (const { files, what } of filesCommands) {
      const c = compareFiles(files, ref);
      const line = c.ok
        ? `files check (${sc.name})${what}: OK, pcapflow's ${c.same} flow files equal its own on ${path.basename(base)} (${(c.bytes / 1e6).toFixed(0)} MB)`
        : `files check (${sc.name})${what}: FAILED against pcapflow on ${path.basename(base)}, ${c.problems.length} problems: ${c.problems.slice(0, 5).join('; ')}`;
      console.log(`${line}`);
      checks.push(c.ok);
    }
    // information: connections.ndjson (its times and order may differ), and the window's counters
    const conns = (dir) => readFileSync(path.join(outDir(dir), 'connections.ndjson'), 'utf8');
    const [cs, cr] = [conns('pcapflow'), conns(ref)];
    const lines = (t) => t.split('\n').filter(Boolean).length;
    console.log(`connections.ndjson (information): ${cs === cr ? `identical to the one on ${path.basename(base)}` : `${lines(cs)} records against ${lines(cr)}, not byte-identical`}`);
    const st = spawnSync('node', [PCAPFLOW, 'read', file, '--sink', 'ndjson', '--stats'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    const reorder = [...st.stderr.matchAll(/^reorder\.(\w+)\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    console.log(`pcapflow --stats (reorder window, default settings): ${reorder.length ? reorder.join(', ') : `none printed (exit ${st.status})`}`);
    if (tcpflowOk) {
      // information only: tcpflow is not exact on reordered captures
      const t = compareFiles('tcpflow', 'pcapflow');
      const n = t.missing.length + t.extra.length + t.differs.length;
      console.log(
        `tcpflow on this capture (information, not a check): ${n} of its ${t.same + t.extra.length + t.differs.length} flow files differ from pcapflow's ${t.total}` +
          ` (${t.extra.length} not in pcapflow${t.extra.length ? `, e.g. ${t.extra[0]}` : ''}; ${t.differs.length} with other bytes; ${t.missing.length} of pcapflow's missing)`,
      );
    }
    console.log('');
  }
  rmSync(OUT, { recursive: true, force: true });
}
if ((ONLY === '' || ONLY === 'nats') && WANT_NATS) await runNats();
// live capture at rates (issue 18): the full bench and --only live; needs root, cap, tcpflow, tcpdump
if ((ONLY === '' && !QUICK) || ONLY === 'live') {
  const why = liveRateReady();
  if (why === null) await runLiveRate();
  else console.log(`## live: skipped (${why})\n`);
}
for (const n of notes) console.log(`note: ${n}`);
if (checks.includes(false)) process.exitCode = 1;
