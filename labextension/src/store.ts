/**
 * The browser's picture of the runtime: every record the feed sent, by kind and id,
 * kept current by snapshots and updates, with per-cell task counts kept incrementally.
 *
 * Messages are applied as they arrive (cheap); listeners hear of them through
 * `changed`, at most once per `flush()`, with everything that changed since the last
 * one, so the UI redraws at a bounded rate however fast the feed runs.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { bucketOf, Counts, emptyCounts, type Bucket } from './states';
import {
  FeedMessage,
  ID_FIELDS,
  IClusterStatus,
  IJob,
  IRecords,
  ITask,
  RECORD_KINDS,
  RecordKind,
  RecordLists
} from './types';

/** What changed since the last `changed` signal. */
export interface IStoreChange {
  /** The kinds of records that changed, and `status` for the cluster status. */
  readonly kinds: ReadonlySet<RecordKind | 'status' | 'connection'>;
  /** Task ids added or changed. */
  readonly tasks: ReadonlySet<string>;
  /** Task ids removed. */
  readonly removedTasks: ReadonlySet<string>;
  /** Cells whose counts changed. */
  readonly cells: ReadonlySet<string>;
  /** A snapshot replaced everything: listeners should redraw from scratch. */
  readonly reset: boolean;
}

export interface IFirstError {
  taskId: string;
  name: string;
  errorType: string | null;
  message: string | null;
}

export interface ICellSummary {
  counts: Counts;
  total: number;
  firstError: IFirstError | null;
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

type Tables = { [K in RecordKind]: Map<string, IRecords[K]> };

class CellIndex {
  readonly counts: Counts = emptyCounts();
  readonly failed = new Set<string>();
  total = 0;
}

export class ClusterStore {
  /** Records by kind and id; read-only for everyone but the store. */
  readonly tables: Tables = {
    tasks: new Map(),
    actors: new Map(),
    objects: new Map(),
    nodes: new Map(),
    jobs: new Map()
  };

  get status(): IClusterStatus | null {
    return this._status;
  }

  get connection(): ConnectionState {
    return this._connection;
  }

  /** The last sequence number applied; -1 before the first snapshot. */
  get seq(): number {
    return this._seq;
  }

  get changed(): ISignal<this, IStoreChange> {
    return this._changed;
  }

  /** Whether changes wait for the next `flush()`. */
  get dirty(): boolean {
    return this._pending.kinds.size > 0 || this._pending.reset;
  }

  setConnection(state: ConnectionState): void {
    if (state !== this._connection) {
      this._connection = state;
      this._pending.kinds.add('connection');
    }
  }

  setStatus(status: IClusterStatus): void {
    const wasRunning = this._status?.state === 'running';
    this._status = status;
    this._pending.kinds.add('status');
    if (wasRunning && status.state !== 'running') {
      // The runtime is gone and its records with it.
      this._replace({}, -1);
    }
  }

  /**
   * Apply one feed message. Returns false when an update does not follow the last
   * message applied (a gap): the caller should ask for a snapshot.
   */
  apply(message: FeedMessage): boolean {
    switch (message.type) {
      case 'status':
        this.setStatus(message.cluster);
        return true;
      case 'snapshot':
        this._replace(message, message.seq);
        return true;
      case 'update':
        if (this._seq < 0 || message.seq !== this._seq + 1) {
          return false;
        }
        this._seq = message.seq;
        for (const kind of RECORD_KINDS) {
          const changed = message.changed?.[kind];
          if (changed) {
            this._upsert(kind, changed);
          }
          const removed = message.removed?.[kind];
          if (removed) {
            this._remove(kind, removed);
          }
        }
        return true;
    }
  }

  /** Tell listeners what changed since the last flush; nothing when nothing did. */
  flush(): void {
    if (!this.dirty) {
      return;
    }
    const change = this._pending;
    this._pending = Private.emptyChange();
    this._changed.emit(change);
  }

  /** Counts of every task the store holds, by bucket. */
  get taskCounts(): Readonly<Counts> {
    return this._taskCounts;
  }

  /** Counts of the tasks one cell submitted, and its first error. */
  cellSummary(cellId: string): ICellSummary | null {
    const index = this._cells.get(cellId);
    if (!index || index.total === 0) {
      return null;
    }
    return {
      counts: { ...index.counts },
      total: index.total,
      firstError: this._firstError(index)
    };
  }

  /** Ids of the jobs a kernel ran (a kernel reconnecting to a new runtime is a new job). */
  jobsOfKernel(kernelId: string): Set<string> {
    const ids = new Set<string>();
    for (const job of this.tables.jobs.values()) {
      if (job.metadata?.kernel_id === kernelId) {
        ids.add(job.job_id);
      }
    }
    return ids;
  }

  private _replace(lists: RecordLists, seq: number): void {
    for (const kind of RECORD_KINDS) {
      this.tables[kind].clear();
      this._pending.kinds.add(kind);
    }
    for (const cell of this._cells.keys()) {
      this._pending.cells.add(cell);
    }
    this._cells.clear();
    this._taskCounts = emptyCounts();
    this._pending.reset = true;
    this._pending.tasks.clear();
    this._pending.removedTasks.clear();
    for (const kind of RECORD_KINDS) {
      const records = lists[kind];
      if (records) {
        this._upsert(kind, records);
      }
    }
    this._seq = seq;
  }

  private _upsert<K extends RecordKind>(kind: K, records: IRecords[K][]): void {
    const table = this.tables[kind] as Map<string, IRecords[K]>;
    const idField = ID_FIELDS[kind];
    this._pending.kinds.add(kind);
    for (const record of records) {
      const id = record[idField] as unknown as string;
      if (kind === 'tasks') {
        const task = record as ITask;
        this._uncount(this.tables.tasks.get(id));
        this._count(task);
        this._pending.tasks.add(id);
        this._pending.removedTasks.delete(id);
      }
      table.set(id, record);
    }
  }

  private _remove(kind: RecordKind, ids: string[]): void {
    const table = this.tables[kind];
    this._pending.kinds.add(kind);
    for (const id of ids) {
      if (kind === 'tasks') {
        this._uncount(this.tables.tasks.get(id));
        this._pending.tasks.delete(id);
        this._pending.removedTasks.add(id);
      }
      table.delete(id);
    }
  }

  private _count(task: ITask): void {
    this._taskCounts[bucketOf(task.state)] += 1;
    if (!task.cell_id) {
      return;
    }
    let index = this._cells.get(task.cell_id);
    if (!index) {
      index = new CellIndex();
      this._cells.set(task.cell_id, index);
    }
    const bucket: Bucket = bucketOf(task.state);
    index.counts[bucket] += 1;
    index.total += 1;
    if (bucket === 'failed') {
      index.failed.add(task.task_id);
    }
    this._pending.cells.add(task.cell_id);
  }

  private _uncount(task: ITask | undefined): void {
    if (!task) {
      return;
    }
    this._taskCounts[bucketOf(task.state)] -= 1;
    if (!task.cell_id) {
      return;
    }
    const index = this._cells.get(task.cell_id);
    if (!index) {
      return;
    }
    index.counts[bucketOf(task.state)] -= 1;
    index.total -= 1;
    index.failed.delete(task.task_id);
    if (index.total <= 0) {
      this._cells.delete(task.cell_id);
    }
    this._pending.cells.add(task.cell_id);
  }

  private _firstError(index: CellIndex): IFirstError | null {
    let first: ITask | null = null;
    let firstTime = Infinity;
    for (const id of index.failed) {
      const task = this.tables.tasks.get(id);
      if (!task) {
        continue;
      }
      const time = task.times.FAILED ?? Infinity;
      // The root cause fails first; tasks that depended on it fail after it.
      if (first === null || time < firstTime) {
        first = task;
        firstTime = time;
      }
    }
    return first
      ? {
          taskId: first.task_id,
          name: first.name,
          errorType: first.error_type,
          message: first.error_message
        }
      : null;
  }

  private _status: IClusterStatus | null = null;
  private _connection: ConnectionState = 'connecting';
  private _seq = -1;
  private _cells = new Map<string, CellIndex>();
  private _taskCounts: Counts = emptyCounts();
  private _pending = Private.emptyChange();
  private _changed = new Signal<this, IStoreChange>(this);
}

/** Sum of every alive node's figures: what the status bar and the Cluster header show. */
export interface IClusterTotals {
  nodes: number;
  cpuTotal: number;
  cpuBusy: number;
  running: number;
  storeUsed: number;
  storeCapacity: number;
  storeSpilled: number;
}

export function clusterTotals(store: ClusterStore): IClusterTotals {
  const totals: IClusterTotals = {
    nodes: 0,
    cpuTotal: 0,
    cpuBusy: 0,
    running: 0,
    storeUsed: 0,
    storeCapacity: 0,
    storeSpilled: 0
  };
  for (const node of store.tables.nodes.values()) {
    if (!node.alive) {
      continue;
    }
    totals.nodes += 1;
    const total = node.resources_total.CPU ?? 0;
    totals.cpuTotal += total;
    totals.cpuBusy += Math.max(0, total - (node.resources_available.CPU ?? 0));
    totals.storeUsed += node.object_store_used;
    totals.storeCapacity += node.object_store_capacity;
    totals.storeSpilled += node.object_store_spilled;
  }
  totals.running = store.taskCounts.running;
  return totals;
}

/** A job's kernel, if a notebook kernel ran it. */
export function kernelOfJob(job: IJob | undefined): string | null {
  return job?.metadata?.kernel_id ?? null;
}

namespace Private {
  export function emptyChange(): {
    kinds: Set<RecordKind | 'status' | 'connection'>;
    tasks: Set<string>;
    removedTasks: Set<string>;
    cells: Set<string>;
    reset: boolean;
  } {
    return {
      kinds: new Set(),
      tasks: new Set(),
      removedTasks: new Set(),
      cells: new Set(),
      reset: false
    };
  }
}
