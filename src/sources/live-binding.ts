/**
 * live-binding: everything pcapflow uses of the optional `cap` package (a libpcap binding), loaded
 * lazily with a dynamic import so that `read` and `packets` work on a machine where cap was not
 * built. Nothing else imports cap.
 *
 * What cap 0.2.1 does, read from its src/binding.cc, and what this module does about it:
 * - `open(device, filter, bufSize, buffer)` copies every packet into the ONE Buffer given and keeps
 *   only a raw pointer to it: the caller must hold that Buffer for as long as the capture is open
 *   (LiveSource keeps it in a field) and copy each packet out in the 'packet' handler, before the
 *   next one overwrites it.
 * - The 'packet' event gives `(nbytes, truncated)`: nbytes is the captured length, cut to the
 *   Buffer's length when `truncated`. No timestamp, no original length (the caller stamps packets).
 * - The libpcap snaplen is fixed at 65535 and promiscuous mode is always on; libpcap cuts longer
 *   frames (loopback has MTU 65536) without cap saying so.
 * - `open()` returns the link type as a name ('ETHERNET', 'LINKTYPE_LINUX_SLL', 'NULL', 'RAW',
 *   'IEEE802_11_RADIO') or 'Unknown linktype N' with libpcap's DLT number: capLinkType maps it.
 * - A Cap whose `open()` threw must never be garbage-collected: its destructor calls
 *   `uv_poll_stop` on a handle that was never initialised and the process aborts. Failed handles
 *   are kept in `unusable` for the life of the process.
 * - For a device without an IPv4 address, libpcap's pcap_lookupnet warning is printed on stderr by
 *   the C code ("Warning: ... This may not actually work"); it is harmless.
 *
 * Errors (all PcapflowError): LIVE_UNAVAILABLE when cap cannot be loaded (not installed, not
 * built, or libpcap missing); INPUT_NOT_FOUND when the device cannot be opened (no such device,
 * no permission); INVALID_OPTION for a filter libpcap rejects; LINK_UNSUPPORTED for a link type
 * the decoder does not handle.
 *
 * Test hook: the environment variable PCAPFLOW_CAP_MODULE names another module to load instead of
 * 'cap' (a path or a package name); `PCAPFLOW_CAP_MODULE=/nonexistent` shows what a machine
 * without cap sees.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PcapflowError } from '../core/errors.js';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IEEE802_11_RADIOTAP,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  SUPPORTED_LINK_TYPES,
} from '../core/frame-decoder.js';

/** One address of a device, as libpcap lists it (IPv4 and IPv6 only). */
export interface CapAddress {
  addr?: string;
  netmask?: string;
  broadaddr?: string;
  dstaddr?: string;
}

/** One device as cap's `Cap.deviceList()` returns it. */
export interface CapDevice {
  name: string;
  description?: string;
  addresses: CapAddress[];
  /** 'PCAP_IF_LOOPBACK' on a loopback device, else absent. */
  flags?: string;
}

/** A cap capture handle (the parts pcapflow uses). */
export interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** The cap module (the parts pcapflow uses). */
export interface CapModule {
  Cap: {
    new (): CapHandle;
    deviceList(): CapDevice[];
  };
}

/** The libpcap snaplen cap sets on every handle: frames longer than this are cut without notice. */
export const CAP_SNAPLEN = 65535;

/** Environment variable naming the module loaded instead of 'cap' (tests). */
export const CAP_MODULE_ENV = 'PCAPFLOW_CAP_MODULE';

const INSTALL_HINT =
  'live capture needs the optional package cap, built against libpcap: install the libpcap headers ' +
  '(apt-get install libpcap-dev, or libpcap-devel), then run `npm install` in pcapflow\'s folder ' +
  '(npm drops an optional package whose build failed; `npm rebuild cap` when cap is there but unbuilt)';

let loaded: Promise<CapModule> | null = null;

/**
 * loadCap imports cap once (later calls share the result). Throws PcapflowError LIVE_UNAVAILABLE,
 * with the loader's message and the fix, when it cannot be loaded.
 */
export function loadCap(): Promise<CapModule> {
  loaded ??= importCap().catch((err: unknown) => {
    loaded = null;
    throw err;
  });
  return loaded;
}

async function importCap(): Promise<CapModule> {
  const name = process.env[CAP_MODULE_ENV] || 'cap';
  const spec = path.isAbsolute(name) ? pathToFileURL(name).href : name;
  let mod: unknown;
  try {
    mod = await import(spec);
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new PcapflowError('LIVE_UNAVAILABLE', `${INSTALL_HINT} (loading ${name} failed: ${why})`, { cause: err });
  }
  const m = ((mod as { default?: unknown }).default ?? mod) as Partial<CapModule> | null;
  if (m === null || typeof m !== 'object' || typeof m.Cap !== 'function' || typeof m.Cap.deviceList !== 'function') {
    throw new PcapflowError('LIVE_UNAVAILABLE', `${INSTALL_HINT} (${name} is not the cap package)`);
  }
  return m as CapModule;
}

/** Handles whose open() failed: referenced forever, since collecting one aborts the process. */
const unusable: CapHandle[] = [];

/** unusableHandles: how many failed handles are being kept alive (for tests and stats). */
export function unusableHandles(): number {
  return unusable.length;
}

/** What openCap opened. */
export interface OpenedCapture {
  handle: CapHandle;
  /** LINKTYPE_* number for the decoder. */
  linkType: number;
  /** cap's own name for it. */
  linkName: string;
}

/**
 * openCap opens `device` with `filter` (libpcap syntax, '' for none), a kernel buffer of
 * `bufferSize` bytes, copying packets into `frame`, which the caller must keep referenced until
 * the handle is closed. A failure with a filter is retried once without it to tell a bad filter
 * (INVALID_OPTION) from a device that cannot be opened (INPUT_NOT_FOUND).
 */
export function openCap(cap: CapModule, device: string, filter: string, bufferSize: number, frame: Buffer): OpenedCapture {
  const handle = new cap.Cap();
  let linkName: string;
  try {
    linkName = handle.open(device, filter, bufferSize, frame);
  } catch (err) {
    unusable.push(handle);
    const why = err instanceof Error ? err.message : String(err);
    if (filter !== '' && canOpen(cap, device, bufferSize)) {
      throw new PcapflowError('INVALID_OPTION', `--filter ${JSON.stringify(filter)}: libpcap says: ${why}`, { cause: err });
    }
    throw new PcapflowError('INPUT_NOT_FOUND', `cannot capture on ${device}: ${why}`, { file: device, cause: err });
  }
  let linkType: number;
  try {
    linkType = capLinkType(linkName);
  } catch (err) {
    handle.close();
    throw err;
  }
  return { handle, linkType, linkName };
}

/** canOpen: does `device` open without a filter? (The probe handle is closed at once.) */
function canOpen(cap: CapModule, device: string, bufferSize: number): boolean {
  const probe = new cap.Cap();
  const frame = Buffer.alloc(64);
  try {
    probe.open(device, '', Math.min(bufferSize, 1 << 20), frame);
  } catch {
    unusable.push(probe);
    return false;
  }
  probe.close();
  frame.fill(0); // referenced until after close()
  return true;
}

/** cap's link type names (binding.cc spells LINUX_SLL with a LINKTYPE_ prefix). */
const CAP_LINK_NAMES: ReadonlyMap<string, number> = new Map([
  ['NULL', LINKTYPE_NULL],
  ['ETHERNET', LINKTYPE_ETHERNET],
  ['IEEE802_11_RADIO', LINKTYPE_IEEE802_11_RADIOTAP],
  ['LINKTYPE_LINUX_SLL', LINKTYPE_LINUX_SLL],
  ['LINUX_SLL', LINKTYPE_LINUX_SLL],
  ['RAW', LINKTYPE_RAW], // DLT_RAW is 12 or 14 depending on the OS; the file format's number is 101
]);

/**
 * capLinkType maps the link type cap's open() returned to the LINKTYPE_* number the decoder uses.
 * 'Unknown linktype N' carries libpcap's DLT number, which equals the LINKTYPE number for every
 * type the decoder handles beyond cap's names (LINUX_SLL2 276, IPV4 228, IPV6 229, NFLOG 239).
 * Throws PcapflowError LINK_UNSUPPORTED otherwise.
 */
export function capLinkType(name: string): number {
  const known = CAP_LINK_NAMES.get(name);
  if (known !== undefined) return known;
  const m = /^Unknown linktype (\d+)$/.exec(name);
  if (m !== null) {
    const n = Number(m[1]);
    if (n !== 12 && n !== 14 && SUPPORTED_LINK_TYPES.includes(n)) return n; // 12, 14: DLT numbers that differ by OS
  }
  throw new PcapflowError('LINK_UNSUPPORTED', `the device's link type (${name}) is not one pcapflow decodes`);
}

/** One device for `pcapflow interfaces`. */
export interface InterfaceInfo {
  name: string;
  description: string | null;
  loopback: boolean;
  addresses: CapAddress[];
}

/** listInterfaces: the devices libpcap can capture on, in its order. */
export function listInterfaces(cap: CapModule): InterfaceInfo[] {
  let devices: CapDevice[];
  try {
    devices = cap.Cap.deviceList();
  } catch (err) {
    throw new PcapflowError('INPUT_READ_FAILED', `libpcap cannot list the devices: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return devices.map((d) => ({
    name: d.name,
    description: d.description ?? null,
    loopback: d.flags === 'PCAP_IF_LOOPBACK',
    addresses: d.addresses.map((a) => {
      const out: CapAddress = {};
      if (a.addr !== undefined) out.addr = a.addr;
      if (a.netmask !== undefined) out.netmask = a.netmask;
      if (a.broadaddr !== undefined) out.broadaddr = a.broadaddr;
      if (a.dstaddr !== undefined) out.dstaddr = a.dstaddr;
      return out;
    }),
  }));
}
