// Reads a capture and runs what `pcapflow read` runs before its sink (source -> TcpStreamTransform:
// decode, demux, reassembly), then discards the events, counting them; prints the counts as
// JSON. Its time is the floor of `pcapflow read` with any sink. Used by bench/run.js.
import { Writable } from 'node:stream';
import { openCaptures, TcpStreamTransform } from '../dist/index.js';
import { runPipeline } from '../dist/pipeline.js';

const file = process.argv[2];
let events = 0;
let bytes = 0;
const sink = new Writable({
  objectMode: true,
  highWaterMark: 4,
  write(batch, _enc, cb) {
    events += batch.length;
    for (const e of batch) if (e.type === 'data') bytes += e.data.length;
    cb();
  },
});
const source = openCaptures([file]);
await runPipeline([source, new TcpStreamTransform(), sink], sink);
process.stdout.write(`${JSON.stringify({ events, bytes })}\n`);
