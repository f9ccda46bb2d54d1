/**
 * TcpReassembler's options (with their defaults and checks) and its counters. The contract they
 * tune is the class comment of TcpReassembler (reassembler.ts), which re-exports these names.
 * Pure: no node:* import.
 */
import { PcapflowError } from './errors.js';
import { checkBudget, DEFAULT_MEMORY_BUDGET, planMemory } from './memory-budget.js';
import type { OverlapPolicy } from './stream-buffer.js';

export interface TcpReassemblerOptions {
  /** Which copy wins where out-of-order segments overlap with different bytes. Default 'first'. */
  overlap?: OverlapPolicy;
  /** 'plain' (default): in-order chunks as they come; 'push': grouped until PSH. */
  chunking?: 'plain' | 'push';
  /**
   * Memory held for out-of-order data per connection (both directions): the bytes plus
   * SEGMENT_OVERHEAD per held piece. Default: min(4 MiB, maxBufferedTotal).
   */
  maxBufferedPerConnection?: number;
  /** The same over all connections. Default: the out-of-order share of `memoryBudget` (64 MiB of the default 256 MiB). */
  maxBufferedTotal?: number;
  /** The memory budget (bytes) the two limits above default from (planMemory, memory-budget.ts). Default 256 MiB. */
  memoryBudget?: number;
  /**
   * Most stream bytes delivered per direction, like tcpflow's -b; bytes past it are dropped and
   * counted (`capped` in the close event's direction summaries). Default 0: no cap.
   */
  maxBytes?: number;
  /** With chunking 'push': most bytes grouped in one chunk. Default 256 KiB. */
  pushMaxBytes?: number;
  /**
   * Delivered bytes kept (as views) per direction until the peer acknowledges them, so that a
   * retransmission with different bytes is reported as an overlap. Default 64 KiB; 0 disables.
   */
  overlapCheckBytes?: number;
  /**
   * Packets (of the whole input) that bytes known to be missing are waited for before they become
   * a gap, since a reordered capture may still show them: bytes the peer acknowledged (the hole
   * becomes an `acked` gap when the sender went past it after the ACK, or the ACK covers its FIN,
   * and then this many packets passed), and bytes missing before an RST (a hole its sender left,
   * held out-of-order bytes, acknowledged bytes not seen: the connection closes when they come or
   * after this many packets, as it would have at the RST). Events keep the time of the packet
   * that started the wait. Default 1024; 0: at once.
   */
  waitPackets?: number;
}

export const REASSEMBLER_DEFAULTS: Required<TcpReassemblerOptions> = {
  overlap: 'first',
  chunking: 'plain',
  maxBufferedPerConnection: planMemory().maxBufferedPerConnection,
  maxBufferedTotal: planMemory().maxBufferedTotal,
  memoryBudget: DEFAULT_MEMORY_BUDGET,
  maxBytes: 0,
  pushMaxBytes: 256 * 1024,
  overlapCheckBytes: 64 * 1024,
  waitPackets: 1024,
};

export interface TcpReassemblerStats {
  /** Connections seen (open events). */
  connections: number;
  /** Packets with a flow. */
  packets: number;
  /** Packets without a flow (not TCP): ignored. */
  ignored: number;
  /** Stream bytes delivered in data events. */
  bytes: number;
  /** Data events emitted. */
  chunks: number;
  /** Segments that carried only bytes already delivered or held. */
  retransmitted: number;
  /** Segments buffered ahead of a hole. */
  outOfOrder: number;
  /** Overlap events (overlapping bytes that differed). */
  overlaps: number;
  gaps: number;
  missingBytes: number;
  keepalives: number;
  zeroWindowProbes: number;
  /** RST or bare FIN from a side that had not answered the peer's SYN: not taken as the end. */
  heldRst: number;
  /** Connections first seen without a SYN whose SYN or SYN-ACK came later (within waitPackets): not midstream. */
  lateSyn: number;
  /** RSTs that waited for bytes missing before them (waitPackets), and those whose bytes all came. */
  rstWaited: number;
  rstWaitFilled: number;
  ignoredFin: number;
  /** Packets of a connection that was already closed (late ACKs, retransmissions). */
  afterClose: number;
  /** Times a buffer limit forced a gap. */
  limitHits: number;
  /**
   * Segments dropped as lying beyond any window the receiver could have offered (junk, see the
   * class comment). A set-aside segment that the next one continues is not counted.
   */
  outOfWindow: number;
  /** Connections whose packets' capture times went backwards (reordered or merged captures). */
  disordered: number;
  /** Memory held for out-of-order data now (bytes plus SEGMENT_OVERHEAD per piece), and the most
   * ever held between two packets (within one packet the newest segment may pass a limit before
   * the limit is enforced). */
  bufferedBytes: number;
  peakBufferedBytes: number;
  /** Connections that showed only a SYN (or SYN-ACK) without data from one side, kept in a small state; those closed so. */
  synOnly: number;
  synOnlyClosed: number;
  /** Bytes past `maxBytes` not delivered (all directions). */
  cappedBytes: number;
  /** Directions whose delivered views kept for overlap checks were dropped because they pinned old read chunks. */
  sentTrimmed: number;
  /** Close events by reason. */
  closedFin: number;
  closedRst: number;
  idleClosed: number;
  evicted: number;
  closedEof: number;
}

/** newReassemblerStats: every counter at 0. */
export function newReassemblerStats(): TcpReassemblerStats {
  return {
      connections: 0,
      packets: 0,
      ignored: 0,
      bytes: 0,
      chunks: 0,
      retransmitted: 0,
      outOfOrder: 0,
      overlaps: 0,
      gaps: 0,
      missingBytes: 0,
      keepalives: 0,
      zeroWindowProbes: 0,
      heldRst: 0,
      lateSyn: 0,
      rstWaited: 0,
      rstWaitFilled: 0,
      ignoredFin: 0,
      afterClose: 0,
      limitHits: 0,
      outOfWindow: 0,
      disordered: 0,
      bufferedBytes: 0,
      peakBufferedBytes: 0,
      synOnly: 0,
      synOnlyClosed: 0,
      cappedBytes: 0,
      sentTrimmed: 0,
      closedFin: 0,
      closedRst: 0,
      idleClosed: 0,
      evicted: 0,
      closedEof: 0,
  };
}

/** checkReassemblerOptions: the options with defaults filled in; PcapflowError INVALID_OPTION for a bad one. */
export function checkReassemblerOptions(o: TcpReassemblerOptions): Required<TcpReassemblerOptions> {
  const r = { ...REASSEMBLER_DEFAULTS };
  if (o.overlap !== undefined) {
    if (o.overlap !== 'first' && o.overlap !== 'last') throw new PcapflowError('INVALID_OPTION', `overlap must be 'first' or 'last', got ${String(o.overlap)}`);
    r.overlap = o.overlap;
  }
  if (o.chunking !== undefined) {
    if (o.chunking !== 'plain' && o.chunking !== 'push') throw new PcapflowError('INVALID_OPTION', `chunking must be 'plain' or 'push', got ${String(o.chunking)}`);
    r.chunking = o.chunking;
  }
  if (o.memoryBudget !== undefined) {
    const plan = planMemory(checkBudget(o.memoryBudget));
    r.memoryBudget = plan.budget;
    r.maxBufferedTotal = plan.maxBufferedTotal;
    r.maxBufferedPerConnection = plan.maxBufferedPerConnection;
  }
  for (const k of ['maxBufferedPerConnection', 'maxBufferedTotal', 'pushMaxBytes', 'overlapCheckBytes', 'maxBytes', 'waitPackets'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (k === 'pushMaxBytes' ? 1 : 0)) {
      throw new PcapflowError('INVALID_OPTION', `${k} must be an integer number of bytes, got ${String(v)}`);
    }
    r[k] = v;
  }
  if (o.maxBufferedTotal !== undefined && o.maxBufferedPerConnection === undefined && r.maxBufferedPerConnection > r.maxBufferedTotal) {
    r.maxBufferedPerConnection = r.maxBufferedTotal;
  }
  return r;
}
