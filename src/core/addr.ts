/**
 * addr: IP addresses as text, the way tshark prints them (`ip.src`, `ipv6.src`).
 *
 * - IPv4: dotted quad ("192.0.2.1").
 * - IPv6: RFC 5952: lowercase hex without leading zeros; the longest run of two or more zero
 *   groups (the first one on a tie) becomes "::"; a single zero group stays "0". IPv4-mapped
 *   (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, six zero groups) addresses end in a dotted
 *   quad, as inet_ntop and tshark print them ("::2" stays "::2").
 *
 * Pure and allocation-light; not for the per-packet hot path (the demux keys on bytes, not text).
 */

/** formatIpv4 prints 4 bytes as a dotted quad. */
export function formatIpv4(a: Uint8Array, off = 0): string {
  return `${a[off]!}.${a[off + 1]!}.${a[off + 2]!}.${a[off + 3]!}`;
}

/** formatIpv6 prints 16 bytes in RFC 5952 form. */
export function formatIpv6(a: Uint8Array, off = 0): string {
  // The 8 groups, and the longest run of zero groups.
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    const g = (a[off + 2 * i]! << 8) | a[off + 2 * i + 1]!;
    if (g === 0) {
      if (runStart < 0) runStart = i;
      const len = i - runStart + 1;
      if (len > bestLen) {
        bestLen = len;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  if (bestLen < 2) bestStart = -1;

  // IPv4-compatible ::a.b.c.d and IPv4-mapped ::ffff:a.b.c.d (as inet_ntop and tshark print them)
  if (bestStart === 0) {
    if (bestLen === 6) return `::${formatIpv4(a, off + 12)}`;
    if (bestLen === 5 && a[off + 10] === 0xff && a[off + 11] === 0xff) return `::ffff:${formatIpv4(a, off + 12)}`;
  }

  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    const g = (a[off + 2 * i]! << 8) | a[off + 2 * i + 1]!;
    s += g.toString(16);
    if (i < 7) s += ':';
  }
  return s;
}

/** formatIp prints a 4-byte (IPv4) or 16-byte (IPv6) address; any other length gives "". */
export function formatIp(a: Uint8Array): string {
  if (a.length === 4) return formatIpv4(a);
  if (a.length === 16) return formatIpv6(a);
  return '';
}

/** parseIp reads a dotted quad or an IPv6 address (with "::" and an optional dotted-quad tail) into bytes; null when invalid. */
export function parseIp(text: string): Uint8Array | null {
  if (!text.includes(':')) return parseIpv4(text);
  return parseIpv6(text);
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const res: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 === null) return null;
        res.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        res.push(parseInt(p, 16));
      }
    }
    return res;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return null;
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}
