"""generate() and the command line end to end on the synthetic model kit, and their bad-input errors.

Clips are a few frames long: the renderer takes seconds per 512x512 frame on a CPU.
"""

import math
import os
import pickle
import shutil

import cv2
import numpy as np
import pytest
import torch

from ditto_core.__main__ import main
from ditto_core.audio import AudioError
from ditto_core.checkpoints import CheckpointError
from ditto_core.config import ConfigError
from ditto_core.face import NoFaceError
from ditto_core.hub import MissingModelsError
from ditto_core.inputs import SourceReadError
from ditto_core.runtime import (
    DittoModels,
    JobOptions,
    RenderOptions,
    SamplingOptions,
    extract_audio_features,
    extract_source,
    generate,
    sample_motion,
)
from ditto_core.video import probe_video

from conftest import face_image, write_wav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    return path


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".png" and p.suffix != ".wav")


def test_generate_writes_video_with_audio(synthetic_models, portrait, tmp_path):
    seconds = 0.08  # 2 frames: each 512x512 frame takes seconds on a CPU
    wav = write_wav(tmp_path / "speech.wav", seconds, sample_rate=22050, channels=2)
    out = tmp_path / "result.mp4"
    stages: dict[str, tuple[int, int]] = {}
    generate(synthetic_models, portrait, wav, out, JobOptions(sampling=SamplingOptions(steps=2, seed=1)),
             progress=lambda s, d, t: stages.__setitem__(s, (d, t)))
    info = probe_video(out)
    assert info["frames"] == math.ceil(seconds * 25) == 2
    assert info["fps"] == pytest.approx(25.0)
    assert info["has_audio"]
    assert info["audio_seconds"] == pytest.approx(seconds, abs=0.03)
    assert (info["width"], info["height"]) == (288, 320)  # pasted back into the source frame
    assert stages["render"] == (2, 2) and stages["motion"] == (1, 1) and stages["source"] == (1, 1)


def test_command_line_generate(synthetic_kit, portrait, tmp_path, capsys):
    wav = write_wav(tmp_path / "speech.wav", 0.08, sample_rate=16000)
    out = tmp_path / "cli.mp4"
    code = main(["generate", "--source", portrait, "--audio", wav, "--out", out, "--models", synthetic_kit,
                 "--no-download", "--device", "cpu", "--steps", "2", "--emotion", "Happy:0.6,Sad:0.4",
                 "--head", "0.5", "--yaw", "5", "--blink", "0", "-q"])
    assert code == 0
    info = probe_video(out)
    assert info["frames"] == 2 and info["fps"] == pytest.approx(25.0) and info["has_audio"]
    assert info["audio_seconds"] == pytest.approx(0.08, abs=0.03)


def test_same_seed_same_motion(synthetic_models):
    src = extract_source(synthetic_models, face_image())
    wave = np.sin(np.linspace(0, 300, 16000 * 3 // 10)).astype(np.float32) * 0.2
    feats = extract_audio_features(synthetic_models, wave, 16000)
    a = sample_motion(synthetic_models, src, feats, SamplingOptions(steps=2, seed=7)).motion
    b = sample_motion(synthetic_models, src, feats, SamplingOptions(steps=2, seed=7)).motion
    c = sample_motion(synthetic_models, src, feats, SamplingOptions(steps=2, seed=8)).motion
    assert a.shape == (8, 265)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_interrupt_leaves_no_file(synthetic_models, portrait, tmp_path):
    wav = write_wav(tmp_path / "speech.wav", 0.2)
    out = tmp_path / "stopped.mp4"
    calls = []

    class Stop(Exception):
        pass

    def cancel():
        calls.append(1)
        if len(calls) > 3:  # after registration and sampling started: stop in the render
            raise Stop()

    with pytest.raises(Stop):
        generate(synthetic_models, portrait, wav, out, JobOptions(sampling=SamplingOptions(steps=2), render=RenderOptions(batch_size=2)), cancel=cancel)
    assert _leftovers(tmp_path) == []


def test_silent_audio_is_valid_with_a_warning(synthetic_models, caplog):
    with caplog.at_level("WARNING"):
        feats = extract_audio_features(synthetic_models, np.zeros(3200, np.float32), 16000)
    assert feats.num_frames == 5
    assert float(feats.vad.abs().max()) == 0.0
    assert any("silen" in r.getMessage().lower() for r in caplog.records)


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.1, np.nan] * 800, np.float32), "NaN|non-finite|infinite"),
        (np.array([0.1, np.inf] * 800, np.float32), "NaN|non-finite|infinite"),
        (np.full(100, 0.1, np.float32), "shorter|too short"),
    ],
)
def test_bad_audio_is_a_clear_error_and_writes_nothing(synthetic_models, portrait, tmp_path, audio, match):
    out = tmp_path / "never.mp4"
    with pytest.raises(AudioError, match=match):
        generate(synthetic_models, portrait, audio, out, JobOptions(sampling=SamplingOptions(steps=2)), sample_rate=16000)
    assert _leftovers(tmp_path) == []


def test_empty_and_unreadable_files(synthetic_models, portrait, tmp_path):
    empty_wav = tmp_path / "empty.wav"
    write_wav(empty_wav, 0.0)
    with pytest.raises(AudioError, match="empty"):
        generate(synthetic_models, portrait, empty_wav, tmp_path / "a.mp4")
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"not an image")
    with pytest.raises(SourceReadError, match="broken.png"):
        generate(synthetic_models, bad_image, write_wav(tmp_path / "s.wav", 0.1), tmp_path / "b.mp4")
    with pytest.raises(AudioError, match="nothing.wav"):
        generate(synthetic_models, portrait, tmp_path / "nothing.wav", tmp_path / "c.mp4")
    assert not any(p.suffix == ".mp4" or p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_no_face_names_the_threshold(synthetic_models, monkeypatch):
    det = synthetic_models.face.detector
    monkeypatch.setattr(det, "detect_faces", lambda img: (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)))
    with pytest.raises(NoFaceError, match="0.5"):
        extract_source(synthetic_models, face_image())


def test_face_too_small(synthetic_models):
    with pytest.raises(ValueError, match="too small"):
        extract_source(synthetic_models, np.full((24, 24, 3), 128, np.uint8))


def test_cli_reports_bad_input_in_one_line(synthetic_kit, tmp_path, capsys):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG broken")
    code = main(["generate", "--source", bad, "--audio", write_wav(tmp_path / "s.wav", 0.1), "--out",
                 tmp_path / "o.mp4", "--models", synthetic_kit, "--no-download", "--device", "cpu", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("ditto: error:") and "x.png" in err[-1]
    assert not (tmp_path / "o.mp4").exists()


def _linked_kit(kit, dest, skip=()):
    """A models folder of symlinks to the kit's files, without the files named in ``skip``."""
    for path in kit.rglob("*"):
        if path.is_file() and path.name not in skip:
            target = dest / path.relative_to(kit)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
    return dest


def test_missing_model_files_are_listed(synthetic_kit, tmp_path):
    folder = _linked_kit(synthetic_kit, tmp_path / "models", skip={"decoder.pth", "landmark203.onnx"})
    with pytest.raises(MissingModelsError) as e:
        DittoModels.load(folder, "cpu", download=False)
    text = str(e.value)
    assert "ditto_pytorch/models/decoder.pth" in text and "ditto_pytorch/aux_models/landmark203.onnx" in text
    assert "appearance_extractor" not in text


def test_config_pickle_with_code_is_refused(synthetic_kit, tmp_path):
    folder = _linked_kit(synthetic_kit, tmp_path / "models", skip={"v0.4_hubert_cfg_pytorch.pkl"})
    evil = folder / "ditto_cfg" / "v0.4_hubert_cfg_pytorch.pkl"
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_bytes(pickle.dumps({"base_cfg": {}, "audio2motion_cfg": {}, "default_kwargs": {"x": os.system}}))
    with pytest.raises(ConfigError, match="system"):
        DittoModels.load(folder, "cpu", download=False)


def test_corrupt_checkpoint_names_the_file(synthetic_kit, tmp_path):
    folder = _linked_kit(synthetic_kit, tmp_path / "models", skip={"stitch_network.pth"})
    src = synthetic_kit / "ditto_pytorch" / "models" / "stitch_network.pth"
    dst = folder / "ditto_pytorch" / "models" / "stitch_network.pth"
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="stitch_network.pth"):
        DittoModels.load(folder, "cpu", download=False)


def test_wrong_checkpoint_is_named(synthetic_kit, tmp_path):
    folder = _linked_kit(synthetic_kit, tmp_path / "models", skip={"appearance_extractor.pth"})
    shutil.copy(synthetic_kit / "ditto_pytorch" / "models" / "stitch_network.pth",
                folder / "ditto_pytorch" / "models" / "appearance_extractor.pth")
    with pytest.raises(CheckpointError, match="appearance"):
        DittoModels.load(folder, "cpu", download=False)


def test_mediapipe_eye_backend_needs_the_task_file(synthetic_kit):
    with pytest.raises(MissingModelsError, match="face_landmarker.task"):
        DittoModels.load(synthetic_kit, "cpu", download=False, eye_backend="mediapipe")
    with pytest.raises(ValueError, match="eye_backend"):
        DittoModels.load(synthetic_kit, "cpu", download=False, eye_backend="dlib")
