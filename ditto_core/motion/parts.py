"""What a motion drives: one selection of face parts, shared by the library, the nodes and the command line.

A motion frame (``(265,)``, :mod:`ditto_core.motion.vector`) holds head pose, translation and a 21-keypoint
expression. Which of them move the rendered face is the motion's **parts** (:attr:`Motion.parts
<ditto_core.motion.track.Motion.parts>`):

============  =====================================================  ==================================
part          motion dims                                            official users
============  =====================================================  ==================================
head_pose     pitch, yaw, roll (66-bin logits each)                  the DiT, image source
translation   t (x, y; z is never used)                              the DiT, image source
eyes          exp of keypoints 11, 13, 15, 16, 18 (lids and irises)  the DiT, image source (see below)
brows         exp of keypoints 1, 2                                  LivePortrait's eyebrow edit
lips          exp of keypoints 6, 12, 14, 17, 19, 20                 the DiT
expression    all 63 exp values (the whole face, brows to chin)      LivePortrait video driving
============  =====================================================  ==================================

``parts = None`` is the official behaviour, unchanged: a DiT motion drives head pose, translation and lips on an
image source (lips only on a video source), and the eyes as the release sets them (``drive_eye``: on an image source
the release's blink template is put on the source's eyes). An explicit selection names parts; the token
``"official"`` in it stands for that official set, so ``("official", "eyes")`` is the DiT's motion plus eyes taken
from the motion itself. Eyes in an explicit selection come from the motion (a driving video's own blinks and gaze):
no blink template is added and the gaze fix is off unless a setting turns it on. Eyes not in it stay the source's,
with the release's blinks where the official code would put them. Everything not selected is the source's.

:func:`parse_parts` reads a selection from a string (``"head_pose,eyes"``), a sequence or None and names the bad
entry; :func:`resolve_parts` turns one into the stitcher's driven keys and expression keypoints for a source.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..validate import OptionError
from .vector import EXP, EYE_KPS, LIP_KPS, NUM_KP, PITCH, ROLL, T, YAW

__all__ = [
    "BROW_KPS",
    "DRIVING_PARTS",
    "EXPRESSION_PARTS",
    "OFFICIAL",
    "PARTS",
    "DriveSelection",
    "parse_parts",
    "part_dims",
    "resolve_parts",
]

#: the parts a selection may name, in display order
PARTS = ("head_pose", "translation", "eyes", "brows", "lips", "expression")
#: the selection token for the official set of the source (see the module docstring)
OFFICIAL = "official"
#: eyebrow keypoints (LivePortrait's eyebrow edit moves keypoints 1 and 2)
BROW_KPS = (1, 2)
#: the expression parts and their keypoints
EXPRESSION_PARTS: dict[str, tuple[int, ...]] = {
    "eyes": EYE_KPS,
    "brows": BROW_KPS,
    "lips": LIP_KPS,
    "expression": tuple(range(NUM_KP)),
}
#: what a driving video drives by default: everything LivePortrait's video driving moves
DRIVING_PARTS = ("head_pose", "translation", "expression")

_OFFICIAL_IMAGE = ("head_pose", "translation", "lips")
_OFFICIAL_VIDEO = ("lips",)


def parse_parts(value: str | Iterable[str] | None, name: str = "parts") -> tuple[str, ...] | None:
    """A selection as given (None, ``"official"``, ``"head_pose,eyes"``, or a sequence of names) -> a sorted tuple of
    part names (``OFFICIAL`` first when present) or None (the official behaviour). ``name`` is how the user knows
    the setting; an unknown or empty selection raises :class:`~ditto_core.validate.OptionError` naming it."""
    if value is None:
        return None
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    if not all(isinstance(s, str) for s in items):
        raise OptionError(name, f"part names from {(OFFICIAL, *PARTS)}", value)
    items = [s.strip().lower().replace("-", "_").replace(" ", "_") for s in items if s.strip()]
    bad = [s for s in items if s not in PARTS and s != OFFICIAL]
    if bad or not items:
        expected = f"one or more of {', '.join((OFFICIAL, *PARTS))} (comma-separated)"
        raise OptionError(name, expected, value, f"expected {expected}; "
                          + (f"unknown: {', '.join(bad)}" if bad else "the selection is empty"))
    if items == [OFFICIAL]:
        return None
    order = (OFFICIAL, *PARTS)
    return tuple(sorted(set(items), key=order.index))


def expand_parts(parts: tuple[str, ...], is_image: bool) -> tuple[str, ...]:
    """``parts`` with ``OFFICIAL`` replaced by the official set for an image or a video source."""
    out = set(parts) - {OFFICIAL}
    if OFFICIAL in parts:
        out |= set(_OFFICIAL_IMAGE if is_image else _OFFICIAL_VIDEO)
    return tuple(p for p in PARTS if p in out)


def part_dims(part: str) -> list[int]:
    """The motion-vector dims (of the 265) a part covers."""
    if part == "head_pose":
        return [*range(PITCH.start, PITCH.stop), *range(YAW.start, YAW.stop), *range(ROLL.start, ROLL.stop)]
    if part == "translation":
        return list(range(T.start, T.stop))
    if part in EXPRESSION_PARTS:
        return [EXP.start + 3 * k + c for k in EXPRESSION_PARTS[part] for c in range(3)]
    raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def parts_mask(parts: Iterable[str]) -> torch.Tensor:
    """``(265,)`` bool: the dims the parts cover together."""
    mask = torch.zeros(EXP.stop, dtype=torch.bool)
    for p in parts:
        mask[part_dims(p)] = True
    return mask


@dataclass(frozen=True)
class DriveSelection:
    """A selection resolved for one source: the stitcher's ``driven_keys`` (motion keys taken from the motion) and
    ``exp_kps`` (expression keypoints taken from the motion; the rest are the source's); ``eyes`` whether the eye
    keypoints come from the motion itself (then no blink template, and no gaze fix unless set); ``official``
    whether the selection holds the official set (then eyes not selected follow the release as officially)."""

    driven_keys: tuple[str, ...]
    exp_kps: tuple[int, ...]
    eyes: bool
    official: bool = False


def resolve_parts(parts: tuple[str, ...] | None, is_image: bool) -> DriveSelection | None:
    """The stitcher settings of a selection for an image or a video source; None for the official behaviour."""
    if parts is None:
        return None
    chosen = expand_parts(parts, is_image)
    keys: list[str] = []
    if "head_pose" in chosen:
        keys += ["pitch", "yaw", "roll"]
    if "translation" in chosen:
        keys.append("t")
    kps = sorted({k for p in chosen if p in EXPRESSION_PARTS for k in EXPRESSION_PARTS[p]})
    if kps:
        keys.insert(0, "exp")
    return DriveSelection(tuple(keys), tuple(kps), bool(set(EYE_KPS) <= set(kps)), OFFICIAL in parts)
