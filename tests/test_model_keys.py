"""The renderer networks' state_dicts match the official checkpoints (names, shapes, counts).

Expected values come from the LivePortrait spec (docs/liveportrait-spec.md §1, §4, §7) and the official
architecture; the nets are built on the meta device, so no weights are allocated.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ditto_core.models.appearance import AppearanceFeatureExtractor
from ditto_core.models.blocks import SpectralNormConv2d
from ditto_core.models.motion_extractor import MotionExtractor
from ditto_core.models.spade_decoder import SPADEDecoder
from ditto_core.models.warping import WarpingNetwork

# name -> (class, number of state_dict entries, parameters in millions to 3 decimals, {key: shape})
SPEC = {
    "F": (
        AppearanceFeatureExtractor,
        107,
        0.836,
        {
            "first.conv.weight": (64, 3, 3, 3),
            "down_blocks.0.norm.running_mean": (128,),
            "down_blocks.1.conv.weight": (256, 128, 3, 3),
            "second.weight": (512, 256, 1, 1),
            "resblocks_3d.3dr0.conv1.weight": (32, 32, 3, 3, 3),
            "resblocks_3d.3dr5.norm2.num_batches_tracked": (),
        },
    ),
    "M": (
        MotionExtractor,
        212,
        28.119,
        {
            "detector.downsample_layers.0.0.weight": (96, 3, 4, 4),
            "detector.downsample_layers.0.1.weight": (96,),
            "detector.downsample_layers.3.1.weight": (768, 384, 2, 2),
            "detector.stages.0.0.dwconv.weight": (96, 1, 7, 7),
            "detector.stages.0.0.norm.weight": (96,),
            "detector.stages.0.0.pwconv1.weight": (384, 96),
            "detector.stages.0.0.grn.gamma": (1, 1, 1, 384),
            "detector.stages.0.0.grn.beta": (1, 1, 1, 384),
            "detector.stages.2.8.pwconv2.weight": (384, 1536),
            "detector.norm.weight": (768,),
            "detector.fc_kp.weight": (63, 768),
            "detector.fc_scale.bias": (1,),
            "detector.fc_pitch.weight": (66, 768),
            "detector.fc_yaw.weight": (66, 768),
            "detector.fc_roll.weight": (66, 768),
            "detector.fc_t.weight": (3, 768),
            "detector.fc_exp.weight": (63, 768),
        },
    ),
    "W": (
        WarpingNetwork,
        97,
        45.530,
        {
            "dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight": (64, 110, 3, 3, 3),
            "dense_motion_network.hourglass.encoder.down_blocks.4.conv.weight": (1024, 512, 3, 3, 3),
            "dense_motion_network.hourglass.decoder.up_blocks.0.conv.weight": (512, 1024, 3, 3, 3),
            "dense_motion_network.hourglass.decoder.up_blocks.4.conv.weight": (32, 128, 3, 3, 3),
            "dense_motion_network.hourglass.decoder.conv.weight": (142, 142, 3, 3, 3),
            "dense_motion_network.hourglass.decoder.norm.running_var": (142,),
            "dense_motion_network.mask.weight": (22, 142, 7, 7, 7),
            "dense_motion_network.compress.weight": (4, 32, 1, 1, 1),
            "dense_motion_network.norm.num_batches_tracked": (),
            "dense_motion_network.occlusion.weight": (1, 2272, 7, 7),
            "third.conv.weight": (256, 512, 3, 3),
            "third.norm.running_mean": (256,),
            "fourth.weight": (256, 256, 1, 1),
        },
    ),
    "G": (
        SPADEDecoder,
        182,
        55.365,
        {
            "fc.weight": (512, 256, 3, 3),
            "G_middle_0.conv_0.weight_orig": (512, 512, 3, 3),
            "G_middle_0.conv_0.weight_u": (512,),
            "G_middle_0.conv_0.weight_v": (4608,),
            "G_middle_0.conv_0.bias": (512,),
            "G_middle_5.conv_1.weight_orig": (512, 512, 3, 3),
            "G_middle_0.norm_0.mlp_shared.0.weight": (128, 256, 3, 3),
            "G_middle_0.norm_0.mlp_gamma.weight": (512, 128, 3, 3),
            "G_middle_0.norm_1.mlp_beta.bias": (512,),
            "up_0.conv_0.weight_orig": (256, 512, 3, 3),
            "up_0.conv_s.weight_orig": (256, 512, 1, 1),
            "up_0.conv_s.weight_v": (512,),
            "up_0.norm_s.mlp_gamma.weight": (512, 128, 3, 3),
            "up_1.conv_0.weight_orig": (64, 256, 3, 3),
            "up_1.conv_1.weight_orig": (64, 64, 3, 3),
            "up_1.conv_s.weight_u": (64,),
            "conv_img.0.weight": (12, 64, 3, 3),
            "conv_img.0.bias": (12,),
        },
    ),
}


def _build_meta(cls) -> nn.Module:
    with torch.device("meta"):
        return cls()


@pytest.mark.parametrize("name", list(SPEC))
def test_state_dict_layout(name):
    cls, n_keys, params_m, shapes = SPEC[name]
    net = _build_meta(cls)
    sd = net.state_dict()
    assert len(sd) == n_keys
    for key, shape in shapes.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    n_params = sum(p.numel() for p in net.parameters())
    assert round(n_params / 1e6, 3) == params_m
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            assert value.dtype == torch.long, key
        else:
            assert value.dtype == torch.float32, key


def test_decoder_spectral_entries():
    """Every spectral-normed conv holds weight_orig/u/v (no plain weight); the shortcut convs have no bias."""
    sd = _build_meta(SPADEDecoder).state_dict()
    convs = [f"G_middle_{i}.conv_{j}" for i in range(6) for j in (0, 1)]
    convs += [f"up_{i}.conv_{j}" for i in range(2) for j in ("0", "1", "s")]
    for conv in convs:
        for suffix in ("weight_orig", "weight_u", "weight_v"):
            assert f"{conv}.{suffix}" in sd
        assert f"{conv}.weight" not in sd
        assert (f"{conv}.bias" in sd) == (not conv.endswith("conv_s"))
    assert not any(k.startswith("G_middle_0.conv_s") for k in sd)


def test_spectral_conv_matches_torch_spectral_norm():
    """Our inference form equals torch's own spectral_norm hook in eval mode on the same entries."""
    torch.manual_seed(0)
    ref = nn.utils.spectral_norm(nn.Conv2d(6, 5, 3, padding=1))
    ref.train()
    x = torch.randn(2, 6, 9, 9)
    for _ in range(3):  # a few power iterations so that u, v are not their initial values
        ref(x)
    ref.eval()
    ours = SpectralNormConv2d(6, 5, 3, padding=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        expected = ref(x)
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the same entries and shapes as the hook leaves
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("name", list(SPEC))
def test_construct_no_required_args_and_strict_roundtrip(name):
    cls = SPEC[name][0]
    net = _build_meta(cls)
    other = _build_meta(cls)
    other.load_state_dict(net.state_dict(), strict=True, assign=True)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="image"):
        _build_meta(AppearanceFeatureExtractor)(torch.zeros(1, 4, 8, 8, device="meta"))
    with pytest.raises(ValueError, match="image"):
        _build_meta(MotionExtractor)(torch.zeros(3, 256, 256, device="meta"))
    w = _build_meta(WarpingNetwork)
    f = torch.zeros(2, 32, 16, 64, 64, device="meta")
    with pytest.raises(ValueError, match="feature_3d"):
        kp = torch.zeros(2, 21, 3, device="meta")
        w(torch.zeros(2, 512, 64, 64, device="meta"), kp, kp)
    with pytest.raises(ValueError, match="kp_driving"):
        w(f, torch.zeros(2, 21, 3, device="meta"), torch.zeros(1, 21, 3, device="meta"))
    with pytest.raises(ValueError, match="feature"):
        _build_meta(SPADEDecoder)(torch.zeros(1, 512, 64, 64, device="meta"))
