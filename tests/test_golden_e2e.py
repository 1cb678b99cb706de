"""The official offline pipeline end to end (e2e_offline): registration, features, conditions, sampling,
stitching, warp, decode and paste-back, through ditto_core.runtime's public stages."""

import numpy as np
import pytest
import torch

from ditto_core.audio import HubertFeatureExtractor
from ditto_core.audio2motion import count_windows_offline, sample_motion_offline
from ditto_core.config import DittoDefaults
from ditto_core.face import FaceModels
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.lmdm import MotionDecoder
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.stitching import StitchingNetwork
from ditto_core.models.warping import WarpingNetwork
from ditto_core.render.compositor import Compositor
from ditto_core.render.renderer import Renderer
from ditto_core.runtime import (
    DittoModels,
    KeypointPlanner,
    SamplingOptions,
    extract_audio_features,
    extract_source,
    motion_conditions,
    render_frames,
    sample_motion,
    source_motion_vector,
)
from ditto_core.runtime.models import release_defaults
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel, assert_images_close, golden_dir, golden_file, load_golden, rel_l2

pytestmark = pytest.mark.golden

#: window_pred: one DDIM window (10 steps) as lmdm_ddim, whose tolerance it takes (measured: ~1e-6)
TOL_WINDOW = 1e-3
#: render_u8 = round(clip(0,1)·255) against our float render rounded the same way: our float render is within
#: 0.35 grey levels of the official one (render_f16_sub), so a rounded value moves by at most one level, and only
#: where the official value lies near a .5 (measured: every value within 1, 98.6-99.9 % of them equal per frame)
RENDER_U8_MAX_DIFF, RENDER_U8_FRAC = 1, 0.999
#: render_f16_sub is the fp32 float render [::4, ::4] *stored* as float16 (the official maths is fp32, as ours here):
#: storing rounds each value to 11 significant bits (relative error <= 2^-11 = 4.9e-4; on this data 2.2e-4 relative
#: L2), so the comparison is in float64 against that rounding: relative L2 <= 1e-3 (the storage bound with room for the
#: fp32 render's own ~1e-5 difference; measured 2.4e-4) and no value more than 1 grey level off (measured 0.34)
TOL_RENDER_F16, RENDER_F16_MAX_ABS = 1e-3, 1.0


def golden_models(salt: str) -> DittoModels:
    """The official components with the golden weight rule and the golden folder's stand-in aux models; the release
    settings are the ones :meth:`DittoModels.load` takes for a models folder without a config pickle (the official
    code defaults, through :func:`ditto_core.runtime.release_defaults`)."""
    return DittoModels(
        models_dir=golden_dir(),
        device=torch.device("cpu"),
        precision="fp32",
        appearance=apply_weight_rule(AppearanceFeatureExtractor(), salt),
        motion_extractor=apply_weight_rule(MotionExtractor(), salt),
        warp=apply_weight_rule(WarpingNetwork(), salt),
        decoder=apply_weight_rule(SPADEDecoder(), salt),
        stitch=apply_weight_rule(StitchingNetwork(), salt),
        lmdm=apply_weight_rule(MotionDecoder(), salt),
        hubert=HubertFeatureExtractor(golden_file("hubert_standin.onnx")),
        face=FaceModels.from_paths(
            detector=golden_file("standin_insightface_det.onnx"),
            landmark106=golden_file("standin_landmark106.onnx"),
            landmark203=golden_file("standin_landmark203.onnx"),
            blaze_face=golden_file("standin_blaze_face.onnx"),
            face_mesh=golden_file("standin_face_mesh.onnx"),
        ),
        release=release_defaults(DittoDefaults()),
    )


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


class _KeepRenders(Renderer):
    """The models' renderer, keeping a CPU copy of every batch's float render (``clip(0,1)·255``, before any cast)."""

    def __init__(self, base: Renderer):
        super().__init__(base.warp, base.decoder, base.device, base.config)
        self.renders: list[torch.Tensor] = []

    def render(self, f_s, x_s, x_d, cancel=None):
        out = super().render(f_s, x_s, x_d, cancel)
        self.renders.append(out.detach().cpu().clone())
        return out


@pytest.fixture(scope="module")
def rendered(run):
    """Every rendered frame of the golden file (``frames``: 0-5 and 49) rendered once, pasted back by the public
    stage; the float renders behind it kept. (7 frames: a 512x512 render takes seconds to tens of seconds here.)"""
    g, _, models, source, _, _, motion = run
    frames = [int(i) for i in g["frames"]]
    renderer = _KeepRenders(models.new_renderer(4))
    pasted = np.concatenate(
        [b for b, _ in render_frames(models, source, motion, "full", frame_indices=frames, renderer=renderer)]
    )
    renders = torch.cat(renderer.renders)
    assert renders.shape == (len(frames), 512, 512, 3) and pasted.shape == (len(frames), *source.frames.shape[1:])
    return frames, renders, pasted


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


def test_window_pred(run):
    """The raw DiT output of each window (before fusing and smoothing), from the same sampling as sample_motion's:
    its settings (the release's offline defaults, CFG weight included, with this job's options) and conditions."""
    g, _, models, source, feats, opts, motion = run
    cfg = opts.config(models.release.offline)
    cond = motion_conditions(models, source, opts)(feats.features, 0)
    records = []
    again = sample_motion_offline(models.lmdm, cond, source_motion_vector(source), cfg, noises=g["noises"],
                                  x_inits=g["window_x_inits"], records=records)
    assert torch.equal(again, motion.motion), "not the sampling sample_motion ran"
    n_win = count_windows_offline(cond.shape[0], cfg)
    assert len(records) == n_win == g["window_pred"].shape[0] == g["window_x_inits"].shape[0]
    for w, r in enumerate(records):
        assert r.cond_index == w * cfg.hop
        assert_close_rel(r.pred, g["window_pred"][w], TOL_WINDOW, f"window_pred[{w}]")


def test_render_every_frame(run, rendered):
    g, _, _, source, _, _, _ = run
    frames, renders, _ = rendered
    ref = g["render_u8"].numpy()
    assert ref.shape == tuple(renders.shape) and len(frames) == ref.shape[0]
    for i, f in enumerate(frames):
        ours = renders[i].round().clamp(0, 255).to(torch.uint8).numpy()
        assert_images_close(ours, ref[i], RENDER_U8_MAX_DIFF, RENDER_U8_FRAC, f"render_u8[{i}] (frame {f})")
    # the "crop" output of the same renders: it truncates clip(0,1)*255 where the golden rounds it, one level of that
    # plus the tolerance
    crops, _ = Compositor(source.frames, source.M_c2o, "crop").compose(renders, [0] * len(frames))
    for i, f in enumerate(frames):
        assert_images_close(crops[i], ref[i], max_diff=2, frac=0.999, what=f"crop output vs render_u8[{i}] (frame {f})")


def test_render_f16_sub(run, rendered):
    g, *_ = run
    frames, renders, _ = rendered
    ref = g["render_f16_sub"].double()
    sub = renders[:, ::4, ::4].double()
    assert ref.shape == sub.shape
    for i, f in enumerate(frames):
        assert_close_rel(sub[i], ref[i], TOL_RENDER_F16, f"render_f16_sub[{i}] (frame {f})")
        worst = float((sub[i] - ref[i]).abs().max())
        assert worst <= RENDER_F16_MAX_ABS, f"render_f16_sub[{i}] (frame {f}): {worst:.3f} grey levels off"
    assert rel_l2(sub, ref) <= TOL_RENDER_F16


def test_paste_back(run, rendered):
    g, image, *_ = run
    _, _, pasted = rendered
    y0, y1, x0, x1 = (int(v) for v in g["pasted_box"])
    sub = pasted[:, ::2, ::2]
    assert_images_close(sub[:, y0:y1, x0:x1], g["pasted_sub_u8"].numpy(), max_diff=2, frac=0.999, what="pasted")
    outside = sub.copy()
    outside[:, y0:y1, x0:x1] = image[::2, ::2][y0:y1, x0:x1]
    assert np.array_equal(outside, np.broadcast_to(image[::2, ::2], outside.shape)), "pixels outside the paste box changed"
