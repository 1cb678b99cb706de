"""Small, generic helpers around onnxruntime used by every ONNX model in ditto_core.

Usage::

    model = OnnxModel("hubert_streaming_fix_kv.onnx", device="cuda")
    (out,) = model.run(x)                     # inputs bound by position to the session's own input names
    out = model.run_named({"x": x})[0]        # or by name
    idx = model.output_index_by_shape((1, 406))   # pick an output by its declared shape

Device strings: ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` -> CUDAExecutionProvider (device N) then CPU;
``"tensorrt"`` / ``"tensorrt:N"`` -> TensorRT, CUDA, CPU; ``"dml"`` -> DirectML then CPU; ``"coreml"`` -> CoreML then CPU.
A ``torch.device`` is accepted too. Providers that this onnxruntime build lacks are dropped with a logged warning,
so the session always ends on CPU. A file that is missing or cannot be parsed raises :class:`OnnxModelError`
naming the file.

Each wrapper declares the inputs and outputs its model must have, so a wrong file (another model under the
right name, an export with other shapes) is refused when it is opened, not at its first call::

    model = OnnxModel(path).expect("the HuBERT audio encoder (hubert)", inputs=[(1, 6480)], outputs=[(20, 1024)])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from .errors import DittoError

__all__ = [
    "OnnxModelError",
    "providers_for_device",
    "missing_provider_reason",
    "open_session",
    "OnnxModel",
    "Pattern",
    "shape_matches",
    "check_signature",
]

log = logging.getLogger(__name__)

# ONNX tensor element types -> numpy dtypes (those our models use).
_ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


#: element types accepted for an input declared as floating point
_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)")

#: an expected input or output: a shape pattern (ints, None = any size), or a single int = its number of values
Pattern = Union[tuple[Union[int, None], ...], int]


class OnnxModelError(DittoError, RuntimeError):
    """An ONNX model file could not be opened, is not the model expected, or was called with inputs it does not
    accept."""


def _split_device(device: Any) -> tuple[str, int]:
    """``"cuda:1"`` / ``torch.device("cuda", 1)`` -> ("cuda", 1); no index -> 0."""
    if hasattr(device, "type"):  # torch.device without importing torch
        return str(device.type).lower(), int(device.index or 0)
    if not isinstance(device, str):
        raise ValueError(f"device: expected a string like 'cpu' or 'cuda:0' or a torch.device, got {device!r}")
    kind, _, index = device.strip().lower().partition(":")
    if index and not index.isdigit():
        raise ValueError(f"device: expected '<kind>' or '<kind>:<index>', got {device!r}")
    return kind, int(index or 0)


def providers_for_device(device: Any = "cpu") -> list[str | tuple[str, dict[str, Any]]]:
    """onnxruntime providers (with options) for a device string, best first, always ending with CPU.

    Providers missing from ``onnxruntime.get_available_providers()`` are left out (logged as a warning).
    """
    import onnxruntime as ort

    kind, index = _split_device(device)
    wanted: list[tuple[str, dict[str, Any]]]
    if kind == "cpu":
        wanted = []
    elif kind == "cuda":
        wanted = [("CUDAExecutionProvider", {"device_id": index})]
    elif kind in ("tensorrt", "trt"):
        wanted = [("TensorrtExecutionProvider", {"device_id": index}), ("CUDAExecutionProvider", {"device_id": index})]
    elif kind in ("dml", "directml"):
        wanted = [("DmlExecutionProvider", {"device_id": index})]
    elif kind in ("coreml", "mps"):
        wanted = [("CoreMLExecutionProvider", {})]
    else:
        raise ValueError(f"device: unknown kind {kind!r} (expected cpu, cuda[:N], tensorrt[:N], dml, coreml)")
    available = set(ort.get_available_providers())
    providers: list[str | tuple[str, dict[str, Any]]] = []
    for name, opts in wanted:
        if name in available:
            providers.append((name, opts))
        else:
            log.warning("onnxruntime has no %s (%s); device %r falls back to the next provider", name,
                        missing_provider_reason(name), device)
    providers.append("CPUExecutionProvider")
    return providers


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def missing_provider_reason(name: str) -> str:
    """Why this onnxruntime lacks the execution provider ``name``, in words a user can act on."""
    gpu_pkgs = [d for d in ("onnxruntime-gpu", "onnxruntime-directml") if _installed(d)]
    if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        if _installed("onnxruntime") and "onnxruntime-gpu" in gpu_pkgs:
            return ("onnxruntime-gpu is installed next to onnxruntime, whose files shadow it: run "
                    "'pip uninstall -y onnxruntime onnxruntime-gpu' then 'pip install onnxruntime-gpu'")
        if "onnxruntime-gpu" not in gpu_pkgs:
            return "the installed onnxruntime is the CPU build: 'pip uninstall -y onnxruntime' then 'pip install onnxruntime-gpu'"
        return "onnxruntime-gpu cannot load CUDA here (check that its CUDA and cuDNN versions match the driver)"
    if name == "CoreMLExecutionProvider":
        return "CoreML is offered by onnxruntime's macOS builds only"
    if name == "DmlExecutionProvider":
        return "DirectML needs the onnxruntime-directml package on Windows"
    return "not in this onnxruntime build"


def open_session(path: str | os.PathLike[str], device: Any = "cpu", *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` for ``path`` on ``device``.

    ``threads``: intra-op thread count (None = onnxruntime's default). Raises :class:`OnnxModelError` naming
    the file when it is missing or onnxruntime cannot load it.
    """
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise OnnxModelError(f"ONNX model file not found: {str(p)!r}")
    providers = providers_for_device(device)
    opts = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: expected a positive count or None, got {threads}")
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise OnnxModelError(
            f"cannot load ONNX model {str(p)!r} (is it a complete, uncorrupted .onnx file?): "
            f"{type(e).__name__}: {e}"
        ) from e


def shape_matches(shape: Sequence[Any], pattern: Sequence[int | None]) -> bool:
    """True when ``shape`` has ``len(pattern)`` dims and every int in ``pattern`` equals the dim there.

    ``None`` in the pattern matches anything; a symbolic (str/None) dim in ``shape`` matches any int.
    """
    if len(shape) != len(pattern):
        return False
    for dim, want in zip(shape, pattern):
        if want is None or not isinstance(dim, int):
            continue
        if dim != want:
            return False
    return True


def _dims(shape: Any) -> list[Any] | None:
    """A declared shape as a list (None when onnxruntime does not know the rank)."""
    return None if shape is None else list(shape)


def _fits_output(shape: list[Any] | None, pattern: Pattern) -> bool:
    """Whether a declared output shape can be ``pattern``.

    Unknown parts always fit (an unknown rank, symbolic dims). A shape pattern also fits a shape with extra leading
    dims of 1 (a batch of one: ``(1, 20, 1024)`` fits ``(20, 1024)``). A value count fits when the known dims can
    make it (all known: their product equals it; some unknown: their product divides it).
    """
    if shape is None:
        return True
    if isinstance(pattern, int):
        known = [d for d in shape if isinstance(d, int)]
        prod = 1
        for d in known:
            prod *= d
        if len(known) == len(shape):
            return prod == pattern
        return prod > 0 and pattern % prod == 0
    extra = len(shape) - len(pattern)
    if extra < 0 or any(isinstance(d, int) and d != 1 for d in shape[:extra]):
        return False
    return shape_matches(shape[extra:], pattern)


def _fits_input(shape: list[Any] | None, pattern: Pattern) -> bool:
    """Whether a declared input shape can be ``pattern`` (same rank; unknown parts fit)."""
    if shape is None or isinstance(pattern, int):
        return _fits_output(shape, pattern)
    return shape_matches(shape, pattern)


def _match_outputs(shapes: list[list[Any] | None], patterns: Sequence[Pattern]) -> bool:
    """Whether every pattern can be given its own declared output (a bipartite matching, small sizes)."""
    owner: dict[int, int] = {}  # output index -> pattern index

    def place(pi: int, seen: set[int]) -> bool:
        for oi, shape in enumerate(shapes):
            if oi in seen or not _fits_output(shape, patterns[pi]):
                continue
            seen.add(oi)
            if oi not in owner or place(owner[oi], seen):
                owner[oi] = pi
                return True
        return False

    return all(place(pi, set()) for pi in range(len(patterns)))


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return "(unknown rank)"
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _fmt_patterns(patterns: Sequence[Pattern]) -> str:
    """``"3 x (?, 1), (1, 406), 1434 values"``: repeated patterns counted, in order of first use."""
    counts: dict[str, int] = {}
    for p in patterns:
        text = f"{p} values" if isinstance(p, int) else _fmt_shape(p)
        counts[text] = counts.get(text, 0) + 1
    return ", ".join(f"{n} x {t}" if n > 1 else t for t, n in counts.items())


def _fmt_found(names: Sequence[str], shapes: Sequence[Any], types: Sequence[str] | None = None) -> str:
    if not names:
        return "none"
    parts = []
    for i, (n, sh) in enumerate(zip(names, shapes)):
        t = f" {types[i].removeprefix('tensor(').removesuffix(')')}" if types is not None else ""
        parts.append(f"{n} {_fmt_shape(sh)}{t}")
    return ", ".join(parts)


def check_signature(
    model: Any,
    what: str,
    inputs: Sequence[Pattern] | None = None,
    outputs: Sequence[Pattern] | None = None,
    *,
    float_inputs: bool = True,
) -> None:
    """Refuse an ONNX model whose declared inputs/outputs are not those of ``what``, with :class:`OnnxModelError`.

    ``what`` names the role, e.g. ``"the face detector (face_detector: SCRFD det_10g.onnx)"``. ``inputs``: the
    model has exactly these inputs, in order, each matching its pattern (see :func:`shape_matches`; symbolic dims
    of the file match anything) and, when ``float_inputs``, of a floating element type. ``outputs``: every pattern
    is matched by a different declared output (other outputs may exist); a declared output may carry extra leading
    dims of 1, and an int pattern is a value count (``1434`` fits ``(1, 1, 1, 1434)``). None skips that side.

    ``model``: an :class:`OnnxModel`; other objects (test stand-ins without declared I/O) are not checked. The
    message names the file, ``what``, the expected and the found inputs and outputs.
    """
    if not isinstance(model, OnnxModel):
        return
    ok = True
    if inputs is not None:
        ok = len(model.input_shapes) == len(inputs) and all(
            _fits_input(shp, pat) for shp, pat in zip(model.input_shapes, inputs)
        )
        if ok and float_inputs:
            ok = all(t in _FLOAT_TYPES for t in model.input_types)
    if ok and outputs is not None:
        ok = _match_outputs(model.output_shapes, outputs)
    if ok:
        return
    want = []
    if inputs is not None:
        n = len(inputs)
        kind = " float" if float_inputs else ""
        want.append(f"{n} input{'s' if n != 1 else ''} {_fmt_patterns(inputs)}{kind}")
    if outputs is not None:
        want.append(f"outputs including {_fmt_patterns(outputs)}")
    raise OnnxModelError(
        f"{model.path}: not {what}: expected {' and '.join(want)}; the file has inputs "
        f"{_fmt_found(model.input_names, model.input_shapes, model.input_types)} and outputs "
        f"{_fmt_found(model.output_names, model.output_shapes)}"
    )


class OnnxModel:
    """One ONNX model: session, declared I/O, calls bound to the session's own input names.

    Attributes: ``path``, ``session``, ``input_names``, ``input_shapes``, ``input_dtypes`` (numpy),
    ``output_names``, ``output_shapes``, ``providers`` (those the session actually uses).
    """

    def __init__(self, path: str | os.PathLike[str], device: Any = "cpu", *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.device = device
        self.session = open_session(self.path, device, threads=threads)
        ins = self.session.get_inputs()
        outs = self.session.get_outputs()
        self.input_names: list[str] = [i.name for i in ins]
        self.input_shapes: list[list[Any] | None] = [_dims(i.shape) for i in ins]
        self.input_types: list[str] = [str(i.type) for i in ins]
        self.input_dtypes: list[Any] = [_ORT_DTYPES.get(i.type) for i in ins]
        self.output_names: list[str] = [o.name for o in outs]
        self.output_shapes: list[list[Any] | None] = [_dims(o.shape) for o in outs]
        self.providers: list[str] = list(self.session.get_providers())

    def __repr__(self) -> str:
        return (
            f"OnnxModel({str(self.path)!r}, inputs={dict(zip(self.input_names, self.input_shapes))}, "
            f"outputs={dict(zip(self.output_names, self.output_shapes))}, providers={self.providers})"
        )

    def expect(
        self,
        what: str,
        inputs: Sequence[Pattern] | None = None,
        outputs: Sequence[Pattern] | None = None,
        *,
        float_inputs: bool = True,
    ) -> "OnnxModel":
        """This model, after :func:`check_signature` (raises :class:`OnnxModelError` when it is not ``what``)."""
        check_signature(self, what, inputs, outputs, float_inputs=float_inputs)
        return self

    def _prepare(self, i: int, value: Any) -> np.ndarray:
        name, shape, dtype = self.input_names[i], self.input_shapes[i], self.input_dtypes[i]
        arr = np.asarray(value)
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        if shape is not None and not shape_matches(arr.shape, [d if isinstance(d, int) else None for d in shape]):
            raise OnnxModelError(
                f"{self.path.name}: input {name!r} expects shape {shape}, got {tuple(arr.shape)}"
            )
        return np.ascontiguousarray(arr)

    def run(self, *inputs: Any) -> list[np.ndarray]:
        """Run with inputs given in the session's input order; returns every output, in declared order."""
        if len(inputs) != len(self.input_names):
            raise OnnxModelError(
                f"{self.path.name}: expects {len(self.input_names)} input(s) {self.input_names}, got {len(inputs)}"
            )
        feed = {n: self._prepare(i, v) for i, (n, v) in enumerate(zip(self.input_names, inputs))}
        return list(self.session.run(None, feed))

    def run_named(self, feed: Mapping[str, Any]) -> list[np.ndarray]:
        """Run with inputs given by name (the session's names); returns every output, in declared order."""
        missing = [n for n in self.input_names if n not in feed]
        extra = [n for n in feed if n not in self.input_names]
        if missing or extra:
            raise OnnxModelError(
                f"{self.path.name}: inputs are {self.input_names}; missing {missing}, unknown {extra}"
            )
        return list(self.session.run(None, {n: self._prepare(i, feed[n]) for i, n in enumerate(self.input_names)}))

    def output_index_by_shape(self, pattern: Sequence[int | None]) -> int:
        """Index of the only declared output whose shape matches ``pattern`` (see :func:`shape_matches`)."""
        hits = [i for i, s in enumerate(self.output_shapes) if s is not None and shape_matches(s, pattern)]
        if len(hits) != 1:
            raise OnnxModelError(
                f"{self.path.name}: expected exactly one output of shape {list(pattern)}, "
                f"found {len(hits)} among {dict(zip(self.output_names, self.output_shapes))}"
            )
        return hits[0]
