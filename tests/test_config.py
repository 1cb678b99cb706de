"""The config pickle: restricted unpickling, DittoDefaults, the official structure."""

from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import pytest

from ditto_core import layout
from ditto_core.config import (
    AUDIO_FEAT_DIM,
    ConfigError,
    DittoDefaults,
    load_config,
    official_config_structure,
    restricted_loads,
    write_config_pickle,
)


def _online_like_kwargs() -> dict:
    """default_kwargs shaped like the online pkl reported in ditto-spec §7 (values made up here)."""
    rng = np.random.default_rng(0)
    return {
        "overlap_v2": 70,
        "sampling_timesteps": 10,
        "fix_kp_cond": 1,
        "fix_kp_cond_dim": [0, 202],
        "smo_k_d": 3,
        "overall_ctrl_info": {"delta_pitch": 2},
        "emo": rng.random((600, 8)).astype(np.float32),
        "delta_eye_arr": rng.standard_normal((15, 63)).astype(np.float32),
        "v_min_max_for_clip": rng.standard_normal((4, 265)),
        "online_mode": True,
        "fade_out_keys": ["exp", "t"],
        "some_future_key": np.float64(0.5),
    }


def _assert_same(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_payload_loads(protocol):
    obj = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.float64(1.25),
        "c": np.int64(-3),
        "d": [1, 2.5, "x", None, True, (1, 2)],
        "e": {"nested": np.zeros((2, 0), np.int8)},
        "f": {1, 2},
        "g": np.array([1.0, 2.0])[::2],
        "h": b"bytes",
    }
    got = restricted_loads(pickle.dumps(obj, protocol=protocol))
    for k in ("a", "b", "c", "e", "g"):
        _assert_same(obj[k], got[k])
    assert got["d"] == obj["d"] and got["f"] == {1, 2} and got["h"] == b"bytes"


def _with_module(data: bytes, old: str, new: str) -> bytes:
    """Rename a module in a protocol-2 pickle (GLOBAL opcodes are newline-terminated text)."""
    out = data.replace(f"c{old}\n".encode(), f"c{new}\n".encode())
    assert out != data or old == new
    return out


@pytest.mark.parametrize("core", ["numpy.core", "numpy._core"])
def test_numpy1_and_numpy2_module_names(core):
    arr = np.linspace(0, 1, 7, dtype=np.float32)
    scalar = np.float64(2.5)
    data = pickle.dumps({"arr": arr, "s": scalar}, protocol=2)
    globals_ = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    native = "numpy._core" if any(g.startswith("numpy._core") for g in globals_) else "numpy.core"
    data = _with_module(data, f"{native}.multiarray", f"{core}.multiarray")
    assert f"{core}.multiarray _reconstruct" in {
        arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"
    }
    got = restricted_loads(data)
    _assert_same(arr, got["arr"])
    assert got["s"] == scalar and isinstance(got["s"], np.float64)


class _Custom:
    pass


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize(
    "obj, forbidden",
    [
        ({"x": _Evil()}, "system"),
        ({"x": _Custom()}, "_Custom"),
        ({"f": os.path.join}, "join"),
        ({"x": np.array([_Custom()], dtype=object)}, "_Custom"),
    ],
)
def test_forbidden_globals_refused(tmp_path, obj, forbidden):
    path = tmp_path / "v0.4_hubert_cfg_pytorch.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and forbidden in msg and "refused" in msg


def test_corrupt_and_wrong_configs(tmp_path):
    good = pickle.dumps(official_config_structure({"emo": 3}), protocol=4)
    cases = {
        "trunc.pkl": (good[: len(good) // 2], "not a readable config pickle"),
        "garbage.pkl": (b"hello", "not a readable config pickle"),
        "list.pkl": (pickle.dumps([1, 2]), "expected a dict"),
        "partial.pkl": (pickle.dumps({"base_cfg": {}, "default_kwargs": {}}), "audio2motion_cfg"),
        "notdict.pkl": (pickle.dumps({"base_cfg": {}, "audio2motion_cfg": {}, "default_kwargs": 3}), "default_kwargs"),
    }
    for name, (data, fragment) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert str(p) in str(e.value) and fragment in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.pkl")


def test_official_code_defaults():
    # StreamSDK.setup fallbacks (ditto-spec §7); delta_eye_open_n 0 has no effect without delta_eye_arr
    d = DittoDefaults()
    expected = dict(
        sampling_timesteps=50, overlap_v2=10, smo_k_d=3, emo=4, crop_scale=2.3, crop_vy_ratio=-0.125,
        crop_vx_ratio=0, crop_flag_do_rot=True, max_size=1920, smo_k_s=13, fix_kp_cond=0, fix_kp_cond_dim=None,
        v_min_max_for_clip=None, relative_d=True, drive_eye=None, delta_eye_arr=None, delta_eye_open_n=0,
        flag_stitching=True, fade_type="", fade_out_keys=("exp",), overall_ctrl_info={}, use_d_keys=None, N_d=-1,
        template_n_frames=-1, online_mode=False, eye_f0_mode=False, ch_info=None, ctrl_info={},
    )
    assert set(DittoDefaults.field_names()) == set(expected)
    for k, v in expected.items():
        assert getattr(d, k) == v, k
    assert d.extra == {}
    # mutable defaults are not shared between instances
    d.overall_ctrl_info["delta_pitch"] = 1
    assert DittoDefaults().overall_ctrl_info == {}


def test_defaults_from_config_pickle(tmp_path):
    kw = _online_like_kwargs()
    path = write_config_pickle(tmp_path / "cfg.pkl", official_config_structure(kw))
    d = DittoDefaults.from_config(load_config(path))
    assert (d.overlap_v2, d.sampling_timesteps, d.fix_kp_cond, d.online_mode) == (70, 10, 1, True)
    assert d.fix_kp_cond_dim == [0, 202] and d.overall_ctrl_info == {"delta_pitch": 2}
    _assert_same(kw["emo"], d.emo)
    _assert_same(kw["delta_eye_arr"], d.delta_eye_arr)
    _assert_same(kw["v_min_max_for_clip"], d.v_min_max_for_clip)
    assert d.fade_out_keys == ("exp", "t")
    assert d.extra == {"some_future_key": 0.5}
    # untouched fields keep the code defaults
    assert (d.crop_scale, d.smo_k_s, d.relative_d, d.N_d) == (2.3, 13, True, -1)
    kwargs = d.to_kwargs()
    assert kwargs["some_future_key"] == 0.5 and kwargs["overlap_v2"] == 70 and "extra" not in kwargs
    with pytest.raises(ConfigError, match="default_kwargs"):
        DittoDefaults.from_config({"base_cfg": {}})


def test_official_structure_paths_and_dims(tmp_path):
    cfg = official_config_structure({"emo": 4}, device="cpu")
    a2m = cfg["audio2motion_cfg"]
    assert a2m["audio_feat_dim"] == AUDIO_FEAT_DIM == 1024 + 8 + 2 + 6 + 63 == 1103
    assert (a2m["motion_feat_dim"], a2m["seq_frames"], a2m["w2f_type"]) == (265, 80, "hubert")
    assert all(a2m[k] is True for k in ("use_emo", "use_sc", "use_eye_open", "use_eye_ball"))
    # the official parse_cfg joins each model_path with data_root = <models>/ditto_pytorch
    data_root = "ditto_pytorch"
    role_of = {
        "insightface_det_cfg": "face_detector", "landmark106_cfg": "landmark106", "landmark203_cfg": "landmark203",
        "appearance_extractor_cfg": "appearance_extractor", "motion_extractor_cfg": "motion_extractor",
        "stitch_network_cfg": "stitch_network", "warp_network_cfg": "warp_network", "decoder_cfg": "decoder",
        "hubert_cfg": "hubert",
    }
    for key, role in role_of.items():
        entry = cfg["base_cfg"][key]
        assert entry["device"] == "cpu"
        assert os.path.normpath(os.path.join(data_root, entry["model_path"])) == os.path.normpath(
            layout.BY_ROLE[role].release_path
        )
    assert os.path.join(data_root, a2m["model_path"]) == layout.BY_ROLE["lmdm"].release_path
    task = cfg["base_cfg"]["landmark478_cfg"]["task_path"]
    assert os.path.join(data_root, task) == layout.BY_ROLE["face_landmarker_task"].release_path
    # a written pickle is plain (protocol 4) and reads back through the restricted loader
    path = write_config_pickle(tmp_path / "sub/cfg.pkl", cfg)
    data = path.read_bytes()
    assert data[:2] == b"\x80\x04"
    assert pickle.loads(data) == load_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["cfg.pkl"]  # no temporary left behind
