"""Building blocks shared by the LivePortrait renderer networks (F, W, G).

Attribute names equal the official checkpoint keys (``conv``, ``norm``, ``down_blocks``,
``weight_orig`` ...). Every block works for any batch size and under ``torch.autocast``.
Spatial conventions: 3-D feature volumes are ``(B, C, D, H, W)``; keypoints are
``(B, K, 3)`` in normalised ``(x, y, z)`` coordinates, x right, y down, z into the image.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass

import torch

from ..devices import autocast_off
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GRID_SAMPLE_MODES",
    "VolumeOps",
    "VolumeOpsSupport",
    "avg_pool3d_decomposed",
    "grid_sample_3d",
    "grid_sample_3d_decomposed",
    "probe_volume_ops",
    "upsample_nearest_hw_decomposed",
    "volume_ops",
    "make_coordinate_grid",
    "kp2gaussian",
    "SameBlock2d",
    "DownBlock2d",
    "DownBlock3d",
    "UpBlock3d",
    "ResBlock3d",
    "HourglassEncoder",
    "HourglassDecoder",
    "Hourglass",
    "SpectralNormConv2d",
    "conv3x3_nearest_up",
    "SPADE",
    "SPADEResnetBlock",
]


log = logging.getLogger("ditto")

# ------------------------------------------------------------------------------ 5-D ops and their 4-D forms
#: how the warp runs its 5-D ops (the trilinear ``grid_sample``, the hourglass's ``avg_pool3d`` and nearest 3-D
#: upsampling): "native" (the 5-D kernels), "decomposed" (their 4-D formulations below, for a PyTorch whose device
#: lacks a 5-D kernel: Apple MPS before PyTorch 2.9) or "auto" (each op as :func:`probe_volume_ops` found it on the
#: device; "native" when traced for export, whose graph has its own decomposition)
GRID_SAMPLE_MODES = ("auto", "native", "decomposed")


@dataclass(frozen=True)
class VolumeOps:
    """Which formulation each 5-D op of the warp runs: "native" or "decomposed" (see :data:`GRID_SAMPLE_MODES`)."""

    grid_sample: str = "native"
    avg_pool3d: str = "native"
    upsample_nearest3d: str = "native"

    @classmethod
    def all(cls, path: str) -> VolumeOps:
        return cls(path, path, path)

    def __str__(self) -> str:
        return ", ".join(f"{k} {getattr(self, k)}" for k in ("grid_sample", "avg_pool3d", "upsample_nearest3d"))


@dataclass(frozen=True)
class VolumeOpsSupport:
    """What :func:`probe_volume_ops` found on a device type: per op, None when its 5-D kernel runs there (and gives
    the right values), else why not."""

    device_type: str
    grid_sample: str | None = None
    avg_pool3d: str | None = None
    upsample_nearest3d: str | None = None

    @property
    def ops(self) -> VolumeOps:
        """The path "auto" takes: native where the kernel works, decomposed elsewhere."""
        return VolumeOps(*("native" if why is None else "decomposed"
                           for why in (self.grid_sample, self.avg_pool3d, self.upsample_nearest3d)))


def _try_op(fn, expected: torch.Tensor) -> str | None:
    """None when ``fn()`` runs on its device and returns ``expected``; else why not (the exception, a silent CPU
    fallback (``PYTORCH_ENABLE_MPS_FALLBACK=1``: the op would run on the CPU each call), or wrong values)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn().float().cpu()
    except Exception as e:  # noqa: BLE001 - any failure (NotImplementedError, RuntimeError, ...) means: not usable
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"{type(e).__name__}: {first[:200]}"
    for w in caught:
        msg = str(w.message)
        if "fall back" in msg.lower() or "fallback" in msg.lower():
            return f"only through the CPU fallback ({msg.strip().splitlines()[0][:200]})"
    if out.shape != expected.shape or not torch.allclose(out, expected, atol=1e-5):
        return f"wrong values ({out.flatten().tolist()[:8]} instead of {expected.flatten().tolist()[:8]})"
    return None


@functools.cache
def probe_volume_ops(device_type: str) -> VolumeOpsSupport:
    """Try the warp's 5-D ops on tiny tensors on ``device_type`` (its default device) -> which of them work.

    Cached per device type (the only state: this cache); the first call per type logs, once, the path "auto"
    takes there and why.
    """
    dev = torch.device(device_type)
    vol = torch.arange(8, dtype=torch.float32).view(1, 1, 2, 2, 2)
    plane = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 2, 2)
    # the centre of the 2x2x2 volume (the mean of its 8 values) and one corner voxel's centre
    grid = torch.tensor([[0.0, 0.0, 0.0], [-0.5, -0.5, -0.5]]).view(1, 1, 1, 2, 3)
    checks = {
        "grid_sample": (lambda: F.grid_sample(vol.to(dev), grid.to(dev), align_corners=False),
                        torch.tensor([3.5, 0.0]).view(1, 1, 1, 1, 2)),
        "avg_pool3d": (lambda: F.avg_pool3d(plane.to(dev), (1, 2, 2)), torch.full((1, 1, 1, 1, 1), 1.5)),
        "upsample_nearest3d": (lambda: F.interpolate(plane.to(dev), scale_factor=(1, 2, 2), mode="nearest"),
                               plane.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)),
    }
    support = VolumeOpsSupport(device_type, **{name: _try_op(fn, want) for name, (fn, want) in checks.items()})
    why = "; ".join(f"{name}: {getattr(support, name)}" for name in checks if getattr(support, name) is not None)
    log.info("ditto: warp 3-D ops on %s (torch %s): %s%s", device_type, torch.__version__, support.ops,
             f" (5-D kernel unusable here: {why})" if why else " (5-D kernels present)")
    return support


def volume_ops(mode: str, device: torch.device | str) -> VolumeOps:
    """The formulation of each 5-D op for ``mode`` (:data:`GRID_SAMPLE_MODES`) on ``device``."""
    if mode not in GRID_SAMPLE_MODES:
        raise ValueError(f"grid_sample must be one of {GRID_SAMPLE_MODES}, got {mode!r}")
    if mode != "auto":
        return VolumeOps.all(mode)
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return VolumeOps.all("native")  # an export keeps the 5-D ops (the ONNX graph is decomposed on its own)
    device_type = torch.device(device).type
    if torch.compiler.is_compiling():
        # traced by torch.compile: the probe runs eagerly, outside the graph (disable() is applied here, not at
        # import, because it imports torch._dynamo: ~3 s added to every process start)
        return torch.compiler.disable(probe_volume_ops)(device_type).ops
    return probe_volume_ops(device_type).ops


def grid_sample_3d_decomposed(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)`` of a volume
    ``input`` ``(N, C, D, H, W)`` at ``grid`` ``(N, Do, Ho, Wo, 3)`` (x, y, z in [-1, 1]) -> ``(N, C, Do, Ho, Wo)``,
    through ONE 4-D ``grid_sample`` (the same maths as the ONNX rewrite
    :func:`ditto_core.render.export.decompose_grid_sample_3d`).

    The volume is zero-padded by one voxel on every side and its D + 2 slices tiled on a near-square grid into one
    ``(N, C, rows (H + 2), cols (W + 2))`` image. A point's depth ``iz`` (voxel units, clamped to [-1, D]) splits
    into slice ``z0 = floor(iz)`` (clamped to [-1, D - 1]) and weight ``wz = iz - z0``; ``ix``/``iy`` are clamped to
    [-1.5, W + 0.5]/[-1.5, H + 0.5] (beyond [-1, W] both neighbours are zero, as in the 5-D op; the clamp keeps a
    point between two zero columns of its own tile or the next, so rounding never reaches data: such points are
    exactly 0). The 4-D sample reads both slices of every point (a grid of 2 Do rows); the result is
    ``s0 + wz (s1 - s0)``. Equal to the 5-D op up to the rounding of the tiled image's normalised coordinates: about
    1e-5 of a voxel (the 5-D op's 64-voxel axes resolve about 4x finer than the 264 x 330 tiled image), i.e. ~2e-6
    relative on the warp's real inputs and ~1.6e-5 on white noise, the worst case. Runs in the dtype the 4-D
    ``grid_sample`` gets (float32 under autocast, as the 5-D one).
    """
    if input.ndim != 5 or grid.ndim != 5 or grid.shape[-1] != 3 or grid.shape[0] != input.shape[0]:
        raise ValueError(f"grid_sample_3d_decomposed: expected input (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3), got "
                         f"{tuple(input.shape)} and {tuple(grid.shape)}")
    n, c, d, h, w = input.shape
    do, ho, wo = grid.shape[1:4]
    cols = math.ceil(math.sqrt(d + 2))
    rows = math.ceil((d + 2) / cols)
    extra = rows * cols - (d + 2)  # zero slices filling the last row of tiles
    hp, wp = h + 2, w + 2
    ht, wt = rows * hp, cols * wp
    padded = F.pad(input, (1, 1, 1, 1, 1, 1 + extra))  # (N, C, rows * cols, H + 2, W + 2)
    image = padded.view(n, c, rows, cols, hp, wp).permute(0, 1, 2, 4, 3, 5).reshape(n, c, ht, wt)

    gx, gy, gz = grid.unbind(-1)  # (N, Do, Ho, Wo) each
    # voxel coordinates (align_corners=False: -1 is the outer edge of voxel 0)
    ix = (gx * (w / 2) + (w / 2 - 0.5)).clamp(-1.5, w + 0.5)
    iy = (gy * (h / 2) + (h / 2 - 0.5)).clamp(-1.5, h + 0.5)
    iz = (gz * (d / 2) + (d / 2 - 0.5)).clamp(-1, d)
    z0 = iz.floor().clamp(-1, d - 1)
    wz = iz - z0
    # padded slice s = z + 1 of each point's two neighbours sits in tile (s // cols, s % cols)
    s = torch.stack([z0, z0 + 1], dim=1) + 1  # (N, 2, Do, Ho, Wo)
    trow = torch.floor(s / cols)
    tcol = s - trow * cols
    # normalised image coordinates of pixel p = tile * (size + 2) + v + 1: (2 p + 1) / total - 1, summed as
    # tile * a + v * b + c (no large intermediate values)
    yn = trow * (2.0 * hp / ht) + iy.unsqueeze(1) * (2.0 / ht) + (3.0 / ht - 1.0)
    xn = tcol * (2.0 * wp / wt) + ix.unsqueeze(1) * (2.0 / wt) + (3.0 / wt - 1.0)
    g2 = torch.stack([xn, yn], dim=-1).reshape(n, 2 * do * ho, wo, 2)
    pair = F.grid_sample(image, g2, mode="bilinear", padding_mode="zeros", align_corners=False)
    pair = pair.view(n, c, 2, do, ho, wo)
    wz = wz.unsqueeze(1).to(pair.dtype)  # (N, 1, Do, Ho, Wo)
    s0, s1 = pair.unbind(2)
    return s0 + (s1 - s0) * wz


def grid_sample_3d(input: torch.Tensor, grid: torch.Tensor, path: str = "native") -> torch.Tensor:
    """The warp's trilinear sample (bilinear, zeros padding, ``align_corners=False``) of ``input`` ``(N, C, D, H,
    W)`` at ``grid`` ``(N, Do, Ho, Wo, 3)``: the 5-D ``F.grid_sample`` ("native") or
    :func:`grid_sample_3d_decomposed` ("decomposed")."""
    if path == "decomposed":
        return grid_sample_3d_decomposed(input, grid)
    return F.grid_sample(input, grid, align_corners=False)


def avg_pool3d_decomposed(x: torch.Tensor, kernel_size: int | tuple[int, int, int]) -> torch.Tensor:
    """``F.avg_pool3d(x, kernel_size)`` (stride = kernel, no padding, floor mode) of ``(N, C, D, H, W)`` without the
    3-D kernel: ``avg_pool2d`` over H and W of the ``(N, C * D, H, W)`` view, then (kernel depth > 1) the mean of
    each run of depth slices."""
    kd, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
    n, c, d, h, w = x.shape
    y = F.avg_pool2d(x.reshape(n, c * d, h, w), (kh, kw))
    y = y.view(n, c, d, *y.shape[-2:])
    if kd > 1:
        do = d // kd
        y = y[:, :, : do * kd].reshape(n, c, do, kd, *y.shape[-2:]).mean(dim=3)
    return y


def upsample_nearest_hw_decomposed(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=(1, factor, factor), mode="nearest")`` of ``(N, C, D, H, W)`` as a 2-D
    nearest upsampling of the ``(N, C * D, H, W)`` view (the same copies of the same values)."""
    n, c, d, h, w = x.shape
    y = F.interpolate(x.reshape(n, c * d, h, w), scale_factor=factor, mode="nearest")
    return y.view(n, c, d, h * factor, w * factor)


def make_coordinate_grid(
    spatial_size: tuple[int, int, int], *, dtype: torch.dtype, device: torch.device | str | None = None
) -> torch.Tensor:
    """Identity sampling grid ``(D, H, W, 3)`` holding ``(x, y, z)``.

    Each axis is ``2 * (i / (n - 1)) - 1`` (corner-aligned values in [-1, 1]); the official
    code nevertheless samples with ``align_corners=False``, and so do we.
    """
    d, h, w = (int(s) for s in spatial_size)
    if min(d, h, w) < 2:
        raise ValueError(f"spatial_size must be at least 2 along every axis, got {spatial_size}")
    x = torch.arange(w, device=device).to(dtype)
    y = torch.arange(h, device=device).to(dtype)
    z = torch.arange(d, device=device).to(dtype)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    z = 2 * (z / (d - 1)) - 1
    xx = x.view(1, 1, w).expand(d, h, w)
    yy = y.view(1, h, 1).expand(d, h, w)
    zz = z.view(d, 1, 1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=3)


def kp2gaussian(kp: torch.Tensor, spatial_size: tuple[int, int, int], kp_variance: float) -> torch.Tensor:
    """Gaussian heatmaps ``(B, K, D, H, W)``: ``exp(-0.5 * |grid - kp|^2 / kp_variance)`` for ``kp`` ``(B, K, 3)``."""
    grid = make_coordinate_grid(spatial_size, dtype=kp.dtype, device=kp.device)
    bs, k = kp.shape[:2]
    diff = grid.view(1, 1, *grid.shape) - kp.view(bs, k, 1, 1, 1, 3)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


class SameBlock2d(nn.Module):
    """Conv2d, BatchNorm2d, ReLU (or LeakyReLU(0.01)); keeps the spatial size."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1, lrelu: bool = False
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.ac: nn.Module = nn.LeakyReLU(0.01) if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """Conv2d k3, BatchNorm2d, ReLU, AvgPool 2x2: ``(B, Cin, H, W) -> (B, Cout, H/2, W/2)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class DownBlock3d(nn.Module):
    """Conv3d k3, BatchNorm3d, ReLU, AvgPool (1,2,2): ``(B, Cin, D, H, W) -> (B, Cout, D, H/2, W/2)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor, pool: str = "native") -> torch.Tensor:
        """``pool``: "native" (``avg_pool3d``) or "decomposed" (:func:`avg_pool3d_decomposed`)."""
        x = F.relu(self.norm(self.conv(x)))
        return avg_pool3d_decomposed(x, self.pool.kernel_size) if pool == "decomposed" else self.pool(x)


class UpBlock3d(nn.Module):
    """Nearest upsampling (1,2,2), Conv3d k3, BatchNorm3d, ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor, upsample: str = "native") -> torch.Tensor:
        """``upsample``: "native" (3-D nearest) or "decomposed" (:func:`upsample_nearest_hw_decomposed`)."""
        if upsample == "decomposed":
            x = upsample_nearest_hw_decomposed(x, 2)
        else:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: BN, ReLU, Conv3d, BN, ReLU, Conv3d, plus the input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _hourglass_widths(block_expansion: int, max_features: int, i: int) -> int:
    return min(max_features, block_expansion * (2**i))


class HourglassEncoder(nn.Module):
    """``num_blocks`` DownBlock3d; returns the input and every block's output (skips for the decoder)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else _hourglass_widths(block_expansion, max_features, i)
            blocks.append(DownBlock3d(cin, _hourglass_widths(block_expansion, max_features, i + 1)))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, pool: str = "native") -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1], pool))
        return outs


class HourglassDecoder(nn.Module):
    """UpBlock3d chain concatenating the encoder skips, then Conv3d k3, BatchNorm3d, ReLU."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            mult = 1 if i == num_blocks - 1 else 2
            cin = mult * _hourglass_widths(block_expansion, max_features, i + 1)
            blocks.append(UpBlock3d(cin, _hourglass_widths(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[torch.Tensor], upsample: str = "native") -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out, upsample), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3-D U-Net: ``(B, in_features, D, H, W) -> (B, block_expansion + in_features, D, H, W)``.

    H and W must be divisible by ``2 ** num_blocks``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor, ops: VolumeOps | None = None) -> torch.Tensor:
        """``ops``: the formulation of the pooling and upsampling (default native)."""
        ops = ops or VolumeOps()
        return self.decoder(self.encoder(x, ops.avg_pool3d), ops.upsample_nearest3d)


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is ``weight_orig / sigma`` with ``sigma = u . (W_mat v)`` (inference form).

    Holds the same entries as ``torch.nn.utils.spectral_norm(nn.Conv2d(...))``: parameters
    ``bias`` (optional) and ``weight_orig`` ``(out, in, k, k)``, buffers ``weight_u`` ``(out,)``
    and ``weight_v`` ``(in*k*k,)``. No power iteration is run (the stored ``u``, ``v`` are used
    as they are, as torch does in eval mode), so training mode changes nothing. ``sigma`` is
    computed in float32 even under autocast.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        self.padding = padding
        self.dilation = dilation
        # Registration order as torch's hook leaves it: bias, weight_orig, then the buffers.
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
        self.register_buffer("weight_u", F.normalize(torch.randn(out_channels), dim=0, eps=1e-12))
        self.register_buffer("weight_v", F.normalize(torch.randn(in_channels * kernel_size**2), dim=0, eps=1e-12))

    def sigma(self) -> torch.Tensor:
        """The spectral-norm estimate ``u . (W_mat v)`` as a float32 scalar tensor."""
        w = self.weight_orig.float().reshape(self.weight_orig.shape[0], -1)
        # Elementwise products and sums: not re-cast to half precision by autocast.
        wv = (w * self.weight_v.float()).sum(dim=1)
        return (self.weight_u.float() * wv).sum()

    def weight(self) -> torch.Tensor:
        """The normalised conv weight ``(out, in, k, k)`` in ``weight_orig``'s dtype."""
        return (self.weight_orig.float() / self.sigma()).to(self.weight_orig.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding, dilation=self.dilation)


def _phase_groups(f: int) -> list[tuple[tuple[int, ...], list[int], int, int]]:
    """Row (or column) phases of a 3-tap kernel on an ``f``-times nearest-upsampled axis.

    Output row ``f * y + a`` reads the upsampled rows ``f * y + a + d`` (``d`` = -1, 0, 1), i.e. the low-resolution
    rows ``y + (a + d) // f``. Phases reading the same offsets share one effective kernel. Returns, per group:
    the low-res offset of each of the 3 taps, the group's phases ``a``, and the low-res rows it reads before and
    after ``y`` (its padding).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for a in range(f):
        groups.setdefault(tuple((a + d) // f for d in (-1, 0, 1)), []).append(a)
    out = []
    for offs, phases in groups.items():
        lo, hi = min(offs), max(offs)
        out.append((offs, phases, -lo, hi))
    return out


def conv3x3_nearest_up(seg: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, factor: int) -> torch.Tensor:
    """``conv2d(interpolate(seg, scale_factor=factor, mode="nearest"), weight, bias, padding=1)`` without the
    upsampling: ``(B, Cin, h, w) -> (B, Cout, factor * h, factor * w)``.

    On a nearest-upsampled input, each output phase ``(a, b)`` is a convolution of the low-resolution ``seg`` with
    at most 2x2 summed taps of ``weight``; phases with equal sums are computed once (for ``factor`` 4, 9 small
    convolutions replace 16 full ones: about 4x fewer multiply-adds). Equal to the upsampled convolution up to
    float rounding (the summed taps).
    """
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"conv3x3_nearest_up: expected a 3x3 kernel, got {tuple(weight.shape)}")
    b, _, h, w = seg.shape
    groups = _phase_groups(factor)
    padded = F.pad(seg, (1, 1, 1, 1))
    out: torch.Tensor | None = None
    for r_offs, r_phases, r_lo, r_hi in groups:
        for c_offs, c_phases, c_lo, c_hi in groups:
            # 0/1 matrices: low-res offset <- the kernel taps landing on it (built on the device: no host copy,
            # so that CUDA graph capture works)
            rows = weight.new_zeros(r_lo + r_hi + 1, 3)
            cols = weight.new_zeros(c_lo + c_hi + 1, 3)
            for d in range(3):
                rows[r_offs[d] + r_lo, d] = 1.0
                cols[c_offs[d] + c_lo, d] = 1.0
            with autocast_off(weight.device.type):  # sums of taps in the weight's precision
                k = torch.einsum("ra,oiab,cb->oirc", rows, weight, cols)  # (Cout, Cin, len(rows), len(cols))
            x = padded[:, :, 1 - r_lo : 1 + h + r_hi, 1 - c_lo : 1 + w + c_hi]
            y = F.conv2d(x, k, bias)
            if out is None:
                out = y.new_empty(b, y.shape[1], h, factor, w, factor)
            for a in r_phases:
                out[:, :, :, a, :, c_phases[0] : c_phases[-1] + 1] = y.unsqueeze(-1)
    assert out is not None
    return out.view(b, out.shape[1], factor * h, factor * w)


class SPADE(nn.Module):
    """Spatially adaptive norm: ``instance_norm(x) * (1 + gamma(seg)) + beta(seg)``.

    ``seg`` ``(B, label_nc, h, w)`` is nearest-resized to ``x``'s size first (an integer upscale of 2 or 4 is
    convolved without materialising the upsampled map, see :func:`conv3x3_nearest_up`). ``gamma`` and ``beta``
    run as one convolution.
    """

    def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.modulate(F.instance_norm(x, eps=1e-5), seg)

    def modulate(self, normalized: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """``normalized * (1 + gamma(seg)) + beta(seg)`` for an already instance-normalised ``(B, C, H, W)``."""
        size = tuple(normalized.shape[2:])
        conv = self.mlp_shared[0]
        factor = size[0] // seg.shape[2]
        if tuple(seg.shape[2:]) == size:
            actv = F.relu(conv(seg))
        elif (
            factor in (2, 4)
            and size == (factor * seg.shape[2], factor * seg.shape[3])
            and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())  # exports keep the plain form
        ):
            actv = F.relu(conv3x3_nearest_up(seg, conv.weight, conv.bias, factor))
        else:
            actv = F.relu(conv(F.interpolate(seg, size=size, mode="nearest")))
        g, b = self.mlp_gamma, self.mlp_beta
        # one conv for gamma and beta, the "1 +" folded into gamma's bias
        g_bias = g.bias if g.bias is not None else g.weight.new_zeros(g.out_channels)
        b_bias = b.bias if b.bias is not None else b.weight.new_zeros(b.out_channels)
        gb = F.conv2d(actv, torch.cat([g.weight, b.weight]), torch.cat([g_bias + 1, b_bias]), padding=1)
        gamma1, beta = gb.split(g.out_channels, dim=1)
        # under autocast: modulate in the conv's precision (the next conv would cast to it anyway)
        return torch.addcmul(beta, normalized.to(gb.dtype), gamma1)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block with spectral-normed convs; LeakyReLU(0.2) activations.

    ``out = shortcut(x) + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x))))))``; the shortcut is
    ``conv_s(norm_s(x))`` (1x1, no bias) when ``fin != fout``, else ``x``. ``forward(x, seg, upsample=f)`` is the
    block on ``interpolate(x, scale_factor=f, mode="nearest")``: the instance norm of an upsampled map equals the
    upsampled instance norm, so it is taken once, at the low resolution, and shared by ``norm_0`` and ``norm_s``.
    """

    def __init__(self, fin: int, fout: int, label_nc: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, upsample: int = 1) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        if upsample != 1:
            normalized = F.interpolate(normalized, scale_factor=upsample, mode="nearest")
        if self.learned_shortcut:
            x_s = self.conv_s(self.norm_s.modulate(normalized, seg))
        else:
            x_s = x if upsample == 1 else F.interpolate(x, scale_factor=upsample, mode="nearest")
        dx = self.conv_0(F.leaky_relu(self.norm_0.modulate(normalized, seg), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2, inplace=True))
        return x_s + dx
