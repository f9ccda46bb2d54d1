/**
 * Differential test: pcapflow's files sink (`-o DIR`: one file per direction, gaps listed in
 * DIR/connections.ndjson) against `tcpflow -r F -o DIR` (tcpflow 1.6.1) on every capture in
 * ../shared/pcaps. tcpflow is not ground truth (../shared/pcaps/README.md): where the two
 * differ, the test shows which is right and why, by a reason in REASONS that is checked on the
 * spot, and fails on anything else.
 *
 * Unit of comparison: one direction of an address/port pair ("A:a>B:b"). pcapflow may have
 * several directions for it (a reused pair, one connection per VLAN id), tcpflow several files
 * (`c1`, `c2`, ... when it thinks the pair was reused). Each pcapflow file must be matched by its
 * own tcpflow file (equal, or equal up to REASONS), and every tcpflow file left over must be
 * explained too.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Direction, Endpoint } from '../src/core/events.js';
import { CONNECTIONS_FILE, FilesSink } from '../src/sinks/files-sink.js';
import type { ConnectionRecord, GapRecord, OverlapRecord } from '../src/sinks/connection-records.js';
import { hasTool, needTool, sharedCaptures } from './helpers/env.js';
import { runFlows, type FlowRun } from './helpers/stream-compare.js';
import { explainDirection, tsharkFollow, type TsharkRun } from './helpers/tshark-follow.js';

const REASONS = {
  'nul-fill':
    'tcpflow writes each byte at its sequence offset, so a hole becomes NUL bytes (and a trailing one nothing); pcapflow writes no filler; checked: pcapflow\'s file with NULs inserted at the gaps listed in connections.ndjson equals tcpflow\'s file',
  'eth-padding':
    'tcpflow takes the Ethernet padding of a short frame (a bare ACK) as stream bytes; checked: tcpflow\'s file is pcapflow\'s (NUL-filled) followed by exactly the padding bytes of a frame of that direction',
  'overlap-last':
    'tcpflow writes every copy of a byte at its offset, so the last copy wins; pcapflow keeps the first; checked: every byte that differs lies inside an overlap pcapflow listed in connections.ndjson',
  'padding-only-file':
    'a tcpflow file that holds nothing but Ethernet padding (a bare ACK or FIN after the data, or taken for a new connection); checked: its bytes are the padding of a frame of that address/port direction',
  'tcpflow-rejects':
    'tcpflow gave up on the file (a link type it does not know, pcapng interfaces of different types or snaplens) and wrote nothing; checked: tcpflow exited non-zero with that message and wrote no file',
  'ip-fragments':
    'tcpflow does not reassemble IPv4 fragments: it reads the first fragment (the one holding the TCP header) as a whole segment and drops the rest; checked: pcapflow fed only the first fragment of each fragmented datagram (variant first-fragment-only) gives tcpflow\'s file',
  'vlan-merge':
    'tcpflow leaves VLAN ids out of its key and merges connections pcapflow keeps apart; checked: pcapflow with VLAN ids dropped (variant no-vlan) gives tcpflow\'s file',
  'tshark-agrees':
    'tcpflow is wrong and tshark agrees with pcapflow (IPv4 fragments tcpflow drops, tunnels and extension headers it cannot read, sequence wraparound, junk and split files, data after a hole): checked: tshark\'s follow of the same stream direction equals pcapflow\'s bytes, or differs only by its own checked reasons (stream-tshark-diff.test.ts)',
} as const;
type Reason = keyof typeof REASONS;

/** tcpflow messages on giving up on a whole file (stderr), as tcpflow 1.6.1 words them. */
const REJECTS = [/unknown datalink type \d+/, /an interface has a (type|snapshot length) \d+ different from/];

interface TcpflowRun {
  code: number;
  stderr: string;
  /** Files by directional pair "A:a>B:b", in name order. */
  files: Map<string, Array<{ name: string; bytes: Buffer }>>;
}

const ep = (e: Endpoint): string => `${e.ip}:${e.port}`;
/** tcpflow pads IPv4 octets to 3 digits: "010.000.000.001" → "10.0.0.1". */
const unpad = (ip: string): string => (/^\d{3}\.\d{3}\.\d{3}\.\d{3}$/.test(ip) ? ip.split('.').map(Number).join('.') : ip);

function tcpflow(file: string): Promise<TcpflowRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tcpflow-'));
  return new Promise((resolve) => {
    execFile('tcpflow', ['-r', file, '-o', dir], { maxBuffer: 1 << 26 }, (err, _out, stderr) => {
      const files = new Map<string, Array<{ name: string; bytes: Buffer }>>();
      for (const name of readdirSync(dir).sort()) {
        const m = /^(.+)\.(\d{5})-(.+)\.(\d{5})(?:--\d+)?(?:c\d+)?$/.exec(name);
        if (!m) continue; // report.xml
        const key = `${unpad(m[1]!)}:${Number(m[2])}>${unpad(m[3]!)}:${Number(m[4])}`;
        let l = files.get(key);
        if (!l) files.set(key, (l = []));
        l.push({ name, bytes: readFileSync(path.join(dir, name)) });
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr), files });
    });
  });
}

interface OurFile {
  conn: number;
  dir: Direction;
  name: string;
  bytes: Buffer;
  gaps: GapRecord[];
  overlaps: OverlapRecord[];
  padding: Buffer[];
}

/** pcapflow's files sink on `run`'s events: each file with its gap list from connections.ndjson. */
async function ourFiles(run: FlowRun): Promise<Map<string, OurFile[]>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pcapflow-files-'));
  try {
    await pipeline(Readable.from([run.events], { objectMode: true }), new FilesSink({ dir }));
    const out = new Map<string, OurFile[]>();
    const lines = readFileSync(path.join(dir, CONNECTIONS_FILE), 'utf8').split('\n').filter((l) => l !== '');
    for (const rec of lines.map((l) => JSON.parse(l) as ConnectionRecord).sort((a, b) => a.conn - b.conn)) {
      for (const d of ['c2s', 's2c'] as const) {
        const r = rec[d];
        if (r.file === null) continue;
        const [a, b] = d === 'c2s' ? [rec.client, rec.server] : [rec.server, rec.client];
        const key = `${ep(a)}>${ep(b)}`;
        let l = out.get(key);
        if (!l) out.set(key, (l = []));
        l.push({ conn: rec.conn, dir: d, name: r.file, bytes: readFileSync(path.join(dir, r.file)), gaps: r.gapList, overlaps: r.overlapList, padding: run.conns.get(rec.conn)!.padding[d] });
      }
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** nulFill: pcapflow's file with each listed gap put back as NUL bytes (none after the last data). */
function nulFill(f: { bytes: Buffer; gaps: GapRecord[] }): Buffer {
  const parts: Buffer[] = [];
  let pos = 0; // file position
  let missing = 0; // gap bytes before the current stream offset
  for (const g of f.gaps) {
    const filePos = g.offset - missing;
    if (filePos >= f.bytes.length) break; // nothing after it: tcpflow writes nothing either
    parts.push(f.bytes.subarray(pos, filePos), Buffer.alloc(g.len));
    pos = filePos;
    missing += g.len;
  }
  parts.push(f.bytes.subarray(pos));
  return Buffer.concat(parts);
}

/** filledLength: the length nulFill() would give, without building it. */
function filledLength(f: { bytes: Buffer; gaps: GapRecord[] }): number {
  let missing = 0;
  for (const g of f.gaps) {
    if (g.offset - missing >= f.bytes.length) break;
    missing += g.len;
  }
  return f.bytes.length + missing;
}

/** How tcpflow's file `t` relates to pcapflow's file `o`, or null. */
function relate(o: { bytes: Buffer; gaps: GapRecord[]; overlaps: OverlapRecord[]; padding: Buffer[] }, t: Buffer): Reason[] | null {
  if (o.bytes.equals(t)) return [];
  if (o.gaps.length > 0) {
    const len = filledLength(o);
    if (len > t.length || t.length - len > 64) return null; // NUL-filling could not give t (and might not fit in memory)
  }
  const filled = o.gaps.length > 0 ? nulFill(o) : o.bytes;
  const why: Reason[] = o.gaps.length > 0 ? ['nul-fill'] : [];
  if (filled.equals(t)) return why;
  if (filled.length === t.length && o.overlaps.length > 0) {
    // positions are stream offsets here only when NUL-filling restored them all
    let ok = filledLength(o) === o.bytes.length + o.gaps.reduce((n, g) => n + g.len, 0);
    for (let i = 0; ok && i < t.length; i++) {
      if (filled[i] !== t[i]) ok = o.overlaps.some((v) => i >= v.offset && i < v.offset + v.len);
    }
    if (ok) return [...why, 'overlap-last'];
  }
  if (t.length > filled.length && t.subarray(0, filled.length).equals(filled)) {
    const tail = t.subarray(filled.length);
    if (o.padding.some((p) => p.equals(tail))) return [...why, 'eth-padding'];
  }
  return null;
}

interface Row {
  capture: string;
  tcpflowExit: number;
  ours: number;
  theirs: number;
  equal: number;
  explained: Partial<Record<Reason, number>>;
  problems: string[];
}

const rows: Row[] = [];

async function compare(file: string): Promise<Row> {
  const base = runFlows(file);
  const [tf, ours] = await Promise.all([tcpflow(file), ourFiles(base)]);
  const row: Row = { capture: path.basename(file), tcpflowExit: tf.code, ours: 0, theirs: 0, equal: 0, explained: {}, problems: [] };
  const add = (r: Reason, n = 1): void => {
    row.explained[r] = (row.explained[r] ?? 0) + n;
  };
  let tshark: TsharkRun | null = null;
  let noVlan: Map<string, OurFile[]> | null = null;
  const variants = new Map<string, Map<string, OurFile[]>>();
  const rejected = tf.code !== 0 && tf.files.size === 0 && REJECTS.some((re) => re.test(tf.stderr));
  // padding of every frame, per directional pair (for tcpflow files pcapflow has no file for)
  const paddingOf = new Map<string, Buffer[]>();
  for (const rec of base.conns.values()) {
    for (const d of ['c2s', 's2c'] as const) {
      const [a, b] = d === 'c2s' ? [rec.open.client, rec.open.server] : [rec.open.server, rec.open.client];
      const k = `${ep(a)}>${ep(b)}`;
      paddingOf.set(k, [...(paddingOf.get(k) ?? []), ...rec.padding[d]]);
    }
  }
  for (const l of ours.values()) row.ours += l.length;
  for (const l of tf.files.values()) row.theirs += l.length;

  /** tshark agrees with pcapflow on every file of the pair. */
  const tsharkAgrees = async (mine: OurFile[]): Promise<boolean> => {
    if (tshark === null) tshark = await tsharkFollow(file, base.demux.stats.connections);
    const ts: TsharkRun = tshark;
    for (const o of mine) {
      const rec = base.conns.get(o.conn)!;
      const first = Math.min(...rec.frames);
      const stream = ts.frames.find((f) => f.frame === first)?.stream;
      const fs = stream === undefined ? undefined : ts.follows.get(stream);
      if (fs === undefined) return false;
      const sender = o.dir === 'c2s' ? rec.open.client : rec.open.server;
      const k = ep(fs.nodes[0]) === ep(sender) ? 0 : 1;
      const v = rec.dirs[o.dir].bytes.equals(fs.data[k]) || explainDirection(rec.dirs[o.dir], fs.data[k], rec.afterClose[o.dir], rec.close?.reason ?? null).ok;
      if (!v || !rec.dirs[o.dir].bytes.equals(o.bytes)) return false;
    }
    return true;
  };

  for (const key of new Set([...ours.keys(), ...tf.files.keys()])) {
    const mine = ours.get(key) ?? [];
    const theirs = tf.files.get(key) ?? [];
    // 1. each pcapflow file matched by its own tcpflow file; leftovers are padding only
    const left = [...theirs];
    const found: Reason[][] = [];
    for (const o of mine) {
      const i = left.findIndex((t) => relate(o, t.bytes) !== null);
      if (i < 0) break;
      found.push(relate(o, left[i]!.bytes)!);
      left.splice(i, 1);
    }
    const pads = paddingOf.get(key) ?? [];
    const padOnly = left.every((t) => pads.some((p) => p.equals(t.bytes)));
    if (found.length === mine.length && padOnly) {
      for (const r of found) {
        if (r.length === 0) row.equal++;
        for (const x of r) add(x);
      }
      if (left.length > 0) add('padding-only-file', left.length);
      continue;
    }
    // 2. tcpflow rejected the whole capture
    if (rejected) {
      add('tcpflow-rejects', mine.length);
      continue;
    }
    // 3. VLANs merged by tcpflow
    if (new Set(mine.map((o) => base.conns.get(o.conn)!.open.vlan.join('.'))).size > 1) {
      noVlan ??= await ourFiles(runFlows(file, 'no-vlan'));
      const merged = noVlan.get(key) ?? [];
      if (merged.length === theirs.length && merged.every((o, i) => relate(o, theirs[i]!.bytes) !== null)) {
        add('vlan-merge', mine.length);
        continue;
      }
    }
    // 4. a cause tcpflow has, removed from pcapflow's input
    let byVariant = false;
    for (const [variant, reason, applies] of [
      ['first-fragment-only', 'ip-fragments', (base.decoder.stats.datagramsReassembled ?? 0) > 0],
    ] as const) {
      if (!applies || mine.length === 0) continue;
      let files = variants.get(variant);
      if (!files) variants.set(variant, (files = await ourFiles(runFlows(file, variant))));
      const alt = files.get(key) ?? [];
      const rest = [...theirs];
      const ok =
        alt.length === mine.length &&
        alt.every((o) => {
          const i = rest.findIndex((t) => relate(o, t.bytes) !== null);
          if (i < 0) return false;
          for (const r of relate(o, rest[i]!.bytes)!) add(r);
          rest.splice(i, 1);
          return true;
        }) &&
        rest.every((t) => pads.some((p) => p.equals(t.bytes)));
      if (ok) {
        add(reason, mine.length);
        if (rest.length > 0) add('padding-only-file', rest.length);
        byVariant = true;
        break;
      }
    }
    if (byVariant) continue;
    // 5. tshark sides with pcapflow
    if (mine.length > 0 && hasTool('tshark') && (await tsharkAgrees(mine))) {
      add('tshark-agrees', mine.length);
      continue;
    }
    row.problems.push(`${key}: pcapflow ${mine.map((o) => `${o.name} ${o.bytes.length}${o.gaps.length ? ` (${o.gaps.length} gaps)` : ''}`).join(', ') || 'no file'}; tcpflow ${theirs.map((t) => `${t.name} ${t.bytes.length}`).join(', ') || 'no file'}`);
  }
  return row;
}

const files = needTool('tcpflow') ? sharedCaptures() : [];

describe.skipIf(files.length === 0).concurrent('files agree with tcpflow on ../shared/pcaps, or a checked reason says who is right', () => {
  afterAll(() => {
    rows.sort((a, b) => (a.capture < b.capture ? -1 : 1));
    const lines = ['capture\ttcpflow exit\tpcapflow files\ttcpflow files\tequal\texplained (reasons)\tunexplained'];
    const total: Partial<Record<Reason, number>> = {};
    let ours = 0;
    let equal = 0;
    let bad = 0;
    for (const r of rows) {
      const ex = Object.entries(r.explained).map(([k, v]) => `${v} ${k}`).join(', ');
      lines.push(`${r.capture}\t${r.tcpflowExit}\t${r.ours}\t${r.theirs}\t${r.equal}\t${ex || '-'}\t${r.problems.length}`);
      for (const [k, v] of Object.entries(r.explained)) total[k as Reason] = (total[k as Reason] ?? 0) + v;
      ours += r.ours;
      equal += r.equal;
      bad += r.problems.length;
    }
    lines.push('', `total: ${rows.length} captures, ${ours} pcapflow files, ${equal} equal to tcpflow's, ${bad} unexplained`, 'reasons (files):');
    for (const [k, v] of Object.entries(total)) lines.push(`  ${v} ${k}: ${REASONS[k as Reason]}`);
    console.log(lines.join('\n'));
  });

  it.for(files.map((f) => [path.basename(f), f] as const))('%s', async ([, file], { expect }) => {
    const row = await compare(file);
    rows.push(row);
    expect(row.problems).toEqual([]);
  });
});

describe('the tcpflow comparison helpers', () => {
  const gap = (offset: number, len: number): GapRecord => ({ offset, len, reason: 'acked' });
  it('nulFill puts NULs at inner gaps and nothing for a trailing one', () => {
    expect(nulFill({ bytes: Buffer.from('VERYDATA'), gaps: [gap(4, 4)] }).toString('latin1')).toBe('VERY\0\0\0\0DATA');
    expect(nulFill({ bytes: Buffer.from('GOODDATA'), gaps: [gap(0, 4)] }).toString('latin1')).toBe('\0\0\0\0GOODDATA');
    expect(nulFill({ bytes: Buffer.from('AB'), gaps: [gap(2, 9)] }).toString('latin1')).toBe('AB');
  });
  it('relate accepts padding only when it is a frame\'s padding', () => {
    const o = { bytes: Buffer.from('DATA'), gaps: [], overlaps: [], padding: [Buffer.alloc(6)] };
    expect(relate(o, Buffer.concat([Buffer.from('DATA'), Buffer.alloc(6)]))).toEqual(['eth-padding']);
    expect(relate(o, Buffer.concat([Buffer.from('DATA'), Buffer.alloc(5)]))).toBeNull();
    expect(relate(o, Buffer.from('DATB'))).toBeNull();
  });
  it('relate accepts differing bytes only inside a listed overlap', () => {
    const o = { bytes: Buffer.from('GOOD'), gaps: [], overlaps: [{ offset: 1, len: 2, kept: 'first' as const }], padding: [] };
    expect(relate(o, Buffer.from('GXXD'))).toEqual(['overlap-last']);
    expect(relate(o, Buffer.from('XOOD'))).toBeNull();
  });
});
