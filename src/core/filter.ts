/**
 * filter: the common part of the pcap filter language (pcap-filter(7)) for file input, compiled
 * once into a tree of closures that tests a packet's captured bytes the way libpcap's BPF code
 * would. `compileFilter(expr)` parses (throwing PcapflowError FILTER_SYNTAX with the column of
 * the fault); `PacketFilter.matches(pkt)` answers per packet without allocating; FilterStage is
 * the pure Stage that drops the packets of a batch that do not match.
 *
 * The language and its parser are filter-parse.ts's (parseFilter); this file compiles a tree.
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
import { formatFilter, parseFilter, word, type FilterDir, type FilterNode } from './filter-parse.js';
import { EMPTY, type Packet } from './packet.js';
import type { Stage } from './stage.js';

export { formatFilter, parseFilter, type FilterDir, type FilterNode } from './filter-parse.js';

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
