/**
 * multipart: the parts of a multipart/form-data body (RFC 7578, RFC 2046 section 5.1), for the
 * request records and `--extract` (issue 15, item 6). Pure: no node:* import.
 *
 * MultipartParser is fed the (decoded) body in chunks of any size, a boundary may straddle them,
 * and emits `part` (the part's Content-Disposition name and filename, Content-Type), `data`
 * (views of the input, or of a short copy: use or copy them before the next call) and `end`
 * (`complete` false when the body was cut inside the part). A delimiter is a line of `--` and
 * the boundary at the body's start or after a line end, followed by `--` (the close delimiter),
 * or by spaces, tabs and the line end; the line end before it belongs to it. Lenient as real
 * clients need: bare LF line ends in delimiters and part headers, folded header lines.
 * The preamble and the epilogue are passed over.
 *
 * Memory: between calls it holds at most the boundary's length plus 5 bytes (a delimiter that
 * may go on in the next chunk), and while in a part's headers at most `maxHeaderBytes` of them.
 * It throws nothing: hostile input (no delimiter, huge headers, too many parts, a cut body)
 * ends in `error`, a reason for the record; the first one stays. A gap (`gap()`) ends the open
 * part incomplete; parsing resumes at the next delimiter.
 */

export interface MultipartOptions {
  /** Bytes of one part's header block, at most. Default 16 384. */
  maxHeaderBytes?: number;
  /** Parts reported, at most: later parts are parsed over and counted in `omitted`. Default 256. */
  maxParts?: number;
}

export const DEFAULT_MAX_PART_HEADER_BYTES = 16 * 1024;
export const DEFAULT_MAX_PARTS = 256;
/** RFC 2046 allows 70; a little more is accepted from lenient clients. */
export const MAX_BOUNDARY = 200;
/** Bytes after the boundary on a delimiter line (transport padding), at most. */
const MAX_PADDING = 1024;

export type MultipartEvent =
  | { type: 'part'; index: number; name: string | null; filename: string | null; contentType: string | null }
  | { type: 'data'; index: number; data: Uint8Array }
  | { type: 'end'; index: number; bytes: number; complete: boolean };

type State = 'preamble' | 'line' | 'headers' | 'data' | 'epilogue' | 'done';

const LF = 10;
const CR = 13;
const DASH = 45;
const SP = 32;
const HT = 9;
const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8');

/** MultipartParser: see the file comment. Throws nothing on any input. */
export class MultipartParser {
  /** Why the body is not a whole multipart body (the first reason); null while it is. */
  error: string | null = null;
  /** Parts parsed past `maxParts` and not reported. */
  omitted = 0;
  /** Parts reported. */
  parts = 0;
  /** `\n--BOUNDARY` */
  private readonly delim: Uint8Array;
  private readonly maxHeaderBytes: number;
  private readonly maxParts: number;
  private state: State = 'preamble';
  /** Bytes that may begin a delimiter, kept for the next chunk (a copy). The body's start counts as a line start. */
  private held: Uint8Array = new Uint8Array([LF]);
  /** A delimiter seen (the first one ends the preamble). */
  private seen = false;
  /** The current part: reported (index >= 0) or parsed over (-1). */
  private index = -1;
  private bytes = 0;
  /** Delimiter line: bytes after the boundary. */
  private padding = 0;
  /** Header block: bytes so far, and where they are. */
  private head: Uint8Array = EMPTY;
  private headLen = 0;
  private lineStart = true;
  private crAtLineStart = false;

  constructor(boundary: string, options: MultipartOptions = {}) {
    this.delim = new Uint8Array(3 + boundary.length);
    this.delim.set([LF, DASH, DASH]);
    for (let i = 0; i < boundary.length; i++) this.delim[3 + i] = boundary.charCodeAt(i) & 0xff;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_PART_HEADER_BYTES;
    this.maxParts = options.maxParts ?? DEFAULT_MAX_PARTS;
  }

  /** Bytes held now: a possible delimiter between chunks, or a part's header block so far. */
  get heldBytes(): number {
    return this.held.length + this.headLen;
  }

  /** True once the close delimiter was read. */
  get closed(): boolean {
    return this.state === 'epilogue';
  }

  write(chunk: Uint8Array, emit: (e: MultipartEvent) => void): void {
    if (this.state === 'epilogue' || this.state === 'done' || chunk.length === 0) return;
    let buf = chunk;
    if (this.held.length > 0) {
      buf = new Uint8Array(this.held.length + chunk.length);
      buf.set(this.held);
      buf.set(chunk, this.held.length);
      this.held = EMPTY;
    }
    let pos = 0;
    while (pos < buf.length) {
      switch (this.state as State) {
        case 'preamble':
        case 'data':
          pos = this.scan(buf, pos, emit);
          break;
        case 'line':
          pos = this.line(buf, pos);
          break;
        case 'headers':
          pos = this.headers(buf, pos, emit);
          break;
        case 'epilogue':
        case 'done':
          return;
      }
    }
  }

  /** gap: body bytes are missing here. The open part ends incomplete; parsing resumes at the next delimiter. */
  gap(emit: (e: MultipartEvent) => void): void {
    if (this.state === 'epilogue' || this.state === 'done') return;
    if (this.state === 'data') {
      this.data(this.held, 0, this.held.length, emit);
      this.endPart(false, emit);
    }
    this.held = EMPTY; // not at a line start that we know of
    this.head = EMPTY;
    this.headLen = 0;
    this.state = 'preamble';
    this.error ??= 'gap';
  }

  /** end: the body is over. An open part ends incomplete, unless only its delimiter was left to see. */
  end(emit: (e: MultipartEvent) => void): void {
    if (this.state === 'data') {
      const h = this.held;
      const cr = h[0] === CR ? 1 : 0;
      const rest = h.length - cr - this.delim.length;
      // `(CR) LF --BOUNDARY` or `... -`: the body stopped inside the delimiter that ends the part
      if (rest >= 0 && rest <= 1 && matches(h, cr, this.delim) && (rest === 0 || h[h.length - 1] === DASH)) {
        this.endPart(true, emit);
      } else {
        this.data(h, 0, h.length, emit);
        this.endPart(false, emit);
      }
    }
    this.held = EMPTY;
    this.head = EMPTY;
    this.headLen = 0;
    if (this.state !== 'epilogue' && this.state !== 'done') this.error ??= this.seen ? 'ended before the closing boundary' : 'boundary not found';
    if (this.omitted > 0 && this.error === null) this.error = `parts past the first ${this.maxParts}: ${this.omitted} not listed`;
    if (this.state !== 'epilogue') this.state = 'done';
  }

  /** scan passes data (or preamble) bytes up to the next delimiter; returns where to go on. */
  private scan(buf: Uint8Array, pos: number, emit: (e: MultipartEvent) => void): number {
    const d = this.delim;
    for (let i = buf.indexOf(LF, pos); i >= 0; i = buf.indexOf(LF, i + 1)) {
      if (!prefixAt(buf, i, d)) continue;
      const j = i + d.length;
      // need the delimiter and one byte after it (two when that one is a dash) to decide
      if (j >= buf.length || (buf[j] === DASH && j + 1 >= buf.length)) return this.hold(buf, pos, i, emit);
      const c = buf[j]!;
      const close = c === DASH && buf[j + 1] === DASH;
      if (!close && c !== SP && c !== HT && c !== CR && c !== LF) continue; // `--BOUNDARYx...` is data
      const end = i > pos && buf[i - 1] === CR ? i - 1 : i;
      if (this.state === 'data') {
        this.data(buf, pos, end, emit);
        this.endPart(true, emit);
      }
      this.seen = true;
      if (close) {
        this.state = 'epilogue';
        return buf.length;
      }
      this.state = 'line';
      this.padding = 0;
      return j;
    }
    // no delimiter: a CR at the end may be the start of one
    const end = buf.length > pos && buf[buf.length - 1] === CR ? buf.length - 1 : buf.length;
    return this.hold(buf, pos, end, emit);
  }

  /** hold passes [pos, at) on (data, or preamble passed over), keeps a copy of the rest (a possible delimiter, its CR with it). */
  private hold(buf: Uint8Array, pos: number, at: number, emit: (e: MultipartEvent) => void): number {
    if (at > pos && at < buf.length && buf[at] === LF && buf[at - 1] === CR) at--;
    if (this.state === 'data') this.data(buf, pos, at, emit);
    this.held = buf.slice(at);
    return buf.length;
  }

  /** line reads the rest of a delimiter line (transport padding) up to its LF. */
  private line(buf: Uint8Array, pos: number): number {
    const lf = buf.indexOf(LF, pos);
    const upto = lf < 0 ? buf.length : lf;
    this.padding += upto - pos;
    if (this.padding > MAX_PADDING) return this.fail(`boundary line over ${MAX_PADDING} bytes`, buf.length);
    if (lf < 0) return buf.length;
    this.state = 'headers';
    this.headLen = 0;
    this.lineStart = true;
    this.crAtLineStart = false;
    return lf + 1;
  }

  /** headers collects a part's header block up to its empty line, then starts the part. */
  private headers(buf: Uint8Array, pos: number, emit: (e: MultipartEvent) => void): number {
    let i = pos;
    for (; i < buf.length; i++) {
      const b = buf[i]!;
      if (this.lineStart && (b === LF || (b === CR && !this.crAtLineStart))) {
        if (b === CR) {
          this.crAtLineStart = true;
          continue;
        }
        this.startPart(emit);
        return i + 1;
      }
      if (this.crAtLineStart) {
        this.crAtLineStart = false;
        this.keep(CR);
      }
      this.keep(b);
      this.lineStart = b === LF;
      if (this.headLen > this.maxHeaderBytes) return this.fail(`part header over ${this.maxHeaderBytes} bytes`, buf.length);
    }
    return i;
  }

  private keep(b: number): void {
    if (this.headLen === this.head.length) {
      const grown = new Uint8Array(Math.min(Math.max(256, this.head.length * 2), this.maxHeaderBytes + 1));
      grown.set(this.head.subarray(0, this.headLen));
      this.head = grown;
    }
    this.head[this.headLen++] = b;
  }

  private startPart(emit: (e: MultipartEvent) => void): void {
    const fields = headerFields(utf8.decode(this.head.subarray(0, this.headLen)));
    this.head = EMPTY;
    this.headLen = 0;
    this.state = 'data';
    this.bytes = 0;
    if (this.parts >= this.maxParts) {
      this.index = -1;
      this.omitted++;
      return;
    }
    this.index = this.parts++;
    const cd = fields.get('content-disposition');
    const params = cd === undefined ? null : headerParams(cd).params;
    emit({ type: 'part', index: this.index, name: params?.get('name') ?? null, filename: params === null ? null : fileName(params), contentType: fields.get('content-type') ?? null });
  }

  private data(buf: Uint8Array, from: number, to: number, emit: (e: MultipartEvent) => void): void {
    if (to <= from) return;
    this.bytes += to - from;
    if (this.index >= 0) emit({ type: 'data', index: this.index, data: buf.subarray(from, to) });
  }

  private endPart(complete: boolean, emit: (e: MultipartEvent) => void): void {
    if (this.index >= 0) emit({ type: 'end', index: this.index, bytes: this.bytes, complete });
    this.index = -1;
  }

  /** fail stops parsing for `reason`; returns `end` (where the caller's loop stops). */
  private fail(reason: string, end: number): number {
    this.error ??= reason;
    this.state = 'done';
    this.head = EMPTY;
    this.headLen = 0;
    this.held = EMPTY;
    return end;
  }
}

/** prefixAt: the bytes of `buf` from `at` (as many as there are, up to `pat`'s length) are the start of `pat`. */
function prefixAt(buf: Uint8Array, at: number, pat: Uint8Array): boolean {
  const n = Math.min(buf.length - at, pat.length);
  for (let k = 0; k < n; k++) if (buf[at + k] !== pat[k]) return false;
  return true;
}

/** matches: `pat` is at `at` in `buf`. */
function matches(buf: Uint8Array, at: number, pat: Uint8Array): boolean {
  if (at + pat.length > buf.length) return false;
  for (let k = 0; k < pat.length; k++) if (buf[at + k] !== pat[k]) return false;
  return true;
}

/** headerFields: a part's header block as lowercased name → value (the first of each name), folded lines joined. */
function headerFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if ((line.startsWith(' ') || line.startsWith('\t')) && lines.length > 0) lines[lines.length - 1] += ` ${line.trim()}`;
    else lines.push(line);
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!fields.has(name)) fields.set(name, line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * headerParams: a header value of the form `type; name=value; name="quoted"` as its first token
 * (lowercased) and its parameters (names lowercased, the first of each name). In a quoted value
 * a backslash escapes only `"` and `\` (browsers send Windows paths unescaped).
 */
export function headerParams(value: string): { main: string; params: Map<string, string> } {
  const semi = value.indexOf(';');
  const main = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = new Map<string, string>();
  let i = semi < 0 ? value.length : semi + 1;
  while (i < value.length) {
    while (i < value.length && (value[i] === ' ' || value[i] === '\t' || value[i] === ';')) i++;
    let eq = i;
    while (eq < value.length && value[eq] !== '=' && value[eq] !== ';') eq++;
    const name = value.slice(i, eq).trim().toLowerCase();
    i = eq;
    if (value[i] !== '=') continue;
    i++;
    while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
    let v = '';
    if (value[i] === '"') {
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === '\\' && (value[i + 1] === '"' || value[i + 1] === '\\')) i++;
        v += value[i];
      }
      while (i < value.length && value[i] !== ';') i++; // the closing quote and anything after it
    } else {
      const end = value.indexOf(';', i);
      v = value.slice(i, end < 0 ? value.length : end).trim();
      i = end < 0 ? value.length : end;
    }
    if (name !== '' && !params.has(name)) params.set(name, v);
  }
  return { main, params };
}

/** fileName: `filename`, else RFC 8187's `filename*` (charset'language'percent-encoded) decoded; null without either. */
function fileName(params: Map<string, string>): string | null {
  const plain = params.get('filename');
  if (plain !== undefined) return plain;
  const ext = params.get('filename*');
  if (ext === undefined) return null;
  const m = /^([^']*)'[^']*'(.*)$/.exec(ext);
  if (m === null) return ext;
  try {
    return /^utf-8$/i.test(m[1]!) ? decodeURIComponent(m[2]!) : m[2]!;
  } catch {
    return m[2]!;
  }
}

/**
 * formBoundary: the boundary of a multipart/form-data Content-Type (quoted or not); null when the
 * type is something else; `{ error }` when it is multipart/form-data without a usable boundary
 * (none, empty, over MAX_BOUNDARY characters, or not printable ASCII).
 */
export function formBoundary(contentType: string | undefined): string | { error: string } | null {
  if (contentType === undefined) return null;
  const { main, params } = headerParams(contentType);
  if (main !== 'multipart/form-data') return null;
  const b = params.get('boundary');
  if (b === undefined || b === '') return { error: 'no boundary' };
  if (b.length > MAX_BOUNDARY || !/^[\x20-\x7e]+$/.test(b)) return { error: 'bad boundary' };
  return b;
}

/**
 * BodyParts: a MultipartParser fed one message's body by offset, as the HTTP events give it: an
 * offset past the bytes seen is a gap. `error` is the parser's, or why there is none.
 */
export class BodyParts {
  private readonly parser: MultipartParser | null;
  private readonly setup: string | null;
  private next = 0;

  constructor(boundary: string | { error: string }, options?: MultipartOptions) {
    this.parser = typeof boundary === 'string' ? new MultipartParser(boundary, options) : null;
    this.setup = typeof boundary === 'string' ? null : boundary.error;
  }

  get error(): string | null {
    return this.setup ?? this.parser?.error ?? null;
  }

  write(offset: number, data: Uint8Array, emit: (e: MultipartEvent) => void): void {
    if (this.parser === null) return;
    if (offset > this.next) this.parser.gap(emit);
    if (offset < this.next) return; // not expected from the HTTP events: bytes seen already
    this.next = offset + data.length;
    this.parser.write(data, emit);
  }

  /** end: the body was `total` bytes long (in the offsets given to `write`). */
  end(total: number, emit: (e: MultipartEvent) => void): void {
    if (this.parser === null) return;
    if (total > this.next) this.parser.gap(emit);
    this.parser.end(emit);
  }
}

/** formParts: a BodyParts for a request whose Content-Type is multipart/form-data; null for any other. */
export function formParts(headers: ReadonlyArray<readonly [string, string]>, options?: MultipartOptions): BodyParts | null {
  let contentType: string | undefined;
  for (const [n, v] of headers) {
    if (n.toLowerCase() === 'content-type') {
      contentType = v;
      break;
    }
  }
  const b = formBoundary(contentType);
  return b === null ? null : new BodyParts(b, options);
}
