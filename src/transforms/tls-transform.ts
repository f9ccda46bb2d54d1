/**
 * TlsTransform: the TlsParser core (src/core/tls.ts) as an object-mode Transform,
 * `StreamEvent[]` in (after TcpStreamTransform or TcpReassemblerTransform), `TlsRecord[]` out,
 * with the Transform's own backpressure. The fingerprints' digests are node:crypto's
 * (`nodeTlsHashes`) unless the options give others.
 */
import { createHash } from 'node:crypto';
import type { StreamEvent } from '../core/events.js';
import { TlsParser, type TlsHashes, type TlsParserOptions, type TlsRecord } from '../core/tls.js';
import { StageTransform, type StageTransformOptions } from './stage-transform.js';

/** MD5 (JA3) and SHA-256 (JA4) of UTF-8 text, lower-case hex, by node:crypto. */
export const nodeTlsHashes: TlsHashes = {
  md5: (text) => createHash('md5').update(text).digest('hex'),
  sha256: (text) => createHash('sha256').update(text).digest('hex'),
};

export class TlsTransform extends StageTransform<StreamEvent[], TlsRecord[]> {
  declare readonly core: TlsParser;
  constructor(options: Partial<TlsParserOptions> = {}, stream: StageTransformOptions = {}) {
    super(new TlsParser({ hashes: nodeTlsHashes, ...options }), stream);
  }
}
