"""Derived backward: the adjoint of `h_t = a_t (*) h_{t-1} (+) b_t`, from sympy derivatives.

Nothing here is written per semiring. For the update `h = add(m, b)` with `m = mul(a, p)`
(`p` is `h_{t-1}`), the chain rule gives, at every step and elementwise:

    J  = dh/dp = add_x(m, b) * mul_y(a, p)      coefficient of the reverse real linear scan
    Da = dh/da = add_x(m, b) * mul_x(a, p)
    Db = dh/db = add_y(m, b)

and the adjoint `g_t = dL/dh_t` obeys `g_t = dH_t + J_{t+1} * g_{t+1}` (a reverse scan in real
arithmetic, whatever the semiring), `dL/da_t = g_t * Da_t`, `dL/db_t = g_t * Db_t`,
`dL/dh_0 = J_1 * g_1`. Derivations and the tie rule are in `docs/backward.md`.

**Step weights.** Where `mul`'s partials are both 1 (log, tropical, min_plus: `mul` is `+`) and
`add`'s partials sum to 1 wherever the result is not the semiring zero, the step adjoint is a
pair of weights `u = add_x(m, b)` (J and Da) and `v = add_y(m, b)` (Db) with `u + v = 1` (or
both 0): `step_weights` returns them, and the Triton forward stores one number per step
(`docs/backward.md`) that the backward reads instead of the states, the inputs and an `exp`.

Two rewrites keep the printed coefficients finite and cheap:

* **Result substitution.** A derivative that contains the operation's own argument of a `log`
  (`d/dx log(e^x + e^y) = e^x / (e^x + e^y)`) is rewritten with `S = exp(z)`, `z` the result,
  giving softmax weights `exp(x - z)` (no overflow, one `exp`). Where `z` is the semiring zero
  (both terms are zero, e.g. -inf for log) the weight is defined as 0.
* **Ties.** sympy differentiates `Max(x, y)` to `Heaviside(x - y)` with `Heaviside(0) = 1/2`:
  an exact tie splits the gradient evenly between the two terms. That is also what
  `torch.maximum`/`torch.minimum` do in their backward, so the kernels agree with the reference
  at ties. Printers spell `Heaviside(u - v)` as a comparison of `u` and `v`, so infinite ties
  (`-inf` vs `-inf`) also split evenly instead of producing NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Semiring

#: Symbols of the step-level adjoint expressions.
A = sympy.Symbol("a", extended_real=True)   # transition coefficient a_t
P = sympy.Symbol("p", extended_real=True)   # previous state h_{t-1}
B = sympy.Symbol("b", extended_real=True)   # injected term b_t
H = sympy.Symbol("h", extended_real=True)   # new state h_t = add(m, b)
M = sympy.Symbol("m", extended_real=True)   # m_t = mul(a, p)
Z = sympy.Symbol("z", extended_real=True)   # result of an operation, inside `partials`


@dataclass(frozen=True)
class Partials:
    """Partial derivatives of one binary operation `z = f(x, y)` as sympy expressions in
    `ir.SEMIRING_X`, `ir.SEMIRING_Y` and `Z` (the result, which they may use)."""

    dx: sympy.Expr
    dy: sympy.Expr


@dataclass(frozen=True)
class ScanAdjoint:
    """The step adjoint of `h = a (*) p (+) b` as sympy expressions in `A, P, B, H, M`."""

    J: sympy.Expr
    Da: sympy.Expr
    Db: sympy.Expr

    def symbols(self, which: str) -> frozenset:
        """Names of the step symbols (`a p b h m`) that expression `which` reads."""
        return frozenset(s.name for s in getattr(self, which).free_symbols)


def _substitute_result(expr: sympy.Expr, op: sympy.Expr) -> sympy.Expr:
    """Rewrite a derivative of `op` in terms of op's result `Z` where `op = log(S)`."""
    if isinstance(op, sympy.log):
        inner = op.args[0]
        expr = sympy.powsimp(expr.subs(inner, sympy.exp(Z)), force=True)
    return expr


def _guard_zero(expr: sympy.Expr, zero: sympy.Expr) -> sympy.Expr:
    """Where the result is an infinite semiring zero the weight is undefined (0/0): use 0."""
    if expr.has(Z) and zero.is_infinite:
        return sympy.Piecewise((sympy.Integer(0), sympy.Eq(Z, zero)), (expr, True))
    return expr


def partials(op: sympy.Expr, zero: sympy.Expr) -> Partials:
    """Derivatives of the binary semiring operation `op(x, y)`, rewritten to be finite."""
    out = []
    for var in (X, Y):
        d = sympy.diff(op, var)
        d = _substitute_result(d, op)
        out.append(_guard_zero(sympy.simplify(d) if not d.has(sympy.Heaviside) else d, zero))
    return Partials(*out)


@dataclass(frozen=True)
class StepWeights:
    """`u = dh/dm` and `v = dh/db` of `h = add(m, b)` (in `M, B, H`) for a semiring whose `mul`
    has partials 1: `J = Da = u`, `Db = v`, and `u + v = 1` except where both are 0."""

    u: sympy.Expr
    v: sympy.Expr


def _unguarded(expr: sympy.Expr) -> sympy.Expr:
    """`expr` without `_guard_zero`'s branch (its value where the result is not the zero)."""
    if isinstance(expr, sympy.Piecewise) and expr.args[-1][1] == sympy.true:
        return expr.args[-1][0]
    return expr


def step_weights(semiring: Semiring) -> StepWeights | None:
    """The step weights of `semiring` (module doc), or None where they do not describe its
    adjoint: `mul`'s partials are not both 1, or `add`'s do not sum to 1 (proved by sympy,
    Heaviside rewritten piecewise, with `Z` replaced by `add` itself)."""
    mul = partials(semiring.mul, semiring.zero)
    if mul.dx != 1 or mul.dy != 1:
        return None
    add = partials(semiring.add, semiring.zero)
    total = (_unguarded(add.dx) + _unguarded(add.dy)).xreplace({Z: semiring.add})
    total = sympy.piecewise_fold(total.rewrite(sympy.Piecewise))
    if sympy.simplify(total - 1) != 0:
        return None
    here = {X: M, Y: B, Z: H}
    return StepWeights(add.dx.xreplace(here), add.dy.xreplace(here))


def scan_adjoint(semiring: Semiring) -> ScanAdjoint:
    """The derived adjoint coefficients of one scan step in `semiring` (see module doc)."""
    add = partials(semiring.add, semiring.zero)
    mul = partials(semiring.mul, semiring.zero)
    add_x = add.dx.xreplace({X: M, Y: B, Z: H})
    add_y = add.dy.xreplace({X: M, Y: B, Z: H})
    mul_x = mul.dx.xreplace({X: A, Y: P, Z: M})
    mul_y = mul.dy.xreplace({X: A, Y: P, Z: M})
    return ScanAdjoint(J=add_x * mul_y, Da=add_x * mul_x, Db=add_y)
