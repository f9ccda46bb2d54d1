/**
 * Option checking for the CLI: yargs parses, these functions validate (yargs does not check
 * numbers). Each throws PcapflowError INVALID_OPTION naming the option.
 */
import { PcapflowError } from '../core/errors.js';

/** A whole number within [min, max]; accepts suffixes k, m, g (powers of 1024) when `bytes`. */
export function parseCount(name: string, value: unknown, min: number, max: number, bytes = false): number {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*$/.exec(value);
    if (m === null || (!bytes && m[2] !== '')) throw bad(name, value, 'a whole number');
    const unit = m[2]?.toLowerCase() ?? '';
    n = Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
  } else {
    throw bad(name, value, 'a whole number');
  }
  if (!Number.isSafeInteger(n) || n < min || n > max) throw bad(name, value, `a whole number from ${min} to ${max}`);
  return n;
}

/** A number of seconds > 0 (fractions allowed). */
export function parseSeconds(name: string, value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw bad(name, value, 'a number of seconds above 0');
  return n;
}

/** One of a closed set of strings. */
export function parseChoice<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw bad(name, value, `one of ${choices.join(', ')}`);
}

function bad(name: string, value: unknown, want: string): PcapflowError {
  return new PcapflowError('INVALID_OPTION', `--${name} must be ${want}, not ${JSON.stringify(value)}`);
}

/** yargs drops a lone `-` argument; it is carried through parsing as this token instead. */
export const STDIN_TOKEN = '\u0000stdin';

/** inputNames maps parsed input names back (the stdin token to `-`). */
export function inputNames(inputs: readonly string[]): string[] {
  return inputs.map((name) => (name === STDIN_TOKEN ? '-' : String(name)));
}

/** The help of `--shard` (read, http, live; parsed by parseShard, core/shard-key.ts). */
export const SHARD_HELP =
  'keep only the connections of shard K of N (K from 1 to N), by a hash of their addresses, ports and VLAN ids: N runs over the same inputs give disjoint outputs whose union is the whole, with the same connection numbers';
