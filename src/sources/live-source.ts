/**
 * live-source: packets captured from a network interface now, through libpcap (the optional cap
 * package, see live-binding.ts), as the same stream of `Packet[]` batches a CaptureSource gives,
 * with ClockTick objects between them (see core/live-idle.ts).
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import { ClockTick } from '../core/live-idle.js';
import { LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_NULL, LINKTYPE_RAW } from '../core/frame-decoder.js';
import { Packet } from '../core/packet.js';
import { CAP_SNAPLEN, loadCap, openCap, type CapHandle, type CapModule } from './live-binding.js';

/** Default kernel capture buffer: 32 MiB lost a fifth of a 30 MB/s transfer here, 256 MiB nothing. */
export const DEFAULT_LIVE_BUFFER = 256 * 1024 * 1024;
/** Default bound on captured bytes waiting for a slow consumer before packets are dropped. */
export const DEFAULT_MAX_QUEUED = 64 * 1024 * 1024;
/** Bytes of packet copies per slab (packets are views into slabs, as file packets are views into chunks). */
const SLAB_SIZE = 1 << 20;

export interface LiveSourceOptions {
  /** Device name as libpcap knows it (`pcapflow interfaces`), e.g. eth0, lo, any. */
  device: string;
  /** libpcap filter expression (pcap-filter(7)); '' or absent captures everything. */
  filter?: string;
  /** Kernel buffer in bytes (libpcap's buffer size). Default 256 MiB. */
  bufferSize?: number;
  /** Bytes kept of each packet, 64 to 65535 (libpcap never keeps more than 65535). Default 65535. */
  snaplen?: number;
  /**
   * Captured bytes waiting for the consumer (batches pushed and not yet read) before new packets
   * are dropped and counted (`dropped`): the wire cannot be paused. Default 64 MiB.
   */
  maxQueuedBytes?: number;
  /** Most packets per batch. Default 256. */
  maxBatch?: number;
  /** Milliseconds between clock ticks while the consumer keeps up; 0 sends none. Default 1000. */
  tickInterval?: number;
  /** Readable high-water mark in batches (push() is never held back: see maxQueuedBytes). Default 16. */
  highWaterMark?: number;
}

/** LiveSourceStats: what the capture did (printed by `--stats` as `capture.*`). */
export interface LiveSourceStats {
  /** What captures: `cap` (libpcap in this process) or `tcpdump` (a tcpdump process writing pcap into a pipe). */
  backend: 'cap' | 'tcpdump';
  device: string;
  /** LINKTYPE_* number of the device. */
  linkType: number;
  /** Packets delivered, and their captured bytes. */
  packets: number;
  bytes: number;
  /** Packets dropped because the consumer was `maxQueuedBytes` behind, and their bytes. */
  dropped: number;
  droppedBytes: number;
  /** Packets cut by the snaplen (--snaplen, or libpcap's own 65535). */
  cut: number;
  batches: number;
  ticks: number;
  /** Captured bytes waiting for the consumer now, and the most ever. */
  queuedBytes: number;
  peakQueuedBytes: number;
  /**
   * libpcap's statistics once the capture ended (tcpdump's own count): packets the filter passed
   * (`received`), those the kernel dropped because its buffer was full (`kernelDropped`), and
   * those the interface or its driver dropped (`interfaceDropped`). null when the backend cannot
   * tell (cap has no pcap_stats): kernel drops then show only as gaps in the streams.
   */
  received: number | null;
  kernelDropped: number | null;
  interfaceDropped: number | null;
}

/** tickTimer: `onTick` every `interval` ms (none for 0), not keeping the process alive: the open capture does. */
export function tickTimer(interval: number, onTick: () => void): NodeJS.Timeout | null {
  if (interval <= 0) return null;
  const timer = setInterval(onTick, interval);
  timer.unref();
  return timer;
}

/** liveStats: a live source's counters at the start. */
export function liveStats(backend: LiveSourceStats['backend'], device: string, linkType: number): LiveSourceStats {
  return {
    backend,
    device,
    linkType,
    packets: 0,
    bytes: 0,
    dropped: 0,
    droppedBytes: 0,
    cut: 0,
    batches: 0,
    ticks: 0,
    queuedBytes: 0,
    peakQueuedBytes: 0,
    received: null,
    kernelDropped: null,
    interfaceDropped: null,
  };
}

/**
 * LiveCapture: what `pcapflow live` needs of a live source, whichever the backend: an object-mode
 * Readable of `Packet[]` batches and ClockTick objects (LiveSource, TcpdumpSource).
 */
export interface LiveCapture extends Readable {
  readonly stats: LiveSourceStats;
  /** LINKTYPE_* number of the device. */
  readonly linkType: number;
  /** The backend's name of the link type. */
  readonly linkName: string;
  readonly snaplen: number;
  /** True until stop() or destroy(). */
  readonly capturing: boolean;
  /** stop ends the capture; the stream ends after the packets already captured. Idempotent. */
  stop(): void;
}

/**
 * QueueMeter: the bytes of the batches a source pushed that its consumer has not read yet, from
 * the Readable's own count of waiting objects (its buffer is FIFO).
 */
export class QueueMeter {
  /** Bytes waiting now, and the most ever. */
  queued = 0;
  peak = 0;
  /** Bytes of each object pushed (FIFO), from `head` on. */
  private readonly pushed: number[] = [];
  private head = 0;

  /** enqueue records one object of `bytes` pushed. */
  enqueue(bytes: number): void {
    this.pushed.push(bytes);
    this.queued += bytes;
    if (this.queued > this.peak) this.peak = this.queued;
  }

  /** trim forgets the objects read: `waiting` is the Readable's readableLength (objects not read). */
  trim(waiting: number): void {
    const q = this.pushed;
    let h = this.head;
    while (q.length - h > waiting) this.queued -= q[h++]!;
    if (h === q.length) {
      q.length = 0;
      h = 0;
    } else if (h > 1024 && h * 2 > q.length) {
      q.splice(0, h);
      h = 0;
    }
    this.head = h;
  }
}

/**
 * LiveClock: wall-clock capture timestamps without a per-packet allocation. Date.now() is read
 * once, at construction; after that the monotonic high-resolution clock (performance.now, the
 * same clock as process.hrtime) gives the time elapsed, so timestamps never go backwards even
 * when the system clock is set back.
 */
export class LiveClock {
  private readonly baseSec: number;
  private readonly baseNs: number;
  private readonly t0: number;

  constructor() {
    const ms = Date.now();
    this.t0 = performance.now();
    this.baseSec = Math.floor(ms / 1000);
    this.baseNs = (ms - this.baseSec * 1000) * 1e6;
  }

  /** stamp sets `tsSec` and `tsNsec` of `p` to now. */
  stamp(p: { tsSec: number; tsNsec: number }): void {
    const ns = this.baseNs + (performance.now() - this.t0) * 1e6;
    const s = Math.floor(ns / 1e9);
    p.tsSec = this.baseSec + s;
    p.tsNsec = Math.min(999_999_999, Math.floor(ns - s * 1e9));
  }

  /** tick: a ClockTick for now. */
  tick(): ClockTick {
    const t = { tsSec: 0, tsNsec: 0 };
    this.stamp(t);
    return new ClockTick(t.tsSec, t.tsNsec);
  }
}

/**
 * LiveSource: an object-mode Readable of `Packet[]` batches captured on a device, in arrival order,
 * numbered from 1, each stamped with its arrival time (LiveClock: cap gives no timestamps), with
 * `len` = `caplen` unless the packet was cut (see wireLength). While the consumer keeps up, a
 * ClockTick is pushed every `tickInterval` ms so that idle connections close on a quiet link.
 *
 * Memory: the capture cannot be paused, so push() is never held back. Instead the captured bytes
 * waiting for the consumer are bounded by `maxQueuedBytes`; beyond it new packets are dropped and
 * counted in `stats.dropped` (the reassembler then reports the holes as gaps). The kernel buffer
 * (`bufferSize`) absorbs bursts while JavaScript is busy.
 *
 * Ownership: `frame`, the Buffer cap copies every packet into, is held in a field for the life of
 * the source (cap keeps only a raw pointer to it), and each packet is copied out of it into a
 * slab at once, inside cap's 'packet' event, before the next packet can overwrite it. `data` of
 * a packet is a view into a slab.
 *
 * `stop()` closes the capture, pushes what is pending and ends the stream (the pipeline then
 * flushes every connection). `destroy()` closes the capture too. Throws (from the constructor)
 * what openCap throws: INPUT_NOT_FOUND, INVALID_OPTION, LINK_UNSUPPORTED; INVALID_OPTION for bad
 * options.
 */
export class LiveSource extends Readable implements LiveCapture {
  readonly stats: LiveSourceStats;
  readonly linkType: number;
  /** cap's name of the link type ('ETHERNET', 'LINKTYPE_LINUX_SLL', ...). */
  readonly linkName: string;
  readonly snaplen: number;
  /** cap's copy buffer: referenced for the whole capture (see the class comment). */
  private readonly frame: Buffer;
  private readonly handle: CapHandle;
  private readonly clock = new LiveClock();
  private readonly maxQueued: number;
  private readonly maxBatch: number;
  private readonly timer: NodeJS.Timeout | null;
  /** A plain Uint8Array, not a Buffer: `slice()` of a view must copy (Buffer#slice is a view and would pin the slab). */
  private slab = new Uint8Array(SLAB_SIZE);
  private slabOff = 0;
  private batch: Packet[] = [];
  private batchBytes = 0;
  private flushPending = false;
  private nextIndex = 1;
  private open = true;
  private readonly meter = new QueueMeter();
  private readonly flushFn = (): void => {
    this.flushPending = false;
    this.flush();
  };

  constructor(cap: CapModule, options: LiveSourceOptions) {
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? 16 });
    const snaplen = checkInt('snaplen', options.snaplen ?? CAP_SNAPLEN, 64, CAP_SNAPLEN);
    const bufferSize = checkInt('buffer-size', options.bufferSize ?? DEFAULT_LIVE_BUFFER, 1 << 16, 2 ** 31 - 1);
    this.maxQueued = checkInt('max-queue', options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED, 1 << 16, 2 ** 40);
    this.maxBatch = checkInt('maxBatch', options.maxBatch ?? 256, 1, 1 << 16);
    const tickInterval = checkInt('tickInterval', options.tickInterval ?? 1000, 0, 3_600_000);
    this.snaplen = snaplen;
    this.frame = Buffer.alloc(snaplen);
    const opened = openCap(cap, options.device, options.filter ?? '', bufferSize, this.frame);
    this.handle = opened.handle;
    this.linkType = opened.linkType;
    this.linkName = opened.linkName;
    this.stats = liveStats('cap', options.device, opened.linkType);
    this.handle.on('packet', (nbytes: number, truncated: boolean) => this.onPacket(nbytes, truncated));
    this.timer = tickTimer(tickInterval, () => this.onTick());
  }

  /** capturing: true until stop() or destroy(). */
  get capturing(): boolean {
    return this.open;
  }

  /** stop closes the capture and ends the stream after the packets already captured. Idempotent. */
  stop(): void {
    if (!this.open) return;
    this.close();
    this.flush();
    this.push(null);
  }

  override _read(): void {
    // Packets are pushed as they arrive; there is nothing to pull.
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.close();
    callback(err);
  }

  private close(): void {
    if (!this.open) return;
    this.open = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.handle.close();
    this.handle.removeAllListeners('packet');
  }

  /** onPacket: cap's 'packet' event. `frame` holds the packet only until this returns. */
  private onPacket(nbytes: number, truncated: boolean): void {
    if (!this.open) return;
    if (this.batch.length === 0) this.trimQueue();
    if (this.meter.queued + this.batchBytes + nbytes > this.maxQueued) {
      this.stats.dropped++;
      this.stats.droppedBytes += nbytes;
      return;
    }
    if (this.slabOff + nbytes > this.slab.length) {
      this.slab = new Uint8Array(SLAB_SIZE);
      this.slabOff = 0;
    }
    const start = this.slabOff;
    this.frame.copy(this.slab, start, 0, nbytes);
    this.slabOff = start + nbytes;
    const p = new Packet();
    p.index = this.nextIndex++;
    this.clock.stamp(p);
    p.caplen = nbytes;
    p.linkType = this.linkType;
    p.data = this.slab.subarray(start, start + nbytes);
    p.len = truncated || nbytes >= CAP_SNAPLEN ? wireLength(this.linkType, p.data) : nbytes;
    if (p.len > nbytes) this.stats.cut++;
    this.stats.packets++;
    this.stats.bytes += nbytes;
    this.batch.push(p);
    this.batchBytes += nbytes;
    if (this.batch.length >= this.maxBatch) {
      this.flush();
    } else if (!this.flushPending) {
      // cap emits a burst of packets from one poll callback; setImmediate runs after the burst.
      this.flushPending = true;
      setImmediate(this.flushFn);
    }
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const b = this.batch;
    this.batch = [];
    this.enqueue(this.batchBytes);
    this.batchBytes = 0;
    this.stats.batches++;
    this.push(b);
  }

  private onTick(): void {
    if (!this.open) return;
    this.flush();
    this.trimQueue();
    if (this.readableLength > 0) return; // behind: the packets themselves move the demux's clock
    this.stats.ticks++;
    this.enqueue(0);
    this.push(this.clock.tick());
  }

  private enqueue(bytes: number): void {
    this.meter.enqueue(bytes);
    this.stats.peakQueuedBytes = this.meter.peak;
    this.stats.queuedBytes = this.meter.queued;
  }

  /** trimQueue forgets the batches the consumer has read. */
  private trimQueue(): void {
    this.meter.trim(this.readableLength);
    this.stats.queuedBytes = this.meter.queued;
  }
}

/** The live capture backends: libpcap in this process (`cap`), a `tcpdump` process, or `auto`. */
export const LIVE_BACKENDS = ['auto', 'cap', 'tcpdump'] as const;
export type LiveBackend = (typeof LIVE_BACKENDS)[number];

/**
 * openLive opens a live capture with the backend asked for: `cap` loads cap (LIVE_UNAVAILABLE when
 * it cannot be) and opens a LiveSource; `tcpdump` starts a TcpdumpSource (tcpdump-source.ts);
 * `auto` (the default) is tcpdump when it is installed, else cap. On the bench (README, "Rates")
 * both kept the stream exact up to 3.5 Gbit/s, and above that tcpdump kept more at the same rate
 * (its process drains the kernel's ring while the pipeline runs); it also counts the kernel's
 * drops and gives the kernel's timestamps, which cap does not.
 */
export async function openLive(options: LiveSourceOptions, backend: LiveBackend = 'auto'): Promise<LiveCapture> {
  const tcpdump = await import('./tcpdump-source.js');
  if (backend === 'tcpdump' || (backend === 'auto' && tcpdump.findTcpdump() !== null)) return tcpdump.openTcpdump(options);
  let cap: CapModule;
  try {
    cap = await loadCap();
  } catch (err) {
    if (backend === 'cap') throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new PcapflowError('LIVE_UNAVAILABLE', `${why}; or install tcpdump (apt-get install tcpdump) for the tcpdump backend`, { cause: err });
  }
  return new LiveSource(cap, options);
}

/**
 * wireLength estimates the length on the wire of a packet that was cut (cap reports only that it
 * was, libpcap's own cut at 65535 not even that): the link header plus the IP header's length,
 * for the link types live capture gives. Returns `data.length` when it cannot tell.
 */
export function wireLength(linkType: number, data: Uint8Array): number {
  let off: number;
  if (linkType === LINKTYPE_ETHERNET) {
    off = 14;
    let type = data.length >= 14 ? (data[12]! << 8) | data[13]! : 0;
    while ((type === 0x8100 || type === 0x88a8) && data.length >= off + 4) {
      type = (data[off + 2]! << 8) | data[off + 3]!;
      off += 4;
    }
    if (type !== 0x0800 && type !== 0x86dd) return data.length;
  } else if (linkType === LINKTYPE_LINUX_SLL) {
    off = 16;
  } else if (linkType === LINKTYPE_NULL) {
    off = 4;
  } else if (linkType === LINKTYPE_RAW) {
    off = 0;
  } else {
    return data.length;
  }
  if (data.length < off + 8) return data.length;
  const version = data[off]! >> 4;
  let ipLen: number;
  if (version === 4) ipLen = (data[off + 2]! << 8) | data[off + 3]!;
  else if (version === 6) ipLen = 40 + ((data[off + 4]! << 8) | data[off + 5]!);
  else return data.length;
  return Math.max(data.length, off + ipLen);
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new PcapflowError('INVALID_OPTION', `${name} must be a whole number from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}
