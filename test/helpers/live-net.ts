/**
 * Helpers of the live-capture tests: a private network namespace (its own loopback, nothing
 * routed anywhere), `pcapflow live` run inside it as a child process, and a traffic program with
 * known bytes. Live tests need root, `ip`, tcpdump and a built cap: without them they are skipped, except
 * under CI as root, where a missing piece is a failure.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, hasTool } from './env.js';

export const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');

/** liveReady: can live tests run here? Skips (false) with a message, or throws under CI as root. */
export function liveReady(): boolean {
  const root = process.getuid?.() === 0;
  const missing: string[] = [];
  if (!root) missing.push('root');
  if (!hasTool('ip')) missing.push('the ip tool (iproute2)');
  if (!hasTool('tcpdump')) missing.push('tcpdump (the other live backend)');
  try {
    createRequire(import.meta.url)('cap');
  } catch (err) {
    missing.push(`a built cap package (${(err as Error).message.split('\n')[0]})`);
  }
  if (missing.length === 0) return true;
  if (process.env.CI && root) throw new Error(`live capture tests run under CI as root, but this is missing: ${missing.join(', ')}`);
  console.warn(`skipping live capture tests: they need ${missing.join(', ')}`);
  return false;
}

/** ensureBuilt builds dist/ when the live command is not in it. */
export function ensureBuilt(): void {
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/live-command.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
}

let nsCount = 0;

/** Netns: a network namespace with only its loopback up (MTU 9000: frames stay under libpcap's 65535). */
export class Netns {
  readonly name: string;

  constructor() {
    this.name = `pfl-${process.pid}-${nsCount++}`;
    execFileSync('ip', ['netns', 'add', this.name]);
    try {
      execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'mtu', '9000']);
      execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  /** spawn runs a command inside the namespace (`ip netns exec` execs it: the pid is the command's). */
  spawn(cmd: string, args: string[], options: { stdout?: 'pipe' | 'ignore' } = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'] });
  }

  /** remove ends what still runs inside (by pid) and deletes the namespace. */
  remove(): void {
    try {
      const pids = execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // no such namespace
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

/** A running `pcapflow live`. */
export interface LiveRun {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  /** Resolves with the exit code (or 128 + signal). */
  exited: Promise<number>;
}

/** startLive runs `pcapflow live ARGS` in `ns` and resolves once it says it is listening. */
export async function startLive(ns: Netns, args: string[], options: { stdout?: 'pipe' | 'ignore' } = {}): Promise<LiveRun> {
  const child = ns.spawn(process.execPath, [BIN, 'live', ...args], options);
  let err = '';
  let out = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 2)));
  });
  const deadline = Date.now() + 20_000;
  while (!err.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pcapflow live did not start: ${err}`);
    }
    await sleep(50);
  }
  return { child, stderr: () => err, stdout: () => out, exited };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Memory of a process from /proc/PID/status, in KiB: the whole resident set, and its anonymous part (heap, buffers). */
export interface MemSample {
  rss: number;
  anon: number;
}

/** memKiB: VmRSS and RssAnon of `pid`, or null when it is gone. */
export function memKiB(pid: number): MemSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    const anon = /RssAnon:\s+(\d+)\s+kB/.exec(status);
    return rss === null || anon === null ? null : { rss: Number(rss[1]), anon: Number(anon[1]) };
  } catch {
    return null;
  }
}

/** statValue: one counter of `--stats` output (`stage.counter  value`). */
export function statValue(stderr: string, key: string): number {
  const m = new RegExp(`^${key.replace(/\./g, '\\.')}\\s+(\\d+)$`, 'm').exec(stderr);
  if (m === null) throw new Error(`no ${key} in the stats:\n${stderr}`);
  return Number(m[1]);
}

/**
 * TRAFFIC is a Node program run inside the namespace: `node traffic.mjs CONFIG_JSON`.
 * Config: { port, outDir, conns: [{ c2s, s2c, chunk, holdMs }], paceMs }.
 * For each connection a client connects to the server on 127.0.0.1:port and both sides write
 * their bytes (deterministic pseudo-random, seeded by connection and direction) in `chunk`-byte
 * writes, `paceMs` apart (0: as fast as TCP takes them), then half-close; `holdMs` > 0 makes the
 * client wait that long after its last write before it ends (an idle connection). Every byte each
 * side wrote is saved in outDir/N.c2s and outDir/N.s2c; the program prints one JSON line per
 * connection ({ n, cport, c2s, s2c }) when it is done, then `done`.
 */
const TRAFFIC = String.raw`
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
const cfg = JSON.parse(process.argv[2]);
function bytes(seed, n) {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; }
  return b;
}
function send(sock, data, chunk, paceMs, done) {
  let off = 0;
  const step = () => {
    while (off < data.length) {
      const piece = data.subarray(off, off + chunk);
      off += piece.length;
      const ok = sock.write(piece);
      if (paceMs > 0) { setTimeout(step, paceMs); return; }
      if (!ok) { sock.once('drain', step); return; }
    }
    done();
  };
  step();
}
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  let head = Buffer.alloc(0);
  let started = false;
  s.on('data', (d) => {
    if (started) return;
    head = Buffer.concat([head, d]);
    if (head.length < 4) return;
    started = true;
    const n = head.readUInt32BE(0);
    const c = cfg.conns[n];
    const data = bytes(n * 2 + 2, c.s2c);
    fs.writeFileSync(path.join(cfg.outDir, n + '.s2c'), data);
    send(s, data, c.chunk, cfg.paceMs, () => s.end());
  });
  s.on('error', () => {});
});
server.listen(cfg.port, '127.0.0.1', async () => {
  const results = await Promise.all(cfg.conns.map((c, n) => new Promise((resolve, reject) => {
    const sock = net.connect({ port: cfg.port, host: '127.0.0.1', allowHalfOpen: true });
    const idx = Buffer.alloc(4);
    idx.writeUInt32BE(n);
    const data = Buffer.concat([idx, bytes(n * 2 + 1, c.c2s)]);
    fs.writeFileSync(path.join(cfg.outDir, n + '.c2s'), data);
    let got = 0;
    let ended = false;
    let finished = false;
    const check = () => { if (ended && finished) resolve({ n, cport: sock.localPort, c2s: data.length, s2c: got }); };
    sock.on('data', (d) => { got += d.length; });
    sock.on('end', () => { ended = true; check(); });
    sock.on('error', reject);
    sock.on('connect', () => send(sock, data, c.chunk, cfg.paceMs, () => setTimeout(() => { sock.end(); sock.once('finish', () => { finished = true; check(); }); }, c.holdMs || 0)));
  })));
  for (const r of results) console.log(JSON.stringify(r));
  server.close();
  console.log('done');
});
`;

export interface TrafficConn {
  c2s: number;
  s2c: number;
  chunk: number;
  holdMs?: number;
}

export interface TrafficResult {
  n: number;
  cport: number;
  c2s: number;
  s2c: number;
}

/** runTraffic runs TRAFFIC in `ns`; resolves with one result per connection once every connection ended. */
export async function runTraffic(ns: Netns, dir: string, cfg: { port: number; outDir: string; conns: TrafficConn[]; paceMs?: number }): Promise<TrafficResult[]> {
  const script = path.join(dir, 'traffic.mjs');
  if (!existsSync(script)) writeFileSync(script, TRAFFIC);
  const child = ns.spawn(process.execPath, [script, JSON.stringify({ paceMs: 0, ...cfg })]);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  if (code !== 0 || !out.includes('done')) throw new Error(`traffic failed (${code}): ${err}`);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as TrafficResult);
}
