"""The stages before rendering, on loaded models: source -> audio features -> motion.

* :func:`extract_source` -> :class:`~ditto_core.source.Source` (crop, motion, appearance volumes, eye features);
* :func:`track_motion` -> the face track and motion of a video without appearance volumes (a driving video);
* :func:`extract_audio_features` -> :class:`AudioFeatures` ((N, 1024) at 25 fps + voice activity);
* :func:`sample_motion` -> :class:`~ditto_core.motion.track.Motion` (N frames of DiT motion).

Long stages take ``progress(done, total)`` and ``cancel()`` (raises to stop; see :mod:`ditto_core._util`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._util import CancelFn, ProgressFn, fill_defaults
from ..audio import load_audio, voice_activity
from ..audio2motion import Audio2MotionConfig, sample_motion_offline
from ..conditions import ConditionBuilder
from ..motion.track import Motion
from ..motion.vector import dict_to_motion
from ..source import Source, SourceMotion, register_source, source_motion
from ..tracking import FaceTrack, track_faces
from .models import DittoModels
from .options import SamplingOptions, SourceOptions

__all__ = [
    "AudioFeatures",
    "extract_audio_features",
    "extract_source",
    "motion_conditions",
    "sample_motion",
    "source_motion_vector",
    "track_motion",
]


def _source_options(models: DittoModels, options: SourceOptions | None) -> SourceOptions:
    return fill_defaults(options or SourceOptions(), models.release.source)


def _check_frames(frames_rgb_u8: Any) -> np.ndarray:
    frames = np.asarray(frames_rgb_u8)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"source frames: expected (H, W, 3) or (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


def extract_source(
    models: DittoModels,
    frames_rgb_u8: np.ndarray,
    options: SourceOptions | None = None,
    region_mask: np.ndarray | None = None,
    is_image: bool | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Source:
    """An image (H, W, 3) or frames (N, H, W, 3) uint8 RGB -> a registered :class:`Source` (one face).

    ``options``: unset fields take the release's values. ``region_mask`` (H, W) in [0, 1] limits the face search to
    its non-zero area (pick a face in a group photo). ``is_image``: default True for one image or one frame.
    """
    opts = _source_options(models, options)
    return register_source(
        _check_frames(frames_rgb_u8),
        models.face,
        models.appearance,
        models.motion_extractor,
        device=models.device,
        crop_scale=opts.crop_scale,
        vy_ratio=opts.vy_ratio,
        face_index=opts.face_index,
        face_order=opts.face_order,
        region_mask=region_mask,
        smo_k_s=opts.smoothing,
        max_size=opts.max_size,
        is_image=is_image,
        precision=models.precision,
        progress=progress,
        cancel=cancel,
    )


def track_motion(
    models: DittoModels,
    frames_rgb_u8: np.ndarray,
    options: SourceOptions | None = None,
    region_mask: np.ndarray | None = None,
    hold_missing: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[FaceTrack, SourceMotion]:
    """Track one face through video frames (N, H, W, 3) uint8 RGB and extract its motion, without appearance volumes
    or eye features (what a driving video needs): ``(FaceTrack, SourceMotion)``. ``hold_missing``: frames without a
    face repeat the last tracked frame (:func:`~ditto_core.tracking.track_faces`)."""
    opts = _source_options(models, options)
    track = track_faces(
        _check_frames(frames_rgb_u8), models.face, opts.crop_scale, opts.vy_ratio, opts.face_index, opts.face_order,
        region_mask, max_size=opts.max_size, is_image=False, hold_missing=hold_missing, progress=progress,
        cancel=cancel,
    )
    return track, source_motion(track, models.motion_extractor, models.device, models.precision, opts.smoothing)


# ------------------------------------------------------------------------------------------------ audio
@dataclass(frozen=True)
class AudioFeatures:
    """HuBERT features at 25 fps: ``features`` (N, 1024) float32, ``vad`` (N,) RMS of each 40 ms (full scale 1),
    ``audio_16k`` (T,) the mono 16 kHz waveform they came from (None when not kept)."""

    features: torch.Tensor
    vad: torch.Tensor
    fps: float = 25.0
    audio_16k: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def extract_audio_features(
    models: DittoModels,
    audio: Any,
    sample_rate: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> AudioFeatures:
    """Audio (a file path, a waveform (T,), (C, T) or (1, C, T) with ``sample_rate``, or a ComfyUI AUDIO dict)
    -> :class:`AudioFeatures` (N = ceil(seconds * 25) frames)."""
    wave = load_audio(audio, sample_rate, name="audio")
    feats = models.hubert.offline_features(wave, progress=progress, cancel=cancel)
    n = feats.shape[0]
    return AudioFeatures(
        features=torch.as_tensor(np.asarray(feats), dtype=torch.float32),
        vad=torch.as_tensor(voice_activity(wave, n), dtype=torch.float32),
        audio_16k=wave,
    )


# ----------------------------------------------------------------------------------------------- motion
def source_motion_vector(source: Source, frame: int = 0) -> torch.Tensor:
    """The source's motion as a 265-vector (scale - 1, pose logits, t, exp) of ``frame`` (the first kp_cond)."""
    info = {k: v.detach().float().cpu() for k, v in source.x_s_info_frame(frame).items()}
    return dict_to_motion(info)[0]


def motion_conditions(models: DittoModels, source: Source, options: SamplingOptions | None = None) -> ConditionBuilder:
    """The DiT's condition builder for a source: emotion (``options``' or the release's), eye features (the source's
    or ``options``'), the source's canonical keypoints."""
    opts = options or SamplingOptions()
    emotion = opts.emotion if opts.emotion is not None else models.release.emotion
    eye_open = source.eye_open.cpu() if opts.eye_open is None else torch.tensor(opts.eye_open, dtype=torch.float32)
    eye_ball = source.eye_ball.cpu() if opts.eye_ball is None else torch.tensor(opts.eye_ball, dtype=torch.float32)
    return ConditionBuilder(emotion, eye_open, eye_ball, source.sc.cpu(), models.release.eye_f0_mode)


def sample_motion(
    models: DittoModels,
    source: Source,
    audio_features: AudioFeatures,
    options: SamplingOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    noises: torch.Tensor | None = None,
    x_inits: torch.Tensor | None = None,
) -> Motion:
    """Offline DiT sampling over the whole clip -> :class:`Motion` (N frames, N = ``audio_features.num_frames``).

    ``options``: unset fields take the release's offline settings. ``noises`` / ``x_inits`` replace the seeded draws
    (parity tests with the official random numbers).
    """
    opts = options or SamplingOptions()
    cfg: Audio2MotionConfig = opts.config(models.release.offline)
    cond = motion_conditions(models, source, opts)(audio_features.features, 0)
    motion = sample_motion_offline(
        models.lmdm, cond, source_motion_vector(source), cfg, generator=int(opts.seed),
        noises=noises, x_inits=x_inits, progress=progress, cancel=cancel,
    )
    emotion = opts.emotion if opts.emotion is not None else models.release.emotion
    return Motion(
        motion=motion,
        vad=audio_features.vad,
        smoothing=cfg.smoothing,
        fps=audio_features.fps,
        meta={"emotion": emotion.label, "seed": str(int(opts.seed)), "steps": str(cfg.steps),
              "overlap": str(cfg.overlap), "guidance": str(cfg.guidance)},
    )
