/**
 * Test helpers shared by every suite: where the repository and the shared captures are, and
 * whether an external tool (tshark, tcpflow, jq, ...) is on this machine.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** ../shared/pcaps beside the checkout: the real captures described in its README. */
export const SHARED_PCAPS = path.resolve(REPO_ROOT, '../shared/pcaps');
export const FIXTURES = path.join(REPO_ROOT, 'test/fixtures');

/** Every capture file in ../shared/pcaps (full paths, sorted). A missing folder is an error, never an empty list. */
export function sharedCaptures(): string[] {
  if (!existsSync(SHARED_PCAPS)) throw new Error(`the shared captures are missing: ${SHARED_PCAPS}`);
  return readdirSync(SHARED_PCAPS)
    .filter((f) => /\.(pcap|pcapng|cap)$/.test(f))
    .sort()
    .map((f) => path.join(SHARED_PCAPS, f));
}

const toolCache = new Map<string, boolean>();

/** hasTool tells whether `name` runs here. */
export function hasTool(name: string): boolean {
  let ok = toolCache.get(name);
  if (ok === undefined) {
    try {
      execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
      ok = true;
    } catch {
      ok = false;
    }
    toolCache.set(name, ok);
  }
  return ok;
}

/**
 * needTool is for suites that compare against a reference tool. Outside CI a missing tool skips
 * the suite (returns false); under CI (CI=true) a missing tool is a failure, so CI can never
 * pass by skipping.
 */
export function needTool(name: string): boolean {
  if (hasTool(name)) return true;
  if (process.env.CI) throw new Error(`${name} is required under CI but is not installed`);
  console.warn(`skipping: ${name} is not installed`);
  return false;
}
