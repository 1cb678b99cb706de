"""Source registration: image or video frames -> crops, crop matrices, source motion, feature volumes, eye features.

Per frame, as the official ``AvatarRegistrar`` / ``Source2Info``:

1. first frame (or the image): SCRFD detection, one face selected (largest by default), 106 landmarks on its box;
   later video frames are tracked: they start from the previous frame's 203 points instead;
2. 224 crop around those points (scale 1.5, vy -0.1) -> 203 landmarks;
3. 512 crop around the 203 points (``crop_scale`` 2.3, vx 0, ``vy_ratio`` -0.125, rotation on) -> ``crops``, ``M_c2o``.
   The official ``crop_vx_ratio`` is never forwarded to the crop, so the horizontal offset is always 0 here too;
4. 478 mesh points on the 512 crop -> ``eye_open`` (2) and ``eye_ball`` (6);
5. ``cv2.resize(crop, (256, 256), INTER_AREA) / 255`` as (1, 3, 256, 256) -> motion extractor (``x_s_info``) and
   appearance extractor (``f_s``).

A video source's ``x_s_info`` is then mean-filtered over time (window ``smo_k_s``, 13, truncated at the ends:
``smooth_x_s_info``); ``sc`` is frame 0's raw (unsmoothed) ``kp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from .face import FaceModels
from .face.crop import check_resize, crop_image
from .face.detect import DEFAULT_MIN_FACE_SIZE, FaceOrder, select_face
from .face.eyes import MeshLandmarker, eye_features
from .render import autocast_context

__all__ = ["Source", "register_source", "smooth_x_s_info", "X_S_KEYS", "crop_to_input256", "input256_to_tensor"]

#: the motion extractor's outputs, in its output order
X_S_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


@dataclass
class Source:
    """A registered source: N frames (N = 1 for an image).

    numpy (image geometry, for cv2): ``frames`` (N, H, W, 3) uint8 RGB (after the loader's size rule),
    ``crops`` (N, 512, 512, 3) uint8, ``M_c2o`` (N, 3, 3) float32 crop-to-frame, ``input256`` (N, 256, 256, 3)
    uint8 (the network input before /255), ``lmk203`` (N, 203, 2) and ``lmk478`` (N, 478, 3) (normalised by the
    crop's W, H, W), ``det_box`` (5,) the frame-0 detector box (x1, y1, x2, y2, score).

    torch float32 on the registration device: ``x_s_info`` {pitch, yaw, roll: (N, 66) bin logits, t (N, 3),
    exp (N, 63), scale (N, 1), kp (N, 63)} (smoothed for a video), ``x_s_info_raw`` (the same before smoothing),
    ``f_s`` (N, 32, 16, 64, 64) or None when not computed yet (see :meth:`compute_f_s`), ``eye_open`` (N, 2),
    ``eye_ball`` (N, 6), ``sc`` (63,) = frame 0's raw ``kp``.
    """

    frames: np.ndarray
    crops: np.ndarray
    M_c2o: np.ndarray
    input256: np.ndarray
    lmk203: np.ndarray
    lmk478: np.ndarray
    det_box: np.ndarray
    x_s_info: dict[str, torch.Tensor]
    x_s_info_raw: dict[str, torch.Tensor]
    eye_open: torch.Tensor
    eye_ball: torch.Tensor
    sc: torch.Tensor
    is_image: bool
    f_s: torch.Tensor | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def x_s_info_frame(self, i: int) -> dict[str, torch.Tensor]:
        """Frame ``i``'s source motion as (1, dim) tensors."""
        return {k: v[i : i + 1] for k, v in self.x_s_info.items()}

    def compute_f_s(
        self,
        appearance: nn.Module,
        device: torch.device | str | None = None,
        precision: str = "fp32",
        batch_size: int = 4,
    ) -> torch.Tensor:
        """Compute (and keep) ``f_s`` (N, 32, 16, 64, 64) float32 from ``input256`` with ``appearance``."""
        dev = torch.device(device) if device is not None else self.sc.device
        self.f_s = _run_appearance(appearance, self.input256, dev, precision, batch_size)
        return self.f_s


def crop_to_input256(crop_u8: np.ndarray) -> np.ndarray:
    """(512, 512, 3) uint8 crop -> (256, 256, 3) uint8 with ``cv2.INTER_AREA`` (the official network input size)."""
    return cv2.resize(np.asarray(crop_u8), (256, 256), interpolation=cv2.INTER_AREA)


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
        raise ValueError(f"smo_k_s: expected a window of at least 1 frame, got {k}")
    out: dict[str, torch.Tensor] = {}
    half = k // 2
    for key, v in x_s_info.items():
        n = v.shape[0]
        rows = [v[max(0, i - half) : min(n, i + half + 1)].mean(0) for i in range(n)]
        out[key] = torch.stack(rows, 0) if rows else v.clone()
    return out


def _frames_array(frames_rgb_u8: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, bool]:
    """(N, H, W, 3) uint8 and whether a single (H, W, 3) image was passed."""
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


def _run_motion(
    motion_extractor: nn.Module, input256: np.ndarray, device: torch.device, precision: str, batch_size: int
) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in X_S_KEYS}
    with torch.inference_mode():
        for s in range(0, input256.shape[0], batch_size):
            x = input256_to_tensor(input256[s : s + batch_size], device)
            with autocast_context(device, precision):
                outs = motion_extractor(x)
            if len(outs) != len(X_S_KEYS):
                raise ValueError(f"motion_extractor: expected {len(X_S_KEYS)} outputs {X_S_KEYS}, got {len(outs)}")
            for k, o in zip(X_S_KEYS, outs):
                parts[k].append(o.float().reshape(o.shape[0], -1))
    return {k: torch.cat(v, 0) for k, v in parts.items()}


def _run_appearance(
    appearance: nn.Module, input256: np.ndarray, device: torch.device, precision: str, batch_size: int
) -> torch.Tensor:
    parts = []
    with torch.inference_mode():
        for s in range(0, input256.shape[0], batch_size):
            x = input256_to_tensor(input256[s : s + batch_size], device)
            with autocast_context(device, precision):
                parts.append(appearance(x).float())
    return torch.cat(parts, 0)


def _resize_mask(mask: np.ndarray, orig_hw: tuple[int, int], new_hw: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.shape == new_hw:
        return m
    if m.shape == orig_hw:
        return cv2.resize(m.astype(np.float32), (new_hw[1], new_hw[0]), interpolation=cv2.INTER_NEAREST)
    raise ValueError(f"region_mask: expected shape {orig_hw} (the source frame), got {m.shape}")


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
    compute_f_s: bool = True,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], None] | None = None,
) -> Source:
    """Register an image ((H, W, 3) uint8 RGB) or video frames ((N, H, W, 3) or a list) -> :class:`Source`.

    ``face_models``: the aux ONNX models; ``appearance`` (AppearanceFeatureExtractor) and ``motion_extractor``
    (MotionExtractor) run on ``device`` under ``precision`` autocast (fp32 reproduces the golden data; the official
    PyTorch path uses fp16). ``crop_scale``, ``vy_ratio``, ``rotate``: the 512 crop. ``face_index``,
    ``face_order``, ``region_mask`` ((H, W), non-zero = allowed face centres), ``min_face_size`` (px): which face
    on frame 0 (see :func:`ditto_core.face.select_face`; the default is the official largest face).
    ``smo_k_s``: temporal window of the video x_s_info filter (1 disables). ``max_size``: the official loader's
    size rule (long side capped at 1920 px, odd sizes made even, :func:`check_resize`), applied to every frame.
    ``is_image``: default True for a single image or a single frame. ``compute_f_s=False`` leaves ``f_s`` to
    :meth:`Source.compute_f_s`. ``progress(done, total)`` after each frame; ``cancel()`` before each frame may raise.

    Raises :class:`ditto_core.face.NoFaceError` / :class:`ditto_core.face.FaceTooSmallError` when frame 0 has no
    usable face, or when BlazeFace finds no face in a crop.
    """
    raw, single = _frames_array(frames_rgb_u8)
    n = raw.shape[0]
    dev = torch.device(device)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    first = check_resize(raw[0], max_size)
    if first.shape == raw.shape[1:]:
        frames = raw  # the size rule changes nothing (all frames share one size): no copy
    else:
        frames = np.stack([first] + [check_resize(f, max_size) for f in raw[1:]])
    orig_hw, new_hw = raw.shape[1:3], frames.shape[1:3]
    mask = _resize_mask(region_mask, orig_hw, new_hw) if region_mask is not None else None

    crops, m_c2o, lmk203s, lmk478s, inputs = [], [], [], [], []
    det_box = np.zeros(5, dtype=np.float32)
    prev: np.ndarray | None = None
    for i in range(n):
        if cancel is not None:
            cancel()
        img = frames[i]
        if prev is None:
            boxes, _ = face_models.detector.detect_faces(img)
            k = select_face(
                boxes,
                index=face_index,
                order=face_order,
                region_mask=mask,
                min_size=min_face_size,
                det_thresh=face_models.detector.config.det_thresh,
            )
            det_box = boxes[k]
            track_pts = face_models.lmk106(img, det_box)
        else:
            track_pts = prev
        lmk203 = face_models.lmk203.track(img, track_pts).lmk203
        crop, m = crop_image(img, lmk203, dsize=512, scale=crop_scale, vx_ratio=0.0, vy_ratio=vy_ratio, rotate=rotate)
        lmk478 = face_models.lmk478(crop)
        crops.append(crop)
        m_c2o.append(m)
        lmk203s.append(lmk203)
        lmk478s.append(lmk478[0])
        inputs.append(crop_to_input256(crop))
        prev = lmk203
        if progress is not None:
            progress(i + 1, n)

    input256 = np.stack(inputs)
    lmk478_arr = np.stack(lmk478s)
    eye_open, eye_ball = eye_features(lmk478_arr)
    x_raw = _run_motion(motion_extractor, input256, dev, precision, batch_size)
    x_smo = smooth_x_s_info(x_raw, smo_k_s) if (n > 1 and smo_k_s > 1) else {k: v.clone() for k, v in x_raw.items()}
    f_s = _run_appearance(appearance, input256, dev, precision, batch_size) if compute_f_s else None
    return Source(
        frames=frames,
        crops=np.stack(crops),
        M_c2o=np.stack(m_c2o),
        input256=input256,
        lmk203=np.stack(lmk203s),
        lmk478=lmk478_arr,
        det_box=det_box,
        x_s_info=x_smo,
        x_s_info_raw=x_raw,
        eye_open=torch.from_numpy(eye_open).to(dev),
        eye_ball=torch.from_numpy(eye_ball).to(dev),
        sc=x_raw["kp"][0].reshape(-1).clone(),
        is_image=bool(single or n == 1) if is_image is None else bool(is_image),
        f_s=f_s,
        meta={
            "crop_scale": crop_scale,
            "vy_ratio": vy_ratio,
            "rotate": rotate,
            "smo_k_s": smo_k_s,
            "face_index": face_index,
            "face_order": face_order,
            "eye_path": "onnx" if isinstance(face_models.lmk478, MeshLandmarker) else "mediapipe",
        },
    )
