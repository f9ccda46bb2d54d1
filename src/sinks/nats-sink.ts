/**
 * NatsSink: `--sink nats`. Publishes every event to a NATS JetStream stream, as
 * core/nats-wire.ts lays them out (subjects, message ids, headers, payloads), and waits for the
 * stream's acknowledgement of each. The @nats-io client packages are imported when the sink
 * opens, so that nothing else pays for them.
 */
import { Writable } from 'node:stream';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import { type ErrorCode, PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';
import { NATS_MAX_DATA_BYTES, NatsWireEncoder, type RunFault, runSubjects, subjectCovers, type WireMessage } from '../core/nats-wire.js';

/**
 * CAPTURE_FAULTS: the errors a capture file causes by its bytes alone, raised at the same place
 * each time it is read (with `--on-error fail` for the decoding ones): a run that stopped at one
 * is complete as `read` would have written it.
 */
const CAPTURE_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CAPTURE_BAD_MAGIC',
  'CAPTURE_EMPTY',
  'CAPTURE_COMPRESSED',
  'CAPTURE_TRUNCATED_COMPRESSED',
  'CAPTURE_CORRUPT_COMPRESSED',
  'PCAP_BAD_VERSION',
  'PCAP_RECORD_TOO_LARGE',
  'PCAP_TRUNCATED_RECORD',
  'PCAPNG_BAD_BLOCK',
  'PCAPNG_BAD_SECTION',
  'PCAPNG_TRUNCATED_BLOCK',
  'LINK_UNSUPPORTED',
  'LINK_MALFORMED',
  'IPV4_BAD_HEADER',
  'IPV6_BAD_HEADER',
  'IP_FRAGMENT_INVALID',
  'TCP_BAD_HEADER',
]);

export interface NatsSinkOptions {
  /** NATS servers (`host:port` or `nats://host:port`); the client fails over among them. */
  servers: readonly string[];
  /** The JetStream stream (default PCAPFLOW). Created when missing, never altered when present. */
  stream?: string;
  /** The subject prefix (default `pcapflow`); a stream created here takes `PREFIX.>`. */
  prefix?: string;
  /** The run id: one subject token (core/nats-wire.ts checkRunId); the same for a restart of the same job. */
  runId: string;
  /** This process's shard, 1 to `shards` (default 1 of 1). */
  shard?: number;
  shards?: number;
  /** Replicas of a stream created here (default 1). */
  replicas?: number;
  /** Duplicate window of a stream created here, in milliseconds (default 10 minutes). */
  duplicateWindow?: number;
  /** Publishes not yet acknowledged at most (default 1024): the write callback waits past it. */
  maxPending?: number;
  /** Payload bytes not yet acknowledged at most (default 16 MiB; one message may pass it when none is pending). */
  maxPendingBytes?: number;
  /** Milliseconds to wait for one acknowledgement before publishing again (default 5000). */
  ackTimeout?: number;
  /** Milliseconds a message may be retried in all (timeouts, no responders, 503s) before the run fails (default 60000). */
  retryFor?: number;
  /** Data bytes per message at most (default 256 KiB, less when the server's max_payload asks). */
  maxDataBytes?: number;
  /**
   * Publish the data events a batch ends with at the end of the batch (live capture: packing
   * adds no latency) rather than once the run of adjacent data events they pack into ends
   * (default false: the messages are then the same whatever the batching, which a rerun of the
   * same job needs so that its message ids name the same content; core/nats-wire.ts).
   */
  flushEachBatch?: boolean;
}

export interface NatsSinkStats {
  /** Events taken. */
  events: number;
  /** Messages published and acknowledged (a data message packs adjacent data events; a cut one counts each part). */
  acked: number;
  /** Acknowledgements that said the stream already had the message (a restart or a retry within the duplicate window). */
  duplicates: number;
  /** Payload bytes acknowledged. */
  bytes: number;
  /** Publishes repeated after a timeout, no responders or a 503. */
  retries: number;
  /** Data events cut into several messages. */
  cut: number;
  /** The most publishes waiting for their acknowledgement at once. */
  maxPending: number;
  /** Whether this sink created the stream. */
  created: boolean;
}

/** reason: the server's (or client's) words for `err`, with the JetStream error code when there is one. */
function reason(err: unknown): string {
  const e = err as { message?: string; name?: string; code?: unknown };
  const code = e.name === 'JetStreamApiError' && typeof e.code === 'number' ? ` (err_code ${e.code})` : '';
  return `${e.message ?? String(err)}${code}`;
}

const textDecoder = new TextDecoder();
/** Frames handed to the client at once at most (NatsSink.queue); a longer frame goes alone. */
const RUN_BYTES = 128 * 1024;

/**
 * The client's protocol handler (`nc.protocol`, an internal of @nats-io/nats-core 3.x, checked at
 * open): sendCommand queues bytes on its outbound buffer (kept across a reconnect and sent after
 * it), flushPending writes that buffer to the socket, as one write when it holds one buffer.
 */
interface RawProtocol {
  sendCommand(cmd: Uint8Array): void;
  flushPending(): void;
  noMorePublishing: boolean;
}

/** A message published and not yet settled (acknowledged, or failed for good). */
interface InFlight {
  m: WireMessage;
  size: number;
  /** When it was last sent (ms; or when its back-off ends, while retryTimer is set). */
  sentAt: number;
  /** When retrying it stops (ms). */
  deadline: number;
  /** The next back-off (ms). */
  wait: number;
  retryTimer: NodeJS.Timeout | null;
}

/**
 * NatsSink is an object-mode Writable of StreamEvent[] batches (highWaterMark 1). Opening
 * (_construct) connects, and creates the stream (subjects `PREFIX.>`, the replicas and duplicate
 * window given) when it is missing; an existing stream is used as it is when its subjects cover
 * `PREFIX.RUN.>`, else the sink fails. Each batch is encoded at once (runs of adjacent
 * contiguous data events of one connection and direction packed into data messages; the last
 * pack of a batch held for the next unless flushEachBatch) and its messages are published while fewer
 * than `maxPending` messages and `maxPendingBytes` bytes wait for their acknowledgement; past
 * that, the write callback waits until the window has drained to half (backpressure: the client
 * library itself never pushes back). Messages are published asynchronously (core publishes with
 * a reply subject on one inbox subscription, `INBOX.SEQ`, the acknowledgements matched by SEQ;
 * one timer finds those unacknowledged for `ackTimeout`), not as a request each, and as the
 * frames NatsWireEncoder made: runs of adjacent frames go to the client's outbound buffer whole
 * and are written to the socket at once (its protocol handler's sendCommand and flushPending,
 * no copy; nc.publish when the client lacks them, which copies). A publish that
 * times out or finds no responder (or a 503) is repeated with the same message id (so the
 * stream keeps one copy), backing off from 100 ms to 2 s, for `retryFor` ms in all.
 * _final publishes the end-of-run message (not after abandon()), waits for every
 * acknowledgement and closes the connection. Fails with PcapflowError OUTPUT_FAILED and the server's reason (cannot connect,
 * wrong stream, stream full, message too large, retries exhausted); throws INVALID_OPTION from
 * the constructor for bad options.
 */
export class NatsSink extends Writable {
  readonly stats: NatsSinkStats = { events: 0, acked: 0, duplicates: 0, bytes: 0, retries: 0, cut: 0, maxPending: 0, created: false };
  readonly stream: string;
  readonly prefix: string;
  readonly runId: string;
  private wire: NatsWireEncoder;
  private readonly options: NatsSinkOptions;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly ackTimeout: number;
  private readonly retryFor: number;
  private nc: NatsConnection | null = null;
  /** The client's protocol handler, when it has the shape RawProtocol names (else publishes go through nc.publish). */
  private raw: RawProtocol | null = null;
  /** A MsgHdrs whose encoding is the given header block (made in open, with the client's class; for nc.publish). */
  private makeHeaders: ((block: Uint8Array) => MsgHdrs) | null = null;
  /** Frames queued (queue) and not yet handed to the client: adjacent in one arena, so one view. */
  private run: Uint8Array | null = null;
  /** The acknowledgements' subject prefix (`_INBOX.<nuid>.`); a publish's reply subject is this and its SEQ. */
  private inbox = '';
  /** The publishes not yet settled by SEQ, in order of sentAt. */
  private readonly inFlight = new Map<number, InFlight>();
  private ticker: NodeJS.Timeout | null = null;
  private pending = 0;
  private pendingBytes = 0;
  private waiters: (() => void)[] = [];
  private waking = false;
  private failure: PcapflowError | null = null;
  private abandoned = false;
  /** The capture fault the reading stopped at (see abandon), carried by the end message. */
  private fault: RunFault | undefined;

  constructor(options: NatsSinkOptions) {
    super({ objectMode: true, highWaterMark: 1 });
    this.options = options;
    if (options.servers.length === 0) throw new PcapflowError('INVALID_OPTION', 'the NATS sink needs at least one server');
    this.stream = options.stream ?? 'PCAPFLOW';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(this.stream)) throw new PcapflowError('INVALID_OPTION', `a stream name is 1 to 64 letters, digits, _ or -, not ${JSON.stringify(this.stream)}`);
    this.prefix = options.prefix ?? 'pcapflow';
    this.wire = this.encoder(options.maxDataBytes ?? NATS_MAX_DATA_BYTES);
    this.runId = this.wire.runId;
    this.maxPending = positive('maxPending', options.maxPending ?? 1024);
    this.maxPendingBytes = positive('maxPendingBytes', options.maxPendingBytes ?? 16 * 1024 * 1024);
    this.ackTimeout = positive('ackTimeout', options.ackTimeout ?? 5000);
    this.retryFor = positive('retryFor', options.retryFor ?? 60000);
    const replicas = options.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new PcapflowError('INVALID_OPTION', `replicas must be a whole number from 1 to 5, got ${replicas}`);
  }

  private encoder(maxDataBytes: number, reply?: string): NatsWireEncoder {
    return new NatsWireEncoder({ prefix: this.prefix, runId: this.options.runId, shard: this.options.shard ?? 1, shards: this.options.shards ?? 1, maxDataBytes, ...(reply === undefined ? {} : { reply }) });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.open().then(
      () => callback(),
      (err: unknown) => callback(this.outputError(err, 'cannot open the stream')),
    );
  }

  /** open connects, checks or creates the stream, subscribes to the acknowledgements' inbox and starts the timeout timer. */
  private async open(): Promise<void> {
    const { connect, createInbox, MsgHdrsImpl } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    this.makeHeaders = (block) => {
      const h = new MsgHdrsImpl();
      h.encode = () => block;
      return h;
    };
    const servers = [...this.options.servers];
    try {
      this.nc = await connect({ servers, name: 'pcapflow', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (err) {
      throw new PcapflowError('OUTPUT_FAILED', `cannot connect to NATS at ${servers.join(',')}: ${reason(err)}`, { cause: err });
    }
    const proto = (this.nc as unknown as { protocol?: Partial<RawProtocol> }).protocol;
    if (typeof proto?.sendCommand === 'function' && typeof proto.flushPending === 'function' && typeof proto.noMorePublishing === 'boolean') this.raw = proto as RawProtocol;
    // a message is its data, a JSON head (under 1 KiB) and headers: keep it within max_payload
    const room = this.nc.info === undefined ? Infinity : this.nc.info.max_payload - 4096;
    this.inbox = `${createInbox()}.`;
    this.wire = this.encoder(Math.max(1024, Math.min(room, this.wire.maxDataBytes)), this.inbox);
    const jsm = await jetstreamManager(this.nc);
    await this.ensureStream(jsm);
    this.nc.subscribe(`${this.inbox}*`, { callback: (err, msg) => this.onAck(err, msg) });
    this.ticker = setInterval(() => this.tick(), Math.max(10, Math.min(250, this.ackTimeout / 4)));
    this.ticker.unref();
  }

  /** ensureStream: the stream exists (created here when missing) and takes this run's subjects. */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    let info: StreamInfo | null = await streamInfo(jsm, this.stream);
    if (info === null) {
      const duplicateWindow = this.options.duplicateWindow ?? 10 * 60 * 1000;
      try {
        info = await jsm.streams.add({
          name: this.stream,
          subjects: [`${this.prefix}.>`],
          num_replicas: this.options.replicas ?? 1,
          duplicate_window: duplicateWindow * 1e6,
        });
        this.stats.created = true;
      } catch (err) {
        // another process of the run may have created it meanwhile
        info = await streamInfo(jsm, this.stream);
        if (info === null) throw new PcapflowError('OUTPUT_FAILED', `cannot create stream ${this.stream}: ${reason(err)}`, { cause: err });
      }
    }
    const want = runSubjects(this.prefix, this.runId);
    const subjects = info.config.subjects ?? [];
    if (!subjects.some((p) => subjectCovers(p, want))) {
      throw new PcapflowError(
        'OUTPUT_FAILED',
        `stream ${this.stream} exists with subjects ${JSON.stringify(subjects)}, which do not take ${want}: name another stream or subject prefix (pcapflow never alters a stream)`,
      );
    }
  }

  /**
   * abandon: the reading failed (ReadPipeline calls it on a fault before this sink, before the
   * stages flush). A fault of the capture itself (CAPTURE_FAULTS: a truncated or corrupt file,
   * the same every time the same file is read) is published: the events flushed after it go on,
   * and the end message carries it, so that `consume` gives what `read` gives and fails as it
   * does. After any other fault (an abort, a read error, a signal) the events written from now on
   * are dropped and _final publishes no end message: the stream keeps a prefix of the run's
   * messages, each the same as a whole run's of that SEQ, and running the job again with the same
   * run id completes the run with no wrong copy (consume reports it incomplete meanwhile).
   */
  abandon(reason?: unknown): void {
    if (this.fault !== undefined || this.abandoned) return;
    if (reason instanceof PcapflowError && CAPTURE_FAULTS.has(reason.code)) this.fault = { code: reason.code, message: reason.describe().slice(reason.code.length + 2) };
    else this.abandoned = true;
  }

  override _write(batch: readonly StreamEvent[], _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure !== null) return callback(this.failure);
    if (this.abandoned) return callback();
    const out: WireMessage[] = [];
    const cut = this.wire.cut;
    try {
      for (const e of batch) this.wire.encode(e, out);
      if (this.options.flushEachBatch === true) this.wire.flush(out);
    } catch (err) {
      return callback(err as Error);
    }
    this.stats.events += batch.length;
    this.stats.cut += this.wire.cut - cut;
    this.send(out).then(
      () => callback(),
      (err: unknown) => callback(err as Error),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    const work = async (): Promise<void> => {
      if (this.failure !== null) throw this.failure;
      if (!this.abandoned) await this.send(this.wire.end(this.fault));
      while (this.pending > 0) await this.room();
      if (this.failure !== null) throw this.failure;
      this.stopTimers();
      const nc = this.nc;
      this.nc = null;
      await nc?.drain();
    };
    work().then(
      () => callback(),
      (err: unknown) => callback(this.outputError(err, 'cannot finish the run')),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stopTimers();
    const nc = this.nc;
    this.nc = null;
    if (nc === null) return callback(error);
    nc.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  private stopTimers(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    for (const f of this.inFlight.values()) {
      if (f.retryTimer !== null) clearTimeout(f.retryTimer);
      f.retryTimer = null;
    }
  }

  /** send starts publishing `msgs` in order, waiting for room in the window before each; rejects with the sink's failure. */
  private async send(msgs: readonly WireMessage[]): Promise<void> {
    for (const m of msgs) {
      if (this.full(m)) {
        this.handOver();
        while (this.full(m)) await this.room();
      }
      if (this.failure !== null) throw this.failure;
      this.publish(m);
    }
    this.handOver();
  }

  /** full: `m` must wait for room in the window (the sink has not failed, and the window is full by count or by bytes with it). */
  private full(m: WireMessage): boolean {
    return this.failure === null && this.pending > 0 && (this.pending >= this.maxPending || this.pendingBytes + m.payload.length > this.maxPendingBytes);
  }

  /** room resolves when the window has drained (see settled). */
  private room(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** publish sends `m` (its frame: headers, reply subject INBOX.SEQ), counting it in the window. */
  private publish(m: WireMessage): void {
    const size = m.payload.length;
    this.pending++;
    this.pendingBytes += size;
    if (this.pending > this.stats.maxPending) this.stats.maxPending = this.pending;
    const f: InFlight = { m, size, sentAt: 0, deadline: Date.now() + this.retryFor, wait: 100, retryTimer: null };
    this.inFlight.set(m.seq, f);
    this.transmit(f, true);
  }

  /**
   * transmit (re)publishes `f` and moves it to the end of inFlight (which stays in order of
   * sentAt). The first time, its frame joins the run of frames queued (queue); a repeat sends a
   * copy of the frame, since the frame's arena may be reused once any copy is acknowledged while
   * this one still waits in the socket.
   */
  private transmit(f: InFlight, first: boolean): void {
    const nc = this.nc;
    if (nc === null) return this.fail(f, new PcapflowError('OUTPUT_FAILED', `stream ${this.stream}: the connection is closed`));
    f.sentAt = Date.now();
    this.inFlight.delete(f.m.seq);
    this.inFlight.set(f.m.seq, f);
    try {
      if (this.raw !== null) {
        // what nc.publish checks (it cannot be reached with the encoder's maxDataBytes set in open)
        const max = nc.info?.max_payload;
        if (max !== undefined && f.m.headerBlock.length + f.m.payload.length > max) throw new Error(`max_payload size exceeded (${max} bytes)`);
        if (first) return this.queue(f.m.frame);
        this.handOver();
        return this.toClient(f.m.frame.slice());
      }
      if (this.makeHeaders === null) throw new PcapflowError('OUTPUT_FAILED', 'the NATS sink is not open');
      const payload = first ? f.m.payload : f.m.payload.slice();
      nc.publish(f.m.subject, payload, { reply: `${this.inbox}${f.m.seq}`, headers: this.makeHeaders(first ? f.m.headerBlock : f.m.headerBlock.slice()) });
    } catch (err) {
      this.fail(f, err);
    }
  }

  /**
   * queue adds `frame` to the run of frames not yet handed to the client, which grows while each
   * frame follows the last in memory (NatsWireEncoder carves them one after the other), and is
   * handed over (handOver) once it reaches RUN_BYTES, at a frame that does not follow, and at the
   * end of send(): the client then writes each run with one socket write and no copy.
   */
  private queue(frame: Uint8Array): void {
    const r = this.run;
    if (r !== null && r.buffer === frame.buffer && r.byteOffset + r.length === frame.byteOffset) {
      this.run = new Uint8Array(r.buffer, r.byteOffset, r.length + frame.length);
    } else {
      this.handOver();
      this.run = frame;
    }
    if (this.run.length >= RUN_BYTES) this.handOver();
  }

  /** handOver hands the queued run of frames to the client; a failure fails every message waiting. */
  private handOver(): void {
    const r = this.run;
    if (r === null) return;
    this.run = null;
    try {
      this.toClient(r);
    } catch (err) {
      for (const f of [...this.inFlight.values()]) this.fail(f, err);
    }
  }

  /** toClient hands `bytes` (whole frames) to the client's outbound buffer and has it written to the socket now (when connected). */
  private toClient(bytes: Uint8Array): void {
    const raw = this.raw!;
    if (this.nc === null || this.nc.isClosed() || raw.noMorePublishing) throw new PcapflowError('OUTPUT_FAILED', `stream ${this.stream}: the connection is closed`);
    raw.sendCommand(bytes);
    raw.flushPending();
  }

  /** onAck takes a reply on the inbox: a PubAck, a JetStream error or a no-responders status. */
  private onAck(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.failure ??= new PcapflowError('OUTPUT_FAILED', `stream ${this.stream}: the acknowledgement subscription failed: ${reason(err)}`, { cause: err });
      return this.wake();
    }
    const f = this.inFlight.get(Number(msg.subject.slice(this.inbox.length)));
    if (f === undefined) return; // a late reply to a publish already settled (it was repeated)
    if (msg.data.length === 0 && msg.headers?.code === 503) return this.retry(f, 'no responders (no stream takes the subject yet)');
    let ack: { stream?: unknown; duplicate?: unknown; error?: { code?: unknown; err_code?: unknown; description?: unknown } };
    try {
      ack = JSON.parse(textDecoder.decode(msg.data)) as typeof ack;
    } catch (e) {
      return this.fail(f, new Error(`an acknowledgement that is not JSON`, { cause: e }));
    }
    const e = ack.error;
    if (e !== undefined && e !== null) {
      const why = `${String(e.description ?? 'error')}${typeof e.err_code === 'number' ? ` (err_code ${e.err_code})` : ''}`;
      // 503s are a leader election or a stream catching up, except a store failure (err_code 10077)
      if (e.code === 503 && e.err_code !== 10077) return this.retry(f, why);
      return this.fail(f, new Error(why));
    }
    if (typeof ack.stream !== 'string' || ack.stream === '') return this.fail(f, new Error('an invalid acknowledgement'));
    if (f.retryTimer !== null) clearTimeout(f.retryTimer);
    this.stats.acked++;
    this.stats.bytes += f.size;
    if (ack.duplicate === true) this.stats.duplicates++;
    // the stream has it: a copy the client may still hold (a repeat) would be dropped as a duplicate
    this.wire.release(f.m.payload);
    this.settle(f);
  }

  /** tick repeats every publish unacknowledged for ackTimeout (oldest first; inFlight is in send order). */
  private tick(): void {
    const old = Date.now() - this.ackTimeout;
    for (const f of this.inFlight.values()) {
      if (f.sentAt > old) break;
      if (f.retryTimer === null) this.retry(f, `no acknowledgement within ${this.ackTimeout} ms`);
    }
  }

  /** retry publishes `f` again with its message id after a back-off (100 ms doubling to 2 s), failing past its deadline or once the sink failed. */
  private retry(f: InFlight, why: string): void {
    if (f.retryTimer !== null) return;
    if (this.failure !== null || this.nc === null) return this.fail(f, new Error(why));
    const now = Date.now();
    if (now + f.wait > f.deadline) {
      return this.fail(f, new PcapflowError('OUTPUT_FAILED', `stream ${this.stream} did not acknowledge ${f.m.msgId} within ${Math.round(this.retryFor / 1000)} s: ${why}`));
    }
    this.stats.retries++;
    // out of the timeout scan's way until sent again
    f.sentAt = now + f.wait;
    this.inFlight.delete(f.m.seq);
    this.inFlight.set(f.m.seq, f);
    f.retryTimer = setTimeout(() => {
      f.retryTimer = null;
      if (this.inFlight.get(f.m.seq) === f) this.transmit(f, false);
    }, f.wait);
    f.wait = Math.min(f.wait * 2, 2000);
  }

  private fail(f: InFlight, err: unknown): void {
    if (f.retryTimer !== null) clearTimeout(f.retryTimer);
    f.retryTimer = null;
    this.failure ??= isPcapflow(err) ? err : new PcapflowError('OUTPUT_FAILED', `stream ${this.stream} did not take message ${f.m.msgId} on ${f.m.subject}: ${reason(err)}`, { cause: err });
    this.settle(f);
  }

  /**
   * settle takes `f` out of the window. The waiting writer is woken once the window has drained
   * to half (or is empty, or the sink failed), and from a microtask, so that it refills the
   * window with many publishes at a time (which the client sends in one write) rather than one
   * per acknowledgement.
   */
  private settle(f: InFlight): void {
    if (this.inFlight.get(f.m.seq) !== f) return;
    this.inFlight.delete(f.m.seq);
    this.pending--;
    this.pendingBytes -= f.size;
    if (this.pending === 0 || this.failure !== null || (this.pending * 2 <= this.maxPending && this.pendingBytes * 2 <= this.maxPendingBytes)) this.wake();
  }

  private wake(): void {
    if (this.waking || this.waiters.length === 0) return;
    this.waking = true;
    queueMicrotask(() => {
      this.waking = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  private outputError(err: unknown, what: string): PcapflowError {
    if (isPcapflow(err)) return err;
    return new PcapflowError('OUTPUT_FAILED', `NATS stream ${this.stream}: ${what}: ${reason(err)}`, { cause: err });
  }
}

function isPcapflow(err: unknown): err is PcapflowError {
  return err instanceof PcapflowError;
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new PcapflowError('INVALID_OPTION', `${name} must be a whole number above 0, got ${v}`);
  return v;
}

/** streamInfo: the stream's info, or null when it does not exist. */
async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if ((err as { name?: string }).name === 'StreamNotFoundError') return null;
    throw err;
  }
}
