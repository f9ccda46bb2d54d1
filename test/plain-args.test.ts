import { describe, expect, it } from 'vitest';
import type { Argv } from 'yargs';
import { readOptions } from '../src/cli/main.js';
import { STDIN_TOKEN } from '../src/cli/options.js';
import { plainArgs } from '../src/cli/plain-args.js';
import { loadYargs } from '../src/cli/yargs-loader.js';

/** What yargs gives `pcapflow read ...` (the command as main.ts defines it). */
async function viaYargs(words: string[]): Promise<Record<string, unknown>> {
  const yargs = await loadYargs(false);
  let got: Record<string, unknown> | null = null;
  await yargs()
    .scriptName('pcapflow')
    .command('read <inputs..>', 'read', (y: Argv) => readOptions(y), (args) => {
      got = args as Record<string, unknown>;
    })
    .strict()
    .exitProcess(false)
    .parseAsync(words);
  return got!;
}

describe('plainArgs (`pcapflow read FILE...` parsed without yargs)', () => {
  it('gives exactly what yargs gives, key order included, for plain positionals', async () => {
    const shapes = [
      ['a.pcap'],
      ['a.pcap', 'b.pcapng', 'c.pcap.gz'],
      [STDIN_TOKEN],
      ['x', STDIN_TOKEN, 'y'],
      ['1e3'],
      ['0x10'],
      ['a=b'],
      ['__proto__'],
      ['constructor'],
      ['ünïcödé file.pcap'],
      ['with space', 'tab\tname'],
      ['true'],
      ['false'],
      ['null'],
    ];
    for (const names of shapes) {
      const words = ['read', ...names];
      const plain = await plainArgs('pcapflow', words, readOptions, STDIN_TOKEN);
      expect(plain, names.join(' ')).not.toBeNull();
      expect(JSON.stringify(plain), names.join(' ')).toBe(JSON.stringify(await viaYargs(words)));
    }
  });

  it('leaves every other command line to yargs', async () => {
    for (const names of [[], ['a.pcap', '--sink', 'files'], ['-x'], ['help'], [''], ['a', '--'], ['--stats', 'a']]) {
      expect(await plainArgs('pcapflow', ['read', ...names], readOptions, STDIN_TOKEN), names.join(' ')).toBeNull();
    }
    // a builder using what the recorder does not model
    const odd = (y: Argv): Argv => y.positional('inputs', { type: 'string', array: true }).option('n', { type: 'number', default: 1 });
    expect(await plainArgs('pcapflow', ['read', 'a'], odd, STDIN_TOKEN)).toBeNull();
  });
});
