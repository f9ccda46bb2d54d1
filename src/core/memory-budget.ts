/**
 * memory-budget: one byte budget for everything pcapflow holds while it reads, split into fixed
 * shares so that each holder has a hard cap and the caps add up to the budget:
 *
 *   IP fragments waiting for reassembly   1/16 (PacketDecoder `fragmentMaxBytes`)
 *   delivered data held for output        1/16 (FilesSink `maxHeldBytes`: copies of the pending
 *                                               bytes of sparse connections, see below)
 *   out-of-order TCP data                 1/4  of which 1/32 of the budget is the reorder window's
 *                                               (ReorderWindow `maxBytes`: packets held to put them
 *                                               back in time order) and 7/32 the reassembler's
 *                                               (TcpReassembler `maxBufferedTotal`; per connection
 *                                               `maxBufferedPerConnection` = min(4 MiB, that))
 *   the connection table                  5/8  (TcpDemux `maxConnections` = share / CONNECTION_COST)
 *
 * With the default 256 MiB: 16 MiB of fragments, 16 MiB of held output, 64 MiB of out-of-order
 * data (8 MiB in the reorder window, 56 MiB in the reassembler, 4 MiB per connection), and 160
 * MiB of connections: 160 MiB / CONNECTION_COST = 65 536 connections.
 *
 * Fixed shares rather than one pool: a flood of one kind (SYNs, fragments, out-of-order data)
 * can only take its own share, never crowd out the others, and every cap is known up front.
 *
 * Delivered data is passed on as views of the 512 KiB read chunks, and a view keeps its whole
 * chunk alive: a connection that sends a few bytes now and then amid other traffic must not keep
 * the chunks of its last bytes. So whatever a connection holds for longer than a few read chunks
 * is either a copy counted in a share (out-of-order data; the files sink copies a sparse
 * direction's pending bytes once they are 8 batches old, into the held-output share, and writes
 * them when that is full), or dropped (the reassembler's views for overlap checks, after 8
 * chunks with delivered data: `sentTrimmed`).
 *
 * What the budget does not cover, and is bounded otherwise (bench/PROFILE.md, "Sixth pass"):
 * the read chunks that views still reference: the files sink's pending views, the last 8-9
 * chunks, and the reassembler's views, at most 9 chunks (4-5 MiB each; a ChunkPool keeps at most
 * 48 chunks, 24 MiB); the batches in flight between the stages (stream high-water marks) and
 * what a sink collects while it writes (FilesSink: 4 MiB of data and record lines plus one
 * batch; NdjsonSink: 4 batches in its render thread); the sinks' per-connection records
 * (FilesSink: names and listed gaps, `maxListedTotal`); and Node itself (about 50 MB of RSS, and
 * the collector's slack on a busy heap).
 *
 * Pure: no node:* import. Throws PcapflowError INVALID_OPTION for a bad budget.
 */
import { PcapflowError } from './errors.js';

/** The default budget: 256 MiB, fits a laptop. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;

/** The smallest budget accepted: 1 MiB. */
export const MIN_MEMORY_BUDGET = 1024 * 1024;

/**
 * CONNECTION_COST: heap bytes one connection costs while it is held, for the budget: the demux's
 * entry plus the reassembler's state of a connection that carried data both ways and is idle
 * (no out-of-order data: that is counted on its own), measured at about 1 850 bytes (1e5 such
 * connections, process.memoryUsage(), test/hostile/memory-budget.test.ts, which fails when the
 * cores cost more than this figure less SINK_ALLOWANCE), plus SINK_ALLOWANCE for the sink's
 * record of an open connection (FilesSink: its state, two file names), rounded up. A SYN-only
 * connection costs far less (about 300 bytes: the reassembler keeps it as a row of typed arrays
 * until a second kind of packet comes), so a SYN flood fits more of them in the budget than the
 * count allows: the count is the safe side.
 */
export const CONNECTION_COST = 2560;

/** The part of CONNECTION_COST left for the sink's record of an open connection. */
export const SINK_ALLOWANCE = 512;

/** The largest out-of-order buffer of one connection, when the budget leaves room for it. */
export const MAX_BUFFERED_PER_CONNECTION = 4 * 1024 * 1024;

/** MemoryPlan: the caps one budget gives each holder (see the file comment). */
export interface MemoryPlan {
  budget: number;
  /** PacketDecoder / IpDecoder `fragmentMaxBytes`. */
  fragmentMaxBytes: number;
  /** FilesSink `maxHeldBytes`: copies of sparse connections' pending bytes. */
  heldOutputBytes: number;
  /** TcpReassembler `maxBufferedTotal` and `maxBufferedPerConnection`. */
  maxBufferedTotal: number;
  maxBufferedPerConnection: number;
  /** ReorderWindow `maxBytes` (part of the out-of-order share). */
  reorderMaxBytes: number;
  /** Bytes of the connection table share, and TcpDemux `maxConnections` from it. */
  connectionBytes: number;
  maxConnections: number;
}

/** checkBudget returns `budget` when it is a whole number of bytes >= 1 MiB; throws INVALID_OPTION. */
export function checkBudget(budget: unknown): number {
  if (typeof budget !== 'number' || !Number.isSafeInteger(budget) || budget < MIN_MEMORY_BUDGET) {
    throw new PcapflowError('INVALID_OPTION', `memoryBudget must be a whole number of bytes >= ${MIN_MEMORY_BUDGET}, got ${String(budget)}`);
  }
  return budget;
}

/** planMemory splits `budget` (default 256 MiB) into the caps of each holder. Throws INVALID_OPTION. */
export function planMemory(budget: number = DEFAULT_MEMORY_BUDGET): MemoryPlan {
  checkBudget(budget);
  const fragmentMaxBytes = Math.floor(budget / 16);
  const heldOutputBytes = Math.floor(budget / 16);
  const reorderMaxBytes = Math.floor(budget / 32);
  const maxBufferedTotal = Math.floor(budget / 4) - reorderMaxBytes;
  const connectionBytes = budget - fragmentMaxBytes - heldOutputBytes - maxBufferedTotal - reorderMaxBytes;
  return {
    budget,
    fragmentMaxBytes,
    heldOutputBytes,
    maxBufferedTotal,
    maxBufferedPerConnection: Math.min(MAX_BUFFERED_PER_CONNECTION, maxBufferedTotal),
    reorderMaxBytes,
    connectionBytes,
    maxConnections: Math.max(1, Math.floor(connectionBytes / CONNECTION_COST)),
  };
}
