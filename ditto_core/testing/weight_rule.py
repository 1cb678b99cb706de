"""The deterministic weight rule of the golden data (and of the synthetic model kit).

Every state_dict entry is drawn independently from its key and a ``salt``, so two
implementations with the same architecture (same key names and shapes) get the same
weights without sharing any file. The rule is the one in ``shared/golden/README.md``:

* ``*rotary.freqs``: kept as the module computes it (not random)
* ``*num_batches_tracked``: zeros
* ``*running_var``: ``0.5 + rand``
* ``*running_mean``: ``0.1 * randn``
* ``*weight_u`` / ``*weight_v``: 30 power iterations on the matching ``weight_orig`` (float64)
* 2-D or more: ``randn / sqrt(prod(shape[1:]))``
* 1-D ``*weight``: ``1 + 0.1 * randn``
* anything else: ``0.1 * randn``

All draws use a ``torch.Generator`` seeded with
``int.from_bytes(sha256(f"{salt}:{key}").digest()[:8], "little") % 2**63``, in float32.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["key_seed", "rule_tensor", "rule_state_dict", "apply_weight_rule", "spectral_uv"]

SPECTRAL_ITERS = 30


def key_seed(salt: str, key: str) -> int:
    """Seed of one state_dict entry: the first 8 bytes of sha256("salt:key"), little endian, mod 2**63."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def rule_tensor(key: str, shape: tuple[int, ...], salt: str) -> torch.Tensor:
    """The rule's float32 value for one entry that is neither a rotary buffer nor a spectral vector."""
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    g = torch.Generator().manual_seed(key_seed(salt, key))
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        fan = math.prod(shape[1:])
        return torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(fan)
    if len(shape) == 1 and key.endswith("weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
    return 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)


def spectral_uv(weight_orig: torch.Tensor, iters: int = SPECTRAL_ITERS) -> tuple[torch.Tensor, torch.Tensor]:
    """Power-iteration vectors ``(u, v)`` of ``weight_orig`` reshaped to ``(out, -1)``, float64 then float32."""
    w = weight_orig.detach().to(torch.float64).reshape(weight_orig.shape[0], -1)
    v = torch.ones(w.shape[1], dtype=torch.float64)
    v = v / v.norm()
    u = torch.zeros(w.shape[0], dtype=torch.float64)
    for _ in range(iters):
        u = w @ v
        u = u / u.norm()
        v = w.T @ u
        v = v / v.norm()
    return u.float(), v.float()


def rule_state_dict(reference: Mapping[str, torch.Tensor], salt: str) -> "OrderedDict[str, torch.Tensor]":
    """Fill every entry of ``reference`` (a state_dict: names and shapes) by the rule.

    ``reference`` supplies the key order, the shapes and the values kept as they are
    (``*rotary.freqs``). Returns a new OrderedDict; the dtypes are float32 except
    ``num_batches_tracked`` (int64).
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in reference.items():
        if key.endswith("rotary.freqs"):
            out[key] = value.detach().clone()
        elif key.endswith("weight_u") or key.endswith("weight_v"):
            out[key] = torch.empty(0)  # filled below, once weight_orig is known
        else:
            out[key] = rule_tensor(key, tuple(value.shape), salt)
    for key in list(out):
        if key.endswith("weight_u"):
            prefix = key[: -len("weight_u")]
            u, v = spectral_uv(out[prefix + "weight_orig"])
            out[key] = u.reshape(reference[key].shape)
            out[prefix + "weight_v"] = v.reshape(reference[prefix + "weight_v"].shape)
    return out


def apply_weight_rule(model: nn.Module, salt: str) -> nn.Module:
    """Load the rule's weights into ``model`` (strict) and return it in eval mode."""
    sd = rule_state_dict(model.state_dict(), salt)
    model.load_state_dict(sd, strict=True)
    return model.eval()
