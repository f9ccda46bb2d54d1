// bundle-cli: after `tsc`, the command line as one CommonJS file, dist/cli/pcapflow.cjs, which
// bin/pcapflow.js loads. Node 20 starts it in ~40 ms less than the 60-odd ES modules tsc writes
// (bench/PROFILE.md, "Start-up"): no per-module resolution, reads and links, and comments gone.
// yargs-loader stays the ES module tsc wrote (it needs import.meta.resolve; only runs when a
// command has options), as do yargs, cap and the --workers thread (dist/sinks/shard-worker.js).
// The library (dist/index.js) is not bundled.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli/pcapflow.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  external: ['yargs', 'cap', './yargs-loader.js', '@nats-io/*'],
  define: { 'import.meta.url': '__pcapflowUrl' },
  write: false,
});

// Every dynamic import() of the bundle (of its externals: yargs-loader, the NATS clients, cap)
// goes through __pcapflowImport, which calls bin/pcapflow.js's __pcapflowHost when there is one
// (code compiled with a code cache has no import() of its own on Node 20), with a relative
// specifier made absolute against the bundle; loaded by plain require, it is import().
let code = result.outputFiles[0].text;
const imports = code.split('import(').length - 1;
let routed = 0;
code = code.replace(/(?<![\w$.])import\(/g, () => {
  routed++;
  return '__pcapflowImport(';
});
if (routed !== imports || routed === 0) throw new Error(`bundle-cli: ${routed} of ${imports} dynamic imports routed`);
const banner = [
  "const __pcapflowUrl = require('node:url').pathToFileURL(__filename).href;",
  "const __pcapflowImport = (s) => (typeof __pcapflowHost === 'function' ? __pcapflowHost(s.startsWith('.') ? new URL(s, __pcapflowUrl).href : s) : import(s));",
].join('\n');
// the directive first, so that the whole bundle is strict code as the ES modules it is made of
const strict = '"use strict";';
const body = code.startsWith(strict) ? code.slice(strict.length) : code;
writeFileSync(path.join(root, 'dist/cli/pcapflow.cjs'), `${strict}\n${banner}\n${body}`);

// V8's code cache for the bundle (see bin/pcapflow.js): written after `read`s of the shipped
// example into each sink, so that it holds the functions such runs compile; then checked.
const cache = path.join(root, 'dist/cli/pcapflow.cjs.cache');
rmSync(cache, { force: true });
const out = mkdtempSync(path.join(tmpdir(), 'pcapflow-cache-'));
const example = ['read', 'examples/http-get.pcap'];
const runs = [[...example, '--sink', 'ndjson'], [...example, '--sink', 'files', '-o', out], example];
// an optimization only: a failure here leaves the CLI without the cache, and the build goes on
try {
  const env = { ...process.env, PCAPFLOW_CODE_CACHE: 'write', PCAPFLOW_CODE_CACHE_RUNS: JSON.stringify(runs) };
  execFileSync(process.execPath, ['bin/pcapflow.js'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const check = spawnSync(process.execPath, ['bin/pcapflow.js', ...example], { cwd: root, env: { ...process.env, PCAPFLOW_CODE_CACHE: 'check' }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' }).stderr ?? '';
  if (!check.includes('code cache: taken')) console.warn(`bundle-cli: V8 did not take the code cache (${check.trim()}); the CLI starts without it`);
} catch (err) {
  rmSync(cache, { force: true });
  console.warn(`bundle-cli: no code cache written (${err instanceof Error ? err.message : String(err)}); the CLI starts without it`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
