"""Names and places of the official release files (hub repository ``digital-avatar/ditto-talkinghead``).

Each entry gives the role the project uses, the official file name and its path inside the
release. A models folder either mirrors the release (``ditto_pytorch/models/...``) or is flat;
``ditto_core.checkpoints`` finds files by name under it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HUB_REPO_ID = "digital-avatar/ditto-talkinghead"
#: the marker at the root of a synthetic model kit (random weights: the output is noise)
SYNTHETIC_MARKER = "SYNTHETIC_MODELS.txt"


@dataclass(frozen=True)
class ReleaseFile:
    role: str  #: the project's name for it
    filename: str  #: the official file name
    release_path: str  #: path inside the hub repository
    required: bool = True  #: needed for the default pipeline


#: the six PyTorch networks (extractors, warp, decoder, stitching MLP, DiT)
NETWORK_FILES = (
    ReleaseFile("appearance_extractor", "appearance_extractor.pth", "ditto_pytorch/models/appearance_extractor.pth"),
    ReleaseFile("motion_extractor", "motion_extractor.pth", "ditto_pytorch/models/motion_extractor.pth"),
    ReleaseFile("warp_network", "warp_network.pth", "ditto_pytorch/models/warp_network.pth"),
    ReleaseFile("decoder", "decoder.pth", "ditto_pytorch/models/decoder.pth"),
    ReleaseFile("stitch_network", "stitch_network.pth", "ditto_pytorch/models/stitch_network.pth"),
    ReleaseFile("lmdm", "lmdm_v0.4_hubert.pth", "ditto_pytorch/models/lmdm_v0.4_hubert.pth"),
)

AUX_FILES = (
    ReleaseFile("face_detector", "det_10g.onnx", "ditto_pytorch/aux_models/det_10g.onnx"),
    ReleaseFile("landmark106", "2d106det.onnx", "ditto_pytorch/aux_models/2d106det.onnx"),
    ReleaseFile("landmark203", "landmark203.onnx", "ditto_pytorch/aux_models/landmark203.onnx"),
    ReleaseFile("hubert", "hubert_streaming_fix_kv.onnx", "ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx"),
    ReleaseFile("blaze_face", "blaze_face.onnx", "ditto_onnx/blaze_face.onnx"),
    ReleaseFile("face_mesh", "face_mesh.onnx", "ditto_onnx/face_mesh.onnx"),
    ReleaseFile("face_landmarker_task", "face_landmarker.task", "ditto_pytorch/aux_models/face_landmarker.task", required=False),
)

CONFIG_FILES = (
    # required: the official inference always passes it (blink template, motion clamp ranges, overall controls, sampling
    # settings); a folder without it would silently run on code defaults
    ReleaseFile("config", "v0.4_hubert_cfg_pytorch.pkl", "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl"),
)

#: the ``ditto_onnx/`` variants of the aux models (same networks, other I/O names); used when present
ONNX_AUX_ALIASES = {
    "face_detector": ("insightface_det.onnx",),
    "landmark106": ("landmark106.onnx",),
}

ALL_FILES = NETWORK_FILES + AUX_FILES + CONFIG_FILES
#: roles of the six networks, and of the aux models the default pipeline needs
NETWORK_ROLES = tuple(f.role for f in NETWORK_FILES)
AUX_ROLES = tuple(f.role for f in AUX_FILES if f.required)
CONFIG_ROLES = tuple(f.role for f in CONFIG_FILES)
BY_ROLE = {f.role: f for f in ALL_FILES}


#: where the command line looks for (and downloads) the official release when ``--models`` is not given
DEFAULT_MODELS_ENV = "DITTO_MODELS_DIR"


def default_models_dir() -> Path:
    """``$DITTO_MODELS_DIR``, else ``~/.cache/ditto/ditto-talkinghead``."""
    env = os.environ.get(DEFAULT_MODELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ditto" / "ditto-talkinghead"
