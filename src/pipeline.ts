/**
 * runPipeline joins a source, stages and a sink with stream-chain (one `chain([...])` over the
 * whole list, the cheap way) and resolves when the sink has finished.
 *
 * Errors:
 * - A fault before the sink (a corrupt or cut capture, an unreadable input, a decoder under
 *   onError 'fail') does not throw away what was decoded before it: the streams before the
 *   failed one are destroyed (so input files are closed), the stream after it is ended as at end
 *   of input, so every later stage flushes (connections close, files are closed and renamed,
 *   NDJSON lines are written whole), and once the sink has finished the promise rejects with
 *   that first fault.
 * - A sink error (OUTPUT_FAILED) destroys every stream and rejects at once with it, also while
 *   the stages are draining after an earlier fault.
 * - When the sink reports that its destination closed early (EPIPE, as with `| head`), reading
 *   stops and the promise resolves.
 */
import type { Readable, Stream, Writable } from 'node:stream';
import { chainUnchecked } from 'stream-chain';

type AnyStream = Readable | Writable | Stream;

export function runPipeline(streams: readonly AnyStream[], sink: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    /** The first fault of a stream before the sink: reported once the sink has drained. */
    let fault: unknown = null;
    const stopAll = (): void => {
      for (const s of streams) if (s !== sink) (s as Readable).destroy();
    };
    const settle = (err: unknown): void => {
      if (settled) return;
      settled = true;
      if (err === null) resolve();
      else {
        stopAll();
        if (!sink.destroyed) sink.destroy();
        reject(err);
      }
    };
    const closedEarly = (): boolean => (sink as { closedEarly?: boolean }).closedEarly === true;
    const last = streams.length - 1;
    const whole = chainUnchecked([...streams]);
    // Every inner error is re-emitted on the chain; the listeners below act on them.
    whole.on('error', () => undefined);
    streams.forEach((s, i) => {
      (s as Readable).on('error', (err: unknown) => {
        if (settled || closedEarly()) return;
        if (s === sink || i === last) {
          settle(err);
          return;
        }
        if (fault === null) fault = err;
        for (let k = 0; k < i; k++) (streams[k] as Readable).destroy();
        const next = streams[i + 1] as Writable;
        (s as Readable).unpipe?.(next);
        if (!next.writableEnded && !next.destroyed) next.end();
      });
    });
    sink.once('closedEarly', () => {
      stopAll();
      settle(null);
    });
    sink.once('finish', () => settle(fault));
    whole.resume();
  });
}
