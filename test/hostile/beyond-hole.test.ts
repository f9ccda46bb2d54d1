/**
 * A connection that sends 1 GiB beyond a hole that is never filled (issue 5): the reassembler
 * holds at most its per-connection cap of it, reports the hole as a gap (reason limit) and
 * delivers the rest; another connection interleaved with it comes out whole; memory stays flat.
 * Fed to the cores directly (16 384 segments of 64 KiB that share one payload buffer), so the
 * only memory that can grow is what the cores keep.
 */
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../src/core/events.js';
import { TcpDemux } from '../../src/core/flow-table.js';
import { type Packet, TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/core/packet.js';
import { tcpSegment } from '../helpers/segments.js';
import { TcpReassembler } from '../../src/core/reassembler.js';

const MiB = 1024 * 1024;
const NONE = new Uint8Array(0);

function seg(conn: number, fromClient: boolean, flags: number, seq: number, ack: number, data: Uint8Array, t: number): Packet {
  return tcpSegment(Uint8Array.of(10, 0, 0, 10 + conn), fromClient, flags, seq, ack, data, t);
}

describe('1 GiB beyond a hole that is never filled', () => {
  it('stays within the per-connection cap, reports the gap, and leaves the other connection whole', () => {
    const SEG = 64 * 1024;
    const COUNT = 16 * 1024; // 1 GiB
    const HOLE = 1000;
    const perConn = 4 * MiB;
    const big = new Uint8Array(SEG).fill(0x42);
    const small = Uint8Array.of(0x61, 0x62, 0x63, 0x64);
    const demux = new TcpDemux();
    const reasm = new TcpReassembler({ maxBufferedPerConnection: perConn });
    let bytes0 = 0;
    let bytes1 = 0;
    let expectOff0 = HOLE;
    const gaps: StreamEvent[] = [];
    const closes: StreamEvent[] = [];
    const take = (ev: StreamEvent[]): void => {
      for (const e of ev) {
        if (e.type === 'data') {
          if (e.conn === 0) {
            expect(e.offset).toBe(expectOff0);
            expectOff0 += e.data.length;
            bytes0 += e.data.length;
          } else {
            bytes1 += e.data.length;
          }
        } else if (e.type === 'gap') {
          gaps.push(e);
        } else if (e.type === 'close') {
          closes.push(e);
        }
      }
    };
    const feed = (b: Packet[]): void => demux.write(b, (x) => reasm.write(x, take));
    feed([
      seg(0, true, TCP_SYN, 0, 0, NONE, 0),
      seg(0, false, TCP_SYN | TCP_ACK, 0, 1, NONE, 0),
      seg(1, true, TCP_SYN, 0, 0, NONE, 0),
      seg(1, false, TCP_SYN | TCP_ACK, 0, 1, NONE, 0),
    ]);
    const before = process.memoryUsage();
    let peak = 0;
    for (let i = 0; i < COUNT; i++) {
      // connection 0: the client sends past a hole of HOLE bytes at stream offset 0 that never comes
      // (and no ACK from the server reveals it); connection 1: 4 bytes in order now and then
      const b = [seg(0, true, TCP_ACK | TCP_PSH, 1 + HOLE + i * SEG, 1, big, i)];
      if (i % 64 === 0) b.push(seg(1, true, TCP_ACK | TCP_PSH, 1 + (i / 64) * 4, 1, small, i));
      feed(b);
      if (i % 1024 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - before.heapUsed - before.arrayBuffers);
      }
    }
    reasm.end(take);
    expect(reasm.stats.peakBufferedBytes).toBeLessThanOrEqual(perConn + SEG + 1024);
    expect(gaps).toMatchObject([{ conn: 0, dir: 'c2s', offset: 0, len: HOLE, reason: 'limit' }]);
    expect(bytes0).toBe(COUNT * SEG);
    expect(bytes1).toBe((COUNT / 64) * 4);
    expect(closes).toMatchObject([
      { conn: 0, reason: 'eof', c2s: { bytes: COUNT * SEG, missing: HOLE, gaps: 1 } },
      { conn: 1, reason: 'eof', c2s: { bytes: (COUNT / 64) * 4, missing: 0, gaps: 0 } },
    ]);
    console.log(`1 GiB beyond a hole: peak held ${reasm.stats.peakBufferedBytes} bytes, heap+buffers grew at most ${(peak / MiB).toFixed(1)} MiB`);
    expect(peak).toBeLessThan(64 * MiB);
  });
});
