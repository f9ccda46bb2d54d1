#!/usr/bin/env node
// npm run fuzz: the fuzz properties of test/hostile/fuzz.test.ts, each run for a while with a
// random seed instead of CI's bounded, seeded set.
//
//   npm run fuzz                          each property for 120 s, random seed
//   npm run fuzz -- --seconds 600         longer
//   npm run fuzz -- --seed 1234           replay a run (the seed is printed at the start and end)
//
// A failure prints fast-check's counterexample and its seed and path; rerun with that --seed to
// reproduce it. Exit status: vitest's (0 when every property held).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`fuzz: --${name} needs a whole number, got ${args[i + 1]}`);
    process.exit(2);
  }
  return v;
}

const seconds = option('seconds', 120);
const seed = option('seed', Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz: seed ${seed}, ${seconds} s per property (7 properties)`);
const vitest = path.join(root, 'node_modules/vitest/vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', 'test/hostile/fuzz.test.ts', '-t', 'fuzz:'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SECONDS: String(seconds), FUZZ_SEED: String(seed) },
});
console.log(`fuzz: seed ${seed} ${r.status === 0 ? 'passed' : 'FAILED'}`);
process.exitCode = r.status ?? 1;
