"""2-D face landmarks: insightface 106 points (``2d106det.onnx`` / ``landmark106.onnx``) and LivePortrait's 203
points (``landmark203.onnx``, both release variants).

106: the image is cropped around a detector box (centre of the box, scale ``192 / (1.5 * max(w, h))``, no rotation,
bilinear, black border) to 192x192 and fed as BGR 0..255 (mean 0, std 1; the official code passes RGB to a
``swapRB=True`` blob). The prediction ``p`` in [-1, 1] becomes ``(p + 1) * 96`` crop pixels, mapped back with the
inverse crop transform.

203: the image is cropped with :func:`ditto_core.face.crop.crop_image` ``(dsize=224, scale=1.5, vy_ratio=-0.1)``
around the previous landmarks (106 points on a first frame, the previous frame's 203 points when tracking) and fed
as RGB / 255 NCHW. The (1, 406) output in [0, 1] is scaled by 224 and mapped back with the crop's ``M_c2o``. The
``ditto_pytorch/aux_models`` file has three outputs and the points are its third; the ``ditto_onnx`` file has one,
``landmarks``: the output with 406 values is used (the last such one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..onnx_utils import OnnxModel, check_signature
from .crop import crop_image, transform_points
from .detect import load_onnx

__all__ = ["Landmark106", "Landmark203", "Landmark203Result"]


def _check_image(img: np.ndarray, name: str = "img_rgb") -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    return img


class Landmark106:
    """insightface 106-point landmarks. ``model(img_rgb, box)`` -> (106, 2) float32 image pixels."""

    input_size = 192
    num_points = 106

    def __init__(self, model: OnnxModel | str | os.PathLike[str], device: Any = "cpu") -> None:
        self.model = load_onnx(model, device)
        n = self.input_size
        check_signature(
            self.model,
            "the 106-point landmark model (landmark106: 2d106det.onnx or landmark106.onnx)",
            inputs=[(1, 3, n, n)],
            outputs=[(1, 2 * self.num_points)],
        )

    def crop_matrix(self, box: np.ndarray) -> np.ndarray:
        """(2, 3) float64 affine from image pixels to the 192x192 input, for ``box`` (x1, y1, x2, y2, ...)."""
        b = np.asarray(box, dtype=np.float32).ravel()
        if b.size < 4 or not np.all(np.isfinite(b[:4])):
            raise ValueError(f"box: expected (x1, y1, x2, y2[, score]) in pixels, got {box!r}")
        w, h = b[2] - b[0], b[3] - b[1]
        if not (w > 0 and h > 0):
            raise ValueError(f"box: expected x2 > x1 and y2 > y1, got {b[:4].tolist()}")
        cx, cy = (b[2] + b[0]) / 2, (b[3] + b[1]) / 2
        s = np.float32(self.input_size) / (max(w, h) * np.float32(1.5))
        half = self.input_size / 2
        return np.array(
            [[float(s), 0.0, half - float(cx * s)], [0.0, float(s), half - float(cy * s)]], dtype=np.float64
        )

    def __call__(self, img_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        img = _check_image(img_rgb)
        m = self.crop_matrix(box)
        n = self.input_size
        aimg = cv2.warpAffine(img, m, (n, n), borderValue=0.0)
        blob = np.ascontiguousarray(aimg[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
        out = np.asarray(self.model.run(blob)[0], dtype=np.float32).reshape(-1, 2)
        if out.shape[0] < self.num_points:
            raise ValueError(
                f"{self.model.path.name}: first output has {out.shape[0]} points, expected {self.num_points}"
            )
        pred = (out[-self.num_points :] + 1) * np.float32(n // 2)
        im = cv2.invertAffineTransform(m)
        return transform_points(pred.astype(np.float64), im).astype(np.float32)


@dataclass
class Landmark203Result:
    lmk203: np.ndarray  #: (203, 2) float32 image pixels
    M_c2o: np.ndarray  #: (3, 3) float32, the 224 crop's crop-to-image matrix
    crop: np.ndarray  #: (224, 224, 3) uint8, the network input crop


class Landmark203:
    """LivePortrait 203-point landmarks. ``model.track(img_rgb, lmk)`` -> :class:`Landmark203Result`."""

    dsize = 224
    num_points = 203
    crop_scale = 1.5
    crop_vy_ratio = -0.1

    def __init__(self, model: OnnxModel | str | os.PathLike[str], device: Any = "cpu") -> None:
        self.model = load_onnx(model, device)
        n = self.dsize
        check_signature(
            self.model,
            "the 203-point landmark model (landmark203: landmark203.onnx)",
            inputs=[(1, 3, n, n)],
            outputs=[(1, 2 * self.num_points)],
        )

    def _points_output(self, outs: list[np.ndarray]) -> np.ndarray:
        want = 2 * self.num_points
        hits = [o for o in outs if np.asarray(o).size == want]
        if not hits:
            raise ValueError(
                f"{self.model.path.name}: no output with {want} values (203 points); output shapes "
                f"{[tuple(np.asarray(o).shape) for o in outs]}"
            )
        return np.asarray(hits[-1], dtype=np.float32)

    def run(self, crop_u8: np.ndarray, M_c2o: np.ndarray | None = None) -> np.ndarray:
        """203 points of a (224, 224, 3) uint8 RGB crop -> (203, 2) float32 crop pixels, or image pixels via ``M_c2o``."""
        crop = _check_image(crop_u8, "crop_u8")
        if crop.shape[:2] != (self.dsize, self.dsize):
            raise ValueError(f"crop_u8: expected ({self.dsize}, {self.dsize}, 3), got {crop.shape}")
        inp = np.ascontiguousarray((crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        pts = self._points_output(self.model.run(inp)).reshape(-1, 2) * np.float32(self.dsize)
        if M_c2o is not None:
            pts = transform_points(pts, np.asarray(M_c2o, dtype=np.float32))
        return pts.astype(np.float32, copy=False)

    def track(self, img_rgb: np.ndarray, lmk: np.ndarray) -> Landmark203Result:
        """Crop ``img_rgb`` around ``lmk`` ((106, 2) or (203, 2) pixels) at 224 and predict the 203 points."""
        img = _check_image(img_rgb)
        crop, m_c2o = crop_image(img, lmk, dsize=self.dsize, scale=self.crop_scale, vy_ratio=self.crop_vy_ratio)
        return Landmark203Result(self.run(crop, m_c2o), m_c2o, crop)
