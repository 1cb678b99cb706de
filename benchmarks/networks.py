"""Per-network time per frame: appearance, motion extractor, warp, decoder, stitching, and the DiT per window.

Usage (run by hand, not by CI)::

    python benchmarks/networks.py                                 # CPU, fp32, weight-rule weights
    python benchmarks/networks.py --precision bf16 --batch 4      # autocast bf16, 4 frames per warp/decoder call
    python benchmarks/networks.py --device cuda --precision fp16 --models /path/to/ditto-talkinghead
    python benchmarks/networks.py --networks stitching dit --steps 1 --repeats 1 --json out.json

Weights: the project's weight rule (``ditto_core.testing.weight_rule.apply_weight_rule``, salt ``--salt``) unless ``--models``
points at a folder of checkpoints (the official release, or a synthetic kit), loaded with
``ditto_core.checkpoints.load_model``. Timing does not depend on the weight values.

Each network runs ``--warmup`` times untimed, then ``--repeats`` times; the table gives the median. On CUDA the runs
are timed with CUDA events. ``--precision`` is the autocast of the appearance extractor, motion extractor, warp and
decoder; the stitching MLP and the DiT run in fp32 as the pipeline runs them (``--autocast-all`` puts them under
autocast too). The DiT row is one 80-frame window: ``steps`` DDIM steps of classifier-free guidance, each one batched
pass of 2 (conditional + unconditional, as ``ditto_core.audio2motion.sample_window`` runs it); its frames per call
are the frames a window adds offline (``80 - overlap``, 70 by default; online a window adds 10).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    describe_environment,
    ensure_repo_on_path,
    fmt_count,
    fmt_num,
    fmt_spread,
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

import torch
from torch import nn

from ditto_core.render import PRECISIONS

#: benchmark name -> the checkpoint role of ditto_core.checkpoints / layout
NETWORKS: dict[str, str] = {
    "appearance": "appearance_extractor",
    "motion": "motion_extractor",
    "warp": "warp_network",
    "decoder": "decoder",
    "stitching": "stitch_network",
    "dit": "lmdm",
}
#: networks under ``--precision`` autocast in the pipeline (the others run in fp32)
AUTOCAST_NETWORKS = ("appearance", "motion", "warp", "decoder")
SCHEMA = "ditto-bench-networks/1"


@dataclass
class NetworkBenchOptions:
    """What to time. ``batch``: frames per call of appearance/motion/warp/decoder/stitching (1 = the official
    per-frame loop); ``steps``: DDIM steps of the DiT rows; ``overlap``: frames two offline windows share."""

    device: str = "cpu"
    precision: str = "fp32"
    networks: tuple[str, ...] = tuple(NETWORKS)
    steps: tuple[int, ...] = (10, 50)
    batch: int = 1
    repeats: int = 5
    warmup: int = 1
    models: str | None = None
    salt: str = "bench"
    threads: int | None = None
    overlap: int = 10
    autocast_all: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [n for n in self.networks if n not in NETWORKS]
        if unknown or not self.networks:
            raise ValueError(f"networks: expected some of {list(NETWORKS)}, got {list(self.networks)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if any(int(s) < 1 or int(s) > 1000 for s in self.steps) or not self.steps:
            raise ValueError(f"steps: expected DDIM step counts in 1..1000, got {list(self.steps)}")
        if self.batch < 1:
            raise ValueError(f"batch: expected >= 1 frames per call, got {self.batch}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"repeats >= 1 and warmup >= 0 expected, got {self.repeats}, {self.warmup}")
        if not 0 <= self.overlap < 80:
            raise ValueError(f"overlap: expected 0..79 frames, got {self.overlap}")
        if self.models is not None and not Path(self.models).is_dir():
            raise ValueError(f"models: {self.models} is not a folder")


@dataclass
class NetworkRow:
    """One table row. ``ms_per_call``: median over ``samples_ms``; ``frames_per_call``: output frames one call
    serves; ``ms_per_frame = ms_per_call / frames_per_call``; ``fps = 1000 / ms_per_frame``."""

    network: str
    inputs: str
    precision: str
    ms_per_call: float | None
    frames_per_call: float
    ms_per_frame: float | None
    fps: float | None
    repeats: int
    timer: str
    samples_ms: list[float] = field(default_factory=list)
    note: str = ""


def build_network(name: str, options: NetworkBenchOptions, device: torch.device) -> nn.Module:
    """The network ``name`` in eval mode on ``device``: checkpoint from ``options.models`` or the weight rule."""
    from ditto_core.checkpoints import MODELS, find_model_file, load_model
    from ditto_core.testing.weight_rule import apply_weight_rule

    role = NETWORKS[name]
    if options.models is not None:
        path = find_model_file(options.models, role)
        if path is None:
            raise FileNotFoundError(f"--models {options.models}: no checkpoint for {name} ({role}) found there")
        return load_model(role, path, device=device)
    return apply_weight_rule(MODELS[role].build(), options.salt).to(device)


def _keypoints(b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    kp_s = (torch.rand(b, 21, 3, generator=g) * 2 - 1) * 0.5
    kp_d = kp_s + 0.02 * torch.randn(b, 21, 3, generator=g)
    return kp_s, kp_d


def make_call(
    name: str, model: nn.Module, options: NetworkBenchOptions, device: torch.device, steps: int | None = None
) -> tuple[Callable[[], Any], str, float]:
    """-> (the timed call, a description of its inputs, output frames per call)."""
    from ditto_core.audio2motion import Audio2MotionConfig, sample_window
    from ditto_core.render import autocast_context
    from ditto_core.sampler import CosineSchedule, draw_eta_noises, draw_normal

    g = torch.Generator().manual_seed(options.seed)
    b = options.batch
    autocast = name in AUTOCAST_NETWORKS or options.autocast_all
    ctx: Callable[[], Any] = (lambda: autocast_context(device, options.precision)) if autocast else nullcontext
    if name in ("appearance", "motion"):
        x = torch.rand(b, 3, 256, 256, generator=g).to(device)
        desc = f"image ({b}, 3, 256, 256)"

        def call() -> Any:
            with torch.inference_mode(), ctx():
                return model(x)

        return call, desc, float(b)
    if name == "warp":
        feat = torch.randn(1, 32, 16, 64, 64, generator=g).to(device).expand(b, -1, -1, -1, -1)
        kp_s, kp_d = (t.to(device) for t in _keypoints(b, g))
        desc = f"f_s ({b}, 32, 16, 64, 64), kp 2x ({b}, 21, 3)"

        def call() -> Any:
            with torch.inference_mode(), ctx():
                return model(feat, kp_s, kp_d)

        return call, desc, float(b)
    if name == "decoder":
        feat = torch.randn(b, 256, 64, 64, generator=g).to(device)
        desc = f"feature ({b}, 256, 64, 64)"

        def call() -> Any:
            with torch.inference_mode(), ctx():
                return model(feat)

        return call, desc, float(b)
    if name == "stitching":
        kp_s, kp_d = (t.to(device) for t in _keypoints(b, g))
        desc = f"kp 2x ({b}, 21, 3)"

        def call() -> Any:
            with torch.inference_mode(), ctx():
                return model(kp_s, kp_d)

        return call, desc, float(b)
    if name == "dit":
        assert steps is not None
        cfg = Audio2MotionConfig(steps=int(steps), overlap=options.overlap)
        kp_cond = torch.randn(265, generator=g) * 0.1
        cond = torch.randn(80, 1103, generator=g)
        x_init = draw_normal((80, 265), g)
        noises = draw_eta_noises(int(steps), (80, 265), g)
        schedule = CosineSchedule()
        desc = f"window (80, 265), cond (80, 1103), {steps} step{'' if steps == 1 else 's'} x CFG batch 2"

        def call() -> Any:
            with torch.inference_mode(), ctx():
                return sample_window(model, kp_cond, cond, x_init, noises, schedule, cfg)

        return call, desc, float(cfg.hop)
    raise ValueError(f"unknown network {name!r}")


def run_networks(options: NetworkBenchOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time every selected network -> a JSON-able dict (schema :data:`SCHEMA`): ``rows`` (see :class:`NetworkRow`)
    plus ``machine``, ``versions``, ``date`` and ``options``."""
    from ditto_core.runtime import resolve_device

    say = log or (lambda _m: None)
    if options.threads:
        torch.set_num_threads(int(options.threads))
    device = resolve_device(options.device)
    machine = machine_info(device)
    rows: list[NetworkRow] = []
    for name in options.networks:
        say(f"{name}: building")
        model = build_network(name, options, device)
        prec = options.precision if (name in AUTOCAST_NETWORKS or options.autocast_all) else "fp32"
        for steps in (options.steps if name == "dit" else (None,)):
            label = name if steps is None else f"dit ({steps} step{'' if steps == 1 else 's'})"
            call, desc, frames = make_call(name, model, options, device, steps)
            say(f"{label}: timing ({options.warmup} warm-up, {options.repeats} repeats)")
            samples, timer = measure(call, device, options.repeats, options.warmup)
            ms = median(samples)
            note = ""
            if name in ("appearance", "motion"):
                note = "once per source frame (image: once per clip)"
            elif name == "dit":
                note = f"per 80-frame window; a window adds {frames:.0f} frames offline (10 online)"
            rows.append(NetworkRow(label, desc, prec, ms, frames, ms / frames, 1000.0 * frames / ms,
                                   options.repeats, timer, [round(s, 3) for s in samples], note))
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    by = {r.network: r for r in rows}
    if "warp" in by and "decoder" in by:
        ms = by["warp"].ms_per_frame + by["decoder"].ms_per_frame
        rows.append(NetworkRow("renderer (warp + decoder)", "sum of the two rows", options.precision, None,
                               float(options.batch), ms, 1000.0 / ms, options.repeats, by["warp"].timer, [],
                               "derived: no paste-back"))
    return {
        "schema": SCHEMA,
        "date": now_iso(),
        "machine": machine,
        "versions": versions(),
        "options": asdict(options),
        "device": str(device),
        "weights": "checkpoints " + str(options.models) if options.models else f"weight rule (salt {options.salt!r})",
        "rows": [asdict(r) for r in rows],
        "load_average_end": load_average(),
    }


HEADERS = ("network", "inputs", "precision", "ms/call", "frames/call", "ms/frame", "frames/s", "spread")


def format_networks(result: dict[str, Any]) -> str:
    """The result as text: environment lines, then a Markdown table."""
    opts = result["options"]
    head = [
        f"ditto per-network benchmark, {result['date']}",
        describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
        (f"device {result['device']}, precision {opts['precision']}, batch {opts['batch']}, "
         f"weights: {result['weights']}, median of {opts['repeats']} after {opts['warmup']} warm-up"),
        "",
    ]
    rows = [
        (r["network"], r["inputs"], r["precision"], fmt_num(r["ms_per_call"]), fmt_count(r["frames_per_call"]),
         fmt_num(r["ms_per_frame"]), fmt_num(r["fps"], 2), fmt_spread(r["samples_ms"]))
        for r in result["rows"]
    ]
    notes = [f"- {r['network']}: {r['note']}" for r in result["rows"] if r["note"]]
    return "\n".join(head) + format_table(HEADERS, rows) + ("\n" + "\n".join(notes) if notes else "")


def parse_args(argv: Sequence[str] | None = None) -> tuple[NetworkBenchOptions, str | None]:
    ap = argparse.ArgumentParser(prog="python benchmarks/networks.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="autocast of appearance/motion/warp/decoder (default fp32)")
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS), metavar="NAME",
                    help=f"which networks (default all: {' '.join(NETWORKS)})")
    ap.add_argument("--steps", nargs="+", type=int, default=[10, 50], help="DDIM steps of the DiT rows (default 10 50)")
    ap.add_argument("--batch", type=int, default=1, help="frames per call of the per-frame networks (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per network; the median is reported (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    ap.add_argument("--models", default=None, help="a folder with the checkpoints (official release or synthetic kit); "
                                                   "default: weight-rule weights")
    ap.add_argument("--salt", default="bench", help="weight-rule salt when --models is not given")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--overlap", type=int, default=10, help="offline window overlap, for the DiT frames per window")
    ap.add_argument("--autocast-all", action="store_true", help="also run the stitching MLP and the DiT under autocast")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    try:
        opts = NetworkBenchOptions(
            device=a.device, precision=a.precision, networks=tuple(dict.fromkeys(a.networks)), steps=tuple(a.steps),
            batch=a.batch, repeats=a.repeats, warmup=a.warmup, models=a.models, salt=a.salt, threads=a.threads,
            overlap=a.overlap, autocast_all=a.autocast_all,
        )
    except ValueError as e:
        ap.error(str(e))
    return opts, a.json


def main(argv: Sequence[str] | None = None) -> int:
    opts, json_path = parse_args(argv)
    result = run_networks(opts, log=lambda m: print(f"[networks] {m}", file=sys.stderr, flush=True))
    report(format_networks(result), result, json_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
