/** The status-bar item: nodes, CPUs busy/total and running tasks; a click opens the sidebar. */
import { Widget } from '@lumino/widgets';

import { h, replaceChildren } from './dom';
import { rayIcon } from './icons';
import { clusterTotals, IStoreChange } from './store';
import { formatAmount } from './states';
import type { IRayCluster } from './tokens';

export class RayStatus extends Widget {
  constructor(cluster: IRayCluster, onClick: () => void) {
    super();
    this.addClass('jr-StatusItem');
    this._cluster = cluster;
    this.node.addEventListener('click', onClick);
    cluster.store.changed.connect(this._onChange, this);
    this._draw();
  }

  override dispose(): void {
    this._cluster.store.changed.disconnect(this._onChange, this);
    super.dispose();
  }

  private _onChange(_: unknown, change: IStoreChange): void {
    if (
      change.reset ||
      change.kinds.has('nodes') ||
      change.kinds.has('tasks') ||
      change.kinds.has('status') ||
      change.kinds.has('connection')
    ) {
      this._draw();
    }
  }

  private _draw(): void {
    const store = this._cluster.store;
    const state = store.status?.state ?? 'unknown';
    let text: string;
    if (store.connection === 'closed') {
      text = 'Ray: disconnected';
    } else if (state !== 'running') {
      text = state === 'starting' ? 'Ray: starting…' : 'Ray: not started';
    } else {
      const t = clusterTotals(store);
      text = `Ray: ${t.nodes} node${t.nodes === 1 ? '' : 's'} · CPU ${formatAmount(t.cpuBusy)}/${formatAmount(
        t.cpuTotal
      )} · ${t.running} running`;
    }
    this.node.dataset.state = state;
    this.node.title = 'jupyter_ray: click to open the sidebar';
    replaceChildren(
      this.node,
      rayIcon.element({
        tag: 'span',
        className: 'jr-StatusItem-icon',
        elementPosition: 'center'
      }),
      h('span', { class: 'jr-StatusItem-text' }, text)
    );
  }

  private _cluster: IRayCluster;
}
