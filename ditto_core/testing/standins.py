"""Small stand-in ONNX models with the I/O of the official aux release files (no real weights).

Each stand-in reports the same synthetic face, wherever the pipeline looks at it, plus a small
term computed from the input pixels (average pool, a fixed random linear map seeded from
``sha256(f"{salt}:standin:<model>")``, tanh), so different inputs give slightly different outputs
and the same salt always gives the same file. They are for tests and for the synthetic model kit
(``ditto_core.testing.kit``): the geometry is sensible (one upright face, eyes above the mouth,
eyes open, irises near the eye centres), so registration finds one face, crops it and gets
finite eye features, but nothing is learned.

The face: the detector finds the image content inside its letterboxed input (the pixels that are
not the black letterbox padding), and puts one face box at the content's centre, its height
``FACE_BOX_FRACTION`` (0.4) of the shorter content side and its width 0.8 of its height. The
later models (106, 203, BlazeFace, face mesh) return that face as the official pre-processing
chain (detector box -> 192 crop -> 224 crop -> 512 crop -> 128 BlazeFace -> 256 mesh ROI) would
see it, so every stage agrees with the one before; the 106 and 203 point sets have the same
bounding box and eye/lip centres, so tracking a video with the 203 points keeps the same crops.

Official I/O (input name -> output names, shapes):

=====================  ==========================================  =============================================
file                   input                                       outputs, in order
=====================  ==========================================  =============================================
det_10g.onnx           ``input.1`` (1,3,H,W) BGR (x-127.5)/128     9 outputs: scores s8/s16/s32 (N,1) after
                                                                   sigmoid, boxes (N,4), kps (N,10) in stride
                                                                   units; N = (H/s)(W/s)*2 (8192/2048/512 at 512)
insightface_det.onnx   ``image`` (1,3,512,512)                     same, named scores1..3, boxes1..3, kps1..3
2d106det.onnx          ``data`` (1,3,192,192) BGR 0-255            ``fc1`` (1,212) in [-1,1]
landmark106.onnx       same                                        same
landmark203.onnx aux   ``input`` (1,3,224,224) RGB 0-1             3 outputs, (1,406) points in [0,1] at index 2
landmark203.onnx onnx  same                                        ``landmarks`` (1,406)
blaze_face.onnx        ``input`` (1,128,128,3) RGB [-1,1]          ``regressors`` (1,896,16),
                                                                   ``classificators`` (1,896,1) logits
face_mesh.onnx         ``input`` (1,256,256,3) RGB 0-1             ``Identity`` (1,1,1,1434) ROI pixels,
                                                                   ``Identity_1``, ``Identity_2`` (1,1,1,1)
hubert_streaming_      ``input_values`` (1,6480) 16 kHz wave       ``encoding_out`` (20,1024)
fix_kv.onnx
=====================  ==========================================  =============================================

The two auxiliary outputs of the ``landmark203.onnx`` aux variant are placeholders of shapes (1,1)
and (1,4) (the real file's are not documented); code should use output index 2 or the output with
406 values.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "FACE_BOX_FRACTION",
    "STANDIN_BUILDERS",
    "build_face_detector",
    "build_landmark106",
    "build_landmark203",
    "build_blaze_face",
    "build_face_mesh",
    "build_hubert",
    "save_model",
    "face_points",
    "face_chain",
    "blaze_anchors",
    "DET_10G_OUTPUT_NAMES",
]

#: the detector's face box height as a fraction of the shorter side of the image content
FACE_BOX_FRACTION = 0.4
#: face box width / height
FACE_BOX_ASPECT = 0.8
OPSET = 17
IR_VERSION = 8
#: output names of the release ``det_10g.onnx`` (scores s8,s16,s32, boxes s8..s32, kps s8..s32)
DET_10G_OUTPUT_NAMES = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
_DET_ONNX_OUTPUT_NAMES = ("scores1", "scores2", "scores3", "boxes1", "boxes2", "boxes3", "kps1", "kps2", "kps3")
_STRIDES = (8, 16, 32)
_FACE_STRIDE = 32  # the stride whose anchor reports the face
_LOGIT_ON, _LOGIT_OFF = 4.0, -6.0


def _onnx():
    try:
        import onnx  # noqa: PLC0415
        from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("building stand-in models needs the 'onnx' package (pip install onnx)") from e
    return onnx, TensorProto, helper, numpy_helper


def _rng(salt: str, name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(f"{salt}:standin:{name}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------- geometry
# Face frame: unit = detector box height, origin = box centre, x to the right, y down (image
# axes). "L" is the eye on the image's left.

_EYE_L = np.array([-0.19, -0.10])
_EYE_R = np.array([0.19, -0.10])
_EYE_HW, _EYE_HH = 0.085, 0.032  # eye half width (corner to centre) and half height (open)
_IRIS_R = 0.028
_IRIS_OFFSET = np.array([0.004, 0.003])  # iris centre relative to the eye centre (L; R mirrored in x)
_MOUTH = np.array([0.0, 0.26])
_MOUTH_HW, _MOUTH_HH, _MOUTH_IN_HW, _MOUTH_IN_HH = 0.14, 0.05, 0.10, 0.008
_NOSE_TOP, _NOSE_TIP = np.array([0.0, -0.08]), np.array([0.0, 0.10])
_BROW_Y, _BROW_X = -0.22, (0.06, 0.32)
_JAW_CENTER, _JAW_A, _JAW_B = np.array([0.0, -0.12]), 0.40, 0.59  # chin at y = 0.47
_BLAZE_BOX = (np.array([0.0, 0.08]), 0.72)  # BlazeFace box centre and side (face frame)
_EARS = (np.array([-0.42, 0.0]), np.array([0.42, 0.0]))


def _loop(center: np.ndarray, hw: float, hh: float, n: int, first_at_left: bool = True) -> np.ndarray:
    """n points on an ellipse: index 0 at a corner, n/4 at the top, n/2 at the other corner, 3n/4 at the bottom."""
    phi = 2 * np.pi * np.arange(n) / n
    sx = -1.0 if first_at_left else 1.0
    return np.stack([center[0] + sx * hw * np.cos(phi), center[1] - hh * np.sin(phi)], -1)


def _jaw(n: int) -> np.ndarray:
    """n (odd) contour points from the left temple through the chin to the right temple."""
    th = np.linspace(np.pi, 0.0, n)
    return np.stack([_JAW_CENTER[0] + _JAW_A * np.cos(th), _JAW_CENTER[1] + _JAW_B * np.sin(th)], -1)


def _brow(n: int, left: bool) -> np.ndarray:
    xs = np.linspace(_BROW_X[1], _BROW_X[0], n) * (-1 if left else 1)
    return np.stack([xs, np.full(n, _BROW_Y)], -1)


def _line(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return a[None] + (b - a)[None] * np.linspace(0, 1, n)[:, None]


def _nose(n: int) -> np.ndarray:
    k = n - 4
    bridge = _line(_NOSE_TOP, _NOSE_TIP, k)
    wings = np.array([[-0.05, 0.12], [-0.025, 0.13], [0.025, 0.13], [0.05, 0.12]])
    return np.concatenate([bridge, wings])


def _eye_pairs(center: np.ndarray, outer_sign: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k lower and k upper lid points, outer corner -> inner corner (excluding the corners)."""
    t = np.arange(1, k + 1) / (k + 1)  # 0 = outer corner, 1 = inner corner
    x = center[0] + outer_sign * _EYE_HW * (1 - 2 * t)
    h = _EYE_HH * np.sin(np.pi * t)
    return np.stack([x, center[1] + h], -1), np.stack([x, center[1] - h], -1)


def _points_106() -> np.ndarray:
    """InsightFace 2d106 layout: 0-32 contour, 33-42 eye L, 43-51 brow L, 52-71 mouth, 72-86 nose,
    87-96 eye R, 97-105 brow R. Eye centres = mean of [33,35,40,39] / [87,89,94,93]; lip centre =
    mean of 52 and 61 (the corners)."""
    p = np.zeros((106, 2))
    p[0:33] = _jaw(33)
    for c, base, outer in ((_EYE_L, 33, -1.0), (_EYE_R, 87, 1.0)):
        ang = {0: 0, 1: 45, 2: 90, 3: 135, 4: 160, 5: 200, 6: 180, 7: 270, 8: 225, 9: 315}
        for i, a in ang.items():
            r = np.deg2rad(a)
            p[base + i] = [c[0] + outer * _EYE_HW * np.cos(r), c[1] - _EYE_HH * np.sin(r)]
    p[43:52] = _brow(9, left=True)
    p[97:106] = _brow(9, left=False)
    p[52:64] = _loop(_MOUTH, _MOUTH_HW, _MOUTH_HH, 12)  # 52 left corner, 58 right corner
    p[64:72] = _loop(_MOUTH, _MOUTH_IN_HW, _MOUTH_IN_HH, 8)
    p[61], p[58] = p[58].copy(), p[61].copy()  # the official lip centre uses 52 and 61: make 61 the right corner
    p[72:87] = _nose(15)
    return p


def _points_203() -> np.ndarray:
    """LivePortrait 203 layout: 0-23 eye L loop (0 / 12 corners, 6 top, 18 bottom), 24-47 eye R,
    48-83 outer lip loop (48 / 66 corners), 84-107 inner lip loop (90 top, 102 bottom), 108-125 brow L,
    126-143 brow R, 144-163 nose, 164-202 contour."""
    p = np.zeros((203, 2))
    p[0:24] = _loop(_EYE_L, _EYE_HW, _EYE_HH, 24, first_at_left=True)
    p[24:48] = _loop(_EYE_R, _EYE_HW, _EYE_HH, 24, first_at_left=False)
    p[48:84] = _loop(_MOUTH, _MOUTH_HW, _MOUTH_HH, 36)
    p[84:108] = _loop(_MOUTH, _MOUTH_IN_HW, _MOUTH_IN_HH, 24)
    p[108:126] = _brow(18, left=True)
    p[126:144] = _brow(18, left=False)
    p[144:164] = _nose(20)
    p[164:203] = _jaw(39)
    return p


_MP_EYES = {  # MediaPipe indices: corners (outer, inner), lower lid O->I, upper lid O->I, iris centre
    "L": (33, 133, (7, 163, 144, 145, 153, 154, 155), (246, 161, 160, 159, 158, 157, 173), 468),
    "R": (263, 362, (249, 390, 373, 374, 380, 381, 382), (466, 388, 387, 386, 385, 384, 398), 473),
}


def _points_478() -> np.ndarray:
    """MediaPipe 478 (x, y, z): both eyes (corners, lids, 5-point irises) at their official indices,
    every other point spread over the face oval on a sunflower pattern, z from a flattened sphere
    (negative = towards the camera)."""
    p = np.full((478, 3), np.nan)
    eye_z = -0.12
    for side, c, outer in (("L", _EYE_L, -1.0), ("R", _EYE_R, 1.0)):
        o, i, lower, upper, iris = _MP_EYES[side]
        p[o] = [c[0] + outer * _EYE_HW, c[1], eye_z]
        p[i] = [c[0] - outer * _EYE_HW, c[1], eye_z]
        lo, up = _eye_pairs(c, outer, len(lower))
        p[list(lower), :2], p[list(lower), 2] = lo, eye_z
        p[list(upper), :2], p[list(upper), 2] = up, eye_z
        ic = c + _IRIS_OFFSET * np.array([-outer, 1.0])
        p[iris] = [ic[0], ic[1], eye_z - 0.01]
        for k in range(4):
            a = np.pi / 2 * k
            p[iris + 1 + k] = [ic[0] + _IRIS_R * np.cos(a), ic[1] - _IRIS_R * np.sin(a), eye_z - 0.01]
    free = np.flatnonzero(np.isnan(p[:, 0]))
    n = len(free)
    k = np.arange(n) + 0.5
    r = np.sqrt(k / n)
    th = k * np.pi * (3 - np.sqrt(5))
    x = 0.38 * r * np.cos(th)
    y = 0.44 * r * np.sin(th)
    z = -0.30 * np.sqrt(np.clip(1 - r**2, 0, 1))
    p[free] = np.stack([x, y, z], -1)
    return p


def face_points(scheme: str) -> np.ndarray:
    """The synthetic face in face units (box height 1, box centre at 0, y down).

    ``scheme``: "kps5" (5, 2), "106" (106, 2), "203" (203, 2), "478" (478, 3), "box" (4,) x1,y1,x2,y2.
    """
    if scheme == "kps5":
        corner = np.array([_MOUTH_HW, 0.0])
        return np.stack([_EYE_L, _EYE_R, _NOSE_TIP, _MOUTH - corner, _MOUTH + corner])
    if scheme == "106":
        return _points_106()
    if scheme == "203":
        return _points_203()
    if scheme == "478":
        return _points_478()
    if scheme == "box":
        hw = FACE_BOX_ASPECT / 2
        return np.array([-hw, -0.5, hw, 0.5])
    raise ValueError(f"scheme: expected one of 'kps5', '106', '203', '478', 'box', got {scheme!r}")


def _pt2(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eye centre, lip centre) of 106 or 203 points, as the official crop uses them."""
    if len(pts) == 106:
        le, re = pts[[33, 35, 40, 39]].mean(0), pts[[87, 89, 94, 93]].mean(0)
        lip = (pts[52] + pts[61]) / 2
    else:
        le, re = pts[[0, 6, 12, 18]].mean(0), pts[[24, 30, 36, 42]].mean(0)
        lip = (pts[48] + pts[66]) / 2
    return (le + re) / 2, lip


def _crop_rect(pts: np.ndarray, scale: float, vy: float) -> tuple[np.ndarray, float]:
    """Centre and side of the official landmark crop (upright faces: no rotation)."""
    eye, lip = _pt2(pts)
    uy = lip - eye
    uy = uy / np.linalg.norm(uy)
    if abs(uy[0]) > 1e-9:
        raise AssertionError("the synthetic face must be upright")
    lo, hi = pts.min(0), pts.max(0)
    size = float(max(hi - lo)) * scale
    center = (lo + hi) / 2 + uy * (vy * size)
    return center, size


def blaze_anchors() -> np.ndarray:
    """BlazeFace front-model anchor centres (896, 2), normalised: 16x16x2 (stride 8) then 8x8x6 (stride 16)."""
    out = []
    for grid, per in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                out.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per)
    return np.asarray(out)


def face_chain() -> dict[str, np.ndarray]:
    """The template each stand-in returns, following the official pre-processing chain (face units).

    Keys: ``lmk106_pred`` (106, 2) in [-1, 1]; ``lmk203_norm`` (203, 2) in [0, 1] of the 224 crop;
    ``crop512_center``/``crop512_size`` (face units); ``blaze_box128`` (cx, cy, side) in 128 px of the
    512 crop; ``blaze_kps128`` (6, 2); ``mesh_roi`` (cx, cy, side) in 512-crop pixels; ``mesh256``
    (478, 3) ROI pixels.
    """
    p106, p203, p478 = _points_106(), _points_203(), _points_478()
    box = face_points("box")
    side = max(box[2] - box[0], box[3] - box[1])
    lmk106_pred = p106 * (192.0 / (1.5 * side)) / 96.0  # 192 crop centred on the box; (pred + 1) * 96
    c224, s224 = _crop_rect(p106, 1.5, -0.1)
    c224b, s224b = _crop_rect(p203, 1.5, -0.1)
    assert np.allclose(c224, c224b) and np.isclose(s224, s224b), "106 and 203 templates must give the same crop"
    lmk203_norm = (p203 - c224) / s224 + 0.5
    c512, s512 = _crop_rect(p203, 2.3, -0.125)
    k = 512.0 / s512  # 512-crop pixels per face unit

    def to512(xy: np.ndarray) -> np.ndarray:
        return (xy - c512) * k + 256.0

    bc, bs = _BLAZE_BOX
    box128 = np.array([*(to512(bc) / 4.0), bs * k / 4.0])
    kps = np.stack([_EYE_L, _EYE_R, _NOSE_TIP, _MOUTH, *_EARS])
    kps128 = to512(kps) / 4.0
    roi_side = box128[2] * 4.0 * 1.5  # SQUARE_LONG x 1.5, in 512 px
    roi = np.array([box128[0] * 4.0, box128[1] * 4.0, roi_side])
    m = 256.0 / roi_side
    xy = (to512(p478[:, :2]) - (roi[:2] - roi_side / 2)) * m
    z = p478[:, 2:] * k * m
    return {
        "lmk106_pred": lmk106_pred,
        "lmk203_norm": lmk203_norm,
        "crop224_center": c224,
        "crop224_size": np.float64(s224),
        "crop512_center": c512,
        "crop512_size": np.float64(s512),
        "blaze_box128": box128,
        "blaze_kps128": kps128,
        "mesh_roi": roi,
        "mesh256": np.concatenate([xy, z], -1),
    }


# --------------------------------------------------------------------------------- graph helper


class _Graph:
    """A minimal ONNX graph builder: constants, nodes with generated output names."""

    def __init__(self, prefix: str) -> None:
        self.onnx, self.TP, self.h, self.nh = _onnx()
        self.prefix = prefix
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def _name(self, hint: str) -> str:
        self.n += 1
        return f"{self.prefix}_{hint}_{self.n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self._name(hint)
        self.inits.append(self.nh.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, hint: str | None = None, **attrs) -> str:
        name = out or self._name(hint or op_type.lower())
        self.nodes.append(self.h.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def model(self, inputs: list, outputs: list, doc: str) -> object:
        graph = self.h.make_graph(self.nodes, self.prefix, inputs, outputs, self.inits)
        model = self.h.make_model(
            graph,
            opset_imports=[self.h.make_opsetid("", OPSET)],
            producer_name="ditto_core.testing.standins",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        self.onnx.checker.check_model(model)
        return model

    def value_info(self, name: str, shape) -> object:
        return self.h.make_tensor_value_info(name, self.TP.FLOAT, list(shape))

    # shorthands
    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def affine(self, x: str, scale: float, shift: float) -> str:
        return self.add(self.mul(x, self.const(scale)), self.const(shift))

    def pooled_features(self, x_nchw: str, kernel: int, scale: float, shift: float, n_feat: int) -> str:
        """(1,3,4k,4k) -> AveragePool k -> (1, 48) * scale + shift."""
        p = self.op("AveragePool", x_nchw, kernel_shape=[kernel, kernel], strides=[kernel, kernel])
        f = self.op("Reshape", p, self.const([1, n_feat], dtype=np.int64))
        return self.affine(f, scale, shift)

    def perturb(self, feat: str, w: np.ndarray, amp) -> str:
        """tanh(feat @ w) * amp."""
        m = self.op("MatMul", feat, self.const(w))
        return self.mul(self.op("Tanh", m), self.const(amp))


def _linear(rng: np.random.Generator, n_in: int, n_out: int) -> np.ndarray:
    return (rng.standard_normal((n_in, n_out)) / math.sqrt(n_in) * 1.5).astype(np.float32)


# --------------------------------------------------------------------------------- detector


def build_face_detector(salt: str = "synthetic", variant: str = "pytorch"):
    """SCRFD stand-in: one face at the centre of the letterboxed image content.

    ``variant`` "pytorch": ``det_10g.onnx`` I/O (``input.1`` (1,3,H,W) with any H, W divisible by 32,
    outputs named as the release file); "onnx": ``insightface_det.onnx`` I/O (``image``
    (1,3,512,512), ``scores1`` ...). Outputs in the official order: scores s8, s16, s32 (N,1)
    after sigmoid; boxes (N,4) left/top/right/bottom distances and kps (N,10) offsets, both in
    stride units from each anchor centre; 2 anchors per cell, N = (H/s)(W/s)*2. Every anchor
    encodes the same face; only the first anchor of the stride-32 cell nearest to the face centre
    has a score above 0.5 (0.98; every other one 0.0025).

    Content: pixels whose value differs from the letterbox padding (0 in the uint8 image, i.e.
    -127.5/128 in the blob) in any channel; its extent is (max column + 1, max row + 1) of such
    pixels (the letterbox puts the image at the top left). An all-black input uses the whole input.
    """
    if variant not in ("pytorch", "onnx"):
        raise ValueError(f"variant: expected 'pytorch' (det_10g.onnx) or 'onnx' (insightface_det.onnx), got {variant!r}")
    g = _Graph("det")
    rng = _rng(salt, "face_detector")
    in_name = "input.1" if variant == "pytorch" else "image"
    out_names = DET_10G_OUTPUT_NAMES if variant == "pytorch" else _DET_ONNX_OUTPUT_NAMES
    x = in_name
    # --- content extent (pixels)
    pad = -127.5 / 128.0
    d = g.op("Abs", g.sub(x, g.const(pad)))
    dmax = g.op("ReduceMax", d, axes=[1], keepdims=1)  # (1,1,H,W)
    m = g.op("Cast", g.op("Greater", dmax, g.const(1.0 / 256.0)), to=g.TP.FLOAT)
    ones = g.add(g.mul(dmax, g.const(0.0)), g.const(1.0))
    ax3, ax2 = g.const(3, dtype=np.int64), g.const(2, dtype=np.int64)
    xs = g.op("CumSum", ones, ax3)  # 1..W
    ys = g.op("CumSum", ones, ax2)  # 1..H
    wc = g.op("ReduceMax", g.mul(m, xs), keepdims=1)
    hc = g.op("ReduceMax", g.mul(m, ys), keepdims=1)
    wfull = g.op("ReduceMax", xs, keepdims=1)
    hfull = g.op("ReduceMax", ys, keepdims=1)
    empty = g.op("Less", wc, g.const(0.5))
    wc = g.op("Where", empty, wfull, wc)
    hc = g.op("Where", empty, hfull, hc)
    # --- face centre and size, with a small input-dependent term
    gap = g.op("Reshape", g.op("GlobalAveragePool", x), g.const([1, 3], dtype=np.int64))
    pert = g.perturb(gap, _linear(rng, 3, 13), np.float32(1.0))  # (1, 13) in (-1, 1)
    pert4 = g.op("Reshape", pert, g.const([1, 13, 1, 1], dtype=np.int64))

    def pick(i: int) -> str:  # (1,1,1,1) slice of the perturbation
        return g.op("Slice", pert4, g.const([i], dtype=np.int64), g.const([i + 1], dtype=np.int64), g.const([1], dtype=np.int64))

    size = g.mul(g.op("Min", wc, hc), g.const(FACE_BOX_FRACTION))
    size = g.mul(size, g.add(g.mul(pick(2), g.const(0.02)), g.const(1.0)))
    fcx = g.add(g.mul(wc, g.const(0.5)), g.mul(g.mul(pick(0), g.const(0.01)), size))
    fcy = g.add(g.mul(hc, g.const(0.5)), g.mul(g.mul(pick(1), g.const(0.01)), size))
    jit = g.op("Slice", pert4, g.const([3], dtype=np.int64), g.const([13], dtype=np.int64), g.const([1], dtype=np.int64))  # (1,10,1,1)

    mx4, my4 = np.array([1, 0, 1, 0], np.float32), np.array([0, 1, 0, 1], np.float32)
    mx10, my10 = np.tile([1, 0], 5).astype(np.float32), np.tile([0, 1], 5).astype(np.float32)

    def vec(v: np.ndarray) -> str:
        return g.const(np.asarray(v, np.float32).reshape(1, -1, 1, 1))

    centre4 = g.add(g.mul(fcx, vec(mx4)), g.mul(fcy, vec(my4)))
    box = g.add(centre4, g.mul(size, vec(face_points("box"))))  # (1,4,1,1) x1,y1,x2,y2
    centre10 = g.add(g.mul(fcx, vec(mx10)), g.mul(fcy, vec(my10)))
    kps_face = g.add(vec(face_points("kps5").reshape(-1)), g.mul(jit, g.const(0.01)))
    kps = g.add(centre10, g.mul(size, kps_face))  # (1,10,1,1) x0,y0,...
    sgn4 = vec([1, 1, -1, -1])

    outs: dict[str, str] = {}
    for si, s in enumerate(_STRIDES):
        pm = g.op("AveragePool", m, kernel_shape=[s, s], strides=[s, s])  # (1,1,h,w)
        one_s = g.add(g.mul(pm, g.const(0.0)), g.const(1.0))
        ix = g.sub(g.op("CumSum", one_s, ax3), g.const(1.0))  # 0..w-1
        iy = g.sub(g.op("CumSum", one_s, ax2), g.const(1.0))
        gx, gy = g.mul(ix, g.const(float(s))), g.mul(iy, g.const(float(s)))
        grid4 = g.add(g.mul(gx, vec(mx4)), g.mul(gy, vec(my4)))  # (1,4,h,w)
        dist = g.mul(g.mul(g.sub(grid4, box), sgn4), g.const(1.0 / s))
        grid10 = g.add(g.mul(gx, vec(mx10)), g.mul(gy, vec(my10)))
        koff = g.mul(g.sub(kps, grid10), g.const(1.0 / s))
        if s == _FACE_STRIDE:
            cx_i = g.op("Floor", g.add(g.mul(fcx, g.const(1.0 / s)), g.const(0.5)))
            cy_i = g.op("Floor", g.add(g.mul(fcy, g.const(1.0 / s)), g.const(0.5)))
            hit_x = g.op("Relu", g.sub(g.const(1.0), g.op("Abs", g.sub(ix, cx_i))))
            hit_y = g.op("Relu", g.sub(g.const(1.0), g.op("Abs", g.sub(iy, cy_i))))
            hit = g.mul(hit_x, hit_y)  # 1 at one cell (or none if the centre is off the grid)
            logit0 = g.add(g.mul(hit, g.const(_LOGIT_ON - _LOGIT_OFF)), g.const(_LOGIT_OFF))
        else:
            logit0 = g.add(g.mul(pm, g.const(0.0)), g.const(_LOGIT_OFF))
        logit1 = g.add(g.mul(pm, g.const(0.0)), g.const(_LOGIT_OFF))
        score = g.op("Sigmoid", g.op("Concat", logit0, logit1, axis=1))  # (1,2,h,w): anchors 0, 1
        for kind, t, c in (("scores", score, 1), ("boxes", g.op("Concat", dist, dist, axis=1), 4),
                           ("kps", g.op("Concat", koff, koff, axis=1), 10)):
            nhwc = g.op("Transpose", t, perm=[0, 2, 3, 1])
            idx = {"scores": 0, "boxes": 3, "kps": 6}[kind] + si
            outs[out_names[idx]] = g.op("Reshape", nhwc, g.const([-1, c], dtype=np.int64), out=out_names[idx])

    if variant == "pytorch":
        inp = g.value_info(in_name, [1, 3, "?", "?"])
        n_dims = [f"n{s}" for s in _STRIDES]
    else:
        inp = g.value_info(in_name, [1, 3, 512, 512])
        n_dims = [(512 // s) ** 2 * 2 for s in _STRIDES]
    cols = (1, 1, 1, 4, 4, 4, 10, 10, 10)
    outputs = [g.value_info(out_names[i], [n_dims[i % 3], cols[i]]) for i in range(9)]
    return g.model([inp], outputs, f"SCRFD stand-in ({variant} variant), salt {salt!r}: one synthetic face")


# --------------------------------------------------------------------------------- landmarks


def build_landmark106(salt: str = "synthetic", variant: str = "pytorch"):
    """2d106det stand-in: ``data`` (1,3,192,192) BGR 0-255 -> ``fc1`` (1,212) in [-1,1].

    The 106 points of the synthetic face in the official 192 crop around the detector box
    ((pred + 1) * 96 gives crop pixels), +- 0.006 from the input. Both variants have the same I/O.
    """
    if variant not in ("pytorch", "onnx"):
        raise ValueError(f"variant: expected 'pytorch' or 'onnx', got {variant!r}")
    g = _Graph("l106")
    rng = _rng(salt, "landmark106")
    f = g.pooled_features("data", 48, 1.0 / 127.5, -1.0, 48)
    pert = g.perturb(f, _linear(rng, 48, 212), np.full(212, 0.006, np.float32))
    tpl = face_chain()["lmk106_pred"].reshape(1, 212)
    g.op("Add", pert, g.const(tpl), out="fc1")
    return g.model([g.value_info("data", [1, 3, 192, 192])], [g.value_info("fc1", [1, 212])],
                   f"2d106det stand-in, salt {salt!r}")


def build_landmark203(salt: str = "synthetic", variant: str = "pytorch"):
    """landmark203 stand-in: ``input`` (1,3,224,224) RGB 0-1 -> 203 points (1,406) in [0,1] of the crop.

    ``variant`` "pytorch" (``ditto_pytorch/aux_models/landmark203.onnx``): three outputs, the points at
    index 2 (placeholders (1,1) and (1,4) first); "onnx": one output ``landmarks``. +- 0.002 from the input.
    """
    if variant not in ("pytorch", "onnx"):
        raise ValueError(f"variant: expected 'pytorch' or 'onnx', got {variant!r}")
    g = _Graph("l203")
    rng = _rng(salt, "landmark203")
    f = g.pooled_features("input", 56, 2.0, -1.0, 48)
    pert = g.perturb(f, _linear(rng, 48, 406), np.full(406, 0.002, np.float32))
    tpl = face_chain()["lmk203_norm"].reshape(1, 406)
    pts_name = "landmarks" if variant == "onnx" else "pts_203"
    g.op("Add", pert, g.const(tpl), out=pts_name)
    outputs = [g.value_info(pts_name, [1, 406])]
    if variant == "pytorch":
        g.op("Sigmoid", g.perturb(f, _linear(rng, 48, 1), np.float32(1.0)), out="out_score")
        g.op("Tanh", g.op("MatMul", f, g.const(_linear(rng, 48, 4))), out="out_aux")
        outputs = [g.value_info("out_score", [1, 1]), g.value_info("out_aux", [1, 4])] + outputs
    return g.model([g.value_info("input", [1, 3, 224, 224])], outputs, f"landmark203 stand-in ({variant}), salt {salt!r}")


def build_blaze_face(salt: str = "synthetic"):
    """BlazeFace stand-in: ``input`` (1,128,128,3) RGB [-1,1] -> ``regressors`` (1,896,16), ``classificators``
    (1,896,1) logits.

    Every anchor encodes the synthetic face's box (centre offset, width, height in 128 px) and its 6
    keypoints (eye L, eye R, nose, mouth, ear L, ear R; L = image left) relative to its own centre;
    only the first anchor of the 16-stride cell holding the box centre has a positive logit (4.0 +- 0.3;
    the rest -6.0). Regressors +- 0.5 px from the input.
    """
    g = _Graph("blz")
    rng = _rng(salt, "blaze_face")
    ch = face_chain()
    anchors = blaze_anchors()
    cx, cy, side = ch["blaze_box128"]
    reg = np.zeros((896, 16), np.float32)
    reg[:, 0] = cx - anchors[:, 0] * 128.0
    reg[:, 1] = cy - anchors[:, 1] * 128.0
    reg[:, 2] = side
    reg[:, 3] = side
    for k, (kx, ky) in enumerate(ch["blaze_kps128"]):
        reg[:, 4 + 2 * k] = kx - anchors[:, 0] * 128.0
        reg[:, 5 + 2 * k] = ky - anchors[:, 1] * 128.0
    cls = np.full((896, 1), _LOGIT_OFF, np.float32)
    cell = int(cy // 16) * 8 + int(cx // 16)
    cls[512 + cell * 6, 0] = _LOGIT_ON
    x = g.op("Transpose", "input", perm=[0, 3, 1, 2])
    f = g.pooled_features(x, 32, 1.0, 0.0, 48)
    pr = g.perturb(f, _linear(rng, 48, 16), np.full(16, 0.5, np.float32))
    pc = g.perturb(f, _linear(rng, 48, 1), np.full(1, 0.3, np.float32))
    pr3 = g.op("Reshape", pr, g.const([1, 1, 16], dtype=np.int64))
    pc3 = g.op("Reshape", pc, g.const([1, 1, 1], dtype=np.int64))
    g.op("Add", pr3, g.const(reg[None]), out="regressors")
    g.op("Add", pc3, g.const(cls[None]), out="classificators")
    return g.model(
        [g.value_info("input", [1, 128, 128, 3])],
        [g.value_info("regressors", [1, 896, 16]), g.value_info("classificators", [1, 896, 1])],
        f"BlazeFace stand-in, salt {salt!r}",
    )


def build_face_mesh(salt: str = "synthetic"):
    """Face-mesh stand-in: ``input`` (1,256,256,3) RGB 0-1 -> ``Identity`` (1,1,1,1434) = 478 (x, y, z) in ROI
    pixels (+- 0.4 px from the input), ``Identity_1`` (face flag, about 0.95) and ``Identity_2``
    (about 0.05), both (1,1,1,1) and unused by Ditto."""
    g = _Graph("msh")
    rng = _rng(salt, "face_mesh")
    x = g.op("Transpose", "input", perm=[0, 3, 1, 2])
    f = g.pooled_features(x, 64, 2.0, -1.0, 48)
    pert = g.perturb(f, _linear(rng, 48, 1434), np.full(1434, 0.4, np.float32))
    mesh = g.add(pert, g.const(face_chain()["mesh256"].reshape(1, 1434)))
    g.op("Reshape", mesh, g.const([1, 1, 1, 1434], dtype=np.int64), out="Identity")
    one = g.const([1, 1, 1, 1], dtype=np.int64)
    f1 = g.add(g.perturb(f, _linear(rng, 48, 1), np.float32(0.3)), g.const(3.0))
    g.op("Reshape", g.op("Sigmoid", f1), one, out="Identity_1")
    f2 = g.add(g.perturb(f, _linear(rng, 48, 1), np.float32(0.3)), g.const(-3.0))
    g.op("Reshape", g.op("Sigmoid", f2), one, out="Identity_2")
    return g.model(
        [g.value_info("input", [1, 256, 256, 3])],
        [g.value_info("Identity", [1, 1, 1, 1434]), g.value_info("Identity_1", [1, 1, 1, 1]),
         g.value_info("Identity_2", [1, 1, 1, 1])],
        f"face mesh stand-in, salt {salt!r}",
    )


def build_hubert(salt: str = "synthetic"):
    """Streaming-HuBERT stand-in: ``input_values`` (1,6480) -> ``encoding_out`` (20,1024).

    Row i = tanh(8 * wave[324 i : 324 (i + 1)] @ W + b) with W ~ N(0, 1/324) and b ~ N(0, 0.3^2) from the
    salt: different audio gives different features, silence gives tanh(b).
    """
    g = _Graph("hub")
    rng = _rng(salt, "hubert")
    w = (rng.standard_normal((324, 1024)) * (8.0 / math.sqrt(324))).astype(np.float32)
    b = (0.3 * rng.standard_normal(1024)).astype(np.float32)
    r = g.op("Reshape", "input_values", g.const([20, 324], dtype=np.int64))
    a = g.add(g.op("MatMul", r, g.const(w)), g.const(b))
    g.op("Tanh", a, out="encoding_out")
    return g.model([g.value_info("input_values", [1, 6480])], [g.value_info("encoding_out", [20, 1024])],
                   f"streaming HuBERT stand-in, salt {salt!r}")


def save_model(model, path: str | os.PathLike[str]) -> Path:
    """Write an ONNX model (creating the folder)."""
    onnx = _onnx()[0]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(p))
    return p


#: role (``ditto_core.layout``) -> builder(salt) for the release files of the kit
STANDIN_BUILDERS: dict[str, Callable[[str], object]] = {
    "face_detector": lambda salt: build_face_detector(salt, "pytorch"),
    "landmark106": lambda salt: build_landmark106(salt, "pytorch"),
    "landmark203": lambda salt: build_landmark203(salt, "pytorch"),
    "hubert": build_hubert,
    "blaze_face": build_blaze_face,
    "face_mesh": build_face_mesh,
}
