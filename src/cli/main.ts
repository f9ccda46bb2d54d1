/**
 * main is the whole CLI: it parses argv with yargs, maps the options onto the library, runs the
 * pipeline and returns the exit code (0 ok, 1 a PcapflowError or other failure, 2 a usage
 * error). It never calls process.exit(), so output is flushed before the process ends.
 */
import type { Argv } from 'yargs';
import { isPcapflowError, PcapflowError } from '../core/errors.js';
import type { PacketsCommand } from './packets-command.js';
import type { HttpCommand } from './http-command.js';
import type { TlsCommand } from './tls-command.js';
import type { ReadCommand } from './read-command.js';
import { SHARD_HELP, STDIN_TOKEN } from './options.js';
import type { InterfacesCommand, LiveCommand } from './live-command.js';
import type { ConsumeCommand } from './consume-command.js';
import { plainArgs } from './plain-args.js';

/**
 * Each command's module (and the option definitions only one command needs) is imported when
 * that command runs or its options are built, not at start: `read` does not load the live
 * capture code, `packets` not the sinks. Each loader imports its module once.
 */
const once = <T>(load: () => Promise<T>): (() => Promise<T>) => {
  let p: Promise<T> | null = null;
  return () => (p ??= load());
};
const readCommand = once(() => import('./read-command.js'));
const packetsCommand = once(() => import('./packets-command.js'));
const httpCommand = once(() => import('./http-command.js'));
const tlsCommand = once(() => import('./tls-command.js'));
const liveCommand = once(() => import('./live-command.js'));
const consumeCommand = once(() => import('./consume-command.js'));
const sinkOptions = once(() => import('./sink-options.js'));
const reorderDefaults = once(async () => (await import('../core/reorder.js')).REORDER_DEFAULTS);

/** The module each command word needs; main starts importing it while it parses argv. */
const COMMAND_MODULES = new Map<string, () => Promise<unknown>>([
  ['read', readCommand],
  ['packets', packetsCommand],
  ['http', httpCommand],
  ['tls', tlsCommand],
  ['live', liveCommand],
  ['interfaces', liveCommand],
  ['consume', consumeCommand],
]);

/** Where the CLI reads and writes; tests pass their own streams. */
export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const defaultIo = (): CliIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });

class UsageError extends Error {}


const SCRIPT_NAME = 'pcapflow';

/**
 * main runs the CLI on argv (without `node` and the script) and resolves to the exit code.
 * `pcapflow read` with plain file names and options in the usual forms (`--name value`,
 * `--name=value`, `-o DIR`, `--flag`, `--no-flag`) is parsed without yargs (plainArgs, from the
 * same option definitions, to yargs' result); every other command line goes through yargs.
 */
export async function main(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  let action: (() => Promise<number>) | null = null;
  let helpText = '';
  prefetch(argv[0]);
  const words = argv.map((a) => (a === '-' ? STDIN_TOKEN : a));
  const plainRead = argv[0] === 'read' ? await plainArgs(SCRIPT_NAME, words, readOptions, STDIN_TOKEN) : null;
  if (plainRead !== null) return runAction(async () => (await readCommand()).runRead(plainRead as unknown as ReadCommand, io), io);
  const { loadYargs, skipHelpCache, wantsHelp } = await import('./yargs-loader.js');
  const yargs = await loadYargs(wantsHelp(argv));
  const parser = yargs()
    .scriptName(SCRIPT_NAME)
    .usage('pcapflow <command> [options]\n\nTurn packet captures into clean, ordered TCP byte streams.')
    .command(
      'read <inputs..>',
      'reassemble every TCP connection and write its byte streams',
      (y: Argv) => readOptions(y),
      (args) => {
        action = async () => (await readCommand()).runRead(args as unknown as ReadCommand, io);
      },
    )
    .command(
      'packets <inputs..>',
      'print one line per packet, like tcpdump -r (a debugging view)',
      (y: Argv) => packetsOptions(y),
      (args) => {
        action = async () => (await packetsCommand()).runPackets(args as unknown as PacketsCommand, io);
      },
    )
    .command(
      'http <inputs..>',
      'HTTP/1.x transactions of every TCP connection: one NDJSON record each (or text)',
      (y: Argv) => httpOptions(y),
      (args) => {
        action = async () => (await httpCommand()).runHttp(args as unknown as HttpCommand, io);
      },
    )
    .command(
      'tls <inputs..>',
      'TLS handshakes of every TCP connection: SNI, ALPN, versions, certificates, JA3 and JA4; one NDJSON record each (or text)',
      (y: Argv) => tlsOptions(y),
      (args) => {
        action = async () => (await tlsCommand()).runTls(args as unknown as TlsCommand, io);
      },
    )
    .command(
      'live <interface>',
      'capture on a network interface now and reassemble its TCP connections until SIGINT or SIGTERM',
      async (y: Argv) => (await liveCommand()).liveOptions(decodeOptions(y)),
      (args) => {
        action = async () => (await liveCommand()).runLive(args as unknown as LiveCommand, io);
      },
    )
    .command(
      'interfaces',
      'list the network interfaces live capture can use',
      async (y: Argv) => (await liveCommand()).interfacesOptions(y),
      (args) => {
        action = async () => (await liveCommand()).runInterfaces(args as unknown as InterfacesCommand, io);
      },
    )
    .command(
      'consume',
      'read a run back from a NATS JetStream stream (read --sink nats) into a sink, each shard in publish order',
      async (y: Argv) => (await consumeCommand()).consumeOptions(y),
      (args) => {
        action = async () => (await consumeCommand()).runConsume(args as unknown as ConsumeCommand, io);
      },
    )
    .demandCommand(1, 'name a command: read, http, tls, packets, live, interfaces or consume')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, (io.stdout as { columns?: number }).columns ?? 100))
    .exitProcess(false)
    .fail((msg: string | undefined, err: Error | undefined) => {
      if (err !== undefined && !(err instanceof UsageError)) throw err;
      throw new UsageError(msg ?? err?.message ?? 'bad usage');
    });
  try {
    await skipHelpCache(parser).parseAsync(words, {}, (_err: Error | undefined, _argv: unknown, output: string) => {
      helpText = output;
    });
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`pcapflow: ${err.message}\nTry 'pcapflow --help'.\n`);
      return 2;
    }
    return reportError(err, io);
  }
  if (helpText !== '') io.stdout.write(helpText.endsWith('\n') ? helpText : `${helpText}\n`);
  if (action === null) return 0; // --help or --version
  return runAction(action as () => Promise<number>, io);
}

/** runAction runs a parsed command: its exit code, or reportError's for what it throws. */
async function runAction(action: () => Promise<number>, io: CliIo): Promise<number> {
  try {
    return await action();
  } catch (err) {
    return reportError(err, io);
  }
}

/**
 * prefetch starts importing the module of the command `word` names (argv[0], where the command
 * usually is), so that it loads while yargs does; errors are left to the import that awaits it.
 */
function prefetch(word: string | undefined): void {
  const load = word === undefined ? undefined : COMMAND_MODULES.get(word);
  if (load !== undefined) load().catch(() => undefined);
}

function reportError(err: unknown, io: CliIo): number {
  if (isPcapflowError(err)) {
    io.stderr.write(`pcapflow: ${err.describe()}\n`);
    return err.code === 'INVALID_OPTION' || err.code === 'FILTER_SYNTAX' ? 2 : 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`pcapflow: INTERNAL: ${message}\n`);
  if (process.env.PCAPFLOW_DEBUG && err instanceof Error) io.stderr.write(`${err.stack ?? ''}\n`);
  return 1;
}

function inputsOption(y: Argv): Argv {
  return y
    .positional('inputs', {
      describe: 'capture files (pcap or pcapng, gzip-compressed or not), their packets merged by timestamp as mergecap does; - reads stdin',
      type: 'string',
      array: true,
    })
    .option('concat', { describe: 'read the inputs one after another, in the order given, instead of merging them by timestamp', type: 'boolean', default: false });
}

function decodeOptions(y: Argv): Argv {
  return y
    .option('on-error', {
      describe: 'what to do with a malformed packet: count and skip it, or stop with an error',
      choices: ['skip', 'fail'],
      default: 'skip',
    })
    .option('stats', { describe: "print every stage's counters on stderr at the end", type: 'boolean', default: false });
}

const FILTER_HELP = "keep only the packets a pcap filter selects, as tcpdump would ('tcp port 80 and host 10.0.0.1')";

function packetsOptions(y: Argv): Argv {
  return decodeOptions(inputsOption(y))
    .option('format', { describe: 'text for people, ndjson for tools', choices: ['text', 'ndjson'], default: 'text' })
    .option('filter', { describe: FILTER_HELP, type: 'string' })
    .option('shard', { describe: `${SHARD_HELP}; packets that are not TCP are in shard 1`, type: 'string' })
    .example('pcapflow packets x.pcap', 'one line per packet, like tcpdump -r')
    .example("pcapflow packets x.pcap --format ndjson | jq 'select(.skip)'", 'the packets pcapflow could not decode, and why');
}

/**
 * captureReadOptions: what `read`, `http` and `tls` share on top of `limits` (their sink or limit
 * options): the progress bar, the filter, the shard and the reorder window.
 */
async function captureReadOptions(y: Argv, limits: (y: Argv) => Argv): Promise<Argv> {
  const reorder = await reorderDefaults();
  return limits(decodeOptions(inputsOption(y)))
    .option('progress', { describe: 'progress bar on stderr (default: when stderr is a terminal)', type: 'boolean' })
    .option('filter', { describe: FILTER_HELP, type: 'string' })
    .option('shard', { describe: SHARD_HELP, type: 'string' })
    .option('reorder-window', {
      describe: 'put packets out of capture-time order back in order within this many packets (0: off); see also --reorder-seconds',
      type: 'string',
      default: String(reorder.packets),
    })
    .option('reorder-seconds', {
      describe: 'reorder only packets whose timestamps are out of order by at most this many seconds',
      type: 'string',
      default: String(reorder.seconds),
    });
}

/** httpOptions: read's input, filter, reorder and limit options, and http's own. */
export async function httpOptions(y: Argv): Promise<Argv> {
  const { limitOptions } = await sinkOptions();
  return (await captureReadOptions(y, (a) => limitOptions(a)))
    .option('format', { describe: 'ndjson for tools, text for people', choices: ['ndjson', 'text'], default: 'ndjson' })
    .option('extract', { describe: 'write each request and response body to a file in this directory (decoded; named c<conn>-t<trans>-<req|res>-<name>)', type: 'string' })
    .option('raw-bodies', { describe: 'with --extract, write the bodies as they came on the wire (de-chunked, not decoded)', type: 'boolean', default: false })
    .option('max-body-bytes', { describe: 'decode at most this many bytes of each body (k, m, g suffixes); decoding past 1000 decoded bytes per wire byte also stops', type: 'string', default: '64m' })
    .example('pcapflow http x.pcap | jq -c \'{conn, method: .request.method, uri: .request.uri, status: .response.status}\'', 'every request and its status')
    .example('pcapflow http x.pcap --format text', 'one line per transaction, for people');
}

/** tlsOptions: read's input, filter, reorder and limit options, and tls's own. */
export async function tlsOptions(y: Argv): Promise<Argv> {
  const { limitOptions } = await sinkOptions();
  return (await captureReadOptions(y, (a) => limitOptions(a)))
    .option('format', { describe: 'ndjson for tools, text for people', choices: ['ndjson', 'text'], default: 'ndjson' })
    .example("pcapflow tls x.pcap | jq -c '{conn, sni: .clientHello.sni, ja4, ja3: .ja3Hash}'", 'every TLS client: its server name and fingerprints')
    .example('pcapflow tls x.pcap --format text', 'one line per TLS connection, for people');
}

export async function readOptions(y: Argv): Promise<Argv> {
  const { streamOptions, natsSinkOptions } = await sinkOptions();
  return (await captureReadOptions(y, (a) => natsSinkOptions(streamOptions(a))))
    .option('workers', {
      describe: 'reassemble and write on this many worker threads (connections split by a hash of their addresses; --sink files or ndjson; the output is the same as with 0)',
      type: 'string',
      default: '0',
    })
    .example('pcapflow read x.pcap', 'print every connection for people')
    .example('pcapflow read x.pcap --sink ndjson | jq -c \'select(.type=="close")\'', 'one close record per connection')
    .example('pcapflow read x.pcap --sink files -o out/', 'one file per connection direction, named as tcpflow names them');
}

export { PcapflowError };
/** For bin/pcapflow.js, before it writes the bundle's code cache. */
export { restoreHeapFlags } from '../heap.js';
