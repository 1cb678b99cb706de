"""Render Frames: source + motion -> ``IMAGE`` frames, the paste ``MASK`` and ``fps`` (a whole clip or a frame range).
Render Video: source + motion (+ ``AUDIO``) -> an H.264 mp4 written frame by frame, returned as a core ``VIDEO``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import torch

from ditto_core.render import OUTPUTS
from ditto_core.validate import OptionError, check_choice, check_int

from .progress import ComfyProgress
from .types import CATEGORY_RENDER, DITTO_MODELS, DITTO_MOTION, DITTO_SOURCE

#: most frames a frame range may name (as the edit nodes: about 11 hours at 25 fps)
MAX_FRAMES = 1_000_000


def _common_inputs() -> dict[str, Any]:
    """The inputs both render nodes share, in saved-widget order."""
    return {
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


def _frame_range(motion: Any, start_frame: int, frame_count: int) -> list[int]:
    """The frames ``start_frame`` .. ``start_frame + frame_count - 1`` of ``motion`` (0 = to the end; a range
    running past the clip stops at its end), or an error naming the widget."""
    n = int(motion.num_frames)
    start = check_int("start_frame", start_frame, 0, MAX_FRAMES)
    count = check_int("frame_count", frame_count, 0, MAX_FRAMES)
    if start >= n:
        raise OptionError("start_frame", f"a frame of the motion (0..{n - 1}: {n} frames at 25 fps)", start)
    stop = n if count == 0 else min(n, start + count)
    return list(range(start, stop))


class DittoRenderFrames:
    DESCRIPTION = (
        "Render the performance: warp and decode the source face for every motion frame, then paste it back into "
        "the source frame (full) or keep the 512x512 face crop (crop). Outputs a standard IMAGE batch, so chain "
        "upscalers, face restorers or Create Video (with fps = 25 and the original audio) + Save Video. "
        "Memory: frames x height x width x 16 bytes (e.g. 1 GB for 10 s at 512x512); for long clips use Render "
        "Video, or render a frame range (start_frame, frame_count) at a time."
    )
    CATEGORY = CATEGORY_RENDER
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "FLOAT")
    RETURN_NAMES = ("frames", "mask", "fps")
    OUTPUT_TOOLTIPS = (
        "The rendered frames, one per motion frame of the range (IMAGE batch).",
        "Where the rendered face was pasted (1 = rendered face, 0 = original frame), one per frame.",
        "Frames per second of the frames (25.0); connect to Create Video's fps.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": _common_inputs(),
            "optional": {
                "start_frame": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_FRAMES,
                     "tooltip": "First frame to render (25 frames = 1 s). With frame_count, renders a long clip in "
                                "pieces that fit in memory."},
                ),
                "frame_count": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_FRAMES,
                     "tooltip": "How many frames to render from start_frame; 0 = to the end of the clip. A range "
                                "running past the clip stops at its end."},
                ),
            },
        }

    def render(self, models: Any, source: Any, motion: Any, output: str, batch_size: int,
               start_frame: int = 0, frame_count: int = 0) -> tuple[Any, Any, float]:
        from ditto_core.runtime import render_frames

        check_choice("output", output, OUTPUTS)
        batch_size = check_int("batch_size", batch_size, 1, 1024)
        rows = _frame_range(motion, start_frame, frame_count)
        n = len(rows)
        bar = ComfyProgress(n)
        frames: torch.Tensor | None = None
        masks: torch.Tensor | None = None
        done = 0
        renderer = models.new_renderer(batch_size)  # this run's own renderer (nothing shared is changed)
        for batch, mask in render_frames(models, source, motion, output=output, progress=bar.progress,
                                         cancel=bar.cancel, frame_indices=rows, renderer=renderer):
            b = batch.shape[0]
            if frames is None:
                h, w = batch.shape[1], batch.shape[2]
                frames = torch.empty((n, h, w, 3), dtype=torch.float32)
                masks = torch.empty((n, h, w), dtype=torch.float32)
            assert masks is not None
            if done + b > n:
                raise RuntimeError(f"render_frames returned more frames than asked for ({n})")
            frames[done : done + b] = torch.from_numpy(batch).to(torch.float32).div_(255.0)
            masks[done : done + b] = torch.from_numpy(mask).to(torch.float32)
            done += b
        if frames is None or masks is None or done != n:
            raise RuntimeError(f"render_frames returned {done} frames for {n} asked for")
        return (frames, masks, float(getattr(motion, "fps", 25.0)))


def _video_from_file(path: Path) -> Any:
    """ComfyUI's core ``VIDEO`` for a file (``comfy_api``'s ``VideoFromFile``), or a clear error on a ComfyUI
    too old to have the VIDEO type."""
    try:
        from comfy_api.input_impl import VideoFromFile
    except ImportError:
        try:
            from comfy_api.latest import InputImpl

            VideoFromFile = InputImpl.VideoFromFile
        except (ImportError, AttributeError):
            raise RuntimeError(
                "Render Video (Ditto) returns ComfyUI's VIDEO type, which this ComfyUI does not have "
                "(comfy_api.input_impl.VideoFromFile): update ComfyUI, or use Render Frames + a video node"
            ) from None
    return VideoFromFile(str(path))


class DittoRenderVideo:
    DESCRIPTION = (
        "Render the performance straight into an H.264 mp4 (25 fps, with the audio at its own rate and channels, "
        "fitted to the video's length) frame by frame, so memory does not grow with the clip: use it for long clips. "
        "The file is written to ComfyUI's temp folder and previewed on the node; connect the VIDEO to Save Video to "
        "keep it (it copies the streams, no re-encoding). Cancel leaves no partial file."
    )
    CATEGORY = CATEGORY_RENDER
    FUNCTION = "render"
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The rendered video with its sound track (core VIDEO): connect Save Video or Get Video Components.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                **_common_inputs(),
                "quality": (
                    "INT",
                    {"default": 18, "min": 0, "max": 51,
                     "tooltip": "x264 CRF: 0 = lossless, 18 = visually lossless (the command line's default), "
                                "23 = x264's default; higher is smaller and blurrier."},
                ),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "The sound track, usually the speech the motion was made from (Load "
                                               "Audio). Unconnected: a silent video."}),
            },
        }

    def render(self, models: Any, source: Any, motion: Any, output: str, batch_size: int, quality: int,
               audio: Any = None) -> dict[str, Any]:
        import folder_paths

        from ditto_core.runtime import render_video

        check_choice("output", output, OUTPUTS)
        batch_size = check_int("batch_size", batch_size, 1, 1024)
        crf = check_int("quality", quality, 0, 51)
        n = int(motion.num_frames)
        bar = ComfyProgress(n)
        bar.cancel()  # a Cancel pressed before this node started: nothing is written
        name = f"ditto_video_{uuid.uuid4().hex[:12]}.mp4"
        out = Path(folder_paths.get_temp_directory()) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        renderer = models.new_renderer(batch_size)  # this run's own renderer (nothing shared is changed)
        render_video(models, source, motion, out, audio, output=output, renderer=renderer, crf=crf,
                     progress=bar.progress, cancel=bar.cancel)
        preview = {"filename": name, "subfolder": "", "type": "temp"}
        return {"ui": {"images": [preview], "animated": (True,)}, "result": (_video_from_file(out),)}


NODE_CLASS_MAPPINGS = {"DittoRenderFrames": DittoRenderFrames, "DittoRenderVideo": DittoRenderVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoRenderFrames": "Render Frames (Ditto)", "DittoRenderVideo": "Render Video (Ditto)"}
