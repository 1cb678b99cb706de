"""The 265-d motion vector of Ditto and the LivePortrait keypoint maths.

Layout of one motion frame (the DiT's output, verified against the official code)::

    [scale - 1 (1) | pitch (66) | yaw (66) | roll (66) | t (3) | exp (63)]   = 265

Pose is kept as **66-bin logits** until the keypoints are transformed; ``pose_to_degrees``
turns logits into degrees (``softmax(logits) . arange(66) * 3 - 97.5``) and passes values
that are already degrees (last dim 1, or no pose axis) through unchanged, as the official
``bin66_to_degree`` does after a ``delta_*`` control converted them.

All functions take torch tensors with any leading batch shape and keep their dtype/device.
"""

from __future__ import annotations

import math

import torch

MOTION_DIM = 265
NUM_BINS = 66
NUM_KP = 21

SCALE = slice(0, 1)
PITCH = slice(1, 67)
YAW = slice(67, 133)
ROLL = slice(133, 199)
T = slice(199, 202)
EXP = slice(202, 265)
#: dims that the official smoothing and ``fix_kp_cond_dim`` cover: scale, pose logits, t (the 202 "pose dims")
POSE_DIMS = slice(0, 202)
#: dims a head amplitude scales: pitch/yaw/roll logits and t (scale always comes from the source)
HEAD_DIMS = slice(1, 202)

#: the order of the dict form, the same as the official ``_cvt_LP_motion_info``
MOTION_KEYS = ("scale", "pitch", "yaw", "roll", "t", "exp")
_SLICES = {"scale": SCALE, "pitch": PITCH, "yaw": YAW, "roll": ROLL, "t": T, "exp": EXP}

#: exp keypoint groups (indices of the 21 keypoints)
LIP_KPS = (6, 12, 14, 17, 19, 20)
EYE_KPS = (11, 13, 15, 16, 18)
#: flat indices (into the 63 exp values) of the lip keypoints
LIP_DIMS = tuple(3 * k + c for k in LIP_KPS for c in range(3))

MotionDict = dict[str, torch.Tensor]


def motion_to_dict(motion: torch.Tensor) -> MotionDict:
    """``(..., 265)`` -> ``{scale (...,1) with 1 added back, pitch/yaw/roll (...,66) logits, t (...,3), exp (...,63)}``."""
    if motion.shape[-1] != MOTION_DIM:
        raise ValueError(f"motion must have {MOTION_DIM} values in its last dim, got shape {tuple(motion.shape)}")
    out = {k: motion[..., s].clone() for k, s in _SLICES.items()}
    out["scale"] = out["scale"] + 1
    return out


def dict_to_motion(info: MotionDict) -> torch.Tensor:
    """Inverse of :func:`motion_to_dict`: concatenate the six entries (scale minus 1) into ``(..., 265)``.

    Extra keys (``kp``) are ignored; pose entries must still be 66-bin logits.
    """
    parts = []
    for k in MOTION_KEYS:
        if k not in info:
            raise ValueError(f"motion dict is missing {k!r} (needs {MOTION_KEYS})")
        v = info[k]
        n = _SLICES[k].stop - _SLICES[k].start
        if v.ndim == 0 or v.shape[-1] != n:
            raise ValueError(f"motion dict entry {k!r} must have {n} values in its last dim, got {tuple(v.shape)}")
        if k == "scale":
            v = v - 1
        parts.append(v)
    try:
        return torch.cat(parts, dim=-1)
    except RuntimeError as e:
        shapes = {k: tuple(info[k].shape) for k in MOTION_KEYS}
        raise ValueError(f"motion dict entries have different leading shapes: {shapes}") from e


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """66-bin logits ``(..., 66)`` -> degrees ``(...)``: ``softmax . arange(66) * 3 - 97.5``."""
    if logits.ndim == 0 or logits.shape[-1] != NUM_BINS:
        raise ValueError(f"pose logits must have {NUM_BINS} bins in the last dim, got shape {tuple(logits.shape)}")
    idx = torch.arange(NUM_BINS, dtype=logits.dtype, device=logits.device)
    prob = torch.softmax(logits, dim=-1)
    return (prob * idx).sum(-1) * 3 - 97.5


def pose_to_degrees(pose: torch.Tensor) -> torch.Tensor:
    """Pose as logits ``(..., 66)`` or degrees ``(..., 1)`` -> degrees ``(...)``."""
    if pose.shape[-1] == NUM_BINS:
        return bins_to_degrees(pose)
    if pose.shape[-1] == 1:
        return pose[..., 0]
    return pose


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees ``(...)`` -> ``(..., 3, 3)`` = ``(Rz(roll) Ry(yaw) Rx(pitch))^T``.

    Keypoints are row vectors, so ``kp @ R`` rotates them by ``Rz Ry Rx``.
    """
    x = pitch * (math.pi / 180)
    y = yaw * (math.pi / 180)
    z = roll * (math.pi / 180)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*x.shape, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*x.shape, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*x.shape, 3, 3)
    return (rz @ ry @ rx).transpose(-1, -2)


def transform_keypoint(info: MotionDict) -> torch.Tensor:
    """LivePortrait Eq. 2 on a motion dict with ``kp``: ``scale * (kp @ R + exp)``, then ``xy += t_xy``.

    ``kp`` and ``exp`` are ``(B, 63)`` or ``(B, 21, 3)``; ``scale`` ``(B, 1)``; ``t`` ``(B, 3)`` (t_z unused);
    pose entries 66-bin logits ``(B, 66)`` or degrees ``(B, 1)`` / ``(B,)``. Returns ``(B, 21, 3)``.
    """
    for k in ("kp", "scale", "pitch", "yaw", "roll", "t", "exp"):
        if k not in info:
            raise ValueError(f"transform_keypoint needs {k!r} in the motion dict")
    kp = info["kp"]
    bs = kp.shape[0]
    for k, n in (("kp", 3 * NUM_KP), ("exp", 3 * NUM_KP), ("scale", 1), ("t", 3)):
        if info[k].numel() != bs * n:
            raise ValueError(f"{k!r} must hold {n} values per frame for batch {bs}, got shape {tuple(info[k].shape)}")

    def _deg(k: str) -> torch.Tensor:
        p = info[k]
        # a 1-d tensor is already degrees (one per frame), as in the official ``bin66_to_degree``
        d = p if p.ndim == 1 else pose_to_degrees(p)
        if d.numel() != bs:
            raise ValueError(f"{k!r} must be (B, 66) logits or (B, 1)/(B,) degrees for batch {bs}, got {tuple(p.shape)}")
        return d.reshape(bs)

    rot = rotation_matrix(_deg("pitch"), _deg("yaw"), _deg("roll")).to(kp.dtype)
    out = kp.reshape(bs, NUM_KP, 3) @ rot + info["exp"].reshape(bs, NUM_KP, 3)
    out = out * info["scale"].reshape(bs, 1, 1)
    t = info["t"].reshape(bs, 3)
    out = torch.cat([out[..., :2] + t[:, None, :2], out[..., 2:]], dim=-1)
    return out
