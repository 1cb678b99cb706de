"""Audio front end: loading, resampling, validation, streaming HuBERT features, voice activity.

Conventions (official Ditto, ditto-spec §4): 16 kHz mono float32, 25 fps, 640 samples per frame,
N = ceil(len / 16000 * 25) frames. Features come from ``hubert_streaming_fix_kv.onnx`` (input (1, 6480) f32 raw
waveform -> (20, 1024) at 50 Hz). A chunk of 3 past + 5 current + 2 future frames (6480 samples) gives 5 frames:
rows [-14:-4] of the HuBERT output, averaged in pairs.

- Offline (``HubertFeatureExtractor.offline_features``): 2000 zeros before, 6480 after, a window every 5 frames.
- Online (``OnlineAudioChunker``): 1920 zeros before, a 6480-sample chunk every 3200 samples, the last zero-padded;
  ``HubertFeatureExtractor.chunk_features`` turns each into 5 frames. The streaming pipeline starts its feature
  buffer with ``prefill_features(70)``.

Where the official code computes an index with a float expression (``int(i * 0.04 * 16000)``,
``ceil(len / 16000 * 25)``), the same expression is used here, so counts and offsets match it exactly, including
its rare off-by-one cases (e.g. 4480 samples -> 8 frames, window 1615 starts at sample 1_033_599).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._util import CancelFn, ProgressFn
from .onnx_utils import OnnxModel, check_signature
from .errors import InputError

__all__ = [
    "SAMPLE_RATE",
    "FPS",
    "SAMPLES_PER_FRAME",
    "MIN_SAMPLE_RATE",
    "MAX_AUDIO_SECONDS",
    "HUBERT_DIM",
    "AudioError",
    "ChunkConfig",
    "load_audio",
    "load_audio_native",
    "pcm_to_float",
    "resample_to_16k",
    "frame_count",
    "voice_activity",
    "HubertFeatureExtractor",
    "OnlineAudioChunker",
    "online_chunks",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 samples = 40 ms
MIN_SAMPLE_RATE = 8000
HUBERT_DIM = 1024
SILENCE_PEAK = 1e-4
#: the longest audio taken by ``load_audio`` (one hour; a clip's motion, features and frames grow with it); a stream
#: has no limit
MAX_AUDIO_SECONDS = 3600.0  # peak |x| below this (-80 dBFS) counts as silence


class AudioError(InputError):
    """Audio input that cannot be used; the message names the input and what was expected."""


@dataclass(frozen=True)
class ChunkConfig:
    """HuBERT chunk layout in 40 ms frames: (past, current, future); the official default is (3, 5, 2).

    Derived sizes use the official float expressions: ``chunk_samples`` 6480, ``hop_samples`` 3200,
    ``offline_pad_front`` 2000, ``online_pad_front`` 1920, valid HuBERT rows [-14:-4].
    """

    past: int = 3
    current: int = 5
    future: int = 2

    def __post_init__(self) -> None:
        if self.past < 0 or self.current < 1 or self.future < 0:
            raise ValueError(f"ChunkConfig: expected past>=0, current>=1, future>=0, got {self}")

    @property
    def chunk_samples(self) -> int:
        """Samples per HuBERT call: 40 ms per frame plus 80 samples of receptive-field margin (6480)."""
        return int((self.past + self.current + self.future) * 0.04 * 16000) + 80

    @property
    def hop_samples(self) -> int:
        """Online hop: ``current`` frames (3200)."""
        return self.current * SAMPLES_PER_FRAME

    @property
    def offline_pad_front(self) -> int:
        """Zeros before the audio in the offline path (2000)."""
        return self.chunk_samples - int((self.current + self.future) * 0.04 * 16000)

    @property
    def online_pad_front(self) -> int:
        """Zeros before the audio in the online path (1920 = past frames)."""
        return self.past * SAMPLES_PER_FRAME

    @property
    def valid_rows(self) -> slice:
        """Rows of the (2*frames, 1024) HuBERT output that belong to the current frames ([-14:-4])."""
        return slice(-(self.current + self.future) * 2, -self.future * 2 if self.future else None)


# ----------------------------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------------------------

_INT_SCALE = {  # PCM integer formats -> float, as libsndfile/soundfile read them
    "u8": (128.0, 128.0),
    "s16": (0.0, 32768.0),
    "s32": (0.0, 2147483648.0),
    "s64": (0.0, 9223372036854775808.0),
}


def _frame_to_float(frame: Any, n_channels: int) -> np.ndarray:
    """One decoded PyAV audio frame -> (C, T) float32."""
    fmt = frame.format.name
    base = fmt[:-1] if fmt.endswith("p") else fmt
    arr = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: (1, T*C) interleaved
        arr = arr.reshape(-1, n_channels).T
    if base in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    if base not in _INT_SCALE:
        raise AudioError(f"unsupported decoded sample format {fmt!r}")
    offset, scale = _INT_SCALE[base]
    return ((arr.astype(np.float64) - offset) / scale).astype(np.float32)


def _too_long(what: str, seconds: float, qualifier: str = "") -> str:
    q = f"{qualifier} " if qualifier else ""
    return (f"{what}: {q}{seconds:.0f} s of audio is longer than the limit of {MAX_AUDIO_SECONDS:.0f} s; "
            "split it into shorter clips")


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The audio length a file's header declares (stream, else container), or None when it declares none."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _decode_file(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any file PyAV reads -> ((C, T) float32, sample rate)."""
    import av

    name = str(path)
    if not path.exists():
        raise AudioError(f"audio file {name!r} does not exist")
    if not path.is_file():
        raise AudioError(f"audio input {name!r} is not a file")
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise AudioError(f"cannot read audio file {name!r} (expected a wav/mp3/flac/m4a/... file): {e}") from e
    with container:
        if not container.streams.audio:
            raise AudioError(f"audio file {name!r} has no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > MAX_AUDIO_SECONDS:
            raise AudioError(_too_long(f"audio file {name!r}", declared))
        parts: list[np.ndarray] = []
        samples = 0
        sr: int | None = None
        n_ch: int | None = None
        try:
            for frame in container.decode(stream):
                ch = len(frame.layout.channels)
                if sr is None:
                    sr, n_ch = int(frame.sample_rate), ch
                elif frame.sample_rate != sr or ch != n_ch:
                    raise AudioError(
                        f"audio file {name!r} changes sample rate or channel count mid-stream "
                        f"({sr} Hz x{n_ch} -> {frame.sample_rate} Hz x{ch})"
                    )
                parts.append(_frame_to_float(frame, ch))
                samples += parts[-1].shape[-1]
                if samples > MAX_AUDIO_SECONDS * sr:  # a header that under-declares the length
                    raise AudioError(_too_long(f"audio file {name!r}", samples / sr, "more than"))
        except av.FFmpegError as e:
            raise AudioError(f"cannot decode audio file {name!r}: {e}") from e
    if not parts or sr is None:
        raise AudioError(f"audio file {name!r} is empty (no audio samples)")
    return np.concatenate(parts, axis=1), sr


def pcm_to_float(x: Any, what: str = "audio waveform") -> np.ndarray:
    """Samples of any numeric dtype (numpy, torch or a sequence) -> float32 in [-1, 1], the one conversion every entry
    point uses (files, arrays, ComfyUI AUDIO, streaming pushes, the video writer's track).

    Float samples pass unchanged (they are expected in [-1, 1]); signed PCM integers of width ``b`` bits are divided by
    ``2**(b-1)`` (int16 32767 -> 0.99997, as libsndfile reads them); unsigned ones are offset binary: ``(v - 2**(b-1)) /
    2**(b-1)`` (uint8 128 -> 0). Bools, complex numbers and objects are refused (:class:`AudioError` naming ``what``).
    """
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().to("cpu")
        x = (x.float() if x.is_floating_point() else x).numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise AudioError(f"{what}: expected a numeric waveform, got {type(x).__name__} ({e})") from None
    if arr.dtype.kind in "iu":
        half = float(2 ** (8 * arr.dtype.itemsize - 1))
        offset = half if arr.dtype.kind == "u" else 0.0
        return ((arr.astype(np.float64) - offset) / half).astype(np.float32)
    if arr.dtype.kind != "f":
        raise AudioError(f"{what}: expected a numeric waveform (float in [-1, 1] or PCM integers), got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _array_to_channels(x: Any, what: str) -> np.ndarray:
    """A waveform (T,), (C, T) or (1, C, T) (numpy or torch) -> (C, T) float32 (:func:`pcm_to_float`)."""
    arr = pcm_to_float(x, what)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise AudioError(f"{what}: expected one clip (batch size 1) in a (B, C, T) waveform, got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise AudioError(f"{what}: expected a waveform of shape (T,), (C, T) or (B, C, T), got shape {arr.shape}")
    if arr.shape[0] > 64:
        raise AudioError(
            f"{what}: expected (C, T) with at most 64 channels, got shape {arr.shape} (is it (T, C)? transpose it)"
        )
    return arr


def _to_mono(x: np.ndarray) -> np.ndarray:
    """(C, T) -> (T,) float32, the mean over channels (librosa.to_mono)."""
    return x[0] if x.shape[0] == 1 else np.mean(x, axis=0)


def resample_to_16k(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """(T,) float32 at ``sample_rate`` -> (ceil(T*16000/sr),) float32 at 16 kHz.

    Exactly ``librosa.resample(x, orig_sr=sr, target_sr=16000)`` with its default res_type "soxr_hq":
    ``soxr.resample(x, sr, 16000, quality="soxr_hq")`` trimmed or zero-padded to ``ceil(T * (16000 / sr))``.
    """
    import soxr

    if sample_rate == SAMPLE_RATE:
        return x
    ratio = float(SAMPLE_RATE) / sample_rate
    n_out = int(np.ceil(x.shape[-1] * ratio))
    y = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="soxr_hq")
    if y.shape[-1] > n_out:
        y = y[:n_out]
    elif y.shape[-1] < n_out:
        y = np.pad(y, (0, n_out - y.shape[-1]))
    return np.asarray(y, dtype=x.dtype)


def _load_channels(source: Any, sample_rate: float | None, name: str | None) -> tuple[np.ndarray, int | float, str]:
    """The checks and decode :func:`load_audio` and :func:`load_audio_native` share -> ((C, T) float32, rate, what)."""
    if isinstance(source, Mapping):
        if "waveform" not in source or "sample_rate" not in source:
            raise AudioError(f"audio mapping: expected keys 'waveform' and 'sample_rate', got {sorted(source)}")
        if sample_rate is not None and sample_rate != source["sample_rate"]:
            raise AudioError("audio mapping carries its own sample_rate; do not pass another one")
        source, sample_rate = source["waveform"], source["sample_rate"]
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            raise AudioError(f"sample_rate applies to waveform input only; the file {str(source)!r} carries its own")
        what = name or f"audio file {str(source)!r}"
        channels, sr = _decode_file(Path(source))
    else:
        what = name or "audio waveform"
        if sample_rate is None:
            raise AudioError(f"{what}: a waveform needs its sample_rate (Hz)")
        channels, sr = _array_to_channels(source, what), sample_rate
    try:
        sr_f = float(sr)
    except (TypeError, ValueError):
        raise AudioError(f"{what}: expected a numeric sample rate, got {sr!r}") from None
    if not math.isfinite(sr_f) or sr_f < MIN_SAMPLE_RATE:
        raise AudioError(f"{what}: sample rate {sr} Hz is below the minimum of {MIN_SAMPLE_RATE} Hz")
    if channels.shape[-1] == 0 or channels.shape[0] == 0:
        raise AudioError(f"{what}: the audio is empty (0 samples)")
    if channels.shape[-1] > MAX_AUDIO_SECONDS * sr_f:
        raise AudioError(_too_long(what, channels.shape[-1] / sr_f))
    if not np.isfinite(channels).all():
        bad = int((~np.isfinite(channels)).sum())
        raise AudioError(f"{what}: {bad} sample(s) are NaN or infinite; expected finite samples")
    sr_num: int | float = int(sr_f) if sr_f.is_integer() else sr_f
    return channels, sr_num, what


def load_audio_native(source: Any, sample_rate: float | None = None, *, name: str | None = None
                      ) -> tuple[np.ndarray, int | float]:
    """Audio at its own rate and channels -> ``((C, T) float32 in [-1, 1], sample_rate)`` (what the video's sound
    track is made of).

    Takes the same ``source`` as :func:`load_audio` (a file path, a waveform (T,), (C, T) or (1, C, T) with
    ``sample_rate``, or a ComfyUI AUDIO mapping) and refuses the same inputs (missing/unreadable file, empty audio,
    NaN/inf samples, a rate below 8 kHz, more than ``MAX_AUDIO_SECONDS``). The rate is an ``int`` when it is a whole
    number of Hz. ``load_audio(samples, sample_rate)`` of the result is bit-identical to ``load_audio(source)``, so a
    file needs decoding only once for both.
    """
    channels, sr, _ = _load_channels(source, sample_rate, name)
    return channels, sr


def load_audio(source: Any, sample_rate: float | None = None, *, name: str | None = None) -> np.ndarray:
    """Audio -> (T,) float32 mono at 16 kHz, as the official ``librosa.load(path, sr=16000)``.

    ``source``: a path to any file PyAV decodes (wav, mp3, flac, m4a, ogg, video with sound...; first audio stream),
    a waveform (T,), (C, T) or (1, C, T) (numpy or torch, float in [-1, 1] or PCM integers) with ``sample_rate``,
    or a mapping ``{"waveform": ..., "sample_rate": ...}`` (ComfyUI AUDIO). Channels are averaged, then the
    signal is resampled with soxr HQ when the rate is not 16 kHz. ``name`` labels the input in error messages.

    Raises :class:`AudioError` for a missing/unreadable file, no audio stream, empty audio, NaN/inf samples,
    a sample rate below 8 kHz and audio shorter than one 40 ms frame. Silence is valid but logged as a warning.
    """
    channels, sr_num, what = _load_channels(source, sample_rate, name)
    audio = resample_to_16k(_to_mono(channels), sr_num)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if len(audio) < SAMPLES_PER_FRAME:
        raise AudioError(
            f"{what}: {len(audio) / SAMPLE_RATE * 1000:.1f} ms of audio is shorter than one 40 ms frame"
        )
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        log.warning("%s is silent (peak below %.0e): the generated clip will be idle", what, SILENCE_PEAK)
    return audio


# ----------------------------------------------------------------------------------------------------------------
# Frame arithmetic and voice activity
# ----------------------------------------------------------------------------------------------------------------


def frame_count(num_samples_16k: int) -> int:
    """Frames at 25 fps for ``num_samples_16k`` samples: the official ``ceil(len / 16000 * 25)`` (float expression)."""
    if num_samples_16k < 0:
        raise ValueError(f"num_samples_16k: expected >= 0, got {num_samples_16k}")
    return math.ceil(num_samples_16k / 16000 * 25)


def voice_activity(audio_16k: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """(n_frames,) float32 RMS of each 40 ms frame: frame k is samples [640k, 640k + 640), zero-padded past the end.

    ``n_frames`` defaults to ``frame_count(len(audio_16k))``. Units: the waveform's (full scale 1.0).
    """
    x = np.asarray(audio_16k)
    if x.ndim != 1:
        raise ValueError(f"audio_16k: expected a (T,) waveform, got shape {x.shape}")
    n = frame_count(len(x)) if n_frames is None else int(n_frames)
    if n < 0:
        raise ValueError(f"n_frames: expected >= 0, got {n_frames}")
    padded = np.zeros(n * SAMPLES_PER_FRAME, dtype=np.float64)
    m = min(len(x), len(padded))
    padded[:m] = x[:m]
    return np.sqrt(np.mean(padded.reshape(n, SAMPLES_PER_FRAME) ** 2, axis=1)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# HuBERT features
# ----------------------------------------------------------------------------------------------------------------


class HubertFeatureExtractor:
    """Streaming HuBERT ONNX (``hubert_streaming_fix_kv.onnx``: (1, 6480) f32 -> (20, 1024)) and its chunking.

    ``device``: "cpu", "cuda", "cuda:N" (see :mod:`ditto_core.onnx_utils`). Inputs are bound by the session's own
    input name and the output is chosen by shape (the (2*frames, 1024) one), so renamed exports work too.
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        device: Any = "cpu",
        chunk: ChunkConfig = ChunkConfig(),
        *,
        threads: int | None = None,
    ) -> None:
        self.chunk = chunk
        self.model = OnnxModel(onnx_path, device, threads=threads)
        n_rows = 2 * (chunk.past + chunk.current + chunk.future)
        check_signature(self.model, "the HuBERT audio encoder (hubert: hubert_streaming_fix_kv.onnx)",
                        inputs=[(1, chunk.chunk_samples)], outputs=[(n_rows, HUBERT_DIM)])
        if len(self.model.output_names) == 1:
            self._out = 0
        else:
            self._out = self.model.output_index_by_shape((n_rows, HUBERT_DIM))

    def chunk_features(self, chunk: np.ndarray) -> np.ndarray:
        """One chunk (6480,) or (1, 6480) float32 at 16 kHz -> (5, 1024) float32 (rows [-14:-4], pairs averaged)."""
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.chunk.chunk_samples:
            raise ValueError(f"chunk: expected {self.chunk.chunk_samples} samples, got shape {np.shape(chunk)}")
        enc = self.model.run(x.reshape(1, -1))[self._out]
        if enc.ndim == 3 and enc.shape[0] == 1:
            enc = enc[0]
        valid = enc[self.chunk.valid_rows]
        return valid.reshape(self.chunk.current, 2, valid.shape[-1]).mean(1).astype(np.float32, copy=False)

    def offline_features(
        self,
        audio_16k: np.ndarray,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """(T,) float32 at 16 kHz -> (N, 1024) float32, N = ceil(T / 16000 * 25): the official offline ``wav2feat``.

        Pads 2000 zeros before and 6480 after, runs a 6480-sample window every 5 frames, concatenates, cuts to N.
        ``progress(done, total)`` is called after each window; ``cancel()`` before each (it raises to stop, the
        library's one cancel convention).
        """
        x = np.asarray(audio_16k, dtype=np.float32)
        if x.ndim != 1 or x.shape[0] == 0:
            raise ValueError(f"audio_16k: expected a non-empty (T,) waveform at 16 kHz, got shape {x.shape}")
        c = self.chunk
        n = frame_count(len(x))
        padded = np.concatenate(
            [np.zeros(c.offline_pad_front, np.float32), x, np.zeros(c.chunk_samples, np.float32)]
        )
        starts = list(range(0, n, c.current))
        feats: list[np.ndarray] = []
        for k, i in enumerate(starts):
            if cancel is not None:
                cancel()
            s = int(i * 0.04 * 16000)  # the official float expression (see the module docstring)
            feats.append(self.chunk_features(padded[s : s + c.chunk_samples]))
            if progress is not None:
                progress(k + 1, len(starts))
        return np.concatenate(feats, 0)[:n]

    def prefill_features(self, n_frames: int) -> np.ndarray:
        """(n_frames, 1024): offline features of n_frames*640 zero samples (the online pipeline's silence prefill)."""
        if n_frames < 1:
            raise ValueError(f"n_frames: expected >= 1, got {n_frames}")
        return self.offline_features(np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32))[:n_frames]

    def online_features(self, audio_16k: np.ndarray) -> np.ndarray:
        """(n_chunks, 5, 1024): the official online chunking of a whole clip (see :class:`OnlineAudioChunker`)."""
        chunks = online_chunks(audio_16k, self.chunk)
        return np.stack([self.chunk_features(ch) for ch in chunks])


class OnlineAudioChunker:
    """Turns a stream of 16 kHz samples into HuBERT chunks exactly as the official online ``inference.run``.

    The stream gets ``online_pad_front`` (1920) zeros in front; chunk i is samples [3200 i, 3200 i + 6480) of it for
    every i with 3200 i < total length, zero-padded at the end. ``push(samples)`` returns the chunks that became
    complete; ``flush()`` ends the stream and returns the rest (zero-padded). Each chunk is (6480,) float32.
    """

    def __init__(self, chunk: ChunkConfig = ChunkConfig()) -> None:
        self.chunk = chunk
        self._buf = np.zeros(chunk.online_pad_front, np.float32)  # samples from the next chunk's start on
        self._closed = False
        self.chunks_emitted = 0

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Append (T,) float32 samples at 16 kHz; returns the chunks completed by them, in order."""
        if self._closed:
            raise RuntimeError("OnlineAudioChunker: push() after flush()")
        x = pcm_to_float(samples, "samples")
        if x.ndim != 1:
            raise AudioError(f"samples: expected a (T,) waveform at 16 kHz, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise AudioError("samples: NaN or infinite values in the audio stream")
        self._buf = np.concatenate([self._buf, x])
        out: list[np.ndarray] = []
        size, hop = self.chunk.chunk_samples, self.chunk.hop_samples
        while len(self._buf) >= size:
            out.append(self._buf[:size].copy())
            self._buf = self._buf[hop:]
        self.chunks_emitted += len(out)
        return out

    def flush(self) -> list[np.ndarray]:
        """End of stream: the remaining chunks (each starting before the end), zero-padded to 6480."""
        if self._closed:
            return []
        self._closed = True
        out: list[np.ndarray] = []
        size, hop = self.chunk.chunk_samples, self.chunk.hop_samples
        while len(self._buf) > 0:
            ch = np.zeros(size, np.float32)
            ch[: min(size, len(self._buf))] = self._buf[:size]
            out.append(ch)
            self._buf = self._buf[hop:]
        self.chunks_emitted += len(out)
        return out


def online_chunks(audio_16k: np.ndarray, chunk: ChunkConfig = ChunkConfig()) -> list[np.ndarray]:
    """All online chunks of a whole clip: ``OnlineAudioChunker.push`` then ``flush``."""
    ch = OnlineAudioChunker(chunk)
    return ch.push(audio_16k) + ch.flush()
