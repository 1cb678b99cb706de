"""The live server's WebRTC transport (aiortc): one peer connection per client, one :class:`LiveSession` each.

``POST /offer`` with ``{"sdp", "type": "offer", "avatar", "settings"}`` -> ``{"sdp", "type": "answer", "session"}``
(:meth:`WebRTCPeers.answer`). Per connection:

* in: the client's audio track (a microphone, an agent's TTS), any rate and channel count, mixed to mono, resampled
  to 16 kHz and pushed to the session as speech (a full buffer drops the piece, the connection goes on);
* out: a video track (the session's frames, 25 fps, rgb24, ``pts = index * 3600`` at 90 kHz) and an audio track (the
  same frames' timeline audio, speech or idle silence, upsampled to 48 kHz, 20 ms s16 mono frames). Frame ``i``'s
  audio is queued for the audio track when the video track hands frame ``i`` out, so sound and picture stay together;
  the audio track sends silence while nothing is queued, so its clock never stalls;
* the client's data channel ``"events"`` (when it opens one): ``{"type": "stats", ...}`` every
  ``settings.stats_interval`` seconds; it takes ``{"type": "interrupt"}`` (answered by ``{"type": "interrupted",
  "dropped_audio_seconds", "dropped_frames"}``), ``{"type": "end"}`` (no more audio: the last frames follow, then
  ``{"type": "ended", ...stats}`` and the connection closes) and ``{"type": "stats"}``; anything else gets
  ``{"type": "error", "code": "unknown_message"}``.

A connection is closed (the peer connection, then the session and its threads, once) when its state becomes
"failed" or "closed", when its session has finished and its frames are out, when it does not connect within
``connect_timeout`` seconds, or by :meth:`WebRTCPeers.close_all`.

Frames are taken from the session at the pace of the video track (real time). A client pushing speech much faster
than real time should raise ``settings.frame_queue``: frames that wait longer than the queue holds are dropped by the
session (and their audio with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import soxr
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import DittoError
from ..validate import OptionError
from .session import FPS, FRAME_SAMPLES, SAMPLE_RATE, LiveError, LiveFrame, LiveSession
from .settings import LiveSettings

if TYPE_CHECKING:
    from .hub import LiveHub

__all__ = ["EVENTS_LABEL", "WebRTCPeers"]

log = logging.getLogger("ditto.live.webrtc")

#: the label of the client's data channel that carries events
EVENTS_LABEL = "events"
#: the messages a client may send on it
CHANNEL_MESSAGES = ("interrupt", "end", "stats")
#: the fields of an offer
OFFER_FIELDS = ("sdp", "type", "avatar", "settings")

VIDEO_CLOCK = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
#: 90 kHz ticks per frame
VIDEO_PTS_STEP = VIDEO_CLOCK // FPS
#: the outgoing audio: 48 kHz mono, 20 ms frames
OUT_RATE = 48000
OUT_TIME_BASE = fractions.Fraction(1, OUT_RATE)
OUT_PACKET = OUT_RATE // 50
UPSAMPLE = OUT_RATE // SAMPLE_RATE
#: the most 48 kHz samples waiting for the audio track (two frames, 80 ms): audio that falls further behind its
#: picture (after the audio track had to send silence) is dropped
AUDIO_BUFFER_MAX = 2 * FRAME_SAMPLES * UPSAMPLE
#: a frame later than this (s) behind its slot on the video clock, or earlier than AHEAD_S, moves the clock to now
LATE_S = 0.1
AHEAD_S = 0.25
#: the audio clock skips ahead instead of bursting when it fell this far (s) behind (a stalled event loop)
AUDIO_RESYNC_S = 0.2
#: seconds between looks at the session while no frame wakes the video track
POLL_S = 0.5
#: seconds given, after the session finished, for its last frames to go out, beyond the frame queue's length
DRAIN_GRACE_S = 2.0
#: seconds given for the last audio and events to leave before the connection is closed
FLUSH_S = 1.0


class _Upsampler:
    """16 kHz -> 48 kHz as one stream: a windowed-sinc polyphase filter (cutoff 7.2 kHz, 0.5 ms delay); every input
    sample gives exactly 3 output samples, so each frame's 640 samples become 1920 without jitter."""

    TAPS = 16  # per phase

    def __init__(self) -> None:
        n = self.TAPS * UPSAMPLE
        t = np.arange(n) - (n - 1) / 2
        cutoff = 0.45 * SAMPLE_RATE / OUT_RATE  # cycles per output sample
        h = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, 8.0)
        h *= UPSAMPLE / h.sum()  # unit gain at DC after zero-stuffing
        self._phases = [h[p::UPSAMPLE].astype(np.float32) for p in range(UPSAMPLE)]
        self._history = np.zeros(self.TAPS - 1, np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(T,) float32 at 16 kHz -> (3T,) float32 at 48 kHz."""
        ext = np.concatenate([self._history, np.asarray(x, np.float32)])
        self._history = ext[len(ext) - (self.TAPS - 1):]
        out = np.stack([np.convolve(ext, h, mode="valid") for h in self._phases], axis=1)
        return out.reshape(-1).astype(np.float32)


class _AudioQueue:
    """48 kHz samples released with their frames, waiting for the audio track; at most ``limit`` (the oldest beyond
    it are dropped, so the sound never falls further behind the picture)."""

    def __init__(self, limit: int = AUDIO_BUFFER_MAX) -> None:
        self.limit = int(limit)
        self._buf = np.zeros(0, np.float32)
        self.dropped = 0

    def __len__(self) -> int:
        return int(self._buf.shape[0])

    def put(self, x: np.ndarray) -> None:
        buf = np.concatenate([self._buf, x.astype(np.float32, copy=False)])
        excess = buf.shape[0] - self.limit
        if excess > 0:
            buf = buf[excess:]
            self.dropped += excess
        self._buf = buf

    def get(self, n: int) -> np.ndarray:
        """(n,) float32: what is queued, zero-padded when less is."""
        out = np.zeros(n, np.float32)
        k = min(n, self._buf.shape[0])
        out[:k] = self._buf[:k]
        self._buf = self._buf[k:]
        return out


class _ClientAudio:
    """The client's :class:`av.AudioFrame` s (any sample format, rate and channel count) -> (T,) float32 mono 16 kHz,
    resampled as one stream."""

    def __init__(self) -> None:
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        """One frame -> (T,) float32 at 16 kHz (T may be 0 while the resampler fills)."""
        arr = frame.to_ndarray()
        channels = max(1, frame.layout.nb_channels)
        x = arr if frame.format.is_planar else arr.reshape(-1, channels).T  # (channels, samples)
        if x.dtype == np.int16:
            y = x.astype(np.float32) / 32768.0
        elif x.dtype == np.int32:
            y = x.astype(np.float32) / 2147483648.0
        elif x.dtype == np.uint8:
            y = (x.astype(np.float32) - 128.0) / 128.0
        else:
            y = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        mono = y.mean(axis=0) if y.shape[0] > 1 else y[0]
        rate = int(frame.sample_rate)
        head = np.zeros(0, np.float32)
        if rate != self._rate:
            head = self.flush()
            self._rate = rate
            self._resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(
                rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(np.ascontiguousarray(mono, np.float32), last=False)
        return np.concatenate([head, np.asarray(mono, np.float32)])

    def flush(self) -> np.ndarray:
        """The resampler's tail at the end of the audio, (T,) float32 at 16 kHz."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self._resampler = None
        self._rate = None
        return np.asarray(tail, np.float32)


class _VideoTrack(MediaStreamTrack):
    """The session's frames: one :class:`av.VideoFrame` (rgb24, H x W) per :class:`LiveFrame`, ``pts = index * 3600``
    (90 kHz), handed out on the frame's slot of a 25 fps clock (moved to now when the pipeline runs late)."""

    kind = "video"

    def __init__(self, peer: _Peer) -> None:
        super().__init__()
        self._peer = peer
        self._zero: float | None = None  # loop time of timeline frame 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._peer.next_frame()
        if frame is None:
            raise MediaStreamError  # the session is over: the sender stops
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = now if self._zero is None else self._zero + frame.index / FPS
        if self._zero is None or due < now - LATE_S or due > now + AHEAD_S:
            self._zero, due = now - frame.index / FPS, now
        if due > now:
            await asyncio.sleep(due - now)
        self._peer.release_audio(frame)
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="rgb24")
        out.pts = frame.index * VIDEO_PTS_STEP
        out.time_base = VIDEO_TIME_BASE
        return out


class _AudioTrack(MediaStreamTrack):
    """The audio of the frames the video track handed out: 20 ms :class:`av.AudioFrame` s, 48 kHz s16 mono, ``pts``
    in samples, in real time; silence while none is queued."""

    kind = "audio"

    def __init__(self, queue: _AudioQueue) -> None:
        super().__init__()
        self._queue = queue
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += OUT_PACKET
            wait = self._start + self._pts / OUT_RATE - loop.time()
            if wait < -AUDIO_RESYNC_S:  # the loop stalled: go on from now rather than burst
                self._start -= wait
            elif wait > 0:
                await asyncio.sleep(wait)
        pcm = (np.clip(self._queue.get(OUT_PACKET), -1.0, 1.0) * 32767.0).round().astype(np.int16)
        out = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        out.sample_rate = OUT_RATE
        out.pts = self._pts
        out.time_base = OUT_TIME_BASE
        return out


class _Peer:
    """One client: its peer connection, session, tracks, data channel and tasks."""

    def __init__(self, owner: WebRTCPeers, settings: LiveSettings) -> None:
        self.owner = owner
        self.hub = owner.hub
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.sid: str | None = None
        self.session: LiveSession | None = None
        self.pc: RTCPeerConnection | None = None
        self.channel: RTCDataChannel | None = None
        self.audio_queue = _AudioQueue()
        self.video = _VideoTrack(self)
        self.audio = _AudioTrack(self.audio_queue)
        self._upsample = _Upsampler()
        self._client_audio = _ClientAudio()
        self._mic: MediaStreamTrack | None = None
        self._dropping = False
        self.tasks: set[asyncio.Task] = set()
        self.wake = asyncio.Event()  # a frame was queued (or the session ended)
        self.finished = asyncio.Event()  # the session finished (ended or failed)
        self.drained = asyncio.Event()  # ... and the video track handed out its last frame
        self.connected = asyncio.Event()
        self._close_task: asyncio.Task | None = None

    # ---- from session threads
    def wake_up(self) -> None:
        """The session's ``on_frame`` (any thread, never blocks)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self.wake.set()
        if self.session is not None and self.session.finished.is_set():
            self.finished.set()

    def attach(self, sid: str, session: LiveSession) -> None:
        self.sid, self.session = sid, session
        self._woken()  # it may have finished before it was attached

    # ---- tasks
    def spawn(self, coro: Any) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ---- negotiation
    async def negotiate(self, sdp: str, configuration: RTCConfiguration | None,
                        connect_timeout: float) -> RTCSessionDescription:
        """The client's offer -> our answer; :class:`LiveError` ("bad_offer") for an offer refused."""
        self.pc = pc = RTCPeerConnection(configuration)
        pc.on("connectionstatechange", self._on_state)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as e:  # noqa: BLE001 - the SDP is the client's: anything it breaks is its error
            raise LiveError("bad_offer", f"offer: the SDP was refused ({type(e).__name__}: {e})") from None
        kinds = [t.kind for t in pc.getTransceivers()]
        if "video" not in kinds:
            raise LiveError("bad_offer", "offer: no video section; the client must receive video "
                                         "(addTransceiver('video', {direction: 'recvonly'}))")
        pc.addTrack(self.video)
        if "audio" in kinds:
            pc.addTrack(self.audio)
        await pc.setLocalDescription(await pc.createAnswer())
        sender = next(t for t in pc.getTransceivers() if t.sender.track is self.video)
        if sender.currentDirection not in ("sendonly", "sendrecv"):
            raise LiveError("bad_offer", "offer: its video section does not receive video (direction "
                                         f"{sender.currentDirection!r} on our side)")
        self.spawn(self._watch(connect_timeout))
        return pc.localDescription

    def _on_state(self) -> None:
        pc = self.pc
        if pc is None:
            return
        state = pc.connectionState
        log.debug("webrtc %s: connection %s", self.sid, state)
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.spawn_close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._mic is None:
            self._mic = track
            self.spawn(self._read_audio(track))
        else:  # nobody else reads it: drain it so its frames do not pile up
            self.spawn(self._discard(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_LABEL or self.channel is not None:
            log.info("webrtc %s: data channel %r ignored (events go on %r)", self.sid, channel.label, EVENTS_LABEL)
            return
        self.channel = channel
        channel.on("message", self._on_message)
        if self.settings.stats_interval > 0:
            self.spawn(self._stats(self.settings.stats_interval))

    # ---- audio in
    async def _read_audio(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                x = self._client_audio.convert(frame)
                if x.shape[0] and not self._push(x):
                    return

    @staticmethod
    async def _discard(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    def _push(self, x: np.ndarray) -> bool:
        """Speech (T,) float32 16 kHz -> the session; False once the session failed."""
        assert self.session is not None
        try:
            self.session.push(x)
        except LiveError as e:
            if e.code == "buffer_full":
                if not self._dropping:  # once per run of refused pieces
                    log.warning("webrtc %s: %s", self.sid, e)
                    self.hub.count_error(e.code)
                    self.send({"type": "error", "code": e.code, "message": str(e)})
                self._dropping = True
            elif e.code != "ended":  # audio after "end" is dropped quietly
                log.warning("webrtc %s: audio refused: %s", self.sid, e)
            return True
        except Exception as e:  # noqa: BLE001 - the session failed: the watcher tells the client and closes
            log.info("webrtc %s: audio not pushed, the session failed (%s)", self.sid, e)
            return False
        self._dropping = False
        return True

    # ---- frames out
    async def next_frame(self) -> LiveFrame | None:
        """The session's next frame; None once it finished and every frame was taken (or it failed)."""
        session = self.session
        assert session is not None
        while True:
            self.wake.clear()
            done = session.finished.is_set()  # before take(): a frame queued before it finished is seen
            try:
                frames = session.take(limit=1)
            except Exception:  # noqa: BLE001 - the session failed; its error is on session.error
                frames, done = [], True
            if frames and frames[0].image is not None:
                return frames[0]
            if done and not frames:
                self.finished.set()
                self.drained.set()
                return None
            if not frames:  # woken by the next frame; polled too, should the session be closed under us
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_S)

    def release_audio(self, frame: LiveFrame) -> None:
        """Frame ``frame``'s 640 samples (16 kHz) -> 1920 at 48 kHz for the audio track, as its picture goes out."""
        self.audio_queue.put(self._upsample(frame.audio))

    # ---- events
    def send(self, event: dict[str, Any]) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            with contextlib.suppress(Exception):  # the channel closed under us
                channel.send(json.dumps(event))

    def _error(self, code: str, message: str) -> None:
        self.hub.count_error(code)
        self.send({"type": "error", "code": code, "message": message})

    def _on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        if not isinstance(message, str):
            return self._error("bad_message", "the events channel takes JSON text messages")
        try:
            msg = json.loads(message)
        except ValueError:
            return self._error("bad_message", "a message must be one JSON object")
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "interrupt":
            dropped = session.interrupt()
            self.send({"type": "interrupted", "dropped_audio_seconds": dropped["audio_seconds"],
                       "dropped_frames": dropped["frames"]})
        elif kind == "end":
            with contextlib.suppress(LiveError):
                session.push(self._client_audio.flush())
            session.end()
        elif kind == "stats":
            self.send({"type": "stats", **session.stats()})
        else:
            self._error("unknown_message", f"unknown message type {kind!r}; known: {', '.join(CHANNEL_MESSAGES)}")

    async def _stats(self, every: float) -> None:
        assert self.session is not None
        while True:
            await asyncio.sleep(every)
            self.send({"type": "stats", **self.session.stats()})

    # ---- lifetime
    async def _watch(self, connect_timeout: float) -> None:
        """Close the connection when it does not connect in time, or once its session finished and its last
        frames (and their audio) went out."""
        try:
            await asyncio.wait_for(self.connected.wait(), connect_timeout)
        except asyncio.TimeoutError:
            log.info("webrtc %s: not connected within %g s; closed", self.sid, connect_timeout)
            self.spawn_close()
            return
        await self.finished.wait()
        assert self.session is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.drained.wait(), self.settings.frame_queue / FPS + DRAIN_GRACE_S)
        deadline = self.loop.time() + FLUSH_S
        while len(self.audio_queue) and self.loop.time() < deadline:
            await asyncio.sleep(OUT_PACKET / OUT_RATE)
        if self.session.error is not None:
            log.warning("webrtc %s: the session failed: %s", self.sid, self.session.error)
            self._error("internal", f"the session failed: {self.session.error}")
        else:
            self.send({"type": "ended", **self.session.stats()})
        while self.channel is not None and self.channel.bufferedAmount and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        self.spawn_close()

    def spawn_close(self) -> asyncio.Task:
        """Start closing (once): the tasks, the peer connection, then the session (in a thread)."""
        if self._close_task is None:
            self._close_task = self.loop.create_task(self._shutdown())
        return self._close_task

    async def close(self) -> None:
        await asyncio.shield(self.spawn_close())

    async def _shutdown(self) -> None:
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        t0 = self.loop.time()
        if self.pc is not None:
            try:
                await self.pc.close()
            except Exception:  # noqa: BLE001 - closing goes on: the session must still be freed
                log.exception("webrtc %s: closing the peer connection failed", self.sid)
        self.video.stop()
        self.audio.stop()
        t1 = self.loop.time()
        if self.sid is not None:
            try:
                await asyncio.to_thread(self.hub.close_session, self.sid)
            except Exception:  # noqa: BLE001
                log.exception("webrtc %s: closing the session failed", self.sid)
            self.owner._forget(self.sid)
        log.info("webrtc %s: closed (peer connection %.2f s, session %.2f s)", self.sid, t1 - t0,
                 self.loop.time() - t1)


class WebRTCPeers:
    """The WebRTC connections of one server (all on one event loop).

    Args:
        hub: the :class:`~ditto_core.live.server.LiveHub` that opens and closes the sessions.
        configuration: aiortc's :class:`RTCConfiguration` (ICE servers); None = aiortc's default.
        connect_timeout: seconds an answered offer has to connect before it is closed.
    """

    def __init__(self, hub: LiveHub, configuration: RTCConfiguration | None = None, connect_timeout: float = 30.0) -> None:
        self.hub = hub
        self.configuration = configuration
        self.connect_timeout = float(connect_timeout)
        self._peers: dict[str, _Peer] = {}
        self._closing = False

    def __len__(self) -> int:
        """Connections open now."""
        return len(self._peers)

    async def answer(self, params: Any) -> dict[str, str]:
        """An offer ``{"sdp", "type": "offer", "avatar", "settings"}`` -> ``{"sdp", "type": "answer", "session"}``.

        Raises :class:`LiveError` ("bad_message", "bad_offer", "unknown_avatar", "busy", "bad_settings") or
        :class:`OptionError` (a bad setting); nothing is left open then.
        """
        sdp, avatar, settings = _parse_offer(self.hub, params)
        if self._closing:
            raise LiveError("busy", "the server is shutting down")
        peer = _Peer(self, settings)
        sid, session = await self._open(avatar, settings, peer.wake_up)
        peer.attach(sid, session)
        self._peers[sid] = peer
        try:
            if self._closing:
                raise LiveError("busy", "the server is shutting down")
            local = await peer.negotiate(sdp, self.configuration, self.connect_timeout)
        except asyncio.CancelledError:
            peer.spawn_close()
            raise
        except Exception:
            await peer.close()
            raise
        log.info("webrtc %s: answered (avatar %s)", sid, avatar)
        return {"sdp": local.sdp, "type": local.type, "session": sid}

    async def _open(self, avatar: str, settings: LiveSettings,
                    on_frame: Callable[[], None]) -> tuple[str, LiveSession]:
        """``hub.open_session`` in a thread; a session opened after the caller gave up is closed."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(asyncio.to_thread(self.hub.open_session, avatar, settings, on_frame, jpeg=False))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            def close_late(t: asyncio.Future) -> None:
                if not t.cancelled() and t.exception() is None:
                    loop.run_in_executor(None, self.hub.close_session, t.result()[0])
            task.add_done_callback(close_late)
            raise
        except (LiveError, OptionError):
            raise
        except (DittoError, ValueError) as e:
            raise LiveError("bad_settings", str(e)) from None

    async def close(self, sid: str) -> None:
        """Close one connection and its session (nothing when there is none)."""
        peer = self._peers.get(sid)
        if peer is not None:
            await peer.close()

    async def close_all(self) -> None:
        """Close every connection and its session; offers answered afterwards are refused ("busy")."""
        self._closing = True
        await asyncio.gather(*(p.close() for p in list(self._peers.values())), return_exceptions=True)

    def _forget(self, sid: str) -> None:
        self._peers.pop(sid, None)


def _parse_offer(hub: LiveHub, params: Any) -> tuple[str, str, LiveSettings]:
    """The offer's JSON -> ``(sdp, avatar id, settings)`` (the client's settings over the avatar's defaults);
    :class:`LiveError` / :class:`OptionError`."""
    if not isinstance(params, Mapping):
        raise LiveError("bad_message", "offer: the body must be a JSON object {sdp, type, avatar, settings}")
    unknown = sorted(set(params) - set(OFFER_FIELDS))
    if unknown:
        raise LiveError("bad_message", f"offer: unknown field {unknown[0]!r} (known: {', '.join(OFFER_FIELDS)})")
    if params.get("type") != "offer":
        raise LiveError("bad_offer", f"offer: 'type' must be 'offer', got {params.get('type')!r}")
    sdp = params.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise LiveError("bad_offer", "offer: 'sdp' must be the offer's SDP text")
    avatar = params.get("avatar")
    if not isinstance(avatar, str):
        raise LiveError("bad_message", "offer: 'avatar' must be the id of a registered avatar (a string)")
    return sdp, avatar, hub.session_settings(avatar, params.get("settings"))
