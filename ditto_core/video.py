"""H.264 mp4 writer with an AAC audio track, frame by frame, through PyAV (no ffmpeg binary).

``VideoWriter`` streams frames to the encoder as they come, and feeds the audio track up to the
time of each written frame, so the two streams are interleaved and memory does not grow with the
clip length. The track keeps the audio's own sample rate (when AAC has it, else 48 kHz) and is mono or
stereo (more channels are downmixed); given as ``audio=``, it is fitted to the video's length on close
(cut at ``frames / fps`` seconds, or padded with silence up to it). The file is written under a
temporary name in the destination folder and renamed to the final name only when the writer is
closed cleanly; after an error (including ``KeyboardInterrupt``) the temporary file is removed and
the final path is left as it was.

Odd frame sizes: yuv420p needs even width and height, so a frame with an odd dimension is padded
by one row and/or column that repeats its last row/column (edge padding; nothing is cropped and
nothing is rescaled). The written video is then ``(H + H % 2, W + W % 2)``.

``BackgroundWriter`` runs a writer's encoding on its own thread, so that it overlaps the rendering of the next
frames (what ``generate`` uses): a small bounded queue in between, errors of the encoder raised in the caller.

``probe_video`` reads back what a file holds (used by the tests and by callers that check outputs).
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are strings here
    from typing_extensions import Self

import numpy as np
from .errors import DittoError
from .validate import check_output_path

__all__ = ["VIDEO_SUFFIXES", "BackgroundWriter", "VideoWriter", "downmix_to_stereo", "probe_video", "h264_encoder_name",
           "H264_ENCODERS", "VideoWriterError"]

#: H.264 encoders tried in this order (the PyAV wheels ship libx264)
H264_ENCODERS: tuple[str, ...] = ("libx264", "libopenh264", "h264_videotoolbox", "h264_nvenc", "h264_qsv", "h264_amf")
#: file name endings of what the writer makes (an MPEG-4 container; .mov and .m4v players read it as well)
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov")
#: sample rates the AAC encoder accepts; other input rates are resampled to 48 kHz (soxr)
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class VideoWriterError(DittoError, RuntimeError):
    """The writer cannot do what was asked (no H.264 encoder, write after close, ...)."""


def _av():
    try:
        import av  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - av is a hard dependency of the project
        raise VideoWriterError("writing mp4 needs the 'av' package (PyAV): pip install av") from e
    return av


def h264_encoder_name(preferred: str | None = None) -> str:
    """The first H.264 encoder this PyAV build has (``preferred`` first if given).

    Raises ``VideoWriterError`` naming the encoders tried when none is available.
    """
    av = _av()
    names = ((preferred,) if preferred else ()) + tuple(n for n in H264_ENCODERS if n != preferred)
    for name in names:
        try:
            codec = av.Codec(name, "w")
        except Exception:  # noqa: BLE001 - unknown codec name or no encoder in this build
            continue
        if codec.type == "video":
            return name
    raise VideoWriterError(
        f"no H.264 encoder in this PyAV build (tried {', '.join(names)}); install a PyAV wheel with libx264 (pip install av)"
    )


def _as_frames(frames: Any) -> np.ndarray:
    """(H, W, 3) or (N, H, W, 3) uint8 RGB -> (N, H, W, 3) uint8, or a ValueError."""
    arr = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 RGB of shape (H, W, 3) or (N, H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames: expected dtype uint8 (0-255 RGB), got {arr.dtype}; convert with (x * 255).round().clip(0, 255)")
    if arr.shape[1] < 2 or arr.shape[2] < 2:
        raise ValueError(f"frames: each frame must be at least 2x2 pixels, got {arr.shape[1]}x{arr.shape[2]}")
    return arr


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) frame to even H and W by repeating its last row / column."""
    h, w = frame.shape[:2]
    ph, pw = h % 2, w % 2
    if ph == 0 and pw == 0:
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="edge")


def _as_audio(audio: Any) -> np.ndarray:
    """Mono float32 samples in [-1, 1] from (T,), (T, 1) or (1, T) (PCM integers scaled as
    :func:`ditto_core.audio.pcm_to_float`); other shapes and non-finite samples raise."""
    from .audio import pcm_to_float

    arr = pcm_to_float(audio, "audio_16k")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"audio_16k: expected a mono waveform of shape (T,), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("audio_16k: the waveform holds NaN or inf values")
    return arr


def _as_channels(audio: Any) -> np.ndarray:
    """The ``audio`` keyword: (T,) or (C, T) samples (numpy or torch; PCM integers scaled as
    :func:`ditto_core.audio.pcm_to_float`) -> (C, T) float32 with C in {1, 2} (more channels downmixed, see
    :func:`downmix_to_stereo`); other shapes and non-finite samples raise ``ValueError``."""
    from .audio import pcm_to_float

    arr = pcm_to_float(audio, "audio")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"audio: expected samples of shape (T,) or (C, T), got shape {arr.shape}")
    if arr.shape[0] > 64:
        raise ValueError(f"audio: expected (C, T) with at most 64 channels, got shape {arr.shape} (is it (T, C)? transpose it)")
    if arr.shape[1] == 0:
        raise ValueError("audio: the waveform is empty (0 samples); pass None for a silent video")
    if not np.all(np.isfinite(arr)):
        raise ValueError("audio: the waveform holds NaN or inf values")
    if arr.shape[0] > 2:
        arr = downmix_to_stereo(arr)
    return np.ascontiguousarray(arr, dtype=np.float32)


def downmix_to_stereo(x: np.ndarray) -> np.ndarray:
    """(C, T) with C > 2 -> (2, T): channel 0 is the left, channel 1 the right, and each further channel (centre,
    LFE, surrounds, ...) goes into both at half weight; the sum is divided by ``1 + (C - 2) / 2`` so it cannot clip.
    (A plain matrix: a waveform carries no channel layout, so no layout-aware mix is attempted.)"""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] <= 2:
        return x
    rest = 0.5 * x[2:].sum(axis=0, dtype=np.float64)
    norm = 1.0 + (x.shape[0] - 2) / 2.0
    return (np.stack([x[0] + rest, x[1] + rest]) / norm).astype(np.float32)


def _resample(x: np.ndarray, rate: float, to: int) -> np.ndarray:
    """(C, T) float32 at ``rate`` -> (C, round(T * to / rate)) at ``to`` Hz (soxr HQ)."""
    import soxr

    n_out = int(round(x.shape[1] * to / rate))
    y = np.asarray(soxr.resample(np.ascontiguousarray(x.T), rate, to, quality="soxr_hq"), dtype=np.float32)
    y = y.reshape(-1, x.shape[0]).T
    if y.shape[1] > n_out:
        y = y[:, :n_out]
    elif y.shape[1] < n_out:
        y = np.pad(y, ((0, 0), (0, n_out - y.shape[1])))
    return np.ascontiguousarray(y)


class _CloseOnSuccess:
    """Context manager of a writer: ``close()`` when the block succeeds, ``abort()`` on any exception."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


class VideoWriter(_CloseOnSuccess):
    """Write an H.264 (yuv420p) mp4 frame by frame, with an optional AAC sound track (mono or stereo).

    Use as a context manager::

        with VideoWriter("out.mp4", fps=25, audio=samples, audio_sample_rate=48000) as w:
            for frame in frames:          # (H, W, 3) uint8 RGB
                w.write(frame)

    Args:
        path: final file name. The parent folder must exist. An existing file there is
            replaced only on a clean close.
        fps: frame rate (frames per second, may be fractional, e.g. 30000/1001).
        audio_16k: the older form of ``audio`` for a mono waveform (T,) (or (T, 1) / (1, T)) at
            ``audio_sample_rate`` Hz; by default the whole waveform is written (not fitted to the video).
            Give ``audio`` or ``audio_16k``, not both; neither makes a silent video.
        audio_sample_rate: sample rate of the audio in Hz (may be fractional). The AAC track keeps that rate when
            AAC supports it (8, 11.025, 12, 16, 22.05, 24, 32, 44.1, 48, 64, 88.2, 96 kHz, 7350 Hz); any other rate is
            resampled to 48 kHz (soxr HQ).
        crf: x264 constant rate factor (0 lossless .. 51; 18 is visually lossless).
        preset: x264 preset ("ultrafast" .. "veryslow").
        audio_bitrate: AAC bit rate in bit/s; None: 128 kb/s mono, 192 kb/s stereo (at most the 6 bits per sample
            and channel AAC can carry, e.g. 96 kb/s for 16 kHz mono).
        encoder: H.264 encoder name to prefer; None tries ``H264_ENCODERS`` in order.
        audio: the sound track, (T,) mono or (C, T) samples (numpy or torch; float in [-1, 1], PCM integers are
            scaled as :func:`ditto_core.audio.pcm_to_float`; NaN/inf refused) at ``audio_sample_rate`` Hz. One
            channel is written as mono, two as stereo; more than two are downmixed to stereo
            (:func:`downmix_to_stereo`: channels 0/1 left/right, the others into both at half weight).
        fit_audio: fit the track to the video's length, ``frames / fps`` seconds, when the writer closes: longer
            audio is cut there, shorter audio is padded with silence up to it. None (default): True with ``audio``,
            False with ``audio_16k`` (the whole waveform, as before).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float = 25,
        audio_16k: np.ndarray | None = None,
        audio_sample_rate: float = 16000,
        crf: int = 18,
        preset: str = "medium",
        audio_bitrate: int | None = None,
        encoder: str | None = None,
        *,
        audio: Any = None,
        fit_audio: bool | None = None,
    ) -> None:
        self.path = check_output_path("path", path, VIDEO_SUFFIXES)
        fps_frac = Fraction(fps).limit_denominator(1_000_000)
        if fps_frac <= 0:
            raise ValueError(f"fps: expected a positive frame rate, got {fps}")
        if not 0 <= int(crf) <= 51:
            raise ValueError(f"crf: expected 0..51, got {crf}")
        self.fps = fps_frac
        self.crf = int(crf)
        self.preset = preset
        if audio is not None and audio_16k is not None:
            raise ValueError("audio: give either audio or audio_16k, not both")
        samples: np.ndarray | None = None
        if audio_16k is not None:
            samples = _as_audio(audio_16k)[None]
        elif audio is not None:
            samples = _as_channels(audio)
        self.fit_audio = bool(audio is not None) if fit_audio is None else bool(fit_audio)
        rate = 0.0
        if samples is not None:
            try:
                rate = float(audio_sample_rate)
            except (TypeError, ValueError):
                raise ValueError(f"audio_sample_rate: expected a positive rate in Hz, got {audio_sample_rate!r}") from None
            if not np.isfinite(rate) or rate <= 0:
                raise ValueError(f"audio_sample_rate: expected a positive rate in Hz, got {audio_sample_rate}")
            if not (rate.is_integer() and int(rate) in _AAC_RATES):
                samples, rate = _resample(samples, rate, 48000), 48000.0
        #: (C, T) float32 at ``audio_rate`` Hz, C in {1, 2} (None: no sound track)
        self.audio: np.ndarray | None = samples
        self.audio_rate = int(rate)  # 0 without a sound track
        self.audio_channels = 0 if samples is None else int(samples.shape[0])
        if audio_bitrate is None:  # 128 kb/s mono, 192 kb/s stereo, within AAC's 6 bits per sample and channel
            n_ch = max(self.audio_channels, 1)
            audio_bitrate = min(128_000 if n_ch == 1 else 192_000, 6 * (self.audio_rate or 48000) * n_ch)
        elif int(audio_bitrate) <= 0:
            raise ValueError(f"audio_bitrate: expected a positive bit rate in bit/s, got {audio_bitrate}")
        self.audio_bitrate = int(audio_bitrate)
        self.encoder = h264_encoder_name(encoder)

        self.tmp_path = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial")
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (H, W) of the input frames
        self._audio_sent = 0  # samples of the track (audio, then silence when fitted) given to the encoder
        self._av = _av()
        self._container = None
        self._vstream = None
        self._astream = None
        self._state = "new"  # new -> open -> closed | aborted

    def __del__(self) -> None:  # a writer dropped without close() leaves no temporary file
        try:
            if getattr(self, "_state", "closed") in ("new", "open"):
                self.abort()
        except Exception:  # noqa: BLE001 - best effort at interpreter shutdown
            pass

    # -- writing -------------------------------------------------------------------------------
    def _open(self, h: int, w: int) -> None:
        av = self._av
        self._container = av.open(str(self.tmp_path), mode="w", format="mp4")
        try:
            vs = self._container.add_stream(self.encoder, rate=self.fps)
            vs.width = w + w % 2
            vs.height = h + h % 2
            vs.pix_fmt = "yuv420p"
            vs.codec_context.time_base = 1 / self.fps
            if self.encoder == "libx264":
                vs.options = {"crf": str(self.crf), "preset": self.preset}
            else:
                vs.bit_rate = max(1_000_000, int(w * h * float(self.fps) * 0.15))
            self._vstream = vs
            if self.audio is not None:
                a = self._container.add_stream("aac", rate=self.audio_rate)
                a.layout = self._layout
                a.bit_rate = self.audio_bitrate
                self._astream = a
        except BaseException:
            self._container.close()
            raise
        self._state = "open"

    def write(self, frames: Any) -> None:
        """Append one frame (H, W, 3) or a batch (N, H, W, 3) of uint8 RGB frames."""
        if self._state in ("closed", "aborted"):
            raise VideoWriterError(f"write: the writer for {self.path} is already {self._state}")
        arr = _as_frames(frames)
        h, w = int(arr.shape[1]), int(arr.shape[2])
        if self.size is None:
            self.size = (h, w)
            self._open(h, w)
        elif (h, w) != self.size:
            raise ValueError(f"frames: size {h}x{w} differs from the first frame's {self.size[0]}x{self.size[1]}")
        av = self._av
        for frame in arr:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(_pad_even(frame)), format="rgb24")
            vf.pts = self.frames_written
            vf.time_base = 1 / self.fps
            for packet in self._vstream.encode(vf):
                self._container.mux(packet)
            self.frames_written += 1
            self._send_audio(self.frames_written / self.fps)

    write_batch = write

    @property
    def _layout(self) -> str:
        return "stereo" if self.audio_channels == 2 else "mono"

    def _send_audio(self, until_s: float | Fraction | None) -> None:
        """Give the encoder the track up to ``until_s`` seconds (None: the end of the track: the whole waveform, or
        when fitted ``frames_written / fps``). A fitted track is the waveform cut there or followed by silence."""
        if self._astream is None or self.audio is None:
            return
        n = self.audio.shape[1]
        if until_s is None:
            until_s = self.frames_written / self.fps if self.fit_audio else None
        if until_s is None:
            end = n
        else:
            end = int(round(until_s * self.audio_rate))
            if not self.fit_audio:
                end = min(n, end)
        if end <= self._audio_sent:
            return
        chunk = self.audio[:, self._audio_sent : min(end, n)]
        if end > max(n, self._audio_sent):  # fitted: silence after the waveform
            pad = end - max(n, self._audio_sent)
            chunk = np.concatenate([chunk, np.zeros((self.audio_channels, pad), np.float32)], axis=1)
        af = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self._layout)
        af.sample_rate = self.audio_rate
        af.pts = self._audio_sent
        af.time_base = Fraction(1, self.audio_rate)
        for packet in self._astream.encode(af):
            self._container.mux(packet)
        self._audio_sent = end

    # -- finishing -----------------------------------------------------------------------------
    def close(self) -> Path:
        """Flush the encoders, finish the file and move it to its final name; returns that path."""
        if self._state == "closed":
            return self.path
        if self._state == "aborted":
            raise VideoWriterError(f"close: the writer for {self.path} was aborted")
        if self.frames_written == 0:
            self.abort()
            raise VideoWriterError(f"close: no frames were written to {self.path}; no file was made")
        try:
            self._send_audio(None)
            for packet in self._vstream.encode(None):
                self._container.mux(packet)
            if self._astream is not None:
                for packet in self._astream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; the final path is not touched."""
        if self._state in ("closed", "aborted"):
            return
        self._state = "aborted"
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._container = None
        try:
            self.tmp_path.unlink(missing_ok=True)
        except OSError:
            pass


class BackgroundWriter(_CloseOnSuccess):
    """``writer.write`` on a thread of its own, so H.264 encoding overlaps the caller's next frames.

    ``write(frames)`` hands the batch to the thread and returns at once, blocking only while ``max_pending``
    batches already wait (memory stays bounded); the caller must not change a batch after handing it over.
    An encoder error is raised by the next ``write`` or by ``close``. ``close()`` waits for the queue and closes
    the writer (the file appears under its final name); ``abort()`` drops what is queued and aborts the writer
    (nothing is left). As a context manager: close on success, abort on any exception (Cancel included).
    """

    _STOP = object()

    def __init__(self, writer: VideoWriter, max_pending: int = 2) -> None:
        if int(max_pending) < 1:
            raise ValueError(f"max_pending: expected >= 1 batches, got {max_pending}")
        self.writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(max_pending))
        self._error: BaseException | None = None
        self._dropping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ditto-video-writer", daemon=True)
        self._thread.start()
        self._done = False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is None and not self._dropping.is_set():
                try:
                    self.writer.write(item)
                except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                    self._error = e

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            self.abort()
            raise err

    def write(self, frames: Any) -> None:
        """Queue one frame (H, W, 3) or a batch (N, H, W, 3) of uint8 RGB frames."""
        if self._done:
            raise VideoWriterError(f"write: the writer for {self.writer.path} is already finished")
        self._raise_error()
        self._queue.put(frames)

    def _join(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()

    def close(self) -> Path:
        """Encode what is queued, then close the writer; returns the final path."""
        if self._done:
            return self.writer.close()
        self._join()
        self._done = True
        self._raise_error()  # an encoder error aborts the writer and is raised here
        return self.writer.close()

    def abort(self) -> None:
        """Drop what is queued and abort the writer (its temporary file is removed)."""
        if not self._done:
            self._dropping.set()
            self._join()
            self._done = True
        self.writer.abort()


def probe_video(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What an mp4 holds: ``dict(frames, fps, width, height, audio_seconds, has_audio)``.

    ``frames`` is counted by decoding the video stream; ``fps`` is the stream's average rate
    (float); ``audio_seconds`` is the audio stream's duration in seconds (0.0 without audio),
    which excludes the AAC padding. Also returns ``video_codec``, ``pix_fmt``, ``audio_codec``,
    ``audio_sample_rate``, ``audio_channels`` (0 without audio) and ``audio_decoded_seconds`` (whole decoded AAC
    frames).
    """
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {path} is not a file")
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path}: no video stream")
        vs = c.streams.video[0]
        info: dict[str, Any] = {
            "width": int(vs.codec_context.width),
            "height": int(vs.codec_context.height),
            "fps": float(vs.average_rate) if vs.average_rate else float("nan"),
            "video_codec": vs.codec_context.name,
            "pix_fmt": vs.codec_context.pix_fmt,
        }
        frames = sum(1 for _ in c.decode(vs))
        info["frames"] = frames
    with av.open(str(path)) as c:
        info["has_audio"] = bool(c.streams.audio)
        info["audio_seconds"] = 0.0
        info["audio_codec"] = None
        info["audio_sample_rate"] = None
        info["audio_channels"] = 0
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_codec"] = a.codec_context.name
            info["audio_sample_rate"] = int(a.codec_context.sample_rate)
            info["audio_channels"] = int(a.codec_context.channels)
            n = sum(f.samples for f in c.decode(a))
            decoded = n / float(a.codec_context.sample_rate)
            info["audio_decoded_seconds"] = decoded  # whole AAC frames (1024 samples) decoded
            # the stream duration honours the encoder's priming/padding trim (edit list)
            info["audio_seconds"] = float(a.duration * a.time_base) if a.duration else decoded
    return info
