/**
 * The filter language (src/core/filter.ts): the parser (precedence, implied primitives,
 * qualifiers, errors with their column), the semantics on hand-built packets (each expected
 * selection also checked against tcpdump when it is installed), FilterStage, and `--filter` on
 * `pcapflow read` and `pcapflow packets`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPcapflowError, PcapflowError } from '../src/core/errors.js';
import { compileFilter, FilterStage, formatFilter, parseFilter } from '../src/core/filter.js';
import { Packet } from '../src/core/packet.js';
import { runCli as run, type CliRun as Run } from './helpers/cli-run.js';
import { FilterTransform } from '../src/transforms/filter-transform.js';
import { buildPcap } from './helpers/capture-builder.js';
import { hasTool, SHARED_PCAPS } from './helpers/env.js';

const canon = (expr: string): string => formatFilter(parseFilter(expr));

describe('parser', () => {
  it.each([
    // and/or: equal precedence, left-associative (as libpcap; `tcpdump -d` shows it)
    ['tcp or udp and icmp', '((tcp or udp) and icmp)'],
    ['tcp and udp or icmp', '((tcp and udp) or icmp)'],
    ['tcp or udp or icmp and ip', '(((tcp or udp) or icmp) and ip)'],
    ['tcp || udp && icmp', '((tcp or udp) and icmp)'],
    ['tcp or (udp and icmp)', '(tcp or (udp and icmp))'],
    // not binds tightest
    ['not tcp and udp', '(not tcp and udp)'],
    ['!tcp || !udp', '(not tcp or not udp)'],
    ['not (tcp or udp)', 'not (tcp or udp)'],
    ['not not ip6', 'not not ip6'],
    // implied primitives repeat the last qualifiers
    ['host 1.2.3.4 or 5.6.7.8', '(host 1.2.3.4 or host 5.6.7.8)'],
    ['port 80 or 443', '(port 80 or port 443)'],
    ['tcp dst port 80 or 8080 and ip', '((tcp dst port 80 or tcp dst port 8080) and ip)'],
    ['host 1.1.1.1 and not 2.2.2.2', '(host 1.1.1.1 and not host 2.2.2.2)'],
    ['src net 10.0.0.0/8 or 192.168.0.0/16', '(src net 10.0.0.0/8 or src net 192.168.0.0/16)'],
    ['host (1.1.1.1 or 2.2.2.2) and tcp', '((host 1.1.1.1 or host 2.2.2.2) and tcp)'],
    ['ip proto 6 or 17', '(ip proto 6 or ip proto 17)'],
    ['tcp and port 80 or 443', '((tcp and port 80) or port 443)'],
    // qualifiers
    ['src or dst port 22', 'port 22'],
    ['src and dst host ::1', 'src and dst host ::1'],
    ['dst 10.0.0.1', 'dst host 10.0.0.1'],
    ['ip6 src net 2001:db8::/32', 'ip6 src net 2001:db8::/32'],
    ['arp host 10.0.0.1', 'arp host 10.0.0.1'],
    ['udp src portrange 1-1024', 'udp src portrange 1-1024'],
    ['portrange 90-80', 'portrange 80-90'],
    ['port http', 'tcp port 80'],
    ['port domain', 'port 53'],
    ['port 0x50', 'port 80'],
    ['net 10.0.0.0 mask 255.0.0.0', 'net 10.0.0.0 mask 255.0.0.0'],
    ['vlan 100 and vlan and mpls 5 and pppoes 3', '(((vlan 100 and vlan) and mpls 5) and pppoes 3)'],
    ['less 100 or greater 1500', '(less 100 or greater 1500)'],
    ['', ''],
    ['   ', ''],
  ])('%j parses as %j', (expr, want) => {
    expect(canon(expr)).toBe(want);
  });

  it('reads partial and numeric IPv4 networks as libpcap does', () => {
    const m = (expr: string): string => {
      const n = parseFilter(expr);
      if (n === null || n.t !== 'addr') throw new Error('not an address');
      return `${[...n.addr].join('.')}/${[...n.mask].join('.')}`;
    };
    expect(m('net 192.168')).toBe('192.168.0.0/255.255.0.0');
    expect(m('host 10.1')).toBe('10.1.0.0/255.255.0.0'); // libpcap: a short address is a network, even after host
    expect(m('net 10')).toBe('10.0.0.0/255.0.0.0');
    expect(m('net 0x0a')).toBe('10.0.0.0/255.0.0.0');
    expect(m('net 127.1/16')).toBe('127.1.0.0/255.255.0.0');
    expect(m('net 10.1.2 mask 255.255.255.0')).toBe('10.1.2.0/255.255.255.0');
    expect(m('host 10.0.0.1')).toBe('10.0.0.1/255.255.255.255');
  });

  it.each([
    ['tcp port', 9],
    ['tcp port and 80', 10],
    ['host 999.1.1.1', 6],
    ['host example.com', 6],
    ['(tcp', 5],
    ['tcp)', 4],
    ['tcp udp', 5],
    ['port 80 and tcp or 443', 20], // 443 has no qualifier to repeat (libpcap: syntax error)
    ['(port 80) or 443', 14],
    ['tcp[13] & 2 != 0', 4],
    ['ether host 1.2.3.4', 1],
    ['udp port http', 10], // http is tcp only
    ['net 10.1.2.3/8', 5], // non-network bits
    ['net 10/8', 7], // libpcap wants a dotted network before /
    ['port 70000', 6],
    ['tcp host 1.2.3.4', 10],
    ['ip port 80', 9],
    ['host 1.2.3.4 mask 255.0.0.0', 14],
    ['ip6 host 1.2.3.4', 10],
    ['ip host ::1', 9],
    ['net fe80:: mask ffff::', 12],
    ['vlan 5000', 6],
    ['and tcp', 1],
    ['tcp and', 8],
    ['less', 5],
    ['tcp and \\tcp', 9],
    ['tcp # comment', 5],
  ])('%j is FILTER_SYNTAX at column %i', (expr, column) => {
    let err: unknown;
    try {
      compileFilter(expr);
    } catch (e) {
      err = e;
    }
    expect(isPcapflowError(err)).toBe(true);
    const e = err as PcapflowError;
    expect(e.code).toBe('FILTER_SYNTAX');
    expect(e.column).toBe(column);
    // The message ends with the expression and a caret under that column.
    const lines = e.message.split('\n');
    expect(lines.at(-2)).toBe(`  ${expr}`);
    expect(lines.at(-1)!.indexOf('^')).toBe(2 + column - 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built packets. Each has a name; the table below says which ones each expression selects.

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const h16 = (n: number): string => n.toString(16).padStart(4, '0');
const ip4 = (a: string): string => a.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
const MACS = '0000000000aa' + '0000000000bb';

function tcp(sport: number, dport: number): string {
  return `${h16(sport)}${h16(dport)} 00000001 00000000 5002 ffff 0000 0000`;
}
function udp(sport: number, dport: number): string {
  return `${h16(sport)}${h16(dport)} 0008 0000`;
}
function ipv4(proto: number, src: string, dst: string, l4: string, fragField = 0): string {
  const len = 20 + l4.replace(/\s+/g, '').length / 2;
  return `4500 ${h16(len)} 0001 ${h16(fragField)} 40 ${proto.toString(16).padStart(2, '0')} 0000 ${ip4(src)} ${ip4(dst)} ${l4}`;
}
function ipv6(nh: number, src: string, dst: string, l4: string): string {
  const len = l4.replace(/\s+/g, '').length / 2;
  return `60000000 ${h16(len)} ${nh.toString(16).padStart(2, '0')}40 ${src} ${dst} ${l4}`;
}
const V6A = '20010db8000000000000000000000001';
const V6B = '20010db8000000000000000000000002';
const eth = (type: number, payload: string): string => `${MACS} ${h16(type)} ${payload}`;
const tag = (vid: number, type: number): string => `${h16(0x2000 | vid)} ${h16(type)}`;

interface Crafted {
  name: string;
  linkType: number;
  bytes: string;
  /** Wire length, when the capture cut the packet. */
  len?: number;
}

const HTTP = ipv4(6, '10.0.0.1', '10.0.0.2', tcp(40000, 80));
const CRAFTED: Crafted[] = [
  { name: 'eth-http', linkType: 1, bytes: eth(0x0800, HTTP) },
  { name: 'eth-dns', linkType: 1, bytes: eth(0x0800, ipv4(17, '10.0.0.2', '192.168.1.1', udp(5353, 53))) },
  { name: 'eth-icmp', linkType: 1, bytes: eth(0x0800, ipv4(1, '192.168.1.1', '10.0.0.1', '0800f7ff00000000')) },
  { name: 'vlan100-http', linkType: 1, bytes: `${MACS} 8100 ${tag(100, 0x0800)} ${HTTP}` },
  { name: 'qinq-http', linkType: 1, bytes: `${MACS} 88a8 ${tag(7, 0x8100)} ${tag(100, 0x0800)} ${HTTP}` },
  // IPv4 fragments of one TCP segment: the first carries the ports, the second (offset 8) does not
  { name: 'frag-first', linkType: 1, bytes: eth(0x0800, ipv4(6, '10.0.0.1', '10.0.0.2', tcp(40000, 80), 0x2000)) },
  { name: 'frag-second', linkType: 1, bytes: eth(0x0800, ipv4(6, '10.0.0.1', '10.0.0.2', '0050005000500050', 0x0003)) },
  // IPv6: plain TCP; TCP behind a hop-by-hop header (libpcap's tcp looks at the first next header only); behind a fragment header
  { name: 'v6-http', linkType: 1, bytes: eth(0x86dd, ipv6(6, V6A, V6B, tcp(40001, 80))) },
  { name: 'v6-hbh-http', linkType: 1, bytes: eth(0x86dd, ipv6(0, V6A, V6B, `0600000000000000 ${tcp(40002, 80)}`)) },
  { name: 'v6-frag-http', linkType: 1, bytes: eth(0x86dd, ipv6(44, V6A, V6B, `0600000100000001 ${tcp(40003, 80)}`)) },
  // ARP request 10.0.0.1 -> who has 10.0.0.9
  { name: 'arp', linkType: 1, bytes: eth(0x0806, `0001 0800 06 04 0001 0000000000aa ${ip4('10.0.0.1')} 000000000000 ${ip4('10.0.0.9')}`) },
  // MPLS (label 29, bottom of stack) then IPv4; PPPoE session 3 then PPP IPv4
  { name: 'mpls-http', linkType: 1, bytes: eth(0x8847, `0001d1ff ${HTTP}`) },
  { name: 'pppoes-http', linkType: 1, bytes: eth(0x8864, `1100 0003 ${h16(2 + HTTP.replace(/\s+/g, '').length / 2)} 0021 ${HTTP}`) },
  // cut by the snaplen inside the TCP ports: a load there rejects the packet whatever else the expression says
  { name: 'cut-http', linkType: 1, bytes: eth(0x0800, HTTP).replace(/\s+/g, '').slice(0, (14 + 20 + 1) * 2), len: 54 },
  // other link types
  { name: 'raw-http', linkType: 101, bytes: HTTP },
  { name: 'sll-dns', linkType: 113, bytes: `0000 0001 0006 00000000aa000000 0800 ${ipv4(17, '10.0.0.2', '192.168.1.1', udp(5353, 53))}` },
  { name: 'null-v6-http', linkType: 0, bytes: `1e000000 ${ipv6(6, V6A, V6B, tcp(40004, 80))}` },
];

const SEMANTICS: [string, string[]][] = [
  ['tcp', ['eth-http', 'frag-first', 'frag-second', 'v6-http', 'v6-frag-http', 'cut-http', 'raw-http', 'null-v6-http']],
  ['port 80', ['eth-http', 'frag-first', 'v6-http', 'raw-http', 'null-v6-http']],
  ['vlan and tcp port 80', ['vlan100-http']],
  ['vlan 100', ['vlan100-http']],
  ['vlan 7 and vlan 100 and host 10.0.0.1', ['qinq-http']],
  ['vlan or tcp', ['vlan100-http', 'qinq-http']], // after vlan, tcp looks 4 bytes further on in every packet
  ['host 10.0.0.1', ['eth-http', 'eth-icmp', 'frag-first', 'frag-second', 'arp', 'cut-http', 'raw-http']],
  ['ip host 10.0.0.1', ['eth-http', 'eth-icmp', 'frag-first', 'frag-second', 'cut-http', 'raw-http']],
  ['dst host 10.0.0.9', ['arp']],
  ['udp and dst port domain', ['eth-dns', 'sll-dns']],
  ['ip6 and not tcp', ['v6-hbh-http']],
  ['src net 2001:db8::/32 and dst port 80', ['v6-http', 'null-v6-http']],
  ['mpls 29 and tcp port 80', ['mpls-http']],
  ['pppoes 3 and host 10.0.0.2', ['pppoes-http']],
  ['port 80 or less 100', ['eth-http', 'eth-dns', 'eth-icmp', 'vlan100-http', 'qinq-http', 'frag-first', 'frag-second', 'v6-http', 'v6-hbh-http', 'v6-frag-http', 'arp', 'mpls-http', 'pppoes-http', 'raw-http', 'sll-dns', 'null-v6-http']],
  ['less 100', ['eth-http', 'eth-dns', 'eth-icmp', 'vlan100-http', 'qinq-http', 'frag-first', 'frag-second', 'v6-http', 'v6-hbh-http', 'v6-frag-http', 'arp', 'mpls-http', 'pppoes-http', 'cut-http', 'raw-http', 'sll-dns', 'null-v6-http']],
  ['icmp or arp', ['eth-icmp', 'arp']],
];

function craftedPacket(c: Crafted, index: number): Packet {
  const p = new Packet();
  p.index = index;
  p.linkType = c.linkType;
  p.data = hex(c.bytes);
  p.caplen = p.data.length;
  p.len = c.len ?? p.data.length;
  return p;
}

describe('semantics on hand-built packets', () => {
  const packets = CRAFTED.map((c, k) => craftedPacket(c, k + 1));

  it.each(SEMANTICS)('%j selects %j', (expr, want) => {
    const f = compileFilter(expr);
    expect(packets.filter((p) => f.matches(p)).map((p) => CRAFTED[p.index - 1]!.name)).toEqual(want);
  });

  it.runIf(hasTool('tcpdump'))('tcpdump selects the same packets', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pcapflow-filter-unit-'));
    try {
      for (const [expr, want] of SEMANTICS) {
        for (const linkType of [...new Set(CRAFTED.map((c) => c.linkType))]) {
          const group = CRAFTED.filter((c) => c.linkType === linkType);
          const file = path.join(dir, `${linkType}.pcap`);
          writeFileSync(file, buildPcap(group.map((c, k) => ({ data: hex(c.bytes), tsSec: k, len: c.len })), { linkType }));
          let out: Buffer;
          try {
            out = execFileSync('tcpdump', ['-r', file, '-nn', '-tt', '--', expr], { stdio: ['ignore', 'pipe', 'pipe'] });
          } catch (err) {
            const msg = String((err as { stderr?: Buffer }).stderr ?? '');
            if (/rejects all packets|no (VLAN|MPLS) support/.test(msg)) out = Buffer.alloc(0);
            else throw err;
          }
          const theirs = out
            .toString()
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => group[Number(l.split('.')[0])]!.name);
          expect([expr, linkType, theirs]).toEqual([expr, linkType, want.filter((n) => group.some((c) => c.name === n))]);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('matches every packet with the empty expression', () => {
    const f = compileFilter('');
    expect(packets.every((p) => f.matches(p))).toBe(true);
  });

  it('matches nothing where libpcap refuses the expression for the link type (vlan on raw IP)', () => {
    const f = compileFilter('vlan or tcp');
    expect(f.matches(packets.find((p) => p.linkType === 101)!)).toBe(false);
  });
});

describe('FilterStage', () => {
  it('compacts each batch in place, emits non-empty batches only, and counts', () => {
    const stage = new FilterStage('udp');
    const batch = CRAFTED.map((c, k) => craftedPacket(c, k + 1));
    const emitted: Packet[][] = [];
    stage.write(batch, (b) => emitted.push(b));
    stage.write([craftedPacket(CRAFTED[0]!, 99)], (b) => emitted.push(b));
    stage.end();
    expect(emitted).toHaveLength(1);
    expect(emitted[0]).toBe(batch); // the same array, compacted
    expect(emitted[0]!.map((p) => CRAFTED[p.index - 1]!.name)).toEqual(['eth-dns', 'sll-dns']);
    expect(stage.stats).toEqual({ packets: CRAFTED.length + 1, matched: 2, dropped: CRAFTED.length - 1 });
  });

  it('throws FILTER_SYNTAX from the constructor, as the Transform does', () => {
    expect(() => new FilterStage('port')).toThrow(PcapflowError);
    let err: unknown;
    try {
      new FilterTransform('host');
    } catch (e) {
      err = e;
    }
    expect(isPcapflowError(err) && err.code === 'FILTER_SYNTAX').toBe(true);
  });

  it('passes batches through as a Transform', async () => {
    const t = new FilterTransform('vlan');
    const out: Packet[] = [];
    t.on('data', (b: Packet[]) => out.push(...b));
    const done = new Promise((resolve) => t.on('end', resolve));
    t.write(CRAFTED.map((c, k) => craftedPacket(c, k + 1)));
    t.end();
    await done;
    expect(out.map((p) => CRAFTED[p.index - 1]!.name)).toEqual(['vlan100-http', 'qinq-http']);
    expect(t.core.stats.matched).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// CLI


const VLAN_GET = path.join(SHARED_PCAPS, 'zeek__http-get-vlan.pcap');
const MIXED = path.join(SHARED_PCAPS, 'zeek__mixed-vlan-mpls.pcap');

describe('--filter on the CLI', () => {
  let tmp = '';
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'pcapflow-filter-cli-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const indices = (r: Run): number[] =>
    r.stdout
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { index: number }).index);

  it('packets: prints only the matching packets, with their frame numbers', async () => {
    const all = await run(['packets', MIXED, '--format', 'ndjson']);
    const vlanTcp = await run(['packets', MIXED, '--format', 'ndjson', '--filter', 'vlan and tcp']);
    const plainTcp = await run(['packets', MIXED, '--format', 'ndjson', '--filter', 'tcp']);
    expect([all.code, vlanTcp.code, plainTcp.code]).toEqual([0, 0, 0]);
    const lines = all.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; vlan: number[]; proto: number });
    // As tcpdump: `tcp` sees only untagged, unlabelled frames; `vlan and tcp` only tagged ones.
    expect(indices(vlanTcp)).toEqual(lines.filter((l) => l.vlan.length > 0 && l.proto === 6).map((l) => l.index));
    expect(indices(plainTcp).length).toBeGreaterThan(0);
    expect(indices(plainTcp).every((i) => lines[i - 1]!.vlan.length === 0)).toBe(true);
    expect(new Set([...indices(vlanTcp), ...indices(plainTcp)]).size).toBe(indices(vlanTcp).length + indices(plainTcp).length);
  });

  it('packets: --stats reports the filter counters', async () => {
    const r = await run(['packets', VLAN_GET, '--filter', 'vlan and src host 141.142.228.5', '--stats']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(7);
    expect(r.stderr).toMatch(/filter\.packets\s+14\b/);
    expect(r.stderr).toMatch(/filter\.matched\s+7\b/);
    expect(r.stderr).toMatch(/filter\.dropped\s+7\b/);
  });

  it('read: drops what does not match before the demux', async () => {
    const all = await run(['read', VLAN_GET, '--sink', 'ndjson']);
    const vlan = await run(['read', VLAN_GET, '--sink', 'ndjson', '--filter', 'vlan and port 80']);
    const none = await run(['read', VLAN_GET, '--sink', 'ndjson', '--filter', 'tcp port 80']);
    expect([all.code, vlan.code, none.code]).toEqual([0, 0, 0]);
    expect(vlan.stdout).toBe(all.stdout);
    expect(all.stdout).toContain('"type":"close"');
    expect(none.stdout).toBe(''); // libpcap's tcp does not look inside the VLAN tag
  });

  it('read: one direction only with a src filter', async () => {
    const r = await run(['read', VLAN_GET, '--sink', 'ndjson', '--encoding', 'utf8', '--filter', 'vlan and src port 80']);
    expect(r.code).toBe(0);
    const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; dir?: string });
    const dirs = new Set(records.filter((x) => x.type === 'data').map((x) => x.dir));
    expect(dirs.size).toBe(1);
  });

  it.each([['read'], ['packets']])('%s: a syntax error exits 2 with FILTER_SYNTAX and a caret, before reading', async (cmd) => {
    const r = await run([cmd, path.join(tmp, 'missing.pcap'), '--filter', 'tcp prot 80']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^pcapflow: FILTER_SYNTAX: /);
    expect(r.stderr).toContain('\n  tcp prot 80\n      ^');
    expect(r.stdout).toBe('');
  });
});
