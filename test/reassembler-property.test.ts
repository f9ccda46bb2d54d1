/**
 * Property tests: any reordering or duplication (including retransmissions cut at other
 * boundaries) of a connection's data segments, within the buffer limit, gives the same two byte
 * streams and no gap; dropped segments never produce invented bytes. Fixed seed, bounded runs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import type { Packet } from '../src/core/packet.js';
import { Conv, lastStats, run, streams } from './helpers/segments.js';

const W = 0x1_0000_0000;
const SEED = 20240611;

interface Piece {
  fromClient: boolean;
  off: number;
  len: number;
}

/** cut splits [0, n) into pieces of 1..max bytes, using the given sizes cyclically. */
function cut(n: number, sizes: number[], fromClient: boolean): Piece[] {
  const out: Piece[] = [];
  let off = 0;
  let i = 0;
  while (off < n) {
    const len = Math.min(n - off, sizes[i++ % sizes.length]!);
    out.push({ fromClient, off, len });
    off += len;
  }
  return out;
}

const arbConn = fc.record({
  c2s: fc.uint8Array({ minLength: 0, maxLength: 400 }),
  s2c: fc.uint8Array({ minLength: 0, maxLength: 400 }),
  cIsn: fc.oneof(fc.integer({ min: 0, max: W - 1 }), fc.integer({ min: W - 300, max: W - 1 })),
  sIsn: fc.oneof(fc.integer({ min: 0, max: W - 1 }), fc.integer({ min: W - 300, max: W - 1 })),
  sizes: fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 8 }),
  resizes: fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 8 }),
  // extra copies: [which piece of the re-cut streams, how many]
  dups: fc.array(fc.nat(), { maxLength: 20 }),
  order: fc.array(fc.nat(), { minLength: 0, maxLength: 200 }),
  batch: fc.integer({ min: 1, max: 7 }),
});

type ConnCase = typeof arbConn extends fc.Arbitrary<infer T> ? T : never;

/** build makes the packets: handshake, data segments in a shuffled order with duplicates, FINs. */
function build(k: ConnCase, keep: (p: Piece, i: number) => boolean = () => true): { packets: Packet[]; c: Conv } {
  const c = new Conv('192.0.2.1:50000', '198.51.100.2:443');
  const cBase = (k.cIsn + 1) % W;
  const sBase = (k.sIsn + 1) % W;
  const pieces = [...cut(k.c2s.length, k.sizes, true), ...cut(k.s2c.length, k.sizes, false)];
  const again = [...cut(k.c2s.length, k.resizes, true), ...cut(k.s2c.length, k.resizes, false)];
  for (const d of k.dups) if (again.length > 0) pieces.push(again[d % again.length]!);
  // shuffle with the drawn order (Fisher-Yates driven by k.order)
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = (k.order[i % Math.max(1, k.order.length)] ?? 0) % (i + 1);
    [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
  }
  const packets: Packet[] = [c.c('S', k.cIsn), c.s('SA', k.sIsn, cBase), c.c('A', cBase, sBase)];
  pieces.forEach((p, i) => {
    if (!keep(p, i)) return;
    const bytes = (p.fromClient ? k.c2s : k.s2c).subarray(p.off, p.off + p.len);
    // data segments acknowledge only the handshake, so no ACK can reveal a hole early
    packets.push(p.fromClient ? c.c('PA', (cBase + p.off) % W, sBase, bytes) : c.s('PA', (sBase + p.off) % W, cBase, bytes));
  });
  return { packets, c };
}

function latin1(a: Uint8Array): string {
  return Buffer.from(a).toString('latin1');
}

describe('TcpReassembler properties', () => {
  it('reordered and duplicated segments give the same streams and no gap', () => {
    fc.assert(
      fc.property(arbConn, fc.constantFrom<'first' | 'last'>('first', 'last'), fc.constantFrom<'plain' | 'push'>('plain', 'push'), (k, overlap, chunking) => {
        const { packets, c } = build(k);
        const cEnd = (k.cIsn + 1 + k.c2s.length) % W;
        const sEnd = (k.sIsn + 1 + k.s2c.length) % W;
        // the FINs acknowledge only the handshake: delivery must not depend on an ACK
        packets.push(c.c('FA', cEnd, (k.sIsn + 1) % W), c.s('FA', sEnd, (k.cIsn + 1) % W));
        const ev: StreamEvent[] = run(packets, { overlap, chunking }, k.batch);
        const got = streams(ev).get(0) ?? { c2s: '', s2c: '' };
        expect(got.c2s).toBe(latin1(k.c2s));
        expect(got.s2c).toBe(latin1(k.s2c));
        expect(ev.filter((e) => e.type === 'gap' || e.type === 'overlap')).toEqual([]);
        const close = ev.at(-1)!;
        expect(close.type === 'close' && close.reason).toBe('fin');
        expect(ev.filter((e) => e.type === 'close')).toHaveLength(1);
        // everything was delivered and closed as the packets came, nothing was left for end()
        expect(lastStats!.fromEnd).toBe(0);
        expect(lastStats!.reasm.bufferedBytes).toBe(0);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('dropped segments give gaps, never invented bytes', () => {
    fc.assert(
      fc.property(arbConn, fc.array(fc.boolean(), { minLength: 1, maxLength: 50 }), (k, drops) => {
        const { packets } = build(k, (_p, i) => !drops[i % drops.length]);
        const ev = run(packets, {}, k.batch);
        // offsets tile each direction with data and gaps (streams() throws otherwise)
        streams(ev);
        for (const e of ev) {
          if (e.type !== 'data') continue;
          const src = e.dir === 'c2s' ? k.c2s : k.s2c;
          expect(latin1(e.data)).toBe(latin1(src.subarray(e.offset, e.offset + e.data.length)));
        }
        expect(ev.at(-1)!.type).toBe('close');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('a small buffer limit turns excess out-of-order bytes into limit gaps, never more held than allowed', () => {
    fc.assert(
      fc.property(arbConn, fc.integer({ min: 0, max: 100 }), (k, limit) => {
        const { packets } = build(k);
        const ev = run(packets, { maxBufferedPerConnection: limit }, k.batch);
        streams(ev);
        for (const e of ev) {
          if (e.type === 'data') {
            const src = e.dir === 'c2s' ? k.c2s : k.s2c;
            expect(latin1(e.data)).toBe(latin1(src.subarray(e.offset, e.offset + e.data.length)));
          }
          if (e.type === 'gap') expect(['limit', 'eof']).toContain(e.reason);
        }
        expect(lastStats!.reasm.peakBufferedBytes).toBeLessThanOrEqual(limit);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});
