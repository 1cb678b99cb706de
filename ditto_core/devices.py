"""Devices: the names a user may give and what they resolve to (torch for the networks, onnxruntime for the aux
models)."""

from __future__ import annotations

import torch

__all__ = ["DEVICES", "ort_device", "resolve_device"]

#: device names a user may give ("auto": CUDA, else Apple MPS, else the CPU; "cuda:N" too)
DEVICES = ("auto", "cuda", "cpu", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; other names are checked to be usable."""
    name = str(device)
    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected one of {DEVICES} (or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available in this PyTorch build or on this machine")
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"device {name!r}: Apple MPS is not available on this machine")
    return dev


def ort_device(device: torch.device) -> str:
    """The onnxruntime device string for the aux models (CoreML/MPS has no ORT equivalent here: CPU)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return "cpu"
