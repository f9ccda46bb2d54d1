/** `pcapflow read`: reassemble every TCP connection and send its streams to a sink. */
import type { Writable } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import type { OnError } from '../core/stage.js';
import type { TcpDemuxOptions } from '../core/flow-table.js';
import type { TcpReassemblerOptions } from '../core/reassembler.js';
import type { PayloadEncoding } from '../core/format.js';
import { PacketDecodeTransform } from '../transforms/decode-transforms.js';
import { TcpDemuxTransform, TcpReassemblerTransform } from '../transforms/tcp-transforms.js';
import { openCaptures } from '../sources/capture-source.js';
import { StdoutSink } from '../sinks/stdout-sink.js';
import { NdjsonSink } from '../sinks/ndjson-sink.js';
import { FilesSink } from '../sinks/files-sink.js';
import { runPipeline } from '../pipeline.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames, parseChoice, parseCount, parseSeconds } from './options.js';

export interface ReadCommand {
  inputs: string[];
  sink: string;
  out?: string;
  encoding: string;
  direction: string;
  overlap: string;
  chunking: string;
  idleTimeout: string;
  maxConnections?: string;
  maxBufferPerConn?: string;
  maxBuffer?: string;
  maxOpenFiles?: string;
  onError: string;
  stats: boolean;
  progress?: boolean;
}

/** runRead runs `pcapflow read`; resolves to the exit code. */
export async function runRead(args: ReadCommand, io: CliIo): Promise<number> {
  const sinkKind = parseChoice('sink', args.sink, ['stdout', 'ndjson', 'files'] as const);
  const onError = parseChoice<OnError>('on-error', args.onError, ['skip', 'fail']);
  const demuxOptions: TcpDemuxOptions = { idleTimeout: parseSeconds('idle-timeout', args.idleTimeout) };
  if (args.maxConnections !== undefined) demuxOptions.maxConnections = parseCount('max-connections', args.maxConnections, 1, 1e8);
  const reassemblyOptions: TcpReassemblerOptions = {
    overlap: parseChoice('overlap', args.overlap, ['first', 'last'] as const),
    chunking: parseChoice('chunking', args.chunking, ['plain', 'push'] as const),
  };
  if (args.maxBufferPerConn !== undefined) {
    reassemblyOptions.maxBufferedPerConnection = parseCount('max-buffer-per-conn', args.maxBufferPerConn, 0, 2 ** 40, true);
  }
  if (args.maxBuffer !== undefined) reassemblyOptions.maxBufferedTotal = parseCount('max-buffer', args.maxBuffer, 0, 2 ** 40, true);

  let sink: Writable & { stats: object };
  if (sinkKind === 'files') {
    if (args.out === undefined || args.out === '') throw new PcapflowError('INVALID_OPTION', '--sink files needs an output directory: -o DIR');
    const maxOpenFiles = args.maxOpenFiles === undefined ? undefined : parseCount('max-open-files', args.maxOpenFiles, 1, 1e6);
    sink = new FilesSink(maxOpenFiles === undefined ? { dir: args.out } : { dir: args.out, maxOpenFiles });
  } else if (sinkKind === 'ndjson') {
    const encoding = parseChoice<PayloadEncoding>('encoding', args.encoding, ['base64', 'utf8', 'hex']);
    sink = new NdjsonSink({ dest: io.stdout, encoding });
  } else {
    const direction = parseChoice('direction', args.direction, ['c2s', 's2c', 'both'] as const);
    sink = new StdoutSink({ dest: io.stdout, direction });
  }

  const source = openCaptures(inputNames(args.inputs), { stdin: io.stdin });
  const decode = new PacketDecodeTransform({ onError });
  const demux = new TcpDemuxTransform(demuxOptions);
  const reassemble = new TcpReassemblerTransform(reassemblyOptions);
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, source) : null;
  try {
    await runPipeline([source, decode, demux, reassemble, sink], sink);
  } finally {
    progress?.stop();
    if (args.stats) {
      printStats(io.stderr, [
        ['reader', source.inputStats()],
        ['decoder', decode.core.stats],
        ['demux', demux.core.stats],
        ['reassembler', reassemble.core.stats],
        ['sink', sink.stats],
      ]);
    }
  }
  return 0;
}
