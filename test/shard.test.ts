/**
 * `--shard K/N` (ReadCapturesOptions.shard, ShardSelect in core/shard-key.ts): N runs over the
 * same inputs give disjoint outputs whose union is the unsharded output. Checked on every shared
 * capture (../shared/pcaps and ../shared/pcaps-app) for N = 1 to 4 through the library: each
 * shard's NDJSON is exactly the unsharded NDJSON restricted to the connections whose shard, as
 * the SHARD KEY specification computes it here from the open events, is K (so the same events, in
 * the same order, with the same connection numbers: tshark's tcp.stream); each shard's files are
 * the unsharded files of its connections (names and bytes), its connections.ndjson the unsharded
 * records of its connections in the same order; the demux's counters are those of the unsharded
 * run. Then the key's test vectors, the option checks, limits (idle timeout, evictions, reuse),
 * `--workers 2`, and the CLI (`read`, `http`, `live`, `packets`).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPcapflowError } from '../src/core/errors.js';
import { checkShard, MAX_SHARDS, parseShard, shardKey, shardOfKey } from '../src/core/shard-key.js';
import { plainArgs } from '../src/cli/plain-args.js';
import { readOptions } from '../src/cli/main.js';
import { STDIN_TOKEN } from '../src/cli/options.js';
import { ReadPipeline, readCaptures, type ReadCapturesOptions, type ReadStats } from '../src/read-pipeline.js';
import { runCli } from './helpers/cli-run.js';
import { REPO_ROOT, sharedCaptures } from './helpers/env.js';
import { CollectingWritable } from './helpers/sink-events.js';

const APP = path.resolve(REPO_ROOT, '../shared/pcaps-app');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapflow-shard-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => path.join(tmp, `out${dirs++}`);

/** Every capture under ../shared/pcaps-app (recursively), sorted. */
function appCaptures(dir = APP): string[] {
  if (!fs.existsSync(dir)) throw new Error(`the shared application captures are missing: ${dir}`);
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...appCaptures(p));
    else if (/\.(pcap|pcapng|cap)(\.gz)?$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

// --- the SHARD KEY as its specification reads (core/shard-key.ts), built independently ---

/** ipBytes: a dotted quad or an IPv6 address (tshark's form: "::" compression, a dotted tail) as bytes. */
function ipBytes(ip: string): number[] {
  if (!ip.includes(':')) return ip.split('.').map(Number);
  let text = ip;
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    tail = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, -dotted[1]!.length)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const words = (s: string | undefined): number[] => (s === undefined || s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const h = words(head);
  const r = words(rest);
  const all = rest === undefined ? h : [...h, ...Array<number>(8 - h.length - r.length).fill(0), ...r];
  const bytes = all.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** specKey: FNV-1a 32 over the byte string the specification describes. */
function specKey(a: string, aPort: number, b: string, bPort: number, vlan: readonly number[]): number {
  const ea = [...ipBytes(a), aPort >> 8, aPort & 0xff];
  const eb = [...ipBytes(b), bPort >> 8, bPort & 0xff];
  let lower = ea;
  let higher = eb;
  for (let i = 0; i < ea.length; i++) {
    if (ea[i] !== eb[i]) {
      if (ea[i]! > eb[i]!) [lower, higher] = [eb, ea];
      break;
    }
  }
  const bytes = [ea.length - 2, ...lower, ...higher, vlan.length, ...vlan.flatMap((v) => [v >> 8, v & 0xff])];
  let h = 0x811c9dc5;
  for (const x of bytes) h = Number((BigInt((h ^ x) >>> 0) * 0x01000193n) & 0xffffffffn);
  return h;
}

/** specShard: floor(key * n / 2^32) + 1, in exact integers. */
function specShard(key: number, n: number): number {
  return Number((BigInt(key) * BigInt(n)) >> 32n) + 1;
}

interface Endpoints {
  client: { ip: string; port: number };
  server: { ip: string; port: number };
  vlan: number[];
}

const shardOfEndpoints = (e: Endpoints, n: number): number => specShard(specKey(e.client.ip, e.client.port, e.server.ip, e.server.port, e.vlan), n);

// --- running the library ---

type Options = Omit<ReadCapturesOptions, 'sink'>;

function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

async function ndjson(file: string, options: Options = {}): Promise<{ out: string; error: unknown; stats: ReadStats | null }> {
  const dest = new CollectingWritable();
  let stats: ReadStats | null = null;
  const error = await settle(readCaptures(file, { ...options, sink: { type: 'ndjson', dest, renderThread: false } }).then((s) => (stats = s)));
  return { out: dest.text(), error, stats };
}

/** files: the output directory's files (name → size and SHA-256) and connections.ndjson's lines, apart. */
async function files(file: string, options: Options = {}): Promise<{ out: Map<string, string>; records: string[]; error: unknown }> {
  const dir = newDir();
  const error = await settle(readCaptures(file, { ...options, sink: { type: 'files', dir } }));
  const out = new Map<string, string>();
  let records: string[] = [];
  if (fs.existsSync(dir)) {
    for (const name of fs.readdirSync(dir).sort()) {
      const bytes = fs.readFileSync(path.join(dir, name));
      if (name === 'connections.ndjson') records = bytes.toString('utf8').split('\n').filter((l) => l !== '');
      else out.set(name, `${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`);
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { out, records, error };
}

const CONN = /^\{"type":"\w+","conn":(\d+),/;

/** connOf: the connection number of an NDJSON event line. */
function connOf(line: string): number {
  const m = CONN.exec(line);
  if (m === null) throw new Error(`an NDJSON line without its connection: ${line.slice(0, 80)}`);
  return Number(m[1]);
}

describe('the SHARD KEY', () => {
  // computed once from the specification's text by a separate program (Python's ipaddress and
  // integers): a change here changes which process gets which connection in every deployment
  const vectors: Array<[string, number, string, number, number[], number, number[]]> = [
    ['10.0.0.1', 1234, '10.0.0.2', 80, [], 0x5c3c1a10, [1, 1, 2, 2, 3]],
    ['192.168.1.2', 80, '192.168.1.1', 50000, [], 0x1607076f, [1, 1, 1, 1, 1]],
    ['141.142.228.5', 59856, '192.150.187.43', 80, [0], 0x11a6ec31, [1, 1, 1, 1, 1]],
    ['10.1.1.1', 443, '10.1.1.1', 443, [], 0x877be0cd, [1, 2, 2, 3, 4]],
    ['10.1.1.1', 443, '10.1.1.1', 444, [100, 200], 0x8f60c978, [1, 2, 2, 3, 4]],
    ['2001:db8::1', 443, '2001:db8::2', 51000, [], 0xf724800b, [1, 2, 3, 4, 7]],
    ['fe80::1', 22, '::1', 22, [4095], 0xd527bc32, [1, 2, 3, 4, 6]],
  ];

  it('gives the test vectors, whichever endpoint comes first, and their shards of 1, 2, 3, 4 and 7', () => {
    for (const [a, ap, b, bp, vlan, key, shards] of vectors) {
      const A = Uint8Array.from(ipBytes(a));
      const B = Uint8Array.from(ipBytes(b));
      expect(shardKey(A, 0, ap, B, 0, bp, A.length, vlan), `${a}.${ap} ${b}.${bp}`).toBe(key);
      expect(shardKey(B, 0, bp, A, 0, ap, A.length, vlan), `${b}.${bp} ${a}.${ap}`).toBe(key);
      expect(specKey(a, ap, b, bp, vlan)).toBe(key);
      expect([1, 2, 3, 4, 7].map((n) => shardOfKey(key, n))).toEqual(shards);
    }
  });

  it('equals the specification on random endpoints (IPv4, IPv6, VLAN tags, offsets into larger buffers)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const bad: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const len = rnd(2) === 0 ? 4 : 16;
      const buf = Uint8Array.from({ length: 64 }, () => rnd(256));
      const ao = rnd(20);
      const bo = 30 + rnd(10);
      if (rnd(4) === 0) buf.copyWithin(bo, ao, ao + len); // equal addresses: the ports decide
      const ap = rnd(4) === 0 ? 80 : rnd(65536);
      const bp = rnd(4) === 0 ? ap : rnd(65536);
      const vlan = Array.from({ length: rnd(3) }, () => rnd(4096));
      const text = (o: number): string => (len === 4 ? Array.from(buf.subarray(o, o + 4)).join('.') : Array.from({ length: 8 }, (_, w) => ((buf[o + 2 * w]! << 8) | buf[o + 2 * w + 1]!).toString(16)).join(':'));
      const key = shardKey(buf, ao, ap, buf, bo, bp, len, vlan);
      const want = specKey(text(ao), ap, text(bo), bp, vlan);
      if (key !== want || shardKey(buf, bo, bp, buf, ao, ap, len, vlan) !== key) bad.push(`${text(ao)}.${ap} ${text(bo)}.${bp} ${vlan.join(',')}: ${key} not ${want}`);
      for (const n of [1, 2, 3, 4, 5, 8, MAX_SHARDS]) if (shardOfKey(key, n) !== specShard(key, n)) bad.push(`${key} of ${n}`);
    }
    expect(bad).toEqual([]);
  });

  it('nests (shard K of N is shards 2K-1 and 2K of 2N) and spreads connections evenly', () => {
    const counts = [0, 0, 0, 0];
    const bad: string[] = [];
    for (let port = 1024; port < 1024 + 8000; port++) {
      const key = shardKey(Uint8Array.of(10, 0, 0, 1), 0, port, Uint8Array.of(10, 0, 0, 2), 0, 80, 4, []);
      for (const n of [1, 2, 3, 5]) if (Math.ceil(shardOfKey(key, 2 * n) / 2) !== shardOfKey(key, n)) bad.push(`port ${port}: ${shardOfKey(key, 2 * n)} of ${2 * n}, ${shardOfKey(key, n)} of ${n}`);
      counts[shardOfKey(key, 4) - 1]!++;
    }
    expect(bad).toEqual([]);
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });
});

describe('--shard options', () => {
  it('parseShard reads K/N with K from 1 to N; anything else is INVALID_OPTION', () => {
    expect(parseShard('1/4')).toEqual({ index: 1, count: 4 });
    expect(parseShard(' 4 / 4 ')).toEqual({ index: 4, count: 4 });
    expect(parseShard('1/1')).toEqual({ index: 1, count: 1 });
    for (const bad of ['0/4', '5/4', '1/0', '0/0', '4', '1/4/2', 'a/b', '-1/4', '1.5/4', '', '1/65537', '1/4x']) {
      let err: unknown = null;
      try {
        parseShard(bad);
      } catch (e) {
        err = e;
      }
      expect(isPcapflowError(err) && err.code === 'INVALID_OPTION', bad).toBe(true);
    }
    expect(checkShard({ index: 2, count: 2 })).toEqual({ index: 2, count: 2 });
    expect(() => checkShard({ index: 0, count: 2 })).toThrow(/index/);
    expect(() => checkShard({ index: 1, count: 1.5 })).toThrow(/count/);
  });

  it('ReadPipeline checks its shard option before reading', () => {
    const file = sharedCaptures()[0]!;
    for (const shard of [{ index: 0, count: 2 }, { index: 3, count: 2 }, { index: 1, count: 0 }, { index: 1, count: NaN }]) {
      let err: unknown = null;
      try {
        new ReadPipeline(file, { sink: { type: 'ndjson', dest: new CollectingWritable() }, shard });
      } catch (e) {
        err = e;
      }
      expect(isPcapflowError(err) && err.code === 'INVALID_OPTION', JSON.stringify(shard)).toBe(true);
    }
  });

  it('the CLI: usage errors (exit 2) on read, http, packets and live (before capturing); read parses it without yargs', async () => {
    const file = sharedCaptures()[0]!;
    for (const argv of [
      ['read', file, '--shard', '0/2'],
      ['read', file, '--shard=3/2'],
      ['read', file, '--shard', 'half'],
      ['http', file, '--shard', '2/1'],
      ['live', 'lo', '--shard', '1/0'],
    ]) {
      const r = await runCli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(/INVALID_OPTION: --shard/);
    }
    const p = await runCli(['packets', file, '--shard', '3/2']);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/INVALID_OPTION: --shard/);
    const parsed = await plainArgs('pcapflow', ['read', file, '--shard', '2/3', '--sink', 'ndjson'], readOptions, STDIN_TOKEN);
    expect(parsed?.shard).toBe('2/3');
  });
});

describe('N shards split the unsharded output by connection', () => {
  const captures = [...sharedCaptures(), ...appCaptures()];

  it('NDJSON and files on every shared capture, N = 1 to 4: disjoint, whole, in order, numbered as without --shard', async () => {
    expect(captures.length).toBeGreaterThan(150);
    let runs = 0;
    let conns = 0;
    let multi = 0;
    for (const file of captures) {
      const what = path.relative(path.resolve(REPO_ROOT, '..'), file);
      const base = await ndjson(file);
      const lines = base.out.split('\n').filter((l) => l !== '');
      const ends = new Map<number, Endpoints>();
      for (const line of lines) {
        const conn = connOf(line);
        if (line.startsWith('{"type":"open"')) ends.set(conn, JSON.parse(line) as Endpoints);
        else expect(ends.has(conn), `${what}: an event of connection ${conn} before its open`).toBe(true);
      }
      conns += ends.size;
      const baseFiles = await files(file);
      expect(String(baseFiles.error), what).toBe(String(base.error));
      const demux = base.stats?.demux;
      for (let n = 1; n <= 4; n++) {
        const union = new Map<string, string>();
        let kept = 0;
        // the N shards run side by side (their file writes overlap)
        const shards = await Promise.all(
          Array.from({ length: n }, async (_, i) => {
            const shard = { index: i + 1, count: n };
            const got = await ndjson(file, { shard });
            // files of one connection or none go whole to one shard: N = 4 shows it (NDJSON checks every N)
            const f = ends.size > 1 || n === 4 ? await files(file, { shard }) : null;
            return { got, f };
          }),
        );
        runs += n + shards.filter((r) => r.f !== null).length;
        for (let k = 1; k <= n; k++) {
          const label = `${what} shard ${k}/${n}`;
          const { got, f } = shards[k - 1]!;
          const want = lines.filter((l) => shardOfEndpoints(ends.get(connOf(l))!, n) === k);
          expect(got.out, label).toBe(want.length === 0 ? '' : `${want.join('\n')}\n`);
          expect(String(got.error), label).toBe(String(base.error));
          if (base.error === null) {
            // the demux saw every packet: the same numbers, idle expiries, evictions and reuse
            expect(got.stats?.demux, label).toEqual(demux);
            kept += got.stats!.demux.connections - got.stats!.shard!.otherConnections;
          }
          if (f === null) continue;
          expect(String(f.error), label).toBe(String(base.error));
          for (const [name, v] of f.out) {
            expect(union.has(name), `${label}: ${name} in two shards`).toBe(false);
            expect(baseFiles.out.get(name), `${label}: ${name}`).toBe(v);
            union.set(name, v);
          }
          expect(f.records, label).toEqual(baseFiles.records.filter((r) => shardOfEndpoints(JSON.parse(r) as Endpoints, n) === k));
        }
        if (shards[0]!.f !== null) expect(union.size, `${what} N=${n}`).toBe(baseFiles.out.size);
        if (base.error === null) expect(kept, `${what} N=${n}: every connection in one shard`).toBe(demux!.connections);
      }
      // 8 connections or more all in one of 4 shards: once in 16 000 for a hash that spreads
      if (ends.size >= 8) {
        multi++;
        expect(new Set([...ends.values()].map((e) => shardOfEndpoints(e, 4))).size, `${what}: ${ends.size} connections in one shard of 4`).toBeGreaterThan(1);
      }
    }
    expect(multi).toBeGreaterThan(10);
    console.log(`shard: ${captures.length} captures, ${conns} connections, ${runs} sharded runs`);
  }, 240_000);

  it('with idle timeouts, evictions and reused ports, and small reads: the same split', async () => {
    const many = [...sharedCaptures()].filter((f) => /mixed-126|ftp-data-80|null-http-range-41|methods-49|syn-flood-200|tcp-reassembly-scenarios|ssh-many-duplicates/.test(f));
    expect(many.length).toBe(7);
    const ended = { evicted: 0, idleExpired: 0, reused: 0 };
    for (const file of many) {
      for (const options of [{ demux: { maxConnections: 5 }, readSize: 2048 }, { demux: { idleTimeout: 0.5 }, readSize: 4096 }] as Options[]) {
        const what = `${path.basename(file)} ${JSON.stringify(options)}`;
        const base = await ndjson(file, options);
        expect(base.error, what).toBe(null);
        const lines = base.out.split('\n').filter((l) => l !== '');
        const ends = new Map<number, Endpoints>();
        for (const line of lines) if (line.startsWith('{"type":"open"')) ends.set(connOf(line), JSON.parse(line) as Endpoints);
        for (const n of [2, 3]) {
          for (let k = 1; k <= n; k++) {
            const got = await ndjson(file, { ...options, shard: { index: k, count: n } });
            const want = lines.filter((l) => shardOfEndpoints(ends.get(connOf(l))!, n) === k);
            expect(got.out, `${what} ${k}/${n}`).toBe(want.length === 0 ? '' : `${want.join('\n')}\n`);
            expect(got.stats?.demux, `${what} ${k}/${n}`).toEqual(base.stats?.demux);
          }
        }
        for (const key of ['evicted', 'idleExpired', 'reused'] as const) ended[key] += base.stats!.demux[key];
      }
    }
    // the limits were reached: connections ended by the demux, closed in their own shard only
    expect(ended.evicted).toBeGreaterThan(100);
    expect(ended.idleExpired).toBeGreaterThan(10);
    expect(ended.reused).toBeGreaterThan(0);
  }, 60_000);

  it('with --workers 2: the same split', async () => {
    const some = sharedCaptures().filter((f) => /mixed-126|tcp-reassembly-scenarios/.test(f));
    expect(some.length).toBe(2);
    for (const file of some) {
      const base = await ndjson(file);
      const lines = base.out.split('\n').filter((l) => l !== '');
      const ends = new Map<number, Endpoints>();
      for (const line of lines) if (line.startsWith('{"type":"open"')) ends.set(connOf(line), JSON.parse(line) as Endpoints);
      const baseFiles = await files(file);
      const union = new Map<string, string>();
      for (let k = 1; k <= 3; k++) {
        const shard = { index: k, count: 3 };
        const got = await ndjson(file, { shard, workers: 2, readSize: 4096 });
        const want = lines.filter((l) => shardOfEndpoints(ends.get(connOf(l))!, 3) === k);
        expect(got.out, `${path.basename(file)} ${k}/3`).toBe(want.length === 0 ? '' : `${want.join('\n')}\n`);
        const f = await files(file, { shard, workers: 2 });
        expect(f.records).toEqual(baseFiles.records.filter((r) => shardOfEndpoints(JSON.parse(r) as Endpoints, 3) === k));
        for (const [name, v] of f.out) union.set(name, v);
      }
      expect(union).toEqual(baseFiles.out);
    }
  }, 60_000);

  it('the CLI: read --sink files and http, N = 3', async () => {
    const pick = [...sharedCaptures().filter((f) => /mixed-126|http-methods-49/.test(f)), ...appCaptures().filter((f) => /\/http\//.test(f)).slice(0, 2)];
    expect(pick.length).toBe(4);
    for (const file of pick) {
      const all = newDir();
      expect((await runCli(['read', file, '--sink', 'files', '-o', all])).code).toBe(0);
      const httpAll = await runCli(['http', file]);
      expect(httpAll.code).toBe(0);
      const httpLines: string[] = [];
      const names: string[] = [];
      const records: string[] = [];
      for (let k = 1; k <= 3; k++) {
        const dir = newDir();
        const r = await runCli(['read', file, '--sink', 'files', '-o', dir, '--shard', `${k}/3`]);
        expect(r.code, r.stderr).toBe(0);
        for (const name of fs.readdirSync(dir)) {
          if (name === 'connections.ndjson') records.push(...fs.readFileSync(path.join(dir, name), 'utf8').split('\n').filter((l) => l !== ''));
          else {
            names.push(name);
            expect(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(all, name))), name).toBe(true);
          }
        }
        const h = await runCli(['http', file, '--shard', `${k}/3`]);
        expect(h.code, h.stderr).toBe(0);
        httpLines.push(...h.stdout.split('\n').filter((l) => l !== ''));
      }
      expect(names.sort()).toEqual(fs.readdirSync(all).filter((n) => n !== 'connections.ndjson').sort());
      expect(records.sort()).toEqual(fs.readFileSync(path.join(all, 'connections.ndjson'), 'utf8').split('\n').filter((l) => l !== '').sort());
      expect(httpLines.sort()).toEqual(httpAll.stdout.split('\n').filter((l) => l !== '').sort());
      expect(httpLines.length, file).toBeGreaterThan(0);
      // packets: TCP packets by their connection's shard, the others in shard 1; each shard's lines in the unsharded order
      const packetsAll = (await runCli(['packets', file, '--format', 'ndjson'])).stdout.split('\n').filter((l) => l !== '');
      const shards: string[][] = [];
      for (let k = 1; k <= 3; k++) {
        const r = await runCli(['packets', file, '--format', 'ndjson', '--shard', `${k}/3`]);
        expect(r.code, r.stderr).toBe(0);
        shards.push(r.stdout.split('\n').filter((l) => l !== ''));
      }
      expect(shards.flat().sort()).toEqual([...packetsAll].sort());
      for (const lines of shards) {
        const at = lines.map((l) => packetsAll.indexOf(l));
        expect(at.every((x, i) => x >= 0 && (i === 0 || x > at[i - 1]!)), file).toBe(true);
      }
    }
  }, 60_000);
});
