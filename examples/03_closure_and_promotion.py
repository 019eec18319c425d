"""Walkthrough 3 (examples/03_closure_and_promotion.md): a transition class that is not closed.

DeltaNet's transition `I - beta k k^T` is identity-minus-rank-1. A chunked or tree scan
multiplies transitions together, and a product of two such matrices is identity minus rank 2,
so the class the kernel would store is not closed. The script

1. re-checks the checker's counterexample matrices by hand (exact integer arithmetic),
2. shows that the product of t real transitions drifts to identity minus rank min(t, K),
3. shows that `madc.load` refuses the spec (E0901) and that `allow_promotion=True` compiles it
   with a `PromotionWarning` stating the cost change, and
4. checks the promoted chunked backend against the float64 reference and a hand-written delta
   rule loop, values and gradients. CPU only, tiny shapes.

    python examples/03_closure_and_promotion.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import sympy
import torch

import madc
from madc.algebra import check_ir
from madc.frontend import load_spec
from madc.runtime import PromotionWarning

SPEC = Path(__file__).resolve().parent / "my_delta.scan"


def counterexample() -> None:
    """The checker's two matrices: members of the class whose product is not."""
    check = check_ir(load_spec(str(SPEC))).check("closure.S")
    print(f"{check.name}: {check.verdict}: {check.counterexample['violation']}")
    assert check.verdict == "refuted"
    cex = check.counterexample
    n = cex["n"]

    def member(factors: dict) -> sympy.Matrix:
        u, w = sympy.Matrix(factors["u"]), sympy.Matrix(factors["w"])
        return sympy.eye(n) - u * w.T

    a, b = member(cex["A_from"]), member(cex["B_from"])
    assert a == sympy.Matrix(cex["A"]) and b == sympy.Matrix(cex["B"])
    product = a * b
    assert product == sympy.Matrix(cex["product"])
    rank = (sympy.eye(n) - product).rank()
    print(f"A = {a.tolist()}\nB = {b.tolist()}\nA @ B = {product.tolist()}")
    print(f"rank(I - A @ B) = {rank} (a member of the class has rank <= 1)")
    assert rank == 2


def delta_rule(q, k, v, beta):
    """The delta rule as a plain loop, and the transitions' running product."""
    kn = k / (k.square().sum(-1, keepdim=True) + 1e-6).sqrt()
    bk = torch.sigmoid(beta)[..., None] * kn
    eye = torch.eye(k.shape[-1], dtype=k.dtype)
    S = torch.zeros(k.shape[0], k.shape[-1], v.shape[-1], dtype=k.dtype)
    running = eye.expand(k.shape[0], -1, -1)
    outs, ranks = [], []
    for t in range(k.shape[1]):
        A = eye - bk[:, t, :, None] * kn[:, t, None, :]                  # [B, K, K]
        S = A @ S + bk[:, t, :, None] * v[:, t, None, :]
        outs.append((q[:, t, :, None] * S).sum(-2))
        running = A @ running
        ranks.append(int(torch.linalg.matrix_rank(eye - running[0]).item()))
    return torch.stack(outs, dim=1), ranks


def promotion() -> None:
    """Refused by default; compiled as dense with allow_promotion=True; still exact."""
    try:
        madc.load(str(SPEC))
    except madc.CompileError as err:
        print(f"madc.load: {err.codes()}: {err.diagnostics[0].hint}")
        assert err.codes() == ["E0901"]
    else:
        raise AssertionError("a refuted closure check was compiled without promotion")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = madc.load(str(SPEC), backend="chunked", allow_promotion=True)
    promoted = [str(w.message) for w in caught if issubclass(w.category, PromotionWarning)]
    assert len(promoted) == 1 and "O(n) -> O(n^3)" in promoted[0], promoted
    print(f"PromotionWarning: ...{promoted[0][promoted[0].index('scanning'):]}")

    torch.manual_seed(0)
    B, T, K = 2, 13, mod.dims["K"]
    q, k, v = (torch.randn(B, T, K, dtype=torch.float64, requires_grad=True) for _ in "qkv")
    beta = torch.randn(B, T, dtype=torch.float64, requires_grad=True)
    inputs = {"q": q, "k": k, "v": v, "beta": beta}

    mod.backend = "reference"
    o_ref = mod(**inputs)
    g_ref = torch.autograd.grad(o_ref.square().sum(), tuple(inputs.values()))
    mod.backend, mod.chunk_size = "chunked", 4
    o_chk = mod(**inputs)
    g_chk = torch.autograd.grad(o_chk.square().sum(), tuple(inputs.values()))
    o_loop, ranks = delta_rule(q, k, v, beta)

    out_err = (o_chk - o_ref).abs().max().item()
    grad_err = max((x - y).abs().max().item() for x, y in zip(g_chk, g_ref))
    loop_err = (o_loop - o_ref).abs().max().item()
    print(f"promoted chunked vs reference: output {out_err:.1e}, grads {grad_err:.1e}")
    print(f"reference vs hand-written delta rule: {loop_err:.1e}")
    assert out_err < 1e-10 and grad_err < 1e-10 and loop_err < 1e-12
    print(f"rank(I - A_t ... A_1) for t = 1..{T}: {ranks}")
    assert ranks == [min(t, K) for t in range(1, T + 1)]


def main() -> None:
    """Run both parts of the walkthrough."""
    counterexample()
    promotion()
    print("ok")


if __name__ == "__main__":
    main()
