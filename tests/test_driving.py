"""Motion from a driving video on the synthetic kit: frames and files in, a 25 fps motion out; frames without a face;
timestamps of a variable-frame-rate file; the keypoint preview; ``generate --drive`` through the command line.

The golden parity of the extracted motion is in test_golden_source.py; the maths of parts, resampling and mixing in
test_mix.py. Renders are a few frames: the renderer takes seconds per 512x512 frame on a CPU.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from conftest import face_image, write_vfr_video, write_wav
from ditto_core.__main__ import main
from ditto_core.face import NoFaceError
from ditto_core.inputs import SourceReadError, read_video_timed
from ditto_core.motion import Motion
from ditto_core.motion.mix import mix_motions
from ditto_core.runtime import (
    DrivingOptions,
    extract_driving_motion,
    extract_source,
    preview_motion,
)
from ditto_core.runtime.preview import keypoints_to_pixels
from ditto_core.validate import OptionError
from ditto_core.video import VideoWriter, probe_video

pytestmark = pytest.mark.slow


def _frames(n: int, h: int = 320, w: int = 288) -> np.ndarray:
    base = face_image(h, w)
    return np.stack([np.roll(base, (i, 2 * i), (0, 1)) for i in range(n)])


def _write_mp4(path, frames, fps=25, audio_seconds=None):
    audio = None
    if audio_seconds is not None:
        t = np.arange(int(audio_seconds * 16000)) / 16000
        audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    with VideoWriter(path, fps=fps, audio=audio, audio_sample_rate=16000) as w:
        w.write(frames)
    return path


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    path = tmp_path_factory.mktemp("drive_inputs") / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    return path


def test_driving_frames_at_30_fps_give_a_25_fps_motion(synthetic_models):
    frames = _frames(12)
    seen = []
    motion = extract_driving_motion(synthetic_models, frames, fps=30.0, progress=lambda d, t: seen.append((d, t)))
    assert isinstance(motion, Motion) and motion.num_frames == 10 and motion.fps == 25.0
    assert motion.parts == ("head_pose", "translation", "expression") and motion.relative
    assert torch.equal(motion.reference, motion.motion[0])
    assert motion.meta["frames_in"] == "12" and motion.meta["fps_in"] == "30.000" and motion.meta["missing_faces"] == "0"
    assert seen[-1] == (12, 12)
    five = frames[::3][:4]  # 4 frames at 10 fps by their timestamps: 0.4 s
    timed = extract_driving_motion(synthetic_models, five, times=np.arange(4) / 10.0,
                                   options=DrivingOptions(parts="head_pose,eyes", mode="absolute", smoothing=3))
    assert timed.num_frames == 10 and timed.parts == ("head_pose", "eyes")
    assert not timed.relative and timed.reference is None
    # 25 fps frames 3, 4, 5 are at 0.12, 0.16, 0.20 s: 1.2, 1.6 and 2.0 input frames, equal steps along one segment
    m = timed.motion
    assert torch.allclose(m[4] - m[3], m[5] - m[4], atol=1e-5) and not torch.allclose(m[4], m[3])
    assert torch.allclose(m[2] - m[0], 2 * (m[1] - m[0]), atol=1e-5)  # 0, 0.04, 0.08 s on the first segment


def test_frames_without_a_face_hold_the_last_tracked_motion(synthetic_models, monkeypatch, caplog):
    frames = _frames(10)
    dark = [0, 1, 5, 6]
    frames[dark] = frames[dark] // 8
    det = synthetic_models.face.detector
    real = det.detect_faces

    def detect(img):  # the synthetic detector sees a face everywhere: a dark frame has none here
        if img.mean() < 40:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        return real(img)

    monkeypatch.setattr(det, "detect_faces", detect)
    with caplog.at_level(logging.WARNING):
        motion = extract_driving_motion(synthetic_models, frames, fps=25.0)
    assert "no face in 4 of 10 frames" in caplog.text and motion.meta["missing_faces"] == "4"
    m = motion.motion
    assert torch.equal(m[0], m[2]) and torch.equal(m[1], m[2])  # before the first face: the first face's
    assert torch.equal(m[5], m[4]) and torch.equal(m[6], m[4])  # a gap: the last tracked frame's
    assert not torch.equal(m[7], m[4])
    frames[:] = frames // 8
    with pytest.raises(NoFaceError, match="driving video: no usable face in any of the 10 frames"):
        extract_driving_motion(synthetic_models, frames, fps=25.0)


def test_driving_inputs_are_checked_where_they_enter(synthetic_models, tmp_path):
    with pytest.raises(OptionError, match="driving fps"):
        extract_driving_motion(synthetic_models, _frames(2))
    with pytest.raises(OptionError, match="driving frames"):
        extract_driving_motion(synthetic_models, _frames(2).astype(np.float32), fps=25)
    with pytest.raises(OptionError, match="driving timestamps must be strictly increasing"):
        extract_driving_motion(synthetic_models, _frames(3), times=[0.0, 0.04, 0.04])
    with pytest.raises(OptionError, match="DrivingOptions.parts"):
        DrivingOptions(parts="official")
    with pytest.raises(SourceReadError, match="speech.wav: the file has no video stream"):
        read_video_timed(write_wav(tmp_path / "speech.wav", 0.1))


def test_variable_frame_rate_file_keeps_its_timestamps(synthetic_models, tmp_path):
    import av

    stamps_ms = [0, 30, 50, 100, 130, 200, 210, 300]
    path = write_vfr_video(tmp_path / "vfr.mkv", _frames(len(stamps_ms), 160, 160), stamps_ms)
    got, times = read_video_timed(path)
    assert got.shape == (8, 160, 160, 3)
    np.testing.assert_allclose(times, np.array(stamps_ms) / 1000, atol=1e-6)
    motion = extract_driving_motion(synthetic_models, got, times=times)
    assert motion.num_frames == 8  # 0.3 s + the median step (30 ms) = 0.33 s at 25 fps


def test_preview_draws_the_planned_keypoints_on_the_source_crop(synthetic_models):
    source = extract_source(synthetic_models, face_image())
    motion = extract_driving_motion(synthetic_models, _frames(6), fps=25.0)
    images = preview_motion(synthetic_models, source, motion, every=2)
    assert images.shape == (3, 512, 512, 3) and images.dtype == np.uint8
    crop = source.crops[0]
    assert not np.array_equal(images[0], crop)  # something drawn ...
    assert (images[0] != crop).any(-1).mean() < 0.2  # ... on the crop, which stays visible
    with pytest.raises(OptionError, match="frame_indices"):
        preview_motion(synthetic_models, source, motion, frame_indices=[6])
    px = keypoints_to_pixels(np.array([[-1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]))
    np.testing.assert_allclose(px, [[0, 0], [256, 256], [512, 384]])


def test_mixing_a_driving_motion_into_speech_motion_renders_through_the_planner(synthetic_models):
    from ditto_core.runtime import KeypointPlanner

    source = extract_source(synthetic_models, face_image())
    drive = extract_driving_motion(synthetic_models, _frames(5), fps=25.0)
    speech = Motion(motion=drive.motion.flip(0) * 0.5)  # any relative motion as A
    mixed = mix_motions(speech, drive, "head_pose,eyes")
    x_d = KeypointPlanner.for_motion(synthetic_models, source, mixed).plan(mixed.motion).x_d
    x_d_speech = KeypointPlanner.for_motion(synthetic_models, source, speech).plan(speech.motion).x_d
    assert x_d.shape == (5, 21, 3) and not torch.equal(x_d, x_d_speech)


def test_a_video_drives_a_portrait_with_its_own_sound(synthetic_models, portrait, tmp_path):
    from conftest import standin_renderer
    from ditto_core.runtime import generate_driven

    video = _write_mp4(tmp_path / "drive.mp4", _frames(3), fps=25, audio_seconds=0.12)
    out, stages = tmp_path / "driven.mp4", set()
    generate_driven(synthetic_models, portrait, video, out, renderer=standin_renderer(synthetic_models),
                    progress=lambda s, d, t: stages.add(s))
    info = probe_video(out)
    assert info["frames"] == 3 and info["fps"] == pytest.approx(25.0) and info["has_audio"]
    assert stages == {"drive", "source", "render"}
    silent = _write_mp4(tmp_path / "silent.mp4", _frames(2), fps=25)
    generate_driven(synthetic_models, portrait, silent, out, renderer=standin_renderer(synthetic_models))
    assert probe_video(out)["frames"] == 2 and not probe_video(out)["has_audio"]


def test_command_line_takes_head_and_eyes_from_video_and_lips_from_speech(synthetic_kit, portrait, tmp_path, capsys,
                                                                         monkeypatch):
    from conftest import standin_renderer
    from ditto_core.runtime import DittoModels

    # the subject is the command line and the mix: the stand-in renderer spares seconds per real 512x512 frame
    monkeypatch.setattr(DittoModels, "new_renderer", lambda self, *a, **k: standin_renderer(self))
    silent = _write_mp4(tmp_path / "drive.mp4", _frames(1), fps=25)
    wav = write_wav(tmp_path / "speech.wav", 0.08)
    out = tmp_path / "mixed.mp4"
    code = main(["generate", "--models", str(synthetic_kit), "--source", str(portrait), "--audio", str(wav),
                 "--drive", str(silent), "--drive-length", "ping_pong", "--steps", "2", "--out", str(out),
                 "--no-download", "--device", "cpu", "-q"])
    assert code == 0, capsys.readouterr().err
    info = probe_video(out)
    assert info["frames"] == 2 and info["has_audio"]  # the speech's length and sound


@pytest.mark.parametrize("flags, message", [
    (["--drive-parts", "head_pose,nose"], "--drive-parts: expected"),
    (["--drive-mode", "absolute", "--audio", "{wav}"], "--drive-mode: an absolute driving motion"),
    (["--stream", "--audio", "{wav}"], "--drive is not available with --stream"),
    (["--drive-smoothing", "0"], "--drive-smoothing must be"),
])
def test_command_line_driving_errors_name_the_flag(synthetic_kit, portrait, tmp_path, capsys, flags, message):
    video = _write_mp4(tmp_path / "drive.mp4", _frames(2), fps=25)
    wav = write_wav(tmp_path / "speech.wav", 0.08)
    argv = ["generate", "--models", str(synthetic_kit), "--source", str(portrait), "--drive", str(video),
            "--out", str(tmp_path / "x.mp4"), "--no-download", "--device", "cpu", "-q",
            *[f.format(wav=wav) for f in flags]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ditto: error: ") and message in err, err
    assert not (tmp_path / "x.mp4").exists()
