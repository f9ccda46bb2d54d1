/**
 * MultipartParser (src/core/multipart.ts): multipart/form-data bodies split at every offset and
 * in random pieces give the same parts, bare LF and CRLF, quoted boundaries, preamble and
 * epilogue, bodies cut before the closing boundary, gaps, and hostile input (no boundary, a
 * wrong one, huge part headers, a flood of parts) that ends in an error state, never a throw,
 * with what is held between chunks bounded by the boundary's length.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyParts, formBoundary, headerParams, MultipartParser, type MultipartEvent, type MultipartOptions } from '../src/core/multipart.js';

const enc = new TextEncoder();
const dec = new TextDecoder('latin1');

interface Part {
  index: number;
  name: string | null;
  filename: string | null;
  contentType: string | null;
  data: string;
  bytes: number;
  complete: boolean;
}

/** collect checks the event order (part, data..., end; indexes from 0) and gathers the parts. */
function collector(): { emit: (e: MultipartEvent) => void; parts: Part[] } {
  const parts: Part[] = [];
  let open: Part | null = null;
  const emit = (e: MultipartEvent): void => {
    if (e.type === 'part') {
      expect(open, 'a part started inside another').toBeNull();
      expect(e.index).toBe(parts.length);
      open = { index: e.index, name: e.name, filename: e.filename, contentType: e.contentType, data: '', bytes: 0, complete: false };
      parts.push(open);
    } else if (e.type === 'data') {
      expect(open?.index).toBe(e.index);
      expect(e.data.length).toBeGreaterThan(0);
      open!.data += dec.decode(e.data);
    } else {
      expect(open?.index).toBe(e.index);
      expect(e.bytes).toBe(open!.data.length);
      open!.bytes = e.bytes;
      open!.complete = e.complete;
      open = null;
    }
  };
  return { emit, parts };
}

/** parse feeds `body` in pieces of the given sizes (cycled; the whole body when none). */
function parse(body: string | Uint8Array, boundary: string, sizes: readonly number[] = [], options?: MultipartOptions): { parts: Part[]; error: string | null; p: MultipartParser } {
  const bytes = typeof body === 'string' ? enc.encode(body) : body;
  const p = new MultipartParser(boundary, options);
  const c = collector();
  let pos = 0;
  for (let i = 0; pos < bytes.length; i++) {
    const n = sizes.length === 0 ? bytes.length : Math.max(1, sizes[i % sizes.length]!);
    p.write(bytes.subarray(pos, pos + n), c.emit);
    pos += n;
  }
  p.end(c.emit);
  return { parts: c.parts, error: p.error, p };
}

const B = '----------------------------4ebf00fbcf09';
const CRLF_BODY =
  'This is the preamble.\r\n' +
  `--${B}\r\n` +
  'Content-Disposition: form-data; name="field"\r\n' +
  '\r\n' +
  'value\r\n' +
  `--${B}  \r\n` + // transport padding
  'Content-Disposition: form-data; name="upload"; filename="a b.txt"\r\n' +
  'Content-Type: text/plain\r\n' +
  '\r\n' +
  `line 1\r\n--${B}x is not a delimiter\r\n\r\n--${B}- nor this\r\n` +
  `--${B}\r\n` +
  'content-disposition: form-data;\r\n name="empty"; filename=""\r\n' + // folded
  '\r\n' +
  `\r\n--${B}--\r\n` +
  'epilogue, passed over\r\n';

const EXPECTED: Part[] = [
  { index: 0, name: 'field', filename: null, contentType: null, data: 'value', bytes: 5, complete: true },
  { index: 1, name: 'upload', filename: 'a b.txt', contentType: 'text/plain', data: `line 1\r\n--${B}x is not a delimiter\r\n\r\n--${B}- nor this`, bytes: 0, complete: true },
  { index: 2, name: 'empty', filename: '', contentType: null, data: '', bytes: 0, complete: true },
].map((p) => ({ ...p, bytes: p.data.length }));

describe('MultipartParser', () => {
  it('parts of a CRLF body: preamble and epilogue passed over, lookalikes of the boundary kept as data', () => {
    const r = parse(CRLF_BODY, B);
    expect(r.parts).toEqual(EXPECTED);
    expect(r.error).toBeNull();
    expect(r.p.closed).toBe(true);
  });

  it('the same parts whatever the split: at every offset, in bytes, and in random pieces', () => {
    const bytes = enc.encode(CRLF_BODY);
    for (let k = 1; k < bytes.length; k++) {
      const p = new MultipartParser(B);
      const c = collector();
      p.write(bytes.subarray(0, k), c.emit);
      p.write(bytes.subarray(k), c.emit);
      p.end(c.emit);
      expect(c.parts, `split at ${k}`).toEqual(EXPECTED);
      expect(p.error).toBeNull();
    }
    expect(parse(bytes, B, [1]).parts).toEqual(EXPECTED);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        const r = parse(bytes, B, sizes);
        expect(r.parts).toEqual(EXPECTED);
        expect(r.error).toBeNull();
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('bare LF line ends (and a mix), as some clients send', () => {
    const lf = CRLF_BODY.replace(/\r\n/g, '\n');
    const want = EXPECTED.map((p) => ({ ...p, data: p.data.replace(/\r\n/g, '\n') })).map((p) => ({ ...p, bytes: p.data.length }));
    for (const sizes of [[], [1], [3], [17]]) expect(parse(lf, B, sizes).parts).toEqual(want);
    const mixed = `--x\nContent-Disposition: form-data; name="a"\r\n\nA\r\n--x\r\nContent-Disposition: form-data; name="b"\n\r\nB\n--x--`;
    expect(parse(mixed, 'x').parts.map((p) => [p.name, p.data, p.complete])).toEqual([
      ['a', 'A', true],
      ['b', 'B', true],
    ]);
  });

  it('a body cut before the closing boundary ends its open part incomplete; cut inside the delimiter, complete', () => {
    const head = `--${B}\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n0123456789`;
    const cut = parse(head, B);
    expect(cut.parts).toMatchObject([{ data: '0123456789', complete: false }]);
    expect(cut.error).toBe('ended before the closing boundary');
    for (const tail of ['\r\n', '\r']) expect(parse(head + tail, B).parts).toMatchObject([{ data: `0123456789${tail}`, complete: false }]);
    for (const tail of [`\r\n--${B}`, `\r\n--${B}-`, `\n--${B}`]) {
      const r = parse(head + tail, B);
      expect(r.parts, JSON.stringify(tail)).toMatchObject([{ data: '0123456789', complete: true }]);
      expect(r.error).toBe('ended before the closing boundary');
    }
    expect(parse(`${head}\r\n--${B}--`, B)).toMatchObject({ parts: [{ data: '0123456789', complete: true }], error: null }); // no final CRLF: fine
    expect(parse(`${head}\r\n--${B}\r\nContent-Disposition: form-da`, B)).toMatchObject({ parts: [{ complete: true }], error: 'ended before the closing boundary' });
    expect(parse(`--${B}--\r\n`, B)).toMatchObject({ parts: [], error: null });
  });

  it('a gap ends the open part incomplete and parsing resumes at the next delimiter', () => {
    const p = new MultipartParser('b');
    const c = collector();
    p.write(enc.encode('--b\r\nContent-Disposition: form-data; name="one"\r\n\r\nfirst'), c.emit);
    p.gap(c.emit);
    p.write(enc.encode('lost rest of one\r\n--b\r\nContent-Disposition: form-data; name="two"\r\n\r\nsecond\r\n--b--'), c.emit);
    p.end(c.emit);
    expect(c.parts.map((x) => [x.name, x.data, x.complete])).toEqual([
      ['one', 'first', false],
      ['two', 'second', true],
    ]);
    expect(p.error).toBe('gap');
    // BodyParts sees the gap in the offsets, and at the end
    const bp = new BodyParts('b');
    const c2 = collector();
    bp.write(0, enc.encode('--b\r\n\r\nabc'), c2.emit);
    bp.write(20, enc.encode('\r\n--b\r\n\r\nxyz'), c2.emit);
    bp.end(40, c2.emit);
    expect(c2.parts.map((x) => [x.data, x.complete])).toEqual([
      ['abc', false],
      ['xyz', false],
    ]);
    expect(bp.error).toBe('gap');
  });

  it('Content-Disposition parameters: quoted, escaped, unquoted, Windows paths, filename*, first of a repeated name', () => {
    expect(headerParams('form-data; name="a;b"; filename="c:\\dir\\x \\"q\\".txt"').params).toEqual(
      new Map([
        ['name', 'a;b'],
        ['filename', 'c:\\dir\\x "q".txt'],
      ]),
    );
    expect(headerParams('Form-Data ; NAME = token ; filename="x" trailing; name=second').params).toEqual(
      new Map([
        ['name', 'token'],
        ['filename', 'x'],
      ]),
    );
    const star = `--b\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''na%C3%AFve%20%E2%82%AC.txt\r\n\r\nx\r\n--b--`;
    expect(parse(star, 'b').parts[0]).toMatchObject({ name: 'f', filename: 'naïve €.txt' });
    const utf8 = `--b\r\nContent-Disposition: form-data; name="f"; filename="ünï.txt"\r\nContent-Type: image/png\r\n\r\n\r\n--b--`;
    expect(parse(utf8, 'b').parts[0]).toMatchObject({ filename: 'ünï.txt', contentType: 'image/png', data: '', complete: true });
  });

  it('formBoundary: quoted or not, any case; an error for multipart/form-data without a usable one; null for other types', () => {
    expect(formBoundary('multipart/form-data; boundary=----WebKitFormBoundaryBtaeRs4vBuzQzpSa')).toBe('----WebKitFormBoundaryBtaeRs4vBuzQzpSa');
    expect(formBoundary('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c=d?"')).toBe('a b:c=d?');
    expect(formBoundary('multipart/form-data')).toEqual({ error: 'no boundary' });
    expect(formBoundary('multipart/form-data; boundary=""')).toEqual({ error: 'no boundary' });
    expect(formBoundary(`multipart/form-data; boundary=${'x'.repeat(201)}`)).toEqual({ error: 'bad boundary' });
    expect(formBoundary('multipart/form-data; boundary="a\u0000b"')).toEqual({ error: 'bad boundary' });
    for (const other of [undefined, 'text/plain', 'multipart/mixed; boundary=x', 'application/x-www-form-urlencoded']) expect(formBoundary(other)).toBeNull();
    // a quoted boundary with spaces parses
    const r = parse('--a b:c=d?\r\nContent-Disposition: form-data; name="q"\r\n\r\nQ\r\n--a b:c=d?--\r\n', 'a b:c=d?');
    expect(r).toMatchObject({ parts: [{ name: 'q', data: 'Q', complete: true }], error: null });
  });

  it('hostile input: a wrong or missing boundary, huge part headers, a flood of parts, a long boundary line: an error, never a throw', () => {
    expect(parse(CRLF_BODY, 'not-the-boundary')).toMatchObject({ parts: [], error: 'boundary not found' });
    expect(parse('', B)).toMatchObject({ parts: [], error: 'boundary not found' });
    expect(new BodyParts({ error: 'no boundary' }).error).toBe('no boundary');

    // 8 MiB of part header: stops at the limit, holding no more than it
    const huge = new Uint8Array(8 << 20).fill(0x41);
    huge.set(enc.encode('--b\r\nX-Long: '));
    const t0 = performance.now();
    const h = parse(huge, 'b', [65536]);
    expect(h).toMatchObject({ parts: [], error: 'part header over 16384 bytes' });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(parse(`--b\r\n${'X: y\r\n'.repeat(10)}\r\nok\r\n--b--`, 'b', [], { maxHeaderBytes: 40 }).error).toBe('part header over 40 bytes');

    // 200 000 empty parts: 256 listed, the rest parsed over and counted
    const flood = `${'--b\r\n\r\n\r\n'.repeat(200_000)}--b--`;
    const f = parse(flood, 'b', [4096]);
    expect(f.parts).toHaveLength(256);
    expect(f.parts.every((p) => p.complete && p.bytes === 0)).toBe(true);
    expect(f.error).toBe('parts past the first 256: 199744 not listed');
    expect(f.p.omitted).toBe(199_744);

    expect(parse(`--b${' '.repeat(5000)}\r\n\r\nx\r\n--b--`, 'b', [100]).error).toBe('boundary line over 1024 bytes');
  });

  it('holds at most the boundary plus 5 bytes between chunks: data comes out as soon as it cannot be a delimiter', () => {
    // one large part of random bytes (with CR, LF and dashes aplenty), fed in random pieces
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((a) => a.map((x) => [13, 10, 45, 98, x][x % 5]!)),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (content, sizes) => {
          const boundary = 'bbb';
          const head = enc.encode('--bbb\r\n\r\n');
          const body = new Uint8Array(head.length + content.length);
          body.set(head);
          body.set(content, head.length);
          const p = new MultipartParser(boundary);
          let emitted = 0;
          let started = false;
          const emit = (e: MultipartEvent): void => {
            if (e.type === 'part') started = e.index === 0 ? true : started;
            if (e.type === 'data' && e.index === 0) emitted += e.data.length;
          };
          let pos = 0;
          for (let i = 0; pos < body.length; i++) {
            const n = sizes[i % sizes.length]!;
            p.write(body.subarray(pos, pos + n), emit);
            pos = Math.min(body.length, pos + n);
            // while the first part is open, all but the last boundary+5 bytes fed to it are out
            if (started && p.parts === 1 && !p.closed && p.error === null && pos > head.length) {
              const fed = pos - head.length;
              if (emitted < fed) expect(fed - emitted, `at ${pos}`).toBeLessThanOrEqual(boundary.length + 5);
            }
          }
          p.end(emit);
        },
      ),
      { seed: 11, numRuns: 300 },
    );
  });

  it('random bytes and mutated bodies: no throw, well-formed events, the same result however split', () => {
    const valid = enc.encode(CRLF_BODY);
    const arbBody = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }).map((flips) => {
        const b = valid.slice();
        for (const [at, v] of flips) b[at % b.length] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(arbBody, fc.constantFrom(B, 'b', '-', ''), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), (body, boundary, sizes) => {
        const whole = parse(body, boundary);
        const split = parse(body, boundary, sizes);
        expect(split.parts).toEqual(whole.parts);
        expect(split.error).toBe(whole.error);
      }),
      { seed: 3, numRuns: 500 },
    );
  });
});
