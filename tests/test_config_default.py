"""The release config is part of a default install: required (downloaded by default, listed when missing), and
convertible to a pickle-free copy that the loader prefers and reads to exactly the pickle's content."""

from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import pytest
import torch

from ditto_core import layout
from ditto_core.__main__ import main
from ditto_core.checkpoints import convert_folder, find_model_file
from ditto_core.config import (
    DittoDefaults,
    config_safetensors_name,
    load_config,
    read_config_safetensors,
    restricted_loads,
    write_config_pickle,
    write_config_safetensors,
)
from ditto_core.hub import default_roles, missing_files

CONFIG = layout.BY_ROLE["config"]


def _same(a, b, where="config"):
    """Deep equality with types and dtypes (arrays by value)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def _kit_without_config(kit, folder):
    """A models folder of links to the kit's files, without its config."""
    for f in kit.rglob("*"):
        if f.is_file() and f.name != CONFIG.filename:
            target = folder / f.relative_to(kit)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return folder


def test_the_config_is_a_default_file():
    assert "config" in default_roles() and CONFIG.required


def test_generate_names_a_missing_config(synthetic_kit, tmp_path, capsys):
    from conftest import face_image, write_wav
    import cv2

    models = _kit_without_config(synthetic_kit, tmp_path / "models")
    assert [f.role for f in missing_files(models)] == ["config"]
    cv2.imwrite(str(tmp_path / "p.png"), face_image())
    write_wav(tmp_path / "s.wav", 0.2)
    code = main(["generate", "--source", str(tmp_path / "p.png"), "--audio", str(tmp_path / "s.wav"), "--out",
                 str(tmp_path / "o.mp4"), "--models", str(models), "--no-download"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ditto: error: 1 Ditto model file missing") and CONFIG.filename in err
    assert not (tmp_path / "o.mp4").exists()


def test_convert_writes_a_pickle_free_config_the_loader_prefers(synthetic_kit, tmp_path):
    src = tmp_path / "src"
    pkl = src / CONFIG.release_path
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes((synthetic_kit / CONFIG.release_path).read_bytes())
    old = os.umask(0o022)
    try:
        report = convert_folder(src, src, log=None)  # in place: beside the pickle
    finally:
        os.umask(old)
    out = pkl.with_name(config_safetensors_name())
    assert report.converted == [(CONFIG.release_path, out.relative_to(src).as_posix())]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # an ordinary file, not mkstemp's 0600
    assert find_model_file(src, "config") == out  # preferred over the pickle
    from_pickle, from_copy = load_config(pkl), load_config(out)
    _same(from_pickle, from_copy)
    _same(DittoDefaults.from_config(from_pickle), DittoDefaults.from_config(from_copy))
    assert b"pickle" not in out.read_bytes()[:8] and out.read_bytes()[:1] != b"\x80"  # not a pickle stream


def test_models_load_without_the_pickle_with_identical_defaults(synthetic_kit, synthetic_models, tmp_path):
    from ditto_core.runtime import DittoModels

    folder = _kit_without_config(synthetic_kit, tmp_path / "models")
    copy = folder / CONFIG.release_path
    write_config_safetensors(copy.with_name(config_safetensors_name()), load_config(synthetic_kit / CONFIG.release_path))
    models = DittoModels.load(folder, device="cpu", precision="fp32", download=False, progress=False)
    assert models.files["config"].suffix == ".safetensors" and not copy.exists()
    _same(models.release, synthetic_models.release)


@pytest.mark.parametrize("value", [
    np.float32(0.25), np.int64(-3), np.arange(6, dtype=np.int16).reshape(2, 3), (1, [2.5, None], "x"),
    {3: "int key"}, float("inf"), [], {}, True, np.zeros((0, 63), np.float32),
])
def test_pickle_free_round_trip_keeps_types(value, tmp_path):
    cfg = {"base_cfg": {}, "audio2motion_cfg": {}, "default_kwargs": {"v": value}}
    path = write_config_safetensors(tmp_path / "c.safetensors", cfg)
    _same(restricted_loads(write_config_pickle(tmp_path / "c.pkl", cfg).read_bytes()), read_config_safetensors(path))


def test_pickle_free_refuses_what_it_cannot_hold(tmp_path):
    from ditto_core.config import ConfigError

    with pytest.raises(ConfigError, match=r"config.default_kwargs.v: a set cannot be written pickle-free"):
        write_config_safetensors(tmp_path / "c.safetensors", {"default_kwargs": {"v": {1, 2}}})
    assert list(tmp_path.iterdir()) == []
