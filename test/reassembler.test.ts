import { describe, expect, it } from 'vitest';
import type { CloseEvent, DataEvent, OpenEvent, StreamEvent } from '../src/core/events.js';
import { isPcapflowError } from '../src/core/errors.js';
import type { Packet } from '../src/core/packet.js';
import { TcpReassembler } from '../src/core/reassembler.js';
import { SEGMENT_OVERHEAD } from '../src/core/stream-buffer.js';
import { Conv, kinds, lastStats, run, streams } from './helpers/segments.js';

const W = 0x1_0000_0000;

/** hs: a three-way handshake, client ISN `ci`, server ISN `si`. */
function hs(c: Conv, ci = 100, si = 500): Packet[] {
  return [c.c('S', ci), c.s('SA', si, ci + 1), c.c('A', ci + 1, si + 1)];
}

function closeOf(events: StreamEvent[], conn = 0): CloseEvent {
  const e = events.find((x): x is CloseEvent => x.type === 'close' && x.conn === conn);
  if (!e) throw new Error(`no close for ${conn}`);
  return e;
}

function stream(events: StreamEvent[], conn = 0): { c2s: string; s2c: string } {
  return streams(events).get(conn) ?? { c2s: '', s2c: '' };
}

/** checkOrder: per connection, open first, close last and only once. */
function checkOrder(events: StreamEvent[]): void {
  const state = new Map<number, 'open' | 'closed'>();
  for (const e of events) {
    const s = state.get(e.conn);
    if (e.type === 'open') {
      expect(s).toBeUndefined();
      state.set(e.conn, 'open');
    } else {
      expect(s, `${e.type} for conn ${e.conn} before open / after close`).toBe('open');
      if (e.type === 'close') state.set(e.conn, 'closed');
    }
  }
  for (const [conn, s] of state) expect(s, `conn ${conn} never closed`).toBe('closed');
}

describe('TcpReassembler: basics', () => {
  it('delivers a simple exchange in order and closes on FIN both ways', () => {
    const c = new Conv();
    const ev = run([
      ...hs(c),
      c.c('PA', 101, 501, 'GET / HTTP/1.0\r\n\r\n'),
      c.s('A', 501, 119),
      c.s('PA', 501, 119, 'HTTP/1.0 200 OK\r\n\r\nhi'),
      c.s('FA', 522, 119),
      c.c('FA', 119, 523),
      c.s('A', 523, 120),
    ]);
    checkOrder(ev);
    expect(kinds(ev)).toEqual([
      'open 0',
      'data 0 c2s 0 GET / HTTP/1.0\r\n\r\n',
      'data 0 s2c 0 HTTP/1.0 200 OK\r\n\r\nhi',
      'close 0 fin',
    ]);
    const open = ev[0] as OpenEvent;
    expect(open.client).toEqual({ ip: '10.0.0.1', port: 40000 });
    expect(open.server).toEqual({ ip: '10.0.0.2', port: 80 });
    expect(open.midstream).toBe(false);
    expect(open.ts).toBe('1000000.000000000');
    const cl = closeOf(ev);
    expect(cl.c2s).toMatchObject({ bytes: 18, packets: 4, retransmitted: 0, gaps: 0, missing: 0, firstTs: '1000000.000000000' });
    expect(cl.s2c).toMatchObject({ bytes: 21, packets: 4 });
    // the late ACK after the close is counted, not delivered
    expect(lastStats!.reasm.afterClose).toBe(1);
    expect(lastStats!.reasm.closedFin).toBe(1);
  });

  it('passes in-order payloads as views and copies out-of-order ones', () => {
    const c = new Conv();
    const a = c.c('PA', 101, 501, 'hello ');
    const b = c.c('PA', 107, 501, 'world');
    const ev = run([...hs(c), b, a]);
    const data = ev.filter((e): e is DataEvent => e.type === 'data');
    expect(data.map((d) => d.offset)).toEqual([0, 6]);
    expect(data[0]!.data.buffer).toBe(a.l4.buffer); // the view
    expect(data[1]!.data.buffer).not.toBe(b.l4.buffer); // the copy
    expect(lastStats!.reasm.outOfOrder).toBe(1);
    expect(lastStats!.reasm.bufferedBytes).toBe(0);
    expect(lastStats!.reasm.peakBufferedBytes).toBe(5 + SEGMENT_OVERHEAD); // bytes plus the cost of one piece
  });

  it('rejects bad options with INVALID_OPTION', () => {
    for (const o of [{ overlap: 'middle' }, { chunking: 'lines' }, { maxBufferedTotal: -1 }, { pushMaxBytes: 0 }]) {
      try {
        new TcpReassembler(o as never);
        expect.unreachable();
      } catch (e) {
        expect(isPcapflowError(e) && e.code).toBe('INVALID_OPTION');
      }
    }
  });
});

describe('TcpReassembler: table of segment scenarios', () => {
  it('reorders segments', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 111, 501, 'KLMNO'), c.c('A', 106, 501, 'FGHIJ'), c.c('A', 101, 501, 'ABCDE'), c.c('A', 116, 501, 'PQ')]);
    expect(stream(ev).c2s).toBe('ABCDEFGHIJKLMNOPQ');
    expect(closeOf(ev).c2s).toMatchObject({ outOfOrder: 2, gaps: 0 });
  });

  it('drops duplicates and retransmissions', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'ABCDE'), c.c('A', 101, 501, 'ABCDE'), c.c('A', 106, 501, 'FGH'), c.c('A', 103, 501, 'CDEFGHIJ'), c.c('A', 101, 501, 'ABCDE')]);
    expect(stream(ev).c2s).toBe('ABCDEFGHIJ');
    expect(closeOf(ev).c2s).toMatchObject({ retransmitted: 2, bytes: 10 });
  });

  it('keeps delivered views for overlap checks for the last 8 read chunks only (trimSent)', () => {
    // a payload as the reader gives it: a view into a large read chunk of its own
    const inChunk = (p: Packet): Packet => {
      const chunk = new Uint8Array(128 * 1024);
      chunk.set(p.payload, 100);
      p.payload = chunk.subarray(100, 100 + p.payload.length);
      return p;
    };
    const scenario = (serverChunks: number): StreamEvent[] => {
      const c = new Conv();
      // the client's 'hello' is never acknowledged; the server sends one segment per chunk, each acknowledged
      const pk = [...hs(c), inChunk(c.c('PA', 101, 501, 'hello'))];
      let s = 501;
      for (let i = 0; i < serverChunks; i++) {
        pk.push(inChunk(c.s('PA', s, 101, 'x'.repeat(10))));
        s += 10;
        pk.push(c.c('A', 106, s));
      }
      pk.push(c.c('PA', 101, s, 'HELLO')); // a retransmission with other bytes
      return run(pk, {}, 1);
    };
    const near = scenario(3);
    expect(closeOf(near).c2s.overlaps).toBe(1);
    expect(lastStats!.reasm.sentTrimmed).toBe(0);
    const far = scenario(12);
    expect(closeOf(far).c2s.overlaps).toBe(0);
    expect(closeOf(far).c2s.retransmitted).toBe(1);
    expect(lastStats!.reasm.sentTrimmed).toBe(1);
    // the server's side began to hold a view with each segment (then emptied by the ACK): trimmed never
    expect(closeOf(far).s2c.bytes).toBe(120);
  });

  it('overlapping out-of-order segments with equal bytes give no overlap event', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 106, 501, 'FGHIJ'), c.c('A', 104, 501, 'DEFGHIJKL'), c.c('A', 101, 501, 'ABC')]);
    expect(stream(ev).c2s).toBe('ABCDEFGHIJKL');
    expect(ev.some((e) => e.type === 'overlap')).toBe(false);
  });

  it.each([
    ['first', 'abcGOOD', 'overlap 0 c2s 3+4 first'],
    ['last', 'abcEVIL', 'overlap 0 c2s 3+4 last'],
  ] as const)('exact overlap with different bytes, policy %s', (policy, want, ov) => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 104, 501, 'GOOD'), c.c('A', 104, 501, 'EVIL'), c.c('A', 101, 501, 'abc')], { overlap: policy });
    expect(stream(ev).c2s).toBe(want);
    expect(kinds(ev)).toContain(ov);
    expect(closeOf(ev).c2s.overlaps).toBe(1);
  });

  it.each([
    ['first', 'abcGOOD!'],
    ['last', 'abcGXXX!'],
  ] as const)('partial overlap with different bytes, policy %s', (policy, want) => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 104, 501, 'GOOD'), c.c('A', 105, 501, 'XXX!'), c.c('A', 101, 501, 'abc')], { overlap: policy });
    expect(stream(ev).c2s).toBe(want);
    expect(kinds(ev)).toContain(`overlap 0 c2s 4+3 ${policy}`);
  });

  it('bytes already delivered win over a differing retransmission, whatever the policy', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'GOOD'), c.c('A', 102, 501, 'OXD!'), c.s('A', 501, 106), c.c('A', 101, 501, 'EVIL!')], { overlap: 'last' });
    expect(stream(ev).c2s).toBe('GOOD!');
    // the differing bytes O[X]D are reported; once ACKed, the bytes are no longer kept for the check
    expect(kinds(ev).filter((k) => k.startsWith('overlap'))).toEqual(['overlap 0 c2s 2+1 first']);
    expect(closeOf(ev).c2s.retransmitted).toBe(1);
    const off = run([...hs(c), c.c('A', 101, 501, 'GOOD'), c.c('A', 101, 501, 'EVIL')], { overlapCheckBytes: 0 });
    expect(off.some((e) => e.type === 'overlap')).toBe(false);
  });

  it('handles a segment that spans the 2^32 wrap, and post-wrap data before pre-wrap data', () => {
    const c = new Conv();
    const ci = W - 5; // first byte at W-4
    const si = W - 2; // first byte at W-1
    const ev = run([
      c.c('S', ci),
      c.s('SA', si, ci + 1),
      c.c('A', ci + 1, si + 1),
      c.c('PA', ci + 1, si + 1, '0123456789'), // W-4 .. W+6: spans the wrap
      c.s('PA', 4, ci + 11, 'WXYZ'), // post-wrap server data first: offsets 5..9
      c.s('PA', si + 1, ci + 11, 'abcde'), // W-1 .. W+4
      c.c('FA', 6, 9),
      c.s('FA', 8, 7),
    ]);
    expect(stream(ev)).toEqual({ c2s: '0123456789', s2c: 'abcdeWXYZ' });
    expect(closeOf(ev).reason).toBe('fin');
    expect(closeOf(ev).s2c.outOfOrder).toBe(1);
  });

  it('waits for a hole before the FIN to be filled', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'ABCDE'), c.c('FA', 111, 501, 'KLMNO'), c.s('FA', 501, 106), c.c('A', 106, 502, 'FGHIJ'), c.s('A', 502, 117)]);
    expect(stream(ev).c2s).toBe('ABCDEFGHIJKLMNO');
    expect(kinds(ev).at(-1)).toBe('close 0 fin');
    expect(closeOf(ev).c2s.gaps).toBe(0);
  });

  it('a hole before the FIN that is never filled becomes a gap when the peer ACKs the FIN', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'ABCDE'), c.c('FA', 111, 501, 'KLMNO'), c.s('FA', 501, 106), c.s('A', 502, 117)]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'gap 0 c2s 5+5 acked', 'data 0 c2s 10 KLMNO', 'close 0 fin']);
  });

  it('a hole before the FIN that is never filled nor ACKed is flushed at end of input', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'ABCDE'), c.c('FA', 111, 501, 'KLMNO'), c.s('FA', 501, 106)]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'gap 0 c2s 5+5 eof', 'data 0 c2s 10 KLMNO', 'close 0 fin']);
  });

  it('RST closes the connection and flushes what was held, with gaps (waitPackets 0: at once)', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'ABCDE'), c.c('PA', 121, 501, 'UVWXY'), c.s('RA', 501, 106), c.c('A', 106, 501, 'FGHIJKLMNOPQRST')], { waitPackets: 0 });
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'gap 0 c2s 5+15 rst', 'data 0 c2s 20 UVWXY', 'close 0 rst']);
    expect(lastStats!.reasm.afterClose).toBe(1);
  });

  it('an RST with bytes missing before it waits for them (waitPackets), then closes as at the RST', () => {
    const c = new Conv();
    const late = [...hs(c), c.c('PA', 101, 501, 'ABCDE'), c.c('PA', 121, 501, 'UVWXY'), c.s('RA', 501, 106), c.c('A', 106, 501, 'FGHIJKLMNOPQRST')];
    const ev = run(late);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'data 0 c2s 5 FGHIJKLMNOPQRST', 'data 0 c2s 20 UVWXY', 'close 0 rst']);
    expect(lastStats!.reasm).toMatchObject({ afterClose: 0, rstWaited: 1, rstWaitFilled: 1 });
    // the client's own RST before its last data (a capture of two clocks): the data is kept
    const d = new Conv('10.0.0.1:40001', '10.0.0.2:80');
    const own = run([...hs(d), d.c('PA', 101, 501, 'ABCDE'), d.c('R', 116), d.c('PA', 106, 501, 'FGHIJKLMNO')]);
    expect(kinds(own).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'data 0 c2s 5 FGHIJKLMNO', 'close 0 rst']);
    // bytes that never come: the RST closes after waitPackets packets of any connection, with the gap
    const e = new Conv('10.0.0.1:40002', '10.0.0.2:80');
    const other = new Conv('10.0.0.3:40003', '10.0.0.2:80');
    const filler = [...hs(other), ...Array.from({ length: 6 }, (_, i) => other.c('PA', 101 + i, 501, 'x'))];
    const never = run([...hs(e), e.c('PA', 101, 501, 'ABCDE'), e.c('PA', 121, 501, 'UVWXY'), e.s('RA', 501, 106), ...filler], { waitPackets: 4 });
    const k = kinds(never);
    // the 4th packet after the RST (the other connection's first data) closes it first
    expect(k.slice(0, 7)).toEqual(['open 0', 'data 0 c2s 0 ABCDE', 'open 1', 'gap 0 c2s 5+15 rst', 'data 0 c2s 20 UVWXY', 'close 0 rst', 'data 1 c2s 0 x']);
    expect(lastStats!.reasm).toMatchObject({ rstWaited: 1, rstWaitFilled: 0 });
  });

  it('delivers the payload an RST carries (as tshark shows it)', () => {
    const c = new Conv('1.1.1.1:12345', '2.2.2.2:8080');
    const ev = run([c.c('S', 1), c.s('SA', 1000, 2), c.c('A', 2, 1001), c.s('PA', 1001, 2, 'Please Let Me In!'), c.c('RA', 2, 1018, 'Access Denied')]);
    expect(stream(ev)).toEqual({ c2s: 'Access Denied', s2c: 'Please Let Me In!' });
    expect(closeOf(ev).reason).toBe('rst');
  });

  it.each([
    // first packet from, ports, expected client
    ['client high port -> 80', '10.0.0.1:40000', '10.0.0.2:80', 'c', '10.0.0.1'],
    ['80 -> client high port', '10.0.0.1:40000', '10.0.0.2:80', 's', '10.0.0.1'],
    ['ephemeral ports: lower port is the server', '10.0.0.1:50000', '10.0.0.2:40000', 'c', '10.0.0.1'],
    ['ephemeral ports, first from the lower port', '10.0.0.1:50000', '10.0.0.2:40000', 's', '10.0.0.1'],
  ])('midstream: %s', (_name, cl, sv, first, want) => {
    const c = new Conv(cl, sv);
    const pk = first === 'c' ? [c.c('PA', 7000, 9000, 'req'), c.s('PA', 9000, 7003, 'resp')] : [c.s('PA', 9000, 7000, 'resp'), c.c('PA', 7000, 9004, 'req')];
    const ev = run(pk);
    const open = ev[0] as OpenEvent;
    expect(open.midstream).toBe(true);
    expect(open.client.ip).toBe(want);
    expect(stream(ev)).toEqual({ c2s: 'req', s2c: 'resp' });
    expect(closeOf(ev).reason).toBe('eof');
  });

  it('SYN-ACK captured before the SYN: the receiver of the SYN-ACK is the client, options from both', () => {
    const c = new Conv();
    const ev = run([
      c.s('SA', 500, 101, '', { options: [2, 4, 0x05, 0xb4, 4, 2, 1, 1] }),
      c.c('S', 100, 0, '', { options: [2, 4, 0x05, 0x78, 1, 3, 3, 7] }),
      c.c('A', 101, 501),
      c.c('PA', 101, 501, 'hi'),
      c.s('PA', 501, 103, 'yo'),
    ]);
    const open = ev[0] as OpenEvent;
    expect(open.client.ip).toBe('10.0.0.1');
    expect(open.midstream).toBe(false);
    expect(open.options).toEqual({ c2s: { mss: 1400, wscale: 7 }, s2c: { mss: 1460, sackPermitted: true } });
    expect(stream(ev)).toEqual({ c2s: 'hi', s2c: 'yo' });
  });

  it('keeps data carried on a SYN (TCP Fast Open)', () => {
    const c = new Conv();
    const ev = run([c.c('S', 100, 0, 'GET /'), c.s('SA', 500, 106), c.c('A', 106, 501), c.c('PA', 106, 501, ' HTTP/1.1'), c.c('S', 100, 0, 'GET /')]);
    expect(stream(ev).c2s).toBe('GET / HTTP/1.1');
  });

  it('does not take a keepalive as data', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'ABCDE'), c.s('A', 501, 106), c.c('A', 105, 501, '\0'), c.c('A', 105, 501), c.c('PA', 106, 501, 'F')]);
    expect(stream(ev).c2s).toBe('ABCDEF');
    expect(lastStats!.reasm.keepalives).toBe(2);
    expect(closeOf(ev).c2s.retransmitted).toBe(0);
  });

  it('does not take a zero-window probe as data', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'ABCDE'), c.s('A', 501, 106, '', { win: 0 }), c.c('A', 106, 501, 'F'), c.s('A', 501, 106, '', { win: 0 }), c.s('A', 501, 106, '', { win: 4096 }), c.c('PA', 106, 501, 'FGH')]);
    expect(stream(ev).c2s).toBe('ABCDEFGH');
    expect(lastStats!.reasm.zeroWindowProbes).toBe(1);
  });

  it('emits an acked gap when the peer ACKs bytes never captured, then goes on', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'ABCDE'), c.c('PA', 116, 501, 'PQRST'), c.s('A', 501, 111), c.s('A', 501, 121), c.c('PA', 121, 501, 'UV')]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'gap 0 c2s 5+10 acked', 'data 0 c2s 15 PQRST', 'data 0 c2s 20 UV', 'close 0 eof']);
    expect(closeOf(ev).c2s).toMatchObject({ gaps: 1, missing: 10, bytes: 12 });
  });

  it('an ACK captured just before the data it acknowledges makes no gap', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.s('A', 501, 106), c.c('PA', 101, 501, 'ABCDE'), c.s('A', 501, 106)]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCDE', 'close 0 eof']);
  });

  it('reports bytes cut by the snaplen as a truncated gap, in order and out of order', () => {
    const c = new Conv();
    const ev = run([
      ...hs(c),
      c.c('PA', 101, 501, 'ABCD', { wireLen: 10 }),
      c.c('PA', 121, 501, 'UV', { wireLen: 5 }),
      c.c('PA', 111, 501, 'KLMNOPQRST'),
    ]);
    expect(kinds(ev).slice(1)).toEqual([
      'data 0 c2s 0 ABCD',
      'gap 0 c2s 4+6 truncated',
      'data 0 c2s 10 KLMNOPQRST',
      'data 0 c2s 20 UV',
      'gap 0 c2s 22+3 truncated',
      'close 0 eof',
    ]);
  });

  it('closes idle connections in capture time, not at once', () => {
    const a = new Conv('10.0.0.1:40000', '10.0.0.2:80').at(1000);
    const b = new Conv('10.0.0.3:40000', '10.0.0.2:80').at(1200);
    const pk = [...hs(a), a.c('PA', 101, 501, 'A1'), ...hs(b), b.c('PA', 101, 501, 'B1')];
    b.at(1301);
    pk.push(b.c('PA', 103, 501, 'B2'));
    const ev = run(pk, { idleTimeout: 300 });
    checkOrder(ev);
    const k = kinds(ev);
    expect(k.indexOf('close 0 idle')).toBeGreaterThan(k.indexOf('data 1 c2s 0 B1'));
    expect(k.indexOf('close 0 idle')).toBeLessThan(k.indexOf('data 1 c2s 2 B2'));
    expect(closeOf(ev, 0).ts).toBe('1301.000000000');
    expect(lastStats!.reasm.idleClosed).toBe(1);
    // disabled
    const ev2 = run(pk.map((p) => Object.assign(Object.create(Object.getPrototypeOf(p) as object) as Packet, p, { flow: null, expired: null })), { idleTimeout: 0 });
    expect(closeOf(ev2, 0).reason).toBe('eof');
  });

  it('evicts the least recently active connection at the connection limit', () => {
    const convs = [0, 1, 2].map((i) => new Conv(`10.0.0.${i + 1}:40000`, '10.0.0.9:80'));
    const pk = convs.flatMap((c) => [...hs(c), c.c('PA', 101, 501, 'x')]);
    pk.push(convs[0]!.c('PA', 102, 501, 'y'));
    const ev = run(pk, { maxConnections: 2 });
    checkOrder(ev);
    expect(closeOf(ev, 0).reason).toBe('evicted');
    expect(ev.filter((e) => e.type === 'open').map((e) => e.conn)).toEqual([0, 1, 2, 3]);
    expect(lastStats!.demux.evicted).toBe(2);
    expect(lastStats!.reasm.evicted).toBe(2);
  });

  it('forces a gap when a connection holds more out-of-order bytes than allowed', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 111, 501, 'KLMNO'), c.c('A', 121, 501, 'UVWXY'), c.c('A', 131, 501, '45678')], { maxBufferedPerConnection: 10 + 2 * SEGMENT_OVERHEAD });
    // the third segment brings the held bytes to 15: the first hole is skipped, leaving 10 held
    expect(kinds(ev).slice(1)).toEqual(['gap 0 c2s 0+10 limit', 'data 0 c2s 10 KLMNO', 'gap 0 c2s 15+5 eof', 'data 0 c2s 20 UVWXY', 'gap 0 c2s 25+5 eof', 'data 0 c2s 30 45678', 'close 0 eof']);
    expect(lastStats!.reasm.limitHits).toBe(1);
    expect(lastStats!.reasm.peakBufferedBytes).toBeLessThanOrEqual(10 + 2 * SEGMENT_OVERHEAD);
  });

  it('forces a gap on the oldest holder when all connections together hold too much', () => {
    const a = new Conv('10.0.0.1:40000', '10.0.0.2:80');
    const b = new Conv('10.0.0.3:40000', '10.0.0.2:80');
    const ev = run([...hs(a), ...hs(b), a.c('A', 111, 501, 'aaaaa'), b.c('A', 111, 501, 'bbbbb'), b.c('A', 121, 501, 'ccccc')], { maxBufferedTotal: 12 + 2 * SEGMENT_OVERHEAD });
    const k = kinds(ev);
    expect(k).toContain('gap 0 c2s 0+10 limit');
    expect(k.indexOf('gap 0 c2s 0+10 limit')).toBeLessThan(k.indexOf('close 0 eof'));
    expect(k.filter((x) => x.startsWith('gap 1')).every((x) => x.endsWith('eof'))).toBe(true);
    expect(lastStats!.reasm.peakBufferedBytes).toBeLessThanOrEqual(12 + 2 * SEGMENT_OVERHEAD);
  });

  it('numbers a new connection when a SYN with another ISN reuses the 4-tuple', () => {
    const c = new Conv();
    const ev = run([
      ...hs(c),
      c.c('PA', 101, 501, 'one'),
      c.c('FA', 104, 501),
      c.s('FA', 501, 105),
      c.c('A', 105, 502),
      c.c('S', 100), // same ISN: a retransmission, same connection (tshark does the same)
      ...hs(c, 7000, 9000),
      c.c('PA', 7001, 9001, 'two'),
    ]);
    checkOrder(ev);
    expect(stream(ev, 0).c2s).toBe('one');
    expect(stream(ev, 1).c2s).toBe('two');
    expect(lastStats!.demux.connections).toBe(2);
    expect(lastStats!.demux.reused).toBe(1);
  });

  it('a SYN with a new ISN on a 4-tuple that never closed ends the old connection (evicted)', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'one'), ...hs(c, 7000, 9000), c.c('PA', 7001, 9001, 'two')]);
    checkOrder(ev);
    expect(closeOf(ev, 0).reason).toBe('evicted');
    expect(stream(ev, 1).c2s).toBe('two');
  });

  it.each([
    ['plain', ['a', 'b', 'c', 'de', 'f']],
    ['push', ['abc', 'def']],
  ] as const)('chunking %s', (chunking, want) => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'a'), c.c('A', 102, 501, 'b'), c.c('PA', 103, 501, 'c'), c.c('A', 104, 501, 'de'), c.c('FA', 106, 501, 'f')], { chunking });
    const data = ev.filter((e): e is DataEvent => e.type === 'data').map((e) => Buffer.from(e.data).toString());
    expect(data).toEqual(want);
    expect(stream(ev).c2s).toBe('abcdef');
  });

  it('push chunking flushes before a gap and at pushMaxBytes', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('A', 101, 501, 'ab'), c.c('A', 103, 501, 'cd'), c.c('A', 105, 501, 'ef'), c.s('A', 501, 110), c.c('A', 110, 501, 'XY')], { chunking: 'push', pushMaxBytes: 4 });
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 abcd', 'data 0 c2s 4 ef', 'gap 0 c2s 6+3 acked', 'data 0 c2s 9 XY', 'close 0 eof']);
  });

  it('holds an RST and FIN sent before the SYN-ACK (evasion), going on when the handshake does', () => {
    const c = new Conv();
    const ev = run([c.c('S', 100), c.s('RA', 0, 101), c.s('FA', 0, 101), c.s('SA', 500, 101), c.c('A', 101, 501), c.c('PA', 101, 501, 'GET'), c.s('PA', 501, 104, 'OK')]);
    expect(stream(ev)).toEqual({ c2s: 'GET', s2c: 'OK' });
    expect(closeOf(ev).reason).toBe('eof');
    expect(lastStats!.reasm.heldRst).toBe(1);
    expect(lastStats!.reasm.ignoredFin).toBe(1);
  });

  it('a refused connection (SYN, RST) closes as rst', () => {
    const c = new Conv();
    const ev = run([c.c('S', 100), c.s('RA', 0, 101)]);
    expect(kinds(ev)).toEqual(['open 0', 'close 0 rst']);
  });

  it('keeps stream offsets exact past 4 GiB', () => {
    const c = new Conv();
    const isn = 1000;
    const pk = [...hs(c, isn)];
    // the peer acknowledges ~5 GB in steps below 2^31; a few bytes are captured at each step
    let off = 0;
    for (let i = 0; i < 5; i++) {
      pk.push(c.c('PA', (isn + 1 + off) % W, 501, 'x'));
      off += 1_100_000_000;
      pk.push(c.s('A', 501, (isn + 1 + off) % W));
    }
    pk.push(c.c('PA', (isn + 1 + off) % W, 501, 'END'));
    const ev = run(pk);
    const last = ev.filter((e): e is DataEvent => e.type === 'data').at(-1)!;
    expect(last.offset).toBe(5_500_000_000);
    expect(closeOf(ev).c2s.missing).toBe(5_500_000_000 - 5);
  });
});

describe('TcpReassembler: regressions found by the tshark differential test', () => {
  const WS = (shift: number): number[] => [3, 3, shift, 1]; // window scale option + NOP

  it('drops a segment beyond any window the receiver could offer (arkime tcp-seq-wraparound conn 0), and its FIN', () => {
    const c = new Conv();
    // no window scale on the SYNs: the receiver never offered more than 65535
    const ev = run([...hs(c), c.c('PA', 101, 501, 'ABCD'), c.c('FPA', 101 + 251_658_111, 501, 'JUNK')]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 ABCD', 'close 0 eof']);
    expect(lastStats!.reasm.outOfWindow).toBe(1);
    expect(closeOf(ev).c2s).toMatchObject({ bytes: 4, gaps: 0 });
  });

  it('the window bound follows the receiver\'s window scale, and is 65535 << 14 when no SYN was seen', () => {
    const c = new Conv();
    const scaled = run([c.c('S', 100, 0, '', { options: WS(7) }), c.s('SA', 500, 101, '', { options: WS(2) }), c.c('A', 101, 501), c.c('PA', 101 + 200_000, 501, 'FAR')]);
    // the server (receiver of c2s) scales by 2: 262140 > 200000, so the segment is held, then flushed
    expect(kinds(scaled).slice(1)).toEqual(['gap 0 c2s 0+200000 eof', 'data 0 c2s 200000 FAR', 'close 0 eof']);
    const c2 = new Conv();
    const far = run([c2.c('S', 100, 0, '', { options: WS(7) }), c2.s('SA', 500, 101, '', { options: WS(2) }), c2.c('A', 101, 501), c2.c('PA', 101 + 300_000, 501, 'FAR')]);
    expect(kinds(far).slice(1)).toEqual(['close 0 eof']);
    const c3 = new Conv();
    const mid = run([c3.c('PA', 101, 501, 'AB'), c3.c('PA', 103 + 100_000_000, 501, 'CD')]);
    expect(kinds(mid).slice(1)).toEqual(['data 0 c2s 0 AB', 'gap 0 c2s 2+100000000 eof', 'data 0 c2s 100000002 CD', 'close 0 eof']);
  });

  it('takes an out-of-window segment after all when the next one continues it (the capture lost more than a window)', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 101, 501, 'AB'), c.c('PA', 103 + 1_000_000, 501, 'CD'), c.c('PA', 105 + 1_000_000, 501, 'EF')]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 AB', 'gap 0 c2s 2+1000000 eof', 'data 0 c2s 1000002 CD', 'data 0 c2s 1000004 EF', 'close 0 eof']);
    expect(lastStats!.reasm.outOfWindow).toBe(0);
  });

  it('takes an out-of-window segment and its FIN when the peer acknowledges up to it (zeek ftp-bigtransfer)', () => {
    const c = new Conv();
    const far = 101 + 2 + 740_934_032;
    const ev = run([...hs(c), c.c('PA', 101, 501, 'AB'), c.c('FPA', far, 501, 'END'), c.s('A', 501, far), c.s('FA', 501, far + 4), c.c('A', far + 4, 502)]);
    expect(kinds(ev).slice(1)).toEqual(['data 0 c2s 0 AB', 'gap 0 c2s 2+740934032 acked', 'data 0 c2s 740934034 END', 'close 0 fin']);
    expect(lastStats!.reasm.outOfWindow).toBe(0);
  });

  it('a segment below the ACK but past a hole is delivered: only the hole up to it is skipped', () => {
    const c = new Conv();
    // the server ACKs 111 (10 bytes) before the client's segments at 106 and 101 come
    const ev = run([...hs(c), c.s('A', 501, 111), c.c('PA', 106, 501, 'FGHIJ'), c.c('PA', 111, 501, 'KL')]);
    expect(kinds(ev).slice(1)).toEqual(['gap 0 c2s 0+5 acked', 'data 0 c2s 5 FGHIJ', 'data 0 c2s 10 KL', 'close 0 eof']);
  });

  it('a hole the peer acknowledged keeps reason acked when the connection ends (suricata tcp-leading-gap)', () => {
    const c = new Conv();
    const ev = run([...hs(c), c.c('PA', 105, 501, 'GOOD'), c.s('A', 501, 109)]);
    expect(kinds(ev).slice(1)).toEqual(['gap 0 c2s 0+4 acked', 'data 0 c2s 4 GOOD', 'close 0 eof']);
  });

  it('in a connection whose capture times go backwards, an acknowledged hole waits for the data (tcpflow http-lines-randomized)', () => {
    const c = new Conv().at(10);
    const pk = [...hs(c)];
    c.at(10.5);
    pk.push(c.s('FA', 511, 101)); // server FIN after 10 bytes, captured before the data
    c.at(10.4);
    pk.push(c.c('A', 101, 512)); // the client ACKs the FIN: time went back
    c.at(10.3);
    pk.push(c.s('PA', 506, 101, 'FGHIJ'));
    c.at(10.6);
    pk.push(c.c('FA', 101, 512));
    c.at(10.2);
    pk.push(c.s('PA', 501, 101, 'ABCDE'));
    const ev = run(pk);
    expect(stream(ev).s2c).toBe('ABCDEFGHIJ');
    expect(kinds(ev).filter((k) => k.startsWith('gap'))).toEqual([]);
    expect(closeOf(ev).reason).toBe('fin');
    expect(lastStats!.reasm.disordered).toBe(1);
    // in capture-time order too, the bytes the ACK covered are waited for (waitPackets) ...
    const d = new Conv();
    const inOrderPackets = [...hs(d), d.s('PA', 506, 101, 'FGHIJ'), d.s('FA', 511, 101), d.c('A', 101, 512), d.c('FA', 101, 512), d.s('PA', 501, 101, 'ABCDE')];
    expect(stream(run(inOrderPackets)).s2c).toBe('ABCDEFGHIJ');
    // ... and with waitPackets 0 the same ACK makes the hole a gap at once
    const inOrder = run(inOrderPackets, { waitPackets: 0 });
    expect(kinds(inOrder).slice(1, 3)).toEqual(['gap 0 s2c 0+5 acked', 'data 0 s2c 5 FGHIJ']);
  });

  it('a SYN-ACK that restarts a direction after its FIN was seen un-finishes that FIN', () => {
    const c = new Conv().at(10);
    // shuffled: the server's FIN (seq 511) comes first and syncs s2c there; the SYN-ACK restarts it at 501
    const pk = [c.s('FA', 511, 101)];
    c.at(9);
    pk.push(c.c('S', 100), c.s('SA', 500, 101), c.c('A', 101, 512), c.c('FA', 101, 512), c.s('PA', 501, 101, '0123456789'), c.s('A', 512, 102));
    // (waitPackets 0: taken in file order; by default the FIN is held until the SYN comes, see below)
    const ev = run(pk, { waitPackets: 0 });
    expect(stream(ev).s2c).toBe('0123456789');
    expect(closeOf(ev).reason).toBe('fin');
    // by default the server's FIN waits for a SYN (a connection first seen without one); the
    // client's SYN comes first, so the FIN counts as one before the SYN-ACK (ignored) and the
    // stream is the same
    const held = run(pk);
    expect(stream(held).s2c).toBe('0123456789');
    expect(held.find((e) => e.type === 'open')).toMatchObject({ midstream: false });
  });

  it('a SYN captured after its connection\'s first data joins it: not midstream, offsets from the SYN, no second connection', () => {
    const c = new Conv();
    // the client's second segment comes first, then the handshake, then the first segment
    const pk = [c.c('PA', 106, 501, 'FGHIJ'), c.c('S', 100), c.s('SA', 500, 101), c.c('A', 101, 501), c.c('PA', 101, 501, 'ABCDE'), c.s('PA', 501, 111, 'xyz'), c.c('FA', 111, 504), c.s('FA', 504, 112), c.c('A', 112, 505)];
    const ev = run(pk);
    const opens = ev.filter((e) => e.type === 'open');
    expect(opens).toHaveLength(1);
    expect(opens[0]).toMatchObject({ midstream: false });
    expect(stream(ev)).toEqual({ c2s: 'ABCDEFGHIJ', s2c: 'xyz' });
    expect(kinds(ev).filter((k) => k.startsWith('gap'))).toEqual([]);
    expect(closeOf(ev).reason).toBe('fin');
    expect(lastStats!.reasm.lateSyn).toBe(1);
    expect(lastStats!.demux.lateSyn).toBe(1);
    // without waiting (waitPackets 0): the same connection (the demux's lateSyn) but midstream, from the first segment seen
    const now = run(pk, { waitPackets: 0 });
    expect(now.filter((e) => e.type === 'open')).toEqual([expect.objectContaining({ midstream: true })]);
  });
});
