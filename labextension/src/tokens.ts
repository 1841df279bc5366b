/** Ids shared between the extension's plugins: commands and the cluster service. */
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import type { FeedConnection } from './feed';
import type { IRaySettings } from './settings';
import type { ClusterStore } from './store';

export namespace CommandIDs {
  /** Open the sidebar. */
  export const open = 'jupyter-ray:open';
  /** Start a runtime owned by the server, with the default options. */
  export const start = 'jupyter-ray:start';
  /** Stop (or detach from) the runtime. */
  export const stop = 'jupyter-ray:stop';
  /** Show one cell's task graph: args `{cellId}`. */
  export const showCellGraph = 'jupyter-ray:show-cell-graph';
  /** Which tasks the graph shows: args `{scope: "cell" | "kernel" | "cluster"}`. */
  export const graphScope = 'jupyter-ray:graph-scope';
  /** Lay the task graph out afresh. */
  export const relayout = 'jupyter-ray:relayout';
  /** Download the Chrome trace of recent tasks. */
  export const downloadTimeline = 'jupyter-ray:download-timeline';
  /** Ask the server for a fresh snapshot. */
  export const resync = 'jupyter-ray:resync';
}

export const SIDEBAR_ID = 'jupyter-ray-sidebar';

/** The live picture of the runtime that the sidebar, cell strips and status bar share. */
export interface IRayCluster {
  readonly store: ClusterStore;
  readonly feed: FeedConnection;
  readonly settings: IRaySettings;
  readonly settingsChanged: ISignal<IRayCluster, IRaySettings>;
}

export const IRayCluster = new Token<IRayCluster>(
  'jupyter-ray:IRayCluster',
  'The live state of the jupyter_ray runtime, fed by the server extension.'
);
