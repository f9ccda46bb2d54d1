/**
 * `pcapflow http`: HTTP/1.x transactions out of every TCP connection of the inputs, one NDJSON
 * record per transaction (or a line of text for people), through the library's ReadPipeline
 * into an HttpSink (src/sinks/http-sink.ts). Takes read's input, filter, reorder and limit options.
 */
import { ReadPipeline } from '../read-pipeline.js';
import { HttpSink } from '../sinks/http-sink.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames, parseChoice } from './options.js';
import { reorderOptions, type ReadCommand } from './read-command.js';
import { parseStreamArgs } from './sink-options.js';

export interface HttpCommand extends ReadCommand {
  format: string;
}

/** runHttp runs `pcapflow http`; resolves to the exit code. */
export async function runHttp(args: HttpCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format ?? 'ndjson', ['ndjson', 'text'] as const);
  const { decoder, demux, reassembly } = parseStreamArgs(args);
  const sink = new HttpSink({ dest: io.stdout, format });
  const pipeline = new ReadPipeline(inputNames(args.inputs), {
    sink,
    stdin: io.stdin,
    order: args.concat === true ? 'concat' : 'time',
    ...(args.filter === undefined ? {} : { filter: args.filter }),
    decoder,
    demux,
    reassembly,
    reorder: reorderOptions(args),
    ...(reassembly.memoryBudget === undefined ? {} : { memoryBudget: reassembly.memoryBudget }),
  });
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, pipeline) : null;
  try {
    await pipeline.run();
  } finally {
    progress?.stop();
    if (args.stats) printStats(io.stderr, [...Object.entries(pipeline.stats).filter(([k]) => k !== 'sink'), ['http', sink.parser.stats], ['records', sink.records.stats], ['output', sink.stats]]);
  }
  return 0;
}
