/**
 * consumeRun: `pcapflow consume` as a library call. Reads one run back from a NATS JetStream
 * stream (what NatsSink published), puts each shard's events back in publish order
 * (RunAssembler, core/nats-wire.ts) and writes them, in StreamEvent[] batches, into a sink. The
 * @nats-io client packages are imported when it runs.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ERROR_CODES, type ErrorCode, PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';
import { checkRunId, checkSubjectPrefix, decodeNatsMessage, RunAssembler, type RunAssemblerOptions, type RunAssemblerStats, runSubjects } from '../core/nats-wire.js';

/** Messages per pull request of the consumer (128 of at most ~260 KiB each: 33 MiB at worst, ~200 KiB usually). */
const PULL_MESSAGES = 128;
/** Milliseconds a pull request lives before the client makes a new one. */
const PULL_EXPIRES = 5000;

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
}

export interface ConsumeRunStats extends RunAssemblerStats {
  /** Shards in the run (from their end messages). */
  shards: number;
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
 * sink's error. Throws INVALID_OPTION for a bad run id or prefix.
 */
export async function consumeRun(options: ConsumeRunOptions): Promise<ConsumeRunStats> {
  const runId = checkRunId(options.runId);
  const prefix = checkSubjectPrefix(options.prefix ?? 'pcapflow');
  const stream = options.stream ?? 'PCAPFLOW';
  const idleTimeout = options.idleTimeout ?? 30000;
  const batchEvents = options.batchEvents ?? 1024;
  const sink = options.sink;
  const assembler = new RunAssembler(options);
  let failure: unknown = null;
  let nc: NatsConnection | null = null;
  let batch: StreamEvent[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const b = batch;
    batch = [];
    if (!sink.write(b)) await once(sink, 'drain');
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
    const consumer = await whileElecting(idleTimeout, `stream ${stream}: cannot create a consumer`, () => jetstream(api).consumers.get(stream, { filter_subjects: filter }));
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
    try {
      for await (const m of messages) {
        clearTimeout(timer); // the idle clock runs only while waiting for a message, not for the sink
        assembler.push(decodeNatsMessage(m.subject, m.data, prefixTokens), (e) => batch.push(e));
        if (assembler.complete) break;
        if (batch.length >= batchEvents || m.info.pending === 0) await flush();
        timer = setTimeout(onIdle, idleTimeout);
      }
    } finally {
      clearTimeout(timer);
      void messages.close();
    }
    await flush();
    if (!assembler.complete) {
      const what = assembler.stats.messages === 0 ? `no message of run ${runId} (subjects ${filter}) in stream ${stream}` : `run ${runId} is incomplete: ${assembler.missing().join('; ')}`;
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
  } finally {
    if (nc !== null) await nc.close().catch(() => undefined);
  }
  // finish what the sink was given, failure or not
  try {
    if (failure === null) await flush();
    if (!sink.writableEnded && !sink.destroyed) sink.end();
    await finished(sink);
  } catch (err) {
    failure ??= err;
  }
  if (failure !== null) throw failure;
  return { ...assembler.stats, shards: assembler.shards ?? 0 };
}
