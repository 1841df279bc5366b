/**
 * The server extension's REST routes (docs/rest-api.md), through one `requestAPI<T>`
 * wrapper that sends Lab's credentials (token or cookie and XSRF) and works under any
 * base URL.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  IActor,
  IClusterStatus,
  IObject,
  IRegistryEntry,
  IStartOptions,
  ITask
} from './types';

/** Where the routes live, below the server's base URL. */
export const API_PATH = 'jupyter-ray/api';

/** Call one route; answers the parsed JSON body, or throws with the server's message. */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const response = await rawRequest(endPoint, init, settings);
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** Call one route and answer the response itself (for downloads). */
export async function rawRequest(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Response> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      const body = (await response.clone().json()) as { message?: string };
      message = body.message ?? message;
    } catch {
      // Not JSON: keep the status text.
    }
    throw new ServerConnection.ResponseError(response, message);
  }
  return response;
}

/** The WebSocket URL of the live feed, with the token when Lab would add one. */
export function feedUrl(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  let url = URLExt.join(settings.wsUrl, API_PATH, 'events');
  if (settings.appendToken && settings.token) {
    url += `?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}

function json(method: string, body?: unknown): RequestInit {
  return body === undefined
    ? { method }
    : { method, body: JSON.stringify(body) };
}

export namespace Api {
  export function cluster(): Promise<IClusterStatus> {
    return requestAPI<IClusterStatus>('cluster');
  }

  export function clusters(): Promise<IRegistryEntry[]> {
    return requestAPI<{ clusters: IRegistryEntry[] }>('clusters').then(
      r => r.clusters
    );
  }

  /** Start a runtime owned by the server. */
  export function start(options: IStartOptions): Promise<IClusterStatus> {
    return requestAPI<IClusterStatus>('cluster', json('POST', options));
  }

  /** Attach to another runtime of the registry (socket path or HOST:PORT). */
  export function attach(address: string): Promise<IClusterStatus> {
    return requestAPI<IClusterStatus>('cluster', json('POST', { address }));
  }

  /** Stop the runtime if the server started it, or detach from it. */
  export function stop(): Promise<IClusterStatus> {
    return requestAPI<IClusterStatus>('cluster', json('DELETE'));
  }

  export function task(taskId: string): Promise<ITask> {
    return requestAPI<ITask>(`tasks/${encodeURIComponent(taskId)}`);
  }

  export function actors(): Promise<IActor[]> {
    return requestAPI<{ actors: IActor[] }>('actors').then(r => r.actors);
  }

  export function objects(): Promise<IObject[]> {
    return requestAPI<{ objects: IObject[] }>('objects').then(r => r.objects);
  }

  /** The Chrome trace of recent tasks, as a file the browser saves. */
  export async function downloadTimeline(): Promise<void> {
    const response = await rawRequest('timeline');
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = 'jupyter_ray-timeline.json';
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
