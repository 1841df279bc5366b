/**
 * The five buckets the UI counts tasks in, and small formatting helpers.
 */
import type { TaskStateName } from './types';

/** What a cell's strip and a group node count: five buckets of task states. */
export type Bucket = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';
export const BUCKETS: readonly Bucket[] = [
  'pending',
  'running',
  'done',
  'failed',
  'cancelled'
];

/**
 * Running means RUNNING: the task's code runs. SCHEDULED (sent to a worker, or queued in
 * its actor behind other calls) still waits, so it counts as pending; the runtime reports
 * RUNNING once a task ran 0.1 s, so a shorter task goes from pending to done.
 */
const BUCKET_OF: Record<TaskStateName, Bucket> = {
  PENDING_ARGS: 'pending',
  PENDING_RESOURCES: 'pending',
  SCHEDULED: 'pending',
  RUNNING: 'running',
  FINISHED: 'done',
  FAILED: 'failed',
  CANCELLED: 'cancelled'
};

export function bucketOf(state: TaskStateName): Bucket {
  return BUCKET_OF[state] ?? 'pending';
}

export function isFinal(state: TaskStateName): boolean {
  return state === 'FINISHED' || state === 'FAILED' || state === 'CANCELLED';
}

export type Counts = Record<Bucket, number>;

export function emptyCounts(): Counts {
  return { pending: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
}

export function totalOf(counts: Counts): number {
  return (
    counts.pending +
    counts.running +
    counts.done +
    counts.failed +
    counts.cancelled
  );
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1536` -> `"1.5 KiB"`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Seconds as `"850 ms"`, `"2.5 s"` or `"3 min 5 s"`. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

/** A resource amount without float noise: `0.30000000000000004` -> `"0.3"`. */
export function formatAmount(value: number): string {
  return Number.isInteger(value) ? String(value) : String(+value.toFixed(2));
}

export function shortId(id: string | null | undefined, length = 8): string {
  return id ? id.slice(0, length) : '—';
}
