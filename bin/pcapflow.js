#!/usr/bin/env node
// pcapflow command line: all logic lives in dist/cli/main.js; this file only sets the exit code.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`pcapflow: INTERNAL: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
