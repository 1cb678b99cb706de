"""Streaming generation (ditto_core.runtime.stream) on the synthetic kit: incremental output, frame counts, chunking
independence, seeding, edits, rendering (the same frames as the offline renderer), concurrent sessions on one
DittoModels, the --stream command, cancel and worker errors.

The renderer takes seconds per 512x512 frame on a CPU: only a few frames are rendered; motion-only sessions
(output "none", 1-2 DiT steps) cover the schedule."""

import dataclasses
import math
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from ditto_core.__main__ import main
from ditto_core.audio import frame_count
from ditto_core.motion import EXP, HEAD_DIMS, LIP_DIMS, ClipControls, FrameControls
from ditto_core.runtime import (
    JobOptions,
    RenderOptions,
    SamplingOptions,
    StreamCancelled,
    StreamingOptions,
    StreamingSession,
    extract_source,
    render_frames,
)
from ditto_core.stitch import MotionStitcher
from ditto_core.video import probe_video

from conftest import face_image, standin_renderer, write_wav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(synthetic_models):
    return extract_source(synthetic_models, face_image())


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * 16000))) / 16000
    return (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.shape)
            ).astype(np.float32)


def _official_count(n_samples: int) -> int:
    f = 5 * math.ceil((n_samples + 1920) / 3200)
    return 0 if f < 10 else 10 * (f // 10) + 10


def _opts(output="none", steps=1, batch_size=4, seed=0, **clip) -> JobOptions:
    return JobOptions(sampling=SamplingOptions(steps=steps, seed=seed), clip=ClipControls(**clip),
                      render=RenderOptions(output=output, batch_size=batch_size))


def _motion_only(models, source, audio, pieces=None, official_count=False, **kw):
    """Run a keypoints-only session; returns (frames, session)."""
    with StreamingSession(models, source, _opts(**kw), StreamingOptions(official_count=official_count),
                          record=True) as s:
        out = []
        if pieces is None:
            pieces = [audio]
        for p in pieces:
            s.push(p)
            out += s.poll()
        out += s.close()
    assert not s.alive
    return out, s


def _wait_frames(s, n, timeout=120.0):
    got, t0 = [], time.perf_counter()
    while len(got) < n and time.perf_counter() - t0 < timeout:
        got += s.poll()
        time.sleep(0.02)
    return got


def test_frames_come_out_while_audio_is_pushed(synthetic_models, source):
    audio = _speech(1.2)
    s = StreamingSession(synthetic_models, source, _opts())
    with s:
        # 14400 samples complete 4 chunks (1920 zeros in front): 20 features + 70 prefill -> windows 0 and 1
        for i in range(0, 14400, 1600):
            s.push(audio[i : i + 1600])
        first = _wait_frames(s, 10)
        time.sleep(0.3)
        assert s.poll() == []  # window 2 needs chunk 6
        s.push(audio[14400:])
        rest = s.close()
    assert [f.index for f in first] == list(range(10))  # before the end of the audio
    frames = first + rest
    assert len(frames) == frame_count(len(audio)) == 30
    assert [f.index for f in frames] == list(range(30))
    assert s.stats.frames == 30 and s.stats.first_frame_latency is not None and s.stats.first_frame_latency >= 0


@pytest.mark.parametrize("n_samples", [300, 640, 1280, 4800, 11000, 16000])
def test_frame_counts(synthetic_models, source, n_samples):
    audio = _speech(n_samples / 16000, seed=n_samples)
    default, s1 = _motion_only(synthetic_models, source, audio)
    official, s2 = _motion_only(synthetic_models, source, audio, official_count=True)
    assert len(default) == frame_count(n_samples)
    assert len(official) == _official_count(n_samples)
    if official:
        # the default stops early (or, for <= 80 ms, continues with silence); the frames it shares are the same
        n = min(len(default), len(official))
        assert torch.equal(s1.record.motion[:n], s2.record.motion[:n])
        assert torch.equal(s1.record.x_d[:n], s2.record.x_d[:n])


def test_push_sizes_do_not_matter_and_seed(synthetic_models, source):
    audio = _speech(0.9, seed=3)
    whole, a = _motion_only(synthetic_models, source, audio, seed=5)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(audio)), 12, replace=False))
    pieces = [torch.from_numpy(p) for p in np.split(audio, cuts)] + [np.zeros(0, np.float32)]
    split, b = _motion_only(synthetic_models, source, audio, pieces=pieces, seed=5)
    assert len(whole) == len(split) == frame_count(len(audio))
    assert torch.equal(a.record.motion, b.record.motion)
    assert torch.equal(torch.stack([f.x_d for f in whole]), torch.stack([f.x_d for f in split]))
    _, c = _motion_only(synthetic_models, source, audio, seed=6)
    assert not torch.allclose(a.record.motion, c.record.motion)


def test_edits_match_a_hand_stitch(synthetic_models, source):
    """Pose offsets, amplitudes and a fade-in: the keypoints of stitching by hand the motion whose deviations from
    d0 were scaled by hand (float64), with plain offsets and the official fade ramp."""
    audio = _speech(0.5, seed=4)
    _, p = _motion_only(synthetic_models, source, audio, seed=2)
    _, e = _motion_only(synthetic_models, source, audio, seed=2, yaw=7.0, pitch=-3.0, head=0.5, mouth=2.0,
                        fade_in=4)
    motion, d0 = p.record.motion, p.record.d0
    assert torch.equal(motion, e.record.motion)  # edits act after sampling
    m, r = motion.double(), d0.double()
    shaped = m.clone()
    shaped[:, HEAD_DIMS] = r[HEAD_DIMS] + (m[:, HEAD_DIMS] - r[HEAD_DIMS]) * 0.5
    lips = [EXP.start + i for i in LIP_DIMS]
    shaped[:, lips] = r[lips] + (m[:, lips] - r[lips]) * 2.0
    cfg = dataclasses.replace(synthetic_models.release.stitch, fade_target="source")
    st = MotionStitcher(source.x_s_info_frame(0), True, cfg, synthetic_models.stitch, rng=2, d0=d0)
    n = motion.shape[0]
    fade = torch.tensor([i / 4 if i < 4 else float("nan") for i in range(n)])
    controls = FrameControls(n, delta_yaw=torch.full((n,), 7.0), delta_pitch=torch.full((n,), -3.0), fade_alpha=fade)
    with torch.no_grad():
        _, x_d = st.stitch_batch(shaped.float(), controls)
    assert torch.allclose(e.record.x_d, x_d, atol=2e-5)
    assert not torch.allclose(p.record.x_d, x_d, atol=1e-3)


def test_video_source_keypoints(synthetic_models):
    """A 3-frame video source: one x_s per generated frame (ping-pong source frames), eyes not driven."""
    frames = np.stack([np.roll(face_image(), 2 * i, axis=1) for i in range(3)])
    video = extract_source(synthetic_models, frames, is_image=False)
    out, s = _motion_only(synthetic_models, video, _speech(0.3, seed=6))
    n = frame_count(round(0.3 * 16000))
    assert len(out) == n and s.record.x_s.shape == (n, 21, 3)
    st = MotionStitcher([video.x_s_info_frame(i) for i in range(3)], False, synthetic_models.release.stitch,
                        synthetic_models.stitch, rng=0, d0=s.record.d0)
    with torch.no_grad():
        x_s, x_d = st.stitch_batch(s.record.motion)
    assert torch.allclose(s.record.x_s, x_s) and torch.allclose(s.record.x_d, x_d, atol=1e-6)
    assert torch.equal(s.record.x_s[3], s.record.x_s[2])  # frames 0 1 2 2 1 0 ...


def test_rendered_frames_incremental(synthetic_models, source):
    """2 frames (60 ms): frame 0 is rendered alone and comes out first; crops equal the renderer's output."""
    audio = _speech(0.06, seed=5)
    with StreamingSession(synthetic_models, source, _opts("crop", steps=2, batch_size=2), record=True) as s:
        frames = list(s.run(audio, piece=700))
    assert [f.index for f in frames] == list(range(frame_count(len(audio)))) == [0, 1]
    assert all(f.image.shape == (512, 512, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].time < frames[1].time  # batches [0], [1]
    assert s.stats.frames == 2 and s.stats.sustained_fps > 0 and s.stats.first_frame_latency > 0
    ref = synthetic_models.new_renderer(1).render(source.f_s, s.record.x_s, s.record.x_d[1:2]).numpy()[0]
    # the same network on the same keypoints; batch and thread layout may move a value across a grey level
    assert np.abs(frames[1].image.astype(int) - ref.astype(np.uint8).astype(int)).max() <= 1


@pytest.mark.parametrize("output", ["full"])
def test_stream_frames_equal_the_offline_renderer(synthetic_models, source, output):
    """For the same motion (the stream's, with its reference frame d0) and the same job controls, the stream's
    frames are render_frames' frames: one keypoint planner and one compositor (paste-back on the device, batched) serve
    both modes. Blinks off: a stream draws its blink schedule for an unknown length. ("full" is the rendered crop
    pasted back; the stream's "crop" frames against the renderer itself: test_rendered_frames_incremental.)"""
    audio = _speech(0.06, seed=8)
    clip = dict(yaw=4.0, head=0.7, blink_interval=0)
    with StreamingSession(synthetic_models, source, _opts(output, steps=1, batch_size=2, seed=3, **clip),
                          record=True) as s:
        stream = list(s.run(audio, piece=700))
    motion = s.record.as_motion()
    assert len(stream) == motion.num_frames == frame_count(len(audio)) == 2
    offline = np.concatenate([b for b, _ in render_frames(synthetic_models, source, motion, output, batch_size=2,
                                                           clip=ClipControls(**clip))])
    assert offline.shape == (2, *stream[0].image.shape)
    for f in stream:
        diff = np.abs(f.image.astype(int) - offline[f.index].astype(int))
        # the same maths; the stream batches [0], [1] and the offline job [0, 1], which may move a truncated value
        # across a grey level
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999, f.index
    if output == "full":
        assert stream[0].image.shape == source.frames[0].shape  # pasted back into the source frame


def test_two_sessions_at_once_give_what_each_gives_alone(synthetic_models, source):
    """Two streaming sessions on one DittoModels, run concurrently from two threads, give exactly the frames each
    gives alone: each owns its renderer and planner; nothing shared is changed. (Batch size 1: a session batches the
    frames that are ready, so with larger batches the grouping, and with it the last bit of a float, depends on
    timing.)"""
    jobs = [(_speech(0.04, seed=11), _opts("full", steps=1, batch_size=1, seed=1, yaw=5.0)),
            (_speech(0.04, seed=12), _opts("crop", steps=1, batch_size=1, seed=2, head=0.3))]  # 1 frame each

    def run(audio, opts):
        with StreamingSession(synthetic_models, source, opts) as s:
            return [f.image for f in s.run(audio, piece=700)]

    alone = [run(*j) for j in jobs]
    together: list = [None, None]
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, run(*jobs[k]))) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        assert b is not None and len(a) == len(b) == 1
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert alone[0][0].shape == source.frames[0].shape and alone[1][0].shape == (512, 512, 3)


def test_cli_stream_writes_video(synthetic_kit, tmp_path, capsys, caplog):
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    wav = write_wav(tmp_path / "speech.wav", 0.06, sample_rate=22050)
    blip = write_wav(tmp_path / "blip.wav", 0.04, sample_rate=22050)  # one frame
    out = tmp_path / "stream.mp4"
    code = main(["generate", "--source", portrait, "--audio", wav, "--out", out, "--models", synthetic_kit,
                 "--no-download", "--device", "cpu", "--steps", "2", "--stream", "--yaw", "3"])
    assert code == 0
    info = probe_video(out)
    assert info["frames"] == frame_count(round(0.06 * 16000)) == 2
    assert info["fps"] == pytest.approx(25.0) and info["has_audio"]
    assert (info["width"], info["height"]) == (288, 320)
    text = capsys.readouterr().out
    assert "first-frame latency:" in text and " ms" in text and "fps over 2 frames" in text
    code = main(["generate", "--source", portrait, "--audio", wav, "--out", tmp_path / "x.mp4", "--models",
                 synthetic_kit, "--no-download", "--device", "cpu", "--stream", "--fade-out", "5"])
    assert code == 2 and "--fade-out" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
    # every other flag of generate is honoured with --stream: output, batch size, renderer backend (no GPU here: the
    # one warning and the PyTorch renderer), crop scale
    crop = tmp_path / "crop.mp4"
    with caplog.at_level("WARNING", logger="ditto"):
        code = main(["generate", "--source", portrait, "--audio", blip, "--out", crop, "--models", synthetic_kit,
                     "--no-download", "--device", "cpu", "--steps", "1", "--stream", "--output", "crop",
                     "--batch-size", "1", "--renderer", "tensorrt", "--crop-scale", "2.0", "-q"])
    assert code == 0
    info = probe_video(crop)
    assert (info["width"], info["height"]) == (512, 512) and info["frames"] == 1
    assert [m for m in caplog.messages if "renderer unavailable" in m] == [
        m for m in caplog.messages if m.startswith("TensorRT renderer unavailable: ")] != []


def test_cancel_method_stops_threads(synthetic_models, source):
    s = StreamingSession(synthetic_models, source, _opts(steps=20))
    s.push(_speech(2.0))  # windows of 50 steps: the motion thread is busy
    time.sleep(0.3)
    assert s.alive
    t0 = time.perf_counter()
    s.cancel()
    assert not s.alive and time.perf_counter() - t0 < 30
    with pytest.raises(StreamCancelled):
        s.push(_speech(0.1))
    with pytest.raises(StreamCancelled):
        s.poll()


class _Stop(Exception):
    pass


def test_cancel_callback_stops_everything(synthetic_models, source):
    calls = []
    worker_calls = []

    def cancel():
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == "ditto-stream-motion":
            worker_calls.append(1)
            if len(worker_calls) >= 3:
                raise _Stop("cancelled")

    s = StreamingSession(synthetic_models, source, _opts(steps=2), cancel=cancel)
    with pytest.raises(_Stop):
        with s:
            for _ in range(10):
                s.push(_speech(0.2))
            s.close()
    assert not s.alive
    assert "ditto-stream-motion" in calls


@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info(), reason="per-thread counts need ATen on OpenMP")
def test_worker_thread_counts(synthetic_models, source):
    """The motion thread runs on 1 intra-op thread (CPU default) without taking the render thread down to 1 too,
    and threads started after the session get the caller's count again."""
    seen: dict[str, set[int]] = {}

    def cancel():
        seen.setdefault(threading.current_thread().name, set()).add(torch.get_num_threads())

    def fresh_thread_count() -> int:
        got = []
        t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
        t.start()
        t.join()
        return got[0]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # without the pinning the render thread picked up the motion thread's 1 and ran on one core (the renderer is
        # the stand-in: the subject is the threads, and the real networks take seconds per frame here)
        with StreamingSession(synthetic_models, source, _opts("crop", batch_size=2), cancel=cancel,
                              renderer=standin_renderer(synthetic_models, 2)) as s:
            frames = list(s.run(_speech(0.1)))
        assert len(frames) == frame_count(1600)
        assert seen["ditto-stream-motion"] == {1}
        assert seen["ditto-stream-render"] == {2}
        assert torch.get_num_threads() == 2 and fresh_thread_count() == 2
        with StreamingSession(synthetic_models, source, _opts(), StreamingOptions(motion_threads=2),
                              cancel=cancel) as s:
            s.close()
        assert fresh_thread_count() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info(), reason="per-thread counts need ATen on OpenMP")
def test_a_session_made_beside_running_workers_reads_the_users_thread_count():
    """While one session's motion worker runs pinned to 1 thread, a session created on a fresh thread still gets the
    user's count for its render thread (it used to read the worker's 1 and render with another reduction order,
    which made two concurrent sessions differ from each alone); the last worker out restores the user's count."""
    from ditto_core.runtime.stream import _INTRAOP

    def on_fresh_thread(fn):
        got = []
        t = threading.Thread(target=lambda: got.append(fn()))
        t.start()
        t.join()
        return got[0]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    pinned, release = threading.Event(), threading.Event()

    def motion_worker():
        _INTRAOP.pin(1)
        try:
            pinned.set()
            release.wait(10)
        finally:
            _INTRAOP.unpin()

    worker = threading.Thread(target=motion_worker)
    try:
        worker.start()
        assert pinned.wait(10)
        assert on_fresh_thread(torch.get_num_threads) == 1  # what ATen gives a fresh thread meanwhile
        assert on_fresh_thread(_INTRAOP.user_count) == 2  # what a session reads
        release.set()
        worker.join()
        assert on_fresh_thread(torch.get_num_threads) == 2
    finally:
        release.set()
        worker.join()
        torch.set_num_threads(before)


def test_render_worker_error_propagates(synthetic_models, source):
    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("decoder exploded")

    models = dataclasses.replace(synthetic_models, decoder=Boom())
    s = StreamingSession(models, source, _opts("crop"))
    with pytest.raises(RuntimeError, match="decoder exploded"):
        with s:
            s.push(_speech(0.1))
            s.close()
    assert not s.alive


def test_motion_worker_error_propagates(synthetic_models, source):
    class BadHubert:
        def __init__(self, real):
            self.real = real

        def prefill_features(self, n):
            return self.real.prefill_features(n)

        def chunk_features(self, chunk):
            raise ValueError("hubert failed")

    models = dataclasses.replace(synthetic_models, hubert=BadHubert(synthetic_models.hubert))
    s = StreamingSession(models, source, _opts())
    with pytest.raises(ValueError, match="hubert failed"):
        for _ in range(20):  # the error arrives at a later push (or at close)
            s.push(_speech(0.2))
            time.sleep(0.05)
        s.close()
    assert not s.alive


def test_bad_input(synthetic_models, source):
    with pytest.raises(ValueError, match="overlap"):
        StreamingSession(synthetic_models, source, JobOptions(sampling=SamplingOptions(overlap=0)))
    with pytest.raises(ValueError, match="output"):
        RenderOptions(output="gif")
    with pytest.raises(ValueError, match="fade_out"):
        StreamingSession(synthetic_models, source, _opts(fade_out=5))
    with pytest.raises(ValueError, match="queue_size"):
        StreamingOptions(queue_size=0)
    with pytest.raises(ValueError, match="source"):
        StreamingSession(synthetic_models, face_image(), _opts())
    with pytest.raises(ValueError, match="JobOptions"):
        StreamingSession(synthetic_models, source, SamplingOptions())
    with StreamingSession(synthetic_models, source, _opts()) as s:
        with pytest.raises(ValueError, match="mono"):
            s.push(np.zeros((2, 100), np.float32))
        with pytest.raises(ValueError, match="NaN"):
            s.push(np.full(10, np.nan, np.float32))
        s.end_audio()
        with pytest.raises(RuntimeError, match="ended"):
            s.push(np.zeros(10, np.float32))
        assert s.close() == []  # no audio at all: no frames
