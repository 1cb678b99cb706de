"""The user's audio in the video: muxed at its own sample rate and channel count, fitted to the video's length.

The writer-level tests are fast; the end-to-end ones (``generate`` and ``stream_to_file`` on the synthetic kit) are
marked slow and kept to a few frames.
"""

from __future__ import annotations

import math
import wave

import cv2
import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from ditto_core.audio import AudioError, load_audio, load_audio_native  # noqa: E402
from ditto_core.runtime import JobOptions, RenderOptions, SamplingOptions, generate  # noqa: E402
from ditto_core.runtime.stream import stream_to_file  # noqa: E402
from ditto_core.video import VideoWriter, downmix_to_stereo, probe_video  # noqa: E402

from conftest import face_image, standin_renderer  # noqa: E402

FRAME_S = 1 / 25  # one video frame: the tolerance on the audio's length


def tones(seconds: float, sr: int, freqs: tuple[float, ...], amp: float = 0.3) -> np.ndarray:
    """(C, T) float32: one sine per channel."""
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def write_wav(path, x: np.ndarray, sr: int):
    """(C, T) float -> a 16-bit PCM wav (the ``wave`` module); returns the path."""
    pcm = (np.asarray(x).T * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


def decode_audio(path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` -> ((C, T) float32, sample rate)."""
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(audio=0)]
        sr = frames[0].sample_rate
        parts = []
        for f in frames:
            a = f.to_ndarray()
            if not f.format.is_planar:
                a = a.reshape(-1, len(f.layout.channels)).T
            parts.append(a)
    return np.concatenate(parts, axis=1).astype(np.float32), sr


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def frames_of(n: int, size: int = 32) -> np.ndarray:
    return np.full((n, size, size, 3), 128, np.uint8)


def write_clip(path, audio, sr, n_frames=8, **kw):
    with VideoWriter(path, fps=25, audio=audio, audio_sample_rate=sr, preset="ultrafast", **kw) as w:
        w.write(frames_of(n_frames))
    return probe_video(path)


# ----------------------------------------------------------------------------------------------- the writer


@pytest.mark.parametrize("sr, channels", [(48000, 2), (44100, 1), (16000, 1), (22050, 2), (8000, 1)])
def test_writer_keeps_rate_and_channels(tmp_path, sr, channels):
    x = tones(0.32, sr, (440.0, 1000.0)[:channels])
    info = write_clip(tmp_path / "a.mp4", x if channels > 1 else x[0], sr)
    assert info["audio_codec"] == "aac" and info["audio_sample_rate"] == sr and info["audio_channels"] == channels
    assert info["audio_seconds"] == pytest.approx(8 / 25, abs=FRAME_S)


def test_writer_stereo_channels_stay_apart(tmp_path):
    out = tmp_path / "s.mp4"
    info = write_clip(out, tones(0.4, 48000, (440.0, 1000.0)), 48000, n_frames=10)
    assert info["audio_channels"] == 2
    y, sr = decode_audio(out)
    assert sr == 48000 and y.shape[0] == 2
    seg = slice(4096, 4096 + 8192)
    assert peak_hz(y[0, seg], sr) == pytest.approx(440.0, abs=2 * sr / 8192)
    assert peak_hz(y[1, seg], sr) == pytest.approx(1000.0, abs=2 * sr / 8192)


def test_writer_trims_longer_audio_to_the_video(tmp_path):
    info = write_clip(tmp_path / "t.mp4", tones(1.0, 48000, (440.0, 660.0)), 48000, n_frames=5)
    assert info["frames"] == 5
    assert info["audio_seconds"] == pytest.approx(5 / 25, abs=FRAME_S)


def test_writer_pads_shorter_audio_with_silence(tmp_path):
    out = tmp_path / "p.mp4"
    info = write_clip(out, tones(0.2, 44100, (440.0,))[0], 44100, n_frames=20)
    assert info["frames"] == 20
    assert info["audio_seconds"] == pytest.approx(20 / 25, abs=FRAME_S)
    y, sr = decode_audio(out)
    assert np.abs(y[0, int(0.05 * sr) : int(0.15 * sr)]).max() > 0.1  # the tone
    assert np.abs(y[0, int(0.35 * sr) : int(0.75 * sr)]).max() < 1e-3  # then silence


def test_writer_fit_audio_false_keeps_the_whole_waveform(tmp_path):
    info = write_clip(tmp_path / "f.mp4", tones(0.6, 48000, (440.0, 660.0)), 48000, n_frames=5, fit_audio=False)
    assert info["audio_seconds"] == pytest.approx(0.6, abs=0.01)


def test_writer_downmixes_more_than_two_channels(tmp_path):
    out = tmp_path / "m.mp4"
    # 5.1-like: left 440, right 1000, and four quiet channels that reach both sides
    x = tones(0.4, 48000, (440.0, 1000.0, 300.0, 300.0, 300.0, 300.0), amp=0.2)
    info = write_clip(out, x, 48000, n_frames=10)
    assert info["audio_channels"] == 2 and info["audio_sample_rate"] == 48000
    y, sr = decode_audio(out)
    seg = slice(4096, 4096 + 8192)
    spec_l = np.abs(np.fft.rfft(y[0, seg] * np.hanning(8192)))
    spec_r = np.abs(np.fft.rfft(y[1, seg] * np.hanning(8192)))
    hz = lambda f: int(round(f * 8192 / sr))  # noqa: E731
    assert spec_l[hz(440)] > 10 * spec_l[hz(1000)] and spec_r[hz(1000)] > 10 * spec_r[hz(440)]
    assert spec_l[hz(300)] > 0.1 * spec_l[hz(440)] and spec_r[hz(300)] > 0.1 * spec_r[hz(1000)]
    # the matrix: channels 0/1 left/right, the others into both at half weight, scaled so it cannot clip
    d = downmix_to_stereo(np.ones((6, 4), np.float32))
    assert d.shape == (2, 4) and np.allclose(d, 1.0)


def test_writer_resamples_rates_aac_lacks(tmp_path):
    out = tmp_path / "r.mp4"
    info = write_clip(out, tones(0.4, 37800, (440.0, 1000.0)), 37800, n_frames=10)
    assert info["audio_sample_rate"] == 48000 and info["audio_channels"] == 2
    assert info["audio_seconds"] == pytest.approx(10 / 25, abs=FRAME_S)
    y, sr = decode_audio(out)
    seg = slice(4096, 4096 + 8192)
    assert peak_hz(y[0, seg], sr) == pytest.approx(440.0, abs=2 * sr / 8192)
    assert peak_hz(y[1, seg], sr) == pytest.approx(1000.0, abs=2 * sr / 8192)


def test_writer_scales_pcm_integers_and_refuses_bad_audio(tmp_path):
    out = tmp_path / "i.mp4"
    pcm = (tones(0.32, 24000, (440.0, 660.0), amp=0.5) * 32767).astype(np.int16)
    write_clip(out, torch.from_numpy(pcm), 24000)
    y, _ = decode_audio(out)
    assert 0.3 < np.abs(y[:, 2048:6000]).max() < 0.7  # scaled to [-1, 1], not 16-bit values clipped
    bad = tones(0.1, 16000, (440.0, 660.0))
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="audio: the waveform holds NaN"):
        VideoWriter(out, audio=bad, audio_sample_rate=16000)
    with pytest.raises(ValueError, match="not both"):
        VideoWriter(out, audio=bad[0], audio_16k=bad[0])
    with pytest.raises(ValueError, match=r"shape \(T,\) or \(C, T\)"):
        VideoWriter(out, audio=np.zeros((1, 2, 100), np.float32), audio_sample_rate=16000)
    with pytest.raises(ValueError, match="transpose"):
        VideoWriter(out, audio=np.zeros((1600, 2), np.float32), audio_sample_rate=16000)
    with pytest.raises(ValueError, match="audio_sample_rate"):
        VideoWriter(out, audio=bad[0], audio_sample_rate=0)
    with pytest.raises(AudioError, match="audio"):
        VideoWriter(out, audio=np.array(["a"]), audio_sample_rate=16000)


# ----------------------------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("sr, channels", [(48000, 2), (44100, 1), (16000, 1), (22050, 3)])
def test_native_loader_and_the_16k_waveform(tmp_path, sr, channels):
    x = tones(0.3, sr, (440.0, 1000.0, 300.0)[:channels])
    path = write_wav(tmp_path / "in.wav", x, sr)
    native, rate = load_audio_native(path)
    assert rate == sr and isinstance(rate, int)
    assert native.dtype == np.float32 and native.shape == x.shape
    np.testing.assert_allclose(native, x, atol=1 / 32767)
    # the 16 kHz mono waveform made from the one decode is bit-identical to load_audio(path)
    assert np.array_equal(load_audio(native, rate), load_audio(path))
    # a mapping (ComfyUI AUDIO) and an array keep their rate and channels
    m, r = load_audio_native({"waveform": torch.from_numpy(x)[None], "sample_rate": sr})
    assert r == sr and np.array_equal(m, x)
    with pytest.raises(AudioError, match="does not exist"):
        load_audio_native(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="below the minimum"):
        load_audio_native(x, 4000)


# ----------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    return path


def _fast() -> JobOptions:
    return JobOptions(sampling=SamplingOptions(steps=1, seed=0), render=RenderOptions(output="crop", batch_size=4))


def _check_track(out, seconds: float, rate: int, channels: int) -> dict:
    info = probe_video(out)
    assert info["frames"] == math.ceil(seconds * 25)
    assert info["audio_codec"] == "aac"
    assert info["audio_sample_rate"] == rate and info["audio_channels"] == channels
    assert info["audio_seconds"] == pytest.approx(info["frames"] / 25, abs=FRAME_S)
    return info


@pytest.mark.slow
def test_generate_48k_stereo_in_48k_stereo_out(synthetic_models, portrait, tmp_path):
    sr = 48000
    wav = write_wav(tmp_path / "speech.wav", tones(0.2, sr, (440.0, 1000.0)), sr)
    out = tmp_path / "stereo.mp4"
    # the subject is the sound track: the renderer is the stand-in (the real one takes seconds per frame here)
    generate(synthetic_models, portrait, wav, out, _fast(), renderer=standin_renderer(synthetic_models))
    _check_track(out, 0.2, sr, 2)
    y, got_sr = decode_audio(out)
    assert got_sr == sr and y.shape[0] == 2
    seg = slice(2048, 2048 + 4096)
    assert peak_hz(y[0, seg], sr) == pytest.approx(440.0, abs=2 * sr / 4096)
    assert peak_hz(y[1, seg], sr) == pytest.approx(1000.0, abs=2 * sr / 4096)


@pytest.mark.slow
def test_job_track_from_a_16k_mapping_and_an_array(synthetic_models, portrait, tmp_path):
    """prepare_job keeps a ComfyUI AUDIO mapping's and an array's own rate and channels for the video (what generate
    and stream_to_file hand the writer), and the models' 16 kHz waveform is load_audio's."""
    from ditto_core.runtime.offline import prepare_job

    x16 = tones(0.1, 16000, (440.0,))
    mapping = {"waveform": torch.from_numpy(x16)[None], "sample_rate": 16000}
    job = prepare_job(synthetic_models, portrait, mapping, _fast())
    assert job.audio_rate == 16000 and job.audio.shape == (1, 1600)
    assert np.array_equal(job.audio_16k, load_audio(mapping))
    out = tmp_path / "16k.mp4"
    with job.video_writer(out, fps=25) as w:
        w.write(frames_of(3))
    _check_track(out, 0.1, 16000, 1)
    x24 = tones(0.1, 24000, (440.0, 1000.0))
    job = prepare_job(synthetic_models, portrait, x24, _fast(), sample_rate=24000)
    assert job.audio_rate == 24000 and np.array_equal(job.audio, x24)
    out = tmp_path / "24k.mp4"
    with job.video_writer(out, fps=25) as w:
        w.write(frames_of(3))
    _check_track(out, 0.1, 24000, 2)


@pytest.mark.slow
def test_stream_to_file_48k_stereo(synthetic_models, portrait, tmp_path):
    sr = 48000
    wav = write_wav(tmp_path / "speech.wav", tones(0.06, sr, (440.0, 1000.0)), sr)
    out = tmp_path / "stream.mp4"
    stream_to_file(synthetic_models, portrait, wav, out, _fast())
    _check_track(out, 0.06, sr, 2)
