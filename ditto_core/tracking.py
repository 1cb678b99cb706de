"""Face tracking: image or video frames -> one face's crops and crop-to-frame transforms, frame by frame.

As the official ``AvatarRegistrar`` / ``Source2Info`` do it:

1. first frame (or the image): SCRFD detection, one face selected (largest by default), 106 landmarks on its box;
   later video frames are tracked: they start from the previous frame's 203 points instead;
2. 224 crop around those points (scale 1.5, vy -0.1) -> 203 landmarks;
3. 512 crop around the 203 points (``crop_scale`` 2.3, vx 0, ``vy_ratio`` -0.125, rotation on) -> ``crops``, ``M_c2o``.
   The official ``crop_vx_ratio`` is never forwarded to the crop, so the horizontal offset is always 0 here too;
4. ``cv2.resize(crop, (256, 256), INTER_AREA)``: the networks' input.

No network of the method runs here: a tracked video costs crops only (:mod:`ditto_core.source` adds the motion, the
appearance volumes and the eye features).

A driving video (``hold_missing=True``) also runs the detector on every frame, only to know whether a face is there
(the crops still follow the tracked landmarks, so a driving video and a video source give the same crops): a frame
without a face repeats the last tracked frame (the first frames repeat the first face found) and is marked in
:attr:`FaceTrack.found`; after a gap, tracking starts again from the face nearest to where it was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ._util import CancelFn, ProgressFn, check_cancel
from .face import FaceModels
from .face.crop import check_resize, crop_image
from .face.detect import DEFAULT_MIN_FACE_SIZE, FaceOrder, FaceTooSmallError, NoFaceError, select_face
from .errors import InputError

__all__ = ["FaceTrack", "crop_to_input256", "track_faces"]


@dataclass(frozen=True)
class FaceTrack:
    """One face through N frames (N = 1 for an image); numpy, for cv2.

    Attributes:
        frames: ``(N, H, W, 3)`` uint8 RGB after the loader's size rule.
        crops: ``(N, 512, 512, 3)`` uint8 face crops.
        M_c2o: ``(N, 3, 3)`` float32 crop-to-frame transforms.
        input256: ``(N, 256, 256, 3)`` uint8, the networks' input before /255.
        lmk203: ``(N, 203, 2)`` landmarks in frame pixels.
        det_box: ``(5,)`` the first frame's detector box ``(x1, y1, x2, y2, score)``.
        is_image: one still image (True) or video frames (False).
        found: ``(N,)`` bool, whether a face was found on each frame (all True unless tracked with
            ``hold_missing``; frames without one repeat a tracked frame).
    """

    frames: np.ndarray
    crops: np.ndarray
    M_c2o: np.ndarray
    input256: np.ndarray
    lmk203: np.ndarray
    det_box: np.ndarray
    is_image: bool
    found: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def missing(self) -> int:
        """Frames without a face (held)."""
        return 0 if self.found is None else int((~self.found).sum())


def crop_to_input256(crop_u8: np.ndarray) -> np.ndarray:
    """(512, 512, 3) uint8 crop -> (256, 256, 3) uint8 with ``cv2.INTER_AREA`` (the official network input size)."""
    return cv2.resize(np.asarray(crop_u8), (256, 256), interpolation=cv2.INTER_AREA)


def frames_array(frames_rgb_u8: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, bool]:
    """(N, H, W, 3) uint8 and whether a single (H, W, 3) image was passed; ValueError naming ``frames_rgb_u8``."""
    if isinstance(frames_rgb_u8, np.ndarray) and frames_rgb_u8.ndim == 3:
        arr, single = frames_rgb_u8[None], True
    elif isinstance(frames_rgb_u8, np.ndarray):
        arr, single = frames_rgb_u8, False
    else:
        frames = [np.asarray(f) for f in frames_rgb_u8]
        if not frames:
            raise ValueError("frames_rgb_u8: expected at least one frame, got an empty sequence")
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames_rgb_u8: every frame must have the same size, got shapes {sorted(shapes)}")
        arr, single = np.stack(frames), False
    if arr.ndim != 4 or arr.shape[0] < 1 or arr.shape[3] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"frames_rgb_u8: expected an (H, W, 3) image or (N, H, W, 3) frames, uint8 RGB; got {arr.shape} {arr.dtype}"
        )
    return arr, single


def _resize_mask(mask: np.ndarray, orig_hw: tuple[int, int], new_hw: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.dtype.kind not in "biuf" or (m.dtype.kind == "f" and not np.isfinite(m).all()):
        raise InputError(f"region_mask: expected finite numbers in [0, 1] (non-zero = allowed), got dtype {m.dtype}"
                         + (" with NaN or infinite values" if m.dtype.kind == "f" else ""))
    if m.shape == new_hw:
        return m
    if m.shape == orig_hw:
        return cv2.resize(m.astype(np.float32), (new_hw[1], new_hw[0]), interpolation=cv2.INTER_NEAREST)
    raise InputError(f"region_mask: expected shape {orig_hw} (the source frame), got {m.shape}")


def track_faces(
    frames_rgb_u8: np.ndarray | Sequence[np.ndarray],
    face_models: FaceModels,
    crop_scale: float = 2.3,
    vy_ratio: float = -0.125,
    face_index: int = 0,
    face_order: FaceOrder = "size",
    region_mask: np.ndarray | None = None,
    *,
    rotate: bool = True,
    min_face_size: float = DEFAULT_MIN_FACE_SIZE,
    max_size: int = 1920,
    is_image: bool | None = None,
    hold_missing: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> FaceTrack:
    """Track one face through an image ((H, W, 3) uint8 RGB) or video frames ((N, H, W, 3) or a list).

    ``face_models``: the aux ONNX models (detector, 106 and 203 landmarks). ``crop_scale``, ``vy_ratio``, ``rotate``:
    the 512 crop. ``face_index``, ``face_order``, ``region_mask`` ((H, W), non-zero = allowed face centres),
    ``min_face_size`` (px): which face on frame 0 (see :func:`ditto_core.face.select_face`; the default is the official
    largest face). ``max_size``: the official loader's size rule (long side capped at 1920 px, odd sizes made even,
    :func:`check_resize`), applied to every frame. ``is_image``: default True for a single image or a single frame.
    ``hold_missing``: a driving video's rule (module doc): frames without a face are held instead of tracked
    blindly. ``progress(done, total)`` after each frame; ``cancel()`` before each frame may raise.

    Raises :class:`ditto_core.face.NoFaceError` / :class:`ditto_core.face.FaceTooSmallError` when frame 0 has no usable
    face (with ``hold_missing``: when no frame has one).
    """
    raw, single = frames_array(frames_rgb_u8)
    n = raw.shape[0]
    first = check_resize(raw[0], max_size)
    if first.shape == raw.shape[1:]:
        frames = raw  # the size rule changes nothing (all frames share one size): no copy
    else:
        frames = np.stack([first] + [check_resize(f, max_size) for f in raw[1:]])
    orig_hw, new_hw = raw.shape[1:3], frames.shape[1:3]
    mask = _resize_mask(region_mask, orig_hw, new_hw) if region_mask is not None else None

    crops, m_c2o, lmk203s, inputs = [], [], [], []
    found = np.ones(n, dtype=bool)
    det_box = np.zeros(5, dtype=np.float32)
    prev: np.ndarray | None = None
    first_error: Exception | None = None
    for i in range(n):
        check_cancel(cancel)
        img = frames[i]
        if prev is None or hold_missing:
            boxes, _ = face_models.detector.detect_faces(img)
            try:
                k = select_face(boxes, index=face_index, order=face_order, region_mask=mask, min_size=min_face_size,
                                det_thresh=face_models.detector.config.det_thresh)
            except (NoFaceError, FaceTooSmallError) as e:
                if not hold_missing:
                    raise
                first_error = first_error or e
                found[i] = False
                prev = None
                if crops:  # hold the last tracked frame
                    for lst in (crops, m_c2o, lmk203s, inputs):
                        lst.append(lst[-1])
                if progress is not None:
                    progress(i + 1, n)
                continue
            if prev is None and lmk203s:  # a face again after a gap: the one nearest to where it was lost
                last = lmk203s[-1].mean(0)
                centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
                k = int(np.argmin(((centres - last) ** 2).sum(1)))
        if prev is None:
            if not det_box.any():
                det_box = boxes[k]
            track_pts = face_models.lmk106(img, boxes[k])
        else:
            track_pts = prev
        lmk203 = face_models.lmk203.track(img, track_pts).lmk203
        crop, m = crop_image(img, lmk203, dsize=512, scale=crop_scale, vx_ratio=0.0, vy_ratio=vy_ratio, rotate=rotate)
        inp = crop_to_input256(crop)
        if not crops and i > 0:  # hold_missing: the frames before the first face repeat it
            crops += [crop] * i
            m_c2o += [m] * i
            lmk203s += [lmk203] * i
            inputs += [inp] * i
        crops.append(crop)
        m_c2o.append(m)
        lmk203s.append(lmk203)
        inputs.append(inp)
        prev = lmk203
        if progress is not None:
            progress(i + 1, n)
    if not crops:
        assert first_error is not None
        why = str(first_error) if isinstance(first_error, FaceTooSmallError) else "the face detector found none"
        raise type(first_error)(f"no usable face in any of the {n} frames ({why})")
    return FaceTrack(
        frames=frames,
        crops=np.stack(crops),
        M_c2o=np.stack(m_c2o),
        input256=np.stack(inputs),
        lmk203=np.stack(lmk203s),
        det_box=det_box,
        is_image=bool(single or n == 1) if is_image is None else bool(is_image),
        found=found,
    )
