"""Helpers shared by the benchmark scripts: timing, memory, machine and version facts, table formatting.

Not part of ``ditto_core``: the scripts in this folder are run by hand (``python benchmarks/<script>.py``), never by CI.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def ensure_repo_on_path() -> None:
    """Make ``import ditto_core`` work when a script is run from a checkout (``python benchmarks/x.py``)."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


# ----------------------------------------------------------------------------------------------- timing


def synchronize(device: Any) -> None:
    """Wait for the device's queued work (CUDA/MPS); a no-op on the CPU."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def measure(
    fn: Callable[[], Any],
    device: Any = "cpu",
    repeats: int = 3,
    warmup: int = 1,
    cuda_events: bool = True,
) -> tuple[list[float], str]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed -> (milliseconds per run, timer name).

    On CUDA with ``cuda_events`` the runs are timed with CUDA events on the device's current stream (timer
    "cuda-events"; ``device`` may be any ``cuda:N``):
    right for stages whose work is queued on the GPU. Otherwise wall clock (``time.perf_counter``) with a device
    synchronize before and after each run (timer "wall").
    """
    import torch

    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup: expected >= 0, got {warmup}")
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(dev)
    out: list[float] = []
    if dev.type == "cuda" and cuda_events:
        stream = torch.cuda.current_stream(dev)  # the model's device, not the current one (cuda:1 on a 0 default)
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            with torch.cuda.device(dev):
                start.record(stream)
                fn()
                end.record(stream)
            end.synchronize()
            out.append(float(start.elapsed_time(end)))
        return out, "cuda-events"
    for _ in range(repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        fn()
        synchronize(dev)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out, "wall"


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def spread_pct(values: Sequence[float]) -> float | None:
    """(max - min) / median in percent: how much the repeats disagree (None below two repeats). A large spread on a
    shared machine means other processes took the CPU during the measurement."""
    if len(values) < 2:
        return None
    m = median(values)
    return None if m <= 0 else (max(values) - min(values)) / m * 100.0


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# ----------------------------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mib() -> float | None:
    """Resident set size now (MiB): /proc (Linux), else psutil when installed, else None."""
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib / 1024.0
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process (MiB): /proc's VmHWM (Linux; :func:`reset_peak_rss` restarts it), else
    ``resource.getrusage`` ru_maxrss (KiB on Linux, bytes on macOS), else psutil's ``peak_wset`` (Windows), else None.
    Covers every allocator (torch, numpy, onnxruntime). VmHWM first on Linux: it is the value
    ``/proc/self/clear_refs`` resets, read where the reset writes it."""
    kib = _proc_status_kib("VmHWM")
    if kib is not None:
        return kib / 1024.0
    try:
        import resource
    except ImportError:
        resource = None
    if resource is not None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024.0
    try:
        import psutil
    except ImportError:
        return None
    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
    return None if peak is None else peak / 2**20


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS to the current RSS (Linux ``/proc/self/clear_refs`` 5); False when unsupported.

    After a reset, :func:`peak_rss_mib` reports the peak since the reset, so a measurement is not masked by an
    earlier transient (loading the checkpoints)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def cpu_flags(wanted: Sequence[str] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")) -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def machine_info(device: Any = None) -> dict[str, Any]:
    """CPU model, cores, RAM, load average, platform and (when ``device`` is CUDA) the GPU."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "ram_gib": None if total_ram_gib() is None else round(total_ram_gib(), 1),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "load_average": None,
        "gpu": None,
    }
    info["load_average"] = load_average()
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "capability": f"{props.major}.{props.minor}"}
    return info


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - an optional package that fails to import is just absent
        return None
    return str(getattr(mod, "__version__", "?"))


def git_commit() -> str | None:
    """The checkout's commit (short) with ``+dirty`` when tracked files are modified; None outside git."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def versions() -> dict[str, Any]:
    """Python, torch (and its CUDA), numpy, onnxruntime, OpenCV, PyAV and the project's commit."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "opencv": _version("cv2"),
        "av": _version("av"),
        "ditto_commit": git_commit(),
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def describe_environment(machine: dict[str, Any], vers: dict[str, Any], load_end: Sequence[float] | None = None) -> str:
    """Three or four lines: machine, (GPU), versions, load average at the start (and at the end)."""
    ram = "?" if machine.get("ram_gib") is None else f"{machine['ram_gib']} GiB"
    flags = ",".join(machine.get("cpu_flags") or []) or "-"
    lines = [
        (f"machine: {machine.get('cpu')} | {machine.get('cores')} cores ({flags}) | RAM {ram} | "
         f"torch threads {machine.get('torch_threads')}"),
    ]
    gpu = machine.get("gpu")
    if gpu:
        lines.append(f"gpu: {gpu['name']} ({gpu['memory_gib']} GiB, sm {gpu['capability']})")
    lines.append(
        "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v is not None)
    )
    load = machine.get("load_average")
    if load:
        end = "" if not load_end else f"; at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
        lines.append(f"load average (1, 5, 15 min) at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{end}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ table


def fmt_num(value: float | None, digits: int = 1) -> str:
    """A number for a table cell: '-' for None, thousands kept readable."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.{digits}f}"
    return f"{value:.{max(digits, 2)}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2e}"


def fmt_count(value: float | None) -> str:
    """A count for a table cell: '-' for None, no decimals when whole."""
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def fmt_spread(values: Sequence[float]) -> str:
    s = spread_pct(values)
    return "-" if s is None else f"{s:.0f}%"


def report(text: str, result: dict[str, Any], json_path: str | os.PathLike[str] | None) -> None:
    """Print a script's table ``text``; with ``json_path`` also write ``result`` there as indented JSON."""
    import json

    print(text)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table with aligned columns (paste it into RESULTS.md as is)."""
    cols = len(headers)
    for r in rows:
        if len(r) != cols:
            raise ValueError(f"table row has {len(r)} cells, expected {cols}: {r!r}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])
