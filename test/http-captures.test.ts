/**
 * The HTTP parser on the shared HTTP captures (../shared/pcaps-app/http: zeek's and
 * suricata-verify's test traces), through the whole read pipeline: per capture, the requests
 * (connection, method, target) and responses (connection, status) must be what tshark 4.0 sees
 * (../shared/pcaps-app/TSHARK-HTTP.tsv), except where a listed reason says otherwise: tshark
 * parses HTTP inside a CONNECT tunnel (pcapflow counts a tunnel, issue 15), and after a gap tshark
 * loses responses that Suricata's or Zeek's own expected outputs (../shared/pcaps-app/expected)
 * have, and so does pcapflow. Read from ../shared, as the captures' licences ask.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/env.js';
import { parseHttpCapture } from './helpers/http-capture.js';

const APP = path.resolve(REPO_ROOT, '../shared/pcaps-app');
const DIR = path.join(APP, 'http');

const gets = (conn: number, ...uris: string[]): string[] => uris.map((u) => `${conn} GET ${u}`);
const statuses = (conn: number, status: number, n: number): string[] => Array.from({ length: n }, () => `${conn} ${status}`);

/** Captures where the expected list is not tshark's, and why. */
const EXPECTED: Record<string, { why: string; list: string[] }> = {
  'suricata-verify__http-connect-then-get.pcap': { why: 'the GET is inside the CONNECT tunnel: counted, not parsed', list: ['0 CONNECT abc:443', '0 200'] },
  'suricata-verify__http-connect-split-tunnel-request.pcap': { why: 'the GET is inside the CONNECT tunnel: counted, not parsed', list: ['0 CONNECT abc:443', '0 200'] },
  'suricata-verify__http-gap-beyond-body.pcap': { why: "Suricata's test.yaml: /1 answered 200, /2 and /3 without a status", list: [...gets(0, '/1', '/2', '/3'), '0 200'] },
  'suricata-verify__http-gap-simple.pcap': { why: "Suricata's test.yaml: /1, /2 and /3 each answered 200", list: [...gets(0, '/1', '/2', '/3'), ...statuses(0, 200, 3)] },
  'suricata-verify__http-gap-whole-body.pcap': { why: "Suricata's test.yaml: /1, /2 and /3 each answered 200", list: [...gets(0, '/1', '/2', '/3'), ...statuses(0, 200, 3)] },
  'suricata-verify__http-pipelined-chunked-with-gap.pcap': {
    why: "Suricata's test.yaml (http-pipeline-files-with-gap): three responses, one body with a gap",
    list: [
      ...gets(0, '/', '/wp-content/themes/wall-street/js/skip-link-focus-fix.js?ver=1.1.4', '/wp-content/uploads/2015/04/NSL-InvestorPitch-9.007-420x420.jpg'),
      ...statuses(0, 200, 3),
    ],
  },
  'suricata-verify__http-206-range-sequential-file.pcap': {
    why: "Suricata's test.yaml (http-range-file) puts the file together from all 15 ranges",
    list: [...gets(0, ...Array<string>(15).fill('/z4d4kWk.jpg')), ...statuses(0, 206, 15)],
  },
  'zeek__http-206-concurrent-range-requests.pcap': {
    why: "Zeek's http.log: three 206 responses",
    list: [...gets(0, '/100MB.bin'), ...gets(1, '/100MB.bin'), ...gets(2, '/100MB.bin'), '0 206', '1 206', '2 206'],
  },
  'zeek__http-261-chunk-size-2pow64-overflow.pcap': { why: "Zeek's http.log: the POST and the smuggled GET", list: ['0 POST /', '0 GET /smuggled-chunk-2pow64'] },
  'zeek__http-content-range-gap.pcap': { why: 'Zeek extracts the 206 body (expected extract_files.thefile)', list: ['0 GET /images/misc/static/2012/11/ifdata-welcome-0.png', '0 206'] },
  'zeek__http-entity-gap.pcap': { why: "Zeek's entity_data: the 200 response's body around the gap", list: ['0 GET /download/CHANGES.bro-aux.txt', '0 200'] },
};

/** tshark's requests and responses of `file` (a frame may hold two requests: `POST|GET`). */
function tsharkList(rows: string[][], file: string): string[] {
  return rows
    .filter((r) => r[0] === `http/${file}` && (r[3] !== '' || r[6] !== ''))
    .flatMap((r) => (r[3] !== '' ? r[3]!.split('|').map((m, i) => `${r[1]} ${m} ${r[4]!.split('|')[i]}`) : r[6]!.split('|').map((code) => `${r[1]} ${code}`)));
}

const have = existsSync(DIR);

describe.skipIf(!have)('HTTP on the shared captures, against tshark, Suricata and Zeek', () => {
  it('finds the requests and responses they find', { timeout: 120_000 }, async () => {
    const rows = readFileSync(path.join(APP, 'TSHARK-HTTP.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
    const files = readdirSync(DIR).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
    expect(files.length).toBeGreaterThanOrEqual(40);
    let requests = 0;
    for (const f of files) {
      const { out, parser } = await parseHttpCapture(path.join(DIR, f));
      const mine = out.flatMap((e) => (e.type === 'http_request' ? [`${e.conn} ${e.method} ${e.uri}`] : e.type === 'http_response' ? [`${e.conn} ${e.status}`] : []));
      const want = EXPECTED[f]?.list ?? tsharkList(rows, f);
      expect([...mine].sort(), `${f}${EXPECTED[f] ? ` (${EXPECTED[f].why})` : ''}`).toEqual([...want].sort());
      expect(parser.stats.heldBytes, f).toBe(0);
      requests += parser.stats.requests;
    }
    expect(requests).toBeGreaterThanOrEqual(148); // 148 requests in all, as found when this test was written
    for (const f of Object.keys(EXPECTED)) expect(files, 'every listed capture is there').toContain(f);
  });
});
