"""Motion stitching: motion frames + source motion + per-frame controls -> keypoints ``x_s``, ``x_d``.

Re-implements the official ``MotionStitch`` (``core/atomic_components/motion_stitch.py``) as it is driven by
``StreamSDK._motion_stitch_worker`` (offline and online pipelines), batched: :meth:`MotionStitcher.stitch_batch`
stitches N consecutive frames at once and carries the official per-utterance state from call to call, so the whole
clip at once (offline) and one hop at a time (streaming) give the same keypoints. Per frame, in this order:

1. relative motion: ``d0`` = the reference frame (the first stitched frame, or :meth:`~MotionStitcher.set_d0`); each
   driven key becomes ``src + (d - d0) * w * amplitude`` (pose logits are added as logits); keys outside
   :attr:`StitchConfig.driven_keys` (always ``scale`` and ``kp``) come from the source. Without ``relative`` a dict of
   weights multiplies the absolute values. The amplitudes (:class:`~ditto_core.motion.controls.FrameControls`
   ``head_amplitude`` on pose and ``t``, ``expression`` x ``mouth_amplitude`` on ``exp``) scale the deviation from
   the reference frame; 1 leaves the official numbers untouched.
2. expression: only lip keypoints (plus eye keypoints when the eyes are driven) are driven, the rest of ``exp`` is
   the source's; with a blink template the eye keypoints are ``src + blink_template[blink row]``.
3. ``vad_alpha`` < 1 blends all of ``exp`` toward the source.
4. ``delta_pitch/yaw/roll`` turn that pose entry into degrees and add; ``alpha_*`` multiply whatever is stored
   (logits unless a delta was applied first); ``delta_exp`` adds to ``exp``.
5. fade (:attr:`StitchConfig.fade_target` "first": toward the first frame after step 4; "source": toward the source)
   by ``fade_alpha`` on :attr:`StitchConfig.fade_keys`.
6. gaze fix (with driven eyes): eye keypoints follow the pose change relative to the source.
7. LivePortrait Eq. 2 (``transform_keypoint``), then the stitching MLP.

Pose entries are kept exactly as the official code keeps them: 66-bin logits, or one value in degrees once a
``delta_*`` control converted them. A fade mixing the two forms broadcasts the degrees over the 66 bins, as numpy does
there; this module reproduces that as well.

The settings use the product's names (:class:`StitchConfig`); :mod:`ditto_core.official` maps the official
``setup`` keywords and ctrl dicts onto them. Differences from the official code, all intentional:

* the blink schedule draws from a seedable ``random.Random`` (official: the unseeded global ``random``);
* the blink index and the video source frame come from the frame index (official: a call counter, which is the
  generated-frame index in both pipelines);
* :attr:`StitchConfig.gaze_fix` can decouple the gaze fix from the driven eyes (default: coupled, as official);
* per-frame amplitudes (no official counterpart; a constant one equals official ``use_d_keys`` weights).
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np
import torch

from ._util import mirror_index
from .devices import host_float64
from .motion.controls import ClipSettings, FrameControls, exp_amplitude, scale_deviation
from .motion.vector import (
    EYE_KPS,
    LIP_KPS,
    MOTION_DIM,
    MOTION_KEYS,
    NUM_BINS,
    NUM_KP,
    bins_to_degrees,
    dict_to_motion,
    motion_to_dict,
    transform_keypoint,
)

__all__ = [
    "BLINK_OPEN_MAX",
    "BLINK_OPEN_MIN",
    "FADE_TARGETS",
    "IMAGE_DRIVEN_KEYS",
    "SOURCE_DIMS",
    "VIDEO_DRIVEN_KEYS",
    "MotionStitcher",
    "StitchConfig",
    "blink_schedule",
]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float], float]
SourceInfo = Mapping[str, ArrayLike]

POSE_KEYS = ("pitch", "yaw", "roll")
#: the source motion (``x_s_info``): the six motion entries plus the canonical keypoints
SOURCE_DIMS = {"scale": 1, "pitch": NUM_BINS, "yaw": NUM_BINS, "roll": NUM_BINS, "t": 3, "exp": 3 * NUM_KP, "kp": 3 * NUM_KP}
#: keys driven by the motion by default (official ``use_d_keys``): image source, video source
IMAGE_DRIVEN_KEYS = ("exp", "pitch", "yaw", "roll", "t")
VIDEO_DRIVEN_KEYS = ("exp",)
#: where a fade goes: nowhere (fades off), the first stitched frame, the source
FADE_TARGETS = ("", "first", "source")
#: random gap between blinks (frames, inclusive) when ``blink_interval`` is None
BLINK_OPEN_MIN, BLINK_OPEN_MAX = 60, 100
#: blink schedule length when the number of frames is unknown (a stream)
DEFAULT_BLINK_FRAMES = 3000
#: gaze fix: degrees of pose change -> eye-keypoint offsets
GAZE_X_RATIO, GAZE_Y_RATIO = 0.26, 0.28
_SCALED_BY_CH = frozenset({"exp", "pitch", "yaw", "roll"})
_HEAD_KEYS = frozenset({"pitch", "yaw", "roll", "t"})


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class StitchConfig:
    """Stitcher settings (the official ``StreamSDK.setup`` stitching options under product names).

    Attributes:
        driven_keys: motion keys taken from the driving motion (official ``use_d_keys``). None: ``IMAGE_DRIVEN_KEYS``
            for an image source, ``VIDEO_DRIVEN_KEYS`` for a video; a dict ``{key: weight}`` also scales each key's
            delta.
        relative: drive by the change since the reference frame ``d0`` rather than absolute values (``relative_d``).
        drive_eye: drive the eye keypoints (None: True for an image, False for a video).
        gaze_fix: None (official) applies the gaze fix exactly when the eyes are driven; True/False force it.
        blink_template: ``(n, 63)`` exp offsets of one blink, added on the eye keypoints with driven eyes
            (``delta_eye_arr``); None: no blinks.
        blink_interval: frames between blinks: None = random 60-100 (the release's default), 0 = no blinks, ``n`` =
            fixed, a tuple = cycled (official list form: its first entry is the lead-in, its last sets the open tail).
        fade_target: "" (fades off), "first" (toward the first stitched frame) or "source" (``fade_type`` "", "d0", "s").
        fade_keys: motion keys a fade applies to (None = all; ``fade_out_keys``).
        stitching: apply the stitching MLP (``flag_stitching``).
        num_frames: frames of the clip (``N_d``), which sets the blink schedule; None = unknown (a stream: a
            3000-frame schedule).
        ch_scale: ``ch_info['x_s_info_lst'][0]['scale']`` of a foreign conditioning source, or None. When set, the
            weights of exp and pose are multiplied by ``ch_scale / source scale`` (official ``_set_scale_ratio``).
        exp_kps: the expression keypoints taken from the motion (of the 21), or None: the official lips. The eyes:
            with all eye keypoints in ``exp_kps``, the motion's own (no blink template, and no gaze fix unless
            ``gaze_fix`` is True); else as ``drive_eye`` says officially (the blink template on the source's eyes, or
            without a template the motion's eyes), except that ``official_eyes=False`` keeps the source's eyes where
            the official code would take the motion's. See :mod:`ditto_core.motion.parts`.
        official_eyes: see ``exp_kps`` (False for a selection of parts without the ``official`` token).
    """

    driven_keys: tuple[str, ...] | Mapping[str, float] | None = None
    relative: bool = True
    drive_eye: bool | None = None
    gaze_fix: bool | None = None
    blink_template: torch.Tensor | np.ndarray | None = None
    blink_interval: int | tuple[int, ...] | None = None
    fade_target: str = ""
    fade_keys: tuple[str, ...] | None = ("exp",)
    stitching: bool = True
    num_frames: int | None = None
    ch_scale: float | None = None
    exp_kps: tuple[int, ...] | None = None
    official_eyes: bool = True

    def __post_init__(self) -> None:
        if self.exp_kps is not None:
            kps = tuple(sorted({int(k) for k in self.exp_kps}))
            if any(not 0 <= k < NUM_KP for k in kps):
                raise ValueError(f"exp_kps must be keypoint indices 0..{NUM_KP - 1}, got {self.exp_kps!r}")
            object.__setattr__(self, "exp_kps", kps)
        if self.driven_keys is not None:
            keys = list(self.driven_keys.keys()) if isinstance(self.driven_keys, Mapping) else list(self.driven_keys)
            bad = [k for k in keys if k not in MOTION_KEYS]
            if isinstance(self.driven_keys, str) or bad:
                raise ValueError(f"driven_keys must name motion keys {MOTION_KEYS}, got {self.driven_keys!r}")
            if not isinstance(self.driven_keys, Mapping):
                object.__setattr__(self, "driven_keys", tuple(keys))
        if self.fade_target not in FADE_TARGETS:
            raise ValueError(f"fade_target must be one of {FADE_TARGETS}, got {self.fade_target!r}")
        if self.fade_keys is not None:
            if isinstance(self.fade_keys, str) or not all(k in MOTION_KEYS or k == "kp" for k in self.fade_keys):
                raise ValueError(f"fade_keys must be a sequence of motion keys {MOTION_KEYS}, got {self.fade_keys!r}")
            object.__setattr__(self, "fade_keys", tuple(self.fade_keys))
        _check_interval(self.blink_interval)
        if isinstance(self.blink_interval, list):
            object.__setattr__(self, "blink_interval", tuple(self.blink_interval))
        if self.blink_template is not None:
            shape = tuple(self.blink_template.shape)
            if len(shape) != 2 or shape[1] != 3 * NUM_KP or shape[0] < 1:
                raise ValueError(f"blink_template must be (n, 63) with n >= 1, got {shape}")
        n = self.num_frames
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"num_frames must be a positive int or None (unknown), got {n!r}")
        if self.ch_scale is not None and not (float(self.ch_scale) > 0):
            raise ValueError(f"ch_scale must be a positive scale, got {self.ch_scale!r}")

    def resolved_driven_keys(self, is_image: bool) -> tuple[str, ...] | dict[str, float]:
        if self.driven_keys is None:
            return IMAGE_DRIVEN_KEYS if is_image else VIDEO_DRIVEN_KEYS
        if isinstance(self.driven_keys, Mapping):
            return {k: float(v) for k, v in self.driven_keys.items()}
        return tuple(self.driven_keys)

    def resolved_drive_eye(self, is_image: bool) -> bool:
        return bool(is_image) if self.drive_eye is None else bool(self.drive_eye)

    @property
    def eyes_from_motion(self) -> bool:
        """All eye keypoints are taken from the motion (an explicit selection with the eyes)."""
        return self.exp_kps is not None and set(EYE_KPS) <= set(self.exp_kps)

    def resolved_gaze_fix(self, is_image: bool) -> bool:
        if self.gaze_fix is not None:
            return bool(self.gaze_fix)
        return False if self.eyes_from_motion else self.resolved_drive_eye(is_image)

    def with_settings(self, settings: ClipSettings) -> StitchConfig:
        """These settings with a motion's or a job's clip-wide ones (their None values keep these)."""
        changes: dict[str, Any] = {}
        if settings.blink_interval is not None:
            changes["blink_interval"] = int(settings.blink_interval)
        if settings.drive_eye is not None:
            changes["drive_eye"] = bool(settings.drive_eye)
        if settings.gaze_fix is not None:
            changes["gaze_fix"] = bool(settings.gaze_fix)
        return replace(self, **changes) if changes else self


def _check_interval(interval: Any) -> None:
    if interval is None:
        return
    if isinstance(interval, bool):
        raise ValueError(f"blink_interval must be None, an int or a list of ints, got {interval!r}")
    if isinstance(interval, numbers.Integral):
        if interval < 0:
            raise ValueError(f"blink_interval must be None, 0 (no blinks) or frames between blinks, got {interval}")
        return
    if isinstance(interval, (list, tuple)) and interval and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in interval
    ):
        return
    raise ValueError(f"blink_interval must be None, an int or a list of non-negative ints, got {interval!r}")


# --------------------------------------------------------------------------------------------- helpers
def blink_schedule(num_frames: int, blink_len: int, interval: int | Sequence[int] | None, rng: random.Random) -> list[int]:
    """Per-frame row of the blink template (official ``_set_eye_blink_idx``); 0 = eyes open.

    Blinks (rows ``0..blink_len-1``) start after ``interval`` frames and are separated by ``interval`` open frames:
    ``0`` none, ``None`` random gaps in [60, 100] drawn from ``rng``, an int a fixed gap, a sequence cycled (its first
    entry is the lead-in, its last sets the open tail). No blink starts within the tail.
    """
    _check_interval(interval)
    idx = [0] * num_frames
    if isinstance(interval, numbers.Integral):
        if interval == 0:
            return idx
        gaps = [int(interval)]
    else:
        gaps = [] if interval is None else [int(n) for n in interval]
    template = list(range(blink_len))
    first = gaps[0] if gaps else rng.randint(BLINK_OPEN_MIN, BLINK_OPEN_MAX)
    tail = gaps[-1] if gaps else rng.randint(BLINK_OPEN_MIN, BLINK_OPEN_MAX)
    last_start = num_frames - max(tail, blink_len)
    cur, k = first, 1
    while cur < last_start:
        idx[cur : cur + blink_len] = template
        if gaps:
            gap = gaps[k % len(gaps)]
            k += 1
        else:
            gap = rng.randint(BLINK_OPEN_MIN, BLINK_OPEN_MAX)
        cur += blink_len + gap
    return idx


# --------------------------------------------------------------------------------------------- stitcher
class MotionStitcher:
    """Stateful stitcher for one source (official ``MotionStitch`` after ``setup``).

    Args:
        source: the source motion ``x_s_info``: ``{scale (1,1), pitch/yaw/roll (1,66) logits, t (1,3),
            exp (1,63), kp (1,63)}`` (tensors or arrays; a leading 1 may be omitted). For a video source, a
            list of them, one per source frame (already smoothed); frame ``i`` uses the ping-pong index.
        is_image: image source (True) or video source (False).
        config: the settings, :class:`StitchConfig` defaults if None.
        stitch_net: the stitching network ``(B,21,3), (B,21,3) -> (B,21,3)``; required with ``config.stitching``.
        rng: blink-schedule randomness: a ``random.Random``, an int seed, or None (fresh unseeded generator).
        device, dtype: where and in which precision to compute (official: float32).
        d0: the reference frame (a ``(265,)`` motion or motion dict); None takes the first stitched frame.

    State kept across calls, as in the official code: ``d0``, the "first" fade destination (first frame after the
    controls), the source pose for the gaze fix and the image ``x_s``. Call :meth:`reset` to start a new utterance
    with the same source.
    """

    def __init__(
        self,
        source: SourceInfo | Sequence[SourceInfo],
        is_image: bool = True,
        config: StitchConfig | None = None,
        stitch_net: torch.nn.Module | None = None,
        rng: random.Random | int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        d0: torch.Tensor | Mapping[str, ArrayLike] | None = None,
    ) -> None:
        self.config = config if config is not None else StitchConfig()
        self.is_image = bool(is_image)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        sources = [source] if isinstance(source, Mapping) else list(source)
        if not sources:
            raise ValueError("source must be a source motion dict or a non-empty list of them")
        if self.is_image and len(sources) != 1:
            raise ValueError(f"an image source takes one source motion dict, got {len(sources)}")
        self._sources = [self._source_dict(s, f"source[{i}]") for i, s in enumerate(sources)]
        # (n_src, dim) stacks for batched gathers
        self._src_stack = {k: torch.cat([s[k] for s in self._sources], 0) for k in SOURCE_DIMS}
        cfg = self.config
        if cfg.stitching and stitch_net is None:
            raise ValueError("stitch_net is required when config.stitching is True")
        self.stitch_net = stitch_net
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)

        self.driven_keys = cfg.resolved_driven_keys(self.is_image)
        self.drive_eye = cfg.resolved_drive_eye(self.is_image)
        self.gaze_fix = cfg.resolved_gaze_fix(self.is_image)
        if cfg.ch_scale is not None:
            ratio = float(cfg.ch_scale) / float(self._sources[0]["scale"].reshape(()))
            if ratio != 1:
                if isinstance(self.driven_keys, dict):
                    self.driven_keys = {k: v * (ratio if k in _SCALED_BY_CH else 1) for k, v in self.driven_keys.items()}
                else:
                    self.driven_keys = {k: (ratio if k in _SCALED_BY_CH else 1.0) for k in self.driven_keys}

        self.blink_template = None if cfg.blink_template is None else self._tensor(cfg.blink_template).reshape(-1, 3 * NUM_KP)
        # exp = exp_d * a1 + exp_s * a2 + blink * a3   (official fix_exp_a1/a2/a3), each (63,)
        driven = torch.zeros(NUM_KP, 3, dtype=self.dtype, device=self.device)
        driven[list(LIP_KPS if cfg.exp_kps is None else cfg.exp_kps)] = 1
        eye = torch.zeros_like(driven)
        eye[list(EYE_KPS)] = 1
        a1, blink = driven, torch.zeros_like(driven)
        if self.drive_eye and not cfg.eyes_from_motion:
            if self.blink_template is not None:
                blink = eye
            elif cfg.exp_kps is None or cfg.official_eyes:  # official: driven eyes come from the motion
                a1 = torch.maximum(a1, eye)
        self._a1 = (a1 * (1 - blink)).reshape(-1)
        self._a2 = ((1 - a1) + a1 * blink).reshape(-1)
        self._a3 = blink.reshape(-1)
        self._uses_blinks = self.drive_eye and self.blink_template is not None and not cfg.eyes_from_motion

        self.num_frames = cfg.num_frames
        self.blink_idx: list[int] | None = None
        if self._uses_blinks:
            self._make_blinks()

        self.d0: dict[str, torch.Tensor] | None = None
        self._ref: dict[str, torch.Tensor] | None = None
        if d0 is not None:
            self.set_d0(d0)
        self.reset(keep_d0=True)

    # ----------------------------------------------------------------------------------- setup helpers
    def _tensor(self, v: ArrayLike) -> torch.Tensor:
        if isinstance(v, torch.Tensor):
            return v.detach().to(self.device, self.dtype)
        return torch.as_tensor(np.asarray(v), dtype=self.dtype, device=self.device)

    def _source_dict(self, info: SourceInfo, what: str) -> dict[str, torch.Tensor]:
        if not isinstance(info, Mapping):
            raise ValueError(f"{what} must be a dict with keys {tuple(SOURCE_DIMS)}, got {type(info).__name__}")
        out = {}
        for k, n in SOURCE_DIMS.items():
            if k not in info:
                raise ValueError(f"{what} is missing {k!r} (needs {tuple(SOURCE_DIMS)})")
            v = self._tensor(info[k])
            if v.numel() != n:
                raise ValueError(f"{what}[{k!r}] must hold {n} values (one frame), got shape {tuple(v.shape)}")
            out[k] = v.reshape(1, n)
        return out

    def _motion_rows(self, motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike]) -> torch.Tensor:
        """``(N, 265)`` on the stitcher's device from a tensor/array or one frame's motion dict."""
        if isinstance(motion, Mapping):
            rows = {}
            for k in MOTION_KEYS:
                if k not in motion:
                    raise ValueError(f"motion dict is missing {k!r} (needs {MOTION_KEYS})")
                v = self._tensor(motion[k])
                if v.numel() != SOURCE_DIMS[k]:
                    raise ValueError(f"motion[{k!r}] must hold {SOURCE_DIMS[k]} values, got shape {tuple(v.shape)}")
                rows[k] = v.reshape(1, -1)
            return dict_to_motion(rows)
        m = self._tensor(motion)
        if m.ndim == 1:
            m = m[None]
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise ValueError(f"motion must be (N, {MOTION_DIM}) or one ({MOTION_DIM},) frame, got shape {tuple(m.shape)}")
        return m

    def _make_blinks(self) -> None:
        n = DEFAULT_BLINK_FRAMES if self.num_frames is None else self.num_frames
        assert self.blink_template is not None
        self.blink_idx = blink_schedule(n, self.blink_template.shape[0], self.config.blink_interval, self.rng)

    def set_num_frames(self, num_frames: int | None) -> None:
        """Official ``set_Nd``: re-draw the blink schedule for ``num_frames`` (None unknown) if it changed."""
        if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral)
                                       or num_frames < 1):
            raise ValueError(f"num_frames must be a positive int or None (unknown), got {num_frames!r}")
        if num_frames == self.num_frames:
            return
        self.num_frames = None if num_frames is None else int(num_frames)
        if self._uses_blinks:
            self._make_blinks()

    def set_d0(self, motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike]) -> None:
        """Set the reference frame (online pipeline: frame 0 of the discarded first window)."""
        m = self._motion_rows(motion)
        if m.shape[0] != 1:
            raise ValueError(f"d0 must be one ({MOTION_DIM},) frame, got shape {tuple(m.shape)}")
        self.d0 = motion_to_dict(m)
        self._ref = self.d0

    def reset(self, keep_d0: bool = False) -> None:
        """Forget the per-utterance state (``d0``, the "first" fade destination, cached pose and ``x_s``)."""
        if not keep_d0:
            self.d0 = None
            self._ref = None
        self.pose_s: tuple[float, float] | None = None
        self.x_s: torch.Tensor | None = None
        self.fade_dst: dict[str, torch.Tensor] | None = None
        if self.is_image:
            src = self._sources[0]
            self.pose_s = self._source_pose(src)
            with torch.no_grad():
                self.x_s = transform_keypoint(src)
            if self.config.fade_target == "source":
                self.fade_dst = {k: v.clone() for k, v in src.items()}

    @staticmethod
    def _source_pose(src: Mapping[str, torch.Tensor]) -> tuple[float, float]:
        """(yaw, pitch) of a source in degrees, Python floats as the official ``.item()``."""
        return float(bins_to_degrees(src["yaw"]).reshape(())), float(bins_to_degrees(src["pitch"]).reshape(()))

    def source_at(self, frame_idx: int) -> dict[str, torch.Tensor]:
        """The source motion used for generated frame ``frame_idx`` (ping-pong over a video source)."""
        return self._sources[mirror_index(frame_idx, len(self._sources))]

    # ----------------------------------------------------------------------------------- stitching
    def stitch(
        self,
        motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike],
        frame_idx: int,
        controls: FrameControls | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: :meth:`stitch_batch` of one row. ``motion`` ``(265,)``, ``(1, 265)`` or its dict form (scale
        with 1 added, pose logits); ``controls`` one frame's. Returns ``x_s (1, 21, 3)``, ``x_d (1, 21, 3)``."""
        m = self._motion_rows(motion)
        if m.shape[0] != 1:
            raise ValueError(f"stitch takes one ({MOTION_DIM},) frame, got shape {tuple(m.shape)}; use stitch_batch")
        return self.stitch_batch(m, controls, frame_idx)

    def _mix(
        self, src: Mapping[str, torch.Tensor], d: Mapping[str, torch.Tensor], controls: FrameControls
    ) -> dict[str, torch.Tensor]:
        """Official ``_mix_s_d_info`` (relative or absolute driving keys, the rest from the source), with the
        amplitudes scaling each driven key's deviation from the reference frame."""
        keys = self.driven_keys
        weights = keys if isinstance(keys, dict) else None
        head = None if controls.head_amplitude is None else controls.head_amplitude[:, None]
        exp_w = exp_amplitude(controls)
        out: dict[str, torch.Tensor] = {}
        for k in MOTION_KEYS:
            if k not in keys:
                out[k] = src[k]
                continue
            amp = head if k in _HEAD_KEYS else exp_w if k == "exp" else None
            v = d[k]
            if self.d0 is not None:
                delta = v - self.d0[k]
                if weights is not None:
                    delta = delta * weights[k]
                if amp is not None:
                    delta = delta * amp
                v = src[k] + delta
            else:
                if amp is not None:
                    assert self._ref is not None
                    v = scale_deviation(v, self._ref[k], amp)
                if weights is not None:
                    v = v * weights[k]
            out[k] = v
        out["kp"] = src["kp"]
        return out

    def stitch_batch(
        self,
        motion: torch.Tensor | np.ndarray,
        controls: FrameControls | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stitch ``N`` consecutive frames ``start .. start+N-1`` at once (the state carries over to the next call).

        Args:
            motion: ``(N, 265)`` motion frames.
            controls: their :class:`~ditto_core.motion.controls.FrameControls` (N frames), or None.
            start: frame index of the first row (blink schedule position; video source frame).

        Returns:
            ``x_s`` ``(1, 21, 3)`` for an image source (``(N, 21, 3)`` for a video source), ``x_d (N, 21, 3)``.
        """
        m = self._motion_rows(motion)
        n = m.shape[0]
        if controls is not None and not isinstance(controls, FrameControls):
            raise ValueError(f"controls must be FrameControls or None, got {type(controls).__name__}")
        if controls is not None and controls.num_frames != n:
            raise ValueError(f"controls must cover the {n} motion frames, got {controls.num_frames}")
        cfg = self.config
        dev, dt = self.device, self.dtype
        c = FrameControls(n) if controls is None else controls.to(dev, dt)
        if n == 0:
            empty = torch.zeros(0, NUM_KP, 3, dtype=dt, device=dev)
            return (self.x_s if self.is_image else empty), empty

        with torch.no_grad():
            d = motion_to_dict(m)
            frames = range(start, start + n)
            if self.is_image:
                src = self._sources[0]
            else:
                sel = torch.tensor([mirror_index(i, len(self._sources)) for i in frames], device=dev)
                src = {k: v.index_select(0, sel) for k, v in self._src_stack.items()}
            if self._ref is None:
                self._ref = {k: v[:1].clone() for k, v in d.items()}
                if cfg.relative:
                    self.d0 = self._ref
            x = {k: v.expand(n, -1) for k, v in self._mix(src, d, c).items()}

            exp = x["exp"] * self._a1 + src["exp"] * self._a2
            if self._uses_blinks:
                assert self.blink_idx is not None and self.blink_template is not None
                rows = torch.tensor([self.blink_idx[i % len(self.blink_idx)] for i in frames], device=dev)
                exp = exp + self.blink_template.index_select(0, rows) * self._a3
            if c.vad_alpha is not None:
                vad = c.vad_alpha
                on = (vad < 1)[:, None]
                exp = torch.where(on, exp * vad[:, None] + src["exp"] * (1 - vad[:, None]), exp)

            # pose: (N, 66) values + a per-frame "already degrees" flag; degrees are stored on all 66 columns
            # so that a fade between the two forms broadcasts exactly as the official numpy code does
            pose = {k: x[k].clone() for k in POSE_KEYS}
            is_deg = {k: torch.zeros(n, dtype=torch.bool, device=dev) for k in POSE_KEYS}
            for k in POSE_KEYS:
                applied = c.pose_delta(k)
                if applied is not None:
                    has, delta = applied
                    cur = torch.where(is_deg[k], pose[k][:, 0], bins_to_degrees(pose[k]))
                    pose[k] = torch.where(has[:, None], (cur + delta)[:, None].expand(n, NUM_BINS), pose[k])
                    is_deg[k] = is_deg[k] | has
            for k in POSE_KEYS:
                applied = c.pose_alpha(k)
                if applied is not None:
                    has, alpha = applied
                    pose[k] = torch.where(has[:, None], pose[k] * alpha[:, None], pose[k])
            if c.delta_exp is not None:
                exp = exp + c.delta_exp
            x["exp"] = exp

            if cfg.fade_target == "first" and self.fade_dst is None:
                self.fade_dst = {k: x[k][:1].clone() for k in ("scale", "t", "exp", "kp")}
                for k in POSE_KEYS:
                    self.fade_dst[k] = pose[k][:1, :1].clone() if bool(is_deg[k][0]) else pose[k][:1].clone()
            fade = c.fade() if cfg.fade_target else None
            if fade is not None:
                on, a = fade
                a = a[:, None]
                if cfg.fade_target == "first" or self.fade_dst is not None:
                    assert self.fade_dst is not None
                    dst = self.fade_dst
                else:  # "source" with a video source: toward this frame's source
                    dst = src
                cfg_keys = MOTION_KEYS if cfg.fade_keys is None else cfg.fade_keys
                for j, k in enumerate(MOTION_KEYS):
                    if c.fade_keys is None:
                        if k not in cfg_keys:
                            continue
                    else:  # per-frame keys (official per-frame fade_out_keys); NaN rows: the config's
                        col = c.fade_keys[:, j]
                        on_k = torch.where(torch.isnan(col), torch.full_like(col, float(k in cfg_keys)), col) > 0
                        on = fade[0] & on_k
                        if not bool(on.any()):
                            continue
                    if k in POSE_KEYS:
                        dv = dst[k]
                        d_deg = dv.shape[-1] != NUM_BINS
                        dv = dv.expand(dv.shape[0], NUM_BINS) if d_deg else dv
                        pose[k] = torch.where(on[:, None], pose[k] * a + dv * (1 - a), pose[k])
                        is_deg[k] = torch.where(on, is_deg[k] & d_deg, is_deg[k])
                    else:
                        x[k] = torch.where(on[:, None], x[k] * a + dst[k] * (1 - a), x[k])

            deg = {k: torch.where(is_deg[k], pose[k][:, 0], bins_to_degrees(pose[k])) for k in POSE_KEYS}
            if self.gaze_fix:
                if self.pose_s is None:
                    self.pose_s = self._source_pose({k: v[:1] for k, v in src.items()})
                yaw_s, pitch_s = self.pose_s
                with host_float64():  # the official Python-float maths in float64, on the host
                    dx = (deg["yaw"].to("cpu", torch.float64) - yaw_s) * GAZE_X_RATIO
                    dy = (deg["pitch"].to("cpu", torch.float64) - pitch_s) * GAZE_Y_RATIO
                    pos = dx > 0
                    offsets = torch.stack([torch.where(pos, dx * 0.0007, dx * 0.001), dy * -0.001,
                                           torch.where(pos, dx * 0.001, dx * 0.0007), dy * -0.001], 1).to(dt)
                offsets = offsets.to(dev)
                exp = x["exp"].clone()
                exp[:, 33] += offsets[:, 0]
                exp[:, 34] += offsets[:, 1]
                exp[:, 45] += offsets[:, 2]
                exp[:, 46] += offsets[:, 3]
                x["exp"] = exp

            x_s = self.x_s if self.is_image else transform_keypoint(src)
            assert x_s is not None
            info = {"kp": x["kp"], "scale": x["scale"], "t": x["t"], "exp": x["exp"], **{k: deg[k] for k in POSE_KEYS}}
            x_d = transform_keypoint(info)
            if cfg.stitching:
                assert self.stitch_net is not None
                x_d = self.stitch_net(x_s.expand(n, NUM_KP, 3), x_d)
        return x_s, x_d
