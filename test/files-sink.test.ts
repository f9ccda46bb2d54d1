import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Direction, StreamEvent } from '../src/core/events.js';
import { FdPool } from '../src/sinks/fd-pool.js';
import { CONNECTIONS_FILE, FilesSink } from '../src/sinks/files-sink.js';
import { connectionRecords } from './helpers/dir-contents.js';
import { closeEvent, dataEvent, drive, endpoints, gapEvent, openEvent, pattern } from './helpers/sink-events.js';

// tmpfs when there is one: the big test is about descriptors and bytes, not disk speed
const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const root = fs.mkdtempSync(path.join(base, 'pcapflow-files-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (): string => path.join(root, `out${dirCount++}`);
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const records = connectionRecords;

/** writeBatch hands one batch to the sink and waits until it is on disk. */
function writeBatch(sink: FilesSink, batch: StreamEvent[]): Promise<void> {
  return new Promise((resolve, reject) => sink.write(batch, (err) => (err ? reject(err) : resolve())));
}

const A = { ip: '10.180.156.1', port: 40008 };
const B = { ip: '10.180.156.2', port: 80 };

describe('FilesSink', () => {
  it('writes each direction to its own file, no filler at gaps, and records the connection', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir });
    const o = openEvent(0, A, B);
    const o2 = openEvent(1, { ip: '10.0.0.9', port: 5555 }, { ip: '10.0.0.10', port: 25 });
    await drive(sink, [
      [o, o2, dataEvent(0, 'c2s', 0, text('GET / HTTP/1.1\r\n')), dataEvent(1, 'c2s', 0, text('EHLO x\r\n'))],
      [dataEvent(0, 's2c', 0, text('HTTP/1.1 200 OK\r\n')), gapEvent(0, 's2c', 17, 1000), dataEvent(0, 's2c', 1017, text('tail'))],
      [dataEvent(0, 'c2s', 16, text('\r\n')), closeEvent(o, 18, 21, { s2c: [1, 1000] }), closeEvent(o2, 8, 0)],
    ]);
    const c2s = '010.180.156.001.40008-010.180.156.002.00080';
    const s2c = '010.180.156.002.00080-010.180.156.001.40008';
    const smtp = '010.000.000.009.05555-010.000.000.010.00025';
    expect(fs.readdirSync(dir).sort()).toEqual([c2s, s2c, smtp, CONNECTIONS_FILE].sort());
    expect(fs.readFileSync(path.join(dir, c2s), 'utf8')).toBe('GET / HTTP/1.1\r\n\r\n');
    expect(fs.readFileSync(path.join(dir, s2c), 'utf8')).toBe('HTTP/1.1 200 OK\r\ntail');
    expect(fs.readFileSync(path.join(dir, smtp), 'utf8')).toBe('EHLO x\r\n');
    const recs = records(dir);
    expect(recs.map((r) => r.conn)).toEqual([0, 1]);
    expect(recs[0]).toMatchObject({
      conn: 0,
      reason: 'fin',
      client: A,
      server: B,
      vlan: [],
      midstream: false,
      openTs: o.ts,
      c2s: { file: c2s, bytes: 18, gaps: 0, gapList: [], overlapList: [], unlisted: 0 },
      s2c: { file: s2c, bytes: 21, gaps: 1, missing: 1000, gapList: [{ offset: 17, len: 1000, reason: 'acked' }] },
    });
    // an empty direction has no file
    expect(recs[1]).toMatchObject({ c2s: { file: smtp, bytes: 8 }, s2c: { file: null, bytes: 0 } });
    expect(sink.stats).toMatchObject({ files: 3, connections: 2, gaps: 1, batches: 3 });
  });

  it('names reused 4-tuples c<N> and VLAN-tagged flows --<id> as tcpflow does', async () => {
    // arkime__tcp-reassembly-scenarios.pcap: port 40008 is used twice; the second connection's
    // server sends no data. tcpflow 1.6.1 (`tcpflow -r F -o DIR`) wrote exactly these three files.
    const dir = newDir();
    const sink = new FilesSink({ dir });
    const first = openEvent(7, A, B);
    const second = openEvent(8, A, B);
    const tagged = openEvent(9, A, B, [4093, 5]);
    await drive(sink, [
      [first, dataEvent(7, 'c2s', 0, text('req1')), dataEvent(7, 's2c', 0, text('resp1')), closeEvent(first, 4, 5)],
      [second, dataEvent(8, 'c2s', 0, text('req2')), closeEvent(second, 4, 0)],
      [tagged, dataEvent(9, 's2c', 0, text('v')), closeEvent(tagged, 0, 1)],
    ]);
    expect(fs.readdirSync(dir).sort()).toEqual(
      [
        '010.180.156.001.40008-010.180.156.002.00080',
        '010.180.156.001.40008-010.180.156.002.00080c1',
        '010.180.156.002.00080-010.180.156.001.40008',
        '010.180.156.002.00080-010.180.156.001.40008--4093',
        CONNECTIONS_FILE,
      ].sort(),
    );
    expect(fs.readFileSync(path.join(dir, '010.180.156.001.40008-010.180.156.002.00080c1'), 'utf8')).toBe('req2');
    expect(records(dir).map((r) => [r.c2s.file, r.s2c.file])).toEqual([
      ['010.180.156.001.40008-010.180.156.002.00080', '010.180.156.002.00080-010.180.156.001.40008'],
      ['010.180.156.001.40008-010.180.156.002.00080c1', null],
      [null, '010.180.156.002.00080-010.180.156.001.40008--4093'],
    ]);
  });

  it('writes NAME.part and renames it only when the connection closes', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir, coalesceBytes: 0, aheadBytes: 0 });
    const o = openEvent(0, A, B);
    await writeBatch(sink, [o, dataEvent(0, 'c2s', 0, text('abc'))]);
    await writeBatch(sink, []);
    const name = '010.180.156.001.40008-010.180.156.002.00080';
    expect(fs.readdirSync(dir).sort()).toEqual([name + '.part', CONNECTIONS_FILE]);
    // a batch is on disk once the callback of the batch after it ran (one write in flight)
    expect(fs.readFileSync(path.join(dir, name + '.part'), 'utf8')).toBe('abc');
    expect(records(dir)).toEqual([]);
    await writeBatch(sink, [dataEvent(0, 'c2s', 3, text('def'))]);
    await writeBatch(sink, []);
    expect(fs.existsSync(path.join(dir, name))).toBe(false);
    await writeBatch(sink, [closeEvent(o, 6, 0)]);
    await writeBatch(sink, []);
    expect(fs.readdirSync(dir).sort()).toEqual([name, CONNECTIONS_FILE]);
    expect(fs.readFileSync(path.join(dir, name), 'utf8')).toBe('abcdef');
    expect(records(dir)).toHaveLength(1);
    await new Promise<void>((resolve) => sink.end(resolve));
  });

  it('at the end, closes and renames the files of connections that never closed', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir });
    await drive(sink, [[openEvent(0, A, B), dataEvent(0, 's2c', 0, text('xyz')), gapEvent(0, 's2c', 3, 5)]]);
    expect(fs.readdirSync(dir).sort()).toEqual(['010.180.156.002.00080-010.180.156.001.40008', CONNECTIONS_FILE]);
    expect(records(dir)[0]).toMatchObject({ reason: 'unclosed', s2c: { bytes: 3, gaps: 1, missing: 5 }, c2s: { file: null } });
  });

  it('one writev per file per batch, even with more chunks than IOV_MAX', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir });
    const o = openEvent(0, A, B);
    const batch: StreamEvent[] = [o];
    const expected: number[] = [];
    for (let i = 0; i < 3000; i++) {
      batch.push(dataEvent(0, 'c2s', i * 3, pattern(0, 'c2s', i * 3, 3)));
      expected.push(...pattern(0, 'c2s', i * 3, 3));
    }
    batch.push(closeEvent(o, 9000, 0));
    await drive(sink, [batch]);
    expect(sink.stats.writes).toBe(1);
    expect(new Uint8Array(fs.readFileSync(path.join(dir, '010.180.156.001.40008-010.180.156.002.00080')))).toEqual(Uint8Array.from(expected));
  });

  it('coalesces small writes across batches: by size, by age, at close; bytes unchanged', async () => {
    const run = async (options: { coalesceBytes?: number; coalesceBatches?: number; maxHeldBytes?: number }): Promise<{ writes: number; a: Buffer; b: Buffer; sink: FilesSink }> => {
      const dir = newDir();
      const sink = new FilesSink({ dir, aheadBytes: 0, coalesceBatches: 8, ...options });
      const oa = openEvent(0, A, B);
      const ob = openEvent(1, { ...A, port: 40009 }, B);
      const batches: StreamEvent[][] = [[oa, ob]];
      // 40 batches: conn 0 gets 16 KiB per batch (64 KiB every 4 batches), conn 1 gets 10 bytes
      for (let i = 0; i < 40; i++) batches.push([dataEvent(0, 'c2s', i * 16384, pattern(0, 'c2s', i * 16384, 16384)), dataEvent(1, 'c2s', i * 10, pattern(1, 'c2s', i * 10, 10))]);
      batches.push([closeEvent(oa, 40 * 16384, 0), closeEvent(ob, 400, 0)]);
      await drive(sink, batches);
      const read = (port: number): Buffer => fs.readFileSync(path.join(dir, `010.180.156.001.${String(port).padStart(5, '0')}-010.180.156.002.00080`));
      return { writes: sink.stats.writes, a: read(40008), b: read(40009), sink };
    };
    const eager = await run({ coalesceBytes: 0 });
    expect(eager.writes).toBe(80);
    // conn 0: 64 KiB every 4 batches (10 writes); conn 1, without copies: when its first pending
    // bytes are 8 batches old, so 9 batches a write (4 writes), and the last 4 batches at close
    const lazy = await run({ maxHeldBytes: 0 });
    expect(lazy.writes).toBe(10 + 5);
    expect(lazy.sink.stats.heldCopied).toBe(0);
    // with copies (the default): conn 1's old bytes are copied out and written at close
    const held = await run({});
    expect(held.writes).toBe(10 + 1);
    expect(held.sink.stats).toMatchObject({ heldCopied: 360, peakHeld: 512, heldSpills: 0 });
    const aged = await run({ coalesceBatches: 1000 });
    expect(aged.writes).toBe(10 + 1);
    for (const r of [lazy, held, aged]) {
      expect(r.a.equals(eager.a)).toBe(true);
      expect(r.b.equals(eager.b)).toBe(true);
    }
    expect(eager.a.equals(Buffer.from(pattern(0, 'c2s', 0, 40 * 16384)))).toBe(true);
  });

  it('copies sparse directions out of the read chunks: heldFrom lets their chunks go, copies past maxHeldBytes are all written', async () => {
    // 200 connections each get 100 bytes in every 4th batch, in views of that batch's own
    // "read chunk" (a 64 KiB buffer ranked by batch number)
    const conns = 200;
    const batches = 64;
    const chunks: ArrayBuffer[] = [];
    const rank = (buf: ArrayBufferLike): number => {
      const r = chunks.indexOf(buf as ArrayBuffer);
      return r < 0 ? Infinity : r + 1;
    };
    const run = async (maxHeldBytes?: number): Promise<{ sink: FilesSink; dir: string; oldest: number[] }> => {
      const dir = newDir();
      const sink = new FilesSink({ dir, aheadBytes: 0, ...(maxHeldBytes === undefined ? {} : { maxHeldBytes }) });
      const opens = Array.from({ length: conns }, (_, i) => openEvent(i, endpoints(i).client, endpoints(i).server));
      const oldest: number[] = [];
      await writeBatch(sink, opens);
      chunks.length = 0;
      for (let b = 0; b < batches; b++) {
        const chunk = new ArrayBuffer(65536);
        chunks.push(chunk);
        const batch: StreamEvent[] = [];
        for (let i = b % 4; i < conns; i += 4) {
          const at = 100 * Math.floor(b / 4);
          const view = new Uint8Array(chunk, batch.length * 100, 100);
          view.set(pattern(i, 'c2s', at, 100));
          batch.push(dataEvent(i, 'c2s', at, view));
        }
        await writeBatch(sink, batch);
        oldest.push(sink.heldFrom(rank));
      }
      await writeBatch(sink, opens.map((o) => closeEvent(o, 100 * (batches / 4), 0)));
      await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
      return { sink, dir, oldest };
    };
    const check = (dir: string): void => {
      for (let i = 0; i < conns; i++) {
        const { client } = endpoints(i);
        const name = `${client.ip.split('.').map((p) => p.padStart(3, '0')).join('.')}.${String(client.port).padStart(5, '0')}-192.168.001.001.00080`;
        expect(new Uint8Array(fs.readFileSync(path.join(dir, name)))).toEqual(pattern(i, 'c2s', 0, 100 * (batches / 4)));
      }
    };
    // held: after the first 8 batches no view older than 9 batches is kept, and each file is
    // written once, at close
    const held = await run();
    check(held.dir);
    for (let b = 10; b < batches; b++) expect(held.oldest[b]!).toBeGreaterThanOrEqual(b + 1 - 9);
    expect(held.sink.stats.writes).toBe(conns);
    expect(held.sink.stats.heldCopied).toBeGreaterThanOrEqual(conns * 100 * (batches / 4 - 2));
    expect(held.sink.stats.heldSpills).toBe(0);
    // a cap of 64 KiB: the copies are written whenever they would pass it, never held beyond it
    const spilled = await run(64 * 1024);
    check(spilled.dir);
    expect(spilled.sink.stats.heldSpills).toBeGreaterThan(0);
    expect(spilled.sink.stats.peakHeld).toBeLessThanOrEqual(64 * 1024);
    expect(spilled.sink.stats.writes).toBeGreaterThan(conns);
    for (let b = 10; b < batches; b++) expect(spilled.oldest[b]!).toBeGreaterThanOrEqual(b + 1 - 9);
    // no copies: the views stay until their direction is written, 8 batches old
    const plain = await run(0);
    check(plain.dir);
    expect(plain.sink.stats.heldCopied).toBe(0);
    expect(plain.sink.stats.writes).toBeGreaterThan(3 * conns);
  });

  // 100 000 connections pass too (about a minute on tmpfs on a loaded 2-core machine); 20 000
  // keep the suite quick while still cycling every descriptor thousands of times.
  it('20 000 connections through 16 descriptors: every byte present, descriptors bounded, memory bounded', async () => {
    const dir = newDir();
    const maxOpenFiles = 16;
    const sink = new FilesSink({ dir, maxOpenFiles, coalesceBytes: 0, aheadBytes: 0 });
    const N = 20_000;
    const PER_BATCH = 250; // connections opened per batch; each stays open for 3 batches
    const chunk = (c: number, dir: Direction, part: number): Uint8Array => pattern(c, dir, part * 5, 5 + (c % 3));
    function* batches(): Generator<StreamEvent[]> {
      const opens = new Map<number, ReturnType<typeof openEvent>>();
      for (let b = 0; b * PER_BATCH < N + 3 * PER_BATCH; b++) {
        const batch: StreamEvent[] = [];
        for (let c = b * PER_BATCH; c < Math.min(N, (b + 1) * PER_BATCH); c++) {
          const { client, server } = endpoints(c);
          const o = openEvent(c, client, server);
          opens.set(c, o);
          batch.push(o);
        }
        // connections opened 0, 1 and 2 batches ago write now; those opened 2 batches ago close
        for (let age = 0; age < 3; age++) {
          const from = (b - age) * PER_BATCH;
          if (from < 0 || from >= N) continue;
          for (let c = from; c < Math.min(N, from + PER_BATCH); c++) {
            batch.push(dataEvent(c, 'c2s', age * 5, chunk(c, 'c2s', age)));
            if (c % 2 === 0 && age === 1) batch.push(dataEvent(c, 's2c', 0, chunk(c, 's2c', 0)));
            if (age === 2) {
              const c2sLen = 3 * (5 + (c % 3));
              batch.push(closeEvent(opens.get(c)!, c2sLen, c % 2 === 0 ? 5 + (c % 3) : 0));
              opens.delete(c);
            }
          }
        }
        yield batch;
      }
    }
    const { maxAhead } = await drive(sink, batches());
    const stats = sink.stats;
    expect(stats.connections).toBe(N);
    expect(stats.files).toBe(N + N / 2);
    expect(stats.peakOpen).toBeLessThanOrEqual(maxOpenFiles);
    expect(stats.reopened).toBeGreaterThan(N); // files were evicted and appended to again
    expect(maxAhead).toBeLessThanOrEqual(10);
    const names = fs.readdirSync(dir);
    expect(names).toHaveLength(N + N / 2 + 1);
    expect(names.some((n) => n.endsWith('.part'))).toBe(false);
    const recs = records(dir);
    expect(recs).toHaveLength(N);
    let checked = 0;
    for (const r of recs) {
      const c = r.conn;
      const want = Buffer.concat([chunk(c, 'c2s', 0), chunk(c, 'c2s', 1), chunk(c, 'c2s', 2)]);
      expect(fs.readFileSync(path.join(dir, r.c2s.file!)).equals(want)).toBe(true);
      if (c % 2 === 0) expect(fs.readFileSync(path.join(dir, r.s2c.file!)).equals(Buffer.from(chunk(c, 's2c', 0)))).toBe(true);
      else expect(r.s2c.file).toBeNull();
      checked++;
    }
    expect(checked).toBe(N);
  }, 180_000);

  it('connections.ndjson lines are exactly JSON.stringify of their records (RecordWriter writes them as bytes)', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir, maxListed: 2 });
    const v6 = { ip: '2001:db8::1', port: 443 };
    const odd = { ip: 'not"an\\address', port: 1 };
    const o0 = openEvent(0, A, B);
    const o1 = openEvent(1, v6, { ip: '::ffff:1.2.3.4', port: 8 }, [4093, 7]);
    const events: StreamEvent[] = [
      o0,
      dataEvent(0, 'c2s', 0, text('GET /')),
      gapEvent(0, 's2c', 0, 1_000_000_000_000),
      gapEvent(0, 's2c', 1_000_000_000_000, 5),
      gapEvent(0, 's2c', 1_000_000_000_005, 5),
      dataEvent(0, 's2c', 1_000_000_000_010, text('x')),
      closeEvent(o0, 5, 1, { s2c: [3, 1_000_000_000_010] }),
      o1,
      closeEvent(o1, 0, 0),
      // an address that needs escaping, still open at the end (no data: it would need a file name)
      openEvent(2, odd, B),
    ];
    await drive(sink, [events]);
    const lines = fs.readFileSync(path.join(dir, CONNECTIONS_FILE), 'utf8').split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toBe(JSON.stringify(JSON.parse(line)));
    const [r0, , r2] = records(dir);
    expect(r0!.s2c.unlisted).toBe(1);
    expect(r0!.s2c.gapList).toEqual([{ offset: 0, len: 1_000_000_000_000, reason: 'acked' }, { offset: 1_000_000_000_000, len: 5, reason: 'acked' }]);
    expect([r0!.c2s.bytes, r0!.s2c.gaps, r0!.s2c.missing, r0!.conn]).toEqual([5, 3, 1_000_000_000_010, 0]);
    expect(records(dir)[1]!.vlan).toEqual([4093, 7]);
    expect(r2!.reason).toBe('unclosed');
  });

  it('an unwritable directory fails with OUTPUT_FAILED', async () => {
    const file = path.join(root, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const sink = new FilesSink({ dir: path.join(file, 'out') });
    await expect(drive(sink, [[openEvent(0, A, B)]])).rejects.toMatchObject({ name: 'PcapflowError', code: 'OUTPUT_FAILED' });
  });

  it('a directory removed under it fails with OUTPUT_FAILED naming the file', async () => {
    const dir = newDir();
    const sink = new FilesSink({ dir, coalesceBytes: 0, aheadBytes: 0 });
    sink.on('error', () => undefined); // the write callback gets the error too
    const o = openEvent(0, A, B);
    await writeBatch(sink, [o]);
    await writeBatch(sink, []);
    fs.rmSync(dir, { recursive: true });
    // the failing write was already acknowledged: the error comes with the next write
    await writeBatch(sink, [dataEvent(0, 'c2s', 0, text('x'))]);
    const err = await writeBatch(sink, []).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'OUTPUT_FAILED', file: path.join(dir, '010.180.156.001.40008-010.180.156.002.00080.part') });
    expect((err as Error).cause).toMatchObject({ code: 'ENOENT' });
  });

  it('a full disk (ENOSPC) fails with OUTPUT_FAILED and leaves the .part file', async () => {
    if (!fs.existsSync('/dev/full')) return;
    const dir = newDir();
    fs.mkdirSync(dir);
    const part = path.join(dir, '010.180.156.001.40008-010.180.156.002.00080.part');
    fs.symlinkSync('/dev/full', part);
    const sink = new FilesSink({ dir });
    const err = await drive(sink, [[openEvent(0, A, B), dataEvent(0, 'c2s', 0, text('x'))]]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'OUTPUT_FAILED', file: part });
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC' });
    expect(fs.lstatSync(part).isSymbolicLink()).toBe(true);
  });

  it('an event for a connection that was never opened is OUTPUT_FAILED', async () => {
    const sink = new FilesSink({ dir: newDir() });
    await expect(drive(sink, [[dataEvent(5, 'c2s', 0, text('x'))]])).rejects.toMatchObject({ code: 'OUTPUT_FAILED', conn: 5 });
  });

  it('rejects a bad maxOpenFiles with INVALID_OPTION', () => {
    expect(() => new FilesSink({ dir: newDir(), maxOpenFiles: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

describe('FdPool', () => {
  it('keeps at most maxOpen descriptors, evicts the least recently used, appends after reopening', async () => {
    const dir = newDir();
    fs.mkdirSync(dir);
    const pool = new FdPool(2);
    const p = (n: string): string => path.join(dir, n);
    await pool.write(p('a'), [text('a1')]);
    await pool.write(p('b'), [text('b1')]);
    await pool.write(p('a'), [text('a2')]); // a is now the most recent
    await pool.write(p('c'), [text('c1')]); // evicts b
    expect(pool.openCount).toBe(2);
    expect(pool.stats).toMatchObject({ opened: 3, reopened: 0, evicted: 1 });
    await pool.write(p('b'), [text('b2'), text('b3')]); // reopened in append mode, evicts a
    expect(pool.stats).toMatchObject({ opened: 3, reopened: 1, evicted: 2, peakOpen: 2 });
    await Promise.all([pool.write(p('a'), [text('a3')]), pool.write(p('c'), [text('c2')])]);
    await pool.closeAll();
    expect(pool.openCount).toBe(0);
    expect(fs.readFileSync(p('a'), 'utf8')).toBe('a1a2a3');
    expect(fs.readFileSync(p('b'), 'utf8')).toBe('b1b2b3');
    expect(fs.readFileSync(p('c'), 'utf8')).toBe('c1c2');
  });

  it('the first open truncates a file left from before', async () => {
    const dir = newDir();
    fs.mkdirSync(dir);
    const f = path.join(dir, 'old');
    fs.writeFileSync(f, 'left over from an earlier run');
    const pool = new FdPool(4);
    await pool.write(f, [text('new')]);
    await pool.close(f);
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
  });

  it('many concurrent writers never hold more than maxOpen descriptors', async () => {
    const dir = newDir();
    fs.mkdirSync(dir);
    const pool = new FdPool(3);
    const names = Array.from({ length: 40 }, (_, i) => path.join(dir, `f${i}`));
    for (let round = 0; round < 5; round++) {
      // three at a time, as the files sink does (concurrency <= maxOpen)
      for (let i = 0; i < names.length; i += 3) {
        await Promise.all(names.slice(i, i + 3).map((n) => pool.write(n, [text(`${round}`)])));
        expect(pool.openCount).toBeLessThanOrEqual(3);
      }
    }
    await pool.closeAll();
    expect(pool.stats.peakOpen).toBe(3);
    for (const n of names) expect(fs.readFileSync(n, 'utf8')).toBe('01234');
  });
});

describe('the default descriptor pool', () => {
  it('is half the soft open-files limit, within 16..1024, or 64 when the limit is unknown', async () => {
    const { defaultMaxOpenFiles, openFilesLimit } = await import('../src/sinks/files-sink.js');
    const limits = 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n';
    expect(openFilesLimit(limits)).toBe(1024);
    expect(openFilesLimit('Max open files            unlimited            unlimited            files\n')).toBeNull();
    expect(defaultMaxOpenFiles(1024)).toBe(512);
    expect(defaultMaxOpenFiles(20000)).toBe(1024);
    expect(defaultMaxOpenFiles(20)).toBe(16);
    expect(defaultMaxOpenFiles(null)).toBe(64);
    expect(openFilesLimit()).toBeGreaterThan(0); // this machine's /proc/self/limits
  });
});

describe('FilesSink syncWrites (live capture)', () => {
  it('writes the same files and connections.ndjson as the thread pool, on every shared capture, with few descriptors', async () => {
    const { readCaptures } = await import('../src/read-pipeline.js');
    const { dirContents } = await import('./helpers/dir-contents.js');
    const { sharedCaptures } = await import('./helpers/env.js');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-sync-'));
    try {
      let n = 0;
      for (const file of sharedCaptures()) {
        const a = path.join(root, `a${n}`);
        const b = path.join(root, `b${n++}`);
        const ea = await readCaptures(file, { sink: { type: 'files', dir: a } }).then(() => null, (e: unknown) => String(e));
        // 2 descriptors: files are closed and reopened in append mode, synchronously too
        const eb = await readCaptures(file, { sink: { type: 'files', dir: b, syncWrites: true, maxOpenFiles: 2 } }).then(() => null, (e: unknown) => String(e));
        expect(eb, file).toBe(ea);
        expect([...dirContents(b)], file).toEqual([...dirContents(a)]);
      }
      expect(n).toBeGreaterThan(60);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
