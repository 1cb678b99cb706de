"""Devices: the names a user may give and what they resolve to (torch for the networks, onnxruntime for the aux
models), and the rule for float64 maths.

**float64 runs on the host.** Apple's MPS has no float64 (and other accelerators are slow at it), so every float64
computation of the pipeline (the official Python-float and numpy maths it reproduces) runs on CPU tensors inside
:func:`host_float64`, and only its float32 result moves to the device. The tests hold the device-side stages to this
rule under a dispatch mode that refuses any float64 tensor made outside such a block.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

__all__ = [
    "DEVICES",
    "SUPPORTED_DEVICE_TYPES",
    "autocast_available",
    "autocast_off",
    "fp32_exact",
    "host_float64",
    "in_host_float64",
    "ort_device",
    "own_stream",
    "resolve_device",
    "side_stream",
    "stream_ready",
    "wait_ready",
    "worker_stream",
]

log = logging.getLogger("ditto")

#: torch device types the pipeline runs on
SUPPORTED_DEVICE_TYPES = ("cpu", "cuda", "mps")
_HOST_FLOAT64: contextvars.ContextVar[bool] = contextvars.ContextVar("ditto_host_float64", default=False)


@contextmanager
def host_float64() -> Iterator[None]:
    """Marks a block of float64 maths on CPU tensors (module doc); tensors made in it must stay on the host until
    they are cast to float32."""
    token = _HOST_FLOAT64.set(True)
    try:
        yield
    finally:
        _HOST_FLOAT64.reset(token)


def in_host_float64() -> bool:
    """Whether the calling code is inside a :func:`host_float64` block."""
    return _HOST_FLOAT64.get()

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
    if dev.type not in SUPPORTED_DEVICE_TYPES:
        raise ValueError(
            f"device {name!r}: the {dev.type} device is not supported (the renderer's 3-D warp and the stitcher need "
            f"ops it lacks); use one of {DEVICES} or cuda:N"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available in this PyTorch build or on this machine")
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"device {name!r}: Apple MPS is not available on this machine")
    return dev


def ort_device(device: torch.device) -> str:
    """The onnxruntime device string for the aux models: CUDA on the same index for a CUDA device (``cuda`` alone is
    the current device's index), CoreML for Apple MPS (the CPU where onnxruntime has no CoreML provider), the CPU
    otherwise."""
    if device.type == "cuda":
        index = device.index if device.index is not None else (torch.cuda.current_device()
                                                                 if torch.cuda.is_available() else 0)
        return f"cuda:{index}"
    if device.type == "mps":
        return "coreml"
    return "cpu"


# ------------------------------------------------------------------------------------------ CUDA streams
@contextmanager
def worker_stream(device: torch.device) -> Iterator[torch.cuda.Stream | None]:
    """A worker thread's own CUDA stream on ``device`` (so two threads' kernels can overlap on the GPU), which first
    waits for the work already queued on the device's current stream; nothing on other devices."""
    if device.type != "cuda":
        yield None
        return
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.device(device), torch.cuda.stream(stream):
        yield stream


def stream_ready(device: torch.device) -> torch.cuda.Event | None:
    """An event recorded on ``device``'s current stream: tensors made so far are ready once it has passed (None off
    CUDA)."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


def wait_ready(device: torch.device, event: torch.cuda.Event | None, tensors: tuple[torch.Tensor, ...] = ()) -> None:
    """Before using tensors another thread made on its own stream: the current stream waits for ``event``, and the
    tensors are marked as used by it (the caching allocator keeps their memory until this stream is done)."""
    if event is None or device.type != "cuda":
        return
    current = torch.cuda.current_stream(device)
    current.wait_event(event)
    _used_by(tensors, current)


def _used_by(tensors: tuple[torch.Tensor, ...], stream: torch.cuda.Stream) -> None:
    """Mark the CUDA ones of ``tensors`` as used by ``stream`` (their memory is not reused until its work is done)."""
    for t in tensors:
        if t.is_cuda:
            t.record_stream(stream)


def own_stream(device: torch.device) -> torch.cuda.Stream | None:
    """A new CUDA stream on ``device`` for work that should not run on the legacy default stream (which every
    other stream synchronises with); None off CUDA."""
    return torch.cuda.Stream(device) if device.type == "cuda" else None


@contextmanager
def side_stream(stream: torch.cuda.Stream | None, device: torch.device,
                tensors: tuple[torch.Tensor, ...] = ()) -> Iterator[torch.cuda.Stream | None]:
    """Launch work on ``stream`` (by its raw handle, as TensorRT's ``execute_async_v3`` takes it) in order with
    ``device``'s current stream: ``stream`` first waits for what is queued there, ``tensors`` (the launch's inputs
    and outputs) are marked as used by it, and after the block the current stream waits for ``stream``, so the
    caller's next kernels see the results. ``stream`` None: nothing (the work runs on the current stream)."""
    if stream is None:
        yield None
        return
    current = torch.cuda.current_stream(device)
    stream.wait_stream(current)
    _used_by(tensors, stream)
    try:
        yield stream
    finally:
        current.wait_stream(stream)


# ------------------------------------------------------------------------------------------ precision
@functools.cache
def autocast_available(device_type: str) -> bool:
    """Whether this PyTorch has autocast for ``device_type`` (MPS only from PyTorch 2.5, where even
    ``torch.autocast("mps", enabled=False)`` raises before). A pure probe, cached per device type."""
    try:
        torch.autocast(device_type, enabled=False)
        return True
    except (RuntimeError, ValueError):
        return False


def autocast_off(device_type: str) -> AbstractContextManager[object]:
    """A block where autocast is off on ``device_type`` (nothing to turn off where autocast does not exist)."""
    return torch.autocast(device_type, enabled=False) if autocast_available(device_type) else nullcontext()


@contextmanager
def fp32_exact(device: torch.device) -> Iterator[None]:
    """fp32 means fp32 on CUDA: TF32 off for cuDNN convolutions and matmuls while the block runs (Ampere and newer
    run fp32 convolutions as TF32 by default); the previous settings come back after it. Nothing elsewhere."""
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
