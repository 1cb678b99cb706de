"""The whole method, stage by stage: source + audio -> motion -> frames -> video.

Public API (used by the command line and by the ComfyUI nodes, which hold no maths):

* :class:`DittoModels` ``.load(models_dir, device, precision, download)``: every network, once.
* :func:`extract_source` -> :class:`ditto_core.source.Source` (crop, source motion, feature volume, eye features)
* :func:`extract_audio_features` -> :class:`AudioFeatures` ((N, 1024) at 25 fps + voice activity)
* :func:`sample_motion` -> :class:`ditto_core.edits.Motion` ((N, 265) DiT motion + per-frame controls)
* :func:`stitch_motion` -> the source and driving keypoints ``(x_s, x_d)`` of every frame
* :func:`render_frames` -> frame batches (pasted back into the source frame, or the 512 crop) and paste masks
* :func:`generate`: all of the above, written to an mp4 with the audio muxed in.

Long stages take ``progress(done, total)`` and ``cancel()`` callbacks; ``cancel`` may raise to stop (ComfyUI's
interrupt, Ctrl-C) and is called between windows and batches.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import layout
from .audio import HubertFeatureExtractor, frame_count, load_audio, voice_activity
from .audio2motion import Audio2MotionConfig, sample_motion_offline
from .checkpoints import find_model_file, load_model
from .conditions import ConditionBuilder, emotion_mix, mirror_index
from .config import DittoDefaults, load_config
from .edits import ClipControls, EditOptions, Motion, apply_edit, to_stitch_inputs
from .face import FaceModels, paste_mask
from .face.paste_torch import FramePaster
from .hub import ensure_models
from .motion import dict_to_motion
from .render import PRECISIONS, Renderer, RendererConfig
from .source import Source, register_source
from .stitch import MotionStitcher, StitchConfig

log = logging.getLogger("ditto")

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], None]
#: a stage-aware progress callback: ``(stage, done, total)``
StageProgressFn = Callable[[str, int, int], None]

RENDERER_ROLES = ("appearance_extractor", "motion_extractor", "warp_network", "decoder", "stitch_network", "lmdm")
AUX_ROLES = ("face_detector", "landmark106", "landmark203", "hubert", "blaze_face", "face_mesh")
DEVICES = ("auto", "cuda", "cpu", "mps")
OUTPUTS = ("full", "crop")
EYE_BACKENDS = ("onnx", "mediapipe")
BACKENDS = ("pytorch", "tensorrt")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; other names are checked to be usable."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available in this PyTorch build or on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: Apple MPS is not available on this machine")
    return dev


def _ort_device(device: torch.device) -> str:
    """The onnxruntime device string for the aux models (CoreML/MPS has no ORT equivalent here: CPU)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return "cpu"


@dataclass
class DittoModels:
    """Every network of the method, loaded once on one device.

    ``precision`` (fp32 | fp16 | bf16) is the autocast of the renderer and the source extractors; the DiT,
    the stitching MLP and the aux ONNX models always run in fp32 (as the official PyTorch path).
    ``defaults`` are the official run settings (the config pickle's ``default_kwargs`` when the folder has one).
    """

    models_dir: Path
    device: torch.device
    precision: str
    appearance: nn.Module
    motion_extractor: nn.Module
    warp: nn.Module
    decoder: nn.Module
    stitch: nn.Module
    lmdm: nn.Module
    hubert: HubertFeatureExtractor
    face: FaceModels
    defaults: DittoDefaults = field(default_factory=DittoDefaults)
    synthetic: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    #: renderer backend: "pytorch" or "tensorrt" (optional; falls back to PyTorch with a warning)
    backend: str = "pytorch"

    @classmethod
    def load(
        cls,
        models_dir: str | Path,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        download: bool = True,
        progress: bool = True,
        eye_backend: str = "onnx",
        backend: str = "pytorch",
    ) -> "DittoModels":
        """Find (and, when ``download``, fetch the missing) official files under ``models_dir`` and load them.

        ``eye_backend``: the 478-point face mesh of the eye features: "onnx" (``blaze_face.onnx`` +
        ``face_mesh.onnx`` through onnxruntime, the default) or "mediapipe" (``face_landmarker.task`` through the
        mediapipe package, which must be installed). ``backend``: the renderer, "pytorch" or "tensorrt" (see
        :mod:`ditto_core.trt`).

        Raises :class:`ditto_core.hub.MissingModelsError` (which files, where to put them),
        :class:`ditto_core.checkpoints.CheckpointError` (a wrong, truncated or corrupt file) or
        :class:`ditto_core.config.ConfigError` (a config pickle holding anything but plain data).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if eye_backend not in EYE_BACKENDS:
            raise ValueError(f"eye_backend must be one of {EYE_BACKENDS}, got {eye_backend!r}")
        root = Path(models_dir)
        dev = resolve_device(device)
        roles = RENDERER_ROLES + AUX_ROLES
        if eye_backend == "mediapipe":
            roles = tuple(r for r in roles if r not in ("blaze_face", "face_mesh")) + ("face_landmarker_task",)
        files = ensure_models(root, roles, download=download, progress=progress)
        cfg_path = find_model_file(root, "config")
        synthetic = (root / layout.SYNTHETIC_MARKER).exists()
        if synthetic:
            log.warning(
                "ditto: %s is a SYNTHETIC model kit (%s): random weights, the output is noise. "
                "Use the official checkpoints for real results.", root, layout.SYNTHETIC_MARKER,
            )
        nets = {role: load_model(role, files[role], device=dev) for role in RENDERER_ROLES}
        ort = _ort_device(dev)
        face = FaceModels.from_paths(
            detector=files["face_detector"],
            landmark106=files["landmark106"],
            landmark203=files["landmark203"],
            blaze_face=files.get("blaze_face"),
            face_mesh=files.get("face_mesh"),
            face_landmarker_task=files.get("face_landmarker_task"),
            device=ort,
        )
        defaults = DittoDefaults.from_config(load_config(cfg_path)) if cfg_path is not None else DittoDefaults()
        if cfg_path is not None:
            files["config"] = cfg_path
        return cls(
            models_dir=root,
            device=dev,
            precision=precision,
            appearance=nets["appearance_extractor"],
            motion_extractor=nets["motion_extractor"],
            warp=nets["warp_network"],
            decoder=nets["decoder"],
            stitch=nets["stitch_network"],
            lmdm=nets["lmdm"],
            hubert=HubertFeatureExtractor(files["hubert"], device=ort),
            face=face,
            defaults=defaults,
            synthetic=synthetic,
            files=files,
            backend=backend,
        )

    def release(self) -> None:
        """Drop the networks and free cached device memory (the object is unusable afterwards)."""
        for name in ("appearance", "motion_extractor", "warp", "decoder", "stitch", "lmdm", "hubert", "face"):
            setattr(self, name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def renderer(self, batch_size: int = 4) -> Renderer:
        """The renderer of :attr:`backend`: PyTorch, or TensorRT (engines built once and cached; when TensorRT
        cannot run here, one warning and the PyTorch renderer)."""
        if self.backend == "pytorch":
            return self.pytorch_renderer(batch_size)
        cache = self.__dict__.setdefault("_renderers", {})
        if batch_size not in cache:
            from .trt import make_renderer

            cache[batch_size] = make_renderer(self, self.backend, batch_size)
        return cache[batch_size]

    def pytorch_renderer(self, batch_size: int = 4) -> Renderer:
        return Renderer(self.warp, self.decoder, self.device, RendererConfig(self.precision, batch_size))

    def stitch_config(self) -> StitchConfig:
        """The stitcher settings of :attr:`defaults` (blink template, relative motion, stitching, ...)."""
        d = self.defaults
        return StitchConfig(
            use_d_keys=d.use_d_keys,
            relative_d=d.relative_d,
            drive_eye=d.drive_eye,
            delta_eye_arr=d.delta_eye_arr,
            delta_eye_open_n=d.delta_eye_open_n,
            fade_type=d.fade_type,
            fade_out_keys=tuple(d.fade_out_keys),
            flag_stitching=d.flag_stitching,
            overall_ctrl_info=dict(d.overall_ctrl_info or {}),
        )


# ----------------------------------------------------------------------------------------------- source


@dataclass
class SourceOptions:
    """Source registration settings (official defaults). ``face_order``: "size" (largest first) or
    "left_to_right"; ``face_index`` counts in that order. ``smo_k_s``: temporal window of a video source's motion."""

    crop_scale: float = 2.3
    vy_ratio: float = -0.125
    face_index: int = 0
    face_order: str = "size"
    smo_k_s: int = 13
    max_size: int = 1920


def source_options(models: DittoModels, **overrides: Any) -> SourceOptions:
    """:class:`SourceOptions` from the models' defaults, with ``overrides`` (None values ignored)."""
    d = models.defaults
    base = SourceOptions(crop_scale=d.crop_scale, vy_ratio=d.crop_vy_ratio, smo_k_s=d.smo_k_s, max_size=d.max_size)
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


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

    ``region_mask`` (H, W) in [0, 1] limits the face search to its non-zero area (pick a face in a group photo).
    """
    opts = options or source_options(models)
    frames = np.asarray(frames_rgb_u8)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"source frames: expected (H, W, 3) or (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return register_source(
        frames,
        models.face,
        models.appearance,
        models.motion_extractor,
        device=models.device,
        crop_scale=opts.crop_scale,
        vy_ratio=opts.vy_ratio,
        face_index=opts.face_index,
        face_order=opts.face_order,
        region_mask=region_mask,
        smo_k_s=opts.smo_k_s,
        max_size=opts.max_size,
        is_image=is_image,
        precision=models.precision,
        progress=progress,
        cancel=cancel,
    )


# ------------------------------------------------------------------------------------------------ audio


@dataclass
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
    feats = models.hubert.offline_features(wave, progress=progress, cancel=_as_bool_cancel(cancel))
    n = feats.shape[0]
    return AudioFeatures(
        features=torch.as_tensor(np.asarray(feats), dtype=torch.float32),
        vad=torch.as_tensor(voice_activity(wave, n), dtype=torch.float32),
        audio_16k=wave,
    )


def _as_bool_cancel(cancel: CancelFn | None) -> Callable[[], bool] | None:
    """The audio extractor's cancel returns True to stop; ours raise. Adapt (raising propagates as is)."""
    if cancel is None:
        return None

    def _check() -> bool:
        cancel()
        return False

    return _check


# ----------------------------------------------------------------------------------------------- motion


@dataclass
class SamplingOptions:
    """DiT sampling settings. ``emotion``: a label index 0-7 or name, a list of labels (mixed), an (8,) or
    (m, 8) probability array, or a ``{label: weight}`` mix. ``eye_open`` (2,) / ``eye_ball`` (6,): override the
    source's eye features (None: from the source). ``steps``: DDIM steps (official 50); ``overlap``: frames two
    80-frame windows share (official 10); ``seed``: the noise (same seed, same motion); ``guidance``: CFG weight
    (official 2); ``smoothing``: the official ``smo_k_d`` (3)."""

    emotion: Any = 4
    eye_open: Sequence[float] | None = None
    eye_ball: Sequence[float] | None = None
    steps: int = 50
    overlap: int = 10
    seed: int = 0
    guidance: float = 2.0
    smoothing: int = 3


def sampling_options(models: DittoModels, **overrides: Any) -> SamplingOptions:
    """:class:`SamplingOptions` from the models' defaults (config pickle), with ``overrides`` (None ignored)."""
    d = models.defaults
    base = SamplingOptions(emotion=d.emo, steps=d.sampling_timesteps, overlap=d.overlap_v2, smoothing=d.smo_k_d)
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _emotion_spec(emotion: Any) -> Any:
    if isinstance(emotion, Mapping):
        return emotion_mix(emotion)[None]
    if isinstance(emotion, (list, tuple)) and len(emotion) == 8 and any(isinstance(v, float) for v in emotion):
        return np.asarray(emotion, dtype=np.float32)[None]
    return emotion


def source_motion_vector(source: Source, frame: int = 0) -> torch.Tensor:
    """The source's motion as a 265-vector (scale - 1, pose logits, t, exp) of ``frame`` (the first kp_cond)."""
    info = {k: v.detach().float().cpu() for k, v in source.x_s_info_frame(frame).items()}
    return dict_to_motion(info)[0]


def motion_conditions(source: Source, options: SamplingOptions, eye_f0_mode: bool = False) -> ConditionBuilder:
    """The condition builder of a source: emotion, eye features (the source's or ``options``'), sc."""
    eye_open = source.eye_open.cpu() if options.eye_open is None else torch.tensor(options.eye_open, dtype=torch.float32)
    eye_ball = source.eye_ball.cpu() if options.eye_ball is None else torch.tensor(options.eye_ball, dtype=torch.float32)
    return ConditionBuilder(_emotion_spec(options.emotion), eye_open, eye_ball, source.sc.cpu(), eye_f0_mode)


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

    ``noises`` / ``x_inits`` replace the seeded draws (parity tests with the official random numbers).
    """
    opts = options or sampling_options(models)
    d = models.defaults
    cond = motion_conditions(source, opts, d.eye_f0_mode)(audio_features.features, 0)
    cfg = Audio2MotionConfig(
        overlap_v2=int(opts.overlap),
        fix_kp_cond=int(d.fix_kp_cond),
        fix_kp_cond_dim=None if d.fix_kp_cond_dim is None else tuple(d.fix_kp_cond_dim),
        sampling_timesteps=int(opts.steps),
        smo_k_d=int(opts.smoothing),
        v_min_max_for_clip=d.v_min_max_for_clip,
        guidance_weight=float(opts.guidance),
    )
    motion = sample_motion_offline(
        models.lmdm, cond, source_motion_vector(source), cfg, generator=int(opts.seed),
        noises=noises, x_inits=x_inits, progress=progress, cancel=cancel,
    )
    emo = opts.emotion if not isinstance(opts.emotion, np.ndarray) else "array"
    return Motion(
        motion=motion,
        vad=audio_features.vad,
        smoothing=int(opts.smoothing),
        fps=audio_features.fps,
        meta={"emotion": str(emo), "seed": str(int(opts.seed)), "steps": str(int(opts.steps)),
              "overlap": str(int(opts.overlap)), "guidance": str(float(opts.guidance))},
    )


# ------------------------------------------------------------------------------------------------ render


def stitch_motion(models: DittoModels, source: Source, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame motion stitching with the Motion's controls -> ``x_s`` ((1 or N), 21, 3), ``x_d`` (N, 21, 3).

    Blinks (when the models' config has a blink template) are placed with the Motion's seed.
    """
    m, cfg, ctrls = to_stitch_inputs(motion, source.is_image, base=models.stitch_config())
    src = source.x_s_info_frame(0) if source.is_image else [source.x_s_info_frame(i) for i in range(source.num_frames)]
    seed = int(motion.meta.get("seed", "0"))
    stitcher = MotionStitcher(src, source.is_image, cfg, models.stitch, rng=seed, device=models.device)
    with torch.inference_mode():
        x_s, x_d = stitcher.stitch_batch(m.to(models.device), 0, ctrls)
    return x_s, x_d


def render_frames(
    models: DittoModels,
    source: Source,
    motion: Motion,
    output: str = "full",
    batch_size: int = 4,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    frame_indices: Sequence[int] | None = None,
    renderer: Renderer | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render every frame of ``motion`` on ``source``; yields batches ``(frames (b, H, W, 3) uint8, masks (b, H, W)
    float32)``.

    ``output="full"``: pasted back into the source frame (a video source is read ping-pong) with the feathered
    mask as the official ``PutBack`` (truncating cast); masks are that mask warped into the frame.
    ``output="crop"``: the 512x512 face crop (``clip(0,1)*255`` truncated) and the 512 paste mask.
    ``frame_indices``: render only these frames (in this order); default all. ``renderer``: a renderer to use
    instead of ``models.renderer(batch_size)`` (e.g. one with other :class:`RendererConfig` options).

    Warp, decode and paste-back run on the models' device, batch by batch; each batch comes to the CPU in one
    transfer (the crops, or the pasted regions of the frames, which are then put into copies of the source frames).
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if source.f_s is None:
        source.compute_f_s(models.appearance, models.device, models.precision)
    x_s, x_d = stitch_motion(models, source, motion)
    n_src = source.num_frames
    sel = list(range(motion.num_frames)) if frame_indices is None else [int(i) for i in frame_indices]
    if any(not 0 <= i < motion.num_frames for i in sel):
        raise ValueError(f"frame_indices: expected frames in 0..{motion.num_frames - 1}, got {sel}")
    x_d = x_d[sel]
    if x_s.shape[0] > 1:
        x_s = x_s[sel]
    n = len(sel)
    mask512 = paste_mask(512, 512)
    renderer = renderer if renderer is not None else models.renderer(batch_size)
    paster = FramePaster(source.frames, source.M_c2o, mask512, renderer.device)
    done = 0
    for start, renders in renderer.render_all(source.f_s, x_s, x_d, lambda j: mirror_index(sel[j], n_src), cancel):
        src = [mirror_index(sel[start + j], n_src) for j in range(renders.shape[0])]
        if output == "crop":
            frames = renders.to(torch.uint8).contiguous().cpu().numpy()  # float -> uint8 truncates, as astype
            masks = np.broadcast_to(mask512, (len(src), *mask512.shape)).copy()
        else:
            frames, masks = paster.paste(renders, src)
        done += len(src)
        if progress is not None:
            progress(done, n)
        yield np.ascontiguousarray(frames), masks


# ---------------------------------------------------------------------------------------------- generate


@dataclass
class GenerateOptions(ClipControls):
    """Everything ``generate`` / the command line can set. None = the models' default (config pickle or code).

    Whole-clip controls: see :class:`ditto_core.edits.ClipControls` (``mouth``, ``head``, ``pitch``/``yaw``/
    ``roll``, ``blink``, ``drive_eye``, ``fade_in``) plus ``fade_out`` (frames). Sampling: ``emotion``, ``steps``,
    ``seed``, ``overlap``. Source: ``crop_scale``, ``face_index``. Render: ``batch_size``, ``output``
    ("full" | "crop").
    """

    emotion: Any = None
    steps: int | None = None
    seed: int = 0
    overlap: int | None = None
    crop_scale: float | None = None
    face_index: int = 0
    fade_out: int = 0
    batch_size: int = 4
    output: str = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.fade_out) < 0:
            raise ValueError(f"GenerateOptions.fade_out must be >= 0 frames, got {self.fade_out}")

    def edit(self) -> EditOptions:
        return self.edit_options(self.fade_out)


def generate(
    models: DittoModels,
    source: str | Path | np.ndarray,
    audio: Any,
    out_path: str | Path,
    options: GenerateOptions | None = None,
    sample_rate: int | None = None,
    progress: StageProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Portrait (or video) + speech -> an H.264 mp4 at 25 fps with the audio muxed in; returns the path.

    ``source``: an image/video path or RGB uint8 frames; ``audio``: a path or a waveform (with ``sample_rate``).
    Frames are encoded as they are rendered (memory does not grow with the clip); on any error or interrupt the
    partial file is removed and nothing is left under ``out_path``. ``progress(stage, done, total)`` per stage:
    "source", "audio", "motion", "render".
    """
    from .inputs import read_source
    from .video import BackgroundWriter, VideoWriter

    opts = options or GenerateOptions()

    def stage(name: str) -> ProgressFn | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    out = Path(out_path)
    if not out.parent.is_dir():
        raise ValueError(f"output: the folder {out.parent} does not exist")
    if isinstance(source, (str, Path)):
        n_max = models.defaults.template_n_frames
        frames, is_image = read_source(source, n_max if n_max > 0 else -1)
    else:
        frames = np.asarray(source)
        is_image = frames.ndim == 3 or frames.shape[0] == 1
    wave = load_audio(audio, sample_rate, name="audio")
    src = extract_source(
        models, frames, source_options(models, crop_scale=opts.crop_scale, face_index=opts.face_index),
        is_image=is_image, progress=stage("source"), cancel=cancel,
    )
    feats = extract_audio_features(models, wave, 16000, progress=stage("audio"), cancel=cancel)
    motion = sample_motion(
        models, src, feats,
        sampling_options(models, emotion=opts.emotion, steps=opts.steps, overlap=opts.overlap, seed=opts.seed),
        progress=stage("motion"), cancel=cancel,
    )
    edit = opts.edit()
    if not edit.is_identity():
        motion = apply_edit(motion, edit)
    if opts.drive_eye is not None:
        motion = dataclasses.replace(motion, drive_eye=bool(opts.drive_eye))
    assert motion.num_frames == frame_count(len(wave))
    # encoding runs on its own thread (BackgroundWriter), overlapping the rendering of the next batch
    with BackgroundWriter(VideoWriter(out, fps=motion.fps, audio_16k=wave, audio_sample_rate=16000)) as writer:
        for frames_b, _ in render_frames(models, src, motion, opts.output, opts.batch_size,
                                         progress=stage("render"), cancel=cancel):
            writer.write(frames_b)
    return out
