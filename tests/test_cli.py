"""The command line's options: one JobOptions for the offline job and ``--stream``, every flag mapped, errors naming
the flag (no model is loaded here)."""

from __future__ import annotations

import pytest

from ditto_core.__main__ import build_parser, job_options, main
from ditto_core.conditions import Emotion
from ditto_core.motion import ClipControls
from ditto_core.runtime import JobOptions, RenderOptions, SamplingOptions, SourceOptions

BASE = ["generate", "--source", "p.jpg", "--audio", "s.wav", "--out", "o.mp4"]


def _job(*flags: str) -> JobOptions:
    return job_options(build_parser().parse_args([*BASE, *flags]))


def test_every_flag_reaches_the_job_options():
    job = _job("--emotion", "Happy:0.7,Sad:0.3", "--steps", "12", "--seed", "5", "--overlap", "20", "--guidance", "1.5",
               "--crop-scale", "2.0", "--face-index", "1", "--mouth", "0.5", "--head", "1.5", "--pitch", "2",
               "--yaw", "-3", "--roll", "4", "--blink", "0", "--no-drive-eye", "--fade-in", "3", "--fade-out", "6",
               "--batch-size", "2", "--output", "crop", "--renderer", "tensorrt")
    assert job.source == SourceOptions(crop_scale=2.0, face_index=1)
    assert job.sampling == SamplingOptions(emotion=job.sampling.emotion, steps=12, overlap=20, seed=5, guidance=1.5)
    assert job.sampling.emotion.label == "Happy:0.7,Sad:0.3"
    assert job.clip == ClipControls(mouth=0.5, head=1.5, pitch=2.0, yaw=-3.0, roll=4.0, blink_interval=0,
                                    drive_eye=False, fade_in=3, fade_out=6)
    assert job.render == RenderOptions(output="crop", batch_size=2, backend="tensorrt")
    fast = _job("--cuda-graphs", "--compile", "--channels-last")  # the GPU speed options reach the renderer's config
    assert fast.render == RenderOptions(backend="pytorch", cuda_graphs=True, compile=True, channels_last=True)
    cfg = fast.render.renderer_config("fp16")
    assert cfg.cuda_graphs and cfg.compile and cfg.channels_last and cfg.precision == "fp16"


def test_defaults_leave_the_release_settings():
    job = _job()
    assert job == JobOptions(render=RenderOptions(backend="pytorch"))
    assert job.sampling.steps is None and job.sampling.emotion is None  # the release's (offline or online) values
    # --stream builds the very same options object
    assert job_options(build_parser().parse_args([*BASE, "--stream"])) == job


@pytest.mark.parametrize("flags,message", [
    (["--emotion", "Joy"], "--emotion: unknown emotion label 'Joy'"),
    (["--mouth", "-1"], "--mouth must be a finite number in 0..10, got -1.0"),
    (["--blink", "-2"], "--blink must be an integer in 0..1000000, got -2"),
    (["--steps", "0"], "--steps must be an integer in 1..1000, got 0"),
    (["--batch-size", "0"], "--batch-size must be an integer in 1..1024, got 0"),
    (["--fade-in", "-4"], "--fade-in must be an integer in 0..1000000, got -4"),
    (["--crop-scale", "nan"], "--crop-scale must be a finite number in 0.1..100, got nan"),
])
def test_bad_values_name_the_flag(flags, message, capsys):
    assert main([*BASE, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ditto: error: ") and message in err and "Traceback" not in err


def test_emotion_is_parsed_once_into_a_typed_value():
    e = _job("--emotion", "3").sampling.emotion
    assert isinstance(e, Emotion) and e.label == "Happy" and tuple(e.table.shape) == (1, 8)
    assert SamplingOptions(emotion=e).emotion is e
