/** `pcapflow read`: reassemble every TCP connection and send its streams to a sink. */
import { PacketDecoder } from '../core/packet-decoder.js';
import { zlibInflate } from '../transforms/decode-transforms.js';
import { StageTransform } from '../transforms/stage-transform.js';
import { FilterTransform } from '../transforms/filter-transform.js';
import { TcpDemuxTransform, TcpReassemblerTransform } from '../transforms/tcp-transforms.js';
import { openCaptures } from '../sources/capture-source.js';
import { runPipeline } from '../pipeline.js';
import { printStats } from './stats.js';
import { Progress } from './progress.js';
import type { CliIo } from './main.js';
import { inputNames } from './options.js';
import { createSink, parseStreamArgs, type StreamArgs } from './sink-options.js';

export interface ReadCommand extends StreamArgs {
  inputs: string[];
  /** pcap filter expression; packets that do not match are dropped before decoding. */
  filter?: string;
  stats: boolean;
  progress?: boolean;
}

/** runRead runs `pcapflow read`; resolves to the exit code. */
export async function runRead(args: ReadCommand, io: CliIo): Promise<number> {
  const { decoder: decoderOptions, demux: demuxOptions, reassembly: reassemblyOptions } = parseStreamArgs(args);
  const filter = args.filter !== undefined && args.filter !== '' ? new FilterTransform(args.filter) : null;
  const sink = createSink(args, io);

  // Queues of one batch (a whole read chunk's packets) before the demux, as after it (see
  // tcp-transforms.ts): deeper ones only hold more packets past V8's young generation, which cost
  // a SYN flood some 50 MB of RSS and a fifth of its time.
  const source = openCaptures(inputNames(args.inputs), { stdin: io.stdin, highWaterMark: 1 });
  const decode = new StageTransform(new PacketDecoder({ ...decoderOptions, inflate: zlibInflate }), { readableHighWaterMark: 1, writableHighWaterMark: 1 });
  const demux = new TcpDemuxTransform(demuxOptions);
  const reassemble = new TcpReassemblerTransform(reassemblyOptions);
  const progress = (args.progress ?? io.stderr.isTTY === true) ? new Progress(io.stderr, source) : null;
  try {
    await runPipeline(filter === null ? [source, decode, demux, reassemble, sink] : [source, filter, decode, demux, reassemble, sink], sink);
  } finally {
    progress?.stop();
    if (args.stats) {
      printStats(io.stderr, [
        ['reader', source.inputStats()],
        ...(filter === null ? [] : [['filter', filter.core.stats] as [string, object]]),
        ['decoder', decode.core.stats],
        ['demux', demux.core.stats],
        ['reassembler', reassemble.core.stats],
        ['sink', sink.stats],
      ]);
    }
  }
  return 0;
}
