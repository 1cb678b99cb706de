"""Write example_inputs/ (the sample inputs the example workflows load) from the official Ditto examples.

    python tools/make_example_inputs.py PORTRAIT.jpg SPEECH.wav

PORTRAIT and SPEECH are ``example/image.png``-style portrait and ``example/audio.wav`` speech of the official
repository (antgroup/ditto-talkinghead, Apache-2.0). Writes, small enough to ship with the pack:

* ``ditto_portrait.jpg``: the portrait centre-cropped to a square and resized to 512x512 (JPEG quality 90);
* ``ditto_speech.wav``: the first 2.0 s of the speech (50 frames at 25 fps), 16-bit mono at its own rate;
* ``ditto_speech_long.flac``: the whole speech, mono FLAC at its own rate (the long-clip workflow);
* ``ditto_source_video.mp4``: 2.0 s at 25 fps, 384x384 H.264, a slow zoom and pan over the portrait (a video
  source whose head moves a little, for the video-source workflow).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "example_inputs"
SHORT_SECONDS = 2.0
FPS = 25


def _square(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)


def _write_audio(path: Path, samples: np.ndarray, rate: int, codec: str) -> None:
    import av

    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)[None]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout="mono")
        s.format = "s16"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def main(portrait: str, speech: str) -> None:
    from ditto_core.audio import load_audio_native
    from ditto_core.inputs import read_source
    from ditto_core.video import VideoWriter

    OUT.mkdir(exist_ok=True)
    frames, _ = read_source(portrait, 1)
    face = _square(frames[0], 512)
    cv2.imwrite(str(OUT / "ditto_portrait.jpg"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])

    audio, rate = load_audio_native(speech)
    mono = audio.mean(axis=0)
    rate = int(rate)
    _write_audio(OUT / "ditto_speech.wav", mono[: int(SHORT_SECONDS * rate)], rate, "pcm_s16le")
    _write_audio(OUT / "ditto_speech_long.flac", mono, rate, "flac")

    n = int(SHORT_SECONDS * FPS)
    with VideoWriter(OUT / "ditto_source_video.mp4", fps=FPS, crf=26, preset="slow") as w:
        for i in range(n):
            t = i / (n - 1)
            zoom = 1.0 + 0.08 * np.sin(np.pi * t)  # in and out again
            dx = 10.0 * np.sin(2 * np.pi * t)  # a little to the side and back, in pixels of the 512 image
            m = cv2.getRotationMatrix2D((256.0, 256.0), 2.0 * np.sin(2 * np.pi * t), zoom)
            m[0, 2] += dx
            moved = cv2.warpAffine(face, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            w.write(cv2.resize(moved, (384, 384), interpolation=cv2.INTER_AREA))
    for p in sorted(OUT.iterdir()):
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
