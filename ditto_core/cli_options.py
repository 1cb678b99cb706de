"""``generate``'s flags and the options they make, shared by the ``generate`` command (``ditto_core.__main__``) and
the batch job files (``ditto_core.batch``): one definition of every flag, its default and its check.

* :func:`add_generate_arguments` adds every ``generate`` flag to a parser; :func:`add_models_arguments`,
  :func:`add_batch_size_argument` and :func:`add_renderer_argument` the run-level ones, for commands that take the
  same models and renderer settings (``batch``).
* :func:`job_options` / :func:`driving_options` turn the parsed flags into the library's options; an error names the
  flag (:data:`GENERATE_FLAGS`).

This module imports no model code at import time (the command line starts fast).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .layout import DEFAULT_MODELS_ENV
from .render.compositor import OUTPUTS
from .render.renderer import BACKENDS, PRECISIONS, SPEED_OPTIONS
from .validate import OptionError, renamed

if TYPE_CHECKING:  # pragma: no cover
    from .runtime.driving import DrivingOptions
    from .runtime.options import JobOptions

__all__ = [
    "GENERATE_FLAGS",
    "add_batch_size_argument",
    "add_generate_arguments",
    "add_models_arguments",
    "add_renderer_argument",
    "driving_options",
    "job_options",
]

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


def job_options(args: argparse.Namespace) -> JobOptions:
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
            render=RenderOptions(output=args.output, batch_size=args.batch_size, backend=args.renderer,
                                 **{name: getattr(args, name, False) for name in SPEED_OPTIONS}),
        )


def driving_options(args: argparse.Namespace) -> DrivingOptions:
    """The :class:`~ditto_core.runtime.DrivingOptions` of ``generate --drive`` (errors name the flag). Parts default
    to head pose and eyes from the video with ``--audio`` (lips from the speech), else everything the video moves.
    An absolute motion with ``--audio`` is refused here, before any model loads."""
    from .motion.parts import DRIVING_PARTS
    from .runtime.driving import DrivingOptions

    parts = args.drive_parts or ("head_pose,eyes" if args.audio else ",".join(DRIVING_PARTS))
    with renamed(GENERATE_FLAGS):
        options = DrivingOptions(parts=parts, mode=args.drive_mode, smoothing=args.drive_smoothing,
                                 face_index=args.face_index, max_frames=args.drive_max_frames)
        if args.audio and options.mode != "relative":
            raise OptionError("DrivingOptions.mode", "'relative' when speech drives the lips", options.mode,
                              "an absolute driving motion cannot be mixed with speech motion (which is relative); "
                              "use relative or leave the audio out")
    return options


def add_generate_arguments(p: argparse.ArgumentParser) -> None:
    """Every flag of ``generate``, in its ``--help`` order."""
    p.add_argument("--source", required=True, help="portrait image (jpg, png, ...) or a video of one face")
    p.add_argument("--audio", help="speech (wav, mp3, flac, m4a, ...; any rate >= 8 kHz); required unless --drive")
    p.add_argument("--out", required=True, help="output .mp4 (written only when complete)")
    add_models_arguments(p)
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
    add_batch_size_argument(p)
    p.add_argument("--output", default="full", choices=OUTPUTS,
                   help="full: the face pasted back into the source frame (official); crop: the 512x512 face crop")
    add_renderer_argument(p)
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


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    """``--models``, ``--no-download``, ``--device``, ``--precision``: which models, loaded where and how."""
    p.add_argument("--models", help=f"models folder (official release layout or flat; default ${DEFAULT_MODELS_ENV} "
                   "or ~/.cache/ditto/ditto-talkinghead)")
    p.add_argument("--no-download", action="store_true", help="never download; fail listing the missing files")
    p.add_argument("--device", default="auto", help="auto (CUDA, else Apple MPS, else the CPU), cuda, cuda:N, cpu or mps")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="renderer precision (fp16 is the official GPU setting; the DiT always runs fp32)")


def add_batch_size_argument(p: argparse.ArgumentParser) -> None:
    """``--batch-size``: frames per warp/decode call."""
    p.add_argument("--batch-size", type=int, default=4, help="frames rendered per batch")


def add_renderer_argument(p: argparse.ArgumentParser) -> None:
    """``--renderer``: the renderer backend."""
    p.add_argument("--renderer", default="pytorch", choices=BACKENDS,
                   help="renderer backend; tensorrt needs an NVIDIA GPU and the tensorrt package (engines are built "
                   "on first use and cached beside the models), else the PyTorch renderer is used with a warning")
    for name, what in SPEED_OPTIONS.items():
        p.add_argument(speed_flag(name), action="store_true", help=f"GPU speed option: {what}")


def speed_flag(name: str) -> str:
    """The command-line flag of a speed option: ``cuda_graphs`` -> ``--cuda-graphs``."""
    return "--" + name.replace("_", "-")
