"""Appearance feature extractor F (LivePortrait): image -> 3-D appearance feature volume f_s."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d

__all__ = ["AppearanceConfig", "AppearanceFeatureExtractor"]


@dataclass(frozen=True)
class AppearanceConfig:
    """Official hyper-parameters (LivePortrait ``models.yaml``)."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


class AppearanceFeatureExtractor(nn.Module):
    """F: ``(B, 3, 256, 256)`` RGB in [0, 1] -> ``f_s`` ``(B, 32, 16, 64, 64)`` (C, D, H, W).

    Keys: ``first.*``, ``down_blocks.{0,1}.*``, ``second.*``, ``resblocks_3d.3dr{0..5}.*`` (107 entries).
    """

    def __init__(self, config: AppearanceConfig = AppearanceConfig()):
        super().__init__()
        c = config
        if c.reshape_channel * c.reshape_depth != c.max_features:
            raise ValueError("AppearanceConfig: reshape_channel * reshape_depth must equal max_features")
        self.config = c
        self.first = SameBlock2d(c.image_channel, c.block_expansion, kernel_size=3, padding=1)
        blocks = []
        out_features = c.block_expansion
        for i in range(c.num_down_blocks):
            in_features = min(c.max_features, c.block_expansion * (2**i))
            out_features = min(c.max_features, c.block_expansion * (2 ** (i + 1)))
            blocks.append(DownBlock2d(in_features, out_features, kernel_size=3, padding=1))
        self.down_blocks = nn.ModuleList(blocks)
        self.second = nn.Conv2d(out_features, c.max_features, kernel_size=1, stride=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(c.reshape_channel, kernel_size=3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` ``(B, 3, H, W)`` in [0, 1] (H, W divisible by 4) -> ``(B, 32, 16, H/4, W/4)``."""
        c = self.config
        if image.ndim != 4 or image.shape[1] != c.image_channel:
            raise ValueError(f"image must be (B, {c.image_channel}, H, W), got {tuple(image.shape)}")
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        bs, _, h, w = out.shape
        f_s = out.view(bs, c.reshape_channel, c.reshape_depth, h, w)
        return self.resblocks_3d(f_s)
