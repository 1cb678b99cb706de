"""The package's shape, checked from its sources: no import cycle in ``ditto_core`` (lazy imports included), the library
never imports ComfyUI, the test scaffolding is not imported by the product, and each enum has one home."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PKG = REPO_ROOT / "ditto_core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute module of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """``ditto_core`` module -> the ``ditto_core`` modules it imports anywhere in its source (functions included)."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node.level, node.module)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                # the deepest ditto_core module the name refers to ("from . import layout" is the module layout)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("ditto_core") and t != mod:
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one representative per back edge)."""
    found, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "ditto_core.runtime.stream" in graph
    # the graph sees real edges, lazy ones too
    assert "ditto_core.render.renderer" in graph["ditto_core.render.tensorrt"]
    assert "ditto_core.render.export" in graph["ditto_core.render.tensorrt"]
    assert "ditto_core.runtime.keypoints" in graph["ditto_core.runtime.stream"]
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_renderer_does_not_import_its_tensorrt_backend():
    """The TensorRT backend registers itself; the render module knows it only by name (no import edge back)."""
    graph = import_graph()
    assert "ditto_core.render.tensorrt" not in graph["ditto_core.render.renderer"]
    assert not any(d.startswith("ditto_core.runtime") for d in graph["ditto_core.render.tensorrt"])


@pytest.mark.parametrize("forbidden", ["comfy", "folder_paths", "server", "nodes"])
def test_the_library_never_imports_comfyui(forbidden):
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not any(n == forbidden or n.startswith(forbidden + ".") for n in names), f"{path} imports {forbidden}"


def test_the_product_does_not_import_the_test_scaffolding():
    graph = import_graph()
    allowed = {"ditto_core.synthetic"}  # the documented `python -m ditto_core.synthetic DIR` command
    for mod, deps in graph.items():
        if mod.startswith("ditto_core.testing") or mod in allowed:
            continue
        assert not [d for d in deps if d.startswith("ditto_core.testing")], mod


def test_enums_have_one_home():
    """The choice lists users see (nodes, command line) are defined once in the library and imported."""
    from ditto_core.conditions import EMOTION_LABELS
    from ditto_core.face.detect import FACE_ORDERS
    from ditto_core.motion import GAZE_FIX_MODES
    from ditto_core.render import BACKENDS, OUTPUTS, PRECISIONS
    from ditto_core.devices import DEVICES

    values = {"EMOTION_LABELS": EMOTION_LABELS, "FACE_ORDERS": FACE_ORDERS, "GAZE_FIX_MODES": GAZE_FIX_MODES,
              "BACKENDS": BACKENDS, "OUTPUTS": OUTPUTS, "PRECISIONS": PRECISIONS, "DEVICES": DEVICES}
    literals = {name: repr(tuple(v)) for name, v in values.items()}
    # a different concept that happens to hold the same words: where the TensorRT renderer runs its warp
    other_concepts = {("tensorrt.py", "WARP_MODES")}
    for path in list((REPO_ROOT / "nodes").glob("*.py")) + list(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        skip = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign) and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name) and (path.name, n.targets[0].id) in other_concepts}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                lit = repr(tuple(e.value for e in node.elts))
                for name, want in literals.items():
                    if lit == want:
                        # only the defining module may spell the tuple out
                        home = {"EMOTION_LABELS": "conditions.py", "FACE_ORDERS": "detect.py",
                                "GAZE_FIX_MODES": "edit.py", "BACKENDS": "renderer.py", "OUTPUTS": "compositor.py",
                                "PRECISIONS": "renderer.py", "DEVICES": "devices.py"}[name]
                        assert path.name == home and "ditto_core" in path.parts, f"{path}:{node.lineno} repeats {name}"


def test_importing_the_node_pack_imports_no_pipeline():
    """ComfyUI imports every pack at start-up: the nodes import only light parts of the library (choice lists, the
    motion curves) at import time; the runtime, the stages, onnxruntime and the hub client load when a node runs."""
    import subprocess
    import sys

    code = ("import sys; import nodes; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'huggingface_hub') or "
            "m.startswith(('ditto_core.runtime', 'ditto_core.stitch', 'ditto_core.audio2motion', "
            "'ditto_core.source', 'ditto_core.hub', 'ditto_core.checkpoints'))); "
            "print(len(nodes.NODE_CLASS_MAPPINGS), heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(maxsplit=1) == ["13", "[]\n"]
