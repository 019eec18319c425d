"""The reference backend against independent oracles written here: explicit loops, dense
transition matrices built by hand for every structure class, and the log semiring against
the real one (log of a real scan of exp'd terms)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from codegen_util import REPO, load_zoo, make_inputs, rel_err

import madc.runtime as rt

TOL = 1e-12


def _dense_loop(mats, injects, h0=None):
    """h_t = M_t @ h_t-1 + b_t over dim 1 (real), matrices [B, T, n, n]."""
    h = torch.zeros_like(injects[:, 0]) if h0 is None else h0
    out = []
    for t in range(injects.shape[1]):
        h = (mats[:, t] @ h.unsqueeze(-1)).squeeze(-1) + injects[:, t]
        out.append(h)
    return torch.stack(out, 1), h


def test_selective_ssm_explicit_loop():
    module = load_zoo("selective_ssm", D=3, N=2)
    inp = make_inputs(module, 2, 9)
    p = dict(module.named_parameters())
    delta = F.softplus(inp["dt"] + p["dt_bias"])
    a = torch.exp(-delta[..., None] * torch.exp(p["A_log"]))
    b = (delta * inp["x"])[..., None] * inp["B"][..., None, :]
    h = torch.zeros(2, 3, 2, dtype=torch.float64)
    ys = []
    for t in range(9):
        h = a[:, t] * h + b[:, t]
        ys.append((h * inp["C"][:, t, None, :]).sum(-1) + p["D_skip"] * inp["x"][:, t])
    y, s = module(**inp, return_state=True)
    assert rel_err(y, torch.stack(ys, 1)) <= TOL
    assert rel_err(s, h) <= TOL


def test_param_init_follows_the_spec():
    module = load_zoo("selective_ssm", D=3, N=4)
    # initialised in float32 (the default dtype), then converted by .double()
    assert torch.equal(module.A_log.detach(), torch.log(torch.arange(4.0) + 1).double()
                       .expand(3, 4))
    assert torch.equal(module.D_skip.detach(), torch.ones(3, dtype=torch.float64))
    assert ((module.dt_bias >= -4) & (module.dt_bias <= -2)).all()
    assert isinstance(module.A_log, torch.nn.Parameter)


def test_log_semiring_is_log_of_the_real_scan():
    """In `semiring log`, h = a*h + x means h = logaddexp(a + h, x): exp of it is the real
    scan of (exp a, exp x)."""
    module = load_zoo("log_ssm", D=3)
    inp = make_inputs(module, 2, 12)
    a = -F.softplus(-inp["g"])
    ys, _ = _dense_loop(torch.diag_embed(a.exp()), inp["x"].exp())
    assert rel_err(module(**inp), ys.log()) <= TOL


def test_tropical_is_a_max_plus_loop():
    module = load_zoo("tropical_ssm", D=3)
    inp = make_inputs(module, 2, 12)
    a = -F.softplus(-inp["g"])
    h = torch.full((2, 3), -torch.inf, dtype=torch.float64)
    ys = []
    for t in range(12):
        h = torch.maximum(a[:, t] + h, inp["x"][:, t])
        ys.append(h)
    assert rel_err(module(**inp), torch.stack(ys, 1)) == 0.0


def _circulant(c):
    n = c.shape[-1]
    i = torch.arange(n)
    return c[..., (i[:, None] - i[None, :]) % n]


def _blockdiag(blocks):
    """[B, T, nb, k, k] -> [B, T, nb*k, nb*k] with torch.block_diag per token."""
    lead = blocks.shape[:2]
    flat = blocks.reshape(-1, *blocks.shape[2:])
    out = torch.stack([torch.block_diag(*m) for m in flat])
    return out.reshape(*lead, *out.shape[1:])


def _shuffle(b):
    """P with (P x)[i*b + j] = x[j*b + i]."""
    n = b * b
    p = torch.zeros(n, n, dtype=torch.float64)
    for i in range(b):
        for j in range(b):
            p[i * b + j, j * b + i] = 1
    return p


def _matrices(name, inp):
    """The dense transition matrices [B, T, n, n] of a zoo spec, written out by hand."""
    if name == "circulant_ssm":
        return _circulant(torch.softmax(inp["w"], -1))
    if name == "cd_ssm":
        c = _circulant(torch.softmax(inp["w"], -1))
        return (torch.diag_embed(torch.sigmoid(inp["d1"])) @ c
                @ torch.diag_embed(torch.sigmoid(inp["d2"])))
    if name == "pd_ssm":
        u = inp["u"]
        onehot = F.one_hot(u.argmax(-2), u.shape[-1]).transpose(-1, -2).to(u.dtype)
        return onehot @ torch.diag_embed(torch.sigmoid(inp["d"]))
    if name == "signed_perm_ssm":
        n = inp["z"].shape[-1]
        perm = torch.roll(torch.eye(n, dtype=torch.float64), 1, 0)
        return perm @ torch.diag_embed(torch.where(inp["z"] >= 0, 1.0, -1.0).double())
    if name == "monarch_ssm":
        b = inp["L"].shape[-1]
        p = _shuffle(b)
        return p @ _blockdiag(inp["L"]) @ p @ _blockdiag(inp["R"])
    raise KeyError(name)


@pytest.mark.parametrize("name", ["circulant_ssm", "cd_ssm", "pd_ssm", "signed_perm_ssm",
                                  "monarch_ssm"])
def test_structured_classes_against_dense_matrices(name):
    dims = {"monarch_ssm": {"b": 2}}.get(name, {"N": 4})
    module = load_zoo(name, **dims)
    inp = make_inputs(module, 2, 10, seed=4)
    injects = inp["x"].reshape(2, 10, -1)
    ys, h = _dense_loop(_matrices(name, inp), injects)
    y, s = module(**inp, return_state=True)
    assert rel_err(y.reshape(ys.shape), ys) <= TOL
    assert rel_err(s.reshape(h.shape), h) <= TOL


def test_block_diagonal_oscillator_against_dense():
    module = load_zoo("oscillatory_ssm", P=3)
    inp = make_inputs(module, 2, 8, seed=5)
    p = dict(module.named_parameters())
    delta = F.softplus(inp["dt"] + p["dt_bias"])
    r, ang = torch.exp(-delta), delta * p["omega"]
    c, s = r * torch.cos(ang), r * torch.sin(ang)
    blocks = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    injects = ((delta * inp["x"])[..., None] * p["B_in"]).reshape(2, 8, 6)
    hs, _ = _dense_loop(_blockdiag(blocks), injects)
    want = (hs.reshape(2, 8, 3, 2) * p["C_out"]).sum(-1)
    assert rel_err(module(**inp), want) <= TOL


def test_deltanet_identity_minus_outer_matrix_state():
    module = load_zoo("deltanet", H=1, K=3, V=2)
    inp = make_inputs(module, 1, 7, seed=6)
    q, k, v = (inp[n][:, :, 0] for n in "qkv")
    beta = torch.sigmoid(inp["beta"][:, :, 0])
    kn = k / torch.sqrt((k * k).sum(-1, keepdim=True) + 1e-6)
    bk = beta[..., None] * kn
    S = torch.zeros(1, 3, 2, dtype=torch.float64)
    outs = []
    for t in range(7):
        A = torch.eye(3, dtype=torch.float64) - bk[:, t, :, None] * kn[:, t, None, :]
        S = A @ S + bk[:, t, :, None] * v[:, t, None, :]
        outs.append(((q[:, t] * 3 ** -0.5)[:, :, None] * S).sum(-2))
    y, s = module(**inp, return_state=True)
    assert rel_err(y[:, :, 0], torch.stack(outs, 1)) <= TOL
    assert rel_err(s[:, 0], S) <= TOL


def test_hardmax_and_hardsign_are_straight_through():
    module = load_zoo("pd_ssm", N=3)
    prologue = __import__(type(module).__module__ + ".prologue", fromlist=["x"])
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    hard = prologue.hardmax(x, -1)
    assert torch.equal(hard, F.one_hot(x.argmax(-1), 3).to(x.dtype))
    w = torch.randn(4, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad((hard * w).sum(), x)
    (g_soft,) = torch.autograd.grad((torch.softmax(x, -1) * w).sum(), x)
    assert torch.allclose(g, g_soft, rtol=0, atol=1e-14)
    sign = prologue.hardsign(x)
    assert torch.equal(sign, torch.where(x >= 0, 1.0, -1.0).double())
    (g,) = torch.autograd.grad((sign * w).sum(), x)
    assert torch.allclose(g, w * (1 - torch.tanh(x) ** 2), rtol=0, atol=1e-14)


def test_heads_and_per_head_params():
    """retnet: per-head decay param [H] against scalar per-token state [K, V] per head."""
    module = load_zoo("retnet", H=2, K=2, V=3)
    inp = make_inputs(module, 1, 6, seed=8)
    gamma = torch.exp(module.log_gamma.detach())
    S = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    outs = []
    for t in range(6):
        S = gamma[:, None, None] * S + inp["k"][:, t, :, :, None] * inp["v"][:, t, :, None, :]
        outs.append(((inp["q"][:, t] * 2 ** -0.5)[..., None] * S).sum(-2))
    assert rel_err(module(**inp), torch.stack(outs, 1)) <= TOL


def test_user_semiring_through_load():
    """A user-defined (max, +) semiring gets the tropical lowering (facts, not names)."""
    source = (REPO / "ops" / "tropical_ssm.scan").read_text().replace(
        "semiring tropical",
        "semiring mp over extended_reals {\n  add(x, y) = max(x, y)\n  mul(x, y) = x + y\n"
        "  zero = -inf\n  one = 0\n}")
    user = rt.load(source, backend="reference", D=3).double()
    builtin = load_zoo("tropical_ssm", D=3)
    inp = make_inputs(builtin, 2, 5)
    assert rel_err(user(**inp), builtin(**inp)) == 0.0


_CUBE = """scan cube
dims D = 3
semiring cube over nonneg {
  add(x, y) = (x ** 3 + y ** 3) ** (1/3)
  mul(x, y) = x * y
  zero = 0
  one = 1
}
input x : [D]
input g : [D]
let a = sigmoid(g)
let b = exp(x)
state h : [D]
h = a * h + b
readout y = sum(h, axis=0)
"""


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_generic_semiring_from_its_sympy_definition(backend):
    """A semiring that matches no known fact is printed from its sympy add/mul, with the
    (+)-reduction as a fold."""
    module = rt.load(_CUBE, backend=backend, chunk_size=3).double()
    inp = make_inputs(module, 2, 7)
    a, b = torch.sigmoid(inp["g"]), torch.exp(inp["x"])
    h = torch.zeros(2, 3, dtype=torch.float64)
    ys = []
    for t in range(7):
        h = ((a[:, t] * h) ** 3 + b[:, t] ** 3) ** (1 / 3)
        ys.append((h ** 3).sum(-1) ** (1 / 3))
    assert rel_err(module(**inp), torch.stack(ys, 1)) <= 1e-12


def test_mamba2_ssd_per_head_scalars_against_a_loop():
    """Per-head params [H] against per-token scalars [] and vectors [P] (leading-axis
    alignment of different per-token ranks)."""
    module = load_zoo("mamba2_ssd", H=2, N=3, P=4)
    inp = make_inputs(module, 2, 6, seed=9)
    p = {n: v.detach() for n, v in module.named_parameters()}
    delta = F.softplus(inp["dt"] + p["dt_bias"])                      # [B, T, H]
    a = torch.exp(-delta * torch.exp(p["A_log"]))
    xd = delta[..., None] * inp["x"]                                   # [B, T, H, P]
    S = torch.zeros(2, 2, 3, 4, dtype=torch.float64)
    ys = []
    for t in range(6):
        S = a[:, t, :, None, None] * S + inp["B"][:, t, :, :, None] * xd[:, t, :, None, :]
        ys.append((inp["C"][:, t, :, :, None] * S).sum(-2) + p["D_skip"][:, None] * inp["x"][:, t])
    assert rel_err(module(**inp), torch.stack(ys, 1)) <= TOL


def test_mlstm_two_states_against_a_loop():
    module = load_zoo("mlstm", H=2, K=3, V=2)
    inp = make_inputs(module, 1, 7, seed=10)
    fg, ig = torch.sigmoid(inp["f"]), torch.exp(inp["i"])              # [B, T, H]
    ks = inp["k"] * 3 ** -0.5
    C = torch.zeros(1, 2, 3, 2, dtype=torch.float64)
    n = torch.zeros(1, 2, 3, dtype=torch.float64)
    ys = []
    for t in range(7):
        f, i = fg[:, t, :, None], ig[:, t, :, None]
        C = f[..., None] * C + i[..., None] * ks[:, t, :, :, None] * inp["v"][:, t, :, None, :]
        n = f * n + i * ks[:, t]
        q = inp["q"][:, t]
        num, den = (q[..., None] * C).sum(-2), (q * n).sum(-1)
        ys.append(num / torch.clamp(den.abs(), min=1)[..., None])
    y, (C_out, n_out) = module(**inp, return_state=True)
    assert rel_err(y, torch.stack(ys, 1)) <= TOL
    assert rel_err((C_out, n_out), (C, n)) <= TOL


def test_gated_gla_against_a_loop():
    """GLA with fla's conventions (log-space gate on K, q scaled by K^-1/2) and an output gate."""
    module = load_zoo("gated_gla", H=2, K=3, V=2)
    inp = make_inputs(module, 2, 6, seed=12)
    S = torch.zeros(2, 2, 3, 2, dtype=torch.float64)
    ys = []
    for t in range(6):
        S = (torch.exp(inp["g"][:, t, :, :, None]) * S
             + inp["k"][:, t, :, :, None] * inp["v"][:, t, :, None, :])
        o = ((inp["q"][:, t] * 3 ** -0.5)[..., None] * S).sum(-2)
        ys.append(torch.sigmoid(inp["z"][:, t]) * o)
    assert rel_err(module(**inp), torch.stack(ys, 1)) <= TOL


def test_spec_names_that_shadow_emitted_locals():
    """Spec names such as `out`, `like`, `env` or `shape` are renamed in emitted code."""
    source = """scan clash
dims D = 2
semiring real
input like : [D]
input env : [D]
let out = sigmoid(env)
let shape = like * 2
state h : [D]
h = out * h + shape
readout value = out * h
"""
    module = rt.load(source, backend="chunked", chunk_size=2).double()
    inp = make_inputs(module, 1, 5)
    a, b = torch.sigmoid(inp["env"]), 2 * inp["like"]
    h, ys = torch.zeros(1, 2, dtype=torch.float64), []
    for t in range(5):
        h = a[:, t] * h + b[:, t]
        ys.append(a[:, t] * h)
    assert rel_err(module(**inp), torch.stack(ys, 1)) <= TOL


_SIDES = """scan sides
dims K = 3, V = 2
semiring real
input M : [V, V]
input L : [K, K]
input c : [K]
input k : [K]
input v : [V]
input x : [K]
state S : [K, V]
state R : [K, V]
state g : [K]
S = S @ dense(M) + outer(k, v)
R = dense(L) @ R + outer(k, v)
g = g @ circulant(c) + x
readout s = S
readout r = R
readout y = g
"""


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_right_and_left_matrix_transitions(backend):
    """h @ A acts on the state's last axis, A @ h on its first (matrix and vector states)."""
    module = rt.load(_SIDES, backend=backend, chunk_size=3).double()
    inp = make_inputs(module, 2, 7, seed=13)
    S = torch.zeros(2, 3, 2, dtype=torch.float64)
    R = torch.zeros(2, 3, 2, dtype=torch.float64)
    g = torch.zeros(2, 3, dtype=torch.float64)
    want = ([], [], [])
    for t in range(7):
        kv = inp["k"][:, t, :, None] * inp["v"][:, t, None, :]
        S = S @ inp["M"][:, t] + kv
        R = inp["L"][:, t] @ R + kv
        g = (g[:, None, :] @ _circulant(inp["c"][:, t]))[:, 0] + inp["x"][:, t]
        for acc, value in zip(want, (S, R, g)):
            acc.append(value)
    got = module(**inp)
    assert rel_err(got, tuple(torch.stack(w, 1) for w in want)) <= TOL


_TROPICAL_MATRICES = """scan tmat
dims N = 4
semiring tropical
input W : [N, N]
input U : [N, N]
input x : [N]
let Q = hardmax(U, axis=0)
state d : [N]
state p : [N]
d = dense(W) @ d + x
p = onehot(Q) @ p + x
readout yd = d
readout yp = p
"""


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_matrix_classes_in_the_tropical_semiring(backend):
    """(W (x) h)_i = max_j W_ij + h_j; a 0/1 factor selects (its zeros are -inf)."""
    module = rt.load(_TROPICAL_MATRICES, backend=backend, chunk_size=3).double()
    inp = make_inputs(module, 2, 6, seed=14)
    W, x = inp["W"], inp["x"]
    pick = F.one_hot(inp["U"].argmax(-2), 4).transpose(-1, -2).bool()   # [B, T, i, j]
    d = torch.full((2, 4), -torch.inf, dtype=torch.float64)
    p = d.clone()
    want_d, want_p = [], []
    for t in range(6):
        d = torch.maximum((W[:, t] + d[:, None, :]).amax(-1), x[:, t])
        sel = torch.where(pick[:, t], p[:, None, :], torch.tensor(-torch.inf, dtype=p.dtype))
        p = torch.maximum(sel.amax(-1), x[:, t])
        want_d.append(d)
        want_p.append(p)
    got = module(**inp)
    assert rel_err(got, (torch.stack(want_d, 1), torch.stack(want_p, 1))) <= TOL


_LOG_BLOCKS = """scan lblocks
dims P = 2
semiring log
input M : [P, 2, 2]
input x : [P, 2]
state h : [P, 2]
h = block_diag(M) @ h + x
readout y = h
"""


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_block_diagonal_in_the_log_semiring(backend):
    """log semiring: exp of the scan is the real scan of exp'd blocks and terms."""
    module = rt.load(_LOG_BLOCKS, backend=backend, chunk_size=2).double()
    inp = make_inputs(module, 2, 6, seed=15)
    ys, _ = _dense_loop(_blockdiag(inp["M"].exp()), inp["x"].exp().reshape(2, 6, 4))
    assert rel_err(module(**inp), ys.log().reshape(2, 6, 2, 2)) <= TOL


_TOEPLITZ = """scan toep
semiring real
input c : [5]
input x : [3]
state a : [3]
state b : [3]
a = toeplitz(c) @ a + x
b = b @ toeplitz(c) + x
readout ya = a
readout yb = b
"""


def test_toeplitz_both_sides():
    with pytest.warns(rt.PromotionWarning, match="toeplitz is not closed"):
        module = rt.load(_TOEPLITZ, backend="reference", allow_promotion=True).double()
    inp = make_inputs(module, 2, 5, seed=16)
    i = torch.arange(3)
    T = inp["c"][..., i[:, None] - i[None, :] + 2]                     # [B, t, 3, 3]
    ya, _ = _dense_loop(T, inp["x"])
    yb, _ = _dense_loop(T.transpose(-1, -2), inp["x"])
    assert rel_err(module(**inp), (ya, yb)) <= TOL
