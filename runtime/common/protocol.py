"""Every message that crosses a process boundary.

Messages are slotted dataclasses; user data inside them is already serialized to bytes
(see :mod:`serialization`), so a message itself pickles with the standard pickler, as
field tuples (:func:`framing.pickle_as_field_tuples`). How messages are framed on the
wire is in :mod:`framing`. Receivers keep a dispatch table from message class to handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .framing import pickle_as_field_tuples
from .labels import satisfied

INLINE_LIMIT = 100 * 1024
"""Objects whose serialized size is below this travel inside messages."""


# --- objects -----------------------------------------------------------------------


@dataclass(slots=True)
class Payload:
    """Where an object's serialized bytes are: inline, in the node's arena, or in a file."""

    data: bytes | None = None
    offset: int = -1
    path: str | None = None
    size: int = 0
    error: bool = False
    type_name: str = ""

    @property
    def in_arena(self) -> bool:
        return self.data is None and self.path is None


# --- tasks -------------------------------------------------------------------------


@dataclass(slots=True)
class TaskSpec:
    """Everything a node needs to run a task; made by the submitting process."""

    task_id: bytes
    name: str
    fn_id: bytes
    args: bytes
    deps: list[bytes]
    nested_refs: list[bytes]
    num_returns: int
    resources: dict[str, float]
    max_retries: int
    retry_exceptions: bool | bytes
    max_calls: int
    parent_task: bytes | None = None
    cell_id: str | None = None
    cell_execution_count: int | None = None
    job_id: str | None = None  # the driver whose work this is, inherited by nested tasks
    owner: int = 0  # connection id of the submitter, filled in by the node manager
    kind: int = 0  # TASK, ACTOR_CREATION or ACTOR_METHOD
    actor_id: bytes | None = None
    method: str = ""
    # An actor call sent through the node while the caller's direct calls to the same
    # actor are still out: run it only after (worker id, direct call number) arrived.
    after: tuple[str, int] | None = None
    # {"env_vars": {...}, "working_dir": path}: set for the task (for an actor's life)
    runtime_env: dict[str, Any] | None = None
    concurrency_group: str | None = None  # an actor call's, when given per call
    namespace: str | None = None  # the job's, when init(namespace=...) set one
    generator: int = 0  # generators.STREAMING or DYNAMIC: how it reports what it yields
    # A task whose strategy captures child tasks: the placement group (id) they run in.
    capture_group: bytes | None = None


TASK = 0
ACTOR_CREATION = 1
ACTOR_METHOD = 2


@dataclass(slots=True)
class ActorOptions:
    """How an actor is placed, named, restarted and run; fixed at creation."""

    class_name: str
    methods: bytes  # pickled {method name: num_returns}, returned to get_actor callers
    name: str | None = None
    namespace: str = "default"
    detached: bool = False
    get_if_exists: bool = False
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1
    is_async: bool = False
    hold_resources: bool = False  # num_cpus/num_gpus/resources given: held while alive
    # named groups of calls, each with its own concurrency, and the methods in each
    concurrency_groups: dict[str, int] = field(default_factory=dict)
    method_groups: dict[str, str] = field(default_factory=dict)
    # Release a call as soon as its arguments are ready, not in its caller's order
    # (threaded and async actors, as in Ray; allow_out_of_order_execution).
    out_of_order: bool = False


# --- client -> node manager ------------------------------------------------------


@dataclass(slots=True)
class Hello:
    role: str  # "driver" or "worker"
    pid: int
    worker_id: str = ""
    owns_node: bool = False  # an embedded node manager exits when this driver leaves
    auth: bytes | None = None  # HMAC of the server's nonce, over TCP (see auth.py)


@dataclass(slots=True)
class JobInfo:
    """A driver says which job it is, once it connects (see ``jobs.py``)."""

    job_id: str
    metadata: dict[str, str]  # who the driver is: kernel id, notebook, entry point...


@dataclass(slots=True)
class RegisterFunction:
    fn_id: bytes
    name: str
    payload: bytes


@dataclass(slots=True)
class SubmitTask:
    spec: TaskSpec


@dataclass(slots=True)
class CreateActor:
    """Create an actor (``spec.kind == ACTOR_CREATION``); answered by ``ActorCreated``."""

    req_id: int
    spec: TaskSpec
    options: ActorOptions


@dataclass(slots=True)
class KillActor:
    actor_id: bytes
    no_restart: bool


@dataclass(slots=True)
class ActorExiting:
    """Sent by an actor's worker that exits on purpose (exit_actor, __ray_terminate__)."""

    actor_id: bytes
    reason: str


@dataclass(slots=True)
class PutInline:
    object_id: bytes
    data: bytes
    contained: list[bytes]
    type_name: str = ""
    chunked: bool = False  # ``data`` is empty: the value came as ObjectChunks just before
    # Sent after the value that refers to it (it was not sealed then): the receiving node
    # stores it only if it still knows the object, else drops it.
    announced: bool = False


@dataclass(slots=True)
class ObjectChunk:
    """One piece of a large value sent to another machine (see :mod:`transfer`)."""

    object_id: bytes
    offset: int
    total: int
    data: bytes


CHUNKED_OFFSET = -4
"""``Payload.offset`` of a value whose bytes came as ObjectChunks just before the message."""


@dataclass(slots=True)
class CreateObject:
    req_id: int
    object_id: bytes
    size: int


@dataclass(slots=True)
class SealObject:
    object_id: bytes
    payload: Payload
    contained: list[bytes]


@dataclass(slots=True)
class RefUpdate:
    """Reference-count changes of one process, sent only on 0<->1 transitions."""

    add: list[bytes]
    remove: list[bytes]


@dataclass(slots=True)
class Unpin:
    """The sender no longer maps these arena objects (object id, deliveries released)."""

    counts: list[tuple[bytes, int]]


@dataclass(slots=True)
class Subscribe:
    """Send ``ObjectAvailable`` for each id once it is ready (values or readiness only)."""

    object_ids: list[bytes]
    want_value: bool


@dataclass(slots=True)
class Blocked:
    """A worker waits in ``get``: its CPU may run other tasks meanwhile.

    ``waiting_on``: the objects it waits for; when every one is already sealed, their
    values are on their way and the node lends nothing (no worker starts for a ``get``
    that will not wait). Empty: lend in any case."""

    waiting_on: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Unblocked:
    pass


@dataclass(slots=True)
class CancelRequest:
    object_id: bytes
    force: bool
    recursive: bool


@dataclass(slots=True)
class CancelCell:
    """Cancel every live task one notebook cell of one job submitted (an interrupt)."""

    cell_id: str
    job_id: str
    force: bool = False
    req_id: int = 0  # non-zero: answer with QueryReply(req_id, number of tasks cancelled)


@dataclass(slots=True)
class TaskDone:
    task_id: bytes
    results: list[Payload]
    contained: list[list[bytes]]
    retry: bool = False  # the task raised and asked to be retried (retry_exceptions)
    exit_after: bool = False  # max_calls reached: the worker exits after this message
    started: float = 0.0  # when the worker began executing it (time.time())
    ended: float = 0.0
    error_type: str | None = None  # set when the task raised
    error_message: str | None = None
    direct_caller: int = 0  # a direct call's (see below): the caller's connection id


@dataclass(slots=True)
class GeneratorItem:
    """Worker to node: the ``index``-th value (from 1) a streaming generator task yielded
    (see :mod:`generators`)."""

    task_id: bytes
    index: int
    payload: Payload
    contained: list[bytes]


@dataclass(slots=True)
class TaskStarted:
    """Worker to node: calls that have been running a while, with their start times."""

    started: list[tuple[bytes, float]]


@dataclass(slots=True)
class LogLines:
    """Output a task printed; the node passes it to the task's owner (its driver)."""

    task_id: bytes
    name: str
    pid: int
    stream: int  # 1 stdout, 2 stderr
    text: str
    cell_id: str | None = None  # notebook cell that submitted the task: where to show it
    cell_execution_count: int | None = None


@dataclass(slots=True)
class Query:
    req_id: int
    what: str
    arg: Any = None


@dataclass(slots=True)
class Shutdown:
    pass


# --- node manager -> client ------------------------------------------------------


@dataclass(slots=True)
class AuthChallenge:
    """First message on a TCP connection: answer with HMAC(token, nonce) in Hello.auth."""

    nonce: bytes


@dataclass(slots=True)
class Welcome:
    node_id: str
    session_dir: str
    arena_path: str
    arena_size: int
    conn_id: int
    resources: dict[str, float] = field(default_factory=dict)
    tcp_address: str | None = None  # HOST:PORT of the cluster port, when the node has one


@dataclass(slots=True)
class DriverWarning:
    """Something the driver's user should know (printed on its stderr)."""

    text: str


@dataclass(slots=True)
class ObjectCreated:
    req_id: int
    payload: Payload | None
    error: bytes | None = None


@dataclass(slots=True)
class ActorInfo:
    """What a process needs to build a handle to an existing actor."""

    actor_id: bytes
    cookie: bytes  # object whose references are the actor's handles
    options: ActorOptions


@dataclass(slots=True)
class ActorCreated:
    req_id: int
    info: ActorInfo | None
    existed: bool = False
    error: str | None = None


@dataclass(slots=True)
class ObjectAvailable:
    """The object is ready; ``payload`` is None when only readiness was asked for."""

    object_id: bytes
    payload: Payload | None
    # Refs inside the value, sent to peer nodes only (which seal it with them, and were
    # sent those objects first); empty for processes, which learn refs by unpickling.
    contained: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class ExecuteTask:
    spec: TaskSpec
    fn_payload: bytes | None
    dep_payloads: list[Payload]
    gpu_ids: list[int]
    retries_left: int
    actor_options: ActorOptions | None = None  # with an actor's creation task
    attempt: int = 0  # which try this is (an actor's creation: how often it restarted)


@dataclass(slots=True)
class CancelTask:
    task_id: bytes
    force: bool


@dataclass(slots=True)
class QueryReply:
    req_id: int
    data: Any


# --- change feed (see feed.py) ------------------------------------------------------


# --- direct actor calls (see client/lanes.py) ----------------------------------------


@dataclass(slots=True)
class ActorEndpoint:
    """Node to caller: where the actor's worker takes calls directly."""

    actor_id: bytes
    worker_id: str
    path: str


@dataclass(slots=True)
class DirectHello:
    """Caller to actor worker, first on a direct connection: the caller's node conn id."""

    caller: int


@dataclass(slots=True)
class DirectCall:
    """Caller to actor worker: a method call; ``seq`` counts the caller's direct calls."""

    spec: TaskSpec
    seq: int


@dataclass(slots=True)
class DirectResult:
    """Actor worker to caller: the call's value, or None when it comes from the node
    (large, or holding refs)."""

    task_id: bytes
    payload: Payload | None


@dataclass(slots=True)
class DirectCalls:
    """Caller to node: direct calls it made, each with the worker id it sent it to."""

    calls: list[tuple[TaskSpec, str]]


@dataclass(slots=True)
class FeedSnapshot:
    seq: int
    records: dict[str, list[Any]]  # kind -> every record of that kind


@dataclass(slots=True)
class FeedUpdate:
    seq: int
    changed: dict[str, list[Any]]  # kind -> records that changed (latest state)
    removed: dict[str, list[str]]  # kind -> ids that are gone


@dataclass(slots=True)
class FeedSubscribe:
    """Ask for a snapshot and then updates on this connection."""


@dataclass(slots=True)
class FeedResync:
    """The subscriber missed a sequence number: send a fresh snapshot."""


# --- cluster membership (see cluster.py) ----------------------------------------------


@dataclass(slots=True)
class NodeView:
    """What this node knows of one node of the cluster (itself included)."""

    node_id: str
    address: str  # HOST:PORT of its TCP port
    total: dict[str, float]
    available: dict[str, float]
    alive: bool = True
    is_head: bool = False
    stats: dict[str, Any] = field(default_factory=dict)  # telemetry for the state API
    labels: dict[str, str] = field(default_factory=dict)  # see labels.py (in common/)

    def fits(self, demand: dict[str, float]) -> bool:
        return all(
            self.available.get(k, 0.0) + 1e-9 >= v or satisfied(k, self.labels)
            for k, v in demand.items()
            if v > 0
        )

    def feasible(self, demand: dict[str, float]) -> bool:
        return all(
            self.total.get(k, 0.0) + 1e-9 >= v or satisfied(k, self.labels)
            for k, v in demand.items()
            if v > 0
        )


@dataclass(slots=True)
class NodeRegister:
    """A worker node joins the head."""

    view: NodeView


@dataclass(slots=True)
class NodeStatus:
    """A member's heartbeat: its current free resources and telemetry."""

    view: NodeView


@dataclass(slots=True)
class ClusterView:
    """The head tells every member about every node (itself included)."""

    views: list[NodeView]


pickle_as_field_tuples(globals(), __name__)
