"""The reference Python client of the live WebSocket protocol (``docs/live-protocol.md``), on aiohttp.

Example (a file streamed in real time, frames saved as JPEG)::

    import asyncio, numpy as np
    from ditto_core.live.client import LiveClient

    async def main():
        async with LiveClient("http://127.0.0.1:8765", token=None) as client:
            avatar = await client.upload_avatar("portrait.jpg")
            async with client.session(avatar["id"], {"output": "crop", "idle": False}) as s:
                await s.push(np.zeros(16000, np.float32))     # 1 s of float32 mono at the declared rate
                await s.end()
                async for item in s.events():
                    if isinstance(item, dict):
                        print(item["type"])                    # stats, ended, error, ...
                    else:
                        open(f"{item.index:05d}.jpg", "wb").write(item.jpeg)

    asyncio.run(main())
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from .protocol import ReceivedFrame, unpack_frame
from .settings import AudioFormat

__all__ = ["LiveClient", "LiveConnection", "LiveServerError"]


class LiveServerError(RuntimeError):
    """The server refused a request: ``code`` (``unknown_avatar``, ``busy``, ``unauthorized``, ...) and its message."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


class LiveClient:
    """A connection to a live server at ``url`` (``http://host:port`` or a mounted base such as
    ``http://127.0.0.1:8188/ditto/live``); ``token``: the server's token, sent as a Bearer header."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LiveClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = aiohttp.ClientSession(headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("use LiveClient as 'async with LiveClient(url) as client'")
        return self._http

    async def _json(self, resp: aiohttp.ClientResponse) -> Any:
        try:
            body = await resp.json(content_type=None)
        except (json.JSONDecodeError, aiohttp.ContentTypeError):
            body = {"error": "http", "message": await resp.text()}
        if resp.status >= 400:
            raise LiveServerError(str(body.get("error", resp.status)), str(body.get("message", "")), resp.status)
        return body

    async def health(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/health") as r:
            return await self._json(r)

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics") as r:
            if r.status >= 400:
                await self._json(r)
            return await r.text()

    async def avatars(self) -> list[dict[str, Any]]:
        async with self.http.get(self.url + "/avatars") as r:
            return (await self._json(r))["avatars"]

    async def upload_avatar(self, file: str | Path | bytes, name: str | None = None) -> dict[str, Any]:
        """A portrait or short video (a path or its bytes) -> the avatar (``id``, ``kind``, ``cached``, ...)."""
        data = file if isinstance(file, bytes) else Path(file).read_bytes()
        name = name or (Path(file).name if not isinstance(file, bytes) else "upload")
        async with self.http.post(self.url + "/avatars", data=data, params={"name": name}) as r:
            return await self._json(r)

    def session(self, avatar: str, settings: dict[str, Any] | None = None,
                audio: AudioFormat | None = None) -> LiveConnection:
        """A live session on ``avatar`` (an id) with ``settings`` (``LiveSettings`` fields) and the audio format the
        client will push (default float32 mono 16 kHz); use it as ``async with``."""
        return LiveConnection(self, avatar, settings or {}, audio or AudioFormat("f32le", 16000, 1))


class LiveConnection:
    """One session over one WebSocket. ``ready``: the server's ready event after ``__aenter__``."""

    def __init__(self, client: LiveClient, avatar: str, settings: dict[str, Any], audio: AudioFormat) -> None:
        self.client, self.avatar, self.settings, self.audio = client, avatar, settings, audio
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready: dict[str, Any] = {}

    async def __aenter__(self) -> LiveConnection:
        self.ws = await self.client.http.ws_connect(self.client.url + "/ws", max_msg_size=64 * 2**20)
        await self.ws.send_str(json.dumps({"type": "start", "avatar": self.avatar, "settings": self.settings,
                                           "audio": {"encoding": self.audio.encoding,
                                                     "sample_rate": self.audio.sample_rate,
                                                     "channels": self.audio.channels}}))
        msg = await self.ws.receive()
        event = json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else {}
        if event.get("type") != "ready":
            await self.ws.close()
            raise LiveServerError(str(event.get("code", "no_ready")), str(event.get("message", msg)))
        self.ready = event
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()

    async def push(self, audio: np.ndarray | bytes) -> None:
        """Audio in the declared format: raw bytes, or a float array (T,) or (T, channels) in [-1, 1] encoded here."""
        assert self.ws is not None
        if not isinstance(audio, (bytes, bytearray)):
            x = np.asarray(audio, dtype=np.float32)
            if self.audio.encoding == "s16le":
                audio = (np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes()
            else:
                audio = x.astype("<f4").tobytes()
        await self.ws.send_bytes(bytes(audio))

    async def send(self, event: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(event))

    async def interrupt(self) -> None:
        await self.send({"type": "interrupt"})

    async def end(self) -> None:
        """No more audio: the server sends the remaining frames, an ``ended`` event and closes."""
        await self.send({"type": "end"})

    async def request_stats(self) -> None:
        await self.send({"type": "stats"})

    async def events(self) -> AsyncIterator[ReceivedFrame | dict[str, Any]]:
        """Frames (:class:`~ditto_core.live.protocol.ReceivedFrame`) and events (dicts) as they come, until the
        server closes (after ``ended``) or the connection drops."""
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                yield unpack_frame(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                yield json.loads(msg.data)
            else:
                break
