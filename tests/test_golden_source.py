"""Golden parity of source registration (``source_register_image``, ``source_register_video``).

The aux models are the golden folder's ONNX stand-ins (``standin_*.onnx``, the ``ditto_onnx`` I/O); the appearance
and motion extractors are filled by the weight rule with the file's salt. Every input comes from the golden folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_close_rel, assert_images_close, golden_dir, golden_file, golden_missing, load_golden
from ditto_core.face import FaceModels, FaceTooSmallError, NoFaceError
from ditto_core.face.eyes import eye_features
from ditto_core.inputs import read_image
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.source import X_S_KEYS, Source, register_source, smooth_x_s_info, source_motion, track_faces
from ditto_core.testing.weight_rule import apply_weight_rule

pytestmark = pytest.mark.golden

TOL_GEOM = 1e-4  # landmarks, boxes, matrices
TOL_NET = 1e-4  # x_s_info, f_s
TOL_EYE = 1e-4  # eye features, lmk478


def _face_models() -> FaceModels:
    paths = [golden_file(f"standin_{n}.onnx") for n in ("insightface_det", "landmark106", "landmark203", "blaze_face",
                                                         "face_mesh")]
    return FaceModels.from_paths(*paths[:3], blaze_face=paths[3], face_mesh=paths[4], device="cpu")


def _networks(salt: str) -> tuple[AppearanceFeatureExtractor, MotionExtractor]:
    return apply_weight_rule(AppearanceFeatureExtractor(), salt), apply_weight_rule(MotionExtractor(), salt)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@pytest.fixture(scope="module")
def image_run() -> tuple[dict, Source, FaceModels, np.ndarray]:
    g = load_golden("source_register_image")
    image = load_golden("source_image")["image_u8"].numpy()
    fm = _face_models()
    app, mot = _networks(g.salt)
    src = register_source(image, fm, app, mot, device="cpu", crop_scale=2.3, vy_ratio=-0.125, smo_k_s=13)
    return g, src, fm, image


@pytest.fixture(scope="module")
def video_run() -> tuple[dict, Source, object, FaceModels]:
    g = load_golden("source_register_video")
    fm = _face_models()
    app, mot = _networks(g.salt)
    frames = g["frames_u8"].numpy()
    src = register_source(frames, fm, app, mot, device="cpu", smo_k_s=13)
    # the k = 3 smoothing from the same raw motion: tracking and motion alone (no appearance volumes, no eye mesh),
    # the public call a driving video uses
    src3 = source_motion(track_faces(frames, fm), mot, "cpu", smoothing=3)
    return g, src, src3, fm


# --- the image file ------------------------------------------------------------------------------------------


def source_image_file(meta: dict[str, str]) -> Path:
    """The image file ``source_image`` was read from (its ``file`` metadata, e.g. ``shared/samples/portrait.jpg``):
    that file's name in the golden folder (the in-repo set keeps a copy), else that relative path under one of the
    golden folder's parents (a shared golden folder beside its ``samples``)."""
    rel = Path(meta["file"])
    d = golden_dir()
    for p in (d / rel.name, *(a / rel for a in d.parents)):
        if p.is_file():
            return p
    golden_missing(f"source image file {rel.name} (source_image's 'file' {meta['file']!r}) in {d} or under its parents")
    raise AssertionError("unreachable")


def test_image_loader_matches_official_load_image():
    """The project's loader on the golden source file gives the official loader's pixels exactly (``image_u8``:
    ``cv2.imread`` -> BGR2RGB; the size rule changes nothing for this 1432x1432 file, checked in test_image_crop)."""
    g = load_golden("source_image")
    image = read_image(source_image_file(g.meta))
    ref = g["image_u8"].numpy()
    assert image.dtype == np.uint8 and image.shape == ref.shape, f"{image.dtype} {image.shape} != uint8 {ref.shape}"
    np.testing.assert_array_equal(image, ref)


# --- image source --------------------------------------------------------------------------------------------


def test_image_detection_and_landmarks(image_run):
    g, src, fm, image = image_run
    boxes, kps = fm.detector.detect_faces(image)
    assert_close_rel(boxes, g["det_all"], TOL_GEOM, "det_all")
    assert_close_rel(src.det_box, g["det_box"], TOL_GEOM, "det_box")
    largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    assert_close_rel(kps[largest], g["det_kps"], TOL_GEOM, "det_kps")
    lmk106 = fm.lmk106(image, src.det_box)
    assert_close_rel(lmk106, g["lmk106"], TOL_GEOM, "lmk106")
    r224 = fm.lmk203.track(image, lmk106)
    assert_close_rel(r224.M_c2o, g["M_c2o_224"], TOL_GEOM, "M_c2o_224")
    assert_images_close(r224.crop, g["crop224_u8"], 1, 0.999, "crop224_u8")
    assert_close_rel(r224.lmk203, g["lmk203"], TOL_GEOM, "lmk203 (from our 224 crop)")
    assert_close_rel(src.lmk203[0], g["lmk203"], TOL_GEOM, "lmk203")


def test_image_crop(image_run):
    g, src, _, image = image_run
    assert src.is_image and src.num_frames == 1
    np.testing.assert_array_equal(src.frames[0], image)  # 1432x1432: the loader's size rule changes nothing
    assert_close_rel(src.M_c2o[0], g["M_c2o"], TOL_GEOM, "M_c2o")
    assert_images_close(src.crops[0], g["img_crop_u8"], 1, 0.999, "img_crop_u8")
    assert_images_close(src.input256[0], g["input256_u8"], 1, 0.999, "input256_u8")


def test_image_eye_features(image_run):
    g, src, fm, _ = image_run
    res = fm.lmk478.detect(g["img_crop_u8"].numpy())  # the official crop, so this checks the eye stage alone
    assert_close_rel(res.blaze_det, g["blaze_det"], TOL_GEOM, "blaze_det")
    assert_close_rel(res.roi, g["mesh_roi"], TOL_GEOM, "mesh_roi")
    assert_close_rel(res.lmk478, g["lmk478"], TOL_EYE, "lmk478 (golden crop)")
    assert_close_rel(src.lmk478, g["lmk478"], TOL_EYE, "lmk478")
    assert_close_rel(_np(src.eye_open), g["eye_open"], TOL_EYE, "eye_open")
    assert_close_rel(_np(src.eye_ball), g["eye_ball"], TOL_EYE, "eye_ball")
    eo, eb = eye_features(g["lmk478"].numpy())  # the eye maths on the official points
    assert_close_rel(eo, g["eye_open"], 1e-6, "eye_open from golden lmk478")
    assert_close_rel(eb, g["eye_ball"], 1e-6, "eye_ball from golden lmk478")


def test_image_motion_and_features(image_run):
    g, src, _, _ = image_run
    for k in X_S_KEYS:
        assert src.x_s_info[k].shape == g[f"xs_{k}"].shape
        assert_close_rel(src.x_s_info[k], g[f"xs_{k}"], TOL_NET, f"xs_{k}")
        assert torch.equal(src.x_s_info[k], src.x_s_info_raw[k])  # an image is not smoothed
    assert_close_rel(src.sc, g["sc"], TOL_NET, "sc")
    assert src.f_s is not None and src.f_s.shape == (1, 32, 16, 64, 64)
    f_s = src.f_s.double()
    assert_close_rel(f_s[:, :, ::2, ::4, ::4], g["f_s_sub"], TOL_NET, "f_s_sub")
    assert_close_rel(f_s.sum().reshape(1), g["f_s_sum"].double(), TOL_NET, "f_s_sum")
    assert_close_rel(f_s.abs().sum().reshape(1), g["f_s_abs_sum"].double(), TOL_NET, "f_s_abs_sum")


# --- video source --------------------------------------------------------------------------------------------


def test_video_tracking_and_crops(video_run):
    g, src, _, fm = video_run
    frames = g["frames_u8"].numpy()
    n = frames.shape[0]
    assert not src.is_image and src.num_frames == n
    assert_close_rel(src.det_box, g["det_box"], TOL_GEOM, "det_box")
    # the detector runs on frame 0 only; det_kps are the five points of the largest box, as for an image
    boxes, kps = fm.detector.detect_faces(frames[0])
    largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    assert_close_rel(boxes[largest], g["det_box"], TOL_GEOM, "det_box (largest detector box)")
    assert_close_rel(kps[largest], g["det_kps"], TOL_GEOM, "det_kps")
    lmk106 = fm.lmk106(frames[0], src.det_box)
    assert_close_rel(lmk106, g["lmk106_f0"], TOL_GEOM, "lmk106_f0")
    for i in range(n):
        track = lmk106 if i == 0 else src.lmk203[i - 1]
        r = fm.lmk203.track(frames[i], track)
        assert_close_rel(r.M_c2o, g["M_c2o_224"][i], TOL_GEOM, f"M_c2o_224[{i}]")
        assert_close_rel(src.lmk203[i], g["lmk203"][i], TOL_GEOM, f"lmk203[{i}]")
        assert_close_rel(src.M_c2o[i], g["M_c2o"][i], TOL_GEOM, f"M_c2o[{i}]")
        assert_images_close(src.crops[i, ::2, ::2], g["img_crop_sub_u8"][i], 1, 0.999, f"img_crop_sub_u8[{i}]")


def test_video_eye_features(video_run):
    g, src, _, _ = video_run
    for i in range(src.num_frames):
        assert_close_rel(src.lmk478[i], g["lmk478"][i], TOL_EYE, f"lmk478[{i}]")
        assert_close_rel(_np(src.eye_open[i]), g["eye_open"][i], TOL_EYE, f"eye_open[{i}]")
        assert_close_rel(_np(src.eye_ball[i]), g["eye_ball"][i], TOL_EYE, f"eye_ball[{i}]")


def test_video_motion_smoothing_and_features(video_run):
    g, src, src3, _ = video_run
    n = src.num_frames
    for k in X_S_KEYS:
        for i in range(n):
            assert_close_rel(src.x_s_info_raw[k][i], g[f"xs_{k}"][i, 0], TOL_NET, f"xs_{k}[{i}]")
            assert_close_rel(src.x_s_info[k][i], g[f"xs_smo13_{k}"][i, 0], TOL_NET, f"xs_smo13_{k}[{i}]")
            assert_close_rel(src3.x_s_info[k][i], g[f"xs_smo3_{k}"][i, 0], TOL_NET, f"xs_smo3_{k}[{i}]")
    # the filter itself on the official raw motion
    raw = {k: g[f"xs_{k}"][:, 0] for k in X_S_KEYS}
    for k3, name in ((13, "xs_smo13"), (3, "xs_smo3")):
        smo = smooth_x_s_info(raw, k3)
        for k in X_S_KEYS:
            assert_close_rel(smo[k], g[f"{name}_{k}"][:, 0], 1e-6, f"{name}_{k} from golden raw")
    assert_close_rel(src.sc, g["sc"], TOL_NET, "sc")
    assert src.f_s is not None and src.f_s.shape == (n, 32, 16, 64, 64)
    f_s = src.f_s.double()
    for i in range(n):
        assert_close_rel(f_s[i].sum().reshape(1), g["f_s_sum"][i : i + 1].double(), TOL_NET, f"f_s_sum[{i}]")
        assert_close_rel(f_s[i].abs().sum().reshape(1), g["f_s_abs_sum"][i : i + 1].double(), TOL_NET, f"f_s_abs_sum[{i}]")


# --- errors --------------------------------------------------------------------------------------------------------


def test_registration_errors_name_the_problem():
    image = load_golden("source_image")["image_u8"].numpy()
    fm = _face_models()
    unused = torch.nn.Identity()  # the errors come before any network runs
    with pytest.raises(NoFaceError, match="region_mask"):
        register_source(image, fm, unused, unused, region_mask=np.zeros(image.shape[:2], np.uint8))
    with pytest.raises(FaceTooSmallError, match="min_face_size"):
        register_source(image, fm, unused, unused, min_face_size=10_000)
    with pytest.raises(ValueError, match="region_mask"):
        register_source(image, fm, unused, unused, region_mask=np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError, match="frames_rgb_u8"):
        register_source(image.astype(np.float32), fm, unused, unused)


# --- driving video -------------------------------------------------------------------------------------------------


def _driving_models(fm: FaceModels, mot: MotionExtractor):
    """What :func:`extract_driving_motion` reads of the loaded models: the golden aux stand-ins and motion extractor,
    the release's source defaults."""
    from types import SimpleNamespace

    from ditto_core.runtime import ReleaseDefaults

    return SimpleNamespace(face=fm, motion_extractor=mot, device=torch.device("cpu"), precision="fp32",
                           release=ReleaseDefaults())


@pytest.mark.parametrize("smoothing, name", [(1, "xs"), (3, "xs_smo3"), (13, "xs_smo13")])
def test_driving_motion_equals_the_video_registration_motion(smoothing, name):
    """The golden video's frames as a driving video at 25 fps: the motion extractor on the same crops, so each motion
    frame is the official source-registration motion of that frame (raw, or smoothed with the same window); the
    detector's per-frame face check changes no crop; the reference is frame 0."""
    from ditto_core.motion.vector import MOTION_KEYS, dict_to_motion
    from ditto_core.runtime import DrivingOptions, extract_driving_motion

    g = load_golden("source_register_video")
    fm = _face_models()
    _, mot = _networks(g.salt)
    frames = g["frames_u8"].numpy()
    motion = extract_driving_motion(_driving_models(fm, mot), frames, fps=25.0,
                                    options=DrivingOptions(smoothing=smoothing))
    ref = dict_to_motion({k: g[f"{name}_{k}"][:, 0].float() for k in MOTION_KEYS})
    assert motion.num_frames == frames.shape[0] and motion.fps == 25.0
    assert_close_rel(motion.motion, ref, TOL_NET, f"driving motion vs {name}")
    assert motion.relative and torch.equal(motion.reference, motion.motion[0])
    assert motion.parts == ("head_pose", "translation", "expression") and motion.meta["missing_faces"] == "0"
