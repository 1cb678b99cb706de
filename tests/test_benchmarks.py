"""The benchmark scripts (benchmarks/) run end to end in tiny configurations; structure only, never timings."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, is_pos, load_bench_script, run_bench_script, table_rows

from ditto_core.audio import frame_count

BENCH_DIR = REPO_ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("bench")


@pytest.fixture(scope="module")
def networks():
    return load_bench_script("networks")


@pytest.fixture(scope="module")
def common():
    return load_bench_script("common")


# ------------------------------------------------------------------------------------------ helpers


def test_measure_runs_warmup_then_repeats(common):
    calls = []
    samples, timer = common.measure(lambda: calls.append(1), "cpu", repeats=3, warmup=2)
    assert len(calls) == 5 and len(samples) == 3 and timer == "wall"
    assert all(s >= 0 for s in samples)
    with pytest.raises(ValueError, match="repeats"):
        common.measure(lambda: None, "cpu", repeats=0)
    assert common.spread_pct([10.0, 30.0, 20.0]) == pytest.approx(100.0)  # (max - min) / median
    assert common.spread_pct([5.0]) is None and common.fmt_spread([4.0, 5.0, 6.0]) == "40%"


def test_format_table_is_an_aligned_markdown_table(common):
    text = common.format_table(("a", "long header"), [("x", "1"), ("yyyy", "22")])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert lines[1].startswith("|-") and table_rows(text) == [["a", "long header"], ["x", "1"], ["yyyy", "22"]]
    with pytest.raises(ValueError, match="cells"):
        common.format_table(("a", "b"), [("only one",)])


def test_peak_rss_reset_and_machine_facts(common):
    peak = common.peak_rss_mib()
    rss = common.current_rss_mib()
    assert peak is not None and rss is not None and peak >= rss * 0.9
    # the reset, in a fresh process (a long test process's allocator may reuse freed pages without growing the RSS)
    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import common\n"
        "if not common.reset_peak_rss(): print('unsupported'); raise SystemExit\n"
        "big = np.ones(256 * 2**20 // 8); high = common.peak_rss_mib(); del big\n"
        "common.reset_peak_rss(); low = common.peak_rss_mib()\n"
        "blob = np.ones(64 * 2**20 // 8); now, after = common.current_rss_mib(), common.peak_rss_mib()\n"
        "print(high, low, now, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(BENCH_DIR)], capture_output=True, text=True, check=True)
    if out.stdout.strip() != "unsupported":  # Linux: the reset drops the old peak; the peak follows the RSS again
        high, low, now, after = map(float, out.stdout.split())
        assert low <= high - 128 and after >= now - 1 and now >= low + 32, out.stdout
    info = common.machine_info("cpu")
    assert info["cores"] >= 1 and info["cpu"] and info["gpu"] is None
    vers = common.versions()
    assert {"python", "torch", "numpy", "onnxruntime"} <= set(vers)


def test_synthetic_inputs(bench):
    img = bench.make_portrait(300, seed=1)
    assert img.shape == (300, 300, 3) and img.dtype == np.uint8
    assert np.array_equal(img, bench.make_portrait(300, seed=1))
    c = img[150 - 10 : 150 + 10, 150 - 10 : 150 + 10].reshape(-1, 3).mean(0)
    assert c[0] > c[2]  # a skin tone (red over blue) in the centre, where the stand-in detector puts the face
    wave = bench.make_speech(1.5, seed=2)
    assert wave.dtype == np.float32 and wave.shape == (24000,)
    assert np.abs(wave).max() <= 1.0 and np.array_equal(wave, bench.make_speech(1.5, seed=2))
    blocks = np.abs(wave[: 24000 // 320 * 320].reshape(-1, 320)).max(1)  # 20 ms blocks
    assert (blocks < 1e-3).any() and (blocks > 0.1).mean() > 0.3  # pauses and voiced stretches
    assert not np.array_equal(wave, bench.make_speech(1.5, seed=3))
    # the 8 s clip of --memory-scaling once held a NaN (a syllable envelope of sin(pi) rounded below zero)
    assert np.isfinite(bench.make_speech(8.0, seed=0)).all()


def test_bench_argument_parsing(bench):
    opts, ns = bench.parse_args([])
    assert opts.stages == bench.STAGES and opts.steps == (10, 50) and opts.seconds == 2.0 and opts.size == 1432
    assert opts.precision == "fp32" and opts.job_steps is None and not ns.memory_scaling
    assert "frames" in opts.stages and opts.backend == "pytorch"
    assert bench.STAGES.index("frames") < bench.STAGES.index("job")  # the offline renderer before the whole job
    opts, ns = bench.parse_args(["--precision", "fp16", "--stages", "job", "job", "--steps", "2", "--memory-scaling",
                                 "--scaling-seconds", "1", "3"])
    assert opts.stages == ("job",) and opts.steps == (2,) and ns.scaling_seconds == [1.0, 3.0]
    assert opts.precision == "fp16"
    for bad in (["--precision", "fp8"], ["--stages", "paint"], ["--seconds", "0"], ["--steps", "0"],
                ["--batch-size", "0"], ["--models", "/no/such/folder"], ["--backend", "onnx"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_networks_argument_parsing(networks):
    opts, json_path = networks.parse_args(["--networks", "dit", "warp", "--batch", "4", "--precision", "fp16"])
    assert opts.networks == ("dit", "warp") and opts.batch == 4 and json_path is None and opts.precision == "fp16"
    for bad in (["--networks", "renderer"], ["--batch", "0"], ["--steps", "0"], ["--overlap", "80"]):
        with pytest.raises(SystemExit):
            networks.parse_args(bad)


# -------------------------------------------------------------------------------------- networks.py


def test_networks_script_end_to_end(tmp_path):
    """The script as a user runs it: the stitching MLP and one DiT step, one repeat; table and JSON structure."""
    proc, res = run_bench_script("networks", ["--networks", "stitching", "dit", "--steps", "1", "--repeats", "1",
                                  "--warmup", "0", "--batch", "3", "--overlap", "20"], tmp_path, timeout=600)
    table = table_rows(proc.stdout)
    assert table[0] == ["network", "inputs", "precision", "ms/call", "frames/call", "ms/frame", "frames/s", "spread"]
    assert [r[0] for r in table[1:]] == ["stitching", "dit (1 step)"]
    assert res["schema"] == "ditto-bench-networks/1" and res["device"] == "cpu"
    assert {"cpu", "cores", "ram_gib", "load_average"} <= set(res["machine"])
    assert res["weights"].startswith("weight rule") and len(res["load_average_end"]) == 3
    assert [r[-1] for r in table[1:]] == ["-", "-"]  # spread needs two repeats
    stitch, dit = res["rows"]
    assert stitch["frames_per_call"] == 3.0 and stitch["precision"] == "fp32"
    assert dit["frames_per_call"] == 60.0  # a window adds 80 - overlap frames
    for r in res["rows"]:
        assert len(r["samples_ms"]) == 1 and r["timer"] == "wall"
        assert is_pos(r["ms_per_call"]) and r["ms_per_frame"] == pytest.approx(r["ms_per_call"] / r["frames_per_call"])
        assert r["fps"] == pytest.approx(1000.0 / r["ms_per_frame"])


# ----------------------------------------------------------------------------------------- bench.py


def _check_rows(bench, res: dict) -> dict[str, dict]:
    rows = res["rows"]
    for r in rows:
        assert set(r) == set(bench.ROW_KEYS), r["name"]
    stages = [r["stage"] for r in rows]
    assert [s for s in dict.fromkeys(stages)] == list(bench.STAGES)  # every stage reported, in order
    return {r["name"]: r for r in rows}


def test_bench_cheap_stages_json_schema(bench, synthetic_models, tmp_path):
    """Every stage that renders nothing, on a 3-frame clip: rows, units, derived columns, skipped rows, JSON."""
    opts = bench.BenchOptions(device="cpu", seconds=0.12, size=256, steps=(2,), repeats=1, warmup=0,
                              stages=("source", "audio", "dit", "stitch", "paste", "encode"))
    res = bench.run_benchmark(opts, models=synthetic_models)
    res = json.loads(json.dumps(res))  # JSON-able as written by --json
    assert res["schema"] == "ditto-bench/1"
    assert {"machine", "versions", "date", "options", "inputs", "setup", "rows", "memory", "load_average_end"} <= set(res)
    n = frame_count(round(0.12 * 16000))
    assert res["inputs"]["frames"] == n == 3 and res["inputs"]["image_size"] == [256, 256]
    assert res["options"]["precision"] == "fp32" and res["options"]["device"] == "cpu"
    by = _check_rows(bench, res)
    hop = synthetic_models.release.offline.hop
    assert hop == 80 - synthetic_models.release.offline.overlap and res["inputs"]["offline_overlap"] == 80 - hop
    assert by["audio features (HuBERT)"]["frames_per_unit"] == n
    assert by["DiT window, 2 steps"]["frames_per_unit"] == hop and by["DiT window, 2 steps"]["unit"] == "80-frame window"
    assert by["paste-back"]["unit"] == "batch of 3" and by["paste-back"]["frames_per_unit"] == 3
    for name in ("source registration", "audio features (HuBERT)", "DiT window, 2 steps", "stitching", "paste-back",
                 "encode (H.264 + AAC)"):
        r = by[name]
        assert not r["skipped"] and len(r["samples_ms"]) == 1 and is_pos(r["ms_per_unit"])
        assert r["ms_per_frame"] == pytest.approx(r["ms_per_unit"] / r["frames_per_unit"])
        assert r["rtf"] == pytest.approx(r["ms_per_frame"] * 25 / 1000)
    assert "Compositor" in by["paste-back"]["note"]  # the device compositor of both modes
    for name in ("warp", "decode", "render (pipeline renderer)", "offline renderer (render_frames)",
                 "whole offline job", "online first-frame latency", "online sustained"):
        assert by[name]["skipped"] and by[name]["ms_per_unit"] is None and by[name]["note"] == "not selected"
    assert res["stream_vs_offline"] is None  # neither the offline renderer nor the stream ran
    assert is_pos(res["memory"]["peak_rss_mib"])
    text = bench.format_result(res)
    table = table_rows(text)
    assert table[0] == list(bench.HEADERS) and len(table) == 1 + len(res["rows"])
    assert [r[2] for r in table[1:]].count("skipped") == 7
    assert "stream vs offline: n/a" in text


def test_stream_vs_offline_comparison(bench):
    """The stream's sustained ms/frame over the offline renderer's, against the 10% target; n/a unless both ran."""
    online = bench._row(bench.ONLINE_SUSTAINED_ROW, "online", "9 frames", None, None, ms_per_frame=105.0, fps=1000 / 105)
    offline = bench._row(bench.OFFLINE_FRAMES_ROW, "frames", "clip (10 frames)", 1000.0, 10)
    cmp = bench.stream_vs_offline([offline, online])
    assert cmp == {"online_ms_per_frame": 105.0, "offline_ms_per_frame": 100.0, "ratio": pytest.approx(1.05),
                   "target": 1.10, "ok": True}
    assert bench.format_comparison(cmp) == ("stream vs offline: online 105.0 ms/frame sustained / offline renderer "
                                            "100.0 ms/frame = 1.05x (target <= 1.10x: OK)")
    slow = dict(online, ms_per_frame=111.0)
    assert bench.stream_vs_offline([offline, slow])["ok"] is False
    assert "1.11x (target <= 1.10x: MISS)" in bench.format_comparison(bench.stream_vs_offline([offline, slow]))
    # n/a: a stage not run, or a stream of one frame (no sustained rate)
    assert bench.stream_vs_offline([offline, bench._skipped(bench.ONLINE_SUSTAINED_ROW, "online", "not selected")]) is None
    assert bench.stream_vs_offline([online]) is None
    assert bench.stream_vs_offline([offline, dict(online, ms_per_frame=None)]) is None
    assert bench.format_comparison(None).startswith("stream vs offline: n/a")


@pytest.mark.slow
def test_bench_script_end_to_end(bench, synthetic_kit, tmp_path):
    """The script as a user runs it, every stage, a 2-frame clip in fp32 (bf16 is emulated, far too slow, on a CPU
    without bf16 instructions): table on stdout, the JSON file, the offline renderer stage and its comparison with
    the stream."""
    proc, res = run_bench_script("bench", ["--models", str(synthetic_kit), "--device", "cpu", "--precision", "fp32",
                                  "--seconds", "0.08", "--size", "256", "--steps", "2", "--job-steps", "2",
                                  "--batch-size", "1", "--repeats", "1", "--warmup", "0"], tmp_path, timeout=1800)
    by = _check_rows(bench, res)
    assert res["inputs"]["frames"] == 2 and res["inputs"]["synthetic_models"]
    assert res["options"]["precision"] == "fp32" and res["options"]["backend"] == "pytorch"
    for name in ("warp", "decode", "render (pipeline renderer)", "offline renderer (render_frames)",
                 "whole offline job", "online first-frame latency", "online sustained"):
        assert not by[name]["skipped"], name
    for name in ("warp", "decode", "render (pipeline renderer)", "offline renderer (render_frames)",
                 "whole offline job", "online first-frame latency"):
        assert is_pos(by[name]["ms_per_unit"]), name
    frames = by["offline renderer (render_frames)"]  # the whole clip through render_frames, reported per frame
    assert frames["stage"] == "frames" and frames["unit"] == "clip (2 frames)" and frames["frames_per_unit"] == 2
    assert frames["ms_per_frame"] == pytest.approx(frames["ms_per_unit"] / 2)
    assert frames["fps"] == pytest.approx(1000 / frames["ms_per_frame"])
    job = by["whole offline job"]
    assert job["rtf"] == pytest.approx(job["ms_per_unit"] / 1000 / res["inputs"]["audio_seconds"])
    online = by["online sustained"]
    assert online["unit"] == "2 frames" and is_pos(online["ms_per_frame"]) and is_pos(online["rtf"])
    cmp = res["stream_vs_offline"]
    assert cmp["online_ms_per_frame"] == online["ms_per_frame"]
    assert cmp["offline_ms_per_frame"] == frames["ms_per_frame"] and cmp["target"] == 1.10
    assert cmp["ratio"] == pytest.approx(online["ms_per_frame"] / frames["ms_per_frame"])
    assert cmp["ok"] == (cmp["ratio"] <= 1.10)
    mem = res["memory"]
    assert is_pos(mem["job_peak_rss_mib"]) and is_pos(mem["peak_rss_mib"])
    table = table_rows(proc.stdout)
    assert table[0] == list(bench.HEADERS) and len(table) == 1 + len(res["rows"])
    assert "skipped" not in [r[2] for r in table[1:]]
    assert bench.format_comparison(cmp) in proc.stdout.splitlines()
    assert "memory: peak RSS" in proc.stdout


@pytest.mark.slow
def test_memory_scaling_mode(bench, synthetic_kit, tmp_path):
    """--memory-scaling: one fresh process per clip (given the stand-in renderer: the backend reaches the children),
    both peaks and their ratio reported."""
    proc, res = run_bench_script("bench", ["--memory-scaling", "--scaling-seconds", "0.04", "0.08", "--models",
                                  str(synthetic_kit), "--device", "cpu", "--precision", "fp32", "--size", "256",
                                  "--job-steps", "1", "--batch-size", "2", "--backend", "standin"], tmp_path)
    assert res["schema"] == "ditto-bench-memory/1" and res["options"]["backend"] == "standin"
    assert [r["seconds"] for r in res["runs"]] == [0.04, 0.08] and [r["frames"] for r in res["runs"]] == [1, 2]
    assert [r["backend"] for r in res["runs"]] == ["standin", "standin"]
    first, last = res["runs"]
    assert is_pos(first["job_peak_rss_mib"]) and is_pos(last["job_peak_rss_mib"])
    assert res["ratio"] == pytest.approx(last["job_peak_rss_mib"] / first["job_peak_rss_mib"])
    assert res["ok"] == (res["ratio"] <= 1.2)
    assert "peak RSS ratio 0.08 s / 0.04 s" in proc.stdout


def test_node_memory_script(synthetic_kit, tmp_path):
    """node_memory.py: each node and clip in a fresh process, through the pack's nodes; the output it reports is what
    the node made (Render Frames: 16 bytes per pixel and frame; Render Video: an mp4 file), and the ratios."""
    proc, res = run_bench_script("node_memory", ["--models", str(synthetic_kit), "--renderer", "standin",
                                  "--seconds", "0.04", "0.12", "--size", "256", "--batch-size", "2"], tmp_path)
    assert [(r["node"], r["seconds"], r["frames"]) for r in res["runs"]] == [
        ("video", 0.04, 1), ("video", 0.12, 3), ("frames", 0.04, 1), ("frames", 0.12, 3)]
    for r in res["runs"]:
        assert is_pos(r["peak_rss_mib"]) and r["peak_rss_mib"] >= r["rss_before_mib"] * 0.9
        if r["node"] == "frames":
            assert r["image_batch_mib"] == pytest.approx(r["frames"] * 256 * 256 * 16 / 2**20)
        else:
            assert r["file_mib"] > 0
    assert set(res["ratios"]) == {"video", "frames"}
    assert "Render Video: peak RSS 0.12 s / 0.04 s" in proc.stdout and "target <= 1.2x" in proc.stdout



# ----------------------------------------------------------------------------------------- batch_speed.py


def test_batch_speed_script(synthetic_models, tmp_path, monkeypatch):
    """batch_speed.py: two jobs on one portrait, as separate generate runs and as one batch (stand-in renderer, 1 DiT
    step, 1-frame clips): the commands, the table, the JSON, the same frames, the portrait registered once. The
    commands run in this process (each would be a fresh Python loading the models: tens of seconds here) with the
    session's loaded kit; the script's own process handling is one ``subprocess.run``."""
    import time

    from ditto_core.batch import ray_runner
    from ditto_core.runtime import DittoModels

    bs = load_bench_script("batch_speed")
    # what the child mode patches is put back after the test
    monkeypatch.setattr(DittoModels, "new_renderer", DittoModels.new_renderer)
    monkeypatch.setattr(ray_runner, "run_batch_ray", ray_runner.run_batch_ray)
    monkeypatch.setattr(DittoModels, "load", lambda *a, **k: synthetic_models)
    commands = []

    def run_here(cmd, what):
        commands.append(cmd)
        assert cmd[:5] == [sys.executable, str(BENCH_DIR / "batch_speed.py"), "--child", "standin", "--"], cmd
        t0, c0 = time.perf_counter(), time.process_time()
        assert bs.main(cmd[2:]) == 0, what
        return time.perf_counter() - t0, time.process_time() - c0

    monkeypatch.setattr(bs, "_run", run_here)
    args = bs.parse_args(["--models", str(tmp_path), "--renderer", "standin", "--jobs", "2", "--seconds", "0.04",
                          "--size", "256", "--steps", "1"])
    res = json.loads(json.dumps(bs.run_all(args)))
    assert [c[5] for c in commands] == ["generate", "generate", "batch"]
    assert "--steps" in commands[0] and commands[2][9:11] == ["--models", str(tmp_path)]
    assert res["schema"] == "ditto-bench-batch/1" and res["inputs"]["jobs"] == 2
    separate, batch = res["rows"]
    assert (separate["name"], separate["processes"], batch["name"], batch["processes"]) == ("separate", 2, "batch", 1)
    assert separate["frames"] == batch["frames"] == 2 and len(separate["job_walls_s"]) == 2
    assert batch["sources"] == {"registered": 1, "reused": 1} and len(batch["job_seconds"]) == 2
    assert len(separate["samples"]) == len(batch["samples"]) == 1 and batch["samples"][0]["wall_s"] == batch["wall_s"]
    assert is_pos(separate["wall_s"]) and is_pos(batch["wall_s"]) and separate["ratio"] == 1.0
    assert batch["ratio"] == pytest.approx(separate["wall_s"] / batch["wall_s"])
    assert is_pos(batch["cpu_s"]) and batch["cpu_ratio"] == pytest.approx(separate["cpu_s"] / batch["cpu_s"])
    text = bs.format_result(res)
    table = table_rows(text)
    assert table[0] == list(bs.HEADERS) == ["runner", "processes", "jobs", "frames", "wall s", "wall s/job",
                                            "wall: separate / this", "CPU s", "CPU: separate / this"]
    assert [r[0] for r in table[1:]] == ["separate `generate` processes", "`batch` (in-process)"]
    assert table[2][6] == f"{batch['ratio']:.2f}x" and table[2][8] == f"{batch['cpu_ratio']:.2f}x"
    assert "sources registered 1, reused 1" in text
    for bad in (["--jobs", "0"], ["--seconds", "0"], ["--steps", "0"], ["--models", str(tmp_path / "none")],
                ["--precision", "fp8"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            bs.parse_args(bad)


# --------------------------------------------------------------------------------------- source_memory.py


def test_source_memory_script(synthetic_kit, tmp_path):
    """source_memory.py: a 2- and a 4-frame video source registered through the runtime, the same 6 frames rendered
    from each (batch 2, the source read ping-pong): Source.f_s on the host, 2 volumes per render call whatever the
    source's length."""
    proc, res = run_bench_script("source_memory", ["--models", str(synthetic_kit), "--source-frames", "2", "4",
                                  "--frames", "6", "--size", "256", "--batch-size", "2"], tmp_path)
    assert res["schema"] == "ditto-bench-source-memory/1"
    vol = 32 * 16 * 64 * 64 * 4 / 2**20  # MiB per source frame
    assert [(r["source_frames"], r["frames"], r["calls"]) for r in res["runs"]] == [(2, 6, 3), (4, 6, 3)]
    for r in res["runs"]:
        assert r["f_s_device"] == "cpu" and not r["f_s_pinned"] and r["f_s_mib"] == pytest.approx(r["source_frames"] * vol)
        assert r["call_devices"] == ["cpu"] and r["cuda_peak_render_mib"] is None
        assert r["max_rows_per_call"] == 2 and r["peak_call_mib"] == pytest.approx(2 * vol)
        assert is_pos(r["register_s"]) and is_pos(r["render_s"])
    assert res["ratio"] == pytest.approx(1.0) and res["ok"] is True
    table = table_rows(proc.stdout)
    assert table[0][:2] == ["source frames", "Source.f_s MiB"] and [r[0] for r in table[1:]] == ["2", "4"]
    assert "device-resident volumes 4 / 2 source frames = 1.00x (target <= 1.1x: OK)" in proc.stdout
