"""The fake microphone's speech for the live browser checks: SRC (16-bit PCM WAV) -> DST, 3 s of it at 16 kHz mono
(the clip repeated). Usage: python mic_wav.py SRC DST"""

import sys
import wave

import numpy as np


def main(src: str, dst: str, seconds: float = 3.0) -> None:
    with wave.open(src) as w:
        sr, ch = w.getframerate(), w.getnchannels()
        assert w.getsampwidth() == 2, "expected 16-bit PCM"
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, ch).mean(axis=1) / 32768.0
    n = int(len(x) * 16000 / sr)
    y = np.resize(np.interp(np.arange(n) * sr / 16000, np.arange(len(x)), x), int(seconds * 16000))
    with wave.open(dst, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(y, -1, 1) * 32767).round().astype("<i2").tobytes())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
