/**
 * Live capture on a machine without a usable cap (the optional libpcap binding) nor tcpdump (the
 * other backend): `pcapflow live` and `pcapflow interfaces` must fail with LIVE_UNAVAILABLE, say
 * what to install and how to rebuild, and exit 1, while `read` still works. cap and tcpdump are
 * hidden with the documented test hooks PCAPFLOW_CAP_MODULE (a module to load instead of 'cap')
 * and PCAPFLOW_TCPDUMP (the program to run instead of tcpdump). Needs neither root nor libpcap.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import { CAP_MODULE_ENV, loadCap } from '../src/sources/live-binding.js';
import { TCPDUMP_ENV } from '../src/sources/tcpdump-source.js';
import { REPO_ROOT } from './helpers/env.js';
import { BIN, ensureBuilt } from './helpers/live-net.js';
import { runCli as run } from './helpers/cli-run.js';

const EXAMPLE = path.join(REPO_ROOT, 'examples/http-get.pcap');


beforeAll(() => ensureBuilt());
afterEach(() => {
  delete process.env[CAP_MODULE_ENV];
  delete process.env[TCPDUMP_ENV];
});

describe('without cap', () => {
  it('loadCap rejects with LIVE_UNAVAILABLE naming the fix', async () => {
    process.env[CAP_MODULE_ENV] = '/nonexistent/cap';
    const err = await loadCap().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPcapflowError(err) && err.code).toBe('LIVE_UNAVAILABLE');
    const message = (err as Error).message;
    expect(message).toContain('apt-get install libpcap-dev');
    expect(message).toContain('npm install');
  });

  it('a module that is not cap is unavailable too', async () => {
    process.env[CAP_MODULE_ENV] = 'node:path';
    const err = await loadCap().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPcapflowError(err) && err.code).toBe('LIVE_UNAVAILABLE');
  });

  it('pcapflow live and interfaces exit 1 with the code and the fix; read still works (in-process)', async () => {
    process.env[CAP_MODULE_ENV] = '/nonexistent';
    process.env[TCPDUMP_ENV] = '/nonexistent/tcpdump';
    for (const argv of [['live', 'lo', '--sink', 'ndjson'], ['interfaces']]) {
      const r = await run(argv);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^pcapflow: LIVE_UNAVAILABLE: /);
      expect(r.stderr).toContain('libpcap-dev');
      expect(r.stderr).toContain('npm install');
    }
    const read = await run(['read', EXAMPLE, '--sink', 'ndjson']);
    expect(read.code).toBe(0);
    expect(read.stdout.length).toBeGreaterThan(0);
  });

  it('the installed command says the same (child process)', () => {
    const r = spawnSync(process.execPath, [BIN, 'live', 'lo', '--sink', 'files', '-o', '/tmp/pcapflow-nocap-never'], {
      env: { ...process.env, [CAP_MODULE_ENV]: '/nonexistent', [TCPDUMP_ENV]: '/nonexistent/tcpdump' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('LIVE_UNAVAILABLE');
    expect(r.stderr).toContain('apt-get install libpcap-dev');
    expect(r.stderr).toContain('npm install');
    expect(r.stderr).toContain('apt-get install tcpdump');
  });

  it('bad live options are usage errors (exit 2) before cap is even loaded', async () => {
    process.env[CAP_MODULE_ENV] = '/nonexistent';
    expect((await run(['live', 'lo', '--snaplen', '10'])).code).toBe(2);
    expect((await run(['live', 'lo', '--buffer-size', 'lots'])).code).toBe(2);
    expect((await run(['live'])).code).toBe(2);
  });
});
