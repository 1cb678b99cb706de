"""Optional TensorRT renderer backend (``tensorrt`` Python package, TensorRT 10.x, CUDA only).

TensorRT's ``IGridSampleLayer`` and its ONNX parser are 4-D only (NVIDIA/TensorRT #4618: TensorRT 10.6 rejects a
5-D GridSample with "addGridsample: Error Code 3: API Usage Error"), and the warp network samples a 5-D volume
twice. Two ways are offered:

* ``warp="pytorch"`` (the default, "hybrid"): the warp runs in PyTorch (under the models' autocast, as the
  PyTorch renderer does) and only the SPADE decoder, most of the renderer's FLOPs, runs as a TensorRT engine.
* ``warp="tensorrt"``: the warp is exported with ``grid_sample="decomposed"`` (:func:`ditto_core.render.export.
  decompose_grid_sample_3d`: each 5-D GridSample becomes one 4-D GridSample plus standard ops, all named
  ``.../GridSample/...``) and built as a second engine. No plugin library is needed.

Precision: with ``fp16`` the builder gets ``BuilderFlag.FP16`` and ``OBEY_PRECISION_CONSTRAINTS`` (or PREFER),
and every layer whose name contains one of ``fp32_layers`` (default "GridSample", which covers the whole
decomposed grid-sample subgraph) or whose type is GRID_SAMPLE is pinned to fp32 (``layer.precision`` and every
output type), as the official build does. TensorRT 11 removed these weak-typing flags (strongly typed networks
only): there ``fp16=True`` raises :class:`TensorRTError` (the renderer then falls back to PyTorch) and
``fp16=False`` builds an fp32 engine.

Engines are cached in ``<cache_dir>/trt_engines/`` (the runtime's ``cache_dir`` is the models folder), one file per (network, weights, GPU name, compute capability, TensorRT version, batch range, precision, build options): see
:class:`EngineKey`.

Importing this module registers the "tensorrt" backend of :func:`ditto_core.render.make_renderer`. Nothing here
imports ``tensorrt`` at module import time; :func:`tensorrt_available` says whether (and why not) the backend can run,
and ``make_renderer`` falls back to the PyTorch renderer with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from . import export as onnx_export
from .renderer import (
    BackendUnavailable,
    Renderer,
    RendererConfig,
    autocast_context,
    register_backend,
)
from ..devices import own_stream, side_stream
from ..errors import DittoError
from .._util import CancelFn, check_cancel

__all__ = [
    "WARP_MODES",
    "EngineKey",
    "TensorRTConfig",
    "TensorRTEngine",
    "TensorRTError",
    "TensorRTRenderer",
    "build_engine",
    "default_cache_dir",
    "engine_key",
    "mark_fp32_layers",
    "tensorrt_available",
    "weights_digest",
]

log = logging.getLogger("ditto")

#: where the warp runs in the TensorRT renderer
WARP_MODES = ("pytorch", "tensorrt")
#: lowest supported TensorRT major version (execute_async_v3, set_tensor_address, name-based I/O)
MIN_TRT_MAJOR = 10
#: bump when the engine-building recipe changes so old cache entries are not reused
CACHE_FORMAT = 1
ENGINE_DIRNAME = "trt_engines"

#: layer types never pinned to a precision (shape arithmetic, constants, control flow), as the official build
_SKIP_LAYER_TYPES = frozenset(
    {"SHAPE", "CONSTANT", "ASSERTION", "CONDITION", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT", "FILL",
     "NON_ZERO", "ONE_HOT", "IDENTITY"}
)


class TensorRTError(DittoError, RuntimeError):
    """TensorRT is missing, unusable here, or an engine could not be parsed, built or run (the message says which)."""


# --------------------------------------------------------------------------------------------- availability


def _import_tensorrt() -> ModuleType:
    """``import tensorrt`` (a function so tests can make it fail); raises ImportError/OSError as the import does."""
    import tensorrt

    return tensorrt


def _trt_version(trt: ModuleType) -> str:
    return str(getattr(trt, "__version__", "0"))


def _major(version: str) -> int:
    m = re.match(r"(\d+)", version)
    return int(m.group(1)) if m else 0


def tensorrt_available(device: torch.device | str | None = None) -> tuple[bool, str]:
    """``(True, "TensorRT <version> on <GPU>")`` when the backend can run on ``device`` (default: the current CUDA
    device), else ``(False, <why not>)``: no CUDA device, ``tensorrt`` not installed or failing to load, or older
    than TensorRT 10."""
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        return False, f"the models run on {dev.type}, TensorRT needs a CUDA device"
    if not torch.cuda.is_available():
        return False, "CUDA is not available (no NVIDIA GPU, or a CPU-only PyTorch build)"
    try:
        trt = _import_tensorrt()
    except ImportError as e:
        return False, f"the 'tensorrt' Python package is not installed ({e}); install TensorRT 10 (pip install tensorrt)"
    except Exception as e:
        return False, f"the 'tensorrt' package failed to load: {type(e).__name__}: {e}"
    version = _trt_version(trt)
    if _major(version) < MIN_TRT_MAJOR:
        return False, f"TensorRT {version} is too old (need >= {MIN_TRT_MAJOR})"
    name = torch.cuda.get_device_name(dev)
    return True, f"TensorRT {version} on {name}"


# ------------------------------------------------------------------------------------------------ cache key


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (hex, first 16) of a network's state_dict: names, dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; :meth:`filename` is its cache file name.

    ``batch``: (min, opt, max) of the dynamic batch axis; ``compute_capability``: (major, minor).
    """

    role: str
    weights: str
    gpu_name: str
    compute_capability: tuple[int, int]
    trt_version: str
    batch: tuple[int, int, int]
    precision: str
    fp32_layers: tuple[str, ...] = ("GridSample",)
    grid_sample: str = "none"
    opset: int = 20
    constraints: str = "obey"

    def digest(self) -> str:
        fields = (
            CACHE_FORMAT, self.role, self.weights, self.gpu_name, self.compute_capability, self.trt_version,
            self.batch, self.precision, self.fp32_layers, self.grid_sample, self.opset, self.constraints,
        )
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:12]

    def filename(self) -> str:
        """``<role>-<precision>-b<min>-<opt>-<max>-<gpu>-sm<cc>-trt<version>-<digest>.engine`` (file-name safe)."""
        gpu = re.sub(r"[^A-Za-z0-9]+", "_", self.gpu_name).strip("_") or "gpu"
        ver = re.sub(r"[^A-Za-z0-9.]+", "_", self.trt_version)
        lo, opt, hi = self.batch
        cc = f"{self.compute_capability[0]}{self.compute_capability[1]}"
        return f"{self.role}-{self.precision}-b{lo}-{opt}-{hi}-{gpu}-sm{cc}-trt{ver}-{self.digest()}.engine"


def engine_key(
    role: str,
    model: nn.Module,
    batch_size: int,
    precision: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    trt_version: str,
    fp32_layers: Sequence[str] = ("GridSample",),
    grid_sample: str = "none",
    opset: int = 20,
    constraints: str = "obey",
) -> EngineKey:
    """The cache key of ``model``'s engine for batches 1..``batch_size`` (optimised for ``batch_size``)."""
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision: expected 'fp16' or 'fp32', got {precision!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    return EngineKey(
        role=role,
        weights=weights_digest(model),
        gpu_name=str(gpu_name),
        compute_capability=(int(compute_capability[0]), int(compute_capability[1])),
        trt_version=str(trt_version),
        batch=(1, batch_size, batch_size),
        precision=precision,
        fp32_layers=tuple(fp32_layers) if precision == "fp16" else (),
        grid_sample=grid_sample,
        opset=int(opset),
        constraints=constraints if precision == "fp16" else "none",
    )


def default_cache_dir(models_dir: str | os.PathLike[str]) -> Path:
    """``<models_dir>/trt_engines``."""
    return Path(models_dir) / ENGINE_DIRNAME


# ---------------------------------------------------------------------------------------------------- build


def _layer_type_name(layer: Any) -> str:
    """``LayerType.GRID_SAMPLE`` -> "GRID_SAMPLE"."""
    t = getattr(layer, "type", None)
    return str(getattr(t, "name", None) or str(t).rsplit(".", 1)[-1])


def mark_fp32_layers(network: Any, patterns: Sequence[str], trt: ModuleType) -> list[str]:
    """Pin to fp32 every layer of ``network`` whose name contains one of ``patterns`` or whose type name matches
    one (case and underscores ignored: "GridSample" matches ``GRID_SAMPLE``): sets ``layer.precision`` and every
    output's type. Skips shape/constant/control layers and layers with a non-float output. Returns the names."""
    keys = [p.lower().replace("_", "") for p in patterns]
    if not keys:
        return []
    floats = {trt.float32, trt.float16}
    marked: list[str] = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tname = _layer_type_name(layer)
        if tname in _SKIP_LAYER_TYPES:
            continue
        name = str(layer.name)
        if not any(p in name or k == tname.lower().replace("_", "") for p, k in zip(patterns, keys)):
            continue
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if any(o.dtype not in floats for o in outs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        marked.append(name)
    return marked


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_engine(
    onnx_path: str | os.PathLike[str],
    engine_path: str | os.PathLike[str],
    fp16: bool = True,
    fp32_layers: Sequence[str] = ("GridSample",),
    workspace_gb: float = 4.0,
    input_shapes: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
    constraints: str = "obey",
    optimization_level: int = 3,
    trt: ModuleType | None = None,
) -> Path:
    """Parse ``onnx_path``, build a serialized engine and write it atomically to ``engine_path``; returns it.

    ``input_shapes``: ``{input name: (min, opt, max)}`` for an optimization profile (needed when the ONNX has
    dynamic axes). ``fp16``: ``BuilderFlag.FP16`` with ``fp32_layers`` pinned to fp32 (:func:`mark_fp32_layers`)
    under ``constraints`` "obey" (``OBEY_PRECISION_CONSTRAINTS``: the build fails rather than ignore a pin) or
    "prefer" (``PREFER_PRECISION_CONSTRAINTS``, as the official build). ``workspace_gb``: the workspace memory
    pool limit. ``optimization_level``: the builder optimisation level 0..5. ``trt``: the tensorrt module (tests).
    Raises :class:`TensorRTError` with the parser's errors or a build failure; ``ValueError`` for bad arguments.
    """
    onnx_p, engine_p = Path(onnx_path), Path(engine_path)
    if not onnx_p.is_file():
        raise ValueError(f"onnx_path: {onnx_p} is not a file")
    if constraints not in ("obey", "prefer"):
        raise ValueError(f"constraints: expected 'obey' or 'prefer', got {constraints!r}")
    if not (isinstance(workspace_gb, (int, float)) and workspace_gb > 0):
        raise ValueError(f"workspace_gb: expected a positive number, got {workspace_gb!r}")
    if not (isinstance(optimization_level, int) and 0 <= optimization_level <= 5):
        raise ValueError(f"optimization_level: expected an int in 0..5, got {optimization_level!r}")
    if isinstance(fp32_layers, str):
        raise ValueError("fp32_layers: expected a sequence of name patterns, got a single string")
    for name, shapes in (input_shapes or {}).items():
        if len(shapes) != 3 or any(len(s) != len(shapes[0]) for s in shapes):
            raise ValueError(f"input_shapes[{name!r}]: expected (min, opt, max) shapes of one rank, got {shapes!r}")
        if any(not (lo <= o <= hi) for lo, o, hi in zip(*shapes)):
            raise ValueError(f"input_shapes[{name!r}]: need min <= opt <= max on every axis, got {shapes!r}")

    trt = trt or _import_tensorrt()
    weak_typing = hasattr(trt.BuilderFlag, "FP16")
    if fp16 and not weak_typing:
        raise TensorRTError(
            f"TensorRT {_trt_version(trt)} has no BuilderFlag.FP16 (TensorRT 11 builds strongly typed networks "
            "only); build with fp16=False or use TensorRT 10"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_p)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no details"
        raise TensorRTError(f"TensorRT could not parse {onnx_p.name}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.builder_optimization_level = optimization_level
    dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
    if dynamic or input_shapes:
        shapes = dict(input_shapes or {})
        missing = [t.name for t in dynamic if t.name not in shapes]
        if missing:
            raise ValueError(f"input_shapes: the ONNX has dynamic inputs {missing}; give (min, opt, max) for each")
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        flag = trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS if constraints == "obey" else \
            trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS
        config.set_flag(flag)
        marked = mark_fp32_layers(network, tuple(fp32_layers), trt)
        log.info("TensorRT: %d layer(s) pinned to fp32 in %s", len(marked), onnx_p.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {onnx_p.name} (see the TensorRT log above)")
    _atomic_write_bytes(engine_p, bytes(serialized))
    return engine_p


# -------------------------------------------------------------------------------------------------- runtime


def _torch_dtype(trt: ModuleType, dtype: Any) -> torch.dtype:
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    for attr, tdt in (("int64", torch.int64), ("bfloat16", torch.bfloat16), ("uint8", torch.uint8)):
        if hasattr(trt, attr):
            table[getattr(trt, attr)] = tdt
    if dtype not in table:
        raise TensorRTError(f"TensorRT tensor type {dtype} has no torch equivalent")
    return table[dtype]


class TensorRTEngine:
    """A deserialized engine run on torch CUDA tensors: ``engine(name=tensor, ...) -> {output name: tensor}``.

    Inputs are cast to the engine's types and made contiguous; outputs are new tensors on ``device``. The engine runs
    on its own CUDA stream (``execute_async_v3`` on the legacy default stream makes TensorRT add synchronisations),
    ordered with the torch work around it: it waits for the current stream's queued work, and the current stream
    waits for it before the outputs are used (:func:`ditto_core.devices.side_stream`). One execution context: not
    thread-safe.
    """

    def __init__(self, engine_path: str | os.PathLike[str], device: torch.device | str = "cuda",
                 trt: ModuleType | None = None):
        self.trt = trt or _import_tensorrt()
        self.device = torch.device(device)
        self.path = Path(engine_path)
        t = self.trt
        self._logger = t.Logger(t.Logger.WARNING)
        t.init_libnvinfer_plugins(self._logger, "")
        self._runtime = t.Runtime(self._logger)
        data = self.path.read_bytes()
        with _cuda_device(self.device):
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise TensorRTError(
                    f"{self.path.name}: TensorRT could not deserialize the engine (built by another TensorRT version "
                    "or for another GPU?); delete it to rebuild"
                )
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TensorRTError(f"{self.path.name}: could not create an execution context (out of GPU memory?)")
        self.stream = own_stream(self.device)  # the engine's own CUDA stream (None off CUDA)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = tuple(n for n in names if self.engine.get_tensor_mode(n) == t.TensorIOMode.INPUT)
        self.outputs = tuple(n for n in names if self.engine.get_tensor_mode(n) == t.TensorIOMode.OUTPUT)

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.trt
        missing = [n for n in self.inputs if n not in inputs]
        extra = [n for n in inputs if n not in self.inputs]
        if missing or extra:
            raise ValueError(f"{self.path.name}: expected inputs {list(self.inputs)}, got {sorted(inputs)}")
        keep: list[torch.Tensor] = []
        with _cuda_device(self.device):
            for name in self.inputs:
                x = inputs[name].to(self.device, _torch_dtype(t, self.engine.get_tensor_dtype(name))).contiguous()
                keep.append(x)
                if not self.context.set_input_shape(name, tuple(x.shape)):
                    raise ValueError(f"{self.path.name}: input {name!r} shape {tuple(x.shape)} is outside the "
                                     "engine's optimization profile")
                self.context.set_tensor_address(name, x.data_ptr())
            outs: dict[str, torch.Tensor] = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                y = torch.empty(shape, dtype=_torch_dtype(t, self.engine.get_tensor_dtype(name)), device=self.device)
                outs[name] = y
                self.context.set_tensor_address(name, y.data_ptr())
            with side_stream(self.stream, self.device, (*keep, *outs.values())) as own:
                stream = own if own is not None else torch.cuda.current_stream(self.device)
                if not self.context.execute_async_v3(stream.cuda_stream):
                    raise TensorRTError(f"{self.path.name}: execute_async_v3 failed (see the TensorRT log)")
        return outs


@contextlib.contextmanager
def _cuda_device(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        with torch.cuda.device(device):
            yield
    else:
        yield


# ------------------------------------------------------------------------------------------------- renderer


@dataclass
class TensorRTConfig:
    """TensorRT renderer settings.

    ``precision``: "fp16" (official TensorRT setting; grid sampling pinned to fp32) or "fp32".
    ``warp``: "pytorch" (hybrid, default) or "tensorrt" (decomposed 4-D grid sample, see the module doc).
    ``cache_dir``: engine cache (None: ``<models_dir>/trt_engines``). ``opset``: ONNX opset of the decoder's
    export (17: GridSample-free networks need nothing newer, and older TensorRT parsers know it); the warp is always
    exported at >= 20, the first opset that can express its 5-D grid sample before the decomposition.
    ``keep_onnx``: keep the exported ONNX beside the engine.
    """

    precision: str = "fp16"
    warp: str = "pytorch"
    fp32_layers: tuple[str, ...] = ("GridSample",)
    workspace_gb: float = 4.0
    constraints: str = "obey"
    optimization_level: int = 3
    opset: int = 17
    cache_dir: Path | None = None
    keep_onnx: bool = False

    def validate(self) -> None:
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"TensorRTConfig.precision: expected 'fp16' or 'fp32', got {self.precision!r}")
        if self.warp not in WARP_MODES:
            raise ValueError(f"TensorRTConfig.warp: expected one of {WARP_MODES}, got {self.warp!r}")
        if self.constraints not in ("obey", "prefer"):
            raise ValueError(f"TensorRTConfig.constraints: expected 'obey' or 'prefer', got {self.constraints!r}")
        if isinstance(self.fp32_layers, str):
            raise ValueError("TensorRTConfig.fp32_layers: expected a tuple of name patterns, got a string")


def ensure_engine(
    role: str,
    model: nn.Module,
    cache_dir: Path,
    batch_size: int,
    config: TensorRTConfig,
    device: torch.device,
    trt: ModuleType | None = None,
) -> Path:
    """The cached engine of ``model`` for batches 1..``batch_size``, exported and built when missing."""
    trt = trt or _import_tensorrt()
    grid = "decomposed" if role == "warp_network" else "none"
    opset = max(config.opset, 20) if grid == "decomposed" else config.opset
    with _cuda_device(device):
        name = torch.cuda.get_device_name(device)
        cc = torch.cuda.get_device_capability(device)
    key = engine_key(role, model, batch_size, config.precision, name, cc, _trt_version(trt), config.fp32_layers,
                     grid, opset, config.constraints)
    path = Path(cache_dir) / key.filename()
    if path.is_file():
        return path
    log.warning("ditto: building the TensorRT engine %s (once per GPU and settings; this takes minutes)", path.name)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    onnx_path = path.with_suffix(".onnx")
    onnx_export.export_onnx(role, model, onnx_path, "dynamic", opset, "decomposed" if grid == "decomposed" else "native")
    try:
        spec = onnx_export.ONNX_SPECS[role]
        shapes = {
            n: ((1, *s), (batch_size, *s), (batch_size, *s)) for n, s in spec.inputs
        }
        build_engine(onnx_path, path, fp16=config.precision == "fp16", fp32_layers=config.fp32_layers,
                     workspace_gb=config.workspace_gb, input_shapes=shapes, constraints=config.constraints,
                     optimization_level=config.optimization_level, trt=trt)
    finally:
        if not config.keep_onnx:
            onnx_path.unlink(missing_ok=True)
    return path


class TensorRTRenderer(Renderer):
    """:class:`ditto_core.render.Renderer` with the decoder (and optionally the warp) as TensorRT engines.

    Same interface: ``render(f_s, x_s, x_d)`` -> ``(B, 512, 512, 3)`` float32 in [0, 255];
    ``config`` (:class:`RendererConfig`: ``precision`` is the autocast of a PyTorch warp, ``batch_size`` the
    frames per call, which is also the engines' largest batch). ``trt_config`` holds the TensorRT settings.
    """

    def __init__(
        self,
        warp: nn.Module | None,
        decoder_engine: TensorRTEngine,
        device: torch.device | str = "cuda",
        config: RendererConfig | None = None,
        warp_engine: TensorRTEngine | None = None,
        trt_config: TensorRTConfig | None = None,
    ):
        if warp is None and warp_engine is None:
            raise ValueError("TensorRTRenderer: give a PyTorch warp or a warp engine")
        super().__init__(warp, None, device, config)  # type: ignore[arg-type]
        self.decoder_engine = decoder_engine
        self.warp_engine = warp_engine
        self.trt_config = trt_config or TensorRTConfig()

    @classmethod
    def from_networks(
        cls,
        warp: nn.Module,
        decoder: nn.Module,
        device: torch.device | str,
        config: RendererConfig,
        cache_dir: str | os.PathLike[str],
        trt_config: TensorRTConfig | None = None,
        trt: ModuleType | None = None,
    ) -> TensorRTRenderer:
        """Engines for ``warp`` / ``decoder`` (built and cached in ``cache_dir`` when missing) -> a renderer of
        ``config.batch_size`` frames per call. Raises :class:`TensorRTError`."""
        cfg = trt_config or TensorRTConfig()
        cfg.validate()
        config.validate()
        batch_size = config.batch_size
        cache = Path(cfg.cache_dir) if cfg.cache_dir is not None else Path(cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TensorRTError(f"cannot create the engine cache folder {cache}: {e}") from e
        dev = torch.device(device)
        dec = TensorRTEngine(ensure_engine("decoder", decoder, cache, batch_size, cfg, dev, trt), dev, trt)
        warp_engine = None
        if cfg.warp == "tensorrt":
            warp_path = ensure_engine("warp_network", warp, cache, batch_size, cfg, dev, trt)
            warp_engine = TensorRTEngine(warp_path, dev, trt)
        return cls(None if warp_engine is not None else warp, dec, dev, config, warp_engine, cfg)

    @torch.inference_mode()
    def render(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
               cancel: CancelFn | None = None) -> torch.Tensor:
        b = x_d.shape[0]
        limit = max(1, int(self.config.batch_size))
        if b > limit:  # the engines' profile ends at batch_size
            parts = [
                self.render(f_s if f_s.shape[0] != b else f_s[i : i + limit],
                            x_s if x_s.shape[0] != b else x_s[i : i + limit], x_d[i : i + limit], cancel)
                for i in range(0, b, limit)
            ]
            return torch.cat(parts)
        f_s = f_s.to(self.device, torch.float32)
        x_s = x_s.to(self.device, torch.float32)
        x_d = x_d.to(self.device, torch.float32)
        if f_s.shape[0] != b:
            f_s = f_s.expand(b, *f_s.shape[1:])
        if x_s.shape[0] != b:
            x_s = x_s.expand(b, *x_s.shape[1:])
        if self.warp_engine is not None:
            feat = self.warp_engine(feature_3d=f_s, kp_source=x_s, kp_driving=x_d)["out"]
        else:
            with autocast_context(self.device, self.config.precision):
                feat = self.warp(f_s, x_s, x_d)
        check_cancel(cancel)
        img = self.decoder_engine(feature=feat.float())["output"]
        return img.float().permute(0, 2, 3, 1).clamp(0, 1) * 255


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ditto" / ENGINE_DIRNAME


def tensorrt_renderer(
    warp: nn.Module,
    decoder: nn.Module,
    device: torch.device | str,
    config: RendererConfig,
    cache_dir: str | os.PathLike[str] | None = None,
    trt_config: TensorRTConfig | None = None,
) -> Renderer:
    """The "tensorrt" backend of :func:`ditto_core.render.make_renderer`: a :class:`TensorRTRenderer` when TensorRT
    can run here and its engines build (first use: minutes; later: loaded from ``<cache_dir>/trt_engines``, default
    ``~/.cache/ditto/trt_engines``), else :class:`BackendUnavailable` naming the reason. Without ``trt_config`` the
    engines are fp32 when ``config.precision`` is fp32 and fp16 (grid sampling pinned to fp32) otherwise, with the
    warp in PyTorch."""
    if trt_config is None:
        trt_config = TensorRTConfig(precision="fp32" if config.precision == "fp32" else "fp16")
    trt_config.validate()
    ok, why = tensorrt_available(device)
    if ok:
        try:
            cache = default_cache_dir(cache_dir) if cache_dir is not None else _default_cache_dir()
            return TensorRTRenderer.from_networks(warp, decoder, device, config, cache, trt_config)
        except (TensorRTError, OSError) as e:
            why = str(e)
        except Exception as e:  # noqa: BLE001 - any build failure falls back to PyTorch, named
            why = f"{type(e).__name__}: {e}"
    raise BackendUnavailable(why)


register_backend("tensorrt", tensorrt_renderer)
