"""Bad model, checkpoint and config files are refused at load with a DittoError naming the file (and the key), and the
command line reports each as one ``ditto: error:`` line with exit code 2. Bad files are made in tmp_path from copies
of the session's synthetic kit (the kit itself is never changed)."""

from __future__ import annotations

import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ditto_core import layout
from ditto_core.__main__ import main
from ditto_core.checkpoints import CheckpointError, convert_folder, load_model
from ditto_core.config import ConfigError, load_config
from ditto_core.errors import DittoError
from ditto_core.face.detect import FaceDetector
from ditto_core.face.eyes import BlazeFace, FaceMesh
from ditto_core.face.landmarks import Landmark106, Landmark203
from ditto_core.onnx_utils import OnnxModel, OnnxModelError, check_signature
from ditto_core.testing.kit import synthetic_config


def _kit_file(kit: Path, role: str) -> Path:
    return kit / layout.BY_ROLE[role].release_path


def _copy(kit: Path, role: str, dst_dir: Path) -> Path:
    dst = dst_dir / layout.BY_ROLE[role].filename
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_kit_file(kit, role), dst)
    return dst


def _models_dir(kit: Path, root: Path) -> Path:
    """A models folder of links to the kit's files (nothing copied; a test replaces one link by a bad file)."""
    for rel in [layout.SYNTHETIC_MARKER] + [f.release_path for f in layout.ALL_FILES if (kit / f.release_path).is_file()]:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(kit / rel, dst)
    return root


def _replace(models: Path, role: str, data: bytes) -> Path:
    p = models / layout.BY_ROLE[role].release_path
    p.unlink()
    p.write_bytes(data)
    return p


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ditto: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- checkpoints


def _stitch_obj(kit: Path) -> dict:
    return torch.load(str(_kit_file(kit, "stitch_network")), map_location="cpu", weights_only=True)


def test_nan_tensor_is_refused_with_file_and_key(synthetic_kit, tmp_path):
    obj = _stitch_obj(synthetic_kit)
    key = "module.mlp.2.weight"
    obj["retarget_shoulder"][key] = obj["retarget_shoulder"][key].clone()
    obj["retarget_shoulder"][key][0, 0] = float("nan")
    obj["retarget_shoulder"]["module.mlp.0.bias"] = obj["retarget_shoulder"]["module.mlp.0.bias"].clone()
    obj["retarget_shoulder"]["module.mlp.0.bias"][3] = float("inf")
    path = tmp_path / "stitch_network.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as e:
        load_model("stitch_network", path)
    msg = str(e.value)
    assert str(path) in msg and "stitch_network.pth" in msg
    assert "mlp.2.weight: 1 NaN of" in msg and "mlp.0.bias: 1 infinite of" in msg and "not finite" in msg



def test_convert_refuses_a_damaged_checkpoint_before_writing_it(synthetic_kit, tmp_path, capsys):
    """convert checks each checkpoint as loading does: a NaN weight names the file and key, and no output (nor a
    temporary) is written for it; the command says it in one line."""
    obj = _stitch_obj(synthetic_kit)
    key = "module.mlp.2.weight"
    obj["retarget_shoulder"][key] = obj["retarget_shoulder"][key].clone()
    obj["retarget_shoulder"][key][1, 2] = float("nan")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    torch.save(obj, src / "stitch_network.pth")
    with pytest.raises(CheckpointError, match=r"stitch_network\.pth: not usable as .*mlp\.2\.weight: 1 NaN of"):
        convert_folder(src, dst, log=None)
    assert not dst.exists() or list(dst.rglob("*")) == []
    assert main(["convert", str(src), str(dst)]) == 2
    assert "not finite" in _one_error_line(capsys)

def test_integer_tensor_where_float_expected(synthetic_kit, tmp_path):
    obj = _stitch_obj(synthetic_kit)
    key = "module.mlp.4.weight"
    obj["retarget_shoulder"][key] = obj["retarget_shoulder"][key].round().to(torch.int32)
    path = tmp_path / "stitch_network.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as e:
        load_model("stitch_network", path)
    msg = str(e.value)
    assert str(path) in msg and "mlp.4.weight: file int32 vs network float32" in msg and "dtype" in msg


def test_half_precision_checkpoint_is_accepted(synthetic_kit, tmp_path):
    obj = _stitch_obj(synthetic_kit)
    for dtype in (torch.float16, torch.bfloat16):
        half = {**obj, "retarget_shoulder": {k: v.to(dtype) for k, v in obj["retarget_shoulder"].items()}}
        path = tmp_path / f"{dtype}" / "stitch_network.pth"
        path.parent.mkdir()
        torch.save(half, path)
        model = load_model("stitch_network", path)
        assert next(model.parameters()).dtype == torch.float32


def test_truncated_pth(synthetic_kit, tmp_path):
    data = _kit_file(synthetic_kit, "stitch_network").read_bytes()
    path = tmp_path / "stitch_network.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_model("stitch_network", path)
    assert str(path) in str(e.value) and "truncated" in str(e.value)


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("payload", [b"", b"\x08\x07garbage-not-a-protobuf" * 50, "truncated"])
def test_unreadable_onnx(synthetic_kit, tmp_path, payload):
    path = tmp_path / "det_10g.onnx"
    if payload == "truncated":
        data = _kit_file(synthetic_kit, "face_detector").read_bytes()
        payload = data[: len(data) // 3]
    path.write_bytes(payload)
    with pytest.raises(OnnxModelError) as e:
        FaceDetector(path)
    assert isinstance(e.value, DittoError)
    assert str(path) in str(e.value) and "cannot load ONNX model" in str(e.value)


WRONG = [
    (FaceDetector, "face_detector", "hubert", "the face detector (face_detector"),
    (Landmark106, "landmark106", "face_detector", "the 106-point landmark model (landmark106"),
    (Landmark203, "landmark203", "landmark106", "the 203-point landmark model (landmark203"),
    (BlazeFace, "blaze_face", "face_mesh", "the BlazeFace detector of the eye features (blaze_face"),
    (FaceMesh, "face_mesh", "hubert", "the face mesh of the eye features (face_mesh"),
]


@pytest.mark.parametrize("cls, role, other, what", WRONG, ids=[w[1] for w in WRONG])
def test_onnx_of_another_model_is_refused(synthetic_kit, tmp_path, cls, role, other, what):
    cls(_kit_file(synthetic_kit, role))  # the right file opens
    path = tmp_path / layout.BY_ROLE[role].filename
    shutil.copyfile(_kit_file(synthetic_kit, other), path)
    with pytest.raises(OnnxModelError) as e:
        cls(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not {what}") and "expected 1 input" in msg and "the file has inputs" in msg
    assert "\n" not in msg


def test_hubert_as_detector_message(synthetic_kit, tmp_path):
    path = tmp_path / "det_10g.onnx"
    shutil.copyfile(_kit_file(synthetic_kit, "hubert"), path)
    with pytest.raises(OnnxModelError) as e:
        FaceDetector(path)
    assert str(e.value) == (
        f"{path}: not the face detector (face_detector: SCRFD, det_10g.onnx or insightface_det.onnx): expected "
        "1 input (1, 3, 512, 512) float and outputs including 3 x (?, 1), 3 x (?, 4), 3 x (?, 10); the file has "
        "inputs input_values (1, 6480) float and outputs encoding_out (20, 1024)"
    )


def test_one_input_of_the_wrong_rank(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3, 192])
    graph = helper.make_graph([helper.make_node("Identity", ["data"], ["fc1"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "2d106det.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxModelError, match=r"expected 1 input \(1, 3, 192, 192\).*inputs data \(1, 3, 192\)"):
        Landmark106(path)


def test_check_signature_rules(synthetic_kit):
    hub = OnnxModel(_kit_file(synthetic_kit, "hubert"))
    # the call to use for the HuBERT wrapper: (20, 1024) also fits a declared (1, 20, 1024)
    check_signature(hub, "the HuBERT audio encoder (hubert)", inputs=[(1, 6480)], outputs=[(20, 1024)])
    assert hub.expect("x", inputs=[(None, 6480)], outputs=[20 * 1024]) is hub
    with pytest.raises(OnnxModelError, match=r"not the HuBERT audio encoder \(hubert\): expected 1 input \(1, 16000\)"):
        hub.expect("the HuBERT audio encoder (hubert)", inputs=[(1, 16000)], outputs=[(20, 1024)])
    with pytest.raises(OnnxModelError, match="outputs including 2 x"):
        hub.expect("y", outputs=[(20, 1024), (20, 1024)])  # one output cannot serve two patterns
    det = OnnxModel(_kit_file(synthetic_kit, "face_detector"))  # symbolic dims: (1, 3, ?, ?), (n8, 1), ...
    det.expect("d", inputs=[(1, 3, 640, 640)], outputs=[(None, 10)] * 3 + [(8192, 1)])
    check_signature(object(), "anything", inputs=[(1,)])  # objects without declared I/O are not checked


# --------------------------------------------------------------------------- config


def _bad_config(tmp_path: Path, **changes) -> Path:
    cfg = synthetic_config(device="cpu")
    cfg["default_kwargs"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in cfg["default_kwargs"].items()}
    cfg["default_kwargs"].update(changes)
    path = tmp_path / "v0.4_hubert_cfg_pytorch.pkl"
    path.write_bytes(pickle.dumps(cfg, protocol=4))
    return path


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("sampling_timesteps", "fifty", "sampling_timesteps must be an integer in 1..1000, got 'fifty'"),
        ("overlap_v2", -3, "overlap_v2 must be an integer in 0..79, got -3"),
        ("crop_scale", math.nan, "crop_scale must be a finite number in 0.1..100, got nan"),
        ("smo_k_d", 2.5, "smo_k_d must be an integer in 0..1001, got 2.5"),
        ("crop_vy_ratio", math.inf, "crop_vy_ratio must be a finite number in -10..10, got inf"),
        ("emo", 9, "emo must be an emotion index 0-7"),
        ("fix_kp_cond_dim", [0, 300], "fix_kp_cond_dim[1] must be an integer in 0..265, got 300"),
        ("v_min_max_for_clip", [[0.0] * 265], "v_min_max_for_clip must be None or a (>=2, 265) array"),
        ("delta_eye_arr", [[math.nan] * 63], "delta_eye_arr must be None or a (n, 63) array of finite numbers"),
        ("flag_stitching", "yes", "flag_stitching must be True or False, got 'yes'"),
        ("overall_ctrl_info", {"delta_pitch": math.nan}, "overall_ctrl_info['delta_pitch'] must be a finite number"),
    ],
)
def test_config_values_are_checked(tmp_path, key, value, expected):
    path = _bad_config(tmp_path, **{key: value})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: default_kwargs: {expected}")


def test_good_config_and_dit_dims(tmp_path):
    load_config(_bad_config(tmp_path))
    cfg = synthetic_config(device="cpu")
    cfg["audio2motion_cfg"]["seq_frames"] = 64
    path = tmp_path / "dims.pkl"
    path.write_bytes(pickle.dumps(cfg))
    with pytest.raises(ConfigError, match=r"dims\.pkl: audio2motion_cfg: seq_frames must be 80 \(the released DiT's\), got 64"):
        load_config(path)


# --------------------------------------------------------------------------- convert


def test_convert_onto_a_file_and_from_a_file(synthetic_kit, tmp_path, capsys):
    src = tmp_path / "src"
    _copy(synthetic_kit, "stitch_network", src)
    dst_file = tmp_path / "taken"
    dst_file.write_text("x")
    with pytest.raises(CheckpointError, match="the destination must be a folder, but a file of that name exists"):
        convert_folder(src, dst_file, log=None)
    with pytest.raises(CheckpointError, match=r"taken is a file, not a folder"):
        convert_folder(src, dst_file / "sub" / "out", log=None)
    with pytest.raises(CheckpointError, match="the source must be a models folder, but it is a file"):
        convert_folder(dst_file, tmp_path / "out", log=None)
    assert dst_file.read_text() == "x" and not (tmp_path / "out").exists()
    for argv in (["convert", str(src), str(dst_file)], ["convert", str(src), str(dst_file / "d")],
                 ["convert", str(dst_file), str(tmp_path / "out")]):
        assert main(argv) == 2
        line = _one_error_line(capsys)
        assert str(dst_file) in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_convert_write_failure_leaves_nothing(synthetic_kit, tmp_path):
    src = tmp_path / "src"
    _copy(synthetic_kit, "stitch_network", src)
    dst = tmp_path / "dst"
    dst.mkdir()
    dst.chmod(0o500)
    try:
        with pytest.raises(CheckpointError) as e:
            convert_folder(src, dst, log=None)
        assert str(dst / "stitch_network.safetensors") in str(e.value) and "permission denied" in str(e.value)
    finally:
        dst.chmod(0o700)
    assert list(dst.iterdir()) == []


def test_convert_permission_denied_is_named(synthetic_kit, tmp_path, monkeypatch):
    import tempfile

    src = tmp_path / "src"
    _copy(synthetic_kit, "stitch_network", src)
    dst = tmp_path / "dst"

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointError) as e:
        convert_folder(src, dst, log=None)
    assert str(e.value) == f"{dst / 'stitch_network.safetensors'}: cannot write the file (permission denied)"
    assert list(dst.iterdir()) == []


def test_convert_disk_full_removes_the_temporary(synthetic_kit, tmp_path, monkeypatch):
    import safetensors.torch

    src = tmp_path / "src"
    _copy(synthetic_kit, "stitch_network", src)
    dst = tmp_path / "dst"

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(CheckpointError) as e:
        convert_folder(src, dst, log=None)
    assert str(e.value) == f"{dst / 'stitch_network.safetensors'}: cannot write the file (no space left on device)"
    assert list(dst.iterdir()) == []


# --------------------------------------------------------------------------- the command line


def _generate(models: Path, tmp_path: Path) -> list[str]:
    """``generate`` arguments with a real picture and a real wav (so only the models can be at fault)."""
    import cv2

    from conftest import face_image, write_wav

    cv2.imwrite(str(tmp_path / "face.png"), face_image()[:, :, ::-1])
    write_wav(tmp_path / "speech.wav", 0.5)
    return ["generate", "--models", str(models), "--no-download", "--device", "cpu", "-q",
            "--source", str(tmp_path / "face.png"), "--audio", str(tmp_path / "speech.wav"), "--out",
            str(tmp_path / "out.mp4")]


@pytest.mark.parametrize("role", ["decoder", "face_detector", "config"])
def test_cli_bad_file_in_models_folder(synthetic_kit, tmp_path, capsys, role):
    models = _models_dir(synthetic_kit, tmp_path / "models")
    if role == "decoder":
        data = _kit_file(synthetic_kit, role).read_bytes()
        bad = _replace(models, role, data[: len(data) // 2])
    elif role == "config":
        cfg = synthetic_config(device="cpu")
        cfg["default_kwargs"] = {"sampling_timesteps": "fifty"}
        bad = _replace(models, role, pickle.dumps(cfg))
    else:
        bad = _replace(models, role, _kit_file(synthetic_kit, "hubert").read_bytes())
    assert main(_generate(models, tmp_path)) == 2
    line = _one_error_line(capsys)
    assert str(bad) in line
    if role == "config":
        assert "sampling_timesteps must be an integer in 1..1000, got 'fifty'" in line
    assert not (tmp_path / "out.mp4").exists()
