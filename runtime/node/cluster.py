"""Several node managers as one cluster: who the members are, and where work fits.

A component of the node manager (:mod:`manager`); everything runs on its event loop.

- **Membership.** A worker node connects to the head's TCP port (authenticated like any
  peer), registers, and then reports its free resources every ``HEARTBEAT`` seconds. The
  head keeps the list and sends every member the cluster view whenever it changes and
  with each heartbeat round; a member whose connection drops is marked dead at once.
- **Placement.** A node runs a ready task itself when its resources fit. When they never
  can (infeasible here) or cannot now (busy) and another live node has room, the task is
  *forwarded* (:mod:`peers`). The head's picture of a peer's free resources is corrected
  when a forwarded task finishes, not only at the peer's next status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.protocol import NodeView
from .cluster_directory import ActorNameDirectory

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .peer_link import PeerLink
    from .scheduler import ResourceLedger

log = logging.getLogger("jupyter_ray.node")

HEARTBEAT = 0.5


def _unwired() -> None:
    raise RuntimeError("Membership.dispatch was not wired by the node manager")


class Membership:
    """The cluster as this node sees it; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        ledger: ResourceLedger,
        conns: dict[int, ServerConnection],
        join: tuple[str, int] | None,
        stats: Callable[[], dict[str, Any]],
    ) -> None:
        self.node_id = node_id
        self.ledger = ledger
        self.conns = conns
        self.is_head = join is None
        self.join = join
        self.stats = stats
        self.tcp_address: str | None = None  # set once the node listens
        self.cluster: dict[str, NodeView] = {}
        self.members: dict[int, str] = {}  # head side: member connection -> node id
        self.links: dict[str, PeerLink] = {}  # outgoing links to peers, by node id
        self.head_link: PeerLink | None = None  # member side
        self.actor_directory = ActorNameDirectory()  # consulted on the head only
        # Nodes joined or freed resources: the tasks component dispatches queued work.
        self.dispatch: Callable[[], None] = _unwired

    def in_cluster(self) -> bool:
        return bool(self.cluster) or self.head_link is not None

    def self_view(self) -> NodeView:
        return NodeView(
            self.node_id,
            self.tcp_address or "",
            dict(self.ledger.total),
            {k: max(v, 0.0) for k, v in self.ledger.available.items()},
            True,
            self.is_head,
            self.stats(),
            dict(self.ledger.labels),
        )

    def peers(self) -> list[NodeView]:
        return [v for k, v in self.cluster.items() if k != self.node_id and v.alive]

    def all_views(self) -> list[NodeView]:
        views = {v.node_id: v for v in self.cluster.values()}
        views[self.node_id] = self.self_view()
        return list(views.values())

    # --- membership (head side) --------------------------------------------------------

    def on_node_register(self, conn: ServerConnection, msg: p.NodeRegister) -> None:
        view = msg.view
        self.members[conn.conn_id] = view.node_id
        self.cluster[view.node_id] = view
        log.info("node %s joined from %s", view.node_id, view.address)
        self._broadcast_view()
        self.dispatch()

    def on_node_status(self, conn: ServerConnection, msg: p.NodeStatus) -> None:
        if conn.conn_id in self.members:
            self.cluster[msg.view.node_id] = msg.view
            self.dispatch()

    def mark_dead(self, node_id: str) -> bool:
        """Count ``node_id`` dead in this node's view; False if it is not known here."""
        view = self.cluster.get(node_id)
        if view is None:
            return False
        view.alive = False
        return True

    def member_lost(self, conn: ServerConnection) -> None:
        node_id = self.members.pop(conn.conn_id, None)
        if node_id is None:
            return
        if self.mark_dead(node_id):
            log.warning("node %s left the cluster", node_id)
        self.actor_directory.drop_node(node_id)  # its actors died with it
        link = self.links.pop(node_id, None)
        if link is not None:
            link.close()
        self._broadcast_view()

    def _broadcast_view(self) -> None:
        views = self.all_views()
        for conn_id in self.members:
            conn = self.conns.get(conn_id)
            if conn is not None:
                conn.send(p.ClusterView(views=views))

    async def heartbeat_members(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            if self.members:
                self._broadcast_view()

    def view_arrived(self, views: list[NodeView]) -> None:
        """Member: the head's view of the cluster; links to nodes now dead are closed."""
        for view in views:
            if view.node_id != self.node_id:
                old = self.cluster.get(view.node_id)
                self.cluster[view.node_id] = view
                if old is not None and old.alive and not view.alive:
                    dead = self.links.get(view.node_id)
                    if dead is not None:
                        dead.close()
        self.dispatch()

    # --- placement ---------------------------------------------------------------------

    def place_elsewhere(self, demand: dict[str, float]) -> str | None:
        """A live peer that can take a task of this demand now, or None."""
        best: NodeView | None = None
        for view in self.peers():
            if view.fits(demand) and (best is None or _headroom(view) > _headroom(best)):
                best = view
        if best is not None:
            for k, v in demand.items():  # count it taken until the next status arrives
                best.available[k] = best.available.get(k, 0.0) - v
            return best.node_id
        return None

    def give_back(self, node_id: str, demand: dict[str, float]) -> None:
        """A task forwarded to ``node_id`` finished: count its resources free again.

        Without this they stayed taken until the node's next status (every HEARTBEAT), so
        back-to-back tasks that only that node can run waited ~0.4 s each. A status that
        already showed them free makes this over-count until the next one, which at worst
        forwards a task that then queues there; never above the node's total.
        """
        view = self.cluster.get(node_id)
        if view is None:
            return
        for k, v in demand.items():
            view.available[k] = min(view.total.get(k, 0.0), view.available.get(k, 0.0) + v)

    def feasible_somewhere(self, demand: dict[str, float]) -> bool:
        return any(v.feasible(demand) for v in self.peers())


def _headroom(view: NodeView) -> float:
    return view.available.get("CPU", 0.0)
