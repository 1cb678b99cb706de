"""Dense motion network (LivePortrait W's ``dense_motion_network``): sparse keypoint motion -> dense flow."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Hourglass, kp2gaussian, make_coordinate_grid

__all__ = ["DenseMotionConfig", "DenseMotionNetwork"]


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
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``feature`` ``(B, 32, D, H, W)``, keypoints ``(B, K, 3)`` -> (deformation ``(B, D, H, W, 3)``,
        occlusion map ``(B, 1, H, W)`` in (0, 1))."""
        bs, _, d, h, w = feature.shape
        k1 = self.config.num_kp + 1
        feature = F.relu(self.norm(self.compress(feature)))  # (B, 4, D, H, W)
        c = feature.shape[1]

        sparse = self.sparse_motions((d, h, w), kp_source, kp_driving)  # (B, K+1, D, H, W, 3)
        repeated = feature.unsqueeze(1).expand(bs, k1, c, d, h, w).reshape(bs * k1, c, d, h, w)
        deformed = F.grid_sample(repeated, sparse.reshape(bs * k1, d, h, w, 3), align_corners=False)
        deformed = deformed.view(bs, k1, c, d, h, w)

        heat = kp2gaussian(kp_driving, (d, h, w), self.config.kp_variance) - kp2gaussian(
            kp_source, (d, h, w), self.config.kp_variance
        )  # (B, K, D, H, W)
        heat = torch.cat([heat.new_zeros(bs, 1, d, h, w), heat], dim=1).unsqueeze(2).to(deformed.dtype)

        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(bs, -1, d, h, w))

        mask = F.softmax(self.mask(prediction), dim=1)  # (B, K+1, D, H, W)
        deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)  # (B, 3, D, H, W)
        deformation = deformation.permute(0, 2, 3, 4, 1)

        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(bs, -1, h, w)))
        return deformation, occlusion
