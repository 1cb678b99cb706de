"""Warping network W (LivePortrait, Ditto argument order): warps f_s from source to driving keypoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..devices import autocast_off
from torch import nn

from .blocks import GRID_SAMPLE_MODES, SameBlock2d, grid_sample_3d, volume_ops
from .dense_motion import DenseMotionConfig, DenseMotionNetwork

__all__ = ["GRID_SAMPLE_MODES", "WarpingConfig", "WarpingNetwork"]


@dataclass(frozen=True)
class WarpingConfig:
    """Official hyper-parameters (LivePortrait ``models.yaml``)."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


class WarpingNetwork(nn.Module):
    """W: ``(feature_3d, kp_source, kp_driving) -> out`` ``(B, 256, 64, 64)`` (97 state_dict entries).

    ``feature_3d`` is f_s ``(B, 32, 16, 64, 64)``; keypoints are ``(B, 21, 3)``. Note Ditto's order
    (source, then driving), unlike LivePortrait's. Only ``out`` is returned, as in Ditto.
    """

    def __init__(self, config: WarpingConfig = WarpingConfig()):
        super().__init__()
        c = config
        if c.dense_motion.num_kp != c.num_kp or c.dense_motion.feature_channel != c.reshape_channel:
            raise ValueError("WarpingConfig: dense_motion num_kp/feature_channel must match num_kp/reshape_channel")
        self.config = c
        self.dense_motion_network = DenseMotionNetwork(c.dense_motion)
        width = c.block_expansion * (2**c.num_down_blocks)
        self.third = SameBlock2d(c.max_features, width, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1, stride=1)

    def forward(
        self, feature_3d: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, large_kernel: str = "auto",
        grid_sample: str = "auto",
    ) -> torch.Tensor:
        """-> ``(B, 256, 64, 64)``. ``large_kernel``: how the dense-motion head's 7x7(x7) convolutions run,
        "auto" (FFT on the CPU, direct elsewhere), "direct" or "fft" (see :func:`.dense_motion.large_kernel_convs_fft`).
        ``grid_sample``: how the 5-D ops run (the two trilinear grid samples, the hourglass's ``avg_pool3d`` and
        3-D nearest upsampling): "native", "decomposed" (4-D formulations, for a device without the 5-D kernels:
        Apple MPS before PyTorch 2.9) or "auto" (each op as a one-time probe of the device type found it, see
        :func:`.blocks.probe_volume_ops`). The warp's grid sampling and its output convs run in float32 under
        autocast; the output is float32."""
        c = self.config
        depth = c.dense_motion.reshape_depth
        if feature_3d.ndim != 5 or feature_3d.shape[1] != c.reshape_channel or feature_3d.shape[2] != depth:
            raise ValueError(
                f"feature_3d must be (B, {c.reshape_channel}, {depth}, H, W), got {tuple(feature_3d.shape)}"
            )
        bs = feature_3d.shape[0]
        for name, kp in (("kp_source", kp_source), ("kp_driving", kp_driving)):
            if tuple(kp.shape) != (bs, c.num_kp, 3):
                raise ValueError(f"{name} must be ({bs}, {c.num_kp}, 3), got {tuple(kp.shape)}")
        ops = volume_ops(grid_sample, feature_3d.device)
        deformation, occlusion = self.dense_motion_network(
            feature_3d, kp_source, kp_driving, large_kernel=large_kernel, grid_sample=ops
        )
        out = grid_sample_3d(feature_3d, deformation, ops.grid_sample)  # (B, 32, 16, H, W)
        bs, ch, d, h, w = out.shape
        # The output convs (11 of the warp's ~350 GFLOP) stay float32 under autocast: in bf16 they made 90% of the
        # warp's error (4e-3 -> 3e-4 relative L2), which the decoder amplifies.
        with autocast_off(out.device.type):
            out = self.fourth(self.third(out.float().view(bs, ch * d, h, w)))
            return out * occlusion.float()
