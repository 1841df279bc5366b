"""``GET {base_url}jupyter-ray/api/events``: the live feed over a WebSocket.

A thin adapter between one browser and the ``FeedHub``: authentication and authorization
as for every jupyter_server WebSocket, JSON out, and two requests in (``filter`` and
``resync``). Anything else, or a message too large, closes this socket with code 1003 and
a reason; the server and the other sockets go on. It counts its own unwritten messages
so that a browser that stops reading costs the server at most a couple of messages.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from .hub import MAX_PENDING_WRITES, FeedHub, Subscription

if TYPE_CHECKING:
    from .app import JupyterRay

MAX_INCOMING = 16 << 10  # bytes: a filter or a resync request is tiny
UNSUPPORTED = 1003  # the WebSocket close code for data the endpoint cannot accept


def _short_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 256)


class EventsHandler(
    WebSocketMixin, ExtensionHandlerMixin, JupyterHandler, websocket.WebSocketHandler
):
    auth_resource = "jupyter_ray"

    def initialize(self, name: str, **kwargs: Any) -> None:
        super().initialize(name=name, **kwargs)
        self.subscription = Subscription()
        self._unwritten = 0

    @property
    def hub(self) -> FeedHub:
        return cast("JupyterRay", self.extensionapp).hub

    async def pre_get(self) -> None:
        authorized = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", self.auth_resource)
        )
        if not authorized:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.hub.add(self)

    def on_close(self) -> None:
        self.hub.remove(self)

    def on_message(self, message: str | bytes) -> None:
        if len(message) > MAX_INCOMING:
            self.close(UNSUPPORTED, f"messages are at most {MAX_INCOMING} bytes")
            return
        try:
            request = json.loads(message)
        except ValueError:
            self.close(UNSUPPORTED, "send JSON: {'type': 'filter' | 'resync', ...}")
            return
        kind = request.get("type") if isinstance(request, dict) else None
        if kind == "resync":
            self.subscription.needs_snapshot = True
        elif kind == "filter":
            cell_id = request.get("cell_id")
            kernel_id = request.get("kernel_id")
            if not all(_short_text(v) for v in (cell_id, kernel_id)):
                self.close(UNSUPPORTED, "cell_id and kernel_id are strings (or null)")
                return
            # a fresh snapshot for the new filter, numbered on from the last message
            self.subscription = Subscription(
                cell_id=cell_id, kernel_id=kernel_id, seq=self.subscription.seq
            )
        else:
            self.close(UNSUPPORTED, f"unknown request type {kind!r}; use 'filter' or 'resync'")
            return
        self.hub.poke()

    # --- what the hub calls ------------------------------------------------------------

    def behind(self) -> bool:
        return self._unwritten >= MAX_PENDING_WRITES

    def deliver(self, message: dict[str, Any]) -> bool:
        if self.ws_connection is None or self.ws_connection.is_closing() or self.behind():
            return False
        try:
            future = self.write_message(json.dumps(message, default=str))
        except websocket.WebSocketClosedError:
            return False
        self._unwritten += 1
        future.add_done_callback(self._written)
        return True

    def _written(self, future: Any) -> None:
        if not future.cancelled():
            future.exception()  # a closed socket fails the write: nothing more to do
        self._unwritten -= 1
        if self._unwritten == 0 and self.subscription.needs_snapshot:
            self.hub.poke()  # it drained: send it a fresh picture now
