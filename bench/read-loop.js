// The floor: read a file through a Node fs stream in 1 MiB chunks and do nothing with it.
import { createReadStream } from 'node:fs';

let bytes = 0;
for await (const chunk of createReadStream(process.argv[2], { highWaterMark: 1 << 20 })) bytes += chunk.length;
process.stdout.write(`${JSON.stringify({ bytes })}\n`);
