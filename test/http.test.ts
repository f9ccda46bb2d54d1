/**
 * The HTTP/1.x message parser (src/core/http.ts) on stream events made here: framing, pairing,
 * lenient forms, tunnels, limits, and what it does at gaps (skip and count inside a body of known
 * length, resync at the next start line otherwise); every case also fed one byte per data event,
 * which must give the same transactions.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Direction, StreamEvent } from '../src/core/events.js';
import { HttpParser, type HttpEvent } from '../src/core/http.js';
import { HttpRecords, type HttpTransactionRecord } from '../src/core/http-records.js';
import { HttpTransform } from '../src/transforms/http-transform.js';

const enc = new TextEncoder();

/** Builds one connection's stream events. */
class Conn {
  readonly events: StreamEvent[] = [];
  private readonly offset = { c2s: 0, s2c: 0 };
  constructor(
    readonly conn = 0,
    midstream = false,
  ) {
    this.events.push({ type: 'open', conn, ts: '1.000000000', client: { ip: '10.0.0.1', port: 40000 }, server: { ip: '10.0.0.2', port: 80 }, vlan: [], midstream, options: { c2s: {}, s2c: {} } });
  }
  data(dir: Direction, text: string | Uint8Array): this {
    const data = typeof text === 'string' ? enc.encode(text) : text;
    this.events.push({ type: 'data', conn: this.conn, dir, offset: this.offset[dir], ts: '1.000000000', len: data.length, data } as StreamEvent);
    this.offset[dir] += data.length;
    return this;
  }
  c2s(text: string | Uint8Array): this {
    return this.data('c2s', text);
  }
  s2c(text: string | Uint8Array): this {
    return this.data('s2c', text);
  }
  gap(dir: Direction, len: number): this {
    this.events.push({ type: 'gap', conn: this.conn, dir, offset: this.offset[dir], len, ts: '1.000000000', reason: 'acked' } as StreamEvent);
    this.offset[dir] += len;
    return this;
  }
  close(): this {
    this.events.push({ type: 'close', conn: this.conn, ts: '2.000000000', reason: 'fin' } as unknown as StreamEvent);
    return this;
  }
}

function parse(events: readonly StreamEvent[], options = {}): { out: HttpEvent[]; parser: HttpParser } {
  const parser = new HttpParser(options);
  const out: HttpEvent[] = [];
  parser.write(events, (b) => out.push(...b));
  parser.end((b) => out.push(...b));
  return { out, parser };
}

/** bytewise: the same events with every data event cut into one-byte events. */
function bytewise(events: readonly StreamEvent[]): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const e of events) {
    if (e.type !== 'data') out.push(e);
    else for (let i = 0; i < e.data.length; i++) out.push({ ...e, offset: e.offset + i, data: e.data.subarray(i, i + 1) });
  }
  return out;
}

/** summary: the transactions as lines, bodies joined per message (so how data was cut does not show). */
function summary(out: readonly HttpEvent[]): string[] {
  const lines: string[] = [];
  const bodies = new Map<string, { at: number; parts: string[] }>();
  const dec = new TextDecoder('latin1');
  for (const e of out) {
    if (e.type === 'http_request') lines.push(`req ${e.conn}#${e.seq} ${e.method} ${e.uri} ${e.version} [${e.headers.map(([n, v]) => `${n}=${v}`).join('|')}]${e.afterResync ? ' resynced' : ''}`);
    else if (e.type === 'http_response') lines.push(`res ${e.conn}#${e.seq} ${e.status} ${e.reason} -> ${e.request}${e.interim ? ' interim' : ''}${e.afterResync ? ' resynced' : ''}`);
    else if (e.type === 'http_body') {
      const key = `${e.conn} ${e.dir}#${e.seq}`;
      let b = bodies.get(key);
      if (b === undefined) {
        b = { at: lines.length, parts: [] };
        bodies.set(key, b);
        lines.push('');
      }
      b.parts.push(`@${e.offset}:${dec.decode(e.data)}`);
    } else if (e.type === 'http_end') {
      lines.push(`end ${e.conn} ${e.dir}#${e.seq} ${e.framing} body=${e.bodyBytes} missing=${e.missing} ${e.complete ? 'complete' : 'incomplete'} ${e.reason}${e.trailers.length > 0 ? ` trailers=${e.trailers.map(([n, v]) => `${n}=${v}`).join('|')}` : ''}`);
    } else if (e.type === 'http_resync') lines.push(`resync ${e.conn} ${e.dir} @${e.offset} skipped=${e.skipped} lost=${e.lost}`);
    else if (e.type === 'http_tunnel') lines.push(`tunnel ${e.conn} ${e.reason} ${e.target}`);
    else if (e.type === 'http_close') continue;
    else if (e.type === 'http_error') lines.push(`error ${e.conn} ${e.dir} ${e.code}`);
  }
  for (const [key, b] of bodies) {
    // join pieces that follow each other (how the data was cut), keep the offsets of pieces after a hole
    const joined: string[] = [];
    let next = -1;
    for (const p of b.parts) {
      const m = /^@(\d+):([\s\S]*)$/.exec(p)!;
      const off = Number(m[1]);
      if (off === next) joined[joined.length - 1] += m[2]!;
      else joined.push(`@${off}:${m[2]!}`);
      next = off + m[2]!.length;
    }
    lines[b.at] = `body ${key} ${joined.join(' ')}`;
  }
  return lines;
}

/** responses: the lines about the server's side only. */
const responses = (lines: string[]): string[] => lines.filter((l) => !l.startsWith('req') && !l.includes(' c2s'));

/** check: the summary of `c`, which must be the same when fed byte by byte. */
function check(c: Conn, options = {}): string[] {
  const whole = summary(parse(c.events, options).out);
  expect(summary(parse(bytewise(c.events), options).out)).toEqual(whole);
  return whole;
}

describe('HttpParser: framing and pairing', () => {
  it('keep-alive and pipelining: responses matched to requests in order', () => {
    const c = new Conn()
      .c2s('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
      .close();
    expect(check(c)).toEqual([
      'req 0#0 GET /a HTTP/1.1 [Host=x]',
      'end 0 c2s#0 none body=0 missing=0 complete ok',
      'req 0#1 GET /b HTTP/1.1 [Host=x]',
      'end 0 c2s#1 none body=0 missing=0 complete ok',
      'res 0#0 200 OK -> 0',
      'body 0 s2c#0 @0:hello',
      'end 0 s2c#0 length body=5 missing=0 complete ok',
      'res 0#1 404 Not Found -> 1',
      'end 0 s2c#1 none body=0 missing=0 complete ok',
    ]);
  });

  it('a POST body by Content-Length; a chunked response with extensions and trailers', () => {
    const c = new Conn()
      .c2s('POST /up HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world')
      .s2c('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nabcde\r\n3\r\nfgh\r\n0\r\nX-Sum: 9\r\n\r\n')
      .close();
    expect(check(c)).toEqual([
      'req 0#0 POST /up HTTP/1.1 [Content-Length=11]',
      'body 0 c2s#0 @0:hello world',
      'end 0 c2s#0 length body=11 missing=0 complete ok',
      'res 0#0 200 OK -> 0',
      'body 0 s2c#0 @0:abcdefgh',
      'end 0 s2c#0 chunked body=8 missing=0 complete ok trailers=X-Sum=9',
    ]);
  });

  it('no body for HEAD, 204 and 304; 100-continue is interim; read until close', () => {
    const c = new Conn()
      .c2s('HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nPUT /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nokGET /c HTTP/1.0\r\n\r\n')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n')
      .s2c('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n')
      .s2c('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n')
      .s2c('HTTP/1.0 200 OK\r\n\r\nuntil the end')
      .close();
    const lines = check(c).filter((l) => !l.startsWith('end 0 c2s'));
    expect(lines).toEqual([
      'req 0#0 HEAD /h HTTP/1.1 []',
      'req 0#1 GET /n HTTP/1.1 []',
      'req 0#2 GET /m HTTP/1.1 []',
      'req 0#3 PUT /p HTTP/1.1 [Expect=100-continue|Content-Length=2]',
      'body 0 c2s#3 @0:ok',
      'req 0#4 GET /c HTTP/1.0 []',
      'res 0#0 200 OK -> 0',
      'end 0 s2c#0 none body=0 missing=0 complete ok',
      'res 0#1 204 No Content -> 1',
      'end 0 s2c#1 none body=0 missing=0 complete ok',
      'res 0#2 304 Not Modified -> 2',
      'end 0 s2c#2 none body=0 missing=0 complete ok',
      'res 0#3 100 Continue -> 3 interim',
      'end 0 s2c#3 none body=0 missing=0 complete ok',
      'res 0#4 201 Created -> 3',
      'end 0 s2c#4 none body=0 missing=0 complete ok',
      'res 0#5 200 OK -> 4',
      'body 0 s2c#5 @0:until the end',
      'end 0 s2c#5 close body=13 missing=0 complete ok',
    ]);
  });

  it('CONNECT 2xx and 101 Upgrade: the rest is a tunnel, counted and not parsed', () => {
    const a = new Conn(0).c2s('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01junk').s2c('HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03more').close();
    const b = new Conn(1).c2s('GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n').s2c('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello').c2s('\x81\x85mask').close();
    const { out, parser } = parse([...a.events, ...b.events]);
    expect(summary(out).filter((l) => l.startsWith('tunnel') || l.startsWith('res') || l.startsWith('error'))).toEqual([
      'res 0#0 200 Connection established -> 0',
      'tunnel 0 connect example.com:443',
      'res 1#0 101 Switching Protocols -> 0',
      'tunnel 1 upgrade websocket',
    ]);
    expect(parser.stats.tunnels).toBe(2);
    expect(parser.stats.tunnelBytes).toBe(7 + 7 + 8 + 8); // TextEncoder makes \x81 and \x85 two bytes each
    expect(summary(parse(bytewise([...a.events, ...b.events])).out)).toEqual(summary(out));
  });

  // found by the netns HTTP oracle (test/http-netns.test.ts): the CONNECT record had no tunnel,
  // because the response's end (which emits the record) came before the tunnel event
  it('the tunnel event comes before the response that opens it ends, so the transaction record carries it', () => {
    const a = new Conn(0).c2s('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01junk').s2c('HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03more').close();
    const b = new Conn(1).c2s('GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n').s2c('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello').close();
    const { out } = parse([...a.events, ...b.events]);
    for (const conn of [0, 1]) {
      const order = out.filter((e) => e.conn === conn && (e.type === 'http_tunnel' || (e.type === 'http_end' && e.dir === 's2c'))).map((e) => e.type);
      expect(order, `conn ${conn}`).toEqual(['http_tunnel', 'http_end']);
    }
    const records = new HttpRecords(() => ({ update: () => undefined, hex: () => '' }));
    const got: HttpTransactionRecord[] = [];
    records.write(out, (r) => got.push(...(r as HttpTransactionRecord[])));
    records.end((r) => got.push(...(r as HttpTransactionRecord[])));
    expect(got.map((r) => [r.conn, r.request.method, r.response?.status, r.tunnel])).toEqual([
      [0, 'CONNECT', 200, { reason: 'connect', target: 'example.com:443' }],
      [1, 'GET', 101, { reason: 'upgrade', target: 'websocket' }],
    ]);
  });

  it('the lenient forms real peers send: bare LF, obs-fold, runs of spaces, empty lines first', () => {
    const c = new Conn()
      .c2s('\r\n\nGET  /x   HTTP/1.1\nHost: h\nX-Long: one\n  two\n\tthree\n\n')
      .s2c('HTTP/1.1 200\nContent-Length:3\n\nabc')
      .close();
    expect(check(c)).toEqual([
      'req 0#0 GET /x HTTP/1.1 [Host=h|X-Long=one two three]',
      'end 0 c2s#0 none body=0 missing=0 complete ok',
      'res 0#0 200  -> 0',
      'body 0 s2c#0 @0:abc',
      'end 0 s2c#0 length body=3 missing=0 complete ok',
    ]);
  });

  it('leaves a connection that does not start with a request line alone', () => {
    const { out, parser } = parse(new Conn().c2s('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03').s2c('\x16\x03\x03\x00\x5a').close().events);
    expect(out).toEqual([]);
    expect(parser.stats.notHttp).toBe(1);
  });
});

describe('HttpParser at gaps', () => {
  it('a gap inside a body of known length is skipped and counted; the next message is parsed', () => {
    const c = new Conn()
      .c2s('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab')
      .gap('s2c', 5)
      .s2c('hij')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nzz')
      .close();
    expect(responses(check(c))).toEqual([
      'res 0#0 200 OK -> 0',
      'body 0 s2c#0 @0:ab @7:hij',
      'end 0 s2c#0 length body=5 missing=5 incomplete gap',
      'res 0#1 200 OK -> 1',
      'body 0 s2c#1 @0:zz',
      'end 0 s2c#1 length body=2 missing=0 complete ok',
    ]);
  });

  // found by the netns HTTP oracle (test/http-netns.test.ts): the reassembler holds the client's
  // bytes after a hole until it gives the hole up, while the server's responses go on, so a
  // response can come before the request it answers; it must wait for it (its framing depends on
  // it: here a HEAD), not answer none and shift every pairing after it
  it('a response that comes before its request (the client held behind a gap) waits for it', () => {
    const c = new Conn()
      .c2s('POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n123')
      .s2c('HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc')
      .gap('c2s', 4)
      .c2s('890HEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n')
      .close();
    // each direction in order (fed byte by byte, the held responses go out after the HEAD alone)
    const sides = (lines: string[]): string[] => [...lines.filter((l) => !responses([l]).length), ...responses(lines)];
    for (const events of [c.events, bytewise(c.events)]) {
      expect(sides(summary(parse(events).out))).toEqual([
        'req 0#0 POST /a HTTP/1.1 [Content-Length=10]',
        'body 0 c2s#0 @0:123 @7:890',
        'end 0 c2s#0 length body=6 missing=4 incomplete gap',
        'req 0#1 HEAD /b HTTP/1.1 []',
        'end 0 c2s#1 none body=0 missing=0 complete ok',
        'req 0#2 GET /c HTTP/1.1 []',
        'end 0 c2s#2 none body=0 missing=0 complete ok',
        'res 0#0 201 Created -> 0',
        'body 0 s2c#0 @0:ok',
        'end 0 s2c#0 length body=2 missing=0 complete ok',
        'res 0#1 200 OK -> 1',
        'end 0 s2c#1 none body=0 missing=0 complete ok',
        'res 0#2 200 OK -> 2',
        'body 0 s2c#2 @0:abc',
        'end 0 s2c#2 length body=3 missing=0 complete ok',
      ]);
    }
  });

  it('a response no request comes for is parsed at the end as answering none; a midstream one does not wait', () => {
    const unanswered = new Conn().c2s('GET /a HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx').s2c('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n').close();
    expect(responses(check(unanswered))).toEqual([
      'res 0#0 200 OK -> 0',
      'body 0 s2c#0 @0:x',
      'end 0 s2c#0 length body=1 missing=0 complete ok',
      'res 0#1 408 Request Timeout -> null',
      'end 0 s2c#1 none body=0 missing=0 complete ok',
    ]);
    const { parser } = parse(unanswered.events);
    expect(parser.stats.heldBytes).toBe(0);
    // bounded: past maxHeaderBytes held, the response is parsed at once
    const long = new Conn().c2s('GET /a HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').s2c(`HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n${'y'.repeat(200)}`);
    const held = new HttpParser({ maxHeaderBytes: 128 });
    const got: HttpEvent[] = [];
    held.write(long.events, (o) => got.push(...o));
    expect(got.filter((e) => e.type === 'http_response').map((e) => (e.type === 'http_response' ? e.request : -1))).toEqual([0, null]);
    expect(held.stats.heldBytes).toBe(0);
  });

  it('a gap inside a chunk is skipped and counted, the chunk framing goes on', () => {
    const c = new Conn().c2s('GET / HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01').gap('s2c', 4).s2c('6789\r\n0\r\n\r\n').close();
    expect(check(c).filter((l) => l.includes('s2c'))).toEqual(['body 0 s2c#0 @0:01 @6:6789', 'end 0 s2c#0 chunked body=6 missing=4 incomplete gap']);
  });

  it('a gap in the headers resyncs at the next request line, counting the request lost', () => {
    const c = new Conn()
      .c2s('GET /one HTTP/1.1\r\nHost: a\r\nCook')
      .gap('c2s', 100)
      .c2s('ie: x\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n')
      .close();
    const { out, parser } = parse(c.events);
    expect(summary(out)).toEqual(['resync 0 c2s @141 skipped=109 lost=1', 'req 0#0 GET /two HTTP/1.1 [Host=a] resynced', 'end 0 c2s#0 none body=0 missing=0 complete ok']);
    expect(parser.stats).toMatchObject({ resyncs: 1, lostMessages: 1, requests: 1 });
    expect(summary(parse(bytewise(c.events)).out)).toEqual(summary(out));
  });

  it('a gap running past the end of a body: the next status line at a line start resumes; bytes are never glued to another message', () => {
    const c = new Conn()
      .c2s('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab')
      .gap('s2c', 30)
      // the rest of b's head and body, then c's response right after b's body: not at a line start,
      // so it cannot be told from body bytes and is passed over; d's comes at a line start
      .s2c('tail of b\r\n\r\nbody-bHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nc\r\n')
      .s2c('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd')
      .close();
    const { out, parser } = parse(c.events);
    expect(responses(summary(out))).toEqual([
      'res 0#0 200 OK -> 0',
      'body 0 s2c#0 @0:ab',
      'end 0 s2c#0 length body=2 missing=2 incomplete gap',
      'resync 0 s2c @130 skipped=88 lost=1',
      'res 0#1 200 OK -> 2 resynced',
      'body 0 s2c#1 @0:d',
      'end 0 s2c#1 length body=1 missing=0 complete ok',
    ]);
    expect(parser.stats).toMatchObject({ resyncs: 1, lostMessages: 1, responses: 2 });
    expect(responses(summary(parse(bytewise(c.events)).out))).toEqual(responses(summary(out)));
  });

  it('a gap running a few bytes past a body, fewer than any message takes, loses no response (suricata-verify http-gap-whole-body)', () => {
    // /1's whole body and the stray CRLF after it are in the gap: /2's response must answer /2
    const c = new Conn()
      .c2s('GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\nGET /3 HTTP/1.0\r\n\r\n')
      .s2c('HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n')
      .gap('s2c', 14)
      .s2c('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nAAHTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nB')
      .close();
    const { out, parser } = parse(c.events);
    expect(responses(summary(out))).toEqual([
      'res 0#0 200 OK -> 0',
      'end 0 s2c#0 length body=0 missing=12 incomplete gap',
      'resync 0 s2c @53 skipped=2 lost=0',
      'res 0#1 200 OK -> 1 resynced',
      'body 0 s2c#1 @0:AA',
      'end 0 s2c#1 length body=2 missing=0 complete ok',
      'res 0#2 200 OK -> 2',
      'body 0 s2c#2 @0:B',
      'end 0 s2c#2 length body=1 missing=0 complete ok',
    ]);
    expect(parser.stats).toMatchObject({ resyncs: 1, lostMessages: 0, responses: 3 });
    expect(responses(summary(parse(bytewise(c.events)).out))).toEqual(responses(summary(out)));
    // 14 bytes or more past the body may hold a whole response: counted lost, as before
    const d = new Conn()
      .c2s('GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\nGET /3 HTTP/1.0\r\n\r\n')
      .s2c('HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n')
      .gap('s2c', 12 + 14)
      .s2c('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nB')
      .close();
    expect(responses(summary(parse(d.events).out)).filter((l) => l.startsWith('res') || l.startsWith('resync'))).toEqual(['res 0#0 200 OK -> 0', 'resync 0 s2c @65 skipped=14 lost=1', 'res 0#1 200 OK -> 2 resynced']);
  });

  it('a gap resyncs at a start line right after it', () => {
    const c = new Conn().c2s('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nContent-Le').gap('s2c', 50).s2c('HTTP/1.1 204 No Content\r\n\r\n').close();
    expect(responses(summary(parse(c.events).out))).toEqual(['resync 0 s2c @77 skipped=50 lost=1', 'res 0#0 204 No Content -> 1 resynced', 'end 0 s2c#0 none body=0 missing=0 complete ok']);
  });

  it('a gap in the chunk framing resyncs', () => {
    const c = new Conn()
      .c2s('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n')
      .s2c('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n1')
      .gap('s2c', 9)
      .s2c('\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      .close();
    const lines = responses(summary(parse(c.events).out));
    expect(lines[0]).toBe('res 0#0 200 OK -> 0');
    expect(lines[1]).toBe('body 0 s2c#0 @0:abcd');
    expect(lines[2]).toBe('end 0 s2c#0 chunked body=4 missing=0 incomplete gap');
    expect(lines[3]).toMatch(/^resync 0 s2c @\d+ skipped=\d+ lost=1$/);
    expect(lines.slice(4)).toEqual(['res 0#1 200 OK -> 1 resynced', 'body 0 s2c#1 @0:ok', 'end 0 s2c#1 length body=2 missing=0 complete ok']);
  });

  it('a connection picked up midstream starts at the first start line', () => {
    const c = new Conn(0, true).c2s('rest of a body\r\nGET /z HTTP/1.1\r\n\r\n').s2c('xx\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').close();
    expect(check(c)).toEqual([
      'resync 0 c2s @16 skipped=16 lost=0',
      'req 0#0 GET /z HTTP/1.1 [] resynced',
      'end 0 c2s#0 none body=0 missing=0 complete ok',
      'resync 0 s2c @4 skipped=4 lost=0',
      'res 0#0 200 OK -> 0 resynced',
      'end 0 s2c#0 none body=0 missing=0 complete ok',
    ]);
  });
});

describe('HttpParser limits', () => {
  it('a head over maxHeaderBytes is an error, holds no more than the limit, and the next request is parsed', () => {
    const big = `GET /big HTTP/1.1\r\nX: ${'a'.repeat(5000)}\r\n\r\n`;
    const c = new Conn().c2s(big).c2s('GET /ok HTTP/1.1\r\n\r\n').close();
    const parser = new HttpParser({ maxHeaderBytes: 1024 });
    const out: HttpEvent[] = [];
    let maxHeld = 0;
    for (const e of bytewise(c.events)) {
      parser.write([e], (b) => out.push(...b));
      maxHeld = Math.max(maxHeld, parser.stats.heldBytes);
    }
    parser.end((b) => out.push(...b));
    expect(maxHeld).toBeLessThanOrEqual(1024);
    expect(parser.stats.heldBytes).toBe(0);
    const lines = summary(out);
    expect(lines[0]).toBe('error 0 c2s HEADER_TOO_LARGE');
    expect(lines).toContain('req 0#0 GET /ok HTTP/1.1 [] resynced');
  });

  it('holds at most maxHeldBytes for all connections: past it a held line ends with HELD_LIMIT, the others go on', () => {
    // 50 connections each send a request line in 100-byte pieces, all interleaved: 5000 bytes of
    // lines would be held at once, the bound is 2000
    const conns = Array.from({ length: 50 }, (_, i) => new Conn(i));
    const line = `GET /${'x'.repeat(380)} HTTP/1.1\r\n\r\n`;
    const all: StreamEvent[] = conns.map((c) => c.events[0]!);
    for (let off = 0; off < line.length; off += 100) {
      for (const c of conns) {
        const n = c.events.length;
        c.c2s(line.slice(off, off + 100));
        all.push(c.events[n]!);
      }
    }
    for (const c of conns) all.push(c.close().events.at(-1)!);
    const parser = new HttpParser({ maxHeldBytes: 2000 });
    const out: HttpEvent[] = [];
    let maxHeld = 0;
    for (const e of all) {
      parser.write([e], (b) => out.push(...b));
      maxHeld = Math.max(maxHeld, parser.stats.heldBytes);
    }
    parser.end((b) => out.push(...b));
    expect(maxHeld).toBeLessThanOrEqual(2000);
    expect(parser.stats.heldBytes).toBe(0);
    const limited = out.filter((e) => e.type === 'http_error' && e.code === 'HELD_LIMIT').length;
    const requests = out.filter((e) => e.type === 'http_request').length;
    expect(limited).toBeGreaterThan(0);
    expect(requests).toBeGreaterThan(0);
    expect(requests + limited).toBeLessThanOrEqual(50);
    // with room for all of them, every request is parsed
    expect(parse(all, { maxHeldBytes: 1 << 20 }).out.filter((e) => e.type === 'http_request').length).toBe(50);
  });

  it('a connection that never finds a start line after a gap says so at its end (unresumed), unless HTTP was only assumed', () => {
    // the client's request line is cut by a gap before it ends: nothing after it starts a line
    const cut = new Conn().c2s('SEARCH /' + 'A'.repeat(300)).gap('c2s', 50).c2s('A'.repeat(400)).close();
    const { out } = parse(cut.events);
    expect(out.filter((e) => e.type === 'http_resync')).toEqual([{ type: 'http_resync', conn: 0, dir: 'c2s', ts: '2.000000000', offset: null, skipped: 308 + 50 + 400, lost: 1 }]);
    const records: unknown[] = [];
    const r = new HttpRecords(() => ({ update: () => undefined, hex: () => '' }));
    r.write(out, (b) => records.push(...b));
    expect(records).toEqual([{ type: 'http-error', conn: 0, dir: 'c2s', offset: null, reason: 'unresumed', bytesSkipped: 758, lost: 1 }]);
    // a midstream connection that is not HTTP at all: nothing said
    const other = new Conn(0, true).c2s('\x16\x03\x01 not http').s2c('\x16\x03\x03 nor this').close();
    expect(parse(other.events).out.filter((e) => e.type === 'http_resync')).toEqual([]);
  });

  it('too many header fields, a bad Content-Length and a bad chunk size are coded errors', () => {
    const fields = Array.from({ length: 20 }, (_, i) => `X-${i}: ${i}\r\n`).join('');
    const { out, parser } = parse(
      [
        ...new Conn(0).c2s(`GET / HTTP/1.1\r\n${fields}\r\n`).close().events,
        ...new Conn(1).c2s('POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello').close().events,
        ...new Conn(2).c2s('GET / HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n').close().events,
      ],
      { maxHeaders: 10 },
    );
    expect(summary(out).filter((l) => l.startsWith('error'))).toEqual(['error 0 c2s TOO_MANY_HEADERS', 'error 1 c2s BAD_CONTENT_LENGTH', 'error 2 s2c BAD_CHUNK_SIZE']);
    expect(parser.stats.errors).toBe(3);
  });
});

describe('HttpTransform', () => {
  it('streams the parser with backpressure: same events as the core', async () => {
    const c = new Conn().c2s('GET /a HTTP/1.1\r\n\r\n').s2c('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc').close();
    const got: HttpEvent[] = [];
    await pipeline(
      Readable.from([c.events.slice(0, 2), c.events.slice(2)], { objectMode: true }),
      new HttpTransform(),
      new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(batch: HttpEvent[], _enc, cb) {
          got.push(...batch);
          setImmediate(cb);
        },
      }),
    );
    expect(summary(got)).toEqual(summary(parse(c.events).out));
  });
});

describe('HttpParser on hostile input', () => {
  it('never throws and holds no more than its bounds, on random mixes of HTTP pieces, junk and gaps', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pieces = [
      'GET / HTTP/1.1\r\n',
      'HTTP/1.1 200 OK\r\n',
      'Content-Length: 5\r\n',
      'Content-Length: 99999999999\r\n',
      'Transfer-Encoding: chunked\r\n',
      '\r\n',
      '\n',
      'ffffffff\r\n',
      '0\r\n\r\n',
      'X: y\r\n',
      ' folded\r\n',
      'CONNECT a:1 HTTP/1.1\r\n',
      'HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n',
      'Upgrade: h2c\r\n',
      'HTTP/1.1 100 Continue\r\n\r\n',
      'abcdef',
    ];
    for (let round = 0; round < 200; round++) {
      const c = new Conn(round);
      for (let i = 0, n = 5 + rnd(60); i < n; i++) {
        const dir: Direction = rnd(2) === 0 ? 'c2s' : 's2c';
        const r = rnd(10);
        if (r === 0) c.gap(dir, 1 + rnd(5000));
        else if (r === 1) c.data(dir, Uint8Array.from({ length: 1 + rnd(300) }, () => rnd(256)));
        else c.data(dir, pieces[rnd(pieces.length)]!);
      }
      c.close();
      const parser = new HttpParser({ maxHeaderBytes: 256, maxHeaders: 8 });
      for (const e of c.events) {
        parser.write([e], () => undefined);
        // head lines, the undecided probe (at most 8 KiB) and bytes awaiting an upgrade's answer
        expect(parser.stats.heldBytes).toBeLessThanOrEqual(8192 + 300 + 2 * 256);
      }
      parser.end(() => undefined);
      expect(parser.stats.heldBytes).toBe(0);
    }
  });
});
