#!/usr/bin/env node
/**
 * http-client: the harness's HTTP/1.1 client (node:http, and node:net where the client must
 * write raw bytes). Run inside the client namespace, against http-server.mjs:
 *
 *   node http-client.mjs --log DIR --targets 10.201.0.2,fd00:201::2 [--port 8080] [--seed 1]
 *        [--big BYTES] [--big-target N]
 *
 * For each target (all at once, each case on connections of its own; see CASES in the harness
 * README): `keepalive` (several transactions on one connection, with a chunked response with a
 * trailer, an upload, HEAD, a conditional GET answered 304), `encodings` (gzip, br, deflate
 * zlib-wrapped and raw, `gzip, br`, chunked gzip), `uploads` (Expect: 100-continue, a
 * multipart/form-data upload, a chunked request body, a gzip request body), `pipeline` (five
 * requests written at once on a raw socket, the responses read back in order), `close` (an
 * HTTP/1.0 request whose response runs until the connection closes) and `connect` (a CONNECT
 * answered 200, then opaque bytes both ways in the tunnel). Plus, on target number --big-target
 * (default 1, the second), one response of --big bytes (default 100 MiB), digested as it comes.
 *
 * Every transaction is logged (TransactionLog, http-common.mjs): what the client sent and what it
 * received. Prints one JSON line (transactions, failures) and exits 0 when every case ran to its
 * end, 1 otherwise.
 */
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Digest, NO_BODY, TransactionLog, body, contentEncoding, decode, encode, keyName, plainIp, seedOf, sha256, tokens } from './http-common.mjs';

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    targets: { type: 'string' },
    port: { type: 'string', default: '8080' },
    seed: { type: 'string', default: '1' },
    big: { type: 'string', default: String(100 * 1024 * 1024) },
    'big-target': { type: 'string', default: '1' },
    'timeout-ms': { type: 'string', default: '90000' },
  },
});
if (!values.log || !values.targets) {
  console.error('usage: http-client.mjs --log DIR --targets IP[,IP] [--port P] [--seed S] [--big BYTES]');
  process.exit(2);
}
const port = Number(values.port);
const seed = Number(values.seed);
const log = new TransactionLog(values.log, 'client');
let transactions = 0;
/** Requests begun per socket: the next one's place in its connection. */
const begun = new WeakMap();

function tupleOf(socket) {
  return {
    client: { ip: plainIp(socket.localAddress), port: socket.localPort },
    server: { ip: plainIp(socket.remoteAddress), port: socket.remotePort },
  };
}

function record(rec) {
  transactions++;
  log.write(rec);
}

/**
 * exchange runs one request through node:http and logs it. `body`: the request body (decoded),
 * sent with Content-Length, or as `chunks` (chunked); `codings` encode it; `expect100` sends the
 * headers alone and the body after 100 Continue.
 */
function exchange(host, agent, caseName, opts) {
  const { method = 'GET', path, headers = {}, codings = [], chunks = null, expect100 = false, extra = {} } = opts;
  const plain = chunks !== null ? Buffer.concat(chunks) : (opts.body ?? null);
  const wire = plain === null ? null : encode(plain, codings);
  const h = { Host: `${host.includes(':') ? `[${host}]` : host}:${port}`, 'X-Case': caseName, ...headers };
  if (codings.length > 0) h['Content-Encoding'] = contentEncoding(codings);
  if (wire !== null && chunks === null) h['Content-Length'] = wire.length;
  if (expect100) h.Expect = '100-continue';
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, agent, headers: h });
    let trans = -1;
    let c2sEnd = null;
    req.on('socket', (s) => {
      trans = begun.get(s) ?? 0;
      begun.set(s, trans + 1);
    });
    req.on('finish', () => (c2sEnd = req.socket?.bytesWritten ?? null));
    req.on('error', reject);
    req.on('response', (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => {
        try {
          const t = tupleOf(res.socket ?? req.socket);
          const name = keyName(t.client, trans);
          const resWire = Buffer.concat(parts);
          const ce = res.headers['content-encoding'];
          record({
            case: caseName,
            ...t,
            trans,
            method,
            uri: path,
            status: res.statusCode,
            request: wire === null ? NO_BODY : log.bodyEntry(wire, plain, h['Content-Encoding'], true, `${name}.req`),
            response: log.bodyEntry(resWire, decode(resWire, ce), ce, false, `${name}.res`),
            c2sEnd,
            s2cEnd: null,
            ...extra,
          });
          resolve(res);
        } catch (err) {
          reject(err);
        }
      });
    });
    if (expect100) {
      req.flushHeaders();
      req.on('continue', () => req.end(wire));
    } else if (chunks !== null) {
      for (const c of chunks) req.write(c);
      req.end();
    } else req.end(wire ?? undefined);
  });
}

/** sequence runs the requests one after another on one keep-alive connection. */
async function sequence(host, caseName, requests) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const r of requests) {
      const res = await exchange(host, agent, caseName, typeof r === 'function' ? r() : r);
      if (r.onResponse) r.onResponse(res);
    }
  } finally {
    agent.destroy();
  }
}

async function keepalive(host) {
  let etag = '';
  await sequence(host, 'keepalive', [
    { path: '/ka/small?size=20000' },
    { path: '/ka/body?size=300000' },
    { path: '/ka/chunked?size=90000&kind=text&te=chunked&trailer=1' },
    { method: 'POST', path: '/upload/ka', body: body(seedOf(seed, `${host} ka upload`), 40000), headers: { 'Content-Type': 'application/octet-stream' } },
    { method: 'HEAD', path: '/ka/head?size=12345' },
    { path: '/ka/head?size=12345' },
    { path: '/ka/etag?size=3000', onResponse: (res) => (etag = res.headers.etag ?? '') },
    () => ({ path: '/ka/etag?size=3000', headers: { 'If-None-Match': etag } }),
    { path: '/ka/last?size=7000' },
  ]);
}

async function encodings(host) {
  await sequence(host, 'encodings', [
    { path: '/enc/gzip?size=400000&kind=text&enc=gzip' },
    { path: '/enc/br?size=200000&kind=text&enc=br' },
    { path: '/enc/deflate?size=150000&kind=text&enc=deflate' },
    { path: '/enc/deflate-raw?size=50000&kind=text&enc=deflate-raw' },
    { path: '/enc/stacked?size=120000&kind=text&enc=gzip,br' },
    { path: '/enc/chunked?size=250000&kind=text&enc=gzip&te=chunked' },
    { path: '/enc/incompressible?size=30000&enc=gzip' },
  ]);
}

/** multipart: a multipart/form-data body of three parts, and what each part holds. */
function multipart(host) {
  const boundary = '----pcapflowHarness7d3f';
  const file = body(seedOf(seed, `${host} form file`), 60000);
  const json = Buffer.from(JSON.stringify({ host, note: 'a small JSON part', n: [1, 2, 3] }));
  const parts = [
    { name: 'title', filename: null, type: null, data: Buffer.from('harness upload') },
    { name: 'file', filename: 'data.bin', type: 'application/octet-stream', data: file },
    { name: 'meta', filename: 'meta.json', type: 'application/json', data: json },
  ];
  const pieces = [];
  for (const p of parts) {
    pieces.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`), p.data, Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    body: Buffer.concat(pieces),
    type: `multipart/form-data; boundary=${boundary}`,
    parts: parts.map((p) => ({ name: p.name, filename: p.filename, bytes: p.data.length, sha256: sha256(p.data) })),
  };
}

async function uploads(host) {
  const form = multipart(host);
  const pieces = [];
  for (let i = 0; i < 7; i++) pieces.push(body(seedOf(seed, `${host} chunked ${i}`), 3000 + i * 1111));
  await sequence(host, 'uploads', [
    { method: 'POST', path: '/upload/continue', body: body(seedOf(seed, `${host} continue`), 50000), expect100: true },
    { method: 'POST', path: '/upload/form', body: form.body, headers: { 'Content-Type': form.type }, extra: { parts: form.parts } },
    { method: 'POST', path: '/upload/chunked', chunks: pieces },
    { method: 'PUT', path: '/upload/gzip', body: body(seedOf(seed, `${host} gz`), 80000, 'text'), codings: ['gzip'], headers: { 'Content-Type': 'text/plain' } },
  ]);
}

/** rawExchange writes `bytes` on a raw socket and resolves with every byte received until the server's FIN. */
function rawExchange(host, bytes) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const got = [];
    let t = null;
    s.on('connect', () => {
      t = tupleOf(s);
      s.write(bytes);
    });
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      s.end();
      resolve({ t, data: Buffer.concat(got) });
    });
    s.on('error', reject);
  });
}

/**
 * parseResponses reads responses back to back from `buf`, one per method in `methods` (a plain
 * reader for what http-server.mjs sends: Content-Length, chunked with trailers, or until the
 * end; none for HEAD, 1xx, 204, 304).
 */
function parseResponses(buf, methods) {
  const out = [];
  let at = 0;
  const line = () => {
    const nl = buf.indexOf('\r\n', at);
    if (nl < 0) throw new Error('a response is cut short');
    const s = buf.subarray(at, nl).toString('latin1');
    at = nl + 2;
    return s;
  };
  for (const method of methods) {
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(line())?.[1]);
    const headers = {};
    for (let l = line(); l !== ''; l = line()) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    let wire;
    if (method === 'HEAD' || status === 204 || status === 304) wire = Buffer.alloc(0);
    else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts = [];
      for (;;) {
        const size = parseInt(line(), 16);
        if (size === 0) break;
        parts.push(buf.subarray(at, at + size));
        at += size;
        if (line() !== '') throw new Error('chunk not followed by CRLF');
      }
      while (line() !== '');
      wire = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      wire = buf.subarray(at, at + n);
      at += n;
    } else {
      wire = buf.subarray(at);
      at = buf.length;
    }
    out.push({ status, headers, wire });
  }
  if (at !== buf.length) throw new Error(`${buf.length - at} bytes after the last response`);
  return out;
}

async function pipeline(host) {
  const hh = `Host: ${host.includes(':') ? `[${host}]` : host}:${port}\r\nX-Case: pipeline\r\n`;
  const upload = body(seedOf(seed, `${host} pipe upload`), 5000);
  const reqs = [
    { method: 'GET', uri: '/pipe/1?size=1000', head: '', body: null },
    { method: 'GET', uri: '/pipe/2?size=30000&kind=text&enc=gzip', head: '', body: null },
    { method: 'POST', uri: '/upload/pipe', head: `Content-Length: ${upload.length}\r\n`, body: upload },
    { method: 'HEAD', uri: '/pipe/4?size=800', head: '', body: null },
    { method: 'GET', uri: '/pipe/5?size=20000&te=chunked&trailer=1', head: 'Connection: close\r\n', body: null },
  ];
  const wires = reqs.map((r) => Buffer.concat([Buffer.from(`${r.method} ${r.uri} HTTP/1.1\r\n${hh}${r.head}\r\n`), r.body ?? Buffer.alloc(0)]));
  // all five in one write: the server has them before it answers the first
  const { t, data } = await rawExchange(host, Buffer.concat(wires));
  const responses = parseResponses(data, reqs.map((r) => r.method));
  let c2sEnd = 0;
  reqs.forEach((r, i) => {
    c2sEnd += wires[i].length;
    const res = responses[i];
    const name = keyName(t.client, i);
    record({
      case: 'pipeline',
      ...t,
      trans: i,
      method: r.method,
      uri: r.uri,
      status: res.status,
      request: r.body === null ? NO_BODY : log.bodyEntry(r.body, r.body, undefined, true, `${name}.req`),
      response: log.bodyEntry(res.wire, decode(res.wire, res.headers['content-encoding']), res.headers['content-encoding'], false, `${name}.res`),
      c2sEnd,
      s2cEnd: null,
    });
  });
}

async function closeDelimited(host) {
  const uri = '/close?size=50000';
  const { t, data } = await rawExchange(host, Buffer.from(`GET ${uri} HTTP/1.0\r\nX-Case: close\r\n\r\n`));
  const [res] = parseResponses(data, ['GET']);
  if (res.headers['content-length'] !== undefined) throw new Error('close: the response has a Content-Length');
  record({ case: 'close', ...t, trans: 0, method: 'GET', uri, status: res.status, request: NO_BODY, response: log.bodyEntry(res.wire, res.wire, undefined, false, ''), c2sEnd: null, s2cEnd: null });
}

async function connect(host) {
  const target = 'tunnel.test:443';
  const sent = Buffer.concat([Buffer.from('GET /inside-the-tunnel HTTP/1.1\r\nHost: tunnel.test\r\n\r\n'), body(seedOf(seed, `${host} tunnel`), 120_000)]);
  await new Promise((resolve, reject) => {
    const req = http.request({ host, port, method: 'CONNECT', path: target, agent: false, headers: { Host: target, 'X-Case': 'connect' } });
    req.on('error', reject);
    req.on('connect', (res, socket, head) => {
      const t = tupleOf(socket);
      const s2c = new Digest();
      s2c.update(head);
      const c2s = new Digest();
      c2s.update(sent);
      socket.on('data', (d) => s2c.update(d));
      socket.on('error', reject);
      socket.on('end', () => {
        record({ case: 'connect', ...t, trans: 0, method: 'CONNECT', uri: target, status: res.statusCode, request: NO_BODY, response: NO_BODY, tunnel: { target, c2s: c2s.done(), s2c: s2c.done() }, c2sEnd: null, s2cEnd: null });
        resolve();
      });
      socket.end(sent);
    });
    req.end();
  });
}

async function big(host, size) {
  const path = `/big?size=${size}`;
  await new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, agent: false, headers: { 'X-Case': 'big' } });
    req.on('error', reject);
    req.on('response', (res) => {
      const d = new Digest();
      res.on('data', (c) => d.update(c));
      res.on('error', reject);
      res.on('end', () => {
        const { bytes, sha256 } = d.done();
        const entry = { wireBytes: bytes, wireSha256: sha256, bytes, sha256, encodings: tokens(res.headers['content-encoding']), wireFile: null, file: null };
        record({ case: 'big', ...tupleOf(res.socket ?? req.socket), trans: 0, method: 'GET', uri: path, status: res.statusCode, request: NO_BODY, response: entry, c2sEnd: null, s2cEnd: null });
        resolve();
      });
    });
    req.end();
  });
}

const CASES = { keepalive, encodings, uploads, pipeline, close: closeDelimited, connect };
const targets = values.targets.split(',');
const runs = [];
for (const host of targets) for (const [name, fn] of Object.entries(CASES)) runs.push([`${name}@${host}`, fn(host)]);
const bigSize = Number(values.big);
const bigHost = targets[Number(values['big-target'])] ?? targets[0];
if (bigSize > 0) runs.push([`big@${bigHost}`, big(bigHost, bigSize)]);
const timer = setTimeout(() => {
  console.error('http-client: timed out');
  process.exit(1);
}, Number(values['timeout-ms']));
const results = await Promise.allSettled(runs.map(([, p]) => p));
clearTimeout(timer);
const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${runs[i][0]}: ${r.reason?.stack ?? r.reason}`] : []));
console.log(JSON.stringify({ transactions, failures }));
process.exitCode = failures.length === 0 ? 0 : 1;
