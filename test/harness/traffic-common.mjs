/**
 * traffic-common: what the harness's traffic server and client share: the seeded byte
 * generator, the 24-byte request header, the connection modes, and ConnLog, which records
 * exactly the bytes one application wrote on one connection.
 *
 * Log layout (LOGDIR/<side>.ndjson, one line per connection, written when it ends):
 *   { side, id, mode, client: {ip, port}, server: {ip, port}, wrote, wroteSha256, wroteFile,
 *     received, receivedSha256, end: "fin" | "rst-sent" | "rst-received" | "error", error }
 * and LOGDIR/<side>/<n>.bin, the bytes that application passed to socket.write(), in order.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';

export const MAGIC = 0x50464831; // "PFH1"
export const HEADER_LEN = 24;

/** Modes of a header-driven connection (the banner port has its own behaviour). */
export const MODES = ['basic', 'halfclose', 'rst-client', 'rst-server', 's2c-empty'];

/**
 * Rng is a small seeded generator (sfc32): the same seed gives the same sizes and bytes on
 * every run, so a failure can be replayed.
 */
export class Rng {
  constructor(seed) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32() {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** int returns an integer in [lo, hi]. */
  int(lo, hi) {
    return lo + (this.u32() % (hi - lo + 1));
  }
  /** bytes returns n pseudo-random bytes. */
  bytes(n) {
    const buf = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) buf.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) buf[i] = this.u32() & 0xff;
    return buf;
  }
}

/** encodeHeader builds the request header the client sends first on a header-driven port. */
export function encodeHeader(h) {
  const b = Buffer.alloc(HEADER_LEN);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(h.id, 4);
  b.writeUInt32BE(h.c2s, 8);
  b.writeUInt32BE(h.s2c, 12);
  b.writeUInt8(MODES.indexOf(h.mode), 16);
  b.writeUInt32BE(h.seed >>> 0, 20);
  return b;
}

/** decodeHeader reads the header; throws on a bad magic or mode. */
export function decodeHeader(b) {
  if (b.length < HEADER_LEN || b.readUInt32BE(0) !== MAGIC) throw new Error('bad request header');
  const mode = MODES[b.readUInt8(16)];
  if (mode === undefined) throw new Error('bad mode');
  return { id: b.readUInt32BE(4), c2s: b.readUInt32BE(8), s2c: b.readUInt32BE(12), mode, seed: b.readUInt32BE(20) };
}

/** plainIp turns Node's "::ffff:10.0.0.1" into "10.0.0.1"; other addresses are unchanged. */
export function plainIp(ip) {
  return ip && ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/**
 * ConnLog records one side of one connection: every byte its application wrote (to a file and a
 * running SHA-256), and how many bytes it received (count and SHA-256), then one ndjson line.
 */
export class ConnLog {
  constructor(logDir, side, n, socket, clientIsLocal) {
    this.logDir = logDir;
    this.side = side;
    mkdirSync(path.join(logDir, side), { recursive: true });
    this.wroteFile = path.join(side, `${n}.bin`);
    this.fd = openSync(path.join(logDir, this.wroteFile), 'w');
    const local = { ip: plainIp(socket.localAddress), port: socket.localPort };
    const remote = { ip: plainIp(socket.remoteAddress), port: socket.remotePort };
    this.rec = {
      side,
      id: -1,
      mode: '',
      client: clientIsLocal ? local : remote,
      server: clientIsLocal ? remote : local,
      wrote: 0,
      wroteSha256: '',
      wroteFile: this.wroteFile,
      received: 0,
      receivedSha256: '',
      end: '',
      error: '',
    };
    this.wroteHash = createHash('sha256');
    this.recvHash = createHash('sha256');
    this.done = false;
  }
  /** wrote records bytes just passed to socket.write(). */
  wrote(buf) {
    writeSync(this.fd, buf);
    this.wroteHash.update(buf);
    this.rec.wrote += buf.length;
  }
  /** received records bytes read from the socket. */
  received(buf) {
    this.recvHash.update(buf);
    this.rec.received += buf.length;
  }
  /** finish writes the ndjson line once; later calls are ignored. */
  finish(end, error = '') {
    if (this.done) return;
    this.done = true;
    closeSync(this.fd);
    this.rec.end = end;
    this.rec.error = error;
    this.rec.wroteSha256 = this.wroteHash.digest('hex');
    this.rec.receivedSha256 = this.recvHash.digest('hex');
    appendFileSync(path.join(this.logDir, `${this.side}.ndjson`), `${JSON.stringify(this.rec)}\n`);
  }
}

/** writeAll writes buf in chunks of random sizes, honouring backpressure, logging each chunk. */
export async function writeAll(socket, log, buf, rng, maxChunk = 65536) {
  let off = 0;
  while (off < buf.length) {
    const n = Math.min(buf.length - off, rng.int(1, maxChunk));
    const chunk = buf.subarray(off, off + n);
    off += n;
    log.wrote(chunk);
    if (!socket.write(chunk)) {
      await new Promise((resolve, reject) => {
        const onDrain = () => {
          socket.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          socket.off('drain', onDrain);
          reject(new Error('closed while writing'));
        };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    } else if (rng.int(0, 7) === 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
