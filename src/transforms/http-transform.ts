/**
 * HttpTransform: the HttpParser core (src/core/http.ts) as an object-mode Transform,
 * `StreamEvent[]` in (after TcpStreamTransform or TcpReassemblerTransform), `HttpEvent[]` out,
 * with the Transform's own backpressure. Body events are views of the data events' bytes.
 */
import type { StreamEvent } from '../core/events.js';
import { HttpParser, type HttpEvent, type HttpParserOptions } from '../core/http.js';
import { StageTransform, type StageTransformOptions } from './stage-transform.js';

export class HttpTransform extends StageTransform<StreamEvent[], HttpEvent[]> {
  declare readonly core: HttpParser;
  constructor(options: HttpParserOptions = {}, stream: StageTransformOptions = {}) {
    super(new HttpParser(options), stream);
  }
}
