"""One-command GPU check: every GPU target of the project measured in one run and printed in one table.

Usage (run by hand on a GPU machine; under 8 minutes on one GPU with the defaults)::

    python benchmarks/gpu_check.py                                   # synthetic kit in a temp dir, auto device
    python benchmarks/gpu_check.py --models /path/to/ditto-talkinghead --json gpu.json
    python benchmarks/gpu_check.py --precisions fp16 --batches 8 --time-budget 200
    python benchmarks/gpu_check.py --tiny --device cpu               # the CPU path of the tests (tiny settings)

Rows (each with its target, and OK / MISS / n/a):

* render + paste-back, frames/s, per precision (``--precisions``, fp16 bf16), batch size (``--batches``, 1 4 8), with
  and without CUDA graphs: ``models.new_renderer(config=RendererConfig(precision, batch, cuda_graphs=...))`` then
  the device :class:`ditto_core.render.Compositor` pasting back into the full portrait (one transfer per batch), as
  both modes render. Target: >= 250 frames/s.
* the renderer's speed options, one row each (``--options``, default all of :data:`SPEED_OPTIONS`) at the models'
  precision and the largest batch (``--option-batch``): ``channels_last`` (the decoder in channels-last memory
  format), ``compile`` (``torch.compile`` of warp and decoder; the first, untimed call compiles: CUDA only, on a CPU
  it compiles for minutes), ``tensorrt`` (the TensorRT backend: fp16 engines, grid sampling pinned to fp32, built and
  cached under the models folder on first use, which takes minutes; skipped with the reason where TensorRT cannot
  run). The note of each gives its speed as a ratio to the plain row of the same precision and batch, the number to
  choose defaults from. Target: >= 250 frames/s, as the plain rows.
* one 80-frame DiT window of 10 DDIM steps (classifier-free guidance as one batch of 2 per step), without CUDA
  graphs (``sample_window``, as the library runs it) and with them (one guided denoise step captured once with
  static inputs and replayed by ``ditto_core.sampler.ddim_sample``). Target: <= 10 ms with CUDA graphs.
* offline real-time factor of a ``--seconds`` (15) clip: the whole ``generate()`` job (portrait + audio -> mp4)
  time / audio duration, the release's offline settings (50 DiT steps). Target: <= 0.1 for a 15 s clip.
* online first-frame latency and steady lag: a :class:`ditto_core.runtime.StreamingSession` fed in real time
  (3200-sample pieces every 0.2 s). Latency: from the audio piece that makes frame 0 possible to frame 0 out
  (target <= 250 ms). Steady lag: per frame, the time it comes out minus the time the audio covering it had been
  pushed; the median over the frames after the first DiT window (no target: reported).
* live sessions: ``--live-sessions`` (4) concurrent :class:`ditto_core.live.LiveSession` objects (the live server's
  session code, JPEG encoding on; the release's online settings, ``output="crop"``, no idle, the models' renderer
  in their precision) fed the clip in real time (20 ms pieces), as ``benchmarks/live_latency.py`` runs them in
  process. First-frame latency: the worst session's frame 0 lag (from the audio that made it possible entering the
  pipeline to the frame out; target <= 250 ms); steady lag: the median lag of every session's frames after the first
  DiT window (target <= 200 ms). The targets are for 4 sessions at the release's 10 steps (status n/a otherwise).
  The WebSocket transport's own overhead: ``benchmarks/live_latency.py``.

On a non-CUDA device every CUDA-only row (CUDA graphs, fp16) is reported as skipped with the reason, and the
timings use the wall clock instead of CUDA events. ``--time-budget`` (seconds from the start, 420 by default) skips
the rows that would start after it, with a note; the render rows run last, so the budget cuts them first.
``--renderer standin`` replaces warp + decode with the benchmarks' stand-in (``bench.StandinRenderer``, a cheap
shape-identical image per frame) in the models the script loads: every row still runs, but the renderer's figures
mean nothing; the tests use it to check the script's own path in seconds per frame less. ``--tiny`` is the CPU test mode: a 256 px portrait, a 0.08 s clip (2 frames), batch 1, fp32 only, 1 DDIM step, no warm-up, one
repeat, one live session. ``--json PATH`` writes the figures (schema ``ditto-gpu-check/1``). The exit status is 0
when targets are missed (the script measures, it does not judge); 1 only when a row raised an error.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import STANDIN, _ensure_kit, make_portrait, make_speech, use_standin_renderer
from common import (
    describe_environment,
    ensure_repo_on_path,
    fmt_num,
    format_table,
    load_average,
    machine_info,
    measure,
    median,
    now_iso,
    report,
    versions,
)

ensure_repo_on_path()

import numpy as np
import torch

from ditto_core.render import PRECISIONS

SCHEMA = "ditto-gpu-check/1"
SAMPLE_RATE = 16000
#: samples of audio per video frame (16 kHz, 25 fps)
FRAME_SAMPLES = SAMPLE_RATE // 25
#: the real-time feed of the online rows: pieces of this many samples, one every PIECE / 16000 s
PIECE = 3200

# the project's GPU targets
RENDER_FPS_TARGET = 250.0
DIT_MS_TARGET = 10.0
DIT_TARGET_STEPS = 10
OFFLINE_RTF_TARGET = 0.1
OFFLINE_TARGET_SECONDS = 15.0
LATENCY_MS_TARGET = 250.0
LIVE_FIRST_FRAME_MS_TARGET = 250.0
LIVE_LAG_MS_TARGET = 200.0
LIVE_SESSIONS_TARGET = 4

#: the kinds of rows (``check`` in the JSON); every run has rows of each
CHECKS = ("render", "render_option", "dit", "dit_graphs", "offline_rtf", "online_latency", "online_lag", "live_latency", "live_lag")
ROW_KEYS = ("check", "name", "value", "unit", "target", "ok", "note", "skipped", "error", "timer", "samples_ms",
            "params")

#: the renderer's speed options the check measures, each alone on the plain renderer (CUDA graphs have their own rows)
SPEED_OPTIONS = ("channels_last", "compile", "tensorrt")

LogFn = Callable[[str], None]


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class GpuCheckOptions:
    """What the check runs (see ``--help``). ``job_steps`` None: the release's DiT steps (50 offline, 10 online);
    ``render_frames``: frames per timed render run (rounded up to whole batches); ``live_sessions``: concurrent
    sessions of the live rows."""

    models: str | None = None
    device: str = "auto"
    seconds: float = 15.0
    batches: tuple[int, ...] = (1, 4, 8)
    precisions: tuple[str, ...] = ("fp16", "bf16")
    tiny: bool = False
    time_budget: float = 420.0
    size: int = 1432
    render_frames: int = 48
    repeats: int = 3
    warmup: int = 1
    dit_steps: int = DIT_TARGET_STEPS
    job_steps: int | None = None
    seed: int = 0
    threads: int | None = None
    salt: str = "bench"
    live_sessions: int = LIVE_SESSIONS_TARGET
    options: tuple[str, ...] = SPEED_OPTIONS
    option_batch: int | None = None
    renderer: str = "real"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"seconds: expected a clip length > 0, got {self.seconds}")
        if not self.batches or any(int(b) < 1 for b in self.batches):
            raise ValueError(f"batches: expected batch sizes >= 1, got {list(self.batches)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise ValueError(f"precisions: expected some of {PRECISIONS}, got {list(self.precisions)}")
        if not (math.isfinite(self.time_budget) and self.time_budget >= 0):
            raise ValueError(f"time_budget: expected seconds >= 0, got {self.time_budget}")
        if self.size < 64:
            raise ValueError(f"size: expected a portrait side of at least 64 pixels, got {self.size}")
        if self.render_frames < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"render_frames >= 1, repeats >= 1 and warmup >= 0 expected, got {self.render_frames}, "
                             f"{self.repeats}, {self.warmup}")
        if not 1 <= self.dit_steps <= 1000 or (self.job_steps is not None and not 1 <= self.job_steps <= 1000):
            raise ValueError(f"dit_steps and job_steps: expected 1..1000, got {self.dit_steps}, {self.job_steps}")
        if not 1 <= self.live_sessions <= 64:
            raise ValueError(f"live_sessions: expected 1..64, got {self.live_sessions}")
        if self.renderer not in ("real", STANDIN):
            raise ValueError(f"renderer: expected 'real' or {STANDIN!r}, got {self.renderer!r}")
        bad = [o for o in self.options if o not in SPEED_OPTIONS]
        if bad:
            raise ValueError(f"options: expected some of {SPEED_OPTIONS}, got {list(self.options)}")
        if self.option_batch is not None and self.option_batch < 1:
            raise ValueError(f"option_batch: expected a batch size >= 1, got {self.option_batch}")
        if self.models is not None and not Path(self.models).is_dir():
            raise ValueError(f"models: {self.models} is not a folder")

    def tiny_settings(self) -> GpuCheckOptions:
        """These options in the CPU test mode (``--tiny``): 256 px, 0.08 s (2 frames), batch 1, fp32, 1 step, 1 repeat, no
        warm-up, one frame per render run, one live session (the speed options as given, at batch 1)."""
        return replace(self, tiny=True, size=256, seconds=0.08, batches=(1,), precisions=("fp32",), dit_steps=1,
                       job_steps=1, warmup=0, repeats=1, render_frames=1, live_sessions=1, option_batch=1)

    @property
    def speed_option_batch(self) -> int:
        """The batch size of the speed-option rows: ``option_batch``, else the largest of ``batches``."""
        return int(self.option_batch or max(self.batches))


# ------------------------------------------------------------------------------------------- DiT graphs


class GraphedGuidedDenoiser:
    """One guided denoise step of one 80-frame window as a CUDA graph (:class:`ditto_core.render.CudaGraphCall`, the
    renderer's capture): ``den(x, t)`` (a ``ddim_sample`` denoise function) copies ``x`` and the step into the graph's
    static buffers, replays it and returns a copy of the output; :meth:`set_window` gives it another window's
    conditions. The captured step is the library's batched ``MotionDecoder.guided``, which reads nothing back from
    the device. Build and call it under ``torch.inference_mode()``."""

    def __init__(self, model: torch.nn.Module, kp_cond: torch.Tensor, cond: torch.Tensor, guidance: float,
                 warmup: int = 2) -> None:
        from ditto_core.render import CudaGraphCall

        p = next(model.parameters())
        device, dtype = p.device, p.dtype
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the DiT is on {device}")
        self.cond_frame = kp_cond.to(device, dtype).reshape(1, -1)
        self.cond = cond.to(device, dtype)[None]
        x = torch.zeros(1, cond.shape[0], self.cond_frame.shape[1], device=device, dtype=dtype)
        t = torch.zeros(1, dtype=torch.long, device=device)
        g = float(guidance)
        self.call = CudaGraphCall(lambda x, t, cf, c: model.guided(x, cf, c, t, g, batched=True),
                                  (x, t, self.cond_frame, self.cond), warmup)
        self.t = t

    def set_window(self, kp_cond: torch.Tensor, cond: torch.Tensor) -> None:
        self.cond_frame = kp_cond.to(self.cond_frame.device, self.cond_frame.dtype).reshape(1, -1)
        self.cond = cond.to(self.cond.device, self.cond.dtype)[None]

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.call(x, self.t.fill_(int(t)), self.cond_frame, self.cond)


def device_schedule(device: torch.device) -> Any:
    """A :class:`ditto_core.sampler.CosineSchedule` whose tables live on ``device``: the DDIM coefficients of each
    step are then read on the device (no host-to-device copy, so no synchronisation, between two replays)."""
    from ditto_core.sampler import CosineSchedule

    s = CosineSchedule()
    for name in ("betas", "alphas_cumprod", "sqrt_recip1m_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"):
        setattr(s, name, getattr(s, name).to(device))
    return s


# ------------------------------------------------------------------------------------------------- rows


def _new_row(check: str, name: str, unit: str, target: str | None = None, **params: Any) -> dict[str, Any]:
    return {"check": check, "name": name, "value": None, "unit": unit, "target": target, "ok": None, "note": "",
            "skipped": False, "error": False, "timer": None, "samples_ms": [], "params": params}


def _skip(row: dict[str, Any], why: str) -> None:
    row.update(skipped=True, note=why, value=None, ok=None)


def _judge(row: dict[str, Any], value: float | None, comparable: bool = True, why_not: str = "") -> None:
    """Set the row's value and, when it has a target and the measurement is comparable with it, ``ok``."""
    row["value"] = value
    tgt = row["target"]
    if value is None or tgt is None:
        return
    if not comparable:
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"status n/a: {why_not}"
        return
    op, num = tgt.split()
    row["ok"] = bool(value >= float(num)) if op == ">=" else bool(value <= float(num))


def status(row: dict[str, Any]) -> str:
    if row["error"]:
        return "ERROR"
    if row["skipped"]:
        return "skipped"
    if row["ok"] is None:
        return "n/a"
    return "OK" if row["ok"] else "MISS"


def _render_name(prec: str, batch: int, graphs: bool) -> str:
    return f"render + paste-back, {prec}, batch {batch}{', CUDA graphs' if graphs else ''}"


_OPTION_LABELS = {"channels_last": "channels-last decoder", "compile": "torch.compile", "tensorrt": "TensorRT"}


def _option_name(prec: str, batch: int, option: str) -> str:
    return f"{_render_name(prec, batch, False)}, {_OPTION_LABELS[option]}"


def _dit_name(steps: int, graphs: bool) -> str:
    return f"DiT window (80 frames, {steps} step{'' if steps == 1 else 's'}){', CUDA graphs' if graphs else ''}"


def _plan_rows(opts: GpuCheckOptions, job_precision: str | None = None) -> list[dict[str, Any]]:
    """Every row, in table order, before anything ran. ``job_precision``: the models' precision, that of the
    speed-option rows (default: the first of ``opts.precisions``)."""
    rows = []
    for prec in opts.precisions:
        for b in opts.batches:
            for g in (False, True):
                rows.append(_new_row("render", _render_name(prec, int(b), g), "frames/s",
                                     f">= {RENDER_FPS_TARGET:g}", precision=prec, batch=int(b), cuda_graphs=g))
    prec, b = job_precision or opts.precisions[0], opts.speed_option_batch
    for option in opts.options:
        rows.append(_new_row("render_option", _option_name(prec, b, option), "frames/s", f">= {RENDER_FPS_TARGET:g}",
                             precision=prec, batch=b, option=option))
    rows.append(_new_row("dit", _dit_name(opts.dit_steps, False), "ms", None, steps=opts.dit_steps, cuda_graphs=False))
    rows.append(_new_row("dit_graphs", _dit_name(opts.dit_steps, True), "ms", f"<= {DIT_MS_TARGET:g}",
                         steps=opts.dit_steps, cuda_graphs=True))
    rows.append(_new_row("offline_rtf", f"offline real-time factor ({opts.seconds:g} s clip)", "x",
                         f"<= {OFFLINE_RTF_TARGET:g}", seconds=opts.seconds))
    rows.append(_new_row("online_latency", "online first-frame latency", "ms", f"<= {LATENCY_MS_TARGET:g}"))
    rows.append(_new_row("online_lag", "online steady lag (median)", "ms", None))
    n = opts.live_sessions
    ns = f"{n} session{'' if n == 1 else 's'}"
    rows.append(_new_row("live_latency", f"live first-frame latency ({ns}, online, worst)", "ms",
                         f"<= {LIVE_FIRST_FRAME_MS_TARGET:g}", sessions=n))
    rows.append(_new_row("live_lag", f"live steady lag ({ns}, online, median)", "ms", f"<= {LIVE_LAG_MS_TARGET:g}",
                         sessions=n))
    return rows


# ------------------------------------------------------------------------------------------------- run


def _cuda_only(row: dict[str, Any], dev: torch.device) -> str | None:
    """Why ``row`` cannot run on ``dev`` (None when it can)."""
    p = row["params"]
    if p.get("cuda_graphs") and dev.type != "cuda":
        return f"CUDA graphs need a CUDA device (this run: {dev.type})"
    if p.get("precision") == "fp16" and dev.type == "cpu":
        return "fp16 autocast is a CUDA setting (emulated, not measured, on the CPU)"
    if p.get("option") == "compile" and dev.type != "cuda":
        return f"torch.compile is measured on CUDA only (this run: {dev.type}, where it compiles for minutes)"
    if p.get("option") == "tensorrt":
        from ditto_core.render.tensorrt import tensorrt_available

        ok, why = tensorrt_available(dev)
        if not ok:
            return f"TensorRT cannot run here: {why}"
    return None


def _job_precision(opts: GpuCheckOptions, dev: torch.device) -> str:
    """The precision the models load with (source extractors, the offline job's and the stream's renderer): the
    first of ``--precisions`` this device runs (fp16 is not run on the CPU)."""
    for p in opts.precisions:
        if not (p == "fp16" and dev.type == "cpu"):
            return p
    return "fp32"


def run_check(opts: GpuCheckOptions, models: Any = None, log: LogFn | None = None,
              t0: float | None = None) -> dict[str, Any]:
    """Run every row -> a JSON-able dict (schema :data:`SCHEMA`). ``models``: already loaded
    :class:`ditto_core.runtime.DittoModels` (their device and precision are used); default: loaded from
    ``opts.models`` or a synthetic kit built in a temporary folder (``opts.renderer`` "standin" applies to those only).
    ``t0``: the ``time.perf_counter()`` the time
    budget counts from (default: now)."""
    from ditto_core.runtime import DittoModels, resolve_device

    say = log or (lambda _m: None)
    start = time.perf_counter() if t0 is None else t0
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    setup: dict[str, Any] = {"kit_build_s": 0.0, "load_models_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="ditto-gpu-check-") as tmp_s:
        tmp = Path(tmp_s)
        if models is None:
            dev = resolve_device(opts.device)
            root, setup["kit_build_s"] = _ensure_kit(opts, tmp, say)
            prec = _job_precision(opts, dev)
            say(f"loading the models from {root} ({dev}, {prec})")
            t = time.perf_counter()
            models = DittoModels.load(root, device=dev, precision=prec, download=False, progress=False)
            if opts.renderer == STANDIN:
                use_standin_renderer(models)
            setup["load_models_s"] = time.perf_counter() - t
        dev = models.device
        machine = machine_info(dev)  # the load average at the start
        date = now_iso()
        rows, setup["prepare_s"] = _run_rows(opts, models, tmp, start, say)
    return {
        "schema": SCHEMA,
        "date": date,
        "machine": machine,
        "versions": versions(),
        "options": {**asdict(opts), "device": str(dev), "models": str(models.models_dir),
                    "job_precision": models.precision},
        "setup": setup,
        "rows": rows,
        "wall_s": time.perf_counter() - start,
        "load_average_end": load_average(),
    }


def _run_rows(opts: GpuCheckOptions, models: Any, tmp: Path, start: float, say: LogFn
              ) -> tuple[list[dict[str, Any]], float]:
    from ditto_core.runtime import KeypointPlanner, extract_audio_features, extract_source, source_motion_vector

    dev = models.device
    rows = _plan_rows(opts, models.precision)
    t_prep = time.perf_counter()
    image = make_portrait(opts.size, opts.seed)
    wave = make_speech(opts.seconds, SAMPLE_RATE, opts.seed)
    say(f"inputs: portrait {opts.size}x{opts.size}, {opts.seconds:g} s of speech; registering the source")
    src = extract_source(models, image, is_image=True)
    feats = extract_audio_features(models, wave, SAMPLE_RATE)
    # keypoints for the render rows: the source's own motion, a little perturbed, through the planner
    g = torch.Generator().manual_seed(opts.seed)
    count = max(int(b) for b in opts.batches)
    motion = source_motion_vector(src)[None].repeat(count, 1) + 0.01 * torch.randn(count, 265, generator=g)
    kp = KeypointPlanner(models, src, seed=opts.seed).plan(motion)
    prep_s = time.perf_counter() - t_prep

    by_check: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_check.setdefault(r["check"], []).append(r)

    def guarded(group: list[dict[str, Any]], fn: Callable[[], None]) -> None:
        """Run ``fn`` (which fills ``group``) unless the device cannot or the budget is spent; errors go to the rows."""
        for r in group:
            why = _cuda_only(r, dev)
            if why:
                _skip(r, why)
        live = [r for r in group if not r["skipped"]]
        if not live:
            return
        elapsed = time.perf_counter() - start
        if elapsed > opts.time_budget:
            for r in live:
                _skip(r, f"time budget spent ({elapsed:.0f} s of {opts.time_budget:g} s) before this row")
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one failing row must not lose the others
            traceback.print_exc(file=sys.stderr)
            for r in group:
                if r["value"] is None and not r["skipped"]:
                    r.update(error=True, ok=None, note=f"error: {type(e).__name__}: {e}")
            if dev.type == "cuda":
                torch.cuda.empty_cache()

    if opts.warmup and dev.type == "cuda":  # CUDA context, cuBLAS / cuDNN handles: before any timed row
        say("warm-up render")
        with torch.inference_mode():
            r = models.new_renderer(1)
            r.render(src.f_s[:1], kp.x_s[:1], kp.x_d[:1])
            del r

    # DiT rows first, then the online, live and offline rows, the render rows last (the time budget cuts those first)
    dit_rows = by_check["dit"] + by_check["dit_graphs"]
    guarded(dit_rows, lambda: _dit_rows(opts, models, src, feats, dit_rows, say))
    online = by_check["online_latency"] + by_check["online_lag"]
    guarded(online, lambda: _online_rows(opts, models, src, wave, online, say))
    live = by_check["live_latency"] + by_check["live_lag"]
    guarded(live, lambda: _live_rows(opts, models, src, wave, live, say))
    guarded(by_check["offline_rtf"], lambda: _offline_row(opts, models, image, wave, tmp, by_check["offline_rtf"][0],
                                                            say))
    for row in by_check["render"] + by_check["render_option"]:
        guarded([row], lambda row=row: _render_row(opts, models, src, kp, row, say))
        if dev.type == "cuda":  # the row's renderer (and its graphs) is gone: give its memory back
            torch.cuda.empty_cache()
    _compare_options(by_check["render"], by_check["render_option"])
    return rows, prep_s


def _option_renderer(models: Any, config: Any, option: str) -> Any:
    """The renderer of a speed-option row: the PyTorch one with the option on, or the TensorRT backend (raises
    :class:`ditto_core.render.BackendUnavailable` with the reason when it cannot run or its engines do not build)."""
    if option == "tensorrt":
        from ditto_core.render.tensorrt import tensorrt_renderer

        return tensorrt_renderer(models.warp, models.decoder, models.device, config, cache_dir=models.models_dir)
    return models.new_renderer(config=replace(config, **{option: True}), backend="pytorch")


def _compare_options(plain_rows: list[dict[str, Any]], option_rows: list[dict[str, Any]]) -> None:
    """Each measured speed-option row's note gets its ratio to the plain row of the same precision and batch."""
    plain = {(r["params"]["precision"], r["params"]["batch"]): r for r in plain_rows
             if not r["params"]["cuda_graphs"]}
    for r in option_rows:
        if r["value"] is None:
            continue
        base = plain.get((r["params"]["precision"], r["params"]["batch"]))
        if base is None or base["value"] is None:
            ratio = "no plain row of this precision and batch was measured to compare with"
        else:
            ratio = f"{r['value'] / base['value']:.2f}x the plain row's frames/s"
        r["note"] = f"{ratio}; {r['note']}"


def _render_row(opts: GpuCheckOptions, models: Any, src: Any, kp: Any, row: dict[str, Any], say: LogFn) -> None:
    from ditto_core.render import RendererConfig
    from ditto_core.runtime import FrameRenderer

    p = row["params"]
    prec, b, graphs, option = p["precision"], p["batch"], p.get("cuda_graphs", False), p.get("option")
    dev = models.device
    say(row["name"])
    config = RendererConfig(prec, b, cuda_graphs=graphs)
    if option is None:
        renderer = models.new_renderer(config=config)
    else:
        from ditto_core.render import BackendUnavailable

        try:
            renderer = _option_renderer(models, config, option)
        except BackendUnavailable as e:
            _skip(row, f"{_OPTION_LABELS[option]} unavailable: {e}")
            return
    # what both modes run per batch: warp + decode, then the device paste-back (one transfer per batch)
    frames = FrameRenderer(src, renderer, "full")
    nb = max(1, math.ceil(opts.render_frames / b))
    total = nb * b
    x_d = kp.x_d[[i % kp.count for i in range(total)]]
    x_s1 = kp.x_s[:1]

    def run() -> None:
        for k in range(nb):
            frames.render(list(range(k * b, (k + 1) * b)), x_s1, x_d[k * b : (k + 1) * b])

    # a graph is captured, a compiled module compiled, on the first call: never timed
    warm = max(opts.warmup, 1) if graphs or option == "compile" else opts.warmup
    samples, timer = measure(run, dev, opts.repeats, warm, cuda_events=False)
    ms = median(samples)
    row.update(timer=timer, samples_ms=[round(s, 3) for s in samples])
    frame = src.frames[0]
    row["note"] = (f"{total} frame{'' if total == 1 else 's'} per run in batches of {b}: render + device paste-back "
                   f"into {frame.shape[1]}x{frame.shape[0]}, one transfer per batch; median of {len(samples)}")
    _judge(row, total / (ms / 1000.0))


def _dit_rows(opts: GpuCheckOptions, models: Any, src: Any, feats: Any, rows: list[dict[str, Any]],
              say: LogFn) -> None:
    from ditto_core.audio2motion import sample_window
    from ditto_core.runtime import motion_conditions, source_motion_vector
    from ditto_core.sampler import CosineSchedule, ddim_sample, draw_eta_noises, draw_normal

    plain, graphed = rows
    dev = models.device
    steps = opts.dit_steps
    cond = motion_conditions(models, src)(feats.features, 0)[:80]
    if cond.shape[0] < 80:
        cond = torch.cat([cond, cond[-1:].expand(80 - cond.shape[0], -1)])
    cond = cond.to(dev)
    kp_cond = source_motion_vector(src).to(dev)
    cfg = models.release.offline.replace(steps=steps)
    g = torch.Generator().manual_seed(opts.seed)
    noises = draw_eta_noises(steps, (80, 265), g, device=dev)
    x_init = draw_normal((80, 265), g, device=dev)
    comparable = steps == DIT_TARGET_STEPS
    why_not = f"the target is for {DIT_TARGET_STEPS} steps, this run: {steps}"

    say(plain["name"])
    out_plain: list[torch.Tensor] = []

    def run_plain() -> None:
        with torch.inference_mode():
            out_plain[:] = [sample_window(models.lmdm, kp_cond, cond, x_init, noises, CosineSchedule(), cfg)]

    samples, timer = measure(run_plain, dev, opts.repeats, opts.warmup, cuda_events=True)
    plain.update(timer=timer, samples_ms=[round(s, 3) for s in samples],
                 note=f"sample_window as the library runs it: {steps} DDIM step{'' if steps == 1 else 's'}, CFG as "
                      f"one batch of 2, schedule on the host; median of {len(samples)}")
    _judge(plain, median(samples))

    if graphed["skipped"]:  # CUDA only
        return
    say(graphed["name"])
    with torch.inference_mode():
        den = GraphedGuidedDenoiser(models.lmdm, kp_cond, cond, cfg.guidance)
        schedule = device_schedule(dev)
    out_graph: list[torch.Tensor] = []

    def run_graphed() -> None:
        with torch.inference_mode():
            den.set_window(kp_cond, cond)
            out_graph[:] = [ddim_sample(den, x_init[None], schedule, steps, noises)[0]]

    samples, timer = measure(run_graphed, dev, opts.repeats, max(opts.warmup, 1), cuda_events=True)
    diff = float((out_graph[0] - out_plain[0]).abs().max()) if out_plain and out_graph else float("nan")
    graphed.update(timer=timer, samples_ms=[round(s, 3) for s in samples],
                   note=f"one guided step captured as a CUDA graph, replayed by ddim_sample (schedule on the device); "
                        f"max |graphed - plain| over the window {diff:.1e}; median of {len(samples)}")
    _judge(graphed, median(samples), comparable, why_not)


def _job_options(opts: GpuCheckOptions, output: str = "full") -> Any:
    from ditto_core.runtime import JobOptions, RenderOptions, SamplingOptions

    return JobOptions(sampling=SamplingOptions(steps=opts.job_steps, seed=opts.seed),
                      render=RenderOptions(batch_size=max(int(b) for b in opts.batches), output=output))


def _offline_row(opts: GpuCheckOptions, models: Any, image: np.ndarray, wave: np.ndarray, tmp: Path,
                 row: dict[str, Any], say: LogFn) -> None:
    from ditto_core.runtime import generate

    jopts = _job_options(opts)
    audio_s = len(wave) / SAMPLE_RATE
    if opts.warmup:
        say("offline job warm-up (1 s clip)")
        generate(models, image, wave[:SAMPLE_RATE], tmp / "warm.mp4", jopts, sample_rate=SAMPLE_RATE)
    say(row["name"])
    out = tmp / "offline.mp4"
    t = time.perf_counter()
    generate(models, image, wave, out, jopts, sample_rate=SAMPLE_RATE)
    wall = time.perf_counter() - t
    if not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"generate wrote no video to {out}")
    steps = opts.job_steps or models.release.offline.steps
    row.update(timer="wall", samples_ms=[round(wall * 1000.0, 3)],
               note=f"generate(): portrait + {audio_s:.2f} s audio -> mp4 in {wall:.2f} s ({steps} DiT steps, batch "
                    f"{jopts.render.batch_size}, {models.precision}); RTF = time / audio duration")
    _judge(row, wall / audio_s, abs(audio_s - OFFLINE_TARGET_SECONDS) <= 0.5,
           f"the target is for a {OFFLINE_TARGET_SECONDS:g} s clip, this run: {audio_s:g} s")


def paced_stream(models: Any, src: Any, wave: np.ndarray, options: Any, piece: int = PIECE,
                 period: float | None = None) -> tuple[list[tuple[int, float]], list[tuple[int, float]], Any, int]:
    """Stream ``wave`` through a :class:`StreamingSession`, pushing ``piece``-sample pieces every ``period`` seconds
    (default: in real time) from a feeder thread -> (frames ``(index, time out)``, pushes ``(samples pushed so far,
    time of the push)``, the session's stats, the session's hop)."""
    from ditto_core.runtime import StreamingSession

    period = piece / SAMPLE_RATE if period is None else float(period)
    pushes: list[tuple[int, float]] = []
    frames: list[tuple[int, float]] = []
    errors: list[BaseException] = []
    with StreamingSession(models, src, options) as session:
        hop = int(session.motion_config.hop)

        def feed() -> None:
            try:
                t_start = time.perf_counter()
                for k, i in enumerate(range(0, len(wave), piece)):
                    wait = t_start + k * period - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    t = time.perf_counter()
                    session.push(wave[i : i + piece])
                    pushes.append((min(i + piece, len(wave)), t))
                session.end_audio()
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                errors.append(e)
                session.cancel()

        feeder = threading.Thread(target=feed, name="gpu-check-feeder", daemon=True)
        feeder.start()
        try:
            for f in session.frames():
                frames.append((int(f.index), float(f.time)))
        except BaseException:
            if errors:  # the feeder failed and cancelled the session: its error is the one to see
                feeder.join()
                raise errors[0] from None
            session.cancel()
            raise
        finally:
            feeder.join()
        if errors:
            raise errors[0]
    return frames, pushes, session.stats, hop


def frame_lags(frames: Sequence[tuple[int, float]], pushes: Sequence[tuple[int, float]], total: int
               ) -> list[tuple[int, float]]:
    """Per frame ``(index, seconds)``: the time it came out minus the time of the push that completed the audio it
    covers (frame i covers samples up to ``(i + 1) * 640``, at most the whole clip)."""
    out = []
    for idx, t_out in frames:
        need = min((idx + 1) * FRAME_SAMPLES, total)
        t_push = next((t for end, t in pushes if end >= need), pushes[-1][1])
        out.append((idx, t_out - t_push))
    return out


def _online_rows(opts: GpuCheckOptions, models: Any, src: Any, wave: np.ndarray, rows: list[dict[str, Any]],
                 say: LogFn) -> None:
    latency, lag = rows
    jopts = _job_options(opts)
    say(f"online session fed in real time ({len(wave) / SAMPLE_RATE:g} s)")
    frames, pushes, stats, hop = paced_stream(models, src, wave, jopts)
    if not frames:
        raise RuntimeError("the streaming session gave no frame")
    steps = opts.job_steps or models.release.online.steps
    common_note = (f"audio pushed in real time ({PIECE}-sample pieces every {PIECE / SAMPLE_RATE:g} s), {steps} DiT "
                   f"steps, batch {jopts.render.batch_size} ({models.precision}), {len(frames)} frames")
    lat = stats.first_frame_latency
    push = stats.first_frame_latency_from_push
    latency.update(timer="wall", samples_ms=[] if lat is None else [round(lat * 1000.0, 3)],
                   note=f"from taking the audio piece that makes frame 0 possible to frame 0 out"
                        f"{'' if push is None else f' ({push * 1000:.0f} ms from its push)'}; {common_note}")
    _judge(latency, None if lat is None else lat * 1000.0)
    lags = frame_lags(frames, pushes, len(wave))
    steady = [v for i, v in lags if i >= hop]
    scope = f"{len(steady)} frames after the first DiT window (index >= {hop})"
    if not steady:
        steady = [v for _, v in lags]
        scope = f"all {len(steady)} frames (the clip is shorter than one hop of {hop} after the first window)"
    lag.update(timer="wall", samples_ms=[round(v * 1000.0, 3) for v in steady],
               note=f"frame out minus push of the audio it covers; median over {scope}; max "
                    f"{max(steady) * 1000:.0f} ms; {common_note}")
    _judge(lag, float(np.median(steady)) * 1000.0)


def _live_rows(opts: GpuCheckOptions, models: Any, src: Any, wave: np.ndarray, rows: list[dict[str, Any]],
               say: LogFn) -> None:
    from live_latency import PIECE as LIVE_PIECE
    from live_latency import first_frame_ms, run_inprocess, settings_dict, steady_lags

    latency, lag = rows
    n = int(latency["params"]["sessions"])
    say(f"{n} live session(s) fed in real time ({len(wave) / SAMPLE_RATE:g} s)")
    traces, hop = run_inprocess(models, src, settings_dict("online", opts.job_steps), n, wave)
    if any(not tr.frames for tr in traces):
        raise RuntimeError("a live session gave no frame")
    steps = opts.job_steps or models.release.online.steps
    counts = sorted({len(tr.frames) for tr in traces})
    dropped = sum(tr.dropped for tr in traces)
    common_note = (f"{n} concurrent LiveSession(s) in process (JPEG on, crop, idle off), audio pushed in real time "
                   f"({LIVE_PIECE}-sample pieces), online preset, {steps} DiT steps, batch 4 ({models.precision}), "
                   f"the models' renderer; {'/'.join(map(str, counts))} frames per session, {dropped} dropped")
    comparable = n == LIVE_SESSIONS_TARGET and steps == DIT_TARGET_STEPS
    why_not = (f"the targets are for {LIVE_SESSIONS_TARGET} sessions at {DIT_TARGET_STEPS} steps, this run: {n} "
               f"session(s), {steps} step(s)")
    firsts = first_frame_ms(traces)
    if any(v is None for v in firsts):
        raise RuntimeError("a live session gave no frame 0")
    latency.update(timer="wall", samples_ms=[round(v, 3) for v in firsts],
                   note=f"the worst session's frame 0 lag (audio into the pipeline -> frame out); {common_note}")
    _judge(latency, max(firsts), comparable, why_not)
    steady, _, scope = steady_lags(traces, hop)
    lag.update(timer="wall", samples_ms=[round(v, 3) for v in steady],
               note=f"frame lag (audio into the pipeline -> frame out), median over {scope} of every session; max "
                    f"{max(steady):.0f} ms; the WebSocket transport's overhead: benchmarks/live_latency.py; "
                    f"{common_note}")
    _judge(lag, float(np.median(steady)), comparable, why_not)


# ------------------------------------------------------------------------------------------------ output

HEADERS = ("check", "value", "unit", "target", "status")


def format_check(result: dict[str, Any]) -> str:
    """The result as text: environment, the Markdown table of every row, notes, time."""
    o = result["options"]
    head = [
        f"ditto GPU check, {result['date']}",
        describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
        (f"device {o['device']}, models {o['models']}, offline/online precision {o['job_precision']}"
         f"{', TINY settings (CPU test mode)' if o['tiny'] else ''}; portrait {o['size']}px, clip {o['seconds']:g} s, "
         f"DiT rows {o['dit_steps']} step(s), median of {o['repeats']} after {o['warmup']} warm-up"),
        "",
    ]
    rows = [(r["name"], "-" if r["value"] is None else fmt_num(r["value"], 2), r["unit"], r["target"] or "-",
             status(r)) for r in result["rows"]]
    notes = [f"- {r['name']}: {r['note']}" for r in result["rows"] if r["note"]]
    s = result["setup"]
    tail = (f"time: {result['wall_s']:.0f} s in all (kit {s['kit_build_s']:.0f} s, loading {s['load_models_s']:.0f} "
            f"s, inputs {s.get('prepare_s', 0.0):.0f} s; budget {o['time_budget']:g} s for starting rows)")
    return "\n".join(head) + format_table(HEADERS, rows) + "\n" + "\n".join(notes) + "\n" + tail


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--models", default=None, help="checkpoint folder (official release or synthetic kit); default: "
                                                   "a synthetic kit built in a temporary folder")
    ap.add_argument("--device", default="auto", help="cuda, cuda:N, cpu, mps or auto")
    ap.add_argument("--json", default=None, help="also write the figures (plus machine, versions, date, options) here")
    ap.add_argument("--seconds", type=float, default=15.0, help="clip length of the offline and online rows")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8], help="batch sizes of the render rows")
    ap.add_argument("--precisions", nargs="+", default=["fp16", "bf16"], choices=PRECISIONS,
                    help="precisions of the render rows (the first one the device runs is also the models' precision "
                         "for the offline and online rows)")
    ap.add_argument("--tiny", action="store_true",
                    help="CPU test mode: 256 px portrait, 0.08 s clip, batch 1, fp32 only, 1 DDIM step, no warm-up, "
                         "1 repeat, 1 live session (overrides the options above but --models, --device, --json, "
                         "--time-budget)")
    ap.add_argument("--time-budget", type=float, default=420.0,
                    help="seconds from the start after which rows not started yet are skipped (with a note)")
    ap.add_argument("--size", type=int, default=1432, help="side of the synthetic portrait in pixels")
    ap.add_argument("--render-frames", type=int, default=48, help="frames per timed run of a render row")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per render / DiT row (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (also: a 1 s offline job)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the inputs and of the sampling")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--salt", default="bench", help="weight-rule salt of a synthetic kit built here")
    ap.add_argument("--live-sessions", type=int, default=LIVE_SESSIONS_TARGET,
                    help="concurrent sessions of the live rows (the targets are for 4)")
    ap.add_argument("--renderer", default="real", choices=("real", STANDIN),
                    help="standin: warp + decode replaced in the models loaded here (checks the script, not the GPU)")
    ap.add_argument("--options", nargs="*", default=list(SPEED_OPTIONS), choices=SPEED_OPTIONS,
                    help="renderer speed options measured one row each (none: no such rows)")
    ap.add_argument("--option-batch", type=int, default=None,
                    help="batch size of the speed-option rows (default: the largest of --batches)")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> tuple[GpuCheckOptions, argparse.Namespace]:
    ap = build_parser()
    a = ap.parse_args(None if argv is None else [str(v) for v in argv])
    try:
        opts = GpuCheckOptions(
            models=a.models, device=a.device, seconds=a.seconds, batches=tuple(dict.fromkeys(a.batches)),
            precisions=tuple(dict.fromkeys(a.precisions)), time_budget=a.time_budget, size=a.size,
            render_frames=a.render_frames, repeats=a.repeats, warmup=a.warmup, seed=a.seed, threads=a.threads,
            salt=a.salt, live_sessions=a.live_sessions, options=tuple(dict.fromkeys(a.options)),
            option_batch=a.option_batch, renderer=a.renderer,
        )
        if a.tiny:
            opts = opts.tiny_settings()
    except ValueError as e:
        ap.error(str(e))
    return opts, a


def main(argv: Sequence[str] | None = None) -> int:
    t0 = time.perf_counter()
    opts, a = parse_args(argv)

    def log(m: str) -> None:
        print(f"[gpu-check {time.perf_counter() - t0:5.0f} s] {m}", file=sys.stderr, flush=True)

    result = run_check(opts, log=log, t0=t0)
    report(format_check(result), result, a.json)
    return 1 if any(r["error"] for r in result["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
