/**
 * The Task graph section: the live DAG of the tasks of one cell (the one the user is
 * in, or ran last), of this notebook's kernel, or of the whole cluster; click a node for
 * its details, double-click a group to expand it.
 */
import { Message } from '@lumino/messaging';
import { PanelLayout, Widget } from '@lumino/widgets';

import { h, replaceChildren } from '../dom';
import { groupDetails, taskDetails } from '../graph/details';
import { StableLayout } from '../graph/layout';
import { IGraphDelta, TaskGraphModel } from '../graph/model';
import { GraphView } from '../graph/view';
import { Api } from '../api';
import { measure } from '../perf';
import { BUCKETS, Counts, emptyCounts, bucketOf } from '../states';
import type { IStoreChange } from '../store';
import { CommandIDs, IRayCluster } from '../tokens';
import type { ITask } from '../types';
import { Section } from './section';

export type Scope = 'cell' | 'kernel' | 'cluster';

/** Where the user is: the notebook cell the graph follows, and its kernel. */
export interface IFocus {
  cellId: string | null;
  kernelId: string | null;
  /** e.g. "Untitled.ipynb" */
  notebook: string | null;
}

/** How many recent cells the section remembers, to show the latest that has tasks. */
const RECENT_CELLS = 20;

export class GraphSection extends Section {
  constructor(
    cluster: IRayCluster,
    commands: { execute(id: string): Promise<unknown> }
  ) {
    super(cluster, ['tasks', 'jobs', 'status', 'connection']);
    this.addClass('jr-GraphSection');
    this.title.label = 'Task graph';
    this._commands = commands;
    this.model = new TaskGraphModel({
      collapseThreshold: cluster.settings.collapseThreshold
    });
    this._positions = new StableLayout();
    this.view = new GraphView(this.model, this._positions);
    this.view.selected.connect((_, id) => this._showDetails(id));
    this.view.groupActivated.connect((_, name) => this.expand(name));

    this._scopeSelect = h(
      'select',
      {
        class: 'jr-Scope',
        title: 'Which tasks the graph shows',
        onchange: () => this.setScope(this._scopeSelect.value as Scope)
      },
      h('option', { value: 'cell' }, 'This cell'),
      h('option', { value: 'kernel' }, 'This kernel'),
      h('option', { value: 'cluster' }, 'Whole cluster')
    );
    const header = new Widget({
      node: h(
        'div',
        { class: 'jr-GraphSection-header' },
        this._scopeSelect,
        this._subject,
        h(
          'button',
          {
            class: 'jr-IconButton jr-Fit',
            title: 'Fit the graph to the view',
            onclick: () => this.view.fitToView()
          },
          '⤢'
        ),
        h(
          'button',
          {
            class: 'jr-IconButton jr-Relayout',
            title: 'Lay the graph out afresh',
            onclick: () => this.relayout()
          },
          '↺'
        )
      )
    });
    const footer = new Widget({
      node: h(
        'div',
        { class: 'jr-GraphSection-footer' },
        this._counts,
        this._details
      )
    });
    const layout = new PanelLayout();
    layout.addWidget(header);
    layout.addWidget(new Widget({ node: this._empty }));
    layout.addWidget(this.view);
    layout.addWidget(footer);
    this.layout = layout;
    cluster.settingsChanged.connect((_, settings) => {
      this._apply(this.model.setCollapseThreshold(settings.collapseThreshold));
    });
  }

  readonly model: TaskGraphModel;
  readonly view: GraphView;

  get scope(): Scope {
    return this._scope;
  }

  /** The cell shown in `cell` scope (the focused one, or the latest with tasks). */
  get shownCell(): string | null {
    return this._shownCell;
  }

  setScope(scope: Scope): void {
    if (scope === this._scope) {
      return;
    }
    this._scope = scope;
    this._scopeSelect.value = scope;
    this._subjectChanged();
  }

  /** Follow the user: called when the active cell, notebook or kernel changes. */
  follow(focus: IFocus): void {
    const kernelChanged = focus.kernelId !== this._focus.kernelId;
    this._focus = focus;
    if (focus.cellId) {
      this._remember(focus.cellId);
    }
    if (this._scope === 'kernel' && kernelChanged) {
      this._subjectChanged();
      return;
    }
    this._pickCell();
  }

  /** A cell was run: show it as soon as it has tasks. */
  cellRan(cellId: string): void {
    this._remember(cellId);
    this._pickCell();
  }

  /** Show one cell's graph now (a click on its strip). */
  showCell(cellId: string, kernelId: string | null): void {
    this._remember(cellId);
    this._focus = {
      ...this._focus,
      cellId,
      kernelId: kernelId ?? this._focus.kernelId
    };
    this._scope = 'cell';
    this._scopeSelect.value = 'cell';
    this._shownCell = null;
    this._pickCell(true);
  }

  expand(name: string): void {
    const delta = this.model.expand(name);
    if (delta) {
      this._apply(delta);
    }
  }

  collapse(name: string): void {
    const delta = this.model.collapse(name);
    if (delta) {
      this._apply(delta);
    }
  }

  relayout(): void {
    this._positions.reset();
    this.view.resetView();
    this._render(null);
  }

  protected override onStoreChange(change: IStoreChange): void {
    if (change.cells.size > 0 && this._scope === 'cell') {
      const before = this._shownCell;
      this._pickCell();
      if (this._shownCell !== before) {
        return; // the new subject was drawn whole
      }
    }
    if (!this.isVisible) {
      this._pending = true;
      return;
    }
    if (
      this._pending ||
      change.reset ||
      (this._scope === 'kernel' && change.kinds.has('jobs'))
    ) {
      this._rebuild();
      return;
    }
    if (change.tasks.size === 0 && change.removedTasks.size === 0) {
      return;
    }
    const started = performance.now();
    const tables = this.cluster.store.tables.tasks;
    const match = this._matcher();
    const changed: ITask[] = [];
    for (const id of change.tasks) {
      const task = tables.get(id);
      if (task && match(task)) {
        changed.push(task);
      }
    }
    if (changed.length > 0 || change.removedTasks.size > 0) {
      this._apply(
        this.model.update(changed, change.removedTasks),
        started,
        changed.length
      );
    }
  }

  protected draw(): void {
    if (this._pending) {
      this._rebuild();
    } else {
      this._drawChrome();
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.view.fitToView();
  }

  // --- what is shown ---

  private _remember(cellId: string): void {
    this._recent = [cellId, ...this._recent.filter(c => c !== cellId)].slice(
      0,
      RECENT_CELLS
    );
  }

  /** In cell scope: the most recent cell (focused or run) that has tasks. */
  private _pickCell(force = false): void {
    const store = this.cluster.store;
    const cell = this._recent.find(c => store.cellSummary(c) !== null) ?? null;
    if (cell !== this._shownCell || force) {
      this._shownCell = cell;
      if (this._scope === 'cell') {
        this._subjectChanged();
      }
    } else if (this._scope === 'kernel') {
      this._drawChrome();
    }
  }

  private _subjectChanged(): void {
    this._positions.reset();
    this.view.resetView();
    this.view.select(null);
    this._selectedTask = null;
    this._extra.clear();
    replaceChildren(this._details);
    // A new subject is a new graph: drawn from nothing, as the measurements assume.
    this.model.setTasks([]);
    this._pending = true;
    if (this.isVisible) {
      this._rebuild();
    }
  }

  private _matcher(): (task: ITask) => boolean {
    switch (this._scope) {
      case 'cell': {
        const cell = this._shownCell;
        return task => cell !== null && task.cell_id === cell;
      }
      case 'kernel': {
        const jobs = this._focus.kernelId
          ? this.cluster.store.jobsOfKernel(this._focus.kernelId)
          : new Set<string>();
        return task => task.job_id !== null && jobs.has(task.job_id);
      }
      case 'cluster':
        return () => true;
    }
  }

  /** Make the model hold exactly the tasks in scope (positions of kept nodes stay). */
  private _rebuild(): void {
    const started = performance.now();
    this._pending = false;
    const match = this._matcher();
    const tasks: ITask[] = [];
    for (const task of this.cluster.store.tables.tasks.values()) {
      if (match(task)) {
        tasks.push(task);
      }
    }
    this._apply(this.model.setTasks(tasks), started, tasks.length, true);
  }

  private _apply(
    delta: IGraphDelta,
    started = performance.now(),
    records = 0,
    rebuild = false
  ): void {
    if (!this.isVisible) {
      this._pending = true;
      return;
    }
    this._render(delta, started, records, rebuild);
  }

  /** Draw a delta; `started` is when the work on it began (model update included). */
  private _render(
    delta: IGraphDelta | null,
    started = performance.now(),
    records = 0,
    rebuild = false
  ): void {
    this.view.render(rebuild ? null : delta);
    // The browser test and the benchmarks read these: model update, layout and DOM, for
    // `records` task records.
    const took = measure('jupyter-ray:graph-draw', started, {
      tasks: this.model.taskCount,
      nodes: this.model.nodes.size,
      records,
      rebuild
    });
    this.node.dataset.drawMs = took.toFixed(1);
    this._drawChrome();
    if (this._selectedTask) {
      const task = this.cluster.store.tables.tasks.get(this._selectedTask);
      if (
        task &&
        (delta === null || rebuild || delta.changed.has(task.task_id))
      ) {
        this._showTaskDetails(task);
      }
    }
  }

  /** The subject line, counts, and what to say when there is nothing to draw. */
  private _drawChrome(): void {
    const store = this.cluster.store;
    const count = this.model.taskCount;
    this.node.dataset.scope = this._scope;
    this.node.dataset.tasks = String(count);
    this.node.dataset.collapsed = String(this.model.collapsed);
    let subject: string;
    switch (this._scope) {
      case 'cell': {
        const sample = this._shownCell ? this._firstTask() : null;
        subject = this._shownCell
          ? `Cell ${sample?.cell_execution_count ? `[${sample.cell_execution_count}]` : this._shownCell.slice(0, 8)}`
          : 'No cell with tasks yet';
        break;
      }
      case 'kernel':
        subject = this._focus.kernelId
          ? `Kernel of ${this._focus.notebook ?? this._focus.kernelId.slice(0, 8)}`
          : 'No notebook kernel';
        break;
      case 'cluster':
        subject = 'Every task the runtime remembers';
        break;
    }
    this._subject.textContent = subject;
    this._subject.title = subject;

    const counts: Counts = emptyCounts();
    for (const node of this.model.nodes.values()) {
      if (node.type === 'group') {
        for (const b of BUCKETS) {
          counts[b] += node.counts[b];
        }
      } else {
        counts[bucketOf(node.task.state)] += 1;
      }
    }
    replaceChildren(
      this._counts,
      ...(count > 0
        ? [
            h(
              'span',
              { class: 'jr-GraphSection-total' },
              `${count} task${count === 1 ? '' : 's'}${this.model.collapsed ? ', grouped by function' : ''}`
            ),
            ...BUCKETS.filter(b => counts[b] > 0).map(b =>
              h(
                'span',
                { class: `jr-Count-chip jr-bucket-${b}` },
                `${counts[b]} ${b}`
              )
            )
          ]
        : [])
    );

    const running = store.status?.state === 'running';
    let empty: (Node | string)[] = [];
    if (store.connection === 'closed') {
      empty = ['Disconnected from the server; reconnecting…'];
    } else if (store.status && !running) {
      empty = [
        store.status.state === 'starting'
          ? 'The runtime is starting…'
          : 'No runtime is running.',
        store.status.state === 'starting'
          ? ''
          : h(
              'button',
              {
                class: 'jp-Button jp-mod-styled jp-mod-accept jr-Start',
                onclick: () => void this._commands.execute(CommandIDs.start)
              },
              'Start a runtime'
            )
      ];
    } else if (count === 0) {
      empty = [
        this._scope === 'cell'
          ? 'Run a cell that submits tasks: its graph shows here.'
          : 'No tasks yet.'
      ];
    }
    replaceChildren(this._empty, ...empty);
    this._empty.classList.toggle('jr-mod-hidden', empty.length === 0);
    this.view.setHidden(count === 0);
  }

  private _firstTask(): ITask | null {
    for (const node of this.model.nodes.values()) {
      if (node.type === 'task') {
        return node.task;
      }
    }
    const group = this.model.nodes.values().next().value;
    return group && group.type === 'group'
      ? (this.model.tasksOfGroup(group.name)[0] ?? null)
      : null;
  }

  private _showDetails(id: string | null): void {
    this._selectedTask = null;
    const node = id ? this.model.nodes.get(id) : undefined;
    if (!node) {
      replaceChildren(this._details);
      return;
    }
    if (node.type === 'group') {
      replaceChildren(
        this._details,
        groupDetails(node, this.model.canExpand(node.name), () =>
          this.expand(node.name)
        )
      );
      return;
    }
    this._selectedTask = node.task.task_id;
    this._showTaskDetails(node.task);
    // The task route may know more than the feed's record (arguments, traceback).
    Api.task(node.task.task_id)
      .then(full => {
        if (this._selectedTask === full.task_id) {
          this._extra.set(full.task_id, full);
          this._showTaskDetails(
            this.cluster.store.tables.tasks.get(full.task_id) ?? full
          );
        }
      })
      .catch(() => undefined);
  }

  private _showTaskDetails(task: ITask): void {
    const extra = this._extra.get(task.task_id);
    const merged: ITask = extra
      ? {
          ...extra,
          ...task,
          args_preview: task.args_preview ?? extra.args_preview,
          traceback: task.traceback ?? extra.traceback
        }
      : task;
    const details = taskDetails(merged);
    if (this.model.collapsed && this.model.expanded.has(task.name)) {
      details.appendChild(
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jr-Details-fold',
            onclick: () => this.collapse(task.name)
          },
          `Fold ${task.name} into one node`
        )
      );
    }
    replaceChildren(this._details, details);
  }

  private _commands: { execute(id: string): Promise<unknown> };
  private _positions: StableLayout;
  private _scope: Scope = 'cell';
  private _scopeSelect: HTMLSelectElement;
  private _subject = h('span', { class: 'jr-GraphSection-subject' });
  private _counts = h('div', { class: 'jr-GraphSection-counts' });
  private _details = h('div', { class: 'jr-GraphSection-details' });
  private _empty = h('div', { class: 'jr-GraphSection-empty' });
  private _focus: IFocus = { cellId: null, kernelId: null, notebook: null };
  private _recent: string[] = [];
  private _shownCell: string | null = null;
  private _pending = true;
  private _selectedTask: string | null = null;
  private _extra = new Map<string, ITask>();
}
