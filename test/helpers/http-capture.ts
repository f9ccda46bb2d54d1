/**
 * parseHttpCapture: a capture read through the whole pipeline into the HTTP parser, for the HTTP
 * tests that compare with other tools: the parser's events and counters, and `tap` sees every
 * stream event batch on its way (to keep the streams themselves).
 */
import { Writable } from 'node:stream';
import type { StreamEvent } from '../../src/core/events.js';
import { HttpParser, type HttpEvent } from '../../src/core/http.js';
import { readCaptures } from '../../src/read-pipeline.js';

export async function parseHttpCapture(file: string, tap: (batch: readonly StreamEvent[]) => void = () => undefined): Promise<{ out: HttpEvent[]; parser: HttpParser }> {
  const parser = new HttpParser();
  const out: HttpEvent[] = [];
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
  return { out, parser };
}
