"""Unit tests of the DiT conditions: emotion vectors, cycling, layout and input checks."""

import math

import numpy as np
import pytest
import torch

from ditto_core._util import mirror_index
from ditto_core.conditions import (
    COND_DIM,
    EMOTION_LABELS,
    ConditionBuilder,
    build_conditions,
    emotion_index,
    emotion_mix,
    emotion_vector,
    parse_emotion,
)


def _softmax_ref(peaks: list[int]) -> np.ndarray:
    x = np.zeros(8)
    x[peaks] = 8.0
    e = np.exp(x)
    return e / e.sum()


def test_labels_order():
    assert EMOTION_LABELS == ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise", "Contempt")
    assert COND_DIM == 1103
    assert emotion_index("happy") == 3 and emotion_index(" Neutral ") == 4 and emotion_index(7) == 7


def test_single_label_vector():
    v = emotion_vector(4)
    assert v.dtype == torch.float32 and v.shape == (8,)
    peak = math.exp(8) / (math.exp(8) + 7)
    assert float(v[4]) == pytest.approx(peak, rel=1e-6)
    assert float(v[4]) == pytest.approx(0.9977, abs=5e-5)
    np.testing.assert_allclose(v.numpy(), _softmax_ref([4]), rtol=1e-6)
    assert torch.equal(emotion_vector("Neutral"), v)


def test_label_list_vector():
    np.testing.assert_allclose(emotion_vector([3, 4]).numpy(), _softmax_ref([3, 4]), rtol=1e-6)
    np.testing.assert_allclose(parse_emotion([3, 4])[0].numpy(), _softmax_ref([3, 4]), rtol=1e-6)


def test_emotion_mix():
    assert torch.allclose(emotion_mix({"Happy": 1.0}), emotion_vector(3), atol=1e-7)
    mix = emotion_mix({"happy": 3.0, 4: 1.0})
    ref = 0.75 * _softmax_ref([3]) + 0.25 * _softmax_ref([4])
    np.testing.assert_allclose(mix.numpy(), ref, rtol=1e-6)
    assert float(mix.sum()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="must not all be zero"):
        emotion_mix({"Happy": 0.0})
    with pytest.raises(ValueError, match=">= 0"):
        emotion_mix({"Happy": -1.0})
    with pytest.raises(ValueError, match="unknown emotion label"):
        emotion_mix({"Joy": 1.0})


def test_bad_emotions():
    for bad in (8, -1, "joy", [0, 1, 2, 3, 4, 5, 6, 7], [], 2.5, np.zeros((3, 7)), np.zeros((0, 8)), True):
        with pytest.raises(ValueError):
            parse_emotion(bad)


def _inputs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    aud = rng.standard_normal((n, 1024)).astype(np.float32)
    eye_open = rng.random((1, 2)).astype(np.float32)
    eye_ball = rng.standard_normal((1, 6)).astype(np.float32)
    sc = rng.standard_normal(63).astype(np.float32)
    return aud, eye_open, eye_ball, sc


def test_layout_and_order():
    aud, eo, eb, sc = _inputs()
    c = build_conditions(aud, 4, eo, eb, sc)
    assert c.shape == (12, 1103) and c.dtype == torch.float32
    np.testing.assert_array_equal(c[:, :1024].numpy(), aud)
    np.testing.assert_allclose(c[:, 1024:1032].numpy(), np.tile(_softmax_ref([4]), (12, 1)), rtol=1e-6)
    np.testing.assert_array_equal(c[:, 1032:1034].numpy(), np.tile(eo, (12, 1)))
    np.testing.assert_array_equal(c[:, 1034:1040].numpy(), np.tile(eb, (12, 1)))
    np.testing.assert_array_equal(c[:, 1040:].numpy(), np.tile(sc, (12, 1)))
    # sc as (21, 3) and torch inputs give the same
    c2 = build_conditions(torch.from_numpy(aud), 4, torch.from_numpy(eo[0]), eb, sc.reshape(21, 3))
    assert torch.equal(c, c2)


def test_emotion_table_cycling_with_negative_start():
    aud, eo, eb, sc = _inputs(10)
    table = np.random.default_rng(3).random((4, 8)).astype(np.float32)
    c = build_conditions(aud, table, eo, eb, sc, start_index=-3)
    rows = [max(i, 0) % 4 for i in range(-3, 7)]
    assert rows == [0, 0, 0, 0, 1, 2, 3, 0, 1, 2]
    np.testing.assert_array_equal(c[:, 1024:1032].numpy(), table[rows])
    # per-frame label lists cycle the same way
    c = build_conditions(aud, [[3], [4, 5]], eo, eb, sc, start_index=5)
    expect = [_softmax_ref([3]) if i % 2 == 0 else _softmax_ref([4, 5]) for i in range(5, 15)]
    np.testing.assert_allclose(c[:, 1024:1032].numpy(), np.stack(expect), rtol=1e-6)


def test_video_eye_rows_ping_pong():
    aud, _, _, sc = _inputs(9)
    eo = np.arange(6, dtype=np.float32).reshape(3, 2)
    eb = np.arange(18, dtype=np.float32).reshape(3, 6)
    c = build_conditions(aud, 4, eo, eb, sc, start_index=-2)
    idx = [0, 0, 0, 1, 2, 2, 1, 0, 0]  # max(i,0) for i=-2..6 mirrored over 3 rows
    assert [mirror_index(max(i, 0), 3) for i in range(-2, 7)] == idx
    np.testing.assert_array_equal(c[:, 1032:1034].numpy(), eo[idx])
    np.testing.assert_array_equal(c[:, 1034:1040].numpy(), eb[idx])
    c0 = ConditionBuilder(4, eo, eb, sc, eye_f0_mode=True)(aud, 0)
    np.testing.assert_array_equal(c0[:, 1032:1034].numpy(), np.tile(eo[0], (9, 1)))


def test_bad_shapes_raise_clear_errors():
    aud, eo, eb, sc = _inputs()
    with pytest.raises(ValueError, match=r"aud_feat must be \(n, 1024\)"):
        build_conditions(aud[:, :512], 4, eo, eb, sc)
    with pytest.raises(ValueError, match="eye_open must be"):
        build_conditions(aud, 4, np.zeros(3), eb, sc)
    with pytest.raises(ValueError, match="eye_ball must be"):
        build_conditions(aud, 4, eo, np.zeros((1, 5)), sc)
    with pytest.raises(ValueError, match="sc must hold the 63"):
        build_conditions(aud, 4, eo, eb, np.zeros(60))
    with pytest.raises(ValueError, match="unsupported emotion"):
        build_conditions(aud, 2.5, eo, eb, sc)


def test_parse_emotion_text_label_index_and_mix():
    from ditto_core.conditions import parse_emotion_text

    assert parse_emotion_text("Happy") == 3
    assert parse_emotion_text(" contempt ") == 7
    assert parse_emotion_text("4") == 4
    assert parse_emotion_text("Happy:0.7, neutral:0.3") == {"Happy": 0.7, "Neutral": 0.3}
    assert parse_emotion_text("sad; 0:2") == {"Sad": 1.0, "Angry": 2.0}
    for bad, msg in (("", "empty"), ("Joy", "unknown"), ("9", "0..7"), ("Happy:x", "number"), ("Happy:0", "zero"),
                     ("Happy:-1", ">= 0"), ("Joy:1", "unknown emotion")):
        with pytest.raises(ValueError, match=msg):
            parse_emotion_text(bad)


def test_emotion_parse_every_form_once():
    """Whatever form a user gives is parsed once, where it enters, into an Emotion (table + label)."""
    from ditto_core.conditions import Emotion

    happy = emotion_vector(3)[None]
    for form in (3, "Happy", "happy", " 3 ", {"Happy": 1.0}, [3]):
        e = Emotion.parse(form)
        assert torch.allclose(e.table, happy), form
    assert Emotion.parse("Happy").label == "Happy" and Emotion.parse(3).label == "Happy"
    mix = Emotion.parse("Happy:0.7, Neutral:0.3")
    assert mix.label == "Happy:0.7,Neutral:0.3"
    assert torch.allclose(mix.table, (0.7 * emotion_vector(3) + 0.3 * emotion_vector(4))[None])
    assert Emotion.parse(mix) is mix
    table = Emotion.parse(np.eye(8, dtype=np.float32)[:3])
    assert table.table.shape == (3, 8) and table.label == "table(3x8)"
    probs = Emotion.parse([0.125] * 8)
    assert torch.allclose(probs.table, torch.full((1, 8), 0.125)) and probs.label == "probabilities"
    assert Emotion.parse([[3], [4]]).table.shape == (2, 8)
    for bad, msg in (("Joy", "unknown emotion"), (9, "0..7"), ("", "empty"), (np.zeros((2, 7)), r"\(m, 8\)")):
        with pytest.raises(ValueError, match=msg):
            Emotion.parse(bad)
