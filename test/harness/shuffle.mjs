#!/usr/bin/env node
/**
 * shuffle: rewrites a classic pcap file with its records in another order, each record keeping
 * its own bytes and timestamp, to give the shapes of real captures that are not in order
 * (test/netns-shapes.test.ts derives them from a harness capture; see README.md "Shapes"):
 *
 *   node shuffle.mjs IN OUT --window 8 [--seed 1] [--mode slide|block] [--restamp]
 *       reorder within windows of up to N records. `slide` (default): every record moves fewer
 *       than N places (each record's sort key is its index plus a random fraction of N). `block`:
 *       the records of each run of N are put in a random order.
 *   node shuffle.mjs IN OUT --move-syn [--seed 1] [--max-move 64]
 *       for every TCP connection, its SYN, its SYN-ACK or both (in turn, connection by
 *       connection) move to just after the 1st to 3rd (random) data segment of that connection,
 *       but never more than --max-move records later (a connection whose first data segment is
 *       further away is left alone).
 *   node shuffle.mjs IN OUT --swap-fin [--max-move 64]
 *       the first FIN, and the first RST, of every connection direction changes places with the
 *       last segment carrying data that this direction sent before it, when they are at most
 *       --max-move records apart.
 *
 *   --restamp   give the records the timestamps of the places they land in (the file's times
 *               stay in order) instead of keeping their own.
 *
 * Prints one JSON line: what it did (records, how many moved, the largest displacement, and per
 * option the connections changed or skipped). Reads pcap in both byte orders, micro- or
 * nanosecond; links Ethernet (with 802.1Q/QinQ tags), raw IP and Linux cooked (SLL, SLL2) for
 * --move-syn and --swap-fin. pcapng is refused (convert with `editcap -F pcap`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from './traffic-common.mjs';

/**
 * readPcap splits a classic pcap file into its header and records. Each record is
 * { index, ts: [sec, frac], data (frame bytes), raw (record header and frame) }.
 */
export function readPcap(buf) {
  if (buf.length < 24) throw new Error('not a pcap file: too short');
  const magic = buf.readUInt32LE(0);
  let le;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else if (magic === 0x0a0d0d0a) throw new Error('pcapng is not supported: convert it with editcap -F pcap');
  else throw new Error('not a pcap file');
  const u32 = (off) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linktype = u32(20) & 0x0fffffff;
  const records = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const incl = u32(off + 8);
    if (off + 16 + incl > buf.length) throw new Error(`record ${records.length + 1} is cut by the end of the file`);
    records.push({
      index: records.length,
      ts: [u32(off), u32(off + 4)],
      data: buf.subarray(off + 16, off + 16 + incl),
      raw: buf.subarray(off, off + 16 + incl),
    });
    off += 16 + incl;
  }
  if (off !== buf.length) throw new Error('trailing bytes after the last record');
  return { header: buf.subarray(0, 24), le, linktype, records };
}

/** writePcap joins the header and the records in the given order; restamp: times in place order. */
export function writePcap(file, pcap, order, restamp = false) {
  const parts = [pcap.header];
  order.forEach((r, place) => {
    if (!restamp || r.index === place) {
      parts.push(r.raw);
      return;
    }
    const head = Buffer.from(r.raw.subarray(0, 16));
    const [sec, frac] = pcap.records[place].ts;
    if (pcap.le) {
      head.writeUInt32LE(sec, 0);
      head.writeUInt32LE(frac, 4);
    } else {
      head.writeUInt32BE(sec, 0);
      head.writeUInt32BE(frac, 4);
    }
    parts.push(head, r.raw.subarray(16));
  });
  writeFileSync(file, Buffer.concat(parts));
}

/** reorderStats: how many records are not in their place, and the largest displacement. */
function reorderStats(order) {
  let moved = 0;
  let maxMove = 0;
  order.forEach((r, place) => {
    if (r.index !== place) moved++;
    maxMove = Math.max(maxMove, Math.abs(r.index - place));
  });
  return { moved, maxDisplacement: maxMove };
}

/** shuffle reorders the records within windows of `window` (see the usage above). */
export function shuffle(records, window, seed, mode = 'slide') {
  const rng = new Rng(seed);
  if (mode === 'block') {
    const out = [];
    for (let i = 0; i < records.length; i += window) {
      const block = records.slice(i, i + window);
      for (let j = block.length - 1; j > 0; j--) {
        const k = rng.int(0, j);
        [block[j], block[k]] = [block[k], block[j]];
      }
      out.push(...block);
    }
    return out;
  }
  if (mode !== 'slide') throw new Error(`unknown mode ${mode}`);
  const keyed = records.map((r, i) => ({ r, key: i + (rng.u32() / 4294967296) * window }));
  keyed.sort((a, b) => a.key - b.key);
  return keyed.map((k) => k.r);
}

/**
 * tcpOf decodes a frame as far as TCP: { conn (the same for both directions), dir (source
 * address and port), seq, syn, ack, fin, rst, len (payload bytes) }, or null when it is not TCP.
 */
export function tcpOf(data, linktype) {
  let off;
  let type;
  if (linktype === 1) {
    off = 12;
    type = data.readUInt16BE(off);
    while (type === 0x8100 || type === 0x88a8 || type === 0x9100) {
      off += 4;
      type = data.readUInt16BE(off);
    }
    off += 2;
  } else if (linktype === 101 || linktype === 12 || linktype === 228 || linktype === 229) {
    off = 0;
    type = (data[0] >> 4) === 6 ? 0x86dd : 0x0800;
  } else if (linktype === 113) {
    off = 16;
    type = data.readUInt16BE(14);
  } else if (linktype === 276) {
    off = 20;
    type = data.readUInt16BE(0);
  } else {
    throw new Error(`link type ${linktype} is not supported`);
  }
  let src;
  let dst;
  let l4;
  let end;
  if (type === 0x0800 && data.length >= off + 20) {
    const ihl = (data[off] & 0x0f) * 4;
    if (data[off + 9] !== 6 || (data.readUInt16BE(off + 6) & 0x3fff) !== 0) return null; // not TCP, or a fragment
    src = data.subarray(off + 12, off + 16).join('.');
    dst = data.subarray(off + 16, off + 20).join('.');
    l4 = off + ihl;
    end = off + data.readUInt16BE(off + 2);
  } else if (type === 0x86dd && data.length >= off + 40) {
    if (data[off + 6] !== 6) return null; // extension headers: not in the harness's traffic
    src = data.subarray(off + 8, off + 24).toString('hex');
    dst = data.subarray(off + 24, off + 40).toString('hex');
    l4 = off + 40;
    end = l4 + data.readUInt16BE(off + 4);
  } else {
    return null;
  }
  if (data.length < l4 + 20) return null;
  const sport = data.readUInt16BE(l4);
  const dport = data.readUInt16BE(l4 + 2);
  const flags = data[l4 + 13];
  const a = `${src}.${sport}`;
  const b = `${dst}.${dport}`;
  return {
    conn: a < b ? `${a}|${b}` : `${b}|${a}`,
    dir: a,
    seq: data.readUInt32BE(l4 + 4),
    syn: (flags & 0x02) !== 0,
    ack: (flags & 0x10) !== 0,
    fin: (flags & 0x01) !== 0,
    rst: (flags & 0x04) !== 0,
    len: Math.max(0, end - l4 - (data[l4 + 12] >> 4) * 4),
  };
}

/** byConnection groups the TCP records' indexes per connection, in capture order. */
function byConnection(pcap) {
  const conns = new Map();
  for (const r of pcap.records) {
    r.tcp = tcpOf(r.data, pcap.linktype);
    if (r.tcp === null) continue;
    const list = conns.get(r.tcp.conn);
    if (list === undefined) conns.set(r.tcp.conn, [r.index]);
    else list.push(r.index);
  }
  return conns;
}

/** placeAfter returns the records sorted by key: their index, or the place each moved one got. */
function placeAfter(records, keys) {
  return records.map((r) => ({ r, key: keys.get(r.index) ?? r.index })).sort((a, b) => a.key - b.key || a.r.index - b.r.index).map((k) => k.r);
}

/** moveSyn moves SYNs and SYN-ACKs after their connection's first data (see the usage above). */
export function moveSyn(pcap, seed, maxMove) {
  const rng = new Rng(seed);
  const keys = new Map();
  const stats = { connections: 0, syn: 0, synAck: 0, both: 0, skipped: 0, dataBefore: {} };
  let turn = 0;
  for (const idx of byConnection(pcap).values()) {
    const recs = idx.map((i) => pcap.records[i]);
    const syn = recs.find((r) => r.tcp.syn && !r.tcp.ack);
    if (syn === undefined) continue;
    const synAck = recs.find((r) => r.tcp.syn && r.tcp.ack && r.tcp.dir !== syn.tcp.dir);
    const data = recs.filter((r) => r.tcp.len > 0 && !r.tcp.syn);
    if (synAck === undefined || data.length === 0) continue;
    stats.connections++;
    const kind = ['syn', 'synAck', 'both'][turn++ % 3];
    const moving = kind === 'syn' ? [syn] : kind === 'synAck' ? [synAck] : [syn, synAck];
    // the furthest data segment (1st to 3rd) that every moving record can reach
    let k = Math.min(rng.int(1, 3), data.length);
    while (k > 0 && data[k - 1].index - syn.index > maxMove) k--;
    if (k === 0) {
      stats.skipped++;
      continue;
    }
    const target = data[k - 1].index;
    moving.forEach((r, j) => keys.set(r.index, target + 0.25 + j * 0.25));
    stats[kind]++;
    stats.dataBefore[k] = (stats.dataBefore[k] ?? 0) + 1;
  }
  return { order: placeAfter(pcap.records, keys), stats };
}

/** swapFin swaps each direction's first FIN and first RST with its data segment before it. */
export function swapFin(pcap, maxMove) {
  const stats = { fin: 0, rst: 0, finWithData: 0, skipped: 0, noDataBefore: 0 };
  const place = pcap.records.map((r) => r);
  for (const idx of byConnection(pcap).values()) {
    const dirs = new Map();
    for (const i of idx) {
      const d = pcap.records[i].tcp.dir;
      const list = dirs.get(d);
      if (list === undefined) dirs.set(d, [i]);
      else list.push(i);
    }
    for (const list of dirs.values()) {
      for (const flag of ['fin', 'rst']) {
        const at = list.findIndex((i) => pcap.records[i].tcp[flag]);
        if (at < 0) continue;
        const f = list[at];
        let before = -1;
        for (let j = at - 1; j >= 0; j--) {
          if (pcap.records[list[j]].tcp.len > 0 && !pcap.records[list[j]].tcp.syn) {
            before = list[j];
            break;
          }
        }
        if (before < 0) {
          stats.noDataBefore++;
          continue;
        }
        // already moved by the other flag (a FIN+RST direction): leave it
        if (place[f].index !== f || place[before].index !== before) continue;
        if (f - before > maxMove) {
          stats.skipped++;
          continue;
        }
        place[before] = pcap.records[f];
        place[f] = pcap.records[before];
        stats[flag]++;
        if (flag === 'fin' && pcap.records[f].tcp.len > 0) stats.finWithData++;
      }
    }
  }
  return { order: place, stats };
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      window: { type: 'string' },
      seed: { type: 'string', default: '1' },
      mode: { type: 'string', default: 'slide' },
      'move-syn': { type: 'boolean', default: false },
      'swap-fin': { type: 'boolean', default: false },
      'max-move': { type: 'string', default: '64' },
      restamp: { type: 'boolean', default: false },
    },
  });
  const ops = [values.window !== undefined, values['move-syn'], values['swap-fin']].filter(Boolean).length;
  if (positionals.length !== 2 || ops !== 1) {
    console.error('usage: shuffle.mjs IN OUT (--window N [--mode slide|block] | --move-syn | --swap-fin) [--seed S] [--max-move N] [--restamp]');
    process.exit(2);
  }
  const [input, output] = positionals;
  const pcap = readPcap(readFileSync(input));
  const seed = Number(values.seed);
  const maxMove = Number(values['max-move']);
  let order;
  let stats;
  if (values.window !== undefined) {
    const window = Number(values.window);
    if (!Number.isInteger(window) || window < 1) throw new Error('--window must be a positive integer');
    order = shuffle(pcap.records, window, seed, values.mode);
    stats = { window, mode: values.mode, seed };
  } else if (values['move-syn']) {
    ({ order, stats } = moveSyn(pcap, seed, maxMove));
  } else {
    ({ order, stats } = swapFin(pcap, maxMove));
  }
  writePcap(output, pcap, order, values.restamp);
  console.log(JSON.stringify({ records: pcap.records.length, ...reorderStats(order), restamp: values.restamp, ...stats }));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main();
  } catch (err) {
    console.error(`shuffle.mjs: ${err.message}`);
    process.exit(1);
  }
}
