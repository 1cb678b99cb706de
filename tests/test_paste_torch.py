"""Device paste-back (ditto_core.face.paste_torch) against the cv2 reference ``paste_back``."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_images_close

from ditto_core.face.paste import paste_back, paste_mask
from ditto_core.face.paste_torch import (
    FramePaster,
    compose_frames,
    paste_back_torch,
    paste_geometry,
    paste_region,
)


def _case(seed: int, h: int, w: int, tx: float, ty: float, scale: float = 1.3, angle: float = 0.4):
    """A random frame (h, w, 3) uint8, a float render in [0, 255] and a rotated, scaled crop-to-frame matrix."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    render = (rng.random((512, 512, 3)) * 255).astype(np.float32)
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    m = np.array([[c, -s, tx], [s, c, ty], [0, 0, 1]], dtype=np.float32)
    return frame, render, m


@pytest.mark.parametrize(
    "seed,h,w,tx,ty,scale,angle",
    [
        (0, 601, 533, 150.0, -120.0, 1.1, 0.3),  # hangs over the top border
        (1, 347, 911, -200.0, 40.0, 0.8, -0.5),  # over the left and bottom borders
        (2, 1001, 777, 90.5, 120.25, 1.37, 0.05),  # inside, sub-pixel offset
        (3, 455, 455, 300.0, 250.0, 0.61, 2.9),  # almost upside down, over the right/bottom corner
    ],
)
def test_device_paste_matches_cv2(seed, h, w, tx, ty, scale, angle):
    frame, render, m = _case(seed, h, w, tx, ty, scale, angle)
    ref = paste_back(frame, render, m)
    out = paste_back_torch(frame, render, m)
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert_images_close(out, ref, max_diff=1, frac=0.999, what="device paste")
    geom = paste_geometry(frame, m)
    y0, y1, x0, x1 = geom.box
    outside = np.ones((h, w), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside]), "pixels outside the paste box changed"
    assert np.array_equal(ref[outside], frame[outside]), "the box misses pixels cv2 changes"


def test_crop_outside_the_frame_leaves_it_unchanged():
    frame, render, m = _case(4, 300, 280, 2000.0, 50.0)
    geom = paste_geometry(frame, m)
    assert geom.empty and not geom.full_mask().any()
    assert np.array_equal(paste_back_torch(frame, render, m), frame)
    assert np.array_equal(paste_back(frame, render, m), frame)


def test_warped_mask_matches_cv2():
    frame, _, m = _case(5, 640, 480, 60.0, -30.0, 1.05, -0.2)
    mask = paste_mask(512, 512)
    ref = cv2.warpAffine(mask, m[:2].astype(np.float64), (480, 640), flags=cv2.INTER_LINEAR).clip(0, 1)
    got = paste_geometry(frame, m, mask).full_mask()
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-4


def test_batch_equals_single_and_custom_mask():
    frame, render, m = _case(6, 500, 520, 20.0, 10.0, 0.9, 0.1)
    rng = np.random.default_rng(7)
    mask = rng.random((512, 512)).astype(np.float32)
    renders = torch.stack([torch.from_numpy(render), torch.from_numpy(render[::-1].copy()), torch.zeros(512, 512, 3)])
    chw = renders.permute(0, 3, 1, 2)
    geom = paste_geometry(frame, m, mask)
    batch = paste_region(geom, chw)
    for i in range(3):
        assert torch.equal(batch[i], paste_region(geom, chw[i : i + 1])[0])
    ref = paste_back(frame, render, m, mask)
    y0, y1, x0, x1 = geom.box
    out = compose_frames(np.repeat(frame[None], 1, axis=0), [geom.box], [batch[0].numpy()])[0]
    assert_images_close(out, ref, max_diff=1, frac=0.999, what="custom mask")
    assert out[y0:y1, x0:x1].shape == tuple(batch.shape[1:])


def test_frame_paster_with_mixed_source_frames():
    """render_frames' batch paste: a video source's frames, two geometries in one batch, one transfer."""
    f0, r0, m0 = _case(8, 360, 330, 10.0, -40.0, 0.7, 0.2)
    f1, r1, m1 = _case(9, 360, 330, -60.0, 20.0, 0.75, -0.3)
    source = SimpleNamespace(frames=np.stack([f0, f1]), M_c2o=np.stack([m0, m1]))
    renders = torch.from_numpy(np.stack([r0, r1, r1[::-1], r0[:, ::-1]]).copy())
    src = [0, 1, 1, 0]
    paster = FramePaster(source.frames, source.M_c2o, cache_size=1)
    frames, masks = paster.paste(renders, src)
    assert frames.shape == (4, 360, 330, 3) and frames.dtype == np.uint8
    assert masks.shape == (4, 360, 330) and masks.dtype == np.float32
    for j, s in enumerate(src):
        ref = paste_back(source.frames[s], renders[j].numpy(), source.M_c2o[s])
        assert_images_close(frames[j], ref, max_diff=1, frac=0.999, what=f"frame {j}")
        ref_mask = cv2.warpAffine(paste_mask(512, 512), source.M_c2o[s][:2].astype(np.float64), (330, 360),
                                  flags=cv2.INTER_LINEAR).clip(0, 1)
        assert np.abs(masks[j] - ref_mask).max() < 1e-4
    assert np.array_equal(source.frames[0], f0), "the source frames must not be written"
    assert len(paster._cache) == 1  # the cache keeps its size
    with pytest.raises(ValueError, match="renders"):
        paster.paste(renders, [0, 1])
    with pytest.raises(ValueError, match="M_c2o"):
        FramePaster(source.frames, source.M_c2o[:1])


def test_bad_inputs():
    frame, render, m = _case(10, 200, 210, 0.0, 0.0)
    with pytest.raises(ValueError, match="frame"):
        paste_geometry(frame.astype(np.float32), m)
    with pytest.raises(ValueError, match="frame"):
        paste_geometry(frame[..., :2], m)
    with pytest.raises(ValueError, match="M_c2o"):
        paste_geometry(frame, m[:1])
    with pytest.raises(ValueError, match="mask"):
        paste_geometry(frame, m, np.ones((256, 256), np.float32))
    geom = paste_geometry(frame, m)
    with pytest.raises(ValueError, match="renders"):
        paste_region(geom, torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="render"):
        paste_back_torch(frame, render[..., :1], m)
