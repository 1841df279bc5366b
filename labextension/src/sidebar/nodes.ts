/**
 * One card per node: live bars for CPU, GPU, memory and the object store, and
 * used/total of every resource the node offers.
 */
import { bar, h } from '../dom';
import { formatAmount, formatBytes, shortId } from '../states';
import type { INode } from '../types';

/** Resources counted in bytes. */
const BYTE_RESOURCES = new Set(['memory', 'object_store_memory']);

/** Resources the runtime makes for itself, not worth a line of their own. */
function isInternal(name: string): boolean {
  return (
    name.startsWith('node:') ||
    name.startsWith('accelerator_type:') ||
    name.startsWith('bundle_group_') ||
    name.includes('_group_')
  );
}

function ratio(used: number, total: number): number {
  return total > 0 ? used / total : 0;
}

export function nodeCard(node: INode): HTMLElement {
  const cpuTotal = node.resources_total.CPU ?? 0;
  const cpuUsed = cpuTotal - (node.resources_available.CPU ?? 0);
  const gpus = node.gpus ?? [];
  const resources = Object.keys(node.resources_total)
    .filter(name => !isInternal(name))
    .sort((a, b) => (a === 'CPU' ? -1 : b === 'CPU' ? 1 : a.localeCompare(b)));
  return h(
    'div',
    {
      class: `jr-NodeCard${node.alive ? '' : ' jr-mod-dead'}`,
      dataset: { nodeId: node.node_id }
    },
    h(
      'div',
      { class: 'jr-NodeCard-title' },
      h('span', { class: 'jr-NodeCard-host' }, node.hostname),
      h(
        'span',
        { class: 'jr-NodeCard-id', title: node.node_id },
        shortId(node.node_id)
      ),
      node.is_head ? h('span', { class: 'jr-Badge' }, 'head') : null,
      node.alive ? null : h('span', { class: 'jr-Badge jr-mod-error' }, 'dead'),
      h('span', { class: 'jr-NodeCard-workers' }, `${node.num_workers} workers`)
    ),
    bar(
      'CPU',
      node.cpu_percent / 100,
      `${Math.round(node.cpu_percent)}% · ${formatAmount(cpuUsed)}/${formatAmount(cpuTotal)} busy`,
      'jr-mod-cpu'
    ),
    ...gpus.map(gpu =>
      bar(
        `GPU ${gpu.index}`,
        gpu.utilization / 100,
        `${Math.round(gpu.utilization)}% · ${formatBytes(gpu.memory_used)}/${formatBytes(gpu.memory_total)}`,
        'jr-mod-gpu'
      )
    ),
    bar(
      'Memory',
      ratio(node.memory_used, node.memory_total),
      `${formatBytes(node.memory_used)}/${formatBytes(node.memory_total)}`,
      'jr-mod-memory'
    ),
    bar(
      'Store',
      ratio(node.object_store_used, node.object_store_capacity),
      `${formatBytes(node.object_store_used)}/${formatBytes(node.object_store_capacity)}${
        node.object_store_spilled > 0
          ? ` · ${formatBytes(node.object_store_spilled)} spilled`
          : ''
      }`,
      'jr-mod-store'
    ),
    h(
      'div',
      { class: 'jr-NodeCard-resources' },
      ...resources.map(name => {
        const total = node.resources_total[name];
        const used = total - (node.resources_available[name] ?? total);
        const amount = BYTE_RESOURCES.has(name)
          ? (v: number) => formatBytes(v)
          : formatAmount;
        return h(
          'div',
          {
            class: 'jr-Resource',
            dataset: { resource: name },
            title: `${name}: ${amount(used)} of ${amount(total)} in use`
          },
          h('span', { class: 'jr-Resource-name' }, name),
          h(
            'span',
            { class: 'jr-Resource-track' },
            h('span', {
              class: 'jr-Resource-fill',
              style: { width: `${(ratio(used, total) * 100).toFixed(1)}%` }
            })
          ),
          h(
            'span',
            { class: 'jr-Resource-value' },
            `${amount(used)}/${amount(total)}`
          )
        );
      })
    )
  );
}
