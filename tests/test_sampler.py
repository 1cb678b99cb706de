"""Unit tests of the noise schedule, the DDIM sampler, seeding and the windowing helpers (no golden data)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ditto_core.audio2motion import (
    Audio2MotionConfig,
    MotionChain,
    OnlineMotionSampler,
    count_windows_offline,
    sample_motion_offline,
    smooth_motion,
)
from ditto_core.sampler import (
    CosineSchedule,
    ddim_sample,
    ddim_times,
    draw_eta_noises,
    draw_normal,
    make_generator,
    num_eta_noises,
)


def _cosine_f(t: float, n: int = 1000, s: float = 8e-3) -> float:
    return math.cos((t / n + s) / (1 + s) * math.pi / 2) ** 2


# --------------------------------------------------------------------------------------------- schedule
def test_schedule_matches_float64_formula():
    sch = CosineSchedule()
    assert sch.betas.dtype == sch.alphas_cumprod.dtype == torch.float32
    assert sch.betas.shape == (1000,)
    f0 = _cosine_f(0)
    betas = np.array([min(1 - _cosine_f(t + 1) / _cosine_f(t), 0.999) for t in range(1000)])
    np.testing.assert_allclose(sch.betas.double().numpy(), betas, rtol=1e-6, atol=1e-9)
    assert float(sch.betas[-1]) == pytest.approx(0.999)  # the clipped last beta
    # without the clip the product telescopes: alpha_bar_t = f(t+1) / f(0)
    abar = np.array([_cosine_f(t + 1) / f0 for t in range(999)])
    np.testing.assert_allclose(sch.alphas_cumprod[:999].double().numpy(), abar, rtol=2e-4, atol=1e-7)
    assert float(sch.alphas_cumprod[999]) == pytest.approx(float(sch.alphas_cumprod[998]) * 0.001, rel=1e-5)
    # float32 like the official: sqrt(1/abar - 1) loses ~1e-3 relative to cancellation at the smallest t
    np.testing.assert_allclose(
        sch.sqrt_recipm1_alphas_cumprod[:999].double().numpy(), np.sqrt(1 / abar - 1), rtol=2e-3
    )
    np.testing.assert_allclose(sch.sqrt_recip1m_alphas_cumprod[:999].double().numpy(), np.sqrt(1 / (1 - abar)),
                               rtol=2e-3)


def test_predict_noise_inverts_forward_process():
    sch = CosineSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 80, 265, generator=g)
    eps = torch.randn(2, 80, 265, generator=g)
    for t in (19, 500, 900):
        ab = float(sch.alphas_cumprod[t])
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        err = (sch.predict_noise(x_t, t, x0) - eps).norm() / eps.norm()
        assert err < 1e-3, (t, float(err))


def test_ddim_coefficients_float64():
    sch = CosineSchedule()
    for t, tn in ((999, 899), (500, 480), (99, 19)):
        a, an = sch.alphas_cumprod[t].double().item(), sch.alphas_cumprod[tn].double().item()
        sigma = math.sqrt((1 - a / an) * (1 - an) / (1 - a))
        c = math.sqrt(1 - an - sigma**2)
        sa, cc, ss = sch.ddim_coefficients(t, tn)
        assert float(sa) == pytest.approx(math.sqrt(an), rel=1e-5)
        # c = sqrt(1 - an - sigma^2) cancels badly in float32 (as in the official code): compare c^2 absolutely
        assert float(cc) ** 2 == pytest.approx(c**2, abs=3e-7)
        assert float(ss) == pytest.approx(sigma, rel=1e-5)
    with pytest.raises(ValueError):
        sch.ddim_coefficients(10, 20)


def test_ddim_coefficients_finite_for_all_step_counts():
    """float32 rounding makes 1 - an - sigma^2 < 0 at t = 999 for some step counts (5): clamped, never NaN."""
    sch = CosineSchedule()
    for steps in range(1, 101):
        for t, tn in ddim_times(steps):
            if tn >= 0:
                assert all(math.isfinite(float(v)) for v in sch.ddim_coefficients(t, tn)), (steps, t, tn)


# --------------------------------------------------------------------------------------------- times
def test_ddim_times_official():
    assert ddim_times(10) == [(999 - 100 * k, 899 - 100 * k) for k in range(9)] + [(99, -1)]
    t50 = ddim_times(50)
    assert t50[0] == (999, 979) and t50[-2] == (39, 19) and t50[-1] == (19, -1) and len(t50) == 50
    # general rule: int(linspace(-1, 999, S+1)) reversed
    for s in (1, 3, 7, 25, 1000):
        ts = [int(v) for v in np.linspace(-1, 999, s + 1).astype(np.float32)][::-1]
        assert ddim_times(s) == list(zip(ts[:-1], ts[1:]))
        assert num_eta_noises(s) == s - 1
    with pytest.raises(ValueError):
        ddim_times(0)
    with pytest.raises(ValueError):
        ddim_times(1001)


# ---------------------------------------------------------------------------------------------- DDIM
def test_ddim_sample_steps_and_noise_use():
    """Check every update against an independent float64 evaluation; the last pair returns x0."""
    sch = CosineSchedule()
    steps = 4
    g = torch.Generator().manual_seed(1)
    x_init = torch.randn(1, 6, 5, generator=g)
    noises = draw_eta_noises(steps, (6, 5), g)
    seen = []

    def denoise(x, t):
        seen.append((t, x.clone()))
        return 0.5 * x + 0.01 * t  # any x0 predictor

    out = ddim_sample(denoise, x_init, sch, steps, noises)
    pairs = ddim_times(steps)
    assert [t for t, _ in seen] == [t for t, _ in pairs]
    x = x_init.double()
    for k, (t, tn) in enumerate(pairs):
        assert torch.allclose(seen[k][1].double(), x, rtol=1e-4, atol=1e-5)
        x0 = 0.5 * x + 0.01 * t
        if tn < 0:
            assert torch.allclose(out.double(), x0, rtol=1e-4, atol=1e-5)
            break
        a, an = sch.alphas_cumprod[t].double(), sch.alphas_cumprod[tn].double()
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = ((1 - a / an) * (1 - an) / (1 - a)).sqrt()
        x = x0 * an.sqrt() + (1 - an - sigma**2).sqrt() * eps + sigma * noises[k].double()


def test_ddim_sample_needs_enough_noises():
    with pytest.raises(ValueError, match="noises must hold 9"):
        ddim_sample(lambda x, t: x, torch.zeros(1, 2, 3), CosineSchedule(), 10, torch.zeros(5, 2, 3))


# -------------------------------------------------------------------------------------------- seeding
def test_seeded_draws_reproducible_and_seed_sensitive():
    a = draw_eta_noises(10, (80, 265), 123)
    b = draw_eta_noises(10, (80, 265), torch.Generator().manual_seed(123))
    c = draw_eta_noises(10, (80, 265), 124)
    assert a.shape == (9, 80, 265)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # a generator advances: two draws from one generator differ; replaying the seed replays both
    g = make_generator(5)
    first, second = draw_normal((3, 4), g), draw_normal((3, 4), g)
    assert not torch.equal(first, second)
    g2 = make_generator(5)
    assert torch.equal(draw_normal((3, 4), g2), first) and torch.equal(draw_normal((3, 4), g2), second)
    with pytest.raises(ValueError):
        make_generator("7")


class _StubDiT(nn.Module):
    """A cheap deterministic stand-in with the DiT's ``guided`` signature."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))
        self.eval()

    def guided(self, x, cond_frame, cond, times, guidance_weight=2.0, batched=True):
        return self.w * x + 0.1 * cond[..., :265] + 0.5 * cond_frame[:, None, :] + times[:, None, None] * 1e-4


def _stub_cond(n, seed=0):
    return torch.randn(n, 1103, generator=torch.Generator().manual_seed(seed))


def test_offline_seeding_and_draw_order():
    model = _StubDiT()
    cond = _stub_cond(150)
    src = torch.randn(265, generator=torch.Generator().manual_seed(9))
    cfg = Audio2MotionConfig(overlap=10, steps=5)
    n_win = count_windows_offline(150, cfg)
    assert n_win == 3
    a = sample_motion_offline(model, cond, src, cfg, generator=42)
    b = sample_motion_offline(model, cond, src, cfg, generator=torch.Generator().manual_seed(42))
    c = sample_motion_offline(model, cond, src, cfg, generator=43)
    assert a.shape == (150, 265)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # documented order: the eta noises first, then one x_init per window
    g = torch.Generator().manual_seed(42)
    noises = draw_eta_noises(5, (80, 265), g)
    x_inits = torch.stack([draw_normal((80, 265), g) for _ in range(n_win)])
    d = sample_motion_offline(model, cond, src, cfg, noises=noises, x_inits=x_inits)
    assert torch.equal(a, d)


def test_offline_progress_cancel_and_errors():
    model = _StubDiT()
    cond = _stub_cond(100)
    src = torch.zeros(265)
    cfg = Audio2MotionConfig(overlap=10, steps=3)
    calls = []
    sample_motion_offline(model, cond, src, cfg, generator=0, progress=lambda d, t: calls.append((d, t)),
                          cancel=lambda: calls.append("c"))
    # before each window, and before each of its 3 denoising steps (a stop never waits for a whole window)
    assert calls == ["c", "c", "c", "c", (1, 2), "c", "c", "c", "c", (2, 2)]

    class Stop(Exception):
        pass

    n = []

    def cancel():
        n.append(1)
        if len(n) == 2:
            raise Stop

    with pytest.raises(Stop):
        sample_motion_offline(model, cond, src, cfg, generator=0, cancel=cancel)
    with pytest.raises(ValueError, match="cond must be"):
        sample_motion_offline(model, cond[:, :1000], src, cfg)
    with pytest.raises(ValueError, match="source_motion must be"):
        sample_motion_offline(model, cond, src[:200], cfg)
    with pytest.raises(ValueError, match="x_inits holds 1"):
        sample_motion_offline(model, cond, src, cfg, x_inits=torch.zeros(1, 80, 265))
    with pytest.raises(ValueError, match="noises must be"):
        sample_motion_offline(model, cond, src, cfg, noises=torch.zeros(1, 80, 265))
    with pytest.raises(ValueError, match="overlap"):
        Audio2MotionConfig(overlap=80)
    with pytest.raises(ValueError, match="eval mode"):
        sample_motion_offline(_StubDiT().train(), cond, src, cfg)


# ------------------------------------------------------------------------------------------ windowing
def _smooth_reference(seq: np.ndarray, s: int, e: int, k: int) -> np.ndarray:
    out = seq.copy()
    h = k // 2
    for i in range(s, e):
        lo, hi = max(0, i - h), min(len(seq), i + h + 1)
        out[i, :202] = seq[lo:hi, :202].mean(0)
    return out


def test_smooth_motion_matches_loop():
    seq = np.random.default_rng(0).standard_normal((30, 265)).astype(np.float32)
    for s, e, k in ((0, 30, 3), (10, 21, 3), (0, 30, 5), (5, 9, 4), (0, 30, 1)):
        got = smooth_motion(torch.from_numpy(seq), s, e, k).numpy()
        ref = _smooth_reference(seq, s, e, k) if k > 1 else seq
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[:, 202:], seq[:, 202:])  # exp is never smoothed


def test_chain_fuse_and_kp_cond_reset():
    """Two windows fused by hand (overlap 10, smoothing off) and the kp_cond reset (official fix_kp_cond)."""
    rng = np.random.default_rng(1)
    p1, p2 = (rng.standard_normal((80, 265)).astype(np.float32) for _ in range(2))
    src = rng.standard_normal(265).astype(np.float32)
    cfg = Audio2MotionConfig(overlap=10, smoothing=1, kp_cond_reset=2, kp_cond_keep=(0, 202))
    ch = MotionChain(torch.from_numpy(src), cfg, online=False)
    ch.add(torch.from_numpy(p1))
    np.testing.assert_array_equal(ch.kp_cond.numpy(), p1[69])  # window 1 of 2: no reset, frame before next start
    res = ch.add(torch.from_numpy(p2)).numpy()
    alpha = np.arange(10, dtype=np.float32)[:, None] / 10
    ref = np.concatenate([p1[:70], p1[70:] * (1 - alpha) + p2[:10] * alpha, p2[10:]])
    np.testing.assert_allclose(res, ref, rtol=1e-6, atol=1e-6)
    expect = src.copy()
    expect[:202] = ref[150 - 10 - 1, :202]  # reset after the 2nd window: source exp, predicted pose/t
    np.testing.assert_allclose(ch.kp_cond.numpy(), expect, atol=1e-6)


def test_online_emission_schedule_with_stub():
    """Frame count and emission lag of the streaming path (prefill 70, hop 10, 5-frame chunks)."""
    model = _StubDiT()
    cfg = Audio2MotionConfig(overlap=70, steps=2, kp_cond_reset=1, kp_cond_keep=(0, 202))

    def conditions(feat, idx):
        return torch.cat([feat, torch.zeros(feat.shape[0], 79)], 1)

    for n_chunks in (1, 2, 7, 11):
        s = OnlineMotionSampler(model, conditions, torch.zeros(265), torch.zeros(70, 1024), cfg, generator=0,
                                record=True)
        counts = [s.push(torch.ones(5, 1024) * i).shape[0] for i in range(n_chunks)]
        last = s.flush().shape[0]
        total = sum(counts) + last
        f = 5 * n_chunks
        assert total == (0 if f < 10 else 10 * (f // 10) + 10)
        assert counts[:3] == [0, 0, 0][: len(counts)]  # window 0 (after 2 chunks) gives d0 only
        assert s.d0 is not None
        assert [r.cond_index for r in s.records] == [-70 + 10 * w for w in range(len(s.records))]


def test_online_stream_equals_push_flush():
    model = _StubDiT()
    cfg = Audio2MotionConfig.online(steps=2)
    assert (cfg.overlap, cfg.hop, cfg.kp_cond_reset, cfg.kp_cond_keep) == (70, 10, 1, (0, 202))
    chunks = [torch.randn(5, 1024, generator=torch.Generator().manual_seed(i)) for i in range(9)]

    def conditions(feat, idx):
        return torch.cat([feat, torch.full((feat.shape[0], 79), float(idx))], 1)

    a = OnlineMotionSampler(model, conditions, torch.zeros(265), torch.zeros(70, 1024), cfg, generator=7)
    frames = torch.cat([a.push(c) for c in chunks] + [a.flush()])
    b = OnlineMotionSampler(model, conditions, torch.zeros(265), torch.zeros(70, 1024), cfg, generator=7)
    streamed = list(b.stream(chunks))
    assert len(streamed) == frames.shape[0] == 50
    assert torch.equal(torch.stack(streamed), frames)
    assert torch.equal(a.d0, b.d0)
    with pytest.raises(RuntimeError):
        a.push(chunks[0])
    with pytest.raises(ValueError, match="features must be"):
        OnlineMotionSampler(model, conditions, torch.zeros(265), torch.zeros(70, 1024), cfg).push(torch.zeros(5, 3))
