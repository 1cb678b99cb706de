"""Checkpoint reading, checking, finding and conversion (ditto_core.checkpoints, `convert` command)."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ditto_core import layout
from ditto_core.__main__ import main
from ditto_core.config import load_config, official_config_structure
from ditto_core.checkpoints import (
    MODELS,
    CheckpointError,
    UnsafePathError,
    check_state_dict,
    convert_folder,
    find_model_file,
    load_model,
    load_state_dict,
    resolve_in_models_dir,
)
from ditto_core.models.stitching import StitchingNetwork
from ditto_core.testing.weight_rule import apply_weight_rule

SALT = "test-checkpoints"


def _stitch_sd() -> OrderedDict[str, torch.Tensor]:
    return apply_weight_rule(StitchingNetwork(), SALT).state_dict()


def _mlp_sd(sizes: list[int], seed: int) -> OrderedDict[str, torch.Tensor]:
    """A LivePortrait-style ``mlp.{0,2,..}`` state_dict with the given layer sizes."""
    g = torch.Generator().manual_seed(seed)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i in range(len(sizes) - 1):
        sd[f"mlp.{2 * i}.weight"] = torch.randn(sizes[i + 1], sizes[i], generator=g)
        sd[f"mlp.{2 * i}.bias"] = torch.randn(sizes[i + 1], generator=g)
    return sd


def _official_stitch_file(path: Path, sd=None, prefix: str = "module.") -> Path:
    """The official stitch_network.pth structure: three DDP-wrapped MLPs, only retarget_shoulder used."""
    sd = _stitch_sd() if sd is None else sd
    obj = {
        "retarget_shoulder": OrderedDict((prefix + k, v) for k, v in sd.items()),
        "retarget_mouth": OrderedDict(("module." + k, v) for k, v in _mlp_sd([65, 128, 128, 64, 63], 1).items()),
        "retarget_eye": OrderedDict(
            ("module." + k, v) for k, v in _mlp_sd([66, 256, 256, 128, 128, 64, 63], 2).items()
        ),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _fake_lmdm_sd(dtype=torch.float32) -> OrderedDict[str, torch.Tensor]:
    """A few DiT-like entries; the rotary buffers share one tensor, as in the official file."""
    g = torch.Generator().manual_seed(3)
    freqs = torch.arange(8, dtype=dtype)
    return OrderedDict(
        [
            ("null_cond_embed", torch.randn(1, 80, 16, generator=g).to(dtype)),
            ("rotary.freqs", freqs),
            ("cond_encoder.0.rotary.freqs", freqs),
            ("seqTransDecoder.stack.0.linear1.weight", torch.randn(32, 16, generator=g).to(dtype)),
            ("seqTransDecoder.stack.0.film1.block.1.weight", torch.randn(32, 16, generator=g)[:, ::2].to(dtype)),
            ("final_layer.weight", torch.randn(265, 16, generator=g).to(dtype)),
        ]
    )


def _decoder_like_sd() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(
        [
            ("fc.weight", torch.zeros(512, 256, 3, 3)),
            ("G_middle_0.conv_0.weight_orig", torch.zeros(512, 512, 3, 3)),
            ("G_middle_0.conv_0.weight_u", torch.zeros(512)),
            ("conv_img.0.weight", torch.zeros(3, 64, 3, 3)),
        ]
    )


# --------------------------------------------------------------------------- registry


def test_registry_matches_layout():
    for role, spec in MODELS.items():
        assert spec.filename == layout.BY_ROLE[role].filename
        assert spec.release_path == layout.BY_ROLE[role].release_path
        assert spec.filename in spec.label
    assert MODELS["lmdm"].label == "the Ditto DiT motion decoder, lmdm_v0.4_hubert.pth"


# --------------------------------------------------------------------------- loading


def test_official_stitch_file_loads_into_network(tmp_path):
    sd = _stitch_sd()
    path = _official_stitch_file(tmp_path / "stitch_network.pth", sd)
    got = load_state_dict(path, "stitch_network")
    assert list(got) == list(sd)
    for k in sd:
        assert torch.equal(got[k], sd[k])
    model = load_model("stitch_network", path)
    assert not model.training
    ref = StitchingNetwork()
    ref.load_state_dict(sd)
    kp_s = torch.randn(2, 21, 3, generator=torch.Generator().manual_seed(5))
    kp_d = torch.randn(2, 21, 3, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.equal(model(kp_s, kp_d), ref(kp_s, kp_d))


def test_stitch_without_ddp_prefix_and_plain_state_dict(tmp_path):
    sd = _stitch_sd()
    a = _official_stitch_file(tmp_path / "a.pth", sd, prefix="")
    b = tmp_path / "b.pth"
    torch.save(sd, b)
    for p in (a, b):
        got = load_state_dict(p, "stitch_network")
        assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


def test_load_model_device_and_dtype(tmp_path):
    path = _official_stitch_file(tmp_path / "stitch_network.pth")
    model = load_model("stitch_network", path, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.mlp[0].weight.device.type == "cpu"


def test_lmdm_wrapper_unwrapped(tmp_path):
    sd = _fake_lmdm_sd()
    path = tmp_path / "lmdm_v0.4_hubert.pth"
    torch.save({"model_state_dict": sd}, path)
    got = load_state_dict(path, "lmdm")
    assert list(got) == list(sd)
    assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_missing_file_names_path_and_model(tmp_path):
    p = tmp_path / "nowhere" / "lmdm_v0.4_hubert.pth"
    with pytest.raises(CheckpointError) as e:
        load_state_dict(p, "lmdm")
    msg = str(e.value)
    assert str(p) in msg and "not found" in msg
    assert "the Ditto DiT motion decoder, lmdm_v0.4_hubert.pth" in msg


def test_unknown_role():
    with pytest.raises(ValueError, match="unknown model role"):
        load_state_dict("x.pth", "vae")


@pytest.mark.parametrize(
    "given_as, content, other",
    [
        ("stitch_network", "decoder", "the LivePortrait SPADE decoder, decoder.pth"),
        ("motion_extractor", "stitch", "the LivePortrait stitching network, stitch_network.pth"),
        ("decoder", "lmdm", "the Ditto DiT motion decoder, lmdm_v0.4_hubert.pth"),
        ("lmdm", "decoder", "the LivePortrait SPADE decoder, decoder.pth"),
    ],
)
def test_file_of_another_model_is_named(tmp_path, given_as, content, other):
    path = tmp_path / "file.pth"
    if content == "decoder":
        torch.save(_decoder_like_sd(), path)
    elif content == "stitch":
        _official_stitch_file(path)
    else:
        torch.save({"model_state_dict": _fake_lmdm_sd()}, path)
    with pytest.raises(CheckpointError) as e:
        load_state_dict(path, given_as)
    msg = str(e.value)
    assert str(path) in msg
    assert f"this is {other}" in msg
    assert MODELS[given_as].label in msg


def _expect_mismatch(tmp_path, sd, *fragments):
    path = _official_stitch_file(tmp_path / "stitch_network.pth", sd)
    with pytest.raises(CheckpointError) as e:
        load_model("stitch_network", path)
    msg = str(e.value)
    assert str(path) in msg and "the LivePortrait stitching network, stitch_network.pth" in msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_missing_key(tmp_path):
    sd = _stitch_sd()
    del sd["mlp.6.bias"]
    _expect_mismatch(tmp_path, sd, "1 missing keys", "mlp.6.bias", "8 entries expected, 7 in the file")


def test_unexpected_key(tmp_path):
    sd = _stitch_sd()
    sd["mlp.8.weight"] = torch.zeros(3, 65)
    sd["mlp.8.bias"] = torch.zeros(3)
    _expect_mismatch(tmp_path, sd, "2 unexpected keys", "mlp.8.weight", "mlp.8.bias")


def test_shape_mismatch(tmp_path):
    sd = _stitch_sd()
    sd["mlp.0.weight"] = torch.zeros(128, 125)
    _expect_mismatch(tmp_path, sd, "1 shape mismatches", "mlp.0.weight: file (128, 125) vs network (128, 126)")


def test_many_missing_keys_are_abbreviated():
    ref = {f"k{i}": torch.zeros(1) for i in range(12)}
    with pytest.raises(CheckpointError) as e:
        check_state_dict({}, ref, "x.pth", "decoder")
    msg = str(e.value)
    assert "12 missing keys" in msg and "k0, k1, k2, k3, k4, ... (+7)" in msg and "k11" not in msg


def test_truncated_file(tmp_path):
    good = _official_stitch_file(tmp_path / "good.pth")
    data = good.read_bytes()
    bad = tmp_path / "stitch_network.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_model("stitch_network", bad)
    msg = str(e.value)
    assert str(bad) in msg and "truncated" in msg and "stitch_network.pth" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "payload", [b"this is not a checkpoint at all\n" * 20, b"\x80\x02garbage", b"PK\x03\x04junk" * 10, b"\x00"]
)
def test_garbage_file(tmp_path, payload):
    bad = tmp_path / "decoder.pth"
    bad.write_bytes(payload)
    with pytest.raises(CheckpointError) as e:
        load_state_dict(bad, "decoder")
    msg = str(e.value)
    assert str(bad) in msg and "not a readable PyTorch checkpoint" in msg and "decoder.pth" in msg


def test_empty_file(tmp_path):
    bad = tmp_path / "decoder.pth"
    bad.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_state_dict(bad, "decoder")


class _Payload:
    """Unpickling this would create a file (the marker): weights_only must refuse it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _Custom:
    pass


def test_weights_only_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "stitch_network.pth"
    torch.save({"retarget_shoulder": {"mlp.0.weight": torch.zeros(1)}, "x": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError) as e:
        load_state_dict(path, "stitch_network")
    assert "refused" in str(e.value) and "weights_only" in str(e.value)
    assert not marker.exists()

    path2 = tmp_path / "decoder.pth"
    torch.save({"fc.weight": torch.zeros(1), "obj": _Custom()}, path2)
    with pytest.raises(CheckpointError) as e:
        load_state_dict(path2, "decoder")
    assert "_Custom" in str(e.value) and str(path2) in str(e.value)


def test_non_tensor_content(tmp_path):
    path = tmp_path / "decoder.pth"
    torch.save({"a": 1, "b": [2]}, path)
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_state_dict(path, "decoder")


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "decoder.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_state_dict(path, "decoder")


# --------------------------------------------------------------------------- conversion


def _release_tree(root: Path) -> dict[str, object]:
    sd = _stitch_sd()
    _official_stitch_file(root / "ditto_pytorch/models/stitch_network.pth", sd)
    lmdm = _fake_lmdm_sd(torch.float16)
    torch.save({"model_state_dict": lmdm}, root / "ditto_pytorch/models/lmdm_v0.4_hubert.pth")
    (root / "ditto_pytorch/aux_models").mkdir(parents=True)
    (root / "ditto_pytorch/aux_models/det_10g.onnx").write_bytes(b"onnx-bytes\x00\x01")
    (root / "ditto_cfg").mkdir()
    cfg = official_config_structure({"sampling_timesteps": 25, "delta_eye_arr": np.arange(126.0).reshape(2, 63)})
    (root / "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl").write_bytes(pickle.dumps(cfg))
    torch.save({"x": torch.zeros(1)}, root / "ditto_pytorch/models/not_official.pth")
    (root / ".cache").mkdir()
    (root / ".cache/lock").write_text("x")
    return {"stitch": sd, "lmdm": lmdm}


def test_convert_cli_round_trip(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    ref = _release_tree(src)
    assert main(["convert", src, dst]) == 0
    out = capsys.readouterr().out
    assert "converted ditto_pytorch/models/stitch_network.pth -> ditto_pytorch/models/stitch_network.safetensors" in out
    assert "skipped ditto_pytorch/models/not_official.pth" in out

    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert files == [
        "ditto_cfg/v0.4_hubert_cfg_pytorch.safetensors",  # the config pickle's pickle-free copy (not the pickle)
        "ditto_pytorch/aux_models/det_10g.onnx",
        "ditto_pytorch/models/lmdm_v0.4_hubert.safetensors",
        "ditto_pytorch/models/stitch_network.safetensors",
    ]
    assert (dst / "ditto_pytorch/aux_models/det_10g.onnx").read_bytes() == (src / "ditto_pytorch/aux_models/det_10g.onnx").read_bytes()
    converted_cfg = load_config(dst / "ditto_cfg/v0.4_hubert_cfg_pytorch.safetensors")
    assert converted_cfg["default_kwargs"]["sampling_timesteps"] == 25
    assert np.array_equal(converted_cfg["default_kwargs"]["delta_eye_arr"], np.arange(126.0).reshape(2, 63))

    # the safetensors hold exactly the tensors the loader takes from the .pth (same dtype, same values)
    for role, rel in (
        ("stitch_network", "ditto_pytorch/models/stitch_network"),
        ("lmdm", "ditto_pytorch/models/lmdm_v0.4_hubert"),
    ):
        from_pth = load_state_dict(src / f"{rel}.pth", role)
        from_st = load_state_dict(dst / f"{rel}.safetensors", role)
        assert sorted(from_st) == sorted(from_pth)  # safetensors stores the keys sorted
        for k in from_pth:
            assert from_st[k].dtype == from_pth[k].dtype
            assert torch.equal(from_st[k], from_pth[k])
        with safe_open(str(dst / f"{rel}.safetensors"), framework="pt") as f:
            assert f.metadata()["ditto_role"] == role
    assert load_state_dict(dst / "ditto_pytorch/models/lmdm_v0.4_hubert.safetensors", "lmdm")[
        "null_cond_embed"
    ].dtype == torch.float16

    model = load_model("stitch_network", dst / "ditto_pytorch/models/stitch_network.safetensors")
    for k, v in ref["stitch"].items():
        assert torch.equal(model.state_dict()[k], v)
    assert find_model_file(dst, "stitch_network") == dst / "ditto_pytorch/models/stitch_network.safetensors"


def test_convert_flat_skip_other_and_in_place(tmp_path):
    src = tmp_path / "flat"
    _official_stitch_file(src / "stitch_network.pth")
    (src / "landmark203.onnx").write_bytes(b"x")
    rep = convert_folder(src, tmp_path / "out", copy_other=False, log=None)
    assert rep.converted == [("stitch_network.pth", "stitch_network.safetensors")]
    assert rep.skipped == ["landmark203.onnx"] and rep.copied == []
    assert not (tmp_path / "out/landmark203.onnx").exists()
    # in place: the .safetensors lands beside the .pth, nothing is copied onto itself
    rep = convert_folder(src, src, log=None)
    assert (src / "stitch_network.safetensors").is_file() and (src / "stitch_network.pth").is_file()
    assert find_model_file(src, "stitch_network") == src / "stitch_network.safetensors"


def test_convert_destination_inside_source(tmp_path):
    src = tmp_path / "m"
    _official_stitch_file(src / "stitch_network.pth")
    convert_folder(src, src / "st", log=None)
    rep = convert_folder(src, src / "st", log=None)  # a second run must not walk into its own output
    assert [c[0] for c in rep.converted] == ["stitch_network.pth"]
    assert not (src / "st/st").exists()


def test_convert_cli_error_exit_code(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "decoder.pth").write_bytes(b"garbage" * 10)
    assert main(["convert", src, tmp_path / "dst"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ditto: error: ") and "decoder.pth" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert not list((tmp_path / "dst").rglob("*.safetensors")) if (tmp_path / "dst").exists() else True


def test_convert_missing_source(tmp_path, capsys):
    assert main(["convert", tmp_path / "none", tmp_path / "dst"]) == 2
    assert "source models folder not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- finding


def test_find_model_file_layouts(tmp_path):
    assert find_model_file(tmp_path, "decoder") is None
    assert find_model_file(tmp_path / "absent", "decoder") is None
    flat = tmp_path / "decoder.pth"
    flat.write_bytes(b"1")
    assert find_model_file(tmp_path, "decoder") == flat
    rel = tmp_path / "ditto_pytorch/models/decoder.pth"
    rel.parent.mkdir(parents=True)
    rel.write_bytes(b"1")
    assert find_model_file(tmp_path, "decoder") == rel  # the release folder comes before the flat one
    st = tmp_path / "decoder.safetensors"
    st.write_bytes(b"1")
    assert find_model_file(tmp_path, "decoder") == st  # safetensors beats pth of the same stem
    # config and aux files in their release folders; the ditto_onnx variant name of the detector
    cfg = tmp_path / "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl"
    cfg.parent.mkdir()
    cfg.write_bytes(b"1")
    assert find_model_file(tmp_path, "config") == cfg
    det = tmp_path / "ditto_onnx/insightface_det.onnx"
    det.parent.mkdir()
    det.write_bytes(b"1")
    assert find_model_file(tmp_path, "face_detector") == det
    off = tmp_path / "ditto_pytorch/aux_models/det_10g.onnx"
    off.parent.mkdir()
    off.write_bytes(b"1")
    assert find_model_file(tmp_path, "face_detector") == off
    with pytest.raises(ValueError, match="unknown model role"):
        find_model_file(tmp_path, "vae")


@pytest.mark.parametrize("name", ["../decoder.pth", "a/../../decoder.pth", "/etc/passwd", "..", "C:/x.pth", ""])
def test_names_cannot_escape_models_dir(tmp_path, name):
    with pytest.raises(UnsafePathError) as e:
        find_model_file(tmp_path, "decoder", name=name)
    assert isinstance(e.value, CheckpointError) and repr(name) in str(e.value)


def test_names_inside_models_dir(tmp_path):
    p = tmp_path / "mine/decoder_v2.pth"
    p.parent.mkdir()
    p.write_bytes(b"1")
    assert find_model_file(tmp_path, "decoder", name="mine/decoder_v2.pth") == p
    assert find_model_file(tmp_path, "decoder", name="mine/../mine/decoder_v2.pth") == p
    assert find_model_file(tmp_path, "decoder", name="mine/absent.pth") is None
    assert resolve_in_models_dir(tmp_path, "a/b.pth") == tmp_path / "a/b.pth"


# --------------------------------------------------------------------------- the real networks


def test_every_network_is_recognised_by_its_keys():
    """Each network's own state_dict carries its signature and no other network's."""
    from ditto_core.checkpoints import identify_checkpoint

    for role, spec in MODELS.items():
        sd = spec.build().state_dict()
        assert [r for r, s in MODELS.items() if s.matches(sd)] == [role]
        assert identify_checkpoint(sd) == role


@pytest.mark.slow
def test_official_dit_file_round_trip(tmp_path):
    """lmdm_v0.4_hubert.pth structure ({"model_state_dict": ...}, 249 keys, 11 shared rotary buffers)
    -> load_model, and -> .safetensors -> load_model (about 10 s: 191 MB written twice)."""
    sd = MODELS["lmdm"].build().state_dict()
    assert len(sd) == 249
    src = tmp_path / "src/ditto_pytorch/models"
    src.mkdir(parents=True)
    torch.save({"model_state_dict": sd}, src / "lmdm_v0.4_hubert.pth")
    model = load_model("lmdm", src / "lmdm_v0.4_hubert.pth")
    assert all(torch.equal(model.state_dict()[k], sd[k]) for k in sd)
    convert_folder(tmp_path / "src", tmp_path / "dst", log=None)
    st = find_model_file(tmp_path / "dst", "lmdm")
    assert st == tmp_path / "dst/ditto_pytorch/models/lmdm_v0.4_hubert.safetensors"
    model2 = load_model("lmdm", st)
    assert all(torch.equal(model2.state_dict()[k], sd[k]) for k in sd)
