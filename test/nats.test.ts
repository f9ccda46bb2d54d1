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
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { freePorts, haveNatsServer, natsForSuite, spawnNats, waitForPort } from './helpers/nats-server.js';
import { isPcapflowError, PcapflowError } from '../src/core/errors.js';
import type { DataEvent, StreamEvent } from '../src/core/events.js';
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
import { FIXTURES, sharedCaptures } from './helpers/env.js';
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
    msgs.push(...enc.end());
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
    expect(JSON.parse(data.subarray(0, nl).toString())).toEqual({ type: 'data', conn: 3, dir: 'c2s', seq: 2, cseq: 2, events: [[0, 100, events[1]!.ts]] });
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
    msgs.push(...enc.end());
    expect(enc.cut).toBe(1);
    expect(msgs).toHaveLength(6);
    const decoded = msgs.map((m) => decodeNatsMessage(m.subject, m.payload, 2));
    const parts = decoded.slice(1, 4).map((d) => (d.kind === 'event' && d.events.length === 1 && d.events[0]!.type === 'data' ? [d.part, d.parts, d.events[0]!.offset, d.events[0]!.data.length] : null));
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
    msgs.push(...enc.end());
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
    const end = enc.end()[0]!;
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

describe('nats-wire packing of adjacent data events', () => {
  /** The decoded data messages' events as [conn, dir, offset, len] lists, and every message's kind. */
  const shape = (decoded: readonly DecodedMessage[]): (string | number[][])[] =>
    decoded.map((d) => (d.kind === 'end' ? 'end' : d.events[0]!.type !== 'data' ? d.events[0]!.type : (d.events as DataEvent[]).map((e) => [e.conn, e.dir === 'c2s' ? 0 : 1, e.offset, e.data.length])));

  /** Distinct ts per event, so that a ts taken from the wrong event shows. */
  const data = (conn: number, dir: 'c2s' | 's2c', offset: number, len: number): StreamEvent => ({ ...dataEvent(conn, dir, offset, pattern(conn, dir, offset, len)), ts: `1700000000.${String(offset * 7 + len).padStart(9, '0')}` });

  /** The text of a data message's entries (`[O,L,T],...`). */
  const entriesOf = (m: WireMessage): string => {
    const text = Buffer.from(m.payload.subarray(0, m.payload.indexOf(0x0a))).toString();
    return text.slice(text.indexOf('"events":[') + 10, -2);
  };

  /** encode `batches` (encodeBatch each, or with `held` encode each event: packs then span batches), check the round trip. */
  function roundTrip(batches: readonly StreamEvent[][], maxDataBytes?: number, held = false): { msgs: WireMessage[]; decoded: DecodedMessage[]; enc: NatsWireEncoder } {
    const enc = new NatsWireEncoder({ prefix: 'pk', runId: 'r', ...(maxDataBytes === undefined ? {} : { maxDataBytes }) });
    const msgs: WireMessage[] = [];
    for (const b of batches) {
      if (held) for (const e of b) enc.encode(e, msgs);
      else enc.encodeBatch(b, msgs);
    }
    msgs.push(...enc.end());
    const decoded = decodeAll(msgs);
    const out: StreamEvent[] = [];
    const asm = new RunAssembler();
    for (const d of decoded) asm.push(d, (e) => out.push(e));
    expect(asm.complete).toBe(true);
    expect(out.map(comparable)).toEqual(batches.flat().map(comparable));
    return { msgs, decoded, enc };
  }

  it('packs only adjacent contiguous data events of one connection and direction', () => {
    const a = endpoints(1);
    const b = endpoints(2);
    const oa = openEvent(1, a.client, a.server);
    const ob = openEvent(2, b.client, b.server);
    const batch: StreamEvent[] = [
      oa,
      ob,
      data(1, 'c2s', 0, 100),
      data(1, 'c2s', 100, 50),
      data(1, 'c2s', 150, 0),
      data(1, 'c2s', 150, 10), // one pack of four
      data(1, 's2c', 0, 20), // another direction
      data(1, 'c2s', 160, 5), // back: a new pack, though contiguous
      data(1, 'c2s', 170, 5), // a hole in the offsets
      data(1, 'c2s', 172, 5), // an overlap in the offsets
      data(2, 'c2s', 177, 5), // another connection
      data(1, 'c2s', 177, 5),
      gapEvent(1, 'c2s', 182, 10),
      data(1, 'c2s', 192, 5),
      { type: 'overlap', conn: 1, dir: 'c2s', offset: 190, len: 2, ts: oa.ts, kept: 'first' },
      data(1, 'c2s', 197, 5),
      data(1, 'c2s', 202, 5),
      closeEvent(oa, 207, 20),
      data(2, 'c2s', 182, 5),
      data(2, 'c2s', 187, 5),
    ];
    const { decoded, msgs, enc } = roundTrip([batch, [data(2, 'c2s', 192, 5), closeEvent(ob, 197, 0)]]);
    expect(shape(decoded)).toEqual([
      'open',
      'open',
      [
        [1, 0, 0, 100],
        [1, 0, 100, 50],
        [1, 0, 150, 0],
        [1, 0, 150, 10],
      ],
      [[1, 1, 0, 20]],
      [[1, 0, 160, 5]],
      [[1, 0, 170, 5]],
      [[1, 0, 172, 5]],
      [[2, 0, 177, 5]],
      [[1, 0, 177, 5]],
      'gap',
      [[1, 0, 192, 5]],
      'overlap',
      [
        [1, 0, 197, 5],
        [1, 0, 202, 5],
      ],
      'close',
      [
        [2, 0, 182, 5],
        [2, 0, 187, 5],
      ],
      [[2, 0, 192, 5]], // the next batch: never one pack across two
      'close',
      'end',
    ]);
    expect(enc.events).toBe(22);
    // SEQ and the connection's sequence count messages, not events
    expect(msgs.map((m) => m.seq)).toEqual(msgs.map((_, i) => i + 1));
    expect(msgs[2]!.headers).toEqual([
      ['Pcapflow-Seq', '3'],
      ['Pcapflow-Conn', '1'],
      ['Pcapflow-Conn-Seq', '2'],
    ]);
    expect(msgs[13]!.headers).toContainEqual(['Pcapflow-Conn-Seq', '12']);
    const head = Buffer.from(msgs[2]!.payload);
    const nl = head.indexOf(0x0a);
    expect(JSON.parse(head.subarray(0, nl).toString())).toEqual({
      type: 'data',
      conn: 1,
      dir: 'c2s',
      seq: 3,
      cseq: 2,
      events: (batch.slice(2, 6) as DataEvent[]).map((e) => [e.offset, e.data.length, e.ts]),
    });
    expect(head.length - nl - 1).toBe(160);
    expect(JSON.parse(Buffer.from(msgs.at(-1)!.payload).toString())).toMatchObject({ type: 'end', events: 22, messages: msgs.length - 1, v: 2 });
    // encode, one event at a time, holds a pack across calls: the two batches' last packs join
    const held = roundTrip([batch, [data(2, 'c2s', 192, 5), closeEvent(ob, 197, 0)]], undefined, true);
    expect(shape(held.decoded).slice(14, 16)).toEqual([
      [
        [2, 0, 182, 5],
        [2, 0, 187, 5],
        [2, 0, 192, 5],
      ],
      'close',
    ]);
  });

  it('keeps a pack within 256 KiB, cuts a longer event alone as before, and round-trips', () => {
    const { client, server } = endpoints(4);
    const open = openEvent(4, client, server);
    const events: StreamEvent[] = [open];
    let off = 0;
    const push = (len: number): void => {
      events.push(data(4, 's2c', off, len));
      off += len;
    };
    for (let i = 0; i < 500; i++) push(1448);
    push(NATS_MAX_DATA_BYTES + 1); // cut in two
    for (let i = 0; i < 3; i++) push(1448);
    push(NATS_MAX_DATA_BYTES); // fits alone
    push(1);
    events.push(closeEvent(open, 0, off));
    const { decoded, msgs, enc } = roundTrip([events]);
    expect(enc.cut).toBe(1);
    const dataMsgs = decoded.filter((d): d is Extract<DecodedMessage, { kind: 'event' }> => d.kind === 'event' && d.events[0]!.type === 'data');
    const sizes = dataMsgs.map((d) => d.events.reduce((n, e) => n + (e as DataEvent).data.length, 0));
    expect(Math.max(...sizes)).toBe(NATS_MAX_DATA_BYTES);
    expect(msgs.every((m) => m.payload.length <= NATS_MAX_DATA_BYTES + 1024)).toBe(true);
    // 500 segments: as few packs as the bound allows (each pack but the last of the run is full)
    const counts = dataMsgs.map((d) => d.events.length);
    expect(counts.slice(0, 2).every((n) => n > 170 && n <= 181)).toBe(true);
    expect(counts.slice(0, 3).reduce((x, y) => x + y, 0)).toBe(500);
    expect(dataMsgs.slice(3, 5).map((d) => [d.part, d.parts, d.events.length])).toEqual([
      [1, 2, 1],
      [2, 2, 1],
    ]);
    expect(counts.slice(5)).toEqual([3, 1, 1]);
    expect(sizes.slice(5)).toEqual([3 * 1448, NATS_MAX_DATA_BYTES, 1]);
    for (const d of dataMsgs.slice(0, 2)) {
      const last = d.events.at(-1) as DataEvent;
      const nextEntry = `,[${last.offset + 1448},1448,${JSON.stringify(events[1 + d.events.length]!.ts)}]`;
      expect(sizes[dataMsgs.indexOf(d)]! + entriesOf(msgs[d.seq - 1]!).length).toBeLessThanOrEqual(NATS_MAX_DATA_BYTES);
      expect(sizes[dataMsgs.indexOf(d)]! + entriesOf(msgs[d.seq - 1]!).length + nextEntry.length + 1448).toBeGreaterThan(NATS_MAX_DATA_BYTES);
    }
  });

  it('round-trips random event sequences in random batches, packs maximal', () => {
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let round = 0; round < 30; round++) {
      const max = 64 + rnd(200);
      const events: StreamEvent[] = [];
      const next = new Map<string, number>();
      const opens = [1, 2, 3].map((c) => openEvent(c, endpoints(c).client, endpoints(c).server));
      events.push(...opens);
      for (let i = 0; i < 300; i++) {
        const conn = 1 + rnd(rnd(4) === 0 ? 3 : 1);
        const dir = rnd(5) === 0 ? 's2c' : 'c2s';
        const key = `${conn}${dir}`;
        let offset = next.get(key) ?? 0;
        const r = rnd(20);
        if (r === 0) events.push(gapEvent(conn, dir, offset, 3));
        if (r === 1) offset += 2; // a hole
        if (r === 2) offset = Math.max(0, offset - 2); // an overlap
        const len = rnd(10) === 0 ? max + rnd(3 * max) : rnd(40);
        events.push(data(conn, dir, offset, len));
        next.set(key, offset + len);
      }
      for (const o of opens) events.push(closeEvent(o, 0, 0));
      const batches: StreamEvent[][] = [];
      for (let at = 0; at < events.length; ) {
        const n = 1 + rnd(60);
        batches.push(events.slice(at, at + n));
        at += n;
      }
      const { decoded, msgs } = roundTrip(batches, max);
      // held across batches: the same messages whatever the batching (a rerun's ids name the same content)
      const whole = roundTrip([events], max, true).msgs;
      const again = roundTrip(batches, max, true).msgs;
      expect(again.map((m) => [m.msgId, m.subject, Buffer.from(m.payload).toString('hex')])).toEqual(whole.map((m) => [m.msgId, m.subject, Buffer.from(m.payload).toString('hex')]));
      expect(whole.length).toBeLessThanOrEqual(msgs.length);
      // each pack: one connection and direction, contiguous; within the bound
      const firstSeqOfBatch = new Set<number>();
      const enc2 = new NatsWireEncoder({ prefix: 'pk', runId: 'r', maxDataBytes: max });
      const seen: WireMessage[] = [];
      for (const b of batches) {
        firstSeqOfBatch.add(enc2.seq + 1);
        enc2.encodeBatch(b, seen);
      }
      for (let i = 0; i < decoded.length; i++) {
        const d = decoded[i]!;
        if (d.kind !== 'event' || d.events[0]!.type !== 'data') continue;
        const es = d.events as DataEvent[];
        const bytes = es.reduce((n, e) => n + e.data.length, 0);
        if (d.parts === 1) expect(bytes).toBeLessThanOrEqual(max);
        for (let j = 1; j < es.length; j++) {
          expect([es[j]!.conn, es[j]!.dir, es[j]!.offset]).toEqual([es[0]!.conn, es[0]!.dir, es[j - 1]!.offset + es[j - 1]!.data.length]);
        }
        // maximal: the next message could not have joined (another kind, connection, direction or offset, another batch, or too big)
        const n = decoded[i + 1]!;
        if (d.parts > 1 || n.kind !== 'event' || n.parts > 1 || n.events[0]!.type !== 'data' || firstSeqOfBatch.has(n.seq)) continue;
        const f = n.events[0] as DataEvent;
        const last = es.at(-1)!;
        if (f.conn !== last.conn || f.dir !== last.dir || f.offset !== last.offset + last.data.length) continue;
        expect(bytes + entriesOf(msgs[i]!).length + 1 + f.data.length + `[${f.offset},${f.data.length},${JSON.stringify(f.ts)}]`.length).toBeGreaterThan(max);
      }
    }
  });

  it('reuses an arena only once every payload carved from it was released', () => {
    const { client, server } = endpoints(5);
    const open = openEvent(5, client, server);
    const events: StreamEvent[] = [open];
    for (let i = 0; i < 1600; i++) events.push(data(5, 'c2s', i * 1448, 1448)); // about 9 packs, over 2 MiB
    events.push(closeEvent(open, 1600 * 1448, 0));
    for (const release of [false, true]) {
      const enc = new NatsWireEncoder({ prefix: 'pk', runId: 'r' });
      const asm = new RunAssembler();
      const out: StreamEvent[] = [];
      const buffers = new Set<ArrayBufferLike>();
      let dataMsgs = 0;
      const take = (msgs: WireMessage[]): void => {
        for (const m of msgs) {
          // consumed (copied) before the payload is released
          asm.push(decodeNatsMessage(m.subject, m.payload, 1), (e) => out.push(e.type === 'data' ? { ...e, data: Uint8Array.from(e.data) } : e));
          if (m.subject.endsWith('.data')) {
            dataMsgs++;
            buffers.add(m.payload.buffer);
          }
          if (release && m.seq !== 2) enc.release(m.payload); // the first pack's held: its arena never returns
        }
      };
      for (const e of events) {
        const msgs: WireMessage[] = [];
        enc.encode(e, msgs);
        take(msgs);
      }
      take(enc.end());
      expect(asm.complete).toBe(true);
      expect(out.map(comparable)).toEqual(events.map(comparable));
      expect(dataMsgs).toBeGreaterThan(8);
      // four packs fill an arena: without release each arena is new; with it the first stays held
      // (one payload of it is), the second is reused for all the rest
      expect(buffers.size).toBe(release ? 2 : Math.ceil(dataMsgs / 4));
    }
  });

  it('refuses a run of layout version 1', () => {
    const te = new TextEncoder();
    const v1 = te.encode('{"type":"data","conn":1,"dir":"c2s","offset":0,"ts":"1.0","len":3,"seq":2,"cseq":2}\nabc');
    expect(() => decodeNatsMessage('p.x.0.1.data', v1, 1)).toThrow(/layout version 1, this pcapflow reads 2/);
    const end1 = te.encode('{"type":"end","seq":3,"shard":"0","shards":1,"events":2,"messages":2,"v":1}');
    expect(() => decodeNatsMessage('p.x.0.end', end1, 1)).toThrow(/layout version 1, this pcapflow reads 2/);
    let err: unknown = null;
    try {
      decodeNatsMessage('p.x.0.1.data', v1, 1);
    } catch (e) {
      err = e;
    }
    expect((err as PcapflowError).code).toBe('INPUT_READ_FAILED');
    // lengths that do not add up to the bytes
    expect(() => decodeNatsMessage('p.x.0.1.data', te.encode('{"type":"data","conn":1,"dir":"c2s","seq":2,"cseq":2,"events":[[0,2,"1.0"]]}\nabc'), 1)).toThrow(/lengths/);
    expect(() => decodeNatsMessage('p.x.0.1.data', te.encode('{"type":"data","conn":1,"dir":"c2s","seq":2,"cseq":2,"events":[[0,4,"1.0"]]}\nabc'), 1)).toThrow(/lengths/);
  });
});

// --- a real server ---

const haveServer = haveNatsServer();

/** streamState: the message count of `stream` (and of one run's subjects when `filter` is given). */
async function streamMessages(stream: string): Promise<number> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: [nats.url] });
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
  const nc = await connect({ servers: [nats.url] });
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
 * library, and the same for NDJSON (read straight to a file, and consumed from the run): their
 * contents and the failure codes of the direct reads, the publishing read and the consumes.
 */
async function directAndBack(capture: string, runId: string): Promise<{ direct: Map<string, string>; back: Map<string, string>; ndDirect: string; ndBack: string; codes: (string | null)[] }> {
  const a = newDir();
  const b = newDir();
  const nd = `${newDir()}.ndjson`;
  const ndb = `${newDir()}.ndjson`;
  const direct = await codeOf(readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } }));
  const ndDirect = await codeOf(readCaptures(capture, { sink: { type: 'ndjson', dest: fs.createWriteStream(nd) } }));
  const published = await codeOf(readCaptures(capture, { sink: new NatsSink({ servers: [nats.url], runId }) }));
  const consumed = await codeOf(consumeRun({ servers: [nats.url], runId, sink: filesSink(b), idleTimeout: 5000 }));
  const ndConsumed = await codeOf(consumeRun({ servers: [nats.url], runId, sink: buildSink({ type: 'ndjson', dest: fs.createWriteStream(ndb) }, 16 << 20, null), idleTimeout: 5000 }));
  return { direct: dirContents(a), back: dirContents(b), ndDirect: fs.readFileSync(nd, 'utf8'), ndBack: fs.readFileSync(ndb, 'utf8'), codes: [direct, published, consumed, ndDirect, ndConsumed] };
}

const nats = natsForSuite(haveServer, tmp);

describe.skipIf(!haveServer)('nats-server', () => {
  it('every shared capture: read --sink nats, then consume --sink files (ndjson), equals read --sink files (ndjson)', async () => {
    const captures = [...sharedCaptures(), path.join(FIXTURES, 'zeek__ipv4-frags-out-of-order.pcap'), path.join(FIXTURES, 'suricata-verify__ipv6-frag-tcp-linktype229.pcap')];
    let files = 0;
    let failed = 0;
    let nd = 0;
    let i = 0;
    for (const capture of captures) {
      const { direct, back, ndDirect, ndBack, codes } = await directAndBack(capture, `all-${i++}`);
      // a truncated or corrupt capture: the same output and the same error all three ways
      expect(codes[1], capture).toBe(codes[0]);
      expect(codes[2], capture).toBe(codes[0]);
      expect(codes[3], capture).toBe(codes[0]);
      expect(codes[4], capture).toBe(codes[0]);
      expect(back, capture).toEqual(direct);
      expect(ndBack === ndDirect, capture).toBe(true);
      nd += ndDirect.length;
      files += direct.size;
      if (codes[0] !== null) failed++;
    }
    expect(files).toBeGreaterThan(500);
    expect(nd).toBeGreaterThan(1e6);
    expect(failed).toBe(4);
  }, 60000);

  it('the CLI both ways: the printed run id, --sink files and ndjson equal to read', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__null-http-range-41-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    expect((await runCli(['read', capture, '--sink', 'files', '-o', a])).code).toBe(0);
    const pub = await runCli(['read', capture, '--sink', 'nats', '--nats-url', nats.url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli']);
    expect(pub.code, pub.stderr).toBe(0);
    const runId = /--run-id (run-[0-9a-f]{16})/.exec(pub.stderr)?.[1];
    expect(runId).toBeDefined();
    // the same job derives the same id
    const again = await runCli(['read', capture, '--sink', 'nats', '--nats-url', nats.url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--stats']);
    expect(again.stderr).toContain(`--run-id ${runId}`);
    expect(again.stderr).toMatch(/sink\.duplicates\s+(\d+)/);
    const st = /sink\.acked\s+(\d+)/.exec(again.stderr)![1];
    expect(/sink\.duplicates\s+(\d+)/.exec(again.stderr)![1]).toBe(st);
    const con = await runCli(['consume', '--nats-url', nats.url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--run-id', runId!, '--sink', 'files', '-o', b]);
    expect(con.code, con.stderr).toBe(0);
    expect(dirContents(b)).toEqual(dirContents(a));
    const nd = await runCli(['read', capture, '--sink', 'ndjson']);
    const ndBack = await runCli(['consume', '--nats-url', nats.url, '--nats-stream', 'CLI', '--nats-subject-prefix', 'cli', '--run-id', runId!, '--sink', 'ndjson']);
    expect(ndBack.code, ndBack.stderr).toBe(0);
    expect(ndBack.stdout).toBe(nd.stdout);
    // wrong or missing options
    expect((await runCli(['read', capture, '--sink', 'nats'])).stderr).toMatch(/INVALID_OPTION: --sink nats needs --nats-url/);
    expect((await runCli(['consume', '--nats-url', nats.url])).code).toBe(2);
  }, 30000);

  it('two shards of one run: consume gives every file of the unsharded read, and its connection records', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('pcapplusplus__mixed-126-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    await readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } });
    const acked: number[] = [];
    for (const index of [1, 2]) {
      const sink = new NatsSink({ servers: [nats.url], runId: 'sharded', stream: 'SHARDS', prefix: 'shards', shard: index, shards: 2 });
      await readCaptures(capture, { sink, shard: { index, count: 2 } });
      acked.push(sink.stats.acked);
    }
    expect(Math.min(...acked)).toBeGreaterThan(100);
    const stats = await consumeRun({ servers: [nats.url], runId: 'sharded', stream: 'SHARDS', prefix: 'shards', sink: filesSink(b) });
    expect(stats.shards).toBe(2);
    const lines = (dir: string): string[] => fs.readFileSync(path.join(dir, 'connections.ndjson'), 'utf8').split('\n').sort();
    expect(lines(b)).toEqual(lines(a));
    const flows = (dir: string): Map<string, string> => new Map([...dirContents(dir)].filter(([name]) => name !== 'connections.ndjson'));
    expect(flows(b)).toEqual(flows(a));
    expect(flows(a).size).toBeGreaterThan(100);
  });

  it('publishing a run again adds no message: every publish is a duplicate', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__ftp-data-80-conns.pcap'))!;
    const first = new NatsSink({ servers: [nats.url], runId: 'again', stream: 'AGAIN', prefix: 'again' });
    await readCaptures(capture, { sink: first });
    const count = await streamMessages('AGAIN');
    expect(count).toBe(first.stats.acked);
    expect(first.stats.duplicates).toBe(0);
    expect(first.stats.created).toBe(true);
    const second = new NatsSink({ servers: [nats.url], runId: 'again', stream: 'AGAIN', prefix: 'again' });
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
    const sink = new NatsSink({ servers: [nats.url], runId: 'cut', stream: 'CUT', prefix: 'cut' });
    await pipeline(Readable.from([events.slice(0, 2), events.slice(2)], { objectMode: true }), sink);
    expect(sink.stats.cut).toBe(1);
    expect(sink.stats.acked).toBe(1 + 1 + 3 + 1 + 1); // open, data, 3 parts, close, end
    expect(await streamMessages('CUT')).toBe(7);
    const got = new EventCollector();
    const stats = await consumeRun({ servers: [nats.url], runId: 'cut', stream: 'CUT', prefix: 'cut', sink: got });
    expect(stats.events).toBe(4);
    expect(got.events.map(comparable)).toEqual(events.map(comparable));
  });

  it('a window of one message and one byte still completes, never more than one publish pending', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__null-http-range-41-conns.pcap'))!;
    const a = newDir();
    const b = newDir();
    await readCaptures(capture, { sink: { type: 'files', dir: a, writeThread: false } });
    const sink = new NatsSink({ servers: [nats.url], runId: 'tiny', stream: 'TINY', prefix: 'tiny', maxPending: 1, maxPendingBytes: 1 });
    await readCaptures(capture, { sink });
    expect(sink.stats.maxPending).toBe(1);
    expect(sink.stats.acked).toBeGreaterThan(100);
    await consumeRun({ servers: [nats.url], runId: 'tiny', stream: 'TINY', prefix: 'tiny', sink: filesSink(b) });
    expect(dirContents(b)).toEqual(dirContents(a));
  });

  it('fails with OUTPUT_FAILED and the reason: a stream of other subjects, a full stream', async () => {
    const capture = sharedCaptures().find((c) => c.endsWith('suricata-verify__ftp-data-80-conns.pcap'))!;
    await addStream({ name: 'OTHER', subjects: ['other.>'] });
    let err: unknown = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: [nats.url], runId: 'w', stream: 'OTHER', prefix: 'wrong' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/do not take wrong\.w\.>/);
    expect(await streamMessages('OTHER')).toBe(0);
    await addStream({ name: 'FULL', subjects: ['full.>'], max_msgs: 5, discard: 'new' });
    err = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: [nats.url], runId: 'f', stream: 'FULL', prefix: 'full' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/maximum messages exceeded/);
    err = null;
    await readCaptures(capture, { sink: new NatsSink({ servers: ['127.0.0.1:1'], runId: 'f' }) }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('OUTPUT_FAILED');
    expect((err as PcapflowError).message).toMatch(/cannot connect/);
  });

  it('consume fails clearly on a missing stream and on a run that never completes', async () => {
    expect(await codeOf(consumeRun({ servers: [nats.url], runId: 'x', stream: 'NOPE', sink: new EventCollector() }))).toBe('INPUT_NOT_FOUND');
    let err: unknown = null;
    await consumeRun({ servers: [nats.url], runId: 'never', sink: new EventCollector(), idleTimeout: 300 }).catch((e: unknown) => (err = e));
    expect((err as PcapflowError).code).toBe('INPUT_READ_FAILED');
    expect((err as PcapflowError).message).toMatch(/no message of run never/);
    // a run without its end message (a reader killed mid-run): incomplete after the idle timeout
    const { client, server: srv } = endpoints(1);
    // flushEachBatch (as live): the data event goes out with its batch, not held for the next
    const half = new NatsSink({ servers: [nats.url], runId: 'half', stream: 'HALF', prefix: 'half', flushEachBatch: true });
    half.write([openEvent(1, client, srv)]);
    await new Promise<void>((resolve) => half.write([dataEvent(1, 'c2s', 0, pattern(1, 'c2s', 0, 5))], () => resolve()));
    while (half.stats.acked < 2) await new Promise((r) => setTimeout(r, 10));
    half.destroy();
    err = null;
    const got = new EventCollector();
    await consumeRun({ servers: [nats.url], runId: 'half', stream: 'HALF', prefix: 'half', sink: got, idleTimeout: 300 }).catch((e: unknown) => (err = e));
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
    const first = new NatsSink({ servers: [nats.url], runId: 'restart', stream: 'RESTART', prefix: 'restart', maxPending: 8 });
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
    const second = new NatsSink({ servers: [nats.url], runId: 'restart', stream: 'RESTART', prefix: 'restart' });
    await readCaptures(capture, { sink: second });
    expect(second.stats.duplicates).toBe(partial);
    expect(await streamMessages('RESTART')).toBe(second.stats.acked);
    expect(second.stats.acked).toBeGreaterThan(partial);
    await consumeRun({ servers: [nats.url], runId: 'restart', stream: 'RESTART', prefix: 'restart', sink: filesSink(b) });
    expect(dirContents(b)).toEqual(dirContents(a));
  });

  it('waits out a server restart mid-run: publishes retried with their ids, nothing lost or doubled', async () => {
    const [port] = (await freePorts(1)) as [number];
    const store = path.join(tmp, 'store2');
    fs.mkdirSync(store);
    const start = (): ChildProcess => spawnNats(port, store);
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
