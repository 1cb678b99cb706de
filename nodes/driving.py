"""Motion from a driving video, mixing two motions part by part, and a keypoint preview of a motion.

* Extract Driving Motion: an ``IMAGE`` batch (+ its ``fps``) or a core ``VIDEO`` -> ``DITTO_MOTION`` (25 fps),
  through :func:`ditto_core.runtime.extract_driving_motion`;
* Mix Motion: two ``DITTO_MOTION`` -> one, the chosen parts from B (:func:`ditto_core.motion.mix_motions`);
* Preview Motion: source + motion -> ``IMAGE`` keypoints on the source crop (:func:`ditto_core.runtime.preview_motion`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ditto_core.face.detect import FACE_ORDERS
from ditto_core.motion.controls import MAX_FRAMES
from ditto_core.motion.mix import LENGTH_MODES
from ditto_core.motion.parts import DRIVING_PARTS, PARTS
from ditto_core.validate import check_choice, check_int, renamed

from .progress import ComfyProgress
from .types import CATEGORY_MOTION, DITTO_MODELS, DITTO_MOTION, DITTO_SOURCE
from .utils import image_to_u8, motion_ui, u8_to_image

#: "relative" / "absolute": ditto_core.runtime.DRIVING_MODES, spelled out here so that loading the pack does not import
#: the runtime (the contract tests check that both agree)
DRIVING_MODES = ("relative", "absolute")
#: what each part toggle moves, for the tooltips
PART_TIPS = {
    "head_pose": "head rotation (pitch, yaw, roll)",
    "translation": "head position in the frame",
    "eyes": "eyelids and gaze (blinks)",
    "brows": "eyebrows",
    "lips": "mouth and lips",
    "expression": "the whole facial expression (brows, eyes, lips, cheeks, chin)",
}
#: the part toggles as one name, for errors about the selection
PART_TOGGLES = "/".join(PARTS)
#: what Mix Motion takes from motion_b by default: the head from a driving video, the lips stay the speech's
MIX_DEFAULT_PARTS = ("head_pose", "eyes")
#: the library's names -> the widgets'
DRIVING_WIDGETS = {
    **{f"DrivingOptions.{k}": k for k in ("mode", "smoothing", "face_index", "face_order", "max_frames")},
    "DrivingOptions.parts": PART_TOGGLES,
    "driving fps": "fps",
}


def _toggle(part: str, on: bool, what: str) -> tuple[str, dict[str, Any]]:
    return ("BOOLEAN", {"default": on, "tooltip": f"{what}: {PART_TIPS[part]}."})


def selected_parts(values: dict[str, Any], node: str) -> tuple[str, ...]:
    """The parts whose toggle is on; none on is an error naming the toggles."""
    chosen = tuple(p for p in PARTS if bool(values.get(p, False)))
    if not chosen:
        raise ValueError(f"{PART_TOGGLES}: turn on at least one part for {node} (all six toggles are off)")
    return chosen


def _check_toggles(values: tuple[Any, ...], node: str) -> bool | str:
    """VALIDATE_INPUTS for the six toggles in PARTS order; a None (fed by a link, known only when it runs) counts
    as possibly on."""
    if any(v is None for v in values):
        return True
    try:
        selected_parts(dict(zip(PARTS, values)), node)
    except ValueError as e:
        return str(e)
    return True


# ------------------------------------------------------------------------------------------------ driving video
def _video_file(video: Any) -> Path | None:
    """The file behind a core VIDEO (``VideoFromFile``), when it is a plain file read whole; else None."""
    method = getattr(type(video), "get_stream_source", None)
    # VideoInput's default get_stream_source encodes the video into memory: not a file, and slow
    if method is None or getattr(method, "__qualname__", "") == "VideoInput.get_stream_source":
        return None
    # a trimmed VideoFromFile (a start time or duration of its own, in ComfyUI versions that have them) is read
    # through get_components, which applies the trim
    for name, value in vars(video).items():
        if name.endswith(("start_time", "duration")) and value:
            return None
    src = video.get_stream_source()
    if isinstance(src, (str, os.PathLike)) and Path(src).is_file():
        return Path(src)
    return None


def _video_frames(video: Any, max_frames: int) -> tuple[Any, Any, float | None]:
    """A core VIDEO -> (uint8 frames, their times in seconds or None, the frame rate or None)."""
    from ditto_core.inputs import read_video_timed

    path = _video_file(video)
    if path is not None:  # the file's own timestamps (variable frame rate kept)
        frames, times = read_video_timed(path, max_frames, what="video")
        return frames, times, None
    if not callable(getattr(video, "get_components", None)):
        raise ValueError(f"video: expected a core VIDEO (e.g. from Load Video), got {type(video).__name__}")
    comp = video.get_components()
    images = comp.images
    if max_frames > 0:
        images = images[:max_frames]
    if images.shape[0] < 1:
        raise ValueError("video: the VIDEO holds no frames")
    rate = float(comp.frame_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"video: the VIDEO has no usable frame rate ({comp.frame_rate!r})")
    return image_to_u8(images, "video"), None, rate


class DittoExtractDrivingMotion:
    DESCRIPTION = (
        "Turn a video of a face into a performance: the face is tracked through every frame and its head pose, "
        "position and expression become a Ditto motion at 25 fps (any frame rate in; a variable frame rate keeps its "
        "timing when the video comes from Load Video). Connect either video (Load Video) or images (a frame batch) "
        "with their fps. The toggles choose what the motion drives; everything else stays the portrait's. Relative "
        "mode moves the portrait by the video's change since its first frame (the portrait keeps its own face "
        "shape); absolute copies the video's pose and expression. Render it, edit it, or mix it with speech motion "
        "(Mix Motion). Frames without a face hold the last tracked one."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "extract"
    RETURN_TYPES = (DITTO_MOTION,)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The video's performance at 25 fps; render, edit, save or mix it.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        what = "Drive"
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                **{p: _toggle(p, p in DRIVING_PARTS, what) for p in PARTS},
                "mode": (
                    list(DRIVING_MODES),
                    {"default": "relative",
                     "tooltip": "relative: the portrait moves by the video's change since its first frame (keeps the "
                                "portrait's own face; needed to mix with speech motion). absolute: the video face's "
                                "pose and expression replace the portrait's."},
                ),
                "smoothing": (
                    "INT",
                    {"default": 1, "min": 1, "max": 51,
                     "tooltip": "Moving average over this many video frames to calm tracking jitter (1 = none)."},
                ),
                "face_index": (
                    "INT",
                    {"default": 0, "min": 0, "max": 63,
                     "tooltip": "Which face in the video to follow, counted in face_order (0 = the largest)."},
                ),
                "face_order": (
                    list(FACE_ORDERS),
                    {"default": "size",
                     "tooltip": "How faces are counted for face_index: by size (largest first), left to right, or "
                                "by detector score."},
                ),
                "max_frames": (
                    "INT",
                    {"default": -1, "min": -1, "max": MAX_FRAMES,
                     "tooltip": "Video frames to use at most, from the start (-1 = all)."},
                ),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The driving video as a frame batch (e.g. Get Video Components' "
                                                "images); set fps to its frame rate. Connect this or video."}),
                "video": ("VIDEO", {"tooltip": "The driving video (core VIDEO, e.g. Load Video): read with its own "
                                               "frame times. Connect this or images."}),
                "fps": (
                    "FLOAT",
                    {"default": 25.0, "min": 0.1, "max": 1000.0, "step": 0.01,
                     "tooltip": "Frame rate of the images batch (e.g. Get Video Components' fps); not used with "
                                "video, which carries its own timing."},
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, head_pose: Any = None, translation: Any = None, eyes: Any = None, brows: Any = None,
                        lips: Any = None, expression: Any = None) -> bool | str:
        """Before the workflow runs (ComfyUI passes the toggles' values; None for one fed by a link): at least one
        part toggle on."""
        return _check_toggles((head_pose, translation, eyes, brows, lips, expression), "Extract Driving Motion")

    def extract(self, models: Any, mode: str, smoothing: int, face_index: int, face_order: str, max_frames: int,
                images: Any = None, video: Any = None, fps: float = 25.0, **toggles: Any) -> dict[str, Any]:
        from ditto_core.runtime import DrivingOptions, extract_driving_motion

        parts = selected_parts(toggles, "Extract Driving Motion")
        with renamed(DRIVING_WIDGETS):  # every setting checked before the video is read; errors name the widget
            options = DrivingOptions(parts=parts, mode=mode, smoothing=smoothing, face_index=face_index,
                                     face_order=face_order, max_frames=max_frames)
        if (images is None) == (video is None):
            raise ValueError(
                "images / video: connect exactly one driving input, either images (a frame batch, with fps) or video "
                f"(e.g. Load Video); {'both are' if images is not None else 'neither is'} connected")
        ComfyProgress().cancel()  # a Cancel pressed before this node started: nothing is read
        if video is not None:
            frames, times, rate = _video_frames(video, options.max_frames)
        else:
            frames, times, rate = image_to_u8(images, "images"), None, fps
            if options.max_frames > 0:
                frames = frames[: options.max_frames]
        bar = ComfyProgress(frames.shape[0])  # one step per tracked frame
        with renamed(DRIVING_WIDGETS):
            motion = extract_driving_motion(models, frames, fps=rate, times=times, options=options,
                                            progress=bar.progress, cancel=bar.cancel)
        warnings = []
        missing = int(motion.meta.get("missing_faces", "0") or 0)
        if missing:
            warnings.append(f"no face in {missing} of {frames.shape[0]} video frames: they hold the last tracked motion")
        return {"ui": motion_ui(motion, {"warnings": warnings}), "result": (motion,)}


# ------------------------------------------------------------------------------------------------ mix
class DittoMixMotion:
    DESCRIPTION = (
        "Combine two performances part by part: motion_a is the base (e.g. the DiT's lip-synced motion from speech), "
        "and the parts switched on are taken from motion_b (e.g. a driving video's head pose and blinks) over the "
        "frame range start..end (25 frames per second; end -1 = to the end), eased in and out. Both motions must be "
        "relative (the sampler's are; extract a driving video in relative mode). motion_a is the timeline: length "
        "decides what a shorter motion_b does (a longer one is cut). The curves on the node show the result, the "
        "mixed range shaded."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "mix"
    RETURN_TYPES = (DITTO_MOTION,)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("motion_a with the chosen parts from motion_b; edit, save or render it.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        what = "Take from motion_b"
        return {
            "required": {
                "motion_a": (DITTO_MOTION, {"tooltip": "The base performance (e.g. DiT Motion Sampler on speech): "
                                                       "everything not taken from motion_b, and its settings."}),
                "motion_b": (DITTO_MOTION, {"tooltip": "The performance to take parts from (e.g. Extract Driving "
                                                       "Motion on a video)."}),
                **{p: _toggle(p, p in MIX_DEFAULT_PARTS, what) for p in PARTS},
                "start": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES,
                                  "tooltip": "First frame where motion_b's parts are used (25 frames per second)."}),
                "end": ("INT", {"default": -1, "min": -1, "max": MAX_FRAMES,
                                "tooltip": "Frame after the mixed range; -1 = to the end."}),
                "ease_in": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES,
                                    "tooltip": "Frames at the start of the range over which motion_b's parts fade in "
                                               "(smoothstep)."}),
                "ease_out": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES,
                                     "tooltip": "Frames at the end of the range over which they fade back to "
                                                "motion_a's."}),
                "length": (
                    list(LENGTH_MODES),
                    {"default": "hold",
                     "tooltip": "When the motions differ in length: motion_a is the timeline; a shorter motion_b "
                                "is extended by loop, ping_pong (back and forth) or hold (its last frame), a longer "
                                "one is cut; trim cuts both to the shorter one."},
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, head_pose: Any = None, translation: Any = None, eyes: Any = None, brows: Any = None,
                        lips: Any = None, expression: Any = None, start: Any = None, end: Any = None) -> bool | str:
        """Before the workflow runs (ComfyUI passes these widgets' values; None for one fed by a link): at least one
        part toggle on, and a frame range that ends after it starts (as the library checks it)."""
        ok = _check_toggles((head_pose, translation, eyes, brows, lips, expression), "Mix Motion")
        if ok is not True or start is None or end is None:
            return ok
        try:
            start = check_int("start", start, 0, MAX_FRAMES)
            end = check_int("end", end, -1, MAX_FRAMES)
        except ValueError as e:
            return str(e)
        if end != -1 and end <= start:
            return f"end must be -1 (to the end) or a frame after start ({start}), got {end}"
        return True

    def mix(self, motion_a: Any, motion_b: Any, start: int, end: int, ease_in: int, ease_out: int, length: str,
            **toggles: Any) -> dict[str, Any]:
        from ditto_core.motion import mix_motions

        parts = selected_parts(toggles, "Mix Motion")
        check_choice("length", length, LENGTH_MODES)
        out = mix_motions(motion_a, motion_b, parts, start=start, end=end, ease_in=ease_in, ease_out=ease_out,
                          length=length)
        warnings = []
        na, nb = int(motion_a.num_frames), int(motion_b.num_frames)
        if na != nb:
            if length == "trim":
                warnings.append(f"motion_a has {na} frames, motion_b {nb}: both cut to {out.num_frames}")
            elif nb > na:
                warnings.append(f"motion_a has {na} frames, motion_b {nb}: motion_b is cut to motion_a's {na}")
            else:
                how = {"loop": "loops", "ping_pong": "plays back and forth", "hold": "holds its last frame"}[length]
                warnings.append(f"motion_a has {na} frames, motion_b {nb}: motion_b {how} to {out.num_frames}")
        return {"ui": motion_ui(out, {"warnings": warnings}), "result": (out,)}


# ------------------------------------------------------------------------------------------------ preview
class DittoPreviewMotion:
    DESCRIPTION = (
        "Check a performance before the slow render: every frame (or every n-th) of the motion drawn as keypoints "
        "on the source's 512x512 face crop (grey rings: the source; dots: where the motion moves them, lips red, "
        "eyes green, brows yellow, the rest blue), with the frame number and the head pose in degrees. No warping "
        "or decoding: about a millisecond per frame. Connect the IMAGE to Preview Image."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "preview"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    OUTPUT_TOOLTIPS = ("One 512x512 keypoint picture per previewed frame (IMAGE batch).",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                "source": (DITTO_SOURCE, {"tooltip": "From Extract Source Motion: the face the motion is drawn on."}),
                "motion": (DITTO_MOTION, {"tooltip": "The performance to preview (sampler, Extract Driving Motion, "
                                                     "Mix Motion, Edit Motion or Load Motion)."}),
                "every": ("INT", {"default": 1, "min": 1, "max": MAX_FRAMES,
                                  "tooltip": "Preview every n-th frame (1 = every frame; 25 = one per second)."}),
                "max_frames": ("INT", {"default": 250, "min": 1, "max": 10_000,
                                       "tooltip": "Most pictures in the batch (each 512x512 picture takes 3 MB as an "
                                                  "IMAGE); the first ones are kept."}),
            },
        }

    def preview(self, models: Any, source: Any, motion: Any, every: int, max_frames: int) -> tuple[Any]:
        from ditto_core.motion import Motion
        from ditto_core.runtime import preview_motion

        every = check_int("every", every, 1, MAX_FRAMES)
        cap = check_int("max_frames", max_frames, 1, 10_000)
        if not isinstance(motion, Motion):
            raise ValueError(f"motion: expected a Ditto motion (DITTO_MOTION), got {type(motion).__name__}")
        rows = list(range(0, int(motion.num_frames), every))[:cap]
        bar = ComfyProgress(len(rows))
        frames = preview_motion(models, source, motion, frame_indices=rows, progress=bar.progress, cancel=bar.cancel)
        return (u8_to_image(frames),)


NODE_CLASS_MAPPINGS = {
    "DittoExtractDrivingMotion": DittoExtractDrivingMotion,
    "DittoMixMotion": DittoMixMotion,
    "DittoPreviewMotion": DittoPreviewMotion,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DittoExtractDrivingMotion": "Extract Driving Motion (Ditto)",
    "DittoMixMotion": "Mix Motion (Ditto)",
    "DittoPreviewMotion": "Preview Motion (Ditto)",
}
