/**
 * Helpers for the sink suites: synthetic stream events, a collecting destination, a slow
 * destination that records how much it ever held, and a way to drive a sink with batches.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CloseEvent, DataEvent, Direction, DirectionSummary, Endpoint, GapEvent, OpenEvent, StreamEvent } from '../../src/core/events.js';

export function ts(n: number): string {
  return `${1_700_000_000 + Math.floor(n / 1000)}.${String((n % 1000) * 1_000_000).padStart(9, '0')}`;
}

export function openEvent(conn: number, client: Endpoint, server: Endpoint, vlan: number[] = []): OpenEvent {
  return { type: 'open', conn, ts: ts(conn), client, server, vlan, midstream: false, options: { c2s: {}, s2c: {} } };
}

export function dataEvent(conn: number, dir: Direction, offset: number, data: Uint8Array): DataEvent {
  return { type: 'data', conn, dir, offset, ts: ts(conn + offset), data };
}

export function gapEvent(conn: number, dir: Direction, offset: number, len: number): GapEvent {
  return { type: 'gap', conn, dir, offset, len, ts: ts(conn), reason: 'acked' };
}

function summary(bytes: number, gaps = 0, missing = 0): DirectionSummary {
  return { bytes, packets: 1, retransmitted: 0, outOfOrder: 0, gaps, missing, overlaps: 0, firstTs: ts(0), lastTs: ts(1), capped: 0 };
}

export function closeEvent(open: OpenEvent, c2sBytes: number, s2cBytes: number, gaps: { c2s?: [number, number]; s2c?: [number, number] } = {}): CloseEvent {
  return {
    type: 'close',
    conn: open.conn,
    ts: ts(open.conn + 1),
    reason: 'fin',
    client: open.client,
    server: open.server,
    vlan: open.vlan,
    c2s: summary(c2sBytes, gaps.c2s?.[0], gaps.c2s?.[1]),
    s2c: summary(s2cBytes, gaps.s2c?.[0], gaps.s2c?.[1]),
  };
}

/** endpoints gives a distinct client/server pair for connection number `i`. */
export function endpoints(i: number): { client: Endpoint; server: Endpoint } {
  return {
    client: { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1024 + (i % 60000) },
    server: { ip: '192.168.1.1', port: 80 },
  };
}

/** A deterministic byte pattern for (conn, dir, offset): lets a test check every byte afterwards. */
export function pattern(conn: number, dir: Direction, offset: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const k = dir === 'c2s' ? 7 : 13;
  for (let i = 0; i < len; i++) out[i] = (conn * 31 + (offset + i) * k + (offset + i) / 256) & 255;
  return out;
}

/** CollectingWritable keeps everything written to it and counts write() calls. */
export class CollectingWritable extends Writable {
  readonly chunks: Buffer[] = [];
  writes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writes++;
    this.chunks.push(chunk);
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** SlowWritable: highWaterMark 1, each write completes on a later tick; records the most it held. */
export class SlowWritable extends Writable {
  maxBuffered = 0;
  total = 0;
  constructor(private readonly delayMs = 0) {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    this.total += chunk.length;
    if (this.delayMs > 0) setTimeout(cb, this.delayMs);
    else setImmediate(cb);
  }
}

/**
 * drive runs `batches` through `sink` with stream.pipeline and records the largest number of
 * batches ever produced but not yet taken by the sink's _write (the pipeline's memory).
 */
export async function drive(
  sink: Writable & { stats: { batches: number } },
  batches: Iterable<StreamEvent[]>,
): Promise<{ maxAhead: number; produced: number }> {
  let produced = 0;
  let maxAhead = 0;
  function* counted(): Generator<StreamEvent[]> {
    for (const b of batches) {
      produced++;
      maxAhead = Math.max(maxAhead, produced - sink.stats.batches);
      yield b;
    }
  }
  await pipeline(Readable.from(counted(), { objectMode: true, highWaterMark: 2 }), sink);
  return { maxAhead, produced };
}
