/**
 * tls-build: TLS handshake bytes built by hand for the TLS tests: JA4.md's worked example as a
 * ClientHello (GREASE added), ServerHellos (HelloRetryRequest too), records and vectors.
 */
export const u16 = (v: number): number[] => [(v >> 8) & 255, v & 255];
export const vec8 = (b: number[]): number[] => [b.length, ...b];
export const vec16 = (b: number[]): number[] => [...u16(b.length), ...b];
export const vec24 = (b: number[]): number[] => [(b.length >> 16) & 255, (b.length >> 8) & 255, b.length & 255, ...b];
export const ext = (type: number, data: number[]): number[] => [...u16(type), ...vec16(data)];
export const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
export const handshake = (type: number, body: number[]): number[] => [type, ...vec24(body)];
export const record = (type: number, body: number[]): number[] => [type, 3, 1, ...vec16(body)];
export const random = Array.from({ length: 32 }, (_, i) => i);

// JA4.md's worked example: 15 ciphers, 16 extensions, ALPN h2, these signature algorithms
export const CIPHERS = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035];
export const EXT_ORDER = [0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015];
export const SIGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];
export const GROUPS = [0x001d, 0x0017, 0x0018];

function extData(type: number): number[] {
  switch (type) {
    case 0x0000:
      return vec16([0, ...vec16(ascii('example.com'))]);
    case 0x0010:
      return vec16([...vec8(ascii('h2')), ...vec8(ascii('http/1.1'))]);
    case 0x000d:
      return vec16(SIGS.flatMap(u16));
    case 0x000a:
      return vec16([0x2a, 0x2a, ...GROUPS.flatMap(u16)]);
    case 0x000b:
      return vec8([0]);
    case 0x002b:
      return vec8([0x3a, 0x3a, 3, 4, 3, 3]);
    case 0x002d:
      return vec8([1]);
    case 0x0023:
      return [];
    default:
      return [1, 2, 3];
  }
}

/** The example's ClientHello with GREASE in front of its ciphers and extensions. */
export function clientHello(extra: number[][] = []): number[] {
  const exts = [ext(0x0a0a, []), ...EXT_ORDER.map((t) => ext(t, extData(t))), ...extra];
  return handshake(1, [...u16(0x0303), ...random, ...vec8([9, 9]), ...vec16([0x1a, 0x1a, ...CIPHERS.flatMap(u16)]), ...vec8([0]), ...vec16(exts.flat())]);
}

export const HRR = [0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c];

export function serverHello(opts: { version?: number; hrr?: boolean; sid?: number[] } = {}): number[] {
  const exts = [ext(0xff01, [0]), ext(0x0010, vec16(vec8(ascii('h2'))))];
  if (opts.version !== undefined) exts.push(ext(0x002b, u16(opts.version)));
  return handshake(2, [...u16(0x0303), ...(opts.hrr === true ? HRR : random), ...vec8(opts.sid ?? []), ...u16(0xc02f), 0, ...vec16(exts.flat())]);
}


/** An SSLv2-compatible ClientHello (TLS 1.0) offering these 3-byte cipher specs. */
export function sslv2Hello(specs: number[]): number[] {
  const body = [1, 3, 1, ...u16(specs.length * 3), ...u16(0), ...u16(16), ...specs.flatMap((s) => [s >> 16, (s >> 8) & 255, s & 255]), ...random.slice(0, 16)];
  return [0x80 | (body.length >> 8), body.length & 255, ...body];
}

/** A TLS 1.2 server flight in one record: ServerHello, Certificate (these DER blobs), ServerHelloDone. */
export function serverFlight(certs: number[][] = [[0x30, 1, 2], [0x30, 3]]): number[] {
  return record(22, [...serverHello(), ...handshake(11, vec24(certs.flatMap(vec24))), ...handshake(14, [])]);
}
