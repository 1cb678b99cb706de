"""The node contract: the pack loads as ComfyUI loads it, and every node declares a consistent, documented interface."""

from __future__ import annotations

import logging

import sys

import pytest

from comfy_stubs import REPO_ROOT, install_stubs, is_widget, load_pack, stubbed_pack, unload_pack, widget_order

#: type names ComfyUI core uses; custom types must not reuse them
CORE_TYPES = {
    "IMAGE", "MASK", "LATENT", "AUDIO", "VIDEO", "MODEL", "CLIP", "VAE", "CONDITIONING", "CONTROL_NET", "CLIP_VISION",
    "CLIP_VISION_OUTPUT", "STYLE_MODEL", "GLIGEN", "UPSCALE_MODEL", "SAMPLER", "SIGMAS", "NOISE", "GUIDER", "INT",
    "FLOAT", "STRING", "BOOLEAN", "COMBO", "*", "AUDIO_ENCODER", "AUDIO_ENCODER_OUTPUT", "FACE_LANDMARKS",
    "BOUNDING_BOX", "FACE_DETECTION_MODEL", "WEBCAM", "PHOTOMAKER", "HOOKS", "TIMESTEPS_RANGE", "LORA_MODEL",
}
EXPECTED_NODES = {
    "DittoLoadModels", "DittoExtractSource", "DittoAudioToHuBERT", "DittoMotionSampler", "DittoEditMotion",
    "DittoSaveMotion", "DittoLoadMotion", "DittoRenderFrames", "DittoRenderVideo", "DittoGoLive",
    "DittoExtractDrivingMotion", "DittoMixMotion", "DittoPreviewMotion",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from stubbed_pack(tmp_path_factory.mktemp("comfy"))


@pytest.fixture(scope="module")
def pack(loaded):
    return loaded[0]


@pytest.fixture(scope="module")
def stubs(loaded):
    return loaded[1]


def _nodes(pack):
    return sorted(pack.NODE_CLASS_MAPPINGS.items())


def test_pack_exports_the_nodes_and_web_directory(pack):
    assert set(pack.NODE_CLASS_MAPPINGS) == EXPECTED_NODES
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == EXPECTED_NODES
    assert pack.WEB_DIRECTORY == "./web"
    web = (REPO_ROOT / pack.WEB_DIRECTORY).resolve()
    assert (web / "ditto_motion.js").is_file()


def test_ids_unique_prefixed_and_categorised(pack):
    ids = list(pack.NODE_CLASS_MAPPINGS)
    assert len(ids) == len(set(ids))
    names = list(pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    assert len(names) == len(set(names))
    for node_id, cls in _nodes(pack):
        assert node_id.startswith("Ditto"), node_id
        assert cls.CATEGORY.startswith("Ditto/"), node_id
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40, node_id


def test_returns_consistent_and_documented(pack):
    for node_id, cls in _nodes(pack):
        n = len(cls.RETURN_TYPES)
        assert len(cls.RETURN_NAMES) == n, node_id
        assert len(cls.OUTPUT_TOOLTIPS) == n, node_id
        assert all(isinstance(t, str) and t.strip() for t in cls.OUTPUT_TOOLTIPS), node_id
        assert callable(getattr(cls, cls.FUNCTION, None)), node_id
        if n == 0:
            assert getattr(cls, "OUTPUT_NODE", False), f"{node_id} has no outputs and is not an output node"


def test_every_input_has_a_tooltip_and_sane_defaults(pack):
    for node_id, cls in _nodes(pack):
        inputs = cls.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional", "hidden"}, node_id
        for section in ("required", "optional"):
            for name, spec in inputs.get(section, {}).items():
                opts = spec[1] if len(spec) > 1 else {}
                where = f"{node_id}.{name}"
                assert opts.get("tooltip", "").strip(), f"{where} has no tooltip"
                typ = spec[0]
                if isinstance(typ, list):
                    if node_id == "DittoLoadMotion":  # lists the files present; may be empty
                        continue
                    assert typ, f"{where} has no options"
                    assert opts.get("default", typ[0]) in typ, f"{where} default not in its options"
                elif typ in ("INT", "FLOAT"):
                    assert "default" in opts and "min" in opts and "max" in opts, where
                    assert opts["min"] <= opts["default"] <= opts["max"], where
                    if typ == "INT":
                        assert all(isinstance(opts[k], int) for k in ("default", "min", "max")), where
                elif typ in ("STRING", "BOOLEAN"):
                    assert "default" in opts, where


def test_custom_types_never_reuse_core_names(pack, stubs):
    from importlib import import_module

    types_mod = import_module("ComfyUI-Ditto.nodes.types")
    for t in types_mod.CUSTOM_TYPES:
        assert t.startswith("DITTO_") and t not in CORE_TYPES
    used = set()
    for _, cls in _nodes(pack):
        used.update(cls.RETURN_TYPES)
        for section in ("required", "optional"):
            used.update(s[0] for s in cls.INPUT_TYPES().get(section, {}).values() if isinstance(s[0], str))
    custom = {t for t in used if t not in CORE_TYPES}
    assert custom == set(types_mod.CUSTOM_TYPES)


def test_widget_order_is_frozen(pack):
    from importlib import import_module

    frozen = import_module("ComfyUI-Ditto.nodes.types").FROZEN_WIDGETS
    assert set(frozen) == EXPECTED_NODES
    for node_id, cls in _nodes(pack):
        assert tuple(widget_order(cls)) == frozen[node_id], f"{node_id}: widget order changed (saved workflows break)"


def test_official_defaults(pack):
    m = pack.NODE_CLASS_MAPPINGS
    req = lambda n: m[n].INPUT_TYPES()["required"]  # noqa: E731
    assert req("DittoLoadModels")["models_folder"][1]["default"] == "ditto-talkinghead"
    assert req("DittoLoadModels")["download_missing"][1]["default"] is True
    assert req("DittoExtractSource")["crop_scale"][1]["default"] == 2.3
    assert req("DittoExtractSource")["face_index"][1]["default"] == 0
    s = req("DittoMotionSampler")
    assert s["emotion"][1]["default"] == "Neutral"  # official emo 4
    assert s["emotion"][0].index("Neutral") == 4 and s["emotion"][0][-1] == "mix" and len(s["emotion"][0]) == 9
    assert s["steps"][1]["default"] == 50 and s["overlap"][1]["default"] == 10 and s["guidance"][1]["default"] == 2.0
    assert s["seed"][1]["control_after_generate"] is True
    assert s["eye_mode"][1]["default"] == "from source"
    r = req("DittoRenderFrames")
    assert r["output"][1]["default"] == "full"
    assert m["DittoRenderFrames"].RETURN_TYPES == ("IMAGE", "MASK", "FLOAT")
    frames_range = m["DittoRenderFrames"].INPUT_TYPES()["optional"]
    assert frames_range["start_frame"][1]["default"] == 0 and frames_range["frame_count"][1]["default"] == 0
    v = m["DittoRenderVideo"].INPUT_TYPES()
    assert m["DittoRenderVideo"].RETURN_TYPES == ("VIDEO",) and v["optional"]["audio"][0] == "AUDIO"
    assert v["required"]["quality"][1]["default"] == 18  # the command line's CRF
    assert {k: v["required"][k] for k in ("models", "source", "motion", "output", "batch_size")} == r


def test_edit_defaults_are_the_identity(pack):
    from ditto_core.edits import EditOptions

    spec = pack.NODE_CLASS_MAPPINGS["DittoEditMotion"].INPUT_TYPES()
    defaults = {k: v[1]["default"] for sec in ("required", "optional") for k, v in spec[sec].items() if is_widget(v)}
    names = {"start_frame": "start", "end_frame": "end"}
    opts = EditOptions(**{names.get(k, k): v for k, v in defaults.items()})
    assert opts.is_identity()


def test_model_folder_is_registered_and_listed(pack, stubs):
    fp = stubs.folder_paths
    assert fp.get_folder_paths("ditto")[0] == str(stubs.ditto_models_dir)
    (stubs.ditto_models_dir / "my-kit").mkdir(parents=True, exist_ok=True)
    combo = pack.NODE_CLASS_MAPPINGS["DittoLoadModels"].INPUT_TYPES()["required"]["models_folder"][0]
    assert combo[0] == "ditto-talkinghead" and "my-kit" in combo


def test_extra_model_paths_are_kept(tmp_path):
    stubs = install_stubs(tmp_path)
    try:
        extra = str(tmp_path / "elsewhere" / "ditto")
        stubs.folder_paths.add_model_folder_path("ditto", extra)  # extra_model_paths.yaml loads before custom nodes
        load_pack("Ditto-extra-paths")
        assert stubs.folder_paths.get_folder_paths("ditto") == [str(stubs.ditto_models_dir), extra]
    finally:
        unload_pack("Ditto-extra-paths")
        stubs.uninstall()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs/path", "C:\\x", "sub\\dir"])
def test_models_folder_names_stay_inside_the_models_folder(loaded, name):
    from importlib import import_module

    loaders = import_module("ComfyUI-Ditto.nodes.loaders")
    with pytest.raises(ValueError, match="models_folder"):
        loaders.resolve_models_dir(name)


def test_models_folder_resolves_to_a_child(loaded):
    from importlib import import_module

    _, stubs = loaded
    loaders = import_module("ComfyUI-Ditto.nodes.loaders")
    assert loaders.resolve_models_dir("ditto-talkinghead") == stubs.ditto_models_dir / "ditto-talkinghead"


def test_import_never_downloads_or_loads(tmp_path, monkeypatch):
    import huggingface_hub

    def boom(*a, **k):
        raise AssertionError("downloaded at import time")

    for name in ("snapshot_download", "hf_hub_download"):
        monkeypatch.setattr(huggingface_hub, name, boom)
    monkeypatch.delitem(sys.modules, "ditto_core.pipeline", raising=False)
    stubs = install_stubs(tmp_path)
    try:
        load_pack("Ditto-no-download")
        assert not any(stubs.ditto_models_dir.rglob("*")), "import created files in models/ditto"
        assert "ditto_core.pipeline" not in sys.modules, "importing the pack imported the model pipeline"
    finally:
        unload_pack("Ditto-no-download")
        stubs.uninstall()


def test_missing_required_package_is_one_clear_line(tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setitem(sys.modules, "soxr", None)  # import soxr now fails
    stubs = install_stubs(tmp_path)
    try:
        with caplog.at_level(logging.DEBUG):
            mod = load_pack("Ditto-missing-required")
    finally:
        unload_pack("Ditto-missing-required")
        stubs.uninstall()
    assert mod.NODE_CLASS_MAPPINGS == {}
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "soxr" in errors[0].getMessage() and "\n" not in errors[0].getMessage()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err + caplog.text


def test_root_init_imports_as_a_plain_module(caplog, capfd):
    """pytest imports the checkout's ``__init__.py`` as the module ``__init__`` (no package) when the folder's name is
    not a Python name (``tmp.x1y2``, ``ComfyUI-Ditto``): that import must succeed and register nothing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("__init__", str(REPO_ROOT / "__init__.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with caplog.at_level(logging.DEBUG):
        spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS == {} and module.NODE_DISPLAY_NAME_MAPPINGS == {}
    assert module.WEB_DIRECTORY == "./web"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_missing_optional_packages_are_silent(tmp_path, monkeypatch, caplog, capfd):
    for name in ("huggingface_hub", "mediapipe", "tensorrt"):
        monkeypatch.setitem(sys.modules, name, None)
    stubs = install_stubs(tmp_path)
    try:
        with caplog.at_level(logging.DEBUG):
            mod = load_pack("Ditto-missing-optional")
            combo = mod.NODE_CLASS_MAPPINGS["DittoLoadModels"].INPUT_TYPES()["required"]["backend"][0]
    finally:
        unload_pack("Ditto-missing-optional")
        stubs.uninstall()
    assert set(mod.NODE_CLASS_MAPPINGS) == EXPECTED_NODES
    assert combo == ["pytorch"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_emotion_mix_parsing(loaded):
    from importlib import import_module

    sampler = import_module("ComfyUI-Ditto.nodes.sampler")
    assert sampler.parse_emotion_mix("Happy:0.7, neutral:0.3") == {"Happy": 0.7, "Neutral": 0.3}
    assert sampler.parse_emotion_mix("sad") == {"Sad": 1.0}
    for bad, msg in (("", "empty"), ("Joy:1", "unknown emotion"), ("Happy:x", "number"), ("Happy:-1", ">= 0"), ("Happy:0", "zero")):
        with pytest.raises(ValueError, match=msg):
            sampler.parse_emotion_mix(bad)


def test_motion_file_names_stay_inside_the_folders(loaded):
    from importlib import import_module

    _, stubs = loaded
    io = import_module("ComfyUI-Ditto.nodes.motion_io")
    assert io.resolve_motion_file("a/b.safetensors") == stubs.input_dir / "a" / "b.safetensors"
    assert io.resolve_motion_file("m.safetensors [output]") == stubs.output_dir / "m.safetensors"
    for bad in ("../x.safetensors", "/etc/x.safetensors", "x.txt"):
        with pytest.raises(ValueError):
            io.resolve_motion_file(bad)
    assert "does not exist" in io.DittoLoadMotion.VALIDATE_INPUTS("nope.safetensors")


def test_fresh_process_uses_the_bundled_ditto_core(tmp_path):
    """As in ComfyUI: the pack folder lives under custom_nodes/, ditto_core is not on sys.path beforehand."""
    import subprocess
    import textwrap

    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    (custom_nodes / "ComfyUI-Ditto").symlink_to(REPO_ROOT, target_is_directory=True)
    code = textwrap.dedent(
        f"""
        import sys, pathlib
        sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
        sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path({str(REPO_ROOT)!r})]
        import comfy_stubs
        assert "ditto_core" not in sys.modules
        comfy_stubs.install_stubs(pathlib.Path({str(tmp_path / "base")!r}))
        mod = comfy_stubs.load_pack("ComfyUI-Ditto", pathlib.Path({str(custom_nodes / "ComfyUI-Ditto")!r}))
        import ditto_core.edits
        print(len(mod.NODE_CLASS_MAPPINGS), ditto_core.__file__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    count, where = out.stdout.split()
    assert int(count) == len(EXPECTED_NODES)
    assert where.startswith(str(custom_nodes / "ComfyUI-Ditto" / "ditto_core"))
    assert "Traceback" not in out.stderr


def test_web_directory_is_declared_once():
    """ComfyUI serves WEB_DIRECTORY and also a ``[tool.comfy] web`` folder from pyproject.toml: declaring both
    loads the extension twice (the second registration fails in the frontend)."""
    import tomllib

    comfy = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
    assert "web" not in comfy
    assert {"PublisherId", "DisplayName", "Icon"} <= set(comfy)


def test_loading_the_pack_puts_the_sample_inputs_into_the_input_folder(tmp_path, monkeypatch, caplog):
    """The templates' sample inputs appear in ComfyUI's input folder (top level, where Load Image / Audio / Video
    list files), byte for byte; a file the user already has under that name is never replaced; the opt-out and an
    unwritable folder leave nothing half-copied and raise nothing."""
    stubs = install_stubs(tmp_path / "a")
    mine = stubs.input_dir / "ditto_speech.wav"
    mine.write_bytes(b"the user's own file")
    try:
        pack = load_pack()
        examples = sys.modules[f"{pack.__name__}.nodes.examples"]
        for name in examples.EXAMPLE_INPUTS:
            if name != mine.name:
                assert (stubs.input_dir / name).read_bytes() == (examples.EXAMPLE_INPUTS_DIR / name).read_bytes()
        assert mine.read_bytes() == b"the user's own file"
        assert examples.install_example_inputs(stubs.input_dir) == []  # the second load copies nothing

        empty = tmp_path / "b"
        monkeypatch.setenv(examples.OPT_OUT_ENV, "1")
        assert examples.install_example_inputs(empty) == [] and not empty.exists()
        monkeypatch.delenv(examples.OPT_OUT_ENV)
        def disk_full(src, dst):
            with open(dst, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")

        full = tmp_path / "full"
        monkeypatch.setattr(examples.shutil, "copyfile", disk_full)
        assert examples.install_example_inputs(full) == []
        assert list(full.iterdir()) == []  # no partial file, under any name
        assert "could not put the sample input ditto_portrait.jpg" in caplog.text and "No space left" in caplog.text
    finally:
        unload_pack()
        stubs.uninstall()
