/**
 * `pcapflow tls`: the TLS handshake of every TCP connection of the inputs that has one, one NDJSON
 * record per connection (or a line of text for people), through the library's ReadPipeline into
 * a TlsSink (src/sinks/tls-sink.ts). Takes read's input, filter, reorder and limit options.
 */
import { ReadPipeline } from '../read-pipeline.js';
import { TlsSink } from '../sinks/tls-sink.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames, parseChoice } from './options.js';
import { readPipelineOptions, type ReadCommand } from './read-command.js';

export interface TlsCommand extends ReadCommand {
  format: string;
}

/** runTls runs `pcapflow tls`; resolves to the exit code. */
export async function runTls(args: TlsCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format ?? 'ndjson', ['ndjson', 'text'] as const);
  const options = readPipelineOptions(args, io);
  const sink = new TlsSink({ dest: io.stdout, format });
  const pipeline = new ReadPipeline(inputNames(args.inputs), { ...options, sink });
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, pipeline) : null;
  try {
    await pipeline.run();
  } finally {
    progress?.stop();
    if (args.stats) {
      const stages = Object.entries(pipeline.stats).filter(([k]) => k !== 'sink');
      printStats(io.stderr, [...stages, ['tls', sink.parser.stats], ['output', sink.stats]]);
    }
  }
  return 0;
}
