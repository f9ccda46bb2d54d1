import type { StreamEvent } from '../core/events.js';
import { TextFormatter, type DirectionFilter } from '../core/format.js';
import { ByteSink, type ByteSinkOptions } from './byte-sink.js';

export interface StdoutSinkOptions extends ByteSinkOptions {
  /** Which data to show: 'c2s', 's2c' or 'both' (default). Open and close lines always show. */
  direction?: DirectionFilter;
}

/**
 * StdoutSink writes event batches as text for people (layout: TextFormatter in
 * src/core/format.ts): a header line per connection, each run of data under a
 * `client:port => server:port` line (reversed for s2c) with non-printable bytes escaped, gap and
 * overlap lines, and a close line with the reason and counters. One write() per batch.
 * Backpressure, EPIPE (`closedEarly`) and OUTPUT_FAILED are ByteSink's.
 */
export class StdoutSink extends ByteSink {
  private readonly formatter: TextFormatter;

  constructor(options: StdoutSinkOptions = {}) {
    super(options);
    this.formatter = new TextFormatter(options.direction ?? 'both');
  }

  protected override render(batch: readonly StreamEvent[]): string {
    return this.formatter.format(batch);
  }

  protected override renderEnd(): string {
    return this.formatter.end();
  }
}
