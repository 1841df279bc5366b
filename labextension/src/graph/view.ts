/**
 * Draws a `TaskGraphModel` as SVG at the positions of a `StableLayout`: one element per
 * visible node and edge, kept and updated in place, so a state change costs a class
 * change and new tasks cost only their own elements. Drag to pan, wheel to zoom.
 */
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { svg, setAttrs } from '../dom';
import { BUCKETS, bucketOf, totalOf } from '../states';
import { IPlaced, ISize, StableLayout } from './layout';
import { GraphNode, IGraphDelta, IGraphEdge, TaskGraphModel } from './model';

export const TASK_SIZE: ISize = { width: 120, height: 24 };
export const GROUP_SIZE: ISize = { width: 160, height: 40 };
const MIN_SCALE = 0.05;
const MAX_SCALE = 3;

export function sizeOf(node: GraphNode): ISize {
  return node.type === 'group' ? GROUP_SIZE : TASK_SIZE;
}

export class GraphView extends Widget {
  constructor(model: TaskGraphModel, layout: StableLayout) {
    super();
    this.addClass('jr-GraphView');
    this._model = model;
    this._positions = layout;
    this._svg = svg('svg', { class: 'jr-GraphView-svg' });
    const defs = svg('defs');
    const marker = svg('marker', {
      id: 'jr-arrow',
      viewBox: '0 0 10 10',
      refX: 10,
      refY: 5,
      markerWidth: 8,
      markerHeight: 8,
      // The arrow keeps its size on edges drawn thicker for the many edges they stand for.
      markerUnits: 'userSpaceOnUse',
      orient: 'auto-start-reverse'
    });
    marker.appendChild(
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'jr-Edge-arrow' })
    );
    defs.appendChild(marker);
    this._viewport = svg('g', { class: 'jr-GraphView-viewport' });
    this._edgeLayer = svg('g', { class: 'jr-GraphView-edges' });
    this._nodeLayer = svg('g', { class: 'jr-GraphView-nodes' });
    this._viewport.append(this._edgeLayer, this._nodeLayer);
    this._svg.append(defs, this._viewport);
    this.node.appendChild(this._svg);
    this._svg.addEventListener('pointerdown', this);
    this._svg.addEventListener('wheel', this, { passive: false });
    this._svg.addEventListener('click', this);
    this._svg.addEventListener('dblclick', this);
    // The section's flex layout resizes the view without Lumino's resize messages.
    this._resizeObserver = new ResizeObserver(() => {
      if (this._autoFit && this.isVisible) {
        this.fitToView();
      }
    });
    this._resizeObserver.observe(this.node);
  }

  override dispose(): void {
    this._resizeObserver.disconnect();
    super.dispose();
  }

  /** A node was clicked (its visible id), or the background (null). */
  get selected(): ISignal<this, string | null> {
    return this._selected;
  }

  /** A group node was double-clicked (its function name). */
  get groupActivated(): ISignal<this, string> {
    return this._groupActivated;
  }

  get selection(): string | null {
    return this._selection;
  }

  select(id: string | null): void {
    if (this._selection) {
      this._nodeElements
        .get(this._selection)
        ?.classList.remove('jr-mod-selected');
    }
    this._selection = id;
    if (id) {
      this._nodeElements.get(id)?.classList.add('jr-mod-selected');
    }
  }

  /** Draw what `delta` says changed; `null` redraws everything. */
  render(delta: IGraphDelta | null): void {
    const fullBefore = this._positions.fullLayouts;
    if (delta === null || delta.structure) {
      this._positions.update({
        nodes: Array.from(this._model.nodes.values(), n => [n.id, sizeOf(n)]),
        edges: this._model.edges.values()
      });
    }
    const relaidOut = this._positions.fullLayouts !== fullBefore;
    if (delta === null || delta.reset || relaidOut) {
      this._syncAll();
      this._autoFit = this._autoFit || relaidOut;
    } else if (delta.structure) {
      this._syncStructure();
      for (const id of delta.changed) {
        this._drawNode(id);
      }
    } else {
      for (const id of delta.changed) {
        this._drawNode(id);
      }
      for (const id of delta.changedEdges) {
        this._drawEdge(id);
      }
    }
    if (this._autoFit && this.isVisible && (relaidOut || !this._allInView())) {
      this.fitToView();
    }
  }

  /** Whether every node is inside the visible part of the view. */
  private _allInView(): boolean {
    const b = this._positions.bounds();
    const left = b.minX * this._scale + this._tx;
    const right = b.maxX * this._scale + this._tx;
    const top = b.minY * this._scale + this._ty;
    const bottom = b.maxY * this._scale + this._ty;
    return (
      left >= 0 &&
      top >= 0 &&
      right <= this.node.clientWidth &&
      bottom <= this.node.clientHeight
    );
  }

  /** Scale and centre the graph to fill the view (never above 100%). */
  fitToView(): void {
    const width = this.node.clientWidth;
    const height = this.node.clientHeight;
    if (this._positions.positions.size === 0 || width === 0 || height === 0) {
      return;
    }
    const b = this._positions.bounds();
    const margin = 16;
    const scale = Math.max(
      MIN_SCALE,
      Math.min(
        1,
        (width - 2 * margin) / (b.maxX - b.minX),
        (height - 2 * margin) / (b.maxY - b.minY)
      )
    );
    this._scale = scale;
    // Centred, or from the top left corner when even the smallest scale is too big.
    this._tx = Math.max(
      margin - b.minX * scale,
      (width - (b.minX + b.maxX) * scale) / 2
    );
    this._ty = Math.max(
      margin - b.minY * scale,
      (height - (b.minY + b.maxY) * scale) / 2
    );
    if ((b.maxX - b.minX) * scale > width) {
      this._tx = margin - b.minX * scale;
    }
    if ((b.maxY - b.minY) * scale > height) {
      this._ty = margin - b.minY * scale;
    }
    this._applyTransform();
    this._autoFit = true;
  }

  /** Let the next layout fit the view again (after the subject changed). */
  resetView(): void {
    this._autoFit = true;
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case 'pointerdown':
        this._onPointerDown(event as PointerEvent);
        break;
      case 'pointermove':
        this._onPointerMove(event as PointerEvent);
        break;
      case 'pointerup':
        this._onPointerUp(event as PointerEvent);
        break;
      case 'wheel':
        this._onWheel(event as WheelEvent);
        break;
      case 'click':
        this._onClick(event as MouseEvent);
        break;
      case 'dblclick':
        this._onDoubleClick(event as MouseEvent);
        break;
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._autoFit) {
      this.fitToView();
    }
  }

  protected override onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    if (this._autoFit) {
      this.fitToView();
    }
  }

  // --- drawing ---

  private _syncAll(): void {
    this._nodeLayer.textContent = '';
    this._edgeLayer.textContent = '';
    this._nodeElements.clear();
    this._edgeElements.clear();
    this._syncStructure();
  }

  /** Add elements of new nodes and edges, remove those gone. */
  private _syncStructure(): void {
    for (const [id, element] of this._nodeElements) {
      if (!this._model.nodes.has(id)) {
        element.remove();
        this._nodeElements.delete(id);
      }
    }
    for (const [id, element] of this._edgeElements) {
      if (!this._model.edges.has(id)) {
        element.remove();
        this._edgeElements.delete(id);
      }
    }
    const fragment = document.createDocumentFragment();
    for (const node of this._model.nodes.values()) {
      if (!this._nodeElements.has(node.id)) {
        const element = this._createNode(node);
        this._nodeElements.set(node.id, element);
        fragment.appendChild(element);
        this._drawNode(node.id);
      }
    }
    this._nodeLayer.appendChild(fragment);
    const edges = document.createDocumentFragment();
    for (const edge of this._model.edges.values()) {
      if (!this._edgeElements.has(edge.id)) {
        const element = svg('path', { 'marker-end': 'url(#jr-arrow)' });
        this._edgeElements.set(edge.id, element);
        edges.appendChild(element);
        this._drawEdge(edge.id);
      }
    }
    this._edgeLayer.appendChild(edges);
    if (this._selection && !this._model.nodes.has(this._selection)) {
      this.select(null);
      this._selected.emit(null);
    }
  }

  private _createNode(node: GraphNode): SVGGElement {
    const size = sizeOf(node);
    const g = svg('g', { class: 'jr-Node' });
    g.dataset.id = node.id;
    g.dataset.kind = node.type;
    g.appendChild(
      svg('rect', {
        class: 'jr-Node-box',
        x: -size.width / 2,
        y: -size.height / 2,
        width: size.width,
        height: size.height,
        rx: node.type === 'group' ? 6 : 4
      })
    );
    const label = svg('text', {
      class: 'jr-Node-label',
      x: 0,
      y: node.type === 'group' ? -4 : 4,
      'text-anchor': 'middle'
    });
    g.appendChild(label);
    g.appendChild(svg('title'));
    if (node.type === 'group') {
      const strip = svg('g', { class: 'jr-Node-counts' });
      for (const bucket of BUCKETS) {
        strip.appendChild(
          svg('rect', {
            class: `jr-Count jr-bucket-${bucket}`,
            y: 6,
            height: 8
          })
        );
      }
      g.appendChild(strip);
    }
    return g;
  }

  private _drawNode(id: string): void {
    const node = this._model.nodes.get(id);
    const element = this._nodeElements.get(id);
    const position = this._positions.positions.get(id);
    if (!node || !element || !position) {
      return;
    }
    element.setAttribute('transform', `translate(${position.x},${position.y})`);
    const label = element.querySelector('text')!;
    const title = element.querySelector('title')!;
    if (node.type === 'task') {
      const task = node.task;
      const bucket = bucketOf(task.state);
      element.setAttribute(
        'class',
        `jr-Node jr-bucket-${bucket}${id === this._selection ? ' jr-mod-selected' : ''}`
      );
      element.dataset.state = task.state;
      element.dataset.name = task.name;
      label.textContent = Private.fit(task.name, 17);
      title.textContent = `${task.name} — ${task.state}${
        task.error_message ? `\n${task.error_type}: ${task.error_message}` : ''
      }`;
      return;
    }
    const failed = node.counts.failed > 0;
    element.setAttribute(
      'class',
      `jr-Node jr-Group${failed ? ' jr-mod-failed' : ''}${
        id === this._selection ? ' jr-mod-selected' : ''
      }`
    );
    element.dataset.name = node.name;
    element.dataset.total = String(node.total);
    element.dataset.counts = BUCKETS.map(b => `${b}:${node.counts[b]}`).join(
      ' '
    );
    label.textContent = `${Private.fit(node.name, 15)} ×${node.total}`;
    title.textContent = `${node.name}: ${node.total} tasks\n${BUCKETS.map(
      b => `${b} ${node.counts[b]}`
    ).join(', ')}\nDouble-click to expand`;
    const total = Math.max(1, totalOf(node.counts));
    const width = GROUP_SIZE.width - 16;
    let x = -width / 2;
    const rects = element.querySelectorAll<SVGRectElement>('.jr-Count');
    BUCKETS.forEach((bucket, i) => {
      const w = (node.counts[bucket] / total) * width;
      setAttrs(rects[i], { x, width: w });
      x += w;
    });
  }

  private _drawEdge(id: string): void {
    const edge = this._model.edges.get(id);
    const element = this._edgeElements.get(id);
    if (!edge || !element) {
      return;
    }
    const source = this._positions.positions.get(edge.source);
    const target = this._positions.positions.get(edge.target);
    if (!source || !target) {
      return;
    }
    element.setAttribute('d', this._edgePath(source, target));
    element.setAttribute('class', `jr-Edge jr-Edge-${Private.mainKind(edge)}`);
    element.style.strokeWidth =
      edge.count > 1
        ? String(Math.min(6, 1 + Math.log10(edge.count) * 1.5))
        : '';
  }

  /** A curve from the side of `source` facing the next layer to `target`'s other side. */
  private _edgePath(source: IPlaced, target: IPlaced): string {
    if (this._positions.orientation === 'LR') {
      const sx = source.x + source.width / 2;
      const tx = target.x - target.width / 2;
      const bend = Math.max(12, (tx - sx) / 2);
      return `M${sx},${source.y} C${sx + bend},${source.y} ${tx - bend},${target.y} ${tx},${target.y}`;
    }
    const sy = source.y + source.height / 2;
    const ty = target.y - target.height / 2;
    const bend = Math.max(12, (ty - sy) / 2);
    return `M${source.x},${sy} C${source.x},${sy + bend} ${target.x},${ty - bend} ${target.x},${ty}`;
  }

  private _applyTransform(): void {
    this._viewport.setAttribute(
      'transform',
      `translate(${this._tx},${this._ty}) scale(${this._scale})`
    );
  }

  // --- interaction ---

  private _nodeIdAt(event: Event): string | null {
    const target = event.target as Element | null;
    const g = target?.closest?.('.jr-Node') as SVGGElement | null;
    return g?.dataset.id ?? null;
  }

  private _onPointerDown(event: PointerEvent): void {
    if (event.button !== 0) {
      return;
    }
    this._drag = { x: event.clientX, y: event.clientY, moved: false };
    this._svg.addEventListener('pointermove', this);
    this._svg.addEventListener('pointerup', this);
  }

  private _onPointerMove(event: PointerEvent): void {
    if (!this._drag) {
      return;
    }
    const dx = event.clientX - this._drag.x;
    const dy = event.clientY - this._drag.y;
    if (!this._drag.moved && Math.abs(dx) + Math.abs(dy) < 4) {
      return;
    }
    if (!this._drag.moved) {
      // Capture only once it is a drag: a captured click would target the svg, not the node.
      this._svg.setPointerCapture?.(event.pointerId);
    }
    this._drag.moved = true;
    this._drag.x = event.clientX;
    this._drag.y = event.clientY;
    this._tx += dx;
    this._ty += dy;
    this._autoFit = false;
    this._applyTransform();
  }

  private _onPointerUp(event: PointerEvent): void {
    if (this._svg.hasPointerCapture?.(event.pointerId)) {
      this._svg.releasePointerCapture(event.pointerId);
    }
    this._svg.removeEventListener('pointermove', this);
    this._svg.removeEventListener('pointerup', this);
    this._justDragged = this._drag?.moved ?? false;
    this._drag = null;
  }

  private _onClick(event: MouseEvent): void {
    if (this._justDragged) {
      this._justDragged = false;
      return;
    }
    const id = this._nodeIdAt(event);
    if (id !== null) {
      // Selecting opens the details below the graph, which shrinks this view; a refit
      // then would move the node away from under the pointer, and the second click of
      // a double click would miss it. A click on a node is the user taking the view
      // over, as a drag or a zoom is.
      this._autoFit = false;
    }
    this.select(id);
    this._selected.emit(id);
  }

  private _onDoubleClick(event: MouseEvent): void {
    const id = this._nodeIdAt(event);
    const node = id ? this._model.nodes.get(id) : undefined;
    if (node?.type === 'group') {
      this._groupActivated.emit(node.name);
    }
  }

  private _onWheel(event: WheelEvent): void {
    event.preventDefault();
    const rect = this._svg.getBoundingClientRect();
    const px = event.clientX - rect.left;
    const py = event.clientY - rect.top;
    const factor = Math.exp(-event.deltaY * 0.0015);
    const scale = Math.max(
      MIN_SCALE,
      Math.min(MAX_SCALE, this._scale * factor)
    );
    this._tx = px - ((px - this._tx) * scale) / this._scale;
    this._ty = py - ((py - this._ty) * scale) / this._scale;
    this._scale = scale;
    this._autoFit = false;
    this._applyTransform();
  }

  private _model: TaskGraphModel;
  private _resizeObserver: ResizeObserver;
  private _positions: StableLayout;
  private _svg: SVGSVGElement;
  private _viewport: SVGGElement;
  private _edgeLayer: SVGGElement;
  private _nodeLayer: SVGGElement;
  private _nodeElements = new Map<string, SVGGElement>();
  private _edgeElements = new Map<string, SVGPathElement>();
  private _selection: string | null = null;
  private _scale = 1;
  private _tx = 0;
  private _ty = 0;
  private _autoFit = true;
  private _drag: { x: number; y: number; moved: boolean } | null = null;
  private _justDragged = false;
  private _selected = new Signal<this, string | null>(this);
  private _groupActivated = new Signal<this, string>(this);
}

namespace Private {
  export function fit(text: string, length: number): string {
    return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
  }

  export function mainKind(edge: IGraphEdge): string {
    const { data, submitted, actor } = edge.kinds;
    if (data >= submitted && data >= actor) {
      return 'data';
    }
    return submitted >= actor ? 'submitted' : 'actor';
  }
}
