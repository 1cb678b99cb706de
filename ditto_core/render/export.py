"""ONNX export of the renderer networks (F, M, W, G, S) with the official I/O names.

``export_onnx(role, model, path)`` traces one network with the TorchScript exporter of ``torch.onnx``
(``dynamo=False``: the dynamo exporter needs ``onnxscript``, which this project does not depend on) at opset 20,
the first opset whose ``GridSample`` is N-D, so the warp's two 5-D grid samples export as the standard op.

Official I/O names (Ditto's ``ditto_onnx`` files):

=====================  =================================================  =========================================
role                   inputs                                             outputs
=====================  =================================================  =========================================
appearance_extractor   image (B, 3, 256, 256) in [0, 1]                   pred (B, 32, 16, 64, 64)
motion_extractor       image (B, 3, 256, 256) in [0, 1]                   pitch, yaw, roll (B, 66) logits, t (B, 3),
                                                                          exp (B, 63), scale (B, 1), kp (B, 63)
warp_network           feature_3d (B, 32, 16, 64, 64), kp_source,         out (B, 256, 64, 64)
                       kp_driving (B, 21, 3)
decoder                feature (B, 256, 64, 64)                           output (B, 3, 512, 512) in [0, 1]
stitch_network         kp_source, kp_driving (B, 21, 3)                   out (B, 21, 3) (stitched driving keypoints)
=====================  =================================================  =========================================

TensorRT's ``IGridSampleLayer`` (and its ONNX parser) is 4-D only (NVIDIA/TensorRT #4618, TensorRT 10.x).
``grid_sample="decomposed"`` rewrites every 5-D ``GridSample`` node of the exported graph into standard ops around
one 4-D ``GridSample`` (:func:`decompose_grid_sample_3d`): the volume is zero-padded by one voxel on every
spatial side, its depth slices are tiled into one 2-D image, and the trilinear sample becomes one bilinear sample
of the two depth slices around each point, blended by the depth weight. Every node of that subgraph is named
``<original GridSample node name>/...`` so a precision rule matching "GridSample" in layer names keeps the whole
coordinate arithmetic in fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from ..errors import DittoError, InputError
from ..validate import OptionError, check_int, renamed

__all__ = [
    "GRID_SAMPLE_MODES",
    "ONNX_SPECS",
    "ExportError",
    "OnnxSpec",
    "add_export_command",
    "decompose_grid_sample_3d",
    "example_inputs",
    "export_models",
    "export_onnx",
    "grid_sample_nodes",
    "onnx_filename",
]

log = logging.getLogger("ditto")

#: lowest opset with an N-D (5-D) GridSample
MIN_OPSET_5D_GRID_SAMPLE = 20
#: lowest opset we export at all (GridSample-16 is the first GridSample)
MIN_OPSET = 17
#: "native": the 5-D GridSample as exported (onnxruntime >= 1.17 CPU runs it; TensorRT does not);
#: "decomposed": rewritten into 4-D GridSample + standard ops (TensorRT-compatible)
GRID_SAMPLE_MODES = ("native", "decomposed")


class ExportError(DittoError, RuntimeError):
    """An ONNX export or graph rewrite could not be done (names the role or node and why)."""


@dataclass(frozen=True)
class OnnxSpec:
    """A network's official ONNX interface: ``inputs`` as ``(name, per-item shape)`` (batch axis first, not
    listed), ``outputs`` names in the order the network returns them."""

    role: str
    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    outputs: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.inputs)


ONNX_SPECS: dict[str, OnnxSpec] = {
    s.role: s
    for s in (
        OnnxSpec("appearance_extractor", (("image", (3, 256, 256)),), ("pred",)),
        OnnxSpec(
            "motion_extractor", (("image", (3, 256, 256)),), ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
        ),
        OnnxSpec(
            "warp_network",
            (("feature_3d", (32, 16, 64, 64)), ("kp_source", (21, 3)), ("kp_driving", (21, 3))),
            ("out",),
        ),
        OnnxSpec("decoder", (("feature", (256, 64, 64)),), ("output",)),
        OnnxSpec("stitch_network", (("kp_source", (21, 3)), ("kp_driving", (21, 3))), ("out",)),
    )
}


def _spec(role: str) -> OnnxSpec:
    if role not in ONNX_SPECS:
        raise ValueError(f"role: expected one of {sorted(ONNX_SPECS)}, got {role!r}")
    return ONNX_SPECS[role]


def _check_batch(batch: int | str) -> int | None:
    """``"dynamic"`` -> None; a positive int -> itself."""
    if isinstance(batch, str):
        if batch != "dynamic":
            raise OptionError("batch", "'dynamic' or a positive integer", batch)
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OptionError("batch", "'dynamic' or a positive integer", batch)
    return batch


def _check_opset(opset: int, role: str | None, grid_sample: str) -> None:
    check_int("opset", opset, MIN_OPSET)
    if role in (None, "warp_network") and grid_sample == "native" and opset < MIN_OPSET_5D_GRID_SAMPLE:
        raise OptionError("opset", f"an integer >= {MIN_OPSET_5D_GRID_SAMPLE} for the warp's 5-D GridSample (or the "
                          "decomposed grid sample)", opset)


def _output_folder(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder`` made if missing; a clear error when it, or a parent, is a file or cannot be made."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{name} {str(out)!r}: expected a folder, but it (or a folder above it) is a file") from None
    except OSError as e:
        raise InputError(f"{name} {str(out)!r}: cannot make the folder ({e.strerror})") from None
    return out


def example_inputs(
    role: str, batch: int = 1, device: torch.device | str = "cpu", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Plausible float32 inputs of ``role`` (by official name): images in [0, 1], features ~ N(0, 1),
    keypoints in [-0.5, 0.5] (normalised coordinates, as the motion extractor makes them)."""
    spec = _spec(role)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape in spec.inputs:
        size = (batch, *shape)
        if name == "image":
            t = torch.rand(size, generator=g)
        elif name.startswith("kp_"):
            t = torch.rand(size, generator=g) - 0.5
        else:
            t = torch.randn(size, generator=g)
        out[name] = t.to(device)
    return out


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def export_onnx(
    role: str,
    model: nn.Module,
    path: str | os.PathLike[str],
    batch: int | str = "dynamic",
    opset: int = 20,
    grid_sample: str = "native",
) -> Path:
    """Export ``model`` (the network of ``role``, fp32) to ``path`` with the official I/O names; returns the path.

    ``batch``: ``"dynamic"`` (axis 0 named ``batch`` on every input and output) or a fixed positive size.
    ``opset``: >= 17, and >= 20 for the warp with ``grid_sample="native"`` (5-D GridSample).
    ``grid_sample``: "native" | "decomposed" (see the module doc; only changes the warp).
    The file is written atomically and passes ``onnx.checker``; its metadata records role, batch, opset and
    grid-sample mode (``ditto.*`` keys). The model is traced on its own device; its train/eval flag is restored.
    """
    import onnx

    spec = _spec(role)
    fixed = _check_batch(batch)
    if grid_sample not in GRID_SAMPLE_MODES:
        raise ValueError(f"grid_sample: expected one of {GRID_SAMPLE_MODES}, got {grid_sample!r}")
    _check_opset(opset, role, grid_sample)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module for {role}, got {type(model).__name__}")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    if any(p.dtype != torch.float32 for p in params):
        raise ValueError(f"model: {role} must be float32 for export (export fp32 and let the runtime lower it)")
    inputs = example_inputs(role, fixed or 1, device)
    dynamic_axes = None
    if fixed is None:
        dynamic_axes = {name: {0: "batch"} for name in (*spec.input_names, *spec.outputs)}

    out = Path(path)
    _output_folder(out.parent, "path")
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _eval_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*will be removed.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # InstanceNorm2d without running stats always normalises with the instance's statistics: right as is
            warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True.*")
            try:
                torch.onnx.export(
                    model,
                    tuple(inputs[n] for n in spec.input_names),
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(spec.input_names),
                    output_names=list(spec.outputs),
                    dynamic_axes=dynamic_axes,
                    do_constant_folding=True,
                )
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                raise ExportError(f"{role}: ONNX export at opset {opset} failed: {first}") from e
        proto = onnx.load(str(tmp))
        has_gs = any(n.op_type == "GridSample" for n in proto.graph.node)
        n_5d = len(grid_sample_nodes(proto)) if has_gs else 0
        if grid_sample == "decomposed" and n_5d:
            proto = decompose_grid_sample_3d(proto)
        meta = {
            "ditto.role": role,
            "ditto.batch": "dynamic" if fixed is None else str(fixed),
            "ditto.opset": str(opset),
            "ditto.grid_sample": grid_sample if n_5d else "none",
            "ditto.torch": torch.__version__,
        }
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **meta})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ------------------------------------------------------------------------------------------ grid sample


def grid_sample_nodes(model, rank: int | None = 5) -> list:
    """The ``GridSample`` nodes of ``model`` (an ``onnx.ModelProto``) whose input ``X`` has ``rank`` (None: any).

    Ranks come from the graph's inputs/value_info after ONNX shape inference.
    """
    import onnx

    if rank is None:
        return [n for n in model.graph.node if n.op_type == "GridSample"]
    ranks = _ranks(onnx.shape_inference.infer_shapes(model, data_prop=True))
    return [n for n in model.graph.node if n.op_type == "GridSample" and ranks.get(n.input[0]) == rank]


def _ranks(model) -> dict[str, int]:
    return {name: len(dims) for name, dims in _shapes(model).items()}


def _shapes(model) -> dict[str, list[int | None]]:
    """Tensor name -> dims (None where symbolic) for inputs, outputs, value_info and initializers."""
    out: dict[str, list[int | None]] = {}
    g = model.graph
    for vi in (*g.input, *g.value_info, *g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    for init in g.initializer:
        out[init.name] = list(init.dims)
    return out


def decompose_grid_sample_3d(model):
    """Rewrite every 5-D ``GridSample`` (bilinear, zeros padding, align_corners=0) of ``model`` into standard ops
    around one 4-D ``GridSample``; returns the rewritten ``onnx.ModelProto`` (the input is not modified).

    For ``X`` (N, C, D, H, W) and ``grid`` (N, Do, Ho, Wo, 3) with static D, H, W, Do, Ho, Wo (N, C may be
    dynamic): ``X`` is zero-padded to (D+2, H+2, W+2) and its slices tiled on a near-square grid into
    (N, C, rows (H+2), cols (W+2)); the depth coordinate ``iz`` (voxel units, clamped to [-1, D]) splits into slice
    ``z0 = floor(iz)`` (clamped to [-1, D-1]) and weight ``wz = iz - z0``; ``ix``/``iy`` are clamped to [-1, W]/[-1, H]
    (beyond that both neighbours are zero padding, as in the 5-D op); one 4-D GridSample reads both slices of every
    point; the result is ``(1 - wz) s0 + wz s1``. Equal to the 5-D op up to the fp32 rounding of the tiled image
    coordinates (~ulp(1) * tiled size / 2, ~1e-5 voxel here); the tiling keeps that size small.
    """
    import onnx
    from onnx import helper

    src = onnx.ModelProto()
    src.CopyFrom(model)
    inferred = onnx.shape_inference.infer_shapes(src, data_prop=True)
    shapes = _shapes(inferred)
    targets = [n for n in src.graph.node if n.op_type == "GridSample" and len(shapes.get(n.input[0], ())) == 5]
    if not targets:
        return src
    opset = max((o.version for o in src.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 16:
        raise ExportError(f"decompose_grid_sample_3d: the model's opset {opset} has no 4-D GridSample (need >= 16)")

    new_nodes = []
    new_inits = []
    target_ids = {id(n) for n in targets}
    for index, node in enumerate(src.graph.node):
        if id(node) not in target_ids:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("mode", b"bilinear")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        pad = attrs.get("padding_mode", b"zeros")
        pad = pad.decode() if isinstance(pad, bytes) else str(pad)
        if mode not in ("linear", "bilinear") or pad != "zeros" or int(attrs.get("align_corners", 0)) != 0:
            raise ExportError(
                f"GridSample node {node.name!r}: only mode=linear, padding_mode=zeros, align_corners=0 can be "
                f"decomposed, got mode={mode}, padding_mode={pad}, align_corners={attrs.get('align_corners', 0)}"
            )
        x_shape, g_shape = shapes.get(node.input[0]), shapes.get(node.input[1])
        if x_shape is None or g_shape is None or any(v is None for v in (*x_shape[2:], *g_shape[1:])):
            raise ExportError(
                f"GridSample node {node.name!r}: static spatial sizes needed to decompose it, got X {x_shape}, "
                f"grid {g_shape}"
            )
        d, h, w = (int(v) for v in x_shape[2:])
        do, ho, wo = (int(v) for v in g_shape[1:4])
        base = node.name or f"GridSample_{index}"
        if "GridSample" not in base:
            base = f"{base}/GridSample"
        nodes, inits = _decomposition(
            base, node.input[0], node.input[1], node.output[0], (d, h, w), (do, ho, wo), opset
        )
        new_nodes.extend(nodes)
        new_inits.extend(inits)

    del src.graph.node[:]
    src.graph.node.extend(new_nodes)
    src.graph.initializer.extend(new_inits)
    return src


def _decomposition(
    base: str,
    x: str,
    grid: str,
    y: str,
    in_size: tuple[int, int, int],
    out_size: tuple[int, int, int],
    opset: int,
) -> tuple[list, list]:
    """Nodes and initializers replacing ``y = GridSample(x, grid)`` (5-D); every name starts with ``base``."""
    from onnx import helper, numpy_helper

    d, h, w = in_size
    do, ho, wo = out_size
    # the D + 2 padded slices are tiled on a rows x cols grid of (H + 2, W + 2) tiles (zero tiles fill the rest)
    cols = math.ceil(math.sqrt(d + 2))
    rows = math.ceil((d + 2) / cols)
    extra = rows * cols - (d + 2)
    ht, wt = rows * (h + 2), cols * (w + 2)
    nodes: list = []
    inits: list = []

    def name(s: str) -> str:
        return f"{base}/{s}"

    def const(s: str, value, dtype=np.float32) -> str:
        n = name(s)
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(kind: str, s: str, inputs: Sequence[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [name(f"{s}_out{i}") for i in range(n_out)]
        nodes.append(helper.make_node(kind, list(inputs), outs, name=name(s), **attrs))
        return outs

    f = np.float32
    i64 = np.int64
    # the volume padded by one zero voxel on both sides of D, H and W (plus `extra` zero slices), then tiled
    pads = [0, 0, 1, 1, 1, 0, 0, 1 + extra, 1, 1]
    (xp,) = op("Pad", "pad_volume", [x, const("pads", pads, i64)], mode="constant")
    (xt,) = op("Reshape", "tile_split", [xp, const("tile_shape", [0, 0, rows, cols, h + 2, w + 2], i64)])
    (xt,) = op("Transpose", "tile_order", [xt], perm=[0, 1, 2, 4, 3, 5])
    (xs,) = op("Reshape", "tile_image", [xt, const("image_shape", [0, 0, ht, wt], i64)])
    # grid (N, Do, Ho, Wo, 3) -> x, y, z in voxel units, clamped where both neighbours are padding anyway
    gx, gy, gz = op("Split", "split_xyz", [grid, const("split_sizes", [1, 1, 1], i64)], n_out=3, axis=-1)

    def voxel(g: str, size: int, axis: str) -> str:
        (v,) = op("Mul", f"{axis}_scale", [g, const(f"half_{axis}", f(size / 2))])
        (v,) = op("Add", f"{axis}_shift", [v, const(f"{axis}_offset", f(size / 2 - 0.5))])
        (v,) = op("Clip", f"{axis}_clip", [v, const(f"{axis}_min", f(-1)), const(f"{axis}_max", f(size))])
        return v

    ix, iy, iz = voxel(gx, w, "x"), voxel(gy, h, "y"), voxel(gz, d, "z")
    (z0,) = op("Floor", "z_floor", [iz])
    (z0,) = op("Clip", "z0_clip", [z0, const("z0_min", f(-1)), const("z0_max", f(d - 1))])
    (wz,) = op("Sub", "z_weight", [iz, z0])
    (z1,) = op("Add", "z_next", [z0, const("one", f(1))])
    # both slices of every point, stacked along the output depth axis: (N, 2*Do, Ho, Wo, 1)
    (zz,) = op("Concat", "z_pair", [z0, z1], axis=1)
    (yy,) = op("Concat", "y_pair", [iy, iy], axis=1)
    (xx,) = op("Concat", "x_pair", [ix, ix], axis=1)
    # padded slice s = z + 1 sits in tile (s // cols, s % cols)
    (sl,) = op("Add", "slice", [zz, const("one_s", f(1))])
    (trow,) = op("Div", "tile_row_div", [sl, const("cols", f(cols))])
    (trow,) = op("Floor", "tile_row", [trow])
    (tcol,) = op("Mul", "tile_row_start", [trow, const("cols_m", f(cols))])
    (tcol,) = op("Sub", "tile_col", [sl, tcol])

    def normalised(tile: str, v: str, size: int, total: int, axis: str) -> str:
        """(2 (tile (size + 2) + v + 1) + 1) / total - 1, as tile * a + v * b + c (no large intermediates)."""
        (a,) = op("Mul", f"{axis}_tile", [tile, const(f"{axis}_tile_scale", f(2.0 * (size + 2) / total))])
        (b,) = op("Mul", f"{axis}_in_tile", [v, const(f"{axis}_in_tile_scale", f(2.0 / total))])
        (n,) = op("Add", f"{axis}_sum", [a, b])
        (n,) = op("Add", f"{axis}_norm", [n, const(f"{axis}_norm_offset", f(3.0 / total - 1.0))])
        return n

    yn = normalised(trow, yy, h, ht, "y")
    xn = normalised(tcol, xx, w, wt, "x")
    (g2,) = op("Concat", "grid_xy", [xn, yn], axis=-1)
    (g2,) = op("Reshape", "grid_2d", [g2, const("grid_shape", [0, 2 * do * ho, wo, 2], i64)])
    mode = "linear" if opset >= 20 else "bilinear"
    nodes.append(
        helper.make_node(
            "GridSample", [xs, g2], [name("sample_out0")], name=base, mode=mode, padding_mode="zeros",
            align_corners=0,
        )
    )
    s = name("sample_out0")
    (s,) = op("Reshape", "split_pair", [s, const("pair_shape", [0, 0, 2, do, ho, wo], np.int64)])
    (w0,) = op("Sub", "w_first", [const("one_w", f(1)), wz])
    (wpair,) = op("Concat", "w_pair", [w0, wz], axis=1)
    (wpair,) = op("Reshape", "w_shape", [wpair, const("w_pair_shape", [0, 1, 2, do, ho, wo], np.int64)])
    (blend,) = op("Mul", "blend", [s, wpair])
    nodes.append(
        helper.make_node(
            "ReduceSum", [blend, const("sum_axis", [2], np.int64)], [y], name=name("blend_sum"), keepdims=0
        )
    )
    return nodes, inits


# ------------------------------------------------------------------------------------------ many files


def onnx_filename(role: str, grid_sample: str = "native") -> str:
    """``<role>.onnx``; the warp with a native 5-D GridSample is ``warp_network_ori.onnx`` as in the official
    ``ditto_onnx`` (whose ``warp_network.onnx`` uses the GridSample3D plugin op), the decomposed one
    ``warp_network_gs4d.onnx``."""
    _spec(role)
    if role == "warp_network":
        return "warp_network_ori.onnx" if grid_sample == "native" else "warp_network_gs4d.onnx"
    return f"{role}.onnx"


def export_models(
    models: Mapping[str, nn.Module],
    out_dir: str | os.PathLike[str],
    batch: int | str = "dynamic",
    opset: int = 20,
    grid_sample: str = "native",
) -> dict[str, Path]:
    """Export each ``{role: model}`` to ``out_dir / onnx_filename(role, grid_sample)``; returns the paths."""
    out = Path(out_dir)
    return {
        role: export_onnx(role, model, out / onnx_filename(role, grid_sample), batch, opset, grid_sample)
        for role, model in models.items()
    }


def _run_export(args: argparse.Namespace) -> int:
    from ..checkpoints import find_model_file, load_model
    from ..hub import MissingModelsError

    roles = args.roles or list(ONNX_SPECS)
    with renamed({"batch": "--batch", "opset": "--opset"}):
        try:
            batch: int | str = args.batch if args.batch == "dynamic" else int(args.batch)
        except ValueError:
            raise OptionError("batch", "'dynamic' or a positive integer", args.batch) from None
        _check_batch(batch)
        _check_opset(args.opset, "warp_network" if "warp_network" in roles else "", args.grid_sample)
    _output_folder(args.out_dir, "OUT_DIR")  # before the models load
    paths = {role: find_model_file(args.models_dir, role) for role in roles}
    missing = [r for r, p in paths.items() if p is None]
    if missing:
        from .. import layout

        raise MissingModelsError(args.models_dir, [layout.BY_ROLE[r] for r in missing])
    for role in roles:
        model = load_model(role, paths[role], device="cpu")
        path = export_onnx(role, model, Path(args.out_dir) / onnx_filename(role, args.grid_sample), batch,
                           args.opset, args.grid_sample)
        if not args.quiet:
            print(f"{role}: {path}")
        del model
    return 0


def add_export_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export-onnx MODELS_DIR OUT_DIR`` on a ``ditto`` command-line parser."""
    p = subparsers.add_parser(
        "export-onnx",
        help="export the renderer networks to ONNX (official I/O names)",
        description="Load the renderer checkpoints found under MODELS_DIR and write <role>.onnx files to OUT_DIR "
        "(the warp as warp_network_ori.onnx with the standard 5-D GridSample at opset 20, or "
        "warp_network_gs4d.onnx with --grid-sample decomposed, which TensorRT can parse).",
    )
    p.add_argument("models_dir", help="models folder (official release layout or flat)")
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--roles", nargs="+", choices=sorted(ONNX_SPECS), help="networks to export (default: all five)")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset (default 20; >= 20 for the native 5-D warp)")
    p.add_argument("--grid-sample", default="native", choices=GRID_SAMPLE_MODES,
                   help="the warp's 5-D grid sample: native GridSample-20 or decomposed into 4-D GridSample")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    p.set_defaults(func=_run_export)
