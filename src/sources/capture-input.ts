import type { Readable } from 'node:stream';
import type { Gunzip } from 'node:zlib';
import { zlib } from '../builtins.js';
import type { CaptureFormat, CaptureReader } from '../core/capture-reader.js';
import { PcapflowError } from '../core/errors.js';

/** InputStats: what the source did with one input. */
export interface InputStats {
  /** The name as given (`-` for stdin). */
  file: string;
  /** pending: not reached yet; reading; done: read to the end; failed: the source stopped on it. */
  state: 'pending' | 'reading' | 'done' | 'failed';
  /**
   * Index of this input's first packet. Inputs read one after another (`order: 'concat'`, or a
   * single input): the index it started at. Merged inputs: the index its first packet got in the
   * merged order, 0 while it has delivered none.
   */
  firstIndex: number;
  packets: number;
  /** Bytes of this input parsed (decompressed bytes for a gzip input). */
  bytes: number;
  format: CaptureFormat | null;
  linkTypes: number[];
  sections: number;
  interfaces: number;
  blocksSkipped: number;
  /** pcapng blocks skipped because they were corrupt (CaptureReaderStats.badBlocks). */
  badBlocks: number;
  /** 'gzip' when the input was gzip-compressed (read through node:zlib), else null. */
  compression: 'gzip' | null;
  /** Compressed bytes read from a gzip input (0 for others; `bytes` counts what they decompressed to). */
  compressedBytes: number;
}

/** newInputStats: the stats of an input not reached yet. */
export function newInputStats(file: string): InputStats {
  return { file, state: 'pending', firstIndex: 0, packets: 0, bytes: 0, format: null, linkTypes: [], sections: 0, interfaces: 0, blocksSkipped: 0, badBlocks: 0, compression: null, compressedBytes: 0 };
}

/** Compression formats recognised by their magic (the first bytes), whatever the input's name. */
export type CompressionFormat = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'lz4';

/** Bytes looked at to tell a compressed input: the longest magic (xz). */
const SNIFF_BYTES = 6;

const MAGICS: ReadonlyArray<readonly [CompressionFormat, readonly number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['bzip2', [0x42, 0x5a, 0x68]], // 'BZh'
  ['lz4', [0x04, 0x22, 0x4d, 0x18]], // frame format
];

/** The command line that decompresses each format to stdout. */
const DECOMPRESS: Record<Exclude<CompressionFormat, 'gzip'>, string> = { zstd: 'zstd -dc', xz: 'xz -dc', bzip2: 'bzip2 -dc', lz4: 'lz4 -dc' };

/** compressionOf tells the compression format from the first bytes of an input (null: none recognised). No capture magic starts like these. */
export function compressionOf(head: Uint8Array): CompressionFormat | null {
  for (const [format, magic] of MAGICS) {
    if (head.length < magic.length) continue;
    let i = 0;
    while (i < magic.length && head[i] === magic[i]) i++;
    if (i === magic.length) return format;
  }
  return null;
}

/** shellWord quotes `s` for a POSIX shell when it needs it. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** compressedError: CAPTURE_COMPRESSED for an input in a format pcapflow does not decompress, naming the command that does. */
export function compressedError(format: Exclude<CompressionFormat, 'gzip'>, file: string): PcapflowError {
  const cmd = DECOMPRESS[format];
  const how = file === '-' ? `... | ${cmd} | pcapflow read -` : `${cmd} ${shellWord(file)} | pcapflow read -`;
  return new PcapflowError('CAPTURE_COMPRESSED', `input is ${format}-compressed, which pcapflow does not decompress (it reads gzip): decompress it into a pipe, e.g. \`${how}\``, { file, offset: 0 });
}

const NOT_FOUND = new Set(['ENOENT', 'EACCES', 'EPERM', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

/** readError: INPUT_NOT_FOUND for a path that cannot be opened, INPUT_READ_FAILED for another read error. */
export function readError(err: Error, name: string): PcapflowError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (NOT_FOUND.has(code)) return new PcapflowError('INPUT_NOT_FOUND', `cannot open ${name}: ${err.message}`, { file: name, cause: err });
  return new PcapflowError('INPUT_READ_FAILED', `cannot read ${name}: ${err.message}`, { file: name, cause: err });
}

const ignore = (): void => undefined;
const EMPTY = new Uint8Array(0);

/**
 * CaptureInput is one open input of a CaptureSource: its byte stream (a file stream or stdin),
 * the CaptureReader that parses it, and what is needed to read a gzip-compressed input.
 *
 * `next()` returns the capture bytes chunk by chunk. The first bytes decide what the input is:
 * gzip (1f 8b) inserts a gunzip stage (node:zlib, streaming, `chunkSize` bytes per output chunk)
 * after the byte stream, and the chunks come from it from then on; zstd, xz, bzip2 and lz4 are
 * CAPTURE_COMPRESSED; anything else goes to the reader as it is (no copy, and no cost past the
 * first chunk). A stream fault (a read error, corrupt or cut gzip data) is thrown by `next()`
 * once the bytes before it have been returned, so every packet before it is read.
 *
 * The owner calls `next()` and the reader; `wake` is called whenever `next()` may have more to
 * say (bytes arrived, the stream ended, a fault).
 */
export class CaptureInput {
  readonly name: string;
  readonly isStdin: boolean;
  readonly stats: InputStats;
  readonly reader: CaptureReader;
  /** Where the capture bytes come from: the input's own stream, or the gunzip after it. */
  private stream: Readable;
  private readonly raw: Readable;
  private gunzip: Gunzip | null = null;
  /** `next()` returns null and will return nothing more. */
  ended: boolean;
  /** Called when `next()` may have more to say. */
  wake: () => void;
  private readonly chunkSize: number;
  /** The first bytes are still to be looked at (see SNIFF_BYTES). */
  private sniffing = true;
  /** First bytes held until there are enough to look at. */
  private held: Uint8Array | null = null;
  /** A fault of the stream, thrown once the bytes before it are read. */
  private fault: Error | null = null;
  private released = false;
  private readonly onReadable = (): void => this.wake();
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    if (this.fault === null) this.fault = readError(err, this.name);
    this.wake();
  };
  private readonly onGunzipError = (err: Error): void => {
    if (this.fault === null) this.fault = err;
    this.wake();
  };
  private readonly countCompressed = (chunk: Uint8Array | string): void => {
    this.stats.compressedBytes += chunk.length;
  };

  constructor(name: string, stats: InputStats, reader: CaptureReader, raw: Readable, options: { isStdin: boolean; chunkSize: number; wake: () => void }) {
    this.name = name;
    this.stats = stats;
    this.reader = reader;
    this.raw = raw;
    this.stream = raw;
    this.isStdin = options.isStdin;
    this.chunkSize = options.chunkSize;
    this.wake = options.wake;
    this.ended = raw.readableEnded === true;
    raw.on('readable', this.onReadable);
    raw.on('end', this.onEnd);
    raw.on('error', this.onError);
  }

  /** True once the first bytes showed a gzip input (the file stream may then read plain chunks). */
  get gzip(): boolean {
    return this.gunzip !== null;
  }

  /**
   * next returns the next chunk of capture bytes, or null: none buffered yet (`wake` follows) or,
   * when `ended`, none left. Throws CAPTURE_COMPRESSED for a compressed format pcapflow does not
   * read, and the stream's fault once the bytes before it are read.
   */
  next(): Uint8Array | null {
    for (;;) {
      const chunk = this.stream.read() as Buffer | string | null;
      if (chunk === null) {
        if (this.fault !== null) throw this.streamFault(this.fault);
        // an input shorter than SNIFF_BYTES (then `ended` may turn false again: a gunzip started)
        return this.sniffing && this.ended ? this.sniff(EMPTY, true) : null;
      }
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (!this.sniffing) return bytes;
      const head = this.sniff(bytes, false);
      if (head !== null) return head;
      // too few bytes yet, or the gunzip now comes first: read on
    }
  }

  /** sniff looks at the first bytes (held until there are SNIFF_BYTES, or the end): the bytes for the reader, or null. */
  private sniff(bytes: Uint8Array, atEnd: boolean): Uint8Array | null {
    let head = bytes;
    if (this.held !== null) {
      head = Buffer.concat([this.held, bytes]);
      this.held = null;
    }
    if (head.length < SNIFF_BYTES && !atEnd) {
      this.held = head;
      return null;
    }
    this.sniffing = false;
    const format = compressionOf(head);
    if (format === null) return head.length > 0 ? head : null;
    if (format !== 'gzip') throw compressedError(format, this.name);
    this.startGunzip(head);
    return null;
  }

  /** startGunzip puts a gunzip stage after the byte stream, starting with `head`, the bytes already read. */
  private startGunzip(head: Uint8Array): void {
    const raw = this.raw;
    const gz = zlib().createGunzip({ chunkSize: Math.max(this.chunkSize, 1024) });
    this.gunzip = gz;
    this.stats.compression = 'gzip';
    this.stats.compressedBytes += head.length;
    raw.removeListener('readable', this.onReadable);
    raw.removeListener('end', this.onEnd);
    gz.on('readable', this.onReadable);
    gz.on('end', this.onEnd);
    gz.on('error', this.onGunzipError);
    this.stream = gz;
    this.ended = false;
    gz.write(head);
    raw.on('data', this.countCompressed);
    raw.pipe(gz);
  }

  /** streamFault: the error to raise for a stream fault, with where the reader was (decompressed bytes for gzip). */
  private streamFault(err: Error): Error {
    if (err instanceof PcapflowError || this.gunzip === null) return err;
    const code = (err as NodeJS.ErrnoException).code;
    const where = { file: this.name, packet: this.reader.nextIndex, offset: this.reader.stats.bytes, cause: err };
    const read = `${this.stats.compressedBytes} compressed bytes read, ${this.reader.stats.bytes} decompressed`;
    if (code === 'Z_BUF_ERROR') {
      return new PcapflowError('CAPTURE_TRUNCATED_COMPRESSED', `gzip input ended inside its compressed stream (${read}): the capture was cut`, where);
    }
    return new PcapflowError('CAPTURE_CORRUPT_COMPRESSED', `corrupt gzip data: ${err.message} (${read})`, where);
  }

  /**
   * release detaches the input: a late error is ignored, stdin is paused (never closed), a file
   * stream is destroyed when `destroy` (else it closes itself at its end), a gunzip always.
   */
  release(destroy: boolean): void {
    if (this.released) return;
    this.released = true;
    const raw = this.raw;
    raw.removeListener('readable', this.onReadable);
    raw.removeListener('end', this.onEnd);
    raw.removeListener('error', this.onError);
    raw.removeListener('data', this.countCompressed);
    raw.on('error', ignore); // a late error from a released input must not crash the process
    const gz = this.gunzip;
    if (gz !== null) {
      raw.unpipe(gz);
      gz.removeListener('readable', this.onReadable);
      gz.removeListener('end', this.onEnd);
      gz.removeListener('error', this.onGunzipError);
      gz.on('error', ignore);
      gz.destroy();
    }
    if (this.isStdin) raw.pause();
    else if (destroy || gz !== null) raw.destroy();
  }

  /** closed resolves once the input's descriptor is closed (at once for stdin). Call after release. */
  closed(): Promise<void> {
    const raw = this.raw as Readable & { closed?: boolean };
    if (this.isStdin || raw.closed === true) return Promise.resolve();
    return new Promise((resolve) => raw.once('close', () => resolve()));
  }

  /** syncStats copies the reader's counters into `stats`. */
  syncStats(): void {
    const r = this.reader;
    const s = r.stats;
    const st = this.stats;
    st.packets = s.packets;
    st.bytes = s.bytes;
    st.format = r.format;
    st.linkTypes = [...r.linkTypes];
    st.sections = s.sections;
    st.interfaces = s.interfaces;
    st.blocksSkipped = s.blocksSkipped;
    st.badBlocks = s.badBlocks;
  }
}
