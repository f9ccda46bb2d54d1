/**
 * Oracle (b) of issue 15: Node's own HTTP parser (llhttp). Every client stream of the shared HTTP
 * captures that has no gap is replayed into a real `http.createServer` on loopback, which answers
 * each request at once so that pipelined ones are parsed in turn; the requests Node parses
 * (method, target, body bytes) must be the ones pcapflow's parser finds in the same stream. A
 * stream Node refuses (llhttp is strict) must be one listed in REFUSED (with llhttp's error code),
 * and the requests Node parsed before refusing must be pcapflow's first ones.
 */
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/env.js';
import { parseHttpCapture } from './helpers/http-capture.js';

const DIR = path.resolve(REPO_ROOT, '../shared/pcaps-app/http');

interface ClientStream {
  conn: number;
  bytes: Buffer;
  gaps: number;
}

/** The capture's client streams (without gaps), and pcapflow's requests per connection. */
async function capture(file: string): Promise<{ streams: ClientStream[]; mine: Map<number, string[]> }> {
  const parts = new Map<number, ClientStream & { chunks: Buffer[] }>();
  const { out: events } = await parseHttpCapture(file, (batch) => {
    for (const e of batch) {
      if ((e.type !== 'data' && e.type !== 'gap') || e.dir !== 'c2s') continue;
      let s = parts.get(e.conn);
      if (s === undefined) parts.set(e.conn, (s = { conn: e.conn, bytes: Buffer.alloc(0), gaps: 0, chunks: [] }));
      if (e.type === 'gap') s.gaps++;
      else s.chunks.push(Buffer.from(e.data));
    }
  });
  const bodies = new Map<string, number>();
  for (const e of events) if (e.type === 'http_end' && e.dir === 'c2s') bodies.set(`${e.conn}#${e.seq}`, e.bodyBytes);
  const mine = new Map<number, string[]>();
  for (const e of events) {
    if (e.type !== 'http_request') continue;
    const list = mine.get(e.conn) ?? [];
    list.push(`${e.method} ${e.uri} ${bodies.get(`${e.conn}#${e.seq}`) ?? 0}`);
    mine.set(e.conn, list);
  }
  return { streams: [...parts.values()].map((s) => ({ conn: s.conn, gaps: s.gaps, bytes: Buffer.concat(s.chunks) })), mine };
}

/**
 * The streams llhttp refuses, with its error code: each a form a passive observer must still
 * read (the peers did), or a smuggling case whose requests Zeek also reports.
 */
const REFUSED: Record<string, string> = {
  // HTTP/1.0 requests pipelined without keep-alive: Node would close after the first
  'suricata-verify__http-gap-beyond-body.pcap#0': 'HPE_CLOSED_CONNECTION',
  'suricata-verify__http-gap-simple.pcap#0': 'HPE_CLOSED_CONNECTION',
  'suricata-verify__http-gap-whole-body.pcap#0': 'HPE_CLOSED_CONNECTION',
  // request smuggling and obfuscated framing (Zeek's 261 traces: Zeek logs both requests)
  'zeek__http-261-chunk-size-2pow64-overflow.pcap#0': 'HPE_INVALID_CHUNK_SIZE',
  'zeek__http-261-multi-value-te.pcap#0': 'HPE_INVALID_TRANSFER_ENCODING',
  'zeek__http-261-te-cl-desync.pcap#0': 'HPE_INVALID_CONTENT_LENGTH',
  'suricata-verify__http-head-obfuscated-te.pcap#0': 'HPE_INVALID_TRANSFER_ENCODING',
  // a bare LF after a chunk extension; `CONNECT host:25 / HTTP/1.0` (four words)
  'suricata-verify__http-chunk-extension-bare-lf.pcap#0': 'HPE_INVALID_VERSION',
  'zeek__http-connect-smtp-tunnel.pcap#0': 'HPE_INVALID_CONSTANT',
};

/** nodeParses: the requests Node's server parses from `bytes`, and llhttp's error code when it refuses them. */
async function nodeParses(bytes: Buffer): Promise<{ got: string[]; refused: string | null }> {
  const got: string[] = [];
  let refused: string | null = null;
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      got.push(`${req.method} ${req.url} ${n}`);
      res.writeHead(204).end();
    });
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    got.push(`${req.method} ${req.url} 0`);
    socket.destroy();
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    got.push(`${req.method} ${req.url} 0`);
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    refused = err.code ?? 'clientError';
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.end(bytes));
    c.resume();
    c.on('close', () => resolve());
    c.on('error', () => resolve());
    setTimeout(() => c.destroy(), 3000).unref();
  });
  await new Promise<void>((r) => server.close(() => r()));
  return { got, refused };
}

describe.skipIf(!existsSync(DIR))("HTTP requests against Node's own parser (llhttp)", () => {
  it('finds the requests Node finds in every whole client stream of the shared captures', { timeout: 180_000 }, async () => {
    const files = readdirSync(DIR).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
    let compared = 0;
    const refused: Record<string, string> = {};
    for (const f of files) {
      const { streams, mine } = await capture(path.join(DIR, f));
      for (const s of streams) {
        if (s.gaps > 0 || s.bytes.length === 0) continue;
        const node = await nodeParses(s.bytes);
        const ours = mine.get(s.conn) ?? [];
        const where = `${f}#${s.conn}`;
        // Node stops at a request it hands to 'connect' or 'upgrade', or at the fault it refuses
        expect(ours.slice(0, node.got.length), where).toEqual(node.got);
        if (node.refused !== null) refused[where] = node.refused;
        else if (!node.got.some((t) => t.startsWith('CONNECT ')) && !/upgrade/i.test(s.bytes.toString('latin1'))) expect(ours, where).toEqual(node.got);
        compared++;
      }
    }
    // which streams llhttp refuses is the contract; its codes (as of Node 20.20) may move between releases
    expect(Object.keys(refused).sort()).toEqual(Object.keys(REFUSED).sort());
    console.log(`http oracle (Node): ${compared} whole client streams, ${Object.keys(refused).length} of them refused by llhttp (listed)`);
    expect(compared).toBeGreaterThanOrEqual(40);
  });
});
