/** printStats writes every stage's counters as a two-column table (stage.counter, value). */
export function printStats(out: NodeJS.WritableStream, stages: ReadonlyArray<readonly [string, unknown]>): void {
  const rows: Array<[string, string]> = [];
  for (const [name, stats] of stages) flatten(name, stats, rows);
  const width = rows.reduce((w, [k]) => Math.max(w, k.length), 0);
  out.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join(''));
}

function flatten(prefix: string, value: unknown, rows: Array<[string, string]>): void {
  if (value instanceof Map) {
    for (const [k, v] of value) flatten(`${prefix}.${String(k)}`, v, rows);
  } else if (Array.isArray(value) && value.some((v) => v !== null && typeof v === 'object')) {
    value.forEach((v: unknown, i) => flatten(`${prefix}[${i}]`, v, rows));
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(`${prefix}.${k}`, v, rows);
  } else if (value !== undefined && value !== null) {
    rows.push([prefix, Array.isArray(value) ? value.join(',') : String(value)]);
  }
}
