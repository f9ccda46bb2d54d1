#!/usr/bin/env node
// pcapflow command line: all logic lives in the CLI's bundle, dist/cli/pcapflow.cjs (built from
// src/cli/main.ts by scripts/bundle-cli.mjs), or in dist/cli/main.js, the same code as ES modules,
// when the bundle is missing; this file only loads it and sets the exit code. It is CommonJS
// (bin/package.json) so that Node does not start its ES module loader for it: ~10 ms of every
// start.
//
// The bundle is compiled with V8's code cache, dist/cli/pcapflow.cjs.cache, when there is one:
// the bytecode of the functions a `read` runs, which V8 would otherwise compile on every start
// (~15 ms of `read examples/http-get.pcap`; bench/PROFILE.md, "Start-up: the code cache").
// `npm run build` writes it: scripts/bundle-cli.mjs runs this file on examples/http-get.pcap with
// PCAPFLOW_CODE_CACHE=write, which writes the cache at exit, then checks with
// PCAPFLOW_CODE_CACHE=check, which prints whether V8 took it (=off starts without it). A cache V8
// rejects (another Node version) only costs that compilation. The V8 flags a run sets (heap.ts)
// are put back to their defaults before the cache is written, since V8 takes a cache only under
// the flags it was made with.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function run(main, after) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      if (after) after();
    },
    (err) => {
      process.stderr.write(`pcapflow: INTERNAL: ${err && err.message ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/** loadBundle: the bundle's exports, compiled with the code cache when there is one; null when the bundle is missing. */
function loadBundle(file) {
  let source;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err && err.code === 'ENOENT') return null;
    throw err;
  }
  const mode = process.env.PCAPFLOW_CODE_CACHE;
  let cachedData;
  if (mode !== 'write' && mode !== 'off') {
    try {
      cachedData = fs.readFileSync(`${file}.cache`);
    } catch {
      cachedData = undefined;
    }
  }
  const vm = require('node:vm');
  // the wrapper Node's own require puts around a CommonJS file
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, require('node:module').createRequire(file), mod, file, path.dirname(file));
  if (mode === 'check') process.stderr.write(`code cache: ${cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'taken'}\n`);
  if (mode === 'write') {
    mod.exports.writeCodeCache = () => {
      const v8 = require('node:v8');
      for (const flag of ['--heap-growing-percent=0', '--semi-space-growth-factor=2', '--no-expose-gc']) v8.setFlagsFromString(flag);
      fs.writeFileSync(`${file}.cache.tmp`, script.createCachedData());
      fs.renameSync(`${file}.cache.tmp`, `${file}.cache`);
    };
  }
  return mod.exports;
}

const bundle = loadBundle(path.join(__dirname, '../dist/cli/pcapflow.cjs'));
if (bundle !== null) run(bundle.main, bundle.writeCodeCache);
else import('../dist/cli/main.js').then((m) => run(m.main));
