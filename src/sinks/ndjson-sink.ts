import { PcapflowError } from '../core/errors.js';
import type { StreamEvent } from '../core/events.js';
import { ndjsonLine, PAYLOAD_ENCODINGS, PURE_ENCODERS, type PayloadEncoder, type PayloadEncoding } from '../core/format.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';

export interface NdjsonSinkOptions extends ByteSinkOptions {
  /** How `data` carries the payload bytes: 'base64' (default), 'hex' or 'utf8' (lossy). */
  encoding?: PayloadEncoding;
}

/** NATIVE_ENCODERS: Buffer-backed encoders over the same bytes (no copy), faster than the pure ones. */
const NATIVE_ENCODERS: Readonly<Record<PayloadEncoding, PayloadEncoder>> = {
  base64: (d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'),
  hex: (d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex'),
  utf8: PURE_ENCODERS.utf8,
};

/**
 * NdjsonSink writes one JSON object per event per line, in the order received; each batch's lines
 * are joined and written with one write(), so a line is never split between writes. Backpressure,
 * EPIPE (`closedEarly`) and OUTPUT_FAILED are ByteSink's. Throws PcapflowError INVALID_OPTION
 * for an unknown encoding.
 *
 * Lines, by `type` (field names are those of src/core/events.ts; `ts` is always a string of
 * seconds with 9 decimals, so no precision is lost; fields always appear in this order):
 *
 *   {"type":"open","conn":0,"ts":"1258544215.037210000",
 *    "client":{"ip":"10.0.0.1","port":43210},"server":{"ip":"10.0.0.2","port":80},
 *    "vlan":[],"midstream":false,"options":{"c2s":{"mss":1460,"wscale":7,"sackPermitted":true},"s2c":{}}}
 *      conn: connection number from 0 (tshark's tcp.stream); vlan: VLAN ids, outermost first;
 *      midstream: the SYN was not seen; options: TCP options seen per direction (absent = not seen).
 *   {"type":"data","conn":0,"dir":"c2s","offset":0,"ts":"...","len":78,"data":"R0VUIC8g..."}
 *      dir: "c2s" (client to server) or "s2c"; offset: stream offset of the first byte (0 = first
 *      byte after the SYN); len: number of bytes; data: the bytes in the chosen encoding.
 *   {"type":"gap","conn":0,"dir":"s2c","offset":1448,"len":1448,"ts":"...","reason":"acked"}
 *      bytes [offset, offset+len) were never captured; reason: fin|rst|idle|eof|evicted|limit|acked|truncated.
 *   {"type":"overlap","conn":0,"dir":"c2s","offset":10,"len":4,"ts":"...","kept":"first"}
 *      a retransmission carried different bytes for [offset, offset+len); kept: "first" or "last".
 *   {"type":"close","conn":0,"ts":"...","reason":"fin","client":{...},"server":{...},"vlan":[],
 *    "c2s":{"bytes":78,"packets":5,"retransmitted":0,"outOfOrder":0,"gaps":0,"missing":0,"overlaps":0,
 *           "firstTs":"...","lastTs":"..."},"s2c":{...}}
 *      reason: fin|rst|idle|eof|evicted; per direction: bytes delivered, segments seen,
 *      retransmitted and out-of-order segments, gaps and missing bytes, overlaps, first/last
 *      segment time (null when none).
 *
 * Getting one stream back: the default base64 `data` of each chunk is padded on its own, and GNU
 * coreutils `base64 -d` decodes such padded chunks one per line as one stream (tested with
 * coreutils 9.1 in test/ndjson-sink.test.ts), so
 *   jq -r 'select(.type=="data" and .conn==3 and .dir=="c2s") | .data' | base64 -d
 * gives the stream. Decoders that stop at the first `=` (some BSD and busybox builds) do not; use
 * `--encoding hex` and `xxd -r -p` there, which has no padding at all.
 */
export class NdjsonSink extends ByteSink {
  readonly encoding: PayloadEncoding;
  private readonly encode: PayloadEncoder;

  constructor(options: NdjsonSinkOptions = {}) {
    const encoding = options.encoding ?? 'base64';
    if (!PAYLOAD_ENCODINGS.includes(encoding)) {
      throw new PcapflowError('INVALID_OPTION', `unknown encoding ${JSON.stringify(encoding)}: use base64, hex or utf8`);
    }
    super(options);
    this.encoding = encoding;
    this.encode = NATIVE_ENCODERS[encoding];
  }

  protected override render(batch: readonly StreamEvent[]): string {
    let out = '';
    for (let i = 0; i < batch.length; i++) out += ndjsonLine(batch[i]!, this.encode);
    return out;
  }
}
