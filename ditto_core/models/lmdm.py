"""Ditto's motion DiT ("LMDM"): an EDGE-style FiLM transformer decoder that predicts x0.

The module tree and attribute names equal the keys of ``lmdm_v0.4_hubert.pth["model_state_dict"]``
(249 entries, no prefix, 47.79 M parameters), so the official checkpoint loads with ``strict=True``.

Data flow of :meth:`MotionDecoder.forward` (B = batch, T = 80 frames, D = 512):

* ``x`` (B, T, 265) concatenated with ``cond_frame`` (B, 265) repeated over time -> ``input_projection`` -> (B, T, D).
* ``cond`` (B, T, 1103) -> ``cond_projection`` -> 2 pre-norm encoder layers -> cond tokens (B, T, D); a dropped
  (classifier-free guidance) row uses ``null_cond_embed`` instead. Their time mean -> ``non_attn_cond_projection``
  -> cond hidden (B, D), or ``null_cond_hidden`` when dropped.
* diffusion step ``times`` (B,) -> sinusoidal embedding -> MLP (B, 4D); ``to_time_cond`` (B, D) + cond hidden gives the
  FiLM input, ``to_time_tokens`` gives 2 extra memory tokens. Memory = LayerNorm(cond tokens ++ time tokens) (B, T+2, D).
* 8 decoder layers: self-attention, cross-attention, feed-forward, each pre-norm and FiLM-modulated by the time input.
* ``final_layer`` -> x0 (B, T, 265).

Rotary position embedding is applied to the whole 512-d hidden (queries and keys only, before the attention's input
projection); the memory keys get positions 0..T+1. One rotary module is shared by every layer, which is why the
state_dict holds 11 copies of ``*rotary.freqs``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MotionDecoder", "RotaryEmbedding", "SinusoidalTimeEmbedding"]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the full feature dim, pairs interleaved (``x[2i], x[2i+1]``).

    ``freqs`` (dim/2,) = ``1 / theta ** (arange(0, dim, 2) / dim)``, a persistent buffer (it is in the checkpoint).
    """

    def __init__(self, dim: int = 512, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dim must be even, got {dim}")
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.register_buffer("freqs", freqs)

    def angles(self, length: int, device: torch.device) -> torch.Tensor:
        """Rotation angles (length, dim) in radians for positions 0..length-1, each frequency used twice."""
        pos = torch.arange(length, device=device).to(self.freqs.dtype)
        ang = pos[:, None] * self.freqs[None, :]
        return ang.repeat_interleave(2, dim=-1)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., length, dim) by its positions along dim -2."""
        ang = self.angles(x.shape[-2], x.device).to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * ang.cos() + half * ang.sin()


class SinusoidalTimeEmbedding(nn.Module):
    """Diffusion step (B,) -> (B, dim) = ``[sin(t f), cos(t f)]`` with ``f_i = exp(-ln(1e4) i / (dim/2 - 1))``."""

    def __init__(self, dim: int = 512):
        super().__init__()
        self.dim = dim

    def forward(self, times: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=times.device) * -scale)
        arg = times[:, None] * freqs[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


class _SplitTokens(nn.Module):
    """(B, n*D) -> (B, n, D)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n, -1)


class DenseFiLM(nn.Module):
    """FiLM generator: Mish -> Linear(D, 2D) -> (scale, shift), each (B, 1, D). Key: ``block.1``."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(nn.Mish(), nn.Linear(dim, dim * 2))

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.block(t)[:, None, :].chunk(2, dim=-1)
        return scale, shift


def _film(y: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    scale, shift = scale_shift
    return (scale + 1) * y + shift


class CondEncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with rotary q/k (batch first); used on the cond tokens."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, rotary: RotaryEmbedding | None):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.rotary = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        qk = self.rotary.rotate(h) if self.rotary is not None else h
        x = x + self.dropout1(self.self_attn(qk, qk, h, need_weights=False)[0])
        h = self.norm2(x)
        x = x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(h)))))
        return x


class FiLMDecoderLayer(nn.Module):
    """Pre-norm decoder layer: FiLM-modulated self-attention, cross-attention and feed-forward, rotary q/k."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, rotary: RotaryEmbedding | None):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.film1 = DenseFiLM(dim)
        self.film2 = DenseFiLM(dim)
        self.film3 = DenseFiLM(dim)
        self.rotary = rotary

    def _rot(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotary.rotate(x) if self.rotary is not None else x

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), memory (B, M, D), t (B, D) -> (B, T, D)."""
        h = self.norm1(x)
        qk = self._rot(h)
        y = self.dropout1(self.self_attn(qk, qk, h, need_weights=False)[0])
        x = x + _film(y, self.film1(t))
        h = self.norm2(x)
        y = self.dropout2(self.multihead_attn(self._rot(h), self._rot(memory), memory, need_weights=False)[0])
        x = x + _film(y, self.film2(t))
        h = self.norm3(x)
        y = self.dropout3(self.linear2(self.dropout(F.gelu(self.linear1(h)))))
        return x + _film(y, self.film3(t))


class DecoderStack(nn.Module):
    """Holds the decoder layers under the key ``stack``."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.stack = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        for layer in self.stack:
            x = layer(x, memory, t)
        return x


class MotionDecoder(nn.Module):
    """The Ditto motion DiT with the official hyper-parameters as defaults (x0 prediction).

    ``forward(x (B,80,265), cond_frame (B,265), cond (B,80,1103), times (B,) int64, drop_cond=False) -> x0 (B,80,265)``.
    """

    def __init__(
        self,
        motion_dim: int = 265,
        seq_len: int = 80,
        latent_dim: int = 512,
        ff_size: int = 1024,
        num_layers: int = 8,
        num_heads: int = 8,
        dropout: float = 0.1,
        cond_dim: int = 1103,
        num_cond_layers: int = 2,
    ):
        super().__init__()
        self.motion_dim = motion_dim
        self.seq_len = seq_len
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim

        self.null_cond_embed = nn.Parameter(torch.randn(1, seq_len, latent_dim))
        self.null_cond_hidden = nn.Parameter(torch.randn(1, latent_dim))

        self.rotary = RotaryEmbedding(latent_dim)
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(latent_dim), nn.Linear(latent_dim, latent_dim * 4), nn.Mish()
        )
        self.to_time_cond = nn.Sequential(nn.Linear(latent_dim * 4, latent_dim))
        self.to_time_tokens = nn.Sequential(nn.Linear(latent_dim * 4, latent_dim * 2), _SplitTokens(2))
        self.norm_cond = nn.LayerNorm(latent_dim)
        self.input_projection = nn.Linear(motion_dim * 2, latent_dim)
        self.cond_encoder = nn.Sequential(
            *[CondEncoderLayer(latent_dim, num_heads, ff_size, dropout, self.rotary) for _ in range(num_cond_layers)]
        )
        self.cond_projection = nn.Linear(cond_dim, latent_dim)
        self.non_attn_cond_projection = nn.Sequential(
            nn.LayerNorm(latent_dim),
            nn.Linear(latent_dim, latent_dim),
            nn.SiLU(),
            nn.Linear(latent_dim, latent_dim),
        )
        self.seqTransDecoder = DecoderStack(
            [FiLMDecoderLayer(latent_dim, num_heads, ff_size, dropout, self.rotary) for _ in range(num_layers)]
        )
        self.final_layer = nn.Linear(latent_dim, motion_dim)

    # ------------------------------------------------------------------ checks
    def _check(self, x: torch.Tensor, cond_frame: torch.Tensor, cond: torch.Tensor, times: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.motion_dim:
            raise ValueError(f"x must be (B, T, {self.motion_dim}), got {tuple(x.shape)}")
        b, n = x.shape[:2]
        if tuple(cond_frame.shape) != (b, self.motion_dim):
            raise ValueError(f"cond_frame must be ({b}, {self.motion_dim}), got {tuple(cond_frame.shape)}")
        if tuple(cond.shape) != (b, n, self.cond_dim):
            raise ValueError(f"cond must be ({b}, {n}, {self.cond_dim}), got {tuple(cond.shape)}")
        if tuple(times.shape) != (b,):
            raise ValueError(f"times must be ({b},), got {tuple(times.shape)}")

    # ----------------------------------------------------------------- forward
    def forward_masked(
        self, x: torch.Tensor, cond_frame: torch.Tensor, cond: torch.Tensor, times: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """x0 prediction where ``keep`` (B,) bool says which rows see their cond (False = CFG null cond).

        The cond encoder runs only on the kept rows (a dropped row's tokens are replaced anyway).
        """
        self._check(x, cond_frame, cond, times)
        b, n = x.shape[:2]
        if not bool(keep.all()) and n != self.seq_len:
            raise ValueError(f"a dropped cond needs T = {self.seq_len} (the null embedding's length), got {n}")
        h = self._embed(x, cond_frame)
        null_tokens = self.null_cond_embed.to(h.dtype).expand(b, -1, -1)
        null_hidden = self.null_cond_hidden.to(h.dtype).expand(b, -1)
        if bool(keep.all()):
            tokens = self.cond_encoder(self.cond_projection(cond))
            cond_hidden = self.non_attn_cond_projection(tokens.mean(dim=-2))
        elif not bool(keep.any()):
            tokens, cond_hidden = null_tokens, null_hidden
        else:
            kept = self.cond_encoder(self.cond_projection(cond[keep]))
            tokens = null_tokens.clone()
            tokens[keep] = kept
            cond_hidden = null_hidden.clone()
            cond_hidden[keep] = self.non_attn_cond_projection(kept.mean(dim=-2))
        return self._denoise(h, tokens, cond_hidden, times)

    def _embed(self, x: torch.Tensor, cond_frame: torch.Tensor) -> torch.Tensor:
        """The input tokens: each frame of x (B, T, 265) beside the condition frame (B, 265) -> (B, T, latent)."""
        b, n = x.shape[:2]
        return self.input_projection(torch.cat([x, cond_frame[:, None, :].expand(b, n, -1)], dim=-1))

    def _denoise(self, h: torch.Tensor, tokens: torch.Tensor, cond_hidden: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """The decoder over the input tokens ``h`` with the cond ``tokens``, ``cond_hidden`` and the timesteps."""
        t_hidden = self.time_mlp(times)
        t = self.to_time_cond(t_hidden) + cond_hidden
        memory = self.norm_cond(torch.cat((tokens, self.to_time_tokens(t_hidden)), dim=-2))
        return self.final_layer(self.seqTransDecoder(h, memory, t))

    def forward(
        self,
        x: torch.Tensor,
        cond_frame: torch.Tensor,
        cond: torch.Tensor,
        times: torch.Tensor,
        drop_cond: bool = False,
    ) -> torch.Tensor:
        """x (B,80,265) noisy motion, cond_frame (B,265), cond (B,80,1103), times (B,) int64 -> x0 (B,80,265).

        ``drop_cond=True`` is the unconditional pass of classifier-free guidance: the 1103-d cond is replaced by the
        learned null embeddings; ``cond_frame`` is still used.
        """
        keep = torch.full((x.shape[0],), not drop_cond, dtype=torch.bool, device=x.device)
        return self.forward_masked(x, cond_frame, cond, times, keep)

    def _guided_pair(
        self, x: torch.Tensor, cond_frame: torch.Tensor, cond: torch.Tensor, times: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditional and the unconditional x0 of (B, 80, 265) as one batch of 2B: rows ``:B`` see their cond,
        rows ``B:`` the null cond (:meth:`forward_masked` with that mask, written without reading anything back from
        the device, so that a CUDA graph can capture it)."""
        self._check(x, cond_frame, cond, times)
        b, n = x.shape[:2]
        if n != self.seq_len:
            raise ValueError(f"guidance needs T = {self.seq_len} (the null embedding's length), got {n}")
        h = self._embed(torch.cat([x, x]), torch.cat([cond_frame, cond_frame]))
        kept = self.cond_encoder(self.cond_projection(cond))
        tokens = torch.cat([kept, self.null_cond_embed.to(h.dtype).expand(b, -1, -1)])
        cond_hidden = torch.cat([self.non_attn_cond_projection(kept.mean(dim=-2)),
                                 self.null_cond_hidden.to(h.dtype).expand(b, -1)])
        out = self._denoise(h, tokens, cond_hidden, torch.cat([times, times]))
        return out[:b], out[b:]

    def guided(
        self,
        x: torch.Tensor,
        cond_frame: torch.Tensor,
        cond: torch.Tensor,
        times: torch.Tensor,
        guidance_weight: float = 2.0,
        batched: bool = True,
    ) -> torch.Tensor:
        """Classifier-free guided x0 (B,80,265) = ``unc + (cond - unc) * guidance_weight``.

        ``batched=True`` runs the conditional and unconditional passes as one batch of 2B (same result as two passes
        up to float rounding, ~1e-7 relative; nothing is read back from the device, so a CUDA graph can capture the
        step); ``False`` runs them one after the other like the official code.
        """
        if batched:
            conditioned, unc = self._guided_pair(x, cond_frame, cond, times)
        else:
            unc = self.forward(x, cond_frame, cond, times, drop_cond=True)
            conditioned = self.forward(x, cond_frame, cond, times, drop_cond=False)
        return unc + (conditioned - unc) * guidance_weight
