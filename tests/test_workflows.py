"""Every example workflow is valid for ComfyUI: known node types, links between matching types, widget values that
fit the node inputs in order, and an API-format twin that says the same thing."""

from __future__ import annotations

import json
import numbers

import pytest

from comfy_stubs import stubbed_pack
from core_nodes import CONTROL_AFTER_GENERATE, UI_ONLY_NODES
from make_workflows import (
    BASIC,
    CURVE_H,
    CURVE_NODES,
    DRIVING,
    KEYFRAMES,
    LIVE,
    LIVE_AVATAR,
    LIVE_PATH,
    LONG,
    MIXED,
    TITLE_H,
    VIDEO,
)
from workflow_tools import API_DIR, Interface, api_twin, interfaces, ui_to_api, ui_workflow_files

UI_FILES = ui_workflow_files()
NAMES = [p.stem for p in UI_FILES]


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    gen = stubbed_pack(tmp_path_factory.mktemp("comfy_wf"))
    yield next(gen)[0]
    gen.close()


@pytest.fixture(scope="module")
def ifaces(pack) -> dict[str, Interface]:
    return interfaces(pack)


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_seven_workflows_with_api_twins_and_thumbnails():
    assert set(NAMES) == {BASIC, KEYFRAMES, VIDEO, LONG, LIVE, DRIVING, MIXED}
    assert sorted(p.name for p in API_DIR.glob("*.json")) == sorted(p.name for p in UI_FILES)
    for path in UI_FILES:  # the template card: a same-name .jpg (ComfyUI's templates browser shows it)
        import cv2

        thumb = cv2.imread(str(path.with_suffix(".jpg")))
        assert thumb is not None and thumb.shape[:2] == (512, 512), path.name
        assert float(thumb.std()) > 20  # a picture, not a blank


LOADERS = {"LoadImage": "image", "LoadAudio": "audio", "LoadVideo": "file"}


@pytest.mark.parametrize("path", UI_FILES, ids=NAMES)
def test_workflow_inputs_ship_with_the_pack(path, pack):
    """Every file a template loads is one of the pack's sample inputs, which the pack copies into ComfyUI's input
    folder (nodes/examples.py), so the template runs as shipped."""
    from importlib import import_module

    from_pack = import_module(f"{pack.__name__}.nodes.examples")
    used = [n["inputs"][LOADERS[n["class_type"]]] for n in _load(api_twin(path)).values() if n["class_type"] in LOADERS]
    assert used
    for name in used:
        assert name in from_pack.EXAMPLE_INPUTS and (from_pack.EXAMPLE_INPUTS_DIR / name).is_file(), name


@pytest.mark.parametrize("path", UI_FILES, ids=NAMES)
def test_nodes_do_not_overlap(path):
    """Node boxes (title bar included; the curve nodes sized for their chart) do not overlap."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_H, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1], n["id"])
             for n in _load(path)["nodes"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, f"{path.name}: nodes {a[4]} and {b[4]} overlap"
    for n in _load(path)["nodes"]:
        if n["type"] in CURVE_NODES:
            rows = len([i for i in n["inputs"] if "widget" not in i]) + len(n["outputs"]) + len(n["widgets_values"])
            assert n["size"][1] >= 46 + 24 * rows + CURVE_H, f"{path.name}: node {n['id']} has no room for the curves"


def _check_value(iface: Interface, name: str, value, where: str) -> None:
    if name == "control_after_generate":
        assert value in CONTROL_AFTER_GENERATE, f"{where}: control_after_generate {value!r}"
        return
    inp = iface.input(name)
    opts = inp.opts
    if inp.socket_type == "COMBO":
        assert isinstance(value, str), f"{where}: {name} must be a string option"
        if inp.options:
            assert value in inp.options, f"{where}: {name}={value!r} not in {inp.options}"
    elif inp.socket_type == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {name} must be an int, got {value!r}"
        assert opts["min"] <= value <= opts["max"], f"{where}: {name}={value} outside [{opts['min']}, {opts['max']}]"
    elif inp.socket_type == "FLOAT":
        assert isinstance(value, numbers.Real) and not isinstance(value, bool), f"{where}: {name} must be a number"
        assert opts.get("min", -1e300) <= value <= opts.get("max", 1e300), f"{where}: {name}={value} out of range"
    elif inp.socket_type == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {name} must be a bool"
    elif inp.socket_type == "STRING":
        assert isinstance(value, str), f"{where}: {name} must be a string"


def check_ui_workflow(wf: dict, ifaces: dict[str, Interface], name: str) -> None:
    """Assert that a UI-format workflow is valid (see the module doc)."""
    for key in ("last_node_id", "last_link_id", "nodes", "links", "version"):
        assert key in wf, f"{name}: missing {key!r}"
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]), "duplicate node ids"
    assert wf["last_node_id"] >= max(nodes)
    links = {lk[0]: lk for lk in wf["links"]}
    assert len(links) == len(wf["links"]), "duplicate link ids"
    assert wf["last_link_id"] >= max(links)

    for node in wf["nodes"]:
        where = f"{name} node {node['id']} ({node['type']})"
        if node["type"] in UI_ONLY_NODES:
            continue
        assert node["type"] in ifaces, f"{where}: unknown node type"
        iface = ifaces[node["type"]]
        assert node.get("mode", 0) == 0, f"{where}: muted or bypassed"

        # widget values: positional, in declaration order, plus the upload widgets' extra values
        values = node.get("widgets_values", [])
        names = iface.widgets
        assert len(values) == len(names) + len(iface.ui_extra_values), f"{where}: {len(values)} widget values for {names}"
        for name, value in zip(names, values):
            _check_value(iface, name, value, where)
        assert list(values[len(names):]) == list(iface.ui_extra_values), f"{where}: upload widget values"

        # input sockets: known names, matching types, every required link input connected
        seen = set()
        for slot, inp in enumerate(node.get("inputs", [])):
            decl = iface.input(inp["name"])
            assert inp["type"] == decl.socket_type, f"{where}: input {inp['name']} type {inp['type']} != {decl.socket_type}"
            if decl.is_widget:
                assert inp.get("widget", {}).get("name") == inp["name"], f"{where}: widget input {inp['name']} not marked"
            if inp.get("link") is not None:
                lk = links[inp["link"]]
                assert lk[3] == node["id"] and lk[4] == slot, f"{where}: link {lk[0]} does not point at input {slot}"
            seen.add(inp["name"])
        for decl in iface.inputs:
            if not decl.is_widget and not decl.optional:
                assert decl.name in seen, f"{where}: required input {decl.name} has no socket"
                slot = next(i for i in node["inputs"] if i["name"] == decl.name)
                assert slot.get("link") is not None, f"{where}: required input {decl.name} is not connected"

        # outputs: declared names and types, link lists consistent
        assert len(node.get("outputs", [])) == len(iface.outputs), f"{where}: {len(iface.outputs)} outputs expected"
        for slot, (out, (oname, otype)) in enumerate(zip(node.get("outputs", []), iface.outputs)):
            assert out["type"] == otype, f"{where}: output {slot} type {out['type']} != {otype}"
            for lid in out.get("links") or []:
                assert links[lid][1] == node["id"] and links[lid][2] == slot, f"{where}: output link {lid} mismatch"

    # links: both ends exist and carry the same type
    for lid, src, src_slot, dst, dst_slot, typ in wf["links"]:
        s_iface = ifaces[nodes[src]["type"]]
        d_node = nodes[dst]
        assert s_iface.outputs[src_slot][1] == typ, f"{name} link {lid}: source type {s_iface.outputs[src_slot][1]} != {typ}"
        d_inp = d_node["inputs"][dst_slot]
        assert d_inp["link"] == lid, f"{name} link {lid}: target input does not reference it"
        assert d_inp["type"] == typ, f"{name} link {lid}: {typ} into {d_node['type']}.{d_inp['name']} ({d_inp['type']})"
        assert lid in (nodes[src]["outputs"][src_slot].get("links") or []), f"{name} link {lid} missing at its source"

    # something is saved, and everything flows into an output node
    assert any(ifaces[n["type"]].output_node for n in wf["nodes"] if n["type"] not in UI_ONLY_NODES)


@pytest.mark.parametrize("path", UI_FILES, ids=NAMES)
def test_ui_workflow_is_valid(path, ifaces):
    check_ui_workflow(_load(path), ifaces, path.name)


def _broken(path, what):
    wf = _load(path)
    by_type = {n["type"]: n for n in wf["nodes"]}
    if what == "missing widget value":
        by_type["DittoMotionSampler"]["widgets_values"].pop(5)  # the seed's control_after_generate value
    elif what == "bad control value":
        by_type["DittoMotionSampler"]["widgets_values"][5] = "sometimes"
    elif what == "swapped widgets":
        v = by_type["DittoMotionSampler"]["widgets_values"]
        v[0], v[1] = v[1], v[0]
    elif what == "unknown node":
        by_type["DittoRenderFrames"]["type"] = "DittoRenderFramez"
    elif what == "type mismatch":
        lk = next(lk for lk in wf["links"] if lk[5] == "DITTO_SOURCE")
        src = next(n for n in wf["nodes"] if n["id"] == lk[1])
        lk[2] = 1  # from the face_crop IMAGE output
        src["outputs"][1]["links"] = [lk[0]]
    elif what == "out of range":
        by_type["DittoRenderFrames"]["widgets_values"][1] = 0
    return wf


@pytest.mark.parametrize(
    "what", ["missing widget value", "bad control value", "swapped widgets", "unknown node", "type mismatch", "out of range"]
)
def test_the_checker_catches_broken_workflows(what, ifaces):
    path = next(p for p in UI_FILES if p.stem == BASIC)
    with pytest.raises(AssertionError):
        check_ui_workflow(_broken(path, what), ifaces, path.name)


@pytest.mark.parametrize("path", UI_FILES, ids=NAMES)
def test_api_twin_matches_the_ui_workflow(path, ifaces, pack):
    api = _load(api_twin(path))
    assert api == ui_to_api(_load(path), ifaces, pack.NODE_DISPLAY_NAME_MAPPINGS)


@pytest.mark.parametrize("path", UI_FILES, ids=NAMES)
def test_api_workflow_is_complete(path, ifaces):
    api = _load(api_twin(path))
    for nid, node in api.items():
        iface = ifaces[node["class_type"]]
        where = f"api/{path.name} node {nid} ({node['class_type']})"
        for decl in iface.inputs:
            if not decl.optional:
                assert decl.name in node["inputs"], f"{where}: required input {decl.name} missing"
        for name, value in node["inputs"].items():
            decl = iface.input(name)
            if isinstance(value, list):
                src = api[value[0]]
                otype = ifaces[src["class_type"]].outputs[value[1]][1]
                assert otype == decl.socket_type, f"{where}: {name} gets {otype}, expects {decl.socket_type}"
            else:
                assert decl.is_widget, f"{where}: {name} is a link input given a constant"
                _check_value(iface, name, value, where)


def test_models_folder_is_the_official_name():
    for path in UI_FILES:
        for node in _load(api_twin(path)).values():
            if node["class_type"] == "DittoLoadModels":
                assert node["inputs"]["models_folder"] == "ditto-talkinghead"


def test_live_workflow_publishes_the_portrait_and_says_where_the_page_is(pack):
    """Portrait -> Load Ditto Models -> Extract Source Motion -> Go Live (crop, the avatar name the page is opened
    with), and a note that tells the user to open the live page after queueing."""
    path = next(p for p in UI_FILES if p.stem == LIVE)
    api = _load(api_twin(path))
    by_type = {n["class_type"]: (nid, n) for nid, n in api.items()}
    assert set(by_type) == {"LoadImage", "DittoLoadModels", "DittoExtractSource", "DittoGoLive"}
    src_id, src = by_type["DittoExtractSource"]
    _, live = by_type["DittoGoLive"]
    assert src["inputs"]["images"] == [by_type["LoadImage"][0], 0]
    assert live["inputs"]["source"] == [src_id, 0] and live["inputs"]["models"] == [by_type["DittoLoadModels"][0], 0]
    assert live["inputs"]["name"] == LIVE_AVATAR and live["inputs"]["output"] == "crop"
    from importlib import import_module

    assert import_module(f"{pack.__name__}.nodes.live").LIVE_PREFIX + "/" == LIVE_PATH
    notes = [n["widgets_values"][0] for n in _load(path)["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and LIVE_PATH in notes[0] and "Talk" in notes[0]
