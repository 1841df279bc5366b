import { describe, expect, it } from 'vitest';

import { groupId, TaskGraphModel } from '../src/graph/model';
import type { ITask } from '../src/types';
import { after, inState, random, task } from './factories';

function edgeIds(model: TaskGraphModel): string[] {
  return Array.from(model.edges.keys()).sort();
}

/** Everything a drawing depends on, in a form `toEqual` can compare. */
function picture(model: TaskGraphModel): unknown {
  const nodes = Array.from(model.nodes.values())
    .map(n =>
      n.type === 'task'
        ? { id: n.id, state: n.task.state }
        : { id: n.id, counts: { ...n.counts }, total: n.total }
    )
    .sort((a, b) => a.id.localeCompare(b.id));
  const edges = Array.from(model.edges.values())
    .map(e => ({ id: e.id, count: e.count, kinds: { ...e.kinds } }))
    .sort((a, b) => a.id.localeCompare(b.id));
  return { nodes, edges, collapsed: model.collapsed };
}

describe('edges', () => {
  it('links a producer to the tasks that take its result, in either order', () => {
    const a = task({ task_id: 'a' });
    const b = after([a], { task_id: 'b' });
    const c = after([a, b], { task_id: 'c' });

    const forward = new TaskGraphModel();
    forward.update([a, b, c]);
    const backward = new TaskGraphModel();
    backward.update([c]);
    expect(backward.edges.size).toBe(0);
    backward.update([b]);
    backward.update([a]);

    const expected = ['a->b', 'a->c', 'b->c'];
    expect(edgeIds(forward)).toEqual(expected);
    expect(edgeIds(backward)).toEqual(expected);
    expect(forward.edges.get('a->b')!.kinds.data).toBe(1);
  });

  it('links parents to children and actor creations to their calls', () => {
    const creation = task({
      task_id: 'actor1',
      kind: 'actor_creation',
      actor_id: 'actor1',
      name: 'Counter.__init__'
    });
    const call = task({
      task_id: 'm1',
      kind: 'actor_method',
      actor_id: 'actor1',
      name: 'Counter.incr'
    });
    const child = task({ task_id: 'kid', parent_task_id: 'm1' });
    const model = new TaskGraphModel();
    const delta = model.update([child, call]);
    expect(edgeIds(model)).toEqual(['m1->kid']);
    expect(delta.structure).toBe(true);
    model.update([creation]);
    expect(edgeIds(model)).toEqual(['actor1->m1', 'm1->kid']);
    expect(model.edges.get('actor1->m1')!.kinds.actor).toBe(1);
    expect(model.edges.get('m1->kid')!.kinds.submitted).toBe(1);
  });

  it('drops the edges of a removed task', () => {
    const a = task({ task_id: 'a' });
    const b = after([a], { task_id: 'b' });
    const model = new TaskGraphModel();
    model.update([a, b]);
    const delta = model.update([], ['a']);
    expect(delta.structure).toBe(true);
    expect(model.edges.size).toBe(0);
    expect(Array.from(model.nodes.keys())).toEqual(['b']);
    // ...and links it again if it comes back.
    model.update([a]);
    expect(edgeIds(model)).toEqual(['a->b']);
  });
});

describe('incremental updates', () => {
  it('reports a state change as a look change, not a structure change', () => {
    const a = task({ task_id: 'a' });
    const model = new TaskGraphModel();
    model.update([a]);
    const delta = model.update([inState(a, 'RUNNING')]);
    expect(delta.structure).toBe(false);
    expect(Array.from(delta.changed)).toEqual(['a']);
    const node = model.nodes.get('a')!;
    expect(node.type === 'task' && node.task.state).toBe('RUNNING');
  });

  it('changes nothing when a snapshot repeats what it has', () => {
    const tasks = [task(), task(), task()];
    const model = new TaskGraphModel();
    model.setTasks(tasks);
    const delta = model.setTasks(tasks);
    expect(delta.structure).toBe(false);
    expect(delta.reset).toBe(false);
  });

  it('ends where one big update ends, whatever the batches and their order', () => {
    const rand = random(7);
    const names = ['load', 'clean', 'train', 'score'];
    const tasks: ITask[] = [];
    for (let i = 0; i < 120; i++) {
      const deps = tasks.filter(() => rand() < 0.03).slice(0, 3);
      const parent = tasks.length > 0 && rand() < 0.1 ? tasks[0] : null;
      tasks.push(
        after(deps, {
          task_id: `x${i}`,
          name: names[Math.floor(rand() * names.length)],
          parent_task_id: parent?.task_id ?? null
        })
      );
    }
    const final = tasks.map(t =>
      inState(
        t,
        rand() < 0.8 ? 'FINISHED' : rand() < 0.5 ? 'FAILED' : 'RUNNING'
      )
    );
    for (const threshold of [500, 50]) {
      const whole = new TaskGraphModel({ collapseThreshold: threshold });
      whole.setTasks(final);

      const streamed = new TaskGraphModel({ collapseThreshold: threshold });
      const shuffled = [...tasks].sort(() => rand() - 0.5);
      for (let i = 0; i < shuffled.length; i += 13) {
        streamed.update(shuffled.slice(i, i + 13));
      }
      // Some records go and come back, as after a lagging client's snapshot.
      streamed.update([], ['x3', 'x40', 'x77']);
      streamed.update(final.filter((_, i) => i % 2 === 0));
      streamed.update(final.filter((_, i) => i % 2 === 1));
      expect(picture(streamed)).toEqual(picture(whole));
    }
  });
});

describe('collapsing', () => {
  function pipeline(n: number): ITask[] {
    // n loads, each feeding one square, all squares feeding one sum.
    const loads = Array.from({ length: n }, (_, i) =>
      task({ task_id: `load${i}`, name: 'load' })
    );
    const squares = loads.map((l, i) =>
      after([l], { task_id: `sq${i}`, name: 'square' })
    );
    const total = after(squares, { task_id: 'sum', name: 'sum' });
    return [...loads, ...squares, total];
  }

  it('draws each task while the graph is small', () => {
    const model = new TaskGraphModel({ collapseThreshold: 100 });
    model.setTasks(pipeline(10));
    expect(model.collapsed).toBe(false);
    expect(model.nodes.size).toBe(21);
    expect(model.edges.size).toBe(20);
  });

  it('collapses each function into a group with counts by state past the threshold', () => {
    const model = new TaskGraphModel({ collapseThreshold: 100 });
    const tasks = pipeline(60);
    model.setTasks(tasks.slice(0, 90));
    expect(model.collapsed).toBe(false);
    const delta = model.update(tasks.slice(90));
    expect(delta.reset).toBe(true);
    expect(model.collapsed).toBe(true);
    expect(Array.from(model.nodes.keys()).sort()).toEqual([
      groupId('load'),
      groupId('square'),
      groupId('sum')
    ]);
    const load = model.nodes.get(groupId('load'))!;
    expect(load.type === 'group' && load.total).toBe(60);
    expect(load.type === 'group' && load.counts.pending).toBe(60);
    const edge = model.edges.get(`${groupId('load')}->${groupId('square')}`)!;
    expect(edge.count).toBe(60);
    expect(
      model.edges.get(`${groupId('square')}->${groupId('sum')}`)!.count
    ).toBe(60);
    expect(model.visibleIdOf('sq3')).toBe(groupId('square'));
  });

  it('keeps group counts current as states change, without restructuring', () => {
    const model = new TaskGraphModel({ collapseThreshold: 10 });
    const tasks = pipeline(20);
    model.setTasks(tasks);
    const delta = model.update([
      inState(tasks[0], 'RUNNING'),
      inState(tasks[1], 'FINISHED'),
      inState(tasks[2], 'FAILED')
    ]);
    expect(delta.structure).toBe(false);
    expect(Array.from(delta.changed)).toEqual([groupId('load')]);
    const load = model.nodes.get(groupId('load'))!;
    expect(load.type === 'group' && load.counts).toEqual({
      pending: 17,
      running: 1,
      done: 1,
      failed: 1,
      cancelled: 0
    });
  });

  it('keeps edges inside one group out of the drawing', () => {
    const model = new TaskGraphModel({ collapseThreshold: 3 });
    const chain: ITask[] = [task({ task_id: 'c0', name: 'step' })];
    for (let i = 1; i < 6; i++) {
      chain.push(after([chain[i - 1]], { task_id: `c${i}`, name: 'step' }));
    }
    model.setTasks(chain);
    expect(model.nodes.size).toBe(1);
    expect(model.edges.size).toBe(0);
  });

  it('expands one group and folds it back', () => {
    const model = new TaskGraphModel({ collapseThreshold: 30 });
    const tasks = pipeline(20);
    model.setTasks(tasks);
    const collapsedPicture = picture(model);

    const delta = model.expand('square')!;
    expect(delta.structure).toBe(true);
    expect(model.nodes.has(groupId('square'))).toBe(false);
    expect(model.nodes.has('sq0')).toBe(true);
    expect(model.edges.get(`${groupId('load')}->sq0`)!.count).toBe(1);
    expect(model.edges.get(`sq0->sum`)).toBeUndefined(); // sum is still a group
    expect(model.edges.get(`sq0->${groupId('sum')}`)!.count).toBe(1);

    // Tasks arriving while expanded are drawn one by one too.
    model.update([after([tasks[0]], { task_id: 'sq-late', name: 'square' })]);
    expect(model.nodes.has('sq-late')).toBe(true);
    model.update([], ['sq-late']);

    model.collapse('square');
    expect(picture(model)).toEqual(collapsedPicture);
  });

  it('refuses to expand a group bigger than the threshold', () => {
    const model = new TaskGraphModel({ collapseThreshold: 10 });
    model.setTasks(pipeline(20));
    expect(model.canExpand('load')).toBe(false);
    expect(model.expand('load')).toBeNull();
    expect(model.canExpand('sum')).toBe(true);
  });

  it('draws tasks one by one again when the graph shrinks below the threshold', () => {
    const model = new TaskGraphModel({ collapseThreshold: 10 });
    const tasks = pipeline(6);
    model.setTasks(tasks);
    expect(model.collapsed).toBe(true);
    const delta = model.update(
      [],
      tasks.slice(0, 4).map(t => t.task_id)
    );
    expect(delta.reset).toBe(true);
    expect(model.collapsed).toBe(false);
    expect(model.nodes.size).toBe(9);
    expect(model.nodes.has('sq5')).toBe(true);
  });

  it('regroups when the threshold setting changes', () => {
    const model = new TaskGraphModel({ collapseThreshold: 100 });
    model.setTasks(pipeline(10));
    const delta = model.setCollapseThreshold(5);
    expect(delta.reset).toBe(true);
    expect(model.nodes.size).toBe(3);
  });
});
