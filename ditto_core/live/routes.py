"""The live server's route table, in one place and importable without the server (ComfyUI's pack registers the
routes at start-up and builds the handlers on the first request, so its start-up imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ROUTES", "add_routes"]

#: (HTTP method, path under the mount prefix, the :class:`~ditto_core.live.server.LiveRoutes` handler's name)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "page"),
    ("GET", "/static/{name}", "static"),
    ("GET", "/health", "health"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/avatars", "list_avatars"),
    ("POST", "/avatars", "upload_avatar"),
    ("GET", "/ws", "websocket"),
    ("POST", "/offer", "offer"),
)

Handler = Callable[[Any], Awaitable[Any]]


def add_routes(router: Any, prefix: str, handler: Callable[[str], Handler]) -> None:
    """Add every route under ``prefix`` (``""`` or ``/ditto/live``) to an aiohttp application's router (``add_route``)
    or a ``RouteTableDef`` (``route``, ComfyUI's ``PromptServer.instance.routes``); ``handler(name)`` gives the
    handler of each. With a prefix, the bare prefix (no trailing slash) serves the page too."""
    p = prefix.rstrip("/")
    table = [(m, p + path, handler(name)) for m, path, name in ROUTES]
    if p:
        table.append(("GET", p, handler("page")))
    for method, path, h in table:
        if hasattr(router, "add_route"):
            router.add_route(method, path, h)
        else:
            router.route(method, path)(h)
