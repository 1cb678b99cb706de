"""Live latency: first-frame latency and steady lag of live sessions, in process and through the WebSocket server.

    python benchmarks/live_latency.py --models DIR --device cuda                      # the GPU targets' setting
    python benchmarks/live_latency.py --models DIR --device cpu --renderer standin --steps 2   # a CPU

For each configuration, "online" (``LiveSettings(preset="online")``: overlap 70, a DiT window every 10 frames, the
release's 10 steps) and "offline-like" (``preset="offline"``: overlap 10, a window every 70 frames), and each
``--sessions`` count (1 and 4), ``--seconds`` of speech (the sample speech, ``example_inputs/ditto_speech_long.flac``,
16 kHz) are pushed in real time, 20 ms pieces paced by the wall clock, into that many concurrent sessions
(``idle=False``, ``output="crop"``), along two paths:

* in-process: :class:`ditto_core.live.LiveSession` objects in this process (JPEG encoding on, as the WebSocket
  transport runs them); a frame's lag is ``frame.lag``: from the audio that made it possible entering the pipeline
  (taken in by the stream's motion thread) to the frame coming out of the stream.
* websocket: a real server process (``tests/live_server.py``, i.e. ``python -m ditto_core serve``, with
  ``--standin`` for the stand-in renderer) and the reference client :class:`ditto_core.live.client.LiveClient`, one
  connection per session, f32le audio; a frame's lag is measured by the client: its receive time (``time.time()``)
  minus ``header["audio_wall_time"]`` (the same start as in process: this machine's clock, both processes).

Per row: frames per session, first-frame latency (frame 0's lag; the worst session), steady lag (median and p90 over
every session's frames after the first DiT window: index >= the hop; every frame when the clip is shorter), the
delay behind the speech (a frame's arrival minus the push of the last sample of its own 40 ms of audio: the lag plus
the DiT's look-ahead and the queues before the pipeline), the transport time of the websocket rows (per frame, the
client's lag minus the server's own ``lag`` of that frame in its header: JPEG encoding, the frame queue, the send and
the receive), frames dropped. The ratios websocket / in-process of the median steady lag and of the first-frame
latency, per configuration and session count, are the transport's overhead as a user sees it (two runs: their
pipelines' own run-to-run spread is in it too; the transport column is measured within one run).
The two paths of each configuration and count run back to back, in alternating order, after one untimed warm-up
session per path.

GPU targets (H100 class, 4 sessions, online, real renderer, fp16): first frame <= 250 ms, steady lag <= 200 ms; the
verdict (OK / OVER) is printed only on a CUDA device. ``--renderer standin`` replaces warp + decode with the
benchmarks' shape-identical stand-in (``bench.StandinRenderer``) in every session: the real renderer takes about 10 s
per 512x512 frame on a CPU. On a CPU nothing keeps up with real time: the figures are what they are, the ratios are
the point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO_ROOT,
    describe_environment,
    ensure_repo_on_path,
    fmt_num,
    format_table,
    load_average,
    machine_info,
    now_iso,
    report,
    versions,
)

ensure_repo_on_path()

import numpy as np

SCHEMA = "ditto-live-latency/1"
SAMPLE_RATE = 16000
FPS = 25
FRAME_SAMPLES = SAMPLE_RATE // FPS
#: the real-time feed: 20 ms pieces
PIECE = SAMPLE_RATE // 50
#: configuration name -> the LiveSettings preset
CONFIGS = {"online": "online", "offline-like": "offline"}
PATHS = ("in-process", "websocket")
#: frames kept for a slow reader: the settings' advice is above the hop plus a render batch (10 + 4 online, the
#: default 32; 70 + 4 for the offline-like windows, which come out 70 at a time)
FRAME_QUEUE = {"online": 32, "offline-like": 160}
#: the GPU targets (H100 class): first frame and median steady lag with this many sessions, online, fp16
FIRST_FRAME_TARGET_MS = 250.0
LAG_TARGET_MS = 200.0
TARGET_SESSIONS = 4
DEFAULT_AUDIO = REPO_ROOT / "example_inputs" / "ditto_speech_long.flac"
DEFAULT_AVATAR = REPO_ROOT / "example_inputs" / "ditto_portrait.jpg"
SERVER_SCRIPT = REPO_ROOT / "tests" / "live_server.py"

LogFn = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ inputs


def load_speech(path: str | Path, seconds: float) -> np.ndarray:
    """``seconds`` of 16 kHz float32 speech from ``path`` (``ditto_core.audio.load_audio``), repeated when shorter."""
    from ditto_core.audio import load_audio

    x = load_audio(str(path))
    n = round(seconds * SAMPLE_RATE)
    if n < 1:
        raise ValueError(f"seconds: {seconds} gives no sample")
    return np.ascontiguousarray(np.tile(x, math.ceil(n / x.shape[0]))[:n], dtype=np.float32)


def settings_dict(config: str, steps: int | None) -> dict[str, Any]:
    """The session settings of a configuration (the same for both paths; the WebSocket client sends them as JSON)."""
    d: dict[str, Any] = {"preset": CONFIGS[config], "idle": False, "output": "crop", "frame_queue": FRAME_QUEUE[config]}
    if steps is not None:
        d["steps"] = int(steps)
    return d


# ------------------------------------------------------------------------------------------------ traces


@dataclass
class Trace:
    """One session of one run: ``frames`` ``(index, lag s, arrival wall time)`` in arrival order; ``pushes``
    ``(samples pushed so far, wall time of the push)``; ``server_lags``: the server's own ``lag`` of each frame
    (websocket: the frame header's, the in-process measure taken in the server; empty in process)."""

    frames: list[tuple[int, float, float]] = field(default_factory=list)
    pushes: list[tuple[int, float]] = field(default_factory=list)
    dropped: int = 0
    server_lags: list[float] = field(default_factory=list)


def speech_delays(trace: Trace, total: int) -> list[float]:
    """Per frame: its arrival minus the push that completed its own 640 samples (at most the clip's end)."""
    out = []
    for idx, _, t_in in trace.frames:
        need = min((idx + 1) * FRAME_SAMPLES, total)
        t_push = next((t for end, t in trace.pushes if end >= need), trace.pushes[-1][1])
        out.append(t_in - t_push)
    return out


def _pct(values: Sequence[float], q: float) -> float | None:
    return None if not values else float(np.percentile(np.asarray(values, dtype=np.float64), q))


def first_frame_ms(traces: Sequence[Trace]) -> list[float | None]:
    """Each session's first-frame latency: frame 0's lag (ms; None when it has no frame 0)."""
    out: list[float | None] = []
    for tr in traces:
        lag0 = next((lag for i, lag, _ in tr.frames if i == 0), None)
        out.append(None if lag0 is None else lag0 * 1000.0)
    return out


def steady_lags(traces: Sequence[Trace], hop: int) -> tuple[list[float], int, str]:
    """The lags (ms) of every session's frames after the first DiT window (index >= ``hop``), or of every frame when
    the clip ends before that -> (lags, the first index counted, a description)."""
    steady = [lag * 1000.0 for tr in traces for i, lag, _ in tr.frames if i >= hop]
    if steady:
        return steady, hop, f"frames with index >= {hop} (after the first DiT window)"
    return ([lag * 1000.0 for tr in traces for _, lag, _ in tr.frames], 0,
            f"every frame (the clip ends before frame {hop}, the first after the first DiT window)")


def summarize(path: str, config: str, traces: Sequence[Trace], hop: int, total: int, steps: int,
              wall_s: float) -> dict[str, Any]:
    """The row of one run (milliseconds)."""
    first = first_frame_ms(traces)
    steady, lo, scope = steady_lags(traces, hop)
    delays: list[float] = []
    server: list[float] = []
    transport: list[float] = []
    for tr in traces:
        delays += [d * 1000.0 for d in speech_delays(tr, total)] if tr.frames else []
        server += [v * 1000.0 for (i, _, _), v in zip(tr.frames, tr.server_lags) if i >= lo]
        transport += [(lag - v) * 1000.0 for (_, lag, _), v in zip(tr.frames, tr.server_lags)]
    firsts = [v for v in first if v is not None]
    return {
        "path": path, "config": config, "preset": CONFIGS[config], "sessions": len(traces), "steps": steps, "hop": hop,
        "frames": [len(tr.frames) for tr in traces],
        "frames_in_order": [[i for i, _, _ in tr.frames] == list(range(len(tr.frames))) for tr in traces],
        "frames_dropped": [tr.dropped for tr in traces],
        "first_frame_ms": first,
        "first_frame_ms_max": max(firsts) if firsts else None,
        "lag_median_ms": _pct(steady, 50), "lag_p90_ms": _pct(steady, 90), "steady_frames": len(steady),
        "steady_scope": scope,
        "speech_delay_median_ms": _pct(delays, 50), "speech_delay_p90_ms": _pct(delays, 90),
        "server_lag_median_ms": _pct(server, 50) if server else None,
        "transport_median_ms": _pct(transport, 50) if transport else None,
        "transport_p90_ms": _pct(transport, 90) if transport else None,
        "wall_s": wall_s,
    }


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """websocket / in-process of the median steady lag and of the (worst session's) first-frame latency, per
    configuration and session count."""
    out = []
    by = {(r["path"], r["config"], r["sessions"]): r for r in rows}
    for (path, config, n), ws in by.items():
        ip = by.get(("in-process", config, n))
        if path != "websocket" or ip is None:
            continue

        def q(a: float | None, b: float | None) -> float | None:
            return None if a is None or not b else a / b

        out.append({"config": config, "sessions": n,
                    "lag_median": q(ws["lag_median_ms"], ip["lag_median_ms"]),
                    "first_frame": q(ws["first_frame_ms_max"], ip["first_frame_ms_max"])})
    return out


# ------------------------------------------------------------------------------------------------ in process


def run_inprocess(models: Any, source: Any, settings: dict[str, Any], sessions: int, wave: np.ndarray,
                  renderer_factory: Callable[[], Any] | None = None, timeout: float = 1800.0
                  ) -> tuple[list[Trace], int]:
    """``sessions`` concurrent :class:`LiveSession` objects fed ``wave`` in real time (20 ms pieces) from one feeder
    thread, their frames taken as they come -> (one :class:`Trace` per session, the hop)."""
    from ditto_core.live import LiveSession, LiveSettings

    st = LiveSettings(**settings)
    wake = threading.Event()
    live = []
    try:
        for _ in range(sessions):
            renderer = None if renderer_factory is None else renderer_factory()
            live.append(LiveSession(models, source, st, renderer=renderer, on_frame=wake.set, jpeg=True))
        hop = int(live[0].hop)
        traces = [Trace() for _ in live]
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                t0 = time.perf_counter()
                for k, i in enumerate(range(0, wave.shape[0], PIECE)):
                    wait = t0 + k * PIECE / SAMPLE_RATE - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    end = min(i + PIECE, wave.shape[0])
                    for s, tr in zip(live, traces):
                        tr.pushes.append((end, time.time()))
                        s.push(wave[i:end])
                for s in live:
                    s.end()
            except BaseException as e:  # noqa: BLE001 - handed to the taker
                errors.append(e)
            wake.set()

        feeder = threading.Thread(target=feed, name="live-latency-feeder", daemon=True)
        feeder.start()
        deadline = time.monotonic() + timeout
        try:
            while True:
                wake.wait(0.05)
                wake.clear()
                done = True
                for s, tr in zip(live, traces):
                    finished = s.finished.is_set()  # before the take: no frame comes after it is set
                    got = s.take()
                    now = time.time()
                    tr.frames += [(f.index, f.lag, now) for f in got]
                    done = done and finished
                if errors:
                    raise errors[0]
                if done and not feeder.is_alive():
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"in-process run: not finished after {timeout:g} s")
        finally:
            feeder.join()
        for s, tr in zip(live, traces):
            tr.dropped = int(s.stats()["frames_dropped"])
        return traces, hop
    finally:
        for s in live:
            s.close()


# ------------------------------------------------------------------------------------------------ websocket


class LiveServer:
    """``tests/live_server.py`` (``python -m ditto_core serve``; ``--standin``: the stand-in renderer) in a child
    process on 127.0.0.1, any free port; ``start()`` returns at once, ``wait_ready()`` until it listens."""

    def __init__(self, models: str, device: str, precision: str, avatar: Path, max_sessions: int,
                 standin: bool) -> None:
        self.argv = [sys.executable, str(SERVER_SCRIPT), "--models", str(models), "--device", device,
                     "--precision", precision, "--port", "0", "--avatar", str(avatar), "--max-sessions",
                     str(max_sessions), "--no-webrtc", *(["--standin"] if standin else [])]
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.url: str | None = None
        self.avatar: str | None = None

    def start(self) -> LiveServer:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=REPO_ROOT)
        return self

    def wait_ready(self, timeout: float = 600.0) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        end = time.monotonic() + timeout
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the live server exited:\n" + "".join(self.lines[-40:]))
            self.lines.append(line)
            if m := re.match(r"avatar (\w+):", line):
                self.avatar = m.group(1)
            if m := re.match(r"serving on (http://127\.0\.0\.1:\d+)/", line):
                self.url = m.group(1)
            if time.monotonic() > end:
                raise RuntimeError(f"the live server did not start in {timeout:g} s")
        if self.avatar is None:
            raise RuntimeError("the live server registered no avatar:\n" + "".join(self.lines[-40:]))
        threading.Thread(target=self._drain, name="live-latency-server-log", daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


async def _run_websocket(url: str, avatar: str, settings: dict[str, Any], sessions: int, wave: np.ndarray
                         ) -> list[Trace]:
    from ditto_core.live.client import LiveClient

    traces = [Trace() for _ in range(sessions)]
    async with LiveClient(url) as client, contextlib.AsyncExitStack() as stack:
        # the server closes a session after its connection ends: wait until the last run's are gone (its limit)
        while (await client.health())["sessions"]:
            await asyncio.sleep(0.02)
        conns = [await stack.enter_async_context(client.session(avatar, settings)) for _ in range(sessions)]
        t0 = time.perf_counter()

        async def feed(conn: Any, tr: Trace) -> None:
            for k, i in enumerate(range(0, wave.shape[0], PIECE)):
                wait = t0 + k * PIECE / SAMPLE_RATE - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                end = min(i + PIECE, wave.shape[0])
                tr.pushes.append((end, time.time()))
                await conn.push(wave[i:end])
            await conn.end()

        async def receive(conn: Any, tr: Trace) -> None:
            ended = False
            async for item in conn.events():
                now = time.time()
                if isinstance(item, dict):
                    if item.get("type") == "error":
                        raise RuntimeError(f"the server sent an error: {item.get('code')}: {item.get('message')}")
                    if item.get("type") == "ended":
                        tr.dropped = int(item.get("frames_dropped") or 0)
                        ended = True
                    continue
                h = item.header
                tr.frames.append((int(h["index"]), now - float(h["audio_wall_time"]), now))
                tr.server_lags.append(float(h["lag"]))
            if not ended:
                raise RuntimeError("the connection closed before the 'ended' event")

        await asyncio.gather(*(feed(c, t) for c, t in zip(conns, traces)),
                             *(receive(c, t) for c, t in zip(conns, traces)))
    return traces


def run_websocket(url: str, avatar: str, settings: dict[str, Any], sessions: int, wave: np.ndarray,
                  timeout: float = 1800.0) -> list[Trace]:
    """``sessions`` concurrent WebSocket sessions on the server at ``url``, fed ``wave`` in real time."""
    return asyncio.run(asyncio.wait_for(_run_websocket(url, avatar, settings, sessions, wave), timeout))


# ------------------------------------------------------------------------------------------------ the run


def _hop(models: Any, config: str) -> int:
    """The frames between two DiT windows of a configuration (80 - overlap)."""
    from ditto_core.live import LiveSettings
    from ditto_core.runtime.stream import online_config

    opts = LiveSettings(**settings_dict(config, None)).job_options(models.release.offline.overlap)
    return int(online_config(models, opts).hop)


def run_all(args: argparse.Namespace, log: LogFn | None = None) -> dict[str, Any]:
    import torch

    from ditto_core.live.avatars import AvatarCache
    from ditto_core.runtime import DittoModels, resolve_device

    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    device = resolve_device(args.device)
    precision = args.precision or ("fp16" if device.type == "cuda" else "fp32")
    standin = args.renderer == "standin"
    sessions = sorted(dict.fromkeys(args.sessions))
    wave = load_speech(args.audio, args.seconds)
    n_frames = math.ceil(wave.shape[0] / SAMPLE_RATE * FPS)
    machine = machine_info(device)
    date = now_iso()

    server = LiveServer(args.models, str(device), precision, Path(args.avatar), max(sessions), standin).start()
    try:
        say(f"loading the models ({device}, {precision}) here; the server process loads its own")
        t = time.perf_counter()
        models = DittoModels.load(args.models, device=device, precision=precision, download=False, progress=False)
        load_s = time.perf_counter() - t
        avatar = AvatarCache(models).register(Path(args.avatar).read_bytes(), Path(args.avatar).name)[0]
        if standin:
            import bench

            def factory() -> Any:
                return bench.StandinRenderer(models.device, 4)
        else:
            factory = None
        server.wait_ready()
        say(f"server {server.url}, avatar {server.avatar}")
        steps = args.steps if args.steps is not None else int(models.release.online.steps)
        setup_s = time.perf_counter() - t_start
        if args.warmup:
            warm = wave[: min(wave.shape[0], SAMPLE_RATE)]
            say("warm-up: one untimed session per path (1 s)")
            run_inprocess(models, avatar.source, settings_dict("online", args.steps), 1, warm, factory)
            run_websocket(server.url, server.avatar, settings_dict("online", args.steps), 1, warm)
        rows = []
        runs = 0
        for config in CONFIGS:
            hop = _hop(models, config)
            for n in sessions:
                st = settings_dict(config, args.steps)
                pair = {}
                # the two paths of a pair run back to back, in alternating order (no path always goes first)
                for path in (PATHS if runs % 4 == 0 else PATHS[::-1]):
                    say(f"{config}, {n} session(s), {path}")
                    t = time.perf_counter()
                    if path == "in-process":
                        traces, hop_run = run_inprocess(models, avatar.source, st, n, wave, factory)
                    else:
                        traces, hop_run = run_websocket(server.url, server.avatar, st, n, wave), hop
                    pair[path] = summarize(path, config, traces, hop_run, wave.shape[0], steps,
                                           time.perf_counter() - t)
                    pair[path]["run_order"] = runs
                    runs += 1
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows += [pair[p] for p in PATHS]
    finally:
        rc = server.stop()
    return {
        "schema": SCHEMA,
        "date": date,
        "machine": machine,
        "versions": versions(),
        "options": {"models": str(args.models), "device": str(device), "precision": precision,
                    "renderer": args.renderer, "steps": args.steps, "release_steps": int(models.release.online.steps),
                    "seconds": args.seconds, "sessions": sessions, "audio": str(args.audio),
                    "avatar": str(args.avatar), "warmup": bool(args.warmup), "piece_ms": PIECE * 1000 // SAMPLE_RATE},
        "inputs": {"samples": int(wave.shape[0]), "frames_per_session": n_frames,
                   "synthetic_models": (Path(args.models) / "SYNTHETIC_MODELS.txt").exists(),
                   "configs": {c: {"preset": p, "hop": _hop(models, c), "frame_queue": FRAME_QUEUE[c]}
                               for c, p in CONFIGS.items()}},
        "setup": {"load_models_s": load_s, "setup_s": setup_s, "server_exit": rc},
        "rows": rows,
        "ratios": ratios(rows),
        "targets": targets(rows, device.type, args.renderer, steps, int(models.release.online.steps), precision),
        "wall_s": time.perf_counter() - t_start,
        "load_average_end": load_average(),
    }


def targets(rows: Sequence[dict[str, Any]], device_type: str, renderer: str, steps: int, release_steps: int,
            precision: str = "fp16") -> dict[str, Any]:
    """The GPU targets and, on a CUDA device, the verdict of each path's online row with 4 sessions (``comparable``:
    the run is the targets' setting: the real renderer, the release's steps, fp16)."""
    out: dict[str, Any] = {"first_frame_ms": FIRST_FRAME_TARGET_MS, "lag_ms": LAG_TARGET_MS,
                           "sessions": TARGET_SESSIONS, "config": "online", "judged": device_type == "cuda",
                           "comparable": renderer == "real" and steps == release_steps and precision == "fp16",
                           "verdicts": []}
    if device_type != "cuda":
        return out
    for r in rows:
        if r["config"] == "online" and r["sessions"] == TARGET_SESSIONS:
            ff, lag = r["first_frame_ms_max"], r["lag_median_ms"]
            out["verdicts"].append({"path": r["path"], "first_frame_ok": ff is not None and ff <= FIRST_FRAME_TARGET_MS,
                                    "lag_ok": lag is not None and lag <= LAG_TARGET_MS})
    return out


# ------------------------------------------------------------------------------------------------ output

HEADERS = ("path", "config", "sessions", "frames/session", "first frame ms (worst)", "steady lag median ms",
           "steady lag p90 ms", "behind speech median ms", "transport median ms", "dropped")
RATIO_HEADERS = ("config", "sessions", "steady lag median websocket / in-process",
                 "first frame websocket / in-process")


def _frames_cell(frames: Sequence[int]) -> str:
    return str(frames[0]) if len(set(frames)) == 1 else "/".join(map(str, frames))


def format_result(result: dict[str, Any]) -> str:
    o, inp = result["options"], result["inputs"]
    steps = o["steps"] if o["steps"] is not None else o["release_steps"]
    given = "" if o["steps"] is None else f" (--steps; the release: {o['release_steps']})"
    cfgs = ", ".join(f"{c}: preset {v['preset']}, hop {v['hop']}, frame queue {v['frame_queue']}"
                     for c, v in inp["configs"].items())
    head = [
        f"ditto live latency (live sessions fed in real time, in process and over WebSocket), {result['date']}",
        describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
        (f"device {o['device']}, precision {o['precision']}, renderer {o['renderer']}"
         f"{' (bench.StandinRenderer: warp + decode replaced, every session)' if o['renderer'] == 'standin' else ''}, "
         f"{steps} DiT steps{given}"),
        (f"{o['seconds']:g} s of {Path(o['audio']).name} per session ({inp['frames_per_session']} frames), "
         f"{o['piece_ms']} ms pieces in real time, idle off, output crop; {cfgs}; models {o['models']}"
         f"{' (SYNTHETIC kit)' if inp['synthetic_models'] else ''}"),
        "",
    ]
    rows = [(r["path"], r["config"], str(r["sessions"]), _frames_cell(r["frames"]), fmt_num(r["first_frame_ms_max"]),
             fmt_num(r["lag_median_ms"]), fmt_num(r["lag_p90_ms"]), fmt_num(r["speech_delay_median_ms"]),
             fmt_num(r["transport_median_ms"]), str(sum(r["frames_dropped"]))) for r in result["rows"]]
    rrows = [(q["config"], str(q["sessions"]), "-" if q["lag_median"] is None else f"{q['lag_median']:.2f}x",
              "-" if q["first_frame"] is None else f"{q['first_frame']:.2f}x") for q in result["ratios"]]
    notes = sorted({f"- {r['config']}: steady lag over {r['steady_scope']}" for r in result["rows"]})
    notes.append("- behind speech: a frame's arrival minus the push of the last sample of its own 40 ms (the lag plus "
                 "the DiT's look-ahead and the audio waiting before the pipeline); transport (websocket): per frame, "
                 "the client's lag minus the server's own (header 'lag'): JPEG encoding, the frame queue, the send")
    t = result["targets"]
    tline = (f"GPU targets (H100 class, {t['sessions']} sessions, {t['config']}, real renderer, fp16): first frame <= "
             f"{t['first_frame_ms']:g} ms, steady lag <= {t['lag_ms']:g} ms")
    if not t["judged"]:
        tline += f"; no verdict on {o['device']} (CUDA only)"
    elif not t["verdicts"]:
        tline += f"; no verdict: no {t['sessions']}-session row in this run"
    else:
        byp = {r["path"]: r for r in result["rows"] if r["config"] == "online" and r["sessions"] == t["sessions"]}
        parts = []
        for v in t["verdicts"]:
            r = byp[v["path"]]
            parts.append(f"{v['path']}: first frame {fmt_num(r['first_frame_ms_max'])} ms "
                         f"{'OK' if v['first_frame_ok'] else 'OVER'}, steady lag {fmt_num(r['lag_median_ms'])} ms "
                         f"{'OK' if v['lag_ok'] else 'OVER'}")
        tline += "\n  " + "; ".join(parts)
        if not t["comparable"]:
            differs = [w for w, bad in (("stand-in renderer", o["renderer"] != "real"),
                                        (f"{steps} steps", steps != o["release_steps"]),
                                        (o["precision"], o["precision"] != "fp16")) if bad]
            tline += f" (not the targets' setting: {', '.join(differs)})"
    tail = f"time: {result['wall_s']:.0f} s in all (setup {result['setup']['setup_s']:.0f} s)"
    return ("\n".join(head) + format_table(HEADERS, rows) + "\n\n" + format_table(RATIO_HEADERS, rrows) + "\n"
            + "\n".join(notes) + "\n" + tline + "\n" + tail)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python benchmarks/live_latency.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="models folder (official release or the synthetic kit)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    ap.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16"),
                    help="renderer precision (default fp16 on CUDA, else fp32)")
    ap.add_argument("--renderer", default="real", choices=("real", "standin"),
                    help="real: the models' renderer; standin: bench.StandinRenderer in every session (a CPU)")
    ap.add_argument("--steps", type=int, default=None, help="DiT steps (default: the release's online steps, 10)")
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, TARGET_SESSIONS], help="concurrent session counts")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of speech per session")
    ap.add_argument("--audio", default=str(DEFAULT_AUDIO), help="the speech (any file load_audio reads; repeated "
                                                                 "when shorter than --seconds)")
    ap.add_argument("--avatar", default=str(DEFAULT_AVATAR), help="the portrait of every session")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="no untimed warm-up session")
    ap.add_argument("--json", help="also write the result here")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    a = ap.parse_args(None if argv is None else [str(v) for v in argv])
    if not Path(a.models).is_dir():
        ap.error(f"--models {a.models}: not a folder")
    if not (math.isfinite(a.seconds) and a.seconds > 0):
        ap.error(f"--seconds: expected > 0, got {a.seconds}")
    if any(n < 1 for n in a.sessions):
        ap.error(f"--sessions: expected counts >= 1, got {a.sessions}")
    if a.steps is not None and not 1 <= a.steps <= 1000:
        ap.error(f"--steps: expected 1..1000, got {a.steps}")
    for name in ("audio", "avatar"):
        if not Path(getattr(a, name)).is_file():
            ap.error(f"--{name} {getattr(a, name)}: no such file")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    t0 = time.perf_counter()
    a = parse_args(argv)

    def log(m: str) -> None:
        print(f"[live-latency {time.perf_counter() - t0:5.0f} s] {m}", file=sys.stderr, flush=True)

    result = run_all(a, log)
    report(format_result(result), result, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
