#!/usr/bin/env node
/**
 * traffic-client: the harness's TCP client. Run inside the client namespace:
 *
 *   node traffic-client.mjs --log DIR --targets 10.201.0.2,fd00:201::2 --count N [--large L]
 *        [--concurrency C] [--seed S] [--port 8080] [--banner-port 8081]
 *
 * Makes N connections (alternating over the targets, C at a time) plus L large ones (1-5 MB in
 * one direction). Sizes, modes and bytes come from the seed; see traffic-server.mjs for the
 * modes. Every byte written is logged by ConnLog (traffic-common.mjs). Exits 0 when every
 * connection ended as its mode says, 1 otherwise (the logs are complete either way).
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { ConnLog, HEADER_LEN, MODES, Rng, encodeHeader, writeAll } from './traffic-common.mjs';

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    targets: { type: 'string' },
    count: { type: 'string', default: '200' },
    large: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '24' },
    seed: { type: 'string', default: '1' },
    port: { type: 'string', default: '8080' },
    'banner-port': { type: 'string', default: '8081' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
if (!values.log || !values.targets) {
  console.error('usage: traffic-client.mjs --log DIR --targets IP[,IP] --count N');
  process.exit(2);
}
const logDir = values.log;
const targets = values.targets.split(',');
const seed = Number(values.seed);
const timeoutMs = Number(values['timeout-ms']);

/** plan: every connection's target, mode and sizes, from the seed alone. */
function plan() {
  const rng = new Rng(seed);
  const out = [];
  const count = Number(values.count);
  const pickSize = () => {
    const r = rng.int(0, 99);
    if (r < 8) return 0;
    if (r < 60) return rng.int(1, 4096);
    if (r < 90) return rng.int(4097, 65536);
    return rng.int(65537, 300_000);
  };
  for (let i = 0; i < count; i++) {
    const host = targets[i % targets.length];
    if (i % 10 === 9) {
      out.push({ id: i, host, mode: 'banner' });
      continue;
    }
    const r = rng.int(0, 99);
    const mode = r < 40 ? 'basic' : r < 60 ? 'halfclose' : r < 75 ? 'rst-client' : r < 90 ? 'rst-server' : 's2c-empty';
    const c2s = HEADER_LEN + pickSize();
    // rst-client needs s2c bytes: the client resets only once it has read them all, and the
    // server sends them only after reading all c2s bytes, so nothing is in flight at the RST.
    const s2c = mode === 's2c-empty' ? 0 : mode === 'rst-client' ? Math.max(1, pickSize()) : pickSize();
    out.push({ id: i, host, mode, c2s, s2c, seed: rng.u32() });
  }
  const large = Number(values.large);
  for (let j = 0; j < large; j++) {
    const big = rng.int(1_000_000, 5_000_000);
    const small = rng.int(1, 200_000);
    out.push({
      id: count + j,
      host: targets[j % targets.length],
      mode: j % 2 === 0 ? 'basic' : 'halfclose',
      c2s: HEADER_LEN + (j % 4 < 2 ? big : small),
      s2c: j % 4 < 2 ? small : big,
      seed: rng.u32(),
    });
  }
  return out;
}

let connCount = 0;

/** runOne makes one connection and resolves to true when it ended as its mode says. */
function runOne(p) {
  return new Promise((resolve) => {
    const port = Number(p.mode === 'banner' ? values['banner-port'] : values.port);
    const socket = net.connect({ host: p.host, port, allowHalfOpen: true });
    let log = null;
    let error = null;
    let reset = false;
    let received = 0;
    let onAllReceived = null;
    const timer = setTimeout(() => {
      error = new Error('timeout');
      socket.destroy();
    }, timeoutMs);
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('data', (chunk) => {
      log.received(chunk);
      received += chunk.length;
      if (onAllReceived !== null && received >= p.s2c) {
        const f = onAllReceived;
        onAllReceived = null;
        f();
      }
    });
    const allReceived = () =>
      received >= p.s2c ? Promise.resolve() : new Promise((r) => (onAllReceived = r));
    socket.on('close', () => {
      clearTimeout(timer);
      let end = 'fin';
      if (reset) end = 'rst-sent';
      else if (error && error.code === 'ECONNRESET') end = 'rst-received';
      else if (error) end = 'error';
      if (log === null) {
        console.error(`traffic-client: connection ${p.id} to ${p.host}: ${error ? error.message : 'closed'}`);
        resolve(false);
        return;
      }
      log.finish(end, end === 'error' ? String(error.code ?? error.message) : '');
      const want = p.mode === 'rst-client' ? 'rst-sent' : p.mode === 'rst-server' ? 'rst-received' : 'fin';
      if (end !== want) console.error(`traffic-client: connection ${p.id} (${p.mode}) ended ${end}, expected ${want}`);
      resolve(end === want);
    });
    socket.on('connect', () => {
      socket.setNoDelay(p.id % 4 === 0);
      log = new ConnLog(logDir, 'client', connCount++, socket, true);
      log.rec.id = p.id;
      log.rec.mode = p.mode;
      if (p.mode === 'banner') {
        socket.on('end', () => socket.end());
        return;
      }
      const chunks = new Rng(p.seed ^ 0x7a7a7a7a);
      const body = Buffer.concat([encodeHeader(p), new Rng(p.seed).bytes(p.c2s - HEADER_LEN)]);
      (async () => {
        await writeAll(socket, log, body, chunks);
        switch (p.mode) {
          case 'rst-client':
            await allReceived();
            reset = true;
            socket.resetAndDestroy();
            break;
          case 'rst-server':
            await allReceived();
            socket.end();
            break;
          default:
            socket.end();
        }
      })().catch((err) => {
        error = error ?? err;
        socket.destroy();
      });
    });
  });
}

const plans = plan();
if (!MODES.every((m) => plans.some((p) => p.mode === m))) console.error('traffic-client: some mode is unused (count too small)');
let next = 0;
let failed = 0;
async function worker() {
  while (next < plans.length) {
    const p = plans[next++];
    if (!(await runOne(p))) failed++;
  }
}
const t0 = Date.now();
await Promise.all(Array.from({ length: Math.min(Number(values.concurrency), plans.length) }, worker));
console.log(JSON.stringify({ connections: plans.length, failed, ms: Date.now() - t0 }));
process.exitCode = failed === 0 ? 0 : 1;
