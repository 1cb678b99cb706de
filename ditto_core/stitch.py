"""Per-frame motion stitching: DiT motion + source motion + controls -> keypoints ``x_s``, ``x_d``.

Re-implements the official ``MotionStitch`` (``core/atomic_components/motion_stitch.py``) as it is driven
by ``StreamSDK._motion_stitch_worker`` (offline and online pipelines). Per frame, in this order:

1. relative motion: ``d0`` = the first frame's raw motion dict (``relative_d``); each driven key becomes
   ``src + (d - d0) * w`` (pose logits are added as logits); keys outside ``use_d_keys`` (always ``scale``
   and ``kp``) come from the source. Without ``relative_d`` a dict ``use_d_keys`` multiplies the absolute values.
2. expression: only lip keypoints (plus eye keypoints when ``drive_eye``) are driven, the rest of ``exp``
   is the source's; with a blink template the eye keypoints are ``src + delta_eye_arr[blink_idx]``.
3. ``vad_alpha`` < 1 blends all of ``exp`` toward the source.
4. ``delta_pitch/yaw/roll`` turn that pose entry into degrees and add; ``alpha_*`` multiply whatever is
   stored (logits unless a delta was applied first); ``delta_exp`` adds to ``exp``.
5. fade (``fade_type`` "d0": toward the first frame after step 4; "s": toward the source) by ``fade_alpha``
   on ``fade_out_keys``.
6. gaze fix (with ``drive_eye``): eye keypoints follow the pose change relative to the source.
7. LivePortrait Eq. 2 (``transform_keypoint``), then the stitching MLP.

Pose entries are kept exactly as the official code keeps them: 66-bin logits, or one value in degrees once a
``delta_*`` control converted them. A fade mixing the two forms broadcasts the degrees over the 66 bins, as numpy
does there; this module reproduces that as well.

Differences from the official code, all intentional:
* the blink schedule draws from a seedable ``random.Random`` (official: the unseeded global ``random``);
* the blink index and the video source frame come from ``frame_idx`` (official: a call counter, which is the
  generated-frame index in both pipelines);
* unknown control names raise ``ValueError`` (official: silently ignored); the caller's ctrl dicts are not mutated;
* ``ch_info`` is supported through :attr:`StitchConfig.ch_scale` (only its frame-0 ``scale`` is used here);
* :attr:`StitchConfig.gaze_fix` can decouple the gaze fix from ``drive_eye`` (default: coupled, as official).
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from .motion import EYE_KPS, LIP_KPS, MOTION_DIM, MOTION_KEYS, NUM_BINS, NUM_KP, bins_to_degrees, motion_to_dict, transform_keypoint

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float], float]
SourceInfo = Mapping[str, ArrayLike]
Ctrl = Mapping[str, Any]

#: every per-frame control the official ``MotionStitch.__call__`` reads
CTRL_KEYS = frozenset(
    {
        "fade_alpha",
        "fade_out_keys",
        "delta_pitch",
        "delta_yaw",
        "delta_roll",
        "alpha_pitch",
        "alpha_yaw",
        "alpha_roll",
        "delta_exp",
        "vad_alpha",
    }
)
POSE_KEYS = ("pitch", "yaw", "roll")
#: the source motion (``x_s_info``): the six motion entries plus the canonical keypoints
SOURCE_DIMS = {"scale": 1, "pitch": NUM_BINS, "yaw": NUM_BINS, "roll": NUM_BINS, "t": 3, "exp": 3 * NUM_KP, "kp": 3 * NUM_KP}
IMAGE_D_KEYS = ("exp", "pitch", "yaw", "roll", "t")
VIDEO_D_KEYS = ("exp",)
FADE_TYPES = ("", "d0", "s")
#: random gap between blinks (frames, inclusive) when ``delta_eye_open_n`` is 0
BLINK_OPEN_MIN, BLINK_OPEN_MAX = 60, 100
#: blink schedule length when the number of frames is unknown (``N_d`` -1)
DEFAULT_BLINK_FRAMES = 3000
#: gaze fix: degrees of pose change -> eye-keypoint offsets
GAZE_X_RATIO, GAZE_Y_RATIO = 0.26, 0.28
_SCALED_BY_CH = frozenset({"exp", "pitch", "yaw", "roll"})


# --------------------------------------------------------------------------------------------- config
@dataclass
class StitchConfig:
    """The official stitching options (``StreamSDK.setup`` kwargs) with the SDK's defaults.

    * ``use_d_keys``: keys taken from the driving motion. ``None`` -> ``IMAGE_D_KEYS`` for an image source,
      ``VIDEO_D_KEYS`` for a video; a dict ``{key: weight}`` also scales each key's delta (amplitude control).
    * ``relative_d``: drive by the change since the first frame (``d0``) rather than absolute values.
    * ``drive_eye``: drive the eye keypoints (``None`` -> True for an image, False for a video).
    * ``delta_eye_arr``: blink template ``(n, 63)`` added to the source exp on the eye keypoints (with ``drive_eye``).
    * ``delta_eye_open_n``: frames between blinks: 0 random 60-100, -1 no blinks, int fixed, list cycled.
    * ``fade_type``: "" (fades off), "d0" (toward the first frame) or "s" (toward the source).
    * ``fade_out_keys``: motion keys the fade applies to (``None`` = all).
    * ``flag_stitching``: apply the stitching MLP.
    * ``overall_ctrl_info``: controls merged into every frame's ctrl (the frame's own values win).
    * ``num_frames``: the official ``N_d`` (-1 unknown: a 3000-frame blink schedule).
    * ``ch_scale``: ``ch_info['x_s_info_lst'][0]['scale']`` of a foreign conditioning source, or None. When set,
      the weights of exp and pose are multiplied by ``ch_scale / source scale`` (official ``_set_scale_ratio``).
    * ``gaze_fix``: not an official option. ``None`` (official) applies the gaze fix exactly when the eyes are
      driven; True/False force it on/off.
    """

    use_d_keys: Sequence[str] | Mapping[str, float] | None = None
    relative_d: bool = True
    drive_eye: bool | None = None
    delta_eye_arr: torch.Tensor | np.ndarray | None = None
    delta_eye_open_n: int | Sequence[int] = 0
    fade_type: str = ""
    fade_out_keys: Sequence[str] | None = ("exp",)
    flag_stitching: bool = True
    overall_ctrl_info: Mapping[str, Any] = field(default_factory=dict)
    num_frames: int = -1
    ch_scale: float | None = None
    gaze_fix: bool | None = None

    def __post_init__(self) -> None:
        if self.use_d_keys is not None:
            keys = list(self.use_d_keys.keys()) if isinstance(self.use_d_keys, Mapping) else list(self.use_d_keys)
            bad = [k for k in keys if k not in MOTION_KEYS]
            if isinstance(self.use_d_keys, str) or bad:
                raise ValueError(f"use_d_keys must name motion keys {MOTION_KEYS}, got {self.use_d_keys!r}")
        if self.fade_type not in FADE_TYPES:
            raise ValueError(f"fade_type must be one of {FADE_TYPES}, got {self.fade_type!r}")
        if self.fade_out_keys is not None:
            _check_fade_keys(self.fade_out_keys, "fade_out_keys")
        _check_open_n(self.delta_eye_open_n)
        if self.delta_eye_arr is not None:
            shape = tuple(self.delta_eye_arr.shape)
            if len(shape) != 2 or shape[1] != 3 * NUM_KP or shape[0] < 1:
                raise ValueError(f"delta_eye_arr must be (n, 63) with n >= 1, got {shape}")
        if not isinstance(self.num_frames, numbers.Integral) or (self.num_frames < 1 and self.num_frames != -1):
            raise ValueError(f"num_frames must be a positive int or -1, got {self.num_frames!r}")
        _check_ctrl(self.overall_ctrl_info, "overall_ctrl_info")
        if self.ch_scale is not None and not (float(self.ch_scale) > 0):
            raise ValueError(f"ch_scale must be a positive scale, got {self.ch_scale!r}")

    def resolved_use_d_keys(self, is_image: bool) -> tuple[str, ...] | dict[str, float]:
        if self.use_d_keys is None:
            return IMAGE_D_KEYS if is_image else VIDEO_D_KEYS
        if isinstance(self.use_d_keys, Mapping):
            return {k: float(v) for k, v in self.use_d_keys.items()}
        return tuple(self.use_d_keys)

    def resolved_drive_eye(self, is_image: bool) -> bool:
        return bool(is_image) if self.drive_eye is None else bool(self.drive_eye)

    def resolved_gaze_fix(self, is_image: bool) -> bool:
        return self.resolved_drive_eye(is_image) if self.gaze_fix is None else bool(self.gaze_fix)


def _check_fade_keys(keys: Any, what: str) -> None:
    if isinstance(keys, str) or not all(k in MOTION_KEYS or k == "kp" for k in keys):
        raise ValueError(f"{what} must be a sequence of motion keys {MOTION_KEYS}, got {keys!r}")


def _check_open_n(open_n: Any) -> None:
    if isinstance(open_n, bool):
        raise ValueError(f"delta_eye_open_n must be an int or a list of ints, got {open_n!r}")
    if isinstance(open_n, numbers.Integral):
        return
    if isinstance(open_n, (list, tuple)) and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in open_n
    ):
        return
    raise ValueError(f"delta_eye_open_n must be an int or a list of non-negative ints, got {open_n!r}")


def _check_ctrl(ctrl: Mapping[str, Any], what: str) -> None:
    if not isinstance(ctrl, Mapping):
        raise ValueError(f"{what} must be a dict of controls, got {type(ctrl).__name__}")
    bad = sorted(set(ctrl) - CTRL_KEYS)
    if bad:
        raise ValueError(f"{what} has unknown controls {bad}; known: {sorted(CTRL_KEYS)}")
    if "fade_out_keys" in ctrl and ctrl["fade_out_keys"] is not None:
        _check_fade_keys(ctrl["fade_out_keys"], f"{what}['fade_out_keys']")


# --------------------------------------------------------------------------------------------- helpers
def blink_schedule(num_frames: int, blink_len: int, open_n: int | Sequence[int], rng: random.Random) -> list[int]:
    """Per-frame row of the blink template (official ``_set_eye_blink_idx``); 0 = eyes open.

    Blinks (rows ``0..blink_len-1``) start after ``open_n`` frames and are separated by ``open_n`` open frames:
    ``-1`` none, ``0`` random gaps in [60, 100] drawn from ``rng``, an int a fixed gap, a list cycled
    (its first entry is the lead-in, its last sets the open tail). No blink starts within the tail.
    """
    _check_open_n(open_n)
    idx = [0] * num_frames
    if isinstance(open_n, numbers.Integral):
        if open_n < 0:
            return idx
        gaps = [int(open_n)] if open_n > 0 else []
    else:
        gaps = [int(n) for n in open_n]
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


def fade_ramps(
    num_frames: int,
    fade_in: int = -1,
    fade_out: int = -1,
    ctrl_info: Mapping[int, Ctrl] | Sequence[Ctrl] | None = None,
) -> list[dict[str, Any]]:
    """Per-frame ctrl list with the official ``setup_Nd`` fade ramps written in as ``fade_alpha``.

    Fade in: frame ``i < fade_in`` gets ``i / fade_in``. Fade out: frames ``N-fade_out-1 .. N-1`` ramp from 1 to 0.
    ``ctrl_info`` (a ``{frame: ctrl}`` dict or a list) is copied into the result, never mutated. The list covers
    ``max(num_frames, fade_in, len(ctrl_info))`` frames; negative frame keys are dropped. The ramps only act
    with ``StitchConfig.fade_type`` "d0" or "s".
    """
    if not isinstance(num_frames, numbers.Integral) or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative int, got {num_frames!r}")
    if isinstance(ctrl_info, Mapping):
        items = {int(k): dict(v) for k, v in ctrl_info.items() if int(k) >= 0}
    elif ctrl_info is None:
        items = {}
    else:
        items = {i: dict(v) for i, v in enumerate(ctrl_info)}
    length = max([num_frames, fade_in, *[k + 1 for k in items]])
    out = [items.get(i, {}) for i in range(length)]
    if fade_in > 0:
        for i in range(fade_in):
            out[i]["fade_alpha"] = i / fade_in
    if fade_out > 0:
        ss, ee = num_frames - fade_out - 1, num_frames - 1
        for i in range(max(ss, 0), num_frames):
            out[i]["fade_alpha"] = max((ee - i) / (ee - ss), 0)
    return out


def ctrl_for_frame(ctrl_info: Mapping[int, Ctrl] | Sequence[Ctrl] | None, frame_idx: int) -> dict[str, Any]:
    """The ctrl of one generated frame from a ``{frame: ctrl}`` dict or a list (official ``_get_ctrl_info``);
    a missing frame gives ``{}``."""
    if isinstance(ctrl_info, Mapping):
        return dict(ctrl_info.get(frame_idx, {}))
    if isinstance(ctrl_info, Sequence) and 0 <= frame_idx < len(ctrl_info):
        return dict(ctrl_info[frame_idx])
    return {}


def _mirror_index(index: int, size: int) -> int:
    """Ping-pong frame index into a video of ``size`` frames (official ``_mirror_index``)."""
    turn, res = divmod(index, size)
    return res if turn % 2 == 0 else size - res - 1


def _as_float(v: Any, what: str) -> float:
    try:
        return float(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64).reshape(()))
    except (TypeError, ValueError) as e:
        raise ValueError(f"control {what} must be a single number, got {v!r}") from e


# --------------------------------------------------------------------------------------------- stitcher
class MotionStitcher:
    """Stateful per-frame stitcher for one source (official ``MotionStitch`` after ``setup``).

    Args:
        source: the source motion ``x_s_info``: ``{scale (1,1), pitch/yaw/roll (1,66) logits, t (1,3),
            exp (1,63), kp (1,63)}`` (tensors or arrays; a leading 1 may be omitted). For a video source, a
            list of them, one per source frame (already smoothed); frame ``i`` uses the ping-pong index.
        is_image: image source (True) or video source (False).
        config: the options, :class:`StitchConfig` defaults if None.
        stitch_net: the stitching network ``(B,21,3), (B,21,3) -> (B,21,3)``; required with ``flag_stitching``.
        rng: blink-schedule randomness: a ``random.Random``, an int seed, or None (fresh unseeded generator).
        device, dtype: where and in which precision to compute (official: float32).
        d0: the relative-motion reference (a ``(265,)`` motion or motion dict); None takes the first stitched frame.

    State kept across calls, as in the official code: ``d0`` (first frame), the "d0" fade destination
    (first frame after the controls), the source pose for the gaze fix and the image ``x_s``.
    Call :meth:`reset` to start a new utterance with the same source.
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
        if cfg.flag_stitching and stitch_net is None:
            raise ValueError("stitch_net is required when config.flag_stitching is True")
        self.stitch_net = stitch_net
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)

        self.use_d_keys = cfg.resolved_use_d_keys(self.is_image)
        self.drive_eye = cfg.resolved_drive_eye(self.is_image)
        self.gaze_fix = cfg.resolved_gaze_fix(self.is_image)
        if cfg.ch_scale is not None:
            ratio = float(cfg.ch_scale) / float(self._sources[0]["scale"].reshape(()))
            if ratio != 1:
                if isinstance(self.use_d_keys, dict):
                    self.use_d_keys = {k: v * (ratio if k in _SCALED_BY_CH else 1) for k, v in self.use_d_keys.items()}
                else:
                    self.use_d_keys = {k: (ratio if k in _SCALED_BY_CH else 1.0) for k in self.use_d_keys}

        self.delta_eye_arr = (
            None
            if cfg.delta_eye_arr is None
            else torch.as_tensor(np.asarray(cfg.delta_eye_arr) if not isinstance(cfg.delta_eye_arr, torch.Tensor) else cfg.delta_eye_arr)
            .to(self.device, self.dtype)
            .reshape(-1, 3 * NUM_KP)
        )
        # exp = exp_d * a1 + exp_s * a2 + delta_eye * a3   (official fix_exp_a1/a2/a3), each (63,)
        lip = torch.zeros(NUM_KP, 3, dtype=self.dtype, device=self.device)
        lip[list(LIP_KPS)] = 1
        eye = torch.zeros_like(lip)
        eye[list(EYE_KPS)] = 1
        a1, blink = lip.clone(), torch.zeros_like(lip)
        if self.drive_eye:
            if self.delta_eye_arr is None:
                a1 = a1 + eye
            else:
                blink = eye
        self._a1 = (a1 * (1 - blink)).reshape(-1)
        self._a2 = ((1 - a1) + a1 * blink).reshape(-1)
        self._a3 = blink.reshape(-1)
        self._uses_blinks = self.drive_eye and self.delta_eye_arr is not None

        self.num_frames = int(cfg.num_frames)
        self.blink_idx: list[int] | None = None
        if self._uses_blinks:
            self._make_blinks()

        self.d0: dict[str, torch.Tensor] | None = None
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

    def _motion_dict(self, motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike]) -> dict[str, torch.Tensor]:
        """One frame as the official ``x_d_info``: entries ``(1, dim)``, scale with 1 added back, pose logits."""
        if isinstance(motion, Mapping):
            out = {}
            for k in MOTION_KEYS:
                if k not in motion:
                    raise ValueError(f"motion dict is missing {k!r} (needs {MOTION_KEYS})")
                v = self._tensor(motion[k])
                if v.numel() != SOURCE_DIMS[k]:
                    raise ValueError(f"motion[{k!r}] must hold {SOURCE_DIMS[k]} values, got shape {tuple(v.shape)}")
                out[k] = v.reshape(1, -1)
            return out
        m = self._tensor(motion)
        if m.numel() != MOTION_DIM:
            raise ValueError(f"motion must be one ({MOTION_DIM},) frame, got shape {tuple(m.shape)}")
        return motion_to_dict(m.reshape(1, MOTION_DIM))

    def _make_blinks(self) -> None:
        n = DEFAULT_BLINK_FRAMES if self.num_frames == -1 else self.num_frames
        assert self.delta_eye_arr is not None
        self.blink_idx = blink_schedule(n, self.delta_eye_arr.shape[0], self.config.delta_eye_open_n, self.rng)

    def set_num_frames(self, num_frames: int) -> None:
        """Official ``set_Nd``: re-draw the blink schedule for ``num_frames`` (-1 unknown) if it changed."""
        if not isinstance(num_frames, numbers.Integral) or (num_frames < 1 and num_frames != -1):
            raise ValueError(f"num_frames must be a positive int or -1, got {num_frames!r}")
        if num_frames == self.num_frames:
            return
        self.num_frames = int(num_frames)
        if self._uses_blinks:
            self._make_blinks()

    def set_d0(self, motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike]) -> None:
        """Set the relative-motion reference (online pipeline: frame 0 of the discarded first window)."""
        self.d0 = self._motion_dict(motion)

    def reset(self, keep_d0: bool = False) -> None:
        """Forget the per-utterance state (``d0``, the "d0" fade destination, cached pose and ``x_s``)."""
        if not keep_d0:
            self.d0 = None
        self.pose_s: tuple[float, float] | None = None
        self.x_s: torch.Tensor | None = None
        self.fade_dst: dict[str, torch.Tensor] | None = None
        if self.is_image:
            src = self._sources[0]
            self.pose_s = self._source_pose(src)
            with torch.no_grad():
                self.x_s = transform_keypoint(src)
            if self.config.fade_type == "s":
                self.fade_dst = {k: v.clone() for k, v in src.items()}

    @staticmethod
    def _source_pose(src: Mapping[str, torch.Tensor]) -> tuple[float, float]:
        """(yaw, pitch) of a source in degrees, Python floats as the official ``.item()``."""
        return float(bins_to_degrees(src["yaw"]).reshape(())), float(bins_to_degrees(src["pitch"]).reshape(()))

    def source_at(self, frame_idx: int) -> dict[str, torch.Tensor]:
        """The source motion used for generated frame ``frame_idx`` (ping-pong over a video source)."""
        return self._sources[_mirror_index(frame_idx, len(self._sources))]

    def _merge_ctrl(self, ctrl: Ctrl | None, what: str) -> dict[str, Any]:
        out = dict(ctrl) if ctrl is not None else {}
        _check_ctrl(out, what)
        for k, v in self.config.overall_ctrl_info.items():
            out.setdefault(k, v)
        return out

    def _fade_keys(self, kw: Mapping[str, Any]) -> tuple[str, ...]:
        keys = kw.get("fade_out_keys", self.config.fade_out_keys)
        return (*MOTION_KEYS, "kp") if keys is None else tuple(keys)

    # ----------------------------------------------------------------------------------- one frame
    def stitch(
        self,
        motion: torch.Tensor | np.ndarray | Mapping[str, ArrayLike],
        frame_idx: int,
        ctrl: Ctrl | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stitch one generated frame.

        Args:
            motion: the DiT motion ``(265,)`` (or ``(1, 265)``), or its dict form (scale with 1 added, pose logits).
            frame_idx: the generated-frame index (blink schedule position; video source frame).
            ctrl: this frame's controls (see :data:`CTRL_KEYS`); ``overall_ctrl_info`` fills in missing ones.

        Returns:
            ``x_s (1, 21, 3)``, ``x_d (1, 21, 3)``.
        """
        kw = self._merge_ctrl(ctrl, f"ctrl of frame {frame_idx}")
        with torch.no_grad():
            d = self._motion_dict(motion)
            src = self.source_at(frame_idx)
            cfg = self.config
            if cfg.relative_d and self.d0 is None:
                self.d0 = {k: v.clone() for k, v in d.items()}
            x = self._mix(src, d)

            exp = x["exp"] * self._a1 + src["exp"] * self._a2
            if self._uses_blinks:
                assert self.blink_idx is not None and self.delta_eye_arr is not None
                row = self.blink_idx[frame_idx % len(self.blink_idx)]
                exp = exp + self.delta_eye_arr[row][None] * self._a3
            x["exp"] = exp

            vad = _as_float(kw.get("vad_alpha", 1), "vad_alpha")
            if vad < 1:
                x["exp"] = x["exp"] * vad + src["exp"] * (1 - vad)

            for k in POSE_KEYS:
                if f"delta_{k}" in kw:
                    p = x[k]
                    deg = bins_to_degrees(p)[..., None] if p.shape[-1] == NUM_BINS else p
                    x[k] = deg + _as_float(kw[f"delta_{k}"], f"delta_{k}")
            for k in POSE_KEYS:
                if f"alpha_{k}" in kw:
                    x[k] = x[k] * _as_float(kw[f"alpha_{k}"], f"alpha_{k}")
            if "delta_exp" in kw:
                x["exp"] = x["exp"] + self._delta_exp(kw["delta_exp"])

            if cfg.fade_type == "d0" and self.fade_dst is None:
                self.fade_dst = {k: v.clone() for k, v in x.items()}
            if "fade_alpha" in kw and cfg.fade_type in ("d0", "s"):
                a = _as_float(kw["fade_alpha"], "fade_alpha")
                if cfg.fade_type == "d0" or self.fade_dst is not None:
                    dst = self.fade_dst
                else:  # "s" with a video source: toward this frame's source
                    dst = src
                assert dst is not None
                for k in self._fade_keys(kw):
                    if k != "kp":
                        x[k] = x[k] * a + dst[k] * (1 - a)

            if self.gaze_fix:
                if self.pose_s is None:
                    self.pose_s = self._source_pose(src)
                yaw_s, pitch_s = self.pose_s
                dx = (self._deg_item(x["yaw"]) - yaw_s) * GAZE_X_RATIO
                dy = (self._deg_item(x["pitch"]) - pitch_s) * GAZE_Y_RATIO
                exp = x["exp"].clone()
                exp[0, 33] += dx * (0.0007 if dx > 0 else 0.001)
                exp[0, 45] += dx * (0.001 if dx > 0 else 0.0007)
                exp[0, 34] += dy * -0.001
                exp[0, 46] += dy * -0.001
                x["exp"] = exp

            x_s = self.x_s if self.is_image else transform_keypoint(src)
            assert x_s is not None
            x_d = transform_keypoint(x)
            if cfg.flag_stitching:
                assert self.stitch_net is not None
                x_d = self.stitch_net(x_s, x_d)
        return x_s, x_d

    @staticmethod
    def _deg_item(p: torch.Tensor) -> float:
        """Degrees of one frame's pose entry (logits ``(1, 66)`` or degrees) as a Python float."""
        if p.ndim > 1 and p.shape[1] == NUM_BINS:
            return float(bins_to_degrees(p).reshape(()))
        return float(p.reshape(()))

    def _delta_exp(self, v: Any) -> torch.Tensor:
        t = self._tensor(v)
        if t.numel() == 1:
            return t.reshape(1, 1)
        if t.numel() != 3 * NUM_KP:
            raise ValueError(f"control delta_exp must be a number or 63 values, got shape {tuple(t.shape)}")
        return t.reshape(1, 3 * NUM_KP)

    def _mix(self, src: Mapping[str, torch.Tensor], d: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official ``_mix_s_d_info``: relative (``d0``) or absolute driving keys, the rest from the source."""
        keys = self.use_d_keys
        weights = keys if isinstance(keys, dict) else None
        out: dict[str, torch.Tensor] = {}
        for k in MOTION_KEYS:
            if k not in keys:
                out[k] = src[k]
                continue
            v = d[k]
            if self.d0 is not None:
                delta = v - self.d0[k]
                if weights is not None:
                    delta = delta * weights[k]
                v = src[k] + delta
            elif weights is not None:
                v = v * weights[k]
            out[k] = v
        out["kp"] = src["kp"]
        return out

    # ----------------------------------------------------------------------------------- many frames
    def stitch_batch(
        self,
        motion: torch.Tensor | np.ndarray,
        start_idx: int = 0,
        ctrls: Sequence[Ctrl | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stitch ``N`` consecutive generated frames ``start_idx .. start_idx+N-1`` at once.

        Same numbers as calling :meth:`stitch` frame by frame (the state is updated the same way).

        Args:
            motion: ``(N, 265)`` DiT motion.
            start_idx: generated-frame index of the first row.
            ctrls: ``N`` per-frame ctrl dicts (or None entries), or None for no per-frame controls.

        Returns:
            ``x_s`` ``(1, 21, 3)`` for an image source (``(N, 21, 3)`` for a video source), ``x_d (N, 21, 3)``.
        """
        m = self._tensor(motion)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise ValueError(f"motion must be (N, {MOTION_DIM}), got shape {tuple(m.shape)}")
        n = m.shape[0]
        if ctrls is not None and len(ctrls) != n:
            raise ValueError(f"ctrls must have one entry per motion frame ({n}), got {len(ctrls)}")
        kws = [self._merge_ctrl(None if ctrls is None else ctrls[i], f"ctrl of frame {start_idx + i}") for i in range(n)]
        cfg = self.config
        dev, dt = self.device, self.dtype
        if n == 0:
            empty = torch.zeros(0, NUM_KP, 3, dtype=dt, device=dev)
            return (self.x_s if self.is_image else empty), empty

        def col(name: str, default: float) -> tuple[torch.Tensor, torch.Tensor]:
            has = torch.tensor([name in kw for kw in kws], device=dev)
            val = torch.tensor([_as_float(kw[name], name) if name in kw else default for kw in kws], dtype=dt, device=dev)
            return has, val

        with torch.no_grad():
            d = motion_to_dict(m)
            frames = range(start_idx, start_idx + n)
            if self.is_image:
                src = self._sources[0]
            else:
                sel = torch.tensor([_mirror_index(i, len(self._sources)) for i in frames], device=dev)
                src = {k: v.index_select(0, sel) for k, v in self._src_stack.items()}
            if cfg.relative_d and self.d0 is None:
                self.d0 = {k: v[:1].clone() for k, v in d.items()}
            x = {k: v.expand(n, -1) for k, v in self._mix(src, d).items()}

            exp = x["exp"] * self._a1 + src["exp"] * self._a2
            if self._uses_blinks:
                assert self.blink_idx is not None and self.delta_eye_arr is not None
                rows = torch.tensor([self.blink_idx[i % len(self.blink_idx)] for i in frames], device=dev)
                exp = exp + self.delta_eye_arr.index_select(0, rows) * self._a3
            has, vad = col("vad_alpha", 1.0)
            on = (vad < 1)[:, None]
            exp = torch.where(on, exp * vad[:, None] + src["exp"] * (1 - vad[:, None]), exp)

            # pose: (N, 66) values + a per-frame "already degrees" flag; degrees are stored on all 66 columns
            # so that a fade between the two forms broadcasts exactly as the official numpy code does
            pose = {k: x[k].clone() for k in POSE_KEYS}
            is_deg = {k: torch.zeros(n, dtype=torch.bool, device=dev) for k in POSE_KEYS}
            for k in POSE_KEYS:
                has, delta = col(f"delta_{k}", 0.0)
                if has.any():
                    cur = torch.where(is_deg[k], pose[k][:, 0], bins_to_degrees(pose[k]))
                    pose[k] = torch.where(has[:, None], (cur + delta)[:, None].expand(n, NUM_BINS), pose[k])
                    is_deg[k] = is_deg[k] | has
            for k in POSE_KEYS:
                has, alpha = col(f"alpha_{k}", 1.0)
                if has.any():
                    pose[k] = torch.where(has[:, None], pose[k] * alpha[:, None], pose[k])
            has_dexp = [("delta_exp" in kw) for kw in kws]
            if any(has_dexp):
                dexp = torch.cat(
                    [
                        self._delta_exp(kw["delta_exp"]).expand(1, 3 * NUM_KP)
                        if h
                        else torch.zeros(1, 3 * NUM_KP, dtype=dt, device=dev)
                        for kw, h in zip(kws, has_dexp)
                    ]
                )
                exp = torch.where(torch.tensor(has_dexp, device=dev)[:, None], exp + dexp, exp)
            x["exp"] = exp

            if cfg.fade_type == "d0" and self.fade_dst is None:
                self.fade_dst = {k: x[k][:1].clone() for k in ("scale", "t", "exp", "kp")}
                for k in POSE_KEYS:
                    self.fade_dst[k] = pose[k][:1, :1].clone() if bool(is_deg[k][0]) else pose[k][:1].clone()
            has_fade = [("fade_alpha" in kw) and cfg.fade_type in ("d0", "s") for kw in kws]
            if any(has_fade):
                _, a = col("fade_alpha", 1.0)
                a = a[:, None]
                if cfg.fade_type == "d0" or self.fade_dst is not None:
                    assert self.fade_dst is not None
                    dst = self.fade_dst
                else:
                    dst = src
                keys_per_frame = [self._fade_keys(kw) if h else () for kw, h in zip(kws, has_fade)]
                for k in MOTION_KEYS:
                    on = torch.tensor([k in ks for ks in keys_per_frame], device=dev)
                    if not on.any():
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
                dx = (deg["yaw"].double() - yaw_s) * GAZE_X_RATIO
                dy = (deg["pitch"].double() - pitch_s) * GAZE_Y_RATIO
                pos = dx > 0
                exp = x["exp"].clone()
                exp[:, 33] += torch.where(pos, dx * 0.0007, dx * 0.001).to(dt)
                exp[:, 45] += torch.where(pos, dx * 0.001, dx * 0.0007).to(dt)
                exp[:, 34] += (dy * -0.001).to(dt)
                exp[:, 46] += (dy * -0.001).to(dt)
                x["exp"] = exp

            x_s = self.x_s if self.is_image else transform_keypoint(src)
            assert x_s is not None
            info = {"kp": x["kp"], "scale": x["scale"], "t": x["t"], "exp": x["exp"], **{k: deg[k] for k in POSE_KEYS}}
            x_d = transform_keypoint(info)
            if cfg.flag_stitching:
                assert self.stitch_net is not None
                x_d = self.stitch_net(x_s.expand(n, NUM_KP, 3), x_d)
        return x_s, x_d
