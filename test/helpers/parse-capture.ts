/**
 * parseCapture: a capture read through the whole read pipeline into an application-layer parser
 * (HttpParser, TlsParser: `write(batch, emit)` then `end(emit)`), for the tests that compare it
 * with other tools: what it emitted, and `tap` sees every stream event batch on its way (to keep
 * the streams themselves).
 */
import { Writable } from 'node:stream';
import type { StreamEvent } from '../../src/core/events.js';
import { readCaptures } from '../../src/read-pipeline.js';

export interface BatchParser<O> {
  write(batch: readonly StreamEvent[], emit: (out: O[]) => void): void;
  end(emit: (out: O[]) => void): void;
}

export async function parseCapture<O>(file: string, parser: BatchParser<O>, tap: (batch: readonly StreamEvent[]) => void = () => undefined): Promise<O[]> {
  const out: O[] = [];
  const sink = new Writable({
    objectMode: true,
    write(batch: StreamEvent[], _enc, cb) {
      tap(batch);
      parser.write(batch, (o) => out.push(...o));
      cb();
    },
    final(cb) {
      parser.end((o) => out.push(...o));
      cb();
    },
  });
  await readCaptures([file], { sink });
  return out;
}
