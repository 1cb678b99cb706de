"""Motion from a driving video: frames (any frame rate) -> a 25 fps :class:`~ditto_core.motion.track.Motion`.

Ditto's motion space is LivePortrait's, so the motion extractor turns any face frame into a motion frame of the same
kind the DiT samples. :func:`extract_driving_motion`:

1. tracks one face through the frames as a video source is tracked (:func:`ditto_core.tracking.track_faces`, no
   appearance volumes, no eye mesh), with the detector on every frame: a frame without a face repeats the last
   tracked one (a warning gives the count); a video with no face at all is refused;
2. runs the motion extractor on every crop (the raw motion, as :func:`ditto_core.source.source_motion`);
3. optionally smooths it (``smoothing`` frames, centred mean at the video's own rate, every dim);
4. resamples it to 25 fps by the frames' timestamps (:func:`ditto_core.motion.resample.resample_rows`; constant or
   variable frame rate);
5. returns a Motion that drives ``parts`` (:mod:`ditto_core.motion.parts`; default head pose, translation and the
   whole expression), relative to the video's first frame (LivePortrait's relative mode: the source keeps its own
   proportions) or absolute.

The result is the motion type the DiT produces: edits, Mix Motion, save/load, the curves and rendering take it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._util import CancelFn, ProgressFn, moving_average
from ..face.detect import FACE_ORDERS, FaceTooSmallError, NoFaceError
from ..motion.parts import DRIVING_PARTS, parse_parts
from ..motion.resample import check_times, frame_times, resample_rows
from ..motion.track import FPS, Motion
from ..motion.vector import dict_to_motion
from ..validate import OptionError, check_choice, check_int, check_number
from .models import DittoModels
from .options import SourceOptions
from .stages import track_motion

log = logging.getLogger(__name__)

__all__ = ["DRIVING_MODES", "DrivingOptions", "extract_driving_motion"]

#: how a driving motion moves the source: by the change since the video's first frame, or by its absolute values
DRIVING_MODES = ("relative", "absolute")


@dataclass(frozen=True)
class DrivingOptions:
    """How a driving video becomes motion.

    Attributes:
        parts: what the motion drives (:func:`~ditto_core.motion.parts.parse_parts`: names or ``"head_pose,eyes"``).
        mode: "relative" (the change since the video's first frame moves the source, LivePortrait's default) or
            "absolute" (the driving face's pose and expression replace the source's).
        smoothing: centred moving average over this many frames of the video (1 = none).
        face_index, face_order: which face when there are several (as a source's).
        max_frames: frames read from a file at most (-1 = all).
    """

    parts: tuple[str, ...] | str = DRIVING_PARTS
    mode: str = "relative"
    smoothing: int = 1
    face_index: int = 0
    face_order: str = "size"
    max_frames: int = -1

    def __post_init__(self) -> None:
        o = "DrivingOptions."
        parts = parse_parts(self.parts, o + "parts")
        if parts is None:
            raise OptionError(o + "parts", "part names", self.parts, "a driving video has no official parts; name them")
        object.__setattr__(self, "parts", parts)
        check_choice(o + "mode", self.mode, DRIVING_MODES)
        object.__setattr__(self, "smoothing", check_int(o + "smoothing", self.smoothing, 1, 1001))
        object.__setattr__(self, "face_index", check_int(o + "face_index", self.face_index, 0, 1023))
        check_choice(o + "face_order", self.face_order, FACE_ORDERS)
        object.__setattr__(self, "max_frames", check_int(o + "max_frames", self.max_frames, -1))
        if self.max_frames == 0:
            raise OptionError(o + "max_frames", "-1 (all frames) or a number of frames >= 1", 0)


def extract_driving_motion(
    models: DittoModels,
    frames_rgb_u8: np.ndarray | Sequence[np.ndarray],
    fps: float | None = None,
    times: np.ndarray | Sequence[float] | None = None,
    options: DrivingOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Motion:
    """Driving video frames ``(N, H, W, 3)`` uint8 RGB -> a 25 fps :class:`Motion` (module doc).

    The frames' timing is ``times`` (``(N,)`` seconds, for a variable frame rate) or a constant ``fps``; one of them
    is required. ``progress(done, total)`` per tracked frame; ``cancel()`` before each may raise.
    """
    opts = options or DrivingOptions()
    frames = np.asarray(frames_rgb_u8) if isinstance(frames_rgb_u8, np.ndarray) else np.stack(list(frames_rgb_u8))
    if frames.ndim == 3:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise OptionError("driving frames", "(N, H, W, 3) uint8 RGB video frames", f"{frames.shape} {frames.dtype}")
    n = int(frames.shape[0])
    if times is not None:
        t = check_times(times, n, "driving timestamps")
    elif fps is not None:
        rate_in = check_number("driving fps", fps, 0.1, 1000.0)
        t = frame_times(n, rate_in)
    else:
        raise OptionError("driving fps", "the driving video's frame rate (or its frame timestamps)", None)
    try:
        track, tracked = track_motion(models, frames, SourceOptions(face_index=opts.face_index,
                                      face_order=opts.face_order, smoothing=1), hold_missing=True,
                                      progress=progress, cancel=cancel)
    except (NoFaceError, FaceTooSmallError) as e:
        raise type(e)(f"driving video: {e}") from None
    if track.missing:
        log.warning("Ditto driving video: no face in %d of %d frames; those frames hold the last tracked motion",
                    track.missing, n)
    raw = tracked.x_s_info_raw
    rows = dict_to_motion({k: v.detach().float().cpu() for k, v in raw.items()})
    if opts.smoothing > 1:
        rows = moving_average(rows, opts.smoothing)
    motion = resample_rows(rows, t, FPS)
    relative = opts.mode == "relative"
    rate = (n - 1) / t[-1] if n > 1 and t[-1] > 0 else FPS
    return Motion(
        motion=motion,
        reference=motion[0].clone() if relative else None,
        parts=opts.parts,
        relative=relative,
        smoothing=opts.smoothing,
        fps=FPS,
        meta={"source": "driving video", "mode": opts.mode, "frames_in": str(n), "fps_in": f"{rate:.3f}",
              "missing_faces": str(track.missing)},
    )

