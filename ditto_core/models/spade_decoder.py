"""SPADE decoder G (LivePortrait): warped feature -> 512x512 RGB image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..devices import autocast_available, autocast_off
import torch.nn.functional as F
from torch import nn

from .blocks import SPADEResnetBlock

__all__ = ["SPADEDecoderConfig", "SPADEDecoder"]


@dataclass(frozen=True)
class SPADEDecoderConfig:
    """Official hyper-parameters: input 256 channels (= 64 * 2**2), output 64 channels, x2 pixel shuffle."""

    upscale: int = 2
    max_features: int = 512
    block_expansion: int = 64
    out_channels: int = 64
    num_down_blocks: int = 2


class SPADEDecoder(nn.Module):
    """G: ``feature`` ``(B, 256, 64, 64)`` -> image ``(B, 3, 512, 512)`` in (0, 1) (after sigmoid).

    Keys (182): ``fc.*``, ``G_middle_{0..5}.*``, ``up_{0,1}.*`` (spectral-normed convs hold
    ``weight_orig``/``weight_u``/``weight_v``), ``conv_img.0.*``. The feature is also the SPADE
    segmentation map of every block.
    """

    def __init__(self, config: SPADEDecoderConfig = SPADEDecoderConfig()):
        super().__init__()
        c = config
        self.config = c
        cin = min(c.max_features, c.block_expansion * (2**c.num_down_blocks))
        self.input_channels = cin
        self.fc = nn.Conv2d(cin, 2 * cin, 3, padding=1)
        self.G_middle_0 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.G_middle_1 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.G_middle_2 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.G_middle_3 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.G_middle_4 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.G_middle_5 = SPADEResnetBlock(2 * cin, 2 * cin, cin)
        self.up_0 = SPADEResnetBlock(2 * cin, cin, cin)
        self.up_1 = SPADEResnetBlock(cin, c.out_channels, cin)
        self.conv_img: nn.Module
        if c.upscale is None or c.upscale <= 1:
            self.conv_img = nn.Conv2d(c.out_channels, 3, 3, padding=1)
        else:
            self.conv_img = nn.Sequential(
                nn.Conv2d(c.out_channels, 3 * c.upscale**2, kernel_size=3, padding=1),
                nn.PixelShuffle(upscale_factor=c.upscale),
            )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if feature.ndim != 4 or feature.shape[1] != self.input_channels:
            raise ValueError(f"feature must be (B, {self.input_channels}, H, W), got {tuple(feature.shape)}")
        seg = feature
        if autocast_available(feature.device.type) and torch.is_autocast_enabled(feature.device.type):
            # every SPADE conv would cast it: cast once (same values)
            seg = seg.to(torch.get_autocast_dtype(feature.device.type))
        # fc starts the residual stream of the middle blocks; rounded to half precision, its large channel means
        # turn into large errors after their instance norms (bf16: 1.1e-2 -> 6e-3 relative L2 of the image). It runs
        # in float32 under autocast (10 of ~870 GFLOP), which keeps that stream float32 up to up_0.
        with autocast_off(feature.device.type):
            x = self.fc(feature.float())
        middle = (self.G_middle_0, self.G_middle_1, self.G_middle_2, self.G_middle_3, self.G_middle_4, self.G_middle_5)
        for block in middle:
            x = block(x, seg)
        # nearest x2 upsampling then the block (the block takes the low-resolution x and upsamples inside)
        x = self.up_0(x, seg, upsample=2)
        x = self.up_1(x, seg, upsample=2)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.sigmoid(x)
