"""DiT Motion Sampler: source + audio features -> ``DITTO_MOTION`` (a performance, drawn on the node)."""

from __future__ import annotations

from typing import Any

from ditto_core.conditions import EMOTION_LABELS, Emotion
from ditto_core.conditions import parse_emotion_mix as parse_mix

from ditto_core.validate import check_choice, renamed

from .progress import ComfyProgress
from .types import (
    CATEGORY_MOTION,
    DITTO_AUDIO_FEATURES,
    DITTO_MODELS,
    DITTO_MOTION,
    DITTO_SOURCE,
)
from .utils import motion_ui

EMOTION_CHOICES = (*EMOTION_LABELS, "mix")
#: the library's name of each setting -> the widget's (errors name the widget)
SAMPLER_WIDGETS = {
    **{f"SamplingOptions.{k}": k for k in ("steps", "overlap", "seed", "guidance", "emotion")},
    "SamplingOptions.eye_open": "eye_open_left/eye_open_right",
    "SamplingOptions.eye_ball": "gaze_x/gaze_y",
}
EYE_MODES = ("from source", "manual")
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def parse_emotion_mix(text: str) -> dict[str, float]:
    """``"Happy:0.7, Neutral:0.3"`` -> ``{"Happy": 0.7, "Neutral": 0.3}`` (:func:`ditto_core.conditions.parse_emotion_mix`);
    errors name the ``emotion_mix`` input."""
    try:
        return parse_mix(text)
    except ValueError as e:
        raise ValueError(f"emotion_mix: {e}") from None


class DittoMotionSampler:
    DESCRIPTION = (
        "Generate a talking-head performance from the audio with Ditto's motion diffusion transformer (DiT): head "
        "pose, lip and eye motion for every frame, conditioned on the source face, an emotion and the eye state. "
        "Nothing is rendered yet: the yaw/pitch/roll and mouth curves are drawn on the node so you can check the "
        "performance, edit it with Edit Motion, save it, or render it with Render Frames."
    )
    CATEGORY = CATEGORY_MOTION
    FUNCTION = "sample"
    RETURN_TYPES = (DITTO_MOTION,)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The generated performance (25 fps); edit, save or render it.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                "source": (DITTO_SOURCE, {"tooltip": "From Extract Source Motion: the face the motion is generated for."}),
                "audio_features": (DITTO_AUDIO_FEATURES, {"tooltip": "From Audio to HuBERT: one motion frame per feature frame."}),
                "emotion": (
                    list(EMOTION_CHOICES),
                    {
                        "default": "Neutral",
                        "tooltip": "Emotion condition (official default Neutral). 'mix' uses the weights in emotion_mix. "
                        "It mostly changes head motion and mouth shape; the effect is subtle.",
                    },
                ),
                "eye_mode": (
                    list(EYE_MODES),
                    {
                        "default": "from source",
                        "tooltip": "Eye openness and gaze condition: measured on the source (official), or set by hand "
                        "with eye_open_left/right and gaze_x/y.",
                    },
                ),
                "steps": (
                    "INT",
                    {"default": 50, "min": 1, "max": 1000, "tooltip": "DDIM sampling steps (official 50; 10 is much faster)."},
                ),
                "overlap": (
                    "INT",
                    {
                        "default": 10,
                        "min": 0,
                        "max": 79,
                        "tooltip": "Frames shared by consecutive 80-frame windows and cross-faded (official 10). "
                        "More overlap is smoother and slower.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_SEED,
                        "control_after_generate": True,
                        "tooltip": "Random seed of the sampler: the same seed and inputs give the same performance.",
                    },
                ),
                "guidance": (
                    "FLOAT",
                    {
                        "default": 2.0,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.1,
                        "tooltip": "Classifier-free guidance weight (official 2.0). Higher follows audio and emotion "
                        "more strongly; 1.0 = conditional only.",
                    },
                ),
            },
            "optional": {
                "emotion_mix": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": False,
                        "placeholder": "Happy:0.7, Neutral:0.3",
                        "tooltip": "Used when emotion is 'mix': comma-separated Label:weight pairs from Angry, Disgust, "
                        "Fear, Happy, Neutral, Sad, Surprise, Contempt.",
                    },
                ),
                "eye_open_left": (
                    "FLOAT",
                    {
                        "default": 0.8,
                        "min": 0.0,
                        "max": 1.5,
                        "step": 0.01,
                        "tooltip": "Manual eye mode: openness of the eye on the left of the image (sum of three lid "
                        "distances over the eye width; about 0.8 open, 0.2 nearly closed).",
                    },
                ),
                "eye_open_right": (
                    "FLOAT",
                    {"default": 0.8, "min": 0.0, "max": 1.5, "step": 0.01, "tooltip": "Manual eye mode: openness of the eye on the right of the image."},
                ),
                "gaze_x": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -0.1,
                        "max": 0.1,
                        "step": 0.001,
                        "tooltip": "Manual eye mode: horizontal iris offset from the eye centre (both eyes; about ±0.02 "
                        "is a clear look to the side).",
                    },
                ),
                "gaze_y": (
                    "FLOAT",
                    {"default": 0.0, "min": -0.1, "max": 0.1, "step": 0.001, "tooltip": "Manual eye mode: vertical iris offset (both eyes)."},
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, emotion: str = "Neutral", emotion_mix: str = "") -> bool | str:
        """Before the workflow runs (ComfyUI passes the widget values): the emotion and its mix, as the library
        parses them, so an empty or malformed mix fails before the source and audio stages."""
        try:
            check_choice("emotion", emotion, EMOTION_CHOICES)
            if emotion == "mix":
                Emotion.parse(parse_emotion_mix(emotion_mix or ""))
        except ValueError as e:
            return str(e)
        return True

    def sample(
        self,
        models: Any,
        source: Any,
        audio_features: Any,
        emotion: str,
        eye_mode: str,
        steps: int,
        overlap: int,
        seed: int,
        guidance: float,
        emotion_mix: str = "",
        eye_open_left: float = 0.8,
        eye_open_right: float = 0.8,
        gaze_x: float = 0.0,
        gaze_y: float = 0.0,
    ) -> dict[str, Any]:
        from ditto_core.runtime import SamplingOptions, sample_motion

        check_choice("emotion", emotion, EMOTION_CHOICES)
        check_choice("eye_mode", eye_mode, EYE_MODES)
        with renamed(SAMPLER_WIDGETS):  # every value checked by the library, before any slow stage; errors name the widget
            emo = Emotion.parse(parse_emotion_mix(emotion_mix or "") if emotion == "mix" else emotion)
            eye_open = eye_ball = None
            if eye_mode == "manual":
                eye_open, eye_ball = SamplingOptions.manual_eyes(
                    source.eye_ball[0].tolist(), eye_open_left, eye_open_right, gaze_x, gaze_y
                )
            # the release's settings (config pickle, e.g. smoothing) for everything the node does not set
            options = SamplingOptions(emotion=emo, eye_open=eye_open, eye_ball=eye_ball, steps=steps, overlap=overlap,
                                      seed=seed, guidance=guidance)
        bar = ComfyProgress()
        motion = sample_motion(models, source, audio_features, options, progress=bar.progress, cancel=bar.cancel)
        return {"ui": motion_ui(motion), "result": (motion,)}


NODE_CLASS_MAPPINGS = {"DittoMotionSampler": DittoMotionSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoMotionSampler": "DiT Motion Sampler (Ditto)"}
