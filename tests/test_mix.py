"""What a motion drives (parts), frame-rate resampling by timestamps, and Mix Motion's maths: pure tensor tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ditto_core.motion import Motion, load_motion, save_motion
from ditto_core.motion.edit import ease_weights
from ditto_core.motion.mix import fit_length, mix_motions
from ditto_core.motion.parts import OFFICIAL, parse_parts, part_dims, parts_mask, resolve_parts
from ditto_core.motion.resample import resample_rows
from ditto_core.motion.vector import EXP, EYE_KPS, LIP_KPS, MOTION_DIM, PITCH, ROLL, T, YAW
from ditto_core.stitch import MotionStitcher, StitchConfig
from ditto_core.validate import OptionError


# --------------------------------------------------------------------------------------------------- parts
def test_parse_parts_normalises_and_names_the_setting():
    assert parse_parts(None) is None and parse_parts("official") is None
    assert parse_parts("eyes, Head-Pose,eyes") == ("head_pose", "eyes")
    assert parse_parts(["lips", "official"]) == (OFFICIAL, "lips")
    with pytest.raises(OptionError, match=r"--drive-parts: expected .*unknown: nose"):
        parse_parts("head_pose,nose", "--drive-parts")
    with pytest.raises(OptionError, match="parts: expected .*empty"):
        parse_parts(" , ")


def test_part_dims_cover_the_motion_vector_layout():
    assert part_dims("head_pose") == [*range(PITCH.start, PITCH.stop), *range(YAW.start, YAW.stop),
                                      *range(ROLL.start, ROLL.stop)]
    assert part_dims("translation") == [199, 200, 201]
    assert part_dims("brows") == [EXP.start + 3, EXP.start + 4, EXP.start + 5, EXP.start + 6, EXP.start + 7,
                                  EXP.start + 8]
    assert part_dims("lips") == [EXP.start + 3 * k + c for k in LIP_KPS for c in range(3)]
    assert parts_mask(["expression"]).sum() == 63 and parts_mask(["head_pose", "translation"]).sum() == 201
    assert not parts_mask(["expression", "head_pose", "translation"])[0]  # scale is never driven


def test_resolve_parts_for_image_and_video_sources():
    assert resolve_parts(None, True) is None
    official_image = resolve_parts((OFFICIAL,), True)
    assert official_image.driven_keys == ("exp", "pitch", "yaw", "roll", "t")
    assert official_image.exp_kps == tuple(sorted(LIP_KPS)) and not official_image.eyes
    official_video = resolve_parts((OFFICIAL,), False)
    assert official_video.driven_keys == ("exp",) and official_video.exp_kps == tuple(sorted(LIP_KPS))
    head = resolve_parts(("head_pose",), False)
    assert head.driven_keys == ("pitch", "yaw", "roll") and head.exp_kps == ()
    eyes = resolve_parts((OFFICIAL, "eyes"), True)
    assert eyes.eyes and set(eyes.exp_kps) == set(LIP_KPS) | set(EYE_KPS)


def _source(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"scale": torch.tensor([[1.1]]), "pitch": torch.randn(1, 66, generator=g),
            "yaw": torch.randn(1, 66, generator=g), "roll": torch.randn(1, 66, generator=g),
            "t": torch.randn(1, 3, generator=g) * 0.01, "exp": torch.randn(1, 63, generator=g) * 0.01,
            "kp": torch.randn(1, 63, generator=g) * 0.1}


def _rows(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, MOTION_DIM, generator=torch.Generator().manual_seed(seed)) * 0.05


def _x_d(cfg: StitchConfig, motion: torch.Tensor, blinks: torch.Tensor | None = None) -> torch.Tensor:
    st = MotionStitcher(_source(), True, StitchConfig(**{**cfg.__dict__, "stitching": False, "blink_template": blinks}))
    return st.stitch_batch(motion)[1]


def test_stitcher_takes_only_the_selected_keypoints_from_the_motion():
    m = _rows(4)
    still = _x_d(StitchConfig(driven_keys=(), exp_kps=()), m)  # nothing driven: the source on every frame
    brows = _x_d(StitchConfig(driven_keys=("exp",), exp_kps=(1, 2), official_eyes=False), m)
    moved = (brows - still).abs().amax(-1)  # (4, 21); frame 0 is the reference: no change yet
    assert moved[0].eq(0).all() and moved[1:, 1].gt(0).all() and moved[1:, 2].gt(0).all()
    assert moved[:, [k for k in range(21) if k not in (1, 2)]].eq(0).all()
    # the official mask is the lips, plus the eyes when they are driven
    official = _x_d(StitchConfig(driven_keys=("exp",), drive_eye=False), m)
    lips = _x_d(StitchConfig(driven_keys=("exp",), exp_kps=LIP_KPS, drive_eye=False), m)
    assert torch.equal(official, lips)
    # ("official", ...) keeps the official eyes: without a blink template an image source's eyes are the motion's
    eyes_official = _x_d(StitchConfig(driven_keys=("exp",)), m)
    assert torch.equal(_x_d(StitchConfig(driven_keys=("exp",), exp_kps=LIP_KPS, official_eyes=True), m), eyes_official)
    assert not torch.equal(brows, _x_d(StitchConfig(driven_keys=("exp",), exp_kps=(1, 2), official_eyes=True), m))


def test_eyes_from_the_motion_get_no_blink_template_and_no_gaze_fix():
    m = _rows(6)
    blink = torch.full((3, 63), 0.05)
    cfg = StitchConfig(driven_keys=("exp", "pitch", "yaw", "roll", "t"), exp_kps=tuple(range(21)), blink_interval=1)
    assert cfg.eyes_from_motion and cfg.resolved_gaze_fix(True) is False
    assert StitchConfig(gaze_fix=True, exp_kps=tuple(range(21))).resolved_gaze_fix(True) is True
    with_template = _x_d(cfg, m, blink)
    without = _x_d(cfg, m, None)
    assert torch.equal(with_template, without)  # the template is not added on the motion's own eyes
    # eyes not selected: the source's eyes with the release's blinks, as officially
    lips_only = StitchConfig(driven_keys=("exp",), exp_kps=LIP_KPS, blink_interval=1)
    assert not torch.equal(_x_d(lips_only, m, blink), _x_d(lips_only, m, None))


# ------------------------------------------------------------------------------------------------ resampling
def test_30_fps_track_resampled_to_25_fps_at_the_right_times():
    t = np.arange(30) / 30.0
    rows = torch.from_numpy(np.stack([2 * t + 1, -3 * t], 1))  # linear in time: interpolation is exact
    out = resample_rows(rows, t, 25.0)
    assert out.shape == (25, 2)  # one second
    k = np.arange(25) / 25.0
    np.testing.assert_allclose(out.numpy(), np.stack([2 * k + 1, -3 * k], 1), atol=1e-12)


def test_25_fps_comes_out_unchanged_and_60_fps_drops_frames():
    rows = _rows(50)
    assert torch.equal(resample_rows(rows, np.arange(50) / 25.0), rows)
    r60 = _rows(120)
    out = resample_rows(r60, np.arange(120) / 60.0)
    assert out.shape[0] == 50
    assert torch.equal(out[0], r60[0]) and torch.equal(out[5], r60[12])  # 0.2 s is frame 12 at 60 fps exactly
    assert torch.allclose(out[1], r60[2] + (r60[3] - r60[2]) * 0.4)  # 0.04 s = frame 2.4


def test_ntsc_and_variable_frame_rates_by_timestamps():
    n = 300
    t = np.arange(n) * 1001 / 30000  # 29.97 fps: 10.01 s
    assert resample_rows(_rows(n), t).shape[0] == 250
    vfr = np.array([0.0, 0.03, 0.05, 0.1, 0.13, 0.2, 0.21, 0.3])
    rows = torch.from_numpy(np.stack([5 * vfr, vfr ** 0], 1))
    out = resample_rows(rows, vfr)
    k = np.arange(out.shape[0]) / 25.0
    np.testing.assert_allclose(out[:, 0].numpy(), np.minimum(5 * k, 5 * vfr[-1]), atol=1e-12)
    assert out.shape[0] == int(round((0.3 + np.median(np.diff(vfr))) * 25))
    with pytest.raises(OptionError, match="timestamps must be strictly increasing"):
        resample_rows(rows, vfr[::-1])
    with pytest.raises(OptionError, match="one time per frame"):
        resample_rows(rows, vfr[:3])


# ------------------------------------------------------------------------------------------------------ mix
def _motion(n: int, seed: int, **kw) -> Motion:
    return Motion(motion=_rows(n, seed), **kw)


def test_mix_takes_each_part_from_b_rebased_on_a_reference():
    a, b = _motion(10, 1), _motion(10, 2, reference=_rows(1, 3)[0])
    for part in ("head_pose", "translation", "eyes", "brows", "lips", "expression"):
        out = mix_motions(a, b, part)
        dims = torch.tensor(part_dims(part))
        other = torch.ones(MOTION_DIM, dtype=torch.bool)
        other[dims] = False
        expect = b.motion - b.reference + a.motion[0]  # relative: b's change since its reference, from a's
        assert torch.allclose(out.motion[:, dims], expect[:, dims], atol=1e-6), part
        assert torch.equal(out.motion[:, other], a.motion[:, other]), part
        assert out.parts == (OFFICIAL, part) and torch.equal(out.reference, a.motion[0])


def test_mix_eases_in_and_out_over_the_frame_range():
    a, b = _motion(20, 1), _motion(20, 2)
    out = mix_motions(a, b, "head_pose", start=4, end=16, ease_in=3, ease_out=2)
    w = ease_weights(20, 4, 16, 3, 2)
    assert w[:4].eq(0).all() and w[16:].eq(0).all() and w[7:14].eq(1).all() and 0 < w[4] < w[5] < w[6] < 1
    d = PITCH.start
    expect = a.motion[:, d] + w * (b.motion[:, d] - b.motion[0, d] + a.motion[0, d] - a.motion[:, d])
    assert torch.allclose(out.motion[:, d], expect, atol=1e-6)
    assert out.edits[-1].start == 4 and out.edits[-1].end == 16 and "head_pose" in out.edits[-1].label


def test_absolute_motions_mix_their_values():
    a, b = _motion(5, 1, relative=False), _motion(5, 2, relative=False)
    out = mix_motions(a, b, "translation")
    assert torch.equal(out.motion[:, T], b.motion[:, T]) and not out.relative


@pytest.mark.parametrize("length, n, b_rows", [
    ("loop", 8, [0, 1, 2, 3, 4, 0, 1, 2]),
    ("ping_pong", 8, [0, 1, 2, 3, 4, 4, 3, 2]),
    ("hold", 8, [0, 1, 2, 3, 4, 4, 4, 4]),
    ("trim", 5, [0, 1, 2, 3, 4]),
])
def test_length_choices(length, n, b_rows):
    a = _motion(8, 1, vad=torch.arange(8.0))
    b = _motion(5, 2, relative=True)
    out = mix_motions(a, b, "lips", length=length)
    assert out.num_frames == n and torch.equal(out.vad, torch.arange(8.0)[:n])
    dims = torch.tensor(part_dims("lips"))
    expect = b.motion[b_rows] - b.motion[0] + a.motion[0]
    assert torch.allclose(out.motion[:, dims], expect[:, dims], atol=1e-6)
    # a is the timeline: a longer b is cut to a's length whatever the mode (trim: both to the shorter)
    long_b = _motion(12, 5)
    out = mix_motions(a, long_b, "lips", length=length)
    assert out.num_frames == 8
    assert torch.allclose(out.motion[:, dims], (long_b.motion[:8] - long_b.motion[0] + a.motion[0])[:, dims], atol=1e-6)
    # the shorter motion extended, its controls with it
    ext = fit_length(_motion(3, 4, head_amplitude=torch.tensor([1.0, 2.0, 3.0])), 6, length if length != "trim" else "hold")
    assert ext.num_frames == 6 and ext.head_amplitude[:3].tolist() == [1.0, 2.0, 3.0]


def test_mixed_motion_saves_and_loads(tmp_path):
    out = mix_motions(_motion(6, 1), _motion(4, 2), "head_pose,eyes", length="ping_pong")
    back = load_motion(save_motion(tmp_path / "mix.safetensors", out))
    assert back.parts == (OFFICIAL, "head_pose", "eyes") and back.relative
    assert torch.equal(back.motion, out.motion) and torch.equal(back.reference, out.reference)
    assert back.edits == out.edits and back.meta["mix_length"] == "ping_pong"


def test_mix_refuses_what_cannot_be_mixed():
    a = _motion(6, 1)
    with pytest.raises(OptionError, match="motion_b"):
        mix_motions(a, "not a motion", "lips")
    with pytest.raises(OptionError, match="start frame 6 is past the 6 frames"):
        mix_motions(a, _motion(6, 2), "lips", start=6)
    with pytest.raises(OptionError, match="end must be"):
        mix_motions(a, _motion(6, 2), "lips", start=3, end=3)
    with pytest.raises(OptionError, match="parts: name the parts"):
        mix_motions(a, _motion(6, 2), "official")
    with pytest.raises(OptionError, match="30 fps"):
        mix_motions(a, _motion(6, 2, fps=30.0), "lips")
    with pytest.raises(OptionError, match="motion_a is relative and motion_b absolute"):
        mix_motions(a, _motion(6, 2, relative=False), "lips")
    with pytest.raises(OptionError, match="length"):
        mix_motions(a, _motion(6, 2), "lips", length="stretch")
    with pytest.raises(ValueError, match=r"N >= 1"):  # a zero-length motion cannot exist
        Motion(motion=torch.zeros(0, MOTION_DIM))
