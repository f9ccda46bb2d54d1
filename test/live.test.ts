/**
 * Live capture (`pcapflow live`, issue 4).
 *
 * Pure parts run everywhere: cap's link type names, the pcap writer read back by the capture
 * reader, the length of a cut packet, and the clock that closes idle connections (ClockTick
 * turned into tick packets, through the real TcpDemux and TcpReassembler cores).
 *
 * The end-to-end tests need root, `ip` and a built cap (see helpers/live-net.ts: skipped without
 * them, a failure under CI as root). They run in a private network namespace whose loopback is
 * the only interface: a Node server and client exchange known bytes, `pcapflow live lo --filter
 * 'tcp port N' --sink files` captures them, and after SIGINT (or SIGTERM) the files must equal
 * what the applications wrote; the `--write-pcap` file must give the same files with `read`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureReader } from '../src/core/capture-reader.js';
import { isPcapflowError } from '../src/core/errors.js';
import type { StreamEvent } from '../src/core/events.js';
import { TcpDemux } from '../src/core/flow-table.js';
import { flowBaseName } from '../src/core/format.js';
import { ClockTick } from '../src/core/live-idle.js';
import { Packet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/core/packet.js';
import { TcpReassembler } from '../src/core/reassembler.js';
import { capLinkType } from '../src/sources/live-binding.js';
import { wireLength } from '../src/sources/live-source.js';
import { TICK_LAG_MS } from '../src/sources/tcpdump-source.js';
import { PcapWriter } from '../src/sources/pcap-writer.js';
import { BIN, ensureBuilt, liveReady, Netns, runTraffic, sleep, startLive, statValue, type TrafficResult } from './helpers/live-net.js';
import { REPO_ROOT } from './helpers/env.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isPcapflowError(err) ? err.code : `not a PcapflowError: ${String(err)}`;
  }
  return 'no error';
}

describe('cap link types', () => {
  it('maps the names cap returns to LINKTYPE numbers', () => {
    expect(capLinkType('ETHERNET')).toBe(1);
    expect(capLinkType('NULL')).toBe(0);
    expect(capLinkType('RAW')).toBe(101);
    expect(capLinkType('IEEE802_11_RADIO')).toBe(127);
    expect(capLinkType('LINKTYPE_LINUX_SLL')).toBe(113); // what cap says on `any`
    expect(capLinkType('LINUX_SLL')).toBe(113);
    expect(capLinkType('Unknown linktype 276')).toBe(276); // LINUX_SLL2: DLT = LINKTYPE
    expect(capLinkType('Unknown linktype 229')).toBe(229);
  });

  it('rejects a link type the decoder does not handle, and DLT numbers that differ by OS', () => {
    expect(codeOf(() => capLinkType('Unknown linktype 147'))).toBe('LINK_UNSUPPORTED');
    expect(codeOf(() => capLinkType('Unknown linktype 12'))).toBe('LINK_UNSUPPORTED');
    expect(codeOf(() => capLinkType('TOKEN_RING'))).toBe('LINK_UNSUPPORTED');
  });
});

/** An Ethernet + IPv4 + TCP frame header (54 bytes) for `payload` bytes: enough for wireLength. */
function ethIpv4(payload: number, vlan = false): Uint8Array {
  const l2 = vlan ? 18 : 14;
  const f = new Uint8Array(l2 + 40);
  if (vlan) f.set([0x81, 0x00, 0x00, 0x05, 0x08, 0x00], 12);
  else f.set([0x08, 0x00], 12);
  f[l2] = 0x45;
  const total = 40 + payload;
  f[l2 + 2] = total >> 8;
  f[l2 + 3] = total & 0xff;
  return f;
}

describe('wireLength (the length of a packet cap cut)', () => {
  it('reads the IP length behind Ethernet, VLAN tags, SLL and raw IP', () => {
    expect(wireLength(1, ethIpv4(1000))).toBe(14 + 40 + 1000);
    expect(wireLength(1, ethIpv4(1000, true))).toBe(18 + 40 + 1000);
    const v6 = new Uint8Array(16 + 40);
    v6[16] = 0x60;
    v6[16 + 4] = 0x05;
    v6[16 + 5] = 0xdc; // payload length 1500
    expect(wireLength(113, v6)).toBe(16 + 40 + 1500);
    expect(wireLength(101, ethIpv4(100).subarray(14))).toBe(140);
  });

  it('falls back to the captured length when it cannot tell', () => {
    const arp = ethIpv4(0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(wireLength(1, arp)).toBe(arp.length);
    expect(wireLength(127, ethIpv4(500))).toBe(54);
    expect(wireLength(1, ethIpv4(10).subarray(0, 20))).toBe(20);
    expect(wireLength(1, ethIpv4(0))).toBe(54); // never below the captured length
  });
});

describe('PcapWriter', () => {
  it('writes a nanosecond pcap that the capture reader reads back packet for packet', () => {
    const packets: Packet[] = [];
    for (let i = 0; i < 50; i++) {
      const p = new Packet();
      const n = (i * 37) % 300;
      p.data = Uint8Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff);
      p.caplen = n;
      p.len = i % 5 === 0 ? n + 100 : n;
      p.tsSec = 1_700_000_000 + i;
      p.tsNsec = (i * 123_456_789) % 1_000_000_000;
      p.linkType = 1;
      packets.push(p);
    }
    const w = new PcapWriter({ linkType: 1, snaplen: 300 });
    const chunks: Uint8Array[] = [];
    w.write(packets.slice(0, 20), (c) => chunks.push(c));
    w.write([], (c) => chunks.push(c));
    w.write(packets.slice(20), (c) => chunks.push(c));
    w.end((c) => chunks.push(c));
    expect(chunks).toHaveLength(2);
    const file = Buffer.concat(chunks);
    expect(file.readUInt32LE(0)).toBe(0xa1b23c4d);
    expect(w.stats).toEqual({ packets: 50, bytes: file.length, otherLinkType: 0 });

    const reader = new CaptureReader({ file: 'written.pcap' });
    const back: Packet[] = [];
    reader.write(file, (b) => back.push(...b));
    reader.end((b) => back.push(...b));
    expect(reader.linkTypes).toEqual([1]);
    expect(back.map((p) => [p.tsSec, p.tsNsec, p.caplen, p.len, Buffer.from(p.data).toString('hex')])).toEqual(
      packets.map((p) => [p.tsSec, p.tsNsec, p.caplen, p.len, Buffer.from(p.data).toString('hex')]),
    );
  });

  it('writes a valid empty file when no packet came, and leaves out other link types', () => {
    const w = new PcapWriter({ linkType: 113 });
    const chunks: Uint8Array[] = [];
    const p = new Packet();
    p.linkType = 1;
    p.data = new Uint8Array(10);
    w.write([p], (c) => chunks.push(c));
    w.end((c) => chunks.push(c));
    const file = Buffer.concat(chunks);
    expect(file.length).toBe(24);
    expect(file.readUInt32LE(20)).toBe(113);
    expect(w.stats.otherLinkType).toBe(1);
    const reader = new CaptureReader({ file: 'empty.pcap' });
    const back: Packet[] = [];
    reader.write(file, (b) => back.push(...b));
    reader.end((b) => back.push(...b));
    expect(back).toHaveLength(0);
  });
});

/** A decoded TCP packet between 10.0.0.1:40000 (client) and 10.0.0.2:80, as the decoder leaves it. */
function seg(t: number, fromClient: boolean, flags: number, seq: number, ack: number, payload = ''): Packet {
  const p = new Packet();
  p.tsSec = Math.floor(t);
  p.tsNsec = Math.round((t - Math.floor(t)) * 1e9);
  p.index = 1;
  p.netVersion = 4;
  const a = Uint8Array.of(10, 0, 0, 1);
  const b = Uint8Array.of(10, 0, 0, 2);
  p.src = fromClient ? a : b;
  p.dst = fromClient ? b : a;
  p.sport = fromClient ? 40000 : 80;
  p.dport = fromClient ? 80 : 40000;
  p.proto = 6;
  p.seq = seq;
  p.ack = ack;
  p.flags = flags;
  p.win = 65535;
  p.tcpHeaderLen = 20;
  p.payload = Buffer.from(payload);
  p.payloadLen = p.payload.length;
  p.l4Len = 20 + p.payloadLen;
  return p;
}

/** runLivePipeline: demux → reassembler, the cores of the live pipeline after decoding; ticks go in as tick packets. */
function runLivePipeline(inputs: Array<Packet[] | ClockTick>, idleTimeout: number): { events: StreamEvent[]; demux: TcpDemux; reasm: TcpReassembler } {
  const demux = new TcpDemux({ idleTimeout });
  const reasm = new TcpReassembler({ waitPackets: 0 }); // as pcapflow live runs it
  const events: StreamEvent[] = [];
  const toReasm = (b: Packet[]): void => reasm.write(b, (e) => events.push(...e));
  for (const input of inputs) demux.write(input instanceof ClockTick ? [input.packet()] : input, toReasm);
  demux.end(toReasm);
  reasm.end((e) => events.push(...e));
  return { events, demux, reasm };
}

describe('ticks: idle connections close on a tick of the clock', () => {
  const handshake = [seg(100, true, TCP_SYN, 1000, 0), seg(100.001, false, TCP_SYN | TCP_ACK, 5000, 1001), seg(100.002, true, TCP_ACK, 1001, 5001)];
  const hello = [seg(100.01, true, TCP_ACK | TCP_PSH, 1001, 5001, 'hello'), seg(100.02, false, TCP_ACK | TCP_PSH, 5001, 1006, 'world')];

  it('closes a quiet connection (reason idle) on the first tick past the timeout, never showing the tick', () => {
    const { events, demux, reasm } = runLivePipeline([handshake, hello, new ClockTick(101, 0), new ClockTick(102, 500_000_000), new ClockTick(103, 0)], 2);
    const summary = events.map((e) => `${e.type}:${e.conn}${e.type === 'close' ? `:${e.reason}:${e.ts}` : ''}`);
    expect(summary).toEqual(['open:0', 'data:0', 'data:0', 'close:0:idle:102.500000000']);
    // ticks are counted as ticks, and nowhere else
    expect(demux.stats).toMatchObject({ ticks: 3, packets: 5, passed: 0, connections: 1, idleExpired: 1, peakLive: 1 });
    expect(reasm.stats).toMatchObject({ connections: 1, packets: 5, ignored: 0, idleClosed: 1 });
  });

  it('numbers connections from 0 when the first tick comes before any packet, as read numbers the saved capture', () => {
    const { events } = runLivePipeline([new ClockTick(99, 0), handshake, hello, new ClockTick(100, 500_000_000)], 2);
    expect(new Set(events.map((e) => e.conn))).toEqual(new Set([0]));
    expect(events.at(-1)).toMatchObject({ type: 'close', conn: 0, reason: 'eof' });
  });

  it('starts a new connection when a closed one speaks again, and loses none of its bytes', () => {
    const later = [seg(110, true, TCP_ACK | TCP_PSH, 1006, 5006, 'again'), seg(110.01, false, TCP_ACK | TCP_FIN, 5006, 1011), seg(110.02, true, TCP_ACK | TCP_FIN, 1011, 5007)];
    const { events } = runLivePipeline([new ClockTick(99, 0), handshake, hello, new ClockTick(105, 0), later], 2);
    const data = events.filter((e) => e.type === 'data').map((e) => `${e.conn}:${Buffer.from(e.type === 'data' ? e.data : []).toString()}`);
    expect(data).toEqual(['0:hello', '0:world', '1:again']);
    const closes = events.filter((e) => e.type === 'close').map((e) => `${e.conn}:${e.type === 'close' ? e.reason : ''}`);
    expect(closes).toEqual(['0:idle', '1:fin']);
  });

  it('keeps a connection that is active, and ends nothing with the timeout disabled', () => {
    const busy = [new ClockTick(99, 0), handshake, hello, new ClockTick(101, 0), [seg(101.5, true, TCP_ACK | TCP_PSH, 1006, 5006, 'x')], new ClockTick(103, 0)];
    expect(runLivePipeline(busy, 2).events.filter((e) => e.type === 'close').map((e) => (e.type === 'close' ? e.reason : ''))).toEqual(['eof']);
    const off = runLivePipeline([new ClockTick(99, 0), handshake, hello, new ClockTick(10_000, 0)], 0);
    expect(off.events.filter((e) => e.type === 'close').map((e) => (e.type === 'close' ? e.reason : ''))).toEqual(['eof']);
  });

  it('treats a crafted packet from 0.0.0.0 port 0 as the ordinary connection it is', () => {
    const fake = seg(100, true, TCP_ACK | TCP_PSH, 1, 1, 'junk');
    fake.src = new Uint8Array(4);
    fake.dst = new Uint8Array(4);
    fake.sport = 0;
    fake.dport = 0;
    const { events } = runLivePipeline([new ClockTick(99, 0), [fake], handshake], 2);
    expect(events.filter((e) => e.type === 'open').map((e) => (e.type === 'open' ? `${e.conn}:${e.client.ip}:${e.client.port}` : ''))).toEqual([
      '0:0.0.0.0:0',
      '1:10.0.0.1:40000',
    ]);
  });

  it('TcpDemux.expire ends the idle connections at a time without a packet and returns them', () => {
    const demux = new TcpDemux({ idleTimeout: 2 });
    demux.write(handshake, () => undefined);
    expect(demux.expire(101, 0)).toBeNull();
    const ended = demux.expire(103, 0);
    expect(ended?.map((f) => [f.id, f.endedBy])).toEqual([[0, 'idle']]);
    expect(demux.expire(90, 0)).toBeNull(); // time never runs backwards
    expect(demux.stats).toMatchObject({ ticks: 3, idleExpired: 1, live: 0 });
  });
});

const ready = liveReady();

describe.skipIf(!ready).each(['cap', 'tcpdump'] as const)('pcapflow live --backend %s on a private loopback (root)', (backend) => {
  let tmp = '';
  let ns: Netns;
  /** tcpdump's packets may come up to TICK_LAG_MS late, and the ticks are stamped that far back. */
  const lag = backend === 'tcpdump' ? TICK_LAG_MS : 0;
  const start = (args: string[]) => startLive(ns, [...args, '--backend', backend]);

  beforeAll(() => {
    ensureBuilt();
    tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-live-'));
    ns = new Netns();
  });
  afterAll(() => {
    ns?.remove();
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  const lo = (port: number) => ({ ip: '127.0.0.1', port });

  /** expectFlowFiles: every connection's two files in `dir` equal what its two sides wrote. */
  function expectFlowFiles(dir: string, expected: string, results: TrafficResult[], port: number): void {
    for (const r of results) {
      const c2s = readFileSync(path.join(dir, flowBaseName(lo(r.cport), lo(port), [])));
      const s2c = readFileSync(path.join(dir, flowBaseName(lo(port), lo(r.cport), [])));
      expect(c2s.equals(readFileSync(path.join(expected, `${r.n}.c2s`))), `conn ${r.n} c2s`).toBe(true);
      expect(s2c.equals(readFileSync(path.join(expected, `${r.n}.s2c`))), `conn ${r.n} s2c`).toBe(true);
    }
  }

  function flowFiles(dir: string): string[] {
    return readdirSync(dir)
      .filter((f) => f !== 'connections.ndjson')
      .sort();
  }

  function records(dir: string): Array<{ conn: number; reason: string; client: { port: number } }> {
    return readFileSync(path.join(dir, 'connections.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { conn: number; reason: string; client: { port: number } });
  }

  it('captures what the applications wrote, stops on SIGINT with exit 0, and --write-pcap replays to the same files', async () => {
    const out = path.join(tmp, 'out1');
    const expected = path.join(tmp, 'exp1');
    const noise = path.join(tmp, 'noise1');
    mkdirSync(expected);
    mkdirSync(noise);
    const pcap = path.join(tmp, 'session.pcap');
    const live = await start(['lo', '--filter', 'tcp port 7100', '--sink', 'files', '-o', out, '--write-pcap', pcap, '--stats']);
    const [results] = await Promise.all([
      runTraffic(ns, tmp, {
        port: 7100,
        outDir: expected,
        conns: [
          { c2s: 200_000, s2c: 3_000_000, chunk: 65_536 },
          { c2s: 1_500_000, s2c: 10, chunk: 1000 },
          { c2s: 5, s2c: 5, chunk: 1 },
          { c2s: 0, s2c: 100_000, chunk: 7 },
        ],
      }),
      // traffic the filter leaves out
      runTraffic(ns, tmp, { port: 7101, outDir: noise, conns: [{ c2s: 10_000, s2c: 10_000, chunk: 1000 }] }),
    ]);
    expect(results).toHaveLength(4);
    // SIGINT drops what libpcap still holds (as tcpdump does): wait until the four connections closed
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
      try {
        if (records(out).length >= 4) break;
      } catch {
        // not written yet
      }
    }
    live.child.kill('SIGINT');
    expect(await live.exited).toBe(0);
    const stderr = live.stderr();
    expect(statValue(stderr, 'capture.dropped')).toBe(0);
    expect(statValue(stderr, 'reassembler.gaps')).toBe(0);
    expect(stderr).toMatch(new RegExp(`^capture\\.backend\\s+${backend}$`, 'm'));
    expect(stderr).toMatch(new RegExp(`^pcapflow: captured \\d+ packets \\(\\d+ bytes\\) with ${backend};`, 'm'));
    if (backend === 'tcpdump') expect(statValue(stderr, 'capture.kernelDropped')).toBe(0);

    expect(flowFiles(out)).toHaveLength(8);
    expect(flowFiles(out).some((f) => f.includes('07101'))).toBe(false);
    expectFlowFiles(out, expected, results, 7100);
    const recs = records(out);
    expect(recs.map((r) => r.reason)).toEqual(['fin', 'fin', 'fin', 'fin']);
    expect(recs.map((r) => r.client.port).sort()).toEqual(results.map((r) => r.cport).sort());
    expect(recs.map((r) => r.conn).sort()).toEqual([0, 1, 2, 3]); // numbered from 0, no clock connection

    // The saved session gives the same streams with `read`.
    const replay = path.join(tmp, 'replay1');
    execFileSync(process.execPath, [BIN, 'read', pcap, '--sink', 'files', '-o', replay], { cwd: REPO_ROOT });
    expect(flowFiles(replay)).toEqual(flowFiles(out));
    expectFlowFiles(replay, expected, results, 7100);
    expect(records(replay).map((r) => r.reason)).toEqual(['fin', 'fin', 'fin', 'fin']);
  });

  it('interfaces lists the loopback of the namespace; a bad device or filter is a clear error', () => {
    // the tcpdump backend's list is what interfaces shows without cap
    const env = backend === 'tcpdump' ? ['env', 'PCAPFLOW_CAP_MODULE=/nonexistent'] : [];
    const list = execFileSync('ip', ['netns', 'exec', ns.name, ...env, process.execPath, BIN, 'interfaces', '--format', 'ndjson'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; loopback: boolean; addresses: Array<{ addr?: string }> });
    const lo = list.find((d) => d.name === 'lo');
    expect(lo?.loopback).toBe(true);
    expect(lo?.addresses.map((a) => a.addr)).toContain('127.0.0.1');
    expect(list.some((d) => d.name === 'eth0')).toBe(false); // only what the namespace has
    const text = execFileSync('ip', ['netns', 'exec', ns.name, ...env, process.execPath, BIN, 'interfaces'], { encoding: 'utf8' });
    expect(text).toMatch(/^lo\s+loopback\s+127\.0\.0\.1\/8 ::1\/128$/m);

    const run = (args: string[]) =>
      spawnSync('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'live', ...args, '--backend', backend], { encoding: 'utf8', timeout: 20_000 });
    const noDev = run(['pfl-no-such-dev', '--sink', 'ndjson']);
    expect(noDev.status).toBe(1);
    expect(noDev.stderr).toContain('INPUT_NOT_FOUND');
    const badFilter = run(['lo', '--filter', 'tcp prot 80', '--sink', 'ndjson']);
    expect(badFilter.status).toBe(2);
    expect(badFilter.stderr).toContain('INVALID_OPTION');
  });

  it('closes an idle connection on the wall clock while the capture runs', async () => {
    const out = path.join(tmp, 'out2');
    const expected = path.join(tmp, 'exp2');
    mkdirSync(expected);
    const live = await start(['lo', '--filter', 'tcp port 7200', '--sink', 'files', '-o', out, '--idle-timeout', '1']);
    // the client goes quiet for 4 s after its data before it ends: no packet at all in between
    const quiet = runTraffic(ns, tmp, { port: 7200, outDir: expected, conns: [{ c2s: 20_000, s2c: 30_000, chunk: 500, holdMs: 4000 + lag }] });
    let recs: ReturnType<typeof records> = [];
    const deadline = Date.now() + 3500 + lag;
    while (Date.now() < deadline && recs.length === 0) {
      await sleep(200);
      try {
        recs = records(out);
      } catch {
        recs = []; // not written yet
      }
    }
    expect(recs.map((r) => r.reason)).toEqual(['idle']); // closed before its client ended
    expect(readdirSync(out).some((f) => f.endsWith('.part'))).toBe(false);
    const [q] = await quiet;
    expectFlowFiles(out, expected, [q!], 7200);
    live.child.kill('SIGINT');
    expect(await live.exited).toBe(0);
  });

  it('flushes the open connections on SIGTERM (reason eof): files complete and renamed, exit 0', async () => {
    const out = path.join(tmp, 'out3');
    const expected = path.join(tmp, 'exp3');
    mkdirSync(expected);
    const live = await start(['lo', '--filter', 'tcp port 7300', '--sink', 'files', '-o', out]);
    // the client holds its connection open after the data; the traffic program is killed with the namespace
    void runTraffic(ns, tmp, { port: 7300, outDir: expected, conns: [{ c2s: 50_000, s2c: 70_000, chunk: 1000, holdMs: 60_000 }] }).catch(() => []);
    const deadline = Date.now() + 10_000;
    const have = (): boolean => {
      try {
        return readdirSync(expected).length === 2 && readdirSync(out).filter((f) => f.endsWith('.part')).length === 2;
      } catch {
        return false;
      }
    };
    while (Date.now() < deadline && !have()) await sleep(100);
    await sleep(500); // the last bytes through the pipeline
    live.child.kill('SIGTERM');
    expect(await live.exited).toBe(0);
    const recs = records(out);
    expect(recs.map((r) => r.reason)).toEqual(['eof']);
    expect(readdirSync(out).some((f) => f.endsWith('.part'))).toBe(false);
    expectFlowFiles(out, expected, [{ n: 0, cport: recs[0]!.client.port, c2s: 0, s2c: 0 }], 7300);
  });
});
