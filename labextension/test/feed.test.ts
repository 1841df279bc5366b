import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FeedConnection } from '../src/feed';
import { ClusterStore } from '../src/store';
import type { FeedMessage, IClusterStatus } from '../src/types';
import { inState, task } from './factories';

/** A WebSocket the test drives: it opens, receives and closes when told to. */
class FakeSocket {
  static readonly OPEN = 1;
  static all: FakeSocket[] = [];

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  readyState = 0;
  sent: unknown[] = [];
  closed = false;
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;

  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }

  receive(message: FeedMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(): void {
    this.closed = true;
  }

  /** The server went away. */
  drop(): void {
    this.readyState = 3;
    this.onclose?.();
  }
}

const running: IClusterStatus = {
  state: 'running',
  owned: true,
  address: null,
  node_id: null,
  tcp_address: null,
  error: null
};

function connect(rate = 4): {
  store: ClusterStore;
  feed: FeedConnection;
  flushes: number[];
} {
  const store = new ClusterStore();
  const flushes: number[] = [];
  store.changed.connect(() => flushes.push(Date.now()));
  const feed = new FeedConnection(store, {
    url: () => 'ws://x/jupyter-ray/api/events',
    rate,
    webSocket: FakeSocket as unknown as typeof WebSocket
  });
  feed.start();
  return { store, feed, flushes };
}

describe('FeedConnection', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.all = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('applies messages at once and tells listeners at most `rate` times a second', () => {
    const { store, feed, flushes } = connect(4);
    const socket = FakeSocket.all[0];
    socket.open();
    vi.advanceTimersByTime(1000);
    flushes.length = 0;
    const a = task();
    socket.receive({ type: 'snapshot', seq: 1, tasks: [a] });
    for (let seq = 2; seq < 40; seq++) {
      socket.receive({
        type: 'update',
        seq,
        changed: { tasks: [inState(a, seq % 2 ? 'RUNNING' : 'PENDING_ARGS')] }
      });
      vi.advanceTimersByTime(25);
    }
    expect(store.seq).toBe(39);
    vi.advanceTimersByTime(1000);
    // 38 messages over ~1 s: a handful of redraws, not 38.
    expect(flushes.length).toBeGreaterThanOrEqual(2);
    expect(flushes.length).toBeLessThanOrEqual(6);
    feed.dispose();
  });

  it('asks for a snapshot when an update is missing, and ignores updates until it comes', () => {
    const { store, feed } = connect();
    const socket = FakeSocket.all[0];
    socket.open();
    socket.receive({ type: 'snapshot', seq: 5, tasks: [] });
    socket.receive({ type: 'update', seq: 7, changed: { tasks: [task()] } });
    expect(socket.sent).toEqual([{ type: 'resync' }]);
    socket.receive({ type: 'update', seq: 8, changed: { tasks: [task()] } });
    expect(store.tables.tasks.size).toBe(0);
    expect(socket.sent.length).toBe(1);
    socket.receive({ type: 'snapshot', seq: 8, tasks: [task(), task()] });
    socket.receive({ type: 'update', seq: 9, changed: { tasks: [task()] } });
    expect(store.tables.tasks.size).toBe(3);
    feed.dispose();
  });

  it('reconnects after the server goes away, and takes the fresh snapshot', () => {
    const { store, feed } = connect();
    FakeSocket.all[0].open();
    FakeSocket.all[0].receive({ type: 'status', cluster: running });
    FakeSocket.all[0].receive({ type: 'snapshot', seq: 3, tasks: [task()] });
    FakeSocket.all[0].drop();
    expect(store.connection).toBe('closed');

    // Nothing answers for a while: it keeps trying, backing off.
    vi.advanceTimersByTime(250);
    expect(FakeSocket.all.length).toBe(2);
    FakeSocket.all[1].drop();
    vi.advanceTimersByTime(400);
    expect(FakeSocket.all.length).toBe(2);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all.length).toBe(3);

    const again = FakeSocket.all[2];
    again.open();
    expect(store.connection).toBe('open');
    again.receive({ type: 'status', cluster: running });
    again.receive({ type: 'snapshot', seq: 0, tasks: [task(), task()] });
    expect(store.seq).toBe(0);
    expect(store.tables.tasks.size).toBe(2);
    feed.dispose();
    expect(again.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all.length).toBe(3);
  });

  it('asks for a snapshot when a running runtime sends none', () => {
    const { feed } = connect();
    const socket = FakeSocket.all[0];
    socket.open();
    socket.receive({ type: 'status', cluster: running });
    vi.advanceTimersByTime(2000);
    expect(socket.sent).toEqual([{ type: 'resync' }]);
    feed.dispose();
  });
});
