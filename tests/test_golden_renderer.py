"""Golden parity of the LivePortrait renderer networks (F, M, W, G) against the official implementation.

Weights come from the golden weight rule with each file's salt; every input is read from the golden folder.
"""

from __future__ import annotations

import pytest
import torch

from conftest import assert_close_rel, load_golden, native_bf16_cpu, rel_l2
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.warping import WarpingNetwork
from ditto_core.testing.weight_rule import apply_weight_rule

pytestmark = pytest.mark.golden

TOL = 1e-4


def _image(g) -> torch.Tensor:
    """``image_u8`` (3, 256, 256) -> float (1, 3, 256, 256) in [0, 1], as the official wrappers feed it."""
    return (g["image_u8"].float() / 255.0).unsqueeze(0)


def test_appearance_matches_official(golden):
    g = golden("appearance")
    net = apply_weight_rule(AppearanceFeatureExtractor(), g.salt)
    with torch.no_grad():
        f_s = net(_image(g))
    assert f_s.shape == (1, 32, 16, 64, 64)
    assert_close_rel(f_s[:, :, ::2, ::4, ::4], g["f_s_sub"], TOL, "f_s_sub")
    assert_close_rel(f_s.double().sum().reshape(1), g["f_s_sum"].double(), TOL, "f_s_sum")
    assert_close_rel(f_s.double().abs().sum().reshape(1), g["f_s_abs_sum"].double(), TOL, "f_s_abs_sum")


def test_motion_extractor_matches_official(golden):
    g = golden("motion_extractor")
    net = apply_weight_rule(MotionExtractor(), g.salt)
    with torch.no_grad():
        out = net(_image(g))
    names = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
    assert len(out) == len(names)
    for name, value in zip(names, out):
        assert_close_rel(value, g[name], TOL, name)


@pytest.fixture(scope="module")
def warp_run() -> dict:
    """The warp file's inputs through our F then W, computed once (several seconds on a CPU)."""
    g = load_golden("warp")
    appearance = apply_weight_rule(AppearanceFeatureExtractor(), g.salt)
    warp = apply_weight_rule(WarpingNetwork(), g.salt)
    with torch.no_grad():
        f_s = appearance(_image(g))
        out = warp(f_s, g["kp_source"], g["kp_driving"])
    return {"golden": g, "f_s": f_s, "out": out, "warp": warp}


@pytest.fixture(scope="module")
def decoder_run(warp_run) -> dict:
    """Our G on our W output (the decoder file's feature), computed once."""
    g = load_golden("decoder")
    decoder = apply_weight_rule(SPADEDecoder(), g.salt)
    with torch.no_grad():
        image = decoder(warp_run["out"])
    return {"golden": g, "image": image, "decoder": decoder}


def test_warp_matches_official(warp_run):
    g, out = warp_run["golden"], warp_run["out"]
    assert out.shape == (1, 256, 64, 64)
    assert_close_rel(out[:, :, ::2, ::2], g["out_sub"], TOL, "out_sub")
    assert_close_rel(out.double().sum().reshape(1), g["out_sum"].double(), TOL, "out_sum")


def test_decoder_matches_official(warp_run, decoder_run):
    g, image = decoder_run["golden"], decoder_run["image"]
    assert_close_rel(warp_run["out"][:, :, ::2, ::2], g["feature_sub_check"], TOL, "feature_sub_check")
    assert image.shape == (1, 3, 512, 512)
    assert_close_rel(image[:, :, ::2, ::2], g["image_sub"], TOL, "image_sub")
    assert_close_rel(image.double().sum().reshape(1), g["image_sum"].double(), TOL, "image_sum")


def test_warp_and_decoder_batch_equals_single(warp_run, decoder_run):
    """B = 2 gives each item's B = 1 result (W on a 32x32 crop of the volume, G on 16x16, to keep it cheap)."""
    g, warp, decoder = warp_run["golden"], warp_run["warp"], decoder_run["decoder"]
    f_s = warp_run["f_s"][..., :32, :32]
    f_pair = torch.cat([f_s, f_s.flip(-1)], dim=0)
    kp_s = torch.cat([g["kp_source"], g["kp_driving"]], dim=0)
    kp_d = torch.cat([g["kp_driving"], g["kp_source"]], dim=0)
    with torch.no_grad():
        out_pair = warp(f_pair, kp_s, kp_d)
        feat_pair = out_pair[..., :16, :16]
        img_pair = decoder(feat_pair)
        for i in range(2):
            out_i = warp(f_pair[i : i + 1], kp_s[i : i + 1], kp_d[i : i + 1])
            assert rel_l2(out_pair[i : i + 1], out_i) < 1e-5, f"warp item {i}"
            img_i = decoder(feat_pair[i : i + 1])
            assert rel_l2(img_pair[i : i + 1], img_i) < 1e-5, f"decoder item {i}"
    assert rel_l2(out_pair[0], out_pair[1]) > 1e-2  # the two items really differ


@pytest.mark.skipif(not native_bf16_cpu(), reason="this CPU has no bf16 instructions: PyTorch emulates bf16 and this "
                    "check takes minutes (it runs on CPUs with avx512_bf16, AMX or Arm bf16)")
def test_warp_and_decoder_run_under_bf16_autocast(warp_run, decoder_run):
    """Under ``torch.autocast`` (bf16, CPU) W and G run and stay near their fp32 results (small crops)."""
    g, warp, decoder = warp_run["golden"], warp_run["warp"], decoder_run["decoder"]
    f_s = warp_run["f_s"][..., :32, :32]
    with torch.no_grad():
        out32 = warp(f_s, g["kp_source"], g["kp_driving"])
        img32 = decoder(out32[..., :16, :16])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16 = warp(f_s, g["kp_source"], g["kp_driving"])
            img16 = decoder(out32[..., :16, :16])
    assert torch.isfinite(out16).all() and torch.isfinite(img16).all()
    assert rel_l2(out16.float(), out32) < 3e-2
    assert rel_l2(img16.float(), img32) < 3e-2
