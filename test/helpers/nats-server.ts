/**
 * nats-server for the tests: where it is, free loopback ports, and a single JetStream node
 * started on one (stopped by the caller, or for a whole test file by natsForSuite). Under CI a
 * missing nats-server fails (needTool).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { hasTool, needTool } from './env.js';

/** nats-server on PATH, or where Debian puts it (/usr/sbin, often not on a user's PATH); null when neither. */
export const NATS_SERVER = hasTool('nats-server') ? 'nats-server' : fs.existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null;

/** haveNatsServer: nats-server can be run (throws under CI when it cannot). */
export function haveNatsServer(): boolean {
  return NATS_SERVER !== null || needTool('nats-server');
}

/** freePorts: `count` distinct free loopback ports (all held open together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** waitForPort resolves once something listens on loopback `port`; rejects after `ms`. */
export async function waitForPort(port: number, ms = 10000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nats-server did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** spawnNats starts one JetStream node on loopback `port` with its store in `store` (not waited for). */
export function spawnNats(port: number, store: string): ChildProcess {
  return spawn(NATS_SERVER!, ['-js', '-p', String(port), '-a', '127.0.0.1', '-sd', store], { stdio: 'ignore' });
}

/** startNats starts one JetStream node on a free port, store in `store`, and waits until it listens. */
export async function startNats(store: string): Promise<{ proc: ChildProcess; url: string; port: number }> {
  const [port] = await freePorts(1);
  fs.mkdirSync(store, { recursive: true });
  const proc = spawnNats(port!, store);
  await waitForPort(port!);
  return { proc, url: `127.0.0.1:${port}`, port: port! };
}

/** stopNats stops `proc` with SIGTERM and waits for it to exit. */
export async function stopNats(proc: ChildProcess | null): Promise<void> {
  if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/**
 * natsForSuite: for the test file that calls it, one JetStream node started before its tests
 * (store under `tmp`, after `before()` when given; not when `enabled` is false) and stopped after
 * them, `tmp` then removed. Its URL is `url` of the object returned, set once the node listens.
 */
export function natsForSuite(enabled: boolean, tmp: string, before?: () => void): { url: string } {
  const node = { url: '' };
  let proc: ChildProcess | null = null;
  beforeAll(async () => {
    if (!enabled) return;
    before?.();
    const started = await startNats(path.join(tmp, 'store'));
    proc = started.proc;
    node.url = started.url;
  });
  afterAll(async () => {
    await stopNats(proc);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return node;
}
