// Synthesizes benchmark captures: classic pcap (µs, little-endian, Ethernet) of TCP connections
// with a full handshake, data in MTU-size (or smaller) segments with the timestamp option, ACKs from
// the receiver every `ackEvery` segments, and FIN teardown. Deterministic: the same arguments give
// the same file. Each connection's client sends a short request; the server sends `bytesPerConn`
// bytes whose content is derived from the connection number, so outputs can be checked.
//
//   node bench/synth.js OUT.pcap --conns 1 --bytes 314572800 [--mss 1448] [--ack-every 2]
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** payloadByte is the content of byte `off` of connection `conn`'s server stream. */
export function payloadByte(conn, off) {
  return (off * 131 + conn * 7 + (off >>> 9)) & 0xff;
}

function csum16(buf, start, end, seed = 0) {
  let sum = seed;
  for (let i = start; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if ((end - start) & 1) sum += buf[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * writeCapture writes the capture to `path` and resolves to {packets, bytes}.
 * options: conns, bytesPerConn, mss, ackEvery, interleave (segments of one conn before switching).
 */
export async function writeCapture(path, { conns = 1, bytesPerConn = 1 << 20, mss = 1448, ackEvery = 2, interleave = 4 } = {}) {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let packets = 0;
  let fileBytes = 0;
  let usec = 0;
  const chunks = [];
  let pending = 0;
  const flush = async (force) => {
    if (pending < (1 << 20) && !force) return;
    const buf = Buffer.concat(chunks, pending);
    chunks.length = 0;
    pending = 0;
    if (!out.write(buf)) await once(out, 'drain');
  };
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(262144, 16);
  hdr.writeUInt32LE(1, 20);
  chunks.push(hdr);
  pending += 24;
  fileBytes += 24;

  const state = [];
  for (let c = 0; c < conns; c++) {
    state.push({
      c,
      cip: [10, 1, (c >> 8) & 0xff, c & 0xff],
      sip: [10, 2, 0, 1],
      cport: 20000 + (c % 40000),
      sport: 8080,
      cseq: (0x10000000 + c * 7919) >>> 0,
      sseq: (0xfffff000 - c * 104729) >>> 0, // wraps early in the stream
      sent: 0,
      phase: 0,
      segs: 0,
      ipId: 1,
    });
  }
  const request = Buffer.from('GET /bulk HTTP/1.1\r\nHost: bench\r\n\r\n');

  const emit = (s, fromServer, flags, seq, ack, payloadLen, fill) => {
    const frameLen = 14 + 20 + 32 + payloadLen;
    const b = Buffer.allocUnsafe(16 + frameLen);
    usec += 7;
    b.writeUInt32LE(1700000000 + Math.floor(usec / 1e6), 0);
    b.writeUInt32LE(usec % 1e6, 4);
    b.writeUInt32LE(frameLen, 8);
    b.writeUInt32LE(frameLen, 12);
    const f = 16;
    b.fill(0, f, f + 66);
    b[f + 0] = 0x02; b[f + 5] = fromServer ? 1 : 2;
    b[f + 6] = 0x02; b[f + 11] = fromServer ? 2 : 1;
    b[f + 12] = 0x08; b[f + 13] = 0x00;
    const ip = f + 14;
    b[ip] = 0x45;
    b.writeUInt16BE(20 + 32 + payloadLen, ip + 2);
    b.writeUInt16BE(s.ipId++ & 0xffff, ip + 4);
    b[ip + 6] = 0x40;
    b[ip + 8] = 64;
    b[ip + 9] = 6;
    const src = fromServer ? s.sip : s.cip;
    const dst = fromServer ? s.cip : s.sip;
    for (let i = 0; i < 4; i++) { b[ip + 12 + i] = src[i]; b[ip + 16 + i] = dst[i]; }
    b.writeUInt16BE(0xffff - csum16(b, ip, ip + 20), ip + 10);
    const t = ip + 20;
    b.writeUInt16BE(fromServer ? s.sport : s.cport, t);
    b.writeUInt16BE(fromServer ? s.cport : s.sport, t + 2);
    b.writeUInt32BE(seq >>> 0, t + 4);
    b.writeUInt32BE(ack >>> 0, t + 8);
    b[t + 12] = 8 << 4;
    b[t + 13] = flags;
    b.writeUInt16BE(65535, t + 14);
    // options: NOP NOP TS
    b[t + 20] = 1; b[t + 21] = 1; b[t + 22] = 8; b[t + 23] = 10;
    b.writeUInt32BE(usec >>> 0, t + 24);
    b.writeUInt32BE((usec - 100) >>> 0, t + 28);
    if (payloadLen > 0) fill(b, t + 32);
    chunks.push(b);
    pending += b.length;
    fileBytes += b.length;
    packets++;
  };

  let live = conns;
  while (live > 0) {
    for (const s of state) {
      if (s.phase === 5) continue;
      for (let k = 0; k < interleave && s.phase !== 5; k++) {
        if (s.phase === 0) {
          emit(s, false, 0x02, s.cseq, 0, 0);
          emit(s, true, 0x12, s.sseq, s.cseq + 1, 0);
          emit(s, false, 0x10, s.cseq + 1, s.sseq + 1, 0);
          emit(s, false, 0x18, s.cseq + 1, s.sseq + 1, request.length, (b, o) => request.copy(b, o));
          emit(s, true, 0x10, s.sseq + 1, s.cseq + 1 + request.length, 0);
          s.phase = 1;
        } else if (s.phase === 1) {
          const n = Math.min(mss, bytesPerConn - s.sent);
          const off = s.sent;
          emit(s, true, 0x10 | (s.sent + n === bytesPerConn ? 0x08 : 0), s.sseq + 1 + off, s.cseq + 1 + request.length, n, (b, o) => {
            for (let i = 0; i < n; i++) b[o + i] = payloadByte(s.c, off + i);
          });
          s.sent += n;
          s.segs++;
          if (s.segs % ackEvery === 0 || s.sent === bytesPerConn) emit(s, false, 0x10, s.cseq + 1 + request.length, s.sseq + 1 + s.sent, 0);
          if (s.sent === bytesPerConn) s.phase = 2;
        } else {
          emit(s, true, 0x11, s.sseq + 1 + s.sent, s.cseq + 1 + request.length, 0);
          emit(s, false, 0x11, s.cseq + 1 + request.length, s.sseq + 2 + s.sent, 0);
          emit(s, true, 0x10, s.sseq + 2 + s.sent, s.cseq + 2 + request.length, 0);
          s.phase = 5;
          live--;
        }
      }
      await flush(false);
    }
  }
  await flush(true);
  out.end();
  await once(out, 'finish');
  return { packets, bytes: fileBytes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const r = await writeCapture(args[0], {
    conns: opt('conns', 1),
    bytesPerConn: opt('bytes', 1 << 20),
    mss: opt('mss', 1448),
    ackEvery: opt('ack-every', 2),
    interleave: opt('interleave', 4),
  });
  console.log(JSON.stringify(r));
}

/**
 * writeSynFlood writes a capture of `syns` SYN-only connection attempts (each from its own
 * address and port, never answered) with `realConns` real connections interleaved: each real one
 * handshakes at the start, sends its server bytes (payloadByte pattern) in `mss`-size segments
 * spread evenly through the flood, and closes with FINs at the end. Resolves to {packets, bytes}.
 */
export async function writeSynFlood(path, { syns = 2_000_000, realConns = 10, bytesPerConn = 200_000, mss = 1400 } = {}) {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let packets = 0;
  let fileBytes = 0;
  let usec = 0;
  let pending = [];
  let pendingBytes = 0;
  const push = async (b) => {
    pending.push(b);
    pendingBytes += b.length;
    fileBytes += b.length;
    packets++;
    if (pendingBytes >= 1 << 20) {
      const buf = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      if (!out.write(buf)) await once(out, 'drain');
    }
  };
  const frame = (src, dst, sport, dport, seq, ack, flags, payload) => {
    const len = 14 + 20 + 20 + payload.length;
    const b = Buffer.alloc(16 + len);
    usec += 3;
    b.writeUInt32LE(1700000000 + Math.floor(usec / 1e6), 0);
    b.writeUInt32LE(usec % 1e6, 4);
    b.writeUInt32LE(len, 8);
    b.writeUInt32LE(len, 12);
    const f = 16;
    b[f + 12] = 0x08;
    const ip = f + 14;
    b[ip] = 0x45;
    b.writeUInt16BE(40 + payload.length, ip + 2);
    b[ip + 8] = 64;
    b[ip + 9] = 6;
    b.writeUInt32BE(src >>> 0, ip + 12);
    b.writeUInt32BE(dst >>> 0, ip + 16);
    b.writeUInt16BE(0xffff - csum16(b, ip, ip + 20), ip + 10);
    const t = ip + 20;
    b.writeUInt16BE(sport, t);
    b.writeUInt16BE(dport, t + 2);
    b.writeUInt32BE(seq >>> 0, t + 4);
    b.writeUInt32BE(ack >>> 0, t + 8);
    b[t + 12] = 5 << 4;
    b[t + 13] = flags;
    b.writeUInt16BE(65535, t + 14);
    payload.copy(b, t + 20);
    return b;
  };
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(65535, 16);
  hdr.writeUInt32LE(1, 20);
  out.write(hdr);
  fileBytes += 24;
  const server = 0x0a640001; // 10.100.0.1
  const real = [];
  for (let c = 0; c < realConns; c++) {
    const r = { c, ip: 0x0a650000 + c + 1, port: 40000 + c, cseq: 1000 + c, sseq: 5000000 + c, sent: 0 };
    real.push(r);
    await push(frame(r.ip, server, r.port, 80, r.cseq, 0, 0x02, Buffer.alloc(0)));
    await push(frame(server, r.ip, 80, r.port, r.sseq, r.cseq + 1, 0x12, Buffer.alloc(0)));
    await push(frame(r.ip, server, r.port, 80, r.cseq + 1, r.sseq + 1, 0x10, Buffer.alloc(0)));
  }
  const segsPerConn = Math.ceil(bytesPerConn / mss);
  const every = Math.max(1, Math.floor(syns / (segsPerConn + 1)));
  for (let i = 0; i < syns; i++) {
    // SYN flood source: 10.0.0.0/8 spread over addresses and ports, never repeating a 4-tuple
    const src = 0x0b000000 + (i >>> 4);
    await push(frame(src, server, 1024 + (i & 15) * 3000 + (i % 7), 80, i * 2654435761, 0, 0x02, Buffer.alloc(0)));
    if (i % every === 0) {
      for (const r of real) {
        if (r.sent >= bytesPerConn) continue;
        const n = Math.min(mss, bytesPerConn - r.sent);
        const p = Buffer.allocUnsafe(n);
        for (let k = 0; k < n; k++) p[k] = payloadByte(r.c, r.sent + k);
        await push(frame(server, r.ip, 80, r.port, r.sseq + 1 + r.sent, r.cseq + 1, 0x18, p));
        r.sent += n;
        await push(frame(r.ip, server, r.port, 80, r.cseq + 1, r.sseq + 1 + r.sent, 0x10, Buffer.alloc(0)));
      }
    }
  }
  for (const r of real) {
    while (r.sent < bytesPerConn) {
      const n = Math.min(mss, bytesPerConn - r.sent);
      const p = Buffer.allocUnsafe(n);
      for (let k = 0; k < n; k++) p[k] = payloadByte(r.c, r.sent + k);
      await push(frame(server, r.ip, 80, r.port, r.sseq + 1 + r.sent, r.cseq + 1, 0x18, p));
      r.sent += n;
    }
    await push(frame(server, r.ip, 80, r.port, r.sseq + 1 + r.sent, r.cseq + 1, 0x11, Buffer.alloc(0)));
    await push(frame(r.ip, server, r.port, 80, r.cseq + 1, r.sseq + 2 + r.sent, 0x11, Buffer.alloc(0)));
    await push(frame(server, r.ip, 80, r.port, r.sseq + 2 + r.sent, r.cseq + 2, 0x10, Buffer.alloc(0)));
  }
  if (pendingBytes > 0) out.write(Buffer.concat(pending, pendingBytes));
  out.end();
  await once(out, 'finish');
  return { packets, bytes: fileBytes };
}

// ---------------------------------------------------------------------------------------------
// Mixed captures for the memory tests (test/hostile/peak-rss.test.ts): many connections of
// different lifetimes merged by capture time, realistic TCP (SYNs with MSS, SACK-permitted,
// timestamps and window scale; handshakes; delayed ACKs; FIN teardown). Each direction's stream
// byte at offset `off` is payloadByte(key, off), key = 2 * connection + (server side ? 1 : 0), so
// every output file can be checked; the generators return the files expected (tcpflow names).

/** PATTERN[k] = payloadByte(0, k) over one period (131072: k*131 and k>>>9 both wrap mod 256 there), plus room for a segment. */
const PERIOD = 131072;
const PATTERN = (() => {
  const p = Buffer.allocUnsafe(PERIOD + 65536);
  for (let k = 0; k < p.length; k++) p[k] = payloadByte(0, k);
  return p;
})();

/** fillPattern writes payloadByte(key, off + i) for i < len into b at o. */
function fillPattern(b, o, key, off, len) {
  const add = (key * 7) & 0xff;
  const from = off % PERIOD;
  if (add === 0) {
    PATTERN.copy(b, o, from, from + len);
    return;
  }
  for (let i = 0; i < len; i++) b[o + i] = (PATTERN[from + i] + add) & 0xff;
}

const pad3 = (n) => String(n).padStart(3, '0');
/** fileName: tcpflow's name of the direction from a:ap to b:bp (addresses as 32-bit numbers). */
function fileName(a, ap, b, bp) {
  const ip = (x) => `${pad3(x >>> 24)}.${pad3((x >>> 16) & 255)}.${pad3((x >>> 8) & 255)}.${pad3(x & 255)}`;
  return `${ip(a)}.${String(ap).padStart(5, '0')}-${ip(b)}.${String(bp).padStart(5, '0')}`;
}

/** PcapBuffer: a classic pcap (µs, little-endian, Ethernet) written through one large buffer. */
class PcapBuffer {
  constructor(path) {
    this.out = createWriteStream(path, { highWaterMark: 4 << 20 });
    this.buf = Buffer.allocUnsafe(8 << 20);
    this.pos = 0;
    this.packets = 0;
    this.bytes = 0;
    const b = this.buf;
    b.writeUInt32LE(0xa1b2c3d4, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeUInt32LE(0, 8);
    b.writeUInt32LE(0, 12);
    b.writeUInt32LE(262144, 16);
    b.writeUInt32LE(1, 20);
    this.pos = 24;
  }

  /** full: time to call drain(). */
  get full() {
    return this.pos > (6 << 20);
  }

  async drain() {
    const b = this.buf.subarray(0, this.pos);
    this.bytes += this.pos;
    this.buf = Buffer.allocUnsafe(8 << 20);
    this.pos = 0;
    if (!this.out.write(b)) await once(this.out, 'drain');
  }

  async end() {
    await this.drain();
    this.out.end();
    await once(this.out, 'finish');
    return { packets: this.packets, bytes: this.bytes };
  }

  /**
   * tcp writes one TCP/IPv4 frame at capture time `usec` (µs since the capture began). `opts`:
   * 'syn' (MSS, SACK-permitted, timestamps, NOP, window scale: 20 bytes), 'mss' (MSS only), 'ts'
   * (NOP NOP timestamps), or '' (none). The payload is `len` bytes of `key`'s pattern from `off`,
   * or of `key` itself from `off` when it is a Buffer (a stream's whole bytes).
   */
  tcp(usec, src, dst, sport, dport, seq, ack, flags, opts, len = 0, key = 0, off = 0) {
    const optLen = opts === 'syn' ? 20 : opts === 'ts' ? 12 : opts === 'mss' ? 4 : 0;
    const frameLen = 14 + 20 + 20 + optLen + len;
    const b = this.buf;
    let p = this.pos;
    const sec = 1700000000 + Math.floor(usec / 1e6);
    b.writeUInt32LE(sec, p);
    b.writeUInt32LE(usec % 1e6, p + 4);
    b.writeUInt32LE(frameLen, p + 8);
    b.writeUInt32LE(frameLen, p + 12);
    p += 16;
    b.fill(0, p, p + 54 + optLen);
    b[p] = 0x02; b[p + 5] = 1; b[p + 6] = 0x02; b[p + 11] = 2;
    b[p + 12] = 0x08;
    const ip = p + 14;
    b[ip] = 0x45;
    b.writeUInt16BE(40 + optLen + len, ip + 2);
    b.writeUInt16BE(this.packets & 0xffff, ip + 4);
    b[ip + 6] = 0x40;
    b[ip + 8] = 64;
    b[ip + 9] = 6;
    b.writeUInt32BE(src >>> 0, ip + 12);
    b.writeUInt32BE(dst >>> 0, ip + 16);
    b.writeUInt16BE(0xffff - csum16(b, ip, ip + 20), ip + 10);
    const t = ip + 20;
    b.writeUInt16BE(sport, t);
    b.writeUInt16BE(dport, t + 2);
    b.writeUInt32BE(seq >>> 0, t + 4);
    b.writeUInt32BE(ack >>> 0, t + 8);
    b[t + 12] = ((20 + optLen) / 4) << 4;
    b[t + 13] = flags;
    b.writeUInt16BE(opts === 'syn' || opts === 'mss' ? 64240 : 502, t + 14);
    const o = t + 20;
    const tsval = Math.floor(usec / 1000) >>> 0;
    if (opts === 'syn') {
      b[o] = 2; b[o + 1] = 4; b.writeUInt16BE(1460, o + 2);
      b[o + 4] = 4; b[o + 5] = 2;
      b[o + 6] = 8; b[o + 7] = 10; b.writeUInt32BE(tsval, o + 8); b.writeUInt32BE(flags & 0x10 ? tsval : 0, o + 12);
      b[o + 16] = 1; b[o + 17] = 3; b[o + 18] = 3; b[o + 19] = 7;
    } else if (opts === 'mss') {
      b[o] = 2; b[o + 1] = 4; b.writeUInt16BE(1460, o + 2);
    } else if (opts === 'ts') {
      b[o] = 1; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 10; b.writeUInt32BE(tsval, o + 4); b.writeUInt32BE(tsval, o + 8);
    }
    if (len > 0) {
      if (typeof key === 'number') fillPattern(b, o + optLen, key, off, len);
      else key.copy(b, o + optLen, off, off + len);
    }
    this.pos = o + optLen + len;
    this.packets++;
  }
}

/**
 * A connection script (a generator): it yields the capture time of its next packet and writes
 * that packet when resumed. runScripts merges scripts by time (a binary heap) into `w`.
 */
async function runScripts(w, scripts) {
  const heap = [];
  const up = (i) => {
    const x = heap[i];
    while (i > 0) {
      const j = (i - 1) >> 1;
      if (heap[j].t <= x.t) break;
      heap[i] = heap[j];
      i = j;
    }
    heap[i] = x;
  };
  const down = (i) => {
    const n = heap.length;
    const x = heap[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && heap[c + 1].t < heap[c].t) c++;
      if (heap[c].t >= x.t) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = x;
  };
  for (const g of scripts) {
    const r = g.next();
    if (!r.done) {
      heap.push({ t: r.value, g });
      up(heap.length - 1);
    }
  }
  while (heap.length > 0) {
    const top = heap[0];
    const r = top.g.next();
    if (r.done) {
      const last = heap.pop();
      if (heap.length > 0) {
        heap[0] = last;
        down(0);
      }
    } else {
      top.t = r.value;
      down(0);
    }
    if (w.full) await w.drain();
  }
}

const SERVER = 0x0a640001; // 10.100.0.1

/**
 * exchange: a connection script from the handshake to the FIN teardown. `rounds` lists, per
 * request, its start time (µs), the request's and the response's sizes; the server answers 1 ms
 * after a request (in `seg`-byte segments, `gapUs` apart, the client ACKing every second one and
 * the last after `ackDelay` µs: a delayed ACK). Streams: key 2*id (client), 2*id+1 (server), or
 * `streams` ({c2s, s2c}: Buffers holding each direction's bytes, made by the caller).
 * `out` gets the two expected files.
 */
function* exchange(w, { id, cip, cport, sport = 80, start, rounds, end, seg = 1448, gapUs = 100, ackDelay = 40_000, streams = null }, out) {
  let cseq = (0x10000000 + id * 7919) >>> 0;
  let sseq = (0xfffff000 - id * 104729) >>> 0;
  const ck = streams === null ? 2 * id : streams.c2s;
  const sk = streams === null ? 2 * id + 1 : streams.s2c;
  let t = start;
  yield t;
  w.tcp(t, cip, SERVER, cport, sport, cseq, 0, 0x02, 'syn');
  yield (t += 300);
  w.tcp(t, SERVER, cip, sport, cport, sseq, cseq + 1, 0x12, 'syn');
  yield (t += 300);
  w.tcp(t, cip, SERVER, cport, sport, cseq + 1, sseq + 1, 0x10, 'ts');
  let cOff = 0;
  let sOff = 0;
  for (const r of rounds) {
    t = Math.max(t + 1, r.at);
    yield t;
    w.tcp(t, cip, SERVER, cport, sport, cseq + 1 + cOff, sseq + 1 + sOff, 0x18, 'ts', r.req, ck, cOff);
    cOff += r.req;
    let sent = 0;
    let segs = 0;
    t += 1000;
    while (sent < r.resp) {
      const n = Math.min(seg, r.resp - sent);
      yield t;
      w.tcp(t, SERVER, cip, sport, cport, sseq + 1 + sOff, cseq + 1 + cOff, sent + n === r.resp ? 0x18 : 0x10, 'ts', n, sk, sOff);
      sOff += n;
      sent += n;
      segs++;
      if (segs % 2 === 0 && sent < r.resp) {
        yield (t += 30);
        w.tcp(t, cip, SERVER, cport, sport, cseq + 1 + cOff, sseq + 1 + sOff, 0x10, 'ts');
      }
      t += gapUs;
    }
    yield (t += ackDelay);
    w.tcp(t, cip, SERVER, cport, sport, cseq + 1 + cOff, sseq + 1 + sOff, 0x10, 'ts');
  }
  t = Math.max(t + 1, end);
  yield t;
  w.tcp(t, cip, SERVER, cport, sport, cseq + 1 + cOff, sseq + 1 + sOff, 0x11, 'ts');
  yield (t += 300);
  w.tcp(t, SERVER, cip, sport, cport, sseq + 1 + sOff, cseq + 2 + cOff, 0x11, 'ts');
  yield (t += 300);
  w.tcp(t, cip, SERVER, cport, sport, cseq + 2 + cOff, sseq + 2 + sOff, 0x10, 'ts');
  if (cOff > 0) out.push({ name: fileName(cip, cport, SERVER, sport), key: ck, len: cOff });
  if (sOff > 0) out.push({ name: fileName(SERVER, sport, cip, cport), key: sk, len: sOff });
}

/** A small deterministic generator (xorshift32) for sizes. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (lo, hi) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return lo + (x % (hi - lo + 1));
  };
}

/** synFlood: `syns` SYNs (MSS option) from 11.0.0.0/8, never answered, evenly over [0, usec). */
function* synFlood(w, syns, usec) {
  for (let i = 0; i < syns; i++) {
    const t = Math.floor((i * usec) / syns);
    yield t;
    w.tcp(t, 0x0b000000 + (i >>> 4), SERVER, 1024 + (i & 15) * 3000 + (i % 7), 80, Math.imul(i, 2654435761), 0, 0x02, 'mss');
  }
}

/**
 * slots: `conns` connections run `concurrent` at a time over `usec` µs: each one's `life` (µs)
 * and `start(id)` (µs), the slots staggered evenly.
 */
function slots(conns, concurrent, usec) {
  const life = Math.floor(usec / Math.ceil(conns / concurrent));
  return { life, start: (id) => Math.floor(id / concurrent) * life + Math.floor(((id % concurrent) * life) / concurrent) };
}

/** shortClient: connection `id`'s client address (10.101.x.y) and port, never the same 4-tuple twice below 2.6 M connections. */
function shortClient(id) {
  return { cip: (0x0a650000 + (id % 65536)) >>> 0, cport: 20000 + Math.floor(id / 65536) * 7 + (id % 40000) };
}

/**
 * writeFloodMix (issue 13 (a)): `syns` never-answered SYNs over `seconds`, and in the same
 * seconds `shortConns` short connections, `concurrent` at a time (each a handshake, one request,
 * a response of 1-60 KB in segments spread over its life, delayed ACKs, FINs), plus `longConns`
 * connections open from start to end exchanging a small request and response every 100 ms.
 * Resolves to {packets, bytes, files: [{name, key, len}]}.
 */
export async function writeFloodMix(path, { syns = 2_000_000, shortConns = 2000, concurrent = 50, longConns = 20, seconds = 10 } = {}) {
  const w = new PcapBuffer(path);
  const usec = seconds * 1e6;
  const files = [];
  const size = rng(13);
  const scripts = [synFlood(w, syns, usec)];
  const { life, start: startOf } = slots(shortConns, concurrent, usec);
  for (let id = 0; id < shortConns; id++) {
    const start = startOf(id);
    const resp = size(1000, 60_000);
    // the response spread over most of the connection's life
    const gapUs = Math.floor((life * 0.7) / Math.ceil(resp / 1448));
    const cip = 0x0a650000 + id;
    scripts.push(exchange(w, { id, cip, cport: 40000 + (id % 20000), start, rounds: [{ at: start + 2000, req: size(100, 600), resp }], end: start + Math.floor(life * 0.9), gapUs }, files));
  }
  for (let j = 0; j < longConns; j++) {
    const id = shortConns + j;
    const rounds = [];
    for (let at = 50_000 + j * 1000; at < usec - 200_000; at += 100_000) rounds.push({ at, req: size(50, 200), resp: size(100, 800) });
    scripts.push(exchange(w, { id, cip: 0x0a660000 + j, cport: 50000 + j, start: j * 100, rounds, end: usec - 100_000 + j * 100 }, files));
  }
  await runScripts(w, scripts);
  return { ...(await w.end()), files };
}

/** bulk: a server sending `bytes` to a client at `rate` bytes/s from `start`, ACKed every second segment. */
function* bulk(w, { id, cip, start, bytes, rate }, out) {
  const cport = 60000 + (id % 5000);
  const sport = 443;
  const cseq = (0x20000000 + id * 7919) >>> 0;
  const sseq = (0x7ffff000 - id * 104729) >>> 0;
  const sk = 2 * id + 1;
  let t = start;
  yield t;
  w.tcp(t, cip, SERVER, cport, sport, cseq, 0, 0x02, 'syn');
  yield (t += 300);
  w.tcp(t, SERVER, cip, sport, cport, sseq, cseq + 1, 0x12, 'syn');
  yield (t += 300);
  w.tcp(t, cip, SERVER, cport, sport, cseq + 1, sseq + 1, 0x10, 'ts');
  const step = 1448 / rate * 1e6;
  let sent = 0;
  let segs = 0;
  const t0 = t;
  while (sent < bytes) {
    const n = Math.min(1448, bytes - sent);
    t = Math.floor(t0 + 1000 + segs * step);
    yield t;
    w.tcp(t, SERVER, cip, sport, cport, sseq + 1 + sent, cseq + 1, 0x10, 'ts', n, sk, sent);
    sent += n;
    segs++;
    if (segs % 2 === 0 || sent === bytes) {
      yield (t += 20);
      w.tcp(t, cip, SERVER, cport, sport, cseq + 1, sseq + 1 + sent, 0x10, 'ts');
    }
  }
  yield (t += 300);
  w.tcp(t, SERVER, cip, sport, cport, sseq + 1 + sent, cseq + 1, 0x11, 'ts');
  yield (t += 300);
  w.tcp(t, cip, SERVER, cport, sport, cseq + 1, sseq + 2 + sent, 0x11, 'ts');
  yield (t += 300);
  w.tcp(t, SERVER, cip, sport, cport, sseq + 2 + sent, cseq + 2, 0x10, 'ts');
  out.push({ name: fileName(SERVER, sport, cip, cport), key: sk, len: bytes });
}

/**
 * writeSparseMany (issue 13 (b)): `conns` connections open for the whole capture, each sending a
 * small request (50-250 bytes) once a second and getting a small response (100-600 bytes, ACKed
 * 40 ms later), amid `bulkConns` bulk transfers of `bulkRate` bytes/s in all. Handshakes in the
 * first second, FINs in the last. Resolves to {packets, bytes, files: [{name, key, len}]}.
 */
export async function writeSparseMany(path, { conns = 10_000, seconds = 10, bulkConns = 2, bulkRate = 20e6 } = {}) {
  const w = new PcapBuffer(path);
  const files = [];
  const size = rng(7);
  const scripts = [];
  const spread = Math.floor(1e6 / conns);
  for (let id = 0; id < conns; id++) {
    const start = id * spread;
    const rounds = [];
    for (let s = 1; s < seconds; s++) rounds.push({ at: s * 1e6 + start, req: size(50, 250), resp: size(100, 600) });
    scripts.push(exchange(w, { id, cip: 0x0a670000 + id, cport: 30000 + (id % 30000), start, rounds, end: seconds * 1e6 + start }, files));
  }
  for (let j = 0; j < bulkConns; j++) {
    scripts.push(bulk(w, { id: conns + j, cip: 0x0a680000 + j, start: 500 + j * 100, bytes: Math.floor((bulkRate / bulkConns) * (seconds + 0.5)), rate: bulkRate / bulkConns }, files));
  }
  await runScripts(w, scripts);
  return { ...(await w.end()), files };
}

/**
 * writeShortConns (issue 14): `conns` short connections, `concurrent` open at a time, one after
 * another in each slot over `seconds`: each a handshake, one request of 100-600 bytes, a response
 * of `respMin`-`respMax` bytes, skewed to the small end as web responses are (respMin ×
 * (respMax/respMin)^(u⁴), u uniform: median 1.2 KiB, mean 2.8 KiB with the defaults) (MSS segments 100 µs apart, an ACK every second one, a delayed ACK
 * after the last), FINs. Client addresses 10.101.x.y (one per connection), server 10.100.0.1:80.
 * Resolves to {packets, bytes, files: [{name, key, len}]}.
 */
export async function writeShortConns(path, { conns = 50_000, concurrent = 100, seconds = 60, respMin = 1024, respMax = 20_480 } = {}) {
  const w = new PcapBuffer(path);
  const usec = seconds * 1e6;
  const files = [];
  const size = rng(29);
  const scripts = [];
  const { life, start: startOf } = slots(conns, concurrent, usec);
  for (let id = 0; id < conns; id++) {
    const start = startOf(id);
    const { cip, cport } = shortClient(id);
    scripts.push(exchange(w, { id, cip, cport, start, rounds: [{ at: start + 1000, req: size(100, 600), resp: Math.round(respMin * (respMax / respMin) ** ((size(0, 1e6) / 1e6) ** 4)) }], end: start + Math.floor(life * 0.8), ackDelay: Math.min(40_000, Math.floor(life * 0.3)) }, files));
  }
  await runScripts(w, scripts);
  return { ...(await w.end()), files };
}

/**
 * writeHttp: HTTP/1.1 keep-alive connections (the bench's http scenarios, issue 15), `concurrent`
 * open at a time over `seconds`, each a handshake, `trans` GET requests answered 200 with a
 * Content-Length body of bodyMin..bodyMax bytes (skewed small; the pattern bytes of payloadByte),
 * FINs. Resolves to the capture's summary and `bodies`: [{uri, len, sha256}] of every response
 * body, the check's truth.
 */
export async function writeHttp(path, { conns = 10_000, concurrent = 100, seconds = 60, trans = 4, bodyMin = 200, bodyMax = 8192 } = {}) {
  const w = new PcapBuffer(path);
  const usec = seconds * 1e6;
  const size = rng(31);
  const bodies = [];
  const scripts = [];
  const { life, start: startOf } = slots(conns, concurrent, usec);
  function* conn(id, start) {
    yield start; // the streams are made when the connection starts, not all at once
    const { cip, cport } = shortClient(id);
    const reqs = [];
    const resps = [];
    const rounds = [];
    const step = Math.floor((life * 0.7) / trans);
    for (let k = 0; k < trans; k++) {
      const uri = `/files/c${id}-${k}.bin`;
      const req = Buffer.from(`GET ${uri} HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: pcapflow-synth\r\nAccept: */*\r\n\r\n`);
      const len = Math.round(bodyMin * (bodyMax / bodyMin) ** ((size(0, 1e6) / 1e6) ** 3));
      const body = Buffer.allocUnsafe(len);
      fillPattern(body, 0, 2 * id + k, 0, len);
      bodies.push({ uri, len, sha256: createHash('sha256').update(body).digest('hex') });
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nServer: pcapflow-synth\r\nContent-Type: application/octet-stream\r\nContent-Length: ${len}\r\n\r\n`);
      reqs.push(req);
      resps.push(head, body);
      rounds.push({ at: start + 1000 + k * step, req: req.length, resp: head.length + len });
    }
    const streams = { c2s: Buffer.concat(reqs), s2c: Buffer.concat(resps) };
    yield* exchange(w, { id, cip, cport, start, rounds, end: start + Math.floor(life * 0.8), ackDelay: Math.min(40_000, Math.floor(life * 0.05)), streams }, []);
  }
  for (let id = 0; id < conns; id++) scripts.push(conn(id, startOf(id)));
  await runScripts(w, scripts);
  return { ...(await w.end()), bodies };
}

// ---------------------------------------------------------------------------------------------
// TLS handshakes (the bench's tls scenario, issue 16 item 5): hellos built by hand as real
// clients send them, and the fingerprints they should give, computed here from the values put in
// (salesforce/ja3's and FoxIO's JA4.md's rules), not by the library under test.

const tu16 = (v) => Buffer.from([(v >> 8) & 255, v & 255]);
const tvec8 = (b) => Buffer.concat([Buffer.from([b.length]), b]);
const tvec16 = (b) => Buffer.concat([tu16(b.length), b]);
const tvec24 = (b) => Buffer.concat([Buffer.from([(b.length >> 16) & 255, (b.length >> 8) & 255, b.length & 255]), b]);
const tlist16 = (vs) => Buffer.concat(vs.map(tu16));
/** A handshake message; a record (content type, record version 0x0301 or 0x0303). */
const tHandshake = (type, body) => Buffer.concat([Buffer.from([type]), tvec24(body)]);
const tRecord = (type, body, version = 0x0303) => Buffer.concat([Buffer.from([type]), tu16(version), tvec16(body)]);

const GREASES = Array.from({ length: 16 }, (_, i) => (i << 12) | 0x0a00 | (i << 4) | 0x0a);
const tIsGrease = (v) => GREASES.includes(v);
const SIGS_CHROME = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];
const SIGS_FIREFOX = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201];
const SIGS_OPENSSL = [0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0203, 0x0301, 0x0201, 0x0302, 0x0202, 0x0402, 0x0502, 0x0602];
const SIGS_JAVA = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0402, 0x0502, 0x0602, 0x0201, 0x0202];

/**
 * Client profiles: cipher list, extension order (G = a GREASE extension), groups, point formats,
 * signature algorithms, supported_versions (null: TLS 1.2 only), whether the extension order is
 * shuffled per connection (Chrome since 110) and the ALPN lists and SNI use it varies between.
 */
const TLS_PROFILES = [
  {
    name: 'chrome', grease: true, shuffle: true,
    ciphers: ['G', 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
    exts: ['G', 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d, 0x0012, 0x0033, 0x002d, 0x002b, 0x001b, 0x4469, 'G', 0x0015],
    groups: ['G', 0x001d, 0x0017, 0x0018], formats: [0], sigs: SIGS_CHROME, versions: ['G', 0x0304, 0x0303],
    alpns: [['h2', 'http/1.1']], sni: 1,
  },
  {
    name: 'firefox', grease: false, shuffle: false,
    ciphers: [0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
    exts: [0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x0022, 0x0033, 0x002b, 0x000d, 0x002d, 0x001c],
    groups: [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101], formats: [0], sigs: SIGS_FIREFOX, versions: [0x0304, 0x0303],
    alpns: [['h2', 'http/1.1']], sni: 1,
  },
  {
    name: 'curl', grease: false, shuffle: false,
    ciphers: [0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff],
    exts: [0x0000, 0x000b, 0x000a, 0x0023, 0x0010, 0x0016, 0x0017, 0x0031, 0x000d, 0x002b, 0x002d, 0x0033],
    groups: [0x001d, 0x0017, 0x001e, 0x0019, 0x0018], formats: [0, 1, 2], sigs: SIGS_OPENSSL, versions: [0x0304, 0x0303, 0x0302, 0x0301],
    alpns: [['h2', 'http/1.1'], ['http/1.1']], sni: 1,
  },
  {
    name: 'java-tls12', grease: false, shuffle: false,
    ciphers: [0xc02c, 0xc02b, 0xc030, 0xc02f, 0x009f, 0x009e, 0xc024, 0xc023, 0xc028, 0xc027, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff],
    exts: [0x0000, 0x0005, 0x000a, 0x000b, 0x000d, 0x0032, 0x0010, 0x0017],
    groups: [0x0017, 0x0018, 0x0019], formats: [0], sigs: SIGS_JAVA, versions: null,
    alpns: [['http/1.1'], []], sni: 0.75,
  },
];

const SNI_NAMES = ['www.example.com', 'api.example.net', 'cdn.static.example.org', 'login.example.com', 'updates.example.io', 'telemetry.example.com'];

/**
 * tlsCertificates: DER certificates for the TLS 1.2 server flights: by openssl (an RSA CA and an
 * EC leaf per SNI_NAMES entry, signed by it) when it is installed, else one fixed self-signed EC
 * certificate for all. Resolves to {ca, leaves: Buffer[] (by SNI_NAMES index)}.
 */
function tlsCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'synth-tls-'));
  try {
    const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-subj', '/O=pcapflow bench/CN=pcapflow bench CA', '-days', '3650', '-out', 'ca.pem');
    const leaves = SNI_NAMES.map((name, i) => {
      ssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `l${i}.key`, '-subj', `/CN=${name}`, '-out', `l${i}.csr`);
      writeFileSync(join(dir, `l${i}.ext`), `subjectAltName=DNS:${name},DNS:*.${name}\n`);
      ssl('x509', '-req', '-in', `l${i}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(1000 + i), '-days', '365', '-extfile', `l${i}.ext`, '-outform', 'DER', '-out', `l${i}.der`);
      return readFileSync(join(dir, `l${i}.der`));
    });
    ssl('x509', '-in', 'ca.pem', '-outform', 'DER', '-out', 'ca.der');
    return { ca: readFileSync(join(dir, 'ca.der')), leaves };
  } catch {
    const der = Buffer.from(FIXED_CERT, 'base64');
    return { ca: der, leaves: SNI_NAMES.map(() => der) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A self-signed EC P-256 certificate (CN=bench.example, 2026-2036), for machines without openssl. */
const FIXED_CERT =
  'MIIBoDCCAUWgAwIBAgIUdPrK6ThuAfw2TrB+k91to8TPiB8wCgYIKoZIzj0EAwIwGDEWMBQGA1UEAwwNYmVuY2guZXhhbXBsZTAeFw0yNjEyMDUyMTI4NTRaFw0zNjEyMDIyMTI4NTRaMBgxFjAUBgNVBAMMDWJlbmNoLmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASFuqE1su6WE4Vy9VmjexTkvNvGagwhT5TKV2ZGgnrw6q2QD02KEZREuhCPlazZYElZhmA/ErJm9F29cdYDPZixo20wazAdBgNVHQ4EFgQUWW1UgxssFI6VJEFuPWaKFXTUMk8wHwYDVR0jBBgwFoAUWW1UgxssFI6VJEFuPWaKFXTUMk8wDwYDVR0TAQH/BAUwAwEB/zAYBgNVHREEETAPgg1iZW5jaC5leGFtcGxlMAoGCCqGSM49BAMCA0kAMEYCIQCUJrYU/TZj/NB5cA7rl1n+u0te1T5xutPrG/qrG14DpAIhAK+ByC0shKX3istsSx67bzWPfSaevu3DpfDKuE9T2tlK';

/** expectedJa3: salesforce/ja3's string and MD5 (decimal fields, GREASE removed from ciphers, extensions, groups). */
function expectedJa3(h) {
  const d = (l) => l.filter((v) => !tIsGrease(v)).join('-');
  const s = `${h.legacyVersion},${d(h.ciphers)},${d(h.exts)},${d(h.groups)},${h.formats.join('-')}`;
  return { ja3: s, ja3Hash: createHash('md5').update(s).digest('hex') };
}

/** expectedJa4: JA4.md (TLS over TCP): t, version, d/i, counts, ALPN ends, sorted cipher and extension hashes. */
function expectedJa4(h) {
  const VER = { 0x0304: '13', 0x0303: '12', 0x0302: '11', 0x0301: '10' };
  const ciphers = h.ciphers.filter((v) => !tIsGrease(v));
  const exts = h.exts.filter((v) => !tIsGrease(v));
  const version = h.versions === null ? h.legacyVersion : Math.max(...h.versions.filter((v) => !tIsGrease(v)));
  const two = (n) => String(Math.min(n, 99)).padStart(2, '0');
  const alpn = h.alpn.length === 0 ? '00' : h.alpn[0][0] + h.alpn[0][h.alpn[0].length - 1];
  const hex = (v) => v.toString(16).padStart(4, '0');
  const sha12 = (s) => createHash('sha256').update(s).digest('hex').slice(0, 12);
  const b = ciphers.map(hex).sort().join(',');
  const c = `${exts.filter((v) => v !== 0x0000 && v !== 0x0010).map(hex).sort().join(',')}_${h.sigs.map(hex).join(',')}`;
  return `t${VER[version]}${h.sni === null ? 'i' : 'd'}${two(ciphers.length)}${two(exts.length)}${alpn}_${sha12(b)}_${sha12(c)}`;
}

/** A pseudo-random pool that the encrypted-looking bytes are cut from. */
const RANDOM_POOL = (() => {
  const next = rng(0x7153);
  const b = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(next(0, 0xfffffffe), i);
  return b;
})();
const poolBytes = (n, at) => RANDOM_POOL.subarray(at % (RANDOM_POOL.length - n), (at % (RANDOM_POOL.length - n)) + n);

/** A ClientHello's extension body. */
function tlsExtBody(type, h, pick, grease) {
  switch (type) {
    case 0x0000: return tvec16(Buffer.concat([Buffer.from([0]), tvec16(Buffer.from(h.sni, 'latin1'))]));
    case 0x000a: return tvec16(tlist16(h.groups));
    case 0x000b: return tvec8(Buffer.from(h.formats));
    case 0x000d: return tvec16(tlist16(h.sigs));
    case 0x0010: return tvec16(Buffer.concat(h.alpn.map((p) => tvec8(Buffer.from(p, 'latin1')))));
    case 0x002b: return tvec8(tlist16(h.versions));
    case 0x002d: return tvec8(Buffer.from([1]));
    case 0x0005: return Buffer.from([1, 0, 0, 0, 0]);
    case 0x001b: return Buffer.from([2, 0, 2]);
    case 0x001c: return tu16(0x4001);
    case 0x0022: return tvec16(tlist16([0x0403, 0x0503, 0x0603, 0x0203]));
    case 0x0032: return tvec16(tlist16(h.sigs));
    case 0x4469: return tvec16(tvec8(Buffer.from('h2')));
    case 0xff01: return Buffer.from([0]);
    case 0x0033: {
      const shares = [];
      if (grease) shares.push(Buffer.concat([tu16(h.groups[0]), tvec16(Buffer.from([0]))]));
      shares.push(Buffer.concat([tu16(0x001d), tvec16(poolBytes(32, pick(0, 1 << 19)))]));
      if (h.profile === 'firefox') shares.push(Buffer.concat([tu16(0x0017), tvec16(Buffer.concat([Buffer.from([4]), poolBytes(64, pick(0, 1 << 19))]))]));
      return tvec16(Buffer.concat(shares));
    }
    default: return tIsGrease(type) ? Buffer.from(type === h.exts[0] ? [] : [0]) : Buffer.alloc(0); // 0x0012, 0x0016, 0x0017, 0x0023, 0x0031, GREASE
  }
}

/**
 * tlsClientHello: a client's hello for connection `id` by `profile`: GREASE values (two different
 * ones for the extensions, as Chrome), the extension order shuffled if the profile does, the
 * profile's ALPN and SNI choices. Returns {record, hello (the values put in)}.
 */
function tlsClientHello(profile, id, pick) {
  const g = () => GREASES[pick(0, 15)];
  const g1 = g();
  let g2 = g();
  while (g2 === g1) g2 = g();
  const gc = g();
  let seenG = 0;
  const greaseFor = (v) => (v === 'G' ? (seenG++ === 0 ? g1 : g2) : v);
  let exts = profile.exts.map(greaseFor);
  if (profile.shuffle) {
    // Chrome: the order permuted, the GREASE extensions and padding kept in place
    const fixed = (v) => tIsGrease(v) || v === 0x0015;
    const movable = exts.filter((v) => !fixed(v));
    for (let i = movable.length - 1; i > 0; i--) {
      const j = pick(0, i);
      [movable[i], movable[j]] = [movable[j], movable[i]];
    }
    exts = exts.map((v) => (fixed(v) ? v : movable.shift()));
  }
  const sni = profile.sni >= 1 || pick(0, 999) < profile.sni * 1000 ? SNI_NAMES[pick(0, SNI_NAMES.length - 1)] : null;
  if (sni === null) exts = exts.filter((v) => v !== 0x0000);
  const alpn = profile.alpns[pick(0, profile.alpns.length - 1)];
  if (alpn.length === 0) exts = exts.filter((v) => v !== 0x0010);
  const h = {
    profile: profile.name,
    legacyVersion: 0x0303,
    ciphers: profile.ciphers.map((v) => (v === 'G' ? gc : v)),
    exts,
    groups: profile.groups.map((v) => (v === 'G' ? gc : v)),
    formats: profile.formats,
    sigs: profile.sigs,
    versions: profile.versions === null ? null : profile.versions.map((v) => (v === 'G' ? g() : v)),
    sni,
    alpn,
  };
  const body = [];
  let len = 0;
  for (const t of exts) {
    if (t === 0x0015) continue;
    const b = Buffer.concat([tu16(t), tvec16(tlsExtBody(t, h, pick, profile.grease))]);
    body.push(b);
    len += b.length;
  }
  const head = Buffer.concat([tu16(h.legacyVersion), poolBytes(32, id * 97), tvec8(poolBytes(32, id * 89 + 7)), tvec16(tlist16(h.ciphers)), tvec8(Buffer.from([0]))]);
  if (exts.includes(0x0015)) {
    // padding to a 512-byte hello (as BoringSSL), kept at its place in the order
    const pad = Math.max(1, 512 - 4 - head.length - 2 - len - 4);
    body.splice(exts.indexOf(0x0015), 0, Buffer.concat([tu16(0x0015), tvec16(Buffer.alloc(pad))]));
  }
  return { record: tRecord(22, tHandshake(1, Buffer.concat([head, tvec16(Buffer.concat(body))])), 0x0301), hello: h };
}

/** The TLS 1.3 cipher a server picks: the client's first of these. */
const SERVER_13 = [0x1301, 0x1302, 0x1303];
const SERVER_12 = [0xc02f, 0xc02b, 0xc030, 0xc02c, 0x009c];

/**
 * tlsServerFlight: the server's answer to hello `h`: TLS 1.3 when `tls13` (ServerHello with
 * key_share and supported_versions, ChangeCipherSpec, the encrypted rest as application data),
 * else TLS 1.2 (ServerHello, Certificate with `chain`, ServerKeyExchange, ServerHelloDone: in one
 * record or one record each). Returns {bytes, version, cipher, exts, alpn}.
 */
function tlsServerFlight(h, tls13, chain, oneRecord, pick) {
  const at = pick(0, 1 << 19);
  if (tls13) {
    const cipher = h.ciphers.find((c) => SERVER_13.includes(c));
    const exts = [0x0033, 0x002b];
    const extBytes = Buffer.concat([tu16(0x0033), tvec16(Buffer.concat([tu16(0x001d), tvec16(poolBytes(32, at))])), tu16(0x002b), tvec16(tu16(0x0304))]);
    const sh = tHandshake(2, Buffer.concat([tu16(0x0303), poolBytes(32, at + 40), tvec8(poolBytes(32, at + 80)), tu16(cipher), Buffer.from([0]), tvec16(extBytes)]));
    const bytes = Buffer.concat([tRecord(22, sh), tRecord(20, Buffer.from([1])), tRecord(23, poolBytes(pick(1800, 4200), at + 200))]);
    return { bytes, version: 0x0304, cipher, exts, alpn: null };
  }
  const cipher = h.ciphers.find((c) => SERVER_12.includes(c));
  const alpn = h.alpn.length === 0 ? null : h.alpn[0];
  const exts = [0xff01];
  if (h.sni !== null) exts.push(0x0000);
  exts.push(0x000b);
  if (h.exts.includes(0x0023)) exts.push(0x0023);
  if (alpn !== null) exts.push(0x0010);
  if (h.exts.includes(0x0017)) exts.push(0x0017);
  const extBody = (t) => (t === 0xff01 ? Buffer.from([0]) : t === 0x000b ? tvec8(Buffer.from([0])) : t === 0x0010 ? tvec16(tvec8(Buffer.from(alpn, 'latin1'))) : Buffer.alloc(0));
  const extBytes = Buffer.concat(exts.map((t) => Buffer.concat([tu16(t), tvec16(extBody(t))])));
  const msgs = [
    tHandshake(2, Buffer.concat([tu16(0x0303), poolBytes(32, at + 40), tvec8(poolBytes(32, at + 80)), tu16(cipher), Buffer.from([0]), tvec16(extBytes)])),
    tHandshake(11, tvec24(Buffer.concat(chain.map(tvec24)))),
    tHandshake(12, Buffer.concat([Buffer.from([3, 0x00, 0x1d, 32]), poolBytes(32, at + 120), tu16(0x0403), tvec16(poolBytes(pick(70, 72), at + 160))])),
    tHandshake(14, Buffer.alloc(0)),
  ];
  const bytes = oneRecord ? tRecord(22, Buffer.concat(msgs)) : Buffer.concat(msgs.map((m) => tRecord(22, m)));
  return { bytes, version: 0x0303, cipher, exts, alpn };
}

/** Application data records holding `n` bytes (at most 16 KiB plus a 17-byte tag each). */
function tlsAppData(n, at) {
  const recs = [];
  for (let done = 0; done < n; ) {
    const k = Math.min(16384 + 17, n - done);
    recs.push(tRecord(23, poolBytes(k, at + done)));
    done += k;
  }
  return Buffer.concat(recs);
}

/**
 * writeTls: `conns` TLS connections to 10.100.0.1:443 (the bench's tls scenario, issue 16),
 * `concurrent` open at a time over `seconds`: each a TCP handshake, a ClientHello of one of
 * TLS_PROFILES (GREASE, shuffled extension order, SNI and ALPN varied per connection), the
 * server's answer in TLS 1.3 (to a share of the clients offering it) or TLS 1.2 (with a chain of
 * one or two DER certificates), the rest of the handshake, an encrypted request of 200-600 bytes
 * and response of respMin..respMax bytes (skewed small) as application data, FINs. Resolves to the
 * capture's summary and `expect`: per connection {client ("ip:port"), sni, ja3, ja3Hash, ja4,
 * ja3s, ja3sHash, version, alpn (the server's), certs (SHA-256 of each DER sent)}, computed here.
 */
export async function writeTls(path, { conns = 50_000, concurrent = 100, seconds = 60, respMin = 1024, respMax = 16_384, tls13Share = 0.6 } = {}) {
  const w = new PcapBuffer(path);
  const usec = seconds * 1e6;
  const pick = rng(43);
  const certs = tlsCertificates();
  const certSha = new Map([certs.ca, ...certs.leaves].map((d) => [d, createHash('sha256').update(d).digest('hex')]));
  const expect = [];
  const scripts = [];
  const { life, start: startOf } = slots(conns, concurrent, usec);
  function* conn(id, start) {
    yield start; // the streams are made when the connection starts, not all at once
    const { cip, cport } = shortClient(id);
    const profile = TLS_PROFILES[id % TLS_PROFILES.length];
    const { record: ch, hello: h } = tlsClientHello(profile, id, pick);
    const tls13 = h.versions !== null && pick(0, 999) < tls13Share * 1000;
    const leaf = certs.leaves[h.sni === null ? 0 : SNI_NAMES.indexOf(h.sni)];
    const chain = tls13 ? [] : pick(0, 1) === 0 ? [leaf] : [leaf, certs.ca];
    const sf = tlsServerFlight(h, tls13, chain, pick(0, 1) === 0, pick);
    const at = pick(0, 1 << 19);
    const req = tlsAppData(pick(200, 600), at);
    const resp = tlsAppData(Math.round(respMin * (respMax / respMin) ** ((pick(0, 1e6) / 1e6) ** 4)), at + 1000);
    const ccs = tRecord(20, Buffer.from([1]));
    const fin = tRecord(22, poolBytes(40, at + 500));
    const c2s = tls13 ? [ch, Buffer.concat([ccs, tlsAppData(53, at + 600), req])] : [ch, Buffer.concat([tRecord(22, tHandshake(16, tvec8(poolBytes(32, at + 700)))), ccs, fin]), req];
    const s2c = tls13 ? [sf.bytes, Buffer.concat([tlsAppData(pick(200, 260), at + 800), tlsAppData(pick(200, 260), at + 900), resp])] : [sf.bytes, Buffer.concat([ccs, fin]), resp];
    const step = Math.floor((life * 0.6) / c2s.length);
    const rounds = c2s.map((b, k) => ({ at: start + 1000 + k * step, req: b.length, resp: s2c[k].length }));
    const { ja3, ja3Hash } = expectedJa3(h);
    const ja3s = `${0x0303},${sf.cipher},${sf.exts.join('-')}`;
    const ip = `10.101.${(cip >>> 8) & 255}.${cip & 255}`;
    expect.push({ client: `${ip}:${cport}`, profile: profile.name, sni: h.sni, ja3, ja3Hash, ja4: expectedJa4(h), ja3s, ja3sHash: createHash('md5').update(ja3s).digest('hex'), version: sf.version, alpn: sf.alpn, certs: chain.map((d) => certSha.get(d)) });
    const streams = { c2s: Buffer.concat(c2s), s2c: Buffer.concat(s2c) };
    yield* exchange(w, { id, cip, cport, sport: 443, start, rounds, end: start + Math.floor(life * 0.8), ackDelay: Math.min(40_000, Math.floor(life * 0.05)), streams }, []);
  }
  for (let id = 0; id < conns; id++) scripts.push(conn(id, startOf(id)));
  await runScripts(w, scripts);
  return { ...(await w.end()), expect };
}
