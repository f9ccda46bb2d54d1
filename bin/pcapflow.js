#!/usr/bin/env node
// pcapflow command line: all logic lives in the CLI's bundle, dist/cli/pcapflow.cjs (built from
// src/cli/main.ts by scripts/bundle-cli.mjs), or in dist/cli/main.js, the same code as ES modules,
// when the bundle is missing; this file only sets the exit code. It is CommonJS (bin/package.json)
// so that Node does not start its ES module loader for it: ~10 ms of every start.
'use strict';

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

let bundle = null;
try {
  bundle = require('../dist/cli/pcapflow.cjs');
} catch (err) {
  if (!err || err.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes('pcapflow.cjs')) throw err;
}
if (bundle !== null) run(bundle.main);
else import('../dist/cli/main.js').then((m) => run(m.main));
