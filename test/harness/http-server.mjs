#!/usr/bin/env node
/**
 * http-server: the harness's HTTP/1.1 server (node:http). Run inside the server namespace:
 *
 *   node http-server.mjs --log DIR --hosts 10.201.0.2,fd00:201::2 [--port 8080] [--seed 1]
 *
 * What it answers (the request target drives it):
 *   /upload/...     reads the request body (undoing its Content-Encoding), answers 201 with a
 *                   small JSON body
 *   /close...       no Content-Length: the body runs until the connection closes (send it
 *                   HTTP/1.0 requests)
 *   anything else   a seeded body of `size` bytes (`kind` bin or text), with an ETag;
 *                   `enc=gzip,br` encodes it (codings applied in that order, see http-common.mjs),
 *                   `te=chunked` sends it chunked in pieces of random sizes (`trailer=1` adds a
 *                   trailer field), else with Content-Length. A HEAD gets the headers only, a
 *                   request whose If-None-Match is the ETag gets 304.
 *   Expect: 100-continue   answered 100 Continue first (node's checkContinue).
 *   CONNECT         200 Connection Established, then the tunnel: the server sends `TUNNEL_BYTES`
 *                   seeded bytes (beginning like an HTTP response, to tempt a parser), reads the
 *                   client's bytes until its FIN, then ends.
 * Every transaction is logged once it ended (TransactionLog, http-common.mjs): what the server
 * received and what it sent. Prints "ready" once listening; SIGTERM stops it.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Rng } from './traffic-common.mjs';
import { BodyStream, Digest, NO_BODY, TransactionLog, body, contentEncoding, decode, encode, keyName, plainIp, seedOf, sha256 } from './http-common.mjs';

const TUNNEL_BYTES = 150_000;

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    hosts: { type: 'string' },
    port: { type: 'string', default: '8080' },
    seed: { type: 'string', default: '1' },
  },
});
if (!values.log || !values.hosts) {
  console.error('usage: http-server.mjs --log DIR --hosts IP[,IP] [--port P] [--seed S]');
  process.exit(2);
}
const seed = Number(values.seed);
const log = new TransactionLog(values.log, 'server');
/** Transactions begun per socket: the next one's place in its connection. */
const begun = new WeakMap();

function begin(socket) {
  const n = begun.get(socket) ?? 0;
  begun.set(socket, n + 1);
  return {
    trans: n,
    client: { ip: plainIp(socket.remoteAddress), port: socket.remotePort },
    server: { ip: plainIp(socket.localAddress), port: socket.localPort },
  };
}

/** readAll collects a (small) request body. */
function readAll(stream) {
  return new Promise((resolve, reject) => {
    const parts = [];
    stream.on('data', (d) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

/** write honours backpressure. */
function write(res, chunk) {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      res.off('drain', onDrain);
      reject(new Error('closed while writing'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

async function handle(req, res) {
  const t = begin(req.socket);
  const socket = req.socket;
  const url = new URL(req.url, 'http://harness');
  const name = keyName(t.client, t.trans);
  const rec = { case: req.headers['x-case'] ?? '', ...t, method: req.method, uri: req.url, status: 0, request: NO_BODY, response: NO_BODY, c2sEnd: null, s2cEnd: null };
  try {
    const wire = await readAll(req);
    rec.request = log.bodyEntry(wire, decode(wire, req.headers['content-encoding']), req.headers['content-encoding'], false, name);
    const size = Number(url.searchParams.get('size') ?? '1000');
    const codings = (url.searchParams.get('enc') ?? '').split(',').filter(Boolean);
    const chunked = url.searchParams.get('te') === 'chunked';
    const trailer = url.searchParams.get('trailer') === '1';
    const finished = new Promise((resolve, reject) => {
      res.on('finish', resolve);
      res.on('close', () => (res.writableFinished ? resolve() : reject(new Error('closed before the response ended'))));
    });
    if (url.pathname.startsWith('/upload/')) {
      const out = Buffer.from(JSON.stringify({ received: rec.request.bytes, sha256: rec.request.sha256 }));
      res.writeHead(201, { 'Content-Type': 'application/json', 'Content-Length': out.length });
      res.end(out);
      rec.status = 201;
      rec.response = log.bodyEntry(out, out, undefined, true, `${name}.res`);
    } else if (url.pathname.startsWith('/close')) {
      const out = body(seedOf(seed, req.url), size, 'bin');
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.end(out);
      rec.status = 200;
      rec.response = log.bodyEntry(out, out, undefined, true, `${name}.res`);
    } else if (size > 8 << 20) {
      // large: made and sent piece by piece, never whole
      rec.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size });
      const d = new Digest();
      if (req.method !== 'HEAD') {
        const gen = new BodyStream(seedOf(seed, req.url), size, url.searchParams.get('kind') ?? 'bin');
        for (let piece = gen.next(); piece !== null; piece = gen.next()) {
          d.update(piece);
          await write(res, piece);
        }
      }
      res.end();
      const { bytes, sha256: h } = d.done();
      rec.response = { wireBytes: bytes, wireSha256: h, bytes, sha256: h, encodings: [], wireFile: null, file: null };
    } else {
      const plain = body(seedOf(seed, req.url), size, url.searchParams.get('kind') ?? 'bin');
      const etag = `"${sha256(plain).slice(0, 16)}"`;
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { ETag: etag });
        res.end();
        rec.status = 304;
      } else {
        const wire = encode(plain, codings);
        const headers = { 'Content-Type': url.searchParams.get('kind') === 'text' ? 'text/plain' : 'application/octet-stream', ETag: etag };
        if (codings.length > 0) headers['Content-Encoding'] = contentEncoding(codings);
        if (!chunked) headers['Content-Length'] = wire.length;
        if (trailer) headers.Trailer = 'X-Body-Sha256';
        res.writeHead(200, headers);
        rec.status = 200;
        if (req.method === 'HEAD') res.end();
        else {
          // chunks of random sizes (res.write: one chunk each when chunked)
          const rng = new Rng(seedOf(seed, `${req.url} cuts`));
          for (let off = 0; off < wire.length; ) {
            const n = chunked ? Math.min(wire.length - off, 1 + (rng.u32() % 20000)) : wire.length;
            await write(res, wire.subarray(off, off + n));
            off += n;
          }
          if (trailer) res.addTrailers({ 'X-Body-Sha256': sha256(wire) });
          res.end();
          rec.response = log.bodyEntry(wire, plain, headers['Content-Encoding'], true, `${name}.res`);
        }
      }
    }
    await finished;
    rec.s2cEnd = socket.bytesWritten;
  } catch (err) {
    rec.error = String(err && err.message ? err.message : err);
    res.destroy();
  }
  log.write(rec);
}

/** tunnel answers a CONNECT and carries the tunnel's bytes (see the file comment). */
function tunnel(req, socket, head) {
  const t = begin(socket);
  const rec = { case: req.headers['x-case'] ?? '', ...t, method: req.method, uri: req.url, status: 200, request: NO_BODY, response: NO_BODY, tunnel: null, c2sEnd: null, s2cEnd: null };
  const c2s = new Digest();
  const s2c = new Digest();
  c2s.update(head);
  socket.on('data', (d) => c2s.update(d));
  socket.on('error', (err) => (rec.error = String(err.message)));
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  rec.s2cEnd = socket.bytesWritten;
  const bytes = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc'), body(seedOf(seed, req.url), TUNNEL_BYTES, 'bin')]).subarray(0, TUNNEL_BYTES);
  s2c.update(bytes);
  socket.write(bytes);
  socket.on('end', () => socket.end());
  socket.on('close', () => {
    rec.tunnel = { target: req.url, c2s: c2s.done(), s2c: s2c.done() };
    log.write(rec);
  });
}

const servers = values.hosts.split(',').map((host) => {
  const s = http.createServer({ keepAliveTimeout: 30_000 }, handle);
  s.on('checkContinue', (req, res) => {
    res.writeContinue();
    void handle(req, res);
  });
  s.on('connect', tunnel);
  s.on('clientError', (err, socket) => {
    console.error(`client error: ${err.code ?? err.message}`);
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(Number(values.port), host, () => resolve(s));
  });
});
const listening = await Promise.all(servers);
console.log('ready');
process.on('SIGTERM', () => {
  for (const s of listening) s.close();
  setTimeout(() => process.exit(0), 200).unref();
});
