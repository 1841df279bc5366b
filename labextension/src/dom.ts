/**
 * A small helper to build DOM elements without a framework: the sidebar redraws parts
 * of itself a few times a second, and plain DOM keeps that cheap and predictable.
 */

type Child = Node | string | number | null | undefined | false;

export interface IAttrs {
  class?: string;
  title?: string;
  style?: Partial<CSSStyleDeclaration>;
  dataset?: Record<string, string>;
  [attribute: string]: unknown;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: IAttrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (key === 'class') {
      element.className = value as string;
    } else if (key === 'style') {
      Object.assign(element.style, value);
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      element.setAttribute(key, '');
    } else if (typeof value === 'string' || typeof value === 'number') {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | undefined> = {}
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  setAttrs(element, attrs);
  return element;
}

export function setAttrs(
  element: Element,
  attrs: Record<string, string | number | undefined>
): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined) {
      element.setAttribute(key, String(value));
    }
  }
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(
      typeof child === 'object' ? child : document.createTextNode(String(child))
    );
  }
}

/** Replace every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.textContent = '';
  append(parent, children);
}

/** A labelled horizontal bar: `fraction` of it filled. */
export function bar(
  label: string,
  fraction: number,
  text: string,
  variant = ''
): HTMLElement {
  const clamped = Math.max(
    0,
    Math.min(1, Number.isFinite(fraction) ? fraction : 0)
  );
  return h(
    'div',
    { class: `jr-Bar ${variant}`, title: `${label}: ${text}` },
    h('span', { class: 'jr-Bar-label' }, label),
    h(
      'span',
      { class: 'jr-Bar-track' },
      h('span', {
        class: 'jr-Bar-fill',
        style: { width: `${(clamped * 100).toFixed(1)}%` }
      })
    ),
    h('span', { class: 'jr-Bar-text' }, text)
  );
}
