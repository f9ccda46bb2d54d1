/**
 * tcpdump-source: live capture through a tcpdump process (`--backend tcpdump`): tcpdump captures
 * on the device and writes pcap into a pipe (`tcpdump -i DEV -s SNAPLEN -B KIB -U -w - -- FILTER`),
 * the CaptureReader reads it, and the packets come out as the same stream of `Packet[]` batches
 * and ClockTick objects a LiveSource gives.
 *
 * What it has that cap has not: libpcap's statistics (tcpdump prints them when it ends: packets
 * the filter passed, dropped by the kernel, dropped by the interface), the kernel's timestamps,
 * and no native build in pcapflow. What it costs: a process, and every packet copied through the
 * pipe. Backpressure is the pipe's: when the pipeline is slow the reader pauses, tcpdump blocks
 * on its write, and the kernel buffer (`--buffer-size`) holds the packets; when that is full the
 * kernel drops them and counts them (`kernelDropped`). Nothing is dropped in pcapflow (`dropped`
 * stays 0, `--max-queue` does not apply).
 *
 * Clock ticks: tcpdump asks libpcap for packets at least once a second (its default timeout), so
 * a packet may reach the pipeline up to about a second after it was captured; a tick says "every
 * packet captured before T came before this tick", so it is stamped TICK_LAG_MS before now.
 *
 * Errors: LIVE_UNAVAILABLE when tcpdump is not found or cannot run; INPUT_NOT_FOUND when it cannot
 * capture on the device (no such device, no permission); INVALID_OPTION for a filter it rejects;
 * LINK_UNSUPPORTED for a link type the decoder does not handle (all before the stream starts);
 * INPUT_READ_FAILED when tcpdump dies during the capture (after every packet it wrote).
 *
 * Test hook: the environment variable PCAPFLOW_TCPDUMP names the program to run instead of the
 * tcpdump found on PATH (`PCAPFLOW_TCPDUMP=/nonexistent` shows a machine without it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CaptureReader } from '../core/capture-reader.js';
import { PcapflowError, isPcapflowError } from '../core/errors.js';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IEEE802_11_RADIOTAP,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NFLOG,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
} from '../core/frame-decoder.js';
import { ClockTick } from '../core/live-idle.js';
import type { Packet } from '../core/packet.js';
import type { CapAddress, InterfaceInfo } from './live-binding.js';
import { DEFAULT_LIVE_BUFFER, LiveClock, liveStats, QueueMeter, tickTimer, type LiveCapture, type LiveSourceOptions, type LiveSourceStats } from './live-source.js';

/** The environment variable naming the tcpdump program to run (a test hook; default: found on PATH). */
export const TCPDUMP_ENV = 'PCAPFLOW_TCPDUMP';
/** How far behind now a tick is stamped: tcpdump's libpcap timeout (1 s) plus the pipe. */
export const TICK_LAG_MS = 1500;
/** Bytes of tcpdump's stderr kept for error messages and its statistics. */
const STDERR_KEPT = 64 * 1024;

/** tcpdump's names of link types (pcap_datalink_val_to_name) for those the decoder handles. */
const TCPDUMP_LINK_NAMES: ReadonlyMap<string, number> = new Map([
  ['EN10MB', LINKTYPE_ETHERNET],
  ['LINUX_SLL', LINKTYPE_LINUX_SLL],
  ['LINUX_SLL2', LINKTYPE_LINUX_SLL2],
  ['RAW', LINKTYPE_RAW],
  ['NULL', LINKTYPE_NULL],
  ['LOOP', LINKTYPE_LOOP],
  ['IPV4', LINKTYPE_IPV4],
  ['IPV6', LINKTYPE_IPV6],
  ['IEEE802_11_RADIO', LINKTYPE_IEEE802_11_RADIOTAP],
  ['NFLOG', LINKTYPE_NFLOG],
]);

/** findTcpdump: the program PCAPFLOW_TCPDUMP names (null when it is not executable), else the first executable tcpdump on PATH or in the sbin folders; null when none. */
export function findTcpdump(env: NodeJS.ProcessEnv = process.env): string | null {
  const named = env[TCPDUMP_ENV];
  if (named !== undefined && named !== '') return executable(named) ? named : null;
  const dirs = [...(env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/usr/local/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (dir !== '' && executable(path.join(dir, 'tcpdump'))) return path.join(dir, 'tcpdump');
  }
  return null;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** tcpdumpArgs: the command line for a capture with these options (filter after `--`, so it is never an option). */
export function tcpdumpArgs(device: string, filter: string, snaplen: number, bufferSize: number): string[] {
  const args = ['-i', device, '-s', String(snaplen), '-B', String(Math.max(1, Math.ceil(bufferSize / 1024))), '-U', '-n', '-w', '-'];
  if (filter.trim() !== '') args.push('--', filter);
  return args;
}

/** What tcpdump's "listening on" line says: the link type's name, or null before the line came. */
export function parseListening(stderr: string): { linkName: string } | null {
  const m = /^tcpdump: listening on .*?, link-type (\S+)/m.exec(stderr);
  return m === null ? null : { linkName: m[1]! };
}

/** The statistics tcpdump prints when it ends; null for a count it did not print. */
export interface TcpdumpCounts {
  captured: number | null;
  received: number | null;
  kernelDropped: number | null;
  interfaceDropped: number | null;
}

/** parseCounts reads tcpdump's closing statistics ("N packets dropped by kernel", ...) from its stderr. */
export function parseCounts(stderr: string): TcpdumpCounts {
  const count = (what: string): number | null => {
    const all = [...stderr.matchAll(new RegExp(`^(\\d+) packets? ${what}$`, 'gm'))];
    return all.length === 0 ? null : Number(all[all.length - 1]![1]);
  };
  return {
    captured: count('captured'),
    received: count('received by filter'),
    kernelDropped: count('dropped by kernel'),
    interfaceDropped: count('dropped by interface'),
  };
}

/** tcpdumpFailure: the PcapflowError for a tcpdump that ended before it listened, from what it said. */
export function tcpdumpFailure(device: string, filter: string, stderr: string, exit: string): PcapflowError {
  const said = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^tcpdump: WARNING/i.test(l))
    .join('; ');
  const why = said === '' ? `tcpdump ${exit} without a word` : `tcpdump says: ${said}`;
  if (filter !== '' && /filter expression|syntax error|parse filter|unknown host|illegal|invalid/i.test(said)) {
    return new PcapflowError('INVALID_OPTION', `--filter ${JSON.stringify(filter)}: ${why}`);
  }
  return new PcapflowError('INPUT_NOT_FOUND', `cannot capture on ${device}: ${why}`, { file: device });
}

/**
 * TcpdumpSource: an object-mode Readable of `Packet[]` batches that a tcpdump process captured,
 * numbered from 1, with the kernel's timestamps and lengths, and a ClockTick every `tickInterval`
 * ms while the consumer keeps up (stamped TICK_LAG_MS before now). Open it with openTcpdump.
 *
 * `stop()` asks tcpdump to end (SIGINT): it writes what it holds and its statistics, the stream
 * ends after its last packet, and `stats` then has the kernel's counts. `destroy()` kills it.
 */
export class TcpdumpSource extends Readable implements LiveCapture {
  readonly stats: LiveSourceStats;
  readonly linkType: number;
  readonly linkName: string;
  readonly snaplen: number;
  private readonly child: ChildProcess;
  private readonly reader: CaptureReader;
  private readonly clock = new LiveClock();
  private readonly meter = new QueueMeter();
  private readonly timer: NodeJS.Timeout | null;
  private stderr: string;
  private open = true;
  private stopping = false;
  private finished = false;
  private readonly onBatch = (batch: Packet[]): void => this.deliver(batch);
  private readonly killOnExit = (): void => {
    this.child.kill('SIGKILL');
  };

  /** Use openTcpdump: `child` must have said it is listening, with this link type. */
  constructor(child: ChildProcess, stderr: string, device: string, linkName: string, linkType: number, snaplen: number, tickInterval: number) {
    super({ objectMode: true, highWaterMark: 16 });
    this.child = child;
    this.stderr = stderr;
    this.linkName = linkName;
    this.linkType = linkType;
    this.snaplen = snaplen;
    this.reader = new CaptureReader({ file: `tcpdump on ${device}`, maxBatch: 256 });
    this.stats = liveStats('tcpdump', device, linkType);
    child.on('error', () => {}); // a failed kill: 'close' still comes
    const out = child.stdout!;
    out.on('data', (chunk: Buffer) => this.onData(chunk));
    child.stderr!.on('data', (chunk: Buffer) => this.onStderr(chunk));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => this.onClose(code, signal));
    process.once('exit', this.killOnExit);
    this.timer = tickTimer(tickInterval, () => this.onTick());
  }

  get capturing(): boolean {
    return this.open;
  }

  /** stop asks tcpdump to end; the stream ends once it has (idempotent). */
  stop(): void {
    if (!this.open) return;
    this.open = false;
    this.stopping = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.child.stdout!.resume();
    this.child.kill('SIGINT');
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.ended();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    callback(err);
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    try {
      this.reader.write(chunk, this.onBatch);
    } catch (err) {
      this.fail(err);
    }
  }

  private deliver(batch: Packet[]): void {
    let bytes = 0;
    for (const p of batch) {
      bytes += p.caplen;
      if (p.len > p.caplen) this.stats.cut++;
    }
    this.stats.packets += batch.length;
    this.stats.bytes += bytes;
    this.stats.batches++;
    this.meter.trim(this.readableLength);
    this.meter.enqueue(bytes);
    this.stats.queuedBytes = this.meter.queued;
    this.stats.peakQueuedBytes = this.meter.peak;
    if (!this.push(batch)) this.child.stdout!.pause();
  }

  private onStderr(chunk: Buffer): void {
    this.stderr = keptStderr(this.stderr, chunk);
  }

  /** ended: the capture is over (tcpdump ended or the stream was destroyed): no more ticks, no exit hook. */
  private ended(): void {
    this.open = false;
    if (this.timer !== null) clearInterval(this.timer);
    process.removeListener('exit', this.killOnExit);
  }

  private onTick(): void {
    if (!this.open || this.destroyed) return;
    this.meter.trim(this.readableLength);
    this.stats.queuedBytes = this.meter.queued;
    if (this.readableLength > 0) return; // behind: the packets themselves move the demux's clock
    const now = { tsSec: 0, tsNsec: 0 };
    this.clock.stamp(now);
    let sec = now.tsSec - Math.floor(TICK_LAG_MS / 1000);
    let nsec = now.tsNsec - (TICK_LAG_MS % 1000) * 1e6;
    if (nsec < 0) {
      nsec += 1e9;
      sec--;
    }
    this.stats.ticks++;
    this.meter.enqueue(0);
    this.push(new ClockTick(sec, nsec));
  }

  private onClose(code: number | null, signal: NodeJS.Signals | null): void {
    this.ended();
    if (this.destroyed || this.finished) return;
    this.finished = true;
    const counts = parseCounts(this.stderr);
    this.stats.received = counts.received;
    this.stats.kernelDropped = counts.kernelDropped;
    this.stats.interfaceDropped = counts.interfaceDropped;
    try {
      this.reader.end(this.onBatch);
    } catch (err) {
      // a record cut by tcpdump's end: the packets before it were delivered
      if (!this.stopping) return this.fail(err);
    }
    if (!this.stopping || (code !== 0 && signal !== 'SIGINT')) {
      const exit = code !== null ? `exited with status ${code}` : `was killed by ${String(signal)}`;
      const said = lastLines(this.stderr);
      return this.fail(new PcapflowError('INPUT_READ_FAILED', `the capture ended: tcpdump ${exit}${said === '' ? '' : ` (${said})`}`, { file: this.stats.device }));
    }
    this.push(null);
  }

  private fail(err: unknown): void {
    this.open = false;
    this.destroy(isPcapflowError(err) ? err : new PcapflowError('INPUT_READ_FAILED', `reading tcpdump's output: ${String(err)}`, { cause: err }));
  }
}

/** keptStderr: `kept` with `chunk` of tcpdump's stderr added, its last STDERR_KEPT characters. */
function keptStderr(kept: string, chunk: Buffer): string {
  const all = kept + chunk.toString('utf8');
  return all.length > STDERR_KEPT ? all.slice(-STDERR_KEPT) : all;
}

function lastLines(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^tcpdump: listening on/.test(l) && !/^\d+ packets? /.test(l))
    .slice(-3)
    .join('; ');
}

/**
 * openTcpdump starts tcpdump on the device and resolves once it listens (its "listening on" line
 * on stderr) with a TcpdumpSource; rejects with the errors the file comment lists. `maxQueuedBytes`
 * does not apply (see the file comment).
 */
export function openTcpdump(options: LiveSourceOptions): Promise<TcpdumpSource> {
  const snaplen = options.snaplen ?? 65535;
  const bufferSize = options.bufferSize ?? DEFAULT_LIVE_BUFFER;
  const filter = options.filter ?? '';
  const device = options.device;
  const program = findTcpdump();
  if (program === null) {
    return Promise.reject(new PcapflowError('LIVE_UNAVAILABLE', 'the tcpdump backend needs tcpdump on PATH (apt-get install tcpdump)'));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(program, tcpdumpArgs(device, filter, snaplen, bufferSize), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    let done = false;
    const onStderr = (chunk: Buffer): void => {
      stderr = keptStderr(stderr, chunk);
      const listening = parseListening(stderr);
      if (listening === null || done) return;
      done = true;
      cleanup();
      const linkType = TCPDUMP_LINK_NAMES.get(listening.linkName);
      if (linkType === undefined) {
        child.kill('SIGKILL');
        reject(new PcapflowError('LINK_UNSUPPORTED', `the device's link type (${listening.linkName}) is not one pcapflow decodes`));
        return;
      }
      child.stdout!.pause();
      resolve(new TcpdumpSource(child, stderr, device, listening.linkName, linkType, snaplen, options.tickInterval ?? 1000));
    };
    const onError = (err: Error): void => {
      if (done) return;
      done = true;
      cleanup();
      reject(new PcapflowError('LIVE_UNAVAILABLE', `the tcpdump backend cannot run ${program}: ${err.message}`, { cause: err }));
    };
    const onClose = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (done) return;
      done = true;
      cleanup();
      reject(tcpdumpFailure(device, filter, stderr, code !== null ? `exited with status ${code}` : `was killed by ${String(signal)}`));
    };
    const cleanup = (): void => {
      child.stderr!.removeListener('data', onStderr);
      child.removeListener('error', onError);
      child.removeListener('close', onClose);
    };
    child.stderr!.on('data', onStderr);
    child.on('error', onError);
    child.on('close', onClose);
  });
}

/**
 * parseDeviceList reads `tcpdump -D` ("1.eth0 [Up, Running, Connected]", "2.any (Pseudo-device
 * ...) [Up, Running]") into devices, with the addresses `addressesOf` gives for a name.
 */
export function parseDeviceList(text: string, addressesOf: (name: string) => CapAddress[]): InterfaceInfo[] {
  const out: InterfaceInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+\.(\S+)(?: \((.*?)\))?(?: \[([^\]]*)\])?\s*$/.exec(line);
    if (m === null) continue;
    const flags = (m[3] ?? '').split(',').map((f) => f.trim());
    out.push({ name: m[1]!, description: m[2] ?? null, loopback: flags.includes('Loopback'), addresses: addressesOf(m[1]!) });
  }
  return out;
}

/** listTcpdumpInterfaces: the devices `tcpdump -D` lists, with this host's addresses (node:os). LIVE_UNAVAILABLE without tcpdump. */
export function listTcpdumpInterfaces(): InterfaceInfo[] {
  const program = findTcpdump();
  if (program === null) throw new PcapflowError('LIVE_UNAVAILABLE', 'listing devices without cap needs tcpdump on PATH (apt-get install tcpdump)');
  const r = spawnSync(program, ['-D'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error?.message ?? r.stderr.trim();
    throw new PcapflowError('INPUT_READ_FAILED', `tcpdump -D cannot list the devices: ${why}`);
  }
  const hostAddrs = networkInterfaces();
  return parseDeviceList(r.stdout, (name) =>
    (hostAddrs[name] ?? []).map((a) => ({ addr: a.address.replace(/%.*$/, ''), netmask: a.netmask })),
  );
}
