/**
 * Live capture at a rate (issue 18): in a private network namespace, one connection sends 600 MB
 * through the loopback shaped with `tc qdisc ... tbf rate 2gbit` (about 1.8 Gbit/s measured, the
 * rate at which pcapflow dropped a tenth of the stream before its files sink wrote synchronously
 * in live capture), captured by `pcapflow live lo --sink files --buffer-size 1g` (a kernel ring
 * that holds the whole transfer, so that other test files running beside this one cannot make
 * the kernel drop). The file must be exactly the bytes sent, with nothing dropped by pcapflow's
 * queue nor, with `--backend tcpdump`, by the kernel. Each backend in turn; runs as root with cap
 * and tcpdump, like test/live.test.ts (~10 s each).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error bench/live-rate.js is plain JavaScript without types
import { senderScript } from '../bench/live-rate.js';
import { ensureBuilt, liveReady, Netns, sleep, startLive, statValue } from './helpers/live-net.js';

const ready = liveReady();
const BYTES = 600_000_000;
const PORT = 7500;

/** The pattern sent: byte i of each MiB is (i * 7 + (i >> 8)) & 0xff. */
function pattern(): Buffer {
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + (i >> 8)) & 0xff;
  return chunk;
}

const SENDER = senderScript('127.0.0.1', PORT, BYTES, { serve: true });

describe.skipIf(!ready).each(['cap', 'tcpdump'] as const)('pcapflow live --backend %s at a rate (root, ~10 s)', (backend) => {
  let tmp = '';
  let ns: Netns;

  beforeAll(() => {
    ensureBuilt();
    tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-rate-'));
    ns = new Netns();
    execFileSync('ip', ['-n', ns.name, 'link', 'set', 'lo', 'mtu', '1500']);
    execFileSync('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '2gbit', 'burst', '4mb', 'latency', '100ms']);
  });
  afterAll(() => {
    ns?.remove();
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('600 MB at ~1.8 Gbit/s into --sink files: the exact stream, nothing dropped', { timeout: 120_000 }, async () => {
    const out = path.join(tmp, 'out');
    // a kernel ring that holds the whole transfer: the test is about pcapflow keeping up (its
    // queue), not about the CPU time the other test files running beside it leave it
    const live = await startLive(ns, ['lo', '--filter', `tcp port ${PORT}`, '--sink', 'files', '-o', out, '--stats', '--buffer-size', '1g', '--backend', backend]);
    const start = Date.now();
    const sender = ns.spawn(process.execPath, ['-e', SENDER]);
    await new Promise<void>((resolve, reject) => {
      sender.on('error', reject);
      sender.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sender exit ${code}`))));
    });
    const seconds = (Date.now() - start) / 1000;
    // wait until the bytes have reached the file (all but the last write), then stop: SIGINT
    // ends the capture after what libpcap already delivered
    const written = (): number => readdirSync(out).reduce((n, f) => (f.startsWith('127.000.000.001.') ? n + statSync(path.join(out, f)).size : n), 0);
    for (const deadline = Date.now() + 20_000; written() < BYTES - (1 << 20) && Date.now() < deadline; ) await sleep(100);
    await sleep(500);
    live.child.kill('SIGINT');
    expect(await live.exited).toBe(0);
    const stderr = live.stderr();
    console.log(`live rate: ${((BYTES * 8) / seconds / 1e9).toFixed(2)} Gbit/s (sender, with start-up), capture.peakQueuedBytes ${statValue(stderr, 'capture.peakQueuedBytes')}`);
    expect(statValue(stderr, 'capture.dropped')).toBe(0);
    // the summary line, printed with or without --stats
    if (backend === 'cap') expect(stderr).toMatch(/^pcapflow: captured \d+ packets \(\d+ bytes\) with cap; dropped 0 \(0 bytes\) with the queue full/m);
    else expect(stderr).toMatch(/^pcapflow: captured \d+ packets \(\d+ bytes\) with tcpdump; dropped by the kernel 0[ ,]/m);
    const file = readdirSync(out).find((f) => f.startsWith('127.000.000.001.') && !f.endsWith('.part') && statSync(path.join(out, f)).size > 0 && f.endsWith(`-127.000.000.001.0${PORT}`));
    expect(file, readdirSync(out).join(' ')).toBeDefined();
    const got = readFileSync(path.join(out, file!));
    expect(got.length).toBe(BYTES);
    const chunk = pattern();
    let bad = 0;
    for (let off = 0; off < BYTES; off += chunk.length) {
      const n = Math.min(chunk.length, BYTES - off);
      if (!got.subarray(off, off + n).equals(chunk.subarray(0, n))) bad++;
    }
    expect(bad).toBe(0);
  });
});
