"""A live avatar: a :class:`~ditto_core.runtime.StreamingSession` that never runs dry, can be interrupted, and
never holds more than a bounded number of frames for a slow client.

Timeline. Everything a session renders lies on one 16 kHz timeline: frame ``i`` shows samples
``[640·i, 640·(i+1))`` (25 fps). The pacer thread feeds the stream what the client pushed (speech) and, while none is
waiting and ``idle`` is on, silence, so the DiT keeps producing motion (the face breathes, blinks and moves on into
speech without a freeze or a jump: the windows stay conditioned on the motion before them). Silence is fed in real
time (the timeline never runs more than :data:`JITTER_S` behind the wall clock) and never further ahead of the frames
already out than the pipeline needs (:meth:`LiveSession.ahead_limit`), so a pipeline slower than real time (a CPU)
idles at its own pace instead of piling up audio. Speech pushed faster than real time (TTS) is fed as fast as the
pipeline takes it.

Barge-in. :meth:`LiveSession.interrupt` drops the speech not fed yet and the frames not taken yet, and silences the
audio of the frames still to come; the stream goes on with silence, so the avatar returns to idle within the frames
already inside the pipeline: the online DiT needs about two hops (20 frames) of audio past a frame before it emits it,
plus a HuBERT chunk and the queues, so about 30 frames (1.2 s) at the online settings, always within one DiT window
(80 frames).

Back-pressure. Frames wait in a queue of ``frame_queue`` (by default a DiT hop + 26); when a client takes them slower than they come, the oldest
is dropped and counted (``frames_dropped``). Pushed speech waiting for the pipeline is limited to
``max_buffer_seconds``; more is refused (:class:`LiveError`), the session goes on.

Threads: the stream's two workers, the pacer (feeds audio) and the consumer (takes frames, encodes JPEG). All are
joined by :meth:`LiveSession.close`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import soxr
import torch

from ..audio import _to_mono, pcm_to_float
from ..errors import InputError
from ..render.renderer import Renderer
from ..runtime.models import DittoModels
from ..runtime.options import StreamingOptions
from ..runtime.stream import StreamCancelled, StreamFrame, StreamingSession
from ..source import Source
from .settings import AudioFormat, LiveSettings

__all__ = ["FRAME_SAMPLES", "JITTER_S", "SAMPLE_RATE", "AudioDecoder", "LiveError", "LiveFrame", "LiveSession"]

SAMPLE_RATE = 16000
FPS = 25
#: 16 kHz samples per video frame
FRAME_SAMPLES = SAMPLE_RATE // FPS
#: the pacer feeds at most this many samples per push (one frame): the stream's own audio queue stays short, so an
#: interrupt drops nearly all waiting speech
PIECE = FRAME_SAMPLES
#: idle silence starts once the timeline is this far behind the wall clock (speech arriving in real time with some
#: network jitter is not cut by silence)
JITTER_S = 0.06


class LiveError(InputError):
    """A live client's request refused (the session goes on). ``code``: a short machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AudioDecoder:
    """Client audio bytes in an :class:`AudioFormat` -> float32 mono 16 kHz, resampled as one stream (the resampler
    keeps its state between messages, so pieces of any size give the same samples as the whole)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler = None if fmt.sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            fmt.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def decode(self, data: bytes) -> np.ndarray:
        """One message of audio -> (T,) float32 at 16 kHz (T may be 0 while the resampler fills)."""
        fmt = self.format
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LiveError("bad_audio", f"audio: expected bytes of {fmt.encoding} audio, got {type(data).__name__}")
        if len(data) % fmt.frame_bytes:
            raise LiveError("bad_audio", f"audio: a message of {len(data)} bytes is not a whole number of "
                                         f"{fmt.encoding} sample frames of {fmt.channels} channel(s) "
                                         f"({fmt.frame_bytes} bytes each)")
        # the project's one PCM conversion (int16 / 32768) and channel mix (the mean)
        x = pcm_to_float(np.frombuffer(data, dtype="<i2" if fmt.encoding == "s16le" else "<f4"), "audio")
        if fmt.encoding == "f32le" and not np.isfinite(x).all():
            raise LiveError("bad_audio", "audio: NaN or infinite samples in f32le audio")
        x = _to_mono(x.reshape(-1, fmt.channels).T)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=False)
        return np.ascontiguousarray(x, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The resampler's tail at the end of the audio."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return np.ascontiguousarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True),
                                    dtype=np.float32)


@dataclass(frozen=True)
class LiveFrame:
    """One frame of a live session.

    ``index``: its number on the session's timeline (25 fps, from 0); ``time`` = ``index / 25`` s;
    ``audio_span``: ``(start, end)`` 16 kHz samples of the timeline it shows; ``speech``: ``(start, end)`` of the
    client's own pushed audio (in 16 kHz samples since the session started) within that span, None for idle silence;
    ``delay``: for a speech frame, seconds from the :meth:`LiveSession.push` of its last speech sample to the frame
    coming out: what a listener perceives, the pipeline's look-ahead (about 20 frames online) and any audio waiting
    included (None for idle);
    ``image``: the picture, (H, W, 3) uint8 RGB; ``jpeg``: the same as JPEG (b"" when the session does not encode);
    ``audio``: (640,) float32 timeline samples (speech or silence); ``lag``: seconds from the
    audio that made it possible entering the pipeline to the frame coming out; ``wall_time``: ``time.time()`` when it
    came out; ``audio_wall_time``: ``time.time()`` when that audio entered the pipeline.
    """

    index: int
    time: float
    audio_span: tuple[int, int]
    speech: tuple[int, int] | None
    image: np.ndarray | None
    jpeg: bytes
    audio: np.ndarray
    lag: float
    delay: float | None
    wall_time: float
    audio_wall_time: float
    width: int
    height: int


class _Timeline:
    """The audio fed so far, kept until the frames showing it are out: pieces of ``(start, samples, speech_start)``
    (``speech_start`` None for silence)."""

    def __init__(self) -> None:
        self._pieces: collections.deque[tuple[int, np.ndarray, int | None]] = collections.deque()
        self.fed = 0

    def add(self, samples: np.ndarray, speech_start: int | None) -> None:
        self._pieces.append((self.fed, samples, speech_start))
        self.fed += samples.shape[0]

    def mute_from(self, sample: int) -> None:
        """Silence the audio from timeline ``sample`` on (what an interrupt cancels but the pipeline already has)."""
        for start, x, _ in self._pieces:
            if start + x.shape[0] > sample:
                x[max(0, sample - start):] = 0.0

    def frame(self, index: int) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Frame ``index``'s samples (640,) (zeros past what was fed) and its speech span; forgets what is before it."""
        lo, hi = index * FRAME_SAMPLES, (index + 1) * FRAME_SAMPLES
        while self._pieces and self._pieces[0][0] + self._pieces[0][1].shape[0] <= lo:
            self._pieces.popleft()
        out = np.zeros(FRAME_SAMPLES, np.float32)
        speech: list[int] = []
        for start, x, sp in self._pieces:
            if start >= hi:
                break
            a, b = max(lo, start), min(hi, start + x.shape[0])
            if b <= a:
                continue
            out[a - lo: b - lo] = x[a - start: b - start]
            if sp is not None:
                speech += [sp + a - start, sp + b - start]
        return out, ((min(speech), max(speech)) if speech else None)


class LiveSession:
    """A live avatar over one registered source (see the module docstring).

    Usage (any threads)::

        s = LiveSession(models, source, LiveSettings(output="crop"), on_frame=wake_up)
        s.push(samples_16k)            # speech, (T,) float32 at 16 kHz, as it arrives
        frames = s.take()              # the frames ready now (LiveFrame), in order
        s.interrupt()                  # barge-in
        s.end()                        # no more audio: the rest of the frames follow, then finished is set
        s.close()                      # stop now; joins every thread (always call it)

    Args:
        models: the loaded networks (shared with other sessions, never changed).
        source: the registered avatar.
        settings: :class:`LiveSettings`.
        renderer: a renderer for this session only (default: a new one, released by :meth:`close`).
        on_frame: called (from a worker thread) after a frame is queued, after an error and when the session ends;
            it must not block (an asyncio server hands it ``loop.call_soon_threadsafe``).
        jpeg: encode each frame as JPEG (``settings.jpeg_quality``) in the session's frame thread (the WebSocket
            transport sends JPEG; WebRTC encodes video itself and passes False).
    """

    def __init__(
        self,
        models: DittoModels,
        source: Source,
        settings: LiveSettings | None = None,
        *,
        renderer: Renderer | None = None,
        on_frame: Callable[[], None] | None = None,
        jpeg: bool = True,
    ) -> None:
        self.settings = st = settings or LiveSettings()
        self._jpeg = bool(jpeg)
        self.models = models
        self._on_frame = on_frame or (lambda: None)
        self._lock = threading.Condition()
        self._input: collections.deque[tuple[np.ndarray, int]] = collections.deque()  # (samples, speech_start)
        self._input_n = 0
        self._speech_in = 0  # speech samples pushed so far (the client's 16 kHz clock)
        self._timeline = _Timeline()
        self._out: collections.deque[LiveFrame] = collections.deque()
        self._ending = False
        self._closed = False
        self.finished = threading.Event()
        self.error: BaseException | None = None
        # statistics
        self._t0 = time.perf_counter()
        self._anchor = self._t0  # the wall-clock time of timeline sample 0 (moved by interrupts)
        self.frames_out = 0
        self.frames_taken = 0
        self.frames_dropped = 0
        self.frames_interrupted = 0
        self.interrupts = 0
        self.speech_samples = 0
        self.idle_samples = 0
        self.first_frame_latency: float | None = None
        self._lags: collections.deque[float] = collections.deque(maxlen=50)
        self._delays: collections.deque[float] = collections.deque(maxlen=50)
        self._pushes: collections.deque[tuple[int, float]] = collections.deque()  # (speech end sample, push time)
        self._out_times: collections.deque[float] = collections.deque(maxlen=50)
        self._wall_offset = time.time() - time.perf_counter()

        self._stream = StreamingSession(models, source, st.job_options(models.release.offline.overlap),
                                        StreamingOptions(), renderer=renderer)
        cfg = self._stream.motion_config
        self.hop = cfg.hop
        self._threads = [threading.Thread(target=self._guard, args=(self._pacer,), name="ditto-live-pacer", daemon=True),
                         threading.Thread(target=self._guard, args=(self._consumer,), name="ditto-live-frames",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------------------------------ caller API
    def push(self, samples: np.ndarray) -> None:
        """Speech: (T,) float32 at 16 kHz. Raises :class:`LiveError` ("buffer_full") when more than
        ``max_buffer_seconds`` would be waiting, ("ended") after :meth:`end`."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(x).all():
            raise LiveError("bad_audio", "audio: NaN or infinite samples")
        with self._lock:
            self._raise_if_failed()
            if self._ending or self._closed:
                raise LiveError("ended", "audio after the end of the session's audio")
            limit = int(self.settings.max_buffer_seconds * SAMPLE_RATE)
            if self._input_n + x.shape[0] > limit:
                raise LiveError("buffer_full", f"audio: {self.settings.max_buffer_seconds:g} s of speech are "
                                               "already waiting for the pipeline; this piece was dropped")
            if x.shape[0]:
                self._input.append((x, self._speech_in))
                self._input_n += x.shape[0]
                self._speech_in += x.shape[0]
                self._pushes.append((self._speech_in, time.perf_counter()))
            self._lock.notify_all()

    def interrupt(self) -> dict[str, float]:
        """Barge-in: drop the speech not fed yet and the frames not taken yet; idle resumes at once. Returns what
        was dropped: ``{"audio_seconds": s, "frames": n}``."""
        with self._lock:
            dropped_audio = self._input_n / SAMPLE_RATE
            self._input.clear()
            self._input_n = 0
            dropped = len(self._out)
            self._out.clear()
            self._timeline.mute_from(self.frames_out * FRAME_SAMPLES)
            self.frames_interrupted += dropped
            self.interrupts += 1
            self._anchor = time.perf_counter() - self._timeline.fed / SAMPLE_RATE - JITTER_S
            self._lock.notify_all()
        return {"audio_seconds": dropped_audio, "frames": dropped}

    def end(self) -> None:
        """No more audio: what is waiting is fed, then the stream ends; :attr:`finished` is set after the last
        frame is queued."""
        with self._lock:
            self._ending = True
            self._lock.notify_all()

    def take(self, limit: int | None = None) -> list[LiveFrame]:
        """The frames ready now, oldest first (at most ``limit``); raises the session's error once it failed."""
        with self._lock:
            n = len(self._out) if limit is None else min(limit, len(self._out))
            out = [self._out.popleft() for _ in range(n)]
            self.frames_taken += n
            if not out:
                self._raise_if_failed()
            return out

    def close(self) -> None:
        """Stop now: cancel the stream, join every thread, release the renderer (and the device memory it holds)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._stream.cancel()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join()
        self._stream = None  # type: ignore[assignment]  # drops the renderer and its buffers
        if self.models.device.type == "cuda":
            torch.cuda.empty_cache()
        self.finished.set()
        self._on_frame()  # a transport waiting for frames learns that the session is over

    @property
    def alive_threads(self) -> int:
        """Threads of this session still running (the stream's workers, the pacer, the consumer)."""
        n = sum(t.is_alive() for t in self._threads)
        return n + (int(self._stream.alive) * 2 if self._stream is not None else 0)

    def ahead_limit(self) -> int:
        """How far (16 kHz samples) idle silence may run ahead of the frames already out: what the online pipeline
        needs before it emits the next frames (two DiT hops, one HuBERT chunk with its 1920-sample lead-in, a render
        batch)."""
        return FRAME_SAMPLES * (2 * self.hop + 4) + 6480 + 1920

    def stats(self) -> dict[str, Any]:
        """Counters and timings (seconds) of this session."""
        with self._lock:
            now = time.perf_counter()
            fps = None
            if len(self._out_times) >= 2 and self._out_times[-1] > self._out_times[0]:
                fps = (len(self._out_times) - 1) / (self._out_times[-1] - self._out_times[0])
            return {
                "frames": self.frames_out, "frames_sent": self.frames_taken, "frames_dropped": self.frames_dropped,
                "frames_interrupted": self.frames_interrupted, "interrupts": self.interrupts,
                "speech_seconds": self.speech_samples / SAMPLE_RATE, "idle_seconds": self.idle_samples / SAMPLE_RATE,
                "buffered_seconds": self._input_n / SAMPLE_RATE,
                "first_frame_latency": self.first_frame_latency,
                "lag": float(np.mean(self._lags)) if self._lags else None,
                "lag_max": float(np.max(self._lags)) if self._lags else None,
                "delay": float(np.mean(self._delays)) if self._delays else None,
                "fps": fps, "uptime": now - self._t0,
            }

    # ------------------------------------------------------------------------------------------ workers
    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except StreamCancelled:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the caller through take() / error
            with self._lock:
                if self.error is None and not self._closed:
                    self.error = e
                self._lock.notify_all()
            self.finished.set()
            self._on_frame()

    def _next_piece(self) -> tuple[np.ndarray, int | None] | None:
        """Under the lock: the next piece to feed ``(samples, speech_start)`` (speech_start None for silence), or None."""
        if self._input:
            x, sp = self._input[0]
            if x.shape[0] <= PIECE:
                self._input.popleft()
            else:
                self._input[0] = (x[PIECE:], sp + PIECE)
                x = x[:PIECE]
            self._input_n -= x.shape[0]
            return x, sp
        if self._ending or not self.settings.idle:
            return None
        fed = self._timeline.fed
        due = (time.perf_counter() - self._anchor - JITTER_S) * SAMPLE_RATE
        if fed < due and fed - self.frames_out * FRAME_SAMPLES < self.ahead_limit():
            return np.zeros(PIECE, np.float32), None
        return None

    def _pacer(self) -> None:
        stream = self._stream
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    piece = self._next_piece()
                    if piece is not None or (self._ending and not self._input):
                        break
                    self._lock.wait(0.01)
                if piece is not None:
                    x, sp = piece
                    self._timeline.add(x, sp)
                    if sp is None:
                        self.idle_samples += x.shape[0]
                    else:
                        self.speech_samples += x.shape[0]
            if piece is None:  # ending, nothing left
                stream.end_audio()
                return
            stream.push(piece[0])

    def _consumer(self) -> None:
        q = int(self.settings.jpeg_quality)
        for f in self._stream.frames():
            self._queue(self._live_frame(f, q))
        self.finished.set()
        self._on_frame()

    def _live_frame(self, f: StreamFrame, quality: int) -> LiveFrame:
        image = f.image
        h, w = (0, 0) if image is None else image.shape[:2]
        jpeg = b""
        if image is not None and self._jpeg:
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise RuntimeError("JPEG encoding of a frame failed")
            jpeg = buf.tobytes()
        with self._lock:
            audio, speech = self._timeline.frame(f.index)
            delay = None if speech is None else f.time - self._push_time(speech[1])
        lo = f.index * FRAME_SAMPLES
        return LiveFrame(f.index, f.index / FPS, (lo, lo + FRAME_SAMPLES), speech, image, jpeg, audio,
                         f.time - f.audio_time, delay, f.time + self._wall_offset, f.audio_time + self._wall_offset, w, h)

    def _push_time(self, end: int) -> float:
        """Under the lock: when the speech sample ``end - 1`` was pushed (forgets earlier pushes)."""
        while len(self._pushes) > 1 and self._pushes[0][0] < end:
            self._pushes.popleft()
        return self._pushes[0][1]

    def _queue(self, frame: LiveFrame) -> None:
        with self._lock:
            if self.first_frame_latency is None:
                self.first_frame_latency = frame.lag
            self.frames_out += 1
            self._lags.append(frame.lag)
            if frame.delay is not None:
                self._delays.append(frame.delay)
            self._out_times.append(frame.wall_time)
            if len(self._out) >= self.settings.frame_queue:
                self._out.popleft()
                self.frames_dropped += 1
            self._out.append(frame)
            self._lock.notify_all()
        self._on_frame()

