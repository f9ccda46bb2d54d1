/**
 * TlsSink: `pcapflow tls`'s sink. It takes the reassembler's `StreamEvent[]`, runs the TLS parser
 * (TlsParser, node:crypto's digests) on them and writes one line per TLS connection to its
 * destination: NDJSON (`format: 'ndjson'`, the default: `tlsJson`, as documented in the README)
 * or text for people (`tlsText`). Certificates are described through node:crypto's
 * X509Certificate. Backpressure, a closed pipe and output errors are ByteSink's.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { StreamEvent } from '../core/events.js';
import { TlsParser, type TlsParserOptions, type TlsRecord } from '../core/tls.js';
import { nodeTlsHashes } from '../transforms/tls-transform.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';

export interface TlsSinkOptions extends ByteSinkOptions {
  format?: 'ndjson' | 'text';
  tls?: Partial<TlsParserOptions>;
}

/** A certificate as `pcapflow tls` writes it; `error` (and only the digest) when node cannot read the DER. */
export interface TlsCertificateInfo {
  subject: string | null;
  issuer: string | null;
  /** subjectAltName entries as node prints them ("DNS:example.com", "IP Address:10.0.0.1"). */
  sans: string[];
  /** Validity, ISO 8601 UTC. */
  notBefore: string | null;
  notAfter: string | null;
  /** Serial number, upper-case hex as node gives it. */
  serial: string | null;
  /** SHA-256 of the DER, lower-case hex. */
  sha256: string;
  bytes: number;
  error?: string;
}

/** The NDJSON form of a TlsRecord: its fields, certificates described. */
export type TlsJsonRecord = Omit<TlsRecord, 'certificates' | 'clientCertificates'> & {
  certificates: TlsCertificateInfo[];
  clientCertificates: TlsCertificateInfo[];
};

const oneLine = (dn: string): string => dn.split('\n').join(', ');
const iso = (date: string): string | null => {
  const t = Date.parse(date);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
};

/** Certificates a TlsSink keeps described, at most (then it starts afresh). */
const CERT_CACHE_MAX = 4096;

/**
 * certificateInfo: what X509Certificate reads from one DER certificate. With `cache` (keyed by
 * the DER's SHA-256), a certificate seen before is not read again: the same object is returned,
 * so treat it as read-only. Servers send the same chains over and over, and X509Certificate
 * costs about 0.3 ms a certificate.
 */
export function certificateInfo(der: Uint8Array, cache?: Map<string, TlsCertificateInfo>): TlsCertificateInfo {
  const sha256 = createHash('sha256').update(der).digest('hex');
  const known = cache?.get(sha256);
  if (known !== undefined) return known;
  const info = readCertificate(der, sha256);
  if (cache !== undefined) {
    if (cache.size >= CERT_CACHE_MAX) cache.clear();
    cache.set(sha256, info);
  }
  return info;
}

function readCertificate(der: Uint8Array, sha256: string): TlsCertificateInfo {
  try {
    const x = new X509Certificate(der);
    return {
      subject: oneLine(x.subject),
      issuer: oneLine(x.issuer),
      sans: x.subjectAltName === undefined ? [] : x.subjectAltName.split(', '),
      notBefore: iso(x.validFrom),
      notAfter: iso(x.validTo),
      serial: x.serialNumber,
      sha256,
      bytes: der.length,
    };
  } catch (err) {
    return { subject: null, issuer: null, sans: [], notBefore: null, notAfter: null, serial: null, sha256, bytes: der.length, error: err instanceof Error ? err.message : String(err) };
  }
}

/** tlsJson: the NDJSON record of a TlsRecord; `cache` as certificateInfo's. */
export function tlsJson(r: TlsRecord, cache?: Map<string, TlsCertificateInfo>): TlsJsonRecord {
  const info = (der: Uint8Array): TlsCertificateInfo => certificateInfo(der, cache);
  return { ...r, certificates: r.certificates.map(info), clientCertificates: r.clientCertificates.map(info) };
}

const VERSION_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0002, 'SSLv2'],
  [0x0300, 'SSLv3'],
  [0x0301, 'TLSv1.0'],
  [0x0302, 'TLSv1.1'],
  [0x0303, 'TLSv1.2'],
  [0x0304, 'TLSv1.3'],
]);
const versionName = (v: number): string => VERSION_NAMES.get(v) ?? `0x${v.toString(16).padStart(4, '0')}`;

/** tlsText: one line for people; `cache` as certificateInfo's. */
export function tlsText(r: TlsRecord, cache?: Map<string, TlsCertificateInfo>): string {
  const ch = r.clientHello;
  const sh = r.serverHello;
  const parts = [`${r.ts} conn ${r.conn} ${r.client.ip}:${r.client.port} -> ${r.server.ip}:${r.server.port}`];
  parts.push(sh === null ? 'no ServerHello' : `${versionName(sh.version)} cipher 0x${sh.cipher.toString(16).padStart(4, '0')}${sh.alpn === null ? '' : ` alpn ${sh.alpn}`}`);
  if (ch !== null) parts.push(`sni ${ch.sni ?? '-'}${ch.alpn.length > 0 ? ` offers ${ch.alpn.join(',')}` : ''}${ch.sslv2 ? ' (SSLv2 hello)' : ''}`);
  if (r.ja4 !== null) parts.push(`ja4 ${r.ja4}`);
  if (r.ja3Hash !== null) parts.push(`ja3 ${r.ja3Hash}`);
  if (r.ja3sHash !== null) parts.push(`ja3s ${r.ja3sHash}`);
  if (r.certificates.length > 0) {
    const leaf = certificateInfo(r.certificates[0]!, cache);
    parts.push(`cert ${leaf.subject ?? `unreadable (${leaf.error ?? ''})`}${r.certificates.length > 1 ? ` (+${r.certificates.length - 1})` : ''}`);
  }
  if (r.resumed === true) parts.push('resumed');
  if (r.alerts.length > 0) parts.push(`alerts ${r.alerts.map((a) => `${a.dir}:${a.level}/${a.description}`).join(',')}`);
  if (!r.complete) {
    const why = [...r.missing.map((m) => `no ${m}`), ...r.errors.map((e) => `${e.code} ${e.dir}@${e.offset}`)];
    parts.push(`[incomplete: ${why.join(', ')}]`);
  }
  return parts.join(' ');
}

export class TlsSink extends ByteSink<readonly StreamEvent[]> {
  readonly parser: TlsParser;
  private readonly format: 'ndjson' | 'text';
  private text = '';
  /** Certificates described, by SHA-256 (certificateInfo's cache). */
  private readonly certs = new Map<string, TlsCertificateInfo>();
  private readonly onRecords = (records: TlsRecord[]): void => {
    for (const r of records) this.text += this.format === 'ndjson' ? `${JSON.stringify(tlsJson(r, this.certs))}\n` : `${tlsText(r, this.certs)}\n`;
  };

  constructor(options: TlsSinkOptions = {}) {
    super(options);
    this.format = options.format ?? 'ndjson';
    this.parser = new TlsParser({ hashes: nodeTlsHashes, ...options.tls });
  }

  protected override render(batch: readonly StreamEvent[]): string {
    this.parser.write(batch, this.onRecords);
    const t = this.text;
    this.text = '';
    return t;
  }

  protected override renderEnd(): string {
    this.parser.end(this.onRecords);
    const t = this.text;
    this.text = '';
    return t;
  }
}
