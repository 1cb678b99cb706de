"""Motion extractor M (LivePortrait): canonical keypoints, head pose bins, translation, expression, scale."""

from __future__ import annotations

import torch
from torch import nn

from .convnextv2 import ConvNeXtV2, ConvNeXtV2Config

__all__ = ["MotionExtractor"]


class MotionExtractor(nn.Module):
    """M: ConvNeXt-V2 tiny under ``detector.`` (212 state_dict entries).

    ``forward(image)`` takes ``(B, 3, 256, 256)`` RGB in [0, 1] and returns the tuple
    ``(pitch, yaw, roll, t, exp, scale, kp)``: pitch/yaw/roll ``(B, 66)`` bin logits (not degrees),
    t ``(B, 3)``, exp ``(B, 63)``, scale ``(B, 1)`` (raw), kp ``(B, 63)``.
    """

    def __init__(self, config: ConvNeXtV2Config = ConvNeXtV2Config()):
        super().__init__()
        self.detector = ConvNeXtV2(config)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        in_chans = self.detector.downsample_layers[0][0].in_channels
        if image.ndim != 4 or image.shape[1] != in_chans:
            raise ValueError(f"image must be (B, {in_chans}, H, W), got {tuple(image.shape)}")
        return self.detector(image)
