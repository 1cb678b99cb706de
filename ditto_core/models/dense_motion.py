"""Dense motion network (LivePortrait W's ``dense_motion_network``): sparse keypoint motion -> dense flow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import autocast_off, host_float64
from .blocks import Hourglass, VolumeOps, grid_sample_3d, kp2gaussian, make_coordinate_grid, volume_ops

__all__ = ["LARGE_KERNEL_MODES", "DenseMotionConfig", "DenseMotionNetwork", "large_kernel_convs_fft"]

#: how the two 7x7(x7) convolutions on the hourglass output run: "direct" (``conv3d``/``conv2d``), "fft"
#: (:func:`large_kernel_convs_fft`, float32) or "auto" (fft in eager runs on the CPU; direct on other devices and
#: under ``torch.jit`` tracing / ONNX export)
LARGE_KERNEL_MODES = ("auto", "direct", "fft")


@dataclass(frozen=True)
class DenseMotionConfig:
    """Official hyper-parameters (hard-coded in Ditto's ``WarpingNetwork``)."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    num_kp: int = 21
    feature_channel: int = 32
    reshape_depth: int = 16
    compress: int = 4
    kp_variance: float = 0.01


class DenseMotionNetwork(nn.Module):
    """Predicts the deformation ``(B, D, H, W, 3)`` and occlusion map ``(B, 1, H, W)``.

    Keys: ``hourglass.*``, ``mask.*``, ``compress.*``, ``norm.*``, ``occlusion.*``. The hourglass
    input has ``(num_kp + 1) * (compress + 1)`` = 110 channels.
    """

    def __init__(self, config: DenseMotionConfig = DenseMotionConfig()):
        super().__init__()
        c = config
        self.config = c
        self.hourglass = Hourglass(
            block_expansion=c.block_expansion,
            in_features=(c.num_kp + 1) * (c.compress + 1),
            num_blocks=c.num_blocks,
            max_features=c.max_features,
        )
        out_filters = self.hourglass.out_filters
        self.mask = nn.Conv3d(out_filters, c.num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(c.feature_channel, c.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(c.compress, affine=True)
        self.occlusion = nn.Conv2d(out_filters * c.reshape_depth, 1, kernel_size=7, padding=3)

    def sparse_motions(
        self, spatial_size: tuple[int, int, int], kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        """``(B, K+1, D, H, W, 3)`` sampling grids: the identity (background), then ``grid - kp_d[k] + kp_s[k]``."""
        bs, k = kp_source.shape[:2]
        grid = make_coordinate_grid(spatial_size, dtype=kp_source.dtype, device=kp_source.device)
        grid = grid.view(1, 1, *grid.shape)
        driving_to_source = grid - kp_driving.view(bs, k, 1, 1, 1, 3) + kp_source.view(bs, k, 1, 1, 1, 3)
        return torch.cat([grid.expand(bs, 1, *grid.shape[2:]), driving_to_source], dim=1)

    def forward(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, large_kernel: str = "auto",
        grid_sample: str | VolumeOps = "auto",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``feature`` ``(B, 32, D, H, W)``, keypoints ``(B, K, 3)`` -> (deformation ``(B, D, H, W, 3)``,
        occlusion map ``(B, 1, H, W)`` in (0, 1)). Sampling grids, the mask softmax and the deformation are float32
        under autocast; ``large_kernel`` picks the 7x7(x7) convolutions' path (:data:`LARGE_KERNEL_MODES`);
        ``grid_sample`` the 5-D ops' formulation, a mode of :data:`.blocks.GRID_SAMPLE_MODES` or a resolved
        :class:`.blocks.VolumeOps`."""
        if large_kernel not in LARGE_KERNEL_MODES:
            raise ValueError(f"large_kernel must be one of {LARGE_KERNEL_MODES}, got {large_kernel!r}")
        ops = grid_sample if isinstance(grid_sample, VolumeOps) else volume_ops(grid_sample, feature.device)
        bs, _, d, h, w = feature.shape
        k1 = self.config.num_kp + 1
        kp_source, kp_driving = kp_source.float(), kp_driving.float()
        feature = F.relu(self.norm(self.compress(feature)))  # (B, 4, D, H, W)
        c = feature.shape[1]

        sparse = self.sparse_motions((d, h, w), kp_source, kp_driving)  # (B, K+1, D, H, W, 3) float32
        # the K+1 grids stacked along depth sample the one compressed volume: no (B*(K+1))-fold copy of it
        deformed = grid_sample_3d(feature, sparse.view(bs, k1 * d, h, w, 3), ops.grid_sample)  # (B, C, (K+1)D, H, W)
        deformed = deformed.view(bs, c, k1, d, h, w).transpose(1, 2)

        heat = kp2gaussian(kp_driving, (d, h, w), self.config.kp_variance) - kp2gaussian(
            kp_source, (d, h, w), self.config.kp_variance
        )  # (B, K, D, H, W)
        heat = torch.cat([heat.new_zeros(bs, 1, d, h, w), heat], dim=1).unsqueeze(2).to(deformed.dtype)

        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(bs, -1, d, h, w), ops)

        mode = large_kernel
        if mode == "auto":  # FFT in eager CPU runs; direct on other devices and when traced for export
            tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            mode = "fft" if prediction.device.type == "cpu" and not tracing else "direct"
        if mode == "fft":
            mask_logits, occlusion_logits = large_kernel_convs_fft(
                prediction, self.mask.weight, self.mask.bias, self.occlusion.weight, self.occlusion.bias
            )
        else:
            mask_logits = self.mask(prediction)
            occlusion_logits = self.occlusion(prediction.reshape(bs, -1, h, w))
        with autocast_off(feature.device.type):
            mask = F.softmax(mask_logits.float(), dim=1).view(bs, k1, d * h * w)  # (B, K+1, DHW)
            # sum_k mask_k * (grid + delta_k) with delta_0 = 0: grid * sum(mask) + mask^T delta (no (K+1, 3) volume)
            delta = torch.cat([kp_source.new_zeros(bs, 1, 3), kp_source - kp_driving], dim=1)  # (B, K+1, 3)
            grid = sparse[:, 0].reshape(bs, d * h * w, 3)
            deformation = torch.baddbmm(grid * mask.sum(dim=1).unsqueeze(-1), mask.transpose(1, 2), delta)
        deformation = deformation.view(bs, d, h, w, 3)
        occlusion = torch.sigmoid(occlusion_logits)
        return deformation, occlusion


# ------------------------------------------------------------------------------------- FFT convolutions


def _dft_cos_sin(n_out: int, k: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of ``2 pi u j / n`` for u < n_out, j < k: ``(n_out, k)`` float32 on ``device`` (computed in
    float64 on the host: MPS and other devices have no float64)."""
    with host_float64():
        u = torch.arange(n_out, dtype=torch.float64)[:, None]
        j = torch.arange(k, dtype=torch.float64)[None]
        ang = (2 * math.pi / n) * u * j
        cos, sin = torch.cos(ang).float(), torch.sin(ang).float()
    return cos.to(device), sin.to(device)


def _kernel_spectrum_2d(w: torch.Tensor, n: int) -> torch.Tensor:
    """Spectrum of k x k correlation kernels ``w`` ``(M, k, k)`` on an n x n tile: ``(M, n, n//2+1)`` complex64.

    ``K[u, v] = sum_{j,l} w[j, l] exp(+2 pi i (u j + v l) / n)`` (a correlation is a convolution with the kernel
    mirrored, whose DFT is this), computed as two real matrix products.
    """
    m, k = w.shape[0], w.shape[-1]
    wr = n // 2 + 1
    cw, sw = _dft_cos_sin(wr, k, n, w.device)
    ch, sh = _dft_cos_sin(n, k, n, w.device)
    a = (w.reshape(m * k, k) @ torch.cat([cw, sw]).t()).view(m, k, 2 * wr)
    ar, ai = a[..., :wr], a[..., wr:]
    return torch.complex(ch @ ar - sh @ ai, ch @ ai + sh @ ar)


def large_kernel_convs_fft(
    x: torch.Tensor,
    mask_weight: torch.Tensor,
    mask_bias: torch.Tensor | None,
    occ_weight: torch.Tensor,
    occ_bias: torch.Tensor | None,
    tile: int = 32,
    fft_size: int = 38,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense-motion head's two large convolutions through one FFT of their shared input, in float32.

    ``x`` ``(B, C, D, H, W)``; ``mask_weight`` ``(Co, C, k, k, k)`` (conv3d, padding k//2) and ``occ_weight``
    ``(1, C*D, k, k)`` (conv2d on ``x`` viewed as ``(B, C*D, H, W)``, padding k//2) -> (mask logits ``(B, Co, D, H,
    W)``, occlusion logits ``(B, 1, H, W)``), both float32, equal to ``conv3d``/``conv2d`` up to float rounding
    (about 1e-6 relative).

    H and W are cut into ``tile`` x ``tile`` output tiles (read with a k-1 margin) and transformed on an
    ``fft_size`` grid (>= tile + k - 1); the depth taps are summed directly. Per frequency the 3-D conv is a
    real matrix product ``(2Co x 2C) @ (2C x tiles*D)`` (complex numbers as 2x2 real blocks); its kernel spectra are
    computed per call, one frequency column at a time (no cache, about 13 MB of work space). For the official
    shapes (142 -> 22 channels, 7^3 kernel, 16 x 64 x 64) this needs about 20x fewer multiply-adds than the direct
    conv3d (about 140 GFLOP per frame).
    """
    b, c, d, h, w = x.shape
    co, k = int(mask_weight.shape[0]), int(mask_weight.shape[-1])
    if tuple(mask_weight.shape) != (co, c, k, k, k) or tuple(occ_weight.shape) != (1, c * d, k, k):
        raise ValueError(
            f"large_kernel_convs_fft: weights {tuple(mask_weight.shape)}, {tuple(occ_weight.shape)} do not fit "
            f"the input {tuple(x.shape)}"
        )
    n = int(fft_size)
    if n < tile + k - 1:
        raise ValueError(f"fft_size {n} must be >= tile + k - 1 = {tile + k - 1}")
    p = k // 2
    wr = n // 2 + 1
    with autocast_off(x.device.type):
        x = x.float()
        nty, ntx = -(-h // tile), -(-w // tile)
        nt = nty * ntx
        r = b * nt
        span = tile + k - 1
        padded = F.pad(x, (p, ntx * tile - w + p, p, nty * tile - h + p))
        tiles = padded.unfold(3, span, tile).unfold(4, span, tile)  # (B, C, D, nty, ntx, span, span)
        spec = torch.fft.rfft2(tiles, s=(n, n)).view(b, c, d, nt, n, wr)
        del padded, tiles  # peak memory: about 3x the input while the spectra exist

        # occlusion: a 2-D correlation over the C*D channels, summed in the frequency domain
        ko = _kernel_spectrum_2d(occ_weight.float().reshape(c * d, k, k), n)  # (C*D, n, wr)
        occ_f = (spec.view(b, c * d, nt, n, wr) * ko[:, None]).sum(dim=1)  # (B, nt, n, wr)
        occ = torch.fft.irfft2(occ_f, s=(n, n))[..., :tile, :tile]
        occ = occ.reshape(b, nty, ntx, tile, tile).transpose(2, 3).reshape(b, 1, nty * tile, ntx * tile)
        occ = occ[..., :h, :w]
        if occ_bias is not None:
            occ = occ + occ_bias.float().view(1, 1, 1, 1)

        # mask conv3d: per frequency (v, u) and depth tap t, Y[(ri, o), (d, r)] += K_t[(ri, o), (c, ri')] X[(c, ri'), (d+t, r)]
        xs = spec.new_empty(wr, n, d + 2 * p, b, nt, c)
        xs[:, :, :p].zero_()
        xs[:, :, p + d :].zero_()
        xs[:, :, p : p + d] = spec.view(b, c, d, nt, n, wr).permute(5, 4, 2, 0, 3, 1)
        del spec
        xr = torch.view_as_real(xs).view(wr, n, (d + 2 * p) * r, 2 * c)  # rows (depth, tile), cols (channel, re/im)
        cw, sw = _dft_cos_sin(wr, k, n, x.device)
        ch, sh = _dft_cos_sin(n, k, n, x.device)
        # A = W summed over the last kernel axis against exp(+i v l): (taps j, v, t, o, c) real and imaginary parts
        a = mask_weight.float().permute(2, 0, 1, 3, 4).reshape(-1, k) @ torch.cat([cw, sw]).t()  # ([t,o,c,j], 2wr)
        a = a.view(k, co, c, k, 2, wr).permute(4, 3, 5, 0, 1, 2)  # (re/im, j, v, t, o, c)
        ar, ai = a[0], a[1]
        # rows (cos part, sin part) x j; columns (v, t, out re/im, o, c, in re/im): K = cos @ A_cos + sin @ A_sin
        blocks = torch.stack(
            [
                torch.stack([torch.stack([ar, -ai], -1), torch.stack([ai, ar], -1)], dim=3),
                torch.stack([torch.stack([-ai, -ar], -1), torch.stack([ar, -ai], -1)], dim=3),
            ]
        )  # (2, j, v, t, 2, o, c, 2)
        blocks = blocks.view(2 * k, wr, k * 2 * co * 2 * c)
        e = torch.cat([ch, sh], dim=1)  # (n, 2k)
        kb = x.new_empty(n, k * 2 * co * 2 * c)
        y = x.new_empty(wr, n, 2 * co, d * r)
        for v in range(wr):
            torch.mm(e, blocks[:, v], out=kb)
            kv = kb.view(n, k, 2 * co, 2 * c)
            xv, yv = xr[v], y[v]
            torch.bmm(kv[:, 0], xv[:, 0 : d * r].transpose(1, 2), out=yv)
            for t in range(1, k):
                yv.baddbmm_(kv[:, t], xv[:, t * r : (t + d) * r].transpose(1, 2))
        yc = torch.complex(y[:, :, :co], y[:, :, co:]).view(wr, n, co, d, b, nt)
        out = torch.fft.irfft2(yc.permute(4, 2, 3, 5, 1, 0), s=(n, n))[..., :tile, :tile]  # (B, Co, D, nt, tile, tile)
        out = out.reshape(b, co, d, nty, ntx, tile, tile).transpose(4, 5).reshape(b, co, d, nty * tile, ntx * tile)
        out = out[..., :h, :w]
        if mask_bias is not None:
            out = out + mask_bias.float().view(1, co, 1, 1, 1)
    return out, occ
