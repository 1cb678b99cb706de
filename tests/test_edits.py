"""Motion edits and controls (ditto_core.motion): ranges, easing, stacking, the per-frame controls the stitcher takes,
whole-clip controls, curves, save/load."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file


from ditto_core.motion import (
    FORMAT_VERSION,
    LIP_DIMS,
    PITCH,
    ROLL,
    YAW,
    ClipControls,
    ClipSettings,
    EditOptions,
    FrameControls,
    Motion,
    MotionFormatError,
    apply_edit,
    bins_to_degrees,
    ease_weights,
    load_motion,
    motion_curves,
    save_motion,
    shaped_motion,
    smooth_pose,
)
from ditto_core.official import fade_ramps
from ditto_core.runtime.keypoints import stitch_config_for
from ditto_core.stitch import MotionStitcher, StitchConfig


def _config(motion: Motion, base: StitchConfig | None = None, clip: ClipControls | None = None) -> StitchConfig:
    """The stitcher settings a planner uses for ``motion`` (no stitching MLP)."""
    clip = clip or ClipControls()
    cfg = stitch_config_for(base or StitchConfig(stitching=False), clip.settings.over(motion.settings),
                            clip.fades or bool((motion.fade_alpha < 1).any()), motion.num_frames)
    return cfg


def _present(t: torch.Tensor | None) -> list:
    """Per frame: the control's value, or None where it is absent (NaN) or never set."""
    return [None] * 0 if t is None else [None if v != v else v for v in t.tolist()]


def _motion(n: int = 40, seed: int = 0, **kw) -> Motion:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, 265, generator=g) * 0.05
    m[:, PITCH] = torch.randn(n, 66, generator=g)
    m[:, YAW] = torch.randn(n, 66, generator=g)
    m[:, ROLL] = torch.randn(n, 66, generator=g)
    return Motion(motion=m, vad=torch.rand(n, generator=g) * 0.1, **kw)


def _source(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "scale": 1 + 0.1 * torch.rand(1, 1, generator=g),
        "pitch": torch.randn(1, 66, generator=g),
        "yaw": torch.randn(1, 66, generator=g),
        "roll": torch.randn(1, 66, generator=g),
        "t": 0.1 * torch.randn(1, 3, generator=g),
        "exp": 0.02 * torch.randn(1, 63, generator=g),
        "kp": 0.3 * torch.randn(1, 63, generator=g),
    }


def _smoothstep(t: float) -> float:
    return t * t * (3 - 2 * t)


# ------------------------------------------------------------------------------------------ ranges and easing
def test_offsets_land_in_the_range_only():
    m = _motion(30)
    out = apply_edit(m, EditOptions(start=5, end=12, yaw=10.0, pitch=-3.0))
    expect = torch.zeros(30)
    expect[5:12] = 1
    assert torch.equal(out.delta_yaw, 10 * expect)
    assert torch.equal(out.delta_pitch, -3 * expect)
    assert torch.equal(out.delta_roll, torch.zeros(30))
    c = out.frame_controls()
    # offsets of 0 are "absent" for the stitcher (the official path stays exact outside the range)
    assert _present(c.delta_yaw) == [None] * 5 + [10.0] * 7 + [None] * 18
    assert _present(c.delta_pitch) == [None] * 5 + [-3.0] * 7 + [None] * 18
    assert c.delta_roll is None and c.fade_alpha is None and c.head_amplitude is None
    assert _present(out.frame_controls(4, 6).delta_yaw) == [None, 10.0]


def test_end_minus_one_and_past_the_end_mean_to_the_end():
    m = _motion(20)
    a = apply_edit(m, EditOptions(start=15, end=-1, roll=4.0))
    b = apply_edit(m, EditOptions(start=15, end=500, roll=4.0))
    assert torch.equal(a.delta_roll, b.delta_roll)
    assert a.delta_roll[14] == 0 and (a.delta_roll[15:] == 4).all()
    assert a.edits[-1].start == 15 and a.edits[-1].end == 20


def test_a_range_past_the_end_warns_and_one_ending_past_it_runs_to_the_end(caplog):
    m = _motion(10)
    with caplog.at_level("WARNING"):
        out = apply_edit(m, EditOptions(start=10, end=30, yaw=1.0, mouth_amplitude=2.0, blink_interval=50))
    assert "start frame 10 is past the clip's 10 frames: this edit changes no frame" in caplog.text
    assert torch.equal(out.delta_yaw, m.delta_yaw) and torch.equal(out.mouth_amplitude, m.mouth_amplitude)
    assert out.edits == () and out.blink_interval == 50  # clip-wide settings still apply
    caplog.clear()
    with caplog.at_level("WARNING"):
        out = apply_edit(m, EditOptions(start=8, end=30, yaw=1.0))
    assert "end frame 30 is past the clip's 10 frames" in caplog.text
    assert out.delta_yaw.tolist() == [0.0] * 8 + [1.0, 1.0] and (out.edits[-1].start, out.edits[-1].end) == (8, 10)
    assert torch.equal(ease_weights(10, 12, -1, 2, 2), torch.zeros(10))


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"start": -1}, "start"),
        ({"start": 5, "end": 5}, "end"),
        ({"ease_in": -2}, "ease_in"),
        ({"mouth_amplitude": -0.5}, "mouth_amplitude"),
        ({"relax_on_silence": 1.5}, "relax_on_silence"),
        ({"gaze_fix": "maybe"}, "gaze_fix"),
        ({"blink_interval": -3}, "blink_interval"),
        ({"smoothing": 0}, "smoothing"),
        ({"yaw": float("nan")}, "yaw"),
    ],
)
def test_edit_options_are_validated(kw, msg):
    with pytest.raises(ValueError, match=msg):
        EditOptions(**kw)


def test_ease_weights_are_smoothstep_ramps():
    w = ease_weights(20, start=4, end=14, ease_in=3, ease_out=2)
    expect = [0.0] * 20
    for i in range(4, 14):
        expect[i] = 1.0
    for k in range(3):  # frames 4, 5, 6 at t = 1/4, 2/4, 3/4
        expect[4 + k] = _smoothstep((k + 1) / 4)
    for k in range(2):  # frames 13, 12 at t = 1/3, 2/3
        expect[13 - k] = _smoothstep((k + 1) / 3)
    assert torch.allclose(w, torch.tensor(expect), atol=1e-7)
    assert expect[4:7] == pytest.approx([0.15625, 0.5, 0.84375])


def test_ease_scales_the_offset_and_the_factor():
    m = _motion(20)
    out = apply_edit(m, EditOptions(start=2, end=10, ease_in=3, yaw=8.0, mouth_amplitude=3.0))
    w = ease_weights(20, 2, 10, 3, 0)
    assert torch.allclose(out.delta_yaw, 8 * w)
    assert torch.allclose(out.mouth_amplitude, 1 + 2 * w)


def test_overlapping_easing_takes_the_smaller_weight():
    w = ease_weights(10, 0, 4, ease_in=4, ease_out=4)
    ramp = [_smoothstep(k / 5) for k in range(1, 5)]
    expect = [min(ramp[i], ramp[3 - i]) for i in range(4)] + [0.0] * 6
    assert torch.allclose(w, torch.tensor(expect), atol=1e-7)


# ------------------------------------------------------------------------------------------ stacking, identity
def test_edits_stack_and_never_mutate():
    m = _motion(30)
    before = {k: v.clone() for k, v in m.controls().items()}
    motion_before = m.motion.clone()
    a = apply_edit(m, EditOptions(start=0, end=20, yaw=5.0, head_amplitude=2.0))
    b = apply_edit(a, EditOptions(start=10, end=30, yaw=-2.0, head_amplitude=0.5, label="second"))
    for k, v in before.items():
        assert torch.equal(getattr(m, k), v)
    assert torch.equal(m.motion, motion_before) and m.edits == ()
    assert len(a.edits) == 1 and torch.equal(a.delta_yaw[:20], torch.full((20,), 5.0))
    yaw = torch.zeros(30)
    yaw[:20] += 5
    yaw[10:] -= 2
    amp = torch.ones(30)
    amp[:20] *= 2
    amp[10:] *= 0.5
    assert torch.equal(b.delta_yaw, yaw)
    assert torch.equal(b.head_amplitude, amp)
    assert [(e.start, e.end, e.label) for e in b.edits] == [(0, 20, "yaw +5°, head ×2"), (10, 30, "second")]


def test_identity_edit_changes_nothing():
    m = _motion(25)
    out = apply_edit(m, EditOptions(start=3, end=9, ease_in=2, ease_out=2))
    assert out is not m
    assert torch.equal(out.motion, m.motion)
    for k, v in m.controls().items():
        assert torch.equal(getattr(out, k), v)
    assert out.edits == ()


def test_amplitude_one_and_fresh_motion_give_the_official_stitch_inputs():
    m = _motion(25)
    out = apply_edit(m, EditOptions(head_amplitude=1.0, mouth_amplitude=1.0, expression=1.0))
    assert out.frame_controls().present() == {}
    assert torch.equal(shaped_motion(out), m.motion)
    assert stitch_config_for(StitchConfig(), out.settings, False, 25) == StitchConfig(num_frames=25)


def test_smoothing_matches_the_official_window():
    m = _motion(12)
    k = 5
    got = smooth_pose(m.motion, k)
    ref = m.motion.clone()
    for i in range(12):  # official Audio2Motion._smo
        ss, ee = max(0, i - k // 2), min(12, i + k // 2 + 1)
        ref[i, :202] = m.motion[ss:ee, :202].mean(0)
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.equal(got[:, 202:], m.motion[:, 202:])
    out = apply_edit(m, EditOptions(start=0, smoothing=k))
    assert torch.allclose(out.motion, ref, atol=1e-6)


# ------------------------------------------------------------------------------------------ stitcher equivalence
def _stitch(motion, cfg, controls=None, src=None, is_image=True):
    st = MotionStitcher(src or _source(), is_image=is_image, config=cfg, stitch_net=None)
    return st.stitch_batch(motion, controls)[1]


def _edited(m: Motion, options: EditOptions, **cfg) -> torch.Tensor:
    """x_d of ``m`` edited by ``options`` as the planner stitches it (the motion's own controls)."""
    out = apply_edit(m, options)
    return _stitch(out.motion, replace(_config(out), **cfg), out.frame_controls())


@pytest.mark.parametrize("a", [0.0, 0.5, 1.7])
def test_constant_head_amplitude_equals_official_use_d_keys_weights(a):
    m = _motion(20)
    ours = _edited(m, EditOptions(head_amplitude=a))
    official = StitchConfig(driven_keys={"exp": 1, "pitch": a, "yaw": a, "roll": a, "t": a}, stitching=False)
    ref = _stitch(m.motion, official)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_constant_mouth_amplitude_scales_the_lip_deviation_like_exp_weights():
    # without driven eyes only the lips are driven, so an official exp weight a = mouth amplitude a
    a = 1.8
    m = _motion(20)
    ours = _edited(m, EditOptions(mouth_amplitude=a), drive_eye=False)
    official = StitchConfig(driven_keys={"exp": a, "pitch": 1, "yaw": 1, "roll": 1, "t": 1}, stitching=False,
                            drive_eye=False)
    assert torch.allclose(ours, _stitch(m.motion, official), atol=1e-5)


def test_expression_scales_all_exp_deviation_like_exp_weights():
    a = 0.4
    m = _motion(20)
    official = StitchConfig(driven_keys={"exp": a, "pitch": 1, "yaw": 1, "roll": 1, "t": 1}, stitching=False)
    assert torch.allclose(_edited(m, EditOptions(expression=a)), _stitch(m.motion, official), atol=1e-5)


def test_amplitudes_scale_the_deviation_from_the_reference_frame():
    """Frame by frame (ramped) amplitudes, in relative and in absolute mode, against a float64 computation."""
    m = _motion(12)
    head = torch.linspace(0.0, 2.0, 12)
    mouth = torch.linspace(2.0, 0.5, 12)
    c = FrameControls(12, head_amplitude=head, mouth_amplitude=mouth)
    for relative in (True, False):
        cfg = StitchConfig(stitching=False, drive_eye=False, relative=relative)
        got = _stitch(m.motion, cfg, c)
        # scale the deviation from frame 0 by hand, then stitch without controls
        x = m.motion.double()
        ref_m = x.clone()
        ref_m[:, 1:202] = x[:1, 1:202] + (x[:, 1:202] - x[:1, 1:202]) * head.double()[:, None]
        lips = [202 + d for d in LIP_DIMS]
        ref_m[:, lips] = x[:1, lips] + (x[:, lips] - x[:1, lips]) * mouth.double()[:, None]
        ref = _stitch(ref_m.float(), cfg)
        assert torch.allclose(got, ref, atol=2e-6), relative
    # the reference frame is the stitcher's d0 (a stream's, from before its first emitted frame): a still head
    # (amplitude 0) is d0's pose and translation on every frame
    d0 = m.motion[3]
    cfg = StitchConfig(stitching=False, drive_eye=False)
    got = MotionStitcher(_source(), config=cfg, d0=d0).stitch_batch(m.motion, FrameControls(12, head_amplitude=torch.zeros(12)))[1]
    still = m.motion.clone()
    still[:, 1:202] = d0[1:202]
    ref = MotionStitcher(_source(), config=cfg, d0=d0).stitch_batch(still)[1]
    assert torch.allclose(got, ref, atol=1e-6)


def test_shaped_motion_keeps_frame_zero():
    m = _motion(10)
    out = apply_edit(m, EditOptions(start=0, head_amplitude=3, mouth_amplitude=0, expression=2))
    motion = shaped_motion(out)
    assert torch.equal(motion[0], m.motion[0])
    lip = [202 + d for d in LIP_DIMS]
    assert torch.allclose(motion[:, lip], m.motion[:1, lip].expand(10, -1))  # mouth 0 freezes the lips at frame 0


def test_whole_clip_fades_equal_the_official_setup_nd_ramps():
    n = 30
    out = apply_edit(_motion(n), EditOptions(fade_in=5, fade_out=4))
    ref = fade_ramps(n, fade_in=5, fade_out=4)
    expect = [r.get("fade_alpha", 1.0) for r in ref]
    got = [1.0 if v is None else v for v in _present(out.frame_controls().fade_alpha)]
    assert got == pytest.approx(expect, abs=1e-7)
    assert _config(out).fade_target == "source"
    # the job-level controls give the same ramps, and a stream (no end) refuses a fade-out
    clip = ClipControls(fade_in=5, fade_out=4)
    got = [1.0 if v is None else v for v in _present(clip.frame_controls(0, n, total=n).fade_alpha)]
    assert got == pytest.approx(expect, abs=1e-7)
    tail = clip.frame_controls(20, 10, total=n).fade_alpha
    assert [1.0 if v != v else v for v in tail.tolist()] == pytest.approx(expect[20:], abs=1e-7)
    with pytest.raises(ValueError, match="fade_out"):
        clip.frame_controls(0, 5)


def test_relax_on_silence_sets_vad_alpha_on_quiet_frames():
    n = 30
    vad = torch.full((n,), 0.2)
    vad[10:20] = 0.001
    m = Motion(motion=torch.zeros(n, 265), vad=vad)
    out = apply_edit(m, EditOptions(relax_on_silence=0.6, silence_threshold=0.01))
    assert torch.allclose(out.vad_alpha[12:18], torch.full((6,), 0.4))  # inside the silence (beyond the 5-frame blur)
    assert torch.equal(out.vad_alpha[:8], torch.ones(8)) and torch.equal(out.vad_alpha[22:], torch.ones(8))
    assert (out.vad_alpha[8:12] < 1).all() and (out.vad_alpha[8:12] >= 0.4).all()
    c = out.frame_controls()
    assert c.vad_alpha[15] == pytest.approx(0.4) and c.vad_alpha[0] == 1.0


def test_clip_wide_settings_reach_the_stitch_config():
    m = _motion(10)
    base = StitchConfig(blink_interval=None)  # the release's random gaps
    assert _config(apply_edit(m, EditOptions(blink_interval=0)), base).blink_interval == 0
    assert _config(apply_edit(m, EditOptions(blink_interval=42)), base).blink_interval == 42
    assert _config(apply_edit(m, EditOptions(blink_interval=-1)), base).blink_interval is None
    # the job's setting wins over the motion's, which wins over the release's
    edited = apply_edit(m, EditOptions(blink_interval=42))
    assert _config(edited, base, ClipControls(blink_interval=7)).blink_interval == 7
    assert _config(edited, base, ClipControls()).blink_interval == 42
    keep = _config(m)
    assert keep.gaze_fix is None and keep.resolved_gaze_fix(True) and not keep.resolved_gaze_fix(False)
    on = apply_edit(m, EditOptions(gaze_fix="on"))
    off = apply_edit(on, EditOptions(gaze_fix="off"))
    for is_image in (True, False):
        assert _config(on).resolved_gaze_fix(is_image) is True
        assert _config(off).resolved_gaze_fix(is_image) is False
        assert _config(off).drive_eye is None  # the eyes are still driven as official
    assert ClipSettings(3, False).over(ClipSettings(None, True, True)) == ClipSettings(3, False, True)


def test_gaze_fix_off_changes_only_the_eye_keypoints():
    m = _motion(12)
    on = _stitch(m.motion, _config(m))
    off_m = apply_edit(m, EditOptions(gaze_fix="off"))
    off = _stitch(off_m.motion, _config(off_m), off_m.frame_controls())
    diff = (on - off).abs().amax(dim=(0, 2))  # per keypoint
    changed = {int(k) for k in torch.nonzero(diff > 1e-7)}
    assert changed and changed <= {11, 15}  # exp[33], [34] -> kp 11; exp[45], [46] -> kp 15


def test_controls_of_several_owners_combine():
    """Offsets add and factors multiply; an absent control (NaN or None) takes the other's."""
    m = apply_edit(_motion(6), EditOptions(start=2, end=4, pitch=3.0, head_amplitude=2.0))
    overall = FrameControls(1, delta_pitch=torch.tensor([2.0]), fade_alpha=torch.tensor([0.5])).expand(6)
    c = m.frame_controls().combine(overall)
    assert _present(c.delta_pitch) == [2.0, 2.0, 5.0, 5.0, 2.0, 2.0]
    assert c.head_amplitude.tolist() == [1, 1, 2, 2, 1, 1] and _present(c.fade_alpha) == [0.5] * 6
    job = ClipControls(pitch=1.0, head=0.5).frame_controls(0, 6)
    c2 = c.combine(job)
    assert _present(c2.delta_pitch) == [3.0, 3.0, 6.0, 6.0, 3.0, 3.0]
    assert c2.head_amplitude.tolist() == [0.5, 0.5, 1, 1, 0.5, 0.5]
    parts = FrameControls.cat([c2.rows(0, 2), FrameControls(3), c2.rows(5, 6)])
    assert parts.num_frames == 6 and _present(parts.delta_pitch) == [3.0, 3.0, None, None, None, 3.0]
    assert parts.head_amplitude.tolist() == [0.5, 0.5, 1, 1, 1, 0.5]


# ------------------------------------------------------------------------------------------ curves
def test_motion_curves_pose_and_mouth():
    n = 12
    m = torch.zeros(n, 265)
    logits = torch.zeros(66)
    logits[40] = 50.0  # a sharp bin: 40 * 3 - 97.5 = 22.5 degrees
    m[:, YAW] = logits
    lips = torch.zeros(n, 18)
    lips[:, 0] = torch.arange(n) * 0.018  # mean |offset| over 18 values = 0.001 * i
    m[:, [202 + d for d in LIP_DIMS]] = lips
    mo = apply_edit(Motion(motion=m), EditOptions(start=6, yaw=-2.5, label="turn"))
    c = motion_curves(mo)
    assert c["frames"] == n and c["fps"] == 25.0 and c["step"] == 1
    assert c["yaw"] == pytest.approx([22.5] * 6 + [20.0] * 6, abs=1e-3)
    assert c["pitch"] == pytest.approx([float(bins_to_degrees(torch.zeros(66)))] * n, abs=1e-3)
    assert c["mouth"] == pytest.approx([0.001 * i for i in range(n)], abs=1e-6)
    assert c["edits"] == [{"start": 6, "end": 12, "label": "turn"}]
    json.dumps(c)


def test_motion_curves_subsample_long_motions():
    c = motion_curves(Motion(motion=torch.zeros(5000, 265)), max_points=1000)
    assert c["step"] == 5 and len(c["yaw"]) == 1000


# ------------------------------------------------------------------------------------------ files
def test_save_load_round_trip(tmp_path):
    m = _motion(17, meta={"emotion": "Happy"})
    m = apply_edit(m, EditOptions(start=2, end=9, ease_in=2, yaw=7, mouth_amplitude=1.5, blink_interval=30, gaze_fix="on"))
    m = apply_edit(m, EditOptions(relax_on_silence=0.5, silence_threshold=0.05, fade_out=3, smoothing=3))
    p = save_motion(tmp_path / "sub" / "perf.safetensors", m)
    back = load_motion(p)
    assert torch.equal(back.motion, m.motion) and torch.equal(back.vad, m.vad)
    for k, v in m.controls().items():
        assert torch.equal(getattr(back, k), v), k
    assert (back.blink_interval, back.gaze_fix, back.drive_eye) == (30, True, None)
    assert back.edits == m.edits and back.meta == {"emotion": "Happy"} and back.fps == 25.0


def test_load_rejects_foreign_and_newer_files(tmp_path):
    other = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(3)}, str(other))
    with pytest.raises(MotionFormatError, match="not a Ditto motion"):
        load_motion(other)
    newer = tmp_path / "newer.safetensors"
    save_file({"motion": torch.zeros(2, 265)}, str(newer), metadata={"format": "ditto-motion", "format_version": str(FORMAT_VERSION + 1)})
    with pytest.raises(MotionFormatError, match="newer"):
        load_motion(newer)
    older = tmp_path / "older.safetensors"
    save_file({"motion": torch.zeros(2, 265)}, str(older), metadata={"format": "ditto-motion", "format_version": "0"})
    with pytest.raises(MotionFormatError, match="old motion format"):
        load_motion(older)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file at all")
    with pytest.raises(MotionFormatError):
        load_motion(broken)
    with pytest.raises(FileNotFoundError):
        load_motion(tmp_path / "missing.safetensors")


def test_motion_validates_shapes():
    with pytest.raises(ValueError, match=r"\(N, 265\)"):
        Motion(motion=torch.zeros(4, 264))
    with pytest.raises(ValueError, match="vad"):
        Motion(motion=torch.zeros(4, 265), vad=torch.zeros(5))
    with pytest.raises(ValueError, match="fade_alpha"):
        Motion(motion=torch.zeros(4, 265), fade_alpha=torch.full((4,), 2.0))


# --------------------------------------------------------------------------- whole-clip controls (job and stream)


@pytest.mark.parametrize("bad,field", [
    ({"mouth": -0.5}, "mouth"), ({"head": float("inf")}, "head"), ({"pitch": float("nan")}, "pitch"),
    ({"roll": "3"}, "roll"), ({"blink_interval": -2}, "blink_interval"), ({"fade_in": -1}, "fade_in"),
    ({"fade_out": 2.5}, "fade_out"), ({"drive_eye": "yes"}, "drive_eye"),
])
def test_clip_controls_are_checked_naming_the_field(bad, field):
    """One ClipControls for the offline job and the stream: one bad value, one error naming the field."""
    with pytest.raises(ValueError, match=rf"ClipControls\.{field} must"):
        ClipControls(**bad)


def test_clip_controls_frame_controls():
    c = ClipControls(mouth=0.5, head=1.5, pitch=3.0, yaw=0.0, roll=-2.0, blink_interval=0, fade_in=4)
    f = c.frame_controls(2, 4)
    assert f.num_frames == 4 and f.delta_yaw is None
    assert _present(f.delta_pitch) == [3.0] * 4 and _present(f.delta_roll) == [-2.0] * 4
    assert f.head_amplitude.tolist() == [1.5] * 4 and f.mouth_amplitude.tolist() == [0.5] * 4
    assert _present(f.fade_alpha) == [0.5, 0.75, None, None]  # frames 2, 3 of a 4-frame fade-in, then none
    assert c.settings == ClipSettings(0, None, None) and c.fades
    assert ClipControls().frame_controls(0, 3).present() == {}
