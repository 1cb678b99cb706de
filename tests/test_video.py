"""The mp4 writer: frame count, rate, audio track, interleaving, odd sizes, clean failure."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from ditto_core.video import BackgroundWriter, VideoWriter, VideoWriterError, probe_video  # noqa: E402

SR = 16000


def tone(seconds: float, hz: float = 440.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def smooth_frames(n: int, h: int, w: int) -> np.ndarray:
    """Frames with smooth gradients (compress well, so decoded values stay close)."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 255 // max(w - 1, 1)).astype(np.uint8)
        out[i, ..., 1] = (y * 255 // max(h - 1, 1)).astype(np.uint8)
        out[i, ..., 2] = (40 + 25 * i) % 256
    return out


def decode_rgb(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def decode_audio(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_frames_rate_and_audio(tmp_path):
    out = tmp_path / "clip.mp4"
    frames = smooth_frames(7, 48, 64)
    wave = tone(0.28)
    with VideoWriter(out, fps=25, audio_16k=wave) as w:
        for f in frames:
            w.write(f)
    info = probe_video(out)
    assert info["frames"] == 7
    assert info["fps"] == pytest.approx(25.0)
    assert (info["width"], info["height"]) == (64, 48)
    assert info["video_codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["has_audio"] and info["audio_codec"] == "aac"
    assert info["audio_seconds"] == pytest.approx(0.28, abs=0.01)
    # the pictures survive the encoder (CRF 18 on smooth content)
    dec = decode_rgb(out)
    assert dec.shape == frames.shape
    assert np.abs(dec.astype(int) - frames.astype(int)).mean() < 4.0
    # the audio is still a 440 Hz tone
    a = decode_audio(out)
    a = a[1024:4096]  # skip the encoder's start-up, stay inside the tone
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a))))
    peak_hz = np.argmax(spec) * SR / len(a)
    assert peak_hz == pytest.approx(440.0, abs=SR / len(a))
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_batch_write_and_interleaving(tmp_path):
    out = tmp_path / "long.mp4"
    frames = smooth_frames(50, 32, 32)
    with VideoWriter(out, fps=25, audio_16k=tone(2.0)) as w:
        w.write(frames[:20])  # a batch
        for f in frames[20:]:
            w.write(f)
    info = probe_video(out)
    assert info["frames"] == 50 and info["audio_seconds"] == pytest.approx(2.0, abs=0.01)
    with av.open(str(out)) as c:
        kinds = [p.stream.type for p in c.demux() if p.size]
    # audio packets are spread through the file, not appended after the video
    first_audio = kinds.index("audio")
    last_video = len(kinds) - 1 - kinds[::-1].index("video")
    assert first_audio < last_video
    assert kinds[: len(kinds) // 2].count("audio") > 0


def test_audio_longer_than_video_is_kept(tmp_path):
    out = tmp_path / "a.mp4"
    with VideoWriter(out, fps=25, audio_16k=tone(0.5)) as w:
        w.write(smooth_frames(5, 16, 16))
    assert probe_video(out)["audio_seconds"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing(tmp_path, exc):
    out = tmp_path / "clip.mp4"
    with pytest.raises(exc):
        with VideoWriter(out, fps=25, audio_16k=tone(1.0)) as w:
            for i, f in enumerate(smooth_frames(10, 48, 64)):
                w.write(f)
                if i == 4:
                    raise exc("stop")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_existing_file(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, fps=25) as w:
            w.write(smooth_frames(3, 16, 16))
            raise KeyboardInterrupt
    assert out.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [out]


def test_clean_close_replaces_existing_file(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous result")
    with VideoWriter(out, fps=25) as w:
        w.write(smooth_frames(3, 16, 16))
    assert probe_video(out)["frames"] == 3


@pytest.mark.parametrize("h,w", [(47, 63), (48, 63), (47, 64)])
def test_odd_sizes_are_edge_padded(tmp_path, h, w):
    out = tmp_path / "odd.mp4"
    frames = smooth_frames(3, h, w)
    with VideoWriter(out, fps=25) as vw:
        vw.write(frames)
    info = probe_video(out)
    assert (info["height"], info["width"]) == (h + h % 2, w + w % 2)
    dec = decode_rgb(out)
    # the original pixels are where they were (nothing cropped or rescaled)
    assert np.abs(dec[:, :h, :w].astype(int) - frames.astype(int)).mean() < 4.0
    # the added row / column repeats the edge
    if h % 2:
        assert np.abs(dec[:, h, :w].astype(int) - frames[:, h - 1].astype(int)).mean() < 6.0
    if w % 2:
        assert np.abs(dec[:, :h, w].astype(int) - frames[:, :, w - 1].astype(int)).mean() < 6.0


def test_bad_input(tmp_path):
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="uint8"):
        with VideoWriter(out) as w:
            w.write(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        with VideoWriter(out) as w:
            w.write(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="differs"):
        with VideoWriter(out) as w:
            w.write(np.zeros((16, 16, 3), np.uint8))
            w.write(np.zeros((18, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="audio_16k"):
        VideoWriter(out, audio_16k=np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="folder"):
        VideoWriter(tmp_path / "missing" / "x.mp4")
    with pytest.raises(VideoWriterError, match="no frames"):
        with VideoWriter(out):
            pass
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- encoding on its own thread


def test_background_writer_same_file_as_inline(tmp_path):
    """Frames handed to the BackgroundWriter are encoded on another thread, in order, into the same video (up to encoder noise)."""
    import threading

    frames = smooth_frames(9, 32, 48)
    inline, threaded = tmp_path / "inline.mp4", tmp_path / "threaded.mp4"
    with VideoWriter(inline, fps=25, audio_16k=tone(0.36)) as w:
        w.write(frames)
    vw = VideoWriter(threaded, fps=25, audio_16k=tone(0.36))
    threads = []
    original = vw.write
    vw.write = lambda f: (threads.append(threading.get_ident()), original(f))[1]
    with BackgroundWriter(vw, max_pending=1) as bw:
        for s in range(0, 9, 2):
            bw.write(frames[s : s + 2])
    assert len(threads) == 5 and set(threads) != {threading.get_ident()}
    # The encoder's own threads make H.264 bit-exactness machine-dependent, so compare the pictures: same
    # count, each decoded frame nearest its own source frame (order kept), and close to the inline encode.
    got, ref = decode_rgb(threaded).astype(np.float32), decode_rgb(inline).astype(np.float32)
    assert got.shape == ref.shape == frames.shape
    err = np.abs(got[:, None] - frames[None].astype(np.float32)).mean(axis=(2, 3, 4))  # (decoded, source)
    assert np.array_equal(err.argmin(axis=1), np.arange(9))
    assert np.abs(got - ref).mean() < 1.0
    assert probe_video(threaded)["audio_seconds"] == pytest.approx(0.36, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inline.mp4", "threaded.mp4"]


def test_background_writer_encoder_error_reaches_the_caller(tmp_path):
    """A batch the encoder refuses (another size) raises in the caller's thread; nothing is left."""
    out = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match="differs from the first frame"):
        with BackgroundWriter(VideoWriter(out, fps=25)) as bw:
            bw.write(smooth_frames(2, 16, 16))
            bw.write(smooth_frames(2, 32, 32))
            for _ in range(20):  # the error comes out at the latest on close()
                bw.write(smooth_frames(1, 16, 16))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="max_pending"):
        BackgroundWriter(VideoWriter(out, fps=25), max_pending=0)


def test_background_writer_abort_on_interrupt(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(VideoWriter(out, fps=25, audio_16k=tone(1.0))) as bw:
            bw.write(smooth_frames(3, 16, 16))
            raise KeyboardInterrupt
    assert out.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [out]
    with pytest.raises(VideoWriterError, match="already finished"):
        bw.write(smooth_frames(1, 16, 16))
