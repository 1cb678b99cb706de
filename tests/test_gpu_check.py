"""benchmarks/gpu_check.py: its CPU path in tiny settings (the CUDA-only rows skipped with their reason),
the graph-capturable DiT step against the masked forward, the lag arithmetic, targets and statuses, the time budget."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO_ROOT, is_pos, load_bench_script, run_bench_script, table_rows

BENCH_DIR = REPO_ROOT / "benchmarks"


@pytest.fixture(scope="module")
def gpu_check():
    return load_bench_script("gpu_check")




def test_options_defaults_tiny_and_rows(gpu_check):
    opts, ns = gpu_check.parse_args([])
    assert opts.batches == (1, 4, 8) and opts.precisions == ("fp16", "bf16") and opts.seconds == 15.0
    assert opts.time_budget == 420.0 and opts.dit_steps == 10 and opts.job_steps is None and not opts.tiny
    assert opts.device == "auto" and ns.json is None
    rows = gpu_check._plan_rows(opts)
    render = [r for r in rows if r["check"] == "render"]
    assert len(render) == 2 * 3 * 2  # precision x batch x (without, with CUDA graphs)
    assert render[0]["name"] == "render + paste-back, fp16, batch 1"
    assert render[1]["name"] == "render + paste-back, fp16, batch 1, CUDA graphs"
    assert {r["target"] for r in render} == {">= 250"}
    options = [r for r in rows if r["check"] == "render_option"]  # each speed option, fp16 at the largest batch
    assert [r["name"] for r in options] == [f"render + paste-back, fp16, batch 8, {x}" for x in
                                            ("channels-last decoder", "torch.compile", "TensorRT")]
    assert [r["params"] for r in options] == [{"precision": "fp16", "batch": 8, "option": o}
                                              for o in gpu_check.SPEED_OPTIONS]
    assert {r["target"] for r in options} == {">= 250"}
    other = {r["check"]: r for r in rows if r["check"] not in ("render", "render_option")}
    assert other["dit"]["target"] is None and other["dit_graphs"]["target"] == "<= 10"
    assert other["dit_graphs"]["name"] == "DiT window (80 frames, 10 steps), CUDA graphs"
    assert other["offline_rtf"]["target"] == "<= 0.1" and other["offline_rtf"]["name"] == "offline real-time factor (15 s clip)"
    assert other["online_latency"]["target"] == "<= 250" and other["online_lag"]["target"] is None
    assert other["live_latency"]["name"] == "live first-frame latency (4 sessions, online, worst)"
    assert other["live_lag"]["name"] == "live steady lag (4 sessions, online, median)"
    assert other["live_latency"]["target"] == "<= 250" and other["live_lag"]["target"] == "<= 200"
    assert other["live_latency"]["params"] == other["live_lag"]["params"] == {"sessions": 4}
    assert [r["check"] for r in rows][len(render) + len(options):] == list(gpu_check.CHECKS[2:])
    for r in rows:
        assert set(r) == set(gpu_check.ROW_KEYS)

    tiny, _ = gpu_check.parse_args(["--tiny", "--precisions", "fp16", "--batches", "8", "--time-budget", "30"])
    assert tiny.tiny and tiny.size == 256 and tiny.seconds == 0.08 and tiny.batches == (1,)
    assert tiny.precisions == ("fp32",) and tiny.dit_steps == 1 and tiny.job_steps == 1
    assert tiny.warmup == 0 and tiny.repeats == 1 and tiny.render_frames == 1 and tiny.time_budget == 30.0
    assert tiny.live_sessions == 1 and opts.live_sessions == 4
    assert len(gpu_check._plan_rows(tiny)) == 2 + 3 + 7
    some, _ = gpu_check.parse_args(["--options", "compile", "--option-batch", "2", "--precisions", "bf16"])
    assert [r["name"] for r in gpu_check._plan_rows(some, "bf16") if r["check"] == "render_option"] == [
        "render + paste-back, bf16, batch 2, torch.compile"]
    assert gpu_check.parse_args(["--options"])[0].options == ()
    assert gpu_check.parse_args(["--live-sessions", "2"])[0].live_sessions == 2
    for bad in (["--precisions", "fp8"], ["--batches", "0"], ["--seconds", "0"], ["--time-budget", "-1"],
                ["--models", "/no/such/folder"], ["--repeats", "0"], ["--live-sessions", "0"], ["--options", "fp8"],
                ["--option-batch", "0"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)


def test_judge_and_status(gpu_check):
    row = gpu_check._new_row("render", "r", "frames/s", ">= 250")
    gpu_check._judge(row, 300.0)
    assert row["value"] == 300.0 and row["ok"] is True and gpu_check.status(row) == "OK"
    gpu_check._judge(row, 249.0)
    assert row["ok"] is False and gpu_check.status(row) == "MISS"
    dit = gpu_check._new_row("dit_graphs", "d", "ms", "<= 10")
    gpu_check._judge(dit, 9.5)
    assert dit["ok"] is True
    gpu_check._judge(dit, 10.5)
    assert dit["ok"] is False
    other = gpu_check._new_row("dit_graphs", "d", "ms", "<= 10")
    gpu_check._judge(other, 3.0, comparable=False, why_not="the target is for 10 steps")
    assert other["ok"] is None and gpu_check.status(other) == "n/a" and "the target is for 10 steps" in other["note"]
    lag = gpu_check._new_row("online_lag", "l", "ms")
    gpu_check._judge(lag, 120.0)
    assert lag["value"] == 120.0 and lag["ok"] is None and gpu_check.status(lag) == "n/a"
    gpu_check._skip(row, "no GPU")
    assert row["skipped"] and row["value"] is None and row["ok"] is None and gpu_check.status(row) == "skipped"
    row.update(skipped=False, error=True)
    assert gpu_check.status(row) == "ERROR"
    # CUDA-only rows on the CPU, and the precision the models load with
    cpu = torch.device("cpu")
    graphs = gpu_check._new_row("render", "g", "frames/s", None, precision="bf16", batch=1, cuda_graphs=True)
    fp16 = gpu_check._new_row("render", "h", "frames/s", None, precision="fp16", batch=1, cuda_graphs=False)
    bf16 = gpu_check._new_row("render", "b", "frames/s", None, precision="bf16", batch=1, cuda_graphs=False)
    assert "CUDA graphs need a CUDA device" in gpu_check._cuda_only(graphs, cpu)
    assert "fp16" in gpu_check._cuda_only(fp16, cpu) and gpu_check._cuda_only(bf16, cpu) is None
    compiled = gpu_check._new_row("render_option", "c", "frames/s", None, precision="bf16", batch=1, option="compile")
    trt = gpu_check._new_row("render_option", "t", "frames/s", None, precision="bf16", batch=1, option="tensorrt")
    lanes = gpu_check._new_row("render_option", "l", "frames/s", None, precision="bf16", batch=1,
                               option="channels_last")
    assert gpu_check._cuda_only(compiled, cpu).startswith("torch.compile is measured on CUDA only")
    assert gpu_check._cuda_only(trt, cpu) == "TensorRT cannot run here: the models run on cpu, TensorRT needs a CUDA device"
    assert gpu_check._cuda_only(lanes, cpu) is None
    # each measured option's note: its ratio to the plain row of its precision and batch
    plain = gpu_check._new_row("render", "p", "frames/s", None, precision="bf16", batch=1, cuda_graphs=False)
    plain["value"], lanes["value"], lanes["note"] = 200.0, 250.0, "1 frame"
    other = gpu_check._new_row("render_option", "o", "frames/s", None, precision="fp32", batch=1, option="compile")
    other["value"] = 10.0
    gpu_check._compare_options([plain, graphs], [lanes, other, trt])
    assert lanes["note"] == "1.25x the plain row's frames/s; 1 frame"
    assert other["note"].startswith("no plain row of this precision and batch") and trt["note"] == ""
    assert gpu_check._job_precision(gpu_check.GpuCheckOptions(), cpu) == "bf16"
    assert gpu_check._job_precision(gpu_check.GpuCheckOptions(), torch.device("cuda")) == "fp16"
    assert gpu_check._job_precision(gpu_check.GpuCheckOptions(precisions=("fp16",)), cpu) == "fp32"


def test_frame_lags(gpu_check):
    """Frame out minus the push that completed the audio it covers (640 samples a frame, capped at the clip)."""
    pushes = [(3200, 10.0), (6400, 10.2), (8000, 10.4)]
    frames = [(0, 10.5), (4, 10.6), (5, 10.9), (12, 11.0)]
    lags = gpu_check.frame_lags(frames, pushes, 8000)
    assert [i for i, _ in lags] == [0, 4, 5, 12]
    assert [v for _, v in lags] == pytest.approx([0.5, 0.6, 0.7, 0.6])


def test_graphable_guided_step_matches_the_masked_forward(gpu_check, synthetic_models, one_torch_thread):
    """The DiT's batched guided step (written without host reads, so a CUDA graph can capture it) gives the x0 of
    the mask-based forward and of two separate passes; with the schedule's tables "on the device" two DDIM steps give
    sample_window's window. The graph itself needs CUDA."""
    from ditto_core.audio2motion import Audio2MotionConfig, sample_window
    from ditto_core.sampler import CosineSchedule, ddim_sample, draw_eta_noises, draw_normal

    lmdm = synthetic_models.lmdm
    g = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        for b, times in ((1, [999]), (2, [499, 99])):
            x = torch.randn(b, 80, 265, generator=g)
            cf = 0.1 * torch.randn(b, 265, generator=g)
            cond = torch.randn(b, 80, 1103, generator=g)
            t = torch.tensor(times)
            keep = torch.tensor([True] * b + [False] * b)
            both = lmdm.forward_masked(torch.cat([x, x]), torch.cat([cf, cf]), torch.cat([cond, cond]),
                                       torch.cat([t, t]), keep)
            ref = both[b:] + (both[:b] - both[b:]) * 2.0
            out = lmdm.guided(x, cf, cond, t, 2.0, batched=True)
            assert out.shape == ref.shape == (b, 80, 265)
            assert torch.equal(out, ref)
            two = lmdm.guided(x, cf, cond, t, 2.0, batched=False)
            assert float((out - two).norm() / two.norm()) < 1e-5
        kp, cond = cf[0], cond[0]
        cfg = Audio2MotionConfig(steps=2, guidance=1.5)
        noises = draw_eta_noises(2, (80, 265), g)
        x0 = draw_normal((80, 265), g)
        ref = sample_window(lmdm, kp, cond, x0, noises, CosineSchedule(), cfg)
        schedule = gpu_check.device_schedule(torch.device("cpu"))

        def den(x, step):
            return lmdm.guided(x, kp[None], cond[None], torch.full((1,), step), cfg.guidance, batched=True)

        out = ddim_sample(den, x0[None], schedule, 2, noises)[0]
        assert float((out - ref).norm() / ref.norm()) < 1e-5
        with pytest.raises(ValueError, match="CUDA"):
            gpu_check.GraphedGuidedDenoiser(lmdm, kp, cond, 2.0)



def test_speed_option_rows_get_the_renderer_they_name(gpu_check, synthetic_models):
    """Each option row's renderer is the plain PyTorch one with that option on (nothing rendered here: the rows'
    timing loop is the plain rows'); TensorRT where it cannot run is a skip with its reason, not the fallback."""
    from ditto_core.render import BackendUnavailable, Renderer, RendererConfig

    config = RendererConfig("fp32", 2)
    for option in ("channels_last", "compile"):
        r = gpu_check._option_renderer(synthetic_models, config, option)
        assert type(r) is Renderer and r.config == RendererConfig("fp32", 2, **{option: True})
    with pytest.raises(BackendUnavailable, match="TensorRT needs a CUDA device"):
        gpu_check._option_renderer(synthetic_models, config, "tensorrt")
    row = gpu_check._new_row("render_option", "t", "frames/s", None, precision="fp32", batch=1, option="tensorrt")
    gpu_check._render_row(gpu_check.GpuCheckOptions(device="cpu").tiny_settings(), synthetic_models, None, None, row,
                          lambda m: None)
    assert row["skipped"] and row["note"].startswith("TensorRT unavailable: the models run on cpu")

def test_time_budget_skips_rows(gpu_check, synthetic_models):
    """Rows that would start after the budget are skipped with a note (CUDA-only ones with their own reason)."""
    opts = gpu_check.GpuCheckOptions(device="cpu", time_budget=0.0).tiny_settings()
    res = json.loads(json.dumps(gpu_check.run_check(opts, models=synthetic_models)))
    assert res["schema"] == "ditto-gpu-check/1" and res["options"]["time_budget"] == 0.0
    assert len(res["rows"]) == 12
    for r in res["rows"]:
        assert r["skipped"] and r["value"] is None and r["ok"] is None and not r["error"]
        if r["params"].get("cuda_graphs"):
            assert r["note"].startswith("CUDA graphs need a CUDA device"), r
        elif r["params"].get("option") in ("compile", "tensorrt"):
            assert r["note"].startswith(("torch.compile is measured on CUDA only", "TensorRT cannot run here")), r
        else:
            assert r["note"].startswith("time budget spent") and "of 0 s" in r["note"], r
    table = table_rows(gpu_check.format_check(res))
    assert [c[-1] for c in table[1:]] == ["skipped"] * 12


@pytest.mark.slow
def test_gpu_check_tiny_on_the_cpu(gpu_check, synthetic_kit, tmp_path):
    """The script as a user runs it, --tiny on the CPU: every target row present, the CUDA-only rows skipped with the
    reason, the CPU rows measured; the table on stdout and the JSON file. Warp + decode are the stand-in (the script's
    own path is under test; the real renderer's frames, seconds each here, are the render and stream tests')."""
    proc, res = run_bench_script("gpu_check", ["--tiny", "--device", "cpu", "--models", str(synthetic_kit),
                                  "--time-budget", "100000", "--options", "compile", "tensorrt", "--renderer",
                                  "standin"], tmp_path, timeout=1800)
    assert res["schema"] == "ditto-gpu-check/1"
    assert {"date", "machine", "versions", "options", "setup", "rows", "wall_s", "load_average_end"} <= set(res)
    o = res["options"]
    assert o["tiny"] and o["device"] == "cpu" and o["precisions"] == ["fp32"] and o["batches"] == [1]
    assert o["job_precision"] == "fp32" and o["seconds"] == 0.08 and o["renderer"] == "standin"
    rows = res["rows"]
    assert [r["name"] for r in rows] == [
        "render + paste-back, fp32, batch 1", "render + paste-back, fp32, batch 1, CUDA graphs",
        "render + paste-back, fp32, batch 1, torch.compile", "render + paste-back, fp32, batch 1, TensorRT",
        "DiT window (80 frames, 1 step)", "DiT window (80 frames, 1 step), CUDA graphs",
        "offline real-time factor (0.08 s clip)", "online first-frame latency", "online steady lag (median)",
        "live first-frame latency (1 session, online, worst)", "live steady lag (1 session, online, median)",
    ]
    assert [r["check"] for r in rows] == ["render", "render", *["render_option"] * 2, *gpu_check.CHECKS[2:]]
    assert [r["target"] for r in rows] == [">= 250"] * 4 + [None, "<= 10", "<= 0.1", "<= 250", None, "<= 250",
                                           "<= 200"]
    by = {r["name"]: r for r in rows}
    for r in rows:
        assert set(r) == set(gpu_check.ROW_KEYS) and not r["error"], r
        if r["params"].get("cuda_graphs") or r["params"].get("option") in ("compile", "tensorrt"):
            assert r["skipped"] and r["value"] is None and r["ok"] is None
            assert r["note"] in ("CUDA graphs need a CUDA device (this run: cpu)",
                                 "torch.compile is measured on CUDA only (this run: cpu, where it compiles for minutes)",
                                 "TensorRT cannot run here: the models run on cpu, TensorRT needs a CUDA device"), r
        else:
            assert not r["skipped"] and is_pos(r["value"]) and r["timer"] == "wall", r
            assert all(v > 0 for v in r["samples_ms"]) and r["samples_ms"]
    render = by["render + paste-back, fp32, batch 1"]
    assert render["value"] == pytest.approx(1000.0 / render["samples_ms"][0], rel=1e-3)  # 1 frame per run
    assert render["ok"] == (render["value"] >= 250)
    dit = by["DiT window (80 frames, 1 step)"]
    assert dit["value"] == pytest.approx(dit["samples_ms"][0], rel=1e-3) and dit["ok"] is None
    rtf = by["offline real-time factor (0.08 s clip)"]
    assert rtf["value"] == pytest.approx(rtf["samples_ms"][0] / 1000 / 0.08, rel=1e-3)
    assert rtf["ok"] is None and "the target is for a 15 s clip" in rtf["note"]  # a 0.08 s clip: not comparable
    lat = by["online first-frame latency"]
    assert lat["ok"] == (lat["value"] <= 250) and "pushed in real time" in lat["note"]
    lag = by["online steady lag (median)"]
    lags = sorted(lag["samples_ms"])
    assert len(lags) == 2 and lag["value"] == pytest.approx((lags[0] + lags[1]) / 2, rel=1e-3)  # the median of two
    assert "all 2 frames" in lag["note"]  # a 0.08 s clip has no frame after the first window's hop
    # the live rows: one session (the targets are for 4 at 10 steps: n/a), its frame 0 and every frame of the clip
    live_lat = by["live first-frame latency (1 session, online, worst)"]
    live_lag = by["live steady lag (1 session, online, median)"]
    assert len(live_lat["samples_ms"]) == 1 and live_lat["value"] == pytest.approx(live_lat["samples_ms"][0], rel=1e-3)
    live_lags = sorted(live_lag["samples_ms"])
    assert len(live_lags) == 2 and live_lag["value"] == pytest.approx((live_lags[0] + live_lags[1]) / 2, rel=1e-3)
    assert live_lat["samples_ms"][0] in live_lag["samples_ms"]  # frame 0's lag is one of the clip's
    for r in (live_lat, live_lag):
        assert r["ok"] is None and "status n/a: the targets are for 4 sessions at 10 steps" in r["note"]
        assert "2 frames per session, 0 dropped" in r["note"]
    assert "every frame (the clip ends before frame 10" in live_lag["note"]
    table = table_rows(proc.stdout)
    assert table[0] == list(gpu_check.HEADERS) and len(table) == 1 + len(rows)
    assert [c[0] for c in table[1:]] == [r["name"] for r in rows]
    assert [c[-1] for c in table[1:]] == [gpu_check.status(r) for r in rows]
    assert [c[-1] for c in table[1:]].count("skipped") == 4 and "ERROR" not in proc.stdout
    assert "TINY settings" in proc.stdout and "time:" in proc.stdout.splitlines()[-1]
