"""The models folder: find the official files, download only the missing ones from the hub.

Nothing is downloaded at import. :func:`ensure_models` fetches missing files one by one with
``huggingface_hub.hf_hub_download(repo_id=HUB_REPO_ID, filename=<release path>,
local_dir=models_dir)`` (resumable; tqdm progress), so the folder mirrors the release
layout. Offline, or when the hub cannot be reached, :class:`MissingModelsError` lists
exactly which files are missing, where to put them and the command that downloads them.
"""

from __future__ import annotations

import inspect
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from . import layout
from .checkpoints import find_model_file
from .layout import HUB_REPO_ID, ReleaseFile
from .errors import DittoError

__all__ = [
    "MissingModelsError",
    "HUB_REPO_ID",
    "default_roles",
    "missing_files",
    "download_command",
    "ensure_models",
]


class MissingModelsError(DittoError):
    """Some model files are not in the models folder and could not be downloaded.

    ``missing`` holds the :class:`~ditto_core.layout.ReleaseFile` entries, ``models_dir`` the folder.
    """

    def __init__(self, models_dir: str | os.PathLike[str], missing: Sequence[ReleaseFile], cause: str = ""):
        self.models_dir = Path(models_dir)
        self.missing = tuple(missing)
        self.cause = cause
        super().__init__(self._message())

    def _message(self) -> str:
        d = self.models_dir
        n = len(self.missing)
        lines = [f"{n} Ditto model file{'s' if n != 1 else ''} missing in {d}" + (f" ({self.cause})" if self.cause else "") + ":"]
        for f in self.missing:
            lines.append(f"  {f.filename} ({f.role}) -> put it at {d / f.release_path}")
        lines.append("Download them with:")
        lines.append(f"  python -m ditto_core download {shlex.quote(str(d))}")
        lines.append(f"  or: {download_command(d, self.missing)}")
        return "\n".join(lines)


def default_roles() -> tuple[str, ...]:
    """The roles of every required release file (renderer, DiT, aux models)."""
    return tuple(f.role for f in layout.ALL_FILES if f.required)


def _release_files(roles: Iterable[str] | None) -> list[ReleaseFile]:
    names = default_roles() if roles is None else tuple(roles)
    unknown = [r for r in names if r not in layout.BY_ROLE]
    if unknown:
        raise ValueError(f"unknown model roles {unknown}; expected some of {sorted(layout.BY_ROLE)}")
    return [layout.BY_ROLE[r] for r in dict.fromkeys(names)]


def missing_files(models_dir: str | os.PathLike[str], roles: Iterable[str] | None = None) -> list[ReleaseFile]:
    """The release files of ``roles`` (default: all required) that :func:`find_model_file` cannot find."""
    return [f for f in _release_files(roles) if find_model_file(models_dir, f.role) is None]


def download_command(models_dir: str | os.PathLike[str], files: Sequence[ReleaseFile]) -> str:
    """A shell command (huggingface_hub's ``hf`` CLI) that downloads ``files`` into ``models_dir``."""
    paths = " ".join(shlex.quote(f.release_path) for f in files)
    return f"hf download {HUB_REPO_ID} {paths} --local-dir {shlex.quote(str(models_dir))}"


def _download_one(models_dir: Path, f: ReleaseFile, progress: bool) -> None:
    import huggingface_hub  # imported here: never at import of ditto_core

    fn: Callable[..., object] = huggingface_hub.hf_hub_download
    kwargs: dict[str, object] = {}
    if not progress:
        try:
            accepts_tqdm = "tqdm_class" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            accepts_tqdm = False
        if accepts_tqdm:
            from tqdm.auto import tqdm

            class _Silent(tqdm):  # type: ignore[misc, valid-type]
                def __init__(self, *a: object, **k: object) -> None:
                    k["disable"] = True
                    super().__init__(*a, **k)

            kwargs["tqdm_class"] = _Silent
    fn(repo_id=HUB_REPO_ID, filename=f.release_path, local_dir=str(models_dir), **kwargs)


def ensure_models(
    models_dir: str | os.PathLike[str],
    roles: Iterable[str] | None = None,
    download: bool = True,
    progress: bool = True,
) -> dict[str, Path]:
    """The path of every file of ``roles`` (default: all required) under ``models_dir``.

    Missing files are downloaded from ``HUB_REPO_ID`` into ``models_dir/<release path>``
    when ``download`` (only those files; a folder holding the synthetic kit marker is never
    filled from the hub). Raises :class:`MissingModelsError` naming every file still
    missing when downloading is off or fails (no network, ``HF_HUB_OFFLINE``, ...).
    """
    root = Path(models_dir)
    files = _release_files(roles)
    missing = [f for f in files if find_model_file(root, f.role) is None]
    if missing:
        if not download:
            raise MissingModelsError(root, missing, "downloading is off")
        if (root / layout.SYNTHETIC_MARKER).exists():
            raise MissingModelsError(root, missing, "a synthetic model kit is never completed from the hub")
        for i, f in enumerate(missing):
            if progress:
                print(f"[ditto] downloading {f.release_path} ({i + 1}/{len(missing)}) into {root}", file=sys.stderr)
            try:
                root.mkdir(parents=True, exist_ok=True)
                _download_one(root, f, progress)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # offline, hub unreachable, HTTP error, disk full, ...
                still = [g for g in missing if find_model_file(root, g.role) is None]
                text = (str(e).strip().splitlines() or [""])[0][:200]
                raise MissingModelsError(
                    root, still, f"download of {f.release_path} failed: {type(e).__name__}{': ' + text if text else ''}"
                ) from None
        still = [f for f in missing if find_model_file(root, f.role) is None]
        if still:
            raise MissingModelsError(root, still, "the download did not produce these files")
    out: dict[str, Path] = {}
    for f in files:
        p = find_model_file(root, f.role)
        assert p is not None
        out[f.role] = p
    return out
