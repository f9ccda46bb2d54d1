/**
 * tcp-pipeline: run a capture file through CaptureReader → PacketDecoder → TcpDemux →
 * TcpReassembler synchronously (no streams) and collect the events, for the TCP tests. A reader
 * error after some packets (a broken file) ends the run like end of input; `error` tells.
 */
import { readFileSync } from 'node:fs';
import { CaptureReader } from '../../src/core/capture-reader.js';
import type { StreamEvent } from '../../src/core/events.js';
import { TcpDemux, type TcpDemuxOptions } from '../../src/core/flow-table.js';
import type { Packet } from '../../src/core/packet.js';
import { PacketDecoder } from '../../src/core/packet-decoder.js';
import { TcpReassembler, type TcpReassemblerOptions } from '../../src/core/reassembler.js';

export interface PipelineResult {
  events: StreamEvent[];
  /** Frame number (1-based) → connection number, for every packet the demux placed. */
  connOfFrame: Map<number, number>;
  demux: TcpDemux;
  reasm: TcpReassembler;
  error: unknown;
}

export function runCapture(file: string, options: TcpDemuxOptions & TcpReassemblerOptions = {}, chunkSize = 65536): PipelineResult {
  const bytes = readFileSync(file);
  const reader = new CaptureReader({ file });
  const decoder = new PacketDecoder({ onError: 'skip' });
  const demux = new TcpDemux({ maxConnections: options.maxConnections, idleTimeout: options.idleTimeout });
  const reasm = new TcpReassembler(options);
  const events: StreamEvent[] = [];
  const connOfFrame = new Map<number, number>();
  const take = (evs: StreamEvent[]): void => {
    for (const e of evs) events.push(e);
  };
  const afterDemux = (batch: Packet[]): void => {
    for (const p of batch) if (p.flow !== null) connOfFrame.set(p.index, p.flow.id);
    reasm.write(batch, take);
  };
  const decoded = (batch: Packet[]): void => demux.write(batch, afterDemux);
  const read = (batch: Packet[]): void => decoder.write(batch, decoded);
  let error: unknown = null;
  try {
    for (let i = 0; i < bytes.length; i += chunkSize) reader.write(bytes.subarray(i, i + chunkSize), read);
    reader.end(read);
  } catch (e) {
    error = e;
  }
  decoder.end();
  demux.end(() => undefined);
  reasm.end(take);
  return { events, connOfFrame, demux, reasm, error };
}

/** collect concatenates each connection's data per direction. */
export function collect(events: StreamEvent[]): Map<number, { c2s: Buffer; s2c: Buffer }> {
  const parts = new Map<number, { c2s: Uint8Array[]; s2c: Uint8Array[] }>();
  for (const e of events) {
    if (e.type !== 'data') continue;
    let p = parts.get(e.conn);
    if (!p) parts.set(e.conn, (p = { c2s: [], s2c: [] }));
    p[e.dir].push(e.data);
  }
  const out = new Map<number, { c2s: Buffer; s2c: Buffer }>();
  for (const [k, p] of parts) out.set(k, { c2s: Buffer.concat(p.c2s), s2c: Buffer.concat(p.s2c) });
  return out;
}
