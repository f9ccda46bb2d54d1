/**
 * Soak: `pcapflow live` on a steady transfer for a minute must keep flat memory (issue 4). Runs in
 * CI (as root, like test/live.test.ts; skipped elsewhere without root or cap) and takes ~70 s.
 *
 * In a private network namespace, rounds of two connections (6 MB each way, paced 64 KiB writes
 * every 5 ms; and a small one) follow one another for 60 s into `--sink files`, so connections
 * open and close all along (their files are removed once closed). The
 * resident set size of the pcapflow process is read from /proc/PID/status every 2 s: after a
 * 10 s warm-up, the highest sample of the second half may not be more than 15% + 24 MiB above the
 * highest of the first half, and the same for RssAnon (the heap and buffers, without libpcap's
 * mapped ring) within 25% + 16 MiB. At the end every byte written must have been delivered, none dropped.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, liveReady, Netns, memKiB, runTraffic, sleep, startLive, statValue } from './helpers/live-net.js';

const SOAK_MS = 60_000;
const SAMPLE_MS = 2000;
const WARMUP_MS = 10_000;
const ready = liveReady();

describe.skipIf(!ready)('pcapflow live soak (root, ~70 s)', () => {
  let tmp = '';
  let ns: Netns;

  beforeAll(() => {
    ensureBuilt();
    tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-soak-'));
    ns = new Netns();
  });
  afterAll(() => {
    ns?.remove();
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('keeps flat memory on a steady transfer for a minute, and delivers every byte', { timeout: 150_000 }, async () => {
    const out = path.join(tmp, 'out');
    const live = await startLive(ns, ['lo', '--filter', 'tcp port 7400', '--sink', 'files', '-o', out, '--stats']);
    const pid = live.child.pid!;
    const samples: Array<{ t: number; rss: number; anon: number }> = [];
    const start = Date.now();
    let sent = 0;
    let conns = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = memKiB(pid);
        if (m !== null) samples.push({ t: Date.now() - start, ...m });
        await sleep(SAMPLE_MS);
      }
    })();
    for (let round = 0; Date.now() - start < SOAK_MS; round++) {
      const expected = path.join(tmp, `exp${round}`);
      mkdirSync(expected);
      const results = await runTraffic(ns, tmp, {
        port: 7400,
        outDir: expected,
        paceMs: 5,
        conns: [
          { c2s: 6_000_000, s2c: 6_000_000, chunk: 65_536 },
          { c2s: 200_000, s2c: 100_000, chunk: 1000 },
        ],
      });
      for (const r of results) sent += r.c2s + r.s2c;
      conns += results.length;
      rmSync(expected, { recursive: true });
      // the files of closed connections (renamed from .part) go, so the disk use stays small
      for (const f of readdirSync(out)) if (f !== 'connections.ndjson' && !f.endsWith('.part')) rmSync(path.join(out, f));
    }
    sampling = false;
    await sampler;
    // SIGINT drops what libpcap still holds (as tcpdump does): wait until every connection closed
    const closed = (): number => (existsSync(path.join(out, 'connections.ndjson')) ? readFileSync(path.join(out, 'connections.ndjson'), 'utf8').split('\n').length - 1 : 0);
    for (const deadline = Date.now() + 20_000; closed() < conns && Date.now() < deadline; ) await sleep(200);
    live.child.kill('SIGINT');
    expect(await live.exited).toBe(0);

    const stderr = live.stderr();
    expect(statValue(stderr, 'capture.dropped')).toBe(0);
    expect(statValue(stderr, 'reassembler.bytes')).toBe(sent);
    expect(statValue(stderr, 'reassembler.closedFin')).toBe(conns);

    const steady = samples.filter((s) => s.t >= WARMUP_MS);
    expect(steady.length).toBeGreaterThanOrEqual(15);
    const mid = Math.floor(steady.length / 2);
    const max = (from: number, to: number, key: 'rss' | 'anon'): number => Math.max(...steady.slice(from, to).map((s) => s[key]));
    const summary =
      `KiB: VmRSS max ${max(0, mid, 'rss')} then ${max(mid, steady.length, 'rss')}, ` +
      `RssAnon max ${max(0, mid, 'anon')} then ${max(mid, steady.length, 'anon')}; ${conns} connections, ${(sent / 1e6).toFixed(0)} MB`;
    console.log(`live soak: ${summary}`);
    // VmRSS includes libpcap's ring (mapped once, hundreds of MiB): RssAnon (heap, buffers) shows a leak sooner.
    expect(max(mid, steady.length, 'rss'), summary).toBeLessThanOrEqual(max(0, mid, 'rss') * 1.15 + 24 * 1024);
    expect(max(mid, steady.length, 'anon'), summary).toBeLessThanOrEqual(max(0, mid, 'anon') * 1.25 + 16 * 1024);
  });
});
