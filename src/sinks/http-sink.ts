/**
 * HttpSink: `pcapflow http`'s sink. It takes the reassembler's `StreamEvent[]`, runs the HTTP
 * parser (HttpParser), the bodies' decoding (HttpBodyDecoder: node:zlib, asynchronous, one batch
 * at a time) and the transaction records (HttpRecords) on them, and writes one line per
 * record to its destination: NDJSON (`format: 'ndjson'`, the default: the records as documented
 * in the README) or text for people. Bodies are digested as they pass (node:crypto's SHA-256),
 * never held. Backpressure, a closed pipe and output errors are ByteSink's.
 */
import { createHash, type Hash } from 'node:crypto';
import type { StreamEvent } from '../core/events.js';
import { HttpParser, type HttpEvent, type HttpParserOptions } from '../core/http.js';
import { HttpRecords, type BodyDigest, type HttpPartRecord, type HttpRecord } from '../core/http-records.js';
import { planMemory } from '../core/memory-budget.js';
import { DECODER_COST, HttpBodyDecoder, type HttpDecodeOptions } from '../transforms/http-decode.js';
import { PcapflowError, isPcapflowError } from '../core/errors.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';
import { BodyExtractor } from './http-extract.js';
import { TextLines } from './json-bytes.js';

export interface HttpSinkOptions extends ByteSinkOptions {
  format?: 'ndjson' | 'text';
  http?: HttpParserOptions;
  decode?: HttpDecodeOptions;
  /** Write each body to a file in `dir` (BodyExtractor), decoded unless `raw`. */
  extract?: { dir: string; raw?: boolean };
  /**
   * Bytes of the memory budget this sink may hold (default: the held-output share of the default
   * budget, 16 MiB): a quarter for the parser's held bytes (`http.maxHeldBytes`), half for bodies
   * decoding at once (`decode.maxActive`, DECODER_COST each: 128 at the default), a quarter for
   * the extractor's held bodies. An explicit `http.maxHeldBytes` or `decode.maxActive` wins.
   */
  memoryShare?: number;
}

/**
 * HTTP_READ_SIZE: the read size (batch size) ReadPipeline uses for an HttpSink (its `readSize`).
 * Measured (whole-process A/B of `pcapflow http`, 15 pairs each, against 512 KiB): http-small
 * (40 000 small transactions) 0.88x the time and 0.85x the CPU, 89 against 100 MB peak RSS;
 * http-large (32 bodies of 2-16 MiB) 1.02x the time, 0.95x the CPU, 78 against 93 MB. In a
 * profile of http-small the batch's parsed events and records die before a scavenge more often
 * (scavenges 188 against 253 ms) and stringifying the records costs less (170 against 271 ms).
 * Cutting 512 KiB batches into slices of 128 KiB in the sink gained 4 % only.
 */
export const HTTP_READ_SIZE = 128 * 1024;

/** The SHA-256 of no bytes. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Sha256: a BodyDigest whose hash object is made at the first bytes (most requests have none). */
class Sha256 implements BodyDigest {
  private h: Hash | null = null;
  update(d: Uint8Array): void {
    (this.h ??= createHash('sha256')).update(d);
  }
  hex(): string {
    return this.h === null ? EMPTY_SHA256 : this.h.digest('hex');
  }
}

const sha256 = (): BodyDigest => new Sha256();

export class HttpSink extends ByteSink<readonly StreamEvent[]> {
  readonly parser: HttpParser;
  readonly decoder: HttpBodyDecoder;
  readonly records: HttpRecords;
  readonly extractor: BodyExtractor | null;
  private readonly format: 'ndjson' | 'text';
  /** The read size ReadPipeline gives an input read into this sink (HTTP_READ_SIZE). */
  readonly readSize = HTTP_READ_SIZE;
  /** The lines of the records made since the last render, as UTF-8. */
  private readonly lines = new TextLines();
  private events: HttpEvent[] = [];
  private readonly onRecords = (records: HttpRecord[]): void => {
    for (const r of records) this.lines.line(this.format === 'ndjson' ? JSON.stringify(r) : recordText(r));
  };
  private readonly onHttp = (events: HttpEvent[]): void => {
    for (const e of events) this.events.push(e);
  };

  constructor(options: HttpSinkOptions = {}) {
    super(options);
    this.format = options.format ?? 'ndjson';
    const share = options.memoryShare ?? planMemory().heldOutputBytes;
    this.parser = new HttpParser({ maxHeldBytes: Math.floor(share / 4), ...options.http });
    this.decoder = new HttpBodyDecoder({ maxActive: Math.max(1, Math.floor(share / 2 / DECODER_COST)), ...options.decode });
    const extractor = options.extract === undefined ? null : new BodyExtractor(options.extract.dir, options.extract.raw ?? false, Math.floor(share / 4));
    this.extractor = extractor;
    this.records = new HttpRecords(sha256, extractor === null ? null : (conn, dir, seq, part) => extractor.fileOf(conn, dir, seq, part));
  }

  override _write(batch: readonly StreamEvent[], enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.parser.write(batch, this.onHttp);
    this.decodeThen(() => super._write(batch, enc, callback), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.parser.end(this.onHttp);
    this.decodeThen(() => {
      this.records.end(this.onRecords);
      const done = this.extractor === null ? Promise.resolve() : this.extractor.end();
      done.then(
        () => super._final(callback),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    }, callback);
  }

  /** decodeThen decodes the events parsed so far, turns them into records, then calls `next`. */
  private decodeThen(next: () => void, fail: (error: Error) => void): void {
    const events = this.events;
    this.events = [];
    this.decoder.process(events).then(
      (decoded) => {
        try {
          this.extractor?.write(decoded);
        } catch (err) {
          this.extractor?.close();
          fail(isPcapflowError(err) ? err : new PcapflowError('OUTPUT_FAILED', `extracting a body: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
          return;
        }
        this.records.write(decoded, this.onRecords);
        const wait = this.extractor?.flush() ?? null;
        if (wait === null) next();
        else wait.then(next, fail);
      },
      (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
    );
  }

  protected override render(): Buffer {
    return this.lines.take();
  }

  protected override renderEnd(): Buffer {
    return this.lines.take();
  }
}

/** partText: one multipart part for people: its filename (or field name), size, and whether it is whole. */
function partText(p: HttpPartRecord): string {
  const what = p.filename !== null && p.filename !== '' ? JSON.stringify(p.filename) : `field ${JSON.stringify(p.name ?? '')}`;
  return `${what} ${p.bytes} bytes${p.complete ? '' : ' incomplete'}`;
}

/** recordText: one line for people. */
export function recordText(r: HttpRecord): string {
  if (r.type === 'http-error') {
    return `conn ${r.conn} ${r.dir}: ${r.reason}${r.offset === null ? '' : ` at ${r.offset}`}${r.bytesSkipped > 0 ? `, ${r.bytesSkipped} bytes skipped` : ''}${r.lost > 0 ? `, ${r.lost} message(s) lost` : ''}${r.message ? ` (${r.message})` : ''}`;
  }
  const q = r.request;
  const p = r.response;
  const flag = (m: { complete: boolean; missing: number }): string => (m.complete ? '' : m.missing > 0 ? ` [${m.missing} bytes missing]` : ' [incomplete]');
  const parts = q.parts === undefined ? '' : ` [${q.parts.length} part${q.parts.length === 1 ? '' : 's'}${q.parts.length > 0 ? `: ${q.parts.map(partText).join(', ')}` : ''}${q.partsError ? `; ${q.partsError}` : ''}]`;
  const req = `${q.method} ${q.uri}${q.bodyBytes > 0 ? ` (${q.bodyBytes} bytes)` : ''}${flag(q)}${q.decodeError === null ? '' : ` [decoding: ${q.decodeError}]`}${parts}`;
  const res =
    p === null
      ? 'no response'
      : `${p.status} ${p.reason}`.trimEnd() +
        ` (${[p.contentType, `${p.bodyBytes} bytes`, ...p.encodings, p.encodings.length > 0 && p.decodedBytes !== null ? `${p.decodedBytes} decoded` : ''].filter(Boolean).join(', ')})${flag(p)}${p.decodeError === null ? '' : ` [decoding: ${p.decodeError}]`}`;
  const tunnel = r.tunnel === undefined ? '' : `; then a ${r.tunnel.reason} tunnel to ${r.tunnel.target}`;
  return `${r.ts} conn ${r.conn} #${r.trans} ${r.client.ip}:${r.client.port} -> ${r.server.ip}:${r.server.port} ${req} -> ${res}${tunnel}`;
}
