/**
 * `pcapflow tls`: the TLS handshake of every TCP connection of the inputs that has one, one NDJSON
 * record per connection (or a line of text for people), through the library's ReadPipeline into
 * a TlsSink (src/sinks/tls-sink.ts). Takes read's input, filter, reorder and limit options.
 */
import { TlsSink } from '../sinks/tls-sink.js';
import type { CliIo } from './main.js';
import { parseChoice } from './options.js';
import { readPipelineOptions, runIntoSink, type ReadCommand } from './read-command.js';

export interface TlsCommand extends ReadCommand {
  format: string;
}

/** runTls runs `pcapflow tls`; resolves to the exit code. */
export async function runTls(args: TlsCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format ?? 'ndjson', ['ndjson', 'text'] as const);
  const options = readPipelineOptions(args, io);
  const sink = new TlsSink({ dest: io.stdout, format });
  return runIntoSink(args, io, options, sink, () => [
    ['tls', sink.parser.stats],
    ['output', sink.stats],
  ]);
}
