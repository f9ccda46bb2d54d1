// Reads and decodes a capture down to TCP with pcapflow's library pipeline (source -> one-pass
// decoder -> a sink that only counts), and prints what it saw as JSON. Used by bench/run.js.
import { Writable } from 'node:stream';
import { openCaptures, PacketDecodeTransform } from '../dist/index.js';
import { runPipeline } from '../dist/pipeline.js';

const file = process.argv[2];
let packets = 0;
let payload = 0;
const sink = new Writable({
  objectMode: true,
  highWaterMark: 4,
  write(batch, _enc, cb) {
    packets += batch.length;
    for (const p of batch) payload += p.payloadLen;
    cb();
  },
});
const source = openCaptures([file]);
const decode = new PacketDecodeTransform();
await runPipeline([source, decode, sink], sink);
process.stdout.write(`${JSON.stringify({ packets, payload })}\n`);
