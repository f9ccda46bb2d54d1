/**
 * The shard worker (`--workers N`, ShardSink): a worker thread that reassembles the connections
 * of one shard (ShardReassembly) and turns their events into output, each piece keyed (see
 * keyed-merge.ts) for the main thread to put back in one reassembler's order:
 * - `ndjson`: the NDJSON lines of its events (the lines NdjsonSink writes), keyed per event;
 * - `files`: its connections' files, written here by a FilesSink in the shared directory (a
 *   connection's files are written by one shard; names that repeat, `c<N>`, belong to one key,
 *   hence to one shard), and the connections.ndjson lines, keyed by their close events, which
 *   the main thread writes to that one file.
 *
 * Messages in (in order): { type: 'batch', batch: ShardBatch }, { type: 'end', upTo }; and
 * { type: 'spare', buffer } at any time: an output buffer given back for reuse.
 * Messages out: { type: 'out', bytes, ks, subs, ends, lowK, lowSub } (keyed output, and the
 * lowest key still to come), { type: 'ack' } once a batch was taken (the sink has it),
 * { type: 'done', reassembler, sink } (stats), { type: 'error', code, message }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';
import type { PayloadEncoding } from '../core/format.js';
import type { TcpReassemblerOptions } from '../core/reassembler.js';
import type { ShardBatch } from '../core/shard-batch.js';
import { keyedEvents, ShardReassembly, type KeyedEvents } from '../core/shard-reassembly.js';
import { FilesSink, type FilesSinkOptions } from './files-sink.js';
import { NdjsonLines } from './ndjson-sink.js';

/** What the main thread gives a shard worker (workerData). */
export interface ShardWorkerData {
  mode: 'files' | 'ndjson';
  reassembly: TcpReassemblerOptions;
  /** mode 'files': the FilesSink's options (without recordsTo). */
  files?: FilesSinkOptions;
  /** mode 'ndjson': the payload encoding. */
  encoding?: PayloadEncoding;
}

/** Connections closed per step of the final flush. */
const END_STEP = 2048;

const port = parentPort!;
const data = workerData as ShardWorkerData;
const core = new ShardReassembly(data.reassembly);

function post(msg: unknown, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function fail(err: unknown): void {
  const e = err instanceof PcapflowError ? err : new PcapflowError('OUTPUT_FAILED', `shard worker: ${(err as Error)?.message ?? String(err)}`);
  post({ type: 'error', code: e.code, message: e.message, file: e.file });
}

/** Keyed bytes being built for one 'out' message. */
class Out {
  bytes = Buffer.allocUnsafeSlow(1 << 16);
  at = 0;
  ks: number[] = [];
  subs: number[] = [];
  ends: number[] = [];

  room(n: number): void {
    if (this.at + n <= this.bytes.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(this.at + n, this.bytes.length * 2));
    this.bytes.copy(next, 0, 0, this.at);
    this.bytes = next;
  }

  /** group closes the bytes written since the last group under key (k, sub) (joined to the last group when the key is the same). */
  group(k: number, sub: number): void {
    const n = this.ks.length;
    if (n > 0 && this.ks[n - 1] === k && this.subs[n - 1] === sub) this.ends[n - 1] = this.at;
    else {
      this.ks.push(k);
      this.subs.push(sub);
      this.ends.push(this.at);
    }
  }

  send(lowK: number, lowSub: number): void {
    // the buffer itself goes (transferred, not copied); the next one is as large
    const bytes = new Uint8Array(this.bytes.buffer, 0, this.at);
    this.bytes = Buffer.allocUnsafeSlow(this.bytes.length);
    const ks = Float64Array.from(this.ks);
    const subs = Float64Array.from(this.subs);
    const ends = Uint32Array.from(this.ends);
    post({ type: 'out', bytes, ks, subs, ends, lowK, lowSub }, [bytes.buffer, ks.buffer, subs.buffer, ends.buffer]);
    this.at = 0;
    this.ks = [];
    this.subs = [];
    this.ends = [];
  }
}

const out = new Out();

/** The NDJSON side: every event's line (NdjsonLines, as NdjsonSink renders them), keyed by its event. */
function ndjsonMode(encoding: PayloadEncoding): { batch(e: KeyedEvents, lowK: number, lowSub: number): Promise<void>; finish(): Promise<unknown> } {
  const lines = new NdjsonLines(encoding);
  return {
    async batch(ke, lowK, lowSub) {
      const { events, ks, subs } = ke;
      const size = lines.estimate(events);
      let spare: ArrayBuffer | undefined;
      for (let i = 0; i < spares.length; i++) {
        if (spares[i]!.byteLength >= size) {
          spare = spares.splice(i, 1)[0];
          break;
        }
      }
      lines.begin(size, true, spare);
      const gk: number[] = [];
      const gs: number[] = [];
      const ends: number[] = [];
      for (let i = 0; i < events.length; i++) {
        lines.line(events[i]!);
        const k = ks[i]!;
        const sub = subs[i]!;
        const n = gk.length;
        if (n > 0 && gk[n - 1] === k && gs[n - 1] === sub) ends[n - 1] = lines.at;
        else {
          gk.push(k);
          gs.push(sub);
          ends.push(lines.at);
        }
      }
      const text = lines.take();
      const bytes = new Uint8Array(text.buffer, text.byteOffset, text.length);
      const fk = Float64Array.from(gk);
      const fs = Float64Array.from(gs);
      const fe = Uint32Array.from(ends);
      post({ type: 'out', bytes, ks: fk, subs: fs, ends: fe, lowK, lowSub }, [bytes.buffer as ArrayBuffer, fk.buffer, fs.buffer, fe.buffer]);
    },
    async finish() {
      return null;
    },
  };
}

/** The files side: a FilesSink here, its records keyed by the close events that made them. */
function filesMode(options: FilesSinkOptions): { batch(e: KeyedEvents, lowK: number, lowSub: number): Promise<void>; finish(): Promise<unknown> } {
  // keys of the close events given to the sink whose record did not come yet, oldest first
  const closeK: number[] = [];
  const closeSub: number[] = [];
  let head = 0;
  let nextK = 1;
  let nextSub = 0;
  const low = (): [number, number] => (head < closeK.length ? [closeK[head]!, closeSub[head]!] : [nextK, nextSub]);
  const sink = new FilesSink({
    ...options,
    recordsTo(lines, count) {
      let from = 0;
      for (let i = 0; i < count; i++) {
        const nl = lines.indexOf(0x0a, from);
        if (nl < 0 || head >= closeK.length) throw new PcapflowError('OUTPUT_FAILED', 'shard worker: connection records out of step with close events');
        out.room(nl + 1 - from);
        out.bytes.set(lines.subarray(from, nl + 1), out.at);
        out.at += nl + 1 - from;
        out.group(closeK[head]!, closeSub[head]!);
        head++;
        from = nl + 1;
      }
      if (head === closeK.length) {
        closeK.length = closeSub.length = head = 0;
      }
      const [k, s] = low();
      out.send(k, s);
    },
  });
  let failure: Error | null = null;
  sink.on('error', (err) => {
    failure ??= err;
  });
  return {
    batch(ke, lowK, lowSub) {
      const { events, ks, subs } = ke;
      for (let i = 0; i < events.length; i++) {
        if (events[i]!.type === 'close') {
          closeK.push(ks[i]!);
          closeSub.push(subs[i]!);
        }
      }
      nextK = lowK;
      nextSub = lowSub;
      return new Promise<void>((resolve, reject) => {
        if (failure !== null) return reject(failure);
        if (events.length === 0) {
          const [k, s] = low();
          out.send(k, s);
          return resolve();
        }
        sink.write(events, (err) => {
          if (err) return reject(err);
          const [k, s] = low();
          out.send(k, s);
          resolve();
        });
      });
    },
    finish() {
      return new Promise((resolve, reject) => {
        if (failure !== null) return reject(failure);
        sink.end((err?: Error | null) => (err ? reject(err) : resolve(sink.stats)));
      });
    },
  };
}

const mode = data.mode === 'files' ? filesMode(data.files!) : ndjsonMode(data.encoding ?? 'base64');

/** Output buffers the main thread gave back (NDJSON), for the next lines; at most SPARE_MAX. */
const spares: ArrayBuffer[] = [];
const SPARE_MAX = 8;

const inbox: Array<{ type: 'batch'; batch: ShardBatch } | { type: 'end'; upTo: number }> = [];
let busy = false;

async function pump(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    while (inbox.length > 0) {
      const m = inbox.shift()!;
      if (m.type === 'batch') {
        const ke = keyedEvents();
        core.write(m.batch, ke);
        await mode.batch(ke, m.batch.upTo + 1, 0);
        post({ type: 'ack' });
      } else {
        for (;;) {
          const ke = keyedEvents();
          const done = core.endSome(m.upTo, END_STEP, ke);
          const events: StreamEvent[] = ke.events;
          const lastConn = events.length > 0 ? events[events.length - 1]!.conn : -1;
          await mode.batch(ke, done ? Infinity : m.upTo + 1, done ? Infinity : lastConn + 1);
          if (done) break;
        }
        const sink = await mode.finish();
        out.send(Infinity, Infinity);
        post({ type: 'done', reassembler: core.reassembler.stats, sink });
      }
    }
  } catch (err) {
    fail(err);
    inbox.length = 0;
  } finally {
    busy = false;
  }
}

port.on('message', (m: (typeof inbox)[number] | { type: 'spare'; buffer: ArrayBuffer }) => {
  if (m.type === 'spare') {
    if (spares.push(m.buffer) > SPARE_MAX) spares.shift();
    return;
  }
  inbox.push(m);
  void pump();
});
