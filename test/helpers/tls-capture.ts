/**
 * parseTlsCapture: a capture read through the whole pipeline into the TLS parser (parseCapture;
 * node:crypto's MD5 and SHA-256 as its digests, `nodeTlsHashes`), for the TLS tests that compare
 * with other tools: its records and the parser (for its counters).
 */
import { TlsParser, type TlsRecord } from '../../src/core/tls.js';
import { nodeTlsHashes } from '../../src/transforms/tls-transform.js';
import { parseCapture } from './parse-capture.js';

export { nodeTlsHashes as nodeHashes };

export async function parseTlsCapture(file: string): Promise<{ out: TlsRecord[]; parser: TlsParser }> {
  const parser = new TlsParser({ hashes: nodeTlsHashes });
  return { out: await parseCapture(file, parser), parser };
}
