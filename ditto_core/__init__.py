"""ditto_core: Ditto (arXiv 2411.19509) talking-head synthesis in plain PyTorch.

Loads the official released checkpoints unchanged. Never imports ComfyUI. The public API, importable from here::

    from ditto_core import DittoModels, JobOptions, generate, StreamingSession, extract_source, Motion

(names resolve lazily, so ``import ditto_core`` and the command line stay light). Layers, bottom up: ``models/``
(one network per file), ``sampler``/``audio2motion`` (the DiT's windowed sampling), ``motion/`` (the motion track,
controls, edits), ``stitch`` (keypoints), ``render/`` (renderers and compositing), ``source``/``tracking``/``audio``
(inputs), ``runtime/`` (loaded models, options, and the offline and streaming modes over one path).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_PUBLIC = {
    "DittoModels": "ditto_core.runtime",
    "JobOptions": "ditto_core.runtime",
    "SourceOptions": "ditto_core.runtime",
    "SamplingOptions": "ditto_core.runtime",
    "RenderOptions": "ditto_core.runtime",
    "StreamingOptions": "ditto_core.runtime",
    "StreamingSession": "ditto_core.runtime",
    "extract_source": "ditto_core.runtime",
    "extract_audio_features": "ditto_core.runtime",
    "sample_motion": "ditto_core.runtime",
    "render_frames": "ditto_core.runtime",
    "render_video": "ditto_core.runtime",
    "generate": "ditto_core.runtime",
    "generate_driven": "ditto_core.runtime",
    "stream_to_file": "ditto_core.runtime",
    "track_motion": "ditto_core.runtime",
    "DrivingOptions": "ditto_core.runtime",
    "extract_driving_motion": "ditto_core.runtime",
    "preview_motion": "ditto_core.runtime",
    "mix_motions": "ditto_core.motion",
    "Motion": "ditto_core.motion",
    "ClipControls": "ditto_core.motion",
    "EditOptions": "ditto_core.motion",
    "apply_edit": "ditto_core.motion",
    "load_motion": "ditto_core.motion",
    "save_motion": "ditto_core.motion",
    "Emotion": "ditto_core.conditions",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ditto_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))
