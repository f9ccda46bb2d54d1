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

/** The groups of one 'out' message: the bytes up to ends[i] (from the last end) are keyed (ks[i], subs[i]). */
class Groups {
  private ks: number[] = [];
  private subs: number[] = [];
  private ends: number[] = [];

  /** close keys the bytes before `end` not yet in a group (joined to the last group when the key is the same). */
  close(k: number, sub: number, end: number): void {
    const n = this.ks.length;
    if (n > 0 && this.ks[n - 1] === k && this.subs[n - 1] === sub) this.ends[n - 1] = end;
    else {
      this.ks.push(k);
      this.subs.push(sub);
      this.ends.push(end);
    }
  }

  /** post sends `bytes` (its buffer transferred, not copied) with the groups and the lowest key still to come, and starts anew. */
  post(bytes: Uint8Array, lowK: number, lowSub: number): void {
    const ks = Float64Array.from(this.ks);
    const subs = Float64Array.from(this.subs);
    const ends = Uint32Array.from(this.ends);
    post({ type: 'out', bytes, ks, subs, ends, lowK, lowSub }, [bytes.buffer as ArrayBuffer, ks.buffer, subs.buffer, ends.buffer]);
    this.ks = [];
    this.subs = [];
    this.ends = [];
  }
}

/** The NDJSON side: every event's line (NdjsonLines, as NdjsonSink renders them), keyed by its event. */
function ndjsonMode(encoding: PayloadEncoding): { batch(e: KeyedEvents, lowK: number, lowSub: number): Promise<void>; finish(): Promise<unknown> } {
  const lines = new NdjsonLines(encoding);
  const groups = new Groups();
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
      for (let i = 0; i < events.length; i++) {
        lines.line(events[i]!);
        groups.close(ks[i]!, subs[i]!, lines.at);
      }
      const text = lines.take();
      groups.post(new Uint8Array(text.buffer, text.byteOffset, text.length), lowK, lowSub);
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
  const groups = new Groups();
  /** send posts records with their groups (none: only the lowest key still to come). */
  const send = (records: Uint8Array): void => {
    const [k, s] = head < closeK.length ? [closeK[head]!, closeSub[head]!] : [nextK, nextSub];
    groups.post(records, k, s);
  };
  const sink = new FilesSink({
    ...options,
    recordsTo(lines, count) {
      // the lines are the sink's until this returns: a copy goes
      const records = new Uint8Array(lines.length);
      records.set(lines);
      let from = 0;
      for (let i = 0; i < count; i++) {
        const nl = lines.indexOf(0x0a, from);
        if (nl < 0 || head >= closeK.length) throw new PcapflowError('OUTPUT_FAILED', 'shard worker: connection records out of step with close events');
        groups.close(closeK[head]!, closeSub[head]!, nl + 1);
        head++;
        from = nl + 1;
      }
      if (head === closeK.length) {
        closeK.length = closeSub.length = head = 0;
      }
      send(records);
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
          send(new Uint8Array(0));
          return resolve();
        }
        sink.write(events, (err) => {
          if (err) return reject(err);
          send(new Uint8Array(0));
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
        new Groups().post(new Uint8Array(0), Infinity, Infinity);
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
