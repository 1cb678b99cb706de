"""The Ditto nodes (classic V1 classes). Import order is the menu order."""

from __future__ import annotations

from . import audio, driving, edit, live, loaders, motion_io, render, sampler, source

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
for _m in (loaders, source, audio, sampler, driving, edit, motion_io, render, live):
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)

live.LIVE.mount()  # the live page on ComfyUI's server, under /ditto/live

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
