/**
 * http: HTTP/1.x transactions out of the reassembler's stream events (issue 15, first step: the
 * message parser; content decoding comes next). Pure: no node:* import.
 *
 * HttpParser takes `StreamEvent[]` (open, data, gap, overlap, close, in the reassembler's order)
 * and emits `HttpEvent[]`:
 * - `http_request` / `http_response`: a message's start line and headers, once the headers are
 *   complete. A response names the request it answers (`request`, its `seq`; null when none is
 *   pending); `interim` for 1xx other than 101.
 * - `http_body`: body bytes as they come, views of the data events' bytes (never held: a body is
 *   never whole in memory), at their `offset` in the body (after de-chunking).
 * - `http_end`: the message is over: `bodyBytes` delivered, `missing` (bytes of the body inside
 *   gaps, skipped), `complete` (false when a gap or the connection's end cut it), `framing`.
 * - `http_resync`: after a gap in a start line, headers or chunk framing (where the parser cannot
 *   know where the next message begins), parsing resumed at the next request line (c2s) or status
 *   line (s2c) at a line start; `skipped` bytes (the gap's included) and `lost`, messages that
 *   were not delivered: the one whose head was cut, and those that began in the skipped bytes
 *   (one where a gap ran past a body's end, start lines passed over while looking), no more than
 *   fit in them. Bytes of one message are never glued to another's.
 * - `http_tunnel`: CONNECT answered 2xx or a 101 response (before that response's `http_end`):
 *   the rest of the connection is counted (`stats.tunnelBytes`), not parsed.
 * - `http_close`: an HTTP connection ended (after its messages' ends).
 * - `http_error`: a head over `maxHeaderBytes` or `maxHeaders`, or a malformed start line, header
 *   or chunk size (`code`); the message ends incomplete and the side resyncs.
 *
 * Framing (RFC 9112): a request has a body when chunked or with Content-Length; a response has
 * none for HEAD, 1xx, 204 and 304 (and CONNECT 2xx: a tunnel), else chunked, Content-Length or
 * until the connection closes. Responses are matched to requests in order (keep-alive and
 * pipelining). A response that begins while no request is pending, when the client is in the
 * middle of a request or has sent one before, waits for its request (whose bytes can come later
 * than the response: held by the reassembler behind a hole it has not yet given up on, or
 * reordered), since its framing depends on it (HEAD, CONNECT): its bytes are held until a
 * request is pending, and parsed as answering none when the client's side cannot send one any
 * more, at a gap, at the connection's end, or past `maxHeaderBytes` held. Lenient as real peers
 * need: bare LF line ends, obs-fold continuation lines, runs of spaces in the start line, extra
 * words before a request line's version, empty lines before a start line. A response right after
 * a body whose length was lost in a gap is found only at the next line start: a start line in the
 * middle of a line cannot be told from body bytes.
 *
 * Which connections: a connection is HTTP when its first client bytes are a request line; one
 * picked up midstream starts by looking for a start line (as after a gap). Others are left alone
 * (`stats.notHttp`). Memory per connection: at most `maxHeaderBytes` of head per direction, held
 * as copies (counted in `stats.heldBytes`), and as much of a response waiting for its request.
 */
import type { Direction, Endpoint, StreamEvent } from './events.js';
import type {
  HttpEndReason,
  HttpErrorCode,
  HttpEvent,
  HttpFraming,
  HttpParserStats,
} from './http-events.js';

export type * from './http-events.js';

export interface HttpParserOptions {
  /** Bytes of a start line plus headers (or trailers), at most. Default 65 536. */
  maxHeaderBytes?: number;
  /** Header fields of one message, at most. Default 256. */
  maxHeaders?: number;
  /**
   * Bytes held for all connections at once (the probe's, heads' lines, waiting bytes), at most:
   * the memory budget's share (`pcapflow http` gives it the budget's held-output share). Bytes
   * that would pass it are not held: a line ends its message with HELD_LIMIT, the probe decides
   * on what it has, waiting bytes are parsed at once. Default 16 MiB.
   */
  maxHeldBytes?: number;
}

/** The default of HttpParserOptions.maxHeldBytes. */
export const DEFAULT_HTTP_HELD_BYTES = 16 * 1024 * 1024;

/** A request line; lenient: words between the target and the version are passed over (`CONNECT host:25 / HTTP/1.0`). */
const METHOD_LINE = /^([A-Z][A-Z0-9_-]{0,31})[ \t]+(\S+)(?:[ \t]+\S+)*?[ \t]+(HTTP\/\d\.\d)[ \t]*$/;
const STATUS_LINE = /^(HTTP\/\d\.\d)[ \t]+(\d{3})(?:[ \t]+(.*?))?[ \t]*$/;
/** Start-line prefixes a resync looks for at a line start. */
const REQUEST_START = /^(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PROPFIND|PROPPATCH|MKCOL|COPY|MOVE|LOCK|UNLOCK|SEARCH|REPORT) \S+ HTTP\/1\.[01]\r?$/;
const RESPONSE_START = /^HTTP\/1\.[01] \d{3}(?: .*)?\r?$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What the beginning of a request line may look like before its line end came. */
const REQUEST_PREFIX = /^[A-Z][A-Z0-9_-]{0,31}(?:[ \t]+\S*(?:[ \t]+(?:H(?:T(?:T(?:P(?:\/\d?(?:\.\d?)?)?)?)?)?)?)?)?\r?$/;
/** What the beginning of a status line may look like before its line end came. */
const RESPONSE_PREFIX = /^H(?:T(?:T(?:P(?:\/(?:\d(?:\.(?:\d(?: (?:\d{0,3}(?: .*)?)?)?)?)?)?)?)?)?)?\r?$/;
/** Bytes of a possible start line held at most while parsing looks for one. */
const MAX_PROBE_LINE = 512;
/** The fewest bytes a message takes: `HTTP/1.1 200` or `A / HTTP/1.1`, a bare LF and the empty line. */
const MIN_MESSAGE_BYTES = 14;
/** Bytes held at most while a connection's first line decides whether it is HTTP. */
const PROBE_BYTES = 8192;
const LF = 0x0a;

const enum St {
  Start,
  Head,
  BodyLength,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  BodyClose,
  Tunnel,
  /** After CONNECT or an Upgrade request: the client's bytes wait for the response to say what they are. */
  Await,
  /** The server's bytes: a response began with no request pending while one is coming; it waits for it (mayHold). */
  Hold,
  Lost,
  Off,
}

interface Pending {
  seq: number;
  method: string;
  target: string;
}

/** One direction of one connection. */
class Side {
  st = St.Start;
  /** Bytes of the current line so far (copies), and their count. */
  line: Uint8Array[] = [];
  lineLen = 0;
  /** Head bytes of the current message (start line and headers, or trailers). */
  headBytes = 0;
  startLine = '';
  fields: Array<[string, string]> = [];
  seq = 0;
  /** Current message. */
  msgSeq = -1;
  framing: HttpFraming = 'none';
  remaining = 0;
  bodyBytes = 0;
  missing = 0;
  afterResync = false;
  /** In Lost: bytes passed over, messages lost, and whether the next byte starts a line. */
  skipped = 0;
  lost = 0;
  /** Of `lost`, the one message that began before the bytes skipped (its head cut); the others lay in them. */
  lostBefore = 0;
  atLineStart = false;
  /** Stream offset of the next byte. */
  offset = 0;
  /** Time of the data event where the current start line began. */
  startTs = '';
  /** In Await or Hold: the bytes waiting (copies). */
  waiting: Uint8Array[] = [];
  waitingLen = 0;
  /** s2c: no Hold until the next request is pending (a hold ended without one). */
  holdOff = false;
  constructor(
    readonly conn: number,
    readonly dir: Direction,
  ) {}
}

class Conn {
  readonly c2s: Side;
  readonly s2c: Side;
  readonly pending: Pending[] = [];
  decided = false;
  http = false;
  /** HTTP seen, not only assumed (midstream, a gap first): the probe's request line, or a start line parsed. */
  evidence = false;
  /** While undecided: the bytes so far (copies), and the client's as text. */
  held: Array<[Side, Uint8Array]> = [];
  heldLen = 0;
  probe = '';
  client: Endpoint = { ip: '', port: 0 };
  server: Endpoint = { ip: '', port: 0 };
  constructor(readonly id: number) {
    this.c2s = new Side(id, 'c2s');
    this.s2c = new Side(id, 's2c');
  }
}

const decoder = new TextDecoder('latin1');

/** HttpParser: see the file comment. Throws nothing on any input. */
export class HttpParser {
  readonly stats: HttpParserStats = {
    connections: 0,
    notHttp: 0,
    requests: 0,
    responses: 0,
    bodyBytes: 0,
    missingBytes: 0,
    incomplete: 0,
    resyncs: 0,
    lostMessages: 0,
    tunnels: 0,
    tunnelBytes: 0,
    errors: 0,
    badHeaderLines: 0,
    heldBytes: 0,
  };
  private readonly maxHeaderBytes: number;
  private readonly maxHeldBytes: number;
  private readonly maxHeaders: number;
  private readonly conns = new Map<number, Conn>();
  private out: HttpEvent[] = [];
  private ts = '';

  constructor(options: HttpParserOptions = {}) {
    this.maxHeaderBytes = Math.max(64, options.maxHeaderBytes ?? 65536);
    this.maxHeldBytes = Math.max(0, options.maxHeldBytes ?? DEFAULT_HTTP_HELD_BYTES);
    this.maxHeaders = Math.max(1, options.maxHeaders ?? 256);
  }

  write(events: readonly StreamEvent[], emit: (out: HttpEvent[]) => void): void {
    for (const e of events) {
      this.ts = e.ts;
      if (e.type === 'open') {
        const c = new Conn(e.conn);
        c.client = e.client;
        c.server = e.server;
        if (e.midstream) {
          c.decided = true;
          c.http = true;
          for (const s of [c.c2s, c.s2c]) this.lose(c, s, 0, false);
        }
        this.conns.set(e.conn, c);
        this.stats.connections++;
      } else if (e.type === 'data') {
        const c = this.conns.get(e.conn);
        if (c !== undefined) {
          this.data(c, c[e.dir], e.data);
          if (e.dir === 'c2s') this.unhold(c, false);
        }
      } else if (e.type === 'gap') {
        const c = this.conns.get(e.conn);
        if (c !== undefined) {
          this.gap(c, c[e.dir], e.len);
          if (e.dir === 'c2s') this.unhold(c, false);
        }
      } else if (e.type === 'close') {
        const c = this.conns.get(e.conn);
        if (c !== undefined) this.close(c);
      }
    }
    this.flush(emit);
  }

  end(emit: (out: HttpEvent[]) => void): void {
    for (const c of [...this.conns.values()]) this.close(c);
    this.flush(emit);
  }

  private flush(emit: (out: HttpEvent[]) => void): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    emit(out);
  }

  private data(c: Conn, s: Side, data: Uint8Array): void {
    if (!c.decided) {
      this.probe(c, s, data);
      return;
    }
    let pos = 0;
    while (pos < data.length) {
      const before = pos;
      const st = s.st;
      pos = this.step(c, s, data, pos);
      s.offset += pos - before;
      if (pos === before && s.st === st) break;
    }
  }

  /**
   * probe: before a connection is known to be HTTP, its bytes are held (copies, at most
   * PROBE_BYTES) until the client's first line decides: a request line (then they are parsed),
   * or anything else (the connection is left alone).
   */
  private probe(c: Conn, s: Side, data: Uint8Array): void {
    c.held.push([s, data.slice()]);
    c.heldLen += data.length;
    this.stats.heldBytes += data.length;
    if (s.dir === 'c2s') c.probe += decoder.decode(data.subarray(0, Math.max(0, PROBE_BYTES - c.probe.length)));
    const text = c.probe.replace(/^[\r\n]+/, '');
    const nl = text.indexOf('\n');
    let verdict: boolean | null = null;
    // enough to decide, or all the parser may hold: decide on what came
    const full = c.heldLen >= PROBE_BYTES || this.stats.heldBytes > this.maxHeldBytes;
    if (text === '') verdict = full ? false : null;
    else if (nl >= 0) verdict = METHOD_LINE.test(text.slice(0, nl).replace(/\r$/, ''));
    else if (!REQUEST_PREFIX.test(text)) verdict = false;
    else if (/^[A-Z][A-Z0-9_-]{0,31} \S+ /.test(text) || full) verdict = true; // a method, a target, and nothing against
    if (verdict === null) return;
    c.decided = true;
    c.http = verdict;
    c.evidence = verdict;
    const held = c.held;
    c.held = [];
    this.stats.heldBytes -= c.heldLen;
    c.heldLen = 0;
    c.probe = '';
    if (!verdict) {
      this.stats.notHttp++;
      c.c2s.st = St.Off;
      c.s2c.st = St.Off;
      return;
    }
    for (const [side, bytes] of held) this.data(c, side, bytes);
  }

  /** step consumes bytes of `data` from `pos` in the side's state; returns the new position. */
  private step(c: Conn, s: Side, data: Uint8Array, pos: number): number {
    switch (s.st) {
      case St.Off:
        return data.length;
      case St.Tunnel:
        this.stats.tunnelBytes += data.length - pos;
        return data.length;
      case St.Await:
        if (this.wait(s, data, pos)) return data.length;
        // no answer within the bound: parse what came as HTTP
        s.st = St.Start;
        this.replay(c, s);
        return pos;
      case St.Hold:
        if (this.wait(s, data, pos)) return data.length;
        // no request within the bound: parse what came as answering none
        this.unhold(c, true);
        return pos;
      case St.Lost:
        return this.scan(c, s, data, pos);
      case St.BodyLength:
      case St.ChunkData: {
        const n = Math.min(s.remaining, data.length - pos);
        this.body(s, pos === 0 && n === data.length ? data : data.subarray(pos, pos + n));
        s.remaining -= n;
        if (s.remaining === 0) {
          if (s.st === St.BodyLength) this.endMessage(c, s, true, 'ok');
          else s.st = St.ChunkEnd;
        }
        return pos + n;
      }
      case St.BodyClose:
        this.body(s, pos === 0 ? data : data.subarray(pos));
        return data.length;
      default: {
        if (s.st === St.Start && s.lineLen === 0) {
          if (s.dir === 's2c' && this.mayHold(c)) {
            s.st = St.Hold;
            return pos;
          }
          s.startTs = this.ts;
        }
        const line = this.takeLine(c, s, data, pos);
        if (line === null) return data.length;
        this.onLine(c, s, line.text);
        return line.next;
      }
    }
  }

  /** takeLine: the next whole line (without its CR LF or LF), or null with the rest held. */
  private takeLine(c: Conn, s: Side, data: Uint8Array, pos: number): { text: string; next: number } | null {
    const nl = data.indexOf(LF, pos);
    const end = nl < 0 ? data.length : nl + 1;
    const len = end - pos;
    if (s.headBytes + s.lineLen + len > this.maxHeaderBytes && s.st !== St.ChunkEnd) {
      this.error(c, s, 'HEADER_TOO_LARGE', `more than ${this.maxHeaderBytes} bytes of head`);
      return { text: '', next: end };
    }
    if (nl < 0) {
      if (this.stats.heldBytes + len > this.maxHeldBytes) {
        this.error(c, s, 'HELD_LIMIT', `more than ${this.maxHeldBytes} bytes held for all connections (the memory budget's share)`);
        return { text: '', next: end };
      }
      this.holdLine(s, data.subarray(pos));
      return null;
    }
    let bytes = data.subarray(pos, nl);
    if (s.lineLen > 0) {
      bytes = concat([...s.line, bytes], s.lineLen + bytes.length);
      this.dropLine(s);
    }
    s.headBytes += bytes.length + 1;
    let text = decoder.decode(bytes);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { text, next: nl + 1 };
  }

  private onLine(c: Conn, s: Side, text: string): void {
    switch (s.st) {
      case St.Start:
        if (text === '') return; // empty lines before a start line
        s.startLine = text;
        s.fields = [];
        s.st = St.Head;
        return;
      case St.Head:
      case St.Trailers:
        if (text === '') {
          if (s.st === St.Head) this.headDone(c, s);
          else this.endMessage(c, s, true, 'ok');
          return;
        }
        if (/^[ \t]/.test(text) && s.fields.length > 0) {
          // obs-fold: a continuation of the previous field's value
          const last = s.fields[s.fields.length - 1]!;
          last[1] = `${last[1]} ${text.trim()}`.trim();
          return;
        }
        {
          const colon = text.indexOf(':');
          const name = colon < 0 ? '' : text.slice(0, colon).trimEnd();
          if (!TOKEN.test(name)) {
            // a line that is no header field (real peers send them): passed over and counted
            this.stats.badHeaderLines++;
            return;
          }
          if (s.fields.length >= this.maxHeaders) {
            this.error(c, s, 'TOO_MANY_HEADERS', `more than ${this.maxHeaders} header fields`);
            return;
          }
          s.fields.push([name, text.slice(colon + 1).trim()]);
        }
        return;
      case St.ChunkSize: {
        const m = /^([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?$/.exec(text);
        if (m === null) {
          this.error(c, s, 'BAD_CHUNK_SIZE', `not a chunk size: ${JSON.stringify(text.slice(0, 80))}`);
          return;
        }
        const size = parseInt(m[1]!, 16);
        if (size === 0) {
          s.st = St.Trailers;
          s.fields = [];
          s.headBytes = 0;
        } else {
          s.remaining = size;
          s.st = St.ChunkData;
        }
        return;
      }
      case St.ChunkEnd:
        if (text !== '') {
          this.error(c, s, 'BAD_CHUNK_SIZE', 'chunk data not followed by a line end');
          return;
        }
        s.st = St.ChunkSize;
        return;
      default:
        return;
    }
  }

  /** headDone: a message's head is complete: emit it and choose its framing. */
  private headDone(c: Conn, s: Side): void {
    const fields = s.fields;
    s.fields = [];
    s.headBytes = 0;
    const te = headerValues(fields, 'transfer-encoding');
    const chunked = te.length > 0 && te[te.length - 1]!.split(',').pop()!.trim().toLowerCase() === 'chunked';
    const cls = headerValues(fields, 'content-length');
    let length: number | null = null;
    if (!chunked && cls.length > 0) {
      const values = new Set(cls.flatMap((v) => v.split(',').map((x) => x.trim())));
      const [only] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) {
        this.error(c, s, 'BAD_CONTENT_LENGTH', `Content-Length ${JSON.stringify(cls.join(', '))}`);
        return;
      }
      length = Number(only);
    }
    const m = (s.dir === 'c2s' ? METHOD_LINE : STATUS_LINE).exec(s.startLine);
    if (m === null) {
      this.error(c, s, 'BAD_START_LINE', `not a ${s.dir === 'c2s' ? 'request' : 'status'} line: ${JSON.stringify(s.startLine.slice(0, 80))}`);
      return;
    }
    const seq = s.seq++;
    s.msgSeq = seq;
    s.bodyBytes = 0;
    s.missing = 0;
    const afterResync = s.afterResync;
    s.afterResync = false;
    if (s.dir === 'c2s') {
      const method = m[1]!;
      this.stats.requests++;
      c.evidence = true;
      this.out.push({ type: 'http_request', conn: c.id, dir: 'c2s', ts: this.ts, firstTs: s.startTs || this.ts, seq, version: m[3]!, headers: fields, afterResync, method, uri: m[2]!, client: c.client, server: c.server });
      c.pending.push({ seq, method, target: m[2]! });
      c.s2c.holdOff = false;
      this.frame(c, s, chunked ? 'chunked' : length !== null && length > 0 ? 'length' : 'none', length ?? 0);
      // after CONNECT or an Upgrade request the client's next bytes may be the tunnel's: they wait for the response
      if ((method === 'CONNECT' || headerValues(fields, 'upgrade').length > 0) && s.st === St.Start) s.st = St.Await;
      return;
    }
    const status = Number(m[2]);
    const interim = status >= 100 && status < 200 && status !== 101;
    const req = interim ? (c.pending[0] ?? null) : (c.pending.shift() ?? null);
    this.stats.responses++;
    c.evidence = true;
    this.out.push({
      type: 'http_response',
      conn: c.id,
      dir: 's2c',
      ts: this.ts,
      firstTs: s.startTs || this.ts,
      seq,
      version: m[1]!,
      headers: fields,
      afterResync,
      status,
      reason: m[3] ?? '',
      request: req === null ? null : req.seq,
      interim,
    });
    const connect = req !== null && req.method === 'CONNECT';
    if (status === 101 || (connect && status >= 200 && status < 300)) {
      const upgrade = status === 101;
      // the tunnel before the response's end: that end completes the transaction, whose record must carry it
      this.stats.tunnels++;
      this.out.push({ type: 'http_tunnel', conn: c.id, ts: this.ts, reason: upgrade ? 'upgrade' : 'connect', target: upgrade ? (headerValues(fields, 'upgrade')[0] ?? '') : req!.target });
      this.endMessage(c, s, true, 'ok', 'none');
      for (const side of [c.c2s, c.s2c]) {
        if (side.st !== St.Off) {
          if (side.msgSeq >= 0) this.endMessage(c, side, false, 'close');
          side.st = St.Tunnel;
        }
      }
      this.tunnelWaiting(c.c2s);
      return;
    }
    if (!interim && c.c2s.st === St.Await) {
      // refused: what the client sent meanwhile is HTTP again
      c.c2s.st = St.Start;
      this.replay(c, c.c2s);
    }
    const noBody = interim || status === 204 || status === 304 || (req !== null && req.method === 'HEAD');
    if (noBody) this.frame(c, s, 'none', 0);
    else if (chunked) this.frame(c, s, 'chunked', 0);
    else if (length !== null) this.frame(c, s, length > 0 ? 'length' : 'none', length);
    else this.frame(c, s, 'close', 0);
  }

  private frame(c: Conn, s: Side, framing: HttpFraming, length: number): void {
    s.framing = framing;
    if (framing === 'none') this.endMessage(c, s, true, 'ok');
    else if (framing === 'length') {
      s.remaining = length;
      s.st = St.BodyLength;
    } else if (framing === 'chunked') s.st = St.ChunkSize;
    else s.st = St.BodyClose;
  }

  private body(s: Side, data: Uint8Array): void {
    if (data.length === 0) return;
    this.out.push({ type: 'http_body', conn: s.conn, dir: s.dir, seq: s.msgSeq, ts: this.ts, offset: s.bodyBytes + s.missing, data });
    s.bodyBytes += data.length;
    this.stats.bodyBytes += data.length;
  }

  /** endMessage ends the side's current message and readies it for the next start line. */
  private endMessage(c: Conn, s: Side, complete: boolean, reason: HttpEndReason, framing: HttpFraming = s.framing): void {
    if (complete && s.missing > 0) {
      complete = false;
      reason = 'gap';
    }
    if (s.msgSeq >= 0) {
      this.out.push({
        type: 'http_end',
        conn: c.id,
        dir: s.dir,
        seq: s.msgSeq,
        ts: this.ts,
        framing,
        bodyBytes: s.bodyBytes,
        missing: s.missing,
        complete,
        reason,
        trailers: s.st === St.Trailers ? s.fields : [],
      });
      if (!complete) this.stats.incomplete++;
    }
    s.msgSeq = -1;
    s.fields = [];
    s.headBytes = 0;
    if (s.st !== St.Tunnel && s.st !== St.Off && s.st !== St.Lost) s.st = St.Start;
  }

  private gap(c: Conn, s: Side, len: number): void {
    if (s.st === St.Hold) this.unhold(c, true); // the response's bytes before the gap, as they are
    let probed = 0;
    if (!c.decided && s.dir === 'c2s') {
      // a gap before the client's first line ended: look for a start line; HTTP was seen if what
      // came so far begins a request line
      c.decided = true;
      c.http = true;
      const text = c.probe.replace(/^[\r\n]+/, '');
      c.evidence = text !== '' && !text.includes('\n') && REQUEST_PREFIX.test(text);
      // the probe's bytes of this side were the request the gap cut: skipped with it
      for (const [side, bytes] of c.held) if (side === s) probed += bytes.length;
      this.stats.heldBytes -= c.heldLen;
      c.held = [];
      c.heldLen = 0;
      c.probe = '';
    }
    switch (s.st) {
      case St.Off:
        break;
      case St.Tunnel:
        this.stats.tunnelBytes += len;
        break;
      case St.Await:
        // what was waiting cannot be told from the gap's bytes any more: count it as the tunnel's
        this.tunnelWaiting(s);
        this.stats.tunnelBytes += len;
        s.st = St.Tunnel;
        break;
      case St.Lost:
        s.skipped += len;
        s.atLineStart = true;
        break;
      case St.BodyClose:
        s.missing += len;
        this.stats.missingBytes += len;
        break;
      case St.BodyLength:
      case St.ChunkData:
        if (len <= s.remaining) {
          s.missing += len;
          this.stats.missingBytes += len;
          s.remaining -= len;
          if (s.remaining === 0) {
            if (s.st === St.BodyLength) this.endMessage(c, s, false, 'gap');
            else s.st = St.ChunkEnd;
          }
          break;
        }
        // the gap runs past the body: where the next message starts is unknown
        s.missing += s.remaining;
        this.stats.missingBytes += s.remaining;
        this.lose(c, s, len - s.remaining, true);
        break;
      default:
        this.lose(c, s, probed + len, s.st !== St.Start || s.lineLen > 0 || probed > 0);
    }
    s.offset += len;
  }

  /** release: the side's waiting bytes, no longer held. */
  private release(s: Side): Uint8Array[] {
    const out = s.waiting;
    this.stats.heldBytes -= s.waitingLen;
    s.waiting = [];
    s.waitingLen = 0;
    return out;
  }

  /** tunnelWaiting counts the side's waiting bytes as the tunnel's, no longer held. */
  private tunnelWaiting(s: Side): void {
    this.stats.tunnelBytes += s.waitingLen;
    this.release(s);
  }

  /**
   * mayHold: should a response beginning now wait for its request? Yes when none is pending and
   * the client is in the middle of a request or has sent one before (not lost, not a tunnel).
   */
  private mayHold(c: Conn): boolean {
    if (c.pending.length > 0 || c.s2c.holdOff) return false;
    const q = c.c2s;
    switch (q.st) {
      case St.Start:
        return q.seq > 0 || q.lineLen > 0;
      case St.Head:
      case St.BodyLength:
      case St.ChunkSize:
      case St.ChunkData:
      case St.ChunkEnd:
      case St.Trailers:
        return true;
      default:
        return false;
    }
  }

  /**
   * unhold: a response held for its request (Hold) is parsed, when a request is pending or none
   * can come any more, or at once when `now` (then no Hold again until the next request).
   */
  private unhold(c: Conn, now: boolean): void {
    const s = c.s2c;
    if (s.st !== St.Hold || (!now && this.mayHold(c))) return;
    if (now) s.holdOff = true;
    s.st = St.Start;
    this.replay(c, s);
  }

  /**
   * wait keeps a copy of `data` from `pos` among the side's waiting bytes (Await, Hold); false,
   * keeping nothing, when that would pass maxHeaderBytes for the side or maxHeldBytes in all.
   */
  private wait(s: Side, data: Uint8Array, pos: number): boolean {
    const n = data.length - pos;
    if (s.waitingLen + n > this.maxHeaderBytes || this.stats.heldBytes + n > this.maxHeldBytes) return false;
    s.waiting.push(data.slice(pos));
    s.waitingLen += n;
    this.stats.heldBytes += n;
    return true;
  }

  /** holdLine keeps a copy of `bytes` as the next part of the side's current line. */
  private holdLine(s: Side, bytes: Uint8Array): void {
    s.line.push(bytes.slice());
    s.lineLen += bytes.length;
    this.stats.heldBytes += bytes.length;
  }

  /** dropLine forgets the side's held line; returns its length. */
  private dropLine(s: Side): number {
    const n = s.lineLen;
    this.stats.heldBytes -= n;
    s.line = [];
    s.lineLen = 0;
    return n;
  }

  /** replay parses the side's waiting bytes (their offsets were counted when they came). */
  private replay(c: Conn, s: Side): void {
    const held = this.release(s);
    for (const b of held) s.offset -= b.length;
    for (const b of held) this.data(c, s, b);
  }

  /** lose: parsing stops until a start line; the message under way (if any) ends incomplete. */
  private lose(c: Conn, s: Side, skipped: number, cut: boolean): void {
    const delivered = s.msgSeq >= 0;
    const inMessage = delivered || (s.st === St.Head && s.startLine !== '') || cut;
    if (delivered) this.endMessage(c, s, false, 'gap');
    this.dropLine(s);
    s.st = St.Lost;
    s.skipped = skipped;
    // a delivered message is not lost: its count is for a message that may have begun in the gap
    s.lost = inMessage ? 1 : 0;
    s.lostBefore = inMessage && !delivered ? 1 : 0;
    // right after a gap (or at a midstream start) a start line is taken at the first byte too
    s.atLineStart = true;
    s.startLine = '';
    s.fields = [];
    s.headBytes = 0;
  }

  /**
   * scan: in Lost, look for a start line at a line start; returns the position parsing resumes at
   * (or the end). A line start whose line is cut by the data's end and may still become a start
   * line is held (at most MAX_PROBE_LINE bytes, in `line`) until its end comes.
   */
  private scan(c: Conn, s: Side, data: Uint8Array, pos: number): number {
    const want = s.dir === 'c2s' ? REQUEST_START : RESPONSE_START;
    const prefix = s.dir === 'c2s' ? REQUEST_PREFIX : RESPONSE_PREFIX;
    let at = pos;
    let lineStart = s.atLineStart || s.lineLen > 0;
    while (at < data.length) {
      const nl = data.indexOf(LF, at);
      if (lineStart) {
        const head = s.lineLen > 0 ? decoder.decode(concat(s.line, s.lineLen)) : '';
        const text = head + decoder.decode(data.subarray(at, nl < 0 ? Math.min(data.length, at + MAX_PROBE_LINE) : nl));
        if (nl >= 0 && want.test(text.replace(/\r$/, ''))) {
          this.resumeAt(c, s, s.offset + (at - pos) - s.lineLen, at - pos);
          return at; // the held part stays in `line`: Start reads on from there
        }
        if (nl < 0 && text.length <= MAX_PROBE_LINE && prefix.test(text)) {
          this.holdLine(s, data.subarray(at));
          s.skipped += at - pos;
          s.atLineStart = false;
          return data.length;
        }
        if (/^(?:[A-Z]+ \S+ HTTP\/\d|HTTP\/\d\.\d \d{3})/.test(text)) s.lost++;
        s.skipped += this.dropLine(s);
      }
      if (nl < 0) {
        lineStart = false;
        break;
      }
      at = nl + 1;
      lineStart = true;
    }
    s.skipped += data.length - pos;
    s.atLineStart = lineStart;
    return data.length;
  }

  /** resumeAt: parsing resumes at stream offset `offset`, `passed` more bytes passed over. */
  private resumeAt(c: Conn, s: Side, offset: number, passed: number): void {
    const skipped = s.skipped + passed;
    const lost = lostIn(s, skipped);
    this.stats.resyncs++;
    this.stats.lostMessages += lost;
    this.out.push({ type: 'http_resync', conn: c.id, dir: s.dir, ts: this.ts, offset, skipped, lost });
    if (s.dir === 's2c' && lost > 0) {
      // responses lost in the gap answered the oldest requests
      c.pending.splice(0, Math.min(lost, Math.max(0, c.pending.length - 1)));
    }
    s.st = St.Start;
    s.afterResync = true;
    s.skipped = 0;
    s.lost = 0;
    s.lostBefore = 0;
  }

  private error(c: Conn, s: Side, code: HttpErrorCode, message: string): void {
    this.stats.errors++;
    this.out.push({ type: 'http_error', conn: c.id, dir: s.dir, ts: this.ts, code, message });
    if (s.msgSeq >= 0) this.endMessage(c, s, false, 'error');
    this.lose(c, s, 0, true);
  }

  private close(c: Conn): void {
    this.unhold(c, true);
    this.stats.heldBytes -= c.heldLen;
    c.held = [];
    c.heldLen = 0;
    for (const s of [c.c2s, c.s2c]) {
      if (s.st === St.Lost) {
        const lost = lostIn(s, s.skipped);
        this.stats.lostMessages += lost;
        // parsing never resumed: said once, so that what was passed over is not silent
        if (c.evidence && (s.skipped > 0 || lost > 0)) this.out.push({ type: 'http_resync', conn: c.id, dir: s.dir, ts: this.ts, offset: null, skipped: s.skipped, lost });
      }
      if (s.st === St.Await) this.tunnelWaiting(s);
      this.dropLine(s);
      if (s.msgSeq >= 0) {
        if (s.st === St.BodyClose) this.endMessage(c, s, true, 'ok');
        else this.endMessage(c, s, false, 'close');
      } else if (s.st === St.Head && s.startLine !== '') this.stats.incomplete++;
    }
    if (c.http) this.out.push({ type: 'http_close', conn: c.id, ts: this.ts });
    this.conns.delete(c.id);
  }
}

/**
 * lostIn: the messages a side lost while it skipped `skipped` bytes: the one whose head was cut
 * before them, and of those that began in them no more than fit (MIN_MESSAGE_BYTES each).
 */
function lostIn(s: Side, skipped: number): number {
  return s.lostBefore + Math.min(s.lost - s.lostBefore, Math.floor(skipped / MIN_MESSAGE_BYTES));
}

function concat(parts: readonly Uint8Array[], len: number): Uint8Array {
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** contentCodings: the Content-Encoding tokens of `fields`, lowercased, in wire order (outermost last), `identity` left out. */
export function contentCodings(fields: ReadonlyArray<readonly [string, string]>): string[] {
  if (!fields.some(([n]) => n.length === 16 && n.toLowerCase() === 'content-encoding')) return []; // most messages: no array made
  return headerValues(fields, 'content-encoding')
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '' && t !== 'identity');
}

/** headerValues: the values of every field named `name` (case-insensitive), in order. */
export function headerValues(fields: ReadonlyArray<readonly [string, string]>, name: string): string[] {
  const out: string[] = [];
  for (const [n, v] of fields) if (n.length === name.length && n.toLowerCase() === name) out.push(v);
  return out;
}
