"""Custom ComfyUI types of the Ditto pack, their payloads, and the frozen widget order.

Types (the frontend only connects matching names; none reuses a core type name):

* ``DITTO_MODELS`` -> :class:`ditto_core.runtime.DittoModels`: every network of one models folder on one device
  and precision (``.device``, ``.precision``, ``.models_dir``, ``.backend``). Shared by every node downstream and
  never changed by them (Render Frames builds its own renderer each run); released by the loader when its inputs
  change.
* ``DITTO_SOURCE`` -> :class:`ditto_core.source.Source`: a registered (immutable) portrait (one image) or video (a batch of
  frames): 512 crops ``.crops (N, 512, 512, 3)``, source motion ``.x_s_info``, eye features, the frames.
* ``DITTO_AUDIO_FEATURES`` -> :class:`ditto_core.runtime.AudioFeatures`: HuBERT features ``(N, 1024)`` at 25 fps
  plus the voice activity ``vad (N,)`` (RMS of each 40 ms), which the sampler passes on in the motion.
* ``DITTO_MOTION`` -> :class:`ditto_core.motion.Motion`: a performance, the motion ``(N, 265)`` at 25 fps (from the
  DiT, a driving video or a mix of both; ``.parts`` says what it drives) plus per-frame edit controls (immutable:
  edits return new ones); saved and loaded as ``.safetensors`` (see :func:`ditto_core.motion.save_motion`).

Core types used as they are: ``IMAGE`` (float32 ``[B, H, W, 3]`` in 0..1), ``MASK`` (float32 ``[B, H, W]``),
``AUDIO`` (``{"waveform": [B, C, T], "sample_rate": int}``), ``INT``, ``FLOAT``.

**Widget order is part of the saved-workflow format.** A UI-format workflow stores a node's widget values as a
positional list (``widgets_values``) in declaration order: required inputs first, then optional ones, with the
extra ``control_after_generate`` value right after a seed. :data:`FROZEN_WIDGETS` records that order for every node;
the contract tests fail if a node's inputs drift from it. Never reorder, rename or remove a widget once released;
new widgets go at the end of the optional inputs (and get appended here).
"""

from __future__ import annotations

DITTO_MODELS = "DITTO_MODELS"
DITTO_SOURCE = "DITTO_SOURCE"
DITTO_AUDIO_FEATURES = "DITTO_AUDIO_FEATURES"
DITTO_MOTION = "DITTO_MOTION"
CUSTOM_TYPES = (DITTO_MODELS, DITTO_SOURCE, DITTO_AUDIO_FEATURES, DITTO_MOTION)

CATEGORY = "Ditto"
CATEGORY_LOADERS = "Ditto/loaders"
CATEGORY_SOURCE = "Ditto/source"
CATEGORY_AUDIO = "Ditto/audio"
CATEGORY_MOTION = "Ditto/motion"
CATEGORY_RENDER = "Ditto/render"

#: folder under ComfyUI's models directory (``folder_paths`` key ``ditto``)
MODEL_FOLDER_KEY = "ditto"
#: the official release's folder name, the loader's default
DEFAULT_MODELS_FOLDER = "ditto-talkinghead"
FPS = 25.0
#: key of the motion-curve payload in a node's ``ui`` dict (read by web/ditto_motion.js)
UI_MOTION_KEY = "ditto_motion"

#: widget names per node, in saved-workflow order ("control_after_generate" marks the seed's extra value)
FROZEN_WIDGETS: dict[str, tuple[str, ...]] = {
    "DittoLoadModels": ("models_folder", "device", "precision", "backend", "download_missing", "cuda_graphs", "compile",
                        "channels_last"),
    "DittoExtractSource": ("crop_scale", "face_index", "face_order"),
    "DittoAudioToHuBERT": (),
    "DittoMotionSampler": (
        "emotion",
        "eye_mode",
        "steps",
        "overlap",
        "seed",
        "control_after_generate",
        "guidance",
        "emotion_mix",
        "eye_open_left",
        "eye_open_right",
        "gaze_x",
        "gaze_y",
    ),
    "DittoEditMotion": (
        "start_frame",
        "end_frame",
        "ease_in",
        "ease_out",
        "pitch",
        "yaw",
        "roll",
        "head_amplitude",
        "mouth_amplitude",
        "expression",
        "relax_on_silence",
        "silence_threshold",
        "blink_interval",
        "gaze_fix",
        "fade_in",
        "fade_out",
        "smoothing",
        "label",
    ),
    "DittoSaveMotion": ("filename_prefix",),
    "DittoLoadMotion": ("motion_file",),
    "DittoRenderFrames": ("output", "batch_size", "start_frame", "frame_count"),
    "DittoRenderVideo": ("output", "batch_size", "quality"),
    "DittoGoLive": ("name", "emotion", "mouth", "head", "pitch", "yaw", "roll", "output"),
    "DittoExtractDrivingMotion": (
        "head_pose",
        "translation",
        "eyes",
        "brows",
        "lips",
        "expression",
        "mode",
        "smoothing",
        "face_index",
        "face_order",
        "max_frames",
        "fps",
    ),
    "DittoMixMotion": (
        "head_pose",
        "translation",
        "eyes",
        "brows",
        "lips",
        "expression",
        "start",
        "end",
        "ease_in",
        "ease_out",
        "length",
    ),
    "DittoPreviewMotion": ("every", "max_frames"),
}
