#!/usr/bin/env node
/**
 * drop-segments: rewrites a classic pcap file without every copy (the original and each
 * retransmission) of the data segments that carry bytes of given stream ranges, so that the
 * capture has real holes that nothing fills (test/http-netns.test.ts makes gaps of known size
 * inside HTTP bodies with it):
 *
 *   node drop-segments.mjs IN OUT --range CLIENT_IP,CLIENT_PORT,SERVER_IP,SERVER_PORT,DIR,START,END [--range ...]
 *
 * DIR is c2s or s2c; START and END are stream offsets (0 = the direction's first byte after its
 * SYN), END excluded. A segment is dropped when any of its payload bytes falls in [START, END).
 * Prints one JSON line: per range, the frames dropped and `holes`, the byte ranges [a, b) of the
 * direction that no frame left in the capture carries (what a reader must report missing), and
 * `missing`, their total. Needs the connection's SYN (c2s) or SYN-ACK (s2c) in the capture.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { readPcap, tcpOf, writePcap } from './shuffle.mjs';

/** addrKey: an address as shuffle.mjs's tcpOf writes it (IPv4 dotted, IPv6 as 32 hex digits). */
export function addrKey(ip) {
  if (!ip.includes(':')) return ip;
  const [head, tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('').toLowerCase();
}

/** merge sorts and joins [a, b) ranges. */
function merge(ranges) {
  const out = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** subtract: the parts of the (merged) ranges `from` that no range of `minus` covers. */
function subtract(from, minus) {
  const m = merge(minus);
  const out = [];
  for (const [a0, b] of from) {
    let a = a0;
    for (const [c, d] of m) {
      if (d <= a || c >= b) continue;
      if (c > a) out.push([a, c]);
      a = Math.max(a, d);
      if (a >= b) break;
    }
    if (a < b) out.push([a, b]);
  }
  return out;
}

/**
 * dropRanges: the records to keep, and per range what was dropped (see the file comment). Each
 * range: { client: {ip, port}, server: {ip, port}, dir, start, end }.
 */
export function dropRanges(pcap, ranges) {
  const specs = ranges.map((r) => {
    const c = `${addrKey(r.client.ip)}.${r.client.port}`;
    const s = `${addrKey(r.server.ip)}.${r.server.port}`;
    const from = r.dir === 'c2s' ? c : s;
    return { ...r, key: `${c < s ? `${c}|${s}` : `${s}|${c}`} ${from}`, frames: 0, dropped: [] };
  });
  const tcps = pcap.records.map((r) => tcpOf(r.data, pcap.linktype));
  /** Per direction named by a range: its initial sequence number (its SYN's) and the segments kept. */
  const dirs = new Map(specs.map((x) => [x.key, { isn: null, kept: [] }]));
  for (const t of tcps) if (t !== null && t.syn && dirs.has(`${t.conn} ${t.dir}`)) dirs.get(`${t.conn} ${t.dir}`).isn = t.seq;
  for (const [key, d] of dirs) if (d.isn === null) throw new Error(`no SYN for ${key}`);
  const keep = [];
  pcap.records.forEach((r, i) => {
    const t = tcps[i];
    const d = t === null || t.len === 0 || t.syn ? undefined : dirs.get(`${t.conn} ${t.dir}`);
    if (d === undefined) {
      keep.push(r);
      return;
    }
    const off = (t.seq - d.isn - 1) >>> 0;
    const seg = [off, off + t.len];
    const hit = specs.filter((x) => x.key === `${t.conn} ${t.dir}` && seg[0] < x.end && seg[1] > x.start);
    for (const x of hit) {
      x.frames++;
      x.dropped.push(seg);
    }
    if (hit.length === 0) {
      d.kept.push(seg);
      keep.push(r);
    }
  });
  const results = specs.map((x) => {
    const holes = subtract(merge(x.dropped), dirs.get(x.key).kept);
    return { dir: x.dir, client: x.client, server: x.server, start: x.start, end: x.end, frames: x.frames, holes, missing: holes.reduce((n, [a, b]) => n + b - a, 0) };
  });
  return { keep, results };
}

function main() {
  const args = process.argv.slice(2);
  const [input, output] = args;
  const ranges = [];
  for (let i = 2; i < args.length; i += 2) {
    if (args[i] !== '--range' || args[i + 1] === undefined) throw new Error(`unexpected argument ${args[i]}`);
    const [cip, cport, sip, sport, dir, start, end] = args[i + 1].split(',');
    if (dir !== 'c2s' && dir !== 's2c') throw new Error(`bad direction ${dir}`);
    ranges.push({ client: { ip: cip, port: Number(cport) }, server: { ip: sip, port: Number(sport) }, dir, start: Number(start), end: Number(end) });
  }
  if (input === undefined || output === undefined || ranges.length === 0) {
    console.error('usage: drop-segments.mjs IN OUT --range CIP,CPORT,SIP,SPORT,c2s|s2c,START,END [--range ...]');
    process.exit(2);
  }
  const pcap = readPcap(readFileSync(input));
  const { keep, results } = dropRanges(pcap, ranges);
  writePcap(output, pcap, keep);
  console.log(JSON.stringify({ records: pcap.records.length, kept: keep.length, ranges: results }));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main();
  } catch (err) {
    console.error(`drop-segments.mjs: ${err.message}`);
    process.exit(1);
  }
}
