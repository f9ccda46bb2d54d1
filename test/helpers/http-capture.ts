/**
 * parseHttpCapture: a capture read through the whole pipeline into the HTTP parser (parseCapture),
 * for the HTTP tests that compare with other tools: the parser's events and counters, and `tap`
 * sees every stream event batch on its way (to keep the streams themselves).
 */
import type { StreamEvent } from '../../src/core/events.js';
import { HttpParser, type HttpEvent } from '../../src/core/http.js';
import { parseCapture } from './parse-capture.js';

export async function parseHttpCapture(file: string, tap?: (batch: readonly StreamEvent[]) => void): Promise<{ out: HttpEvent[]; parser: HttpParser }> {
  const parser = new HttpParser();
  return { out: await parseCapture(file, parser, tap), parser };
}
