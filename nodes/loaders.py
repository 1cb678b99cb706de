"""Load Ditto Models: one models folder under ``models/ditto`` -> ``DITTO_MODELS``."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from ditto_core.devices import DEVICES
from ditto_core.render.renderer import BACKENDS, PRECISIONS

from .live import LIVE
from .types import (
    CATEGORY_LOADERS,
    DEFAULT_MODELS_FOLDER,
    DITTO_MODELS,
    MODEL_FOLDER_KEY,
)
from .utils import folder_paths_module, safe_child

log = logging.getLogger(__name__)


def model_roots() -> list[Path]:
    """The folders registered as ``ditto`` model paths (``models/ditto`` plus extra_model_paths.yaml entries)."""
    fp = folder_paths_module()
    if fp is None:
        return []
    try:
        return [Path(p) for p in fp.get_folder_paths(MODEL_FOLDER_KEY)]
    except (KeyError, AttributeError):
        return [Path(fp.models_dir) / MODEL_FOLDER_KEY] if hasattr(fp, "models_dir") else []


def list_model_folders() -> list[str]:
    """Subfolder names of every ``ditto`` model path, the default name first (listed even before its download)."""
    names: set[str] = set()
    for root in model_roots():
        try:
            names.update(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
    names.discard(DEFAULT_MODELS_FOLDER)
    return [DEFAULT_MODELS_FOLDER, *sorted(names)]


def resolve_models_dir(name: str) -> Path:
    """The models folder ``name`` inside the registered ``ditto`` paths: the first that exists, else where the
    download goes (the first path). Names with separators or ``..`` are refused."""
    if "/" in name or "\\" in name:
        raise ValueError(f"models_folder: {name!r} must be a folder name inside models/{MODEL_FOLDER_KEY}, without '/'")
    roots = model_roots()
    if not roots:
        raise ValueError(f"models_folder: no '{MODEL_FOLDER_KEY}' model path is registered with ComfyUI's folder_paths")
    candidates = [safe_child(r, name, "models_folder") for r in roots]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def tensorrt_available() -> bool:
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


def backends() -> list[str]:
    """The renderer backends to offer: TensorRT only where its package is installed."""
    return [b for b in BACKENDS if b != "tensorrt" or tensorrt_available()]


def resolve_device(device: str) -> str:
    """``auto`` -> ComfyUI's device (honours ``--cpu``), else ``device`` unchanged."""
    if device != "auto":
        return device
    try:
        import comfy.model_management as mm

        return str(mm.get_torch_device())
    except Exception:  # outside ComfyUI: let ditto_core pick
        return "auto"


def _soft_empty_cache() -> None:
    try:
        import comfy.model_management as mm

        mm.soft_empty_cache()
    except Exception:
        pass


class DittoLoadModels:
    """Loads every Ditto network of one models folder; caches it until the inputs change."""

    DESCRIPTION = (
        "Load the Ditto networks (HuBERT audio encoder, DiT motion sampler, LivePortrait renderer, face detectors) "
        "from a folder under models/ditto. Missing official files are downloaded from the Hugging Face repository "
        "digital-avatar/ditto-talkinghead when 'download_missing' is on (only when this node runs, never at start-up). "
        "The loaded models stay cached; changing device, precision or folder reloads them and frees the old ones."
    )
    CATEGORY = CATEGORY_LOADERS
    FUNCTION = "load"
    RETURN_TYPES = (DITTO_MODELS,)
    RETURN_NAMES = ("models",)
    OUTPUT_TOOLTIPS = ("The loaded Ditto models; connect to Extract Source, Audio to HuBERT, the sampler and Render Frames.",)
    # after a run the node shows where everything runs (device, renderer path, aux ONNX providers and, on a fallback
    # to the CPU, why): web/ditto_devices.js displays the "text" of the node's ui output

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._models: Any = None

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "models_folder": (
                    list_model_folders(),
                    {
                        "default": DEFAULT_MODELS_FOLDER,
                        "tooltip": "Folder under models/ditto holding the official release files "
                        "(ditto_pytorch/..., ditto_cfg/...) or the synthetic test kit.",
                    },
                ),
                "device": (
                    list(DEVICES),
                    {"default": "auto", "tooltip": "auto = ComfyUI's device (honours --cpu); or force cuda, cpu or mps."},
                ),
                "precision": (
                    list(PRECISIONS),
                    {
                        "default": "fp32",
                        "tooltip": "Renderer precision. fp32 reproduces the reference outputs; fp16/bf16 are faster "
                        "and use less memory on GPUs. The motion sampler always runs in fp32.",
                    },
                ),
                "backend": (
                    backends(),
                    {
                        "default": "pytorch",
                        "tooltip": "Renderer backend. 'tensorrt' is listed only when the tensorrt package is installed "
                        "and needs engines built for your GPU.",
                    },
                ),
                "download_missing": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Download missing official files from Hugging Face (digital-avatar/ditto-talkinghead) "
                        "into the models folder when this node runs. Off: fail with instructions instead.",
                    },
                ),
            },
            "optional": {
                "cuda_graphs": ("BOOLEAN", {"default": False, "tooltip": "GPU speed option (CUDA only): capture "
                                "warp + decode once per batch size and replay it. Ignored, with a warning, on another "
                                "device."}),
                "compile": ("BOOLEAN", {"default": False, "tooltip": "GPU speed option: torch.compile the warp and "
                            "decoder on first use (the first render takes minutes longer; then faster on a GPU)."}),
                "channels_last": ("BOOLEAN", {"default": False, "tooltip": "GPU speed option: run the decoder in "
                                  "channels-last memory format (faster on NVIDIA tensor cores; no gain on a CPU)."}),
            },
        }

    def load(self, models_folder: str, device: str, precision: str, backend: str, download_missing: bool,
             cuda_graphs: bool = False, compile: bool = False, channels_last: bool = False) -> dict[str, Any]:
        from ditto_core.runtime import DittoModels, RenderOptions

        if device not in DEVICES:
            raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        models_dir = resolve_models_dir(models_folder)
        dev = resolve_device(device)
        render = RenderOptions(cuda_graphs=cuda_graphs, compile=compile, channels_last=channels_last)
        key = (str(models_dir), dev, precision, backend, bool(download_missing), render)
        if self._models is not None and self._key == key:
            return self._result()
        self.release()
        log.info("Ditto: loading models from %s (device %s, %s)", models_dir, dev, precision)
        self._models = DittoModels.load(models_dir, device=dev, precision=precision, download=bool(download_missing),
                                        backend=backend, render=render)  # logs where the aux models run
        self._key = key
        return self._result()

    def _result(self) -> dict[str, Any]:
        return {"ui": {"text": [self._models.device_report()]}, "result": (self._models,)}

    def release(self) -> None:
        """Free the cached models (called when the inputs change); models that Go Live published are only dropped
        from this cache (a live session may be using them; they are freed with the avatar)."""
        if self._models is not None:
            try:
                if not LIVE.uses(self._models):
                    self._models.release_memory()
            finally:
                self._models = None
                self._key = None
                _soft_empty_cache()


NODE_CLASS_MAPPINGS = {"DittoLoadModels": DittoLoadModels}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoLoadModels": "Load Ditto Models"}
