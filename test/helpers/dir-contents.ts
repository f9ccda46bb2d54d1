/** dir-contents: a directory's files as names with size and SHA-256, for comparing two outputs. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ConnectionRecord } from '../../src/sinks/connection-records.js';
import { CONNECTIONS_FILE } from '../../src/sinks/files-sink.js';

/** dirContents: every file of `dir` (names sorted) with its size and SHA-256 (a deep compare of the bytes themselves is slow in expect). */
export function dirContents(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of fs.readdirSync(dir).sort()) {
    const bytes = fs.readFileSync(path.join(dir, name));
    out.set(name, `${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`);
  }
  return out;
}

/** connectionRecords: the lines of DIR/connections.ndjson, parsed. */
export function connectionRecords(dir: string): ConnectionRecord[] {
  return fs
    .readFileSync(path.join(dir, CONNECTIONS_FILE), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as ConnectionRecord);
}
