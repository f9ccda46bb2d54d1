/**
 * nats-wire: how stream events travel through a NATS JetStream stream (`--sink nats`, `pcapflow
 * consume`), as pure code: subjects, message ids, headers and payloads (NatsWireEncoder), their
 * decoding (decodeNatsMessage), and the consumer's ordering (RunAssembler). No node:* import.
 *
 * Layout (version 2), for a run id RUN, a shard token SHARD ("0" without `--shard`, "K-N" for
 * shard K of N) and a subject prefix PREFIX:
 * - subject `PREFIX.RUN.SHARD.BUCKET.TYPE` for a message: BUCKET is 0 to NATS_BUCKETS-1, from the
 *   connection's SHARD KEY (core/shard-key.ts) mixed (bucketOfKey), so that a connection's
 *   messages share one subject per type and subscribers can split the work by bucket; TYPE is
 *   the type of its events (open, data, gap, overlap, close). `PREFIX.RUN.SHARD.end` is the
 *   shard's end-of-run message.
 * - message id (`Nats-Msg-Id`) `RUN:SHARD:SEQ`: SEQ numbers the shard's messages from 1 in publish
 *   order (the end message is the last), so that the server drops the copies a retry or a restart
 *   of the same run publishes within the stream's duplicate window.
 * - headers `Pcapflow-Seq` (SEQ), `Pcapflow-Conn` (connection number), `Pcapflow-Conn-Seq` (the
 *   connection's messages numbered from 1, the open first) and, on a part of a cut data event,
 *   `Pcapflow-Part` (`I/N`, I from 1).
 * - an open, gap, overlap or close message carries one event: its JSON (its fields as events.ts
 *   names them, in that order) with `seq` and `cseq` added.
 * - a data message carries a PACK: one or more data events that came one after the other in the
 *   encoded batch (nothing between them), of one connection and direction, each starting where
 *   the one before ended (offset = previous offset + len). Payload: the JSON head
 *   `{"type":"data","conn":C,"dir":D,"seq":S,"cseq":K,"events":[[OFFSET,LEN,TS],...]}`, one
 *   entry per event in order (TS the event's `ts` string), then a newline (0x0a) and the events'
 *   bytes concatenated (the LENs add up to the rest of the payload). A pack's bytes plus the text
 *   of its entries stay within `maxDataBytes` (256 KiB by default; the default max_payload is
 *   1 MiB); a data event longer than that goes alone, cut into consecutive parts, each a message
 *   of one entry (its own offset) with `"part":I,"parts":N` before `events`, which the consumer
 *   joins back. A pack ends at the first event that does not join it, at flush(), or at the end.
 *   The messages, and so what each message id names, are then a function of the events alone
 *   (not of how they were batched): a rerun of the same job republishes the same content under
 *   the same ids. Live capture (which never reruns a run) flushes at the end of each batch, so
 *   that packing adds no latency there (NatsSink's flushEachBatch).
 * - the end message's payload: `{"type":"end","seq":S,"shard":"SHARD","shards":N,"events":E,"messages":M,"v":2}`:
 *   E events in M messages before it (M = S - 1), N shards in the run; and `"fault":{"code","message"}`
 *   when the reading stopped at a fault of the capture itself (a truncated or corrupt file): the
 *   run holds what `read` gave its sink before failing with that error.
 * A consumer refuses another layout with INPUT_READ_FAILED: an end message of another `v`, or a
 * data message of version 1 (a `len` and no `events`: one event per message).
 *
 * Each message is also made as the NATS client protocol sends it (WireMessage.frame: `HPUB SUBJECT
 * [REPLY] HLEN TLEN`, the header block, the payload, CRLF), written once into a reused arena, so
 * that a publisher can hand runs of whole messages to its socket without copying them again.
 */
import { parseIp } from './addr.js';
import { PcapflowError } from './errors.js';
import type { DataEvent, OpenEvent, StreamEvent } from './events.js';
import { shardKey } from './shard-key.js';

/** Buckets per shard in the subjects (fixed: consumers may subscribe per bucket). */
export const NATS_BUCKETS = 64;
/** The most data bytes in one message (a longer data event is cut). */
export const NATS_MAX_DATA_BYTES = 256 * 1024;
/** The layout's version (module comment); a consumer refuses payloads of another. */
export const NATS_WIRE_VERSION = 2;

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const PREFIX = /^[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,7}$/;

/** checkRunId: a run id is 1 to 64 of A-Z a-z 0-9 _ - (one subject token). Throws INVALID_OPTION. */
export function checkRunId(runId: string): string {
  if (!TOKEN.test(runId)) throw new PcapflowError('INVALID_OPTION', `a run id is 1 to 64 letters, digits, _ or -, not ${JSON.stringify(runId)}`);
  return runId;
}

/** checkSubjectPrefix: 1 to 8 dot-separated tokens of A-Z a-z 0-9 _ - (no wildcard). Throws INVALID_OPTION. */
export function checkSubjectPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) throw new PcapflowError('INVALID_OPTION', `a subject prefix is 1 to 8 dot-separated tokens of letters, digits, _ or -, not ${JSON.stringify(prefix)}`);
  return prefix;
}

/** shardToken: the SHARD token of shard `index` of `count` ("0" when count is 1). */
export function shardToken(index: number, count: number): string {
  return count === 1 ? '0' : `${index}-${count}`;
}

/** runSubjects: the subject filter of every message of a run (`PREFIX.RUN.>`). */
export function runSubjects(prefix: string, runId: string): string {
  return `${prefix}.${runId}.>`;
}

/**
 * subjectCovers: every subject `filter` matches (a subject with `*` and `>` wildcards) is matched
 * by `pattern` too (NATS subject matching, token by token).
 */
export function subjectCovers(pattern: string, filter: string): boolean {
  const p = pattern.split('.');
  const f = filter.split('.');
  for (let i = 0; i < p.length; i++) {
    const pt = p[i]!;
    if (pt === '>') return i < f.length;
    const ft = f[i];
    if (ft === undefined || ft === '>') return false;
    if (pt === '*') continue;
    if (ft === '*' || ft !== pt) return false;
  }
  return p.length === f.length;
}

/**
 * bucketOfKey: the BUCKET of a connection whose SHARD KEY is `key`: the top 6 bits of the key
 * after a multiply-xorshift mix (the shard is taken from the key's top bits, so the bucket must
 * not be, or the connections of one shard of 64 would all share one bucket).
 */
export function bucketOfKey(key: number): number {
  let h = key >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h >>> 26; // NATS_BUCKETS = 64 = 2^6
}

/** bucketOfOpen: the BUCKET of the connection an open event starts (its endpoints and VLAN ids). */
export function bucketOfOpen(open: Pick<OpenEvent, 'client' | 'server' | 'vlan'>): number {
  const a = parseIp(open.client.ip);
  const b = parseIp(open.server.ip);
  if (a === null || b === null || a.length !== b.length) return 0;
  return bucketOfKey(shardKey(a, 0, open.client.port, b, 0, open.server.port, a.length, open.vlan));
}

/**
 * One message to publish. `headers` are name/value pairs besides Nats-Msg-Id (which is `msgId`).
 * `frame` is the whole message in the NATS client protocol: `HPUB SUBJECT [REPLY] HLEN TLEN\r\n`
 * (REPLY: NatsWireOptions.reply and the SEQ, when a reply prefix is given), the header block
 * `NATS/1.0\r\nNats-Msg-Id: ID\r\nName: value\r\n...\r\n\r\n` (HLEN bytes), the payload (TLEN
 * counts both), `\r\n`. `headerBlock` and `payload` are views of it. Frames made one after the
 * other in one arena are adjacent in memory (a run of them is one subarray) until release().
 */
export interface WireMessage {
  subject: string;
  msgId: string;
  seq: number;
  headers: [string, string][];
  payload: Uint8Array;
  headerBlock: Uint8Array;
  frame: Uint8Array;
}

export interface NatsWireOptions {
  prefix: string;
  runId: string;
  /** This process's shard, 1 to `shards` (default 1). */
  shard?: number;
  /** Shards in the run (default 1). */
  shards?: number;
  /** Data bytes per message at most (default NATS_MAX_DATA_BYTES). */
  maxDataBytes?: number;
  /** The frames' reply subject is this followed by the message's SEQ (a publisher's acknowledgement inbox, e.g. `_INBOX.X.`); none when absent. */
  reply?: string;
}

const encoder = new TextEncoder();
/** The size of the arenas messages' frames are carved from (NatsWireEncoder.frame). */
const ARENA_BYTES = 1 << 20;
/** Released arenas kept for reuse at most. */
const SPARE_ARENAS = 8;
const decoder = new TextDecoder();
const NO_CHUNKS: readonly Uint8Array[] = [];

/** The data message being filled (NatsWireEncoder): a pack of data events (module comment). */
interface Pack {
  conn: number;
  dir: DataEvent['dir'];
  state: ConnState;
  subject: string;
  /** The events' entries, comma-separated (`[OFFSET,LEN,TS],...`). */
  entries: string;
  chunks: Uint8Array[];
  bytes: number;
  /** Where the next event must start to join. */
  next: number;
}

interface ConnState {
  bucket: number;
  cseq: number;
}

/**
 * NatsWireEncoder turns one shard's events, in order, into messages (module comment), numbering
 * them. Holds a bucket and a counter per open connection (dropped at its close). Throws nothing
 * for valid events; an event of a connection it never saw open gets bucket 0 of its number.
 */
export class NatsWireEncoder {
  readonly prefix: string;
  readonly runId: string;
  readonly shardToken: string;
  readonly shards: number;
  readonly maxDataBytes: number;
  /** Messages made (the SEQ of the last). */
  seq = 0;
  /** Events encoded. */
  events = 0;
  /** Data events cut into parts. */
  cut = 0;
  private readonly conns = new Map<number, ConnState>();
  private readonly base: string;
  private readonly reply: string;
  /** A payload's JSON head as UTF-8, before it is framed (its length comes first in the frame). */
  private scratch = new Uint8Array(4096);
  private arena: Uint8Array = new Uint8Array(0);
  private arenaAt = 0;
  /** Payloads not yet released, by arena. */
  private readonly live = new Map<ArrayBufferLike, number>();
  /** Arenas whose payloads were all released, for reuse. */
  private readonly spare: Uint8Array[] = [];
  private pack: Pack | null = null;

  constructor(options: NatsWireOptions) {
    this.prefix = checkSubjectPrefix(options.prefix);
    this.runId = checkRunId(options.runId);
    this.shards = options.shards ?? 1;
    const shard = options.shard ?? 1;
    if (!Number.isInteger(this.shards) || this.shards < 1 || !Number.isInteger(shard) || shard < 1 || shard > this.shards) {
      throw new PcapflowError('INVALID_OPTION', `shard ${shard} of ${this.shards} is not a shard`);
    }
    this.shardToken = shardToken(shard, this.shards);
    this.maxDataBytes = options.maxDataBytes ?? NATS_MAX_DATA_BYTES;
    if (!Number.isInteger(this.maxDataBytes) || this.maxDataBytes < 1) throw new PcapflowError('INVALID_OPTION', `maxDataBytes must be a whole number above 0, got ${this.maxDataBytes}`);
    this.base = `${this.prefix}.${this.runId}.${this.shardToken}.`;
    this.reply = options.reply ?? '';
    if (/[\s]/.test(this.reply)) throw new PcapflowError('INVALID_OPTION', `a reply subject has no white space, not ${JSON.stringify(this.reply)}`);
  }

  /**
   * encode appends to `out` the messages `event` completes: its own (an open, gap, overlap or
   * close message, or the parts of a data event longer than maxDataBytes) after the pack it
   * ends, if any. A data event that fits joins the pack being filled or starts one, held (at most
   * maxDataBytes) until an event that does not join it, flush() or end().
   */
  encode(event: StreamEvent, out: WireMessage[]): void {
    this.add(event, out);
  }

  /** encodeBatch: encode of each event, then flush() (nothing held between calls). */
  encodeBatch(events: readonly StreamEvent[], out: WireMessage[]): void {
    for (const e of events) this.add(e, out);
    this.flush(out);
  }

  private add(event: StreamEvent, out: WireMessage[]): void {
    this.events++;
    let conn = this.conns.get(event.conn);
    if (conn === undefined) {
      conn = { bucket: event.type === 'open' ? bucketOfOpen(event) : bucketOfKey(event.conn), cseq: 0 };
      this.conns.set(event.conn, conn);
    }
    if (event.type === 'close') this.conns.delete(event.conn);
    if (event.type !== 'data') {
      this.flush(out);
      const subject = `${this.base}${conn.bucket}.${event.type}`;
      const seq = ++this.seq;
      const cseq = ++conn.cseq;
      out.push(this.frame(subject, seq, this.headers(seq, event.conn, cseq, 0, 0), JSON.stringify({ ...event, seq, cseq }), NO_CHUNKS, 0));
      return;
    }
    const len = event.data.length;
    const entry = `[${event.offset},${len},${JSON.stringify(event.ts)}]`;
    const p = this.pack;
    if (p !== null && p.conn === event.conn && p.dir === event.dir && p.next === event.offset && p.bytes + len + p.entries.length + 1 + entry.length <= this.maxDataBytes) {
      p.entries += `,${entry}`;
      p.chunks.push(event.data);
      p.bytes += len;
      p.next += len;
      return;
    }
    this.flush(out);
    const subject = `${this.base}${conn.bucket}.data`;
    if (len <= this.maxDataBytes) {
      this.pack = { conn: event.conn, dir: event.dir, state: conn, subject, entries: entry, chunks: [event.data], bytes: len, next: event.offset + len };
      return;
    }
    const parts = Math.ceil(len / this.maxDataBytes);
    this.cut++;
    for (let i = 0; i < parts; i++) {
      const start = i * this.maxDataBytes;
      const bytes = event.data.subarray(start, Math.min(len, start + this.maxDataBytes));
      const seq = ++this.seq;
      const cseq = ++conn.cseq;
      const head = `{"type":"data","conn":${event.conn},"dir":${JSON.stringify(event.dir)},"seq":${seq},"cseq":${cseq},"part":${i + 1},"parts":${parts},"events":[[${event.offset + start},${bytes.length},${JSON.stringify(event.ts)}]]}\n`;
      out.push(this.frame(subject, seq, this.headers(seq, event.conn, cseq, i + 1, parts), head, [bytes], bytes.length));
    }
  }

  /** flush closes the pack being filled, if any, as one data message appended to `out`. */
  flush(out: WireMessage[]): void {
    const p = this.pack;
    if (p === null) return;
    this.pack = null;
    const seq = ++this.seq;
    const cseq = ++p.state.cseq;
    const head = `{"type":"data","conn":${p.conn},"dir":${JSON.stringify(p.dir)},"seq":${seq},"cseq":${cseq},"events":[${p.entries}]}\n`;
    out.push(this.frame(p.subject, seq, this.headers(seq, p.conn, cseq, 0, 0), head, p.chunks, p.bytes));
  }

  /**
   * frame: the message SEQ `seq` on `subject` with `headers`, whose payload is `head` as UTF-8
   * followed by the `chunks` (`bytes` in all), framed (WireMessage.frame) in an arena of
   * ARENA_BYTES: a message costs one copy of its bytes and no buffer of its own. When the current
   * arena is full the next is one whose messages were all released (release), else a new one; an
   * arena not reused is freed once no message of it is held. The subject, ids and header values
   * are ASCII (checkRunId, checkSubjectPrefix, numbers), so their lengths are their byte counts.
   */
  private frame(subject: string, seq: number, headers: [string, string][], head: string, chunks: readonly Uint8Array[], bytes: number): WireMessage {
    const msgId = this.msgId(seq);
    let block = `NATS/1.0\r\nNats-Msg-Id: ${msgId}`;
    for (const [k, v] of headers) block += `\r\n${k}: ${v}`;
    block += '\r\n\r\n';
    if (this.scratch.length < head.length * 3) this.scratch = new Uint8Array(head.length * 3);
    const headBytes = encoder.encodeInto(head, this.scratch).written;
    const hlen = block.length;
    const plen = headBytes + bytes;
    const line = `HPUB ${subject}${this.reply === '' ? '' : ` ${this.reply}${seq}`} ${hlen} ${hlen + plen}\r\n`;
    const size = line.length + hlen + plen + 2;
    if (this.arena.length - this.arenaAt < size) {
      const old = this.arena;
      if (old.length === ARENA_BYTES && !this.live.has(old.buffer) && this.spare.length < SPARE_ARENAS) this.spare.push(old);
      this.arena = size <= ARENA_BYTES && this.spare.length > 0 ? this.spare.pop()! : new Uint8Array(Math.max(ARENA_BYTES, size));
      this.arenaAt = 0;
    }
    const a = this.arena;
    const at = this.arenaAt;
    const blockAt = at + encoder.encodeInto(line, a.subarray(at)).written;
    const payloadAt = blockAt + encoder.encodeInto(block, a.subarray(blockAt)).written;
    a.set(this.scratch.subarray(0, headBytes), payloadAt);
    let end = payloadAt + headBytes;
    for (const c of chunks) {
      a.set(c, end);
      end += c.length;
    }
    a[end] = 0x0d;
    a[end + 1] = 0x0a;
    this.arenaAt = end + 2;
    const buf = a.buffer;
    this.live.set(buf, (this.live.get(buf) ?? 0) + 1);
    return { subject, msgId, seq, headers, payload: a.subarray(payloadAt, end), headerBlock: a.subarray(blockAt, payloadAt), frame: a.subarray(at, end + 2) };
  }

  /**
   * release: the caller is done with `payload` (a message's, published and acknowledged, its frame
   * written): its arena's bytes may be overwritten by later messages. Optional: without it arenas
   * are never reused.
   */
  release(payload: Uint8Array): void {
    const buf = payload.buffer;
    const n = this.live.get(buf);
    if (n === undefined) return;
    if (n > 1) return void this.live.set(buf, n - 1);
    this.live.delete(buf);
    if (buf !== this.arena.buffer && buf.byteLength === ARENA_BYTES && this.spare.length < SPARE_ARENAS) this.spare.push(new Uint8Array(buf));
  }

  /**
   * end: the messages that end the shard's run (call once, after the last event): the pack still
   * held, if any, then the end-of-run message, with the fault that ended the reading if one did.
   */
  end(fault?: RunFault): WireMessage[] {
    const out: WireMessage[] = [];
    this.flush(out);
    const seq = ++this.seq;
    const body = { type: 'end', seq, shard: this.shardToken, shards: this.shards, events: this.events, messages: seq - 1, v: NATS_WIRE_VERSION, ...(fault === undefined ? {} : { fault }) };
    out.push(this.frame(`${this.base}end`, seq, [['Pcapflow-Seq', String(seq)]], JSON.stringify(body), NO_CHUNKS, 0));
    return out;
  }

  private msgId(seq: number): string {
    return `${this.runId}:${this.shardToken}:${seq}`;
  }

  private headers(seq: number, conn: number, cseq: number, part: number, parts: number): [string, string][] {
    const h: [string, string][] = [
      ['Pcapflow-Seq', String(seq)],
      ['Pcapflow-Conn', String(conn)],
      ['Pcapflow-Conn-Seq', String(cseq)],
    ];
    if (part > 0) h.push(['Pcapflow-Part', `${part}/${parts}`]);
    return h;
  }
}

/** The fault a shard's reading stopped at: a PcapflowError's code and message. */
export interface RunFault {
  code: string;
  message: string;
}

/** The end-of-run message of a shard, decoded. */
export interface EndMessage {
  type: 'end';
  seq: number;
  shard: string;
  shards: number;
  events: number;
  messages: number;
  fault?: RunFault;
}

/**
 * A message decoded: its events (one, or a data message's pack; a part of a cut data event is
 * one event of that part's bytes, with its part, 1 of 1 when not cut) of connection `conn`, or a
 * shard's end.
 */
export type DecodedMessage =
  | { kind: 'event'; shard: string; seq: number; conn: number; cseq: number; part: number; parts: number; events: StreamEvent[]; bytes: number }
  | { kind: 'end'; shard: string; seq: number; end: EndMessage; bytes: number };

const META = ['seq', 'cseq', 'part', 'parts'] as const;

function bad(what: string, subject: string): PcapflowError {
  return new PcapflowError('INPUT_READ_FAILED', `message on ${subject} is not a pcapflow event: ${what}`);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * decodeNatsMessage reads a message published by NatsWireEncoder; the shard is the subject's
 * third token after the prefix's. A data event's bytes are a view of `payload`. Throws
 * PcapflowError INPUT_READ_FAILED for anything else.
 */
export function decodeNatsMessage(subject: string, payload: Uint8Array, prefixTokens: number): DecodedMessage {
  const tokens = subject.split('.');
  const shard = tokens[prefixTokens + 1];
  if (shard === undefined) throw bad('subject too short', subject);
  let nl = payload.indexOf(0x0a);
  if (nl < 0) nl = payload.length;
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(decoder.decode(payload.subarray(0, nl))) as Record<string, unknown>;
  } catch {
    throw bad('its JSON does not parse', subject);
  }
  if (obj === null || typeof obj !== 'object' || !isCount(obj.seq) || obj.seq < 1) throw bad('no seq', subject);
  const seq = obj.seq;
  if (obj.type === 'end') {
    if (obj.v !== NATS_WIRE_VERSION) throw bad(`layout version ${String(obj.v)}, this pcapflow reads ${NATS_WIRE_VERSION}`, subject);
    if (!isCount(obj.shards) || obj.shards < 1 || !isCount(obj.events) || obj.messages !== seq - 1 || obj.shard !== shard) throw bad('a malformed end message', subject);
    const f = obj.fault as Partial<RunFault> | undefined;
    if (f !== undefined && (typeof f !== 'object' || f === null || typeof f.code !== 'string' || typeof f.message !== 'string')) throw bad('a malformed fault', subject);
    const end: EndMessage = { type: 'end', seq, shard, shards: obj.shards, events: obj.events, messages: seq - 1 };
    if (f !== undefined) end.fault = { code: f.code!, message: f.message! };
    return { kind: 'end', shard, seq, end, bytes: payload.length };
  }
  const cseq = obj.cseq;
  const part = obj.part ?? 1;
  const parts = obj.parts ?? 1;
  if (!isCount(cseq) || !isCount(part) || !isCount(parts) || part < 1 || part > parts) throw bad('no cseq or a bad part', subject);
  if (obj.type === 'data') {
    const entries = obj.events;
    if (!Array.isArray(entries)) {
      if (obj.len !== undefined) throw bad(`a data message of layout version 1, this pcapflow reads ${NATS_WIRE_VERSION} (publish the run again with this pcapflow)`, subject);
      throw bad('a data message without events', subject);
    }
    if (entries.length === 0 || (parts > 1 && entries.length !== 1) || nl === payload.length) throw bad('a data message without events or bytes', subject);
    const conn = obj.conn as number;
    const dir = obj.dir as DataEvent['dir'];
    const events: DataEvent[] = [];
    let at = nl + 1;
    for (const entry of entries as unknown[]) {
      if (!Array.isArray(entry) || entry.length !== 3) throw bad('a malformed events entry', subject);
      const [offset, len, ts] = entry as unknown[];
      if (!isCount(offset) || !isCount(len) || typeof ts !== 'string' || at + len > payload.length) throw bad('a malformed events entry, or its lengths pass the data', subject);
      events.push({ type: 'data', conn, dir, offset, ts, data: payload.subarray(at, at + len) });
      at += len;
    }
    if (at !== payload.length) throw bad('its data length differs from its events\' lengths', subject);
    return { kind: 'event', shard, seq, conn, cseq, part, parts, events, bytes: payload.length };
  }
  if (obj.type !== 'open' && obj.type !== 'close' && obj.type !== 'gap' && obj.type !== 'overlap') throw bad(`unknown type ${JSON.stringify(obj.type)}`, subject);
  for (const k of META) delete obj[k];
  return { kind: 'event', shard, seq, conn: obj.conn as number, cseq, part, parts, events: [obj as unknown as StreamEvent], bytes: payload.length };
}

export interface RunAssemblerOptions {
  /** Messages held out of order at most, over all shards (default 65536). */
  maxHeldMessages?: number;
  /** Payload bytes held out of order at most (default 64 MiB). */
  maxHeldBytes?: number;
  /**
   * A durable consumer resuming (pcapflow consume --durable): a shard's first message sets where
   * it starts (those before it were taken by an earlier consumer), and its end's event count is
   * not checked (the events before the start are not counted here).
   */
  resume?: boolean;
}

export interface RunAssemblerStats {
  /** Messages taken (duplicates included). */
  messages: number;
  /** Copies of a message already taken (published again after the stream's duplicate window), dropped. */
  duplicates: number;
  /** Messages that came ahead of one still missing, held. */
  outOfOrder: number;
  /** Events given out (cut data events joined). */
  events: number;
  /** Shards complete. */
  shardsDone: number;
}

interface ShardState {
  next: number;
  held: Map<number, DecodedMessage>;
  end: EndMessage | null;
  events: number;
  /** The parts of a cut data event so far. */
  parts: DataEvent[];
}

/**
 * RunAssembler puts a run's messages, as they come (any order across and within shards, copies
 * possible), back into each shard's publish order (SEQ), drops copies, unpacks data messages,
 * joins cut data events and gives out the events through `emit`: each shard's events in the order its reader made them
 * (so every connection's), the shards interleaved as their messages came. `complete` is true
 * once every shard's end message and everything before it were given out. Throws PcapflowError
 * INPUT_READ_FAILED when more than the bound would be held (a message lost for good), when shards
 * disagree on their count, or when a shard's end counts other events than it carried.
 */
export class RunAssembler {
  readonly stats: RunAssemblerStats = { messages: 0, duplicates: 0, outOfOrder: 0, events: 0, shardsDone: 0 };
  /** The shard count the end messages give (null before the first). */
  shards: number | null = null;
  /** The faults the shards' readings stopped at (their end messages'), by shard. */
  readonly faults = new Map<string, RunFault>();
  private readonly byShard = new Map<string, ShardState>();
  private readonly maxHeldMessages: number;
  private readonly maxHeldBytes: number;
  private readonly resume: boolean;
  private heldMessages = 0;
  private heldBytes = 0;

  constructor(options: RunAssemblerOptions = {}) {
    this.maxHeldMessages = options.maxHeldMessages ?? 65536;
    this.maxHeldBytes = options.maxHeldBytes ?? 64 * 1024 * 1024;
    this.resume = options.resume ?? false;
  }

  get complete(): boolean {
    return this.shards !== null && this.stats.shardsDone === this.shards;
  }

  /** push takes one decoded message; events it puts in order go to `emit`. */
  push(m: DecodedMessage, emit: (event: StreamEvent) => void): void {
    this.stats.messages++;
    let s = this.byShard.get(m.shard);
    if (s === undefined) {
      s = { next: this.resume ? m.seq : 1, held: new Map(), end: null, events: 0, parts: [] };
      this.byShard.set(m.shard, s);
    }
    if (m.seq < s.next || s.held.has(m.seq)) {
      this.stats.duplicates++;
      return;
    }
    if (m.seq > s.next) {
      this.stats.outOfOrder++;
      s.held.set(m.seq, m);
      this.heldMessages++;
      this.heldBytes += m.bytes;
      if (this.heldMessages > this.maxHeldMessages || this.heldBytes > this.maxHeldBytes) {
        throw new PcapflowError(
          'INPUT_READ_FAILED',
          `shard ${m.shard}: message ${s.next} is missing and ${this.heldMessages} messages (${this.heldBytes} bytes) after it are held, more than the bound (${this.maxHeldMessages} messages, ${this.maxHeldBytes} bytes)`,
        );
      }
      return;
    }
    this.take(s, m, emit);
    for (let h = s.held.get(s.next); h !== undefined; h = s.held.get(s.next)) {
      s.held.delete(h.seq);
      this.heldMessages--;
      this.heldBytes -= h.bytes;
      this.take(s, h, emit);
    }
  }

  /** missing: for each incomplete shard seen, what it still lacks (for an error message). */
  missing(): string[] {
    const out: string[] = [];
    for (const [shard, s] of this.byShard) {
      if (s.end !== null && s.next > s.end.seq) continue;
      out.push(`shard ${shard}: next message ${s.next}${s.end === null ? ', end not seen' : ` of ${s.end.seq}`}, ${s.held.size} held`);
    }
    if (this.shards !== null && this.byShard.size < this.shards) out.push(`${this.shards - this.byShard.size} of ${this.shards} shards not seen`);
    return out;
  }

  private take(s: ShardState, m: DecodedMessage, emit: (event: StreamEvent) => void): void {
    s.next = m.seq + 1;
    if (m.kind === 'end') {
      if (this.shards !== null && this.shards !== m.end.shards) throw new PcapflowError('INPUT_READ_FAILED', `shard ${m.shard} counts ${m.end.shards} shards, another ${this.shards}`);
      if ((!this.resume && s.events !== m.end.events) || s.parts.length > 0) throw new PcapflowError('INPUT_READ_FAILED', `shard ${m.shard} ended with ${m.end.events} events sent, ${s.events} received`);
      this.shards = m.end.shards;
      s.end = m.end;
      if (m.end.fault !== undefined) this.faults.set(m.shard, m.end.fault);
      this.stats.shardsDone++;
      return;
    }
    if (m.parts === 1) {
      s.events += m.events.length;
      this.stats.events += m.events.length;
      for (const e of m.events) emit(e);
      return;
    }
    const e = m.events[0] as DataEvent;
    if (e.type !== 'data' || m.part !== s.parts.length + 1) throw new PcapflowError('INPUT_READ_FAILED', `shard ${m.shard}: message ${m.seq} is part ${m.part} of ${m.parts}, expected part ${s.parts.length + 1}`);
    s.parts.push(e);
    if (m.part < m.parts) return;
    const first = s.parts[0]!;
    let len = 0;
    for (const p of s.parts) len += p.data.length;
    const data = new Uint8Array(len);
    let at = 0;
    for (const p of s.parts) {
      data.set(p.data, at);
      at += p.data.length;
    }
    s.parts = [];
    s.events++;
    this.stats.events++;
    emit({ type: 'data', conn: first.conn, dir: first.dir, offset: first.offset, ts: first.ts, data });
  }
}
