"""``python -m ditto_core batch JOBS --out DIR``: many ``generate`` jobs from one job file, the models loaded once,
each portrait registered once; in this process, or on a Ray cluster with ``--ray``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..cli_options import add_batch_size_argument, add_models_arguments, add_renderer_argument
from ..render.renderer import SPEED_OPTIONS
from ..validate import check_int, renamed
from .jobs import JOB_FIELDS, RunSettings, read_jobs
from .runner import DEFAULT_MAX_SOURCES, SUMMARY_NAME, BatchReport

__all__ = ["add_batch_command", "run_batch_command"]

#: exit code when every job ran but some failed (2 is a refused job file, flag or model, as elsewhere)
EXIT_JOBS_FAILED = 1


def add_batch_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="many clips from a job file (JSON Lines or CSV): models loaded once, each portrait registered once",
        description="Run one generate job per line of JOBS (JSON Lines, or CSV when it ends in .csv) and write the "
        "videos and summary.json into DIR. Every line is checked before any model loads; a failing job is recorded "
        "and the others run; a rerun skips the jobs whose output exists (unless --force). Fields: "
        + ", ".join(JOB_FIELDS) + " (generate's flags with underscores; see docs/batch-jobs.md). Relative input "
        "paths are relative to the job file's folder.",
        epilog="Exit code: 0 when every job is done (or skipped), 1 when some failed (see DIR/summary.json), 2 when "
        "the job file, a flag or the models are refused (nothing is run), 130/143 when stopped by Ctrl-C/SIGTERM.",
    )
    p.add_argument("jobs", metavar="JOBS", help="job file: one JSON object per line (.jsonl), or CSV with a header "
                   "row (.csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing): the videos and "
                   f"{SUMMARY_NAME}")
    add_models_arguments(p)
    add_batch_size_argument(p)
    add_renderer_argument(p)
    p.add_argument("--force", action="store_true", help="run every job, also those whose output exists (default: "
                   "skip them, so a rerun resumes)")
    p.add_argument("--max-sources", type=int, default=DEFAULT_MAX_SOURCES,
                   help=f"registered sources kept in memory per worker (default {DEFAULT_MAX_SOURCES}; least recently "
                   "used dropped)")
    p.add_argument("--dry-run", action="store_true", help="check the job file and list what would run; load nothing")
    g = p.add_argument_group("Ray", "the same jobs on a Ray cluster (pip install \".[ray]\"): one worker per GPU, or "
                             "per --cpus-per-worker CPUs; input files and the models folder must be at the same paths "
                             "on every node")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: ADDRESS of a cluster (auto, ray://HOST:10001, HOST:6379), or none for a local "
                   "Ray instance (put JOBS before --ray, or write --ray=ADDRESS)")
    g.add_argument("--workers", type=int, help="at most this many workers (default: as many as the cluster holds, at "
                   "most one per job)")
    g.add_argument("--cpus-per-worker", type=int, help="CPUs per worker: its slot where there is no GPU (default 4, "
                   "at most a node's CPUs); with GPUs, the CPUs beside each GPU (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no final line")
    p.set_defaults(func=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    for flag, value, lo in (("--max-sources", args.max_sources, 1), ("--workers", args.workers, 1),
                            ("--cpus-per-worker", args.cpus_per_worker, 1)):
        check_int(flag, value, lo, 1_000_000, optional=True)
    if args.ray is None and (args.workers is not None or args.cpus_per_worker is not None):
        raise ValueError("--workers and --cpus-per-worker are settings of --ray")
    with renamed({"download": "--no-download"}):
        settings = RunSettings(models=args.models, device=args.device, precision=args.precision,
                               renderer=args.renderer, batch_size=args.batch_size, download=not args.no_download,
                               **{name: getattr(args, name) for name in SPEED_OPTIONS})
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {args.out!r}: not a folder")
    jobs = read_jobs(args.jobs, out_dir, settings)  # every line checked before anything loads
    if args.ray is not None:
        from . import ray_runner

        ray_runner.import_ray()  # a missing package is refused before anything runs
    if args.dry_run:
        for job in jobs:
            state = "exists, skipped" if (out_dir / job.out).exists() and not args.force else "to run"
            print(f"line {job.line}: {out_dir / job.out} ({state})")
        print(f"{len(jobs)} jobs checked; nothing was run")
        return 0
    common = dict(force=args.force, progress=not args.quiet, max_sources=args.max_sources, jobs_file=args.jobs)
    try:
        if args.ray is not None:
            report = ray_runner.run_batch_ray(jobs, out_dir, settings, address=args.ray or None, workers=args.workers,
                                              cpus_per_worker=args.cpus_per_worker, **common)
        else:
            from .runner import run_batch

            report = run_batch(jobs, out_dir, settings, **common)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM / SIGHUP turned into an exception by main()
        signum = getattr(e, "signum", None)
        what = "interrupted" if signum is None else f"stopped by {signal.Signals(signum).name}"
        print(f"ditto batch: {what}; the job that was running left nothing; finished outputs are kept and "
              f"{out_dir / SUMMARY_NAME} lists them (rerun to resume)", file=sys.stderr)
        return 130 if signum is None else 128 + int(signum)
    return _report(report, args.quiet)


def _report(report: BatchReport, quiet: bool) -> int:
    if not quiet:
        print(f"batch: {report.describe()}")
    if report.failed:
        failed = [r for r in report.results if r.status == "failed"]
        print(f"ditto batch: {len(failed)} of {len(report.results)} jobs failed (see {report.summary_path}):",
              file=sys.stderr)
        for r in failed[:20]:
            print(f"  line {r.line} ({r.output}): {(r.error or '').splitlines()[0] if r.error else ''}",
                  file=sys.stderr)
        return EXIT_JOBS_FAILED
    return 0
