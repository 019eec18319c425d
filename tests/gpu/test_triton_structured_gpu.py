"""Structured Triton kernels on CUDA == the float64 reference (outputs, states, gradients).

Skipped without CUDA. Shapes are larger than the CPU interpreter tests: default dims of the
zoo specs, prime T, several heads/rows, packed sequences. Run with
`python -m pytest tests/gpu/test_triton_structured_gpu.py -q`.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from madc.codegen import triton_structured  # noqa: E402
from madc.codegen.package import emit_package, write_package  # noqa: E402
from madc.frontend import load_spec  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECS = ("oscillatory_ssm", "signed_perm_ssm", "pd_ssm", "circulant_ssm", "monarch_ssm",
         "cd_ssm", "deltanet")
TOL = 1e-5


def _load(name, root):
    ir = load_spec(os.path.join(ROOT, "ops", f"{name}.scan"))
    files = emit_package(ir, backends=("reference",))
    files["triton_structured.py"] = triton_structured.emit(ir)
    tag = f"tsgpu_{name}"
    write_package(files, root / tag)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return (ir, importlib.import_module(f"{tag}.reference"),
            importlib.import_module(f"{tag}.triton_structured"))


def _rel(got, want) -> float:
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("chunk_size", [0, 16])
def test_matches_reference_on_cuda(name, packed, chunk_size, tmp_path):
    """One pass (chunk_size=0) and the chunk-parallel passes (16 tokens a chunk)."""
    ir, ref, tri = _load(name, tmp_path)
    dims = dict(ir.dims)
    g = torch.Generator(device="cuda").manual_seed(0)
    B, T = (1, 97) if packed else (3, 61)
    cu = torch.tensor([0, 30, 31, 97], device="cuda") if packed else None
    n_seq = B if cu is None else cu.numel() - 1
    heads = (dims[ir.heads],) if ir.heads else ()

    def rnd(*shape):
        return torch.randn(shape, generator=g, device="cuda", dtype=torch.float64)

    def size(shape):
        return tuple(dims[d] if isinstance(d, str) else d for d in shape)

    # random Monarch factors grow the state ~2x a step: keep them contracting
    scale = 0.3 if name == "monarch_ssm" else 1.0
    inputs = {i.name: (scale * rnd(B, T, *heads, *size(i.shape))).requires_grad_()
              for i in ir.inputs}
    params = {p.name: rnd(*(heads if p.per_head else ()), *size(p.shape)).requires_grad_()
              for p in ir.params}
    states = tuple(rnd(n_seq, *heads, *size(s.shape)).requires_grad_() for s in ir.states)
    want_y, want_h = ref.scan(inputs, params, dims, states, cu)
    i32 = {k: v.detach().float().requires_grad_() for k, v in inputs.items()}
    p32 = {k: v.detach().float().requires_grad_() for k, v in params.items()}
    s32 = tuple(v.detach().float().requires_grad_() for v in states)
    got_y, got_h = tri.scan(i32, p32, dims, s32, cu, chunk_size=chunk_size)
    for got, want in zip(got_y + got_h, want_y + want_h):
        assert _rel(got, want) <= TOL
    weights = [torch.randn(w.shape, generator=g, device="cuda", dtype=torch.float64)
               for w in want_y + want_h]
    loss_want = sum((w * x).sum() for w, x in zip(weights, want_y + want_h))
    loss_got = sum((w * x.double()).sum() for w, x in zip(weights, got_y + got_h))
    leaves = list(inputs.values()) + list(params.values()) + list(states)
    leaves32 = list(i32.values()) + list(p32.values()) + list(s32)
    want_g = torch.autograd.grad(loss_want, leaves)
    got_g = torch.autograd.grad(loss_got, leaves32)
    for got, want in zip(got_g, want_g):
        assert _rel(got, want) <= TOL
