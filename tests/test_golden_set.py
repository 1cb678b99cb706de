"""The in-repo golden set (``tests/golden``) is complete: every file a golden test reads is there.

The golden tests skip a missing file only for this in-repo set (and fail when ``$DITTO_GOLDEN_DIR`` names the set), so
this test is what keeps a file dropped from ``tests/golden`` from turning into silent skips.
"""

import pytest

from conftest import TESTS_DIR

pytestmark = pytest.mark.golden

#: every file the golden tests read: the safetensors data, the ONNX stand-ins and the source image file
GOLDEN_FILES = (
    *(f"{n}.safetensors" for n in (
        "appearance", "audio2motion_default", "audio2motion_happy_online", "crop_putback", "decoder", "e2e_offline",
        "e2e_online", "lmdm_ddim", "lmdm_forward", "motion_extractor", "source_image", "source_register_image",
        "source_register_video", "stitch_image_ctrl", "stitch_image_default", "stitch_no_stitch_no_eye", "stitching",
        "warp", "wav2feat",
    )),
    "hubert_standin.onnx",
    *(f"standin_{n}.onnx" for n in ("insightface_det", "landmark106", "landmark203", "blaze_face", "face_mesh")),
    "portrait.jpg",  # source_image's file (its 'file' metadata), for the image loader check
)


def test_in_repo_golden_set_is_complete():
    d = TESTS_DIR / "golden"
    missing = [f for f in GOLDEN_FILES if not (d / f).is_file()]
    assert not missing, f"{d} lacks {missing}"
    assert (d / "README.md").is_file()
