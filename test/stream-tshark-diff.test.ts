/**
 * Differential test: pcapflow's reassembled streams against
 * `tshark -o tcp.reassemble_out_of_order:TRUE -q -z follow,tcp,raw,N` on every capture in
 * ../shared/pcaps, and pcapflow's connection numbers against tshark's tcp.stream.
 *
 * Streams: each tshark stream is matched to the pcapflow connection that holds its first frame
 * (same addresses and ports required; pcapflow also keys on VLAN ids, so a frame number alone
 * would not do). Each direction's bytes must be equal, or differ only for a reason in REASONS,
 * and every reason is checked where it applies, never taken on trust: the walk reasons by
 * explainDirection() (tshark-follow.ts), the others by re-running pcapflow with the one cause
 * removed (stream-compare.ts variants) or by the shuffled capture's ordered twin. Anything else
 * fails the capture's test.
 *
 * Numbering: for every TCP frame, pcapflow's conn must equal tshark's tcp.stream, after the two
 * documented exceptions, both computed from tshark's own output: streams pcapflow has no TCP for
 * (a TCP header quoted in an ICMP error, or frames pcapflow's decoder skipped) are taken out of
 * the numbering, and a stream whose frames carry different VLAN ids is one connection per VLAN
 * id list, numbered in order of first frame.
 *
 * One tshark run per capture (frames and every stream's bytes at once), at most two at a time.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Direction, Endpoint } from '../src/core/events.js';
import { needTool, sharedCaptures, SHARED_PCAPS } from './helpers/env.js';
import { runFlows, type ConnRecord, type FlowRun, type Variant } from './helpers/stream-compare.js';
import { explainDirection, gapText, tsharkFollow, WALK_REASONS, type DirectionVerdict, type FollowStream, type TsharkFrame, type TsharkRun } from './helpers/tshark-follow.js';

/** Every reason a direction may differ, with how it is checked. */
const REASONS = {
  ...WALK_REASONS,
  'icmp-quoted':
    'tshark numbers a stream for a TCP header quoted inside an ICMP error, pcapflow takes the packet as ICMP; checked: every frame of the stream is ICMP-carried, tshark shows no bytes and pcapflow placed none of its frames',
  'vlan-key':
    'pcapflow keys connections on VLAN ids, tshark does not; checked: the stream lies in pcapflow connections with the same addresses and ports and different VLAN ids, and pcapflow with VLAN ids dropped (variant no-vlan) gives tshark\'s bytes',
  'fragment-overlap':
    'IPv4 fragments overlapping with different bytes: pcapflow keeps the first copy, tshark the last; checked: pcapflow\'s defragmenter counted overlaps, and fed the fragments in reverse order (variant fragments-reversed) it gives tshark\'s bytes',
  'shuffled-twin':
    'a capture whose packets were shuffled: tshark\'s follow starts each direction at the first packet captured and loses what came before; checked: pcapflow\'s streams equal those of the capture\'s ordered twin, where pcapflow and tshark agree byte for byte',
} as const;
type Reason = keyof typeof REASONS;

/** Shuffled captures and their ordered twins (../shared/pcaps/README.md, differential groups). */
const TWINS: Record<string, string> = { 'tcpflow__http-lines-randomized.pcapng': 'tcpflow__http-lines-ordered.pcap' };

/** Variants to try, the reason each stands for and when it applies. */
const VARIANTS: Array<{ variant: Variant; reason: Reason; applies: (base: FlowRun, frames: TsharkFrame[]) => boolean }> = [
  {
    variant: 'no-vlan',
    reason: 'vlan-key',
    applies: (base, frames) => {
      const conns = new Set(frames.map((f) => base.connOfFrame.get(f.frame)).filter((c) => c !== undefined));
      const recs = [...conns].map((c) => base.conns.get(c)!);
      const tuples = new Set(recs.map((r) => [r.open.client, r.open.server].map(ep).sort().join(' ')));
      const vlans = new Set(recs.map((r) => r.open.vlan.join('.')));
      return recs.length >= 2 && tuples.size === 1 && vlans.size === recs.length;
    },
  },
  { variant: 'fragments-reversed', reason: 'fragment-overlap', applies: (base) => (base.decoder.stats.overlaps ?? 0) > 0 },
];

const ep = (e: Endpoint): string => `${e.ip}:${e.port}`;

interface Row {
  capture: string;
  streams: number;
  conns: number;
  directions: number;
  equal: number;
  explained: Partial<Record<Reason, number>>;
  problems: string[];
  numbering: { frames: number; sameAsTcpStream: number; exceptions: Record<string, number>; problems: string[] };
}

/** Two tshark processes at a time: the machine has two cores. */
let running = 0;
const waiting: Array<() => void> = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  while (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** The direction of `rec` that tshark's node `k` sent. */
function dirOf(rec: ConnRecord, nodes: [Endpoint, Endpoint], k: 0 | 1): Direction {
  const node0IsClient = ep(nodes[0]) === ep(rec.open.client);
  return (k === 0) === node0IsClient ? 'c2s' : 's2c';
}

function verdict(rec: ConnRecord, dir: Direction, theirs: Buffer): DirectionVerdict {
  const ours = rec.dirs[dir];
  if (ours.bytes.equals(theirs)) return { ok: true, reasons: [], problem: '' };
  return explainDirection(ours, theirs, rec.afterClose[dir], rec.close?.reason ?? null);
}

/** pcapflow's streams of the ordered twin equal ours, and tshark agrees with them on the twin. */
async function twinAgrees(name: string, rec: ConnRecord): Promise<boolean> {
  const twin = path.join(SHARED_PCAPS, TWINS[name]!);
  const run = runFlows(twin);
  const ts = await limited(() => tsharkFollow(twin, run.demux.stats.connections));
  const key = [rec.open.client, rec.open.server].map(ep).join(' ');
  const same = [...run.conns.values()].filter((r) => [r.open.client, r.open.server].map(ep).join(' ') === key && (r.dirs.c2s.bytes.length > 0 || r.dirs.s2c.bytes.length > 0));
  if (same.length !== 1) return false;
  const t = same[0]!;
  if (!t.dirs.c2s.bytes.equals(rec.dirs.c2s.bytes) || !t.dirs.s2c.bytes.equals(rec.dirs.s2c.bytes)) return false;
  for (const fs of ts.follows.values()) {
    const first = ts.frames.find((f) => f.stream === fs.stream);
    if (first === undefined || run.connOfFrame.get(first.frame) !== t.conn) continue;
    return fs.data[0].equals(t.dirs[dirOf(t, fs.nodes, 0)].bytes) && fs.data[1].equals(t.dirs[dirOf(t, fs.nodes, 1)].bytes);
  }
  return false;
}

async function compareStreams(name: string, file: string, base: FlowRun, ts: TsharkRun, row: Row): Promise<void> {
  const variants = new Map<Variant, FlowRun>();
  const byStream = new Map<number, TsharkFrame[]>();
  for (const f of ts.frames) {
    let l = byStream.get(f.stream);
    if (!l) byStream.set(f.stream, (l = []));
    l.push(f);
  }
  const matched = new Set<number>();
  const vlanSplit = new Set<number>();
  const add = (reasons: Iterable<Reason>): void => {
    for (const r of reasons) row.explained[r] = (row.explained[r] ?? 0) + 1;
  };
  for (const stream of [...ts.follows.keys()].sort((a, b) => a - b)) {
    const fs: FollowStream = ts.follows.get(stream)!;
    const frames = byStream.get(stream) ?? [];
    row.streams++;
    row.directions += 2;
    const tcp = frames.filter((f) => !f.icmp);
    if (tcp.length === 0) {
      if (fs.data[0].length === 0 && fs.data[1].length === 0 && frames.every((f) => !base.connOfFrame.has(f.frame))) add(['icmp-quoted', 'icmp-quoted']);
      else row.problems.push(`stream ${stream}: ICMP-quoted only, but tshark shows bytes or pcapflow placed a frame`);
      continue;
    }
    const first = tcp[0]!.frame;
    const conn = base.connOfFrame.get(first);
    if (conn === undefined) {
      row.problems.push(`stream ${stream}: pcapflow has no connection for its first frame ${first} (${base.skipOfFrame.get(first) ?? 'not decoded'})`);
      continue;
    }
    const rec = base.conns.get(conn)!;
    matched.add(conn);
    if ([rec.open.client, rec.open.server].map(ep).sort().join(' ') !== fs.nodes.map(ep).sort().join(' ')) {
      row.problems.push(`stream ${stream}: tshark nodes ${fs.nodes.map(ep).join(' ')} vs pcapflow conn ${conn} ${ep(rec.open.client)} ${ep(rec.open.server)}`);
      continue;
    }
    for (const k of [0, 1] as const) {
      const dir = dirOf(rec, fs.nodes, k);
      const theirs = fs.data[k];
      const v = verdict(rec, dir, theirs);
      if (v.ok && v.reasons.length === 0) {
        row.equal++;
        continue;
      }
      if (v.ok) {
        add(v.reasons);
        continue;
      }
      let done = false;
      for (const { variant, reason, applies } of VARIANTS) {
        if (!applies(base, frames)) continue;
        let run = variants.get(variant);
        if (!run) variants.set(variant, (run = runFlows(file, variant)));
        // the stream's first frame the variant placed (reordered fragments move the TCP segment)
        const vc = tcp.map((f) => run.connOfFrame.get(f.frame)).find((c) => c !== undefined);
        const vrec = vc === undefined ? undefined : run.conns.get(vc);
        if (vrec === undefined) continue;
        const vv = verdict(vrec, dirOf(vrec, fs.nodes, k), theirs);
        if (!vv.ok) continue;
        add([reason, ...vv.reasons]);
        if (reason === 'vlan-key') vlanSplit.add(stream);
        done = true;
        break;
      }
      if (!done && TWINS[name] !== undefined && (await twinAgrees(name, rec))) {
        add(['shuffled-twin']);
        done = true;
      }
      if (!done) row.problems.push(`stream ${stream} (conn ${conn}) ${dir}: ${v.problem}; pcapflow ${rec.dirs[dir].bytes.length} bytes, tshark ${theirs.length}`);
    }
  }
  // pcapflow connections no tshark stream starts in: only the other VLAN halves of split streams
  for (const [conn, rec] of base.conns) {
    if (matched.has(conn)) continue;
    const streams = new Set(ts.frames.filter((f) => rec.frames.includes(f.frame)).map((f) => f.stream));
    if (streams.size === 0 || [...streams].some((s) => !vlanSplit.has(s))) row.problems.push(`pcapflow conn ${conn} (frames ${rec.frames.slice(0, 5).join(',')}...) matches no tshark stream`);
  }
}

/** Connection numbers against tcp.stream (see the file comment for the two exceptions). */
function compareNumbering(base: FlowRun, ts: TsharkRun, row: Row): void {
  const n = row.numbering;
  const streamsWithTcp = new Set<number>();
  for (const f of ts.frames) if (!f.icmp && base.connOfFrame.has(f.frame)) streamsWithTcp.add(f.stream);
  const allStreams = new Set(ts.frames.map((f) => f.stream));
  for (const s of allStreams) {
    if (streamsWithTcp.has(s)) continue;
    const fr = ts.frames.filter((f) => f.stream === s);
    const why = fr.every((f) => f.icmp) ? 'stream of ICMP-quoted headers only' : `stream pcapflow skipped (${[...new Set(fr.map((f) => base.skipOfFrame.get(f.frame) ?? 'icmp'))].join(',')})`;
    n.exceptions[why] = (n.exceptions[why] ?? 0) + 1;
  }
  const index = new Map<string, number>();
  /** pcapflow conn -> the tshark stream that first got it; the first frames of streams that begin with a SYN. */
  const joined = new Map<number, number>();
  const lateSynFrames = new Set(base.lateSynFrames);
  const vlansOf = new Map<number, Set<string>>();
  const seen = new Set<number>();
  for (const f of ts.frames) {
    const got = base.connOfFrame.get(f.frame);
    if (f.icmp || got === undefined) continue;
    seen.add(f.frame);
    n.frames++;
    const key = `${f.stream}|${f.vlan}`;
    let want = index.get(key);
    if (want === undefined && joined.has(got) && joined.get(got) !== f.stream && lateSynFrames.has(f.frame)) {
      // tshark starts a new stream at a SYN captured after its connection's first packets (its
      // sequence number differs from the base inferred from them); pcapflow keeps it in that
      // connection (TcpDemux lateSyn)
      want = index.get(`${joined.get(got)!}|${f.vlan}`)!;
      index.set(key, want);
      n.exceptions['late SYN joined to its connection'] = (n.exceptions['late SYN joined to its connection'] ?? 0) + 1;
    }
    if (want === undefined) {
      joined.set(got, f.stream);
      index.set(key, (want = index.size));
      let v = vlansOf.get(f.stream);
      if (!v) vlansOf.set(f.stream, (v = new Set()));
      v.add(f.vlan);
    }
    if (got === f.stream) n.sameAsTcpStream++;
    if (got !== want) n.problems.push(`frame ${f.frame}: pcapflow conn ${got}, tshark tcp.stream ${f.stream} (expected conn ${want})`);
  }
  for (const v of vlansOf.values()) {
    if (v.size < 2) continue;
    const k = `stream split by VLAN id (${[...v].join(' / ')})`;
    n.exceptions[k] = (n.exceptions[k] ?? 0) + 1;
  }
  for (const frame of base.connOfFrame.keys()) if (!seen.has(frame)) n.problems.push(`frame ${frame}: TCP in pcapflow only`);
}

const results = new Map<string, Promise<Row>>();

function analyse(file: string): Promise<Row> {
  let p = results.get(file);
  if (!p) {
    p = (async () => {
      const name = path.basename(file);
      const base = runFlows(file);
      const ts = await limited(() => tsharkFollow(file, base.demux.stats.connections));
      const row: Row = {
        capture: name,
        streams: 0,
        conns: base.conns.size,
        directions: 0,
        equal: 0,
        explained: {},
        problems: [],
        numbering: { frames: 0, sameAsTcpStream: 0, exceptions: {}, problems: [] },
      };
      await compareStreams(name, file, base, ts, row);
      compareNumbering(base, ts, row);
      return row;
    })();
    results.set(file, p);
  }
  return p;
}

const files = needTool('tshark') ? sharedCaptures() : [];

describe.skipIf(files.length === 0).concurrent('streams and connection numbers agree with tshark on ../shared/pcaps', () => {
  afterAll(async () => {
    const rows = (await Promise.all([...results.values()])).sort((a, b) => (a.capture < b.capture ? -1 : 1));
    const lines = ['capture\ttshark streams\tpcapflow conns\tdirections\tequal\texplained (reasons)\tunexplained\tnumbering: frames, = tcp.stream, exceptions'];
    const total: Partial<Record<Reason, number>> = {};
    let dirs = 0;
    let equal = 0;
    let bad = 0;
    for (const r of rows) {
      const ex = Object.entries(r.explained).map(([k, v]) => `${v} ${k}`).join(', ');
      const nx = Object.entries(r.numbering.exceptions).map(([k, v]) => `${v} ${k}`).join(', ');
      lines.push(`${r.capture}\t${r.streams}\t${r.conns}\t${r.directions}\t${r.equal}\t${ex || '-'}\t${r.problems.length}\t${r.numbering.frames}, ${r.numbering.sameAsTcpStream}${nx ? `, ${nx}` : ''}`);
      for (const [k, v] of Object.entries(r.explained)) total[k as Reason] = (total[k as Reason] ?? 0) + v;
      dirs += r.directions;
      equal += r.equal;
      bad += r.problems.length;
    }
    lines.push('', `total: ${rows.length} captures, ${dirs} directions, ${equal} equal, ${dirs - equal - bad} explained, ${bad} unexplained`, 'reasons:');
    for (const [k, v] of Object.entries(total)) lines.push(`  ${v} ${k}: ${REASONS[k as Reason]}`);
    console.log(lines.join('\n'));
  });

  it.for(files.map((f) => [path.basename(f), f] as const))('streams: %s', async ([, file], { expect }) => {
    const row = await analyse(file);
    expect(row.problems).toEqual([]);
  });

  it.for(files.map((f) => [path.basename(f), f] as const))('numbering: %s', async ([, file], { expect }) => {
    const row = await analyse(file);
    expect(row.numbering.problems).toEqual([]);
  });
});

describe('explainDirection accepts only differences it can check', () => {
  const data = (off: number, s: string) => ({ off, data: Buffer.from(s), len: 0, reason: null });
  const gap = (off: number, len: number, reason: string) => ({ off, data: null, len, reason });
  const ours = { pieces: [data(0, 'VERY'), gap(4, 4, 'acked'), data(8, 'DATA')], overlaps: [] as Array<[number, number]> };

  it('gap text where pcapflow reported the gap, of its length', () => {
    const v = explainDirection(ours, Buffer.concat([Buffer.from('VERY'), gapText(4), Buffer.from('DATA')]), [], 'fin');
    expect(v).toMatchObject({ ok: true, reasons: ['gap-text'] });
    expect(explainDirection(ours, Buffer.concat([Buffer.from('VERY'), gapText(5), Buffer.from('DATA')]), [], 'fin').ok).toBe(false);
    expect(explainDirection(ours, Buffer.concat([Buffer.from('VER'), gapText(4), Buffer.from('YDATA')]), [], 'fin').ok).toBe(false);
  });

  it('tshark stopping at a gap only when the peer did not acknowledge it', () => {
    expect(explainDirection(ours, Buffer.from('VERY'), [], 'fin').ok).toBe(false);
    const unacked = { pieces: [data(0, 'VERY'), gap(4, 4, 'rst'), data(8, 'DATA')], overlaps: [] };
    expect(explainDirection(unacked, Buffer.from('VERY'), [], 'rst')).toMatchObject({ ok: true, reasons: ['tshark-drops-unacked'] });
    expect(explainDirection(unacked, Buffer.from('VER'), [], 'rst').ok).toBe(false);
  });

  it('differing bytes only inside an overlap event', () => {
    const o = { pieces: [data(0, 'GOOD')], overlaps: [[1, 3]] as Array<[number, number]> };
    expect(explainDirection(o, Buffer.from('GXXD'), [], 'fin')).toMatchObject({ ok: true, reasons: ['overlap-kept'] });
    expect(explainDirection(o, Buffer.from('XOOD'), [], 'fin').ok).toBe(false);
  });

  it('extra bytes after an RST only when they are the packets after the close', () => {
    const o = { pieces: [data(0, 'abc')], overlaps: [] };
    expect(explainDirection(o, Buffer.from('abcdef'), [Buffer.from('de'), Buffer.from('f')], 'rst')).toMatchObject({ ok: true, reasons: ['after-rst'] });
    expect(explainDirection(o, Buffer.from('abcdef'), [Buffer.from('de'), Buffer.from('f')], 'fin').ok).toBe(false);
    expect(explainDirection(o, Buffer.from('abcdeg'), [Buffer.from('de'), Buffer.from('f')], 'rst').ok).toBe(false);
  });
});
