/**
 * The live feed: one WebSocket to the server extension's `events` route that keeps a
 * `ClusterStore` current, reconnects after a server restart (the server then sends a
 * fresh snapshot), and asks for a snapshot when it sees a gap in the sequence numbers.
 *
 * Messages are applied as they arrive; the store tells its listeners at most `rate`
 * times a second, so a burst of updates costs one redraw.
 */
import { IDisposable } from '@lumino/disposable';

import { measure } from './perf';
import type { ClusterStore } from './store';
import type { FeedMessage } from './types';

export interface IFeedOptions {
  /** The URL to connect to; called on each (re)connection, as the token may change. */
  url: () => string;
  /** Redraws per second at most. */
  rate?: number;
  /** The WebSocket class; tests pass a fake. */
  webSocket?: typeof WebSocket;
}

type Timer = ReturnType<typeof setTimeout>;

/** Reconnection delays: quick at first, then at most every 10 s. */
const BACKOFF_MS = [250, 500, 1000, 2000, 5000, 10000];
/** How long a running runtime may go without a snapshot before we ask for one. */
const SNAPSHOT_WAIT_MS = 1500;

export class FeedConnection implements IDisposable {
  constructor(store: ClusterStore, options: IFeedOptions) {
    this._store = store;
    this._url = options.url;
    this._rate = options.rate ?? 4;
    this._WebSocket = options.webSocket ?? WebSocket;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Redraws per second at most. */
  get rate(): number {
    return this._rate;
  }
  set rate(value: number) {
    this._rate = Math.max(0.5, value);
  }

  /** Messages received since the start (for tests and the status tooltip). */
  get received(): number {
    return this._received;
  }

  start(): void {
    if (!this._socket && !this._disposed) {
      this._connect();
    }
  }

  /** Ask the server for a fresh snapshot. */
  resync(): void {
    this._send({ type: 'resync' });
  }

  /** Close and reconnect now (after the runtime was switched, or by the user). */
  reconnect(): void {
    this._attempt = 0;
    this._closeSocket();
    this._connect();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._closeSocket();
    clearTimeout(this._flushTimer);
    clearTimeout(this._snapshotTimer);
  }

  private _connect(): void {
    clearTimeout(this._retryTimer);
    this._store.setConnection('connecting');
    this._scheduleFlush();
    const socket = new this._WebSocket(this._url());
    this._socket = socket;
    socket.onopen = () => {
      this._attempt = 0;
      this._store.setConnection('open');
      this._scheduleFlush();
    };
    socket.onmessage = (event: MessageEvent) => {
      this._onMessage(event.data as string);
    };
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._socket = null;
      this._awaitingSnapshot = false;
      this._store.setConnection('closed');
      this._scheduleFlush();
      if (!this._disposed) {
        const delay =
          BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
        this._attempt += 1;
        this._retryTimer = setTimeout(() => this._connect(), delay);
      }
    };
  }

  private _onMessage(data: string): void {
    const started = performance.now();
    this._received += 1;
    let message: FeedMessage;
    try {
      message = JSON.parse(data) as FeedMessage;
    } catch {
      console.warn('jupyter-ray: a feed message that is not JSON', data);
      return;
    }
    if (message.type === 'snapshot') {
      this._awaitingSnapshot = false;
      clearTimeout(this._snapshotTimer);
    }
    if (this._awaitingSnapshot && message.type === 'update') {
      return; // it cannot apply until the snapshot we asked for
    }
    if (!this._store.apply(message)) {
      this._awaitingSnapshot = true;
      this.resync();
    }
    if (message.type === 'status') {
      this._expectSnapshot(message.cluster.state === 'running');
    }
    this._scheduleFlush();
    // What a message costs the page (parse and apply); the browser test reads it.
    measure('jupyter-ray:feed-apply', started, {
      type: message.type,
      bytes: data.length
    });
  }

  /** The server sends a snapshot after a runtime starts; ask if none comes. */
  private _expectSnapshot(running: boolean): void {
    clearTimeout(this._snapshotTimer);
    if (running && this._store.seq < 0) {
      this._snapshotTimer = setTimeout(() => {
        if (this._store.seq < 0 && this._store.status?.state === 'running') {
          this.resync();
        }
      }, SNAPSHOT_WAIT_MS);
    }
  }

  private _scheduleFlush(): void {
    if (this._flushTimer !== undefined) {
      return;
    }
    const interval = 1000 / this._rate;
    const wait = Math.max(0, this._lastFlush + interval - performance.now());
    this._flushTimer = setTimeout(() => {
      this._flushTimer = undefined;
      this._lastFlush = performance.now();
      this._store.flush();
    }, wait);
  }

  private _send(message: object): void {
    if (this._socket?.readyState === this._WebSocket.OPEN) {
      this._socket.send(JSON.stringify(message));
    }
  }

  private _closeSocket(): void {
    const socket = this._socket;
    this._socket = null;
    clearTimeout(this._retryTimer);
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close();
    }
  }

  private _store: ClusterStore;
  private _url: () => string;
  private _rate: number;
  private _WebSocket: typeof WebSocket;
  private _socket: WebSocket | null = null;
  private _disposed = false;
  private _attempt = 0;
  private _received = 0;
  private _awaitingSnapshot = false;
  private _lastFlush = 0;
  private _flushTimer: Timer | undefined = undefined;
  private _retryTimer: Timer | undefined = undefined;
  private _snapshotTimer: Timer | undefined = undefined;
}
