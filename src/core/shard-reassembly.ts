/**
 * ShardReassembly is a shard worker's core (`--workers N`): a TcpReassembler fed the packets of
 * its shard's connections (ShardBatch, shard-batch.ts) with the packet numbers of the whole
 * input, so that it emits exactly the events one reassembler would for them, each with the key
 * that places it in one reassembler's output: (k, sub), the packet number that caused it and
 * its place at that packet: 0 for waits that ended there (TcpReassembler.advance), 1 + i for
 * the i-th flow the demux ended just before it, PACKET_SUB for the packet's own segment. The
 * final closes get (last packet number + 1, connection number): one reassembler closes the
 * connections left at the end in order of connection number. Pure: no node:* import.
 */
import type { StreamEvent } from './events.js';
import { TcpReassembler, type TcpReassemblerOptions } from './reassembler.js';
import { PACKET_SUB, readShardBatch, ShardFlows, type ShardBatch, type ShardItem } from './shard-batch.js';

/** Events with their keys: events[i] has key (ks[i], subs[i]); keys never fall. */
export interface KeyedEvents {
  events: StreamEvent[];
  ks: number[];
  subs: number[];
}

export function keyedEvents(): KeyedEvents {
  return { events: [], ks: [], subs: [] };
}

export class ShardReassembly {
  readonly reassembler: TcpReassembler;
  readonly flows = new ShardFlows();
  /** The last packet number handled. */
  private at = 0;
  /** The last packet number of the input (end()). */
  private last = -1;
  private out: KeyedEvents = keyedEvents();
  private readonly each = (it: ShardItem): void => this.item(it);

  constructor(options: TcpReassemblerOptions = {}) {
    this.reassembler = new TcpReassembler(options);
  }

  /** write handles one batch; its events (with keys) are appended to `out`. */
  write(b: ShardBatch, out: KeyedEvents): void {
    this.out = out;
    readShardBatch(b, this.flows, this.each);
    this.catchUp(b.upTo);
    this.reassembler.batchDone();
  }

  /**
   * endSome closes up to `max` of the connections left once the input (whose last packet number
   * is `upTo`) ended, appending their events to `out`; true once all are closed. Call until true.
   */
  endSome(upTo: number, max: number, out: KeyedEvents): boolean {
    this.out = out;
    if (this.last < 0) {
      this.catchUp(upTo);
      this.last = upTo;
    }
    const events = out.events;
    const from = events.length;
    const done = this.reassembler.endSome((batch) => {
      for (let i = 0; i < batch.length; i++) events.push(batch[i]!);
    }, max);
    for (let i = from; i < events.length; i++) {
      out.ks.push(this.last + 1);
      out.subs.push(events[i]!.conn);
    }
    return done;
  }

  private item(it: ShardItem): void {
    const r = this.reassembler;
    if (it.k !== this.at) {
      this.catchUp(it.k - 1);
      r.advance(it.k);
      this.at = it.k;
      this.collect(it.k, 0);
    }
    if (it.packet !== null) {
      r.own(it.packet);
      this.collect(it.k, PACKET_SUB);
    } else {
      r.closeEnded(it.ended!, it.sec, it.nsec);
      this.collect(it.k, it.sub);
    }
  }

  /** catchUp ends the waits due at packet numbers after the last handled, up to `to`, each as at its own packet. */
  private catchUp(to: number): void {
    const r = this.reassembler;
    for (;;) {
      const due = Math.max(r.nextDue(), this.at + 1);
      if (due > to) break;
      r.advance(due);
      this.at = due;
      this.collect(due, 0);
    }
  }

  private collect(k: number, sub: number): void {
    const out = this.out;
    const n = this.reassembler.moveEvents(out.events);
    for (let i = 0; i < n; i++) {
      out.ks.push(k);
      out.subs.push(sub);
    }
  }
}
