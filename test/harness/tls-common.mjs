/**
 * tls-common: what the harness's TLS server and client share (tls-server.mjs, tls-client.mjs):
 * the ports of the server's profiles, the test certificates' files, and the log.
 *
 * Log (LOGDIR/tls-<side>.ndjson), one line per connection and side, written once its handshake
 * ended (finished or refused):
 *   { side, case, client: {ip, port}, server: {ip, port}, protocol (getProtocol()), alpn
 *     (alpnProtocol, null for none), servername (the server's `servername`; on the client the
 *     `servername` it connected with, as node does not report what it sent; null for none),
 *     cipher: {name, standardName, version} (getCipher()), peer: [CERT] (getPeerCertificate(true),
 *     leaf first, as far as the chain goes), reused (isSessionReused()), error: {code, message}
 *     or null }
 *   CERT = { subject, issuer (the objects node gives), serial (serialNumber), fingerprint256,
 *            validFrom, validTo (valid_from, valid_to as node prints them) }
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { plainIp } from './traffic-common.mjs';

/** The server's profiles: one listening port each (see tls-server.mjs). */
export const PORTS = { main: 8443, mtls: 8444, idcache: 8445, tls13only: 8446, narrow: 8447 };

/** The test certificates' files in the certificate directory (made by the test with openssl). */
export const FILES = {
  ca: 'ca.pem',
  server: ['server.pem', 'server.key'],
  alt: ['alt.pem', 'alt.key'],
  client: ['client.pem', 'client.key'],
};

/** peerChain: getPeerCertificate(true) as a list, leaf first, until the chain loops on itself. */
export function peerChain(socket) {
  const out = [];
  const seen = new Set();
  for (let c = socket.getPeerCertificate(true); c && c.fingerprint256 && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push({ subject: { ...c.subject }, issuer: { ...c.issuer }, serial: c.serialNumber, fingerprint256: c.fingerprint256, validFrom: c.valid_from, validTo: c.valid_to });
  }
  return out;
}

/** describe: what one endpoint reports about a connection (see the log above). */
export function describe(socket, side, kase, error, sent = null) {
  const local = { ip: plainIp(socket.localAddress), port: socket.localPort };
  const remote = { ip: plainIp(socket.remoteAddress), port: socket.remotePort };
  const cipher = socket.getCipher();
  return {
    side,
    case: kase,
    client: side === 'client' ? local : remote,
    server: side === 'client' ? remote : local,
    protocol: socket.getProtocol() ?? null,
    alpn: socket.alpnProtocol || null,
    servername: side === 'server' ? socket.servername || null : sent,
    cipher: cipher ? { name: cipher.name, standardName: cipher.standardName, version: cipher.version } : null,
    peer: error ? [] : peerChain(socket),
    reused: socket.isSessionReused(),
    error: error ? { code: error.code ?? null, message: String(error.message) } : null,
  };
}

export class TlsLog {
  constructor(dir, side) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, `tls-${side}.ndjson`);
  }
  write(rec) {
    appendFileSync(this.file, `${JSON.stringify(rec)}\n`);
  }
}
