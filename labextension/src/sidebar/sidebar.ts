/**
 * The left-panel sidebar: Cluster, Task graph, Objects, Actors and Timeline, as the
 * collapsible sections of a JupyterLab side panel.
 */
import { SidePanel } from '@jupyterlab/ui-components';
import { AccordionPanel, Widget } from '@lumino/widgets';

import { rayIcon } from '../icons';
import type { SectionName } from '../settings';
import { IRayCluster, SIDEBAR_ID } from '../tokens';
import { ActorsSection } from './actors';
import { ClusterSection } from './cluster';
import { GraphSection } from './graph';
import { ObjectsSection } from './objects';
import { TimelineSection } from './timeline';

export class RaySidebar extends SidePanel {
  constructor(
    cluster: IRayCluster,
    commands: { execute(id: string): Promise<unknown> }
  ) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('jr-Sidebar');
    this.title.icon = rayIcon;
    this.title.caption = 'Ray cluster';
    this.cluster = new ClusterSection(cluster);
    this.graph = new GraphSection(cluster, commands);
    this.objects = new ObjectsSection(cluster);
    this.actors = new ActorsSection(cluster);
    this.timeline = new TimelineSection(cluster);
    this._sections = {
      cluster: this.cluster,
      graph: this.graph,
      objects: this.objects,
      actors: this.actors,
      timeline: this.timeline
    };
    for (const [name, section] of Object.entries(this._sections)) {
      section.addClass(`jr-Section-${name}`);
      this.addWidget(section);
    }
    // Start with the cluster's header and the chosen section open, the rest folded.
    for (const name of Object.keys(this._sections) as SectionName[]) {
      if (name !== 'cluster' && name !== cluster.settings.openSection) {
        this._accordion.collapse(this._indexOf(name));
      }
    }
    this._accordion.expansionToggled.connect(() => this._rebalance());
    this._rebalance();
  }

  readonly cluster: ClusterSection;
  readonly graph: GraphSection;
  readonly objects: ObjectsSection;
  readonly actors: ActorsSection;
  readonly timeline: TimelineSection;

  /** Expand a section (the others stay as they are). */
  open(name: SectionName): void {
    this._accordion.expand(this._indexOf(name));
  }

  /**
   * Give every open section room. Lumino's accordion opens a section at the size it had
   * when it was closed, which is nothing for one never open before: it would stay a
   * sliver under its title.
   */
  private _rebalance(): void {
    const widgets = this._accordion.widgets;
    const sizes = this._accordion.relativeSizes();
    const starved = widgets.some(
      (w, i) => !w.isHidden && (sizes[i] ?? 0) < 0.08
    );
    if (!starved) {
      return;
    }
    const names = Object.keys(this._sections) as SectionName[];
    const weights = names.map(name =>
      this._sections[name].isHidden ? 0 : Private.WEIGHTS[name]
    );
    const total = weights.reduce((a, b) => a + b, 0) || 1;
    this._accordion.setRelativeSizes(weights.map(w => w / total));
  }

  private get _accordion(): AccordionPanel {
    return this.content as AccordionPanel;
  }

  private _indexOf(name: SectionName): number {
    return this.widgets.indexOf(this._sections[name]);
  }

  private _sections: Record<SectionName, Widget>;
}

namespace Private {
  /** How the open sections share the height, when the sidebar shares it out. */
  export const WEIGHTS: Record<SectionName, number> = {
    cluster: 1,
    graph: 2.5,
    objects: 1.5,
    actors: 1,
    timeline: 1.5
  };
}
