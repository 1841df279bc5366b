/**
 * The extension's settings (schema/plugin.json), read once into a plain object and
 * kept current when the user edits them.
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';

import type { IStartOptions } from './types';

export type SectionName =
  'cluster' | 'graph' | 'objects' | 'actors' | 'timeline';

export interface IRaySettings {
  /** What "Start" sends when the user does not change the form. */
  startOptions: IStartOptions;
  /** Redraws per second at most. */
  updateRate: number;
  /** Past this many tasks, the graph shows one node per function. */
  collapseThreshold: number;
  /** The sidebar section open when Lab starts. */
  openSection: SectionName;
  /** Whether code cells show their task strip. */
  cellStrips: boolean;
}

export const DEFAULT_SETTINGS: IRaySettings = {
  startOptions: {
    num_cpus: null,
    num_gpus: null,
    object_store_memory: null,
    worker_nodes: 0
  },
  updateRate: 4,
  collapseThreshold: 250,
  openSection: 'graph',
  cellStrips: true
};

export function readSettings(
  settings: ISettingRegistry.ISettings | null
): IRaySettings {
  if (!settings) {
    return { ...DEFAULT_SETTINGS };
  }
  const composite = settings.composite as Partial<IRaySettings>;
  return { ...DEFAULT_SETTINGS, ...composite };
}
