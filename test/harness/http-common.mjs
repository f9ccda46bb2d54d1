/**
 * http-common: what the harness's HTTP server and client share (http-server.mjs,
 * http-client.mjs): seeded bodies made as a stream, Content-Encoding applied and undone with
 * node:zlib, a body's digest, and the log.
 *
 * Log (LOGDIR/http-<side>.ndjson), one line per transaction and side, written when it ended:
 *   { side, case, client: {ip, port}, server: {ip, port}, trans (its place in the connection,
 *     from 0), method, uri, status, request: BODY, response: BODY, tunnel, c2sEnd, s2cEnd }
 *   BODY = { wireBytes, wireSha256 (as on the wire, de-chunked), bytes, sha256 (decoded),
 *            encodings (Content-Encoding tokens, lowercased), wireFile, file }
 * Each side logs what it sent and what it received; a body of at most KEEP_BODY bytes that the
 * side sent is also kept in LOGDIR/bodies/ (`wireFile`, `file`: relative to LOGDIR; null when not
 * kept), so that a test can cut holes out of it. `tunnel` (CONNECT): { target, c2s, s2c } with
 * { bytes, sha256 } per direction; `c2sEnd` (client) and `s2cEnd` (server): the stream offset just
 * after the message that side sent (socket.bytesWritten), so that a body of known length can be
 * found on the wire; null where unknown.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Rng } from './traffic-common.mjs';

export { plainIp } from './traffic-common.mjs';

/** Bodies a side sends of at most this many bytes are kept in LOGDIR/bodies/. */
export const KEEP_BODY = 1 << 20;

/** seedOf: a body's seed, from the run's seed and the request target (FNV-1a). */
export function seedOf(seed, text) {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const WORDS = 'the of packet stream body header chunk gzip brotli deflate capture window segment retransmit ack offset tunnel request response keep-alive pipeline trailer boundary'.split(' ');

/**
 * BodyStream makes `size` seeded bytes piece by piece (never the whole body at once): `bin` is
 * uniform random bytes, `text` random words (compressible).
 */
export class BodyStream {
  constructor(seed, size, kind = 'bin') {
    this.rng = new Rng(seed);
    this.left = size;
    this.kind = kind;
    this.carry = '';
  }
  /** next returns the next piece of at most `max` bytes, or null at the end. */
  next(max = 1 << 20) {
    if (this.left === 0) return null;
    const n = Math.min(this.left, max);
    this.left -= n;
    if (this.kind === 'text') {
      let s = this.carry;
      while (s.length < n) s += WORDS[this.rng.u32() % WORDS.length] + (this.rng.u32() % 12 === 0 ? '\n' : ' ');
      this.carry = s.slice(n);
      return Buffer.from(s.slice(0, n), 'latin1');
    }
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.rng.u32();
    return Buffer.from(words.buffer, 0, n);
  }
}

/** body returns a whole (small) seeded body. */
export function body(seed, size, kind = 'bin') {
  return size === 0 ? Buffer.alloc(0) : new BodyStream(seed, size, kind).next(size);
}

/**
 * Codings as this harness names them: `gzip`, `br`, `deflate` (zlib-wrapped, RFC 9110) and
 * `deflate-raw` (sent as `deflate`, as many servers do). encode applies them in order, the first
 * innermost; contentEncoding is the header value they are sent as.
 */
export function encode(buf, codings) {
  let out = buf;
  for (const c of codings) {
    if (c === 'gzip') out = zlib.gzipSync(out);
    else if (c === 'br') out = zlib.brotliCompressSync(out);
    else if (c === 'deflate') out = zlib.deflateSync(out);
    else if (c === 'deflate-raw') out = zlib.deflateRawSync(out);
    else throw new Error(`unknown coding ${c}`);
  }
  return out;
}

export function contentEncoding(codings) {
  return codings.map((c) => (c === 'deflate-raw' ? 'deflate' : c)).join(', ');
}

/** tokens: the Content-Encoding tokens of a header value, lowercased, `identity` left out. */
export function tokens(value) {
  return String(value ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '' && t !== 'identity');
}

/** decode undoes a Content-Encoding header value (the last coding first), as a client would. */
export function decode(buf, value) {
  let out = buf;
  for (const t of tokens(value).reverse()) {
    if (t === 'gzip' || t === 'x-gzip') out = zlib.gunzipSync(out);
    else if (t === 'br') out = zlib.brotliDecompressSync(out);
    else if (t === 'deflate') {
      try {
        out = zlib.inflateSync(out);
      } catch {
        out = zlib.inflateRawSync(out);
      }
    } else throw new Error(`cannot decode ${t}`);
  }
  return out;
}

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** Digest: the length and SHA-256 of bytes that pass by. */
export class Digest {
  constructor() {
    this.hash = createHash('sha256');
    this.bytes = 0;
  }
  update(buf) {
    this.hash.update(buf);
    this.bytes += buf.length;
  }
  done() {
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}

/** An empty body's log entry. */
export const NO_BODY = Object.freeze({ wireBytes: 0, wireSha256: sha256(Buffer.alloc(0)), bytes: 0, sha256: sha256(Buffer.alloc(0)), encodings: [], wireFile: null, file: null });

/**
 * TransactionLog writes one side's log lines, and keeps the small bodies that side sent.
 */
export class TransactionLog {
  constructor(logDir, side) {
    this.logDir = logDir;
    this.side = side;
    this.file = path.join(logDir, `http-${side}.ndjson`);
    mkdirSync(path.join(logDir, 'bodies'), { recursive: true });
  }

  /**
   * bodyEntry: the log entry of a body given whole (wire bytes, decoded bytes); `keep`: the side
   * sent it, so it is kept in bodies/ under `name` when small.
   */
  bodyEntry(wire, decoded, encodingValue, keep, name) {
    const e = { wireBytes: wire.length, wireSha256: sha256(wire), bytes: decoded.length, sha256: sha256(decoded), encodings: tokens(encodingValue), wireFile: null, file: null };
    if (keep && wire.length <= KEEP_BODY && wire.length > 0) {
      e.wireFile = path.join('bodies', `${name}.wire`);
      writeFileSync(path.join(this.logDir, e.wireFile), wire);
      e.file = path.join('bodies', `${name}.body`);
      writeFileSync(path.join(this.logDir, e.file), decoded);
    }
    return e;
  }

  write(rec) {
    appendFileSync(this.file, `${JSON.stringify({ side: this.side, ...rec })}\n`);
  }
}

/** keyName: a file-name-safe key of a transaction (client address, port, place in the connection). */
export function keyName(client, trans) {
  return `${client.ip.replace(/[^0-9a-zA-Z]/g, '-')}_${client.port}_${trans}`;
}
