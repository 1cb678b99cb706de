"""Edit Motion: one eased frame range of pose offsets, amplitudes, relax-on-silence, blinks, fades, smoothing."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ditto_core.motion import GAZE_FIX_MODES, EditOptions
from ditto_core.motion.controls import MAX_FRAMES
from ditto_core.validate import renamed

from .types import CATEGORY_MOTION, DITTO_MOTION
from .utils import motion_ui

MAX_FRAME = MAX_FRAMES
#: EditOptions field -> widget, and the library's error names -> the widgets'
_WIDGET_OF = {f.name: f.name for f in fields(EditOptions)} | {"start": "start_frame", "end": "end_frame"}
EDIT_WIDGETS = {f"EditOptions.{field}": widget for field, widget in _WIDGET_OF.items()}


def _f(default: float, lo: float, hi: float, step: float, tip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tip})


def _i(default: int, lo: int, hi: int, tip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": lo, "max": hi, "tooltip": tip})


class DittoEditMotion:
    DESCRIPTION = (
        "Edit a performance over a frame range (25 frames per second; end -1 = to the end) with eased edges. Chain "
        "several Edit Motion nodes to keyframe a performance: each adds its pose offsets and multiplies its "
        "amplitudes on top of the previous ones. Defaults change nothing. Blink interval and gaze fix apply to the "
        "whole clip. The curves on the node show the result, the edited ranges shaded."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "edit"
    RETURN_TYPES = (DITTO_MOTION,)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The edited performance; chain more edits, save or render it.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "motion": (DITTO_MOTION, {"tooltip": "A performance from the DiT Motion Sampler, Load Motion or another Edit Motion."}),
                "start_frame": _i(0, 0, MAX_FRAME, "First frame of the edited range (25 frames per second)."),
                "end_frame": _i(-1, -1, MAX_FRAME, "Frame after the edited range; -1 = to the end of the clip."),
                "ease_in": _i(0, 0, MAX_FRAME, "Frames at the start of the range over which the edit fades in (smoothstep)."),
                "ease_out": _i(0, 0, MAX_FRAME, "Frames at the end of the range over which the edit fades out (smoothstep)."),
                "pitch": _f(0.0, -90.0, 90.0, 0.5, "Head pitch offset in degrees (nod up/down)."),
                "yaw": _f(0.0, -90.0, 90.0, 0.5, "Head yaw offset in degrees (turn left/right)."),
                "roll": _f(0.0, -90.0, 90.0, 0.5, "Head roll offset in degrees (tilt)."),
                "head_amplitude": _f(1.0, 0.0, 3.0, 0.05, "Scales the generated head motion (pose and translation): 0 = still head, 1 = as generated."),
                "mouth_amplitude": _f(1.0, 0.0, 3.0, 0.05, "Scales the lip motion: below 1 subtler, above 1 more pronounced articulation."),
                "expression": _f(1.0, 0.0, 3.0, 0.05, "Scales all driven expression motion (lips and eyes) together."),
                "relax_on_silence": _f(
                    0.0, 0.0, 1.0, 0.05, "On frames without speech, blend the expression toward the source face by this much (0 = off)."
                ),
                "silence_threshold": _f(
                    0.01, 0.0, 1.0, 0.001, "Voice activity (RMS of each 40 ms, full scale 1.0) below which a frame counts as silent."
                ),
                "blink_interval": _i(
                    -1, -1, 10_000, "Whole clip: -1 keep (models' default: random blinks every 60-100 frames), 0 no blinks, >0 frames between blinks."
                ),
                "gaze_fix": (
                    list(GAZE_FIX_MODES),
                    {
                        "default": "keep",
                        "tooltip": "Whole clip: keep the eyes on the camera while the head turns (on), or let them follow the "
                        "head (off); keep = official (on whenever the eyes are driven).",
                    },
                ),
                "fade_in": _i(0, 0, MAX_FRAME, "Frames at the start of the range over which the expression fades in from the source face."),
                "fade_out": _i(0, 0, MAX_FRAME, "Frames at the end of the range over which the expression fades back to the source face."),
                "smoothing": _i(1, 1, 51, "Temporal smoothing of head pose in the range: moving-average width in frames (1 = none)."),
            },
            "optional": {
                "label": (
                    "STRING",
                    {"default": "", "multiline": False, "tooltip": "Name of this edit shown on the curves (default: a summary)."},
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, start_frame: int = 0, end_frame: int = -1) -> bool | str:
        """Before the workflow runs (ComfyUI passes the widget values): the frame range, as the library checks it."""
        try:
            with renamed(EDIT_WIDGETS):
                EditOptions(start=start_frame, end=end_frame)
        except ValueError as e:
            return str(e)
        return True

    def edit(self, motion: Any, **kw: Any) -> dict[str, Any]:
        from ditto_core.motion import apply_edit, range_warning

        values = {field: kw[widget] for field, widget in _WIDGET_OF.items() if widget in kw}
        values["label"] = kw.get("label") or ""
        with renamed(EDIT_WIDGETS):  # the library checks every value; errors name the widget
            options = EditOptions(**values)
            out = apply_edit(motion, options)
        warning = range_warning(motion.num_frames, options)  # shown on the node's chart (web/ditto_motion.js)
        return {"ui": motion_ui(out, {"warnings": [warning] if warning else []}), "result": (out,)}


NODE_CLASS_MAPPINGS = {"DittoEditMotion": DittoEditMotion}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoEditMotion": "Edit Motion (Ditto)"}
