"""The batch runner on a Ray cluster: the same jobs, outputs and ``summary.json`` as the in-process runner, spread
over one actor per GPU (or per slot of CPUs where there is no GPU), each holding the models and its own source
cache. Jobs are handed to actors as they free up.

Shared storage: each worker reads a job's input files (and the models folder) by the same absolute paths the job
file names, so those paths must be visible on every node (a shared file system, or the same files at the same paths).
Outputs travel back to the process that started the run, which writes them under the output folder (atomically, as
the in-process runner does), so the output folder need not be shared.

``ray`` is imported only here and only when the Ray runner is used: ``pip install ".[ray]"`` (or ``ray>=2.9``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util import write_atomically
from ..errors import DittoError
from .jobs import Job, RunSettings
from .runner import (
    DEFAULT_MAX_SOURCES,
    USER_ERRORS,
    BatchReport,
    BatchRun,
    JobResult,
    SourceCache,
    error_message,
    load_models,
    new_renderer,
    run_job,
    run_tracked,
)

__all__ = ["DEFAULT_CPU_SLOT", "RAY_INSTALL", "WorkerPlan", "import_ray", "plan_workers", "run_batch_ray"]

#: what to install for the Ray runner
RAY_INSTALL = 'pip install ".[ray]"'
#: CPUs per worker where there is no GPU, unless ``--cpus-per-worker`` says otherwise (at most a node's CPUs)
DEFAULT_CPU_SLOT = 4
#: seconds a stopped run waits for its running jobs to end (each removes its partial file) before killing workers
CANCEL_WAIT_S = 30.0


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`~ditto_core.errors.DittoError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DittoError(f"--ray needs the ray package, which is not installed: {RAY_INSTALL} (or pip install "
                         "\"ray>=2.9\")") from None
    return ray


@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, each with ``num_cpus`` CPUs and ``num_gpus`` GPUs, running the models on ``device`` with
    ``threads`` torch threads (None: as Ray sets them)."""

    count: int
    num_cpus: int
    num_gpus: int
    device: str
    threads: int | None

    def describe(self) -> str:
        each = f"{self.num_gpus} GPU, {self.num_cpus} CPU" if self.num_gpus else f"{self.num_cpus} CPU"
        return f"{self.count} worker{'s' if self.count != 1 else ''} ({each} each, device {self.device})"


def plan_workers(nodes: Sequence[Mapping[str, float]], device: str = "auto", cpus_per_worker: int | None = None,
                 workers: int | None = None, jobs: int | None = None) -> WorkerPlan:
    """The actors for a cluster whose live nodes have the resources ``nodes`` (``{"CPU": 8, "GPU": 2, ...}`` each):
    one per GPU when there are GPUs and ``device`` is "auto" or CUDA (``cpus_per_worker`` CPUs each, default 1);
    else one per ``cpus_per_worker`` CPUs (default :data:`DEFAULT_CPU_SLOT`, at most the largest node's CPUs) on the
    CPU (or ``device``). At most ``workers`` and at most ``jobs`` actors."""
    gpus = [int(n.get("GPU", 0) or 0) for n in nodes]
    cpus = [int(n.get("CPU", 0) or 0) for n in nodes]
    cuda = device == "auto" or device.startswith("cuda")
    if cuda and sum(gpus) > 0:
        slot = cpus_per_worker or 1
        capacity = sum(min(g, c // slot) for g, c in zip(gpus, cpus))
        if capacity == 0:
            raise DittoError(f"--cpus-per-worker {slot}: no Ray node with a GPU has {slot} CPUs for its worker "
                             f"(largest: {max(c for g, c in zip(gpus, cpus) if g) if any(gpus) else 0})")
        plan = dict(num_cpus=slot, num_gpus=1, device="cuda", threads=None)  # Ray makes each actor's GPU cuda:0
    else:
        if device.startswith("cuda"):
            raise DittoError(f"--device {device}: the Ray cluster has no GPU")
        largest = max(cpus, default=0)
        if largest == 0:
            raise DittoError("the Ray cluster has no CPU for a worker")
        slot = cpus_per_worker or min(DEFAULT_CPU_SLOT, largest)
        capacity = sum(c // slot for c in cpus)
        if capacity == 0:
            raise DittoError(f"--cpus-per-worker {slot}: no Ray node has {slot} CPUs (largest: {largest})")
        plan = dict(num_cpus=slot, num_gpus=0, device="cpu" if device == "auto" else device, threads=slot)
    count = capacity
    if workers is not None:
        count = min(count, int(workers))
    if jobs is not None:
        count = min(count, max(1, int(jobs)))
    return WorkerPlan(count=count, **plan)


class JobCancelled(Exception):
    """The run that sent a job stopped it (``ray.cancel``)."""


class BatchWorker:
    """A Ray actor's state (made remote by :func:`run_batch_ray`): the models, one renderer and a source cache. Each
    job renders into a local temporary folder and its bytes go back to the caller."""

    def __init__(self, settings: RunSettings, device: str, threads: int | None, max_sources: int,
                 setup: Callable[[Any], None] | None = None) -> None:
        self.settings, self.device, self.threads = settings, device, threads
        self.max_sources, self.setup = max_sources, setup
        self.models = self.sources = self.renderer = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> dict[str, Any]:
        """Load the models: ``{"worker", "device"}``, or ``{"error": message}`` for a refused setting or model."""
        try:
            if self.threads:
                import torch

                torch.set_num_threads(int(self.threads))
            self.models = load_models(self.settings, self.device)
            if self.setup is not None:
                self.setup(self.models)
            self.sources = SourceCache(self.models, self.max_sources)
            self.renderer = new_renderer(self.models, self.settings)
        except Exception as e:  # a refused setting or model, or a device that cannot start: the caller reports it
            return {"error": error_message(e), "worker": self.name}
        return {"worker": self.name, "device": str(self.models.device)}

    def run(self, job: Job) -> dict[str, Any]:
        """One job: ``{"status", "error", "seconds", "frames", "fps", "data" (the output's bytes), "sources"}``."""
        import ray

        # Ray's cancel flag for a running actor task (newer Ray); without it a stopped run kills the worker instead
        is_canceled = getattr(ray.get_runtime_context(), "is_canceled", None)

        def cancel() -> None:
            if is_canceled is not None and is_canceled():
                raise JobCancelled(f"line {job.line}: stopped")

        tmp = tempfile.mkdtemp(prefix="ditto-batch-")
        out = Path(tmp) / Path(job.out).name
        t0 = time.perf_counter()
        res: dict[str, Any] = {"worker": self.name}
        try:
            run = run_job(self.models, job, out, self.sources, self.renderer, cancel=cancel)
            res.update(status="ok", frames=run.frames, fps=run.fps, source_reused=run.source_reused,
                       data=out.read_bytes())
        except JobCancelled:
            res.update(status="cancelled")
        except Exception as e:  # one job's failure never stops the others
            res.update(status="failed", error=error_message(e),
                       details=None if isinstance(e, USER_ERRORS) else traceback.format_exc(limit=8))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res.update(seconds=time.perf_counter() - t0, sources=self.sources.stats())
        return res


def _alive_nodes(ray: Any) -> list[dict[str, float]]:
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def run_batch_ray(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    settings: RunSettings | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: int | None = None,
    force: bool = False,
    progress: bool = True,
    max_sources: int = DEFAULT_MAX_SOURCES,
    jobs_file: str | os.PathLike[str] | None = None,
    worker_setup: Callable[[Any], None] | None = None,
) -> BatchReport:
    """Run checked ``jobs`` on a Ray cluster, with the outputs and ``summary.json`` of
    :func:`~ditto_core.batch.run_batch`.

    ``address``: the cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None or "" starts a local Ray
    instance (dashboard off; ``$RAY_ADDRESS`` still applies) and stops it afterwards; a Ray this process is already
    connected to is used as it is. One actor per GPU, or per ``cpus_per_worker`` CPUs (:func:`plan_workers`), at
    most ``workers``; each loads the models from ``settings`` (the models folder must be there on every node) and
    calls ``worker_setup(models)`` when given. Input paths must be visible to the workers (see the module doc).
    Ctrl-C stops the run: running jobs are cancelled (each removes its partial file), the summary says
    "interrupted", the interrupt is re-raised.
    """
    settings = settings or RunSettings()
    ray = import_ray()
    batch = BatchRun(jobs, out_dir, settings, runner="ray", force=force, progress=progress, jobs_file=jobs_file)

    def body(todo: list[Job]) -> None:
        if not todo:
            return
        started = False
        if not ray.is_initialized():
            batch.status("starting Ray" if not address else f"connecting to Ray at {address}")
            ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
            started = True
        actors: list[Any] = []
        try:
            plan = plan_workers(_alive_nodes(ray), settings.device, cpus_per_worker, workers, len(todo))
            batch.info.update(address=address or "local", workers=plan.count, device=plan.device,
                              worker_cpus=plan.num_cpus, worker_gpus=plan.num_gpus)
            batch.status(f"starting {plan.describe()}")
            remote = ray.remote(BatchWorker).options(num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=0)
            actors = [remote.remote(settings, plan.device, plan.threads, max_sources, worker_setup)
                      for _ in range(plan.count)]
            for answer in ray.get([a.start.remote() for a in actors]):
                if "error" in answer:
                    raise DittoError(f"Ray worker {answer['worker']}: {answer['error']}")
            batch.note(f"batch on Ray: {plan.describe()}")
            _schedule(ray, batch, actors, todo)
        finally:
            for a in actors:
                ray.kill(a)
            if started:
                ray.shutdown()

    return run_tracked(batch, body)


def _schedule(ray: Any, batch: BatchRun, actors: list[Any], todo: list[Job]) -> None:
    """Hand the jobs to the actors as they free up; record each result as it comes."""
    pending = deque(todo)
    idle = list(actors)
    inflight: dict[Any, tuple[Any, Job]] = {}
    try:
        while pending or inflight:
            while pending and idle:
                actor, job = idle.pop(), pending.popleft()
                batch.prepare(job)
                inflight[actor.run.remote(job)] = (actor, job)
            if not inflight:  # jobs left and every worker gone
                raise DittoError(f"every Ray worker died; {len(pending)} jobs not run (rerun to do them)")
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                actor, job = inflight.pop(ref)
                _record(ray, batch, job, ref, actor, idle)
    except KeyboardInterrupt:
        for ref in inflight:
            ray.cancel(ref)
        if inflight:  # each running job sees its cancel at its next unit of work and removes its partial file
            ray.wait(list(inflight), num_returns=len(inflight), timeout=CANCEL_WAIT_S)
        raise


def _record(ray: Any, batch: BatchRun, job: Job, ref: Any, actor: Any, idle: list[Any]) -> None:
    result = JobResult(job.line, job.out, status="failed")
    try:
        res = ray.get(ref)
    except ray.exceptions.RayActorError as e:  # the worker died (out of memory, killed): not given back
        result.error = f"the Ray worker running it died: {e}"
        batch.note(f"line {job.line}: its Ray worker died; {len(idle)} idle worker(s) left")
        batch.finished(result)
        return
    except ray.exceptions.RayError as e:
        result.error = error_message(e)
        idle.append(actor)
        batch.finished(result)
        return
    idle.append(actor)
    result.worker, result.seconds = res.get("worker"), res.get("seconds")
    batch.set_sources(str(res.get("worker")), res.get("sources") or {})
    if res["status"] == "ok":
        write_atomically(batch.output_path(job), lambda tmp: tmp.write_bytes(res["data"]))
        result.status, result.frames, result.fps = "ok", res["frames"], res["fps"]
        result.source_reused = res.get("source_reused")
    elif res["status"] == "cancelled":
        result.status = "pending"
    else:
        result.error, result.details = res.get("error"), res.get("details")
    batch.finished(result)
