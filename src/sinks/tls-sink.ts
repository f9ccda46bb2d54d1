/**
 * TlsSink: `pcapflow tls`'s sink. It takes the reassembler's `StreamEvent[]`, runs the TLS parser
 * (TlsParser, node:crypto's digests) on them and writes one line per TLS connection to its
 * destination: NDJSON (`format: 'ndjson'`, the default: `tlsJson`, as documented in the README)
 * or text for people (`tlsText`). Certificates are described through node:crypto's
 * X509Certificate. The lines are written straight into one Buffer per batch (TlsLines), the same
 * bytes as JSON.stringify's. Backpressure, a closed pipe and output errors are ByteSink's.
 */
import crypto, { X509Certificate } from 'node:crypto';
import type { StreamEvent } from '../core/events.js';
import { TlsParser, type TlsClientHello, type TlsParserOptions, type TlsRecord, type TlsServerHello } from '../core/tls.js';
import { nodeTlsHashes } from '../transforms/tls-transform.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';
import { TextLines } from './json-bytes.js';

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
  const sha256 = typeof crypto.hash === 'function' ? crypto.hash('sha256', der, 'hex') : crypto.createHash('sha256').update(der).digest('hex');
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

/**
 * TlsLines writes the lines of TlsRecords into one Buffer: NDJSON, byte for byte
 * `JSON.stringify(tlsJson(r)) + '\n'` (the fields in TlsRecord's order; checked against it by
 * test/tls.test.ts) without building the record's copy nor its string, or tlsText's lines.
 * A certificate's JSON is made once per certificate described (certificateInfo's cache).
 */
export class TlsLines extends TextLines {
  /** Certificates described, by SHA-256 (certificateInfo's cache). */
  private readonly certs = new Map<string, TlsCertificateInfo>();
  /**
   * The JSON of the certificates written, by their copy (a TlsParser's records share the copy of
   * a certificate seen before): such a certificate is neither hashed nor described again.
   */
  private readonly certJson = new WeakMap<Uint8Array, string>();

  /** text writes tlsText's line. */
  text(r: TlsRecord): void {
    this.line(tlsText(r, this.certs));
  }

  /** json writes the NDJSON line. */
  json(r: TlsRecord): void {
    this.raw('{"type":');
    this.str(r.type);
    this.raw(',"conn":');
    this.num(r.conn);
    this.raw(',"ts":');
    this.str(r.ts);
    this.raw(',"client":');
    this.endpoint(r.client);
    this.raw(',"server":');
    this.endpoint(r.server);
    this.raw(',"start":{"c2s":');
    this.numOrNull(r.start.c2s);
    this.raw(',"s2c":');
    this.numOrNull(r.start.s2c);
    this.raw('},"clientHello":');
    this.clientHello(r.clientHello);
    this.raw(',"serverHello":');
    this.serverHello(r.serverHello);
    this.raw(r.helloRetry ? ',"helloRetry":true,"ja3":' : ',"helloRetry":false,"ja3":');
    this.plainOrNull(r.ja3);
    this.raw(',"ja3Hash":');
    this.plainOrNull(r.ja3Hash);
    this.raw(',"ja3s":');
    this.plainOrNull(r.ja3s);
    this.raw(',"ja3sHash":');
    this.plainOrNull(r.ja3sHash);
    this.raw(',"ja4":');
    this.plainOrNull(r.ja4);
    this.raw(',"ja4_r":');
    this.plainOrNull(r.ja4_r);
    this.raw(',"certificates":');
    this.certificates(r.certificates);
    this.raw(',"clientCertificates":');
    this.certificates(r.clientCertificates);
    this.raw(',"alerts":');
    this.list(r.alerts);
    this.raw(r.resumed === null ? ',"resumed":null' : r.resumed ? ',"resumed":true' : ',"resumed":false');
    this.raw(r.complete ? ',"complete":true,"missing":' : ',"complete":false,"missing":');
    this.list(r.missing);
    this.raw(',"errors":');
    this.list(r.errors);
    this.raw('}\n');
  }

  private clientHello(h: TlsClientHello | null): void {
    if (h === null) return this.raw('null');
    this.raw(h.sslv2 ? '{"sslv2":true,"legacyVersion":' : '{"sslv2":false,"legacyVersion":');
    this.num(h.legacyVersion);
    this.raw(',"supportedVersions":');
    this.nums(h.supportedVersions);
    this.raw(',"ciphers":');
    this.nums(h.ciphers);
    this.raw(',"extensions":');
    this.nums(h.extensions);
    this.raw(',"groups":');
    this.nums(h.groups);
    this.raw(',"pointFormats":');
    this.nums(h.pointFormats);
    this.raw(',"sigAlgs":');
    this.nums(h.sigAlgs);
    this.raw(',"sni":');
    this.strOrNull(h.sni);
    this.raw(',"alpn":[');
    for (let i = 0; i < h.alpn.length; i++) {
      if (i > 0) this.raw(',');
      this.str(h.alpn[i]!);
    }
    this.raw(h.ech ? '],"ech":true,"sessionTicket":' : '],"ech":false,"sessionTicket":');
    this.numOrNull(h.sessionTicket);
    this.raw(',"pskModes":');
    this.nums(h.pskModes);
    this.raw(',"sessionId":');
    this.plainOrNull(h.sessionId);
    this.raw('}');
  }

  private serverHello(h: TlsServerHello | null): void {
    if (h === null) return this.raw('null');
    this.raw('{"version":');
    this.num(h.version);
    this.raw(',"legacyVersion":');
    this.num(h.legacyVersion);
    this.raw(',"cipher":');
    this.num(h.cipher);
    this.raw(',"extensions":');
    this.nums(h.extensions);
    this.raw(',"alpn":');
    this.strOrNull(h.alpn);
    this.raw(',"sessionId":');
    this.plainOrNull(h.sessionId);
    this.raw('}');
  }

  private certificates(ders: readonly Uint8Array[]): void {
    this.raw('[');
    for (let i = 0; i < ders.length; i++) {
      if (i > 0) this.raw(',');
      this.utf8(this.certificateJson(ders[i]!));
    }
    this.raw(']');
  }

  private certificateJson(der: Uint8Array): string {
    let json = this.certJson.get(der);
    if (json === undefined) {
      json = JSON.stringify(certificateInfo(der, this.certs));
      this.certJson.set(der, json);
    }
    return json;
  }

  /** list: a short list of plain objects or strings (alerts, missing, errors), as JSON.stringify writes it. */
  private list(l: readonly unknown[]): void {
    if (l.length === 0) this.raw('[]');
    else this.utf8(JSON.stringify(l));
  }

  /** nums: a list of numbers; those of 0 to 65535 (all a hello holds) written in place, any other through num. */
  private nums(l: readonly number[]): void {
    this.room(l.length * 6 + 2);
    const b = this.buf;
    let at = this.at;
    b[at++] = 0x5b; // [
    for (let i = 0; i < l.length; i++) {
      if (i > 0) b[at++] = 0x2c; // ,
      const n = l[i]!;
      if (!(n >= 0 && n <= 0xffff && (n | 0) === n)) {
        this.at = at;
        this.num(n);
        this.room((l.length - i) * 6 + 1);
        return this.numsFrom(l, i + 1);
      }
      const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : 5;
      at += digits;
      for (let x = n, k = at; k > at - digits; x = (x / 10) | 0) b[--k] = 0x30 + (x % 10);
    }
    b[at++] = 0x5d; // ]
    this.at = at;
  }

  /** numsFrom: the rest of a list of numbers from index `i` on, and its `]`. */
  private numsFrom(l: readonly number[], i: number): void {
    for (; i < l.length; i++) {
      this.raw(',');
      this.num(l[i]!);
    }
    this.raw(']');
  }

  private numOrNull(n: number | null): void {
    if (n === null) this.raw('null');
    else this.num(n);
  }

  /** plainOrNull: a string the parser makes of digits, letters and `,-_` only (fingerprints, hex), quoted as it is. */
  private plainOrNull(s: string | null): void {
    if (s === null) return this.raw('null');
    this.room(s.length + 2);
    this.buf[this.at++] = 0x22;
    this.raw(s);
    this.buf[this.at++] = 0x22;
  }

  private strOrNull(s: string | null): void {
    if (s === null) this.raw('null');
    else this.str(s);
  }

}

/**
 * TLS_READ_SIZE: the read size (batch size) ReadPipeline uses for a TlsSink (its `readSize`), as
 * HttpSink's. Measured on 50 000 short TLS connections (farm-bench, 10 pairs, against 512 KiB):
 * 1.00x the time, 0.97x the CPU, peak RSS 115 against 132 MB.
 */
export const TLS_READ_SIZE = 128 * 1024;

export class TlsSink extends ByteSink<readonly StreamEvent[]> {
  readonly parser: TlsParser;
  /** The read size ReadPipeline gives an input read into this sink (TLS_READ_SIZE). */
  readonly readSize = TLS_READ_SIZE;
  private readonly format: 'ndjson' | 'text';
  private readonly lines = new TlsLines();
  private readonly onRecords = (records: TlsRecord[]): void => {
    if (this.format === 'ndjson') for (const r of records) this.lines.json(r);
    else for (const r of records) this.lines.text(r);
  };

  constructor(options: TlsSinkOptions = {}) {
    super(options);
    this.format = options.format ?? 'ndjson';
    this.parser = new TlsParser({ hashes: nodeTlsHashes, ...options.tls });
  }

  protected override render(batch: readonly StreamEvent[]): Buffer {
    this.parser.write(batch, this.onRecords);
    return this.lines.take();
  }

  protected override renderEnd(): Buffer {
    this.parser.end(this.onRecords);
    return this.lines.take();
  }
}
