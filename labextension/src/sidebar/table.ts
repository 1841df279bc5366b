/**
 * A table sorted by a column the user picks (click a header; again to reverse), drawn
 * up to a row limit so that thousands of records cost no more than the rows shown.
 */
import { h, replaceChildren } from '../dom';

export interface IColumn<T> {
  id: string;
  label: string;
  /** The value sorted on. */
  value: (row: T) => string | number;
  /** What the cell shows; `value` by default. */
  render?: (row: T) => Node | string;
  numeric?: boolean;
  title?: string;
}

export interface ITableOptions<T> {
  columns: IColumn<T>[];
  key: (row: T) => string;
  sortBy: string;
  descending?: boolean;
  limit?: number;
  empty: string;
  className?: string;
}

export class SortableTable<T> {
  constructor(options: ITableOptions<T>) {
    this._options = options;
    this._sortBy = options.sortBy;
    this._descending = options.descending ?? false;
    this._head = h('thead');
    this._body = h('tbody');
    this._footer = h('div', { class: 'jr-Table-footer' });
    this.node = h(
      'div',
      { class: `jr-Table ${options.className ?? ''}` },
      h('table', {}, this._head, this._body),
      this._footer
    );
    this._renderHead();
  }

  readonly node: HTMLElement;

  get sortBy(): string {
    return this._sortBy;
  }

  setRows(rows: T[]): void {
    this._rows = rows;
    this._renderBody();
  }

  sort(columnId: string): void {
    if (this._sortBy === columnId) {
      this._descending = !this._descending;
    } else {
      this._sortBy = columnId;
      const column = this._options.columns.find(c => c.id === columnId);
      this._descending = column?.numeric ?? false;
    }
    this._renderHead();
    this._renderBody();
  }

  private _renderHead(): void {
    replaceChildren(
      this._head,
      h(
        'tr',
        {},
        ...this._options.columns.map(column =>
          h(
            'th',
            {
              class: `${column.numeric ? 'jr-mod-numeric' : ''} ${
                column.id === this._sortBy
                  ? this._descending
                    ? 'jr-mod-descending'
                    : 'jr-mod-ascending'
                  : ''
              }`,
              title: column.title ?? `Sort by ${column.label}`,
              dataset: { column: column.id },
              onclick: () => this.sort(column.id)
            },
            column.label
          )
        )
      )
    );
  }

  private _renderBody(): void {
    const column =
      this._options.columns.find(c => c.id === this._sortBy) ??
      this._options.columns[0];
    const sign = this._descending ? -1 : 1;
    const sorted = [...this._rows].sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
    const limit = this._options.limit ?? 200;
    const shown = sorted.slice(0, limit);
    const fragment = document.createDocumentFragment();
    for (const row of shown) {
      fragment.appendChild(
        h(
          'tr',
          { dataset: { key: this._options.key(row) } },
          ...this._options.columns.map(c =>
            h(
              'td',
              {
                class: c.numeric ? 'jr-mod-numeric' : '',
                dataset: { column: c.id }
              },
              c.render ? c.render(row) : String(c.value(row))
            )
          )
        )
      );
    }
    replaceChildren(this._body, fragment);
    this._footer.textContent =
      this._rows.length === 0
        ? this._options.empty
        : sorted.length > limit
          ? `${limit} of ${sorted.length} shown`
          : '';
  }

  private _options: ITableOptions<T>;
  private _sortBy: string;
  private _descending: boolean;
  private _rows: T[] = [];
  private _head: HTMLElement;
  private _body: HTMLElement;
  private _footer: HTMLElement;
}
