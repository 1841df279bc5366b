/**
 * The jupyter_ray JupyterLab extension: three plugins sharing one live picture of the
 * runtime (`IRayCluster`): the sidebar with its commands, the strips under cells, and
 * the status-bar item.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';

import { Api, feedUrl } from './api';
import { CellStrips } from './cells/tracker';
import { FeedConnection } from './feed';
import { rayIcon } from './icons';
import { DEFAULT_SETTINGS, IRaySettings, readSettings } from './settings';
import { RaySidebar } from './sidebar/sidebar';
import type { Scope } from './sidebar/graph';
import { RayStatus } from './statusbar';
import { ClusterStore } from './store';
import { CommandIDs, IRayCluster, SIDEBAR_ID } from './tokens';

const PLUGIN_ID = 'jupyter-ray:plugin';
const CATEGORY = 'Ray cluster';

class RayCluster implements IRayCluster {
  constructor(settings: IRaySettings) {
    this.settings = settings;
    this.feed = new FeedConnection(this.store, {
      url: () => feedUrl(),
      rate: settings.updateRate
    });
  }

  readonly store = new ClusterStore();
  readonly feed: FeedConnection;
  settings: IRaySettings;
  readonly settingsChanged: Signal<IRayCluster, IRaySettings> = new Signal<
    IRayCluster,
    IRaySettings
  >(this);

  update(settings: IRaySettings): void {
    this.settings = settings;
    this.feed.rate = settings.updateRate;
    this.settingsChanged.emit(settings);
  }
}

/** The sidebar, its commands, and the feed everything else reads. */
const sidebarPlugin: JupyterFrontEndPlugin<IRayCluster> = {
  id: PLUGIN_ID,
  description:
    'The Ray cluster sidebar: nodes, task graph, objects, actors, timeline.',
  autoStart: true,
  provides: IRayCluster,
  optional: [
    ISettingRegistry,
    ICommandPalette,
    ILayoutRestorer,
    INotebookTracker,
    ILabShell
  ],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    labShell: ILabShell | null
  ): Promise<IRayCluster> => {
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
      } catch (error) {
        console.warn('jupyter-ray: settings not loaded, using defaults', error);
      }
    }
    const cluster = new RayCluster(
      settings ? readSettings(settings) : { ...DEFAULT_SETTINGS }
    );
    settings?.changed.connect(() => cluster.update(readSettings(settings)));

    const sidebar = new RaySidebar(cluster, app.commands);
    app.shell.add(sidebar, 'left', { rank: 850 });
    restorer?.add(sidebar, SIDEBAR_ID);
    cluster.feed.start();

    const openSidebar = () => app.shell.activateById(SIDEBAR_ID);
    const { commands } = app;
    commands.addCommand(CommandIDs.open, {
      label: 'Show the Ray Cluster Sidebar',
      icon: rayIcon,
      execute: openSidebar
    });
    commands.addCommand(CommandIDs.start, {
      label: 'Start a Ray Runtime',
      isEnabled: () => cluster.store.status?.state !== 'running',
      execute: () => sidebar.cluster.start(cluster.settings.startOptions)
    });
    commands.addCommand(CommandIDs.stop, {
      label: 'Stop the Ray Runtime',
      isEnabled: () => cluster.store.status?.state === 'running',
      execute: () => sidebar.cluster.stop()
    });
    commands.addCommand(CommandIDs.showCellGraph, {
      label: 'Show the Task Graph of a Cell',
      execute: args => {
        const cellId = args.cellId as string | undefined;
        if (cellId) {
          sidebar.graph.showCell(
            cellId,
            (args.kernelId as string | undefined) ?? null
          );
        }
        openSidebar();
        sidebar.open('graph');
      }
    });
    commands.addCommand(CommandIDs.graphScope, {
      label: args => `Task Graph of ${Private.scopeLabel(args.scope as Scope)}`,
      execute: args => {
        sidebar.graph.setScope((args.scope as Scope | undefined) ?? 'cell');
        openSidebar();
        sidebar.open('graph');
      }
    });
    commands.addCommand(CommandIDs.relayout, {
      label: 'Lay the Task Graph Out Afresh',
      execute: () => sidebar.graph.relayout()
    });
    commands.addCommand(CommandIDs.downloadTimeline, {
      label: 'Download the Ray Timeline (Chrome Trace)',
      execute: () => Api.downloadTimeline()
    });
    commands.addCommand(CommandIDs.resync, {
      label: 'Reload the Ray Cluster State',
      execute: () => cluster.feed.reconnect()
    });
    if (palette) {
      for (const command of [
        CommandIDs.open,
        CommandIDs.start,
        CommandIDs.stop,
        CommandIDs.relayout,
        CommandIDs.downloadTimeline,
        CommandIDs.resync
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
      for (const scope of ['cell', 'kernel', 'cluster']) {
        palette.addItem({
          command: CommandIDs.graphScope,
          args: { scope },
          category: CATEGORY
        });
      }
    }
    cluster.store.changed.connect((_, change) => {
      if (change.kinds.has('status')) {
        commands.notifyCommandChanged(CommandIDs.start);
        commands.notifyCommandChanged(CommandIDs.stop);
      }
    });

    if (notebooks) {
      Private.followNotebooks(notebooks, sidebar, labShell);
    }
    return cluster;
  }
};

/** The strips under code cells. */
const cellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-ray:cells',
  description: 'Counts of each cell’s tasks under its input.',
  autoStart: true,
  requires: [IRayCluster, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    cluster: IRayCluster,
    notebooks: INotebookTracker
  ) => {
    new CellStrips(cluster, notebooks, (cellId, panel) => {
      void app.commands.execute(CommandIDs.showCellGraph, {
        cellId,
        kernelId: panel.sessionContext.session?.kernel?.id ?? null
      });
    });
  }
};

/** The status-bar item. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-ray:status',
  description: 'Nodes, busy CPUs and running tasks in the status bar.',
  autoStart: true,
  requires: [IRayCluster],
  optional: [IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    cluster: IRayCluster,
    statusBar: IStatusBar | null
  ) => {
    if (!statusBar) {
      return;
    }
    const item = new RayStatus(
      cluster,
      () => void app.commands.execute(CommandIDs.open)
    );
    statusBar.registerStatusItem('jupyter-ray:status', {
      item,
      align: 'left',
      rank: 4
    });
  }
};

namespace Private {
  export function scopeLabel(scope: Scope | undefined): string {
    switch (scope) {
      case 'kernel':
        return 'This Kernel';
      case 'cluster':
        return 'the Whole Cluster';
      default:
        return 'the Active Cell';
    }
  }

  /** The graph follows the active cell, and the cells the user runs. */
  export function followNotebooks(
    notebooks: INotebookTracker,
    sidebar: RaySidebar,
    labShell: ILabShell | null
  ): void {
    const kernels = new WeakSet<NotebookPanel>();
    const focus = () => {
      const panel = notebooks.currentWidget;
      sidebar.graph.follow({
        cellId: notebooks.activeCell?.model.id ?? null,
        kernelId: panel?.sessionContext.session?.kernel?.id ?? null,
        notebook: panel?.title.label ?? null
      });
      if (panel && !kernels.has(panel)) {
        kernels.add(panel);
        panel.sessionContext.kernelChanged.connect(focus);
      }
    };
    notebooks.activeCellChanged.connect(focus);
    notebooks.currentChanged.connect(focus);
    labShell?.currentChanged.connect(focus);
    NotebookActions.executionScheduled.connect((_, { cell }) => {
      sidebar.graph.cellRan(cell.model.id);
    });
  }
}

export default [sidebarPlugin, cellsPlugin, statusPlugin];
