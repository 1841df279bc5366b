"""The node manager's shell and components wired together, in this process: messages go
in through its dispatch table from fake connections; no socket, no worker process.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path
from typing import Any

from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.ids import object_id_for
from jupyter_ray.runtime.node.manager import NodeManager

_ids = itertools.count(1)


class Conn:
    """A connection that keeps what the node sends it."""

    def __init__(self, node: NodeManager, role: str, pid: int, worker_id: str = "") -> None:
        self.conn_id = next(_ids) + 100
        self.role = "unknown"
        self.pid = 0
        self.accepted = False
        self.closed = False
        self.peer = "local"
        self.sent: list[Any] = []
        node.conns[self.conn_id] = self  # type: ignore[assignment]
        node._dispatch(self, p.Hello(role, pid, worker_id))  # type: ignore[arg-type]
        assert self.take(p.Welcome)

    def accept(self) -> None:
        self.accepted = True

    def send(self, *msgs: Any) -> None:
        self.sent.extend(msgs)

    def close(self) -> None:
        self.closed = True

    def take(self, kind: type) -> list[Any]:
        out = [m for m in self.sent if isinstance(m, kind)]
        self.sent = [m for m in self.sent if not isinstance(m, kind)]
        return out


def spec(
    name: str,
    kind: int = p.TASK,
    actor_id: bytes | None = None,
    task_id: bytes | None = None,
    retries: int = 0,
    cpus: float = 1.0,
) -> p.TaskSpec:
    tid = task_id or next(_ids).to_bytes(16, "big")
    resources = {"CPU": cpus} if cpus else {}
    return p.TaskSpec(
        tid, name, b"fn", b"", [], [], 1, resources, retries, False, 0, kind=kind, actor_id=actor_id
    )


def send(node: NodeManager, conn: Conn, msg: Any) -> None:
    node._dispatch(conn, msg)  # type: ignore[arg-type]


def done(node: NodeManager, worker: Conn, task_id: bytes, **kw: Any) -> None:
    send(node, worker, p.TaskDone(task_id, [p.Payload(data=b"x", size=1)], [[]], **kw))


def query(node: NodeManager, driver: Conn, what: str, arg: Any = None) -> Any:
    send(node, driver, p.Query(1, what, arg))
    (reply,) = driver.take(p.QueryReply)
    return reply.data


def busy(node: NodeManager, workers: list[Conn]) -> Conn:
    return next(w for w in workers if node.pool.workers[w.conn_id].task is not None)


def test_tasks_retries_cancel_actors_groups_through_the_shell(tmp_path: Path) -> None:
    node = NodeManager(str(tmp_path), {"CPU": 2}, 16 << 20)
    try:
        asyncio.run(_run(node))
    finally:
        node.arena.unlink()
        shutil.rmtree(node.spill_dir, ignore_errors=True)


async def _run(node: NodeManager) -> None:
    spawned: list[str] = []
    node.pool.processes.spawn = spawned.append  # type: ignore[method-assign]
    driver = Conn(node, "driver", 1)
    workers = [Conn(node, "worker", 1000 + i, f"w{i}") for i in range(2)]
    send(node, driver, p.RegisterFunction(b"fn", "f", b"payload"))

    # a task runs, its result is pushed to its owner
    first = spec("f")
    send(node, driver, p.SubmitTask(first))
    runs = [m for w in workers for m in w.take(p.ExecuteTask)]
    assert len(runs) == 1 and runs[0].fn_payload == b"payload"
    done(node, busy(node, workers), first.task_id, started=1.0, ended=2.0)
    assert [a.object_id for a in driver.take(p.ObjectAvailable)] == [
        object_id_for(first.task_id, 0)
    ]
    assert query(node, driver, "validate") is True

    # its worker dies: retried, and the pool starts a replacement
    crashy = spec("crashy", retries=1)
    send(node, driver, p.SubmitTask(crashy))
    lost = busy(node, workers)
    node._on_lost(lost)  # type: ignore[arg-type]
    workers.remove(lost)
    rec = node.tasks.tasks[crashy.task_id]
    assert rec.attempt == 1 and spawned
    assert query(node, driver, "validate") is True
    workers.append(Conn(node, "worker", 2001, "w9"))

    # cancelled while it runs: its worker is asked to interrupt it
    for w in workers:
        w.take(p.ExecuteTask)
    send(node, driver, p.CancelRequest(object_id_for(crashy.task_id, 0), False, True))
    assert [c.task_id for w in workers for c in w.take(p.CancelTask)] == [crashy.task_id]
    done(node, busy(node, workers), crashy.task_id, error_type="TaskCancelledError")

    # an actor: created, called, restarted when its process dies
    actor_id = next(_ids).to_bytes(16, "big")
    creation = spec("A", kind=p.ACTOR_CREATION, actor_id=actor_id, task_id=actor_id)
    options = p.ActorOptions("A", b"", max_restarts=1, max_task_retries=1)
    send(node, driver, p.CreateActor(5, creation, options))
    assert driver.take(p.ActorCreated)
    placed = [(w, m) for w in workers for m in w.take(p.ExecuteTask)]
    assert len(placed) == 1 and placed[0][1].spec.kind == p.ACTOR_CREATION
    actor_worker = placed[0][0]
    done(node, actor_worker, actor_id)
    call = spec("A.m", kind=p.ACTOR_METHOD, actor_id=actor_id, cpus=0)
    send(node, driver, p.SubmitTask(call))
    assert [m.spec.task_id for m in actor_worker.take(p.ExecuteTask)] == [call.task_id]
    node._on_lost(actor_worker)  # type: ignore[arg-type]
    workers.remove(actor_worker)
    record = node.actors.actors[actor_id]
    assert record.state == "RESTARTING" and record.restarts == 1
    assert query(node, driver, "validate") is True

    # the state API hands out plain strings
    tasks = query(node, driver, "list_tasks", ([], None, None))
    assert sorted((t.name, t.state) for t in tasks) == [
        ("A", "SCHEDULED"),
        ("A.m", "FAILED"),
        ("crashy", "CANCELLED"),
        ("f", "FINISHED"),
    ]
    assert all(type(t.state) is str for t in tasks)

    # a placement group, reserved and removed
    pg = next(_ids).to_bytes(16, "big")
    assert (
        query(node, driver, "pg_create", (pg, [{"CPU": 1}], "PACK", "", "default", False)) is None
    )
    query(node, driver, "pg_remove", pg)
    assert query(node, driver, "validate") is True
    assert len(query(node, driver, "nodes")) == 1

    node._on_lost(driver)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
