/**
 * nats-options: `read --sink nats` (the NatsSink its options describe, and the default run id)
 * and the options `consume` shares with it. Loaded only when one of them runs.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PcapflowError } from '../core/errors.js';
import { checkRunId, checkSubjectPrefix } from '../core/nats-wire.js';
import type { ShardSpec } from '../core/shard-key.js';
import { NatsSink } from '../sinks/nats-sink.js';
import type { CliIo } from './main.js';
import { parseCount } from './options.js';

/** The parsed NATS options (yargs camel-cases the names). */
export interface NatsArgs {
  natsUrl?: string;
  natsStream?: string;
  natsSubjectPrefix?: string;
  runId?: string;
  natsReplicas?: string;
  natsDuplicateWindow?: string;
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
 * natsSinkFor builds `read --sink nats`'s sink: the servers, stream, prefix, replicas and
 * duplicate window of its options, the shard of `shard`, and --run-id or defaultRunId (printed
 * on stderr, since `consume` needs it). Throws INVALID_OPTION.
 */
export function natsSinkFor(args: NatsArgs & { inputs: readonly string[] }, inputs: readonly string[], shard: ShardSpec | undefined, io: CliIo): NatsSink {
  const servers = natsServers(args.natsUrl, '--sink nats');
  const prefix = checkSubjectPrefix(args.natsSubjectPrefix ?? 'pcapflow');
  let runId = args.runId;
  if (runId === undefined || runId === '') {
    runId = defaultRunId(inputs, args as unknown as Record<string, unknown>);
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
  });
}
