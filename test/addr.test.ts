import { describe, expect, it } from 'vitest';
import { formatIp, formatIpv4, formatIpv6, parseIp } from '../src/core/addr.js';
import { hex } from './helpers/packet-builder.js';

// Expected strings are what tshark 4.0 printed for these addresses (ipv6.src of crafted packets).
const V6: Array<[string, string]> = [
  ['00000000000000000000000001020304', '::1.2.3.4'],
  ['00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
  ['00000000000000000000000000000002', '::2'],
  ['00000000000000000000000000000001', '::1'],
  ['00010000000000010000000000000001', '1:0:0:1::1'],
  ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
  ['00010000000000020000000000000000', '1:0:0:2::'],
  ['00000000000100000000000000000000', '0:0:1::'],
  ['00000000000000000000000000000000', '::'],
  ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
  ['0000000000000000ffff000001020304', '::ffff:0:102:304'],
  ['0064ff9b000000000000000001020304', '64:ff9b::102:304'],
  ['fe80000000000000000000000000ffff', 'fe80::ffff'],
  ['fe800000000000000000ffff00000000', 'fe80::ffff:0:0'],
  ['20010DB8000000000000000000000001'.toLowerCase(), '2001:db8::1'],
  ['2604138040910ce0000000000000000d', '2604:1380:4091:ce0::d'],
];

describe('formatIpv6', () => {
  it.each(V6)('%s prints as %s', (h, text) => {
    expect(formatIpv6(hex(h))).toBe(text);
    expect(formatIp(hex(h))).toBe(text);
  });

  it('reads at an offset inside a larger buffer', () => {
    const b = hex('ffff' + '20010db8000000000000000000000001');
    expect(formatIpv6(b, 2)).toBe('2001:db8::1');
  });
});

describe('formatIpv4', () => {
  it('prints a dotted quad', () => {
    expect(formatIpv4(hex('c0a80115'))).toBe('192.168.1.21');
    expect(formatIp(hex('00000000'))).toBe('0.0.0.0');
    expect(formatIp(hex('ffffffff'))).toBe('255.255.255.255');
  });

  it('gives "" for a length that is not an address', () => {
    expect(formatIp(new Uint8Array(0))).toBe('');
    expect(formatIp(new Uint8Array(5))).toBe('');
  });
});

describe('parseIp', () => {
  it('round-trips every address above', () => {
    for (const [h, text] of V6) expect(Array.from(parseIp(text)!)).toEqual(Array.from(hex(h)));
    expect(Array.from(parseIp('10.0.0.255')!)).toEqual([10, 0, 0, 255]);
  });

  it('rejects nonsense', () => {
    for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7', '']) expect(parseIp(bad)).toBeNull();
  });
});
