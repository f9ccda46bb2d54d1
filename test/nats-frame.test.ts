/**
 * NatsWireEncoder's frames (WireMessage.frame): each message as the NATS client protocol publishes
 * it, which NatsSink hands to the client's socket as it is (runs of adjacent frames, no copy). No
 * server here: the frames are parsed back as a server would read them (HPUB line, header block of
 * HLEN bytes, payload to TLEN, CRLF), the header block compared with the client library's own
 * encoding of the same headers, and every payload decoded back to the events.
 */
import { MsgHdrsImpl } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/events.js';
import { decodeNatsMessage, NatsWireEncoder, RunAssembler, type WireMessage } from '../src/core/nats-wire.js';
import { closeEvent, dataEvent, endpoints, gapEvent, openEvent, pattern } from './helpers/sink-events.js';

interface Parsed {
  subject: string;
  reply: string | null;
  headerText: string;
  payload: Uint8Array;
}

/** parseFrames reads `bytes` as a sequence of HPUB frames, as nats-server does; throws on anything else. */
function parseFrames(bytes: Uint8Array): Parsed[] {
  const out: Parsed[] = [];
  const text = (a: number, b: number): string => Buffer.from(bytes.subarray(a, b)).toString('latin1');
  let at = 0;
  while (at < bytes.length) {
    const eol = bytes.indexOf(0x0d, at);
    if (eol < 0 || bytes[eol + 1] !== 0x0a) throw new Error(`no line end after ${at}`);
    const words = text(at, eol).split(' ');
    if (words[0] !== 'HPUB' || (words.length !== 4 && words.length !== 5)) throw new Error(`not an HPUB line: ${text(at, eol)}`);
    const hlen = Number(words.at(-2));
    const tlen = Number(words.at(-1));
    if (!Number.isSafeInteger(hlen) || !Number.isSafeInteger(tlen) || hlen > tlen) throw new Error(`bad lengths: ${text(at, eol)}`);
    const start = eol + 2;
    if (start + tlen + 2 > bytes.length || bytes[start + tlen] !== 0x0d || bytes[start + tlen + 1] !== 0x0a) throw new Error(`no CRLF after the ${tlen} bytes at ${start}`);
    out.push({ subject: words[1]!, reply: words.length === 5 ? words[2]! : null, headerText: text(start, start + hlen), payload: bytes.subarray(start + hlen, start + tlen) });
    at = start + tlen + 2;
  }
  return out;
}

/** The header block the client library writes for `m` (what nc.publish would send). */
function clientHeaderBlock(m: WireMessage): string {
  const h = new MsgHdrsImpl();
  h.set('Nats-Msg-Id', m.msgId);
  for (const [k, v] of m.headers) h.set(k, v);
  return Buffer.from(h.encode()).toString('latin1');
}

/** events: three connections, every event type, packs, a multi-byte field, and a data event cut in parts. */
function sampleEvents(): StreamEvent[] {
  const events: StreamEvent[] = [];
  for (let c = 0; c < 3; c++) {
    const { client, server } = endpoints(c);
    const open = openEvent(c, client, server);
    events.push(open);
    for (let i = 0; i < 40; i++) events.push(dataEvent(c, 'c2s', i * 1448, pattern(c, 'c2s', i * 1448, 1448)));
    events.push(gapEvent(c, 's2c', 0, 100));
    events.push(dataEvent(c, 's2c', 100, pattern(c, 's2c', 100, c === 1 ? 300_000 : 500)));
    events.push({ ...closeEvent(open, 40 * 1448, 0), note: 'é ✓' } as unknown as StreamEvent);
  }
  return events;
}

describe('nats-wire frames', () => {
  for (const reply of ['_INBOX.abc.', undefined]) {
    it(`frames every message as HPUB with the client's header block (${reply === undefined ? 'no reply' : 'reply subject INBOX.SEQ'}), and the frames decode back to the events`, () => {
      const events = sampleEvents();
      const enc = new NatsWireEncoder({ prefix: 'pf', runId: 'fr', maxDataBytes: 64 * 1024, ...(reply === undefined ? {} : { reply }) });
      const msgs: WireMessage[] = [];
      for (const e of events) enc.encode(e, msgs);
      msgs.push(...enc.end());
      expect(enc.cut).toBe(1);
      const asm = new RunAssembler();
      const out: StreamEvent[] = [];
      for (const m of msgs) {
        const [p, ...rest] = parseFrames(m.frame);
        expect(rest).toHaveLength(0);
        expect(p!.subject).toBe(m.subject);
        expect(p!.reply).toBe(reply === undefined ? null : `${reply}${m.seq}`);
        expect(p!.headerText).toBe(clientHeaderBlock(m));
        expect(Buffer.from(m.headerBlock).toString('latin1')).toBe(p!.headerText);
        expect(Buffer.compare(p!.payload, m.payload)).toBe(0);
        // views of the frame, not copies
        expect(m.payload.buffer).toBe(m.frame.buffer);
        expect(m.headerBlock.buffer).toBe(m.frame.buffer);
        asm.push(decodeNatsMessage(p!.subject, p!.payload, 1), (e) => out.push(e.type === 'data' ? { ...e, data: Uint8Array.from(e.data) } : e));
      }
      expect(asm.complete).toBe(true);
      const key = (e: StreamEvent): string => JSON.stringify(e, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
      expect(out.map(key)).toEqual(events.map(key));
    });
  }

  it('carves frames one after the other, so that a run of them is one view the server reads as those messages', () => {
    const enc = new NatsWireEncoder({ prefix: 'pf', runId: 'fr', reply: 'IN.' });
    const msgs: WireMessage[] = [];
    for (const e of sampleEvents()) enc.encode(e, msgs);
    msgs.push(...enc.end());
    const runs: WireMessage[][] = [];
    for (const m of msgs) {
      const last = runs.at(-1)?.at(-1);
      if (last !== undefined && last.frame.buffer === m.frame.buffer && last.frame.byteOffset + last.frame.length === m.frame.byteOffset) runs.at(-1)!.push(m);
      else runs.push([m]);
    }
    // one arena of 1 MiB holds all but the 300 000-byte event's parts and what follows them
    expect(runs.length).toBeLessThanOrEqual(2);
    for (const run of runs) {
      const first = run[0]!.frame;
      const last = run.at(-1)!.frame;
      const view = new Uint8Array(first.buffer, first.byteOffset, last.byteOffset + last.length - first.byteOffset);
      expect(parseFrames(view).map((p) => `${p.subject} ${p.reply}`)).toEqual(run.map((m) => `${m.subject} IN.${m.seq}`));
    }
  });
});
