"""Stand-in aux models (official I/O, one sensible face) and the synthetic model kit (official layout/formats)."""

from __future__ import annotations

import hashlib
import math
import pickle

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

from conftest import golden_dir  # noqa: E402

from ditto_core import layout
from ditto_core.testing import standins  # noqa: E402
from ditto_core.testing.kit import (  # noqa: E402
    SyntheticKitError,
    blink_template,
    is_synthetic_kit,
    main,
    make_synthetic_kit,
)

from conftest import KIT_SALT as SALT  # noqa: E402  (the kit of conftest uses it)


def session(model) -> "ort.InferenceSession":
    data = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def io_of(model) -> tuple[list, list]:
    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]

    return [(i.name, dims(i)) for i in model.graph.input], [(o.name, dims(o)) for o in model.graph.output]


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured RGB test picture without pure black pixels (black is the letterbox padding)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 200 // w + 20, y * 200 // h + 20, rng.integers(20, 235, (h, w))], -1)
    return img.astype(np.uint8)


# ------------------------------------------------------------------ reference decoding (official algorithms)


def ref_detect(sess, img_rgb: np.ndarray, thresh: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """SCRFD as the official InsightFaceDet: 512 letterbox (top left), BGR blob, 2 anchors, strides 8/16/32, NMS 0.4."""
    h, w = img_rgb.shape[:2]
    if h / w > 1.0:
        nh, nw = 512, int(512 / (h / w))
    else:
        nw, nh = 512, int(512 * (h / w))
    det_scale = nh / h
    canvas = np.zeros((512, 512, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(img_rgb, (nw, nh))
    blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, (512, 512), (127.5, 127.5, 127.5), swapRB=True)
    outs = sess.run(None, {sess.get_inputs()[0].name: blob})
    dets, kpss = [], []
    for i, s in enumerate((8, 16, 32)):
        scores, boxes, kps = outs[i][:, 0], outs[i + 3] * s, outs[i + 6] * s
        n = 512 // s
        c = (np.stack(np.mgrid[:n, :n][::-1], -1).astype(np.float32) * s).reshape(-1, 2)
        c = np.repeat(c, 2, axis=0)
        pos = np.flatnonzero(scores >= thresh)
        b = np.stack([c[:, 0] - boxes[:, 0], c[:, 1] - boxes[:, 1], c[:, 0] + boxes[:, 2], c[:, 1] + boxes[:, 3]], -1)
        k = np.tile(c, 5) + kps
        dets.append(np.hstack([b[pos] / det_scale, scores[pos, None]]))
        kpss.append(k[pos].reshape(-1, 5, 2) / det_scale)
    dets, kpss = np.concatenate(dets), np.concatenate(kpss)
    order = np.argsort(-dets[:, 4])
    dets, kpss = dets[order], kpss[order]
    keep = []
    idx = np.arange(len(dets))
    while idx.size:
        i = idx[0]
        keep.append(i)
        xx1 = np.maximum(dets[i, 0], dets[idx[1:], 0])
        yy1 = np.maximum(dets[i, 1], dets[idx[1:], 1])
        xx2 = np.minimum(dets[i, 2], dets[idx[1:], 2])
        yy2 = np.minimum(dets[i, 3], dets[idx[1:], 3])
        inter = np.maximum(0, xx2 - xx1 + 1) * np.maximum(0, yy2 - yy1 + 1)
        area = lambda d: (d[..., 2] - d[..., 0] + 1) * (d[..., 3] - d[..., 1] + 1)  # noqa: E731
        ovr = inter / (area(dets[i]) + area(dets[idx[1:]]) - inter)
        idx = idx[1:][ovr <= 0.4]
    return dets[keep], kpss[keep]


def ref_106(sess, img_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The official 106 crop: 192 px around the box centre, scale 192 / (1.5 max(w, h)); (pred + 1) * 96 back to the image."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    s = 192 / (max(w, h) * 1.5)
    M = np.array([[s, 0, 96 - s * cx], [0, s, 96 - s * cy]], np.float32)
    crop = cv2.warpAffine(img_rgb, M, (192, 192), borderValue=0.0)
    blob = cv2.dnn.blobFromImage(crop, 1.0, (192, 192), (0, 0, 0), swapRB=True)
    pred = sess.run(None, {sess.get_inputs()[0].name: blob})[0].reshape(-1, 2)
    pts = (pred + 1) * 96
    return (pts - M[:, 2]) / s


def ref_crop(pts: np.ndarray, dsize: int, scale: float, vy: float) -> tuple[np.ndarray, np.ndarray]:
    """The official landmark crop (LivePortrait ``crop_image``): rotation from the eye -> lip axis; (M_o2c, M_c2o)."""
    if len(pts) == 106:
        eye = (pts[[33, 35, 40, 39]].mean(0) + pts[[87, 89, 94, 93]].mean(0)) / 2
        lip = (pts[52] + pts[61]) / 2
    else:
        eye = (pts[[0, 6, 12, 18]].mean(0) + pts[[24, 30, 36, 42]].mean(0)) / 2
        lip = (pts[48] + pts[66]) / 2
    uy = (lip - eye) / np.linalg.norm(lip - eye)
    ux = np.array([uy[1], -uy[0]])
    R = np.stack([ux, uy])
    c0 = pts.mean(0)
    r = (pts - c0) @ R.T
    lo, hi = r.min(0), r.max(0)
    size = max(hi - lo) * scale
    center = c0 + ux * (lo + hi)[0] / 2 + uy * (lo + hi)[1] / 2 + uy * vy * size
    s = dsize / size
    A = s * R
    M = np.vstack([np.hstack([A, (dsize / 2 - A @ center)[:, None]]), [0, 0, 1]])
    return M, np.linalg.inv(M)


def ref_203(sess, img_rgb: np.ndarray, track_pts: np.ndarray) -> np.ndarray:
    M, Mi = ref_crop(track_pts, 224, 1.5, -0.1)
    crop = cv2.warpAffine(img_rgb, M[:2], (224, 224), flags=cv2.INTER_LINEAR)
    inp = (crop.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    out = sess.run(None, {sess.get_inputs()[0].name: inp})
    pts = [o for o in out if o.size == 406][-1].reshape(-1, 2) * 224
    return pts @ Mi[:2, :2].T + Mi[:2, 2]


# ------------------------------------------------------------------ stand-in models: I/O


@pytest.fixture(scope="module")
def models():
    return {
        "det": standins.build_face_detector(SALT, "pytorch"),
        "det_onnx": standins.build_face_detector(SALT, "onnx"),
        "l106": standins.build_landmark106(SALT),
        "l203": standins.build_landmark203(SALT, "pytorch"),
        "l203_onnx": standins.build_landmark203(SALT, "onnx"),
        "blaze": standins.build_blaze_face(SALT),
        "mesh": standins.build_face_mesh(SALT),
        "hubert": standins.build_hubert(SALT),
    }


def test_detector_official_io(models):
    ins, outs = io_of(models["det"])
    assert ins == [("input.1", [1, 3, "?", "?"])]
    assert [o[0] for o in outs] == list(standins.DET_10G_OUTPUT_NAMES)
    s = session(models["det"])
    for side, ns in ((512, (8192, 2048, 512)), (640, (12800, 3200, 800))):  # dynamic input like det_10g
        res = s.run(None, {"input.1": np.zeros((1, 3, side, side), np.float32)})
        shapes = [r.shape for r in res]
        assert shapes == [(n, 1) for n in ns] + [(n, 4) for n in ns] + [(n, 10) for n in ns]
        assert all(np.isfinite(r).all() for r in res)
        assert all(((r >= 0) & (r <= 1)).all() for r in res[:3])  # scores after sigmoid


def test_onnx_variants_match_golden_standin_io(models):
    """The ditto_onnx variants have the I/O of the golden stand-ins (same names, shapes, order)."""
    pairs = {
        "standin_insightface_det.onnx": "det_onnx",
        "standin_landmark106.onnx": "l106",
        "standin_landmark203.onnx": "l203_onnx",
        "standin_blaze_face.onnx": "blaze",
        "standin_face_mesh.onnx": "mesh",
        "hubert_standin.onnx": "hubert",
    }
    found = 0
    for fname, key in pairs.items():
        p = golden_dir() / fname
        if not p.exists():
            continue
        found += 1
        assert io_of(models[key]) == io_of(onnx.load(str(p))), fname
    if not found:
        pytest.skip("no golden stand-ins present")


def test_landmark_and_mesh_io(models):
    s = session(models["l106"])
    assert [i.name for i in s.get_inputs()] == ["data"] and [o.name for o in s.get_outputs()] == ["fc1"]
    out = s.run(None, {"data": np.full((1, 3, 192, 192), 128, np.float32)})[0]
    assert out.shape == (1, 212) and np.abs(out).max() <= 1

    s = session(models["l203"])
    assert [i.name for i in s.get_inputs()] == ["input"]
    outs = s.run(None, {"input": np.full((1, 3, 224, 224), 0.5, np.float32)})
    assert len(outs) == 3 and outs[2].shape == (1, 406)
    assert [o.size for o in outs].count(406) == 1
    assert (outs[2] > 0).all() and (outs[2] < 1).all()
    s = session(models["l203_onnx"])
    assert [o.name for o in s.get_outputs()] == ["landmarks"]

    s = session(models["blaze"])
    reg, cls = s.run(None, {"input": np.zeros((1, 128, 128, 3), np.float32)})
    assert reg.shape == (1, 896, 16) and cls.shape == (1, 896, 1)
    assert (cls > 0).sum() == 1  # one confident anchor (logit > 0 <=> sigmoid > 0.5)

    s = session(models["mesh"])
    assert [o.name for o in s.get_outputs()] == ["Identity", "Identity_1", "Identity_2"]
    m, f1, f2 = s.run(None, {"input": np.full((1, 256, 256, 3), 0.5, np.float32)})
    assert m.shape == (1, 1, 1, 1434) and f1.shape == f2.shape == (1, 1, 1, 1)


def test_hubert_io_and_input_dependence(models):
    s = session(models["hubert"])
    assert [i.name for i in s.get_inputs()] == ["input_values"]
    assert [o.name for o in s.get_outputs()] == ["encoding_out"]
    rng = np.random.default_rng(3)
    a = (0.1 * rng.standard_normal((1, 6480))).astype(np.float32)
    b = (0.1 * rng.standard_normal((1, 6480))).astype(np.float32)
    fa, fb = (s.run(None, {"input_values": x})[0] for x in (a, b))
    assert fa.shape == (20, 1024) and np.isfinite(fa).all()
    assert np.abs(fa - fb).mean() > 0.1  # different audio, different features
    assert np.array_equal(fa, s.run(None, {"input_values": a})[0])
    # frame i depends on samples [324 i, 324 (i + 1)) only
    c = a.copy()
    c[0, :324] = 0
    fc = s.run(None, {"input_values": c})[0]
    assert not np.allclose(fc[0], fa[0]) and np.array_equal(fc[1:], fa[1:])


def test_standins_deterministic_per_salt():
    a = standins.build_landmark203("s1").SerializeToString()
    assert a == standins.build_landmark203("s1").SerializeToString()
    assert a != standins.build_landmark203("s2").SerializeToString()


# ------------------------------------------------------------------ stand-in models: one sensible face


@pytest.mark.parametrize("hw", [(720, 1280), (900, 500), (512, 512)])
def test_detector_one_centred_face(models, hw):
    h, w = hw
    dets, kps = ref_detect(session(models["det"]), picture(h, w))
    assert dets.shape == (1, 5), f"expected exactly one face, got {len(dets)}"
    x1, y1, x2, y2, score = dets[0]
    assert score > 0.9
    assert abs((x1 + x2) / 2 - w / 2) < 0.03 * min(h, w)
    assert abs((y1 + y2) / 2 - h / 2) < 0.03 * min(h, w)
    assert (y2 - y1) == pytest.approx(standins.FACE_BOX_FRACTION * min(h, w), rel=0.05)
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    le, re, nose, ml, mr = kps[0]
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]  # left to right
    assert le[1] < nose[1] < ml[1] and re[1] < nose[1] < mr[1]  # eyes above the nose above the mouth
    assert ((kps[0] > [x1, y1]) & (kps[0] < [x2, y2])).all()


def test_detector_ignores_letterbox_padding(models):
    """A wide picture fills only the top of the 512 letterbox: the face is at the picture's centre, not the
    letterbox's, and the ditto_onnx variant agrees with det_10g."""
    img = picture(300, 800)
    d1, _ = ref_detect(session(models["det"]), img)
    d2, _ = ref_detect(session(models["det_onnx"]), img)
    assert d1.shape == d2.shape == (1, 5)
    np.testing.assert_allclose(d1, d2, atol=1e-3)
    assert abs((d1[0, 0] + d1[0, 2]) / 2 - 400) < 10 and abs((d1[0, 1] + d1[0, 3]) / 2 - 150) < 10


@pytest.mark.parametrize("hw", [(720, 1280), (900, 500)])
def test_landmark_chain_is_a_face(models, hw):
    """det -> 106 -> 224 crop -> 203 -> 512 crop: the points form the face the detector found, and a 224 crop
    from the 203 points (video tracking) gives the same points again."""
    h, w = hw
    img = picture(h, w, seed=5)
    dets, kps = ref_detect(session(models["det"]), img)
    box = dets[0]
    bh = box[3] - box[1]
    p106 = ref_106(session(models["l106"]), img, box)
    eye_l, eye_r = p106[[33, 35, 40, 39]].mean(0), p106[[87, 89, 94, 93]].mean(0)
    lip = (p106[52] + p106[61]) / 2
    assert np.linalg.norm(eye_l - kps[0, 0]) < 0.05 * bh and np.linalg.norm(eye_r - kps[0, 1]) < 0.05 * bh
    assert np.linalg.norm(lip - kps[0, 3:5].mean(0)) < 0.05 * bh
    s203 = session(models["l203"])
    p203 = ref_203(s203, img, p106)
    e203 = (p203[[0, 6, 12, 18]].mean(0) + p203[[24, 30, 36, 42]].mean(0)) / 2
    assert np.linalg.norm(e203 - (eye_l + eye_r) / 2) < 0.03 * bh
    assert p203[:, 1].min() > box[1] - 0.1 * bh and p203[:, 1].max() < box[3] + 0.1 * bh
    tracked = ref_203(s203, img, p203)
    assert np.abs(tracked - p203).max() < 0.02 * bh
    # the 512 crop (scale 2.3) keeps the face upright and centred, mostly inside the image
    M, Mi = ref_crop(p203, 512, 2.3, -0.125)
    q = p203 @ M[:2, :2].T + M[:2, 2]
    assert abs(math.atan2(M[1, 0], M[0, 0])) < 0.02  # no rotation
    assert 150 < q[:, 0].mean() < 362 and 150 < q[:, 1].mean() < 362
    corners = np.array([[0, 0], [511, 511]]) @ Mi[:2, :2].T + Mi[:2, 2]
    assert corners[1, 0] - corners[0, 0] < 1.0 * min(h, w)


def test_blaze_and_mesh_give_open_eyes(models):
    """On the 512 crop: BlazeFace finds one face, the mesh of its ROI has open eyes with the irises inside."""
    chain = standins.face_chain()
    sb, sm = session(models["blaze"]), session(models["mesh"])
    crop = picture(512, 512, seed=2)
    x = (cv2.resize(crop, (128, 128)).astype(np.float32) / 127.5 - 1)[None]
    reg, cls = sb.run(None, {"input": x})
    pos = np.flatnonzero(1 / (1 + np.exp(-cls[0, :, 0])) >= 0.5)
    assert len(pos) == 1
    anchors = standins.blaze_anchors()
    r, a = reg[0, pos[0]], anchors[pos[0]]
    cx, cy, bw, bh = (r[0] / 128 + a[0]) * 512, (r[1] / 128 + a[1]) * 512, r[2] / 128 * 512, r[3] / 128 * 512
    assert 200 < cx < 312 and 230 < cy < 380 and 120 < bw < 300 and 120 < bh < 300
    eyes = np.array([[r[4], r[5]], [r[6], r[7]]]) / 128 + a  # normalised
    assert eyes[0, 0] < eyes[1, 0] and abs(eyes[0, 1] - eyes[1, 1]) < 0.02
    side = max(bw, bh) * 1.5
    M = np.array([[256 / side, 0, -(cx - side / 2) * 256 / side], [0, 256 / side, -(cy - side / 2) * 256 / side]])
    roi = cv2.warpAffine(crop, M, (256, 256))
    mesh = sm.run(None, {"input": (roi.astype(np.float32) / 255)[None]})[0].reshape(478, 3)
    assert np.isfinite(mesh).all() and (mesh[:, :2] > 0).all() and (mesh[:, :2] < 256).all()
    np.testing.assert_allclose(mesh, chain["mesh256"], atol=1.0)
    for o, i, h0, iris in ((33, 133, (145, 159), 468), (263, 362, (374, 386), 473)):
        width = np.linalg.norm(mesh[o] - mesh[i])
        height = np.linalg.norm(mesh[h0[0]] - mesh[h0[1]])
        assert 0.2 < height / width < 0.6  # open
        centre = (mesh[o] + mesh[i]) / 2
        assert 0 < np.linalg.norm(mesh[iris] - centre) < 0.2 * width  # iris near the eye centre
    assert mesh[33, 0] < mesh[263, 0]  # eye L (image left) left of eye R
    assert mesh[[33, 263], 1].max() < mesh[:, 1].max() - 30  # eyes well above the lowest (chin) points


# ------------------------------------------------------------------ the kit


@pytest.fixture(scope="session")
def kit(synthetic_kit):
    """The session's synthetic kit (conftest), built with ``SALT``."""
    return synthetic_kit


def test_kit_layout_and_marker(kit):
    for f in layout.NETWORK_FILES + layout.AUX_FILES + layout.CONFIG_FILES:
        if f.required or f.role == "config":
            assert (kit / f.release_path).is_file(), f.release_path
    assert is_synthetic_kit(kit)
    text = (kit / layout.SYNTHETIC_MARKER).read_text()
    assert "random" in text and "NOISE" in text and SALT in text


def _seed(salt: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "little") % 2**63


def test_kit_checkpoints_official_formats(kit):
    from ditto_core.testing.kit import _model_classes

    classes = _model_classes()
    models_dir = kit / "ditto_pytorch" / "models"
    for role in ("appearance_extractor", "motion_extractor", "warp_network", "decoder"):
        sd = torch.load(models_dir / layout.BY_ROLE[role].filename, map_location="cpu", weights_only=True)
        assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
        net = classes[role]()
        net.load_state_dict(sd, strict=True)
    # the weight rule, computed independently for one entry
    sd = torch.load(models_dir / "appearance_extractor.pth", map_location="cpu", weights_only=True)
    key = next(k for k, v in sd.items() if v.ndim == 5)
    shape = tuple(sd[key].shape)
    g = torch.Generator().manual_seed(_seed(SALT, key))
    want = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    assert torch.equal(sd[key], want)

    ck = torch.load(models_dir / "lmdm_v0.4_hubert.pth", map_location="cpu", weights_only=True)
    assert list(ck) == ["model_state_dict"] and len(ck["model_state_dict"]) == 249
    classes["lmdm"]().load_state_dict(ck["model_state_dict"], strict=True)

    ck = torch.load(models_dir / "stitch_network.pth", map_location="cpu", weights_only=True)
    assert set(ck) == {"retarget_shoulder", "retarget_mouth", "retarget_eye"}
    for name, sizes in (
        ("retarget_shoulder", (126, 128, 128, 64, 65)),
        ("retarget_mouth", (65, 128, 128, 64, 63)),
        ("retarget_eye", (66, 256, 256, 128, 128, 64, 63)),
    ):
        sub = ck[name]
        assert all(k.startswith("module.mlp.") for k in sub)
        for j in range(len(sizes) - 1):
            assert tuple(sub[f"module.mlp.{2 * j}.weight"].shape) == (sizes[j + 1], sizes[j])
            assert tuple(sub[f"module.mlp.{2 * j}.bias"].shape) == (sizes[j + 1],)
        assert len(sub) == 2 * (len(sizes) - 1)
    shoulder = {k[len("module.") :]: v for k, v in ck["retarget_shoulder"].items()}
    classes["stitch_network"]().load_state_dict(shoulder, strict=True)


def test_kit_config_official_structure(kit):
    rel = layout.BY_ROLE["config"].release_path
    with open(kit / rel, "rb") as f:
        cfg = pickle.load(f)
    assert set(cfg) == {"base_cfg", "audio2motion_cfg", "default_kwargs"}
    base = cfg["base_cfg"]
    assert set(base) >= {
        "insightface_det_cfg", "landmark106_cfg", "landmark203_cfg", "landmark478_cfg", "appearance_extractor_cfg",
        "motion_extractor_cfg", "stitch_network_cfg", "warp_network_cfg", "decoder_cfg", "hubert_cfg",
    }
    data_root = kit / "ditto_pytorch"  # the official parse_cfg joins relative paths to data_root
    for k, v in base.items():
        if k == "landmark478_cfg":
            for kk in ("blaze_face_model_path", "face_mesh_model_path"):
                assert (data_root / v[kk]).resolve().is_file(), (k, kk, v[kk])
        else:
            assert (data_root / v["model_path"]).resolve().is_file(), (k, v["model_path"])
    a2m = cfg["audio2motion_cfg"]
    assert (data_root / a2m["model_path"]).resolve() == (kit / layout.BY_ROLE["lmdm"].release_path).resolve()
    assert (a2m["motion_feat_dim"], a2m["audio_feat_dim"], a2m["seq_frames"], a2m["w2f_type"]) == (265, 1103, 80, "hubert")
    kw = cfg["default_kwargs"]
    eye = kw["delta_eye_arr"]
    assert isinstance(eye, np.ndarray) and eye.shape == (15, 63) and eye.dtype == np.float32
    assert not eye[0].any() and np.abs(eye).max() > 0


def test_kit_aux_models_run(kit):
    for role in ("face_detector", "landmark106", "landmark203", "hubert", "blaze_face", "face_mesh"):
        s = session(kit / layout.BY_ROLE[role].release_path)
        assert len(s.get_outputs()) in (1, 2, 3, 9)
    dets, _ = ref_detect(session(kit / layout.BY_ROLE["face_detector"].release_path), picture(400, 600))
    assert len(dets) == 1


def test_blink_template():
    t = blink_template(9)
    assert t.shape == (9, 63) and t.dtype == np.float32
    assert not t[0].any() and not t[-1].any()
    moved = np.flatnonzero(np.abs(t).max(0) > 0)
    assert set(moved) == {3 * k + 1 for k in (11, 13, 15, 16, 18)}  # y of the eye keypoints only
    with pytest.raises(ValueError, match="blink_frames"):
        blink_template(2)


def test_small_kits_deterministic_and_safe(tmp_path):
    a = make_synthetic_kit(tmp_path / "a", salt="s", blink_frames=9, parts=("aux", "config"))
    b = make_synthetic_kit(tmp_path / "b", salt="s", blink_frames=9, parts=("aux", "config"))
    c = make_synthetic_kit(tmp_path / "c", salt="other", parts=("aux",))
    det = layout.BY_ROLE["face_detector"].release_path
    assert (a / det).read_bytes() == (b / det).read_bytes() != (c / det).read_bytes()
    with open(a / layout.BY_ROLE["config"].release_path, "rb") as f:
        assert pickle.load(f)["default_kwargs"]["delta_eye_arr"].shape == (9, 63)
    # a synthetic kit can be rebuilt in place
    make_synthetic_kit(a, salt="s", parts=("config",))
    # real files (no marker) are never overwritten
    real = tmp_path / "real"
    (real / "ditto_pytorch" / "models").mkdir(parents=True)
    dec = real / layout.BY_ROLE["decoder"].release_path
    dec.write_bytes(b"real weights")
    with pytest.raises(SyntheticKitError, match="refusing"):
        make_synthetic_kit(real, parts=("config",))
    assert dec.read_bytes() == b"real weights" and not is_synthetic_kit(real)
    with pytest.raises(ValueError, match="parts"):
        make_synthetic_kit(tmp_path / "d", parts=("weights",))


def test_cli(tmp_path, capsys):
    assert main([str(tmp_path / "k"), "--parts", "config", "--blink-frames", "5"]) == 0
    assert (tmp_path / "k" / layout.SYNTHETIC_MARKER).is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "k")
