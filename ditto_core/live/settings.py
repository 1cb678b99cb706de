"""What a live client sets: the audio it sends (:class:`AudioFormat`) and its session (:class:`LiveSettings`).

Both are frozen dataclasses checked on construction; :meth:`LiveSettings.from_dict` / :meth:`AudioFormat.from_dict`
read the JSON a client sends and name every refused field as the client wrote it (``settings.mouth``,
``audio.sample_rate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..conditions import Emotion
from ..motion.controls import ClipControls
from ..render.compositor import OUTPUTS
from ..runtime.options import JobOptions, RenderOptions, SamplingOptions
from ..validate import OptionError, check_bool, check_choice, check_int, check_number, renamed

__all__ = ["ENCODINGS", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "PRESETS", "AudioFormat", "LiveSettings"]

#: audio encodings a client may send: 16-bit signed PCM or 32-bit float, little-endian, channels interleaved
ENCODINGS = ("s16le", "f32le")
#: sample rates taken (Hz); the server resamples to the 16 kHz HuBERT rate
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
#: DiT presets: "online" = the release's online settings (overlap 70 / 10 steps: a window every 10 frames, the
#: official streaming latency); "offline" = the release's offline overlap (10, a window every 70 frames: about 7x
#: less DiT work, a longer wait for the first frame) with the online steps
PRESETS = ("online", "offline")


def _from_dict(cls: type, d: Any, what: str) -> Any:
    if not isinstance(d, Mapping):
        raise OptionError(what, "a JSON object", d)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise OptionError(f"{what}.{unknown[0]}", f"one of {', '.join(sorted(known))}", unknown[0],
                          f"unknown setting (known: {', '.join(sorted(known))})")
    with renamed({f"{cls.__name__}.{k}": f"{what}.{k}" for k in known}):
        return cls(**dict(d))


@dataclass(frozen=True)
class AudioFormat:
    """The audio a client pushes: ``encoding`` (``s16le`` or ``f32le``, channels interleaved), ``sample_rate`` (Hz,
    8000..192000), ``channels`` (1..8; mixed down to mono)."""

    encoding: str = "s16le"
    sample_rate: int = 16000
    channels: int = 1

    def __post_init__(self) -> None:
        check_choice("AudioFormat.encoding", self.encoding, ENCODINGS)
        object.__setattr__(self, "sample_rate", check_int("AudioFormat.sample_rate", self.sample_rate,
                                                          MIN_SAMPLE_RATE, MAX_SAMPLE_RATE))
        object.__setattr__(self, "channels", check_int("AudioFormat.channels", self.channels, 1, 8))

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample frame (all channels)."""
        return (2 if self.encoding == "s16le" else 4) * self.channels

    @classmethod
    def from_dict(cls, d: Any, what: str = "audio") -> AudioFormat:
        return _from_dict(cls, d, what)


@dataclass(frozen=True)
class LiveSettings:
    """One live session's settings (all optional; the defaults are the release's online behaviour).

    Attributes:
        emotion: anything :meth:`~ditto_core.conditions.Emotion.parse` takes (a label such as ``"Happy"``, an index
            0-7, ``"Happy:0.7, Neutral:0.3"``); None = the release's (Neutral).
        mouth, head: amplitudes (1 = as generated; 0 = a still head).
        pitch, yaw, roll: head pose offsets in degrees.
        blink_interval: frames between blinks (0 = none; None = the release's).
        output: "full" (the face pasted back into the portrait, official) or "crop" (the 512x512 face crop).
        preset: "online" (overlap 70, 10 steps: the release's online settings) or "offline" (overlap 10, 10 steps).
        steps, overlap: override the preset's DDIM steps / window overlap (overlap 1..79).
        seed: the noise seed.
        idle: keep the avatar alive while no speech arrives (the DiT driven by silence in real time); False: frames
            only for the audio pushed (a plain stream: ``ceil(seconds * 25)`` frames after ``end``).
        return_audio: send each frame's 640 samples of 16 kHz audio with it (speech or idle silence), so a client
            plays sound and picture in sync.
        jpeg_quality: 1..100.
        frame_queue: frames kept for a client that reads slower than they are made; past it the oldest is dropped
            (and counted). Frames come in bursts of a DiT hop (10 at the online settings, 70 with the offline
            preset) when the pipeline is behind real time or speech arrives faster than real time, so it must stay
            above the hop plus a render batch; None (default): the hop + 26 (36 online, 96 with the offline preset).
        max_buffer_seconds: pushed speech waiting for the pipeline; more is refused with an error event.
        stats_interval: seconds between ``stats`` events (0 = only on request).
    """

    emotion: Any = None
    mouth: float = 1.0
    head: float = 1.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    blink_interval: int | None = None
    output: str = "full"
    preset: str = "online"
    steps: int | None = None
    overlap: int | None = None
    seed: int = 0
    idle: bool = True
    return_audio: bool = False
    jpeg_quality: int = 85
    frame_queue: int | None = None
    max_buffer_seconds: float = 30.0
    stats_interval: float = 1.0

    def __post_init__(self) -> None:
        o = "LiveSettings."
        if self.emotion is not None:
            try:
                Emotion.parse(self.emotion)
            except ValueError as e:
                raise OptionError(o + "emotion", "an emotion", self.emotion, str(e)) from None
        check_choice(o + "output", self.output, OUTPUTS)  # no "none": a live client wants pictures
        check_choice(o + "preset", self.preset, PRESETS)
        object.__setattr__(self, "steps", check_int(o + "steps", self.steps, 1, 1000, optional=True))
        object.__setattr__(self, "overlap", check_int(o + "overlap", self.overlap, 1, 79, optional=True))
        for name in ("idle", "return_audio"):
            object.__setattr__(self, name, check_bool(o + name, getattr(self, name)))
        object.__setattr__(self, "jpeg_quality", check_int(o + "jpeg_quality", self.jpeg_quality, 1, 100))
        queue = check_int(o + "frame_queue", self.frame_queue, 1, 1000, optional=True)
        if queue is None:
            overlap = self.overlap if self.overlap is not None else (70 if self.preset == "online" else 10)
            queue = 80 - overlap + 26
        object.__setattr__(self, "frame_queue", queue)
        object.__setattr__(self, "max_buffer_seconds",
                           check_number(o + "max_buffer_seconds", self.max_buffer_seconds, 0.1, 600.0))
        object.__setattr__(self, "stats_interval", check_number(o + "stats_interval", self.stats_interval, 0.0, 3600.0))
        with renamed({f"ClipControls.{k}": o + k for k in ("mouth", "head", "pitch", "yaw", "roll", "blink_interval")}
                     | {"SamplingOptions.seed": o + "seed"}):
            self.job_options()  # the rest is checked where it is owned

    def job_options(self, offline_overlap: int = 10) -> JobOptions:
        """These settings as the :class:`~ditto_core.runtime.JobOptions` of a stream (the sampling left unset falls
        back to the release's online settings). ``offline_overlap``: the release's offline overlap (the "offline"
        preset's; ``models.release.offline.overlap``)."""
        overlap = self.overlap
        if overlap is None and self.preset == "offline":
            overlap = int(offline_overlap)
        return JobOptions(
            sampling=SamplingOptions(emotion=self.emotion, steps=self.steps, overlap=overlap, seed=self.seed),
            clip=ClipControls(mouth=self.mouth, head=self.head, pitch=self.pitch, yaw=self.yaw, roll=self.roll,
                              blink_interval=self.blink_interval),
            render=RenderOptions(output=self.output, batch_size=4),
        )

    @classmethod
    def from_dict(cls, d: Any, what: str = "settings") -> LiveSettings:
        """A client's JSON object -> settings; unknown keys and bad values name ``settings.<key>``."""
        return _from_dict(cls, d, what)
