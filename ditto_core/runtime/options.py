"""Settings, grouped by who sets them (as LivePortrait's argument / inference / crop configs).

* **The release** (:class:`ReleaseDefaults`): what the official config pickle says, translated once by the loader
  into the product's names (:mod:`ditto_core.official`). Nothing else reads the official names.
* **Per stage** (set by a user, a node or a job; ``None`` = the release's value): :class:`SourceOptions`,
  :class:`SamplingOptions` (the offline settings, or the online preset in a stream), :class:`RenderOptions`.
* **One job** (:class:`JobOptions`): the stage options plus the whole-clip
  :class:`~ditto_core.motion.controls.ClipControls`, composed, taken by both :func:`ditto_core.runtime.generate` and
  the streaming session. A stream adds :class:`StreamingOptions` (queues and threads only).

Every class checks its values on construction and the error names the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..audio2motion import Audio2MotionConfig
from ..conditions import Emotion
from ..face.detect import FACE_ORDERS
from ..motion.controls import ClipControls, FrameControls
from ..render.compositor import OUTPUTS
from ..render.renderer import BACKENDS, SPEED_OPTIONS, RendererConfig
from ..stitch import StitchConfig
from ..validate import OptionError, check_bool, check_choice, check_int, check_number

__all__ = [
    "STREAM_OUTPUTS",
    "JobOptions",
    "ReleaseDefaults",
    "RenderOptions",
    "SamplingOptions",
    "SourceOptions",
    "StreamingOptions",
]

log = logging.getLogger("ditto")

#: what a streaming session makes of each frame: the outputs of offline rendering, or keypoints only ("none")
STREAM_OUTPUTS = (*OUTPUTS, "none")


#: the largest noise seed (a 64-bit unsigned integer, as ComfyUI's seed widgets)
MAX_SEED = 2**64 - 1
#: the largest classifier-free guidance weight taken (official 2; beyond about 5 the motion degrades)
MAX_GUIDANCE = 10.0


def _set(obj: Any, name: str, value: Any) -> None:
    """Store a checked, normalised value on a frozen dataclass."""
    object.__setattr__(obj, name, value)


# ------------------------------------------------------------------------------------------------ stages
@dataclass(frozen=True)
class SourceOptions:
    """Source registration (None = the release's value).

    Attributes:
        crop_scale: face crop size relative to the face (official 2.3).
        vy_ratio: vertical offset of the crop centre, in crop sizes (official -0.125; ``crop_vy_ratio``).
        face_index: which face on the first frame, counted in ``face_order`` (0 = the first).
        face_order: "size" (largest first, official) or "left_to_right".
        smoothing: temporal window (frames) of a video source's motion (official 13; ``smo_k_s``); 1 = none.
        max_size: the loader's size rule, long side capped at this many pixels (official 1920).
        max_frames: frames of a video source read at most (official ``template_n_frames``; None or -1 = all).
    """

    crop_scale: float | None = None
    vy_ratio: float | None = None
    face_index: int = 0
    face_order: str = "size"
    smoothing: int | None = None
    max_size: int | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        o = "SourceOptions."
        _set(self, "crop_scale", check_number(o + "crop_scale", self.crop_scale, 0.1, 100.0, optional=True))
        _set(self, "vy_ratio", check_number(o + "vy_ratio", self.vy_ratio, -10.0, 10.0, optional=True))
        _set(self, "face_index", check_int(o + "face_index", self.face_index, 0, 1023))
        check_choice(o + "face_order", self.face_order, FACE_ORDERS)
        _set(self, "smoothing", check_int(o + "smoothing", self.smoothing, 1, 1001, optional=True))
        _set(self, "max_size", check_int(o + "max_size", self.max_size, 2, 16384, optional=True))
        _set(self, "max_frames", check_int(o + "max_frames", self.max_frames, -1, optional=True))


@dataclass(frozen=True)
class SamplingOptions:
    """DiT sampling (None = the release's value: its offline settings in :func:`~ditto_core.runtime.sample_motion`
    and ``generate``, its online preset in a stream).

    Attributes:
        emotion: an :class:`~ditto_core.conditions.Emotion`, or anything :meth:`Emotion.parse` takes (a label, an
            index 0-7, ``"Happy:0.7, Neutral:0.3"``, a ``{label: weight}`` dict, an ``(m, 8)`` table); parsed here.
        eye_open: ``(left, right)`` eye openness condition instead of the source's (see :meth:`manual_eyes`).
        eye_ball: ``(6,)`` iris offsets condition instead of the source's.
        steps: DDIM steps per window (official 50 offline, 10 online).
        overlap: frames two 80-frame windows share (official 10 offline, 70 online).
        seed: the noise seed: the same seed gives the same motion (and blink times).
        guidance: classifier-free guidance weight (official 2).
        smoothing: width of the moving average over pose and translation (official 3).
    """

    emotion: Emotion | None = None
    eye_open: tuple[float, ...] | None = None
    eye_ball: tuple[float, ...] | None = None
    steps: int | None = None
    overlap: int | None = None
    seed: int = 0
    guidance: float | None = None
    smoothing: int | None = None

    def __post_init__(self) -> None:
        o = "SamplingOptions"
        if self.emotion is not None:
            try:
                object.__setattr__(self, "emotion", Emotion.parse(self.emotion))
            except ValueError as e:
                raise OptionError(f"{o}.emotion", "an emotion", self.emotion, str(e)) from None
        for name, dim in (("eye_open", 2), ("eye_ball", 6)):
            v = getattr(self, name)
            if v is None:
                continue
            try:
                vals = tuple(float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1))
            except (TypeError, ValueError):
                vals = ()
            if len(vals) != dim or not all(math.isfinite(x) for x in vals):
                raise OptionError(f"{o}.{name}", f"{dim} finite numbers", v)
            object.__setattr__(self, name, vals)
        _set(self, "steps", check_int(f"{o}.steps", self.steps, 1, 1000, optional=True))
        _set(self, "overlap", check_int(f"{o}.overlap", self.overlap, 0, 79, optional=True))
        _set(self, "seed", check_int(f"{o}.seed", self.seed, 0, MAX_SEED))
        _set(self, "guidance", check_number(f"{o}.guidance", self.guidance, 0.0, MAX_GUIDANCE, optional=True))
        _set(self, "smoothing", check_int(f"{o}.smoothing", self.smoothing, 0, 1001, optional=True))

    def config(self, base: Audio2MotionConfig) -> Audio2MotionConfig:
        """``base`` (the release's offline or online settings) with the steps, overlap, guidance and smoothing set
        here."""
        return base.replace(steps=self.steps, overlap=self.overlap, guidance=self.guidance, smoothing=self.smoothing)

    @staticmethod
    def manual_eyes(eye_ball_source: Sequence[float], open_left: float, open_right: float,
                    gaze_x: float, gaze_y: float) -> tuple[tuple[float, float], tuple[float, ...]]:
        """``(eye_open, eye_ball)`` conditions for eyes set by hand: openness of the eye on the left / right of the
        image (about 0.8 open, 0.2 nearly closed) and one iris offset for both eyes (about +-0.02 is a clear look to
        the side); the two depth components stay ``eye_ball_source``'s (the source's ``(6,)`` eye-ball row)."""
        z = [float(v) for v in list(eye_ball_source)[4:6]]
        if len(z) != 2:
            raise ValueError(f"eye_ball_source: expected the source's 6 eye-ball values, got {eye_ball_source!r}")
        return (float(open_left), float(open_right)), (float(gaze_x), float(gaze_x), float(gaze_y), float(gaze_y), *z)


@dataclass(frozen=True)
class RenderOptions:
    """Rendering.

    Attributes:
        output: "full" (pasted back into the source frame, official), "crop" (the 512x512 face crop), or, in a stream
            only, "none" (keypoints, no images).
        batch_size: frames per warp/decode call (a stream renders its first frame alone, for latency).
        backend: "pytorch" or "tensorrt" (None: the models' backend); see :func:`ditto_core.render.make_renderer`.
        cuda_graphs, channels_last, compile: the PyTorch renderer's options (:class:`~ditto_core.render.
            RendererConfig`: CUDA graph capture per batch shape, a channels-last decoder, ``torch.compile``).
    """

    output: str = "full"
    batch_size: int = 4
    backend: str | None = None
    cuda_graphs: bool = False
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice("RenderOptions.output", self.output, STREAM_OUTPUTS)
        _set(self, "batch_size", check_int("RenderOptions.batch_size", self.batch_size, 1, 1024))
        check_choice("RenderOptions.backend", self.backend, BACKENDS, optional=True)
        for name in SPEED_OPTIONS:
            _set(self, name, check_bool(f"RenderOptions.{name}", getattr(self, name)))

    def for_device(self, device: torch.device | str) -> RenderOptions:
        """These options where ``device`` can use them: CUDA graphs are dropped, with one warning, off CUDA (so a
        workflow saved with them on still runs on a Mac or a CPU)."""
        if self.cuda_graphs and torch.device(device).type != "cuda":
            log.warning("ditto: CUDA graphs need a CUDA device; rendering on %s without them", device)
            return replace(self, cuda_graphs=False)
        return self

    def renderer_config(self, precision: str) -> RendererConfig:
        """The :class:`~ditto_core.render.RendererConfig` of these options in ``precision`` (the models')."""
        return RendererConfig(precision, self.batch_size, **self.speed_options())

    def speed_options(self) -> dict[str, bool]:
        """``{name: on}`` for each of :data:`~ditto_core.render.SPEED_OPTIONS`."""
        return {name: getattr(self, name) for name in SPEED_OPTIONS}


@dataclass(frozen=True)
class JobOptions:
    """One job: everything ``generate`` or a streaming session takes, composed of the stage options and the
    whole-clip controls (``clip``: amplitudes, pose offsets, blinks, eyes, fades)."""

    source: SourceOptions = field(default_factory=SourceOptions)
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    clip: ClipControls = field(default_factory=ClipControls)
    render: RenderOptions = field(default_factory=RenderOptions)

    def __post_init__(self) -> None:
        for name, cls in (("source", SourceOptions), ("sampling", SamplingOptions), ("clip", ClipControls),
                          ("render", RenderOptions)):
            if not isinstance(getattr(self, name), cls):
                raise OptionError(f"JobOptions.{name}", f"a {cls.__name__}", type(getattr(self, name)).__name__)


@dataclass(frozen=True)
class StreamingOptions:
    """What only a stream has.

    Attributes:
        official_count: emit the official online frame count (7-17 frames of padding past the speech) instead of
            stopping at ``ceil(seconds * 25)``.
        queue_size: emissions of ``hop`` frames the render queue holds before the motion thread waits.
        motion_threads: intra-op threads of the audio + motion thread (None: 1 on a CPU device, where the DiT's small
            matmuls gain little from more threads and the renderer needs the cores; untouched elsewhere).
    """

    official_count: bool = False
    queue_size: int = 4
    motion_threads: int | None = None

    def __post_init__(self) -> None:
        _set(self, "official_count", check_bool("StreamingOptions.official_count", self.official_count))
        _set(self, "queue_size", check_int("StreamingOptions.queue_size", self.queue_size, 1, 1024))
        _set(self, "motion_threads", check_int("StreamingOptions.motion_threads", self.motion_threads, 1, 1024,
                                               optional=True))


# ------------------------------------------------------------------------------------------------ release
@dataclass(frozen=True)
class ReleaseDefaults:
    """The release's settings in the product's names (the loader builds them from the config pickle, or from the
    official code defaults when a models folder has none).

    Attributes:
        source: every :class:`SourceOptions` field set.
        emotion: the default emotion (official ``emo``; Neutral).
        offline: the DiT settings of offline generation.
        online: the DiT settings of a stream (the config's when it is an online one, else the official online
            preset with the config's clip range).
        eye_f0_mode: use the first source frame's eye features for every frame of a video source.
        stitch: the stitcher's settings (blink template and interval, driven keys, fades, stitching).
        overall: one frame of controls applied to every frame (official ``overall_ctrl_info``).
    """

    source: SourceOptions = field(default_factory=lambda: SourceOptions(2.3, -0.125, 0, "size", 13, 1920, -1))
    emotion: Emotion = field(default_factory=lambda: Emotion.parse(4))
    offline: Audio2MotionConfig = field(default_factory=Audio2MotionConfig)
    online: Audio2MotionConfig = field(default_factory=Audio2MotionConfig.online)
    eye_f0_mode: bool = False
    stitch: StitchConfig = field(default_factory=StitchConfig)
    overall: FrameControls = field(default_factory=lambda: FrameControls(1))
