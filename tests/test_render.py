"""The fast renderer (ditto_core.render) and its exact rewrites: options, batched == per-frame, the FFT large-kernel
convolutions and the convolution of a nearest-upsampled map against their direct forms, bf16 against the official
fp32 output. Kept cheap: the batch tests warp 32x32 feature volumes and decode them with a stand-in decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import native_bf16_cpu, load_golden, rel_l2

from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.blocks import SPADE, conv3x3_nearest_up
from ditto_core.models.dense_motion import large_kernel_convs_fft
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.warping import WarpingNetwork
from ditto_core.render import BackendUnavailable, Renderer, RendererConfig, autocast_context, make_renderer, render_batch
from ditto_core.render import renderer as render_module
from ditto_core.testing.weight_rule import apply_weight_rule

SALT = "test-render"


class _TinyDecoder(torch.nn.Module):
    """A cheap stand-in for G with its I/O ((B, 256, h, w) -> (B, 3, 8h, 8w) in (0, 1)): the Renderer's batching is
    under test here; G's own batch invariance is a golden renderer test."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(256, 3 * 64, 1)
        self.shuffle = torch.nn.PixelShuffle(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.conv(x)))


@pytest.fixture(scope="module")
def nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    return apply_weight_rule(WarpingNetwork(), SALT).eval(), apply_weight_rule(_TinyDecoder(), SALT).eval()


def _small_inputs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n distinct 32x32 feature volumes and keypoints (source near driving, as in real motion)."""
    g = torch.Generator().manual_seed(seed)
    f_s = torch.randn(n, 32, 16, 32, 32, generator=g)
    x_s = 0.3 * torch.randn(n, 21, 3, generator=g)
    x_d = x_s + 0.05 * torch.randn(n, 21, 3, generator=g)
    return f_s, x_s, x_d


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "field,value",
    [("precision", "fp8"), ("batch_size", 0), ("batch_size", True), ("batch_size", 2.0), ("large_kernel", "winograd"),
     ("compile", "yes"), ("channels_last", 1), ("cuda_graphs", None)],
)
def test_config_validation_names_the_field(field, value):
    cfg = RendererConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        cfg.validate()
    with pytest.raises(ValueError, match=field):
        Renderer(torch.nn.Identity(), torch.nn.Identity(), "cpu", cfg)


def test_cuda_graphs_need_a_cuda_device():
    with pytest.raises(ValueError, match="cuda_graphs"):
        Renderer(torch.nn.Identity(), torch.nn.Identity(), "cpu", RendererConfig(cuda_graphs=True))


def test_autocast_context():
    with pytest.raises(ValueError, match="precision"):
        autocast_context("cpu", "half")
    with autocast_context("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_context("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_render_rejects_mismatched_batches(nets):
    f_s, x_s, x_d = _small_inputs(3)
    r = Renderer(*nets, "cpu")
    with pytest.raises(ValueError, match="f_s"):
        r.render(f_s[:2], x_s[:1], x_d)
    with pytest.raises(ValueError, match="x_s"):
        r.render(f_s[:1], x_s[:2], x_d)
    with pytest.raises(ValueError, match="large_kernel"):
        nets[0](f_s[:1], x_s[:1], x_d[:1], large_kernel="bogus")


# ------------------------------------------------------------------------------------ exact rewrites


@pytest.mark.parametrize("shape,tile,fft_size,bias", [((2, 5, 4, 40, 36), 32, 38, True), ((1, 3, 6, 23, 50), 16, 24, False)])
def test_fft_large_kernel_convs_equal_direct(shape, tile, fft_size, bias):
    b, c, d, h, w = shape
    g = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(*shape, generator=g))
    wm = torch.randn(3, c, 7, 7, 7, generator=g) / (c * 343) ** 0.5
    wo = torch.randn(1, c * d, 7, 7, generator=g) / (c * d * 49) ** 0.5
    bm = torch.randn(3, generator=g) if bias else None
    bo = torch.randn(1, generator=g) if bias else None
    mask, occ = large_kernel_convs_fft(x, wm, bm, wo, bo, tile=tile, fft_size=fft_size)
    ref_mask = F.conv3d(x.double(), wm.double(), None if bm is None else bm.double(), padding=3)
    ref_occ = F.conv2d(x.double().reshape(b, c * d, h, w), wo.double(), None if bo is None else bo.double(), padding=3)
    assert mask.dtype == occ.dtype == torch.float32
    assert rel_l2(mask, ref_mask) < 1e-5 and rel_l2(occ, ref_occ) < 1e-5
    with pytest.raises(ValueError, match="fft_size"):
        large_kernel_convs_fft(x, wm, bm, wo, bo, tile=tile, fft_size=tile + 5)
    with pytest.raises(ValueError, match="weights"):
        large_kernel_convs_fft(x, wm[:, :2], bm, wo, bo)


@pytest.mark.parametrize("factor", [2, 4])
def test_conv_on_nearest_upsampled_map_equals_direct(factor):
    g = torch.Generator().manual_seed(2)
    seg = torch.randn(2, 5, 7, 9, generator=g)
    w, b = torch.randn(4, 5, 3, 3, generator=g), torch.randn(4, generator=g)
    ref = F.conv2d(F.interpolate(seg.double(), scale_factor=factor, mode="nearest"), w.double(), b.double(), padding=1)
    out = conv3x3_nearest_up(seg, w, b, factor)
    assert out.shape == ref.shape == (2, 4, 7 * factor, 9 * factor)
    assert rel_l2(out, ref) < 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = conv3x3_nearest_up(seg, w, b, factor)
    assert half.dtype == torch.bfloat16 and rel_l2(half.float(), ref) < 2e-2


@pytest.mark.parametrize("seg_size", [16, 8, 4, 6])  # same size, x2, x4 (phase convs), x16/6 (interpolated)
@torch.no_grad()
def test_spade_equals_its_definition(seg_size):
    """``instance_norm(x) * (1 + gamma(seg)) + beta(seg)`` with seg nearest-resized, written out independently."""
    spade = apply_weight_rule(SPADE(6, 5, nhidden=8), SALT).double()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 16, 16, generator=g, dtype=torch.float64)
    seg = torch.randn(2, 5, seg_size, seg_size, generator=g, dtype=torch.float64)
    up = F.interpolate(seg, size=(16, 16), mode="nearest")
    actv = F.relu(F.conv2d(up, spade.mlp_shared[0].weight, spade.mlp_shared[0].bias, padding=1))
    gamma = F.conv2d(actv, spade.mlp_gamma.weight, spade.mlp_gamma.bias, padding=1)
    beta = F.conv2d(actv, spade.mlp_beta.weight, spade.mlp_beta.bias, padding=1)
    mean, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
    ref = (x - mean) / torch.sqrt(var + 1e-5) * (1 + gamma) + beta
    assert rel_l2(spade(x, seg), ref) < 1e-10


def test_warp_large_kernel_modes_agree(nets):
    f_s, x_s, x_d = _small_inputs(1, seed=4)
    with torch.inference_mode():
        fft = nets[0](f_s, x_s, x_d, large_kernel="fft")
        direct = nets[0](f_s, x_s, x_d, large_kernel="direct")
    assert rel_l2(fft, direct) < 1e-5


# ------------------------------------------------------------------------------------------ batching


def test_batched_equals_per_frame(nets):
    """Two frames, each with its own source volume and x_s, in one batch == one at a time (fp32)."""
    f_s, x_s, x_d = _small_inputs(2, seed=5)
    batched = Renderer(*nets, "cpu", RendererConfig("fp32", 2))
    single = Renderer(*nets, "cpu", RendererConfig("fp32", 1))
    frames_b = render_batch(batched, f_s, x_s, x_d, [0, 1])  # output j uses source volume j
    out_s = [render_batch(single, f_s, x_s[j : j + 1], x_d[j : j + 1], [j]) for j in range(2)]
    assert frames_b.shape == (2, 256, 256, 3) and frames_b.dtype == torch.float32
    assert float(frames_b.min()) >= 0 and float(frames_b.max()) <= 255
    for j, frame in enumerate(out_s):
        assert rel_l2(frames_b[j : j + 1], frame) < 1e-5, f"frame {j}"
    # one source frame for every output: its volume is broadcast
    same = render_batch(batched, f_s, x_s[:1], x_d, [1, 1])
    assert rel_l2(same[1], render_batch(single, f_s[1:], x_s[:1], x_d[1:], [0])[0]) < 1e-5
    with pytest.raises(ValueError, match="source_frames"):
        render_batch(batched, f_s, x_s, x_d, [0])
    assert rel_l2(frames_b[0], frames_b[1]) > 1e-2  # the two frames really differ
    with torch.inference_mode():
        images = batched.render_images(f_s, x_s, x_d)
    assert torch.equal(frames_b, images.permute(0, 2, 3, 1).clamp(0, 1) * 255)


def test_large_kernel_and_channels_last_options(nets):
    """The renderer options change the arithmetic's order only (fp32)."""
    f_s, x_s, x_d = _small_inputs(1, seed=6)
    warp = nets[0]
    dec = apply_weight_rule(_TinyDecoder(), SALT).eval()
    base = Renderer(warp, dec, "cpu").render_images(f_s, x_s, x_d)
    direct = Renderer(warp, dec, "cpu", RendererConfig(large_kernel="direct")).render_images(f_s, x_s, x_d)
    before = {k: (v.clone(), v.is_contiguous()) for k, v in dec.state_dict().items()}
    cl = Renderer(warp, dec, "cpu", RendererConfig(channels_last=True)).render_images(f_s, x_s, x_d)
    assert rel_l2(direct, base) < 1e-5 and rel_l2(cl, base) < 1e-5
    # the shared decoder is never changed: the channels-last one is a converted copy
    for k, v in dec.state_dict().items():
        assert torch.equal(v, before[k][0]) and v.is_contiguous() == before[k][1], k


def test_backend_registry_and_fallback(nets, caplog, monkeypatch):
    """make_renderer builds a new renderer per call over the shared networks; a backend that cannot run here falls
    back to PyTorch with one warning naming the reason; unknown names are refused."""
    warp, dec = nets
    a = make_renderer("pytorch", warp, dec, "cpu", RendererConfig("fp32", 3))
    b = make_renderer("pytorch", warp, dec, "cpu", RendererConfig("fp32", 3))
    assert type(a) is Renderer and a is not b and a.warp is warp and a.config.batch_size == 3

    def unavailable(*args):
        raise BackendUnavailable("no such accelerator here")

    monkeypatch.setitem(render_module._FACTORIES, "pytorch-test", unavailable)
    with caplog.at_level("WARNING", logger="ditto"):
        r = make_renderer("pytorch-test", warp, dec, "cpu")
    assert type(r) is Renderer
    assert [m for m in caplog.messages if "unavailable" in m] == [
        "pytorch-test renderer unavailable: no such accelerator here; using the PyTorch renderer"]
    with pytest.raises(ValueError, match="backend"):
        make_renderer("onnx", warp, dec, "cpu")


# ----------------------------------------------------------------------------------------- precision


@pytest.mark.golden
@pytest.mark.skipif(not native_bf16_cpu(), reason="this CPU has no bf16 instructions: PyTorch emulates bf16, and the one "
                    "512x512 frame takes tens of minutes (the check runs on CPUs with avx512_bf16, AMX or Arm bf16)")
def test_bf16_render_close_to_official_fp32():
    """One 512x512 frame in bf16 (CPU autocast) against the official fp32 decoder output of the golden warp input."""
    g, gd = load_golden("warp"), load_golden("decoder")
    appearance = apply_weight_rule(AppearanceFeatureExtractor(), g.salt)
    warp = apply_weight_rule(WarpingNetwork(), g.salt)
    decoder = apply_weight_rule(SPADEDecoder(), gd.salt)
    with torch.inference_mode():
        f_s = appearance((g["image_u8"].float() / 255.0).unsqueeze(0))
    r = Renderer(warp, decoder, "cpu", RendererConfig("bf16", 1))
    image = r.render_images(f_s, g["kp_source"], g["kp_driving"])
    assert image.dtype == torch.float32 and image.shape == (1, 3, 512, 512)
    err = rel_l2(image[:, :, ::2, ::2], gd["image_sub"])
    assert err < 1e-2, f"bf16 vs official fp32: relative L2 {err:.2e}"
