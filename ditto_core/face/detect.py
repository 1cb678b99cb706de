"""SCRFD face detector (insightface ``det_10g.onnx`` / Ditto's ``insightface_det.onnx``) and face selection.

Pre-processing as the official ``InsightFaceDet``: the RGB image is letterboxed (resized keeping its aspect ratio,
bilinear, into the top-left corner of a black 512x512 canvas), then ``(x - 127.5) / 128`` with the channels swapped,
so the network sees **BGR** (the official code passes RGB to a ``swapRB=True`` blob). Decoding: strides 8/16/32,
2 anchors per cell, boxes and 5 keypoints as distances from the anchor centre (in stride units), score threshold
``det_thresh`` (0.5), greedy NMS at IoU 0.4 with the ``+1`` pixel area convention.

Outputs are picked by shape, not name, so both release variants work: nine 2-D outputs (an optional leading batch
dim of 1 is dropped), three with 1 column (scores), three with 4 (boxes) and three with 10 (keypoints); within a
group the stride is given by the row count (stride 8 has the most rows).

:func:`select_face` picks one face: the largest by default (as the official registrar), or the ``index``-th by
size, left to right or score; an optional region mask keeps only faces whose box centre lies inside it. Faces
whose shorter box side is below ``min_size`` pixels (default 32) are not used: at that size the 512 crop is
upsampled more than 6x from the face box and the landmarks are unreliable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from ..onnx_utils import OnnxModel, check_signature
from ..errors import InputError

__all__ = [
    "NoFaceError",
    "FaceTooSmallError",
    "DetectorConfig",
    "FaceDetector",
    "nms",
    "select_face",
    "load_onnx",
    "DEFAULT_MIN_FACE_SIZE",
]

#: faces with a shorter box side below this many pixels are rejected by :func:`select_face`
DEFAULT_MIN_FACE_SIZE = 32.0

FaceOrder = Literal["size", "left_to_right", "score"]
#: how faces are counted for ``face_index``: by box area (largest first, official), left to right, or by score
FACE_ORDERS: tuple[str, ...] = ("size", "left_to_right", "score")


class NoFaceError(InputError):
    """No usable face was found in an image."""


class FaceTooSmallError(InputError):
    """Faces were found, but all of them are smaller than the minimum face size."""


def load_onnx(model: OnnxModel | str | os.PathLike[str], device: Any = "cpu") -> OnnxModel:
    """An :class:`OnnxModel` for a path (opened on ``device``); anything else is returned as it is.

    Wrappers only use ``model.run(*inputs) -> list of arrays`` (inputs bound by position to the session's own
    input names), ``model.input_names`` and ``model.path``, so a stand-in object with those works too.
    """
    if isinstance(model, (str, os.PathLike)):
        return OnnxModel(model, device)
    if not callable(getattr(model, "run", None)):
        raise ValueError(f"model: expected a path to an .onnx file or an OnnxModel, got {type(model).__name__}")
    return model


@dataclass(frozen=True)
class DetectorConfig:
    det_thresh: float = 0.5  #: minimum face score (after the model's sigmoid)
    nms_thresh: float = 0.4  #: IoU above which a lower-scored box is suppressed
    input_size: int = 512  #: letterbox canvas side in pixels
    strides: tuple[int, ...] = (8, 16, 32)
    num_anchors: int = 2


def nms(dets: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS of ``dets`` (K, 5) = (x1, y1, x2, y2, score); returns kept row indices, best score first.

    Areas use the insightface ``+1`` pixel convention; a box is dropped when its IoU with a kept box is > ``thresh``.
    """
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError(f"dets: expected (K, 5) boxes with scores, got {dets.shape}")
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= thresh]
    return np.asarray(keep, dtype=np.int64)


class FaceDetector:
    """SCRFD on onnxruntime. ``detect_faces(img_rgb)`` -> ``(boxes (K, 5), kps (K, 5, 2))`` float32, image pixels."""

    def __init__(
        self,
        model: OnnxModel | str | os.PathLike[str],
        device: Any = "cpu",
        config: DetectorConfig | None = None,
    ) -> None:
        self.model = load_onnx(model, device)
        self.config = config or DetectorConfig()
        side, n = self.config.input_size, len(self.config.strides)
        check_signature(
            self.model,
            "the face detector (face_detector: SCRFD, det_10g.onnx or insightface_det.onnx)",
            inputs=[(1, 3, side, side)],
            outputs=[(None, 1)] * n + [(None, 4)] * n + [(None, 10)] * n,
        )
        if len(self.model.input_names) != 1:
            raise ValueError(f"{self.model.path.name}: a face detector has one input, found {self.model.input_names}")
        self._centers: dict[tuple[int, int], np.ndarray] = {}

    def _anchor_centers(self, side: int, stride: int) -> np.ndarray:
        key = (side, stride)
        if key not in self._centers:
            n = side // stride
            ys, xs = np.mgrid[:n, :n]
            c = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
            self._centers[key] = np.repeat(c, self.config.num_anchors, axis=0)
        return self._centers[key]

    def _split_outputs(self, outs: list[np.ndarray]) -> dict[int, list[np.ndarray]]:
        """Group the raw outputs by column count (1 scores, 4 boxes, 10 kps), each ordered stride 8 -> 32."""
        groups: dict[int, list[np.ndarray]] = {1: [], 4: [], 10: []}
        for o in outs:
            a = np.asarray(o)
            while a.ndim > 2 and a.shape[0] == 1:
                a = a[0]
            if a.ndim != 2 or a.shape[1] not in groups:
                continue
            groups[a.shape[1]].append(a)
        n = len(self.config.strides)
        if any(len(g) != n for g in groups.values()):
            shapes = [tuple(np.asarray(o).shape) for o in outs]
            raise ValueError(
                f"{self.model.path.name}: expected {n} score (N,1), {n} box (N,4) and {n} keypoint (N,10) outputs "
                f"of an SCRFD detector, got shapes {shapes}"
            )
        for g in groups.values():
            g.sort(key=lambda a: -a.shape[0])  # stable: keeps the declared order on ties
        return groups

    def letterbox(self, img: np.ndarray) -> tuple[np.ndarray, float]:
        """(S, S, 3) uint8 canvas with the resized image in its top-left corner, and the resize factor."""
        side = self.config.input_size
        h, w = img.shape[:2]
        if h / w > 1.0:
            new_h, new_w = side, int(side / (h / w))
        else:
            new_w, new_h = side, int(side * (h / w))
        if new_w < 1 or new_h < 1:
            raise ValueError(f"img: a {w}x{h} image is too elongated to letterbox for face detection")
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(img, (new_w, new_h))
        return canvas, new_h / h

    def detect_faces(self, img_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All faces in ``img_rgb`` (H, W, 3) uint8 RGB.

        Returns ``boxes`` (K, 5) = (x1, y1, x2, y2, score) and ``kps`` (K, 5, 2) (eyes, nose, mouth corners), in
        image pixels, ordered by score after NMS. K may be 0.
        """
        img = np.asarray(img_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"img_rgb: expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
        cfg = self.config
        canvas, det_scale = self.letterbox(img)
        blob = ((canvas[:, :, ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        groups = self._split_outputs(self.model.run(np.ascontiguousarray(blob)))

        scores_l, boxes_l, kps_l = [], [], []
        for i, stride in enumerate(cfg.strides):
            centers = self._anchor_centers(cfg.input_size, stride)
            scores, dist, kdist = groups[1][i], groups[4][i] * stride, groups[10][i] * stride
            if scores.shape[0] != centers.shape[0]:
                raise ValueError(
                    f"{self.model.path.name}: stride {stride} has {scores.shape[0]} anchors, expected "
                    f"{centers.shape[0]} for a {cfg.input_size}px input with {cfg.num_anchors} anchors"
                )
            pos = np.where(scores >= cfg.det_thresh)[0]
            c = centers[pos]
            d = dist[pos]
            boxes_l.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], -1))
            kps_l.append(c[:, None, :] + kdist[pos].reshape(-1, 5, 2))
            scores_l.append(scores[pos])

        scores = np.vstack(scores_l)
        order = scores.ravel().argsort()[::-1]
        boxes = np.vstack(boxes_l) / det_scale
        kps = np.vstack(kps_l) / det_scale
        pre = np.hstack((boxes, scores)).astype(np.float32, copy=False)[order]
        keep = nms(pre, cfg.nms_thresh)
        return pre[keep], kps[order][keep].astype(np.float32, copy=False)

    __call__ = detect_faces


def _box_side(boxes: np.ndarray) -> np.ndarray:
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def select_face(
    boxes: np.ndarray,
    index: int = 0,
    order: FaceOrder = "size",
    region_mask: np.ndarray | None = None,
    min_size: float = DEFAULT_MIN_FACE_SIZE,
    det_thresh: float | None = None,
) -> int:
    """Row of ``boxes`` (K, 5) to use as the source face.

    ``order``: ``"size"`` (largest box area first; index 0 is the official choice), ``"left_to_right"`` (box
    centre x) or ``"score"`` (detector order). ``region_mask`` (H, W) in image pixels: only faces whose box centre
    falls on a non-zero mask pixel are candidates. ``min_size``: faces whose shorter box side is below this many
    pixels are not candidates (0 disables). ``det_thresh`` is only used in error messages.

    Raises :class:`NoFaceError` when there is no face (in the region), :class:`FaceTooSmallError` when every
    candidate is below ``min_size``, and ``ValueError`` when ``index`` is out of range.
    """
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError(f"boxes: expected (K, 5) face boxes, got {boxes.shape}")
    if order not in FACE_ORDERS:
        raise ValueError(f"order: expected one of {FACE_ORDERS}, got {order!r}")
    thr = f" with score >= {det_thresh}" if det_thresh is not None else ""
    if boxes.shape[0] == 0:
        raise NoFaceError(
            f"no face found in the source image: the SCRFD face detector returned no face{thr}. "
            "Use an image with a clearly visible, roughly frontal face."
        )
    cand = np.arange(boxes.shape[0])
    if region_mask is not None:
        mask = np.asarray(region_mask)
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[:, :, 0]
        if mask.ndim != 2:
            raise ValueError(f"region_mask: expected an (H, W) mask in image pixels, got {mask.shape}")
        h, w = mask.shape
        cx = np.clip(np.floor((boxes[:, 0] + boxes[:, 2]) / 2), 0, w - 1).astype(np.int64)
        cy = np.clip(np.floor((boxes[:, 1] + boxes[:, 3]) / 2), 0, h - 1).astype(np.int64)
        inside = mask[cy, cx] > 0
        cand = cand[inside]
        if cand.size == 0:
            raise NoFaceError(
                f"no face inside region_mask: {boxes.shape[0]} face(s) detected{thr}, "
                "but none has its box centre on a non-zero mask pixel"
            )
    if min_size > 0:
        sides = _box_side(boxes[cand])
        big = sides >= min_size
        if not big.any():
            raise FaceTooSmallError(
                f"face too small: the largest detected face is {float(sides.max()):.1f} px (shorter box side), "
                f"below min_face_size = {min_size:g} px; use a larger or closer-up image, or lower min_face_size"
            )
        cand = cand[big]
    sub = boxes[cand]
    if order == "size":
        ranked = cand[np.argsort(-(sub[:, 2] - sub[:, 0]) * (sub[:, 3] - sub[:, 1]))]
    elif order == "left_to_right":
        ranked = cand[np.argsort((sub[:, 0] + sub[:, 2]) / 2, kind="stable")]
    else:
        ranked = cand
    if not -len(ranked) <= index < len(ranked):
        raise ValueError(
            f"face_index: {index} is out of range, {len(ranked)} usable face(s) found (ordered by {order})"
        )
    return int(ranked[index])
