"""The attention-form Triton backend against the float64 reference (CPU, TRITON_INTERPRET=1).

Outputs, final states and gradients (inputs, params, initial states) of every matrix-state
spec, with T not a multiple of the chunk, initial states, packed `cu_seqlens`, bf16 inputs,
and decays strong enough to take the exact (non-factorised) intra-chunk path.
"""

import importlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import madc  # noqa: E402
from madc.codegen import triton_attention  # noqa: E402
from madc.frontend import load_spec  # noqa: E402
from madc.runtime import load_package  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["ops/gla.scan", "ops/retnet.scan", "ops/mamba2_ssd.scan", "ops/mlstm.scan",
         "ops/gated_gla.scan", "tests/specs/log_gla.scan"]
SMALL = {"K": 16, "V": 16, "N": 16, "P": 16}

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="CPU tests run the kernels in the Triton interpreter")


def _modules(spec, small=None):
    ir = load_spec(str(ROOT / spec))
    sizes = {**SMALL, **(small or {})}
    dims = {d: sizes[d] for d, _ in ir.dims if d in sizes}
    tri = madc.load(str(ROOT / spec), backend="triton", **dims)
    ref = madc.load(str(ROOT / spec), backend="reference", **dims).double()
    ref.load_state_dict({k: v.double() for k, v in tri.state_dict().items()})
    return tri, ref


def _inputs(mod, B, T, gen, log_gate=None):
    """Random inputs; `g` (a log-space forget gate) drawn nonpositive, scaled by log_gate."""
    out = {}
    for name, shape in mod.inputs.items():
        x = torch.randn(B, T, mod.heads, *shape, generator=gen)
        if name == "g":
            x = torch.nn.functional.logsigmoid(x) * (log_gate or 1.0)
        out[name] = x
    return out


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _run(mod, inputs, h0, cu, dtype, weights):
    """Forward + backward of sum(out * w) + sum(state * w'); returns (outs, states, grads)."""
    leaves = {k: v.detach().to(dtype).clone().requires_grad_() for k, v in inputs.items()}
    states0 = tuple(s.detach().to(dtype).clone().requires_grad_() for s in h0)
    init = None if states0 is None else (states0 if len(states0) > 1 else states0[0])
    y, st = mod(**leaves, initial_state=init, return_state=True, cu_seqlens=cu)
    y, st = _as_tuple(y), _as_tuple(st)
    loss = sum((a.double() * w).sum() for a, w in zip(y + st, weights))
    mod.zero_grad()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items()}
    grads.update({f"h0.{i}": s.grad for i, s in enumerate(states0 or ())})
    grads.update({f"param.{n}": p.grad for n, p in mod.named_parameters()})
    return y, st, grads


def _compare(spec, B=2, T=37, cu=None, dtype=torch.float32, tol=1e-4, grad_tols=None,
             log_gate=None, seed=0, small=None, gates=None):
    """Triton vs float64 reference; `gates(g)` (optional) rewrites the drawn log-gates."""
    tri, ref = _modules(spec, small)
    gen = torch.Generator().manual_seed(seed)
    inputs = _inputs(tri, B, T, gen, log_gate)
    if gates is not None:
        inputs["g"] = gates(inputs["g"])
    # round through the tested dtype first, so both sides see the same numbers
    inputs = {k: v.to(dtype).double() for k, v in inputs.items()}
    rows = B if cu is None else cu.numel() - 1
    h0 = tuple(torch.randn(rows, tri.heads, *s, generator=gen).to(dtype).double()
               for s in tri.state_shapes.values())
    with torch.no_grad():
        init = h0 if len(h0) > 1 else h0[0]
        shapes = [a.shape for a in sum(map(_as_tuple, ref(**inputs, initial_state=init,
                                                          return_state=True, cu_seqlens=cu)), ())]
    weights = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in shapes]
    y_ref, st_ref, g_ref = _run(ref, inputs, h0, cu, torch.float64, weights)
    y, st, g = _run(tri, inputs, h0, cu, dtype, weights)
    for a, b in zip(y + st, y_ref + st_ref):
        assert a.dtype == dtype
        assert _rel(a, b) <= tol, f"{spec}: forward rel err {_rel(a, b):.2e} > {tol}"
    for name, ref_grad in g_ref.items():
        if ref_grad is None:
            continue
        limit = (grad_tols or {}).get(name, tol)
        assert g[name] is not None, f"{spec}: no gradient for {name}"
        err = _rel(g[name], ref_grad)
        assert err <= limit, f"{spec}: d{name} rel err {err:.2e} > {limit}"


@pytest.mark.parametrize("spec", SPECS)
def test_matches_reference_fp32(spec):
    """Outputs, final states and all gradients within 1e-4 at T=37 (chunks of 16)."""
    _compare(spec)


@pytest.mark.parametrize("spec", ["ops/gla.scan", "tests/specs/log_gla.scan",
                                  "ops/mlstm.scan"])
def test_cu_seqlens(spec):
    """Packed variable-length sequences (one empty) equal the reference's varlen run."""
    cu = torch.tensor([0, 9, 9, 40], dtype=torch.int32)
    _compare(spec, B=1, T=40, cu=cu)


@pytest.mark.parametrize("spec", ["ops/mlstm.scan", "ops/gla.scan"])
def test_value_blocks(spec):
    """V wider than the recurrence kernels' value block (80 = 64 + a masked 16)."""
    cu = torch.tensor([0, 20, 40], dtype=torch.int32) if spec == "ops/gla.scan" else None
    _compare(spec, B=1 if cu is not None else 2, T=40, cu=cu, small={"V": 80})


@pytest.mark.parametrize("T", [1, 16, 33])
def test_lengths(T):
    """One token, exactly one chunk, one token past two chunks."""
    _compare("ops/gla.scan", B=1, T=T)
    _compare("ops/retnet.scan", B=1, T=T)


@pytest.mark.parametrize("spec", ["ops/gla.scan", "ops/retnet.scan"])
@pytest.mark.parametrize("block_k", [64, 128])
def test_key_blocks(monkeypatch, spec, block_k):
    """K wider than the state kernels' key block (80 = 64 + a masked 16), or all of K in one
    block (MADC_ATTENTION_STATE_BK=128)."""
    tri, _ = _modules(spec, {"K": 80})
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    monkeypatch.setattr(kernels, "STATE_BLOCK_K", block_k)
    assert kernels._state_blocks(80, 16) == (block_k, 16)
    _compare(spec, B=1, T=20, small={"K": 80})


@pytest.mark.parametrize("spec", ["ops/gla.scan", "ops/retnet.scan"])
def test_small_heads_in_padded_tiles(monkeypatch, spec):
    """On a GPU, K and V under 64 run in 64-wide masked tiles (TILE_MIN: Triton 3.6 faults on
    16- and 32-wide bf16 products); the same padding in the interpreter, K = 3, V = 5."""
    tri, _ = _modules(spec, {"K": 3, "V": 5})
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    monkeypatch.setattr(kernels, "TILE_MIN", 64)
    assert kernels._pow2(3) == 64 and kernels._pow2(80) == 128
    cu = torch.tensor([0, 7, 20], dtype=torch.int32)
    _compare(spec, B=1, T=20, cu=cu, small={"K": 3, "V": 5})


@pytest.mark.parametrize("spec", ["ops/gla.scan", "ops/retnet.scan"])
def test_wide_row_offsets(monkeypatch, spec):
    """Sequences of 2^31 / (H max(K, V)) rows or more take int64 row offsets (WIDE_ROWS);
    shorter ones int32. Forced here: outputs, final states and gradients of every kernel
    still equal the reference, packed sequences included."""
    tri, _ = _modules(spec)
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    assert not kernels._wide_rows(2**31 // (16 * 128) - 1, 16, 128, 64)
    assert kernels._wide_rows(2**31 // (16 * 128), 16, 64, 128)
    seen, wide = [], kernels._wide_rows
    monkeypatch.setattr(kernels, "_wide_rows",
                        lambda *args: seen.append(not wide(*args)) or seen[-1])
    _compare(spec, B=1, T=37, cu=torch.tensor([0, 5, 37], dtype=torch.int32))
    assert seen and all(seen)


@pytest.mark.parametrize("spec", ["ops/gla.scan", "ops/retnet.scan"])
def test_narrow_state_blocks(monkeypatch, spec):
    """Few sequences x heads: with STATE_NARROW (on for scalar decays) the recurrences take
    32-wide value blocks, here forced by pretending the device has 1000 SMs; outputs and
    gradients still equal the reference (the adjoint's <dh, h> partial sums then come in two
    value blocks)."""
    tri, _ = _modules(spec, {"V": 64})
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    assert kernels.STATE_NARROW == (0, 1)  # vector decays, scalar decays
    assert kernels._state_blocks(128, 128, 32, 132) == (64, 64)
    assert kernels._state_blocks(128, 128, 32, 132, scalar=True) == (64, 32)
    monkeypatch.setattr(kernels, "STATE_NARROW", (1, 1))
    assert kernels._state_blocks(128, 128, 32, 132) == (64, 32)  # B=2, H=16 on an H100
    assert kernels._state_blocks(128, 128, 128, 132) == (64, 64)  # B=8, H=16
    assert kernels._state_blocks(128, 128, 32, None) == (64, 64)  # not a GPU
    monkeypatch.setattr(kernels, "_sm_count", lambda device: 1000)
    chosen, blocks = [], kernels._state_blocks
    monkeypatch.setattr(kernels, "_state_blocks",
                        lambda *args: chosen.append(blocks(*args)) or chosen[-1])
    _compare(spec, B=1, T=37, small={"V": 64})
    assert chosen and all(bv == 32 for _, bv in chosen), chosen


def test_strong_decay_takes_exact_path():
    """Per-chunk log-decay spans far beyond SPAN_MAX use exact pairwise decays."""
    _compare("ops/gla.scan", log_gate=40.0)


@pytest.mark.parametrize("wide", [True, False])
def test_deep_log_decays_fp32(monkeypatch, wide):
    """A chunk whose cumulative log-decays sit near -1000 (a -1000 gate on its first token,
    small gates after): the decays between nearby tokens are exp of differences of two large
    sums. Summed in fp32 they are off by ~ulp(1000) = 6e-5 (the interpreter's sequential
    cumsum; a GPU's tree-shaped scan is worse); fp64 sums (WIDE_DECAYS, the default) keep fp32
    inputs within 1e-5. With the fp32 sums the same comparison fails: the case has teeth."""
    tri, _ = _modules("ops/gla.scan")
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    monkeypatch.setattr(kernels, "WIDE_DECAYS", wide)

    def deep(g):
        g = g * 0.05
        g[:, ::16] = -1000.0  # the first token of every 16-row chunk
        return g

    if wide:
        _compare("ops/gla.scan", B=1, T=48, tol=1e-5, gates=deep)
    else:
        with pytest.raises(AssertionError, match="rel err"):
            _compare("ops/gla.scan", B=1, T=48, tol=1e-5, gates=deep)


@pytest.mark.parametrize("spec,T,seed", [
    ("ops/gla.scan", 37, 0), ("ops/gla.scan", 300, 5), ("ops/retnet.scan", 37, 1),
    ("ops/retnet.scan", 300, 2), ("tests/specs/log_gla.scan", 100, 3)])
def test_bf16(spec, T, seed):
    """bf16 inputs (fp32 accumulation): outputs, final states and every gradient within 1e-2,
    the decay gradient (g; RetNet: log_gamma) included. dg is a reverse cumulative sum of the
    difference q dq - k dk, so the kernels keep fp32 per-chunk states and the low halves of
    the decayed operands for it (measured ~0.4%; ~4% at T=300 with bf16 states)."""
    _compare(spec, dtype=torch.bfloat16, tol=1e-2, T=T, seed=seed)


def test_bf16_inference_forward():
    """Without gradients the per-chunk states stay in bf16 (no fp32 copies): outputs still
    within 1e-2 of the float64 reference."""
    tri, ref = _modules("ops/gla.scan")
    gen = torch.Generator().manual_seed(4)
    inputs = {k: v.to(torch.bfloat16) for k, v in _inputs(tri, 2, 37, gen).items()}
    with torch.no_grad():
        y, st = tri(**inputs, return_state=True)
        y_ref, st_ref = ref(**{k: v.double() for k, v in inputs.items()}, return_state=True)
    assert y.dtype == torch.bfloat16
    assert _rel(y, y_ref) <= 1e-2 and _rel(st, st_ref) <= 1e-2


def test_exact_states_only_with_gradients():
    """The forward's per-chunk states are in q's dtype (the output kernel reads them rounded
    to it); the backward's, recomputed by `attention_states`, are fp32. With a gradient to come
    the forward's recurrence is the exact one: its states are the backward's, rounded."""
    package, _ = load_package(str(ROOT / "ops/gla.scan"))
    kernels = importlib.import_module(package.__name__ + ".triton_attention")
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 20, 1, 16, generator=gen).bfloat16() for _ in range(2))
    v = torch.randn(1, 20, 1, 16, generator=gen).bfloat16()
    g = torch.nn.functional.logsigmoid(torch.randn(1, 20, 1, 16, generator=gen))
    G = kernels.attention_log_decays(q, g, None)
    full = kernels.attention_states(q, k, v, G, None, None)
    assert full.dtype == torch.float32
    for exact in (False, True):
        _, _, h = kernels.attention_fwd(q, k, v, G, None, None, 0.25, None, exact)
        assert h.dtype == torch.bfloat16
        # unrounded (states_dtype fp32), the exact forward's states are the backward's
        _, _, h = kernels.attention_fwd(q, k, v, G, None, None, 0.25, None, exact, None,
                                        torch.float32)
        assert torch.equal(h, full) == exact


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_backward_recomputes_the_states(monkeypatch, dtype):
    """Training saves no per-chunk states (the backward recomputes them): the graph holds only
    the inputs, and outputs, final states and every gradient equal those of a run that saves
    the forward's fp32 states (MADC_ATTENTION_SAVE_STATES=1), bit for bit."""
    package, _ = load_package(str(ROOT / "ops/gla.scan"))
    kernels = importlib.import_module(package.__name__ + ".triton_attention")
    gen = torch.Generator().manual_seed(3)
    x = [torch.randn(1, 37, 2, 16, generator=gen).to(dtype) for _ in range(3)]
    x.append(torch.nn.functional.logsigmoid(torch.randn(1, 37, 2, 16, generator=gen)))
    h0 = torch.randn(1, 2, 16, 16, generator=gen)
    w = torch.randn(1, 37, 2, 16, generator=gen)
    runs = []
    for save in (False, True):
        monkeypatch.setattr(kernels, "SAVE_STATES", save)
        leaves = [t.clone().requires_grad_() for t in x + [h0]]
        o, ht = kernels.linear_attention(*leaves[:4], h0=leaves[4], scale=0.25)
        saved = o.grad_fn.saved_tensors
        held = sum(t.numel() for t in saved if t is not None)
        inputs = sum(t.numel() for t in leaves)
        assert (held == inputs) != save, (held, inputs)
        ((o.float() * w).sum() + ht.sum()).backward()
        runs.append([o, ht] + [t.grad for t in leaves])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_bwd_fallback_to_rounded_states_warns():
    """If the fp32-state gradient kernel does not fit the GPU (forced here by pre-seeding the
    launch choice), the backward reads the states rounded to bf16: it warns and stays within
    the pre-fix accuracy (the decay gradient ~2%)."""
    package, _ = load_package(str(ROOT / "ops/gla.scan"))
    kernels = importlib.import_module(package.__name__ + ".triton_attention")
    gen = torch.Generator().manual_seed(2)
    shapes = {"q": 16, "k": 16, "v": 16, "g": 16}
    x = {n: torch.randn(1, 37, 1, d, generator=gen) for n, d in shapes.items()}
    x["g"] = torch.nn.functional.logsigmoid(x["g"])
    x = {n: t.bfloat16().double() for n, t in x.items()}
    w = torch.randn(1, 37, 1, 16, generator=gen, dtype=torch.float64)
    grads = []
    for dtype in (torch.float64, torch.bfloat16):
        leaves = {n: t.detach().to(dtype).clone().requires_grad_() for n, t in x.items()}
        if dtype == torch.float64:  # the recurrence itself, in float64
            S, outs = torch.zeros(16, 16, dtype=dtype), []
            for t in range(37):
                S = leaves["g"][0, t, 0].exp()[:, None] * S + torch.outer(
                    leaves["k"][0, t, 0], leaves["v"][0, t, 0])
                outs.append(0.25 * leaves["q"][0, t, 0] @ S)
            o = torch.stack(outs)[None, :, None]
        else:
            key = ("bwd", 16, 16, torch.bfloat16, False, torch.float32)
            kernels._FITS[key] = 2
            try:
                o, _ = kernels.linear_attention(*leaves.values(), scale=0.25)
                with pytest.warns(UserWarning, match="rounded"):
                    (o.double() * w).sum().backward()
            finally:
                kernels._FITS.pop(key, None)
        if dtype == torch.float64:
            (o * w).sum().backward()
        grads.append({n: t.grad for n, t in leaves.items()})
    for name in shapes:
        assert _rel(grads[1][name], grads[0][name]) <= (3e-2 if name == "g" else 1e-2), name


def test_supports_and_reasons():
    """The zoo's matrix-state specs are recognised; others get a reason string."""
    for spec in SPECS:
        assert triton_attention.supports(load_spec(str(ROOT / spec))), spec
    tropical = triton_attention.unsupported_reason(load_spec(str(ROOT / "ops/tropical_ssm.scan")))
    assert "tropical" in tropical and "tensor-core" in tropical
    for spec in ("ops/selective_ssm.scan", "ops/deltanet.scan", "ops/hgrn.scan"):
        reason = triton_attention.unsupported_reason(load_spec(str(ROOT / spec)))
        assert isinstance(reason, str) and reason


def test_emit_is_deterministic_and_bad_options_raise():
    ir = load_spec(str(ROOT / "ops/gla.scan"))
    assert triton_attention.emit(ir) == triton_attention.emit(ir)
    mod = madc.load(str(ROOT / "ops/gla.scan"), backend="triton", K=16, V=16, chunk_size=24)
    x = torch.randn(1, 5, mod.heads, 16)
    with pytest.raises(ValueError, match="chunk_size"):
        mod(q=x, k=x, v=x, g=x)
    wide = madc.load(str(ROOT / "ops/gla.scan"), backend="triton", K=16, V=300)
    with pytest.raises(ValueError, match="V=300"):
        wide(q=x, k=x, v=torch.randn(1, 5, mod.heads, 300), g=x)


def test_log_semiring_minus_inf():
    """-inf (the log semiring's zero) in queries, keys and values: the same -inf outputs as
    the reference, equal finite outputs, and equal (finite) gradients."""
    tri, ref = _modules("tests/specs/log_gla.scan")
    gen = torch.Generator().manual_seed(1)
    inputs = {n: torch.randn(2, 37, tri.heads, 16, generator=gen) * 3 for n in tri.inputs}
    inputs["k"][0, 5] = -float("inf")
    inputs["v"][1, 7, :, :3] = -float("inf")
    inputs["q"][0, 9, 0] = -float("inf")
    outs = []
    for mod, dtype in ((tri, torch.float32), (ref, torch.float64)):
        leaves = {k: v.detach().to(dtype).clone().requires_grad_() for k, v in inputs.items()}
        y = mod(**leaves)
        y[torch.isfinite(y)].sum().backward()
        outs.append((y, {k: v.grad for k, v in leaves.items()}))
    (y, grads), (y_ref, grads_ref) = outs
    finite = torch.isfinite(y_ref)
    assert torch.equal(torch.isfinite(y), finite) and not finite.all()
    assert _rel(y[finite], y_ref[finite]) <= 1e-4
    for name, grad in grads_ref.items():
        assert torch.isfinite(grads[name]).all(), name
        assert _rel(grads[name], grad) <= 1e-4, name


@pytest.mark.parametrize("value", ["3", "0", "eight"])
def test_launch_setting_from_environment_is_checked(value):
    """A tile sweep's override (MADC_ATTENTION_*) that is not a power of two is refused at
    import with the variable's name, not at the first launch."""
    from madc.bench_attention import load_variant

    with pytest.raises(ValueError, match="MADC_ATTENTION_FWD_WARPS: got"):
        load_variant("ops/gla.scan", {"MADC_ATTENTION_FWD_WARPS": value})
    assert load_variant("ops/gla.scan", {"MADC_ATTENTION_FWD_WARPS": "8"}).FWD_WARPS == 8


def test_state_stages_take_any_positive_integer():
    """MADC_ATTENTION_STATE_STAGES is a pipeline depth, not a tile width: 3 is accepted (a
    power-of-two check refused it once), 0 and words are not; only pipelined launches take
    it (the interpreter's and _first_fit's unpipelined options stay as they are)."""
    from madc.bench_attention import load_variant

    module = load_variant("ops/gla.scan", {"MADC_ATTENTION_STATE_STAGES": "3"})
    assert module.STATE_STAGES == (3, 3)  # both decay kinds
    assert module._state_stages({"num_stages": 2, "num_warps": 4}) == {"num_stages": 3,
                                                                       "num_warps": 4}
    assert module._state_stages({"num_stages": 1}) == {"num_stages": 1}
    assert module._state_stages({}) == {}
    for value in ("0", "two"):
        with pytest.raises(ValueError, match="STATE_STAGES: got .* a positive integer"):
            load_variant("ops/gla.scan", {"MADC_ATTENTION_STATE_STAGES": value})


def test_scalar_decay_launch_settings():
    """Settings whose best value differs by decay kind are pairs indexed by "the decay is
    scalar": the scalar value comes from MADC_ATTENTION_SCALAR_<name>, else the plain
    variable (a sweep of one kind sets that), else its own default."""
    from madc.bench_attention import load_variant

    module = load_variant("ops/gla.scan", {})
    assert module.FWD_BLOCK_V == (128, 64) and module.STATE_MAXNREG == (0, 128)
    assert load_variant("ops/gla.scan", {"MADC_ATTENTION_FWD_BV": "32"}).FWD_BLOCK_V == (32, 32)
    module = load_variant("ops/gla.scan", {"MADC_ATTENTION_SCALAR_FWD_BV": "128",
                                           "MADC_ATTENTION_STATE_MAXNREG": "0"})
    assert module.FWD_BLOCK_V == (128, 128) and module.STATE_MAXNREG == (0, 0)
    # a register cap goes to compiled launches only: the interpreter takes no launch options
    assert module._maxnreg({"num_warps": 4}, 128) == {"maxnreg": 128}
    assert module._maxnreg({}, 128) == {} and module._maxnreg({"num_warps": 4}, 0) == {}
    for name, value in (("SCALAR_FWD_BV", "48"), ("STATE_MAXNREG", "-1"),
                        ("SCALAR_STATE_MAXNREG", "many")):
        with pytest.raises(ValueError, match=f"MADC_ATTENTION_{name}: got"):
            load_variant("ops/gla.scan", {f"MADC_ATTENTION_{name}": value})


def test_recurrence_warps_follow_the_program_count():
    """Under two recurrence programs per SM (B=2, H=16, K=V=128: 128 programs on 132 SMs) the
    recurrences take STATE_FEW_WARPS of the decay's kind, else STATE_WARPS; off a GPU (no SM
    count) the latter."""
    from madc.bench_attention import load_variant

    module = load_variant("ops/gla.scan", {})
    assert (module.STATE_WARPS, module.STATE_FEW_WARPS) == (4, (8, 4))
    assert module._state_warps(128, 132) == 8 and module._state_warps(263, 132) == 8
    assert module._state_warps(128, 132, scalar=True) == 4
    assert module._state_warps(264, 132) == 4 and module._state_warps(512, 132) == 4
    assert module._state_warps(128, None) == 4
    # few programs: a scalar decay's recurrences take the vector decays' depth (3)
    assert module._few_programs(128, 132) and not module._few_programs(264, 132)
    assert not module._few_programs(1, None)
    assert module._state_stages({"num_stages": 2}, scalar=True, few=True) == {"num_stages": 3}
    assert module.STATE_STAGES == (3, 2)  # vector decays, scalar decays
    assert module._state_stages({"num_stages": 2}, scalar=True) == {"num_stages": 2}
    assert module._state_stages({"num_stages": 2}) == {"num_stages": 3}
    # the plain name sets both decay kinds
    module = load_variant("ops/gla.scan", {"MADC_ATTENTION_STATE_FEW_WARPS": "2"})
    assert module.STATE_FEW_WARPS == (2, 2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("scalar", [True, False])
def test_fused_forward_equals_two_kernels(monkeypatch, dtype, scalar):
    """The one-kernel forward (FUSED_FWD) computes the outputs and final state of the
    two-kernel forward (state recurrence, then outputs) without writing the per-chunk states:
    both decay kinds, the exact and the rounded recurrence, an initial state, packed sequences
    (one empty, one shorter than a chunk) and a partial last chunk."""
    package, _ = load_package(str(ROOT / "ops/gla.scan"))
    kernels = importlib.import_module(package.__name__ + ".triton_attention")
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 45, 2, 32, generator=gen).to(dtype) for _ in range(3))
    g = torch.nn.functional.logsigmoid(torch.randn(1, 45, 2, *(() if scalar else (32,)),
                                                   generator=gen))
    h0 = torch.randn(3, 2, 32, 32, generator=gen)
    cu = torch.tensor([0, 7, 7, 45], dtype=torch.int32)
    calls = []
    for cu_seqlens, init in ((None, None), (cu, h0)):
        batch = slice(None) if cu_seqlens is not None else slice(0, 1)
        G = kernels.attention_log_decays(q, g, cu_seqlens)
        for exact in (False, True):
            runs = []
            for fused in ((0, 0), (1, 1)):
                monkeypatch.setattr(kernels, "FUSED_FWD", fused)
                o, ht, h = kernels.attention_fwd(q, k, v, G, None if init is None else
                                                 init[batch], cu_seqlens, 0.25, None, exact,
                                                 keep_states=False)
                calls.append(h is None)
                runs.append((o, ht))
            (o2, ht2), (o1, ht1) = runs
            assert o1.dtype == dtype and ht1.dtype == torch.float32
            torch.testing.assert_close(o1, o2, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(ht1, ht2, rtol=1e-6, atol=1e-6)
    # h is None exactly when the fused kernel ran; keep_states=True always returns h
    assert calls == [False, True] * 4
    monkeypatch.setattr(kernels, "FUSED_FWD", (1, 1))
    assert kernels.attention_fwd(q, k, v, G, h0, cu, 0.25)[2] is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_output_row_blocks(monkeypatch, dtype):
    """A scalar decay's output kernel takes OUTPUT_ROWS-row query blocks of a longer chunk
    (each block adds the scores against the chunk's earlier blocks): with chunks of 64 rows
    in blocks of 16, the outputs equal those of 16-row chunks, and the final state that of
    the same recurrence, for both recurrences, an initial state, packed sequences (one
    empty, one inside a block) and a partial last chunk."""
    package, _ = load_package(str(ROOT / "ops/retnet.scan"))
    kernels = importlib.import_module(package.__name__ + ".triton_attention")
    assert kernels.OUTPUT_ROWS == 16 and kernels.STATE_CHUNK == 32
    monkeypatch.setattr(kernels, "FUSED_FWD", (0, 0))
    gen = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(1, 75, 2, 32, generator=gen).to(dtype) for _ in range(3))
    g = torch.nn.functional.logsigmoid(torch.randn(1, 75, 2, generator=gen))
    h0 = torch.randn(3, 2, 32, 32, generator=gen)
    cu = torch.tensor([0, 7, 7, 75], dtype=torch.int32)
    tol = 5e-3 if dtype == torch.bfloat16 else 1e-6  # norm-relative: bf16 states rounded
    for cu_seqlens, init in ((None, None), (cu, h0)):
        for exact in (False, True):
            runs = []
            for chunk in (16, 64):
                G = kernels.attention_log_decays(q, g, cu_seqlens, chunk)
                runs.append(kernels.attention_fwd(q, k, v, G, init, cu_seqlens, 0.25, chunk,
                                                  exact, keep_states=False))
            (o16, ht16, _), (o64, ht64, h64) = runs
            assert h64.shape[1] == 2  # two 64-row chunks, each in four row blocks
            assert _rel(o64, o16) <= tol and _rel(ht64, ht16) <= tol


@pytest.mark.parametrize("spec", ["ops/retnet.scan", "ops/gla.scan"])
def test_unfused_forward_takes_long_chunks(monkeypatch, spec):
    """Where the fused forward is off, a scalar decay's forward that keeps no states takes
    STATE_CHUNK-row chunks (32 in the interpreter, against 16 for the backward): the backward
    then sums its own cumulative log-decays from the saved g. Outputs, final states and
    gradients equal the reference; GLA (per-channel decays) keeps the call's chunks."""
    tri, _ = _modules(spec)
    kernels = importlib.import_module(type(tri).__module__ + ".triton_attention")
    monkeypatch.setattr(kernels, "FUSED_FWD", (0, 0))
    chunks, chunk_of = [], kernels._forward_chunk
    monkeypatch.setattr(kernels, "_forward_chunk",
                        lambda *args: chunks.append(chunk_of(*args)) or chunks[-1])
    _compare(spec, B=2, T=37)
    _compare(spec, B=1, T=40, cu=torch.tensor([0, 9, 9, 40], dtype=torch.int32))
    assert chunks == [32 if spec == "ops/retnet.scan" else 16] * 2
    q, v = torch.zeros(1, 8, 2, 16), torch.zeros(1, 8, 2, 16)
    assert chunk_of(q, v, torch.zeros(1, 8, 2), None, 64, False) == 64  # named: kept
    assert chunk_of(q, v, torch.zeros(1, 8, 2), None, None, True) == 16  # keeps states
    monkeypatch.setattr(kernels, "FUSED_FWD", (0, 1))
    assert chunk_of(q, v, torch.zeros(1, 8, 2), None, None, False) == 16  # fused


def test_fused_forward_needs_a_program_per_sm():
    """The fused forward is taken for the decay kinds FUSED_FWD names (scalar by default)
    when its programs fill every SM once; fewer (B=2, H=16: 64 programs on 132 SMs) keep the
    two kernels, and off a GPU (no SM count) it always runs, so the CPU tests cover it."""
    from madc.bench_attention import load_variant

    module = load_variant("ops/gla.scan", {})
    assert module.FUSED_FWD == (0, 1)
    assert module._use_fused(True, 256, 132) and module._use_fused(True, 132, 132)
    assert not module._use_fused(True, 64, 132) and module._use_fused(True, 1, None)
    assert not module._use_fused(False, 256, 132) and not module._use_fused(False, 1, None)
    module = load_variant("ops/gla.scan", {"MADC_ATTENTION_FUSED_FWD": "1"})
    assert module.FUSED_FWD == (1, 1) and module._use_fused(False, 256, 132)
    for value in ("2", "yes"):
        with pytest.raises(ValueError, match="MADC_ATTENTION_FUSED_FWD: got .* from 0 to 1"):
            load_variant("ops/gla.scan", {"MADC_ATTENTION_FUSED_FWD": value})
