"""Golden parity of the motion DiT (lmdm_forward, lmdm_ddim) and its checkpoint layout."""

import ast
import re

import pytest
import torch

from ditto_core.audio2motion import Audio2MotionConfig, sample_window
from ditto_core.config import DittoDefaults
from ditto_core.models.lmdm import MotionDecoder
from ditto_core.runtime import SamplingOptions
from ditto_core.runtime.models import release_defaults
from ditto_core.sampler import CosineSchedule, ddim_times
from ditto_core.testing.weight_rule import apply_weight_rule

from conftest import assert_close_rel, rel_l2

pytestmark = [pytest.mark.golden, pytest.mark.usefixtures("one_torch_thread")]


def production_config() -> Audio2MotionConfig:
    """The DiT settings a job samples with by default: the release's offline settings as ``DittoModels.load`` builds
    them for a models folder without a config pickle (the official code defaults, through
    ``official.audio2motion_config``), under default :class:`SamplingOptions`. The CFG weight the golden tests use is
    this one's ``guidance``, never a number written here."""
    return SamplingOptions().config(release_defaults(DittoDefaults()).offline)


@pytest.mark.parametrize("name, key, pattern", [
    ("lmdm_forward", "note", r"guided \(weight\s+([0-9.]+)\)"),
    ("e2e_offline", "sampling", r"CFG weight\s+([0-9.]+)"),
], ids=["lmdm_forward", "e2e_offline"])
def test_production_guidance_is_the_golden_weight(golden, name, key, pattern):
    """The CFG weight each golden file records for the official run (its metadata) is the production default; the
    tests take the weight from production, so this ties the two."""
    text = golden(name).meta.get(key, "")
    m = re.search(pattern, text)
    assert m is not None, f"{name}'s {key!r} metadata names no CFG weight: {text!r}"
    assert production_config().guidance == float(m.group(1))
    assert release_defaults(DittoDefaults()).online.guidance == float(m.group(1))


def test_state_dict_layout_matches_checkpoint():
    sd = MotionDecoder().state_dict()
    assert len(sd) == 249
    assert not any(k.startswith("model.") for k in sd)
    rot = [k for k in sd if k.endswith("rotary.freqs")]
    assert len(rot) == 11
    shapes = {
        "null_cond_embed": (1, 80, 512),
        "null_cond_hidden": (1, 512),
        "rotary.freqs": (256,),
        "time_mlp.1.weight": (2048, 512),
        "to_time_cond.0.weight": (512, 2048),
        "to_time_tokens.0.weight": (1024, 2048),
        "input_projection.weight": (512, 530),
        "cond_projection.weight": (512, 1103),
        "cond_encoder.0.self_attn.in_proj_weight": (1536, 512),
        "cond_encoder.1.rotary.freqs": (256,),
        "non_attn_cond_projection.3.weight": (512, 512),
        "seqTransDecoder.stack.7.multihead_attn.in_proj_weight": (1536, 512),
        "seqTransDecoder.stack.0.film3.block.1.weight": (1024, 512),
        "seqTransDecoder.stack.3.norm3.bias": (512,),
        "final_layer.weight": (265, 512),
    }
    for k, shape in shapes.items():
        assert tuple(sd[k].shape) == shape, k
    n_params = sum(p.numel() for p in MotionDecoder().parameters())
    assert abs(n_params / 1e6 - 47.79) < 0.01
    # rotary frequencies: 1 / 1e4 ** (2i / 512), computed independently in float64
    ref = 1.0 / 10000.0 ** (torch.arange(0, 512, 2, dtype=torch.float64) / 512)
    assert_close_rel(sd["rotary.freqs"], ref, 1e-6, "rotary.freqs")


@pytest.fixture(scope="module")
def lmdm_forward_case():
    from conftest import load_golden

    g = load_golden("lmdm_forward")
    return g, apply_weight_rule(MotionDecoder(), g.salt)


@pytest.mark.parametrize("t", [999, 500, 19])
def test_lmdm_forward(lmdm_forward_case, t):
    g, model = lmdm_forward_case
    sched = CosineSchedule()
    times = torch.tensor([t])
    weight = production_config().guidance
    with torch.no_grad():
        x0_cond = model(g["x"], g["cond_frame"], g["cond"], times)
        x_start = model.guided(g["x"], g["cond_frame"], g["cond"], times, weight, batched=False)
        x_start_b = model.guided(g["x"], g["cond_frame"], g["cond"], times, weight, batched=True)
    pred_noise = sched.predict_noise(g["x"], t, x_start)
    assert_close_rel(x0_cond, g[f"x0_cond_only_t{t}"], 1e-4, f"x0_cond_only_t{t}")
    assert_close_rel(x_start, g[f"x_start_t{t}"], 1e-4, f"x_start_t{t}")
    assert_close_rel(pred_noise, g[f"pred_noise_t{t}"], 1e-4, f"pred_noise_t{t}")
    # one batch of 2 (cond + uncond) is the same computation as two passes, up to float rounding
    assert_close_rel(x_start_b, g[f"x_start_t{t}"], 1e-4, f"x_start_t{t} (batched CFG)")
    assert rel_l2(x_start_b, x_start) < 1e-5


def test_lmdm_forward_batch_rows_independent(lmdm_forward_case):
    """A batch of 2 different rows gives each row's single-row result (batch-friendly forward)."""
    g, model = lmdm_forward_case
    x2 = torch.cat([g["x"], g["x"].flip(1)])
    cf2 = torch.cat([g["cond_frame"], -g["cond_frame"]])
    c2 = torch.cat([g["cond"], g["cond"].flip(1)])
    times = torch.tensor([500, 19])
    with torch.no_grad():
        both = model.guided(x2, cf2, c2, times)
        first = model.guided(x2[:1], cf2[:1], c2[:1], times[:1])
        second = model.guided(x2[1:], cf2[1:], c2[1:], times[1:])
    assert rel_l2(both[:1], first) < 1e-5
    assert rel_l2(both[1:], second) < 1e-5


def test_lmdm_forward_rejects_bad_shapes(lmdm_forward_case):
    g, model = lmdm_forward_case
    with pytest.raises(ValueError, match="cond must be"):
        model(g["x"], g["cond_frame"], g["cond"][..., :1000], torch.tensor([1]))
    with pytest.raises(ValueError, match="cond_frame must be"):
        model(g["x"], g["cond_frame"][:, :200], g["cond"], torch.tensor([1]))
    with pytest.raises(ValueError, match="times must be"):
        model(g["x"], g["cond_frame"], g["cond"], torch.tensor([1, 2]))


def test_lmdm_ddim(golden):
    g = golden("lmdm_ddim")
    steps = int(g.meta["steps"])
    if "times" in g.meta:
        assert ddim_times(steps) == [tuple(p) for p in ast.literal_eval(g.meta["times"])]
    model = apply_weight_rule(MotionDecoder(), g.salt)
    # one window as production samples it (sample_window: DDIM with the production CFG weight and batching)
    cfg = production_config().replace(steps=steps)
    out = sample_window(model, g["cond_frame"][0], g["cond"][0], g["x_init"][0], g["noises"], CosineSchedule(), cfg)
    assert_close_rel(out[None], g["out"], 1e-3, "ddim out")
