import pytest
import torch

from ditto_core.models.stitching import StitchingNetwork
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel

pytestmark = pytest.mark.golden


def test_stitching_matches_official(golden):
    g = golden("stitching")
    net = apply_weight_rule(StitchingNetwork(), g.salt)
    with torch.no_grad():
        delta = net.delta(g["kp_source"], g["kp_driving"])
        stitched = net(g["kp_source"], g["kp_driving"])
    assert_close_rel(delta, g["mlp_out"], 1e-5, "mlp_out")
    assert_close_rel(stitched, g["kp_driving_stitched"], 1e-5, "kp_driving_stitched")
