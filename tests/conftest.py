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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n 2`` in pytest.ini) each worker gets its share of the cores for torch's intra-op threads,
    and so do the processes the tests start (``OMP_NUM_THREADS``): two workers each spinning OpenMP threads on every
    core would oversubscribe the CPU."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and os.environ.get("PYTEST_XDIST_WORKER"):
        share = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


def golden_dir() -> Path:
    """The golden set under test: ``$DITTO_GOLDEN_DIR`` or the copy in ``tests/golden``."""
    return Path(os.environ.get("DITTO_GOLDEN_DIR", TESTS_DIR / "golden")).resolve()


def golden_dir_given() -> bool:
    """True when ``$DITTO_GOLDEN_DIR`` names the golden set (then every file of it must be there)."""
    return "DITTO_GOLDEN_DIR" in os.environ


def golden_missing(what: str) -> None:
    """A golden file is missing: fail when ``$DITTO_GOLDEN_DIR`` is set (a set someone pointed the tests at must be
    complete, and a skip would hide that it checked nothing); skip for the in-repo set (``tests/golden``, complete as
    committed: ``test_golden_set.py`` checks that)."""
    if golden_dir_given():
        pytest.fail(f"{what} not present (DITTO_GOLDEN_DIR={os.environ['DITTO_GOLDEN_DIR']!r}: a golden set must "
                    f"hold every file the golden tests read)", pytrace=False)
    pytest.skip(f"{what} not present")


def golden_file(filename: str) -> Path:
    """``<golden dir>/<filename>`` (an ONNX stand-in, a data file); missing: see :func:`golden_missing`."""
    path = golden_dir() / filename
    if not path.is_file():
        golden_missing(f"golden file {path}")
    return path


class Golden(dict):
    """A golden file's tensors (torch) plus ``meta`` (its safetensors metadata) and ``salt``."""

    meta: dict[str, str]
    path: Path

    @property
    def salt(self) -> str:
        return self.meta["salt"]


def load_golden(name: str) -> Golden:
    path = golden_file(f"{name}.safetensors")
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


def native_bf16_cpu() -> bool:
    """True when this CPU has bf16 instructions (x86 avx512_bf16 / AMX, Arm bf16). Without them PyTorch emulates
    bf16 on the CPU, and one 512x512 frame in bf16 takes tens of minutes instead of seconds."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (restored afterwards): the DiT is made of small matmuls, which one OpenMP
    thread runs faster than two on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def golden():
    """``golden(name)`` loads ``<golden dir>/<name>.safetensors``."""
    return load_golden


#: the weight-rule salt of the test session's synthetic kit
KIT_SALT = "test-kit"


@pytest.fixture(scope="session")
def synthetic_kit(tmp_path_factory):
    """One synthetic model kit (official layout, random weights, ~700 MB) per test session; removed afterwards.

    ``$DITTO_TEST_KIT`` names a folder to build it in once and reuse across sessions (kept).
    """
    import shutil

    from ditto_core.layout import SYNTHETIC_MARKER
    from ditto_core.testing.kit import make_synthetic_kit

    env = os.environ.get("DITTO_TEST_KIT")
    if env:
        root = Path(env)
        if not (root / SYNTHETIC_MARKER).exists():
            make_synthetic_kit(root, salt=KIT_SALT)
        yield root
        return
    root = tmp_path_factory.mktemp("kit") / "ditto-talkinghead"
    make_synthetic_kit(root, salt=KIT_SALT)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_models(synthetic_kit):
    """The synthetic kit loaded through the real loader (DittoModels.load), on the CPU in fp32."""
    from ditto_core.runtime import DittoModels

    return DittoModels.load(synthetic_kit, device="cpu", precision="fp32", download=False, progress=False)


def run_bench_script(name: str, args: list, cwd: Path, timeout: float = 1200):
    """Run ``benchmarks/<name>.py`` with ``args`` as a user does (a fresh process in ``cwd``, its figures written with
    ``--json``), assert that it exits 0 -> ``(the completed process, the JSON it wrote)``."""
    import json
    import subprocess
    import sys

    out = Path(cwd) / f"{name}.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / f"{name}.py"), *map(str, args),
                           "--json", str(out)], check=False, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return proc, json.loads(out.read_text())


def load_bench_script(name: str):
    """Import a script of benchmarks/ (``"bench"``, ``"gpu_check"``, ...) as a module: they are run as scripts, not
    installed."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"ditto_benchmarks_{name}", REPO_ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows in ``text`` (header first; the |---| separator does not start with "| ")."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]


def is_pos(v) -> bool:
    """A finite float > 0."""
    import math

    return isinstance(v, float) and math.isfinite(v) and v > 0


def standin_renderer(models, batch_size: int = 4):
    """The benchmarks' shape-identical stand-in for warp + decode (a (b, 512, 512, 3) image that follows x_d), for
    tests whose subject is not the renderer: the real networks take seconds per 512x512 frame on a CPU."""
    import sys

    bench_dir = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    import bench

    return bench.StandinRenderer(models.device, batch_size)


def write_wav(path, seconds: float, sample_rate: int = 24000, channels: int = 1, freq: float = 220.0, amp: float = 0.3):
    """A 16-bit PCM wav of a sine tone; returns the path."""
    import wave

    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = amp * np.sin(2 * np.pi * freq * t)
    pcm = (np.repeat(x[:, None], channels, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def face_image(h: int = 320, w: int = 288) -> np.ndarray:
    """A smooth, non-black RGB test picture (the synthetic detector reports one face in its centre)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 60 * np.sin(xx / 17), 110 + 50 * np.cos(yy / 23), 140 + 40 * np.sin((xx + yy) / 31)], -1)
    return img.clip(1, 255).astype(np.uint8)


def write_vfr_video(path, frames: np.ndarray, pts_ms) -> Path:
    """An MPEG-4 video whose frames are stamped at ``pts_ms`` (milliseconds; a variable frame rate); returns the
    path. ``frames``: (N, H, W, 3) uint8 RGB."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as c:
        st = c.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        st.codec_context.time_base = Fraction(1, 1000)
        for img, t in zip(frames, pts_ms):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = int(t), Fraction(1, 1000)
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return Path(path)
