/**
 * The task graph the sidebar draws: task records in, visible nodes and edges out.
 *
 * Edges come from the records (docs/rest-api.md): `data` from the task that returns an
 * object to each task that takes it as an argument, `submitted` from a parent task to
 * its child, `actor` from an actor's creation task to each of its method calls. Records
 * may arrive in any order; an edge appears once both ends are known.
 *
 * Past `collapseThreshold` tasks the graph collapses: every function becomes one group
 * node carrying counts by state, and edges between groups carry how many task edges
 * they stand for. A group can be expanded again (when it is not itself too big).
 *
 * Updates are incremental: `update()` touches only what the changed records touch and
 * says, in the delta it returns, whether the structure changed (then the layout runs)
 * or only the look of some nodes (then the view recolours them).
 */
import { Bucket, bucketOf, Counts, emptyCounts } from '../states';
import type { ITask } from '../types';

export type EdgeKind = 'data' | 'submitted' | 'actor';

export interface ITaskNode {
  readonly type: 'task';
  readonly id: string;
  task: ITask;
}

export interface IGroupNode {
  readonly type: 'group';
  /** `group:<function name>` */
  readonly id: string;
  readonly name: string;
  readonly counts: Counts;
  total: number;
}

export type GraphNode = ITaskNode | IGroupNode;

export interface IGraphEdge {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  /** How many task-level edges this visible edge stands for, by kind. */
  readonly kinds: Record<EdgeKind, number>;
  count: number;
}

export interface IGraphDelta {
  /** Visible nodes or edges appeared or went: the layout must place them. */
  structure: boolean;
  /** Every visible node was replaced (the graph collapsed or expanded as a whole). */
  reset: boolean;
  /** Visible nodes whose record or counts changed: redraw them. */
  readonly changed: Set<string>;
  /** Visible edges whose counts changed. */
  readonly changedEdges: Set<string>;
}

export interface ITaskGraphOptions {
  /** Past this many tasks, tasks of one function collapse into one node. */
  collapseThreshold?: number;
}

interface ITaskEdge {
  readonly source: string;
  readonly target: string;
  readonly kind: EdgeKind;
}

export const GROUP_PREFIX = 'group:';

export function groupId(name: string): string {
  return GROUP_PREFIX + name;
}

export class TaskGraphModel {
  constructor(options: ITaskGraphOptions = {}) {
    this._threshold = options.collapseThreshold ?? 250;
  }

  /** Visible nodes by id. */
  get nodes(): ReadonlyMap<string, GraphNode> {
    return this._nodes;
  }

  /** Visible edges by id (`source->target`). */
  get edges(): ReadonlyMap<string, IGraphEdge> {
    return this._edges;
  }

  /** Number of tasks in the graph (visible or inside groups). */
  get taskCount(): number {
    return this._tasks.size;
  }

  /** Whether tasks of a function are drawn as group nodes. */
  get collapsed(): boolean {
    return this._collapsed;
  }

  get collapseThreshold(): number {
    return this._threshold;
  }

  /** Change the threshold; answers the delta of the regrouping, if any. */
  setCollapseThreshold(value: number): IGraphDelta {
    this._threshold = value;
    const delta = newDelta();
    this._checkCollapse(delta);
    return delta;
  }

  /** Function names whose groups the user expanded. */
  get expanded(): ReadonlySet<string> {
    return this._expanded;
  }

  task(taskId: string): ITask | undefined {
    return this._tasks.get(taskId)?.task;
  }

  /** The visible node a task is drawn as: itself, or its function's group. */
  visibleIdOf(taskId: string): string | undefined {
    const entry = this._tasks.get(taskId);
    return entry ? this._visibleOf(entry.task) : undefined;
  }

  /** The tasks of one function, in the order they arrived. */
  tasksOfGroup(name: string): ITask[] {
    const ids = this._byName.get(name);
    const tasks: ITask[] = [];
    if (ids) {
      for (const id of ids) {
        const entry = this._tasks.get(id);
        if (entry) {
          tasks.push(entry.task);
        }
      }
    }
    return tasks;
  }

  /** Whether a group is small enough to expand. */
  canExpand(name: string): boolean {
    return (this._byName.get(name)?.size ?? 0) <= this._threshold;
  }

  /**
   * Make the graph hold exactly `tasks`: records not among them are removed, the others
   * added or updated. A snapshot of the same tasks changes nothing.
   */
  setTasks(tasks: Iterable<ITask>): IGraphDelta {
    const list = Array.from(tasks);
    const keep = new Set(list.map(t => t.task_id));
    const removed: string[] = [];
    for (const id of this._tasks.keys()) {
      if (!keep.has(id)) {
        removed.push(id);
      }
    }
    return this.update(list, removed);
  }

  /** Apply changed (new or updated) records and removed task ids. */
  update(
    changed: Iterable<ITask>,
    removed: Iterable<string> = []
  ): IGraphDelta {
    const delta = newDelta();
    for (const id of removed) {
      this._removeTask(id, delta);
    }
    const records = Array.from(changed);
    // A burst that will cross the threshold goes straight into groups, rather than
    // drawing thousands of task nodes only to fold them a moment later.
    if (!this._collapsed) {
      let added = 0;
      for (const task of records) {
        added += this._tasks.has(task.task_id) ? 0 : 1;
      }
      if (this._tasks.size + added > this._threshold) {
        this._collapsed = true;
        this._rebuild(delta);
        delta.reset = true;
      }
    }
    for (const task of records) {
      const entry = this._tasks.get(task.task_id);
      if (entry) {
        this._updateTask(entry, task, delta);
      } else {
        this._addTask(task, delta);
      }
    }
    this._checkCollapse(delta);
    return delta;
  }

  /** Draw the tasks of one function one by one again. False when it is too big. */
  expand(name: string): IGraphDelta | null {
    if (!this.canExpand(name) || this._expanded.has(name)) {
      return null;
    }
    this._expanded.add(name);
    return this._regroup([name]);
  }

  /** Fold the tasks of one function back into its group node. */
  collapse(name: string): IGraphDelta | null {
    if (!this._expanded.delete(name)) {
      return null;
    }
    return this._regroup([name]);
  }

  // --- tasks and task-level edges ---

  private _addTask(task: ITask, delta: IGraphDelta): void {
    const id = task.task_id;
    const entry: Private.ITaskEntry = { task, edges: new Set() };
    this._tasks.set(id, entry);
    let names = this._byName.get(task.name);
    if (!names) {
      names = new Set();
      this._byName.set(task.name, names);
    }
    names.add(id);
    this._showTask(task, delta);

    // Edges to tasks already here, and from tasks that arrived before this one.
    for (const objectId of task.returns) {
      this._producer.set(objectId, id);
      for (const consumer of this._consumers.get(objectId) ?? []) {
        this._addEdge({ source: id, target: consumer, kind: 'data' }, delta);
      }
    }
    for (const objectId of task.depends_on) {
      Private.addTo(this._consumers, objectId, id);
      const producer = this._producer.get(objectId);
      if (producer !== undefined) {
        this._addEdge({ source: producer, target: id, kind: 'data' }, delta);
      }
    }
    if (task.parent_task_id) {
      Private.addTo(this._children, task.parent_task_id, id);
      if (this._tasks.has(task.parent_task_id)) {
        this._addEdge(
          { source: task.parent_task_id, target: id, kind: 'submitted' },
          delta
        );
      }
    }
    for (const child of this._children.get(id) ?? []) {
      this._addEdge({ source: id, target: child, kind: 'submitted' }, delta);
    }
    if (task.kind === 'actor_method' && task.actor_id) {
      Private.addTo(this._methods, task.actor_id, id);
      if (this._tasks.has(task.actor_id)) {
        this._addEdge(
          { source: task.actor_id, target: id, kind: 'actor' },
          delta
        );
      }
    }
    if (task.kind === 'actor_creation') {
      for (const method of this._methods.get(id) ?? []) {
        this._addEdge({ source: id, target: method, kind: 'actor' }, delta);
      }
    }
  }

  private _updateTask(
    entry: Private.ITaskEntry,
    task: ITask,
    delta: IGraphDelta
  ): void {
    const previous = entry.task;
    entry.task = task;
    const visible = this._visibleOf(task);
    const node = this._nodes.get(visible);
    if (node?.type === 'group') {
      const before = bucketOf(previous.state);
      const after = bucketOf(task.state);
      if (before !== after) {
        node.counts[before] -= 1;
        node.counts[after] += 1;
        delta.changed.add(visible);
      }
    } else if (node) {
      node.task = task;
      delta.changed.add(visible);
    }
  }

  private _removeTask(id: string, delta: IGraphDelta): void {
    const entry = this._tasks.get(id);
    if (!entry) {
      return;
    }
    const task = entry.task;
    for (const key of Array.from(entry.edges)) {
      this._removeEdge(key, delta);
    }
    this._hideTask(task, delta);
    this._tasks.delete(id);
    const names = this._byName.get(task.name);
    names?.delete(id);
    if (names?.size === 0) {
      this._byName.delete(task.name);
      this._expanded.delete(task.name);
    }
    for (const objectId of task.returns) {
      if (this._producer.get(objectId) === id) {
        this._producer.delete(objectId);
      }
    }
    for (const objectId of task.depends_on) {
      Private.removeFrom(this._consumers, objectId, id);
    }
    if (task.parent_task_id) {
      Private.removeFrom(this._children, task.parent_task_id, id);
    }
    if (task.actor_id && task.kind === 'actor_method') {
      Private.removeFrom(this._methods, task.actor_id, id);
    }
  }

  private _addEdge(edge: ITaskEdge, delta: IGraphDelta): void {
    const key = `${edge.source}->${edge.target}:${edge.kind}`;
    if (this._taskEdges.has(key) || edge.source === edge.target) {
      return;
    }
    this._taskEdges.set(key, edge);
    this._tasks.get(edge.source)?.edges.add(key);
    this._tasks.get(edge.target)?.edges.add(key);
    this._showEdge(edge, +1, delta);
  }

  private _removeEdge(key: string, delta: IGraphDelta): void {
    const edge = this._taskEdges.get(key);
    if (!edge) {
      return;
    }
    this._taskEdges.delete(key);
    this._tasks.get(edge.source)?.edges.delete(key);
    this._tasks.get(edge.target)?.edges.delete(key);
    this._showEdge(edge, -1, delta);
  }

  // --- the visible layer ---

  private _isGrouped(name: string): boolean {
    return this._collapsed && !this._expanded.has(name);
  }

  private _visibleOf(task: ITask): string {
    return this._isGrouped(task.name) ? groupId(task.name) : task.task_id;
  }

  private _showTask(task: ITask, delta: IGraphDelta): void {
    const visible = this._visibleOf(task);
    if (visible === task.task_id) {
      this._nodes.set(visible, { type: 'task', id: visible, task });
      delta.structure = true;
      delta.changed.add(visible);
      return;
    }
    let group = this._nodes.get(visible) as IGroupNode | undefined;
    if (!group) {
      group = {
        type: 'group',
        id: visible,
        name: task.name,
        counts: emptyCounts(),
        total: 0
      };
      this._nodes.set(visible, group);
      delta.structure = true;
    }
    group.counts[bucketOf(task.state)] += 1;
    group.total += 1;
    delta.changed.add(visible);
  }

  private _hideTask(task: ITask, delta: IGraphDelta): void {
    const visible = this._visibleOf(task);
    const node = this._nodes.get(visible);
    if (!node) {
      return;
    }
    if (node.type === 'task') {
      this._nodes.delete(visible);
      delta.structure = true;
      delta.changed.delete(visible);
      return;
    }
    const bucket: Bucket = bucketOf(task.state);
    node.counts[bucket] -= 1;
    node.total -= 1;
    if (node.total <= 0) {
      this._nodes.delete(visible);
      delta.structure = true;
      delta.changed.delete(visible);
    } else {
      delta.changed.add(visible);
    }
  }

  private _showEdge(edge: ITaskEdge, sign: 1 | -1, delta: IGraphDelta): void {
    const source = this.visibleIdOf(edge.source);
    const target = this.visibleIdOf(edge.target);
    if (source === undefined || target === undefined || source === target) {
      return; // an edge inside one group is part of the group
    }
    const key = `${source}->${target}`;
    let visible = this._edges.get(key);
    if (!visible) {
      if (sign < 0) {
        return;
      }
      visible = {
        id: key,
        source,
        target,
        kinds: { data: 0, submitted: 0, actor: 0 },
        count: 0
      };
      this._edges.set(key, visible);
      delta.structure = true;
    }
    visible.kinds[edge.kind] += sign;
    visible.count += sign;
    if (visible.count <= 0) {
      this._edges.delete(key);
      delta.structure = true;
      delta.changedEdges.delete(key);
    } else {
      delta.changedEdges.add(key);
    }
  }

  /** Collapse or expand the whole graph when the task count crosses the threshold. */
  private _checkCollapse(delta: IGraphDelta): void {
    const collapsed = this._tasks.size > this._threshold;
    if (collapsed === this._collapsed) {
      return;
    }
    this._collapsed = collapsed;
    if (!collapsed) {
      this._expanded.clear();
    }
    this._rebuild(delta);
    delta.reset = true;
  }

  /** Redraw the tasks of some functions after their grouping changed. */
  private _regroup(names: string[]): IGraphDelta {
    const delta = newDelta();
    const tasks: ITask[] = [];
    const edges = new Set<string>();
    for (const name of names) {
      for (const task of this.tasksOfGroup(name)) {
        tasks.push(task);
        for (const key of this._tasks.get(task.task_id)!.edges) {
          edges.add(key);
        }
      }
    }
    // Take the edges and tasks out as they were drawn, then put them back as they are now.
    const wasExpanded = new Map(names.map(n => [n, this._expanded.has(n)]));
    for (const name of names) {
      Private.toggle(this._expanded, name, !wasExpanded.get(name));
    }
    for (const key of edges) {
      this._showEdge(this._taskEdges.get(key)!, -1, delta);
    }
    for (const task of tasks) {
      this._hideTask(task, delta);
    }
    for (const name of names) {
      Private.toggle(this._expanded, name, wasExpanded.get(name)!);
    }
    for (const task of tasks) {
      this._showTask(task, delta);
    }
    for (const key of edges) {
      this._showEdge(this._taskEdges.get(key)!, +1, delta);
    }
    return delta;
  }

  private _rebuild(delta: IGraphDelta): void {
    this._nodes.clear();
    this._edges.clear();
    delta.changed.clear();
    delta.changedEdges.clear();
    for (const entry of this._tasks.values()) {
      this._showTask(entry.task, delta);
    }
    for (const edge of this._taskEdges.values()) {
      this._showEdge(edge, +1, delta);
    }
    delta.structure = true;
  }

  private _threshold: number;
  private _collapsed = false;
  private _expanded = new Set<string>();
  private _tasks = new Map<string, Private.ITaskEntry>();
  private _byName = new Map<string, Set<string>>();
  private _producer = new Map<string, string>();
  private _consumers = new Map<string, Set<string>>();
  private _children = new Map<string, Set<string>>();
  private _methods = new Map<string, Set<string>>();
  private _taskEdges = new Map<string, ITaskEdge>();
  private _nodes = new Map<string, GraphNode>();
  private _edges = new Map<string, IGraphEdge>();
}

export function newDelta(): IGraphDelta {
  return {
    structure: false,
    reset: false,
    changed: new Set(),
    changedEdges: new Set()
  };
}

namespace Private {
  export interface ITaskEntry {
    task: ITask;
    /** Keys of the task-level edges that touch this task. */
    edges: Set<string>;
  }

  export function addTo(
    map: Map<string, Set<string>>,
    key: string,
    value: string
  ): void {
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(value);
  }

  export function removeFrom(
    map: Map<string, Set<string>>,
    key: string,
    value: string
  ): void {
    const set = map.get(key);
    if (set) {
      set.delete(value);
      if (set.size === 0) {
        map.delete(key);
      }
    }
  }

  export function toggle(set: Set<string>, value: string, on: boolean): void {
    if (on) {
      set.add(value);
    } else {
      set.delete(value);
    }
  }
}
