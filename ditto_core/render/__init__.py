"""Render stage: keypoints -> warp -> decode -> 512x512 face renders -> output frames.

* :mod:`.renderer`: :class:`Renderer` (PyTorch), :class:`RendererConfig`, precisions, the backend registry
  (:func:`make_renderer`, :func:`register_backend`);
* :mod:`.compositor`: :class:`Compositor` (the 512 crop, or paste-back on the device) and :func:`render_batch`;
* :mod:`.export`: ONNX export of the warp and decoder (``python -m ditto_core export-onnx``);
* :mod:`.tensorrt`: the optional TensorRT backend (registers "tensorrt" when imported).
"""

from .compositor import OUTPUTS, Compositor, render_batch
from .renderer import (
    BACKENDS,
    LARGE_KERNEL_MODES,
    PRECISIONS,
    BackendUnavailable,
    CudaGraphCall,
    Renderer,
    RendererConfig,
    SPEED_OPTIONS,
    autocast_context,
    make_renderer,
    register_backend,
)

__all__ = [
    "BACKENDS",
    "LARGE_KERNEL_MODES",
    "OUTPUTS",
    "PRECISIONS",
    "BackendUnavailable",
    "Compositor",
    "CudaGraphCall",
    "Renderer",
    "RendererConfig",
    "SPEED_OPTIONS",
    "autocast_context",
    "make_renderer",
    "register_backend",
    "render_batch",
]
