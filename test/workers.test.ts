/**
 * `--workers N` (ReadPipeline's workers, ShardSink): connections sharded to worker threads give
 * the same output as one thread, byte for byte: NDJSON lines, flow files and connections.ndjson,
 * on every shared capture and fixture (the corrupt ones too: the same output before the fault,
 * the same error), on reordered and many-connection captures, with reads small enough that a
 * batch holds a few packets (so that the merge of the workers' output and the waits that end
 * between a shard's packets are exercised on every capture). The cores: KeyedMerge and the
 * shard batches' round trip.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error bench/synth.js is plain JavaScript without types
import { writeCapture, writeShortConns } from '../bench/synth.js';
import { isPcapflowError } from '../src/core/errors.js';
import { TcpDemux } from '../src/core/flow-table.js';
import { KeyedMerge } from '../src/core/keyed-merge.js';
import { Packet, TCP_ACK, TCP_SYN } from '../src/core/packet.js';
import { PACKET_SUB, readShardBatch, ShardFlows, ShardRouter, shardOf, type ShardItem } from '../src/core/shard-batch.js';
import { readCaptures, type ReadCapturesOptions, type ReadInput, type ReadStats } from '../src/read-pipeline.js';
import { runCli } from './helpers/cli-run.js';
import { dirContents } from './helpers/dir-contents.js';
import { FIXTURES, REPO_ROOT, sharedCaptures } from './helpers/env.js';
import { CollectingWritable } from './helpers/sink-events.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-workers-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => path.join(tmp, `out${dirs++}`);

/** treeContents: dirContents of a directory and its subdirectories, names relative to `dir`. */
function treeContents(dir: string, under = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of fs.readdirSync(path.join(dir, under), { withFileTypes: true })) {
    const rel = path.join(under, e.name);
    if (e.isDirectory()) for (const [k, v] of treeContents(dir, rel)) out.set(k, v);
    else out.set(rel, createHash('sha256').update(fs.readFileSync(path.join(dir, rel))).digest('hex'));
  }
  return out;
}

type Options = Omit<ReadCapturesOptions, 'sink'>;

function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

async function files(inputs: ReadInput | ReadInput[], options: Options = {}): Promise<{ out: Map<string, string>; error: unknown; stats: ReadStats | null }> {
  const dir = newDir();
  let stats: ReadStats | null = null;
  const error = await settle(readCaptures(inputs, { ...options, sink: { type: 'files', dir } }).then((s) => (stats = s)));
  const out = fs.existsSync(dir) ? dirContents(dir) : new Map<string, string>();
  fs.rmSync(dir, { recursive: true, force: true });
  return { out, error, stats };
}

async function ndjson(inputs: ReadInput | ReadInput[], options: Options = {}, encoding: 'base64' | 'hex' | 'utf8' = 'base64'): Promise<{ out: string; error: unknown; stats: ReadStats | null }> {
  const dest = new CollectingWritable();
  let stats: ReadStats | null = null;
  const error = await settle(readCaptures(inputs, { ...options, sink: { type: 'ndjson', dest, encoding } }).then((s) => (stats = s)));
  return { out: dest.text(), error, stats };
}

/** The reassembler's counters that do not depend on how connections are split (peaks are per worker). */
function counters(s: ReadStats | null): Record<string, number> {
  const r = { ...(s?.reassembler as unknown as Record<string, number>) };
  delete r.peakBufferedBytes;
  delete r.bufferedBytes;
  // delivered views kept for overlap checks are trimmed by read chunks seen: each worker sees
  // only its connections' (the output is the same while no later retransmission differs)
  delete r.sentTrimmed;
  return r;
}

describe('KeyedMerge', () => {
  const enc = (s: string): Uint8Array => Buffer.from(s);
  const merged = (m: KeyedMerge): string => {
    const out: Uint8Array[] = [];
    m.take(out);
    return Buffer.concat(out).toString();
  };

  it('releases groups in key order once no source can send a lower key', () => {
    const m = new KeyedMerge(2);
    // source 0: keys (1, PACKET_SUB) "a", (3, 0) "b"; it may still send from (4, 0)
    m.add(0, enc('ab'), Float64Array.of(1, 3), Float64Array.of(PACKET_SUB, 0), Uint32Array.of(1, 2), 4, 0);
    expect(merged(m)).toBe(''); // source 1 said nothing yet: it may send (0, 0)
    m.add(1, enc('x'), Float64Array.of(2), Float64Array.of(1), Uint32Array.of(1), 3, 0);
    expect(merged(m)).toBe('ax'); // "b" (3, 0) waits: source 1 may still send (3, 0)
    m.add(1, enc(''), new Float64Array(0), new Float64Array(0), new Uint32Array(0), 5, 0);
    expect(merged(m)).toBe('b');
    m.add(0, enc('c'), Float64Array.of(Infinity), Float64Array.of(7), Uint32Array.of(1), Infinity, Infinity);
    m.add(1, enc('dd'), Float64Array.of(Infinity, Infinity), Float64Array.of(3, 9), Uint32Array.of(1, 2), Infinity, Infinity);
    expect(merged(m)).toBe('dcd');
    expect(m.done).toBe(true);
    expect(m.pendingBytes).toBe(0);
  });

  it('a run of one source is handed over as one view', () => {
    const m = new KeyedMerge(2);
    m.add(1, enc('nothing'), new Float64Array(0), new Float64Array(0), new Uint32Array(0), Infinity, Infinity);
    m.add(0, enc('abc'), Float64Array.of(1, 2, 3), Float64Array.of(0, 0, 0), Uint32Array.of(1, 2, 3), Infinity, Infinity);
    const out: Uint8Array[] = [];
    expect(m.take(out)).toBe(3);
    expect(out.length).toBe(1);
  });
});

describe('shard batches', () => {
  /** A TCP packet with the fields the demux and the router read. */
  function tcp(src: number, sport: number, dst: number, dport: number, flags: number, seq: number, payload: string, sec: number): Packet {
    const p = new Packet();
    p.src = Uint8Array.of(10, 0, 0, src);
    p.dst = Uint8Array.of(10, 0, 0, dst);
    p.netVersion = 4;
    p.proto = 6;
    p.sport = sport;
    p.dport = dport;
    p.flags = flags;
    p.seq = seq;
    p.ack = 7;
    p.win = 1000;
    p.tsSec = sec;
    p.tsNsec = 5;
    const hdr = flags & TCP_SYN ? Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 0xb4) : new Uint8Array(20);
    const body = Buffer.from(payload);
    const l4 = new Uint8Array(hdr.length + body.length);
    l4.set(hdr);
    l4.set(body, hdr.length);
    p.l4 = l4;
    p.tcpHeaderLen = hdr.length;
    p.payload = l4.subarray(hdr.length);
    p.payloadLen = body.length;
    return p;
  }

  it('carry every packet to its connection\'s shard, with the fields, SYN options and ended flows the reassembler reads', () => {
    const demux = new TcpDemux({ idleTimeout: 10 });
    const n = 3;
    const router = new ShardRouter(n);
    const batch = [tcp(1, 1000, 2, 80, TCP_SYN, 100, '', 1), tcp(3, 2000, 2, 80, TCP_ACK, 5, 'hello', 2), tcp(2, 80, 1, 1000, TCP_ACK, 9, 'world', 3)];
    demux.write(batch, () => undefined);
    router.route(batch);
    // a packet 20 s later ends both connections (idle), before it
    const late = [tcp(4, 3000, 2, 80, TCP_ACK, 1, 'x', 30)];
    demux.write(late, () => undefined);
    expect(late[0]!.expired?.length).toBe(2);
    router.route(late);
    expect(router.packets).toBe(4);
    const seen: Array<Record<string, unknown>> = [];
    for (let s = 0; s < n; s++) {
      const flows = new ShardFlows();
      const b = router.take(s);
      expect(b.upTo).toBe(4);
      readShardBatch(b, flows, (it: ShardItem) => {
        const p = it.packet;
        if (p === null) {
          seen.push({ s, k: it.k, sub: it.sub, ended: it.ended!.id, endedBy: it.ended!.endedBy, sec: it.sec });
          return;
        }
        seen.push({ s, k: it.k, flow: p.flow!.id, dir: p.dir, seq: p.seq, payload: Buffer.from(p.payload).toString(), hdr: p.tcpHeaderLen, l4: p.l4.length, client: p.flow!.client.ip, mss: p.flags & TCP_SYN ? p.l4[22]! * 256 + p.l4[23]! : null });
      });
    }
    seen.sort((a, b) => (a.k as number) - (b.k as number) || (a.sub as number ?? PACKET_SUB) - ((b.sub as number) ?? PACKET_SUB));
    const shardOfFlow = (id: number): number => shardOf(batch.find((p) => p.flow!.id === id)!.flow!, n);
    expect(seen).toEqual([
      { s: shardOfFlow(0), k: 1, flow: 0, dir: 0, seq: 100, payload: '', hdr: 24, l4: 24, client: '10.0.0.1', mss: 1460 },
      { s: shardOfFlow(1), k: 2, flow: 1, dir: 0, seq: 5, payload: 'hello', hdr: 20, l4: 0, client: '10.0.0.3', mss: null },
      { s: shardOfFlow(0), k: 3, flow: 0, dir: 1, seq: 9, payload: 'world', hdr: 20, l4: 0, client: '10.0.0.1', mss: null },
      // in the demux's order (least recently active first), each to its own shard
      ...late[0]!.expired!.map((f, i) => ({ s: shardOfFlow(f.id), k: 4, sub: 1 + i, ended: f.id, endedBy: 'idle', sec: 30 })),
      { s: shardOf(late[0]!.flow!, n), k: 4, flow: 2, dir: 0, seq: 1, payload: 'x', hdr: 20, l4: 0, client: '10.0.0.4', mss: null },
    ]);
  });
});

describe('--workers gives the output of one thread', () => {
  it('on every shared capture and fixture: NDJSON (2 and 3 workers), files and connections.ndjson (2), errors and counters', async () => {
    const all = [...sharedCaptures(), ...fs.readdirSync(FIXTURES).filter((f) => /\.pcap(ng)?$/.test(f)).map((f) => path.join(FIXTURES, f))];
    expect(all.length).toBeGreaterThan(60);
    let failed = 0;
    for (const file of all) {
      const what = path.basename(file);
      const n1 = await ndjson(file);
      const n3 = await ndjson(file, { workers: 3, readSize: 4096 });
      expect(n3.out, `${what} ndjson, 3 workers`).toBe(n1.out);
      expect(String(n3.error), what).toBe(String(n1.error));
      if (n1.error !== null) {
        failed++;
        expect(isPcapflowError(n3.error), what).toBe(true);
      } else expect(counters(n3.stats), what).toEqual(counters(n1.stats));
      const f1 = await files(file);
      const f2 = await files(file, { workers: 2, readSize: 4096 });
      expect(isDeepStrictEqual(f2.out, f1.out), `${what} files, 2 workers`).toBe(true);
      expect(String(f2.error), what).toBe(String(f1.error));
    }
    expect(failed).toBeGreaterThan(0); // the corrupt captures are among them
    // the other encodings and 2 workers, on one capture with many connections
    const big = all.find((f) => f.includes('tcp-reassembly-scenarios'))!;
    for (const e of ['hex', 'utf8'] as const) expect((await ndjson(big, { workers: 2, readSize: 2048 }, e)).out).toBe((await ndjson(big, {}, e)).out);
  }, 900_000);

  it('on reordered captures (shuffled within 64 packets, timestamps kept), also with the reorder window off', async () => {
    const base = path.join(tmp, 'many.pcap');
    await (writeCapture(base, { conns: 24, bytesPerConn: 200_000, mss: 1448, interleave: 4 }) as Promise<unknown>);
    const shuffled = path.join(tmp, 'many-shuffled.pcap');
    execFileSync('node', [path.join(REPO_ROOT, 'test/harness/shuffle.mjs'), base, shuffled, '--window', '64', '--seed', '3']);
    for (const reorder of [undefined, false] as const) {
      const o: Options = reorder === false ? { reorder: false } : {};
      const one = await files(shuffled, o);
      expect(isDeepStrictEqual((await files(shuffled, { ...o, workers: 2, readSize: 8192 })).out, one.out), `reorder ${String(reorder)}`).toBe(true);
      expect((await ndjson(shuffled, { ...o, workers: 2, readSize: 8192 })).out).toBe((await ndjson(shuffled, o)).out);
    }
  }, 120_000);

  it('on 2 000 short connections, with --subdirs and through the CLI', async () => {
    const file = path.join(tmp, 'short.pcap');
    await (writeShortConns(file, { conns: 2000, concurrent: 50, seconds: 5 }) as Promise<unknown>);
    const one = newDir();
    const two = newDir();
    expect((await runCli(['read', file, '--sink', 'files', '-o', one, '--subdirs', 'k'])).code).toBe(0);
    expect((await runCli(['read', file, '--sink', 'files', '-o', two, '--subdirs', 'k', '--workers', '2'])).code).toBe(0);
    expect(isDeepStrictEqual(treeContents(two), treeContents(one))).toBe(true);
    expect(treeContents(one).size).toBeGreaterThan(4000);
    const a = await runCli(['read', file, '--sink', 'ndjson']);
    const b = await runCli(['read', file, '--sink', 'ndjson', '--workers', '3', '--stats']);
    expect(b.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(b.stderr).toMatch(/reassembler/);
  }, 120_000);
});

describe('--workers: bad options and failures', () => {
  it('needs a files or ndjson sink, and a count from 0 to 256', async () => {
    const file = path.join(FIXTURES, fs.readdirSync(FIXTURES).find((f) => f.endsWith('.pcap'))!);
    const sink = new Writable({ objectMode: true, write: (_c, _e, cb) => cb() });
    for (const options of [
      { sink: { type: 'stdout' as const }, workers: 2 },
      { sink, workers: 1 },
      { sink: { type: 'ndjson' as const, dest: new CollectingWritable() }, workers: -1 },
      { sink: { type: 'ndjson' as const, dest: new CollectingWritable() }, workers: 1.5 },
    ]) {
      const err = await settle(readCaptures(file, options as ReadCapturesOptions));
      expect(isPcapflowError(err) && err.code === 'INVALID_OPTION', JSON.stringify(options.workers)).toBe(true);
    }
    const r = await runCli(['read', file, '--workers', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/INVALID_OPTION/);
    expect((await runCli(['read', file, '--sink', 'ndjson', '--workers', 'x'])).code).toBe(2);
  });

  it('NDJSON into a pipe read slowly: the same bytes (the workers\' output buffers are reused only once written)', async () => {
    const file = path.join(tmp, 'pipe.pcap');
    await (writeCapture(file, { conns: 16, bytesPerConn: 1_000_000, mss: 1448, interleave: 4 }) as Promise<unknown>);
    const run = (workers: string): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const child = spawn('node', [path.join(REPO_ROOT, 'bin/pcapflow.js'), 'read', file, '--sink', 'ndjson', '--workers', workers], { stdio: ['ignore', 'pipe', 'inherit'] });
        const chunks: Buffer[] = [];
        // a slow reader: the pipe fills, writes wait
        child.stdout.on('data', (c: Buffer) => {
          chunks.push(c);
          child.stdout.pause();
          setTimeout(() => child.stdout.resume(), 1);
        });
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`exit ${code}`))));
      });
    const one = await run('0');
    expect(one.length).toBeGreaterThan(20_000_000);
    expect((await run('2')).equals(one)).toBe(true);
  }, 120_000);

  it('NDJSON into a pipe whose reader goes away (| head): exits 0 at once, no worker left running', async () => {
    const file = path.join(tmp, 'epipe.pcap');
    await (writeCapture(file, { conns: 8, bytesPerConn: 2_000_000, mss: 1448, interleave: 4 }) as Promise<unknown>);
    const child = spawn('node', [path.join(REPO_ROOT, 'bin/pcapflow.js'), 'read', file, '--sink', 'ndjson', '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.once('data', () => child.stdout.destroy());
      child.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(0);
  }, 60_000);

  it('a files directory that cannot be made fails with OUTPUT_FAILED, no hang', async () => {
    const blocker = path.join(tmp, 'blocker');
    fs.writeFileSync(blocker, 'a file where the directory should be');
    const file = sharedCaptures()[0]!;
    const err = await settle(readCaptures(file, { sink: { type: 'files', dir: path.join(blocker, 'out') }, workers: 2 }));
    expect(isPcapflowError(err) && err.code === 'OUTPUT_FAILED', String(err)).toBe(true);
  });
});
