/** Task records for tests, with the fields the model reads and defaults for the rest. */
import type { ITask, TaskStateName } from '../src/types';

let counter = 0;

export function task(
  fields: Partial<ITask> & { task_id?: string; name?: string } = {}
): ITask {
  counter += 1;
  const id = fields.task_id ?? `t${counter}`;
  return {
    task_id: id,
    name: 'f',
    kind: 'task',
    state: 'PENDING_RESOURCES',
    times: {},
    parent_task_id: null,
    depends_on: [],
    returns: [`${id}/r`],
    node_id: 'n1',
    worker_pid: null,
    actor_id: null,
    attempt: 0,
    error_type: null,
    error_message: null,
    cell_id: null,
    cell_execution_count: null,
    job_id: null,
    ...fields
  };
}

/** The same record in another state. */
export function inState(t: ITask, state: TaskStateName, at = 1): ITask {
  return { ...t, state, times: { ...t.times, [state]: at } };
}

/** A task that takes the results of `deps` as arguments. */
export function after(
  deps: ITask[],
  fields: Partial<ITask> & { task_id?: string; name?: string } = {}
): ITask {
  return task({ depends_on: deps.map(d => d.returns[0]), ...fields });
}

/** A small deterministic random generator (mulberry32), so failures reproduce. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
