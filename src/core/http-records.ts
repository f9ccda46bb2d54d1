/**
 * http-records: one record per HTTP transaction (what `pcapflow http` prints), built from the
 * HttpParser's events, plus one record for each place the parser could not follow (`http-error`).
 * Pure: no node:* import; the body digest comes from the `digest` factory the caller gives
 * (node:crypto's SHA-256 in the sink).
 *
 * A transaction is a request and the final response that answered it (interim 1xx responses are
 * not records of their own). Its record is emitted once both messages have ended, or when its
 * connection ends; records of one connection come in request order. `sha256` is the digest of
 * the decoded body (the wire body when there is no Content-Encoding; the `http_decoded` events
 * of HttpBodyDecoder otherwise), given only when that body is whole.
 *
 * A request whose Content-Type is multipart/form-data has `parts`: each part of its decoded body
 * (MultipartParser, multipart.ts) with its Content-Disposition name and filename, Content-Type,
 * size and digest, and `partsError` when the body is not a whole multipart body.
 */
import type { Endpoint } from './events.js';
import { contentCodings, headerValues, type HttpEvent, type HttpRequestEvent, type HttpResponseEvent } from './http.js';
import { formParts, type BodyParts, type MultipartEvent } from './multipart.js';

/** A running digest of a body's bytes. */
export interface BodyDigest {
  update(data: Uint8Array): void;
  /** The digest as lowercase hex; called once. */
  hex(): string;
}

export interface HttpMessageRecord {
  version: string;
  headers: Array<[string, string]>;
  bodyBytes: number;
  missing: number;
  complete: boolean;
  /** Content-Encoding tokens, outermost last (as sent, lowercased). */
  encodings: string[];
  /** Bytes of the decoded body (the wire body's when not encoded); null when it was not decoded. */
  decodedBytes: number | null;
  /** Why decoding stopped early (unsupported coding, zlib's reason, `gap`, a cap); null when it did not. */
  decodeError: string | null;
  /** SHA-256 of the decoded body, when it is whole: nothing missing, decoded to the end. */
  sha256?: string;
  /** The file the body was extracted to (`pcapflow http --extract`), relative to its directory. */
  file?: string;
}

export interface HttpRequestRecord extends HttpMessageRecord {
  method: string;
  uri: string;
  /** multipart/form-data only: the parts of the decoded body, in order (at most 256; see partsError). */
  parts?: HttpPartRecord[];
  /** multipart/form-data only: why the body is not a whole multipart body (no boundary, a gap, cut before the closing boundary, ...); null when it is. */
  partsError?: string | null;
}

/** One part of a multipart/form-data request body. */
export interface HttpPartRecord {
  /** The part's place in the body, from 0. */
  index: number;
  /** Content-Disposition `name` and `filename` as sent (null: absent); a part with a filename is a file, others are form fields. */
  name: string | null;
  filename: string | null;
  /** The part's Content-Type, as sent; null without one. */
  contentType: string | null;
  /** Bytes of the part's content. */
  bytes: number;
  /** False when the body was cut (a gap, its end) inside the part. */
  complete: boolean;
  /** SHA-256 of the part's content, when complete. */
  sha256?: string;
  /** The file the part was extracted to (`--extract`, parts with a filename), relative to its directory. */
  file?: string;
}

export interface HttpResponseRecord extends HttpMessageRecord {
  status: number;
  reason: string;
  contentType: string | null;
  /** Content-Range `bytes START-END/SIZE` (size null for `*`); absent without one that parses. */
  contentRange?: { start: number; end: number; size: number | null };
}

export interface HttpTransactionRecord {
  type: 'http';
  conn: number;
  /** The transaction's place in its connection, from 0. */
  trans: number;
  /** Time of the request's first byte, and of the response's. */
  ts: string;
  tsResponse: string | null;
  client: Endpoint;
  server: Endpoint;
  request: HttpRequestRecord;
  response: HttpResponseRecord | null;
  tunnel?: { reason: 'connect' | 'upgrade'; target: string };
}

export interface HttpErrorRecord {
  type: 'http-error';
  conn: number;
  dir: 'c2s' | 's2c';
  /** Stream offset where parsing resumed (resync), or where the fault was found. */
  offset: number | null;
  /** The parser's error code, `resync` after a gap or an error, or `unresumed` when no start line came before the connection's end (offset null). */
  reason: string;
  bytesSkipped: number;
  /** Messages lost in the bytes skipped (resync). */
  lost: number;
  message?: string;
}

export type HttpRecord = HttpTransactionRecord | HttpErrorRecord;

interface Building {
  req: HttpRequestEvent;
  reqMsg: HttpRequestRecord;
  /** Digest of the body (wire bytes when not encoded, decoded bytes when encoded). */
  reqDigest: BodyDigest | null;
  /** multipart/form-data: the body's parts being parsed, the open part's digest, and where the parser's events go. */
  reqParts: BodyParts | null;
  partList: HttpPartRecord[] | null;
  partsError: string | null;
  partDigest: BodyDigest | null;
  onPart: (e: MultipartEvent) => void;
  reqDone: boolean;
  res: HttpResponseEvent | null;
  resMsg: HttpResponseRecord | null;
  resDigest: BodyDigest | null;
  resDone: boolean;
  tunnel?: { reason: 'connect' | 'upgrade'; target: string };
}

interface ConnRecords {
  /** Transactions not emitted yet, in request order. */
  open: Building[];
  bySeq: Map<number, Building>;
  /** Response seq → its transaction (final responses only). */
  byResponse: Map<number, Building>;
  /** The message whose body is coming, per direction. */
  trans: number;
}

export type HttpRecordsStats = {
  transactions: number;
  withoutResponse: number;
  errorRecords: number;
};

/** HttpRecords: HttpEvent[] in, HttpRecord[] out. Throws nothing. */
export class HttpRecords {
  readonly stats: HttpRecordsStats = { transactions: 0, withoutResponse: 0, errorRecords: 0 };
  private readonly conns = new Map<number, ConnRecords>();
  private out: HttpRecord[] = [];

  /**
   * `digest` makes a body digest; `fileOf`, when given, names the file a message's body was
   * extracted to (conn, direction, message seq), put in the record as `file`; with `part`, the
   * file of that part of a multipart request body.
   */
  constructor(
    private readonly digest: () => BodyDigest,
    private readonly fileOf: ((conn: number, dir: 'c2s' | 's2c', seq: number, part?: number) => string | undefined) | null = null,
  ) {}

  write(events: readonly HttpEvent[], emit: (out: HttpRecord[]) => void): void {
    for (const e of events) this.event(e);
    this.flush(emit);
  }

  /** end emits the records of every transaction still open. */
  end(emit: (out: HttpRecord[]) => void): void {
    for (const [id, c] of this.conns) this.closeConn(id, c);
    this.flush(emit);
  }

  private flush(emit: (out: HttpRecord[]) => void): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    emit(out);
  }

  private conn(id: number): ConnRecords {
    let c = this.conns.get(id);
    if (c === undefined) {
      c = { open: [], bySeq: new Map(), byResponse: new Map(), trans: 0 };
      this.conns.set(id, c);
    }
    return c;
  }

  private event(e: HttpEvent): void {
    switch (e.type) {
      case 'http_request': {
        const c = this.conn(e.conn);
        const parts = formParts(e.headers);
        const b: Building = {
          req: e,
          reqMsg: { method: e.method, uri: e.uri, ...message(e) },
          reqDigest: this.digest(),
          reqParts: parts,
          partList: parts === null ? null : [],
          partsError: null,
          partDigest: null,
          onPart: (p) => this.part(b, p),
          reqDone: false,
          res: null,
          resMsg: null,
          resDigest: null,
          resDone: false,
        };
        c.open.push(b);
        c.bySeq.set(e.seq, b);
        return;
      }
      case 'http_response': {
        if (e.interim) return;
        const c = this.conn(e.conn);
        const b = e.request === null ? undefined : c.bySeq.get(e.request);
        if (b === undefined || b.res !== null) return; // a response to no request we saw
        b.res = e;
        b.resMsg = { status: e.status, reason: e.reason, contentType: headerValues(e.headers, 'content-type')[0] ?? null, ...message(e) };
        const range = contentRange(headerValues(e.headers, 'content-range')[0]);
        if (range !== null) b.resMsg.contentRange = range;
        b.resDigest = this.digest();
        c.byResponse.set(e.seq, b);
        return;
      }
      case 'http_body':
      case 'http_decoded': {
        const c = this.conns.get(e.conn);
        const b = c === undefined ? undefined : e.dir === 'c2s' ? c.bySeq.get(e.seq) : c.byResponse.get(e.seq);
        if (b === undefined) return;
        const msg = e.dir === 'c2s' ? b.reqMsg : b.resMsg!;
        // the digest is of the decoded body: wire bytes when not encoded, decoded bytes when encoded
        if ((e.type === 'http_body') !== (msg.encodings.length === 0)) return;
        const d = e.dir === 'c2s' ? b.reqDigest : b.resDigest;
        d?.update(e.data);
        if (e.dir === 'c2s') b.reqParts?.write(e.offset, e.data, b.onPart);
        return;
      }
      case 'http_end': {
        const c = this.conns.get(e.conn);
        if (c === undefined) return;
        const b = e.dir === 'c2s' ? c.bySeq.get(e.seq) : c.byResponse.get(e.seq);
        if (b === undefined) return;
        const msg = e.dir === 'c2s' ? b.reqMsg : b.resMsg!;
        msg.bodyBytes = e.bodyBytes;
        msg.missing = e.missing;
        msg.complete = e.complete;
        const d = e.dir === 'c2s' ? b.reqDigest : b.resDigest;
        if (msg.encodings.length === 0) {
          msg.decodedBytes = e.bodyBytes;
          if (d !== null && e.missing === 0) msg.sha256 = d.hex();
        } else if (e.decoded !== undefined) {
          msg.decodedBytes = e.decoded.bytes;
          msg.decodeError = e.decoded.error ?? (e.decoded.capped === null ? null : `capped (${e.decoded.capped === 'bytes' ? 'decoded bytes per body' : 'decoded to wire ratio'})`);
          if (d !== null && msg.decodeError === null && e.missing === 0) msg.sha256 = d.hex();
        } else {
          msg.decodeError = 'not decoded';
        }
        if (e.dir === 'c2s') {
          if (b.reqParts !== null) this.endParts(b, msg.encodings.length === 0 ? e.bodyBytes + e.missing : (e.decoded?.bytes ?? 0));
          b.reqDone = true;
          b.reqDigest = null;
        } else {
          b.resDone = true;
          b.resDigest = null;
        }
        this.emitReady(e.conn, c);
        return;
      }
      case 'http_tunnel': {
        const c = this.conns.get(e.conn);
        const b = c?.open.find((x) => x.res !== null && !x.resDone) ?? c?.open[c.open.length - 1];
        if (b !== undefined) b.tunnel = { reason: e.reason, target: e.target };
        return;
      }
      case 'http_resync':
        this.error({ type: 'http-error', conn: e.conn, dir: e.dir, offset: e.offset, reason: e.offset === null ? 'unresumed' : 'resync', bytesSkipped: e.skipped, lost: e.lost });
        return;
      case 'http_error':
        this.error({ type: 'http-error', conn: e.conn, dir: e.dir, offset: null, reason: e.code, bytesSkipped: 0, lost: 0, message: e.message });
        return;
      case 'http_close':
        this.connectionEnded(e.conn);
        return;
    }
  }

  /** part takes the multipart parser's events of a request body into its list of parts. */
  private part(b: Building, e: MultipartEvent): void {
    const parts = b.partList!;
    if (e.type === 'part') {
      parts.push({ index: e.index, name: e.name, filename: e.filename, contentType: e.contentType, bytes: 0, complete: false });
      b.partDigest = this.digest();
    } else if (e.type === 'data') {
      b.partDigest?.update(e.data);
    } else {
      const p = parts[parts.length - 1]!;
      p.bytes = e.bytes;
      p.complete = e.complete;
      if (e.complete && b.partDigest !== null) p.sha256 = b.partDigest.hex();
      b.partDigest = null;
    }
  }

  /** endParts ends the parsing of a request's parts: its body was `total` bytes long. */
  private endParts(b: Building, total: number): void {
    b.reqParts!.end(total, b.onPart);
    b.partsError = b.reqParts!.error;
    b.reqParts = null;
  }

  private error(r: HttpErrorRecord): void {
    this.stats.errorRecords++;
    this.out.push(r);
  }

  /** emitReady emits the connection's finished transactions at the head of its queue. */
  private emitReady(id: number, c: ConnRecords): void {
    while (c.open.length > 0) {
      const b = c.open[0]!;
      if (!(b.reqDone && b.resDone)) return;
      c.open.shift();
      this.emit(id, c, b);
    }
  }

  private emit(id: number, c: ConnRecords, b: Building): void {
    c.bySeq.delete(b.req.seq);
    if (b.res !== null) c.byResponse.delete(b.res.seq);
    this.stats.transactions++;
    if (b.resMsg === null) this.stats.withoutResponse++;
    const r: HttpTransactionRecord = {
      type: 'http',
      conn: id,
      trans: c.trans++,
      ts: b.req.firstTs,
      tsResponse: b.res === null ? null : b.res.firstTs,
      client: b.req.client,
      server: b.req.server,
      request: b.reqMsg,
      response: b.resMsg,
    };
    if (b.tunnel !== undefined) r.tunnel = b.tunnel;
    if (b.reqParts !== null) this.endParts(b, 0); // its end never came
    if (this.fileOf !== null) {
      const reqFile = this.fileOf(id, 'c2s', b.req.seq);
      if (reqFile !== undefined) b.reqMsg.file = reqFile;
      for (const p of b.partList ?? []) {
        const f = this.fileOf(id, 'c2s', b.req.seq, p.index);
        if (f !== undefined) p.file = f;
      }
      const resFile = b.res === null || b.resMsg === null ? undefined : this.fileOf(id, 's2c', b.res.seq);
      if (resFile !== undefined) b.resMsg!.file = resFile;
    }
    if (b.partList !== null) {
      b.reqMsg.parts = b.partList;
      b.reqMsg.partsError = b.partsError;
    }
    this.out.push(r);
  }

  private closeConn(id: number, c: ConnRecords): void {
    for (const b of c.open) this.emit(id, c, b);
    this.conns.delete(id);
  }

  /** connectionEnded: the parser has ended connection `id`: its open transactions go out as they are. */
  private connectionEnded(id: number): void {
    const c = this.conns.get(id);
    if (c !== undefined) this.closeConn(id, c);
  }
}

/** contentRange parses `bytes START-END/SIZE` or `bytes START-END/*`; null otherwise. */
export function contentRange(value: string | undefined): { start: number; end: number; size: number | null } | null {
  const m = value === undefined ? null : /^\s*bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)\s*$/i.exec(value);
  if (m === null) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return null;
  return { start, end, size: m[3] === '*' ? null : Number(m[3]) };
}

function message(e: HttpRequestEvent | HttpResponseEvent): HttpMessageRecord {
  const encodings = contentCodings(e.headers);
  return { version: e.version, headers: e.headers, bodyBytes: 0, missing: 0, complete: false, encodings, decodedBytes: null, decodeError: null };
}
