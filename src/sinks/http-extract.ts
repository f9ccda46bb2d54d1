/**
 * http-extract: `pcapflow http --extract DIR`: each request and response body written to its own
 * file in DIR as it passes (decoded when it has a Content-Encoding, unless `raw`), as `NAME.part`
 * renamed to NAME when the message ends, incomplete or not (its record says which); a body of up
 * to 64 KiB is held (4 MiB for all at once) and written whole under NAME at its end (after the
 * run's first 4096, by a WriteThread, one job per batch: flush). Names are
 * `c<conn>-t<trans>-<req|res>-<base>`: `base` from the response's Content-Disposition filename or
 * the URI's last path segment, made safe by safeBaseName; a name that exists gets `-<n>`. Files
 * are opened with O_EXCL, written (a file's bytes of one batch in one writev) and renamed with
 * synchronous calls, never outside DIR.
 *
 * A multipart/form-data request also has each part with a filename (a file the form uploads)
 * written to a file of its own, `c<conn>-t<trans>-req-p<index>-<base>`, `base` from that filename,
 * with the same rules; the parts are those of the decoded body, `raw` or not. Form fields (parts
 * without a filename) are not written: the record lists them with their size and digest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { contentCodings, headerValues, type HttpEvent } from '../core/http.js';
import { PcapflowError } from '../core/errors.js';
import { formParts, type BodyParts, type MultipartEvent } from '../core/multipart.js';
import { WriteThread, writevAllSync } from './write-thread.js';

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
  /** Bytes for NAME.part not written yet (views of this batch's events): one writev per file and batch. */
  pend: Uint8Array[];
  pendLen: number;
}

/** A body this long or shorter is held and written whole at its end (tcpflow's and the files sink's way with small files). */
const WHOLE_BYTES = 65536;
/**
 * msgKey: one number for a message (connection, direction, seq): seq is taken modulo 2^21, so two
 * messages of one connection share a key only when 2 097 152 of its messages are open at once.
 */
function msgKey(conn: number, dir: string, seq: number): number {
  return conn * 4194304 + (seq % 2097152) * 2 + (dir === 'c2s' ? 0 : 1);
}

/** Bodies written whole on the main thread before a write thread is started (BodyExtractor's `hereFiles`). */
const HERE_FILES = 4096;
/** Write thread jobs in flight at most: past it the sink waits (backpressure). */
const MAX_INFLIGHT = 2;
/** A job for the write thread carries this many bodies, or this many bytes (a message costs ~70 µs). */
const JOB_FILES = 256;
const JOB_BYTES = 2 << 20;

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
  /** The file name of each message written, by msgKey (a part's: `<msgKey> p<index>`), until the record takes it. */
  private readonly names = new Map<number | string, string>();
  private readonly open = new Map<number | string, Open>();
  /** What each message's file is named from, set at its head; a multipart request's parts. */
  private readonly heads = new Map<number, Head>();
  /** The URI of each request not yet answered, by connection and request seq, for its response's name. */
  private readonly uris = new Map<number, Map<number, string>>();
  /** Every name in DIR when the run began, and every name this run gave: no body may take one again. */
  private readonly taken: Set<string>;
  /** Bytes held by all bodies (see Open). */
  private heldBytes = 0;
  /** Bodies to write whole still to be written here, on this thread, before the write thread takes over. */
  private hereLeft: number;
  /** Bodies written whole since the last job: names and chunks, for the write thread. */
  private pendingNames: string[] = [];
  private pendingChunks: Uint8Array[][] = [];
  private pendingBytes = 0;
  private thread: WriteThread | null = null;
  /** Files with bytes pending (Open.pend), written at the end of write(). */
  private dirty: Open[] = [];
  /** The write thread's jobs not yet answered, oldest first; the first failure. */
  private inflight: Array<Promise<void>> = [];
  private failure: PcapflowError | null = null;

  /**
   * `maxHeld`: bytes held for all bodies at once, at most (see Open). `hereFiles`: bodies written
   * whole on this thread before a write thread takes the rest (starting one costs more than
   * writing a few thousand small files here).
   */
  constructor(
    private readonly dir: string,
    private readonly raw: boolean,
    private readonly maxHeld = EXTRACT_HELD_BYTES,
    hereFiles = HERE_FILES,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.taken = new Set(fs.readdirSync(dir));
    this.hereLeft = hereFiles;
  }

  /** fileOf: the name the body of message `seq` of `conn` in `dir` (or its part `part`) was written to (taken once). */
  fileOf(conn: number, dir: string, seq: number, part?: number): string | undefined {
    const key = part === undefined ? msgKey(conn, dir, seq) : `${msgKey(conn, dir, seq)} p${part}`;
    const name = this.names.get(key);
    this.names.delete(key);
    return name;
  }

  write(events: readonly HttpEvent[]): void {
    for (const e of events) {
      if (e.type === 'http_request' || e.type === 'http_response') {
        const key = msgKey(e.conn, e.dir, e.seq);
        const encoded = contentCodings(e.headers).length > 0;
        if (e.type === 'http_request') {
          let uris = this.uris.get(e.conn);
          if (uris === undefined) this.uris.set(e.conn, (uris = new Map()));
          uris.set(e.seq, e.uri);
          const head: Head = { base: baseOf(e.uri, e.headers), trans: String(e.seq), encoded, parts: null };
          const body = formParts(e.headers);
          if (body !== null) {
            const parts: NonNullable<Head['parts']> = { body, file: null, emit: (p) => this.part(key, `c${e.conn}-t${head.trans}-req`, parts, p) };
            head.parts = parts;
          }
          this.heads.set(key, head);
        } else {
          const uris = this.uris.get(e.conn);
          const uri = e.request === null ? '' : (uris?.get(e.request) ?? '');
          if (e.request !== null && !e.interim) uris?.delete(e.request);
          this.heads.set(key, { base: baseOf(uri, e.headers), trans: e.request === null ? `r${e.seq}` : String(e.request), encoded, parts: null });
        }
      } else if (e.type === 'http_body' || e.type === 'http_decoded') {
        const key = msgKey(e.conn, e.dir, e.seq);
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
        const key = msgKey(e.conn, e.dir, e.seq);
        const head = this.heads.get(key);
        if (head !== undefined && head.parts !== null) head.parts.body.end(head.encoded ? (e.decoded?.bytes ?? 0) : e.bodyBytes + e.missing, head.parts.emit);
        this.heads.delete(key);
        const f = this.open.get(key);
        if (f === undefined) continue;
        this.open.delete(key);
        this.finish(f, key, e.complete && (e.decoded === undefined || e.decoded.error === null));
      } else if (e.type === 'http_close') {
        this.uris.delete(e.conn);
      }
    }
    this.writeDirty();
  }

  /** writeDirty writes the bytes pending for each file (views of the batch's events, which stay valid until write() returns). */
  private writeDirty(): void {
    const dirty = this.dirty;
    this.dirty = [];
    for (let i = 0; i < dirty.length; i++) this.writePending(dirty[i]!);
  }

  private writePending(f: Open): void {
    if (f.pendLen === 0 || f.fd < 0) return;
    const pend = f.pend;
    const len = f.pendLen;
    f.pend = [];
    f.pendLen = 0;
    writevAllSync(fs, f.fd, pend, len, [0]);
  }

  /** part writes the parts with a filename of the multipart request `key` (file names from `prefix`). */
  private part(key: number, prefix: string, parts: NonNullable<Head['parts']>, e: MultipartEvent): void {
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
    return { wanted, fd: -1, part: '', name: '', held: [], heldLen: 0, pend: [], pendLen: 0 };
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
    if (f.pendLen === 0) this.dirty.push(f);
    f.pend.push(data);
    f.pendLen += data.length;
  }

  /** finish ends `f`'s file: written whole, or NAME.part closed and renamed to NAME; the record of `key` takes the name. */
  private finish(f: Open, key: number | string, complete: boolean): void {
    if (f.fd < 0) {
      this.whole(f);
    } else {
      this.writePending(f);
      fs.closeSync(f.fd);
      fs.renameSync(f.part, path.join(this.dir, f.name));
    }
    this.names.set(key, f.name);
    this.stats.files++;
    if (!complete) this.stats.incomplete++;
  }

  /** name: the first of `wanted`, `wanted-1`, ... that no file of DIR nor of this run has; now taken. */
  private name(wanted: string): string {
    let name = wanted;
    for (let n = 1; this.taken.has(name); n++) name = `${wanted}-${n}`;
    this.taken.add(name);
    return name;
  }

  /** whole writes a held body under a free name (O_EXCL): here for the run's first hereFiles, then by the write thread. */
  private whole(f: Open): void {
    for (;;) {
      const name = this.name(f.wanted);
      f.name = name;
      if (this.hereLeft <= 0) {
        this.pendingNames.push(name);
        this.pendingChunks.push(f.held);
        this.pendingBytes += f.heldLen;
        this.heldBytes -= f.heldLen; // the job copies them
        f.held = [];
        f.heldLen = 0;
        return;
      }
      let fd: number;
      try {
        fd = fs.openSync(path.join(this.dir, name), 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // made by someone else since the run began
        throw err;
      }
      try {
        if (f.heldLen > 0) fs.writeSync(fd, f.held.length === 1 ? f.held[0]! : Buffer.concat(f.held, f.heldLen));
      } finally {
        fs.closeSync(fd);
      }
      this.hereLeft--;
      this.release(f);
      return;
    }
  }

  /** create opens NAME.part (O_EXCL) for a free name (see name), then writes what `f` held. */
  private create(f: Open): void {
    for (;;) {
      const name = this.name(f.wanted);
      const part = path.join(this.dir, `${name}.part`);
      try {
        f.fd = fs.openSync(part, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        continue;
      }
      f.part = part;
      f.name = name;
      if (f.heldLen > 0) writevAllSync(fs, f.fd, f.held, f.heldLen, [0]);
      this.release(f);
      return;
    }
  }

  /**
   * flush hands the bodies written whole since the last job to the write thread (one job) once
   * they are JOB_FILES or JOB_BYTES (`all`: any), and returns a promise to wait for when
   * MAX_INFLIGHT jobs are in flight (or a job failed), else null. Call it after each write().
   */
  flush(all = false): Promise<void> | null {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.pendingNames.length > 0 && (all || this.pendingNames.length >= JOB_FILES || this.pendingBytes >= JOB_BYTES)) {
      this.thread ??= new WriteThread();
      const names = this.pendingNames;
      const job = this.thread.writeWhole(this.dir + path.sep, names, '', this.pendingChunks, true).then((r) => {
        if (r.error !== null && this.failure === null) {
          const file = names[r.error.file] ?? '';
          this.failure = new PcapflowError('OUTPUT_FAILED', `writing ${path.join(this.dir, file)}: ${r.error.code === 'EEXIST' ? 'a file of that name appeared in the directory during the run' : r.error.message}`);
        }
      });
      this.pendingNames = [];
      this.pendingChunks = [];
      this.pendingBytes = 0;
      this.inflight.push(job);
    }
    if (this.inflight.length < MAX_INFLIGHT) return null;
    const oldest = this.inflight.shift()!;
    return oldest.then(() => {
      if (this.failure !== null) throw this.failure;
    });
  }

  /** end waits for every body handed to the write thread, then stops it; rejects with the first failure. */
  async end(): Promise<void> {
    const last = this.flush(true);
    if (last !== null) await last;
    for (const job of this.inflight.splice(0)) await job;
    await this.thread?.stop();
    this.thread = null;
    if (this.failure !== null) throw this.failure;
  }

  private release(f: Open): void {
    this.heldBytes -= f.heldLen;
    f.held = [];
    f.heldLen = 0;
  }

  /** close ends every file still open (an error ended the run): they stay NAME.part; held bytes are let go. */
  close(): void {
    this.dirty = [];
    for (const f of this.open.values()) if (f.fd >= 0) fs.closeSync(f.fd);
    this.open.clear();
    for (const h of this.heads.values()) {
      const f = h.parts?.file;
      if (f !== undefined && f !== null && f.fd >= 0) fs.closeSync(f.fd);
    }
    this.heads.clear();
    this.heldBytes = 0;
    void this.thread?.stop();
    this.thread = null;
  }
}
