"""User edits of a performance: frame ranges with easing -> a new :class:`~ditto_core.motion.track.Motion`.

:func:`apply_edit` returns a new Motion with one :class:`EditOptions` applied (the input is never changed), so edits
stack: chaining several edits keyframes a performance. The per-frame arrays it writes are the Motion's controls
(see :mod:`ditto_core.motion.controls` for how the stitcher applies them):

* ``delta_pitch/yaw/roll`` (degrees, additive);
* ``head_amplitude`` (multiplicative, 1 = as generated): scales the deviation of the pose logits and ``t`` from the
  reference frame. Under relative motion a constant amplitude ``a`` gives exactly the official
  ``use_d_keys = {pitch: a, yaw: a, roll: a, t: a}``;
* ``mouth_amplitude`` (multiplicative): the same on the lip keypoints' ``exp`` (keypoints 6, 12, 14, 17, 19, 20);
* ``expression`` (multiplicative): the same on all 63 ``exp`` values (the stitcher drives the lip keypoints, and the
  eye keypoints when the eyes are driven, so this scales lip and eye motion together);
* ``vad_alpha`` (multiplicative, 1 = off): < 1 blends all ``exp`` toward the source; set by relax-on-silence from
  the voice activity ``vad`` (RMS of each 40 ms of audio);
* ``fade_alpha`` (multiplicative, 1 = off): fades ``exp`` toward the source; ramps as the official ``setup_Nd``.

Clip-wide settings (the last edit that sets one wins; the frame range does not apply to them): ``blink_interval``
(-1 keeps it; 0 = no blinks, > 0 frames between blinks) and ``gaze_fix`` ("keep", "on", "off").

Temporal smoothing is applied to the motion tensor itself (the official centred mean over dims 0:202).

Frame ranges are ``[start, end)`` in frames at 25 fps; ``end = -1`` means to the end; a range past the end of a
shorter clip is clipped (a range starting after the last frame changes no frame), so one keyframed chain works on
clips of any length. Easing: the first ``ease_in`` frames of a range ramp the edit's weight up with smoothstep
``t^2 (3 - 2t)`` at ``t = (i - start + 1) / (ease_in + 1)``, the last ``ease_out`` frames ramp it down symmetrically
(``t = (end - i) / (ease_out + 1)``); elsewhere in the range the weight is 1 and outside it 0. An edit acts with its
weight ``w``: offsets add ``w * offset``, factors multiply by ``1 + w * (factor - 1)``, smoothing moves the motion
``w`` of the way toward its smoothed version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .._util import moving_average
from ..validate import OptionError, check_choice, check_int, check_number
from .controls import MAX_AMPLITUDE, MAX_FRAMES, MAX_POSE_DEGREES, fade_ramp
from .track import EditRange, Motion
from .vector import POSE_DIMS

log = logging.getLogger(__name__)

__all__ = ["GAZE_FIX_MODES", "EditOptions", "apply_edit", "ease_weights", "smooth_pose"]

#: EditOptions.gaze_fix values: keep the current setting, force on, force off
GAZE_FIX_MODES = ("keep", "on", "off")


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
        o = "EditOptions."
        for name, lo in (("start", 0), ("end", -1), ("ease_in", 0), ("ease_out", 0), ("fade_in", 0), ("fade_out", 0),
                         ("smoothing", 1), ("blink_interval", -1)):
            setattr(self, name, check_int(o + name, getattr(self, name), lo, MAX_FRAMES))
        if self.end != -1 and self.end <= self.start:
            raise OptionError(o + "end", f"-1 (to the end) or greater than the start ({self.start})", self.end)
        for name in ("pitch", "yaw", "roll"):
            setattr(self, name, check_number(o + name, getattr(self, name), -MAX_POSE_DEGREES, MAX_POSE_DEGREES))
        for name in ("head_amplitude", "mouth_amplitude", "expression"):
            setattr(self, name, check_number(o + name, getattr(self, name), 0.0, MAX_AMPLITUDE))
        self.relax_on_silence = check_number(o + "relax_on_silence", self.relax_on_silence, 0.0, 1.0)
        self.silence_threshold = check_number(o + "silence_threshold", self.silence_threshold, 0.0, 1.0)
        check_choice(o + "gaze_fix", self.gaze_fix, GAZE_FIX_MODES)
        if not isinstance(self.label, str):
            raise OptionError(o + "label", "a string", self.label)

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
    out[:, POSE_DIMS] = moving_average(motion[:, POSE_DIMS], width)
    return out


def _silence_mask(vad: torch.Tensor, threshold: float, width: int = 5) -> torch.Tensor:
    """(N,) in [0, 1]: 1 where the voice activity is below ``threshold``, smoothed by a centred mean of ``width``."""
    return moving_average((vad < threshold).double(), width).float()


def range_warning(num_frames: int, options: EditOptions) -> str | None:
    """What is wrong with the edit's frame range on a clip of ``num_frames`` frames, or None: a range that starts
    past the clip changes no frame; one that ends past it runs to the end of the clip. Warnings, not errors: a saved
    workflow's keyframes may meet a shorter clip."""
    n = int(num_frames)
    if options.start >= n:
        return (f"start frame {options.start} is past the clip's {n} frames: this edit changes no frame (its "
                "clip-wide settings still apply)")
    if options.end > n:
        return f"end frame {options.end} is past the clip's {n} frames: the edit runs to the end of the clip"
    return None


def apply_edit(motion: Motion, options: EditOptions) -> Motion:
    """A new Motion with ``options`` applied on top of ``motion`` (which is not changed). See the module doc.

    A range that starts past the clip changes no frame, one that ends past it runs to the end of the clip; both log a
    warning (a saved workflow's keyframes may meet a shorter clip)."""
    if not isinstance(motion, Motion):
        raise ValueError(f"apply_edit: motion must be a Motion, got {type(motion).__name__}")
    if not isinstance(options, EditOptions):
        raise ValueError(f"apply_edit: options must be an EditOptions, got {type(options).__name__}")
    n = motion.num_frames
    warning = range_warning(n, options)
    if warning is not None:
        log.warning("Ditto edit: %s", warning)
    s, e = _resolve_range(n, options.start, options.end)
    w = _weights(n, s, e, options.ease_in, options.ease_out)
    changes: dict[str, object] = {}
    for name in ("pitch", "yaw", "roll"):
        v = getattr(options, name)
        if v != 0:
            changes[f"delta_{name}"] = getattr(motion, f"delta_{name}") + w * v
    for name in ("head_amplitude", "mouth_amplitude", "expression"):
        v = getattr(options, name)
        if v != 1:
            changes[name] = getattr(motion, name) * (1 + w * (v - 1))
    if options.relax_on_silence > 0:
        silent = _silence_mask(motion.vad, options.silence_threshold)
        changes["vad_alpha"] = (motion.vad_alpha * (1 - w * options.relax_on_silence * silent)).clamp(0, 1)
    if options.fade_in > 0 or options.fade_out > 0:
        ramp = fade_ramp(torch.arange(n), s, e, options.fade_in, options.fade_out).float()
        changes["fade_alpha"] = motion.fade_alpha * ramp
    if options.smoothing > 1:
        sm = smooth_pose(motion.motion, options.smoothing)
        changes["motion"] = motion.motion + w[:, None] * (sm - motion.motion)
    if options.blink_interval >= 0:
        changes["blink_interval"] = options.blink_interval
    if options.gaze_fix != "keep":
        changes["gaze_fix"] = options.gaze_fix == "on"
    summary = options.summary()
    if summary and e > s:
        changes["edits"] = (*motion.edits, EditRange(s, e, options.label or summary))
    return motion.replace(**changes)
