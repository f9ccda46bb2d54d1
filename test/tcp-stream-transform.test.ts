import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import { ndjsonLine, PURE_ENCODERS } from '../src/core/format.js';
import { StageChain, type Stage } from '../src/core/stage.js';
import { Packet, PacketPool, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/core/packet.js';
import { openCaptures } from '../src/sources/capture-source.js';
import { PacketDecodeTransform } from '../src/transforms/decode-transforms.js';
import { ReorderTransform, TcpDemuxTransform, TcpReassemblerTransform, TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
import { runPipeline } from '../src/pipeline.js';
import { buildPcap } from './helpers/capture-builder.js';
import { sharedCaptures } from './helpers/env.js';
import { ethIpv4Tcp } from './helpers/packet-builder.js';

/** Collects the event batches; `delayMs` makes it a slow reader. */
class Collect extends Writable {
  readonly batches: StreamEvent[][] = [];
  constructor(private readonly delayMs = 0) {
    super({ objectMode: true, highWaterMark: 1 });
  }
  override _write(batch: StreamEvent[], _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.batches.push(batch);
    if (this.delayMs > 0) setTimeout(cb, this.delayMs);
    else cb();
  }
  lines(): string[] {
    return this.batches.flat().map((e) => ndjsonLine(e, PURE_ENCODERS.base64));
  }
}

async function viaChain(file: string | Readable, pool?: PacketPool): Promise<{ lines: string[]; error: unknown }> {
  const sink = new Collect();
  const source = typeof file === 'string' ? openCaptures([file], { pool }) : openCaptures(['-'], { stdin: file, pool });
  const error = await runPipeline([source, new TcpStreamTransform({ decoder: { onError: 'skip' }, pool }), sink], sink).then(
    () => null,
    (e: unknown) => e,
  );
  return { lines: sink.lines(), error };
}

async function viaThree(file: string): Promise<{ lines: string[]; error: unknown }> {
  const sink = new Collect();
  const streams = [openCaptures([file]), new PacketDecodeTransform({ onError: 'skip' }), new ReorderTransform(), new TcpDemuxTransform(), new TcpReassemblerTransform(), sink];
  const error = await runPipeline(streams, sink).then(
    () => null,
    (e: unknown) => e,
  );
  return { lines: sink.lines(), error };
}

describe('StageChain', () => {
  it('passes each output on at once, and ends the stages in order with their last outputs going through the rest', () => {
    const log: string[] = [];
    const stage = (name: string, held: string): Stage<unknown, unknown> => ({
      stats: {},
      write: (x, emit) => {
        log.push(`${name}:${String(x)}`);
        emit(`${String(x)}>${name}`);
      },
      end: (emit) => {
        log.push(`${name}:end`);
        emit(held);
      },
    });
    const chain = new StageChain<string, string>([stage('a', 'A'), stage('b', 'B')]);
    const out: string[] = [];
    chain.write('1', (x) => out.push(x));
    chain.end((x) => out.push(x));
    expect(out).toEqual(['1>a>b', 'A>b', 'B']);
    expect(log).toEqual(['a:1', 'b:1>a', 'a:end', 'b:A', 'b:end']);
  });
});

describe('PacketPool', () => {
  it('hands back a used packet with every field as a new one has it', () => {
    const pool = new PacketPool(2);
    const p = pool.take();
    // give every own field a value of another kind than its initial one
    for (const k of Object.keys(p)) (p as unknown as Record<string, unknown>)[k] = { used: k };
    const dropped = new Packet();
    pool.release([new Packet(), p, dropped]); // the pool keeps at most 2
    const q = pool.take();
    expect(q).toBe(p); // last in, first out
    expect(pool.take()).not.toBe(dropped);
    expect({ ...q }).toEqual({ ...new Packet() });
    expect(Object.keys(q)).toEqual(Object.keys(new Packet()));
  });
});

describe('TcpStreamTransform', () => {
  it('gives the same events as the decode, demux and reassembler transforms piped together, on every shared capture', async () => {
    let events = 0;
    for (const file of sharedCaptures()) {
      const [one, three, pooled] = await Promise.all([viaChain(file), viaThree(file), viaChain(file, new PacketPool())]);
      expect(one.lines, file).toEqual(three.lines);
      expect(pooled.lines, file).toEqual(three.lines);
      expect((one.error as { code?: string } | null)?.code, file).toBe((three.error as { code?: string } | null)?.code);
      events += one.lines.length;
    }
    expect(events).toBeGreaterThan(1000);
  });

  it('closes a large table at the end in steps that wait for a slow reader', async () => {
    // 5000 connections that each send one segment and never close: all close at end of input
    const packets = [];
    for (let i = 0; i < 5000; i++) {
      const base = { src: `10.1.${i >> 8}.${i & 255}`, dst: '10.2.0.1', sport: 20000 + (i % 30000), dport: 80 };
      packets.push({ data: ethIpv4Tcp({ ...base, seq: 100, flags: TCP_SYN }), tsSec: 1, tsNsec: i });
      packets.push({ data: ethIpv4Tcp({ ...base, seq: 101, ack: 1, flags: TCP_ACK | TCP_PSH, payload: `hello ${i}` }), tsSec: 2, tsNsec: i });
    }
    const capture = Buffer.from(buildPcap(packets, { linkType: 1 }));
    const sink = new Collect(2);
    await runPipeline([openCaptures(['-'], { stdin: Readable.from([capture]) }), new TcpStreamTransform(), sink], sink);
    const all = sink.batches.flat();
    expect(all.filter((e) => e.type === 'close')).toHaveLength(5000);
    expect(all.filter((e) => e.type === 'close' && e.reason === 'eof')).toHaveLength(5000);
    // the final flush came in several batches (2048 connections each), not one
    const closeBatches = sink.batches.filter((b) => b.some((e) => e.type === 'close'));
    expect(closeBatches.length).toBeGreaterThanOrEqual(3);
    expect(all.filter((e) => e.type === 'data').map((e) => (e.type === 'data' ? Buffer.from(e.data).toString() : ''))).toContain('hello 4999');
  });

  it('a FIN both ways closes as fin, as with the three transforms', async () => {
    const c = { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 80 };
    const s = { src: '10.0.0.2', dst: '10.0.0.1', sport: 80, dport: 40000 };
    const capture = Buffer.from(
      buildPcap(
        [
          { data: ethIpv4Tcp({ ...c, seq: 1, flags: TCP_SYN }) },
          { data: ethIpv4Tcp({ ...s, seq: 50, ack: 2, flags: TCP_SYN | TCP_ACK }) },
          { data: ethIpv4Tcp({ ...c, seq: 2, ack: 51, flags: TCP_ACK | TCP_PSH, payload: 'GET /' }) },
          { data: ethIpv4Tcp({ ...c, seq: 7, ack: 51, flags: TCP_ACK | TCP_FIN }) },
          { data: ethIpv4Tcp({ ...s, seq: 51, ack: 8, flags: TCP_ACK | TCP_FIN }) },
          { data: ethIpv4Tcp({ ...c, seq: 8, ack: 52, flags: TCP_ACK }) },
        ],
        { linkType: 1 },
      ),
    );
    const { lines, error } = await viaChain(Readable.from([capture]));
    expect(error).toBeNull();
    expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['open', 'data', 'close']);
    expect(JSON.parse(lines[2]!)).toMatchObject({ reason: 'fin' });
  });
});
