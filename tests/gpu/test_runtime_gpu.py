"""GPU checks of the runtime: every PyTorch backend runs on CUDA tensors (no stray CPU
tensors in the emitted code), `backend="auto"` picks the Triton module on CUDA when one was
emitted, and its results agree with the float64 reference."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen_util import PROMOTED, REPO, ZOO, as_tuple, make_inputs, rel_err  # noqa: E402

import madc.runtime as rt  # noqa: E402


def _load(name, backend, **dims):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rt.PromotionWarning)
        return rt.load(str(REPO / "ops" / f"{name}.scan"), backend=backend,
                       allow_promotion=name in PROMOTED, **dims)


def _small(name):
    return {d: (2 if d == "H" or name == "monarch_ssm" else 8) for d in
            _load(name, "reference").dims}


def _cuda(inputs):
    return {k: v.cuda() for k, v in inputs.items()}


@pytest.mark.parametrize("name", ZOO)
def test_chunked_and_reference_on_cuda(name):
    dims = _small(name)
    ref = _load(name, "reference", **dims).double()
    chunked = _load(name, "chunked", **dims).double()
    chunked.load_state_dict(ref.state_dict())
    chunked.chunk_size = 16
    inputs = make_inputs(ref, 2, 40)
    y_cpu, s_cpu = ref(**inputs, return_state=True)
    ref.cuda()
    chunked.cuda()
    y_ref, s_ref = ref(**_cuda(inputs), return_state=True)
    y, s = chunked(**_cuda(inputs), return_state=True)
    assert all(t.is_cuda for t in as_tuple(y) + as_tuple(s))
    assert rel_err(tuple(t.cpu() for t in as_tuple(y_ref)), y_cpu) <= 1e-10
    assert rel_err(y, y_ref) <= 1e-10
    assert rel_err(s, s_ref) <= 1e-10


@pytest.mark.parametrize("name", ZOO)
def test_auto_uses_triton_on_cuda(name):
    dims = _small(name)
    auto = _load(name, "auto", **dims).cuda()
    package = sys.modules[type(auto).__module__]
    module, choice = auto._backend_module(torch.device("cuda"))
    if package.TRITON_MODULE is None:
        assert choice == "chunked"
        return
    assert choice == "triton" and module.__name__.endswith(package.TRITON_MODULE)
    ref = _load(name, "reference", **dims).double().cuda()
    ref.load_state_dict(auto.state_dict())
    inputs = _cuda(make_inputs(ref, 2, 40, seed=1))
    y = auto(**{k: v.float() for k, v in inputs.items()})
    assert rel_err(tuple(t.double() for t in as_tuple(y)), ref(**inputs)) <= 1e-4


@pytest.mark.parametrize("name", ["hgrn", "gla", "pd_ssm"])
def test_triton_custom_op_under_inductor(name):
    """torch.compile (inductor, fullgraph) of a Triton-backed module: the custom op path gives
    the eager module's outputs and gradients."""
    module = _load(name, "triton", **_small(name)).cuda()
    inputs = _cuda(make_inputs(module, batch=2, length=33))
    x = {k: v.float().requires_grad_() for k, v in inputs.items()}

    def run(fn):
        out = as_tuple(fn(**x))
        grads = torch.autograd.grad(sum((o.float() ** 2).sum() for o in out), list(x.values()))
        return [o.detach() for o in out] + list(grads)

    want = run(module)
    got = run(torch.compile(module, fullgraph=True))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
