"""Command line: ``python -m ditto_core <command> ...`` (also the ``ditto`` script).

Commands:
  generate            portrait + speech (and/or a driving video) -> talking-head mp4 (see ``generate --help``)
  convert SRC DST     official .pth checkpoints -> .safetensors (same relative paths)
  download DIR        fetch the missing official files from the hub into DIR
  export-onnx         the renderer's networks as ONNX (for TensorRT)
  serve               the live server (web page, WebSocket, WebRTC)

Each command is one ``_add_<name>(subparsers)`` function that registers its parser and
sets ``func`` to a ``_run_<name>(args) -> int``; add new commands to ``_COMMANDS``.
Known failures (bad checkpoint, bad config, missing models) exit with code 2 and one
``ditto: error: ...`` message, without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DittoError, InputError
from .layout import DEFAULT_MODELS_ENV, default_models_dir
from .render.compositor import OUTPUTS
from .render.renderer import BACKENDS, PRECISIONS
from .validate import check_output_path, renamed
from .video import VIDEO_SUFFIXES

if TYPE_CHECKING:  # pragma: no cover
    from .runtime.driving import DrivingOptions
    from .runtime.options import JobOptions

#: errors reported as ``ditto: error: <message>`` with exit code 2: every refusal of the library (bad input files, no
#: face, bad audio, models, settings) and argument values the options refuse
USER_ERRORS: tuple[type[BaseException], ...] = (DittoError, ValueError)

#: the library's name of each setting -> ``generate``'s flag (errors name the flag)
GENERATE_FLAGS: dict[str, str] = {
    **{f"ClipControls.{k}": f"--{k}" for k in ("mouth", "head", "pitch", "yaw", "roll")},
    "ClipControls.blink_interval": "--blink", "ClipControls.fade_in": "--fade-in", "ClipControls.fade_out": "--fade-out",
    **{f"SamplingOptions.{k}": f"--{k}" for k in ("emotion", "steps", "overlap", "seed", "guidance")},
    "SourceOptions.crop_scale": "--crop-scale", "SourceOptions.face_index": "--face-index",
    "out_path": "--out", "source": "--source", "audio": "--audio", "drive": "--drive",
    "DrivingOptions.parts": "--drive-parts", "DrivingOptions.mode": "--drive-mode",
    "DrivingOptions.smoothing": "--drive-smoothing", "DrivingOptions.max_frames": "--drive-max-frames",
    "length": "--drive-length",
    "RenderOptions.batch_size": "--batch-size", "RenderOptions.output": "--output", "RenderOptions.backend": "--renderer",
}



class _StageBars:
    """One tqdm progress bar per pipeline stage (``progress(stage, done, total)``)."""

    LABELS = {"drive": "driving video", "source": "source", "audio": "audio features", "motion": "DiT windows", "render": "render"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():
                other.close()
            bar = self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage), unit="", leave=True)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def job_options(args: argparse.Namespace) -> "JobOptions":
    """The one :class:`~ditto_core.runtime.JobOptions` of ``generate``'s arguments, for the offline job and ``--stream``
    alike (errors name the flag)."""
    from .motion.controls import ClipControls
    from .runtime.options import (
        JobOptions,
        RenderOptions,
        SamplingOptions,
        SourceOptions,
    )

    with renamed(GENERATE_FLAGS):
        return JobOptions(
            source=SourceOptions(crop_scale=args.crop_scale, face_index=args.face_index),
            sampling=SamplingOptions(emotion=args.emotion, steps=args.steps, overlap=args.overlap, seed=args.seed,
                                     guidance=args.guidance),
            clip=ClipControls(mouth=args.mouth, head=args.head, pitch=args.pitch, yaw=args.yaw, roll=args.roll,
                              blink_interval=args.blink, drive_eye=False if args.no_drive_eye else None,
                              fade_in=args.fade_in, fade_out=args.fade_out),
            render=RenderOptions(output=args.output, batch_size=args.batch_size, backend=args.renderer),
        )


def driving_options(args: argparse.Namespace) -> "DrivingOptions":
    """The :class:`~ditto_core.runtime.DrivingOptions` of ``generate --drive`` (errors name the flag). Parts default
    to head pose and eyes from the video with ``--audio`` (lips from the speech), else everything the video moves."""
    from .motion.parts import DRIVING_PARTS
    from .runtime.driving import DrivingOptions

    parts = args.drive_parts or ("head_pose,eyes" if args.audio else ",".join(DRIVING_PARTS))
    with renamed(GENERATE_FLAGS):
        return DrivingOptions(parts=parts, mode=args.drive_mode, smoothing=args.drive_smoothing,
                              face_index=args.face_index, max_frames=args.drive_max_frames)


def _run_generate(args: argparse.Namespace) -> int:
    from .runtime import DittoModels, format_stats, generate, generate_driven, stream_to_file

    options = job_options(args)
    if args.stream and options.clip.fade_out:
        raise ValueError("--fade-out is not available with --stream (a stream does not know where the audio ends)")
    if args.audio is None and args.drive is None:
        raise InputError("--audio is required (or --drive VIDEO to drive the face from a video)")
    if args.drive is not None and args.stream:
        raise InputError("--drive is not available with --stream (a driving video is read whole)")
    driving = driving_options(args) if args.drive is not None else None
    # the files first, before the models load: a missing input or an output that would destroy one
    inputs = {"--source": args.source, "--audio": args.audio, "--drive": args.drive}
    for flag, value in inputs.items():
        if value is not None and not Path(value).is_file():
            raise InputError(f"{flag} {value!r}: no such file")
    out = check_output_path("--out", args.out, VIDEO_SUFFIXES, inputs)
    models_dir = Path(args.models) if args.models else default_models_dir()
    bars = _StageBars(not args.quiet and not args.stream)
    try:
        models = DittoModels.load(models_dir, args.device, args.precision, download=not args.no_download,
                                  progress=not args.quiet, backend=args.renderer)
        with renamed(GENERATE_FLAGS):
            if args.drive is not None:
                generate_driven(models, args.source, args.drive, out, args.audio, options, driving,
                                length=args.drive_length, progress=bars)
            elif args.stream:
                stats = stream_to_file(models, args.source, args.audio, out, options)
            else:
                generate(models, args.source, args.audio, out, options, progress=bars)
    finally:
        bars.close()
    if not args.quiet:
        if args.stream:
            print(format_stats(stats))
        print(f"wrote {out}")
    return 0


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="portrait + speech -> talking-head video (mp4 with the audio)",
        description="Animate the face in SOURCE (an image, or a video read back and forth) with the speech in "
        "AUDIO and write an H.264 mp4 at 25 fps with the audio muxed in. Defaults are the official ones "
        "(the release's config, part of the default download).",
    )
    p.add_argument("--source", required=True, help="portrait image (jpg, png, ...) or a video of one face")
    p.add_argument("--audio", help="speech (wav, mp3, flac, m4a, ...; any rate >= 8 kHz); required unless --drive")
    p.add_argument("--out", required=True, help="output .mp4 (written only when complete)")
    p.add_argument("--models", help=f"models folder (official release layout or flat; default ${DEFAULT_MODELS_ENV} "
                   "or ~/.cache/ditto/ditto-talkinghead)")
    p.add_argument("--no-download", action="store_true", help="never download; fail listing the missing files")
    p.add_argument("--device", default="auto", help="auto (CUDA, else Apple MPS, else the CPU), cuda, cuda:N, cpu or mps")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="renderer precision (fp16 is the official GPU setting; the DiT always runs fp32)")
    p.add_argument("--emotion", help="Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise, Contempt, an index 0-7, "
                   "or a mix like 'Happy:0.7,Neutral:0.3' (default Neutral)")
    p.add_argument("--steps", type=int, help="DDIM sampling steps (default 50; 10 with --stream)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same motion")
    p.add_argument("--overlap", type=int, help="frames shared by consecutive 80-frame DiT windows (default 10; 70 with "
                   "--stream)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight of the DiT (default 2)")
    p.add_argument("--crop-scale", type=float, help="face crop size relative to the face (default 2.3)")
    p.add_argument("--face-index", type=int, default=0, help="which face when there are several (0 = largest)")
    p.add_argument("--mouth", type=float, default=1.0, help="mouth motion amplitude (1 = as generated)")
    p.add_argument("--head", type=float, default=1.0, help="head motion amplitude (1 = as generated, 0 = still)")
    p.add_argument("--pitch", type=float, default=0.0, help="head pitch offset in degrees (nod)")
    p.add_argument("--yaw", type=float, default=0.0, help="head yaw offset in degrees (turn)")
    p.add_argument("--roll", type=float, default=0.0, help="head roll offset in degrees (tilt)")
    p.add_argument("--blink", type=int, help="frames between blinks, 0 = no blinks (default: the release's "
                   "blink template at random 60-100 frame gaps)")
    p.add_argument("--no-drive-eye", action="store_true", help="keep the source's eyes instead of driving them")
    p.add_argument("--fade-in", type=int, default=0, help="frames to fade in from the source expression")
    p.add_argument("--fade-out", type=int, default=0, help="frames to fade out to the source expression")
    p.add_argument("--batch-size", type=int, default=4, help="frames rendered per batch")
    p.add_argument("--output", default="full", choices=OUTPUTS,
                   help="full: the face pasted back into the source frame (official); crop: the 512x512 face crop")
    p.add_argument("--renderer", default="pytorch", choices=BACKENDS,
                   help="renderer backend; tensorrt needs an NVIDIA GPU and the tensorrt package (engines are built "
                   "on first use and cached beside the models), else the PyTorch renderer is used with a warning")
    p.add_argument("--stream", action="store_true",
                   help="streaming generation (official online mode: overlap 70, 10 steps unless set): audio fed in "
                   "chunks, frames written as they come out, every other flag as without it; prints first-frame "
                   "latency and sustained fps")
    g = p.add_argument_group("driving video", "motion from a video of a face (LivePortrait's motion space)")
    g.add_argument("--drive", metavar="VIDEO", help="driving video (any frame rate): its head and face motion drive "
                   "the source; with --audio, the parts of --drive-parts come from it and the lips from the speech; "
                   "without, the video's own sound track is used (or none)")
    g.add_argument("--drive-parts", help="what the driving video drives, comma-separated from head_pose, "
                   "translation, eyes, brows, lips, expression (default head_pose,eyes with --audio, else "
                   "head_pose,translation,expression)")
    g.add_argument("--drive-mode", default="relative", choices=("relative", "absolute"),
                   help="relative: the change since the video's first frame moves the source (keeps its proportions; "
                   "default); absolute: the driving face's pose and expression replace the source's (not with --audio)")
    g.add_argument("--drive-smoothing", type=int, default=1, help="moving average over this many video frames "
                   "(1 = none)")
    g.add_argument("--drive-length", default="hold", choices=("loop", "ping_pong", "hold"),
                   help="with --audio, a video shorter than the speech: loop it, play it back and forth, or hold its "
                   "last frame (a longer one is cut)")
    g.add_argument("--drive-max-frames", type=int, default=-1, help="read at most this many video frames (-1 = all)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_generate)


def _run_convert(args: argparse.Namespace) -> int:
    from .checkpoints import convert_folder

    report = convert_folder(
        args.src, args.dst, copy_other=not args.skip_other, log=None if args.quiet else print
    )
    if not args.quiet:
        print(
            f"done: {len(report.converted)} converted, {len(report.copied)} copied, "
            f"{len(report.skipped)} skipped -> {args.dst}"
        )
    return 0


def _add_convert(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert the official .pth checkpoints to .safetensors",
        description="Write every official .pth under SRC (release layout or flat) as "
        "<same relative path>.safetensors under DST, holding exactly the tensors the loader uses; "
        "other files (onnx, pkl, task) are copied unless --skip-other.",
    )
    p.add_argument("src", help="models folder holding the official .pth files")
    p.add_argument("dst", help="output folder (may equal SRC: the .safetensors are written beside the .pth)")
    p.add_argument("--skip-other", action="store_true", help="do not copy the non-checkpoint files")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    p.set_defaults(func=_run_convert)


def _run_download(args: argparse.Namespace) -> int:
    from .hub import ensure_models

    roles = args.roles or None
    if args.all:
        from . import layout

        roles = [f.role for f in layout.ALL_FILES]
    found = ensure_models(args.models_dir, roles=roles, download=True, progress=not args.quiet)
    if not args.quiet:
        for role, path in found.items():
            print(f"{role}: {path}")
    return 0


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download",
        help="download the missing official model files from the hub",
        description="Fetch only the files that are missing under MODELS_DIR (release layout), "
        "from the hub repository digital-avatar/ditto-talkinghead.",
    )
    p.add_argument("models_dir", help="models folder (created if needed)")
    p.add_argument("--role", dest="roles", action="append", help="only this file role (repeatable)")
    p.add_argument("--all", action="store_true", help="also the optional files (face_landmarker.task, for the mediapipe eye backend)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_run_download)


#: one registration function per command; a new command appends its ``_add_<name>`` here
def _add_export(subparsers: argparse._SubParsersAction) -> None:
    from .render.export import add_export_command

    add_export_command(subparsers)


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    from .live.cli import add_serve_command

    add_serve_command(subparsers)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_generate, _add_convert, _add_download, _add_export,
                                                                   _add_serve]


def build_parser() -> argparse.ArgumentParser:
    """The ``ditto`` argument parser with every command of ``_COMMANDS``."""
    parser = argparse.ArgumentParser(prog="ditto", description="Ditto talking heads (plain PyTorch).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) turned into an exception in the main thread, so that it unwinds like
    Ctrl-C: every writer aborts in its ``finally``/``__exit__`` and nothing is left behind. ``signum``: the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


#: signals handled like Ctrl-C, where the platform has them (exit code 128 + the signal's number)
TERMINATION_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGHUP")


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM and SIGHUP raise :class:`Terminated` (then the previous
    handlers are restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = {}
    for name in TERMINATION_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code: 0 done; 2 after one ``ditto: error:`` line for a refused input, file,
    model or setting (argparse's usage errors exit 2 too); 130 on Ctrl-C, 128 + N on signal N (143 SIGTERM, 129
    SIGHUP), with no output written."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    try:
        with _signals_as_exceptions():
            return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(_error_text(e), file=sys.stderr)
        return 2
    except Terminated as e:
        name = signal.Signals(e.signum).name
        print(f"ditto: stopped by {name}; no output was written", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("ditto: interrupted; no output was written", file=sys.stderr)
        return 130


def _error_text(e: BaseException) -> str:
    """``ditto: error: <message>``: one line, or one line and the message's further lines (a list of missing files)
    indented beneath it."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    return "\n".join([f"ditto: error: {lines[0]}", *(f"  {line}" for line in lines[1:])])


if __name__ == "__main__":
    sys.exit(main())
