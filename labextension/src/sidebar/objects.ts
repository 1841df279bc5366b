/** The Objects section: the object store's use against capacity, and a sortable table. */
import { bar, h, replaceChildren } from '../dom';
import { clusterTotals } from '../store';
import { formatBytes } from '../states';
import type { IRayCluster } from '../tokens';
import type { IObject } from '../types';
import { Section } from './section';
import { SortableTable } from './table';

export class ObjectsSection extends Section {
  constructor(cluster: IRayCluster) {
    super(cluster, ['objects', 'nodes', 'status']);
    this.addClass('jr-ObjectsSection');
    this.title.label = 'Objects';
    this._table = new SortableTable<IObject>({
      key: o => o.object_id,
      sortBy: 'size',
      descending: true,
      empty: 'No objects in the store.',
      className: 'jr-ObjectsTable',
      columns: [
        {
          id: 'id',
          label: 'Object',
          value: o => o.object_id,
          render: o =>
            h(
              'code',
              { title: o.object_id },
              Private.tail(o.object_id, this._prefix)
            )
        },
        {
          id: 'size',
          label: 'Size',
          value: o => o.size,
          render: o => formatBytes(o.size),
          numeric: true
        },
        { id: 'location', label: 'Where', value: o => o.location },
        {
          id: 'refs',
          label: 'Refs',
          value: o => o.local_refs + o.borrowers,
          numeric: true,
          title:
            'Processes holding a reference (owner and borrowers); hover a value for details',
          render: o =>
            h(
              'span',
              {
                title: `${o.local_refs} holding, ${o.borrowers} borrowers, ${o.pending_task_refs} pending tasks, contained in ${o.contained_in}, ${o.pinned_views} mapped views`
              },
              String(o.local_refs + o.borrowers)
            )
        },
        { id: 'owner', label: 'Owner', value: o => o.owner_pid, numeric: true },
        { id: 'type', label: 'Type', value: o => o.type_name },
        {
          id: 'preview',
          label: 'Preview',
          value: o => o.preview ?? '',
          render: o =>
            h(
              'span',
              { class: 'jr-Preview', title: o.preview ?? '' },
              o.preview ?? ''
            )
        }
      ]
    });
    this.node.append(this._summary, this._table.node);
  }

  protected draw(): void {
    const totals = clusterTotals(this.cluster.store);
    const objects = Array.from(this.cluster.store.tables.objects.values());
    const bytes = objects.reduce((sum, o) => sum + o.size, 0);
    replaceChildren(
      this._summary,
      bar(
        'Store',
        totals.storeCapacity > 0 ? totals.storeUsed / totals.storeCapacity : 0,
        `${formatBytes(totals.storeUsed)} of ${formatBytes(totals.storeCapacity)}`,
        'jr-mod-store'
      ),
      h(
        'div',
        { class: 'jr-ObjectsSection-figures' },
        h(
          'span',
          { class: 'jr-ObjectsSection-count' },
          `${objects.length} objects, ${formatBytes(bytes)}`
        ),
        h(
          'span',
          { class: 'jr-ObjectsSection-spilled' },
          `${formatBytes(totals.storeSpilled)} spilled`
        )
      )
    );
    // Ids share long prefixes (the job, the task): show what tells them apart.
    this._prefix = Private.commonPrefix(objects.map(o => o.object_id));
    this._table.setRows(objects);
  }

  private _prefix = 0;
  private _summary = h('div', { class: 'jr-ObjectsSection-summary' });
  private _table: SortableTable<IObject>;
}

namespace Private {
  /** Length of the prefix every id shares (0 for fewer than two ids). */
  export function commonPrefix(ids: string[]): number {
    if (ids.length < 2) {
      return 0;
    }
    let length = ids[0].length;
    for (const id of ids) {
      let i = 0;
      while (i < length && id[i] === ids[0][i]) {
        i += 1;
      }
      length = i;
    }
    return length;
  }

  /** The part of an id after the shared prefix, at most 12 characters of it. */
  export function tail(id: string, prefix: number): string {
    const rest = id.slice(prefix);
    return prefix > 0 ? `…${rest.slice(0, 12)}` : id.slice(0, 12);
  }
}
