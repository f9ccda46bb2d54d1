/**
 * The CLI end to end: `main()` in-process for exit codes and output, and the built bin in a real
 * shell for pipes (jq recipes from the README, `| head`, stdin).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionRecord } from '../src/sinks/connection-records.js';
import { REPO_ROOT, SHARED_PCAPS, needTool } from './helpers/env.js';
import { runCli as run } from './helpers/cli-run.js';

const EXAMPLE = path.join(REPO_ROOT, 'examples/http-get.pcap');
const BIN = path.join(REPO_ROOT, 'bin/pcapflow.js');
const shared = (name: string): string => path.join(SHARED_PCAPS, name);


let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-cli-'));
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('pcapflow packets', () => {
  it('prints one NDJSON object per packet with the documented fields', async () => {
    const r = await run(['packets', EXAMPLE, '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(14);
    expect(lines[0]).toMatchObject({
      index: 1,
      ts: '1362692526.869344000',
      link: 1,
      caplen: 78,
      len: 78,
      vlan: [],
      src: '141.142.228.5',
      dst: '192.150.187.43',
      proto: 6,
      sport: 59856,
      dport: 80,
      flags: 'S',
      payload: 0,
    });
    expect(lines[1]?.flags).toBe('SA');
    expect(lines.map((l) => l.index)).toEqual([...Array(14).keys()].map((i) => i + 1));
    expect(lines.reduce((n, l) => n + (l.payload as number), 0)).toBe(5143);
  });

  it('gives skipped packets a line with the reason', async () => {
    const r = await run(['packets', shared('zeek__pcapng-multi-interface-tsresol.pcapng'), '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(6);
    for (const l of lines) {
      expect(l.skip).toBe('not-tcp');
      expect(l.proto).toBe(17);
    }
  });

  it('prints text like tcpdump', async () => {
    const r = await run(['packets', EXAMPLE]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(14);
    expect(lines[0]).toBe(
      '1 1362692526.869344000 141.142.228.5.59856 > 192.150.187.43.80: Flags [S], seq 4263588410, ack 0, win 65535, length 0',
    );
  });

  it('stops at a corrupt record with its code and packet index, after printing the packets before it', async () => {
    const r = await run(['packets', shared('suricata-verify__smtp-corrupt-record-header.pcap'), '--format', 'ndjson']);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(18);
    expect(r.stderr).toMatch(/^pcapflow: PCAP_RECORD_TOO_LARGE: .*packet 19.*offset \d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('numbers packets continuously across several inputs and reads stdin as -', async () => {
    const bytes = readFileSync(EXAMPLE);
    const r = await run(['packets', EXAMPLE, '-', '--format', 'ndjson'], Readable.from([bytes]));
    expect(r.code).toBe(0);
    const idx = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { index: number }).index);
    expect(idx).toEqual([...Array(28).keys()].map((i) => i + 1));
  });
});

describe('exit codes and errors', () => {
  it.each([
    [[], 'name a command'],
    [['read'], 'Not enough non-option arguments'],
    [['read', EXAMPLE, '--bogus'], 'bogus'],
    [['read', EXAMPLE, '--sink', 'nowhere'], 'sink'],
    [['read', EXAMPLE, '--idle-timeout', 'soon'], 'INVALID_OPTION'],
    [['read', EXAMPLE, '--max-buffer', '12 parsecs'], 'INVALID_OPTION'],
    [['read', EXAMPLE, '--sink', 'files'], 'INVALID_OPTION'],
  ])('usage error %j exits 2', async (argv, text) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(text);
    expect(r.stdout).toBe('');
  });

  it('a missing input exits 1 with INPUT_NOT_FOUND', async () => {
    const r = await run(['read', path.join(tmp, 'nope.pcap')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pcapflow: INPUT_NOT_FOUND: /);
  });

  it('a file that is not a capture exits 1 with CAPTURE_BAD_MAGIC', async () => {
    const r = await run(['read', path.join(REPO_ROOT, 'package.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pcapflow: CAPTURE_BAD_MAGIC: .*offset 0/);
  });

  it('--help shows the commands and examples', async () => {
    const r = await run(['read', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--sink');
    expect(r.stdout).toContain('Examples:');
  });
});

describe('pcapflow read', () => {
  it('writes files named as tcpflow names them, with no .part left', async () => {
    const dir = path.join(tmp, 'files');
    const r = await run(['read', EXAMPLE, '--sink', 'files', '-o', dir]);
    expect(r.code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([
      '141.142.228.005.59856-192.150.187.043.00080',
      '192.150.187.043.00080-141.142.228.005.59856',
      'connections.ndjson',
    ]);
    expect(readFileSync(path.join(dir, '141.142.228.005.59856-192.150.187.043.00080'))).toHaveLength(136);
    expect(readFileSync(path.join(dir, '192.150.187.043.00080-141.142.228.005.59856'))).toHaveLength(5007);
  });

  it('--stats prints every stage on stderr', async () => {
    const r = await run(['read', EXAMPLE, '--sink', 'ndjson', '--stats']);
    expect(r.code).toBe(0);
    for (const stage of ['reader[0].packets', 'decoder.tcp', 'demux.connections', 'reassembler.bytes', 'sink.events']) {
      expect(r.stderr).toMatch(new RegExp(`^${stage.replace(/[[\].]/g, '\\$&')}\\s+\\d+$`, 'm'));
    }
  });
});

describe('shell pipes (built bin)', () => {
  const sh = (script: string): { status: number | null; stdout: Buffer; stderr: string } => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', script], { cwd: REPO_ROOT, maxBuffer: 64 << 20 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
  };

  it('stops quietly with exit 0 when the reader closes the pipe (| head)', () => {
    const r = sh(`node ${BIN} read ${shared('pcapplusplus__mixed-126-conns.pcap')} --sink ndjson | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"`);
    expect(r.stdout.toString().trim()).toBe('0');
    expect(r.stderr).toBe('');
  });

  it('starts from the code cache npm run build wrote, and prints the same with and without it', () => {
    const args = ['read', 'examples/http-get.pcap', '--sink', 'ndjson'];
    const cached = spawnSync('node', [BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, PCAPFLOW_CODE_CACHE: 'check' } });
    expect(cached.stderr.toString()).toBe('code cache: taken\n');
    const plain = spawnSync('node', [BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, PCAPFLOW_CODE_CACHE: 'off' } });
    expect(cached.stdout.length).toBeGreaterThan(1000);
    expect(cached.stdout.equals(plain.stdout)).toBe(true);
  });

  describe('the README jq recipes, with the real jq', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const haveJq = needTool('jq');
    const recipe = (name: string): string => {
      const m = new RegExp('<!-- recipe: ' + name + ' -->\\n```sh\\n([^`]+)```').exec(readme);
      if (m === null) throw new Error(`README has no recipe ${name}`);
      return (m[1] ?? '').trim().replace(/\bpcapflow /g, `node ${BIN} `);
    };
    const methods = shared('zeek__http-methods-49-conns.pcap');
    const filesDir = (): string => {
      const dir = path.join(tmp, 'methods');
      if (!existsSync(dir)) execFileSync('node', [BIN, 'read', methods, '--sink', 'files', '-o', dir]);
      return dir;
    };
    const conns = (): ConnectionRecord[] =>
      readFileSync(path.join(filesDir(), 'connections.ndjson'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as ConnectionRecord);

    it.skipIf(!haveJq)('one stream as bytes', () => {
      const script = recipe('stream').replace('x.pcap', methods).replace('.conn==3', '.conn==3');
      const r = sh(script.replace('> stream.bin', ''));
      expect(r.status).toBe(0);
      const c3 = conns().find((c) => c.conn === 3);
      expect(c3).toBeDefined();
      const expected = readFileSync(path.join(filesDir(), c3?.c2s.file ?? 'missing'));
      expect(r.stdout.equals(expected)).toBe(true);
      expect(expected.length).toBeGreaterThan(0);
    });

    it.skipIf(!haveJq)('connections with their byte counts', () => {
      const r = sh(recipe('close').replace('x.pcap', methods));
      expect(r.status).toBe(0);
      const rows = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(rows).toHaveLength(49);
      const byConn = new Map(conns().map((c) => [c.conn, c]));
      for (const row of rows) {
        const c = byConn.get(row.conn as number);
        expect(row).toEqual({ conn: c?.conn, reason: c?.reason, c2s: c?.c2s.bytes, s2c: c?.s2c.bytes });
      }
    });

    it.skipIf(!haveJq)('gaps', () => {
      const r = sh(recipe('gaps').replace('x.pcap', shared('suricata-verify__tcp-gap.pcap')));
      expect(r.status).toBe(0);
      const gaps = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(gaps).toEqual([{ type: 'gap', conn: 0, dir: 'c2s', offset: 4, len: 4, ts: expect.any(String), reason: expect.any(String) }]);
    });

    it.skipIf(!haveJq)('text of a direction with --encoding utf8', () => {
      const r = sh(recipe('text').replace('x.pcap', EXAMPLE));
      expect(r.status).toBe(0);
      expect(r.stdout.toString()).toBe(readFileSync(path.join(tmp, 'files', '141.142.228.005.59856-192.150.187.043.00080'), 'utf8'));
    });
  });
});

/** readmeExample: the code of the README's ```js block after `<!-- MARKER -->`, importing the built library. */
function readmeExample(marker: string): string {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`js\\n([\\s\\S]*?)\\n\`\`\``).exec(readme);
  expect(m).not.toBeNull();
  return (m?.[1] ?? '').replace("from 'pcapflow'", `from '${path.join(REPO_ROOT, 'dist/index.js')}'`);
}

/** runExample runs `code` as an ES module from the repository root; what it printed, trimmed. */
function runExample(code: string, name: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, code);
  return execFileSync('node', [file], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
}

describe('the README library examples', () => {
  it('the reassembly example runs as written and prints what its comment says', () => {
    expect(runExample(readmeExample('library-example'), 'example.mjs')).toBe("{ '0 c2s': 136, '0 s2c': 5007 }");
  });

  it('the HTTP example runs as written and prints what its comment says', () => {
    expect(runExample(readmeExample('library-example-http'), 'example-http.mjs')).toBe("[ '0 GET /download/CHANGES.bro-aux.txt', '0 200 OK' ]");
  });

  it('the TLS example runs as written and prints what its comment says', () => {
    const code = readmeExample('library-example-tls');
    const said = /console\.log\(lines\); \/\/ (.*)$/m.exec(code)?.[1];
    expect(said).toBe("[ '0 example.test h2 t13d5911h2_a33745022dd6_1f22a2ca17c4' ]");
    expect(runExample(code, 'example-tls.mjs')).toBe(said);
  });
});

describe('the README error table', () => {
  it('lists exactly the codes of the closed union', async () => {
    const { ERROR_CODES } = await import('../src/core/errors.js');
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Error codes'), readme.indexOf('### Exit status'));
    const listed = new Set([...section.matchAll(/^\| `([A-Z0-9_]+)`(?:, `([A-Z0-9_]+)`)?/gm)].flatMap((m) => [m[1], m[2]]).filter(Boolean));
    expect([...listed].sort()).toEqual([...ERROR_CODES].sort());
  });
});
