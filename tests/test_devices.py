"""Device rules that need no GPU or Mac to check: no float64 on device tensors (Apple MPS has none), device names.

The device-side stages run here on the CPU under a dispatch mode that records every float64 tensor an op makes
outside a :func:`ditto_core.devices.host_float64` block (the project's marked host maths, always on CPU tensors):
what would crash on MPS shows up as a recorded op.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from conftest import face_image
from ditto_core.devices import host_float64, in_host_float64, resolve_device


class DeviceFloat64(TorchDispatchMode):
    """Records ops that make a float64 tensor outside a host_float64 block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not in_host_float64() and any(isinstance(t, torch.Tensor) and t.dtype == torch.float64
                                         for t in tree_leaves(out)):
            self.ops.append(str(func))
        return out


def test_the_mode_catches_device_float64_and_allows_host_blocks():
    x = torch.ones(3)
    with DeviceFloat64() as mode:
        _ = x.double() * 2
        with host_float64():
            _ = torch.arange(3, dtype=torch.float64) + 1
    assert mode.ops == ["aten._to_copy.default", "aten.mul.Tensor"]


@pytest.mark.slow
def test_device_stages_make_no_float64_tensors(synthetic_models):
    """Source registration, audio-conditioned DiT sampling (windows, smoothing), keypoints with every control
    (gaze fix, fades, pose offsets, amplitudes, blinks), warp + decode, the batched paste-back and the preview:
    no float64 tensor outside the marked host maths."""
    from ditto_core.motion import ClipControls
    from ditto_core.runtime import (
        AudioFeatures,
        SamplingOptions,
        extract_source,
        preview_motion,
        render_frames,
        sample_motion,
    )

    n = 6
    feats = AudioFeatures(features=torch.randn(n, 1024, generator=torch.Generator().manual_seed(0)),
                          vad=torch.full((n,), 0.1))
    clip = ClipControls(mouth=1.3, head=0.7, yaw=5.0, blink_interval=2, fade_in=2, fade_out=2)
    with DeviceFloat64() as mode:
        source = extract_source(synthetic_models, face_image())
        motion = sample_motion(synthetic_models, source, feats, SamplingOptions(steps=2, emotion="Happy:0.5,Sad:0.5"))
        # one frame (the last: faded out), warp + decode + paste-back; every frame's keypoints are planned anyway
        frames = list(render_frames(synthetic_models, source, motion, "full", clip=clip, frame_indices=[5]))
        previews = preview_motion(synthetic_models, source, motion, every=3, clip=clip)
    assert mode.ops == [], f"float64 made on the device by {sorted(set(mode.ops))}"
    assert frames[0][0].shape[0] == 1 and previews.shape[0] == 2


def test_unsupported_device_types_are_named():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device 'xpu': the xpu device is not supported"):
        resolve_device("xpu")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_device("gpu0")


# --------------------------------------------------------------------------------------------- providers
def test_provider_reasons_say_what_to_install(monkeypatch, caplog):
    import logging

    from ditto_core import onnx_utils
    from ditto_core.devices import ort_device

    installed = {"onnxruntime"}
    monkeypatch.setattr(onnx_utils, "_installed", lambda dist: dist in installed)
    assert "the CPU build" in onnx_utils.missing_provider_reason("CUDAExecutionProvider")
    installed.add("onnxruntime-gpu")
    assert "onnxruntime-gpu is installed next to onnxruntime" in onnx_utils.missing_provider_reason(
        "CUDAExecutionProvider")
    assert "macOS" in onnx_utils.missing_provider_reason("CoreMLExecutionProvider")
    assert ort_device(torch.device("mps")) == "coreml" and ort_device(torch.device("cuda", 1)) == "cuda:1"
    assert ort_device(torch.device("cpu")) == "cpu"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():  # this machine: the CPU build
        with caplog.at_level(logging.WARNING):
            assert onnx_utils.providers_for_device("cuda:1") == ["CPUExecutionProvider"]
        assert "CUDAExecutionProvider (onnxruntime-gpu is installed next to onnxruntime" in caplog.text


def test_loaded_models_report_their_providers(synthetic_models, monkeypatch):
    import dataclasses

    from ditto_core import onnx_utils

    providers = synthetic_models.aux_providers()
    assert set(providers) == {"hubert", "face_detector", "landmark106", "landmark203", "blaze_face", "face_mesh"}
    assert all(p == ["CPUExecutionProvider"] for p in providers.values())
    assert synthetic_models.provider_report() == "aux ONNX models on CPUExecutionProvider (onnxruntime)"
    assert synthetic_models.device_report() == ("networks on cpu (fp32); renderer pytorch; warp 3-D ops native; aux "
                                                "ONNX models on CPUExecutionProvider (onnxruntime)")
    from ditto_core.models import blocks

    monkeypatch.setattr(blocks, "probe_volume_ops", lambda t: blocks.VolumeOpsSupport(t, grid_sample="missing"))
    fast = dataclasses.replace(synthetic_models, render=dataclasses.replace(synthetic_models.render, compile=True))
    assert fast.device_report().startswith("networks on cpu (fp32); renderer pytorch + compile; warp 3-D ops "
                                           "grid_sample decomposed, avg_pool3d native, upsample_nearest3d native; ")
    trt = dataclasses.replace(synthetic_models, backend="tensorrt")
    assert trt.device_report().startswith("networks on cpu (fp32); renderer pytorch (tensorrt unavailable: the models "
                                          "run on cpu, TensorRT needs a CUDA device); ")
    monkeypatch.setattr(onnx_utils, "_installed", lambda dist: dist == "onnxruntime")
    on_cuda = dataclasses.replace(synthetic_models, device=torch.device("cuda", 0))  # as loaded for CUDA, on a CPU ort
    assert on_cuda.provider_report().endswith(
        "CUDAExecutionProvider unavailable: the installed onnxruntime is the CPU build: 'pip uninstall -y onnxruntime' "
        "then 'pip install onnxruntime-gpu'")


# ------------------------------------------------------------------------------------------ CUDA streams
def test_worker_streams_hand_tensors_over_with_events(monkeypatch):
    """The stream plumbing of a streaming session's two threads, against recording stand-ins of torch.cuda (this
    machine has no GPU): each worker gets its own stream on the model's device that first waits for the device's
    current stream; the motion thread records an event after its keypoints; the render thread's stream waits for
    it and marks the tensors as used by it. Off CUDA all of it is a no-op."""
    from contextlib import nullcontext

    from ditto_core import devices

    calls: list[tuple] = []

    class Stream:
        def __init__(self, device=None, name="worker"):
            self.name = name
            calls.append(("new stream", str(device)))

        def wait_stream(self, other):
            calls.append(("wait_stream", self.name, other.name))

        def wait_event(self, event):
            calls.append(("wait_event", self.name, event.name))

    class Event:
        def __init__(self):
            self.name = "ready"

        def record(self, stream):
            calls.append(("record", stream.name))

    class Tensor:
        is_cuda = True

        def record_stream(self, stream):
            calls.append(("record_stream", stream.name))

    current = Stream("cuda:1", "current")
    calls.clear()
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: nullcontext())
    dev = torch.device("cuda", 1)
    with devices.worker_stream(dev) as s:
        assert isinstance(s, Stream)
    event = devices.stream_ready(dev)
    devices.wait_ready(dev, event, (Tensor(), Tensor()))
    assert calls == [("new stream", "cuda:1"), ("wait_stream", "worker", "current"), ("record", "current"),
                     ("wait_event", "current", "ready"), ("record_stream", "current"), ("record_stream", "current")]
    calls.clear()
    cpu = torch.device("cpu")
    with devices.worker_stream(cpu) as s:
        assert s is None
    assert devices.stream_ready(cpu) is None
    devices.wait_ready(cpu, None, (Tensor(),))
    assert calls == []


# ------------------------------------------------------------------------------------------ precision
def test_fp32_means_fp32_on_cuda_and_autocast_is_guarded(monkeypatch, caplog):
    """fp32 on CUDA turns TF32 off for the block and restores it (the flags exist on a CPU build too); a device
    whose autocast this PyTorch lacks (MPS before 2.5) runs fp16/bf16 as fp32 with a warning instead of raising,
    and the networks' autocast-off blocks become no-ops there."""
    import logging
    from contextlib import nullcontext

    from ditto_core import devices
    from ditto_core.render import renderer

    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, True
    try:
        with renderer.autocast_context(torch.device("cuda", 1), "fp32"):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    with renderer.autocast_context("cpu", "fp32"):
        assert torch.backends.cudnn.allow_tf32  # nothing changes off CUDA
    assert devices.autocast_available("cpu")
    monkeypatch.setattr(devices, "autocast_available", lambda t: t != "mps")
    monkeypatch.setattr(renderer, "autocast_available", lambda t: t != "mps")
    with caplog.at_level(logging.WARNING):
        ctx = renderer.autocast_context("mps", "fp16")
    assert isinstance(ctx, nullcontext) and "has no autocast on mps: fp16 runs as fp32" in caplog.text
    assert isinstance(devices.autocast_off("mps"), nullcontext)
    assert isinstance(devices.autocast_off("cpu"), torch.autocast)
