/**
 * Frames shorter than their IP length, end to end (issue 13, item 4): a frame the snaplen did
 * not cut (caplen == len) whose IPv4 total length or IPv6 payload length runs past its end. The
 * decoders keep the bytes present and count the frame in `shortFrames`; the reassembler reports
 * the missing bytes as a `truncated` gap; `pcapflow packets` gives the payload length the IP
 * header gives. The capture is built here (IPv4 and IPv6 connections, a short frame inside a
 * stream and one at its end) and checked against the CLI's output, tshark and tcpflow.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/core/packet.js';
import type { ConnectionRecord } from '../src/sinks/connection-records.js';
import { buildPcap, bytesOf, type PcapPacketSpec } from './helpers/capture-builder.js';
import { runCli } from './helpers/cli-run.js';
import { needTool } from './helpers/env.js';
import { ethIpv4Tcp, ethIpv6Tcp, type EthIpTcpSpec } from './helpers/packet-builder.js';
import { gapText, tsharkFollow } from './helpers/tshark-follow.js';

interface Seg {
  v6: boolean;
  spec: EthIpTcpSpec;
  /** Bytes missing at the end of the frame (0: a whole frame). */
  cut?: number;
}

/**
 * Two connections: IPv4 with a short frame inside the client's stream and one at the end of the
 * server's (before its FIN), IPv6 with one at the end of the client's data.
 */
function segments(): { segs: Seg[]; c2s4: Uint8Array[]; s2c4: Uint8Array[]; c2s6: Uint8Array[] } {
  const c2s4 = [bytesOf(300, 1), bytesOf(400, 2), bytesOf(200, 3)];
  const s2c4 = [bytesOf(500, 4), bytesOf(600, 5)];
  const c2s6 = [bytesOf(250, 6), bytesOf(350, 7)];
  const v4c = { src: '10.1.0.1', dst: '10.1.0.2', sport: 40000, dport: 80 };
  const v4s = { src: '10.1.0.2', dst: '10.1.0.1', sport: 80, dport: 40000 };
  const v6c = { src: '2001:db8::10', dst: '2001:db8::20', sport: 40001, dport: 443 };
  const v6s = { src: '2001:db8::20', dst: '2001:db8::10', sport: 443, dport: 40001 };
  const segs: Seg[] = [
    { v6: false, spec: { ...v4c, seq: 1000, flags: TCP_SYN } },
    { v6: false, spec: { ...v4s, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK } },
    { v6: false, spec: { ...v4c, seq: 1001, ack: 5001, flags: TCP_ACK } },
    { v6: false, spec: { ...v4c, seq: 1001, ack: 5001, flags: TCP_ACK | TCP_PSH, payload: c2s4[0] } },
    { v6: false, spec: { ...v4c, seq: 1301, ack: 5001, flags: TCP_ACK | TCP_PSH, payload: c2s4[1] }, cut: 120 },
    { v6: false, spec: { ...v4c, seq: 1701, ack: 5001, flags: TCP_ACK | TCP_PSH, payload: c2s4[2] } },
    { v6: true, spec: { ...v6c, seq: 7000, flags: TCP_SYN } },
    { v6: true, spec: { ...v6s, seq: 9000, ack: 7001, flags: TCP_SYN | TCP_ACK } },
    { v6: false, spec: { ...v4s, seq: 5001, ack: 1901, flags: TCP_ACK | TCP_PSH, payload: s2c4[0] } },
    { v6: false, spec: { ...v4s, seq: 5501, ack: 1901, flags: TCP_ACK | TCP_PSH, payload: s2c4[1] }, cut: 50 },
    { v6: true, spec: { ...v6c, seq: 7001, ack: 9001, flags: TCP_ACK } },
    { v6: true, spec: { ...v6c, seq: 7001, ack: 9001, flags: TCP_ACK | TCP_PSH, payload: c2s6[0] } },
    { v6: true, spec: { ...v6c, seq: 7251, ack: 9001, flags: TCP_ACK | TCP_PSH, payload: c2s6[1] }, cut: 100 },
    { v6: false, spec: { ...v4c, seq: 1901, ack: 6101, flags: TCP_ACK | TCP_FIN } },
    { v6: false, spec: { ...v4s, seq: 6101, ack: 1902, flags: TCP_ACK | TCP_FIN } },
    { v6: false, spec: { ...v4c, seq: 1902, ack: 6102, flags: TCP_ACK } },
    { v6: true, spec: { ...v6s, seq: 9001, ack: 7601, flags: TCP_ACK | TCP_FIN } },
    { v6: true, spec: { ...v6c, seq: 7601, ack: 9002, flags: TCP_ACK | TCP_FIN } },
    { v6: true, spec: { ...v6s, seq: 9002, ack: 7602, flags: TCP_ACK } },
  ];
  return { segs, c2s4, s2c4, c2s6 };
}

/** The frames of the short segments (1-based) and the payload length each one's IP header gives. */
const SHORT = new Map([
  [5, { len: 400, present: 280 }],
  [10, { len: 600, present: 550 }],
  [13, { len: 350, present: 250 }],
]);

function capture(): Uint8Array {
  const packets: PcapPacketSpec[] = segments().segs.map((s, i) => {
    const f = s.v6 ? ethIpv6Tcp(s.spec) : ethIpv4Tcp(s.spec);
    // a short frame: the last `cut` bytes are not there, and the record says so (caplen == len)
    const data = s.cut ? f.slice(0, f.length - s.cut) : f;
    return { data, tsSec: 1_700_000_000 + i, tsNsec: i * 1000 };
  });
  return buildPcap(packets, { linkType: 1 });
}

const join = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p)));

/** What each direction keeps: the bytes present, in order, and where bytes are missing (stream offset, length). */
function expected(): Array<{ conn: number; dir: 'c2s' | 's2c'; bytes: Buffer; gaps: Array<[number, number]> }> {
  const { c2s4, s2c4, c2s6 } = segments();
  return [
    { conn: 0, dir: 'c2s', bytes: join(c2s4[0]!, c2s4[1]!.subarray(0, 280), c2s4[2]!), gaps: [[580, 120]] },
    { conn: 0, dir: 's2c', bytes: join(s2c4[0]!, s2c4[1]!.subarray(0, 550)), gaps: [[1050, 50]] },
    { conn: 1, dir: 'c2s', bytes: join(c2s6[0]!, c2s6[1]!.subarray(0, 250)), gaps: [[500, 100]] },
    { conn: 1, dir: 's2c', bytes: Buffer.alloc(0), gaps: [] },
  ];
}

/**
 * fill puts `filler(len)` into the bytes kept at each gap that more data follows (a gap at the
 * end gets nothing): what a tool that writes at sequence offsets (tcpflow: NULs) or marks holes
 * (tshark's follow: "[N bytes missing in capture file]") shows.
 */
function fill(bytes: Buffer, gaps: Array<[number, number]>, filler: (len: number) => Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0; // position in `bytes`
  let missing = 0; // gap bytes before it
  for (const [o, l] of gaps) {
    const at = o - missing;
    if (at >= bytes.length) break;
    parts.push(bytes.subarray(pos, at), filler(l));
    pos = at;
    missing += l;
  }
  parts.push(bytes.subarray(pos));
  return Buffer.concat(parts);
}

let tmp = '';
let file = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-short-'));
  file = path.join(tmp, 'short-frames.pcap');
  writeFileSync(file, capture());
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('frames shorter than their IP length', () => {
  it('read: the bytes present as data, the rest a truncated gap; --stats counts shortFrames', async () => {
    const r = await runCli(['read', file, '--sink', 'ndjson', '--stats']);
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; conn: number; dir: string; offset: number; len: number; data: string; reason: string });
    for (const want of expected()) {
      const data = events.filter((e) => e.type === 'data' && e.conn === want.conn && e.dir === want.dir);
      expect(Buffer.concat(data.map((e) => Buffer.from(e.data, 'base64')))).toEqual(want.bytes);
      const gaps = events.filter((e) => e.type === 'gap' && e.conn === want.conn && e.dir === want.dir);
      expect(gaps.map((g) => [g.offset, g.len, g.reason])).toEqual(want.gaps.map(([o, l]) => [o, l, 'truncated']));
    }
    expect(events.filter((e) => e.type === 'close').map((e) => e.reason)).toEqual(['fin', 'fin']);
    expect(r.stderr).toMatch(/^decoder\.shortFrames\s+3$/m);
    expect(r.stderr).toMatch(/^decoder\.truncated\s+3$/m);
    expect(r.stderr).toMatch(/^decoder\.skipped\s+0$/m);
  });

  it('packets: payload is the IP header\'s length, caplen == len; the text line shows what was captured', async () => {
    const r = await runCli(['packets', file, '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number; caplen: number; len: number; payload?: number; skip?: string });
    expect(lines).toHaveLength(segments().segs.length);
    for (const l of lines) {
      expect(l.skip).toBeUndefined();
      expect(l.caplen).toBe(l.len);
      const s = SHORT.get(l.index);
      if (s !== undefined) expect(l.payload).toBe(s.len);
    }
    const text = (await runCli(['packets', file])).stdout.split('\n');
    expect(text[4]).toMatch(/length 400 \(captured 280\)$/);
    expect(text[12]).toMatch(/^13 .* 2001:db8::10\.40001 > 2001:db8::20\.443: .*length 350 \(captured 250\)$/);
  });

  it.skipIf(!needTool('tshark'))('tshark decodes the same frames; its tcp.len and its follow are the bytes present', async () => {
    const out = execFileSync('tshark', ['-r', file, '-o', 'tcp.relative_sequence_numbers:FALSE', '-T', 'fields', '-e', 'frame.number', '-e', 'tcp.seq', '-e', 'tcp.len', '-e', '_ws.expert.message'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const rows = out.trim().split('\n').map((l) => l.split('\t'));
    const { segs } = segments();
    expect(rows).toHaveLength(segs.length);
    for (const [num, seq, len, expert] of rows) {
      const i = Number(num);
      const seg = segs[i - 1]!.spec;
      expect(Number(seq)).toBe(seg.seq);
      const s = SHORT.get(i);
      // tshark shortens the packet to the frame: tcp.len counts the bytes present
      expect(Number(len)).toBe(s !== undefined ? s.present : typeof seg.payload === 'object' ? seg.payload.length : 0);
      if (s !== undefined) expect(expert).toMatch(/length exceeds packet length|payload length exceeds/i);
    }
    // tshark's follow: the bytes present, and its note where a later segment shows the hole
    const ts = await tsharkFollow(file, 2);
    for (const want of expected()) {
      const fs = ts.follows.get(want.conn)!;
      // node 0 sent the stream's first packet: the client
      expect(fs.data[want.dir === 'c2s' ? 0 : 1]).toEqual(fill(want.bytes, want.gaps, gapText));
    }
  });

  it.skipIf(!needTool('tcpflow'))('tcpflow keeps the same bytes: its files are pcapflow\'s with NULs in the inner gaps', async () => {
    const ours = path.join(tmp, 'ours');
    const theirs = path.join(tmp, 'tcpflow');
    expect((await runCli(['read', file, '--sink', 'files', '-o', ours])).code).toBe(0);
    execFileSync('tcpflow', ['-r', file, '-o', theirs], { stdio: 'ignore' });
    const records = readFileSync(path.join(ours, 'connections.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ConnectionRecord);
    const names: string[] = [];
    for (const want of expected()) {
      const rec = records.find((c) => c.conn === want.conn)!;
      const d = rec[want.dir];
      if (want.bytes.length === 0) {
        expect(d.file).toBeNull();
        continue;
      }
      const mine = readFileSync(path.join(ours, d.file!));
      expect(mine).toEqual(want.bytes);
      expect(d.gapList.map((g) => [g.offset, g.len, g.reason])).toEqual(want.gaps.map(([o, l]) => [o, l, 'truncated']));
      // tcpflow writes at sequence offsets: an inner gap is NULs, a gap at the end nothing
      const filled = fill(mine, want.gaps, (l) => Buffer.alloc(l));
      const got = readFileSync(path.join(theirs, d.file!));
      if (want.conn === 0) {
        expect(got).toEqual(filled);
      } else {
        // IPv6: tcpflow 1.6.1 trusts the payload length and copies the 100 bytes past the short
        // frame's end out of its read buffer (stale bytes: here frame 4's payload, of the IPv4
        // connection): the bytes present agree, what follows was never on this connection
        expect(got.subarray(0, filled.length)).toEqual(filled);
        expect(got.length).toBeLessThanOrEqual(filled.length + 100);
      }
      names.push(d.file!);
    }
    expect(readdirSync(theirs).filter((n) => n !== 'report.xml').sort()).toEqual(names.sort());
  });
});
