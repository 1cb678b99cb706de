"""The ComfyUI core nodes the example workflows use, as ComfyUI v0.3.64 declares them (comfy_extras/nodes_video.py,
nodes.py LoadImage and PreviewImage, comfy_extras/nodes_audio.py LoadAudio).

Each spec gives the inputs in declaration order (name, type, options; a list type is a combo), the outputs
(name, type) and, for the UI format, the extra values upload widgets append to ``widgets_values``
(LoadImage/LoadVideo: the upload button's "image"; LoadAudio: the player and upload widgets' ``None, None``).
Later ComfyUI versions only add optional inputs/outputs at the end, which these workflows do not use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CoreInput:
    name: str
    type: str | tuple[str, ...]  # a tuple is a combo (its options; empty = the files present)
    opts: dict[str, Any] = field(default_factory=dict)
    optional: bool = False

    @property
    def is_widget(self) -> bool:
        return isinstance(self.type, tuple) or self.type in ("INT", "FLOAT", "STRING", "BOOLEAN")

    @property
    def socket_type(self) -> str:
        return "COMBO" if isinstance(self.type, tuple) else self.type


@dataclass(frozen=True)
class CoreNode:
    inputs: tuple[CoreInput, ...]
    outputs: tuple[tuple[str, str], ...]
    ui_extra_values: tuple[Any, ...] = ()
    output_node: bool = False


FILES: tuple[str, ...] = ()  # a combo listing the files in the input folder

CORE_NODES: dict[str, CoreNode] = {
    "LoadImage": CoreNode(
        inputs=(CoreInput("image", FILES, {"image_upload": True}),),
        outputs=(("IMAGE", "IMAGE"), ("MASK", "MASK")),
        ui_extra_values=("image",),
    ),
    "LoadAudio": CoreNode(
        inputs=(CoreInput("audio", FILES, {"audio_upload": True}),),
        outputs=(("AUDIO", "AUDIO"),),
        ui_extra_values=(None, None),
    ),
    "LoadVideo": CoreNode(
        inputs=(CoreInput("file", FILES, {"video_upload": True}),),
        outputs=(("VIDEO", "VIDEO"),),
        ui_extra_values=("image",),
    ),
    "GetVideoComponents": CoreNode(
        inputs=(CoreInput("video", "VIDEO"),),
        outputs=(("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")),
    ),
    "CreateVideo": CoreNode(
        inputs=(
            CoreInput("images", "IMAGE"),
            CoreInput("fps", "FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}),
            CoreInput("audio", "AUDIO", optional=True),
        ),
        outputs=(("VIDEO", "VIDEO"),),
    ),
    "PreviewImage": CoreNode(
        inputs=(CoreInput("images", "IMAGE"),),
        outputs=(),
        output_node=True,
    ),
    "SaveVideo": CoreNode(
        inputs=(
            CoreInput("video", "VIDEO"),
            CoreInput("filename_prefix", "STRING", {"default": "video/ComfyUI"}),
            CoreInput("format", ("auto", "mp4"), {"default": "auto"}),
            CoreInput("codec", ("auto", "h264"), {"default": "auto"}),
        ),
        outputs=(),
        output_node=True,
    ),
}

#: UI-only node types (no Python class; never in API prompts)
UI_ONLY_NODES = ("Note", "MarkdownNote")
CONTROL_AFTER_GENERATE = ("fixed", "increment", "decrement", "randomize")
