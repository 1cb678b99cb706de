"""Registry readiness: the ``[tool.comfy]`` table, the icon, what the published node archive holds, and the mode of
the files the pack saves. Fast, no network, no comfy-cli needed.

The archive rule is comfy-cli's (``comfy_cli.file_utils.zip_files``, used by ``comfy node pack`` and
``comfy node publish``): the files ``git ls-files`` lists, less those matching a gitignore-style pattern in
``.comfyignore``, plus whatever ``[tool.comfy] includes`` names (those are added even if ignored). ``.comfyignore``
is kept to anchored literal patterns so that the rule is reimplemented exactly here; where comfy-cli is installed,
:func:`test_archive_matches_comfy_cli` checks the reimplementation against the real ``zip_files``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from comfy_stubs import PACK_NAME, REPO_ROOT, stubbed_pack

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

SVG_NS = "{http://www.w3.org/2000/svg}"
#: what ComfyUI needs to run the pack, besides everything tracked under RUNTIME_DIRS
RUNTIME_FILES = {"__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md"}
RUNTIME_DIRS = ("nodes", "ditto_core", "web", "workflows", "example_inputs")
#: never shipped: tests (and their 50 MB of golden data), benchmarks, CI, screenshots
NOT_SHIPPED = ("tests", "benchmarks", ".benchmarks", ".ci", ".github", "docs", "tools")
EXPECTED_NODE_COUNT = 13


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _comfy() -> dict:
    return _pyproject()["tool"]["comfy"]


def _icon_path() -> Path:
    """The repository file that ``[tool.comfy] Icon`` shows: a path, or this repository's raw GitHub URL of one."""
    icon = _comfy()["Icon"]
    url = urlparse(icon)
    if not url.scheme:
        return REPO_ROOT / icon
    assert url.scheme == "https" and url.netloc == "raw.githubusercontent.com", f"Icon: unexpected URL {icon}"
    repo = urlparse(_pyproject()["project"]["urls"]["Repository"]).path.strip("/")
    owner_name, _, rest = url.path.lstrip("/").partition("/")
    name, _, rest = rest.partition("/")
    assert f"{owner_name}/{name}".lower() == repo.lower(), f"Icon {icon} is not a file of {repo}"
    _ref, _, rel = rest.partition("/")
    assert rel, f"Icon {icon}: no file path after the branch"
    return REPO_ROOT / rel


# ------------------------------------------------------------------------------------------ the archive rule
def _git_files() -> list[str]:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the archive is built from `git ls-files`")
    out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True)
    return [f for f in out.stdout.decode("utf-8").split("\0") if f]


def _ignore_patterns() -> list[str]:
    """``.comfyignore`` as comfy-cli reads it (stripped lines, ``#`` lines skipped); each must be anchored+literal."""
    path = REPO_ROOT / ".comfyignore"
    if not path.is_file():
        return []
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    for p in patterns:
        assert p.startswith("/") and not re.search(r"[*?\[\]!\\]", p) and p.strip("/"), (
            f".comfyignore: {p!r} is not an anchored literal pattern; keep it one or teach tests/test_registry.py "
            "the gitignore rule it needs"
        )
    return patterns


def _ignored(rel: str, patterns: list[str]) -> bool:
    """gitignore matching for anchored literal patterns: ``/x/`` is the folder x, ``/x`` the file or folder x."""
    for p in patterns:
        name = p.strip("/")
        if rel.startswith(name + "/") or (rel == name and not p.endswith("/")):
            return True
    return False


def archive_files() -> set[str]:
    """The paths (POSIX, relative) that ``comfy node pack`` / ``publish`` put into the node archive."""
    patterns = _ignore_patterns()
    includes = [os.path.normpath(i.lstrip("/")).replace("\\", "/") for i in _comfy().get("includes", [])]

    def forced(rel: str) -> bool:
        return any(rel == i or rel.startswith(i + "/") for i in includes)

    files = {f for f in _git_files() if (REPO_ROOT / f).exists() and (forced(f) or not _ignored(f, patterns))}
    for inc in includes:  # added from the disk, tracked or not
        root = REPO_ROOT / inc
        found = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        files.update(p.relative_to(REPO_ROOT).as_posix() for p in found)
    return files


# ------------------------------------------------------------------------------------------------ the tests
def test_tool_comfy_has_the_registry_fields():
    comfy = _comfy()
    for key in ("PublisherId", "DisplayName", "Icon"):
        assert isinstance(comfy.get(key), str) and comfy[key].strip(), f"[tool.comfy] {key} is missing or empty"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"]), comfy["PublisherId"]
    assert _pyproject()["project"]["version"], "comfy node validate refuses an empty project.version"


def test_icon_is_a_plain_square_svg():
    path = _icon_path()
    assert path.is_file(), f"[tool.comfy] Icon names {path.relative_to(REPO_ROOT)}, which does not exist"
    assert path.suffix == ".svg" and path.stat().st_size < 16_384
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    view_box = [float(v) for v in root.get("viewBox", "").replace(",", " ").split()]
    assert len(view_box) == 4 and view_box[2] == view_box[3] > 0, f"viewBox {root.get('viewBox')!r} is not square"
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "image", "use"), f"icon: <{tag}> is not allowed"
        for attr, value in el.attrib.items():
            local = attr.rsplit("}", 1)[-1]
            assert not local.lower().startswith("on"), f"icon: event handler {local} on <{tag}>"
            assert local != "href" or value.startswith("#"), f"icon: external reference {value!r}"
            for ref in re.findall(r"url\(([^)]*)\)", value):
                assert ref.strip("'\" ").startswith("#"), f"icon: external url({ref}) on <{tag}>"
        if tag == "style":
            assert "@import" not in (el.text or "") and "url(" not in (el.text or "")


def test_archive_holds_what_the_pack_runs_and_nothing_else():
    files = archive_files()
    tracked = [f for f in _git_files() if (REPO_ROOT / f).exists()]
    missing = RUNTIME_FILES - files
    missing |= {f for f in tracked if f.split("/", 1)[0] in RUNTIME_DIRS and f not in files}
    assert not missing, f"run-time files left out of the archive: {sorted(missing)}"
    assert _icon_path().relative_to(REPO_ROOT).as_posix() in files
    shipped = sorted(f for f in files if f.split("/", 1)[0] in NOT_SHIPPED)
    assert not shipped, f"the archive would carry {shipped[:10]}"
    tops = {f.split("/", 1)[0] for f in files}
    unexpected = tops - RUNTIME_FILES - set(RUNTIME_DIRS)
    assert not unexpected, (
        f"the archive would also carry {sorted(unexpected)}: list them in .comfyignore, or here if ComfyUI needs them"
    )


def test_ignore_rule_matches_gitignore_semantics():
    pats = ["/tests/", "/pytest.ini"]
    assert _ignored("tests/golden/a.safetensors", pats) and _ignored("pytest.ini", pats)
    assert not _ignored("tests", pats)  # "/tests/" matches the folder only, never a file called tests
    assert not _ignored("ditto_core/tests/x.py", pats) and not _ignored("pytest.ini.bak", pats)
    assert not _ignored("testsuite/x.py", pats)


def test_archive_loads_as_a_pack(tmp_path):
    """The archive's files alone, unpacked under custom_nodes/ as ComfyUI-Manager does, load all the nodes in a fresh
    process with the bundled ditto_core (nothing the pack imports was left out)."""
    pack_dir = tmp_path / "custom_nodes" / PACK_NAME
    for rel in archive_files():
        dst = pack_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, dst)
    code = textwrap.dedent(
        f"""
        import sys, pathlib
        sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
        sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path({str(REPO_ROOT)!r})]
        import comfy_stubs
        comfy_stubs.install_stubs(pathlib.Path({str(tmp_path / "base")!r}))
        mod = comfy_stubs.load_pack({PACK_NAME!r}, pathlib.Path({str(pack_dir)!r}))
        import ditto_core
        print(len(mod.NODE_CLASS_MAPPINGS), ditto_core.__file__, mod.WEB_DIRECTORY)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    count, where, web = out.stdout.split()
    assert int(count) == EXPECTED_NODE_COUNT, out.stderr
    assert Path(where).is_relative_to(pack_dir / "ditto_core")
    assert any((pack_dir / web).glob("*.js"))


def test_archive_matches_comfy_cli(tmp_path, monkeypatch):
    """Only where comfy-cli is installed: its own zip_files (what ``comfy node pack`` runs) gives the same files."""
    file_utils = pytest.importorskip("comfy_cli.file_utils")
    expected = archive_files()
    monkeypatch.chdir(REPO_ROOT)
    zip_path = tmp_path / "node.zip"
    file_utils.zip_files(str(zip_path), includes=_comfy().get("includes", []))
    with zipfile.ZipFile(zip_path) as z:
        names = {n for n in z.namelist() if not n.endswith("/")}
    assert names == expected


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)], ids=["umask022", "umask002"])
def test_saved_motion_has_ordinary_permissions(tmp_path, umask, mode):
    """Save Motion writes a file other users and tools can read, as any new file (0666 less the umask), not the 0600
    of a private temporary file."""
    import torch

    old = os.umask(umask)
    try:
        gen = stubbed_pack(tmp_path)
        pack, stubs = next(gen)
        try:
            from ditto_core.motion import Motion

            out = pack.NODE_CLASS_MAPPINGS["DittoSaveMotion"]().save(Motion(torch.zeros(3, 265)), "ditto/perf")
            saved = out["ui"]["ditto_motion"][0]["saved"]
            path = stubs.output_dir / saved["subfolder"] / saved["filename"]
            assert path.is_file()
            assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(mode)
            assert not [p.name for p in path.parent.iterdir() if p != path], "a temporary file was left behind"
        finally:
            gen.close()
    finally:
        os.umask(old)
