/**
 * Puts a `CellStrip` under the input of every code cell that submitted tasks, in every
 * open notebook, and keeps the strips current from the store: also for cells that
 * finished long ago, whose tasks the feed still reports.
 */
import type { Cell } from '@jupyterlab/cells';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { PanelLayout } from '@lumino/widgets';

import type { IStoreChange } from '../store';
import type { IRayCluster } from '../tokens';
import { CellStrip } from './strip';

export class CellStrips implements IDisposable {
  constructor(
    cluster: IRayCluster,
    tracker: INotebookTracker,
    onClick: (cellId: string, panel: NotebookPanel) => void
  ) {
    this._cluster = cluster;
    this._tracker = tracker;
    this._onClick = onClick;
    tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    tracker.forEach(panel => this._watch(panel));
    cluster.store.changed.connect(this._onStoreChanged, this);
    cluster.settingsChanged.connect(() => this._refreshAll());
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._cluster.store.changed.disconnect(this._onStoreChanged, this);
    this._tracker.forEach(panel => this._clear(panel));
  }

  /** The strip of a cell, if it shows one (for tests and the status of a cell). */
  stripOf(cell: Cell): CellStrip | undefined {
    return this._strips.get(cell);
  }

  private _watch(panel: NotebookPanel): void {
    const refresh = () => this._schedule(panel);
    panel.content.modelChanged.connect(refresh);
    panel.content.model?.cells.changed.connect(refresh);
    panel.content.modelChanged.connect(() =>
      panel.content.model?.cells.changed.connect(refresh)
    );
    void panel.context.ready.then(refresh);
  }

  /** Refresh a notebook after Lab made the widgets of its new cells. */
  private _schedule(panel: NotebookPanel): void {
    requestAnimationFrame(() => {
      if (!panel.isDisposed) {
        this._refreshPanel(panel, null);
      }
    });
  }

  private _onStoreChanged(_: unknown, change: IStoreChange): void {
    if (change.cells.size === 0 && !change.reset) {
      return;
    }
    this._tracker.forEach(panel =>
      this._refreshPanel(panel, change.reset ? null : change.cells)
    );
  }

  private _refreshAll(): void {
    this._tracker.forEach(panel => this._refreshPanel(panel, null));
  }

  /** Update the strips of `cells` (every cell when null) in one notebook. */
  private _refreshPanel(
    panel: NotebookPanel,
    cells: ReadonlySet<string> | null
  ): void {
    const enabled = this._cluster.settings.cellStrips;
    for (const cell of panel.content.widgets) {
      if (cell.model.type !== 'code') {
        continue;
      }
      const id = cell.model.id;
      if (cells !== null && !cells.has(id)) {
        continue;
      }
      const summary = enabled ? this._cluster.store.cellSummary(id) : null;
      let strip = this._strips.get(cell);
      if (!summary) {
        if (strip) {
          strip.dispose();
          this._strips.delete(cell);
        }
        continue;
      }
      if (!strip || strip.isDisposed) {
        strip = new CellStrip(() => this._onClick(cell.model.id, panel));
        strip.node.dataset.cellId = id;
        this._strips.set(cell, strip);
        this._attach(cell, strip);
      }
      strip.setSummary(summary);
    }
  }

  private _attach(cell: Cell, strip: CellStrip): void {
    void cell.ready.then(() => {
      if (strip.isDisposed || cell.isDisposed) {
        return;
      }
      const layout = cell.layout as PanelLayout;
      const input = cell.inputArea?.parent;
      const index = input ? layout.widgets.indexOf(input) : -1;
      layout.insertWidget(
        index >= 0 ? index + 1 : layout.widgets.length,
        strip
      );
    });
  }

  private _clear(panel: NotebookPanel): void {
    for (const cell of panel.content.widgets) {
      this._strips.get(cell)?.dispose();
      this._strips.delete(cell);
    }
  }

  private _cluster: IRayCluster;
  private _tracker: INotebookTracker;
  private _onClick: (cellId: string, panel: NotebookPanel) => void;
  private _strips = new WeakMap<Cell, CellStrip>();
  private _disposed = false;
}
