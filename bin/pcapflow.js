#!/usr/bin/env node
// pcapflow command line: all logic lives in the CLI's bundle, dist/cli/pcapflow.cjs (built from
// src/cli/main.ts by scripts/bundle-cli.mjs), or in dist/cli/main.js, the same code as ES modules,
// when the bundle is missing; this file only loads it and sets the exit code. It is CommonJS
// (bin/package.json) so that Node does not start its ES module loader for it: ~10 ms of every
// start.
//
// The bundle is compiled with V8's code cache, dist/cli/pcapflow.cjs.cache, when there is one made
// from this very bundle (same modification time and size): the bytecode of the functions a `read`
// runs, which V8 would otherwise compile on every start (bench/PROFILE.md, "Start-up: V8's code
// cache"). `npm run build` writes it: scripts/bundle-cli.mjs runs this file with
// PCAPFLOW_CODE_CACHE=write, which runs the command lines of PCAPFLOW_CODE_CACHE_RUNS (reads of
// examples/http-get.pcap) and then writes the cache, and checks with PCAPFLOW_CODE_CACHE=check,
// which prints whether V8 took it (=off starts without it). A cache V8 rejects (another Node
// version) only costs that compilation. The V8 flags a run sets are put back to their defaults
// (heap.ts, restoreHeapFlags) before the cache is written, since V8 takes a cache only under the
// flags it was made with.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function run(main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`pcapflow: INTERNAL: ${err && err.message ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

const STAMP_BYTES = 16;

/** stampOf: a file's modification time and size, as the code cache's first STAMP_BYTES bytes. */
function stampOf(st) {
  const b = Buffer.alloc(STAMP_BYTES);
  b.writeDoubleLE(st.mtimeMs, 0);
  b.writeDoubleLE(st.size, 8);
  return b;
}

/** loadBundle: the bundle's exports, compiled with the code cache when there is one; null when the bundle is missing. */
function loadBundle(file) {
  let source;
  let stamp;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      stamp = stampOf(fs.fstatSync(fd));
      source = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err && err.code === 'ENOENT') return null;
    throw err;
  }
  const mode = process.env.PCAPFLOW_CODE_CACHE;
  let cachedData;
  if (mode !== 'write' && mode !== 'off') {
    try {
      // the cache opens with the stamp of the bundle it was made from: V8 itself checks only the
      // source's length
      const data = fs.readFileSync(`${file}.cache`);
      if (data.length > STAMP_BYTES && data.subarray(0, STAMP_BYTES).equals(stamp)) cachedData = data.subarray(STAMP_BYTES);
    } catch {
      cachedData = undefined;
    }
  }
  const vm = require('node:vm');
  // the wrapper Node's own require puts around a CommonJS file, and __pcapflowHost: code compiled
  // by vm.Script has no import() of its own when given cachedData (Node 20), so the bundle's
  // dynamic imports (the NATS clients, cap, yargs) come here (see scripts/bundle-cli.mjs)
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __pcapflowHost) {${source}\n})`, { filename: file, cachedData });
  const mod = { exports: {} };
  const host = (spec) => import(spec);
  script.runInThisContext().call(mod.exports, mod.exports, require('node:module').createRequire(file), mod, file, path.dirname(file), host);
  if (mode === 'check') process.stderr.write(`code cache: ${cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'taken'}\n`);
  if (mode === 'write') {
    return {
      main: async (argv) => {
        // each command line of PCAPFLOW_CODE_CACHE_RUNS (a JSON array of them) in turn, then the cache
        for (const args of JSON.parse(process.env.PCAPFLOW_CODE_CACHE_RUNS || '[]')) {
          const code = await mod.exports.main(args);
          if (code !== 0) return code;
        }
        mod.exports.restoreHeapFlags();
        fs.writeFileSync(`${file}.cache.tmp`, Buffer.concat([stamp, script.createCachedData()]));
        fs.renameSync(`${file}.cache.tmp`, `${file}.cache`);
        return argv.length === 0 ? 0 : mod.exports.main(argv);
      },
    };
  }
  return mod.exports;
}

const bundle = loadBundle(path.join(__dirname, '../dist/cli/pcapflow.cjs'));
if (bundle !== null) run(bundle.main);
else import('../dist/cli/main.js').then((m) => run(m.main));
