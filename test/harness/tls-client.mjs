#!/usr/bin/env node
/**
 * tls-client: the harness's TLS client (node:tls). Run inside the client namespace, against
 * tls-server.mjs:
 *
 *   node tls-client.mjs --log DIR --certs DIR --targets 10.201.0.2,fd00:201::2
 *
 * For each target, one case after another, each on connections of its own (CASES below): TLS 1.3
 * and 1.2, ALPN offered [h2, http/1.1] with the server choosing either, SNI selecting another
 * certificate, a client certificate, resumption (TLS 1.2 by ticket and by session id, TLS 1.3 by
 * PSK: a first connection, then a second one with its session), and two refused handshakes (no
 * shared version, no shared cipher). The server's certificate is verified against the test CA.
 * Each connection sends its case's name, reads the answer and ends. Logs every connection once
 * its handshake ended (tls-common.mjs; the client's lines add `offered`, the ALPN list it sent).
 * Prints one JSON line (connections, failures) and exits 0 when every case went as it should
 * (handshakes done, refusals refused), 1 otherwise.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { FILES, PORTS, TlsLog, describe } from './tls-common.mjs';

const { values } = parseArgs({ options: { log: { type: 'string' }, certs: { type: 'string' }, targets: { type: 'string' } } });
if (!values.log || !values.certs || !values.targets) {
  console.error('usage: tls-client.mjs --log DIR --certs DIR --targets IP[,IP]');
  process.exit(2);
}
const log = new TlsLog(values.log, 'client');
const read = (f) => readFileSync(path.join(values.certs, f));
const ca = read(FILES.ca);
const v12 = { maxVersion: 'TLSv1.2' };
const v13 = { minVersion: 'TLSv1.3' };
const ALPN = { ALPNProtocols: ['h2', 'http/1.1'] };

/** The cases: profile (server port), the connect options, connections (2: resumed), refused. */
const CASES = [
  { name: 'tls13', profile: 'main', options: { ...v13 } },
  { name: 'tls12', profile: 'main', options: { ...v12, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' } },
  { name: 'alpn-h2', profile: 'main', options: { ...v13, ...ALPN, servername: 'server.test' } },
  { name: 'alpn-h2-tls12', profile: 'main', options: { ...v12, ...ALPN, servername: 'server.test' } },
  { name: 'alpn-http1', profile: 'main', options: { ...v12, ...ALPN, servername: 'h1.test' } },
  { name: 'sni-alt', profile: 'main', options: { ...v12, servername: 'alt.test' } },
  { name: 'client-cert', profile: 'mtls', options: { ...v12, servername: 'server.test', cert: Buffer.concat([read(FILES.client[0]), ca]), key: read(FILES.client[1]) } },
  { name: 'resume12-ticket', profile: 'main', options: { ...v12, servername: 'server.test' }, connections: 2 },
  { name: 'resume12-id', profile: 'idcache', options: { ...v12 }, connections: 2 },
  { name: 'resume13', profile: 'main', options: { ...v13, ciphers: 'TLS_CHACHA20_POLY1305_SHA256' }, connections: 2 },
  { name: 'refused-version', profile: 'tls13only', options: { ...v12 }, refused: true },
  { name: 'refused-cipher', profile: 'narrow', options: { ...v12, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' }, refused: true },
];

/**
 * connect runs one connection of a case; resolves to { ok, session } (the last session the
 * server gave, for a resumption), never rejects.
 */
function connect(host, c, session) {
  return new Promise((resolve) => {
    let session2 = null;
    let logged = false;
    let answered = false;
    const socket = tls.connect({ host, port: PORTS[c.profile], ca, rejectUnauthorized: true, ...c.options, ...(session ? { session } : {}) });
    socket.on('session', (s) => (session2 = s));
    socket.on('secureConnect', () => {
      logged = true;
      log.write({ ...describe(socket, 'client', c.name, null, c.options.servername ?? null), offered: c.options.ALPNProtocols ?? [] });
      socket.write(`${c.name}\n`);
    });
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      buf += d;
      if (buf === `ok ${c.name}\n`) answered = true;
    });
    socket.on('end', () => socket.end());
    socket.on('error', (err) => {
      if (!logged) {
        logged = true;
        log.write({ ...describe(socket, 'client', c.name, err, c.options.servername ?? null), offered: c.options.ALPNProtocols ?? [] });
      }
    });
    socket.on('close', () => resolve({ ok: c.refused ? !answered && logged : answered, session: session2 }));
  });
}

let connections = 0;
const failures = [];
for (const host of values.targets.split(',')) {
  for (const c of CASES) {
    let session = null;
    for (let i = 0; i < (c.connections ?? 1); i++) {
      const r = await connect(host, c, session);
      connections++;
      if (!r.ok) failures.push(`${host} ${c.name} #${i}`);
      session = r.session;
      if (i + 1 < (c.connections ?? 1) && session === null) failures.push(`${host} ${c.name}: no session to resume`);
    }
  }
}
console.log(JSON.stringify({ connections, failures }));
process.exit(failures.length === 0 ? 0 : 1);
