"""Audio-to-motion: windowed DiT sampling over a condition sequence, offline and streaming.

The DiT generates 80-frame windows. Consecutive windows overlap by ``overlap`` frames (official ``overlap_v2``) and
advance by ``hop = 80 - overlap`` (the official ``valid_clip_len``). Each window is conditioned on ``kp_cond`` (265,),
a motion frame of the result so far, and its start is cross-faded into the result:

* fuse: the last ``L`` result frames become ``res·(1 − α) + pred[80−hop−L : 80−hop]·α`` with ``α = arange(L)/L``, then
  ``pred[80−hop:]`` is appended. ``L = overlap`` offline, ``min(overlap, hop)`` online.
* smoothing: a centred moving average of width ``smoothing`` (official ``smo_k_d``) over dims 0:202 (scale, pose
  logits, t; not exp), on the frames just fused (the first window: all of it), each output from the unsmoothed values.
* kp_cond: the result frame just before the next window starts (``res[len − overlap − 1]``). With
  ``kp_cond_reset = n > 0`` (official ``fix_kp_cond``), after every n-th window it is reset to the source motion,
  keeping the prediction only in dims ``kp_cond_keep = (ds, de)`` (``fix_kp_cond_dim``) if given.

Randomness (see :mod:`ditto_core.sampler`): the DDIM eta noises are drawn once, then each window's initial ``x``, all
from one ``torch.Generator``; pass ``noises`` / ``x_inits`` to fix them explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Union

import numpy as np
import torch

from ._util import CancelFn, ProgressFn, moving_average
from .conditions import COND_DIM
from .motion.vector import MOTION_DIM, POSE_DIMS
from .sampler import (
    CosineSchedule,
    ddim_sample,
    draw_eta_noises,
    draw_normal,
    make_generator,
    num_eta_noises,
)

__all__ = [
    "Audio2MotionConfig",
    "MotionChain",
    "WindowRecord",
    "sample_window",
    "sample_motion_offline",
    "smooth_motion",
    "clip_motion",
    "OnlineMotionSampler",
    "count_windows_offline",
]

ConditionFn = Callable[[torch.Tensor, int], torch.Tensor]
Seed = Union[int, torch.Generator, None]


@dataclass(frozen=True)
class Audio2MotionConfig:
    """Settings of the windowed sampling (defaults: the official offline ones).

    Attributes:
        overlap: frames two consecutive 80-frame windows share (official ``overlap_v2``); 10 offline, 70 online.
        steps: DDIM steps per window (``sampling_timesteps``); 50 offline, 10 online.
        smoothing: width of the centred moving average over scale, pose and t (``smo_k_d``); 3.
        guidance: classifier-free guidance weight (``guidance_weight``); 2.
        kp_cond_reset: every this many windows the next window's condition frame is reset to the source motion
            (``fix_kp_cond``; 0 = never); 0 offline, 1 online.
        kp_cond_keep: ``(start, end)`` dims kept from the prediction at such a reset (``fix_kp_cond_dim``); online
            ``(0, 202)``.
        clip_range: ``(>= 2, 265)`` array whose rows 0 and 1 are the per-dim min and max of the output
            (``v_min_max_for_clip``), or None.
        seq_frames: frames of one DiT window (80).
        batched_cfg: run the guided step's two DiT passes as one batch of 2 (equal to two passes up to rounding).
    """

    overlap: int = 10
    steps: int = 50
    smoothing: int = 3
    guidance: float = 2.0
    kp_cond_reset: int = 0
    kp_cond_keep: tuple[int, int] | None = None
    clip_range: np.ndarray | torch.Tensor | None = None
    seq_frames: int = 80
    batched_cfg: bool = True

    def __post_init__(self) -> None:
        def _int(name: str, lo: int, hi: int | None = None) -> int:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
                rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
                raise ValueError(f"{name} must be an int {rng}, got {v!r}")
            object.__setattr__(self, name, int(v))
            return int(v)

        _int("seq_frames", 1)
        _int("overlap", 0, self.seq_frames - 1)
        _int("steps", 1, 1000)
        _int("smoothing", 0)
        _int("kp_cond_reset", 0)
        g = self.guidance
        if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not np.isfinite(float(g)):
            raise ValueError(f"guidance must be a finite number, got {g!r}")
        object.__setattr__(self, "guidance", float(g))
        if self.kp_cond_keep is not None:
            if len(self.kp_cond_keep) != 2:
                raise ValueError(f"kp_cond_keep must be (start, end), got {self.kp_cond_keep!r}")
            ds, de = (int(v) for v in self.kp_cond_keep)
            if not 0 <= ds <= de <= MOTION_DIM:
                raise ValueError(f"kp_cond_keep must satisfy 0 <= start <= end <= 265, got {self.kp_cond_keep!r}")
            object.__setattr__(self, "kp_cond_keep", (ds, de))
        if self.clip_range is not None:
            arr = torch.as_tensor(np.asarray(self.clip_range, dtype=np.float32))
            if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] != MOTION_DIM:
                raise ValueError(f"clip_range must be (>=2, 265) (rows min, max), got {tuple(arr.shape)}")

    @classmethod
    def online(cls, **overrides) -> Audio2MotionConfig:
        """The official online preset: overlap 70 (a window every 10 frames), 10 steps, the condition frame reset
        every window keeping dims 0:202, smoothing 3 (no clipping unless given)."""
        kw = dict(overlap=70, steps=10, kp_cond_reset=1, kp_cond_keep=(0, POSE_DIMS.stop), smoothing=3)
        kw.update(overrides)
        return cls(**kw)

    def replace(self, **changes) -> Audio2MotionConfig:
        """These settings with ``changes`` (None values keep the current ones)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def hop(self) -> int:
        """Frames a window advances (official ``valid_clip_len``)."""
        return self.seq_frames - self.overlap

    def fuse_length(self, online: bool) -> int:
        return min(self.overlap, self.hop) if online else self.overlap


def count_windows_offline(num_frames: int, cfg: Audio2MotionConfig) -> int:
    """Number of DiT windows the offline path runs for ``num_frames`` frames: ceil(N / hop)."""
    return -(-num_frames // cfg.hop)


def smooth_motion(motion: torch.Tensor, start: int, end: int, k: int) -> torch.Tensor:
    """Centred moving average of width k (2·(k//2)+1 frames, clipped at the ends) over dims 0:202 of frames
    [start, end) of ``motion`` (T, 265); every output uses the unsmoothed input. Returns a new tensor."""
    out = motion.clone()
    if k <= 1 or end <= start:
        return out
    out[:, POSE_DIMS] = moving_average(motion[:, POSE_DIMS], k, start, end)
    return out


def clip_motion(motion: torch.Tensor, v_min_max: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """Clip (T, 265) to rows 0 (min) and 1 (max) of ``v_min_max``; None leaves it unchanged."""
    if v_min_max is None:
        return motion
    arr = torch.as_tensor(np.asarray(v_min_max, dtype=np.float32)).to(motion.device, motion.dtype)
    return torch.minimum(torch.maximum(motion, arr[0]), arr[1])


class MotionChain:
    """The fuse / smooth / kp_cond state of the official ``Audio2Motion`` over successive windows.

    ``res`` (T, 265) is the fused result so far; ``kp_cond`` (265,) the next window's cond frame.
    """

    def __init__(self, source_motion: torch.Tensor, cfg: Audio2MotionConfig, online: bool):
        if tuple(source_motion.shape) != (MOTION_DIM,):
            raise ValueError(f"source_motion must be ({MOTION_DIM},), got {tuple(source_motion.shape)}")
        self.cfg = cfg
        self.source = source_motion.detach().clone()
        self.kp_cond = self.source.clone()
        self.fuse_len = cfg.fuse_length(online)
        self.res: torch.Tensor | None = None
        self.windows = 0

    def add(self, pred: torch.Tensor) -> torch.Tensor:
        """Fuse one window's prediction (seq_frames, 265), smooth, update kp_cond; returns ``res``."""
        cfg = self.cfg
        hop, n_seq, fl = cfg.hop, cfg.seq_frames, self.fuse_len
        if self.res is None:
            res = smooth_motion(pred, 0, pred.shape[0], cfg.smoothing)
        else:
            res = self.res
            if fl > 0:
                alpha = (torch.arange(fl, dtype=torch.float32) / fl).to(res.device, res.dtype)[:, None]
                r1 = res[-fl:]
                r2 = pred[n_seq - hop - fl : n_seq - hop]
                res = torch.cat([res[:-fl], r1 * (1 - alpha) + r2 * alpha], dim=0)
            res = torch.cat([res, pred[n_seq - hop :]], dim=0)
            n = res.shape[0]
            res = smooth_motion(res, n - hop - fl, n - hop + 1, cfg.smoothing)
        self.windows += 1
        idx = res.shape[0] - cfg.overlap
        prev = res[idx - 1]
        if cfg.kp_cond_reset > 0 and self.windows % cfg.kp_cond_reset == 0:
            kp = self.source.to(res.device, res.dtype).clone()
            if cfg.kp_cond_keep is not None:
                ds, de = cfg.kp_cond_keep
                kp[ds:de] = prev[ds:de]
            self.kp_cond = kp
        else:
            self.kp_cond = prev.clone()
        self.res = res
        return res

    def trim(self, keep: int) -> int:
        """Drop all but the last ``keep`` result frames; returns how many were dropped."""
        if self.res is None or self.res.shape[0] <= keep:
            return 0
        cut = self.res.shape[0] - keep
        self.res = self.res[cut:]
        return cut


@dataclass
class WindowRecord:
    """What one window saw and produced (for inspection and tests)."""

    cond_index: int
    kp_cond: torch.Tensor  # (265,)
    cond: torch.Tensor  # (80, 1103)
    pred: torch.Tensor  # (80, 265) raw DiT output
    emit_start: int = 0
    emit_count: int = 0


def _model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


@torch.no_grad()
def sample_window(
    model: torch.nn.Module,
    kp_cond: torch.Tensor,
    cond: torch.Tensor,
    x_init: torch.Tensor,
    noises: torch.Tensor,
    schedule: CosineSchedule,
    cfg: Audio2MotionConfig,
    cancel: CancelFn | None = None,
) -> torch.Tensor:
    """One DiT window: kp_cond (265,), cond (80, 1103), x_init (80, 265), noises (S-1, 80, 265) -> motion (80, 265).
    ``cancel()`` runs before every denoising step (it may raise), so a stop never waits for a whole window."""
    if model.training:
        raise ValueError("the DiT must be in eval mode (dropout off): call model.eval() first")
    device, dtype = _model_device_dtype(model)
    cf = kp_cond.to(device, dtype)[None]
    c = cond.to(device, dtype)[None]

    def denoise(x: torch.Tensor, t: int) -> torch.Tensor:
        if cancel is not None:
            cancel()
        times = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
        return model.guided(x, cf, c, times, cfg.guidance, batched=cfg.batched_cfg)

    out = ddim_sample(denoise, x_init.to(device, dtype)[None], schedule, cfg.steps, noises.to(device, dtype))
    return out[0]


class _Randomness:
    """Eta noises (drawn first) and per-window initial x, from explicit tensors or a generator."""

    def __init__(self, cfg: Audio2MotionConfig, generator: Seed, noises: torch.Tensor | None,
                 x_inits: torch.Tensor | None):
        self.gen = make_generator(generator)
        shape = (cfg.seq_frames, MOTION_DIM)
        self.shape = shape
        if noises is None:
            noises = draw_eta_noises(cfg.steps, shape, self.gen)
        else:
            noises = torch.as_tensor(noises)
            if noises.ndim == 4 and noises.shape[1] == 1:
                noises = noises[:, 0]
            n_need = num_eta_noises(cfg.steps)
            if noises.ndim != 3 or tuple(noises.shape[1:]) != shape or noises.shape[0] < n_need:
                raise ValueError(
                    f"noises must be ({n_need}, {shape[0]}, {shape[1]}) for {cfg.steps} steps, "
                    f"got {tuple(noises.shape)}"
                )
        self.noises = noises
        if x_inits is not None:
            x_inits = torch.as_tensor(x_inits)
            if x_inits.ndim == 2:
                x_inits = x_inits[None]
            if x_inits.ndim != 3 or tuple(x_inits.shape[1:]) != shape:
                raise ValueError(f"x_inits must be (num_windows, {shape[0]}, {shape[1]}), got {tuple(x_inits.shape)}")
        self.x_inits = x_inits
        self.used = 0

    def next_x_init(self) -> torch.Tensor:
        if self.x_inits is None:
            x = draw_normal(self.shape, self.gen)
        else:
            if self.used >= self.x_inits.shape[0]:
                raise ValueError(f"x_inits holds {self.x_inits.shape[0]} windows, but window {self.used} needs one")
            x = self.x_inits[self.used]
        self.used += 1
        return x


def _check_cond(cond: torch.Tensor, name: str = "cond") -> torch.Tensor:
    cond = torch.as_tensor(np.asarray(cond) if not isinstance(cond, torch.Tensor) else cond)
    if cond.ndim != 2 or cond.shape[1] != COND_DIM or cond.shape[0] == 0:
        raise ValueError(f"{name} must be (N, {COND_DIM}) with N >= 1, got {tuple(cond.shape)}")
    return cond


def _pad_window(rows: torch.Tensor, length: int) -> torch.Tensor:
    if rows.shape[0] >= length:
        return rows[:length]
    pad = rows[-1:].expand(length - rows.shape[0], -1)
    return torch.cat([rows, pad], dim=0)


@torch.no_grad()
def sample_motion_offline(
    model: torch.nn.Module,
    cond: torch.Tensor,
    source_motion: torch.Tensor,
    cfg: Audio2MotionConfig | None = None,
    generator: Seed = None,
    noises: torch.Tensor | None = None,
    x_inits: torch.Tensor | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    schedule: CosineSchedule | None = None,
    records: list | None = None,
) -> torch.Tensor:
    """Offline audio-to-motion (official ``_audio2motion_offline``): cond (N, 1103) -> motion (N, 265) float32.

    Windows start at 0, hop, 2·hop, … < N; a short last window repeats its last cond row. The result is cut to N
    frames, smoothed once more over the whole sequence, then clipped if ``cfg.clip_range`` is set.
    ``source_motion`` (265,): the source's motion vector (scale − 1, pose logits, t, exp), the first kp_cond.
    ``noises`` (S−1, 80, 265) and ``x_inits`` (num_windows, 80, 265) override the draws from ``generator`` (an int
    seed or a torch.Generator; eta noises are drawn first, then each window's x_init in window order).
    ``cancel()`` is called before each window and each of its denoising steps (it may raise to stop);
    ``progress(done, total)`` after each window.
    ``records``, if a list, receives a :class:`WindowRecord` per window.
    """
    cfg = cfg or Audio2MotionConfig()
    cond = _check_cond(cond)
    source_motion = torch.as_tensor(source_motion, dtype=torch.float32)
    schedule = schedule or CosineSchedule()
    n = cond.shape[0]
    total = count_windows_offline(n, cfg)
    rnd = _Randomness(cfg, generator, noises, x_inits)
    chain = MotionChain(source_motion, cfg, online=False)
    for w in range(total):
        if cancel is not None:
            cancel()
        start = w * cfg.hop
        window = _pad_window(cond[start : start + cfg.seq_frames], cfg.seq_frames)
        kp_cond = chain.kp_cond
        pred = sample_window(model, kp_cond, window, rnd.next_x_init(), rnd.noises, schedule, cfg, cancel)
        pred = pred.float().cpu()
        chain.add(pred)
        if records is not None:
            records.append(WindowRecord(start, kp_cond.clone(), window, pred))
        if progress is not None:
            progress(w + 1, total)
    res = chain.res[:n]
    res = smooth_motion(res, 0, res.shape[0], cfg.smoothing)
    return clip_motion(res, cfg.clip_range)


class OnlineMotionSampler:
    """Streaming audio-to-motion (official ``stream_pipeline_online._audio2motion_worker``).

    The feature buffer starts with ``prefill_feat`` (P, 1024) (the features of P·640 zero samples, P = overlap in
    the official setup); the cond index of buffer frame j is ``j − P``. New features are taken in once at least
    ``hop`` of them are pending (or at :meth:`flush`); then a window runs on every full 80-frame span
    ``[hop·w, hop·w + 80)`` of the buffer. Window 0 only gives :attr:`d0` (its smoothed frame 0, the relative-motion
    reference) and nothing is emitted; every later window emits the ``hop`` frames it has just fused. :meth:`flush`
    runs the final window on the remaining frames padded with the last one and emits everything left.

    Usage::

        s = OnlineMotionSampler(model, conditions, source_motion, prefill, cfg, generator=0)
        for chunk in chunks:              # (5, 1024) each
            frames = s.push(chunk)        # (k, 265), k may be 0
        frames = s.flush()
    """

    def __init__(
        self,
        model: torch.nn.Module,
        conditions: ConditionFn,
        source_motion: torch.Tensor,
        prefill_feat: torch.Tensor,
        cfg: Audio2MotionConfig | None = None,
        generator: Seed = None,
        noises: torch.Tensor | None = None,
        x_inits: torch.Tensor | None = None,
        progress: Callable[[int], None] | None = None,
        cancel: CancelFn | None = None,
        schedule: CosineSchedule | None = None,
        record: bool = False,
    ):
        """``conditions(aud_feat (80,1024), start_index) -> (80,1103)`` (e.g. a ConditionBuilder); ``cfg`` defaults to
        :meth:`Audio2MotionConfig.online`; ``prefill_feat`` is (overlap, 1024) in the official setup;
        ``progress(windows_done)`` is called after each window, ``cancel()`` before each (it may raise);
        ``record`` keeps a WindowRecord per window in :attr:`records`."""
        self.cfg = cfg or Audio2MotionConfig.online()
        self.model = model
        self.conditions = conditions
        self.schedule = schedule or CosineSchedule()
        prefill = torch.as_tensor(prefill_feat, dtype=torch.float32)
        if prefill.ndim != 2:
            raise ValueError(f"prefill_feat must be (P, feat_dim), got {tuple(prefill.shape)}")
        self.feat_dim = prefill.shape[1]
        self._buffer = prefill.clone()
        self._pending: list[torch.Tensor] = []
        self._pending_n = 0
        self._local = 0  # buffer index of the next window's start
        self._global = 0  # frames consumed since the start (window w starts at global hop·w)
        self._cond_start = -prefill.shape[0]
        self._chain = MotionChain(torch.as_tensor(source_motion, dtype=torch.float32), self.cfg, online=True)
        self._rnd = _Randomness(self.cfg, generator, noises, x_inits)
        self._valid_start: int | None = None  # index into chain.res of the next frame to emit
        self._emitted = 0
        self._ended = False
        self.d0: torch.Tensor | None = None
        self.records: list[WindowRecord] = []
        self._record = record
        self._progress = progress
        self._cancel = cancel

    @property
    def num_emitted(self) -> int:
        return self._emitted

    def push(self, feat: torch.Tensor) -> torch.Tensor:
        """Take new features (n, 1024) (one 5-frame chunk, usually) -> newly emitted motion frames (k, 265)."""
        if self._ended:
            raise RuntimeError("OnlineMotionSampler.push after flush()")
        feat = torch.as_tensor(np.asarray(feat) if not isinstance(feat, torch.Tensor) else feat, dtype=torch.float32)
        if feat.ndim != 2 or feat.shape[1] != self.feat_dim:
            raise ValueError(f"features must be (n, {self.feat_dim}), got {tuple(feat.shape)}")
        self._pending.append(feat)
        self._pending_n += feat.shape[0]
        if self._pending_n < self.cfg.hop:
            return torch.zeros(0, MOTION_DIM)
        return self._run(end=False)

    def flush(self) -> torch.Tensor:
        """End of stream: run the remaining windows (the last padded) -> the remaining motion frames (k, 265)."""
        if self._ended:
            return torch.zeros(0, MOTION_DIM)
        self._ended = True
        return self._run(end=True)

    def stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Yield motion frames (265,) one by one for an iterable of feature chunks, flushing at the end."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.flush()

    def _run(self, end: bool) -> torch.Tensor:
        cfg = self.cfg
        if self._pending:
            self._buffer = torch.cat([self._buffer, *self._pending], dim=0)
            self._pending, self._pending_n = [], 0
        out: list[torch.Tensor] = []
        while True:
            feat = self._buffer[self._local : self._local + cfg.seq_frames]
            valid = cfg.hop
            if feat.shape[0] == 0:
                break
            if feat.shape[0] < cfg.seq_frames:
                if not end:
                    break
                valid = feat.shape[0]
                feat = _pad_window(feat, cfg.seq_frames)
            if self._cancel is not None:
                self._cancel()
            cond_index = self._global + self._cond_start
            cond = self.conditions(feat, cond_index)
            kp_cond = self._chain.kp_cond
            pred = sample_window(self.model, kp_cond, cond, self._rnd.next_x_init(), self._rnd.noises,
                                 self.schedule, cfg, self._cancel).float().cpu()
            res = self._chain.add(pred)
            rec = WindowRecord(cond_index, kp_cond.clone(), cond.detach().cpu(), pred) if self._record else None
            if self._valid_start is None:
                self._valid_start = res.shape[0] - self._chain.fuse_len
                self.d0 = clip_motion(res[0:1], cfg.clip_range)[0].clone()
                if rec is not None:
                    rec.emit_start, rec.emit_count = self._emitted, 0
            else:
                frames = res[self._valid_start : self._valid_start + valid]
                frames = clip_motion(frames, cfg.clip_range)
                if rec is not None:
                    rec.emit_start, rec.emit_count = self._emitted, frames.shape[0]
                out.append(frames)
                self._emitted += frames.shape[0]
                self._valid_start += valid
            self._local += valid
            self._global += valid
            if rec is not None:
                self.records.append(rec)
            if self._progress is not None:
                self._progress(self._chain.windows)
            cut = self._chain.trim(2 * cfg.seq_frames)
            self._valid_start -= cut
            if self._local >= self._buffer.shape[0]:
                break
        if self._buffer.shape[0] > 2 * cfg.seq_frames:
            cut = self._buffer.shape[0] - 2 * cfg.seq_frames
            self._buffer = self._buffer[cut:]
            self._local -= cut
        if not out:
            return torch.zeros(0, MOTION_DIM)
        return torch.cat(out, dim=0)
