"""Motion: the 265-d motion vector and keypoint maths, the motion track and its file, controls, edits, curves.

* :mod:`.vector`: the layout of one motion frame, dimension constants, LivePortrait's keypoint transform;
* :mod:`.controls`: :class:`FrameControls` (per frame), :class:`ClipSettings`, :class:`ClipControls` (per clip);
* :mod:`.track`: :class:`Motion`, any motion source's output, and its ``.safetensors`` format;
* :mod:`.edit`: :class:`EditOptions` and :func:`apply_edit` (keyframed edits);
* :mod:`.curves`: :func:`motion_curves`, what the UI draws;
* :mod:`.parts`: what a motion drives (head pose, translation, eyes, brows, lips, expression);
* :mod:`.mix`: :func:`mix_motions`, two motions combined part by part;
* :mod:`.resample`: motion rows at any frame rate -> 25 fps by timestamps.
"""

from .controls import ClipControls, ClipSettings, FrameControls, exp_amplitude
from .curves import motion_curves, shaped_motion
from .mix import LENGTH_MODES, fit_length, mix_motions
from .parts import DRIVING_PARTS, OFFICIAL, PARTS, parse_parts, resolve_parts
from .resample import resample_rows
from .edit import GAZE_FIX_MODES, EditOptions, apply_edit, ease_weights, range_warning, smooth_pose
from .track import (
    CONTROL_NAMES,
    FORMAT_NAME,
    FORMAT_VERSION,
    FPS,
    EditRange,
    Motion,
    MotionFormatError,
    load_motion,
    save_motion,
)
from .vector import (
    EXP,
    EYE_KPS,
    HEAD_DIMS,
    LIP_DIMS,
    LIP_KPS,
    MOTION_DIM,
    MOTION_KEYS,
    NUM_BINS,
    NUM_KP,
    PITCH,
    POSE_DIMS,
    ROLL,
    SCALE,
    YAW,
    MotionDict,
    T,
    bins_to_degrees,
    dict_to_motion,
    motion_to_dict,
    pose_to_degrees,
    rotation_matrix,
    transform_keypoint,
)

__all__ = [
    "CONTROL_NAMES", "DRIVING_PARTS", "LENGTH_MODES", "OFFICIAL", "PARTS", "fit_length", "mix_motions", "parse_parts",
    "resample_rows", "resolve_parts", "EXP", "EYE_KPS", "FORMAT_NAME", "FORMAT_VERSION", "FPS", "GAZE_FIX_MODES", "HEAD_DIMS",
    "LIP_DIMS", "LIP_KPS", "MOTION_DIM", "MOTION_KEYS", "NUM_BINS", "NUM_KP", "PITCH", "POSE_DIMS", "ROLL", "SCALE",
    "T", "YAW", "ClipControls", "ClipSettings", "EditOptions", "EditRange", "FrameControls", "Motion",
    "MotionDict", "MotionFormatError", "apply_edit", "range_warning", "bins_to_degrees", "dict_to_motion", "ease_weights",
    "exp_amplitude", "load_motion", "motion_curves", "motion_to_dict", "pose_to_degrees", "rotation_matrix",
    "save_motion", "shaped_motion", "smooth_pose", "transform_keypoint",
]
