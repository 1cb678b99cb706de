"""The sample inputs the example workflows load (``example_inputs/``: a portrait, speech, a short video), put into
ComfyUI's input folder when the pack loads, so the templates run as shipped with core Load Image / Load Audio / Load
Video (which list the input folder's top level only).

A file is copied only when no file of that name is there: nothing the user has is ever replaced. Set
``DITTO_NO_EXAMPLE_INPUTS=1`` to skip it. Failures (a read-only input folder) are logged, never raised.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

_log = logging.getLogger("ComfyUI-Ditto")

#: the pack's sample inputs (licences in its README.md)
EXAMPLE_INPUTS_DIR = Path(__file__).resolve().parent.parent / "example_inputs"
#: the files the workflows reference (every other file in the folder stays there)
EXAMPLE_INPUTS = ("ditto_portrait.jpg", "ditto_speech.wav", "ditto_speech_long.flac", "ditto_source_video.mp4")
OPT_OUT_ENV = "DITTO_NO_EXAMPLE_INPUTS"


def install_example_inputs(input_dir: str | os.PathLike[str]) -> list[str]:
    """Copy the sample inputs missing from ``input_dir``; returns the names copied."""
    if os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0"):
        return []
    copied = []
    target = Path(input_dir)
    for name in EXAMPLE_INPUTS:
        src, dst = EXAMPLE_INPUTS_DIR / name, target / name
        if dst.exists() or dst.is_symlink() or not src.is_file():
            continue
        tmp = target / f".{name}.ditto-partial"
        try:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)  # the name appears complete or not at all
            copied.append(name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            _log.warning("ComfyUI-Ditto: could not put the sample input %s into %s: %s", name, target, e)
    if copied:
        _log.info("ComfyUI-Ditto: sample inputs for the example workflows added to %s: %s", target, ", ".join(copied))
    return copied


def install_into_comfyui_input() -> list[str]:
    """:func:`install_example_inputs` into ComfyUI's input folder (nothing outside ComfyUI)."""
    try:
        import folder_paths
    except ImportError:
        return []
    return install_example_inputs(folder_paths.get_input_directory())
