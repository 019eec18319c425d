"""Triton vector backend == float64 oracle, forward, final state and every gradient.

Runs the Triton kernels under `TRITON_INTERPRET=1` on CPU (tiny shapes). The oracle is the
reference backend (`madc.load(..., backend="reference")`) when it is importable, else the same
emitted module with its scan core replaced by a float64 Python loop of the semiring
recurrence (autograd through the loop).
"""

from __future__ import annotations

import glob
import importlib.util
import math
import os
import sys

import pytest
import sympy
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from madc.backward import scan_adjoint, step_weights  # noqa: E402
from madc.codegen import triton_vector  # noqa: E402
from madc.codegen.triton_print import TRITON, SympyPrinter, held_axes, place  # noqa: E402
from madc.frontend import load_spec  # noqa: E402
from madc.semiring import builtin  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = sorted(glob.glob(os.path.join(ROOT, "ops", "*.scan"))
               + glob.glob(os.path.join(ROOT, "examples", "scans", "*.scan")))
SMALL = {"D": 5, "N": 3, "K": 4, "V": 3, "P": 3, "H": 2}
TOL = 1e-5


def _emit(path, tmp_path):
    ir = load_spec(path)
    if not triton_vector.supports(ir):
        return ir, None
    file = tmp_path / f"tv_{ir.name}.py"
    file.write_text(triton_vector.emit(ir))
    spec = importlib.util.spec_from_file_location(f"tv_{ir.name}", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return ir, mod


def _loop_core(mod):
    """A float64 sequential scan with the module's own semiring ops, as `_ScanFunction`."""

    def apply(a, b, h0, seg, *_):  # *_: the uniform-rows hint, the options
        shape = a.shape  # scanned as [rows, C]
        a, b = a.reshape(-1, h0.shape[-1]).double(), b.reshape(-1, h0.shape[-1]).double()
        h = h0.double()
        rows, finals = [], []
        bounds = seg.tolist()
        for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            state = h[n]
            for t in range(lo, hi):
                state = mod._sadd(mod._smul(a[t], state), b[t])
                rows.append(state)
            finals.append(state)
        return torch.stack(rows).reshape(shape), torch.stack(finals)

    return apply


def _inputs(ir, dims, B, T, dtype, seed):
    """Random inputs; log-space forget gates (`g`) negative, as in trained models, so the
    fp32-vs-fp64 comparison measures the kernel rather than an exploding recurrence."""
    g = torch.Generator().manual_seed(seed)
    heads = (dims[ir.heads],) if ir.heads else ()
    inputs = {i.name: torch.randn((B, T) + heads + tuple(dims[d] if isinstance(d, str) else d
                                                         for d in i.shape), generator=g,
                                  dtype=dtype) for i in ir.inputs}
    if "g" in inputs:
        inputs["g"] = -inputs["g"].abs()
    params = {p.name: 0.5 * torch.randn(heads * p.per_head + tuple(
        dims[d] if isinstance(d, str) else d for d in p.shape), generator=g, dtype=dtype)
        for p in ir.params}
    return inputs, params


def _states(ir, dims, N, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    heads = (dims[ir.heads],) if ir.heads else ()
    return tuple(torch.randn((N,) + heads + tuple(dims[d] if isinstance(d, str) else d
                                                  for d in s.shape), generator=g, dtype=dtype)
                 for s in ir.states)


def _rel_err(x, ref):
    """Max-norm relative error; infinities must match exactly (same sign, same place)."""
    x, ref = x.double(), ref.double()
    inf = torch.isinf(ref)
    assert torch.equal(inf, torch.isinf(x)) and torch.equal(x[inf], ref[inf])
    assert not torch.isnan(x).any() and not torch.isnan(ref).any()
    x, ref = x[~inf], ref[~inf]
    if ref.numel() == 0:
        return 0.0
    return ((x - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def _run(mod, inputs, params, dims, h0, cu, oracle, **options):
    leaves = list(inputs.values()) + list(params.values()) + list(h0 or ())
    for leaf in leaves:
        leaf.requires_grad_(True)
    saved = mod._ScanFunction.apply
    if oracle:
        mod._ScanFunction.apply = _loop_core(mod)
    try:
        outs, finals = mod.scan(inputs, params, dims, h0, cu, **options)
    finally:
        mod._ScanFunction.apply = saved
    g = torch.Generator().manual_seed(7)
    loss = sum((o.double() * torch.randn(o.shape, generator=g, dtype=torch.float64)).sum()
               for o in outs + finals)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return outs + finals, grads


def _compare(ir, mod, dims, B, T, h0=False, cu=None, seed=0, inputs=None, **options):
    base, params = _inputs(ir, dims, B, T, torch.float64, seed)
    base = inputs if inputs is not None else base
    N = B if cu is None else len(cu) - 1
    states = _states(ir, dims, N, torch.float64, seed + 1) if h0 else None
    cu_t = None if cu is None else torch.tensor(cu)

    def copy(d, dtype):
        return None if d is None else type(d)(v.detach().to(dtype) for v in d)

    ref_vals, ref_grads = _run(mod, dict(zip(base, copy(tuple(base.values()), torch.float64))),
                               dict(zip(params, copy(tuple(params.values()), torch.float64))),
                               dims, copy(states, torch.float64), cu_t, oracle=True)
    vals, grads = _run(mod, dict(zip(base, copy(tuple(base.values()), torch.float32))),
                       dict(zip(params, copy(tuple(params.values()), torch.float32))),
                       dims, copy(states, torch.float32), cu_t, oracle=False, **options)
    for v, r in zip(vals, ref_vals):
        assert v.dtype == torch.float32
        assert _rel_err(v, r) <= TOL
    for v, r in zip(grads, ref_grads):
        assert (v is None) == (r is None)
        if r is not None:
            assert _rel_err(v, r) <= TOL


def _dims(ir):
    return ir.dim_sizes(**{k: v for k, v in SMALL.items() if k in dict(ir.dims)})


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.basename(p))
def test_every_elementwise_spec_matches_oracle(path, tmp_path):
    ir, mod = _emit(path, tmp_path)
    if mod is None:
        assert any(u.transition.side != "elementwise" for u in ir.updates)
        pytest.skip("not an elementwise spec")
    dims = _dims(ir)
    _compare(ir, mod, dims, B=2, T=37, h0=True)


@pytest.mark.parametrize("T", [1, 13, 16])
def test_lengths(T, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "ops", "hgrn.scan"), tmp_path)
    _compare(ir, mod, _dims(ir), B=2, T=T)


@pytest.mark.parametrize("name", ["hgrn", "log_ssm", "selective_ssm"])
def test_cu_seqlens(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "ops", f"{name}.scan"), tmp_path)
    _compare(ir, mod, _dims(ir), B=1, T=40, h0=True, cu=[0, 1, 18, 18, 40])


def _minus_inf_ab(g):
    """a, b [2, 29, 6] float64 with -inf injections after a finite start and -inf
    coefficients (a forgotten past), never both at one step: torch's gradient of
    logaddexp(-inf, -inf) is 0/0 = nan, ours is 0."""
    a = -torch.rand(2, 29, 6, generator=g, dtype=torch.float64)
    b = torch.randn(2, 29, 6, generator=g, dtype=torch.float64)
    b[:, 3::4, :2] = -math.inf
    a[:, 5::7, 2:] = -math.inf
    return a, b


@pytest.mark.parametrize("name", ["log_scan", "tropical_scan"])
def test_minus_inf_inputs(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    dims = {"D": 6}
    g = torch.Generator().manual_seed(3)
    a, b = _minus_inf_ab(g)
    _compare(ir, mod, dims, B=2, T=29, inputs={"a": a, "b": b})


def test_forward_all_minus_inf(tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    a = torch.zeros(1, 20, 4)
    b = torch.full((1, 20, 4), -math.inf)
    (y,), (h,) = mod.scan({"a": a, "b": b}, {}, {"D": 4}, None, None)
    assert torch.equal(y, b) and torch.equal(h, torch.full((1, 4), -math.inf))


def test_exact_ties_split_evenly_like_torch_maximum(tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "tropical_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(5)
    a = torch.zeros(2, 21, 4, dtype=torch.float64)
    b = torch.randint(0, 3, (2, 21, 4), generator=g).double()  # many exact ties with h
    _compare(ir, mod, {"D": 4}, B=2, T=21, inputs={"a": a, "b": b})


def test_log_lowering_fallback_for_wide_spread(tmp_path):
    # cumulative decay of -30 per step: the max-shifted linear-domain sum would underflow, the
    # kernel must fall back to the generic combine and stay exact
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    a = torch.full((1, 33, 3), -30.0, dtype=torch.float64)
    b = torch.randn(1, 33, 3, dtype=torch.float64)
    _compare(ir, mod, {"D": 3}, B=1, T=33, inputs={"a": a, "b": b})


@pytest.mark.parametrize("options", [{}, {"chunk_parallel": True, "chunk_size": 8}],
                         ids=["sequential", "chunk-parallel"])
def test_log_lowering_fixup_redoes_flagged_programs(tmp_path, options):
    # D = 40 is three channel blocks of 16 in the interpreter: a -inf coefficient in channel 3
    # and a decay of -30 per step in channel 20 flag two programs, the third keeps the
    # lowering's result; the fix-up pass must leave every channel exact
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(21)
    a = -torch.rand(2, 45, 40, generator=g, dtype=torch.float64)
    a[:, :, 20] = -30.0
    a[0, 11, 3] = -math.inf
    b = torch.randn(2, 45, 40, generator=g, dtype=torch.float64)
    _compare(ir, mod, {"D": 40}, B=2, T=45, h0=True, inputs={"a": a, "b": b}, **options)


@pytest.mark.parametrize("name", ["log_scan", "linear_scan", "tropical_scan"])
def test_plain_scan_inference_routing(name, tmp_path, monkeypatch):
    # these scans have nothing to fuse (inputs are the coefficients, the output is the
    # state): the log scan's inference forward takes the unfused log lowering (measured
    # faster on the GPU) unless fused=True or log_lowering=False asks otherwise; the other
    # semirings keep the fused kernel (faster at its best tile), as does any spec with a
    # prologue
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    calls = []
    monkeypatch.setattr(mod, f"{name}_fused_fwd", lambda *a: calls.append(a) or ((), ()))
    x = {"a": -torch.rand(1, 9, 4), "b": torch.randn(1, 9, 4)}
    with torch.no_grad():
        outs, _ = mod.scan(x, {}, {"D": 4}, None, None)
        assert len(calls) == (name != "log_scan")
        assert name != "log_scan" or outs[0].shape == (1, 9, 4)
        mod.scan(x, {}, {"D": 4}, None, None, fused=True)
        assert len(calls) == 1 + (name != "log_scan")


def test_fused_log_lowering_fixup(tmp_path):
    # the fused forward of a log-semiring spec: a gate driving one channel's decay to ~-40
    # per step flags its program only; fused and unfused agree with the oracle
    ir, mod = _emit(os.path.join(ROOT, "ops", "log_ssm.scan"), tmp_path)
    assert mod.HAS_FUSED
    dims = {"D": 40}
    g = torch.Generator().manual_seed(22)
    x = torch.randn(2, 37, 40, generator=g, dtype=torch.float64)
    gate = torch.randn(2, 37, 40, generator=g, dtype=torch.float64)
    gate[:, :, 25] = -40.0
    ref, _ = _run(mod, {"x": x.clone(), "g": gate.clone()}, {}, dims, None, None, oracle=True)
    for fused in (True, False):
        with torch.no_grad():
            outs, finals = mod.scan({"x": x.float(), "g": gate.float()}, {}, dims, None, None,
                                    fused=fused)
        for v, r in zip(outs + finals, ref):
            assert _rel_err(v, r) <= TOL


def test_initial_state_chaining(tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "ops", "selective_ssm.scan"), tmp_path)
    dims = _dims(ir)
    inputs, params = _inputs(ir, dims, 2, 30, torch.float32, 11)
    (y,), (h,) = mod.scan(inputs, params, dims, None, None)
    first = {k: v[:, :17] for k, v in inputs.items()}
    rest = {k: v[:, 17:] for k, v in inputs.items()}
    (y1,), (h1,) = mod.scan(first, params, dims, None, None)
    (y2,), (h2,) = mod.scan(rest, params, dims, (h1,), None)
    assert _rel_err(torch.cat([y1, y2], 1), y) <= TOL and _rel_err(h2, h) <= TOL


def test_input_errors_name_the_argument(tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "ops", "hgrn.scan"), tmp_path)
    x = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="input 'g': got shape"):
        mod.scan({"x": x, "g": torch.randn(2, 5, 3)}, {}, {"D": 4}, None, None)
    with pytest.raises(ValueError, match="expected"):
        mod.scan({"x": x}, {}, {"D": 4}, None, None)
    with pytest.raises(ValueError, match="initial_state"):
        mod.scan({"x": x, "g": x}, {}, {"D": 4}, (torch.randn(3, 4),), None)


def test_emit_is_byte_stable():
    ir = load_spec(os.path.join(ROOT, "ops", "selective_ssm.scan"))
    assert triton_vector.emit(ir) == triton_vector.emit(load_spec(ir.path))


def test_supports_refuses_structured_transitions():
    ir = load_spec(os.path.join(ROOT, "ops", "circulant_ssm.scan"))
    assert not triton_vector.supports(ir)


def test_heaviside_spelling_law():
    # Heaviside(u - v) == where(u > v, 1, where(u == v, 1/2, 0)), infinities included
    u, v = sympy.symbols("u v", real=True)
    code = SympyPrinter(TRITON, {u: "U", v: "V"})(sympy.Heaviside(u - v))
    assert code == "tl.where(U > V, 1.0, tl.where(U == V, 0.5, 0.0))"
    assert sympy.Heaviside(0) == sympy.Rational(1, 2)


def test_adjoints_are_derived_from_sympy():
    a, p = sympy.Symbol("a", extended_real=True), sympy.Symbol("p", extended_real=True)
    real = scan_adjoint(builtin("real"))
    assert real.J == a and real.Da == p and real.Db == 1
    log = scan_adjoint(builtin("log"))
    assert log.J.has(sympy.exp) and log.J.has(sympy.Piecewise)
    trop = scan_adjoint(builtin("tropical"))
    assert trop.J.has(sympy.Heaviside)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def _fused_matches_oracle(ir, mod, T, tilings):
    """The fused forward (float32, B=2, initial states) under each tiling against the oracle;
    returns (dims, inputs, params)."""
    dims = _dims(ir)
    inputs, params = _inputs(ir, dims, 2, T, torch.float64, 4)
    h0 = _states(ir, dims, 2, torch.float64, 5)
    ref, _ = _run(mod, dict(inputs), dict(params), dims, h0, None, oracle=True)
    for options in tilings:
        with torch.no_grad():
            outs, finals = mod.scan({k: v.detach().float() for k, v in inputs.items()},
                                    {k: v.detach().float() for k, v in params.items()}, dims,
                                    tuple(h.detach().float() for h in h0), None, **options)
        for v, r in zip(outs + finals, ref):
            assert _rel_err(v, r) <= TOL
    return dims, inputs, params


def _packed_fused_matches_unfused(mod, dims, inputs, params, tilings):
    """The first batch row of `inputs` as packed sequences of 7, 0 and 22 rows, through the
    fused forward under each tiling against the unfused one; returns the fused outputs and
    final states of every tiling."""
    cu = torch.tensor([0, 7, 7, 29])
    packed = {k: v[:1].detach().float() for k, v in inputs.items()}
    fp = {k: v.detach().float() for k, v in params.items()}
    got = []
    with torch.no_grad():
        outs2, finals2 = mod.scan(packed, fp, dims, None, cu, fused=False)
        for options in tilings:
            outs, finals = mod.scan(packed, fp, dims, None, cu, fused=True, **options)
            for v, r in zip(outs + finals, outs2 + finals2):
                assert _rel_err(v, r) <= TOL
            got.extend(outs + finals)
    return got


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.basename(p))
def test_fused_forward_matches_oracle(path, tmp_path):
    ir, mod = _emit(path, tmp_path)
    if mod is None or not mod.HAS_FUSED:
        pytest.skip("no fused forward for this spec")
    dims, inputs, params = _fused_matches_oracle(
        ir, mod, 29, ({"fused": True}, {"fused": True, "prefetch": True, "vector_width": 2},
                      {"fused": True, "prefetch": 3, "chunk_size": 4},
                      {"fused": True, "chunk_size": 4, "block_channels": 32, "stages": 2,
                       "unroll": 2},
                      {"fused": True, "chunk_size": 8, "block_channels": 4, "split": 2},
                      {"fused": True, "block_channels": 2, "split": 8},
                      {"fused": True, "chunk_size": 8, "exp_mix": 4},
                      {"fused": True, "chunk_size": 8, "split": 2, "share": False}))
    _packed_fused_matches_unfused(mod, dims, inputs, params,
                                  ({}, {"prefetch": 3, "chunk_size": 4}))


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_chunk_parallel_variant_matches_oracle(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(9)
    a = torch.rand(1, 150, 3, generator=g, dtype=torch.float64)
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(1, 150, 3, generator=g, dtype=torch.float64)
    cu = torch.tensor([0, 100, 100, 150])
    ref, _ = _run(mod, {"a": a.clone(), "b": b.clone()}, {}, {"D": 3}, None, cu, oracle=True)
    with torch.no_grad():
        outs, finals = mod.scan({"a": a.float(), "b": b.float()}, {}, {"D": 3}, None, cu,
                                chunk_parallel=True, fused=False, chunk_size=16)
    for v, r in zip(outs + finals, ref):
        assert _rel_err(v, r) <= TOL


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.basename(p))
def test_module_matches_reference_backend(path):
    """Through `madc.load`: the emitted Triton module (fp32) against the reference backend in
    float64, outputs, final states and the gradients of inputs and params."""
    import madc

    ir = load_spec(path)
    if not triton_vector.supports(ir):
        pytest.skip("not an elementwise spec")
    dims = {k: v for k, v in SMALL.items() if k in dict(ir.dims)}
    tri = madc.load(path, backend="triton", **dims)
    ref = madc.load(path, backend="reference", **dims).double()
    ref.load_state_dict(tri.state_dict())
    base, _ = _inputs(ir, _dims(ir), 2, 19, torch.float64, 21)
    i64 = {k: v.clone().requires_grad_() for k, v in base.items()}
    i32 = {k: v.float().requires_grad_() for k, v in base.items()}

    def flat(value):
        return [t for v in value for t in (v if isinstance(v, tuple) else (v,))]

    got = flat(tri(**i32, return_state=True))
    want = flat(ref(**i64, return_state=True))
    for v, r in zip(got, want):
        assert _rel_err(v, r) <= TOL
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(r.shape, generator=g, dtype=torch.float64) for r in want]
    loss_r = sum((r * w).sum() for r, w in zip(want, weights))
    loss_t = sum((v.double() * w).sum() for v, w in zip(got, weights))
    grads_r = torch.autograd.grad(loss_r, list(i64.values()) + list(ref.parameters()),
                                  allow_unused=True)
    grads_t = torch.autograd.grad(loss_t, list(i32.values()) + list(tri.parameters()),
                                  allow_unused=True)
    for v, r in zip(grads_t, grads_r):
        assert (v is None) == (r is None)
        if r is not None:
            assert _rel_err(v, r) <= TOL


def test_chunk_size_option_need_not_be_a_power_of_two(tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "ops", "hgrn.scan"), tmp_path)
    x, g = torch.randn(1, 23, 4), -torch.rand(1, 23, 4)
    (y1,), _ = mod.scan({"x": x, "g": g}, {}, {"D": 4}, None, None, chunk_size=5)
    (y2,), _ = mod.scan({"x": x, "g": g}, {}, {"D": 4}, None, None, chunk_size=16)
    assert _rel_err(y1, y2) <= TOL


# The chunk-parallel backward (`_bagg_kernel`, `_bcarry_kernel`, then the backward kernel per
# piece): forced with chunk_parallel=True, chunk_size=4 so that sequences are cut into several
# pieces of several chunks, the last one ragged.
PIECES = {"chunk_parallel": True, "chunk_size": 4}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.basename(p))
def test_chunk_parallel_backward_matches_oracle(path, tmp_path):
    ir, mod = _emit(path, tmp_path)
    if mod is None:
        pytest.skip("not an elementwise spec")
    _compare(ir, mod, _dims(ir), B=2, T=37, h0=True, **PIECES)


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("T", [1, 13, 32])
def test_chunk_parallel_backward_lengths(name, T, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    _compare(ir, mod, {"D": 3}, B=2, T=T, h0=True, **PIECES)


@pytest.mark.parametrize("name", ["ops/hgrn", "ops/log_ssm", "ops/selective_ssm",
                                  "examples/scans/linear_scan", "examples/scans/log_scan",
                                  "examples/scans/tropical_scan"])
def test_chunk_parallel_backward_cu_seqlens(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, f"{name}.scan"), tmp_path)
    _compare(ir, mod, _dims(ir), B=1, T=41, h0=True, cu=[0, 1, 18, 18, 41], **PIECES)
    _compare(ir, mod, _dims(ir), B=1, T=41, cu=[0, 23, 41, 41], **PIECES)  # empty last


@pytest.mark.parametrize("name", ["log_scan", "tropical_scan"])
def test_chunk_parallel_backward_minus_inf_and_ties(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(3)
    a, b = _minus_inf_ab(g)
    _compare(ir, mod, {"D": 6}, B=2, T=29, inputs={"a": a, "b": b}, **PIECES)
    ties = {"a": torch.zeros(2, 21, 4, dtype=torch.float64),
            "b": torch.randint(0, 3, (2, 21, 4), generator=g).double()}
    _compare(ir, mod, {"D": 4}, B=2, T=21, inputs=ties, **PIECES)


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_chunk_parallel_backward_equals_sequential(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(4)
    a = torch.rand(1, 61, 5, generator=g)
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(1, 61, 5, generator=g)
    h0 = (torch.randn(3, 5, generator=g),)
    cu = torch.tensor([0, 30, 30, 61])
    w = torch.randn(1, 61, 5, generator=g)
    results = []
    for mode in (True, False):
        leaves = [a.clone().requires_grad_(), b.clone().requires_grad_(),
                  h0[0].clone().requires_grad_()]
        (y,), (h,) = mod.scan({"a": leaves[0], "b": leaves[1]}, {}, {"D": 5}, (leaves[2],),
                              cu, chunk_parallel=mode, chunk_size=4)
        loss = (y * w).sum() + (h * h.detach()).sum()
        results.append([y, h, *torch.autograd.grad(loss, leaves)])
    for x, ref in zip(*results):
        assert _rel_err(x, ref) <= 1e-6


def test_uniform_pieces_need_no_device_copy(tmp_path):
    # without cu_seqlens the pieces come from (N, T) on the host, once per shape, and equal
    # the ones built from the offsets
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)

    class NoCopy:
        def numel(self):
            return 3

        def tolist(self):
            raise AssertionError("device->host copy")

    a, opts = torch.zeros(2 * 37, 3), {"chunk_parallel": True}
    uniform = mod._pieces(a, NoCopy(), (2, 37), 1, 4, opts)
    packed = mod._pieces(a, torch.tensor([0, 37, 74]), None, 1, 4, opts)
    assert mod._pieces(a, NoCopy(), (2, 37), 1, 4, opts) is uniform
    assert all(torch.equal(u, p) for u, p in zip(uniform[:2], packed[:2]))
    assert uniform[2] == packed[2] and uniform[0].numel() == 3
    seg, hint = mod._segments((2, 37), None, a.device)
    assert hint == (2, 37) and mod._segments((2, 37), None, a.device)[0] is seg


_SEMIRING_SPECS = {
    "min_plus": "semiring min_plus",
    "max_times": "semiring max_times",
    "boolean": "semiring boolean",
    "user_bottleneck": "semiring s {\n add(x, y) = max(x, y)\n mul(x, y) = min(x, y)\n"
                       " zero = -inf\n one = inf\n}",
    "user_logaddexp": "semiring l {\n add(x, y) = log(exp(x) + exp(y))\n mul(x, y) = x + y\n"
                      " zero = -inf\n one = 0\n}",
}


@pytest.mark.parametrize("name", sorted(_SEMIRING_SPECS))
def test_chunk_parallel_backward_other_semirings(name, tmp_path):
    src = (f"scan cp_{name}\ndims D = 3\n{_SEMIRING_SPECS[name]}\ninput a : [D]\n"
           "input b : [D]\nstate h : [D]\nh = a * h + b\nreadout y = h\n")
    path = tmp_path / f"cp_{name}.scan"
    path.write_text(src)
    ir, mod = _emit(str(path), tmp_path)
    g = torch.Generator().manual_seed(6)
    a = torch.randn(1, 40, 3, generator=g, dtype=torch.float64)
    b = torch.randn(1, 40, 3, generator=g, dtype=torch.float64)
    if name == "max_times":
        a, b = a.abs(), b.abs()
    if name == "boolean":  # in the domain (the padded identity rows clamp to it), many ties
        a, b = (torch.randint(0, 2, (1, 40, 3), generator=g).double() for _ in "ab")
    for options in ({}, PIECES):
        _compare(ir, mod, {"D": 3}, B=1, T=40, h0=True, cu=[0, 17, 17, 40],
                 inputs={"a": a, "b": b}, **options)


# The single-pass chunk-parallel forward (chunk_parallel="lookback", docs/triton.md): uniform
# sequences cut into pieces of chunk_size rows; the backward keeps its automatic choice.
LOOKBACK = {"chunk_parallel": "lookback", "chunk_size": 4}


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("T", [1, 4, 13, 37])
def test_lookback_forward_matches_oracle(name, T, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    _compare(ir, mod, {"D": 3}, B=2, T=T, h0=True, **LOOKBACK)


@pytest.mark.parametrize("name", ["ops/hgrn", "ops/log_ssm", "ops/selective_ssm"])
def test_lookback_forward_zoo(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, f"{name}.scan"), tmp_path)
    _compare(ir, mod, _dims(ir), B=2, T=23, h0=True, **LOOKBACK)


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_lookback_minus_inf_and_ties(name, tmp_path):
    """-inf coefficients (the log/tropical zero) and exact ties, through the look-back, against
    the sequential kernel."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(5)
    a = torch.rand(2, 21, 3, generator=g, dtype=torch.float64)
    b = torch.randn(2, 21, 3, generator=g, dtype=torch.float64).round()
    if name != "linear_scan":
        a = a.log()
        a[:, 5] = -float("inf")
        a[:, 9:11] = 0.0
    with torch.no_grad():
        got = mod.scan({"a": a.float(), "b": b.float()}, {}, {"D": 3}, None, None, **LOOKBACK)
        want = mod.scan({"a": a.float(), "b": b.float()}, {}, {"D": 3}, None, None,
                        chunk_parallel=False)
    for x, y in zip(got[0] + got[1], want[0] + want[1]):
        assert _rel_err(x, y) <= TOL  # infinities in the same places, exactly


def _unpublished(*shape):
    """Look-back slots with nothing published: all-ones bits."""
    return torch.full(shape, -1, dtype=torch.int32).view(torch.float32)


@pytest.mark.parametrize("window,inclusive,chunks,partial", [
    (32, 0, 1, None), (2, 0, 1, None), (4, None, 1, None), (2, 3, 1, None), (4, 8, 1, None),
    (2, 2, 3, None), (4, 3, 1, 7), (2, None, 1, 9)])
def test_lookback_folds_published_aggregates(tmp_path, window, inclusive, chunks, partial):
    """The look-back's aggregate path, which the interpreter's in-order programs never take:
    the pieces (of `chunks` chunks) after `inclusive` publish only their aggregates, piece
    `inclusive` its last state too (None: no piece has, so the fold reaches the initial
    state), piece `partial` its last state in one channel only (which must not count), and
    the pieces before `inclusive` nothing (never waited on); the last piece, started alone
    by its ticket, must fold them to its incoming state in rounds of `window`
    predecessors."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(6)
    N, T, C, BT = 2, 21, 3, 2
    R = BT * chunks  # rows per piece
    P = -(-T // R)
    a = torch.rand(N * T, C, generator=g)
    b = torch.randn(N * T, C, generator=g)
    h0 = torch.randn(N, C, generator=g)
    # the sequential states, in float64
    want = torch.empty(N * T, C, dtype=torch.float64)
    for n in range(N):
        h = h0[n].double()
        for t in range(T):
            h = a[n * T + t].double() * h + b[n * T + t].double()
            want[n * T + t] = h
    agg = _unpublished(2, N * P, C)
    inc = _unpublished(N * P, C)
    first = -1 if inclusive is None else inclusive
    for n in range(N):
        for p in range(max(first, 0), P - 1):
            rows = range(n * T + p * R, n * T + min(T, (p + 1) * R))
            A, B = torch.ones(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)
            for r in rows:
                A, B = a[r].double() * A, a[r].double() * B + b[r].double()
            agg[0, n * P + p], agg[1, n * P + p] = A.float(), B.float()
            if p == inclusive:
                inc[n * P + p] = want[rows[-1]].float()
            elif p == partial:
                inc[n * P + p, 1] = want[rows[-1], 1].float() + 100.0  # a wrong value
    hs = torch.zeros(N * T, C)
    ht = torch.zeros(N, C)
    tile = {"BT": BT, "BC": 4, "VEC": 4, "PREFETCH": 1, "num_warps": 1}
    mod.linear_scan_lookback(a, b, h0, hs, ht, (N, T), tile, ticket=(P - 1) * N,
                             published=(agg, inc), window=window, piece=R)
    last = [n * T + r for n in range(N) for r in range((P - 1) * R, T)]
    assert _rel_err(hs[last], want[last]) <= TOL
    assert _rel_err(ht, want[[n * T + T - 1 for n in range(N)]]) <= TOL
    assert not hs[[r for r in range(N * T) if r not in last]].any()  # only the last pieces ran


def test_lookback_window_spans_the_threads(tmp_path, monkeypatch):
    """A look-back window of fewer slots than the program has threads would be loaded twice
    per slot at different times (NaN states on an H100 at 16 channels, 8 warps, a window of
    8: tests/gpu); the launcher widens it to span the threads, and keeps a wider one."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    windows = []
    launch = mod._launch
    monkeypatch.setattr(mod, "_launch",
                        lambda kernel, grid, *args, **meta: windows.append(meta["W"])
                        or launch(kernel, grid, *args, **meta))
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(12, 3, generator=g), torch.randn(12, 3, generator=g)
    h0 = torch.zeros(1, 3)
    for warps, bc, window in ((8, 16, 8), (1, 4, 2), (2, 4, 64)):
        tile = {"BT": 4, "BC": bc, "VEC": bc, "PREFETCH": 0, "num_warps": warps}
        mod.linear_scan_lookback(a, b, h0, torch.zeros(12, 3), torch.zeros(1, 3), (1, 12),
                                 tile, window=window)
    assert windows == [16, 8, 64]


def test_lookback_publishes_the_all_ones_nan(tmp_path, monkeypatch):
    """An input holding the all-ones NaN (the bits of an unpublished look-back slot) reaches
    the pieces' published states as another NaN, so the pieces after it do not wait on it
    for ever; the NaNs land where the sequential kernel puts them. Without gradients too,
    chunk_parallel="lookback" runs the look-back, not the fused forward."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    taken = []
    lookback = mod.linear_scan_lookback
    monkeypatch.setattr(mod, "linear_scan_lookback",
                        lambda *args, **kw: taken.append(1) or lookback(*args, **kw))
    g = torch.Generator().manual_seed(9)
    a = torch.rand(1, 19, 3, generator=g)
    b = torch.randn(1, 19, 3, generator=g)
    b[0, 6, 1] = _unpublished(1)[0]
    with torch.no_grad():
        got = mod.scan({"a": a, "b": b}, {}, {"D": 3}, None, None, **LOOKBACK)
        want = mod.scan({"a": a, "b": b}, {}, {"D": 3}, None, None, chunk_parallel=False)
    assert taken == [1]
    for x, y in zip(got[0] + got[1], want[0] + want[1]):
        assert torch.equal(x.isnan(), y.isnan()) and x.isnan().any()
        assert _rel_err(x.nan_to_num(), y.nan_to_num()) <= TOL


@pytest.mark.parametrize("name,uniform", [("linear_scan", True), ("tropical_scan", True),
                                          ("linear_scan", False), ("log_scan", True)])
def test_auto_chunk_parallel_takes_the_lookback(tmp_path, monkeypatch, name, uniform):
    """Where "auto" wants chunk-parallel pieces (on a GPU: too few sequences x channel blocks),
    uniform sequences take the single-pass look-back (one launch) unless the log lowering
    applies; packed ones (and the log lowering) keep the three phases. Both equal the
    sequential kernel."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    taken = []
    monkeypatch.setattr(mod, "_wants_pieces", lambda *args: True)
    lookback = getattr(mod, f"{name}_lookback")
    monkeypatch.setattr(mod, lookback.__name__,
                        lambda *args, **kw: taken.append(1) or lookback(*args, **kw))
    g = torch.Generator().manual_seed(8)
    a = torch.rand(2, 37, 3, generator=g)
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(2, 37, 3, generator=g)
    cu = None if uniform else torch.tensor([0, 20, 20, 74])
    x = {"a": a, "b": b} if uniform else {"a": a.reshape(1, 74, 3), "b": b.reshape(1, 74, 3)}
    with torch.no_grad():
        got = mod.scan(x, {}, {"D": 3}, None, cu, chunk_size=4, fused=False)
        monkeypatch.setattr(mod, "_wants_pieces", lambda *args: False)
        want = mod.scan(x, {}, {"D": 3}, None, cu, chunk_size=4, fused=False)
    assert taken == ([1] if uniform and name != "log_scan" else [])
    for u, v in zip(got[0] + got[1], want[0] + want[1]):
        assert _rel_err(u, v) <= TOL


def test_launch_keys_and_interpreter(tmp_path):
    """`_launch`'s key tells apart what Triton specialises on (a tensor's dtype and 16-byte
    alignment, other arguments by value); under the interpreter it is Triton's launch, caches
    nothing and returns the meta-parameters (the direct path needs a GPU:
    tests/gpu/test_triton_vector_gpu.py)."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    x = torch.zeros(9)
    assert mod._spec(x) == mod._spec(torch.zeros(3)) != mod._spec(x[1:])
    assert mod._spec(x) != mod._spec(x.double()) and mod._spec(4) != mod._spec(5)
    mod._LAUNCHES.clear()
    a, b = torch.rand(6, 3), torch.randn(6, 3)
    h0, hs, ht = torch.zeros(1, 3), torch.empty(6, 3), torch.empty(1, 3)
    seg = torch.tensor([0, 6])
    tile = {"BT": 4, "BC": 4, "VEC": 4, "PREFETCH": 1, "num_warps": 1}
    full = mod._launch(mod.linear_scan_fwd_kernel, (1, 1), a, b, h0, hs, None, None, ht, seg, 3,
                       **tile, LOWER=False, EVEN=False, ROW=3)
    assert full == dict(tile, LOWER=False, EVEN=False, ROW=3) and not mod._LAUNCHES
    want = torch.empty(6, 3)
    h = torch.zeros(3)
    for t in range(6):
        h = a[t] * h + b[t]
        want[t] = h
    assert _rel_err(hs, want) <= TOL


def test_chunk_parallel_option_is_checked(tmp_path):
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    x = {"a": torch.rand(1, 5, 3), "b": torch.randn(1, 5, 3)}
    with pytest.raises(ValueError, match="chunk_parallel: got 'lookbak'"):
        mod.scan(x, {}, {"D": 3}, None, None, chunk_parallel="lookbak")
    a, b = x["a"].reshape(5, 3), x["b"].reshape(5, 3)
    tile = {"BT": 4, "BC": 4, "VEC": 4, "PREFETCH": 0, "num_warps": 1}
    with pytest.raises(ValueError, match="window: got 3, expected a power of two"):
        mod.linear_scan_lookback(a, b, torch.zeros(1, 3), torch.empty(5, 3), torch.empty(1, 3),
                                 (1, 5), tile, window=3)


# Tiling options (docs/triton.md): narrower vectors, prefetching the next chunk, Triton's
# pipelined loads (`stages`: the interpreter runs the loop plainly, so here it checks what
# reaches the kernels) and the log semiring's generic combine change how a kernel runs, never
# what it computes.
TILINGS = [{"vector_width": 2, "prefetch": True}, {"chunk_size": 8, "prefetch": True},
           {"chunk_size": 4, "prefetch": 2}, {"chunk_size": 4, "prefetch": 3},
           {"prefetch": True, "chunk_parallel": True}, {"log_lowering": False},
           {"log_lowering": False, "chunk_parallel": True},
           {"chunk_size": 4, "prefetch": 0, "stages": 3},
           {"chunk_size": 4, "stages": 2, "chunk_parallel": True}]


@pytest.mark.parametrize("options", TILINGS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_tiling_options_match_oracle(name, options, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    _compare(ir, mod, {"D": 3}, B=2, T=19, h0=True, **options)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("name", ["ops/selective_ssm", "ops/log_ssm", "ops/hgrn"])
def test_prefetch_zoo_packed_matches_oracle(name, depth, tmp_path):
    """Prefetching forward and backward (each loop loads its next `depth` chunks early) on zoo
    specs, whose adjoints load different rows, over packed sequences with an empty one and
    sequences shorter than the chunks in flight."""
    ir, mod = _emit(os.path.join(ROOT, f"{name}.scan"), tmp_path)
    _compare(ir, mod, _dims(ir), B=1, T=23, h0=True, cu=[0, 9, 9, 23], prefetch=depth,
             chunk_size=4)


BAD_TILE_OPTIONS = [("prefetch", v) for v in (4, -1, "2", 1.5)] + [
    ("stages", v) for v in (0, 7, True, "3")] + [("unroll", v) for v in (0, 9, True, 2.0)] + [
    ("split", v) for v in (0, 3, True, "2")] + [("exp_mix", v) for v in (2, 32, True)] + [
    ("share", v) for v in (1, 0, "yes", None)]


@pytest.mark.parametrize("option,value", BAD_TILE_OPTIONS)
def test_tile_option_is_checked(option, value, tmp_path):
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    x = {"a": torch.rand(1, 5, 3), "b": torch.randn(1, 5, 3)}
    with pytest.raises(ValueError, match=f"{option}: got"):
        mod.scan(x, {}, {"D": 3}, None, None, **{option: value})


SHARED_SPEC = """
scan shared
dims D = 4, N = 4
semiring real
input x : [D]
input dt : [D]
input B : [N]
input s : []
param A : [D, N] init 1
param bias : [D] init 0
let delta = softplus(dt + bias)
let q = exp(x) * s
let u = delta * x
let g = exp(dt) * sum(B, axis=0)
let w = sigmoid(x)[:, None] * B[None, :]
let a = exp(delta[:, None] * A)
let b = u[:, None] * B[None, :] + g[:, None] + w + q[:, None]
state h : [D, N]
h = a * h + b
readout y = sum(h, axis=1)
output o = y
"""


def test_split_lanes_share_only_costly_channel_only_lets():
    """`_fused_for` shares (SHARE: the split lanes of a channel compute it once per row between
    them) a per-token let of the channel dim alone with a costly builtin, computed from
    values of that dim: softplus(dt + bias); not `delta * x` (no costly builtin), not a let
    reading a value of another dim (`exp(dt) * sum(B, axis=0)`) or a per-token scalar
    (`exp(x) * s`), nor one of another shape."""
    fused = triton_vector._fused_context(load_spec(SHARED_SPEC))
    chunk = "\n".join(fused["chunk"])
    assert fused["split"] == "N"
    assert "v_delta = _rows_back(_softplus((_lane_rows(v_dt, S_N) + s_bias)), S_N)" in chunk
    assert "v_delta = _softplus((v_dt + s_bias))" in chunk  # SHARE off
    for let in ("u", "g", "w", "q"):
        assert chunk.count(f"v_{let} = ") == 1, chunk
    assert chunk.count("_rows_back") == 1


def test_shared_lets_match_oracle(tmp_path):
    """The spec above through the fused kernel, its softplus shared by 2 and 4 lanes (and by
    none: share=False, and a chunk of 2 rows that 4 lanes cannot share), against the
    float64 oracle."""
    path = tmp_path / "shared.scan"
    path.write_text(SHARED_SPEC)
    ir, mod = _emit(str(path), tmp_path)
    assert mod.HAS_FUSED and "_rows_back(" in triton_vector.emit(ir)
    _fused_matches_oracle(ir, mod, 13, (
        {"fused": True}, {"fused": True, "chunk_size": 4, "split": 4},
        {"fused": True, "chunk_size": 2, "split": 4}, {"fused": True, "share": False}))


def test_held_axes_put_a_split_dim_on_two_axes():
    """A channel-first state [D, N] is held [N, D] with N on two axes [H, S]; a size-1 dim in
    N's place takes two axes as well (every swapped rank-2 tile has one rank), a rank-1 value
    over N two, one over a size-1 dim one (the printer refuses to mix those)."""
    assert held_axes(("D", "N"), True, "N") == [("N", 0, 2), ("D", 2, 1)]
    assert held_axes(("D", 1), True, "N") == [(1, 0, 2), ("D", 2, 1)]
    assert held_axes(("N",), True, "N") == [("N", 0, 2)]
    assert held_axes((1,), True, "N") == [(1, 0, 1)]
    assert held_axes(("D", "N"), False) == [("D", 0, 1), ("N", 1, 1)]
    assert place("o_N", 4, 1, 2) == "o_N[None, :, :, None]"


def test_fused_ssm_sums_a_split_dim_in_lane_then_across():
    """The selective SSM's readout (a sum over N) reduces N's in-lane axis, then its lanes;
    its B and C tiles are read onto both of N's axes."""
    src = triton_vector.emit(load_spec(os.path.join(ROOT, "ops", "selective_ssm.scan")))
    kernel = src[src.index("def selective_ssm_fused_fwd_kernel"):]
    kernel = kernel[:kernel.index("\n\n\n")]
    assert "tl.sum(tl.sum(tl.where(m_N[None, :, :, None]" in kernel
    assert "o_N[None, :, :].to(tl.int64)" in kernel  # B, C: [BT, H, S]
    assert "S_N: tl.constexpr = SPLIT" in kernel


@pytest.mark.parametrize("n", [1, 2, 3])
def test_widen_casts_the_shared_inputs_in_pairs(n):
    """`_widen` gives the fused kernel its shared per-token inputs as contiguous fp32, those
    not fp32 already two per launch; fp32 ones pass as they are (a copy if strided)."""
    import madc

    mod = madc.load(os.path.join(ROOT, "ops", "selective_ssm.scan"), backend="triton", D=4,
                    N=4)
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    g = torch.Generator().manual_seed(0)
    half = [torch.randn(2, 5 + i, 4, generator=g).to(torch.bfloat16) for i in range(n)]
    half[-1] = half[-1].transpose(1, 2)  # not contiguous
    strided = torch.randn(2, 4, 5, generator=g).transpose(1, 2)  # fp32, not contiguous
    same = torch.randn(2, 5, 4, generator=g)
    launches = []
    launch = tv._launch
    try:
        tv._launch = lambda *a, **k: launches.append(a[0]) or launch(*a, **k)
        out = tv._widen(half[:1] + [strided, same] + half[1:])
    finally:
        tv._launch = launch
    assert launches == [tv._widen_kernel] * ((n + 1) // 2)
    assert all(o.dtype == torch.float32 and o.is_contiguous() for o in out)
    want = [half[0].float(), strided, same] + [h.float() for h in half[1:]]
    assert all(torch.equal(o, w) for o, w in zip(out, want))
    assert out[2] is same


def test_backward_graph_records_only_the_scan(tmp_path):
    """Inputs that are the coefficient and the injected term in the state's shape reach the
    scan's autograd.Function with no view or expand recorded around it (each recorded node
    is host time in the forward and again in the backward)."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    x = {n: torch.rand(2, 5, 8).requires_grad_() for n in ("a", "b")}
    outs, finals = mod.scan(x, {}, {"D": 8}, None, None)
    seen, todo = set(), [outs[0].grad_fn]
    while todo:
        f = todo.pop()
        if f is not None and f not in seen:
            seen.add(f)
            todo += [g for g, _ in f.next_functions]
    assert sorted(type(f).__name__ for f in seen) == [
        "AccumulateGrad", "AccumulateGrad", "_ScanFunctionBackward"]
    assert outs[0].shape == (2, 5, 8) and finals[0].shape == (2, 8)


def test_module_call_checks_its_inputs_once():
    """A module call hands the backend its checked (B, T) (`scan_checked`), so the backend's
    own `_check` does not run again; a direct `scan` call still checks."""
    import madc

    mod = madc.load(os.path.join(ROOT, "ops", "selective_ssm.scan"), backend="triton", D=4,
                    N=4)
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    g = torch.Generator().manual_seed(0)
    x = {n: torch.randn((2, 7) + tuple(s), generator=g) for n, s in mod.inputs.items()}
    check = tv._check
    calls = []
    try:
        tv._check = lambda *a: calls.append(a) or check(*a)
        with torch.no_grad():
            y = mod(**x)
        assert calls == []
        params = {k: v.detach() for k, v in mod.named_parameters()}
        with torch.no_grad():
            want = tv.scan(x, params, mod.dims, None, None)[0][0]
        assert len(calls) == 1
    finally:
        tv._check = check
    assert torch.equal(y, want)
    bad = dict(x, B=x["B"][:, :, :3])
    with pytest.raises(tv.InputError, match="input 'B'"):
        tv.scan(bad, params, mod.dims, None, None)
    with pytest.raises(madc.runtime.InputError, match="B: expected shape"):
        mod(**bad)


def test_inference_reads_params_uncast():
    """A module call without a gradient hands the fused kernel its fp32 params as they are
    (no cast kernels); with a gradient, and on the unfused path, `scan` casts them to the
    inputs' dtype, under autograd (fp32 gradients for the fp32 params)."""
    import madc

    mod = madc.load(os.path.join(ROOT, "ops", "selective_ssm.scan"), backend="triton", D=4,
                    N=4)
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    seen = []
    fused = tv.selective_ssm_fused_fwd

    def spy(*args):
        seen.append({k: v.dtype for k, v in args[1].items()})
        return fused(*args)

    g = torch.Generator().manual_seed(0)
    x = {n: torch.randn((1, 9) + tuple(s), generator=g).to(torch.float16)
         for n, s in mod.inputs.items()}
    try:
        tv.selective_ssm_fused_fwd = spy
        with torch.no_grad():
            y = mod(**x)
        assert seen == [dict.fromkeys(("A_log", "dt_bias", "D_skip"), torch.float32)]
        assert y.dtype == torch.float16
        params = {k: v.detach() for k, v in mod.named_parameters()}
        with torch.no_grad():
            want = tv.scan(x, params, mod.dims, None, None)[0][0]
            cast = tv.scan(x, {k: v.half() for k, v in params.items()}, mod.dims, None,
                           None)[0][0]
        assert torch.equal(y, want) and not torch.equal(y, cast)
        # the unfused path computes with the params in the inputs' dtype
        with torch.no_grad():
            a = tv.scan(x, params, mod.dims, None, None, fused=False)[0][0]
            b = tv.scan(x, {k: v.half() for k, v in params.items()}, mod.dims, None, None,
                        fused=False)[0][0]
        assert torch.equal(a, b)
        # with a gradient `scan` casts them under autograd (the unfused kernels run)
        mod(**x).float().sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32
                   for p in mod.parameters())
    finally:
        tv.selective_ssm_fused_fwd = fused


def test_log_lowering_option_is_checked(tmp_path):
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    x = {"a": torch.rand(1, 5, 3), "b": torch.randn(1, 5, 3)}
    with pytest.raises(ValueError, match="log_lowering: got 'no'"):
        mod.scan(x, {}, {"D": 3}, None, None, log_lowering="no")


def test_host_helpers_match_triton(tmp_path):
    """The emitted module's plain `_cdiv` / `_pow2` (host calls of triton.cdiv and
    triton.next_power_of_2 cost microseconds each) give Triton's values."""
    import triton

    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    for n in range(0, 3000):
        assert mod._pow2(n) == triton.next_power_of_2(n)
        for d in (1, 3, 16, 64, 1024):
            assert mod._cdiv(n, d) == triton.cdiv(n, d)


def _count_log_launches(mod, monkeypatch):
    """Record the launches of the unfused log forward kernel and, per `_fwd_rows` walk inside
    it, whether it ran the lowering (True) or the generic combine's redo (False)."""
    launches, walks = [], []
    kernel, rows = mod.log_scan_fwd_kernel, mod._fwd_rows

    class Counted:
        def __getitem__(self, grid):
            launches.append(grid)
            return kernel[grid]

    def counted_rows(*args):
        lower = dict(zip(rows.arg_names, args))["LOWER"]
        walks.append(bool(getattr(lower, "value", lower)))
        return rows(*args)

    monkeypatch.setattr(mod, "log_scan_fwd_kernel", Counted())
    monkeypatch.setattr(mod, "_fwd_rows", counted_rows)
    return launches, walks


def test_log_lowering_redoes_flagged_programs_in_its_launch(tmp_path, monkeypatch):
    # session 10: the unfused forward redoes the programs the lowering flags inside the same
    # launch (no FIXUP launch). D = 40 is three channel blocks of 16 in the interpreter; a
    # -inf coefficient in channel 3 of sequence 0 and a decay of -30 per step in channel 20
    # flag (block 0, seq 0), (block 1, seq 0) and (block 1, seq 1): three redos, not six
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    launches, walks = _count_log_launches(mod, monkeypatch)
    g = torch.Generator().manual_seed(21)
    a = -torch.rand(2, 45, 40, generator=g, dtype=torch.float64)
    a[:, :, 20] = -30.0
    a[0, 11, 3] = -math.inf
    b = torch.randn(2, 45, 40, generator=g, dtype=torch.float64)
    _compare(ir, mod, {"D": 40}, B=2, T=45, h0=True, inputs={"a": a, "b": b})
    assert launches == [(3, 2)]
    assert walks.count(True) == 6 and walks.count(False) == 3


def test_log_lowering_keeps_wide_but_representable_chunks(tmp_path, monkeypatch):
    # the lowering's range test is the last row of S (the chunk's terms over its first one,
    # plus the state's): decays of -2.5 per step (terms spanning ~e^40 in a 16-row chunk), an
    # initial state far above or below the chunk's terms and -inf injections inside a chunk
    # stay on the lowering (no redo) and exact
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    launches, walks = _count_log_launches(mod, monkeypatch)
    g = torch.Generator().manual_seed(23)
    a = -torch.rand(2, 45, 20, generator=g, dtype=torch.float64)
    a[:, :, :4] = -2.5
    b = torch.randn(2, 45, 20, generator=g, dtype=torch.float64)
    b[:, 1::5, 8:12] = -math.inf
    b[:, :, 12:16] += 30.0
    _compare(ir, mod, {"D": 20}, B=2, T=45, h0=True, inputs={"a": a, "b": b})
    assert len(launches) == 1 and walks == [True] * 4


# the state's channel dim second ([N, D]): the fused kernel's channel is then tile axis 2, and
# its channel-only inputs and outputs broadcast along axis 1
SSM_ND = """scan ssm_nd
dims D = 32, N = 8
semiring real
input  x  : [D]
input  dt : [D]
input  B  : [N]
input  C  : [N]
param  A_log : [N, D]  init 0
let delta = softplus(dt)
let a = exp(delta[None, :] * (-exp(A_log)))
let b = B[:, None] * (delta * x)[None, :]
state h : [N, D]
h = a * h + b
readout yh = sum(h * C[:, None], axis=0)
output y = yh + x
"""


def test_fused_channel_second_matches_oracle(tmp_path):
    spec = tmp_path / "ssm_nd.scan"
    spec.write_text(SSM_ND)
    ir, mod = _emit(str(spec), tmp_path)
    assert mod is not None and mod.HAS_FUSED
    _fused_matches_oracle(ir, mod, 13, ({"fused": True}, {"fused": True, "chunk_size": 4,
                                                          "block_channels": 4}))


TAIL_NAN = """\
scan tail_nan
dims D = 8
semiring real
input x : [D]
input g : [D]
let alpha = 1 / (1 + g * g)
let u = x / g
state h : [D]
h = alpha * h + u
readout o = h
"""


@pytest.mark.parametrize("state", ["D", "N, D"])
def test_fused_tail_rows_past_the_end_stay_out(state, tmp_path):
    """The fused kernel's last, partial chunk runs its prologue on the rows past the sequence
    end too (loaded as zeros: here `x / g` is 0 / 0, NaN, and with the [N, D] state every
    lane's tile has them); the scan never combines a row into an earlier one, and the final
    state is taken from the last row inside, so outputs and final states stay the oracle's
    (T = 29 and packed sequences of 7, 0 and 22 rows, in chunks of 4, 8 and 16)."""
    text = TAIL_NAN
    if state == "N, D":
        text = (text.replace("dims D = 8", "dims D = 8, N = 4")
                .replace("state h : [D]", "state h : [N, D]")
                .replace("h = alpha * h + u", "h = alpha[None, :] * h + u[None, :]")
                .replace("readout o = h", "readout o = sum(h, axis=0)"))
    spec = tmp_path / "tail_nan.scan"
    spec.write_text(text)
    ir, mod = _emit(str(spec), tmp_path)
    assert mod is not None and mod.HAS_FUSED
    tilings = [{"chunk_size": c} for c in (4, 8, 16)]
    dims, inputs, params = _fused_matches_oracle(
        ir, mod, 29, [{"fused": True, **options} for options in tilings])
    for v in _packed_fused_matches_unfused(mod, dims, inputs, params, tilings):
        assert torch.isfinite(v).all()


def test_log_lowering_flags_overflow_in_a_last_chunk(tmp_path):
    # decays of -30 per step only in the last (partial) chunk: no coefficient is -inf and the
    # carried state is finite, so only the range test on S (its sum overflows there) flags
    # the program; earlier chunks' overflows also poison the next chunk's state, this one's
    # would reach only the outputs
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(24)
    a = -torch.rand(1, 40, 3, generator=g, dtype=torch.float64)
    a[:, 32:, :2] = -30.0
    b = torch.randn(1, 40, 3, generator=g, dtype=torch.float64)
    _compare(ir, mod, {"D": 3}, B=1, T=40, h0=True, inputs={"a": a, "b": b})


# Session 10, addresses and masks (docs/triton.md): the forward, fused and backward kernels
# walk a sequence in a steady loop without row masks (every chunk whose rows, and the rows it
# prefetches, are inside the sequence), then the remaining chunks with them; EVEN drops the
# channel masks when C % BC == 0, and ROW (C as a constexpr) makes the row offsets constants.
@pytest.mark.parametrize("D", [32, 40])  # 16-channel interpreter blocks: EVEN, and not
@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_steady_and_tail_loops_match_oracle(name, depth, D, tmp_path):
    """Packed sequences of 33, 0, 37 and 4 rows in chunks of 4: each long one runs several
    steady chunks (forward and backward) then its tail, the short one only masked chunks;
    fused and unfused forward, and the backward."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    for fused in (True, False):
        _compare(ir, mod, {"D": D}, B=1, T=74, h0=True, cu=[0, 33, 33, 70, 74],
                 chunk_size=4, prefetch=depth, fused=fused)


def _raw_forward(mod, name, a, b, h0, seg, row, even, tile):
    hs, ht = torch.empty_like(a), torch.empty_like(h0)
    C = a.shape[1]
    getattr(mod, f"{name}_fwd_kernel")[(mod._cdiv(C, tile["BC"]), seg.numel() - 1)](
        a, b, h0, hs, None, None, ht, seg, C, **tile, LOWER=mod._lower({}), EVEN=even, ROW=row)
    return hs, ht


@pytest.mark.parametrize("name", ["linear_scan", "log_scan"])
def test_row_constexpr_matches_runtime_strides(name, tmp_path):
    """ROW=C (constant row offsets) and ROW=0 (the runtime-stride form) give the same bits,
    and EVEN=False (channel masks) matches EVEN=True where C % BC == 0, and the states are
    the recurrence's (checked: ROW=C + 1 reads past the arrays and crashes the interpreter)."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(5)
    C = 32
    a = -torch.rand(45, C, generator=g) if name == "log_scan" else torch.rand(45, C, generator=g)
    b = torch.randn(45, C, generator=g)
    seg = torch.tensor([0, 21, 21, 45])
    h0 = torch.randn(3, C, generator=g)
    tile = {"BT": 4, "BC": 16, "VEC": 16, "PREFETCH": 2, "num_warps": 1}
    want = _raw_forward(mod, name, a, b, h0, seg, 0, False, tile)
    for row, even in ((C, True), (C, False), (0, True)):
        got = _raw_forward(mod, name, a, b, h0, seg, row, even, tile)
        for x, y in zip(got, want):
            assert torch.equal(x, y), (row, even)
    # the reference itself is right: the state sequence of the scan, row by row
    h = h0.clone()
    for n in range(3):
        for t in range(int(seg[n]), int(seg[n + 1])):
            h[n] = (torch.logaddexp(a[t] + h[n], b[t]) if name == "log_scan"
                    else a[t] * h[n] + b[t])
            assert torch.allclose(want[0][t], h[n], atol=1e-5, rtol=1e-5)
        assert torch.allclose(want[1][n], h[n], atol=1e-5, rtol=1e-5)


def test_backward_row_constexpr_matches_runtime_strides(tmp_path):
    """The backward kernel's three loops (last chunk, steady, rest) with ROW=C and ROW=0,
    EVEN and not, give the same gradients as the autograd oracle's."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(9)
    C, R = 32, 45
    a, b = torch.rand(R, C, generator=g), torch.randn(R, C, generator=g)
    seg = torch.tensor([0, 21, 21, 45])
    h0 = torch.randn(3, C, generator=g)
    hs, _ = mod.linear_scan_fwd(a, b, h0, seg, None, {})
    dhs, dht = torch.randn(R, C, generator=g), torch.randn(3, C, generator=g)
    tile = {"BT": 4, "BC": 16, "VEC": 16, "PREFETCH": 2, "num_warps": 1}
    outs = []
    for row, even in ((0, False), (C, True), (C, False), (0, True)):
        da, db, dh0 = torch.empty_like(a), torch.empty_like(b), torch.empty_like(h0)
        mod.linear_scan_bwd_kernel[(2, 3)](a, b, h0, hs, dhs, dht, da, db, dh0, seg, C, **tile,
                                          EVEN=even, ROW=row)
        outs.append((da, db, dh0))
    for got in outs[1:]:
        for x, y in zip(got, outs[0]):
            assert torch.equal(x, y)
    # against autograd through the plain recurrence
    a_, b_, h0_ = (x.clone().double().requires_grad_() for x in (a, b, h0))
    rows, hts = [], []
    for n in range(3):
        h = h0_[n]
        for t in range(int(seg[n]), int(seg[n + 1])):
            h = a_[t] * h + b_[t]
            rows.append(h)
        hts.append(h)
    loss = (torch.stack(rows) * dhs.double()).sum() + (torch.stack(hts) * dht.double()).sum()
    loss.backward()
    for x, y in zip(outs[0], (a_.grad, b_.grad, h0_.grad)):
        assert torch.allclose(x.double(), y, atol=1e-4, rtol=1e-4)


def _first(x):
    """`x: [B, T, ...]` stored channels first ([B, ..., T]), as a view in the [B, T, ...] order."""
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


@pytest.mark.parametrize("path", [os.path.join(ROOT, "examples", "scans", f"{n}.scan")
                                  for n in ("linear_scan", "log_scan", "tropical_scan")]
                         + [os.path.join(ROOT, "ops", "hgrn.scan")],
                         ids=os.path.basename)
@pytest.mark.parametrize("T", [1, 13, 37])
def test_channels_first_matches_oracle(path, T, tmp_path):
    """Inputs stored channels first ([B, D, T], as conv1d or accelerated-scan keep them) are
    read in place by the kernels: outputs, final states and gradients equal the oracle's, and
    the outputs and gradients come back in that layout (T = 1 is both layouts at once)."""
    ir, mod = _emit(path, tmp_path)
    dims = _dims(ir)
    base, params = _inputs(ir, dims, 2, T, torch.float64, 4)
    base = {k: _first(v) for k, v in base.items()}
    if "a" in base and ir.semiring.name in ("log", "tropical"):
        base["a"] = -base["a"].abs()
    _compare(ir, mod, dims, B=2, T=T, h0=True, inputs=base)
    leaves = {k: v.float().requires_grad_() for k, v in base.items()}
    assert all(mod._is_first(v) == (T > 1) for v in leaves.values())
    outs, _ = mod.scan(leaves, {k: v.float() for k, v in params.items()}, dims, None, None)
    grads = torch.autograd.grad(sum(o.sum() for o in outs), list(leaves.values()))
    assert all(mod._is_first(v) == (T > 1) for v in outs + grads)


@pytest.mark.parametrize("name", ["log_scan", "tropical_scan"])
def test_channels_first_minus_inf_and_ties(name, tmp_path):
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(3)
    a, b = _minus_inf_ab(g)
    if name == "tropical_scan":  # exact ties between the carried and the injected terms
        a[:, :, 4:] = 0.0
        b[:, :, 4:] = torch.randint(0, 3, (2, 29, 2), generator=g).double()
    _compare(ir, mod, {"D": 6}, B=2, T=29, inputs={"a": _first(a), "b": _first(b)})


def test_channels_first_mixed_layouts(tmp_path):
    """One input channels first and one row-major: both are read channels first (the other
    copied into that layout); asking for the chunk-parallel variants reads both row-major."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    g = torch.Generator().manual_seed(8)
    a = torch.rand(3, 23, 5, generator=g, dtype=torch.float64)
    b = torch.randn(3, 23, 5, generator=g, dtype=torch.float64)
    _compare(ir, mod, {"D": 5}, B=3, T=23, inputs={"a": _first(a), "b": b})
    x = {"a": _first(a.float()), "b": b.float()}
    (y,), _ = mod.scan(x, {}, {"D": 5}, None, None)
    assert mod._is_first(y)
    (z,), _ = mod.scan(x, {}, {"D": 5}, None, None, chunk_parallel=True)
    assert z.is_contiguous() and torch.allclose(y, z, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_channels_first_kernels_equal_row_major_bits(name, tmp_path):
    """The forward and backward kernels read [N, C, T] (ROW -1, each channel's rows
    contiguous) and give bit for bit what they give on the same values as [N * T, C] with
    the same tile: 22 rows (a partial last chunk of 8), 20 channels (channel masks)."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    g = torch.Generator().manual_seed(6)
    N, T, C = 3, 22, 20
    a = torch.rand(N, T, C, generator=g)
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(N, T, C, generator=g)
    h0 = torch.randn(N, C, generator=g)
    seg, uniform = mod._segments((N, T), None, a.device)
    opts = {"chunk_size": 8, "block_channels": 16, "prefetch": 2}
    row = [x.reshape(-1, C) for x in (a, b)]
    col = [x.transpose(1, 2).contiguous() for x in (a, b)]
    hs_r, ht_r = getattr(mod, f"{name}_fwd")(*row, h0, seg, uniform, opts)
    hs_c, ht_c = getattr(mod, f"{name}_fwd")(*col, h0, seg, uniform, opts)
    assert hs_c.shape == (N, C, T)
    assert torch.equal(hs_c.transpose(1, 2).reshape(-1, C), hs_r) and torch.equal(ht_c, ht_r)
    dhs, dht = torch.randn(N, T, C, generator=g), torch.randn(N, C, generator=g)
    bwd = getattr(mod, f"{name}_bwd")
    da_r, db_r, dh0_r = bwd(*row, h0, hs_r, seg, uniform, dhs.reshape(-1, C), dht, opts)
    da_c, db_c, dh0_c = bwd(*col, h0, hs_c, seg, uniform, dhs.transpose(1, 2).contiguous(),
                            dht, opts)
    assert torch.equal(da_c.transpose(1, 2).reshape(-1, C), da_r)
    assert torch.equal(db_c.transpose(1, 2).reshape(-1, C), db_r)
    assert torch.equal(dh0_c, dh0_r)


@pytest.mark.parametrize("path", ["row", "first", "lookback", "pieces"])
def test_forward_writes_the_output_beside_the_saved_states(path, tmp_path):
    """Where the backward saves fp32 states (max_times: STATES_FP32, no step weights) the
    forward kernel writes the output in the inputs' dtype in the same pass: `out` holds the
    states rounded as torch rounds them, on every path (the look-back's copied after it).
    fp16 here: the interpreter rounds to bf16 towards zero (compiled Triton rounds to nearest
    even)."""
    spec = tmp_path / "mt_scan.scan"
    spec.write_text("scan mt_scan\ndims D = 20\nsemiring max_times\ninput a : [D]\n"
                    "input b : [D]\nstate h : [D]\nh = a * h + b\nreadout y = h\n")
    _, mod = _emit(str(spec), tmp_path)
    assert mod.STATES_FP32 and not mod.STEP_WEIGHTS
    g = torch.Generator().manual_seed(12)
    N, T, C = 2, 37, 20
    a = torch.rand(N, T, C, generator=g) * 1.1
    b = torch.rand(N, T, C, generator=g)
    h0 = torch.rand(N, C, generator=g)
    seg, uniform = mod._segments((N, T), None, a.device)
    if path == "first":
        a, b = (x.transpose(1, 2).contiguous() for x in (a, b))
    else:
        a, b = a.reshape(-1, C), b.reshape(-1, C)
    options = {"chunk_size": 8, "chunk_parallel": {"row": False, "first": False,
                                                   "lookback": "lookback", "pieces": True}[path]}
    out = torch.empty(a.shape, dtype=torch.float16)
    hs, ht = mod.mt_scan_fwd(a, b, h0, seg, uniform, options, torch.float32, out)
    want, _ = mod.mt_scan_fwd(a, b, h0, seg, uniform, options)
    assert torch.equal(hs, want) and torch.equal(out, hs.to(torch.float16))


def test_channels_first_tile_fills_the_sms(tmp_path, monkeypatch):
    """`_first_tile` halves the channels per program while B x cdiv(C, BC) is below the SM
    count (B=1 D=256 on 132 SMs: one channel per program), unless `block_channels` is given;
    the chunk-parallel options read row-major."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    monkeypatch.setattr(mod, "_sms", lambda x: 132)
    x = torch.zeros(1)
    tile = mod._first_tile(x, 1, 256, {})
    assert tile["BC"] == 1 and tile["VEC"] == 1
    assert mod._first_tile(x, 8, 4096, {})["BC"] == 16  # the interpreter's tile, 2048 programs
    assert mod._first_tile(x, 1, 256, {"block_channels": 8})["BC"] == 8
    a = _first(torch.rand(2, 9, 4))
    assert mod._channels_first(a, a, (2, 9), 4, {})
    assert not mod._channels_first(a, a, (2, 9), 4, {"chunk_parallel": True})
    assert not mod._channels_first(a, a, None, 4, {})  # packed sequences
    assert not mod._channels_first(a.contiguous(), a.contiguous(), (2, 9), 4, {})


def test_step_weights_are_derived():
    """`step_weights` where mul's partials are 1 and add's sum to 1 off the zero (log,
    tropical, min_plus, a user's logaddexp), none otherwise; u + v = 1 at a point, 1/2 each
    at a tie."""
    for name in ("real", "max_times", "boolean"):
        assert step_weights(builtin(name)) is None
    m, b, h = (sympy.Symbol(n, extended_real=True) for n in "mbh")
    log = step_weights(builtin("log"))
    at = {m: sympy.Rational(3, 10), b: -sympy.Rational(6, 5)}
    at[h] = sympy.log(sympy.exp(at[m]) + sympy.exp(at[b]))
    assert sympy.simplify((log.u + log.v).subs(at) - 1) == 0
    assert log.u.subs({h: -sympy.oo}) == 0 and log.v.subs({h: -sympy.oo}) == 0
    for name in ("tropical", "min_plus"):
        w = step_weights(builtin(name))
        assert w.u.subs({m: 1, b: 1}) == sympy.Rational(1, 2) == w.v.subs({m: 1, b: 1})
        assert {w.u.subs({m: 2, b: 1}), w.v.subs({m: 2, b: 1})} == {0, 1}
    user = load_spec(os.path.join(ROOT, "examples", "scans", "log_scan.scan")).semiring
    assert step_weights(user) is not None


_WEIGHT = _WU = _WV = None  # the emitted module's `_weight`, `_wu`, `_wv`, set by the test


@triton.jit
def _weights_round_trip(p_u, p_v, p_s, p_uo, p_vo, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(p_s + o, _WEIGHT(tl.load(p_u + o), tl.load(p_v + o)).to(p_s.dtype.element_ty))
    s = tl.load(p_s + o).to(tl.float32)
    tl.store(p_uo + o, _WU(s))
    tl.store(p_vo + o, _WV(s))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_step_weight_is_one_number(dtype, tmp_path, monkeypatch):
    """`_weight` stores a step's (u, v) as one number in the storage dtype and `_wu`/`_wv`
    read both back: exactly for (1, 0), (0, 1), (0, 0) and ties; the smaller with the dtype's
    relative precision and the larger as 1 minus it, however near 1 it is; NaN stays NaN."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    for name, fn in (("_WEIGHT", mod._weight), ("_WU", mod._wu), ("_WV", mod._wv)):
        monkeypatch.setattr(sys.modules[__name__], name, fn)
    small = [0.0, 1e-30 if dtype != torch.float16 else 1e-4, 1e-3, 0.3, 0.5]
    u = torch.tensor(small + [1.0 - x for x in small[:-1]] + [0.0, math.nan, 0.0, 0.0, 0.0])
    v = 1.0 - u
    v[-5:] = torch.tensor([0.0, math.nan, 0.0, 0.0, 0.0])
    s, uo, vo = torch.empty(16, dtype=dtype), torch.empty(16), torch.empty(16)
    _weights_round_trip[(1,)](u, v, s, uo, vo, N=16)
    eps = {torch.float32: 2.0 ** -23, torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}
    n = 2 * len(small) - 1
    lo = torch.minimum(u[:n], v[:n]).double()
    for got, want in ((uo[:n], u[:n]), (vo[:n], v[:n])):
        # the larger weight is 1 - s rounded to fp32 (half an ulp of a number below 1)
        large = want > 0.5
        want = torch.where(large, 1.0 - lo, lo)
        tol = eps[dtype] * lo + torch.where(large, 2.0 ** -24, 0.0)
        assert ((got.double() - want).abs() <= tol).all()
    assert uo[n] == 0.0 and vo[n] == 0.0 and uo[n + 1].isnan() and vo[n + 1].isnan()
    assert uo[0] == 0.0 and vo[0] == 1.0 and uo[len(small)] == 1.0 and vo[len(small)] == 0.0


@pytest.mark.parametrize("name", ["log_scan", "tropical_scan"])
@pytest.mark.parametrize("options", [{}, PIECES, {"chunk_size": 4}, {"log_lowering": False},
                                     LOOKBACK], ids=["one-pass", "pieces", "chunk4", "generic",
                                                     "lookback"])
def test_step_weights_backward_reads_only_the_weights(name, options, tmp_path):
    """With step weights the backward kernels read the forward's weights and the adjoints
    alone: NaN in place of a and b changes no gradient (one pass and chunk-parallel), and the
    gradients from the weights of every forward path (the log lowering's sums, the generic
    combine's shifted states, pieces, the look-back) equal the float64 sequential adjoint's."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    assert mod.STEP_WEIGHTS and not mod.STATES_FP32
    g = torch.Generator().manual_seed(21)
    N, T, C = 2, 29, 6
    a = torch.randint(-2, 1, (N * T, C), generator=g).double()  # ties for max
    b = torch.randint(-3, 1, (N * T, C), generator=g).double()
    h0 = torch.randn(N, C, generator=g, dtype=torch.float64)
    seg, uniform = mod._segments((N, T), None, a.device)
    w = torch.empty_like(a)
    hs, ht = getattr(mod, f"{name}_fwd")(a, b, h0, seg, uniform, options, weights=w)
    dhs = torch.randn(N * T, C, generator=g, dtype=torch.float64)
    dht = torch.randn(N, C, generator=g, dtype=torch.float64)
    bwd = getattr(mod, f"{name}_bwd")
    got = bwd(a, b, h0, w, seg, uniform, dhs, dht, options)
    nan = torch.full_like(a, math.nan)
    for x, y in zip(got, bwd(nan, nan, h0, w, seg, uniform, dhs, dht, options)):
        assert torch.equal(x, y)
    leaves = [x.clone().requires_grad_() for x in (a, b, h0)]
    want, want_t = _loop_core(mod)(*leaves, seg)
    torch.autograd.backward([want, want_t], [dhs, dht])
    assert _rel_err(hs, want.detach()) <= TOL and _rel_err(ht, want_t.detach()) <= TOL
    for x, leaf in zip(got, leaves):
        assert _rel_err(x, leaf.grad) <= TOL


def test_step_weights_forward_tile_without_spills(tmp_path, monkeypatch):
    """The compiled forward's untuned tile is 16 rows, not 32, where it writes step weights
    with channel masks (32 spill in ptxas); options and whole tiles keep their rows, and the
    row-major forward asks for it when given weights."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "log_scan.scan"), tmp_path)
    monkeypatch.setattr(mod, "_interpreted", lambda x: False)  # the GPU's heuristic
    x = torch.zeros(1, dtype=torch.bfloat16)
    assert mod._config(x, 4000, {}, weights=True)["BT"] == 16  # 4000 % 128: masks
    assert mod._config(x, 4096, {}, weights=True)["BT"] == 32
    assert mod._config(x, 4000, {})["BT"] == 32
    assert mod._config(x, 4000, {"chunk_size": 64}, weights=True)["BT"] == 64
    assert mod._config(x, 4000, {}, backward=True, weights=True)["BT"] == 16
    monkeypatch.undo()
    seen = []
    config = mod._config
    monkeypatch.setattr(mod, "_config", lambda *a, **k: seen.append(k) or config(*a, **k))
    a = torch.rand(2 * 5, 3, dtype=torch.float64)
    seg, uniform = mod._segments((2, 5), None, a.device)
    h0 = torch.zeros(2, 3, dtype=torch.float64)
    mod.log_scan_fwd(a, a, h0, seg, uniform, {}, weights=torch.empty_like(a))
    mod.log_scan_fwd(a, a, h0, seg, uniform, {})
    assert {"weights": True} in seen and {"weights": False} in seen


def test_channels_first_autotune_prunes_to_a_full_grid(tmp_path, monkeypatch):
    """The channels-first autotuners (`_autotune(first=True)`, keyed by C and SC) keep the
    rows whose N x cdiv(C, BC) programs fill the SMs and whose EVEN matches C, or the
    narrowest row where none fills them; every row compiles in `_configs`' shape."""
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    monkeypatch.setattr(mod, "_sms", lambda x: 132)
    for tuner in (mod.linear_scan_fwd_first_tuned, mod.linear_scan_bwd_first_tuned):
        assert tuner.keys == ["C", "SC"]

        def kept(N, C, T, tuner=tuner):
            x = torch.empty(N * C * T, dtype=torch.bfloat16)
            return {(c.kwargs["BT"], c.kwargs["BC"], c.kwargs["EVEN"]) for c in
                    tuner.early_config_prune(tuner.configs, {"C": C, "p_a": x}, SC=T)}

        rows = mod._FIRST_FWD_ROWS if tuner is mod.linear_scan_fwd_first_tuned else \
            mod._FIRST_BWD_ROWS
        assert kept(8, 4096, 16) == {(bt, bc, True) for bt, bc, *_ in rows}
        # B=1 D=256: only one channel per program gives 256 >= 132 programs
        assert kept(1, 256, 16) == {(bt, bc, True) for bt, bc, *_ in rows if bc == 1}
        # nothing fills 132 SMs with 60 channels at B=1: one row, the narrowest, masked
        # channels where BC does not divide 60
        (one,) = kept(1, 60, 16)
        assert one[1] == min(bc for _, bc, *_ in rows) and one[2] == (60 % one[1] == 0)


@pytest.mark.parametrize("env", ["1", None])
def test_channels_first_ascending_backward_switch(env, tmp_path, monkeypatch):
    """`FIRST_BWD_ASC` is off unless MADC_FIRST_BWD_ASC=1 at import, and then both the
    untuned and the autotuned channels-first backward take it."""
    if env is None:
        monkeypatch.delenv("MADC_FIRST_BWD_ASC", raising=False)
    else:
        monkeypatch.setenv("MADC_FIRST_BWD_ASC", env)
    _, mod = _emit(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), tmp_path)
    assert mod.FIRST_BWD_ASC is (env == "1")
    assert {c.kwargs["ASC"] for c in mod.linear_scan_bwd_first_tuned.configs} == \
        {env == "1"}


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("options", [{"prefetch": 1, "chunk_size": 8},
                                     {"prefetch": 3, "chunk_size": 4},
                                     {"prefetch": 0, "stages": 3, "chunk_size": 8}],
                         ids=["prefetch1", "prefetch3", "stages3"])
@pytest.mark.parametrize("asc", [True, False], ids=["ascending", "descending"])
def test_channels_first_pipelined_matches_oracle(name, options, asc, tmp_path, monkeypatch):
    """The channels-first kernels with the forward's and backward's pipelining (the register
    prefetch of the next chunks, Triton's staged loads: rows of `_FIRST_FWD_ROWS` and
    `_FIRST_BWD_ROWS`) on a partial last chunk, with ties and an initial state; the
    backward's rows ascending in time (a reverse scan, `FIRST_BWD_ASC`) or descending."""
    ir, mod = _emit(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), tmp_path)
    monkeypatch.setattr(mod, "FIRST_BWD_ASC", asc)
    g = torch.Generator().manual_seed(17)
    a = torch.randint(-2, 1, (2, 29, 5), generator=g).double()
    a = a.exp() if name == "linear_scan" else a
    b = torch.randint(-2, 2, (2, 29, 5), generator=g).double()
    assert mod._channels_first(_first(a), _first(b), (2, 29), 5, options)
    _compare(ir, mod, {"D": 5}, B=2, T=29, h0=True, inputs={"a": _first(a), "b": _first(b)},
             **options)
