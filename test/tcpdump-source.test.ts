/**
 * The tcpdump backend of live capture (src/sources/tcpdump-source.ts) against a stand-in for
 * tcpdump (test/helpers/fake-tcpdump.mjs, run through the PCAPFLOW_TCPDUMP hook), which says what
 * tcpdump says and writes a shipped capture as `tcpdump -U -w -` would: packets, numbering and
 * timestamps equal the capture read from its file; libpcap's statistics reach `stats` and the
 * summary; every failure is its code. Needs neither root nor tcpdump (test/live.test.ts runs the
 * real one in a network namespace).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CaptureReader } from '../src/core/capture-reader.js';
import { isPcapflowError } from '../src/core/errors.js';
import { ClockTick } from '../src/core/live-idle.js';
import type { Packet } from '../src/core/packet.js';
import { CAP_MODULE_ENV } from '../src/sources/live-binding.js';
import { openLive, type LiveCapture } from '../src/sources/live-source.js';
import { findTcpdump, parseCounts, parseDeviceList, parseListening, TCPDUMP_ENV, tcpdumpArgs, tcpdumpFailure } from '../src/sources/tcpdump-source.js';
import { liveSummary } from '../src/cli/live-command.js';
import { REPO_ROOT } from './helpers/env.js';
import { BIN, ensureBuilt } from './helpers/live-net.js';
import { runCli } from './helpers/cli-run.js';

const FAKE = path.join(REPO_ROOT, 'test/helpers/fake-tcpdump.mjs');
const EXAMPLE = path.join(REPO_ROOT, 'examples/http-get.pcap');
let tmp = '';

beforeAll(() => {
  ensureBuilt();
  tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-tcpdump-'));
});
afterAll(() => {
  if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  delete process.env[TCPDUMP_ENV];
  delete process.env[CAP_MODULE_ENV];
  delete process.env.FAKE_TCPDUMP_PCAP;
  delete process.env.FAKE_TCPDUMP_ARGS;
});

function useFake(pcap = EXAMPLE): void {
  process.env[TCPDUMP_ENV] = FAKE;
  process.env.FAKE_TCPDUMP_PCAP = pcap;
}

/** collect reads packets from `source` until `want` came (then stops it) and to its end. */
async function collect(source: LiveCapture, want: number): Promise<{ packets: Packet[]; ticks: number }> {
  const packets: Packet[] = [];
  let ticks = 0;
  for await (const item of source as AsyncIterable<Packet[] | ClockTick>) {
    if (item instanceof ClockTick) ticks++;
    else packets.push(...item);
    if (packets.length >= want) source.stop();
  }
  return { packets, ticks };
}

function fileTruth(file: string): Packet[] {
  const out: Packet[] = [];
  const r = new CaptureReader();
  r.write(readFileSync(file), (b) => out.push(...b));
  r.end((b) => out.push(...b));
  return out;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

describe('tcpdump output, parsed', () => {
  it('reads the listening line of tcpdump 4.99 and 4.9, and its closing statistics', () => {
    expect(parseListening('tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 65535 bytes\n')).toEqual({ linkName: 'EN10MB' });
    expect(parseListening('tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), capture size 262144 bytes\n')).toEqual({ linkName: 'LINUX_SLL2' });
    expect(parseListening('tcpdump: WARNING: something\n')).toBeNull();
    const counts = parseCounts('\n120 packets captured\n130 packets received by filter\n10 packets dropped by kernel\n3 packets dropped by interface\n');
    expect(counts).toEqual({ captured: 120, received: 130, kernelDropped: 10, interfaceDropped: 3 });
    expect(parseCounts('1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n')).toEqual({ captured: 1, received: 1, kernelDropped: 0, interfaceDropped: null });
  });

  it('puts the filter after --, the buffer in KiB, and asks for packet-buffered pcap on stdout', () => {
    expect(tcpdumpArgs('eth0', '-p or tcp', 65535, 256 * 1024 * 1024)).toEqual(['-i', 'eth0', '-s', '65535', '-B', '262144', '-U', '-n', '-w', '-', '--', '-p or tcp']);
    expect(tcpdumpArgs('lo', '', 100, 1000)).toEqual(['-i', 'lo', '-s', '100', '-B', '1', '-U', '-n', '-w', '-']);
  });

  it('tells a bad filter from a device it cannot open', () => {
    const bad = tcpdumpFailure('lo', 'tcp prot 80', "tcpdump: can't parse filter expression: syntax error\n", 'exited with status 1');
    expect(bad.code).toBe('INVALID_OPTION');
    expect(bad.message).toContain('syntax error');
    const dev = tcpdumpFailure('eth9', 'tcp', 'tcpdump: eth9: No such device exists\n', 'exited with status 1');
    expect(dev.code).toBe('INPUT_NOT_FOUND');
    expect(dev.message).toContain('No such device');
    expect(tcpdumpFailure('lo', '', '', 'was killed by SIGKILL').message).toContain('killed by SIGKILL');
  });

  it('reads tcpdump -D into devices, loopback flag and description included', () => {
    const text = '1.eth0 [Up, Running, Connected]\n2.any (Pseudo-device that captures on all interfaces) [Up, Running]\n3.lo [Up, Running, Loopback]\n4.ifb0 [none]\n';
    const list = parseDeviceList(text, (name) => (name === 'lo' ? [{ addr: '127.0.0.1', netmask: '255.0.0.0' }] : []));
    expect(list).toEqual([
      { name: 'eth0', description: null, loopback: false, addresses: [] },
      { name: 'any', description: 'Pseudo-device that captures on all interfaces', loopback: false, addresses: [] },
      { name: 'lo', description: null, loopback: true, addresses: [{ addr: '127.0.0.1', netmask: '255.0.0.0' }] },
      { name: 'ifb0', description: null, loopback: false, addresses: [] },
    ]);
  });

  it('findTcpdump honours the hook, and finds none on an empty PATH without sbin folders only when there is none', () => {
    expect(findTcpdump({ [TCPDUMP_ENV]: FAKE })).toBe(FAKE);
    expect(findTcpdump({ [TCPDUMP_ENV]: '/nonexistent/tcpdump' })).toBeNull();
    const found = findTcpdump({ PATH: '' });
    if (found !== null) expect(path.basename(found)).toBe('tcpdump');
  });

  it('the summary line says where packets were dropped, per backend', () => {
    const base = { device: 'lo', linkType: 1, packets: 5, bytes: 500, dropped: 2, droppedBytes: 200, cut: 0, batches: 1, ticks: 0, queuedBytes: 0, peakQueuedBytes: 0 };
    const gaps = { gaps: 1, missingBytes: 99 };
    expect(liveSummary({ ...base, backend: 'cap', received: null, kernelDropped: null, interfaceDropped: null }, gaps)).toBe(
      'pcapflow: captured 5 packets (500 bytes) with cap; dropped 2 (200 bytes) with the queue full (--max-queue); kernel drops not reported by the cap backend; gaps in the streams 1 (99 bytes missing)\n',
    );
    expect(liveSummary({ ...base, dropped: 0, backend: 'tcpdump', received: 7, kernelDropped: 2, interfaceDropped: 0 }, gaps)).toBe(
      "pcapflow: captured 5 packets (500 bytes) with tcpdump; dropped by the kernel 2, by the interface 0 (libpcap's count); gaps in the streams 1 (99 bytes missing)\n",
    );
  });
});

describe('TcpdumpSource (a stand-in tcpdump)', () => {
  it('gives the packets tcpdump wrote, numbered and stamped as in the file, then libpcap\'s counts', async () => {
    useFake();
    process.env.FAKE_TCPDUMP_ARGS = path.join(tmp, 'args.json');
    const truth = fileTruth(EXAMPLE);
    const source = await openLive({ device: 'lo', filter: 'tcp port 80', bufferSize: 4 << 20, snaplen: 65535, tickInterval: 0 }, 'tcpdump');
    expect(source.linkType).toBe(1);
    expect(source.linkName).toBe('EN10MB');
    const { packets } = await collect(source, truth.length);
    expect(packets.map((p) => [p.index, p.tsSec, p.tsNsec, p.len, p.caplen])).toEqual(truth.map((p) => [p.index, p.tsSec, p.tsNsec, p.len, p.caplen]));
    expect(packets.every((p, i) => Buffer.from(p.data).equals(Buffer.from(truth[i]!.data)))).toBe(true);
    expect(source.stats).toMatchObject({ backend: 'tcpdump', packets: truth.length, dropped: 0, received: 10, kernelDropped: 1, interfaceDropped: null });
    expect(JSON.parse(readFileSync(process.env.FAKE_TCPDUMP_ARGS, 'utf8'))).toEqual(['-i', 'lo', '-s', '65535', '-B', '4096', '-U', '-n', '-w', '-', '--', 'tcp port 80']);
  });

  it('records that come one at a time are delivered as they come, with clock ticks between them', { timeout: 20_000 }, async () => {
    useFake();
    const truth = fileTruth(EXAMPLE);
    const source = await openLive({ device: 'slow', tickInterval: 5 }, 'tcpdump');
    const { packets, ticks } = await collect(source, truth.length);
    expect(packets.map((p) => p.index)).toEqual(truth.map((p) => p.index));
    expect(ticks).toBeGreaterThan(0);
    expect(source.stats.ticks).toBe(ticks);
  });

  it('fails with the codes of cap: INPUT_NOT_FOUND, INVALID_OPTION, LINK_UNSUPPORTED, LIVE_UNAVAILABLE', async () => {
    useFake();
    const noDev = await rejection(openLive({ device: 'nodev' }, 'tcpdump'));
    expect(isPcapflowError(noDev) && noDev.code).toBe('INPUT_NOT_FOUND');
    expect((noDev as Error).message).toContain('No such device');
    const badFilter = await rejection(openLive({ device: 'lo', filter: 'bad filter' }, 'tcpdump'));
    expect(isPcapflowError(badFilter) && badFilter.code).toBe('INVALID_OPTION');
    const weird = await rejection(openLive({ device: 'weird' }, 'tcpdump'));
    expect(isPcapflowError(weird) && weird.code).toBe('LINK_UNSUPPORTED');
    process.env[TCPDUMP_ENV] = '/nonexistent/tcpdump';
    const none = await rejection(openLive({ device: 'lo' }, 'tcpdump'));
    expect(isPcapflowError(none) && none.code).toBe('LIVE_UNAVAILABLE');
  });

  it('a tcpdump that dies during the capture ends the stream with INPUT_READ_FAILED after its packets', async () => {
    useFake();
    const truth = fileTruth(EXAMPLE);
    const source = await openLive({ device: 'crash', tickInterval: 0 }, 'tcpdump');
    const packets: Packet[] = [];
    const err = await (async () => {
      try {
        for await (const item of source as AsyncIterable<Packet[]>) packets.push(...item);
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(isPcapflowError(err) && err.code).toBe('INPUT_READ_FAILED');
    expect((err as Error).message).toContain('interface disappeared');
    expect(packets).toHaveLength(truth.length);
  });

  it('auto is tcpdump when it is there, and says what to install when neither it nor cap is', async () => {
    useFake();
    const source = await openLive({ device: 'lo', tickInterval: 0 }, 'auto');
    expect(source.stats.backend).toBe('tcpdump');
    await collect(source, 1);
    process.env[TCPDUMP_ENV] = '/nonexistent/tcpdump';
    process.env[CAP_MODULE_ENV] = '/nonexistent';
    const none = await rejection(openLive({ device: 'lo' }, 'auto'));
    expect(isPcapflowError(none) && none.code).toBe('LIVE_UNAVAILABLE');
    expect((none as Error).message).toContain('libpcap-dev');
    expect((none as Error).message).toContain('apt-get install tcpdump');
  });
});

describe('pcapflow live --backend tcpdump (a stand-in tcpdump)', () => {
  it('prints what read prints for the same packets, stops on SIGINT with exit 0 and the kernel\'s count', { timeout: 30_000 }, async () => {
    const want = await runCli(['read', EXAMPLE, '--sink', 'ndjson']);
    const child = spawn(process.execPath, [BIN, 'live', 'lo', '--backend', 'tcpdump', '--sink', 'ndjson', '--stats'], {
      env: { ...process.env, [TCPDUMP_ENV]: FAKE, FAKE_TCPDUMP_PCAP: EXAMPLE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (const deadline = Date.now() + 20_000; !stdout.includes('"close"') && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stdout).toBe(want.stdout);
    expect(stderr).toMatch(/^pcapflow: listening on lo, link type EN10MB \(1\)$/m);
    expect(stderr).toMatch(/^pcapflow: captured \d+ packets \(\d+ bytes\) with tcpdump; dropped by the kernel 1 \(libpcap's count\); gaps in the streams 0 \(0 bytes missing\)$/m);
    expect(stderr).toMatch(/^capture\.kernelDropped\s+1$/m);
  });

  it('without tcpdump, --backend tcpdump is LIVE_UNAVAILABLE (exit 1)', async () => {
    process.env[TCPDUMP_ENV] = '/nonexistent/tcpdump';
    const r = await runCli(['live', 'lo', '--backend', 'tcpdump', '--sink', 'ndjson']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pcapflow: LIVE_UNAVAILABLE: .*apt-get install tcpdump/);
  });
});
