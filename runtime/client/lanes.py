"""Direct actor calls: a caller's calls go straight to the actor's worker process.

Through the node manager a synchronous actor call crosses three processes one after the
other (caller, node, worker, node, caller); on these 2-core machines the node's share
was the largest. As in Ray, a caller that knows where an actor's worker listens sends it
the call on a Unix socket of its own (a *lane*) and gets the value back on it. The node
manager stays the authority for everything else, and learns of direct calls after the
fact, off the critical path:

- the worker tells it the outcome (``TaskDone`` with ``direct_caller`` set), right after
  answering the caller;
- the caller tells it which calls it made (``DirectCalls``), batched: before any other
  message it sends (so a ref to a direct result is never used before the node knows the
  object), or by the flusher thread within 50 ms.

The node creates the call's record and result object from the caller's note, and seals
it from the worker's, in whichever order they come. A call whose worker died before it
answered is retried or failed by the node as an in-flight call of a dead actor process.

Only simple calls take a lane: arguments without refs, one return value, and no call of
the same caller to that actor still pending in the node (so calls keep their order). A
call that must go through the node while direct ones are out carries ``after`` = (worker
id, number of the caller's last direct call), and the worker holds it back until that
call has arrived. Values that are large or contain refs come from the node instead: the
worker answers "ask the node" and the caller subscribes there.

The node sends a caller the lane's address (``ActorEndpoint``) when the caller makes a
call through it to an actor that runs locally, so the first call of a caller always
takes the node's path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.transport import ClientConnection

if TYPE_CHECKING:
    from .object_ref import ObjectRef

log = logging.getLogger(__name__)


class Lane:
    """A caller's view of one actor: its direct connection and what is still out.

    Guarded by the owning client's lock, except ``conn``, ``seq`` and ``seq_worker``,
    which change under ``send_lock`` (sends on a lane must keep their numbering); the
    reader thread clears ``conn`` when the lane closes, and a sender that still holds the
    old connection gets an error and falls back to the node.
    """

    __slots__ = (
        "actor_id",
        "conn",
        "open",
        "path",
        "routed",
        "send_lock",
        "seq",
        "seq_worker",
        "untracked",
        "worker_id",
    )

    def __init__(self, actor_id: bytes) -> None:
        self.actor_id = actor_id
        self.worker_id: str | None = None  # the endpoint's worker, once the node told us
        self.path: str | None = None
        self.conn: ClientConnection | None = None
        self.seq = 0  # direct calls sent to ``seq_worker``
        self.seq_worker: str | None = None
        self.open: set[bytes] = set()  # results of direct calls not answered yet
        # First result of each call sent through the node and not answered yet; the ref
        # keeps the object, so the node tells us when it is done even if the user dropped
        # theirs. While any is out, calls keep going through the node (order).
        self.routed: dict[bytes, ObjectRef] = {}
        self.untracked = False  # a call through the node without results: never direct
        self.send_lock = threading.Lock()

    def after(self) -> tuple[str, int] | None:
        """What a call through the node must wait for in the worker."""
        if self.seq and self.seq_worker is not None:
            return (self.seq_worker, self.seq)
        return None


class LaneTable:
    """Every lane of one client, and the direct calls the node has not heard of yet."""

    def __init__(self) -> None:
        self.lanes: dict[bytes, Lane] = {}
        self.by_routed: dict[bytes, Lane] = {}
        self.unannounced: list[tuple[p.TaskSpec, str]] = []

    def lane(self, actor_id: bytes) -> Lane:
        lane = self.lanes.get(actor_id)
        if lane is None:
            lane = self.lanes[actor_id] = Lane(actor_id)
        return lane

    def take_announcements(self) -> list[object]:
        """The ``DirectCalls`` message to send before anything else (caller holds lock)."""
        if not self.unannounced:
            return []
        calls, self.unannounced = self.unannounced, []
        return [p.DirectCalls(calls=calls)]

    def routed_call(self, lane: Lane, first_result: ObjectRef | None) -> None:
        """A call to ``lane``'s actor went through the node (caller holds lock)."""
        if first_result is None:
            lane.untracked = True
            return
        oid = first_result.binary()
        lane.routed[oid] = first_result
        self.by_routed[oid] = lane

    def answered(self, oid: bytes) -> None:
        """The node answered about ``oid`` (caller holds lock)."""
        lane = self.by_routed.pop(oid, None)
        if lane is not None:
            lane.routed.pop(oid, None)
            if not lane.routed:
                self.forget_if_idle(lane)

    def forget_if_idle(self, lane: Lane) -> None:
        """Drop a lane that has nothing to remember: no address (the actor is gone, or
        was never local), no connection, nothing pending (caller holds lock)."""
        if (
            lane.worker_id is None
            and lane.conn is None
            and not lane.open
            and not lane.routed
            and not lane.untracked
            and self.lanes.get(lane.actor_id) is lane
        ):
            del self.lanes[lane.actor_id]


def connect_lane(
    path: str,
    caller: int,
    on_message: Callable[[Any], None],
    on_close: Callable[[], None],
) -> ClientConnection | None:
    """Open a lane to an actor worker; None when it is not there (it died, or moved)."""
    try:
        conn = ClientConnection(path, on_message, on_close, name="jupyter-ray-lane")
    except OSError:
        return None
    try:
        conn.send(p.DirectHello(caller=caller))
    except (ConnectionError, OSError):
        conn.close()
        return None
    conn.start()
    return conn
