import { describe, expect, it } from 'vitest';

import { IPlaced, ISize, Orientation, StableLayout } from '../src/graph/layout';
import { TaskGraphModel } from '../src/graph/model';
import type { ITask } from '../src/types';
import { after, random, task } from './factories';

const SIZE: ISize = { width: 100, height: 30 };

function input(model: TaskGraphModel) {
  return {
    nodes: Array.from(model.nodes.keys()).map(
      id => [id, SIZE] as [string, ISize]
    ),
    edges: Array.from(model.edges.values())
  };
}

function extent(layout: StableLayout, p: IPlaced): number {
  return layout.orientation === 'LR' ? p.height : p.width;
}

function expectNoOverlap(layout: StableLayout, gap: number): void {
  const layers = new Map<number, IPlaced[]>();
  for (const p of layout.positions.values()) {
    layers.set(p.layer, [...(layers.get(p.layer) ?? []), p]);
  }
  for (const layer of layers.values()) {
    layer.sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < layer.length; i++) {
      const room =
        layer[i].offset -
        layer[i - 1].offset -
        (extent(layout, layer[i]) + extent(layout, layer[i - 1])) / 2;
      expect(room).toBeGreaterThanOrEqual(gap - 1e-6);
    }
  }
}

/** Every edge goes to a later layer: rightwards (LR) or downwards (TB). */
function expectForward(layout: StableLayout, model: TaskGraphModel): void {
  for (const edge of model.edges.values()) {
    const source = layout.positions.get(edge.source)!;
    const target = layout.positions.get(edge.target)!;
    expect(target.layer).toBeGreaterThan(source.layer);
    if (layout.orientation === 'LR') {
      expect(target.x).toBeGreaterThan(source.x);
    } else {
      expect(target.y).toBeGreaterThan(source.y);
    }
  }
}

/** A random DAG of `n` tasks in arrival order: each may take results of earlier ones. */
function dag(n: number, seed: number): ITask[] {
  const rand = random(seed);
  const tasks: ITask[] = [];
  for (let i = 0; i < n; i++) {
    const deps = tasks.length
      ? [tasks[Math.floor(rand() * tasks.length)]].filter(() => rand() < 0.7)
      : [];
    tasks.push(after(deps, { task_id: `d${i}`, name: `f${i % 5}` }));
  }
  return tasks;
}

describe.each<Orientation>(['LR', 'TB'])('StableLayout %s', orientation => {
  it('lays a graph out in rows, edges pointing down, nodes apart', () => {
    const model = new TaskGraphModel();
    model.setTasks(dag(60, 1));
    const layout = new StableLayout({ orientation, gap: 20 });
    const placed = layout.update(input(model));
    expect(placed.length).toBe(60);
    expect(layout.fullLayouts).toBe(1);
    expectForward(layout, model);
    expectNoOverlap(layout, 20);
  });

  it('never moves a node once placed while tasks stream in', () => {
    const tasks = dag(150, 2);
    const model = new TaskGraphModel({ collapseThreshold: 1000 });
    const layout = new StableLayout({ orientation, gap: 20 });
    const seen = new Map<string, IPlaced>();
    for (let i = 0; i < tasks.length; i += 10) {
      model.update(tasks.slice(i, i + 10));
      layout.update(input(model));
      for (const [id, before] of seen) {
        expect(layout.positions.get(id)).toEqual(before);
      }
      for (const [id, p] of layout.positions) {
        seen.set(id, { ...p });
      }
      expectForward(layout, model);
      expectNoOverlap(layout, 20);
    }
    expect(layout.fullLayouts).toBe(1);
    expect(seen.size).toBe(150);
  });

  it('places a new task after its inputs, between them', () => {
    const a = task({ task_id: 'a' });
    const b = task({ task_id: 'b' });
    const model = new TaskGraphModel();
    model.setTasks([a, b]);
    const layout = new StableLayout({ orientation });
    layout.update(input(model));
    const c = after([a, b], { task_id: 'c' });
    model.update([c]);
    expect(layout.update(input(model))).toEqual(['c']);
    const pa = layout.positions.get('a')!;
    const pb = layout.positions.get('b')!;
    const pc = layout.positions.get('c')!;
    expect(pc.layer).toBe(Math.max(pa.layer, pb.layer) + 1);
    expect(pc.offset).toBeCloseTo((pa.offset + pb.offset) / 2);
  });

  it('forgets nodes that went and keeps the others', () => {
    const model = new TaskGraphModel();
    const tasks = dag(20, 3);
    model.setTasks(tasks);
    const layout = new StableLayout({ orientation });
    layout.update(input(model));
    const kept = { ...layout.positions.get('d19')! };
    model.update([], ['d0', 'd1']);
    expect(layout.update(input(model))).toEqual([]);
    expect(layout.positions.has('d0')).toBe(false);
    expect(layout.positions.get('d19')).toEqual(kept);
  });

  it('lays out afresh when the graph collapses or is reset', () => {
    const model = new TaskGraphModel({ collapseThreshold: 30 });
    const tasks = dag(40, 4);
    model.setTasks(tasks.slice(0, 25));
    const layout = new StableLayout({ orientation });
    layout.update(input(model));
    model.update(tasks.slice(25));
    expect(model.collapsed).toBe(true);
    layout.update(input(model));
    expect(layout.fullLayouts).toBe(2);
    expect(layout.positions.size).toBe(5);
    layout.reset();
    layout.update(input(model));
    expect(layout.fullLayouts).toBe(3);
  });

  it('lays out 300 nodes in well under a second', () => {
    const model = new TaskGraphModel({ collapseThreshold: 1000 });
    model.setTasks(dag(300, 5));
    const layout = new StableLayout({ orientation });
    const start = performance.now();
    layout.update(input(model));
    expect(performance.now() - start).toBeLessThan(1000);
  });
});
