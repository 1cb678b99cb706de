"""Face crop maths: the 2-point similarity crop used by Ditto (and LivePortrait), and the image loader resize.

A crop is defined by two points taken from the landmarks, the eye centre and the lip centre:

* 203 points (LivePortrait ``landmark.onnx``): eyes = mean of [0, 6, 12, 18] and of [24, 30, 36, 42], lip = mean(48, 66)
* 106 points (insightface ``2d106det``): eyes = mean of [33, 35, 40, 39] and of [87, 89, 94, 93], lip = mean(52, 61)
* 5 points (SCRFD keypoints): eyes = mean(0, 1), lip = mean(3, 4)

The unit vector from the eye centre to the lip centre is the crop's "down" axis ``uy``; ``ux`` is ``uy`` turned
90 degrees. The landmarks are rotated into that frame, their bounding box is made square with side
``max(w, h) * scale``, and its centre is moved by ``vx_ratio * side`` along ``ux`` and ``vy_ratio * side`` along ``uy``
(negative ``vy_ratio`` moves it up, towards the forehead). ``M_o2c`` maps that square onto ``dsize x dsize``.

The arithmetic runs in float32 like the official code, so the matrices agree with it to float32 rounding.

Note on ``vx_ratio``: the official ``crop_image`` never forwards ``crop_vx_ratio``, so the official horizontal offset
is always 0. :func:`crop_image` here honours its ``vx_ratio`` argument (default 0); source registration
(:func:`ditto_core.source.register_source`) always passes 0, which is what the official pipeline does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["two_point_frame", "crop_transform", "crop_image", "transform_points", "check_resize"]

_F32 = np.float32

# (left eye indices, right eye indices, lip indices) per landmark count
_TWO_POINT_INDICES: dict[int, tuple[list[int], list[int], list[int]]] = {
    203: ([0, 6, 12, 18], [24, 30, 36, 42], [48, 66]),
    106: ([33, 35, 40, 39], [87, 89, 94, 93], [52, 61]),
    5: ([0], [1], [3, 4]),
}


def _as_landmarks(lmk: np.ndarray, name: str = "lmk") -> np.ndarray:
    arr = np.asarray(lmk)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] not in _TWO_POINT_INDICES:
        raise ValueError(
            f"{name}: expected landmarks of shape (203, 2), (106, 2) or (5, 2) in pixels, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: landmarks contain NaN or inf")
    return arr.astype(_F32, copy=False)


def two_point_frame(lmk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eye centre and the lip centre of ``lmk`` ((N, 2) pixels, N in 203/106/5) as two float32 (2,) points."""
    pts = _as_landmarks(lmk)
    left, right, lip = _TWO_POINT_INDICES[pts.shape[0]]
    eye_l = np.mean(pts[left], axis=0)
    eye_r = np.mean(pts[right], axis=0)
    eye = (eye_l + eye_r) / 2
    mouth = (pts[lip[0]] + pts[lip[1]]) / 2
    return eye, mouth


def crop_transform(
    lmk: np.ndarray,
    dsize: int,
    scale: float,
    vx_ratio: float = 0.0,
    vy_ratio: float = -0.125,
    rotate: bool = True,
) -> np.ndarray:
    """Similarity ``M_o2c`` (3, 3) float32 mapping original-image pixels to ``dsize x dsize`` crop pixels.

    ``lmk`` (N, 2) pixel landmarks (N = 203, 106 or 5). ``scale``: crop side / landmark box side.
    ``vx_ratio``, ``vy_ratio``: centre offsets as fractions of the crop side along the face's x and y axes.
    ``rotate``: cancel the in-plane roll (the crop's y axis follows eye centre -> lip centre).
    """
    if int(dsize) <= 0:
        raise ValueError(f"dsize: expected a positive crop size in pixels, got {dsize}")
    if not scale > 0:
        raise ValueError(f"scale: expected a positive crop scale, got {scale}")
    pts = _as_landmarks(lmk)
    eye, mouth = two_point_frame(pts)

    uy = mouth - eye
    length = np.linalg.norm(uy)
    uy = np.array([0, 1], dtype=_F32) if length <= 1e-3 else uy / length
    ux = np.array((uy[1], -uy[0]), dtype=_F32)
    angle = math.acos(float(ux[0]))  # clockwise rotation of the x axis in image coordinates
    if ux[1] < 0:
        angle = -angle

    # landmark box in the rotated frame
    rot = np.array([ux, uy])
    center0 = np.mean(pts, axis=0)
    rpts = (pts - center0) @ rot.T
    lo = np.min(rpts, axis=0)
    hi = np.max(rpts, axis=0)
    center1 = (lo + hi) / 2
    side = np.max(hi - lo)
    size = np.array([side, side], dtype=_F32) * _F32(scale)
    center = center0 + ux * center1[0] + uy * center1[1]
    center = center + ux * (vx_ratio * size) + uy * (vy_ratio * size)

    s = _F32(dsize) / size[0]
    half = _F32(dsize / 2)
    cx, cy = center[0], center[1]
    if rotate:
        c, sn = math.cos(angle), math.sin(angle)
        m = np.array(
            [
                [s * c, s * sn, half - s * (c * cx + sn * cy)],
                [-s * sn, s * c, half - s * (-sn * cx + c * cy)],
                [0, 0, 1],
            ],
            dtype=_F32,
        )
    else:
        m = np.array([[s, 0, half - s * cx], [0, s, half - s * cy], [0, 0, 1]], dtype=_F32)
    return m


def transform_points(pts: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply the affine part of ``M`` ((2, 3) or (3, 3)) to ``pts`` (N, 2) -> (N, 2)."""
    M = np.asarray(M)
    return np.asarray(pts) @ M[:2, :2].T + M[:2, 2]


def crop_image(
    img: np.ndarray,
    lmk: np.ndarray,
    dsize: int = 512,
    scale: float = 2.3,
    vx_ratio: float = 0.0,
    vy_ratio: float = -0.125,
    rotate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``img`` (H, W, C) around ``lmk`` -> ``(crop (dsize, dsize, C), M_c2o (3, 3) float32)``.

    ``cv2.warpAffine`` with bilinear interpolation and a constant black border, as the official crop.
    ``M_c2o`` maps crop pixels back to ``img`` pixels (the inverse of :func:`crop_transform`).
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"img: expected an (H, W, C) image, got shape {img.shape}")
    m_o2c = crop_transform(lmk, dsize, scale, vx_ratio, vy_ratio, rotate)
    crop = cv2.warpAffine(img, m_o2c[:2], (int(dsize), int(dsize)), flags=cv2.INTER_LINEAR)
    if crop.ndim == 2:  # cv2 drops a single channel
        crop = crop[:, :, None]
    return crop, np.linalg.inv(m_o2c)


def check_resize(img: np.ndarray, max_size: int = 1920) -> np.ndarray:
    """The official image loader's size rule for an (H, W, 3) image.

    If ``max(H, W) > max_size`` (and ``max_size > 0``) the long side becomes ``max_size`` (the other side
    ``round(side * max_size / long)``); odd dimensions are then rounded down to even. Whenever either happened
    the image is resized with ``cv2.resize`` (bilinear) to that size, so an odd-sized image is resized by one
    pixel rather than cropped. Otherwise ``img`` is returned unchanged.
    """
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"img: expected an (H, W, C) image, got shape {img.shape}")
    h, w = img.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"img: image of {w}x{h} pixels is too small")
    resize = False
    new_h, new_w = h, w
    if max_size > 0 and max(h, w) > max_size:
        resize = True
        if h > w:
            new_h, new_w = max_size, int(round(w * max_size / h))
        else:
            new_h, new_w = int(round(h * max_size / w)), max_size
    if new_h % 2:
        new_h -= 1
        resize = True
    if new_w % 2:
        new_w -= 1
        resize = True
    if not resize:
        return img
    return cv2.resize(img, (new_w, new_h))
