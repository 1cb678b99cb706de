"""The models folder and the hub download (huggingface_hub is mocked: no test touches the network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest

from ditto_core import layout
from ditto_core.__main__ import main
from ditto_core.hub import HUB_REPO_ID, MissingModelsError, default_roles, ensure_models, missing_files

REQUIRED = [f for f in layout.ALL_FILES if f.required]


class FakeHub:
    """Stands in for ``hf_hub_download``: records the calls and writes the file where the library would."""

    def __init__(self, fail_on: str | None = None, write: bool = True):
        self.calls: list[dict] = []
        self.fail_on = fail_on
        self.write = write

    def __call__(self, repo_id, filename, *, local_dir=None, **kwargs):
        self.calls.append({"repo_id": repo_id, "filename": filename, "local_dir": local_dir, **kwargs})
        if filename == self.fail_on:
            raise ConnectionError("could not reach huggingface.co")
        path = Path(local_dir) / filename
        if self.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"downloaded")
        return str(path)


@pytest.fixture
def fake_hub(monkeypatch):
    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return fake


def _put(root: Path, rel: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_default_roles_are_the_required_files():
    assert default_roles() == tuple(f.role for f in REQUIRED)
    assert "config" in default_roles() and "lmdm" in default_roles()  # the official inference always passes the config


def test_offline_lists_exactly_the_missing_files(tmp_path, fake_hub):
    _put(tmp_path, "ditto_pytorch/models/decoder.pth")
    _put(tmp_path, "warp_network.safetensors")  # flat, converted
    _put(tmp_path, "ditto_onnx/insightface_det.onnx")  # the ditto_onnx variant of the detector
    with pytest.raises(MissingModelsError) as e:
        ensure_models(tmp_path, download=False)
    err = e.value
    present = {"decoder", "warp_network", "face_detector"}
    assert [f.role for f in err.missing] == [f.role for f in REQUIRED if f.role not in present]
    msg = str(err)
    for f in REQUIRED:
        if f.role in present:
            assert str(tmp_path / f.release_path) not in msg
        else:
            assert str(tmp_path / f.release_path) in msg
    assert f"python -m ditto_core download {tmp_path}" in msg
    assert f"hf download {HUB_REPO_ID} " in msg
    assert fake_hub.calls == []
    assert [f.role for f in missing_files(tmp_path)] == [f.role for f in err.missing]


def test_downloads_only_missing_files(tmp_path, fake_hub):
    have = _put(tmp_path, "ditto_pytorch/models/decoder.pth")
    roles = ["decoder", "lmdm", "stitch_network", "hubert", "blaze_face"]
    found = ensure_models(tmp_path, roles=roles, progress=False)
    assert [c["filename"] for c in fake_hub.calls] == [
        "ditto_pytorch/models/lmdm_v0.4_hubert.pth",
        "ditto_pytorch/models/stitch_network.pth",
        "ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx",
        "ditto_onnx/blaze_face.onnx",
    ]
    assert all(c["repo_id"] == "digital-avatar/ditto-talkinghead" == HUB_REPO_ID for c in fake_hub.calls)
    assert all(Path(c["local_dir"]) == tmp_path for c in fake_hub.calls)
    assert found["decoder"] == have
    assert found["lmdm"] == tmp_path / "ditto_pytorch/models/lmdm_v0.4_hubert.pth"
    assert list(found) == roles
    # a second call finds everything and downloads nothing
    fake_hub.calls.clear()
    assert ensure_models(tmp_path, roles=roles, progress=False) == found
    assert fake_hub.calls == []


def test_progress_lines(tmp_path, fake_hub, capsys):
    ensure_models(tmp_path, roles=["lmdm"], progress=True)
    assert "downloading ditto_pytorch/models/lmdm_v0.4_hubert.pth (1/1)" in capsys.readouterr().err


def test_unreachable_hub_reports_what_is_still_missing(tmp_path, monkeypatch):
    fake = FakeHub(fail_on="ditto_pytorch/models/stitch_network.pth")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    with pytest.raises(MissingModelsError) as e:
        ensure_models(tmp_path, roles=["lmdm", "stitch_network", "decoder"], progress=False)
    assert [f.role for f in e.value.missing] == ["stitch_network", "decoder"]
    assert "ConnectionError" in str(e.value) and "stitch_network.pth failed" in str(e.value)
    assert [c["filename"] for c in fake.calls] == [
        "ditto_pytorch/models/lmdm_v0.4_hubert.pth",
        "ditto_pytorch/models/stitch_network.pth",
    ]


def test_download_that_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", FakeHub(write=False))
    with pytest.raises(MissingModelsError, match="did not produce"):
        ensure_models(tmp_path, roles=["decoder"], progress=False)


def test_synthetic_kit_is_never_completed_from_the_hub(tmp_path, fake_hub):
    (tmp_path / layout.SYNTHETIC_MARKER).write_text("random weights")
    with pytest.raises(MissingModelsError, match="synthetic"):
        ensure_models(tmp_path, roles=["decoder"])
    assert fake_hub.calls == []


def test_unknown_role(tmp_path):
    with pytest.raises(ValueError, match="unknown model roles"):
        ensure_models(tmp_path, roles=["vae"], download=False)


def test_cli_download(tmp_path, fake_hub, capsys):
    assert main(["download", tmp_path, "--role", "decoder", "-q"]) == 0
    assert [c["filename"] for c in fake_hub.calls] == ["ditto_pytorch/models/decoder.pth"]


def test_cli_download_failure_exit_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", FakeHub(fail_on="ditto_pytorch/models/decoder.pth"))
    assert main(["download", tmp_path, "--role", "decoder", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ditto: error: 1 Ditto model file missing") and "Traceback" not in err


def test_import_does_not_touch_the_hub():
    code = "import sys, ditto_core.hub, ditto_core.checkpoints, ditto_core.config; print('huggingface_hub' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_progress_off_passes_a_disabled_bar(tmp_path, monkeypatch):
    seen = {}

    def fake(repo_id, filename, *, local_dir=None, tqdm_class=None):
        seen["bar"] = tqdm_class(total=10)
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    ensure_models(tmp_path, roles=["decoder"], progress=False)
    assert seen["bar"].disable is True
    seen["bar"].close()
