// npm run bench: pcapflow's benchmark. It makes its captures itself (bench/synth.js, into
// bench/data/, reused when present), then runs each command of each scenario several times,
// alternating the commands run by run so that drift in machine speed hits them alike, and
// reports medians: wall seconds, MB/s of capture, packets/s, peak RSS, and the ratio of each
// command's time to the scenario's reference. Whole processes are timed with /usr/bin/time.
//
//   npm run bench                 all scenarios, 5 runs each
//   npm run bench -- --runs 3 --only decode
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCapture } from './synth.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DATA = path.join(HERE, 'data');
const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(flag('runs', 5));
const ONLY = flag('only', '');

const have = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/** Scenarios: a capture recipe and the commands to compare; the first command is the reference. */
const SCENARIOS = [
  {
    name: 'decode',
    what: 'read + decode down to TCP, one bulk connection (MTU-size packets)',
    capture: { file: 'bulk-300m.pcap', conns: 1, bytesPerConn: 300 * 1024 * 1024, mss: 1448 },
    commands: [
      { name: 'node read loop (floor)', argv: (f) => ['node', path.join(HERE, 'read-loop.js'), f] },
      { name: 'pcapflow read+decode', argv: (f) => ['node', path.join(HERE, 'decode.js'), f] },
    ],
  },
];

function ensureCapture(spec) {
  mkdirSync(DATA, { recursive: true });
  const file = path.join(DATA, spec.file);
  if (!existsSync(file)) {
    process.stderr.write(`bench: writing ${file} ...\n`);
    return writeCapture(file, spec).then(() => file);
  }
  return Promise.resolve(file);
}

function timeOnce(argv) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', ...argv], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [wall, rssKb] = last.split(' ').map(Number);
  return { wall, rssMb: rssKb / 1024, stdout: r.stdout };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

function countPackets(file) {
  const out = execFileSync('node', [path.join(HERE, 'decode.js'), file], { encoding: 'utf8' });
  return JSON.parse(out).packets;
}

const nodeVersion = process.version;
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${nodeVersion}`;
console.log(`machine: ${machine}`);
console.log(`runs per command: ${RUNS} (medians; commands alternate run by run)\n`);

for (const sc of SCENARIOS) {
  if (ONLY && !sc.name.includes(ONLY)) continue;
  const file = await ensureCapture(sc.capture);
  const size = statSync(file).size;
  const packets = countPackets(file);
  const commands = sc.commands.filter((c) => !c.needs || have(c.needs));
  const results = commands.map(() => []);
  for (const c of commands) timeOnce(c.argv(file)); // warm-up (page cache, JIT)
  for (let r = 0; r < RUNS; r++) {
    commands.forEach((c, i) => results[i].push(timeOnce(c.argv(file))));
  }
  console.log(`## ${sc.name}: ${sc.what}`);
  console.log(`capture: ${path.basename(file)}, ${(size / 1e6).toFixed(0)} MB, ${packets} packets\n`);
  console.log('| command | wall s (median) | MB/s | packets/s | peak RSS MB | time ratio to first |');
  console.log('|---|---|---|---|---|---|');
  const refWall = median(results[0].map((x) => x.wall));
  commands.forEach((c, i) => {
    const wall = median(results[i].map((x) => x.wall));
    const rss = median(results[i].map((x) => x.rssMb));
    console.log(
      `| ${c.name} | ${wall.toFixed(2)} | ${(size / 1e6 / wall).toFixed(0)} | ${(packets / wall / 1e6).toFixed(2)} M | ${rss.toFixed(0)} | ${(wall / refWall).toFixed(2)} |`,
    );
  });
  console.log('');
}
