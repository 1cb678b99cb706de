"""ONNX export of the renderer networks: each export run with onnxruntime (CPU) against PyTorch.

Weights come from the golden weight rule (any salt); inputs are plausible random tensors. fp32 parity is relative
L2 <= 1e-4 on every output. The warp and the decoder are exported and run once each at full size (seconds each).
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from conftest import rel_l2
from ditto_core.render.export import (
    ONNX_SPECS,
    ExportError,
    add_export_command,
    decompose_grid_sample_3d,
    example_inputs,
    export_onnx,
    grid_sample_nodes,
    onnx_filename,
)
from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.stitching import StitchingNetwork
from ditto_core.models.warping import WarpingNetwork
from ditto_core.testing.weight_rule import apply_weight_rule

pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")

SALT = "onnx-export-test"
TOL = 1e-4
BUILD = {
    "appearance_extractor": AppearanceFeatureExtractor,
    "motion_extractor": MotionExtractor,
    "warp_network": WarpingNetwork,
    "decoder": SPADEDecoder,
    "stitch_network": StitchingNetwork,
}


def _net(role: str) -> torch.nn.Module:
    return apply_weight_rule(BUILD[role](), SALT)


def _session(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _torch(net: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = net(*inputs.values())
    return out if isinstance(out, tuple) else (out,)


def _check_parity(role: str, net: torch.nn.Module, path, batch: int = 1, seed: int = 1) -> None:
    inputs = example_inputs(role, batch, seed=seed)
    ref = _torch(net, inputs)
    got = _session(path).run(list(ONNX_SPECS[role].outputs), {k: v.numpy() for k, v in inputs.items()})
    assert len(got) == len(ref)
    for name, o, r in zip(ONNX_SPECS[role].outputs, got, ref):
        assert o.shape == tuple(r.shape), f"{role}.{name}: shape {o.shape} != {tuple(r.shape)}"
        err = rel_l2(o, r)
        assert err <= TOL, f"{role}.{name}: relative L2 {err:.2e} > {TOL:.0e}"


def _io_names(path) -> tuple[list[str], list[str]]:
    m = onnx.load(str(path), load_external_data=False)
    return [i.name for i in m.graph.input], [o.name for o in m.graph.output]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_export")


@pytest.mark.parametrize("role", ["appearance_extractor", "motion_extractor", "stitch_network", "decoder"])
def test_export_matches_pytorch(role, onnx_dir):
    net = _net(role)
    path = export_onnx(role, net, onnx_dir / onnx_filename(role))
    spec = ONNX_SPECS[role]
    assert _io_names(path) == (list(spec.input_names), list(spec.outputs))
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert meta["ditto.role"] == role and meta["ditto.batch"] == "dynamic" and meta["ditto.opset"] == "20"
    _check_parity(role, net, path)
    assert not net.training  # the export left the model as it found it (eval)


def test_dynamic_batch_of_two(onnx_dir):
    """One dynamic export runs at B=1 and B=2, and item i of B=2 equals PyTorch's item i."""
    for role in ("appearance_extractor", "stitch_network"):
        net = _net(role)
        path = export_onnx(role, net, onnx_dir / f"{role}_b.onnx")
        _check_parity(role, net, path, batch=2, seed=3)


def test_fixed_batch_export_has_static_shapes(tmp_path):
    net = _net("stitch_network")
    path = export_onnx("stitch_network", net, tmp_path / "s.onnx", batch=3)
    m = onnx.load(str(path))
    for vi in (*m.graph.input, *m.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        assert dims == [3, 21, 3], vi.name
    _check_parity("stitch_network", net, path, batch=3)


@pytest.fixture(scope="module")
def warp_net():
    return _net("warp_network")


@pytest.fixture(scope="module")
def warp_native(warp_net, onnx_dir):
    """The warp exported with its native 5-D GridSample (once per module)."""
    return export_onnx("warp_network", warp_net, onnx_dir / onnx_filename("warp_network"))


def test_warp_native_export(warp_net, warp_native):
    """The two 5-D grid samples export as standard GridSample-20 nodes (named as the official graph's)."""
    path = warp_native
    m = onnx.load(str(path))
    assert onnx_filename("warp_network") == "warp_network_ori.onnx"
    assert [n.name for n in grid_sample_nodes(m)] == ["/dense_motion_network/GridSample", "/GridSample"]
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 20
    assert _io_names(path) == (["feature_3d", "kp_source", "kp_driving"], ["out"])
    _check_parity("warp_network", warp_net, path)


def test_warp_decomposed_export(warp_net, warp_native, onnx_dir):
    """The TensorRT-compatible warp: no 5-D GridSample left, two 4-D ones, every new node named .../GridSample/...,
    and still the PyTorch output."""
    path = export_onnx("warp_network", warp_net, onnx_dir / "warp_gs4d.onnx", grid_sample="decomposed")
    m = onnx.load(str(path))
    assert grid_sample_nodes(m) == []
    assert [n.name for n in grid_sample_nodes(m, rank=4)] == ["/dense_motion_network/GridSample", "/GridSample"]
    native = onnx.load(str(warp_native))
    native_names = {n.name for n in native.graph.node}
    added = [n for n in m.graph.node if n.name not in native_names]
    assert added and all("GridSample" in n.name for n in added)
    assert {p.key: p.value for p in m.metadata_props}["ditto.grid_sample"] == "decomposed"
    _check_parity("warp_network", warp_net, path)


# ------------------------------------------------------------------------------------- decomposition unit tests


class _GridSample(torch.nn.Module):
    def __init__(self, align_corners: bool = False, mode: str = "bilinear"):
        super().__init__()
        self.align_corners, self.mode = align_corners, mode

    def forward(self, x, g):
        return F.grid_sample(x, g, mode=self.mode, align_corners=self.align_corners)


def _export_gs(path, x, g, **kw) -> onnx.ModelProto:
    torch.onnx.export(_GridSample(**kw), (x, g), str(path), dynamo=False, opset_version=20, input_names=["x", "g"],
                      output_names=["y"], dynamic_axes={"x": {0: "n", 1: "c"}, "g": {0: "n"}, "y": {0: "n", 1: "c"}})
    return onnx.load(str(path))


def test_decomposed_grid_sample_equals_5d(tmp_path):
    """Against torch's 5-D grid_sample (bilinear, zeros, align_corners=False) on points inside, on the borders,
    and outside the volume on every axis, at batch 1 and 2 (dynamic N and C)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 5, 7, 6, generator=gen)
    g = torch.rand(2, 4, 6, 5, 3, generator=gen) * 2.8 - 1.4
    edges = torch.tensor([[1, 1, 1], [-1, -1, -1], [0.99, -1.2, 1.0], [1.3, 0.2, -1.05], [0.1, 1.15, 0.3],
                          [-0.2, 0.4, -1.3], [0.0, 0.0, 1.2]])
    g[0, 0, 0, : len(edges) - 2] = edges[:5]
    g[1, 0, 0, :2] = edges[5:]
    model = decompose_grid_sample_3d(_export_gs(tmp_path / "gs.onnx", x, g))
    onnx.checker.check_model(model, full_check=True)
    assert grid_sample_nodes(model) == [] and len(grid_sample_nodes(model, rank=4)) == 1
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = _GridSample()(x.double(), g.double())
    for n in (1, 2):
        (y,) = sess.run(None, {"x": x[:n].numpy(), "g": g[:n].numpy()})
        assert rel_l2(y, ref[:n]) < 1e-5
        assert np.abs(y - ref[:n].numpy()).max() < 1e-4
    (y,) = sess.run(None, {"x": x[:1, :2].numpy(), "g": g[:1].numpy()})  # another channel count
    assert rel_l2(y, ref[:1, :2]) < 1e-5


def test_decompose_leaves_other_models_alone(tmp_path):
    x, g = torch.randn(1, 2, 5, 6), torch.rand(1, 3, 4, 2) * 2 - 1  # 4-D: nothing to do
    m = _export_gs(tmp_path / "gs4.onnx", x, g)
    out = decompose_grid_sample_3d(m)
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in m.graph.node]


@pytest.mark.parametrize("kw", [{"align_corners": True}, {"mode": "nearest"}])
def test_decompose_rejects_other_sampling_modes(tmp_path, kw):
    x, g = torch.randn(1, 2, 3, 4, 5), torch.rand(1, 2, 3, 4, 3) * 2 - 1
    m = _export_gs(tmp_path / "gs.onnx", x, g, **kw)
    with pytest.raises(ExportError, match="only mode=linear, padding_mode=zeros, align_corners=0"):
        decompose_grid_sample_3d(m)


# ------------------------------------------------------------------------------------------ arguments and CLI


def test_export_argument_errors(tmp_path):
    net = _net("stitch_network")
    with pytest.raises(ValueError, match="role"):
        export_onnx("lmdm", net, tmp_path / "x.onnx")
    for bad in (0, -1, "fixed", 1.5, True):
        with pytest.raises(ValueError, match="batch"):
            export_onnx("stitch_network", net, tmp_path / "x.onnx", batch=bad)
    with pytest.raises(ValueError, match="grid_sample"):
        export_onnx("stitch_network", net, tmp_path / "x.onnx", grid_sample="plugin")
    with pytest.raises(ValueError, match="opset"):
        export_onnx("stitch_network", net, tmp_path / "x.onnx", opset=11)
    with pytest.raises(ValueError, match="opset must be an integer >= 20"):
        export_onnx("warp_network", WarpingNetwork(), tmp_path / "x.onnx", opset=17)
    with pytest.raises(ValueError, match="float32"):
        export_onnx("stitch_network", StitchingNetwork().half(), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="role"):
        onnx_filename("hubert")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_export_restores_modules(tmp_path):
    """Export-time forwards (ConvNeXt LayerNorm2d) are removed afterwards and the train flag is restored."""
    net = _net("motion_extractor").train()
    export_onnx("motion_extractor", net, tmp_path / "m.onnx", batch=1)
    assert net.training
    assert not any("forward" in vars(m) for m in net.modules())


def test_export_cli(tmp_path):
    from safetensors.torch import save_file

    models = tmp_path / "models"
    models.mkdir()
    net = _net("stitch_network")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(models / "stitch_network.safetensors"))
    parser = argparse.ArgumentParser(prog="ditto")
    add_export_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export-onnx", str(models), str(tmp_path / "out"), "--roles", "stitch_network",
                              "--batch", "2", "-q"])
    assert args.func(args) == 0
    path = tmp_path / "out" / "stitch_network.onnx"
    _check_parity("stitch_network", net, path, batch=2)
    args = parser.parse_args(["export-onnx", str(models), str(tmp_path / "out"), "--roles", "decoder", "-q"])
    from ditto_core.hub import MissingModelsError

    with pytest.raises(MissingModelsError, match="decoder"):
        args.func(args)
    args = parser.parse_args(["export-onnx", str(models), str(tmp_path / "out"), "--batch", "two"])
    with pytest.raises(ValueError, match="--batch must be 'dynamic' or a positive integer"):
        args.func(args)
