/**
 * pcapng-format: constants of the pcapng block layout and TsUnit, the exact conversion of a
 * pcapng 64-bit timestamp (in an interface's `if_tsresol` units, plus `if_tsoffset` seconds)
 * to whole seconds and nanoseconds. Pure code, no `node:*` imports.
 */

/** Block types the reader interprets; every other type is skipped by its length. */
export const BT_SHB = 0x0a0d0d0a;
export const BT_IDB = 0x00000001;
export const BT_PB = 0x00000002; // obsolete Packet Block
export const BT_SPB = 0x00000003;
export const BT_EPB = 0x00000006;

/** Byte-order magic of a Section Header Block, read little-endian. */
export const BOM_LE = 0x1a2b3c4d;
export const BOM_BE = 0x4d3c2b1a;

/** Option codes (IDB). */
export const OPT_ENDOFOPT = 0;
export const IF_TSRESOL = 9;
export const IF_TSOFFSET = 14;

const TWO32 = 4294967296;
const TWO16 = 65536;
/** Largest `hi` for which `hi * 2^32 + lo` is an exact double (below 2^53). */
const EXACT_HI = 0x200000;

/** 10^-n with n <= 9: unit count split by `units`, remainder times `nsPerUnit`. */
const KIND_DECIMAL = 0;
/** 2^-n with n <= 23: remainder * 1e9 / 2^n is exact in a double. */
const KIND_BINARY = 1;
/** Anything else (10^-n with n > 9, 2^-n with n > 23): BigInt arithmetic. */
const KIND_BIG = 2;

/**
 * TsUnit turns a pcapng timestamp (two unsigned 32-bit halves) into seconds and nanoseconds,
 * exactly. The common resolutions (10^-6, 10^-9) never allocate: values below 2^53 units are
 * split with one double division; larger ones (every ns timestamp after 1970 + 104 days) by a
 * long division on 16-bit digits, each step exact. Sub-nanosecond resolutions truncate to the
 * nanosecond. Seconds above 2^53 (no real capture has them) lose precision.
 */
export class TsUnit {
  /** The raw `if_tsresol` byte (6 = microseconds, the default). */
  readonly tsresol: number;
  /** Seconds added to every timestamp (`if_tsoffset`). */
  readonly offset: number;
  private readonly kind: number;
  /** Units per second (Decimal and Binary kinds). */
  private readonly units: number;
  /** Nanoseconds per unit (Decimal kind). */
  private readonly nsPerUnit: number;
  private readonly bigUnits: bigint;
  /** Result of the last `split`: seconds (before the offset is added) and nanoseconds. */
  sec = 0;
  nsec = 0;

  constructor(tsresol = 6, offset = 0) {
    this.tsresol = tsresol;
    this.offset = offset;
    const binary = (tsresol & 0x80) !== 0;
    const n = tsresol & 0x7f;
    if (!binary && n <= 9) {
      this.kind = KIND_DECIMAL;
      this.units = 10 ** n;
      this.nsPerUnit = 10 ** (9 - n);
    } else if (binary && n <= 23) {
      this.kind = KIND_BINARY;
      this.units = 2 ** n;
      this.nsPerUnit = 0;
    } else {
      this.kind = KIND_BIG;
      this.units = 0;
      this.nsPerUnit = 0;
    }
    this.bigUnits = binary ? 1n << BigInt(n) : 10n ** BigInt(n);
  }

  /** split converts the timestamp `hi * 2^32 + lo` into `this.sec` (offset included) and `this.nsec`. */
  split(hi: number, lo: number): void {
    if (this.kind === KIND_BIG) {
      this.splitBig(hi, lo);
      return;
    }
    const u = this.units;
    let sec: number;
    let rem: number;
    if (hi < EXACT_HI) {
      const v = hi * TWO32 + lo;
      sec = Math.floor(v / u);
      rem = v - sec * u;
      if (rem < 0) {
        sec -= 1;
        rem += u;
      } else if (rem >= u) {
        sec += 1;
        rem -= u;
      }
    } else {
      // Long division on four 16-bit digits: every partial value stays below 2^46.
      let x = hi >>> 16;
      const q3 = Math.floor(x / u);
      x = (x - q3 * u) * TWO16 + (hi & 0xffff);
      const q2 = Math.floor(x / u);
      x = (x - q2 * u) * TWO16 + (lo >>> 16);
      const q1 = Math.floor(x / u);
      x = (x - q1 * u) * TWO16 + (lo & 0xffff);
      const q0 = Math.floor(x / u);
      rem = x - q0 * u;
      sec = ((q3 * TWO16 + q2) * TWO16 + q1) * TWO16 + q0;
    }
    this.sec = sec + this.offset;
    this.nsec = this.kind === KIND_DECIMAL ? rem * this.nsPerUnit : Math.floor((rem * 1e9) / u);
  }

  private splitBig(hi: number, lo: number): void {
    const v = (BigInt(hi) << 32n) | BigInt(lo);
    const sec = v / this.bigUnits;
    const rem = v - sec * this.bigUnits;
    this.sec = Number(sec) + this.offset;
    this.nsec = Number((rem * 1_000_000_000n) / this.bigUnits);
  }
}
