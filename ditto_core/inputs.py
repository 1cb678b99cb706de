"""Reading a source portrait or video from a file into RGB uint8 frames."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from .errors import InputError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif"}


class SourceReadError(InputError):
    """A source image or video that cannot be read."""


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (the official loader: ``cv2.imread`` then BGR -> RGB).

    The official size rule (long side <= 1920, even sizes) is applied at registration.
    """
    p = Path(path)
    if not p.is_file():
        raise SourceReadError(f"source image {p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise SourceReadError(f"source image {p}: not a readable image (expected a JPEG, PNG, WebP, BMP or TIFF file)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_video(path: str | os.PathLike[str], max_frames: int = -1) -> np.ndarray:
    """A video file -> (N, H, W, 3) uint8 RGB frames (at most ``max_frames`` when > 0), decoded with PyAV."""
    import av

    p = Path(path)
    if not p.is_file():
        raise SourceReadError(f"source video {p}: no such file")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise SourceReadError(f"source video {p}: the file has no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if 0 < max_frames <= len(frames):
                    break
    except SourceReadError:
        raise
    except Exception as e:  # PyAV raises several error classes for broken files
        raise SourceReadError(f"source video {p}: cannot be decoded ({type(e).__name__}: {e})") from None
    if not frames:
        raise SourceReadError(f"source video {p}: no frames could be decoded")
    return np.stack(frames)


def read_source(path: str | os.PathLike[str], max_frames: int = -1) -> tuple[np.ndarray, bool]:
    """An image or a video file -> ``(frames (N, H, W, 3) uint8 RGB, is_image)``; chosen by the file suffix."""
    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        frames = read_video(p, max_frames)
        return frames, False
    return read_image(p)[None], True
