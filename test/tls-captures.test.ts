/**
 * The TLS parser on the shared captures (../shared/pcaps-app), through the whole read pipeline:
 * - JA4 of every TCP ClientHello in ja4/pcap against FoxIO's expected values
 *   (ja4/JA4-EXPECTED.tsv; QUIC rows out of scope), matched by the connection's ports;
 * - JA3 (string and MD5) of every capture with a TCP ClientHello against tshark 4.0's
 *   `tls.handshake.ja3_full`/`ja3` (TSHARK-TLS.tsv), and JA3S against tshark's `ja3s_full`/`ja3s`
 *   (run here, since the table has no ServerHello rows), matched by ports through tshark's
 *   tcp.stream (which numbers streams pcapflow does not see, so it is no key by itself).
 * - `pcapflow tls` on suricata-verify's TLS captures against the EVE `tls` fields their
 *   test.yaml expects (expected/suricata-verify): JA4, SNI, version, and the certificates'
 *   subject, issuer, SAN, serial, validity and SHA-1 fingerprint, server's and client's.
 * Read from ../shared, as the captures' licences ask; nothing of them is copied here.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { TlsRecord } from '../src/core/tls.js';
import { TlsLines, tlsJson, type TlsJsonRecord } from '../src/sinks/tls-sink.js';
import { runCli } from './helpers/cli-run.js';
import { hasTool, REPO_ROOT } from './helpers/env.js';
import { parseTlsCapture } from './helpers/tls-capture.js';

const run = promisify(execFile);
const APP = path.resolve(REPO_ROOT, '../shared/pcaps-app');
const have = existsSync(path.join(APP, 'ja4/JA4-EXPECTED.tsv'));

const tsv = (file: string): string[][] =>
  readFileSync(path.join(APP, file), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'));

/** FoxIO's rows that the JA4 specification disagrees with, and why (the spec wins). */
const JA4_SPEC_OVER_SNAPSHOT: Record<string, { ja4: string; why: string }> = {
  'tls-non-ascii-alpn.pcapng 0': {
    ja4: 't13d1516bd_8daaf6152771_e5627efa2ab1',
    why:
      'first ALPN is the bytes 0xba 0xad: JA4.md says a non-alphanumeric first or last byte gives the first and last ' +
      "characters of the value's hex (\"bd\"); the snapshot's ja4 tool then replaced each non-ASCII character by '9' (\"99\")",
  },
};

/** TCP streams in which tshark sees a ServerHello, in the captures of TSHARK-TLS.tsv. */
const SERVER_HELLO_STREAMS = 100;

const portKey = (a: number | string, b: number | string): string => `${a}-${b}`;

async function records(file: string): Promise<Map<string, TlsRecord>> {
  const { out, parser } = await parseTlsCapture(file);
  expect(parser.stats.heldBytes).toBe(0);
  const by = new Map<string, TlsRecord>();
  for (const r of out) by.set(portKey(r.client.port, r.server.port), r);
  return by;
}

describe.skipIf(!have)('TLS on the shared captures', () => {
  it('gives FoxIO’s JA4 for every TCP ClientHello in ja4/pcap', { timeout: 60_000 }, async () => {
    const rows = tsv('ja4/JA4-EXPECTED.tsv').filter((r) => r[2] === 'tcp');
    expect(rows.length).toBe(151);
    let agree = 0;
    const differ: string[] = [];
    for (const file of [...new Set(rows.map((r) => r[0]!))]) {
      const by = await records(path.join(APP, 'ja4/pcap', file));
      for (const r of rows.filter((x) => x[0] === file)) {
        const rec = by.get(portKey(r[4]!, r[6]!));
        const special = JA4_SPEC_OVER_SNAPSHOT[`${file} ${r[1]}`];
        expect(rec?.clientHello?.sni ?? '', `${file} ${r[1]} sni`).toBe(r[7]);
        if (rec?.ja4 === r[8]) agree++;
        else if (special !== undefined && rec?.ja4 === special.ja4) differ.push(`${file} ${r[1]}: ${special.why}`);
        else expect(rec?.ja4, `${file} stream ${r[1]}`).toBe(r[8]);
      }
    }
    expect(agree).toBe(150);
    expect(differ.length).toBe(1);
  });

  it.skipIf(!hasTool('tshark'))('gives tshark’s JA3 and JA3S on every capture with a TCP ClientHello', { timeout: 60_000 }, async () => {
    const table = tsv('TSHARK-TLS.tsv').filter((r) => r[2] !== '');
    const files = [...new Set(table.map((r) => r[0]!))];
    let ja3 = 0;
    let ja3s = 0;
    let serverHellos = 0;
    const check = async (file: string): Promise<void> => {
      const { stdout } = await run(
        'tshark',
        ['-r', path.join(APP, file), '-Y', 'tls.handshake.type==1 || tls.handshake.type==2', '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f']
          .concat(['-e', 'frame.number', '-e', 'tcp.stream', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tls.handshake.type'])
          .concat(['-e', 'tls.handshake.ja3s_full', '-e', 'tls.handshake.ja3s']),
        { maxBuffer: 1 << 24 },
      );
      const frames = stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t'))
        .filter((f) => f[1] !== '');
      const by = await records(path.join(APP, file));
      /** tcp.stream → the connection's record, through the ports of a hello in it. */
      const streams = new Map<string, TlsRecord | undefined>();
      for (const f of frames) {
        const client = f[4] === '1' ? portKey(f[2]!, f[3]!) : portKey(f[3]!, f[2]!);
        if (!streams.has(f[1]!)) streams.set(f[1]!, by.get(client));
      }
      // the first ClientHello of each stream (a HelloRetryRequest brings a second one)
      const seen = new Set<string>();
      for (const r of table.filter((x) => x[0] === file)) {
        if (seen.has(r[2]!)) continue;
        seen.add(r[2]!);
        const rec = streams.get(r[2]!);
        expect(rec?.ja3, `${file} stream ${r[2]} ja3_full`).toBe(r[9]);
        expect(rec?.ja3Hash, `${file} stream ${r[2]} ja3`).toBe(r[8]);
        ja3++;
      }
      // the last ServerHello of each stream: the one after a HelloRetryRequest
      const last = new Map<string, string[]>();
      for (const f of frames) if (f[4]!.split(',').includes('2') && f[6] !== '') last.set(f[1]!, f);
      for (const [stream, f] of last) {
        const rec = streams.get(stream);
        expect(rec?.ja3s, `${file} stream ${stream} ja3s_full`).toBe(f[5]);
        expect(rec?.ja3sHash, `${file} stream ${stream} ja3s`).toBe(f[6]);
        ja3s++;
      }
      serverHellos += last.size;
    };
    // two tshark runs at a time
    const queue = [...files];
    await Promise.all(
      [0, 1].map(async () => {
        for (let f = queue.shift(); f !== undefined; f = queue.shift()) await check(f);
      }),
    );
    // 171 TCP ClientHello rows in 160 connections (10 HelloRetryRequests, one duplicate ClientHello)
    expect(ja3).toBe(160);
    expect(ja3s).toBe(serverHellos);
    expect(ja3s).toBe(SERVER_HELLO_STREAMS);
  });
});

/** The `tls.*` matches of a suricata-verify test.yaml (first filter with them), quotes removed. */
function suricataTls(test: string): Map<string, string> {
  const yaml = readFileSync(path.join(APP, 'expected/suricata-verify', test, 'test.yaml'), 'utf8');
  const out = new Map<string, string>();
  for (const m of yaml.matchAll(/^\s+tls\.([\w.[\]]+): (.*)$/gm)) if (!out.has(m[1]!)) out.set(m[1]!, m[2]!.replace(/^'(.*)'$/, '$1'));
  return out;
}

/** Suricata's serial ("00:C7:D4:…", the DER integer's bytes) as node prints it ("C7D4…"). */
const serialOf = (s: string): string => s.replace(/:/g, '').replace(/^(00)+(?=.)/, '');
const sha1 = (der: Uint8Array): string => createHash('sha1').update(der).digest('hex').replace(/(..)(?!$)/g, '$1:');

describe.skipIf(!have)('TlsLines on the shared captures', () => {
  it('writes every record of every capture with TLS as JSON.stringify(tlsJson(record)) does', { timeout: 60_000 }, async () => {
    const files = new Set([...tsv('TSHARK-TLS.tsv').map((r) => r[0]!), ...tsv('ja4/JA4-EXPECTED.tsv').map((r) => `ja4/pcap/${r[0]!}`)]);
    let records = 0;
    let certificates = 0;
    for (const file of files) {
      const { out } = await parseTlsCapture(path.join(APP, file));
      const lines = new TlsLines();
      for (const r of out) lines.json(r);
      expect(lines.take().toString(), file).toBe(out.map((r) => `${JSON.stringify(tlsJson(r))}\n`).join(''));
      records += out.length;
      certificates += out.reduce((n, r) => n + r.certificates.length + r.clientCertificates.length, 0);
    }
    expect(records).toBe(160);
    expect(certificates).toBe(67);
  });
});

describe.skipIf(!have)('pcapflow tls on suricata-verify’s captures', () => {
  it('gives the fields Suricata’s EVE tls records are expected to have', async () => {
    const cases = [
      { file: 'tls/suricata-verify__tls-client-auth-certs.pcap', test: 'tls/tls-eve-custom-fields' },
      { file: 'tls/suricata-verify__tls12-ja4-expected.pcap', test: 'tls/bug-7286-tls-metadata-01' },
      { file: 'tls/suricata-verify__tls12-ja4-expected.pcap', test: 'ja4-tls' },
    ];
    for (const c of cases) {
      const want = suricataTls(c.test);
      const run = await runCli(['tls', path.join(APP, c.file)]);
      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const r = JSON.parse(lines[0]!) as TlsJsonRecord;
      const { out } = await parseTlsCapture(path.join(APP, c.file));
      const der = out[0]!.certificates[0];
      const checks: Record<string, (v: string) => void> = {
        ja4: (v) => expect(r.ja4).toBe(v),
        sni: (v) => expect(r.clientHello?.sni).toBe(v),
        version: (v) => expect(v).toBe(`TLS 1.${r.serverHello!.version - 0x0301}`),
        subject: (v) => expect(r.certificates[0]!.subject).toBe(v),
        issuerdn: (v) => expect(r.certificates[0]!.issuer).toBe(v),
        'subjectaltname[0]': (v) => expect(r.certificates[0]!.sans[0]).toBe(`DNS:${v}`),
        serial: (v) => expect(r.certificates[0]!.serial).toBe(serialOf(v)),
        fingerprint: (v) => expect(sha1(der!)).toBe(v),
        notbefore: (v) => expect(r.certificates[0]!.notBefore).toBe(`${v}.000Z`),
        notafter: (v) => expect(r.certificates[0]!.notAfter).toBe(`${v}.000Z`),
        'client.serial': (v) => expect(r.clientCertificates[0]!.serial).toBe(serialOf(v)),
        'client.notbefore': (v) => expect(r.clientCertificates[0]!.notBefore).toBe(`${v}.000Z`),
        'client.notafter': (v) => expect(r.clientCertificates[0]!.notAfter).toBe(`${v}.000Z`),
      };
      expect(want.size).toBeGreaterThan(0);
      for (const [key, value] of want) {
        expect(checks[key], `a check for tls.${key}`).toBeDefined();
        checks[key]!(value);
      }
      expect(r.certificates[0]!.sha256).toBe(createHash('sha256').update(der!).digest('hex'));
      expect(r.complete).toBe(true);
    }
  });

  it('writes a line of text per connection with --format text', async () => {
    const run = await runCli(['tls', path.join(APP, 'tls/suricata-verify__tls-client-auth-certs.pcap'), '--format', 'text']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ conn 0 .* TLSv1\.2 cipher 0x[0-9a-f]{4} .*sni localhost .*ja4 t12d.* cert C=HU, .*CN=SampleServer \(\+1\)$/);
  });
});
