"""The official offline pipeline end to end (e2e_offline): registration, features, conditions, sampling,
stitching, warp, decode and paste-back, through ditto_core.runtime's public stages."""

import numpy as np
import pytest
import torch

from ditto_core.audio import HubertFeatureExtractor
from ditto_core.face import FaceModels
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.lmdm import MotionDecoder
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.stitching import StitchingNetwork
from ditto_core.models.warping import WarpingNetwork
from ditto_core.runtime import (
    DittoModels,
    KeypointPlanner,
    SamplingOptions,
    extract_audio_features,
    extract_source,
    motion_conditions,
    render_frames,
    sample_motion,
)
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel, assert_images_close, golden_dir, load_golden

pytestmark = pytest.mark.golden


def golden_models(salt: str) -> DittoModels:
    """The official components with the golden weight rule and the golden folder's stand-in aux models."""
    d = golden_dir()
    return DittoModels(
        models_dir=d,
        device=torch.device("cpu"),
        precision="fp32",
        appearance=apply_weight_rule(AppearanceFeatureExtractor(), salt),
        motion_extractor=apply_weight_rule(MotionExtractor(), salt),
        warp=apply_weight_rule(WarpingNetwork(), salt),
        decoder=apply_weight_rule(SPADEDecoder(), salt),
        stitch=apply_weight_rule(StitchingNetwork(), salt),
        lmdm=apply_weight_rule(MotionDecoder(), salt),
        hubert=HubertFeatureExtractor(d / "hubert_standin.onnx"),
        face=FaceModels.from_paths(
            detector=d / "standin_insightface_det.onnx",
            landmark106=d / "standin_landmark106.onnx",
            landmark203=d / "standin_landmark203.onnx",
            blaze_face=d / "standin_blaze_face.onnx",
            face_mesh=d / "standin_face_mesh.onnx",
        ),
    )  # release: the official code defaults


@pytest.fixture(scope="module")
def run():
    g = load_golden("e2e_offline")
    image = load_golden("source_image")["image_u8"].numpy()
    models = golden_models(g.salt)
    source = extract_source(models, image)
    feats = extract_audio_features(models, g["audio_16k"].numpy(), 16000)
    opts = SamplingOptions(emotion=4, steps=10, overlap=10, smoothing=3)
    motion = sample_motion(models, source, feats, opts, noises=g["noises"], x_inits=g["window_x_inits"])
    return g, image, models, source, feats, opts, motion


def test_source_and_features(run):
    g, _, models, source, feats, opts, _ = run
    assert_close_rel(torch.as_tensor(source.M_c2o[0]), g["M_c2o"], 1e-4, "M_c2o")
    for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp"):
        assert_close_rel(source.x_s_info[k], g[f"xs_{k}"], 1e-4, f"xs_{k}")
    assert_close_rel(source.eye_open, g["eye_open"], 1e-4, "eye_open")
    assert_close_rel(source.eye_ball, g["eye_ball"], 1e-4, "eye_ball")
    assert feats.num_frames == g["aud_feat"].shape[0] == 50
    assert_close_rel(feats.features, g["aud_feat"], 1e-5, "aud_feat")
    cond = motion_conditions(models, source, opts)(feats.features, 0)
    assert_close_rel(cond, g["cond"], 1e-5, "cond")


def test_motion_and_stitching(run):
    g, _, models, source, _, _, motion = run
    assert_close_rel(motion.motion, g["motion"], 1e-3, "motion")
    kp = KeypointPlanner.for_motion(models, source, motion).plan(motion.motion, motion.frame_controls())
    assert_close_rel(kp.x_s, g["x_s"], 1e-3, "x_s")
    assert_close_rel(kp.x_d, g["x_d"], 1e-3, "x_d")


def test_render_and_paste_back(run):
    g, image, models, source, _, _, motion = run
    frames = [int(i) for i in g["frames"]]
    # two crops (first and last listed frame): the render itself; all listed frames pasted back below
    pick = [0, len(frames) - 1]
    crops = np.concatenate(
        [b for b, _ in render_frames(models, source, motion, "crop", 2, frame_indices=[frames[i] for i in pick])]
    )
    ref = g["render_u8"].numpy()[pick]
    # the crop output truncates clip(0,1)*255 where the golden rounds it: one level of that plus the tolerance
    assert_images_close(crops, ref, max_diff=2, frac=0.999, what="render_u8")
    y0, y1, x0, x1 = (int(v) for v in g["pasted_box"])
    pasted = np.concatenate([b for b, _ in render_frames(models, source, motion, "full", 4, frame_indices=frames)])
    sub = pasted[:, ::2, ::2]
    assert_images_close(sub[:, y0:y1, x0:x1], g["pasted_sub_u8"].numpy(), max_diff=2, frac=0.999, what="pasted")
    outside = sub.copy()
    outside[:, y0:y1, x0:x1] = image[::2, ::2][y0:y1, x0:x1]
    assert np.array_equal(outside, np.broadcast_to(image[::2, ::2], outside.shape)), "pixels outside the paste box changed"
