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

  it('gives exactly what yargs gives, key order included, with options in the forms it models', async () => {
    const shapes = [
      ['a.pcap', '--sink', 'files'],
      ['--stats', 'a'],
      ['a.pcap', '--sink', 'files', '-o', 'out', '--stats'],
      ['a', '--out', 'x', '--no-write-thread', 'b', '--sink=files'],
      ['a', '--on-error', 'fail', '--write-thread'],
      ['--no-stats', 'a', '--max-bytes=10', '--filter', ''],
      ['a', '--filter', 'tcp port 80', '--encoding', 'hex', '--sink', 'ndjson'],
      ['a', '--filter=tcp and port 443', '--max-bytes', '1e3', '--idle-timeout', '0x10'],
      ['a', '--memory-budget', '64m', '--reorder-window', '0', '--workers', '2', '--sink', 'files', '-o', 'dir with space'],
      [STDIN_TOKEN, '--sink', 'ndjson'],
      ['a', '--sink=stdout', '--direction', 'c2s', '--overlap', 'last', '--concat'],
      ['a', '-o', 'true'],
      ['a', '--out=', '--stats'],
    ];
    for (const names of shapes) {
      const words = ['read', ...names];
      const plain = await plainArgs('pcapflow', words, readOptions, STDIN_TOKEN);
      expect(plain, names.join(' ')).not.toBeNull();
      expect(JSON.stringify(plain), names.join(' ')).toBe(JSON.stringify(await viaYargs(words)));
    }
  });

  it('leaves every other command line to yargs', async () => {
    const others = [
      [],
      ['-x'],
      ['help'],
      [''],
      ['a', '--'],
      ['a', '--nope', 'x'],
      ['a', '--sink', 'files', '--sink', 'ndjson'],
      ['a', '--sink', 'nonsense'],
      ['a', '--sink'],
      ['a', '--filter', '-x'],
      ['a', '--stats', 'false'],
      ['a', '--stats=true'],
      ['a', '--maxBytes', '10'],
      ['a', '--no-sink'],
      ['a', '-ox'],
      ['a', '--help'],
      ['a', '-h'],
      ['--stats'],
      ['a', '-o', STDIN_TOKEN],
    ];
    for (const names of others) {
      expect(await plainArgs('pcapflow', ['read', ...names], readOptions, STDIN_TOKEN), names.join(' ')).toBeNull();
    }
    // a builder using what the recorder does not model
    const odd = (y: Argv): Argv => y.positional('inputs', { type: 'string', array: true }).option('n', { type: 'number', default: 1 });
    expect(await plainArgs('pcapflow', ['read', 'a'], odd, STDIN_TOKEN)).toBeNull();
  });
});
