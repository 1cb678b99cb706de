"""What the web extension draws for a motion: per-frame head pose (degrees) and mouth activity, plus the edits."""

from __future__ import annotations

import math
from typing import Any

import torch

from .controls import exp_amplitude, scale_deviation
from .track import Motion
from .vector import EXP, HEAD_DIMS, LIP_DIMS, PITCH, ROLL, YAW, bins_to_degrees

__all__ = ["motion_curves", "shaped_motion"]


def shaped_motion(motion: Motion) -> torch.Tensor:
    """``(N, 265)`` motion as the stitcher drives it: the head amplitude scales the pose and ``t`` deviation from the
    reference frame, expression and mouth amplitudes the ``exp`` deviation (same factors as
    :func:`ditto_core.motion.controls.exp_amplitude`). Frames with every factor 1 are bit-identical to the input."""
    m = motion.motion
    ref = (m[0] if motion.reference is None else motion.reference)[None]
    controls = motion.frame_controls()
    out = m.clone()
    if controls.head_amplitude is not None:
        out[:, HEAD_DIMS] = scale_deviation(m[:, HEAD_DIMS], ref[:, HEAD_DIMS], controls.head_amplitude[:, None])
    w = exp_amplitude(controls)
    if w is not None:
        out[:, EXP] = scale_deviation(m[:, EXP], ref[:, EXP], w)
    return out


def motion_curves(motion: Motion, max_points: int = 2000) -> dict[str, Any]:
    """What the web extension draws: per-frame yaw/pitch/roll (degrees) and mouth activity, plus the edits.

    * pose: degrees of the motion's own (amplitude-scaled) pose logits plus the ``delta_*`` offsets;
    * mouth: mean |offset| of the 18 lip-keypoint ``exp`` values from the reference frame. Under relative motion (the
      official default) the stitched lip exp is ``source + (m - m0)``, so the offset is ``m - m0`` whatever the
      source is; it is scaled by ``vad_alpha`` and ``fade_alpha`` as the stitcher blends toward the source.

    Series longer than ``max_points`` are subsampled every ``step`` frames. JSON-ready (lists of floats).
    """
    m = shaped_motion(motion)
    n = motion.num_frames
    pose = {
        "yaw": bins_to_degrees(m[:, YAW]) + motion.delta_yaw,
        "pitch": bins_to_degrees(m[:, PITCH]) + motion.delta_pitch,
        "roll": bins_to_degrees(m[:, ROLL]) + motion.delta_roll,
    }
    lips = m[:, EXP][:, list(LIP_DIMS)]
    ref = lips[:1] if motion.reference is None else motion.reference[EXP][list(LIP_DIMS)][None]
    mouth = (lips - ref).abs().mean(1) * motion.vad_alpha * motion.fade_alpha
    step = max(1, math.ceil(n / max(1, max_points)))

    def _ser(t: torch.Tensor, nd: int) -> list[float]:
        return [round(float(v), nd) for v in t[::step].tolist()]

    return {
        "frames": n,
        "fps": motion.fps,
        "step": step,
        "yaw": _ser(pose["yaw"], 3),
        "pitch": _ser(pose["pitch"], 3),
        "roll": _ser(pose["roll"], 3),
        "mouth": _ser(mouth, 6),
        "edits": [e.to_dict() for e in motion.edits],
    }
