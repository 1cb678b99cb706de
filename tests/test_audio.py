"""Audio loading/validation, frame arithmetic, voice activity, chunking and the ONNX helper (no golden data)."""

import logging
import math
import wave
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ditto_core.audio import (
    AudioError,
    HubertFeatureExtractor,
    OnlineAudioChunker,
    frame_count,
    load_audio,
    online_chunks,
    voice_activity,
)
from ditto_core.onnx_utils import OnnxModel, OnnxModelError, providers_for_device


# ------------------------------------------------------------------------------------------------ helpers


def write_wav(path: Path, channels: np.ndarray, sr: int) -> Path:
    """(C, T) float in [-1, 1] -> 16-bit PCM wav via the stdlib ``wave`` module."""
    pcm = np.clip(np.round(channels * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.T.tobytes())
    return path


def write_flac(path: Path, channels: np.ndarray, sr: int) -> Path:
    """(2, T) float -> stereo FLAC via PyAV."""
    pcm = np.clip(np.round(channels * 32767), -32768, 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        st = out.add_stream("flac", rate=sr, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout="stereo")
        frame.sample_rate = sr
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def sine(freq: float, sr: int, n: int, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float64)


def interior(x: np.ndarray, margin: int = 400) -> np.ndarray:
    return x[margin:-margin]


# ------------------------------------------------------------------------------------------------ loading


def test_wav_24k_stereo_mixes_and_resamples(tmp_path):
    sr, n = 24000, 24000 * 2 // 5  # 0.4 s
    left, right = sine(300, sr, n), sine(1100, sr, n, amp=0.3)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right]), sr)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == math.ceil(n * 16000 / sr)
    expected = 0.5 * (sine(300, 16000, len(audio)) + sine(1100, 16000, len(audio), amp=0.3))
    assert np.max(np.abs(interior(audio) - interior(expected))) < 2e-3


def test_flac_44k_stereo(tmp_path):
    sr, n = 44100, 44100 // 2
    sig = np.stack([sine(500, sr, n), sine(500, sr, n)])
    audio = load_audio(write_flac(tmp_path / "a.flac", sig, sr))
    assert len(audio) == math.ceil(n * 16000 / sr)
    assert np.max(np.abs(interior(audio) - interior(sine(500, 16000, len(audio))))) < 2e-3


def test_wav_16k_mono_is_exact_pcm(tmp_path):
    x = sine(440, 16000, 3200)
    audio = load_audio(write_wav(tmp_path / "m.wav", x[None], 16000))
    pcm = np.clip(np.round(x * 32767), -32768, 32767)
    np.testing.assert_array_equal(audio, (pcm / 32768).astype(np.float32))


@pytest.mark.parametrize("sr", [8000, 48000])
def test_other_rates(sr):
    n = sr // 2
    audio = load_audio(sine(440, sr, n).astype(np.float32), sr)
    assert len(audio) == math.ceil(n * 16000 / sr)
    assert np.max(np.abs(interior(audio) - interior(sine(440, 16000, len(audio))))) < 2e-3


def test_multichannel_array_is_mean_of_channels():
    x = np.stack([sine(200, 16000, 1600), sine(700, 16000, 1600), np.full(1600, 0.1)]).astype(np.float32)
    np.testing.assert_allclose(load_audio(x, 16000), x.astype(np.float64).mean(0), atol=1e-7)


def test_batched_tensor_and_mapping():
    x = torch.from_numpy(np.stack([sine(200, 22050, 4000), sine(900, 22050, 4000)]).astype(np.float32))
    ref = load_audio(x.numpy(), 22050)
    np.testing.assert_array_equal(load_audio(x[None], 22050), ref)
    np.testing.assert_array_equal(load_audio({"waveform": x[None], "sample_rate": 22050}), ref)
    with pytest.raises(AudioError, match="batch size 1"):
        load_audio(torch.stack([x, x]), 22050)


def test_int16_array_is_scaled():
    pcm = (sine(300, 16000, 1600) * 32767).round().astype(np.int16)
    expected = (pcm / 32768).astype(np.float32)
    np.testing.assert_array_equal(load_audio(pcm, 16000), expected)
    np.testing.assert_array_equal(load_audio(torch.from_numpy(pcm)[None, None], 16000), expected)


# ------------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav.*does not exist"):
        load_audio(p)


def test_unreadable_file(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_text("this is not audio at all\n" * 10)
    with pytest.raises(AudioError, match="junk.wav"):
        load_audio(p)


def test_no_audio_stream(tmp_path):
    import cv2

    p = tmp_path / "picture.png"
    cv2.imwrite(str(p), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(AudioError, match="picture.png.*no audio stream"):
        load_audio(p)


def test_empty_file_and_array(tmp_path):
    p = write_wav(tmp_path / "empty.wav", np.zeros((1, 0)), 16000)
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        load_audio(p)
    with pytest.raises(AudioError, match="empty"):
        load_audio(np.zeros(0, np.float32), 16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(bad):
    x = sine(440, 16000, 1600).astype(np.float32)
    x[100] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(x, 16000)


def test_low_sample_rate(tmp_path):
    p = write_wav(tmp_path / "low.wav", sine(200, 4000, 4000)[None], 4000)
    with pytest.raises(AudioError, match="low.wav.*4000 Hz.*8000"):
        load_audio(p)
    with pytest.raises(AudioError, match="7999"):
        load_audio(np.zeros(8000, np.float32) + 0.1, 7999)


def test_shorter_than_one_frame():
    with pytest.raises(AudioError, match="shorter than one 40 ms frame"):
        load_audio(sine(440, 8000, 319).astype(np.float32), 8000)  # 39.9 ms
    assert len(load_audio(sine(440, 8000, 320).astype(np.float32), 8000)) == 640  # exactly 40 ms


def test_waveform_needs_rate_and_file_refuses_one(tmp_path):
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(np.zeros(1600, np.float32))
    p = write_wav(tmp_path / "m.wav", sine(440, 16000, 1600)[None], 16000)
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(p, 16000)


def test_silence_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="ditto_core.audio"):
        audio = load_audio(np.zeros(16000, np.float32), 16000)
    assert len(audio) == 16000
    assert any("silent" in r.getMessage() and "idle" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ditto_core.audio"):
        load_audio(sine(440, 16000, 16000).astype(np.float32), 16000)
    assert not caplog.records


# ------------------------------------------------------------------------------------------------ frames, activity


def test_frame_count():
    assert [frame_count(n) for n in (0, 1, 639, 640, 641, 32000, 53920)] == [0, 1, 1, 1, 2, 50, 85]
    # The official float expression ceil(n / 16000 * 25): 4480 / 16000 * 25 == 7.000000000000001 in IEEE doubles.
    assert 4480 / 16000 * 25 > 7 and frame_count(4480) == 8


def test_voice_activity_known_signal():
    amp = 0.5
    x = np.concatenate([np.zeros(3 * 640), sine(400, 16000, 3 * 640, amp=amp), sine(400, 16000, 320, amp=amp)])
    va = voice_activity(x.astype(np.float32))
    assert va.dtype == np.float32 and va.shape == (7,)
    np.testing.assert_allclose(va[:3], 0.0, atol=1e-9)
    np.testing.assert_allclose(va[3:6], amp / np.sqrt(2), rtol=1e-5)  # 16 whole periods per frame
    np.testing.assert_allclose(va[6], amp / 2, rtol=1e-5)  # half a frame of sine, half zero padding
    assert voice_activity(x.astype(np.float32), 10)[7:].tolist() == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------ online chunker


def test_online_chunker_matches_official_loop():
    rng = np.random.default_rng(1)
    for n in (0, 1, 1279, 1280, 4560, 4561, 7777, 32000):
        audio = rng.standard_normal(n).astype(np.float32) * 0.1
        padded = np.concatenate([np.zeros(1920, np.float32), audio])
        ref = [np.pad(padded[i : i + 6480], (0, max(0, i + 6480 - len(padded)))) for i in range(0, len(padded), 3200)]
        got = online_chunks(audio)
        assert len(got) == len(ref), n
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)


def test_online_chunker_emits_as_soon_as_complete():
    ch = OnlineAudioChunker()
    assert ch.push(np.ones(6480 - 1920 - 1, np.float32)) == []
    (first,) = ch.push(np.ones(1, np.float32))
    assert first.shape == (6480,) and first[:1920].sum() == 0 and first[1920:].sum() == 6480 - 1920
    with pytest.raises(AudioError):
        ch.push(np.array([np.nan], np.float32))
    ch.flush()
    with pytest.raises(RuntimeError):
        ch.push(np.ones(10, np.float32))


# ------------------------------------------------------------------------------------------------ ONNX helper


def build_toy_hubert(path: Path, seed: int = 0) -> np.ndarray:
    """Input "x" (1, 6480) -> outputs "aux" (1, 1) and "feat" (20, 1024) = reshape(x, (20, 324)) @ W; returns W."""
    w = (np.random.default_rng(seed).standard_normal((324, 1024)) / 18).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["x2"]),
        helper.make_node("MatMul", ["x2", "W"], ["feat"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["aux"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_hubert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6480])],
        [
            helper.make_tensor_value_info("aux", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("feat", TensorProto.FLOAT, [20, 1024]),
        ],
        initializer=[
            numpy_helper.from_array(np.array([20, 324], np.int64), "shape"),
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w


def test_binding_by_session_input_name_and_output_by_shape(tmp_path):
    w = build_toy_hubert(tmp_path / "toy.onnx")
    ext = HubertFeatureExtractor(tmp_path / "toy.onnx")
    x = np.random.default_rng(2).standard_normal(6480).astype(np.float32)
    enc = x.reshape(20, 324).astype(np.float64) @ w
    expected = enc[-14:-4].reshape(5, 2, 1024).mean(1)
    np.testing.assert_allclose(ext.chunk_features(x), expected, rtol=1e-4, atol=1e-5)

    # offline windows: 2000 zeros before, 6480 after, a window every 5 frames, cut to ceil(T/640)
    audio = np.random.default_rng(3).standard_normal(7000).astype(np.float32)
    padded = np.concatenate([np.zeros(2000), audio, np.zeros(6480)])
    ref = np.concatenate(
        [(padded[s : s + 6480].reshape(20, 324) @ w)[-14:-4].reshape(5, 2, 1024).mean(1) for s in (0, 3200, 6400)]
    )[:11]
    calls = []
    got = ext.offline_features(audio, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    seen = []

    def cancel():  # the library's convention: cancel raises; here on the second window
        seen.append(len(seen))
        if len(seen) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ext.offline_features(audio, cancel=cancel)
    assert seen == [0, 1]

    m = OnnxModel(tmp_path / "toy.onnx")
    assert m.input_names == ["x"] and m.output_index_by_shape((20, None)) == 1
    with pytest.raises(OnnxModelError, match="toy.onnx.*'x'.*6480"):
        m.run(np.zeros((1, 100), np.float32))


def test_corrupt_and_missing_onnx(tmp_path):
    bad = tmp_path / "broken_hubert.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf model" * 4)
    with pytest.raises(OnnxModelError, match="broken_hubert.onnx"):
        HubertFeatureExtractor(bad)
    with pytest.raises(OnnxModelError, match="not found.*missing.onnx"):
        HubertFeatureExtractor(tmp_path / "missing.onnx")


def test_providers_for_device():
    import onnxruntime as ort

    assert providers_for_device("cpu") == ["CPUExecutionProvider"]
    cuda = providers_for_device("cuda:1")
    assert cuda[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert cuda[0] == ("CUDAExecutionProvider", {"device_id": 1})
    else:
        assert cuda == ["CPUExecutionProvider"]
    assert providers_for_device(torch.device("cpu")) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown"):
        providers_for_device("tpu")
