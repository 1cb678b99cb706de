"""Batch job files: one ``generate`` job per line, read and checked whole before any model loads.

A job file is JSON Lines (one JSON object per line; blank lines and lines starting with ``#`` are skipped) or, when
its name ends in ``.csv``, CSV with a header row naming the fields (an empty cell leaves a field unset). The fields
are ``generate``'s long flags with underscores (:data:`JOB_FIELDS`: ``source``, ``audio``, ``drive``, ``out``,
``seed``, ``drive_parts``, ...); the run-level settings (models, device, precision, renderer, batch size, downloads)
are flags of the ``batch`` command (:class:`RunSettings`), not job fields. ``docs/batch-jobs.md`` documents them.

Every line goes through ``generate``'s own checks: the fields become the :class:`argparse.Namespace` that
``generate``'s parser would make (its defaults, its types, its choices), then :func:`~ditto_core.cli_options.
job_options` and :func:`~ditto_core.cli_options.driving_options` build the options, so a job accepts exactly what
``generate`` accepts, and an error names the file, the line and the field::

    jobs.jsonl line 3, field "seed": must be an integer in 0..18446744073709551615, got 'x'

Besides: unknown fields, a missing ``source``, neither ``audio`` nor ``drive``, input files that do not exist,
output names that leave the output folder (absolute, ``..``), that two jobs share, or that would overwrite an input
are refused. Relative input paths are relative to the job file's folder; ``out`` is relative to the output folder
(default ``<line>_<source stem>_<audio or drive stem>.mp4``).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import functools
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from ..cli_options import GENERATE_FLAGS, add_generate_arguments, driving_options, job_options, speed_flag
from ..errors import InputError
from ..render.renderer import BACKENDS, PRECISIONS, SPEED_OPTIONS
from ..validate import OptionError, check_bool, check_choice, check_int
from ..video import VIDEO_SUFFIXES

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.driving import DrivingOptions
    from ..runtime.options import JobOptions, RenderOptions

__all__ = [
    "JOB_FIELDS",
    "RUN_FLAGS",
    "Job",
    "JobFileError",
    "RunSettings",
    "check_jobs",
    "read_jobs",
]

#: ``generate``'s run-level settings: flags of ``batch`` (the same for every job), never job fields
RUN_FLAGS: dict[str, str] = {"models": "--models", "no_download": "--no-download", "device": "--device",
                             "precision": "--precision", "batch_size": "--batch-size", "renderer": "--renderer",
                             **{name: speed_flag(name) for name in SPEED_OPTIONS}}
#: ``generate`` flags that a batch job has no use for
_NOT_JOB = ("help", "stream", "quiet")
#: the fields that name input files
INPUT_FIELDS = ("source", "audio", "drive")
#: at most this many refusals are listed (all lines are checked)
MAX_LISTED_ERRORS = 50
#: the key of a CSV row's cells beyond the header's columns
_EXTRA_CELLS = "\0extra"


@functools.lru_cache(maxsize=1)
def _generate_actions() -> dict[str, argparse.Action]:
    """``generate``'s arguments by destination (its parser, built once: types, defaults, choices)."""
    p = argparse.ArgumentParser(add_help=False)
    add_generate_arguments(p)
    return {a.dest: a for a in p._actions}  # noqa: SLF001 (argparse keeps its actions there; read only)


#: the fields of a job: every ``generate`` flag but the run-level ones, ``--stream`` and ``--quiet``
JOB_FIELDS: tuple[str, ...] = tuple(d for d in _generate_actions() if d not in RUN_FLAGS and d not in _NOT_JOB)

#: ``generate``'s flag -> the job field (an OptionError named by the flag is renamed to the field)
_FLAG_FIELDS: dict[str, str] = {flag: flag.lstrip("-").replace("-", "_") for flag in GENERATE_FLAGS.values()}


@dataclass(frozen=True)
class RunSettings:
    """The settings of a whole batch run (``batch``'s flags): where the models are (None: ``$DITTO_MODELS_DIR`` or
    the default cache folder), the device, the renderer's precision, backend, batch size and speed options (one
    renderer serves every job of a worker), and whether missing model files may be downloaded. Checked on
    construction (errors name the ``batch`` flag)."""

    models: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    renderer: str = "pytorch"
    batch_size: int = 4
    download: bool = True
    cuda_graphs: bool = False
    compile: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.models is not None:
            object.__setattr__(self, "models", os.fspath(self.models))
        if not isinstance(self.device, str) or not self.device:
            raise OptionError("--device", "a device name (auto, cpu, cuda, cuda:N, mps)", self.device)
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--renderer", self.renderer, BACKENDS)
        object.__setattr__(self, "batch_size", check_int("--batch-size", self.batch_size, 1, 1024))
        object.__setattr__(self, "download", check_bool("download", self.download))
        for name in SPEED_OPTIONS:
            object.__setattr__(self, name, check_bool(RUN_FLAGS[name], getattr(self, name)))

    def models_dir(self) -> Path:
        from ..layout import default_models_dir

        return Path(self.models) if self.models else default_models_dir()

    def namespace_values(self) -> dict[str, Any]:
        """The run-level entries of ``generate``'s namespace."""
        return {"models": self.models, "no_download": not self.download, "device": self.device,
                "precision": self.precision, "batch_size": self.batch_size, "renderer": self.renderer,
                **self.speed_options()}

    def speed_options(self) -> dict[str, bool]:
        """``{name: on}`` for each of :data:`~ditto_core.render.SPEED_OPTIONS`."""
        return {name: getattr(self, name) for name in SPEED_OPTIONS}

    def render_options(self) -> RenderOptions:
        """The run's :class:`~ditto_core.runtime.RenderOptions` (a job adds only its ``output``)."""
        from ..runtime.options import RenderOptions

        return RenderOptions(batch_size=self.batch_size, backend=self.renderer, **self.speed_options())


@dataclass(frozen=True)
class Job:
    """One checked job: its ``line`` in the job file, the output name ``out`` (relative to the output folder, ``/``
    separated), the input files (absolute paths), the :class:`~ditto_core.runtime.JobOptions` and, with a driving
    video, the :class:`~ditto_core.runtime.DrivingOptions` and ``drive_length``. ``fields``: the fields as given."""

    line: int
    out: str
    source: Path
    audio: Path | None
    drive: Path | None
    options: JobOptions
    driving: DrivingOptions | None = None
    drive_length: str = "hold"
    fields: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def describe(self) -> dict[str, Any]:
        """The job's inputs, for the summary."""
        return {"source": str(self.source), "audio": None if self.audio is None else str(self.audio),
                "drive": None if self.drive is None else str(self.drive)}


class JobFileError(InputError):
    """A job file refused before anything ran: ``errors`` holds ``(line, field or None, message)`` for every refused
    line (line 0: the file itself); the message lists them, each naming the file, the line and the field."""

    def __init__(self, name: str, errors: Sequence[tuple[int, str | None, str]]) -> None:
        self.file = name
        self.errors = list(errors)
        lines = [format_error(name, line, fld, msg) for line, fld, msg in self.errors[:MAX_LISTED_ERRORS]]
        if len(self.errors) > MAX_LISTED_ERRORS:
            lines.append(f"... and {len(self.errors) - MAX_LISTED_ERRORS} more")
        if len(self.errors) > 1:
            refused = len({line for line, _, _ in self.errors})
            lines.insert(0, f"{name}: {refused} line{'s' if refused != 1 else ''} refused, nothing was run:")
        super().__init__("\n".join(lines))


def format_error(name: str, line: int, fld: str | None, message: str) -> str:
    where = name if line <= 0 else f"{name} line {line}"
    return f'{where}, field "{fld}": {message}' if fld else f"{where}: {message}"


class _Refused(Exception):
    """One line's refusal (collected into a :class:`JobFileError`)."""

    def __init__(self, fld: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = fld, message


# ------------------------------------------------------------------------------------------------ reading
def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(k, "given twice on the line")
        out[k] = v
    return out


def _read_rows(path: Path, name: str) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str | None, str]],
                                                bool]:
    """``([(line, fields)], errors, is_csv)``: the file's rows, lines that could not be read as rows."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: cannot be read as UTF-8 text ({e})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[tuple[int, str | None, str]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA_CELLS)
        header = reader.fieldnames or []
        if not header:
            raise InputError(f"{name}: no header row (a CSV job file starts with the field names)")
        seen = set()
        for h in header:
            if h.strip() in seen:
                errors.append((1, h.strip(), "column given twice in the header"))
            seen.add(h.strip())
        try:
            for row in reader:
                line = reader.line_num
                if _EXTRA_CELLS in row:
                    cells = len(header) + len(row[_EXTRA_CELLS])
                    errors.append((line, None, f"{cells} cells, the header has {len(header)} columns"))
                    continue
                fields = {k.strip(): v for k, v in row.items() if v is not None and v.strip() != ""}
                if fields:
                    rows.append((line, fields))
        except csv.Error as e:
            errors.append((reader.line_num, None, f"not valid CSV ({e})"))
        return rows, errors, True
    for line, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s, object_pairs_hook=_no_duplicate_keys)
        except _Refused as e:
            errors.append((line, e.field, e.message))
            continue
        except ValueError as e:
            errors.append((line, None, f"not valid JSON ({e})"))
            continue
        if not isinstance(obj, dict):
            errors.append((line, None, f"a job is a JSON object of fields ({{\"source\": ..., \"audio\": ...}}), "
                                       f"got {type(obj).__name__}"))
            continue
        rows.append((line, {k: v for k, v in obj.items() if v is not None}))
    return rows, errors, False


# ------------------------------------------------------------------------------------------------ checking
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _value(fld: str, v: Any, from_csv: bool) -> Any:
    """A field's value as ``generate``'s parser would have made it from the same text."""
    action = _generate_actions()[fld]
    if action.nargs == 0:  # a switch (store_true): no_drive_eye
        if isinstance(v, str) and from_csv:
            t = v.strip().lower()
            if t in _TRUE or t in _FALSE:
                return t in _TRUE
        if isinstance(v, bool):
            return v
        raise _Refused(fld, f"must be true or false, got {v!r}")
    if isinstance(v, str) and action.type is not None:
        try:
            v = action.type(v.strip())
        except (TypeError, ValueError):
            pass  # the option's own check refuses the text, naming what it must be
    if action.choices is not None and v not in action.choices:
        raise _Refused(fld, f"must be one of {', '.join(map(str, action.choices))}, got {v!r}")
    return v


def _input_path(fld: str, v: Any, base: Path) -> Path:
    if not isinstance(v, str) or not v.strip():
        raise _Refused(fld, f"must be a file path, got {v!r}")
    p = Path(v).expanduser()
    full = p if p.is_absolute() else base / p
    if not full.is_file():
        where = "" if p.is_absolute() else f" (looked for {full})"
        raise _Refused(fld, f"no such file {v!r}{where}")
    return Path(os.path.abspath(full))


def _output_name(v: Any) -> str:
    """``out``: a video file name inside the output folder -> its normalised ``/``-separated form."""
    if not isinstance(v, str) or not v.strip():
        raise _Refused("out", f"must be a file name, got {v!r}")
    if Path(v).is_absolute() or PureWindowsPath(v).is_absolute() or PureWindowsPath(v).drive or v.startswith(("/", "\\")):
        raise _Refused("out", f"must be a name inside the output folder, not an absolute path, got {v!r}")
    parts = [p for p in re.split(r"[\\/]+", v) if p not in ("", ".")]
    if ".." in parts:
        raise _Refused("out", f"must stay inside the output folder (no '..'), got {v!r}")
    if not parts:
        raise _Refused("out", f"must be a file name, got {v!r}")
    name = "/".join(parts)
    if PurePosixPath(name).suffix.lower() not in VIDEO_SUFFIXES:
        raise _Refused("out", f"must be a file name ending in {', '.join(VIDEO_SUFFIXES)}, got {v!r}")
    return name


def _stem(path: Path) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "input"
    return s[:60]


def default_output_name(line: int, source: Path, audio: Path | None, drive: Path | None) -> str:
    """``<line>_<source stem>_<audio stem, else drive stem>.mp4``: unique per line, stable across reruns of the same
    file."""
    other = audio if audio is not None else drive
    return f"{line}_{_stem(source)}_{_stem(other)}.mp4" if other is not None else f"{line}_{_stem(source)}.mp4"


def _check_row(line: int, row: Mapping[str, Any], base: Path, settings: RunSettings, from_csv: bool) -> Job:
    for fld in row:
        if fld not in JOB_FIELDS:
            if fld in RUN_FLAGS:
                raise _Refused(fld, f"a setting of the whole run, not of a job: give batch's {RUN_FLAGS[fld]} flag")
            close = difflib.get_close_matches(str(fld), JOB_FIELDS, n=1)
            hint = f" (did you mean \"{close[0]}\"?)" if close else f" (fields: {', '.join(JOB_FIELDS)})"
            raise _Refused(str(fld), f"unknown field{hint}")
    if "source" not in row:
        raise _Refused("source", "required: the portrait image or video")
    if "audio" not in row and "drive" not in row:
        raise _Refused("audio", 'required, or "drive" (a driving video), or both')
    paths = {fld: _input_path(fld, row[fld], base) for fld in INPUT_FIELDS if fld in row}
    ns = {dest: a.default for dest, a in _generate_actions().items() if dest not in _NOT_JOB}
    ns.update(settings.namespace_values())
    for fld, v in row.items():
        if fld not in INPUT_FIELDS and fld != "out":
            ns[fld] = _value(fld, v, from_csv)
    ns.update({fld: str(p) for fld, p in paths.items()})
    args = argparse.Namespace(**ns)
    try:
        options = job_options(args)
        driving = driving_options(args) if "drive" in paths else None
    except OptionError as e:
        fld = _FLAG_FIELDS.get(e.name)
        if fld is None or fld not in JOB_FIELDS:
            raise _Refused(None, str(e)) from None
        raise _Refused(fld, e.reason if e.reason else f"must be {e.expected}, got {e.got!r}") from None
    except ValueError as e:
        raise _Refused(None, str(e)) from None
    out = (_output_name(row["out"]) if "out" in row else
           default_output_name(line, paths["source"], paths.get("audio"), paths.get("drive")))
    return Job(line=line, out=out, source=paths["source"], audio=paths.get("audio"), drive=paths.get("drive"),
               options=options, driving=driving, drive_length=str(ns["drive_length"]),
               fields=tuple((str(k), v) for k, v in row.items()))


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_jobs(jobs: Iterable[Job], out_dir: str | os.PathLike[str],
               extra_inputs: Mapping[str, Path] | None = None) -> list[tuple[int, str | None, str]]:
    """The refusals that need every job at once: two jobs with one output name, an output that would overwrite an
    input file of any job (or one of ``extra_inputs``, such as the job file)."""
    errors: list[tuple[int, str | None, str]] = []
    root = Path(out_dir)
    seen: dict[str, int] = {}
    inputs: list[tuple[str, Path]] = [(what, Path(p)) for what, p in (extra_inputs or {}).items()]
    jobs = list(jobs)
    for job in jobs:
        for fld in INPUT_FIELDS:
            p = getattr(job, fld)
            if p is not None:
                inputs.append((f'the "{fld}" of line {job.line}', p))
    for job in jobs:
        key = job.out.casefold()  # one file on a case-insensitive file system
        if key in seen:
            errors.append((job.line, "out", f"{job.out!r} is also the output of line {seen[key]}"))
            continue
        seen[key] = job.line
        target = root.joinpath(*job.out.split("/"))
        if target.is_dir():
            errors.append((job.line, "out", f"{job.out!r} is a folder in the output folder"))
            continue
        for what, p in inputs:
            if _same_file(target, p):
                errors.append((job.line, "out", f"{job.out!r} would overwrite an input: {what} ({p})"))
                break
    return errors


def read_jobs(path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
              settings: RunSettings | None = None) -> list[Job]:
    """Read and check a whole job file (JSON Lines, or CSV when it ends in ``.csv``) for outputs in ``out_dir``;
    returns the jobs in file order. Loads no model. Raises :class:`JobFileError` listing every refused line (each
    naming the file, the line and the field), or :class:`~ditto_core.errors.InputError` for a file that cannot be
    read or holds no job."""
    p = Path(path)
    name = os.fspath(path)
    settings = settings or RunSettings()
    rows, errors, from_csv = _read_rows(p, name)
    base = Path(os.path.abspath(p)).parent
    jobs: list[Job] = []
    for line, row in rows:
        try:
            jobs.append(_check_row(line, row, base, settings, from_csv))
        except _Refused as e:
            errors.append((line, e.field, e.message))
    errors += check_jobs(jobs, out_dir, {f"the job file {name}": Path(os.path.abspath(p))})
    if errors:
        raise JobFileError(name, sorted(errors, key=lambda e: e[0]))
    if not jobs:
        raise InputError(f"{name}: no jobs (one JSON object per line, or CSV rows under a header)")
    return jobs
