/**
 * Stage is the contract every pure, stream-free core follows: `write` takes one input and calls
 * `emit` synchronously zero or more times; `end` flushes whatever is held and may emit more.
 * Cores import nothing from `node:stream`; src/transforms wraps each one in a Transform.
 * A core throws only PcapflowError.
 */
export interface Stage<In, Out> {
  write(input: In, emit: (out: Out) => void): void;
  end(emit: (out: Out) => void): void;
  /** Counters, live: read them at any time. Keys are stable and printed by `--stats` (numbers, or maps of numbers). */
  readonly stats: object;
}

/** What a decoder does with a packet it cannot decode: throw a PcapflowError, or count and skip it. */
export type OnError = 'fail' | 'skip';
