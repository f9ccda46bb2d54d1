/**
 * filter: the common part of the pcap filter language (pcap-filter(7)) for file input, compiled
 * once into a tree of closures that tests a packet's captured bytes the way libpcap's BPF code
 * would. `compileFilter(expr)` parses (throwing PcapflowError FILTER_SYNTAX with the column of
 * the fault); `PacketFilter.matches(pkt)` answers per packet without allocating; FilterStage is
 * the pure Stage that drops the packets of a batch that do not match.
 *
 * Grammar: primitives `host H`, `net N/len`, `net N mask M`, `net 10.1` (a short dotted network;
 * `host 10.1` is the same network, as in libpcap), `port P`, `portrange A-B`, `proto N`, each with
 * optional qualifiers in pcap-filter's order: a protocol (`ip`, `ip6`, `arp`, `rarp` before
 * host/net; `tcp`, `udp`, `sctp` before port/portrange; `ip`, `ip6` before proto) then a direction
 * (`src`, `dst`, `src or dst`, `src and dst`); `src H` and `dst H` alone mean a host. Protocols
 * `ip`, `ip6`, `arp`, `rarp`, `tcp`, `udp`, `sctp`, `icmp`, `icmp6`; `vlan [id]`, `mpls [label]`,
 * `pppoes [session]`; `less N`, `greater N`. Hosts are IPv4 or IPv6 literals (no DNS); numbers are
 * decimal or 0x hex; ports are numbers or a few service names, resolved as Debian's /etc/services
 * resolves them (`http` is TCP only, `domain` TCP and UDP). Operators `and`/`&&`, `or`/`||`,
 * `not`/`!`, parentheses. As in libpcap, `and` and `or` have EQUAL precedence and associate to the
 * left (`a or b and c` is `(a or b) and c`); `not` binds tightest. An address, number or name where
 * a primitive is expected repeats the qualifiers of the primitive before it (`host 10.0.0.1 or
 * 10.0.0.2`, `port 80 or 443`, `host 10.0.0.1 and not 10.0.0.2`, `host (10.0.0.1 or 10.0.0.2)`);
 * after a bare protocol, `vlan` or a parenthesis there is none to repeat (an error, as in libpcap).
 * Not supported (FILTER_SYNTAX): arithmetic (`tcp[13] & 2 != 0`), `ether`, host names, escapes.
 *
 * Semantics are libpcap 1.10's on the same bytes, not pcapflow's decoding:
 * - only the outer headers count: `ip`/`tcp`/`host` do not match VLAN-tagged, MPLS or PPPoE
 *   frames; `vlan`, `mpls` and `pppoes` move the offsets of every primitive that FOLLOWS them in
 *   the expression, in either branch of an `or` (libpcap's well-known rule);
 * - `port` does not match non-first IPv4 fragments; on IPv6 `tcp`/`udp`/`port` look at the first
 *   next header only (`tcp` also through one Fragment header, as libpcap does);
 * - `host` and `net` with an IPv4 address also match ARP and RARP sender and target addresses;
 * - a load past the captured bytes rejects the packet outright (BPF semantics), whatever the rest
 *   of the expression says.
 * Per link type: Ethernet, Linux SLL and SLL2 (ethertype), raw IP 101/12/14 (version nibble),
 * LINKTYPE_IPV4/IPV6, NULL/LOOP (address family), 802.11 radiotap (data frames, LLC ethertype,
 * libpcap's header-length rules). Where libpcap refuses the expression for a link type (`vlan`
 * off Ethernet and 802.11, `mpls` off Ethernet and PPPoE), no packet of that link type matches.
 * Divergences: on NFLOG, where libpcap filters nothing, the IP packet in the payload TLV is
 * filtered as on raw IP; NULL accepts the address family in either byte order (libpcap expects
 * the file's, which a Packet does not carry); unknown link types match only `less`/`greater`.
 */
import { parseIp } from './addr.js';
import { PcapflowError } from './errors.js';
import { EMPTY, type Packet } from './packet.js';
import type { Stage } from './stage.js';

// ---------------------------------------------------------------------------------------------
// Lexer

type TokKind = 'word' | '(' | ')' | '!' | '&&' | '||' | '/' | 'end';

interface Token {
  kind: TokKind;
  text: string;
  /** 0-based index of the first character in the expression. */
  pos: number;
}

const WORD_CHAR = /[A-Za-z0-9_.:-]/;

function lex(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '&&' || two === '||') {
      out.push({ kind: two, text: two, pos: i });
      i += 2;
      continue;
    }
    if (two === '!=') throw syntax(src, i, 'comparisons (!=) are not supported: pcapflow filters take no arithmetic expressions');
    if (ch === '(' || ch === ')' || ch === '!' || ch === '/') {
      out.push({ kind: ch, text: ch, pos: i });
      i++;
      continue;
    }
    if (WORD_CHAR.test(ch)) {
      const start = i;
      while (i < src.length && WORD_CHAR.test(src[i]!)) i++;
      out.push({ kind: 'word', text: src.slice(start, i), pos: start });
      continue;
    }
    if ('<>=[]+*&|^%'.includes(ch)) {
      throw syntax(src, i, `'${ch}': arithmetic expressions (as in tcp[13] & 2 != 0) are not supported`);
    }
    if (ch === '\\') throw syntax(src, i, "backslash escapes (as in 'proto \\tcp') are not supported: use the protocol number");
    throw syntax(src, i, `unexpected character '${ch}'`);
  }
  out.push({ kind: 'end', text: '', pos: src.length });
  return out;
}

/** syntax builds the FILTER_SYNTAX error: the message, the expression, and a caret under column `pos + 1`. */
function syntax(src: string, pos: number, what: string): PcapflowError {
  const column = pos + 1;
  const message = `filter expression, column ${column}: ${what}\n  ${src}\n  ${' '.repeat(pos)}^`;
  return new PcapflowError('FILTER_SYNTAX', message, { column });
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

/** Direction qualifier: src, dst, `src or dst` (the default), `src and dst`. */
export type FilterDir = 'src' | 'dst' | 'or' | 'and';

/** A parsed filter expression. */
export type FilterNode =
  | { readonly t: 'and' | 'or'; readonly a: FilterNode; readonly b: FilterNode }
  | { readonly t: 'not'; readonly a: FilterNode }
  /** ip, ip6, arp, rarp: the link-layer protocol. */
  | { readonly t: 'link'; readonly name: 'ip' | 'ip6' | 'arp' | 'rarp' }
  /** tcp, udp, sctp, icmp, icmp6 and `[ip|ip6] proto N`. */
  | { readonly t: 'proto'; readonly v4: boolean; readonly v6: boolean; readonly n: number; readonly name: string }
  /** host and net: address under a mask (a host has a full mask). */
  | {
      readonly t: 'addr';
      readonly kind: 'host' | 'net';
      readonly dir: FilterDir;
      /** Which headers: IPv4 literals look in ip, arp, rarp (the default) or one of them; IPv6 literals in ip6. */
      readonly over: readonly ('ip' | 'arp' | 'rarp' | 'ip6')[];
      /** The protocol qualifier as written (ip, ip6, arp, rarp), or null. */
      readonly qual: string | null;
      readonly addr: Uint8Array;
      readonly mask: Uint8Array;
      readonly text: string;
    }
  /** port and portrange, over TCP, UDP and SCTP or a subset. */
  | { readonly t: 'port'; readonly dir: FilterDir; readonly protos: readonly number[]; readonly lo: number; readonly hi: number; readonly text: string }
  | { readonly t: 'vlan' | 'mpls' | 'pppoes'; readonly id: number }
  | { readonly t: 'less' | 'greater'; readonly n: number };

const PQUALS = ['ip', 'ip6', 'arp', 'rarp', 'tcp', 'udp', 'sctp', 'icmp', 'icmp6'] as const;
type PQual = (typeof PQUALS)[number];
type AQual = 'host' | 'net' | 'port' | 'portrange' | 'proto';

/** Qualifiers of a primitive: what an implied primitive (`or 10.0.0.2`) repeats. */
interface Qual {
  p: PQual | null;
  d: FilterDir | null;
  a: AQual | null;
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;
const PORT_PROTOS: Readonly<Record<string, readonly number[]>> = {
  tcp: [IPPROTO_TCP],
  udp: [IPPROTO_UDP],
  sctp: [IPPROTO_SCTP],
};
const ALL_PORT_PROTOS: readonly number[] = [IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP];

const PROTO_ABBREV: Readonly<Record<string, { v4: boolean; v6: boolean; n: number }>> = {
  tcp: { v4: true, v6: true, n: IPPROTO_TCP },
  udp: { v4: true, v6: true, n: IPPROTO_UDP },
  sctp: { v4: true, v6: true, n: IPPROTO_SCTP },
  icmp: { v4: true, v6: false, n: 1 },
  icmp6: { v4: false, v6: true, n: 58 },
};

/**
 * Service names, as libpcap resolves them through Debian's /etc/services: a name listed for TCP
 * only restricts the primitive to TCP (`port http` is `tcp port 80`); one listed for both means
 * TCP, UDP and SCTP, like a number.
 */
const SERVICES: ReadonlyMap<string, { port: number; only: 'tcp' | 'udp' | null }> = new Map(
  Object.entries({
  'ftp-data': { port: 20, only: 'tcp' },
  ftp: { port: 21, only: 'tcp' },
  ssh: { port: 22, only: 'tcp' },
  telnet: { port: 23, only: 'tcp' },
  smtp: { port: 25, only: 'tcp' },
  domain: { port: 53, only: null },
  bootps: { port: 67, only: 'udp' },
  bootpc: { port: 68, only: 'udp' },
  tftp: { port: 69, only: 'udp' },
  http: { port: 80, only: 'tcp' },
  www: { port: 80, only: 'tcp' },
  pop3: { port: 110, only: 'tcp' },
  ntp: { port: 123, only: 'udp' },
  imap: { port: 143, only: 'tcp' },
  imap2: { port: 143, only: 'tcp' },
  snmp: { port: 161, only: null },
  bgp: { port: 179, only: 'tcp' },
  ldap: { port: 389, only: null },
  https: { port: 443, only: null },
  mysql: { port: 3306, only: 'tcp' },
  'http-alt': { port: 8080, only: 'tcp' },
  } as const),
);

const KEYWORDS = new Set([
  'and', 'or', 'not', 'host', 'net', 'mask', 'port', 'portrange', 'proto', 'src', 'dst', 'less', 'greater',
  'vlan', 'mpls', 'pppoes', ...PQUALS,
]);
/** pcap-filter words pcapflow does not implement: named so the error can say so. */
const UNSUPPORTED = new Set([
  'ether', 'fddi', 'tr', 'wlan', 'link', 'ppp', 'slip', 'gateway', 'broadcast', 'multicast', 'len', 'inbound',
  'outbound', 'ifname', 'on', 'rnr', 'rulenum', 'reason', 'rset', 'ruleset', 'srnr', 'subrulenum', 'action',
  'protochain', 'igmp', 'igrp', 'pim', 'vrrp', 'carp', 'ah', 'esp', 'atalk', 'aarp', 'decnet', 'iso', 'stp',
  'ipx', 'netbeui', 'lat', 'sca', 'moprc', 'mopdl', 'clnp', 'esis', 'isis', 'pppoed', 'geneve', 'vxlan', 'lane',
  'llc', 'oam', 'oamf4', 'metac', 'bcc', 'sc', 'ilmic', 'connectmsg', 'metaconnect', 'radio', 'type', 'subtype',
  'dir', 'addr1', 'addr2', 'addr3', 'addr4', 'ra', 'ta', 'icmptype', 'icmpcode', 'tcpflags',
]);

class Parser {
  private readonly toks: Token[];
  private i = 0;

  constructor(private readonly src: string) {
    this.toks = lex(src);
  }

  parse(): FilterNode | null {
    if (this.peek().kind === 'end') return null;
    const { node } = this.expr(NO_QUAL);
    const t = this.peek();
    if (t.kind !== 'end') throw this.err(t, t.kind === ')' ? "')' without a matching '('" : `expected 'and', 'or' or the end, found '${t.text}'`);
    return node;
  }

  private peek(k = 0): Token {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.i++;
    return t;
  }

  private err(t: Token, what: string): PcapflowError {
    return syntax(this.src, t.pos, what);
  }

  private isWord(t: Token, w: string): boolean {
    return t.kind === 'word' && t.text === w;
  }

  private isAnd(t: Token): boolean {
    return t.kind === '&&' || this.isWord(t, 'and');
  }

  private isOr(t: Token): boolean {
    return t.kind === '||' || this.isWord(t, 'or');
  }

  private isNot(t: Token): boolean {
    return t.kind === '!' || this.isWord(t, 'not');
  }

  /** isLiteral: a token that can only be an id (an address, number, range or name), never a primitive keyword. */
  private isLiteral(t: Token): boolean {
    return t.kind === 'word' && !KEYWORDS.has(t.text) && !UNSUPPORTED.has(t.text);
  }

  /** impliedAhead: after and/or, does an id (skipping `not`s and `(`s) follow rather than a term? */
  private impliedAhead(): boolean {
    let k = 0;
    while (this.isNot(this.peek(k)) || this.peek(k).kind === '(') k++;
    return this.isLiteral(this.peek(k));
  }

  /** expr: terms joined by and/or, equal precedence, left-associative. Returns the node and the qualifiers of its last term. */
  private expr(before: Qual): { node: FilterNode; q: Qual } {
    let { node, q } = this.term(before);
    for (;;) {
      const op = this.peek();
      const t = this.isAnd(op) ? 'and' : this.isOr(op) ? 'or' : null;
      if (t === null) return { node, q };
      this.next();
      let right: { node: FilterNode; q: Qual };
      if (this.impliedAhead()) {
        if (q.a === null && q.d === null) throw this.err(this.peek(), `'${this.peek().text}' needs a primitive before it to repeat (as in 'host 10.0.0.1 or 10.0.0.2')`);
        right = { node: this.id(q), q };
      } else {
        right = this.term(q);
      }
      node = { t, a: node, b: right.node };
      q = right.q;
    }
  }

  private term(before: Qual): { node: FilterNode; q: Qual } {
    const t = this.peek();
    if (this.isNot(t)) {
      this.next();
      const inner = this.term(before);
      return { node: { t: 'not', a: inner.node }, q: inner.q };
    }
    if (t.kind === '(') {
      this.next();
      const inner = this.expr(before);
      this.expect(')', t);
      return { node: inner.node, q: before };
    }
    if (t.kind !== 'word') throw this.err(t, t.kind === 'end' ? 'the expression ends where a primitive is expected' : `expected a primitive, found '${t.text}'`);
    switch (t.text) {
      case 'vlan':
      case 'mpls':
      case 'pppoes': {
        this.next();
        const max = t.text === 'vlan' ? 4095 : t.text === 'mpls' ? 0xfffff : 0xffff;
        const id = this.peek().kind === 'word' && isNumber(this.peek().text) ? this.number(this.next(), 0, max, `${t.text} id`) : -1;
        return { node: { t: t.text, id }, q: NO_QUAL };
      }
      case 'less':
      case 'greater': {
        this.next();
        const n = this.peek();
        if (n.kind !== 'word' || !isNumber(n.text)) throw this.err(n, `'${t.text}' needs a length in bytes`);
        return { node: { t: t.text, n: this.number(this.next(), 0, 0xffffffff, 'length') }, q: NO_QUAL };
      }
      default:
        break;
    }
    const q = this.head();
    if (q === null) {
      if (UNSUPPORTED.has(t.text)) throw this.err(t, `'${t.text}' is not supported by pcapflow's filter for file input`);
      if (KEYWORDS.has(t.text)) throw this.err(t, `'${t.text}' cannot start a primitive here`);
      throw this.err(t, `expected a primitive (host, net, port, tcp, ...), found '${t.text}'`);
    }
    if (q.a === null && q.d === null) {
      // A bare protocol name: tcp, udp, ip, ...
      this.next();
      const name = q.p!;
      const abbrev = PROTO_ABBREV[name];
      if (abbrev !== undefined) return { node: { t: 'proto', ...abbrev, name }, q: NO_QUAL };
      return { node: { t: 'link', name: name as 'ip' | 'ip6' | 'arp' | 'rarp' }, q: NO_QUAL };
    }
    return { node: this.id(q), q };
  }

  private expect(kind: TokKind, open: Token): void {
    const t = this.peek();
    if (t.kind !== kind) throw this.err(t, t.kind === 'end' ? `'(' at column ${open.pos + 1} is never closed` : `expected ')', found '${t.text}'`);
    this.next();
  }

  /**
   * head reads the qualifiers of a primitive: [proto] [dir] [host|net|port|portrange|proto].
   * Returns null when the next token is no qualifier; a lone protocol (`tcp` not followed by a
   * direction or an address type) is returned unconsumed with only `p` set.
   */
  private head(): Qual | null {
    const q: Qual = { p: null, d: null, a: null };
    let k = 0;
    const first = this.peek();
    if (first.kind === 'word' && (PQUALS as readonly string[]).includes(first.text)) {
      q.p = first.text as PQual;
      k = 1;
    }
    const d = this.peek(k);
    if (this.isWord(d, 'src') || this.isWord(d, 'dst')) {
      const op = this.peek(k + 1);
      const other = this.peek(k + 2);
      if ((this.isOr(op) || this.isAnd(op)) && this.isWord(other, d.text === 'src' ? 'dst' : 'src')) {
        q.d = this.isOr(op) ? 'or' : 'and';
        k += 3;
      } else {
        q.d = d.text as 'src' | 'dst';
        k += 1;
      }
    }
    const a = this.peek(k);
    if (a.kind === 'word' && (a.text === 'host' || a.text === 'net' || a.text === 'port' || a.text === 'portrange' || a.text === 'proto')) {
      q.a = a.text;
      k += 1;
    }
    if (q.p === null && q.d === null && q.a === null) return null;
    if (q.d === null && q.a === null) return q; // a bare protocol
    this.i += k;
    return q;
  }

  /** id reads an id under qualifiers `q`: a literal, `not id`, or a parenthesised list of ids joined by and/or. */
  private id(q: Qual): FilterNode {
    const t = this.peek();
    if (this.isNot(t)) {
      this.next();
      return { t: 'not', a: this.id(q) };
    }
    if (t.kind === '(') {
      this.next();
      let node = this.id(q);
      for (;;) {
        const op = this.peek();
        const kind = this.isAnd(op) ? 'and' : this.isOr(op) ? 'or' : null;
        if (kind === null) break;
        this.next();
        node = { t: kind, a: node, b: this.id(q) };
      }
      this.expect(')', t);
      return node;
    }
    if (!this.isLiteral(t)) {
      throw this.err(t, t.kind === 'end' ? `the expression ends where ${wantedBy(q)} is expected` : `expected ${wantedBy(q)}, found '${t.text}'`);
    }
    this.next();
    return this.primitive(q, t);
  }

  /** primitive builds the node for literal `t` under qualifiers `q`. */
  private primitive(q: Qual, t: Token): FilterNode {
    const dir: FilterDir = q.d ?? 'or';
    const a = q.a ?? (q.p === 'tcp' || q.p === 'udp' || q.p === 'sctp' ? null : 'host');
    if (a === null) throw this.err(t, `say what '${t.text}' is: '${q.p} port ${t.text}'?`);
    switch (a) {
      case 'port':
      case 'portrange':
        return this.port(q, t, a, dir);
      case 'proto': {
        if (q.d !== null) throw this.err(t, "'proto' takes no direction");
        if (q.p !== null && q.p !== 'ip' && q.p !== 'ip6') throw this.err(t, `'${q.p} proto' is not supported: use 'ip proto' or 'ip6 proto'`);
        const n = this.number(t, 0, 255, 'protocol number');
        return { t: 'proto', v4: q.p !== 'ip6', v6: q.p !== 'ip', n, name: `${q.p === null ? '' : `${q.p} `}proto ${n}` };
      }
      default:
        return this.address(q, t, a, dir);
    }
  }

  private port(q: Qual, t: Token, a: 'port' | 'portrange', dir: FilterDir): FilterNode {
    if (q.p !== null && PORT_PROTOS[q.p] === undefined) throw this.err(t, `'${q.p}' cannot qualify '${a}': use tcp, udp or sctp`);
    let protos = q.p === null ? ALL_PORT_PROTOS : PORT_PROTOS[q.p]!;
    let lo: number;
    let hi: number;
    const range = /^([^-]+)-([^-]+)$/.exec(t.text);
    if (a === 'portrange' && range !== null) {
      lo = this.portValue(t, range[1]!, q);
      hi = this.portValue(t, range[2]!, q);
      if (lo > hi) [lo, hi] = [hi, lo];
    } else {
      lo = hi = this.portValue(t, t.text, q);
      const svc = SERVICES.get(t.text);
      if (svc !== undefined && svc.only !== null && q.p === null) protos = PORT_PROTOS[svc.only]!;
    }
    return { t: 'port', dir, protos, lo, hi, text: t.text };
  }

  private portValue(t: Token, text: string, q: Qual): number {
    if (isNumber(text)) return this.number(t, 0, 65535, 'port number', text);
    const svc = SERVICES.get(text);
    if (svc === undefined) throw this.err(t, `unknown port name '${text}': use a number`);
    if (svc.only !== null && q.p !== null && q.p !== svc.only) throw this.err(t, `port '${text}' is ${svc.only}`);
    return svc.port;
  }

  private address(q: Qual, t: Token, a: 'host' | 'net', dir: FilterDir): FilterNode {
    // An optional `/len` or `mask M` after the address.
    let maskKind: '/' | 'mask' | null = null;
    let maskTok: Token | null = null;
    let maskOp: Token | null = null; // the `/` or `mask` token, where errors about the mask point
    if (this.peek().kind === '/' || this.isWord(this.peek(), 'mask')) {
      maskOp = this.next();
      maskKind = maskOp.kind === '/' ? '/' : 'mask';
      const m = this.peek();
      if (m.kind !== 'word') throw this.err(m, maskKind === '/' ? "expected a prefix length after '/'" : "expected an IPv4 netmask after 'mask'");
      maskTok = this.next();
    }
    if (a === 'host' && maskTok !== null) {
      if (q.a === 'host') throw this.err(maskOp!, 'a mask is for networks only: use net');
      a = 'net';
    }
    const v6 = t.text.includes(':');
    let addr: Uint8Array;
    let mask: Uint8Array;
    if (v6) {
      const parsed = parseIp(t.text);
      if (parsed === null) throw this.err(t, `'${t.text}' is not an IPv6 address`);
      addr = parsed;
      if (maskKind === 'mask') throw this.err(maskOp!, "'mask' is for IPv4 networks: use /len");
      mask = prefixMask(16, maskTok === null ? 128 : this.number(maskTok, 0, 128, 'IPv6 prefix length'));
    } else {
      let v: number; // the address and mask as unsigned 32-bit numbers, as libpcap computes them
      let m: number;
      if (isNumber(t.text)) {
        // A plain number: a whole address for host, a network promoted to its top octets for net.
        if (maskOp !== null) throw this.err(maskOp, `a ${maskKind === '/' ? 'prefix length' : 'mask'} needs a dotted network, as in 10.0.0.0/8`);
        v = this.number(t, 0, 0xffffffff, 'IPv4 address');
        m = 0xffffffff;
        if (a === 'net') {
          while (v !== 0 && v < 0x1000000) {
            v *= 256;
            m = (m << 8) >>> 0;
          }
        }
      } else {
        const octets = /^\d+(\.\d+){1,3}$/.test(t.text) ? t.text.split('.').map(Number) : null;
        if (octets === null || octets.some((o) => o > 255)) throw this.err(t, `'${t.text}' is not an address: host names are not supported (no DNS lookups)`);
        // 10.1 is 10.1.0.0 under a 16-bit mask, for host as for net (libpcap's rule).
        v = 0;
        for (let k = 0; k < 4; k++) v = v * 256 + (octets[k] ?? 0);
        const bits = octets.length * 8;
        if (maskKind === 'mask') {
          const mm = parseIp(maskTok!.text);
          if (mm === null || mm.length !== 4) throw this.err(maskTok!, `'${maskTok!.text}' is not an IPv4 netmask`);
          m = word(mm, 0);
        } else {
          const len = maskTok === null ? bits : this.number(maskTok, 0, 32, 'IPv4 prefix length');
          m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
        }
      }
      addr = new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
      mask = new Uint8Array([m >>> 24, (m >>> 16) & 0xff, (m >>> 8) & 0xff, m & 0xff]);
    }
    const text = maskTok === null ? t.text : maskKind === '/' ? `${t.text}/${maskTok.text}` : `${t.text} mask ${maskTok.text}`;
    for (let k = 0; k < addr.length; k++) {
      if ((addr[k]! & ~mask[k]!) !== 0) throw this.err(t, `non-network bits set in '${text}'`);
    }
    let over: readonly ('ip' | 'arp' | 'rarp' | 'ip6')[];
    if (v6) {
      if (q.p !== null && q.p !== 'ip6') throw this.err(t, `'${q.p}' cannot qualify the IPv6 address '${t.text}'`);
      over = ['ip6'];
    } else if (q.p === null) {
      over = ['ip', 'arp', 'rarp'];
    } else if (q.p === 'ip' || q.p === 'arp' || q.p === 'rarp') {
      over = [q.p];
    } else {
      throw this.err(t, `'${q.p}' cannot qualify the IPv4 address '${t.text}'`);
    }
    return { t: 'addr', kind: a, dir, over, qual: q.p, addr, mask, text };
  }

  private number(t: Token, min: number, max: number, what: string, text = t.text): number {
    const n = isNumber(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw this.err(t, `'${text}' is not a valid ${what} (${min} to ${max})`);
    return n;
  }
}

const NO_QUAL: Qual = { p: null, d: null, a: null };

function isNumber(s: string): boolean {
  return /^(\d+|0[xX][0-9a-fA-F]+)$/.test(s);
}

function wantedBy(q: Qual): string {
  switch (q.a) {
    case 'port':
      return 'a port number or name';
    case 'portrange':
      return 'a port range (A-B)';
    case 'proto':
      return 'a protocol number';
    case 'net':
      return 'a network (10.0.0.0/8, 10.1, 2001:db8::/32)';
    default:
      return 'an IPv4 or IPv6 address';
  }
}

function prefixMask(bytes: number, len: number): Uint8Array {
  const m = new Uint8Array(bytes);
  for (let k = 0; k < bytes; k++) {
    const bits = Math.max(0, Math.min(8, len - 8 * k));
    m[k] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return m;
}

/** parseFilter parses an expression into its syntax tree; null for an empty expression (matches everything). Throws FILTER_SYNTAX. */
export function parseFilter(expression: string): FilterNode | null {
  return new Parser(expression).parse();
}

/** formatFilter prints a tree fully parenthesised, for tests and `--stats`: `((tcp or udp) and not port 80)`. */
export function formatFilter(node: FilterNode | null): string {
  if (node === null) return '';
  switch (node.t) {
    case 'and':
    case 'or':
      return `(${formatFilter(node.a)} ${node.t} ${formatFilter(node.b)})`;
    case 'not':
      return `not ${formatFilter(node.a)}`;
    case 'link':
    case 'proto':
      return node.name;
    case 'addr': {
      return `${node.qual === null ? '' : `${node.qual} `}${dirText(node.dir)}${node.kind} ${node.text}`;
    }
    case 'port': {
      const proto = node.protos.length === 1 ? `${protoName(node.protos[0]!)} ` : '';
      return `${proto}${dirText(node.dir)}${node.lo === node.hi ? `port ${node.lo}` : `portrange ${node.lo}-${node.hi}`}`;
    }
    case 'vlan':
    case 'mpls':
    case 'pppoes':
      return node.id < 0 ? node.t : `${node.t} ${node.id}`;
    case 'less':
    case 'greater':
      return `${node.t} ${node.n}`;
  }
}

function dirText(d: FilterDir): string {
  return d === 'or' ? '' : d === 'and' ? 'src and dst ' : `${d} `;
}

function protoName(n: number): string {
  return n === IPPROTO_TCP ? 'tcp' : n === IPPROTO_UDP ? 'udp' : 'sctp';
}

// ---------------------------------------------------------------------------------------------
// Compiler: one closure tree per link type, over a per-filter scratch context (no allocation per packet).

/** Ctx is the evaluation state of one compiled filter, reused for every packet. */
class Ctx {
  d: Uint8Array = EMPTY;
  /** Captured bytes (BPF's buflen). */
  n = 0;
  /** Wire length (BPF's pktlen), for less/greater. */
  len = 0;
  /** Offset every link-relative offset is added to (variable-length link headers). */
  base = 0;
  /** False when the variable link header holds no network payload (802.11 non-data frame, NFLOG without payload). */
  linkOk = true;
  /** Set by a load past the captured bytes: the whole filter rejects the packet (BPF semantics). */
  abort = false;
}

type Pred = (c: Ctx) => boolean;

function ld8(c: Ctx, off: number): number {
  if (off >= c.n) {
    c.abort = true;
    return 0;
  }
  return c.d[off]!;
}

function ld16(c: Ctx, off: number): number {
  if (off + 2 > c.n) {
    c.abort = true;
    return 0;
  }
  return (c.d[off]! << 8) | c.d[off + 1]!;
}

function ld32(c: Ctx, off: number): number {
  if (off + 4 > c.n) {
    c.abort = true;
    return 0;
  }
  const d = c.d;
  return ((d[off]! << 24) | (d[off + 1]! << 16) | (d[off + 2]! << 8) | d[off + 3]!) >>> 0;
}

const TRUE: Pred = () => true;
const FALSE: Pred = () => false;

const ETH_IP = 0x0800;
const ETH_IP6 = 0x86dd;
const ETH_ARP = 0x0806;
const ETH_RARP = 0x8035;
const ETH_MPLS = 0x8847;
const ETH_PPPOES = 0x8864;

/** How the link layer names the network protocol. */
type LinkKind =
  | 'ether' // a 16-bit ethertype at typeOff (Ethernet, SLL, SLL2, 802.11 LLC)
  | 'ppp' // a PPP protocol number at typeOff (inside PPPoE)
  | 'nibble' // the IP version nibble at nl (raw IP, NFLOG payload)
  | 'v4' // always IPv4 (LINKTYPE_IPV4)
  | 'v6' // always IPv6 (LINKTYPE_IPV6)
  | 'null' // 32-bit address family, host order (NULL)
  | 'loop' // 32-bit address family, network order (LOOP)
  | 'none'; // unknown link type: nothing but less/greater matches

/** Link is the compile-time layout; `vlan`, `mpls` and `pppoes` change it for what follows. Offsets are from `Ctx.base`. */
interface Link {
  kind: LinkKind;
  typeOff: number;
  /** Offset of the network header. */
  nl: number;
  /** MPLS labels passed so far. */
  mpls: number;
  vlanOk: boolean;
  /** libpcap compiles `mpls` here (Ethernet, and PPP inside PPPoE). */
  mplsOk: boolean;
  /** The link header has a variable length computed per packet (radiotap, NFLOG). */
  dynamic: boolean;
}

const LINKTYPE_NULL = 0;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW_12 = 12;
const LINKTYPE_RAW_14 = 14;
const LINKTYPE_RAW = 101;
const LINKTYPE_LOOP = 108;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_IEEE802_11_RADIOTAP = 127;
const LINKTYPE_IPV4 = 228;
const LINKTYPE_IPV6 = 229;
const LINKTYPE_NFLOG = 239;
const LINKTYPE_LINUX_SLL2 = 276;

function linkLayout(linkType: number): Link {
  const l = (kind: LinkKind, typeOff: number, nl: number, vlanOk = false, dynamic = false): Link => ({ kind, typeOff, nl, mpls: 0, vlanOk, mplsOk: false, dynamic });
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      return { ...l('ether', 12, 14, true), mplsOk: true };
    case LINKTYPE_LINUX_SLL:
      return l('ether', 14, 16);
    case LINKTYPE_LINUX_SLL2:
      return l('ether', 0, 20);
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_12:
    case LINKTYPE_RAW_14:
      return l('nibble', 0, 0);
    case LINKTYPE_IPV4:
      return l('v4', 0, 0);
    case LINKTYPE_IPV6:
      return l('v6', 0, 0);
    case LINKTYPE_NULL:
      return l('null', 0, 4);
    case LINKTYPE_LOOP:
      return l('loop', 0, 4);
    case LINKTYPE_IEEE802_11_RADIOTAP:
      return l('ether', 6, 8, true, true); // relative to the end of the 802.11 header (Ctx.base)
    case LINKTYPE_NFLOG:
      return l('nibble', 0, 0, false, true); // relative to the payload TLV's value (Ctx.base)
    default:
      return l('none', 0, 0);
  }
}

const AF_INET6_BSD = [24, 28, 30]; // NetBSD/OpenBSD/BSD/OS, FreeBSD, Darwin: the values libpcap accepts for ip6

/** Compiler turns a tree into the predicate for one link type, walking it in text order as libpcap's parser does. */
class Compiler {
  private readonly link: Link;
  /** A primitive looked at the link header (a variable-length one must be measured first). */
  usesLink = false;
  /** libpcap refuses the expression on this link type (`vlan` off Ethernet/802.11, `mpls` off Ethernet/PPP): nothing matches. */
  refused = false;

  constructor(linkType: number) {
    this.link = linkLayout(linkType);
  }

  compile(node: FilterNode): Pred {
    switch (node.t) {
      case 'and': {
        const a = this.compile(node.a);
        const b = this.compile(node.b);
        return (c) => a(c) && b(c);
      }
      case 'or': {
        const a = this.compile(node.a);
        const b = this.compile(node.b);
        return (c) => a(c) || b(c);
      }
      case 'not': {
        const a = this.compile(node.a);
        return (c) => !a(c);
      }
      case 'link':
        return this.linkProto(node.name === 'ip' ? ETH_IP : node.name === 'ip6' ? ETH_IP6 : node.name === 'arp' ? ETH_ARP : ETH_RARP);
      case 'proto':
        return this.ipProto(node.v4, node.v6, node.n);
      case 'addr':
        return this.addr(node);
      case 'port':
        return this.port(node.protos, node.dir, node.lo, node.hi);
      case 'vlan':
        return this.vlan(node.id);
      case 'mpls':
        return this.mpls(node.id);
      case 'pppoes':
        return this.pppoes(node.id);
      case 'less': {
        const n = node.n;
        return (c) => c.len <= n;
      }
      case 'greater': {
        const n = node.n;
        return (c) => c.len >= n;
      }
    }
  }

  /** guard wraps a link-header test for a variable-length link layer: no network payload, no match. */
  private guard(p: Pred): Pred {
    this.usesLink = true;
    if (!this.link.dynamic || p === FALSE) return p;
    return (c) => c.linkOk && p(c);
  }

  /** linkProto: libpcap's gen_linktype for an ethertype, at the current layout. */
  private linkProto(et: number): Pred {
    const L = this.link;
    const { typeOff, nl } = L;
    if (L.mpls > 0 && (L.kind === 'ether' || L.kind === 'ppp')) {
      // Inside an MPLS stack: the bottom-of-stack bit of the last label, then the version nibble.
      const nib = et === ETH_IP ? 0x40 : et === ETH_IP6 ? 0x60 : -1;
      if (nib < 0) return FALSE;
      return this.guard((c) => (ld8(c, c.base + nl - 2) & 1) === 1 && (ld8(c, c.base + nl) & 0xf0) === nib);
    }
    switch (L.kind) {
      case 'ether':
        return this.guard((c) => ld16(c, c.base + typeOff) === et);
      case 'ppp': {
        const pp = et === ETH_IP ? 0x21 : et === ETH_IP6 ? 0x57 : et === ETH_MPLS ? 0x281 : et;
        return this.guard((c) => ld16(c, c.base + typeOff) === pp);
      }
      case 'nibble': {
        const nib = et === ETH_IP ? 0x40 : et === ETH_IP6 ? 0x60 : -1;
        if (nib < 0) return FALSE;
        return this.guard((c) => (ld8(c, c.base + nl) & 0xf0) === nib);
      }
      case 'v4':
        return et === ETH_IP ? TRUE : FALSE;
      case 'v6':
        return et === ETH_IP6 ? TRUE : FALSE;
      case 'null':
      case 'loop': {
        const afs = et === ETH_IP ? [2] : et === ETH_IP6 ? AF_INET6_BSD : [];
        if (afs.length === 0) return FALSE;
        // NULL: the family in the capturing host's byte order, so either order; LOOP: network order.
        const want = new Set<number>();
        for (const af of afs) {
          want.add(af);
          if (L.kind === 'null') want.add((af << 24) >>> 0);
        }
        const [w0 = -1, w1 = -1, w2 = -1, w3 = -1, w4 = -1, w5 = -1] = [...want];
        return this.guard((c) => {
          const w = ld32(c, 0);
          return w === w0 || w === w1 || w === w2 || w === w3 || w === w4 || w === w5;
        });
      }
      case 'none':
        return FALSE;
    }
  }

  /** ipProto: `ip proto n` and/or `ip6 proto n` (on IPv6 the first next header, or the one after a Fragment header). */
  private ipProto(v4: boolean, v6: boolean, n: number): Pred {
    const { nl } = this.link;
    let p4: Pred = FALSE;
    let p6: Pred = FALSE;
    if (v4) {
      const isIp = this.linkProto(ETH_IP);
      p4 = isIp === FALSE ? FALSE : (c) => isIp(c) && ld8(c, c.base + nl + 9) === n;
    }
    if (v6) {
      const isIp6 = this.linkProto(ETH_IP6);
      p6 =
        isIp6 === FALSE
          ? FALSE
          : (c) => {
              if (!isIp6(c)) return false;
              const nh = ld8(c, c.base + nl + 6);
              return nh === n || (nh === 44 && ld8(c, c.base + nl + 40) === n);
            };
    }
    return or(p4, p6);
  }

  private addr(node: Extract<FilterNode, { t: 'addr' }>): Pred {
    const { nl } = this.link;
    let out: Pred = FALSE;
    if (node.addr.length === 4) {
      const a = word(node.addr, 0);
      const m = word(node.mask, 0);
      for (const over of node.over) {
        const is = this.linkProto(over === 'ip' ? ETH_IP : over === 'arp' ? ETH_ARP : ETH_RARP);
        if (is === FALSE) continue;
        const so = nl + (over === 'ip' ? 12 : 14);
        const dof = nl + (over === 'ip' ? 16 : 24);
        const at = (off: number): Pred => (c) => ((ld32(c, c.base + off) & m) >>> 0) === a;
        out = or(out, withDir(is, at(so), at(dof), node.dir));
      }
      return out;
    }
    const is = this.linkProto(ETH_IP6);
    if (is === FALSE) return FALSE;
    const a0 = word(node.addr, 0);
    const a1 = word(node.addr, 4);
    const a2 = word(node.addr, 8);
    const a3 = word(node.addr, 12);
    const m0 = word(node.mask, 0);
    const m1 = word(node.mask, 4);
    const m2 = word(node.mask, 8);
    const m3 = word(node.mask, 12);
    const at =
      (off: number): Pred =>
      (c) => {
        const o = c.base + off;
        return (
          ((ld32(c, o) & m0) >>> 0) === a0 &&
          ((ld32(c, o + 4) & m1) >>> 0) === a1 &&
          ((ld32(c, o + 8) & m2) >>> 0) === a2 &&
          ((ld32(c, o + 12) & m3) >>> 0) === a3
        );
      };
    return withDir(is, at(nl + 8), at(nl + 24), node.dir);
  }

  /** port: libpcap's gen_port/gen_portrange: IPv4 first fragments only, IPv6 first next header only. */
  private port(protos: readonly number[], dir: FilterDir, lo: number, hi: number): Pred {
    const { nl } = this.link;
    const [pa = -1, pb = -1, pc = -1] = protos;
    const inRange = lo === hi ? (v: number): boolean => v === lo : (v: number): boolean => v >= lo && v <= hi;
    const ports = (c: Ctx, off: number): boolean => {
      switch (dir) {
        case 'src':
          return inRange(ld16(c, off));
        case 'dst':
          return inRange(ld16(c, off + 2));
        case 'or':
          return inRange(ld16(c, off)) || inRange(ld16(c, off + 2));
        case 'and':
          return inRange(ld16(c, off)) && inRange(ld16(c, off + 2));
      }
    };
    const isIp6 = this.linkProto(ETH_IP6);
    const isIp = this.linkProto(ETH_IP);
    const p6: Pred =
      isIp6 === FALSE
        ? FALSE
        : (c) => {
            if (!isIp6(c)) return false;
            const nh = ld8(c, c.base + nl + 6);
            return (nh === pa || nh === pb || nh === pc) && ports(c, c.base + nl + 40);
          };
    const p4: Pred =
      isIp === FALSE
        ? FALSE
        : (c) => {
            if (!isIp(c)) return false;
            const pr = ld8(c, c.base + nl + 9);
            if (pr !== pa && pr !== pb && pr !== pc) return false;
            if ((ld16(c, c.base + nl + 6) & 0x1fff) !== 0) return false;
            const hl = (ld8(c, c.base + nl) & 0xf) * 4;
            return ports(c, c.base + nl + hl);
          };
    return or(p6, p4);
  }

  /** vlan: a tag at the current ethertype position, then every later primitive looks inside it. */
  private vlan(id: number): Pred {
    const L = this.link;
    if (!L.vlanOk || L.kind !== 'ether') {
      this.refused = true; // "no VLAN support for <link type>"
      return FALSE;
    }
    const t = L.typeOff;
    const p = this.guard((c) => {
      const et = ld16(c, c.base + t);
      if (et !== 0x8100 && et !== 0x88a8 && et !== 0x9100) return false;
      return id < 0 || (ld16(c, c.base + t + 2) & 0x0fff) === id;
    });
    L.typeOff += 4;
    L.nl += 4;
    return p;
  }

  /** mpls: a label (at the bottom of the link header, or below the previous one), then the offsets move past it. */
  private mpls(label: number): Pred {
    const L = this.link;
    if (L.mpls === 0 && !L.mplsOk) {
      this.refused = true; // "no MPLS support for <link type>"
      return FALSE;
    }
    const nl = L.nl;
    const first = L.mpls === 0 ? this.linkProto(ETH_MPLS) : this.guard((c) => (ld8(c, c.base + nl - 2) & 1) === 0);
    const p: Pred = label < 0 ? first : (c) => first(c) && ld32(c, c.base + nl) >>> 12 === label;
    L.nl += 4;
    L.mpls++;
    return p;
  }

  /** pppoes: a PPPoE session frame; later primitives read the PPP protocol and what follows. */
  private pppoes(session: number): Pred {
    const L = this.link;
    if (L.kind === 'none') return FALSE;
    const nl = L.nl;
    const is = this.linkProto(ETH_PPPOES);
    const p: Pred = session < 0 ? is : (c) => is(c) && (ld32(c, c.base + nl) & 0xffff) === session;
    L.kind = 'ppp';
    L.typeOff = nl + 6;
    L.nl = nl + 8;
    L.mpls = 0;
    L.vlanOk = false;
    L.mplsOk = true;
    return p;
  }
}

function word(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function or(a: Pred, b: Pred): Pred {
  if (a === FALSE) return b;
  if (b === FALSE) return a;
  return (c) => a(c) || b(c);
}

function withDir(is: Pred, src: Pred, dst: Pred, dir: FilterDir): Pred {
  switch (dir) {
    case 'src':
      return (c) => is(c) && src(c);
    case 'dst':
      return (c) => is(c) && dst(c);
    case 'or':
      return (c) => is(c) && (src(c) || dst(c));
    case 'and':
      return (c) => is(c) && src(c) && dst(c);
  }
}

/** radiotapPrologue: libpcap's 802.11 header length (radiotap length, QoS, data padding); base = end of the 802.11 header. */
function radiotapPrologue(c: Ctx): void {
  const rt = (ld8(c, 3) << 8) | ld8(c, 2);
  let hdr = rt + 24;
  const fc = ld8(c, rt);
  c.linkOk = (fc & 0x08) !== 0 && (fc & 0x04) === 0; // a data frame
  if (c.linkOk) {
    if (fc & 0x80) hdr += 2; // QoS control
    const present = ld32(c, 4);
    if ((present & 0x2000000) !== 0 && (present & 0x80) === 0) {
      const flags = present & 0x1000000 ? ld8(c, 16) : ld8(c, 8);
      if (flags & 0x20) hdr = (hdr + 3) & ~3; // data padding
    }
  }
  c.base = hdr;
}

/** nflogPrologue: base = the NFULA_PAYLOAD TLV's value (TLVs in either byte order, as FrameDecoder reads them). */
function nflogPrologue(c: Ctx): void {
  const b = c.d;
  const n = c.n;
  c.linkOk = false;
  c.base = 0;
  let off = 4;
  if (off + 4 > n) return;
  const le0 = b[off]! | (b[off + 1]! << 8);
  const be0 = (b[off]! << 8) | b[off + 1]!;
  const le = le0 >= 4 && off + le0 <= n ? true : !(be0 >= 4 && off + be0 <= n);
  while (off + 4 <= n) {
    const len = le ? b[off]! | (b[off + 1]! << 8) : (b[off]! << 8) | b[off + 1]!;
    const type = (le ? b[off + 2]! | (b[off + 3]! << 8) : (b[off + 2]! << 8) | b[off + 3]!) & 0x3fff;
    if (len < 4) return;
    if (type === 9) {
      if (off + 4 < n) {
        c.base = off + 4;
        c.linkOk = true;
      }
      return;
    }
    off += (len + 3) & ~3;
  }
}

/** Program: the compiled test for one link type. */
type Program = (p: Packet) => boolean;

/**
 * PacketFilter is a compiled expression. `matches` is the hot path: one closure tree per link
 * type (compiled on the first packet of that type), a reused context, no allocation. Not
 * re-entrant: one PacketFilter per pipeline.
 */
export class PacketFilter {
  readonly expression: string;
  readonly tree: FilterNode | null;
  private readonly ctx = new Ctx();
  private readonly programs = new Map<number, Program>();
  private lastLinkType = -1;
  private lastProgram: Program | null = null;

  constructor(expression: string) {
    this.expression = expression;
    this.tree = parseFilter(expression);
  }

  /** matches tells whether tcpdump would select this packet with the same expression. */
  matches(p: Packet): boolean {
    if (p.linkType === this.lastLinkType) return this.lastProgram!(p);
    return this.programFor(p.linkType)(p);
  }

  /** The expression fully parenthesised (empty for the empty expression). */
  toString(): string {
    return formatFilter(this.tree);
  }

  private programFor(linkType: number): Program {
    let prog = this.programs.get(linkType);
    if (prog === undefined) {
      prog = this.build(linkType);
      this.programs.set(linkType, prog);
    }
    this.lastLinkType = linkType;
    this.lastProgram = prog;
    return prog;
  }

  private build(linkType: number): Program {
    if (this.tree === null) return () => true;
    const compiler = new Compiler(linkType);
    const root = compiler.compile(this.tree);
    if (compiler.refused) return () => false;
    const c = this.ctx;
    const prologue = !compiler.usesLink ? null : linkType === LINKTYPE_IEEE802_11_RADIOTAP ? radiotapPrologue : linkType === LINKTYPE_NFLOG ? nflogPrologue : null;
    return (p) => {
      const d = p.data;
      c.d = d;
      c.n = d.length;
      c.len = p.len;
      c.base = 0;
      c.linkOk = true;
      c.abort = false;
      if (prologue !== null) prologue(c);
      const r = root(c);
      c.d = EMPTY; // do not pin the packet's chunk
      return r && !c.abort;
    };
  }
}

/** compileFilter parses and compiles an expression. Throws PcapflowError FILTER_SYNTAX (with `column`). */
export function compileFilter(expression: string): PacketFilter {
  return new PacketFilter(expression);
}

/** FilterStats: packets seen, matched (passed on) and dropped. */
export interface FilterStats {
  packets: number;
  matched: number;
  dropped: number;
}

/**
 * FilterStage keeps the packets of each batch that match a pcap filter expression (see the top
 * of this file) and drops the others, in place: the batch array is compacted and emitted when
 * not empty; packets are never copied. Put it right after the capture reader, before any
 * decoding, so the result is what `tcpdump -r F -w - EXPR` would have passed on: in
 * particular a `port` filter drops non-first IPv4 fragments, so the datagrams they belong to are
 * never reassembled, as when reading tcpdump's filtered output. The expression is parsed in the
 * constructor (throws FILTER_SYNTAX); `write` throws nothing.
 */
export class FilterStage implements Stage<Packet[], Packet[]> {
  readonly filter: PacketFilter;
  private readonly s: FilterStats = { packets: 0, matched: 0, dropped: 0 };

  constructor(filter: string | PacketFilter) {
    this.filter = typeof filter === 'string' ? new PacketFilter(filter) : filter;
  }

  write(batch: Packet[], emit: (out: Packet[]) => void): void {
    const f = this.filter;
    let j = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (f.matches(p)) batch[j++] = p;
    }
    this.s.packets += batch.length;
    this.s.matched += j;
    this.s.dropped += batch.length - j;
    batch.length = j;
    if (j > 0) emit(batch);
  }

  end(): void {}

  /** stats: packets, matched, dropped. */
  get stats(): Readonly<FilterStats> {
    return this.s;
  }
}
