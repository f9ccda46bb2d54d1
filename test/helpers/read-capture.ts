/**
 * read-capture: feed bytes to a CaptureReader in chosen pieces and collect what it emits, the
 * error it threw (if any) and the reader itself. Shared by the capture-reader suites.
 */
import { CaptureReader, type CaptureReaderOptions } from '../../src/core/capture-reader.js';
import { isPcapflowError, type PcapflowError } from '../../src/core/errors.js';
import type { Packet } from '../../src/core/packet.js';

export interface ReadResult {
  packets: Packet[];
  batches: Packet[][];
  /** Packets emitted by each write call (index = write number). */
  perWrite: number[];
  error: PcapflowError | null;
  /** 'write' or 'end': where the error was thrown. */
  thrownBy: 'write' | 'end' | null;
  reader: CaptureReader;
}

/**
 * readCapture splits `bytes` at `cuts` (sorted offsets) or into pieces of `chunk` bytes, writes
 * them, then ends. Non-PcapflowErrors propagate.
 */
export function readCapture(bytes: Uint8Array, split: { chunk?: number; cuts?: number[] } = {}, options: CaptureReaderOptions = {}): ReadResult {
  const reader = new CaptureReader(options);
  const packets: Packet[] = [];
  const batches: Packet[][] = [];
  const perWrite: number[] = [];
  let error: PcapflowError | null = null;
  let thrownBy: 'write' | 'end' | null = null;
  const pieces: Uint8Array[] = [];
  if (split.cuts) {
    let prev = 0;
    for (const c of [...split.cuts, bytes.length]) {
      pieces.push(bytes.subarray(prev, c));
      prev = c;
    }
  } else {
    const size = split.chunk ?? Math.max(1, bytes.length);
    for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
  }
  let count = 0;
  const emit = (b: Packet[]): void => {
    batches.push(b);
    packets.push(...b);
    count += b.length;
  };
  try {
    for (const piece of pieces) {
      count = 0;
      thrownBy = 'write';
      reader.write(piece, emit);
      perWrite.push(count);
    }
    thrownBy = 'end';
    reader.end(emit);
    thrownBy = null;
  } catch (err) {
    if (!isPcapflowError(err)) throw err;
    error = err;
  }
  return { packets, batches, perWrite, error, thrownBy: error ? thrownBy : null, reader };
}

/** describePacket: the reader-owned fields of a packet as one comparable string. */
export function describePacket(p: Packet): string {
  return `${p.index} ${p.tsSec}.${String(p.tsNsec).padStart(9, '0')} ${p.caplen}/${p.len} lt${p.linkType} if${p.iface} ${Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('hex')}`;
}

/** collectSource reads a source of packet batches to its end (or error): the packets and the error. */
export async function collectSource(source: AsyncIterable<unknown>): Promise<{ packets: Packet[]; error: PcapflowError | null }> {
  const packets: Packet[] = [];
  try {
    for await (const batch of source) packets.push(...(batch as Packet[]));
  } catch (err) {
    return { packets, error: err as PcapflowError };
  }
  return { packets, error: null };
}
