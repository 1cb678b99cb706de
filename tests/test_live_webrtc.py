"""The live server's WebRTC transport (``ditto_core/live/webrtc.py``): aiortc clients against a real server started
in the test's own event loop (aiohttp on 127.0.0.1, any free port), the synthetic models and the benchmarks' stand-in
renderer (warp + decode would take seconds per frame on a CPU; the transport is what is checked here).

The DiT on a small CPU needs about a second per window, so the first frame comes a few seconds after the offer:
every wait below is bounded (at most a minute per test) but none checks timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import threading
import time
from typing import Any

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp")
aiortc = pytest.importorskip("aiortc")

import av  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError  # noqa: E402

from conftest import REPO_ROOT, standin_renderer  # noqa: E402

from ditto_core.live.server import LiveHub, ServerLimits, create_app  # noqa: E402

#: the most seconds any one wait of a test takes
WAIT_S = 45.0
#: every session here: the 512x512 crop, 2 DDIM steps (the synthetic DiT's windows come several times faster)
SETTINGS = {"output": "crop", "steps": 2}
SESSION_THREADS = ("ditto-live-", "ditto-stream-")


class SineTrack(AudioStreamTrack):
    """A client's microphone: a sine tone, 20 ms s16 stereo frames at 48 kHz in real time."""

    def __init__(self, freq: float = 220.0, amp: float = 0.3, rate: int = 48000) -> None:
        super().__init__()
        self.freq, self.amp, self.rate = freq, amp, rate
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = self.rate // 50
        if self._start is None:
            self._start = time.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._n / self.rate - time.time()))
        t = (self._n + np.arange(samples)) / self.rate
        x = (self.amp * np.sin(2 * np.pi * self.freq * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(x, 2)[None, :], format="s16", layout="stereo")
        frame.sample_rate = self.rate
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, self.rate)
        self._n += samples
        return frame


@pytest.fixture(scope="module")
def live(synthetic_models):
    """(hub, avatar id): one hub for the module, sessions on the stand-in renderer, the example portrait."""
    hub = LiveHub(synthetic_models, renderer_factory=standin_renderer)
    avatar, _ = hub.register_avatar((REPO_ROOT / "example_inputs" / "ditto_portrait.jpg").read_bytes(), "portrait")
    yield hub, avatar.id
    hub.close_all()


@contextlib.asynccontextmanager
async def serving(hub: LiveHub):
    """The live server on 127.0.0.1 (a free port) in this event loop -> its base URL; shut down afterwards."""
    runner = web.AppRunner(create_app(hub))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Client:
    """An aiortc client: sends a sine tone, receives video and audio, opens the "events" data channel."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTrack(SineTrack())
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("events")
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channel.on("message", lambda m: self.events.put_nowait(json.loads(m)))
        self.opened = asyncio.Event()
        self.channel.on("open", self.opened.set)
        self.tracks: dict[str, Any] = {}
        self.pc.on("track", lambda t: self.tracks.__setitem__(t.kind, t))
        self.session: str | None = None

    async def connect(self, base: str, avatar: str, settings: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Offer -> (HTTP status, JSON answer); on 200 the answer is applied."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", "avatar": avatar, "settings": settings}
        async with aiohttp.ClientSession() as http, http.post(base + "/offer", json=body) as r:
            status, answer = r.status, await r.json()
        if status == 200:
            self.session = answer["session"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return status, answer

    async def event(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The next event of type ``kind`` (others are skipped)."""
        async def wait() -> dict[str, Any]:
            while (e := await self.events.get())["type"] != kind:
                pass
            return e
        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.pc.close()


def session_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(SESSION_THREADS)]


async def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_video_and_audio_tracks(live):
    """Sending speech gets a 512x512 video track (crop output) and an audio track carrying that speech back."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            client = Client()
            try:
                status, answer = await client.connect(base, avatar, {**SETTINGS, "stats_interval": 0})
                assert status == 200, answer
                assert answer["type"] == "answer" and answer["session"] in hub.sessions
                assert set(client.tracks) == {"audio", "video"}
                video, audio = client.tracks["video"], client.tracks["audio"]
                heard: list[float] = []

                async def listen() -> None:
                    with contextlib.suppress(MediaStreamError):
                        while True:
                            f = await audio.recv()
                            assert f.sample_rate == 48000
                            heard.append(float(np.abs(f.to_ndarray().astype(np.float32) / 32768.0).max()))

                listener = asyncio.create_task(listen())
                frames = []
                deadline = time.monotonic() + WAIT_S
                # at least 5 frames, and on until the client's own tone comes back on the audio track
                while len(frames) < 5 or max(heard, default=0.0) < 0.05:
                    frames.append(await asyncio.wait_for(video.recv(), deadline - time.monotonic()))
                listener.cancel()
                assert {(f.width, f.height) for f in frames} == {(512, 512)}
                pts = [f.pts for f in frames]
                assert pts == sorted(pts) and all(p % 3600 == 0 for p in pts)  # frame index * 90 kHz / 25
                assert len(heard) > 0 and max(heard) >= 0.05
            finally:
                await client.close()

    asyncio.run(main())


def test_events_channel(live):
    """The "events" data channel gets stats, answers an interrupt and refuses an unknown message."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            client = Client()
            try:
                status, answer = await client.connect(base, avatar, {**SETTINGS, "stats_interval": 0.3})
                assert status == 200, answer
                await asyncio.wait_for(client.opened.wait(), WAIT_S)
                stats = await client.event("stats")
                assert {"frames", "frames_dropped", "interrupts", "uptime", "speech_seconds"} <= set(stats)
                client.channel.send(json.dumps({"type": "interrupt"}))
                done = await client.event("interrupted")
                assert {"dropped_audio_seconds", "dropped_frames"} <= set(done)
                assert hub.sessions[answer["session"]].interrupts == 1
                client.channel.send(json.dumps({"type": "dance"}))
                assert (await client.event("error"))["code"] == "unknown_message"
                client.channel.send("not json")
                assert (await client.event("error"))["code"] == "bad_message"
            finally:
                await client.close()

    asyncio.run(main())


def test_client_close_frees_session(live):
    """A client that closes its connection frees the server's session and every thread of it."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            client = Client()
            try:
                status, answer = await client.connect(base, avatar, {**SETTINGS, "stats_interval": 0})
                assert status == 200, answer
                await asyncio.wait_for(client.tracks["video"].recv(), WAIT_S)  # the whole pipeline is running
                assert answer["session"] in hub.sessions and session_threads()
            finally:
                await client.close()
            assert await wait_until(lambda: not hub.sessions, 15.0), f"sessions left open: {list(hub.sessions)}"
            assert await wait_until(lambda: not session_threads(), 5.0), f"threads left: {session_threads()}"
            assert len(hub.avatars) == 1  # the avatar stays registered

    asyncio.run(main())


def test_end_finishes_and_closes(live):
    """``{"type": "end"}``: the frames of the audio sent so far follow, then an "ended" event, then the server
    closes the connection and frees the session on its own."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            client = Client()
            closed = asyncio.Event()
            client.pc.on("connectionstatechange",
                         lambda: client.pc.connectionState == "closed" and closed.set())
            try:
                status, answer = await client.connect(base, avatar, {**SETTINGS, "idle": False, "stats_interval": 0})
                assert status == 200, answer
                await asyncio.wait_for(client.opened.wait(), WAIT_S)
                await asyncio.sleep(0.5)  # some speech
                client.channel.send(json.dumps({"type": "end"}))
                frames = []

                async def watch() -> None:
                    with contextlib.suppress(MediaStreamError):
                        while True:
                            frames.append(await client.tracks["video"].recv())

                watcher = asyncio.create_task(watch())
                ended = await client.event("ended")
                assert ended["frames"] > 0 and ended["speech_seconds"] > 0
                assert await wait_until(lambda: not hub.sessions, WAIT_S), list(hub.sessions)
                await asyncio.wait_for(closed.wait(), WAIT_S)  # the server closed the connection
                watcher.cancel()
                assert frames
                assert await wait_until(lambda: not session_threads(), 5.0), session_threads()
            finally:
                await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("change, code", [
    ({"avatar": "no-such-avatar"}, "unknown_avatar"),
    ({"settings": {"output": "sideways"}}, "bad_settings"),
    ({"sdp": "v=0\r\nthis is not sdp\r\n"}, "bad_offer"),
    ({"type": "answer"}, "bad_offer"),
    ({"extra": 1}, "bad_message"),
])
def test_bad_offer(live, change, code):
    """A refused offer gets HTTP 400 with its code, and leaves no session behind."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            try:
                await pc.setLocalDescription(await pc.createOffer())
                body = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar, "settings": {}} | change
                async with aiohttp.ClientSession() as http, http.post(base + "/offer", json=body) as r:
                    assert r.status == 400
                    reply = await r.json()
                assert reply["error"] == code, reply
                assert not hub.sessions
            finally:
                await pc.close()

    asyncio.run(main())


def test_offer_without_video_is_refused(live):
    """An offer that cannot receive video is refused (bad_offer) and its session closed at once."""
    hub, avatar = live

    async def main() -> None:
        async with serving(hub) as base:
            pc = RTCPeerConnection()
            pc.addTrack(SineTrack())
            try:
                await pc.setLocalDescription(await pc.createOffer())
                body = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar}
                async with aiohttp.ClientSession() as http, http.post(base + "/offer", json=body) as r:
                    assert r.status == 400
                    assert (await r.json())["error"] == "bad_offer"
                assert not hub.sessions
                assert await wait_until(lambda: not session_threads(), 5.0), session_threads()
            finally:
                await pc.close()

    asyncio.run(main())


def test_busy_server_answers_503(live, synthetic_models):
    """Past ``max_sessions`` an offer gets HTTP 503 "busy"; the first connection is unaffected."""
    shared, avatar = live
    hub = LiveHub(synthetic_models, ServerLimits(max_sessions=1),
                  renderer_factory=standin_renderer)
    hub.publish(shared.avatars.get(avatar), synthetic_models)

    async def main() -> None:
        async with serving(hub) as base:
            first, second = Client(), Client()
            try:
                status, answer = await first.connect(base, avatar, {**SETTINGS, "stats_interval": 0})
                assert status == 200, answer
                status, answer = await second.connect(base, avatar, {**SETTINGS, "stats_interval": 0})
                assert (status, answer["error"]) == (503, "busy")
                assert len(hub.sessions) == 1
            finally:
                await first.close()
                await second.close()
        assert not hub.sessions  # the server's shutdown closed the first one

    asyncio.run(main())
