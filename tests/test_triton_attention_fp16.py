"""fp16 inputs with strong decays: the chunk factorisation exp(G_i - m) exp(m - G_j) must not
overflow fp16 (65504 ~ exp(11)). Found by `madc fuzz` as NaN gradients (gated_gla, fp16)."""

from __future__ import annotations

import os

import pytest
import torch

import madc

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1"
                                 and not torch.cuda.is_available(),
                                 reason="Triton needs CUDA or TRITON_INTERPRET=1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("spec", ["gla", "gated_gla"])
@pytest.mark.parametrize("scale", [4.0, 10.0])
def test_fp16_strong_decay_matches_reference(spec, scale):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = os.path.join(REPO, "ops", f"{spec}.scan")
    tri = madc.load(path, backend="triton").to(device)
    ref = madc.load(path, backend="reference").double()
    ref.load_state_dict(tri.state_dict())
    gen = torch.Generator().manual_seed(7)
    heads = tri.heads
    inputs = {n: torch.randn(1, 9, heads, *s, generator=gen) for n, s in tri.inputs.items()}
    inputs["g"] = -torch.rand(1, 9, heads, *tri.inputs["g"], generator=gen) * scale
    inputs = {n: x.half() for n, x in inputs.items()}  # the same fp16 values for both
    outs = {}
    for name, mod, dtype, dev in (("tri", tri, torch.float16, device),
                                  ("ref", ref, torch.float64, "cpu")):
        leaves = {n: x.to(dev, dtype).detach().clone().requires_grad_()
                  for n, x in inputs.items()}
        out = mod(**leaves)
        out.float().sum().backward()
        outs[name] = (out.detach().double().cpu(),
                      {n: x.grad.double().cpu() for n, x in leaves.items()})
    (o, g), (o_ref, g_ref) = outs["tri"], outs["ref"]
    assert torch.isfinite(o).all()
    assert (o - o_ref).norm() <= 1e-2 * o_ref.norm()
    for n in g_ref:
        assert torch.isfinite(g[n]).all(), n
        assert (g[n] - g_ref[n]).norm() <= 2e-2 * g_ref[n].norm(), n
