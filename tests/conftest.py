"""Shared test helpers: the golden folder, golden file loading, relative L2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


def golden_dir() -> Path:
    """The golden set under test: ``$DITTO_GOLDEN_DIR`` or the copy in ``tests/golden``."""
    return Path(os.environ.get("DITTO_GOLDEN_DIR", TESTS_DIR / "golden")).resolve()


class Golden(dict):
    """A golden file's tensors (torch) plus ``meta`` (its safetensors metadata) and ``salt``."""

    meta: dict[str, str]
    path: Path

    @property
    def salt(self) -> str:
        return self.meta["salt"]


def load_golden(name: str) -> Golden:
    path = golden_dir() / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"golden file {path} not present")
    out = Golden()
    with safe_open(str(path), framework="pt") as f:
        out.meta = dict(f.metadata() or {})
        for k in f.keys():
            out[k] = f.get_tensor(k)
    out.path = path
    return out


def rel_l2(out, ref) -> float:
    """``||out - ref|| / ||ref||`` in float64 (torch tensors or numpy arrays)."""
    a = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out).double()
    b = torch.as_tensor(np.asarray(ref) if not isinstance(ref, torch.Tensor) else ref).double()
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != reference {tuple(b.shape)}"
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def assert_close_rel(out, ref, tol: float, what: str = "") -> None:
    err = rel_l2(out, ref)
    assert err <= tol, f"{what}: relative L2 {err:.3e} > {tol:.0e}"


def assert_images_close(out_u8, ref_u8, max_diff: int = 1, frac: float = 0.999, what: str = "") -> None:
    """Images equal to ``max_diff`` grey levels on at least ``frac`` of the values."""
    a = np.asarray(out_u8).astype(np.int32)
    b = np.asarray(ref_u8).astype(np.int32)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != reference {b.shape}"
    ok = (np.abs(a - b) <= max_diff).mean()
    assert ok >= frac, f"{what}: only {ok:.5f} of values within {max_diff} grey levels (need {frac})"


@pytest.fixture
def golden():
    """``golden(name)`` loads ``<golden dir>/<name>.safetensors``."""
    return load_golden
