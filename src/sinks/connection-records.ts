/**
 * The lines of DIR/connections.ndjson (FilesSink): their types, and RecordWriter, which writes
 * them as bytes straight into a growing buffer. A capture of short connections writes one line
 * per connection (50 000 and more): built as template strings and then encoded, they were a fifth
 * of everything the process allocated (bench/PROFILE.md, "Seventh pass").
 */
import type { CloseEvent, CloseReason, DirectionSummary, Endpoint, GapReason, OpenEvent } from '../core/events.js';
import { JsonBytes } from './json-bytes.js';

/** One gap as listed in connections.ndjson: stream offset and length of the missing bytes. */
export interface GapRecord {
  offset: number;
  len: number;
  reason: GapReason;
}

export interface OverlapRecord {
  offset: number;
  len: number;
  kept: 'first' | 'last';
}

/** A direction in connections.ndjson: the close event's counters plus the file and the lists. */
export interface FileDirectionRecord extends DirectionSummary {
  /** File name in the output directory; null when the direction carried no data (no file). */
  file: string | null;
  /** Gaps in stream order. The file holds no filler: file offset = stream offset - missing bytes before it. */
  gapList: GapRecord[];
  overlapList: OverlapRecord[];
  /** Gaps and overlaps beyond maxListed: counted, not listed. */
  unlisted: number;
}

/**
 * ConnectionRecord is one line of DIR/connections.ndjson, written when the connection closed and
 * after its files got their final names. `reason` is 'unclosed' only for a connection still
 * open when the input ended without a close event; such a record knows only bytes, gaps, missing
 * and overlaps (the other counters are 0, the times null).
 */
export interface ConnectionRecord {
  conn: number;
  /** Time of the close event (of the last event seen, for 'unclosed'). */
  ts: string;
  reason: CloseReason | 'unclosed';
  /** Time of the open event. */
  openTs: string;
  client: Endpoint;
  server: Endpoint;
  vlan: number[];
  midstream: boolean;
  c2s: FileDirectionRecord;
  s2c: FileDirectionRecord;
}

/** What RecordWriter needs of a direction besides its summary: the FileDirectionRecord fields the sink keeps. */
export interface DirectionFiles {
  readonly name: string | null;
  readonly gapList: readonly GapRecord[] | null;
  readonly overlapList: readonly OverlapRecord[] | null;
  readonly unlisted: number;
}

/**
 * RecordWriter appends connections.ndjson lines (newline included) to `buf` at `at`, growing it
 * by doubling; `take` hands the bytes written over and starts again in a spare buffer. The
 * bytes are exactly JSON.stringify(record) + '\n' (fields in ConnectionRecord order; checked
 * against it by test/files-sink.test.ts): every string in a record is ASCII that needs no
 * escaping (times, reasons, file names and addresses made of digits, hex and punctuation) except
 * possibly an address, which is escaped when it holds anything else.
 */
export class RecordWriter extends JsonBytes {
  private spare: Buffer = Buffer.alloc(0);
  /** Lines written since the last take. */
  lines = 0;

  /** Bytes written since the last take. */
  get length(): number {
    return this.at;
  }

  /**
   * take returns the lines written so far and starts a new run of lines in the other buffer:
   * the two take turns, so the bytes returned stay intact until the next take but one (the
   * caller writes them before that).
   */
  take(): Buffer {
    const out = this.buf.subarray(0, this.at);
    const next = this.spare;
    this.spare = this.buf;
    this.buf = next;
    this.at = 0;
    this.lines = 0;
    return out;
  }

  /** connection writes a connection's line. `close` null: still open at the end ('unclosed', counters from the sink's own). */
  connection(open: OpenEvent, close: CloseEvent | null, lastTs: string, c2s: DirectionFiles & Partial<DirectionSummary>, s2c: DirectionFiles & Partial<DirectionSummary>): void {
    this.raw('{"conn":');
    this.num(open.conn);
    this.raw(',"ts":"');
    this.raw(close === null ? lastTs : close.ts);
    this.raw('","reason":"');
    this.raw(close === null ? 'unclosed' : close.reason);
    this.raw('","openTs":"');
    this.raw(open.ts);
    this.raw('","client":');
    this.endpoint(open.client);
    this.raw(',"server":');
    this.endpoint(open.server);
    this.raw(',"vlan":');
    this.vlan(open.vlan);
    this.raw(open.midstream ? ',"midstream":true,"c2s":' : ',"midstream":false,"c2s":');
    this.direction(c2s, close === null ? null : close.c2s);
    this.raw(',"s2c":');
    this.direction(s2c, close === null ? null : close.s2c);
    this.raw('}\n');
    this.lines++;
  }

  /** quiet writes the line of a connection that closed right after it opened: no file, no list. */
  quiet(open: OpenEvent, close: CloseEvent): void {
    this.connection(open, close, close.ts, QUIET, QUIET);
  }

  private direction(d: DirectionFiles & Partial<DirectionSummary>, s: DirectionSummary | null): void {
    this.raw('{"file":');
    if (d.name === null) this.raw('null');
    else this.str(d.name);
    this.raw(',"bytes":');
    if (s === null) {
      // still open at the end: what the sink counted itself
      this.num(d.bytes ?? 0);
      this.raw(',"packets":0,"retransmitted":0,"outOfOrder":0,"gaps":');
      this.num(d.gaps ?? 0);
      this.raw(',"missing":');
      this.num(d.missing ?? 0);
      this.raw(',"overlaps":');
      this.num(d.overlaps ?? 0);
      this.raw(',"firstTs":null,"lastTs":null,"capped":0');
    } else {
      this.num(s.bytes);
      this.raw(',"packets":');
      this.num(s.packets);
      this.raw(',"retransmitted":');
      this.num(s.retransmitted);
      this.raw(',"outOfOrder":');
      this.num(s.outOfOrder);
      this.raw(',"gaps":');
      this.num(s.gaps);
      this.raw(',"missing":');
      this.num(s.missing);
      this.raw(',"overlaps":');
      this.num(s.overlaps);
      this.raw(',"firstTs":');
      this.time(s.firstTs);
      this.raw(',"lastTs":');
      this.time(s.lastTs);
      this.raw(',"capped":');
      this.num(s.capped);
    }
    this.raw(',"gapList":');
    this.list(d.gapList);
    this.raw(',"overlapList":');
    this.list(d.overlapList);
    this.raw(',"unlisted":');
    this.num(d.unlisted);
    this.raw('}');
  }

  private list(l: readonly (GapRecord | OverlapRecord)[] | null): void {
    if (l === null || l.length === 0) this.raw('[]');
    else this.raw(JSON.stringify(l));
  }

  private time(t: string | null): void {
    if (t === null) {
      this.raw('null');
      return;
    }
    this.raw('"');
    this.raw(t);
    this.raw('"');
  }

  private vlan(v: readonly number[]): void {
    if (v.length === 0) {
      this.raw('[]');
      return;
    }
    this.raw('[');
    for (let i = 0; i < v.length; i++) {
      if (i > 0) this.raw(',');
      this.num(v[i]!);
    }
    this.raw(']');
  }
}

const QUIET: DirectionFiles = { name: null, gapList: null, overlapList: null, unlisted: 0 };
