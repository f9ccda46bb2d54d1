/**
 * `--sink nats` against a 3-node JetStream cluster on loopback (three nats-server processes,
 * each with its own client port, cluster port and store directory, routed to each other), with
 * streams of 3 replicas. The faults are real SIGKILLs in the middle of a `bin/pcapflow.js read`
 * child process over a synthetic capture (bench/synth.js, 24 connections of 1 MiB):
 *
 * - the stream's leader is killed: the run waits out the election and exits 0; `consume
 *   --sink files` from the two servers left equals `read --sink files` (every file byte for
 *   byte, connections.ndjson included), and the stream holds exactly the run's messages (the end
 *   message's count plus itself), none received twice by the consumer;
 * - pcapflow itself is killed and started again with the same run id: the run completes, the
 *   stream holds each message once (the same count as the first run's), consume equals read.
 *
 * Without nats-server the suite is skipped; under CI=true its absence fails (needTool).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptures } from '../src/read-pipeline.js';
import { runCli } from './helpers/cli-run.js';
import { dirContents } from './helpers/dir-contents.js';
import { REPO_ROOT } from './helpers/env.js';
import { freePorts, haveNatsServer, NATS_SERVER } from './helpers/nats-server.js';

const haveServer = haveNatsServer();
const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-nats-cluster-'));
const capture = path.join(tmp, 'synth.pcap');
/** The files `read --sink files` writes for the capture. */
let direct = new Map<string, string>();

interface Node {
  name: string;
  port: number;
  proc: ChildProcess;
}
const nodes: Node[] = [];
const urlOf = (n: Node): string => `127.0.0.1:${n.port}`;
const live = (): Node[] => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** withJsm runs `f` with a JetStream manager connected to the live nodes. */
async function withJsm<T>(f: (jsm: import('@nats-io/jetstream').JetStreamManager) => Promise<T>): Promise<T> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: live().map(urlOf), timeout: 2000 });
  try {
    return await f(await jetstreamManager(nc, { timeout: 2000 }));
  } finally {
    await nc.close();
  }
}

/** until polls `probe` every 50 ms until it gives a value other than undefined (errors count as undefined), failing after `ms`. */
async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === null ? '' : `: ${String(last)}`}`);
    await sleep(50);
  }
}

/** streamState: the message count and leader (a server name) of `stream`, or undefined while it does not exist. */
async function streamState(stream: string): Promise<{ messages: number; leader: string | undefined } | undefined> {
  return withJsm(async (jsm) => {
    try {
      const info = await jsm.streams.info(stream);
      return { messages: info.state.messages, leader: info.cluster?.leader };
    } catch (err) {
      if ((err as { name?: string }).name === 'StreamNotFoundError') return undefined;
      throw err;
    }
  });
}

/** endMessage: the payload of the run's end message (subject PREFIX.RUN.0.end) as JSON. */
async function endMessage(stream: string, prefix: string, runId: string): Promise<{ messages: number; events: number }> {
  return withJsm(async (jsm) => {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: `${prefix}.${runId}.0.end` });
    return JSON.parse(new TextDecoder().decode(m!.data)) as { messages: number; events: number };
  });
}

/** Every pcapflow child started (killed in afterAll when a failed case left one running). */
const children: ChildProcess[] = [];

interface Child {
  proc: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** publish starts `bin/pcapflow.js read CAPTURE --sink nats` to every node (3 replicas) as a child process. */
function publish(stream: string, prefix: string, runId: string): Child {
  const args = [BIN, 'read', capture, '--sink', 'nats', '--nats-url', nodes.map(urlOf).join(','), '--nats-replicas', '3'];
  args.push('--nats-stream', stream, '--nats-subject-prefix', prefix, '--run-id', runId, '--stats');
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal, stderr })));
  return { proc, done };
}

const stat = (stderr: string, name: string): number => {
  const m = new RegExp(`^${name.replace('.', '\\.')}\\s+(\\d+)`, 'm').exec(stderr);
  if (m === null) throw new Error(`no ${name} in ${stderr}`);
  return Number(m[1]);
};

/** consumeBack: `consume --sink files` from the live nodes into a new directory: its contents and the consumer's duplicates. */
async function consumeBack(stream: string, prefix: string, runId: string): Promise<{ files: Map<string, string>; messages: number; duplicates: number }> {
  const out = fs.mkdtempSync(path.join(tmp, 'back-'));
  const r = await runCli(['consume', '--nats-url', live().map(urlOf).join(','), '--nats-stream', stream, '--nats-subject-prefix', prefix, '--run-id', runId, '--sink', 'files', '-o', out, '--stats']);
  expect(r.code, r.stderr).toBe(0);
  return { files: dirContents(out), messages: stat(r.stderr, 'consume.messages'), duplicates: stat(r.stderr, 'consume.duplicates') };
}

beforeAll(async () => {
  if (!haveServer) return;
  const { writeCapture } = (await import(path.join(REPO_ROOT, 'bench/synth.js'))) as { writeCapture: (p: string, o: object) => Promise<unknown> };
  await writeCapture(capture, { conns: 24, bytesPerConn: 1 << 20 });
  const ref = path.join(tmp, 'direct');
  await readCaptures(capture, { sink: { type: 'files', dir: ref, writeThread: false } });
  direct = dirContents(ref);

  const ports = await freePorts(6);
  const cluster = ports.slice(3);
  for (let i = 0; i < 3; i++) {
    const store = path.join(tmp, `store${i}`);
    fs.mkdirSync(store);
    const routes = cluster.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`);
    const args = ['-js', '-a', '127.0.0.1', '-p', String(ports[i]), '-sd', store, '--server_name', `node${i}`];
    args.push('--cluster_name', 'pf', '--cluster', `nats://127.0.0.1:${cluster[i]}`, '--routes', routes.join(','));
    nodes.push({ name: `node${i}`, port: ports[i]!, proc: spawn(NATS_SERVER!, args, { stdio: 'ignore' }) });
  }
  // a stream of 3 replicas can be made once the cluster has its meta leader and knows every node
  await until('a cluster that takes a stream of 3 replicas', 20000, () =>
    withJsm(async (jsm) => {
      await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'], num_replicas: 3 });
      return jsm.streams.delete('PROBE');
    }),
  );
}, 60000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(
    nodes.map(async (n) => {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
      const exited = new Promise((r) => n.proc.once('exit', r));
      n.proc.kill('SIGTERM');
      const timer = setTimeout(() => n.proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }),
  );
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The stream's message count of a whole run of the capture (set by the first case, checked by the second). */
let wholeRun = 0;

describe.skipIf(!haveServer)('3-node JetStream cluster', () => {
  it('pcapflow killed mid-run and started again with the same run id: each message once, consume equals read', async () => {
    expect(direct.size).toBeGreaterThan(24);
    const first = publish('RESTART', 'restart', 'rk');
    await until('messages in stream RESTART', 20000, async () => {
      const s = await streamState('RESTART');
      return s !== undefined && s.messages >= 300 ? s : undefined;
    });
    first.proc.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    // what the stream kept of the killed run, once what was on its way has landed
    let partial = -1;
    await until('stream RESTART to settle', 10000, async () => {
      const n = (await streamState('RESTART'))!.messages;
      if (n === partial) return n;
      partial = n;
      await sleep(200);
      return undefined;
    });
    const again = publish('RESTART', 'restart', 'rk');
    const run = await again.done;
    expect(run.code, run.stderr).toBe(0);
    const end = await endMessage('RESTART', 'restart', 'rk');
    expect(partial).toBeLessThan(end.messages);
    // every message of the first run's came again as a duplicate (and a retry can add one)
    const duplicates = stat(run.stderr, 'sink.duplicates');
    expect(duplicates).toBeGreaterThanOrEqual(partial);
    expect(duplicates).toBeLessThanOrEqual(partial + stat(run.stderr, 'sink.retries'));
    expect(stat(run.stderr, 'sink.acked')).toBe(end.messages + 1);
    const info = await withJsm((jsm) => jsm.streams.info('RESTART'));
    expect(info.config.num_replicas).toBe(3);
    expect(info.state.messages).toBe(end.messages + 1);
    const back = await consumeBack('RESTART', 'restart', 'rk');
    expect(back.files).toEqual(direct);
    expect(back.messages).toBe(end.messages + 1);
    expect(back.duplicates).toBe(0);
    wholeRun = end.messages + 1;
    console.log(`pcapflow SIGKILLed at ${partial} stored messages; rerun: exit 0, ${duplicates} duplicates, ${stat(run.stderr, 'sink.retries')} retries; stream ${info.state.messages} messages (a whole run: ${end.messages + 1}); consume: ${back.files.size} files equal to read --sink files, 0 duplicates`);
  }, 60000);

  it('the stream leader killed mid-run: the run finishes, consume rebuilds every file, no message twice', async () => {
    const child = publish('LEADER', 'leader', 'lk');
    const state = await until('messages in stream LEADER', 20000, async () => {
      const s = await streamState('LEADER');
      return s !== undefined && s.messages >= 300 && s.leader !== undefined ? s : undefined;
    });
    const victim = nodes.find((n) => n.name === state.leader)!;
    victim.proc.kill('SIGKILL');
    const run = await child.done;
    expect(run.code, run.stderr).toBe(0);
    // the publishes the leader took with it were repeated (same message ids) once a new one was elected
    expect(stat(run.stderr, 'sink.retries')).toBeGreaterThan(0);
    const end = await endMessage('LEADER', 'leader', 'lk');
    expect(state.messages).toBeLessThan(end.messages);
    const info = await withJsm((jsm) => jsm.streams.info('LEADER'));
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.leader).not.toBe(victim.name);
    // every message once: the end message's count and the end message itself, as many as a whole run's
    expect(info.state.messages).toBe(end.messages + 1);
    expect(info.state.messages).toBe(wholeRun);
    expect(stat(run.stderr, 'sink.acked')).toBe(end.messages + 1);
    const back = await consumeBack('LEADER', 'leader', 'lk');
    expect(back.files).toEqual(direct);
    expect(back.messages).toBe(end.messages + 1);
    expect(back.duplicates).toBe(0);
    console.log(`leader ${victim.name} SIGKILLed at ${state.messages} messages; run: exit 0, ${stat(run.stderr, 'sink.retries')} retries, ${stat(run.stderr, 'sink.duplicates')} duplicate acks; new leader ${info.cluster?.leader}; stream ${info.state.messages} messages (a whole run: ${wholeRun}); consume: ${back.files.size} files equal, 0 duplicates`);
  }, 60000);
});
