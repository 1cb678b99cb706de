"""The offline job: portrait (or video) + speech -> an mp4, every stage run once over the whole clip."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._util import CancelFn, ProgressFn, StageProgressFn
from ..audio import frame_count, load_audio, load_audio_native
from ..motion.controls import ClipControls
from ..motion.track import Motion
from ..render.compositor import OUTPUTS
from ..render.renderer import Renderer
from ..source import Source
from .frames import render_frames
from .models import DittoModels
from .driving import DrivingOptions, extract_driving_motion
from .options import JobOptions
from ..validate import OptionError, check_choice, check_output_path
from ..video import VIDEO_SUFFIXES
from .stages import extract_audio_features, extract_source, sample_motion

__all__ = ["JobInputs", "generate", "generate_driven", "load_source", "prepare_job", "render_video"]


@dataclass(frozen=True)
class JobInputs:
    """What a job reads before generating: the registered ``source``, the ``audio_16k`` (T,) mono waveform the models
    hear, and the audio as given (``audio`` (C, T) float32 at ``audio_rate`` Hz, its own rate and channels) for the
    video's sound track."""

    source: Source
    audio_16k: np.ndarray
    audio: np.ndarray | None = None
    audio_rate: int | float | None = None

    def sound_track(self) -> tuple[np.ndarray, int | float]:
        """The video's sound track: the audio at its own rate and channels (the 16 kHz mono waveform when the
        original is not kept) and its sample rate in Hz."""
        if self.audio is None or self.audio_rate is None:
            return self.audio_16k, 16000
        return self.audio, self.audio_rate

    def video_writer(self, out_path: str | Path, fps: float) -> Any:
        """A :class:`~ditto_core.video.VideoWriter` for ``out_path`` whose sound track is :meth:`sound_track`,
        fitted to the video's length."""
        from ..video import VideoWriter

        audio, rate = self.sound_track()
        return VideoWriter(out_path, fps=fps, audio=audio, audio_sample_rate=rate)


def load_source(
    models: DittoModels,
    source: str | Path | np.ndarray | Source,
    options: JobOptions,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Source:
    """Read the source (an image or video path, or RGB uint8 frames) and register it; a registered :class:`Source`
    is used as it is (a batch reuses one portrait's registration across jobs)."""
    from ..inputs import read_source

    if isinstance(source, Source):
        return source
    if isinstance(source, (str, Path)):
        n_max = options.source.max_frames if options.source.max_frames is not None else models.release.source.max_frames
        frames, is_image = read_source(source, n_max if n_max and n_max > 0 else -1)
    else:
        frames = np.asarray(source)
        is_image = frames.ndim == 3 or frames.shape[0] == 1
    return extract_source(models, frames, options.source, is_image=is_image, progress=progress, cancel=cancel)


def prepare_job(
    models: DittoModels,
    source: str | Path | np.ndarray | Source,
    audio: Any,
    options: JobOptions,
    out_path: str | Path | None = None,
    sample_rate: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    inputs: dict[str, Any] | None = None,
) -> JobInputs:
    """Check the output folder, read the source (an image or video path, or RGB uint8 frames) and the audio (a path,
    a waveform with ``sample_rate``, or a ComfyUI AUDIO mapping), and register the source: the part the offline job
    and the streaming file job share. The audio is decoded once: kept at its own rate and channels for the sound
    track, and turned into the 16 kHz mono waveform the models hear (bit-identical to ``load_audio(audio)``).
    ``inputs``: further input files the output must not overwrite, by name."""
    if out_path is not None:  # before any slow stage: a bad name, or one that would overwrite an input
        check_output_path("out_path", out_path, VIDEO_SUFFIXES, {"source": source, "audio": audio, **(inputs or {})})
    what = f"audio file {str(audio)!r}" if isinstance(audio, (str, os.PathLike)) else "audio"  # errors name it
    native, rate = load_audio_native(audio, sample_rate, name=what)
    wave = load_audio(native, rate, name=what)
    src = load_source(models, source, options, progress, cancel)
    return JobInputs(src, wave, native, rate)


def generate(
    models: DittoModels,
    source: str | Path | np.ndarray | Source,
    audio: Any,
    out_path: str | Path,
    options: JobOptions | None = None,
    sample_rate: int | None = None,
    progress: StageProgressFn | None = None,
    cancel: CancelFn | None = None,
    renderer: Renderer | None = None,
) -> Path:
    """Portrait (or video) + speech -> an H.264 mp4 at 25 fps with the audio muxed in; returns the path.

    The sound track is the given audio at its own sample rate and channels (AAC; more than two channels downmixed to
    stereo, a rate AAC lacks resampled to 48 kHz), cut or padded with silence to the video's length.

    ``source``: an image/video path, RGB uint8 frames or a registered :class:`Source`; ``audio``: a path or a
    waveform (with ``sample_rate``).
    ``options``: the job (:class:`JobOptions`; unset values are the release's offline settings). Frames are encoded
    as they are rendered (memory does not grow with the clip); on any error or interrupt the partial file is removed
    and nothing is left under ``out_path``. ``progress(stage, done, total)`` per stage: "source", "audio", "motion",
    "render". ``renderer``: the caller's (kept across jobs); default a new one of ``options.render``.
    """
    opts = options or JobOptions()
    if opts.render.output not in OUTPUTS:
        raise ValueError(f"output: a video needs rendered frames ('full' or 'crop'), got {opts.render.output!r}")

    def stage(name: str) -> ProgressFn | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    out = Path(out_path)
    job = prepare_job(models, source, audio, opts, out, sample_rate, stage("source"), cancel)
    motion = _speech_motion(models, job, opts, stage, cancel)
    audio_track, rate = job.sound_track()
    return render_video(models, job.source, motion, out, audio_track, rate, opts.render.output,
                        renderer=_job_renderer(models, opts, renderer), clip=opts.clip, progress=stage("render"),
                        cancel=cancel)


def _speech_motion(models: DittoModels, job: JobInputs, opts: JobOptions,
                   stage: Callable[[str], ProgressFn | None], cancel: CancelFn | None) -> Motion:
    feats = extract_audio_features(models, job.audio_16k, 16000, progress=stage("audio"), cancel=cancel)
    motion = sample_motion(models, job.source, feats, opts.sampling, progress=stage("motion"), cancel=cancel)
    assert motion.num_frames == frame_count(len(job.audio_16k))
    return motion


def _job_renderer(models: DittoModels, opts: JobOptions, renderer: Renderer | None) -> Renderer:
    if renderer is not None:
        return renderer
    render = opts.render.for_device(models.device)
    return models.new_renderer(backend=render.backend, config=render.renderer_config(models.precision))


def generate_driven(
    models: DittoModels,
    source: str | Path | np.ndarray | Source,
    drive: str | Path,
    out_path: str | Path,
    audio: Any = None,
    options: JobOptions | None = None,
    driving: DrivingOptions | None = None,
    length: str = "hold",
    sample_rate: int | None = None,
    progress: StageProgressFn | None = None,
    cancel: CancelFn | None = None,
    renderer: Renderer | None = None,
) -> Path:
    """Portrait (or video) driven by a driving video file ``drive`` -> an H.264 mp4 at 25 fps; returns the path.

    Without ``audio``: the driving video's motion drives ``driving.parts`` (default head pose, translation and the
    whole expression); the sound track is the driving video's own, or none. With ``audio`` (a path or a waveform
    with ``sample_rate``): the DiT makes the speech motion as :func:`generate` does, and ``driving.parts`` are taken
    from the driving video (:func:`~ditto_core.motion.mix.mix_motions`; e.g. ``"head_pose,eyes"``: head and eyes from
    the video, lips from the speech); the driving motion is fitted to the speech's length by ``length`` ("loop",
    "ping_pong", "hold" its last frame; a longer video is cut) and the sound track is the speech. The mode must be
    relative with ``audio``. ``progress(stage, done, total)``: "drive", "source", then as :func:`generate`. On any
    error or interrupt nothing is left under ``out_path``.
    """
    from ..inputs import has_audio_stream, read_video_timed
    from ..motion.mix import LENGTH_MODES, mix_motions

    opts = options or JobOptions()
    drv = driving or DrivingOptions()
    if opts.render.output not in OUTPUTS:
        raise ValueError(f"output: a video needs rendered frames ('full' or 'crop'), got {opts.render.output!r}")
    check_choice("length", length, LENGTH_MODES)
    if audio is not None and drv.mode != "relative":
        raise OptionError("DrivingOptions.mode", "'relative' when speech drives the lips", drv.mode,
                          "an absolute driving motion cannot be mixed with speech motion (which is relative); use "
                          "mode 'relative' or leave the audio out")

    def stage(name: str) -> ProgressFn | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    out = check_output_path("out_path", out_path, VIDEO_SUFFIXES, {"source": source, "drive": drive, "audio": audio})
    frames, times = read_video_timed(drive, drv.max_frames)
    driven = extract_driving_motion(models, frames, times=times, options=drv, progress=stage("drive"), cancel=cancel)
    del frames
    if audio is None:
        src = load_source(models, source, opts, stage("source"), cancel)
        motion = driven
        track, rate = None, None
        if has_audio_stream(drive):  # the driving video's own sound, else a silent video
            track, rate = load_audio_native(drive, name=f"driving video {str(drive)!r}")
    else:
        job = prepare_job(models, source, audio, opts, out, sample_rate, stage("source"), cancel, {"drive": drive})
        src = job.source
        speech = _speech_motion(models, job, opts, stage, cancel)
        motion = mix_motions(speech, driven, drv.parts, length=length)  # the speech's length
        track, rate = job.sound_track()
    return render_video(models, src, motion, out, track, rate, opts.render.output,
                        renderer=_job_renderer(models, opts, renderer), clip=opts.clip, progress=stage("render"),
                        cancel=cancel)


def render_video(
    models: DittoModels,
    source: Source,
    motion: Motion,
    out_path: str | Path,
    audio: Any = None,
    sample_rate: int | float | None = None,
    output: str = "full",
    *,
    renderer: Renderer | None = None,
    batch_size: int = 4,
    clip: ClipControls | None = None,
    frame_indices: Sequence[int] | None = None,
    crf: int = 18,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Render ``motion`` on ``source`` straight into an H.264 mp4 at the motion's fps; returns the path.

    Frames are encoded as they are rendered, on a thread of their own (memory does not grow with the clip). ``audio``:
    the sound track, (T,) or (C, T) samples at ``sample_rate`` Hz, a ComfyUI AUDIO mapping, or a file path; it is kept
    at its own rate and channels (AAC) and cut or padded with silence to the video's length; None makes a silent
    video. ``output``: "full" or "crop" (:func:`render_frames`); ``frame_indices``: only these frames (default all);
    ``renderer``: the caller's (default a new one of the models' backend, ``batch_size`` frames per call). On any
    error, Cancel or signal the partial file is removed and nothing is left under ``out_path``.
    """
    from ..video import BackgroundWriter, VideoWriter

    if output not in OUTPUTS:
        raise ValueError(f"output: a video needs rendered frames ('full' or 'crop'), got {output!r}")
    out = check_output_path("out_path", out_path, VIDEO_SUFFIXES)
    track = rate = None
    if audio is not None:
        track, rate = load_audio_native(audio, sample_rate, name="audio")
    if renderer is None:
        renderer = models.new_renderer(batch_size)
    writer = VideoWriter(out, fps=motion.fps, crf=crf, audio=track, audio_sample_rate=rate or 16000)
    # encoding runs on its own thread (BackgroundWriter), overlapping the rendering of the next batch
    with BackgroundWriter(writer) as background:
        for frames, _ in render_frames(models, source, motion, output, progress=progress, cancel=cancel,
                                       frame_indices=frame_indices, renderer=renderer, clip=clip):
            background.write(frames)
    return out
