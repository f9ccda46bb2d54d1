/** `pcapflow packets`: one line per packet, text or NDJSON. */
import type { OnError } from '../core/stage.js';
import type { Packet } from '../core/packet.js';
import { packetJson, packetText } from '../core/packet-format.js';
import { PacketShard, parseShard } from '../core/shard-key.js';
import { PacketDecodeTransform } from '../transforms/decode-transforms.js';
import { StageTransform } from '../transforms/stage-transform.js';
import { FilterTransform } from '../transforms/filter-transform.js';
import { BatchSink } from '../sinks/byte-sink.js';
import { openCaptures } from '../sources/capture-source.js';
import { runPipeline } from '../pipeline.js';
import { printStats } from './stats.js';
import type { CliIo } from './main.js';
import { inputNames, parseChoice } from './options.js';

export interface PacketsCommand {
  inputs: string[];
  /** Read the inputs one after another instead of merging them by timestamp. */
  concat?: boolean;
  format: string;
  /** pcap filter expression; only matching packets are printed. */
  filter?: string;
  /** `K/N`: only shard K of N (PacketShard). */
  shard?: string;
  onError: string;
  stats: boolean;
}

/** runPacketsCommand decodes every packet of the inputs and prints it; resolves to the exit code. */
export async function runPackets(args: PacketsCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format, ['text', 'ndjson'] as const);
  const onError = parseChoice<OnError>('on-error', args.onError, ['skip', 'fail']);
  const filter = args.filter !== undefined && args.filter !== '' ? new FilterTransform(args.filter) : null;
  const source = openCaptures(inputNames(args.inputs), { stdin: io.stdin, order: args.concat === true ? 'concat' : 'time' });
  const decode = new PacketDecodeTransform({ keepSkipped: true, onError });
  const shard = args.shard === undefined || args.shard === '' ? null : new StageTransform(new PacketShard(parseShard(args.shard)));
  const render =
    format === 'ndjson'
      ? (batch: readonly Packet[]): string => {
          let s = '';
          for (const p of batch) s += `${JSON.stringify(packetJson(p))}\n`;
          return s;
        }
      : (batch: readonly Packet[]): string => {
          let s = '';
          for (const p of batch) s += `${packetText(p)}\n`;
          return s;
        };
  const sink = new BatchSink<readonly Packet[]>(render, { dest: io.stdout });
  try {
    await runPipeline([source, ...(filter === null ? [] : [filter]), decode, ...(shard === null ? [] : [shard]), sink], sink);
  } finally {
    if (args.stats) {
      printStats(io.stderr, [
        ['reader', source.inputStats()],
        ...(filter === null ? [] : [['filter', filter.core.stats] as [string, object]]),
        ['decoder', decode.core.stats],
        ...(shard === null ? [] : [['shard', (shard.core as PacketShard).stats] as [string, object]]),
        ['output', sink.stats],
      ]);
    }
  }
  return 0;
}
