"""Golden parity of conditions + windowed audio-to-motion: offline (audio2motion_*) and online (e2e_online)."""

import ast

import pytest
import torch

from ditto_core import official
from ditto_core.audio2motion import Audio2MotionConfig, OnlineMotionSampler, count_windows_offline, sample_motion_offline
from ditto_core.conditions import ConditionBuilder, build_conditions
from ditto_core.models.lmdm import MotionDecoder
from ditto_core.motion import MOTION_KEYS, dict_to_motion
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel

pytestmark = [pytest.mark.golden, pytest.mark.usefixtures("one_torch_thread")]




def _offline_cfg(meta) -> Audio2MotionConfig:
    """The official setup keywords of the golden file, through the library's one translation of them."""
    return official.audio2motion_config({
        "overlap_v2": int(meta["overlap_v2"]),
        "sampling_timesteps": int(meta["sampling_timesteps"]),
        "smo_k_d": int(meta["smo_k_d"]),
        "fix_kp_cond": int(meta.get("fix_kp_cond", 0)),
    }, online=False)


def _check_cond(g):
    cond = build_conditions(g["aud_feat"], int(g.meta["emo"]), g["eye_open"], g["eye_ball"], g["sc"], start_index=0)
    assert cond.shape == g["cond_all"].shape
    assert_close_rel(cond, g["cond_all"], 1e-6, "cond_all")
    return cond


def _check_offline_motion(g, cond):
    cfg = _offline_cfg(g.meta)
    n_win = count_windows_offline(cond.shape[0], cfg)
    assert n_win == g["window_x_inits"].shape[0]
    model = apply_weight_rule(MotionDecoder(), g.salt)
    calls = []
    motion = sample_motion_offline(
        model, cond, g["source_motion"], cfg, noises=g["noises"], x_inits=g["window_x_inits"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert motion.shape == g["motion"].shape
    assert_close_rel(motion, g["motion"], 1e-3, "motion")
    assert calls == [(i + 1, n_win) for i in range(n_win)]


def test_audio2motion_default(golden):
    g = golden("audio2motion_default")
    cond = _check_cond(g)
    _check_offline_motion(g, cond)


def test_audio2motion_happy_online_cond(golden):
    _check_cond(golden("audio2motion_happy_online"))


@pytest.mark.slow
def test_audio2motion_happy_online_motion(golden):
    """Offline windowing at overlap 70 (21 windows, ~45 s on one CPU thread)."""
    g = golden("audio2motion_happy_online")
    _check_offline_motion(g, _check_cond(g))


def test_e2e_online_motion(golden):
    g = golden("e2e_online")
    source = dict_to_motion({k: g[f"xs_{k}"] for k in MOTION_KEYS})[0]
    assert_close_rel(source, g["window_kp_cond"][0], 1e-6, "source motion = window 0 kp_cond")
    kw = ast.literal_eval(g.meta["setup_kwargs"])
    assert kw["online_mode"] and kw["v_min_max_for_clip"] is None
    conditions = ConditionBuilder(kw["emo"], g["eye_open"], g["eye_ball"], g["xs_kp"])
    cfg = official.audio2motion_config({k: kw[k] for k in ("overlap_v2", "sampling_timesteps", "smo_k_d",
                                                           "fix_kp_cond", "fix_kp_cond_dim")}, online=True)
    assert (cfg.overlap, cfg.steps, cfg.smoothing, cfg.kp_cond_reset, cfg.kp_cond_keep) == (
        kw["overlap_v2"], kw["sampling_timesteps"], kw["smo_k_d"], kw["fix_kp_cond"], tuple(kw["fix_kp_cond_dim"]))
    model = apply_weight_rule(MotionDecoder(), g.salt)
    sampler = OnlineMotionSampler(
        model, conditions, source, g["prefill_feat"], cfg, noises=g["noises"], x_inits=g["window_x_inits"], record=True
    )
    frames, window_chunks = [], []
    for i, chunk in enumerate(g["chunk_feat"]):
        before = len(sampler.records)
        frames.append(sampler.push(chunk))
        window_chunks += [i + 1] * (len(sampler.records) - before)
    before = len(sampler.records)
    frames.append(sampler.flush())
    window_chunks += [len(g["chunk_feat"])] * (len(sampler.records) - before)
    motion = torch.cat(frames)

    recs = sampler.records
    assert len(recs) == len(g["window_cond_idx"])
    assert [r.cond_index for r in recs] == g["window_cond_idx"].tolist()
    assert window_chunks == g["window_chunks"].tolist()
    assert [r.emit_start for r in recs] == g["window_emit_start"].tolist()
    assert [r.emit_count for r in recs] == g["window_emit_count"].tolist()
    for w, r in enumerate(recs):
        assert_close_rel(r.cond, g["window_cond"][w], 1e-5, f"window_cond[{w}]")
        # window 0's kp_cond is the source; later ones come from the previous results (1e-3 like the motion)
        assert_close_rel(r.kp_cond, g["window_kp_cond"][w], 1e-5 if w == 0 else 1e-3, f"window_kp_cond[{w}]")
        assert_close_rel(r.pred, g["window_pred"][w], 1e-3, f"window_pred[{w}]")
    assert sampler.d0 is not None
    assert_close_rel(sampler.d0, g["d0"], 1e-3, "d0")
    # official frame count: 10·floor(F/10) + 10 for F streamed features (hop 10), here 60 for 55
    n_feat = g["chunk_feat"].shape[0] * g["chunk_feat"].shape[1]
    if cfg.hop == 10:
        assert g["motion"].shape[0] == 10 * (n_feat // 10) + 10
    assert motion.shape == g["motion"].shape
    assert sampler.num_emitted == g["motion"].shape[0]
    assert_close_rel(motion, g["motion"], 1e-3, "motion")
