"""Keypoint planning, one path for both modes: (motion chunk, frame controls) -> ``(x_s, x_d)``, incrementally.

The offline job pushes the whole clip at once, the streaming session one hop at a time; both get the same keypoints
for the same motion, reference frame and settings, because :class:`KeypointPlanner` owns the one
:class:`~ditto_core.stitch.MotionStitcher` and composes each chunk's controls the same way:

    controls = the motion's own (edits) ⊕ the job's whole-clip controls ⊕ the release's ``overall`` controls

(⊕ = :meth:`~ditto_core.motion.controls.FrameControls.combine`: offsets add, factors multiply). Clip-wide settings
(blinks, driven eyes, gaze fix) take the job's, else the motion's, else the release's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..motion.controls import ClipControls, ClipSettings, FrameControls
from ..motion.parts import resolve_parts
from ..motion.track import Motion
from ..source import Source
from ..stitch import MotionStitcher, StitchConfig
from .models import DittoModels

__all__ = ["KeypointPlanner", "Keypoints", "stitch_config_for"]


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of frames ``start .. start + count - 1``: ``x_s`` ``(1 or count, 21, 3)`` (one for an image source),
    ``x_d`` ``(count, 21, 3)``, on the models' device."""

    start: int
    x_s: torch.Tensor
    x_d: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.x_d.shape[0])

    @property
    def indices(self) -> list[int]:
        return list(range(self.start, self.start + self.count))

    def select(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_s, x_d)`` of the given rows (0-based within this chunk)."""
        rows = [int(r) for r in rows]
        x_d = self.x_d[rows]
        x_s = self.x_s if self.x_s.shape[0] == 1 else self.x_s[rows]
        return x_s, x_d


def stitch_config_for(base: StitchConfig, settings: ClipSettings, fades: bool, num_frames: int | None,
                      parts: tuple[str, ...] | None = None, is_image: bool = True, relative: bool = True) -> StitchConfig:
    """The release's stitcher settings ``base`` for one clip: its clip-wide ``settings``, a fade toward the source
    when the clip fades and the release sets no fade target, its length (None: a stream), and what the motion drives
    (``parts`` of :mod:`ditto_core.motion.parts` on an image or a video source; None keeps the release's) and how
    (``relative``: from the reference frame; False: absolute values)."""
    cfg = base.with_settings(settings)
    if fades and not cfg.fade_target:
        cfg = replace(cfg, fade_target="source")
    selection = resolve_parts(parts, is_image)
    if selection is not None:
        cfg = replace(cfg, driven_keys=selection.driven_keys, exp_kps=selection.exp_kps,
                      official_eyes=selection.official)
    if not relative:
        cfg = replace(cfg, relative=False)
    return replace(cfg, num_frames=num_frames)


class KeypointPlanner:
    """Turns motion chunks into keypoints for one source, carrying the stitcher's state from chunk to chunk.

    Args:
        models: the loaded models (stitching network, the release's settings, device).
        source: the registered source.
        clip: the job's whole-clip controls (amplitudes, offsets, fades, blinks, eyes).
        motion_settings: the motion's clip-wide settings (a :class:`Motion`'s ``settings``), or None.
        motion_fades: whether the motion's own controls fade (then a fade target is set as for ``clip``'s fades).
        num_frames: the clip's length (sets the blink schedule and ``clip.fade_out``); None for a stream.
        seed: the blink placement seed.
        reference: ``(265,)`` the relative-motion reference frame ``d0``; None: the first planned frame (or set
            later with :meth:`set_reference`, as the stream does once its first DiT window has run).
        parts: what the motion drives (:mod:`ditto_core.motion.parts`); None: the official behaviour.
        relative: relative motion (official) or absolute values.
    """

    def __init__(
        self,
        models: DittoModels,
        source: Source,
        clip: ClipControls | None = None,
        motion_settings: ClipSettings | None = None,
        motion_fades: bool = False,
        num_frames: int | None = None,
        seed: int = 0,
        reference: torch.Tensor | None = None,
        parts: tuple[str, ...] | None = None,
        relative: bool = True,
    ) -> None:
        self.clip = clip or ClipControls()
        settings = self.clip.settings.over(motion_settings or ClipSettings())
        fades = self.clip.fades or motion_fades
        self.config = stitch_config_for(models.release.stitch, settings, fades, num_frames, parts, source.is_image,
                                        relative)
        self.total = num_frames
        self.device = models.device
        self._overall = models.release.overall
        self.stitcher = MotionStitcher(source.source_infos(), source.is_image, self.config, models.stitch,
                                       rng=int(seed), device=models.device,
                                       d0=reference if relative else None)
        self.planned = 0

    @classmethod
    def for_motion(cls, models: DittoModels, source: Source, motion: Motion,
                   clip: ClipControls | None = None) -> KeypointPlanner:
        """A planner for a whole :class:`Motion`: its settings, length, reference frame, seed (``meta["seed"]``) and
        what it drives."""
        return cls(models, source, clip, motion.settings, bool((motion.fade_alpha < 1).any()), motion.num_frames,
                   int(motion.meta.get("seed", "0")), motion.reference, motion.parts, motion.relative)

    def set_reference(self, d0: torch.Tensor) -> None:
        """Set the relative-motion reference frame ``(265,)`` before the first chunk."""
        self.stitcher.set_d0(d0)

    def plan(self, motion: torch.Tensor, controls: FrameControls | None = None) -> Keypoints:
        """Keypoints of the next ``k`` frames: ``motion`` ``(k, 265)`` and its own controls (``k`` frames, or None)."""
        k = int(motion.shape[0])
        start = self.planned
        c = self.clip.frame_controls(start, k, self.total).combine(controls)
        if self._overall.present():
            c = c.combine(self._overall.expand(k))
        with torch.inference_mode():
            x_s, x_d = self.stitcher.stitch_batch(motion.to(self.device), c, start)
        self.planned += k
        return Keypoints(start, x_s.detach(), x_d.detach())
