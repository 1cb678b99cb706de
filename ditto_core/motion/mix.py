"""Mixing two motions part by part: e.g. head pose and eyes from a driving video, lips from the DiT on speech.

:func:`mix_motions` takes motion ``a`` (the base: its controls, voice activity, settings and metadata are kept) and
replaces the chosen :mod:`parts <ditto_core.motion.parts>` with motion ``b``'s over a frame range, with the same
smoothstep easing as an edit (:func:`ditto_core.motion.edit.ease_weights`)::

    mixed[i, dims] = a[i, dims] + w[i] * (b'[i, dims] - a[i, dims])      for the dims of the chosen parts

Relative motions are mixed as changes: ``b' = b - b.reference + a.reference``, so each part moves the face by the
amount it moved in its own motion, and the result keeps ``a``'s reference frame. Absolute motions mix their values.
Both motions must share the frame rate and the mode (relative or absolute).

Lengths: motion ``a`` is the timeline. ``length`` decides what ``b`` does when the two differ (:data:`LENGTH_MODES`):
``"loop"``, ``"ping_pong"`` or ``"hold"`` (its last frame) extend a shorter ``b`` to ``a``'s length (a longer ``b`` is
cut), so speech motion as ``a`` keeps the speech's length; ``"trim"`` cuts both to the shorter one's.
The result drives ``a``'s parts plus the chosen ones (:attr:`Motion.parts`), saves and loads like any motion.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .._util import mirror_index
from ..validate import OptionError, check_choice, check_int
from .controls import MAX_FRAMES
from .edit import ease_weights
from .parts import OFFICIAL, parse_parts, parts_mask
from .track import CONTROL_NAMES, EditRange, Motion

__all__ = ["LENGTH_MODES", "fit_length", "mix_motions"]

#: how two motions of different lengths are reconciled
LENGTH_MODES = ("loop", "ping_pong", "hold", "trim")


def _frame_map(n_in: int, n_out: int, mode: str) -> list[int]:
    if mode == "loop":
        return [i % n_in for i in range(n_out)]
    if mode == "ping_pong":
        return [mirror_index(i, n_in) for i in range(n_out)]
    return [min(i, n_in - 1) for i in range(n_out)]  # "hold" (and "trim", which never extends)


def fit_length(motion: Motion, num_frames: int, mode: str = "hold") -> Motion:
    """``motion`` cut or extended to ``num_frames`` frames: extended by ``mode`` ("loop", "ping_pong", "hold" the
    last frame; "trim" only cuts). Frames, voice activity and per-frame controls move together; edit ranges past the
    new end are clipped or dropped."""
    check_choice("length", mode, LENGTH_MODES)
    n_in = motion.num_frames
    n = check_int("num_frames", num_frames, 1, MAX_FRAMES)
    if n == n_in:
        return motion
    if n > n_in and mode == "trim":
        raise OptionError("length", "an extending mode (loop, ping_pong, hold)", mode,
                          f"'trim' cannot extend a {n_in}-frame motion to {n} frames")
    idx = torch.tensor(_frame_map(n_in, n, mode))
    changes: dict[str, object] = {"motion": motion.motion[idx], "vad": motion.vad[idx]}
    for name in CONTROL_NAMES:
        changes[name] = getattr(motion, name)[idx]
    changes["edits"] = tuple(EditRange(e.start, min(e.end, n), e.label) for e in motion.edits if e.start < n)
    return motion.replace(**changes)


def mix_motions(
    a: Motion,
    b: Motion,
    parts: str | Iterable[str],
    start: int = 0,
    end: int = -1,
    ease_in: int = 0,
    ease_out: int = 0,
    length: str = "hold",
) -> Motion:
    """Motion ``a`` with ``parts`` taken from motion ``b`` over frames ``[start, end)`` (``end`` -1: to the end),
    ramped in and out over ``ease_in`` / ``ease_out`` frames; ``length`` reconciles different lengths (module doc).
    Returns a new Motion; ``a`` and ``b`` are unchanged."""
    for name, m in (("motion_a", a), ("motion_b", b)):
        if not isinstance(m, Motion):
            raise OptionError(name, "a Ditto motion (DITTO_MOTION)", type(m).__name__)
    chosen = parse_parts(parts, "parts")
    if chosen is None or OFFICIAL in chosen:
        raise OptionError("parts", "part names (head_pose, translation, eyes, brows, lips, expression)", parts,
                          "name the parts to take from motion_b; 'official' is not a part of a motion")
    check_choice("length", length, LENGTH_MODES)
    start = check_int("start", start, 0, MAX_FRAMES)
    end = check_int("end", end, -1, MAX_FRAMES)
    ease_in = check_int("ease_in", ease_in, 0, MAX_FRAMES)
    ease_out = check_int("ease_out", ease_out, 0, MAX_FRAMES)
    if end != -1 and end <= start:
        raise OptionError("end", f"-1 (to the end) or a frame after start ({start})", end)
    if abs(a.fps - b.fps) > 1e-6:
        raise OptionError("motion_b", f"a motion at motion_a's {a.fps:g} fps", f"{b.fps:g} fps",
                          f"motion_b runs at {b.fps:g} fps and motion_a at {a.fps:g} fps; extract both at the same "
                          "rate (a driving video is resampled to 25 fps)")
    if a.relative != b.relative:
        mode = {True: "relative", False: "absolute"}
        raise OptionError("motion_b", f"a {mode[a.relative]} motion like motion_a", mode[b.relative],
                          f"motion_a is {mode[a.relative]} and motion_b {mode[b.relative]}: mix motions of one mode "
                          "(extract the driving video with mode 'relative' to mix it with speech motion)")
    n = min(a.num_frames, b.num_frames) if length == "trim" else a.num_frames
    if start >= n:
        raise OptionError("start", f"a frame before the mix's end (0..{n - 1})", start,
                          f"start frame {start} is past the {n} frames of the mix: nothing would be mixed")
    a_fit = fit_length(a, n, "trim")
    b_fit = fit_length(b, n, "trim" if b.num_frames >= n else length)
    rows_b = b_fit.motion
    if a.relative:
        rows_b = rows_b - b.reference_frame + a.reference_frame
    w = ease_weights(n, start, end, ease_in, ease_out)
    blend = w[:, None] * parts_mask(chosen).float()[None, :]
    mixed = torch.lerp(a_fit.motion, rows_b, blend)  # exactly a where the weight is 0, b' where it is 1
    base_parts = a.parts if a.parts is not None else (OFFICIAL,)
    e = n if end == -1 else min(end, n)
    label = f"mix: {', '.join(chosen)} from B"
    return a_fit.replace(
        motion=mixed,
        parts=parse_parts((*base_parts, *chosen)),
        reference=a.reference_frame if a.relative else a.reference,
        edits=(*a_fit.edits, EditRange(start, e, label)),
        meta={**a.meta, "mix": label, "mix_length": length},
    )
