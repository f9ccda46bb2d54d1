// node_pcap's TCPTracker over a capture, for comparison (bench-only; npm package `pcap` 3.x installed
// into bench/node_pcap/ by bench/run.js). libpcap reads the file (pcap.createOfflineSession), each
// packet is decoded with pcap.decode.packet and given to TCPTracker.track_packet; the bytes of the
// 'data send' / 'data recv' events are counted per session. Prints {packets, sessions, bytes}.
// node_pcap reuses one packet buffer, so everything is counted inside the handler.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, 'node_pcap', 'package.json'));
const pcap = require('pcap');

const file = process.argv[2];
const tracker = new pcap.TCPTracker();
let packets = 0;
let sessions = 0;
let bytes = 0;
const perSession = new Map();
tracker.on('session', (session) => {
  sessions++;
  const key = `${session.src}-${session.dst}`;
  perSession.set(key, 0);
  const count = (_s, data) => {
    bytes += data.length;
    perSession.set(key, perSession.get(key) + data.length);
  };
  session.on('data send', count);
  session.on('data recv', count);
});
const capture = pcap.createOfflineSession(file, {});
capture.on('packet', (raw) => {
  packets++;
  tracker.track_packet(pcap.decode.packet(raw));
});
capture.on('complete', () => {
  process.stdout.write(`${JSON.stringify({ packets, sessions, bytes })}\n`);
});
