"""Render stage: stitched keypoints -> warp -> decode -> 512x512 face renders.

The source feature volume ``f_s`` is computed once per source frame (``Source``); frames are
rendered in batches of B: ``WarpingNetwork(f_s, x_s, x_d)`` then ``SPADEDecoder``, both under
autocast in the chosen precision (the official PyTorch path uses fp16 autocast on CUDA; fp32
here reproduces the golden data), everything staying on the device until the caller asks for
numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "fp16", "bf16")
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_context(device: torch.device | str, precision: str):
    """Autocast for ``precision`` (fp32 -> no autocast) on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_AUTOCAST[precision])


@dataclass
class RendererConfig:
    precision: str = "fp32"  #: fp32 | fp16 | bf16 (autocast for warp and decoder)
    batch_size: int = 4  #: frames per warp/decode call


class Renderer:
    """Warp + decode on one device.

    ``render(f_s, x_s, x_d)``: ``f_s`` ``(1 or B, 32, 16, 64, 64)``, ``x_s`` ``(1 or B, 21, 3)``,
    ``x_d`` ``(B, 21, 3)`` -> ``(B, 512, 512, 3)`` float32 in ``[0, 255]`` (``clip(0, 1) * 255``,
    not rounded, as the official decoder wrapper returns it).
    """

    def __init__(self, warp: nn.Module, decoder: nn.Module, device: torch.device | str = "cpu",
                 config: RendererConfig | None = None):
        self.warp = warp
        self.decoder = decoder
        self.device = torch.device(device)
        self.config = config or RendererConfig()

    @torch.inference_mode()
    def render(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        b = x_d.shape[0]
        f_s = f_s.to(self.device, torch.float32)
        x_s = x_s.to(self.device, torch.float32)
        x_d = x_d.to(self.device, torch.float32)
        if f_s.shape[0] != b:
            f_s = f_s.expand(b, *f_s.shape[1:])
        if x_s.shape[0] != b:
            x_s = x_s.expand(b, *x_s.shape[1:])
        with autocast_context(self.device, self.config.precision):
            feat = self.warp(f_s, x_s, x_d)
            img = self.decoder(feat)
        return img.float().permute(0, 2, 3, 1).clamp(0, 1) * 255

    def render_all(
        self,
        f_s: torch.Tensor,
        x_s: torch.Tensor,
        x_d: torch.Tensor,
        source_index: Callable[[int], int] | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_frame_index, renders (b, 512, 512, 3))`` batch by batch.

        ``f_s`` holds one volume per source frame and ``source_index(i)`` picks the one of output
        frame ``i`` (default 0); ``x_s`` is ``(1, 21, 3)`` or one entry per output frame ``(N, 21, 3)``.
        ``cancel()`` is called before every batch and may raise to stop.
        """
        n = x_d.shape[0]
        bs = max(1, int(self.config.batch_size))
        for start in range(0, n, bs):
            if cancel is not None:
                cancel()
            idx = list(range(start, min(n, start + bs)))
            src = [source_index(i) if source_index else 0 for i in idx]
            fs = f_s[src[0] : src[0] + 1] if all(s == src[0] for s in src) else f_s[src]
            xs = x_s[idx[0] : idx[-1] + 1] if x_s.shape[0] == n and n > 1 else x_s[:1]
            yield start, self.render(fs, xs, x_d[idx[0] : idx[-1] + 1])
