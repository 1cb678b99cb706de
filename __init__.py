"""ComfyUI-Ditto: Ditto talking heads (arXiv 2411.19509) as ComfyUI nodes.

ComfyUI imports this file as a package (``custom_nodes/<folder>/__init__.py``). Importing it:

* registers the ``ditto`` model folder (``models/ditto``, keeping paths from extra_model_paths.yaml);
* makes the bundled ``ditto_core`` library importable as ``ditto_core``;
* exports ``NODE_CLASS_MAPPINGS``, ``NODE_DISPLAY_NAME_MAPPINGS`` and ``WEB_DIRECTORY``;
* puts the example workflows' sample inputs into ComfyUI's input folder where no file of that name is
  (``nodes/examples.py``; ``DITTO_NO_EXAMPLE_INPUTS=1`` skips it).

It never downloads anything and never loads a model; optional packages (huggingface_hub for downloads, mediapipe,
tensorrt) are only looked up when a node needs them. If a required package is missing, one error line names it
and the pack registers no nodes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_log = logging.getLogger("ComfyUI-Ditto")

#: import name -> pip name of the packages the nodes cannot run without
REQUIRED_PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "safetensors": "safetensors",
    "onnxruntime": "onnxruntime",
    "cv2": "opencv-python-headless",
    "soxr": "soxr",
    "av": "av",
}

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
WEB_DIRECTORY = "./web"


def _missing_packages() -> list[str]:
    missing = []
    for module, pip_name in REQUIRED_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
            found = False
        if not found:
            missing.append(pip_name)
    return missing


def _use_bundled_ditto_core() -> None:
    """Import this pack's ``ditto_core`` under the top-level name ``ditto_core`` (no sys.path change)."""
    pkg_dir = os.path.join(_HERE, "ditto_core")
    existing = sys.modules.get("ditto_core")
    if existing is not None:
        where = os.path.dirname(os.path.abspath(getattr(existing, "__file__", "") or ""))
        if os.path.normcase(where) != os.path.normcase(pkg_dir):
            _log.warning("ComfyUI-Ditto: using the already imported ditto_core from %s, not the bundled one", where)
        return
    spec = importlib.util.spec_from_file_location(
        "ditto_core", os.path.join(pkg_dir, "__init__.py"), submodule_search_locations=[pkg_dir]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"ComfyUI-Ditto: cannot load the bundled ditto_core from {pkg_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ditto_core"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("ditto_core", None)
        raise


def _register_model_folder() -> None:
    try:
        import folder_paths
    except ImportError:  # outside ComfyUI
        return
    path = os.path.join(folder_paths.models_dir, "ditto")
    try:
        folder_paths.add_model_folder_path("ditto", path, is_default=True)
    except TypeError:  # ComfyUI before is_default
        folder_paths.add_model_folder_path("ditto", path)


_missing = _missing_packages()
if _missing:
    _log.error(
        "ComfyUI-Ditto: missing required Python package(s): %s. Install them with: pip install -r %s (then restart ComfyUI)",
        ", ".join(_missing),
        os.path.join(_HERE, "requirements.txt"),
    )
elif __package__:
    _register_model_folder()
    _use_bundled_ditto_core()
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402,F811
    from .nodes.examples import install_into_comfyui_input  # noqa: E402

    install_into_comfyui_input()
# else: imported as a plain module, not as a package (pytest sets up the checkout's folder this way when its name
# is not a Python name, e.g. "tmp.x1y2"): there is no package to load the nodes from, and nothing is registered

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
