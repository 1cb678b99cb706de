"""The live WebSocket protocol's messages, written and read in one place (the server and the reference client).

Client -> server: JSON text messages (``start``, ``interrupt``, ``end``, ``stats``) and binary messages of raw audio
in the format the ``start`` message declared. Server -> client: JSON events (``ready``, ``error``, ``interrupted``,
``stats``, ``ended``) and binary frame messages::

    b"DTF1" | header length (uint32, little-endian) | header (UTF-8 JSON) | JPEG bytes | audio bytes

The header has ``index``, ``time`` (s), ``audio_span`` ([start, end) 16 kHz samples of the session's timeline),
``speech`` ([start, end) of the client's own pushed audio in 16 kHz samples, or null for idle), ``lag`` (s),
``delay`` (s behind the client's speech, or null for idle),
``wall_time`` and ``audio_wall_time`` (Unix time the frame came out / its audio entered the pipeline), ``width``,
``height``, ``jpeg_bytes`` and ``audio_bytes`` (0, or 1280: the frame's 640 samples of 16 kHz s16le audio when the
session asked for ``return_audio``). See ``docs/live-protocol.md``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .session import LiveFrame

__all__ = ["FRAME_MAGIC", "MESSAGE_TYPES", "ReceivedFrame", "pack_frame", "unpack_frame"]

FRAME_MAGIC = b"DTF1"
#: the JSON messages a client may send
MESSAGE_TYPES = ("start", "interrupt", "end", "stats")


def pack_frame(frame: LiveFrame, with_audio: bool) -> bytes:
    """A :class:`~ditto_core.live.session.LiveFrame` -> one binary WebSocket message."""
    audio = b""
    if with_audio:
        audio = (np.clip(frame.audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    header = json.dumps({
        "index": frame.index, "time": frame.time, "audio_span": list(frame.audio_span),
        "speech": None if frame.speech is None else list(frame.speech), "lag": round(frame.lag, 6),
        "delay": None if frame.delay is None else round(frame.delay, 6),
        "wall_time": frame.wall_time, "audio_wall_time": frame.audio_wall_time, "width": frame.width,
        "height": frame.height, "jpeg_bytes": len(frame.jpeg), "audio_bytes": len(audio),
    }, separators=(",", ":")).encode()
    return FRAME_MAGIC + struct.pack("<I", len(header)) + header + frame.jpeg + audio


@dataclass(frozen=True)
class ReceivedFrame:
    """A frame message as a client reads it: ``header`` (the JSON above), ``jpeg`` bytes, ``audio`` (640,) int16 or
    None."""

    header: dict[str, Any]
    jpeg: bytes
    audio: np.ndarray | None

    @property
    def index(self) -> int:
        return int(self.header["index"])


def unpack_frame(data: bytes) -> ReceivedFrame:
    """One binary message from the server -> :class:`ReceivedFrame`; ValueError when it is not a frame message."""
    if len(data) < 8 or data[:4] != FRAME_MAGIC:
        raise ValueError("not a Ditto frame message (no DTF1 magic)")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + n].decode())
    j = 8 + n
    jpeg = bytes(data[j : j + header["jpeg_bytes"]])
    a = j + header["jpeg_bytes"]
    audio = np.frombuffer(data[a : a + header["audio_bytes"]], dtype="<i2") if header["audio_bytes"] else None
    if a + header["audio_bytes"] != len(data):
        raise ValueError(f"frame message of {len(data)} bytes does not match its header")
    return ReceivedFrame(header, jpeg, audio)
