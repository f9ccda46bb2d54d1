/**
 * `--sink nats` (NatsSink) and `pcapflow consume` (consumeRun) against a real nats-server with
 * JetStream, started here on a free loopback port with its own store directory, and the pure
 * wire core (core/nats-wire.ts). Without nats-server the server suite is skipped; under CI=true
 * its absence fails (needTool).
 *
 * Server cases: every shared capture (and two fixtures) goes `read --sink nats`, then
 * `consume --sink files`, and the directory equals what `read --sink files` writes (every file
 * byte for byte, connections.ndjson included); the CLI path both ways (the printed default run id,
 * --sink ndjson equal too); a second publish of a run adds no message (all duplicates); a data
 * event over 256 KiB is cut and joined back; a window of one message still completes; a stream
 * that does not take the subjects, a full stream (discard new), a missing run and a missing
 * stream fail with their codes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPcapflowError, PcapflowError } from '../src/core/errors.js';
import type { StreamEvent } from '../src/core/events.js';
import {
  bucketOfOpen,
  decodeNatsMessage,
  NATS_MAX_DATA_BYTES,
  NatsWireEncoder,
  RunAssembler,
  subjectCovers,
  type DecodedMessage,
  type WireMessage,
} from '../src/core/nats-wire.js';
import { buildSink, readCaptures } from '../src/read-pipeline.js';
import { NatsSink } from '../src/sinks/nats-sink.js';
import { consumeRun } from '../src/sources/nats-source.js';
import { runCli } from './helpers/cli-run.js';
import { dirContents } from './helpers/dir-contents.js';
import { FIXTURES, hasTool, needTool, sharedCaptures } from './helpers/env.js';
import { closeEvent, dataEvent, endpoints, gapEvent, openEvent, pattern } from './helpers/sink-events.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-nats-'));
let dirs = 0;
const newDir = (): string => path.join(tmp, `out${dirs++}`);

/** EventCollector: an object-mode sink that keeps every event. */
class EventCollector extends Writable {
  readonly events: StreamEvent[] = [];
  constructor() {
    super({ objectMode: true });
  }
  override _write(batch: StreamEvent[], _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    for (const e of batch) this.events.push(e.type === 'data' ? { ...e, data: Uint8Array.from(e.data) } : e);
    cb();
  }
}

/** comparable: an event as JSON with its bytes as hex (key order kept). */
const comparable = (e: StreamEvent): string => JSON.stringify(e.type === 'data' ? { ...e, data: Buffer.from(e.data).toString('hex') } : e);

async function codeOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (err) {
    if (isPcapflowError(err)) return err.code;
    throw err;
  }
}

// --- the pure core ---

function sampleEvents(): StreamEvent[] {
  const { client, server } = endpoints(3);
  const open = { ...openEvent(3, client, server, [10, 20]), options: { c2s: { mss: 1460, wscale: 7, sackPermitted: true }, s2c: {} } };
  return [
    open,
    dataEvent(3, 'c2s', 0, pattern(3, 'c2s', 0, 100)),
    gapEvent(3, 's2c', 0, 1448),
    { type: 'overlap', conn: 3, dir: 'c2s', offset: 10, len: 4, ts: open.ts, kept: 'first' },
    dataEvent(3, 's2c', 1448, pattern(3, 's2c', 1448, 0)),
    closeEvent(open, 100, 0, { s2c: [1, 1448] }),
  ];
}

function decodeAll(msgs: readonly WireMessage[]): DecodedMessage[] {
  return msgs.map((m) => decodeNatsMessage(m.subject, m.payload, 1));
}

describe('nats-wire core', () => {
  it('encodes every event type and decodes it back exactly (key order too)', () => {
    const events = sampleEvents();
    const enc = new NatsWireEncoder({ prefix: 'pf', runId: 'r1' });
    const msgs: WireMessage[] = [];
    for (const e of events) enc.encode(e, msgs);
    msgs.push(enc.end());
    const bucket = bucketOfOpen(events[0] as Extract<StreamEvent, { type: 'open' }>);
    expect(msgs.map((m) => m.subject)).toEqual([...['open', 'data', 'gap', 'overlap', 'data', 'close'].map((t) => `pf.r1.0.${bucket}.${t}`), 'pf.r1.0.end']);
    expect(msgs.map((m) => m.msgId)).toEqual([1, 2, 3, 4, 5, 6, 7].map((s) => `r1:0:${s}`));
    expect(msgs[2]!.headers).toEqual([
      ['Pcapflow-Seq', '3'],
      ['Pcapflow-Conn', '3'],
      ['Pcapflow-Conn-Seq', '3'],
    ]);
    const data = Buffer.from(msgs[1]!.payload);
    const nl = data.indexOf(0x0a);
    expect(JSON.parse(data.subarray(0, nl).toString())).toEqual({ type: 'data', conn: 3, dir: 'c2s', offset: 0, ts: events[1]!.ts, len: 100, seq: 2, cseq: 2 });
    expect(Buffer.compare(data.subarray(nl + 1), Buffer.from(pattern(3, 'c2s', 0, 100)))).toBe(0);
    const out: StreamEvent[] = [];
    const asm = new RunAssembler();
    for (const d of decodeAll(msgs)) asm.push(d, (e) => out.push(e));
    expect(asm.complete).toBe(true);
    expect(out.map(comparable)).toEqual(events.map(comparable));
    expect(JSON.parse(Buffer.from(msgs[6]!.payload).toString())).toMatchObject({ type: 'end', seq: 7, shards: 1, events: 6, messages: 6 });
  });

  it('cuts a data event over maxDataBytes into parts and joins them back', () => {
    const { client, server } = endpoints(1);
    const open = openEvent(1, client, server);
    const big = pattern(1, 'c2s', 5, 2 * NATS_MAX_DATA_BYTES + 1000);
    const events: StreamEvent[] = [open, dataEvent(1, 'c2s', 5, big), closeEvent(open, big.length, 0)];
    const enc = new NatsWireEncoder({ prefix: 'a.b', runId: 'cut', shard: 2, shards: 3 });
    const msgs: WireMessage[] = [];
    for (const e of events) enc.encode(e, msgs);
    msgs.push(enc.end());
    expect(enc.cut).toBe(1);
    expect(msgs).toHaveLength(6);
    const decoded = msgs.map((m) => decodeNatsMessage(m.subject, m.payload, 2));
    const parts = decoded.slice(1, 4).map((d) => (d.kind === 'event' && d.event.type === 'data' ? [d.part, d.parts, d.event.offset, d.event.data.length] : null));
    expect(parts).toEqual([
      [1, 3, 5, NATS_MAX_DATA_BYTES],
      [2, 3, 5 + NATS_MAX_DATA_BYTES, NATS_MAX_DATA_BYTES],
      [3, 3, 5 + 2 * NATS_MAX_DATA_BYTES, 1000],
    ]);
    expect(msgs[2]!.headers).toContainEqual(['Pcapflow-Part', '2/3']);
    expect(msgs.every((m) => m.payload.length < 1024 * 1024 - 4096)).toBe(true);
    expect(msgs[0]!.subject.startsWith('a.b.cut.2-3.')).toBe(true);
    const out: StreamEvent[] = [];
    const asm = new RunAssembler();
    for (const d of decoded) asm.push(d, (e) => out.push(e));
    expect(out.map(comparable)).toEqual(events.map(comparable));
    expect(asm.shards).toBe(3);
    expect(asm.complete).toBe(false); // one of three shards
    expect(asm.missing()).toEqual(['2 of 3 shards not seen']);
  });

  it('restores publish order from any arrival order and drops copies', () => {
    const events: StreamEvent[] = [];
    for (let c = 0; c < 20; c++) {
      const { client, server } = endpoints(c);
      const o = openEvent(c, client, server);
      events.push(o, dataEvent(c, 'c2s', 0, pattern(c, 'c2s', 0, 10 + c)), closeEvent(o, 10 + c, 0));
    }
    const enc = new NatsWireEncoder({ prefix: 'p', runId: 'x', maxDataBytes: 7 });
    const msgs: WireMessage[] = [];
    for (const e of events) enc.encode(e, msgs);
    msgs.push(enc.end());
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 20; round++) {
      const arrival = [...msgs, ...msgs.filter(() => rnd(4) === 0)];
      for (let i = arrival.length - 1; i > 0; i--) {
        const j = rnd(i + 1);
        [arrival[i], arrival[j]] = [arrival[j]!, arrival[i]!];
      }
      const asm = new RunAssembler();
      const out: StreamEvent[] = [];
      for (const d of decodeAll(arrival)) asm.push(d, (e) => out.push(e));
      expect(asm.complete).toBe(true);
      expect(asm.stats.duplicates).toBe(arrival.length - msgs.length);
      expect(out.map(comparable)).toEqual(events.map(comparable));
    }
  });

  it('fails past its bound when a message stays missing, and on an end that counts other events', () => {
    const enc = new NatsWireEncoder({ prefix: 'p', runId: 'x' });
    const msgs: WireMessage[] = [];
    for (let c = 0; c < 10; c++) {
      const { client, server } = endpoints(c);
      enc.encode(openEvent(c, client, server), msgs);
    }
    const asm = new RunAssembler({ maxHeldMessages: 5 });
    const decoded = decodeAll(msgs.slice(1));
    for (const d of decoded.slice(0, 5)) asm.push(d, () => undefined);
    let err: unknown = null;
    try {
      asm.push(decoded[5]!, () => undefined);
    } catch (e) {
      err = e;
    }
    expect((err as PcapflowError).code).toBe('INPUT_READ_FAILED');
    expect((err as PcapflowError).message).toMatch(/message 1 is missing/);
    // an end message whose count differs from what came
    const end = enc.end();
    const lying = decodeNatsMessage(end.subject, Buffer.from(Buffer.from(end.payload).toString().replace('"events":10', '"events":11')), 1);
    const asm2 = new RunAssembler();
    for (const d of decodeAll(msgs)) asm2.push(d, () => undefined);
    expect(() => asm2.push(lying, () => undefined)).toThrow(/11 events sent, 10 received/);
    expect(() => decodeNatsMessage('p.x.0.1.data', new TextEncoder().encode('{"type":"data","seq":1,"cseq":1,"len":3}\nab'), 1)).toThrow(PcapflowError);
  });

  it('matches subjects as NATS does, and buckets both directions alike', () => {
    expect(subjectCovers('pcapflow.>', 'pcapflow.r.>')).toBe(true);
    expect(subjectCovers('>', 'pcapflow.r.>')).toBe(true);
    expect(subjectCovers('pcapflow.*.>', 'pcapflow.r.>')).toBe(true);
    expect(subjectCovers('pcapflow.r.>', 'pcapflow.r.>')).toBe(true);
    expect(subjectCovers('pcapflow.r.*', 'pcapflow.r.>')).toBe(false);
    expect(subjectCovers('pcapflow.s.>', 'pcapflow.r.>')).toBe(false);
    expect(subjectCovers('other.>', 'pcapflow.r.>')).toBe(false);
    expect(subjectCovers('pcapflow', 'pcapflow.r.>')).toBe(false);
    const a = { client: { ip: '10.0.0.1', port: 40000 }, server: { ip: '10.0.0.2', port: 80 }, vlan: [] };
    expect(bucketOfOpen(a)).toBe(bucketOfOpen({ client: a.server, server: a.client, vlan: [] }));
    const buckets = new Set<number>();
    for (let i = 0; i < 2000; i++) buckets.add(bucketOfOpen({ ...endpoints(i), vlan: [] }));
    expect(buckets.size).toBe(64);
    expect(() => new NatsWireEncoder({ prefix: 'p', runId: 'a.b' })).toThrow(/run id/);
    expect(() => new NatsWireEncoder({ prefix: 'p.>', runId: 'a' })).toThrow(/subject prefix/);
  });
});

// --- a real server ---

/** nats-server on PATH, or where Debian puts it (/usr/sbin, often not on a user's PATH). */
const NATS_SERVER = hasTool('nats-server') ? 'nats-server' : fs.existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null;
const haveServer = NATS_SERVER !== null || needTool('nats-server');
let server: ChildProcess | null = null;
let url = '';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
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

/** streamState: the message count of `stream` (and of one run's subjects when `filter` is given). */
async function streamMessages(stream: string): Promise<number> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: [url] });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

async function addStream(config: { name: string; subjects: string[]; max_msgs?: number; discard?: 'new' | 'old' }): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager, DiscardPolicy } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: [url] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ ...config, discard: config.discard === 'new' ? DiscardPolicy.New : DiscardPolicy.Old });
  } finally {
    await nc.close();
  }
}

const filesSink = (dir: string): Writable => buildSink({ type: 'files', dir, writeThread: false }, 16 << 20, null);

/**
 * directAndBack: `read --sink files` and `read --sink nats` + consume into files, through the
 * library: their contents and the failure codes of the direct read, the publishing read and the
 * consume.
 */
async function directAndBack(capture: string, runId: string): Promise<{ direct: Map<string, string>; back: Map<string, string>; codes: (string | null)[] }> {
  const a = newDir();
  const b = newDir();
  const direct = await codeOf(readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } }));
  const published = await codeOf(readCaptures(capture, { sink: new NatsSink({ servers: [url], runId }) }));
  const consumed = await codeOf(consumeRun({ servers: [url], runId, sink: filesSink(b), idleTimeout: 5000 }));
  return { direct: dirContents(a), back: dirContents(b), codes: [direct, published, consumed] };
}

beforeAll(async () => {
  if (!haveServer) return;
  const port = await freePort();
  const store = path.join(tmp, 'store');
  fs.mkdirSync(store);
  server = spawn(NATS_SERVER!, ['-js', '-p', String(port), '-a', '127.0.0.1', '-sd', store], { stdio: 'ignore' });
  url = `127.0.0.1:${port}`;
  await waitForPort(port, 10000);
});

afterAll(async () => {
  if (server !== null && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!haveServer)('nats-server', () => {
  it('every shared capture: read --sink nats, then consume --sink files, equals read --sink files', async () => {
    const captures = [...sharedCaptures(), path.join(FIXTURES, 'zeek__ipv4-frags-out-of-order.pcap'), path.join(FIXTURES, 'suricata-verify__ipv6-frag-tcp-linktype229.pcap')];
    let files = 0;
    let failed = 0;
    let i = 0;
    for (const capture of captures) {
      const { direct, back, codes } = await directAndBack(capture, `all-${i++}`);
      // a truncated or corrupt capture: the same output and the same error all three ways
      expect(codes[1], capture).toBe(codes[0]);
      expect(codes[2], capture).toBe(codes[0]);
      expect(back, capture).toEqual(direct);
      files += direct.size;
      if (codes[0] !== null) failed++;
    }
    expect(files).toBeGreaterThan(500);
    expect(failed).toBe(4);
  }, 60000);

  it('the CLI both ways: the printed run id, --sink files and ndjson equal to read', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__null-http-range-41-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    expect((await runCli(['read', capture, '--sink', 'files', '-o', a])).code).toBe(0);
    const pub = await runCli(['read', capture, '--sink', 'nats', '--nats-url', url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli']);
    expect(pub.code, pub.stderr).toBe(0);
    const runId = /--run-id (run-[0-9a-f]{16})/.exec(pub.stderr)?.[1];
    expect(runId).toBeDefined();
    // the same job derives the same id
    const again = await runCli(['read', capture, '--sink', 'nats', '--nats-url', url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--stats']);
    expect(again.stderr).toContain(`--run-id ${runId}`);
    expect(again.stderr).toMatch(/sink\.duplicates\s+(\d+)/);
    const st = /sink\.acked\s+(\d+)/.exec(again.stderr)![1];
    expect(/sink\.duplicates\s+(\d+)/.exec(again.stderr)![1]).toBe(st);
    const con = await runCli(['consume', '--nats-url', url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--run-id', runId!, '--sink', 'files', '-o', b]);
    expect(con.code, con.stderr).toBe(0);
    expect(dirContents(b)).toEqual(dirContents(a));
    const nd = await runCli(['read', capture, '--sink', 'ndjson']);
    const ndBack = await runCli(['consume', '--nats-url', url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--run-id', runId!, '--sink', 'ndjson']);
    expect(ndBack.code, ndBack.stderr).toBe(0);
    expect(ndBack.stdout).toBe(nd.stdout);
    // wrong or missing options
    expect((await runCli(['read', capture, '--sink', 'nats'])).stderr).toMatch(/INVALID_OPTION: --sink nats needs --nats-url/);
    expect((await runCli(['consume', '--nats-url', url])).code).toBe(2);
  }, 30000);

  it('two shards of one run: consume gives every file of the unsharded read, and its connection records', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('pcapplusplus__mixed-126-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    await readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } });
    const acked: number[] = [];
    for (const index of [1, 2]) {
      const sink = new NatsSink({ servers: [url], runId: 'sharded', stream: 'SHARDS', prefix: 'shards', shard: index, shards: 2 });
      await readCaptures(capture, { sink, shard: { index, count: 2 } });
      acked.push(sink.stats.acked);
    }
    expect(Math.min(...acked)).toBeGreaterThan(100);
    const stats = await consumeRun({ servers: [url], runId: 'sharded', stream: 'SHARDS', prefix: 'shards', sink: filesSink(b) });
    expect(stats.shards).toBe(2);
    const lines = (dir: string): string[] => fs.readFileSync(path.join(dir, 'connections.ndjson'), 'utf8').split('\n').sort();
    expect(lines(b)).toEqual(lines(a));
    const flows = (dir: string): Map<string, string> => new Map([...dirContents(dir)].filter(([name]) => name !== 'connections.ndjson'));
    expect(flows(b)).toEqual(flows(a));
    expect(flows(a).size).toBeGreaterThan(100);
  });

  it('publishing a run again adds no message: every publish is a duplicate', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__ftp-data-80-conns.pcap'))!;
    const first = new NatsSink({ servers: [url], runId: 'again', stream: 'AGAIN', prefix: 'again' });
    await readCaptures(capture, { sink: first });
    const count = await streamMessages('AGAIN');
    expect(count).toBe(first.stats.acked);
    expect(first.stats.duplicates).toBe(0);
    expect(first.stats.created).toBe(true);
    const second = new NatsSink({ servers: [url], runId: 'again', stream: 'AGAIN', prefix: 'again' });
    await readCaptures(capture, { sink: second });
    expect(second.stats.created).toBe(false);
    expect(second.stats.duplicates).toBe(second.stats.acked);
    expect(second.stats.acked).toBe(count);
    expect(await streamMessages('AGAIN')).toBe(count);
  });

  it('cuts a data event over 256 KiB into messages within max_payload, and consume joins it back', async () => {
    const { client, server: srv } = endpoints(7);
    const open = openEvent(7, client, srv);
    const big = pattern(7, 's2c', 0, 700 * 1024);
    const events: StreamEvent[] = [open, dataEvent(7, 'c2s', 0, pattern(7, 'c2s', 0, 10)), dataEvent(7, 's2c', 0, big), closeEvent(open, 10, big.length)];
    const sink = new NatsSink({ servers: [url], runId: 'cut', stream: 'CUT', prefix: 'cut' });
    await pipeline(Readable.from([events.slice(0, 2), events.slice(2)], { objectMode: true }), sink);
    expect(sink.stats.cut).toBe(1);
    expect(sink.stats.acked).toBe(1 + 1 + 3 + 1 + 1); // open, data, 3 parts, close, end
    expect(await streamMessages('CUT')).toBe(7);
    const got = new EventCollector();
    const stats = await consumeRun({ servers: [url], runId: 'cut', stream: 'CUT', prefix: 'cut', sink: got });
    expect(stats.events).toBe(4);
    expect(got.events.map(comparable)).toEqual(events.map(comparable));
  });

  it('a window of one message and one byte still completes, never more than one publish pending', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__null-http-range-41-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    await readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } });
    const sink = new NatsSink({ servers: [url], runId: 'tiny', stream: 'TINY', prefix: 'tiny', maxPending: 1, maxPendingBytes: 1 });
    await readCaptures(capture, { sink });
    expect(sink.stats.maxPending).toBe(1);
    expect(sink.stats.acked).toBeGreaterThan(100);
    await consumeRun({ servers: [url], runId: 'tiny', stream: 'TINY', prefix: 'tiny', sink: filesSink(b) });
    expect(dirContents(b)).toEqual(dirContents(a));
  });

  it('fails with OUTPUT_FAILED and the reason: a stream of other subjects, a full stream', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__ftp-data-80-conns.pcap'))!;
    await addStream({ name: 'OTHER', subjects: ['other.>'] });
    let err: unknown = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: [url], runId: 'w', stream: 'OTHER', prefix: 'wrong' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/do not take wrong\.w\.>/);
    expect(await streamMessages('OTHER')).toBe(0);
    await addStream({ name: 'FULL', subjects: ['full.>'], max_msgs: 5, discard: 'new' });
    err = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: [url], runId: 'f', stream: 'FULL', prefix: 'full' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/maximum messages exceeded/);
    err = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: ['127.0.0.1:1'], runId: 'f' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/cannot connect/);
  });

  it('consume fails clearly on a missing stream and on a run that never completes', async () => {
    expect(await codeOf(consumeRun({ servers: [url], runId: 'x', stream: 'NOPE', sink: new EventCollector() }))).toBe('INPUT_NOT_FOUND');
    let err: unknown = null;
    await consumeRun({ servers: [url], runId: 'never', sink: new EventCollector(), idleTimeout: 300 }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('INPUT_READ_FAILED');
    expect((err as PcapflowError).message).toMatch(/no message of run never/);
    // a run without its end message (a reader killed mid-run): incomplete after the idle timeout
    const { client, server: srv } = endpoints(1);
    const half = new NatsSink({ servers: [url], runId: 'half', stream: 'HALF', prefix: 'half' });
    half.write([openEvent(1, client, srv)]);
    await new Promise<void>((resolve) => half.write([dataEvent(1, 'c2s', 0, pattern(1, 'c2s', 0, 5))], () => resolve()));
    while (half.stats.acked < 2) await new Promise((r) => setTimeout(r, 10));
    half.destroy();
    err = null;
    const got = new EventCollector();
    await consumeRun({ servers: [url], runId: 'half', stream: 'HALF', prefix: 'half', sink: got, idleTimeout: 300 }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).message).toMatch(/run half is incomplete: shard 0: next message 3, end not seen/);
    expect(got.events).toHaveLength(2); // what came is given to the sink, which is finished
  });
});

describe.skipIf(!haveServer)('nats-server restarts', () => {
  it('a run stopped mid-way and run again with the same id: no copy in the stream, consume equals read', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('pcapplusplus__mixed-126-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    await readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } });
    const first = new NatsSink({ servers: [url], runId: 'restart', stream: 'RESTART', prefix: 'restart', maxPending: 8 });
    const stop = new AbortController();
    const timer = setInterval(() => {
      if (first.stats.acked > 200) stop.abort();
    }, 1);
    const err = await readCaptures(capture, { sink: first, signal: stop.signal, readSize: 16384 }).then(
      () => null,
      (e: unknown) => e,
    );
    clearInterval(timer);
    expect((err as Error).name).toBe('AbortError');
    const partial = await streamMessages('RESTART');
    expect(partial).toBe(first.stats.acked);
    const second = new NatsSink({ servers: [url], runId: 'restart', stream: 'RESTART', prefix: 'restart' });
    await readCaptures(capture, { sink: second });
    expect(second.stats.duplicates).toBe(partial);
    expect(await streamMessages('RESTART')).toBe(second.stats.acked);
    expect(second.stats.acked).toBeGreaterThan(partial);
    await consumeRun({ servers: [url], runId: 'restart', stream: 'RESTART', prefix: 'restart', sink: filesSink(b) });
    expect(dirContents(b)).toEqual(dirContents(a));
  });

  it('waits out a server restart mid-run: publishes retried with their ids, nothing lost or doubled', async () => {
    const port = await freePort();
    const store = path.join(tmp, 'store2');
    fs.mkdirSync(store);
    const start = (): ChildProcess => spawn(NATS_SERVER!, ['-js', '-p', String(port), '-a', '127.0.0.1', '-sd', store], { stdio: 'ignore' });
    let proc = start();
    try {
      await waitForPort(port, 10000);
      const events: StreamEvent[][] = [];
      for (let c = 0; c < 300; c++) {
        const { client, server: srv } = endpoints(c);
        const o = openEvent(c, client, srv);
        events.push([o, dataEvent(c, 'c2s', 0, pattern(c, 'c2s', 0, 100 + c)), closeEvent(o, 100 + c, 0)]);
      }
      async function* slowly(): AsyncGenerator<StreamEvent[]> {
        for (const b of events) {
          await new Promise((r) => setTimeout(r, 4));
          yield b;
        }
      }
      const sink = new NatsSink({ servers: [`127.0.0.1:${port}`], runId: 'outage', ackTimeout: 300, retryFor: 30000, maxPending: 16 });
      const done = pipeline(Readable.from(slowly(), { objectMode: true }), sink);
      while (sink.stats.acked < 100) await new Promise((r) => setTimeout(r, 5));
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      await new Promise((r) => setTimeout(r, 500));
      proc = start();
      await done;
      expect(sink.stats.retries).toBeGreaterThan(0);
      expect(sink.stats.acked).toBe(901);
      const got = new EventCollector();
      await consumeRun({ servers: [`127.0.0.1:${port}`], runId: 'outage', sink: got });
      expect(got.events.map(comparable)).toEqual(events.flat().map(comparable));
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: [`127.0.0.1:${port}`] });
      expect((await (await jetstreamManager(nc)).streams.info('PCAPFLOW')).state.messages).toBe(901);
      await nc.close();
    } finally {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
    }
  }, 40000);
});
