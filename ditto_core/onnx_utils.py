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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from .errors import DittoError

__all__ = ["OnnxModelError", "providers_for_device", "open_session", "OnnxModel", "shape_matches"]

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


class OnnxModelError(DittoError, RuntimeError):
    """An ONNX model file could not be opened or was called with inputs it does not accept."""


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
            log.warning("onnxruntime has no %s; device %r falls back to the next provider", name, device)
    providers.append("CPUExecutionProvider")
    return providers


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
        self.input_shapes: list[list[Any]] = [list(i.shape) for i in ins]
        self.input_dtypes: list[Any] = [_ORT_DTYPES.get(i.type) for i in ins]
        self.output_names: list[str] = [o.name for o in outs]
        self.output_shapes: list[list[Any]] = [list(o.shape) for o in outs]
        self.providers: list[str] = list(self.session.get_providers())

    def __repr__(self) -> str:
        return (
            f"OnnxModel({str(self.path)!r}, inputs={dict(zip(self.input_names, self.input_shapes))}, "
            f"outputs={dict(zip(self.output_names, self.output_shapes))}, providers={self.providers})"
        )

    def _prepare(self, i: int, value: Any) -> np.ndarray:
        name, shape, dtype = self.input_names[i], self.input_shapes[i], self.input_dtypes[i]
        arr = np.asarray(value)
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        if not shape_matches(arr.shape, [d if isinstance(d, int) else None for d in shape]):
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
        hits = [i for i, s in enumerate(self.output_shapes) if shape_matches(s, pattern)]
        if len(hits) != 1:
            raise OnnxModelError(
                f"{self.path.name}: expected exactly one output of shape {list(pattern)}, "
                f"found {len(hits)} among {dict(zip(self.output_names, self.output_shapes))}"
            )
        return hits[0]
