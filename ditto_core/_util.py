"""Small things every stage shares: callback types, the cancel convention, ping-pong indexing, the moving average,
filling ``None`` options from defaults.

Callbacks. Long stages take ``progress(done, total)`` and ``cancel()``. ``cancel`` is called between units of work
(frames, windows, batches) and **raises** to stop (ComfyUI's interrupt, a server's disconnect, Ctrl-C); its exception
reaches the caller unchanged. Nothing in the library polls a boolean.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from .devices import host_float64

__all__ = [
    "CancelFn",
    "ProgressFn",
    "StageProgressFn",
    "check_cancel",
    "fill_defaults",
    "mirror_index",
    "moving_average",
    "set_ordinary_mode",
    "write_atomically",
]

#: ``progress(done, total)`` after each unit of work
ProgressFn = Callable[[int, int], None]
#: ``cancel()`` between units of work; raises to stop
CancelFn = Callable[[], None]
#: a stage-aware progress callback: ``progress(stage, done, total)``
StageProgressFn = Callable[[str, int, int], None]

T = TypeVar("T")


def check_cancel(cancel: CancelFn | None) -> None:
    """Give ``cancel`` its chance to raise (no-op for None)."""
    if cancel is not None:
        cancel()


def mirror_index(index: int, size: int) -> int:
    """Ping-pong index into ``size`` items: 0..size-1, then size-1..0, and so on (official ``_mirror_index``)."""
    turn, res = divmod(int(index), int(size))
    return res if turn % 2 == 0 else size - res - 1


def moving_average(x: torch.Tensor, width: int, start: int = 0, end: int | None = None) -> torch.Tensor:
    """Centred moving average over dim 0 of ``x`` ``(N, ...)``, for rows ``[start, end)``; a new tensor.

    Row ``i`` becomes the mean of rows ``[max(0, i - width // 2), min(N, i + width // 2 + 1))``: the window is
    truncated (not padded) at the ends, every output reads the unsmoothed input, and the sums run in float64 on the host (the
    result has ``x``'s dtype). Rows outside ``[start, end)`` are copied. ``width <= 1`` copies ``x``.
    """
    n = x.shape[0]
    end = n if end is None else int(end)
    out = x.clone()
    if width <= 1 or end <= start or n == 0:
        return out
    half = int(width) // 2
    with host_float64():  # float64 on the host: MPS and other devices have none
        src = x.detach().to("cpu", torch.float64)
        csum = torch.cat([src.new_zeros(1, *src.shape[1:]), src.cumsum(0)])
        idx = torch.arange(start, end)
        lo = (idx - half).clamp(min=0)
        hi = (idx + half + 1).clamp(max=n)
        count = (hi - lo).to(src.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        mean = ((csum[hi] - csum[lo]) / count).to(x.dtype)
    out[start:end] = mean.to(x.device)
    return out


def fill_defaults(options: T, defaults: Any) -> T:
    """``options`` (a dataclass) with every ``None`` field taken from the same-named attribute of ``defaults``."""
    missing = {
        f.name: getattr(defaults, f.name)
        for f in dataclasses.fields(options)  # type: ignore[arg-type]
        if getattr(options, f.name) is None and hasattr(defaults, f.name)
    }
    return dataclasses.replace(options, **missing) if missing else options  # type: ignore[type-var]


def _umask() -> int:
    """The process umask: read from ``/proc/self/status`` where there is one (Linux; nothing is changed), else by
    setting it and putting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def set_ordinary_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``tempfile.mkstemp`` or safetensors (mode 0600) the mode an ordinary new file gets (0666
    less the umask, 0644 under the usual umask 022), before it is renamed to its final name."""
    os.chmod(path, 0o666 & ~_umask())


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` on a hidden temporary file beside ``path``, then the file gets ordinary permissions and is renamed
    onto ``path``; returns ``path``. On any exception or signal the temporary file is removed and ``path`` is left as
    it was (an existing file there is kept). The folder is made when missing."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        set_ordinary_mode(tmp)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
