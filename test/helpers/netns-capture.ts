/**
 * What the application-layer netns tests (test/http-netns.test.ts, test/tls-netns.test.ts) say
 * of a capture made by the harness's runCapture: its summary line, and the checks that make it
 * usable (no namespace left, the applications agree, tcpdump kept every frame, loss and
 * duplicates happened).
 */
import { expect } from 'vitest';
import { type CaptureRun, leftovers } from '../harness/scenario.js';

/** captureLine: `<what>; capture: frames, lost, dup, dropped, client exit, seconds` (or none). */
export function captureLine(what: string, c: CaptureRun | null): string {
  return `${what}; capture: ${c === null ? 'none' : `${c.captured} frames, lost ${c.lossFrames}, dup ${c.dupFrames}, dropped ${c.captureDropped}, client exit ${c.clientExit}, ${c.seconds.toFixed(1)} s`}`;
}

/** expectSoundCapture: the checks above; returns the capture. */
export function expectSoundCapture<C extends CaptureRun>(capture: C | null, problems: readonly string[]): C {
  expect(leftovers()).toEqual([]);
  expect(capture).not.toBeNull();
  const c = capture!;
  expect(problems).toEqual([]);
  expect(c.clientExit, c.clientSummary).toBe(0);
  expect(c.captureDropped, 'tcpdump dropped frames').toBe(0);
  expect(c.captured + c.captureDropped, 'tcpdump left frames unread').toBe(c.received);
  expect(c.lossFrames).toBeGreaterThan(0);
  expect(c.dupFrames).toBeGreaterThan(0);
  return c;
}
