"""The README's Python examples run as written: every ```python block, in order, in one namespace, on the synthetic
kit. Only what a reader substitutes anyway is substituted: the models folder, the input files (a short clip), the
device (this machine has no GPU), and the two placeholders of the streaming example (``microphone_pieces``,
``show``)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, face_image, write_wav
from ditto_core.video import VideoWriter

pytestmark = pytest.mark.slow


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, dedented (a block may sit in a list item)."""
    blocks = []
    for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, flags=re.S | re.M):
        indent = len(m.group(1))
        blocks.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
    return blocks


def test_the_block_finder():
    text = "a\n```python\nx = 1\n```\n- item\n\n  ```python\n  y = 2\n  ```\n```bash\nls\n```\n"
    assert python_blocks(text) == ["x = 1", "y = 2"]


def test_readme_examples_run(synthetic_kit, tmp_path, monkeypatch):
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) >= 3, "the README's library and streaming examples"
    cv2.imwrite(str(tmp_path / "portrait.jpg"), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    write_wav(tmp_path / "speech.wav", 0.04)  # 1 frame: each 512x512 frame takes seconds on a CPU
    with VideoWriter(tmp_path / "performance.mp4", fps=30) as w:  # the driving video: 3 frames at 30 fps
        w.write(np.stack([np.roll(face_image(), 3 * i, 1) for i in range(3)]))
    monkeypatch.chdir(tmp_path)
    shown: list[np.ndarray] = []

    def microphone_pieces():
        wave = (0.2 * np.sin(np.arange(640) / 7)).astype(np.float32)  # 0.04 s at 16 kHz: 1 frame
        return [wave[i : i + 500] for i in range(0, len(wave), 500)]

    namespace = {"microphone_pieces": microphone_pieces, "show": shown.append}
    for block in blocks:
        code = (block.replace('"models/ditto-talkinghead"', repr(str(synthetic_kit)))
                .replace('device="cuda"', 'device="cpu"').replace('precision="fp16"', 'precision="fp32"'))
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the project's own documentation
    assert (tmp_path / "result.mp4").is_file()
    assert namespace["motion"].num_frames == 1
    assert namespace["driving"].num_frames == 2 and namespace["mixed"].parts == ("official", "head_pose", "eyes")
    assert namespace["previews"].shape == (1, 512, 512, 3) and (tmp_path / "mixed.mp4").is_file()
    assert len(shown) == 1 and all(f.shape == (512, 512, 3) for f in shown)
