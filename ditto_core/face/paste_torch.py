"""Paste-back on the device (torch): the same maths as :func:`ditto_core.face.paste.paste_back`, for B renders.

``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT 0)`` samples the source at the inverse-mapped, un-quantised position
of every destination pixel (OpenCV 5) with bilinear weights and zeros outside. Here that position is computed once
per source frame (:class:`PasteGeometry`) for the frame region the warped mask can touch (the bounding box of the
crop square mapped into the frame), and the mask is warped once; each batch of renders then costs one
``grid_sample`` over that region plus the blend ``mask * render + (1 - mask) * frame``, clipped to [0, 255] and
truncated to uint8 as the official blend. Pixels outside the region keep the frame's values exactly (the warped mask
is 0 there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import host_float64
from .paste import paste_mask

__all__ = ["FramePaster", "PasteGeometry", "compose_frames", "paste_back_torch", "paste_geometry", "paste_region"]


@dataclass(frozen=True)
class PasteGeometry:
    """Where one source frame receives its renders.

    ``box`` ``(y0, y1, x0, x1)``: the frame region (may be empty, y0 == y1); ``grid`` ``(1, h, w, 2)`` float32: the
    ``grid_sample`` position (``align_corners=True``) of every region pixel in the render; ``mask`` ``(h, w, 1)``
    float32 in [0, 1]: the warped paste mask; ``base`` ``(h, w, 3)`` float32: ``(1 - mask) * frame`` over the region
    (the frame's share of the blend, fixed per source frame); ``frame_size`` ``(H, W)``; ``render_size``
    ``(S_h, S_w)``.
    """

    box: tuple[int, int, int, int]
    grid: torch.Tensor
    mask: torch.Tensor
    base: torch.Tensor
    frame_size: tuple[int, int]
    render_size: tuple[int, int]

    @property
    def empty(self) -> bool:
        y0, y1, x0, x1 = self.box
        return y1 <= y0 or x1 <= x0

    def full_mask(self) -> np.ndarray:
        """The warped mask over the whole frame, ``(H, W)`` float32 on the CPU (0 outside ``box``)."""
        out = np.zeros(self.frame_size, dtype=np.float32)
        if not self.empty:
            y0, y1, x0, x1 = self.box
            out[y0:y1, x0:x1] = self.mask[..., 0].float().cpu().numpy()
        return out


def _as_matrix(M_c2o: np.ndarray | torch.Tensor) -> np.ndarray:
    M = np.asarray(M_c2o.detach().cpu() if isinstance(M_c2o, torch.Tensor) else M_c2o, dtype=np.float64)
    if M.shape not in ((3, 3), (2, 3)):
        raise ValueError(f"M_c2o: expected a (3, 3) or (2, 3) matrix, got {M.shape}")
    return M[:2]


def paste_geometry(
    frame: np.ndarray | torch.Tensor,
    M_c2o: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    render_size: tuple[int, int] = (512, 512),
    device: torch.device | str = "cpu",
) -> PasteGeometry:
    """The :class:`PasteGeometry` of a frame ``(H, W, 3)`` uint8 and its crop-to-frame matrix ``M_c2o``.

    ``mask`` ``(S_h, S_w)`` (or ``(S_h, S_w, 1)``) in [0, 1], default :func:`paste_mask` of ``render_size``.
    """
    if tuple(frame.shape[2:]) != (3,) or frame.ndim != 3:
        raise ValueError(f"frame: expected (H, W, 3) uint8, got {tuple(frame.shape)}")
    if isinstance(frame, np.ndarray) and frame.dtype != np.uint8:
        raise ValueError(f"frame: expected uint8, got {frame.dtype}")
    if isinstance(frame, torch.Tensor) and frame.dtype != torch.uint8:
        raise ValueError(f"frame: expected uint8, got {frame.dtype}")
    sh, sw = (int(v) for v in render_size)
    if mask is None:
        mask = paste_mask(sw, sh)
    mask_t = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.array(mask, dtype=np.float32))
    if mask_t.ndim == 3:
        mask_t = mask_t[..., 0]
    if tuple(mask_t.shape) != (sh, sw):
        raise ValueError(f"mask: expected ({sh}, {sw}) to match the render, got {tuple(mask_t.shape)}")
    dev = torch.device(device)
    M = _as_matrix(M_c2o)
    h, w = int(frame.shape[0]), int(frame.shape[1])
    # The bilinear sample of a destination pixel is non-zero only if its source position lies in (-1, S)^2:
    # the region is the bounding box of that square mapped into the frame.
    corners = np.array([[-1.0, -1.0, 1.0], [sw, -1.0, 1.0], [-1.0, sh, 1.0], [sw, sh, 1.0]]) @ M.T
    x0 = max(0, int(np.floor(corners[:, 0].min())))
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + 1)
    y0 = max(0, int(np.floor(corners[:, 1].min())))
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return _empty_geometry(h, w, sh, sw, dev)
    A = np.linalg.inv(np.vstack([M, [0.0, 0.0, 1.0]]))[:2]  # frame -> crop, float64
    # the sample grid in float64 on the host (MPS and other devices have no float64), then float32 on the device
    with host_float64():
        ys = torch.arange(y0, y1, dtype=torch.float64).view(-1, 1)
        xs = torch.arange(x0, x1, dtype=torch.float64).view(1, -1)
        sx = A[0, 0] * xs + A[0, 1] * ys + A[0, 2]
        sy = A[1, 0] * xs + A[1, 1] * ys + A[1, 2]
        # grid_sample, align_corners=True: pixel p <-> 2 p / (size - 1) - 1
        grid = torch.stack([sx * (2.0 / (sw - 1)) - 1.0, sy * (2.0 / (sh - 1)) - 1.0], dim=-1).float().unsqueeze(0)
    grid = grid.to(dev)
    mask_w = F.grid_sample(
        mask_t.to(dev, torch.float32)[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )[0, 0].clamp_(0, 1)
    # shrink to the pixels the mask really touches
    rows = torch.nonzero(mask_w.amax(dim=1) > 0).flatten()
    cols = torch.nonzero(mask_w.amax(dim=0) > 0).flatten()
    if rows.numel() == 0:
        return _empty_geometry(h, w, sh, sw, dev)
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    frame_t = torch.as_tensor(frame) if isinstance(frame, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frame))
    box = (y0 + r0, y0 + r1, x0 + c0, x0 + c1)
    region = frame_t[box[0] : box[1], box[2] : box[3]].to(dev).float()
    mask_w = mask_w[r0:r1, c0:c1, None].contiguous()
    return PasteGeometry(
        box=box,
        grid=grid[:, r0:r1, c0:c1].contiguous(),
        mask=mask_w,
        base=(1 - mask_w) * region,
        frame_size=(h, w),
        render_size=(sh, sw),
    )


def _empty_geometry(h: int, w: int, sh: int, sw: int, dev: torch.device) -> PasteGeometry:
    return PasteGeometry(
        box=(0, 0, 0, 0),
        grid=torch.zeros(1, 0, 0, 2, device=dev),
        mask=torch.zeros(0, 0, 1, device=dev),
        base=torch.zeros(0, 0, 3, device=dev),
        frame_size=(h, w),
        render_size=(sh, sw),
    )


def paste_region(geometry: PasteGeometry, renders: torch.Tensor) -> torch.Tensor:
    """Blend renders into the geometry's frame region -> ``(B, h, w, 3)`` uint8 on the renders' device.

    ``renders`` ``(B, 3, S_h, S_w)`` float in [0, 255] (the decoder's ``clip(0, 1) * 255``, not rounded).
    """
    g = geometry
    if renders.ndim != 4 or renders.shape[1] != 3 or tuple(renders.shape[2:]) != g.render_size:
        raise ValueError(f"renders: expected (B, 3, {g.render_size[0]}, {g.render_size[1]}), got {tuple(renders.shape)}")
    b = renders.shape[0]
    h, w = g.mask.shape[:2]
    if g.empty:
        return torch.empty(b, h, w, 3, dtype=torch.uint8, device=renders.device)
    warped = F.grid_sample(
        renders.float(), g.grid.expand(b, -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=True
    ).permute(0, 2, 3, 1)  # (B, h, w, 3)
    out = torch.addcmul(g.base, g.mask, warped)  # mask * render + (1 - mask) * frame
    return out.clamp_(0, 255).to(torch.uint8)  # float -> uint8 truncates, as numpy's astype


def compose_frames(
    frames: np.ndarray,
    boxes: list[tuple[int, int, int, int]],
    regions: list[np.ndarray],
    indices: list[int] | None = None,
) -> np.ndarray:
    """Put ``regions[i]`` ``(h, w, 3)`` at ``boxes[i]`` ``(y0, y1, x0, x1)`` of frame ``indices[i]`` (default i) of
    ``frames`` ``(B, H, W, 3)``, in place; returns ``frames``."""
    idx = range(len(regions)) if indices is None else indices
    for i, (y0, y1, x0, x1), region in zip(idx, boxes, regions):
        if y1 > y0 and x1 > x0:
            frames[i, y0:y1, x0:x1] = region
    return frames


class FramePaster:
    """Paste batches of renders into their source frames on the device.

    ``frames`` ``(N, H, W, 3)`` uint8 (an image source has N = 1), ``M_c2o`` ``(N, 3, 3)``; ``mask`` the 512 paste
    mask (default :func:`paste_mask`). The :class:`PasteGeometry` of a source frame (and its full-frame mask) is
    computed on first use and kept for the last ``cache_size`` source frames used.
    """

    def __init__(
        self,
        frames: np.ndarray,
        M_c2o: np.ndarray,
        mask: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        render_size: tuple[int, int] = (512, 512),
        cache_size: int = 8,
    ):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames: expected (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if len(M_c2o) != len(frames):
            raise ValueError(f"M_c2o: expected one matrix per frame ({len(frames)}), got {len(M_c2o)}")
        self.frames, self.M_c2o, self.device = frames, M_c2o, torch.device(device)
        self.mask = paste_mask(render_size[1], render_size[0]) if mask is None else mask
        self.render_size = render_size
        self.cache_size = max(1, int(cache_size))
        self._cache: dict[int, tuple[PasteGeometry, np.ndarray]] = {}

    def geometry(self, s: int) -> tuple[PasteGeometry, np.ndarray]:
        """(geometry, full-frame mask ``(H, W)`` float32) of source frame ``s``."""
        if s in self._cache:
            self._cache[s] = self._cache.pop(s)  # most recently used last
        else:
            geom = paste_geometry(self.frames[s], self.M_c2o[s], self.mask, self.render_size, self.device)
            self._cache[s] = (geom, geom.full_mask())
            while len(self._cache) > self.cache_size:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[s]

    def paste(self, renders: torch.Tensor, src: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Renders ``(b, S, S, 3)`` float in [0, 255] (any device), ``src[j]`` the source frame of render j ->
        (frames ``(b, H, W, 3)`` uint8, masks ``(b, H, W)`` float32) on the CPU. The pasted regions of the whole
        batch come to the CPU in one transfer and are put into copies of the source frames."""
        if renders.ndim != 4 or renders.shape[-1] != 3 or len(src) != renders.shape[0]:
            raise ValueError(f"renders: expected (b, S, S, 3) with b = len(src) = {len(src)}, got {tuple(renders.shape)}")
        chw = renders.to(self.device).permute(0, 3, 1, 2)
        groups: dict[int, list[int]] = {}
        for j, s in enumerate(src):
            groups.setdefault(int(s), []).append(j)
        flat, shapes = [], []
        for s, js in groups.items():
            geom, _ = self.geometry(s)
            part = chw[js[0] : js[-1] + 1] if js == list(range(js[0], js[-1] + 1)) else chw[js]
            region = paste_region(geom, part)
            flat.append(region.reshape(-1))
            shapes.append(tuple(region.shape))
        host = (torch.cat(flat) if len(flat) > 1 else flat[0]).cpu().numpy()
        frames = self.frames[list(src)]  # (b, H, W, 3) copies of the source frames
        masks = np.empty(frames.shape[:3], dtype=np.float32)
        offset = 0
        for (s, js), shape in zip(groups.items(), shapes):
            geom, full_mask = self.geometry(s)
            size = int(np.prod(shape))
            compose_frames(frames, [geom.box] * len(js), list(host[offset : offset + size].reshape(shape)), js)
            offset += size
            masks[js] = full_mask
        return frames, masks


def paste_back_torch(
    frame: np.ndarray,
    render: np.ndarray | torch.Tensor,
    M_c2o: np.ndarray,
    mask: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """:func:`ditto_core.face.paste.paste_back` through the device path: ``(H, W, 3)`` uint8.

    ``render`` ``(S, S, 3)`` float in [0, 255].
    """
    r = torch.as_tensor(np.asarray(render, dtype=np.float32) if not isinstance(render, torch.Tensor) else render)
    if r.ndim != 3 or r.shape[2] != 3:
        raise ValueError(f"render: expected (S, S, 3) values in [0, 255], got {tuple(r.shape)}")
    geom = paste_geometry(frame, M_c2o, mask, render_size=(int(r.shape[0]), int(r.shape[1])), device=device)
    region = paste_region(geom, r.to(device).permute(2, 0, 1)[None])
    out = np.array(frame, copy=True)
    return compose_frames(out[None], [geom.box], [region[0].cpu().numpy()])[0]
