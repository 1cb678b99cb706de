"""The batch runner in this process: the models loaded once, each distinct source registered once, the jobs one
after another on one device; ``summary.json`` rewritten after every job.

What both runners (this one and :mod:`ditto_core.batch.ray_runner`) share is here too: :class:`SourceCache` (a
source registered once per content hash and registration options), :func:`run_job` (one job on loaded models), and
:class:`BatchRun` (the output folder, the skipped outputs, the summary, the progress bar).
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util import CancelFn, write_atomically
from ..errors import DittoError, InputError
from .jobs import Job, RunSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..render.renderer import Renderer
    from ..runtime.models import DittoModels
    from ..runtime.options import SourceOptions
    from ..source import Source

__all__ = [
    "SUMMARY_NAME",
    "BatchReport",
    "BatchRun",
    "JobResult",
    "SourceCache",
    "file_digest",
    "load_models",
    "run_batch",
    "run_job",
]

#: the summary's file name in the output folder
SUMMARY_NAME = "summary.json"
#: ``summary.json``'s format
SUMMARY_SCHEMA = "ditto-batch/1"
#: errors that are the job's inputs' or settings' fault (reported by their message alone)
USER_ERRORS: tuple[type[BaseException], ...] = (DittoError, ValueError)
#: registered sources a runner keeps (least recently used dropped)
DEFAULT_MAX_SOURCES = 8


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def error_message(e: BaseException) -> str:
    """A failed job's error: the message of a refused input or setting; the type and message of anything else."""
    if isinstance(e, USER_ERRORS):
        return str(e) or type(e).__name__
    return f"{type(e).__name__}: {e}"


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SourceCache:
    """Registered sources by the SHA-256 of the file's bytes and the registration options (crop scale, face index,
    ...): the same portrait is read and registered once however many jobs use it, under any path. The least recently
    used is dropped past ``capacity``. A source that cannot be registered (no face) is remembered too: the jobs after
    it fail at once with the same message. Thread-safe. ``registered`` / ``reused``: counts."""

    def __init__(self, models: DittoModels, capacity: int = DEFAULT_MAX_SOURCES) -> None:
        self.models = models
        self.capacity = max(1, int(capacity))
        self.registered = 0
        self.reused = 0
        self._items: collections.OrderedDict[tuple[str, Any], Source | BaseException] = collections.OrderedDict()
        self._digests: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.RLock()

    def key(self, path: Path, options: SourceOptions) -> tuple[str, Any]:
        """``(SHA-256 of the file, options)``; the digest is kept per path while its size and time stay."""
        try:
            st = os.stat(path)
            known = self._digests.get(str(path))
            if known is None or known[:2] != (st.st_size, st.st_mtime_ns):
                known = (st.st_size, st.st_mtime_ns, file_digest(path))
                self._digests[str(path)] = known
        except OSError as e:  # gone or unreadable since the job file was checked
            raise InputError(f"source {str(path)!r}: cannot be read ({e.strerror or e})") from None
        return known[2], options

    def get(self, path: str | os.PathLike[str], options: SourceOptions, progress: Callable[[int, int], None] | None = None,
            cancel: CancelFn | None = None) -> tuple[Source, bool]:
        """``(source, reused)``: the registered source of the file at ``path`` under ``options``."""
        from ..runtime.offline import load_source
        from ..runtime.options import JobOptions

        with self._lock:
            key = self.key(Path(path), options)
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.reused += 1
                if isinstance(hit, BaseException):
                    raise hit
                return hit, True
            try:
                source = load_source(self.models, str(path), JobOptions(source=options), progress, cancel)
            except USER_ERRORS as e:
                self._put(key, e)
                raise
            self.registered += 1
            self._put(key, source)
            return source, False

    def _put(self, key: tuple[str, Any], value: Any) -> None:
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def stats(self) -> dict[str, int]:
        return {"registered": self.registered, "reused": self.reused}


@dataclass(frozen=True)
class JobRun:
    """What a job made: ``frames`` at ``fps``; ``source_reused``: its source came from the cache."""

    frames: int
    fps: float
    source_reused: bool


def run_job(models: DittoModels, job: Job, out_path: str | os.PathLike[str], sources: SourceCache,
            renderer: Renderer | None = None, progress: Callable[[str, int, int], None] | None = None,
            cancel: CancelFn | None = None) -> JobRun:
    """One job on loaded models: its source from ``sources``, then ``generate`` (or ``generate_driven`` with a
    driving video) into ``out_path`` (written under a temporary name and renamed when complete)."""
    from ..motion.track import FPS
    from ..runtime.offline import generate, generate_driven

    frames = [0]

    def stage(name: str, done: int, total: int) -> None:
        if name == "render":
            frames[0] = total
        if progress is not None:
            progress(name, done, total)

    source, reused = sources.get(job.source, job.options.source,
                                 None if progress is None else (lambda d, t: progress("source", d, t)), cancel)
    if job.drive is not None:
        generate_driven(models, source, job.drive, out_path, job.audio, job.options, job.driving,
                        length=job.drive_length, progress=stage, cancel=cancel, renderer=renderer)
    else:
        generate(models, source, job.audio, out_path, job.options, progress=stage, cancel=cancel, renderer=renderer)
    return JobRun(frames[0], FPS, reused)


def load_models(settings: RunSettings, device: str | None = None, progress: bool = False) -> DittoModels:
    """The models of a run (``device``: instead of the settings' one)."""
    from ..runtime.models import DittoModels

    return DittoModels.load(settings.models_dir(), device or settings.device, settings.precision,
                            download=settings.download, progress=progress, backend=settings.renderer)


def new_renderer(models: DittoModels, settings: RunSettings) -> Renderer:
    """The one renderer of a run (every job has the run's batch size, backend and speed options), kept across its
    jobs."""
    opts = settings.render_options()
    return models.new_renderer(backend=opts.backend, config=opts.renderer_config(models.precision))


# ------------------------------------------------------------------------------------------------ results
@dataclass
class JobResult:
    """One job's line of the summary. ``status``: "ok", "failed", "skipped" (its output was there) or "pending" (not
    run: the run stopped first). ``seconds``: the job's wall time; ``frames`` at ``fps``."""

    line: int
    output: str
    status: str = "pending"
    error: str | None = None
    seconds: float | None = None
    frames: int | None = None
    fps: float | None = None
    source_reused: bool | None = None
    worker: str | None = None
    details: str | None = None

    @property
    def clip_seconds(self) -> float | None:
        return None if not self.frames or not self.fps else self.frames / self.fps

    def to_dict(self, job: Job | None = None) -> dict[str, Any]:
        clip = self.clip_seconds
        ok = clip is not None and self.seconds is not None and self.seconds > 0
        d: dict[str, Any] = {
            "line": self.line, "output": self.output, "status": self.status, "error": self.error,
            "seconds": None if self.seconds is None else round(self.seconds, 3), "frames": self.frames,
            "clip_seconds": None if clip is None else round(clip, 3),
            # the project's real-time factor: processing time / clip duration (< 1 is faster than real time)
            "rtf": round(self.seconds / clip, 4) if ok else None,
            # its inverse: clip seconds made per wall second ("x real time")
            "speed": round(clip / self.seconds, 4) if ok else None,
            "source_reused": self.source_reused,
        }
        if self.worker is not None:
            d["worker"] = self.worker
        if self.details:
            d["traceback"] = self.details
        if job is not None:
            d.update(job.describe())
        return d


@dataclass(frozen=True)
class BatchReport:
    """A finished (or stopped) run: every job's result in file order, the sources' counts, ``summary.json``'s path
    and the run's ``state`` ("done", "interrupted", "stopped")."""

    results: tuple[JobResult, ...]
    sources: dict[str, int]
    summary_path: Path
    state: str
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def describe(self) -> str:
        return (f"{self.count('ok')} ok, {self.failed} failed, {self.count('skipped')} skipped"
                + (f", {self.count('pending')} not run" if self.count("pending") else "")
                + f" in {self.seconds:.1f} s; sources registered {self.sources.get('registered', 0)}, reused "
                f"{self.sources.get('reused', 0)}; summary: {self.summary_path}")


class _Bar:
    """The run's one progress bar: jobs done of the jobs to run, with the running job's stage and the frames made."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.frames = 0
        self.failed = 0
        self._last = 0.0
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="job", leave=True, dynamic_ncols=True)

    def stage(self, job: Job, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and done < total:
            return
        self._last = now
        self.bar.set_postfix_str(f"line {job.line} {stage} {done}/{total}, {self.frames} frames"
                                 + (f", {self.failed} failed" if self.failed else ""), refresh=False)
        self.bar.refresh()

    def done(self, result: JobResult) -> None:
        self.frames += result.frames or 0
        if result.status == "failed":
            self.failed += 1
            self.write(f"line {result.line} ({result.output}) failed: {result.error}")
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.frames} frames" + (f", {self.failed} failed" if self.failed else ""),
                                     refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class BatchRun:
    """One run's bookkeeping, the same for both runners: the output folder, the jobs skipped because their output
    is there (unless ``force``), ``summary.json`` (written atomically at the start, after every job and at the end,
    so an interrupted run leaves a valid one), and the progress bar."""

    def __init__(self, jobs: Sequence[Job], out_dir: str | os.PathLike[str], settings: RunSettings, *, runner: str,
                 force: bool = False, progress: bool = True, jobs_file: str | os.PathLike[str] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.jobs = list(jobs)
        self.out_dir = Path(out_dir)
        self.settings = settings
        self.runner = runner
        self.force = bool(force)
        self.progress = bool(progress)
        self.jobs_file = None if jobs_file is None else os.fspath(jobs_file)
        self.info = dict(info or {})
        self.results = {job.line: JobResult(job.line, job.out) for job in self.jobs}
        self.sources = {"registered": 0, "reused": 0}
        self.started = _now()
        self.t0 = time.perf_counter()
        self.state = "running"
        self.error: str | None = None
        self._worker_sources: dict[str, dict[str, int]] = {}
        self._bar: _Bar | None = None
        self._lock = threading.Lock()

    @property
    def summary_path(self) -> Path:
        return self.out_dir / SUMMARY_NAME

    def output_path(self, job: Job) -> Path:
        return self.out_dir.joinpath(*job.out.split("/"))

    def start(self) -> list[Job]:
        """Make the output folder, mark the jobs whose output exists as skipped, write the first summary; returns
        the jobs to run."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise DittoError(f"--out {str(self.out_dir)!r}: not a folder")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        todo = []
        for job in self.jobs:
            if not self.force and self.output_path(job).exists():
                self.results[job.line].status = "skipped"
            else:
                todo.append(job)
        self._bar = _Bar(len(todo), self.progress)
        self.write_summary()
        return todo

    def prepare(self, job: Job) -> Path:
        """The output path of ``job``, its folder made."""
        out = self.output_path(job)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def stage(self, job: Job, stage: str, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.stage(job, stage, done, total)

    def finished(self, result: JobResult) -> None:
        """Record a job's result and rewrite the summary."""
        with self._lock:
            self.results[result.line] = result
            if self._bar is not None:
                self._bar.done(result)
            self.write_summary()

    def set_sources(self, worker: str, stats: dict[str, int]) -> None:
        """A worker's source cache counts (cumulative); the summary shows their sums."""
        with self._lock:
            self._worker_sources[worker] = dict(stats)
            self.sources = {k: sum(w.get(k, 0) for w in self._worker_sources.values()) for k in ("registered", "reused")}

    def status(self, text: str) -> None:
        """What the run is doing before its first job (loading models, starting workers), on the bar."""
        if self._bar is not None and self._bar.bar is not None:
            self._bar.bar.set_postfix_str(text)

    def note(self, text: str) -> None:
        if self._bar is not None and self._bar.bar is not None:
            self._bar.write(text)

    def summary(self) -> dict[str, Any]:
        by_line = {job.line: job for job in self.jobs}
        results = [self.results[line] for line in sorted(self.results)]
        counts = collections.Counter(r.status for r in results)
        s = self.settings
        return {
            "schema": SUMMARY_SCHEMA,
            "state": self.state,
            "error": self.error,
            "jobs_file": self.jobs_file,
            "out_dir": str(self.out_dir),
            "runner": self.runner,
            **self.info,
            "started": self.started,
            "updated": _now(),
            "seconds": round(time.perf_counter() - self.t0, 3),
            "settings": {"models": str(s.models_dir()), "device": s.device, "precision": s.precision,
                         "renderer": s.renderer, "batch_size": s.batch_size, **s.speed_options(), "download": s.download,
                         "force": self.force},
            "counts": {k: counts.get(k, 0) for k in ("ok", "failed", "skipped", "pending")},
            "sources": dict(self.sources),
            "jobs": [r.to_dict(by_line.get(r.line)) for r in results],
        }

    def write_summary(self) -> None:
        text = json.dumps(self.summary(), indent=2) + "\n"
        write_atomically(self.summary_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def finish(self, state: str, error: str | None = None) -> BatchReport:
        """Close the bar and write the last summary: ``state`` "done", "interrupted" (Ctrl-C, a signal) or
        "stopped" (an error that ended the run: ``error``)."""
        self.state, self.error = state, error
        if self._bar is not None:
            self._bar.close()
        self.write_summary()
        return BatchReport(tuple(self.results[line] for line in sorted(self.results)), dict(self.sources),
                           self.summary_path, state, time.perf_counter() - self.t0)


def run_tracked(batch: BatchRun, body: Callable[[list[Job]], None]) -> BatchReport:
    """``body(jobs to run)`` between :meth:`BatchRun.start` and :meth:`BatchRun.finish`: the summary's state says how
    it ended, and an interrupt or an error that stops the run is re-raised after the summary is written."""
    todo = batch.start()
    try:
        body(todo)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM / SIGHUP turned into it by the command line
        batch.finish("interrupted")
        raise
    except BaseException as e:
        batch.finish("stopped", error_message(e))
        raise
    return batch.finish("done")


def run_batch(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    settings: RunSettings | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    models: DittoModels | None = None,
    max_sources: int = DEFAULT_MAX_SOURCES,
    jobs_file: str | os.PathLike[str] | None = None,
) -> BatchReport:
    """Run checked ``jobs`` (:func:`~ditto_core.batch.read_jobs`) in this process, writing each output under
    ``out_dir`` and ``out_dir/summary.json`` after every job.

    The models load once (or ``models``, already loaded, are used; no model loads when every output is there), one
    renderer serves every job, and each distinct source is registered once (:class:`SourceCache`, ``max_sources``
    kept). A job that fails is recorded with its error and the others run; a job whose output exists is skipped
    unless ``force``. Ctrl-C (or a signal the command line turns into it) stops the run: the job that was running
    leaves nothing, the summary says "interrupted" and the interrupt is re-raised.
    """
    settings = settings or RunSettings()
    batch = BatchRun(jobs, out_dir, settings, runner="in-process", force=force, progress=progress,
                     jobs_file=jobs_file)

    def body(todo: list[Job]) -> None:
        if not todo:
            return
        batch.status("loading the models")
        m = models if models is not None else load_models(settings)
        batch.info["device"] = str(m.device)
        sources = SourceCache(m, max_sources)
        renderer = new_renderer(m, settings)
        for job in todo:
            out = batch.prepare(job)
            t0 = time.perf_counter()
            result = JobResult(job.line, job.out)
            try:
                run = run_job(m, job, out, sources, renderer, progress=lambda s, d, t, j=job: batch.stage(j, s, d, t))
            except Exception as e:  # one job's failure never stops the others
                result.status, result.error = "failed", error_message(e)
                if not isinstance(e, USER_ERRORS):
                    result.details = traceback.format_exc(limit=8)
            else:
                result.status, result.frames, result.fps = "ok", run.frames, run.fps
                result.source_reused = run.source_reused
            result.seconds = time.perf_counter() - t0
            batch.set_sources("local", sources.stats())
            batch.finished(result)

    return run_tracked(batch, body)
