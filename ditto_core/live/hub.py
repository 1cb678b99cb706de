"""The live server's state, without HTTP: the models, the registered avatars, the open sessions, limits and counters.

:class:`LiveHub` is what every transport (the WebSocket handlers in :mod:`.server`, WebRTC in :mod:`.webrtc`) opens
and closes sessions through; :meth:`LiveHub.metrics_text` is the ``/metrics`` page.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..runtime.models import DittoModels
from ..validate import OptionError, check_int, check_number
from .avatars import Avatar, AvatarCache
from .session import LiveError, LiveSession
from .settings import LiveSettings

__all__ = ["LiveHub", "ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """What one server allows: ``max_sessions`` open at once; ``max_upload_mb`` per avatar upload;
    ``max_buffer_seconds`` of pushed speech waiting per session (a client's own setting is capped to it);
    ``max_avatars`` kept; ``max_video_frames`` read of a video avatar."""

    max_sessions: int = 4
    max_upload_mb: float = 50.0
    max_buffer_seconds: float = 60.0
    max_avatars: int = 16
    max_video_frames: int = 250

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_sessions", check_int("--max-sessions", self.max_sessions, 1, 1024))
        object.__setattr__(self, "max_upload_mb", check_number("--max-upload-mb", self.max_upload_mb, 0.01, 4096))
        object.__setattr__(self, "max_buffer_seconds",
                           check_number("max_buffer_seconds", self.max_buffer_seconds, 0.1, 3600))
        object.__setattr__(self, "max_avatars", check_int("--max-avatars", self.max_avatars, 1, 10000))
        object.__setattr__(self, "max_video_frames", check_int("max_video_frames", self.max_video_frames, 1, 100000))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class LiveHub:
    """Models, avatars and sessions of one server process (thread-safe).

    Args:
        models: the loaded networks, or None until someone publishes avatars with their own models (ComfyUI's Go
            Live node); uploads need them.
        limits: :class:`ServerLimits`.
        renderer_factory: ``(models) -> Renderer`` for each new session (default: the session makes its own).
    """

    def __init__(self, models: DittoModels | None, limits: ServerLimits | None = None,
                 renderer_factory: Callable[[DittoModels], Any] | None = None) -> None:
        self.models = models
        self._own_models = models is not None
        self.limits = limits or ServerLimits()
        self.renderer_factory = renderer_factory
        self.avatars = AvatarCache(models, self.limits.max_avatars, self.limits.max_video_frames)  # type: ignore[arg-type]
        self.sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.counters = {"sessions_total": 0, "frames_total": 0, "frames_dropped_total": 0,
                         "frames_interrupted_total": 0, "avatars_registered_total": 0}
        self.errors: dict[str, int] = {}

    # ---- avatars
    def register_avatar(self, data: bytes, name: str) -> tuple[Avatar, bool]:
        """Blocking (run it off the event loop): bytes -> a registered avatar (cached by content)."""
        if self.models is None:
            raise LiveError("no_models", "no models are loaded here yet: publish an avatar first (Go Live in ComfyUI)")
        self.avatars.models = self.models
        avatar, cached = self.avatars.register(data, name)
        if not cached:
            with self._lock:
                self.counters["avatars_registered_total"] += 1
        return avatar, cached

    def publish(self, avatar: Avatar, models: DittoModels) -> None:
        """Make an avatar registered elsewhere (with its own models) available to sessions; a hub that has no models
        of its own (ComfyUI's) registers later uploads with the latest published ones."""
        self.avatars.put(avatar if avatar.models is not None else _with_models(avatar, models))
        with self._lock:
            if not self._own_models:
                self.models = models

    def uses(self, models: DittoModels) -> bool:
        """True when a published avatar, an open session or the hub itself holds ``models``."""
        with self._lock:
            sessions = [s for s in self.sessions.values() if s is not None]
        return (self.models is models or any(a.models is models for a in self.avatars.list())
                or any(s.models is models for s in sessions))

    # ---- sessions
    def session_settings(self, avatar_id: Any, client: Any, what: str = "settings") -> LiveSettings:
        """A client's settings (a JSON object, or None) over the avatar's published defaults -> :class:`LiveSettings`;
        :class:`LiveError` ("unknown_avatar") or an ``OptionError`` naming ``settings.<field>``."""
        if not isinstance(avatar_id, str):
            raise LiveError("bad_message", "'avatar' must be the id of a registered avatar (a string)")
        avatar = self.avatars.get(avatar_id)
        if client is not None and not isinstance(client, dict):
            raise OptionError(what, "a JSON object", client)
        return LiveSettings.from_dict({**avatar.settings, **(client or {})}, what)

    def open_session(self, avatar_id: str, settings: LiveSettings, on_frame: Callable[[], None],
                     jpeg: bool = True) -> tuple[str, LiveSession]:
        """Blocking: a new session on avatar ``avatar_id`` (``jpeg``: see :class:`LiveSession`); :class:`LiveError`
        ("busy", "unknown_avatar")."""
        avatar = self.avatars.get(avatar_id)
        models = avatar.models or self.models
        if settings.max_buffer_seconds > self.limits.max_buffer_seconds:
            settings = _replace(settings, max_buffer_seconds=self.limits.max_buffer_seconds)
        with self._lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise LiveError("busy", f"this server runs at most {self.limits.max_sessions} sessions at once; "
                                        "try again later")
            sid = f"s{next(self._ids)}"
            self.sessions[sid] = None  # type: ignore[assignment]  # the slot is taken while the session starts
        try:
            renderer = self.renderer_factory(models) if self.renderer_factory is not None else None
            session = LiveSession(models, avatar.source, settings, renderer=renderer, on_frame=on_frame, jpeg=jpeg)
        except BaseException:
            with self._lock:
                self.sessions.pop(sid, None)
            raise
        with self._lock:
            self.sessions[sid] = session
            self.counters["sessions_total"] += 1
        return sid, session

    def close_session(self, sid: str) -> None:
        """Blocking: stop a session, join its threads, free its renderer; its counters go into the totals."""
        with self._lock:
            session = self.sessions.get(sid)
        if session is None:
            return
        try:
            session.close()
        finally:
            with self._lock:
                self.sessions.pop(sid, None)
                self.counters["frames_total"] += session.frames_out
                self.counters["frames_dropped_total"] += session.frames_dropped
                self.counters["frames_interrupted_total"] += session.frames_interrupted

    def count_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def close_all(self) -> None:
        for sid in list(self.sessions):
            self.close_session(sid)

    # ---- metrics
    def metrics_text(self) -> str:
        """Prometheus text exposition of the server's gauges and counters and each open session's stats."""
        with self._lock:
            open_sessions = {k: v for k, v in self.sessions.items() if v is not None}
            counters = dict(self.counters)
            errors = dict(self.errors)
        per = {sid: s.stats() for sid, s in open_sessions.items()}
        live_frames = sum(s["frames"] for s in per.values())
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {value:g}")

        metric("ditto_live_sessions", "gauge", "Live sessions open now.", [("", len(open_sessions))])
        metric("ditto_live_avatars", "gauge", "Avatars registered and kept.", [("", len(self.avatars))])
        metric("ditto_live_sessions_total", "counter", "Live sessions started.", [("", counters["sessions_total"])])
        metric("ditto_live_avatars_registered_total", "counter", "Avatar uploads registered (not cached).",
               [("", counters["avatars_registered_total"])])
        metric("ditto_live_frames_total", "counter", "Frames rendered.",
               [("", counters["frames_total"] + live_frames)])
        metric("ditto_live_frames_dropped_total", "counter", "Frames dropped for clients that read too slowly.",
               [("", counters["frames_dropped_total"] + sum(s["frames_dropped"] for s in per.values()))])
        metric("ditto_live_frames_interrupted_total", "counter", "Frames dropped by interrupts.",
               [("", counters["frames_interrupted_total"] + sum(s["frames_interrupted"] for s in per.values()))])
        metric("ditto_live_errors_total", "counter", "Error events sent, by code.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(errors.items())])
        for key, name, help_ in (("first_frame_latency", "first_frame_latency_seconds",
                                  "From the audio that made the first frame possible to that frame."),
                                 ("lag", "lag_seconds", "Mean processing lag of the last 50 frames (from their "
                                  "audio entering the pipeline)."),
                                 ("delay", "speech_delay_seconds", "Mean delay of the last 50 speech frames behind "
                                  "the push of their speech (look-ahead and waiting included)."),
                                 ("fps", "fps", "Frames per second over the last 50 frames."),
                                 ("frames", "session_frames", "Frames rendered by the session."),
                                 ("frames_dropped", "session_frames_dropped", "Frames the session dropped.")):
            metric(f"ditto_live_{name}", "gauge", help_,
                   [(f'{{session="{sid}"}}', float(st[key])) for sid, st in per.items() if st[key] is not None])
        return "\n".join(lines) + "\n"


def _replace(settings: LiveSettings, **kw: Any) -> LiveSettings:
    return dataclasses.replace(settings, **kw)


def _with_models(avatar: Avatar, models: DittoModels) -> Avatar:
    return dataclasses.replace(avatar, models=models)
