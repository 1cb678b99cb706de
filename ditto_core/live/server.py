"""Ditto Live: one asyncio (aiohttp) process that loads the models once and serves many live sessions.

* :class:`~ditto_core.live.hub.LiveHub` (:mod:`.hub`): the models, avatars, sessions, limits and counters.
* :class:`LiveRoutes`: the HTTP, WebSocket and WebRTC handlers over a hub, added under any prefix to an aiohttp
  router: the standalone server (:func:`create_app`, ``python -m ditto_core serve``) at ``/`` and the ComfyUI pack
  under ``/ditto/live``.

Routes (``docs/live-protocol.md``): ``GET /`` the page, ``GET /static/<file>``, ``GET /health``, ``GET /metrics``
(Prometheus text), ``GET|POST /avatars`` (list / upload), ``GET /ws`` (the WebSocket protocol), ``POST /offer``
(WebRTC, with the ``aiortc`` package). With a token set, every request needs ``Authorization: Bearer <token>`` or
``?token=<token>`` and gets 401 without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import threading
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import DittoError
from ..validate import OptionError
from .hub import LiveHub, ServerLimits
from .protocol import MESSAGE_TYPES, pack_frame
from .routes import add_routes
from .session import AudioDecoder, LiveError, LiveSession
from .settings import AudioFormat, LiveSettings

__all__ = ["ROUTES_KEY", "TOKEN_ENV", "LiveHub", "LiveRoutes", "ServerLimits", "create_app", "is_loopback"]

log = logging.getLogger("ditto.live")

#: the environment variable read for the access token when ``--token`` is not given
TOKEN_ENV = "DITTO_LIVE_TOKEN"
#: the largest WebSocket message taken (audio pieces are small; a second of 48 kHz stereo f32 is 384 KiB)
MAX_WS_MESSAGE = 4 * 2**20


def is_loopback(host: str) -> bool:
    """True for 127.0.0.1, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------ HTTP
def _error_json(status: type[web.HTTPException], code: str, message: str, **kw: Any) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": code, "message": message}``."""
    return status(text=json.dumps({"error": code, "message": message}), content_type="application/json", **kw)


class LiveRoutes:
    """The live handlers over one :class:`LiveHub`, added to a router under ``prefix`` (``""`` or ``/ditto/live``).

    Args:
        hub: the hub.
        token: the access token, or None (no token asked for).
        webrtc: offer WebRTC at ``POST /offer`` (needs the ``aiortc`` package; without it the route answers 501).
    """

    def __init__(self, hub: LiveHub, token: str | None = None, webrtc: bool = True) -> None:
        self.hub = hub
        self.token = token or None
        self.webrtc = webrtc
        self._rtc: Any = None  # the WebRTC peer connections (created on the first offer)

    def add_to(self, router: web.UrlDispatcher | web.RouteTableDef, prefix: str = "") -> None:
        """Add every route (:data:`~ditto_core.live.routes.ROUTES`) under ``prefix`` to an application's router or a
        ``RouteTableDef``."""
        add_routes(router, prefix, lambda name: getattr(self, name))

    # ---- auth
    def _authorise(self, request: web.Request) -> None:
        if self.token is None:
            return
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise _error_json(web.HTTPUnauthorized, "unauthorized",
                              "this server needs its token: Authorization: Bearer <token> or ?token=<token>")

    # ---- pages and info
    async def page(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        return web.Response(text=_static_text("index.html"), content_type="text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".html": "text/html"}
        kind = next((t for s, t in types.items() if name.endswith(s)), None)
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            return web.Response(text=_static_text(name), content_type=kind)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None

    async def health(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        with self.hub._lock:
            n = len(self.hub.sessions)
        return web.json_response({"ok": True, "sessions": n, "avatars": len(self.hub.avatars),
                                  "models": self.hub.models is not None,
                                  "threads": threading.active_count(), "webrtc": self._webrtc_available()})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        text = await asyncio.to_thread(self.hub.metrics_text)
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def list_avatars(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        return web.json_response({"avatars": [a.describe() for a in self.hub.avatars.list()]})

    async def upload_avatar(self, request: web.Request) -> web.StreamResponse:
        """The request body is the file (any content type), or a multipart form with a ``file`` field."""
        self._authorise(request)
        limit = self.hub.limits.max_upload_bytes
        too_big = _error_json(web.HTTPRequestEntityTooLarge, "too_large",
                              f"avatar: uploads are limited to {self.hub.limits.max_upload_mb:g} MB", max_size=limit)
        if request.content_length is not None and request.content_length > limit + 65536:
            raise too_big
        name = request.query.get("name", "upload")
        data = bytearray()
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) == "file":
                    name = request.query.get("name") or part.filename or name
                    while chunk := await part.read_chunk(65536):
                        data += chunk
                        if len(data) > limit:
                            raise too_big
                    break
        else:
            async for chunk in request.content.iter_chunked(65536):
                data += chunk
                if len(data) > limit:
                    raise too_big
        try:
            avatar, cached = await asyncio.to_thread(self.hub.register_avatar, bytes(data), name)
        except LiveError as e:
            self.hub.count_error(e.code)
            raise _error_json(web.HTTPBadRequest, e.code, str(e)) from None
        return web.json_response({**avatar.describe(), "cached": cached})

    # ---- WebSocket
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_WS_MESSAGE)
        await ws.prepare(request)
        conn = _Connection(self.hub, ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await conn.on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await conn.on_audio(msg.data)
                if conn.done:
                    break
        finally:
            await conn.close()
        return ws

    # ---- WebRTC
    def _webrtc_available(self) -> bool:
        if not self.webrtc:
            return False
        try:
            import aiortc  # noqa: F401
        except ImportError:
            return False
        return True

    async def offer(self, request: web.Request) -> web.StreamResponse:
        """WebRTC: ``{"sdp", "type": "offer", "avatar", "settings"}`` -> ``{"sdp", "type": "answer", "session"}``."""
        self._authorise(request)
        if not self._webrtc_available():
            raise _error_json(web.HTTPNotImplemented, "no_webrtc",
                              "WebRTC needs the aiortc package on the server (pip install 'comfyui-ditto[live]')")
        from .webrtc import WebRTCPeers

        if self._rtc is None:
            self._rtc = WebRTCPeers(self.hub)
        try:
            params = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _error_json(web.HTTPBadRequest, "bad_message", "offer: the body must be JSON") from None
        try:
            answer = await self._rtc.answer(params)
        except (LiveError, OptionError) as e:
            code = getattr(e, "code", "bad_settings")
            self.hub.count_error(code)
            status = web.HTTPServiceUnavailable if code == "busy" else web.HTTPBadRequest
            raise _error_json(status, code, str(e)) from None
        return web.json_response(answer)

    async def shutdown(self, app: web.Application | None = None) -> None:
        """Close every WebRTC peer and session (the app's on_shutdown)."""
        if self._rtc is not None:
            await self._rtc.close_all()
        await asyncio.to_thread(self.hub.close_all)


def _static_text(name: str) -> str:
    return resources.files("ditto_core.live").joinpath("static", name).read_text(encoding="utf-8")


class _Connection:
    """One WebSocket client: at most one session, its sender and stats tasks."""

    def __init__(self, hub: LiveHub, ws: web.WebSocketResponse) -> None:
        self.hub = hub
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        self.sid: str | None = None
        self.session: LiveSession | None = None
        self.decoder: AudioDecoder | None = None
        self.settings: LiveSettings | None = None
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.done = False

    def _wake_up(self) -> None:  # called from session threads
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self.wake.set)

    async def send(self, event: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(event))

    async def error(self, code: str, message: str) -> None:
        self.hub.count_error(code)
        await self.send({"type": "error", "code": code, "message": message})

    async def on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            return await self.error("bad_message", "a text message must be one JSON object")
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind not in MESSAGE_TYPES:
            return await self.error("unknown_message", f"unknown message type {kind!r}; known: "
                                                       f"{', '.join(MESSAGE_TYPES)}")
        if kind == "start":
            return await self.start(msg)
        if self.session is None:
            return await self.error("not_started", f"{kind!r} before 'start'")
        if kind == "interrupt":
            dropped = self.session.interrupt()
            await self.send({"type": "interrupted", "dropped_audio_seconds": dropped["audio_seconds"],
                             "dropped_frames": dropped["frames"]})
        elif kind == "end":
            assert self.decoder is not None
            with contextlib.suppress(LiveError):
                self.session.push(self.decoder.flush())
            self.session.end()
            self.wake.set()
        elif kind == "stats":
            await self.send({"type": "stats", **self.session.stats()})

    async def start(self, msg: dict[str, Any]) -> None:
        if self.session is not None:
            return await self.error("already_started", "this connection already has a session")
        unknown = sorted(set(msg) - {"type", "avatar", "settings", "audio"})
        if unknown:
            return await self.error("bad_message", f"start: unknown field {unknown[0]!r} (known: avatar, settings, "
                                                   "audio)")
        try:
            settings = self.hub.session_settings(msg.get("avatar"), msg.get("settings"))
            fmt = AudioFormat.from_dict(msg.get("audio") or {})
            self.sid, self.session = await asyncio.to_thread(self.hub.open_session, msg["avatar"], settings,
                                                             self._wake_up)
        except LiveError as e:
            return await self.error(e.code, str(e))
        except (OptionError, DittoError, ValueError) as e:
            return await self.error("bad_settings", str(e))
        self.settings, self.decoder = settings, AudioDecoder(fmt)
        await self.send({"type": "ready", "session": self.sid, "fps": 25, "sample_rate": 16000,
                         "settings": _settings_json(settings), "audio": fmt.__dict__})
        self.tasks.append(asyncio.create_task(self._sender()))
        if settings.stats_interval > 0:
            self.tasks.append(asyncio.create_task(self._stats(settings.stats_interval)))

    async def on_audio(self, data: bytes) -> None:
        if self.session is None or self.decoder is None:
            return await self.error("not_started", "audio before 'start'")
        try:
            self.session.push(self.decoder.decode(data))
        except LiveError as e:
            await self.error(e.code, str(e))

    async def _sender(self) -> None:
        session = self.session
        assert session is not None and self.settings is not None
        with_audio = self.settings.return_audio
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while frames := session.take(limit=1):  # one at a time: frames a slow client misses drop there
                    await self.ws.send_bytes(pack_frame(frames[0], with_audio))
                if session.finished.is_set():
                    for f in session.take():  # came out after the last take
                        await self.ws.send_bytes(pack_frame(f, with_audio))
                    if session.error is not None:
                        raise session.error
                    await self.send({"type": "ended", **session.stats()})
                    self.done = True
                    sid, self.sid = self.sid, None  # its slot is free before the client can reconnect
                    if sid is not None:
                        await asyncio.to_thread(self.hub.close_session, sid)
                    await self.ws.close()
                    return
        except (ConnectionError, RuntimeError) as e:
            if session.error is None:
                log.info("live session %s: client gone (%s)", self.sid, e)
                return
            await self.error("internal", f"the session failed: {session.error}")
            await self.ws.close()
        except Exception as e:  # noqa: BLE001 - the session failed; the client is told, the server goes on
            log.exception("live session %s failed", self.sid)
            await self.error("internal", f"the session failed: {e}")
            await self.ws.close()

    async def _stats(self, every: float) -> None:
        while self.session is not None and not self.session.finished.is_set():
            await asyncio.sleep(every)
            if self.session is not None:
                await self.send({"type": "stats", **self.session.stats()})

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.sid is not None:
            await asyncio.to_thread(self.hub.close_session, self.sid)
        self.session = None


def _settings_json(settings: LiveSettings) -> dict[str, Any]:
    import dataclasses

    d = dataclasses.asdict(settings)
    if d["emotion"] is not None and not isinstance(d["emotion"], (str, int, float)):
        d["emotion"] = str(d["emotion"])
    return d


#: the application's :class:`LiveRoutes`
ROUTES_KEY = web.AppKey("ditto_live_routes", LiveRoutes)


def create_app(hub: LiveHub, token: str | None = None, webrtc: bool = True) -> web.Application:
    """The standalone server's application: the live routes at ``/`` (uploads limited by the hub's limits)."""
    app = web.Application(client_max_size=hub.limits.max_upload_bytes + 2**20)
    routes = LiveRoutes(hub, token=token, webrtc=webrtc)
    routes.add_to(app.router)
    app.on_shutdown.append(routes.shutdown)
    app[ROUTES_KEY] = routes
    return app
