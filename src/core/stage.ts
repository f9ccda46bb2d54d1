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

/**
 * StageChain runs stages one after another as one Stage: each output of a stage is written to
 * the next at once, synchronously, so a batch goes through every stage before the next batch is
 * taken (its packets die young, and no queue sits between the stages). `end` ends the stages in
 * order, each one's final outputs going through the rest. Throws what a stage throws.
 */
export class StageChain<In, Out> implements Stage<In, Out> {
  readonly stages: readonly Stage<unknown, unknown>[];
  private emitOut: (out: Out) => void = () => undefined;
  /** into[i]: writes an output of stage i into stage i + 1 (the last one emits). */
  private readonly into: ((x: unknown) => void)[] = [];

  constructor(stages: readonly Stage<unknown, unknown>[]) {
    if (stages.length === 0) throw new RangeError('StageChain needs at least one stage');
    this.stages = stages;
    // last to first: each stage's outputs go to the link that writes into the stage after it
    let link: (x: unknown) => void = (x) => this.emitOut(x as Out);
    for (let i = stages.length - 1; i >= 0; i--) {
      this.into[i] = link;
      const stage = stages[i]!;
      const out = link;
      link = (x) => stage.write(x, out);
    }
  }

  write(input: In, emit: (out: Out) => void): void {
    this.emitOut = emit;
    this.stages[0]!.write(input, this.into[0]!);
  }

  end(emit: (out: Out) => void): void {
    this.emitOut = emit;
    for (let i = 0; i < this.stages.length; i++) this.stages[i]!.end(this.into[i]!);
  }

  /** The stats of every stage, in order. */
  get stats(): object[] {
    return this.stages.map((s) => s.stats);
  }
}
