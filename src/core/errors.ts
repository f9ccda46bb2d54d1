/**
 * PcapflowError is the only error pcapflow throws on purpose. `code` is one of a closed set
 * (ErrorCode); tests and callers branch on the code, never on the message. Context (packet
 * index, byte offset in the input, file, connection) is copied onto the error when known.
 */

/** Every code a user can cause. Adding one is an API change: document it in the README table. */
export const ERROR_CODES = [
  // capture files
  'CAPTURE_BAD_MAGIC', // not a pcap or pcapng file
  'CAPTURE_EMPTY', // input ended before a complete file header
  'CAPTURE_COMPRESSED', // compressed with a format pcapflow does not read (zstd, xz, bzip2, lz4); the message names the command that decompresses it
  'CAPTURE_TRUNCATED_COMPRESSED', // a gzip input ended inside its compressed stream
  'CAPTURE_CORRUPT_COMPRESSED', // a gzip input whose compressed data is corrupt (bad header, deflate data or checksum, trailing garbage)
  'PCAP_BAD_VERSION', // classic pcap with a version other than 2.x
  'PCAP_RECORD_TOO_LARGE', // record captured length over the snaplen or over 256 KiB
  'PCAP_TRUNCATED_RECORD', // input ended inside a record (header or data)
  'PCAPNG_BAD_BLOCK', // pcapng block with a corrupt length or layout
  'PCAPNG_BAD_SECTION', // pcapng section header that cannot be read (version, options)
  'PCAPNG_TRUNCATED_BLOCK', // input ended inside a pcapng block
  // decoding (used as skip reasons with onError 'skip', thrown with onError 'fail')
  'LINK_UNSUPPORTED', // link type pcapflow does not decode
  'LINK_MALFORMED', // link-layer header shorter than it must be
  'IPV4_BAD_HEADER',
  'IPV6_BAD_HEADER',
  'IP_FRAGMENT_INVALID',
  'TCP_BAD_HEADER',
  // inputs, options, outputs
  'INPUT_NOT_FOUND', // a path that cannot be opened
  'INPUT_READ_FAILED',
  'INVALID_OPTION',
  'OUTPUT_FAILED', // a sink could not write (disk full, permissions, closed pipe)
  'FILTER_SYNTAX', // a --filter expression that cannot be parsed or uses what pcapflow does not support; `column` points at it
  // live capture
  'LIVE_UNAVAILABLE', // the optional cap package (libpcap binding) cannot be loaded: not installed or not built
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Context copied onto a PcapflowError; every field is optional. */
export interface ErrorContext {
  /** 1-based packet index (as tshark numbers frames) of the packet at fault or being read. */
  packet?: number;
  /** Byte offset of the fault in the input file (or stream); in the decompressed stream for a gzip input. */
  offset?: number;
  /** Input name: a path, or `-` for stdin. */
  file?: string;
  /** Connection number, when the fault belongs to one. */
  conn?: number;
  /** 1-based column in a filter expression (FILTER_SYNTAX). */
  column?: number;
  cause?: unknown;
}

/** PcapflowError: `name` is always 'PcapflowError', `code` one of ErrorCode. */
export class PcapflowError extends Error {
  override readonly name = 'PcapflowError';
  readonly code: ErrorCode;
  readonly packet: number | undefined;
  readonly offset: number | undefined;
  readonly file: string | undefined;
  readonly conn: number | undefined;
  readonly column: number | undefined;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.code = code;
    this.packet = context.packet;
    this.offset = context.offset;
    this.file = context.file;
    this.conn = context.conn;
    this.column = context.column;
  }

  /** One line for people: `CODE: message (file F, packet N, offset O)`. */
  describe(): string {
    const where: string[] = [];
    if (this.file !== undefined) where.push(`file ${this.file}`);
    if (this.packet !== undefined) where.push(`packet ${this.packet}`);
    if (this.offset !== undefined) where.push(`offset ${this.offset}`);
    if (this.conn !== undefined) where.push(`conn ${this.conn}`);
    return `${this.code}: ${this.message}${where.length > 0 ? ` (${where.join(', ')})` : ''}`;
  }
}

/** isPcapflowError narrows an unknown thrown value. */
export function isPcapflowError(e: unknown): e is PcapflowError {
  return e instanceof PcapflowError;
}
