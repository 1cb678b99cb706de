"""Render paths for every device: the warp's 5-D ops as 4-D formulations (Apple MPS before PyTorch 2.9 has no 5-D
``grid_sample`` nor ``avg_pool3d``), chosen per device type by a probe; and the appearance volumes kept on the host,
the device getting one batch of them at a time.

There is no MPS (nor CUDA) here: "a device without the 5-D kernels" is simulated on the CPU by making the 5-D
``F.grid_sample`` / ``F.avg_pool3d`` / 3-D nearest ``F.interpolate`` raise as MPS does, and "a non-CPU device" by the
``meta`` device or by a renderer whose ``device`` attribute names one. Each test says what it simulates.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import load_golden, rel_l2
from ditto_core.models import blocks
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.blocks import (
    GRID_SAMPLE_MODES,
    VolumeOps,
    avg_pool3d_decomposed,
    grid_sample_3d_decomposed,
    probe_volume_ops,
    upsample_nearest_hw_decomposed,
    volume_ops,
)
from ditto_core.models.warping import WarpingNetwork
from ditto_core.render.compositor import render_batch, volumes_for_batch
from ditto_core.render.renderer import Renderer, RendererConfig
from ditto_core.source import appearance_volumes, host_volumes, input256_to_tensor
from ditto_core.testing.weight_rule import apply_weight_rule

GOLDEN_TOL = 1e-4  # tests/test_golden_renderer.py's


def _gs5(x, g):
    return F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------- the decomposed grid sample


def _random_case(gen, n, c, d, h, w, do, ho, wo):
    x = torch.randn(n, c, d, h, w, generator=gen)
    g = torch.rand(n, do, ho, wo, 3, generator=gen) * 2.8 - 1.4  # about a third of the points outside on some axis
    return x, g


def test_decomposed_grid_sample_equals_5d_on_random_inputs():
    """Against the 5-D op (float64 reference) on points inside, on the borders, far outside on every axis, at
    batch 1 and 2, for several volume shapes (an odd depth, depth 1, non-square slices)."""
    gen = torch.Generator().manual_seed(5)
    edges = torch.tensor([[1, 1, 1], [-1, -1, -1], [0.99, -1.2, 1.0], [1.3, 0.2, -1.05], [0.1, 1.15, 0.3],
                          [-0.2, 0.4, -1.3], [0.0, 0.0, 1.2], [5.0, -7.0, 0.0], [-1.0001, 0.5, 0.5], [0.3, 0.3, 1.0001]])
    for shape in [(2, 3, 5, 7, 6, 4, 6, 5), (1, 2, 1, 3, 4, 2, 3, 3), (2, 4, 16, 12, 10, 3, 8, 9), (1, 1, 7, 2, 2, 2, 5, 5)]:
        x, g = _random_case(gen, *shape)
        g.view(-1, 3)[: len(edges)] = edges
        out = grid_sample_3d_decomposed(x, g)
        ref = _gs5(x.double(), g.double())
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert rel_l2(out, ref) < 1e-5, shape
        assert (out.double() - ref).abs().max() < 1e-4, shape
        assert rel_l2(out, _gs5(x, g)) < 1e-5, shape
        # points where the 5-D op reads nothing (far outside on an axis) are exactly zero here too
        far = (g.abs() > 1 + 2.5 / torch.tensor(shape[2:5][::-1])).any(-1)
        assert far.any() and (out.permute(0, 2, 3, 4, 1)[far] == 0).all()  # exactly, as the 5-D op


def test_decomposed_grid_sample_full_warp_size_white_noise():
    """At the warp's size (32 x 16 x 64 x 64, a 264 x 330 tiled image) on white noise, the worst case for the
    coordinate rounding (every voxel differs from its neighbour by O(1)): about 1.6e-5 relative, the tiled image's
    normalised coordinates resolving about 1e-5 of a voxel. On the warp's real inputs it is ~2e-6 (next tests)."""
    gen = torch.Generator().manual_seed(1)
    x, g = _random_case(gen, 1, 32, 16, 64, 64, 16, 64, 64)
    assert rel_l2(grid_sample_3d_decomposed(x, g), _gs5(x.double(), g.double())) < 3e-5


def test_decomposed_grid_sample_rejects_other_shapes():
    with pytest.raises(ValueError, match="grid_sample_3d_decomposed"):
        grid_sample_3d_decomposed(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="grid_sample_3d_decomposed"):
        grid_sample_3d_decomposed(torch.zeros(2, 1, 2, 2, 2), torch.zeros(1, 2, 2, 2, 3))


# --------------------------------------------------------------------- the other 5-D ops' 4-D formulations


@pytest.mark.parametrize("kernel", [(1, 2, 2), (2, 2, 2), 2])
def test_avg_pool3d_fallback_equals_avg_pool3d(kernel):
    gen = torch.Generator().manual_seed(2)
    for shape in [(2, 5, 6, 8, 10), (1, 3, 5, 7, 9)]:  # odd sizes: floor mode drops the last row, column, slice
        x = torch.randn(*shape, generator=gen)
        ref = F.avg_pool3d(x, kernel)
        out = avg_pool3d_decomposed(x, kernel)
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-6, rtol=0), (kernel, shape)
    x = torch.randn(2, 5, 6, 8, 10, generator=gen)
    assert torch.equal(avg_pool3d_decomposed(x, (1, 2, 2)), F.avg_pool3d(x, (1, 2, 2)))  # the hourglass's: bitwise


def test_nearest_upsampling_fallback_equals_3d_nearest():
    x = torch.randn(2, 3, 4, 5, 6)
    assert torch.equal(upsample_nearest_hw_decomposed(x, 2), F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


# ------------------------------------------------------------------------------------------- the probe


@pytest.fixture
def fresh_probe():
    """An empty probe cache before and after the test (the cache is the probe's only state)."""
    probe_volume_ops.cache_clear()
    yield probe_volume_ops
    probe_volume_ops.cache_clear()


def test_probe_says_native_on_this_cpu_and_logs_once(fresh_probe, caplog):
    with caplog.at_level(logging.INFO, logger="ditto"):
        support = fresh_probe("cpu")
        assert fresh_probe("cpu") is support  # cached per device type
        assert volume_ops("auto", "cpu") == VolumeOps.all("native") == support.ops
    assert support.grid_sample is None and support.avg_pool3d is None and support.upsample_nearest3d is None
    lines = [r.getMessage() for r in caplog.records if "warp 3-D ops on cpu" in r.getMessage()]
    assert len(lines) == 1 and "grid_sample native" in lines[0] and "5-D kernels present" in lines[0]
    assert volume_ops("native", "cpu") == VolumeOps.all("native")
    assert volume_ops("decomposed", "cpu") == VolumeOps.all("decomposed")
    with pytest.raises(ValueError, match="grid_sample"):
        volume_ops("4d", "cpu")



def test_probe_under_torch_compile_runs_eagerly_and_importing_skips_dynamo(fresh_probe, monkeypatch):
    """Traced by torch.compile, "auto" still comes from the probe (run once, outside the graph: a simulated missing
    5-D grid_sample gives the decomposed path inside the compiled function too); importing the library does not
    import torch._dynamo (which adds ~3 s to every command start)."""
    import subprocess
    import sys

    _mps_like(monkeypatch)

    def which(x):
        ops = volume_ops("auto", x.device)
        return x * (2.0 if ops.grid_sample == "decomposed" else 3.0)

    out = torch.compile(which, backend="eager")(torch.ones(3))
    assert out.tolist() == [2.0, 2.0, 2.0] and fresh_probe.cache_info().currsize == 1
    code = "import sys, ditto_core.runtime, ditto_core.render; print('torch._dynamo' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr

def _mps_like(monkeypatch):
    """Simulate Apple MPS before PyTorch 2.9 on the CPU: the 5-D grid_sample and avg_pool3d raise as MPS does
    (3-D nearest upsampling left working)."""
    gs, pool = F.grid_sample, F.avg_pool3d

    def grid_sample(x, *a, **k):
        if x.ndim == 5:
            raise NotImplementedError("The operator 'aten::grid_sampler_3d' is not currently implemented for the "
                                      "MPS device.")
        return gs(x, *a, **k)

    def avg_pool3d(*a, **k):
        raise NotImplementedError("The operator 'aten::avg_pool3d.out' is not currently implemented for the MPS device.")

    monkeypatch.setattr(F, "grid_sample", grid_sample)
    monkeypatch.setattr(F, "avg_pool3d", avg_pool3d)
    return gs, pool


def test_probe_finds_missing_kernels_and_auto_takes_the_4d_path(fresh_probe, monkeypatch, caplog):
    """With the 5-D kernels failing as on MPS < 2.9 (simulated), "auto" decomposes exactly those ops, logs why once,
    and the warp runs and matches its native output (computed before the simulation)."""
    torch.manual_seed(0)
    warp = WarpingNetwork().eval()
    f_s, x_s, x_d = _small_inputs()
    with torch.no_grad():
        ref = warp(f_s, x_s, x_d)  # native (this probed the real CPU: cached until cleared)
    _mps_like(monkeypatch)
    fresh_probe.cache_clear()
    with caplog.at_level(logging.INFO, logger="ditto"):
        support = fresh_probe("cpu")
        with torch.no_grad():
            out = warp(f_s, x_s, x_d)  # "auto"
    assert "grid_sampler_3d" in support.grid_sample and "avg_pool3d" in support.avg_pool3d
    assert support.upsample_nearest3d is None
    assert support.ops == VolumeOps("decomposed", "decomposed", "native")
    (line,) = [r.getMessage() for r in caplog.records if "warp 3-D ops on cpu" in r.getMessage()]
    assert "grid_sample decomposed" in line and "NotImplementedError" in line
    assert rel_l2(out, ref) < 3e-5  # white-noise volumes: the decomposition's worst case
    with pytest.raises(NotImplementedError):  # what the user got before: "native" forced
        warp(f_s, x_s, x_d, grid_sample="native")


def test_probe_treats_a_silent_cpu_fallback_and_wrong_values_as_missing():
    import warnings

    def falls_back():
        warnings.warn("The operator 'aten::grid_sampler_3d' is not currently supported on the MPS backend and will "
                      "fall back to run on the CPU. This may have performance implications.", UserWarning, stacklevel=1)
        return torch.ones(2)

    assert "CPU fallback" in blocks._try_op(falls_back, torch.ones(2))
    assert "wrong values" in blocks._try_op(lambda: torch.zeros(2), torch.ones(2))
    assert blocks._try_op(lambda: torch.ones(2), torch.ones(2)) is None


# ----------------------------------------------------------------------------------- the renderer's option


def _small_inputs(n: int = 1, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    f_s = torch.randn(n, 32, 16, 32, 32, generator=g)
    x_s = torch.rand(n, 21, 3, generator=g) * 1.6 - 0.8
    x_d = (x_s + 0.05 * torch.randn(n, 21, 3, generator=g)).clamp(-1, 1)
    return f_s, x_s, x_d


def test_renderer_config_validates_grid_sample():
    assert RendererConfig().grid_sample == "auto" and GRID_SAMPLE_MODES == ("auto", "native", "decomposed")
    for bad in ("4d", "", None, 1):
        with pytest.raises(ValueError, match="grid_sample"):
            RendererConfig(grid_sample=bad).validate()
    with pytest.raises(ValueError, match="grid_sample"):
        Renderer(lambda *a: None, lambda f: f, "cpu", RendererConfig(grid_sample="five-d"))
    warp = WarpingNetwork()
    f_s, x_s, x_d = _small_inputs()
    with pytest.raises(ValueError, match="grid_sample"):
        warp(f_s, x_s, x_d, grid_sample="bogus")


def _count_ops(monkeypatch) -> dict[str, int]:
    """Count the 5-D and 4-D grid samples, avg_pool3d and its fallback, as the warp calls them."""
    calls = {"gs5": 0, "gs4": 0, "pool3d": 0, "pool_fallback": 0}
    gs, pool, fallback = F.grid_sample, F.avg_pool3d, blocks.avg_pool3d_decomposed

    def grid_sample(x, *a, **k):
        calls["gs5" if x.ndim == 5 else "gs4"] += 1
        return gs(x, *a, **k)

    def avg_pool3d(*a, **k):
        calls["pool3d"] += 1
        return pool(*a, **k)

    def pool_fallback(*a, **k):
        calls["pool_fallback"] += 1
        return fallback(*a, **k)

    monkeypatch.setattr(F, "grid_sample", grid_sample)
    monkeypatch.setattr(F, "avg_pool3d", avg_pool3d)
    monkeypatch.setattr(blocks, "avg_pool3d_decomposed", pool_fallback)
    return calls


@pytest.mark.parametrize("mode", ["auto", "native", "decomposed"])
def test_renderer_takes_the_configured_path(monkeypatch, mode):
    """The renderer hands its ``grid_sample`` to the warp: "decomposed" runs no 5-D grid sample nor avg_pool3d (two
    4-D samples, the hourglass's 5 pools through the fallback); "auto" on this CPU is native."""
    torch.manual_seed(0)
    warp = WarpingNetwork().eval()
    f_s, x_s, x_d = _small_inputs()
    probe_volume_ops("cpu")  # the probe's own tiny calls are not counted
    calls = _count_ops(monkeypatch)
    r = Renderer(warp, lambda feat: feat, "cpu", RendererConfig(grid_sample=mode))
    out = r.render_images(f_s, x_s, x_d)  # the "decoder" returns the warp output
    if mode == "decomposed":
        assert calls == {"gs5": 0, "gs4": 2, "pool3d": 0, "pool_fallback": 5}
    else:
        assert calls == {"gs5": 2, "gs4": 0, "pool3d": 5, "pool_fallback": 0}
    monkeypatch.undo()
    with torch.no_grad():
        ref = warp(f_s, x_s, x_d, grid_sample="native")
    # white-noise volumes, the decomposition's worst case (see test_decomposed_grid_sample_full_warp_size_white_noise);
    # on the golden input the two paths are within 1e-5 (below)
    assert rel_l2(out, ref) < (3e-5 if mode == "decomposed" else 1e-7)


# ----------------------------------------------------------------------------- on the golden warp input


@pytest.fixture(scope="module")
def golden_warp() -> dict:
    """The golden warp file's inputs through F then W (native), with the two 5-D grid samples' inputs captured."""
    g = load_golden("warp")
    appearance = apply_weight_rule(AppearanceFeatureExtractor(), g.salt)
    warp = apply_weight_rule(WarpingNetwork(), g.salt)
    probe_volume_ops("cpu")
    captured = []
    gs = F.grid_sample

    def capture(x, grid, *a, **k):
        if x.ndim == 5:
            captured.append((x.clone(), grid.clone()))
        return gs(x, grid, *a, **k)

    with torch.no_grad():
        f_s = appearance((g["image_u8"].float() / 255.0).unsqueeze(0))
        F.grid_sample = capture
        try:
            out = warp(f_s, g["kp_source"], g["kp_driving"])
        finally:
            F.grid_sample = gs
    return {"golden": g, "warp": warp, "f_s": f_s, "out": out, "samples": captured}


def test_decomposed_grid_sample_on_the_golden_warp_input(golden_warp):
    samples = golden_warp["samples"]
    assert [tuple(x.shape) for x, _ in samples] == [(1, 4, 16, 64, 64), (1, 32, 16, 64, 64)]
    assert [tuple(g.shape) for _, g in samples] == [(1, 22 * 16, 64, 64, 3), (1, 16, 64, 64, 3)]
    for x, grid in samples:
        ref = _gs5(x, grid)
        out = grid_sample_3d_decomposed(x, grid)
        assert rel_l2(out, ref) < 1e-5
        assert (out - ref).abs().max() < 1e-4


def test_renderer_forced_decomposed_matches_default_on_the_golden_warp_input(golden_warp):
    """The renderer on the decomposed path: the warp output within 1e-5 relative of the default (native) path's,
    and within the golden tolerance of the official output."""
    g = golden_warp["golden"]
    r = Renderer(golden_warp["warp"], lambda feat: feat, "cpu", RendererConfig(grid_sample="decomposed"))
    out = r.render_images(golden_warp["f_s"], g["kp_source"], g["kp_driving"])
    assert out.shape == (1, 256, 64, 64)
    assert rel_l2(out, golden_warp["out"]) < 1e-5
    assert rel_l2(out[:, :, ::2, ::2], g["out_sub"]) < GOLDEN_TOL


# ----------------------------------------------------------------------- appearance volumes on the host


class _Appearance(torch.nn.Module):
    """A stand-in extractor: records the device of each batch it gets and returns, per frame, a (2, 2, 4, 4) volume
    holding the frame's mean pixel (so values can be traced back to frames). Its outputs are CPU tensors."""

    def __init__(self):
        super().__init__()
        self.devices: list[torch.device] = []

    def forward(self, x):
        self.devices.append(x.device)
        b = x.shape[0]
        if x.device.type == "meta":
            return torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 2, 2, 4, 4) + len(self.devices)
        return x.mean(dim=(1, 2, 3)).view(b, 1, 1, 1, 1).expand(b, 2, 2, 4, 4).contiguous()


class _Track:
    def __init__(self, n: int):
        rng = np.random.default_rng(0)
        self.input256 = rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)


def test_appearance_volumes_land_on_the_host_batch_by_batch():
    """Registered for a non-CPU device (simulated: the ``meta`` device, a real device type without data, on which the
    stand-in extractor is fed; its outputs are CPU tensors since meta ones hold no values): the extractor gets
    batches on that device, and ``f_s`` is a CPU tensor holding every batch's output in order."""
    net = _Appearance()
    f_s = appearance_volumes(_Track(7), net, device="meta", batch_size=3)
    assert net.devices == [torch.device("meta")] * 3  # 3 + 3 + 1 frames
    assert f_s.device.type == "cpu" and f_s.dtype == torch.float32 and f_s.shape == (7, 2, 2, 4, 4)
    assert not f_s.is_pinned()  # only for CUDA
    expect = torch.tensor([1, 2, 3, 2, 3, 4, 3], dtype=torch.float32)  # batch k adds k + 1 to the frame's index
    assert torch.equal(f_s[:, 0, 0, 0, 0], expect)


def test_appearance_volumes_values_unchanged_on_the_cpu():
    """On the CPU the host tensor holds exactly the extractor's float32 outputs, batch by batch (bitwise)."""
    net = _Appearance()
    track = _Track(5)
    f_s = appearance_volumes(track, net, device="cpu", batch_size=2)
    batches = [input256_to_tensor(track.input256[s : s + 2]) for s in range(0, 5, 2)]
    assert torch.equal(f_s, torch.cat([net(x) for x in batches]))


def test_host_volumes_are_pinned_only_for_cuda():
    for dev in ("cpu", "meta"):
        t = host_volumes((2, 3), dev)
        assert t.device.type == "cpu" and not t.is_pinned()
    t = host_volumes((2, 3), "cuda")  # here without CUDA: ordinary host memory, no error
    assert t.device.type == "cpu" and t.is_pinned() == torch.cuda.is_available()


class _RecordingRenderer:
    """Records the volumes each render call gets (shape, device, values); returns a (b, 512, 512, 3) image. Its
    ``device`` may name a device it never computes on (the CPU stands in for it)."""

    def __init__(self, device="cpu", batch_size: int = 4):
        self.device = torch.device(device)
        self.config = RendererConfig("fp32", batch_size)
        self.calls: list[torch.Tensor] = []

    def render(self, f_s, x_s, x_d, cancel=None):
        self.calls.append(f_s)
        return torch.zeros(x_d.shape[0], 512, 512, 3)


def test_render_batch_hands_the_renderer_one_batch_of_volumes():
    n = 64
    f_s = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 2, 2, 4, 4).contiguous()
    r = _RecordingRenderer()
    x_s, x_d = torch.zeros(4, 21, 3), torch.zeros(4, 21, 3)
    for frames in ([8, 9, 10, 11], [63, 62, 61, 60], [0, 5, 5, 2]):
        render_batch(r, f_s, x_s, x_d, frames)
        got = r.calls[-1]
        assert got.shape == (4, 2, 2, 4, 4) and got.device == r.device
        assert got[:, 0, 0, 0, 0].tolist() == frames
    render_batch(r, f_s, x_s[:1], x_d, [7, 7, 7, 7])  # one source frame: one volume, broadcast by the renderer
    assert r.calls[-1].shape == (1, 2, 2, 4, 4) and r.calls[-1][0, 0, 0, 0, 0] == 7
    # the batch's volumes go to the renderer's device (simulated: "meta" has no data, the shapes and device tell)
    meta = volumes_for_batch(f_s, [3, 1, 2, 0], "meta")
    assert meta.device.type == "meta" and meta.shape == (4, 2, 2, 4, 4)
    assert volumes_for_batch(f_s, [5, 6], "cpu").data_ptr() == f_s[5].data_ptr()  # consecutive frames: a view
    with pytest.raises(ValueError, match="source_frames"):
        render_batch(r, f_s, x_s, x_d, [0, 1])


@pytest.mark.slow
def test_a_video_source_stays_on_the_host_and_the_renderer_gets_batches(synthetic_models):
    """A 6-frame video registered through the runtime (synthetic kit, CPU): ``Source.f_s`` is a host tensor of 6
    volumes; rendering 10 frames at batch 4 hands the renderer 4, 4 and 2 volumes (ping-pong over the source)."""
    from conftest import face_image
    from ditto_core.motion.track import Motion
    from ditto_core.runtime import extract_source, render_frames, source_motion_vector

    frames = np.stack([np.roll(face_image(), i, axis=1) for i in range(6)])
    source = extract_source(synthetic_models, frames, is_image=False)
    assert source.f_s.shape == (6, 32, 16, 64, 64) and source.f_s.device.type == "cpu"
    motion = Motion(source_motion_vector(source).repeat(10, 1))
    r = _RecordingRenderer(batch_size=4)
    list(render_frames(synthetic_models, source, motion, output="crop", renderer=r))
    assert [c.shape[0] for c in r.calls] == [4, 4, 2]
    assert all(c.shape[1:] == (32, 16, 64, 64) for c in r.calls)
    from ditto_core._util import mirror_index

    src = [mirror_index(i, 6) for i in range(10)]  # a video source is read ping-pong
    assert torch.equal(torch.cat(r.calls), source.f_s[src])
