import { describe, expect, it } from 'vitest';

import { ClusterStore, IStoreChange, clusterTotals } from '../src/store';
import type { IClusterStatus, INode } from '../src/types';
import { inState, task } from './factories';

function node(fields: Partial<INode> = {}): INode {
  return {
    node_id: 'n1',
    alive: true,
    hostname: 'h',
    is_head: true,
    resources_total: { CPU: 4 },
    resources_available: { CPU: 1 },
    cpu_percent: 50,
    memory_used: 1,
    memory_total: 2,
    object_store_used: 10,
    object_store_capacity: 100,
    object_store_spilled: 5,
    num_workers: 4,
    gpus: null,
    ...fields
  };
}

function status(state: IClusterStatus['state']): IClusterStatus {
  return {
    state,
    owned: true,
    address: null,
    node_id: null,
    tcp_address: null,
    error: null
  };
}

function listen(store: ClusterStore): IStoreChange[] {
  const seen: IStoreChange[] = [];
  store.changed.connect((_, change) => seen.push(change));
  return seen;
}

describe('ClusterStore', () => {
  it('counts each cell’s tasks by state as updates arrive', () => {
    const store = new ClusterStore();
    const a = task({ cell_id: 'cell-1' });
    const b = task({ cell_id: 'cell-1' });
    const c = task({ cell_id: 'cell-2' });
    store.apply({ type: 'snapshot', seq: 4, tasks: [a, b, c] });
    expect(store.cellSummary('cell-1')!.counts.pending).toBe(2);
    expect(
      store.apply({
        type: 'update',
        seq: 5,
        changed: { tasks: [inState(a, 'RUNNING'), inState(b, 'FINISHED')] }
      })
    ).toBe(true);
    const summary = store.cellSummary('cell-1')!;
    expect(summary.counts).toEqual({
      pending: 0,
      running: 1,
      done: 1,
      failed: 0,
      cancelled: 0
    });
    expect(summary.total).toBe(2);
    expect(store.taskCounts.running).toBe(1);
    store.apply({ type: 'update', seq: 6, removed: { tasks: [c.task_id] } });
    expect(store.cellSummary('cell-2')).toBeNull();
  });

  it('names the first error of a cell, not the ones it caused', () => {
    const store = new ClusterStore();
    const root = task({ cell_id: 'c', name: 'load' });
    const downstream = task({ cell_id: 'c', name: 'use' });
    store.apply({ type: 'snapshot', seq: 0, tasks: [root, downstream] });
    store.apply({
      type: 'update',
      seq: 1,
      changed: {
        tasks: [
          {
            ...inState(downstream, 'FAILED', 20),
            error_type: 'ValueError',
            error_message: 'caused'
          },
          {
            ...inState(root, 'FAILED', 10),
            error_type: 'ZeroDivisionError',
            error_message: 'division by zero'
          }
        ]
      }
    });
    const error = store.cellSummary('c')!.firstError!;
    expect(error.name).toBe('load');
    expect(error.message).toBe('division by zero');
  });

  it('refuses an update that does not follow the last one', () => {
    const store = new ClusterStore();
    expect(store.apply({ type: 'update', seq: 1, changed: {} })).toBe(false);
    store.apply({ type: 'snapshot', seq: 3 });
    expect(store.apply({ type: 'update', seq: 5, changed: {} })).toBe(false);
    expect(store.apply({ type: 'update', seq: 4, changed: {} })).toBe(true);
  });

  it('tells listeners once per flush, with everything since the last', () => {
    const store = new ClusterStore();
    const seen = listen(store);
    const a = task({ cell_id: 'x' });
    store.apply({ type: 'snapshot', seq: 0, tasks: [a], nodes: [node()] });
    store.apply({
      type: 'update',
      seq: 1,
      changed: { tasks: [inState(a, 'RUNNING')] }
    });
    store.flush();
    store.flush();
    expect(seen.length).toBe(1);
    expect(seen[0].reset).toBe(true);
    expect(Array.from(seen[0].tasks)).toEqual([a.task_id]);
    expect(Array.from(seen[0].cells)).toEqual(['x']);

    store.apply({
      type: 'update',
      seq: 2,
      removed: { tasks: [a.task_id] }
    });
    store.flush();
    expect(seen.length).toBe(2);
    expect(seen[1].reset).toBe(false);
    expect(Array.from(seen[1].removedTasks)).toEqual([a.task_id]);
  });

  it('forgets every record when the runtime stops', () => {
    const store = new ClusterStore();
    store.apply({ type: 'status', cluster: status('running') });
    store.apply({
      type: 'snapshot',
      seq: 0,
      tasks: [task({ cell_id: 'c' })],
      nodes: [node()]
    });
    store.apply({ type: 'status', cluster: status('stopped') });
    expect(store.tables.tasks.size).toBe(0);
    expect(store.tables.nodes.size).toBe(0);
    expect(store.cellSummary('c')).toBeNull();
    expect(store.seq).toBe(-1);
  });

  it('sums alive nodes for the status bar', () => {
    const store = new ClusterStore();
    store.apply({
      type: 'snapshot',
      seq: 0,
      nodes: [
        node(),
        node({ node_id: 'n2', is_head: false }),
        node({ node_id: 'dead', alive: false })
      ],
      tasks: [inState(task(), 'RUNNING'), task()]
    });
    expect(clusterTotals(store)).toEqual({
      nodes: 2,
      cpuTotal: 8,
      cpuBusy: 6,
      running: 1,
      storeUsed: 20,
      storeCapacity: 200,
      storeSpilled: 10
    });
  });

  it('finds the jobs of a kernel', () => {
    const store = new ClusterStore();
    store.apply({
      type: 'snapshot',
      seq: 0,
      jobs: [
        {
          job_id: 'j1',
          pid: 1,
          start_time: 0,
          end_time: null,
          metadata: { kernel_id: 'k' }
        },
        {
          job_id: 'j2',
          pid: 2,
          start_time: 0,
          end_time: null,
          metadata: { origin: 'script' }
        }
      ]
    });
    expect(Array.from(store.jobsOfKernel('k'))).toEqual(['j1']);
  });
});
