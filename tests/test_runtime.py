"""`madc.load`: the module's attributes, input validation (errors name the argument, got vs
expected), backend selection and the algebra verdicts it enforces."""

from __future__ import annotations

import os

import pytest
import torch
from codegen_util import REPO, load_zoo, make_inputs

import madc
import madc.runtime as rt
from madc.codegen.package import class_name
from madc.errors import CompileError
from madc.frontend import load_spec


@pytest.fixture(scope="module")
def ssm():
    return rt.load(str(REPO / "ops" / "selective_ssm.scan"), backend="chunked", D=3, N=2)


@pytest.fixture(scope="module")
def gla():
    return rt.load(str(REPO / "ops" / "gla.scan"), backend="reference", H=2, K=3, V=2)


def _inputs(module, batch=2, length=5, dtype=torch.float32):
    head = (module.heads,) if module.heads else ()
    return {n: torch.randn(batch, length, *head, *s, dtype=dtype)
            for n, s in module.inputs.items()}


def test_module_attributes(ssm, gla):
    assert list(ssm.inputs.items()) == [("x", (3,)), ("dt", (3,)), ("B", (2,)), ("C", (2,))]
    assert ssm.outputs == ("y",) and ssm.heads is None
    assert dict(ssm.state_shapes) == {"h": (3, 2)}
    assert gla.heads == 2 and dict(gla.state_shapes) == {"S": (3, 2)}
    assert {n for n, _ in ssm.named_parameters()} == {"A_log", "dt_bias", "D_skip"}
    assert madc.InputError is rt.InputError and issubclass(rt.InputError, ValueError)


def test_output_and_state_shapes(ssm, gla):
    y, s = ssm(**_inputs(ssm), return_state=True)
    assert y.shape == (2, 5, 3) and s.shape == (2, 3, 2)
    y, s = gla(**_inputs(gla), return_state=True)
    assert y.shape == (2, 5, 2, 2) and s.shape == (2, 2, 3, 2)
    x = _inputs(ssm)
    assert torch.equal(ssm(*x.values()), ssm(**x))


def test_several_outputs_and_states_are_tuples():
    module = load_zoo("mlstm", H=1, K=2, V=2)
    y, states = module(**make_inputs(module, 1, 4), return_state=True)
    assert isinstance(y, torch.Tensor) and len(states) == 2


def _error(module, match, **kwargs):
    with pytest.raises(madc.InputError, match=match):
        module(**kwargs)


def test_input_errors_name_the_argument(ssm):
    good = _inputs(ssm)
    _error(ssm, r"^z: unexpected input; expected inputs: x, dt, B, C", **good, z=good["x"])
    _error(ssm, r"^C: missing input", **{k: v for k, v in good.items() if k != "C"})
    _error(ssm, r"^B: expected shape \[2, 5, 2\], got \[2, 5, 3\]",
           **{**good, "B": torch.randn(2, 5, 3)})
    _error(ssm, r"^dt: expected shape \[2, 5, 3\], got \[2, 4, 3\]",
           **{**good, "dt": torch.randn(2, 4, 3)})
    _error(ssm, r"^x: expected shape \[\*, \*, 3\], got \[2, 5\]",
           **{**good, "x": torch.randn(2, 5)})
    _error(ssm, r"^C: expected dtype torch.float32, got torch.float64",
           **{**good, "C": good["C"].double()})
    _error(ssm, r"^x: expected a floating-point dtype, got torch.int64",
           **{**good, "x": torch.ones(2, 5, 3, dtype=torch.long)})
    _error(ssm, r"^dt: expected a torch.Tensor, got list", **{**good, "dt": [1.0]})
    _error(ssm, r"^C: expected device cpu, got meta",
           **{**good, "C": torch.empty(2, 5, 2, device="meta")})
    meta = {k: torch.empty(v.shape, device="meta") for k, v in good.items()}
    _error(ssm, r"^x: expected device cpu \(the module's parameters\), got meta", **meta)


def test_state_and_cu_seqlens_errors(ssm):
    good = _inputs(ssm, batch=1, length=6)
    _error(ssm, r"^initial_state: expected shape \[1, 3, 2\], got \[1, 3, 3\]", **good,
           initial_state=torch.zeros(1, 3, 3))
    _error(ssm, r"^initial_state: expected dtype torch.float32, got torch.float64", **good,
           initial_state=torch.zeros(1, 3, 2, dtype=torch.float64))
    cu = torch.tensor([0, 2, 6])
    _error(ssm, r"^initial_state: expected shape \[2, 3, 2\]", **good, cu_seqlens=cu,
           initial_state=torch.zeros(1, 3, 2))
    _error(ssm, r"^cu_seqlens: expected offsets from 0 to T = 6, got 0 to 5", **good,
           cu_seqlens=torch.tensor([0, 2, 5]))
    _error(ssm, r"^cu_seqlens: expected non-decreasing offsets", **good,
           cu_seqlens=torch.tensor([0, 4, 2, 6]))
    _error(ssm, r"^cu_seqlens: expected a 1-D integer tensor", **good,
           cu_seqlens=torch.tensor([0.0, 6.0]))
    _error(ssm, r"^cu_seqlens: packed sequences need batch size 1, got B = 2",
           **_inputs(ssm, batch=2, length=6), cu_seqlens=cu)


def test_backend_choice(ssm):
    with pytest.raises(ValueError, match="backend='triton': no Triton backend was emitted"):
        cls = _compiled_class("oscillatory_ssm", ("reference", "chunked"))
        cls(backend="triton")
    with pytest.raises(ValueError, match=r"backend: expected one of \('auto', 'reference'\)"):
        _compiled_class("oscillatory_ssm", ("reference",))(backend="chunked")
    with pytest.raises(ValueError, match="backend: expected one of"):
        rt.load(str(REPO / "ops" / "hgrn.scan"), backend="cuda")
    with pytest.raises(ValueError, match="unknown dim 'Q'; hgrn declares D"):
        rt.load(str(REPO / "ops" / "hgrn.scan"), Q=3)
    auto = rt.load(str(REPO / "ops" / "hgrn.scan"), D=2)
    module, choice = auto._backend_module(torch.device("cpu"))
    assert choice == "chunked" and module.__name__.endswith(".chunked")


def _compiled_class(name, backends):
    """The module class of a package compiled with only `backends`."""
    ir = load_spec(str(REPO / "ops" / f"{name}.scan"))
    folder = rt.compile_to_cache(ir, backends=backends)
    package = rt._import_package(folder, f"madc_test_{name}_{'_'.join(backends)}")
    return getattr(package, class_name(ir.name))


def test_refuted_closure_needs_promotion():
    path = str(REPO / "ops" / "deltanet.scan")
    with pytest.raises(CompileError) as err:
        rt.load(path)
    assert err.value.codes() == ["E0901"]
    assert "closure.S is refuted" in err.value.render()
    with pytest.warns(rt.PromotionWarning, match=r"O\(n\) -> O\(n\^3\)"):
        rt.load(path, allow_promotion=True, H=1, K=2, V=2)


def test_bad_spec_is_a_compile_error():
    with pytest.raises(CompileError):
        rt.load("scan broken\ndims D = 4\nstate h : [Q]\n")


def test_chunk_size_option(ssm):
    module = rt.load(str(REPO / "ops" / "selective_ssm.scan"), backend="chunked",
                     chunk_size=2, D=3, N=2)
    module.load_state_dict(ssm.state_dict())
    x = _inputs(ssm, length=7, dtype=torch.float64)
    assert module.chunk_size == 2
    torch.testing.assert_close(module.double()(**x), ssm.double()(**x), rtol=1e-12,
                               atol=1e-12)
    ssm.float()


def test_codegen_refusal_is_a_compile_error():
    """IR the torch printers cannot lower (identity - outer outside the real semiring) is
    reported as a CompileError with code E0902, never a traceback."""
    import dataclasses

    from madc import semiring

    ir = load_spec(str(REPO / "ops" / "deltanet.scan"))
    bad = dataclasses.replace(ir, semiring=semiring.builtin("log"))
    with pytest.raises(CompileError) as err:
        rt.emit_or_refuse(bad)
    assert err.value.codes() == ["E0902"]
    assert "needs the real semiring" in err.value.render()


def test_unproven_check_warns(monkeypatch):
    """An unproven verdict compiles with a warning (as `madc check` without --strict)."""
    import madc.algebra as algebra
    from madc.algebra_verdict import Check, Report

    ir = load_spec(str(REPO / "ops" / "hgrn.scan"))
    unproven = Report(ir.name, ir.path, (Check("semiring.add_assoc", "unproven", None,
                                               "no counterexample in 1000 trials"),))
    monkeypatch.setattr(algebra, "check_ir", lambda _ir: unproven)
    with pytest.warns(rt.UnprovenWarning, match="semiring.add_assoc is unproven"):
        rt.check_algebra(ir)


def test_chunked_module_traces_without_graph_breaks():
    """torch.compile sees one graph: validation and the backend call trace through (the
    backend module is imported at construction, not in forward)."""
    import torch._dynamo as dynamo

    module = rt.load(str(REPO / "ops" / "oscillatory_ssm.scan"), backend="chunked", P=2)
    x = _inputs(module, batch=1, length=5)
    explained = dynamo.explain(module)(**x)
    assert explained.graph_break_count == 0, explained.break_reasons
    dynamo.reset()


def test_triton_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    module = rt.load(str(REPO / "ops" / "hgrn.scan"), backend="triton", D=2)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    _error(module, r"backend=.triton. needs CUDA tensors \(or TRITON_INTERPRET=1",
           **_inputs(module))


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_cu_seqlens_without_initial_state_equals_separate_runs(backend):
    # Regression: the zero start states had B (=1) rows instead of one per packed sequence.
    mod = madc.load(REPO / "ops" / "hgrn.scan", backend=backend, D=3).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 3, dtype=torch.float64, generator=gen)
    g = -torch.rand(1, 6, 3, dtype=torch.float64, generator=gen)
    cu = torch.tensor([0, 1, 4, 6])
    packed, states = mod(x=x, g=g, cu_seqlens=cu, return_state=True)
    assert states.shape == (3, 3)
    for i in range(3):
        lo, hi = int(cu[i]), int(cu[i + 1])
        alone, state = mod(x=x[:, lo:hi], g=g[:, lo:hi], return_state=True)
        torch.testing.assert_close(packed[:, lo:hi], alone, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(states[i], state[0], rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                    reason="runs the Triton kernels in the interpreter")
@pytest.mark.parametrize("spec,dims", [("hgrn", {"D": 4}), ("mlstm", {"H": 2, "K": 16, "V": 16})])
def test_triton_module_under_torch_compile_is_one_custom_op(spec, dims):
    """torch.compile(fullgraph=True) sees the Triton backend as one torch.library custom op
    (no trace into the launches, no graph break); outputs, final states and gradients of
    inputs, params and the initial state equal the eager module's."""
    import torch._dynamo as dynamo

    module = rt.load(str(REPO / "ops" / f"{spec}.scan"), backend="triton", **dims)
    x = {n: t.requires_grad_() for n, t in _inputs(module, batch=2, length=9).items()}
    heads = (module.heads,) if module.heads else ()
    h0 = tuple(torch.randn(2, *heads, *s, requires_grad=True)
               for s in module.state_shapes.values())
    init = h0[0] if len(h0) == 1 else h0

    def run(fn):
        out, state = fn(**x, initial_state=init, return_state=True)
        outs = out if isinstance(out, tuple) else (out,)
        states = state if isinstance(state, tuple) else (state,)
        leaves = list(x.values()) + list(module.parameters()) + list(h0)
        loss = sum((o.float() ** 2).sum() for o in outs + states)
        return [t.detach() for t in outs + states], torch.autograd.grad(loss, leaves)

    want = run(module)
    explained = dynamo.explain(module)(**x, initial_state=init, return_state=True)
    assert explained.graph_break_count == 0, explained.break_reasons
    got = run(torch.compile(module, backend="aot_eager", fullgraph=True))
    dynamo.reset()
    for a, b in zip(got[0] + list(got[1]), want[0] + list(want[1])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_building_the_custom_op_leaves_the_rng_alone():
    """The op is built at construction; it must not draw from torch's RNG (a spec's param
    inits do: selective_ssm's dt_bias is uniform)."""
    import sys

    module = rt.load(str(REPO / "ops" / "selective_ssm.scan"), backend="triton")
    package = sys.modules[type(module).__module__]
    package._OPS.clear()
    state = torch.random.get_rng_state()
    package._custom_op()
    assert torch.equal(torch.random.get_rng_state(), state)
