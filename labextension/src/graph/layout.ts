/**
 * Positions for the visible task graph that stay put as tasks arrive.
 *
 * The graph is drawn in layers (left to right by default: the sidebar is tall and
 * narrow, so wide fan-outs stack down rather than across). The first time (and after
 * `reset()`, or when no placed node survives) dagre lays the whole graph out. After
 * that, nodes already placed never move: a new node goes into the layer after the last
 * of its placed predecessors, at the free slot of that layer nearest to the mean offset
 * of those predecessors (a new root goes to the end of the first layer). So a node's
 * layer always comes after its predecessors', as in dagre's layering, and the nodes of a
 * layer never overlap.
 */
import {
  graphlib,
  layout as dagreLayout,
  type NodeLabel
} from '@dagrejs/dagre';

export interface ISize {
  width: number;
  height: number;
}

/** Left to right, or top to bottom. */
export type Orientation = 'LR' | 'TB';

export interface IPlaced {
  /** Centre x. */
  x: number;
  /** Centre y. */
  y: number;
  width: number;
  height: number;
  /** Layer index: 0 for roots, more than each predecessor's. */
  layer: number;
  /** Centre along the layer (y when left to right, x when top to bottom). */
  offset: number;
}

/** What the layout needs to know of a graph: node sizes and edges between node ids. */
export interface ILayoutInput {
  nodes: Iterable<[string, ISize]>;
  edges: Iterable<{ source: string; target: string }>;
}

export interface ILayoutOptions {
  orientation?: Orientation;
  /** Distance between the centres of two consecutive layers. */
  layerSpacing?: number;
  /** Gap between two nodes of a layer. */
  gap?: number;
}

export interface IBounds {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

export class StableLayout {
  constructor(options: ILayoutOptions = {}) {
    this.orientation = options.orientation ?? 'LR';
    this.layerSpacing =
      options.layerSpacing ?? (this.orientation === 'LR' ? 180 : 72);
    this.gap = options.gap ?? 12;
  }

  readonly orientation: Orientation;
  readonly layerSpacing: number;
  readonly gap: number;

  get positions(): ReadonlyMap<string, IPlaced> {
    return this._positions;
  }

  /** How many full (dagre) layouts ran: a test and the view's zoom-to-fit read it. */
  get fullLayouts(): number {
    return this._fullLayouts;
  }

  /** Forget every position: the next `update()` lays the graph out afresh. */
  reset(): void {
    this._positions.clear();
  }

  /**
   * Place the nodes of `graph`: keep the positions of nodes placed before, drop those of
   * nodes gone, and place the new ones. Returns the ids of the nodes placed now.
   */
  update(graph: ILayoutInput): string[] {
    const sizes = new Map(graph.nodes);
    const edges = Array.from(graph.edges).filter(
      e => sizes.has(e.source) && sizes.has(e.target)
    );
    for (const id of Array.from(this._positions.keys())) {
      if (!sizes.has(id)) {
        this._positions.delete(id);
      }
    }
    const fresh = Array.from(sizes.keys()).filter(
      id => !this._positions.has(id)
    );
    if (fresh.length === 0) {
      return fresh;
    }
    if (this._positions.size === 0) {
      this._full(sizes, edges);
    } else {
      this._incremental(fresh, sizes, edges);
    }
    return fresh;
  }

  bounds(): IBounds {
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    for (const p of this._positions.values()) {
      minX = Math.min(minX, p.x - p.width / 2);
      maxX = Math.max(maxX, p.x + p.width / 2);
      minY = Math.min(minY, p.y - p.height / 2);
      maxY = Math.max(maxY, p.y + p.height / 2);
    }
    return minX === Infinity
      ? { minX: 0, minY: 0, maxX: 0, maxY: 0 }
      : { minX, minY, maxX, maxY };
  }

  /** Size of a node along its layer. */
  private _extent(size: ISize): number {
    return this.orientation === 'LR' ? size.height : size.width;
  }

  private _place(id: string, size: ISize, layer: number, offset: number): void {
    const along = layer * this.layerSpacing;
    this._positions.set(id, {
      x: this.orientation === 'LR' ? along : offset,
      y: this.orientation === 'LR' ? offset : along,
      width: size.width,
      height: size.height,
      layer,
      offset
    });
  }

  private _full(
    sizes: Map<string, ISize>,
    edges: { source: string; target: string }[]
  ): void {
    this._fullLayouts += 1;
    const g = new graphlib.Graph<object, NodeLabel, object>({
      multigraph: false
    });
    g.setGraph({
      rankdir: this.orientation,
      nodesep: this.gap,
      ranksep: this.layerSpacing / 2,
      marginx: 0,
      marginy: 0
    });
    g.setDefaultEdgeLabel(() => ({}));
    for (const [id, size] of sizes) {
      g.setNode(id, { width: size.width, height: size.height });
    }
    for (const edge of edges) {
      g.setEdge(edge.source, edge.target);
    }
    dagreLayout(g);
    // Dagre's ranks become layers a fixed distance apart, so later layers line up.
    const lr = this.orientation === 'LR';
    const rankOf = (label: NodeLabel): number =>
      Math.round((lr ? label.x : label.y) ?? 0);
    const ranks = Array.from(
      new Set(Array.from(sizes.keys(), id => rankOf(g.node(id))))
    ).sort((a, b) => a - b);
    const layerOf = new Map(ranks.map((rank, layer) => [rank, layer]));
    for (const [id, size] of sizes) {
      const label = g.node(id);
      const offset = (lr ? label.y : label.x) ?? 0;
      this._place(id, size, layerOf.get(rankOf(label)) ?? 0, offset);
    }
  }

  private _incremental(
    fresh: string[],
    sizes: Map<string, ISize>,
    edges: { source: string; target: string }[]
  ): void {
    const preds = new Map<string, string[]>();
    for (const edge of edges) {
      let list = preds.get(edge.target);
      if (!list) {
        list = [];
        preds.set(edge.target, list);
      }
      list.push(edge.source);
    }
    const layers = new Map<number, Private.Layer>();
    for (const p of this._positions.values()) {
      const half = this._extent(p) / 2;
      Private.layerOf(layers, p.layer).insert(p.offset - half, p.offset + half);
    }
    for (const id of Private.topological(fresh, preds)) {
      const size = sizes.get(id)!;
      const extent = this._extent(size);
      const placedPreds = (preds.get(id) ?? [])
        .map(p => this._positions.get(p))
        .filter((p): p is IPlaced => p !== undefined);
      let layer = 0;
      let want: number;
      if (placedPreds.length > 0) {
        layer = Math.max(...placedPreds.map(p => p.layer)) + 1;
        want =
          placedPreds.reduce((sum, p) => sum + p.offset, 0) /
          placedPreds.length;
      } else {
        const first = Private.layerOf(layers, 0);
        want = first.end === null ? 0 : first.end + this.gap + extent / 2;
      }
      const slots = Private.layerOf(layers, layer);
      const offset = slots.nearestFree(want, extent, this.gap);
      slots.insert(offset - extent / 2, offset + extent / 2);
      this._place(id, size, layer, offset);
    }
  }

  private _positions = new Map<string, IPlaced>();
  private _fullLayouts = 0;
}

namespace Private {
  /** The occupied spans of one layer, sorted by their start. */
  export class Layer {
    readonly spans: [number, number][] = [];

    get end(): number | null {
      let end: number | null = null;
      for (const [, right] of this.spans) {
        end = end === null ? right : Math.max(end, right);
      }
      return end;
    }

    insert(start: number, end: number): void {
      let i = 0;
      while (i < this.spans.length && this.spans[i][0] < start) {
        i += 1;
      }
      this.spans.splice(i, 0, [start, end]);
    }

    /**
     * The centre nearest to `want` where a node of `extent` fits with `gap` around it.
     * Spans never overlap, so the free centres are the stretches between them.
     */
    nearestFree(want: number, extent: number, gap: number): number {
      const half = extent / 2 + gap;
      let best = Infinity;
      let lower = -Infinity; // first free centre after the previous span
      for (const [start, end] of this.spans) {
        best = closer(want, best, lower, start - half);
        lower = Math.max(lower, end + half);
      }
      return closer(want, best, lower, Infinity);
    }
  }

  /** `best`, or the point of [low, high] nearest to `want` if that is nearer. */
  export function closer(
    want: number,
    best: number,
    low: number,
    high: number
  ): number {
    if (low > high) {
      return best;
    }
    const candidate = Math.min(Math.max(want, low), high);
    return Math.abs(candidate - want) < Math.abs(best - want)
      ? candidate
      : best;
  }

  export function layerOf(layers: Map<number, Layer>, layer: number): Layer {
    let l = layers.get(layer);
    if (!l) {
      l = new Layer();
      layers.set(layer, l);
    }
    return l;
  }

  /** New nodes, each after its new predecessors (Kahn's order; a cycle keeps input order). */
  export function topological(
    ids: string[],
    preds: Map<string, string[]>
  ): string[] {
    const pending = new Set(ids);
    const order: string[] = [];
    let progress = true;
    while (pending.size > 0 && progress) {
      progress = false;
      for (const id of pending) {
        const waiting = (preds.get(id) ?? []).some(
          p => p !== id && pending.has(p)
        );
        if (!waiting) {
          order.push(id);
          pending.delete(id);
          progress = true;
        }
      }
    }
    order.push(...pending);
    return order;
  }
}
