"""Streaming generation: 16 kHz audio pushed in pieces -> rendered frames as soon as they are ready.

The official online mode (``stream_pipeline_online.StreamSDK`` with ``online_mode``), on two worker threads:

* **audio + motion thread**: the pushed samples get 1920 zeros in front and are cut into 6480-sample HuBERT
  chunks every 3200 samples (:class:`ditto_core.audio.OnlineAudioChunker`, the last chunk zero-padded), each
  giving 5 feature frames (:meth:`HubertFeatureExtractor.chunk_features`). The feature buffer starts with the
  features of ``P`` silent frames (:meth:`HubertFeatureExtractor.prefill_features`); a DiT window runs every
  ``hop = 80 - overlap`` new frames (:class:`ditto_core.audio2motion.OnlineMotionSampler`: overlap 70 / hop 10,
  10 steps, the condition frame reset every window on dims [0, 202], smoothing 3 by default: the release's online
  settings, :attr:`~ditto_core.runtime.options.ReleaseDefaults.online`). The first window emits nothing and gives
  ``d0``, the stitching reference; each later window emits ``hop`` frames, which the
  :class:`~ditto_core.runtime.keypoints.KeypointPlanner` turns into keypoints ``x_s``, ``x_d`` with the job's
  controls (amplitudes, pose offsets, fade-in), exactly as the offline job plans a whole clip.
* **render thread**: warp + decode in small batches (the first frame alone, for latency) and compositing (paste-back
  on the device, batched, or the 512 crop) through the same :class:`~ditto_core.runtime.frames.FrameRenderer` as
  the offline job, then hands the frames to the caller.

The session owns only queues, threads, statistics and its caller API; it owns its renderer too (a new one of the
models' backend unless the caller passes one), so sessions sharing one :class:`DittoModels` never share per-use state.

The stages talk through bounded ``queue.Queue`` s (the render queue holds at most ``queue_size`` emissions), so the
renderer starts as soon as keypoints exist and the motion thread never runs far ahead. Exceptions raised in a worker
(including a ``cancel`` callback's) stop both threads and are re-raised to the caller by the next
:meth:`StreamingSession.push` / :meth:`~StreamingSession.poll` / :meth:`~StreamingSession.frames` /
:meth:`~StreamingSession.close`; threads are always joined before that, and by :meth:`~StreamingSession.cancel` and
the context manager's exit.

Frame count. The official path emits ``10·floor(F/10) + 10`` frames for ``F = 5·ceil((samples + 1920) / 3200)``
features (hop 10): 7 to 17 frames of padding past the speech. By default the session stops at the offline count
``ceil(seconds·25)`` (the frames it emits equal the official ones one for one); ``official_count=True`` emits the
official number instead. Audio of at most 80 ms leaves the official path with no frame at all; the default mode
then appends one chunk of silence (as if the clip ended with silence) so that it still emits ``ceil(seconds·25)``.

Generalisation (no official counterpart): the official prefill is ``overlap`` frames, which aligns the first
emitted frame with the first audio frame only for ``overlap >= 40``; for a smaller overlap the prefill here is
``80 - overlap`` frames, which keeps that alignment (identical to the official setup for ``overlap >= 40``).
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._util import CancelFn
from ..audio import AudioError, ChunkConfig, OnlineAudioChunker, frame_count, pcm_to_float
from ..devices import stream_ready, wait_ready, worker_stream
from ..audio2motion import Audio2MotionConfig, OnlineMotionSampler, WindowRecord
from ..motion.track import Motion
from ..motion.vector import MOTION_DIM
from ..render.renderer import Renderer
from ..source import Source
from .frames import FrameRenderer
from .keypoints import KeypointPlanner, Keypoints
from .models import DittoModels
from .offline import prepare_job
from .options import JobOptions, StreamingOptions
from .stages import motion_conditions, source_motion_vector

__all__ = [
    "StreamCancelled",
    "StreamFrame",
    "StreamRecord",
    "StreamStats",
    "StreamingSession",
    "format_stats",
    "online_config",
    "stream_to_file",
]

#: how often (s) blocked waits look at the stop flag, errors and the cancel callback
_POLL_S = 0.05
#: pieces of audio the audio queue holds before ``push`` blocks
_AUDIO_QUEUE = 4


class StreamCancelled(RuntimeError):
    """The session was stopped by :meth:`StreamingSession.cancel` (or used after it)."""


class _Stopped(Exception):
    """Internal: a worker noticed the stop flag."""


@dataclass
class StreamFrame:
    """One generated frame. ``image``: (H, W, 3) uint8 RGB (the source frame with the face pasted back, or the
    512x512 crop; None with output "none"); ``motion`` (265,) the DiT motion as emitted (before edits);
    ``x_d`` (21, 3) the stitched driving keypoints; ``time``: ``time.perf_counter()`` when it came out;
    ``audio_time``: ``time.perf_counter()`` when the motion thread took in the audio piece that made this frame
    possible (``time - audio_time`` is the frame's processing lag)."""

    index: int
    image: np.ndarray | None
    motion: torch.Tensor
    x_d: torch.Tensor
    time: float
    audio_time: float = 0.0


@dataclass
class StreamStats:
    """Timings of a session (seconds, ``time.perf_counter`` differences).

    ``first_frame_latency``: from the moment the motion thread took in the audio piece that completed the chunk
    making frame 0 possible (with audio fed as fast as it is consumed, that is when it was fed) to frame 0 coming
    out; ``first_frame_latency_from_push``: the same from the ``push`` call that handed that piece over (includes
    waiting behind earlier pieces); ``sustained_fps``: frames after the first per second between the first and the
    last frame; ``wall``: from the session's start to its last frame.
    """

    frames: int = 0
    audio_seconds: float = 0.0
    windows: int = 0
    first_frame_latency: float | None = None
    first_frame_latency_from_push: float | None = None
    sustained_fps: float | None = None
    wall: float | None = None

    @property
    def real_time_factor(self) -> float | None:
        """Wall time per second of audio (< 1: faster than real time)."""
        if self.wall is None or self.audio_seconds <= 0:
            return None
        return self.wall / self.audio_seconds


@dataclass
class StreamRecord:
    """What the motion thread saw (``record=True``; for tests and inspection). Read it after the session ended.

    ``prefill_feat`` (P, 1024); ``chunk_feat`` one (5, 1024) per HuBERT chunk in order; ``windows`` the sampler's
    :class:`WindowRecord` s; ``window_chunks[w]`` chunks taken in when window w ran; ``d0`` (265,);
    ``x_s`` (1 or N, 21, 3) and ``motion`` (N, 265) / ``x_d`` (N, 21, 3) of every emitted frame.
    """

    seed: int = 0
    prefill_feat: torch.Tensor | None = None
    chunk_feat: list[np.ndarray] = field(default_factory=list)
    windows: list[WindowRecord] = field(default_factory=list)
    window_chunks: list[int] = field(default_factory=list)
    d0: torch.Tensor | None = None
    x_s_parts: list[torch.Tensor] = field(default_factory=list)
    motion_parts: list[torch.Tensor] = field(default_factory=list)
    x_d_parts: list[torch.Tensor] = field(default_factory=list)

    @property
    def motion(self) -> torch.Tensor:
        return torch.cat(self.motion_parts) if self.motion_parts else torch.zeros(0, MOTION_DIM)

    @property
    def x_d(self) -> torch.Tensor:
        return torch.cat(self.x_d_parts) if self.x_d_parts else torch.zeros(0, 21, 3)

    @property
    def x_s(self) -> torch.Tensor | None:
        if not self.x_s_parts:
            return None
        if self.x_s_parts[0].shape[0] == 1 and all(p.shape[0] == 1 for p in self.x_s_parts):
            return self.x_s_parts[0]
        return torch.cat(self.x_s_parts)

    def as_motion(self) -> Motion:
        """What the session emitted as a :class:`Motion` (its reference frame ``d0`` and blink seed kept): rendered
        with :func:`~ditto_core.runtime.render_frames` and the same job controls, it gives the stream's frames (with
        blinks off, or a fixed interval far from the end: a stream draws its blink schedule for an unknown length)."""
        return Motion(motion=self.motion, reference=self.d0, meta={"seed": str(self.seed)})


# ------------------------------------------------------------------------------------------ queue items
@dataclass
class _Audio:
    samples: np.ndarray
    t_push: float


@dataclass
class _End:
    t_push: float


@dataclass
class _Emission:
    motion: torch.Tensor  # (k, 265) as emitted
    keypoints: Keypoints
    audio_time: float  # perf_counter when the audio piece that made it possible was taken in
    ready: Any = None  # CUDA: an event on the motion thread's stream after the keypoints (None elsewhere)


@dataclass
class _Pending:
    """One frame waiting for the renderer: its index, motion (265,), x_s (21, 3), x_d (21, 3), audio time."""

    index: int
    motion: torch.Tensor
    x_s: torch.Tensor
    x_d: torch.Tensor
    audio_time: float
    ready: Any = None


_DONE = object()


def online_config(models: DittoModels, options: JobOptions) -> Audio2MotionConfig:
    """The stream's audio-to-motion settings: the release's online ones (:attr:`ReleaseDefaults.online`) with the
    job's steps, overlap, guidance and smoothing. Streaming needs 1..79 frames of overlap."""
    cfg = options.sampling.config(models.release.online)
    if not 1 <= cfg.overlap <= 79:
        raise ValueError(f"overlap: streaming needs 1..79 frames of overlap, got {cfg.overlap}")
    return cfg


@functools.lru_cache(maxsize=1)
def _openmp_backend() -> bool:
    """True when ATen parallelises with OpenMP, where ``torch.set_num_threads`` sets the calling thread's team."""
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


class _IntraopPins:
    """Per-worker intra-op thread counts (OpenMP backend) without changing what other threads are given.

    ATen gives a thread its count lazily, on its first parallel op, from a process-wide value that every
    ``torch.set_num_threads`` call overwrites: a render thread started beside a one-thread motion thread would
    silently run on one core, and a session created on a fresh thread while another session's workers run would read
    their count instead of the user's (and render with another reduction order). So the first pin saves the
    process-wide value, every session reads the user's count through :meth:`user_count`, and the last worker to
    finish puts the saved value back. One instance per process, because the value it guards is per process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = 0

    def user_count(self) -> int:
        """The intra-op thread count the user set (the calling thread's count while no worker is pinned)."""
        with self._lock:
            return self._saved if self._active else torch.get_num_threads()

    def pin(self, n: int) -> None:
        """Give the calling (worker) thread ``n`` intra-op threads; pair with :meth:`unpin`."""
        with self._lock:
            if not self._active:
                self._saved = torch.get_num_threads()  # a fresh worker reads the process-wide value here
            self._active += 1
            torch.get_num_threads()  # the lazy step first, so the explicit count sticks
            torch.set_num_threads(int(n))

    def unpin(self) -> None:
        """A pinned worker is done; the last one restores the process-wide value for threads started later."""
        with self._lock:
            self._active -= 1
            if not self._active:
                torch.set_num_threads(self._saved)


_INTRAOP = _IntraopPins()


def _as_samples(samples: Any) -> np.ndarray:
    """(T,) 16 kHz samples (numpy or torch; float in [-1, 1] or PCM integers, scaled by
    :func:`~ditto_core.audio.pcm_to_float`) -> float32 numpy, or a clear :class:`~ditto_core.audio.AudioError`."""
    x = pcm_to_float(samples, "samples")
    if x.ndim != 1:
        raise AudioError(f"samples: expected a mono (T,) waveform at 16 kHz, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise AudioError("samples: NaN or infinite values in the audio stream")
    return x


class StreamingSession:
    """Streaming talking-head generation for one registered source (see the module docstring).

    Usage, one thread::

        with StreamingSession(models, source, JobOptions(render=RenderOptions(output="crop"))) as s:
            for piece in microphone():          # (T,) float32 at 16 kHz, any T
                s.push(piece)
                for f in s.poll():              # frames ready now
                    show(f.image)
            for f in s.close():                 # end of audio: the rest
                show(f.image)

    or a producer thread calling :meth:`push` then :meth:`end_audio` while a consumer iterates :meth:`frames`, or
    :meth:`run` (feeds a whole waveform as fast as it is consumed and yields the frames). Frames wait in an
    unbounded queue until taken: take them as they come.

    Args:
        models: the loaded networks (HuBERT, DiT, stitching, warp, decoder) and the release's settings; shared, never
            changed (any number of sessions may use one at once).
        source: a registered :class:`Source` (image or video).
        options: the job (:class:`JobOptions`, the same object ``generate`` takes; unset sampling values are the
            release's online settings). ``clip.fade_out`` must be 0 (a stream knows no end).
        streaming: :class:`StreamingOptions` (frame count, queue size, motion-thread threads).
        cancel: called by every stage between units of work (chunks, windows, render batches) and while the caller
            waits; it raises to stop everything (the exception reaches the caller). Called from worker threads.
        renderer: the renderer to use (the session uses it from its render thread only); default: a new one of
            ``options.render.backend`` (or the models' backend), owned by the session.
        noises, x_inits: explicit DDIM eta noises (S-1, 80, 265) and per-window initial x (W, 80, 265) instead of
            the seeded draws (parity tests against the official random numbers).
        record: keep a :class:`StreamRecord` in :attr:`record`.
    """

    def __init__(
        self,
        models: DittoModels,
        source: Source,
        options: JobOptions | None = None,
        streaming: StreamingOptions | None = None,
        *,
        cancel: CancelFn | None = None,
        renderer: Renderer | None = None,
        noises: torch.Tensor | None = None,
        x_inits: torch.Tensor | None = None,
        record: bool = False,
    ) -> None:
        if not isinstance(source, Source):
            raise ValueError(f"source: expected a registered ditto_core.source.Source, got {type(source).__name__}")
        self.models = models
        self.source = source
        self.options = opts = options or JobOptions()
        self.streaming = streaming = streaming or StreamingOptions()
        if not isinstance(opts, JobOptions):
            raise ValueError(f"options: expected a JobOptions, got {type(opts).__name__}")
        if opts.clip.fade_out:
            raise ValueError("fade_out is not available in a stream (a stream does not know where the audio ends)")
        self._cancel_cb = cancel
        seed = int(opts.sampling.seed)
        self.record: StreamRecord | None = StreamRecord(seed=seed) if record else None
        self.stats = StreamStats()
        self._t_start = time.perf_counter()

        # ---- audio -> motion
        self.motion_config = cfg = online_config(models, opts)
        self.prefill_frames = cfg.seq_frames - cfg.fuse_length(online=True)
        self._chunk = ChunkConfig()
        with torch.inference_mode():
            prefill = torch.as_tensor(models.hubert.prefill_features(self.prefill_frames), dtype=torch.float32)
        if self.record is not None:
            self.record.prefill_feat = prefill.clone()
        self._sampler = OnlineMotionSampler(
            models.lmdm, motion_conditions(models, source, opts.sampling), source_motion_vector(source), prefill, cfg,
            generator=seed, noises=noises, x_inits=x_inits, cancel=self._worker_check, record=record,
            progress=self._on_window,
        )
        self._chunker = OnlineAudioChunker(self._chunk)
        if self.record is not None:
            self.record.windows = self._sampler.records  # the same list, filled by the sampler

        # ---- keypoints (the same planner as the offline job) and frames (the same renderer + compositor)
        self.planner = KeypointPlanner(models, source, opts.clip, seed=seed)
        self._reference_set = False
        self._frames: FrameRenderer | None = None
        if opts.render.output != "none":
            render = opts.render.for_device(models.device)
            r = renderer if renderer is not None else models.new_renderer(
                backend=render.backend, config=render.renderer_config(models.precision))
            self._frames = FrameRenderer(source, r, opts.render.output)

        # ---- threads and queues
        self._audio_q: queue.Queue = queue.Queue(maxsize=_AUDIO_QUEUE)
        self._render_q: queue.Queue = queue.Queue(maxsize=int(streaming.queue_size))
        self._out_q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._ended = False  # end_audio() called
        self._finished = False  # every frame handed out and threads joined
        self._cancelled = False
        self._emitted = 0  # motion frames emitted (motion thread)
        self._out_count = 0  # frames handed to the caller
        self._samples = 0  # samples taken in (motion thread)
        self._chunks = 0
        self._limit: int | None = None
        self._t_enable: tuple[float, float] | None = None  # (taken, pushed) of the piece enabling frame 0
        self._t_first: float | None = None
        self._t_last: float | None = None
        # intra-op threads per worker (OpenMP backend only: elsewhere the count is process-wide and left alone): the
        # render thread gets the caller's count; the motion thread motion_threads (1 on a CPU by default)
        self._caller_threads = _INTRAOP.user_count()
        motion_threads = streaming.motion_threads
        if motion_threads is None and models.device.type == "cpu":
            motion_threads = 1
        pin = _openmp_backend()
        self._threads = [
            threading.Thread(target=self._run_worker, args=(self._motion_worker, motion_threads if pin else None),
                             name="ditto-stream-motion", daemon=True),
            threading.Thread(target=self._run_worker, args=(self._render_worker, self._caller_threads if pin else None),
                             name="ditto-stream-render", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # ----------------------------------------------------------------------------------------- caller API
    def push(self, samples: Any) -> None:
        """Append audio: (T,) float samples at 16 kHz (numpy or torch, any T >= 0). Blocks while the audio queue is
        full (the pipeline is behind); raises a worker's exception, :class:`StreamCancelled` after :meth:`cancel`."""
        x = _as_samples(samples)
        self._check_caller()
        if self._ended:
            raise RuntimeError("StreamingSession.push after end_audio()/close(): the audio has ended")
        if x.shape[0]:
            self._caller_put(self._audio_q, _Audio(x, time.perf_counter()))

    def end_audio(self) -> None:
        """Mark the end of the audio (non-blocking apart from a full audio queue); the remaining frames follow."""
        self._check_caller()
        if self._ended:
            return
        self._ended = True
        self._caller_put(self._audio_q, _End(time.perf_counter()))

    def poll(self) -> list[StreamFrame]:
        """The frames ready now (possibly none), without waiting."""
        out: list[StreamFrame] = []
        while True:
            self._check_caller(allow_finished=True)
            if self._finished:
                return out
            try:
                item = self._out_q.get_nowait()
            except queue.Empty:
                return out
            if item is _DONE:
                self._finish()
                return out
            out.append(item)

    def frames(self) -> Iterator[StreamFrame]:
        """Yield every frame as it comes out, until the last one after :meth:`end_audio` (blocking)."""
        while True:
            self._check_caller(allow_finished=True)
            if self._finished:
                return
            try:
                item = self._out_q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _DONE:
                self._finish()
                return
            yield item

    def close(self) -> list[StreamFrame]:
        """End of audio: flush the pipeline, wait for it, join the threads; returns the frames not taken yet."""
        if self._finished:
            return []
        self.end_audio()
        return list(self.frames())

    def cancel(self) -> None:
        """Stop everything now and join the threads; later calls raise :class:`StreamCancelled`."""
        if self._finished:
            return
        self._cancelled = True
        self._shutdown()

    def run(self, audio_16k: Any, piece: int = 3200) -> Iterator[StreamFrame]:
        """Feed a whole (T,) 16 kHz waveform in ``piece``-sample pieces from a feeder thread, as fast as the pipeline
        takes them, then end the audio; yields the frames as they come out. The feeder is joined on exit."""
        audio = _as_samples(audio_16k)
        if int(piece) < 1:
            raise ValueError(f"piece: expected >= 1 samples, got {piece}")

        def feed() -> None:
            try:
                for i in range(0, audio.shape[0], int(piece)):
                    self.push(audio[i : i + int(piece)])
                self.end_audio()
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                if not self._stop.is_set():  # else: already stopped (error recorded, cancel or early exit)
                    self._fail(e)

        feeder = threading.Thread(target=feed, name="ditto-stream-feeder", daemon=True)
        feeder.start()
        try:
            yield from self.frames()
        finally:
            if not self._finished:
                self._shutdown()
            feeder.join()

    @property
    def alive(self) -> bool:
        """True while a worker thread is running."""
        return any(t.is_alive() for t in self._threads)

    @property
    def frames_out(self) -> int:
        return self._out_count

    def __enter__(self) -> StreamingSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self._finished:
            self._cancelled = self._cancelled or exc_type is not None or not self._ended
            self._shutdown()
        return False

    # ----------------------------------------------------------------------------------------- internals
    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self._stop.set()

    def _shutdown(self) -> None:
        self._stop.set()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join()
        self._finished = True
        self._update_stats()

    def _check_caller(self, allow_finished: bool = False) -> None:
        """In the caller's thread: re-raise a worker error, run the cancel callback, refuse use after cancel."""
        if self._error is not None:
            if not self._finished:
                self._shutdown()
            raise self._error
        if self._cancelled:
            raise StreamCancelled("the streaming session was cancelled")
        if self._finished and not allow_finished:
            raise RuntimeError("the streaming session has ended")
        if self._cancel_cb is not None and not self._finished:
            try:
                self._cancel_cb()
            except BaseException as e:
                self._fail(e)
                self._shutdown()
                raise

    def _caller_put(self, q: queue.Queue, item: Any) -> None:
        while True:
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._check_caller()

    def _finish(self) -> None:
        for t in self._threads:
            t.join()
        self._finished = True
        self._update_stats()
        if self._error is not None:
            raise self._error

    def _update_stats(self) -> None:
        s = self.stats
        s.frames = self._out_count
        s.audio_seconds = self._samples / 16000
        if self._t_first is not None and self._t_enable is not None:
            s.first_frame_latency = self._t_first - self._t_enable[0]
            s.first_frame_latency_from_push = self._t_first - self._t_enable[1]
        if self._t_first is not None and self._t_last is not None and self._out_count > 1 and self._t_last > self._t_first:
            s.sustained_fps = (self._out_count - 1) / (self._t_last - self._t_first)
        if self._t_last is not None:
            s.wall = self._t_last - self._t_start

    def _on_window(self, windows: int) -> None:
        self.stats.windows = windows

    def _worker_check(self) -> None:
        """In a worker: stop when asked to, and give the cancel callback its chance to raise."""
        if self._stop.is_set():
            raise _Stopped
        if self._cancel_cb is not None:
            self._cancel_cb()

    def _run_worker(self, body: Callable[[], None], threads: int | None) -> None:
        """Run a worker body with ``threads`` intra-op threads (None: as ATen gives them); errors go to the caller."""
        try:
            if threads is not None:
                _INTRAOP.pin(threads)
            with torch.inference_mode(), worker_stream(self.models.device):  # CUDA: a stream per thread
                body()
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            self._fail(e)
        finally:
            if threads is not None:
                _INTRAOP.unpin()

    def _get(self, q: queue.Queue) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    # ---- audio + motion thread
    def _motion_worker(self) -> None:
        while True:
            item = self._get(self._audio_q)
            t_taken = time.perf_counter()
            if isinstance(item, _End):
                self._end_of_audio(t_taken, item.t_push)
                break
            self._samples += item.samples.shape[0]
            for chunk in self._chunker.push(item.samples):
                self._feed_chunk(chunk, (t_taken, item.t_push))
        self._put(self._render_q, _DONE)

    def _end_of_audio(self, t_taken: float, t_push: float) -> None:
        cfg = self.motion_config
        if not self.streaming.official_count:
            self._limit = frame_count(self._samples)
        t = (t_taken, t_push)
        for chunk in self._chunker.flush():
            self._feed_chunk(chunk, t)
        if not self.streaming.official_count:
            # too little audio for any frame past the first window: continue the stream with silence
            while self._samples > 0 and self.prefill_frames + self._chunk.current * self._chunks < cfg.seq_frames:
                self._feed_chunk(np.zeros(self._chunk.chunk_samples, np.float32), t)
        self._worker_check()
        n_before = len(self._sampler.records)
        frames = self._sampler.flush()
        if self.record is not None:
            self.record.window_chunks += [self._chunks] * (len(self._sampler.records) - n_before)
        self._emit(frames, t)

    def _feed_chunk(self, chunk: np.ndarray, t: tuple[float, float]) -> None:
        self._worker_check()
        feat = self.models.hubert.chunk_features(chunk)
        self._chunks += 1
        n_before = len(self._sampler.records)
        frames = self._sampler.push(torch.from_numpy(np.array(feat, dtype=np.float32)))
        if self.record is not None:
            self.record.chunk_feat.append(np.array(feat, dtype=np.float32))
            self.record.window_chunks += [self._chunks] * (len(self._sampler.records) - n_before)
        self._emit(frames, t)

    def _emit(self, frames: torch.Tensor, t: tuple[float, float]) -> None:
        if not self._reference_set and self._sampler.d0 is not None:
            d0 = self._sampler.d0.clone()
            self.planner.set_reference(d0)
            self._reference_set = True
            if self.record is not None:
                self.record.d0 = d0.clone()
        if self._limit is not None:
            frames = frames[: max(0, self._limit - self._emitted)]
        k = int(frames.shape[0])
        if k == 0:
            return
        if self._t_enable is None:
            self._t_enable = t
        frames = frames.clone()
        kp = self.planner.plan(frames)
        self._emitted += k
        if self.record is not None:
            self.record.motion_parts.append(frames.clone())
            self.record.x_d_parts.append(kp.x_d.cpu().clone())
            self.record.x_s_parts.append(kp.x_s.cpu().clone())
        self._put(self._render_q, _Emission(frames, kp, t[0], stream_ready(self.models.device)))

    # ---- render thread
    def _render_worker(self) -> None:
        pending: list[_Pending] = []
        done = False
        bs = int(self._frames.renderer.config.batch_size if self._frames is not None else self.options.render.batch_size)
        while True:
            if not pending:
                if done:
                    break
                item = self._get(self._render_q)
                if item is _DONE:
                    done = True
                    continue
                pending += self._split(item)
            # take whatever else is ready, without waiting
            while not done and len(pending) < bs:
                try:
                    item = self._render_q.get_nowait()
                except queue.Empty:
                    break
                if item is _DONE:
                    done = True
                else:
                    pending += self._split(item)
            n = 1 if self._t_first is None else min(bs, len(pending))  # frame 0 alone: latency
            batch, pending = pending[:n], pending[n:]
            self._worker_check()
            for frame in self._render(batch):
                now = time.perf_counter()
                frame.time = now
                if self._t_first is None:
                    self._t_first = now
                self._t_last = now
                self._out_count += 1
                self._out_q.put(frame)
        self._out_q.put(_DONE)

    @staticmethod
    def _split(item: _Emission) -> list[_Pending]:
        kp = item.keypoints
        return [_Pending(kp.start + j, item.motion[j], kp.x_s[j if kp.x_s.shape[0] == kp.count else 0], kp.x_d[j],
                         item.audio_time, item.ready) for j in range(kp.count)]

    def _render(self, batch: list[_Pending]) -> list[StreamFrame]:
        for event in {id(p.ready): p.ready for p in batch}.values():  # the motion thread's stream got there
            wait_ready(self.models.device, event, tuple(t for p in batch for t in (p.x_s, p.x_d)))
        if self._frames is None:
            return [StreamFrame(p.index, None, p.motion, p.x_d.cpu(), 0.0, p.audio_time) for p in batch]
        x_d = torch.stack([p.x_d for p in batch])
        x_s = batch[0].x_s[None] if self.source.is_image else torch.stack([p.x_s for p in batch])
        images, _ = self._frames.render([p.index for p in batch], x_s, x_d)
        return [StreamFrame(p.index, image, p.motion, p.x_d.cpu(), 0.0, p.audio_time)
                for p, image in zip(batch, images)]


# ------------------------------------------------------------------------------------------ command line
def stream_to_file(
    models: DittoModels,
    source: str | Path | np.ndarray,
    audio: Any,
    out_path: str | Path,
    options: JobOptions | None = None,
    streaming: StreamingOptions | None = None,
    *,
    sample_rate: int | None = None,
    piece: int = 3200,
    cancel: CancelFn | None = None,
) -> StreamStats:
    """Portrait (path or RGB uint8 frames) + speech (a file path, a waveform with ``sample_rate``, or a ComfyUI AUDIO
    mapping) -> an mp4 written frame by frame as the streaming session produces them, the audio fed in
    ``piece``-sample pieces as fast as it is consumed (the ``generate --stream`` command). Takes the same
    :class:`JobOptions` as :func:`~ditto_core.runtime.generate`. Returns the session's :class:`StreamStats`. On an
    error or an interrupt nothing is left under ``out_path``. The sound track is the audio at its own sample rate and
    channels, fitted to the video's length (as :func:`~ditto_core.runtime.generate`)."""
    from ..video import BackgroundWriter

    opts = options or JobOptions()
    if opts.render.output == "none":
        raise ValueError("output: a video needs rendered frames ('full' or 'crop'), got 'none'")
    out = Path(out_path)
    job = prepare_job(models, source, audio, opts, out, sample_rate, cancel=cancel)
    with BackgroundWriter(job.video_writer(out, fps=25)) as writer, \
            StreamingSession(models, job.source, opts, streaming, cancel=cancel) as session:
        for frame in session.run(job.audio_16k, piece):
            writer.write(frame.image)
    return session.stats


def format_stats(stats: StreamStats) -> str:
    """Two lines for the command line: first-frame latency, sustained fps and the real-time factor."""
    lat = "n/a" if stats.first_frame_latency is None else f"{stats.first_frame_latency * 1000:.0f} ms"
    lat_push = "" if stats.first_frame_latency_from_push is None else \
        f" ({stats.first_frame_latency_from_push * 1000:.0f} ms from its push)"
    fps = "n/a" if stats.sustained_fps is None else f"{stats.sustained_fps:.2f} fps"
    rtf = "n/a" if stats.real_time_factor is None else f"{stats.real_time_factor:.2f}"
    return (f"first-frame latency: {lat}{lat_push}\n"
            f"sustained: {fps} over {stats.frames} frames; {stats.audio_seconds:.2f} s of audio, "
            f"{stats.windows} DiT windows, real-time factor {rtf}")

