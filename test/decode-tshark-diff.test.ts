/**
 * Differential test: CaptureReader + PacketDecoder against tshark on every capture in
 * ../shared/pcaps. For every frame tshark decodes as TCP, pcapflow must decode the same frame
 * (same index) to the same addresses, ports, absolute seq/ack and payload length (tcp.len), and
 * pcapflow must decode no TCP frame that tshark does not. Known, deliberate differences are
 * excluded by name (EXCLUSIONS) and counted in the printed table; anything else fails.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { formatIp } from '../src/core/addr.js';
import { CaptureReader } from '../src/core/capture-reader.js';
import { PacketDecoder } from '../src/core/packet-decoder.js';
import type { Packet } from '../src/core/packet.js';
import { zlibInflate } from '../src/transforms/decode-transforms.js';
import { needTool, sharedCaptures } from './helpers/env.js';

/** Why a frame tshark shows as TCP may be skipped by pcapflow: keyed by pcapflow's skip reason. */
const EXCLUSIONS: Record<string, string> = {
  'not-tcp/icmp': 'TCP header quoted inside an ICMP error: tshark decodes it, pcapflow treats the packet as ICMP',
  'tcp-truncated': 'snaplen cut the fixed 20-byte TCP header: tshark shows the fields present, pcapflow skips the packet',
  'short-frame':
    "a frame the snaplen did not cut whose IP length runs past its end: tshark's tcp.len counts the bytes present (it shortens the packet to the frame), pcapflow's payload length is the IP header's (the rest is a truncated gap); checked: caplen == len, every other field agrees and tshark's tcp.len is the payload bytes pcapflow has",
};

const FIELDS = ['frame.number', 'ip.src', 'ipv6.src', 'ip.dst', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.seq', 'tcp.ack', 'tcp.len', 'frame.protocols'];

interface Row {
  capture: string;
  tcp: number;
  agreeing: number;
  excluded: Record<string, number>;
}

const rows: Row[] = [];

/** tshark's TCP fields; for a corrupt file, the frames it read before the error. */
function tshark(file: string): Promise<string> {
  const args = ['-r', file, '-o', 'tcp.relative_sequence_numbers:FALSE', '-Y', 'tcp', '-T', 'fields'];
  for (const f of FIELDS) args.push('-e', f);
  return new Promise((resolve) => {
    execFile('tshark', args, { encoding: 'utf8', maxBuffer: 1 << 28 }, (_err, stdout) => resolve(stdout));
  });
}

function ours(file: string): Map<number, Packet> {
  const reader = new CaptureReader({ file });
  const dec = new PacketDecoder({ keepSkipped: true, inflate: zlibInflate });
  const pkts = new Map<number, Packet>();
  const take = (b: Packet[]): void => dec.write(b, (out) => out.forEach((p) => pkts.set(p.index, p)));
  try {
    reader.write(readFileSync(file), take);
    reader.end(take);
  } catch {
    // corrupt or unreadable file: compare the packets read before the error
  }
  dec.end();
  return pkts;
}

/** The innermost value of a field that tunnels repeat ("outer,inner"). */
const last = (v: string): string => v.split(',').at(-1) ?? '';

const files = needTool('tshark') ? sharedCaptures() : [];

// concurrent: the time goes into starting tshark once per capture.
describe.skipIf(files.length === 0).concurrent('decoders agree with tshark on ../shared/pcaps', () => {
  afterAll(() => {
    rows.sort((a, b) => (a.capture < b.capture ? -1 : 1));
    const lines = ['capture\tTCP packets\tagreeing\texcluded'];
    for (const r of rows) lines.push(`${r.capture}\t${r.tcp}\t${r.agreeing}\t${Object.entries(r.excluded).map(([k, v]) => `${v} ${k}`).join(', ')}`);
    const used = new Set(rows.flatMap((r) => Object.keys(r.excluded)));
    lines.push('', 'exclusions:');
    for (const k of used) lines.push(`  ${k}: ${EXCLUSIONS[k]}`);
    console.log(lines.join('\n'));
  });

  it.for(files.map((f) => [path.basename(f), f] as const))('%s', async ([name, file], { expect }) => {
    const text = await tshark(file);
    const mine = ours(file);
    const row: Row = { capture: name, tcp: 0, agreeing: 0, excluded: {} };
    const problems: string[] = [];
    const seen = new Set<number>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const [num, s4, s6, d4, d6, sport, dport, seq, ack, len, protos] = line.split('\t') as [string, string, string, string, string, string, string, string, string, string, string];
      const index = Number(num);
      seen.add(index);
      row.tcp++;
      const layers = protos.split(':');
      const v6 = layers.lastIndexOf('ipv6') > layers.lastIndexOf('ip');
      const want = [v6 ? last(s6) : last(s4), v6 ? last(d6) : last(d4), last(sport), last(dport), last(seq), last(ack), last(len)];
      const p = mine.get(index);
      if (p === undefined) {
        problems.push(`frame ${index}: missing from pcapflow`);
        continue;
      }
      if (p.skip !== null) {
        const key = p.skip === 'not-tcp' && layers.includes('icmp') ? 'not-tcp/icmp' : p.skip;
        if (key in EXCLUSIONS) row.excluded[key] = (row.excluded[key] ?? 0) + 1;
        else problems.push(`frame ${index}: pcapflow skipped it (${p.skip}), tshark: ${want.join(' ')}`);
        continue;
      }
      const got = [formatIp(p.src), formatIp(p.dst), String(p.sport), String(p.dport), String(p.seq), String(p.ack), String(p.payloadLen)];
      if (want[5] === '') got[5] = ''; // tshark gives no ack when the snaplen cut it
      if (got.join(' ') === want.join(' ')) row.agreeing++;
      else if (p.caplen === p.len && p.payload.length < p.payloadLen && got.slice(0, 6).join(' ') === want.slice(0, 6).join(' ') && want[6] === String(p.payload.length)) row.excluded['short-frame'] = (row.excluded['short-frame'] ?? 0) + 1;
      else problems.push(`frame ${index}: pcapflow ${got.join(' ')} | tshark ${want.join(' ')}`);
    }
    for (const [index, p] of mine) if (p.skip === null && !seen.has(index)) problems.push(`frame ${index}: TCP in pcapflow only`);
    rows.push(row);
    expect(problems).toEqual([]);
  });
});
