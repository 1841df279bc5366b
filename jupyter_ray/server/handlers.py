"""REST handlers under ``{base_url}jupyter-ray/api/``: thin adapters over the manager.

Every verb is behind jupyter_server's authentication and authorization (resource
``jupyter_ray``). Inputs are checked here and a mistake answers 400 with what to send;
unknown ids answer 404; a query while no runtime runs answers 503. Calls into the runtime
block for a moment, so they run on an executor thread, never on the server's loop. See
docs/rest-api.md for the routes and their JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..runtime.common.discovery import find_sessions
from ..runtime.common.state_schema import TASK_STATES
from .graph import collapse, select_jobs
from .hub import record_json
from .manager import NoRuntime, RuntimeBusy, RuntimeManager

if TYPE_CHECKING:
    from .app import JupyterRay

AUTH_RESOURCE = "jupyter_ray"
MAX_LIMIT = 10_000
MAX_TEXT = 256  # longest id, name or filter value accepted
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_ACTOR_STATES = ("PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD")

T = TypeVar("T")


class RayHandler(ExtensionHandlerMixin, APIHandler):
    """Base of the REST handlers: access to the manager, checked arguments, errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def app(self) -> JupyterRay:
        return cast("JupyterRay", self.extensionapp)

    @property
    def manager(self) -> RuntimeManager:
        return self.app.manager

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on an executor thread, turning the runtime's errors into answers."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, fn, *args)
        except RuntimeBusy as err:
            raise web.HTTPError(409, str(err)) from err
        except NoRuntime as err:
            raise web.HTTPError(503, str(err)) from err
        except (ValueError, TypeError, ConnectionError) as err:
            raise web.HTTPError(400, str(err)) from err

    async def query(self, what: str, arg: Any = None) -> Any:
        return await self.blocking(self.manager.query, what, arg)

    def text_arg(self, name: str, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.get_argument(name, None)
        if value is None or value == "":
            return None
        if len(value) > MAX_TEXT:
            raise web.HTTPError(400, f"{name} is at most {MAX_TEXT} characters")
        if choices is not None and value not in choices:
            raise web.HTTPError(400, f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def limit_arg(self, default: int, most: int = MAX_LIMIT) -> int:
        value = self.get_argument("limit", None)
        if value is None or value == "":
            return default
        try:
            limit = int(value)
        except ValueError:
            raise web.HTTPError(400, f"limit must be a whole number, got {value!r}") from None
        if not 1 <= limit <= most:
            raise web.HTTPError(400, f"limit must be between 1 and {most}, got {limit}")
        return limit

    def json_body(self) -> Any:
        if not self.request.body:
            return None
        try:
            return json.loads(self.request.body)
        except ValueError as err:
            raise web.HTTPError(400, f"the body is not JSON: {err}") from err

    async def kernel_job_ids(self, kernel_id: str) -> set[str]:
        jobs = await self.query("list_jobs")
        return {j.job_id for j in jobs if j.metadata.get("kernel_id") == kernel_id}

    def reply(self, data: Any) -> None:
        self.finish(json.dumps(data, default=str))


class ClustersHandler(RayHandler):
    """``GET clusters``: every runtime in this machine's registry."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        sessions = await self.blocking(find_sessions)
        current = self.manager.address
        self.reply(
            {
                "clusters": [
                    {
                        "node_id": s.node_id,
                        "address": s.socket,
                        "pid": s.pid,
                        "started": s.started,
                        "origin": s.origin,
                        "label": s.label,
                        "tcp_address": s.tcp_address,
                        "head": not s.is_member,
                        "current": s.socket == current,
                    }
                    for s in sessions
                ]
            }
        )


class ClusterHandler(RayHandler):
    """``GET``/``POST``/``DELETE cluster``: the runtime this server serves."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.manager.status())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        if isinstance(body, dict) and "address" in body:
            if set(body) != {"address"}:
                raise web.HTTPError(400, "attach with {'address': ...} alone, no start options")
            status = await self.blocking(self.manager.attach, body["address"])
        else:
            try:
                options = self.app.start_defaults().merged(body)
            except ValueError as err:
                raise web.HTTPError(400, str(err)) from err
            status = await self.blocking(self.manager.start, options)
        self.app.hub.poke()
        self.reply(status)

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        status = await self.blocking(self.manager.stop)
        self.app.hub.poke()
        self.reply(status)


class NodesHandler(RayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        nodes = await self.query("list_nodes", ([], None, None))
        self.reply({"nodes": [record_json(n) for n in nodes]})


class JobsHandler(RayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        jobs = await self.query("list_jobs")
        self.reply({"jobs": [record_json(j) for j in jobs]})


class TasksHandler(RayHandler):
    """``GET tasks``: filtered by state, cell, kernel, job or function name."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.limit_arg(100)
        filters = []
        for name, key in (("state", "state"), ("cell_id", "cell_id"), ("job_id", "job_id")):
            value = self.text_arg(name, TASK_STATES if name == "state" else None)
            if value is not None:
                filters.append((key, "=", value))
        fn = self.text_arg("name")
        if fn is not None:
            filters.append(("name", "=", fn))
        kernel = self.text_arg("kernel_id")
        if kernel is None:
            tasks = await self.query("list_tasks", (filters, limit, None))
        else:
            jobs = await self.kernel_job_ids(kernel)
            tasks = await self.query("list_tasks", (filters, None, None))
            tasks = [t for t in tasks if t.job_id in jobs][:limit]
        self.reply({"tasks": [record_json(t) for t in tasks]})


class TaskHandler(RayHandler):
    """``GET tasks/{task_id}``."""

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        if not _HEX_ID.match(task_id):
            raise web.HTTPError(400, f"a task id is 32 hex digits, got {task_id[:64]!r}")
        found = await self.query("list_tasks", ([("task_id", "=", task_id)], 1, None))
        if not found:
            raise web.HTTPError(404, f"no task {task_id} (unknown, or forgotten by the history)")
        self.reply(record_json(found[0]))


class GraphHandler(RayHandler):
    """``GET graph``: one cell's, one kernel's or every task's graph, collapsed past limit."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.limit_arg(500, most=100_000)
        cell = self.text_arg("cell_id")
        kernel = self.text_arg("kernel_id")
        job = self.text_arg("job_id")
        graph = await self.query("task_graph", ([], None, (cell, job)))
        if kernel is not None:
            graph = select_jobs(graph, await self.kernel_job_ids(kernel))
        self.reply(collapse(graph, limit))


class ActorsHandler(RayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.limit_arg(1000)
        state = self.text_arg("state", _ACTOR_STATES)
        filters = [("state", "=", state)] if state else []
        actors = await self.query("list_actors", (filters, limit, None))
        self.reply({"actors": [record_json(a) for a in actors]})


class ObjectsHandler(RayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.limit_arg(1000)
        objects = await self.query("list_objects", ([], limit, None))
        stats = await self.query("store_stats")
        store = {k: stats[k] for k in ("capacity", "used", "spilled")}
        self.reply({"objects": [record_json(o) for o in objects], "store": store})


class SummaryHandler(RayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        summary = await self.query("summarize_tasks")
        self.reply(summary.to_dict())


class TimelineHandler(RayHandler):
    """``GET timeline``: the Chrome trace of recent tasks, as a file to download."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        events = await self.query("timeline")
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Disposition", 'attachment; filename="jupyter_ray-timeline.json"')
        self.finish(json.dumps(events))


def routes() -> list[tuple[str, type]]:
    """URL patterns (joined to the server's base URL by jupyter_server) and handlers."""
    from .websocket import EventsHandler

    api = "jupyter-ray/api"
    return [
        (rf"/{api}/clusters", ClustersHandler),
        (rf"/{api}/cluster", ClusterHandler),
        (rf"/{api}/nodes", NodesHandler),
        (rf"/{api}/jobs", JobsHandler),
        (rf"/{api}/tasks", TasksHandler),
        (rf"/{api}/tasks/([^/]+)", TaskHandler),
        (rf"/{api}/graph", GraphHandler),
        (rf"/{api}/actors", ActorsHandler),
        (rf"/{api}/objects", ObjectsHandler),
        (rf"/{api}/summary", SummaryHandler),
        (rf"/{api}/timeline", TimelineHandler),
        (rf"/{api}/events", EventsHandler),
    ]
