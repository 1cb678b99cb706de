"""Many clips from one job file: ``python -m ditto_core batch JOBS --out DIR`` and its library.

* :mod:`.jobs`: the job file (JSON Lines or CSV; one ``generate`` job per line, fields named as ``generate``'s flags)
  read and checked whole before any model loads -> immutable :class:`Job` objects; :class:`RunSettings` (models,
  device, precision, renderer, batch size: the same for every job).
* :mod:`.runner`: :func:`run_batch`, in this process on one device: the models load once, each distinct source is
  registered once (:class:`SourceCache`), a failing job is recorded and the others run, existing outputs are skipped
  unless ``force``, ``summary.json`` is rewritten after every job.
* :mod:`.ray_runner`: :func:`run_batch_ray`, the same jobs, outputs and summary on a Ray cluster (one actor per GPU
  or CPU slot; ``ray`` imported only there).
* :mod:`.cli`: the ``batch`` command.

Example::

    from ditto_core.batch import RunSettings, read_jobs, run_batch
    settings = RunSettings(models="models/ditto-talkinghead", device="cuda", precision="fp16")
    jobs = read_jobs("jobs.jsonl", "out", settings)     # JobFileError naming the line and field
    report = run_batch(jobs, "out", settings)           # out/summary.json; report.failed
"""

from .jobs import JOB_FIELDS, Job, JobFileError, RunSettings, read_jobs
from .ray_runner import run_batch_ray
from .runner import SUMMARY_NAME, BatchReport, JobResult, SourceCache, run_batch

__all__ = [
    "JOB_FIELDS",
    "SUMMARY_NAME",
    "BatchReport",
    "Job",
    "JobFileError",
    "JobResult",
    "RunSettings",
    "SourceCache",
    "read_jobs",
    "run_batch",
    "run_batch_ray",
]
