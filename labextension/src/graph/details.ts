/**
 * The details of the task (or group) selected in the graph: function, arguments,
 * timings, node and worker, retries, error.
 */
import { h } from '../dom';
import {
  BUCKETS,
  formatAmount,
  formatDuration,
  isFinal,
  shortId
} from '../states';
import type { ITask } from '../types';
import type { IGroupNode } from './model';

function row(
  label: string,
  value: Node | string | null | undefined
): HTMLElement | null {
  if (value === null || value === undefined || value === '') {
    return null;
  }
  return h('tr', {}, h('th', {}, label), h('td', {}, value));
}

/** How long the task waited and ran, and when it was submitted. */
function timings(task: ITask): HTMLElement[] {
  const times = task.times;
  const rows: (HTMLElement | null)[] = [];
  const submitted = times.PENDING_ARGS ?? times.PENDING_RESOURCES;
  const start = times.RUNNING ?? times.SCHEDULED;
  const end = times.FINISHED ?? times.FAILED ?? times.CANCELLED;
  if (submitted !== undefined) {
    rows.push(
      row('Submitted', new Date(submitted * 1000).toLocaleTimeString())
    );
  }
  if (submitted !== undefined && start !== undefined) {
    rows.push(row('Waited', formatDuration(start - submitted)));
  }
  if (start !== undefined) {
    const until = end ?? Date.now() / 1000;
    rows.push(
      row(
        isFinal(task.state) ? 'Ran' : 'Running for',
        formatDuration(until - start)
      )
    );
  }
  return rows.filter((r): r is HTMLElement => r !== null);
}

export function taskDetails(task: ITask): HTMLElement {
  const error =
    task.error_type || task.error_message
      ? h(
          'div',
          { class: 'jr-Details-error' },
          h(
            'div',
            { class: 'jr-Details-errorTitle' },
            `${task.error_type ?? 'Error'}: ${task.error_message ?? ''}`
          ),
          task.traceback
            ? h('pre', { class: 'jr-Details-traceback' }, task.traceback)
            : null
        )
      : null;
  const resources = task.resources
    ? Object.entries(task.resources)
        .map(([k, v]) => `${k}: ${formatAmount(v)}`)
        .join(', ')
    : null;
  return h(
    'div',
    { class: 'jr-Details', dataset: { taskId: task.task_id } },
    h(
      'div',
      { class: 'jr-Details-title' },
      h('span', { class: `jr-Dot jr-state-${task.state}` }),
      h('span', { class: 'jr-Details-name' }, task.name),
      h('span', { class: 'jr-Details-state' }, task.state)
    ),
    error,
    h(
      'table',
      { class: 'jr-Details-table' },
      h(
        'tbody',
        {},
        row('Task', task.task_id),
        row('Kind', task.kind),
        row('Arguments', task.args_preview ?? null),
        row(
          'Depends on',
          task.depends_on.length ? `${task.depends_on.length} object(s)` : null
        ),
        row('Node', shortId(task.node_id, 12)),
        row(
          'Worker',
          task.worker_pid !== null ? `pid ${task.worker_pid}` : null
        ),
        row('Retries', String(task.attempt)),
        row('Actor', task.actor_id ? shortId(task.actor_id, 12) : null),
        row(
          'Parent',
          task.parent_task_id ? shortId(task.parent_task_id, 12) : null
        ),
        row(
          'Cell',
          task.cell_execution_count !== null
            ? `[${task.cell_execution_count}]`
            : null
        ),
        row('Resources', resources),
        ...timings(task)
      )
    )
  );
}

export function groupDetails(
  group: IGroupNode,
  canExpand: boolean,
  onExpand: () => void
): HTMLElement {
  return h(
    'div',
    { class: 'jr-Details', dataset: { group: group.name } },
    h(
      'div',
      { class: 'jr-Details-title' },
      h('span', { class: 'jr-Details-name' }, group.name),
      h('span', { class: 'jr-Details-state' }, `${group.total} tasks`)
    ),
    h(
      'div',
      { class: 'jr-Counts' },
      ...BUCKETS.map(b =>
        h(
          'span',
          { class: `jr-Count-chip jr-bucket-${b}` },
          `${group.counts[b]} ${b}`
        )
      )
    ),
    h(
      'button',
      {
        class: 'jp-Button jp-mod-styled jp-mod-accept jr-Details-expand',
        disabled: !canExpand,
        title: canExpand
          ? 'Draw these tasks one by one'
          : 'Too many tasks to draw one by one; raise “Graph size before collapsing”',
        onclick: onExpand
      },
      'Expand'
    )
  );
}
