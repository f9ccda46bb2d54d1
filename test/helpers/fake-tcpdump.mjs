#!/usr/bin/env node
// A stand-in for tcpdump in the tests of the tcpdump backend (test/tcpdump-source.test.ts), run
// through PCAPFLOW_TCPDUMP: it says what tcpdump 4.99 says on stderr and writes the pcap named by
// FAKE_TCPDUMP_PCAP to stdout as `tcpdump -U -w -` would. The device chooses the behaviour:
//   nodev: no such device (exit 1); weird: a link type pcapflow does not decode; crash: dies
//   (exit 2) after the capture; slow: one record at a time, 20 ms apart; anything else: the
//   capture, then on SIGINT libpcap's statistics and exit 0.
// A filter of "bad filter" is a syntax error (exit 1). FAKE_TCPDUMP_ARGS: a file to save argv in.
import { readFileSync, writeFileSync } from 'node:fs';

const argv = process.argv.slice(2);
if (process.env.FAKE_TCPDUMP_ARGS) writeFileSync(process.env.FAKE_TCPDUMP_ARGS, JSON.stringify(argv));
const device = argv[argv.indexOf('-i') + 1];
const filter = argv.includes('--') ? argv[argv.indexOf('--') + 1] : '';
const say = (s) => process.stderr.write(s);

if (device === 'nodev') {
  say('tcpdump: nodev: No such device exists\n(SIOCGIFHWADDR: No such device)\n');
  process.exit(1);
}
if (filter === 'bad filter') {
  say('tcpdump: can\'t parse filter expression: syntax error\n');
  process.exit(1);
}
const pcap = readFileSync(process.env.FAKE_TCPDUMP_PCAP);
say('tcpdump: WARNING: any: That device doesn\'t support promiscuous mode\n');
say(`tcpdump: listening on ${device}, link-type ${device === 'weird' ? 'DOCSIS' : 'EN10MB'} (Ethernet), snapshot length 65535 bytes\n`);
process.on('SIGINT', () => {
  say('\n9 packets captured\n10 packets received by filter\n1 packet dropped by kernel\n');
  process.exit(0);
});
if (device === 'slow') {
  // the file header, then each record on its own
  process.stdout.write(pcap.subarray(0, 24));
  let off = 24;
  const next = () => {
    if (off >= pcap.length) return;
    const len = pcap.readUInt32LE(off + 8);
    process.stdout.write(pcap.subarray(off, off + 16 + len));
    off += 16 + len;
    setTimeout(next, 20);
  };
  next();
} else {
  process.stdout.write(pcap, () => {
    if (device === 'crash') {
      say('tcpdump: pcap_loop: The interface disappeared\n');
      process.exit(2);
    }
  });
}
setInterval(() => {}, 1000);
