"""Ditto Live: a real-time talking-head server (WebSocket and WebRTC) over the streaming session.

* :mod:`.settings`: :class:`LiveSettings` (what a client sets for its session) and :class:`AudioFormat`.
* :mod:`.session`: :class:`LiveSession`: a stream that idles on silence, can be interrupted, drops frames a slow
  client misses, and keeps statistics; :class:`AudioDecoder` (client bytes -> 16 kHz mono).
* :mod:`.avatars`: :class:`AvatarCache`: uploads registered once, by content hash.
* :mod:`.protocol`: the WebSocket frame message, packed and unpacked.
* :mod:`.server`: :class:`LiveHub`, :class:`LiveRoutes` and :func:`create_app` (aiohttp; ``python -m ditto_core
  serve``); :mod:`.webrtc`: the WebRTC transport (aiortc); :mod:`.client`: the reference Python client.

The server modules need ``aiohttp`` (and ``aiortc`` for WebRTC): ``pip install 'comfyui-ditto[live]'``. The session
and settings do not.
"""

from .session import AudioDecoder, LiveError, LiveFrame, LiveSession
from .settings import AudioFormat, LiveSettings

__all__ = ["AudioDecoder", "AudioFormat", "LiveError", "LiveFrame", "LiveSession", "LiveSettings"]
