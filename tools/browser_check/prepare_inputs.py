"""Put the input files that the workflows in ``workflows/*.json`` load into a ComfyUI ``input/`` folder.

``python prepare_inputs.py INPUT_DIR WORKFLOW.json [...]`` (run with the check's ComfyUI venv: Pillow, numpy, PyAV).

The file names are read from the workflows themselves (the first widget value of every ``Load*`` node that names a
media file), so renaming a sample input in a workflow needs no change here. For each name:

* a file of that exact name in one of the source folders (``DITTO_BC_INPUTS`` first, then the pack's
  ``example_inputs/``, then ``DITTO_BC_SAMPLES``) is the material; otherwise the first file of the same kind there
  (image / audio / video; names containing "portrait" or "speech" win);
* images are copied (converted when the extension differs);
* audio is cut to ``DITTO_BC_SPEECH_SECONDS`` (default 0.4 s: rendering takes 10-40 s a frame on a small CPU;
  0 keeps the whole clip) and written in the format of the name's extension;
* videos are cut to ``DITTO_BC_VIDEO_FRAMES`` frames (default 6); when the material is an image, a short clip is made
  from it (a slow zoom, so the frames differ).

Existing files in INPUT_DIR are replaced, so the check always runs on the same short inputs. Prints one line per file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
AUDIO_EXT = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"}
VIDEO_EXT = {".mp4", ".webm", ".mov", ".mkv", ".avi"}
HINTS = {"image": "portrait", "audio": "speech", "video": "video"}

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def kind_of(name: str) -> str | None:
    ext = Path(name).suffix.lower()
    if ext in IMAGE_EXT:
        return "image"
    if ext in AUDIO_EXT:
        return "audio"
    if ext in VIDEO_EXT:
        return "video"
    return None


def needed_inputs(workflows: list[Path]) -> dict[str, str]:
    """{file name: kind} over the workflows' Load* nodes (UI form: nodes[].type, nodes[].widgets_values)."""
    out: dict[str, str] = {}
    for wf in workflows:
        graph = json.loads(wf.read_text(encoding="utf-8"))
        for node in graph.get("nodes", []):
            values = node.get("widgets_values")
            if not str(node.get("type", "")).startswith("Load") or not isinstance(values, list) or not values:
                continue
            name = values[0]
            if isinstance(name, str) and kind_of(name) and "/" not in name and "\\" not in name:
                out[name] = kind_of(name)
    return out


def source_dirs() -> list[Path]:
    dirs = []
    for d in (os.environ.get("DITTO_BC_INPUTS"), str(REPO / "example_inputs"),
              os.environ.get("DITTO_BC_SAMPLES", "/work/shared/samples")):
        if d and Path(d).is_dir():
            dirs.append(Path(d))
    return dirs


def find_material(name: str, kind: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    for d in dirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and kind_of(p.name) == kind)
        # the hint word first, then shorter names (speech.wav before speech_long.flac)
        files.sort(key=lambda p: (HINTS[kind] not in p.name.lower(), "long" in p.name.lower(), len(p.name)))
        if files:
            return files[0]
    if kind == "video":  # a clip can be made from a portrait
        return find_material(name, "image", dirs)
    return None


def write_image(src: Path, dst: Path) -> str:
    from PIL import Image

    if src.suffix.lower() == dst.suffix.lower():
        shutil.copyfile(src, dst)
    else:
        Image.open(src).convert("RGB").save(dst)
    return f"image from {src}"


def read_audio(src: Path) -> tuple[np.ndarray, int]:
    """Mono float32 in [-1, 1] and the sample rate."""
    if src.suffix.lower() == ".wav":
        with wave.open(str(src)) as w:
            if w.getsampwidth() == 2:
                data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
                return data.reshape(-1, w.getnchannels()).mean(axis=1), w.getframerate()
    import av

    chunks, rate = [], None
    with av.open(str(src)) as c:
        stream = c.streams.audio[0]
        rate = stream.rate
        for frame in c.decode(stream):
            a = frame.to_ndarray().astype(np.float32)
            if a.dtype.kind in "iu" or np.abs(a).max(initial=0) > 1.5:
                a = a / 32768.0
            if frame.format.is_planar:
                a = a.mean(axis=0)
            else:
                a = a.reshape(-1, len(frame.layout.channels)).mean(axis=1)
            chunks.append(a.reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32), int(rate)


def write_audio(src: Path, dst: Path, seconds: float) -> str:
    data, rate = read_audio(src)
    if seconds > 0:
        data = data[: int(round(seconds * rate))]
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2")
    if dst.suffix.lower() == ".wav":
        with wave.open(str(dst), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
    else:
        import av

        codec = {".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libvorbis", ".opus": "libopus", ".m4a": "aac"}
        with av.open(str(dst), "w") as c:
            stream = c.add_stream(codec[dst.suffix.lower()], rate=rate, layout="mono")
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                c.mux(packet)
            for packet in stream.encode(None):
                c.mux(packet)
    return f"audio {len(data) / rate:.2f} s from {src}"


def write_video(src: Path, dst: Path, frames: int) -> str:
    import av
    from PIL import Image

    if kind_of(src.name) == "video":
        images = []
        with av.open(str(src)) as c:
            for frame in c.decode(video=0):
                images.append(frame.to_image().convert("RGB"))
                if len(images) >= frames:
                    break
        what = f"video {len(images)} frames from {src}"
    else:
        base = Image.open(src).convert("RGB")
        w, h = base.size
        side = min(w, h, 384)
        base = base.resize((side, side))
        images = []
        for i in range(frames):
            crop = int(side * 0.02 * i / max(1, frames - 1))  # slow zoom
            images.append(base.crop((crop, crop, side - crop, side - crop)).resize((side, side)))
        what = f"video {frames} frames made from {src}"
    w, h = images[0].size
    w, h = w - w % 2, h - h % 2
    with av.open(str(dst), "w") as c:
        stream = c.add_stream("libx264" if dst.suffix.lower() in (".mp4", ".mov", ".mkv") else "mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, 25)
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_image(img.crop((0, 0, w, h)))
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return what


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    needed = needed_inputs([Path(p) for p in argv[1:]])
    dirs = source_dirs()
    seconds = float(os.environ.get("DITTO_BC_SPEECH_SECONDS", "0.4"))
    frames = int(os.environ.get("DITTO_BC_VIDEO_FRAMES", "6"))
    failed = False
    for name, kind in sorted(needed.items()):
        src = find_material(name, kind, dirs)
        if src is None:
            print(f"input {name}: no {kind} material in {', '.join(map(str, dirs)) or '(no source folder)'}"
                  " (set DITTO_BC_INPUTS or DITTO_BC_SAMPLES)", file=sys.stderr)
            failed = True
            continue
        dst = target / name
        if kind == "image":
            what = write_image(src, dst)
        elif kind == "audio":
            what = write_audio(src, dst, seconds)
        else:
            what = write_video(src, dst, frames)
        print(f"input {name}: {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
