"""Compositing: 512x512 face renders -> output frames, the same for every caller (offline, stream, server).

``output="crop"``: the 512 crop itself (``clip(0, 1) * 255`` truncated to uint8, as ``astype``) with the 512 paste
mask. ``output="full"``: pasted back into the source frame on the renders' device, batched
(:class:`ditto_core.face.paste_torch.FramePaster`: the official ``PutBack`` maths, a truncating cast), one host
transfer per batch; the masks are the paste mask warped into the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..face.paste import paste_mask
from ..face.paste_torch import FramePaster
from .renderer import Renderer
from .._util import CancelFn

__all__ = ["OUTPUTS", "Compositor", "render_batch"]

#: what a rendered frame becomes: pasted back into the source frame, or the 512x512 face crop
OUTPUTS = ("full", "crop")


class Compositor:
    """Renders of one source -> output frames.

    Args:
        frames: ``(N, H, W, 3)`` uint8 source frames (N = 1 for an image).
        M_c2o: ``(N, 3, 3)`` crop-to-frame matrices.
        output: "full" or "crop" (:data:`OUTPUTS`).
        device: where the paste-back runs (the renders' device).
    """

    def __init__(self, frames: np.ndarray, M_c2o: np.ndarray, output: str = "full",
                 device: torch.device | str = "cpu") -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.mask512 = paste_mask(512, 512)
        self._paster = FramePaster(frames, M_c2o, self.mask512, device) if output == "full" else None

    def compose(self, renders: torch.Tensor, source_frames: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``renders`` ``(b, 512, 512, 3)`` float in [0, 255] (any device), ``source_frames[j]`` the source frame of
        render j -> (frames ``(b, H, W, 3)`` uint8, masks ``(b, H, W)`` float32) on the CPU (512 x 512 for a crop)."""
        if self._paster is None:
            frames = renders.to(torch.uint8).contiguous().cpu().numpy()  # float -> uint8 truncates, as astype
            masks = np.broadcast_to(self.mask512, (len(source_frames), *self.mask512.shape)).copy()
            return np.ascontiguousarray(frames), masks
        frames, masks = self._paster.paste(renders, source_frames)
        return np.ascontiguousarray(frames), masks


def render_batch(
    renderer: Renderer,
    f_s: torch.Tensor,
    x_s: torch.Tensor,
    x_d: torch.Tensor,
    source_frames: Sequence[int],
    cancel: CancelFn | None = None,
) -> torch.Tensor:
    """Warp + decode one batch (``cancel()`` between the two): ``f_s`` ``(N_src, 32, 16, 64, 64)`` (one volume per source frame),
    ``x_s`` ``(1 or b, 21, 3)``, ``x_d`` ``(b, 21, 3)``, ``source_frames[j]`` the source frame of output j ->
    renders ``(b, 512, 512, 3)`` float32 in [0, 255] on the renderer's device. One volume is broadcast when every
    output uses the same source frame (an image source)."""
    src = [int(s) for s in source_frames]
    if len(src) != x_d.shape[0]:
        raise ValueError(f"source_frames: expected one per output frame ({x_d.shape[0]}), got {len(src)}")
    fs = f_s[src[0] : src[0] + 1] if all(s == src[0] for s in src) else f_s[src]
    return renderer.render(fs, x_s, x_d, cancel) if cancel is not None else renderer.render(fs, x_s, x_d)
