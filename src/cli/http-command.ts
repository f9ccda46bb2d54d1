/**
 * `pcapflow http`: HTTP/1.x transactions out of every TCP connection of the inputs, one NDJSON
 * record per transaction (or a line of text for people), through the library's ReadPipeline
 * into an HttpSink (src/sinks/http-sink.ts). Takes read's input, filter, reorder and limit options.
 */
import { planMemory } from '../core/memory-budget.js';
import { HttpSink } from '../sinks/http-sink.js';
import type { CliIo } from './main.js';
import { parseChoice, parseCount } from './options.js';
import { readPipelineOptions, runIntoSink, type ReadCommand } from './read-command.js';

export interface HttpCommand extends ReadCommand {
  format: string;
  maxBodyBytes?: string;
  extract?: string;
  rawBodies?: boolean;
}

/** runHttp runs `pcapflow http`; resolves to the exit code. */
export async function runHttp(args: HttpCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format ?? 'ndjson', ['ndjson', 'text'] as const);
  const options = readPipelineOptions(args, io);
  const maxBodyBytes = parseCount('max-body-bytes', args.maxBodyBytes ?? '64m', 0, 2 ** 50, true);
  const extract = args.extract === undefined || args.extract === '' ? undefined : { dir: args.extract, raw: args.rawBodies === true };
  const memoryShare = planMemory(options.memoryBudget).heldOutputBytes; // the files sink's share: this sink holds instead
  const sink = new HttpSink({ dest: io.stdout, format, decode: { maxBodyBytes }, memoryShare, ...(extract === undefined ? {} : { extract }) });
  return runIntoSink(args, io, options, sink, () => [
    ['http', sink.parser.stats],
    ['decode', sink.decoder.stats],
    ['records', sink.records.stats],
    ['output', sink.stats],
  ]);
}
