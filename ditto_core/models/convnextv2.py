"""ConvNeXt-V2 backbone with the LivePortrait motion heads (the ``detector`` of the motion extractor)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNeXtV2Config", "LayerNorm2d", "GRN", "ConvNeXtV2Block", "ConvNeXtV2"]


@dataclass(frozen=True)
class ConvNeXtV2Config:
    """ConvNeXt-V2 tiny plus the heads: 21 keypoints, 66 pose bins."""

    in_chans: int = 3
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    num_kp: int = 21
    num_bins: int = 66


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``(B, C, H, W)`` (eps 1e-6); keys ``weight``, ``bias`` ``(C,)``."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.num_channels = int(num_channels)  # a Python int: ONNX export needs a constant normalised shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, (self.num_channels,), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global response normalisation on channels-last ``(B, H, W, C)``; ``gamma``, ``beta`` ``(1, 1, 1, C)``.

    ``Gx = ||x||_2`` over (H, W); ``Nx = Gx / (mean_C Gx + 1e-6)``; ``out = gamma * (x * Nx) + beta + x``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """dwconv 7x7, LayerNorm (channels last, eps 1e-6), Linear d->4d, GELU (exact), GRN, Linear 4d->d, + x."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """Backbone and heads: ``(B, 3, 256, 256)`` -> ``(pitch, yaw, roll, t, exp, scale, kp)``.

    Shapes: pitch/yaw/roll ``(B, 66)`` bin logits, t ``(B, 3)``, exp ``(B, 63)``, scale ``(B, 1)``,
    kp ``(B, 63)``.
    """

    def __init__(self, config: ConvNeXtV2Config = ConvNeXtV2Config()):
        super().__init__()
        c = config
        dims = c.dims
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c.in_chans, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            [nn.Sequential(*[ConvNeXtV2Block(dims[i]) for _ in range(c.depths[i])]) for i in range(len(dims))]
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.fc_kp = nn.Linear(dims[-1], 3 * c.num_kp)
        self.fc_scale = nn.Linear(dims[-1], 1)
        self.fc_pitch = nn.Linear(dims[-1], c.num_bins)
        self.fc_yaw = nn.Linear(dims[-1], c.num_bins)
        self.fc_roll = nn.Linear(dims[-1], c.num_bins)
        self.fc_t = nn.Linear(dims[-1], 3)
        self.fc_exp = nn.Linear(dims[-1], 3 * c.num_kp)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised features ``(B, 768)``."""
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.forward_features(x)
        return (
            self.fc_pitch(f),
            self.fc_yaw(f),
            self.fc_roll(f),
            self.fc_t(f),
            self.fc_exp(f),
            self.fc_scale(f),
            self.fc_kp(f),
        )
