"""Paste-back of a 512x512 face render into the original frame (official ``PutBackNumpy`` and ``get_mask``).

The render and a feathered mask are warped into the frame with ``M_c2o[:2]`` (``cv2.warpAffine``, bilinear,
black border), then ``out = mask * render + (1 - mask) * frame``, clipped to [0, 255] and cast to uint8 by
truncation (no rounding), as the official blend does.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["paste_mask", "paste_back"]

_F32 = np.float32


def _edge_ramp(n: int, rising: bool) -> np.ndarray:
    """(n,) float32 ramp 0 -> 1 (``rising``) or 1 -> 0 with n evenly spaced values (float64 then float32)."""
    r = np.linspace(0.0, 1.0, n) if rising else np.linspace(1.0, 0.0, n)
    return np.abs(r).astype(_F32)


def _corner(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Radial corner ramp ``1 - clip(sqrt(row^2 + col^2), 0, 1)``; ``row`` (w,), ``col`` (h,) float64 -> (h, w)."""
    dist = np.sqrt(row[None, :] ** 2 + col[:, None] ** 2).astype(_F32)
    return 1 - np.clip(dist, 0, 1)


@lru_cache(maxsize=8)
def _paste_mask_cached(width: int, height: int, ratio_w: float, ratio_h: float) -> np.ndarray:
    w = int(width * ratio_w)
    h = int(height * ratio_h)
    x1 = (width - w) // 2
    x2 = x1 + w
    y1 = (height - h) // 2
    y2 = y1 + h
    nb, nr = height - y2, width - x2  # bottom and right band widths

    mask = np.ones((height, width), dtype=_F32)
    # straight edges: linear ramps from 0 at the border to 1 at the inner rectangle
    mask[:y1, x1:x2] = _edge_ramp(y1, rising=True)[:, None]
    mask[y2:, x1:x2] = _edge_ramp(nb, rising=False)[:, None]
    mask[y1:y2, :x1] = _edge_ramp(x1, rising=True)[None, :]
    mask[y1:y2, x2:] = _edge_ramp(nr, rising=False)[None, :]
    # corners: 1 minus the distance to the outer corner of the corner block, in ramp units
    mask[:y1, :x1] = _corner(np.linspace(1, 0, x1), np.linspace(1, 0, y1))
    mask[:y1, x2:] = _corner(np.linspace(0, 1, nr), np.linspace(1, 0, y1))
    mask[y2:, :x1] = _corner(np.linspace(1, 0, x1), np.linspace(0, 1, nb))
    mask[y2:, x2:] = _corner(np.linspace(0, 1, nr), np.linspace(0, 1, nb))
    mask.setflags(write=False)
    return mask


def paste_mask(width: int = 512, height: int = 512, ratio_w: float = 0.9, ratio_h: float = 0.9) -> np.ndarray:
    """Feathered paste mask (height, width) float32 in [0, 1], read-only (official ``get_mask``).

    1 inside the central ``ratio_w x ratio_h`` rectangle, linear ramps to 0 towards the straight edges and
    radial ramps (``1 - distance``) in the four corner blocks. The official function returns it as (H, W, 1).
    """
    if width < 2 or height < 2:
        raise ValueError(f"paste_mask: width and height must be >= 2, got {width}x{height}")
    if not (0 < ratio_w <= 1 and 0 < ratio_h <= 1):
        raise ValueError(f"paste_mask: ratios must be in (0, 1], got {ratio_w}, {ratio_h}")
    return _paste_mask_cached(int(width), int(height), float(ratio_w), float(ratio_h))


def paste_back(
    frame: np.ndarray,
    render: np.ndarray,
    M_c2o: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Blend ``render`` into ``frame`` -> (H, W, 3) uint8.

    ``frame`` (H, W, 3) uint8 RGB; ``render`` (S, S, 3) float32 in [0, 255] (the decoder's ``clip(0,1)*255``,
    not rounded; uint8 is accepted); ``M_c2o`` (3, 3) or (2, 3) crop-to-frame matrix; ``mask`` (S, S) or
    (S, S, 1|3) float in [0, 1], default :func:`paste_mask` ``(S, S, 0.9, 0.9)``.
    """
    frame = np.asarray(frame)
    render = np.asarray(render)
    M = np.asarray(M_c2o)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame: expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if render.ndim != 3 or render.shape[2] != 3:
        raise ValueError(f"render: expected (S, S, 3) values in [0, 255], got {render.shape}")
    if M.shape not in ((3, 3), (2, 3)):
        raise ValueError(f"M_c2o: expected a (3, 3) or (2, 3) matrix, got {M.shape}")
    rh, rw = render.shape[:2]
    if mask is None:
        mask = paste_mask(rw, rh)
    mask = np.asarray(mask, dtype=_F32)
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.shape != (rh, rw):
        raise ValueError(f"mask: expected ({rh}, {rw}) to match the render, got {mask.shape}")
    h, w = frame.shape[:2]
    m2 = M[:2].astype(np.float64)
    mask_w = cv2.warpAffine(mask, m2, (w, h), flags=cv2.INTER_LINEAR).clip(0, 1)[:, :, None]
    render_w = cv2.warpAffine(render.astype(_F32, copy=False), m2, (w, h), flags=cv2.INTER_LINEAR)
    out = mask_w * render_w + (1 - mask_w) * frame
    return np.clip(out, 0, 255).astype(np.uint8)
