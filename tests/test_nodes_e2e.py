"""Every node and every API workflow executed on the synthetic model kit (random weights: frames are noise), with
the pack loaded as ComfyUI loads it and minimal fakes of the core nodes the workflows use.

Small inputs keep the CPU time down: a 192x192 noise image (the kit's stand-in detector always finds one face in
the centre), 0.08 s of audio (2 frames at 25 fps), 2 DiT steps. The kit is built once per session (about 10 s,
700 MB under pytest's temporary folder); set ``DITTO_TEST_KIT`` to an existing kit folder to reuse one.
"""

from __future__ import annotations

import inspect

import json
import threading
import wave
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from comfy_stubs import InterruptProcessingException, stubbed_pack
from conftest import standin_renderer, write_vfr_video
from make_workflows import DRIVING, MIXED
from workflow_tools import API_DIR

FPS = 25
AUDIO_SECONDS = 0.08  # 2 frames
N_FRAMES = 2
IMAGE_SIZE = 192
TEST_STEPS = 2
DRIVING_FRAMES = 3  # the stand-in driving video (ditto_source_video.mp4 in _write_inputs: 3 frames at 25 fps)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def kit(synthetic_kit) -> Path:
    """The session's synthetic model kit (conftest; ``$DITTO_TEST_KIT`` reuses a built one)."""
    return synthetic_kit


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, kit):
    """(pack, stubs) with the kit at models/ditto/ditto-talkinghead and the test inputs in input/."""
    gen = stubbed_pack(tmp_path_factory.mktemp("comfy_e2e"))
    pack, stubs = next(gen)
    stubs.ditto_models_dir.mkdir(parents=True, exist_ok=True)
    (stubs.ditto_models_dir / "ditto-talkinghead").symlink_to(kit, target_is_directory=True)
    _write_inputs(stubs.input_dir)
    yield pack, stubs
    gen.close()


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    import huggingface_hub

    def boom(*a, **k):
        raise AssertionError("the tests must not download")

    for name in ("snapshot_download", "hf_hub_download"):
        monkeypatch.setattr(huggingface_hub, name, boom)


@pytest.fixture
def recorder(comfy):
    rec = comfy[1].recorder
    rec.reset()
    yield rec
    rec.reset()


def node(pack, node_id: str):
    return pack.NODE_CLASS_MAPPINGS[node_id]()


def call(obj, **kw) -> tuple[tuple, dict]:
    """Run a node's FUNCTION; returns (result tuple, ui dict)."""
    out = getattr(obj, type(obj).FUNCTION)(**kw)
    if isinstance(out, dict):
        return tuple(out.get("result", ())), out.get("ui", {})
    return tuple(out), {}


@pytest.fixture(scope="module")
def models(comfy):
    pack, _ = comfy
    (m,), _ = call(node(pack, "DittoLoadModels"), models_folder="ditto-talkinghead", device="auto", precision="fp32",
                   backend="pytorch", download_missing=False)
    return m


# ------------------------------------------------------------------------------------------------ inputs
def _image(seed: int = 0, size: int = IMAGE_SIZE) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _audio(seconds: float = AUDIO_SECONDS, sr: int = 24000, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


def _write_inputs(folder: Path) -> None:
    import cv2

    from ditto_core.video import VideoWriter

    # short stand-ins under the sample inputs' names (replacing the copies the pack put there: the real portrait and
    # speech would take minutes to render here)
    cv2.imwrite(str(folder / "ditto_portrait.jpg"), cv2.cvtColor(_image(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    pcm = (_audio().T * 32767).astype("<i2")
    for name in ("ditto_speech.wav", "ditto_speech_long.flac"):  # WAV data either way: PyAV decodes by content
        with wave.open(str(folder / name), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(24000)
            w.writeframes(pcm.tobytes())
    with VideoWriter(folder / "ditto_source_video.mp4", fps=FPS, preset="ultrafast") as v:
        v.write(_frames(DRIVING_FRAMES))


def _frames(n: int, seed: int = 1) -> np.ndarray:
    """``n`` frames of a noise picture moving right by 2 pixels a frame."""
    return np.stack([np.roll(_image(seed), 2 * k, axis=1) for k in range(n)])


def image_tensor(frames: np.ndarray) -> torch.Tensor:
    frames = frames if frames.ndim == 4 else frames[None]
    return torch.from_numpy(frames).float() / 255.0


def audio_dict() -> dict[str, Any]:
    return {"waveform": torch.from_numpy(_audio())[None], "sample_rate": 24000}


# ------------------------------------------------------------------------------------------------ core fakes
class FakeVideo:
    """A core VIDEO made from tensors (Create Video's ``VideoFromComponents``): no file behind it."""

    def __init__(self, images: torch.Tensor, fps: float, audio: Any = None) -> None:
        self.images, self.fps, self.audio = images, fps, audio
        self.frame_rate = fps  # VideoComponents' name

    def get_components(self):
        return self


def make_fakes(stubs, saved: list[dict[str, Any]]) -> dict[str, Any]:
    """Minimal stand-ins of the core nodes: same input names, same outputs."""
    import cv2
    from comfy_api.input_impl import VideoFromFile

    from ditto_core.video import VideoWriter

    inp = stubs.input_dir

    def load_image(image):
        img = cv2.cvtColor(cv2.imread(str(inp / image)), cv2.COLOR_BGR2RGB)
        return image_tensor(img), torch.zeros(1, *img.shape[:2])

    def load_audio(audio):  # ComfyUI decodes with PyAV, by content
        from ditto_core.audio import load_audio_native

        pcm, sr = load_audio_native(str(inp / audio))
        return ({"waveform": torch.from_numpy(pcm)[None], "sample_rate": sr},)

    def load_video(file):  # as ComfyUI: the file as a VideoFromFile
        return (VideoFromFile(str(inp / file)),)

    def get_video_components(video):
        c = video.get_components()
        return c.images, c.audio, float(c.frame_rate)

    def create_video(images, fps, audio=None):
        return (FakeVideo(images, fps, audio),)

    def save_video(video, filename_prefix, format, codec):
        assert format in ("auto", "mp4") and codec in ("auto", "h264")
        out = stubs.output_dir / f"{filename_prefix}_00001_.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(video, "save_to"):  # a core VIDEO of a file (Render Video): copied as ComfyUI does
            from ditto_core.video import probe_video

            video.save_to(str(out), format, codec)
            info = probe_video(out)
            saved.append({"path": out, "frames": info["frames"], "fps": info["fps"],
                          "audio": info["audio_channels"] or None})
            return ()
        frames = (video.images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        wave16 = None
        if video.audio is not None:
            from ditto_core.audio import load_audio as core_load_audio

            wave16 = core_load_audio(video.audio, None, name="audio")
        with VideoWriter(out, fps=video.fps, audio_16k=wave16, preset="ultrafast") as w:
            w.write(frames)
        saved.append({"path": out, "frames": frames.shape[0], "fps": video.fps, "audio": video.audio})
        return ()

    return {
        "LoadImage": load_image,
        "LoadAudio": load_audio,
        "LoadVideo": load_video,
        "GetVideoComponents": get_video_components,
        "CreateVideo": create_video,
        "SaveVideo": save_video,
        "PreviewImage": lambda images: (),
    }


def run_api_workflow(prompt: dict[str, Any], pack, fakes) -> tuple[dict[str, tuple], dict[str, dict]]:
    """Execute an API-format prompt in dependency order; returns outputs and ui payloads by node id."""
    outputs: dict[str, tuple] = {}
    uis: dict[str, dict] = {}

    def run(nid: str) -> tuple:
        if nid in outputs:
            return outputs[nid]
        spec = prompt[nid]
        kw = {k: (run(v[0])[v[1]] if isinstance(v, list) else v) for k, v in spec["inputs"].items()}
        ct = spec["class_type"]
        if ct in pack.NODE_CLASS_MAPPINGS:
            cls = pack.NODE_CLASS_MAPPINGS[ct]
            if hasattr(cls, "VALIDATE_INPUTS"):  # as ComfyUI: the widget constants it names (all with **kwargs)
                params = inspect.signature(cls.VALIDATE_INPUTS).parameters
                takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
                widgets = {k: v for k, v in kw.items() if not isinstance(spec["inputs"][k], list)
                           and (takes_all or k in params)}
                assert cls.VALIDATE_INPUTS(**widgets) is True
            res, ui = call(cls(), **kw)
        else:
            res, ui = tuple(fakes[ct](**kw)), {}
        outputs[nid], uis[nid] = res, ui
        return res

    for nid in prompt:
        run(nid)
    return outputs, uis


# ------------------------------------------------------------------------------------------------ progress adapter
def test_progress_adapter_updates_the_bar_and_ignores_other_threads(comfy, recorder):
    progress = import_module("ComfyUI-Ditto.nodes.progress")
    bar = progress.ComfyProgress(10)
    bar.progress(3, 10)
    t = threading.Thread(target=bar.progress, args=(5, 10))
    t.start()
    t.join()
    bar.progress(4, 8)  # a new stage with another total
    assert recorder.updates == [(3, 10), (4, 8)]
    assert recorder.bars == 2
    comfy[1].model_management.interrupt_current_processing(True)
    with pytest.raises(InterruptProcessingException):
        bar.cancel()
    bar.cancel()  # the flag was consumed


# ------------------------------------------------------------------------------------------------ nodes one by one
def test_load_models_caches_and_releases(comfy, models):
    pack, _ = comfy
    assert (models.models_dir / "SYNTHETIC_MODELS.txt").exists()
    assert str(models.device) == "cpu" and models.precision == "fp32"
    loader = node(pack, "DittoLoadModels")
    kw = dict(models_folder="ditto-talkinghead", device="cpu", precision="fp32", backend="pytorch", download_missing=False)
    (a,), _ = call(loader, **kw)
    (b,), _ = call(loader, **kw)
    assert a is b
    (c,), _ = call(loader, **{**kw, "precision": "bf16"})
    assert c is not a and c.precision == "bf16"
    assert a.lmdm is None  # released when the inputs changed
    loader.release()
    assert c.lmdm is None


def test_load_models_passes_the_speed_options_to_every_renderer(comfy, caplog):
    """The loader's GPU speed options reach the renderers the render nodes make; CUDA graphs are dropped, with a
    warning, on a device that is not CUDA (a workflow saved on a GPU machine still runs here)."""
    import logging

    pack, _ = comfy
    loader = node(pack, "DittoLoadModels")
    kw = dict(models_folder="ditto-talkinghead", device="cpu", precision="fp32", backend="pytorch", download_missing=False)
    with caplog.at_level(logging.INFO):
        (m,), ui = call(loader, **kw, cuda_graphs=True, compile=False, channels_last=True)
    assert not m.render.cuda_graphs and m.render.channels_last and not m.render.compile
    assert ui == {"text": ["networks on cpu (fp32); renderer pytorch + channels last; warp 3-D ops native; "
                           "aux ONNX models on CPUExecutionProvider (onnxruntime)"]}  # shown on the node
    assert "CUDA graphs need a CUDA device" in caplog.text
    assert "aux ONNX models on CPUExecutionProvider" in caplog.text  # where the aux models run, in the log
    cfg = m.new_renderer(2).config
    assert cfg.channels_last and not cfg.cuda_graphs and cfg.batch_size == 2 and cfg.precision == "fp32"
    (same,), _ = call(loader, **kw, cuda_graphs=True, compile=False, channels_last=True)
    (other,), _ = call(loader, **kw, cuda_graphs=False, compile=True, channels_last=False)
    assert same is m and other is not m and other.render.compile
    assert other.new_renderer(1).config.compile
    loader.release()


def test_load_models_refuses_paths_outside_the_models_folder(comfy):
    pack, _ = comfy
    with pytest.raises(ValueError, match="models_folder"):
        call(node(pack, "DittoLoadModels"), models_folder="../ditto", device="cpu", precision="fp32", backend="pytorch",
             download_missing=False)


@pytest.fixture(scope="module")
def source(comfy, models):
    pack, _ = comfy
    (src, crop), _ = call(node(pack, "DittoExtractSource"), models=models, images=image_tensor(_image()), crop_scale=2.3,
                          face_index=0, face_order="size")
    assert crop.shape == (1, 512, 512, 3) and crop.dtype == torch.float32
    assert 0 <= float(crop.min()) and float(crop.max()) <= 1
    return src


@pytest.fixture(scope="module")
def features(comfy, models):
    pack, _ = comfy
    (feats, n), _ = call(node(pack, "DittoAudioToHuBERT"), models=models, audio=audio_dict())
    return feats, n


@pytest.fixture(scope="module")
def motion(comfy, models, source, features):
    pack, _ = comfy
    (m,), ui = call(node(pack, "DittoMotionSampler"), models=models, source=source, audio_features=features[0],
                    emotion="Neutral", eye_mode="from source", steps=TEST_STEPS, overlap=10, seed=7, guidance=2.0)
    return m, ui


def test_extract_source_image(source):
    assert source.is_image and source.num_frames == 1
    assert source.frames.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_extract_source_reports_progress_and_takes_a_region(comfy, models, recorder):
    pack, _ = comfy
    mask = torch.zeros(1, IMAGE_SIZE, IMAGE_SIZE)
    mask[:, 64:128, 64:128] = 1  # around the centre, where the stand-in face is
    (src, _), _ = call(node(pack, "DittoExtractSource"), models=models, images=image_tensor(_image()), crop_scale=2.0,
                       face_index=0, face_order="left_to_right", face_region=mask)
    assert src.num_frames == 1
    assert recorder.updates and recorder.updates[-1][0] == recorder.updates[-1][1]
    from ditto_core.face.detect import NoFaceError

    corner = torch.zeros(1, IMAGE_SIZE // 2, IMAGE_SIZE // 2)  # another size: resized to the image
    corner[:, :8, :8] = 1
    with pytest.raises(NoFaceError):
        call(node(pack, "DittoExtractSource"), models=models, images=image_tensor(_image()), crop_scale=2.3,
             face_index=0, face_order="size", face_region=corner)


def test_extract_source_video_batch(comfy, models):
    pack, _ = comfy
    frames = np.stack([np.roll(_image(1), 2 * k, axis=1) for k in range(3)])
    (src, crop), _ = call(node(pack, "DittoExtractSource"), models=models, images=image_tensor(frames), crop_scale=2.3,
                          face_index=0, face_order="size")
    assert not src.is_image and src.num_frames == 3 and crop.shape == (3, 512, 512, 3)


def test_audio_to_hubert(features, recorder):
    feats, n = features
    assert n == N_FRAMES == feats.num_frames
    assert tuple(feats.features.shape) == (N_FRAMES, 1024) and tuple(feats.vad.shape) == (N_FRAMES,)
    assert float(feats.vad.max()) > 0.1  # a 0.3-amplitude tone: RMS about 0.21


def test_sampler_returns_motion_and_curves(motion, features):
    m, ui = motion
    assert m.num_frames == N_FRAMES and tuple(m.motion.shape) == (N_FRAMES, 265) and m.fps == 25.0
    assert torch.equal(m.vad, features[0].vad)
    curves = ui["ditto_motion"][0]
    assert curves["frames"] == N_FRAMES and len(curves["yaw"]) == N_FRAMES and len(curves["mouth"]) == N_FRAMES
    json.dumps(ui)


def test_sampler_seed_is_deterministic_and_options_apply(comfy, models, source, features, motion, recorder):
    pack, _ = comfy
    sampler = node(pack, "DittoMotionSampler")
    base = dict(models=models, source=source, audio_features=features[0], emotion="Neutral", eye_mode="from source",
                steps=TEST_STEPS, overlap=10, seed=7, guidance=2.0)
    (again,), _ = call(sampler, **base)
    assert torch.equal(again.motion, motion[0].motion)
    assert recorder.updates, "the sampler reported no progress"
    (other,), _ = call(sampler, **{**base, "emotion": "mix", "emotion_mix": "Happy:0.7, Neutral:0.3",
                                   "eye_mode": "manual", "eye_open_left": 0.3, "eye_open_right": 0.4, "gaze_x": 0.02})
    assert other.num_frames == N_FRAMES and not torch.equal(other.motion, motion[0].motion)
    with pytest.raises(ValueError, match="emotion_mix"):
        call(sampler, **{**base, "emotion": "mix", "emotion_mix": ""})


def test_edit_motion_stacks(comfy, motion):
    pack, _ = comfy
    edit = node(pack, "DittoEditMotion")
    defaults = {k: v[1]["default"] for sec in ("required", "optional")
                for k, v in type(edit).INPUT_TYPES()[sec].items() if k != "motion"}
    (m1,), ui1 = call(edit, motion=motion[0], **{**defaults, "end_frame": 1, "yaw": 10.0, "label": "turn"})
    (m2,), ui2 = call(edit, motion=m1, **{**defaults, "mouth_amplitude": 2.0})
    assert m1.delta_yaw.tolist() == [10.0, 0.0]
    assert torch.equal(m2.delta_yaw, m1.delta_yaw) and m2.mouth_amplitude.tolist() == [2.0, 2.0]
    assert [e["label"] for e in ui2["ditto_motion"][0]["edits"]] == ["turn", "mouth ×2"]
    assert motion[0].edits == ()  # the input motion is untouched
    assert ui1["ditto_motion"][0]["warnings"] == [] and ui2["ditto_motion"][0]["warnings"] == []
    # a range past the clip (keyframes saved for a longer clip) runs, with the warning shown on the node's chart
    (m3,), ui3 = call(edit, motion=m2, **{**defaults, "start_frame": 75, "yaw": 5.0})
    assert torch.equal(m3.delta_yaw, m2.delta_yaw)
    assert ui3["ditto_motion"][0]["warnings"] == [
        "start frame 75 is past the clip's 2 frames: this edit changes no frame (its clip-wide settings still apply)"]
    (_,), ui4 = call(edit, motion=m2, **{**defaults, "start_frame": 1, "end_frame": 9})
    assert ui4["ditto_motion"][0]["warnings"] == ["end frame 9 is past the clip's 2 frames: the edit runs to the end of the clip"]


def test_save_and_load_motion(comfy, motion):
    pack, stubs = comfy
    edited = import_module("ditto_core.motion").apply_edit(motion[0], import_module("ditto_core.motion").EditOptions(pitch=3))
    res, ui = call(node(pack, "DittoSaveMotion"), motion=edited, filename_prefix="ditto/perf")
    assert res == ()
    saved = ui["ditto_motion"][0]["saved"]
    assert (stubs.output_dir / saved["subfolder"] / saved["filename"]).is_file()
    choices = type(node(pack, "DittoLoadMotion")).INPUT_TYPES()["required"]["motion_file"][0]
    name = f"{saved['subfolder']}/{saved['filename']} [output]"
    assert name in choices
    loader = node(pack, "DittoLoadMotion")
    assert type(loader).VALIDATE_INPUTS(name) is True and type(loader).IS_CHANGED(name)
    (back,), ui = call(loader, motion_file=name)
    assert torch.equal(back.motion, edited.motion) and torch.equal(back.delta_pitch, edited.delta_pitch)
    assert ui["ditto_motion"][0]["frames"] == N_FRAMES


@pytest.mark.slow
def test_render_frames_full(comfy, models, source, motion, recorder):
    pack, _ = comfy
    (frames, mask, fps), _ = call(node(pack, "DittoRenderFrames"), models=models, source=source, motion=motion[0],
                                  output="full", batch_size=2)
    assert frames.shape == (N_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3) and frames.dtype == torch.float32
    assert mask.shape == (N_FRAMES, IMAGE_SIZE, IMAGE_SIZE) and fps == 25.0
    assert 0 <= float(frames.min()) and float(frames.max()) <= 1 and 0 <= float(mask.min()) and float(mask.max()) <= 1
    assert float(mask[:, IMAGE_SIZE // 2, IMAGE_SIZE // 2].min()) > 0.5  # the face in the centre was pasted
    assert recorder.updates[-1] == (N_FRAMES, N_FRAMES)
    # a frame range renders those frames only (within a grey level of the whole clip: another batch grouping)
    (part, part_mask, _), _ = call(node(pack, "DittoRenderFrames"), models=models, source=source, motion=motion[0],
                                   output="full", batch_size=1, start_frame=1, frame_count=5)
    assert part.shape == (N_FRAMES - 1, IMAGE_SIZE, IMAGE_SIZE, 3) and part_mask.shape == part.shape[:3]
    assert float((part - frames[1:]).abs().max()) <= 1 / 255 + 1e-6
    assert recorder.updates[-1] == (N_FRAMES - 1, N_FRAMES - 1)
    with pytest.raises(ValueError, match=r"start_frame must be a frame of the motion \(0\.\.1: 2 frames"):
        call(node(pack, "DittoRenderFrames"), models=models, source=source, motion=motion[0], output="full",
             batch_size=1, start_frame=N_FRAMES, frame_count=0)


@pytest.mark.slow
def test_render_video_writes_the_clip_with_the_users_audio(comfy, models, source, motion, recorder):
    """Render Video: an mp4 in the temp folder with the audio at its own rate and channels (24 kHz stereo here), fitted to
    the video; a core VIDEO for Save Video and a preview on the node; Cancel leaves no file behind."""
    from ditto_core.video import probe_video

    pack, stubs = comfy
    temp = stubs.base / "temp"
    (video,), ui = call(node(pack, "DittoRenderVideo"), models=models, source=source, motion=motion[0],
                        output="crop", batch_size=2, quality=23, audio=audio_dict())
    path = Path(video.get_stream_source())
    assert path.parent == temp and path.suffix == ".mp4"
    assert ui["images"] == [{"filename": path.name, "subfolder": "", "type": "temp"}] and ui["animated"] == (True,)
    info = probe_video(path)
    assert info["frames"] == N_FRAMES and info["fps"] == pytest.approx(25.0) and (info["width"], info["height"]) == (512, 512)
    assert info["has_audio"] and info["audio_sample_rate"] == 24000 and info["audio_channels"] == 2
    assert recorder.updates[-1] == (N_FRAMES, N_FRAMES)
    saved = stubs.output_dir / "copy.mp4"
    video.save_to(str(saved))
    assert probe_video(saved)["frames"] == N_FRAMES

    before = sorted(p.name for p in temp.iterdir())
    recorder.reset()
    recorder.interrupt_after = 0  # Cancel pressed during the first batch
    with pytest.raises(InterruptProcessingException):
        call(node(pack, "DittoRenderVideo"), models=models, source=source, motion=motion[0], output="crop",
             batch_size=1, quality=18, audio=None)
    assert sorted(p.name for p in temp.iterdir()) == before  # no partial or hidden file
    assert abs(info["audio_seconds"] - N_FRAMES / 25) < 0.04 + 1e-9 or info["audio_decoded_seconds"] >= N_FRAMES / 25
    with pytest.raises(ValueError, match="quality must be an integer in 0..51, got 52"):
        call(node(pack, "DittoRenderVideo"), models=models, source=source, motion=motion[0], output="crop",
             batch_size=1, quality=52)


@pytest.mark.slow
def test_interrupt_from_the_progress_bar_stops_rendering(comfy, models, source, motion, recorder):
    pack, _ = comfy
    recorder.interrupt_after = 0  # Cancel pressed: the first progress update raises
    renderer = node(pack, "DittoRenderFrames")
    with pytest.raises(InterruptProcessingException):
        call(renderer, models=models, source=source, motion=motion[0], output="crop", batch_size=1)
    assert len(recorder.updates) == 1  # stopped after the first 1-frame batch: frame 2 was never rendered


def test_interrupt_before_rendering_renders_nothing(comfy, models, source, motion, recorder):
    pack, stubs = comfy
    stubs.model_management.interrupt_current_processing(True)
    with pytest.raises(InterruptProcessingException):
        call(node(pack, "DittoRenderFrames"), models=models, source=source, motion=motion[0], output="crop", batch_size=1)
    assert recorder.updates == []


# ------------------------------------------------------------------------------------------------ driving video, mix, preview
#: Extract Driving Motion's widgets at their defaults
DRIVE = {"head_pose": True, "translation": True, "eyes": False, "brows": False, "lips": False, "expression": True,
         "mode": "relative", "smoothing": 1, "face_index": 0, "face_order": "size", "max_frames": -1}
#: Mix Motion's widgets at their defaults
MIX = {"head_pose": True, "translation": False, "eyes": True, "brows": False, "lips": False, "expression": False,
       "start": 0, "end": -1, "ease_in": 0, "ease_out": 0, "length": "hold"}


def _write_video(path: Path, frames: np.ndarray, pts_ms: list[int] | None = None, fps: float = 25.0) -> Path:
    """An mp4 of ``frames``: at a constant ``fps``, or stamped at ``pts_ms`` milliseconds (a variable frame rate)."""
    if pts_ms is None:
        from ditto_core.video import VideoWriter

        with VideoWriter(path, fps=fps, preset="ultrafast") as v:
            v.write(frames)
        return path
    return write_vfr_video(path, frames, pts_ms)


@pytest.fixture(scope="module")
def driving(comfy, models):
    """Extract Driving Motion on a 12-frame IMAGE batch at 30 fps (0.4 s): (motion, ui, progress updates)."""
    pack, stubs = comfy
    stubs.recorder.reset()
    (m,), ui = call(node(pack, "DittoExtractDrivingMotion"), models=models, images=image_tensor(_frames(12)),
                    fps=30.0, **{**DRIVE, "eyes": True, "expression": False, "smoothing": 3})
    updates = list(stubs.recorder.updates)
    stubs.recorder.reset()
    return m, ui, updates


def test_extract_driving_motion_from_images_resamples_to_25_fps(driving, comfy, models):
    m, ui, updates = driving
    assert m.num_frames == 10 and m.fps == 25.0 and tuple(m.motion.shape) == (10, 265)  # 0.4 s at 25 fps
    assert m.parts == ("head_pose", "translation", "eyes") and m.relative and m.smoothing == 3
    assert torch.equal(m.reference_frame, m.motion[0])
    assert updates and updates[-1] == (12, 12) and all(t == 12 for _, t in updates)  # one step per tracked frame
    curves = ui["ditto_motion"][0]
    assert curves["frames"] == 10 and curves["warnings"] == [] and len(curves["yaw"]) == 10
    json.dumps(ui)
    pack, _ = comfy
    (absolute,), _ = call(node(pack, "DittoExtractDrivingMotion"), models=models, images=image_tensor(_frames(12)),
                          fps=30.0, **{**DRIVE, "mode": "absolute", "max_frames": 6})
    assert absolute.num_frames == 5 and not absolute.relative and absolute.reference is None  # 6 frames: 0.2 s
    assert absolute.parts == ("head_pose", "translation", "expression")


def test_extract_driving_motion_from_a_video(comfy, models, tmp_path, monkeypatch):
    """A core VIDEO of a file is read from the file with its frames' own times (a variable frame rate keeps its
    timing); one without a file (Create Video's) through get_components and its frame rate."""
    from comfy_api.input_impl import VideoFromFile

    pack, _ = comfy
    extract = node(pack, "DittoExtractDrivingMotion")
    constant = VideoFromFile(str(_write_video(tmp_path / "c.mp4", _frames(3), fps=15.0)))
    (m,), _ = call(extract, models=models, video=constant, **DRIVE)
    assert m.num_frames == 5 and m.parts == ("head_pose", "translation", "expression")  # 3 frames at 15 fps: 0.2 s
    # 4 frames stamped 0, 40, 80 and 400 ms: 0.44 s of motion (their average rate would make it 0.16 s)
    vfr = VideoFromFile(str(_write_video(tmp_path / "v.mp4", _frames(4), pts_ms=[0, 40, 80, 400])))
    monkeypatch.setattr(VideoFromFile, "get_components", lambda self: pytest.fail("decoded through get_components"))
    (m,), _ = call(extract, models=models, video=vfr, **DRIVE)
    assert m.num_frames == 11
    (m,), _ = call(extract, models=models, video=vfr, **{**DRIVE, "max_frames": 2})
    assert m.num_frames == 2  # the first two frames: 0.08 s
    monkeypatch.undo()
    (m,), _ = call(extract, models=models, video=FakeVideo(image_tensor(_frames(2)), 12.5), **DRIVE)
    assert m.num_frames == 4  # 2 frames at 12.5 fps: 0.16 s


def test_extract_driving_motion_errors_name_the_inputs(comfy, models):
    pack, _ = comfy
    extract = node(pack, "DittoExtractDrivingMotion")
    images = image_tensor(_frames(2))
    with pytest.raises(ValueError, match=r"images / video: connect exactly one .* both are connected"):
        call(extract, models=models, images=images, video=FakeVideo(images, 25.0), **DRIVE)
    with pytest.raises(ValueError, match=r"images / video: connect exactly one .* neither is connected"):
        call(extract, models=models, **DRIVE)
    off = {p: False for p in ("head_pose", "translation", "eyes", "brows", "lips", "expression")}
    toggles = "head_pose/translation/eyes/brows/lips/expression: turn on at least one part"
    with pytest.raises(ValueError, match=toggles):
        call(extract, models=models, images=images, **{**DRIVE, **off})
    cls = type(extract)
    assert toggles in cls.VALIDATE_INPUTS(**off)
    assert cls.VALIDATE_INPUTS(**{**off, "lips": True}) is True
    assert cls.VALIDATE_INPUTS(**{**off, "lips": None}) is True  # a toggle fed by a link: known only when it runs
    with pytest.raises(ValueError, match=r"^fps must be a finite number in 0.1..1000, got 0.0"):
        call(extract, models=models, images=images, fps=0.0, **DRIVE)
    with pytest.raises(ValueError, match=r"^mode must be one of"):
        call(extract, models=models, images=images, **{**DRIVE, "mode": "sideways"})
    with pytest.raises(ValueError, match=r"^smoothing must be an integer in 1..1001"):
        call(extract, models=models, images=images, **{**DRIVE, "smoothing": 0})
    from ditto_core.runtime import DRIVING_MODES

    assert tuple(cls.INPUT_TYPES()["required"]["mode"][0]) == DRIVING_MODES


def test_interrupt_stops_driving_motion_extraction(comfy, models, recorder):
    pack, stubs = comfy
    recorder.interrupt_after = 0  # Cancel pressed: the first progress update (the first tracked frame) raises
    with pytest.raises(InterruptProcessingException):
        call(node(pack, "DittoExtractDrivingMotion"), models=models, images=image_tensor(_frames(6)), **DRIVE)
    assert recorder.updates == [(1, 6)]  # frames 2..6 were never tracked
    recorder.reset()
    stubs.model_management.interrupt_current_processing(True)  # pressed before the node started: nothing is read
    with pytest.raises(InterruptProcessingException):
        call(node(pack, "DittoExtractDrivingMotion"), models=models, images=image_tensor(_frames(6)), **DRIVE)
    assert recorder.updates == []


@pytest.mark.parametrize("length, frames", [("hold", 2), ("loop", 2), ("ping_pong", 2), ("trim", 2)])
def test_mix_motion_takes_the_parts_from_b(comfy, motion, driving, length, frames):
    """Speech motion (2 frames) + driving motion (10 frames): head pose and eyes from the video, rebased on the
    speech motion's reference; the rest, and the motion's settings, stay the speech motion's; the speech motion
    is the timeline (the longer driving motion is cut to it)."""
    from ditto_core.motion.parts import part_dims

    pack, _ = comfy
    a, b = motion[0], driving[0]
    (m,), ui = call(node(pack, "DittoMixMotion"), motion_a=a, motion_b=b, **{**MIX, "length": length})
    assert m.num_frames == frames and m.parts == ("official", "head_pose", "eyes") and m.relative
    head, lips = part_dims("head_pose"), part_dims("lips")
    rebased = b.motion[:2] - b.reference_frame + a.reference_frame
    assert torch.allclose(m.motion[:2, head], rebased[:, head], atol=1e-5)
    assert torch.equal(m.motion[:2, lips], a.motion[:, lips])
    curves = ui["ditto_motion"][0]
    assert curves["frames"] == frames and curves["edits"][-1]["label"] == "mix: head_pose, eyes from B"
    how = "both cut to 2" if length == "trim" else "motion_b is cut to motion_a's 2"
    assert curves["warnings"] == [f"motion_a has 2 frames, motion_b 10: {how}"]
    # a shorter motion_b is extended by the mode
    (m2,), ui2 = call(node(pack, "DittoMixMotion"), motion_a=b, motion_b=a, **{**MIX, "length": length})
    assert m2.num_frames == (2 if length == "trim" else 10)
    if length != "trim":
        how = {"loop": "loops", "ping_pong": "plays back and forth", "hold": "holds its last frame"}[length]
        assert ui2["ditto_motion"][0]["warnings"] == [f"motion_a has 10 frames, motion_b 2: motion_b {how} to 10"]
    assert a.num_frames == 2 and b.num_frames == 10  # the inputs are untouched


def test_mix_motion_errors_name_the_widgets(comfy, models, motion, driving):
    pack, _ = comfy
    mix = node(pack, "DittoMixMotion")
    off = {p: False for p in ("head_pose", "translation", "eyes", "brows", "lips", "expression")}
    with pytest.raises(ValueError, match="head_pose/translation/eyes/brows/lips/expression: turn on at least one"):
        call(mix, motion_a=motion[0], motion_b=driving[0], **{**MIX, **off})
    cls = type(mix)
    assert "turn on at least one part" in cls.VALIDATE_INPUTS(**off, start=0, end=-1)
    assert cls.VALIDATE_INPUTS(**{**off, "lips": True}, start=3, end=-1) is True
    assert cls.VALIDATE_INPUTS(**{**off, "lips": True}, start=3, end=3).startswith("end must be -1")
    with pytest.raises(ValueError, match=r"^end must be"):
        call(mix, motion_a=motion[0], motion_b=driving[0], **{**MIX, "start": 4, "end": 2})
    with pytest.raises(ValueError, match=r"^start: start frame 50 is past"):
        call(mix, motion_a=motion[0], motion_b=driving[0], **{**MIX, "start": 50})
    (absolute,), _ = call(node(pack, "DittoExtractDrivingMotion"), models=models, images=image_tensor(_frames(2)),
                          **{**DRIVE, "mode": "absolute"})
    with pytest.raises(ValueError, match=r"^motion_b: motion_a is relative and motion_b absolute"):
        call(mix, motion_a=motion[0], motion_b=absolute, **MIX)


@pytest.mark.parametrize("every, max_frames, k", [(1, 250, 10), (3, 250, 4), (1, 3, 3), (4, 2, 2)])
def test_preview_motion(comfy, models, source, driving, every, max_frames, k, recorder):
    """K = ceil(N / every) 512x512 pictures, capped at max_frames, as an IMAGE in 0..1, one progress step each; no
    renderer runs."""
    pack, _ = comfy
    m = driving[0]
    assert k == min(-(-m.num_frames // every), max_frames)
    (images,), ui = call(node(pack, "DittoPreviewMotion"), models=models, source=source, motion=m, every=every,
                         max_frames=max_frames)
    assert ui == {}
    assert images.shape == (k, 512, 512, 3) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1 and float(images.std()) > 0.01
    assert recorder.updates[-1] == (k, k)


def test_preview_motion_cancel_and_errors(comfy, models, source, driving, recorder):
    pack, stubs = comfy
    preview = node(pack, "DittoPreviewMotion")
    stubs.model_management.interrupt_current_processing(True)
    with pytest.raises(InterruptProcessingException):
        call(preview, models=models, source=source, motion=driving[0], every=1, max_frames=250)
    with pytest.raises(ValueError, match=r"^every must be an integer in 1\.\."):
        call(preview, models=models, source=source, motion=driving[0], every=0, max_frames=250)
    with pytest.raises(ValueError, match=r"^motion: expected a Ditto motion"):
        call(preview, models=models, source=source, motion="motion.safetensors", every=1, max_frames=250)


# ------------------------------------------------------------------------------------------------ API workflows
#: the workflows that make a video (the live one publishes an avatar instead: test_live_api_workflow_publishes_the_avatar)
LIVE_API_FILE = API_DIR / "Live avatar from a portrait.json"
API_FILES = sorted(p for p in API_DIR.glob("*.json") if p != LIVE_API_FILE)
#: (frames, with a sound track) of the clip each workflow makes, where it is not the speech's (N_FRAMES, with it):
#: the driving video alone, and the speech's length (Mix Motion's timeline is the speech motion)
CLIP_OF = {DRIVING: (DRIVING_FRAMES, False), MIXED: (N_FRAMES, True)}


@pytest.mark.slow
@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_api_workflow_runs(path, comfy, recorder, monkeypatch):
    """Each shipped API workflow through the nodes: the graph's wiring, types, files and outputs. Warp + decode are
    the stand-in here (the Render Frames and Render Video tests above run the real networks through the same nodes;
    each 512x512 frame takes seconds on a CPU)."""
    from ditto_core.runtime.models import DittoModels

    monkeypatch.setattr(DittoModels, "new_renderer",
                        lambda self, batch_size=4, backend=None, config=None:
                        standin_renderer(self, config.batch_size if config is not None else batch_size))
    pack, stubs = comfy
    prompt = json.loads(path.read_text())
    for spec in prompt.values():  # keep the CPU time down
        if spec["class_type"] == "DittoMotionSampler":
            spec["inputs"]["steps"] = TEST_STEPS
    saved: list[dict[str, Any]] = []
    outputs, uis = run_api_workflow(prompt, pack, make_fakes(stubs, saved))

    assert len(saved) == 1
    video = saved[0]
    clip_frames, with_audio = CLIP_OF.get(path.stem, (N_FRAMES, True))
    assert video["frames"] == clip_frames and video["fps"] == 25.0 and (video["audio"] is not None) == with_audio
    assert video["path"].is_file() and video["path"].stat().st_size > 0
    for nid, spec in prompt.items():
        if spec["class_type"] == "DittoRenderFrames":
            frames, mask, fps = outputs[nid]
            assert frames.shape[0] == clip_frames and mask.shape == frames.shape[:3] and fps == 25.0
        if spec["class_type"] in ("DittoMotionSampler", "DittoEditMotion"):
            assert uis[nid]["ditto_motion"][0]["frames"] == N_FRAMES
        if spec["class_type"] == "DittoExtractDrivingMotion":
            assert uis[nid]["ditto_motion"][0]["frames"] == DRIVING_FRAMES == outputs[nid][0].num_frames
        if spec["class_type"] == "DittoMixMotion":
            assert uis[nid]["ditto_motion"][0]["frames"] == clip_frames
        if spec["class_type"] == "DittoPreviewMotion":
            (preview,) = outputs[nid]
            assert preview.shape == (DRIVING_FRAMES, 512, 512, 3) and preview.dtype == torch.float32
        if spec["class_type"] == "DittoSaveMotion":
            s = uis[nid]["ditto_motion"][0]["saved"]
            assert (stubs.output_dir / s["subfolder"] / s["filename"]).is_file()
    assert recorder.updates and all(0 <= v <= t for v, t in recorder.updates)


def test_live_api_workflow_publishes_the_avatar(comfy, recorder):
    """Portrait -> models -> source -> Go Live: the node returns the live page's path and the avatar is published
    (with the node's widgets as its sessions' defaults) on the pack's live hub."""
    import sys

    pytest.importorskip("aiohttp")  # the live routes are mounted on ComfyUI's server (its aiohttp route table)
    pack, stubs = comfy
    prompt = json.loads(LIVE_API_FILE.read_text())
    outputs, uis = run_api_workflow(prompt, pack, make_fakes(stubs, []))

    (nid,) = [k for k, spec in prompt.items() if spec["class_type"] == "DittoGoLive"]
    name = prompt[nid]["inputs"]["name"]
    assert name == "comfyui"
    assert outputs[nid] == ("/ditto/live/?avatar=comfyui",)
    assert uis[nid] == {"text": ["/ditto/live/?avatar=comfyui"]}
    live = sys.modules["ComfyUI-Ditto.nodes.live"].LIVE
    assert live.mounted
    avatar = live.hub.avatars.get(name)
    (models_id,) = [k for k, spec in prompt.items() if spec["class_type"] == "DittoLoadModels"]
    assert avatar.id == name and avatar.models is outputs[models_id][0]
    assert avatar.settings["output"] == "crop" and avatar.settings["emotion"] == "Neutral"
