/**
 * loadYargs returns the yargs factory (what `import yargs from 'yargs'` gives) built over a
 * platform shim equal to yargs' own ESM shim (yargs/lib/platform-shims/esm.mjs) except that the
 * parts only help output and rarely used options need are loaded on first use: cliui and
 * string-width (string-width builds an Intl.Segmenter and `\p{RGI_Emoji}` regular expressions
 * when imported, about 100 ms of every start) and get-caller-file; escalade's findUp is inlined
 * (findUp below). yargs and its parts are found with import.meta.resolve, not require.resolve
 * (see resolveFrom). Help output is unchanged: the real cliui and string-width format it.
 *
 * Loading on first use needs a synchronous `require` of an ES module (Node >= 20.19); on an older
 * Node, or when `eager` is set (the arguments ask for help), they are imported before parsing.
 * If yargs' files are not where yargs 18 keeps them, it falls back to `import('yargs')`.
 * Throws nothing of its own.
 */
import { notStrictEqual, strictEqual } from 'node:assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { inspect } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Argv } from 'yargs';

/** The yargs factory: call it to get a parser. */
export type YargsFactory = (processArgs?: readonly string[], cwd?: string) => Argv;

type Fn = (...args: never[]) => unknown;

/** wantsHelp: true when argv may print help (then the help-only modules are loaded up front). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h' || a === 'help');
}

export async function loadYargs(eager: boolean): Promise<YargsFactory> {
  try {
    return await buildYargs(eager);
  } catch {
    return (await import('yargs')).default as unknown as YargsFactory;
  }
}

/**
 * findUp: escalade/sync (what yargs' ESM shim uses to find package.json for .version()), inlined:
 * the first `callback(dir, names)` result walking up from `start`, as a path in that directory.
 * Loading escalade through `require` cost more than the walk itself on every start.
 */
export function findUp(start: string, callback: (dir: string, names: string[]) => string | undefined): string | undefined {
  let dir = resolve('.', start);
  if (!statSync(dir).isDirectory()) dir = dirname(dir);
  for (;;) {
    const found = callback(dir, readdirSync(dir));
    if (found) return resolve(dir, found);
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * resolveFrom: the file URL `name` resolves to for an import from yargs' directory. import.meta.resolve
 * (the ESM resolver, already warm) finds it from here, which is where yargs finds it unless yargs
 * has its own copy (yargs/node_modules/NAME); only then is a `require` made for yargs (the first
 * `require.resolve` of a process costs some 10 ms).
 */
function resolveFrom(yargsIndex: string, yargsDir: string, name: string): string {
  if (!existsSync(join(yargsDir, 'node_modules', name))) return import.meta.resolve(name);
  return pathToFileURL(createRequire(yargsIndex).resolve(name)).href;
}

/** buildYargs: loadYargs without the fallback (throws when yargs' files moved); exported for tests. */
export async function buildYargs(eager: boolean): Promise<YargsFactory> {
  const yargsIndex = fileURLToPath(import.meta.resolve('yargs')); // .../yargs/index.mjs (its only entry)
  const yargsDir = dirname(yargsIndex);
  const url = (p: string): string => pathToFileURL(p).href;
  const [factoryModule, argvModule, parserModule, y18nModule] = await Promise.all([
    import(url(join(yargsDir, 'build', 'lib', 'yargs-factory.js'))) as Promise<{ YargsFactory: (shim: unknown) => YargsFactory }>,
    import(url(join(yargsDir, 'build', 'lib', 'utils', 'process-argv.js'))) as Promise<{ getProcessArgvBin: () => string }>,
    import(resolveFrom(yargsIndex, yargsDir, 'yargs-parser')) as Promise<{ default: unknown }>,
    import(resolveFrom(yargsIndex, yargsDir, 'y18n')) as Promise<{ default: (opts: { directory: string; updateFiles: boolean }) => unknown }>,
  ]);
  if (typeof factoryModule.YargsFactory !== 'function') throw new Error('yargs layout changed');
  let yargsRequire: NodeJS.Require | null = null;
  const fromYargs = (): NodeJS.Require => (yargsRequire ??= createRequire(yargsIndex));

  /** lazy: a module's default export, imported before parsing when eager, else required on first use. */
  const lazy = async (name: string): Promise<() => Fn> => {
    let loaded: Fn | null = null;
    if (eager || process.features.require_module !== true) loaded = ((await import(resolveFrom(yargsIndex, yargsDir, name))) as { default: Fn }).default;
    return () => {
      if (loaded === null) {
        const m = fromYargs()(name) as { default?: Fn } | Fn;
        loaded = typeof m === 'function' ? m : (m.default as Fn);
      }
      return loaded;
    };
  };
  const [cliui, stringWidth] = await Promise.all([lazy('cliui'), lazy('string-width')]);
  const syncLoad = (name: string): (() => Fn) => {
    let loaded: Fn | null = null;
    return () => {
      if (loaded === null) {
        const m = fromYargs()(name) as { default?: Fn } | Fn;
        loaded = typeof m === 'function' ? m : (m.default as Fn);
      }
      return loaded;
    };
  };
  const callerFile = syncLoad('get-caller-file');
  const call = (get: () => Fn) => (...args: unknown[]) => (get() as (...a: unknown[]) => unknown)(...args);

  // As in yargs' esm.mjs: the directory above yargs' node_modules is the "main" one (pkgUp for .version()).
  const mainFilename = yargsIndex.substring(0, yargsIndex.lastIndexOf('node_modules'));
  const shim = {
    assert: { notStrictEqual, strictEqual },
    cliui: call(cliui),
    findUp,
    getEnv: (key: string) => process.env[key],
    inspect,
    getProcessArgvBin: argvModule.getProcessArgvBin,
    mainFilename: mainFilename || process.cwd(),
    Parser: parserModule.default,
    path: { basename, dirname, extname, relative, resolve, join },
    process: {
      argv: () => process.argv,
      cwd: process.cwd,
      emitWarning: (warning: string, type: string) => process.emitWarning(warning, type),
      execPath: () => process.execPath,
      exit: (code: number) => process.exit(code),
      nextTick: process.nextTick,
      stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null,
    },
    readFileSync,
    readdirSync,
    get require(): NodeJS.Require {
      return fromYargs();
    },
    getCallerFile: () => {
      const file = (callerFile() as (depth: number) => string)(3);
      return file.startsWith('file://') ? fileURLToPath(file) : file;
    },
    stringWidth: call(stringWidth),
    y18n: y18nModule.default({ directory: join(yargsDir, 'locales'), updateFiles: false }),
  };
  return factoryModule.YargsFactory(shim);
}

/**
 * skipHelpCache stops yargs from rendering the whole help text after every command it runs
 * (yargs caches it for a later showHelp() from an async handler; pcapflow's handlers only record
 * the command, and failures go through its own .fail()). That rendering loads and runs cliui and
 * string-width: ~60 ms of every start. Help output itself is unaffected. Does nothing when yargs'
 * internals are not as in yargs 18.
 */
export function skipHelpCache(parser: Argv): Argv {
  const internal = parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: unknown } } };
  const usage = internal.getInternalMethods?.().getUsageInstance?.();
  if (usage !== undefined && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => undefined;
  return parser;
}
