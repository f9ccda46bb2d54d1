// Synthesizes benchmark captures: classic pcap (µs, little-endian, Ethernet) of TCP connections
// with a full handshake, data in MTU-size (or smaller) segments with the timestamp option, ACKs from
// the receiver every `ackEvery` segments, and FIN teardown. Deterministic: the same arguments give
// the same file. Each connection's client sends a short request; the server sends `bytesPerConn`
// bytes whose content is derived from the connection number, so outputs can be checked.
//
//   node bench/synth.js OUT.pcap --conns 1 --bytes 314572800 [--mss 1448] [--ack-every 2]
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

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
