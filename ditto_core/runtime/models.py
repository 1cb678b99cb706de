"""The loaded networks: :class:`DittoModels` holds every network of one models folder on one device, the release's
settings and the file paths, and nothing else (no renderer, no per-use state), so any number of offline jobs,
streaming sessions or server workers can share one. Whoever renders builds its own renderer
(:meth:`DittoModels.new_renderer`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .. import layout, official
from ..audio import HubertFeatureExtractor
from ..audio2motion import Audio2MotionConfig
from ..checkpoints import load_model
from ..conditions import Emotion
from ..config import DittoDefaults, load_config
from ..devices import DEVICES, ort_device, resolve_device
from ..face import FaceModels
from ..hub import ensure_models
from ..render.renderer import (
    BACKENDS,
    PRECISIONS,
    Renderer,
    RendererConfig,
    make_renderer,
)
from .options import ReleaseDefaults, RenderOptions, SourceOptions

__all__ = ["DEVICES", "EYE_BACKENDS", "DittoModels", "release_defaults", "resolve_device"]

log = logging.getLogger("ditto")

#: the 478-point face mesh of the eye features: the release's ONNX pair, or mediapipe's task file
EYE_BACKENDS = ("onnx", "mediapipe")


def release_defaults(d: DittoDefaults) -> ReleaseDefaults:
    """The release's settings in the product's names, from the config pickle's ``default_kwargs`` (or the official
    code defaults)."""
    kw = d.to_kwargs()
    online = (official.audio2motion_config(kw, online=True) if d.online_mode
              else Audio2MotionConfig.online(clip_range=d.v_min_max_for_clip))
    return ReleaseDefaults(
        source=SourceOptions(crop_scale=float(d.crop_scale), vy_ratio=float(d.crop_vy_ratio), smoothing=int(d.smo_k_s),
                             max_size=int(d.max_size), max_frames=int(d.template_n_frames)),
        emotion=Emotion.parse(d.emo),
        offline=official.audio2motion_config(kw, online=False),
        online=online,
        eye_f0_mode=bool(d.eye_f0_mode),
        stitch=official.stitch_config(kw),
        overall=official.frame_controls([{}], 1, overall=d.overall_ctrl_info),
    )


@dataclass
class DittoModels:
    """Every network of the method, loaded once on one device; shared, never changed by its users.

    Attributes:
        models_dir: the models folder (engines a renderer backend builds are cached under it).
        device: where the networks run.
        precision: fp32 | fp16 | bf16, the autocast of the source extractors and the default of renderers; the DiT,
            the stitching MLP and the aux ONNX models always run in fp32 (as the official PyTorch path).
        appearance, motion_extractor, warp, decoder, stitch, lmdm: the six networks (eval mode).
        hubert: the audio encoder; face: the aux face models.
        release: the release's settings (the config pickle's, when the folder has one).
        files: the file of each role.
        backend: the renderer backend :meth:`new_renderer` uses by default ("pytorch" or "tensorrt").
        render: the default :class:`~ditto_core.runtime.RenderOptions` of :meth:`new_renderer`'s renderers: their
            GPU speed options (CUDA graphs, ``torch.compile``, channels-last; all off by default, safe on every
            device); batch size and backend are given per call.
    """

    models_dir: Path
    device: torch.device
    precision: str
    appearance: nn.Module
    motion_extractor: nn.Module
    warp: nn.Module
    decoder: nn.Module
    stitch: nn.Module
    lmdm: nn.Module
    hubert: HubertFeatureExtractor
    face: FaceModels
    release: ReleaseDefaults = field(default_factory=ReleaseDefaults)
    files: dict[str, Path] = field(default_factory=dict)
    backend: str = "pytorch"
    render: RenderOptions = field(default_factory=RenderOptions)

    @classmethod
    def load(
        cls,
        models_dir: str | Path,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        download: bool = True,
        progress: bool = True,
        eye_backend: str = "onnx",
        backend: str = "pytorch",
        render: RenderOptions | None = None,
    ) -> DittoModels:
        """Find (and, when ``download``, fetch the missing) official files under ``models_dir`` and load them.

        ``eye_backend``: the 478-point face mesh of the eye features: "onnx" (``blaze_face.onnx`` +
        ``face_mesh.onnx`` through onnxruntime, the default) or "mediapipe" (``face_landmarker.task`` through the
        mediapipe package, which must be installed). ``backend``: the default renderer backend, "pytorch" or
        "tensorrt" (see :func:`ditto_core.render.make_renderer`). ``render``: the renderers' default options, for
        their GPU speed options (CUDA graphs are skipped with a warning on a device that is not CUDA).

        Raises :class:`ditto_core.hub.MissingModelsError` (which files, where to put them),
        :class:`ditto_core.checkpoints.CheckpointError` (a wrong, truncated or corrupt file) or
        :class:`ditto_core.config.ConfigError` (a config pickle holding anything but plain data).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if eye_backend not in EYE_BACKENDS:
            raise ValueError(f"eye_backend must be one of {EYE_BACKENDS}, got {eye_backend!r}")
        root = Path(models_dir)
        dev = resolve_device(device)
        roles = layout.NETWORK_ROLES + layout.AUX_ROLES + layout.CONFIG_ROLES
        if eye_backend == "mediapipe":
            roles = tuple(r for r in roles if r not in ("blaze_face", "face_mesh")) + ("face_landmarker_task",)
        files = ensure_models(root, roles, download=download, progress=progress)
        cfg_path = files["config"]  # the pickle-free copy when there is one (find_model_file prefers it)
        if (root / layout.SYNTHETIC_MARKER).exists():
            log.warning(
                "ditto: %s is a SYNTHETIC model kit (%s): random weights, the output is noise. "
                "Use the official checkpoints for real results.", root, layout.SYNTHETIC_MARKER,
            )
        # the small files first (config, ONNX models): a bad one is reported before the networks take their time
        defaults = DittoDefaults.from_config(load_config(cfg_path))
        ort = ort_device(dev)
        hubert = HubertFeatureExtractor(files["hubert"], device=ort)
        face = FaceModels.from_paths(
            detector=files["face_detector"],
            landmark106=files["landmark106"],
            landmark203=files["landmark203"],
            blaze_face=files.get("blaze_face"),
            face_mesh=files.get("face_mesh"),
            face_landmarker_task=files.get("face_landmarker_task"),
            device=ort,
        )
        nets = {role: load_model(role, files[role], device=dev) for role in layout.NETWORK_ROLES}
        models = cls(
            models_dir=root,
            device=dev,
            precision=precision,
            appearance=nets["appearance_extractor"],
            motion_extractor=nets["motion_extractor"],
            warp=nets["warp_network"],
            decoder=nets["decoder"],
            stitch=nets["stitch_network"],
            lmdm=nets["lmdm"],
            hubert=hubert,
            face=face,
            release=release_defaults(defaults),
            files=files,
            backend=backend,
            render=(render or RenderOptions()).for_device(dev),
        )
        report = models.provider_report()
        (log.warning if "unavailable" in report else log.info)("ditto: %s", report)
        return models

    def aux_providers(self) -> dict[str, list[str]]:
        """The onnxruntime execution providers each auxiliary ONNX model's session actually uses (best first), by
        role: ``hubert``, ``face_detector``, ``landmark106``, ``landmark203``, ``blaze_face``, ``face_mesh`` (the
        mediapipe eye backend has no ONNX session)."""
        out: dict[str, list[str]] = {}
        face = self.face
        holders = {"hubert": self.hubert, "face_detector": getattr(face, "detector", None),
                   "landmark106": getattr(face, "lmk106", None), "landmark203": getattr(face, "lmk203", None),
                   "blaze_face": getattr(getattr(face, "lmk478", None), "blaze", None),
                   "face_mesh": getattr(getattr(face, "lmk478", None), "mesh", None)}
        for role, holder in holders.items():
            providers = getattr(getattr(holder, "model", None), "providers", None)
            if providers:
                out[role] = list(providers)
        return out

    def provider_report(self) -> str:
        """One line: where the auxiliary ONNX models run, and why not on the device when they fall back."""
        from ..onnx_utils import missing_provider_reason

        providers = self.aux_providers()
        firsts = sorted({p[0] for p in providers.values()})
        line = f"aux ONNX models on {', '.join(firsts) or 'no session'} (onnxruntime)"
        wanted = {"cuda": "CUDAExecutionProvider", "mps": "CoreMLExecutionProvider"}.get(self.device.type)
        if wanted and any(p[0] != wanted for p in providers.values()):
            line += f"; {wanted} unavailable: {missing_provider_reason(wanted)}"
        return line

    def device_report(self) -> str:
        """Where everything runs, one line (the Load Ditto Models node shows it after a run): the torch device and
        precision, the renderer backend with its speed options (TensorRT where it cannot run: the PyTorch renderer
        the models fall back to, and why), the warp's 3-D ops path ("native" or "decomposed" per op, from the
        device's probe), then :meth:`provider_report`."""
        from ..models.blocks import volume_ops

        options = [name.replace("_", " ") for name, on in self.render.speed_options().items() if on]
        ops = volume_ops("auto", self.device)
        paths = sorted({ops.grid_sample, ops.avg_pool3d, ops.upsample_nearest3d})
        warp = paths[0] if len(paths) == 1 else str(ops)
        backend = self.render.backend or self.backend
        if backend == "tensorrt":
            from ..render.tensorrt import tensorrt_available

            ok, why = tensorrt_available(self.device)
            backend = "tensorrt" if ok else f"pytorch (tensorrt unavailable: {why})"
        return (f"networks on {self.device} ({self.precision}); renderer {backend}"
                f"{' + ' + ', '.join(options) if options else ''}; warp 3-D ops {warp}; {self.provider_report()}")

    def new_renderer(self, batch_size: int = 4, backend: str | None = None, config: RendererConfig | None = None) -> Renderer:
        """A new renderer over these networks, owned by the caller (keep it while rendering; never share it between
        threads). ``backend``: default :attr:`backend`; ``config``: default :attr:`precision` and ``batch_size``."""
        if config is None:
            config = replace(self.render, batch_size=int(batch_size)).renderer_config(self.precision)
        cfg = config
        return make_renderer(backend or self.backend, self.warp, self.decoder, self.device, cfg, cache_dir=self.models_dir)

    def release_memory(self) -> None:
        """Drop the networks and free cached device memory (the object is unusable afterwards)."""
        for name in ("appearance", "motion_extractor", "warp", "decoder", "stitch", "lmdm", "hubert", "face"):
            setattr(self, name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
