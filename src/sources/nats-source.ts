/**
 * consumeRun: `pcapflow consume` as a library call. Reads one run back from a NATS JetStream
 * stream (what NatsSink published), puts each shard's events back in publish order
 * (RunAssembler, core/nats-wire.ts) and writes them, in StreamEvent[] batches, into a sink. The
 * @nats-io client packages are imported when it runs. Optionally only one part of the
 * connections (`part`), and through a durable consumer that resumes where an earlier one with
 * the same name stopped (`durable`, with RecordsLedger for the files sink).
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Consumer, ConsumerMessages, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ERROR_CODES, type ErrorCode, PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';
import {
  bucketOfOpen,
  checkRunId,
  checkSubjectPrefix,
  decodeNatsMessage,
  NATS_BUCKETS,
  RunAssembler,
  type RunAssemblerOptions,
  type RunAssemblerStats,
  runSubjects,
} from '../core/nats-wire.js';
import { CONNECTIONS_FILE } from '../sinks/files-sink.js';

/** Messages per pull request of the consumer (128 of at most ~260 KiB each: 33 MiB at worst, ~200 KiB usually). */
const PULL_MESSAGES = 128;
/** Milliseconds a pull request lives before the client makes a new one. */
const PULL_EXPIRES = 5000;
/** Milliseconds the server waits for a durable consumer's acknowledgement before it delivers a message again (5 min: held connections are not sent twice meanwhile). */
const DURABLE_ACK_WAIT = 300_000;
/** JetStream's acknowledgement (`+ACK`), sent to a message's reply subject. */
const ACK = Uint8Array.of(43, 65, 67, 75);

/** A part of a run's connections: the buckets b (0 to NATS_BUCKETS-1) with b % count = index - 1. */
export interface ConsumePart {
  index: number;
  count: number;
}

/**
 * parsePart reads `K/M` (1 <= K <= M <= NATS_BUCKETS). Throws INVALID_OPTION.
 */
export function parsePart(text: string): ConsumePart {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m === null ? NaN : Number(m[1]);
  const count = m === null ? NaN : Number(m[2]);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index < 1 || count < 1 || index > count || count > NATS_BUCKETS) {
    throw new PcapflowError('INVALID_OPTION', `--part must be K/M with 1 <= K <= M <= ${NATS_BUCKETS}, not ${JSON.stringify(text)}`);
  }
  return { index, count };
}

/**
 * RecordsLedger: the connections.ndjson of `consume --durable --sink files`, kept by consume
 * rather than by the FilesSink (its `recordsTo`), because a record is the mark that a connection
 * is written: its files were renamed before it. open(resume) truncates the file for a new
 * durable consumer; for a resumed one it keeps the file, cuts a torn last line, and gives the
 * connections listed there as `done` (their events are not written again). Each record line is
 * appended with a synchronous write, then `onCommit` gets the connection numbers. Throws
 * PcapflowError OUTPUT_FAILED on a file-system failure.
 */
export class RecordsLedger {
  readonly file: string;
  readonly done = new Set<number>();
  onCommit: ((conns: readonly number[]) => void) | null = null;
  private fd = -1;
  private readonly decoder = new TextDecoder();

  constructor(dir: string) {
    this.file = path.join(dir, CONNECTIONS_FILE);
  }

  /** open: see the class comment. */
  open(resume: boolean): void {
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      if (resume && fs.existsSync(this.file)) {
        const text = fs.readFileSync(this.file, 'utf8');
        const whole = text.lastIndexOf('\n') + 1;
        if (whole < Buffer.byteLength(text)) fs.truncateSync(this.file, Buffer.byteLength(text.slice(0, whole)));
        for (const line of text.slice(0, whole).split('\n')) if (line !== '') this.done.add(connOf(line));
        this.fd = fs.openSync(this.file, 'a', 0o644);
      } else {
        this.fd = fs.openSync(this.file, 'w', 0o644);
      }
    } catch (err) {
      if (err instanceof PcapflowError) throw err;
      throw new PcapflowError('OUTPUT_FAILED', `${this.file}: ${(err as Error).message}`, { file: this.file, cause: err });
    }
  }

  /** recordsTo: FilesSink's option. */
  readonly recordsTo = (lines: Uint8Array, _count: number): void => {
    if (this.fd < 0) throw new PcapflowError('OUTPUT_FAILED', `${this.file} is not open`);
    try {
      for (let at = 0; at < lines.length; ) at += fs.writeSync(this.fd, lines, at);
    } catch (err) {
      throw new PcapflowError('OUTPUT_FAILED', `${this.file}: ${(err as Error).message}`, { file: this.file, cause: err });
    }
    const conns = this.decoder
      .decode(lines)
      .split('\n')
      .filter((l) => l !== '')
      .map(connOf);
    this.onCommit?.(conns);
  };

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** connOf: the `conn` of a connections.ndjson line. */
function connOf(line: string): number {
  const conn = (JSON.parse(line) as { conn?: unknown }).conn;
  if (typeof conn !== 'number') throw new PcapflowError('OUTPUT_FAILED', `a line of ${CONNECTIONS_FILE} without conn: ${line.slice(0, 80)}`);
  return conn;
}

export interface ConsumeRunOptions extends RunAssemblerOptions {
  servers: readonly string[];
  /** The stream (default PCAPFLOW). */
  stream?: string;
  /** The subject prefix the run was published under (default `pcapflow`). */
  prefix?: string;
  runId: string;
  /** Where the events go: an object-mode Writable of StreamEvent[] batches, ended here. */
  sink: Writable;
  /** Milliseconds without a message after which an incomplete run fails (default 30000). */
  idleTimeout?: number;
  /** Events per batch written to the sink at most (default 1024). */
  batchEvents?: number;
  /** Only the connections of this part (a whole connection is in one part; see parsePart). */
  part?: ConsumePart;
  /**
   * A durable consumer's name (1 to 64 letters, digits, _ or -): see consumeRun. With `part`,
   * the consumer is `NAME_K-M`.
   */
  durable?: string;
  /**
   * With `durable` and a files sink: the sink's connections.ndjson (its FilesSink writes through
   * ledger.recordsTo). Without it a connection counts as written once the sink's write of the
   * batch holding its close returned.
   */
  ledger?: RecordsLedger;
}

export interface ConsumeRunStats extends RunAssemblerStats {
  /** Shards in the run (from their end messages). */
  shards: number;
  /** Events given to the sink (those of the part, not written before). */
  written: number;
  /** With `durable`: whether an earlier consumer of that name had begun, and the stream sequence it had acknowledged. */
  resumed: boolean;
  ackFloor: number;
}

/**
 * whileElecting runs `request`, again every 250 ms while it times out, finds no responder or gets
 * a 503 (a cluster electing a JetStream leader after a server failed: consumers cannot be created
 * meanwhile), for `ms` in all; then fails with INPUT_READ_FAILED `what` and the last reason.
 * Other errors are thrown as they are.
 */
async function whileElecting<T>(ms: number, what: string, request: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await request();
    } catch (err) {
      const e = err as { name?: string; status?: number; message?: string };
      const transient = e.name === 'TimeoutError' || e.name === 'NoResponders' || (e.name === 'JetStreamApiError' && e.status === 503);
      if (!transient) throw err;
      if (Date.now() >= deadline) throw new PcapflowError('INPUT_READ_FAILED', `${what} within ${Math.round(ms / 1000)} s: ${e.message ?? String(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * openDurable: the durable pull consumer `name` of `filter` (acknowledgements AckPolicy.All:
 * acknowledging a message acknowledges every one before it). Created when missing (resumed:
 * false). When it exists it must follow `filter` with AckPolicy.All (else INVALID_OPTION: it is
 * not this run's); once no other consume pulls from it (its pull requests expire within
 * PULL_EXPIRES after its process died; INVALID_OPTION after `ms`), it is made again starting
 * after its acknowledged floor, so that what the stopped consume held comes back at once rather
 * than after the acknowledgement wait (resumed: true).
 */
async function openDurable(jsm: JetStreamManager, stream: string, name: string, filter: string, ms: number): Promise<{ resumed: boolean; floor: number }> {
  const { AckPolicy, DeliverPolicy } = await import('@nats-io/jetstream');
  const config = { durable_name: name, filter_subject: filter, ack_policy: AckPolicy.All, ack_wait: DURABLE_ACK_WAIT * 1e6, max_ack_pending: -1 };
  const infoOf = (): Promise<Awaited<ReturnType<JetStreamManager['consumers']['info']>> | null> =>
    whileElecting(ms, `stream ${stream}: no answer about consumer ${name}`, () => jsm.consumers.info(stream, name)).catch((err: unknown) => {
      if ((err as { name?: string }).name === 'ConsumerNotFoundError') return null;
      throw err;
    });
  let info = await infoOf();
  if (info === null) {
    await whileElecting(ms, `stream ${stream}: cannot create consumer ${name}`, () => jsm.consumers.add(stream, { ...config, deliver_policy: DeliverPolicy.All }));
    return { resumed: false, floor: 0 };
  }
  if (info.config.filter_subject !== filter || info.config.ack_policy !== AckPolicy.All) {
    throw new PcapflowError('INVALID_OPTION', `consumer ${name} of stream ${stream} follows ${JSON.stringify(info.config.filter_subject ?? '')} (ack policy ${info.config.ack_policy}), not ${filter}: name another durable consumer`);
  }
  const deadline = Date.now() + Math.max(ms, PULL_EXPIRES + 2000);
  while (info.num_waiting > 0) {
    if (Date.now() > deadline) throw new PcapflowError('INVALID_OPTION', `consumer ${name} of stream ${stream} is in use (${info.num_waiting} pull requests waiting): one consume per durable name`);
    await new Promise((r) => setTimeout(r, 250));
    info = await infoOf();
    if (info === null) break;
  }
  const floor = info?.ack_floor.stream_seq ?? 0;
  if (info !== null) await jsm.consumers.delete(stream, name);
  await whileElecting(ms, `stream ${stream}: cannot create consumer ${name}`, () =>
    jsm.consumers.add(stream, floor === 0 ? { ...config, deliver_policy: DeliverPolicy.All } : { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 }),
  );
  return { resumed: true, floor };
}

/**
 * consumeRun reads the run from the start of the stream (an ordered consumer over
 * `PREFIX.RUN.>`; no state is left on the server), gives the sink every event in each shard's
 * order, and once every shard's end message and everything before it arrived, ends the sink and
 * resolves after it finished. The sink is ended on failure too (what was given to it is
 * finished), then the promise rejects: the error a shard's reading stopped at when its end
 * message carries one (a truncated or corrupt capture: the output is then what `read` wrote
 * before failing with that error), PcapflowError INPUT_NOT_FOUND (no such stream),
 * INPUT_READ_FAILED (cannot connect, no stream info or consumer within `idleTimeout` ms while a
 * cluster elects its leaders, a message that is not pcapflow's, more out of order than
 * RunAssembler holds, `idleTimeout` ms without a message before the run is complete), or the
 * sink's error. Throws INVALID_OPTION for a bad run id, prefix, part or durable name.
 *
 * `part` K/M: every message is still read (NATS 2.9 takes one filter subject per consumer, and
 * the shards' order needs them all), but only the events of the connections whose BUCKET (the
 * subject's token) is b with b % M = K - 1 go to the sink: M consumers with K = 1..M write
 * disjoint outputs, each connection whole in one, whose union is the whole run.
 *
 * `durable` NAME: instead of an ordered consumer, the durable consumer NAME (openDurable). A
 * message is acknowledged (AckPolicy.All, so its floor) once every connection with a message up
 * to it is written (`ledger`'s records for a files sink, else the sink's write of its close
 * returned) and no end message is at or below it: the end messages are acknowledged with the
 * last message, after the sink finished. A consume stopped in any way and run again with the
 * same name starts after that floor (RunAssembler's `resume`): the connections it had not
 * written are written again from their open, those in the ledger are not written twice; with
 * `--sink stdout` or `ndjson` a connection written but not yet acknowledged is written again
 * (at least once). A run that stopped inside a cut data event of a written connection skips
 * its leading parts.
 */
export async function consumeRun(options: ConsumeRunOptions): Promise<ConsumeRunStats> {
  const runId = checkRunId(options.runId);
  const prefix = checkSubjectPrefix(options.prefix ?? 'pcapflow');
  const stream = options.stream ?? 'PCAPFLOW';
  const idleTimeout = options.idleTimeout ?? 30000;
  const batchEvents = options.batchEvents ?? 1024;
  const sink = options.sink;
  const part = options.part ?? null;
  if (part !== null) parsePart(`${part.index}/${part.count}`);
  const durable = options.durable === undefined ? null : part === null ? options.durable : `${options.durable}_${part.index}-${part.count}`;
  if (durable !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(durable)) throw new PcapflowError('INVALID_OPTION', `a durable consumer name is 1 to 64 letters, digits, _ or -, not ${JSON.stringify(durable)}`);
  const ledger = options.ledger ?? null;
  let assembler = new RunAssembler(options);
  let failure: unknown = null;
  let nc: NatsConnection | null = null;
  let batch: StreamEvent[] = [];
  let written = 0;
  let resumed = false;
  let floor = 0;

  // the connections of the part (open seen, close not yet), and, with durable, what holds the floor
  const inPart = (bucket: number): boolean => part === null || bucket % part.count === part.index - 1;
  const mine = new Set<number>();
  /** Connections (by number) and end messages (by `e:SHARD`) not yet written, each with the reply subject of the message delivered before its first. */
  const pins = new Map<number | string, string | null>();
  const committed = new Set<number>();
  let lastReply: string | null = null;
  let acked: string | null = null;
  let closing: number[] = [];
  const done = ledger?.done ?? new Set<number>();
  const ackFloor = (): void => {
    if (durable === null || nc === null || nc.isClosed()) return;
    const first = pins.values().next();
    const reply = first.done === true ? lastReply : first.value;
    if (reply !== null && reply !== acked) {
      nc.publish(reply, ACK);
      acked = reply;
    }
  };
  const commit = (conns: readonly number[]): void => {
    for (const c of conns) {
      committed.add(c);
      pins.delete(c);
    }
    ackFloor();
  };
  if (ledger !== null) ledger.onCommit = commit;
  const emit = (e: StreamEvent): void => {
    if (e.type === 'open') {
      if (!inPart(bucketOfOpen(e)) || done.has(e.conn)) return;
      mine.add(e.conn);
    } else if (!mine.has(e.conn)) {
      return;
    }
    if (e.type === 'close') {
      mine.delete(e.conn);
      if (durable !== null && ledger === null) closing.push(e.conn);
    }
    batch.push(e);
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const b = batch;
    const closed = closing;
    batch = [];
    closing = [];
    written += b.length;
    const ok = sink.write(b, (err) => {
      if (err === null || err === undefined) commit(closed);
    });
    if (!ok) await once(sink, 'drain');
  };
  try {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
    const servers = [...options.servers];
    try {
      nc = await connect({ servers, name: 'pcapflow-consume', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (err) {
      throw new PcapflowError('INPUT_READ_FAILED', `cannot connect to NATS at ${servers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const jsm = await jetstreamManager(nc);
    const api = nc;
    try {
      await whileElecting(idleTimeout, `stream ${stream}: no answer to a stream info request`, () => jsm.streams.info(stream));
    } catch (err) {
      if ((err as { name?: string }).name === 'StreamNotFoundError') throw new PcapflowError('INPUT_NOT_FOUND', `no stream ${stream} on ${servers.join(',')}`);
      throw err;
    }
    const filter = runSubjects(prefix, runId);
    let consumer: Consumer;
    if (durable === null) {
      consumer = await whileElecting(idleTimeout, `stream ${stream}: cannot create a consumer`, () => jetstream(api).consumers.get(stream, { filter_subjects: filter }));
    } else {
      ({ resumed, floor } = await openDurable(jsm, stream, durable, filter, idleTimeout));
      if (resumed) assembler = new RunAssembler({ ...options, resume: true });
      consumer = await whileElecting(idleTimeout, `stream ${stream}: no consumer ${durable}`, () => jetstream(api).consumers.get(stream, durable));
    }
    ledger?.open(resumed);
    // pulls of PULL_MESSAGES (up to 256 KiB each), each expiring after PULL_EXPIRES ms so that
    // a pull the server stopped serving is replaced well within the idle timeout
    const messages: ConsumerMessages = await consumer.consume({ max_messages: PULL_MESSAGES, expires: PULL_EXPIRES });
    let idled = false;
    const onIdle = (): void => {
      idled = true;
      void messages.close();
    };
    let timer = setTimeout(onIdle, idleTimeout);
    const prefixTokens = prefix.split('.').length;
    /** Resumed: the shards whose first message came (one that is not a later part of a cut event). */
    const started = new Set<string>();
    let lastSeq = 0;
    try {
      for await (const m of messages) {
        clearTimeout(timer); // the idle clock runs only while waiting for a message, not for the sink
        const d = decodeNatsMessage(m.subject, m.data, prefixTokens);
        let take = true;
        if (durable !== null) {
          if (resumed && !started.has(d.shard)) {
            // the tail of a cut data event whose connection was written before the floor
            if (d.kind === 'event' && d.part > 1) take = false;
            else started.add(d.shard);
          }
          if (take && m.seq > lastSeq) {
            if (d.kind === 'end') {
              const key = `e:${d.shard}`;
              if (!pins.has(key)) pins.set(key, lastReply);
            } else {
              const conn = d.conn;
              const bucket = Number(m.subject.split('.')[prefixTokens + 2]);
              if (inPart(bucket) && !done.has(conn) && !committed.has(conn) && !pins.has(conn)) pins.set(conn, lastReply);
            }
          }
          if (m.seq > lastSeq) {
            lastSeq = m.seq;
            lastReply = (m as unknown as { reply?: string }).reply || null; // JsMsgImpl's; not in the JsMsg interface
          }
        }
        if (take) assembler.push(d, emit);
        if (assembler.complete) break;
        if (batch.length >= batchEvents || m.info.pending === 0) {
          await flush();
          ackFloor();
        }
        timer = setTimeout(onIdle, idleTimeout);
      }
    } finally {
      clearTimeout(timer);
      void messages.close();
    }
    await flush();
    if (!assembler.complete) {
      const what =
        assembler.stats.messages === 0
          ? resumed
            ? `durable consumer ${durable} has no message left of run ${runId} (acknowledged up to stream sequence ${floor}: consumed to its end before?)`
            : `no message of run ${runId} (subjects ${filter}) in stream ${stream}`
          : `run ${runId} is incomplete: ${assembler.missing().join('; ')}`;
      throw new PcapflowError('INPUT_READ_FAILED', idled ? `${what} after ${idleTimeout / 1000} s without a message` : `${what} (the consumer stopped)`);
    }
    // a reading that stopped at a fault of its capture: the output is complete, the error is read's
    const [fault] = assembler.faults.values();
    if (fault !== undefined) {
      const code = (ERROR_CODES as readonly string[]).includes(fault.code) ? (fault.code as ErrorCode) : 'INPUT_READ_FAILED';
      failure = new PcapflowError(code, `the run's reading stopped at: ${fault.message}`);
    }
  } catch (err) {
    failure = err;
  }
  // finish what the sink was given, failure or not
  try {
    if (failure === null) await flush();
    if (!sink.writableEnded && !sink.destroyed) sink.end();
    await finished(sink);
  } catch (err) {
    failure ??= err;
  }
  ledger?.close();
  try {
    if (durable !== null && nc !== null && !nc.isClosed()) {
      // everything written: the end messages and all before the last message go (acknowledged and confirmed)
      if (failure === null && assembler.complete && lastReply !== null) {
        pins.clear();
        await nc.request(lastReply, ACK, { timeout: 5000 });
        acked = lastReply;
      } else {
        ackFloor();
        await nc.flush();
      }
    }
  } catch (err) {
    failure ??= new PcapflowError('INPUT_READ_FAILED', `consumer ${durable}: the last acknowledgement was not confirmed: ${(err as Error).message}`, { cause: err });
  } finally {
    if (nc !== null) await nc.close().catch(() => undefined);
  }
  if (failure !== null) throw failure;
  return { ...assembler.stats, shards: assembler.shards ?? 0, written, resumed, ackFloor: floor };
}
