"""Extract Source Motion: a portrait (one image) or a video (a batch of frames) -> ``DITTO_SOURCE``."""

from __future__ import annotations

from typing import Any

from ditto_core.face.detect import FACE_ORDERS

from ditto_core.validate import renamed

from .progress import ComfyProgress
from .types import CATEGORY_SOURCE, DITTO_MODELS, DITTO_SOURCE
from .utils import image_to_u8, mask_to_region, u8_to_image


class DittoExtractSource:
    DESCRIPTION = (
        "Register the face to animate. One image gives a portrait source; a batch of frames (e.g. from Get Video "
        "Components) gives a video source whose frames are reused (ping-pong) under the generated motion. Finds the "
        "face, crops it at 512x512 and extracts its motion, appearance and eye state. Use face_index with "
        "face_order, or draw a face_region mask, to pick one face in a group photo."
    )
    CATEGORY = CATEGORY_SOURCE
    FUNCTION = "extract"
    RETURN_TYPES = (DITTO_SOURCE, "IMAGE")
    RETURN_NAMES = ("source", "face_crop")
    OUTPUT_TOOLTIPS = (
        "The registered source; connect to the DiT Motion Sampler and Render Frames.",
        "The 512x512 face crop of every source frame, for preview.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                "images": ("IMAGE", {"tooltip": "One portrait image, or a batch of video frames for a video source."}),
                "crop_scale": (
                    "FLOAT",
                    {
                        "default": 2.3,
                        "min": 1.0,
                        "max": 4.0,
                        "step": 0.05,
                        "tooltip": "Size of the face crop relative to the face (official 2.3). Larger keeps more hair "
                        "and shoulders in the animated region.",
                    },
                ),
                "face_index": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 63,
                        "tooltip": "Which detected face to animate, counted in face_order (0 = the largest face, "
                        "the official choice).",
                    },
                ),
                "face_order": (
                    list(FACE_ORDERS),
                    {"default": "size", "tooltip": "How faces are counted for face_index: by size (largest first), left to right, "
                     "or by detector score."},
                ),
            },
            "optional": {
                "face_region": (
                    "MASK",
                    {"tooltip": "Optional mask: only faces inside the white area are considered (pick a face in a group photo)."},
                ),
            },
        }

    def extract(
        self,
        models: Any,
        images: Any,
        crop_scale: float,
        face_index: int,
        face_order: str,
        face_region: Any = None,
    ) -> tuple[Any, Any]:
        from ditto_core.runtime import SourceOptions, extract_source

        with renamed({f"SourceOptions.{k}": k for k in ("crop_scale", "face_index", "face_order")}):
            # the release's settings (config pickle) for everything the node does not set
            options = SourceOptions(crop_scale=crop_scale, face_index=face_index, face_order=face_order)
        frames = image_to_u8(images, "images")
        region = mask_to_region(face_region, frames.shape[1], frames.shape[2])
        bar = ComfyProgress(frames.shape[0])
        source = extract_source(models, frames, options, region_mask=region, progress=bar.progress, cancel=bar.cancel)
        return (source, u8_to_image(source.crops))


NODE_CLASS_MAPPINGS = {"DittoExtractSource": DittoExtractSource}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoExtractSource": "Extract Source Motion (Ditto)"}
