"""The batch runner against separate ``generate`` processes: N jobs sharing one portrait, in one run.

    python benchmarks/batch_speed.py --models /tmp/kit/ditto-talkinghead --renderer standin   # the CPU setting of RESULTS.md
    python benchmarks/batch_speed.py --models DIR --device cuda --precision fp16 --jobs 8 --seconds 4 --ray

The inputs are made here: one portrait-like picture of ``--size`` pixels and ``--jobs`` different speech-like clips of
``--seconds``. Then, timed by the wall clock, each a fresh process as a user runs them:

* **separate**: ``python -m ditto_core generate --source portrait.png --audio speech_i.wav --out ...`` once per job,
  one after another: every job starts Python, imports torch, loads the models and registers the portrait;
* **batch**: ``python -m ditto_core batch jobs.jsonl --out DIR``: one process, the models loaded once, the portrait
  registered once, one renderer for every job;
* **batch --ray** (with ``--ray``; needs ray): the same command with ``--ray --workers W``, a local Ray instance.

Each row gives the wall time and the CPU time (user + system) of its process(es): on a machine shared with other
work the wall clock also counts the others' time, the CPU time much less so (the Ray workers' CPU time is not counted:
they are not the command's children). All runs have the same flags (device, precision, batch size, DiT steps, seed), and the batch's outputs are checked to
have the separate runs' frame counts. ``--renderer standin`` replaces warp + decode with the benchmarks'
shape-identical stand-in (``bench.StandinRenderer``) in every process (a wrapper process imports this script, patches
``DittoModels.new_renderer`` and calls the command line's ``main``): on a CPU the real networks take seconds per
512x512 frame, which the batch runner does not change, and would hide what it does change (start-up, model loading,
registration). ``--renderer real`` (default) runs ``python -m ditto_core`` itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (REPO_ROOT, describe_environment, ensure_repo_on_path, fmt_num, format_table, load_average,
                    machine_info, median, now_iso, report, versions)

ensure_repo_on_path()

from ditto_core.render.renderer import PRECISIONS  # noqa: E402 (the repository is on the path now)

SCHEMA = "ditto-bench-batch/1"
HEADERS = ("runner", "processes", "jobs", "frames", "wall s", "wall s/job", "wall: separate / this", "CPU s",
           "CPU: separate / this")


def _standin(models: Any) -> None:
    """Warp + decode replaced by the stand-in (also run on each Ray worker: this script is pickled by value there)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import bench

    bench.use_standin_renderer(models)


def child(argv: list[str]) -> int:
    """``--child RENDERER -- <ditto argv>``: the command line in this process, with the stand-in renderer when
    RENDERER is "standin" (for the Ray workers too)."""
    renderer, rest = argv[0], argv[argv.index("--") + 1:]
    if renderer == "standin":
        import functools

        from ditto_core.batch import ray_runner
        from ditto_core.runtime import DittoModels

        DittoModels.new_renderer = lambda self, *a, **k: _standin_renderer_for(self)
        ray_runner.run_batch_ray = functools.partial(ray_runner.run_batch_ray, worker_setup=_standin)
    from ditto_core.__main__ import main

    return main(rest)


def _standin_renderer_for(models: Any) -> Any:
    import bench

    return bench.StandinRenderer(models.device, 4)


def _command(args: argparse.Namespace, ditto_argv: list[str]) -> list[str]:
    if args.renderer == "standin":
        return [sys.executable, str(Path(__file__).resolve()), "--child", "standin", "--", *ditto_argv]
    return [sys.executable, "-m", "ditto_core", *ditto_argv]


def _children_cpu_s() -> float | None:
    """CPU seconds (user + system) of this process's waited-for children so far (None where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(cmd: list[str], what: str) -> tuple[float, float | None]:
    """Run ``cmd`` -> (wall seconds, CPU seconds of the process: a fair figure on a machine shared with other work,
    where the wall clock also counts the others' time)."""
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    wall = time.perf_counter() - t0
    cpu1 = _children_cpu_s()
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, None if cpu0 is None or cpu1 is None else cpu1 - cpu0


def make_inputs(folder: Path, jobs: int, seconds: float, size: int) -> tuple[Path, list[Path]]:
    """One portrait and ``jobs`` different speech clips (16-bit wav at 16 kHz) under ``folder``."""
    import wave

    import cv2
    import numpy as np

    import bench

    portrait = folder / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(bench.make_portrait(size), cv2.COLOR_RGB2BGR))
    clips = []
    for i in range(jobs):
        path = folder / f"speech_{i}.wav"
        pcm = (np.clip(bench.make_speech(seconds, seed=i), -1, 1) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(bench.SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
        clips.append(path)
    return portrait, clips


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    from ditto_core.video import probe_video

    start_load = load_average()
    with tempfile.TemporaryDirectory(prefix="ditto-batch-speed-") as tmp_name:
        tmp = Path(tmp_name)
        models = args.models
        if models is None:
            from ditto_core.testing.kit import make_synthetic_kit

            print(f"[batch_speed] building the synthetic kit in {tmp}", file=sys.stderr, flush=True)
            models = str(make_synthetic_kit(tmp / "ditto-talkinghead", salt="bench"))
        portrait, clips = make_inputs(tmp, args.jobs, args.seconds, args.size)
        run_flags = ["--models", models, "--no-download", "--device", args.device, "--precision", args.precision,
                     "--batch-size", str(args.batch_size), "-q"]
        job_flags = ["--seed", "0"] + ([] if args.steps is None else ["--steps", str(args.steps)])
        jobs_file = tmp / "jobs.jsonl"
        jobs_file.write_text("".join(json.dumps({"source": str(portrait), "audio": str(c), "seed": 0,
                                                 **({} if args.steps is None else {"steps": args.steps}),
                                                 "out": f"clip_{i}.mp4"}) + "\n" for i, c in enumerate(clips)))
        variants = [("batch", "`batch` (in-process)", [])]
        if args.ray:
            variants.append(("batch_ray", f"`batch --ray` (local, {args.workers} worker(s))",
                             ["--ray", "--workers", str(args.workers)]
                             + ([] if args.cpus_per_worker is None else ["--cpus-per-worker",
                                                                         str(args.cpus_per_worker)])))
        samples: dict[str, list[dict[str, Any]]] = {"separate": [], **{name: [] for name, _, _ in variants}}
        frames: list[int] = []
        for rep in range(args.repeats):  # the runners alternate: a load burst on a shared machine hits one sample
            sep_dir = tmp / f"separate_{rep}"
            sep_dir.mkdir()
            walls, cpus = [], []
            for i, clip in enumerate(clips):
                print(f"[batch_speed] repeat {rep + 1}/{args.repeats}: separate generate {i + 1}/{len(clips)}",
                      file=sys.stderr, flush=True)
                wall, cpu = _run(_command(args, ["generate", "--source", str(portrait), "--audio", str(clip), "--out",
                                                 str(sep_dir / f"clip_{i}.mp4"), *run_flags, *job_flags]),
                                 f"generate job {i}")
                walls.append(wall)
                cpus.append(cpu)
            frames = [probe_video(sep_dir / f"clip_{i}.mp4")["frames"] for i in range(len(clips))]
            samples["separate"].append({"wall_s": sum(walls), "cpu_s": None if None in cpus else sum(cpus),
                                        "job_walls_s": walls})
            for name, label, extra in variants:
                out = tmp / f"{name}_{rep}"
                print(f"[batch_speed] repeat {rep + 1}/{args.repeats}: {label}", file=sys.stderr, flush=True)
                wall, cpu = _run(_command(args, ["batch", str(jobs_file), "--out", str(out), *run_flags, *extra]),
                                 label)
                if extra:
                    cpu = None  # the Ray workers are not this process's children: their CPU time is not counted
                summary = json.loads((out / "summary.json").read_text())
                got = [j["frames"] for j in summary["jobs"]]
                if got != frames or summary["counts"]["ok"] != len(clips):
                    raise SystemExit(f"{label}: frames {got} (separate runs: {frames}), counts {summary['counts']}")
                samples[name].append({"wall_s": wall, "cpu_s": cpu, "sources": summary["sources"],
                                      "job_seconds": [j["seconds"] for j in summary["jobs"]]})
        labels = {"separate": "separate `generate` processes", **{name: label for name, label, _ in variants}}
        rows = []
        for name, runs in samples.items():
            wall = median([r["wall_s"] for r in runs])
            cpus = [r["cpu_s"] for r in runs]
            typical = min(runs, key=lambda r: abs(r["wall_s"] - wall))  # the per-job figures of the median run
            row = {"name": name, "runner": labels[name], "processes": len(clips) if name == "separate" else 1,
                   "jobs": len(clips), "frames": sum(frames), "wall_s": wall,
                   "cpu_s": None if None in cpus else median(cpus), "samples": runs}
            row.update({k: v for k, v in typical.items() if k not in ("wall_s", "cpu_s")})
            rows.append(row)
    separate, separate_cpu = rows[0]["wall_s"], rows[0]["cpu_s"]
    for r in rows:
        r["ratio"] = separate / r["wall_s"]
        r["cpu_ratio"] = None if separate_cpu is None or not r["cpu_s"] else separate_cpu / r["cpu_s"]
    return {"schema": SCHEMA, "date": now_iso(), "machine": {**machine_info(args.device), "load_average": start_load},
            "versions": versions(), "options": {k: v for k, v in vars(args).items() if k != "child"},
            "inputs": {"jobs": args.jobs, "seconds": args.seconds, "size": args.size, "models": models},
            "rows": rows, "load_average_end": load_average()}


def format_result(result: dict[str, Any]) -> str:
    o = result["options"]
    head = [f"ditto batch vs separate generate processes, {result['date']}",
            describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
            f"{o['jobs']} jobs of {o['seconds']:g} s speech sharing one {o['size']}px portrait; device {o['device']}, "
            f"{o['precision']}, batch {o['batch_size']}, DiT steps {o['steps'] or 'release'}, renderer {o['renderer']}; "
            f"median of {o['repeats']} run(s) each, the runners alternating",
            ""]
    rows = [(r["runner"], str(r["processes"]), str(r["jobs"]), str(r["frames"]), fmt_num(r["wall_s"]),
             fmt_num(r["wall_s"] / r["jobs"]), f"{r['ratio']:.2f}x", fmt_num(r["cpu_s"]),
             "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}x") for r in result["rows"]]
    lines = []
    for r in result["rows"][1:]:
        js = r["job_seconds"]
        lines.append(f"{r['runner']}: sources registered {r['sources']['registered']}, reused "
                     f"{r['sources']['reused']}; per job {', '.join(fmt_num(s) for s in js)} s (inside the process; "
                     f"the rest of its wall time is start-up and model loading)")
    sep = result["rows"][0]["job_walls_s"]
    lines.append(f"separate: per process {', '.join(fmt_num(s) for s in sep)} s")
    if o["repeats"] > 1:
        lines.append("wall s of each run: " + "; ".join(
            f"{r['name']} " + ", ".join(fmt_num(x["wall_s"]) for x in r["samples"]) for r in result["rows"]))
    lines.append("CPU s: user + system time of the process(es) (not of Ray's workers); on a machine shared with other "
                 "work the wall clock also counts the others' time, the CPU time less so (threads waiting for a busy "
                 "CPU still add some)")
    return "\n".join(head) + format_table(HEADERS, rows) + "\n" + "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python benchmarks/batch_speed.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="models folder (default: a synthetic kit built in a temporary folder)")
    ap.add_argument("--jobs", type=int, default=4, help="jobs, all on one portrait (default 4)")
    ap.add_argument("--seconds", type=float, default=1.0, help="speech per job in seconds (default 1)")
    ap.add_argument("--size", type=int, default=1432, help="portrait side in pixels (the official sample's 1432)")
    ap.add_argument("--steps", type=int, help="DDIM steps of every job (default: the release's 50)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps, auto (default cpu)")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--batch-size", type=int, default=4, help="frames per render call (default 4)")
    ap.add_argument("--renderer", default="real", choices=("real", "standin"),
                    help="real: the models' renderer; standin: warp + decode replaced (see the module doc)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each runner, alternating; the median is reported "
                    "(default 1)")
    ap.add_argument("--ray", action="store_true", help="also time batch --ray on a local Ray instance")
    ap.add_argument("--workers", type=int, default=1, help="Ray workers with --ray (default 1)")
    ap.add_argument("--cpus-per-worker", type=int, help="CPUs per Ray worker with --ray (default: batch's)")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args(argv)
    for name in ("jobs", "size", "batch_size", "workers", "repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.seconds <= 0 or (a.steps is not None and a.steps < 1):
        ap.error("--seconds must be > 0 and --steps >= 1")
    if a.models is not None and not Path(a.models).is_dir():
        ap.error(f"--models {a.models}: no such folder")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    args = parse_args(argv)
    result = run_all(args)
    report(format_result(result), result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
