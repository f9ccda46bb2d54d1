/**
 * peak-rss: run the CLI as a child process and measure its peak RSS, as the hostile memory tests
 * do: /usr/bin/time's maximum resident set size when it is installed, else VmHWM polled from
 * /proc every 20 ms (which can miss a short peak).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './env.js';

const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');

export interface MeasuredRun {
  code: number;
  stderr: string;
  /** Peak RSS in MB (2^20 bytes). */
  peakMb: number;
  seconds: number;
}

/**
 * runMeasured runs `pcapflow ARGS`; `onStdout`, when given, gets its standard output as it
 * comes (else it is thrown away). Resolves once the process exited.
 */
export function runMeasured(args: string[], onStdout?: (chunk: Buffer) => void): Promise<MeasuredRun> {
  const useTime = existsSync('/usr/bin/time');
  const argv = useTime ? ['/usr/bin/time', '-f', 'PEAK_KB=%M', process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  const t0 = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', onStdout === undefined ? 'ignore' : 'pipe', 'pipe'] });
  if (onStdout !== undefined) child.stdout!.on('data', onStdout);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let hwm = 0;
  const poll = useTime
    ? null
    : setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) hwm = Math.max(hwm, Number(m[1]));
        } catch {
          // exited
        }
      }, 20);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      const kb = useTime ? Number(/PEAK_KB=(\d+)/.exec(stderr)?.[1] ?? NaN) : hwm;
      resolve({ code: code ?? -1, stderr, peakMb: kb / 1024, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

/** statOf reads one counter of a `--stats` table (NaN when absent). */
export function statOf(stderr: string, name: string): number {
  return Number(new RegExp(`^${name.replace(/\./g, '\\.')}\\s+(\\d+)`, 'm').exec(stderr)?.[1] ?? NaN);
}

/** lines calls `line` for each complete line of a byte stream fed to the returned function (the last, unterminated, part is kept). */
export function lines(line: (text: Buffer) => void): (chunk: Buffer) => void {
  let rest: Buffer | null = null;
  return (chunk) => {
    let buf = rest === null ? chunk : Buffer.concat([rest, chunk]);
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      line(buf.subarray(start, nl));
      start = nl + 1;
    }
    buf = buf.subarray(start);
    rest = buf.length === 0 ? null : Buffer.from(buf);
  };
}
