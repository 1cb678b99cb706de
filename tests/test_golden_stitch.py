"""Per-frame motion stitching against the official ``MotionStitch`` (stitch_* golden files).

The options and per-frame controls are written here from the files' ``setup``/``ctrl`` descriptions (the official
``setup`` keywords and ctrl dicts, which :mod:`ditto_core.official` maps onto the stitcher's settings and
``FrameControls``); the ``setup`` metadata is parsed only to check that it still describes what this test builds.
The per-frame stitch is the batched one on one row: both are checked against the official per-frame code.
"""

import ast
import math

import pytest
import torch

from ditto_core.models.stitching import StitchingNetwork
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel
from official_stitch import OfficialStitcher

pytestmark = pytest.mark.golden

TOL = 1e-4


def _ctrl_frames(n: int) -> list[dict]:
    return [
        {
            "delta_yaw": 5 * math.sin(i / 10),
            "alpha_roll": 0.5,
            "vad_alpha": 0.7 if i % 50 < 25 else 1.0,
            "fade_alpha": min(1, i / 20),
            "delta_exp": 0.0,
        }
        for i in range(n)
    ]


CASES = {
    "stitch_image_default": ({}, None),
    "stitch_image_ctrl": (
        {
            "use_d_keys": {"exp": 1.5, "pitch": 0.5, "yaw": 1.0, "roll": 1.0, "t": 1.0},
            "fade_type": "d0",
            "overall_ctrl_info": {"delta_pitch": 2},
        },
        _ctrl_frames,
    ),
    "stitch_no_stitch_no_eye": ({"drive_eye": False, "flag_stitching": False, "relative_d": False}, None),
}


def _setup(golden, name):
    g = golden(name)
    setup, ctrl_fn = CASES[name]
    assert ast.literal_eval(g.meta["setup"]) == setup, f"{name}: golden setup {g.meta['setup']} is not what this test builds"
    assert g.meta.get("is_image") == "True"
    assert int(g.meta["delta_eye_open_n"]) == -1
    cfg = {**setup, "delta_eye_open_n": -1}
    source = {k[len("source_"):]: v for k, v in g.items() if k.startswith("source_")}
    net = apply_weight_rule(StitchingNetwork(), g.salt)
    n = g["motion"].shape[0]
    ctrls = ctrl_fn(n) if ctrl_fn is not None else None
    return g, cfg, source, net, ctrls


@pytest.mark.parametrize("name", list(CASES))
def test_stitch_per_frame_matches_official(golden, name):
    g, cfg, source, net, ctrls = _setup(golden, name)
    st = OfficialStitcher(source, is_image=True, config=cfg, stitch_net=net)
    n = g["motion"].shape[0]
    xs, xd = [], []
    for i in range(n):
        a, b = st.stitch(g["motion"][i], i, None if ctrls is None else ctrls[i])
        assert a.shape == (1, 21, 3) and b.shape == (1, 21, 3)
        xs.append(a)
        xd.append(b)
    assert_close_rel(torch.cat(xs), g["x_s"], TOL, f"{name} x_s")
    assert_close_rel(torch.cat(xd), g["x_d"], TOL, f"{name} x_d")
    for i in (0, n // 2, n - 1):  # every frame, not only on average
        assert_close_rel(xd[i][0], g["x_d"][i], TOL, f"{name} x_d[{i}]")


@pytest.mark.parametrize("name", list(CASES))
def test_stitch_batch_matches_official(golden, name):
    g, cfg, source, net, ctrls = _setup(golden, name)
    n = g["motion"].shape[0]
    st = OfficialStitcher(source, is_image=True, config=cfg, stitch_net=net)
    # two chunks, as a streaming caller would feed them; d0 and the d0-fade target come from the first
    k = 37
    xs, xd1 = st.stitch_batch(g["motion"][:k], 0, None if ctrls is None else ctrls[:k])
    _, xd2 = st.stitch_batch(g["motion"][k:], k, None if ctrls is None else ctrls[k:])
    assert xs.shape == (1, 21, 3)
    assert_close_rel(xs.expand(n, 21, 3), g["x_s"], TOL, f"{name} x_s")
    assert_close_rel(torch.cat([xd1, xd2]), g["x_d"], TOL, f"{name} x_d")
