"""Frame-rate conversion of motion rows by timestamps: any frame rate, constant or variable, -> 25 fps.

:func:`resample_rows` reads the rows at ``k / fps`` seconds (``k = 0, 1, ...``) from rows stamped at ``times``
(seconds, increasing; the first is the origin): linear interpolation between the two nearest rows, the first or last
row beyond the ends. Pose logits are interpolated as logits (as the official smoothing averages them). A row whose
time is an output time (to 1 microsecond) is copied exactly, so a 25 fps input comes out unchanged.

The output covers the input's duration, ``times[-1] - times[0]`` plus one input frame (the median step), so 30
frames at 30 fps (1 s) become 25 frames at 25 fps.
"""

from __future__ import annotations

import numpy as np
import torch

from ..validate import OptionError

__all__ = ["frame_times", "resample_rows"]

_EXACT = 1e-6  # seconds


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """``(num_frames,)`` float64 timestamps of a constant-rate video: ``i / fps``."""
    if not (fps > 0):
        raise OptionError("fps", "a frame rate > 0", fps)
    return np.arange(int(num_frames), dtype=np.float64) / float(fps)


def check_times(times: np.ndarray | list[float], num_frames: int, name: str = "timestamps") -> np.ndarray:
    """``times`` as ``(num_frames,)`` float64 seconds from the first frame; refuses wrong lengths, non-finite or
    non-increasing values, naming ``name``."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.shape[0] != num_frames:
        raise OptionError(name, f"one time per frame ({num_frames})", f"{t.shape[0]} times")
    if not np.isfinite(t).all():
        raise OptionError(name, "finite times in seconds", "NaN or infinite values")
    if num_frames > 1 and not (np.diff(t) > 0).all():
        raise OptionError(name, "strictly increasing times in seconds", "times that repeat or go back")
    return t - t[0]


def resample_rows(rows: torch.Tensor, times: np.ndarray | list[float], fps: float = 25.0) -> torch.Tensor:
    """``rows`` ``(N, D)`` stamped at ``times`` ``(N,)`` seconds -> ``(M, D)`` at ``fps`` (module doc), same dtype."""
    n = int(rows.shape[0])
    if n < 1:
        raise OptionError("rows", "at least one frame", "none")
    t = check_times(times, n)
    step = float(np.median(np.diff(t))) if n > 1 else 1.0 / fps
    duration = t[-1] + step
    m = max(1, int(round(duration * fps)))
    out_t = np.arange(m, dtype=np.float64) / fps
    hi = np.clip(np.searchsorted(t, out_t, side="left"), 0, n - 1)
    lo = np.clip(hi - 1, 0, n - 1)
    exact_hi = np.abs(t[hi] - out_t) <= _EXACT
    exact_lo = np.abs(t[lo] - out_t) <= _EXACT
    span = t[hi] - t[lo]
    frac = np.where(span > 0, (out_t - t[lo]) / np.where(span > 0, span, 1.0), 0.0)
    frac = np.clip(frac, 0.0, 1.0)
    frac = np.where(exact_hi, 1.0, np.where(exact_lo, 0.0, frac))
    r = rows.detach()
    lo_t, hi_t = torch.from_numpy(lo), torch.from_numpy(hi)
    f = torch.from_numpy(frac).to(r.dtype)[:, None]
    out = r[lo_t] + (r[hi_t] - r[lo_t]) * f
    exact = torch.from_numpy(exact_hi | exact_lo)
    if bool(exact.any()):
        src = torch.from_numpy(np.where(exact_hi, hi, lo))
        out[exact] = r[src[exact]]
    return out
