"""The motion track: what any motion source produces and the renderer consumes, and its file format.

A :class:`Motion` is ``(N, 265)`` motion frames at ``fps`` (the layout of :mod:`ditto_core.motion.vector`: scale - 1,
pose as 66-bin logits, t, exp), per-frame control arrays (the editable part of :class:`ditto_core.motion.controls.
FrameControls`), whole-clip settings and free-form metadata. The DiT sampler produces one; edits
(:mod:`ditto_core.motion.edit`) return new ones; :func:`save_motion` / :func:`load_motion` keep one on disk.
Immutable: every change makes a new Motion.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .controls import ClipSettings, FrameControls
from .parts import parse_parts
from .vector import MOTION_DIM
from .._util import set_ordinary_mode
from ..errors import InputError
from ..validate import OptionError, check_bool, check_int, check_number

__all__ = [
    "CONTROL_NAMES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FPS",
    "MIN_FORMAT_VERSION",
    "EditRange",
    "Motion",
    "MotionFormatError",
    "load_motion",
    "save_motion",
]

#: version of the saved-motion file format (see :func:`save_motion`); 2 added ``parts`` and ``relative``
FORMAT_VERSION = 2
#: the oldest format version :func:`load_motion` reads (version 1 files drive the official parts, relatively)
MIN_FORMAT_VERSION = 1
#: value of the ``format`` metadata entry of a saved motion
FORMAT_NAME = "ditto-motion"
FPS = 25.0
#: frame rates a motion may carry (Ditto makes 25 fps)
MIN_FPS, MAX_FPS = 1.0, 240.0
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


class MotionFormatError(InputError):
    """A file that is not a Ditto motion, or one written in a format version this code cannot read."""


@dataclass(frozen=True)
class EditRange:
    """One applied edit for the UI: frames ``[start, end)`` (end resolved, never -1) and a short label."""

    start: int
    end: int
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_int("EditRange.start", self.start, 0))
        object.__setattr__(self, "end", check_int("EditRange.end", self.end, 0))
        if not isinstance(self.label, str):
            raise OptionError("EditRange.label", "a string", self.label)

    def to_dict(self) -> dict[str, Any]:
        return {"start": int(self.start), "end": int(self.end), "label": str(self.label)}


def _vector(value: Any, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value).detach().to("cpu", torch.float32)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"Motion.{name} must be ({n},) (one value per frame), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"Motion.{name} has non-finite values")
    return t.contiguous()


@dataclass(frozen=True)
class Motion:
    """A performance: motion frames + per-frame controls + clip-wide settings. Kept on the CPU in float32.

    Attributes:
        motion: ``(N, 265)`` motion frames (scale-1 | pitch/yaw/roll 66-bin logits | t | exp).
        vad: ``(N,)`` voice activity, RMS of each 40 ms of the 16 kHz audio (full scale 1.0); zeros if unknown.
        delta_pitch, delta_yaw, delta_roll: ``(N,)`` head pose offsets in degrees.
        head_amplitude, mouth_amplitude, expression: ``(N,)`` factors (1 = as generated).
        vad_alpha, fade_alpha: ``(N,)`` in [0, 1] (1 = off).
        blink_interval: None (the release's default), 0 (no blinks) or frames between blinks.
        gaze_fix: None (official: with driven eyes), True or False.
        drive_eye: None (official: True for an image source, False for a video), True or False.
        reference: ``(265,)`` the relative-motion reference frame (the streaming session's ``d0``, a driving video's
            first frame); None = frame 0.
        parts: what the motion drives (:mod:`ditto_core.motion.parts`): None = the official behaviour (a DiT
            motion), else part names such as ``("head_pose", "translation", "expression")``.
        relative: drive by the change since ``reference`` (official, and LivePortrait's relative mode: the source
            keeps its own proportions) or, False, by the motion's absolute values (the driving face's expression
            and pose replace the source's).
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
    reference: torch.Tensor | None = None
    parts: tuple[str, ...] | None = None
    relative: bool = True
    smoothing: int = 3
    edits: tuple[EditRange, ...] = ()
    fps: float = FPS
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        m = torch.as_tensor(self.motion).detach().to("cpu", torch.float32)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM or m.shape[0] < 1:
            raise ValueError(f"Motion.motion must be (N, {MOTION_DIM}) with N >= 1, got shape {tuple(m.shape)}")
        if not torch.isfinite(m).all():
            raise ValueError("Motion.motion has non-finite values")
        put("motion", m.contiguous())
        n = m.shape[0]
        put("vad", torch.zeros(n) if self.vad is None else _vector(self.vad, n, "vad"))
        for name, identity in CONTROL_NAMES.items():
            v = getattr(self, name)
            put(name, torch.full((n,), identity) if v is None else _vector(v, n, name))
        for name in ("vad_alpha", "fade_alpha"):
            v = getattr(self, name)
            if (v < 0).any() or (v > 1).any():
                raise ValueError(f"Motion.{name} must lie in [0, 1]")
        for name in ("head_amplitude", "mouth_amplitude", "expression"):
            if (getattr(self, name) < 0).any():
                raise ValueError(f"Motion.{name} must be >= 0")
        settings = ClipSettings(self.blink_interval, self.drive_eye, self.gaze_fix)
        settings._check("Motion.")
        put("blink_interval", settings.blink_interval)
        if self.reference is not None:
            ref = torch.as_tensor(self.reference).detach().to("cpu", torch.float32).reshape(-1)
            if ref.shape[0] != MOTION_DIM or not torch.isfinite(ref).all():
                raise ValueError(f"Motion.reference must be ({MOTION_DIM},) finite values or None, got {tuple(ref.shape)}")
            put("reference", ref.contiguous())
        put("parts", parse_parts(self.parts, "Motion.parts"))
        put("relative", check_bool("Motion.relative", self.relative))
        put("fps", check_number("Motion.fps", self.fps, MIN_FPS, MAX_FPS))
        put("smoothing", check_int("Motion.smoothing", self.smoothing, 0, 1001))
        put("edits", tuple(e if isinstance(e, EditRange) else EditRange(**e) for e in self.edits))
        for e in self.edits:
            if not 0 <= e.start < e.end <= n:
                raise OptionError("Motion.edits", f"ranges with 0 <= start < end <= {n} (the frames)", e.to_dict())
        put("meta", {str(k): str(v) for k, v in self.meta.items()})

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_frames / self.fps

    @property
    def settings(self) -> ClipSettings:
        """The clip-wide stitcher settings this motion sets (None: the release's)."""
        return ClipSettings(self.blink_interval, self.drive_eye, self.gaze_fix)

    @property
    def reference_frame(self) -> torch.Tensor:
        """``(265,)`` the frame relative motion is measured from: :attr:`reference`, else frame 0."""
        return self.motion[0].clone() if self.reference is None else self.reference

    def controls(self) -> dict[str, torch.Tensor]:
        """The per-frame control arrays by name."""
        return {name: getattr(self, name) for name in CONTROL_NAMES}

    def frame_controls(self, start: int = 0, stop: int | None = None) -> FrameControls:
        """The per-frame controls of frames ``[start, stop)`` as the stitcher takes them: offsets of 0 and fades
        of 1 are "absent" (NaN), so an unedited motion stitches exactly as the official code."""
        stop = self.num_frames if stop is None else int(stop)
        nan = float("nan")
        kw: dict[str, torch.Tensor] = {}
        for name, identity in CONTROL_NAMES.items():
            v = getattr(self, name)[start:stop]
            if bool((v == identity).all()):
                continue
            if name.startswith("delta_") or name == "fade_alpha":
                v = torch.where(v == identity, torch.full_like(v, nan), v)
            kw[name] = v
        return FrameControls(stop - start, **kw)

    def replace(self, **changes: Any) -> Motion:
        """A new Motion with ``changes`` (this one is unchanged)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        return f"Motion({self.num_frames} frames at {self.fps:g} fps, {len(self.edits)} edits)"


# --------------------------------------------------------------------------------------------- files
_TENSOR_KEYS = ("motion", "vad", *CONTROL_NAMES)


def save_motion(path: str | os.PathLike[str], motion: Motion) -> Path:
    """Write ``motion`` as safetensors; returns the path.

    Tensors (float32): ``motion`` (N, 265) [scale-1 | pitch/yaw/roll 66-bin logits | t | exp], ``vad`` (N,),
    ``delta_pitch``/``delta_yaw``/``delta_roll`` (N,) degrees, ``head_amplitude``/``mouth_amplitude``/
    ``expression`` (N,) factors, ``vad_alpha``/``fade_alpha`` (N,) in [0, 1]; optional ``reference`` (265,).
    Metadata (strings): ``format`` = "ditto-motion", ``format_version`` = "1", ``fps``, ``smoothing``,
    ``blink_interval``/``gaze_fix``/``drive_eye`` (JSON: null, a number or a bool), ``parts`` (JSON: null or a list
    of part names), ``relative`` (JSON bool), ``edits`` (JSON list of ``{start, end, label}``), ``meta`` (JSON object
    of strings).
    """
    from safetensors.torch import save_file

    if not isinstance(motion, Motion):
        raise ValueError(f"save_motion: expected a Motion, got {type(motion).__name__}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(motion, k).contiguous() for k in _TENSOR_KEYS}
    if motion.reference is not None:
        tensors["reference"] = motion.reference.contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "parts": json.dumps(None if motion.parts is None else list(motion.parts)),
        "relative": json.dumps(motion.relative),
        "fps": repr(motion.fps),
        "smoothing": str(motion.smoothing),
        "blink_interval": json.dumps(motion.blink_interval),
        "gaze_fix": json.dumps(motion.gaze_fix),
        "drive_eye": json.dumps(motion.drive_eye),
        "edits": json.dumps([e.to_dict() for e in motion.edits]),
        "meta": json.dumps(motion.meta),
    }
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        set_ordinary_mode(tmp)  # safetensors makes its file 0600
        os.replace(tmp, p)
    except BaseException:  # an error or a signal: nothing half-written is left, an existing file is kept
        tmp.unlink(missing_ok=True)
        raise
    return p


def load_motion(path: str | os.PathLike[str]) -> Motion:
    """Read a motion written by :func:`save_motion`. Raises :class:`MotionFormatError` for a file that is not a
    Ditto motion or has a format version outside :data:`MIN_FORMAT_VERSION` .. :data:`FORMAT_VERSION`,
    ``FileNotFoundError`` if missing."""
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
            if int(version) < MIN_FORMAT_VERSION:
                raise MotionFormatError(
                    f"{p.name} has the old motion format version {version}; this ComfyUI-Ditto reads versions "
                    f"{MIN_FORMAT_VERSION}-{FORMAT_VERSION}: re-generate and save the motion again"
                )
            missing = [k for k in _TENSOR_KEYS if k not in keys]
            if missing:
                raise MotionFormatError(f"{p.name} is missing the tensors {missing}")
            tensors = {k: f.get_tensor(k) for k in _TENSOR_KEYS}
            if "reference" in keys:
                tensors["reference"] = f.get_tensor("reference")
    except SafetensorError as e:
        raise MotionFormatError(f"{p.name} is not a readable safetensors file: {e}") from e

    def number(key: str, default: str, parse: Callable[[str], Any]) -> Any:
        text = meta.get(key, default)
        try:
            return parse(text)
        except (ValueError, TypeError):
            raise MotionFormatError(f"{p.name}: {key} in the metadata must be a number, got {text!r}") from None

    def json_field(key: str, default: str) -> Any:
        try:
            return json.loads(meta.get(key, default))
        except ValueError:
            raise MotionFormatError(f"{p.name}: {key} in the metadata is not valid JSON: {meta.get(key)!r}") from None

    try:
        kw: dict[str, Any] = dict(tensors)
        kw["fps"] = number("fps", repr(FPS), float)
        kw["smoothing"] = number("smoothing", "3", int)
        for name in ("blink_interval", "gaze_fix", "drive_eye", "parts"):
            kw[name] = json_field(name, "null")
        kw["relative"] = json_field("relative", "true")
        edits = json_field("edits", "[]")
        if not isinstance(edits, list) or not all(isinstance(e, dict) and "start" in e and "end" in e for e in edits):
            raise MotionFormatError(f"{p.name}: edits in the metadata must be a list of {{start, end, label}}")
        kw["edits"] = [EditRange(e["start"], e["end"], e.get("label", "")) for e in edits]
        meta_obj = json_field("meta", "{}")
        if not isinstance(meta_obj, dict):
            raise MotionFormatError(f"{p.name}: meta in the metadata must be a JSON object")
        kw["meta"] = meta_obj
        return Motion(**kw)
    except OptionError as e:  # a value out of range: name it as the file spells it
        raise MotionFormatError(f"{p.name}: {e.renamed(e.name.split('.')[-1])} (in the motion file)") from None
    except (ValueError, TypeError) as e:
        if isinstance(e, MotionFormatError):
            raise
        raise MotionFormatError(f"{p.name}: invalid motion data: {e}") from None
