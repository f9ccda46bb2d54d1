/**
 * pcap-writer: saves the raw packets of a stream as a classic pcap file with nanosecond timestamps
 * (magic 0xa1b23c4d, little-endian, version 2.4), so that a live session (`pcapflow live
 * --write-pcap FILE`) can be replayed with `pcapflow read FILE`.
 *
 * PcapWriter is the pure core: it encodes each batch into one byte chunk (the file header before
 * the first). PcapWriteTransform sits right after the source: it writes the chunks to the file and
 * passes every batch (and ClockTick) on unchanged, waiting for the file when it falls behind.
 */
import fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { PcapflowError } from '../core/errors.js';
import { ClockTick } from '../core/live-idle.js';
import type { Packet } from '../core/packet.js';
import type { Stage } from '../core/stage.js';

/** Classic pcap magic for nanosecond timestamps. */
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
const FILE_HEADER = 24;
const RECORD_HEADER = 16;

export interface PcapWriterOptions {
  /** LINKTYPE_* of every packet written (classic pcap has one per file). */
  linkType: number;
  /** Snaplen written in the file header. Default 65535. */
  snaplen?: number;
}

export interface PcapWriterStats {
  packets: number;
  /** Bytes of the file, headers included. */
  bytes: number;
  /** Packets not written because their link type differs from the file's. */
  otherLinkType: number;
}

/**
 * PcapWriter encodes `Packet[]` batches as classic pcap records: timestamp (tsSec, tsNsec),
 * caplen, len and the bytes of `data` (copied). The file header comes with the first output, or
 * from `end()` when no packet came, so the output is always a readable file. Packets of another
 * link type are counted and left out. Throws nothing. Pure: no node:* import.
 */
export class PcapWriter implements Stage<Packet[], Uint8Array> {
  readonly linkType: number;
  readonly snaplen: number;
  readonly stats: PcapWriterStats = { packets: 0, bytes: 0, otherLinkType: 0 };
  private started = false;

  constructor(options: PcapWriterOptions) {
    this.linkType = options.linkType;
    this.snaplen = options.snaplen ?? 65535;
  }

  write(batch: Packet[], emit: (out: Uint8Array) => void): void {
    let size = this.started ? 0 : FILE_HEADER;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.linkType === this.linkType) size += RECORD_HEADER + p.dataEnd - p.dataOff;
    }
    if (size === 0) return;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let at = 0;
    if (!this.started) at = this.header(view);
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.linkType !== this.linkType) {
        this.stats.otherLinkType++;
        continue;
      }
      const n = p.dataEnd - p.dataOff;
      view.setUint32(at, p.tsSec >>> 0, true);
      view.setUint32(at + 4, p.tsNsec, true);
      view.setUint32(at + 8, n, true);
      view.setUint32(at + 12, p.len > n ? p.len : n, true);
      out.set(p.data, at + RECORD_HEADER);
      at += RECORD_HEADER + n;
      this.stats.packets++;
    }
    this.stats.bytes += size;
    emit(out);
  }

  end(emit: (out: Uint8Array) => void): void {
    if (this.started) return;
    const out = new Uint8Array(FILE_HEADER);
    this.header(new DataView(out.buffer));
    this.stats.bytes += FILE_HEADER;
    emit(out);
  }

  private header(view: DataView): number {
    this.started = true;
    view.setUint32(0, PCAP_MAGIC_NSEC, true);
    view.setUint16(4, 2, true);
    view.setUint16(6, 4, true);
    view.setInt32(8, 0, true); // thiszone
    view.setUint32(12, 0, true); // sigfigs
    view.setUint32(16, this.snaplen, true);
    view.setUint32(20, this.linkType, true);
    return FILE_HEADER;
  }
}

/**
 * PcapWriteTransform: an object-mode pass-through that saves every packet to `path` (created or
 * truncated at construction, so a bad path fails before the capture starts) with PcapWriter.
 * It holds the next batch back while the file is behind (its write() returned false). The file
 * is complete and closed when the transform finishes. Throws PcapflowError OUTPUT_FAILED when the
 * file cannot be created; a write error destroys the stream with OUTPUT_FAILED.
 */
export class PcapWriteTransform extends Transform {
  readonly core: PcapWriter;
  readonly path: string;
  private readonly file: fs.WriteStream;
  private ok = true;
  private readonly writeOut = (out: Uint8Array): void => {
    if (!this.file.write(out)) this.ok = false;
  };

  constructor(path: string, options: PcapWriterOptions) {
    super({ objectMode: true, highWaterMark: 4 });
    this.path = path;
    this.core = new PcapWriter(options);
    let fd: number;
    try {
      fd = fs.openSync(path, 'w');
    } catch (err) {
      throw new PcapflowError('OUTPUT_FAILED', `cannot create ${path}: ${(err as Error).message}`, { file: path, cause: err });
    }
    this.file = fs.createWriteStream(path, { fd, highWaterMark: 1 << 20 });
    this.file.on('error', (err: Error) => {
      this.destroy(new PcapflowError('OUTPUT_FAILED', `cannot write ${path}: ${err.message}`, { file: path, cause: err }));
    });
  }

  override _transform(chunk: Packet[] | ClockTick, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof ClockTick)) this.core.write(chunk, this.writeOut);
    this.push(chunk);
    if (this.ok) {
      callback();
      return;
    }
    this.ok = true;
    this.file.once('drain', () => callback());
  }

  override _flush(callback: TransformCallback): void {
    this.core.end(this.writeOut);
    this.file.once('close', () => callback());
    this.file.end();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.file.closed) this.file.destroy();
    callback(err);
  }
}
