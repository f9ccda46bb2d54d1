/**
 * nats-options: `read --sink nats` (the NatsSink its options describe, and the default run id)
 * and the options `consume` shares with it. Loaded only when one of them runs.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { PcapflowError } from '../core/errors.js';
import { checkRunId, checkSubjectPrefix, shardToken } from '../core/nats-wire.js';
import type { ShardSpec } from '../core/shard-key.js';
import { NatsSink } from '../sinks/nats-sink.js';
import type { CliIo } from './main.js';
import { parseCount, parseSeconds } from './options.js';

/** The parsed NATS options (yargs camel-cases the names). */
export interface NatsArgs {
  natsUrl?: string;
  natsStream?: string;
  natsSubjectPrefix?: string;
  runId?: string;
  natsReplicas?: string;
  natsDuplicateWindow?: string;
  natsMaxPending?: string;
  natsMaxPendingBytes?: string;
  natsRetrySeconds?: string;
}

/** The options of `read` that change its events: part of the default run id (not --shard: the shards of a job share their run id). */
const RUN_OPTIONS = [
  'concat',
  'filter',
  'onError',
  'overlap',
  'chunking',
  'idleTimeout',
  'maxConnections',
  'maxBufferPerConn',
  'maxBuffer',
  'memoryBudget',
  'maxBytes',
  'reorderWindow',
  'reorderSeconds',
] as const;

/**
 * defaultRunId: `run-` and 16 hex digits of SHA-256 over the inputs (absolute path, size and
 * modification time of each, in order) and the options that change the events (RUN_OPTIONS),
 * so that running the same job again gives the same id. Throws INVALID_OPTION for stdin (no
 * stable identity: give --run-id) and INPUT_NOT_FOUND for an input that cannot be stat'ed.
 */
export function defaultRunId(inputs: readonly string[], args: Readonly<Record<string, unknown>>): string {
  const files = inputs.map((name) => {
    if (name === '-') throw new PcapflowError('INVALID_OPTION', '--sink nats reading stdin needs --run-id (a stream has no identity to derive one from)');
    try {
      const st = statSync(name);
      return [resolve(name), st.size, st.mtimeMs];
    } catch (err) {
      throw new PcapflowError('INPUT_NOT_FOUND', `cannot open ${name}: ${(err as Error).message}`, { file: name, cause: err });
    }
  });
  const opts = RUN_OPTIONS.map((k) => [k, args[k] ?? null]);
  const hash = createHash('sha256').update(JSON.stringify({ v: 1, files, opts })).digest('hex');
  return `run-${hash.slice(0, 16)}`;
}

/** The options of `live` that change its events: part of the default live run id, with the device. */
const LIVE_RUN_OPTIONS = ['filter', 'snaplen', 'onError', 'overlap', 'chunking', 'idleTimeout', 'maxConnections', 'maxBufferPerConn', 'maxBuffer', 'memoryBudget', 'maxBytes'] as const;

/**
 * liveRunId: the default run id of `live --sink nats`: `live-` and 16 hex digits of SHA-256 over
 * the device, the options that change the events (LIVE_RUN_OPTIONS), the host name and the
 * start time in milliseconds. A live capture never sees the same packets twice, so each session
 * is a run of its own: a second session under the same id would number its messages from 1
 * again, and the stream would drop them as copies of the first session's.
 */
export function liveRunId(device: string, args: Readonly<Record<string, unknown>>, startMs: number): string {
  const opts = LIVE_RUN_OPTIONS.map((k) => [k, args[k] ?? null]);
  const hash = createHash('sha256').update(JSON.stringify({ v: 1, live: device, opts, host: hostname(), start: startMs })).digest('hex');
  return `live-${hash.slice(0, 16)}`;
}

/**
 * checkNewRun: the stream holds no message of this shard of run `runId` yet (live capture: a
 * session must not reuse a run, see liveRunId). Resolves when the stream or the run is missing;
 * rejects with INVALID_OPTION when messages are there, OUTPUT_FAILED when the servers cannot be
 * asked.
 */
export async function checkNewRun(servers: readonly string[], stream: string, prefix: string, runId: string, shard: ShardSpec | undefined): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const subjects = `${prefix}.${runId}.${shardToken(shard?.index ?? 1, shard?.count ?? 1)}.>`;
  let nc;
  try {
    nc = await connect({ servers: [...servers], name: 'pcapflow-live' });
  } catch (err) {
    throw new PcapflowError('OUTPUT_FAILED', `cannot connect to NATS at ${servers.join(',')}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const jsm = await jetstreamManager(nc);
    let messages = 0;
    try {
      // with a subjects filter the server lists the run's subjects that hold messages
      messages = Object.keys((await jsm.streams.info(stream, { subjects_filter: subjects })).state.subjects ?? {}).length;
    } catch (err) {
      if ((err as { name?: string }).name !== 'StreamNotFoundError') throw new PcapflowError('OUTPUT_FAILED', `NATS stream ${stream}: ${(err as Error).message}`, { cause: err });
    }
    if (messages > 0) {
      throw new PcapflowError('INVALID_OPTION', `stream ${stream} already holds messages of ${subjects}: a live capture cannot continue a run (its messages would be dropped as copies); give a new --run-id`);
    }
  } finally {
    await nc.close();
  }
}

/** natsServers: --nats-url as a list of servers. Throws INVALID_OPTION when missing or empty. */
export function natsServers(url: string | undefined, what: string): string[] {
  const servers = (url ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (servers.length === 0) throw new PcapflowError('INVALID_OPTION', `${what} needs --nats-url (one or more servers, comma-separated)`);
  return servers;
}

/**
 * natsSinkFor builds the sink of `read --sink nats` and `live --sink nats`: the servers, stream,
 * prefix, replicas, duplicate window, window of unacknowledged publishes and retry time of its
 * options, the shard of `shard`, and --run-id or else `live.runId()` (liveRunId) or
 * defaultRunId of `inputs` (printed on stderr, since `consume` needs it); with `live`, each
 * batch's data is published at its end (flushEachBatch). Throws INVALID_OPTION.
 */
export function natsSinkFor(args: NatsArgs, inputs: readonly string[], shard: ShardSpec | undefined, io: CliIo, live?: { runId: () => string }): NatsSink {
  const servers = natsServers(args.natsUrl, '--sink nats');
  const prefix = checkSubjectPrefix(args.natsSubjectPrefix ?? 'pcapflow');
  let runId = args.runId;
  if (runId === undefined || runId === '') {
    runId = live === undefined ? defaultRunId(inputs, args as unknown as Record<string, unknown>) : live.runId();
    io.stderr.write(`pcapflow: --run-id ${runId}\n`);
  }
  return new NatsSink({
    servers,
    stream: args.natsStream ?? 'PCAPFLOW',
    prefix,
    runId: checkRunId(runId),
    shard: shard?.index ?? 1,
    shards: shard?.count ?? 1,
    replicas: parseCount('nats-replicas', args.natsReplicas ?? '1', 1, 5),
    duplicateWindow: parseCount('nats-duplicate-window', args.natsDuplicateWindow ?? '600', 1, 7 * 86400) * 1000,
    maxPending: parseCount('nats-max-pending', args.natsMaxPending ?? '1024', 1, 1 << 20),
    maxPendingBytes: parseCount('nats-max-pending-bytes', args.natsMaxPendingBytes ?? '16m', 1, 2 ** 40, true),
    retryFor: Math.max(1, Math.round(parseSeconds('nats-retry-seconds', args.natsRetrySeconds ?? '60') * 1000)),
    // live capture: no data held past a batch (a live run is never rerun, see checkNewRun)
    flushEachBatch: live !== undefined,
  });
}
