"""The 0.1 name of :mod:`ditto_core.motion` (the motion track, its edits and file format moved there in 0.2).

Kept so that scripts and code written for 0.1 keep importing ``ditto_core.edits``; new code imports
``ditto_core.motion``. Everything here is the same object as there.
"""

from .motion import (  # noqa: F401 - re-exported names
    CONTROL_NAMES,
    FORMAT_NAME,
    FORMAT_VERSION,
    FPS,
    GAZE_FIX_MODES,
    HEAD_DIMS,
    LIP_DIMS,
    ClipControls,
    EditOptions,
    EditRange,
    Motion,
    MotionFormatError,
    apply_edit,
    ease_weights,
    load_motion,
    motion_curves,
    save_motion,
    shaped_motion,
    smooth_pose,
)

__all__ = [
    "CONTROL_NAMES", "FORMAT_NAME", "FORMAT_VERSION", "FPS", "GAZE_FIX_MODES", "HEAD_DIMS", "LIP_DIMS", "ClipControls",
    "EditOptions", "EditRange", "Motion", "MotionFormatError", "apply_edit", "ease_weights", "load_motion",
    "motion_curves", "save_motion", "shaped_motion", "smooth_pose",
]
