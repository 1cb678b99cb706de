"""The TensorRT renderer backend, everything that runs without a GPU or TensorRT.

Real here: availability detection and the one-warning fallback (with the import made to fail), the engine cache
key and path, the fp32 precision rule applied to the real decomposed-warp ONNX graph, argument validation, and
ensure_engine's export + cache on a real ONNX export. TensorRT itself is replaced by ``FakeTRT``, a test double of
the TensorRT 10 Python API subset our code calls (Builder, OnnxParser, BuilderConfig, Runtime, execution context
with set_tensor_address/execute_async_v3): it checks how the code drives that API (flags, profiles, pins,
addresses), not TensorRT's behaviour. No engine was built or run on a GPU by these tests.
"""

from __future__ import annotations

import ctypes
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ditto_core.models.stitching import StitchingNetwork
from ditto_core.render import Renderer, RendererConfig, make_renderer, render_batch
from ditto_core.render import tensorrt as dtrt
from ditto_core.render.export import decompose_grid_sample_3d
from ditto_core.render.tensorrt import (
    EngineKey,
    TensorRTConfig,
    TensorRTEngine,
    TensorRTError,
    TensorRTRenderer,
    build_engine,
    default_cache_dir,
    engine_key,
    ensure_engine,
    mark_fp32_layers,
    tensorrt_available,
    weights_digest,
)
from ditto_core.testing.weight_rule import apply_weight_rule

pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")

# ------------------------------------------------------------------------------------------------ the fake


class _Enum:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"LayerType.{self.name}"


class FakeTensor:
    def __init__(self, name: str, dtype, shape=()):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)


class FakeLayer:
    def __init__(self, name: str, kind: str, dtype):
        self.name, self.type = name, _Enum(kind)
        self._outs = [FakeTensor(name + "_out", dtype)]
        self.precision = None
        self.output_types: dict[int, object] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outs)

    def get_output(self, i):
        return self._outs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


_OP_TYPES = {"GridSample": "GRID_SAMPLE", "Conv": "CONVOLUTION", "Reshape": "SHUFFLE", "Shape": "SHAPE",
             "Concat": "CONCATENATION", "Split": "SLICE", "Pad": "SLICE", "Gemm": "MATRIX_MULTIPLY",
             "MatMul": "MATRIX_MULTIPLY", "ReduceSum": "REDUCE", "Floor": "UNARY", "Clip": "ACTIVATION"}


class FakeNetwork:
    def __init__(self):
        self.layers: list[FakeLayer] = []
        self.inputs: list[FakeTensor] = []

    num_layers = property(lambda self: len(self.layers))
    num_inputs = property(lambda self: len(self.inputs))

    def get_layer(self, i):
        return self.layers[i]

    def get_input(self, i):
        return self.inputs[i]


class FakeTRT:
    """Module-like stand-in for ``tensorrt`` (10.x unless ``weak_typing=False``)."""

    def __init__(self, version: str = "10.7.0", weak_typing: bool = True, build_ok: bool = True):
        self.__version__ = version
        self.float32, self.float16, self.int32, self.int8, self.bool, self.int64 = (
            _Enum(n) for n in ("FLOAT", "HALF", "INT32", "INT8", "BOOL", "INT64"))
        flags = ["OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"] + (["FP16"] if weak_typing else [])
        self.BuilderFlag = SimpleNamespace(**{f: f for f in flags})
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.build_ok = build_ok
        self.builds: list[dict] = []
        self.functions: dict[str, tuple] = {}  # engine "fn" -> (shape fn, compute fn)
        fake = self

        class Logger:
            WARNING = 2

            def __init__(self, level):
                self.level = level

        self.Logger = Logger

        class Builder:
            def __init__(self, logger):
                self.record: dict = {"flags": [], "profiles": []}

            def create_network(self, flags):
                self.record["network_flags"] = flags
                self.network = FakeNetwork()
                return self.network

            def create_builder_config(self):
                rec = self.record

                class Config:
                    builder_optimization_level = None

                    def set_memory_pool_limit(self, pool, size):
                        rec["pool"] = (pool, size)

                    def set_flag(self, flag):
                        rec["flags"].append(flag)

                    def add_optimization_profile(self, profile):
                        rec["profiles"].append(profile.shapes)

                self.config = Config()
                return self.config

            def create_optimization_profile(self):
                class Profile:
                    def __init__(self):
                        self.shapes = {}

                    def set_shape(self, name, lo, opt, hi):
                        self.shapes[name] = (lo, opt, hi)

                return Profile()

            def build_serialized_network(self, network, config):
                self.record["level"] = config.builder_optimization_level
                self.record["pinned"] = [l.name for l in network.layers if l.precision is fake.float32]
                fake.builds.append(self.record)
                return b"FAKE-ENGINE" if fake.build_ok else None

        self.Builder = Builder

        class OnnxParser:
            def __init__(self, network, logger):
                self.network, self.errors = network, []

            num_errors = property(lambda self: len(self.errors))

            def get_error(self, i):
                return self.errors[i]

            def parse_from_file(self, path):
                m = onnx.load(path)
                inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
                ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
                         for vi in (*inferred.graph.input, *inferred.graph.value_info)}
                inits = {i.name for i in m.graph.initializer}
                for vi in m.graph.input:
                    if vi.name not in inits:
                        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
                        self.network.inputs.append(FakeTensor(vi.name, fake.float32, dims))
                for init in m.graph.initializer:
                    dt = fake.float32 if init.data_type == onnx.TensorProto.FLOAT else fake.int64
                    self.network.layers.append(FakeLayer(init.name, "CONSTANT", dt))
                for n in m.graph.node:
                    if n.op_type == "GridSample" and ranks.get(n.input[0]) != 4:  # NVIDIA/TensorRT #4618
                        self.errors.append(f"{n.name}: TensorRT only supports 4D GridSample operations")
                        continue
                    dt = fake.int64 if n.op_type == "Shape" else fake.float32
                    self.network.layers.append(FakeLayer(n.name, _OP_TYPES.get(n.op_type, "ELEMENTWISE"), dt))
                return not self.errors

        self.OnnxParser = OnnxParser

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return FakeEngine(fake, json.loads(data)) if data.startswith(b"{") else None

        self.Runtime = Runtime

    def init_libnvinfer_plugins(self, logger, namespace):
        return True


class FakeEngine:
    """An 'engine' described by JSON: {"inputs": [...], "outputs": [...], "fn": name, "max_batch": n}."""

    def __init__(self, trt: FakeTRT, spec: dict):
        self.trt, self.spec = trt, spec
        self.names = [*spec["inputs"], *spec["outputs"]]

    num_io_tensors = property(lambda self: len(self.names))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name in self.spec["inputs"] else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self.trt.float32

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return shape[0] <= self.engine.spec["max_batch"]

    def get_tensor_shape(self, name):
        shape_fn, _ = self.engine.trt.functions[self.engine.spec["fn"]]
        return shape_fn(self.shapes)[name]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        shape_fn, fn = self.engine.trt.functions[self.engine.spec["fn"]]

        def view(name, shape):
            n = int(np.prod(shape))
            return np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses[name])).reshape(shape)

        inputs = {n: view(n, self.shapes[n]).copy() for n in self.engine.spec["inputs"]}
        for name, value in fn(inputs).items():
            view(name, shape_fn(self.shapes)[name])[...] = value
        return True


def _engine_file(path: Path, inputs, outputs, fn: str, max_batch: int) -> Path:
    path.write_bytes(json.dumps({"inputs": inputs, "outputs": outputs, "fn": fn, "max_batch": max_batch}).encode())
    return path


@pytest.fixture
def no_cuda_stream(monkeypatch):
    """TensorRTEngine asks torch for the current CUDA stream; on this CPU machine it gets a dummy handle."""
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: SimpleNamespace(cuda_stream=0))


# ----------------------------------------------------------------------------------------------- availability


def _tensorrt(precision: str = "fp32", batch_size: int = 4, trt_config: TensorRTConfig | None = None):
    """The "tensorrt" backend through the registry, over tiny networks on the CPU."""
    warp, decoder = _TinyWarp(), _TinyDecoder()
    if trt_config is not None:
        return dtrt.tensorrt_renderer(warp, decoder, "cpu", RendererConfig(precision, batch_size), None, trt_config)
    return make_renderer("tensorrt", warp, decoder, "cpu", RendererConfig(precision, batch_size), Path("/nonexistent"))


def test_available_needs_a_cuda_device():
    ok, why = tensorrt_available("cpu")
    assert not ok and "CUDA device" in why


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_available_without_cuda():
    ok, why = tensorrt_available("cuda")
    assert not ok and "CUDA is not available" in why


def test_available_import_failures(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    ok, why = tensorrt_available("cuda")
    assert not ok and "'tensorrt' Python package is not installed" in why

    def broken():
        raise OSError("libnvinfer.so.10: cannot open shared object file")

    monkeypatch.setattr(dtrt, "_import_tensorrt", broken)
    ok, why = tensorrt_available("cuda")
    assert not ok and "failed to load" in why and "libnvinfer" in why

    monkeypatch.setattr(dtrt, "_import_tensorrt", lambda: FakeTRT("8.6.1"))
    ok, why = tensorrt_available("cuda")
    assert not ok and "8.6.1 is too old" in why

    monkeypatch.setattr(dtrt, "_import_tensorrt", lambda: FakeTRT("10.7.0"))
    assert tensorrt_available("cuda") == (True, "TensorRT 10.7.0 on NVIDIA H100 80GB HBM3")


def test_make_renderer_falls_back_with_one_warning(caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="ditto"):
        r = _tensorrt(batch_size=3)
    assert type(r) is Renderer and r.config.batch_size == 3
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("TensorRT renderer unavailable: ")
    assert warnings[0].endswith("; using the PyTorch renderer") and "CUDA device" in warnings[0]

    caplog.clear()  # TensorRT present but the engines do not build: same single warning, with the reason
    monkeypatch.setattr(dtrt, "tensorrt_available", lambda device=None: (True, "TensorRT 10.7.0 on a GPU"))

    def fail(*a, **k):
        raise TensorRTError("TensorRT could not parse decoder.onnx: boom")

    monkeypatch.setattr(TensorRTRenderer, "from_networks", classmethod(lambda cls, *a, **k: fail()))
    with caplog.at_level(logging.WARNING, logger="ditto"):
        r = _tensorrt(batch_size=2)
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert type(r) is Renderer and warnings == [
        "TensorRT renderer unavailable: TensorRT could not parse decoder.onnx: boom; using the PyTorch renderer"]


def test_make_renderer_arguments(caplog):
    warp, dec = _TinyWarp(), _TinyDecoder()
    with caplog.at_level(logging.WARNING, logger="ditto"):
        assert type(make_renderer("pytorch", warp, dec, "cpu", RendererConfig("fp32", 2))) is Renderer
    assert not caplog.records
    with pytest.raises(ValueError, match="backend"):
        make_renderer("onnx", warp, dec)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            _tensorrt(batch_size=bad)
    with pytest.raises(ValueError, match="warp"):
        _tensorrt(trt_config=TensorRTConfig(warp="onnx"))
    with pytest.raises(ValueError, match="precision"):
        _tensorrt(trt_config=TensorRTConfig(precision="bf16"))


# ------------------------------------------------------------------------------------------------- cache key


def test_weights_digest_follows_the_weights():
    a = apply_weight_rule(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)), "k")  # holds a 0-d int64 buffer
    b = apply_weight_rule(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)), "k")
    assert weights_digest(a) == weights_digest(b) and len(weights_digest(a)) == 16
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_engine_key_and_file_name():
    net = StitchingNetwork()
    base = dict(role="decoder", model=net, batch_size=4, precision="fp16", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability=(9, 0), trt_version="10.7.0.23")
    key = engine_key(**base)
    assert key == engine_key(**base)
    name = key.filename()
    assert name.startswith("decoder-fp16-b1-4-4-NVIDIA_H100_80GB_HBM3-sm90-trt10.7.0.23-") and name.endswith(".engine")
    assert all(c.isalnum() or c in "-_." for c in name)
    variants = [dict(batch_size=8), dict(precision="fp32"), dict(gpu_name="NVIDIA A100-SXM4-80GB"),
                dict(compute_capability=(8, 0)), dict(trt_version="10.8.0"), dict(role="warp_network"),
                dict(fp32_layers=("GridSample", "Softmax")), dict(grid_sample="decomposed"), dict(constraints="prefer")]
    names = {engine_key(**{**base, **v}).filename() for v in variants}
    assert name not in names and len(names) == len(variants)
    other = StitchingNetwork()
    with torch.no_grad():
        other.mlp[0].bias.add_(1.0)
    assert engine_key(**{**base, "model": other}).filename() != name
    # fp32 engines have no pins: the pin list does not split the cache
    k32 = dict(base, precision="fp32")
    assert engine_key(**k32) == engine_key(**{**k32, "fp32_layers": ("Softmax",)})
    assert isinstance(key, EngineKey) and key.batch == (1, 4, 4)
    with pytest.raises(ValueError, match="precision"):
        engine_key(**{**base, "precision": "bf16"})
    with pytest.raises(ValueError, match="batch_size"):
        engine_key(**{**base, "batch_size": 0})


def test_default_cache_dir(tmp_path):
    assert default_cache_dir(tmp_path) == tmp_path / "trt_engines"


# ---------------------------------------------------------------------------------------- the precision rule


class _WarpLike(nn.Module):
    """conv -> 5-D grid sample -> conv: the shape of the warp's data path, small."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv3d(2, 2, 1)
        self.post = nn.Conv3d(2, 2, 1)

    def forward(self, x, g):
        return self.post(F.grid_sample(self.pre(x), g, align_corners=False))


def _warp_like_onnx(path: Path, decomposed: bool) -> Path:
    x, g = torch.randn(1, 2, 4, 5, 6), torch.rand(1, 3, 4, 5, 3) * 2 - 1
    torch.onnx.export(_WarpLike(), (x, g), str(path), dynamo=False, opset_version=20, input_names=["x", "g"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "g": {0: "n"}, "y": {0: "n"}})
    if decomposed:
        onnx.save(decompose_grid_sample_3d(onnx.load(str(path))), str(path))
    return path


def test_fp32_pins_cover_exactly_the_grid_sample_subgraph(tmp_path):
    """Parsed as TensorRT's parser names layers (after the ONNX nodes), the decomposed graph's grid-sample layers,
    and only they, are pinned: precision and every output type fp32; constants and shape layers untouched."""
    trt = FakeTRT()
    path = _warp_like_onnx(tmp_path / "w.onnx", decomposed=True)
    net = FakeNetwork()
    assert trt.OnnxParser(net, None).parse_from_file(str(path))
    marked = mark_fp32_layers(net, ("GridSample",), trt)
    nodes = onnx.load(str(path)).graph.node
    expected = [n.name for n in nodes if "GridSample" in n.name and n.op_type not in ("Shape", "Constant")]
    assert sorted(marked) == sorted(expected) and len(expected) > 10
    assert any(n.op_type == "GridSample" and n.name in marked for n in nodes)
    assert not any("Conv" in m for m in marked)
    for layer in net.layers:
        pinned = layer.name in marked
        assert (layer.precision is trt.float32) == pinned
        assert layer.output_types == ({0: trt.float32} if pinned else {})


def test_fp32_pins_by_layer_type_and_skips(tmp_path):
    trt = FakeTRT()
    net = FakeNetwork()
    net.layers = [FakeLayer("sampler", "GRID_SAMPLE", trt.float32), FakeLayer("/GridSample/shape", "SHAPE", trt.int64),
                  FakeLayer("/GridSample/k", "CONSTANT", trt.float32), FakeLayer("/GridSample/idx", "ELEMENTWISE",
                                                                                 trt.int32),
                  FakeLayer("/conv", "CONVOLUTION", trt.float32)]
    assert mark_fp32_layers(net, ("GridSample",), trt) == ["sampler"]
    assert mark_fp32_layers(net, (), trt) == []


def test_native_5d_warp_does_not_parse(tmp_path):
    """With the native 5-D GridSample the parse fails (as TensorRT 10 does, NVIDIA/TensorRT #4618) and
    build_engine says so; the decomposed graph parses."""
    trt = FakeTRT()
    native = _warp_like_onnx(tmp_path / "n.onnx", decomposed=False)
    with pytest.raises(TensorRTError, match="could not parse n.onnx: .*4D GridSample"):
        build_engine(native, tmp_path / "n.engine", input_shapes=_xg_shapes(), trt=trt)
    assert not (tmp_path / "n.engine").exists()
    build_engine(_warp_like_onnx(tmp_path / "d.onnx", decomposed=True), tmp_path / "d.engine",
                 input_shapes=_xg_shapes(), trt=trt)
    assert (tmp_path / "d.engine").read_bytes() == b"FAKE-ENGINE"


def _xg_shapes(hi: int = 4):
    return {"x": ((1, 2, 4, 5, 6), (hi, 2, 4, 5, 6), (hi, 2, 4, 5, 6)),
            "g": ((1, 3, 4, 5, 3), (hi, 3, 4, 5, 3), (hi, 3, 4, 5, 3))}


# ---------------------------------------------------------------------------------------------- build_engine


def test_build_engine_drives_the_builder(tmp_path):
    trt = FakeTRT()
    onnx_path = _warp_like_onnx(tmp_path / "w.onnx", decomposed=True)
    out = build_engine(onnx_path, tmp_path / "cache" / "w.engine", fp16=True, workspace_gb=2, input_shapes=_xg_shapes(),
                       optimization_level=4, trt=trt)
    assert out.read_bytes() == b"FAKE-ENGINE" and not list((tmp_path / "cache").glob("*.tmp"))
    rec = trt.builds[-1]
    assert rec["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    assert rec["pool"] == ("WORKSPACE", 2 << 30) and rec["level"] == 4
    assert rec["profiles"] == [{k: tuple(map(tuple, v)) for k, v in _xg_shapes().items()}]
    assert rec["pinned"] and all("GridSample" in n for n in rec["pinned"])

    build_engine(onnx_path, tmp_path / "w32.engine", fp16=False, input_shapes=_xg_shapes(), trt=trt)
    assert trt.builds[-1]["flags"] == [] and trt.builds[-1]["pinned"] == []
    build_engine(onnx_path, tmp_path / "wp.engine", constraints="prefer", input_shapes=_xg_shapes(), trt=trt)
    assert trt.builds[-1]["flags"] == ["FP16", "PREFER_PRECISION_CONSTRAINTS"]


def test_build_engine_failures(tmp_path):
    onnx_path = _warp_like_onnx(tmp_path / "w.onnx", decomposed=True)
    with pytest.raises(TensorRTError, match="failed to build"):
        build_engine(onnx_path, tmp_path / "a.engine", input_shapes=_xg_shapes(), trt=FakeTRT(build_ok=False))
    assert not (tmp_path / "a.engine").exists()
    with pytest.raises(TensorRTError, match="no BuilderFlag.FP16"):
        build_engine(onnx_path, tmp_path / "b.engine", input_shapes=_xg_shapes(), trt=FakeTRT("11.4.0", False))
    trt11 = FakeTRT("11.4.0", weak_typing=False)
    build_engine(onnx_path, tmp_path / "c.engine", fp16=False, input_shapes=_xg_shapes(), trt=trt11)
    assert (tmp_path / "c.engine").exists()
    with pytest.raises(ValueError, match="dynamic inputs"):
        build_engine(onnx_path, tmp_path / "d.engine", trt=FakeTRT())


def test_build_engine_argument_errors(tmp_path):
    onnx_path = _warp_like_onnx(tmp_path / "w.onnx", decomposed=True)
    e = tmp_path / "x.engine"
    cases = [
        (dict(onnx_path=tmp_path / "missing.onnx"), "not a file"),
        (dict(constraints="strict"), "constraints"),
        (dict(workspace_gb=0), "workspace_gb"),
        (dict(optimization_level=7), "optimization_level"),
        (dict(fp32_layers="GridSample"), "fp32_layers"),
        (dict(input_shapes={"x": ((1, 2), (4, 2))}), "min, opt, max"),
        (dict(input_shapes={"x": ((2, 2), (1, 2), (4, 2))}), "min <= opt <= max"),
    ]
    for kw, msg in cases:
        args = {"onnx_path": onnx_path, "engine_path": e, **kw}
        with pytest.raises(ValueError, match=msg):
            build_engine(**args)  # raised before TensorRT is imported: no fake needed
    assert not e.exists()


# ------------------------------------------------------------------------------------ ensure_engine (cache)


def test_ensure_engine_exports_builds_once_and_caches(tmp_path, monkeypatch):
    """A real ONNX export (the stitching MLP: cheap) parsed by the fake; the second call finds the cached file."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(dtrt, "_cuda_device", lambda device: __import__("contextlib").nullcontext())
    trt = FakeTRT()
    net = apply_weight_rule(StitchingNetwork(), "trt-cache")
    cfg = TensorRTConfig()
    cache = tmp_path / "trt_engines"
    path = ensure_engine("stitch_network", net, cache, 3, cfg, torch.device("cuda"), trt)
    key = engine_key("stitch_network", net, 3, "fp16", "NVIDIA H100 80GB HBM3", (9, 0), "10.7.0", opset=17)
    assert path == cache / key.filename() and path.read_bytes() == b"FAKE-ENGINE"
    assert trt.builds[-1]["profiles"] == [{"kp_source": ((1, 21, 3), (3, 21, 3), (3, 21, 3)),
                                            "kp_driving": ((1, 21, 3), (3, 21, 3), (3, 21, 3))}]
    assert sorted(p.name for p in cache.iterdir()) == [path.name]  # the ONNX is removed (keep_onnx=False)
    assert ensure_engine("stitch_network", net, cache, 3, cfg, torch.device("cuda"), trt) == path
    assert len(trt.builds) == 1
    path4 = ensure_engine("stitch_network", net, cache, 4, cfg, torch.device("cuda"), trt)
    assert path4 != path and len(trt.builds) == 2


# ------------------------------------------------------------------------------------- runtime and renderer


class _TinyWarp(nn.Module):
    """Stand-in W: (B, 2, 2, 4, 4) volume + keypoints -> (B, 4, 4, 4) features."""

    def forward(self, f_s, x_s, x_d):
        b = f_s.shape[0]
        shift = (x_d - x_s).mean(dim=(1, 2)).view(b, 1, 1, 1)
        return f_s.reshape(b, 4, 4, 4) + shift


class _TinyDecoder(nn.Module):
    """Stand-in G: (B, 4, 4, 4) -> (B, 3, 8, 8) in (0, 1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, feature):
        return torch.sigmoid(F.pixel_shuffle(self.conv(feature), 2))


def _register(trt: FakeTRT, decoder: nn.Module, warp: nn.Module | None = None) -> None:
    def dec(inputs):
        with torch.no_grad():
            return {"output": decoder(torch.from_numpy(inputs["feature"])).numpy()}

    trt.functions["dec"] = (lambda s: {"output": (s["feature"][0], 3, 8, 8)}, dec)
    if warp is not None:
        def w(inputs):
            with torch.no_grad():
                t = {k: torch.from_numpy(v) for k, v in inputs.items()}
                return {"out": warp(t["feature_3d"], t["kp_source"], t["kp_driving"]).numpy()}

        trt.functions["warp"] = (lambda s: {"out": (s["feature_3d"][0], 4, 4, 4)}, w)


def test_engine_binds_inputs_and_outputs_by_name(tmp_path, no_cuda_stream):
    trt = FakeTRT()
    dec = _TinyDecoder()
    _register(trt, dec)
    engine = TensorRTEngine(_engine_file(tmp_path / "d.engine", ["feature"], ["output"], "dec", 2), "cpu", trt)
    assert engine.inputs == ("feature",) and engine.outputs == ("output",)
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)[:, :, :, :]  # cast and made contiguous by the engine
    (out,) = engine(feature=x.transpose(2, 3)).values()
    with torch.no_grad():
        ref = dec(x.transpose(2, 3).float())
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-6)
    with pytest.raises(ValueError, match="expected inputs"):
        engine(image=x)
    with pytest.raises(ValueError, match="optimization profile"):
        engine(feature=torch.randn(3, 4, 4, 4))
    with pytest.raises(TensorRTError, match="could not deserialize"):
        (tmp_path / "bad.engine").write_bytes(b"\x00garbage")
        TensorRTEngine(tmp_path / "bad.engine", "cpu", trt)



def test_engine_runs_on_its_own_stream_in_order_with_the_current_one(tmp_path, monkeypatch):
    """On CUDA each engine gets its own stream (not the legacy default stream): the launch gets that stream's
    handle, which first waits for the current stream; inputs and outputs are marked used by it; the current stream
    then waits for it. Recorded with stand-ins of torch.cuda's streams (CPU tensors: nothing to record_stream)."""
    from contextlib import nullcontext

    from ditto_core import devices

    calls = []

    class Stream:
        def __init__(self, name, handle):
            self.name, self.cuda_stream = name, handle

        def wait_stream(self, other):
            calls.append(("wait", self.name, other.name))

    current = Stream("current", 1)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: calls.append(("new", str(device))) or
                        Stream("engine", 42))
    monkeypatch.setattr(dtrt, "_cuda_device", lambda device: nullcontext())
    assert devices.own_stream(torch.device("cpu")) is None and calls == []
    trt = FakeTRT()
    dec = _TinyDecoder()
    _register(trt, dec)
    engine = TensorRTEngine(_engine_file(tmp_path / "d.engine", ["feature"], ["output"], "dec", 2), "cpu", trt)
    assert engine.stream is None  # off CUDA: the current stream
    engine.stream = devices.own_stream(torch.device("cuda", 1))
    assert calls == [("new", "cuda:1")]
    run = FakeContext.execute_async_v3
    monkeypatch.setattr(FakeContext, "execute_async_v3",
                        lambda self, stream: calls.append(("launch", stream)) or run(self, stream))
    x = torch.randn(2, 4, 4, 4)
    (out,) = engine(feature=x).values()
    with torch.no_grad():
        assert torch.allclose(out, dec(x), atol=1e-6)
    assert calls[1:] == [("wait", "engine", "current"), ("launch", 42), ("wait", "current", "engine")]
    calls.clear()
    engine.stream = None
    engine(feature=x)
    assert calls == [("launch", 1)]

@pytest.mark.parametrize("warp_in_trt", [False, True])
def test_renderer_equals_pytorch_renderer(tmp_path, no_cuda_stream, warp_in_trt):
    """Same frames as the PyTorch Renderer batch by batch (two source volumes, per-frame x_s, a last short batch),
    and render() of more frames than the engines' batch splits them."""
    trt = FakeTRT()
    warp, dec = _TinyWarp(), _TinyDecoder()
    _register(trt, dec, warp)
    dec_engine = TensorRTEngine(_engine_file(tmp_path / "d.engine", ["feature"], ["output"], "dec", 3), "cpu", trt)
    warp_engine = None
    if warp_in_trt:
        warp_engine = TensorRTEngine(_engine_file(tmp_path / "w.engine", ["feature_3d", "kp_source", "kp_driving"],
                                                  ["out"], "warp", 3), "cpu", trt)
    cfg = RendererConfig("fp32", 3)
    r_trt = TensorRTRenderer(None if warp_in_trt else warp, dec_engine, "cpu", cfg, warp_engine)
    r_pt = Renderer(warp, dec, "cpu", cfg)
    g = torch.Generator().manual_seed(2)
    f_s = torch.randn(2, 2, 2, 4, 4, generator=g)
    x_s = torch.randn(7, 21, 3, generator=g)
    x_d = torch.randn(7, 21, 3, generator=g)
    batches = [list(range(i, min(i + 3, 7))) for i in range(0, 7, 3)]
    got = [render_batch(r_trt, f_s, x_s[b], x_d[b], [i % 2 for i in b]) for b in batches]
    ref = [render_batch(r_pt, f_s, x_s[b], x_d[b], [i % 2 for i in b]) for b in batches]
    assert [len(a) for a in got] == [3, 3, 1]
    for a, b in zip(got, ref):
        assert a.shape == b.shape and a.shape[1:] == (8, 8, 3)
        assert torch.allclose(a, b, atol=1e-4)
    big = r_trt.render(f_s[:1], x_s[:1], x_d)  # 7 frames > batch 3
    assert torch.allclose(big, r_pt.render(f_s[:1], x_s[:1], x_d), atol=1e-4)
    assert r_trt.config is cfg and isinstance(r_trt, Renderer)


def test_renderer_needs_a_warp(tmp_path, no_cuda_stream):
    trt = FakeTRT()
    _register(trt, _TinyDecoder())
    dec_engine = TensorRTEngine(_engine_file(tmp_path / "d.engine", ["feature"], ["output"], "dec", 3), "cpu", trt)
    with pytest.raises(ValueError, match="warp"):
        TensorRTRenderer(None, dec_engine, "cpu")


def test_ensure_engine_warp_is_decomposed_at_opset_20(tmp_path, monkeypatch):
    """The warp engine is built from the decomposed export at opset >= 20 (recorded, not run: the full warp export
    is covered by test_export)."""
    import ditto_core.render.export as export

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(dtrt, "_cuda_device", lambda device: __import__("contextlib").nullcontext())
    calls = []

    def fake_export(role, model, path, batch, opset, grid_sample):
        calls.append((role, batch, opset, grid_sample))
        return _warp_like_onnx(Path(path), decomposed=True)

    monkeypatch.setattr(export, "export_onnx", fake_export)
    monkeypatch.setattr(export, "ONNX_SPECS", {**export.ONNX_SPECS, "warp_network": export.OnnxSpec(
        "warp_network", (("x", (2, 4, 5, 6)), ("g", (3, 4, 5, 3))), ("y",))})
    trt = FakeTRT()
    path = ensure_engine("warp_network", StitchingNetwork(), tmp_path, 4, TensorRTConfig(), torch.device("cuda"), trt)
    assert calls == [("warp_network", "dynamic", 20, "decomposed")]
    assert path.name.startswith("warp_network-fp16-b1-4-4-GPU-sm86-trt10.7.0-")
    assert trt.builds[-1]["pinned"] and trt.builds[-1]["profiles"] == [{k: tuple(map(tuple, v))
                                                                       for k, v in _xg_shapes().items()}]


@pytest.mark.parametrize("precision,engine_precision", [("fp32", "fp32"), ("fp16", "fp16"), ("bf16", "fp16")])
def test_make_renderer_engine_precision_follows_the_models(monkeypatch, precision, engine_precision):
    seen = []
    monkeypatch.setattr(dtrt, "tensorrt_available", lambda device=None: (True, "TensorRT 10.7.0 on a GPU"))

    def record(cls, warp, decoder, device, config, cache_dir, trt_config):
        seen.append((config.batch_size, cache_dir, trt_config))
        return "the TensorRT renderer"

    monkeypatch.setattr(TensorRTRenderer, "from_networks", classmethod(record))
    assert _tensorrt(precision=precision, batch_size=5) == "the TensorRT renderer"
    (batch, cache_dir, cfg), = seen
    assert batch == 5 and cfg.precision == engine_precision and cfg.warp == "pytorch"
    assert cache_dir == Path("/nonexistent") / "trt_engines"  # engines are kept beside the models
