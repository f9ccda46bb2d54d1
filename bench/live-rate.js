// bench/live-rate.js: live capture at rates (issue 18). Two network namespaces joined by a veth;
// the sender's egress is shaped with `tc qdisc add dev vA root tbf rate R burst 4mb latency
// 100ms` (or not at all: `max`); one connection sends MB megabytes of a known pattern; the capture
// runs in the receiver's namespace: `pcapflow live vB --sink files` with each backend (`--backend
// cap`: the row `pcapflow`; `--backend tcpdump`: `pcapflow-tcpdump`), `tcpflow -i vB` and `tcpdump
// -i vB -w F` (its stream then taken from F with `pcapflow read`), each filtered on the port,
// outputs on tmpfs, stopped with SIGINT 2 s after the transfer. Reports per tool and rate the
// sender's measured rate, the share of the stream kept (bytes equal to what was sent, at their
// stream offsets: pcapflow's files leave holes out, its connections.ndjson says where; tcpflow's
// fill them with NULs), and whether the stream is exact; then the highest rate each tool kept
// exactly. Needs root, ip, tc, a built cap, tcpflow and tcpdump; sends nothing outside the two
// namespaces it makes.
//
//   node bench/live-rate.js [--mb 1000] [--rates 1gbit,2gbit,3gbit,4gbit,max] [--tools pcapflow,pcapflow-tcpdump,tcpflow,tcpdump]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PCAPFLOW = path.join(path.dirname(HERE), 'bin', 'pcapflow.js');
const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const MBYTES = Number(flag('mb', '1000'));
const BYTES = MBYTES * 1_000_000;
const RATES = flag('rates', '1gbit,2gbit,3gbit,4gbit,max').split(',');
const TOOLS = flag('tools', 'pcapflow,pcapflow-tcpdump,tcpflow,tcpdump').split(',');
const PORT = 7777;
const OUT = '/dev/shm/pcapflow-live-rate';
const A = 'pflrA';
const B = 'pflrB';

const CHUNK = Buffer.alloc(1 << 20);
for (let i = 0; i < CHUNK.length; i++) CHUNK[i] = (i * 7 + (i >> 8)) & 0xff;

/**
 * senderScript: the source of a Node program that sends `bytes` of the pattern (byte i of each
 * MiB is (i * 7 + (i >> 8)) & 0xff) over one connection to host:port and prints the seconds the
 * transfer took; with `serve`, it first listens there itself and reads what it sends (one
 * namespace, loopback). test/live-rate.test.ts runs it too.
 */
export function senderScript(host, port, bytes, { serve = false } = {}) {
  return `
const net = require('net');
const chunk = Buffer.alloc(1 << 20);
for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + (i >> 8)) & 0xff;
const send = () => {
  const s = net.connect(${port}, '${host}', () => {
    const t0 = process.hrtime.bigint();
    let left = ${bytes};
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return s.once('drain', pump);
      }
      s.end();
    };
    s.on('close', () => console.log(Number(process.hrtime.bigint() - t0) / 1e9));
    pump();
  });
};
if (${serve}) {
  const srv = net.createServer((c) => { c.resume(); c.on('end', () => srv.close()); });
  srv.listen(${port}, '${host}', send);
} else send();
`;
}
const SENDER = senderScript('10.77.0.2', PORT, BYTES);
const RECEIVER = `
const net = require('net');
const srv = net.createServer((c) => { c.resume(); c.on('end', () => srv.close()); });
srv.listen(${PORT}, '10.77.0.2', () => console.log('ready'));
`;

/** ready: what this needs is here (a reason when not). */
export function liveRateReady() {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['ip', 'tc', 'tcpflow', 'tcpdump']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  try {
    execFileSync(process.execPath, ['-e', "require('cap')"], { cwd: path.dirname(HERE), stdio: 'ignore' });
  } catch {
    return 'needs a built cap package';
  }
  return null;
}

const sh = (cmd, a) => execFileSync(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function setUp(rate) {
  tearDown();
  sh('ip', ['netns', 'add', A]);
  sh('ip', ['netns', 'add', B]);
  sh('ip', ['link', 'add', 'pflrvA', 'type', 'veth', 'peer', 'name', 'pflrvB']);
  sh('ip', ['link', 'set', 'pflrvA', 'netns', A]);
  sh('ip', ['link', 'set', 'pflrvB', 'netns', B]);
  sh('ip', ['-n', A, 'addr', 'add', '10.77.0.1/24', 'dev', 'pflrvA']);
  sh('ip', ['-n', B, 'addr', 'add', '10.77.0.2/24', 'dev', 'pflrvB']);
  for (const [ns, dev] of [[A, 'pflrvA'], [B, 'pflrvB']]) {
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  if (rate !== 'max') sh('ip', ['netns', 'exec', A, 'tc', 'qdisc', 'add', 'dev', 'pflrvA', 'root', 'tbf', 'rate', rate, 'burst', '4mb', 'latency', '100ms']);
}

function tearDown() {
  for (const ns of [A, B]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** inNs spawns a command in namespace ns; resolves its stdout when it exits. */
function inNs(ns, cmd, a, { stdout = 'pipe' } = {}) {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...a], { stdio: ['ignore', stdout, 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
  return { child, done, out: () => out, err: () => err };
}

/** keptOf: bytes of `file` equal to the pattern at their stream offsets; `gaps` [offset, len] (pcapflow: left out of the file) or null (tcpflow: NUL-filled in it). */
function keptOf(file, gaps) {
  if (!existsSync(file)) return 0;
  const f = readFileSync(file);
  let kept = 0;
  // pieces of the file and the stream offset each starts at
  const pieces = [];
  if (gaps === null) pieces.push([0, 0, f.length]);
  else {
    let stream = 0;
    let at = 0;
    for (const [off, len] of gaps) {
      if (off > stream) {
        pieces.push([at, stream, off - stream]);
        at += off - stream;
      }
      stream = off + len;
    }
    pieces.push([at, stream, f.length - at]);
  }
  for (const [at, stream, len] of pieces) {
    for (let i = 0; i < len; ) {
      const o = stream + i;
      const p = o % CHUNK.length;
      const n = Math.min(len - i, CHUNK.length - p);
      const a = f.subarray(at + i, at + i + n);
      if (a.equals(CHUNK.subarray(p, p + n))) kept += n;
      else for (let j = 0; j < n; j++) if (a[j] === CHUNK[p + j]) kept++;
      i += n;
    }
  }
  return kept;
}

/** pcapflowKept: the client-to-server file of DIR (pcapflow's files) and its gaps from connections.ndjson. */
function pcapflowKept(dir) {
  const name = readdirSync(dir).find((f) => f.startsWith('010.077.000.001.') && !f.endsWith('.part'));
  if (name === undefined) return { kept: 0, exact: false };
  const rec = readFileSync(path.join(dir, 'connections.ndjson'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((r) => r.client?.ip === '10.77.0.1');
  const gaps = (rec?.c2s?.gapList ?? []).map((g) => [g.offset, g.len]);
  const kept = keptOf(path.join(dir, name), gaps);
  return { kept, exact: kept === BYTES && statSync(path.join(dir, name)).size === BYTES };
}

async function once(tool, rate) {
  setUp(rate);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const dir = path.join(OUT, 'files');
  mkdirSync(dir);
  const filter = `tcp port ${PORT}`;
  const capArgs = {
    pcapflow: [process.execPath, [PCAPFLOW, 'live', 'pflrvB', '--backend', 'cap', '--filter', filter, '--sink', 'files', '-o', dir, '--stats']],
    'pcapflow-tcpdump': [process.execPath, [PCAPFLOW, 'live', 'pflrvB', '--backend', 'tcpdump', '--filter', filter, '--sink', 'files', '-o', dir, '--stats']],
    tcpflow: ['tcpflow', ['-i', 'pflrvB', '-o', dir, filter]],
    tcpdump: ['tcpdump', ['-i', 'pflrvB', '-s', '0', '-B', String(256 * 1024), '-w', path.join(OUT, 'cap.pcap'), filter]],
  }[tool];
  const cap = inNs(B, capArgs[0], capArgs[1]);
  await sleep(1500);
  const recv = inNs(B, process.execPath, ['-e', RECEIVER]);
  while (!recv.out().includes('ready')) await sleep(20);
  const send = await inNs(A, process.execPath, ['-e', SENDER]).done;
  await recv.done;
  await sleep(2000);
  cap.child.kill('SIGINT');
  const capDone = await cap.done;
  const seconds = Number(send.out.trim());
  let result;
  if (tool === 'tcpdump') {
    execFileSync(process.execPath, [PCAPFLOW, 'read', path.join(OUT, 'cap.pcap'), '--sink', 'files', '-o', dir], { stdio: 'ignore' });
    result = pcapflowKept(dir);
  } else if (tool.startsWith('pcapflow')) result = pcapflowKept(dir);
  else {
    const name = readdirSync(dir).find((f) => f.startsWith('010.077.000.001.'));
    const kept = name === undefined ? 0 : keptOf(path.join(dir, name), null);
    result = { kept, exact: kept === BYTES && statSync(path.join(dir, name)).size === BYTES };
  }
  const dropped =
    tool === 'pcapflow-tcpdump'
      ? `kernel ${/capture\.kernelDropped\s+(\d+)/.exec(capDone.err)?.[1] ?? '?'}`
      : (/capture\.dropped\s+(\d+)/.exec(capDone.err)?.[1] ?? /(\d+) packets dropped by kernel/.exec(capDone.err)?.[1] ?? '');
  tearDown();
  rmSync(OUT, { recursive: true, force: true });
  return { gbits: (BYTES * 8) / seconds / 1e9, ...result, dropped };
}

/** run measures every tool at every rate and prints the table; returns the lines. */
export async function runLiveRate(log = console.log) {
  log(`## live: one ${MBYTES} MB transfer through a veth shaped with tbf, captured in the receiver's namespace (bench/live-rate.js)`);
  log('');
  log('| tool | tbf rate | sender Gbit/s | stream kept | exact | dropped (pcapflow: its queue; pcapflow-tcpdump, tcpdump: kernel) |');
  log('|---|---|---|---|---|---|');
  const best = {};
  for (const rate of RATES) {
    for (const tool of TOOLS) {
      const r = await once(tool, rate);
      log(`| ${tool} | ${rate} | ${r.gbits.toFixed(2)} | ${((r.kept / BYTES) * 100).toFixed(1)} % | ${r.exact ? 'yes' : 'no'} | ${r.dropped} |`);
      if (r.exact && (best[tool] === undefined || r.gbits > best[tool])) best[tool] = r.gbits;
    }
  }
  log('');
  log(`highest rate kept exactly: ${TOOLS.map((t) => `${t} ${best[t] === undefined ? 'none' : `${best[t].toFixed(2)} Gbit/s`}`).join(', ')}`);
  log('');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const why = liveRateReady();
  if (why !== null) {
    console.log(`live rate: skipped (${why})`);
  } else {
    await runLiveRate();
  }
}
