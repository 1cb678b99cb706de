"""The official config pickle (``ditto_cfg/v0.4_hubert_cfg_pytorch.pkl``) and the run defaults.

The pickle is a plain dict ``{"base_cfg", "audio2motion_cfg", "default_kwargs"}`` of
dicts, lists, numbers, strings and numpy arrays (ditto-spec §7). It is read with a
restricted unpickler that can only build those (numpy arrays/scalars through numpy's own
reconstruct functions, under both the numpy 1 ``numpy.core`` and numpy 2 ``numpy._core``
names); any other global raises :class:`ConfigError` naming the file and the global. Every setting the loader
uses is checked as it is read (:func:`check_config_values`): a wrong type, an out-of-range value or a NaN raises
:class:`ConfigError` naming the file, the key as the official config spells it and what was expected.

:class:`DittoDefaults` holds the official code fallbacks of ``StreamSDK.setup`` and is
overridden by the pickle's ``default_kwargs`` (:meth:`DittoDefaults.from_config`). It keeps the official names; the
loader alone reads it and translates it into the product's settings
(:func:`ditto_core.runtime.models.release_defaults`, through :mod:`ditto_core.official`).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import math
import os
import pickle
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from ._util import write_atomically
from .conditions import COND_DIM
from .motion.vector import MOTION_DIM
from .errors import DittoError
from .validate import OptionError, check_bool, check_int, check_number

__all__ = [
    "ConfigError",
    "check_config_values",
    "load_config",
    "restricted_loads",
    "write_config_pickle",
    "write_config_safetensors",
    "read_config_safetensors",
    "config_safetensors_name",
    "DittoDefaults",
    "official_config_structure",
    "MOTION_FEAT_DIM",
    "AUDIO_FEAT_DIM",
    "SEQ_FRAMES",
]

#: the official config's names for the motion (265) and condition (1103) dims, and the DiT's window length
MOTION_FEAT_DIM = MOTION_DIM
AUDIO_FEAT_DIM = COND_DIM
SEQ_FRAMES = 80


class ConfigError(DittoError):
    """The config pickle is missing, unreadable, unsafe (a forbidden global) or not Ditto's structure."""


# --------------------------------------------------------------------------- restricted unpickler

_NUMPY_CORE_FUNCS = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_NUMPY_TYPES = {
    "ndarray",
    "dtype",
    "bool_",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longlong",
    "ulonglong",
    "intc",
    "uintc",
    "complex64",
    "complex128",
    "str_",
    "bytes_",
}
_BUILTINS = {"set", "frozenset", "complex", "bytes", "bytearray", "slice", "range"}


def _numpy_core_attr(submodule: str, name: str) -> Any:
    """``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core.<submodule>.<name>`` (numpy 1)."""
    for base in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{base}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"numpy has no {submodule}.{name}")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers, numbers, strings, None/bool and numpy arrays."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        parts = module.split(".")
        if len(parts) == 3 and parts[0] == "numpy" and parts[1] in ("core", "_core"):
            if (parts[2], name) in _NUMPY_CORE_FUNCS:
                return _numpy_core_attr(parts[2], name)
        elif module == "numpy" and name in _NUMPY_TYPES:
            import numpy

            if hasattr(numpy, name):
                return getattr(numpy, name)
        elif module in ("builtins", "__builtin__") and name in _BUILTINS:
            import builtins

            return getattr(builtins, name)
        elif module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        elif module == "_codecs" and name == "encode":  # protocol-2 bytes: encode(str, "latin1")
            import _codecs

            return _codecs.encode
        raise ConfigError(
            f"{self._source}: refused to load: the pickle needs the global {module}.{name}, which a Ditto "
            "config never contains (only dicts, lists, numbers, strings and numpy arrays are allowed)"
        )


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler; ``source`` names it in errors."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except ConfigError:
        raise
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... on a truncated/foreign file
        text = (str(e).strip().splitlines() or [""])[0][:160]
        raise ConfigError(
            f"{source}: not a readable config pickle (truncated, corrupt or of another format: "
            f"{type(e).__name__}{': ' + text if text else ''})"
        ) from None


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the official config: ``{"base_cfg", "audio2motion_cfg", "default_kwargs"}``, from the release's pickle or
    from its pickle-free copy (``.safetensors``, :func:`write_config_safetensors`; chosen by the suffix).

    Raises :class:`ConfigError` for a missing file, a forbidden global, a corrupt file or a
    file that is not a dict with those three entries.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found (expected {layout.BY_ROLE['config'].filename} or "
                          f"{config_safetensors_name()})")
    cfg = read_config_safetensors(p) if p.suffix.lower() == ".safetensors" else restricted_loads(p.read_bytes(), str(p))
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: not a Ditto config: it holds a {type(cfg).__name__}, expected a dict")
    missing = [k for k in ("base_cfg", "audio2motion_cfg", "default_kwargs") if k not in cfg]
    if missing:
        raise ConfigError(f"{p}: not a Ditto config: missing {missing} (found keys {sorted(map(str, cfg))[:8]})")
    for k in ("base_cfg", "audio2motion_cfg", "default_kwargs"):
        if not isinstance(cfg[k], dict):
            raise ConfigError(f"{p}: not a Ditto config: {k!r} is a {type(cfg[k]).__name__}, expected a dict")
    check_config_values(cfg, str(p))
    return cfg


#: ``audio2motion_cfg`` entries that describe the released DiT: they must be exactly these
_DIT_DIMS = {"motion_feat_dim": MOTION_FEAT_DIM, "audio_feat_dim": AUDIO_FEAT_DIM, "seq_frames": SEQ_FRAMES}
_DIT_FLAGS = ("use_emo", "use_sc", "use_eye_open", "use_eye_ball")


def _check_registration(kw: Mapping[str, Any]) -> None:
    """The source-registration settings of ``default_kwargs`` (official names), each only when present."""
    ints = {"max_size": (2, 16384), "template_n_frames": (-1, None), "smo_k_s": (1, 1001)}
    floats = {"crop_scale": (0.1, 100.0), "crop_vx_ratio": (-10.0, 10.0), "crop_vy_ratio": (-10.0, 10.0)}
    for key, (lo, hi) in ints.items():
        if key in kw:
            check_int(key, kw[key], lo, hi)
    for key, (flo, fhi) in floats.items():
        if key in kw:
            check_number(key, kw[key], flo, fhi)
    for key in ("crop_flag_do_rot", "eye_f0_mode", "online_mode"):
        if key in kw:
            check_bool(key, kw[key])


class _ShapeOf:
    """An array shown in an error message by its shape, not its values."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __repr__(self) -> str:
        return f"an array of shape {self.shape}"


def _check_emotion(value: Any) -> None:
    """``emo``: anything :meth:`Emotion.parse` takes, whose table is finite and non-negative."""
    import numpy as np  # noqa: PLC0415

    from .conditions import Emotion  # noqa: PLC0415

    expected = "an emotion index 0-7, a list of indices, a list of index lists or an (m, 8) array of probabilities"
    shown = _ShapeOf(tuple(np.shape(value))) if isinstance(value, np.ndarray) else value
    try:
        table = Emotion.parse(value).table
    except (ValueError, TypeError, IndexError, KeyError):
        raise OptionError("emo", expected, shown) from None
    if not bool(table.isfinite().all()) or bool((table < 0).any()):
        raise OptionError("emo", expected + " (finite, >= 0)", shown)


def check_config_values(cfg: Mapping[str, Any], source: str = "config") -> None:
    """Check every setting of a loaded config that the loader uses: the DiT's dims and flags in
    ``audio2motion_cfg``, and the ``default_kwargs`` (types, finiteness, ranges; through the same checks as
    :mod:`ditto_core.official`'s translation). Raises :class:`ConfigError` naming ``source``, the section, the key
    as the official config spells it and what was expected. Keys the loader does not know are not checked."""
    from . import official  # noqa: PLC0415  (imported here: it pulls in torch and the stitcher)

    section = "audio2motion_cfg"
    try:
        a2m = cfg.get("audio2motion_cfg", {})
        for key, want in _DIT_DIMS.items():
            if key in a2m and (
                isinstance(a2m[key], bool) or not isinstance(a2m[key], numbers.Integral) or a2m[key] != want
            ):
                raise OptionError(key, f"{want} (the released DiT's)", a2m[key])
        for key in _DIT_FLAGS:
            if key in a2m:
                check_bool(key, a2m[key])
        section = "default_kwargs"
        kw = cfg.get("default_kwargs", {})
        _check_registration(kw)
        if "emo" in kw:
            _check_emotion(kw["emo"])
        full = DittoDefaults.from_kwargs(kw).to_kwargs()
        official.audio2motion_config(full, online=False)
        if full.get("online_mode"):
            official.audio2motion_config(full, online=True)
        official.stitch_config(full)
        official.frame_controls([{}], 1, overall=full.get("overall_ctrl_info") or {})
    except OptionError as e:
        raise ConfigError(f"{source}: {section}: {e.name} must be {e.expected}, got {e.got!r}") from None
    except (ValueError, TypeError) as e:  # a check of the library's own classes, under its own words
        text = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(f"{source}: {section}: {text or type(e).__name__}") from None


def write_config_pickle(path: str | os.PathLike[str], cfg: Mapping[str, Any]) -> Path:
    """Write ``cfg`` as a plain pickle (protocol 4), atomically (temporary file, then rename)."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(pickle.dumps(dict(cfg), protocol=4)))


# --------------------------------------------------------------------------- pickle-free copy
#: ``format`` metadata entry of a pickle-free config
CONFIG_FORMAT = "ditto-config"
CONFIG_FORMAT_VERSION = 1


def config_safetensors_name(pickle_name: str | None = None) -> str:
    """The pickle-free copy's file name: the pickle's stem + ``.safetensors``
    (``v0.4_hubert_cfg_pytorch.safetensors``)."""
    name = pickle_name or layout.BY_ROLE["config"].filename
    return Path(name).with_suffix(".safetensors").name


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """A config value -> JSON data; numpy arrays go to ``arrays`` under ``where`` (their path in the config) and are
    referenced by it. Tuples, numpy scalars and dicts with non-string keys are tagged so they decode to themselves."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise ConfigError(f"{where}: an array of dtype {obj.dtype} cannot be written pickle-free")
        arrays[where] = np.ascontiguousarray(obj)
        return {"__array__": where}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in "biuf":
            raise ConfigError(f"{where}: a numpy scalar of dtype {obj.dtype} cannot be written pickle-free")
        return {"__scalar__": obj.dtype.str, "value": _encode(obj.item(), arrays, where)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, arrays, f"{where}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, arrays, f"{where}<key>"), _encode(v, arrays, f"{where}[{k!r}]")]
                              for k, v in obj.items()]}
    raise ConfigError(f"{where}: a {type(obj).__name__} cannot be written pickle-free")


def _decode(obj: Any, arrays: Mapping[str, np.ndarray], source: str) -> Any:
    """JSON data of :func:`_encode` -> the config value."""
    if isinstance(obj, list):
        return [_decode(v, arrays, source) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        key = obj["__array__"]
        if key not in arrays:
            raise ConfigError(f"{source}: the array {key!r} the settings refer to is missing")
        return np.array(arrays[key])
    if "__scalar__" in obj:
        return np.dtype(obj["__scalar__"]).type(_decode(obj["value"], arrays, source))
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays, source) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_hashable(_decode(k, arrays, source)): _decode(v, arrays, source) for k, v in obj["__items__"]}
    return {k: _decode(v, arrays, source) for k, v in obj.items()}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def write_config_safetensors(path: str | os.PathLike[str], cfg: Mapping[str, Any]) -> Path:
    """Write ``cfg`` without pickle, atomically: one safetensors file whose tensors are the config's numpy arrays
    (named by their place in the config, e.g. ``default_kwargs.delta_eye_arr``) and whose metadata holds the other
    settings as JSON (``config``), with ``format`` = ``ditto-config``. :func:`load_config` reads it back to the
    same structure, values, types and dtypes as the pickle."""
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {}
    settings = json.dumps(_encode(dict(cfg), arrays, "config"), allow_nan=False)
    meta = {"format": CONFIG_FORMAT, "format_version": str(CONFIG_FORMAT_VERSION), "config": settings}
    return write_atomically(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))


def read_config_safetensors(path: str | os.PathLike[str]) -> Any:
    """The config a :func:`write_config_safetensors` file holds (nothing is unpickled)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="np") as f:
            meta = dict(f.metadata() or {})
            if meta.get("format") != CONFIG_FORMAT:
                raise ConfigError(f"{p}: not a Ditto config (metadata format={meta.get('format')!r}, expected "
                                  f"{CONFIG_FORMAT!r})")
            if meta.get("format_version") != str(CONFIG_FORMAT_VERSION):
                raise ConfigError(f"{p}: config format version {meta.get('format_version')!r}; this version reads "
                                  f"{CONFIG_FORMAT_VERSION}")
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        data = json.loads(meta.get("config", ""))
    except SafetensorError as e:
        raise ConfigError(f"{p}: not a readable safetensors config: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{p}: the settings are not valid JSON: {e}") from None
    return _decode(data, arrays, str(p))


# --------------------------------------------------------------------------- defaults


@dataclass
class DittoDefaults:
    """The run settings of ``StreamSDK.setup(**kwargs)`` with the official code fallbacks.

    Units and shapes: ``emo`` is an int 0-7, a list, a list of lists or an ``(m, 8)`` array;
    ``delta_eye_arr`` an ``(n, 63)`` exp blink template; ``v_min_max_for_clip`` a ``(>=2, 265)``
    array (rows 0/1 = min/max); ``fix_kp_cond_dim`` ``[start, end)`` dims of the 265-vector.
    ``delta_eye_open_n`` only matters when ``delta_eye_arr`` is set (no blinks without a
    template). Keys of a config's ``default_kwargs`` that are not fields land in ``extra``.
    """

    # source registration
    max_size: int = 1920
    template_n_frames: int = -1
    crop_scale: float = 2.3
    crop_vx_ratio: float = 0.0  # accepted but ignored by the official crop
    crop_vy_ratio: float = -0.125
    crop_flag_do_rot: bool = True
    smo_k_s: int = 13
    # conditions
    emo: Any = 4
    eye_f0_mode: bool = False
    ch_info: Any = None
    # audio -> motion
    overlap_v2: int = 10
    fix_kp_cond: int = 0
    fix_kp_cond_dim: Any = None
    sampling_timesteps: int = 50
    online_mode: bool = False
    v_min_max_for_clip: Any = None
    smo_k_d: int = 3
    # motion stitching
    N_d: int = -1
    use_d_keys: Any = None
    relative_d: bool = True
    drive_eye: bool | None = None
    delta_eye_arr: Any = None
    delta_eye_open_n: Any = 0
    fade_type: str = ""
    fade_out_keys: tuple[str, ...] = ("exp",)
    flag_stitching: bool = True
    ctrl_info: Any = field(default_factory=dict)
    overall_ctrl_info: dict[str, Any] = field(default_factory=dict)
    #: config keys that are not fields above (kept, not an error)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The setting names (every field except ``extra``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "DittoDefaults":
        """The code defaults overridden by ``kwargs`` (unknown keys go to ``extra``)."""
        names = set(cls.field_names())
        known = {k: v for k, v in kwargs.items() if k in names}
        extra = {str(k): v for k, v in kwargs.items() if k not in names}
        if "fade_out_keys" in known and known["fade_out_keys"] is not None:
            known["fade_out_keys"] = tuple(known["fade_out_keys"])
        return cls(**known, extra=extra)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "DittoDefaults":
        """The code defaults overridden by ``cfg["default_kwargs"]`` (a loaded config pickle)."""
        if "default_kwargs" not in cfg:
            raise ConfigError(f"config has no 'default_kwargs' (found keys {sorted(map(str, cfg))[:8]})")
        kw = cfg["default_kwargs"]
        if not isinstance(kw, Mapping):
            raise ConfigError(f"config 'default_kwargs' is a {type(kw).__name__}, expected a dict")
        return cls.from_kwargs(kw)

    def to_kwargs(self) -> dict[str, Any]:
        """All settings as ``setup(**kwargs)`` keywords, ``extra`` merged in."""
        out = {name: getattr(self, name) for name in self.field_names()}
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------- official structure


def _data_root_relative(role: str) -> str:
    """The release path relative to ``data_root`` = ``ditto_pytorch`` (``models/x.pth``)."""
    rp = layout.BY_ROLE[role].release_path
    prefix = "ditto_pytorch/"
    return rp[len(prefix) :] if rp.startswith(prefix) else "../" + rp


def official_config_structure(
    default_kwargs: Mapping[str, Any] | None = None, device: str = "cuda"
) -> dict[str, Any]:
    """The nested structure of the official PyTorch config pickle, with ``default_kwargs``.

    Model paths are relative to ``data_root`` (``ditto_pytorch``), as the official
    ``parse_cfg`` expects. ``audio2motion_cfg``: motion_feat_dim 265, audio_feat_dim 1103,
    seq_frames 80, all conditions on, w2f_type "hubert".
    """
    r = _data_root_relative
    base_cfg = {
        "insightface_det_cfg": {"model_path": r("face_detector"), "device": device, "force_ori_type": False},
        "landmark106_cfg": {"model_path": r("landmark106"), "device": device, "force_ori_type": False},
        "landmark203_cfg": {"model_path": r("landmark203"), "device": device, "force_ori_type": False},
        "landmark478_cfg": {
            "blaze_face_model_path": "",
            "face_mesh_model_path": "",
            "task_path": r("face_landmarker_task"),
            "device": device,
            "force_ori_type": True,
        },
        "appearance_extractor_cfg": {"model_path": r("appearance_extractor"), "device": device},
        "motion_extractor_cfg": {"model_path": r("motion_extractor"), "device": device},
        "stitch_network_cfg": {"model_path": r("stitch_network"), "device": device},
        "warp_network_cfg": {"model_path": r("warp_network"), "device": device},
        "decoder_cfg": {"model_path": r("decoder"), "device": device},
        "hubert_cfg": {"model_path": r("hubert"), "device": device, "force_ori_type": False},
    }
    audio2motion_cfg = {
        "model_path": r("lmdm"),
        "device": device,
        "motion_feat_dim": MOTION_FEAT_DIM,
        "audio_feat_dim": AUDIO_FEAT_DIM,
        "seq_frames": SEQ_FRAMES,
        "use_emo": True,
        "use_sc": True,
        "use_eye_open": True,
        "use_eye_ball": True,
        "w2f_type": "hubert",
    }
    return {
        "base_cfg": base_cfg,
        "audio2motion_cfg": audio2motion_cfg,
        "default_kwargs": dict(default_kwargs or {}),
    }
