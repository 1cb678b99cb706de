"""Command line: ``python -m ditto_core <command> ...`` (also the ``ditto`` script).

Commands:
  generate            portrait + speech (and/or a driving video) -> talking-head mp4 (see ``generate --help``)
  convert SRC DST     official .pth checkpoints -> .safetensors (same relative paths)
  download DIR        fetch the missing official files from the hub into DIR
  export-onnx         the renderer's networks as ONNX (for TensorRT)
  serve               the live server (web page, WebSocket, WebRTC)
  batch JOBS          many clips from a job file (JSON Lines or CSV), models loaded once (see ``batch --help``)

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

from .cli_options import GENERATE_FLAGS, add_generate_arguments, driving_options, job_options
from .errors import DittoError, InputError
from .layout import default_models_dir
from .validate import check_output_path, renamed
from .video import VIDEO_SUFFIXES

#: errors reported as ``ditto: error: <message>`` with exit code 2: every refusal of the library (bad input files, no
#: face, bad audio, models, settings) and argument values the options refuse
USER_ERRORS: tuple[type[BaseException], ...] = (DittoError, ValueError)


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
    add_generate_arguments(p)
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


def _add_batch(subparsers: argparse._SubParsersAction) -> None:
    from .batch.cli import add_batch_command

    add_batch_command(subparsers)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_generate, _add_convert, _add_download, _add_export,
                                                                   _add_serve, _add_batch]


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
