"""Keypoints -> output frames, one path for both modes: :class:`FrameRenderer` (a caller-owned renderer plus the
compositor) is what :func:`render_frames` and the streaming session's render thread both call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .._util import CancelFn, ProgressFn, check_cancel, mirror_index
from ..motion.controls import ClipControls
from ..motion.track import Motion
from ..render.compositor import OUTPUTS, Compositor, render_batch, volumes_for_batch
from ..render.renderer import Renderer
from ..source import Source
from .keypoints import KeypointPlanner
from .models import DittoModels

__all__ = ["FrameRenderer", "render_frames"]


class FrameRenderer:
    """Renders frames of one source: warp + decode with ``renderer`` (owned by the caller), then the compositor
    (``output`` "full": pasted back on the renderer's device, batched; "crop": the 512 crop).

    Device memory of the appearance volumes: a video source's stay on the host and each batch's go to the device
    with it (:func:`~ditto_core.render.compositor.volumes_for_batch`); an image source's one volume (8 MiB) is put on
    the device once, here."""

    def __init__(self, source: Source, renderer: Renderer, output: str = "full") -> None:
        self.source = source
        self.renderer = renderer
        self.compositor = Compositor(source.frames, source.M_c2o, output, renderer.device)
        f_s = source.f_s
        self._f_s = volumes_for_batch(f_s, [0], renderer.device) if f_s.shape[0] == 1 else f_s

    def render(self, indices: Sequence[int], x_s: torch.Tensor, x_d: torch.Tensor,
               cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Generated frames ``indices`` (``b`` of them; a video source is read ping-pong) with keypoints ``x_s``
        ``(1 or b, 21, 3)`` and ``x_d`` ``(b, 21, 3)`` -> (frames ``(b, H, W, 3)`` uint8, masks ``(b, H, W)``
        float32) on the CPU. ``cancel()`` runs between warp and decode."""
        src = [mirror_index(i, self.source.num_frames) for i in indices]
        renders = render_batch(self.renderer, self._f_s, x_s, x_d, src, cancel)
        return self.compositor.compose(renders, src)


def render_frames(
    models: DittoModels,
    source: Source,
    motion: Motion,
    output: str = "full",
    batch_size: int = 4,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    frame_indices: Sequence[int] | None = None,
    renderer: Renderer | None = None,
    clip: ClipControls | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render every frame of ``motion`` on ``source``; yields batches ``(frames (b, H, W, 3) uint8, masks (b, H, W)
    float32)``.

    ``output="full"``: pasted back into the source frame (a video source is read ping-pong) with the feathered mask as
    the official ``PutBack`` (truncating cast); masks are that mask warped into the frame. ``output="crop"``: the
    512x512 face crop (``clip(0,1)*255`` truncated) and the 512 paste mask. ``frame_indices``: render only these
    frames (in this order); default all. ``renderer``: the caller's renderer (default: a new one of the models'
    backend, ``batch_size`` frames per call, dropped at the end). ``clip``: whole-clip controls on top of the
    motion's own. ``cancel()`` runs before every batch and between its warp and decode.

    Warp, decode and paste-back run on the models' device, batch by batch; each batch comes to the CPU in one
    transfer (the crops, or the pasted regions of the frames, which are then put into copies of the source frames).
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    sel = list(range(motion.num_frames)) if frame_indices is None else [int(i) for i in frame_indices]
    if any(not 0 <= i < motion.num_frames for i in sel):
        raise ValueError(f"frame_indices: expected frames in 0..{motion.num_frames - 1}, got {sel}")
    kp = KeypointPlanner.for_motion(models, source, motion, clip).plan(motion.motion, motion.frame_controls())
    frames = FrameRenderer(source, renderer if renderer is not None else models.new_renderer(batch_size), output)
    step = frames.renderer.config.batch_size
    for b in range(0, len(sel), step):
        check_cancel(cancel)
        rows = sel[b : b + step]
        x_s, x_d = kp.select(rows)
        out, masks = frames.render(rows, x_s, x_d, cancel)
        if progress is not None:
            progress(b + len(rows), len(sel))
        yield out, masks
