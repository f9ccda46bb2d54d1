import { describe, expect, it } from 'vitest';
import { offsetToSeq, seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax, seqToOffset } from '../src/core/seq.js';

const MAX = 0xffffffff;

describe('seq arithmetic', () => {
  it.each([
    // a, b, a - b
    [5, 3, 2],
    [3, 5, -2],
    [0, MAX, 1],
    [MAX, 0, -1],
    [10, MAX - 9, 20],
    [MAX - 9, 10, -20],
    [0x7fffffff, 0, 0x7fffffff],
    [0x80000000, 0, -0x80000000],
    [0, 0x80000001, 0x7fffffff],
    [1234, 1234, 0],
  ])('seqDiff(%d, %d) = %d', (a, b, d) => {
    expect(seqDiff(a, b)).toBe(d);
  });

  it.each([
    [MAX, 1, 0],
    [MAX, 2, 1],
    [0, -1, MAX],
    [5, -10, MAX - 4],
    [1, 0x1_0000_0000, 1],
    [100, 5 * 0x1_0000_0000 + 7, 107],
    [MAX - 1, 0x1_0000_0000 + 3, 1],
  ])('seqAdd(%d, %d) = %d', (a, n, r) => {
    expect(seqAdd(a, n)).toBe(r);
  });

  it.each([
    // a, b, lt, le, gt, ge
    [1, 2, true, true, false, false],
    [2, 1, false, false, true, true],
    [7, 7, false, true, false, true],
    [MAX, 0, true, true, false, false],
    [0, MAX, false, false, true, true],
    [MAX - 100, 50, true, true, false, false],
  ])('compare %d with %d', (a, b, lt, le, gt, ge) => {
    expect(seqLt(a, b)).toBe(lt);
    expect(seqLe(a, b)).toBe(le);
    expect(seqGt(a, b)).toBe(gt);
    expect(seqGe(a, b)).toBe(ge);
  });

  it('seqMax picks the later number across the wrap', () => {
    expect(seqMax(MAX, 3)).toBe(3);
    expect(seqMax(3, MAX)).toBe(3);
    expect(seqMax(10, 20)).toBe(20);
  });

  it.each([
    [5, 0, 10, true],
    [10, 0, 10, false],
    [0, MAX - 5, 5, true],
    [MAX, MAX - 5, 5, true],
    [6, MAX - 5, 5, false],
    [MAX - 6, MAX - 5, 5, false],
  ])('seqInRange(%d, %d, %d) = %s', (s, lo, hi, r) => {
    expect(seqInRange(s, lo, hi)).toBe(r);
  });

  it('maps sequence numbers to stream offsets past 2^32 and back', () => {
    const base = MAX - 99; // offset 0
    // a stream already 5 GB in: its next byte has offset 5e9
    const refOff = 5_000_000_000;
    const refSeq = offsetToSeq(refOff, base);
    expect(refSeq).toBe((base + 5_000_000_000) % 0x1_0000_0000);
    expect(seqToOffset(seqAdd(refSeq, 1000), refSeq, refOff)).toBe(refOff + 1000);
    expect(seqToOffset(seqAdd(refSeq, -1000), refSeq, refOff)).toBe(refOff - 1000);
    expect(seqToOffset(base, base, 0)).toBe(0);
    expect(seqToOffset(0, base, 0)).toBe(100); // wrapped
    expect(offsetToSeq(100, base)).toBe(0);
  });
});
