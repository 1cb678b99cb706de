"""Renderer micro-benchmark: ms per frame of warp + decode + paste-back, official-like loop vs ours.

    python benchmarks/render_speed.py                      # CPU, batch sizes 1 2 4, a 1432x1432 frame
    python benchmarks/render_speed.py --device cuda --precisions fp32 fp16 bf16

Rows:
  * ``official-like fp32``: one frame at a time as the official PyTorch path does it: the networks' official
    formulation (written out below from the same weights: direct 7x7x7 conv3d, (K+1)-fold repeated feature volume,
    a nearest-resized segmentation map and separate gamma/beta convs in every SPADE), decoder output to numpy, then
    ``cv2.warpAffine`` paste-back into the frame.
  * ``ours <precision> b<B>``: :class:`ditto_core.render.Renderer` on B frames at once, then the device paste-back
    of :class:`ditto_core.render.Compositor` (one transfer per batch), as ``render_frames`` and the streaming
    session do.

Weights come from the golden weight rule (speed does not depend on their values). Each row renders ``--frames``
frames per repeat after one warm-up batch; the table shows the median over ``--repeats`` and the speedup over the
official-like row. Before timing, one frame of each precision is compared with the official-like fp32 frame
(relative L2 of the decoder output). The load average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ditto_core.face.paste import paste_back, paste_mask
from ditto_core.models.blocks import kp2gaussian
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.warping import WarpingNetwork
from ditto_core.render import PRECISIONS, Compositor, Renderer, RendererConfig
from ditto_core.testing.weight_rule import apply_weight_rule

# ------------------------------------------------------------------------ the official formulation (fp32)


def _spade_official(spade, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    normalized = F.instance_norm(x, eps=1e-5)
    seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
    actv = spade.mlp_shared(seg)
    return normalized * (1 + spade.mlp_gamma(actv)) + spade.mlp_beta(actv)


def _block_official(block, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    x_s = block.conv_s(_spade_official(block.norm_s, x, seg)) if block.learned_shortcut else x
    dx = block.conv_0(F.leaky_relu(_spade_official(block.norm_0, x, seg), 0.2))
    dx = block.conv_1(F.leaky_relu(_spade_official(block.norm_1, dx, seg), 0.2))
    return x_s + dx


def decoder_official(dec: SPADEDecoder, feature: torch.Tensor) -> torch.Tensor:
    seg = feature
    x = dec.fc(feature)
    for i in range(6):
        x = _block_official(getattr(dec, f"G_middle_{i}"), x, seg)
    x = _block_official(dec.up_0, F.interpolate(x, scale_factor=2), seg)
    x = _block_official(dec.up_1, F.interpolate(x, scale_factor=2), seg)
    return torch.sigmoid(dec.conv_img(F.leaky_relu(x, 0.2)))


def warp_official(warp: WarpingNetwork, f_s: torch.Tensor, kp_s: torch.Tensor, kp_d: torch.Tensor) -> torch.Tensor:
    dm = warp.dense_motion_network
    bs, _, d, h, w = f_s.shape
    k1 = dm.config.num_kp + 1
    feature = F.relu(dm.norm(dm.compress(f_s)))
    c = feature.shape[1]
    sparse = dm.sparse_motions((d, h, w), kp_s, kp_d)
    repeated = feature.unsqueeze(1).repeat(1, k1, 1, 1, 1, 1).view(bs * k1, c, d, h, w)
    deformed = F.grid_sample(repeated, sparse.view(bs * k1, d, h, w, 3), align_corners=False).view(bs, k1, c, d, h, w)
    heat = kp2gaussian(kp_d, (d, h, w), dm.config.kp_variance) - kp2gaussian(kp_s, (d, h, w), dm.config.kp_variance)
    heat = torch.cat([heat.new_zeros(bs, 1, d, h, w), heat], dim=1).unsqueeze(2)
    prediction = dm.hourglass(torch.cat([heat, deformed], dim=2).view(bs, -1, d, h, w))
    mask = F.softmax(dm.mask(prediction), dim=1)
    deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)
    occlusion = torch.sigmoid(dm.occlusion(prediction.reshape(bs, -1, h, w)))
    out = F.grid_sample(f_s, deformation, align_corners=False)
    out = warp.fourth(warp.third(out.view(bs, -1, h, w)))
    return out * occlusion


# ------------------------------------------------------------------------------------------------ timing


def _frame_and_matrix(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size, 3) frame and a crop-to-frame matrix placing a 512 crop at about half the frame's width."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    s = 0.55 * size / 512
    a = 0.05
    m = np.array([[s * np.cos(a), -s * np.sin(a), 0.22 * size], [s * np.sin(a), s * np.cos(a), 0.2 * size], [0, 0, 1]])
    return frame, m.astype(np.float32)


def _inputs(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    f_s = torch.randn(1, 32, 16, 64, 64, generator=g)
    x_s = 0.3 * torch.randn(1, 21, 3, generator=g)
    x_d = x_s + 0.05 * torch.randn(n, 21, 3, generator=g)
    return f_s.to(device), x_s.to(device), x_d.to(device)


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| over the whole tensors, in float32."""
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_official(warp, dec, device, frame, m, n, repeats) -> list[float]:
    f_s, x_s, x_d = _inputs(n, device)
    mask = paste_mask(512, 512)

    @torch.inference_mode()
    def one(i: int) -> np.ndarray:
        out = warp_official(warp, f_s, x_s, x_d[i : i + 1])
        img = decoder_official(dec, out)
        render = (img.permute(0, 2, 3, 1).clamp(0, 1) * 255)[0].cpu().numpy()
        return paste_back(frame, render, m, mask)

    one(0)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        for i in range(n):
            one(i)
        _sync(device)
        times.append((time.perf_counter() - t) * 1000 / n)
    return times


def time_ours(renderer: Renderer, device, frame, m, n, repeats) -> list[float]:
    f_s, x_s, x_d = _inputs(n, device)
    compositor = Compositor(frame[None], m[None], "full", device)
    bs = renderer.config.batch_size

    def run(x: torch.Tensor) -> None:
        for s in range(0, x.shape[0], bs):
            renders = renderer.render(f_s, x_s, x[s : s + bs])
            compositor.compose(renders, [0] * renders.shape[0])

    run(x_d[:bs])
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        run(x_d)
        _sync(device)
        times.append((time.perf_counter() - t) * 1000 / n)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--frames", type=int, default=4, help="frames per repeat (default 4)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--frame-size", type=int, default=1432, help="the paste-back frame (default 1432, the sample)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-official", action="store_true", help="skip the official-like row")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    warp = apply_weight_rule(WarpingNetwork(), "bench").eval().to(device)
    dec = apply_weight_rule(SPADEDecoder(), "bench").eval().to(device)
    frame, m = _frame_and_matrix(args.frame_size)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, frame {args.frame_size}^2, "
          f"{args.frames} frames x {args.repeats} repeats; load average {os.getloadavg()[0]:.2f}", flush=True)

    # sanity: the official formulation and ours agree in fp32
    f_s, x_s, x_d = _inputs(1, device)
    with torch.inference_mode():
        ref = decoder_official(dec, warp_official(warp, f_s, x_s, x_d))
        ours = Renderer(warp, dec, device, RendererConfig("fp32", 1)).render_images(f_s, x_s, x_d)
    print(f"check: ours fp32 vs official-like fp32, relative L2 {_rel_l2(ours, ref):.1e}", flush=True)
    for prec in (p for p in args.precisions if p != "fp32"):
        with torch.inference_mode():
            low = Renderer(warp, dec, device, RendererConfig(prec, 1)).render_images(f_s, x_s, x_d)
        print(f"check: ours {prec} vs official-like fp32, relative L2 {_rel_l2(low, ref):.1e} (target <= 1e-2)",
              flush=True)

    rows: list[tuple[str, float]] = []
    base = None
    if not args.no_official:
        t = statistics.median(time_official(warp, dec, device, frame, m, args.frames, args.repeats))
        rows.append(("official-like fp32 b1", t))
        base = t
        print(f"  {rows[-1][0]:<24} {t:9.0f} ms/frame", flush=True)
    for prec in args.precisions:
        for bs in args.batch_sizes:
            r = Renderer(warp, dec, device, RendererConfig(prec, bs))
            t = statistics.median(time_ours(r, device, frame, m, args.frames, args.repeats))
            rows.append((f"ours {prec} b{bs}", t))
            print(f"  {rows[-1][0]:<24} {t:9.0f} ms/frame", flush=True)
    print()
    print(f"{'renderer':<24} {'ms/frame':>9} {'frames/s':>9} {'speedup':>8}")
    for name, t in rows:
        speed = f"{base / t:7.2f}x" if base else "      -"
        print(f"{name:<24} {t:9.0f} {1000 / t:9.2f} {speed}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
