"""Ditto Live: settings, audio decoding, the live session (idle, barge-in, back-pressure, clean-up) in process, and
the WebSocket protocol end to end against real server processes (tests/live_server.py: ``serve`` with the
benchmarks' stand-in renderer, except where the real renderer is named)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("aiohttp")

from conftest import face_image, standin_renderer  # noqa: E402

from ditto_core.live import AudioDecoder, AudioFormat, LiveError, LiveSession, LiveSettings  # noqa: E402
from ditto_core.live.client import LiveClient, LiveServerError  # noqa: E402
from ditto_core.live.session import FRAME_SAMPLES, _Timeline  # noqa: E402
from ditto_core.validate import OptionError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "example_inputs" / "ditto_portrait.jpg"
#: fast settings for a CPU: 2 DDIM steps per DiT window
FAST = {"steps": 2}


def speech(seconds: float, rate: int = 16000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("ditto-live", "ditto-stream"))]


def wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --------------------------------------------------------------------------------------------- settings, audio
def test_settings_errors_name_the_field_as_the_client_wrote_it():
    with pytest.raises(OptionError, match=r"^settings\.mouth must be"):
        LiveSettings.from_dict({"mouth": -1})
    with pytest.raises(OptionError, match=r"^settings\.colour: unknown setting"):
        LiveSettings.from_dict({"colour": "red"})
    with pytest.raises(OptionError, match=r"^settings\.output must be one of full, crop"):
        LiveSettings.from_dict({"output": "none"})
    with pytest.raises(OptionError, match=r"^settings\.emotion"):
        LiveSettings.from_dict({"emotion": "Grumpy"})
    with pytest.raises(OptionError, match=r"^audio\.sample_rate must be an integer in 8000\.\.192000"):
        AudioFormat.from_dict({"sample_rate": 4000})
    with pytest.raises(OptionError, match=r"^audio\.encoding"):
        AudioFormat.from_dict({"encoding": "mp3"})
    s = LiveSettings.from_dict({"emotion": "Happy", "yaw": 10, "preset": "offline"})
    job = s.job_options(offline_overlap=10)
    assert job.sampling.overlap == 10 and job.clip.yaw == 10.0 and job.render.output == "full"
    assert LiveSettings().job_options().sampling.overlap is None  # the release's online overlap
    # the frame queue holds a DiT hop's burst and more: 10 + 26 online, 70 + 26 with the offline preset
    assert (LiveSettings().frame_queue, s.frame_queue, LiveSettings(frame_queue=5).frame_queue) == (36, 96, 5)


def test_audio_decoder_resamples_as_one_stream_and_refuses_broken_pieces():
    fmt = AudioFormat("s16le", 48000, 2)
    x = speech(0.5, 48000)
    pcm = (np.stack([x, 0.5 * x], 1) * 32767).round().astype("<i2").tobytes()
    whole = AudioDecoder(fmt)
    ref = np.concatenate([whole.decode(pcm), whole.flush()])
    pieces = AudioDecoder(fmt)
    cuts = [0, 4 * 37, 4 * 1000, 4 * 5001, len(pcm)]  # whole sample frames of 4 bytes
    got = np.concatenate([pieces.decode(pcm[a:b]) for a, b in zip(cuts, cuts[1:])] + [pieces.flush()])
    assert got.shape == ref.shape and abs(got.shape[0] - 8000) <= 1
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # the mono mix at 16 kHz: the mean of the channels (0.75 x), resampled
    mid = slice(1000, 7000)
    np.testing.assert_allclose(got[mid], 0.75 * speech(0.5)[mid], atol=2e-3)
    with pytest.raises(LiveError, match="1001 bytes is not a whole number of s16le sample frames of 2 channel"):
        AudioDecoder(fmt).decode(b"\0" * 1001)
    with pytest.raises(LiveError, match="NaN"):
        AudioDecoder(AudioFormat("f32le", 16000, 1)).decode(np.array([0, np.nan], "<f4").tobytes())
    same = AudioDecoder(AudioFormat("f32le", 16000, 1))
    np.testing.assert_array_equal(same.decode(x[:100].astype("<f4").tobytes()), x[:100])


def test_timeline_maps_frames_to_speech_and_silence():
    tl = _Timeline()
    tl.add(np.full(1000, 0.5, np.float32), 0)  # speech samples 0..999 of the client
    tl.add(np.zeros(640, np.float32), None)  # idle silence
    tl.add(np.full(1000, -0.5, np.float32), 1000)  # speech 1000..1999
    a0, s0 = tl.frame(0)
    assert s0 == (0, 640) and np.all(a0 == 0.5)
    a1, s1 = tl.frame(1)  # timeline 640..1279: speech 640..999, then silence
    assert s1 == (640, 1000) and np.all(a1[:360] == 0.5) and np.all(a1[360:] == 0)
    a2, s2 = tl.frame(2)  # 1280..1919: silence to 1639, then speech 1000..1279
    assert s2 == (1000, 1280) and np.all(a2[:360] == 0) and np.all(a2[360:] == -0.5)
    a4, s4 = tl.frame(4)  # 2560..3199: speech 1920..1999, then nothing fed yet (zeros)
    assert s4 == (1920, 2000) and np.all(a4[:80] == -0.5) and not a4[80:].any()
    a5, s5 = tl.frame(5)  # past what was fed
    assert s5 is None and not a5.any()


# --------------------------------------------------------------------------------------------- the session
@pytest.fixture(scope="module")
def live_source(synthetic_models):
    from ditto_core.runtime import extract_source

    return extract_source(synthetic_models, face_image(), is_image=True)


def standin(models):
    return standin_renderer(models, 4)


def collect(session: LiveSession, n: int, timeout: float = 60.0) -> list:
    got: list = []
    end = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < end, f"only {len(got)} of {n} frames in {timeout} s"
        got += session.take()
        time.sleep(0.01)
    return got


def test_plain_session_gives_one_frame_per_40_ms_of_speech_in_order(synthetic_models, live_source):
    s = LiveSession(synthetic_models, live_source, LiveSettings(idle=False, output="crop", frame_queue=64, **FAST),
                    renderer=standin(synthetic_models))
    try:
        x = speech(0.4)
        for i in range(0, x.shape[0], 999):
            s.push(x[i:i + 999])
        s.end()
        assert s.finished.wait(60)
        frames = s.take()
    finally:
        s.close()
    assert [f.index for f in frames] == list(range(10))
    for f in frames:
        assert f.audio_span == (f.index * FRAME_SAMPLES, (f.index + 1) * FRAME_SAMPLES)
        assert f.speech == f.audio_span  # all speech, no idle
        np.testing.assert_array_equal(f.audio, x[f.audio_span[0]:f.audio_span[1]])
        img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (512, 512, 3) and f.width == f.height == 512 and f.lag > 0
        # behind the speech: from the push of the frame's own last sample, so never less than the processing lag
        assert f.delay is not None and f.delay >= f.lag
    assert s.stats()["speech_seconds"] == pytest.approx(0.4) and s.stats()["idle_seconds"] == 0
    assert not live_threads()


def test_live_frames_are_the_streaming_sessions_frames(synthetic_models, live_source):
    """The live path adds pacing, timeline and transport, not maths: its frames are the plain stream's, one for one
    (the renderer is the stand-in here; the stream's own tests cover the real renderer)."""
    from ditto_core.runtime import StreamingSession

    settings = LiveSettings(idle=False, output="crop", frame_queue=64, **FAST)
    x = speech(0.8)
    s = LiveSession(synthetic_models, live_source, settings, jpeg=False, renderer=standin(synthetic_models))
    try:
        for i in range(0, x.shape[0], 777):
            s.push(x[i:i + 777])
        s.end()
        assert s.finished.wait(60)
        live = s.take()
    finally:
        s.close()
    with StreamingSession(synthetic_models, live_source, settings.job_options(),
                          renderer=standin(synthetic_models)) as ref:
        expected = list(ref.run(x))
    assert [f.index for f in live] == [f.index for f in expected] == list(range(20))
    for a, b in zip(live, expected):
        np.testing.assert_array_equal(a.image, b.image)
    assert len({a.image.tobytes() for a in live}) > 1  # the pictures follow the motion


def test_idle_keeps_the_avatar_moving_then_speech_then_barge_in_returns_to_idle(synthetic_models, live_source):
    s = LiveSession(synthetic_models, live_source, LiveSettings(output="crop", **FAST),
                    renderer=standin(synthetic_models))
    try:
        idle = collect(s, 3)  # nothing pushed: frames from silence
        assert all(f.speech is None and f.delay is None for f in idle)
        assert [f.index for f in idle] == list(range(len(idle)))
        s.push(speech(20.0))
        talking = wait_for(lambda: [f for f in s.take() if f.speech is not None], 90, "a speech frame")
        first_speech = talking[0]
        assert first_speech.speech[0] == 0  # the client's first sample
        dropped = s.interrupt()
        assert dropped["audio_seconds"] > 10  # most of the 20 s had not been fed
        assert s.stats()["buffered_seconds"] == 0
        # the frames made from speech already inside the pipeline play out, silenced, then idle: within one DiT window
        after: list = []
        wait_for(lambda: (after.extend(s.take()) or any(f.speech is None for f in after)), 90, "idle after interrupt")
        first_idle = next(i for i, f in enumerate(after) if f.speech is None)
        assert all(f.speech is None for f in after[first_idle:])
        assert first_idle <= 80
        assert not any(f.audio.any() for f in after)  # nothing of the cancelled speech is heard
        indices = [f.index for f in idle] + [f.index for f in after]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
        st = s.stats()
        assert st["interrupts"] == 1 and st["idle_seconds"] > 0 and st["speech_seconds"] > 0
    finally:
        s.close()
    assert not live_threads()


def test_a_slow_client_gets_the_newest_frames_and_a_count_of_the_dropped(synthetic_models, live_source):
    s = LiveSession(synthetic_models, live_source, LiveSettings(idle=False, output="crop", frame_queue=3, **FAST),
                    renderer=standin(synthetic_models))
    try:
        s.push(speech(0.8))
        s.end()
        assert s.finished.wait(60)
        kept = s.take()
        st = s.stats()
    finally:
        s.close()
    assert st["frames"] == 20 and st["frames_dropped"] == 17
    assert [f.index for f in kept] == [17, 18, 19]


def test_speech_past_the_buffer_limit_is_refused_and_the_session_goes_on(synthetic_models, live_source):
    s = LiveSession(synthetic_models, live_source, LiveSettings(idle=False, output="crop", max_buffer_seconds=0.5,
                                                                **FAST), renderer=standin(synthetic_models))
    try:
        with pytest.raises(LiveError, match="0.5 s of speech are already waiting") as e:
            s.push(speech(1.0))
        assert e.value.code == "buffer_full"
        s.push(speech(0.2))
        s.end()
        assert s.finished.wait(60)
        assert [f.index for f in s.take()] == list(range(5))
        with pytest.raises(LiveError, match="after the end"):
            s.push(speech(0.1))
    finally:
        s.close()


def test_close_mid_stream_joins_every_thread(synthetic_models, live_source):
    s = LiveSession(synthetic_models, live_source, LiveSettings(output="crop", **FAST),
                    renderer=standin(synthetic_models))
    s.push(speech(5.0))
    collect(s, 1)
    assert len(live_threads()) == 4
    s.close()
    assert not live_threads() and s.alive_threads == 0


# --------------------------------------------------------------------------------------------- real servers
class Server:
    """``python tests/live_server.py`` in a child process on 127.0.0.1 (any free port)."""

    def __init__(self, kit: Path, *extra: str, standin_renderer: bool = True) -> None:
        argv = [sys.executable, str(ROOT / "tests" / "live_server.py"), "--models", str(kit), "--device", "cpu",
                "--port", "0", "--avatar", str(PORTRAIT), *extra]
        if standin_renderer:
            argv.append("--standin")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=ROOT)
        self.lines: list[str] = []
        end = time.monotonic() + 180
        self.url = self.avatar = None
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("the server exited:\n" + "".join(self.lines))
            self.lines.append(line)
            if m := re.match(r"avatar (\w+):", line):
                self.avatar = m.group(1)
            if m := re.match(r"serving on (http://127\.0\.0\.1:\d+)/", line):
                self.url = m.group(1)
            assert time.monotonic() < end, "the server did not start in 180 s"
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def server(synthetic_kit):
    s = Server(synthetic_kit)
    yield s
    assert s.stop() == 0, "".join(s.lines)
    assert any("stopping: closing sessions" in line for line in s.lines)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


async def frames_and_events(conn) -> tuple[list, list[dict]]:
    frames, events = [], []
    async for item in conn.events():
        (events if isinstance(item, dict) else frames).append(item)
    return frames, events


def test_websocket_session_end_to_end(server):
    async def go():
        async with LiveClient(server.url) as c:
            avatars = await c.avatars()
            assert [a["id"] for a in avatars] == [server.avatar] and avatars[0]["kind"] == "image"
            fmt = AudioFormat("s16le", 24000, 1)
            async with c.session(server.avatar, {"idle": False, "output": "crop", **FAST}, fmt) as conn:
                assert conn.ready["type"] == "ready" and conn.ready["settings"]["output"] == "crop"
                pcm = (speech(0.4, 24000) * 32767).round().astype("<i2").tobytes()
                for i in range(0, len(pcm), 1000):  # pieces of 500 samples
                    await conn.push(pcm[i:i + 1000])
                await conn.end()
                return await frames_and_events(conn)

    frames, events = run(go())
    assert [f.index for f in frames] == list(range(10))
    for f in frames:
        assert f.header["audio_span"] == [640 * f.index, 640 * (f.index + 1)] and f.header["speech"] is not None
        assert f.audio is None  # return_audio off
        img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (512, 512, 3) and f.header["width"] == 512
    ended = [e for e in events if e["type"] == "ended"]
    assert len(ended) == 1 and ended[0]["frames"] == 10 and ended[0]["frames_dropped"] == 0
    assert events[-1]["type"] == "ended"


def test_errors_are_events_and_the_session_goes_on(server):
    async def go():
        async with LiveClient(server.url) as c:
            with pytest.raises(LiveServerError, match="unknown_avatar: avatar: no avatar with id 'nope'"):
                async with c.session("nope"):
                    pass
            with pytest.raises(LiveServerError, match="bad_settings: settings.mouth must be"):
                async with c.session(server.avatar, {"mouth": "loud"}):
                    pass
            with pytest.raises(LiveServerError, match="bad_avatar") as e:
                await c.upload_avatar(b"this is not a picture", "notes.txt")
            assert e.value.status == 400 and "notes.txt" in e.value.message
            again = await c.upload_avatar(PORTRAIT)
            assert again["id"] == server.avatar and again["cached"] is True
            fmt = AudioFormat("s16le", 16000, 1)
            async with c.session(server.avatar, {"idle": False, "output": "crop", "return_audio": True, **FAST},
                                 fmt) as conn:
                await conn.send({"type": "dance"})
                await conn.push(b"\0" * 1001)  # not whole 16-bit samples
                await conn.send({"type": "start", "avatar": server.avatar})
                x = speech(0.2)
                await conn.push(x)
                await conn.end()
                return await frames_and_events(conn), x

    (frames, events), x = run(go())
    codes = [e.get("code") for e in events if e["type"] == "error"]
    assert codes == ["unknown_message", "bad_audio", "already_started"]
    assert [f.index for f in frames] == list(range(5)) and events[-1]["type"] == "ended"
    # return_audio: each frame carries its own 640 samples of the speech, as 16-bit PCM
    got = np.concatenate([f.audio for f in frames]).astype(np.float32) / 32767
    np.testing.assert_allclose(got, x[:3200], atol=1 / 32767 + 1e-6)


def test_two_concurrent_sessions_and_disconnect_clean_up(server):
    async def one(c, freq):
        async with c.session(server.avatar, {"idle": False, "output": "crop", **FAST}) as conn:
            await conn.push(speech(0.4, freq=freq))
            await conn.end()
            frames, _ = await frames_and_events(conn)
            return [f.index for f in frames]

    async def go():
        async with LiveClient(server.url) as c:
            a, b = await asyncio.gather(one(c, 220.0), one(c, 330.0))
            assert a == b == list(range(10))
            # a client that goes away mid-session (idle on, never ends) frees its session
            conn = c.session(server.avatar, {"output": "crop", **FAST})
            await conn.__aenter__()
            assert (await c.health())["sessions"] == 1
            await conn.ws.close()
            for _ in range(200):
                if (await c.health())["sessions"] == 0:
                    break
                await asyncio.sleep(0.05)
            return await c.health(), await c.metrics()

    health, metrics = run(go())
    assert health["sessions"] == 0
    assert re.search(r"^ditto_live_sessions 0$", metrics, re.M)
    total = int(re.search(r"^ditto_live_sessions_total (\d+)$", metrics, re.M).group(1))
    assert total >= 3
    assert re.search(r'^ditto_live_errors_total\{code="unknown_avatar"\} \d+$', metrics, re.M) or total >= 3


def test_token_and_a_second_server_process(synthetic_kit, server):
    """With --token every request needs it (header or query); --max-upload-mb refuses larger uploads; and two server
    processes serve independently (the documented scale-out: one process per GPU behind a sticky load balancer)."""
    import aiohttp

    token = "s3cret-token"
    other = Server(synthetic_kit, "--token", token, "--max-upload-mb", "0.01")
    try:
        async def go():
            async with aiohttp.ClientSession() as h:
                for path in ("/health", "/avatars", "/metrics", "/", "/ws"):
                    async with h.get(other.url + path) as r:
                        assert r.status == 401, path
                async with h.get(other.url + "/health", headers={"Authorization": "Bearer wrong"}) as r:
                    assert r.status == 401
                    assert "needs its token" in (await r.json())["message"]
                async with h.get(other.url + f"/health?token={token}") as r:
                    assert r.status == 200
                async with h.post(other.url + f"/avatars?token={token}", data=PORTRAIT.read_bytes()) as r:
                    assert r.status == 413 and (await r.json())["error"] == "too_large"  # over 0.01 MB
                async with h.ws_connect(other.url + f"/ws?token={token}") as ws:
                    await ws.send_str(json.dumps({"type": "stats"}))
                    assert json.loads((await ws.receive()).data)["code"] == "not_started"

            async def session(url, tok):
                async with LiveClient(url, token=tok) as c:
                    async with c.session(server.avatar if tok is None else other.avatar,
                                         {"idle": False, "output": "crop", **FAST}) as conn:
                        await conn.push(speech(0.2))
                        await conn.end()
                        frames, _ = await frames_and_events(conn)
                        return [f.index for f in frames]

            return await asyncio.gather(session(server.url, None), session(other.url, token))

        assert run(go()) == [list(range(5))] * 2
    finally:
        assert other.stop() == 0


def test_serve_refuses_a_missing_avatar_file_before_loading_models(tmp_path, capsys):
    from ditto_core.__main__ import main

    assert main(["serve", "--models", str(tmp_path), "--avatar", str(tmp_path / "nope.jpg")]) == 2
    assert "--avatar" in capsys.readouterr().err
    assert main(["serve", "--models", str(tmp_path), "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "ditto: error: --port must be an integer in 0..65535, got 70000"


def test_the_protocol_documents_client_example_runs_as_written(server, monkeypatch, capsys):
    """docs/live-protocol.md's Python example, against a real server (only its address substituted)."""
    text = (ROOT / "docs" / "live-protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)
    code = blocks[0].replace('"http://127.0.0.1:8765"', repr(server.url))
    exec(compile(code, "docs/live-protocol.md", "exec"), {"__name__": "docs_example"})  # noqa: S102 - our docs
    out = capsys.readouterr().out.splitlines()
    frames = [line for line in out if line.startswith("frame ")]
    assert [int(line.split()[1]) for line in frames] == list(range(13))  # 0.5 s of audio
    assert out[-1] == "ended"
