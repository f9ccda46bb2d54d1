/**
 * http-extract: `pcapflow http --extract DIR`: each request and response body written to its own
 * file in DIR as it passes (decoded when it has a Content-Encoding, unless `raw`), as `NAME.part`
 * renamed to NAME when the message ends, incomplete or not (its record says which). Names are
 * `c<conn>-t<trans>-<req|res>-<base>`: `base` from the response's Content-Disposition filename or
 * the URI's last path segment, made safe by safeBaseName; a name that exists gets `-<n>`. Files
 * are opened with O_EXCL, written and renamed with synchronous calls, never outside DIR.
 */
import fs from 'node:fs';
import path from 'node:path';
import { contentCodings, headerValues, type HttpEvent } from '../core/http.js';

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
    return safeBaseName(v.split(/[\\/]/).pop() ?? v);
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

interface Open {
  fd: number;
  part: string;
  name: string;
}

/** BodyExtractor: see the file comment. */
export class BodyExtractor {
  readonly stats = { files: 0, bytes: 0, incomplete: 0 };
  /** The file name of each message written, by `conn dir seq`, until the record takes it. */
  private readonly names = new Map<string, string>();
  private readonly open = new Map<string, Open>();
  /** What each message's file is named from, set at its head. */
  private readonly heads = new Map<string, { base: string; trans: string; encoded: boolean }>();
  /** The URI of each request, for its response's name. */
  private readonly uris = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly raw: boolean,
  ) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** fileOf: the name the body of message `seq` of `conn` in `dir` was written to (taken once). */
  fileOf(conn: number, dir: string, seq: number): string | undefined {
    const key = `${conn} ${dir} ${seq}`;
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
          this.heads.set(key, { base: baseOf(e.uri, e.headers), trans: String(e.seq), encoded });
        } else {
          const uri = e.request === null ? '' : (this.uris.get(`${e.conn} ${e.request}`) ?? '');
          this.heads.set(key, { base: baseOf(uri, e.headers), trans: e.request === null ? `r${e.seq}` : String(e.request), encoded });
        }
      } else if (e.type === 'http_body' || e.type === 'http_decoded') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        const head = this.heads.get(key);
        if (head === undefined) continue;
        if ((e.type === 'http_decoded') !== (head.encoded && !this.raw)) continue;
        let f = this.open.get(key);
        if (f === undefined) {
          f = this.create(`c${e.conn}-t${head.trans}-${e.dir === 'c2s' ? 'req' : 'res'}-${head.base}`);
          this.open.set(key, f);
        }
        fs.writeSync(f.fd, e.data);
        this.stats.bytes += e.data.length;
      } else if (e.type === 'http_end') {
        const key = `${e.conn} ${e.dir} ${e.seq}`;
        this.heads.delete(key);
        const f = this.open.get(key);
        if (f === undefined) continue;
        this.open.delete(key);
        fs.closeSync(f.fd);
        fs.renameSync(f.part, path.join(this.dir, f.name));
        this.names.set(key, f.name);
        this.stats.files++;
        if (!e.complete || (e.decoded !== undefined && e.decoded.error !== null)) this.stats.incomplete++;
      } else if (e.type === 'http_close') {
        for (const k of [...this.uris.keys()]) if (k.startsWith(`${e.conn} `)) this.uris.delete(k);
      }
    }
  }

  /** create opens NAME.part (O_EXCL) for a name no file in the directory has; `-<n>` is added when one has. */
  private create(wanted: string): Open {
    for (let n = 0; ; n++) {
      const name = n === 0 ? wanted : `${wanted}-${n}`;
      if (fs.existsSync(path.join(this.dir, name))) continue;
      const part = path.join(this.dir, `${name}.part`);
      try {
        return { fd: fs.openSync(part, 'wx'), part, name };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  /** close ends every file still open (an error ended the run): they stay NAME.part. */
  close(): void {
    for (const f of this.open.values()) fs.closeSync(f.fd);
    this.open.clear();
  }
}
