"""Peak RSS of the Render Video and Render Frames nodes against clip length (one fresh process per node and clip).

    python benchmarks/node_memory.py --models DIR                       # 2 s and 8 s, both nodes, real renderer
    python benchmarks/node_memory.py --models DIR --renderer standin    # the CPU setting of RESULTS.md

Each run loads the pack the way ComfyUI does (with the ComfyUI stand-ins of ``tests/comfy_stubs.py``, so no ComfyUI is
needed), registers a synthetic ``--size`` px portrait, samples the motion of a synthetic speech clip (2 DDIM steps), then
resets the peak RSS (Linux ``clear_refs``) and runs the node: Render Video (full frames encoded to an mp4 in the
temp folder, with the audio) or Render Frames (the whole clip as one IMAGE batch and its masks). The figure is the
peak RSS during the node, against the RSS just before it; the ratio compares the longest clip with the shortest
(target for Render Video: <= 1.2x, flat memory).

``--renderer standin`` replaces warp + decode with a shape-identical stand-in (a (b, 512, 512, 3) float32 image per
call computed from the keypoints): the real networks take about 11 s a frame on a 2-core CPU, and what this measures,
the memory the node holds per frame, does not depend on them. The real renderer's own working memory is constant per
batch. Use ``--renderer real`` (the default) where a GPU makes it affordable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (REPO_ROOT, current_rss_mib, describe_environment, ensure_repo_on_path, fmt_num, format_table,
                    load_average, machine_info, now_iso, peak_rss_mib, report, reset_peak_rss, versions)

ensure_repo_on_path()

NODES = ("video", "frames")
#: Render Video's peak RSS at the longest clip over the shortest
VIDEO_RATIO_TARGET = 1.2


def run_one(node: str, seconds: float, models_dir: str, device: str, size: int, batch_size: int,
            renderer: str) -> dict[str, Any]:
    """One node on one clip in this process -> RSS figures (MiB) and what was made."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from comfy_stubs import stubbed_pack

    import bench
    from ditto_core.runtime import DittoModels, JobOptions, extract_audio_features, extract_source, sample_motion
    from ditto_core.runtime.options import SamplingOptions

    with tempfile.TemporaryDirectory(prefix="ditto-node-mem-") as tmp:
        gen = stubbed_pack(Path(tmp))
        pack, _ = next(gen)
        try:
            models = DittoModels.load(models_dir, device=device, download=False, progress=False)
            if renderer == "standin":
                bench.use_standin_renderer(models)
            portrait = bench.make_portrait(size)
            speech = bench.make_speech(seconds)
            source = extract_source(models, portrait, JobOptions().source, is_image=True)
            feats = extract_audio_features(models, speech, bench.SAMPLE_RATE)
            motion = sample_motion(models, source, feats, SamplingOptions(steps=2, seed=0))
            audio = {"waveform": __import__("torch").from_numpy(speech)[None, None], "sample_rate": bench.SAMPLE_RATE}
            before = current_rss_mib()
            reset = reset_peak_rss()
            if node == "video":
                out = pack.NODE_CLASS_MAPPINGS["DittoRenderVideo"]().render(
                    models, source, motion, "full", batch_size, 18, audio)
                made = {"file_mib": Path(out["result"][0].get_stream_source()).stat().st_size / 2**20}
            else:
                frames, masks, _ = pack.NODE_CLASS_MAPPINGS["DittoRenderFrames"]().render(
                    models, source, motion, "full", batch_size)
                made = {"image_batch_mib": (frames.nbytes + masks.nbytes) / 2**20}
            peak = peak_rss_mib()
        finally:
            gen.close()
    return {"node": node, "seconds": seconds, "frames": int(motion.num_frames), "rss_before_mib": before,
            "peak_rss_mib": peak, "peak_reset": reset, **made}


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="ditto-node-mem-json-") as tmp:
        for node in args.nodes:
            for sec in args.seconds:
                jp = Path(tmp) / f"{node}_{sec:g}.json"
                print(f"[node_memory] {node}, {sec:g} s, in a fresh process", file=sys.stderr, flush=True)
                argv = [sys.executable, str(Path(__file__).resolve()), "--child", node, "--child-seconds", f"{sec:g}",
                        "--child-json", str(jp), "--models", args.models, "--device", args.device, "--size",
                        str(args.size), "--batch-size", str(args.batch_size), "--renderer", args.renderer]
                proc = subprocess.run(argv, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"the {node} {sec:g} s run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
                runs.append(json.loads(jp.read_text(encoding="utf-8")))
    ratios = {}
    for node in args.nodes:
        rs = [r for r in runs if r["node"] == node]
        if len(rs) >= 2 and rs[0]["peak_rss_mib"] and rs[-1]["peak_rss_mib"]:
            ratios[node] = rs[-1]["peak_rss_mib"] / rs[0]["peak_rss_mib"]
    return {"date": now_iso(), "machine": machine_info(args.device), "versions": versions(), "options": vars(args),
            "runs": runs, "ratios": ratios, "video_target": VIDEO_RATIO_TARGET, "load_average_end": load_average()}


def format_result(result: dict[str, Any]) -> str:
    o = result["options"]
    head = [f"ditto node memory (peak RSS per node and clip, fresh process each), {result['date']}",
            describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
            f"device {o['device']}, portrait {o['size']}px, batch {o['batch_size']}, renderer {o['renderer']}", ""]
    rows = [("Render Video" if r["node"] == "video" else "Render Frames", f"{r['seconds']:g} s", str(r["frames"]),
             fmt_num(r["rss_before_mib"]), fmt_num(r["peak_rss_mib"]),
             fmt_num(r.get("file_mib", r.get("image_batch_mib")), 1)) for r in result["runs"]]
    table = format_table(("node", "clip", "frames", "RSS before MiB", "peak RSS MiB", "output MiB (file / IMAGE+MASK)"),
                         rows)
    lines = []
    for node, ratio in result["ratios"].items():
        name = "Render Video" if node == "video" else "Render Frames"
        verdict = (f" (target <= {result['video_target']}x: {'OK' if ratio <= result['video_target'] else 'OVER'})"
                   if node == "video" else "")
        lines.append(f"{name}: peak RSS {o['seconds'][-1]:g} s / {o['seconds'][0]:g} s = {ratio:.2f}x{verdict}")
    return "\n".join(head) + table + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/node_memory.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="models folder (official release or the synthetic kit)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    ap.add_argument("--size", type=int, default=1432, help="portrait side in pixels (the official sample's 1432)")
    ap.add_argument("--batch-size", type=int, default=4, help="frames per render call")
    ap.add_argument("--seconds", type=float, nargs="+", default=[2.0, 8.0], help="clip lengths, shortest first")
    ap.add_argument("--nodes", nargs="+", default=list(NODES), choices=NODES, help="which nodes to measure")
    ap.add_argument("--renderer", default="real", choices=("real", "standin"),
                    help="real: the models' renderer; standin: warp + decode replaced (see the module doc)")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--child", choices=NODES, help=argparse.SUPPRESS)
    ap.add_argument("--child-seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--child-json", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        res = run_one(a.child, a.child_seconds, a.models, a.device, a.size, a.batch_size, a.renderer)
        Path(a.child_json).write_text(json.dumps(res) + "\n", encoding="utf-8")
        return 0
    result = run_all(a)
    report(format_result(result), result, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
