/**
 * http-extract: `pcapflow http --extract DIR`: each request and response body written to its own
 * file in DIR as it passes (decoded when it has a Content-Encoding, unless `raw`), as `NAME.part`
 * renamed to NAME when the message ends, incomplete or not (its record says which); a body of up
 * to 64 KiB is held (4 MiB for all at once) and written whole under NAME at its end. Names are
 * `c<conn>-t<trans>-<req|res>-<base>`: `base` from the response's Content-Disposition filename or
 * the URI's last path segment, made safe by safeBaseName; a name that exists gets `-<n>`. Files
 * are opened with O_EXCL, written and renamed with synchronous calls, never outside DIR.
 *
 * A multipart/form-data request also has each part with a filename (a file the form uploads)
 * written to a file of its own, `c<conn>-t<trans>-req-p<index>-<base>`, `base` from that filename,
 * with the same rules; the parts are those of the decoded body, `raw` or not. Form fields (parts
 * without a filename) are not written: the record lists them with their size and digest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { contentCodings, headerValues, type HttpEvent } from '../core/http.js';
import { formParts, type BodyParts, type MultipartEvent } from '../core/multipart.js';

const WINDOWS_RESERVED = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?$/i;
const MAX_BASE = 100;

/**
 * safeBaseName: `name` as a file name that is safe anywhere: only ASCII letters, digits, dot,
 * dash and underscore (anything else, `/`, `\`, NUL and control characters included, becomes
 * `_`), no leading dot or dash, at most 100 bytes, not a Windows device name; `body` when nothing
 * is left.
 */
export function safeBaseName(name: string): string {
  let s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]+/, '');
  if (s.length > MAX_BASE) s = s.slice(0, MAX_BASE);
  if (s === '' || /^_*$/.test(s)) s = 'body';
  if (WINDOWS_RESERVED.test(s)) s = `_${s}`;
  return s;
}

/** lastSegment: what follows the last `/` or `\` (a client may send a whole path). */
function lastSegment(name: string): string {
  return name.split(/[\\/]/).pop() ?? name;
}

/** baseOf: the base name a message's body file takes (Content-Disposition filename, else the URI's last segment). */
export function baseOf(uri: string, headers: ReadonlyArray<readonly [string, string]>): string {
  const cd = headerValues(headers, 'content-disposition')[0];
  const m = cd === undefined ? null : /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  if (m !== null) {
    let v = m[1]!;
    try {
      v = decodeURIComponent(v);
    } catch {
      // as sent
    }
    return safeBaseName(lastSegment(v));
  }
  const p = uri.replace(/^[a-z]+:\/\/[^/]*/i, '').split(/[?#]/)[0] ?? '';
  let last = p.split('/').pop() ?? '';
  try {
    last = decodeURIComponent(last);
  } catch {
    // as sent
  }
  return safeBaseName(last);
}

/**
 * A body (or part) being extracted. Its first bytes are held as copies (`held`) while it stays
 * under WHOLE_BYTES and all held bodies under HELD_BYTES: one that ends so is written whole under
 * its final name (open, write, close); else NAME.part is opened (`fd`), and renamed at its end.
 */
interface Open {
  /** The wanted name (before any `-<n>`). */
  wanted: string;
  /** -1 until NAME.part is opened. */
  fd: number;
  part: string;
  name: string;
  held: Uint8Array[];
  heldLen: number;
}

/** A body this long or shorter is held and written whole at its end (tcpflow's and the files sink's way with small files). */
const WHOLE_BYTES = 65536;
/** Default of the bytes held for all bodies at once (BodyExtractor's `heldBytes`). */
export const EXTRACT_HELD_BYTES = 4 << 20;

interface Head {
  base: string;
  trans: string;
  encoded: boolean;
  /** multipart/form-data requests: the body's parts being parsed, where their events go, the open part's file. */
  parts: { body: BodyParts; emit: (e: MultipartEvent) => void; file: Open | null } | null;
}

/** BodyExtractor: see the file comment. */
export class BodyExtractor {
  readonly stats = { files: 0, bytes: 0, incomplete: 0 };
  /** The file name of each message written, by `conn dir seq` (a part's: `conn dir seq p<index>`), until the record takes it. */
  private readonly names = new Map<string, string>();
  private readonly open = new Map<string, Open>();
  /** What each message's file is named from, set at its head; a multipart request's parts. */
  private readonly heads = new Map<string, Head>();
  /** The URI of each request, for its response's name. */
  private readonly uris = new Map<string, string>();
  /** Names whose NAME.part is open: no body written whole may take them. */
  private readonly parts = new Set<string>();
  /** Bytes held by all bodies (see Open). */
  private heldBytes = 0;

  /** `maxHeld`: bytes held for all bodies at once, at most (see Open). */
  constructor(
    private readonly dir: string,
    private readonly raw: boolean,
    private readonly maxHeld = EXTRACT_HELD_BYTES,
  ) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** fileOf: the name the body of message `seq` of `conn` in `dir` (or its part `part`) was written to (taken once). */
  fileOf(conn: number, dir: string, seq: number, part?: number): string | undefined {
    const key = part === undefined ? `${conn} ${dir} ${seq}` : `${conn} ${dir} ${seq} p${part}`;
    const name = this.names.get(key);
    this.names.delete(key);
    return name;
  }

  write(events: readonly HttpEvent[]): void {
    for (const e of events) {
      if (e.type === 'http_request' || e.type === 'http_response') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        const encoded = contentCodings(e.headers).length > 0;
        if (e.type === 'http_request') {
          this.uris.set(`${e.conn} ${e.seq}`, e.uri);
          const head: Head = { base: baseOf(e.uri, e.headers), trans: String(e.seq), encoded, parts: null };
          const body = formParts(e.headers);
          if (body !== null) {
            const parts: NonNullable<Head['parts']> = { body, file: null, emit: (p) => this.part(key, `c${e.conn}-t${head.trans}-req`, parts, p) };
            head.parts = parts;
          }
          this.heads.set(key, head);
        } else {
          const uri = e.request === null ? '' : (this.uris.get(`${e.conn} ${e.request}`) ?? '');
          this.heads.set(key, { base: baseOf(uri, e.headers), trans: e.request === null ? `r${e.seq}` : String(e.request), encoded, parts: null });
        }
      } else if (e.type === 'http_body' || e.type === 'http_decoded') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        const head = this.heads.get(key);
        if (head === undefined) continue;
        // parts come from the decoded body, whatever `raw` says of the body's own file
        if (head.parts !== null && (e.type === 'http_decoded') === head.encoded) head.parts.body.write(e.offset, e.data, head.parts.emit);
        if ((e.type === 'http_decoded') !== (head.encoded && !this.raw)) continue;
        let f = this.open.get(key);
        if (f === undefined) {
          f = this.begin(`c${e.conn}-t${head.trans}-${e.dir === 'c2s' ? 'req' : 'res'}-${head.base}`);
          this.open.set(key, f);
        }
        this.put(f, e.data);
      } else if (e.type === 'http_end') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        const head = this.heads.get(key);
        if (head !== undefined && head.parts !== null) head.parts.body.end(head.encoded ? (e.decoded?.bytes ?? 0) : e.bodyBytes + e.missing, head.parts.emit);
        this.heads.delete(key);
        const f = this.open.get(key);
        if (f === undefined) continue;
        this.open.delete(key);
        this.finish(f, key, e.complete && (e.decoded === undefined || e.decoded.error === null));
      } else if (e.type === 'http_close') {
        for (const k of [...this.uris.keys()]) if (k.startsWith(`${e.conn} `)) this.uris.delete(k);
      }
    }
  }

  /** part writes the parts with a filename of the multipart request `key` (file names from `prefix`). */
  private part(key: string, prefix: string, parts: NonNullable<Head['parts']>, e: MultipartEvent): void {
    if (e.type === 'part') {
      if (e.filename !== null && e.filename !== '') parts.file = this.begin(`${prefix}-p${e.index}-${safeBaseName(lastSegment(e.filename))}`);
      return;
    }
    const f = parts.file;
    if (f === null) return;
    if (e.type === 'data') {
      this.put(f, e.data);
      return;
    }
    parts.file = null;
    this.finish(f, `${key} p${e.index}`, e.complete);
  }

  private begin(wanted: string): Open {
    return { wanted, fd: -1, part: '', name: '', held: [], heldLen: 0 };
  }

  /** put writes `data` to `f`'s file, or holds a copy of it (see Open). */
  private put(f: Open, data: Uint8Array): void {
    this.stats.bytes += data.length;
    if (f.fd < 0) {
      if (f.heldLen + data.length <= WHOLE_BYTES && this.heldBytes + data.length <= this.maxHeld) {
        f.held.push(Buffer.from(data));
        f.heldLen += data.length;
        this.heldBytes += data.length;
        return;
      }
      this.create(f);
    }
    fs.writeSync(f.fd, data);
  }

  /** finish ends `f`'s file: written whole, or NAME.part closed and renamed to NAME; the record of `key` takes the name. */
  private finish(f: Open, key: string, complete: boolean): void {
    if (f.fd < 0) {
      this.whole(f);
    } else {
      fs.closeSync(f.fd);
      fs.renameSync(f.part, path.join(this.dir, f.name));
      this.parts.delete(f.name);
    }
    this.names.set(key, f.name);
    this.stats.files++;
    if (!complete) this.stats.incomplete++;
  }

  /** whole writes a held body under the first name free (O_EXCL; no NAME.part of this run's may become it). */
  private whole(f: Open): void {
    for (let n = 0; ; n++) {
      const name = n === 0 ? f.wanted : `${f.wanted}-${n}`;
      if (this.parts.has(name)) continue;
      let fd: number;
      try {
        fd = fs.openSync(path.join(this.dir, name), 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      try {
        if (f.heldLen > 0) fs.writeSync(fd, f.held.length === 1 ? f.held[0]! : Buffer.concat(f.held, f.heldLen));
      } finally {
        fs.closeSync(fd);
      }
      f.name = name;
      this.release(f);
      return;
    }
  }

  /** create opens NAME.part (O_EXCL) for a name no file in the directory has (`-<n>` added when one has), then writes what `f` held. */
  private create(f: Open): void {
    for (let n = 0; ; n++) {
      const name = n === 0 ? f.wanted : `${f.wanted}-${n}`;
      if (fs.existsSync(path.join(this.dir, name))) continue;
      const part = path.join(this.dir, `${name}.part`);
      try {
        f.fd = fs.openSync(part, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        continue;
      }
      f.part = part;
      f.name = name;
      this.parts.add(name);
      for (const h of f.held) fs.writeSync(f.fd, h);
      this.release(f);
      return;
    }
  }

  private release(f: Open): void {
    this.heldBytes -= f.heldLen;
    f.held = [];
    f.heldLen = 0;
  }

  /** close ends every file still open (an error ended the run): they stay NAME.part; held bytes are let go. */
  close(): void {
    for (const f of this.open.values()) if (f.fd >= 0) fs.closeSync(f.fd);
    this.open.clear();
    for (const h of this.heads.values()) {
      const f = h.parts?.file;
      if (f !== undefined && f !== null && f.fd >= 0) fs.closeSync(f.fd);
    }
    this.heads.clear();
    this.heldBytes = 0;
  }
}
