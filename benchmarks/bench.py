"""Stage-by-stage and whole-job timings of the Ditto pipeline, on inputs the script makes itself.

Usage (run by hand, not by CI)::

    python benchmarks/bench.py                                   # synthetic kit (built in a temp dir), 2 s clip
    python benchmarks/bench.py --precision bf16 --json run.json  # the same in bf16, figures also in JSON
    python benchmarks/bench.py --device cuda --precision fp16 --models /path/to/ditto-talkinghead --seconds 15
    python benchmarks/bench.py --memory-scaling --precision bf16 # peak RSS of the whole job, 2 s vs 8 s clip

Inputs: a portrait-like picture of ``--size`` pixels (1432, the size of the sample portrait) and a speech-like
signal of ``--seconds`` (16 kHz), both synthesised here. The synthetic kit's stand-in detector finds its one face
in the centre of any picture; the real detector needs a real face, so with the official checkpoints pass
``--image`` and ``--audio`` (e.g. ``../shared/samples/portrait.jpg``, ``speech_24k.wav``).

Stages (each ``--warmup`` untimed runs then ``--repeats`` timed ones, the median reported; CUDA stages with CUDA
events): source registration, audio features, one 80-frame DiT window per ``--steps`` count, stitching (keypoint
planning), warp and decode of one batch, the same batch through the models' renderer, paste-back (the device
compositor of both modes, one transfer per batch), H.264 encode, the offline renderer over the whole clip
(``render_frames``, per frame); then the whole offline job (``ditto_core.runtime.generate``: image + waveform ->
mp4, ``--job-repeats`` runs, no warm-up) and the online session's first-frame latency and sustained rate
(``ditto_core.runtime.StreamingSession``). When both the offline renderer and the online session ran, the stream's
sustained ms per frame is compared with the offline renderer's (target: within 10%). Memory: peak RSS of the
process and of the whole job alone, peak GPU memory (``torch.cuda.max_memory_allocated``) on CUDA.

``--memory-scaling`` runs the whole job (only) for ``--scaling-seconds`` clips (2 and 8 s) in fresh processes and
reports both peak RSS values and their ratio (target <= 1.2: memory must not grow with the clip). On a 2-core CPU
that renders 250 frames: about half an hour in bf16.

``--backend standin`` replaces warp + decode with :class:`StandinRenderer` (a cheap, shape-identical image per
frame): for checking the script and the memory of everything around the renderer, not for timing the renderer.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    current_rss_mib,
    describe_environment,
    ensure_repo_on_path,
    fmt_num,
    fmt_spread,
    format_table,
    load_average,
    machine_info,
    measure,
    median,
    now_iso,
    peak_rss_mib,
    report,
    reset_peak_rss,
    versions,
)

ensure_repo_on_path()

import numpy as np
import torch

SCHEMA = "ditto-bench/1"
SCALING_SCHEMA = "ditto-bench-memory/1"
#: stage keys, in the order they run; ``--stages`` picks some
STAGES = ("source", "audio", "dit", "stitch", "warp", "decode", "render", "paste", "encode", "frames", "job",
          "online")
SAMPLE_RATE = 16000
VIDEO_FPS = 25.0
#: the memory target: peak RSS of the longer clip / of the shorter one
MEMORY_RATIO_TARGET = 1.2
#: the streaming target: the stream's sustained ms per frame / the offline renderer's (same batch and precision)
STREAM_RATIO_TARGET = 1.10
#: row names the stream / offline comparison reads
OFFLINE_FRAMES_ROW = "offline renderer (render_frames)"
ONLINE_SUSTAINED_ROW = "online sustained"
ROW_KEYS = ("name", "stage", "unit", "ms_per_unit", "frames_per_unit", "ms_per_frame", "fps", "rtf", "repeats",
            "timer", "samples_ms", "note", "skipped")

LogFn = Callable[[str], None]


def _frames(n: int) -> str:
    return f"{n} frame{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------- options


@dataclass
class BenchOptions:
    """Everything the benchmark can set (see ``--help``). ``job_steps`` None: the release's defaults (50 offline,
    10 online); ``online_frames`` 0: stream the whole clip; ``seconds`` 0 with ``audio``: the whole file."""

    models: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    seconds: float = 2.0
    size: int = 1432
    image: str | None = None
    audio: str | None = None
    steps: tuple[int, ...] = (10, 50)
    job_steps: int | None = None
    batch_size: int = 4
    repeats: int = 3
    warmup: int = 1
    job_repeats: int = 1
    stages: tuple[str, ...] = STAGES
    online_frames: int = 0
    seed: int = 0
    threads: int | None = None
    salt: str = "bench"
    backend: str = "pytorch"

    def __post_init__(self) -> None:
        from ditto_core.render import BACKENDS, PRECISIONS

        if self.backend not in (*BACKENDS, STANDIN):
            raise ValueError(f"backend: expected one of {(*BACKENDS, STANDIN)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not (math.isfinite(self.seconds) and self.seconds >= 0) or (self.seconds == 0 and self.audio is None):
            raise ValueError(f"seconds: expected a clip length > 0 (0 only with --audio: the whole file), got {self.seconds}")
        if self.size < 64:
            raise ValueError(f"size: expected a portrait side of at least 64 pixels, got {self.size}")
        if not self.steps or any(not 1 <= int(s) <= 1000 for s in self.steps):
            raise ValueError(f"steps: expected DDIM step counts in 1..1000, got {list(self.steps)}")
        if self.job_steps is not None and not 1 <= self.job_steps <= 1000:
            raise ValueError(f"job_steps: expected 1..1000, got {self.job_steps}")
        for name in ("batch_size", "repeats", "job_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.online_frames < 0:
            raise ValueError(f"warmup and online_frames: expected >= 0, got {self.warmup}, {self.online_frames}")
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise ValueError(f"stages: expected some of {list(STAGES)}, got {list(self.stages)}")
        for name in ("models", "image", "audio"):
            p = getattr(self, name)
            if p is not None and not Path(p).exists():
                raise ValueError(f"{name}: {p} does not exist")


# ----------------------------------------------------------------------------------------------- inputs


def make_portrait(size: int = 1432, seed: int = 0) -> np.ndarray:
    """A portrait-like (size, size, 3) uint8 RGB picture: shaded background, hair, a skin-toned face in the centre
    with eyes, brows, nose and mouth, shoulders, and a little sensor noise (so it is not trivially compressible)."""
    import cv2

    s = int(size)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    img = np.stack([150 + 40 * xx, 160 + 30 * yy, 175 - 25 * xx], -1)
    c = s // 2

    def ell(cx: float, cy: float, ax: float, ay: float, color: tuple[int, int, int], angle: float = 0) -> None:
        cv2.ellipse(img, (int(cx), int(cy)), (max(1, int(ax)), max(1, int(ay))), angle, 0, 360, color, -1,
                    cv2.LINE_AA)

    ell(c, c + 0.52 * s, 0.4 * s, 0.2 * s, (60, 70, 110))  # shoulders
    ell(c, c + 0.2 * s, 0.09 * s, 0.12 * s, (205, 160, 135))  # neck
    ell(c, c - 0.05 * s, 0.23 * s, 0.29 * s, (50, 35, 30))  # hair
    ell(c, c + 0.02 * s, 0.18 * s, 0.24 * s, (225, 180, 155))  # face
    for side in (-1, 1):
        ex = c + side * 0.075 * s
        ell(ex, c - 0.03 * s, 0.035 * s, 0.016 * s, (245, 245, 240))  # eye white
        ell(ex, c - 0.03 * s, 0.013 * s, 0.013 * s, (70, 50, 40))  # iris
        ell(ex, c - 0.075 * s, 0.04 * s, 0.008 * s, (60, 40, 35), angle=-side * 8)  # brow
    ell(c, c + 0.05 * s, 0.018 * s, 0.045 * s, (210, 160, 140))  # nose
    ell(c, c + 0.135 * s, 0.06 * s, 0.017 * s, (170, 80, 80))  # mouth
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, s / 600))
    img = img + rng.normal(0.0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_speech(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A speech-like mono (T,) float32 signal in [-1, 1]: syllables of 90-260 ms (voiced harmonics at a gliding
    100-190 Hz pitch, shaped by three formant bands, plus fricative noise), short pauses between words."""
    n = round(float(seconds) * sample_rate)
    if n < 1:
        raise ValueError(f"seconds: expected a positive length, got {seconds}")
    rng = np.random.default_rng(seed)
    out = np.zeros(n, np.float64)
    pos = int(min(0.05, 0.1 * float(seconds)) * sample_rate)
    while pos < n:
        for _ in range(int(rng.integers(1, 5))):  # one word
            length = int(rng.uniform(0.09, 0.26) * sample_rate)
            end = min(n, pos + length)
            if end <= pos:
                break
            t = np.arange(end - pos) / sample_rate
            f0 = rng.uniform(100, 190) * (1 + 0.15 * rng.uniform(-1, 1) * t / max(t[-1], 1e-3))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            formants = rng.uniform([300, 900, 2200], [900, 2200, 3200])
            voiced = np.zeros_like(t)
            for k in range(1, 25):
                fk = k * f0.mean()
                if fk > sample_rate / 2 - 200:
                    break
                gain = sum(np.exp(-(((fk - fm) / 180.0) ** 2)) for fm in formants) / k**0.5
                voiced += gain * np.sin(k * phase)
            # clipped: sin(pi * j / j) can round to -1e-16, and a negative base ** 0.6 is NaN
            env = np.clip(np.sin(np.pi * np.arange(end - pos) / max(end - pos - 1, 1)), 0, 1) ** 0.6
            seg = voiced * env / (np.abs(voiced).max() + 1e-9)
            if rng.random() < 0.35:  # a fricative at the end of the syllable
                noise = rng.normal(0, 1, end - pos)
                noise = noise - np.convolve(noise, np.ones(3) / 3, mode="same")  # high-passed
                seg += 0.25 * noise * np.linspace(0, 1, end - pos) ** 2
            out[pos:end] += seg * rng.uniform(0.4, 0.8)
            pos = end + int(rng.uniform(0.0, 0.04) * sample_rate)
        pos += int(rng.uniform(0.08, 0.35) * sample_rate)  # pause between words
    peak = np.abs(out).max()
    if peak > 0:
        out *= 0.6 / peak
    return out.astype(np.float32)


def _load_inputs(opts: BenchOptions) -> tuple[np.ndarray, np.ndarray, str, str]:
    """-> (image (H, W, 3) uint8 RGB, waveform (T,) 16 kHz, image description, audio description)."""
    from ditto_core.audio import load_audio
    from ditto_core.inputs import read_source

    if opts.image is not None:
        frames, _ = read_source(opts.image, 1)
        image, img_desc = np.asarray(frames)[0], str(opts.image)
    else:
        image, img_desc = make_portrait(opts.size, opts.seed), "synthetic portrait"
    if opts.audio is not None:
        wave = load_audio(opts.audio, name="audio")
        if opts.seconds > 0:
            wave = wave[: round(opts.seconds * SAMPLE_RATE)]
        aud_desc = f"{opts.audio} ({len(wave) / SAMPLE_RATE:.2f} s used)"
    else:
        wave, aud_desc = make_speech(opts.seconds, SAMPLE_RATE, opts.seed), f"synthetic speech {opts.seconds:g} s"
    return image, wave, img_desc, aud_desc


# ------------------------------------------------------------------------------------------------- rows


def _row(name: str, stage: str, unit: str, ms: float | None, frames_per_unit: float | None, *, samples: Sequence[float]
         = (), timer: str = "wall", note: str = "", rtf: float | None = None, fps: float | None = None,
         ms_per_frame: float | None = None, skipped: bool = False) -> dict[str, Any]:
    """A table row. Unless given: ms/frame = ms / frames_per_unit, fps = 1000 / (ms/frame), RTF = (ms/frame) *
    25 / 1000 (the stage's processing time per second of 25 fps video)."""
    if ms is not None and frames_per_unit:
        ms_per_frame = ms / frames_per_unit if ms_per_frame is None else ms_per_frame
    if ms_per_frame is not None and ms_per_frame > 0:
        fps = 1000.0 / ms_per_frame if fps is None else fps
        rtf = ms_per_frame * VIDEO_FPS / 1000.0 if rtf is None else rtf
    return {"name": name, "stage": stage, "unit": unit, "ms_per_unit": ms, "frames_per_unit": frames_per_unit,
            "ms_per_frame": ms_per_frame, "fps": fps, "rtf": rtf, "repeats": len(samples),
            "timer": timer if samples else None, "samples_ms": [round(float(v), 3) for v in samples], "note": note,
            "skipped": skipped}


def _skipped(name: str, stage: str, why: str) -> dict[str, Any]:
    return _row(name, stage, "-", None, None, note=why, skipped=True)


def _timed(name: str, stage: str, unit: str, fn: Callable[[], Any], frames_per_unit: float, device: torch.device,
           repeats: int, warmup: int, cuda_events: bool, note: str = "") -> tuple[dict[str, Any], Any]:
    """Time ``fn`` -> (its row, the value of its last call)."""
    last: list[Any] = [None]

    def call() -> None:
        last[0] = fn()

    samples, timer = measure(call, device, repeats, warmup, cuda_events=cuda_events)
    return _row(name, stage, unit, median(samples), frames_per_unit, samples=samples, timer=timer, note=note), last[0]


# ------------------------------------------------------------------------------------------------- run


def _ensure_kit(opts: BenchOptions, tmp: Path, say: LogFn) -> tuple[Path, float]:
    """The models folder: ``opts.models`` or a synthetic kit built under ``tmp`` (-> path, seconds spent)."""
    if opts.models is not None:
        return Path(opts.models), 0.0
    from ditto_core.testing.kit import make_synthetic_kit

    say(f"building the synthetic kit (~700 MB, salt {opts.salt!r}) in {tmp}")
    t0 = time.perf_counter()
    root = make_synthetic_kit(tmp / "ditto-talkinghead", salt=opts.salt)
    return root, time.perf_counter() - t0


def run_benchmark(opts: BenchOptions, models: Any = None, log: LogFn | None = None) -> dict[str, Any]:
    """Run the selected stages -> a JSON-able dict (schema :data:`SCHEMA`).

    ``models``: an already loaded :class:`ditto_core.runtime.DittoModels` (its device, precision and backend are
    used); default: loaded from ``opts.models`` or a synthetic kit built in a temporary folder.
    """
    say = log or (lambda _m: None)
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    with tempfile.TemporaryDirectory(prefix="ditto-bench-") as tmp_s:
        tmp = Path(tmp_s)
        setup: dict[str, Any] = {"kit_build_s": 0.0, "load_models_s": 0.0}
        if models is None:
            from ditto_core.runtime import DittoModels

            root, setup["kit_build_s"] = _ensure_kit(opts, tmp, say)
            say(f"loading the models from {root} ({opts.device}, {opts.precision}, {opts.backend} renderer)")
            t0 = time.perf_counter()
            standin = opts.backend == STANDIN
            models = DittoModels.load(root, device=opts.device, precision=opts.precision, download=False,
                                      progress=False, backend="pytorch" if standin else opts.backend)
            if standin:
                use_standin_renderer(models)
            setup["load_models_s"] = time.perf_counter() - t0
        return _run_stages(opts, models, tmp, setup, say)


def _is_synthetic(models: Any) -> bool:
    from ditto_core.layout import SYNTHETIC_MARKER

    return (Path(models.models_dir) / SYNTHETIC_MARKER).exists()


def _job_options(opts: BenchOptions, output: str = "full") -> Any:
    """The job the whole-job and online stages run: ``--job-steps`` (None: the release's), ``--seed``,
    ``--batch-size``; the renderer backend is the models'."""
    from ditto_core.runtime import JobOptions, RenderOptions, SamplingOptions

    return JobOptions(sampling=SamplingOptions(steps=opts.job_steps, seed=opts.seed),
                      render=RenderOptions(batch_size=opts.batch_size, output=output))


def _run_stages(opts: BenchOptions, models: Any, tmp: Path, setup: dict[str, Any], say: LogFn) -> dict[str, Any]:
    from ditto_core.audio import frame_count
    from ditto_core.audio2motion import sample_window
    from ditto_core.render import Compositor, autocast_context
    from ditto_core.runtime import (
        KeypointPlanner,
        SamplingOptions,
        extract_audio_features,
        extract_source,
        generate,
        motion_conditions,
        render_frames,
        sample_motion,
        source_motion_vector,
    )
    from ditto_core.sampler import CosineSchedule, draw_eta_noises, draw_normal
    from ditto_core.video import VideoWriter

    dev: torch.device = models.device
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    machine = machine_info(dev)
    rss_loaded = current_rss_mib()
    image, wave, img_desc, aud_desc = _load_inputs(opts)
    n = frame_count(len(wave))
    audio_s = len(wave) / SAMPLE_RATE
    sel = set(opts.stages)
    reps, warm = opts.repeats, opts.warmup
    rows: list[dict[str, Any]] = []
    a2m = models.release.offline
    overlap = int(a2m.overlap)
    hop = int(a2m.hop)
    bsz = min(opts.batch_size, n)
    say(f"inputs: {img_desc} {image.shape[1]}x{image.shape[0]}; {aud_desc}: {_frames(n)}")

    # -- source registration (needed by everything after it)
    src = None
    if "source" in sel:
        say("source registration")
        row, src = _timed("source registration", "source", "image (once per clip)",
                          lambda: extract_source(models, image, is_image=True), n, dev, reps, warm, False,
                          "detector, landmarks, crop, motion + appearance extractors, eye features; amortized per frame")
        rows.append(row)
    else:
        rows.append(_skipped("source registration", "source", "not selected"))
    need_src = sel & {"dit", "stitch", "warp", "decode", "render", "paste", "frames", "online"}
    if src is None and need_src:
        src = extract_source(models, image, is_image=True)

    # -- audio features
    feats = None
    need_motion = sel & {"stitch", "warp", "decode", "render", "paste", "frames"}
    if "audio" in sel:
        say("audio features")
        row, feats = _timed("audio features (HuBERT)", "audio", f"clip ({_frames(n)})",
                            lambda: extract_audio_features(models, wave, SAMPLE_RATE), n, dev, reps, warm, False,
                            "ONNX on the CPU unless onnxruntime has CUDA")
        rows.append(row)
    else:
        rows.append(_skipped("audio features (HuBERT)", "audio", "not selected"))
    if feats is None and (need_motion or "dit" in sel):
        feats = extract_audio_features(models, wave, SAMPLE_RATE)

    # -- DiT windows
    for steps in opts.steps:
        name = f"DiT window, {steps} step{'' if steps == 1 else 's'}"
        if "dit" not in sel:
            rows.append(_skipped(name, "dit", "not selected"))
            continue
        say(name)
        cond_all = motion_conditions(models, src)(feats.features, 0)
        window = cond_all[:80]
        if window.shape[0] < 80:
            window = torch.cat([window, window[-1:].expand(80 - window.shape[0], -1)])
        kp_cond = source_motion_vector(src)
        cfg = a2m.replace(steps=int(steps))
        g = torch.Generator().manual_seed(opts.seed)
        noises = draw_eta_noises(int(steps), (80, 265), g)
        x_init = draw_normal((80, 265), g)
        schedule = CosineSchedule()
        row, _ = _timed(name, "dit", "80-frame window",
                        lambda kp=kp_cond, w=window, x0=x_init, nz=noises, sc=schedule, c=cfg:
                        sample_window(models.lmdm, kp, w, x0, nz, sc, c),
                        hop, dev, reps, warm, True,
                        f"CFG as one batch of 2 per step; a window adds {hop} frames offline "
                        f"({models.release.online.hop} online)")
        rows.append(row)

    # -- stitching: keypoint planning of the clip (motion sampled untimed with the fewest steps)
    x_s = x_d = motion = None
    if need_motion:
        motion = sample_motion(models, src, feats, SamplingOptions(steps=min(opts.steps), seed=opts.seed))

        def plan() -> Any:
            return KeypointPlanner.for_motion(models, src, motion).plan(motion.motion, motion.frame_controls())

        if "stitch" in sel:
            say("stitching")
            row, kp = _timed("stitching", "stitch", f"clip ({_frames(n)})", plan, n, dev, reps, warm, True,
                             "KeypointPlanner: per-frame controls, blink, relative motion, stitching MLP")
            rows.append(row)
        else:
            kp = plan()
            rows.append(_skipped("stitching", "stitch", "not selected"))
        x_s, x_d = kp.x_s, kp.x_d
    else:
        rows.append(_skipped("stitching", "stitch", "not selected"))

    # -- warp and decode of one batch
    renders = None
    feat = None
    unit = f"batch of {bsz}"
    if sel & {"warp", "decode"}:
        f_s = src.f_s[:1].to(dev, torch.float32).expand(bsz, -1, -1, -1, -1)
        xs = x_s[:1].to(dev, torch.float32).expand(bsz, -1, -1)
        xd = x_d[:bsz].to(dev, torch.float32)

        def warp() -> torch.Tensor:
            with torch.inference_mode(), autocast_context(dev, models.precision):
                return models.warp(f_s, xs, xd)

        if "warp" in sel:
            say(f"warp ({unit})")
            row, feat = _timed("warp", "warp", unit, warp, bsz, dev, reps, warm, True,
                               f"the network module under autocast {models.precision} (no renderer options)")
            rows.append(row)
        else:
            feat = warp()
            rows.append(_skipped("warp", "warp", "not selected"))

        def decode() -> torch.Tensor:
            with torch.inference_mode(), autocast_context(dev, models.precision):
                img = models.decoder(feat)
            return img.float().permute(0, 2, 3, 1).clamp(0, 1) * 255

        if "decode" in sel:
            say(f"decode ({unit})")
            row, renders = _timed("decode", "decode", unit, decode, bsz, dev, reps, warm, True,
                                  f"the network module under autocast {models.precision} (no renderer options)")
            rows.append(row)
        else:
            renders = decode()
            rows.append(_skipped("decode", "decode", "not selected"))
    else:
        rows += [_skipped("warp", "warp", "not selected"), _skipped("decode", "decode", "not selected")]

    # -- the same batch through the models' renderer (whatever it does: batching, FFT, compile, TensorRT)
    if "render" in sel:
        renderer = models.new_renderer(bsz)
        f_s1 = src.f_s[:1]
        say(f"render ({unit}, pipeline renderer)")
        row, renders = _timed("render (pipeline renderer)", "render", unit,
                              lambda: renderer.render(f_s1, x_s[:1], x_d[:bsz]), bsz, dev, reps, warm, True,
                              f"models.new_renderer(B).render(): warp + decode as both modes run them "
                              f"({type(renderer).__name__}, {renderer.config.precision})")
        rows.append(row)
    else:
        rows.append(_skipped("render (pipeline renderer)", "render", "not selected"))

    # -- paste-back into the full frame: the compositor of both modes, on the device
    pasted: list[np.ndarray] = []
    if "paste" in sel:
        if renders is None:  # no render ran: noise in the renderer's output format
            gen = torch.Generator().manual_seed(opts.seed)
            renders = (torch.rand(bsz, 512, 512, 3, generator=gen) * 255).to(dev)
        frame = src.frames[0]
        compositor = Compositor(src.frames, src.M_c2o, "full", dev)

        def paste() -> list[np.ndarray]:
            frames_out, _ = compositor.compose(renders, [0] * bsz)
            return list(frames_out)

        say(f"paste-back ({unit})")
        row, pasted = _timed("paste-back", "paste", unit, paste, bsz, dev, reps, warm, False,
                             f"Compositor.compose on {dev.type}: warp into {frame.shape[1]}x{frame.shape[0]} + blend "
                             f"on the device, one device-to-host transfer per batch (as offline and stream)")
        rows.append(row)
    else:
        rows.append(_skipped("paste-back", "paste", "not selected"))

    # -- encode (H.264 + AAC, as generate writes it)
    if "encode" in sel:
        frames_enc = pasted or [image]
        out = tmp / "encode.mp4"

        def encode() -> None:
            with VideoWriter(out, fps=VIDEO_FPS, audio_16k=wave, audio_sample_rate=SAMPLE_RATE) as w:
                for i in range(n):
                    w.write(frames_enc[i % len(frames_enc)])

        say(f"encode ({_frames(n)})")
        row, _ = _timed("encode (H.264 + AAC)", "encode", f"clip ({_frames(n)})", encode, n, dev, reps, 0, False,
                        f"{frames_enc[0].shape[1]}x{frames_enc[0].shape[0]}, crf 18 medium; cycles the pasted frames")
        rows.append(row)
        out.unlink(missing_ok=True)
    else:
        rows.append(_skipped("encode (H.264 + AAC)", "encode", "not selected"))

    # -- the offline renderer over the whole clip (what generate() runs between sampling and encoding)
    if "frames" in sel:
        frames_renderer = models.new_renderer(opts.batch_size)

        counts: list[int] = []

        def offline_frames(indices: Sequence[int] | None = None) -> None:
            count = 0
            for batch, _ in render_frames(models, src, motion, "full", batch_size=opts.batch_size,
                                          renderer=frames_renderer, frame_indices=indices):
                count += len(batch)
            counts.append(count)

        if warm:  # one batch, untimed (first-call costs); the whole clip is timed like the whole job
            offline_frames(range(min(opts.batch_size, n)))
        say(f"offline renderer ({_frames(n)}, batch {opts.batch_size}, {opts.job_repeats} run(s))")
        samples, _ = measure(offline_frames, dev, opts.job_repeats, 0, cuda_events=False)
        if counts[-1] != n:
            raise RuntimeError(f"render_frames gave {counts[-1]} frames for a clip of {n}")
        rows.append(_row(OFFLINE_FRAMES_ROW, "frames", f"clip ({_frames(n)})", median(samples), n, samples=samples,
                         timer="wall",
                         note=f"render_frames(output='full'): keypoint planning, warp + decode, device paste-back, "
                              f"batch {opts.batch_size} ({frames_renderer.config.precision}), one transfer per batch; "
                              f"no encoding; {opts.job_repeats} run(s) of the whole clip"
                              f"{' after one untimed batch' if warm else ''}"))
    else:
        rows.append(_skipped(OFFLINE_FRAMES_ROW, "frames", "not selected"))

    # -- whole offline job
    memory: dict[str, Any] = {"rss_after_load_mib": rss_loaded}
    if "job" in sel:
        gc.collect()
        memory["job_rss_before_mib"] = current_rss_mib()
        memory["job_peak_rss_isolated"] = reset_peak_rss()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        out = tmp / "job.mp4"
        gopts = _job_options(opts)
        steps_used = opts.job_steps or int(a2m.steps)
        say(f"whole offline job ({_frames(n)}, {steps_used} steps, {opts.job_repeats} run(s))")
        samples, _ = measure(lambda: generate(models, image, wave, out, gopts, sample_rate=SAMPLE_RATE), dev,
                             opts.job_repeats, 0, cuda_events=False)
        ms = median(samples)
        memory["job_peak_rss_mib"] = peak_rss_mib()
        if cuda:
            memory["job_peak_gpu_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        rows.append(_row("whole offline job", "job", f"clip ({_frames(n)})", ms, n, samples=samples, timer="wall",
                         rtf=ms / 1000.0 / audio_s,
                         note=f"generate(): image + {audio_s:.2f} s audio -> mp4 ({steps_used} DiT steps, batch "
                              f"{opts.batch_size}, encoding on its own thread); RTF = time / audio duration"))
        out.unlink(missing_ok=True)
    else:
        rows.append(_skipped("whole offline job", "job", "not selected"))

    # -- online (streaming) session
    rows += _online_rows(opts, models, src, wave, n, sel, say)

    memory["peak_rss_mib"] = peak_rss_mib()
    if cuda:
        memory["peak_gpu_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return {
        "schema": SCHEMA,
        "date": now_iso(),
        "machine": machine,
        "versions": versions(),
        "options": {**asdict(opts), "device": str(dev), "precision": models.precision,
                    "backend": STANDIN if opts.backend == STANDIN else models.backend},
        "inputs": {"image": img_desc, "image_size": [int(image.shape[1]), int(image.shape[0])], "audio": aud_desc,
                   "audio_seconds": audio_s, "frames": n, "models": str(models.models_dir),
                   "synthetic_models": _is_synthetic(models), "offline_overlap": overlap},
        "setup": setup,
        "rows": rows,
        "stream_vs_offline": stream_vs_offline(rows),
        "memory": memory,
        "load_average_end": load_average(),
    }


def stream_vs_offline(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The stream's sustained ms per frame / the offline renderer's (``render_frames``, same batch size and
    precision), against :data:`STREAM_RATIO_TARGET`; None unless both rows were measured."""
    by = {r["name"]: r for r in rows}
    online, offline = by.get(ONLINE_SUSTAINED_ROW), by.get(OFFLINE_FRAMES_ROW)
    if online is None or offline is None or online["skipped"] or offline["skipped"]:
        return None
    on, off = online["ms_per_frame"], offline["ms_per_frame"]
    if not on or not off:  # the online run gave fewer than two frames: no sustained rate
        return None
    ratio = on / off
    return {"online_ms_per_frame": on, "offline_ms_per_frame": off, "ratio": ratio, "target": STREAM_RATIO_TARGET,
            "ok": ratio <= STREAM_RATIO_TARGET}


def _online_rows(opts: BenchOptions, models: Any, src: Any, wave: np.ndarray, n: int, sel: set[str],
                 say: LogFn) -> list[dict[str, Any]]:
    from ditto_core.runtime import StreamingSession

    names = ("online first-frame latency", ONLINE_SUSTAINED_ROW)
    if "online" not in sel:
        return [_skipped(nm, "online", "not selected") for nm in names]
    jopts = _job_options(opts, output="full")
    limit = opts.online_frames
    say(f"online session ({'whole clip' if not limit else f'first {limit} frames'})")
    count = 0
    with StreamingSession(models, src, jopts) as session:
        steps = session.motion_config.steps
        frames = session.run(wave)
        try:
            for _ in frames:
                count += 1
                if limit and count >= limit:
                    break
        finally:
            frames.close()
    stats = session.stats
    whole = count >= n
    lat = stats.first_frame_latency
    from_push = stats.first_frame_latency_from_push
    latency_row = _row(names[0], "online", "first frame", None if lat is None else lat * 1000.0, None,
                       samples=[] if lat is None else [lat * 1000.0], timer="wall",
                       note=f"from taking the audio piece that makes frame 0 possible to frame 0 out"
                            f"{'' if from_push is None else f' ({from_push * 1000:.0f} ms from its push)'}"
                            f"; {steps} steps{' (release default)' if opts.job_steps is None else ''}, audio fed "
                            f"as fast as consumed")
    fps = stats.sustained_fps
    sustained = _row(names[1], "online", _frames(count), None, None, samples=[],
                     ms_per_frame=None if not fps else 1000.0 / fps, fps=fps,
                     rtf=stats.real_time_factor if whole else None,
                     note=f"frames after the first, per second; batch {opts.batch_size} ({models.precision}), render "
                          f"+ paste-back on the device as offline; {stats.windows} DiT windows"
                          + ("" if whole else f"; stopped after {count} of {n} frames (no RTF)"))
    sustained["timer"] = "wall"
    return [latency_row, sustained]



# ------------------------------------------------------------------------------------------------ output

HEADERS = ("stage", "unit", "ms/unit", "ms/frame", "frames/s", "RTF", "spread")


def format_result(result: dict[str, Any]) -> str:
    """The result as text: environment, inputs, the Markdown table, notes and memory."""
    o, inp, mem = result["options"], result["inputs"], result["memory"]
    head = [
        f"ditto pipeline benchmark, {result['date']}",
        describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
        (f"device {o['device']}, precision {o['precision']}, batch {o['batch_size']}; median of {o['repeats']} after "
         f"{o['warmup']} warm-up (job: {o['job_repeats']} run(s))"),
        (f"inputs: {inp['image']} ({inp['image_size'][0]}x{inp['image_size'][1]}), {inp['audio']}, "
         f"{_frames(inp['frames'])} at 25 fps; models: {inp['models']}"
         f"{' (SYNTHETIC kit)' if inp['synthetic_models'] else ''}"),
        "",
    ]
    rows = []
    for r in result["rows"]:
        if r["skipped"]:
            rows.append((r["name"], "-", "skipped", "-", "-", "-", "-"))
            continue
        rows.append((r["name"], r["unit"], fmt_num(r["ms_per_unit"]), fmt_num(r["ms_per_frame"]), fmt_num(r["fps"], 2),
                     fmt_num(r["rtf"], 2), fmt_spread(r["samples_ms"])))
    notes = [f"- {r['name']}: {r['note']}" for r in result["rows"] if r["note"] and r["note"] != "not selected"]

    def mib(key: str) -> str:
        v = mem.get(key)
        return "-" if v is None else f"{v:,.0f} MiB"

    memline = (f"memory: peak RSS {mib('peak_rss_mib')} (process), after loading {mib('rss_after_load_mib')}")
    if "job_peak_rss_mib" in mem:
        iso = "" if mem.get("job_peak_rss_isolated") else " (not isolated: process peak)"
        memline += f"; whole job: peak RSS {mib('job_peak_rss_mib')}{iso}, {mib('job_rss_before_mib')} before it"
    if "peak_gpu_mib" in mem:
        memline += f"; peak GPU memory {mib('peak_gpu_mib')} (job {mib('job_peak_gpu_mib')})"
    under = [format_comparison(result.get("stream_vs_offline"))]
    return "\n".join(head) + format_table(HEADERS, rows) + "\n" + "\n".join(under + notes) + "\n" + memline


def format_comparison(cmp: dict[str, Any] | None) -> str:
    """One line: the stream's sustained ms per frame against the offline renderer's."""
    if cmp is None:
        return (f"stream vs offline: n/a (needs the 'frames' and 'online' stages, and two or more online frames; "
                f"target <= {STREAM_RATIO_TARGET:.2f}x)")
    return (f"stream vs offline: online {cmp['online_ms_per_frame']:,.1f} ms/frame sustained / offline renderer "
            f"{cmp['offline_ms_per_frame']:,.1f} ms/frame = {cmp['ratio']:.2f}x (target <= {cmp['target']:.2f}x: "
            f"{'OK' if cmp['ok'] else 'MISS'})")


# ---------------------------------------------------------------------------------------- memory scaling


def _child_argv(opts: BenchOptions, seconds: float, json_path: Path, models: Path) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--stages", "job", "--seconds", f"{seconds:g}",
            "--models", str(models), "--device", opts.device, "--precision", opts.precision, "--size", str(opts.size),
            "--batch-size", str(opts.batch_size), "--seed", str(opts.seed), "--json", str(json_path)]
    if opts.job_steps is not None:
        argv += ["--job-steps", str(opts.job_steps)]
    if opts.threads:
        argv += ["--threads", str(opts.threads)]
    if opts.backend != "pytorch":
        argv += ["--backend", opts.backend]
    if opts.image:
        argv += ["--image", opts.image]
    if opts.audio:
        argv += ["--audio", opts.audio]
    return argv


def run_memory_scaling(opts: BenchOptions, clips: Sequence[float] = (2.0, 8.0), log: LogFn | None = None
                       ) -> dict[str, Any]:
    """The whole job for each clip length in a fresh process -> peak RSS of each and last / first ratio."""
    say = log or (lambda _m: None)
    if len(clips) < 2 or any(c <= 0 for c in clips):
        raise ValueError(f"clips: expected two or more positive clip lengths, got {list(clips)}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="ditto-bench-mem-") as tmp_s:
        tmp = Path(tmp_s)
        root, kit_s = _ensure_kit(opts, tmp, say)
        for sec in clips:
            jp = tmp / f"job_{sec:g}.json"
            say(f"whole job, {sec:g} s clip, in a fresh process")
            t0 = time.perf_counter()
            proc = subprocess.run(_child_argv(opts, sec, jp, root), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"the {sec:g} s run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            child = json.loads(jp.read_text(encoding="utf-8"))
            job = next(r for r in child["rows"] if r["stage"] == "job")
            mem = child["memory"]
            runs.append({"seconds": sec, "frames": child["inputs"]["frames"], "backend": child["options"]["backend"], "job_s": job["ms_per_unit"] / 1000.0,
                         "rtf": job["rtf"], "job_peak_rss_mib": mem.get("job_peak_rss_mib"),
                         "job_rss_before_mib": mem.get("job_rss_before_mib"), "peak_rss_mib": mem.get("peak_rss_mib"),
                         "job_peak_gpu_mib": mem.get("job_peak_gpu_mib"),
                         "isolated": bool(mem.get("job_peak_rss_isolated")),
                         "process_wall_s": time.perf_counter() - t0})
            if len(runs) == 1:  # the first child's start: machine facts and the load average then
                machine, vers = child["machine"], child["versions"]
    base, last = runs[0]["job_peak_rss_mib"], runs[-1]["job_peak_rss_mib"]
    ratio = None if not base or last is None else last / base
    return {"schema": SCALING_SCHEMA, "date": now_iso(), "machine": machine, "versions": vers,
            "options": asdict(opts), "kit_build_s": kit_s, "runs": runs, "ratio": ratio,
            "target": MEMORY_RATIO_TARGET, "ok": None if ratio is None else ratio <= MEMORY_RATIO_TARGET,
            "load_average_end": load_average()}


def format_scaling(result: dict[str, Any]) -> str:
    o = result["options"]
    head = [f"ditto memory scaling (whole offline job per clip, fresh process each), {result['date']}",
            describe_environment(result["machine"], result["versions"], result.get("load_average_end")),
            f"device {o['device']}, precision {o['precision']}, portrait {o['size']}px, batch {o['batch_size']}", ""]
    rows = [(f"{r['seconds']:g} s", str(r["frames"]), fmt_num(r["job_s"]), fmt_num(r["rtf"], 2),
             fmt_num(r["job_rss_before_mib"]), fmt_num(r["job_peak_rss_mib"]),
             fmt_num(r["job_peak_gpu_mib"])) for r in result["runs"]]
    table = format_table(("clip", "frames", "job s", "RTF", "RSS before job MiB", "peak RSS MiB", "peak GPU MiB"),
                         rows)
    ratio = result["ratio"]
    verdict = "n/a" if ratio is None else (f"{ratio:.3f}x (target <= {result['target']}x: "
                                           f"{'OK' if result['ok'] else 'OVER'})")
    return "\n".join(head) + table + f"\npeak RSS ratio {result['runs'][-1]['seconds']:g} s / " \
                                     f"{result['runs'][0]['seconds']:g} s: {verdict}"


# ---------------------------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    from ditto_core.render import BACKENDS, PRECISIONS

    ap = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--models", default=None, help="checkpoint folder (official release or synthetic kit); default: "
                                                   "a synthetic kit built in a temporary folder")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="autocast of the renderer and source extractors (the DiT runs in fp32)")
    ap.add_argument("--seconds", type=float, default=2.0, help="clip length (with --audio: 0 = the whole file)")
    ap.add_argument("--size", type=int, default=1432, help="side of the synthetic portrait in pixels")
    ap.add_argument("--image", default=None, help="use this portrait instead of the synthetic one")
    ap.add_argument("--audio", default=None, help="use this audio file (cut to --seconds) instead of synthetic speech")
    ap.add_argument("--steps", nargs="+", type=int, default=[10, 50], help="DDIM steps of the DiT window rows")
    ap.add_argument("--job-steps", type=int, default=None,
                    help="DDIM steps of the whole job and the online run (default: the release's 50 offline, 10 online)")
    ap.add_argument("--batch-size", type=int, default=4, help="frames per warp/decode call")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per stage (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before each stage (encode and job: none)")
    ap.add_argument("--job-repeats", type=int, default=1, help="timed runs of the whole job")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES), metavar="STAGE",
                    help=f"stages to run (default all: {' '.join(STAGES)})")
    ap.add_argument("--online-frames", type=int, default=0,
                    help="stop the online run after this many frames (0: the whole clip)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the inputs and of the sampling")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--salt", default="bench", help="weight-rule salt of a synthetic kit built here")
    ap.add_argument("--backend", default="pytorch", choices=(*BACKENDS, STANDIN),
                    help="renderer backend of DittoModels.load; standin: warp + decode replaced (see the module doc)")
    ap.add_argument("--json", default=None, help="also write the figures (plus machine, versions, date, options) here")
    ap.add_argument("--memory-scaling", action="store_true",
                    help="only run the whole job for --scaling-seconds clips in fresh processes and compare peak RSS")
    ap.add_argument("--scaling-seconds", nargs="+", type=float, default=[2.0, 8.0],
                    help="clip lengths of --memory-scaling")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchOptions, argparse.Namespace]:
    ap = build_parser()
    a = ap.parse_args(None if argv is None else [str(v) for v in argv])
    try:
        opts = BenchOptions(
            models=a.models, device=a.device, precision=a.precision, seconds=a.seconds, size=a.size, image=a.image,
            audio=a.audio, steps=tuple(a.steps), job_steps=a.job_steps, batch_size=a.batch_size, repeats=a.repeats,
            warmup=a.warmup, job_repeats=a.job_repeats, stages=tuple(dict.fromkeys(a.stages)),
            online_frames=a.online_frames, seed=a.seed, threads=a.threads, salt=a.salt, backend=a.backend,
        )
    except ValueError as e:
        ap.error(str(e))
    return opts, a


def main(argv: Sequence[str] | None = None) -> int:
    opts, a = parse_args(argv)

    def log(m: str) -> None:
        print(f"[bench] {m}", file=sys.stderr, flush=True)

    if a.memory_scaling:
        result = run_memory_scaling(opts, tuple(a.scaling_seconds), log=log)
        text = format_scaling(result)
    else:
        result = run_benchmark(opts, log=log)
        text = format_result(result)
    report(text, result, a.json)
    return 0


#: the ``--backend`` of the stand-in renderer
STANDIN = "standin"


def use_standin_renderer(models: Any) -> None:
    """Every renderer ``models.new_renderer`` makes from now on is a :class:`StandinRenderer` (its batch size as
    asked)."""

    def new_renderer(batch_size: int = 4, backend: str | None = None, config: Any = None) -> StandinRenderer:
        return StandinRenderer(models.device, config.batch_size if config is not None else batch_size)

    models.new_renderer = new_renderer


class StandinRenderer:
    """Warp + decode replaced by a cheap function with the real renderer's interface and output: ``render(f_s, x_s,
    x_d, cancel)`` -> (b, 512, 512, 3) float32 in [0, 255] on ``device``; ``config.batch_size`` frames per call."""

    def __init__(self, device: Any, batch_size: int) -> None:
        import torch

        from ditto_core.render.renderer import RendererConfig

        self.device = torch.device(device)
        self.config = RendererConfig("fp32", int(batch_size))
        ramp = torch.linspace(0, 1, 512, device=self.device)
        self._base = (ramp[:, None, None] * 0.5 + ramp[None, :, None] * 0.5).expand(512, 512, 3)

    def render(self, f_s: Any, x_s: Any, x_d: Any, cancel: Any = None) -> Any:
        if cancel is not None:
            cancel()
        shade = x_d.reshape(x_d.shape[0], -1).mean(dim=1).tanh()[:, None, None, None]  # one value per frame
        return ((self._base[None] * (0.8 + 0.2 * shade)) * 255.0).float().contiguous()


if __name__ == "__main__":
    raise SystemExit(main())

