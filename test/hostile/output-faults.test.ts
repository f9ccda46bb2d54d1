/**
 * Output faults, end to end with the built CLI: a full disk (a small tmpfs), a read-only
 * directory, /dev/full, and a reader that closes the pipe. Each is a clear error code on stderr
 * with exit status 1 and no stack trace, and NDJSON output never ends in half a line; a closed
 * pipe is exit 0. Mounting needs root: outside CI the mount cases skip when not root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, SHARED_PCAPS } from '../helpers/env.js';

const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');
const BIG = path.join(SHARED_PCAPS, 'suricata-verify__sll2-http-large.pcap'); // ~2.6 MB of stream data
const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error('the output-fault tests need root under CI');

let base = '';
const mounts: string[] = [];

function mountTmpfs(name: string, options: string): string {
  const dir = path.join(base, name);
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

function sh(script: string): { status: number | null; stderr: string } {
  const r = spawnSync('bash', ['-c', script], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), 'pcapflow-outfault-'));
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
});

afterAll(() => {
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});

const expectCleanError = (r: { status: number | null; stderr: string }, code: string): void => {
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`^pcapflow: ${code}: `));
  expect(r.stderr).not.toMatch(/\n\s+at /);
};

describe.skipIf(!isRoot)('a full disk', () => {
  it('NDJSON redirected to a file: OUTPUT_FAILED, exit 1, and the file ends with a whole line', () => {
    const dir = mountTmpfs('full-ndjson', 'size=200k');
    const out = path.join(dir, 'events.ndjson');
    const r = sh(`node ${BIN} read ${BIG} --sink ndjson > ${out}`);
    expectCleanError(r, 'OUTPUT_FAILED');
    const text = readFileSync(out, 'utf8');
    expect(text.length).toBeGreaterThan(0);
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.trimEnd().split('\n')) expect(() => JSON.parse(line) as unknown).not.toThrow();
  });

  it('--sink files: OUTPUT_FAILED naming the file, exit 1', () => {
    const dir = mountTmpfs('full-files', 'size=256k');
    const r = sh(`node ${BIN} read ${BIG} --sink files -o ${path.join(dir, 'out')}`);
    expectCleanError(r, 'OUTPUT_FAILED');
    expect(r.stderr).toContain('ENOSPC');
  });
});

describe.skipIf(!isRoot)('a read-only directory', () => {
  it('--sink files: OUTPUT_FAILED, exit 1', () => {
    const dir = mountTmpfs('readonly', 'size=1m,ro');
    const r = sh(`node ${BIN} read ${BIG} --sink files -o ${path.join(dir, 'out')}`);
    expectCleanError(r, 'OUTPUT_FAILED');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('other destinations', () => {
  it('NDJSON to /dev/full: OUTPUT_FAILED, exit 1', () => {
    expectCleanError(sh(`node ${BIN} read ${BIG} --sink ndjson > /dev/full`), 'OUTPUT_FAILED');
  });

  it('an output path under a regular file: OUTPUT_FAILED, exit 1', () => {
    expectCleanError(sh(`node ${BIN} read ${BIG} --sink files -o ${path.join(REPO_ROOT, 'package.json', 'out')}`), 'OUTPUT_FAILED');
  });

  it.each(['stdout', 'ndjson'])('--sink %s into a pipe its reader closes: exit 0, nothing on stderr', (sink) => {
    const r = sh(`node ${BIN} read ${BIG} --sink ${sink} | head -c 1 >/dev/null; exit "\${PIPESTATUS[0]}"`);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
