/**
 * TlsParser (src/core/tls.ts) on hand-built handshakes fed as stream events: record and
 * handshake reassembly at every split, several messages per record, HelloRetryRequest, GREASE,
 * the SSLv2-compatible hello, hostile lengths, gaps and cuts; JA4 against the worked example of
 * FoxIO's JA4.md, JA3 against salesforce/ja3's definition.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Direction, DirectionSummary, StreamEvent } from '../src/core/events.js';
import { isGrease, ja3String, ja4, ja4Alpn, TlsParser, type TlsRecord } from '../src/core/tls.js';
import { TlsLines, tlsJson, tlsText } from '../src/sinks/tls-sink.js';
import { CIPHERS, EXT_ORDER, GROUPS, SIGS, ascii, clientHello, ext, handshake, random, record, serverFlight, serverHello, sslv2Hello, u16, vec16, vec24, vec8 } from './helpers/tls-build.js';
import { nodeHashes } from './helpers/tls-capture.js';

const summary = (): DirectionSummary => ({ bytes: 0, packets: 0, retransmitted: 0, outOfOrder: 0, gaps: 0, missing: 0, overlaps: 0, firstTs: null, lastTs: null, capped: 0 });
const client = { ip: '10.0.0.1', port: 50000 };
const server = { ip: '10.0.0.2', port: 443 };
const open = (): StreamEvent => ({ type: 'open', conn: 7, ts: '1.000000000', client, server, vlan: [], midstream: false, options: { c2s: {}, s2c: {} } });
const close = (): StreamEvent => ({ type: 'close', conn: 7, ts: '9.000000000', reason: 'fin', client, server, vlan: [], c2s: summary(), s2c: summary() });

/** Stream events carrying `chunks` of each direction, in order, offsets counted. */
function stream(parts: Array<[Direction, number[]] | [Direction, 'gap', number]>, withClose = true): StreamEvent[] {
  const offset = { c2s: 0, s2c: 0 };
  const events: StreamEvent[] = [open()];
  for (const p of parts) {
    const dir = p[0];
    if (p[1] === 'gap') {
      events.push({ type: 'gap', conn: 7, dir, offset: offset[dir], len: p[2], ts: '2.000000000', reason: 'acked' });
      offset[dir] += p[2];
    } else {
      events.push({ type: 'data', conn: 7, dir, offset: offset[dir], ts: '2.000000000', data: Uint8Array.from(p[1]) });
      offset[dir] += p[1].length;
    }
  }
  if (withClose) events.push(close());
  return events;
}

function parse(events: StreamEvent[], options: { maxHandshakeBytes?: number } = {}): { out: TlsRecord[]; parser: TlsParser } {
  const parser = new TlsParser({ hashes: nodeHashes, ...options });
  const out: TlsRecord[] = [];
  parser.write(events, (o) => out.push(...o));
  parser.end((o) => out.push(...o));
  expect(parser.stats.heldBytes).toBe(0);
  return { out, parser };
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
const CH_RECORD = record(22, clientHello());
const SERVER_FLIGHT = serverFlight();

describe('TlsParser', () => {
  it('reads a ClientHello and fingerprints it as JA4.md and salesforce/ja3 define', () => {
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT], ['c2s', record(20, [1])]]));
    expect(out).toHaveLength(1);
    const r = out[0]!;
    expect(r.clientHello).toMatchObject({
      sslv2: false,
      legacyVersion: 0x0303,
      supportedVersions: [0x3a3a, 0x0304, 0x0303],
      ciphers: [0x1a1a, ...CIPHERS],
      extensions: [0x0a0a, ...EXT_ORDER],
      groups: [0x2a2a, ...GROUPS],
      pointFormats: [0],
      sigAlgs: SIGS,
      sni: 'example.com',
      alpn: ['h2', 'http/1.1'],
      ech: false,
      sessionTicket: 0,
      pskModes: [1],
      sessionId: '0909',
    });
    // JA4.md: "JA4 = t13d1516h2_8daaf6152771_e5627efa2ab1" and its JA4_r
    expect(r.ja4).toBe('t13d1516h2_8daaf6152771_e5627efa2ab1');
    expect(r.ja4_r).toBe(
      't13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601',
    );
    const ja3 = `771,${CIPHERS.join('-')},${EXT_ORDER.join('-')},${GROUPS.join('-')},0`;
    expect(r.ja3).toBe(ja3);
    expect(r.ja3Hash).toBe(md5(ja3));
    expect(r.serverHello).toEqual({ version: 0x0303, legacyVersion: 0x0303, cipher: 0xc02f, extensions: [0xff01, 0x0010], alpn: 'h2', sessionId: '' });
    expect(r.ja3s).toBe('771,49199,65281-16');
    expect(r.ja3sHash).toBe(md5('771,49199,65281-16'));
    expect(r.certificates.map((c) => [...c])).toEqual([[0x30, 1, 2], [0x30, 3]]);
    expect(r).toMatchObject({ complete: true, missing: [], errors: [], resumed: false, helloRetry: false, start: { c2s: 0, s2c: 0 } });
  });

  it('gives the same record at every split of the bytes into two segments, and of the hello into two records', () => {
    const whole = parse(stream([['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT]])).out;
    const hello = clientHello();
    for (let i = 1; i < CH_RECORD.length; i++) {
      const { out } = parse(stream([['c2s', CH_RECORD.slice(0, i)], ['c2s', CH_RECORD.slice(i)], ['s2c', SERVER_FLIGHT]]));
      expect(out, `segment split at ${i}`).toEqual(whole);
    }
    for (let i = 1; i < hello.length; i++) {
      const twoRecords = [...record(22, hello.slice(0, i)), ...record(22, hello.slice(i))];
      const { out } = parse(stream([['c2s', twoRecords], ['s2c', SERVER_FLIGHT]]));
      expect(out, `record split at ${i}`).toEqual(whole);
    }
    // one byte per segment
    const { out } = parse(stream([...CH_RECORD.map((b): [Direction, number[]] => ['c2s', [b]]), ...SERVER_FLIGHT.map((b): [Direction, number[]] => ['s2c', [b]])]));
    expect(out).toEqual(whole);
  });

  it('emits a TLS 1.3 record once the ServerHello came, before the connection ends', () => {
    const parser = new TlsParser({ hashes: nodeHashes });
    const out: TlsRecord[] = [];
    parser.write(stream([['c2s', CH_RECORD], ['s2c', [...record(22, serverHello({ version: 0x0304 })), ...record(20, [1]), ...record(23, [1, 2, 3])]]], false), (o) => out.push(...o));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ complete: true, resumed: false, serverHello: { version: 0x0304, legacyVersion: 0x0303 } });
    parser.write([close()], (o) => out.push(...o));
    expect(out).toHaveLength(1);
  });

  it('takes the ServerHello after a HelloRetryRequest, across the compatibility CCS', () => {
    const s2c = [...record(22, serverHello({ version: 0x0304, hrr: true })), ...record(20, [1]), ...record(22, serverHello({ version: 0x0304 }))];
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', s2c], ['c2s', record(22, clientHello([ext(0x0029, [0])]))]]));
    expect(out[0]).toMatchObject({ helloRetry: true, complete: true, serverHello: { version: 0x0304 }, ja4: 't13d1516h2_8daaf6152771_e5627efa2ab1' });
  });

  it('calls a session id echoed without certificates a resumption', () => {
    const s2c = [...record(22, serverHello({ sid: [9, 9] })), ...record(20, [1])];
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', s2c]]));
    expect(out[0]).toMatchObject({ resumed: true, complete: true, certificates: [] });
  });

  it('records plaintext alerts', () => {
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', record(21, [2, 40])]]));
    expect(out[0]).toMatchObject({ alerts: [{ dir: 's2c', level: 2, description: 40 }], missing: ['serverHello'], complete: false });
  });

  it('finds TLS behind a proxy preamble and leaves other connections alone', () => {
    const connect = ascii('CONNECT example.com:443 HTTP/1.1\r\n\r\n');
    const ok = ascii('HTTP/1.1 200 OK\r\n\r\n');
    const { out } = parse(stream([['c2s', connect], ['s2c', ok], ['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT]]));
    expect(out[0]).toMatchObject({ start: { c2s: connect.length, s2c: ok.length }, ja4: 't13d1516h2_8daaf6152771_e5627efa2ab1', complete: true });
    expect(parse(stream([['c2s', ascii('GET / HTTP/1.1\r\n\r\n')], ['s2c', ok]])).out).toEqual([]);
  });

  it('reads an SSLv2-compatible ClientHello and fingerprints it as tshark and FoxIO’s tool do', () => {
    const specs = [0x0700c0, 0x010080, 0x00002f, 0x000035];
    const v2 = sslv2Hello(specs);
    const { out } = parse(stream([['c2s', v2], ['s2c', SERVER_FLIGHT], ['c2s', record(22, handshake(16, [0, 2, 1, 1]))]]));
    expect(out[0]!.clientHello).toMatchObject({ sslv2: true, legacyVersion: 0x0301, ciphers: specs, extensions: [] });
    expect(out[0]).toMatchObject({ ja3: null, ja3Hash: null, ja4: 't10i000000_000000000000_000000000000', complete: true });
  });

  it('stops at a gap inside the ClientHello: a partial record, no fingerprint', () => {
    const { out } = parse(stream([['c2s', CH_RECORD.slice(0, 40)], ['c2s', 'gap', 20], ['c2s', CH_RECORD.slice(60)], ['s2c', SERVER_FLIGHT]]));
    expect(out[0]).toMatchObject({ clientHello: null, ja3: null, ja4: null, complete: false, missing: ['clientHello'], errors: [{ dir: 'c2s', code: 'GAP', offset: 40 }] });
    expect(out[0]!.serverHello).not.toBeNull();
  });

  it('reports a connection cut inside the server’s flight', () => {
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT.slice(0, 70)]]));
    expect(out[0]).toMatchObject({ serverHello: { cipher: 0xc02f }, complete: false, missing: ['certificates'], errors: [{ dir: 's2c', code: 'CUT' }] });
    expect(out[0]!.ja4).toBe('t13d1516h2_8daaf6152771_e5627efa2ab1');
  });

  it('gives coded errors for hostile lengths, holding no more than the caps', () => {
    const huge = [22, 3, 1, 0xff, 0xff];
    expect(parse(stream([['c2s', [...CH_RECORD, ...huge]]])).out[0]!.errors.map((e) => e.code)).toEqual(['RECORD_TOO_LARGE']);
    const bigMessage = [22, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff, ...new Array<number>(0x3ffc).fill(0)];
    const big = parse(stream([['c2s', bigMessage]]), { maxHandshakeBytes: 4096 });
    expect(big.out[0]).toMatchObject({ clientHello: null, errors: [{ code: 'HANDSHAKE_TOO_LARGE', offset: 5 }] });
    // a cipher list longer than the message
    const hello = clientHello();
    hello[4 + 2 + 32 + 3] = 0xff;
    expect(parse(stream([['c2s', record(22, hello)]])).out[0]).toMatchObject({ clientHello: null, ja4: null, errors: [{ code: 'BAD_HANDSHAKE' }] });
    expect(parse(stream([['c2s', [...CH_RECORD, 99, 3, 1, 0, 1, 0]]])).out[0]!.errors.map((e) => e.code)).toEqual(['BAD_RECORD']);
    // a record of 4 KiB promising a 16 MiB message holds less than the message: no more than the cap
    const parser = new TlsParser({ hashes: nodeHashes });
    parser.write(stream([['c2s', [22, 3, 1, 0x10, 0x00, 1, 0x00, 0xf0, 0x00, ...new Array<number>(0x0ffc).fill(0)]]], false), () => undefined);
    expect(parser.stats.heldBytes).toBeLessThanOrEqual(65536);
  });

  it('keeps at most maxCertificates of a chain', () => {
    const chain = Array.from({ length: 20 }, (_, i) => vec24([0x30, i])).flat();
    const s2c = record(22, [...serverHello(), ...handshake(11, vec24(chain)), ...handshake(14, [])]);
    const { out } = parse(stream([['c2s', CH_RECORD], ['s2c', s2c]]));
    expect(out[0]!.certificates).toHaveLength(16);
    expect(out[0]!.errors.map((e) => e.code)).toEqual(['TOO_MANY_CERTIFICATES']);
  });
});

describe('fingerprint pieces', () => {
  it('knows the 16 GREASE values', () => {
    const grease = Array.from({ length: 65536 }, (_, v) => v).filter(isGrease);
    expect(grease).toEqual(Array.from({ length: 16 }, (_, i) => ((i << 4) | 0x0a) * 0x101));
  });

  it('takes the ALPN characters as JA4.md says', () => {
    const l = (b: number[]): string => String.fromCharCode(...b);
    expect(ja4Alpn(undefined)).toBe('00');
    expect(ja4Alpn('')).toBe('00');
    expect(ja4Alpn('h2')).toBe('h2');
    expect(ja4Alpn('http/1.1')).toBe('h1');
    expect(ja4Alpn('h')).toBe('hh');
    expect(ja4Alpn(l([0xab]))).toBe('ab');
    expect(ja4Alpn(l([0xab, 0xcd]))).toBe('ad');
    expect(ja4Alpn(l([0x30, 0xab]))).toBe('3b');
    expect(ja4Alpn(l([0x30, 0x31, 0xab, 0xcd]))).toBe('3d');
    expect(ja4Alpn(l([0x30, 0xab, 0xcd, 0x31]))).toBe('01');
  });
});

describe('TlsTransform', () => {
  it('gives the core’s records through a stream', async () => {
    const { Readable } = await import('node:stream');
    const { TlsTransform } = await import('../src/transforms/tls-transform.js');
    const events = stream([['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT]]);
    const got: TlsRecord[] = [];
    for await (const batch of Readable.from([events.slice(0, 2), events.slice(2)]).pipe(new TlsTransform())) got.push(...(batch as TlsRecord[]));
    expect(got).toEqual(parse(events).out);
    expect(got[0]!.ja4).toBe('t13d1516h2_8daaf6152771_e5627efa2ab1');
  });
});

/** A deterministic pseudo-random sequence (xorshift32) for the generated hellos. */
function rng(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const GREASE = Array.from({ length: 16 }, (_, i) => ((i << 4) | 0x0a) * 0x101);

/** A connection per hello (conn 100 on), each with that ClientHello in a record, then its close. */
function connections(hellos: number[][]): StreamEvent[] {
  const events: StreamEvent[] = [];
  hellos.forEach((h, i) => {
    const conn = 100 + i;
    events.push({ ...(open() as Extract<StreamEvent, { type: 'open' }>), conn });
    events.push({ type: 'data', conn, dir: 'c2s', offset: 0, ts: `${i}.000000000`, data: Uint8Array.from(record(22, h)) });
    events.push({ ...(close() as Extract<StreamEvent, { type: 'close' }>), conn });
  });
  return events;
}

describe('fingerprints of many hellos', () => {
  it('gives each hello the JA3 and JA4 of its own fields, however many hellos of its kind came before', () => {
    const pick = rng(16);
    const shuffle = <T>(l: T[]): T[] => {
      const out = [...l];
      for (let i = out.length - 1; i > 0; i--) {
        const j = pick(i + 1);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    };
    const greased = (l: number[]): number[] => (pick(2) === 0 ? l : [GREASE[pick(16)]!, ...l]);
    const hellos: number[][] = [];
    for (let i = 0; i < 300; i++) {
      const ciphers = greased(pick(4) === 0 ? shuffle(CIPHERS) : pick(3) === 0 ? CIPHERS.slice(1) : CIPHERS);
      const alpn = [['h2', 'http/1.1'], ['http/1.1'], [], ['\xba\xad']][pick(4)]!;
      const exts: number[][] = [
        ext(0x0000, vec16([0, ...vec16(ascii(`host${pick(5)}.example`))])),
        ext(0x000a, vec16(greased(pick(5) === 0 ? GROUPS.slice(1) : GROUPS).flatMap(u16))),
        ext(0x000b, vec8(pick(5) === 0 ? [0, 1] : [0])),
        ext(0x000d, vec16((pick(5) === 0 ? [...SIGS].reverse() : SIGS).flatMap(u16))),
        ext(0x002b, vec8(greased(pick(4) === 0 ? [0x0303] : [0x0304, 0x0303]).flatMap(u16))),
      ];
      if (alpn.length > 0) exts.push(ext(0x0010, vec16(alpn.flatMap((a) => vec8(ascii(a))))));
      if (pick(3) === 0) exts.push(ext(GREASE[pick(16)]!, []));
      const order = pick(3) === 0 ? shuffle(exts) : exts;
      const legacy = pick(10) === 0 ? 0x0301 : 0x0303;
      hellos.push(handshake(1, [...u16(legacy), ...random, ...vec8([i & 255]), ...vec16(ciphers.flatMap(u16)), ...vec8([0]), ...vec16(order.flat())]));
    }
    const { out } = parse(connections(hellos));
    expect(out).toHaveLength(300);
    const sha256 = (t: string): string => createHash('sha256').update(t).digest('hex');
    for (const r of out) {
      const h = r.clientHello!;
      expect(r.ja3).toBe(ja3String(h));
      expect(r.ja3Hash).toBe(md5(ja3String(h)));
      expect({ ja4: r.ja4, ja4_r: r.ja4_r }).toEqual(ja4(h, sha256));
    }
    // kinds repeat (the parser's fingerprint cache is used) and differ (it is keyed right)
    const kinds = new Set(out.map((r) => `${r.ja3} ${r.ja4_r}`));
    expect(kinds.size).toBeGreaterThan(20);
    expect(kinds.size).toBeLessThan(250);
  });
});

describe('TlsLines', () => {
  it('writes each record as JSON.stringify(tlsJson(record)) does, and tlsText’s lines', () => {
    const odd = ['a"b', 'back\\slash', 'ctl\u0001\n', 'caf\u00e9', '\u00ba\u00ad', ''];
    const events = stream([['c2s', CH_RECORD], ['s2c', SERVER_FLIGHT], ['c2s', record(21, [2, 40])]]);
    const records: TlsRecord[] = [...parse(events).out, ...parse(stream([['c2s', CH_RECORD], ['s2c', 'gap', 10]])).out];
    for (const [i, text] of odd.entries()) {
      const r = structuredClone(records[0]!);
      r.conn = 1e9 + i;
      r.ts = i === 0 ? text : r.ts;
      r.client = { ip: text, port: 65535 };
      r.clientHello!.sni = text;
      r.clientHello!.alpn = [text, 'h2'];
      r.clientHello!.sessionTicket = i % 2 === 0 ? null : 70000 + i;
      r.clientHello!.ciphers = [...r.clientHello!.ciphers, 0x10000 + i, 2 ** 40];
      r.serverHello!.alpn = i % 2 === 0 ? null : text;
      r.start = { c2s: i, s2c: null };
      r.resumed = i % 3 === 0 ? null : i % 3 === 1;
      r.errors.push({ dir: 's2c', code: 'GAP', offset: 2 ** 33, message: text });
      r.missing.push('certificates');
      records.push(r);
    }
    expect(records[0]!.certificates.length > 0 && records[0]!.alerts.length > 0 && records[1]!.serverHello === null).toBe(true);
    const lines = new TlsLines();
    for (const r of records) lines.json(r);
    for (const r of records) lines.json(r); // certificates described once, then from the cache
    const json = records.map((r) => `${JSON.stringify(tlsJson(r))}\n`).join('');
    expect(lines.take().equals(Buffer.from(json + json))).toBe(true);
    for (const r of records) lines.text(r);
    expect(lines.take().toString()).toBe(records.map((r) => `${tlsText(r)}\n`).join(''));
    expect(lines.take().length).toBe(0);
  });
});
