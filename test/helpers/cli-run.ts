/** cli-run: run the CLI's `main()` in-process with its own stdout/stderr, for the CLI tests. */
import { PassThrough, Readable } from 'node:stream';
import { main, type CliIo } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCli runs `pcapflow ARGV` with `stdin` (empty by default) and collects the exit code and both outputs as UTF-8. */
export async function runCli(argv: string[], stdin: NodeJS.ReadableStream = Readable.from([])): Promise<CliRun> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  err.on('data', (c: Buffer) => errChunks.push(c));
  const io: CliIo = { stdin, stdout: out, stderr: err };
  const code = await main(argv, io);
  return { code, stdout: Buffer.concat(chunks).toString('utf8'), stderr: Buffer.concat(errChunks).toString('utf8') };
}
