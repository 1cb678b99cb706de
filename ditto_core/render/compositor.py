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

__all__ = ["OUTPUTS", "Compositor", "render_batch", "volumes_for_batch"]

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


def volumes_for_batch(f_s: torch.Tensor, source_frames: Sequence[int], device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """The appearance volumes of one render batch: ``f_s`` ``(N, ...)`` (host or device), ``source_frames[j]`` the
    source frame of output j -> ``(1 or b, ...)`` on ``device`` (default: where ``f_s`` is).

    One volume when every output uses the same source frame (an image source: the renderer broadcasts it), else one
    row per output. Host rows go to the device in one copy: a view of ``f_s`` when the frames are consecutive, else
    gathered first (into pinned memory when ``f_s`` is pinned); the copy is asynchronous from pinned memory (CUDA
    orders it before the render on the same stream, and the caching host allocator keeps a staging buffer until its
    copy is done).
    """
    src = [int(s) for s in source_frames]
    if not src:
        raise ValueError("source_frames: expected at least one frame")
    dev = f_s.device if device is None else torch.device(device)
    if all(s == src[0] for s in src):
        rows = f_s[src[0] : src[0] + 1]
    elif src == list(range(src[0], src[0] + len(src))):
        rows = f_s[src[0] : src[0] + len(src)]  # a view: still pinned when f_s is
    elif f_s.device.type == "cpu" and dev.type != "cpu" and f_s.is_pinned():
        rows = torch.empty((len(src), *f_s.shape[1:]), dtype=f_s.dtype, pin_memory=True)
        torch.index_select(f_s, 0, torch.tensor(src), out=rows)
    else:
        rows = f_s[src]
    return rows.to(dev, non_blocking=rows.device.type == "cpu" and rows.is_pinned())  # no copy when already there


def render_batch(
    renderer: Renderer,
    f_s: torch.Tensor,
    x_s: torch.Tensor,
    x_d: torch.Tensor,
    source_frames: Sequence[int],
    cancel: CancelFn | None = None,
) -> torch.Tensor:
    """Warp + decode one batch (``cancel()`` between the two): ``f_s`` ``(N_src, 32, 16, 64, 64)`` (one volume per
    source frame, on the host as :class:`ditto_core.source.Source` keeps them, or on a device), ``x_s`` ``(1 or b,
    21, 3)``, ``x_d`` ``(b, 21, 3)``, ``source_frames[j]`` the source frame of output j -> renders ``(b, 512, 512,
    3)`` float32 in [0, 255] on the renderer's device. Only this batch's volumes go to the renderer's device
    (:func:`volumes_for_batch`): one volume, broadcast, when every output uses the same source frame (an image
    source), else one per output."""
    src = [int(s) for s in source_frames]
    if len(src) != x_d.shape[0]:
        raise ValueError(f"source_frames: expected one per output frame ({x_d.shape[0]}), got {len(src)}")
    fs = volumes_for_batch(f_s, src, getattr(renderer, "device", None))
    return renderer.render(fs, x_s, x_d, cancel) if cancel is not None else renderer.render(fs, x_s, x_d)
