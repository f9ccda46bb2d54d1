/**
 * tshark-follow: what tshark (Wireshark 4.0) says about a capture's TCP streams, for the
 * differential tests. One tshark run per capture gives both the per-frame `tcp.stream` numbers
 * (`-T fields`) and the raw bytes of every stream (`-z follow,tcp,raw,N`, one argument per
 * stream: tshark accepts many in one run, and starting tshark is the slow part). The streams to
 * follow are guessed (pcapflow's connection count); when tshark numbers more streams than that,
 * a second run follows the rest. Nothing is cached on disk.
 *
 * `-z follow,tcp,raw,N` output: a block per stream (in no useful order), each with
 * "Filter: tcp.stream eq N", "Node 0: ip:port", "Node 1: ip:port" (IPv6 in brackets) and then one
 * hex line per chunk, node 1's chunks indented by a tab. Node 0 is the sender of the stream's
 * first packet. At a hole that the peer acknowledged, tshark writes the text
 * "[N bytes missing in capture file]" and a NUL instead of the bytes (see GAP_TEXT).
 */
import { execFile } from 'node:child_process';
import type { Endpoint } from '../../src/core/events.js';

/** One tshark stream: its two nodes and what each sent. */
export interface FollowStream {
  stream: number;
  /** Node 0 sent the stream's first packet. */
  nodes: [Endpoint, Endpoint];
  /** What node 0 and node 1 sent, chunks joined. */
  data: [Buffer, Buffer];
}

/** One TCP frame as tshark numbered it. */
export interface TsharkFrame {
  frame: number;
  stream: number;
  src: Endpoint;
  dst: Endpoint;
  /** The TCP header tshark shows is one quoted inside an ICMP error. */
  icmp: boolean;
  /** VLAN ids as tshark lists them ("" when untagged). */
  vlan: string;
}

export interface TsharkRun {
  /** Frames tshark decoded as TCP, in frame order. */
  frames: TsharkFrame[];
  /** Followed streams by number (every stream tshark numbered). */
  follows: Map<number, FollowStream>;
  /** tshark runs it took (1, or 2 when the guess was short). */
  runs: number;
}

/** The text tshark writes in place of bytes the peer acknowledged but the capture lacks. */
export function gapText(len: number): Buffer {
  return Buffer.from(`[${len} bytes missing in capture file]\0`, 'latin1');
}

/** GAP_TEXT matches gapText() inside a stream (latin1 string of the bytes). */
export const GAP_TEXT = /\[(-?\d+) bytes missing in capture file\]\0/g;

const FIELDS = ['frame.number', 'tcp.stream', 'ip.src', 'ipv6.src', 'ip.dst', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'frame.protocols', 'vlan.id'];

function endpoint(s: string): Endpoint {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(s.trim());
  return m ? { ip: m[1]!, port: Number(m[2]) } : { ip: '', port: 0 };
}

/** parseFollowRaw parses every `-z follow,tcp,raw,N` block in tshark's output. */
export function parseFollowRaw(text: string): FollowStream[] {
  const out: FollowStream[] = [];
  let cur: { stream: number; nodes: [Endpoint, Endpoint]; parts: [Buffer[], Buffer[]] } | null = null;
  const finish = (): void => {
    if (cur !== null) out.push({ stream: cur.stream, nodes: cur.nodes, data: [Buffer.concat(cur.parts[0]), Buffer.concat(cur.parts[1])] });
    cur = null;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('=====')) {
      finish();
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^Filter: tcp\.stream eq (\d+)$/.exec(line))) {
      cur = { stream: Number(m[1]), nodes: [{ ip: '', port: 0 }, { ip: '', port: 0 }], parts: [[], []] };
    } else if (cur !== null && (m = /^Node ([01]): (.*)$/.exec(line))) {
      cur.nodes[Number(m[1]) as 0 | 1] = endpoint(m[2]!);
    } else if (cur !== null && /^\t?[0-9a-f]+$/.test(line)) {
      const node = line.startsWith('\t') ? 1 : 0;
      cur.parts[node].push(Buffer.from(line.trim(), 'hex'));
    }
  }
  finish();
  return out;
}

/** The innermost value of a field that tunnels repeat ("outer,inner"). */
const last = (v: string): string => v.split(',').at(-1) ?? '';

function parseFrames(text: string): TsharkFrame[] {
  const frames: TsharkFrame[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('=====')) break;
    const f = line.split('\t');
    if (f.length < FIELDS.length || f[1] === '') continue;
    const [num, stream, s4, s6, d4, d6, sport, dport, protos, vlan] = f as [string, string, string, string, string, string, string, string, string, string];
    const layers = protos.split(':');
    const tcpAt = layers.lastIndexOf('tcp');
    const v6 = layers.lastIndexOf('ipv6') > layers.lastIndexOf('ip');
    frames.push({
      frame: Number(num),
      stream: Number(last(stream)),
      src: { ip: v6 ? last(s6) : last(s4), port: Number(last(sport)) },
      dst: { ip: v6 ? last(d6) : last(d4), port: Number(last(dport)) },
      icmp: layers.slice(0, tcpAt).some((l) => l === 'icmp' || l === 'icmpv6'),
      vlan,
    });
  }
  return frames;
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('tshark', args, { encoding: 'utf8', maxBuffer: 1 << 30 }, (err, stdout) => {
      // A corrupt capture makes tshark exit non-zero after the frames it could read (or none, for
      // a file it refuses): those frames are its answer. Not finding tshark is an error.
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') reject(err);
      else resolve(stdout);
    });
  });
}

const BASE = ['-o', 'tcp.reassemble_out_of_order:TRUE', '-n'];

function followArgs(streams: Iterable<number>): string[] {
  const a: string[] = [];
  for (const n of streams) a.push('-z', `follow,tcp,raw,${n}`);
  return a;
}

/**
 * tsharkFollow runs tshark on `file`: frame numbering plus the bytes of every stream. `guess` is
 * how many streams to follow in the first run (more are followed in a second one when tshark
 * numbers more).
 */
export async function tsharkFollow(file: string, guess: number): Promise<TsharkRun> {
  const fieldArgs = ['-T', 'fields'];
  for (const f of FIELDS) fieldArgs.push('-e', f);
  const first = [...Array(Math.max(guess, 1)).keys()];
  const text = await run(['-r', file, ...BASE, ...fieldArgs, ...followArgs(first)]);
  const frames = parseFrames(text);
  const follows = new Map<number, FollowStream>();
  const numbered = new Set(frames.map((f) => f.stream));
  for (const s of parseFollowRaw(text)) if (numbered.has(s.stream)) follows.set(s.stream, s);
  const missing = [...numbered].filter((n) => !follows.has(n));
  let runs = 1;
  if (missing.length > 0) {
    runs++;
    for (const s of parseFollowRaw(await run(['-r', file, ...BASE, '-q', ...followArgs(missing)]))) follows.set(s.stream, s);
  }
  return { frames, follows, runs };
}

/**
 * Reasons a direction's bytes may differ between tshark's follow and pcapflow that the byte
 * walk in explainDirection() checks on the spot. Each names what tshark does and how the check
 * proves it.
 */
export const WALK_REASONS = {
  'gap-text':
    'tshark writes "[N bytes missing in capture file]" and a NUL where the peer acknowledged bytes the capture lacks; checked: the text stands exactly where pcapflow reported a hole of N bytes (one gap event, or adjacent ones)',
  'tshark-drops-unacked':
    'tshark never shows out-of-order bytes unless an ACK passes the hole before them; checked: tshark stops exactly at a pcapflow hole that the peer did not acknowledge whole (a gap with reason rst, fin, eof or idle)',
  'overlap-kept':
    'conflicting retransmitted bytes: tshark keeps the copy that fits its stream first, pcapflow the first received copy; checked: every differing byte lies inside a pcapflow overlap event',
  'after-rst':
    'tshark keeps the bytes the other side sent after an RST (they were in flight); pcapflow ends the connection at the RST; checked: the extra bytes are exactly the payloads of that direction\'s packets after pcapflow\'s close, which was an RST',
} as const;

export type WalkReason = keyof typeof WALK_REASONS;

export interface DirectionVerdict {
  ok: boolean;
  reasons: WalkReason[];
  /** Why it failed, for the report. */
  problem: string;
}

/** What pcapflow has for one direction (see stream-compare.ts DirStream). */
export interface OursForWalk {
  pieces: Array<{ off: number; data: Buffer | null; len: number; reason: string | null }>;
  overlaps: Array<[number, number]>;
}

/**
 * explainDirection walks pcapflow's pieces (data and gaps, in stream order) against tshark's
 * bytes for the same direction and says whether they are equal up to the WALK_REASONS, each
 * checked where it applies. `after` holds the payloads of this direction's packets that came
 * after pcapflow closed the connection, `closeReason` how it closed.
 */
export function explainDirection(ours: OursForWalk, theirs: Buffer, after: Buffer[], closeReason: string | null): DirectionVerdict {
  const reasons = new Set<WalkReason>();
  const fail = (problem: string): DirectionVerdict => ({ ok: false, reasons: [...reasons], problem });
  let t = 0;
  const pieces = ours.pieces;
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (p.data !== null) {
      const n = p.data.length;
      if (t + n > theirs.length) return fail(`tshark ends at ${t} inside pcapflow data at offset ${p.off}`);
      for (let k = 0; k < n; k++) {
        if (p.data[k] === theirs[t + k]) continue;
        const at = p.off + k;
        if (!ours.overlaps.some(([a, b]) => at >= a && at < b)) return fail(`byte at offset ${at} differs outside any overlap`);
        reasons.add('overlap-kept');
      }
      t += n;
      continue;
    }
    // A hole: adjacent gap events (pcapflow may report a hole in parts: the part the peer had
    // acknowledged when the sender went past it, then the rest) are one hole to tshark.
    let j = i;
    let len = p.len;
    let acked = p.reason === 'acked';
    while (pieces[j + 1] !== undefined && pieces[j + 1]!.data === null) {
      j++;
      len += pieces[j]!.len;
      acked &&= pieces[j]!.reason === 'acked';
    }
    const text = gapText(Number(BigInt.asIntN(32, BigInt(len))));
    if (theirs.subarray(t, t + text.length).equals(text)) {
      t += text.length;
      reasons.add('gap-text');
      i = j;
    } else if (t === theirs.length) {
      if (!pieces.slice(j + 1).some((q) => q.data !== null)) break; // a hole at the end: nothing after it on either side
      if (acked) return fail(`tshark stops at the acknowledged hole at offset ${p.off}`);
      reasons.add('tshark-drops-unacked');
      return { ok: true, reasons: [...reasons], problem: '' };
    } else {
      return fail(`tshark shows something else than gap text at pcapflow's hole at offset ${p.off} (len ${len}, ${p.reason})`);
    }
  }
  if (t < theirs.length) {
    const extra = theirs.subarray(t);
    if (closeReason === 'rst' && extra.equals(Buffer.concat(after))) reasons.add('after-rst');
    else return fail(`tshark has ${extra.length} more bytes after pcapflow's ${t}`);
  }
  return { ok: true, reasons: [...reasons], problem: '' };
}
