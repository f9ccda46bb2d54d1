#!/usr/bin/env node
/**
 * tls-server: the harness's TLS server (node:tls). Run inside the server namespace:
 *
 *   node tls-server.mjs --log DIR --certs DIR --hosts 10.201.0.2,fd00:201::2
 *
 * One listener per profile (PORTS in tls-common.mjs) on each host:
 *   main       TLS 1.2 and 1.3, session tickets; SNI picks the certificate (`alt.test`: the alt
 *              certificate, anything else the server's); ALPN: the server chooses `h2` when
 *              offered, unless the SNI is `h1.test` (then `http/1.1`)
 *   mtls       asks for a client certificate and refuses one the test CA did not sign
 *   idcache    no tickets: TLS 1.2 resumption by session id, from a cache of its own
 *              (newSession / resumeSession)
 *   tls13only  minVersion TLSv1.3 (a TLS 1.2 client gets a protocol_version alert)
 *   narrow     TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256 only (no shared cipher: handshake_failure)
 * Each connection: the client's first line names its case; the server answers `ok CASE` and
 * ends. Logs every connection once its handshake ended (tls-common.mjs); a refused handshake is
 * logged with its error. Prints "ready" once listening; SIGTERM stops it.
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { FILES, PORTS, TlsLog, describe } from './tls-common.mjs';

const { values } = parseArgs({ options: { log: { type: 'string' }, certs: { type: 'string' }, hosts: { type: 'string' } } });
if (!values.log || !values.certs || !values.hosts) {
  console.error('usage: tls-server.mjs --log DIR --certs DIR --hosts IP[,IP]');
  process.exit(2);
}
const log = new TlsLog(values.log, 'server');
const read = (f) => readFileSync(path.join(values.certs, f));
const ca = read(FILES.ca);
// the chains sent: leaf then CA
const pair = ([cert, key]) => ({ cert: Buffer.concat([read(cert), ca]), key: read(key) });
const server = pair(FILES.server);
const alt = tls.createSecureContext(pair(FILES.alt));

function onSecure(socket) {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (d) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    const kase = buf.slice(0, nl);
    buf = '\0'; // answered once
    log.write(describe(socket, 'server', kase, null));
    socket.end(`ok ${kase}\n`);
  });
  socket.on('error', () => undefined);
}

function onRefused(err, socket) {
  try {
    log.write(describe(socket, 'server', '', err));
  } catch (e) {
    log.write({ side: 'server', case: '', error: { code: err.code ?? null, message: String(err.message) }, describeError: String(e) });
  }
}

const sessions = new Map();
const profiles = {
  main: {
    ...server,
    SNICallback: (name, cb) => cb(null, name === 'alt.test' ? alt : null),
    ALPNCallback: ({ servername, protocols }) => (servername !== 'h1.test' && protocols.includes('h2') ? 'h2' : protocols.includes('http/1.1') ? 'http/1.1' : undefined),
  },
  mtls: { ...server, requestCert: true, rejectUnauthorized: true, ca },
  idcache: { ...server, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET },
  tls13only: { ...server, minVersion: 'TLSv1.3' },
  narrow: { ...server, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' },
};

const listening = [];
for (const [name, options] of Object.entries(profiles)) {
  for (const host of values.hosts.split(',')) {
    const s = tls.createServer(options, onSecure);
    s.on('tlsClientError', onRefused);
    if (name === 'idcache') {
      s.on('newSession', (id, data, cb) => {
        sessions.set(id.toString('hex'), data);
        cb();
      });
      s.on('resumeSession', (id, cb) => cb(null, sessions.get(id.toString('hex')) ?? null));
    }
    listening.push(
      new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(PORTS[name], host, () => resolve(s));
      }),
    );
  }
}
const servers = await Promise.all(listening);
console.log('ready');
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 200).unref();
});
