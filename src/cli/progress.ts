/**
 * Progress draws a one-line progress bar on a terminal (stderr) while files are read: bytes
 * parsed against the total size of the inputs (stdin counts as unknown size). Wall-clock timers
 * drive only the drawing, never the processing.
 */
import { statSync } from 'node:fs';
import type { InputStats } from '../sources/capture-source.js';

interface Source {
  inputStats(): InputStats[];
}

export class Progress {
  private readonly out: NodeJS.WritableStream;
  private readonly source: Source;
  private readonly total: number;
  private readonly timer: NodeJS.Timeout;
  private drawn = false;

  constructor(out: NodeJS.WritableStream, source: Source, intervalMs = 250) {
    this.out = out;
    this.source = source;
    let total = 0;
    for (const s of source.inputStats()) {
      if (s.file === '-') continue;
      try {
        total += statSync(s.file).size;
      } catch {
        // a missing file is reported by the source
      }
    }
    this.total = total;
    this.timer = setInterval(() => this.draw(), intervalMs);
    this.timer.unref();
  }

  /** line renders the bar for `bytes` parsed and `packets` read. */
  static line(bytes: number, packets: number, total: number, width = 30): string {
    const mb = (bytes / 1e6).toFixed(1);
    if (total <= 0) return `${mb} MB, ${packets} packets`;
    const frac = Math.min(1, bytes / total);
    const fill = Math.round(frac * width);
    return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb} MB, ${packets} packets`;
  }

  private draw(): void {
    let bytes = 0;
    let packets = 0;
    for (const s of this.source.inputStats()) {
      bytes += s.compression === null ? s.bytes : s.compressedBytes; // against the file sizes
      packets += s.packets;
    }
    this.out.write(`\r${Progress.line(bytes, packets, this.total)}\x1b[K`);
    this.drawn = true;
  }

  /** stop ends the bar and clears its line. */
  stop(): void {
    clearInterval(this.timer);
    if (this.drawn) this.out.write('\r\x1b[K');
  }
}
