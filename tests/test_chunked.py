"""The chunked backend equals the sequential reference (float64, relative error <= 1e-10) on
every zoo spec: outputs, final states and gradients, at awkward lengths and chunk sizes that do
not divide T, with initial states and packed (cu_seqlens) batches."""

from __future__ import annotations

import pytest
import torch
from codegen_util import ZOO, as_tuple, load_zoo, make_inputs, make_state, rel_err, tiny_dims

TOL = 1e-10


def _pair(name, **dims):
    dims = dims or tiny_dims(name)
    ref = load_zoo(name, "reference", **dims)
    chunked = load_zoo(name, "chunked", **dims)
    chunked.load_state_dict(ref.state_dict())
    return ref, chunked


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("length,chunk", [(1, 64), (7, 3), (64, 16), (100, 64)])
def test_forward_and_final_state(name, length, chunk):
    ref, chunked = _pair(name)
    chunked.chunk_size = chunk
    inputs = make_inputs(ref, 2, length, seed=length)
    h0 = make_state(ref, 2, seed=length + 1)
    y_ref, s_ref = ref(**inputs, initial_state=h0, return_state=True)
    y, s = chunked(**inputs, initial_state=h0, return_state=True)
    assert rel_err(y, y_ref) <= TOL
    assert rel_err(s, s_ref) <= TOL


@pytest.mark.parametrize("name", ["selective_ssm", "log_ssm", "tropical_ssm", "gla",
                                  "circulant_ssm", "deltanet", "mlstm"])
def test_long_sequence(name):
    """T = 1000 with the smallest dims (the reference is a Python loop)."""
    dims = {d: (1 if d == "H" else 2) for d in tiny_dims(name)}
    ref, chunked = _pair(name, **dims)
    inputs = make_inputs(ref, 1, 1000, seed=3)
    y_ref, s_ref = ref(**inputs, return_state=True)
    y, s = chunked(**inputs, return_state=True)
    assert rel_err(y, y_ref) <= TOL
    assert rel_err(s, s_ref) <= TOL


@pytest.mark.parametrize("name", ZOO)
def test_gradients_match(name):
    """Gradients w.r.t. every input, param and the initial state."""
    ref, chunked = _pair(name)
    chunked.chunk_size = 5
    grads = []
    for module in (ref, chunked):
        inputs = make_inputs(module, 2, 13, seed=7, grad=True)
        h0 = make_state(module, 2, seed=8, grad=True)
        y = as_tuple(module(**inputs, initial_state=h0))
        weights = [torch.randn(t.shape, generator=torch.Generator().manual_seed(9),
                               dtype=t.dtype) for t in y]
        loss = sum((t * w).sum() for t, w in zip(y, weights))
        leaves = list(inputs.values()) + list(as_tuple(h0)) + list(module.parameters())
        grads.append(torch.autograd.grad(loss, leaves, allow_unused=True))
    for g_ref, g in zip(*grads):
        if g_ref is None:
            assert g is None or not g.any()
            continue
        assert rel_err(g, g_ref) <= TOL


@pytest.mark.parametrize("name", ["selective_ssm", "log_ssm", "gla", "oscillatory_ssm",
                                  "circulant_ssm", "mlstm", "deltanet"])
def test_gradcheck(name):
    """torch.autograd.gradcheck of the chunked backend on a tiny problem."""
    dims = {d: (1 if d == "H" else 2) for d in tiny_dims(name)}
    _, chunked = _pair(name, **dims)
    chunked.chunk_size = 2
    inputs = make_inputs(chunked, 1, 5, seed=11, grad=True)
    h0 = make_state(chunked, 1, seed=12, grad=True)
    names, nstate = list(inputs), len(chunked.state_shapes)

    def run(*args):
        state = args[len(names):]
        y, s = chunked(**dict(zip(names, args[:len(names)])),
                       initial_state=state[0] if nstate == 1 else state, return_state=True)
        return as_tuple(y) + as_tuple(s)

    assert torch.autograd.gradcheck(run, tuple(inputs.values()) + as_tuple(h0))


@pytest.mark.parametrize("name", ["selective_ssm", "gla", "tropical_ssm", "oscillatory_ssm",
                                  "mlstm", "pd_ssm"])
@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_cu_seqlens_equals_separate_runs(name, backend):
    module = load_zoo(name, backend, **tiny_dims(name))
    module.chunk_size = 4
    lengths = [5, 1, 9, 0, 3]
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    packed = make_inputs(module, 1, sum(lengths), seed=5)
    h0 = make_state(module, len(lengths), seed=6)
    y, s = module(**packed, cu_seqlens=cu, initial_state=h0, return_state=True)
    for i, (begin, end) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        h0_i = tuple(t[i:i + 1] for t in as_tuple(h0))
        if begin == end:
            assert rel_err(tuple(t[i:i + 1] for t in as_tuple(s)), h0_i) == 0.0
            continue
        part = {k: v[:, begin:end] for k, v in packed.items()}
        y_i, s_i = module(**part, initial_state=h0_i[0] if len(h0_i) == 1 else h0_i,
                          return_state=True)
        assert rel_err(tuple(t[:, begin:end] for t in as_tuple(y)), y_i) <= TOL
        assert rel_err(tuple(t[i:i + 1] for t in as_tuple(s)), s_i) <= TOL


@pytest.mark.parametrize("name", ["selective_ssm", "log_ssm", "gla", "signed_perm_ssm",
                                  "mlstm"])
@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_initial_state_chaining(name, backend):
    """Running [0:t] then [t:T] from the carried state equals one run over [0:T]."""
    module = load_zoo(name, backend, **tiny_dims(name))
    module.chunk_size = 4
    inputs = make_inputs(module, 2, 19, seed=2)
    y, s = module(**inputs, return_state=True)
    first = {k: v[:, :8] for k, v in inputs.items()}
    rest = {k: v[:, 8:] for k, v in inputs.items()}
    y1, s1 = module(**first, return_state=True)
    y2, s2 = module(**rest, initial_state=s1, return_state=True)
    joined = tuple(torch.cat([a, b], dim=1) for a, b in zip(as_tuple(y1), as_tuple(y2)))
    assert rel_err(joined, y) <= TOL
    assert rel_err(s2, s) <= TOL


def test_zero_initial_state_is_the_default():
    """initial_state=None means the semiring zero (-inf in the log semiring)."""
    module = load_zoo("log_ssm", "chunked", D=3)
    inputs = make_inputs(module, 2, 6)
    zero = torch.full((2, 3), -torch.inf, dtype=torch.float64)
    assert rel_err(module(**inputs, initial_state=zero), module(**inputs)) == 0.0


@pytest.mark.parametrize("name", ["log_ssm", "tropical_ssm"])
def test_minus_inf_inputs_give_finite_gradients(name):
    """-inf injected terms on the zero initial state keep outputs at -inf there and every
    gradient finite (log: zero-guarded softmax weights; max: ties split), in both backends."""
    grads = []
    for backend in ("reference", "chunked"):
        module = load_zoo(name, backend, D=3)
        module.chunk_size = 2
        inputs = make_inputs(module, 1, 6, seed=4)
        x = inputs["x"].detach().clone()
        x[:, :3, 0] = -torch.inf
        x.requires_grad_(True)
        y = module(x=x, g=inputs["g"])
        assert torch.equal(y[:, :3, 0], torch.full((1, 3), -torch.inf, dtype=y.dtype))
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype)
        (g,) = torch.autograd.grad((torch.where(torch.isfinite(y), y, 0) * w).sum(), x)
        assert torch.isfinite(g).all()
        grads.append(g)
    assert rel_err(grads[1], grads[0]) <= TOL
