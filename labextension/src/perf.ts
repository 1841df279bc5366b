/**
 * Performance measures the browser test and the benchmarks read
 * (`performance.getEntriesByName(name)`), kept bounded: a page open for days must not
 * collect millions of entries.
 */

const KEEP = 1000;
const counts = new Map<string, number>();

export function measure(name: string, start: number, detail: object): number {
  const count = (counts.get(name) ?? 0) + 1;
  if (count > KEEP) {
    performance.clearMeasures(name);
    counts.set(name, 1);
  } else {
    counts.set(name, count);
  }
  const end = performance.now();
  performance.measure(name, { start, end, detail });
  return end - start;
}
