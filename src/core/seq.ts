/**
 * seq: all 32-bit TCP sequence-number arithmetic, in one place (RFC 793 / RFC 1982 serial
 * arithmetic). Sequence numbers are unsigned 32-bit values held in JS numbers (0..2^32-1); stream
 * offsets are plain JS numbers that may pass 2^32 (exact up to 2^53).
 *
 * Comparisons are only meaningful for numbers less than 2^31 apart: `seqDiff(a, b)` is the signed
 * distance from b to a in [-2^31, 2^31). Nothing here throws or allocates.
 */

/** SEQ_SPACE is 2^32, the size of the sequence-number space. */
export const SEQ_SPACE = 0x1_0000_0000;

/** HALF_SPACE is 2^31: the largest distance seqDiff can represent (exclusive). */
export const HALF_SPACE = 0x8000_0000;

/** seqDiff returns a - b as a signed 32-bit distance: positive when a is after b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** seqAdd returns (a + n) mod 2^32 for any integer n (negative or larger than 2^32). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** seqLt: a comes before b. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** seqLe: a comes before b or equals it. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** seqGt: a comes after b. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** seqGe: a comes after b or equals it. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** seqMax returns whichever of a and b comes later. */
export function seqMax(a: number, b: number): number {
  return ((a - b) | 0) >= 0 ? a : b;
}

/** seqInRange: lo <= s < hi in sequence space (the range may span the wrap). */
export function seqInRange(s: number, lo: number, hi: number): boolean {
  return ((s - lo) | 0) >= 0 && ((s - hi) | 0) < 0;
}

/**
 * seqToOffset maps sequence number `s` to a stream offset, given one known pair: the stream at
 * offset `refOffset` has sequence number `refSeq`. The result may be negative (before the
 * reference) or pass 2^32; `s` must be within 2^31 of `refSeq`.
 */
export function seqToOffset(s: number, refSeq: number, refOffset: number): number {
  return refOffset + ((s - refSeq) | 0);
}

/** offsetToSeq maps a stream offset back to a sequence number, given the stream's base (the sequence number of offset 0). */
export function offsetToSeq(offset: number, base: number): number {
  return (base + offset) >>> 0;
}
