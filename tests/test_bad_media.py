"""Bad and unusual source media: size limits checked before decoding, alpha composited over white, 16-bit and gray
images, unreadable files, and the video pixel budgets. Every input is made inside the test (no binary fixtures)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ditto_core import inputs
from ditto_core.errors import InputError
from ditto_core.inputs import (
    ALPHA_BACKGROUND,
    MAX_IMAGE_PIXELS,
    SourceReadError,
    image_size,
    read_image,
    read_source,
    read_video,
)

W, H = 37, 23


def _official(path: Path) -> np.ndarray:
    """The official loader: cv2.imread (IMREAD_COLOR) then BGR -> RGB."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _encode(path: Path, img: np.ndarray, params: list[int] | None = None) -> Path:
    ok, buf = cv2.imencode(path.suffix, img, params or [])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _png(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, extra: list[tuple[bytes, bytes]] = ()
) -> bytes:
    """A PNG written by hand: IHDR, the ``extra`` chunks, one IDAT of ``rows`` (filter bytes included), IEND."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, payload in extra:
        out += chunk(kind, payload)
    return out + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _png_rows(pixels: np.ndarray) -> bytes:
    """(H, W, C) uint8 or uint16 samples -> PNG scanlines (filter 0, big-endian samples)."""
    samples = pixels.astype(">u2") if pixels.dtype == np.uint16 else pixels
    flat = samples.reshape(pixels.shape[0], -1).view(np.uint8)
    return b"".join(b"\x00" + row.tobytes() for row in flat)


def _composite(rgb: np.ndarray, alpha: np.ndarray, top: int) -> np.ndarray:
    """The documented formula, in exact integers: round((rgb * a + bg * (top - a)) / top * 255 / top)."""
    rgb, a = rgb.astype(np.int64), alpha.astype(np.int64)[..., None]
    bg = np.array(ALPHA_BACKGROUND, np.int64) * (top // 255)
    num = rgb * a + bg * (top - a)
    return np.floor(num * 255 / (top * top) + 0.5).astype(np.uint8)


@pytest.fixture
def no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("cv2.imdecode was called for an image that should be refused from its header")

    monkeypatch.setattr(inputs.cv2, "imdecode", fail)


def _photo(seed: int = 0) -> np.ndarray:
    """A (H, W, 3) uint8 BGR image with smooth gradients and noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([x * 6, y * 10, (x + y) * 4], axis=2) + rng.integers(0, 30, (H, W, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# Header sizes


@pytest.mark.parametrize(
    ("suffix", "channels", "params", "marker"),
    [
        (".png", 3, [], None),
        (".png", 4, [], None),
        (".jpg", 3, [], None),
        (".jpg", 1, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], None),
        (".webp", 3, [cv2.IMWRITE_WEBP_QUALITY, 80], b"VP8 "),
        (".webp", 3, [cv2.IMWRITE_WEBP_QUALITY, 101], b"VP8L"),
        (".webp", 4, [cv2.IMWRITE_WEBP_QUALITY, 80], b"VP8X"),
        (".bmp", 3, [], None),
        (".bmp", 4, [], None),
        (".tiff", 3, [], None),
        (".tiff", 1, [], None),
    ],
)
def test_image_size_of_encoded_images(suffix: str, channels: int, params: list[int], marker: bytes | None) -> None:
    img = np.dstack([_photo()] * 2)[..., :channels]
    ok, buf = cv2.imencode(suffix, img, params)
    assert ok
    data = buf.tobytes()
    if marker is not None:
        assert data[12:16] == marker
    assert image_size(data) == (W, H)
    assert image_size(memoryview(buf)) == (W, H)


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b";"


def _jpeg_sof(width: int, height: int, sof: int = 0xC0) -> bytes:
    """SOI, an APP0 and a DHT segment (skipped by the parser), then a frame header; no scan data."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dht = b"\xff\xc4" + struct.pack(">H", 5) + b"\x00\x00\x00"
    frame = bytes([0xFF, sof]) + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + b"\xff" + dht + frame


def _bmp(width: int, height: int, core: bool = False) -> bytes:
    if core:
        dib = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib), 0, 0, 14 + len(dib)) + dib


def _webp_vp8x(width: int, height: int) -> bytes:
    payload = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _tiff(width: int, height: int, big_endian: bool = False, long_width: bool = True) -> bytes:
    e = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    entries = []
    for tag, value in ((256, width), (257, height)):
        if long_width or value > 0xFFFF:
            entries.append(struct.pack(e + "HHII", tag, 4, 1, value))
        else:
            entries.append(struct.pack(e + "HHIHH", tag, 3, 1, value, 0))
    entries.insert(0, struct.pack(e + "HHIHH", 254, 3, 1, 0, 0))  # NewSubfileType, ignored
    return head + struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)


def _bigtiff(width: int, height: int) -> bytes:
    entries = [struct.pack("<HHQQ", 256, 16, 1, width), struct.pack("<HHQQ", 257, 3, 1, height)]
    return b"II" + struct.pack("<HHHQ", 43, 8, 0, 16) + struct.pack("<Q", 2) + b"".join(entries) + struct.pack("<Q", 0)


def _huge_png(width: int, height: int) -> bytes:
    return _png(width, height, 8, 2, b"\x00" * 64)[:-40]  # declared size, body cut short


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (_gif(321, 123), (321, 123)),
        (_jpeg_sof(65000, 65000), (65000, 65000)),
        (_jpeg_sof(640, 480, sof=0xC2), (640, 480)),
        (_jpeg_sof(640, 480, sof=0xCF), (640, 480)),
        (_bmp(300, 200), (300, 200)),
        (_bmp(300, -200), (300, 200)),
        (_bmp(300, 200, core=True), (300, 200)),
        (_webp_vp8x(16000, 9000), (16000, 9000)),
        (_webp_vp8l(16000, 9000), (16000, 9000)),
        (_tiff(50000, 40000), (50000, 40000)),
        (_tiff(500, 400, big_endian=True, long_width=False), (500, 400)),
        (_tiff(500, 70000, big_endian=True), (500, 70000)),
        (_bigtiff(50000, 40000), (50000, 40000)),
        (_huge_png(20000, 20000), (20000, 20000)),
    ],
)
def test_image_size_of_crafted_headers(data: bytes, size: tuple[int, int]) -> None:
    assert image_size(data) == size


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        b"\x89PNG\r\n\x1a\n",  # signature only
        _png(10, 10, 8, 2, b"")[:20],  # IHDR cut short
        _png(0, 10, 8, 2, b""),  # zero width
        b"\xff\xd8\xff\xda\x00\x02",  # scan before any frame header
        b"\xff\xd8\xff\xc4\x00\x05\x00\x00\x00",  # a DHT, then nothing
        _bmp(0, 10),
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"II*\x00\x08\x00\x00\x00\x00\x00",  # TIFF with an empty IFD
        b"P6\n4 4\n255\n" + b"\x00" * 48,  # PPM: not one of the formats read
    ],
)
def test_image_size_refuses_unknown_or_broken_headers(data: bytes) -> None:
    assert image_size(data) is None


# ----------------------------------------------------------------------------------------------------------------
# Over-cap images are refused from the header, before decoding


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("huge.png", _huge_png(20000, 20000), "20000x20000"),
        ("huge.jpg", _jpeg_sof(65000, 65000), "65000x65000"),
        ("huge.bmp", _bmp(12000, -10000), "12000x10000"),
        ("huge.webp", _webp_vp8x(16000, 9000), "16000x9000"),
        ("huge.tif", _tiff(50000, 40000, big_endian=True), "50000x40000"),
        ("huge.gif.png", _gif(65535, 65535), "65535x65535"),
    ],
)
def test_image_over_the_pixel_cap_is_refused_before_decoding(
    tmp_path: Path, no_decode: None, name: str, data: bytes, size: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceReadError) as err:
        read_image(path)
    msg = str(err.value)
    assert name in msg and size in msg and str(MAX_IMAGE_PIXELS) in msg
    assert isinstance(err.value, InputError)
    with pytest.raises(SourceReadError, match=str(MAX_IMAGE_PIXELS)):
        read_source(path)


def test_pixel_cap_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _encode(tmp_path / "small.png", _photo())
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", W * H - 1)
    with pytest.raises(SourceReadError, match=rf"small\.png: {W}x{H} .*{W * H - 1}"):
        read_image(path)
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", W * H)
    assert read_image(path).shape == (H, W, 3)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.png", b""),
        ("text.png", b"not an image"),
        ("truncated.png", None),
        ("truncated.jpg", None),
        ("portable.ppm", b"P6\n4 4\n255\n" + b"\x00" * 48),
        ("header_only.webp", _webp_vp8x(64, 64)),
    ],
)
def test_unreadable_images_name_the_file_and_the_formats(tmp_path: Path, name: str, data: bytes | None) -> None:
    path = tmp_path / name
    if data is None:
        _, buf = cv2.imencode(path.suffix, _photo())
        data = buf.tobytes()[: len(buf) // 3]
    path.write_bytes(data)
    with pytest.raises(SourceReadError) as err:
        read_image(path)
    assert str(err.value) == f"source image {path}: not a readable image (expected a JPEG, PNG, WebP, BMP or TIFF file)"


def test_missing_image_and_video(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError, match="nothing.png: no such file"):
        read_image(tmp_path / "nothing.png")
    with pytest.raises(SourceReadError, match="nothing.mp4: no such file"):
        read_source(tmp_path / "nothing.mp4")


def test_float_image_is_refused(tmp_path: Path) -> None:
    path = _encode(tmp_path / "float.tiff", np.full((8, 8, 3), 0.5, np.float32))
    with pytest.raises(SourceReadError, match=r"float\.tiff: floating-point samples .*8 or 16 bits"):
        read_image(path)


# ----------------------------------------------------------------------------------------------------------------
# Colour: the official path for opaque 8-bit images, alpha over white, 16-bit and gray


@pytest.mark.parametrize(
    ("suffix", "channels"),
    [(".png", 3), (".png", 1), (".jpg", 3), (".jpg", 1), (".bmp", 3), (".webp", 3), (".tiff", 3)],
)
def test_opaque_8bit_is_bit_identical_to_the_official_loader(tmp_path: Path, suffix: str, channels: int) -> None:
    img = _photo()[..., :channels] if channels == 3 else cv2.cvtColor(_photo(), cv2.COLOR_BGR2GRAY)
    path = _encode(tmp_path / f"photo{suffix}", img)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, _official(path))


def test_palette_png_without_transparency_is_the_official_path(tmp_path: Path) -> None:
    palette = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])
    index = np.arange(W * H, dtype=np.uint8).reshape(H, W, 1) % 3
    path = tmp_path / "palette.png"
    path.write_bytes(_png(W, H, 8, 3, _png_rows(index), [(b"PLTE", palette)]))
    out = read_image(path)
    np.testing.assert_array_equal(out, _official(path))
    np.testing.assert_array_equal(out[0, :3], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_hidden_colour_under_transparent_pixels_never_shows(tmp_path: Path) -> None:
    bgra = np.zeros((H, W, 4), np.uint8)
    bgra[..., 2] = 255  # pure red everywhere
    bgra[:, :10, 3] = 0  # ... but fully transparent on the left
    bgra[:, 10:20, 3] = 128
    bgra[:, 20:30, 3] = 1
    bgra[:, 30:, 3] = 255
    for suffix in (".png", ".webp", ".tiff", ".bmp"):
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else []
        path = _encode(tmp_path / f"rgba{suffix}", bgra, params)
        if cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED).shape[2] != 4:
            continue  # this OpenCV build writes no alpha for the format
        out = read_image(path)
        assert out.shape == (H, W, 3) and out.dtype == np.uint8
        assert (out[:, :10] == 255).all(), suffix  # white, not red
        np.testing.assert_array_equal(
            out[:, 10:20], np.broadcast_to([255, 127, 127], (H, 10, 3))
        )  # 255*.502 + 255*.498
        np.testing.assert_array_equal(out[:, 20:30], np.broadcast_to([255, 254, 254], (H, 10, 3)))
        np.testing.assert_array_equal(out[:, 30:], np.broadcast_to([255, 0, 0], (H, W - 30, 3)))


def test_semi_transparent_pixels_follow_the_formula(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (H, W, 4)).astype(np.uint8)
    path = _encode(tmp_path / "noise.png", bgra)
    out = read_image(path)
    np.testing.assert_array_equal(out, _composite(bgra[..., 2::-1], bgra[..., 3], 255))
    opaque = bgra.copy()
    opaque[..., 3] = 255  # an RGBA file that is fully opaque: the colour as stored
    np.testing.assert_array_equal(read_image(_encode(tmp_path / "opaque.png", opaque)), opaque[..., 2::-1])


def test_16bit_images_are_scaled_with_rounding(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 65536, (H, W, 3)).astype(np.uint16)
    bgr[0, :4, 0] = [0, 65535, 128, 129]  # 128 * 255 / 65535 = 0.498 -> 0, 129 -> 0.502 -> 1
    out = read_image(_encode(tmp_path / "deep.png", bgr))
    expected = np.floor(bgr[..., ::-1].astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[0, :4, 2], [0, 255, 0, 1])
    gray = rng.integers(0, 65536, (H, W)).astype(np.uint16)
    out = read_image(_encode(tmp_path / "deep_gray.tiff", gray))
    np.testing.assert_array_equal(
        out, np.repeat(np.floor(gray.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)[..., None], 3, 2)
    )


def test_16bit_rgba_is_composited(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bgra = rng.integers(0, 65536, (H, W, 4)).astype(np.uint16)
    bgra[0, 0] = [0, 0, 65535, 0]  # transparent red
    out = read_image(_encode(tmp_path / "deep_rgba.png", bgra))
    np.testing.assert_array_equal(out, _composite(bgra[..., 2::-1], bgra[..., 3], 65535))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_gray_and_gray_alpha_png(tmp_path: Path, bit_depth: int) -> None:
    dtype, top = (np.uint8, 255) if bit_depth == 8 else (np.uint16, 65535)
    rng = np.random.default_rng(4)
    ga = rng.integers(0, top + 1, (H, W, 2)).astype(dtype)
    ga[0, 0] = [0, 0]  # transparent black
    path = tmp_path / f"gray_alpha{bit_depth}.png"
    path.write_bytes(_png(W, H, bit_depth, 4, _png_rows(ga)))
    out = read_image(path)
    np.testing.assert_array_equal(out, _composite(np.repeat(ga[..., :1], 3, 2), ga[..., 1], top))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    gray_path = tmp_path / f"gray{bit_depth}.png"
    gray_path.write_bytes(_png(W, H, bit_depth, 0, _png_rows(ga[..., :1])))
    out = read_image(gray_path)
    if bit_depth == 8:
        np.testing.assert_array_equal(out, _official(gray_path))
    np.testing.assert_array_equal(out, _composite(np.repeat(ga[..., :1], 3, 2), np.full((H, W), top), top))


def test_palette_png_with_a_transparent_entry(tmp_path: Path) -> None:
    palette = bytes([255, 0, 0, 0, 0, 255])  # entry 0 red (fully transparent via tRNS), entry 1 blue (opaque)
    index = (np.arange(W)[None, :, None] % 2).repeat(H, 0).astype(np.uint8)
    path = tmp_path / "palette_trns.png"
    path.write_bytes(_png(W, H, 8, 3, _png_rows(index), [(b"PLTE", palette), (b"tRNS", b"\x00")]))
    out = read_image(path)
    np.testing.assert_array_equal(out[:, 0::2], np.broadcast_to([255, 255, 255], out[:, 0::2].shape))
    np.testing.assert_array_equal(out[:, 1::2], np.broadcast_to([0, 0, 255], out[:, 1::2].shape))


def _exif(orientation: int) -> np.ndarray:
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return np.frombuffer(b"II*\x00" + struct.pack("<I", 8) + ifd, np.uint8)


@pytest.mark.skipif(not hasattr(cv2, "imencodeWithMetadata"), reason="OpenCV without imencodeWithMetadata")
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path: Path, orientation: int) -> None:
    """Opaque JPEG and PNG are rotated as the official loader rotates them; alpha turns with the colour."""
    for suffix in (".jpg", ".png"):
        ok, buf = cv2.imencodeWithMetadata(suffix, _photo(), [cv2.IMAGE_METADATA_EXIF], [_exif(orientation)])
        assert ok
        path = tmp_path / f"o{orientation}{suffix}"
        path.write_bytes(buf.tobytes())
        np.testing.assert_array_equal(read_image(path), _official(path))
    bgra = np.dstack([np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8)])
    bgra[:5, :8, 3] = 255  # an opaque black patch in the top-left corner, the rest transparent black
    _, buf = cv2.imencodeWithMetadata(".png", bgra, [cv2.IMAGE_METADATA_EXIF], [_exif(orientation)])
    path = tmp_path / f"o{orientation}_alpha.png"
    path.write_bytes(buf.tobytes())
    out = read_image(path)
    expected = inputs._ORIENT[orientation](_composite(bgra[..., :3], bgra[..., 3], 255))
    assert out.shape[:2] == _official(path).shape[:2]
    np.testing.assert_array_equal(out, expected)


# ----------------------------------------------------------------------------------------------------------------
# Video


def _write_video(path: Path, n: int, width: int = 32, height: int = 24) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (i * 20) % 256, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class _Counting:
    """Wraps ``av.open`` so that a test sees how many frames were decoded and how many converted to arrays."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import av

        self.decoded = 0
        self.converted = 0
        real_open = av.open
        outer = self

        class Frame:
            def __init__(self, frame: Any) -> None:
                self._frame = frame
                self.width, self.height = frame.width, frame.height

            def to_ndarray(self, **kwargs: Any) -> np.ndarray:
                outer.converted += 1
                return self._frame.to_ndarray(**kwargs)

        class Container:
            def __init__(self, container: Any) -> None:
                self._c = container
                self.streams = container.streams

            def __enter__(self) -> Container:
                return self

            def __exit__(self, *exc: object) -> None:
                self._c.close()

            def decode(self, *args: Any, **kwargs: Any) -> Any:
                for frame in self._c.decode(*args, **kwargs):
                    outer.decoded += 1
                    yield Frame(frame)

        monkeypatch.setattr(av, "open", lambda *a, **k: Container(real_open(*a, **k)))


def test_video_reads_frames(tmp_path: Path) -> None:
    frames, is_image = read_source(_write_video(tmp_path / "clip.mp4", 6))
    assert not is_image and frames.shape == (6, 24, 32, 3) and frames.dtype == np.uint8
    assert read_video(tmp_path / "clip.mp4", max_frames=2).shape == (2, 24, 32, 3)


def test_video_frame_over_the_pixel_cap_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.y4m"  # a YUV4MPEG2 header declaring 12000 x 12000 frames, body cut short
    path.write_bytes(b"YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1000)
    count = _Counting(monkeypatch)
    with pytest.raises(SourceReadError) as err:
        read_video(path)
    msg = str(err.value)
    assert "huge.y4m" in msg and "12000x12000" in msg and str(MAX_IMAGE_PIXELS) in msg
    assert count.decoded == 0


def test_small_video_over_a_lowered_frame_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_video(tmp_path / "clip.mkv", 3)
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", 32 * 24 - 1)
    count = _Counting(monkeypatch)
    with pytest.raises(SourceReadError, match=rf"clip\.mkv: frames of 32x24 .*{32 * 24 - 1}"):
        read_source(path)
    assert count.decoded == 0


def test_video_over_the_budget_with_a_declared_frame_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_video(tmp_path / "long.mp4", 10)
    budget = 5 * 32 * 24
    monkeypatch.setattr(inputs, "MAX_VIDEO_PIXELS", budget)
    count = _Counting(monkeypatch)
    with pytest.raises(SourceReadError) as err:
        read_source(path)
    msg = str(err.value)
    assert "long.mp4" in msg and "10 frames of 32x24" in msg and str(budget) in msg
    assert "max_frames" in msg and "SourceOptions.max_frames" in msg and "shorter clip" in msg
    assert count.decoded == 0  # refused from the declared count
    frames, _ = read_source(path, max_frames=5)  # max_frames bounds what is read: under the budget
    assert frames.shape == (5, 24, 32, 3)
    with pytest.raises(SourceReadError, match="6 frames of 32x24"):
        read_source(path, max_frames=6)


def test_video_over_the_budget_without_a_frame_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import av

    path = _write_video(tmp_path / "long.mkv", 10)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # Matroska declares no frame count
    budget = 3 * 32 * 24 + 100
    monkeypatch.setattr(inputs, "MAX_VIDEO_PIXELS", budget)
    count = _Counting(monkeypatch)
    with pytest.raises(SourceReadError) as err:
        read_video(path)
    msg = str(err.value)
    assert "long.mkv" in msg and "more than 3 frames of 32x24" in msg and str(budget) in msg and "max_frames" in msg
    assert count.converted == 3  # the 4th frame was not kept
    count.converted = 0
    assert read_video(path, max_frames=3).shape == (3, 24, 32, 3)
    assert count.converted == 3


def test_unreadable_video(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(SourceReadError, match="broken.mp4: cannot be decoded"):
        read_source(path)
