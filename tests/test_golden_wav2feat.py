"""Audio front end against the official wav2feat / online chunking (golden: wav2feat, e2e_offline, e2e_online)."""

import numpy as np
import pytest

from ditto_core.audio import HubertFeatureExtractor, OnlineAudioChunker, load_audio

from conftest import assert_close_rel, golden_file

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def hubert():
    return HubertFeatureExtractor(golden_file("hubert_standin.onnx"), device="cpu")


def test_offline_16k(golden, hubert):
    g = golden("wav2feat")
    audio = load_audio(g["wave_16000"].numpy(), 16000)
    feat = hubert.offline_features(audio)
    assert_close_rel(feat, g["feat_16000"], 1e-5, "feat_16000")


def test_offline_44k_resampled(golden, hubert):
    g = golden("wav2feat")
    audio = load_audio(g["wave_44100"].numpy(), 44100)
    feat = hubert.offline_features(audio)
    assert_close_rel(feat, g["feat_44100"], 1e-3, "feat_44100")


def test_one_chunk(golden, hubert):
    g = golden("wav2feat")
    assert_close_rel(hubert.chunk_features(g["chunk_6480"].numpy()), g["chunk_feat"], 1e-5, "chunk_feat")


def test_e2e_offline_features(golden, hubert):
    g = golden("e2e_offline")
    feat = hubert.offline_features(g["audio_16k"].numpy())
    assert_close_rel(feat, g["aud_feat"], 1e-5, "aud_feat")


def test_e2e_online_chunks_and_features(golden, hubert):
    g = golden("e2e_online")
    audio = g["audio_16k"].numpy()
    # Stream the audio in uneven pieces, as a live source would deliver it.
    chunker = OnlineAudioChunker()
    chunks: list[np.ndarray] = []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(audio):
        step = int(rng.integers(1, 5000))
        chunks += chunker.push(audio[pos : pos + step])
        pos += step
    chunks += chunker.flush()
    ref_audio = g["chunk_audio"].numpy()
    assert len(chunks) == ref_audio.shape[0]
    np.testing.assert_array_equal(np.stack(chunks), ref_audio)
    feats = np.stack([hubert.chunk_features(c) for c in chunks])
    assert_close_rel(feats, g["chunk_feat"], 1e-5, "chunk_feat")
    n_prefill = g["prefill_feat"].shape[0]
    assert_close_rel(hubert.prefill_features(n_prefill), g["prefill_feat"], 1e-5, "prefill_feat")
