"""The stitcher driven the way the official code drives ``MotionStitch``: ``setup`` keywords and per-frame ctrl dicts,
translated by :mod:`ditto_core.official` (the only place the library speaks that vocabulary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ditto_core import official
from ditto_core.stitch import MotionStitcher


class OfficialStitcher:
    """``MotionStitcher`` with official ``setup`` keywords (``use_d_keys``, ``delta_eye_open_n``, ``fade_type``,
    ``overall_ctrl_info``, ...) and official per-frame ctrl dicts; other attributes are the stitcher's."""

    def __init__(self, source, is_image: bool = True, config: Mapping[str, Any] | None = None, stitch_net=None,
                 rng=None, d0=None) -> None:
        kw = dict(config or {})
        self.overall = dict(kw.get("overall_ctrl_info") or {})
        self.stitcher = MotionStitcher(source, is_image, official.stitch_config(kw), stitch_net, rng, d0=d0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stitcher, name)

    def stitch(self, motion, frame_idx: int, ctrl: Mapping[str, Any] | None = None):
        return self.stitcher.stitch(motion, frame_idx, official.frame_controls([ctrl or {}], 1, self.overall))

    def stitch_batch(self, motion, start_idx: int = 0, ctrls: Sequence[Mapping[str, Any] | None] | None = None):
        n = int(motion.shape[0]) if motion.ndim == 2 else -1
        if ctrls is not None and len(ctrls) != n:
            raise ValueError(f"ctrls must have one entry per motion frame ({n}), got {len(ctrls)}")
        ctrl_list = [c or {} for c in ctrls] if ctrls is not None else [{}] * max(n, 0)
        controls = official.frame_controls(ctrl_list, n, self.overall) if n >= 0 else None
        return self.stitcher.stitch_batch(motion, controls, start_idx)
