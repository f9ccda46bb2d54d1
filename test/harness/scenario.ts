/**
 * scenario: one run of the real-traffic harness. It sets up two network namespaces
 * (netns.sh), captures on the server's veth with tcpdump, runs traffic-server.mjs and
 * traffic-client.mjs, stops everything and tears the namespaces down, leaving a pcap and the
 * applications' logs.
 *
 * Clean-up: every run is registered until torn down; teardownAll() (also hooked on process
 * exit) removes what is left, and sweepStale() removes what crashed runs of dead processes
 * left (namespace names carry the pid). Children are ended by pid only.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HARNESS_DIR = path.dirname(fileURLToPath(import.meta.url));
const NETNS_SH = path.join(HARNESS_DIR, 'netns.sh');

export const CLIENT_V4 = '10.201.0.1';
export const SERVER_V4 = '10.201.0.2';
export const CLIENT_V6 = 'fd00:201::1';
export const SERVER_V6 = 'fd00:201::2';

/** The network of one capture run. */
export interface CaptureSpec {
  name: string;
  /** Share of data segments (frames > 100 bytes) lost before the capture point, per direction. */
  loss: number;
  /** Share of data segments dropped after the capture point (the capture sees duplicates). */
  dup: number;
  /** 802.1Q id on the wire, or null. */
  vlan: number | null;
  /** The routes' rto_min in ms (netns.sh --rto-min); the kernel's 200 ms when absent. */
  rtoMinMs?: number;
}

/**
 * The programs of one capture run (node scripts and their arguments): the server runs in the
 * server namespace and prints "ready" once it listens; the client runs in the client namespace,
 * and the run waits for it to exit (at most `clientTimeoutMs`, default 120 s), then up to 10 s
 * for `serverDone` (the server has logged everything), then ends the server with SIGTERM.
 */
export interface CaptureApps {
  server: string[];
  client: string[];
  clientTimeoutMs?: number;
  serverDone: () => boolean;
}

export interface ScenarioSpec extends CaptureSpec {
  /** Connections (alternating IPv4/IPv6) and large ones (1-5 MB in one direction). */
  count: number;
  large: number;
  concurrency: number;
  seed: number;
}

export interface CaptureRun<S extends CaptureSpec = CaptureSpec> {
  spec: S;
  pcap: string;
  logDir: string;
  /** tcpdump's "packets dropped by kernel" (must be 0 for the capture to be complete). */
  captureDropped: number;
  /** tcpdump's "captured" and "received by filter": equal (less drops) when nothing was left unread. */
  captured: number;
  received: number;
  /** Frames the random filters took: lost before the capture, dropped after it. */
  lossFrames: number;
  dupFrames: number;
  clientExit: number | null;
  clientSummary: string;
  seconds: number;
}

export type ScenarioRun = CaptureRun<ScenarioSpec>;

/**
 * netnsSupport returns null when this process can run the harness (root, `ip netns`, tc and
 * tcpdump work), else why not.
 */
export function netnsSupport(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const [cmd, args] of [
    ['ip', ['netns', 'list']],
    ['tc', ['-V']],
    ['tcpdump', ['--version']],
  ] as const) {
    try {
      execFileSync(cmd, [...args], { stdio: 'ignore' });
    } catch {
      return `\`${cmd} ${args.join(' ')}\` does not run`;
    }
  }
  return null;
}

/** buildVlanBpf compiles vlan-bpf.c into dir and returns the program's path. */
export function buildVlanBpf(dir: string): string {
  const out = path.join(dir, 'vlan-bpf');
  execFileSync('gcc', ['-O1', '-Wall', '-o', out, path.join(HARNESS_DIR, 'vlan-bpf.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

const activeRuns = new Set<string>();
const children = new Set<ChildProcess>();
let exitHooked = false;

/** teardown removes one run's namespaces (with their devices and filters) and processes. */
export function teardown(run: string): void {
  try {
    execFileSync('bash', [NETNS_SH, 'down', run], { stdio: 'ignore', timeout: 30_000 });
  } finally {
    activeRuns.delete(run);
  }
}

/** teardownAll ends this process's children (by pid) and removes every run still up. */
export function teardownAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const run of [...activeRuns]) {
    try {
      teardown(run);
    } catch {
      // reported by the next sweepStale()
    }
  }
}

/** sweepStale removes namespaces left by harness runs of processes that no longer exist. */
export function sweepStale(): void {
  execFileSync('bash', [NETNS_SH, 'stale'], { stdio: 'ignore', timeout: 60_000 });
}

/** leftovers lists this process's namespaces still present (should be none after teardown). */
export function leftovers(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`pf-${process.pid}-`));
}

/** Longest life of a child (coreutils timeout, which forwards our signals): if this process is
 * killed outright, its tcpdump and servers still end (the namespaces go at the next sweepStale). */
const CHILD_LIFETIME_S = 300;

function start(cmd: string, args: string[]): ChildProcess & { out: string; err: string } {
  const child = spawn('timeout', ['-k', '5', String(CHILD_LIFETIME_S), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & {
    out: string;
    err: string;
  };
  child.out = '';
  child.err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (child.out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (child.err += s));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() - t0 > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function lines(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length : 0;
}

/** filterFrames sums the packets the random filters (pref 20) redirected on one hook. */
function filterFrames(ns: string, dev: string, hook: 'egress' | 'ingress'): number {
  const out = execFileSync('tc', ['-s', '-n', ns, 'filter', 'show', 'dev', dev, hook], { encoding: 'utf8' });
  let n = 0;
  for (const m of out.matchAll(/Sent \d+ bytes (\d+) pkt/g)) n += Number(m[1]);
  return n;
}

/**
 * runScenario runs one scenario (traffic-server.mjs and traffic-client.mjs) in workDir/<name>
 * (pcap and logs) and always tears its namespaces down before returning or throwing.
 */
export function runScenario(spec: ScenarioSpec, workDir: string, vlanBpf: string | null): Promise<ScenarioRun> {
  return runCapture(spec, workDir, vlanBpf, (logDir) => ({
    server: [path.join(HARNESS_DIR, 'traffic-server.mjs'), '--log', logDir, '--hosts', `${SERVER_V4},${SERVER_V6}`, '--seed', String(spec.seed)],
    client: [
      path.join(HARNESS_DIR, 'traffic-client.mjs'),
      '--log', logDir, '--targets', `${SERVER_V4},${SERVER_V6}`, '--count', String(spec.count), '--large', String(spec.large),
      '--concurrency', String(spec.concurrency), '--seed', String(spec.seed),
    ],
    // The server logs a connection when it closes: done once it has logged them all.
    serverDone: () => lines(path.join(logDir, 'server.ndjson')) >= lines(path.join(logDir, 'client.ndjson')),
  }));
}

/**
 * runCapture: one capture run in workDir/<name> (capture.pcap, and logs/ for the programs): the
 * namespaces (netns.sh up, with the spec's loss, duplicates and VLAN), tcpdump on pfb, the server
 * and the client of `apps(logDir)` (see CaptureApps), then tcpdump stopped once the capture file
 * has stopped growing. It always tears its namespaces down before returning or throwing.
 */
export async function runCapture<S extends CaptureSpec>(spec: S, workDir: string, vlanBpf: string | null, apps: (logDir: string) => CaptureApps): Promise<CaptureRun<S>> {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', teardownAll);
  }
  const t0 = Date.now();
  const dir = path.join(workDir, spec.name);
  const logDir = path.join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const pcap = path.join(dir, 'capture.pcap');
  const run = `pf-${process.pid}-${spec.name.replace(/[^a-z0-9]/g, '')}`;
  const a = `${run}-a`;
  const b = `${run}-b`;
  const upArgs = [NETNS_SH, 'up', run];
  if (spec.loss > 0) upArgs.push('--loss', String(spec.loss));
  if (spec.dup > 0) upArgs.push('--dup', String(spec.dup));
  if (spec.vlan !== null) {
    if (vlanBpf === null) throw new Error('a VLAN scenario needs vlan-bpf (gcc)');
    upArgs.push('--vlan', String(spec.vlan), '--vlan-bpf', vlanBpf);
  }
  if (spec.rtoMinMs !== undefined) upArgs.push('--rto-min', String(spec.rtoMinMs));
  activeRuns.add(run);
  try {
    execFileSync('bash', upArgs, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    const tcpdump = start('ip', ['netns', 'exec', b, 'tcpdump', '-i', 'pfb', '-n', '-s', '2048', '-U', '--immediate-mode', '-B', '65536', '-Z', 'root', '-w', pcap]);
    await until(() => /listening on/.test(tcpdump.err) || tcpdump.exitCode !== null, 10_000, 'tcpdump to listen');
    if (tcpdump.exitCode !== null) throw new Error(`tcpdump failed: ${tcpdump.err}`);
    const app = apps(logDir);
    const server = start('ip', ['netns', 'exec', b, 'node', ...app.server]);
    await until(() => server.out.includes('ready') || server.exitCode !== null, 10_000, 'the server to listen');
    if (server.exitCode !== null) throw new Error(`${path.basename(app.server[0] ?? 'server')} failed: ${server.err}`);
    const client = start('ip', ['netns', 'exec', a, 'node', ...app.client]);
    const clientExit = await exited(client, app.clientTimeoutMs ?? 120_000);
    await until(app.serverDone, 10_000, 'the server to log everything').catch(() => undefined);
    server.kill('SIGTERM');
    await exited(server, 5_000);
    // tcpdump drops what it has not yet read from its ring buffer when it gets SIGINT, so stop it
    // only once the capture file has stopped growing (--immediate-mode: packets reach tcpdump at
    // once, not when a ring block fills or times out; -U: it writes each at once). A snaplen of
    // 2048 (frames are at most 1518 bytes) keeps the ring's slots small, so 64 MB hold ~30 000.
    let size = -1;
    let still = 0;
    await until(
      () => {
        const now = existsSync(pcap) ? statSync(pcap).size : 0;
        still = now === size ? still + 1 : 0;
        size = now;
        return still >= 50; // 1 s
      },
      20_000,
      'the capture to settle',
    );
    const lossFrames = filterFrames(a, 'pfa', 'egress') + filterFrames(b, 'pfb', 'egress');
    const dupFrames = filterFrames(a, 'pfa', 'ingress') + filterFrames(b, 'pfb', 'ingress');
    tcpdump.kill('SIGINT');
    await exited(tcpdump, 10_000);
    const dropped = /(\d+) packets? dropped by kernel/.exec(tcpdump.err);
    const captured = /(\d+) packets? captured/.exec(tcpdump.err);
    const received = /(\d+) packets? received by filter/.exec(tcpdump.err);
    return {
      spec,
      pcap,
      logDir,
      captureDropped: dropped === null ? -1 : Number(dropped[1]),
      captured: captured === null ? -1 : Number(captured[1]),
      received: received === null ? -1 : Number(received[1]),
      lossFrames,
      dupFrames,
      clientExit,
      clientSummary: `${client.out.trim()} ${client.err.trim()}`.trim(),
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    for (const c of [...children]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    teardown(run);
  }
}
