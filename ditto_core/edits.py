"""User edits of a generated performance: frame ranges with easing -> per-frame controls of the stitcher.

A :class:`Motion` is the DiT's output ``(N, 265)`` (pose as 66-bin logits, see :mod:`ditto_core.motion`) plus
per-frame control arrays and a few clip-wide settings. :func:`apply_edit` returns a new Motion with one
:class:`EditOptions` applied (the input is never mutated), so edits stack: chaining several edits keyframes a
performance. :func:`to_stitch_inputs` turns a Motion into what :class:`ditto_core.stitch.MotionStitcher` takes.

Per-frame controls (all ``(N,)`` float32) and how they reach the stitcher:

* ``delta_pitch/yaw/roll`` (degrees, additive): the official ``delta_*`` ctrl keys.
* ``head_amplitude`` (multiplicative, 1 = as generated): scales the deviation of the pose logits and ``t`` from
  frame 0. Under relative motion the stitcher drives ``src + (m - m0)``, so a constant amplitude ``a`` gives
  exactly the official ``use_d_keys = {pitch: a, yaw: a, roll: a, t: a}``; it is baked into the motion tensor.
* ``mouth_amplitude`` (multiplicative): the same on the lip keypoints' ``exp`` (keypoints 6, 12, 14, 17, 19, 20).
* ``expression`` (multiplicative): the same on all 63 ``exp`` values. The stitcher only drives the lip keypoints
  (and the eye keypoints when the eyes are driven), so this scales lip and eye motion together.
* ``vad_alpha`` (multiplicative, 1 = off): the official ``vad_alpha`` ctrl; < 1 blends all ``exp`` toward the
  source. Set by relax-on-silence from the voice activity ``vad`` (RMS of each 40 ms of audio).
* ``fade_alpha`` (multiplicative, 1 = off): the official ``fade_alpha`` ctrl with ``fade_type`` "s" (toward the
  source) on ``fade_out_keys`` ("exp",); ramps as the official ``setup_Nd``.

Clip-wide settings (the last edit that sets one wins; the frame range does not apply to them):
``blink_interval`` (None = the models' default, 0 = no blinks, > 0 frames between blinks),
``gaze_fix`` (None = the official behaviour: on exactly when the eyes are driven; True/False force it, the
stitcher's ``StitchConfig.gaze_fix``),
``drive_eye`` (None = official: True for an image source, False for a video).

Temporal smoothing is applied to the motion tensor itself (the official centred mean over dims 0:202).

Frame ranges are ``[start, end)`` in frames at 25 fps; ``end = -1`` means to the end; a range past the end of a
shorter clip is clipped (a range starting after the last frame changes no frame), so one keyframed chain works on
clips of any length. Easing: the first
``ease_in`` frames of a range ramp the edit's weight up with smoothstep ``t^2 (3 - 2t)`` at
``t = (i - start + 1) / (ease_in + 1)``, the last ``ease_out`` frames ramp it down symmetrically
(``t = (end - i) / (ease_out + 1)``); elsewhere in the range the weight is 1 and outside it 0. An edit acts with
its weight ``w``: offsets add ``w * offset``, factors multiply by ``1 + w * (factor - 1)``, smoothing moves the
motion ``w`` of the way toward its smoothed version.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .motion import EXP, LIP_KPS, MOTION_DIM, PITCH, ROLL, YAW, bins_to_degrees

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_NAME",
    "FPS",
    "CONTROL_NAMES",
    "GAZE_FIX_MODES",
    "MotionFormatError",
    "EditRange",
    "Motion",
    "EditOptions",
    "ClipControls",
    "ease_weights",
    "smooth_pose",
    "apply_edit",
    "to_stitch_inputs",
    "motion_curves",
    "save_motion",
    "load_motion",
]

#: version of the saved-motion file format (see :func:`save_motion`)
FORMAT_VERSION = 1
#: value of the ``format`` metadata entry of a saved motion
FORMAT_NAME = "ditto-motion"
FPS = 25.0
#: the per-frame control arrays of a Motion with their identity values
CONTROL_NAMES: dict[str, float] = {
    "delta_pitch": 0.0,
    "delta_yaw": 0.0,
    "delta_roll": 0.0,
    "head_amplitude": 1.0,
    "mouth_amplitude": 1.0,
    "expression": 1.0,
    "vad_alpha": 1.0,
    "fade_alpha": 1.0,
}
#: EditOptions.gaze_fix values: keep the current setting, force on, force off
GAZE_FIX_MODES = ("keep", "on", "off")
#: flat indices (into the 63 exp values) of the lip keypoints
LIP_DIMS = tuple(3 * k + c for k in LIP_KPS for c in range(3))
#: motion dims driven by head amplitude: pitch/yaw/roll logits and t (scale always comes from the source)
HEAD_DIMS = slice(1, 202)
#: dims covered by the official smoothing: scale, pose logits, t
SMOOTH_DIMS = slice(0, 202)


class MotionFormatError(ValueError):
    """A file that is not a Ditto motion, or one written in a format version this code cannot read."""


@dataclass(frozen=True)
class EditRange:
    """One applied edit for the UI: frames ``[start, end)`` (end resolved, never -1) and a short label."""

    start: int
    end: int
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"start": int(self.start), "end": int(self.end), "label": str(self.label)}


def _vector(value: Any, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value).detach().to("cpu", torch.float32)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"Motion.{name} must be ({n},) (one value per frame), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"Motion.{name} has non-finite values")
    return t.contiguous()


@dataclass
class Motion:
    """A performance: DiT motion + per-frame controls + clip-wide settings. Kept on the CPU in float32.

    Attributes:
        motion: ``(N, 265)`` the DiT output (scale-1 | pitch/yaw/roll 66-bin logits | t | exp), after the sampler's
            smoothing; edits' smoothing modifies it.
        vad: ``(N,)`` voice activity, RMS of each 40 ms of the 16 kHz audio (full scale 1.0); zeros if unknown.
        delta_pitch, delta_yaw, delta_roll: ``(N,)`` head pose offsets in degrees.
        head_amplitude, mouth_amplitude, expression: ``(N,)`` factors (1 = as generated).
        vad_alpha, fade_alpha: ``(N,)`` in [0, 1] (1 = off).
        blink_interval: None (models' default), 0 (no blinks) or frames between blinks.
        gaze_fix: None (official: with driven eyes), True or False.
        drive_eye: None (official: True for an image source, False for a video), True or False.
        smoothing: the sampler's smoothing width (official ``smo_k_d``), for information.
        edits: the applied edits, oldest first (for the UI).
        fps: frames per second (25).
        meta: free-form strings (emotion, seed, steps, ...), saved with the motion.
    Missing control arrays are filled with their identity values.
    """

    motion: torch.Tensor
    vad: torch.Tensor | None = None
    delta_pitch: torch.Tensor | None = None
    delta_yaw: torch.Tensor | None = None
    delta_roll: torch.Tensor | None = None
    head_amplitude: torch.Tensor | None = None
    mouth_amplitude: torch.Tensor | None = None
    expression: torch.Tensor | None = None
    vad_alpha: torch.Tensor | None = None
    fade_alpha: torch.Tensor | None = None
    blink_interval: int | None = None
    gaze_fix: bool | None = None
    drive_eye: bool | None = None
    smoothing: int = 3
    edits: list[EditRange] = field(default_factory=list)
    fps: float = FPS
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = torch.as_tensor(self.motion).detach().to("cpu", torch.float32)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM or m.shape[0] < 1:
            raise ValueError(f"Motion.motion must be (N, {MOTION_DIM}) with N >= 1, got shape {tuple(m.shape)}")
        if not torch.isfinite(m).all():
            raise ValueError("Motion.motion has non-finite values")
        self.motion = m.contiguous()
        n = m.shape[0]
        self.vad = torch.zeros(n) if self.vad is None else _vector(self.vad, n, "vad")
        for name, identity in CONTROL_NAMES.items():
            v = getattr(self, name)
            setattr(self, name, torch.full((n,), identity) if v is None else _vector(v, n, name))
        for name in ("vad_alpha", "fade_alpha"):
            v = getattr(self, name)
            if (v < 0).any() or (v > 1).any():
                raise ValueError(f"Motion.{name} must lie in [0, 1]")
        for name in ("head_amplitude", "mouth_amplitude", "expression"):
            if (getattr(self, name) < 0).any():
                raise ValueError(f"Motion.{name} must be >= 0")
        if self.blink_interval is not None:
            if isinstance(self.blink_interval, bool) or int(self.blink_interval) != self.blink_interval or self.blink_interval < 0:
                raise ValueError(f"Motion.blink_interval must be None, 0 (no blinks) or a frame count > 0, got {self.blink_interval!r}")
            self.blink_interval = int(self.blink_interval)
        for name in ("gaze_fix", "drive_eye"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise ValueError(f"Motion.{name} must be None, True or False, got {v!r}")
        if not (isinstance(self.fps, (int, float)) and self.fps > 0):
            raise ValueError(f"Motion.fps must be > 0, got {self.fps!r}")
        self.fps = float(self.fps)
        self.smoothing = int(self.smoothing)
        self.edits = [e if isinstance(e, EditRange) else EditRange(**e) for e in self.edits]
        self.meta = {str(k): str(v) for k, v in self.meta.items()}

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_frames / self.fps

    def controls(self) -> dict[str, torch.Tensor]:
        """The per-frame control arrays by name (references, not copies)."""
        return {name: getattr(self, name) for name in CONTROL_NAMES}

    def copy(self) -> "Motion":
        """A deep copy (tensors cloned)."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                kw[k] = v.clone()
        kw["edits"] = list(self.edits)
        kw["meta"] = dict(self.meta)
        return Motion(**kw)

    def __repr__(self) -> str:
        return f"Motion({self.num_frames} frames at {self.fps:g} fps, {len(self.edits)} edits)"


@dataclass
class EditOptions:
    """One edit over frames ``[start, end)`` (``end`` -1 = to the end) with ``ease_in``/``ease_out`` frames.

    Defaults are the identity (an edit with all defaults changes nothing).

    * ``pitch``, ``yaw``, ``roll``: head pose offsets, degrees.
    * ``head_amplitude``, ``mouth_amplitude``, ``expression``: factors, >= 0 (1 = unchanged).
    * ``relax_on_silence``: 0-1; on frames whose voice activity is below ``silence_threshold`` (RMS, full scale
      1.0), ``vad_alpha`` becomes ``1 - relax_on_silence`` (the silence mask is smoothed over 5 frames).
    * ``blink_interval``: -1 keep, 0 no blinks, > 0 frames between blinks (clip-wide).
    * ``gaze_fix``: "keep", "on" or "off" (clip-wide).
    * ``fade_in``, ``fade_out``: frames; fade toward the source's expression at the start/end of the range.
    * ``smoothing``: centred moving-average width in frames over scale, pose and t (1 = none).
    * ``label``: shown on the edited range in the UI (default: a summary of the edit).
    """

    start: int = 0
    end: int = -1
    ease_in: int = 0
    ease_out: int = 0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    head_amplitude: float = 1.0
    mouth_amplitude: float = 1.0
    expression: float = 1.0
    relax_on_silence: float = 0.0
    silence_threshold: float = 0.01
    blink_interval: int = -1
    gaze_fix: str = "keep"
    fade_in: int = 0
    fade_out: int = 0
    smoothing: int = 1
    label: str = ""

    def __post_init__(self) -> None:
        def _int(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, float) and v.is_integer()):
                raise ValueError(f"EditOptions.{name} must be an integer, got {v!r}")
            if int(v) < lo:
                raise ValueError(f"EditOptions.{name} must be >= {lo}, got {v}")
            setattr(self, name, int(v))

        def _float(name: str, lo: float | None = None, hi: float | None = None) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"EditOptions.{name} must be a finite number, got {v!r}")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ValueError(f"EditOptions.{name} must lie in [{lo}, {hi}], got {v}")
            setattr(self, name, float(v))

        _int("start", 0)
        _int("end", -1)
        if self.end != -1 and self.end <= self.start:
            raise ValueError(f"EditOptions.end must be -1 (to the end) or > start ({self.start}), got {self.end}")
        for name in ("ease_in", "ease_out", "fade_in", "fade_out"):
            _int(name, 0)
        _int("smoothing", 1)
        _int("blink_interval", -1)
        for name in ("pitch", "yaw", "roll"):
            _float(name)
        for name in ("head_amplitude", "mouth_amplitude", "expression"):
            _float(name, 0.0)
        _float("relax_on_silence", 0.0, 1.0)
        _float("silence_threshold", 0.0)
        if self.gaze_fix not in GAZE_FIX_MODES:
            raise ValueError(f"EditOptions.gaze_fix must be one of {GAZE_FIX_MODES}, got {self.gaze_fix!r}")
        self.label = str(self.label)

    def summary(self) -> str:
        """A short human-readable description of what this edit changes ("" for the identity)."""
        parts = []
        for name, unit in (("pitch", "°"), ("yaw", "°"), ("roll", "°")):
            v = getattr(self, name)
            if v != 0:
                parts.append(f"{name} {v:+g}{unit}")
        for name, short in (("head_amplitude", "head"), ("mouth_amplitude", "mouth"), ("expression", "expression")):
            v = getattr(self, name)
            if v != 1:
                parts.append(f"{short} ×{v:g}")
        if self.relax_on_silence > 0:
            parts.append(f"relax {self.relax_on_silence:g}")
        if self.blink_interval == 0:
            parts.append("no blinks")
        elif self.blink_interval > 0:
            parts.append(f"blink every {self.blink_interval}")
        if self.gaze_fix != "keep":
            parts.append(f"gaze fix {self.gaze_fix}")
        if self.fade_in > 0:
            parts.append(f"fade in {self.fade_in}")
        if self.fade_out > 0:
            parts.append(f"fade out {self.fade_out}")
        if self.smoothing > 1:
            parts.append(f"smooth {self.smoothing}")
        return ", ".join(parts)

    def is_identity(self) -> bool:
        return self.summary() == ""


# --------------------------------------------------------------------------------------------- maths
def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def _resolve_range(n: int, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` clipped to ``[0, n]``; empty (``start == end == n``) when it starts past the end."""
    if start < 0 or (end != -1 and end <= start):
        raise ValueError(f"edit range must have 0 <= start < end (or end -1), got start={start}, end={end}")
    s = min(int(start), n)
    e = n if end == -1 else min(int(end), n)
    return s, e


def ease_weights(num_frames: int, start: int = 0, end: int = -1, ease_in: int = 0, ease_out: int = 0) -> torch.Tensor:
    """``(num_frames,)`` float32 weight of an edit over ``[start, end)`` with smoothstep ease-in/out (module doc).

    ``end`` -1 or past the end means to the end; a range starting past the end gives all zeros.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    s, e = _resolve_range(num_frames, start, end)
    return _weights(num_frames, s, e, ease_in, ease_out)


def _weights(num_frames: int, s: int, e: int, ease_in: int, ease_out: int) -> torch.Tensor:
    """:func:`ease_weights` for a resolved range ``0 <= s <= e <= num_frames``."""
    i = torch.arange(num_frames, dtype=torch.float64)
    w = ((i >= s) & (i < e)).double()
    if ease_in > 0:
        ramp = _smoothstep((i - s + 1) / (ease_in + 1))
        w = torch.where((i >= s) & (i < s + ease_in), torch.minimum(w, ramp), w)
    if ease_out > 0:
        ramp = _smoothstep((e - i) / (ease_out + 1))
        w = torch.where((i >= e - ease_out) & (i < e), torch.minimum(w, ramp), w)
    return w.float()


def smooth_pose(motion: torch.Tensor, width: int) -> torch.Tensor:
    """Centred moving average of width ``width`` over dims 0:202 (scale, pose logits, t) of ``(N, 265)``, the
    window truncated at the ends (the official ``Audio2Motion._smo``); ``exp`` is unchanged. Returns a new tensor."""
    out = motion.clone()
    if width <= 1:
        return out
    n, half = motion.shape[0], width // 2
    x = motion[:, SMOOTH_DIMS].double()
    csum = torch.cat([torch.zeros(1, x.shape[1], dtype=x.dtype), x.cumsum(0)])
    i = torch.arange(n)
    lo, hi = (i - half).clamp(min=0), (i + half + 1).clamp(max=n)
    out[:, SMOOTH_DIMS] = ((csum[hi] - csum[lo]) / (hi - lo)[:, None].double()).to(motion.dtype)
    return out


def _silence_mask(vad: torch.Tensor, threshold: float, width: int = 5) -> torch.Tensor:
    """(N,) in [0, 1]: 1 where the voice activity is below ``threshold``, smoothed by a centred mean of ``width``."""
    silent = (vad < threshold).double()
    n, half = silent.shape[0], width // 2
    csum = torch.cat([torch.zeros(1, dtype=silent.dtype), silent.cumsum(0)])
    i = torch.arange(n)
    lo, hi = (i - half).clamp(min=0), (i + half + 1).clamp(max=n)
    return ((csum[hi] - csum[lo]) / (hi - lo).double()).float()


def _fade_ramp(n: int, start: int, end: int, fade_in: int, fade_out: int) -> torch.Tensor:
    """(N,) fade alpha inside ``[start, end)``: the official ``setup_Nd`` ramps measured from the range's ends."""
    a = torch.ones(n, dtype=torch.float64)
    if fade_in > 0:
        for i in range(start, min(start + fade_in, end)):
            a[i] = (i - start) / fade_in
    if fade_out > 0:
        ss, ee = end - fade_out - 1, end - 1
        for i in range(max(ss, start), end):
            a[i] = min(a[i].item(), max((ee - i) / (ee - ss), 0.0))
    return a.float()


@dataclass
class ClipControls:
    """Whole-clip controls shared by the offline job and the stream (``GenerateOptions``, ``StreamOptions``).

    ``mouth`` / ``head``: amplitudes, >= 0 (1 = as generated); ``pitch`` / ``yaw`` / ``roll``: offsets in degrees;
    ``blink``: frames between blinks (0 = none, None = the models' default); ``drive_eye``: None = official
    (driven for an image source, not for a video), False keeps the source's eyes; ``fade_in``: frames from the
    source expression at the start. Checked on construction (ValueError naming the field).
    """

    mouth: float = 1.0
    head: float = 1.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    blink: int | None = None
    drive_eye: bool | None = None
    fade_in: int = 0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("mouth", "head"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{owner}.{name} must be a finite amplitude >= 0, got {v!r}")
        for name in ("pitch", "yaw", "roll"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{owner}.{name} must be a finite number of degrees, got {v!r}")
        if self.blink is not None and int(self.blink) < 0:
            raise ValueError(f"{owner}.blink must be None, 0 (no blinks) or frames between blinks, got {self.blink}")
        if int(self.fade_in) < 0:
            raise ValueError(f"{owner}.fade_in must be >= 0 frames, got {self.fade_in}")

    def edit_options(self, fade_out: int = 0) -> EditOptions:
        """These controls as one whole-clip :class:`EditOptions` (``drive_eye`` is not an edit: the caller sets it
        on the Motion)."""
        return EditOptions(
            pitch=self.pitch, yaw=self.yaw, roll=self.roll, head_amplitude=self.head, mouth_amplitude=self.mouth,
            blink_interval=-1 if self.blink is None else int(self.blink), fade_in=int(self.fade_in),
            fade_out=int(fade_out),
        )


def apply_edit(motion: Motion, options: EditOptions) -> Motion:
    """A new Motion with ``options`` applied on top of ``motion`` (which is not modified). See the module doc."""
    if not isinstance(motion, Motion):
        raise ValueError(f"apply_edit: motion must be a Motion, got {type(motion).__name__}")
    if not isinstance(options, EditOptions):
        raise ValueError(f"apply_edit: options must be an EditOptions, got {type(options).__name__}")
    out = motion.copy()
    n = out.num_frames
    s, e = _resolve_range(n, options.start, options.end)
    w = _weights(n, s, e, options.ease_in, options.ease_out)

    for name in ("pitch", "yaw", "roll"):
        v = getattr(options, name)
        if v != 0:
            setattr(out, f"delta_{name}", getattr(out, f"delta_{name}") + w * v)
    for name in ("head_amplitude", "mouth_amplitude", "expression"):
        v = getattr(options, name)
        if v != 1:
            setattr(out, name, getattr(out, name) * (1 + w * (v - 1)))
    if options.relax_on_silence > 0:
        silent = _silence_mask(out.vad, options.silence_threshold)
        out.vad_alpha = (out.vad_alpha * (1 - w * options.relax_on_silence * silent)).clamp(0, 1)
    if options.fade_in > 0 or options.fade_out > 0:
        out.fade_alpha = out.fade_alpha * _fade_ramp(n, s, e, options.fade_in, options.fade_out)
    if options.smoothing > 1:
        sm = smooth_pose(out.motion, options.smoothing)
        out.motion = out.motion + w[:, None] * (sm - out.motion)
    if options.blink_interval >= 0:
        out.blink_interval = options.blink_interval
    if options.gaze_fix != "keep":
        out.gaze_fix = options.gaze_fix == "on"
    summary = options.summary()
    if summary and e > s:
        out.edits = [*out.edits, EditRange(s, e, options.label or summary)]
    return out


def shaped_motion(motion: Motion) -> torch.Tensor:
    """``(N, 265)`` motion with head amplitude, mouth amplitude and expression baked in (deviation from frame 0
    scaled per frame); frame 0 is unchanged, so the stitcher's relative reference ``d0`` stays the same."""
    m = motion.motion.clone()
    d0 = m[:1]

    def _scale(x: torch.Tensor, ref: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # a factor of exactly 1 leaves the value bit-identical (the official path stays exact)
        return torch.where(w == 1, x, ref + (x - ref) * w)

    m[:, HEAD_DIMS] = _scale(m[:, HEAD_DIMS], d0[:, HEAD_DIMS], motion.head_amplitude[:, None])
    w = motion.expression[:, None].repeat(1, 63)
    w[:, list(LIP_DIMS)] *= motion.mouth_amplitude[:, None]
    m[:, EXP] = _scale(m[:, EXP], d0[:, EXP], w)
    return m


def to_stitch_inputs(motion: Motion, is_image: bool, base: Any = None) -> tuple[torch.Tensor, Any, list[dict[str, Any]]]:
    """What the stitcher needs for this Motion: ``(motion (N, 265), StitchConfig, ctrls)``.

    Args:
        motion: the performance.
        is_image: image source (True) or video source (False); used to check the settings.
        base: the :class:`ditto_core.stitch.StitchConfig` of the models (e.g. built from the config pickle's
            ``default_kwargs``: blink template, ``overall_ctrl_info``); None = the official defaults.

    Returns:
        the motion with amplitudes baked in (:func:`shaped_motion`), a StitchConfig derived from ``base``
        (``num_frames`` = N; blink interval, ``gaze_fix`` and ``drive_eye`` from the Motion; ``fade_type`` "s" when the
        Motion fades and ``base`` has none), and one ctrl dict per frame holding only non-identity controls
        (``delta_pitch/yaw/roll``, ``vad_alpha``, ``fade_alpha``). Controls that ``base.overall_ctrl_info`` also
        sets are combined with it (offsets added, alphas multiplied) instead of overriding it.
    """
    from .stitch import StitchConfig

    if base is None:
        base = StitchConfig()
    if not isinstance(base, StitchConfig):
        raise ValueError(f"to_stitch_inputs: base must be a StitchConfig or None, got {type(base).__name__}")
    n = motion.num_frames
    changes: dict[str, Any] = {"num_frames": n}
    if motion.blink_interval is not None:
        changes["delta_eye_open_n"] = -1 if motion.blink_interval == 0 else motion.blink_interval
    if motion.drive_eye is not None:
        changes["drive_eye"] = motion.drive_eye
    if motion.gaze_fix is not None:
        changes["gaze_fix"] = motion.gaze_fix
    fades = bool((motion.fade_alpha < 1).any())
    if fades and not base.fade_type:
        changes["fade_type"] = "s"
    overall = dict(base.overall_ctrl_info)
    cfg = dataclasses.replace(base, **changes)

    ctrls: list[dict[str, Any]] = []
    dp, dy, dr = motion.delta_pitch.tolist(), motion.delta_yaw.tolist(), motion.delta_roll.tolist()
    va, fa = motion.vad_alpha.tolist(), motion.fade_alpha.tolist()
    for i in range(n):
        c: dict[str, Any] = {}
        for key, v in (("delta_pitch", dp[i]), ("delta_yaw", dy[i]), ("delta_roll", dr[i])):
            if v != 0:
                c[key] = float(overall.get(key, 0.0)) + v
        for key, v in (("vad_alpha", va[i]), ("fade_alpha", fa[i])):
            if v != 1:
                c[key] = float(overall.get(key, 1.0)) * v
        ctrls.append(c)
    return shaped_motion(motion), cfg, ctrls


def motion_curves(motion: Motion, max_points: int = 2000) -> dict[str, Any]:
    """What the web extension draws: per-frame yaw/pitch/roll (degrees) and mouth activity, plus the edits.

    * pose: degrees of the motion's own (amplitude-scaled) pose logits plus the ``delta_*`` offsets;
    * mouth: mean |offset| of the 18 lip-keypoint ``exp`` values from the source. Under relative motion (the
      official default) the stitched lip exp is ``source + (m - m0)``, so the offset is ``m - m0`` whatever the
      source is; it is scaled by ``vad_alpha`` and ``fade_alpha`` as the stitcher blends toward the source.

    Series longer than ``max_points`` are subsampled every ``step`` frames. JSON-ready (lists of floats).
    """
    m = shaped_motion(motion)
    n = motion.num_frames
    pose = {
        "yaw": bins_to_degrees(m[:, YAW]) + motion.delta_yaw,
        "pitch": bins_to_degrees(m[:, PITCH]) + motion.delta_pitch,
        "roll": bins_to_degrees(m[:, ROLL]) + motion.delta_roll,
    }
    lips = m[:, EXP][:, list(LIP_DIMS)]
    mouth = (lips - lips[:1]).abs().mean(1) * motion.vad_alpha * motion.fade_alpha
    step = max(1, math.ceil(n / max(1, max_points)))

    def _ser(t: torch.Tensor, nd: int) -> list[float]:
        return [round(float(v), nd) for v in t[::step].tolist()]

    return {
        "frames": n,
        "fps": motion.fps,
        "step": step,
        "yaw": _ser(pose["yaw"], 3),
        "pitch": _ser(pose["pitch"], 3),
        "roll": _ser(pose["roll"], 3),
        "mouth": _ser(mouth, 6),
        "edits": [e.to_dict() for e in motion.edits],
    }


# --------------------------------------------------------------------------------------------- files
_TENSOR_KEYS = ("motion", "vad", *CONTROL_NAMES)


def save_motion(path: str | os.PathLike[str], motion: Motion) -> Path:
    """Write ``motion`` as safetensors; returns the path.

    Tensors (float32): ``motion`` (N, 265) [scale-1 | pitch/yaw/roll 66-bin logits | t | exp], ``vad`` (N,),
    ``delta_pitch``/``delta_yaw``/``delta_roll`` (N,) degrees, ``head_amplitude``/``mouth_amplitude``/
    ``expression`` (N,) factors, ``vad_alpha``/``fade_alpha`` (N,) in [0, 1].
    Metadata (strings): ``format`` = "ditto-motion", ``format_version`` = "1", ``fps``, ``smoothing``,
    ``blink_interval``/``gaze_fix``/``drive_eye`` (JSON: null, a number or a bool), ``edits`` (JSON list of
    ``{start, end, label}``), ``meta`` (JSON object of strings).
    """
    from safetensors.torch import save_file

    if not isinstance(motion, Motion):
        raise ValueError(f"save_motion: expected a Motion, got {type(motion).__name__}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(motion, k).contiguous() for k in _TENSOR_KEYS}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "fps": repr(motion.fps),
        "smoothing": str(motion.smoothing),
        "blink_interval": json.dumps(motion.blink_interval),
        "gaze_fix": json.dumps(motion.gaze_fix),
        "drive_eye": json.dumps(motion.drive_eye),
        "edits": json.dumps([e.to_dict() for e in motion.edits]),
        "meta": json.dumps(motion.meta),
    }
    tmp = p.with_name(p.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, p)
    return p


def load_motion(path: str | os.PathLike[str]) -> Motion:
    """Read a motion written by :func:`save_motion`. Raises :class:`MotionFormatError` for a file that is not a
    Ditto motion or has a format version other than :data:`FORMAT_VERSION`, ``FileNotFoundError`` if missing."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"motion file {str(p)!r} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            if meta.get("format") != FORMAT_NAME:
                raise MotionFormatError(
                    f"{p.name} is not a Ditto motion file (metadata format={meta.get('format')!r}, expected {FORMAT_NAME!r})"
                )
            version = meta.get("format_version", "")
            if not version.isdigit():
                raise MotionFormatError(f"{p.name}: missing or invalid format_version {version!r}")
            if int(version) > FORMAT_VERSION:
                raise MotionFormatError(
                    f"{p.name} has motion format version {version}, newer than this ComfyUI-Ditto reads "
                    f"({FORMAT_VERSION}); update the node pack"
                )
            if int(version) < FORMAT_VERSION:
                raise MotionFormatError(
                    f"{p.name} has the old motion format version {version}; this ComfyUI-Ditto reads version "
                    f"{FORMAT_VERSION} only: re-generate and save the motion again"
                )
            missing = [k for k in _TENSOR_KEYS if k not in keys]
            if missing:
                raise MotionFormatError(f"{p.name} is missing the tensors {missing}")
            tensors = {k: f.get_tensor(k) for k in _TENSOR_KEYS}
    except SafetensorError as e:
        raise MotionFormatError(f"{p.name} is not a readable safetensors file: {e}") from e

    try:
        kw: dict[str, Any] = dict(tensors)
        kw["fps"] = float(meta.get("fps", FPS))
        kw["smoothing"] = int(meta.get("smoothing", "3"))
        for name in ("blink_interval", "gaze_fix", "drive_eye"):
            kw[name] = json.loads(meta.get(name, "null"))
        kw["edits"] = [EditRange(int(e["start"]), int(e["end"]), str(e.get("label", ""))) for e in json.loads(meta.get("edits", "[]"))]
        kw["meta"] = json.loads(meta.get("meta", "{}"))
        return Motion(**kw)
    except (ValueError, TypeError, KeyError) as e:
        raise MotionFormatError(f"{p.name}: invalid motion data: {e}") from e
