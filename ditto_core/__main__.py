"""Command line: ``python -m ditto_core <command> ...`` (also the ``ditto`` script).

Commands:
  convert SRC DST     official .pth checkpoints -> .safetensors (same relative paths)
  download DIR        fetch the missing official files from the hub into DIR

Each command is one ``_add_<name>(subparsers)`` function that registers its parser and
sets ``func`` to a ``_run_<name>(args) -> int``; add new commands to ``_COMMANDS``.
Known failures (bad checkpoint, bad config, missing models) exit with code 2 and one
``ditto: error: ...`` message, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .checkpoints import CheckpointError
from .config import ConfigError
from .hub import MissingModelsError

#: errors reported as ``ditto: error: <message>`` with exit code 2
USER_ERRORS: tuple[type[BaseException], ...] = (CheckpointError, ConfigError, MissingModelsError)


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
    p.add_argument("--all", action="store_true", help="also the optional files (config pickle, face_landmarker.task)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_run_download)


#: one registration function per command; a new command appends its ``_add_<name>`` here
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_convert, _add_download]


def build_parser() -> argparse.ArgumentParser:
    """The ``ditto`` argument parser with every command of ``_COMMANDS``."""
    parser = argparse.ArgumentParser(prog="ditto", description="Ditto talking heads (plain PyTorch).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (2 on a known error, after one ``ditto: error:`` line)."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"ditto: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
