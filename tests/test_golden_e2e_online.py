"""The official online (streaming) path end to end (e2e_online) through ditto_core.stream.StreamingSession:
registration, chunked HuBERT features, prefill, windowed DiT sampling, d0, stitching, emission schedule and counts.
Nothing is rendered (the golden file has no renders; rendering is covered on the synthetic kit in test_stream.py)."""

import ast

import numpy as np
import pytest
import torch

from ditto_core.audio import frame_count
from ditto_core.runtime import (
    JobOptions,
    RenderOptions,
    SamplingOptions,
    StreamingOptions,
    StreamingSession,
    extract_source,
)

from conftest import assert_close_rel, load_golden
from test_golden_e2e import golden_models

pytestmark = [pytest.mark.golden, pytest.mark.usefixtures("one_torch_thread")]




def _pieces(audio: np.ndarray, seed: int = 0):
    """Irregular piece sizes (1..7000 samples), so that chunk boundaries never line up with pushes."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(audio):
        n = int(rng.integers(1, 7000))
        yield audio[i : i + n]
        i += n


@pytest.fixture(scope="module")
def setup():
    g = load_golden("e2e_online")
    image = load_golden("source_image")["image_u8"].numpy()
    models = golden_models(g.salt)
    source = extract_source(models, image)
    return g, models, source


def _run(g, models, source, official_count: bool):
    kw = ast.literal_eval(g.meta["setup_kwargs"])
    assert kw["online_mode"] and kw["v_min_max_for_clip"] is None and kw["delta_eye_arr"] is None
    opts = JobOptions(sampling=SamplingOptions(emotion=kw["emo"], steps=kw["sampling_timesteps"], overlap=kw["overlap_v2"]),
                      render=RenderOptions(output="none"))
    session = StreamingSession(models, source, opts, StreamingOptions(official_count=official_count),
                               noises=g["noises"], x_inits=g["window_x_inits"], record=True)
    cfg = session.motion_config
    assert (cfg.kp_cond_reset, cfg.kp_cond_keep, cfg.smoothing) == (kw["fix_kp_cond"], tuple(kw["fix_kp_cond_dim"]),
                                                                    kw["smo_k_d"])
    frames = []
    with session:
        for piece in _pieces(g["audio_16k"].numpy()):
            session.push(piece)
            frames += session.poll()
        frames += session.close()
    assert not session.alive
    return session, frames


def test_e2e_online_official_count(setup):
    g, models, source = setup
    session, frames = _run(g, models, source, official_count=True)
    rec = session.record

    assert_close_rel(rec.prefill_feat, g["prefill_feat"], 1e-5, "prefill_feat")
    chunk_feat = torch.as_tensor(np.stack(rec.chunk_feat))
    assert chunk_feat.shape == g["chunk_feat"].shape
    assert_close_rel(chunk_feat, g["chunk_feat"], 1e-5, "chunk_feat")

    wins = rec.windows
    assert [w.cond_index for w in wins] == g["window_cond_idx"].tolist()
    assert rec.window_chunks == g["window_chunks"].tolist()
    assert [w.emit_start for w in wins] == g["window_emit_start"].tolist()
    assert [w.emit_count for w in wins] == g["window_emit_count"].tolist()
    for w, r in enumerate(wins):
        assert_close_rel(r.kp_cond, g["window_kp_cond"][w], 1e-5 if w == 0 else 1e-3, f"window_kp_cond[{w}]")
        assert_close_rel(r.pred, g["window_pred"][w], 1e-3, f"window_pred[{w}]")

    assert_close_rel(rec.d0, g["d0"], 1e-3, "d0")
    n = g["motion"].shape[0]
    assert n == 60  # the official online count for 2.0 s
    assert [f.index for f in frames] == list(range(n))
    assert session.stats.frames == n
    assert rec.motion.shape == g["motion"].shape
    assert_close_rel(rec.motion, g["motion"], 1e-3, "motion")
    assert_close_rel(torch.stack([f.motion for f in frames]), g["motion"], 1e-3, "emitted motion")
    assert_close_rel(rec.x_s, g["x_s"], 1e-4, "x_s")
    assert_close_rel(rec.x_d, g["x_d"], 1e-3, "x_d")
    assert_close_rel(torch.stack([f.x_d for f in frames]), g["x_d"], 1e-3, "emitted x_d")


def test_e2e_online_stops_at_clip_length(setup):
    """Default: the same frames one for one, stopping at ceil(seconds * 25) = 50."""
    g, models, source = setup
    session, frames = _run(g, models, source, official_count=False)
    n = frame_count(g["audio_16k"].shape[0])
    assert n == 50
    assert len(frames) == session.stats.frames == n
    assert [f.index for f in frames] == list(range(n))
    assert_close_rel(session.record.motion, g["motion"][:n], 1e-3, "motion[:50]")
    assert_close_rel(session.record.x_d, g["x_d"][:n], 1e-3, "x_d[:50]")
