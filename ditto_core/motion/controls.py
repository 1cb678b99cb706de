"""The one vocabulary of controls, offline and streaming: per-frame :class:`FrameControls`, whole-clip
:class:`ClipSettings`, and the job-level :class:`ClipControls` a user sets once for a clip or a stream.

**Per-frame controls** (:class:`FrameControls`, what the batched stitcher consumes; every field ``(N,)`` float32):

============================  ======================================================  ===============================
field                         effect                                                  identity / "not applied"
============================  ======================================================  ===============================
``delta_pitch/yaw/roll``      degrees added to the pose (the pose becomes degrees)    NaN
``alpha_pitch/yaw/roll``      factor on the stored pose (logits, or degrees after     NaN
                              a delta; official ``alpha_*``)
``delta_exp`` ``(N, 63)``     added to the expression                                 0
``head_amplitude``            factor on the deviation of pose and ``t`` from the      1
                              reference frame (1 = as generated, 0 = still head)
``mouth_amplitude``           the same on the lip keypoints' expression               1
``expression``                the same on the whole expression                        1
``vad_alpha``                 < 1 blends the expression toward the source             1
``fade_alpha``                fades toward the fade target (0 = all the way)          NaN
``fade_keys`` ``(N, 6)``      1 where a frame's fade applies to that motion key       NaN (the stitch config's keys)
                              (``MOTION_KEYS`` order; official per-frame
                              ``fade_out_keys``)
============================  ======================================================  ===============================

A field left ``None`` is "not applied" on every frame. NaN marks frames where a control is absent: the official
stitcher treats a present ``delta_*`` of 0 differently from an absent one (the pose is converted to degrees, which
matters once an ``alpha_*`` or a fade acts on it), so presence is part of the value. The product builds NaN where an
offset is 0 and a fade is 1, which keeps the default path bit-identical to the official one.

Controls from several owners are :meth:`FrameControls.combine` d: offsets add, factors multiply, NaN is "absent".

**Blinks** have one vocabulary everywhere: ``None`` = the release's default (its blink template at random 60-100 frame
gaps), ``0`` = no blinks, ``n`` = ``n`` frames between blinks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from ..devices import host_float64
from .vector import LIP_DIMS, MOTION_KEYS, NUM_KP
from ..validate import check_bool, check_int, check_number

__all__ = ["ClipControls", "ClipSettings", "FrameControls", "exp_amplitude", "fade_ramp", "scale_deviation"]

#: fields where NaN marks an absent control
_NAN_ABSENT = ("delta_pitch", "delta_yaw", "delta_roll", "alpha_pitch", "alpha_yaw", "alpha_roll", "fade_alpha",
               "fade_keys")
#: columns of per-frame tables
_COLUMNS = {"delta_exp": 3 * NUM_KP, "fade_keys": len(MOTION_KEYS)}
#: fields that add when combined (the rest multiply)
_ADDITIVE = ("delta_pitch", "delta_yaw", "delta_roll", "delta_exp")
_POSE = ("pitch", "yaw", "roll")


def _nan_to(x: torch.Tensor, value: float) -> torch.Tensor:
    return torch.where(torch.isnan(x), torch.full_like(x, value), x)


@dataclass(frozen=True)
class FrameControls:
    """Controls of ``num_frames`` consecutive frames (see the module table). Tensors are float32 on any device;
    construction checks shapes and values and names the field in the error."""

    num_frames: int
    delta_pitch: torch.Tensor | None = None
    delta_yaw: torch.Tensor | None = None
    delta_roll: torch.Tensor | None = None
    alpha_pitch: torch.Tensor | None = None
    alpha_yaw: torch.Tensor | None = None
    alpha_roll: torch.Tensor | None = None
    delta_exp: torch.Tensor | None = None
    head_amplitude: torch.Tensor | None = None
    mouth_amplitude: torch.Tensor | None = None
    expression: torch.Tensor | None = None
    vad_alpha: torch.Tensor | None = None
    fade_alpha: torch.Tensor | None = None
    fade_keys: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.num_frames
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"FrameControls.num_frames must be an int >= 0, got {n!r}")
        for name in self.names():
            v = getattr(self, name)
            if v is None:
                continue
            t = torch.as_tensor(v)
            if not t.is_floating_point():
                t = t.float()
            shape = (n, _COLUMNS[name]) if name in _COLUMNS else (n,)
            if tuple(t.shape) != shape:
                raise ValueError(f"FrameControls.{name} must be {shape}, got {tuple(t.shape)}")
            finite = torch.isfinite(t) | (torch.isnan(t) if name in _NAN_ABSENT else torch.zeros_like(t, dtype=torch.bool))
            if not bool(finite.all()):
                what = "finite or NaN (absent)" if name in _NAN_ABSENT else "finite"
                raise ValueError(f"FrameControls.{name} must be {what}")
            object.__setattr__(self, name, t)

    @staticmethod
    def names() -> tuple[str, ...]:
        """The control fields, in declaration order."""
        return tuple(f.name for f in fields(FrameControls) if f.name != "num_frames")

    def present(self) -> dict[str, torch.Tensor]:
        """The fields that are set, by name."""
        return {k: getattr(self, k) for k in self.names() if getattr(self, k) is not None}

    def rows(self, start: int, stop: int) -> FrameControls:
        """Frames ``[start, stop)``."""
        if not 0 <= start <= stop <= self.num_frames:
            raise ValueError(f"FrameControls.rows: [{start}, {stop}) is outside 0..{self.num_frames}")
        return FrameControls(stop - start, **{k: v[start:stop] for k, v in self.present().items()})

    def expand(self, num_frames: int) -> FrameControls:
        """A one-frame control set repeated over ``num_frames`` frames."""
        if self.num_frames != 1:
            raise ValueError(f"FrameControls.expand needs one frame, got {self.num_frames}")
        return FrameControls(num_frames, **{k: v.expand(num_frames, *v.shape[1:]).clone() for k, v in self.present().items()})

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> FrameControls:
        return FrameControls(self.num_frames, **{k: v.to(device, dtype) for k, v in self.present().items()})

    def combine(self, other: FrameControls | None) -> FrameControls:
        """Both sets at once: offsets add, factors multiply; a control absent (None or NaN) in one takes the other's."""
        if other is None:
            return self
        if other.num_frames != self.num_frames:
            raise ValueError(f"FrameControls.combine: {self.num_frames} frames vs {other.num_frames}")
        out: dict[str, torch.Tensor | None] = {}
        for name in self.names():
            a, b = getattr(self, name), getattr(other, name)
            if a is None or b is None:
                out[name] = b if a is None else a
                continue
            b = b.to(a.device, a.dtype)
            both = a + b if name in _ADDITIVE else a * b
            if name in _NAN_ABSENT:
                both = torch.where(torch.isnan(a), b, torch.where(torch.isnan(b), a, both))
            out[name] = both
        return FrameControls(self.num_frames, **out)

    @staticmethod
    def cat(parts: Sequence[FrameControls]) -> FrameControls:
        """Frames of ``parts`` one after the other."""
        n = sum(p.num_frames for p in parts)
        out: dict[str, torch.Tensor] = {}
        for name in FrameControls.names():
            if all(getattr(p, name) is None for p in parts):
                continue
            fill = float("nan") if name in _NAN_ABSENT else (0.0 if name == "delta_exp" else 1.0)
            cols = []
            for p in parts:
                v = getattr(p, name)
                if v is None:
                    shape = (p.num_frames, _COLUMNS[name]) if name in _COLUMNS else (p.num_frames,)
                    v = torch.full(shape, fill)
                cols.append(v.float().cpu())
            out[name] = torch.cat(cols)
        return FrameControls(n, **out)

    def fades(self) -> bool:
        """True when any frame fades."""
        return self.fade_alpha is not None and bool((~torch.isnan(self.fade_alpha)).any())

    def pose_delta(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(applied (N,) bool, degrees (N,))`` of ``delta_<key>``, or None when never applied."""
        return _present(getattr(self, f"delta_{key}"), 0.0)

    def pose_alpha(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(applied (N,) bool, factor (N,))`` of ``alpha_<key>``, or None when never applied."""
        return _present(getattr(self, f"alpha_{key}"), 1.0)

    def fade(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(applied (N,) bool, alpha (N,))`` of ``fade_alpha``, or None when no frame fades."""
        return _present(self.fade_alpha, 1.0)


def _present(x: torch.Tensor | None, fill: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    if x is None:
        return None
    on = ~torch.isnan(x)
    if not bool(on.any()):
        return None
    return on, _nan_to(x, fill)


def scale_deviation(x: torch.Tensor, ref: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ref + (x - ref) * factor`` (an amplitude: the deviation from the reference frame scaled), exactly ``x``
    where ``factor`` is 1 (so an unscaled value stays bit-identical)."""
    return torch.where(factor == 1, x, ref + (x - ref) * factor)


def fade_ramp(frames: torch.Tensor, start: int, end: int | None, fade_in: int, fade_out: int) -> torch.Tensor:
    """Fade alphas ``(k,)`` float64 of frame indices ``frames`` for a fade over ``[start, end)`` (``end`` None: no
    end, as a stream), the official ``setup_Nd`` ramps measured from the range's ends: frame ``i`` in the first
    ``fade_in`` frames gets ``(i - start) / fade_in``; the last ``fade_out + 1`` frames ramp from 1 down to 0 (the
    smaller of both where they overlap); 1 elsewhere. Computed on the host."""
    if fade_out > 0 and end is None:
        raise ValueError("fade_out needs the clip's length; a stream does not know where the audio ends")
    with host_float64():
        i = frames.to("cpu", torch.float64)
        a = torch.ones_like(i)
        inside = i >= start if end is None else (i >= start) & (i < end)
        if fade_in > 0:
            a = torch.where(inside & (i < start + fade_in), (i - start) / fade_in, a)
        if fade_out > 0:
            ss, ee = end - fade_out - 1, end - 1
            ramp = ((ee - i) / (ee - ss)).clamp(min=0)
            a = torch.where(inside & (i >= max(ss, start)), torch.minimum(a, ramp), a)
    return a


def exp_amplitude(controls: FrameControls) -> torch.Tensor | None:
    """``(N, 63)`` factor on the expression's deviation from the reference frame: ``expression`` everywhere times
    ``mouth_amplitude`` on the lip dims; None when both are unset."""
    e, m = controls.expression, controls.mouth_amplitude
    if e is None and m is None:
        return None
    n = controls.num_frames
    ref = e if e is not None else m
    assert ref is not None
    w = (e if e is not None else torch.ones(n, dtype=ref.dtype, device=ref.device))[:, None].repeat(1, 3 * NUM_KP)
    if m is not None:
        w[:, list(LIP_DIMS)] = w[:, list(LIP_DIMS)] * m.to(w.dtype)[:, None]
    return w


# ------------------------------------------------------------------------------------------------ clip level
@dataclass(frozen=True)
class ClipSettings:
    """Whole-clip stitcher settings a motion or a job may set; ``None`` leaves the release's.

    ``blink_interval``: 0 = no blinks, ``n`` = frames between blinks, None = the release's default (its template at
    random 60-100 frame gaps). ``drive_eye``: drive the eyes from the motion (None: official, for an image source
    only). ``gaze_fix``: keep the gaze on the camera as the head turns (None: official, whenever eyes are driven).
    """

    blink_interval: int | None = None
    drive_eye: bool | None = None
    gaze_fix: bool | None = None

    def __post_init__(self) -> None:
        self._check("ClipSettings.")

    def _check(self, prefix: str) -> None:
        object.__setattr__(self, "blink_interval", check_int(prefix + "blink_interval", self.blink_interval, 0,
                                                             MAX_FRAMES, optional=True))
        for name in ("drive_eye", "gaze_fix"):
            object.__setattr__(self, name, check_bool(prefix + name, getattr(self, name), optional=True))

    def over(self, base: ClipSettings) -> ClipSettings:
        """These settings where set, ``base``'s elsewhere."""
        return ClipSettings(*(getattr(self, f.name) if getattr(self, f.name) is not None else getattr(base, f.name)
                              for f in fields(ClipSettings)))


#: largest head / mouth amplitude taken (1 = as generated)
MAX_AMPLITUDE = 10.0
#: largest head pose offset taken, in degrees
MAX_POSE_DEGREES = 90.0
#: largest frame index or frame count a setting takes (about 11 hours at 25 fps)
MAX_FRAMES = 1_000_000


@dataclass(frozen=True)
class ClipControls:
    """What a user sets once for a whole clip or stream (the command line's flags, a job's options).

    Attributes:
        mouth: mouth amplitude (lip motion), >= 0; 1 = as generated.
        head: head amplitude (pose and translation), >= 0; 1 = as generated, 0 = still head.
        pitch, yaw, roll: head pose offsets in degrees (nod, turn, tilt).
        blink_interval: 0 = no blinks, n = frames between blinks, None = the release's default.
        drive_eye: None = official (eyes driven for an image source), False keeps the source's eyes.
        gaze_fix: None = official (on whenever the eyes are driven), True/False force it.
        fade_in, fade_out: frames fading from / to the source's resting expression at the start / end (a stream
            knows no end: ``fade_out`` is offline only).
    """

    mouth: float = 1.0
    head: float = 1.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    blink_interval: int | None = None
    drive_eye: bool | None = None
    gaze_fix: bool | None = None
    fade_in: int = 0
    fade_out: int = 0

    def __post_init__(self) -> None:
        o = "ClipControls."
        for name in ("mouth", "head"):
            object.__setattr__(self, name, check_number(o + name, getattr(self, name), 0.0, MAX_AMPLITUDE))
        for name in _POSE:
            object.__setattr__(self, name, check_number(o + name, getattr(self, name), -MAX_POSE_DEGREES,
                                                        MAX_POSE_DEGREES))
        for name in ("fade_in", "fade_out"):
            object.__setattr__(self, name, check_int(o + name, getattr(self, name), 0, MAX_FRAMES))
        ClipSettings._check(self, o)  # type: ignore[arg-type]  # blink_interval, drive_eye, gaze_fix

    @property
    def settings(self) -> ClipSettings:
        return ClipSettings(self.blink_interval, self.drive_eye, self.gaze_fix)

    @property
    def fades(self) -> bool:
        return self.fade_in > 0 or self.fade_out > 0

    def frame_controls(self, start: int, num_frames: int, total: int | None = None) -> FrameControls:
        """These controls on frames ``start .. start + num_frames - 1`` of a clip of ``total`` frames (None: a stream,
        whose end is unknown; then ``fade_out`` must be 0). Fade ramps are the official ``setup_Nd`` ones: frame
        ``i < fade_in`` gets ``i / fade_in``; the last ``fade_out + 1`` frames ramp from 1 down to 0."""
        if self.fade_out and total is None:
            raise ValueError("fade_out needs the clip's length; a stream does not know where the audio ends")
        n = int(num_frames)
        kw: dict[str, torch.Tensor] = {}
        for name in _POSE:
            v = getattr(self, name)
            if v != 0:
                kw[f"delta_{name}"] = torch.full((n,), v)
        if self.head != 1:
            kw["head_amplitude"] = torch.full((n,), self.head)
        if self.mouth != 1:
            kw["mouth_amplitude"] = torch.full((n,), self.mouth)
        if self.fades:
            a = fade_ramp(torch.arange(start, start + n), 0, total, self.fade_in, self.fade_out).float()
            if bool((a != 1).any()):
                kw["fade_alpha"] = torch.where(a == 1, torch.full_like(a, float("nan")), a)
        return FrameControls(n, **kw)

    def replace(self, **changes: object) -> ClipControls:
        return replace(self, **changes)
