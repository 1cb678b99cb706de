"""Regenerate the example workflows: ``python tests/make_workflows.py`` writes workflows/*.json (UI format, what
ComfyUI loads by drag-and-drop) and workflows/api/*.json (API format for ``POST /prompt``) from the graphs below,
taking widget order and socket types from the node classes (loaded with the ComfyUI stubs) and tests/core_nodes.py.
test_workflows.py checks the files, so edit the graphs here and re-run rather than editing the JSON by hand.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_stubs import stubbed_pack  # noqa: E402
from workflow_tools import API_DIR, WORKFLOWS_DIR, Interface, interfaces, ui_to_api  # noqa: E402

MODELS = {"models_folder": "ditto-talkinghead", "device": "auto", "precision": "fp32", "backend": "pytorch", "download_missing": True}
SAMPLER = {
    "emotion": "Neutral",
    "eye_mode": "from source",
    "steps": 50,
    "overlap": 10,
    "seed": 0,
    "control_after_generate": "fixed",
    "guidance": 2.0,
    "emotion_mix": "",
    "eye_open_left": 0.8,
    "eye_open_right": 0.8,
    "gaze_x": 0.0,
    "gaze_y": 0.0,
}
EDIT = {
    "start_frame": 0,
    "end_frame": -1,
    "ease_in": 0,
    "ease_out": 0,
    "pitch": 0.0,
    "yaw": 0.0,
    "roll": 0.0,
    "head_amplitude": 1.0,
    "mouth_amplitude": 1.0,
    "expression": 1.0,
    "relax_on_silence": 0.0,
    "silence_threshold": 0.01,
    "blink_interval": -1,
    "gaze_fix": "keep",
    "fade_in": 0,
    "fade_out": 0,
    "smoothing": 1,
    "label": "",
}


@dataclass
class N:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # input name -> (from node id, output slot)
    title: str | None = None
    size: tuple[int, int] = (320, 0)


def note(id: int, pos: tuple[int, int], text: str, size: tuple[int, int] = (420, 220)) -> N:
    return N(id, "Note", pos, {"text": text}, title="Read me", size=size)


BASIC = "basic_talking_head"
KEYFRAMES = "emotion_and_head_pose_keyframes"
VIDEO = "video_source"

GRAPHS: dict[str, list[N]] = {
    BASIC: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 300), {"image": "portrait.png"}, title="Portrait"),
        N(3, "LoadAudio", (40, 700), {"audio": "speech.wav"}, title="Speech"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoAudioToHuBERT", (420, 420), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(6, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (4, 0), "audio_features": (5, 0)}),
        N(7, "DittoRenderFrames", (1200, 60), {"output": "full", "batch_size": 4},
          {"models": (1, 0), "source": (4, 0), "motion": (6, 0)}),
        N(8, "CreateVideo", (1580, 60), {"fps": 25.0}, {"images": (7, 0), "fps": (7, 2), "audio": (3, 0)}),
        N(9, "SaveVideo", (1580, 260), {"filename_prefix": "ditto/talking_head", "format": "auto", "codec": "auto"},
          {"video": (8, 0)}),
        note(10, (800, 700),
             "Ditto talking head: one portrait + a speech clip -> a talking-head video.\n\n"
             "1. Put the official models in models/ditto/ditto-talkinghead (Load Ditto Models downloads them when "
             "'download_missing' is on).\n2. Pick a portrait and a speech clip.\n3. Queue. The motion curves appear on "
             "the sampler before rendering; the video lands in output/ditto/.\n\nRender Frames outputs a normal IMAGE "
             "batch at 25 fps: insert upscalers or face restorers before Create Video."),
    ],
    KEYFRAMES: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 300), {"image": "portrait.png"}, title="Portrait"),
        N(3, "LoadAudio", (40, 700), {"audio": "speech.wav"}, title="Speech"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoAudioToHuBERT", (420, 420), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(6, "DittoMotionSampler", (800, 60),
          {**SAMPLER, "emotion": "mix", "emotion_mix": "Happy:0.7, Neutral:0.3", "seed": 1234},
          {"models": (1, 0), "source": (4, 0), "audio_features": (5, 0)}, title="DiT Motion Sampler (happy)"),
        N(11, "DittoEditMotion", (1200, 60),
          {**EDIT, "start_frame": 0, "end_frame": 75, "ease_in": 0, "ease_out": 15, "yaw": 12.0, "pitch": -3.0,
           "label": "look right"},
          {"motion": (6, 0)}, title="Edit 1: look right (0-3 s)"),
        N(12, "DittoEditMotion", (1580, 60),
          {**EDIT, "start_frame": 75, "end_frame": -1, "ease_in": 15, "ease_out": 0, "yaw": -8.0, "roll": 4.0,
           "mouth_amplitude": 1.3, "head_amplitude": 1.2, "label": "turn left, livelier"},
          {"motion": (11, 0)}, title="Edit 2: turn left (3 s-end)"),
        N(13, "DittoEditMotion", (1960, 60),
          {**EDIT, "relax_on_silence": 0.6, "blink_interval": 75, "fade_in": 5, "fade_out": 10, "smoothing": 3,
           "label": "whole clip"},
          {"motion": (12, 0)}, title="Edit 3: blinks, relax on silence, fades"),
        N(14, "DittoSaveMotion", (1960, 760), {"filename_prefix": "ditto/keyframed_motion"}, {"motion": (13, 0)}),
        N(7, "DittoRenderFrames", (2340, 60), {"output": "full", "batch_size": 4},
          {"models": (1, 0), "source": (4, 0), "motion": (13, 0)}),
        N(8, "CreateVideo", (2720, 60), {"fps": 25.0}, {"images": (7, 0), "fps": (7, 2), "audio": (3, 0)}),
        N(9, "SaveVideo", (2720, 260), {"filename_prefix": "ditto/keyframed", "format": "auto", "codec": "auto"},
          {"video": (8, 0)}),
        note(10, (800, 700),
             "Emotion and head-pose keyframing.\n\nThe sampler uses a 70/30 Happy/Neutral emotion mix. Each Edit Motion "
             "applies to a frame range (25 frames = 1 s; end -1 = to the end) with eased edges; chained edits stack "
             "(offsets add, amplitudes multiply). The curves on each edit node show yaw/pitch/roll and mouth activity "
             "with the edited ranges shaded. Save Motion writes the performance to output/ditto/ so it can be "
             "re-rendered on another face with Load Motion.", (460, 240)),
    ],
    VIDEO: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadVideo", (40, 300), {"file": "source_video.mp4"}, title="Source video"),
        N(3, "GetVideoComponents", (40, 640), {}, {"video": (2, 0)}),
        N(4, "LoadAudio", (40, 800), {"audio": "speech.wav"}, title="Speech"),
        N(5, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (3, 0)}),
        N(6, "DittoAudioToHuBERT", (420, 420), {}, {"models": (1, 0), "audio": (4, 0)}),
        N(7, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (5, 0), "audio_features": (6, 0)}),
        N(8, "DittoRenderFrames", (1200, 60), {"output": "full", "batch_size": 4},
          {"models": (1, 0), "source": (5, 0), "motion": (7, 0)}),
        N(9, "CreateVideo", (1580, 60), {"fps": 25.0}, {"images": (8, 0), "fps": (8, 2), "audio": (4, 0)}),
        N(10, "SaveVideo", (1580, 260), {"filename_prefix": "ditto/video_source", "format": "auto", "codec": "auto"},
          {"video": (9, 0)}),
        note(11, (800, 700),
             "A video as the source: its frames play forward and backward (ping-pong) under the generated lip and "
             "eye motion while the head keeps the video's own pose. Keep the video short (a few seconds); every frame "
             "is registered. The speech comes from Load Audio; the video's own audio is not used."),
    ],
}


def _node_size(iface: Interface | None, n: N) -> list[int]:
    if n.size[1]:
        return list(n.size)
    rows = len(iface.inputs) + len(iface.outputs) if iface else 2
    return [n.size[0], 46 + 24 * rows]


def build(
    name: str, graph: list[N], ifaces: dict[str, Interface], display_names: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    by_id = {n.id: n for n in graph}
    links: list[list[Any]] = []
    node_links_in: dict[tuple[int, str], int] = {}
    node_links_out: dict[tuple[int, int], list[int]] = {}
    for n in graph:
        if n.type == "Note":
            continue
        iface = ifaces[n.type]
        for inp in iface.inputs:
            if inp.name not in n.links:
                continue
            src, slot = n.links[inp.name]
            typ = ifaces[by_id[src].type].outputs[slot][1]
            lid = len(links) + 1
            node_links_in[(n.id, inp.name)] = lid
            node_links_out.setdefault((src, slot), []).append(lid)
            links.append([lid, src, slot, n.id, None, typ])

    # execution order for the "order" field: sources first
    order: dict[int, int] = {}

    def visit(i: int) -> None:
        if i in order:
            return
        for src, _ in by_id[i].links.values():
            visit(src)
        order[i] = len(order)

    for n in graph:
        visit(n.id)

    nodes = []
    for n in graph:
        if n.type == "Note":
            nodes.append({
                "id": n.id, "type": "Note", "pos": list(n.pos), "size": list(n.size), "flags": {}, "order": order[n.id],
                "mode": 0, "inputs": [], "outputs": [], "title": n.title, "properties": {},
                "widgets_values": [n.widgets["text"]], "color": "#432", "bgcolor": "#653",
            })
            continue
        iface = ifaces[n.type]
        inputs = []
        for inp in iface.inputs:
            linked = (n.id, inp.name) in node_links_in
            if inp.is_widget and not linked:
                continue
            entry: dict[str, Any] = {"name": inp.name, "type": inp.socket_type}
            if inp.optional:
                entry["shape"] = 7
            if inp.is_widget:
                entry["widget"] = {"name": inp.name}
            entry["link"] = node_links_in.get((n.id, inp.name))
            if entry["link"] is not None:
                links[entry["link"] - 1][4] = len(inputs)
            inputs.append(entry)
        outputs = []
        for slot, (oname, otype) in enumerate(iface.outputs):
            outputs.append({"name": oname, "type": otype, "links": node_links_out.get((n.id, slot), []), "slot_index": slot})
        missing = [w for w in iface.widgets if w not in n.widgets]
        if missing:
            raise SystemExit(f"{name}: node {n.id} {n.type} lacks widget values {missing}")
        values = [n.widgets[w] for w in iface.widgets] + list(iface.ui_extra_values)
        node = {
            "id": n.id, "type": n.type, "pos": list(n.pos), "size": _node_size(iface, n), "flags": {}, "order": order[n.id],
            "mode": 0, "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": n.type},
            "widgets_values": values,
        }
        if n.title:
            node["title"] = n.title
        nodes.append(node)
    ui = {
        "last_node_id": max(by_id),
        "last_link_id": len(links),
        "nodes": sorted(nodes, key=lambda x: x["order"]),
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}, "ditto_workflow": name},
        "version": 0.4,
    }
    return ui, ui_to_api(ui, ifaces, display_names)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gen = stubbed_pack(Path(tmp))
        pack, _ = next(gen)
        try:
            ifaces = interfaces(pack)
            API_DIR.mkdir(parents=True, exist_ok=True)
            for name, graph in GRAPHS.items():
                ui, api = build(name, graph, ifaces, pack.NODE_DISPLAY_NAME_MAPPINGS)
                (WORKFLOWS_DIR / f"{name}.json").write_text(json.dumps(ui, indent=2, ensure_ascii=False) + "\n")
                (API_DIR / f"{name}.json").write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
                print(f"wrote {name}: {len(ui['nodes'])} nodes, {len(ui['links'])} links")
        finally:
            gen.close()


if __name__ == "__main__":
    main()
