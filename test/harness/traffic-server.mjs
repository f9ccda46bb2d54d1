#!/usr/bin/env node
/**
 * traffic-server: the harness's TCP server. Run inside the server namespace:
 *
 *   node traffic-server.mjs --log DIR --hosts 10.201.0.2,fd00:201::2 [--port 8080] [--banner-port 8081]
 *
 * On --port each connection starts with the client's 24-byte header (traffic-common.mjs), which
 * says how many bytes to expect, how many to send back and how the connection ends:
 *   basic       send s2c bytes at once (while still receiving), then end()
 *   halfclose   wait for the client's FIN, then send s2c bytes in spaced chunks, then end()
 *   rst-client  read all c2s bytes, send s2c bytes, then wait for the client's RST
 *   rst-server  read all c2s bytes, send s2c bytes, wait for the client's FIN, then reset
 *   s2c-empty   send nothing; end() after the client's FIN
 * On --banner-port the server speaks first: a pseudo-random number of bytes, then end(); the
 * client writes nothing.
 * Every byte written is logged by ConnLog. Prints "ready" once listening; SIGTERM stops it.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { ConnLog, HEADER_LEN, Rng, decodeHeader, writeAll, sleep } from './traffic-common.mjs';

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    hosts: { type: 'string' },
    port: { type: 'string', default: '8080' },
    'banner-port': { type: 'string', default: '8081' },
    seed: { type: 'string', default: '1' },
  },
});
if (!values.log || !values.hosts) {
  console.error('usage: traffic-server.mjs --log DIR --hosts IP[,IP] [--port P] [--banner-port P]');
  process.exit(2);
}
const logDir = values.log;
const seed = Number(values.seed);
let connCount = 0;
const live = new Set();

/** track wires the common socket events into a ConnLog and returns helpers for the modes. */
function track(socket) {
  const log = new ConnLog(logDir, 'server', connCount++, socket, false);
  live.add(log);
  const state = { log, reset: false, ended: false, endWaiters: [], recvWaiters: [], closed: false };
  socket.on('end', () => {
    state.ended = true;
    for (const w of state.endWaiters.splice(0)) w();
  });
  socket.on('error', (err) => {
    state.error = err;
  });
  socket.on('close', () => {
    state.closed = true;
    live.delete(log);
    const err = state.error;
    let end = 'fin';
    if (state.reset) end = 'rst-sent';
    else if (err && err.code === 'ECONNRESET') end = 'rst-received';
    else if (err) end = 'error';
    log.finish(end, end === 'error' ? String(err && err.code ? err.code : err) : '');
    for (const w of state.endWaiters.splice(0)) w();
    for (const w of state.recvWaiters.splice(0)) w.resolve();
  });
  state.waitEnd = () => (state.ended || state.closed ? Promise.resolve() : new Promise((r) => state.endWaiters.push(r)));
  return state;
}

function onRequest(socket) {
  socket.setNoDelay(connCount % 3 === 0);
  const st = track(socket);
  const log = st.log;
  let head = Buffer.alloc(0);
  let header = null;
  let got = 0;
  let c2sDone = null;
  const c2sReached = new Promise((r) => (c2sDone = r));
  socket.on('data', (chunk) => {
    log.received(chunk);
    got += chunk.length;
    if (header === null) {
      head = Buffer.concat([head, chunk]);
      if (head.length < HEADER_LEN) return;
      try {
        header = decodeHeader(head);
      } catch (err) {
        log.finish('error', String(err.message));
        socket.destroy();
        return;
      }
      log.rec.id = header.id;
      log.rec.mode = header.mode;
      run(header).catch((err) => {
        st.error = st.error ?? err;
        socket.destroy();
      });
    }
    if (header !== null && got >= header.c2s) c2sDone();
  });

  async function run(h) {
    const body = new Rng(h.seed ^ 0x5eed5eed).bytes(h.s2c);
    const chunks = new Rng(h.seed ^ 0x0c0ffee0);
    switch (h.mode) {
      case 'basic':
        await writeAll(socket, log, body, chunks);
        socket.end();
        break;
      case 'halfclose': {
        await st.waitEnd();
        const parts = chunks.int(3, 6);
        let off = 0;
        for (let i = 0; i < parts; i++) {
          const end = i === parts - 1 ? body.length : Math.min(body.length, off + Math.ceil(body.length / parts));
          await writeAll(socket, log, body.subarray(off, end), chunks);
          off = end;
          await sleep(chunks.int(10, 40));
        }
        socket.end();
        break;
      }
      case 'rst-client':
        await c2sReached;
        await writeAll(socket, log, body, chunks);
        break; // the client resets once it has read everything
      case 'rst-server':
        await c2sReached;
        await writeAll(socket, log, body, chunks);
        await st.waitEnd();
        st.reset = true;
        socket.resetAndDestroy();
        break;
      case 's2c-empty':
        await st.waitEnd();
        socket.end();
        break;
    }
  }
}

function onBanner(socket) {
  const st = track(socket);
  const n = connCount;
  const rng = new Rng((seed * 7919 + n * 104729) >>> 0);
  const body = rng.bytes(rng.int(1, 200_000));
  st.log.rec.mode = 'banner';
  socket.on('data', (chunk) => st.log.received(chunk));
  writeAll(socket, st.log, body, rng)
    .then(() => socket.end())
    .catch((err) => {
      st.error = st.error ?? err;
      socket.destroy();
    });
}

const servers = [];
let listening = 0;
const hosts = values.hosts.split(',');
for (const host of hosts) {
  for (const [port, handler] of [
    [Number(values.port), onRequest],
    [Number(values['banner-port']), onBanner],
  ]) {
    const srv = net.createServer({ allowHalfOpen: true }, handler);
    srv.on('error', (err) => {
      console.error(`traffic-server: ${host}:${port}: ${err.message}`);
      process.exit(1);
    });
    srv.listen({ host, port, backlog: 1024 }, () => {
      if (++listening === hosts.length * 2) console.log('ready');
    });
    servers.push(srv);
  }
}

process.on('SIGTERM', () => {
  for (const srv of servers) srv.close();
  for (const log of live) log.finish('error', 'server stopped');
  process.exit(0);
});
