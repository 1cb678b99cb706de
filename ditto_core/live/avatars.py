"""Registered avatars of a live server: an uploaded portrait or short video registered once (the slow part) and
kept under the hash of its bytes, so the same upload is never registered twice and a client can start sessions by id.
"""

from __future__ import annotations

import collections
import hashlib
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DittoError
from ..inputs import image_size, read_source
from ..runtime.models import DittoModels
from ..runtime.stages import extract_source
from ..source import Source
from .session import LiveError

__all__ = ["Avatar", "AvatarCache"]


@dataclass(frozen=True)
class Avatar:
    """A registered avatar: ``id`` (the first 16 hex digits of the SHA-256 of the uploaded bytes, or a name given
    by whoever published it), ``kind`` ("image" or "video"), ``frames`` (1 for an image), ``width`` x ``height`` of
    the source frames; ``models``: the networks it was registered with when they are not the server's (a ComfyUI
    graph's); ``settings``: default :class:`~ditto_core.live.LiveSettings` fields of its sessions (a client's own
    settings override them)."""

    id: str
    source: Source
    kind: str
    frames: int
    width: int
    height: int
    name: str = ""
    models: DittoModels | None = field(default=None, repr=False, compare=False)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_source(cls, avatar_id: str, source: Source, name: str = "", models: DittoModels | None = None,
                    settings: dict[str, Any] | None = None) -> Avatar:
        """An avatar of an already registered :class:`~ditto_core.source.Source`."""
        n, h, w = source.frames.shape[:3]
        return cls(str(avatar_id), source, "image" if source.is_image else "video", int(n), int(w), int(h), name,
                   models, dict(settings or {}))

    def describe(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "frames": self.frames, "width": self.width, "height": self.height,
                "name": self.name, "settings": dict(self.settings)}


class AvatarCache:
    """Avatars by id, the least recently used dropped past ``capacity``. Thread-safe; registration runs in the
    caller's thread (an asyncio server calls it from a worker thread) and the same bytes are registered once even
    when two clients upload them at once.

    Args:
        models: the loaded networks (registration uses the face models, appearance and motion extractors).
        capacity: avatars kept.
        max_video_frames: frames of a video upload read at most (a live avatar's source loops over them).
    """

    def __init__(self, models: DittoModels, capacity: int = 16, max_video_frames: int = 250) -> None:
        self.models = models
        self.capacity = int(capacity)
        self.max_video_frames = int(max_video_frames)
        self._avatars: collections.OrderedDict[str, Avatar] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._avatars)

    def get(self, avatar_id: str) -> Avatar:
        """The avatar ``avatar_id``; :class:`LiveError` ("unknown_avatar") when there is none."""
        with self._lock:
            a = self._avatars.get(str(avatar_id))
            if a is None:
                known = ", ".join(self._avatars) or "none registered"
                raise LiveError("unknown_avatar", f"avatar: no avatar with id {avatar_id!r} (known: {known}); "
                                                  "upload one first (POST /avatars)")
            self._avatars.move_to_end(a.id)
            return a

    def list(self) -> list[Avatar]:
        with self._lock:
            return list(self._avatars.values())

    def put(self, avatar: Avatar) -> None:
        """Add (or replace) an avatar registered elsewhere (ComfyUI's Go Live node publishes its source so)."""
        with self._lock:
            self._avatars[avatar.id] = avatar
            self._avatars.move_to_end(avatar.id)
            while len(self._avatars) > self.capacity:
                self._avatars.popitem(last=False)

    def register(self, data: bytes, name: str = "upload") -> tuple[Avatar, bool]:
        """Uploaded bytes (an image, or a short video) -> ``(avatar, was_cached)``. Refuses what is not an image or a
        video, and a picture with no face, with :class:`LiveError` ("bad_avatar")."""
        if not data:
            raise LiveError("bad_avatar", f"avatar {name!r}: the upload is empty")
        key = hashlib.sha256(bytes(data)).hexdigest()[:16]
        with self._lock:
            if key in self._avatars:
                self._avatars.move_to_end(key)
                return self._avatars[key], True
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:  # a second upload of the same bytes waits for the first registration
            with self._lock:
                if key in self._avatars:
                    return self._avatars[key], True
            try:
                avatar = self._register(key, bytes(data), name)
            finally:
                with self._lock:
                    self._busy.pop(key, None)
        self.put(avatar)
        return avatar, False

    def _register(self, key: str, data: bytes, name: str) -> Avatar:
        is_image = image_size(data) is not None
        with tempfile.TemporaryDirectory(prefix="ditto-live-avatar-") as tmp:
            path = Path(tmp) / ("upload.png" if is_image else "upload.mp4")  # the reader picks image/video by suffix
            path.write_bytes(data)
            try:
                frames, is_image = read_source(path, max_frames=1 if is_image else self.max_video_frames)
            except (DittoError, ValueError, OSError) as e:
                raise LiveError("bad_avatar", f"avatar {name!r}: not an image or a video that can be read "
                                              f"({str(e).replace(str(path), 'the upload')})") from None
        try:
            source = extract_source(self.models, frames, is_image=is_image)
        except (DittoError, ValueError) as e:
            raise LiveError("bad_avatar", f"avatar {name!r}: {e}") from None
        return Avatar.from_source(key, source, name)
