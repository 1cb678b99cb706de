"""Audio-to-motion: windowed DiT sampling over a condition sequence, offline and streaming.

The DiT generates 80-frame windows. Consecutive windows overlap by ``overlap_v2`` frames and advance by
``hop = 80 - overlap_v2`` (the official ``valid_clip_len``). Each window is conditioned on ``kp_cond`` (265,), a motion
frame of the result so far, and its start is cross-faded into the result:

* fuse: the last ``L`` result frames become ``res·(1 − α) + pred[80−hop−L : 80−hop]·α`` with ``α = arange(L)/L``, then
  ``pred[80−hop:]`` is appended. ``L = overlap_v2`` offline, ``min(overlap_v2, hop)`` online.
* smoothing: a centred moving average of width ``smo_k_d`` over dims 0:202 (scale, pose logits, t; not exp), on the
  frames just fused (the first window: all of it), each output from the unsmoothed values.
* kp_cond: the result frame just before the next window starts (``res[len − overlap_v2 − 1]``). With
  ``fix_kp_cond = n > 0``, after every n-th window it is reset to the source motion, keeping the prediction only in
  dims ``fix_kp_cond_dim = (ds, de)`` if given.

Randomness (see :mod:`ditto_core.sampler`): the DDIM eta noises are drawn once, then each window's initial ``x``, all
from one ``torch.Generator``; pass ``noises`` / ``x_inits`` to fix them explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .conditions import COND_DIM
from .motion import MOTION_DIM
from .sampler import CosineSchedule, ddim_sample, draw_eta_noises, draw_normal, make_generator, num_eta_noises

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

#: dims covered by smoothing (scale, pitch/yaw/roll logits, t)
SMOOTH_DIMS = 202
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], None]
ConditionFn = Callable[[torch.Tensor, int], torch.Tensor]
Seed = Union[int, torch.Generator, None]


@dataclass
class Audio2MotionConfig:
    """Settings of the windowed sampling (official ``Audio2Motion.setup`` names and defaults).

    ``fix_kp_cond_dim``: (ds, de) dims kept from the prediction when kp_cond is reset; ``v_min_max_for_clip``: an
    array whose rows 0 and 1 are the per-dim min and max (265,) applied to the output, or None.
    """

    overlap_v2: int = 10
    fix_kp_cond: int = 0
    fix_kp_cond_dim: Optional[tuple[int, int]] = None
    sampling_timesteps: int = 50
    smo_k_d: int = 3
    v_min_max_for_clip: Optional[Union[np.ndarray, torch.Tensor]] = None
    guidance_weight: float = 2.0
    seq_frames: int = 80
    #: run the guided step's two DiT passes as one batch of 2 (equal to two passes up to float rounding)
    batched_cfg: bool = True

    def __post_init__(self) -> None:
        if self.seq_frames < 1:
            raise ValueError(f"seq_frames must be >= 1, got {self.seq_frames}")
        if not 0 <= self.overlap_v2 < self.seq_frames:
            raise ValueError(f"overlap_v2 must be in [0, {self.seq_frames - 1}], got {self.overlap_v2}")
        if self.fix_kp_cond < 0:
            raise ValueError(f"fix_kp_cond must be >= 0, got {self.fix_kp_cond}")
        if self.fix_kp_cond_dim is not None:
            if len(self.fix_kp_cond_dim) != 2:
                raise ValueError(f"fix_kp_cond_dim must be (start, end), got {self.fix_kp_cond_dim!r}")
            ds, de = (int(v) for v in self.fix_kp_cond_dim)
            if not 0 <= ds <= de <= MOTION_DIM:
                raise ValueError(f"fix_kp_cond_dim must satisfy 0 <= start <= end <= 265, got {self.fix_kp_cond_dim!r}")
            self.fix_kp_cond_dim = (ds, de)
        if not 1 <= self.sampling_timesteps <= 1000:
            raise ValueError(f"sampling_timesteps must be in [1, 1000], got {self.sampling_timesteps}")
        if self.smo_k_d < 0:
            raise ValueError(f"smo_k_d must be >= 0, got {self.smo_k_d}")
        if self.v_min_max_for_clip is not None:
            arr = torch.as_tensor(np.asarray(self.v_min_max_for_clip, dtype=np.float32))
            if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] != MOTION_DIM:
                raise ValueError(f"v_min_max_for_clip must be (>=2, 265) (rows min, max), got {tuple(arr.shape)}")

    @classmethod
    def online_defaults(cls, **overrides) -> "Audio2MotionConfig":
        """The official online cfg's audio-to-motion values: overlap 70 (hop 10), 10 steps, fix_kp_cond 1 on dims
        0:202, smoothing 3 (no clipping unless given)."""
        kw = dict(overlap_v2=70, sampling_timesteps=10, fix_kp_cond=1, fix_kp_cond_dim=(0, SMOOTH_DIMS), smo_k_d=3)
        kw.update(overrides)
        return cls(**kw)

    @property
    def hop(self) -> int:
        """Frames a window advances (official ``valid_clip_len``)."""
        return self.seq_frames - self.overlap_v2

    def fuse_length(self, online: bool) -> int:
        return min(self.overlap_v2, self.hop) if online else self.overlap_v2


def count_windows_offline(num_frames: int, cfg: Audio2MotionConfig) -> int:
    """Number of DiT windows the offline path runs for ``num_frames`` frames: ceil(N / hop)."""
    return -(-num_frames // cfg.hop)


def smooth_motion(motion: torch.Tensor, start: int, end: int, k: int) -> torch.Tensor:
    """Centred moving average of width k (2·(k//2)+1 frames, clipped at the ends) over dims 0:202 of frames
    [start, end) of ``motion`` (T, 265); every output uses the unsmoothed input. Returns a new tensor."""
    if k <= 1 or end <= start:
        return motion.clone()
    n = motion.shape[0]
    half = k // 2
    src = motion[:, :SMOOTH_DIMS].double()
    csum = torch.cat([src.new_zeros(1, SMOOTH_DIMS), src.cumsum(0)])
    idx = torch.arange(start, end, device=motion.device)
    lo = (idx - half).clamp(min=0)
    hi = (idx + half + 1).clamp(max=n)
    mean = (csum[hi] - csum[lo]) / (hi - lo).to(src.dtype)[:, None]
    out = motion.clone()
    out[start:end, :SMOOTH_DIMS] = mean.to(motion.dtype)
    return out


def clip_motion(motion: torch.Tensor, v_min_max: Optional[Union[np.ndarray, torch.Tensor]]) -> torch.Tensor:
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
        self.res: Optional[torch.Tensor] = None
        self.windows = 0

    def add(self, pred: torch.Tensor) -> torch.Tensor:
        """Fuse one window's prediction (seq_frames, 265), smooth, update kp_cond; returns ``res``."""
        cfg = self.cfg
        hop, n_seq, fl = cfg.hop, cfg.seq_frames, self.fuse_len
        if self.res is None:
            res = smooth_motion(pred, 0, pred.shape[0], cfg.smo_k_d)
        else:
            res = self.res
            if fl > 0:
                alpha = (torch.arange(fl, dtype=torch.float32) / fl).to(res.device, res.dtype)[:, None]
                r1 = res[-fl:]
                r2 = pred[n_seq - hop - fl : n_seq - hop]
                res = torch.cat([res[:-fl], r1 * (1 - alpha) + r2 * alpha], dim=0)
            res = torch.cat([res, pred[n_seq - hop :]], dim=0)
            n = res.shape[0]
            res = smooth_motion(res, n - hop - fl, n - hop + 1, cfg.smo_k_d)
        self.windows += 1
        idx = res.shape[0] - cfg.overlap_v2
        prev = res[idx - 1]
        if cfg.fix_kp_cond > 0 and self.windows % cfg.fix_kp_cond == 0:
            kp = self.source.to(res.device, res.dtype).clone()
            if cfg.fix_kp_cond_dim is not None:
                ds, de = cfg.fix_kp_cond_dim
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
) -> torch.Tensor:
    """One DiT window: kp_cond (265,), cond (80, 1103), x_init (80, 265), noises (S-1, 80, 265) -> motion (80, 265)."""
    if model.training:
        raise ValueError("the DiT must be in eval mode (dropout off): call model.eval() first")
    device, dtype = _model_device_dtype(model)
    cf = kp_cond.to(device, dtype)[None]
    c = cond.to(device, dtype)[None]

    def denoise(x: torch.Tensor, t: int) -> torch.Tensor:
        times = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
        return model.guided(x, cf, c, times, cfg.guidance_weight, batched=cfg.batched_cfg)

    out = ddim_sample(denoise, x_init.to(device, dtype)[None], schedule, cfg.sampling_timesteps, noises.to(device, dtype))
    return out[0]


class _Randomness:
    """Eta noises (drawn first) and per-window initial x, from explicit tensors or a generator."""

    def __init__(self, cfg: Audio2MotionConfig, generator: Seed, noises: Optional[torch.Tensor],
                 x_inits: Optional[torch.Tensor]):
        self.gen = make_generator(generator)
        shape = (cfg.seq_frames, MOTION_DIM)
        self.shape = shape
        if noises is None:
            noises = draw_eta_noises(cfg.sampling_timesteps, shape, self.gen)
        else:
            noises = torch.as_tensor(noises)
            if noises.ndim == 4 and noises.shape[1] == 1:
                noises = noises[:, 0]
            n_need = num_eta_noises(cfg.sampling_timesteps)
            if noises.ndim != 3 or tuple(noises.shape[1:]) != shape or noises.shape[0] < n_need:
                raise ValueError(
                    f"noises must be ({n_need}, {shape[0]}, {shape[1]}) for {cfg.sampling_timesteps} steps, "
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
    cfg: Optional[Audio2MotionConfig] = None,
    generator: Seed = None,
    noises: Optional[torch.Tensor] = None,
    x_inits: Optional[torch.Tensor] = None,
    progress: Optional[ProgressFn] = None,
    cancel: Optional[CancelFn] = None,
    schedule: Optional[CosineSchedule] = None,
    records: Optional[list] = None,
) -> torch.Tensor:
    """Offline audio-to-motion (official ``_audio2motion_offline``): cond (N, 1103) -> motion (N, 265) float32.

    Windows start at 0, hop, 2·hop, … < N; a short last window repeats its last cond row. The result is cut to N
    frames, smoothed once more over the whole sequence, then clipped if ``cfg.v_min_max_for_clip`` is set.
    ``source_motion`` (265,): the source's motion vector (scale − 1, pose logits, t, exp), the first kp_cond.
    ``noises`` (S−1, 80, 265) and ``x_inits`` (num_windows, 80, 265) override the draws from ``generator`` (an int
    seed or a torch.Generator; eta noises are drawn first, then each window's x_init in window order).
    ``cancel()`` is called before each window (it may raise to stop); ``progress(done, total)`` after each.
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
        pred = sample_window(model, kp_cond, window, rnd.next_x_init(), rnd.noises, schedule, cfg)
        pred = pred.float().cpu()
        chain.add(pred)
        if records is not None:
            records.append(WindowRecord(start, kp_cond.clone(), window, pred))
        if progress is not None:
            progress(w + 1, total)
    res = chain.res[:n]
    res = smooth_motion(res, 0, res.shape[0], cfg.smo_k_d)
    return clip_motion(res, cfg.v_min_max_for_clip)


class OnlineMotionSampler:
    """Streaming audio-to-motion (official ``stream_pipeline_online._audio2motion_worker``).

    The feature buffer starts with ``prefill_feat`` (P, 1024) (the features of P·640 zero samples, P = overlap_v2 in
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
        cfg: Optional[Audio2MotionConfig] = None,
        generator: Seed = None,
        noises: Optional[torch.Tensor] = None,
        x_inits: Optional[torch.Tensor] = None,
        progress: Optional[Callable[[int], None]] = None,
        cancel: Optional[CancelFn] = None,
        schedule: Optional[CosineSchedule] = None,
        record: bool = False,
    ):
        """``conditions(aud_feat (80,1024), start_index) -> (80,1103)`` (e.g. a ConditionBuilder); ``cfg`` defaults to
        :meth:`Audio2MotionConfig.online_defaults`; ``prefill_feat`` is (overlap_v2, 1024) in the official setup;
        ``progress(windows_done)`` is called after each window, ``cancel()`` before each (it may raise);
        ``record`` keeps a WindowRecord per window in :attr:`records`."""
        self.cfg = cfg or Audio2MotionConfig.online_defaults()
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
        self._valid_start: Optional[int] = None  # index into chain.res of the next frame to emit
        self._emitted = 0
        self._ended = False
        self.d0: Optional[torch.Tensor] = None
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
                                 self.schedule, cfg).float().cpu()
            res = self._chain.add(pred)
            rec = WindowRecord(cond_index, kp_cond.clone(), cond.detach().cpu(), pred) if self._record else None
            if self._valid_start is None:
                self._valid_start = res.shape[0] - self._chain.fuse_len
                self.d0 = clip_motion(res[0:1], cfg.v_min_max_for_clip)[0].clone()
                if rec is not None:
                    rec.emit_start, rec.emit_count = self._emitted, 0
            else:
                frames = res[self._valid_start : self._valid_start + valid]
                frames = clip_motion(frames, cfg.v_min_max_for_clip)
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
