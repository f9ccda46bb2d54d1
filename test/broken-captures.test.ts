/**
 * The real broken captures in ../shared/pcaps end with their documented error after the packets
 * before the fault; every other capture reads to the end with the packet count that capinfos
 * gives (MANIFEST.tsv `packets`, and capinfos itself when installed).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCaptures } from '../src/sources/capture-source.js';
import type { PcapflowError } from '../src/core/errors.js';
import type { Packet } from '../src/core/packet.js';
import { hasTool, SHARED_PCAPS, sharedCaptures } from './helpers/env.js';
import { readCapture } from './helpers/read-capture.js';

/** recordOffset walks `n` little-endian classic pcap records and returns where record n+1 starts. */
function recordOffset(bytes: Buffer, n: number): number {
  let off = 24;
  for (let i = 0; i < n; i++) off += 16 + bytes.readUInt32LE(off + 8);
  return off;
}

interface Broken {
  file: string;
  packets: number;
  code: string;
  offset: (bytes: Buffer) => number;
}

const BROKEN: Broken[] = [
  // record 19's header claims 3,925,868,813 bytes
  { file: 'suricata-verify__smtp-corrupt-record-header.pcap', packets: 18, code: 'PCAP_RECORD_TOO_LARGE', offset: (b) => recordOffset(b, 18) },
  // the file ends 1 byte into record 2697's header
  {
    file: 'suricata-verify__http-upload-file-cut-mid-record.pcap',
    packets: 2696,
    code: 'PCAP_TRUNCATED_RECORD',
    offset: (b) => {
      const off = recordOffset(b, 2696);
      expect(b.length - off).toBeLessThan(16);
      return off;
    },
  },
  // the SHB's first option claims 0x3030 bytes in a 52-byte block
  { file: 'libpcap__pcapng-shb-option-too-long.pcapng', packets: 0, code: 'PCAPNG_BAD_SECTION', offset: () => 0 },
  // version 1.4 in the file header
  { file: 'libpcap__pcap-invalid-version.pcap', packets: 0, code: 'PCAP_BAD_VERSION', offset: () => 0 },
];

const manifest = new Map<string, string>();
try {
  const lines = readFileSync(path.join(SHARED_PCAPS, 'MANIFEST.tsv'), 'utf8').trim().split('\n');
  const cols = (lines[0] ?? '').split('\t');
  const at = cols.indexOf('packets');
  for (const l of lines.slice(1)) {
    const c = l.split('\t');
    manifest.set(c[0] ?? '', c[at] ?? '');
  }
} catch {
  // no shared captures on this machine: the suites below have nothing to run
}

describe('broken captures', () => {
  for (const b of BROKEN) {
    const file = path.join(SHARED_PCAPS, b.file);
    it.runIf(manifest.has(b.file))(`${b.file}: ${b.packets} packets, then ${b.code}`, async () => {
      const bytes = readFileSync(file);
      const offset = b.offset(bytes);
      for (const chunk of [bytes.length, 65536, 1000]) {
        const r = readCapture(new Uint8Array(bytes), { chunk }, { file });
        expect(r.packets.length).toBe(b.packets);
        expect(r.error?.code).toBe(b.code);
        expect(r.error).toMatchObject({ offset, packet: b.packets + 1, file });
      }
      // the same through the file source
      const got: Packet[] = [];
      let error: PcapflowError | null = null;
      try {
        for await (const batch of openCaptures([file])) got.push(...(batch as Packet[]));
      } catch (e) {
        error = e as PcapflowError;
      }
      expect(got.length).toBe(b.packets);
      expect(error).toMatchObject({ code: b.code, file, offset, packet: b.packets + 1 });
    });
  }

  it('the manifest documents each of them as broken', () => {
    if (manifest.size === 0) return;
    for (const b of BROKEN) expect(manifest.get(b.file), b.file).toMatch(/error|unreadable/);
  });
});

describe('every other shared capture reads to the end', () => {
  const good = sharedCaptures().filter((f) => !BROKEN.some((b) => b.file === path.basename(f)));
  it.runIf(good.length > 0)('with no error and the packet count capinfos gives', () => {
    const capinfos = new Map<string, number>();
    if (hasTool('capinfos')) {
      const out = execFileSync('capinfos', ['-T', '-c', '-r', '-M', ...good], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const line of out.trim().split('\n')) {
        const [name, n] = line.split('\t');
        capinfos.set(path.basename(name ?? ''), Number(n));
      }
      expect(capinfos.size).toBe(good.length);
    }
    for (const f of good) {
      const name = path.basename(f);
      const r = readCapture(new Uint8Array(readFileSync(f)), { chunk: 1 << 20 });
      expect(r.error, name).toBeNull();
      expect(String(r.packets.length), name).toBe(manifest.get(name));
      if (capinfos.size > 0) expect(r.packets.length, name).toBe(capinfos.get(name));
      expect(r.reader.stats.bytes, name).toBe(readFileSync(f).length);
    }
  });
});
