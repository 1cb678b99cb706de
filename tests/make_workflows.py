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

from comfy_stubs import REPO_ROOT, stubbed_pack  # noqa: E402
from workflow_tools import API_DIR, WORKFLOWS_DIR, Interface, interfaces, ui_to_api  # noqa: E402

MODELS = {"models_folder": "ditto-talkinghead", "device": "auto", "precision": "fp32", "backend": "pytorch", "download_missing": True,
          "cuda_graphs": False, "compile": False, "channels_last": False}
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


#: workflow file names: ComfyUI's templates browser shows a custom node's template by its file name
BASIC = "Talking head from a portrait"
KEYFRAMES = "Emotion and head-pose keyframes"
VIDEO = "Talking head from a video"
LONG = "Long clip straight to a video file"
LIVE = "Live avatar from a portrait"
DRIVING = "Video driving"
MIXED = "Head from video, lips from speech"

#: Go Live's avatar name in the live workflow, and where the live page is on ComfyUI's server (nodes/live.py)
LIVE_AVATAR = "comfyui"
LIVE_PATH = "/ditto/live/"

#: the pack's sample inputs (example_inputs/, copied into ComfyUI's input folder when the pack loads)
PORTRAIT = "ditto_portrait.jpg"
SPEECH = "ditto_speech.wav"
SPEECH_LONG = "ditto_speech_long.flac"
SOURCE_VIDEO = "ditto_source_video.mp4"
SAMPLES_NOTE = ("The inputs are the pack's sample files (ditto_*), which the pack puts into ComfyUI's input folder; "
                "pick your own in the load nodes.")

#: node types that draw the motion curves below their widgets once they ran (web/ditto_motion.js)
CURVE_NODES = {"DittoMotionSampler", "DittoEditMotion", "DittoSaveMotion", "DittoLoadMotion", "DittoExtractDrivingMotion",
               "DittoMixMotion"}
#: height the curves add to a node (the chart and its margins), kept free in the layout
CURVE_H = 200
#: heights of the nodes that show a preview (image, audio player, video) below their widgets
PREVIEW_H = {"LoadImage": 380, "LoadVideo": 380, "LoadAudio": 150, "SaveVideo": 400, "DittoRenderVideo": 520,
             "PreviewImage": 420}
#: heights nodes grow by once they ran, kept free below them: Load Ditto Models' "runs on" line (web/ditto_devices.js;
#: 36 graph units in the Vue node renderer of frontend 1.58.1)
RUN_GROWTH_H = {"DittoLoadModels": 50}
TITLE_H = 30  # LiteGraph draws the title bar above a node's pos
GAP = 40

#: Extract Driving Motion's widgets: the library's driving parts (head pose, translation, whole expression), relative
DRIVING_WIDGETS = {
    "head_pose": True,
    "translation": True,
    "eyes": False,
    "brows": False,
    "lips": False,
    "expression": True,
    "mode": "relative",
    "smoothing": 1,
    "face_index": 0,
    "face_order": "size",
    "max_frames": -1,
    "fps": 25.0,
}
#: Mix Motion's widgets: head pose and eyes from motion_b over the whole clip
MIX = {
    "head_pose": True,
    "translation": False,
    "eyes": True,
    "brows": False,
    "lips": False,
    "expression": False,
    "start": 0,
    "end": -1,
    "ease_in": 0,
    "ease_out": 0,
    "length": "hold",
}

GRAPHS: dict[str, list[N]] = {
    BASIC: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "LoadAudio", (40, 60), {"audio": SPEECH}, title="Speech"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoAudioToHuBERT", (420, 60), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(6, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (4, 0), "audio_features": (5, 0)}),
        N(7, "DittoRenderFrames", (1200, 60), {"output": "full", "batch_size": 4, "start_frame": 0, "frame_count": 0},
          {"models": (1, 0), "source": (4, 0), "motion": (6, 0)}),
        N(8, "CreateVideo", (1580, 60), {"fps": 25.0}, {"images": (7, 0), "fps": (7, 2), "audio": (3, 0)}),
        N(9, "SaveVideo", (1580, 60), {"filename_prefix": "ditto/talking_head", "format": "auto", "codec": "auto"},
          {"video": (8, 0)}),
        note(10, (420, 60),
             "Ditto talking head: one portrait + a speech clip -> a talking-head video.\n\n"
             "1. Put the official models in models/ditto/ditto-talkinghead (Load Ditto Models downloads them when "
             "'download_missing' is on).\n2. Queue. The motion curves appear on the sampler before rendering; the "
             "video lands in output/ditto/.\n\n" + SAMPLES_NOTE + " Render Frames outputs a normal IMAGE batch at "
             "25 fps: insert upscalers or face restorers before Create Video.", (360, 300)),
    ],
    KEYFRAMES: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "LoadAudio", (40, 60), {"audio": SPEECH}, title="Speech"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoAudioToHuBERT", (420, 60), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(6, "DittoMotionSampler", (800, 60),
          {**SAMPLER, "emotion": "mix", "emotion_mix": "Happy:0.7, Neutral:0.3", "seed": 1234},
          {"models": (1, 0), "source": (4, 0), "audio_features": (5, 0)}, title="DiT Motion Sampler (happy)"),
        N(11, "DittoEditMotion", (1200, 60),
          {**EDIT, "start_frame": 0, "end_frame": 25, "ease_in": 0, "ease_out": 10, "yaw": 12.0, "pitch": -3.0,
           "label": "look right"},
          {"motion": (6, 0)}, title="Edit 1: look right (0-1 s)"),
        N(12, "DittoEditMotion", (1580, 60),
          {**EDIT, "start_frame": 25, "end_frame": -1, "ease_in": 10, "ease_out": 0, "yaw": -8.0, "roll": 4.0,
           "mouth_amplitude": 1.3, "head_amplitude": 1.2, "label": "turn left, livelier"},
          {"motion": (11, 0)}, title="Edit 2: turn left (1 s-end)"),
        N(13, "DittoEditMotion", (1960, 60),
          {**EDIT, "relax_on_silence": 0.6, "blink_interval": 75, "fade_in": 5, "fade_out": 10, "smoothing": 3,
           "label": "whole clip"},
          {"motion": (12, 0)}, title="Edit 3: blinks, relax on silence, fades"),
        N(14, "DittoSaveMotion", (2340, 60), {"filename_prefix": "ditto/keyframed_motion"}, {"motion": (13, 0)}),
        N(7, "DittoRenderFrames", (2340, 60), {"output": "full", "batch_size": 4, "start_frame": 0, "frame_count": 0},
          {"models": (1, 0), "source": (4, 0), "motion": (13, 0)}),
        N(8, "CreateVideo", (2720, 60), {"fps": 25.0}, {"images": (7, 0), "fps": (7, 2), "audio": (3, 0)}),
        N(9, "SaveVideo", (2720, 60), {"filename_prefix": "ditto/keyframed", "format": "auto", "codec": "auto"},
          {"video": (8, 0)}),
        note(10, (420, 60),
             "Emotion and head-pose keyframing.\n\nThe sampler uses a 70/30 Happy/Neutral emotion mix. Each Edit Motion "
             "applies to a frame range (25 frames = 1 s; end -1 = to the end) with eased edges; chained edits stack "
             "(offsets add, amplitudes multiply). The curves on each edit node show yaw/pitch/roll and mouth activity "
             "with the edited ranges shaded. Save Motion writes the performance to output/ditto/ so it can be "
             "re-rendered on another face with Load Motion.\n\n" + SAMPLES_NOTE, (360, 320)),
    ],
    VIDEO: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadVideo", (40, 60), {"file": SOURCE_VIDEO}, title="Source video"),
        N(3, "GetVideoComponents", (40, 60), {}, {"video": (2, 0)}),
        N(4, "LoadAudio", (40, 60), {"audio": SPEECH}, title="Speech"),
        N(5, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (3, 0)}),
        N(6, "DittoAudioToHuBERT", (420, 60), {}, {"models": (1, 0), "audio": (4, 0)}),
        N(7, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (5, 0), "audio_features": (6, 0)}),
        N(8, "DittoRenderFrames", (1200, 60), {"output": "full", "batch_size": 4, "start_frame": 0, "frame_count": 0},
          {"models": (1, 0), "source": (5, 0), "motion": (7, 0)}),
        N(9, "CreateVideo", (1580, 60), {"fps": 25.0}, {"images": (8, 0), "fps": (8, 2), "audio": (4, 0)}),
        N(10, "SaveVideo", (1580, 60), {"filename_prefix": "ditto/video_source", "format": "auto", "codec": "auto"},
          {"video": (9, 0)}),
        note(11, (420, 60),
             "A video as the source: its frames play forward and backward (ping-pong) under the generated lip and "
             "eye motion while the head keeps the video's own pose. Keep the video short (a few seconds); every frame "
             "is registered. The speech comes from Load Audio; the video's own audio is not used.\n\n" + SAMPLES_NOTE,
             (360, 260)),
    ],
    LONG: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "LoadAudio", (40, 60), {"audio": SPEECH_LONG}, title="Speech (16 s)"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoAudioToHuBERT", (420, 60), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(6, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (4, 0), "audio_features": (5, 0)}),
        N(7, "DittoRenderVideo", (1200, 60), {"output": "full", "batch_size": 4, "quality": 18},
          {"models": (1, 0), "source": (4, 0), "motion": (6, 0), "audio": (3, 0)}),
        N(8, "SaveVideo", (1580, 60), {"filename_prefix": "ditto/long_clip", "format": "auto", "codec": "auto"},
          {"video": (7, 0)}),
        note(9, (420, 60),
             "A long clip in flat memory: Render Video encodes each frame as soon as it is rendered (H.264, with the "
             "speech at its own rate and channels), so memory does not grow with the clip, where Render Frames would "
             "hold every frame as an IMAGE batch (about 1 GB per 10 s at 512x512). Save Video copies the file into "
             "output/ditto/ without re-encoding.\n\nTo put a long clip through IMAGE nodes (upscalers, face "
             "restorers), render it in pieces with Render Frames' start_frame and frame_count.\n\n" + SAMPLES_NOTE,
             (360, 340)),
    ],
    LIVE: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(4, "DittoGoLive", (800, 60),
          {"name": LIVE_AVATAR, "emotion": "Neutral", "mouth": 1.0, "head": 1.0, "pitch": 0.0, "yaw": 0.0, "roll": 0.0,
           "output": "crop"},
          {"models": (1, 0), "source": (3, 0)}),
        note(5, (420, 60),
             "A live avatar: Go Live publishes this portrait (the models and the extracted source) to the live page "
             "that ComfyUI-Ditto serves on this ComfyUI server.\n\n1. Queue.\n"
             f"2. Open {LIVE_PATH} on this server in a new browser tab (e.g. http://127.0.0.1:8188{LIVE_PATH}), pick "
             f"the avatar '{LIVE_AVATAR}', press Talk and speak (browsers allow the microphone on localhost or https), "
             "or Play file.\n\nGo Live's widgets are the sessions' defaults (the page can change them); 'crop' "
             "streams the 512x512 face crop, 'full' the face pasted back into the portrait. The avatar stays "
             "published until ComfyUI restarts or another Go Live uses the same name. Real time needs a GPU; on a CPU "
             "each frame takes seconds (tens of seconds on a small CPU).\n\n" + SAMPLES_NOTE,
             (360, 400)),
    ],
    DRIVING: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "LoadVideo", (40, 60), {"file": SOURCE_VIDEO}, title="Driving video"),
        N(4, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(5, "DittoExtractDrivingMotion", (420, 60), DRIVING_WIDGETS, {"models": (1, 0), "video": (3, 0)}),
        N(6, "DittoPreviewMotion", (800, 60), {"every": 1, "max_frames": 250},
          {"models": (1, 0), "source": (4, 0), "motion": (5, 0)}),
        N(7, "PreviewImage", (800, 60), {}, {"images": (6, 0)}, title="Keypoint preview"),
        N(8, "DittoRenderVideo", (1200, 60), {"output": "full", "batch_size": 4, "quality": 18},
          {"models": (1, 0), "source": (4, 0), "motion": (5, 0)}),
        N(9, "SaveVideo", (1580, 60), {"filename_prefix": "ditto/video_driving", "format": "auto", "codec": "auto"},
          {"video": (8, 0)}),
        note(10, (1580, 60),
             "Video driving: the portrait copies the head motion and expression of the face in a video (no speech "
             "model). Extract Driving Motion tracks the face through every video frame and turns it into a 25 fps "
             "motion; its toggles choose what the portrait takes (here head pose, position and the whole "
             "expression), relative to the video's first frame. Preview Motion draws the motion as keypoints on the "
             "portrait in milliseconds per frame, to check it before the slow render.\n\nThe video is silent; to "
             "give it a sound track (e.g. the driving video's own, from Get Video Components), connect an AUDIO to "
             "Render Video's audio.\n\n" + SAMPLES_NOTE,
             (360, 360)),
    ],
    MIXED: [
        N(1, "DittoLoadModels", (40, 60), MODELS),
        N(2, "LoadImage", (40, 60), {"image": PORTRAIT}, title="Portrait"),
        N(3, "LoadAudio", (40, 60), {"audio": SPEECH}, title="Speech"),
        N(4, "LoadVideo", (40, 60), {"file": SOURCE_VIDEO}, title="Driving video"),
        N(5, "DittoExtractSource", (420, 60), {"crop_scale": 2.3, "face_index": 0, "face_order": "size"},
          {"models": (1, 0), "images": (2, 0)}),
        N(6, "DittoAudioToHuBERT", (420, 60), {}, {"models": (1, 0), "audio": (3, 0)}),
        N(7, "DittoExtractDrivingMotion", (420, 60),
          {**DRIVING_WIDGETS, "translation": False, "eyes": True, "expression": False},
          {"models": (1, 0), "video": (4, 0)}, title="Extract Driving Motion (motion B: head, eyes)"),
        N(8, "DittoMotionSampler", (800, 60), SAMPLER, {"models": (1, 0), "source": (5, 0), "audio_features": (6, 0)},
          title="DiT Motion Sampler (motion A: lips)"),
        N(9, "DittoMixMotion", (1200, 60), MIX, {"motion_a": (8, 0), "motion_b": (7, 0)}),
        N(10, "DittoRenderVideo", (1580, 60), {"output": "full", "batch_size": 4, "quality": 18},
          {"models": (1, 0), "source": (5, 0), "motion": (9, 0), "audio": (3, 0)}),
        N(11, "SaveVideo", (1960, 60), {"filename_prefix": "ditto/head_from_video", "format": "auto", "codec": "auto"},
          {"video": (10, 0)}),
        note(12, (800, 60),
             "Head from a video, lips from speech: the DiT Motion Sampler lip-syncs the portrait to the speech "
             "(motion A); Extract Driving Motion takes the head motion and blinks of the face in a video (motion B, "
             "relative, as the sampler's); Mix Motion keeps A and takes the parts switched on (head pose and eyes) "
             "from B. Its start, end and ease widgets limit B to a frame range; length decides what happens when "
             "the speech and the video differ in length (hold: the shorter one holds its last frame).\n\n"
             + SAMPLES_NOTE,
             (360, 340)),
    ],
}


def _node_size(iface: Interface | None, n: N) -> list[int]:
    """A node's saved size: room for its sockets and widgets, plus the curves on the nodes that draw them."""
    if n.size[1]:
        return list(n.size)
    # a row per socket and widget (a seed's control_after_generate is a widget row of its own)
    rows = len({i.name for i in iface.inputs} | set(iface.widgets)) + len(iface.outputs) if iface else 2
    h = 46 + 24 * rows + (CURVE_H if n.type in CURVE_NODES else 0)
    return [n.size[0], max(h, PREVIEW_H.get(n.type, 0))]


def _stack(graph: list[N], ifaces: dict[str, Interface]) -> dict[int, tuple[int, int]]:
    """Positions: the nodes of one column (same x) top to bottom in the order listed, each at least ``GAP`` below the
    previous one's bottom (its title bar included), so no two nodes overlap even once the curves are drawn or a node
    grew after a run (:data:`RUN_GROWTH_H`)."""
    pos: dict[int, tuple[int, int]] = {}
    bottom: dict[int, int] = {}
    for n in graph:
        x, y = n.pos
        y = max(y, bottom.get(x, -10**9) + GAP + TITLE_H)
        pos[n.id] = (x, y)
        bottom[x] = y + _node_size(ifaces.get(n.type), n)[1] + RUN_GROWTH_H.get(n.type, 0)
    return pos


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

    positions = _stack(graph, ifaces)
    nodes = []
    for n in graph:
        if n.type == "Note":
            nodes.append({
                "id": n.id, "type": "Note", "pos": list(positions[n.id]), "size": list(n.size), "flags": {}, "order": order[n.id],
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
            "id": n.id, "type": n.type, "pos": list(positions[n.id]), "size": _node_size(iface, n), "flags": {}, "order": order[n.id],
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


THUMB_SIZE = 512
NODE_COLOURS = {"Ditto": (70, 150, 235), "Note": (80, 110, 150), "Load": (120, 190, 120), "Save": (60, 170, 230)}


def write_thumbnail(ui: dict[str, Any], title: str, path: Path) -> None:
    """The template card ComfyUI shows for ``<name>.json``: the sample portrait with the workflow's title and a
    miniature of its graph (a box per node, coloured by kind) in a band at the bottom."""
    import cv2
    import numpy as np

    portrait = cv2.imread(str(REPO_ROOT / "example_inputs" / PORTRAIT))
    card = cv2.resize(portrait, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    band_top = THUMB_SIZE - 170
    card[band_top:] = (card[band_top:] * 0.25).astype(np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(card, title, (16, band_top + 34), font, 0.72, (255, 255, 255), 2, cv2.LINE_AA)
    nodes = ui["nodes"]
    x0 = min(n["pos"][0] for n in nodes)
    y0 = min(n["pos"][1] - TITLE_H for n in nodes)
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes)
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes)
    box = (16, band_top + 50, THUMB_SIZE - 16, THUMB_SIZE - 12)
    scale = min((box[2] - box[0]) / (x1 - x0), (box[3] - box[1]) / (y1 - y0))
    for n in nodes:
        kind = next((k for k in NODE_COLOURS if n["type"].startswith(k)), None)
        colour = NODE_COLOURS.get(kind or "", (150, 150, 150))
        a = (int(box[0] + (n["pos"][0] - x0) * scale), int(box[1] + (n["pos"][1] - TITLE_H - y0) * scale))
        b = (int(a[0] + n["size"][0] * scale), int(box[1] + (n["pos"][1] + n["size"][1] - y0) * scale))
        cv2.rectangle(card, a, b, colour, -1)
        cv2.rectangle(card, a, b, (30, 30, 30), 1)
    cv2.imwrite(str(path), card, [cv2.IMWRITE_JPEG_QUALITY, 85])


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
                write_thumbnail(ui, name, WORKFLOWS_DIR / f"{name}.jpg")
                print(f"wrote {name}: {len(ui['nodes'])} nodes, {len(ui['links'])} links")
        finally:
            gen.close()


if __name__ == "__main__":
    main()
