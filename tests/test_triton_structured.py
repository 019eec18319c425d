"""Triton structured-transition backend == float64 oracle: outputs, final states, gradients.

Runs the kernels under `TRITON_INTERPRET=1` on CPU with tiny shapes. The oracle is the emitted
package's reference backend (`reference.py`, the sequential recurrence) run in float64; the
two specs whose transition acts on two state axes (oscillatory_ssm's [P, 2] blocks and
monarch_ssm's [b, b]) are also checked against float64 loops written here from the spec's
text. The fp32 kernels must agree to a relative error of 1e-5 (max abs error / max abs value).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")

from madc.codegen import triton_structured  # noqa: E402
from madc.codegen.package import emit_package, write_package  # noqa: E402
from madc.frontend import load_spec  # noqa: E402

# The interpreter evaluates both branches of tl.where with numpy: -inf - -inf and log(0) warn
# there although the selected values are finite.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter",
                                        "ignore::DeprecationWarning:triton.runtime.interpreter")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-5
SMALL = {"N": 6, "P": 3, "b": 2, "K": 5, "V": 3, "H": 2}
ZOO = ("oscillatory_ssm", "signed_perm_ssm", "pd_ssm", "circulant_ssm", "monarch_ssm",
       "cd_ssm", "deltanet")
# Structured specs in the other semirings (not in the zoo, which is all real).
SEMIRING_SPECS = {
    "trop_monomial": """scan trop_monomial
dims N = 5
semiring tropical
input d : [N]
input x : [N]
let P = roll(eye(N), 2, axis=1)
state h : [N]
h = perm(P) @ diag(d) @ h + x
readout y = h
""",
    "log_block_right": """scan log_block_right
dims K = 3, R = 2
semiring log
input m : [K, 2, 2]
input x : [R, K, 2]
state h : [R, K, 2]
h = h @ block_diag(m) + x
readout y = sum(h, axis=0)
""",
    "maxtimes_dense": """scan maxtimes_dense
dims N = 4, D = 3
semiring max_times over nonneg
input a : [N, N]
input x : [N, D]
input q : [N]
let A = sigmoid(a)
let w = sigmoid(q)
let b = sigmoid(x)
state h : [N, D]
h = dense(A) @ h + b
readout y = sum(h * w[:, None], axis=0)
""",
    "minplus_circ_heads": """scan minplus_circ_heads
dims H = 2, N = 5, D = 2
heads H
semiring min_plus
input c : [N]
input x : [D, N]
param bias : [H, N] init uniform(0, 1)
let cc = c + bias
state h : [D, N]
h = h @ circulant(cc) + x
readout y = h
""",
    "real_onehot_right": """scan real_onehot_right
dims N = 4, D = 3
semiring real
input u : [N, N]
input g : [N]
input x : [D, N]
param s : [N] init uniform(0.5, 1)
let P = hardmax(u, axis=0)
state h : [D, N]
h = h @ diag(sigmoid(g) * s) @ onehot(P) + x
readout y = sum(h, axis=1)
""",
    "trop_dense": """scan trop_dense
dims N = 4, D = 2
semiring tropical
input a : [N, N]
input x : [N, D]
state h : [N, D]
h = dense(a) @ h + x
readout y = sum(h, axis=0)
""",
    "toeplitz_real": """scan toeplitz_real
dims D = 2
semiring real
input c : [7]
input x : [4, D]
let cc = 0.3 * tanh(c)
state h : [4, D]
h = toeplitz(cc) @ h + x
readout y = h
""",
}

_PACKAGES: dict = {}


def _spec(name: str):
    source = SEMIRING_SPECS.get(name)
    if source is not None:
        return load_spec(source, path=f"<{name}>")
    return load_spec(os.path.join(ROOT, "ops", f"{name}.scan"))


def _package(name: str, tmp_root):
    """(ir, reference module, triton_structured module) of spec `name`, emitted once."""
    if name not in _PACKAGES:
        ir = _spec(name)
        files = emit_package(ir, backends=("reference",))
        files["triton_structured.py"] = triton_structured.emit(ir)
        tag = f"ts_pkg_{name}"
        write_package(files, tmp_root / tag)
        if str(tmp_root) not in sys.path:
            sys.path.insert(0, str(tmp_root))
        _PACKAGES[name] = (ir, importlib.import_module(f"{tag}.reference"),
                           importlib.import_module(f"{tag}.triton_structured"))
    return _PACKAGES[name]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ts_packages")


def _dims(ir) -> dict:
    return {k: SMALL.get(k, v) for k, v in ir.dims}


def _shape(shape, dims) -> tuple:
    return tuple(dims[d] if isinstance(d, str) else d for d in shape)


def _random(ir, dims, B, T, n_seq, seed, initial, values="normal", neginf=()):
    """float64 leaves: inputs, params, initial states (or None). `values`: "normal" or "ints"
    (small integers: exact ties under max/min); the inputs named in `neginf` get a fifth of
    their entries -inf (the log/tropical zero)."""
    g = torch.Generator().manual_seed(seed)
    heads = (dims[ir.heads],) if ir.heads else ()

    def rnd(*shape, zeros=False):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        if values == "ints":
            x = torch.randint(-2, 3, shape, generator=g).double()
        if zeros:
            x = torch.where(torch.rand(shape, generator=g) < 0.2, -torch.inf, x)
        return x.requires_grad_()

    inputs = {i.name: rnd(B, T, *heads, *_shape(i.shape, dims), zeros=i.name in neginf)
              for i in ir.inputs}
    params = {p.name: rnd(*(heads if p.per_head else ()), *_shape(p.shape, dims))
              for p in ir.params}
    states = None
    if initial:
        states = tuple(torch.randn(n_seq, *heads, *_shape(s.shape, dims), generator=g,
                                   dtype=torch.float64).round().requires_grad_()
                       for s in ir.states)
    return inputs, params, states


def _fp32(tree):
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: v.detach().float().requires_grad_() for k, v in tree.items()}
    return tuple(v.detach().float().requires_grad_() for v in tree)


def _leaves(inputs, params, states):
    return list(inputs.values()) + list(params.values()) + list(states or ())


def _loss(outputs, finals, weights):
    total = 0
    for value, w in zip(tuple(outputs) + tuple(finals), weights):
        total = total + (value.double() * w).sum()
    return total


def _rel(got, want) -> float:
    got, want = got.detach().double(), want.detach().double()
    finite = torch.isfinite(want)
    assert torch.equal(finite, torch.isfinite(got)), "infinities differ"
    scale = want[finite].abs().max().clamp_min(1e-12) if finite.any() else 1.0
    return float((got[finite] - want[finite]).abs().max() / scale) if finite.any() else 0.0


def _check(name, oracle, tri, dims, B, T, cu=None, initial=True, seed=0, values="normal",
           neginf=(), **options):
    """Run both, compare outputs, final states and the gradient of a random projection."""
    ir = _PACKAGES[name][0]
    n_seq = B if cu is None else len(cu) - 1
    inputs, params, states = _random(ir, dims, B, T, n_seq, seed, initial, values, neginf)
    cu_t = None if cu is None else torch.tensor(cu)
    want_y, want_h = oracle(inputs, params, dims, states, cu_t)
    i32, p32, s32 = _fp32(inputs), _fp32(params), _fp32(states)
    got_y, got_h = tri.scan(i32, p32, dims, s32, cu_t, **options)
    assert len(got_y) == len(want_y) and len(got_h) == len(want_h)
    for got, want in zip(tuple(got_y) + tuple(got_h), tuple(want_y) + tuple(want_h)):
        assert got.shape == want.shape and got.dtype == torch.float32
        assert _rel(got, want) <= TOL, f"{name}: forward rel err {_rel(got, want):.2e}"
    g = torch.Generator().manual_seed(seed + 1)
    weights = [torch.randn(w.shape, generator=g, dtype=torch.float64)
               for w in tuple(want_y) + tuple(want_h)]
    want_g = torch.autograd.grad(_loss(want_y, want_h, weights), _leaves(inputs, params, states),
                                 allow_unused=True)
    got_g = torch.autograd.grad(_loss(got_y, got_h, weights), _leaves(i32, p32, s32),
                                allow_unused=True)
    names = list(inputs) + list(params) + [f"initial_state[{k}]" for k in range(len(states or ()))]
    for label, got, want in zip(names, got_g, want_g):
        if want is None:
            assert got is None or float(got.abs().max()) == 0.0, f"{name}: d{label} not zero"
            continue
        assert got is not None, f"{name}: no gradient for {label}"
        assert _rel(got, want) <= TOL, f"{name}: d{label} rel err {_rel(got, want):.2e}"


# ---------------------------------------------------------------- hand-written oracles


def _loop(step, readout, h0, n_seq, B, T, cu):
    """Sequential float64 scan: step(t, b, h) -> h (b: batch row), readout(t, b, h) -> y."""
    bounds = [(n, 0, T) for n in range(B)] if cu is None else \
        [(0, lo, hi) for lo, hi in zip(cu.tolist()[:-1], cu.tolist()[1:])]
    ys, finals = {}, []
    for k, (b, lo, hi) in enumerate(bounds):
        h = h0[k]
        for t in range(lo, hi):
            h = step(t, b, h)
            ys[(b, t)] = readout(t, b, h)
        finals.append(h)
    y = torch.stack([torch.stack([ys[(b, t)] for t in range(T)]) for b in range(B)])
    return (y,), (torch.stack(finals),)


def _oscillatory(inputs, params, dims, states, cu):
    x, dt = inputs["x"].double(), inputs["dt"].double()
    delta = torch.nn.functional.softplus(dt + params["dt_bias"])
    r, phase = torch.exp(-delta), delta * params["omega"]
    c, s = r * torch.cos(phase), r * torch.sin(phase)
    b = (delta * x)[..., None] * params["B_in"]
    B, T = x.shape[:2]
    n_seq = B if cu is None else cu.numel() - 1
    h0 = states[0] if states else torch.zeros(n_seq, dims["P"], 2, dtype=torch.float64)

    def step(t, i, h):
        # [[c, -s], [s, c]] per oscillator, applied to (position, velocity)
        first = c[i, t] * h[:, 0] - s[i, t] * h[:, 1]
        second = s[i, t] * h[:, 0] + c[i, t] * h[:, 1]
        return torch.stack([first, second], dim=1) + b[i, t]

    return _loop(step, lambda t, i, h: (h * params["C_out"]).sum(1), h0, n_seq, B, T, cu)


def _monarch(inputs, params, dims, states, cu):
    L, R, x = (inputs[k].double() for k in ("L", "R", "x"))
    B, T = x.shape[:2]
    n_seq = B if cu is None else cu.numel() - 1
    h0 = states[0] if states else torch.zeros(n_seq, dims["b"], dims["b"], dtype=torch.float64)

    def blocks(m, v):  # blockdiag(m) @ v with v laid out [block, within]
        return torch.einsum("kij,kj->ki", m, v)

    def step(t, i, h):
        # A = P^T blockdiag(L) P blockdiag(R); P transposes the [b, b] layout (an involution)
        v = blocks(R[i, t], h)
        v = blocks(L[i, t], v.T.contiguous()).T
        return v + x[i, t]

    return _loop(step, lambda t, i, h: h, h0, n_seq, B, T, cu)


def _oracle(name, tmp_root):
    ir, ref, tri = _package(name, tmp_root)
    return ref.scan, tri


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("case", ["T1", "T7_initial", "cu_seqlens"])
def test_zoo_matches_reference(name, case, tmp_root):
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    if case == "T1":
        _check(name, oracle, tri, dims, B=2, T=1, initial=False)
    elif case == "T7_initial":
        _check(name, oracle, tri, dims, B=2, T=7, initial=True, seed=3)
    else:
        # an empty sequence in the middle: its final state is its initial state
        _check(name, oracle, tri, dims, B=1, T=8, cu=[0, 3, 3, 8], initial=True, seed=5)


@pytest.mark.parametrize("name,oracle", [("oscillatory_ssm", _oscillatory),
                                         ("monarch_ssm", _monarch)])
def test_two_axis_specs_match_hand_written_loops(name, oracle, tmp_root):
    _, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    _check(name, oracle, tri, dims, B=2, T=5, initial=True, seed=7)
    _check(name, oracle, tri, dims, B=1, T=6, cu=[0, 2, 6], initial=False, seed=8)


@pytest.mark.parametrize("name", sorted(SEMIRING_SPECS))
def test_semirings_and_sides_match_reference(name, tmp_root):
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    _check(name, oracle, tri, dims, B=2, T=5, initial=True, seed=11)
    _check(name, oracle, tri, dims, B=1, T=6, cu=[0, 1, 6], initial=True, seed=12)
    # from the zero state: the first step's reduction is all zero (-inf for log/tropical)
    _check(name, oracle, tri, dims, B=2, T=2, initial=False, seed=13)


@pytest.mark.parametrize("name", ["trop_monomial", "trop_dense", "minplus_circ_heads"])
def test_exact_ties_split_like_reference(name, tmp_root):
    """Integer inputs make max/min ties exact: the adjoint splits evenly between tied terms
    (torch.amax/amin over a reduction, Heaviside(0) = 1/2 between the reduction and b)."""
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    inputs, _, _ = _random(_PACKAGES[name][0], dims, 2, 6, 2, 21, True, "ints")
    assert any(len(x.unique()) < x.numel() for x in inputs.values())
    _check(name, oracle, tri, dims, B=2, T=6, initial=True, seed=21, values="ints")


@pytest.mark.parametrize("name,neginf", [("trop_monomial", ("x",)), ("trop_dense", ("a", "x")),
                                         ("log_block_right", ("m", "x"))])
def test_neg_inf_inputs(name, neginf, tmp_root):
    """-inf (the semiring zero) in per-token inputs: same infinities, same finite values and
    gradients. Tropical rows whose every term is the zero are avoided: there the gradient is
    a convention that depends on how the product is factored (docs/structured.md)."""
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    inputs, _, _ = _random(_PACKAGES[name][0], dims, 2, 5, 2, 31, True, neginf=neginf)
    assert all(bool(torch.isinf(inputs[k]).any()) for k in neginf)
    _check(name, oracle, tri, dims, B=2, T=5, initial=True, seed=31, neginf=neginf)


def test_bf16_inputs(tmp_root):
    """bf16 inputs run with fp32 state and accumulation and return bf16."""
    oracle, tri = _oracle("circulant_ssm", tmp_root)
    dims = _dims(_PACKAGES["circulant_ssm"][0])
    inputs, params, _ = _random(_PACKAGES["circulant_ssm"][0], dims, 2, 6, 2, 41, False)
    (want,), (want_h,) = oracle(inputs, params, dims, None, None)
    low = {k: v.detach().bfloat16() for k, v in inputs.items()}
    (got,), (got_h,) = tri.scan(low, {}, dims, None, None)
    assert got.dtype == torch.bfloat16 and got_h.dtype == torch.bfloat16
    assert _rel(got, want) <= 2e-2 and _rel(got_h, want_h) <= 2e-2


def test_layouts_follow_the_written_factors(tmp_root):
    layouts = {name: triton_structured.layout_of(_spec(name).updates[0].transition)
               for name in ZOO + ("trop_monomial", "toeplitz_real")}
    assert layouts == {
        "oscillatory_ssm": "block", "signed_perm_ssm": "column", "pd_ssm": "column",
        "circulant_ssm": "circ", "monarch_ssm": "dense", "cd_ssm": "dense",
        "deltanet": "dense", "trop_monomial": "column", "toeplitz_real": "dense"}


def test_unsupported_specs_are_refused_with_a_reason():
    ir = load_spec(os.path.join(ROOT, "ops", "selective_ssm.scan"))
    assert not triton_structured.supports(ir)
    assert "elementwise" in triton_structured.why_unsupported(ir)
    with pytest.raises(triton_structured.UnsupportedError, match="selective_ssm"):
        triton_structured.emit(ir)


def test_emit_is_deterministic_and_compiles():
    ir = _spec("pd_ssm")
    first, second = triton_structured.emit(ir), triton_structured.emit(_spec("pd_ssm"))
    assert first == second
    compile(first, "triton_structured.py", "exec")
    assert "import madc" not in first and "from madc" not in first
    assert ir.source_hash in first


SOFT_PERM = """scan soft_perm
dims N = 3
semiring real
input u : [N, N]
input x : [N]
let P = sigmoid(u)
state h : [N]
h = perm(P) @ h + x
readout y = h
"""


def test_runtime_errors_name_the_argument(tmp_root):
    ir, _, tri = _package("pd_ssm", tmp_root)
    dims = _dims(ir)
    inputs, params, states = _random(ir, dims, 2, 3, 2, 0, True)
    inputs = {k: v.detach().float() for k, v in inputs.items()}
    good_state = tuple(s.detach().float() for s in states)
    bad = dict(inputs, u=inputs["u"][..., :-1])
    with pytest.raises(ValueError, match=r"input 'u': got shape \(2, 3, 6, 5\), expected"):
        tri.scan(bad, params, dims, None, None)
    with pytest.raises(ValueError, match=r"inputs: got \['d', 'u'\], expected the names"):
        tri.scan({k: inputs[k] for k in ("d", "u")}, params, dims, None, None)
    with pytest.raises(ValueError, match=r"input 'x': got Tensor torch.int64"):
        tri.scan(dict(inputs, x=inputs["x"].long()), params, dims, None, None)
    with pytest.raises(ValueError, match=r"initial_state 'h': got torch.Size\(\[1, 6\]\), "
                                         r"expected shape \[2, 6\]"):
        tri.scan(inputs, params, dims, (good_state[0][:1],), None)
    with pytest.raises(ValueError, match=r"cu_seqlens: got \[0, 3\] with B = 2"):
        tri.scan(inputs, params, dims, None, torch.tensor([0, 3]))
    one = {k: v[:1] for k, v in inputs.items()}
    with pytest.raises(ValueError, match=r"non-decreasing offsets from 0 to T = 3"):
        tri.scan(one, params, dims, None, torch.tensor([0, 2, 1, 3]))
    with pytest.raises(ValueError, match=r"dims: got unknown names \['Q'\]"):
        tri.scan(inputs, params, dict(dims, Q=3), None, None)


def test_non_one_hot_perm_is_an_error(tmp_path):
    ir = load_spec(SOFT_PERM, path="<soft_perm>")
    file = tmp_path / "soft_perm_ts.py"
    file.write_text(triton_structured.emit(ir))
    spec = importlib.util.spec_from_file_location("soft_perm_ts", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    inputs = {"u": torch.randn(1, 2, 3, 3), "x": torch.randn(1, 2, 3)}
    with pytest.raises(ValueError, match=r"perm\(P\): every column of P must hold exactly one"):
        mod.scan(inputs, {}, {}, None, None)


@pytest.mark.parametrize("name", ["deltanet", "maxtimes_dense"])
def test_row_blocks_accumulate_the_tile_gradient(name, tmp_root):
    """One row per program: several programs add into one token's tile gradient."""
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    _check(name, oracle, tri, dims, B=2, T=4, initial=True, seed=51, block_rows=1)


@pytest.mark.parametrize("name", ["oscillatory_ssm", "pd_ssm", "deltanet", "trop_dense",
                                  "log_block_right", "minplus_circ_heads"])
def test_chunk_parallel(name, tmp_root):
    """Chunk-parallel forward (chunk transitions from the identity, a carry pass, a rerun)
    and, in the real semiring, backward (chunk adjoint maps, a reverse carry, a rerun), with
    chunks that do not divide T, packed sequences and an empty sequence."""
    oracle, tri = _oracle(name, tmp_root)
    dims = _dims(_PACKAGES[name][0])
    _check(name, oracle, tri, dims, B=2, T=7, initial=True, seed=61, chunk_size=3)
    _check(name, oracle, tri, dims, B=1, T=9, cu=[0, 4, 4, 9], initial=True, seed=62,
           chunk_size=2)
