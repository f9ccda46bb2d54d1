import { describe, expect, it } from 'vitest';
import { flowBaseName } from '../src/core/format.js';
import { NameCounts } from '../src/sinks/files-layout.js';
import { rng } from './helpers/rng.js';

describe('NameCounts', () => {
  it('counts every name as a Map of the names would, across table growth, directories, VLANs and IPv6', () => {
    const r = rng(7);
    const counts = new NameCounts();
    const ref = new Map<string, number>();
    // few addresses and ports, so that names repeat; extremes of each field included
    const v4 = ['0.0.0.0', '255.255.255.255', '10.0.0.1', '10.0.0.2', '192.168.1.200', '128.0.0.1'];
    const v6 = ['2001:db8::1', '::ffff:10.0.0.1', 'fe80::1'];
    const ports = [0, 1, 80, 443, 32767, 32768, 40000, 65535];
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
    let reused = 0;
    for (let i = 0; i < 60_000; i++) {
      const six = r() < 0.05;
      const src = { ip: six ? pick(v6) : pick(v4), port: r() < 0.5 ? pick(ports) : Math.floor(r() * 65536) };
      const dst = { ip: six ? pick(v6) : pick(v4), port: pick(ports) };
      const vlan = r() < 0.05 ? [Math.floor(r() * 4096)] : [];
      const dir = r() < 0.5 ? -1 : Math.floor(r() * 4);
      const base = flowBaseName(src, dst, vlan);
      const key = `${dir} ${base}`;
      const want = ref.get(key) ?? 0;
      ref.set(key, want + 1);
      if (want > 0) reused++;
      expect(counts.use(base, dir), `${key} use ${want + 1}`).toBe(want);
    }
    expect(reused).toBeGreaterThan(1000);
    expect(ref.size).toBeGreaterThan(10_000);
  });
});
