/**
 * `pcapflow live` and `pcapflow interfaces`: capture on a network interface now (libpcap through
 * the optional cap package) and reassemble what goes by, with the sinks and options of `read`.
 *
 * `live` prints `pcapflow: listening on DEV, link type NAME (N)` on stderr once the capture is
 * open, and runs until SIGINT or SIGTERM: the first signal closes the capture, every open
 * connection is flushed (reason eof), every file is finished and renamed, the stats are printed
 * when asked, and a summary line on stderr (liveSummary) gives the packets captured and those
 * dropped, and where; it resolves to 0. A second signal while that runs ends the process at once.
 * `--backend` chooses what captures (openLive in live-source.ts).
 *
 * `--sink nats` publishes into a JetStream stream (NatsSink) as `read --sink nats` does. Its
 * window of unacknowledged publishes (--nats-max-pending, --nats-max-pending-bytes) is the
 * backpressure: while it is full the sink takes no batch, the stages before it fill up, and the
 * capture's bounded queue (--max-queue with cap; the pipe and the kernel buffer with tcpdump)
 * takes the packets, then drops and counts them (the summary line and --stats); an event the
 * sink took is published until the stream acknowledges it, or the run fails with OUTPUT_FAILED
 * after --nats-retry-seconds. The run id is liveRunId's unless --run-id is given, and a run
 * whose messages are already in the stream is refused (checkNewRun).
 */
import type { Argv } from 'yargs';
import type { Writable } from 'node:stream';
import { runPipeline } from '../pipeline.js';
import { tuneHeap } from '../heap.js';
import { PcapWriteTransform } from '../sources/pcap-writer.js';
import { DEFAULT_LIVE_BUFFER, DEFAULT_MAX_QUEUED, LIVE_BACKENDS, openLive, type LiveSourceStats } from '../sources/live-source.js';
import { listInterfaces, loadCap, type CapAddress, type InterfaceInfo } from '../sources/live-binding.js';
import { isPcapflowError } from '../core/errors.js';
import { parseShard } from '../core/shard-key.js';
import { LiveDecodeTransform } from '../transforms/live-transforms.js';
import { ShardSelectTransform, TcpDemuxTransform, TcpReassemblerTransform } from '../transforms/tcp-transforms.js';
import type { CliIo } from './main.js';
import { parseChoice, parseCount, SHARD_HELP } from './options.js';
import { createSink, natsSinkOptions, parseStreamArgs, streamOptions, type StreamArgs } from './sink-options.js';
import type { NatsArgs } from './nats-options.js';
import { printStats } from './stats.js';

export interface LiveCommand extends StreamArgs, NatsArgs {
  interface: string;
  filter?: string;
  writePcap?: string;
  bufferSize: string;
  snaplen: string;
  maxQueue: string;
  backend: string;
  stats: boolean;
  /** --shard K/N: keep only that shard's connections (ShardSelectTransform after the demux). */
  shard?: string;
}

export interface InterfacesCommand {
  format: string;
}

/** liveOptions: the positional interface, the capture options, and the sink options of `read`. */
export function liveOptions(y: Argv): Argv {
  return natsSinkOptions(
    streamOptions(
      y.positional('interface', { describe: 'the device to capture on (see pcapflow interfaces); any = every device', type: 'string' }),
      'wall-clock time',
    ),
  )
    .option('filter', { describe: 'libpcap filter expression (pcap-filter(7)), applied in the kernel', type: 'string' })
    .option('shard', { describe: SHARD_HELP, type: 'string' })
    .option('write-pcap', { describe: 'also save the raw packets to this pcap file (replay it with pcapflow read)', type: 'string' })
    .option('buffer-size', { describe: 'kernel capture buffer in bytes (k, m, g suffixes)', type: 'string', default: `${DEFAULT_LIVE_BUFFER >> 20}m` })
    .option('snaplen', { describe: 'bytes kept of each packet, 64 to 65535', type: 'string', default: '65535' })
    .option('max-queue', {
      describe: 'captured bytes waiting for the pipeline before packets are dropped and counted (k, m, g suffixes)',
      type: 'string',
      default: `${DEFAULT_MAX_QUEUED >> 20}m`,
    })
    .option('backend', {
      describe: 'what captures: tcpdump (a tcpdump process writing pcap into a pipe; counts kernel drops), cap (libpcap in this process), auto (tcpdump if installed, else cap)',
      choices: [...LIVE_BACKENDS],
      default: 'auto',
    })
    .example("pcapflow live eth0 --filter 'tcp port 80' --sink files -o out/", 'one file per connection direction, until Ctrl-C')
    .example('pcapflow live any --sink ndjson --write-pcap session.pcap', 'NDJSON now, and the raw packets for pcapflow read later')
    .example('pcapflow live eth0 --sink nats --nats-url 10.0.0.5:4222', 'into a JetStream stream (prints the run id for pcapflow consume)');
}

/** interfacesOptions: `--format`. */
export function interfacesOptions(y: Argv): Argv {
  return y
    .option('format', { describe: 'text for people, ndjson for tools', choices: ['text', 'ndjson'], default: 'text' })
    .example('pcapflow interfaces', 'name, loopback or not, addresses');
}

/** runLive runs `pcapflow live`; resolves to the exit code once stopped by SIGINT or SIGTERM. */
export async function runLive(args: LiveCommand, io: CliIo): Promise<number> {
  const settings = parseStreamArgs(args);
  const bufferSize = parseCount('buffer-size', args.bufferSize, 1 << 16, 2 ** 31 - 1, true);
  const snaplen = parseCount('snaplen', args.snaplen, 64, 65535);
  const maxQueuedBytes = parseCount('max-queue', args.maxQueue, 1 << 16, 2 ** 40, true);
  const backend = parseChoice('backend', args.backend ?? 'auto', LIVE_BACKENDS);
  const device = String(args.interface);
  const shard = args.shard === undefined ? null : parseShard(String(args.shard));
  const nats = args.sink === 'nats' ? await import('./nats-options.js') : null;
  if (nats !== null && args.runId !== undefined && args.runId !== '') {
    await nats.checkNewRun(nats.natsServers(args.natsUrl, '--sink nats'), args.natsStream ?? 'PCAPFLOW', args.natsSubjectPrefix ?? 'pcapflow', args.runId, shard ?? undefined);
  }

  const source = await openLive({ device, filter: args.filter ?? '', bufferSize, snaplen, maxQueuedBytes }, backend);
  tuneHeap();
  let writer: PcapWriteTransform | null = null;
  let sink: Writable & { stats: object };
  try {
    if (args.writePcap !== undefined && args.writePcap !== '') {
      writer = new PcapWriteTransform(args.writePcap, { linkType: source.linkType, snaplen: source.snaplen });
    }
    const startMs = Date.now();
    sink =
      nats === null
        ? createSink(args, io)
        : nats.natsSinkFor(args, [], shard ?? undefined, io, { runId: () => nats.liveRunId(device, args as unknown as Record<string, unknown>, startMs) });
  } catch (err) {
    source.destroy();
    writer?.destroy();
    throw err;
  }
  const decode = new LiveDecodeTransform(settings.decoder);
  const demux = new TcpDemuxTransform(settings.demux);
  // Packets are stamped as they arrive, so no reorder window, and the reassembler does not hold
  // data for late packets (waitPackets counts packets, which a quiet link may not bring for long)
  const reassemble = new TcpReassemblerTransform({ ...settings.reassembly, waitPackets: 0 });
  // --shard: the demux sees every packet (numbers, idle expiry as without it); other shards' connections stop here
  const select = shard === null ? null : new ShardSelectTransform(shard);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals === 1) {
      source.stop();
      return;
    }
    removeHandlers();
    source.destroy(); // a tcpdump process ends with us
    process.kill(process.pid, signal); // the default action: end now
  };
  const removeHandlers = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  io.stderr.write(`pcapflow: listening on ${device}, link type ${source.linkName} (${source.linkType})${args.filter ? `, filter ${JSON.stringify(args.filter)}` : ''}\n`);

  const tcp = select === null ? [demux, reassemble] : [demux, select, reassemble];
  const streams = writer === null ? [source, decode, ...tcp, sink] : [source, writer, decode, ...tcp, sink];
  try {
    await runPipeline(streams, sink);
  } finally {
    removeHandlers();
    if (source.capturing) source.destroy();
    io.stderr.write(liveSummary(source.stats, reassemble.core.stats, nats === null ? null : (sink.stats as NatsPublished)));
    if (args.stats) {
      const stages: Array<readonly [string, unknown]> = [['capture', source.stats]];
      if (writer !== null) stages.push(['pcap', writer.core.stats]);
      stages.push(['decoder', decode.core.stats], ['demux', demux.core.stats]);
      if (select !== null) stages.push(['shard', select.core.stats]);
      stages.push(['reassembler', reassemble.core.stats], ['sink', sink.stats]);
      printStats(io.stderr, stages);
    }
  }
  return 0;
}

/**
 * liveSummary: the line `live` always prints at its end: what was captured, what was dropped and
 * where (pcapflow's queue with cap; the kernel and the interface as libpcap counted them with
 * tcpdump; cap cannot tell the kernel's), the gaps the streams show, and with --sink nats what
 * was published.
 */
export function liveSummary(st: LiveSourceStats, r: { gaps: number; missingBytes: number }, published: NatsPublished | null = null): string {
  const parts = [`captured ${st.packets} packets (${st.bytes} bytes) with ${st.backend}`];
  if (st.backend === 'cap') parts.push(`dropped ${st.dropped} (${st.droppedBytes} bytes) with the queue full (--max-queue)`);
  if (st.kernelDropped === null) parts.push('kernel drops not reported by the cap backend');
  else parts.push(`dropped by the kernel ${st.kernelDropped}${st.interfaceDropped === null ? '' : `, by the interface ${st.interfaceDropped}`} (libpcap's count)`);
  parts.push(`gaps in the streams ${r.gaps} (${r.missingBytes} bytes missing)`);
  if (published !== null) parts.push(`${published.events} events published, ${published.acked} messages acknowledged (${published.retries} publishes repeated, at most ${published.maxPending} waiting)`);
  return `pcapflow: ${parts.join('; ')}\n`;
}

/** What the summary says of a NATS sink (NatsSinkStats). */
export interface NatsPublished {
  events: number;
  acked: number;
  retries: number;
  maxPending: number;
}

/** runInterfaces runs `pcapflow interfaces`: one device per line (text or NDJSON). */
export async function runInterfaces(args: InterfacesCommand, io: CliIo): Promise<number> {
  const format = parseChoice('format', args.format, ['text', 'ndjson'] as const);
  let list: InterfaceInfo[];
  try {
    list = listInterfaces(await loadCap());
  } catch (err) {
    // without cap, what tcpdump lists (when it is there)
    const { findTcpdump, listTcpdumpInterfaces } = await import('../sources/tcpdump-source.js');
    if (!isPcapflowError(err) || err.code !== 'LIVE_UNAVAILABLE' || findTcpdump() === null) throw err;
    list = listTcpdumpInterfaces();
  }
  if (format === 'ndjson') {
    io.stdout.write(list.map((d) => `${JSON.stringify(d)}\n`).join(''));
    return 0;
  }
  const width = list.reduce((w, d) => Math.max(w, d.name.length), 0);
  const lines = list.map((d) => {
    const parts = [d.name.padEnd(width)];
    if (d.loopback) parts.push('loopback');
    if (d.addresses.length > 0) parts.push(d.addresses.map(formatAddress).join(' '));
    if (d.description !== null) parts.push(`(${d.description})`);
    return `${parts.join('  ').trimEnd()}\n`;
  });
  io.stdout.write(lines.join(''));
  return 0;
}

/** formatAddress: `addr/prefix` when the netmask is a contiguous mask, else `addr` alone. */
function formatAddress(a: CapAddress): string {
  const addr = a.addr ?? '?';
  const bits = a.netmask === undefined ? null : prefixLength(a.netmask);
  return bits === null ? addr : `${addr}/${bits}`;
}

/** prefixLength of a dotted IPv4 or colon IPv6 netmask; null when it is not a run of ones. */
export function prefixLength(mask: string): number | null {
  let bits = '';
  if (mask.includes(':')) {
    const halves = mask.split('::');
    if (halves.length > 2) return null;
    const head = halves[0] === '' || halves[0] === undefined ? [] : halves[0].split(':');
    const tail = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
    const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
    if (groups.length !== 8) return null;
    for (const g of groups) bits += parseInt(g || '0', 16).toString(2).padStart(16, '0');
  } else {
    const octets = mask.split('.');
    if (octets.length !== 4) return null;
    for (const o of octets) bits += Number(o).toString(2).padStart(8, '0');
  }
  const m = /^(1*)0*$/.exec(bits);
  return m === null ? null : m[1]!.length;
}
