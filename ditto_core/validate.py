"""Checks of the values a caller sets, written once and used by every surface (library options, the command line,
the ComfyUI nodes, saved motion files, the config file).

Each check returns the value normalised (``int``/``float``/``bool``) or raises :class:`OptionError`. The error carries
the ``name`` it was given (``"SamplingOptions.seed"``); a surface that knows the input by another name (``--seed`` on
the command line, the ``seed`` widget on a node) renames it with :func:`renamed`, so the message always names what the
user typed::

    with renamed({"SamplingOptions.seed": "--seed"}):
        SamplingOptions(seed=-1)      # OptionError: --seed must be an integer in 0..18446744073709551615, got -1
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "OptionError",
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_output_path",
    "renamed",
]


class OptionError(InputError):
    """A setting of the wrong type or out of range. ``name``: the input as the caller knows it; ``expected``: what
    it must be; ``got``: the value given; ``reason``: a message of its own instead of "must be ..., got ..." (it
    follows ``"<name>: "``)."""

    def __init__(self, name: str, expected: str, got: Any, reason: str | None = None) -> None:
        self.name, self.expected, self.got, self.reason = name, expected, got, reason
        super().__init__(f"{name}: {reason}" if reason else f"{name} must be {expected}, got {got!r}")

    def renamed(self, name: str) -> "OptionError":
        """The same error under another name."""
        return OptionError(name, self.expected, self.got, self.reason)


def _span(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in {lo:g}..{hi:g}" if isinstance(lo, float) or isinstance(hi, float) else f" in {lo}..{hi}"
    if lo is not None:
        return f" >= {lo:g}" if isinstance(lo, float) else f" >= {lo}"
    if hi is not None:
        return f" <= {hi:g}" if isinstance(hi, float) else f" <= {hi}"
    return ""


def check_int(name: str, v: Any, lo: int | None = None, hi: int | None = None, *, optional: bool = False) -> int | None:
    """``v`` as an ``int`` in ``lo..hi`` (inclusive; None = unbounded). Accepts Python and numpy integers and floats
    that are whole numbers (a JSON ``3.0``); refuses bools, strings, NaN. ``optional``: None passes through."""
    if v is None and optional:
        return None
    expected = f"an integer{_span(lo, hi)}"
    if isinstance(v, (bool, np.bool_)):
        raise OptionError(name, expected, v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)) or not float(v).is_integer():
            raise OptionError(name, expected, v)
        v = int(v)
    if not isinstance(v, (int, np.integer)):
        raise OptionError(name, expected, v)
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise OptionError(name, expected, v)
    return v


def check_number(
    name: str, v: Any, lo: float | None = None, hi: float | None = None, *, optional: bool = False
) -> float | None:
    """``v`` as a finite ``float`` in ``[lo, hi]`` (None = unbounded). Refuses bools, strings, NaN and infinities.
    ``optional``: None passes through."""
    if v is None and optional:
        return None
    expected = f"a finite number{_span(None if lo is None else float(lo), None if hi is None else float(hi))}"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise OptionError(name, expected, v)
    f = float(v)
    if not math.isfinite(f) or (lo is not None and f < lo) or (hi is not None and f > hi):
        raise OptionError(name, expected, v)
    return f


def check_bool(name: str, v: Any, *, optional: bool = False) -> bool | None:
    """``v`` as a ``bool`` (True/False only; ``optional``: None passes through)."""
    if v is None and optional:
        return None
    if not isinstance(v, (bool, np.bool_)):
        raise OptionError(name, "True or False", v)
    return bool(v)


def check_choice(name: str, v: Any, choices: Sequence[Any], *, optional: bool = False) -> Any:
    """``v`` when it is one of ``choices`` (``optional``: None passes through)."""
    if v is None and optional:
        return None
    if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in choices:
        raise OptionError(name, f"one of {', '.join(map(str, choices))}", v)
    return v


@contextmanager
def renamed(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an :class:`OptionError` raised inside the block under the caller's name for it: ``names`` maps the
    library's name (``"SamplingOptions.seed"``) to the surface's (``"--seed"``). Errors of unmapped names pass
    unchanged."""
    try:
        yield
    except OptionError as e:
        if e.name in names:
            raise e.renamed(names[e.name]) from None
        raise


def check_output_path(
    name: str,
    path: str | os.PathLike[str],
    suffixes: Sequence[str],
    inputs: Mapping[str, Any] | None = None,
) -> Path:
    """``path`` as a :class:`~pathlib.Path` when it can be written: its suffix is one of ``suffixes`` (any case), its
    folder exists, it is not a folder, and it is not one of ``inputs`` (``{name: path or other input}``; non-path
    inputs are ignored) — writing there would destroy that input. Compares resolved paths and, for files that exist,
    their identity (hard links, different spellings)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OptionError(name, "a file name", path)
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OptionError(name, f"a file name ending in {', '.join(suffixes)}", str(p))
    if not p.parent.is_dir():
        raise OptionError(name, f"a file in an existing folder (no folder {str(p.parent)!r})", str(p))
    if p.is_dir():
        raise OptionError(name, "a file name, not a folder", str(p))
    for input_name, other in (inputs or {}).items():
        if not isinstance(other, (str, os.PathLike)):
            continue
        q = Path(other)
        same = p.resolve() == q.resolve()
        if not same and p.exists() and q.exists():
            try:
                same = os.path.samefile(p, q)
            except OSError:
                same = False
        if same:
            raise OptionError(name, f"a new file, not the {input_name} (writing it would destroy that input)", str(p))
    return p
