/**
 * format: the pure formatting the sinks share. Text escaping for people (`escapeText`), the
 * stdout text layout (`TextFormatter`), NDJSON lines (`ndjsonLine`), payload encoders, and
 * tcpflow-style file names (`flowFileName`). No node:* import, no I/O: everything here returns
 * strings. Nothing here throws except `ndjsonLine`/`flowFileName` on an address that is not IPv4
 * or IPv6 text (a PcapflowError INVALID_OPTION: the event producer broke its contract).
 */
import { PcapflowError } from './errors.js';
import type {
  CloseEvent,
  DataEvent,
  Direction,
  DirectionSummary,
  Endpoint,
  GapEvent,
  OpenEvent,
  OverlapEvent,
  StreamEvent,
  TcpOptionsSeen,
} from './events.js';

// ---------------------------------------------------------------------------------------------
// Text escaping

/** ESCAPES[b] is the escape for byte b, or '' when b is shown as itself. */
const ESCAPES: string[] = [];
for (let b = 0; b < 256; b++) {
  if ((b >= 0x20 && b <= 0x7e && b !== 0x5c) || b === 0x0a || b === 0x09) ESCAPES.push('');
  else if (b === 0x5c) ESCAPES.push('\\\\');
  else if (b === 0x0d) ESCAPES.push('\\r');
  else ESCAPES.push(`\\x${b.toString(16).padStart(2, '0')}`);
}

const asciiDecoder = new TextDecoder('latin1');

/** asciiRun decodes bytes known to be printable ASCII (so latin1 and windows-1252 agree). */
function asciiRun(data: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n > 48) return asciiDecoder.decode(data.subarray(start, end));
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(data[i]!);
  return s;
}

/**
 * escapeText renders bytes for a terminal: printable ASCII as itself, `\n` and `\t` as
 * themselves, `\r` raw only when a `\n` follows it in the same chunk (a CRLF line end), a
 * backslash as `\\`, every other byte as `\xHH` (lower-case hex). The result is pure ASCII with
 * no control character other than \n, \t and the CR of a CRLF, so captured bytes can never drive
 * the terminal (no escape sequences get through), and it can be decoded back unambiguously.
 */
export function escapeText(data: Uint8Array): string {
  const len = data.length;
  let out = '';
  let run = 0;
  for (let i = 0; i < len; i++) {
    const b = data[i]!;
    const esc = ESCAPES[b]!;
    if (esc === '') continue;
    if (b === 0x0d && i + 1 < len && data[i + 1] === 0x0a) continue; // CRLF stays as it is
    if (i > run) out += asciiRun(data, run, i);
    out += esc;
    run = i + 1;
  }
  if (run === 0) return asciiRun(data, 0, len);
  if (len > run) out += asciiRun(data, run, len);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Payload encoders (NDJSON `data`)

/** How the NDJSON sink writes payload bytes in `data`. */
export type PayloadEncoding = 'base64' | 'utf8' | 'hex';
export const PAYLOAD_ENCODINGS: readonly PayloadEncoding[] = ['base64', 'utf8', 'hex'];

/** PayloadEncoder turns a chunk into the text put between the quotes of `"data"` (already JSON-safe). */
export type PayloadEncoder = (data: Uint8Array) => string;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const HEX: string[] = [];
for (let b = 0; b < 256; b++) HEX.push(b.toString(16).padStart(2, '0'));

/** encodeBase64 is standard base64 (RFC 4648, `+/`, padded): a pure implementation. */
export function encodeBase64(data: Uint8Array): string {
  let out = '';
  const len = data.length;
  const whole = len - (len % 3);
  let i = 0;
  for (; i < whole; i += 3) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
    out += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + B64[(n >>> 6) & 63]! + B64[n & 63]!;
  }
  if (len - whole === 1) {
    const n = data[i]! << 16;
    out += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + '==';
  } else if (len - whole === 2) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8);
    out += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + B64[(n >>> 6) & 63]! + '=';
  }
  return out;
}

/** encodeHex is lower-case hex, two digits per byte, no separators. */
export function encodeHex(data: Uint8Array): string {
  let out = '';
  for (let i = 0; i < data.length; i++) out += HEX[data[i]!]!;
  return out;
}

const utf8Decoder = new TextDecoder('utf-8');

/**
 * encodeUtf8Json decodes the chunk as UTF-8 (invalid bytes become U+FFFD: lossy, and a character
 * split across two chunks becomes two replacement characters) and returns it JSON-escaped
 * without the surrounding quotes.
 */
export function encodeUtf8Json(data: Uint8Array): string {
  const s = JSON.stringify(utf8Decoder.decode(data));
  return s.slice(1, -1);
}

/** PURE_ENCODERS: the encoders of this module; the NDJSON sink swaps in faster native ones. */
export const PURE_ENCODERS: Readonly<Record<PayloadEncoding, PayloadEncoder>> = {
  base64: encodeBase64,
  utf8: encodeUtf8Json,
  hex: encodeHex,
};

// ---------------------------------------------------------------------------------------------
// NDJSON lines

/** endpointJson, vlanJson: JSON of an Endpoint and a VLAN list, as JSON.stringify writes them. */
export function endpointJson(e: Endpoint): string {
  // an address as formatIp prints it needs no escaping (digits, hex, '.' and ':')
  const ip = /^[0-9a-fA-F.:]*$/.test(e.ip) ? `"${e.ip}"` : JSON.stringify(e.ip);
  return `{"ip":${ip},"port":${e.port}}`;
}

export function vlanJson(v: number[]): string {
  return v.length === 0 ? '[]' : `[${v.join(',')}]`;
}

function optionsJson(o: TcpOptionsSeen): string {
  let s = '';
  if (o.mss !== undefined) s += `"mss":${o.mss}`;
  if (o.wscale !== undefined) s += `${s === '' ? '' : ','}"wscale":${o.wscale}`;
  if (o.sackPermitted !== undefined) s += `${s === '' ? '' : ','}"sackPermitted":${o.sackPermitted}`;
  return `{${s}}`;
}

function tsJson(ts: string | null): string {
  return ts === null ? 'null' : `"${ts}"`;
}

/** summaryJson renders a DirectionSummary's fields (without braces), in events.ts order. */
export function summaryFieldsJson(d: DirectionSummary): string {
  return (
    `"bytes":${d.bytes},"packets":${d.packets},"retransmitted":${d.retransmitted},` +
    `"outOfOrder":${d.outOfOrder},"gaps":${d.gaps},"missing":${d.missing},"overlaps":${d.overlaps},` +
    `"firstTs":${tsJson(d.firstTs)},"lastTs":${tsJson(d.lastTs)},"capped":${d.capped}`
  );
}

/** openJson, closeJson, ...: one event as a JSON object (no newline), fields in events.ts order. */
export function openJson(e: OpenEvent): string {
  return (
    `{"type":"open","conn":${e.conn},"ts":"${e.ts}","client":${endpointJson(e.client)},` +
    `"server":${endpointJson(e.server)},"vlan":${vlanJson(e.vlan)},"midstream":${e.midstream},` +
    `"options":{"c2s":${optionsJson(e.options.c2s)},"s2c":${optionsJson(e.options.s2c)}}}`
  );
}

export function dataJson(e: DataEvent, encode: PayloadEncoder): string {
  return `${dataJsonHead(e)}${encode(e.data)}"}`;
}

/** dataJsonHead: a data event's JSON up to the opening quote of its `data` value (the NDJSON sink writes the rest itself). */
export function dataJsonHead(e: DataEvent): string {
  return `{"type":"data","conn":${e.conn},"dir":"${e.dir}","offset":${e.offset},"ts":"${e.ts}","len":${e.data.length},"data":"`;
}

export function gapJson(e: GapEvent): string {
  return (
    `{"type":"gap","conn":${e.conn},"dir":"${e.dir}","offset":${e.offset},"len":${e.len},` +
    `"ts":"${e.ts}","reason":"${e.reason}"}`
  );
}

export function overlapJson(e: OverlapEvent): string {
  return (
    `{"type":"overlap","conn":${e.conn},"dir":"${e.dir}","offset":${e.offset},"len":${e.len},` +
    `"ts":"${e.ts}","kept":"${e.kept}"}`
  );
}

export function closeJson(e: CloseEvent): string {
  return (
    `{"type":"close","conn":${e.conn},"ts":"${e.ts}","reason":"${e.reason}",` +
    `"client":${endpointJson(e.client)},"server":${endpointJson(e.server)},"vlan":${vlanJson(e.vlan)},` +
    `"c2s":{${summaryFieldsJson(e.c2s)}},"s2c":{${summaryFieldsJson(e.s2c)}}}`
  );
}

/**
 * ndjsonLine renders one event as one NDJSON line, newline included. Field names are those of
 * events.ts; `ts` is a string; a data event carries `len` (bytes) and `data` encoded by `encode`.
 * The layout of every type is documented in src/sinks/ndjson-sink.ts.
 */
export function ndjsonLine(e: StreamEvent, encode: PayloadEncoder): string {
  switch (e.type) {
    case 'data':
      return dataJson(e, encode) + '\n';
    case 'open':
      return openJson(e) + '\n';
    case 'gap':
      return gapJson(e) + '\n';
    case 'overlap':
      return overlapJson(e) + '\n';
    case 'close':
      return closeJson(e) + '\n';
  }
}

// ---------------------------------------------------------------------------------------------
// Text for people (the stdout sink)

/** hostPort renders an endpoint as `10.0.0.1:80` or `[2001:db8::1]:80`. */
export function hostPort(e: Endpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

function summaryText(d: DirectionSummary): string {
  return (
    `bytes=${d.bytes} packets=${d.packets} retransmitted=${d.retransmitted} outOfOrder=${d.outOfOrder} ` +
    `gaps=${d.gaps} missing=${d.missing} overlaps=${d.overlaps}${d.capped > 0 ? ` capped=${d.capped}` : ''}`
  );
}

/** Which data the stdout sink shows. */
export type DirectionFilter = Direction | 'both';

interface ConnLabels {
  c2s: string;
  s2c: string;
}

/**
 * TextFormatter renders event batches as text for people. The layout, one line each:
 *
 *     === conn 3 open 10.0.0.1:43210 => 10.0.0.2:80 vlan=none midstream=no ts=1258544215.037210000
 *     --- conn 3 10.0.0.1:43210 => 10.0.0.2:80 offset=0 ts=1258544215.037300000
 *     GET / HTTP/1.1            (the bytes, through escapeText)
 *     !!! conn 3 c2s gap offset=120 len=40 reason=fin ts=...
 *     !!! conn 3 s2c overlap offset=10 len=4 kept=first ts=...
 *     === conn 3 close reason=fin ts=... c2s: bytes=.. packets=.. ...; s2c: ...
 *
 * Consecutive data chunks of the same connection and direction share one `---` header (the text
 * simply continues); any other line ends the text with a newline when it lacks one. The `---`
 * line names the sender first: `client => server` for c2s, `server => client` for s2c. With a
 * direction filter, data, gap and overlap lines of the other direction are left out; open and
 * close lines always show. State: the labels of open connections (dropped at close).
 */
export class TextFormatter {
  private readonly filter: DirectionFilter;
  private readonly labels = new Map<number, ConnLabels>();
  /** Connection and direction of the text being continued, or -1 / null. */
  private curConn = -1;
  private curDir: Direction | null = null;
  private atLineStart = true;

  constructor(filter: DirectionFilter = 'both') {
    this.filter = filter;
  }

  /** format renders one batch; '' when nothing in it shows. */
  format(batch: readonly StreamEvent[]): string {
    let out = '';
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      if (e.type === 'data') {
        if (this.filter !== 'both' && e.dir !== this.filter) continue;
        if (e.data.length === 0) continue;
        if (e.conn !== this.curConn || e.dir !== this.curDir) {
          out += this.breakText();
          out += `--- conn ${e.conn} ${this.label(e.conn, e.dir)} offset=${e.offset} ts=${e.ts}\n`;
          this.curConn = e.conn;
          this.curDir = e.dir;
        }
        out += escapeText(e.data);
        this.atLineStart = e.data[e.data.length - 1] === 0x0a;
        continue;
      }
      switch (e.type) {
        case 'open': {
          out += this.breakText();
          const c2s = `${hostPort(e.client)} => ${hostPort(e.server)}`;
          const s2c = `${hostPort(e.server)} => ${hostPort(e.client)}`;
          this.labels.set(e.conn, { c2s, s2c });
          const vlan = e.vlan.length === 0 ? 'none' : e.vlan.join('.');
          out += `=== conn ${e.conn} open ${c2s} vlan=${vlan} midstream=${e.midstream ? 'yes' : 'no'} ts=${e.ts}\n`;
          break;
        }
        case 'gap':
          if (this.filter !== 'both' && e.dir !== this.filter) break;
          out += this.breakText();
          out += `!!! conn ${e.conn} ${e.dir} gap offset=${e.offset} len=${e.len} reason=${e.reason} ts=${e.ts}\n`;
          break;
        case 'overlap':
          if (this.filter !== 'both' && e.dir !== this.filter) break;
          out += this.breakText();
          out += `!!! conn ${e.conn} ${e.dir} overlap offset=${e.offset} len=${e.len} kept=${e.kept} ts=${e.ts}\n`;
          break;
        case 'close':
          out += this.breakText();
          this.labels.delete(e.conn);
          out += `=== conn ${e.conn} close reason=${e.reason} ts=${e.ts} c2s: ${summaryText(e.c2s)}; s2c: ${summaryText(e.s2c)}\n`;
          break;
      }
    }
    return out;
  }

  /** end returns what closes the last text (a newline when it lacks one). */
  end(): string {
    return this.breakText();
  }

  private breakText(): string {
    this.curConn = -1;
    this.curDir = null;
    if (this.atLineStart) return '';
    this.atLineStart = true;
    return '\n';
  }

  private label(conn: number, dir: Direction): string {
    const l = this.labels.get(conn);
    if (l === undefined) return `(connection not opened) ${dir}`;
    return dir === 'c2s' ? l.c2s : l.s2c;
  }
}

// ---------------------------------------------------------------------------------------------
// tcpflow file names

function badAddress(ip: string): PcapflowError {
  return new PcapflowError('INVALID_OPTION', `not an IPv4 or IPv6 address: ${JSON.stringify(ip)}`);
}

/** parseIpv4 returns the four octets, or null when `s` is not a dotted quad. */
function parseIpv4(s: string): number[] | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** parseIpv6 returns the eight 16-bit words of an IPv6 text address (any valid form), or null. */
export function parseIpv6(s: string): number[] | null {
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (text.indexOf('.', lastColon) >= 0) {
    // an embedded dotted quad ends the address: rewrite it as two hex words
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = parseWords(halves[0]!);
  if (head === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const rest = parseWords(halves[1]!);
  if (rest === null) return null;
  const fill = 8 - head.length - rest.length;
  if (fill < 1) return null;
  return [...head, ...new Array<number>(fill).fill(0), ...rest];
}

/** parseWords parses colon-separated hex words ('' gives []), or null. */
function parseWords(h: string): number[] | null {
  if (h === '') return [];
  const words: number[] = [];
  for (const w of h.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
    words.push(parseInt(w, 16));
  }
  return words;
}

/**
 * formatIpv6 renders eight words as glibc's inet_ntop does (and so tcpflow): lower-case hex
 * without leading zeros; the longest run of two or more zero words (the first on a tie) becomes
 * `::`; an IPv4-compatible (`::a.b.c.d`, six zero words) or IPv4-mapped (`::ffff:a.b.c.d`)
 * address ends in a dotted quad.
 */
export function formatIpv6(words: readonly number[]): string {
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase < 0) {
        curBase = i;
        curLen = 1;
      } else curLen++;
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
    } else curBase = -1;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      const a = words[6]!;
      const b = words[7]!;
      out += `${a >>> 8}.${a & 255}.${b >>> 8}.${b & 255}`;
      break;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ':';
  return out;
}

/**
 * fileNameAddress renders an address the way tcpflow's %A/%B do: IPv4 as four octets padded to
 * three digits (`010.000.000.001`), IPv6 through inet_ntop (see formatIpv6).
 * Throws PcapflowError INVALID_OPTION when `ip` is neither.
 */
export function fileNameAddress(ip: string): string {
  if (ip.includes(':')) {
    const w = parseIpv6(ip);
    if (w === null) throw badAddress(ip);
    return formatIpv6(w);
  }
  const o = parseIpv4(ip);
  if (o === null) throw badAddress(ip);
  return `${pad3(o[0]!)}.${pad3(o[1]!)}.${pad3(o[2]!)}.${pad3(o[3]!)}`;
}

function pad3(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n);
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}

/**
 * flowBaseName is tcpflow's default template `%A.%a-%B.%b%V%v` for one direction (sender
 * `src`, receiver `dst`): `SRCIP.SPORT-DSTIP.DPORT`, ports padded to five digits, and `--<id>`
 * with the outermost VLAN id when the connection is tagged. (tcpflow prints the whole 16-bit
 * tag control field there, priority and DEI bits included, so a priority-tagged frame gives
 * `--45056` in tcpflow where pcapflow writes `--0`: pcapflow uses the VLAN id.)
 */
export function flowBaseName(src: Endpoint, dst: Endpoint, vlan: readonly number[]): string {
  const fast = ipv4BaseName(src, dst);
  if (fast !== null) return vlan.length === 0 ? fast : `${fast}--${vlan[0]}`;
  const base = `${fileNameAddress(src.ip)}.${pad5(src.port)}-${fileNameAddress(dst.ip)}.${pad5(dst.port)}`;
  return vlan.length === 0 ? base : `${base}--${vlan[0]}`;
}

/** NAME_BYTES: where ipv4BaseName assembles a name (43 bytes: `AAA.BBB.CCC.DDD.PPPPP-` twice, less one). */
const NAME_BYTES = new Uint8Array(44);

/**
 * ipv4BaseName: flowBaseName of two IPv4 endpoints without the VLAN, built byte by byte into one
 * flat string (a short capture names 100 000 files: template strings, padStart and a parse of
 * each address cost several microseconds a name); null when an address is not a plain dotted
 * quad, or a port is out of range (the general path then renders or rejects it).
 */
function ipv4BaseName(src: Endpoint, dst: Endpoint): string | null {
  const b = NAME_BYTES;
  if (!quadInto(src.ip, b, 0) || !portInto(src.port, b, 16) || !quadInto(dst.ip, b, 22) || !portInto(dst.port, b, 38)) return null;
  b[15] = 0x2e;
  b[21] = 0x2d;
  b[37] = 0x2e;
  return asciiDecoder.decode(b.subarray(0, 43));
}

/** quadInto writes dotted quad `ip` as `AAA.BBB.CCC.DDD` at b[at..at+15); false when it is not one (1-3 digits, at most 255, each). */
function quadInto(ip: string, b: Uint8Array, at: number): boolean {
  let part = 0;
  let n = 0;
  let digits = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || n > 255 || part > 3) return false;
      const o = at + part * 4;
      b[o] = 0x30 + ((n / 100) | 0);
      b[o + 1] = 0x30 + (((n / 10) | 0) % 10);
      b[o + 2] = 0x30 + (n % 10);
      if (part < 3) b[o + 3] = 0x2e;
      part++;
      n = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      n = n * 10 + (c - 0x30);
      digits++;
    } else return false;
  }
  return part === 4;
}

/** portInto writes `port` as five digits at b[at..at+5); false when it is not an integer 0-65535. */
function portInto(port: number, b: Uint8Array, at: number): boolean {
  if (!Number.isInteger(port) || port < 0 || port > 65535) return false;
  let n = port;
  for (let i = 4; i >= 0; i--) {
    b[at + i] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  }
  return true;
}

/**
 * flowFileName completes the template with `%C%c`: `c<N>` when `count` > 0, where `count` is the
 * number of earlier files with the same base name (tcpflow counts up until the name is free).
 */
export function flowFileName(base: string, count: number): string {
  return count > 0 ? `${base}c${count}` : base;
}
