/**
 * The Timeline section: a Gantt chart of recent tasks, one row per worker (the data of
 * `timeline()`), and a button that downloads the server's Chrome trace.
 */
import { showErrorMessage } from '@jupyterlab/apputils';

import { Api } from '../api';
import { h, replaceChildren, svg } from '../dom';
import { bucketOf, formatDuration, shortId } from '../states';
import type { IRayCluster } from '../tokens';
import type { ITask } from '../types';
import { Section } from './section';

/** Tasks drawn at most: the most recent ones. */
const MAX_BARS = 600;
const ROW = 16;
const LABEL = 96;
const AXIS = 18;
/** The chart redraws at most this often; it is wide and nobody reads it at 4 Hz. */
const MIN_INTERVAL_MS = 1000;

interface IBar {
  task: ITask;
  start: number;
  end: number;
  row: string;
}

export class TimelineSection extends Section {
  constructor(cluster: IRayCluster) {
    super(cluster, ['tasks', 'status']);
    this.addClass('jr-TimelineSection');
    this.title.label = 'Timeline';
    const download = h(
      'button',
      {
        class: 'jp-Button jp-mod-styled jr-DownloadTrace',
        title:
          'Download the Chrome trace of recent tasks (open it in Perfetto or chrome://tracing)',
        onclick: () => void this.download()
      },
      'Download trace'
    );
    this.node.append(
      h(
        'div',
        { class: 'jr-TimelineSection-toolbar' },
        this._caption,
        download
      ),
      this._chart
    );
    // Redraw at the new width when the sidebar is resized.
    this._resizeObserver = new ResizeObserver(() => {
      if (this.isVisible && this._chart.firstChild) {
        this._drawChart();
      }
    });
    this._resizeObserver.observe(this.node);
  }

  async download(): Promise<void> {
    try {
      await Api.downloadTimeline();
    } catch (error) {
      await showErrorMessage('Could not download the trace', error as Error);
    }
  }

  protected draw(): void {
    const wait = this._last + MIN_INTERVAL_MS - performance.now();
    if (wait > 0) {
      if (this._timer === undefined) {
        this._timer = window.setTimeout(() => {
          this._timer = undefined;
          this.refresh();
        }, wait);
      }
      return;
    }
    this._last = performance.now();
    this._drawChart();
  }

  override dispose(): void {
    window.clearTimeout(this._timer);
    this._resizeObserver.disconnect();
    super.dispose();
  }

  private _drawChart(): void {
    const now = Date.now() / 1000;
    const bars: IBar[] = [];
    for (const task of this.cluster.store.tables.tasks.values()) {
      const start = task.times.RUNNING ?? task.times.SCHEDULED;
      if (start === undefined || task.kind === 'actor_creation') {
        continue;
      }
      const end =
        task.times.FINISHED ?? task.times.FAILED ?? task.times.CANCELLED ?? now;
      const worker =
        task.worker_pid !== null ? `pid ${task.worker_pid}` : 'remote';
      bars.push({
        task,
        start,
        end,
        row: `${shortId(task.node_id, 6)} ${worker}`
      });
    }
    bars.sort((a, b) => b.start - a.start);
    bars.length = Math.min(bars.length, MAX_BARS);
    if (bars.length === 0) {
      this._caption.textContent = 'No task has run yet.';
      replaceChildren(this._chart);
      return;
    }
    const rows = Array.from(new Set(bars.map(b => b.row))).sort();
    const t0 = Math.min(...bars.map(b => b.start));
    const t1 = Math.max(...bars.map(b => b.end));
    const span = Math.max(t1 - t0, 0.001);
    const width = Math.max(240, this.node.clientWidth - 8);
    const plot = width - LABEL - 8;
    const x = (t: number): number => LABEL + ((t - t0) / span) * plot;
    const chart = svg('svg', {
      class: 'jr-Timeline',
      width,
      height: AXIS + rows.length * ROW + 4
    });
    const ticks = plot > 320 ? 4 : 2;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (span * i) / ticks;
      const tick = svg('text', {
        class: 'jr-Timeline-tick',
        x: x(t),
        y: 12,
        'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle'
      });
      tick.textContent = `${i === 0 ? '' : '+'}${formatDuration(t - t0)}`;
      chart.appendChild(tick);
    }
    rows.forEach((row, i) => {
      const label = svg('text', {
        class: 'jr-Timeline-row',
        x: 0,
        y: AXIS + i * ROW + 11
      });
      label.textContent = row;
      chart.appendChild(label);
    });
    const rowIndex = new Map(rows.map((r, i) => [r, i]));
    for (const b of bars) {
      const rect = svg('rect', {
        class: `jr-Timeline-bar jr-bucket-${bucketOf(b.task.state)}`,
        x: x(b.start),
        y: AXIS + rowIndex.get(b.row)! * ROW + 2,
        width: Math.max(1, x(b.end) - x(b.start)),
        height: ROW - 4
      });
      const title = svg('title');
      title.textContent = `${b.task.name} — ${b.task.state}, ${formatDuration(b.end - b.start)}`;
      rect.appendChild(title);
      chart.appendChild(rect);
    }
    this._caption.textContent = `${bars.length} most recent tasks on ${rows.length} worker${rows.length === 1 ? '' : 's'}`;
    replaceChildren(this._chart, chart);
  }

  private _caption = h('span', { class: 'jr-TimelineSection-caption' });
  private _chart = h('div', { class: 'jr-TimelineSection-chart' });
  private _last = 0;
  private _resizeObserver: ResizeObserver;
  private _timer: number | undefined = undefined;
}
