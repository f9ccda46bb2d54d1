/**
 * JsonBytes: JSON written straight into a growing Buffer (`buf`, `at` the end of what is
 * written), without building the record's object or its string: the base of the writers whose
 * bytes must equal JSON.stringify's (connections.ndjson's RecordWriter, `pcapflow tls`'s
 * TlsLines). Each method writes one JSON value or raw text as JSON.stringify would; `room`
 * grows the Buffer by doubling (at least 64 KiB).
 */
import type { Endpoint } from '../core/events.js';
import type { RawWrites } from './byte-sink.js';

export class JsonBytes {
  protected buf: Buffer;
  protected at = 0;

  constructor(size = 0) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** room makes room for `n` more bytes. */
  protected room(n: number): void {
    if (this.buf.length - this.at >= n) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.at + n, this.buf.length * 2, 1 << 16));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  /** raw writes characters known to be ASCII as they are. */
  protected raw(s: string): void {
    const n = s.length;
    this.room(n);
    const b = this.buf;
    let at = this.at;
    if (n > 24) at += (b as unknown as RawWrites).latin1Write(s, at, n);
    else for (let i = 0; i < n; i++) b[at++] = s.charCodeAt(i);
    this.at = at;
  }

  /** utf8 writes any text, as UTF-8 (with room for one more byte after it). */
  protected utf8(s: string): void {
    this.room(s.length * 3 + 1);
    this.at += (this.buf as unknown as RawWrites).utf8Write(s, this.at, this.buf.length - this.at);
  }

  /** str writes a JSON string: quoted as it is when it is printable ASCII without `"` or `\`, else through JSON.stringify. */
  protected str(s: string): void {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return this.utf8(JSON.stringify(s));
    }
    this.room(s.length + 2);
    this.buf[this.at++] = 0x22;
    this.raw(s);
    this.buf[this.at++] = 0x22;
  }

  /** num writes a number as JSON does. */
  protected num(n: number): void {
    if (!(n >= 0 && n < 1e9 && (n | 0) === n)) return this.raw(JSON.stringify(n));
    this.room(10);
    const b = this.buf;
    let digits = 1;
    for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
    let at = this.at + digits;
    this.at = at;
    for (let x = n, i = 0; i < digits; x = (x / 10) | 0, i++) b[--at] = 0x30 + (x % 10);
  }

  /** endpoint writes an Endpoint as `{"ip":..,"port":..}`. */
  protected endpoint(e: Endpoint): void {
    this.raw('{"ip":');
    this.str(e.ip);
    this.raw(',"port":');
    this.num(e.port);
    this.raw('}');
  }
}

/** TextLines: whole lines of text written as UTF-8 into a growing Buffer; `take` hands them over. */
export class TextLines extends JsonBytes {
  /** line writes `s` and a newline. */
  line(s: string): void {
    this.utf8(s);
    this.buf[this.at++] = 0x0a;
  }

  /** take: the lines written since the last take (the Buffer is the caller's; the next lines go to a new one). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.at);
    if (this.at > 0) this.buf = Buffer.allocUnsafe(this.buf.length);
    this.at = 0;
    return out;
  }
}
