"""Stitching MLP (LivePortrait ``retarget_shoulder``), keys ``mlp.{0,2,4,6}.{weight,bias}``."""

from __future__ import annotations

import torch
from torch import nn


class StitchingNetwork(nn.Module):
    """MLP 126 -> 128 -> 128 -> 64 -> 65 (ReLU between) on ``concat(x_s.flat, x_d.flat)``.

    ``forward(kp_source, kp_driving)`` takes ``(B, 21, 3)`` keypoints and returns the stitched
    driving keypoints ``(B, 21, 3)``: ``x_d + delta[:63]``, then ``x_d[..., :2] += delta[63:65]``.
    """

    def __init__(self, input_size: int = 126, hidden_sizes: tuple[int, ...] = (128, 128, 64), output_size: int = 65):
        super().__init__()
        layers: list[nn.Module] = []
        sizes = (input_size, *hidden_sizes)
        for i in range(len(hidden_sizes)):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden_sizes[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def delta(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """The raw MLP output ``(B, 65)`` for ``(B, 21, 3)`` source and driving keypoints."""
        bs = kp_source.shape[0]
        return self.mlp(torch.cat([kp_source.reshape(bs, -1), kp_driving.reshape(bs, -1)], dim=1))

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        bs, num_kp = kp_source.shape[:2]
        d = self.delta(kp_source, kp_driving)
        out = kp_driving + d[:, : 3 * num_kp].reshape(bs, num_kp, 3)
        shift = d[:, 3 * num_kp : 3 * num_kp + 2].reshape(bs, 1, 2)
        return torch.cat([out[..., :2] + shift, out[..., 2:]], dim=-1)
