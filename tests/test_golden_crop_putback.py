"""Golden parity of the 512 face crop and the paste-back (``crop_putback``) against the official implementation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close_rel, assert_images_close
from ditto_core.face.crop import crop_image, crop_transform
from ditto_core.face.paste import paste_back

pytestmark = pytest.mark.golden


def test_crop_matches_official(golden):
    g = golden("crop_putback")
    frame = g["frame_u8"].numpy()
    lmk = g["lmk203"].numpy()
    crop, m_c2o = crop_image(frame, lmk, dsize=512, scale=2.3, vx_ratio=0.0, vy_ratio=-0.125, rotate=True)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    assert m_c2o.shape == (3, 3) and m_c2o.dtype == np.float32
    assert_close_rel(m_c2o, g["M_c2o"], 1e-5, "M_c2o")
    assert_images_close(crop, g["img_crop_u8"], 1, 0.999, "img_crop_u8")
    # crop_transform is the inverse of the returned M_c2o
    m_o2c = crop_transform(lmk, 512, 2.3, 0.0, -0.125, True)
    np.testing.assert_allclose(m_o2c.astype(np.float64) @ m_c2o.astype(np.float64), np.eye(3), atol=1e-4)


def test_paste_back_matches_official(golden):
    g = golden("crop_putback")
    out = paste_back(g["frame_u8"].numpy(), g["render_f32"].numpy(), g["M_c2o"].numpy())
    assert out.shape == tuple(g["frame_u8"].shape) and out.dtype == np.uint8
    assert_images_close(out, g["pasted_u8"], 1, 0.999, "pasted_u8")
