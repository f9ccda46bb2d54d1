/**
 * V8 heap tuning for a run: process-wide V8 flags that keep peak RSS down at no cost in time
 * (bench/PROFILE.md, "Heap growth" and "Young generation"). tuneHeap is called by ReadPipeline
 * (unless `tuneHeap: false`) and by `pcapflow live`; workerStarted by every sink that starts a
 * worker thread; fullCollection by the read pipeline's chunk pool.
 */
import { perfHooks, v8, vm } from './builtins.js';

/**
 * HEAP_GROWING_PERCENT: how much V8's old generation may grow past its live data before the
 * next full collection. Measured (bench/PROFILE.md, "Heap growth"): 100 cut peak RSS on 50 000
 * short connections from 204 to 176 MB and on 200 connections from 144 to 126 MB with no change
 * in time (0.99 and 1.00 in A/B); 50 cut more (167 MB on short) for 2-5 % more time.
 */
export const HEAP_GROWING_PERCENT = 100;

/**
 * YOUNG_GENERATION_CAP: the size (bytes, both semi-spaces) past which tuneHeap stops V8's young
 * generation from growing. V8 doubles it up to 32 MB under steady allocation; at 16 MB peak RSS
 * on 50 000 short connections fell by some 6 MiB at the same CPU time, and bulk kept its speed
 * (bench/PROFILE.md, "Young generation"). Held at its first size (2-8 MB) it cost bulk 11 % more
 * CPU.
 */
export const YOUNG_GENERATION_CAP = 16 * 1024 * 1024;

/**
 * CAP_YOUNG_FROM: inputs of at least this many bytes (or of unknown size) get the young
 * generation's cap. Below it the cap's gc observer (perf_hooks and its dozen internal modules,
 * ~3 ms of start-up) costs more than it saves: 2 000 short connections (8 MB) peak at 80 MB.
 */
export const CAP_YOUNG_FROM = 32 * 1024 * 1024;

let tuned = false;
let capping = false;

/**
 * tuneHeap, once per process:
 * - sets V8's `--heap-growing-percent` to HEAP_GROWING_PERCENT. Without it V8 let the old
 *   generation fill with promoted per-connection garbage up to about four times the live data
 *   before collecting (on a SYN flood: 120 MB of heap for 32 MB live, in each thread);
 * - caps the young generation at YOUNG_GENERATION_CAP. `--max-semi-space-size` only counts at
 *   start-up, so a `gc` performance observer sets `--semi-space-growth-factor` (read by V8 each
 *   time it would grow the young generation) to 1 after a collection that finds it at the cap,
 *   and back to 2 after one that finds it below (V8 shrinks it when allocation slows).
 * Either is left alone when node was started with a flag of its kind (execArgv or NODE_OPTIONS).
 * `inputBytes`: the size of the input the run reads, null when not known; the cap is set only
 * from CAP_YOUNG_FROM bytes or for an unknown size (a later call may still set it).
 */
export function tuneHeap(inputBytes: number | null = null): void {
  const { execArgv } = process;
  const nodeOptions = process.env.NODE_OPTIONS;
  if (!tuned) {
    tuned = true;
    if (!heapFlagGiven(execArgv, nodeOptions)) v8().setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  }
  if (capping || (inputBytes !== null && inputBytes < CAP_YOUNG_FROM)) return;
  if (!flagGiven(/--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/, execArgv, nodeOptions)) {
    capping = true;
    new (perfHooks().PerformanceObserver)(() => capYoung(false)).observe({ entryTypes: ['gc'] });
  }
}

/** heapFlagGiven: does node's command line or NODE_OPTIONS set the heap growing percent itself? */
export function heapFlagGiven(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return flagGiven(/--heap[-_]growing[-_]percent/, execArgv, nodeOptions);
}

/** flagGiven: does node's command line or NODE_OPTIONS hold a flag that `re` matches? */
function flagGiven(re: RegExp, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((a) => re.test(a)) || re.test(nodeOptions ?? '');
}

/**
 * workerStarted: call with every worker thread started in the process. V8 puts a growth factor
 * below 2 back to 2 whenever it makes a heap, a worker's too (Node 20), so the cap is set again
 * once the worker is online. The young generation may grow past the cap in between: sinks
 * start their threads early on large inputs (ReadPipeline), before it reaches the cap.
 */
export function workerStarted(worker: NodeJS.EventEmitter): void {
  if (capping) worker.once('online', () => capYoung(true));
}

/** The growth factor capYoung set last (V8's own is 2). */
let factor = 2;

/** capYoung: growth factor 1 while the young generation is at the cap, else 2; `again`: set it even when unchanged. */
function capYoung(again: boolean): void {
  let size = 0;
  for (const s of v8().getHeapSpaceStatistics()) if (s.space_name === 'new_space') size = s.space_size;
  const want = size >= YOUNG_GENERATION_CAP ? 1 : 2;
  if (want === factor && !again) return;
  factor = want;
  v8().setFlagsFromString(`--semi-space-growth-factor=${want}`);
}

/** The V8 flags this module sets, at V8's own defaults (restoreHeapFlags). */
const FLAG_DEFAULTS = ['--heap-growing-percent=0', '--semi-space-growth-factor=2', '--no-expose-gc'];

/**
 * restoreHeapFlags puts every V8 flag this module sets back to V8's default, for a process that
 * is about to end: V8 takes a code cache only under the flags it was made with, so the CLI's
 * build puts them back before it writes the bundle's cache (bin/pcapflow.js).
 */
export function restoreHeapFlags(): void {
  for (const flag of FLAG_DEFAULTS) v8().setFlagsFromString(flag);
}

/**
 * fullCollection returns a function that runs a full V8 garbage collection, or null when none
 * can be had. `--expose-gc` set at run time only exposes `gc` to contexts created afterwards (the
 * one made here): the program's own global object is left as it was. The read pipeline asks for
 * it only when it allocates a shared read chunk.
 */
export function fullCollection(): (() => void) | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as () => void;
  try {
    v8().setFlagsFromString('--expose-gc');
    const gc = vm().runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
