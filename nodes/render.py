"""Render Frames: source + motion -> ``IMAGE`` frames, the paste ``MASK`` and ``fps``."""

from __future__ import annotations

from typing import Any

import torch

from ditto_core.render import OUTPUTS

from ditto_core.validate import check_choice, check_int

from .progress import ComfyProgress
from .types import CATEGORY_RENDER, DITTO_MODELS, DITTO_MOTION, DITTO_SOURCE


class DittoRenderFrames:
    DESCRIPTION = (
        "Render the performance: warp and decode the source face for every motion frame, then paste it back into "
        "the source frame (full) or keep the 512x512 face crop (crop). Outputs a standard IMAGE batch, so chain "
        "upscalers, face restorers or Create Video (with fps = 25 and the original audio) + Save Video. "
        "Memory: frames x height x width x 12 bytes (e.g. 1 GB for 10 s at 512x512)."
    )
    CATEGORY = CATEGORY_RENDER
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "FLOAT")
    RETURN_NAMES = ("frames", "mask", "fps")
    OUTPUT_TOOLTIPS = (
        "The rendered frames, one per motion frame (IMAGE batch).",
        "Where the rendered face was pasted (1 = rendered face, 0 = original frame), one per frame.",
        "Frames per second of the frames (25.0); connect to Create Video's fps.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                "source": (DITTO_SOURCE, {"tooltip": "From Extract Source Motion: the face to animate (any face works with a loaded motion)."}),
                "motion": (DITTO_MOTION, {"tooltip": "The performance from the sampler, Edit Motion or Load Motion."}),
                "output": (
                    list(OUTPUTS),
                    {"default": "full", "tooltip": "full = pasted back into the source frame (official); crop = the 512x512 face crop."},
                ),
                "batch_size": (
                    "INT",
                    {"default": 4, "min": 1, "max": 64, "tooltip": "Frames rendered at once; larger is faster on a GPU and uses more memory."},
                ),
            }
        }

    def render(self, models: Any, source: Any, motion: Any, output: str, batch_size: int) -> tuple[Any, Any, float]:
        from ditto_core.runtime import render_frames

        check_choice("output", output, OUTPUTS)
        batch_size = check_int("batch_size", batch_size, 1, 1024)
        n = int(motion.num_frames)
        bar = ComfyProgress(n)
        frames: torch.Tensor | None = None
        masks: torch.Tensor | None = None
        done = 0
        renderer = models.new_renderer(batch_size)  # this run's own renderer (nothing shared is changed)
        for batch, mask in render_frames(
            models, source, motion, output=output, progress=bar.progress, cancel=bar.cancel, renderer=renderer
        ):
            b = batch.shape[0]
            if frames is None:
                h, w = batch.shape[1], batch.shape[2]
                frames = torch.empty((n, h, w, 3), dtype=torch.float32)
                masks = torch.empty((n, h, w), dtype=torch.float32)
            assert masks is not None
            if done + b > n:
                raise RuntimeError(f"render_frames returned more frames than the motion has ({n})")
            frames[done : done + b] = torch.from_numpy(batch).to(torch.float32).div_(255.0)
            masks[done : done + b] = torch.from_numpy(mask).to(torch.float32)
            done += b
        if frames is None or masks is None or done != n:
            raise RuntimeError(f"render_frames returned {done} frames for a {n}-frame motion")
        return (frames, masks, float(getattr(motion, "fps", 25.0)))


NODE_CLASS_MAPPINGS = {"DittoRenderFrames": DittoRenderFrames}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoRenderFrames": "Render Frames (Ditto)"}
