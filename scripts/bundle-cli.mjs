// bundle-cli: after `tsc`, the command line as one CommonJS file, dist/cli/pcapflow.cjs, which
// bin/pcapflow.js loads. Node 20 starts it in ~40 ms less than the 60-odd ES modules tsc writes
// (bench/PROFILE.md, "Start-up"): no per-module resolution, reads and links, and comments gone.
// yargs-loader stays the ES module tsc wrote (it needs import.meta.resolve; only runs when a
// command has options), as do yargs, cap and the --workers thread (dist/sinks/shard-worker.js).
// The library (dist/index.js) is not bundled.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

await build({
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
  banner: { js: "const __pcapflowUrl = require('node:url').pathToFileURL(__filename).href;" },
});

// V8's code cache for the bundle (see bin/pcapflow.js): written after a `read` of the shipped
// example, so that it holds the functions such a run compiles; then checked.
const { execFileSync, spawnSync } = await import('node:child_process');
const { rmSync } = await import('node:fs');
rmSync(path.join(root, 'dist/cli/pcapflow.cjs.cache'), { force: true });
const example = ['bin/pcapflow.js', 'read', 'examples/http-get.pcap', '--sink', 'ndjson'];
// an optimization only: a failure here leaves the CLI without the cache, and the build goes on
try {
  execFileSync(process.execPath, example, { cwd: root, env: { ...process.env, PCAPFLOW_CODE_CACHE: 'write' }, stdio: ['ignore', 'ignore', 'inherit'] });
  const check = spawnSync(process.execPath, example, { cwd: root, env: { ...process.env, PCAPFLOW_CODE_CACHE: 'check' }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' }).stderr ?? '';
  if (!check.includes('code cache: taken')) console.warn(`bundle-cli: V8 did not take the code cache (${check.trim()}); the CLI starts without it`);
} catch (err) {
  rmSync(path.join(root, 'dist/cli/pcapflow.cjs.cache'), { force: true });
  console.warn(`bundle-cli: no code cache written (${err instanceof Error ? err.message : String(err)}); the CLI starts without it`);
}
