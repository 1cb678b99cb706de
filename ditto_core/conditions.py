"""The DiT's per-frame condition: ``[audio 1024 | emotion 8 | eye_open 2 | eye_ball 6 | sc 63]`` = 1103 values.

* emotion: a soft 8-class vector. A label (or a set of labels) becomes the official ``softmax`` of a vector holding 8
  at the chosen index(es) (about 0.9977 for one label); a table (m, 8) is cycled over frames as ``max(i, 0) % m``.
  Class order: :data:`EMOTION_LABELS`. Whatever form a user gives (a label, an index, a mix text or dict, a table) is
  parsed once where it enters (:meth:`Emotion.parse`) into an :class:`Emotion`.
* eye_open (2) and eye_ball (6) come from the source's MediaPipe landmarks. One row is used for every frame; several
  rows (a video source) are indexed ping-pong as ``mirror(max(i, 0), n)``.
* sc (63): the source's canonical keypoints ``kp`` (21 x 3) flattened.

Frame index ``i`` runs from ``start_index`` (negative for the online path's pre-filled silence frames).
All outputs are float32 torch tensors on the device of ``aud_feat``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Union

import numpy as np
import torch
from .devices import host_float64

from ._util import mirror_index

__all__ = [
    "EMOTION_LABELS",
    "AUDIO_DIM",
    "COND_DIM",
    "Emotion",
    "emotion_index",
    "emotion_vector",
    "emotion_mix",
    "parse_emotion",
    "emotion_rows",
    "build_conditions",
    "ConditionBuilder",
]

#: the emotion classes in the order of the 8-d vector
EMOTION_LABELS: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise", "Contempt")
NUM_EMOTIONS = 8
AUDIO_DIM = 1024
EYE_OPEN_DIM = 2
EYE_BALL_DIM = 6
SC_DIM = 63
COND_DIM = AUDIO_DIM + NUM_EMOTIONS + EYE_OPEN_DIM + EYE_BALL_DIM + SC_DIM  # 1103

#: what :func:`parse_emotion` accepts: a label, labels, per-frame label lists, or a (m, 8) table
EmotionSpec = Union[int, str, Sequence[Union[int, str]], Sequence[Sequence[Union[int, str]]], np.ndarray, torch.Tensor]
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


def emotion_index(label: int | str) -> int:
    """Class index 0-7 of an int or a label name (case-insensitive, e.g. ``"happy"`` -> 3)."""
    if isinstance(label, str):
        names = [n.lower() for n in EMOTION_LABELS]
        if label.strip().lower() not in names:
            raise ValueError(f"unknown emotion label {label!r}; expected one of {EMOTION_LABELS}")
        return names.index(label.strip().lower())
    if isinstance(label, bool) or not isinstance(label, Integral):
        raise ValueError(f"emotion label must be an int 0-7 or a name, got {label!r}")
    if not 0 <= int(label) < NUM_EMOTIONS:
        raise ValueError(f"emotion index must be in 0..7, got {label}")
    return int(label)


def emotion_vector(labels: int | str | Sequence[int | str]) -> torch.Tensor:
    """(8,) float32: softmax of a vector with 8 at each chosen class and 0 elsewhere (official ``_get_emo_avg``)."""
    if isinstance(labels, (str, Integral)):
        labels = [labels]
    idx = [emotion_index(i) for i in labels]
    if not idx:
        raise ValueError("emotion labels must not be empty")
    logits = torch.zeros(NUM_EMOTIONS, dtype=torch.float32)
    logits[idx] = 8.0
    return torch.softmax(logits, dim=0)


def emotion_mix(weights: Mapping[int | str, float]) -> torch.Tensor:
    """(8,) float32 weighted mix of the single-label vectors: ``Σ w_k·emotion_vector(k) / Σ w_k`` (sums to 1).

    ``{"Happy": 1}`` equals ``emotion_vector(3)``; ``{"Happy": 0.5, "Neutral": 0.5}`` blends the two. Weights must be
    >= 0 with a positive sum.
    """
    if not weights:
        raise ValueError("emotion weights must not be empty")
    with host_float64():
        total = torch.zeros(NUM_EMOTIONS, dtype=torch.float64)
        wsum = 0.0
        for label, w in weights.items():
            if not isinstance(w, Real) or w < 0 or not np.isfinite(float(w)):
                raise ValueError(f"emotion weight of {label!r} must be a finite number >= 0, got {w!r}")
            total += float(w) * emotion_vector(label).cpu().double()
            wsum += float(w)
        if wsum <= 0:
            raise ValueError("emotion weights must not all be zero")
        mix = (total / wsum).float()
    return mix


def parse_emotion_mix(text: str) -> dict[str, float]:
    """``"Happy:0.7, Neutral:0.3"`` -> ``{"Happy": 0.7, "Neutral": 0.3}``.

    Labels are case-insensitive names or indices 0-7; a label without a weight counts 1; items are separated by
    commas, semicolons or new lines; weights must be >= 0 and not all zero (:func:`emotion_mix` normalises them).
    """
    out: dict[str, float] = {}
    for raw in str(text).replace(";", ",").replace("\n", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        label, _, weight = item.partition(":")
        try:
            name = EMOTION_LABELS[emotion_index(int(label) if label.strip().isdigit() else label)]
        except ValueError:
            raise ValueError(f"unknown emotion {label.strip()!r} in {item!r}; expected one of {', '.join(EMOTION_LABELS)}") from None
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"weight of {name} must be a number, got {weight.strip()!r}") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight of {name} must be >= 0, got {w}")
        out[name] = out.get(name, 0.0) + w
    if not out:
        raise ValueError("the emotion mix is empty; write e.g. 'Happy:0.7, Neutral:0.3'")
    if sum(out.values()) <= 0:
        raise ValueError("the emotion mix weights must not all be zero")
    return out


def parse_emotion_text(text: str) -> int | dict[str, float]:
    """A user's emotion text -> an index (``"Happy"``, ``"happy"``, ``"3"`` -> 3) or a ``{label: weight}`` mix
    (``"Happy:0.7, Neutral:0.3"``, see :func:`parse_emotion_mix`)."""
    s = str(text).strip()
    if not s:
        raise ValueError(f"empty; expected a label ({', '.join(EMOTION_LABELS)}), an index 0-7 or a mix like 'Happy:0.7, Neutral:0.3'")
    if not any(c in s for c in ":,;\n"):
        return emotion_index(int(s)) if s.lstrip("-").isdigit() else emotion_index(s)
    return parse_emotion_mix(s)


def parse_emotion(emo: EmotionSpec) -> torch.Tensor:
    """Emotion table (m, 8) float32 from a label (int/name), a list of labels (one mixed vector), a list of label
    lists (one vector per frame, cycled) or an (m, 8) array of probabilities (used as is)."""
    if isinstance(emo, (np.ndarray, torch.Tensor)):
        t = torch.as_tensor(np.asarray(emo) if isinstance(emo, np.ndarray) else emo)
        if t.ndim == 1 and t.shape[0] == NUM_EMOTIONS:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != NUM_EMOTIONS or t.shape[0] == 0:
            raise ValueError(f"emotion array must be (m, 8), got shape {tuple(t.shape)}")
        return t.detach().to(torch.float32).cpu()
    if isinstance(emo, (str, Integral)) and not isinstance(emo, bool):
        return emotion_vector(emo)[None]
    if isinstance(emo, (list, tuple)) and emo:
        if all(isinstance(e, (str, Integral)) and not isinstance(e, bool) for e in emo):
            if len(emo) >= NUM_EMOTIONS:
                raise ValueError(f"a list of emotion labels must hold 1-7 labels, got {len(emo)}")
            return emotion_vector(list(emo))[None]
        if all(isinstance(e, (list, tuple)) for e in emo):
            return torch.stack([emotion_vector(list(e)) for e in emo])
    raise ValueError(
        f"unsupported emotion {emo!r}: expected an int 0-7 or label name, a list of labels, "
        "a list of label lists (per frame), or an (m, 8) array"
    )


def emotion_rows(table: torch.Tensor, start_index: int, n: int) -> torch.Tensor:
    """(n, 8): rows ``max(i, 0) % m`` of the (m, 8) table for frames i = start_index .. start_index+n-1."""
    m = table.shape[0]
    idx = [max(i, 0) % m for i in range(start_index, start_index + n)]
    return table[idx]


@dataclass(frozen=True)
class Emotion:
    """The emotion condition: ``table`` ``(m, 8)`` float32 class probabilities (frame ``i`` uses row
    ``max(i, 0) % m``) and a short ``label`` for metadata and display ("Neutral", "Happy:0.7,Neutral:0.3", ...)."""

    table: torch.Tensor
    label: str

    def __post_init__(self) -> None:
        t = torch.as_tensor(self.table).detach().to("cpu", torch.float32)
        if t.ndim != 2 or t.shape[1] != NUM_EMOTIONS or t.shape[0] == 0 or not bool(torch.isfinite(t).all()):
            raise ValueError(f"Emotion.table must be (m, 8) finite values, got shape {tuple(t.shape)}")
        object.__setattr__(self, "table", t)
        object.__setattr__(self, "label", str(self.label))

    @classmethod
    def parse(cls, value: Any) -> Emotion:
        """Any form a user gives -> an Emotion: an Emotion (as is), a label name or index 0-7, a text such as
        ``"Happy"``, ``"3"`` or ``"Happy:0.7, Neutral:0.3"``, a ``{label: weight}`` mix, a list of labels (mixed
        equally, the official form), a list of label lists (one per frame), 8 probabilities, or an ``(m, 8)`` table.
        Raises ValueError naming what was expected."""
        if isinstance(value, Emotion):
            return value
        if isinstance(value, str):
            parsed = parse_emotion_text(value)
            return cls.parse(parsed)
        if isinstance(value, Integral) and not isinstance(value, bool):
            i = emotion_index(value)
            return cls(emotion_vector(i)[None], EMOTION_LABELS[i])
        if isinstance(value, Mapping):
            mix = {EMOTION_LABELS[emotion_index(k)]: float(w) for k, w in value.items()}
            return cls(emotion_mix(mix)[None], ",".join(f"{k}:{w:g}" for k, w in mix.items()))
        if isinstance(value, (list, tuple)) and len(value) == NUM_EMOTIONS and any(isinstance(v, float) for v in value):
            return cls(torch.tensor([float(v) for v in value])[None], "probabilities")
        table = parse_emotion(value)
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, Integral)) for v in value):
            label = "+".join(EMOTION_LABELS[emotion_index(v)] for v in value)
        else:
            label = f"table({table.shape[0]}x8)"
        return cls(table, label)


def _rows(value: ArrayLike, dim: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).detach()
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != dim or t.shape[0] == 0:
        raise ValueError(f"{name} must be ({dim},) or (n, {dim}), got shape {tuple(t.shape)}")
    return t.to(torch.float32).cpu()


def _sc_row(sc: ArrayLike) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(sc) if not isinstance(sc, torch.Tensor) else sc).detach()
    if t.numel() != SC_DIM:
        raise ValueError(f"sc must hold the 63 canonical keypoint values (63,), (1, 63) or (21, 3), got {tuple(t.shape)}")
    return t.reshape(SC_DIM).to(torch.float32).cpu()


@dataclass
class ConditionBuilder:
    """A source's fixed conditions; ``builder(aud_feat (n,1024), start_index) -> cond (n,1103)``.

    ``emo``: an :class:`Emotion` or anything :meth:`Emotion.parse` takes. ``eye_open`` (2,) or (k, 2), ``eye_ball`` (6,) or (k, 6): k > 1 rows are
    indexed per frame ping-pong (a video source) unless ``eye_f0_mode``, which uses row 0. ``sc`` (63,).
    """

    emo: Emotion | EmotionSpec
    eye_open: ArrayLike
    eye_ball: ArrayLike
    sc: ArrayLike
    eye_f0_mode: bool = False
    emo_table: torch.Tensor = field(init=False, repr=False)
    eye_open_rows: torch.Tensor = field(init=False, repr=False)
    eye_ball_rows: torch.Tensor = field(init=False, repr=False)
    sc_row: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.emo_table = Emotion.parse(self.emo).table
        self.eye_open_rows = _rows(self.eye_open, EYE_OPEN_DIM, "eye_open")
        self.eye_ball_rows = _rows(self.eye_ball, EYE_BALL_DIM, "eye_ball")
        self.sc_row = _sc_row(self.sc)

    def _eye(self, rows: torch.Tensor, start_index: int, n: int) -> torch.Tensor:
        k = rows.shape[0]
        if k == 1 or self.eye_f0_mode:
            return rows[:1].expand(n, -1)
        return rows[[mirror_index(max(i, 0), k) for i in range(start_index, start_index + n)]]

    def __call__(self, aud_feat: ArrayLike, start_index: int = 0) -> torch.Tensor:
        """aud_feat (n, 1024) HuBERT features of frames start_index.. -> cond (n, 1103) float32."""
        aud = torch.as_tensor(np.asarray(aud_feat) if not isinstance(aud_feat, torch.Tensor) else aud_feat)
        if aud.ndim != 2 or aud.shape[1] != AUDIO_DIM:
            raise ValueError(f"aud_feat must be (n, {AUDIO_DIM}), got shape {tuple(aud.shape)}")
        n = aud.shape[0]
        dev = aud.device
        parts = [
            aud.to(torch.float32),
            emotion_rows(self.emo_table, start_index, n).to(dev),
            self._eye(self.eye_open_rows, start_index, n).to(dev),
            self._eye(self.eye_ball_rows, start_index, n).to(dev),
            self.sc_row.to(dev)[None].expand(n, -1),
        ]
        return torch.cat(parts, dim=1)


def build_conditions(
    aud_feat: ArrayLike,
    emo: EmotionSpec,
    eye_open: ArrayLike,
    eye_ball: ArrayLike,
    sc: ArrayLike,
    start_index: int = 0,
    eye_f0_mode: bool = False,
) -> torch.Tensor:
    """cond (N, 1103) = ``[aud_feat 1024 | emo 8 | eye_open 2 | eye_ball 6 | sc 63]`` per frame (official order).

    One-shot form of :class:`ConditionBuilder`; ``start_index`` is the index of frame 0 (cycles emotion tables and
    video eye rows).
    """
    return ConditionBuilder(emo, eye_open, eye_ball, sc, eye_f0_mode)(aud_feat, start_index)
