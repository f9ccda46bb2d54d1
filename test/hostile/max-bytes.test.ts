/**
 * --max-bytes / TcpReassembler `maxBytes` (issue 5): at most N bytes per stream direction are
 * delivered, like tcpflow's -b; the bytes past the cap are counted in the close event's `capped`
 * (and so in connections.ndjson and NDJSON close lines), gaps past the cap are not reported, and
 * nothing past the cap is held in memory even when it comes out of order.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloseEvent, DataEvent, StreamEvent } from '../../src/core/events.js';
import { TcpDemux } from '../../src/core/flow-table.js';
import type { Packet } from '../../src/core/packet.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../../src/core/reassembler.js';
import { REPO_ROOT } from '../helpers/env.js';
import { Conv } from '../helpers/segments.js';

const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');

function runCores(packets: Packet[], options: TcpReassemblerOptions): { events: StreamEvent[]; reasm: TcpReassembler } {
  const demux = new TcpDemux();
  const reasm = new TcpReassembler(options);
  const events: StreamEvent[] = [];
  demux.write(packets, (b) => reasm.write(b, (e) => events.push(...e)));
  reasm.end((e) => events.push(...e));
  return { events, reasm };
}

function text(events: StreamEvent[], dir: 'c2s' | 's2c'): string {
  return events
    .filter((e): e is DataEvent => e.type === 'data' && e.dir === dir)
    .map((e) => Buffer.from(e.data).toString('latin1'))
    .join('');
}

const closeOf = (events: StreamEvent[]): CloseEvent => events.find((e): e is CloseEvent => e.type === 'close')!;

function handshake(c: Conv): Packet[] {
  return [c.c('S', 100), c.s('SA', 500, 101), c.c('A', 101, 501)];
}

describe('TcpReassembler maxBytes', () => {
  it('delivers the first N bytes of each direction and counts the rest as capped', () => {
    const c = new Conv();
    const pk = [...handshake(c), c.c('PA', 101, 501, 'hello '), c.c('PA', 107, 501, 'world'), c.s('PA', 501, 112, 'abc'), c.c('FA', 112, 504), c.s('FA', 504, 113)];
    const { events, reasm } = runCores(pk, { maxBytes: 8 });
    expect(text(events, 'c2s')).toBe('hello wo');
    expect(text(events, 's2c')).toBe('abc');
    const close = closeOf(events);
    expect(close.reason).toBe('fin');
    expect(close.c2s).toMatchObject({ bytes: 8, capped: 3, gaps: 0 });
    expect(close.s2c).toMatchObject({ bytes: 3, capped: 0 });
    expect(reasm.stats.cappedBytes).toBe(3);
  });

  it('holds nothing past the cap out of order, reports no gap past it, and counts what came', () => {
    const c = new Conv();
    // 'ABCD' at 0 is late; bytes 4..9 and 14..19 come first (10..13 never come)
    const pk = [...handshake(c), c.c('PA', 105, 501, 'EFGHIJ'), c.c('PA', 115, 501, 'OPQRST'), c.c('PA', 101, 501, 'ABCD')];
    const { events, reasm } = runCores(pk, { maxBytes: 6 });
    expect(text(events, 'c2s')).toBe('ABCDEF');
    expect(reasm.stats.peakBufferedBytes).toBeLessThan(6 * 2 + 3 * 1024); // two bytes of data held, the rest as capped pieces
    const close = closeOf(events);
    expect(close.c2s).toMatchObject({ bytes: 6, capped: 4 + 6, gaps: 0, missing: 0 });
    expect(events.some((e) => e.type === 'gap')).toBe(false);
  });

  it('cuts a gap that crosses the cap at the cap', () => {
    const c = new Conv();
    const pk = [...handshake(c), c.c('PA', 101, 501, 'AB'), c.c('PA', 111, 501, 'KLMN'), c.c('FA', 115, 501)];
    const { events } = runCores(pk, { maxBytes: 5 });
    const gaps = events.filter((e) => e.type === 'gap');
    expect(gaps).toMatchObject([{ offset: 2, len: 3 }]);
    expect(closeOf(events).c2s).toMatchObject({ bytes: 2, missing: 3, capped: 4 });
  });

  it('rejects a bad maxBytes with INVALID_OPTION', () => {
    expect(() => new TcpReassembler({ maxBytes: -1 })).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new TcpReassembler({ maxBytes: 1.5 })).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

describe('pcapflow read --max-bytes', () => {
  let tmp = '';
  let pcap = '';
  beforeAll(() => {
    if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
    tmp = mkdtempSync(path.join(tmpdir(), 'pf-maxbytes-'));
    pcap = path.join(tmp, 'two.pcap');
    writeFileSync(pcap, twoConnections());
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('caps each file at N bytes and records the rest as capped in connections.ndjson', () => {
    const out = path.join(tmp, 'files');
    execFileSync(process.execPath, [BIN, 'read', pcap, '--sink', 'files', '-o', out, '--max-bytes', '1k'], { cwd: REPO_ROOT });
    const recs = readFileSync(path.join(out, 'connections.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { conn: number; s2c: { file: string; bytes: number; capped: number } });
    expect(recs).toHaveLength(2);
    for (const r of recs) {
      expect(r.s2c.bytes).toBe(1024);
      expect(r.s2c.capped).toBe(3000 - 1024);
      expect(statSync(path.join(out, r.s2c.file)).size).toBe(1024);
    }
  });

  it('shows capped in the NDJSON close line, and rejects a bad value (exit 2)', () => {
    const lines = execFileSync(process.execPath, [BIN, 'read', pcap, '--sink', 'ndjson', '--max-bytes', '100'], { cwd: REPO_ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; s2c?: { capped: number } });
    expect(lines.filter((l) => l.type === 'close').map((l) => l.s2c?.capped)).toEqual([2900, 2900]);
    let status = 0;
    try {
      execFileSync(process.execPath, [BIN, 'read', pcap, '--max-bytes', 'lots'], { cwd: REPO_ROOT, stdio: 'pipe' });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).toBe(2);
  });
});

/** twoConnections: a pcap of two connections, each sending 3000 server bytes in 1000-byte segments. */
function twoConnections(): Buffer {
  const recs: Buffer[] = [];
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(65535, 16);
  hdr.writeUInt32LE(101, 20); // raw IP
  recs.push(hdr);
  let t = 0;
  const seg = (src: number, dst: number, sport: number, dport: number, seq: number, ack: number, flags: number, payload: Buffer): void => {
    const ip = Buffer.alloc(40 + payload.length);
    ip[0] = 0x45;
    ip.writeUInt16BE(ip.length, 2);
    ip[8] = 64;
    ip[9] = 6;
    ip.writeUInt32BE(src >>> 0, 12);
    ip.writeUInt32BE(dst >>> 0, 16);
    ip.writeUInt16BE(sport, 20);
    ip.writeUInt16BE(dport, 22);
    ip.writeUInt32BE(seq >>> 0, 24);
    ip.writeUInt32BE(ack >>> 0, 28);
    ip[32] = 5 << 4;
    ip[33] = flags;
    ip.writeUInt16BE(65535, 34);
    payload.copy(ip, 40);
    const rh = Buffer.alloc(16);
    t++;
    rh.writeUInt32LE(1_700_000_000, 0);
    rh.writeUInt32LE(t, 4);
    rh.writeUInt32LE(ip.length, 8);
    rh.writeUInt32LE(ip.length, 12);
    recs.push(rh, ip);
  };
  for (let k = 0; k < 2; k++) {
    const cli = 0x0a000001 + k;
    const srv = 0x0a0000fe;
    const cp = 40000 + k;
    seg(cli, srv, cp, 80, 100, 0, 0x02, Buffer.alloc(0));
    seg(srv, cli, 80, cp, 500, 101, 0x12, Buffer.alloc(0));
    seg(cli, srv, cp, 80, 101, 501, 0x10, Buffer.alloc(0));
    for (let i = 0; i < 3; i++) seg(srv, cli, 80, cp, 501 + i * 1000, 101, 0x18, Buffer.alloc(1000, 0x41 + i));
    seg(srv, cli, 80, cp, 3501, 101, 0x11, Buffer.alloc(0));
    seg(cli, srv, cp, 80, 101, 3502, 0x11, Buffer.alloc(0));
  }
  return Buffer.concat(recs);
}
