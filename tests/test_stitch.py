"""Unit tests of ditto_core.stitch: each control against an independent float64 numpy computation."""

import random

import numpy as np
import pytest
import torch

from ditto_core import official
from ditto_core.models.stitching import StitchingNetwork
from ditto_core.motion.controls import FrameControls
from ditto_core.official import ctrl_for_frame, fade_ramps
from ditto_core.stitch import BLINK_OPEN_MAX, BLINK_OPEN_MIN, MotionStitcher, StitchConfig, blink_schedule
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import rel_l2
from official_stitch import OfficialStitcher
from test_motion import _np_keypoints, _np_softmax_degrees

LIP = [6, 12, 14, 17, 19, 20]
EYE = [11, 13, 15, 16, 18]
POSE = ("pitch", "yaw", "roll")


def _kp_mask(kps):
    m = np.zeros((21, 3))
    m[kps] = 1
    return m.reshape(63)


LIP_M, EYE_M = _kp_mask(LIP), _kp_mask(EYE)


def _source(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "scale": rng.uniform(1.0, 1.4, (1, 1)).astype(np.float32),
        "pitch": (rng.standard_normal((1, 66)) * 2).astype(np.float32),
        "yaw": (rng.standard_normal((1, 66)) * 2).astype(np.float32),
        "roll": (rng.standard_normal((1, 66)) * 2).astype(np.float32),
        "t": (rng.standard_normal((1, 3)) * 0.05).astype(np.float32),
        "exp": (rng.standard_normal((1, 63)) * 0.02).astype(np.float32),
        "kp": (rng.standard_normal((1, 63)) * 0.3).astype(np.float32),
    }


def _motion(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 265), np.float32)
    m[:, 0] = rng.uniform(0.1, 0.3, n)
    m[:, 1:199] = rng.standard_normal((n, 198)) * 2
    m[:, 199:202] = rng.standard_normal((n, 3)) * 0.05
    m[:, 202:] = rng.standard_normal((n, 63)) * 0.03
    return m


def _split(m: np.ndarray) -> dict[str, np.ndarray]:
    m = m.astype(np.float64)
    return {"scale": m[0:1] + 1, "pitch": m[1:67], "yaw": m[67:133], "roll": m[133:199], "t": m[199:202], "exp": m[202:265]}


def _ref(src, scale=None, t=None, exp=None, deg=None):
    """Expected x_d (21,3) from the source with some entries replaced; ``deg`` = {pose: degrees}."""
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d = {k: _np_softmax_degrees(s[k]) for k in POSE}
    d.update(deg or {})
    return _np_keypoints(
        s["kp"], s["scale"][0] if scale is None else scale, d["pitch"], d["yaw"], d["roll"],
        s["t"] if t is None else t, s["exp"] if exp is None else exp,
    )


def _net(salt: str = "unit-stitch") -> StitchingNetwork:
    return apply_weight_rule(StitchingNetwork(), salt)


def _cfg(**kw) -> dict:
    """Official ``setup`` keywords (no stitching MLP, no blinks unless given)."""
    kw.setdefault("flag_stitching", False)
    kw.setdefault("delta_eye_open_n", -1)
    return kw


def _run(st: MotionStitcher, motion: np.ndarray, ctrls=None) -> np.ndarray:
    out = [st.stitch(torch.from_numpy(motion[i]), i, None if ctrls is None else ctrls[i])[1][0] for i in range(len(motion))]
    return torch.stack(out).double().numpy()


def _close(a, b, atol=2e-6):
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)


# ---------------------------------------------------------------------------------------- defaults / relative motion
def test_config_defaults_follow_source_kind():
    cfg = StitchConfig()
    assert cfg.resolved_driven_keys(True) == ("exp", "pitch", "yaw", "roll", "t")
    assert cfg.resolved_driven_keys(False) == ("exp",)
    assert cfg.resolved_drive_eye(True) is True and cfg.resolved_drive_eye(False) is False
    assert cfg.relative and cfg.stitching and cfg.fade_target == "" and cfg.fade_keys == ("exp",)
    assert cfg.blink_interval is None and cfg.num_frames is None and cfg.blink_template is None
    # the official defaults map onto the same config
    assert official.stitch_config({}) == cfg


def test_official_keywords_map_to_product_names():
    arr = np.zeros((4, 63), np.float32)
    cfg = official.stitch_config({"use_d_keys": ["exp"], "relative_d": False, "fade_type": "d0", "flag_stitching": False,
                                  "delta_eye_arr": arr, "delta_eye_open_n": 7, "N_d": 90, "drive_eye": True,
                                  "overall_ctrl_info": {"fade_out_keys": ["t"], "delta_yaw": 1.0}})
    assert (cfg.driven_keys, cfg.relative, cfg.fade_target, cfg.stitching) == (("exp",), False, "first", False)
    assert (cfg.blink_interval, cfg.num_frames, cfg.drive_eye, cfg.fade_keys) == (7, 90, True, ("t",))
    assert tuple(cfg.blink_template.shape) == (4, 63)
    # one blink vocabulary: official 0 = random gaps -> None, -1 = none -> 0, a list -> cycled tuple
    assert [official.blink_interval(v) for v in (0, -1, -5, 12, [3, 4])] == [None, 0, 0, 12, (3, 4)]
    assert official.stitch_config({"fade_type": "s"}).fade_target == "source"


def test_official_ctrl_dicts_to_frame_controls():
    c = official.frame_controls([{"delta_yaw": 0.0}, {}, {"vad_alpha": 0.5, "delta_exp": 0.1, "fade_out_keys": ("t",)}],
                                3, overall={"alpha_roll": 0.5, "delta_yaw": 2.0})
    # present-but-zero stays present (it converts the pose to degrees); absent is NaN; the frame wins over overall
    assert c.delta_yaw[0] == 0.0 and c.delta_yaw[1] == 2.0 and c.delta_yaw[2] == 2.0
    assert torch.equal(c.alpha_roll, torch.full((3,), 0.5)) and c.alpha_pitch is None
    assert c.vad_alpha.tolist() == [1.0, 1.0, 0.5] and c.fade_alpha is None
    assert c.delta_exp[2].tolist() == [pytest.approx(0.1)] * 63 and c.delta_exp[0].abs().sum() == 0
    assert torch.isnan(c.fade_keys[0]).all() and c.fade_keys[2].tolist() == [0, 0, 0, 0, 1, 0]
    # a dict by frame index, and a window starting later
    d = official.frame_controls({5: {"fade_alpha": 0.2}}, 2, start=4)
    assert torch.isnan(d.fade_alpha[0]) and d.fade_alpha[1] == pytest.approx(0.2)
    assert isinstance(d, FrameControls) and d.num_frames == 2


def test_first_frame_reproduces_source_and_stitching_applies():
    src, m = _source(), _motion(3)
    st = OfficialStitcher(src, config={"flag_stitching": False})  # image defaults, eyes driven
    x_s, x_d = st.stitch(torch.from_numpy(m[0]), 0)
    _close(x_s[0].double().numpy(), _ref(src))
    _close(x_d[0].double().numpy(), _ref(src))  # relative to itself: no motion, gaze offset 0
    net = _net()
    st2 = OfficialStitcher(src, config={}, stitch_net=net)
    outs = [st2.stitch(torch.from_numpy(m[i]), i) for i in range(3)]
    plain = [st.stitch(torch.from_numpy(m[i]), i) for i in range(1, 3)]
    with torch.no_grad():
        assert rel_l2(outs[0][1], net(x_s, x_s)) < 1e-6
        for (_, d2), (_, d) in zip(outs[1:], plain):
            assert rel_l2(d2, net(x_s, d)) < 1e-6


def test_relative_motion_drives_pose_t_and_lip_only():
    src, m = _source(), _motion(6)
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False)), m)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d0 = _split(m[0])
    for i in (1, 5):
        di = _split(m[i])
        deg = {k: _np_softmax_degrees(s[k] + di[k] - d0[k]) for k in POSE}
        exp = s["exp"] + (di["exp"] - d0["exp"]) * LIP_M  # eyes not driven, rest from the source
        _close(got[i], _ref(src, t=s["t"] + di["t"] - d0["t"], exp=exp, deg=deg))


def test_use_d_keys_weights_scale_deltas():
    src, m = _source(), _motion(4)
    w = {"exp": 2.0, "pitch": 0.5, "yaw": 1.0, "roll": 0.0, "t": 3.0}
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys=w)), m)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d0, d3 = _split(m[0]), _split(m[3])
    deg = {k: _np_softmax_degrees(s[k] + (d3[k] - d0[k]) * w[k]) for k in POSE}
    exp = s["exp"] + 2 * (d3["exp"] - d0["exp"]) * LIP_M
    _close(got[3], _ref(src, t=s["t"] + 3 * (d3["t"] - d0["t"]), exp=exp, deg=deg))
    # all weights 0: the source, every frame
    zero = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys={k: 0.0 for k in w})), m)
    for i in range(4):
        _close(zero[i], _ref(src))
    # only exp driven: pose and t stay the source's
    exp_only = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys=("exp",))), m)
    _close(exp_only[3], _ref(src, exp=s["exp"] + (d3["exp"] - d0["exp"]) * LIP_M))


def test_absolute_motion_and_weights_multiply_values():
    src, m = _source(), _motion(3)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d2 = _split(m[2])
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, relative_d=False)), m)
    deg = {k: _np_softmax_degrees(d2[k]) for k in POSE}
    _close(got[2], _ref(src, t=d2["t"], exp=d2["exp"] * LIP_M + s["exp"] * (1 - LIP_M), deg=deg))
    w = {"exp": 0.5, "yaw": 2.0}
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, relative_d=False, use_d_keys=w)), m)
    deg = {"yaw": _np_softmax_degrees(2 * d2["yaw"])}
    _close(got[2], _ref(src, exp=0.5 * d2["exp"] * LIP_M + s["exp"] * (1 - LIP_M), deg=deg))


def test_ch_scale_ratio_scales_exp_and_pose_weights():
    src, m = _source(), _motion(4)
    ch = 2.0 * float(src["scale"][0, 0])
    a = _run(OfficialStitcher(src, config=_cfg(ch_scale=ch)), m)
    b = _run(OfficialStitcher(src, config=_cfg(use_d_keys={"exp": 2, "pitch": 2, "yaw": 2, "roll": 2, "t": 1})), m)
    _close(a, b, atol=1e-6)


# ---------------------------------------------------------------------------------------- expression controls
def test_drive_eye_false_keeps_source_eyes_true_drives_them():
    src, m = _source(), _motion(3)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d0, d2 = _split(m[0]), _split(m[2])
    keep = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys=("exp",))), m)
    drive = _run(OfficialStitcher(src, config=_cfg(drive_eye=True, use_d_keys=("exp",))), m)
    delta = d2["exp"] - d0["exp"]
    _close(keep[2], _ref(src, exp=s["exp"] + delta * LIP_M))
    # pose is the source's, so the gaze fix adds nothing
    _close(drive[2], _ref(src, exp=s["exp"] + delta * (LIP_M + EYE_M)))


def test_vad_alpha_blends_all_exp_toward_source():
    src, m = _source(), _motion(3)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d0, d2 = _split(m[0]), _split(m[2])
    deg = {k: _np_softmax_degrees(s[k] + d2[k] - d0[k]) for k in POSE}
    t = s["t"] + d2["t"] - d0["t"]
    st = OfficialStitcher(src, config=_cfg(drive_eye=False))
    got = _run(st, m, [{}, {}, {"vad_alpha": 0.0}])
    _close(got[2], _ref(src, t=t, exp=s["exp"], deg=deg))
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False)), m, [{}, {}, {"vad_alpha": 0.3}])
    driven = s["exp"] + (d2["exp"] - d0["exp"]) * LIP_M
    _close(got[2], _ref(src, t=t, exp=0.3 * driven + 0.7 * s["exp"], deg=deg))
    # vad_alpha >= 1 is no control
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False)), m, [{}, {}, {"vad_alpha": 1.5}])
    _close(got[2], _ref(src, t=t, exp=driven, deg=deg))


def test_delta_exp_adds():
    src, m = _source(), _motion(2)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    dexp = np.random.default_rng(9).standard_normal(63) * 0.01
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys=("exp",))), m, [{}, {"delta_exp": dexp}])
    d0, d1 = _split(m[0]), _split(m[1])
    _close(got[1], _ref(src, exp=s["exp"] + (d1["exp"] - d0["exp"]) * LIP_M + dexp))
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False, use_d_keys=("exp",))), m, [{"delta_exp": 0.01}, {}])
    _close(got[0], _ref(src, exp=s["exp"] + 0.01))


# ---------------------------------------------------------------------------------------- pose controls
def test_delta_and_alpha_pose_controls():
    src, m = _source(), _motion(2)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    d1, d0 = _split(m[1]), _split(m[0])
    logits = {k: s[k] + d1[k] - d0[k] for k in POSE}
    t, exp = s["t"] + d1["t"] - d0["t"], s["exp"] + (d1["exp"] - d0["exp"]) * LIP_M
    ctrl = {"delta_yaw": 10.0, "alpha_yaw": 0.5, "alpha_pitch": 0.5, "delta_roll": -4.0}
    got = _run(OfficialStitcher(src, config=_cfg(drive_eye=False)), m, [{}, ctrl])
    deg = {
        "yaw": (_np_softmax_degrees(logits["yaw"]) + 10.0) * 0.5,  # delta converts to degrees, alpha scales degrees
        "pitch": _np_softmax_degrees(0.5 * logits["pitch"]),  # alpha alone scales the logits
        "roll": _np_softmax_degrees(logits["roll"]) - 4.0,
    }
    _close(got[1], _ref(src, t=t, exp=exp, deg=deg))


def test_gaze_fix_follows_pose_change():
    src, m = _source(), _motion(1)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    for dyaw, dpitch in ((10.0, -4.0), (-6.0, 3.0)):
        st = OfficialStitcher(src, config=_cfg(drive_eye=True))
        got = _run(st, m, [{"delta_yaw": dyaw, "delta_pitch": dpitch}])
        dx, dy = dyaw * 0.26, dpitch * 0.28
        exp = s["exp"].copy()
        exp[33] += dx * (0.0007 if dx > 0 else 0.001)
        exp[45] += dx * (0.001 if dx > 0 else 0.0007)
        exp[34] -= 0.001 * dy
        exp[46] -= 0.001 * dy
        deg = {"yaw": _np_softmax_degrees(s["yaw"]) + dyaw, "pitch": _np_softmax_degrees(s["pitch"]) + dpitch}
        _close(got[0], _ref(src, exp=exp, deg=deg))
        ctrl = [{"delta_yaw": dyaw, "delta_pitch": dpitch}]
        # gaze_fix (not official) decouples the fix from drive_eye; eye exp of frame 0 is the source's either way
        _close(_run(OfficialStitcher(src, config=_cfg(drive_eye=False, gaze_fix=True)), m, ctrl)[0], _ref(src, exp=exp, deg=deg))
        _close(_run(OfficialStitcher(src, config=_cfg(drive_eye=True, gaze_fix=False)), m, ctrl)[0], _ref(src, deg=deg))


def test_overall_ctrl_info_merged_frame_wins():
    src, m = _source(), _motion(3)
    a = _run(OfficialStitcher(src, config=_cfg(overall_ctrl_info={"delta_yaw": 3.0, "alpha_roll": 0.5})), m,
             [{}, {"delta_yaw": 5.0}, None])
    b = _run(OfficialStitcher(src, config=_cfg()), m,
             [{"delta_yaw": 3.0, "alpha_roll": 0.5}, {"delta_yaw": 5.0, "alpha_roll": 0.5}, {"delta_yaw": 3.0, "alpha_roll": 0.5}])
    _close(a, b, atol=0)


# ---------------------------------------------------------------------------------------- fades
def test_fade_alpha_zero_gives_source_with_fade_s():
    src, m = _source(), _motion(4)
    cfg = _cfg(fade_type="s", fade_out_keys=("scale", "pitch", "yaw", "roll", "t", "exp"))
    got = _run(OfficialStitcher(src, config=cfg), m, [{"fade_alpha": 0.0}] * 4)
    for i in range(4):
        _close(got[i], _ref(src))
    # fade_alpha 1 = no fade; fades need a fade_type
    full = _run(OfficialStitcher(src, config=_cfg()), m)
    _close(_run(OfficialStitcher(src, config=cfg), m, [{"fade_alpha": 1.0}] * 4), full, atol=0)
    _close(_run(OfficialStitcher(src, config=_cfg(fade_out_keys=tuple(cfg["fade_out_keys"]))), m, [{"fade_alpha": 0.0}] * 4), full, atol=0)


def test_fade_d0_goes_to_first_frame_on_fade_keys():
    src, m = _source(), _motion(8)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    cfg = _cfg(drive_eye=False, relative_d=False, fade_type="d0")  # default fade_out_keys: exp
    ctrls = [{} for _ in range(8)]
    ctrls[7] = {"fade_alpha": 0.25}
    got = _run(OfficialStitcher(src, config=cfg), m, ctrls)
    d0, d7 = _split(m[0]), _split(m[7])
    e0 = d0["exp"] * LIP_M + s["exp"] * (1 - LIP_M)
    e7 = d7["exp"] * LIP_M + s["exp"] * (1 - LIP_M)
    deg = {k: _np_softmax_degrees(d7[k]) for k in POSE}
    _close(got[7], _ref(src, t=d7["t"], exp=0.25 * e7 + 0.75 * e0, deg=deg))
    # per-frame fade_out_keys override: fade t only
    ctrls[7] = {"fade_alpha": 0.0, "fade_out_keys": ("t",)}
    got = _run(OfficialStitcher(src, config=cfg), m, ctrls)
    _close(got[7], _ref(src, t=d0["t"], exp=e7, deg=deg))


def test_fade_ramps_official_values():
    r = fade_ramps(10, fade_in=4, fade_out=4)
    assert len(r) == 10
    assert [c.get("fade_alpha") for c in r] == [0.0, 0.25, 0.5, 0.75, None, 1.0, 0.75, 0.5, 0.25, 0.0]
    base = {1: {"delta_yaw": 2.0}, 12: {"vad_alpha": 0.5}}
    r = fade_ramps(10, fade_in=2, ctrl_info=base)
    assert len(r) == 13 and r[1] == {"delta_yaw": 2.0, "fade_alpha": 0.5} and r[12] == {"vad_alpha": 0.5}
    assert base[1] == {"delta_yaw": 2.0}  # not mutated
    assert fade_ramps(3) == [{}, {}, {}]
    assert ctrl_for_frame(base, 12) == {"vad_alpha": 0.5} and ctrl_for_frame(base, 5) == {}
    assert ctrl_for_frame([{"a": 1}], 0) == {"a": 1} and ctrl_for_frame([{"a": 1}], 3) == {}


# ---------------------------------------------------------------------------------------- blinks
def _expected_fixed(n, blink_len, gaps):
    """Blink starts written out by hand: lead-in gaps[0], then blink + gaps cycling, none within the tail."""
    idx = [0] * n
    start, k = gaps[0], 1
    while start < n - max(gaps[-1], blink_len):
        for j in range(blink_len):
            idx[start + j] = j
        start += blink_len + gaps[k % len(gaps)]
        k += 1
    return idx


def test_blink_schedule_fixed_and_cycled():
    assert blink_schedule(50, 15, 0, random.Random(0)) == [0] * 50  # 0 = no blinks
    fixed = blink_schedule(200, 15, 20, random.Random(0))
    assert fixed == _expected_fixed(200, 15, [20])
    assert fixed[20:35] == list(range(15)) and fixed[35:55] == [0] * 20 and fixed[55] == 0 and fixed[56] == 1
    cyc = blink_schedule(300, 10, [10, 30], random.Random(0))
    assert cyc == _expected_fixed(300, 10, [10, 30])


def test_blink_schedule_random_is_seeded_and_respects_gaps():
    a = blink_schedule(3000, 15, None, random.Random(123))  # None = random gaps (the release's default)
    assert a == blink_schedule(3000, 15, None, random.Random(123))
    assert a != blink_schedule(3000, 15, None, random.Random(124))
    starts = [i for i in range(1, 3000) if a[i] == 1]
    assert len(starts) > 10
    assert BLINK_OPEN_MIN + 1 <= starts[0] <= BLINK_OPEN_MAX + 1  # lead-in gap, then row 0 at the start
    for s0, s1 in zip(starts, starts[1:]):
        assert BLINK_OPEN_MIN <= s1 - s0 - 15 <= BLINK_OPEN_MAX
    assert starts[-1] - 1 < 3000 - BLINK_OPEN_MIN  # no blink in the open tail


def test_blink_template_drives_eye_exp_and_set_num_frames():
    src, m = _source(), _motion(60)
    s = {k: v[0].astype(np.float64) for k, v in src.items()}
    arr = np.random.default_rng(3).standard_normal((15, 63)).astype(np.float32) * 0.01
    cfg = _cfg(delta_eye_arr=arr, delta_eye_open_n=5, use_d_keys=("exp",), drive_eye=True, num_frames=60)
    st = OfficialStitcher(src, config=cfg)
    assert st.blink_idx == _expected_fixed(60, 15, [5])
    got = _run(st, m)
    d0 = _split(m[0])
    for i in (0, 5, 12, 30):
        row = st.blink_idx[i]
        exp = s["exp"] + (_split(m[i])["exp"] - d0["exp"]) * LIP_M + arr[row].astype(np.float64) * EYE_M
        _close(got[i], _ref(src, exp=exp))  # pose is the source's: no gaze offset
    st.set_num_frames(100)
    assert st.blink_idx == _expected_fixed(100, 15, [5])
    # seeded random schedules reproduce
    cfg0 = _cfg(delta_eye_arr=arr, delta_eye_open_n=0)
    assert OfficialStitcher(src, config=cfg0, rng=7).blink_idx == OfficialStitcher(src, config=cfg0, rng=random.Random(7)).blink_idx
    # no blinks without drive_eye
    assert OfficialStitcher(src, config=_cfg(delta_eye_arr=arr, drive_eye=False)).blink_idx is None


# ---------------------------------------------------------------------------------------- video source, state
def test_video_source_ping_pong_and_per_frame_source():
    srcs, m = [_source(10 + i) for i in range(3)], _motion(8)
    st = OfficialStitcher(srcs, is_image=False, config=_cfg())  # video defaults: exp only, eyes not driven
    d0 = _split(m[0])
    for i, j in enumerate([0, 1, 2, 2, 1, 0, 0, 1]):
        x_s, x_d = st.stitch(torch.from_numpy(m[i]), i)
        s = {k: v[0].astype(np.float64) for k, v in srcs[j].items()}
        _close(x_s[0].double().numpy(), _ref(srcs[j]))
        _close(x_d[0].double().numpy(), _ref(srcs[j], exp=s["exp"] + (_split(m[i])["exp"] - d0["exp"]) * LIP_M))


def test_set_d0_and_reset():
    src, m = _source(), _motion(4)
    st = OfficialStitcher(src, config=_cfg(drive_eye=False), d0=torch.from_numpy(m[3]))
    _close(st.stitch(torch.from_numpy(m[3]), 0)[1][0].double().numpy(), _ref(src))
    st.reset()
    assert st.d0 is None
    st.stitch(torch.from_numpy(m[2]), 0)
    _close(st.stitch(torch.from_numpy(m[2]), 1)[1][0].double().numpy(), _ref(src))
    # dict motion input equals the vector
    d = {k: torch.from_numpy(v.astype(np.float32)) for k, v in _split(m[1]).items()}
    a = OfficialStitcher(src, config=_cfg()).stitch(d, 0)[1]
    b = OfficialStitcher(src, config=_cfg()).stitch(torch.from_numpy(m[1]), 0)[1]
    assert rel_l2(a, b) < 1e-6


# ---------------------------------------------------------------------------------------- batched == per frame
def _random_ctrls(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c = {}
        for k in ("delta_pitch", "delta_yaw", "delta_roll"):
            if rng.random() < 0.4:
                c[k] = float(rng.uniform(-8, 8))
        for k in ("alpha_pitch", "alpha_yaw", "alpha_roll"):
            if rng.random() < 0.3:
                c[k] = float(rng.uniform(0.3, 1.5))
        if rng.random() < 0.3:
            c["delta_exp"] = rng.standard_normal(63).astype(np.float32) * 0.01
        if rng.random() < 0.4:
            c["vad_alpha"] = float(rng.uniform(0, 1.2))
        if rng.random() < 0.6:
            c["fade_alpha"] = float(rng.uniform(0, 1))
        if rng.random() < 0.3:
            c["fade_out_keys"] = ("exp", "yaw", "t")  # mixes degree and logit poses across frames
        out.append(c)
    return out


@pytest.mark.parametrize(
    "is_image,kw",
    [
        (True, dict(use_d_keys={"exp": 1.5, "pitch": 0.5, "yaw": 1.0, "roll": 1.0, "t": 1.0}, fade_type="d0",
                    fade_out_keys=("exp", "pitch"), overall_ctrl_info={"delta_pitch": 2.0}, delta_eye_open_n=4)),
        (True, dict(fade_type="s", fade_out_keys=("exp", "roll", "scale"), relative_d=False, drive_eye=True, delta_eye_open_n=0)),
        (False, dict(fade_type="s", drive_eye=True, use_d_keys=("exp", "yaw"), delta_eye_open_n=[3, 7])),
        (False, dict(fade_type="d0", use_d_keys={"exp": 0.7, "roll": 2.0}, relative_d=False)),
    ],
)
def test_batch_equals_per_frame(is_image, kw):
    n = 40
    srcs = _source(0) if is_image else [_source(20 + i) for i in range(4)]
    arr = np.random.default_rng(5).standard_normal((6, 63)).astype(np.float32) * 0.01
    cfg = {**kw, "delta_eye_arr": arr, "N_d": n}
    net = _net()
    m, ctrls = _motion(n, seed=3), _random_ctrls(n, seed=4)
    a = OfficialStitcher(srcs, is_image=is_image, config=cfg, stitch_net=net, rng=11)
    b = OfficialStitcher(srcs, is_image=is_image, config=cfg, stitch_net=net, rng=11)
    per = [a.stitch(torch.from_numpy(m[i]), i, ctrls[i]) for i in range(n)]
    xs1, xd1 = b.stitch_batch(torch.from_numpy(m[:15]), 0, ctrls[:15])
    xs2, xd2 = b.stitch_batch(torch.from_numpy(m[15:]), 15, ctrls[15:])
    xd_per = torch.cat([p[1] for p in per])
    assert rel_l2(torch.cat([xd1, xd2]), xd_per) < 1e-6
    xs_per = torch.cat([p[0] for p in per])
    if is_image:
        assert xs1.shape == (1, 21, 3) and rel_l2(xs1.expand(n, 21, 3), xs_per) < 1e-7
    else:
        assert rel_l2(torch.cat([xs1, xs2]), xs_per) < 1e-7
    for i in range(n):  # frame by frame, not only on average
        assert rel_l2(torch.cat([xd1, xd2])[i], xd_per[i]) < 1e-5


# ---------------------------------------------------------------------------------------- errors
def test_bad_inputs_raise():
    src = _source()
    with pytest.raises(ValueError, match="fade_type"):
        official.stitch_config({"fade_type": "x"})
    with pytest.raises(ValueError, match="fade_target"):
        StitchConfig(fade_target="d0")
    with pytest.raises(ValueError, match="driven_keys"):
        StitchConfig(driven_keys=("exp", "kp"))
    with pytest.raises(ValueError, match="blink_template"):
        StitchConfig(blink_template=np.zeros((3, 62)))
    with pytest.raises(ValueError, match="delta_eye_open_n"):
        official.stitch_config({"delta_eye_open_n": [5, -1]})
    with pytest.raises(ValueError, match="blink_interval"):
        StitchConfig(blink_interval=-1)
    with pytest.raises(ValueError, match="overall_ctrl_info"):
        official.stitch_config({"overall_ctrl_info": {"delta_yow": 1}})
    with pytest.raises(ValueError, match="FrameControls.delta_yaw"):
        FrameControls(2, delta_yaw=torch.zeros(3))
    with pytest.raises(ValueError, match="stitch_net"):
        MotionStitcher(src, config=StitchConfig())
    with pytest.raises(ValueError, match="kp"):
        OfficialStitcher({k: v for k, v in src.items() if k != "kp"}, config=_cfg())
    with pytest.raises(ValueError, match="exp"):
        OfficialStitcher({**src, "exp": np.zeros((1, 60))}, config=_cfg())
    with pytest.raises(ValueError, match="image source"):
        OfficialStitcher([src, src], is_image=True, config=_cfg())
    st = OfficialStitcher(src, config=_cfg())
    with pytest.raises(ValueError, match="265"):
        st.stitch(torch.zeros(264), 0)
    with pytest.raises(ValueError, match="unknown controls"):
        st.stitch(torch.zeros(265), 0, {"delta_yow": 1.0})
    with pytest.raises(ValueError, match="delta_exp"):
        st.stitch(torch.zeros(265), 0, {"delta_exp": np.zeros(10)})
    with pytest.raises(ValueError, match="cover the 3 motion frames"):
        st.stitcher.stitch_batch(torch.zeros(3, 265), FrameControls(1))
    with pytest.raises(ValueError, match="one entry per"):
        st.stitch_batch(torch.zeros(3, 265), 0, [{}])
