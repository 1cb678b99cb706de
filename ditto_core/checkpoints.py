"""Find, read, check and convert the official Ditto checkpoints.

The six PyTorch networks of the release (``ditto_pytorch/models/*.pth``) are read
with ``torch.load(..., map_location="cpu", weights_only=True)`` (never a full unpickle)
or from a ``.safetensors`` file holding the same tensors (see :func:`convert_folder`).
Each role in :data:`MODELS` knows its class, its official file name and how its
state_dict sits inside the file:

* the DiT (``lmdm``): ``checkpoint["model_state_dict"]``
* the stitching MLP (``stitch_network``): ``checkpoint["retarget_shoulder"]`` with the
  DDP ``module.`` prefix stripped (the file also holds LivePortrait's unused
  ``retarget_mouth`` / ``retarget_eye``)
* the other four: the file is the state_dict

A ``.safetensors`` file always holds the unwrapped state_dict. Every problem with a file
raises :class:`CheckpointError`, whose message names the file and the model it should be.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import torch
from torch import nn

from . import layout
from ._util import write_atomically
from .config import config_safetensors_name, load_config, write_config_safetensors
from .errors import DittoError

__all__ = [
    "CheckpointError",
    "UnsafePathError",
    "ModelSpec",
    "MODELS",
    "SEARCH_DIRS",
    "load_state_dict",
    "check_finite",
    "check_state_dict",
    "load_model",
    "identify_checkpoint",
    "find_model_file",
    "resolve_in_models_dir",
    "ConvertReport",
    "convert_folder",
]


class CheckpointError(DittoError):
    """A checkpoint file is missing, unreadable, of another model, or does not fit its network."""


class UnsafePathError(CheckpointError, ValueError):
    """A file name would resolve outside the models folder (absolute, or escaping with ``..``)."""


@dataclass(frozen=True)
class ModelSpec:
    """How one official network is built and where its state_dict sits in the release file."""

    role: str  #: the project's name (a key of ``layout.BY_ROLE``)
    description: str  #: words for error messages, e.g. "the Ditto DiT motion decoder"
    module: str  #: module of the class, imported only when a model is built
    class_name: str
    wrapper_key: str | None = None  #: top-level key holding the state_dict in the .pth, or None
    strip_prefix: str = ""  #: prefix removed from every key after unwrapping (DDP ``module.``)
    #: key prefixes (or exact keys) that only this network has; used to recognise a file of another model
    signature: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        """The official file name, e.g. ``lmdm_v0.4_hubert.pth``."""
        return layout.BY_ROLE[self.role].filename

    @property
    def release_path(self) -> str:
        """The path inside the hub repository, e.g. ``ditto_pytorch/models/decoder.pth``."""
        return layout.BY_ROLE[self.role].release_path

    @property
    def label(self) -> str:
        """``"the Ditto DiT motion decoder, lmdm_v0.4_hubert.pth"``."""
        return f"{self.description}, {self.filename}"

    def build(self) -> nn.Module:
        """A fresh network with the official hyper-parameters (random weights, CPU, float32)."""
        cls = getattr(importlib.import_module(self.module), self.class_name)
        return cls()

    def matches(self, keys: set[str] | Mapping[str, object]) -> bool:
        """Whether a set of (unwrapped) state_dict keys carries this network's signature."""
        return any(k == s or k.startswith(s) for k in keys for s in self.signature)


MODELS: dict[str, ModelSpec] = {
    "appearance_extractor": ModelSpec(
        "appearance_extractor",
        "the LivePortrait appearance feature extractor",
        "ditto_core.models.appearance",
        "AppearanceFeatureExtractor",
        signature=("resblocks_3d.", "first.conv."),
    ),
    "motion_extractor": ModelSpec(
        "motion_extractor",
        "the LivePortrait motion extractor",
        "ditto_core.models.motion_extractor",
        "MotionExtractor",
        signature=("detector.",),
    ),
    "warp_network": ModelSpec(
        "warp_network",
        "the LivePortrait warping network",
        "ditto_core.models.warping",
        "WarpingNetwork",
        signature=("dense_motion_network.",),
    ),
    "decoder": ModelSpec(
        "decoder",
        "the LivePortrait SPADE decoder",
        "ditto_core.models.spade_decoder",
        "SPADEDecoder",
        signature=("G_middle_", "conv_img."),
    ),
    "stitch_network": ModelSpec(
        "stitch_network",
        "the LivePortrait stitching network",
        "ditto_core.models.stitching",
        "StitchingNetwork",
        wrapper_key="retarget_shoulder",
        strip_prefix="module.",
        signature=("mlp.",),
    ),
    "lmdm": ModelSpec(
        "lmdm",
        "the Ditto DiT motion decoder",
        "ditto_core.models.lmdm",
        "MotionDecoder",
        wrapper_key="model_state_dict",
        signature=("seqTransDecoder.", "null_cond_embed", "cond_encoder."),
    ),
}

#: folders searched (in this order after the file's own release folder) by :func:`find_model_file`; "" = flat
SEARCH_DIRS = ("ditto_pytorch/models", "ditto_pytorch/aux_models", "ditto_cfg", "ditto_onnx", "")

_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _spec(role: str) -> ModelSpec:
    try:
        return MODELS[role]
    except KeyError:
        raise ValueError(f"unknown model role {role!r}; expected one of {sorted(MODELS)}") from None


def _first_sentence(e: BaseException, limit: int = 160) -> str:
    """``"TypeName: first sentence of the message"`` for error messages."""
    text = (str(e).strip().splitlines() or [""])[0]
    text = text.split(". ")[0][:limit]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _fmt_keys(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


# --------------------------------------------------------------------------- reading


def _read_pickle_checkpoint(path: Path, spec: ModelSpec) -> object:
    """``torch.load`` with ``weights_only=True``; every failure becomes a CheckpointError."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        if found:
            raise CheckpointError(
                f"{path}: refused to load: the file holds Python objects other than tensors and plain "
                f"containers (it needs {found.group(1)}), so it is not an official checkpoint of {spec.label}; "
                "only weights are ever loaded (weights_only=True)"
            ) from None
        detail = next((ln.strip() for ln in reversed(msg.splitlines()) if ln.strip().startswith("Unsupported")), "")
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (expected {spec.label}); the file is truncated, "
            f"corrupt or of another format" + (f" ({detail})" if detail else "")
        ) from None
    except Exception as e:  # RuntimeError (zip), EOFError, KeyError (bad magic), OSError, ...
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (expected {spec.label}); the file is truncated, "
            f"corrupt or of another format ({_first_sentence(e)})"
        ) from None


def _read_safetensors(path: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError or OSError/ValueError
        raise CheckpointError(
            f"{path}: not a readable safetensors file (expected {spec.label}); the file is truncated "
            f"or corrupt ({_first_sentence(e)})"
        ) from None


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def identify_checkpoint(obj: object) -> str | None:
    """The role whose file ``obj`` (a loaded checkpoint, wrapped or not) looks like, or None."""
    if isinstance(obj, Mapping):
        for spec in MODELS.values():
            if spec.wrapper_key is not None and spec.wrapper_key in obj:
                return spec.role
        if _is_state_dict(obj):
            keys = {k[len("module.") :] if k.startswith("module.") else k for k in obj}
            hits = [s.role for s in MODELS.values() if s.matches(keys)]
            if len(hits) == 1:
                return hits[0]
    return None


def _unwrap(obj: object, path: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    inner = obj
    if spec.wrapper_key is not None and isinstance(obj, Mapping) and spec.wrapper_key in obj:
        inner = obj[spec.wrapper_key]
    if not _is_state_dict(inner):
        other = identify_checkpoint(obj)
        if other is not None and other != spec.role:
            raise CheckpointError(
                f"{path}: this is {MODELS[other].label}, not {spec.label}"
            )
        if isinstance(obj, Mapping):
            keys = [str(k) for k in obj][:5]
            want = (
                f"a dict with {spec.wrapper_key!r} or a state_dict"
                if spec.wrapper_key
                else "a state_dict (names -> tensors)"
            )
            raise CheckpointError(
                f"{path}: not a checkpoint of {spec.label}: expected {want}, found a dict with keys {keys}"
            )
        raise CheckpointError(
            f"{path}: not a checkpoint of {spec.label}: it holds a {type(obj).__name__}, not a state_dict"
        )
    sd: dict[str, torch.Tensor] = {}
    for k, v in inner.items():
        if spec.strip_prefix and k.startswith(spec.strip_prefix):
            k = k[len(spec.strip_prefix) :]
        sd[k] = v
    if not spec.matches(sd):
        other = identify_checkpoint(sd) or identify_checkpoint(obj)
        if other is not None and other != spec.role:
            raise CheckpointError(f"{path}: this is {MODELS[other].label}, not {spec.label}")
    return sd


def load_state_dict(path: str | os.PathLike[str], role: str) -> dict[str, torch.Tensor]:
    """The unwrapped state_dict (names -> CPU tensors, file dtypes) of ``role`` read from ``path``.

    ``path`` is an official ``.pth`` (read with ``weights_only=True``) or a ``.safetensors``
    made by :func:`convert_folder`. Raises :class:`CheckpointError` for a missing, unreadable
    or foreign file, or a file of another model. Keys are not compared with the network here
    (see :func:`check_state_dict` / :func:`load_model`).
    """
    spec = _spec(role)
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found (expected {spec.label})")
    if not p.is_file():
        raise CheckpointError(f"{p}: not a file (expected {spec.label})")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: the file is empty (expected {spec.label}); download it again")
    if p.suffix.lower() == ".safetensors":
        obj: object = _read_safetensors(p, spec)
    else:
        obj = _read_pickle_checkpoint(p, spec)
    return _unwrap(obj, p, spec)


def _dtype_kind(dtype: torch.dtype) -> str:
    """``"floating"``, ``"complex"`` or ``"integer"`` (bool counts as integer)."""
    if dtype.is_floating_point:
        return "floating"
    if dtype.is_complex:
        return "complex"
    return "integer"


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    role: str,
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` fits ``reference`` (the network's own state_dict).

    Checked: exactly the same keys and shapes (the message gives the counts and the first few missing keys,
    unexpected keys and shape mismatches, file shape vs network shape); every tensor of the same kind of dtype as
    the network's (floating vs integer/bool; fp16/bf16 entries of a float32 network are fine, they are converted);
    every floating tensor finite (no NaN or infinity).
    """
    spec = _spec(role)
    got, want = set(state_dict), set(reference)
    missing = [k for k in reference if k not in got]
    unexpected = [k for k in state_dict if k not in want]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs network {tuple(reference[k].shape)}"
        for k in reference
        if k in got and tuple(state_dict[k].shape) != tuple(reference[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_fmt_keys(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_fmt_keys(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches ({_fmt_keys(shapes, 3)})")
        raise CheckpointError(
            f"{path}: does not fit {spec.label} ({len(want)} entries expected, {len(got)} in the file): "
            + "; ".join(parts)
        )
    dtypes = [
        f"{k}: file {str(state_dict[k].dtype).replace('torch.', '')} vs network "
        f"{str(reference[k].dtype).replace('torch.', '')}"
        for k in reference
        if _dtype_kind(state_dict[k].dtype) != _dtype_kind(reference[k].dtype)
    ]
    if dtypes:
        raise CheckpointError(
            f"{path}: does not fit {spec.label}: {len(dtypes)} entries of the wrong kind of dtype "
            f"({_fmt_keys(dtypes, 3)}); the file is damaged or not an official checkpoint"
        )
    check_finite(state_dict, path, role)


def check_finite(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], role: str) -> None:
    """Raise :class:`CheckpointError` naming ``path``, the keys and the counts when a floating tensor of
    ``state_dict`` holds a NaN or an infinity (a damaged file)."""
    spec = _spec(role)
    bad = []
    for k, t in state_dict.items():
        if not t.is_floating_point() or not t.numel():
            continue
        # fast screen: a NaN or an infinity makes the sum non-finite (an overflowing sum is confirmed below)
        total = t.sum() if t.dtype in (torch.float32, torch.float64) else t.sum(dtype=torch.float32)
        if bool(torch.isfinite(total)):
            continue
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        if n_nan or n_inf:
            what = " and ".join(x for x in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else "") if x)
            bad.append(f"{k}: {what} of {t.numel()} values")
    if bad:
        raise CheckpointError(
            f"{path}: not usable as {spec.label}: {len(bad)} tensors hold values that are not finite "
            f"({_fmt_keys(bad, 3)}); the file is damaged, download it again"
        )


def load_model(
    role: str,
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Build the network of ``role``, load ``path`` strictly and return it on ``device``/``dtype`` in eval mode.

    Raises :class:`CheckpointError` (never a raw torch error) when the file is missing,
    unreadable, of another model, or its keys/shapes do not fit the network.
    """
    spec = _spec(role)
    sd = load_state_dict(path, role)
    with torch.device("meta"):  # no random init of weights the file replaces (about 2 s per load of the six)
        model = spec.build()
    check_state_dict(sd, model.state_dict(), path, role)
    try:
        # assign: the file's tensors become the parameters and buffers (strict: every one of them is in the file)
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:  # e.g. an entry whose dtype cannot be copied
        first = (str(e).splitlines() or [""])[0]
        raise CheckpointError(f"{path}: could not be loaded into {spec.label}: {first}") from None
    return model.to(device=device, dtype=dtype).eval()


# --------------------------------------------------------------------------- finding


def resolve_in_models_dir(models_dir: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """``models_dir / name``, refusing a name that is absolute or climbs out with ``..``.

    The check is lexical (symbolic links inside the folder are allowed). Raises
    :class:`UnsafePathError` naming the offending name.
    """
    raw = os.fspath(name)
    pure = PurePath(raw)
    if not raw or pure.anchor or os.path.isabs(raw) or re.match(r"^[A-Za-z]:", raw):
        raise UnsafePathError(
            f"model file name {raw!r} must be a path relative to the models folder {models_dir}"
        )
    norm = os.path.normpath(raw.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or norm.startswith("..\\") or norm == ".":
        raise UnsafePathError(
            f"model file name {raw!r} points outside the models folder {models_dir}"
        )
    return Path(models_dir) / norm


def _candidate_names(role: str) -> list[str]:
    rf = layout.BY_ROLE[role]
    names = [rf.filename, *layout.ONNX_AUX_ALIASES.get(role, ())]
    out: list[str] = []
    for n in names:  # a pickle-free copy (.safetensors) beats the pickle (.pth checkpoint, .pkl config)
        if n.endswith((".pth", ".pkl")):
            out.append(n[: -len(".pth")] + ".safetensors")
    return out + names


def _search_dirs(role: str) -> list[str]:
    own = os.path.dirname(layout.BY_ROLE[role].release_path)
    return [own] + [d for d in SEARCH_DIRS if d != own]


def find_model_file(
    models_dir: str | os.PathLike[str], role: str, name: str | os.PathLike[str] | None = None
) -> Path | None:
    """The file of ``role`` under ``models_dir``, or None.

    Looks in the file's own release folder (e.g. ``ditto_pytorch/models``), then the other
    release folders (``ditto_pytorch/{models,aux_models}``, ``ditto_cfg``, ``ditto_onnx``),
    then ``models_dir`` itself (a flat folder). A ``.safetensors`` beats a ``.pth`` of the
    same stem anywhere; for the aux models the ``ditto_onnx`` variant names
    (``layout.ONNX_AUX_ALIASES``) are tried after the official name. ``name`` (e.g. from a
    config or a user's choice) is taken relative to ``models_dir`` instead of searching and
    must stay inside it (:class:`UnsafePathError`).
    """
    if role not in layout.BY_ROLE:
        raise ValueError(f"unknown model role {role!r}; expected one of {sorted(layout.BY_ROLE)}")
    root = Path(models_dir)
    if name is not None:
        p = resolve_in_models_dir(root, name)
        return p if p.is_file() else None
    if not root.is_dir():
        return None
    for fname in _candidate_names(role):
        for d in _search_dirs(role):
            p = root / d / fname if d else root / fname
            if p.is_file():
                return p
    return None


# --------------------------------------------------------------------------- converting


@dataclass
class ConvertReport:
    """What :func:`convert_folder` did; paths are relative to the source folder / destination."""

    converted: list[tuple[str, str]] = field(default_factory=list)  #: (source .pth, written .safetensors)
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _os_reason(e: BaseException) -> str:
    """``"permission denied"`` / ``"no space left on device"`` / ``"TypeName: message"`` for an I/O failure."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[:1].lower() + e.strerror[1:]
    return _first_sentence(e)


def _atomic_write(dst: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``dst``, then rename it onto ``dst``.

    Any failure (permission denied, disk full, a file where a folder should be, ...) removes the temporary file
    and raises :class:`CheckpointError` naming ``dst``; ``dst`` itself is never left half-written.
    """
    try:
        write_atomically(dst, write)
    except CheckpointError:
        raise
    except Exception as e:  # OSError, or the writer's own error type (safetensors)
        raise CheckpointError(f"{dst}: cannot write the file ({_os_reason(e)})") from None


def _check_convert_paths(src: Path, dst: Path) -> None:
    """Refuse a source that is not a folder and a destination that is, or lies under, something else than a folder."""
    if not src.exists():
        raise CheckpointError(f"{src}: source models folder not found")
    if not src.is_dir():
        raise CheckpointError(f"{src}: the source must be a models folder, but it is a file")
    if dst.exists() and not dst.is_dir():
        raise CheckpointError(f"{dst}: the destination must be a folder, but a file of that name exists")
    for parent in dst.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CheckpointError(
                    f"{dst}: cannot create the destination folder: {parent} is a file, not a folder"
                )
            break


def _copy(src: Path, tmp: Path) -> None:
    """Copy ``src`` onto ``tmp``; a source that cannot be read raises :class:`CheckpointError` naming it."""
    try:
        fsrc = open(src, "rb")
    except OSError as e:
        raise CheckpointError(f"{src}: cannot read the file ({_os_reason(e)})") from None
    with fsrc, open(tmp, "wb") as fdst:
        shutil.copyfileobj(fsrc, fdst)


def _walk(src: Path, exclude: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(src):
        d = Path(dirpath)
        dirnames[:] = sorted(
            n for n in dirnames if not n.startswith(".") and (exclude is None or (d / n).resolve() != exclude)
        )
        for n in sorted(filenames):
            if not n.startswith("."):
                yield d / n


def convert_folder(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    copy_other: bool = True,
    log: Callable[[str], None] | None = print,
) -> ConvertReport:
    """Write every official ``.pth`` under ``src`` as ``<same relative path>.safetensors`` under ``dst``.

    Works on the release layout or a flat folder. Each output holds exactly the unwrapped
    state_dict that :func:`load_state_dict` returns (contiguous copies, same dtypes), with
    metadata ``ditto_role`` and ``source_file``. The config pickle is written as its pickle-free copy
    (:func:`~ditto_core.config.write_config_safetensors`, same content), which the loader prefers. Other files (onnx, task, ...) are
    copied unchanged when ``copy_other``, else skipped; ``.pth`` files that are not official
    names are skipped (never copied: they are pickles). Hidden files/folders (``.cache``)
    are ignored. A checkpoint holding a NaN or an infinity is refused (:func:`check_finite`) before its output is
    written; every write goes to a temporary file that is then renamed. ``log`` gets
    one line per file (None = silent). Raises :class:`CheckpointError` on a bad checkpoint, a source that is
    not a folder, a destination that exists and is not a folder (or lies under a file), and a file that cannot
    be written (permission denied, disk full: no temporary file is left behind).
    """
    from safetensors.torch import save_file

    src_p, dst_p = Path(src), Path(dst)
    _check_convert_paths(src_p, dst_p)
    src_r, dst_r = src_p.resolve(), dst_p.resolve()
    same = src_r == dst_r
    exclude = dst_r if (not same and src_r in dst_r.parents) else None
    by_name = {spec.filename: spec for spec in MODELS.values()}
    report = ConvertReport()
    say = log or (lambda _s: None)

    for f in list(_walk(src_p, exclude)):
        rel = f.relative_to(src_p)
        spec = by_name.get(f.name)
        if spec is not None:
            sd = load_state_dict(f, spec.role)
            check_finite(sd, f, spec.role)  # a damaged file is refused before anything is written
            tensors = {k: v.detach().contiguous().clone() for k, v in sd.items()}
            out_rel = rel.with_suffix(".safetensors")
            meta = {"format": "pt", "ditto_role": spec.role, "source_file": f.name}
            _atomic_write(dst_p / out_rel, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
            nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
            report.converted.append((rel.as_posix(), out_rel.as_posix()))
            say(f"converted {rel.as_posix()} -> {out_rel.as_posix()} ({len(tensors)} tensors, {nbytes / 1e6:.1f} MB)")
            del tensors, sd
        elif f.name == layout.BY_ROLE["config"].filename:  # the config pickle -> its pickle-free copy
            cfg = load_config(f)  # restricted unpickler, values checked
            out_rel = rel.with_name(config_safetensors_name(f.name))
            _atomic_write(dst_p / out_rel, lambda tmp: write_config_safetensors(tmp, cfg))
            report.converted.append((rel.as_posix(), out_rel.as_posix()))
            say(f"converted {rel.as_posix()} -> {out_rel.as_posix()} (pickle-free config)")
        elif f.suffix.lower() in _PICKLE_SUFFIXES:
            report.skipped.append(rel.as_posix())
            say(f"skipped {rel.as_posix()} (not an official checkpoint name)")
        elif not copy_other or same:
            report.skipped.append(rel.as_posix())
            say(f"skipped {rel.as_posix()}" + (" (already in place)" if same and copy_other else ""))
        else:
            _atomic_write(dst_p / rel, lambda tmp, f=f: _copy(f, tmp))
            report.copied.append(rel.as_posix())
            say(f"copied {rel.as_posix()}")
    if not report.converted:
        say(f"no official checkpoint (.pth) found under {src_p}")
    return report
