"""Render stage: stitched keypoints -> warp -> decode -> 512x512 face renders.

The source feature volume ``f_s`` is computed once per source frame (``Source``); frames are rendered in batches
of B: ``WarpingNetwork(f_s, x_s, x_d)`` then ``SPADEDecoder``, both under autocast in the chosen precision (the
official PyTorch path uses fp16 autocast on CUDA; fp32 reproduces the golden data; bf16 is the fast CPU setting),
everything staying on the device until the caller asks for numpy. Sampling grids, the dense-motion mask softmax and
its large-kernel convolutions stay float32 under autocast (see :mod:`ditto_core.models.dense_motion`).

Options (:class:`RendererConfig`): the dense-motion head's 7x7(x7) convolutions through FFT ("auto": on the CPU,
where it is about 20x fewer multiply-adds than the 140 GFLOP conv3d), the warp's 5-D ops native or as 4-D
formulations ("auto": as a one-time probe of the device type finds them; Apple MPS before PyTorch 2.9 has no 5-D
``grid_sample`` nor ``avg_pool3d``), channels-last decoder, ``torch.compile`` and, on CUDA, graph capture per batch
shape.

**Who owns a renderer.** A :class:`Renderer` holds per-use state (CUDA graphs, compiled modules, a TensorRT execution
context, which is not thread-safe), so whoever renders owns one: a node run, a streaming session, a server worker.
:func:`make_renderer` builds one for a backend from the shared networks, which it never changes (a channels-last
decoder is a converted copy). Backends: "pytorch" (:class:`Renderer`) and whatever registered itself with
:func:`register_backend`; the optional TensorRT backend (:mod:`ditto_core.render.tensorrt`) registers itself when its
module is imported, which :func:`make_renderer` does by name on first request (so this module never imports it).
"""

from __future__ import annotations

import copy
import importlib
import functools
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.blocks import GRID_SAMPLE_MODES, volume_ops
from ..models.dense_motion import LARGE_KERNEL_MODES
from .._util import CancelFn, check_cancel
from ..devices import autocast_available, fp32_exact

__all__ = [
    "BACKENDS",
    "GRID_SAMPLE_MODES",
    "LARGE_KERNEL_MODES",
    "PRECISIONS",
    "BackendUnavailable",
    "CudaGraphCall",
    "Renderer",
    "RendererConfig",
    "RendererFactory",
    "SPEED_OPTIONS",
    "autocast_context",
    "make_renderer",
    "register_backend",
]

log = logging.getLogger("ditto")

#: renderer precisions: the autocast of warp and decoder (and of the source extractors)
PRECISIONS = ("fp32", "fp16", "bf16")
#: the built-in renderer backends
BACKENDS = ("pytorch", "tensorrt")
#: the PyTorch renderer's GPU speed options (:class:`RendererConfig` bools, off by default, safe on every device) and
#: what each does: the one list the library, the command line, the batch runner and the reports take them from
SPEED_OPTIONS: dict[str, str] = {
    "cuda_graphs": "CUDA only (ignored with a warning elsewhere): capture warp + decode once per batch size and "
                   "replay it",
    "compile": "torch.compile the warp and decoder on first use (minutes to compile)",
    "channels_last": "the decoder in channels-last memory format",
}
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_context(device: torch.device | str, precision: str, cache_enabled: bool = True):
    """Autocast for ``precision`` on ``device``. fp32: no autocast, and no TF32 on CUDA (fp32 means fp32,
    :func:`~ditto_core.devices.fp32_exact`). fp16/bf16 where this PyTorch has no autocast for the device (MPS before
    PyTorch 2.5): fp32, with one warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(device)
    if precision == "fp32":
        return fp32_exact(dev)
    if not autocast_available(dev.type):
        _warn_no_autocast(dev.type, precision)
        return nullcontext()
    return torch.autocast(device_type=dev.type, dtype=_AUTOCAST[precision], cache_enabled=cache_enabled)


@functools.cache
def _warn_no_autocast(device_type: str, precision: str) -> None:
    log.warning("ditto: this PyTorch (%s) has no autocast on %s: %s runs as fp32 (MPS autocast needs PyTorch 2.5)",
                torch.__version__, device_type, precision)


@dataclass
class RendererConfig:
    """Renderer settings.

    ``precision``: fp32 | fp16 | bf16, the autocast of warp and decoder (fp16 is the official CUDA setting).
    ``batch_size``: frames per warp/decode call. ``large_kernel``: the dense-motion head's 7x7(x7) convolutions,
    "auto" (FFT on the CPU, direct elsewhere) | "direct" | "fft". ``grid_sample``: the warp's 5-D ops (its two
    trilinear grid samples, the hourglass's ``avg_pool3d`` and 3-D nearest upsampling), "native" | "decomposed"
    (4-D formulations: one 4-D ``grid_sample`` over the tiled depth slices, ``avg_pool2d``, 2-D nearest) | "auto"
    (each op native where a one-time probe of the device type found its 5-D kernel, else decomposed; logged once
    per device type). ``channels_last``: run the decoder in
    channels-last memory format (no gain measured on the CPU; meant for CUDA). ``compile``: ``torch.compile`` the
    warp and the decoder on first use (on this 2-core CPU: about 5 minutes to compile for a 3% gain, so off by
    default). ``cuda_graphs``: CUDA only, capture warp + decode once per batch shape and replay it (static shapes;
    the last, shorter batch gets its own graph; keep the Renderer to reuse its graphs).
    """

    precision: str = "fp32"
    batch_size: int = 4
    large_kernel: str = "auto"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    grid_sample: str = "auto"

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.large_kernel not in LARGE_KERNEL_MODES:
            raise ValueError(f"large_kernel must be one of {LARGE_KERNEL_MODES}, got {self.large_kernel!r}")
        if not isinstance(self.grid_sample, str) or self.grid_sample not in GRID_SAMPLE_MODES:
            raise ValueError(f"grid_sample must be one of {GRID_SAMPLE_MODES}, got {self.grid_sample!r}")
        for name in SPEED_OPTIONS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")  # noqa: TRY004


class CudaGraphCall:
    """One CUDA graph of ``fn(*args)`` for fixed input shapes: inputs are copied into static buffers and the graph
    replayed; the output is cloned out of the graph's memory. ``warmup`` calls run on a side stream first. The
    capture is thread-local (``capture_error_mode="thread_local"``): another thread of the process may use the GPU
    meanwhile, as a streaming session's motion thread does while its render thread captures."""

    def __init__(self, fn: Callable[..., torch.Tensor], args: tuple[torch.Tensor, ...], warmup: int = 2):
        device = args[0].device
        self.device = device
        self.static = tuple(a.clone() for a in args)
        # on the inputs' device (cuda:1 while the current device is 0): torch.cuda.graph captures on the current
        # device's stream, which would record nothing of this device's work
        with torch.cuda.device(device):
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(warmup):
                    fn(*self.static)
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.out = fn(*self.static)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(self.device):
            for buf, a in zip(self.static, args):
                buf.copy_(a)
            self.graph.replay()
            return self.out.clone()


class Renderer:
    """Warp + decode on one device.

    ``render(f_s, x_s, x_d)``: ``f_s`` ``(1 or B, 32, 16, 64, 64)``, ``x_s`` ``(1 or B, 21, 3)``,
    ``x_d`` ``(B, 21, 3)`` -> ``(B, 512, 512, 3)`` float32 in ``[0, 255]`` on the device (``clip(0, 1) * 255``,
    not rounded, as the official decoder wrapper returns it; a channels-first tensor seen through a permute, so
    ``.permute(0, 3, 1, 2)`` gives ``(B, 3, 512, 512)`` without a copy).
    """

    def __init__(self, warp: nn.Module, decoder: nn.Module, device: torch.device | str = "cpu",
                 config: RendererConfig | None = None):
        self.warp = warp
        self.decoder = decoder
        self.device = torch.device(device)
        self.config = config or RendererConfig()
        self.config.validate()
        if self.config.cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device, got {self.device}")
        self._decoder_cl: nn.Module | None = None
        self._compiled: dict[str, Any] = {}
        self._graphs: dict[tuple, CudaGraphCall] = {}
        self._prepared = False

    def _prepare(self) -> None:
        """First-use setup: memory format (on a copy of the decoder: the shared one is never changed), compiled
        modules."""
        if self._prepared:
            return
        if self.config.grid_sample == "auto":
            volume_ops("auto", self.device)  # the one-time probe (and its log line) outside any compiled graph
        else:
            log.debug("renderer on %s: warp 3-D ops %s (RendererConfig.grid_sample)", self.device,
                      volume_ops(self.config.grid_sample, self.device))
        decoder = self.decoder
        if self.config.channels_last and decoder is not None:
            decoder = self._decoder_cl = copy.deepcopy(decoder).to(memory_format=torch.channels_last)
        if self.config.compile:
            self._compiled["warp"] = torch.compile(self.warp, dynamic=False)
            if decoder is not None:
                self._compiled["decoder"] = torch.compile(decoder, dynamic=False)
        self._prepared = True

    def _images(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
                cancel: CancelFn | None = None) -> torch.Tensor:
        """Warp + decode of device tensors -> ``(B, 3, 512, 512)`` float32 in (0, 1) (the decoder's sigmoid);
        ``cancel()`` runs between the two (it raises to stop)."""
        b = x_d.shape[0]
        if f_s.shape[0] != b:
            f_s = f_s.expand(b, *f_s.shape[1:])
        if x_s.shape[0] != b:
            x_s = x_s.expand(b, *x_s.shape[1:])
        warp = self._compiled.get("warp", self.warp)
        decoder = self._compiled.get("decoder", self._decoder_cl if self._decoder_cl is not None else self.decoder)
        with autocast_context(self.device, self.config.precision, cache_enabled=not self.config.cuda_graphs):
            # "auto" is the warp's own default: leave it out (any warp callable works)
            kw = {} if self.config.large_kernel == "auto" else {"large_kernel": self.config.large_kernel}
            if self.config.grid_sample != "auto":
                kw["grid_sample"] = self.config.grid_sample
            feat = warp(f_s, x_s, x_d, **kw)
            check_cancel(cancel)
            if self.config.channels_last:
                feat = feat.contiguous(memory_format=torch.channels_last)
            img = decoder(feat)
        return img.float()

    @torch.inference_mode()
    def render_images(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
                      cancel: CancelFn | None = None) -> torch.Tensor:
        """``(B, 3, 512, 512)`` float32 decoder output in (0, 1) on the device (shapes as :meth:`render`);
        ``cancel()`` runs between warp and decode (not inside a captured CUDA graph, which runs as one call)."""
        self._prepare()
        b = x_d.shape[0]
        for name, t in (("f_s", f_s), ("x_s", x_s)):
            if t.shape[0] not in (1, b):
                raise ValueError(f"{name}: expected 1 or {b} entries (as x_d), got {t.shape[0]}")
        f_s = f_s.to(self.device, torch.float32)
        x_s = x_s.to(self.device, torch.float32)
        x_d = x_d.to(self.device, torch.float32)
        if not self.config.cuda_graphs:
            return self._images(f_s, x_s, x_d, cancel)
        key = (tuple(f_s.shape), tuple(x_s.shape), tuple(x_d.shape))
        if key not in self._graphs:
            self._graphs[key] = CudaGraphCall(self._images, (f_s, x_s, x_d))
        return self._graphs[key](f_s, x_s, x_d)

    @torch.inference_mode()
    def render(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
               cancel: CancelFn | None = None) -> torch.Tensor:
        return self.render_images(f_s, x_s, x_d, cancel).permute(0, 2, 3, 1).clamp(0, 1) * 255


# ------------------------------------------------------------------------------------------------ backends
class BackendUnavailable(RuntimeError):
    """A renderer backend cannot run here (the message says why); :func:`make_renderer` falls back to PyTorch."""


#: ``factory(warp, decoder, device, config, cache_dir) -> Renderer``; raises :class:`BackendUnavailable`
RendererFactory = Callable[[nn.Module, nn.Module, torch.device, RendererConfig, "Path | None"], Renderer]
_FACTORIES: dict[str, RendererFactory] = {}
#: built-in backends that register themselves when their module is imported
_PLUGINS = {"tensorrt": "ditto_core.render.tensorrt"}


def register_backend(name: str, factory: RendererFactory) -> None:
    """Make ``make_renderer(name, ...)`` call ``factory`` (a backend module calls this when imported)."""
    _FACTORIES[str(name)] = factory


def _pytorch(warp: nn.Module, decoder: nn.Module, device: torch.device, config: RendererConfig,
             cache_dir: Path | None) -> Renderer:
    return Renderer(warp, decoder, device, config)


register_backend("pytorch", _pytorch)


def make_renderer(
    backend: str,
    warp: nn.Module,
    decoder: nn.Module,
    device: torch.device | str = "cpu",
    config: RendererConfig | None = None,
    cache_dir: str | Path | None = None,
) -> Renderer:
    """A new renderer of ``backend`` over the (shared, never modified) ``warp`` and ``decoder`` networks.

    ``config``: precision, frames per call and options (:class:`RendererConfig`); ``cache_dir``: a folder where a
    backend keeps what it builds, in a subfolder of its own (TensorRT: ``<cache_dir>/trt_engines``). A backend that cannot run here logs ONE warning "<backend> renderer
    unavailable: <reason>; using the PyTorch renderer" and the PyTorch renderer is returned. The caller owns the
    result: keep it for as long as you render (it holds graphs, compiled modules or engines), never share it
    between threads.
    """
    if backend not in BACKENDS and backend not in _FACTORIES:
        raise ValueError(f"backend: expected one of {sorted(set(BACKENDS) | set(_FACTORIES))}, got {backend!r}")
    cfg = config or RendererConfig()
    cfg.validate()
    dev = torch.device(device)
    if backend not in _FACTORIES and backend in _PLUGINS:
        importlib.import_module(_PLUGINS[backend])
    try:
        return _FACTORIES[backend](warp, decoder, dev, cfg, None if cache_dir is None else Path(cache_dir))
    except BackendUnavailable as e:
        log.warning("%s renderer unavailable: %s; using the PyTorch renderer", "TensorRT" if backend == "tensorrt"
                    else backend, e)
    return Renderer(warp, decoder, dev, cfg)
