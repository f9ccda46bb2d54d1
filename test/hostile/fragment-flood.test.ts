/**
 * Fragment floods stay within the defragmenter's byte cap and capture-time timeout: datagrams
 * that never complete, overlapping and teardrop-style fragments, and a real datagram that must
 * still come out whole in the middle of the flood. Frames are built in memory and fed to the
 * PacketDecoder core in batches, as the reader would.
 */
import { describe, expect, it } from 'vitest';
import { PacketDecoder, type PacketDecoderOptions } from '../../src/core/packet-decoder.js';
import type { Packet } from '../../src/core/packet.js';
import { ethernet, ipv4, makePacket, tcp } from '../helpers/packet-builder.js';

const CAP = 1 << 20; // 1 MiB of fragment payload held at most
const opts: PacketDecoderOptions = { fragmentMaxBytes: CAP, fragmentTimeout: 30, keepSkipped: false };

function frag(id: number, src: string, offset: number, mf: boolean, payload: Uint8Array): Uint8Array {
  return ethernet({ type: 0x0800, payload: ipv4({ src, dst: '10.9.9.9', id, mf, fragOffset: offset, proto: 6, payload }) });
}

function feed(dec: PacketDecoder, frames: Iterable<{ data: Uint8Array; tsSec: number }>, onOut: (p: Packet) => void, onBatch?: () => void): void {
  let batch: Packet[] = [];
  let index = 0;
  const emit = (out: Packet[]): void => {
    for (const p of out) onOut(p);
  };
  for (const f of frames) {
    batch.push(makePacket(f.data, { index: ++index, tsSec: f.tsSec }));
    if (batch.length === 256) {
      dec.write(batch, emit);
      batch = [];
      onBatch?.();
    }
  }
  dec.write(batch, emit);
  dec.end();
}

describe('fragment floods', () => {
  it('never-completed datagrams: held bytes stay under the cap, the oldest are dropped, a real datagram still completes', () => {
    const dec = new PacketDecoder(opts);
    const chunk = new Uint8Array(1400).fill(0x41);
    const real = tcp({ sport: 4000, dport: 80, seq: 1, ack: 1, flags: 0x18, payload: new Uint8Array(2000).fill(0x52) });
    let peakHeld = 0;
    const out: Packet[] = [];
    function* frames(): Generator<{ data: Uint8Array; tsSec: number }> {
      for (let i = 0; i < 20_000; i++) {
        // 20 000 datagrams, each only its first fragment: 28 MB claimed, never completed
        yield { data: frag(i & 0xffff, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0, true, chunk), tsSec: 1000 };
        if (i === 15_000) {
          yield { data: frag(7, '192.0.2.1', 0, true, real.subarray(0, 1024)), tsSec: 1000 };
          yield { data: frag(7, '192.0.2.1', 1024, false, real.subarray(1024)), tsSec: 1000 };
        }
      }
    }
    feed(dec, frames(), (p) => out.push(p), () => {
      peakHeld = Math.max(peakHeld, dec.stats.bytesHeld ?? 0);
    });
    expect(peakHeld).toBeLessThanOrEqual(CAP);
    expect(dec.stats.droppedByCap).toBeGreaterThan(19_000);
    expect(dec.stats.datagramsReassembled).toBe(1);
    expect(out).toHaveLength(1);
    expect(out[0]?.payload.length).toBe(2000);
    expect(out[0]?.payload.every((b) => b === 0x52)).toBe(true);
  });

  it('incomplete datagrams expire by capture time, not by count', () => {
    const dec = new PacketDecoder(opts);
    const piece = new Uint8Array(800).fill(1);
    function* frames(): Generator<{ data: Uint8Array; tsSec: number }> {
      for (let i = 0; i < 500; i++) yield { data: frag(i, '10.1.1.1', 0, true, piece), tsSec: 1000 + i * 0.1 };
      yield { data: frag(9999, '10.1.1.2', 0, true, piece), tsSec: 2000 }; // far later: all 500 have expired
    }
    feed(dec, frames(), () => undefined);
    expect(dec.stats.incompleteExpired).toBeGreaterThanOrEqual(500);
    expect(dec.stats.bytesHeld).toBe(0); // end() drops what is left
  });

  it('overlapping and teardrop fragments are rejected or counted without growing memory', () => {
    const dec = new PacketDecoder(opts);
    let peakHeld = 0;
    function* frames(): Generator<{ data: Uint8Array; tsSec: number }> {
      for (let i = 0; i < 5000; i++) {
        const id = i % 50;
        // the same ranges again and again with different bytes (overlaps), a short final
        // fragment ending inside earlier data (teardrop), and data beyond the final end
        yield { data: frag(id, '10.2.2.2', 0, true, new Uint8Array(64).fill(i & 255)), tsSec: 1000 };
        yield { data: frag(id, '10.2.2.2', 32, true, new Uint8Array(64).fill(~i & 255)), tsSec: 1000 };
        yield { data: frag(id, '10.2.2.2', 8, false, new Uint8Array(16).fill(3)), tsSec: 1000 };
        yield { data: frag(id, '10.2.2.2', 65528, true, new Uint8Array(64).fill(4)), tsSec: 1000 };
      }
    }
    feed(dec, frames(), () => undefined, () => {
      peakHeld = Math.max(peakHeld, dec.stats.bytesHeld ?? 0);
    });
    expect(peakHeld).toBeLessThanOrEqual(50 * 96);
    expect((dec.stats.fragmentsInvalid ?? 0) + (dec.stats.overlaps ?? 0)).toBeGreaterThan(5000);
    expect(dec.stats.datagramsReassembled).toBe(0);
  });
});
