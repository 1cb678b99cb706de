"""Reading a source portrait or video from a file into RGB uint8 frames.

Images (:func:`read_image`) are JPEG, PNG, WebP, BMP or TIFF files, 8 or 16 bits per sample:

* An opaque 8-bit image comes out exactly as the official loader gives it (``cv2.imread`` with ``IMREAD_COLOR``, EXIF
  orientation applied, then BGR -> RGB).
* 16-bit samples are scaled to 8 bits with rounding, ``round(v * 255 / 65535)``.
* Grayscale becomes RGB (the gray value in all three channels).
* An alpha channel (gray + alpha, RGBA, a PNG with a transparent palette entry) is composited over
  :data:`ALPHA_BACKGROUND`, **white**, as straight (not premultiplied) alpha: ``out = rgb * a + bg * (1 - a)`` with
  ``a = alpha / max``, rounded to the nearest integer. The colour under a fully transparent pixel never shows.
* Floating-point samples (32-bit float TIFF, EXR, HDR) are refused, as is any format other than the five above.

Sizes are bounded before anything is decoded: the width and height are read from the file header
(:func:`image_size`) and an image of more than :data:`MAX_IMAGE_PIXELS` pixels is refused. A video
(:func:`read_video`, decoded with PyAV) is refused when its frames are larger than :data:`MAX_IMAGE_PIXELS`, or when
the frames to be held in memory add up to more than :data:`MAX_VIDEO_PIXELS` pixels (``max_frames`` bounds how many
are read). Video frames are decoded as ``rgb24``: an alpha channel in a video (VP9 with alpha, PNG or QuickTime
Animation in a MOV, a GIF's transparent colour) is dropped, not composited, so such pixels keep their stored colour.

Every refusal is a :class:`SourceReadError` (an :class:`~ditto_core.errors.InputError`) whose message names the file
and what was expected.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from .errors import InputError

__all__ = [
    "ALPHA_BACKGROUND",
    "MAX_IMAGE_PIXELS",
    "MAX_VIDEO_PIXELS",
    "VIDEO_SUFFIXES",
    "SourceReadError",
    "image_size",
    "read_image",
    "read_source",
    "read_video",
    "read_video_timed",
    "has_audio_stream",
]

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif"}

ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)
"""RGB colour (uint8) that transparent image pixels are composited over: white."""

MAX_IMAGE_PIXELS = 100_000_000
"""Largest image, or video frame, accepted: width * height in pixels (checked before decoding)."""

MAX_VIDEO_PIXELS = 2**30
"""Largest total of decoded video frame pixels held in memory (sum of width * height; about 3 GiB as RGB uint8)."""

_UNREADABLE = "not a readable image (expected a JPEG, PNG, WebP, BMP or TIFF file)"


class SourceReadError(InputError):
    """A source image or video that cannot be read."""


# ---------------------------------------------------------------------------------------------------------------
# Header parsing: the size of an image without decoding it.

_Bytes = bytes | bytearray | memoryview


def _u16be(d: _Bytes, o: int) -> int:
    return struct.unpack_from(">H", d, o)[0]


def _u32be(d: _Bytes, o: int) -> int:
    return struct.unpack_from(">I", d, o)[0]


def _u16le(d: _Bytes, o: int) -> int:
    return struct.unpack_from("<H", d, o)[0]


def _u24le(d: _Bytes, o: int) -> int:
    b = bytes(d[o : o + 3])
    if len(b) != 3:
        raise struct.error("short read")
    return int.from_bytes(b, "little")


def _png_size(d: _Bytes) -> tuple[int, int] | None:
    if bytes(d[12:16]) != b"IHDR":
        return None
    return _u32be(d, 16), _u32be(d, 20)


def _jpeg_size(d: _Bytes) -> tuple[int, int] | None:
    """The frame size of the first SOF0..SOF15 segment (not DHT C4, JPG C8, DAC CC) before the scan data."""
    o, n = 2, len(d)
    while o + 4 <= n:
        if d[o] != 0xFF:
            return None
        m = d[o + 1]
        if m == 0xFF:  # fill byte
            o += 1
            continue
        if m == 0x01 or 0xD0 <= m <= 0xD8:  # TEM, RSTn, SOI: no length field
            o += 2
            continue
        if m in (0xD9, 0xDA):  # EOI or SOS before any frame header
            return None
        seg = _u16be(d, o + 2)
        if seg < 2:
            return None
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            return _u16be(d, o + 7), _u16be(d, o + 5)  # SOF: length, precision, height, width
        o += 2 + seg
    return None


def _webp_size(d: _Bytes) -> tuple[int, int] | None:
    chunk = bytes(d[12:16])
    if chunk == b"VP8 ":  # lossy: frame tag (3 bytes), start code 9D 01 2A, 14-bit width and height
        if bytes(d[23:26]) != b"\x9d\x01\x2a":
            return None
        return _u16le(d, 26) & 0x3FFF, _u16le(d, 28) & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2F, then 14 bits width - 1, 14 bits height - 1
        if d[20] != 0x2F:
            return None
        bits = struct.unpack_from("<I", d, 21)[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: flags (4 bytes), 24-bit canvas width - 1, height - 1
        return _u24le(d, 24) + 1, _u24le(d, 27) + 1
    return None


def _bmp_size(d: _Bytes) -> tuple[int, int] | None:
    header = struct.unpack_from("<I", d, 14)[0]
    if header == 12:  # BITMAPCOREHEADER: unsigned 16-bit width and height
        return _u16le(d, 18), _u16le(d, 20)
    if header >= 16:  # BITMAPINFOHEADER and later (OS/2 2.x too): signed 32-bit; a negative height is top-down
        w, h = struct.unpack_from("<ii", d, 18)
        return (w, abs(h)) if w > 0 else None
    return None


def _tiff_tags(d: _Bytes, base: int, wanted: tuple[int, ...]) -> dict[int, int] | None:
    """The first value of each ``wanted`` SHORT / LONG / LONG8 tag of a TIFF structure's first IFD at ``base``."""
    order = bytes(d[base : base + 2])
    e = "<" if order == b"II" else ">" if order == b"MM" else None
    if e is None:
        return None
    magic = struct.unpack_from(e + "H", d, base + 2)[0]
    if magic == 42:
        ifd = base + struct.unpack_from(e + "I", d, base + 4)[0]
        count, first, size, field = struct.unpack_from(e + "H", d, ifd)[0], ifd + 2, 12, 8
    elif magic == 43:  # BigTIFF
        ifd = base + struct.unpack_from(e + "Q", d, base + 8)[0]
        count, first, size, field = struct.unpack_from(e + "Q", d, ifd)[0], ifd + 8, 20, 12
    else:
        return None
    fmt = {3: "H", 4: "I", 16: "Q"}
    out: dict[int, int] = {}
    for i in range(min(count, 4096)):
        entry = first + i * size
        tag, typ = struct.unpack_from(e + "HH", d, entry)
        if tag in wanted and typ in fmt and (typ != 16 or magic == 43):
            out[tag] = struct.unpack_from(e + fmt[typ], d, entry + field)[0]
    return out


def _tiff_size(d: _Bytes) -> tuple[int, int] | None:
    tags = _tiff_tags(d, 0, (256, 257))  # ImageWidth, ImageLength
    if not tags or 256 not in tags or 257 not in tags:
        return None
    return tags[256], tags[257]


def _probe(d: _Bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` from the header of an encoded image, or None when it is not one we read."""
    head = bytes(d[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt, parse = "png", _png_size
    elif head.startswith(b"\xff\xd8\xff"):
        fmt, parse = "jpeg", _jpeg_size
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        fmt, parse = "webp", _webp_size
    elif head.startswith(b"BM"):
        fmt, parse = "bmp", _bmp_size
    elif head.startswith((b"GIF87a", b"GIF89a")):
        fmt, parse = "gif", lambda b: (_u16le(b, 6), _u16le(b, 8))
    elif head.startswith((b"II", b"MM")):
        fmt, parse = "tiff", _tiff_size
    else:
        return None
    try:
        size = parse(d)
    except (struct.error, IndexError):  # a header cut short
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return fmt, int(size[0]), int(size[1])


def image_size(data: _Bytes) -> tuple[int, int] | None:
    """``(width, height)`` in pixels as declared by the header of an encoded PNG, JPEG, WebP, BMP, GIF or TIFF image
    (nothing is decoded), or None when ``data`` does not start with a readable header of one of these formats."""
    probed = _probe(data)
    return None if probed is None else (probed[1], probed[2])


# ---------------------------------------------------------------------------------------------------------------
# Decoding and colour conversion.


def _png_chunks(d: _Bytes) -> list[tuple[bytes, int, int]]:
    """``(type, payload offset, payload length)`` of each PNG chunk, in file order, up to IEND or the end of data."""
    out, o = [], 8
    while o + 8 <= len(d):
        length, kind = _u32be(d, o), bytes(d[o + 4 : o + 8])
        out.append((kind, o + 8, length))
        if kind == b"IEND":
            break
        o += 12 + length
    return out


def _png_is_plain(d: _Bytes) -> bool:
    """True for an 8-bit-or-less PNG without alpha (gray, RGB or palette, no tRNS): the official path decodes it."""
    if len(d) < 26 or d[24] > 8 or d[25] not in (0, 2, 3):
        return False
    for kind, _, _ in _png_chunks(d):
        if kind == b"tRNS":
            return False
        if kind == b"IDAT":
            return True
    return True


def _exif_orientation(fmt: str, d: _Bytes) -> int:
    """The EXIF orientation (1..8) a PNG (eXIf chunk), WebP (EXIF chunk) or TIFF (tag 274) declares; 1 if none."""
    try:
        blob: _Bytes | None = None
        if fmt == "png":
            blob = next((d[o : o + n] for kind, o, n in _png_chunks(d) if kind == b"eXIf"), None)
        elif fmt == "webp":
            o = 12
            while o + 8 <= len(d):
                kind, n = bytes(d[o : o + 4]), struct.unpack_from("<I", d, o + 4)[0]
                if kind == b"EXIF":
                    blob = d[o + 8 : o + 8 + n]
                    break
                o += 8 + n + (n & 1)
        elif fmt == "tiff":
            blob = d
        if blob is None:
            return 1
        base = 6 if bytes(blob[:6]) == b"Exif\x00\x00" else 0
        value = (_tiff_tags(blob, base, (274,)) or {}).get(274, 1)
    except (struct.error, IndexError):
        return 1
    return value if 1 <= value <= 8 else 1


_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored vertically
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # rotated 90 clockwise to display
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),  # rotated 90 counter-clockwise to display
}


def _orient_like(rgb: np.ndarray, raw: np.ndarray, official: np.ndarray | None, exif: int) -> np.ndarray:
    """Apply to ``rgb`` (H, W, 3) the orientation the official decode (``IMREAD_COLOR``, (H', W', 3) BGR uint8)
    applied to the unrotated ``raw`` decode: the EXIF one when it agrees with ``official``, else the best match."""
    if official is None:
        return np.ascontiguousarray(_ORIENT[exif](rgb))
    raw3 = raw[..., None] if raw.ndim == 2 else raw
    colour = raw3[..., :3] if raw3.shape[2] >= 3 else np.repeat(raw3[..., :1], 3, axis=2)
    if colour.dtype == np.uint16:
        colour = (colour >> 8).astype(np.uint8)
    best, best_err = exif, np.inf
    for k in (exif, *(k for k in _ORIENT if k != exif)):
        cand = _ORIENT[k](colour)
        if cand.shape != official.shape:
            continue
        diff = np.abs(cand.astype(np.int16) - official.astype(np.int16))
        if diff.max() <= 1:
            best = k
            break
        if diff.mean() < best_err:
            best, best_err = k, float(diff.mean())
    return np.ascontiguousarray(_ORIENT[best](rgb))


def _to_rgb8(raw: np.ndarray) -> np.ndarray:
    """A decoded uint8/uint16 image, (H, W) or (H, W, C) with C = 1 gray, 2 gray + alpha, 3 BGR or 4 BGRA ->
    (H, W, 3) uint8 RGB, 16-bit scaled by 255 / 65535 and alpha composited over ``ALPHA_BACKGROUND``, rounded."""
    img = raw[..., None] if raw.ndim == 2 else raw
    c = img.shape[2]
    top = 65535 if img.dtype == np.uint16 else 255
    if c in (1, 2):
        colour = np.repeat(img[..., :1], 3, axis=2)
    else:
        colour = img[..., 2::-1]  # BGR(A) -> RGB
    out = np.empty(img.shape[:2] + (3,), np.uint8)
    scale = 255 * 2
    den = 2 * top * top
    bg = np.asarray(ALPHA_BACKGROUND, np.uint64) * (top // 255)  # the background on the image's scale (x257 at 16 bits)
    step = max(1, (1 << 22) // max(1, img.shape[1]))  # rows per block: bounded temporaries
    for r in range(0, img.shape[0], step):
        rgb = colour[r : r + step].astype(np.uint64)
        if c in (2, 4):
            a = img[r : r + step, :, c - 1 : c].astype(np.uint64)
            num = rgb * a + bg * (top - a)  # colour * alpha on the scale top * top
        else:
            num = rgb * top
        out[r : r + step] = (num * scale + top * top) // den  # round(num * 255 / top^2), never a tie
    return out


def _decode(data: np.ndarray, flags: int) -> np.ndarray | None:
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error:
        return None
    return img if img is not None and img.size else None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (the official loader for an opaque 8-bit image: ``cv2.imread`` then
    BGR -> RGB; see the module notes for 16-bit, gray and alpha). At most :data:`MAX_IMAGE_PIXELS` pixels.

    The official size rule (long side <= 1920, even sizes) is applied at registration.
    """
    p = Path(path)
    if not p.is_file():
        raise SourceReadError(f"source image {p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    probed = _probe(memoryview(data))
    if probed is None:
        raise SourceReadError(f"source image {p}: {_UNREADABLE}")
    fmt, w, h = probed
    if w * h > MAX_IMAGE_PIXELS:
        raise SourceReadError(
            f"source image {p}: {w}x{h} pixels ({w * h}) is more than the limit of {MAX_IMAGE_PIXELS} pixels "
            f"(MAX_IMAGE_PIXELS); pass a smaller image"
        )
    if fmt == "jpeg" or (fmt == "png" and _png_is_plain(memoryview(data))):
        official = _decode(data, cv2.IMREAD_COLOR)  # no alpha, at most 8 bits: exactly the official path
        if official is None:
            raise SourceReadError(f"source image {p}: {_UNREADABLE}")
        return cv2.cvtColor(official, cv2.COLOR_BGR2RGB)
    raw = _decode(data, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise SourceReadError(f"source image {p}: {_UNREADABLE}")
    if raw.dtype not in (np.uint8, np.uint16):
        kind = "floating-point" if raw.dtype.kind == "f" else f"{raw.dtype} "
        raise SourceReadError(
            f"source image {p}: {kind} samples are not supported (expected 8 or 16 bits per sample; save the image "
            f"as an 8-bit PNG or JPEG)"
        )
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    if channels not in (1, 2, 3, 4):
        raise SourceReadError(f"source image {p}: {channels} channels (expected gray, gray + alpha, RGB or RGBA)")
    official = _decode(data, cv2.IMREAD_COLOR)
    if raw.dtype == np.uint8 and channels in (1, 3) and official is not None:
        return cv2.cvtColor(official, cv2.COLOR_BGR2RGB)  # opaque 8-bit: the official path (EXIF orientation too)
    return _orient_like(_to_rgb8(raw), raw, official, _exif_orientation(fmt, memoryview(data)))


# ---------------------------------------------------------------------------------------------------------------
# Video.


def _video_budget_error(p: Path, w: int, h: int, n: int, declared: bool, what: str) -> SourceReadError:
    count = f"{n} frames" if declared else f"more than {n - 1} frames"
    return SourceReadError(
        f"{what} {p}: {count} of {w}x{h} would hold more than the limit of {MAX_VIDEO_PIXELS} decoded pixels "
        f"(MAX_VIDEO_PIXELS, about {MAX_VIDEO_PIXELS * 3 / 2**30:.3g} GiB of RGB); pass a shorter clip or set "
        f"max_frames (SourceOptions.max_frames in the library)"
    )


def _frame_size_error(p: Path, w: int, h: int, what: str) -> SourceReadError:
    return SourceReadError(
        f"{what} {p}: frames of {w}x{h} pixels ({w * h}) are more than the limit of {MAX_IMAGE_PIXELS} pixels "
        f"(MAX_IMAGE_PIXELS); pass a smaller video"
    )


def read_video(path: str | os.PathLike[str], max_frames: int = -1) -> np.ndarray:
    """A video file -> (N, H, W, 3) uint8 RGB frames (at most ``max_frames`` when > 0), decoded with PyAV.

    Frames over :data:`MAX_IMAGE_PIXELS` pixels are refused before any is decoded; so are ``N * H * W`` over
    :data:`MAX_VIDEO_PIXELS` when the stream declares its frame count, else as soon as the frames read would pass it.
    An alpha channel is dropped (frames are decoded as ``rgb24``).
    """
    return _decode_video(Path(path), max_frames, "source video")[0]


def read_video_timed(path: str | os.PathLike[str], max_frames: int = -1,
                     what: str = "driving video") -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_video` with each frame's presentation time: ``(frames (N, H, W, 3) uint8 RGB, times (N,)
    float64 seconds from the first frame)``, so a variable frame rate keeps its timing. ``what`` names the file in
    errors."""
    return _decode_video(Path(path), max_frames, what)


def has_audio_stream(path: str | os.PathLike[str]) -> bool:
    """Whether a media file has an audio stream (False for a file PyAV cannot open)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def _decode_video(p: Path, max_frames: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    import av

    if not p.is_file():
        raise SourceReadError(f"{what} {p}: no such file")
    frames: list[np.ndarray] = []
    times: list[float | None] = []
    rate = 0.0
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise SourceReadError(f"{what} {p}: the file has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
            if w * h > MAX_IMAGE_PIXELS:
                raise _frame_size_error(p, w, h, what)
            declared = int(stream.frames or 0)
            if declared > 0 and w * h > 0:
                n = min(declared, max_frames) if max_frames > 0 else declared
                if n * w * h > MAX_VIDEO_PIXELS:
                    raise _video_budget_error(p, w, h, n, True, what)
            total = 0
            for frame in container.decode(stream):
                fw, fh = int(frame.width), int(frame.height)
                if fw * fh > MAX_IMAGE_PIXELS:
                    raise _frame_size_error(p, fw, fh, what)
                total += fw * fh
                if total > MAX_VIDEO_PIXELS:
                    raise _video_budget_error(p, fw, fh, len(frames) + 1, False, what)
                frames.append(frame.to_ndarray(format="rgb24"))
                stamp = getattr(frame, "time", None)  # None: no usable timestamp (then the stream's rate)
                times.append(None if stamp is None else float(stamp))
                if 0 < max_frames <= len(frames):
                    break
    except SourceReadError:
        raise
    except Exception as e:  # PyAV raises several error classes for broken files
        raise SourceReadError(f"{what} {p}: cannot be decoded ({type(e).__name__}: {e})") from None
    if not frames:
        raise SourceReadError(f"{what} {p}: no frames could be decoded")
    if len({f.shape for f in frames}) > 1:
        raise SourceReadError(f"{what} {p}: the frame size changes within the video (expected one size)")
    t = np.array([np.nan if v is None else v for v in times], dtype=np.float64)
    if np.isnan(t).any() or (len(t) > 1 and not (np.diff(t) > 0).all()):  # no usable timestamps: the stream's rate
        t = np.arange(len(frames), dtype=np.float64) / (rate if rate > 0 else 25.0)
    return np.stack(frames), t - t[0]


def read_source(path: str | os.PathLike[str], max_frames: int = -1) -> tuple[np.ndarray, bool]:
    """An image or a video file -> ``(frames (N, H, W, 3) uint8 RGB, is_image)``; chosen by the file suffix."""
    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        frames = read_video(p, max_frames)
        return frames, False
    return read_image(p)[None], True
