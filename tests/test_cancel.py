"""Cancel inside a render batch: the renderer checks between warp and decode, so a Cancel during a long batch does
not wait for the decoder."""

from __future__ import annotations

import pytest
import torch

from ditto_core.render import RendererConfig
from ditto_core.render.compositor import render_batch
from ditto_core.render.renderer import Renderer


class Stop(Exception):
    pass


def _renderer(calls: list[str]) -> Renderer:
    def warp(f_s, x_s, x_d):
        calls.append("warp")
        return torch.zeros(x_d.shape[0], 256, 64, 64)

    def decoder(feat):
        calls.append("decode")
        return torch.full((feat.shape[0], 3, 512, 512), 0.5)

    return Renderer(warp, decoder, "cpu", RendererConfig("fp32", 2))


def test_cancel_between_warp_and_decode():
    calls: list[str] = []
    checks = []

    def cancel():
        checks.append(list(calls))
        raise Stop

    f_s, x_s, x_d = torch.zeros(1, 32, 16, 64, 64), torch.zeros(1, 21, 3), torch.zeros(2, 21, 3)
    with pytest.raises(Stop):
        render_batch(_renderer(calls), f_s, x_s, x_d, [0, 0], cancel)
    assert calls == ["warp"] and checks == [["warp"]]  # checked after the warp; the decoder never ran


def test_no_cancel_renders_the_batch():
    calls: list[str] = []
    f_s, x_s, x_d = torch.zeros(1, 32, 16, 64, 64), torch.zeros(1, 21, 3), torch.zeros(2, 21, 3)
    out = render_batch(_renderer(calls), f_s, x_s, x_d, [0, 0], lambda: None)
    assert calls == ["warp", "decode"] and out.shape == (2, 512, 512, 3) and float(out.max()) == 127.5
