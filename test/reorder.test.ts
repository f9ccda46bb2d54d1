/**
 * ReorderWindow: packets out of capture-time order within the window come out in time order;
 * packets out of order by more than it stay in file order; and every shared capture, shuffled
 * within windows of 8 packets (timestamps kept), reassembles as the capture in time order does.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Packet } from '../src/core/packet.js';
import { ReorderWindow, type ReorderOptions } from '../src/core/reorder.js';
import { openCaptures } from '../src/sources/capture-source.js';
import { TcpStreamTransform } from '../src/transforms/tcp-transforms.js';
import { runPipeline } from '../src/pipeline.js';
import { NdjsonSink } from '../src/sinks/ndjson-sink.js';
import { buildPcap } from './helpers/capture-builder.js';
import { sharedCaptures } from './helpers/env.js';
import { readCapture } from './helpers/read-capture.js';
import { CollectingWritable } from './helpers/sink-events.js';
import { runCli } from './helpers/cli-run.js';
import { ethIpv4Tcp } from './helpers/packet-builder.js';
import { rng } from './helpers/rng.js';

function pkt(sec: number, nsec: number, id: number, len = 10): Packet {
  const p = new Packet();
  p.tsSec = sec;
  p.tsNsec = nsec;
  p.index = id;
  p.data = new Uint8Array(len);
  return p;
}

/** run puts `packets` through a ReorderWindow in batches of `batch` and returns the ids in the order they came out. */
function run(packets: Packet[], options: ReorderOptions, batch = 3): { ids: number[]; w: ReorderWindow } {
  const w = new ReorderWindow(options);
  const ids: number[] = [];
  const emit = (out: Packet[]): void => {
    for (const p of out) ids.push(p.index);
  };
  for (let i = 0; i < packets.length; i += batch) w.write(packets.slice(i, i + batch), emit);
  w.end(emit);
  return { ids, w };
}

describe('ReorderWindow', () => {
  it('puts packets out of order within the window back in time order, equal times in file order', () => {
    const times = [5, 3, 4, 1, 2, 2, 6, 9, 7, 8];
    const { ids, w } = run(
      times.map((t, i) => pkt(100, t * 1000, i)),
      { packets: 8 },
    );
    expect(ids).toEqual([3, 4, 5, 1, 2, 0, 6, 8, 9, 7]);
    expect(w.stats).toMatchObject({ packets: 10, leftOutOfOrder: 0, held: 0 });
    expect(w.stats.maxMoved).toBe(3);
  });

  it('leaves a capture in time order as it is', () => {
    const packets = Array.from({ length: 50 }, (_, i) => pkt(100 + (i >> 3), i, i));
    expect(run(packets, {}).ids).toEqual(packets.map((p) => p.index));
  });

  it('moves a packet ahead of at most `packets` packets; one out of order by more stays behind', () => {
    // the packet with time 0 comes after 5 later ones: a window of 3 moves it ahead of 3 only
    const packets = [1, 2, 3, 4, 5, 0].map((t, i) => pkt(100, t, i));
    const { ids, w } = run(packets, { packets: 3 }, 1);
    expect(ids).toEqual([0, 1, 5, 2, 3, 4]);
    expect(w.stats.leftOutOfOrder).toBe(1);
  });

  it('does not drag packets around a timestamp far ahead or behind (more than `seconds`)', () => {
    const times = [1, 2, 100000, 3, 4, -100000, 5];
    const { ids } = run(
      times.map((t, i) => pkt(200000 + t, 0, i)),
      { packets: 16, seconds: 10 },
    );
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('holds at most `maxBytes` of packets and gives everything out at the end', () => {
    const packets = Array.from({ length: 20 }, (_, i) => pkt(100, 20 - i, i, 100));
    const w = new ReorderWindow({ packets: 1000, maxBytes: 450 });
    let out = 0;
    for (const p of packets) {
      w.write([p], (o) => (out += o.length));
      expect(w.stats.held).toBeLessThanOrEqual(4);
    }
    w.end((o) => (out += o.length));
    expect(out).toBe(20);
    expect(w.stats.held).toBe(0);
  });

  it('with packets 0 passes batches through untouched', () => {
    const w = new ReorderWindow({ packets: 0 });
    const batch = [pkt(2, 0, 0), pkt(1, 0, 1)];
    const seen: Packet[][] = [];
    w.write(batch, (o) => seen.push(o));
    expect(seen).toEqual([batch]);
    expect(seen[0]).toBe(batch);
  });

  it('rejects bad options with INVALID_OPTION', () => {
    for (const o of [{ packets: -1 }, { packets: 1.5 }, { seconds: -1 }, { seconds: NaN }, { maxBytes: -2 }]) {
      expect(() => new ReorderWindow(o), JSON.stringify(o)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});

/** ndjsonOf reads a capture (bytes) through TcpStreamTransform with `reorder` and returns the NDJSON text. */
async function ndjsonOf(bytes: Uint8Array, reorder: ReorderOptions | false): Promise<string> {
  const dest = new CollectingWritable();
  const sink = new NdjsonSink({ dest, renderThread: false });
  const source = openCaptures(['-'], { stdin: Readable.from([Buffer.from(bytes)]) });
  await runPipeline([source, new TcpStreamTransform({ decoder: { onError: 'skip' }, reorder }), sink], sink);
  return dest.text();
}

describe('a shuffled capture', () => {
  it('reassembles as the same capture in time order, on every shared capture with one link type', async () => {
    let checked = 0;
    const failed: string[] = [];
    for (const file of sharedCaptures()) {
      const r = readCapture(new Uint8Array(readFileSync(file)));
      const packets = r.packets;
      if (packets.length < 4 || new Set(packets.map((p) => p.linkType)).size !== 1) continue;
      // a datagram reassembled from IP fragments takes the time of the fragment that completed it,
      // which in a shuffled capture is not always its latest: its events' times and order differ
      if (path.basename(file) === 'arkime__socks5-http-ipv4-frags.pcap') continue;
      const spec = packets.map((p) => ({ data: new Uint8Array(p.data), tsSec: p.tsSec, tsNsec: p.tsNsec, len: p.len }));
      const ns = (i: number): number => spec[i]!.tsSec * 1e9 + spec[i]!.tsNsec;
      // time order (stable: equal times keep file order)
      const sorted = spec.map((_, i) => i).sort((a, b) => ns(a) - ns(b) || a - b);
      // shuffled within windows of 8, then equal times put back in file order among themselves
      const random = rng(checked + 1);
      const order = [...sorted];
      for (let i = 0; i < order.length; i += 8) {
        const w = order.slice(i, i + 8);
        for (let k = w.length - 1; k > 0; k--) {
          const j = Math.floor(random() * (k + 1));
          [w[k], w[j]] = [w[j]!, w[k]!];
        }
        order.splice(i, w.length, ...w);
      }
      const byTime = new Map<number, number[]>();
      for (const i of sorted) byTime.set(ns(i), [...(byTime.get(ns(i)) ?? []), i]);
      const seen = new Map<number, number>();
      const shuffled = order.map((i) => {
        const same = byTime.get(ns(i))!;
        const k = seen.get(ns(i)) ?? 0;
        seen.set(ns(i), k + 1);
        return same[k]!;
      });
      const opts = { linkType: packets[0]!.linkType, nanos: true, snaplen: 262144 };
      const inOrder = buildPcap(
        sorted.map((i) => spec[i]!),
        opts,
      );
      const mixed = buildPcap(
        shuffled.map((i) => spec[i]!),
        opts,
      );
      const want = await ndjsonOf(inOrder, false);
      const got = await ndjsonOf(mixed, { packets: 16, seconds: 1e9 });
      if (got !== want) failed.push(path.basename(file));
      checked++;
    }
    expect(failed).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  }, 120_000);
});

describe('pcapflow read --reorder-window', () => {
  it('restores the time order by default, not with 0; --stats shows the window; bad values are usage errors', async () => {
    // a connection whose SYN and ACK come after its first data: one connection in time order
    const spec = [
      { sec: 1, f: 0x02, seq: 100, ack: 0, p: '' },
      { sec: 2, f: 0x12, seq: 500, ack: 101, p: '', back: true },
      { sec: 3, f: 0x10, seq: 101, ack: 501, p: '' },
      { sec: 4, f: 0x18, seq: 101, ack: 501, p: 'hello' },
      { sec: 5, f: 0x18, seq: 501, ack: 106, p: 'world!', back: true },
      { sec: 6, f: 0x11, seq: 106, ack: 507, p: '' },
      { sec: 7, f: 0x11, seq: 507, ack: 107, p: '', back: true },
      { sec: 8, f: 0x10, seq: 107, ack: 508, p: '' },
    ];
    const frames = spec.map((s) => ({
      data: ethIpv4Tcp({ src: s.back ? '10.0.0.2' : '10.0.0.1', dst: s.back ? '10.0.0.1' : '10.0.0.2', sport: s.back ? 80 : 40000, dport: s.back ? 40000 : 80, seq: s.seq, ack: s.ack, flags: s.f, payload: s.p }),
      tsSec: 1_700_000_000,
      tsNsec: s.sec * 1_000_000,
    }));
    const order = [3, 0, 2, 1, 4, 6, 5, 7]; // data first, then the handshake; the server's FIN before the client's
    // (milliseconds apart: within --reorder-seconds)
    const file = path.join(tmpdir(), `pcapflow-reorder-${process.pid}.pcap`);
    writeFileSync(file, buildPcap(order.map((i) => frames[i]!), { linkType: 1 }));
    try {
      const on = await runCli(['read', file, '--sink', 'ndjson', '--encoding', 'utf8', '--stats']);
      expect(on.code).toBe(0);
      const events = on.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events.map((e) => e.type)).toEqual(['open', 'data', 'data', 'close']);
      expect(events[0]).toMatchObject({ conn: 0, midstream: false, ts: '1700000000.001000000' });
      expect(events[1]).toMatchObject({ dir: 'c2s', offset: 0, data: 'hello' });
      expect(events[3]).toMatchObject({ reason: 'fin', c2s: { gaps: 0 }, s2c: { gaps: 0 } });
      expect(on.stderr).toMatch(/reorder/);
      const off = await runCli(['read', file, '--sink', 'ndjson', '--reorder-window', '0']);
      expect(off.code).toBe(0);
      expect(off.stdout).not.toBe(on.stdout);
      for (const bad of [['--reorder-window', '-1'], ['--reorder-window', 'x'], ['--reorder-seconds', '-2']]) {
        const r = await runCli(['read', file, ...bad]);
        expect(r.code, bad.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/INVALID_OPTION/);
      }
    } finally {
      rmSync(file, { force: true });
    }
  });
});
