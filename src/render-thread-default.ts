/**
 * When the NDJSON sink's render thread is on by default: shared by the read pipeline and the
 * CLI's option checking, in a module of its own so that the CLI can ask without loading the
 * pipeline.
 */
import { availableParallelism } from 'node:os';

/** Capture files of this many bytes or more (in all) get the NDJSON render thread by default. */
export const RENDER_THREAD_MIN_INPUT = 128 << 20;

/**
 * renderThreadByDefault: the NDJSON render thread's default for inputs of `fileBytes` (null: not
 * all capture files). On the bulk and many bench captures and a 1.5 GB one it took 0.82-0.96x
 * the time, peak RSS within 6 MB of one thread's; starting it costs about 0.1 s of CPU, which
 * inputs of 30-60 MB did not win back (1.10-1.23x); on one core there is nothing to gain.
 */
export function renderThreadByDefault(fileBytes: number | null): boolean {
  return fileBytes !== null && fileBytes >= RENDER_THREAD_MIN_INPUT && availableParallelism() > 1;
}
