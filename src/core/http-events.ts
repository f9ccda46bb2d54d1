/**
 * http-events: what HttpParser (http.ts) emits, `HttpEvent` and its kinds, with the parser's
 * counters; their contract is http.ts's header comment. http.ts re-exports every name. Pure: no
 * node:* import.
 */
import type { Direction, Endpoint } from './events.js';

export type HttpFraming = 'none' | 'length' | 'chunked' | 'close';
export type HttpEndReason = 'ok' | 'gap' | 'close' | 'error';
export type HttpErrorCode = 'HEADER_TOO_LARGE' | 'TOO_MANY_HEADERS' | 'BAD_START_LINE' | 'BAD_CONTENT_LENGTH' | 'BAD_CHUNK_SIZE' | 'HELD_LIMIT';

interface HttpHead {
  conn: number;
  dir: Direction;
  /** Time of the data event that completed the head. */
  ts: string;
  /** Time of the data event that held the start line's first byte. */
  firstTs: string;
  /** The message's number in its direction, from 0. */
  seq: number;
  version: string;
  /** Header fields in order, names as sent. */
  headers: Array<[string, string]>;
  /** The first message after a resync: its pairing with a request may be off by the messages lost. */
  afterResync: boolean;
}

export interface HttpRequestEvent extends HttpHead {
  type: 'http_request';
  method: string;
  uri: string;
  /** The connection's endpoints (from its open event). */
  client: Endpoint;
  server: Endpoint;
}

export interface HttpResponseEvent extends HttpHead {
  type: 'http_response';
  status: number;
  reason: string;
  /** seq of the request this answers; null when no request was pending. */
  request: number | null;
  /** 1xx other than 101: another response to the same request follows. */
  interim: boolean;
}

export interface HttpBodyEvent {
  type: 'http_body';
  conn: number;
  dir: Direction;
  seq: number;
  ts: string;
  /** Offset of `data` in the (de-chunked) body. */
  offset: number;
  /** A view of the stream's bytes: valid as long as the data event's. */
  data: Uint8Array;
}

export interface HttpEndEvent {
  type: 'http_end';
  conn: number;
  dir: Direction;
  seq: number;
  ts: string;
  framing: HttpFraming;
  bodyBytes: number;
  /** Body bytes inside gaps (skipped). */
  missing: number;
  complete: boolean;
  reason: HttpEndReason;
  /** Trailer fields of a chunked body. */
  trailers: Array<[string, string]>;
  /** Set by HttpBodyDecoder (src/transforms/http-decode.ts) for a body with a Content-Encoding. */
  decoded?: HttpDecodeResult;
}

/** How decoding a body's Content-Encoding went. */
export interface HttpDecodeResult {
  /** The codings as sent (outermost last). */
  codings: string[];
  /** Decoded bytes passed on. */
  bytes: number;
  /** Why decoding stopped early (unsupported coding, zlib's reason, `gap`); null when it did not. */
  error: string | null;
  /** Which bomb cap stopped it: `bytes` (maxBodyBytes) or `ratio`; null when none. */
  capped: 'bytes' | 'ratio' | null;
}

/** Decoded body bytes (HttpBodyDecoder), at `offset` in the decoded body; `data` is theirs. */
export type HttpDecodedEvent = Omit<HttpBodyEvent, 'type'> & { type: 'http_decoded' };

export interface HttpResyncEvent {
  type: 'http_resync';
  conn: number;
  dir: Direction;
  ts: string;
  /** Stream offset where parsing resumed; null when it never did: the connection ended first. */
  offset: number | null;
  /** Bytes passed over since parsing stopped (gaps included). */
  skipped: number;
  /** Messages that began there and were not delivered. */
  lost: number;
}

export interface HttpTunnelEvent {
  type: 'http_tunnel';
  conn: number;
  ts: string;
  reason: 'connect' | 'upgrade';
  /** The Upgrade header of the 101 response (upgrade), or the CONNECT target. */
  target: string;
}

export interface HttpErrorEvent {
  type: 'http_error';
  conn: number;
  dir: Direction;
  ts: string;
  code: HttpErrorCode;
  message: string;
}

/** The connection ended (after the ends of its open messages); only for connections seen as HTTP. */
export interface HttpCloseEvent {
  type: 'http_close';
  conn: number;
  ts: string;
}

export type HttpEvent =
  | HttpRequestEvent
  | HttpResponseEvent
  | HttpBodyEvent
  | HttpDecodedEvent
  | HttpEndEvent
  | HttpResyncEvent
  | HttpTunnelEvent
  | HttpErrorEvent
  | HttpCloseEvent;

export type HttpParserStats = {
  connections: number;
  notHttp: number;
  requests: number;
  responses: number;
  bodyBytes: number;
  missingBytes: number;
  incomplete: number;
  resyncs: number;
  lostMessages: number;
  tunnels: number;
  tunnelBytes: number;
  errors: number;
  /** Lines in a head that are no header field (no name and colon), passed over. */
  badHeaderLines: number;
  /** Head bytes held now (copies, bounded by maxHeaderBytes per direction). */
  heldBytes: number;
};
