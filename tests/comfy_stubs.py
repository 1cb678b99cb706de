"""Stand-ins for the ComfyUI modules the pack touches, and a loader that imports the pack the way ComfyUI does.

* ``folder_paths``: base/models/input/output/temp folders under a temporary directory, ``add_model_folder_path``
  (same ordering rules as ComfyUI), ``get_folder_paths``, ``get_filename_list``, ``get_full_path(_or_raise)``,
  ``get_save_image_path`` (counter files, refuses prefixes outside the output folder).
* ``comfy.utils``: ``ProgressBar`` whose hook records every update in :class:`ProgressRecorder` and, like ComfyUI's
  hook, runs the interrupt check; ``recorder.interrupt_after = k`` raises ``InterruptProcessingException`` on the
  (k+1)-th update.
* ``comfy_api.input_impl``: ``VideoFromFile(path)`` (the core VIDEO of a file: ``get_stream_source``,
  ``get_components``, ``get_dimensions``, ``get_duration``, ``save_to`` copying the file, as ComfyUI's stream copy
  with auto format/codec).
* ``server``: ``PromptServer.instance.routes``, an aiohttp ``RouteTableDef`` as ComfyUI's (custom nodes add routes to
  it at import; the server adds them to its application when it starts); absent when aiohttp is not installed.
* ``comfy.model_management``: cpu ``get_torch_device``, ``soft_empty_cache``, ``InterruptProcessingException``,
  ``interrupt_current_processing`` / ``throw_exception_if_processing_interrupted`` / ``processing_interrupted``.

:func:`load_pack` mirrors ComfyUI's ``nodes.load_custom_node`` for a folder: ``spec_from_file_location`` of its
``__init__.py`` with ``submodule_search_locations``, registered in ``sys.modules`` under the folder name, executed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the name ComfyUI gives the pack: its folder name under custom_nodes (hyphenated, as most packs are)
PACK_NAME = "ComfyUI-Ditto"
STUB_NAMES = ("folder_paths", "comfy", "comfy.utils", "comfy.model_management", "comfy_api", "comfy_api.input_impl",
              "server")


class InterruptProcessingException(Exception):
    """The stub of ``comfy.model_management.InterruptProcessingException``."""


@dataclass
class ProgressRecorder:
    """Every ProgressBar update as ``(value, total)``; ``interrupt_after`` = k interrupts on the (k+1)-th update."""

    updates: list[tuple[int, int]] = field(default_factory=list)
    bars: int = 0
    interrupt_after: int | None = None

    def reset(self) -> None:
        self.updates.clear()
        self.bars = 0
        self.interrupt_after = None


def _make_model_management(recorder: ProgressRecorder) -> types.ModuleType:
    import torch

    mm = types.ModuleType("comfy.model_management")
    state = {"interrupted": False}
    mm.InterruptProcessingException = InterruptProcessingException

    def interrupt_current_processing(value: bool = True) -> None:
        state["interrupted"] = value

    def processing_interrupted() -> bool:
        return state["interrupted"]

    def throw_exception_if_processing_interrupted() -> None:
        if state["interrupted"]:
            state["interrupted"] = False
            raise InterruptProcessingException()

    mm.interrupt_current_processing = interrupt_current_processing
    mm.processing_interrupted = processing_interrupted
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.soft_empty_cache = lambda *a, **k: None
    mm.unload_all_models = lambda: None
    mm.is_device_mps = lambda device=None: False
    return mm


def _make_utils(recorder: ProgressRecorder, mm: types.ModuleType) -> types.ModuleType:
    utils = types.ModuleType("comfy.utils")

    def hook(value: int, total: int, preview: Any = None, node_id: Any = None) -> None:
        # ComfyUI's hook checks the interrupt flag first, so Cancel raises inside update()
        recorder.updates.append((int(value), int(total)))
        if recorder.interrupt_after is not None and len(recorder.updates) > recorder.interrupt_after:
            mm.interrupt_current_processing(True)
        mm.throw_exception_if_processing_interrupted()

    class ProgressBar:
        def __init__(self, total: int, node_id: Any = None) -> None:
            recorder.bars += 1
            self.total = total
            self.current = 0
            self.node_id = node_id

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            if total is not None:
                self.total = total
            value = min(value, self.total)
            self.current = value
            hook(self.current, self.total, preview, node_id=self.node_id)

        def update(self, value: int) -> None:
            self.update_absolute(self.current + value)

    utils.ProgressBar = ProgressBar
    utils.PROGRESS_BAR_HOOK = hook
    return utils


class VideoFromFile:
    """The stub of ``comfy_api.input_impl.VideoFromFile`` (ComfyUI v0.3.64): a core VIDEO backed by a file."""

    def __init__(self, file: str) -> None:
        self._file = file

    def get_stream_source(self) -> str:
        return self._file

    def get_components(self) -> Any:
        """``VideoComponents``-like: ``images`` float32 ``[N, H, W, 3]`` in 0..1, ``audio`` (None: the stub decodes
        no sound), ``frame_rate`` (a Fraction: the stream's average rate), as ComfyUI decodes a file."""
        from fractions import Fraction

        import torch

        from ditto_core.inputs import read_video
        from ditto_core.video import probe_video

        images = torch.from_numpy(read_video(self._file)).to(torch.float32) / 255.0
        rate = Fraction(probe_video(self._file)["fps"]).limit_denominator(1001)
        return types.SimpleNamespace(images=images, audio=None, frame_rate=rate, metadata={})

    def get_dimensions(self) -> tuple[int, int]:
        from ditto_core.video import probe_video

        info = probe_video(self._file)
        return info["width"], info["height"]

    def get_duration(self) -> float:
        from ditto_core.video import probe_video

        info = probe_video(self._file)
        return info["frames"] / info["fps"]

    def save_to(self, path: str, format: str = "auto", codec: str = "auto", metadata: Any = None) -> None:
        import shutil

        assert format in ("auto", "mp4") and codec in ("auto", "h264")
        shutil.copyfile(self._file, path)


def _make_folder_paths(base: Path) -> types.ModuleType:
    fp = types.ModuleType("folder_paths")
    fp.base_path = str(base)
    fp.models_dir = str(base / "models")
    fp.folder_names_and_paths = {}
    dirs = {"input": base / "input", "output": base / "output", "temp": base / "temp"}
    for d in [*dirs.values(), base / "models"]:
        d.mkdir(parents=True, exist_ok=True)

    def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
        if folder_name in fp.folder_names_and_paths:
            paths, _ = fp.folder_names_and_paths[folder_name]
            if full_folder_path in paths:
                if is_default and paths[0] != full_folder_path:
                    paths.remove(full_folder_path)
                    paths.insert(0, full_folder_path)
            elif is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
        else:
            fp.folder_names_and_paths[folder_name] = ([full_folder_path], set())

    def get_folder_paths(folder_name: str) -> list[str]:
        return list(fp.folder_names_and_paths[folder_name][0])

    def get_filename_list(folder_name: str) -> list[str]:
        out = []
        for root in get_folder_paths(folder_name):
            for dirpath, _, files in os.walk(root):
                out += [os.path.relpath(os.path.join(dirpath, f), root).replace("\\", "/") for f in files]
        return sorted(set(out))

    def get_full_path(folder_name: str, filename: str) -> str | None:
        for root in get_folder_paths(folder_name):
            p = os.path.join(root, filename)
            if os.path.isfile(p):
                return p
        return None

    def get_full_path_or_raise(folder_name: str, filename: str) -> str:
        p = get_full_path(folder_name, filename)
        if p is None:
            raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
        return p

    def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0):
        subfolder = os.path.dirname(os.path.normpath(filename_prefix))
        filename = os.path.basename(os.path.normpath(filename_prefix))
        full_output_folder = os.path.join(output_dir, subfolder)
        if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
            raise Exception("Saving image outside the output folder is not allowed.")
        counter = 1
        if os.path.isdir(full_output_folder):
            pat = re.compile(re.escape(filename) + r"_(\d+)_")
            nums = [int(m.group(1)) for f in os.listdir(full_output_folder) if (m := pat.match(f))]
            counter = max(nums, default=0) + 1
        return full_output_folder, filename, counter, subfolder, filename_prefix

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = get_folder_paths
    fp.get_filename_list = get_filename_list
    fp.get_full_path = get_full_path
    fp.get_full_path_or_raise = get_full_path_or_raise
    fp.get_save_image_path = get_save_image_path
    fp.get_input_directory = lambda: str(dirs["input"])
    fp.get_output_directory = lambda: str(dirs["output"])
    fp.get_temp_directory = lambda: str(dirs["temp"])
    return fp


@dataclass
class ComfyStubs:
    """The installed stub modules and their folders."""

    base: Path
    folder_paths: types.ModuleType
    utils: types.ModuleType
    model_management: types.ModuleType
    recorder: ProgressRecorder
    saved: dict[str, Any] = field(default_factory=dict)

    def uninstall(self) -> None:
        """Put back whatever ``sys.modules`` held for the stub names before :func:`install_stubs`."""
        for name in STUB_NAMES:
            if self.saved.get(name) is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = self.saved[name]

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def ditto_models_dir(self) -> Path:
        return self.base / "models" / "ditto"


def install_stubs(base: Path) -> ComfyStubs:
    """Put fresh stub modules into ``sys.modules`` (see the module doc); folders live under ``base``."""
    saved = {name: sys.modules.get(name) for name in STUB_NAMES}
    recorder = ProgressRecorder()
    mm = _make_model_management(recorder)
    utils = _make_utils(recorder, mm)
    fp = _make_folder_paths(Path(base))
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []  # a package
    comfy.utils = utils
    comfy.model_management = mm
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.__path__ = []
    input_impl = types.ModuleType("comfy_api.input_impl")
    input_impl.VideoFromFile = VideoFromFile
    comfy_api.input_impl = input_impl
    sys.modules.update({"folder_paths": fp, "comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm,
                        "comfy_api": comfy_api, "comfy_api.input_impl": input_impl})
    try:
        from aiohttp import web
    except ImportError:
        sys.modules.pop("server", None)
    else:
        server = types.ModuleType("server")
        server.PromptServer = type("PromptServer", (), {"instance": types.SimpleNamespace(routes=web.RouteTableDef())})
        sys.modules["server"] = server
    return ComfyStubs(Path(base), fp, utils, mm, recorder, saved)


def unload_pack(name: str = PACK_NAME) -> None:
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def load_pack(name: str = PACK_NAME, path: Path = REPO_ROOT) -> types.ModuleType:
    """Import the pack folder as ComfyUI does (``nodes.load_custom_node``) and return the module."""
    unload_pack(name)
    init = path / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, str(init), submodule_search_locations=[str(path)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        unload_pack(name)
        raise
    return module


def stubbed_pack(base: Path, name: str = PACK_NAME) -> Iterator[tuple[types.ModuleType, ComfyStubs]]:
    """Generator for fixtures: install stubs under ``base``, load the pack, yield, then clean up."""
    stubs = install_stubs(base)
    try:
        yield load_pack(name), stubs
    finally:
        unload_pack(name)
        stubs.uninstall()


#: widget-type inputs in INPUT_TYPES (everything else is a link)
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def is_widget(spec: tuple) -> bool:
    """An INPUT_TYPES entry that the frontend shows as a widget (a combo list or a primitive without forceInput)."""
    typ = spec[0]
    opts = spec[1] if len(spec) > 1 else {}
    if isinstance(typ, (list, tuple)):
        return True
    return typ in WIDGET_TYPES and not opts.get("forceInput", False)


def widget_order(node_cls: type) -> list[str]:
    """Saved-workflow widget order: required then optional widgets, ``control_after_generate`` after a seed."""
    inputs = node_cls.INPUT_TYPES()
    out: list[str] = []
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            if is_widget(spec):
                out.append(name)
                if len(spec) > 1 and spec[1].get("control_after_generate"):
                    out.append("control_after_generate")
    return out
