// Reads a capture with pcapflow's library pipeline and discards what comes out, counting it;
// prints the counts as JSON. Used by bench/run.js for the floors of `pcapflow read`:
//   node bench/decode.js F              source -> one-pass decoder (down to TCP)
//   node bench/decode.js F reassemble   source -> TcpStreamTransform (decode, demux, reassembly):
//                                       what `pcapflow read` does before any sink
import { Writable } from 'node:stream';
import { openCaptures, PacketDecodeTransform, TcpStreamTransform } from '../dist/index.js';
import { runPipeline } from '../dist/pipeline.js';

const [file, mode] = process.argv.slice(2);
const reassemble = mode === 'reassemble';
let items = 0;
let bytes = 0;
const sink = new Writable({
  objectMode: true,
  highWaterMark: 4,
  write(batch, _enc, cb) {
    items += batch.length;
    for (const x of batch) bytes += reassemble ? (x.type === 'data' ? x.data.length : 0) : x.payloadLen;
    cb();
  },
});
const stage = reassemble ? new TcpStreamTransform() : new PacketDecodeTransform();
await runPipeline([openCaptures([file]), stage, sink], sink);
process.stdout.write(`${JSON.stringify(reassemble ? { events: items, bytes } : { packets: items, payload: bytes })}\n`);
