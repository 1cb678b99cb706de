"""The official code's vocabulary mapped onto the product's: ``StreamSDK.setup`` keywords and per-frame ctrl dicts.

The release's config pickle (``default_kwargs``) and the official API speak in ``use_d_keys``, ``delta_eye_open_n``
(0 = random blink gaps, -1 = none), ``fade_type`` "d0"/"s", ``overlap_v2``, ``sampling_timesteps``, ``smo_k_d`` and
per-frame ``ctrl_info`` dicts. The library speaks in :class:`~ditto_core.stitch.StitchConfig`,
:class:`~ditto_core.audio2motion.Audio2MotionConfig` and :class:`~ditto_core.motion.controls.FrameControls`. This
module is the only translation between the two; the loader uses it for the config pickle and the parity tests use it
to drive the library exactly as the official code is driven.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .audio2motion import Audio2MotionConfig
from .motion.controls import FrameControls
from .motion.vector import MOTION_KEYS, NUM_KP
from .stitch import StitchConfig

__all__ = [
    "CTRL_KEYS",
    "FADE_TYPES",
    "audio2motion_config",
    "blink_interval",
    "ctrl_for_frame",
    "fade_ramps",
    "frame_controls",
    "stitch_config",
]

Ctrl = Mapping[str, Any]
CtrlInfo = Mapping[int, Ctrl] | Sequence[Ctrl]

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
#: official ``fade_type`` -> :attr:`StitchConfig.fade_target`
FADE_TYPES = {"": "", "d0": "first", "s": "source"}
_STITCH_KEYS = ("use_d_keys", "relative_d", "drive_eye", "delta_eye_arr", "delta_eye_open_n", "fade_type",
                "fade_out_keys", "flag_stitching", "N_d", "overall_ctrl_info")
#: product-only keys accepted beside the official ones
_EXTRA_STITCH_KEYS = ("num_frames", "ch_scale", "gaze_fix")


def blink_interval(open_n: Any) -> int | tuple[int, ...] | None:
    """Official ``delta_eye_open_n`` -> :attr:`StitchConfig.blink_interval`: 0 (random gaps) -> None, negative (no
    blinks) -> 0, ``n`` -> ``n``, a list -> a tuple (cycled)."""
    if isinstance(open_n, bool):
        raise ValueError(f"delta_eye_open_n must be an int or a list of ints, got {open_n!r}")
    if isinstance(open_n, numbers.Integral):
        return None if open_n == 0 else (0 if open_n < 0 else int(open_n))
    if isinstance(open_n, (list, tuple, np.ndarray)):
        vals = list(np.asarray(open_n).reshape(-1).tolist()) if isinstance(open_n, np.ndarray) else list(open_n)
        if vals and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in vals):
            return tuple(int(n) for n in vals)
    raise ValueError(f"delta_eye_open_n must be an int or a list of non-negative ints, got {open_n!r}")


def stitch_config(kwargs: Mapping[str, Any]) -> StitchConfig:
    """A :class:`StitchConfig` from official ``setup`` keywords (keys of other stages are ignored).

    ``overall_ctrl_info['fade_out_keys']``, which the official code merges into every frame's ctrl, becomes
    :attr:`StitchConfig.fade_keys`; the rest of ``overall_ctrl_info`` is per-frame (see :func:`frame_controls`).
    The product-only ``num_frames``, ``ch_scale`` and ``gaze_fix`` are accepted as they are.
    """
    kw = dict(kwargs)
    fade_type = kw.get("fade_type", "") or ""
    if fade_type not in FADE_TYPES:
        raise ValueError(f"fade_type must be one of {tuple(FADE_TYPES)}, got {fade_type!r}")
    fade_keys = kw.get("fade_out_keys", ("exp",))
    overall = kw.get("overall_ctrl_info") or {}
    _check_ctrl(overall, "overall_ctrl_info")
    if overall.get("fade_out_keys") is not None:
        fade_keys = overall["fade_out_keys"]
    n_d = kw.get("num_frames", kw.get("N_d", -1))
    arr = kw.get("delta_eye_arr")
    return StitchConfig(
        driven_keys=kw.get("use_d_keys"),
        relative=bool(kw.get("relative_d", True)),
        drive_eye=kw.get("drive_eye"),
        gaze_fix=kw.get("gaze_fix"),
        blink_template=None if arr is None else torch.as_tensor(np.asarray(arr, dtype=np.float32)),
        blink_interval=blink_interval(kw.get("delta_eye_open_n", 0)),
        fade_target=FADE_TYPES[fade_type],
        fade_keys=None if fade_keys is None else tuple(fade_keys),
        stitching=bool(kw.get("flag_stitching", True)),
        num_frames=None if n_d is None or int(n_d) == -1 else int(n_d),
        ch_scale=kw.get("ch_scale"),
    )


def audio2motion_config(kwargs: Mapping[str, Any], online: bool | None = None) -> Audio2MotionConfig:
    """An :class:`Audio2MotionConfig` from official ``setup`` keywords: ``overlap_v2``, ``sampling_timesteps``,
    ``smo_k_d``, ``fix_kp_cond``, ``fix_kp_cond_dim``, ``v_min_max_for_clip`` (missing ones: the official code
    defaults, or the official online ones when ``online`` (default: the keywords' ``online_mode``))."""
    kw = dict(kwargs)
    online = bool(kw.get("online_mode", False)) if online is None else online
    base = Audio2MotionConfig.online() if online else Audio2MotionConfig()
    dims = kw.get("fix_kp_cond_dim", base.kp_cond_keep)
    return Audio2MotionConfig(
        overlap=int(kw.get("overlap_v2", base.overlap)),
        steps=int(kw.get("sampling_timesteps", base.steps)),
        smoothing=int(kw.get("smo_k_d", base.smoothing)),
        kp_cond_reset=int(kw.get("fix_kp_cond", base.kp_cond_reset)),
        kp_cond_keep=None if dims is None else (int(dims[0]), int(dims[1])),
        clip_range=kw.get("v_min_max_for_clip"),
        guidance=float(kw.get("guidance_weight", base.guidance)),
    )


# ------------------------------------------------------------------------------------------- ctrl dicts
def _check_ctrl(ctrl: Any, what: str) -> None:
    if not isinstance(ctrl, Mapping):
        raise ValueError(f"{what} must be a dict of controls, got {type(ctrl).__name__}")
    bad = sorted(set(ctrl) - CTRL_KEYS)
    if bad:
        raise ValueError(f"{what} has unknown controls {bad}; known: {sorted(CTRL_KEYS)}")
    keys = ctrl.get("fade_out_keys")
    if keys is not None and (isinstance(keys, str) or not all(k in MOTION_KEYS or k == "kp" for k in keys)):
        raise ValueError(f"{what}['fade_out_keys'] must be a sequence of motion keys {MOTION_KEYS}, got {keys!r}")


def _as_float(v: Any, what: str) -> float:
    try:
        return float(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64).reshape(()))
    except (TypeError, ValueError) as e:
        raise ValueError(f"control {what} must be a single number, got {v!r}") from e


def _delta_exp(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64).reshape(-1)
    if a.size == 1:
        return np.full(3 * NUM_KP, a[0])
    if a.size != 3 * NUM_KP:
        raise ValueError(f"control {what} must be a number or 63 values, got shape {np.shape(v)}")
    return a


def ctrl_for_frame(ctrl_info: CtrlInfo | None, frame_idx: int) -> dict[str, Any]:
    """The ctrl of one generated frame from a ``{frame: ctrl}`` dict or a list (official ``_get_ctrl_info``);
    a missing frame gives ``{}``."""
    if isinstance(ctrl_info, Mapping):
        return dict(ctrl_info.get(frame_idx, {}))
    if isinstance(ctrl_info, Sequence) and 0 <= frame_idx < len(ctrl_info):
        return dict(ctrl_info[frame_idx] or {})
    return {}


def frame_controls(
    ctrl_info: CtrlInfo | None,
    num_frames: int,
    overall: Ctrl | None = None,
    start: int = 0,
) -> FrameControls:
    """Official per-frame ctrl dicts of frames ``start .. start + num_frames - 1`` -> :class:`FrameControls`.

    ``ctrl_info``: a list (frame i at index i) or a ``{frame: ctrl}`` dict, as the official ``setup(ctrl_info=)``;
    ``overall``: ``overall_ctrl_info``, filling each frame's missing keys (the frame's own values win, as official).
    A key absent from a frame's merged dict is NaN ("not applied"); ``delta_exp`` becomes ``(N, 63)`` (0 absent)
    and a frame's ``fade_out_keys`` a row of ``fade_keys`` ``(N, 6)``. ``overall['fade_out_keys']`` belongs to
    :func:`stitch_config` (it sets the config's fade keys) and is skipped here.
    """
    n = int(num_frames)
    overall = dict(overall or {})
    _check_ctrl(overall, "overall_ctrl_info")
    overall.pop("fade_out_keys", None)
    cols: dict[str, list[float]] = {}
    dexp: list[np.ndarray | None] = []
    fade_rows: list[np.ndarray | None] = []
    for i in range(n):
        what = f"ctrl of frame {start + i}"
        ctrl = ctrl_for_frame(ctrl_info, start + i)
        _check_ctrl(ctrl, what)
        merged = {**overall, **ctrl}
        keys = merged.pop("fade_out_keys", None)
        fade_rows.append(None if keys is None else np.array([float(k in keys) for k in MOTION_KEYS]))
        for key, v in merged.items():
            if key == "delta_exp":
                continue
            cols.setdefault(key, [float("nan")] * n)[i] = _as_float(v, f"{key} of frame {start + i}")
        dexp.append(_delta_exp(merged["delta_exp"], f"delta_exp of frame {start + i}") if "delta_exp" in merged else None)
    kw: dict[str, torch.Tensor] = {}
    for key, vals in cols.items():
        t = torch.tensor(vals, dtype=torch.float32)
        if key == "vad_alpha":
            t = torch.where(torch.isnan(t), torch.ones_like(t), t)
        kw[key] = t
    if any(v is not None for v in dexp):
        kw["delta_exp"] = torch.from_numpy(np.stack([np.zeros(3 * NUM_KP) if v is None else v for v in dexp])).float()
    if any(r is not None for r in fade_rows):
        nan_row = np.full(len(MOTION_KEYS), np.nan)
        kw["fade_keys"] = torch.from_numpy(np.stack([nan_row if r is None else r for r in fade_rows])).float()
    return FrameControls(n, **kw)


def fade_ramps(
    num_frames: int,
    fade_in: int = -1,
    fade_out: int = -1,
    ctrl_info: CtrlInfo | None = None,
) -> list[dict[str, Any]]:
    """Per-frame ctrl list with the official ``setup_Nd`` fade ramps written in as ``fade_alpha``.

    Fade in: frame ``i < fade_in`` gets ``i / fade_in``. Fade out: frames ``N-fade_out-1 .. N-1`` ramp from 1 to 0.
    ``ctrl_info`` (a ``{frame: ctrl}`` dict or a list) is copied into the result, never changed. The list covers
    ``max(num_frames, fade_in, len(ctrl_info))`` frames; negative frame keys are dropped. The ramps only act with a
    fade target ("d0" or "s").
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames < 0:
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
