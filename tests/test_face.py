"""Unit tests of the face maths: crop, paste mask and paste-back, SCRFD decoding, NMS, face selection, landmark
output handling, BlazeFace decoding and weighted NMS, eye features, the loader resize and x_s_info smoothing.

Expected values are computed independently here (closed forms on synthetic inputs), not taken from the code.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ditto_core.face.crop import check_resize, crop_image, crop_transform, transform_points
from ditto_core.face.detect import (
    DetectorConfig,
    FaceDetector,
    FaceTooSmallError,
    NoFaceError,
    nms,
    select_face,
)
from ditto_core.face.eyes import BlazeFace, blaze_anchors, eye_features, roi_from_detection, weighted_nms
from ditto_core.face.landmarks import Landmark106, Landmark203
from ditto_core.face.paste import paste_back, paste_mask
from ditto_core.source import smooth_x_s_info


class FakeModel:
    """Stands in for an OnnxModel: returns fixed outputs and records its inputs."""

    def __init__(self, outputs: list[np.ndarray], name: str = "fake.onnx") -> None:
        self.outputs = outputs
        self.path = Path(name)
        self.input_names = ["x"]
        self.inputs: list[np.ndarray] = []

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        self.inputs.append(inputs[0])
        return [o.copy() for o in self.outputs]


# --- crop ------------------------------------------------------------------------------------------------------


def _face_landmarks(theta: float, origin: np.ndarray, half_w: float, top: float, bottom: float) -> np.ndarray:
    """203 synthetic points in a face frame rotated by ``theta``: eye centre at the frame origin, lip centre on +y.

    Left-eye points (0, 6, 12, 18) at (-30, 0), right-eye (24, 30, 36, 42) at (30, 0), lip (48, 66) at (0, 60);
    the rest on the rectangle x in [-half_w, half_w], y in [-top, bottom] (corners included).
    """
    p = np.zeros((203, 2))
    others = [i for i in range(203) if i not in (0, 6, 12, 18, 24, 30, 36, 42, 48, 66)]
    rect = [(-half_w, -top), (half_w, -top), (half_w, bottom), (-half_w, bottom)]
    for j, i in enumerate(others):
        a, b = rect[j % 4], rect[(j + 1) % 4]
        t = (j // 4) / (len(others) // 4)
        p[i] = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    p[[0, 6, 12, 18]] = (-30, 0)
    p[[24, 30, 36, 42]] = (30, 0)
    p[[48, 66]] = (0, 60)
    # face frame -> image: x axis (cos, sin), y axis (-sin, cos)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return (p @ rot.T + origin).astype(np.float32)


@pytest.mark.parametrize("theta_deg", [0.0, 20.0, -35.0])
def test_crop_maps_eye_and_lip_centres(theta_deg):
    theta = math.radians(theta_deg)
    origin = np.array([300.0, 260.0])
    half_w, top, bottom = 80.0, 70.0, 110.0
    lmk = _face_landmarks(theta, origin, half_w, top, bottom)
    dsize, scale, vy = 512, 2.3, -0.125
    m = crop_transform(lmk, dsize, scale, 0.0, vy, True)
    # in the face frame: box x [-80, 80], y [-70, 110] -> centre (0, 20), side max(160, 180) * 2.3
    side = 180.0 * scale
    center_y = 20.0 + vy * side
    s = dsize / side
    eye_c = transform_points(np.array([origin]), m)[0]
    lip = origin + 60 * np.array([-math.sin(theta), math.cos(theta)])
    lip_c = transform_points(np.array([lip]), m)[0]
    np.testing.assert_allclose(eye_c, [dsize / 2, dsize / 2 + (0 - center_y) * s], atol=2e-3)
    np.testing.assert_allclose(lip_c, [dsize / 2, dsize / 2 + (60 - center_y) * s], atol=2e-3)
    # similarity: uniform scale s, rotation -theta
    np.testing.assert_allclose(m[:2, :2], s * np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]]), atol=1e-5)


def test_crop_image_straightens_a_rotated_rectangle():
    theta = math.radians(25.0)
    origin = np.array([320.0, 240.0])
    lmk = _face_landmarks(theta, origin, 80.0, 70.0, 110.0)
    img = np.zeros((480, 640, 3), np.uint8)
    corners = _face_landmarks(theta, origin, 80.0, 70.0, 110.0)[[1, 2, 3, 4]]  # first four rectangle points
    cv2.fillPoly(img, [np.round(corners).astype(np.int32)], (200, 120, 40))
    crop, m_c2o = crop_image(img, lmk, dsize=256, scale=1.5, vy_ratio=0.0)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    # the rectangle is axis aligned in the crop: map its corners with the inverse of M_c2o
    m_o2c = np.linalg.inv(m_c2o.astype(np.float64))
    cc = transform_points(corners.astype(np.float64), m_o2c)
    x0, x1 = cc[:, 0].min(), cc[:, 0].max()
    y0, y1 = cc[:, 1].min(), cc[:, 1].max()
    assert np.ptp(np.sort(cc[:, 0])[:2]) < 1e-2 and np.ptp(np.sort(cc[:, 1])[:2]) < 1e-2
    inside = crop[int(y0) + 3 : int(y1) - 3, int(x0) + 3 : int(x1) - 3]
    assert (inside == (200, 120, 40)).all()
    assert (crop[: max(int(y0) - 3, 0)] == 0).all() and (crop[:, : max(int(x0) - 3, 0)] == 0).all()


def test_crop_without_rotation_and_bad_input():
    lmk = _face_landmarks(math.radians(30), np.array([200.0, 200.0]), 80.0, 70.0, 110.0)
    m = crop_transform(lmk, 512, 2.3, 0.0, -0.125, rotate=False)
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == m[1, 1] > 0
    with pytest.raises(ValueError, match="lmk"):
        crop_transform(np.zeros((68, 2)), 512, 2.3)
    with pytest.raises(ValueError, match="img"):
        crop_image(np.zeros((10, 10)), lmk)


def test_vx_ratio_moves_the_crop_along_the_face_x_axis():
    lmk = _face_landmarks(0.0, np.array([300.0, 300.0]), 80.0, 70.0, 110.0)
    m0 = crop_transform(lmk, 512, 2.0, 0.0, 0.0)
    m1 = crop_transform(lmk, 512, 2.0, 0.1, 0.0)
    # shifting the centre by 0.1 * side to the right moves the content left by 0.1 * dsize
    np.testing.assert_allclose(m1[0, 2] - m0[0, 2], -0.1 * 512, atol=1e-3)
    np.testing.assert_allclose(m1[1, 2], m0[1, 2], atol=1e-4)


def test_check_resize():
    assert check_resize(np.zeros((100, 60, 3), np.uint8)).shape == (100, 60, 3)
    assert check_resize(np.zeros((101, 61, 3), np.uint8)).shape == (100, 60, 3)  # resized, not cropped
    assert check_resize(np.zeros((3000, 2000, 3), np.uint8)).shape == (1920, 1280, 3)
    assert check_resize(np.zeros((1000, 3001, 3), np.uint8), 1920).shape == (640, 1920, 3)  # 639.8 -> 640
    img = np.arange(101 * 61 * 3, dtype=np.uint8).reshape(101, 61, 3)
    np.testing.assert_array_equal(check_resize(img), cv2.resize(img, (60, 100)))


# --- paste -----------------------------------------------------------------------------------------------------


def test_paste_mask_values():
    m = paste_mask(512, 512, 0.9, 0.9)
    assert m.shape == (512, 512) and m.dtype == np.float32
    # 0.9 * 512 = 460.8 -> 460 wide, margins of 26 on each side
    assert (m[26:486, 26:486] == 1).all()
    ramp = np.arange(26) / 25
    np.testing.assert_allclose(m[:26, 256], ramp, atol=1e-7)  # top edge rises 0 -> 1
    np.testing.assert_allclose(m[486:, 256], ramp[::-1], atol=1e-7)  # bottom edge falls 1 -> 0
    np.testing.assert_allclose(m[256, :26], ramp, atol=1e-7)
    np.testing.assert_allclose(m[256, 486:], ramp[::-1], atol=1e-7)
    # top-left corner: 1 - distance to the outer corner in ramp units
    i, j = np.mgrid[:26, :26]
    expect = 1 - np.clip(np.sqrt(((25 - i) / 25) ** 2 + ((25 - j) / 25) ** 2), 0, 1)
    np.testing.assert_allclose(m[:26, :26], expect, atol=1e-6)
    np.testing.assert_array_equal(m, m[::-1, :])
    np.testing.assert_array_equal(m, m[:, ::-1])
    assert m.min() == 0 and m.max() == 1
    assert not m.flags.writeable


def test_paste_back_identity_and_offset():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    render = rng.uniform(0, 255, (512, 512, 3)).astype(np.float32)
    out = paste_back(frame, render, np.eye(3, dtype=np.float32))
    mask = paste_mask()[:, :, None].astype(np.float32)
    expect = np.clip(mask * render + (1 - mask) * frame, 0, 255).astype(np.uint8)  # truncation, not rounding
    np.testing.assert_array_equal(out, expect)
    assert (out[40:470, 40:470] == render[40:470, 40:470].astype(np.uint8)).all()

    big = rng.integers(0, 256, (600, 700, 3), dtype=np.uint8)
    m = np.array([[1, 0, 50], [0, 1, 30], [0, 0, 1]], np.float32)  # crop (x, y) -> frame (x + 50, y + 30)
    out = paste_back(big, render, m)
    inner = (slice(30 + 40, 30 + 470), slice(50 + 40, 50 + 470))
    np.testing.assert_array_equal(out[inner], render[40:470, 40:470].astype(np.uint8))
    np.testing.assert_array_equal(out[:30], big[:30])  # outside the pasted square the frame is untouched
    np.testing.assert_array_equal(out[:, :50], big[:, :50])
    np.testing.assert_array_equal(out[543:], big[543:])
    with pytest.raises(ValueError, match="frame"):
        paste_back(big.astype(np.float32), render, m)


# --- detector ----------------------------------------------------------------------------------------------------


def _iou_plus1(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_nms():
    dets = np.array(
        [
            [10, 10, 110, 110, 0.8],
            [15, 12, 112, 115, 0.9],  # overlaps box 0 strongly
            [300, 300, 350, 350, 0.7],  # disjoint
            [60, 60, 160, 160, 0.6],  # overlaps box 1 a little
        ],
        np.float32,
    )
    assert _iou_plus1(dets[1], dets[0]) > 0.4 and _iou_plus1(dets[1], dets[3]) <= 0.4
    keep = nms(dets, 0.4)
    assert keep.tolist() == [1, 2, 3]
    assert nms(dets, 0.01).tolist() == [1, 2]
    assert nms(np.zeros((0, 5), np.float32), 0.4).tolist() == []


def _scrfd_outputs(side: int, hits: dict[tuple[int, int], tuple[float, list[float], list[float]]]) -> list[np.ndarray]:
    """Fake SCRFD outputs (scores x3, boxes x3, kps x3) with given anchors set: {(stride, row): (score, dist4, kps10)}."""
    scores, boxes, kps = [], [], []
    for stride in (8, 16, 32):
        n = (side // stride) ** 2 * 2
        sc, bx, kp = np.zeros((n, 1), np.float32), np.ones((n, 4), np.float32), np.zeros((n, 10), np.float32)
        for (st, row), (score, dist, k) in hits.items():
            if st == stride:
                sc[row], bx[row], kp[row] = score, dist, k
        scores.append(sc)
        boxes.append(bx)
        kps.append(kp)
    return scores + boxes + kps


def test_scrfd_decoding_letterbox_and_output_layouts():
    # anchor (stride 32, row 2*(3*16+5)+1): cell x=5, y=3 -> centre (160, 96) in the 512 canvas
    row = 2 * (3 * 16 + 5) + 1
    dist = [1.0, 2.0, 1.5, 0.5]  # left, top, right, bottom in stride units
    kp = [0.5 * i for i in range(10)]
    outs = _scrfd_outputs(512, {(32, row): (0.9, dist, kp), (8, 7): (0.3, dist, kp)})
    det = FaceDetector(FakeModel(outs))
    img = np.zeros((512, 1024, 3), np.uint8)  # letterboxed at scale 0.5 into the top half
    img[:, :, 0] = 255  # red in RGB -> the model sees it in the last (R of BGR) channel
    boxes, kps = det.detect_faces(img)
    blob = det.model.inputs[0]
    assert blob.shape == (1, 3, 512, 512) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, 2, 0, 0], (255 - 127.5) / 128)
    np.testing.assert_allclose(blob[0, 0, 0, 0], -127.5 / 128)
    np.testing.assert_allclose(blob[0, :, 400, 0], -127.5 / 128)  # letterbox padding is black
    assert boxes.shape == (1, 5) and kps.shape == (1, 5, 2)  # score 0.3 is below det_thresh 0.5
    cx, cy = 160.0, 96.0
    expect = np.array([cx - 32 * 1.0, cy - 32 * 2.0, cx + 32 * 1.5, cy + 32 * 0.5]) / 0.5
    np.testing.assert_allclose(boxes[0, :4], expect, rtol=1e-6)
    np.testing.assert_allclose(boxes[0, 4], 0.9, rtol=1e-6)
    expect_k = (np.array([cx, cy] * 5) + 32 * np.array(kp)) / 0.5
    np.testing.assert_allclose(kps[0].ravel(), expect_k, rtol=1e-6)
    # same result with a leading batch dim and the outputs shuffled (aux_models det_10g naming/order)
    perm = [2, 7, 4, 0, 8, 5, 1, 3, 6]
    det2 = FaceDetector(FakeModel([outs[i][None] for i in perm]))
    b2, k2 = det2.detect_faces(img)
    np.testing.assert_array_equal(b2, boxes)
    np.testing.assert_array_equal(k2, kps)
    # a lower threshold lets the second anchor through
    b3, _ = FaceDetector(FakeModel(outs), config=DetectorConfig(det_thresh=0.2)).detect_faces(img)
    assert b3.shape[0] == 2 and b3[0, 4] > b3[1, 4]
    with pytest.raises(ValueError, match="SCRFD"):
        FaceDetector(FakeModel(outs[:6])).detect_faces(img)


def test_select_face_orders_mask_and_errors():
    boxes = np.array(
        [
            [400, 100, 480, 180, 0.99],  # 80 px, right
            [50, 120, 250, 320, 0.90],  # 200 px, left
            [260, 100, 380, 220, 0.95],  # 120 px, middle
            [600, 10, 620, 30, 0.97],  # 20 px: too small
        ],
        np.float32,
    )
    assert select_face(boxes) == 1  # largest
    assert select_face(boxes, index=1) == 2
    assert select_face(boxes, index=0, order="left_to_right") == 1
    assert select_face(boxes, index=2, order="left_to_right") == 0
    assert select_face(boxes, order="score") == 0
    assert select_face(boxes, index=-1, order="left_to_right") == 0  # the tiny face is not a candidate
    assert select_face(boxes, order="left_to_right", index=3, min_size=0) == 3
    mask = np.zeros((400, 700), np.uint8)
    mask[:, 300:500] = 1  # centres x: 440, 150, 320, 610
    assert select_face(boxes, region_mask=mask) == 2
    assert select_face(boxes, region_mask=mask, index=1) == 0
    with pytest.raises(ValueError, match="face_index"):
        select_face(boxes, region_mask=mask, index=2)
    empty = np.zeros((400, 700), np.uint8)
    with pytest.raises(NoFaceError, match="region_mask"):
        select_face(boxes, region_mask=empty)
    with pytest.raises(NoFaceError, match=r"score >= 0\.5"):
        select_face(np.zeros((0, 5), np.float32), det_thresh=0.5)
    with pytest.raises(FaceTooSmallError, match=r"20\.0 px.*min_face_size = 32"):
        select_face(boxes[3:])
    assert issubclass(NoFaceError, ValueError) and issubclass(FaceTooSmallError, ValueError)


# --- landmarks -----------------------------------------------------------------------------------------------------


def test_landmark106_maps_crop_centre_to_box_centre():
    model = FakeModel([np.zeros((1, 212), np.float32)])
    pts = Landmark106(model)(np.full((300, 400, 3), 7, np.uint8), np.array([100, 50, 180, 170, 0.9]))
    np.testing.assert_allclose(pts, np.tile([[140.0, 110.0]], (106, 1)), atol=1e-4)
    # prediction (1, 1) is the crop's bottom-right corner (192, 192): box centre + 96 / s, s = 192 / (1.5 * 120)
    model.outputs = [np.ones((1, 212), np.float32)]
    pts = Landmark106(model)(np.zeros((300, 400, 3), np.uint8), np.array([100, 50, 180, 170]))
    np.testing.assert_allclose(pts[0], [140 + 96 / (192 / 180), 110 + 96 / (192 / 180)], atol=1e-3)
    blob = model.inputs[-1]
    assert blob.shape == (1, 3, 192, 192) and blob.dtype == np.float32


def test_landmark203_picks_the_406_output_and_maps_back():
    pts = np.linspace(0, 1, 406, dtype=np.float32).reshape(1, 406)
    three = FakeModel([np.zeros((1, 214), np.float32), np.zeros((1, 262), np.float32), pts])  # aux_models layout
    one = FakeModel([pts])  # ditto_onnx layout ("landmarks")
    crop = np.zeros((224, 224, 3), np.uint8)
    m = np.array([[2, 0, 10], [0, 2, 20], [0, 0, 1]], np.float32)
    a = Landmark203(three).run(crop, m)
    b = Landmark203(one).run(crop, m)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, pts.reshape(-1, 2) * 224 * 2 + [10, 20], rtol=1e-6)
    assert one.inputs[0].shape == (1, 3, 224, 224)
    with pytest.raises(ValueError, match="406"):
        Landmark203(FakeModel([np.zeros((1, 10), np.float32)])).run(crop)


# --- BlazeFace and eyes -----------------------------------------------------------------------------------------


def test_blaze_anchors_and_decoding():
    a = blaze_anchors()
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # 2 anchors per cell on the 16 grid
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[512 + 6], [1.5 / 8, 0.5 / 8])  # 6 per cell on the 8 grid
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    i = 512 + 6 * (8 * 3 + 4)  # cell (x=4, y=3) of the 8 grid: centre (4.5/8, 3.5/8)
    reg[0, i, :4] = [8.0, -4.0, 40.0, 20.0]
    reg[0, i, 4:6] = [12.8, 0.0]
    logits[0, i] = 2.0
    model = FakeModel([reg, logits])
    dets = BlazeFace(model)(np.zeros((256, 256, 3), np.uint8))
    assert dets.shape == (1, 17)
    xc, yc = 4.5 / 8 * 128 + 8.0, 3.5 / 8 * 128 - 4.0
    np.testing.assert_allclose(dets[0, :4], [xc - 20, yc - 10, xc + 20, yc + 10], atol=1e-4)
    np.testing.assert_allclose(dets[0, 4:6], [4.5 / 8 + 0.1, 3.5 / 8], atol=1e-6)
    np.testing.assert_allclose(dets[0, 16], 1 / (1 + math.exp(-2.0)), rtol=1e-6)
    x = model.inputs[0]
    assert x.shape == (1, 128, 128, 3) and np.allclose(x, -1.0)


def test_weighted_nms_merges_overlapping_detections():
    d = np.zeros((3, 17), np.float32)
    d[0, :4], d[0, 16] = [0, 0, 10, 10], 0.9
    d[1, :4], d[1, 16] = [1, 1, 11, 11], 0.6  # IoU 81/119 > 0.3 with the first
    d[2, :4], d[2, 16] = [50, 50, 60, 60], 0.7
    d[0, 4:16], d[1, 4:16] = 1.0, 2.0
    out = weighted_nms(d, 0.3)
    assert out.shape == (2, 17)
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(out[0, :4], w[0] * d[0, :4] + w[1] * d[1, :4], rtol=1e-6)
    np.testing.assert_allclose(out[0, 4:16], w[0] * 1.0 + w[1] * 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[0, 16], 0.75, rtol=1e-6)
    np.testing.assert_array_equal(out[1], d[2])
    degenerate = np.zeros((2, 17), np.float32)
    degenerate[:, 16] = [0.8, 0.7]
    assert weighted_nms(degenerate).shape[0] == 2  # zero-area boxes terminate


def test_mesh_roi_rotation_follows_the_eye_line():
    det = np.zeros(17, np.float32)
    det[:4] = [32, 32, 96, 96]
    det[4:8] = [0.3, 0.5, 0.7, 0.6]  # eyes, second one lower
    roi = roi_from_detection(det, (512, 512))
    np.testing.assert_allclose(roi[:4], [256, 256, 256 * 1.5, 256 * 1.5])
    np.testing.assert_allclose(roi[4], math.atan2(0.1, 0.4), rtol=1e-6)


def test_eye_features_closed_form():
    p = np.zeros((2, 478, 3), np.float32)
    for f in range(2):
        # left eye: corners 33 (outer) at (0, 0), 133 (inner) at (0.2, 0); right eye: 263 at (1, 0), 362 at (0.8, 0)
        p[f, 33], p[f, 133] = (0.0, 0, 0), (0.2, 0, 0)
        p[f, 263], p[f, 362] = (1.0, 0, 0), (0.8, 0, 0)
        for k, (i, j) in enumerate(((145, 159), (144, 160), (153, 158))):
            p[f, i], p[f, j] = (0.05 * (k + 1), 0.02, 0), (0.05 * (k + 1), -0.02 * (f + 1), 0)
        for k, (i, j) in enumerate(((374, 386), (373, 387), (380, 385))):
            p[f, i], p[f, j] = (0.85 + 0.03 * k, 0.01, 0), (0.85 + 0.03 * k, -0.01, 0)
    p[0, 468] = (0.1, 0.0, 0.0)  # iris at the eye centre
    p[0, 473] = (0.9, 0.0, 0.0)
    p[1, 468] = (0.1, 0.03, 0.04)  # iris moved down and back by 0.05
    p[1, 473] = (0.93, 0.0, 0.0)  # iris moved 0.03 towards the outer corner
    eo, eb = eye_features(p)
    assert eo.shape == (2, 2) and eb.shape == (2, 6)
    np.testing.assert_allclose(eo[0], [3 * 0.04 / 0.2, 3 * 0.02 / 0.2], rtol=1e-5)
    np.testing.assert_allclose(eo[1], [3 * 0.06 / 0.2, 3 * 0.02 / 0.2], rtol=1e-5)
    # frame 0: ball at the centre -> zero movement
    np.testing.assert_allclose(eb[0], 0, atol=1e-6)
    # frame 1, left: (dir(0, .6, .8) - dir(outer - inner) = (-1, 0, 0)) * 0.05 = (0.05, 0.03, 0.04)
    # right: dir (1, 0, 0) - (1, 0, 0) = 0; layout xL, xR, yL, yR, zL, zR
    np.testing.assert_allclose(eb[1], [0.05, 0.0, 0.03, 0.0, 0.04, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="lmk478"):
        eye_features(np.zeros((1, 468, 3)))


# --- x_s_info smoothing ---------------------------------------------------------------------------------------------


def test_smooth_x_s_info_truncated_window():
    x = {"t": torch.arange(5, dtype=torch.float32).reshape(5, 1), "kp": torch.ones(5, 63)}
    out = smooth_x_s_info(x, 3)
    np.testing.assert_allclose(out["t"].ravel().numpy(), [0.5, 1, 2, 3, 3.5])
    assert torch.equal(out["kp"], x["kp"])
    out13 = smooth_x_s_info(x, 13)
    np.testing.assert_allclose(out13["t"].ravel().numpy(), [2.0] * 5)
    assert torch.equal(smooth_x_s_info(x, 1)["t"], x["t"])
