/**
 * `pcapflow consume`: read a run back from a NATS JetStream stream (what `read --sink nats`
 * published) into the sinks `read` has: each shard's events in the order they were published, so
 * `--sink files` writes what `read --sink files` would have. The work is the library's
 * consumeRun (src/sources/nats-source.ts): `--part K/M` keeps one part of the connections (M
 * consumes with K = 1..M split a run, each connection whole in one), `--durable NAME` reads
 * through a durable consumer that a later consume of the same name resumes (with `--sink files`
 * its connections.ndjson is consume's RecordsLedger: a connection listed there is written).
 */
import type { Argv } from 'yargs';
import { PcapflowError } from '../core/errors.js';
import { DEFAULT_MEMORY_BUDGET, planMemory } from '../core/memory-budget.js';
import { buildSink } from '../read-pipeline.js';
import { consumeRun, parsePart, RecordsLedger } from '../sources/nats-source.js';
import type { CliIo } from './main.js';
import { natsServers, type NatsArgs } from './nats-options.js';
import { parseSeconds } from './options.js';
import { natsOptions, sinkSpec, type StreamArgs } from './sink-options.js';
import { printStats } from './stats.js';

export interface ConsumeCommand extends NatsArgs, Pick<StreamArgs, 'sink' | 'out' | 'encoding' | 'direction' | 'maxOpenFiles' | 'subdirs' | 'renderThread'> {
  waitSeconds: string;
  stats: boolean;
  /** --durable NAME, --part K/M (consumeRun's durable and part). */
  durable?: string;
  part?: string;
}

/** consumeOptions: the NATS options, `--wait-seconds`, and the sink options of `read` that apply. */
export function consumeOptions(y: Argv): Argv {
  return natsOptions(y)
    .option('wait-seconds', { describe: 'fail when no message came for this many seconds and the run is not complete', type: 'string', default: '30' })
    .option('sink', { describe: 'where the streams go', choices: ['stdout', 'ndjson', 'files'], default: 'stdout' })
    .option('out', { alias: 'o', describe: 'output directory for --sink files', type: 'string' })
    .option('encoding', { describe: 'payload encoding for --sink ndjson', choices: ['base64', 'utf8', 'hex'], default: 'base64' })
    .option('direction', { describe: 'which directions --sink stdout prints', choices: ['c2s', 's2c', 'both'], default: 'both' })
    .option('max-open-files', { describe: 'file descriptors --sink files keeps open at once', type: 'string' })
    .option('subdirs', { describe: 'spread --sink files over subdirectories by connection number, as `read` does', type: 'string', choices: ['k', 'm', 'g'] })
    .option('stats', { describe: 'print the counters on stderr at the end', type: 'boolean', default: false })
    .option('part', {
      describe: 'write only part K of M of the connections (by the bucket in their subjects; each connection whole in one part): M consumes with K = 1..M give disjoint outputs that together are the run',
      type: 'string',
    })
    .option('durable', {
      describe:
        'read through the durable consumer NAME (NAME_K-M with --part), created when missing: a message is acknowledged once its connections are written, and a consume of the same name started again (after a kill, a failure) goes on from there; with --sink files exactly (connections.ndjson lists what is written), with stdout and ndjson at least once',
      type: 'string',
    })
    .example('pcapflow consume --nats-url 127.0.0.1:4222 --run-id R --part 1/2 --durable out1 --sink files -o out1/', 'half of the connections (run --part 2/2 -o out2/ beside it); resumes when run again')
    .example('pcapflow consume --nats-url 127.0.0.1:4222 --run-id run-0123456789abcdef --sink files -o out/', 'the files `read --sink files -o out/` would write');
}

/** runConsume runs `pcapflow consume`; resolves to the exit code. Throws INVALID_OPTION for bad options. */
export async function runConsume(args: ConsumeCommand, io: CliIo): Promise<number> {
  const servers = natsServers(args.natsUrl, 'consume');
  if (args.runId === undefined || args.runId === '') throw new PcapflowError('INVALID_OPTION', 'consume needs --run-id (read --sink nats prints it)');
  const part = args.part === undefined ? undefined : parsePart(String(args.part));
  const durable = args.durable === undefined || args.durable === '' ? undefined : String(args.durable);
  const spec = sinkSpec({ ...args, writeThread: false } as unknown as StreamArgs, io);
  // --durable --sink files: consume keeps connections.ndjson (what is written, for a restart)
  const ledger = durable !== undefined && spec.type === 'files' ? new RecordsLedger(spec.dir) : undefined;
  if (ledger !== undefined && spec.type === 'files') spec.recordsTo = ledger.recordsTo;
  const sink = buildSink(spec, planMemory(DEFAULT_MEMORY_BUDGET).heldOutputBytes, null);
  const stats = await consumeRun({
    ...(part === undefined ? {} : { part }),
    ...(durable === undefined ? {} : { durable }),
    ...(ledger === undefined ? {} : { ledger }),
    servers,
    stream: args.natsStream ?? 'PCAPFLOW',
    prefix: args.natsSubjectPrefix ?? 'pcapflow',
    runId: args.runId,
    sink,
    idleTimeout: parseSeconds('wait-seconds', args.waitSeconds ?? '30') * 1000,
  });
  if (args.stats) printStats(io.stderr, [['consume', stats], ['sink', (sink as { stats?: unknown }).stats]]);
  return 0;
}
