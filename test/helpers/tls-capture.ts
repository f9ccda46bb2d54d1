/**
 * parseTlsCapture: a capture read through the whole pipeline into the TLS parser (node:crypto's
 * MD5 and SHA-256 as its digests), for the TLS tests that compare with other tools: its records
 * and the parser (for its counters).
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { StreamEvent } from '../../src/core/events.js';
import { TlsParser, type TlsHashes, type TlsRecord } from '../../src/core/tls.js';
import { readCaptures } from '../../src/read-pipeline.js';

export const nodeHashes: TlsHashes = {
  md5: (text) => createHash('md5').update(text).digest('hex'),
  sha256: (text) => createHash('sha256').update(text).digest('hex'),
};

export async function parseTlsCapture(file: string): Promise<{ out: TlsRecord[]; parser: TlsParser }> {
  const parser = new TlsParser({ hashes: nodeHashes });
  const out: TlsRecord[] = [];
  const sink = new Writable({
    objectMode: true,
    write(batch: StreamEvent[], _enc, cb) {
      parser.write(batch, (o) => out.push(...o));
      cb();
    },
    final(cb) {
      parser.end((o) => out.push(...o));
      cb();
    },
  });
  await readCaptures([file], { sink });
  return { out, parser };
}
