"""Audio to HuBERT: core ``AUDIO`` -> ``DITTO_AUDIO_FEATURES`` (25 per second) and the frame count."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .progress import ComfyProgress
from .types import CATEGORY_AUDIO, DITTO_AUDIO_FEATURES, DITTO_MODELS

log = logging.getLogger(__name__)


class DittoAudioToHuBERT:
    DESCRIPTION = (
        "Encode speech with Ditto's streaming HuBERT: 25 feature frames per second (one per video frame), plus the "
        "voice activity (RMS energy of each 40 ms) that Edit Motion's relax-on-silence uses. Any sample rate and "
        "channel count; the audio is mixed to mono and resampled to 16 kHz."
    )
    CATEGORY = CATEGORY_AUDIO
    FUNCTION = "encode"
    RETURN_TYPES = (DITTO_AUDIO_FEATURES, "INT")
    RETURN_NAMES = ("audio_features", "frames")
    OUTPUT_TOOLTIPS = (
        "HuBERT features at 25 fps and the voice activity; connect to the DiT Motion Sampler.",
        "Number of video frames the audio gives (25 per second).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models."}),
                "audio": ("AUDIO", {"tooltip": "The speech to lip-sync, e.g. from Load Audio."}),
            }
        }

    def encode(self, models: Any, audio: Any) -> tuple[Any, int]:
        from ditto_core.runtime import extract_audio_features

        if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
            raise ValueError("audio: expected a ComfyUI AUDIO dict with 'waveform' [B, C, T] and 'sample_rate'")
        wave = audio["waveform"]
        if not isinstance(wave, torch.Tensor):
            wave = torch.as_tensor(wave)
        if wave.ndim == 3:
            if wave.shape[0] > 1:
                log.warning("Ditto: audio has a batch of %d clips; using the first", wave.shape[0])
            wave = wave[0]
        bar = ComfyProgress()
        # the waveform as it is (integer PCM is scaled by the library, as at every entry point); the rate checked there
        feats = extract_audio_features(models, wave.detach().cpu(), audio["sample_rate"], progress=bar.progress,
                                       cancel=bar.cancel)
        return (feats, int(feats.num_frames))


NODE_CLASS_MAPPINGS = {"DittoAudioToHuBERT": DittoAudioToHuBERT}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoAudioToHuBERT": "Audio to HuBERT (Ditto)"}
