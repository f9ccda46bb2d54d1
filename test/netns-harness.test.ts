/**
 * Real kernel TCP, captured: two network namespaces joined by a veth pair, tcpdump on the
 * server's side, random loss before the capture point (holes later filled by retransmissions)
 * and after it (duplicates), IPv4 and IPv6, hundreds of connections, RSTs, half-closes, and a
 * VLAN-tagged wire (test/harness/netns.sh, scenario.ts). The applications log exactly the bytes
 * they wrote; pcapflow's files must equal them for every connection, and connections.ndjson must
 * report no gaps (every hole in these captures was filled by a retransmission).
 *
 * tcpflow and tshark (follow,tcp,raw) are checked against the same logs as references: they
 * show the harness itself is right.
 *
 * Needs root and `ip netns` (skipped otherwise; under CI=true, root without netns support is a
 * failure), and gcc for the VLAN scenario. PCAPFLOW_HARNESS_KEEP=1 keeps the captures and logs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AppConnection,
  type CaptureCounts,
  captureCounts,
  checkConnectionsFile,
  compareFlowDir,
  compareFollow,
  loadAppLogs,
  tally,
  tsharkFollow,
} from './harness/compare.js';
import {
  type ScenarioRun,
  type ScenarioSpec,
  buildVlanBpf,
  leftovers,
  netnsSupport,
  runScenario,
  sweepStale,
  teardownAll,
} from './harness/scenario.js';
import { REPO_ROOT, hasTool, needTool } from './helpers/env.js';

const SCENARIOS: ScenarioSpec[] = [
  { name: 'clean', loss: 0, dup: 0, vlan: null, count: 200, large: 2, concurrency: 24, seed: 11 },
  { name: 'loss', loss: 0.03, dup: 0.02, vlan: null, count: 200, large: 4, concurrency: 24, seed: 22 },
  { name: 'vlan-loss', loss: 0.02, dup: 0.02, vlan: 42, count: 120, large: 2, concurrency: 24, seed: 33 },
];

/** canRun: root with netns support; skip with a message otherwise (a failure under CI when root). */
function canRun(): boolean {
  const why = netnsSupport();
  if (why === null) return needTool('tshark') && needTool('tcpflow');
  if (process.env.CI && process.getuid?.() === 0) throw new Error(`netns harness: running as root under CI but ${why}`);
  console.warn(`skipping the netns harness: ${why} (it needs root and ip netns)`);
  return false;
}

const CAN_RUN = canRun();
const HAVE_GCC = CAN_RUN && (hasTool('gcc') || needTool('gcc'));
if (CAN_RUN && !HAVE_GCC) console.warn('netns harness: no gcc, so no VLAN scenario');

interface Outcome {
  run: ScenarioRun;
  conns: AppConnection[];
  problems: string[];
  counts: CaptureCounts;
  equal: Record<'pcapflow' | 'tcpflow' | 'tshark', string>;
}


describe.skipIf(!CAN_RUN)('netns harness: real kernel TCP between two namespaces', () => {
  let work = '';
  const outcomes: Outcome[] = [];
  const specs = SCENARIOS.filter((s) => s.vlan === null || HAVE_GCC);
  const t0 = Date.now();

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-netns-'));
    sweepStale();
    const vlanBpf = HAVE_GCC ? buildVlanBpf(work) : null;
    try {
      for (const spec of specs) {
        const run = await runScenario(spec, work, vlanBpf);
        const { conns, problems } = loadAppLogs(run.logDir);
        outcomes.push({ run, conns, problems, counts: captureCounts(run.pcap), equal: { pcapflow: 'not run', tcpflow: 'not run', tshark: 'not run' } });
      }
    } finally {
      teardownAll();
    }
  }, 240_000);

  afterAll(() => {
    teardownAll();
    const head = ['scenario', 'conns', 'dirs', 'pcapflow', 'tcpflow', 'tshark', 'frames', 'vlan', 'lost', 'dropped', 'holes', 'fills', 'dups', 'retrans', 'rst', 'run s'];
    const rows = outcomes.map((o) => [
      o.run.spec.name,
      String(o.conns.length),
      String(o.conns.length * 2),
      o.equal.pcapflow,
      o.equal.tcpflow,
      o.equal.tshark,
      String(o.counts.frames),
      String(o.counts.vlanFrames),
      String(o.run.lossFrames),
      String(o.run.dupFrames),
      String(o.counts.holes),
      String(o.counts.holeFills),
      String(o.counts.duplicates),
      String(o.counts.retransmissions),
      String(o.counts.resets),
      o.run.seconds.toFixed(1),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
    console.log(
      [
        'netns harness (lost = frames the tc filters took before the capture, dropped = after it;',
        'holes/fills/dups = data segments opening a hole, filling one, or repeating seen bytes):',
        fmt(head),
        ...rows.map(fmt),
        `total ${((Date.now() - t0) / 1000).toFixed(1)} s; captures in ${process.env.PCAPFLOW_HARNESS_KEEP ? work : '(removed)'}`,
      ].join('\n'),
    );
    if (work !== '' && !process.env.PCAPFLOW_HARNESS_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('leaves no namespaces behind', () => {
    expect(leftovers()).toEqual([]);
  });

  it('runs every scenario: the applications agree, the capture is complete, loss shows', () => {
    expect(outcomes.map((o) => o.run.spec.name)).toEqual(specs.map((s) => s.name));
    for (const o of outcomes) {
      const { spec } = o.run;
      expect.soft(o.problems, spec.name).toEqual([]);
      expect.soft(o.run.clientExit, `${spec.name}: ${o.run.clientSummary}`).toBe(0);
      expect.soft(o.conns.length, spec.name).toBe(spec.count + spec.large);
      expect.soft(o.run.captureDropped, `${spec.name}: tcpdump dropped frames`).toBe(0);
      expect.soft(o.run.captured + o.run.captureDropped, `${spec.name}: tcpdump left frames unread`).toBe(o.run.received);
      const v6 = o.conns.filter((c) => c.client.ip.includes(':')).length;
      expect.soft(v6, `${spec.name}: IPv6 connections`).toBeGreaterThan(0);
      expect.soft(o.conns.length - v6, `${spec.name}: IPv4 connections`).toBeGreaterThan(0);
      for (const mode of ['basic', 'halfclose', 'rst-client', 'rst-server', 's2c-empty', 'banner']) {
        expect.soft(o.conns.some((c) => c.mode === mode), `${spec.name}: mode ${mode}`).toBe(true);
      }
      expect.soft(o.counts.resets, spec.name).toBeGreaterThan(0);
      if (spec.loss > 0) {
        expect.soft(o.run.lossFrames, spec.name).toBeGreaterThan(0);
        expect.soft(o.counts.holes, `${spec.name}: holes in the capture`).toBeGreaterThan(0);
        expect.soft(o.counts.holeFills, `${spec.name}: holes filled`).toBeGreaterThan(0);
      }
      if (spec.dup > 0) expect.soft(o.counts.duplicates, `${spec.name}: duplicates in the capture`).toBeGreaterThan(0);
      expect.soft(o.counts.maxFrame, `${spec.name}: one segment per frame`).toBeLessThanOrEqual(spec.vlan === null ? 1514 : 1518);
      if (spec.vlan !== null) expect.soft(o.counts.vlanFrames, `${spec.name}: every frame tagged`).toBe(o.counts.frames);
      else expect.soft(o.counts.vlanFrames).toBe(0);
    }
  });

  it('references: tcpflow files and tshark follow,tcp,raw equal the application bytes', () => {
    for (const o of outcomes) {
      const { spec } = o.run;
      const out = path.join(path.dirname(o.run.pcap), 'tcpflow');
      mkdirSync(out, { recursive: true });
      execFileSync('tcpflow', ['-r', o.run.pcap, '-o', out], { stdio: 'ignore' });
      const tf = compareFlowDir(out, o.conns, spec.vlan, ['report.xml']);
      const tfTally = tally(tf.results);
      // tcpflow opens a new flow (`...c1`) for segments that come after it closed a connection
      // (a retransmission after the FIN or RST): tolerated when it holds a piece of that
      // direction's bytes, and counted in the table.
      const strays = tf.extra.filter((f) => {
        const want = tf.wanted.get(f.replace(/c\d+$/, ''));
        return want !== undefined && readFileSync(want).includes(readFileSync(path.join(out, f)));
      });
      o.equal.tcpflow = `${tfTally.equal}/${tfTally.total}${strays.length > 0 ? ` +${strays.length}c` : ''}`;
      const ts = tally(compareFollow(tsharkFollow(o.run.pcap, o.counts.streams), o.conns));
      o.equal.tshark = `${ts.equal}/${ts.total}`;
      expect.soft(tfTally.bad, `${spec.name}: tcpflow`).toEqual([]);
      expect.soft(tf.extra.filter((f) => !strays.includes(f)), `${spec.name}: tcpflow's extra files`).toEqual([]);
      expect.soft(ts.bad, `${spec.name}: tshark`).toEqual([]);
    }
  });

  it("pcapflow's files equal the bytes each application wrote, with no gaps reported", () => {
    const cli = path.join(REPO_ROOT, 'dist/cli/main.js');
    if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'pipe' });
    const failures: string[] = [];
    for (const o of outcomes) {
      const { spec } = o.run;
      const out = path.join(path.dirname(o.run.pcap), 'pcapflow');
      execFileSync('node', [path.join(REPO_ROOT, 'bin/pcapflow.js'), 'read', o.run.pcap, '--sink', 'files', '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
      const pf = compareFlowDir(out, o.conns, spec.vlan, ['connections.ndjson']);
      const t = tally(pf.results);
      o.equal.pcapflow = `${t.equal}/${t.total}`;
      const recs = checkConnectionsFile(out, o.conns, spec.vlan);
      failures.push(...[...t.bad, ...pf.extra.map((f) => `extra file ${f}`), ...recs.problems].map((m) => `${spec.name}: ${m}`));
    }
    expect(failures.slice(0, 40), `${failures.length} failures`).toEqual([]);
  });
});
