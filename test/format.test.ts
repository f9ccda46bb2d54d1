import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatTs, type CloseEvent, type DataEvent, type Endpoint, type OpenEvent, type StreamEvent } from '../src/core/events.js';
import {
  encodeBase64,
  encodeHex,
  encodeUtf8Json,
  escapeText,
  fileNameAddress,
  flowBaseName,
  flowFileName,
  formatIpv6,
  ndjsonLine,
  parseIpv6,
  PURE_ENCODERS,
  TextFormatter,
} from '../src/core/format.js';
import { needTool } from './helpers/env.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** unescape inverts escapeText, so a round trip proves the escaping is unambiguous. */
function unescape(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    const n = s[i + 1];
    if (n === '\\') {
      out.push(0x5c);
      i += 1;
    } else if (n === 'r') {
      out.push(0x0d);
      i += 1;
    } else if (n === 'x') {
      out.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else throw new Error(`bad escape at ${i}`);
  }
  return Uint8Array.from(out);
}

describe('escapeText', () => {
  it('keeps printable text, newlines and tabs, escapes the rest', () => {
    expect(escapeText(bytes('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toBe('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(escapeText(bytes('a\tb\nc'))).toBe('a\tb\nc');
    expect(escapeText(Uint8Array.from([0x00, 0x41, 0x1b, 0x5b, 0x7f, 0xff]))).toBe('\\x00A\\x1b[\\x7f\\xff');
    expect(escapeText(bytes('back\\slash'))).toBe('back\\\\slash');
    // a lone CR (no LF after it in the chunk) could overwrite the line on a terminal
    expect(escapeText(bytes('abc\rxy'))).toBe('abc\\rxy');
    expect(escapeText(bytes('end\r'))).toBe('end\\r');
    expect(escapeText(Uint8Array.from([0xc3, 0xa9]))).toBe('\\xc3\\xa9');
    expect(escapeText(new Uint8Array(0))).toBe('');
  });

  it('handles long runs (decoder path) and views with an offset', () => {
    const long = 'x'.repeat(5000) + '\x01' + 'y'.repeat(100);
    expect(escapeText(bytes(long))).toBe('x'.repeat(5000) + '\\x01' + 'y'.repeat(100));
    const buf = bytes('0123456789');
    expect(escapeText(buf.subarray(3, 6))).toBe('345');
  });

  it('output is ASCII without control bytes other than \\n, \\t and the CR of a CRLF, and round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        const s = escapeText(data);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          const ok = (c >= 0x20 && c <= 0x7e) || c === 0x0a || c === 0x09 || (c === 0x0d && s[i + 1] === '\n');
          expect(ok).toBe(true);
        }
        expect(unescape(s)).toEqual(data);
      }),
      { seed: 20240503, numRuns: 300 },
    );
  });
});

describe('payload encoders', () => {
  it('pure base64 and hex equal Node Buffer encodings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        expect(encodeBase64(data)).toBe(Buffer.from(data).toString('base64'));
        expect(encodeHex(data)).toBe(Buffer.from(data).toString('hex'));
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('utf8 is JSON-escaped text, lossy on invalid bytes', () => {
    expect(encodeUtf8Json(bytes('héllo "q"\n'))).toBe('héllo \\"q\\"\\n');
    expect(encodeUtf8Json(Uint8Array.from([0x41, 0xff, 0x42]))).toBe('A\uFFFDB');
    expect(encodeUtf8Json(Uint8Array.from([0x00]))).toBe('\\u0000');
  });
});

const client: Endpoint = { ip: '10.0.0.1', port: 43210 };
const server: Endpoint = { ip: '10.0.0.2', port: 80 };
const summary = (bytesN: number) => ({
  bytes: bytesN,
  packets: 3,
  retransmitted: 0,
  outOfOrder: 1,
  gaps: 0,
  missing: 0,
  overlaps: 0,
  firstTs: '1.000000000',
  lastTs: '2.000000000',
  capped: 0,
});
const openEv: OpenEvent = {
  type: 'open',
  conn: 3,
  ts: '1258544215.037210000',
  client,
  server,
  vlan: [],
  midstream: false,
  options: { c2s: { mss: 1460, wscale: 7, sackPermitted: true }, s2c: {} },
};
const dataEv = (dir: 'c2s' | 's2c', offset: number, s: string, conn = 3): DataEvent => ({
  type: 'data',
  conn,
  dir,
  offset,
  ts: '1258544215.100000000',
  data: bytes(s),
});
const closeEv: CloseEvent = {
  type: 'close',
  conn: 3,
  ts: '1258544216.000000000',
  reason: 'fin',
  client,
  server,
  vlan: [],
  c2s: summary(5),
  s2c: { ...summary(0), firstTs: null, lastTs: null },
};

describe('ndjsonLine', () => {
  it('renders every event type with the events.ts field names, ts as a string', () => {
    expect(ndjsonLine(openEv, PURE_ENCODERS.base64)).toBe(
      '{"type":"open","conn":3,"ts":"1258544215.037210000","client":{"ip":"10.0.0.1","port":43210},' +
        '"server":{"ip":"10.0.0.2","port":80},"vlan":[],"midstream":false,' +
        '"options":{"c2s":{"mss":1460,"wscale":7,"sackPermitted":true},"s2c":{}}}\n',
    );
    expect(ndjsonLine(dataEv('c2s', 0, 'hello'), PURE_ENCODERS.base64)).toBe(
      '{"type":"data","conn":3,"dir":"c2s","offset":0,"ts":"1258544215.100000000","len":5,"data":"aGVsbG8="}\n',
    );
    expect(ndjsonLine(dataEv('s2c', 7, 'hi'), PURE_ENCODERS.hex)).toContain('"len":2,"data":"6869"}');
    expect(ndjsonLine({ type: 'gap', conn: 3, dir: 's2c', offset: 10, len: 4, ts: '1.000000000', reason: 'acked' }, PURE_ENCODERS.hex)).toBe(
      '{"type":"gap","conn":3,"dir":"s2c","offset":10,"len":4,"ts":"1.000000000","reason":"acked"}\n',
    );
    expect(ndjsonLine({ type: 'overlap', conn: 3, dir: 'c2s', offset: 1, len: 3, ts: '1.000000000', kept: 'last' }, PURE_ENCODERS.hex)).toBe(
      '{"type":"overlap","conn":3,"dir":"c2s","offset":1,"len":3,"ts":"1.000000000","kept":"last"}\n',
    );
    const close = JSON.parse(ndjsonLine(closeEv, PURE_ENCODERS.base64)) as Record<string, unknown>;
    expect(close).toEqual({ ...closeEv });
    expect(Object.keys(close)).toEqual(['type', 'conn', 'ts', 'reason', 'client', 'server', 'vlan', 'c2s', 's2c']);
  });

  it('every line parses back to the event (data decoded), whatever the encoding', () => {
    const events: StreamEvent[] = [openEv, dataEv('c2s', 0, 'a "quoted"\n\u0001 line'), closeEv];
    for (const enc of ['base64', 'hex', 'utf8'] as const) {
      for (const e of events) {
        const line = ndjsonLine(e, PURE_ENCODERS[enc]);
        expect(line.endsWith('\n')).toBe(true);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        const o = JSON.parse(line) as Record<string, unknown>;
        if (e.type === 'data') {
          const d = o.data as string;
          const back = enc === 'base64' ? Buffer.from(d, 'base64') : enc === 'hex' ? Buffer.from(d, 'hex') : Buffer.from(d, 'utf8');
          expect(new Uint8Array(back)).toEqual(e.data);
          expect(o.len).toBe(e.data.length);
        } else {
          expect(o).toEqual({ ...e });
        }
      }
    }
  });
});

describe('TextFormatter', () => {
  it('shows a header, data under sender => receiver lines, gaps and the close', () => {
    const f = new TextFormatter();
    const out =
      f.format([openEv, dataEv('c2s', 0, 'GET /\r\n'), dataEv('c2s', 7, 'more'), dataEv('s2c', 0, 'HTTP\x00')]) +
      f.format([{ type: 'gap', conn: 3, dir: 's2c', offset: 5, len: 10, ts: '2.000000000', reason: 'fin' }, closeEv]) +
      f.end();
    expect(out).toBe(
      '=== conn 3 open 10.0.0.1:43210 => 10.0.0.2:80 vlan=none midstream=no ts=1258544215.037210000\n' +
        '--- conn 3 10.0.0.1:43210 => 10.0.0.2:80 offset=0 ts=1258544215.100000000\n' +
        'GET /\r\nmore\n' +
        '--- conn 3 10.0.0.2:80 => 10.0.0.1:43210 offset=0 ts=1258544215.100000000\n' +
        'HTTP\\x00\n' +
        '!!! conn 3 s2c gap offset=5 len=10 reason=fin ts=2.000000000\n' +
        '=== conn 3 close reason=fin ts=1258544216.000000000 c2s: bytes=5 packets=3 retransmitted=0 outOfOrder=1 gaps=0 missing=0 overlaps=0; ' +
        's2c: bytes=0 packets=3 retransmitted=0 outOfOrder=1 gaps=0 missing=0 overlaps=0\n',
    );
  });

  it('filters by direction, brackets IPv6, shows VLAN and midstream', () => {
    const f = new TextFormatter('s2c');
    const open6: OpenEvent = {
      ...openEv,
      conn: 1,
      client: { ip: '2001:db8::1', port: 5000 },
      server: { ip: '2001:db8::2', port: 443 },
      vlan: [100, 7],
      midstream: true,
    };
    const out = f.format([open6, dataEv('c2s', 0, 'hidden', 1), dataEv('s2c', 0, 'shown\n', 1)]) + f.end();
    expect(out).toBe(
      '=== conn 1 open [2001:db8::1]:5000 => [2001:db8::2]:443 vlan=100.7 midstream=yes ts=1258544215.037210000\n' +
        '--- conn 1 [2001:db8::2]:443 => [2001:db8::1]:5000 offset=0 ts=1258544215.100000000\nshown\n',
    );
  });

  it('interleaved connections each get their own header line', () => {
    const f = new TextFormatter();
    const out = f.format([openEv, { ...openEv, conn: 4 }, dataEv('c2s', 0, 'a', 3), dataEv('c2s', 0, 'b', 4), dataEv('c2s', 1, 'c', 3)]);
    expect(out.split('\n').filter((l) => l.startsWith('--- '))).toHaveLength(3);
  });
});

// File names: each expected name below is one tcpflow 1.6.1 wrote, with
//   tcpflow -r ../shared/pcaps/<capture> -o <tmpdir>
// and the endpoints as tshark prints them for the same capture
//   tshark -r <capture> -Y 'tcp.len>0' -T fields -e ipv6.src -e tcp.srcport -e ipv6.dst -e tcp.dstport
describe('tcpflow file names', () => {
  const ep = (ip: string, port: number): Endpoint => ({ ip, port });

  it('IPv4: octets padded to 3 digits, ports to 5 (arkime__tcp-reassembly-scenarios.pcap)', () => {
    expect(flowBaseName(ep('10.180.156.1', 40001), ep('10.180.156.2', 80), [])).toBe('010.180.156.001.40001-010.180.156.002.00080');
    expect(flowBaseName(ep('10.180.156.2', 80), ep('10.180.156.1', 40001), [])).toBe('010.180.156.002.00080-010.180.156.001.40001');
    expect(flowBaseName(ep('192.168.1.2', 1234), ep('10.0.0.1', 80), [])).toBe('192.168.001.002.01234-010.000.000.001.00080');
  });

  it('reused 4-tuple: c<N> on the second file of the same name (arkime__tcp-reassembly-scenarios.pcap, port 40008)', () => {
    const base = flowBaseName(ep('10.180.156.1', 40008), ep('10.180.156.2', 80), []);
    expect(flowFileName(base, 0)).toBe('010.180.156.001.40008-010.180.156.002.00080');
    expect(flowFileName(base, 1)).toBe('010.180.156.001.40008-010.180.156.002.00080c1');
  });

  it('IPv6 as inet_ntop prints it (tcpflow__ipv6-http-ethernet.pcap)', () => {
    const a = ep('2001:6f8:102d:0:2d0:9ff:fee3:e8de', 59201);
    const b = ep('2001:6f8:900:7c0::2', 80);
    expect(flowBaseName(a, b, [])).toBe('2001:6f8:102d:0:2d0:9ff:fee3:e8de.59201-2001:6f8:900:7c0::2.00080');
    expect(flowBaseName(b, a, [])).toBe('2001:6f8:900:7c0::2.00080-2001:6f8:102d:0:2d0:9ff:fee3:e8de.59201');
  });

  it('IPv6 (pcapplusplus__dlt12-raw-ipv6-4-http.pcap)', () => {
    const cases: [Endpoint, Endpoint, string][] = [
      [ep('2001:618:1:8000::5', 80), ep('2001:618:400::5199:cc70', 35995), '2001:618:1:8000::5.00080-2001:618:400::5199:cc70.35995'],
      [ep('2001:618:400::5199:cc70', 35997), ep('2001:618:1:8000::5', 80), '2001:618:400::5199:cc70.35997-2001:618:1:8000::5.00080'],
      [
        ep('2001:618:400::5199:cc70', 40426),
        ep('2001:638:902:1:202:b3ff:feee:5dc2', 80),
        '2001:618:400::5199:cc70.40426-2001:638:902:1:202:b3ff:feee:5dc2.00080',
      ],
      [
        ep('2001:638:902:1:202:b3ff:feee:5dc2', 80),
        ep('2001:618:400::5199:cc70', 40426),
        '2001:638:902:1:202:b3ff:feee:5dc2.00080-2001:618:400::5199:cc70.40426',
      ],
    ];
    for (const [s, d, name] of cases) expect(flowBaseName(s, d, [])).toBe(name);
  });

  it('VLAN adds --<outermost id> (suricata-verify__tcp-gap.pcap, zeek__http-get-qinqinq.pcap)', () => {
    // tcp-gap: one tag, id 6
    expect(flowBaseName(ep('1.1.1.1', 12345), ep('2.2.2.2', 8080), [6])).toBe('001.001.001.001.12345-002.002.002.002.08080--6');
    // qinqinq: tags 30, 20, 10 (outermost first): tcpflow wrote --30
    expect(flowBaseName(ep('141.142.228.5', 59856), ep('192.150.187.43', 80), [30, 20, 10])).toBe(
      '141.142.228.005.59856-192.150.187.043.00080--30',
    );
    // zeek__http-get-vlan.pcap: tag PCP 5, DEI 1, id 0. tcpflow wrote
    // 141.142.228.005.59856-192.150.187.043.00080--45056 (the whole tag field, 0xb000);
    // pcapflow uses the VLAN id: a documented difference.
    expect(flowBaseName(ep('141.142.228.5', 59856), ep('192.150.187.43', 80), [0])).toBe('141.142.228.005.59856-192.150.187.043.00080--0');
    // mixed-vlan-mpls: id 4093 with a reuse counter
    expect(flowFileName(flowBaseName(ep('10.0.0.15', 80), ep('10.20.80.1', 50343), [4093]), 1)).toBe(
      '010.000.000.015.00080-010.020.080.001.50343--4093c1',
    );
  });

  it('IPv4 names built byte by byte equal the octets and ports padded as text; malformed quads still rejected', () => {
    const pad = (n: number, w: number): string => String(n).padStart(w, '0');
    const quad = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
    fc.assert(
      fc.property(quad, fc.nat(65535), quad, fc.nat(65535), (a, ap, b, bp) => {
        const name = flowBaseName(ep(a.join('.'), ap), ep(b.join('.'), bp), []);
        expect(name).toBe(`${a.map((o) => pad(o, 3)).join('.')}.${pad(ap, 5)}-${b.map((o) => pad(o, 3)).join('.')}.${pad(bp, 5)}`);
      }),
      { seed: 7, numRuns: 500 },
    );
    for (const bad of ['1.2.3', '1.2.3.4.5', '1.2.3.256', '1..2.3', '1.2.3.0004', '1.2.3.a', '']) {
      expect(() => flowBaseName(ep(bad, 1), ep('1.2.3.4', 2), []), bad).toThrow();
    }
  });

  it('normalises any IPv6 text form; rejects what is not an address', () => {
    expect(fileNameAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(fileNameAddress('::ffff:1.2.3.4')).toBe('::ffff:1.2.3.4');
    expect(fileNameAddress('::ffff:0102:0304')).toBe('::ffff:1.2.3.4');
    expect(fileNameAddress('::1.2.3.4')).toBe('::1.2.3.4');
    expect(fileNameAddress('::1')).toBe('::1');
    expect(fileNameAddress('::')).toBe('::');
    expect(fileNameAddress('fe80::')).toBe('fe80::');
    expect(fileNameAddress('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(fileNameAddress('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4');
    for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', '12345::', 'x', '1:2:3:4:5:6:7:8:9', '::1.2.3']) {
      expect(() => fileNameAddress(bad)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });

  it('formatIpv6 agrees with the C library inet_ntop (through python3 socket.inet_ntop)', () => {
    if (!needTool('python3')) return;
    const word = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
    const samples = fc.sample(fc.array(word, { minLength: 8, maxLength: 8 }), { seed: 99, numRuns: 400 });
    samples.push([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304], [0, 0, 0, 0, 0, 0, 0x0102, 0x0304], [0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]);
    const hex = samples.map((w) => w.map((x) => x.toString(16).padStart(4, '0')).join('')).join('\n');
    const script = 'import socket,sys\nfor l in sys.stdin.read().split():\n print(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(l)))';
    const expected = execFileSync('python3', ['-c', script], { input: hex }).toString().trim().split('\n');
    expect(samples.map((w) => formatIpv6(w))).toEqual(expected);
    for (const w of samples) expect(parseIpv6(formatIpv6(w))).toEqual(w);
  });
});

describe('formatTs', () => {
  it('renders seconds and 9 digits of nanoseconds, whatever came before', () => {
    expect(formatTs(1258544215, 37210000)).toBe('1258544215.037210000');
    expect(formatTs(1258544215, 999999999)).toBe('1258544215.999999999');
    expect(formatTs(1258544216, 0)).toBe('1258544216.000000000');
    expect(formatTs(0, 5)).toBe('0.000000005');
    expect(formatTs(1258544216, 123456789)).toBe('1258544216.123456789');
    expect(formatTs(1258544215, 1)).toBe('1258544215.000000001');
  });
});
