"""Bad inputs on every surface (command line, library options, nodes, motion files, audio entry points, writers,
signals): each is refused with the exact error class, a message naming the input as the user knows it, the CLI's one
``ditto: error:`` line and exit code, and nothing left at the output path or beside it; the inputs are untouched.

The media readers and the model files have their own suites (test_bad_media.py, test_bad_models.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import face_image, write_wav
from ditto_core.__main__ import main
from ditto_core.audio import MAX_AUDIO_SECONDS, AudioError, OnlineAudioChunker, load_audio, pcm_to_float
from ditto_core.errors import DittoError, InputError
from ditto_core.motion import ClipControls, EditOptions, Motion, load_motion, save_motion
from ditto_core.motion.track import MotionFormatError
from ditto_core.runtime import JobOptions, RenderOptions, SamplingOptions, SourceOptions, StreamingOptions, generate
from ditto_core.validate import OptionError
from ditto_core.video import VideoWriter, VideoWriterError

REPO = Path(__file__).resolve().parent.parent


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def inputs(tmp_path):
    """A portrait, a speech clip and a short video in ``tmp_path/in`` (their digests, to show they are untouched)."""
    import cv2

    d = tmp_path / "in"
    d.mkdir()
    portrait = d / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    speech = write_wav(d / "speech.wav", 0.3, 16000)
    video = d / "clip.mp4"
    with VideoWriter(video, fps=25, preset="ultrafast") as w:
        w.write(np.repeat(face_image(64, 64)[None], 3, 0))
    return {"portrait": portrait, "speech": speech, "video": video,
            "digests": {p: _digest(p) for p in (portrait, speech, video)}}


def _untouched(inputs) -> bool:
    return all(_digest(p) == h for p, h in inputs["digests"].items())


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


# --------------------------------------------------------------------------------------------- command line
NUMERIC_FLAGS = [
    ("--seed", "-1"), ("--seed", str(2**64)), ("--steps", "0"), ("--steps", "1001"), ("--overlap", "80"),
    ("--overlap", "-1"), ("--guidance", "nan"), ("--guidance", "inf"), ("--guidance", "-1"), ("--guidance", "11"),
    ("--crop-scale", "inf"), ("--crop-scale", "0"), ("--face-index", "-1"), ("--mouth", "-0.5"), ("--mouth", "nan"),
    ("--head", "11"), ("--pitch", "91"), ("--yaw", "-inf"), ("--roll", "nan"), ("--blink", "-1"),
    ("--fade-in", "-1"), ("--fade-out", "1000001"), ("--batch-size", "0"), ("--batch-size", "1025"),
]


@pytest.mark.parametrize("flag,value", NUMERIC_FLAGS)
def test_cli_numeric_flags_are_checked_and_named(flag, value, inputs, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, err = _cli(capsys, "generate", "--source", str(inputs["portrait"]), "--audio", str(inputs["speech"]),
                     "--out", str(out), "--models", str(tmp_path / "no-models"), "--no-download", f"{flag}={value}")
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"ditto: error: {flag} must be "), err
    assert value.lstrip("-") in err[0] or "inf" in err[0]
    assert _names(tmp_path) == ["in"] and _untouched(inputs)


@pytest.mark.parametrize("case", ["out=source video", "out=audio via another spelling", "out=source via hard link",
                                  "avi", "no suffix", "folder", "missing folder", "missing source", "missing audio"])
def test_cli_output_and_input_paths(case, inputs, tmp_path, capsys):
    src, audio = inputs["video"], inputs["speech"]
    out: Path | str = tmp_path / "out.mp4"
    expect = "--out"
    if case == "out=source video":
        out = src
    elif case == "out=audio via another spelling":  # an mp4 with sound used as the audio, named differently
        audio = inputs["video"]
        src = inputs["portrait"]
        out = f"{tmp_path}/in/../in/./clip.mp4"
    elif case == "out=source via hard link":
        os.link(src, tmp_path / "alias.mp4")
        out = tmp_path / "alias.mp4"
    elif case == "avi":
        out = tmp_path / "out.avi"
    elif case == "no suffix":
        out = tmp_path / "out"
    elif case == "folder":
        (tmp_path / "dir.mp4").mkdir()
        out = tmp_path / "dir.mp4"
    elif case == "missing folder":
        out = tmp_path / "nope" / "out.mp4"
    elif case == "missing source":
        src, expect = tmp_path / "none.png", "--source"
    elif case == "missing audio":
        audio, expect = tmp_path / "none.wav", "--audio"
    before = _names(tmp_path)
    code, err = _cli(capsys, "generate", "--source", str(src), "--audio", str(audio), "--out", str(out),
                     "--models", str(tmp_path / "no-models"), "--no-download")
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"ditto: error: {expect}"), err
    assert _names(tmp_path) == before and _untouched(inputs)  # nothing made, nothing destroyed (the models not read)
    if case == "out=source via hard link":
        assert _digest(tmp_path / "alias.mp4") == inputs["digests"][inputs["video"]]


def test_cli_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--source", "a.png"])  # argparse: missing --audio/--out
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["generate", "--source", "a", "--audio", "b", "--out", "c.mp4", "--steps", "ten"])
    assert e.value.code == 2 and "--steps" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- library options
@pytest.mark.parametrize("make,name", [
    (lambda: SamplingOptions(seed=-1), "SamplingOptions.seed"),
    (lambda: SamplingOptions(seed=True), "SamplingOptions.seed"),
    (lambda: SamplingOptions(steps=2.5), "SamplingOptions.steps"),
    (lambda: SamplingOptions(guidance=float("nan")), "SamplingOptions.guidance"),
    (lambda: SamplingOptions(overlap=80), "SamplingOptions.overlap"),
    (lambda: SamplingOptions(emotion="Joy"), "SamplingOptions.emotion"),
    (lambda: SamplingOptions(eye_open=(0.8, float("inf"))), "SamplingOptions.eye_open"),
    (lambda: SamplingOptions(eye_ball=(1, 2, 3)), "SamplingOptions.eye_ball"),
    (lambda: SourceOptions(crop_scale="2.3"), "SourceOptions.crop_scale"),
    (lambda: SourceOptions(face_order="random"), "SourceOptions.face_order"),
    (lambda: SourceOptions(max_frames=-2), "SourceOptions.max_frames"),
    (lambda: RenderOptions(batch_size=0), "RenderOptions.batch_size"),
    (lambda: RenderOptions(output="gif"), "RenderOptions.output"),
    (lambda: RenderOptions(cuda_graphs=1), "RenderOptions.cuda_graphs"),
    (lambda: StreamingOptions(queue_size=0), "StreamingOptions.queue_size"),
    (lambda: ClipControls(yaw=float("inf")), "ClipControls.yaw"),
    (lambda: ClipControls(blink_interval=-1), "ClipControls.blink_interval"),
    (lambda: ClipControls(fade_in=1.5), "ClipControls.fade_in"),
    (lambda: EditOptions(start=10, end=5), "EditOptions.end"),
    (lambda: EditOptions(relax_on_silence=2), "EditOptions.relax_on_silence"),
    (lambda: JobOptions(sampling=SourceOptions()), "JobOptions.sampling"),
])
def test_library_options_name_the_field(make, name):
    with pytest.raises(OptionError) as e:
        make()
    assert str(e.value).startswith(name) and e.value.name == name
    assert isinstance(e.value, (InputError, ValueError, DittoError))


def test_library_output_path_checked_before_any_stage(inputs, tmp_path):
    class Untouchable:  # any use of the models would fail the test
        def __getattr__(self, name):
            raise AssertionError(f"the models were used ({name}) before the output path was checked")

    for out, what in ((inputs["video"], "out_path must be a new file, not the source"),
                      (tmp_path / "x.txt", "out_path must be a file name ending in .mp4")):
        with pytest.raises(OptionError, match=what):
            generate(Untouchable(), inputs["video"], inputs["speech"], out)
    assert _untouched(inputs) and _names(tmp_path) == ["in"]


# --------------------------------------------------------------------------------------------- audio entry points
PCM = [(np.int8, 2**7, 0), (np.int16, 2**15, 0), (np.int32, 2**31, 0), (np.int64, 2**63, 0),
       (np.uint8, 2**7, 2**7), (np.uint16, 2**15, 2**15)]


@pytest.mark.parametrize("dtype,half,offset", PCM)
def test_integer_audio_is_scaled_at_every_entry_point(dtype, half, offset):
    info = np.iinfo(dtype)
    x = np.array([info.min, offset, info.max, offset + (info.max - offset) // 2] * 400, dtype=dtype)
    expected = ((x.astype(np.float64) - offset) / half).astype(np.float32)
    assert expected.min() == -1.0 and 0.99 < expected.max() <= 1.0  # float32 rounds int32/int64 max to 1.0
    np.testing.assert_array_equal(pcm_to_float(x), expected)
    # arrays, torch tensors (where torch has the dtype) and ComfyUI AUDIO mappings into load_audio (16 kHz: no resampling)
    np.testing.assert_array_equal(load_audio(x, 16000), expected)
    np.testing.assert_array_equal(load_audio({"waveform": x[None, None], "sample_rate": 16000}), expected)
    if dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        np.testing.assert_array_equal(load_audio(torch.from_numpy(x), 16000), expected)
    # a stream's pushes
    chunker = OnlineAudioChunker()
    chunks = chunker.push(x) + chunker.flush()
    np.testing.assert_array_equal(chunks[0][1920:1920 + len(x)], expected)  # after the 1920 zeros of the front pad
    from ditto_core.runtime.stream import _as_samples

    np.testing.assert_array_equal(_as_samples(x), expected)
    # the video writer's track
    from ditto_core.video import _as_audio

    np.testing.assert_array_equal(_as_audio(x), expected)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_integer_wav_files_of_every_width(width, tmp_path):
    rng = np.random.default_rng(width)
    bits = 8 * width
    if width == 1:  # 8-bit wav is unsigned
        ints = rng.integers(0, 256, 1600)
        expected = (ints - 128) / 128.0
        raw = ints.astype(np.uint8).tobytes()
    else:
        ints = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), 1600)
        expected = ints / float(2 ** (bits - 1))
        raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints)
    path = tmp_path / f"pcm{bits}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(16000)
        w.writeframes(raw)
    np.testing.assert_allclose(load_audio(path), expected, atol=1e-7)


def test_non_finite_and_overlong_audio(tmp_path):
    bad = np.array([0.1, np.nan] * 800, np.float32)
    with pytest.raises(AudioError, match="audio waveform: 1 sample|NaN"):
        load_audio(np.array([0.1] * 799 + [np.inf] * 1, np.float32), 16000)
    with pytest.raises(AudioError, match="samples: NaN"):
        OnlineAudioChunker().push(bad)
    with pytest.raises(ValueError, match="audio_16k: the waveform holds NaN"):
        VideoWriter(tmp_path / "x.mp4", audio_16k=bad)
    long = np.zeros(int(MAX_AUDIO_SECONDS * 8000) + 8, np.int16)
    with pytest.raises(AudioError, match=f"longer than the limit of {MAX_AUDIO_SECONDS:.0f} s"):
        load_audio(long, 8000)
    with pytest.raises(AudioError, match="expected a numeric waveform"):
        load_audio(np.array(["a", "b"]), 16000)
    assert _names(tmp_path) == []


def test_overlong_audio_file_refused_from_its_header(tmp_path, monkeypatch):
    import ditto_core.audio as audio_mod

    path = write_wav(tmp_path / "long.wav", 2.0, 8000)
    monkeypatch.setattr(audio_mod, "MAX_AUDIO_SECONDS", 1.0)
    decoded = []
    monkeypatch.setattr(audio_mod, "_frame_to_float", lambda *a: decoded.append(1))
    with pytest.raises(AudioError, match=r"long.wav.*2 s of audio is longer than the limit of 1 s"):
        load_audio(path)
    assert decoded == []  # refused before decoding


# --------------------------------------------------------------------------------------------- motion files
def _motion_file(tmp_path: Path, **meta: str) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = save_motion(tmp_path / "good.safetensors", Motion(torch.zeros(6, 265)))
    with safe_open(str(good), "pt") as f:
        md, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    md.update(meta)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=md)
    return bad


@pytest.mark.parametrize("key,value,message", [
    ("fps", "inf", "fps must be a finite number in 1..240, got inf"),
    ("fps", "0", "fps must be a finite number in 1..240, got 0.0"),
    ("fps", "fast", "fps in the metadata must be a number, got 'fast'"),
    ("smoothing", "-2", "smoothing must be an integer in 0..1001, got -2"),
    ("blink_interval", "-5", "blink_interval must be an integer in 0..1000000, got -5"),
    ("drive_eye", '"yes"', "drive_eye must be True or False, got 'yes'"),
    ("edits", '[{"start": 4, "end": 60}]', "edits must be ranges with 0 <= start < end <= 6"),
    ("edits", '{"start": 1}', "edits in the metadata must be a list"),
    ("meta", "[1]", "meta in the metadata must be a JSON object"),
    ("format_version", "x", "missing or invalid format_version"),
])
def test_motion_file_metadata_is_checked_by_name(key, value, message, tmp_path):
    bad = _motion_file(tmp_path, **{key: value})
    digest = _digest(bad)
    with pytest.raises(MotionFormatError) as e:
        load_motion(bad)
    assert str(e.value).startswith("bad.safetensors: ") and message in str(e.value)
    assert _digest(bad) == digest


def test_motion_file_non_finite_and_garbage(tmp_path):
    from safetensors.torch import save_file

    m = torch.zeros(4, 265)
    m[2, 7] = float("nan")
    tensors = {k: getattr(Motion(torch.zeros(4, 265)), k) for k in ("motion", "vad", "delta_pitch", "delta_yaw",
               "delta_roll", "head_amplitude", "mouth_amplitude", "expression", "vad_alpha", "fade_alpha")}
    tensors["motion"] = m
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata={"format": "ditto-motion", "format_version": "1"})
    with pytest.raises(MotionFormatError, match="nan.safetensors: invalid motion data: Motion.motion has non-finite"):
        load_motion(tmp_path / "nan.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(MotionFormatError, match="junk.safetensors is not a readable safetensors file"):
        load_motion(tmp_path / "junk.safetensors")


def test_save_motion_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import safetensors.torch

    keep = save_motion(tmp_path / "m.safetensors", Motion(torch.zeros(3, 265)))
    before = _digest(keep)

    def interrupted(tensors, path, metadata=None):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_motion(keep, Motion(torch.ones(3, 265)))
    assert _names(tmp_path) == ["m.safetensors"] and _digest(keep) == before


# --------------------------------------------------------------------------------------------- nodes
@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    from comfy_stubs import stubbed_pack

    gen = stubbed_pack(tmp_path_factory.mktemp("comfy_bad"))
    pack, _stubs = next(gen)
    yield pack
    gen.close()


SAMPLER_OK = dict(models=None, source=None, audio_features=None, emotion="Neutral", eye_mode="from source",
                  steps=10, overlap=10, seed=0, guidance=2.0)


@pytest.mark.parametrize("change,widget", [
    ({"steps": 0}, "steps"), ({"overlap": 80}, "overlap"), ({"seed": -1}, "seed"),
    ({"guidance": float("nan")}, "guidance"), ({"emotion": "Joy"}, "emotion"), ({"eye_mode": "closed"}, "eye_mode"),
    ({"emotion": "mix", "emotion_mix": ""}, "emotion_mix"), ({"emotion": "mix", "emotion_mix": "Happy:x"}, "emotion_mix"),
])
def test_sampler_widgets_fail_early_by_name(pack, change, widget):
    node = pack.NODE_CLASS_MAPPINGS["DittoMotionSampler"]()
    with pytest.raises(ValueError) as e:  # models/source/features are None: nothing slow may run before the check
        node.sample(**{**SAMPLER_OK, **change})
    assert str(e.value).startswith(widget), str(e.value)


def test_source_render_edit_widgets_fail_early_by_name(pack):
    src = pack.NODE_CLASS_MAPPINGS["DittoExtractSource"]()
    image = torch.rand(1, 32, 32, 3)
    for kw, widget in (({"crop_scale": float("nan")}, "crop_scale"), ({"face_index": -1}, "face_index"),
                       ({"face_order": "random"}, "face_order")):
        args = {"models": None, "images": image, "crop_scale": 2.3, "face_index": 0, "face_order": "size", **kw}
        with pytest.raises(ValueError, match=f"^{widget} must be"):
            src.extract(**args)
    bad = image.clone()
    bad[0, 3, 3, 1] = float("nan")
    with pytest.raises(InputError, match="^images: the IMAGE holds NaN"):
        src.extract(None, bad, 2.3, 0, "size")
    render = pack.NODE_CLASS_MAPPINGS["DittoRenderFrames"]()
    with pytest.raises(ValueError, match="^batch_size must be an integer in 1..1024, got 0"):
        render.render(None, None, Motion(torch.zeros(2, 265)), "full", 0)
    with pytest.raises(ValueError, match="^output must be one of"):
        render.render(None, None, Motion(torch.zeros(2, 265)), "gif", 4)
    edit = pack.NODE_CLASS_MAPPINGS["DittoEditMotion"]()
    widgets = dict(start_frame=0, end_frame=-1, ease_in=0, ease_out=0, pitch=0.0, yaw=0.0, roll=0.0,
                   head_amplitude=1.0, mouth_amplitude=1.0, expression=1.0, relax_on_silence=0.0,
                   silence_threshold=0.01, blink_interval=-1, gaze_fix="keep", fade_in=0, fade_out=0, smoothing=1)
    motion = Motion(torch.zeros(8, 265))
    for kw, message in (({"start_frame": 5, "end_frame": 3}, "end_frame must be -1 (to the end) or greater than"),
                        ({"yaw": float("inf")}, "yaw must be a finite number"),
                        ({"smoothing": 0}, "smoothing must be an integer in 1..")):
        with pytest.raises(ValueError) as e:
            edit.edit(motion, **{**widgets, **kw})
        assert str(e.value).startswith(message), str(e.value)


# --------------------------------------------------------------------------------------------- writers and signals
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_writer_leaves_nothing_on_any_exception(exc, tmp_path):
    from ditto_core.__main__ import Terminated

    exc_obj = Terminated(signal.SIGTERM) if exc is KeyboardInterrupt else exc("stop")
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"previous")
    with pytest.raises(type(exc_obj)):
        with VideoWriter(existing, fps=25, preset="ultrafast") as w:
            w.write(np.zeros((2, 16, 16, 3), np.uint8))
            raise exc_obj
    assert _names(tmp_path) == ["out.mp4"] and existing.read_bytes() == b"previous"
    with pytest.raises(VideoWriterError):
        w.write(np.zeros((16, 16, 3), np.uint8))


def _run_cli_until_rendering(tmp_path: Path, kit: Path, inputs, sig: int) -> tuple[int, str, float]:
    """Start ``generate`` in a child process, send ``sig`` once its first frame is written (the hidden ``.partial``
    file appears), return (code, stderr, seconds)."""
    out = tmp_path / "out" / "talk.mp4"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "ditto_core", "generate", "--source", str(inputs["portrait"]), "--audio",
           str(inputs["speech"]), "--out", str(out), "--models", str(kit), "--no-download", "--steps", "1",
           "--batch-size", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 300:
            if proc.poll() is not None:
                break
            if any(p.name.endswith(".partial") for p in out.parent.iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"generate ended before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _names(out.parent) == [], "nothing may be left: no output, no .partial file"
    return proc.returncode, err, time.monotonic() - t0


@pytest.mark.slow
def test_cli_sigterm_while_rendering_leaves_nothing(synthetic_kit, inputs, tmp_path):
    sig = signal.SIGTERM
    code, err, _ = _run_cli_until_rendering(tmp_path, synthetic_kit, inputs, sig)
    assert code == 143, err
    assert err.splitlines()[-1] == "ditto: stopped by SIGTERM; no output was written", err
    assert "Traceback" not in err and "ditto: error" not in err and _untouched(inputs)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_cli_signal_during_a_write_in_process(sig, tmp_path, monkeypatch, capsys):
    """A real signal delivered to this process while a command writes: the writer aborts, main returns 128 + N. (SIGINT
    is Python's own KeyboardInterrupt, whose handler a test runner may replace; Ctrl-C is covered by the writer
    tests.)"""
    import ditto_core.__main__ as cli

    out = tmp_path / "talk.mp4"

    def command(args):
        with VideoWriter(out, fps=25, preset="ultrafast") as w:
            w.write(np.zeros((2, 16, 16, 3), np.uint8))
            os.kill(os.getpid(), sig)
            for _ in range(200):  # the handler raises at the next bytecode; never reach the end
                time.sleep(0.01)
            w.write(np.zeros((1, 16, 16, 3), np.uint8))
        return 0

    monkeypatch.setattr(cli, "_run_generate", command)
    code = cli.main(["generate", "--source", "a.png", "--audio", "b.wav", "--out", str(out)])
    assert code == 128 + sig
    err = capsys.readouterr().err.strip()
    name = signal.Signals(sig).name
    assert err == f"ditto: stopped by {name}; no output was written"
    assert _names(tmp_path) == []


def test_signal_handlers_are_restored_after_main(capsys):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    assert main(["generate", "--source", "a.png", "--audio", "b.wav", "--out", "c.mp4", "--steps", "0"]) == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


def test_validate_inputs_refuse_widgets_before_the_workflow_runs(pack):
    sampler = pack.NODE_CLASS_MAPPINGS["DittoMotionSampler"]
    edit = pack.NODE_CLASS_MAPPINGS["DittoEditMotion"]
    assert sampler.VALIDATE_INPUTS(emotion="Happy", emotion_mix="") is True
    assert sampler.VALIDATE_INPUTS(emotion="mix", emotion_mix="Happy:0.7, Neutral:0.3") is True
    assert sampler.VALIDATE_INPUTS(emotion="mix", emotion_mix="").startswith("emotion_mix: ")
    assert sampler.VALIDATE_INPUTS(emotion="mix", emotion_mix="Joy:1").startswith("emotion_mix: ")
    assert sampler.VALIDATE_INPUTS(emotion="Joy").startswith("emotion must be one of")
    assert edit.VALIDATE_INPUTS(start_frame=0, end_frame=-1) is True
    assert edit.VALIDATE_INPUTS(start_frame=5, end_frame=3) == (
        "end_frame must be -1 (to the end) or greater than the start (5), got 3")
    assert edit.VALIDATE_INPUTS(start_frame=-2, end_frame=-1).startswith("start_frame must be an integer in 0..")


def test_edit_range_outside_the_clip(pack, caplog):
    edit = pack.NODE_CLASS_MAPPINGS["DittoEditMotion"]()
    widgets = dict(start_frame=0, end_frame=-1, ease_in=0, ease_out=0, pitch=0.0, yaw=10.0, roll=0.0,
                   head_amplitude=1.0, mouth_amplitude=1.0, expression=1.0, relax_on_silence=0.0,
                   silence_threshold=0.01, blink_interval=-1, gaze_fix="keep", fade_in=0, fade_out=0, smoothing=1)
    motion = Motion(torch.zeros(8, 265))
    with caplog.at_level("WARNING"):  # a saved workflow's keyframes may meet a shorter clip: a warning, no change
        same = edit.edit(motion, **{**widgets, "start_frame": 8})["result"][0]
    assert "start frame 8 is past the clip's 8 frames" in caplog.text and torch.equal(same.delta_yaw, motion.delta_yaw)
    caplog.clear()
    with caplog.at_level("WARNING"):
        out = edit.edit(motion, **{**widgets, "start_frame": 6, "end_frame": 20})["result"][0]
    assert "end frame 20 is past the clip's 8 frames" in caplog.text
    assert out.delta_yaw.tolist() == [0.0] * 6 + [10.0, 10.0]


# --------------------------------------------------------------------------------------------- CLI, each media class
def _cli_media_case(case: str, inputs, tmp_path: Path, monkeypatch) -> tuple[list[str], str]:
    """(extra argv with --source/--audio, the text the error must name) for one bad-media case."""
    src, audio = str(inputs["portrait"]), str(inputs["speech"])
    if case == "audio not audio":
        bad = tmp_path / "in" / "notes.wav"
        bad.write_bytes(b"RIFF....WAVEjunk")
        return ["--source", src, "--audio", str(bad)], "notes.wav"
    if case == "audio too short":
        return ["--source", src, "--audio", str(write_wav(tmp_path / "in" / "blip.wav", 0.01, 16000))], "blip.wav"
    if case == "audio non-finite":
        import av

        bad = tmp_path / "in" / "nan.wav"
        with av.open(str(bad), "w", format="wav") as c:
            s = c.add_stream("pcm_f32le", rate=16000, layout="mono")
            x = np.full((1, 1600), 0.1, np.float32)
            x[0, 50] = np.nan
            f = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
            f.sample_rate = 16000
            for p in s.encode(f):
                c.mux(p)
            for p in s.encode(None):
                c.mux(p)
        return ["--source", src, "--audio", str(bad)], "NaN or infinite"
    if case == "image unreadable":
        bad = tmp_path / "in" / "face.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
        return ["--source", str(bad), "--audio", audio], "face.png"
    if case == "image over the pixel cap":
        import zlib

        ihdr = (20000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
        chunk = b"IHDR" + ihdr
        data = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
        bad = tmp_path / "in" / "huge.png"
        bad.write_bytes(data)
        return ["--source", str(bad), "--audio", audio], "20000x20000 pixels"
    if case == "video over the decoded budget":
        import ditto_core.inputs as inputs_mod

        monkeypatch.setattr(inputs_mod, "MAX_VIDEO_PIXELS", 64 * 64 * 2)
        return ["--source", str(inputs["video"]), "--audio", audio], "clip.mp4"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["audio not audio", "audio too short", "audio non-finite", "image unreadable",
                                  "image over the pixel cap", "video over the decoded budget"])
def test_cli_each_media_class_is_one_line_exit_2(case, synthetic_kit, inputs, tmp_path, monkeypatch, capsys):
    argv, named = _cli_media_case(case, inputs, tmp_path, monkeypatch)
    digests = {p: _digest(p) for p in (tmp_path / "in").iterdir()}
    out = tmp_path / "out" / "talk.mp4"
    out.parent.mkdir()
    code, err = _cli(capsys, "generate", *argv, "--out", str(out), "--models", str(synthetic_kit), "--no-download",
                     "-q", "--steps", "1")
    errors = [line for line in err if line.startswith("ditto: error:")]
    assert code == 2 and len(errors) == 1 and named in errors[0], err
    assert not any(line.startswith("Traceback") for line in err)
    assert _names(out.parent) == [] and all(_digest(p) == h for p, h in digests.items())


def test_audio_node_scales_integer_audio(pack, synthetic_models):
    node = pack.NODE_CLASS_MAPPINGS["DittoAudioToHuBERT"]()
    t = np.arange(8000) / 16000
    pcm = (np.sin(2 * np.pi * 220 * t) * 12000).astype(np.int16)
    as_int, n_int = node.encode(synthetic_models, {"waveform": torch.from_numpy(pcm)[None, None], "sample_rate": 16000})
    as_float, n_float = node.encode(synthetic_models, {"waveform": torch.from_numpy(pcm / 32768.0).float()[None, None],
                                                       "sample_rate": 16000})
    assert n_int == n_float == 13
    assert torch.equal(as_int.features, as_float.features) and float(as_int.vad.max()) < 1.0
