/**
 * The base of the sidebar's sections: redraw from the store when something a section
 * shows changed, but only while the section is visible; catch up when it is shown.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import type { IStoreChange } from '../store';
import type { IRayCluster } from '../tokens';
import type { RecordKind } from '../types';

export type Watched = RecordKind | 'status' | 'connection';

export abstract class Section extends Widget {
  constructor(cluster: IRayCluster, watched: Watched[]) {
    super();
    this.cluster = cluster;
    this._watched = new Set(watched);
    cluster.store.changed.connect(this._onChange, this);
  }

  protected readonly cluster: IRayCluster;

  /** Redraw everything the section shows. */
  protected abstract draw(): void;

  /** Called on every change, visible or not; sections that must track state override it. */
  protected onStoreChange(_change: IStoreChange): void {
    // Most sections only redraw.
  }

  override dispose(): void {
    this.cluster.store.changed.disconnect(this._onChange, this);
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale) {
      this._stale = false;
      this.draw();
    }
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.draw();
  }

  /** Redraw now if visible, else when shown. */
  protected refresh(): void {
    if (this.isVisible) {
      this._stale = false;
      this.draw();
    } else {
      this._stale = true;
    }
  }

  private _onChange(_: unknown, change: IStoreChange): void {
    this.onStoreChange(change);
    if (
      change.reset ||
      Array.from(change.kinds).some(k => this._watched.has(k))
    ) {
      this.refresh();
    }
  }

  private _watched: Set<Watched>;
  private _stale = true;
}
