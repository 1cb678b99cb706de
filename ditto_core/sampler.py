"""Cosine noise schedule and the x0-predicting DDIM sampler (eta = 1) of Ditto, separate from the network.

Numerics follow the official PyTorch path: betas in float64, cast to float32; ``alphas_cumprod`` and every derived
coefficient in float32.

Randomness: the sampler itself is deterministic given ``x_init`` and ``noises``. :func:`draw_eta_noises` draws the
per-step noises (once, then reused for every window, as the official code does) and :func:`draw_normal` an initial
``x``; both draw on the CPU from a ``torch.Generator`` (see :func:`make_generator`) and then move the result to the
requested device, so one seed gives the same numbers on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from .devices import host_float64

__all__ = [
    "CosineSchedule",
    "ddim_times",
    "make_generator",
    "draw_normal",
    "draw_eta_noises",
    "num_eta_noises",
    "ddim_sample",
    "DenoiseFn",
]

#: ``denoise_fn(x_t, t) -> x0``: x_t (B, T, C), t a python int diffusion step, returns the x0 prediction (B, T, C)
DenoiseFn = Callable[[torch.Tensor, int], torch.Tensor]


def make_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    """A CPU ``torch.Generator``: an int seeds a new one, a generator is returned as is, None stays None (global RNG)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


class CosineSchedule:
    """Cosine beta schedule (Nichol & Dhariwal) with ``num_steps`` steps, offset ``s`` and betas clipped to ``max_beta``.

    Attributes (float32, shape (num_steps,)): ``betas``, ``alphas_cumprod`` (ᾱ_t), ``sqrt_recip1m_alphas_cumprod``
    (√(1/(1-ᾱ))) and ``sqrt_recipm1_alphas_cumprod`` (√(1/ᾱ - 1)).
    """

    def __init__(self, num_steps: int = 1000, s: float = 8e-3, max_beta: float = 0.999):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = int(num_steps)
        self.s = float(s)
        self.max_beta = float(max_beta)
        with host_float64():  # on the host, whatever the device
            steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps + s
            f = torch.cos(steps / (1 + s) * math.pi / 2) ** 2
            f = f / f[0]
            betas64 = (1 - f[1:] / f[:-1]).clamp(0, max_beta)
        self.betas = betas64.float()
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.sqrt_recip1m_alphas_cumprod = torch.sqrt(1.0 / (1.0 - self.alphas_cumprod))
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod - 1)

    def predict_noise(self, x_t: torch.Tensor, t: int, x0: torch.Tensor) -> torch.Tensor:
        """ε̂ = x_t·√(1/(1-ᾱ_t)) − x0/√(1/ᾱ_t − 1), same shape as ``x_t``."""
        a = self.sqrt_recip1m_alphas_cumprod[t].to(x_t.device, x_t.dtype)
        b = self.sqrt_recipm1_alphas_cumprod[t].to(x_t.device, x_t.dtype)
        return a * x_t - x0 / b

    def ddim_coefficients(self, t: int, t_next: int, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(√ᾱ_next, c, σ) of one DDIM step t -> t_next >= 0 (float32 scalars).

        σ = η·√((1 − ᾱ/ᾱ_next)(1 − ᾱ_next)/(1 − ᾱ)), c = √(1 − ᾱ_next − σ²).
        At t = 999 the true 1 − ᾱ_next − σ² is ~1e-7 and float32 rounding can make it negative (the official code
        then yields NaN, e.g. for 5 steps); it is clamped at 0 here, which changes nothing where the official is finite.
        """
        if not (0 <= t_next < t < self.num_steps):
            raise ValueError(f"need 0 <= t_next < t < {self.num_steps}, got t={t}, t_next={t_next}")
        alpha = self.alphas_cumprod[t]
        alpha_next = self.alphas_cumprod[t_next]
        sigma = eta * ((1 - alpha / alpha_next) * (1 - alpha_next) / (1 - alpha)).sqrt()
        c = (1 - alpha_next - sigma**2).clamp_min(0).sqrt()
        return alpha_next.sqrt(), c, sigma


def ddim_times(steps: int, num_train_steps: int = 1000) -> list[tuple[int, int]]:
    """The official (t, t_next) pairs: reversed(int(linspace(-1, T-1, steps+1))) pairwise.

    steps=10 -> (999, 899), (899, 799), ..., (99, -1); steps=50 -> (999, 979), ..., (19, -1).
    """
    if not (1 <= steps <= num_train_steps):
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {steps}")
    times = torch.linspace(-1, num_train_steps - 1, steps=steps + 1).int().tolist()
    times = list(reversed(times))
    return list(zip(times[:-1], times[1:]))


def num_eta_noises(steps: int, num_train_steps: int = 1000) -> int:
    """How many eta noises a ``steps``-step run uses (pairs with t_next >= 0): steps - 1."""
    return sum(1 for _, t_next in ddim_times(steps, num_train_steps) if t_next >= 0)


def draw_normal(
    shape: Sequence[int],
    generator: int | torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal draw of ``shape`` on the CPU from ``generator`` (or a seed), then moved to ``device``."""
    g = make_generator(generator)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32).to(device=device, dtype=dtype)


def draw_eta_noises(
    steps: int,
    shape: Sequence[int] = (80, 265),
    generator: int | torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The eta=1 noises of a ``steps``-step DDIM run: (steps-1, *shape), ``[k]`` is step k's.

    Drawn once (step order) and reused for every window, as the official ``setup(sampling_timesteps)``.
    """
    return draw_normal((num_eta_noises(steps), *tuple(shape)), generator, device, dtype)


def ddim_sample(
    denoise_fn: DenoiseFn,
    x_init: torch.Tensor,
    schedule: CosineSchedule,
    steps: int,
    noises: torch.Tensor,
    eta: float = 1.0,
) -> torch.Tensor:
    """x0-predicting DDIM from ``x_init`` (B, T, C) ~ N(0, I) to x0 (B, T, C).

    For each pair (t, t_next) of :func:`ddim_times`: x0 = denoise_fn(x, t), ε̂ from x0, then
    ``x = x0·√ᾱ_next + c·ε̂ + σ·noises[k]``; the last pair (t_next = -1) returns that step's x0 (t = 0 is never run).
    ``noises`` (steps-1, ...) must broadcast to ``x_init`` per step.
    """
    pairs = ddim_times(steps, schedule.num_steps)
    need = sum(1 for _, t_next in pairs if t_next >= 0)
    if noises.shape[0] < need:
        raise ValueError(f"noises must hold {need} steps for {steps} DDIM steps, got shape {tuple(noises.shape)}")
    x = x_init
    k = 0
    for t, t_next in pairs:
        x0 = denoise_fn(x, t)
        if t_next < 0:
            return x0
        eps = schedule.predict_noise(x, t, x0)
        a, c, sigma = (v.to(x.device, x.dtype) for v in schedule.ddim_coefficients(t, t_next, eta))
        x = x0 * a + c * eps + sigma * noises[k].to(x.device, x.dtype)
        k += 1
    return x  # only reached when the last pair has t_next >= 0 (not with the official times)
