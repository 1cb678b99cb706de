"""MediaPipe 478-point face mesh on the 512 crop, and the eye features Ditto conditions on.

Default path (as the official ONNX/TensorRT configs): BlazeFace short-range (``blaze_face.onnx``, 128x128 NHWC RGB
in [-1, 1], 896 anchors, score >= 0.5 after a sigmoid of the clipped logits, MediaPipe's weighted NMS at IoU 0.3),
the first (best) detection gives a square ROI ``1.5 x`` the long box side, rotated by the line between the two
eye keypoints; the ROI is warped to 256x256 (perspective warp, bilinear) and fed to FaceMesh (``face_mesh.onnx``,
RGB / 255) whose 1434 outputs are 478 (x, y, z) ROI pixels. These are projected back to the image and normalised
as (x / W, y / H, z / W).

Optional path (the official PyTorch config): MediaPipe's ``face_landmarker.task`` through the ``mediapipe``
package (:class:`TaskLandmarker`). mediapipe is not a dependency; it is imported lazily and this path is untested.

Eye features (official ``EyeAttrUtilsByMP``), from normalised 3-D points:

* ``eye_open`` (n, 2): per eye (h0 + h1 + h2) / width, left: width 33-133, heights 145-159, 144-160, 153-158;
  right: width 263-362, heights 374-386, 373-387, 380-385.
* ``eye_ball`` (n, 6): per eye ``(dir(iris - centre) - dir(inner -> outer corner)) * |iris - centre|`` with the iris
  468 (left) / 473 (right) and the centre the mid-point of the width corners; stacked (3, 2) as xyz x (L, R) and
  flattened, so the order is xL, xR, yL, yR, zL, zR.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..onnx_utils import OnnxModel, check_signature
from .detect import NoFaceError, load_onnx

__all__ = [
    "BlazeFace",
    "FaceMesh",
    "MeshLandmarker",
    "Mesh478Result",
    "TaskLandmarker",
    "blaze_anchors",
    "weighted_nms",
    "roi_from_detection",
    "eye_features",
]

_F32 = np.float32


def blaze_anchors() -> np.ndarray:
    """(896, 2) float64 anchor centres of BlazeFace short range, normalised to [0, 1].

    SSD anchors for a 128 input with strides 8, 16, 16, 16: 2 anchors per cell on the 16x16 grid and 2 per cell for
    each of the three stride-16 layers (6 per cell) on the 8x8 grid, ordered row, column, anchor. Anchor sizes are
    fixed to 1, so only the centres matter.
    """
    parts = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[:grid, :grid]
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        parts.append(np.repeat(c, per_cell, axis=0))
    return np.concatenate(parts, axis=0)


def _iou_one(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box (x1, y1, x2, y2) with (K, 4) boxes, no +1 convention."""
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = iw * ih
    area_a = (box[2] - box[0]) * (box[3] - box[1])
    area_b = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def weighted_nms(dets: np.ndarray, thresh: float = 0.3) -> np.ndarray:
    """MediaPipe/BlazeFace weighted NMS of ``dets`` (K, 17) = (box 4, keypoints 12, score) -> (M, 17).

    Highest score first; every remaining detection with IoU > ``thresh`` joins the cluster, whose first 16 values
    become the score-weighted mean and whose score the mean score (a single detection is kept as it is).
    """
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] != 17:
        raise ValueError(f"dets: expected (K, 17) BlazeFace detections, got {dets.shape}")
    out = []
    remaining = np.argsort(dets[:, 16])[::-1]
    while len(remaining) > 0:
        det = dets[remaining[0]]
        overlap = _iou_one(det[:4], dets[remaining, :4]) > thresh
        overlap[0] = True  # a degenerate (zero-area) first box would otherwise never leave the queue
        cluster = remaining[overlap]
        remaining = remaining[~overlap]
        merged = det.copy()
        if len(cluster) > 1:
            scores = dets[cluster, 16:17]
            total = scores.sum()
            merged[:16] = (dets[cluster, :16] * scores).sum(axis=0) / total
            merged[16] = total / len(cluster)
        out.append(merged)
    return np.stack(out) if out else np.zeros((0, 17), dtype=dets.dtype)


def _outputs_by_size(model: OnnxModel, outs: list[np.ndarray], sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Pick outputs by their value count (first match for each wanted size)."""
    res: dict[str, np.ndarray] = {}
    for key, size in sizes.items():
        hits = [np.asarray(o) for o in outs if np.asarray(o).size == size]
        if not hits:
            raise ValueError(
                f"{model.path.name}: no output with {size} values ({key}); output shapes "
                f"{[tuple(np.asarray(o).shape) for o in outs]}"
            )
        res[key] = hits[0]
    return res


class BlazeFace:
    """BlazeFace short range. ``model(img_rgb)`` -> (M, 17) float32 detections after weighted NMS, best first.

    Each row: (x1, y1, x2, y2) in pixels of the 128x128 input, 6 keypoints (x, y) normalised to [0, 1] (the
    subject's right eye, left eye, nose, mouth, right ear, left ear), score.
    """

    input_size = 128
    num_anchors = 896
    min_score = 0.5
    nms_thresh = 0.3

    def __init__(self, model: OnnxModel | str | os.PathLike[str], device: Any = "cpu") -> None:
        self.model = load_onnx(model, device)
        n = self.input_size
        check_signature(
            self.model,
            "the BlazeFace detector of the eye features (blaze_face: blaze_face.onnx)",
            inputs=[(1, n, n, 3)],
            outputs=[self.num_anchors * 16, self.num_anchors],
        )
        self.anchors = blaze_anchors()

    def decode(self, regressors: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Raw outputs (896, 16) and (896,) -> (K, 17) detections with score >= ``min_score`` (before NMS)."""
        raw = np.asarray(regressors, dtype=_F32).reshape(self.num_anchors, 16)
        s = float(self.input_size)
        ax, ay = self.anchors[:, 0], self.anchors[:, 1]
        out = np.zeros_like(raw)
        xc = raw[:, 0] / s + ax
        yc = raw[:, 1] / s + ay
        w = raw[:, 2] / s
        h = raw[:, 3] / s
        out[:, 0] = s * (xc - w / 2.0)
        out[:, 1] = s * (yc - h / 2.0)
        out[:, 2] = s * (xc + w / 2.0)
        out[:, 3] = s * (yc + h / 2.0)
        out[:, 4:16:2] = raw[:, 4:16:2] / s + ax[:, None]
        out[:, 5:16:2] = raw[:, 5:16:2] / s + ay[:, None]
        score = 1 / (1 + np.exp(-np.clip(np.asarray(logits, dtype=_F32).reshape(-1, 1), -50, 100)))
        keep = score[:, 0] >= self.min_score
        return np.concatenate((out[keep], score[keep]), axis=-1)

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        img = np.asarray(img_rgb)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"img_rgb: expected an (H, W, 3) RGB image, got {img.shape}")
        n = self.input_size
        x = cv2.resize(img, (n, n))[None].astype(_F32) / _F32(127.5) - _F32(1.0)
        outs = _outputs_by_size(
            self.model, self.model.run(x), {"regressors": self.num_anchors * 16, "classificators": self.num_anchors}
        )
        return weighted_nms(self.decode(outs["regressors"], outs["classificators"]), self.nms_thresh)


def roi_from_detection(det: np.ndarray, image_wh: tuple[int, int], scale: float = 1.5) -> np.ndarray:
    """FaceMesh ROI (cx, cy, w, h, rotation rad) float64 in image pixels from one BlazeFace row (17,).

    As the official code: the 128-input box is rescaled by (H/128, W/128, H/128, W/128) (identical for the square
    crop), made square on its long side and scaled by ``scale``; the rotation is the angle of the line from the
    first to the second eye keypoint, normalised to [-pi, pi).
    """
    w_img, h_img = image_wh
    sx, sy = w_img / 128.0, h_img / 128.0
    b = np.asarray(det, dtype=np.float64)
    x1, y1, x2, y2 = b[0] * sy, b[1] * sx, b[2] * sy, b[3] * sx
    side = max(x2 - x1, y2 - y1)
    (ex0, ey0), (ex1, ey1) = b[4:6], b[6:8]
    angle = -math.atan2(ey0 - ey1, ex1 - ex0)
    rotation = angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, side * scale, side * scale, rotation])


class FaceMesh:
    """MediaPipe FaceMesh (with attention/iris). ``model(img_rgb, roi)`` -> (478, 3) float64 image pixels (z in x units)."""

    input_size = 256
    num_values = 1434

    def __init__(self, model: OnnxModel | str | os.PathLike[str], device: Any = "cpu") -> None:
        self.model = load_onnx(model, device)
        n = self.input_size
        check_signature(
            self.model,
            "the face mesh of the eye features (face_mesh: face_mesh.onnx)",
            inputs=[(1, n, n, 3)],
            outputs=[self.num_values],
        )

    def roi_matrix(self, roi: np.ndarray) -> np.ndarray:
        """(3, 3) perspective matrix from image pixels to the 256x256 ROI image."""
        cx, cy, w, h, rot = (float(v) for v in roi)
        s, c = math.sin(rot), math.cos(rot)
        corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        src = (corners @ np.array([[c, s], [-s, c]]) + (cx, cy)).astype(_F32)
        n = float(self.input_size)
        dst = np.array([[0, 0], [n, 0], [n, n], [0, n]], dtype=_F32)
        return cv2.getPerspectiveTransform(src, dst)

    def __call__(self, img_rgb: np.ndarray, roi: np.ndarray) -> np.ndarray:
        n = self.input_size
        patch = cv2.warpPerspective(np.asarray(img_rgb), self.roi_matrix(roi), (n, n), flags=cv2.INTER_LINEAR)
        x = (patch.astype(_F32) / _F32(255.0))[None]
        pts = _outputs_by_size(self.model, self.model.run(x), {"mesh": self.num_values})["mesh"]
        pts = pts.reshape(-1, 3).astype(np.float64) / n - (0.5, 0.5, 0.0)
        cx, cy, w, h, rot = (float(v) for v in roi)
        s, c = math.sin(rot), math.cos(rot)
        x_r = pts[:, 0] * c - pts[:, 1] * s
        y_r = pts[:, 0] * s + pts[:, 1] * c
        return np.stack([x_r * w + cx, y_r * h + cy, pts[:, 2] * w], axis=-1)


@dataclass
class Mesh478Result:
    lmk478: np.ndarray  #: (1, 478, 3) float32, normalised (x / W, y / H, z / W)
    blaze_det: np.ndarray  #: (17,) the BlazeFace detection used, in 128-input pixels (before rescaling)
    roi: np.ndarray  #: (5,) FaceMesh ROI (cx, cy, w, h, rotation rad) in image pixels


class MeshLandmarker:
    """BlazeFace + FaceMesh on onnxruntime. ``model(crop_u8)`` -> (1, 478, 3) float32 normalised points."""

    def __init__(
        self,
        blaze_face: BlazeFace | OnnxModel | str | os.PathLike[str],
        face_mesh: FaceMesh | OnnxModel | str | os.PathLike[str],
        device: Any = "cpu",
    ) -> None:
        self.blaze = blaze_face if isinstance(blaze_face, BlazeFace) else BlazeFace(blaze_face, device)
        self.mesh = face_mesh if isinstance(face_mesh, FaceMesh) else FaceMesh(face_mesh, device)

    def detect(self, img_rgb: np.ndarray) -> Mesh478Result:
        img = np.asarray(img_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"img_rgb: expected an (H, W, 3) uint8 RGB crop, got {img.shape} {img.dtype}")
        dets = self.blaze(img)
        if len(dets) == 0:
            raise NoFaceError(
                f"BlazeFace found no face (score >= {self.blaze.min_score}) in the {img.shape[1]}x{img.shape[0]} "
                "face crop, so the eye features cannot be computed"
            )
        h, w = img.shape[:2]
        roi = roi_from_detection(dets[0], (w, h))
        pts = self.mesh(img, roi) / (w, h, w)
        return Mesh478Result(pts[None].astype(_F32), dets[0].copy(), roi)

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        return self.detect(img_rgb).lmk478


class TaskLandmarker:
    """MediaPipe ``face_landmarker.task`` (official PyTorch config). Needs the ``mediapipe`` package. UNTESTED here.

    ``model(crop_u8)`` -> (1, 478, 3) float32 normalised points, as the ONNX path.
    """

    def __init__(self, task_path: str | os.PathLike[str]) -> None:
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as e:
            raise ImportError(
                f"face_landmarker.task ({task_path}) needs the 'mediapipe' package, which is not installed; "
                "install it (pip install mediapipe) or use the ONNX path (blaze_face.onnx + face_mesh.onnx)"
            ) from e
        if not os.path.isfile(task_path):
            raise FileNotFoundError(f"face landmarker task file not found: {str(task_path)!r}")
        self._mp = mp
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task_path)),
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
            num_faces=1,
        )
        self.detector = vision.FaceLandmarker.create_from_options(options)

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(img_rgb)
        res = self.detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=img))
        if not res.face_landmarks:
            raise NoFaceError("MediaPipe face landmarker found no face in the face crop")
        pts = [[p.x, p.y, p.z] for p in res.face_landmarks[0]]
        return np.asarray(pts, dtype=_F32)[None]


# --- eye features -----------------------------------------------------------------------------------------------

_L_WIDTH, _R_WIDTH = (33, 133), (263, 362)
_L_HEIGHTS = ((145, 159), (144, 160), (153, 158))
_R_HEIGHTS = ((374, 386), (373, 387), (380, 385))
_L_IRIS, _R_IRIS = 468, 473
_EPS = 1e-8


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).sum(-1))


def _direction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit vector b -> a, (n, d)."""
    return (a - b) / (_dist(a, b)[:, None] + _EPS)


def _one_eye(p: np.ndarray, width_idx: tuple[int, int], heights, iris: int) -> tuple[np.ndarray, np.ndarray]:
    outer, inner = p[:, width_idx[0]], p[:, width_idx[1]]
    width = _dist(outer, inner)
    opening = sum(_dist(p[:, i], p[:, j]) for i, j in heights) / (width + _EPS)
    center = (outer + inner) * 0.5
    ball = p[:, iris]
    move = (_direction(ball, center) - _direction(outer, inner)) * _dist(ball, center)[:, None]
    return opening, move


def eye_features(lmk478: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(eye_open (n, 2), eye_ball (n, 6))`` float32 from (n, 478, 3) (or (n, 478, 2)) normalised mesh points."""
    p = np.asarray(lmk478)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[1] != 478 or p.shape[2] not in (2, 3):
        raise ValueError(f"lmk478: expected (n, 478, 3) face-mesh points, got {np.asarray(lmk478).shape}")
    p = p.astype(_F32, copy=False)
    l_open, l_move = _one_eye(p, _L_WIDTH, _L_HEIGHTS, _L_IRIS)
    r_open, r_move = _one_eye(p, _R_WIDTH, _R_HEIGHTS, _R_IRIS)
    eye_open = np.stack([l_open, r_open], -1)
    eye_ball = np.stack([l_move, r_move], -1).reshape(p.shape[0], -1)
    return eye_open.astype(_F32), eye_ball.astype(_F32)
