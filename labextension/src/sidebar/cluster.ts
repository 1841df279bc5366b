/**
 * The Cluster section: whether the server's runtime runs, start (with options) and
 * stop, every runtime of the machine's registry (switchable), and each node's bars.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';

import { Api } from '../api';
import { h, replaceChildren } from '../dom';
import { clusterTotals } from '../store';
import { formatAmount, shortId } from '../states';
import type { IRayCluster } from '../tokens';
import type { IClusterStatus, IRegistryEntry, IStartOptions } from '../types';
import { nodeCard } from './nodes';
import { Section } from './section';

/** How often the list of runtimes is read again while the section is in view. */
const REGISTRY_EVERY_MS = 10_000;

export class ClusterSection extends Section {
  constructor(cluster: IRayCluster) {
    super(cluster, ['status', 'connection', 'nodes']);
    this.addClass('jr-ClusterSection');
    this.title.label = 'Cluster';
    this.node.append(this._header, this._controls, this._registry, this._nodes);
    this._drawControls();
  }

  /** Start a runtime with these options (the form's, or the settings' defaults). */
  start(options?: IStartOptions): Promise<void> {
    return this._change('Could not start the runtime', () =>
      Api.start(options ?? this._formOptions())
    );
  }

  /** Stop the runtime the server started, or detach from the one it attached to. */
  stop(): Promise<void> {
    return this._change('Could not stop the runtime', () => Api.stop());
  }

  /** Run a start or stop: buttons disabled meanwhile, the answer shown at once. */
  private async _change(
    failure: string,
    request: () => Promise<IClusterStatus>
  ): Promise<void> {
    try {
      this._busy = true;
      this.refresh();
      this.cluster.store.setStatus(await request());
      this.cluster.store.flush();
    } catch (error) {
      await showErrorMessage(failure, error as Error);
    } finally {
      this._busy = false;
      this.refresh();
      void this._loadRegistry();
    }
  }

  protected draw(): void {
    this._drawHeader();
    this._drawNodes();
    this._updateButtons();
    // The registry changes when any process of the machine starts or stops a runtime,
    // which the feed does not say: read it again when the runtime or the connection
    // changes, and every REGISTRY_EVERY_MS while the section is in view.
    const key = `${this.cluster.store.status?.state}/${this.cluster.store.connection}`;
    if (key !== this._lastState) {
      this._lastState = key;
      void this._loadRegistry();
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._loadRegistry();
    clearInterval(this._registryTimer);
    this._registryTimer = setInterval(() => {
      if (this.isVisible) {
        void this._loadRegistry();
      }
    }, REGISTRY_EVERY_MS);
  }

  protected override onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    clearInterval(this._registryTimer);
  }

  override dispose(): void {
    clearInterval(this._registryTimer);
    super.dispose();
  }

  private _drawHeader(): void {
    const store = this.cluster.store;
    const status = store.status;
    let text: string;
    let tone: string;
    if (store.connection !== 'open') {
      text =
        store.connection === 'connecting'
          ? 'Connecting to the server…'
          : 'Disconnected from the server; reconnecting…';
      tone = 'off';
    } else if (!status || status.state === 'stopped') {
      text =
        'No runtime is running. Start one here, or with %ray_start in a notebook.';
      tone = 'off';
    } else if (status.state === 'starting') {
      text = 'Starting the runtime…';
      tone = 'busy';
    } else if (status.state === 'crashed') {
      text = `The runtime crashed: ${status.error ?? 'no reason given'}`;
      tone = 'error';
    } else {
      const totals = clusterTotals(store);
      text = `Running${status.owned ? ', started by this server' : ', attached'} · ${totals.nodes} node${
        totals.nodes === 1 ? '' : 's'
      } · CPU ${formatAmount(totals.cpuBusy)}/${formatAmount(totals.cpuTotal)}`;
      tone = 'ok';
    }
    this._header.dataset.state = status?.state ?? 'unknown';
    this._header.dataset.connection = store.connection;
    replaceChildren(
      this._header,
      h('span', { class: `jr-Dot jr-tone-${tone}` }),
      h('span', { class: 'jr-ClusterSection-statusText' }, text),
      status?.tcp_address
        ? h(
            'div',
            {
              class: 'jr-ClusterSection-address',
              title: status.join_command ?? ''
            },
            `Head: ${status.tcp_address}`
          )
        : null
    );
  }

  private _drawControls(): void {
    const defaults = this.cluster.settings.startOptions;
    const field = (
      name: keyof IStartOptions,
      label: string,
      value: unknown,
      hint: string
    ) =>
      h(
        'label',
        { class: 'jr-Form-field', title: hint },
        h('span', {}, label),
        h('input', {
          class: 'jp-mod-styled',
          name,
          type: 'text',
          placeholder: 'default',
          value:
            value === null || value === undefined ? '' : String(value as string)
        })
      );
    this._form = h(
      'form',
      { class: 'jr-Form', onsubmit: (e: Event) => e.preventDefault() },
      field(
        'num_cpus',
        'CPUs',
        defaults.num_cpus,
        'Logical CPUs the runtime offers'
      ),
      field('num_gpus', 'GPUs', defaults.num_gpus, 'GPUs the runtime offers'),
      field(
        'object_store_memory',
        'Store (MiB)',
        defaults.object_store_memory
          ? Math.round(defaults.object_store_memory / (1 << 20))
          : null,
        'Object store capacity in MiB'
      ),
      field(
        'worker_nodes',
        'Worker nodes',
        defaults.worker_nodes ?? 0,
        'Local worker nodes besides the head (0-16)'
      ),
      field(
        'resources',
        'Resources',
        defaults.resources && Object.keys(defaults.resources).length
          ? JSON.stringify(defaults.resources)
          : null,
        'Custom resources as JSON, e.g. {"disk": 4}'
      )
    );
    this._startButton = h(
      'button',
      {
        class: 'jp-Button jp-mod-styled jp-mod-accept jr-Start',
        onclick: () => void this.start()
      },
      'Start'
    );
    this._stopButton = h(
      'button',
      {
        class: 'jp-Button jp-mod-styled jp-mod-warn jr-Stop',
        onclick: () => void this.stop()
      },
      'Stop'
    );
    this._options = h(
      'details',
      { class: 'jr-ClusterSection-options' },
      h('summary', {}, 'Start options'),
      this._form
    );
    replaceChildren(
      this._controls,
      h(
        'div',
        { class: 'jr-ClusterSection-buttons' },
        this._startButton,
        this._stopButton
      ),
      this._options
    );
  }

  private _updateButtons(): void {
    const status = this.cluster.store.status;
    const running = status?.state === 'running' || status?.state === 'starting';
    const connected = this.cluster.store.connection === 'open';
    // One of the two at a time: the one that makes sense now.
    this._startButton.classList.toggle('jr-mod-hidden', running);
    this._stopButton.classList.toggle('jr-mod-hidden', !running);
    this._startButton.disabled = this._busy || running || !connected;
    this._stopButton.disabled = this._busy || !running || !connected;
    this._stopButton.textContent =
      status && !status.owned && running ? 'Detach' : 'Stop';
    // Start options only matter before a start: the node bars get the room after it.
    this._options.classList.toggle('jr-mod-hidden', running);
  }

  /** The form's values; empty fields take the runtime's defaults. */
  private _formOptions(): IStartOptions {
    const value = (name: string): string =>
      (
        this._form.querySelector<HTMLInputElement>(`input[name="${name}"]`)
          ?.value ?? ''
      ).trim();
    const number = (name: string): number | null => {
      const text = value(name);
      if (text === '') {
        return null;
      }
      const parsed = Number(text);
      if (!Number.isFinite(parsed) || parsed < 0) {
        throw new Error(`${name} must be a number ≥ 0, not “${text}”`);
      }
      return parsed;
    };
    const options: IStartOptions = {};
    const cpus = number('num_cpus');
    if (cpus !== null) {
      options.num_cpus = cpus;
    }
    const gpus = number('num_gpus');
    if (gpus !== null) {
      options.num_gpus = gpus;
    }
    const store = number('object_store_memory');
    if (store !== null) {
      options.object_store_memory = Math.round(store * (1 << 20));
    }
    const workers = number('worker_nodes');
    if (workers !== null) {
      options.worker_nodes = workers;
    }
    const resources = value('resources');
    if (resources) {
      options.resources = JSON.parse(resources) as Record<string, number>;
    }
    return options;
  }

  private async _loadRegistry(): Promise<void> {
    if (this.cluster.store.connection !== 'open') {
      return;
    }
    try {
      this._entries = await Api.clusters();
    } catch (error) {
      console.warn('jupyter-ray: could not list runtimes', error);
      this._entries = [];
    }
    this._drawRegistry();
  }

  private _drawRegistry(): void {
    // The list is for switching: worth its room when there is another runtime.
    if (!this._entries.some(entry => !entry.current)) {
      replaceChildren(this._registry);
      return;
    }
    replaceChildren(
      this._registry,
      h(
        'div',
        { class: 'jr-Subtitle' },
        'Runtimes on this machine',
        h(
          'button',
          {
            class: 'jr-IconButton jr-Refresh',
            title: 'Refresh the list',
            onclick: () => void this._loadRegistry()
          },
          '↻'
        )
      ),
      h(
        'ul',
        { class: 'jr-Registry' },
        ...this._entries.map(entry =>
          h(
            'li',
            {
              class: `jr-Registry-entry${entry.current ? ' jr-mod-current' : ''}`,
              dataset: { nodeId: entry.node_id }
            },
            h(
              'span',
              { class: 'jr-Registry-label', title: entry.address },
              entry.label || `${entry.origin} ${shortId(entry.node_id)}`
            ),
            h(
              'span',
              { class: 'jr-Registry-meta' },
              `${entry.origin} · pid ${entry.pid}${entry.head ? '' : ' · worker node'}`
            ),
            entry.current
              ? h('span', { class: 'jr-Badge' }, 'shown')
              : entry.head
                ? h(
                    'button',
                    {
                      class: 'jp-Button jp-mod-styled jr-Switch',
                      onclick: () => void this._switchTo(entry)
                    },
                    'Switch'
                  )
                : null
          )
        )
      )
    );
  }

  private async _switchTo(entry: IRegistryEntry): Promise<void> {
    const status = this.cluster.store.status;
    if (status?.state === 'running' && status.owned) {
      const answer = await showDialog({
        title: 'Switch runtime',
        body: 'This server started the runtime shown now: switching stops it, and its tasks and objects are lost.',
        buttons: [
          Dialog.cancelButton(),
          Dialog.warnButton({ label: 'Stop and switch' })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    try {
      if (status?.state === 'running' || status?.state === 'starting') {
        await Api.stop();
      }
      this.cluster.store.setStatus(
        await Api.attach(entry.address || entry.tcp_address || '')
      );
      this.cluster.store.flush();
    } catch (error) {
      await showErrorMessage('Could not switch runtime', error as Error);
    }
    void this._loadRegistry();
  }

  private _drawNodes(): void {
    const nodes = Array.from(this.cluster.store.tables.nodes.values()).sort(
      (a, b) =>
        Number(b.is_head) - Number(a.is_head) ||
        a.node_id.localeCompare(b.node_id)
    );
    replaceChildren(this._nodes, ...nodes.map(nodeCard));
  }

  private _header = h('div', { class: 'jr-ClusterSection-status' });
  private _controls = h('div', { class: 'jr-ClusterSection-controls' });
  private _registry = h('div', { class: 'jr-ClusterSection-registry' });
  private _nodes = h('div', { class: 'jr-ClusterSection-nodes' });
  private _form!: HTMLFormElement;
  private _options!: HTMLDetailsElement;
  private _startButton!: HTMLButtonElement;
  private _stopButton!: HTMLButtonElement;
  private _entries: IRegistryEntry[] = [];
  private _busy = false;
  private _lastState = '';
  private _registryTimer: ReturnType<typeof setInterval> | undefined =
    undefined;
}
