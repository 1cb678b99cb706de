"""Golden parity of the LivePortrait renderer networks (F, M, W, G) against the official implementation.

Weights come from the golden weight rule with each file's salt; every input is read from the golden folder.
"""

from __future__ import annotations

import pytest
import torch

from conftest import assert_close_rel, load_golden, rel_l2
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.weights import apply_weight_rule

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
