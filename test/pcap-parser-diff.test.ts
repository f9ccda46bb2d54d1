/**
 * Differential test: the npm package pcap-parser (an independent classic-pcap parser, test-only
 * dependency) against CaptureReader on every classic pcap in ../shared/pcaps that pcap-parser
 * reads. pcap-parser knows only the microsecond magic (both byte orders) and never reports a cut
 * or corrupt record: it just stops, so on the two broken files it gives the packets before the
 * fault, which CaptureReader must give too (followed by its error).
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sharedCaptures } from './helpers/env.js';
import { readCapture } from './helpers/read-capture.js';

const require = createRequire(import.meta.url);
const pcapParser = require('pcap-parser') as { parse(input: string): EventEmitter };

interface OraclePacket {
  header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number };
  data: Buffer;
}
interface OracleResult {
  header: { majorVersion: number; minorVersion: number; linkLayerType: number } | null;
  packets: OraclePacket[];
  error: string | null;
}

function oracle(file: string): Promise<OracleResult> {
  return new Promise((resolve) => {
    const res: OracleResult = { header: null, packets: [], error: null };
    const parser = pcapParser.parse(file);
    let done = false;
    parser.on('globalHeader', (h: OracleResult['header']) => (res.header = h));
    parser.on('packet', (p: OraclePacket) => res.packets.push(p));
    parser.on('error', (e: Error) => (res.error = e.message));
    parser.on('end', () => {
      if (!done) {
        done = true;
        resolve(res);
      }
    });
  });
}

const classic = sharedCaptures().filter((f) => {
  const magic = readFileSync(f).subarray(0, 4).toString('hex');
  return magic === 'd4c3b2a1' || magic === 'a1b2c3d4' || magic === '4d3cb2a1' || magic === 'a1b23c4d';
});

describe('CaptureReader against pcap-parser', () => {
  it.runIf(classic.length > 0)('gives the same packets on every classic pcap pcap-parser reads', async () => {
    const table: { file: string; packets: number; agree: string }[] = [];
    let compared = 0;
    for (const f of classic) {
      const name = path.basename(f);
      const o = await oracle(f);
      const mine = readCapture(new Uint8Array(readFileSync(f)), { chunk: 65536 });
      if (o.header === null) {
        // pcap-parser rejects the nanosecond magic
        expect(o.error, name).toMatch(/magic/);
        table.push({ file: name, packets: mine.packets.length, agree: 'not read by pcap-parser (ns magic)' });
        continue;
      }
      if (mine.error?.code === 'PCAP_BAD_VERSION') {
        // pcap-parser's version check lets 1.4 through; libpcap and Wireshark reject it, as we do
        expect(o.header.majorVersion, name).not.toBe(2);
        table.push({ file: name, packets: 0, agree: `n/a: version ${o.header.majorVersion}.${o.header.minorVersion} rejected` });
        continue;
      }
      expect(mine.packets.length, name).toBe(o.packets.length);
      mine.packets.forEach((p, i) => {
        const q = o.packets[i] as OraclePacket;
        const at = `${name} packet ${p.index}`;
        expect([p.tsSec, p.tsNsec, p.caplen, p.len, p.linkType], at).toEqual([q.header.timestampSeconds, q.header.timestampMicroseconds * 1000, q.header.capturedLength, q.header.originalLength, o.header!.linkLayerType & 0xffff]);
        expect(Buffer.compare(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength), q.data), at).toBe(0);
      });
      compared++;
      table.push({ file: name, packets: mine.packets.length, agree: mine.error ? `yes, then ${mine.error.code}` : 'yes' });
    }
    console.log(['file\tpackets\tagree', ...table.map((r) => `${r.file}\t${r.packets}\t${r.agree}`)].join('\n'));
    expect(compared).toBeGreaterThan(60);
  });
});
