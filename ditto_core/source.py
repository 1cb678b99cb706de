"""The source: the face to animate, registered once. Image or video frames -> a :class:`Source`.

:class:`Source` is the immutable composition of four separate steps, each a public function:

1. :func:`ditto_core.tracking.track_faces` -> :class:`~ditto_core.tracking.FaceTrack` (crops, ``M_c2o``, landmarks);
2. :func:`source_motion` -> :class:`SourceMotion`: the motion extractor on each ``input256`` (``x_s_info``), mean-
   filtered over time for a video (window ``smoothing``, 13, truncated at the ends: :func:`smooth_x_s_info`);
   ``sc`` is frame 0's raw (unsmoothed) ``kp``;
3. :func:`appearance_volumes` -> ``f_s`` ``(N, 32, 16, 64, 64)``: the appearance extractor (8 MiB per frame), run on
   the device batch by batch, each batch's volumes kept on the host (pinned for CUDA): device memory is bounded by
   the batch, not by the source's length (the renderer gets each batch's volumes:
   :func:`ditto_core.render.compositor.volumes_for_batch`);
4. :func:`eye_features_of` -> :class:`EyeFeatures`: the 478 mesh points on each 512 crop -> ``eye_open`` (2) and
   ``eye_ball`` (6).

:func:`register_source` runs all four (as the official ``AvatarRegistrar`` / ``Source2Info``). Tracking a driving
video needs only the first two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._util import CancelFn, ProgressFn, moving_average
from .face import FaceModels
from .face.detect import DEFAULT_MIN_FACE_SIZE, FaceOrder
from .face.eyes import MeshLandmarker, eye_features
from .render.renderer import autocast_context
from .tracking import FaceTrack, crop_to_input256, track_faces

__all__ = [
    "X_S_KEYS",
    "EyeFeatures",
    "FaceTrack",
    "Source",
    "SourceMotion",
    "appearance_volumes",
    "crop_to_input256",
    "eye_features_of",
    "host_volumes",
    "input256_to_tensor",
    "register_source",
    "smooth_x_s_info",
    "source_motion",
    "track_faces",
]

#: the motion extractor's outputs, in its output order
X_S_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")

log = logging.getLogger("ditto")


@dataclass(frozen=True)
class SourceMotion:
    """The motion of a tracked face: torch float32 on the extractor's device.

    Attributes:
        x_s_info: ``{pitch, yaw, roll: (N, 66) bin logits, t (N, 3), exp (N, 63), scale (N, 1), kp (N, 63)}``,
            smoothed over time for a video.
        x_s_info_raw: the same before smoothing.
        sc: ``(63,)`` frame 0's raw ``kp`` (the DiT's source condition).
    """

    x_s_info: dict[str, torch.Tensor]
    x_s_info_raw: dict[str, torch.Tensor]
    sc: torch.Tensor

    @property
    def num_frames(self) -> int:
        return int(self.x_s_info["kp"].shape[0])

    def frame(self, i: int) -> dict[str, torch.Tensor]:
        """Frame ``i``'s smoothed motion as ``(1, dim)`` tensors."""
        return {k: v[i : i + 1] for k, v in self.x_s_info.items()}


@dataclass(frozen=True)
class EyeFeatures:
    """``lmk478`` ``(N, 478, 3)`` mesh points (normalised by the crop's W, H, W); ``eye_open`` ``(N, 2)``,
    ``eye_ball`` ``(N, 6)`` torch float32; ``path`` "onnx" or "mediapipe"."""

    lmk478: np.ndarray
    eye_open: torch.Tensor
    eye_ball: torch.Tensor
    path: str


@dataclass(frozen=True)
class Source:
    """A registered source: one face through N frames (N = 1 for an image). Immutable, built eagerly by
    :func:`register_source`.

    numpy (image geometry, for cv2, from :attr:`track`): ``frames`` (N, H, W, 3) uint8 RGB, ``crops`` (N, 512, 512,
    3) uint8, ``M_c2o`` (N, 3, 3) float32 crop-to-frame, ``input256`` (N, 256, 256, 3) uint8, ``lmk203`` (N, 203, 2),
    ``det_box`` (5,); ``lmk478`` (N, 478, 3).

    torch float32 on the registration device: ``x_s_info`` / ``x_s_info_raw`` / ``sc`` (from :attr:`motion`),
    ``eye_open`` (N, 2), ``eye_ball`` (N, 6). ``f_s`` (N, 32, 16, 64, 64) float32, the appearance volumes (8 MiB per
    frame), on the HOST (CPU memory; pinned when registered for CUDA): the renderer receives one batch of them at a
    time (:func:`ditto_core.render.compositor.volumes_for_batch`), so a long video source costs no device memory.
    A Source built by hand may hold them on a device; everything that reads them works either way.
    """

    track: FaceTrack
    motion: SourceMotion
    f_s: torch.Tensor
    eyes: EyeFeatures
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.track.is_image

    @property
    def num_frames(self) -> int:
        return self.track.num_frames

    frames = property(lambda self: self.track.frames)
    crops = property(lambda self: self.track.crops)
    M_c2o = property(lambda self: self.track.M_c2o)
    input256 = property(lambda self: self.track.input256)
    lmk203 = property(lambda self: self.track.lmk203)
    det_box = property(lambda self: self.track.det_box)
    x_s_info = property(lambda self: self.motion.x_s_info)
    x_s_info_raw = property(lambda self: self.motion.x_s_info_raw)
    sc = property(lambda self: self.motion.sc)
    lmk478 = property(lambda self: self.eyes.lmk478)
    eye_open = property(lambda self: self.eyes.eye_open)
    eye_ball = property(lambda self: self.eyes.eye_ball)

    def x_s_info_frame(self, i: int) -> dict[str, torch.Tensor]:
        """Frame ``i``'s source motion as (1, dim) tensors."""
        return self.motion.frame(i)

    def source_infos(self) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """What the stitcher takes: frame 0's motion for an image, every frame's for a video."""
        if self.is_image:
            return self.motion.frame(0)
        return [self.motion.frame(i) for i in range(self.num_frames)]


def input256_to_tensor(input256: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 256, 256, 3) uint8 -> (B, 3, 256, 256) float32 in [0, 1] on ``device`` (uint8 / 255 in float32)."""
    x = np.asarray(input256)
    if x.ndim == 3:
        x = x[None]
    return torch.from_numpy(np.ascontiguousarray((x.astype(np.float32) / 255.0).transpose(0, 3, 1, 2))).to(device)


def smooth_x_s_info(x_s_info: dict[str, torch.Tensor], k: int = 13) -> dict[str, torch.Tensor]:
    """Temporal mean filter of per-frame source motion (official ``smooth_x_s_info_lst``).

    Frame i becomes the mean of frames ``[max(0, i - k // 2), min(N, i + k // 2 + 1))`` for every key; the window
    is truncated (not padded) at the ends. ``x_s_info`` values are (N, ...) tensors.
    """
    if k < 1:
        raise ValueError(f"smoothing: expected a window of at least 1 frame, got {k}")
    return {key: moving_average(v, k) for key, v in x_s_info.items()}


def _batches(input256: np.ndarray, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The frames as float batches on ``device``, one at a time (the device holds one batch of inputs)."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    for s in range(0, input256.shape[0], batch_size):
        yield input256_to_tensor(input256[s : s + batch_size], device)


def source_motion(
    track: FaceTrack,
    motion_extractor: nn.Module,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    smoothing: int = 13,
    batch_size: int = 4,
) -> SourceMotion:
    """The motion extractor on every tracked frame (under ``precision`` autocast), smoothed over ``smoothing`` frames
    for a video (1 disables)."""
    dev = torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in X_S_KEYS}
    with torch.inference_mode():
        for x in _batches(track.input256, batch_size, dev):
            with autocast_context(dev, precision):
                outs = motion_extractor(x)
            if len(outs) != len(X_S_KEYS):
                raise ValueError(f"motion_extractor: expected {len(X_S_KEYS)} outputs {X_S_KEYS}, got {len(outs)}")
            for k, o in zip(X_S_KEYS, outs):
                parts[k].append(o.float().reshape(o.shape[0], -1))
    raw = {k: torch.cat(v, 0) for k, v in parts.items()}
    n = track.num_frames
    smo = smooth_x_s_info(raw, smoothing) if (n > 1 and smoothing > 1) else {k: v.clone() for k, v in raw.items()}
    return SourceMotion(x_s_info=smo, x_s_info_raw=raw, sc=raw["kp"][0].reshape(-1).clone())


def host_volumes(shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """An empty float32 host (CPU) tensor for volumes computed on ``device``: page-locked (pinned) when ``device`` is
    CUDA, so that batches go to the GPU asynchronously; ordinary memory otherwise (and when pinning fails: a very
    long source may not get that much page-locked memory)."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        try:
            return torch.empty(tuple(shape), dtype=torch.float32, pin_memory=True)
        except RuntimeError as e:  # out of page-locked memory: ordinary host memory still works (synchronous copies)
            log.warning("ditto: cannot pin %.0f MiB of host memory for the appearance volumes (%s); using ordinary "
                        "memory", 4 * float(np.prod(shape)) / 2**20, e)
    return torch.empty(tuple(shape), dtype=torch.float32)


def appearance_volumes(
    track: FaceTrack,
    appearance: nn.Module,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    batch_size: int = 4,
) -> torch.Tensor:
    """The appearance extractor on every tracked frame -> ``f_s`` ``(N, 32, 16, 64, 64)`` float32 on the HOST.

    The extractor runs on ``device`` under ``precision`` autocast, ``batch_size`` frames at a time; each batch's
    volumes are copied to the host (into pinned memory for CUDA, see :func:`host_volumes`) before the next batch, so
    the device holds one batch of them at most. The values are the extractor's float32 output, unchanged."""
    dev = torch.device(device)
    n = int(track.input256.shape[0])
    out: torch.Tensor | None = None
    start = 0
    with torch.inference_mode():
        for x in _batches(track.input256, batch_size, dev):
            with autocast_context(dev, precision):
                y = appearance(x)
            y = y.float()
            if out is None:
                out = host_volumes((n, *y.shape[1:]), dev)
            out[start : start + y.shape[0]].copy_(y)  # device -> host, synchronous
            start += y.shape[0]
            del y
    assert out is not None and start == n
    return out


def eye_features_of(track: FaceTrack, face_models: FaceModels, device: torch.device | str = "cpu") -> EyeFeatures:
    """The 478 mesh points on every 512 crop -> :class:`EyeFeatures`. Raises
    :class:`ditto_core.face.NoFaceError` when BlazeFace finds no face in a crop."""
    lmk478 = np.stack([face_models.lmk478(crop)[0] for crop in track.crops])
    eye_open, eye_ball = eye_features(lmk478)
    dev = torch.device(device)
    path = "onnx" if isinstance(face_models.lmk478, MeshLandmarker) else "mediapipe"
    return EyeFeatures(lmk478, torch.from_numpy(eye_open).to(dev), torch.from_numpy(eye_ball).to(dev), path)


def register_source(
    frames_rgb_u8: np.ndarray | Sequence[np.ndarray],
    face_models: FaceModels,
    appearance: nn.Module,
    motion_extractor: nn.Module,
    device: torch.device | str = "cpu",
    crop_scale: float = 2.3,
    vy_ratio: float = -0.125,
    face_index: int = 0,
    face_order: FaceOrder = "size",
    region_mask: np.ndarray | None = None,
    smo_k_s: int = 13,
    *,
    rotate: bool = True,
    min_face_size: float = DEFAULT_MIN_FACE_SIZE,
    max_size: int = 1920,
    is_image: bool | None = None,
    precision: str = "fp32",
    batch_size: int = 4,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Source:
    """Register an image ((H, W, 3) uint8 RGB) or video frames ((N, H, W, 3) or a list) -> :class:`Source`.

    Tracking options as :func:`~ditto_core.tracking.track_faces`; ``appearance`` (AppearanceFeatureExtractor) and
    ``motion_extractor`` (MotionExtractor) run on ``device`` under ``precision`` autocast (fp32 reproduces the golden
    data; the official PyTorch path uses fp16); ``smo_k_s``: the temporal window of a video's motion (official name;
    1 disables). ``progress(done, total)`` after each tracked frame; ``cancel()`` before each frame may raise.

    Raises :class:`ditto_core.face.NoFaceError` / :class:`ditto_core.face.FaceTooSmallError` when frame 0 has no
    usable face, or when BlazeFace finds no face in a crop.
    """
    track = track_faces(
        frames_rgb_u8, face_models, crop_scale, vy_ratio, face_index, face_order, region_mask, rotate=rotate,
        min_face_size=min_face_size, max_size=max_size, is_image=is_image, progress=progress, cancel=cancel,
    )
    eyes = eye_features_of(track, face_models, device)
    motion = source_motion(track, motion_extractor, device, precision, smo_k_s, batch_size)
    f_s = appearance_volumes(track, appearance, device, precision, batch_size)
    meta = {
        "crop_scale": crop_scale,
        "vy_ratio": vy_ratio,
        "rotate": rotate,
        "smo_k_s": smo_k_s,
        "face_index": face_index,
        "face_order": face_order,
        "eye_path": eyes.path,
    }
    return Source(track=track, motion=motion, f_s=f_s, eyes=eyes, meta=meta)
