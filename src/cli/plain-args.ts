/**
 * plainArgs: the arguments yargs parses `COMMAND NAME...` into when every NAME is a plain
 * positional (not empty, not an option, not `help`), without loading yargs: `_` and `$0`, the
 * names under the command's one array positional, and each option's default under its name and
 * its camel-cased form, in the order yargs gives them. The options come from the
 * command's own yargs builder, run on a recorder, so there is one definition of each.
 *
 * `pcapflow read FILE...` uses it: yargs is some 30 modules, the largest part of loading the CLI.
 * It returns null whenever yargs could parse differently: another shape of argv, or a builder
 * that uses anything the recorder does not model (a method other than positional, option and
 * example; an option key other than describe, type, default, choices, alias and array; a type other
 * than string and boolean; an alias with a default), and then yargs parses as before. Throws nothing.
 */
import type { Argv } from 'yargs';

const OPTION_KEYS = new Set(['describe', 'type', 'default', 'choices', 'alias', 'array']);
const POSITIONAL_KEYS = new Set(['describe', 'type', 'array']);
const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

class Unsupported extends Error {}

/** What a builder did, as far as parsing plain positionals goes. */
class Recorder {
  positionals: { name: string; opts: Record<string, unknown> }[] = [];
  defaults: [string, unknown][] = [];

  positional(name: string, opts: Record<string, unknown>): this {
    if (!NAME.test(name) || !Object.keys(opts).every((k) => POSITIONAL_KEYS.has(k))) throw new Unsupported();
    this.positionals.push({ name, opts });
    return this;
  }

  option(name: string, opts: Record<string, unknown>): this {
    if (!NAME.test(name) || !Object.keys(opts).every((k) => OPTION_KEYS.has(k))) throw new Unsupported();
    if (opts.type !== 'string' && opts.type !== 'boolean' && !('choices' in opts && opts.type === undefined)) throw new Unsupported();
    if (!('default' in opts)) return this;
    if (opts.alias !== undefined) throw new Unsupported(); // where yargs puts an alias's default is not modelled
    this.defaults.push([name, opts.default]);
    // yargs-parser's camelCase, for the names NAME admits
    const camel = name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
    if (camel !== name) this.defaults.push([camel, opts.default]);
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
  const [command, ...names] = argv;
  if (command === undefined || names.length === 0 || !names.every((a) => isPlain(a, stdinToken))) return null;
  const recorder = new Recorder();
  try {
    await builder(recorder as unknown as Argv);
  } catch {
    return null;
  }
  const [positional, ...more] = recorder.positionals;
  if (positional === undefined || more.length > 0 || positional.opts.array !== true || positional.opts.type !== 'string') return null;
  const args: Record<string, unknown> = { _: [command], [positional.name]: [...names] };
  for (const [key, value] of recorder.defaults) args[key] = value;
  args.$0 = scriptName;
  return args;
}
