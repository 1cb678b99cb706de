"""ditto_core.motion against independent float64 numpy computations and known rotations."""

import math

import numpy as np
import pytest
import torch

from ditto_core import motion as M


def _np_softmax_degrees(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return (p * np.arange(66)).sum(-1) * 3 - 97.5


def _axis_rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    """Rodrigues: column-vector rotation by ``deg`` degrees about a unit ``axis`` (right-hand rule)."""
    a = math.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=np.float64)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _np_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Row-vector matrix: pitch about x, then yaw about y, then roll about z (as column vectors Rz Ry Rx v)."""
    ex, ey, ez = np.eye(3)
    col = _axis_rotation(ez, roll) @ _axis_rotation(ey, yaw) @ _axis_rotation(ex, pitch)
    return col.T


def _np_keypoints(kp, scale, pitch, yaw, roll, t, exp):
    out = scale * (kp.reshape(21, 3) @ _np_rotation(pitch, yaw, roll) + exp.reshape(21, 3))
    out[:, :2] += t[:2]
    return out


# ---------------------------------------------------------------------------------------- layout
def test_layout_slices_cover_265():
    spans = [M.SCALE, M.PITCH, M.YAW, M.ROLL, M.T, M.EXP]
    assert spans[0].start == 0 and spans[-1].stop == M.MOTION_DIM == 265
    for a, b in zip(spans, spans[1:]):
        assert a.stop == b.start
    assert [s.stop - s.start for s in spans] == [1, 66, 66, 66, 3, 63]
    assert M.POSE_DIMS == slice(0, 202)
    assert set(M.LIP_KPS).isdisjoint(M.EYE_KPS)


def test_motion_dict_round_trip_and_scale_minus_one():
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((4, 7, 265)).astype(np.float32)
    d = M.motion_to_dict(torch.from_numpy(arr))
    assert tuple(d) == M.MOTION_KEYS
    np.testing.assert_array_equal(d["scale"].numpy(), arr[..., 0:1] + 1)
    np.testing.assert_array_equal(d["pitch"].numpy(), arr[..., 1:67])
    np.testing.assert_array_equal(d["yaw"].numpy(), arr[..., 67:133])
    np.testing.assert_array_equal(d["roll"].numpy(), arr[..., 133:199])
    np.testing.assert_array_equal(d["t"].numpy(), arr[..., 199:202])
    np.testing.assert_array_equal(d["exp"].numpy(), arr[..., 202:265])
    back = M.dict_to_motion({**d, "kp": torch.zeros(4, 7, 63)})  # extra keys ignored
    np.testing.assert_allclose(back.numpy(), arr, rtol=0, atol=1e-6)
    # the dict holds copies
    d["exp"][...] = 0
    assert np.abs(arr[..., 202:]).sum() > 0


def test_motion_wrong_sizes_raise():
    with pytest.raises(ValueError, match="265"):
        M.motion_to_dict(torch.zeros(3, 264))
    d = M.motion_to_dict(torch.zeros(2, 265))
    with pytest.raises(ValueError, match="exp"):
        M.dict_to_motion({**d, "exp": torch.zeros(2, 62)})
    with pytest.raises(ValueError, match="t"):
        M.dict_to_motion({k: v for k, v in d.items() if k != "t"})
    with pytest.raises(ValueError, match="leading"):
        M.dict_to_motion({**d, "exp": torch.zeros(3, 63)})
    with pytest.raises(ValueError, match="66"):
        M.bins_to_degrees(torch.zeros(2, 65))


# ---------------------------------------------------------------------------------------- pose
@pytest.mark.parametrize("i", [0, 5, 32, 33, 65])
def test_bins_to_degrees_peaked(i):
    logits = torch.full((66,), -50.0)
    logits[i] = 50.0
    assert float(M.bins_to_degrees(logits)) == pytest.approx(3 * i - 97.5, abs=1e-4)


def test_bins_to_degrees_matches_numpy_and_is_centred():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3, 66)) * 3
    out = M.bins_to_degrees(torch.from_numpy(logits))
    np.testing.assert_allclose(out.numpy(), _np_softmax_degrees(logits), rtol=0, atol=1e-10)
    # uniform logits: the mean bin 32.5 -> 0 degrees
    assert float(M.bins_to_degrees(torch.zeros(66))) == pytest.approx(0.0, abs=1e-5)
    assert M.bins_to_degrees(torch.zeros(2, 66, dtype=torch.float32)).dtype == torch.float32


def test_pose_to_degrees_passes_degrees_through():
    deg = torch.tensor([[12.5], [-3.0]])
    assert torch.equal(M.pose_to_degrees(deg), torch.tensor([12.5, -3.0]))
    logits = torch.randn(2, 66, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(M.pose_to_degrees(logits), M.bins_to_degrees(logits))


# ---------------------------------------------------------------------------------------- rotation
def _rot(p, y, r):
    return M.rotation_matrix(torch.tensor(float(p), dtype=torch.float64), torch.tensor(float(y), dtype=torch.float64),
                             torch.tensor(float(r), dtype=torch.float64)).numpy()


def test_rotation_known_quarter_turns():
    x, y, z = np.eye(3)
    # keypoints are row vectors: kp @ R
    np.testing.assert_allclose(x @ _rot(0, 90, 0), -z, atol=1e-12)  # yaw 90: x -> -z
    np.testing.assert_allclose(z @ _rot(0, 90, 0), x, atol=1e-12)  # yaw 90: z -> x
    np.testing.assert_allclose(y @ _rot(90, 0, 0), z, atol=1e-12)  # pitch 90: y -> z
    np.testing.assert_allclose(x @ _rot(0, 0, 90), y, atol=1e-12)  # roll 90: x -> y
    np.testing.assert_allclose(_rot(0, 0, 0), np.eye(3), atol=1e-12)


def test_rotation_matches_rodrigues_and_is_orthogonal():
    rng = np.random.default_rng(2)
    angles = rng.uniform(-90, 90, size=(6, 3))
    t = torch.from_numpy(angles)
    out = M.rotation_matrix(t[:, 0], t[:, 1], t[:, 2]).numpy()
    assert out.shape == (6, 3, 3)
    for r, (p, y, rr) in zip(out, angles):
        np.testing.assert_allclose(r, _np_rotation(p, y, rr), atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------- keypoints
def _random_info(rng, bs):
    return {
        "kp": rng.standard_normal((bs, 63)) * 0.3,
        "exp": rng.standard_normal((bs, 63)) * 0.02,
        "scale": rng.uniform(0.8, 1.5, (bs, 1)),
        "t": rng.standard_normal((bs, 3)) * 0.1,
        "pitch": rng.standard_normal((bs, 66)) * 2,
        "yaw": rng.standard_normal((bs, 66)) * 2,
        "roll": rng.standard_normal((bs, 66)) * 2,
    }


def test_transform_keypoint_matches_numpy():
    rng = np.random.default_rng(3)
    info = _random_info(rng, 4)
    out = M.transform_keypoint({k: torch.from_numpy(v) for k, v in info.items()}).numpy()
    assert out.shape == (4, 21, 3)
    for b in range(4):
        deg = [_np_softmax_degrees(info[k][b]) for k in ("pitch", "yaw", "roll")]
        ref = _np_keypoints(info["kp"][b], info["scale"][b, 0], *deg, info["t"][b], info["exp"][b])
        np.testing.assert_allclose(out[b], ref, atol=1e-10)


def test_transform_keypoint_degrees_forms_and_tz_ignored():
    rng = np.random.default_rng(4)
    info = {k: torch.from_numpy(v).float() for k, v in _random_info(rng, 2).items()}
    deg = {k: M.bins_to_degrees(info[k]) for k in ("pitch", "yaw", "roll")}
    a = M.transform_keypoint(info)
    b = M.transform_keypoint({**info, **{k: v[:, None] for k, v in deg.items()}})  # (B, 1) degrees
    c = M.transform_keypoint({**info, **deg})  # (B,) degrees
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    t2 = info["t"].clone()
    t2[:, 2] += 5.0
    torch.testing.assert_close(M.transform_keypoint({**info, "t": t2}), a, rtol=0, atol=0)
    # (B, 21, 3) kp / exp accepted
    d = M.transform_keypoint({**info, "kp": info["kp"].reshape(2, 21, 3), "exp": info["exp"].reshape(2, 21, 3)})
    torch.testing.assert_close(d, a, rtol=0, atol=0)
    # a 66-frame batch of 1-d degrees is degrees, not one logit vector
    rng66 = np.random.default_rng(5)
    info66 = {k: torch.from_numpy(v) for k, v in _random_info(rng66, 66).items()}
    deg66 = {k: M.bins_to_degrees(info66[k]) for k in ("pitch", "yaw", "roll")}
    torch.testing.assert_close(M.transform_keypoint({**info66, **deg66}), M.transform_keypoint(info66), rtol=0, atol=1e-10)


def test_transform_keypoint_wrong_sizes_raise():
    rng = np.random.default_rng(6)
    info = {k: torch.from_numpy(v) for k, v in _random_info(rng, 2).items()}
    with pytest.raises(ValueError, match="exp"):
        M.transform_keypoint({**info, "exp": torch.zeros(2, 60)})
    with pytest.raises(ValueError, match="yaw"):
        M.transform_keypoint({**info, "yaw": torch.zeros(2, 65)})
    with pytest.raises(ValueError, match="kp"):
        M.transform_keypoint({k: v for k, v in info.items() if k != "kp"})
