import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import { StdoutSink } from '../src/sinks/stdout-sink.js';
import { closeEvent, CollectingWritable, dataEvent, drive, gapEvent, openEvent, pattern, SlowWritable } from './helpers/sink-events.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('StdoutSink', () => {
  it('writes headers, data, gaps and the close in event order, one write per batch', async () => {
    const dest = new CollectingWritable();
    const sink = new StdoutSink({ dest });
    const a = openEvent(0, { ip: '10.0.0.1', port: 1111 }, { ip: '10.0.0.2', port: 80 });
    const b = openEvent(1, { ip: '10.0.0.3', port: 2222 }, { ip: '10.0.0.2', port: 80 }, [42]);
    const batches: StreamEvent[][] = [
      [a, b, dataEvent(0, 'c2s', 0, text('GET /a HTTP/1.1\r\n\r\n')), dataEvent(1, 'c2s', 0, text('GET /b'))],
      [dataEvent(0, 's2c', 0, text('HTTP/1.1 200 OK\r\n\r\n\x00\x01')), gapEvent(0, 's2c', 21, 100), dataEvent(0, 's2c', 121, text('tail'))],
      [closeEvent(a, 19, 25), closeEvent(b, 6, 0)],
    ];
    await drive(sink, batches);
    expect(dest.writes).toBe(3);
    expect(sink.stats).toMatchObject({ batches: 3, events: 9, writes: 3, dropped: 0 });
    const lines = dest.text().split('\n');
    expect(lines[0]).toBe('=== conn 0 open 10.0.0.1:1111 => 10.0.0.2:80 vlan=none midstream=no ts=1700000000.000000000');
    expect(lines[1]).toBe('=== conn 1 open 10.0.0.3:2222 => 10.0.0.2:80 vlan=42 midstream=no ts=1700000000.001000000');
    expect(lines[2]).toMatch(/^--- conn 0 10\.0\.0\.1:1111 => 10\.0\.0\.2:80 offset=0 /);
    expect(lines[3]).toBe('GET /a HTTP/1.1\r');
    expect(lines[5]).toMatch(/^--- conn 1 10\.0\.0\.3:2222 => 10\.0\.0\.2:80 offset=0 /);
    expect(lines[6]).toBe('GET /b');
    expect(lines[7]).toMatch(/^--- conn 0 10\.0\.0\.2:80 => 10\.0\.0\.1:1111 offset=0 /);
    expect(lines[10]).toBe('\\x00\\x01');
    expect(lines[11]).toMatch(/^!!! conn 0 s2c gap offset=21 len=100 reason=acked /);
    expect(lines[12]).toMatch(/^--- conn 0 10\.0\.0\.2:80 => 10\.0\.0\.1:1111 offset=121 /);
    expect(lines[13]).toBe('tail');
    expect(lines[14]).toMatch(/^=== conn 0 close reason=fin .* c2s: bytes=19 .*; s2c: bytes=25 /);
    expect(lines[15]).toMatch(/^=== conn 1 close reason=fin /);
    expect(lines[16]).toBe('');
    expect(lines).toHaveLength(17);
  });

  it('direction c2s leaves out the other direction', async () => {
    const dest = new CollectingWritable();
    const sink = new StdoutSink({ dest, direction: 'c2s' });
    const a = openEvent(0, { ip: '10.0.0.1', port: 1111 }, { ip: '10.0.0.2', port: 80 });
    await drive(sink, [[a, dataEvent(0, 'c2s', 0, text('ask\n')), dataEvent(0, 's2c', 0, text('answer\n')), gapEvent(0, 's2c', 7, 3), closeEvent(a, 4, 7)]]);
    const out = dest.text();
    expect(out).toContain('ask\n');
    expect(out).not.toContain('answer');
    expect(out).not.toContain('!!! ');
    expect(out).toContain('=== conn 0 close');
  });

  it('honours backpressure: a slow destination bounds what is buffered', async () => {
    const dest = new SlowWritable();
    const sink = new StdoutSink({ dest });
    const n = 3000;
    const open = openEvent(0, { ip: '10.0.0.1', port: 1111 }, { ip: '10.0.0.2', port: 80 });
    function* batches(): Generator<StreamEvent[]> {
      yield [open];
      for (let i = 0; i < n; i++) {
        const batch: StreamEvent[] = [];
        for (let j = 0; j < 10; j++) batch.push(dataEvent(0, 'c2s', (i * 10 + j) * 200, pattern(0, 'c2s', (i * 10 + j) * 200, 200)));
        yield batch;
      }
    }
    const { maxAhead, produced } = await drive(sink, batches());
    expect(produced).toBe(n + 1);
    expect(sink.stats.drains).toBeGreaterThan(n / 2); // it really waited
    // batches in flight: the source's buffer (2) + the sink's (4) + the one being written
    expect(maxAhead).toBeLessThanOrEqual(10);
    // the destination never held more than one rendered batch (~10 x 200 bytes, escaped at most x4)
    expect(dest.maxBuffered).toBeLessThanOrEqual(10 * 200 * 4 + 200);
    expect(dest.total).toBe(sink.stats.chars);
  });

  it('stops quietly when the reader goes away (EPIPE through a real pipe to head -c 100)', async () => {
    const child = spawn('head', ['-c', '100'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const got: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => got.push(b));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const sink = new StdoutSink({ dest: child.stdin });
    let closedEvents = 0;
    sink.on('closedEarly', () => closedEvents++);
    const open = openEvent(0, { ip: '10.0.0.1', port: 1111 }, { ip: '10.0.0.2', port: 80 });
    function* batches(): Generator<StreamEvent[]> {
      yield [open];
      for (let i = 0; i < 4000; i++) yield [dataEvent(0, 'c2s', i * 4096, new Uint8Array(4096).fill(0x61))];
    }
    await drive(sink, batches()); // resolves: no error
    expect(await exited).toBe(0);
    expect(sink.closedEarly).toBe(true);
    expect(closedEvents).toBe(1);
    expect(sink.stats.dropped).toBeGreaterThan(0);
    expect(Buffer.concat(got).toString()).toBe(
      '=== conn 0 open 10.0.0.1:1111 => 10.0.0.2:80 vlan=none midstream=no ts=1700000000.000000000\n--- conn 0 1'.slice(0, 100),
    );
  });

  it('a destination error other than EPIPE fails with OUTPUT_FAILED (ENOSPC from /dev/full)', async () => {
    if (!fs.existsSync('/dev/full')) return;
    const sink = new StdoutSink({ dest: fs.createWriteStream('/dev/full') });
    const open = openEvent(0, { ip: '10.0.0.1', port: 1111 }, { ip: '10.0.0.2', port: 80 });
    function* batches(): Generator<StreamEvent[]> {
      yield [open];
      for (let i = 0; i < 100; i++) yield [dataEvent(0, 'c2s', i * 1000, new Uint8Array(1000).fill(0x62))];
    }
    await expect(drive(sink, batches())).rejects.toMatchObject({ name: 'PcapflowError', code: 'OUTPUT_FAILED' });
    expect(sink.closedEarly).toBe(false);
  });
});
