/**
 * runPipeline joins a source, stages and a sink with stream-chain (one `chain([...])` over the
 * whole list, the cheap way) and resolves when the sink has finished. On the first error every
 * stream is destroyed (so input files are closed) and the promise rejects with that error. When
 * the sink reports that its destination closed early (EPIPE, as with `| head`), reading stops and
 * the promise resolves.
 */
import type { Readable, Stream, Writable } from 'node:stream';
import { chainUnchecked } from 'stream-chain';

type AnyStream = Readable | Writable | Stream;

export function runPipeline(streams: readonly AnyStream[], sink: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
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
    const whole = chainUnchecked([...streams]);
    whole.on('error', (err: unknown) => {
      if ((sink as { closedEarly?: boolean }).closedEarly) return;
      settle(err);
    });
    sink.once('closedEarly', () => {
      stopAll();
      settle(null);
    });
    sink.once('finish', () => settle(null));
    whole.resume();
  });
}
