/**
 * The records and messages of the server extension's REST routes and live feed
 * (docs/rest-api.md). Field names are the state API's (runtime/state_schema.py).
 */

/** Task states, in the order a task normally goes through them. */
export type TaskStateName =
  | 'PENDING_ARGS'
  | 'PENDING_RESOURCES'
  | 'SCHEDULED'
  | 'RUNNING'
  | 'FINISHED'
  | 'FAILED'
  | 'CANCELLED';

export interface ITask {
  task_id: string;
  /** Function name, or `Class.method` for actor calls. */
  name: string;
  kind: 'task' | 'actor_creation' | 'actor_method';
  state: TaskStateName;
  /** State name -> epoch seconds at which the task entered it. */
  times: Partial<Record<TaskStateName, number>>;
  owner_pid?: number;
  parent_task_id: string | null;
  /** Object ids of its ObjectRef arguments. */
  depends_on: string[];
  /** Object ids of its results. */
  returns: string[];
  node_id: string;
  worker_pid: number | null;
  actor_id: string | null;
  resources?: Record<string, number>;
  attempt: number;
  error_type: string | null;
  error_message: string | null;
  cell_id: string | null;
  cell_execution_count: number | null;
  job_id: string | null;
  /** Not in the contract yet: shown when the server sends it (see CONTRACT-NOTES.md). */
  args_preview?: string | null;
  traceback?: string | null;
}

export type ActorStateName =
  'PENDING_CREATION' | 'ALIVE' | 'RESTARTING' | 'DEAD';

export interface IActor {
  actor_id: string;
  class_name: string;
  name: string | null;
  namespace: string;
  state: ActorStateName;
  node_id: string;
  pid: number | null;
  restarts: number;
  death_cause: string | null;
  detached: boolean;
}

export interface IObject {
  object_id: string;
  size: number;
  owner_pid: number;
  /** "pending", "inline", "shared_memory", "spilled" or "file". */
  location: string;
  local_refs: number;
  pending_task_refs: number;
  contained_in: number;
  borrowers: number;
  pinned_views: number;
  task_id: string;
  type_name: string;
  preview: string | null;
  created: number;
}

export interface IGpu {
  index: number;
  name: string;
  utilization: number;
  memory_used: number;
  memory_total: number;
}

export interface INode {
  node_id: string;
  alive: boolean;
  address?: string;
  hostname: string;
  is_head: boolean;
  resources_total: Record<string, number>;
  resources_available: Record<string, number>;
  cpu_percent: number;
  memory_used: number;
  memory_total: number;
  object_store_used: number;
  object_store_capacity: number;
  object_store_spilled: number;
  num_workers: number;
  gpus: IGpu[] | null;
}

export interface IJob {
  job_id: string;
  pid: number;
  start_time: number;
  end_time: number | null;
  metadata: Record<string, string>;
}

/** Options of `POST cluster` when it starts a runtime. */
export interface IStartOptions {
  num_cpus?: number | null;
  num_gpus?: number | null;
  resources?: Record<string, number>;
  object_store_memory?: number | null;
  worker_nodes?: number;
}

export type ClusterStateName = 'stopped' | 'starting' | 'running' | 'crashed';

/** `GET cluster` and the feed's `status` messages. */
export interface IClusterStatus {
  state: ClusterStateName;
  owned: boolean;
  backend?: string;
  address: string | null;
  node_id: string | null;
  tcp_address: string | null;
  join_command?: string | null;
  token_file?: string | null;
  worker_nodes?: number[];
  options?: IStartOptions | null;
  error: string | null;
}

/** An entry of `GET clusters`: a runtime in this machine's registry. */
export interface IRegistryEntry {
  node_id: string;
  address: string;
  pid: number;
  started: number;
  origin: string;
  label: string | null;
  tcp_address: string | null;
  head: boolean;
  current: boolean;
}

/** The record kinds the feed carries, and the field that is each one's id. */
export interface IRecords {
  tasks: ITask;
  actors: IActor;
  objects: IObject;
  nodes: INode;
  jobs: IJob;
}
export type RecordKind = keyof IRecords;
export const RECORD_KINDS: readonly RecordKind[] = [
  'tasks',
  'actors',
  'objects',
  'nodes',
  'jobs'
];
export const ID_FIELDS: { [K in RecordKind]: keyof IRecords[K] & string } = {
  tasks: 'task_id',
  actors: 'actor_id',
  objects: 'object_id',
  nodes: 'node_id',
  jobs: 'job_id'
};

export type RecordLists = { [K in RecordKind]?: IRecords[K][] };

export interface IStatusMessage {
  type: 'status';
  cluster: IClusterStatus;
}
export interface ISnapshotMessage extends RecordLists {
  type: 'snapshot';
  seq: number;
}
export interface IUpdateMessage {
  type: 'update';
  seq: number;
  changed?: RecordLists;
  removed?: { [K in RecordKind]?: string[] };
}
export type FeedMessage = IStatusMessage | ISnapshotMessage | IUpdateMessage;
