/** The Actors section: class, name, state, node, restarts and pending calls. */
import { h } from '../dom';
import { isFinal, shortId } from '../states';
import type { IRayCluster } from '../tokens';
import type { IActor } from '../types';
import { Section } from './section';
import { SortableTable } from './table';

interface IActorRow {
  actor: IActor;
  pending: number;
}

export class ActorsSection extends Section {
  constructor(cluster: IRayCluster) {
    super(cluster, ['actors', 'tasks', 'status']);
    this.addClass('jr-ActorsSection');
    this.title.label = 'Actors';
    this._table = new SortableTable<IActorRow>({
      key: r => r.actor.actor_id,
      sortBy: 'class',
      empty: 'No actors.',
      className: 'jr-ActorsTable',
      columns: [
        { id: 'class', label: 'Class', value: r => r.actor.class_name },
        { id: 'name', label: 'Name', value: r => r.actor.name ?? '' },
        {
          id: 'state',
          label: 'State',
          value: r => r.actor.state,
          render: r =>
            h(
              'span',
              {
                class: `jr-ActorState jr-actor-${r.actor.state}`,
                title: r.actor.death_cause ?? ''
              },
              r.actor.state
            )
        },
        {
          id: 'node',
          label: 'Node',
          value: r => r.actor.node_id,
          render: r =>
            h('code', { title: r.actor.node_id }, shortId(r.actor.node_id))
        },
        {
          id: 'pid',
          label: 'PID',
          value: r => r.actor.pid ?? 0,
          numeric: true
        },
        {
          id: 'restarts',
          label: 'Restarts',
          value: r => r.actor.restarts,
          numeric: true
        },
        {
          id: 'pending',
          label: 'Pending',
          value: r => r.pending,
          numeric: true,
          title: 'Method calls submitted and not finished'
        }
      ]
    });
    this.node.append(this._table.node);
  }

  protected draw(): void {
    const pending = new Map<string, number>();
    for (const task of this.cluster.store.tables.tasks.values()) {
      if (
        task.kind === 'actor_method' &&
        task.actor_id &&
        !isFinal(task.state)
      ) {
        pending.set(task.actor_id, (pending.get(task.actor_id) ?? 0) + 1);
      }
    }
    this._table.setRows(
      Array.from(this.cluster.store.tables.actors.values(), actor => ({
        actor,
        pending: pending.get(actor.actor_id) ?? 0
      }))
    );
  }

  private _table: SortableTable<IActorRow>;
}
