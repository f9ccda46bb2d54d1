/**
 * TlsTransform: the TlsParser core (src/core/tls.ts) as an object-mode Transform,
 * `StreamEvent[]` in (after TcpStreamTransform or TcpReassemblerTransform), `TlsRecord[]` out,
 * with the Transform's own backpressure. The fingerprints' digests are node:crypto's
 * (`nodeTlsHashes`) unless the options give others.
 */
import crypto from 'node:crypto';
import type { StreamEvent } from '../core/events.js';
import { TlsParser, type TlsHashes, type TlsParserOptions, type TlsRecord } from '../core/tls.js';
import { StageTransform, type StageTransformOptions } from './stage-transform.js';

/** digest: node:crypto's one-shot `hash` (Node 20.12 on: no Hash object per call), else createHash. */
const digest = (algorithm: string, text: string): string =>
  typeof crypto.hash === 'function' ? crypto.hash(algorithm, text, 'hex') : crypto.createHash(algorithm).update(text).digest('hex');

/** MD5 (JA3) and SHA-256 (JA4) of UTF-8 text, lower-case hex, by node:crypto. */
export const nodeTlsHashes: TlsHashes = {
  md5: (text) => digest('md5', text),
  sha256: (text) => digest('sha256', text),
};

export class TlsTransform extends StageTransform<StreamEvent[], TlsRecord[]> {
  declare readonly core: TlsParser;
  constructor(options: Partial<TlsParserOptions> = {}, stream: StageTransformOptions = {}) {
    super(new TlsParser({ hashes: nodeTlsHashes, ...options }), stream);
  }
}
