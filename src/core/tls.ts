/**
 * tls: TLS handshakes out of the reassembler's stream events (issue 16, first step: the parser
 * and the JA3/JA4 fingerprints). Pure: no node:* import; the digests the fingerprints need
 * (MD5 for JA3, SHA-256 for JA4) are given by the caller (`hashes`).
 *
 * TlsParser takes `StreamEvent[]` and emits `TlsRecord[]`: one record per connection in which a
 * TLS handshake was found, once the handshake is settled (both hellos; TLS 1.3: the ServerHello
 * that is no HelloRetryRequest, after which all is encrypted; up to TLS 1.2 the server's flight up
 * to ServerHelloDone or ChangeCipherSpec, and the client's up to its ChangeCipherSpec, so that a
 * client certificate or an alert refusing the server is in), or when the connection ends (then
 * `missing` says what was not seen). The record goes at the message or record that settles it;
 * bytes after that are not read, so the record is the same however the bytes were segmented.
 *
 * Which connections: a direction is TLS when its first bytes are a TLS record header (content
 * type 22, version 3.x, length at most 2^14 + 2048; any content type once the other direction is
 * TLS) or, client side, an SSLv2-compatible
 * ClientHello; else its first `probeBytes` are searched for the start of a ClientHello (c2s) or
 * ServerHello (s2c) record, which finds TLS behind a proxy preamble (HTTP CONNECT, SOCKS) or in a
 * connection picked up midstream; `start` gives the stream offset where TLS began.
 *
 * Per direction: records are reassembled from their 5-byte headers across TCP segments;
 * handshake messages across records, several messages per record. ClientHello, ServerHello
 * (HelloRetryRequest recognised by its random), Certificate (TLS <= 1.2 form; DER copies, at
 * most `maxCertificates`), ServerHelloDone and plaintext alerts are read;
 * parsing of a direction stops at ChangeCipherSpec or application data (what follows is
 * encrypted). Memory: a handshake message is held (a copy) only while incomplete, and one longer
 * than `maxHandshakeBytes` stops the direction (`HANDSHAKE_TOO_LARGE`); while probing, at most 10
 * bytes per direction are held, and up to 1 MiB of certificate copies that records share. Every length is read through a bounded reader: hostile input
 * gives a coded issue in the record's `errors`, never an exception. A gap, a cut (the connection ended inside a
 * record or message) or an error stops the direction: fingerprints are only ever computed from
 * whole, well-formed hellos. JA3 and JA4 are computed once per kind of ClientHello (the values they
 * are made of, GREASE aside) and each digest once per text, the last 4096 of each kept.
 */
import type { Direction, Endpoint, StreamEvent } from './events.js';

/** Hex digests of UTF-8 text, lower case; given by the caller so that the core stays pure. */
export interface TlsHashes {
  md5(text: string): string;
  sha256(text: string): string;
}

export interface TlsParserOptions {
  hashes: TlsHashes;
  /** Length of one handshake message held, at most (per direction). Default 65 536. */
  maxHandshakeBytes?: number;
  /** Certificates kept per chain. Default 16. */
  maxCertificates?: number;
  /** Bytes of a direction searched for a TLS start when its first bytes are not one. Default 8192. */
  probeBytes?: number;
}

export type TlsErrorCode =
  | 'GAP' // bytes missing inside the handshake: the direction's parsing stopped there
  | 'CUT' // the connection ended inside a record or handshake message
  | 'BAD_RECORD' // a record header with an unknown content type or version
  | 'RECORD_TOO_LARGE' // a record length over 2^14 + 2048
  | 'BAD_HANDSHAKE' // a handshake message whose lengths do not add up
  | 'HANDSHAKE_TOO_LARGE' // a handshake message over maxHandshakeBytes
  | 'TOO_MANY_CERTIFICATES'; // a chain over maxCertificates: the first ones are kept

export interface TlsIssue {
  dir: Direction;
  code: TlsErrorCode;
  /** Stream offset in `dir` where it happened. */
  offset: number;
  message: string;
}

export interface TlsClientHello {
  /** Sent in the SSLv2-compatible format (then there are no extensions). */
  sslv2: boolean;
  legacyVersion: number;
  /** supported_versions (43) as sent, GREASE included; [] when absent. */
  supportedVersions: number[];
  /** Cipher suites as sent, GREASE included (SSLv2: the 3-byte cipher specs). */
  ciphers: number[];
  /** Extension types in wire order, GREASE included. */
  extensions: number[];
  /** supported_groups (10). */
  groups: number[];
  /** ec_point_formats (11). */
  pointFormats: number[];
  /** signature_algorithms (13), in order. */
  sigAlgs: number[];
  /** server_name (0): the first host_name, as bytes (latin1); null when absent. */
  sni: string | null;
  /** ALPN (16) protocol names, as bytes (latin1). */
  alpn: string[];
  /** encrypted_client_hello (0xfe0d) present. */
  ech: boolean;
  /** session_ticket (35): length of the ticket sent (0 = asks for one); null when absent. */
  sessionTicket: number | null;
  /** psk_key_exchange_modes (45). */
  pskModes: number[];
  /** Legacy session id, hex. */
  sessionId: string;
}

export interface TlsServerHello {
  /** The version selected: supported_versions (43) when present, else the legacy version. */
  version: number;
  legacyVersion: number;
  cipher: number;
  /** Extension types in wire order. */
  extensions: number[];
  /** The ALPN protocol selected (latin1), or null. */
  alpn: string | null;
  sessionId: string;
}

export interface TlsAlert {
  dir: Direction;
  level: number;
  description: number;
}

export type TlsMissing = 'clientHello' | 'serverHello' | 'certificates';

export interface TlsRecord {
  type: 'tls';
  conn: number;
  /** Time of the data event holding the connection's first TLS byte. */
  ts: string;
  client: Endpoint;
  server: Endpoint;
  /** Stream offset where TLS began in each direction (0 unless behind a preamble); null when not found. */
  start: { c2s: number | null; s2c: number | null };
  /** The first ClientHello. */
  clientHello: TlsClientHello | null;
  /** The ServerHello that was not a HelloRetryRequest. */
  serverHello: TlsServerHello | null;
  /** A HelloRetryRequest came (then the client sent a second ClientHello). */
  helloRetry: boolean;
  /** JA3 string and its MD5 (salesforce/ja3); null without a ClientHello, or for an SSLv2 one (as salesforce/ja3 and tshark). */
  ja3: string | null;
  ja3Hash: string | null;
  /** JA3S string and its MD5, of `serverHello`. */
  ja3s: string | null;
  ja3sHash: string | null;
  /** JA4 and JA4_r (FoxIO's JA4, TLS over TCP) of the first ClientHello. */
  ja4: string | null;
  ja4_r: string | null;
  /** The server's certificate chain (TLS <= 1.2), DER, as sent (copies, shared by the records that carry the same certificate: read-only). */
  certificates: Uint8Array[];
  /** The client's chain, when the server asked for one (TLS <= 1.2). */
  clientCertificates: Uint8Array[];
  /** Plaintext alerts, in order (at most 16). */
  alerts: TlsAlert[];
  /** Session resumed: TLS 1.3 pre_shared_key accepted; up to 1.2 the session id echoed, or CCS with no Certificate. Null without ServerHello. */
  resumed: boolean | null;
  /** Nothing missing and no issue. */
  complete: boolean;
  missing: TlsMissing[];
  errors: TlsIssue[];
}

export type TlsParserStats = {
  connections: number;
  tls: number;
  clientHellos: number;
  serverHellos: number;
  certificates: number;
  incomplete: number;
  errors: number;
  /** Bytes held now (probe bytes and incomplete handshake messages, copies). */
  heldBytes: number;
};

const MAX_RECORD = 16384 + 2048;
const MAX_ALERTS = 16;
/** Probe bytes held between data events: a hello record's 11-byte signature less one. */
const PROBE_TAIL = 10;
const CT_CCS = 20;
const CT_ALERT = 21;
const CT_HANDSHAKE = 22;
const CT_APPDATA = 23;
const CT_HEARTBEAT = 24;
/** ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3). */
const HRR_RANDOM = Uint8Array.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c'.match(/../g)!, (h) => parseInt(h, 16));
const latin1 = new TextDecoder('latin1');
const NO_BYTES = new Uint8Array(0);
/** The ASCII codes of the 16 lower-case hex digits, and Reader.hex's room for its digits. */
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
let hexScratch = new Uint8Array(64);
/** Two lower-case hex digits of each byte value. */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Digests kept per TlsParser (the same fingerprints recur: one client's hellos), at most (then it starts afresh). */
const DIGEST_CACHE_MAX = 4096;

/** isGrease: one of the 16 GREASE values (RFC 8701: 0x?a?a with equal bytes). */
export function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}

/** ja3String: salesforce/ja3 of a ClientHello: version,ciphers,extensions,groups,formats (GREASE removed). */
export function ja3String(h: TlsClientHello): string {
  const dash = (l: readonly number[]): string => l.filter((v) => !isGrease(v)).join('-');
  return `${h.legacyVersion},${dash(h.ciphers)},${dash(h.extensions)},${dash(h.groups)},${h.pointFormats.join('-')}`;
}

/** ja3sString: salesforce/ja3 JA3S of a ServerHello: legacy version,cipher,extensions. */
export function ja3sString(h: TlsServerHello): string {
  return `${h.legacyVersion},${h.cipher},${h.extensions.join('-')}`;
}

const JA4_VERSIONS: ReadonlyMap<number, string> = new Map([
  [0x0304, '13'],
  [0x0303, '12'],
  [0x0302, '11'],
  [0x0301, '10'],
  [0x0300, 's3'],
  [0x0002, 's2'],
  [0xfeff, 'd1'],
  [0xfefd, 'd2'],
  [0xfefc, 'd3'],
]);

/** hex4: a 16-bit value as 4 lower-case hex digits. */
const hex4 = (v: number): string => HEX2[(v >> 8) & 0xff]! + HEX2[v & 0xff]!;
/** hex4Sorted: 16-bit values as 4-digit hex, in hex order (= numeric order at a fixed width), joined by commas. */
const hex4Sorted = (l: readonly number[]): string => {
  const sorted = Uint16Array.from(l).sort();
  let s = '';
  for (let i = 0; i < sorted.length; i++) s += (i === 0 ? '' : ',') + hex4(sorted[i]!);
  return s;
};
const isAlnum = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);

/** ja4Alpn: JA4's two ALPN characters of the first protocol name (given as latin1 text). */
export function ja4Alpn(first: string | undefined): string {
  if (first === undefined || first.length === 0) return '00';
  const a = first.charCodeAt(0);
  const z = first.charCodeAt(first.length - 1);
  if (isAlnum(a) && isAlnum(z)) return first[0]! + first[first.length - 1]!;
  const hex = a.toString(16).padStart(2, '0') + (first.length > 1 ? z.toString(16).padStart(2, '0') : '');
  return hex[0]! + hex[hex.length - 1]!;
}

/**
 * ja4: FoxIO's JA4 (TLS over TCP, sorted) and JA4_r of a ClientHello. An SSLv2 hello is taken as
 * FoxIO's ja4 tool takes it (through tshark's fields): its version field, and no cipher suites
 * (its 3-byte cipher specs are not ones) nor extensions: `t10i000000_000000000000_000000000000`
 * for a TLS 1.0 client.
 */
export function ja4(h: TlsClientHello, sha256: (text: string) => string): { ja4: string; ja4_r: string } {
  const ciphers = h.sslv2 ? [] : h.ciphers.filter((v) => !isGrease(v));
  const exts = h.extensions.filter((v) => !isGrease(v));
  const versions = h.supportedVersions.filter((v) => !isGrease(v));
  const version = h.extensions.includes(43) ? (versions.length > 0 ? Math.max(...versions) : -1) : h.legacyVersion;
  const a =
    't' +
    (JA4_VERSIONS.get(version) ?? '00') +
    (exts.includes(0) ? 'd' : 'i') +
    String(Math.min(99, ciphers.length)).padStart(2, '0') +
    String(Math.min(99, exts.length)).padStart(2, '0') +
    ja4Alpn(h.alpn[0]);
  const b = hex4Sorted(ciphers);
  const c = hex4Sorted(exts.filter((v) => v !== 0 && v !== 16));
  const sigs = h.sigAlgs
    .filter((v) => !isGrease(v))
    .map(hex4)
    .join(',');
  const cs = sigs === '' ? c : `${c}_${sigs}`;
  const hash12 = (text: string, empty: boolean): string => (empty ? '000000000000' : sha256(text).slice(0, 12));
  return { ja4: `${a}_${hash12(b, b === '')}_${hash12(cs, c === '')}`, ja4_r: `${a}_${b}_${cs}` };
}

/** isTls13: the ServerHello selected TLS 1.3 (or a draft of it): what follows it is encrypted. */
function isTls13(h: TlsServerHello): boolean {
  return h.version > 0x0303 && h.version < 0xfe00;
}

/**
 * cachedHashes: `hashes` with each one's last DIGEST_CACHE_MAX answers kept by their text: hellos
 * of one client (library, browser) give the same JA3/JA4 strings over and over.
 */
function cachedHashes(hashes: TlsHashes): TlsHashes {
  const cached = (f: (text: string) => string): ((text: string) => string) => {
    const known = new Map<string, string>();
    return (text) => {
      let d = known.get(text);
      if (d === undefined) {
        d = f(text);
        if (known.size >= DIGEST_CACHE_MAX) known.clear();
        known.set(text, d);
      }
      return d;
    };
  };
  return { md5: cached((t) => hashes.md5(t)), sha256: cached((t) => hashes.sha256(t)) };
}

/** A ClientHello's JA3 and JA4, and the hello they were computed from. */
interface HelloPrints {
  hello: TlsClientHello;
  ja3: string | null;
  ja3Hash: string | null;
  ja4: string;
  ja4_r: string;
}

/** FNV-1a step over a 32-bit value. */
const fnv = (h: number, v: number): number => Math.imul(h ^ v, 0x01000193) >>> 0;
/** fnvList: FNV-1a over a list's values, GREASE values left out (JA3 and JA4 leave them out of every list they keep them from). */
const fnvList = (h: number, l: readonly number[]): number => {
  for (let i = 0; i < l.length; i++) if (!isGrease(l[i]!)) h = fnv(h, l[i]!);
  return fnv(h, 0xffffffff);
};

/** printKey: a 32-bit hash of everything JA3 and JA4 are computed from (samePrintInputs compares the same fields). */
function printKey(h: TlsClientHello): number {
  let k = fnv(0x811c9dc5, h.sslv2 ? 1 : 0);
  k = fnv(k, h.legacyVersion);
  k = fnvList(k, h.ciphers);
  k = fnvList(k, h.extensions);
  k = fnvList(k, h.groups);
  for (const v of h.pointFormats) k = fnv(k, v);
  k = fnv(k, h.pointFormats.length);
  k = fnvList(k, h.sigAlgs);
  k = fnvList(k, h.supportedVersions);
  const alpn = h.alpn[0];
  if (alpn === undefined) return fnv(k, 0xffffffff);
  k = fnv(k, alpn.length);
  for (let i = 0; i < alpn.length; i++) k = fnv(k, alpn.charCodeAt(i));
  return k;
}

/** sameList: the same values in the same order, GREASE values left out. */
const sameList = (a: readonly number[], b: readonly number[]): boolean => {
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && isGrease(a[i]!)) i++;
    while (j < b.length && isGrease(b[j]!)) j++;
    if (i === a.length || j === b.length) return i === a.length && j === b.length;
    if (a[i++] !== b[j++]) return false;
  }
};

/**
 * samePrintInputs: `a` and `b` have the same JA3 and JA4: the same values of every field they are
 * made of, GREASE values aside (both leave them out of the lists they take them from; point
 * formats are taken as they are).
 */
function samePrintInputs(a: TlsClientHello, b: TlsClientHello): boolean {
  return (
    a.sslv2 === b.sslv2 &&
    a.legacyVersion === b.legacyVersion &&
    a.alpn[0] === b.alpn[0] &&
    sameList(a.ciphers, b.ciphers) &&
    sameList(a.extensions, b.extensions) &&
    sameList(a.groups, b.groups) &&
    a.pointFormats.length === b.pointFormats.length &&
    a.pointFormats.every((v, i) => v === b.pointFormats[i]) &&
    sameList(a.sigAlgs, b.sigAlgs) &&
    sameList(a.supportedVersions, b.supportedVersions)
  );
}

/** Bytes of certificate copies a TlsParser keeps for the records to share, at most (then it starts afresh). */
const CERT_KEEP_BYTES = 1 << 20;

/** derKey: a 32-bit key of a DER certificate: FNV-1a of its length and last 32 bytes (its signature's). */
function derKey(der: Uint8Array): number {
  let h = fnv(0x811c9dc5, der.length);
  for (let i = Math.max(0, der.length - 32); i < der.length; i++) h = fnv(h, der[i]!);
  return h;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Thrown inside a message parse when a length runs past its bound; caught there. */
class Short extends Error {}

/** Reader: reads a byte range; no read can pass `end` (throws Short, caught by the message parser). */
class Reader {
  constructor(
    readonly b: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}
  get left(): number {
    return this.end - this.pos;
  }
  u8(): number {
    if (this.pos + 1 > this.end) throw new Short();
    return this.b[this.pos++]!;
  }
  u16(): number {
    if (this.pos + 2 > this.end) throw new Short();
    const v = (this.b[this.pos]! << 8) | this.b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u24(): number {
    if (this.pos + 3 > this.end) throw new Short();
    const v = (this.b[this.pos]! << 16) | (this.b[this.pos + 1]! << 8) | this.b[this.pos + 2]!;
    this.pos += 3;
    return v;
  }
  /** sub: the next `n` bytes as a reader of their own. */
  sub(n: number): Reader {
    if (this.pos + n > this.end) throw new Short();
    const r = new Reader(this.b, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  vec8(): Reader {
    return this.sub(this.u8());
  }
  vec16(): Reader {
    return this.sub(this.u16());
  }
  vec24(): Reader {
    return this.sub(this.u24());
  }
  bytes(): Uint8Array {
    return this.b.subarray(this.pos, this.end);
  }
  hex(): string {
    const n = this.end - this.pos;
    if (n === 0) return '';
    if (n * 2 > hexScratch.length) hexScratch = new Uint8Array(n * 2);
    for (let i = 0; i < n; i++) {
      const v = this.b[this.pos + i]!;
      hexScratch[2 * i] = HEX_DIGITS[v >> 4]!;
      hexScratch[2 * i + 1] = HEX_DIGITS[v & 15]!;
    }
    return latin1.decode(hexScratch.subarray(0, n * 2));
  }
  /** equals: the bytes left are `v`. */
  equals(v: Uint8Array): boolean {
    if (this.left !== v.length) return false;
    for (let i = 0; i < v.length; i++) if (this.b[this.pos + i] !== v[i]) return false;
    return true;
  }
  u16s(): number[] {
    if (this.left % 2 !== 0) throw new Short();
    const out: number[] = [];
    while (this.left > 0) out.push(this.u16());
    return out;
  }
  u8s(): number[] {
    const out: number[] = [];
    while (this.left > 0) out.push(this.u8());
    return out;
  }
  done(): void {
    if (this.pos !== this.end) throw new Short();
  }
}

/** emptyHello: a ClientHello with nothing but its kind and version, for the parsers to fill. */
function emptyHello(sslv2: boolean, legacyVersion: number): TlsClientHello {
  return { sslv2, legacyVersion, supportedVersions: [], ciphers: [], extensions: [], groups: [], pointFormats: [], sigAlgs: [], sni: null, alpn: [], ech: false, sessionTicket: null, pskModes: [], sessionId: '' };
}

/** parseClientHello: the body of a ClientHello (after the 4-byte header), body[start, end); throws Short. */
export function parseClientHello(body: Uint8Array, start = 0, end = body.length): TlsClientHello {
  const r = new Reader(body, start, end);
  const h = emptyHello(false, r.u16());
  r.sub(32);
  const sid = r.vec8();
  if (sid.left > 32) throw new Short();
  h.sessionId = sid.hex();
  h.ciphers = r.vec16().u16s();
  r.vec8();
  if (r.left === 0) return h;
  const exts = r.vec16();
  r.done();
  while (exts.left > 0) {
    const type = exts.u16();
    const x = exts.vec16();
    h.extensions.push(type);
    switch (type) {
      case 0: {
        const list = x.vec16();
        while (list.left > 0) {
          const kind = list.u8();
          const name = list.vec16();
          if (kind === 0 && h.sni === null) h.sni = latin1.decode(name.bytes());
        }
        break;
      }
      case 10:
        h.groups = x.vec16().u16s();
        break;
      case 11:
        h.pointFormats = x.vec8().u8s();
        break;
      case 13:
        h.sigAlgs = x.vec16().u16s();
        break;
      case 16: {
        const list = x.vec16();
        while (list.left > 0) h.alpn.push(latin1.decode(list.vec8().bytes()));
        break;
      }
      case 35:
        h.sessionTicket = x.left;
        break;
      case 43: {
        const list = x.vec8();
        h.supportedVersions = list.u16s();
        break;
      }
      case 45:
        h.pskModes = x.vec8().u8s();
        break;
      case 0xfe0d:
        h.ech = true;
        break;
    }
  }
  return h;
}

/** parseServerHello: the body of a ServerHello, body[start, end); `hrr` tells a HelloRetryRequest; throws Short. */
export function parseServerHello(body: Uint8Array, start = 0, end = body.length): { hello: TlsServerHello; hrr: boolean } {
  const r = new Reader(body, start, end);
  const legacyVersion = r.u16();
  const hrr = r.sub(32).equals(HRR_RANDOM);
  const sid = r.vec8();
  if (sid.left > 32) throw new Short();
  const hello: TlsServerHello = { version: legacyVersion, legacyVersion, cipher: r.u16(), extensions: [], alpn: null, sessionId: sid.hex() };
  r.u8();
  if (r.left === 0) return { hello, hrr };
  const exts = r.vec16();
  r.done();
  while (exts.left > 0) {
    const type = exts.u16();
    const x = exts.vec16();
    hello.extensions.push(type);
    if (type === 43) hello.version = x.u16();
    else if (type === 16) {
      const list = x.vec16();
      if (list.left > 0) hello.alpn = latin1.decode(list.vec8().bytes());
    }
  }
  return { hello, hrr };
}

/** parseSslv2Hello: an SSLv2-compatible ClientHello's message (from its msg_type byte); throws Short. */
export function parseSslv2Hello(msg: Uint8Array): TlsClientHello {
  const r = new Reader(msg, 0, msg.length);
  if (r.u8() !== 1) throw new Short();
  const legacyVersion = r.u16();
  const specLen = r.u16();
  const sidLen = r.u16();
  const challengeLen = r.u16();
  if (specLen % 3 !== 0 || sidLen > 32 || challengeLen < 16 || challengeLen > 32) throw new Short();
  const specs = r.sub(specLen);
  const ciphers: number[] = [];
  while (specs.left > 0) ciphers.push((specs.u8() << 16) | specs.u16());
  const sessionId = r.sub(sidLen).hex();
  r.sub(challengeLen);
  r.done();
  return { ...emptyHello(true, legacyVersion), ciphers, sessionId };
}

/**
 * parseCertificates: a TLS <= 1.2 Certificate body, body[start, end); DER copies, the first `max`,
 * and how many there were. `copy` makes each copy (a plain copy by default).
 */
export function parseCertificates(
  body: Uint8Array,
  max: number,
  start = 0,
  end = body.length,
  copy: (der: Uint8Array) => Uint8Array = (der) => der.slice(),
): { certs: Uint8Array[]; count: number } {
  const r = new Reader(body, start, end);
  const list = r.vec24();
  r.done();
  const certs: Uint8Array[] = [];
  let count = 0;
  while (list.left > 0) {
    const c = list.vec24();
    if (count++ < max) certs.push(copy(c.bytes()));
  }
  return { certs, count };
}

const enum Mode {
  /** Looking for the start of TLS. */
  Probe,
  Records,
  /** An SSLv2 ClientHello's record body, `v2Len` bytes. */
  Sslv2,
  /** Parsing over: encrypted data, or stopped by an issue. */
  Done,
  /** No TLS found here. */
  Off,
}

class Side {
  mode = Mode.Probe;
  /** Stream offset of the next byte. */
  offset = 0;
  start: number | null = null;
  /** The last probe bytes (a copy, at most PROBE_TAIL), which end at `offset`. */
  probe = NO_BYTES;
  probeLen = 0;
  /** The record header being read: its first byte, the next four (big-endian), how many read. */
  hdrType = 0;
  hdrWord = 0;
  hdrLen = 0;
  recType = 0;
  recLeft = 0;
  /** The handshake message header being read (big-endian, `mhLen` bytes of it), and the message body (a copy while incomplete). */
  mhWord = 0;
  mhLen = 0;
  /** Stream offset of the current handshake message's header. */
  msgAt = 0;
  msg: Uint8Array | null = null;
  msgLen = 0;
  alertByte = -1;
  v2Len = 0;
  /** Saw ServerHelloDone (s2c), CCS, application data. */
  helloDone = false;
  ccs = false;
  sawCertificate = false;
  constructor(readonly dir: Direction) {}
}

class Conn {
  readonly c2s = new Side('c2s');
  readonly s2c = new Side('s2c');
  client: Endpoint = { ip: '', port: 0 };
  server: Endpoint = { ip: '', port: 0 };
  emitted = false;
  rec: TlsRecord | null = null;
  constructor(readonly id: number) {}
}

/** TlsParser: see the file comment. Throws nothing on any input. */
export class TlsParser {
  readonly stats: TlsParserStats = { connections: 0, tls: 0, clientHellos: 0, serverHellos: 0, certificates: 0, incomplete: 0, errors: 0, heldBytes: 0 };
  private readonly hashes: TlsHashes;
  private readonly maxHandshakeBytes: number;
  private readonly maxCertificates: number;
  private readonly probeBytes: number;
  private readonly conns = new Map<number, Conn>();
  /** Copies of the certificates seen, by derKey; CERT_KEEP_BYTES of them at most (see copyCertificate). */
  private readonly knownCerts = new Map<number, Uint8Array[]>();
  private knownCertBytes = 0;
  /**
   * copyCertificate: a copy of a DER certificate, the one made before when the same bytes came
   * before (servers send the same chain to every client): records share it.
   */
  private readonly copyCertificate = (der: Uint8Array): Uint8Array => {
    const key = derKey(der);
    const same = this.knownCerts.get(key);
    if (same !== undefined) for (const c of same) if (sameBytes(c, der)) return c;
    const copy = der.slice();
    if (der.length > CERT_KEEP_BYTES / 16) return copy;
    if (this.knownCertBytes + der.length > CERT_KEEP_BYTES) {
      this.knownCerts.clear();
      this.knownCertBytes = 0;
    }
    this.knownCertBytes += der.length;
    if (same === undefined) this.knownCerts.set(key, [copy]);
    else same.push(copy);
    return copy;
  };
  /** Fingerprints of the ClientHellos seen, by printKey (the last DIGEST_CACHE_MAX kinds). */
  private readonly helloPrints = new Map<number, HelloPrints>();
  private out: TlsRecord[] = [];
  private ts = '';

  constructor(options: TlsParserOptions) {
    this.hashes = cachedHashes(options.hashes);
    this.maxHandshakeBytes = Math.max(64, options.maxHandshakeBytes ?? 65536);
    this.maxCertificates = Math.max(1, options.maxCertificates ?? 16);
    this.probeBytes = Math.max(16, options.probeBytes ?? 8192);
  }

  write(events: readonly StreamEvent[], emit: (out: TlsRecord[]) => void): void {
    for (const e of events) {
      this.ts = e.ts;
      if (e.type === 'open') {
        const c = new Conn(e.conn);
        c.client = e.client;
        c.server = e.server;
        this.conns.set(e.conn, c);
        this.stats.connections++;
      } else if (e.type === 'data') {
        const c = this.conns.get(e.conn);
        if (c !== undefined && !c.emitted) {
          const s = c[e.dir];
          s.offset = e.offset;
          this.data(c, s, e.data);
          this.check(c);
        }
      } else if (e.type === 'gap') {
        const c = this.conns.get(e.conn);
        if (c !== undefined && !c.emitted) {
          this.gap(c, c[e.dir], e.offset, e.len);
          this.check(c);
        }
      } else if (e.type === 'close') {
        const c = this.conns.get(e.conn);
        if (c !== undefined) this.close(c);
      }
    }
    this.flush(emit);
  }

  end(emit: (out: TlsRecord[]) => void): void {
    for (const c of [...this.conns.values()]) this.close(c);
    this.flush(emit);
  }

  private flush(emit: (out: TlsRecord[]) => void): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    emit(out);
  }

  private record(c: Conn): TlsRecord {
    if (c.rec === null) {
      this.stats.tls++;
      c.rec = {
        type: 'tls',
        conn: c.id,
        ts: this.ts,
        client: c.client,
        server: c.server,
        start: { c2s: null, s2c: null },
        clientHello: null,
        serverHello: null,
        helloRetry: false,
        ja3: null,
        ja3Hash: null,
        ja3s: null,
        ja3sHash: null,
        ja4: null,
        ja4_r: null,
        certificates: [],
        clientCertificates: [],
        alerts: [],
        resumed: null,
        complete: false,
        missing: [],
        errors: [],
      };
    }
    return c.rec;
  }

  private issue(c: Conn, s: Side, code: TlsErrorCode, message: string, offset: number): void {
    this.stats.errors++;
    this.record(c).errors.push({ dir: s.dir, code, offset, message });
  }

  /** stop: the direction's parsing ends; its held bytes are let go. */
  private stop(s: Side, mode: Mode): void {
    s.mode = mode;
    this.stats.heldBytes -= s.probeLen + (s.msg === null ? 0 : s.msg.length);
    s.probe = NO_BYTES;
    s.probeLen = 0;
    s.msg = null;
  }

  private data(c: Conn, s: Side, data: Uint8Array): void {
    if (s.mode === Mode.Probe) this.probe(c, s, data);
    else if (s.mode === Mode.Records || s.mode === Mode.Sslv2) this.records(c, s, data);
    s.offset += data.length;
  }

  /**
   * probe: the first bytes decide: a record header (or an SSLv2 ClientHello, client side) at the
   * start, or else the start of a hello record found in the first `probeBytes`. Only the last
   * PROBE_TAIL bytes are held between data events (a hello's start may straddle two); the bytes
   * of an event are looked at in place.
   */
  private probe(c: Conn, s: Side, data: Uint8Array): void {
    const inWindow = Math.min(data.length, Math.max(0, this.probeBytes - s.offset));
    const part = data.subarray(0, inWindow);
    const held = s.probeLen;
    const buf = held === 0 ? part : concat(s.probe.subarray(0, held), part);
    /** Stream offset of buf[0]. */
    const base = s.offset - held;
    let found = -1;
    let v2 = false;
    if (base === 0) {
      if (buf.length < 5) return this.probeHold(s, buf, s.offset + inWindow, inWindow < data.length);
      const len = (buf[3]! << 8) | buf[4]!;
      // once the other direction is TLS, any record type may come first here (an alert refusing the hello)
      const type = buf[0]!;
      const recordType = type === CT_HANDSHAKE || (c.rec !== null && type >= CT_CCS && type <= CT_APPDATA);
      if (recordType && buf[1] === 3 && buf[2]! <= 4 && len > 0 && len <= MAX_RECORD) found = 0;
      else if (s.dir === 'c2s' && (type & 0x80) !== 0 && buf[2] === 1 && ((buf[3] === 0 && buf[4] === 2) || (buf[3] === 3 && buf[4]! <= 4))) {
        found = 0;
        v2 = true;
      }
    }
    const want = s.dir === 'c2s' ? 1 : 2;
    for (let i = 0; found < 0 && i + 11 <= buf.length; i++) {
      if (buf[i] !== CT_HANDSHAKE || buf[i + 1] !== 3 || buf[i + 2]! > 4 || buf[i + 5] !== want || buf[i + 9] !== 3 || buf[i + 10]! > 4) continue;
      const len = (buf[i + 3]! << 8) | buf[i + 4]!;
      if (len >= 4 && len <= MAX_RECORD) found = i;
    }
    if (found < 0) return this.probeHold(s, buf.subarray(Math.max(0, buf.length - PROBE_TAIL)), s.offset + inWindow, inWindow < data.length);
    const rec = this.record(c);
    s.start = base + found;
    rec.start[s.dir] = s.start;
    this.stop(s, v2 ? Mode.Sslv2 : Mode.Records);
    // an SSLv2 record: its 2-byte header read here, the body taken as one message
    const head = v2 ? 2 : 0;
    if (v2) s.v2Len = ((buf[found]! & 0x7f) << 8) | buf[found + 1]!;
    const at = s.offset;
    s.offset = s.start + head;
    this.records(c, s, buf.subarray(found + head));
    const after = data.subarray(inWindow);
    if (after.length > 0 && (s.mode === Mode.Records || s.mode === Mode.Sslv2)) {
      s.offset = at + inWindow;
      this.records(c, s, after);
    }
    s.offset = at;
  }

  /** probeHold: nothing found up to stream offset `end`: hold `keep` (a copy) for the next event, or give up at the window's end. */
  private probeHold(s: Side, keep: Uint8Array, end: number, past: boolean): void {
    if (past || end >= this.probeBytes) {
      this.stop(s, Mode.Off);
      return;
    }
    this.stats.heldBytes += keep.length - s.probeLen;
    s.probe = keep.slice();
    s.probeLen = keep.length;
  }

  /** records: bytes of a TLS direction, from a record boundary on. */
  private records(c: Conn, s: Side, data: Uint8Array): void {
    let pos = 0;
    if (s.mode === Mode.Sslv2) {
      // the whole SSLv2 record is taken as one handshake message
      if (s.msg === null) {
        if (s.v2Len > this.maxHandshakeBytes || s.v2Len < 9) {
          this.issue(c, s, 'BAD_RECORD', `SSLv2 record of ${s.v2Len} bytes`, s.start ?? 0);
          this.stop(s, Mode.Done);
          return;
        }
        s.msg = new Uint8Array(s.v2Len);
        s.msgLen = 0;
        this.stats.heldBytes += s.v2Len;
      }
      const take = Math.min(data.length, s.v2Len - s.msgLen);
      s.msg.set(data.subarray(0, take), s.msgLen);
      s.msgLen += take;
      if (s.msgLen < s.v2Len) return;
      const msg = s.msg;
      this.stats.heldBytes -= msg.length;
      s.msg = null;
      s.msgLen = 0;
      s.mode = Mode.Records;
      try {
        this.clientHello(c, parseSslv2Hello(msg));
      } catch (err) {
        if (!(err instanceof Short)) throw err;
        this.issue(c, s, 'BAD_HANDSHAKE', 'malformed SSLv2 ClientHello', s.start ?? 0);
        this.stop(s, Mode.Done);
      }
      this.check(c);
      if (s.mode !== Mode.Records) return;
      pos = take;
    }
    while (pos < data.length && s.mode === Mode.Records) {
      if (s.recLeft === 0) {
        for (; s.hdrLen < 5 && pos < data.length; s.hdrLen++, pos++) {
          if (s.hdrLen === 0) s.hdrType = data[pos]!;
          else s.hdrWord = ((s.hdrWord << 8) | data[pos]!) >>> 0;
        }
        if (s.hdrLen < 5) break;
        s.hdrLen = 0;
        const type = s.hdrType;
        const len = s.hdrWord & 0xffff;
        const at = s.offset + pos - 5;
        if (type < CT_CCS || type > CT_HEARTBEAT || s.hdrWord >>> 24 !== 3) {
          const bytes = [type, s.hdrWord >>> 24, (s.hdrWord >>> 16) & 0xff, len >> 8, len & 0xff];
          this.issue(c, s, 'BAD_RECORD', `record header ${bytes.map((b) => HEX2[b]).join(' ')}`, at);
          this.stop(s, Mode.Done);
          break;
        }
        if (len > MAX_RECORD) {
          this.issue(c, s, 'RECORD_TOO_LARGE', `record of ${len} bytes`, at);
          this.stop(s, Mode.Done);
          break;
        }
        s.recType = type;
        if (s.recType === CT_CCS && s.dir === 's2c' && c.rec !== null && c.rec.helloRetry && c.rec.serverHello === null) {
          // TLS 1.3 middlebox compatibility: a CCS after a HelloRetryRequest, then the ServerHello in the clear
          s.recLeft = len;
          continue;
        }
        if (s.recType === CT_CCS || s.recType === CT_APPDATA) {
          if (s.recType === CT_CCS) s.ccs = true;
          this.stop(s, Mode.Done);
          this.check(c);
          break;
        }
        s.recLeft = len;
        continue;
      }
      const take = Math.min(s.recLeft, data.length - pos);
      s.recLeft -= take;
      pos += take;
      if (s.recType === CT_HANDSHAKE) this.handshake(c, s, data, pos - take, pos, s.offset + pos - take);
      else if (s.recType === CT_ALERT) this.alerts(c, s, data.subarray(pos - take, pos));
    }
  }

  private alerts(c: Conn, s: Side, part: Uint8Array): void {
    const rec = this.record(c);
    for (const b of part) {
      if (s.alertByte < 0) s.alertByte = b;
      else {
        if (rec.alerts.length < MAX_ALERTS) rec.alerts.push({ dir: s.dir, level: s.alertByte, description: b });
        s.alertByte = -1;
      }
    }
  }

  /** handshake: a record's handshake bytes, data[from, to) (`at`: the stream offset of data[from]). */
  private handshake(c: Conn, s: Side, data: Uint8Array, from: number, to: number, at: number): void {
    let pos = from;
    while (pos < to && s.mode === Mode.Records) {
      if (s.mhLen < 4) {
        if (s.mhLen === 0) {
          s.msgAt = at + pos - from;
          s.mhWord = 0;
        }
        for (; s.mhLen < 4 && pos < to; s.mhLen++, pos++) s.mhWord = ((s.mhWord << 8) | data[pos]!) >>> 0;
        if (s.mhLen < 4) break;
        const type = s.mhWord >>> 24;
        const len = s.mhWord & 0xffffff;
        if (len > this.maxHandshakeBytes) {
          this.issue(c, s, 'HANDSHAKE_TOO_LARGE', `handshake message type ${type} of ${len} bytes`, s.msgAt);
          this.stop(s, Mode.Done);
          break;
        }
        s.msgLen = 0;
        if (len === 0) {
          s.mhLen = 0;
          this.message(c, s, type, NO_BYTES, 0, 0);
          continue;
        }
        if (to - pos >= len) {
          // the whole message is here: parsed in place, no copy
          s.mhLen = 0;
          pos += len;
          this.message(c, s, type, data, pos - len, pos);
          continue;
        }
        s.msg = new Uint8Array(len);
        this.stats.heldBytes += len;
      }
      const msg = s.msg!;
      const take = Math.min(msg.length - s.msgLen, to - pos);
      msg.set(data.subarray(pos, pos + take), s.msgLen);
      s.msgLen += take;
      pos += take;
      if (s.msgLen === msg.length) {
        this.stats.heldBytes -= msg.length;
        s.msg = null;
        s.mhLen = 0;
        this.message(c, s, s.mhWord >>> 24, msg, 0, msg.length);
      }
    }
  }

  /** message: a whole handshake message of `type`, its body body[start, end). */
  private message(c: Conn, s: Side, type: number, body: Uint8Array, start: number, end: number): void {
    const rec = this.record(c);
    try {
      if (s.dir === 'c2s') {
        if (type === 1) this.clientHello(c, parseClientHello(body, start, end));
        else if (type === 11) {
          s.sawCertificate = true;
          rec.clientCertificates = this.certificates(c, s, body, start, end);
        }
      } else if (type === 2) {
        const { hello, hrr } = parseServerHello(body, start, end);
        this.stats.serverHellos++;
        if (hrr) rec.helloRetry = true;
        else if (rec.serverHello === null) {
          rec.serverHello = hello;
          rec.ja3s = ja3sString(hello);
          rec.ja3sHash = this.hashes.md5(rec.ja3s);
        }
      } else if (type === 11) {
        s.sawCertificate = true;
        if (rec.certificates.length === 0) rec.certificates = this.certificates(c, s, body, start, end);
      } else if (type === 14) s.helloDone = true;
    } catch (err) {
      if (!(err instanceof Short)) throw err;
      this.issue(c, s, 'BAD_HANDSHAKE', `malformed handshake message type ${type} of ${end - start} bytes`, s.msgAt);
      this.stop(s, Mode.Done);
    }
    // settled here, the record goes now: what follows is not read, however the bytes were split
    this.check(c);
  }

  private clientHello(c: Conn, hello: TlsClientHello): void {
    const rec = this.record(c);
    this.stats.clientHellos++;
    if (rec.clientHello !== null) return;
    rec.clientHello = hello;
    const f = this.prints(hello);
    rec.ja3 = f.ja3;
    rec.ja3Hash = f.ja3Hash;
    rec.ja4 = f.ja4;
    rec.ja4_r = f.ja4_r;
  }

  /** prints: the hello's fingerprints, computed once per set of values they are made of (helloPrints). */
  private prints(hello: TlsClientHello): HelloPrints {
    const key = printKey(hello);
    const known = this.helloPrints.get(key);
    if (known !== undefined && samePrintInputs(known.hello, hello)) return known;
    const ja3 = hello.sslv2 ? null : ja3String(hello);
    const f = ja4(hello, this.hashes.sha256);
    const prints: HelloPrints = { hello, ja3, ja3Hash: ja3 === null ? null : this.hashes.md5(ja3), ja4: f.ja4, ja4_r: f.ja4_r };
    if (this.helloPrints.size >= DIGEST_CACHE_MAX) this.helloPrints.clear();
    this.helloPrints.set(key, prints);
    return prints;
  }

  private certificates(c: Conn, s: Side, body: Uint8Array, start: number, end: number): Uint8Array[] {
    const { certs, count } = parseCertificates(body, this.maxCertificates, start, end, this.copyCertificate);
    this.stats.certificates += certs.length;
    if (count > certs.length) this.issue(c, s, 'TOO_MANY_CERTIFICATES', `${count} certificates, the first ${certs.length} kept`, s.msgAt);
    return certs;
  }

  private gap(c: Conn, s: Side, offset: number, len: number): void {
    if (s.mode === Mode.Probe) {
      // the probe goes on after the hole, with nothing held
      this.stats.heldBytes -= s.probeLen;
      s.probe = NO_BYTES;
      s.probeLen = 0;
      if (offset + len >= this.probeBytes) this.stop(s, Mode.Off);
    } else if (s.mode === Mode.Records || s.mode === Mode.Sslv2) {
      this.issue(c, s, 'GAP', `${len} bytes missing`, offset);
      this.stop(s, Mode.Done);
    }
    s.offset = offset + len;
  }

  /** settled: nothing more this direction can add to the record. */
  private settled(c: Conn, s: Side): boolean {
    if (s.mode === Mode.Done || s.mode === Mode.Off) return true;
    const rec = c.rec;
    if (s.dir === 's2c') {
      if (s.helloDone) return true;
      const sh = rec?.serverHello;
      return sh !== undefined && sh !== null && isTls13(sh);
    }
    // up to TLS 1.2 the client's next flight may refuse the server's (an alert) or bring a certificate
    const sh = rec?.serverHello;
    return rec !== null && rec.clientHello !== null && sh !== undefined && sh !== null && isTls13(sh);
  }

  private check(c: Conn): void {
    if (c.rec === null || c.rec.clientHello === null || !this.settled(c, c.s2c) || !this.settled(c, c.c2s)) return;
    this.emit(c, false);
  }

  private emit(c: Conn, closing: boolean): void {
    const rec = c.rec;
    c.emitted = true;
    for (const s of [c.c2s, c.s2c]) {
      if (closing && (s.mode === Mode.Records || s.mode === Mode.Sslv2) && (s.hdrLen > 0 || s.recLeft > 0 || s.mhLen > 0 || s.msg !== null)) {
        this.issue(c, s, 'CUT', 'the connection ended inside a record', s.offset);
      }
      if (s.mode !== Mode.Off) this.stop(s, s.mode === Mode.Probe ? Mode.Off : Mode.Done);
    }
    if (rec === null) return;
    const sh = rec.serverHello;
    if (sh !== null) {
      rec.resumed = isTls13(sh)
        ? sh.extensions.includes(41) : (sh.sessionId !== '' && sh.sessionId === rec.clientHello?.sessionId) || (c.s2c.ccs && !c.s2c.sawCertificate);
    }
    if (rec.clientHello === null) rec.missing.push('clientHello');
    if (sh === null) rec.missing.push('serverHello');
    else if (!isTls13(sh) && !rec.resumed && !c.s2c.sawCertificate && !c.s2c.helloDone && !c.s2c.ccs) rec.missing.push('certificates');
    rec.complete = rec.missing.length === 0 && rec.errors.length === 0;
    if (!rec.complete) this.stats.incomplete++;
    this.out.push(rec);
    c.rec = null;
  }

  private close(c: Conn): void {
    if (!c.emitted) this.emit(c, true);
    this.conns.delete(c.id);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
