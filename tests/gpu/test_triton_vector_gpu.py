"""GPU checks of the Triton vector backend: compiled kernels (not the interpreter) against the
float64 reference, including the chunk-parallel variant and bf16 storage."""

from __future__ import annotations

import glob
import importlib
import math
import os

import pytest
import torch
import triton
import triton.language as tl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECS = sorted(glob.glob(os.path.join(ROOT, "ops", "*.scan"))
               + glob.glob(os.path.join(ROOT, "examples", "scans", "*.scan")))


def _rel(x, ref):
    x, ref = x.double(), ref.double()
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(x))
    return ((x[fin] - ref[fin]).abs().max() / ref[fin].abs().max().clamp_min(1e-30)).item()


def _inputs(mod, B, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    heads = (mod.heads,) if mod.heads else ()
    out = {n: torch.randn((B, T) + heads + tuple(s), generator=g) for n, s in mod.inputs.items()}
    if "g" in out:
        out["g"] = -out["g"].abs()
    return out


def _flat(outputs, states):
    """A module's outputs and final states (each a tensor or a tuple) as one list."""
    return [t for v in (outputs, states) for t in (v if isinstance(v, tuple) else (v,))]


@pytest.mark.parametrize("path", SPECS, ids=os.path.basename)
def test_matches_reference_fp32(path):
    import madc
    from madc.codegen import triton_vector
    from madc.frontend import load_spec

    if not triton_vector.supports(load_spec(path)):
        pytest.skip("not an elementwise spec")
    tri = madc.load(path, backend="triton").cuda()
    ref = madc.load(path, backend="reference").cuda().double()
    ref.load_state_dict(tri.state_dict())
    base = _inputs(tri, 2, 200)
    i64 = {k: v.cuda().double().requires_grad_() for k, v in base.items()}
    i32 = {k: v.cuda().float().requires_grad_() for k, v in base.items()}
    yr, sr = ref(**i64, return_state=True)
    yt, st = tri(**i32, return_state=True)
    flat_r, flat_t = _flat(yr, sr), _flat(yt, st)
    for a, b in zip(flat_t, flat_r):
        assert _rel(a, b) <= 1e-5
    gr = torch.autograd.grad(sum(x.sum() for x in flat_r), list(i64.values()))
    gt = torch.autograd.grad(sum(x.sum() for x in flat_t), list(i32.values()))
    for a, b in zip(gt, gr):
        assert _rel(a, b) <= 1e-5


def _example_scan(name, length, seed):
    """(module, its triton_vector module, generator, a, b) for examples/scans/<name>.scan at
    D=64, B=1: a in (0, 1) (its log for the log and tropical semirings), b normal."""
    import madc

    mod = madc.load(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), D=64).cuda()
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, length, 64, generator=g).cuda()
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(1, length, 64, generator=g).cuda()
    return mod, tv, g, a, b


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
def test_chunk_parallel_matches_sequential(name):
    mod, tv, _, a, b = _example_scan(name, 8192, seed=1)
    (y1,), (h1,) = tv.scan({"a": a, "b": b}, {}, mod.dims, None, None, chunk_parallel=True)
    (y0,), (h0,) = tv.scan({"a": a, "b": b}, {}, mod.dims, None, None, chunk_parallel=False)
    assert _rel(y1, y0) <= 1e-5 and _rel(h1, h0) <= 1e-5


@pytest.mark.timeout(300)  # a look-back that never sees its predecessor's flag would spin
@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("B,T,chunk,tile", [
    (1, 65536, 64, {}), (8, 4095, 16, {}), (3, 1, 64, {}),
    (1, 65536, 64, {"block_channels": 16, "num_warps": 4}),
    (1, 65536, 64, {"block_channels": 16, "num_warps": 8})])
def test_lookback_matches_sequential(name, B, T, chunk, tile):
    """The single-pass look-back forward on a GPU, where programs run concurrently and the
    aggregate-folding path is taken (the interpreter runs them in order). At 16 channels and
    8 warps a window of 8 slots has fewer slots than threads: it would be loaded twice per
    slot at different times, one copy seeing a slot published and the other not (NaN states
    on an H100 in a variant of the kernel with the same window code), so the launcher widens
    the window to span the threads."""
    mod, tv, g, _, _ = _example_scan(name, 1, seed=2)
    a = torch.rand(B, T, 64, generator=g).cuda()
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(B, T, 64, generator=g).cuda()
    h0 = (torch.randn(B, 64, generator=g).cuda(),)
    with torch.no_grad():
        (y1,), (h1,) = tv.scan({"a": a, "b": b}, {}, mod.dims, h0, None,
                               chunk_parallel="lookback", chunk_size=chunk, **tile)
        (y0,), (hr,) = tv.scan({"a": a, "b": b}, {}, mod.dims, h0, None, chunk_parallel=False)
    assert _rel(y1, y0) <= 1e-5 and _rel(h1, hr) <= 1e-5


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B,T,D,options", [
    (3, 1000, 99, {"chunk_parallel": False}), (2, 4096, 64, {"chunk_parallel": False}),
    (4, 37, 64, {"chunk_parallel": False}), (4, 4096, 200, {}), (2, 1, 64, {}),
    (4, 2048, 512, {})])
def test_channels_first_matches_row_major(name, dtype, B, T, D, options):
    """Channels-first inputs (stored [B, D, T]) are read in place by the compiled kernels,
    with their own tile (1000 rows: a partial last chunk; 99 channels: channel masks; 4M
    elements: the autotuners' picks, `_FIRST_FWD_ROWS`), and give the row-major scan's
    states, final states and gradients, in their layout."""
    import madc

    mod = madc.load(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), D=D).cuda()
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    g = torch.Generator().manual_seed(11)
    a = torch.rand(B, T, D, generator=g).cuda()
    a = a if name == "linear_scan" else a.log()
    b = torch.randn(B, T, D, generator=g).cuda()
    w = torch.randn(B, T, D, generator=g).cuda()
    got = []
    for first in (True, False):
        x = [v.to(dtype) for v in (a, b)]
        if first:
            x = [v.transpose(1, 2).contiguous().transpose(1, 2) for v in x]
        leaves = [v.requires_grad_() for v in x]
        (y,), (h,) = tv.scan({"a": leaves[0], "b": leaves[1]}, {}, mod.dims, None, None,
                             chunk_parallel=False if not first else options.get(
                                 "chunk_parallel", "auto"))
        assert tv._is_first(y) == (first and T > 1)
        grads = torch.autograd.grad((y.float() * w).sum() + h.float().sum(), leaves)
        assert all(tv._is_first(v) == (first and T > 1) for v in grads)
        got.append((y, h) + grads)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for x, ref in zip(*got):
        assert _rel(x, ref) <= tol


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("tile", [(512, 1, 0, 4), (512, 1, 1, 4), (1024, 1, 0, 4),
                                  (2048, 1, 0, 8), (1024, 2, 0, 8), (256, 2, 1, 4),
                                  (2048, 1, 0, 4)])
def test_channels_first_ascending_backward_matches_float64(name, tile, monkeypatch):
    """The channels-first backward with its rows ascending in time and Triton's compiled
    reverse scan (`FIRST_BWD_ASC`, off until this passes: triton-lang/triton#4362 reports
    wrong reverse scans with non-commutative combines) gives the float64 recurrence's
    gradients, at the tiles of `_FIRST_BWD_ROWS` (in-thread, across lanes and across
    warps), with a partial last chunk, channel masks, ties and an initial state."""
    import madc

    B, T, C = 2, 3001, 5
    mod = madc.load(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), D=C).cuda()
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    monkeypatch.setattr(tv, "FIRST_BWD_ASC", True)
    bt, bc, pf, warps = tile
    g = torch.Generator().manual_seed(7)
    a = torch.randint(-2, 1, (B, T, C), generator=g).double()  # ties for max
    a = (a / 8).exp() if name == "linear_scan" else a
    b = torch.randint(-3, 2, (B, T, C), generator=g).double()
    h0 = torch.randn(B, C, generator=g, dtype=torch.float64)
    w = torch.randn(B, T, C, generator=g, dtype=torch.float64).cuda()
    first = [v.float().cuda().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
             for v in (a, b)] + [h0.float().cuda().requires_grad_()]
    (y,), (h,) = tv.scan({"a": first[0], "b": first[1]}, {}, mod.dims, (first[2],), None,
                         chunk_size=bt, block_channels=bc, prefetch=pf, num_warps=warps,
                         chunk_parallel=False)
    assert tv._is_first(y)
    got = torch.autograd.grad((y * w.float()).sum() + h.sum(), first)
    step = {"linear_scan": lambda a, s, b: a * s + b,
            "log_scan": lambda a, s, b: torch.logaddexp(a + s, b),
            "tropical_scan": lambda a, s, b: torch.maximum(a + s, b)}[name]
    ref = [v.cuda().requires_grad_() for v in (a, b, h0)]
    s, hs = ref[2], []
    for t in range(T):
        s = step(ref[0][:, t], s, ref[1][:, t])
        hs.append(s)
    hs = torch.stack(hs, 1)
    want = torch.autograd.grad((hs * w).sum() + hs[:, -1].sum(), ref)
    assert _rel(y, hs) <= 1e-5 and _rel(h, hs[:, -1]) <= 1e-5
    for x, r in zip(got, want):
        assert _rel(x, r) <= 1e-5


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("packed", [False, True])
def test_chunk_parallel_backward_matches_sequential(name, packed):
    mod, tv, g, a, b = _example_scan(name, 8191, seed=5)
    w = torch.randn(1, 8191, 64, generator=g).cuda()
    cu = torch.tensor([0, 3000, 3000, 8191]).cuda() if packed else None
    h0 = torch.randn(3 if packed else 1, 64, generator=g).cuda()
    got = []
    for mode in (True, False):
        leaves = [a.clone().requires_grad_(), b.clone().requires_grad_(),
                  h0.clone().requires_grad_()]
        (y,), (h,) = tv.scan({"a": leaves[0], "b": leaves[1]}, {}, mod.dims, (leaves[2],), cu,
                             chunk_parallel=mode)
        got.append(torch.autograd.grad((y * w).sum() + h.sum(), leaves))
    for x, ref in zip(*got):
        assert _rel(x, ref) <= 1e-5


def test_bf16_linear_scan_large():
    import madc

    mod = madc.load(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), D=512).cuda()
    g = torch.Generator().manual_seed(2)
    a = torch.sigmoid(torch.randn(2, 1000, 512, generator=g) + 2).cuda()
    b = torch.randn(2, 1000, 512, generator=g).cuda()
    y = mod(a=a.bfloat16(), b=b.bfloat16())
    h, ref = torch.zeros(2, 512, dtype=torch.float64, device="cuda"), []
    a64, b64 = a.bfloat16().double(), b.bfloat16().double()
    for t in range(1000):
        h = a64[:, t] * h + b64[:, t]
        ref.append(h)
    assert y.dtype == torch.bfloat16
    assert _rel(y, torch.stack(ref, 1)) <= 2e-2


def test_autotuned_bf16_forward_backward_matches_float64():
    """At a size that autotunes (TUNE_MIN_ELEMENTS), whatever rows the autotuners pick (the
    staged ones of session 25 among them): states, final state and dL/da, dL/db of a bf16
    diagonal scan against float64 recurrences from the same bf16 values."""
    import madc

    B, T, D = 2, 2048, 1024
    mod = madc.load(os.path.join(ROOT, "examples", "scans", "linear_scan.scan"), D=D).cuda()
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    assert B * T * D >= tv.TUNE_MIN_ELEMENTS
    g = torch.Generator().manual_seed(5)
    a = torch.sigmoid(torch.randn(B, T, D, generator=g) + 2).cuda().bfloat16()
    b = torch.randn(B, T, D, generator=g).cuda().bfloat16()
    w = torch.randn(B, T, D, generator=g).cuda()
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
    (y,), (h,) = tv.scan({"a": leaves[0], "b": leaves[1]}, {}, mod.dims, None, None)
    da, db = torch.autograd.grad((y.float() * w).sum(), leaves)
    a64, b64, w64 = a.double(), b.double(), w.double()
    hs, s = [], torch.zeros(B, D, dtype=torch.float64, device="cuda")
    for t in range(T):
        s = a64[:, t] * s + b64[:, t]
        hs.append(s)
    hs = torch.stack(hs, 1)
    gs, q = [], torch.zeros(B, D, dtype=torch.float64, device="cuda")
    for t in reversed(range(T)):  # g_t = w_t + a_{t+1} g_{t+1}
        q = w64[:, t] + (a64[:, t + 1] * q if t + 1 < T else 0)
        gs.append(q)
    gs = torch.stack(gs[::-1], 1)
    prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], 1)
    for got, ref in ((y, hs), (h, hs[:, -1]), (db, gs), (da, gs * prev)):
        assert _rel(got, ref) <= 2e-2


@pytest.mark.parametrize("name", ["log_scan", "tropical_scan"])
def test_step_weights_bf16_forward_backward_matches_float64(name):
    """Compiled, autotuned, bf16: the step weights the forward stores (the log lowering's
    rcp.approx, the tropical indicators with ties) give dL/da, dL/db of a float64 autograd
    recurrence from the same bf16 values."""
    import madc

    B, T, D = 2, 2048, 1024
    mod = madc.load(os.path.join(ROOT, "examples", "scans", f"{name}.scan"), D=D).cuda()
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    assert tv.STEP_WEIGHTS and B * T * D >= tv.TUNE_MIN_ELEMENTS
    g = torch.Generator().manual_seed(7)
    a = torch.sigmoid(torch.randn(B, T, D, generator=g) + 2).log()
    b = torch.randn(B, T, D, generator=g)
    if name == "tropical_scan":  # coarse values: exact ties between a + h and b
        a, b = a.mul(4).round().div(4), b.mul(4).round().div(4)
    a, b = a.cuda().bfloat16(), b.cuda().bfloat16()
    w = torch.randn(B, T, D, generator=g).cuda()
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
    (y,), (h,) = tv.scan({"a": leaves[0], "b": leaves[1]}, {}, mod.dims, None, None)
    da, db = torch.autograd.grad((y.float() * w).sum(), leaves)
    add = torch.logaddexp if name == "log_scan" else torch.maximum
    a64, b64 = a.double().requires_grad_(), b.double().requires_grad_()
    s, hs = torch.full((B, D), -math.inf, dtype=torch.float64, device="cuda"), []
    for t in range(T):
        s = add(a64[:, t] + s, b64[:, t]) if t else b64[:, 0].clone()
        hs.append(s)
    hs = torch.stack(hs, 1)
    ra, rb = torch.autograd.grad((hs * w.double()).sum(), [a64, b64])
    for got, ref in ((y, hs.detach()), (h, hs[:, -1].detach()), (da, ra), (db, rb)):
        assert _rel(got, ref) <= 2e-2


TILINGS = [{"vector_width": 2, "prefetch": True, "chunk_size": 32, "block_channels": 64},
           {"vector_width": 2, "prefetch": True, "chunk_size": 16, "block_channels": 256,
            "chunk_parallel": True},
           {"log_lowering": False},
           {"vector_width": 2, "prefetch": 3, "chunk_size": 16, "block_channels": 128},
           {"vector_width": 2, "prefetch": 2, "chunk_size": 32, "block_channels": 64},
           # loads pipelined by Triton (cp.async) in the forward's and backward's steady loops
           {"vector_width": 2, "prefetch": 0, "stages": 3, "chunk_size": 16,
            "block_channels": 128, "num_warps": 2},
           {"prefetch": 0, "stages": 4, "chunk_size": 32, "block_channels": 64,
            "chunk_parallel": True}]


@pytest.mark.parametrize("name", ["linear_scan", "log_scan", "tropical_scan"])
@pytest.mark.parametrize("options", TILINGS, ids=["v2p", "v2p-pieces", "generic", "v2p3",
                                                  "v2p2", "v2s3", "s4-pieces"])
def test_tiling_options_match_default(name, options):
    """Narrow vectors, prefetching, Triton's pipelined loads and the log semiring's generic
    combine, compiled: outputs, final states and gradients equal the default tile's."""
    mod, tv, g, a, b = _example_scan(name, 8191, seed=7)
    w = torch.randn(1, 8191, 64, generator=g).cuda()
    got = []
    for opts in (options, {}):
        leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
        (y,), (h,) = tv.scan({"a": leaves[0], "b": leaves[1]}, {}, mod.dims, None, None,
                             **opts)
        got.append((y, h) + torch.autograd.grad((y * w).sum() + h.sum(), leaves))
    for x, ref in zip(*got):
        assert _rel(x, ref) <= 1e-5


@pytest.mark.parametrize("path", SPECS, ids=os.path.basename)
def test_fused_forward_matches_reference_fp32(path):
    """The fused inference kernel (no autograd: prologue, scan and readout in registers),
    compiled, over a length with a partial last chunk, against the float64 reference."""
    import madc
    from madc.codegen import triton_vector
    from madc.codegen.package import triton_generator
    from madc.frontend import load_spec

    ir = load_spec(path)
    if not triton_vector.supports(ir):
        pytest.skip("not an elementwise spec")
    family = (triton_generator(ir) or ("none",))[0]
    if family != "triton_vector":
        # the linear-attention specs compile to the attention kernels (tests/gpu/
        # test_triton_attention_gpu.py): their package has no vector module
        pytest.skip(f"compiled by {family}")
    tri = madc.load(path, backend="triton").cuda()
    tv = importlib.import_module(f"{type(tri).__module__}.triton_vector")
    if not tv.HAS_FUSED:
        pytest.skip("no fused forward for this spec")
    ref = madc.load(path, backend="reference").cuda().double()
    ref.load_state_dict(tri.state_dict())
    base = _inputs(tri, 2, 203)
    with torch.no_grad():
        yr, sr = ref(**{k: v.cuda().double() for k, v in base.items()}, return_state=True)
        yt, st = tri(**{k: v.cuda().float() for k, v in base.items()}, return_state=True)
    flat_r, flat_t = _flat(yr, sr), _flat(yt, st)
    for a, b in zip(flat_t, flat_r):
        assert _rel(a, b) <= 1e-5
    # pipelined loads, an unrolled steady loop (25 chunks of 8: one left for the unrolled
    # loop's remainder) and two lanes per channel of a channel-first state, against the
    # default tile
    inputs = {k: v.cuda().float() for k, v in base.items()}
    params = {k: v.detach() for k, v in tri.named_parameters()}
    with torch.no_grad():
        want = tv.scan(inputs, params, tri.dims, None, None, fused=True)
        got = tv.scan(inputs, params, tri.dims, None, None, fused=True, chunk_size=8,
                      stages=3, unroll=2, split=2)
    for a, b in zip(_flat(*got), _flat(*want)):
        assert _rel(a, b) <= 1e-5
    # one exp2 in four on the FMA pipe (`_exp2`'s MIX)
    with torch.no_grad():
        got = tv.scan(inputs, params, tri.dims, None, None, fused=True, chunk_size=8,
                      stages=3, split=2, exp_mix=4)
    for a, b in zip(_flat(*got), _flat(*want)):
        assert _rel(a, b) <= 1e-5


_EXP2 = None  # the generated module's `_exp2`, set by the test (Triton resolves globals)


@triton.jit
def _exp2_kernel(p_x, p_y, MIX: tl.constexpr):
    o = tl.program_id(0) * 1024 + tl.arange(0, 1024)
    tl.store(p_y + o, _EXP2(tl.load(p_x + o), MIX))


@pytest.mark.parametrize("mix", [4, 8, 16])
def test_exp2_mix_matches_exp2(mix):
    """`_exp2` with one element in `mix` computed on the FMA pipe (inline PTX) against
    torch.exp2: relative error at most 4e-7 where 2^x is normal, 0 below 2^-127 (as the
    ftz MUFU op), inf from 2^128, NaN kept, for every position in the pack."""
    import madc

    global _EXP2
    tri = madc.load(os.path.join(ROOT, "ops", "selective_ssm.scan"), backend="triton")
    _EXP2 = importlib.import_module(f"{type(tri).__module__}.triton_vector")._exp2
    g = torch.Generator().manual_seed(0)
    special = torch.tensor([float("-inf"), float("inf"), float("nan"), -127.5, -127.0,
                            -126.6, -126.0, -125.5, -0.0, 0.0, 0.5, -0.5, 1e-30, 127.0,
                            127.4, 128.0, 129.0, 1e30, -1e30])
    x = torch.cat([torch.linspace(-140, 140, 200_000), torch.randn(20_000, generator=g) * 30,
                   special.repeat_interleave(mix)])
    x = torch.cat([x, x.new_zeros(-len(x) % 1024)]).cuda()
    y = torch.empty_like(x)
    _exp2_kernel[(len(x) // 1024,)](x, y, MIX=mix)
    want = torch.exp2(x.double())
    normal = (want >= 2.0 ** -126) & (want < 2.0 ** 127.5)
    rel = ((y.double() - want) / want)[normal].abs().max().item()
    assert rel <= 4e-7
    assert torch.equal(y[x < -127.5], torch.zeros_like(y[x < -127.5]))
    assert torch.isinf(y[x >= 128]).all() and torch.isnan(y[x.isnan()]).all()
    tiny = (x >= -127.5) & (want < 2.0 ** -126)
    assert (y[tiny].double() - want[tiny]).abs().max().item() <= 2.0 ** -126


@pytest.mark.parametrize("chunk_parallel", [False, True])
def test_log_lowering_fixup_compiled(chunk_parallel):
    """Channels whose chunks defeat the log lowering (a -inf coefficient, a decay of -30 per
    step) flag their programs for the generic FIXUP pass; compiled, every channel equals the
    generic combine's result."""
    mod, tv, g, a, b = _example_scan("log_scan", 8191, seed=11)
    a[:, :, 5] = -30.0
    a[0, 4000, 40] = -float("inf")
    got = []
    for opts in ({}, {"log_lowering": False}):
        (y,), (h,) = tv.scan({"a": a, "b": b}, {}, mod.dims, None, None,
                             chunk_parallel=chunk_parallel, **opts)
        got.append((y, h))
    for x, ref in zip(*got):
        assert _rel(x, ref) <= 1e-5


def _sequential(a, b, h0):
    """float64 states of h = a * h + b, [N, T, C] from h0 [N, C]."""
    h, out = h0.double(), []
    for t in range(a.shape[1]):
        h = a[:, t].double() * h + b[:, t].double()
        out.append(h)
    return torch.stack(out, 1)


def test_direct_launch_matches_the_triton_launcher():
    """`_launch` takes a launch whose arguments specialise as an earlier one's straight to the
    compiled kernel: the grid of each call (here its sequence count), a misaligned view (a new
    specialisation, compiled anew) and an autotuner's config all reach the kernel as Triton's
    own launcher would pass them; a launch hook sends launches back through Triton."""
    from triton import knobs

    mod, tv, g, _, _ = _example_scan("linear_scan", 1, seed=3)
    tv._LAUNCHES.clear()
    tile = dict(BT=16, BC=64, VEC=2, PREFETCH=1, num_warps=2, LOWER=False, EVEN=True)
    tuned = tv._autotune(tv.linear_scan_fwd_kernel, [(16, 64, 2, 1, 2), (32, 64, None, 1, 4)],
                         "C", LOWER=False)
    for N, T, skip in ((3, 100, 0), (5, 100, 0), (5, 100, 1), (3, 100, 0)):
        a = torch.rand(N * T * 64 + skip, generator=g).cuda()[skip:].view(N * T, 64)
        b = torch.randn(N * T, 64, generator=g).cuda()
        h0 = torch.randn(N, 64, generator=g).cuda()
        seg = torch.arange(0, N * T + 1, T).cuda()
        for kernel, meta in ((tv.linear_scan_fwd_kernel, tile), (tuned, {})):
            hs, ht = torch.zeros_like(a), torch.zeros(N, 64).cuda()
            grid = (lambda m, N=N: (1, N)) if not meta else (1, N)
            full = tv._launch(kernel, grid, a, b, h0, hs, None, None, ht, seg, 64, ROW=64, **meta)
            assert full["BT"] in (16, 32) and full["ROW"] == 64
            want = _sequential(a.view(N, T, 64), b.view(N, T, 64), h0)
            assert _rel(hs.view(N, T, 64), want) <= 1e-5 and _rel(ht, want[:, -1]) <= 1e-5
    # two kernels (one through its autotuner) x three specialisations (aligned or not x
    # the sequence count is not one of them)
    assert len(tv._LAUNCHES) == 4
    seen = []
    knobs.runtime.launch_enter_hook.add(seen.append)
    try:
        tv._launch(tv.linear_scan_fwd_kernel, (1, N), a, b, h0, hs, None, None, ht, seg, 64, ROW=64,
                   **tile)
    finally:
        knobs.runtime.launch_enter_hook.remove(seen.append)
    assert len(seen) == 1
