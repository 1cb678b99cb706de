"""Save Motion / Load Motion: a performance as ``.safetensors`` in ComfyUI's output / input folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .types import CATEGORY_MOTION, DITTO_MOTION
from .utils import folder_paths_module, motion_ui, safe_child

EXT = ".safetensors"
OUTPUT_TAG = " [output]"
_MAX_DEPTH = 4


def _folder(kind: str) -> Path:
    fp = folder_paths_module()
    if fp is None:
        raise RuntimeError("ComfyUI's folder_paths module is not available")
    return Path(fp.get_output_directory() if kind == "output" else fp.get_input_directory())


def _walk(root: Path) -> list[str]:
    out: list[str] = []
    if not root.is_dir():
        return out
    base_depth = len(root.parts)
    for dirpath, dirnames, files in os.walk(root):
        depth = len(Path(dirpath).parts) - base_depth
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if depth < _MAX_DEPTH else []
        for f in files:
            if f.endswith(EXT) and not f.startswith("."):
                out.append(Path(dirpath, f).relative_to(root).as_posix())
    return sorted(out)


def list_motion_files() -> list[str]:
    """Motion files in the input folder, then those in the output folder tagged ``" [output]"``."""
    if folder_paths_module() is None:
        return []
    return _walk(_folder("input")) + [f + OUTPUT_TAG for f in _walk(_folder("output"))]


def resolve_motion_file(name: str) -> Path:
    """A listed name -> its path inside the input (or, tagged, the output) folder; refuses paths outside them."""
    if not isinstance(name, str):
        raise ValueError(f"motion_file: expected a file name, got {name!r}")
    kind = "input"
    if name.endswith(OUTPUT_TAG):
        kind, name = "output", name[: -len(OUTPUT_TAG)]
    if not name.endswith(EXT):
        raise ValueError(f"motion_file: {name!r} is not a {EXT} motion file")
    return safe_child(_folder(kind), name, "motion_file")


class DittoSaveMotion:
    DESCRIPTION = (
        "Save a performance (motion and edits) as a .safetensors file in ComfyUI's output folder, to share it or "
        "render it later on another face with Load Motion. Copy the file into the input folder, or pick it from the "
        "'[output]' entries of Load Motion."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    RETURN_NAMES = ()
    OUTPUT_TOOLTIPS = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "motion": (DITTO_MOTION, {"tooltip": "The performance to save."}),
                "filename_prefix": (
                    "STRING",
                    {"default": "ditto/motion", "tooltip": "File name prefix inside the output folder; a counter and .safetensors are appended."},
                ),
            }
        }

    def save(self, motion: Any, filename_prefix: str) -> dict[str, Any]:
        from ditto_core.motion import save_motion

        fp = folder_paths_module()
        if fp is None:
            raise RuntimeError("ComfyUI's folder_paths module is not available")
        out_dir = fp.get_output_directory()
        folder, filename, counter, subfolder, _ = fp.get_save_image_path(filename_prefix, out_dir)
        name = f"{filename}_{counter:05}_{EXT}"
        save_motion(Path(folder) / name, motion)
        saved = {"filename": name, "subfolder": subfolder, "type": "output"}
        return {"ui": motion_ui(motion, {"saved": saved})}


class DittoLoadMotion:
    DESCRIPTION = (
        "Load a performance saved by Save Motion (.safetensors) from ComfyUI's input folder (or, tagged [output], "
        "the output folder). A saved motion renders on any face: connect it to Render Frames with another source."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "load"
    RETURN_TYPES = (DITTO_MOTION,)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The loaded performance; edit or render it.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "motion_file": (
                    list_motion_files(),
                    {"tooltip": "A .safetensors motion in the input folder, or one in the output folder tagged [output]."},
                ),
            }
        }

    @classmethod
    def IS_CHANGED(cls, motion_file: str) -> str:
        try:
            st = resolve_motion_file(motion_file).stat()
            return f"{st.st_mtime_ns}-{st.st_size}"
        except (OSError, ValueError, RuntimeError):
            return ""

    @classmethod
    def VALIDATE_INPUTS(cls, motion_file: str) -> bool | str:
        try:
            path = resolve_motion_file(motion_file)
        except (ValueError, RuntimeError) as e:
            return str(e)
        if not path.is_file():
            return f"motion_file: {motion_file!r} does not exist"
        return True

    def load(self, motion_file: str) -> dict[str, Any]:
        from ditto_core.motion import load_motion

        motion = load_motion(resolve_motion_file(motion_file))
        return {"ui": motion_ui(motion), "result": (motion,)}


NODE_CLASS_MAPPINGS = {"DittoSaveMotion": DittoSaveMotion, "DittoLoadMotion": DittoLoadMotion}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoSaveMotion": "Save Motion (Ditto)", "DittoLoadMotion": "Load Motion (Ditto)"}
