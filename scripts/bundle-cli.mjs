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
