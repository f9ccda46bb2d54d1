/**
 * plainArgs: the arguments yargs parses `COMMAND WORD...` into, without loading yargs, when every
 * WORD is a plain positional (not empty, not an option, not `help`) or one of the command's
 * options in a form whose parse is certain: `--name value`, `--name=value`, `-a value` (a
 * one-letter alias) for string and choice options (the value not starting with `-`, a choice one
 * of the choices), `--name` and `--no-name` for booleans (not followed by `true` or `false`),
 * each option at most once. The result has yargs' keys in yargs' order: `_`, each option given
 * (as typed, its camel-cased form, its alias), the command's one array positional, each default
 * not given (its name and camel-cased form), `$0`. The options come from the command's own yargs
 * builder, run on a recorder, so there is one definition of each.
 *
 * `pcapflow read ...` uses it: yargs is some 30 modules, the largest part of loading the CLI.
 * It returns null whenever yargs could parse differently: another shape of argv (an unknown or
 * repeated option, `--`, a camel-cased option name, an array option given, a value yargs would
 * read otherwise), or a builder that uses anything the recorder does not model (a method other
 * than positional, option and example; an option key other than describe, type, default,
 * choices, alias and array; a type other than string and boolean; an alias with a default), and
 * then yargs parses as before. Throws nothing.
 */
import type { Argv } from 'yargs';

const OPTION_KEYS = new Set(['describe', 'type', 'default', 'choices', 'alias', 'array']);
const POSITIONAL_KEYS = new Set(['describe', 'type', 'array']);
const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

class Unsupported extends Error {}

/** One option as the builder declared it. */
interface OptionSpec {
  name: string;
  type: 'string' | 'boolean' | undefined;
  choices: readonly unknown[] | undefined;
  alias: string | undefined;
  array: boolean;
}

/** camel: yargs-parser's camelCase, for the names NAME admits. */
const camel = (name: string): string => name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** What a builder did, as far as parsing goes. */
class Recorder {
  positionals: { name: string; opts: Record<string, unknown> }[] = [];
  defaults: [string, unknown][] = [];
  readonly options = new Map<string, OptionSpec>();
  /** One-letter aliases to their options. */
  readonly short = new Map<string, OptionSpec>();

  positional(name: string, opts: Record<string, unknown>): this {
    if (!NAME.test(name) || !Object.keys(opts).every((k) => POSITIONAL_KEYS.has(k))) throw new Unsupported();
    this.positionals.push({ name, opts });
    return this;
  }

  option(name: string, opts: Record<string, unknown>): this {
    if (!NAME.test(name) || !Object.keys(opts).every((k) => OPTION_KEYS.has(k))) throw new Unsupported();
    if (opts.type !== 'string' && opts.type !== 'boolean' && !('choices' in opts && opts.type === undefined)) throw new Unsupported();
    const alias = opts.alias;
    if (alias !== undefined && (typeof alias !== 'string' || !/^[a-z]$/.test(alias) || this.short.has(alias))) throw new Unsupported();
    const spec: OptionSpec = {
      name,
      type: opts.type as OptionSpec['type'],
      choices: Array.isArray(opts.choices) ? (opts.choices as unknown[]) : undefined,
      alias,
      array: opts.array === true,
    };
    this.options.set(name, spec);
    if (alias !== undefined) this.short.set(alias, spec);
    if (!('default' in opts)) return this;
    if (alias !== undefined) throw new Unsupported(); // where yargs puts an alias's default is not modelled
    this.defaults.push([name, opts.default]);
    if (camel(name) !== name) this.defaults.push([camel(name), opts.default]);
    return this;
  }

  example(): this {
    return this;
  }
}

/** isPlain: a positional yargs takes as it is (`-` is mapped to a token before parsing). */
function isPlain(arg: string, stdinToken: string): boolean {
  return arg === stdinToken || (arg !== '' && !arg.startsWith('-') && arg !== 'help');
}

/**
 * plainArgs: yargs' result for `argv` (the command word first, `-` already mapped to
 * `stdinToken`) under a parser named `scriptName` whose command `argv[0]` has `builder`, or null
 * (see the module comment).
 */
export async function plainArgs(
  scriptName: string,
  argv: readonly string[],
  builder: (y: Argv) => Argv | Promise<Argv>,
  stdinToken: string,
): Promise<Record<string, unknown> | null> {
  const [command, ...words] = argv;
  if (command === undefined || words.length === 0) return null;
  const recorder = new Recorder();
  try {
    await builder(recorder as unknown as Argv);
  } catch {
    return null;
  }
  const [positional, ...more] = recorder.positionals;
  if (positional === undefined || more.length > 0 || positional.opts.array !== true || positional.opts.type !== 'string') return null;
  const names: string[] = [];
  const given: Array<[string, unknown]> = [];
  const seen = new Set<string>();
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (isPlain(w, stdinToken)) {
      names.push(w);
      continue;
    }
    const parsed = optionWord(w, recorder);
    if (parsed === null || seen.has(parsed.spec.name)) return null;
    const { spec, typed } = parsed;
    seen.add(spec.name);
    let value: unknown;
    if (spec.type === 'boolean') {
      if (parsed.value !== undefined) return null;
      const next = words[i + 1];
      if (next === 'true' || next === 'false') return null;
      value = !parsed.negated;
    } else {
      if (parsed.negated) return null;
      let v = parsed.value;
      if (v === undefined) {
        v = words[++i];
        if (v === undefined || v.startsWith('-') || v === stdinToken) return null;
      }
      if (spec.choices !== undefined && !spec.choices.includes(v)) return null;
      value = v;
    }
    given.push([typed, value]);
    if (camel(typed) !== typed) given.push([camel(typed), value]);
    if (spec.alias !== undefined) given.push(typed === spec.alias ? [spec.name, value] : [spec.alias, value]);
    if (typed === spec.alias && camel(spec.name) !== spec.name) given.push([camel(spec.name), value]);
  }
  if (names.length === 0) return null;
  const args: Record<string, unknown> = { _: [command] };
  for (const [key, value] of given) args[key] = value;
  args[positional.name] = names;
  for (const [key, value] of recorder.defaults) if (!(key in args)) args[key] = value;
  args.$0 = scriptName;
  return args;
}

/** optionWord: the option a word names (`--name`, `--name=value`, `--no-name`, `-a`), or null when it is not one plainArgs models. */
function optionWord(w: string, recorder: Recorder): { spec: OptionSpec; typed: string; value: string | undefined; negated: boolean } | null {
  if (w.startsWith('--')) {
    const eq = w.indexOf('=');
    const name = eq < 0 ? w.slice(2) : w.slice(2, eq);
    const value = eq < 0 ? undefined : w.slice(eq + 1);
    if (!NAME.test(name)) return null;
    const spec = recorder.options.get(name);
    if (spec !== undefined) return spec.array ? null : { spec, typed: name, value, negated: false };
    const positive = name.startsWith('no-') ? recorder.options.get(name.slice(3)) : undefined;
    if (positive === undefined || positive.type !== 'boolean' || value !== undefined || recorder.options.has(name)) return null;
    return { spec: positive, typed: positive.name, value: undefined, negated: true };
  }
  if (/^-[a-z]$/.test(w)) {
    const spec = recorder.short.get(w[1]!);
    return spec === undefined || spec.array ? null : { spec, typed: w[1]!, value: undefined, negated: false };
  }
  return null;
}
