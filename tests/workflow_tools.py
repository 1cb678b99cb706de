"""Node interfaces (pack and core) in one shape, and UI/API workflow helpers for the workflow tests and generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfy_stubs import REPO_ROOT
from core_nodes import CORE_NODES, UI_ONLY_NODES

WORKFLOWS_DIR = REPO_ROOT / "workflows"
API_DIR = WORKFLOWS_DIR / "api"


@dataclass(frozen=True)
class Input:
    name: str
    socket_type: str  # "COMBO" for combos
    is_widget: bool
    optional: bool
    options: tuple[Any, ...] | None  # combo options (None = not a combo; () = the files present)
    opts: dict[str, Any]


@dataclass(frozen=True)
class Interface:
    type: str
    inputs: tuple[Input, ...]
    outputs: tuple[tuple[str, str], ...]
    ui_extra_values: tuple[Any, ...]
    output_node: bool

    def input(self, name: str) -> Input:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(f"{self.type} has no input {name!r}")

    @property
    def widgets(self) -> list[str]:
        """Saved-workflow widget order, ``control_after_generate`` after a seed."""
        out = []
        for i in self.inputs:
            if i.is_widget:
                out.append(i.name)
                if i.opts.get("control_after_generate"):
                    out.append("control_after_generate")
        return out


FILE_COMBO_NODES = {"DittoLoadMotion": "motion_file"}


def pack_interface(node_id: str, cls: type) -> Interface:
    spec = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            typ, opts = s[0], (s[1] if len(s) > 1 else {})
            if isinstance(typ, (list, tuple)):
                options = () if FILE_COMBO_NODES.get(node_id) == name else tuple(typ)
                inputs.append(Input(name, "COMBO", True, section == "optional", options, dict(opts)))
            else:
                widget = typ in ("INT", "FLOAT", "STRING", "BOOLEAN") and not opts.get("forceInput")
                inputs.append(Input(name, typ, widget, section == "optional", None, dict(opts)))
    outputs = tuple(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    return Interface(node_id, tuple(inputs), outputs, (), bool(getattr(cls, "OUTPUT_NODE", False)))


def core_interface(node_type: str) -> Interface:
    c = CORE_NODES[node_type]
    inputs = tuple(
        Input(i.name, i.socket_type, i.is_widget, i.optional, i.type if isinstance(i.type, tuple) else None, dict(i.opts))
        for i in c.inputs
    )
    return Interface(node_type, inputs, c.outputs, c.ui_extra_values, c.output_node)


def interfaces(pack: Any) -> dict[str, Interface]:
    out = {k: core_interface(k) for k in CORE_NODES}
    out.update({k: pack_interface(k, v) for k, v in pack.NODE_CLASS_MAPPINGS.items()})
    return out


def ui_workflow_files() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.json"))


def api_twin(ui_path: Path) -> Path:
    return API_DIR / ui_path.name


CORE_DISPLAY_NAMES = {
    "LoadImage": "Load Image",
    "LoadAudio": "Load Audio",
    "LoadVideo": "Load Video",
    "GetVideoComponents": "Get Video Components",
    "CreateVideo": "Create Video",
    "SaveVideo": "Save Video",
    "PreviewImage": "Preview Image",
}


def ui_to_api(
    ui: dict[str, Any], ifaces: dict[str, Interface], display_names: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow to the API format as the frontend's "Export (API)" does (no bypass/mute)."""
    links = {lk[0]: lk for lk in ui["links"]}
    out: dict[str, dict[str, Any]] = {}
    for node in sorted(ui["nodes"], key=lambda n: n["id"]):
        if node["type"] in UI_ONLY_NODES:
            continue
        iface = ifaces[node["type"]]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        for name, value in zip(iface.widgets, values):
            if name != "control_after_generate":
                inputs[name] = value
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                lk = links[slot["link"]]
                inputs[slot["name"]] = [str(lk[1]), lk[2]]
        out[str(node["id"])] = {
            "inputs": inputs,
            "class_type": node["type"],
            "_meta": {"title": node.get("title") or {**CORE_DISPLAY_NAMES, **(display_names or {})}.get(node["type"], node["type"])},
        }
    return out
