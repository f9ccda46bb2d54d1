/**
 * Differential test of the filter language against tcpdump (libpcap): on every capture in
 * ../shared/pcaps that tcpdump reads whole, each expression below must select exactly the packets
 * `tcpdump -r F EXPR` selects.
 *
 * How: our CaptureReader reads every capture; a capture is compared when `tcpdump -r F` (no
 * filter) reads the same number of packets (so the pcapng files with mixed link types or
 * snaplens, which libpcap refuses, and the unreadable ones drop out). Since a filter looks at one
 * packet at a time and depends only on the link type (and, for BSD loopback, the file's byte
 * order), the compared packets are regrouped by (link type, byte order) into one pcap per group,
 * each record stamped with its global sequence number as its timestamp; tcpdump then runs once
 * per expression and group (in parallel) instead of once per capture, and the timestamps of what
 * it writes name the selected packets exactly.
 *
 * Where tcpdump refuses an expression for a link type (`vlan` on Linux SLL, anything on NFLOG),
 * the group is not compared, and pcapflow's documented behaviour is checked instead: it selects
 * nothing, except on NFLOG, where it filters the IP packet inside (see src/core/filter.ts).
 * "expression rejects all packets" is tcpdump refusing a filter that can match nothing; it
 * counts as selecting nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureReader } from '../src/core/capture-reader.js';
import { compileFilter } from '../src/core/filter.js';
import type { Packet } from '../src/core/packet.js';
import { needTool, sharedCaptures } from './helpers/env.js';

const EXPRESSIONS = [
  // protocols
  'tcp',
  'udp',
  'icmp',
  'icmp6',
  'sctp',
  'ip',
  'ip6',
  'arp or rarp',
  'ip and not tcp',
  'ip proto 17',
  'proto 6',
  'ip6 proto 6',
  // ports (IPv4 non-first fragments never match; IPv6 looks at the first next header only)
  'port 80',
  'tcp port 80',
  'tcp src port 80',
  'dst port 80',
  'port 80 or 443',
  'port http',
  'port domain',
  'udp port 53',
  'port 9001 or 1389 or 8080',
  'portrange 1-1023',
  'tcp dst portrange 8000-9000',
  'src and dst portrange 1024-65535',
  'src or dst port 22',
  // hosts and networks (IPv4 ones also match ARP/RARP)
  'host 192.150.187.43',
  'src host 141.142.228.5',
  'dst host 192.150.187.43 and tcp',
  'host 10.0.0.1 or 10.0.0.8',
  'host 10.0.0.1 and not 10.0.0.8',
  'host (192.168.0.112 or 10.10.10.31)',
  'src and dst net 192.168.0.0/16',
  'net 10.0.0.0/8 and not net 10.1.1.0/24',
  'net 192.168',
  'net 172.16.0.0 mask 255.240.0.0',
  'src net 10.0.0.0/8 or dst net 127.0/16',
  'host 10.1 and net 0x0a',
  'ip6 host ::1',
  'host 2001:db8:1::1',
  'net 2001:618::/32',
  'src net fe80::/10',
  // operators and precedence (and/or equal, left-associative; not binds tightest)
  'tcp or udp and not port 80',
  'not tcp or udp',
  '!tcp && !udp',
  'tcp and (port 80 or port 8080)',
  'not (port 22 or port 80) and tcp',
  'port 80 and not src host 192.150.187.43',
  // link-layer encapsulation: vlan/mpls/pppoes move the offsets of what follows
  'vlan',
  'vlan and tcp',
  'vlan 0',
  'vlan 10 or vlan 20',
  'vlan and vlan and tcp',
  'vlan and vlan and vlan and port 80',
  'not vlan and tcp',
  'vlan or tcp',
  'vlan 6 and ip6',
  'vlan and host 192.150.187.43',
  'mpls and tcp',
  'mpls 29 and port 23',
  'mpls and mpls',
  'vlan and vlan and pppoes and ip',
  'pppoes or udp',
  'vlan and vlan and pppoes and tcp port 80',
  // lengths
  'less 100',
  'greater 1000',
  'tcp and less 80',
  'less 60 or greater 1400',
];

interface Capture {
  name: string;
  packets: Packet[];
}

interface Group {
  key: string;
  file: string;
  /** Packets in sequence order; the pcap record of packets[k] has timestamp k. */
  packets: Packet[];
  capture: string[];
}

const LINKTYPE_NFLOG = 239;
let tmp = '';
let captures: Capture[] = [];
const groups: Group[] = [];
const excluded: string[] = [];

function readCapture(buf: Uint8Array): Packet[] {
  const reader = new CaptureReader();
  const out: Packet[] = [];
  const emit = (batch: Packet[]): void => {
    for (const p of batch) out.push(p);
  };
  try {
    reader.write(buf, emit);
    reader.end(emit);
  } catch {
    // a broken capture: keep the packets before the fault (tcpdump does the same)
  }
  return out;
}

/** littleEndian: the byte order a capture file was written in (pcap magic, or the first pcapng section). */
function littleEndian(buf: Uint8Array): boolean {
  if (buf.length >= 12 && buf[0] === 0x0a && buf[1] === 0x0d && buf[2] === 0x0d && buf[3] === 0x0a) return buf[8] === 0x4d;
  return buf[0] === 0xd4 || buf[0] === 0x4d;
}

function writePcap(file: string, linkType: number, le: boolean, packets: Packet[]): void {
  let size = 24;
  for (const p of packets) size += 16 + p.data.length;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0xa1b2c3d4, le);
  v.setUint16(4, 2, le);
  v.setUint16(6, 4, le);
  v.setUint32(16, 262144, le);
  v.setUint32(20, linkType, le);
  let off = 24;
  packets.forEach((p, k) => {
    v.setUint32(off, k, le);
    v.setUint32(off + 4, 0, le);
    v.setUint32(off + 8, p.data.length, le);
    v.setUint32(off + 12, p.len, le);
    out.set(p.data, off + 16);
    off += 16 + p.data.length;
  });
  writeFileSync(file, out);
}

interface TcpdumpResult {
  /** Sequence numbers of the selected packets, or null when tcpdump refused. */
  selected: number[] | null;
  error: string;
}

/** tcpdump runs `tcpdump -r file -w - expr` and reads back the timestamps (= sequence numbers) of what it wrote. */
function tcpdump(file: string, expr: string | null): Promise<TcpdumpResult> {
  const args = ['-r', file, '-w', '-'];
  if (expr !== null) args.push('--', expr);
  return new Promise((resolve) => {
    execFile('tcpdump', args, { encoding: 'buffer', maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      const error = stderr
        .toString()
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('reading from') && !l.startsWith('Warning'))
        .join(' ');
      if (/rejects all packets/.test(error)) {
        resolve({ selected: [], error: '' });
        return;
      }
      if (err !== null && stdout.length === 0) {
        resolve({ selected: null, error });
        return;
      }
      resolve({ selected: readCapture(stdout).map((p) => p.tsSec), error });
    });
  });
}

/** pool runs the jobs with at most `n` at a time. */
async function pool<T>(jobs: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const k = next++;
      out[k] = await jobs[k]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, worker));
  return out;
}

const PARALLEL = Math.max(4, cpus().length * 2);

describe.runIf(needTool('tcpdump'))('--filter selects the packets tcpdump selects', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-filter-'));
    const files = sharedCaptures();
    const whole = await pool(
      files.map((file) => () => tcpdump(file, null)),
      PARALLEL,
    );
    const byKey = new Map<string, { linkType: number; le: boolean; packets: Packet[]; capture: string[] }>();
    captures = [];
    files.forEach((file, k) => {
      const name = path.basename(file);
      const buf = readFileSync(file);
      const packets = readCapture(buf);
      const theirs = whole[k]!.selected;
      if (theirs === null || theirs.length !== packets.length || packets.length === 0) {
        excluded.push(`${name}: tcpdump reads ${theirs === null ? 'nothing' : `${theirs.length} packets`}, pcapflow ${packets.length}${whole[k]!.error === '' ? '' : ` (${whole[k]!.error.slice(0, 90)})`}`);
        return;
      }
      captures.push({ name, packets });
      const le = littleEndian(buf);
      for (const p of packets) {
        const key = `${p.linkType}/${le ? 'le' : 'be'}`;
        let g = byKey.get(key);
        if (g === undefined) byKey.set(key, (g = { linkType: p.linkType, le, packets: [], capture: [] }));
        g.packets.push(p);
        g.capture.push(name);
      }
    });
    for (const [key, g] of byKey) {
      const file = path.join(tmp, `${key.replace('/', '-')}.pcap`);
      writePcap(file, g.linkType, g.le, g.packets);
      groups.push({ key, file, packets: g.packets, capture: g.capture });
    }
  }, 60_000);

  afterAll(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('reads enough of the shared captures to mean something', () => {
    expect(captures.length).toBeGreaterThanOrEqual(60);
    expect(groups.length).toBeGreaterThanOrEqual(8);
    expect(EXPRESSIONS.length).toBeGreaterThanOrEqual(40);
  });

  /** compare runs every expression through tcpdump and pcapflow on every group; returns the table rows and the disagreements. */
  async function compare(expressions: readonly string[]): Promise<{ rows: string[]; failures: string[]; matchingSomething: number }> {
    const jobs: (() => Promise<{ expr: string; group: Group; result: TcpdumpResult }>)[] = [];
    for (const expr of expressions) {
      for (const group of groups) jobs.push(async () => ({ expr, group, result: await tcpdump(group.file, expr) }));
    }
    const results = await pool(jobs, PARALLEL);

    const rows: string[] = [];
    const failures: string[] = [];
    let matchingSomething = 0;
    for (const expr of expressions) {
      const filter = compileFilter(expr);
      const perCapture = new Map<string, boolean>(); // capture -> agrees
      let matched = 0;
      let refused = 0;
      for (const { group, result } of results.filter((r) => r.expr === expr)) {
        const ours: number[] = [];
        group.packets.forEach((p, k) => {
          if (filter.matches(p)) ours.push(k);
        });
        if (result.selected === null) {
          refused++;
          const linkType = Number(group.key.split('/')[0]);
          if (linkType !== LINKTYPE_NFLOG && ours.length > 0) {
            failures.push(`${expr} on ${group.key}: tcpdump refuses (${result.error}); pcapflow must select nothing but selected ${ours.length}`);
          }
          continue;
        }
        matched += result.selected.length;
        const theirs = new Set(result.selected);
        const oursSet = new Set(ours);
        group.packets.forEach((p, k) => {
          const cap = group.capture[k]!;
          const agree = theirs.has(k) === oursSet.has(k);
          if (!perCapture.has(cap)) perCapture.set(cap, true);
          if (!agree) {
            perCapture.set(cap, false);
            failures.push(`${expr}: ${cap} packet ${p.index}: tcpdump ${theirs.has(k) ? 'selects' : 'drops'} it, pcapflow ${oursSet.has(k) ? 'selects' : 'drops'} it`);
          }
        });
      }
      if (matched > 0) matchingSomething++;
      const agreeing = [...perCapture.values()].filter(Boolean).length;
      rows.push(
        `| ${expr.padEnd(44)} | ${String(perCapture.size).padStart(8)} | ${String(matched).padStart(7)} | ${`${agreeing}/${perCapture.size}`.padStart(8)} |${refused > 0 ? ` tcpdump refuses it on ${refused} link type(s)` : ''}`,
      );
    }
    return { rows, failures, matchingSomething };
  }

  function table(title: string, rows: string[]): string {
    return [title, `| ${'expression'.padEnd(44)} | captures | matched | agreeing |`, `|${'-'.repeat(46)}|----------|---------|----------|`, ...rows].join('\n');
  }

  it('agrees with tcpdump on every expression and capture', async () => {
    const { rows, failures, matchingSomething } = await compare(EXPRESSIONS);
    console.log(
      [
        table(`tcpdump differential: ${EXPRESSIONS.length} expressions, ${captures.length} captures in ${groups.length} link-type groups`, rows),
        'not compared (tcpdump cannot read them whole):',
        ...excluded.map((e) => `  ${e}`),
      ].join('\n'),
    );
    expect(failures.slice(0, 40)).toEqual([]);
    // Not vacuous: nearly every expression selects something somewhere.
    expect(matchingSomething).toBeGreaterThanOrEqual(EXPRESSIONS.length - 5);
  }, 120_000);

  it('agrees with tcpdump on random combinations (fixed seed)', async () => {
    const atom = fc.constantFrom(
      'tcp', 'udp', 'ip', 'ip6', 'arp', 'icmp', 'port 80', 'port 53 or 443', 'src port 80', 'tcp dst portrange 1-1023',
      'host 10.0.0.1', 'dst host 192.168.0.112 or 10.10.10.31', 'net 192.168.0.0/16', 'src net 10.0.0.0/8', 'ip6 host ::1',
      'vlan', 'vlan 10', 'less 200', 'greater 1000', 'ip proto 17',
    );
    const { expr } = fc.letrec<{ expr: string }>((tie) => ({
      expr: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        atom,
        fc.tuple(tie('expr'), fc.constantFrom(' and ', ' or ', ' && ', ' || '), tie('expr')).map(([a, op, b]) => `${a}${op}${b}`),
        tie('expr').map((e) => `not ${e}`),
        tie('expr').map((e) => `(${e})`),
      ),
    }));
    const expressions = [...new Set(fc.sample(expr, { seed: 4242, numRuns: 30 }))].filter((e) => e.length <= 160);
    expect(expressions.length).toBeGreaterThanOrEqual(20);
    const { rows, failures, matchingSomething } = await compare(expressions);
    console.log(table(`tcpdump differential, random expressions: ${expressions.length}`, rows));
    expect(failures.slice(0, 40)).toEqual([]);
    expect(matchingSomething).toBeGreaterThanOrEqual(expressions.length / 2);
  }, 120_000);
});
