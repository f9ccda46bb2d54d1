import { describe, expect, it } from 'vitest';
import type { Argv } from 'yargs';
import { buildYargs, loadYargs, wantsHelp } from '../src/cli/yargs-loader.js';

/** A small parser like main's: a command, options, strict, help with wrap. */
function configure(y: Argv): Argv {
  return y
    .scriptName('t')
    .usage('t <command> [options]')
    .command('read <inputs..>', 'read captures', (c: Argv) => c.option('sink', { choices: ['text', 'ndjson'], default: 'text', describe: 'where the streams go' }))
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .version('9.9.9')
    .wrap(80)
    .exitProcess(false);
}

async function helpOf(factory: (args?: readonly string[]) => Argv, argv: string[]): Promise<string> {
  let out = '';
  await configure(factory()).parseAsync(argv, {}, (_e: unknown, _a: unknown, o: string) => {
    out = o;
  });
  return out;
}

describe('loadYargs', () => {
  it('builds yargs over the lazy shim (no fallback) and parses like stock yargs', async () => {
    const lite = await buildYargs(false);
    const args = await configure(lite()).parseAsync(['read', 'a.pcap', 'b.pcap', '--sink', 'ndjson']);
    expect(args.inputs).toEqual(['a.pcap', 'b.pcap']);
    expect(args.sink).toBe('ndjson');
  });

  it('gives the same help text as stock yargs, loading cliui on first use or up front', async () => {
    const stock = (await import('yargs')).default as unknown as (args?: readonly string[]) => Argv;
    const expected = await helpOf(stock, ['read', '--help']);
    expect(expected).toContain('where the streams go');
    expect(await helpOf(await buildYargs(false), ['read', '--help'])).toBe(expected);
    expect(await helpOf(await buildYargs(true), ['read', '--help'])).toBe(expected);
    expect(await helpOf(await loadYargs(false), ['--help'])).toBe(await helpOf(stock, ['--help']));
  });

  it('reports usage errors through fail as stock yargs does', async () => {
    const lite = await buildYargs(false);
    let msg = '';
    await configure(lite())
      .fail((m: string) => {
        msg = m;
      })
      .parseAsync(['read', 'x', '--sink', 'bogus']);
    expect(msg).toMatch(/sink/);
  });

  it('wantsHelp spots the help flags', () => {
    expect(wantsHelp(['read', 'x.pcap', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['read', 'x.pcap', '--sink', 'files'])).toBe(false);
  });
});
