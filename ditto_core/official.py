"""The official code's vocabulary mapped onto the product's: ``StreamSDK.setup`` keywords and per-frame ctrl dicts.

The release's config pickle (``default_kwargs``) and the official API speak in ``use_d_keys``, ``delta_eye_open_n``
(0 = random blink gaps, -1 = none), ``fade_type`` "d0"/"s", ``overlap_v2``, ``sampling_timesteps``, ``smo_k_d`` and
per-frame ``ctrl_info`` dicts. The library speaks in :class:`~ditto_core.stitch.StitchConfig`,
:class:`~ditto_core.audio2motion.Audio2MotionConfig` and :class:`~ditto_core.motion.controls.FrameControls`. This
module is the only translation between the two; the loader uses it for the config pickle and the parity tests use it
to drive the library exactly as the official code is driven.

Every official setting is checked where it enters, under its official name: a wrong type, a value out of range or a
NaN raises :class:`~ditto_core.validate.OptionError` (a ``ValueError``) such as ``sampling_timesteps must be an integer
in 1..1000, got 'fifty'``; the config loader (:func:`ditto_core.config.load_config`) adds the file's name.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .audio2motion import Audio2MotionConfig
from .motion.controls import FrameControls
from .motion.vector import MOTION_DIM, MOTION_KEYS, NUM_KP
from .stitch import StitchConfig
from .validate import OptionError, check_bool, check_int, check_number

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


class _Shown:
    """A value shown in an error message by a short description (an array by its shape, not its values)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(v: Any) -> Any:
    """``v`` for an error message: arrays and long sequences by their type and shape."""
    if isinstance(v, (np.ndarray, torch.Tensor)):
        return _Shown(f"{type(v).__name__} of shape {tuple(v.shape)}")
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return _Shown(f"a {type(v).__name__} of {len(v)} items")
    return v


def _finite_array(name: str, v: Any, expected: str) -> np.ndarray:
    """``v`` as a float64 array whose values are all finite numbers, else :class:`OptionError` (``expected``)."""
    if isinstance(v, (str, bytes, Mapping)):
        raise OptionError(name, expected, _shown(v))
    try:
        arr = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
    except (TypeError, ValueError):
        raise OptionError(name, expected, _shown(v)) from None
    if not np.isfinite(arr).all():
        raise OptionError(name, expected + " (NaN or infinity found)", _shown(v))
    return arr


def _motion_keys(name: str, v: Any, allow_weights: bool) -> None:
    """Refuse anything but a sequence of motion keys (or, with ``allow_weights``, a ``{key: finite number}`` dict)."""
    expected = f"a list of motion keys from {', '.join(MOTION_KEYS)}" + (" or a {key: weight} dict" if allow_weights else "")
    if isinstance(v, Mapping) and allow_weights:
        for k, w in v.items():
            if k not in MOTION_KEYS:
                raise OptionError(name, expected, _shown(v))
            check_number(f"{name}[{k!r}]", w)
        return
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, (list, tuple, np.ndarray)):
        raise OptionError(name, expected, _shown(v))
    if not all(isinstance(k, str) and k in MOTION_KEYS for k in (v.tolist() if isinstance(v, np.ndarray) else v)):
        raise OptionError(name, expected, _shown(v))


def blink_interval(open_n: Any) -> int | tuple[int, ...] | None:
    """Official ``delta_eye_open_n`` -> :attr:`StitchConfig.blink_interval`: 0 (random gaps) -> None, negative (no
    blinks) -> 0, ``n`` -> ``n``, a list -> a tuple (cycled)."""
    expected = "an integer, or a list of integers >= 0"
    if isinstance(open_n, (bool, np.bool_)):
        raise OptionError("delta_eye_open_n", expected, open_n)
    if isinstance(open_n, numbers.Integral):
        return None if open_n == 0 else (0 if open_n < 0 else int(open_n))
    if isinstance(open_n, (list, tuple, np.ndarray)):
        vals = list(np.asarray(open_n).reshape(-1).tolist()) if isinstance(open_n, np.ndarray) else list(open_n)
        if vals and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in vals):
            return tuple(int(n) for n in vals)
    raise OptionError("delta_eye_open_n", expected, _shown(open_n))


def stitch_config(kwargs: Mapping[str, Any]) -> StitchConfig:
    """A :class:`StitchConfig` from official ``setup`` keywords (keys of other stages are ignored).

    ``overall_ctrl_info['fade_out_keys']``, which the official code merges into every frame's ctrl, becomes
    :attr:`StitchConfig.fade_keys`; the rest of ``overall_ctrl_info`` is per-frame (see :func:`frame_controls`).
    The product-only ``num_frames``, ``ch_scale`` and ``gaze_fix`` are accepted as they are.
    """
    kw = dict(kwargs)
    fade_type = kw.get("fade_type", "") or ""
    if not isinstance(fade_type, str) or fade_type not in FADE_TYPES:
        raise OptionError("fade_type", f"one of {tuple(FADE_TYPES)}", _shown(fade_type))
    fade_keys = kw.get("fade_out_keys", ("exp",))
    if fade_keys is not None:
        _motion_keys("fade_out_keys", fade_keys, allow_weights=False)
    overall = kw.get("overall_ctrl_info") or {}
    _check_ctrl(overall, "overall_ctrl_info")
    for key, v in overall.items():
        if key == "fade_out_keys":
            continue
        n = 3 * NUM_KP if key == "delta_exp" else 1
        expected = "a finite number" + (f" or {n} finite numbers" if n > 1 else "")
        if _finite_array(f"overall_ctrl_info[{key!r}]", v, expected).size not in {1, n}:
            raise OptionError(f"overall_ctrl_info[{key!r}]", expected, _shown(v))
    if overall.get("fade_out_keys") is not None:
        fade_keys = overall["fade_out_keys"]
    if kw.get("use_d_keys") is not None:
        _motion_keys("use_d_keys", kw["use_d_keys"], allow_weights=True)
    n_d = kw["num_frames"] if "num_frames" in kw else kw.get("N_d", -1)
    if n_d is not None:
        n_d = check_int("num_frames" if "num_frames" in kw else "N_d", n_d, -1)
        if n_d == 0:
            raise OptionError("num_frames" if "num_frames" in kw else "N_d", "an integer >= 1, or -1 (unknown)", 0)
    arr = kw.get("delta_eye_arr")
    if arr is not None:
        expected = f"None or a (n, {3 * NUM_KP}) array of finite numbers (a blink template)"
        tpl = _finite_array("delta_eye_arr", arr, expected)
        if tpl.ndim != 2 or tpl.shape[1] != 3 * NUM_KP or tpl.shape[0] < 1:
            raise OptionError("delta_eye_arr", expected, _shown(np.asarray(arr)))
    return StitchConfig(
        driven_keys=kw.get("use_d_keys"),
        relative=check_bool("relative_d", kw.get("relative_d", True)),
        drive_eye=check_bool("drive_eye", kw.get("drive_eye"), optional=True),
        gaze_fix=kw.get("gaze_fix"),
        blink_template=None if arr is None else torch.as_tensor(np.asarray(arr, dtype=np.float32)),
        blink_interval=blink_interval(kw.get("delta_eye_open_n", 0)),
        fade_target=FADE_TYPES[fade_type],
        fade_keys=None if fade_keys is None else tuple(fade_keys),
        stitching=check_bool("flag_stitching", kw.get("flag_stitching", True)),
        num_frames=None if n_d is None or n_d == -1 else n_d,
        ch_scale=kw.get("ch_scale"),
    )


def audio2motion_config(kwargs: Mapping[str, Any], online: bool | None = None) -> Audio2MotionConfig:
    """An :class:`Audio2MotionConfig` from official ``setup`` keywords: ``overlap_v2``, ``sampling_timesteps``,
    ``smo_k_d``, ``fix_kp_cond``, ``fix_kp_cond_dim``, ``v_min_max_for_clip`` (missing ones: the official code
    defaults, or the official online ones when ``online`` (default: the keywords' ``online_mode``))."""
    kw = dict(kwargs)
    online = bool(check_bool("online_mode", kw.get("online_mode", False))) if online is None else online
    base = Audio2MotionConfig.online() if online else Audio2MotionConfig()
    return Audio2MotionConfig(
        overlap=check_int("overlap_v2", kw.get("overlap_v2", base.overlap), 0, base.seq_frames - 1),
        steps=check_int("sampling_timesteps", kw.get("sampling_timesteps", base.steps), 1, 1000),
        smoothing=check_int("smo_k_d", kw.get("smo_k_d", base.smoothing), 0, 1001),
        kp_cond_reset=check_int("fix_kp_cond", kw.get("fix_kp_cond", base.kp_cond_reset), 0),
        kp_cond_keep=_cond_dims(kw.get("fix_kp_cond_dim", base.kp_cond_keep)),
        clip_range=_clip_range(kw.get("v_min_max_for_clip")),
        guidance=check_number("guidance_weight", kw.get("guidance_weight", base.guidance)),
    )


def _cond_dims(dims: Any) -> tuple[int, int] | None:
    """Official ``fix_kp_cond_dim`` (None or ``[start, end]`` of the 265-vector) checked."""
    if dims is None:
        return None
    expected = f"None or [start, end] with 0 <= start <= end <= {MOTION_DIM}"
    if isinstance(dims, (str, bytes, Mapping)) or not isinstance(dims, (list, tuple, np.ndarray)) or len(dims) != 2:
        raise OptionError("fix_kp_cond_dim", expected, _shown(dims))
    ds = check_int("fix_kp_cond_dim[0]", dims[0], 0, MOTION_DIM)
    de = check_int("fix_kp_cond_dim[1]", dims[1], 0, MOTION_DIM)
    if ds > de:
        raise OptionError("fix_kp_cond_dim", expected, _shown(dims))
    return ds, de


def _clip_range(v: Any) -> Any:
    """Official ``v_min_max_for_clip`` (None or a ``(>= 2, 265)`` array, rows 0/1 = min/max) checked; returned as
    given."""
    if v is None:
        return None
    expected = f"None or a (>=2, {MOTION_DIM}) array of finite numbers (rows 0/1 = min/max)"
    arr = _finite_array("v_min_max_for_clip", v, expected)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] != MOTION_DIM:
        raise OptionError("v_min_max_for_clip", expected, _shown(arr))
    return v


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
