/**
 * Sharkd: one session of Wireshark's sharkd (`sharkd -`: JSON-RPC, a request per line on stdin,
 * a reply per line on stdout), for the oracle tests that ask tshark about many captures. Each
 * capture is loaded in turn into the one process, then asked for what `tshark --export-objects`
 * writes (the same export-object tap, with the frame of each object) and for columns of chosen
 * frames. Starting tshark costs some 0.45 s of CPU per run, nearly all of it registering
 * dissectors; sharkd is the same library (libwireshark, in wireshark-common, which the tshark
 * package depends on) started once. Nothing is cached on disk.
 *
 * Quirks handled here: `load` of a capture cut inside a record sends no reply (the frames before
 * the cut are loaded), and `load` of a file sharkd cannot read leaves the previous capture loaded,
 * so `load` is followed by `status` and succeeds only when that names the file. Preferences set
 * with `setconf` stay for later loads: `load` sets every preference it is given.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

interface Reply {
  id?: number;
  result?: unknown;
  error?: { code: number; message: string };
}

/** One object of the export-object tap (HTTP: a message body, decoded as tshark decodes it). */
export interface ExportObject {
  /** The frame it was exported at. */
  pkt: number;
  /** What tshark names the file after (the request target's basename); null when it has none. */
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

export class Sharkd {
  private readonly proc: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private exited: Error | null = null;

  constructor() {
    this.proc = spawn('sharkd', ['-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.resume(); // its notes ("load: filename=...") are not replies
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const reply = JSON.parse(line) as Reply;
      const done = reply.id === undefined ? undefined : this.waiting.get(reply.id);
      if (done === undefined) return;
      this.waiting.delete(reply.id!);
      done(reply);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = new Error(`sharkd exited (${code ?? signal})`);
      for (const done of this.waiting.values()) done({ error: { code: -1, message: this.exited.message } });
      this.waiting.clear();
    });
  }

  private send(method: string, params?: Record<string, unknown>): { id: number; reply: Promise<Reply> } {
    const id = this.nextId++;
    if (this.exited !== null) return { id, reply: Promise.resolve({ error: { code: -1, message: this.exited.message } }) };
    const reply = new Promise<Reply>((resolve) => this.waiting.set(id, resolve));
    this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })}\n`);
    return { id, reply };
  }

  /** call sends one request; rejects with sharkd's error. */
  async call<T>(method: string, params?: Record<string, unknown>): Promise<T> {
    const reply = await this.send(method, params).reply;
    if (reply.error !== undefined) throw new Error(`sharkd ${method}: ${reply.error.message}`);
    return reply.result as T;
  }

  /** load opens `file` with the preferences `prefs` (name to value); false when sharkd cannot read it. */
  async load(file: string, prefs: Record<string, string> = {}): Promise<boolean> {
    for (const [name, value] of Object.entries(prefs)) await this.call('setconf', { name, value });
    const load = this.send('load', { file });
    let failed = false;
    void load.reply.then((r) => (failed = r.error !== undefined));
    const status = await this.call<{ filename?: string }>('status');
    this.waiting.delete(load.id); // replies come in order: a reply to load not given by now never comes
    return !failed && status.filename === path.basename(file);
  }

  /**
   * tap runs taps over the loaded capture in one pass (sharkd's `tap`: `eo:http` for export
   * objects, `stat:http` for a stats tree, ...) and gives each one's result by its name as sharkd
   * names it (`eo:http`, `stats:http`).
   */
  async tap(names: readonly string[]): Promise<Map<string, unknown>> {
    const params: Record<string, string> = {};
    names.forEach((n, i) => (params[`tap${i}`] = n));
    const r = await this.call<{ taps: Array<{ tap: string }> }>('tap', params);
    return new Map(r.taps.map((t) => [t.tap, t]));
  }

  /** objects: the objects of an `eo:` tap's result, downloaded: what `tshark --export-objects` writes, in its order. */
  async objects(eo: unknown): Promise<ExportObject[]> {
    const out: ExportObject[] = [];
    for (const o of (eo as { objects?: Array<{ pkt: number; filename?: string; type?: string; _download: string; len: number }> } | undefined)?.objects ?? []) {
      const d = await this.call<{ data?: string }>('download', { token: o._download });
      const data = Buffer.from(d.data ?? '', 'base64');
      if (data.length !== o.len) throw new Error(`sharkd: object of frame ${o.pkt} has ${data.length} bytes, ${o.len} announced`);
      out.push({ pkt: o.pkt, filename: o.filename ?? null, contentType: o.type ?? null, data });
    }
    return out;
  }

  /** exportObjects: what `tshark --export-objects PROTO,DIR` writes for the loaded capture, in its order. */
  async exportObjects(proto = 'http'): Promise<ExportObject[]> {
    return this.objects((await this.tap([`eo:${proto}`])).get(`eo:${proto}`));
  }

  /**
   * frames: the frames matching display filter `filter`, each with the values of `fields` (a
   * field name and an occurrence as in a custom column: `tcp.stream:-1` is the last, `:0` all of
   * them joined by commas; a boolean field shows as "True" or a check mark when present).
   */
  async frames(filter: string, fields: readonly string[]): Promise<Array<{ num: number; values: string[] }>> {
    const params: Record<string, string> = { filter };
    fields.forEach((f, i) => (params[`column${i}`] = f));
    const rows = await this.call<Array<{ num: number; c: string[] }>>('frames', params);
    return rows.map((r) => ({ num: r.num, values: r.c }));
  }

  close(): void {
    this.proc.stdin.end();
  }
}
