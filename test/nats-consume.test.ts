/**
 * `pcapflow consume --part K/M` and `--durable NAME` against a real nats-server (started here on
 * a free loopback port; skipped without nats-server, a failure under CI: needTool).
 *
 * - two consumes in parallel, --part 1/2 and 2/2, of one run: disjoint outputs (no file in both,
 *   no connection record in both) whose union is what `read --sink files` writes;
 * - a durable consume SIGKILLed mid-way and started again with the same name: the directory
 *   ends exactly as a direct write of the same events (every file, connections.ndjson in order),
 *   the second consume writing only what the first had not, and a third one finds nothing left.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import { buildSink, readCaptures } from '../src/read-pipeline.js';
import { NatsSink } from '../src/sinks/nats-sink.js';
import { parsePart } from '../src/sources/nats-source.js';
import { runCli } from './helpers/cli-run.js';
import { dirContents } from './helpers/dir-contents.js';
import { BIN, ensureBuilt } from './helpers/live-net.js';
import { REPO_ROOT, sharedCaptures } from './helpers/env.js';
import { haveNatsServer, natsForSuite } from './helpers/nats-server.js';
import { closeEvent, dataEvent, endpoints, openEvent, pattern } from './helpers/sink-events.js';

const haveServer = haveNatsServer();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-natsc-'));

const nats = natsForSuite(haveServer, tmp, ensureBuilt);

const lines = (dir: string): string[] => fs.readFileSync(path.join(dir, 'connections.ndjson'), 'utf8').split('\n').filter(Boolean);
const flows = (dir: string): Map<string, string> => new Map([...dirContents(dir)].filter(([name]) => name !== 'connections.ndjson'));

describe('parsePart', () => {
  it('takes K/M with 1 <= K <= M <= 64, nothing else', () => {
    expect(parsePart('2/3')).toEqual({ index: 2, count: 3 });
    expect(parsePart('64/64')).toEqual({ index: 64, count: 64 });
    for (const bad of ['0/2', '3/2', '1/65', '1', 'a/b', '1/0']) expect(() => parsePart(bad), bad).toThrow(/--part/);
  });
});

describe.skipIf(!haveServer)('consume --part and --durable (nats-server)', () => {
  it('two consumes in parallel, --part 1/2 and 2/2: disjoint, and together read --sink files', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('pcapplusplus__mixed-126-conns.pcap'))!;
    const direct = path.join(tmp, 'direct');
    await readCaptures(capture, { sink: { type: 'files', dir: direct, writeThread: false } });
    const pub = await runCli(['read', capture, '--sink', 'nats', '--nats-url', nats.url, '--run-id', 'parts']);
    expect(pub.code, pub.stderr).toBe(0);
    const outs = [path.join(tmp, 'p1'), path.join(tmp, 'p2')];
    const runs = await Promise.all(
      outs.map((o, i) => runCli(['consume', '--nats-url', nats.url, '--run-id', 'parts', '--part', `${i + 1}/2`, '--sink', 'files', '-o', o, '--stats'])),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const [a, b] = outs.map(flows) as [Map<string, string>, Map<string, string>];
    expect(a.size).toBeGreaterThan(20);
    expect(b.size).toBeGreaterThan(20);
    expect([...a.keys()].filter((k) => b.has(k))).toEqual([]);
    expect(new Map([...a, ...b])).toEqual(flows(direct));
    const [la, lb] = outs.map(lines) as [string[], string[]];
    expect(la.filter((l) => lb.includes(l))).toEqual([]);
    expect([...la, ...lb].sort()).toEqual(lines(direct).sort());
    // each part in the order of the whole: read's records, less the other part's
    expect(la).toEqual(lines(direct).filter((l) => la.includes(l)));
  }, 30000);

  it('a durable consume SIGKILLed mid-way and started again: the exact output, nothing written twice', async () => {
    // 3000 connections of two data events each, published straight into the stream
    const events: StreamEvent[][] = [];
    for (let c = 0; c < 3000; c++) {
      const { client, server: srv } = endpoints(c);
      const o = openEvent(c, client, srv);
      const up = pattern(c, 'c2s', 0, 300 + (c % 700));
      const down = pattern(c, 's2c', 0, 2000 + (c % 3000));
      events.push([o, dataEvent(c, 'c2s', 0, up), dataEvent(c, 's2c', 0, down), closeEvent(o, up.length, down.length)]);
    }
    const direct = path.join(tmp, 'ddirect');
    await pipeline(Readable.from(events, { objectMode: true }), buildSink({ type: 'files', dir: direct, writeThread: false }, 16 << 20, null) as Writable);
    await pipeline(Readable.from(events, { objectMode: true }), new NatsSink({ servers: [nats.url], runId: 'durable', stream: 'DUR', prefix: 'dur' }));

    const out = path.join(tmp, 'dout');
    const args = ['consume', '--nats-url', nats.url, '--nats-stream', 'DUR', '--nats-subject-prefix', 'dur', '--run-id', 'durable', '--durable', 'd1', '--sink', 'files', '-o', out, '--stats'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: 'ignore' });
    const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const written = (): number => {
      try {
        return lines(out).length;
      } catch {
        return 0;
      }
    };
    while (written() < 300 && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const before = written();
    expect(before).toBeGreaterThanOrEqual(300);
    expect(before).toBeLessThan(3000); // killed mid-way

    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    const st = (k: string): number => Number(new RegExp(`^consume\\.${k}\\s+(\\S+)$`, 'm').exec(again.stderr)?.[1]);
    expect(again.stderr).toMatch(/^consume\.resumed\s+true$/m);
    expect(st('ackFloor')).toBeGreaterThan(0);
    expect(st('written')).toBeLessThan(4 * 3000 - 4 * before + 4 * 200); // only (about) what the first had not written
    expect(dirContents(out)).toEqual(dirContents(direct)); // every file, connections.ndjson in order
    expect(fs.readdirSync(out).some((f) => f.endsWith('.part'))).toBe(false);

    // everything acknowledged: a third consume of that name has nothing left, and changes nothing
    const third = await runCli([...args, '--wait-seconds', '1']);
    expect(third.code).toBe(1);
    expect(third.stderr).toMatch(/durable consumer d1 has no message left of run durable/);
    expect(dirContents(out)).toEqual(dirContents(direct));
  }, 40000);
});
