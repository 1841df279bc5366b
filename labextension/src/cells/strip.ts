/**
 * The strip under a code cell's input: how many of the tasks the cell submitted are
 * pending, running, done, failed or cancelled, a thin progress bar, and the first
 * error. A click shows the cell's graph in the sidebar.
 */
import { Widget } from '@lumino/widgets';

import { h, replaceChildren } from '../dom';
import { BUCKETS } from '../states';
import type { ICellSummary } from '../store';

export class CellStrip extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('jr-CellStrip');
    this.node.title = 'Tasks this cell submitted; click to show their graph';
    this.node.addEventListener('click', onClick);
    this.node.append(this._counts, this._progress, this._error);
  }

  setSummary(summary: ICellSummary): void {
    const { counts, total, firstError } = summary;
    const finished = counts.done + counts.failed + counts.cancelled;
    this.node.dataset.total = String(total);
    for (const bucket of BUCKETS) {
      this.node.dataset[bucket] = String(counts[bucket]);
    }
    this.toggleClass('jr-mod-failed', counts.failed > 0);
    this.toggleClass('jr-mod-complete', finished === total);
    replaceChildren(
      this._counts,
      h(
        'span',
        { class: 'jr-CellStrip-total' },
        `${total} task${total === 1 ? '' : 's'}`
      ),
      ...BUCKETS.map(bucket =>
        h(
          'span',
          {
            class: `jr-Count-chip jr-bucket-${bucket}${counts[bucket] === 0 ? ' jr-mod-zero' : ''}`,
            dataset: { bucket }
          },
          `${counts[bucket]} ${bucket}`
        )
      )
    );
    replaceChildren(
      this._progress,
      ...BUCKETS.map(bucket =>
        h('span', {
          class: `jr-CellStrip-segment jr-bucket-${bucket}`,
          style: {
            width: `${((counts[bucket] / Math.max(total, 1)) * 100).toFixed(2)}%`
          }
        })
      )
    );
    if (firstError) {
      this._error.textContent = `${firstError.name}: ${firstError.errorType ?? 'Error'}${
        firstError.message ? `: ${firstError.message}` : ''
      }`;
      this._error.title = this._error.textContent;
    } else {
      this._error.textContent = '';
    }
  }

  private _counts = h('div', { class: 'jr-CellStrip-counts' });
  private _progress = h('div', { class: 'jr-CellStrip-progress' });
  private _error = h('div', { class: 'jr-CellStrip-error' });
}
