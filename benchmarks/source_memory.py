"""Device memory of a video source's appearance volumes against the source's length (issue 15).

    python benchmarks/source_memory.py --models DIR                      # 4- and 64-frame sources, CPU stand-in
    python benchmarks/source_memory.py --models DIR --device cuda --renderer real   # on a GPU, the real renderer

A video source's appearance volumes ``f_s`` are 8 MiB per frame (32 x 16 x 64 x 64 float32). They are kept on the
host (pinned for CUDA) and each render batch's volumes go to the device with it, so the device memory of rendering
should not depend on the source's length. For each ``--source-frames`` length this registers a synthetic video (a
synthetic ``--size`` px portrait, shifted a pixel per frame) through the runtime (``extract_source``), then renders
the same ``--frames`` output frames (the source read ping-pong, batch ``--batch-size``, output "crop") through
``render_frames`` with a recording wrapper around the renderer, and reports:

* where ``Source.f_s`` lives (device type, pinned or not) and its size;
* per render call, the volumes handed to the renderer (rows, bytes): what ``render_batch`` put on the render device
  for that batch. The peak of it over the clip is the "device-resident volumes" figure; the ratio compares the
  longest source with the shortest (target: about 1x);
* with CUDA, ``torch.cuda.memory_allocated`` after registration and ``torch.cuda.max_memory_allocated`` during
  rendering (reset just before it): the real device figures, networks' working memory included.

With the CPU as the render device (this machine), host and device are the same memory: what is measured is what is
handed to the renderer per call and where the library keeps ``Source.f_s``, not an allocator figure.
``--renderer standin`` (the default) replaces warp + decode with ``bench.StandinRenderer`` (the real networks take
about 10 s per frame on a 2-core CPU; which volumes reach the renderer does not depend on them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import (describe_environment, ensure_repo_on_path, fmt_num, format_table, load_average, machine_info,
                    now_iso, report, versions)

ensure_repo_on_path()

#: the longest source's peak device-resident volumes over the shortest's
RATIO_TARGET = 1.1
MIB = 2**20


class RecordingRenderer:
    """Wraps a renderer: records the volumes (``f_s`` argument) of every render call, then renders."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.device = inner.device
        self.config = inner.config
        self.calls: list[dict[str, Any]] = []

    def render(self, f_s: Any, x_s: Any, x_d: Any, cancel: Any = None) -> Any:
        self.calls.append({"rows": int(f_s.shape[0]), "bytes": int(f_s.numel() * f_s.element_size()),
                           "device": str(f_s.device), "frames": int(x_d.shape[0])})
        return self.inner.render(f_s, x_s, x_d, cancel) if cancel is not None else self.inner.render(f_s, x_s, x_d)


def make_video(n: int, size: int) -> np.ndarray:
    """``n`` frames of the synthetic portrait, shifted one pixel right per frame: (n, size, size, 3) uint8."""
    import bench

    img = bench.make_portrait(size)
    return np.stack([np.roll(img, i, axis=1) for i in range(n)])


def run_one(models: Any, source_frames: int, frames: int, size: int, batch_size: int, renderer: str) -> dict[str, Any]:
    """One source length: register, render, measure."""
    import torch

    import bench
    from ditto_core.motion.track import Motion
    from ditto_core.runtime import extract_source, render_frames, source_motion_vector

    dev = models.device
    cuda = dev.type == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(dev)
    t0 = time.perf_counter()
    source = extract_source(models, make_video(source_frames, size), is_image=False)
    reg_s = time.perf_counter() - t0
    after_reg = (torch.cuda.memory_allocated(dev) - base) / MIB if cuda else None
    motion = Motion(source_motion_vector(source).repeat(frames, 1))
    inner = bench.StandinRenderer(dev, batch_size) if renderer == "standin" else models.new_renderer(batch_size)
    rec = RecordingRenderer(inner)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
    t0 = time.perf_counter()
    made = sum(out.shape[0] for out, _ in render_frames(models, source, motion, output="crop", renderer=rec))
    render_s = time.perf_counter() - t0
    peak_dev = (torch.cuda.max_memory_allocated(dev) - start) / MIB if cuda else None
    f_s = source.f_s
    return {
        "source_frames": source_frames,
        "frames": made,
        "f_s_mib": f_s.numel() * f_s.element_size() / MIB,
        "f_s_device": str(f_s.device),
        "f_s_pinned": bool(f_s.device.type == "cpu" and f_s.is_pinned()),
        "render_device": str(dev),
        "calls": len(rec.calls),
        "max_rows_per_call": max(c["rows"] for c in rec.calls),
        "peak_call_mib": max(c["bytes"] for c in rec.calls) / MIB,
        "call_devices": sorted({c["device"] for c in rec.calls}),
        "cuda_after_registration_mib": after_reg,
        "cuda_peak_render_mib": peak_dev,
        "register_s": reg_s,
        "render_s": render_s,
    }


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    from ditto_core.runtime import DittoModels

    machine = machine_info(args.device)  # the load average at the start
    models = DittoModels.load(args.models, device=args.device, download=False, progress=False)
    runs = []
    for n in args.source_frames:
        print(f"[source_memory] {n}-frame source, {args.frames} frames rendered", file=sys.stderr, flush=True)
        runs.append(run_one(models, n, args.frames, args.size, args.batch_size, args.renderer))
    first, last = runs[0], runs[-1]
    ratio = last["peak_call_mib"] / first["peak_call_mib"]
    cuda_ratio = (last["cuda_peak_render_mib"] / first["cuda_peak_render_mib"]
                  if first["cuda_peak_render_mib"] and last["cuda_peak_render_mib"] is not None else None)
    return {"schema": "ditto-bench-source-memory/1", "date": now_iso(), "machine": machine,
            "versions": versions(), "options": vars(args), "runs": runs, "ratio": ratio, "cuda_ratio": cuda_ratio,
            "target": RATIO_TARGET, "ok": ratio <= RATIO_TARGET, "load_average_end": load_average()}


def format_result(result: dict[str, Any]) -> str:
    o = result["options"]
    head = [(f"ditto source memory (appearance volumes on the render device against the source's length), "
             f"{result['date']}"),
            describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
            (f"device {o['device']}, renderer {o['renderer']}, portrait {o['size']}px, {o['frames']} frames "
             f"rendered at batch {o['batch_size']}"), ""]
    rows = []
    for r in result["runs"]:
        kept = r["f_s_device"] + (" (pinned)" if r["f_s_pinned"] else "")
        rows.append((str(r["source_frames"]), fmt_num(r["f_s_mib"]), kept, str(r["calls"]), str(r["max_rows_per_call"]),
                     fmt_num(r["peak_call_mib"]), fmt_num(r["cuda_after_registration_mib"]),
                     fmt_num(r["cuda_peak_render_mib"])))
    table = format_table(("source frames", "Source.f_s MiB", "Source.f_s kept on", "render calls", "volumes per call (max)",
                          "device-resident volumes MiB (peak per call)", "CUDA after registration MiB",
                          "CUDA peak while rendering MiB"), rows)
    first, last = result["runs"][0], result["runs"][-1]
    lines = [(f"device-resident volumes {last['source_frames']} / {first['source_frames']} source frames = "
              f"{result['ratio']:.2f}x (target <= {result['target']}x: {'OK' if result['ok'] else 'OVER'})")]
    if result["cuda_ratio"] is not None:
        lines.append(f"CUDA peak while rendering {last['source_frames']} / {first['source_frames']} source frames = "
                     f"{result['cuda_ratio']:.2f}x")
    return "\n".join(head) + table + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/source_memory.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="models folder (official release or the synthetic kit)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    ap.add_argument("--source-frames", type=int, nargs="+", default=[4, 64], help="source video lengths, shortest first")
    ap.add_argument("--frames", type=int, default=64, help="output frames rendered for every source")
    ap.add_argument("--size", type=int, default=512, help="portrait side in pixels")
    ap.add_argument("--batch-size", type=int, default=4, help="frames per render call")
    ap.add_argument("--renderer", default="standin", choices=("standin", "real"),
                    help="standin: warp + decode replaced (see the module doc); real: the models' renderer")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args(argv)
    if any(n < 1 for n in a.source_frames) or a.frames < 1 or a.batch_size < 1 or a.size < 64:
        ap.error("--source-frames, --frames and --batch-size must be >= 1, --size >= 64")
    if not Path(a.models).is_dir():
        ap.error(f"--models: no such folder {a.models}")
    result = run_all(a)
    report(format_result(result), result, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
