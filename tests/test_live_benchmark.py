"""benchmarks/live_latency.py: the lag arithmetic on made-up traces, and the script end to end in its smallest mode
(in process and through a real server process, stand-in renderer, 2 DiT steps); structure and relations only,
never timings."""

from __future__ import annotations

import math

import pytest
from conftest import REPO_ROOT, is_pos, load_bench_script, run_bench_script, table_rows

pytest.importorskip("aiohttp")

BENCH_DIR = REPO_ROOT / "benchmarks"


@pytest.fixture(scope="module")
def live_latency():
    return load_bench_script("live_latency")




def test_summary_ratios_and_speech_delay(live_latency):
    ll = live_latency
    # two sessions, 3 frames each, hop 2: frame 2 is the only one after the first window
    pushes = [(640, 100.0), (1280, 100.04), (1600, 100.08)]
    a = ll.Trace(frames=[(0, 0.5, 101.0), (1, 0.6, 101.1), (2, 0.7, 101.2)], pushes=pushes, dropped=0)
    b = ll.Trace(frames=[(0, 0.3, 101.0), (1, 0.4, 101.1), (2, 0.9, 101.3)], pushes=pushes, dropped=1,
                 server_lags=[0.1, 0.2, 0.8])
    row = ll.summarize("websocket", "online", [a, b], hop=2, total=1600, steps=10, wall_s=1.0)
    assert row["frames"] == [3, 3] and row["frames_in_order"] == [True, True] and row["frames_dropped"] == [0, 1]
    assert row["first_frame_ms"] == pytest.approx([500.0, 300.0]) and row["first_frame_ms_max"] == pytest.approx(500.0)
    assert row["steady_frames"] == 2 and row["lag_median_ms"] == pytest.approx(800.0)  # frames 2: 0.7 and 0.9 s
    assert row["lag_p90_ms"] == pytest.approx(880.0) and "index >= 2" in row["steady_scope"]
    assert row["server_lag_median_ms"] == pytest.approx(800.0)  # b's frame 2 only
    assert row["transport_median_ms"] == pytest.approx(200.0)  # b: 0.2, 0.2, 0.1 s
    assert row["transport_p90_ms"] == pytest.approx(200.0)
    # frame 2 covers samples 1280..1920, capped at the clip's 1600: the last push; frame 0: the first push
    assert ll.speech_delays(a, 1600) == pytest.approx([1.0, 1.06, 1.12])
    short = ll.summarize("in-process", "offline-like", [a], hop=70, total=1600, steps=10, wall_s=1.0)
    assert short["steady_frames"] == 3 and short["lag_median_ms"] == pytest.approx(600.0)
    assert short["steady_scope"].startswith("every frame") and short["server_lag_median_ms"] is None
    assert short["transport_median_ms"] is None
    ip = {**row, "path": "in-process", "lag_median_ms": 400.0, "first_frame_ms_max": 250.0}
    (q,) = ll.ratios([ip, row])
    assert q == {"config": "online", "sessions": 2, "lag_median": pytest.approx(2.0), "first_frame": pytest.approx(2.0)}
    t = ll.targets([{**row, "sessions": 4}], "cuda", "real", 10, 10)
    assert t["judged"] and t["comparable"] and t["verdicts"] == [
        {"path": "websocket", "first_frame_ok": False, "lag_ok": False}]
    assert ll.targets([row], "cpu", "standin", 2, 10)["verdicts"] == []
    assert ll.settings_dict("offline-like", 2) == {"preset": "offline", "idle": False, "output": "crop",
                                                   "frame_queue": 160, "steps": 2}
    assert "steps" not in ll.settings_dict("online", None)


def test_argument_errors(live_latency, tmp_path):
    for bad in (["--models", str(tmp_path / "none")], ["--models", str(tmp_path), "--seconds", "0"],
                ["--models", str(tmp_path), "--sessions", "0"], ["--models", str(tmp_path), "--steps", "0"],
                ["--models", str(tmp_path), "--renderer", "fast"], ["--models", str(tmp_path), "--audio", "x.wav"]):
        with pytest.raises(SystemExit):
            live_latency.parse_args(bad)
    a = live_latency.parse_args(["--models", str(tmp_path)])
    assert a.sessions == [1, 4] and a.seconds == 4.0 and a.renderer == "real" and a.steps is None and a.warmup


def test_live_latency_script_smallest_mode(live_latency, synthetic_kit, tmp_path):
    """Both configurations, 1 and 2 sessions, both paths: every row there, one frame per 40 ms of speech in each
    session, in order, none dropped; the ratios are the quotients of the rows; the table and the verdict line."""
    seconds, counts = 0.8, [1, 2]
    proc, res = run_bench_script("live_latency", ["--models", synthetic_kit, "--device", "cpu", "--renderer", "standin",
                                                  "--steps", "2", "--seconds", seconds, "--sessions", *counts,
                                                  "--no-warmup"], tmp_path, timeout=600)
    assert res["schema"] == "ditto-live-latency/1"
    assert {"date", "machine", "versions", "options", "inputs", "setup", "rows", "ratios", "targets", "wall_s"} <= set(res)
    o, inp = res["options"], res["inputs"]
    assert o["device"] == "cpu" and o["renderer"] == "standin" and o["steps"] == 2 and o["sessions"] == counts
    assert res["setup"]["server_exit"] == 0  # the server stopped cleanly on SIGTERM
    frames = math.ceil(seconds * 25)
    assert inp["frames_per_session"] == frames and inp["synthetic_models"]
    hops = {c: v["hop"] for c, v in inp["configs"].items()}
    assert hops == {"online": 10, "offline-like": 70}
    rows = res["rows"]
    assert [(r["config"], r["sessions"], r["path"]) for r in rows] == [
        (c, n, p) for c in ("online", "offline-like") for n in counts for p in ("in-process", "websocket")]
    for r in rows:
        n = r["sessions"]
        assert r["frames"] == [frames] * n and r["frames_in_order"] == [True] * n, r
        assert r["frames_dropped"] == [0] * n and r["steps"] == 2 and r["hop"] == hops[r["config"]]
        assert len(r["first_frame_ms"]) == n and all(is_pos(v) for v in r["first_frame_ms"])
        assert r["first_frame_ms_max"] == max(r["first_frame_ms"])
        assert is_pos(r["lag_median_ms"]) and r["lag_p90_ms"] >= r["lag_median_ms"]
        assert is_pos(r["speech_delay_median_ms"]) and r["speech_delay_p90_ms"] >= r["speech_delay_median_ms"]
        after_first = n * (frames - hops[r["config"]])
        assert r["steady_frames"] == (after_first if after_first > 0 else n * frames), r
        if r["path"] == "websocket":  # a frame reaches the client after it left the server's stream
            assert r["lag_median_ms"] >= r["server_lag_median_ms"] - 1.0
            assert r["transport_median_ms"] >= -1.0 and r["transport_p90_ms"] >= r["transport_median_ms"]
        else:
            assert r["server_lag_median_ms"] is None and r["transport_median_ms"] is None
    by = {(r["path"], r["config"], r["sessions"]): r for r in rows}
    # the two paths of a pair ran back to back, the first of them alternating
    assert [sorted((rows[k]["run_order"], rows[k + 1]["run_order"])) for k in range(0, len(rows), 2)] == [
        [k, k + 1] for k in range(0, len(rows), 2)]
    assert [rows[k]["run_order"] < rows[k + 1]["run_order"] for k in range(0, len(rows), 2)] == [True, False] * 2
    assert [(q["config"], q["sessions"]) for q in res["ratios"]] == [(c, n) for c in ("online", "offline-like")
                                                                       for n in counts]
    for q in res["ratios"]:
        ws, ip = by[("websocket", q["config"], q["sessions"])], by[("in-process", q["config"], q["sessions"])]
        assert q["lag_median"] == pytest.approx(ws["lag_median_ms"] / ip["lag_median_ms"])
        assert q["first_frame"] == pytest.approx(ws["first_frame_ms_max"] / ip["first_frame_ms_max"])
    t = res["targets"]
    assert t["first_frame_ms"] == 250 and t["lag_ms"] == 200 and t["sessions"] == 4
    assert not t["judged"] and t["verdicts"] == [] and not t["comparable"]
    table = table_rows(proc.stdout)
    assert table[0] == list(live_latency.HEADERS) and table[1 + len(rows)] == list(live_latency.RATIO_HEADERS)
    assert len(table) == 2 + len(rows) + len(res["ratios"])
    assert [c[:3] for c in table[1 : 1 + len(rows)]] == [[r["path"], r["config"], str(r["sessions"])] for r in rows]
    assert "no verdict on cpu (CUDA only)" in proc.stdout and "OVER" not in proc.stdout
    assert "renderer standin (bench.StandinRenderer" in proc.stdout and "2 DiT steps (--steps" in proc.stdout
