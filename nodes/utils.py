"""Small helpers shared by the nodes: tensor conversions, ComfyUI folders, the motion-curve ui payload."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ditto_core.errors import InputError

from .types import UI_MOTION_KEY


def folder_paths_module() -> Any:
    """ComfyUI's ``folder_paths`` module, or None outside ComfyUI."""
    try:
        import folder_paths

        return folder_paths
    except ImportError:
        return None


def image_to_u8(image: torch.Tensor, what: str = "images") -> np.ndarray:
    """ComfyUI IMAGE float ``[B, H, W, 3]`` in 0..1 -> uint8 ``(B, H, W, 3)`` RGB (rounded, not truncated)."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{what}: expected an IMAGE tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (3, 4) or image.shape[0] < 1:
        raise ValueError(f"{what}: expected an IMAGE [B, H, W, 3], got shape {tuple(image.shape)}")
    x = image[..., :3].detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{what}: the IMAGE holds NaN or infinite pixel values (expected 0..1)")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def u8_to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> ComfyUI IMAGE float32 ``[B, H, W, 3]`` in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).div_(255.0)


def mask_to_region(mask: torch.Tensor | None, height: int, width: int) -> np.ndarray | None:
    """ComfyUI MASK ``[B, H, W]`` or ``[H, W]`` -> float32 ``(height, width)`` in 0..1 (first mask, resized)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"face_region: expected a MASK tensor, got {type(mask).__name__}")
    m = mask.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(m).all()):
        raise InputError("face_region: the MASK holds NaN or infinite values (expected 0..1)")
    if m.ndim == 3:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"face_region: expected a MASK [B, H, W] or [H, W], got shape {tuple(mask.shape)}")
    if tuple(m.shape) != (height, width):
        m = torch.nn.functional.interpolate(m[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return m.clamp(0, 1).numpy()


def motion_ui(motion: Any, extra: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The ``ui`` dict that web/ditto_motion.js draws: ``{"ditto_motion": [curves]}``."""
    from ditto_core.motion import motion_curves

    curves = motion_curves(motion)
    if extra:
        curves.update(extra)
    return {UI_MOTION_KEY: [curves]}


def safe_child(root: Path, name: str, what: str) -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root`` (no absolute paths, no ``..``)."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise ValueError(f"{what}: expected a file or folder name, got {name!r}")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or os.path.isabs(name) or (len(norm) > 1 and norm[1] == ":"):
        raise ValueError(f"{what}: {name!r} must be a name inside {root}, not an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValueError(f"{what}: {name!r} must stay inside {root}")
    return root.joinpath(*parts)
