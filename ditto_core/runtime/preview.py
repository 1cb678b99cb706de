"""A motion drawn as keypoints on the source crop: check a performance before the expensive render.

:func:`preview_motion` plans the keypoints exactly as rendering does (:class:`~ditto_core.runtime.keypoints.
KeypointPlanner`: the motion's parts, controls, reference frame, stitching) and draws, on each frame's 512x512 source
crop, the source keypoints ``x_s`` (grey rings) and the driven keypoints ``x_d`` (dots coloured by part: lips red,
eyes green, brows yellow, the rest blue) joined by a line, with the frame number and the head pose in degrees. No
warping or decoding runs: about a millisecond per frame on a CPU.

Keypoints live in the crop's normalised coordinates (x right, y down, -1..1 across the crop), so pixel
``= (x + 1) / 2 * 512``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .._util import CancelFn, ProgressFn, check_cancel, mirror_index
from ..motion.controls import ClipControls
from ..motion.parts import BROW_KPS
from ..motion.track import Motion
from ..motion.vector import EYE_KPS, LIP_KPS, NUM_KP, PITCH, ROLL, YAW, bins_to_degrees
from ..source import Source
from ..validate import OptionError, check_int
from .keypoints import KeypointPlanner
from .models import DittoModels

__all__ = ["CROP_SIZE", "draw_keypoints", "keypoints_to_pixels", "preview_motion"]

CROP_SIZE = 512
#: RGB colour of each keypoint group
_COLOURS = {"lips": (235, 64, 52), "eyes": (60, 200, 80), "brows": (240, 200, 40), "other": (70, 140, 240)}


def _kp_colour(k: int) -> tuple[int, int, int]:
    if k in LIP_KPS:
        return _COLOURS["lips"]
    if k in EYE_KPS:
        return _COLOURS["eyes"]
    if k in BROW_KPS:
        return _COLOURS["brows"]
    return _COLOURS["other"]


def keypoints_to_pixels(kp: torch.Tensor | np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """``(..., 21, 3)`` normalised keypoints -> ``(..., 21, 2)`` float pixel positions on a ``size`` crop."""
    k = np.asarray(kp.detach().cpu() if isinstance(kp, torch.Tensor) else kp, dtype=np.float64)
    return (k[..., :2] + 1.0) * 0.5 * size


def draw_keypoints(crop: np.ndarray, x_s: np.ndarray, x_d: np.ndarray, label: str = "") -> np.ndarray:
    """A copy of ``crop`` ``(S, S, 3)`` uint8 RGB with the source keypoints ``x_s`` and driven keypoints ``x_d``
    (``(21, 3)`` normalised each) and ``label`` drawn on it."""
    img = np.ascontiguousarray(crop, dtype=np.uint8).copy()
    size = img.shape[0]
    ps, pd = keypoints_to_pixels(x_s, size), keypoints_to_pixels(x_d, size)
    r = max(2, size // 128)
    for k in range(NUM_KP):
        a = (int(round(ps[k, 0])), int(round(ps[k, 1])))
        b = (int(round(pd[k, 0])), int(round(pd[k, 1])))
        colour = _kp_colour(k)
        cv2.circle(img, a, r + 2, (200, 200, 200), 1, cv2.LINE_AA)
        cv2.line(img, a, b, colour, 1, cv2.LINE_AA)
        cv2.circle(img, b, r, colour, -1, cv2.LINE_AA)
    if label:
        scale = size / 1024
        cv2.putText(img, label, (8, int(28 * size / 512)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, label, (8, int(28 * size / 512)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return img


def preview_motion(
    models: DittoModels,
    source: Source,
    motion: Motion,
    frame_indices: Sequence[int] | None = None,
    every: int = 1,
    clip: ClipControls | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> np.ndarray:
    """``(K, 512, 512, 3)`` uint8 RGB previews of ``motion`` on ``source`` (module doc): the frames
    ``frame_indices`` (default every ``every``-th frame from 0), with the job's whole-clip controls ``clip``.
    ``progress(done, total)`` after each drawn frame; ``cancel()`` before each may raise."""
    if not isinstance(motion, Motion):
        raise OptionError("motion", "a Ditto motion (DITTO_MOTION)", type(motion).__name__)
    n = motion.num_frames
    every = check_int("every", every, 1, 1_000_000)
    sel = list(range(0, n, every)) if frame_indices is None else [int(i) for i in frame_indices]
    if not sel or any(not 0 <= i < n for i in sel):
        raise OptionError("frame_indices", f"frames in 0..{n - 1}", list(frame_indices or []))
    kp = KeypointPlanner.for_motion(models, source, motion, clip).plan(motion.motion, motion.frame_controls())
    x_s, x_d = kp.select(sel)
    x_s, x_d = x_s.float().cpu().numpy(), x_d.float().cpu().numpy()
    rows = motion.motion[sel]
    deg = {name: bins_to_degrees(rows[:, s]) for name, s in (("pitch", PITCH), ("yaw", YAW), ("roll", ROLL))}
    out = np.empty((len(sel), CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    for j, i in enumerate(sel):
        check_cancel(cancel)
        crop = source.crops[mirror_index(i, source.num_frames)]
        if crop.shape[0] != CROP_SIZE:
            crop = cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
        label = (f"{i}  pitch {float(deg['pitch'][j]):+.1f}  yaw {float(deg['yaw'][j]):+.1f}  "
                 f"roll {float(deg['roll'][j]):+.1f}")
        out[j] = draw_keypoints(crop, x_s[0 if x_s.shape[0] == 1 else j], x_d[j], label)
        if progress is not None:
            progress(j + 1, len(sel))
    return out
