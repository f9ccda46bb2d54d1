/**
 * filter-parse: the pcap filter language's syntax (pcap-filter(7), the part pcapflow supports),
 * parsed into a FilterNode tree (`parseFilter`, throwing PcapflowError FILTER_SYNTAX with the
 * column of the fault) and printed back in canonical form (`formatFilter`). What a tree matches is
 * filter.ts's (compileFilter). Pure: no node:* import.
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
 */
import { parseIp } from './addr.js';
import { PcapflowError } from './errors.js';

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

/** word: the big-endian 32-bit number at `off` of `b`. */
export function word(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}
