"""Symbolic proofs for the algebra checker: sympy expressions -> "proved how", or None.

`prove_equal(lhs, rhs, domain)` tries, cheapest first: structural equality, `expand`, z3 for
polynomial and piecewise-linear forms (Max/Min/Abs become `If`; z3's nonlinear real
arithmetic is complete for these, e.g. (max, ×) distributivity over the nonnegatives), then
`simplify` with Max/Min rewritten to Piecewise and folded. It never disproves: None means
"not proved". `apply_op` evaluates ⊕/⊗ symbolically, at ±∞ by substitution or limits.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y

# Past these sizes simplify / Piecewise folding can take minutes: the law stays unproven.
SIMPLIFY_MAX_OPS = 120
PIECEWISE_MAX_NODES = 4


class _Untranslatable(Exception):
    """The expression has a node z3 cannot take (exp, log, sqrt, ...)."""


def _z3_expr(e: sympy.Expr, env: dict):
    import z3

    if e.is_Symbol:
        return env[e]
    if e.is_Rational:
        return z3.RealVal(f"{e.p}/{e.q}")
    if e.is_Add:
        return sum((_z3_expr(a, env) for a in e.args[1:]), _z3_expr(e.args[0], env))
    if e.is_Mul:
        out = _z3_expr(e.args[0], env)
        for a in e.args[1:]:
            out = out * _z3_expr(a, env)
        return out
    if e.is_Pow and e.exp.is_Integer and 0 < e.exp <= 8:
        base = _z3_expr(e.base, env)
        out = base
        for _ in range(int(e.exp) - 1):
            out = out * base
        return out
    if isinstance(e, (sympy.Max, sympy.Min)):
        args = [_z3_expr(a, env) for a in e.args]
        out = args[0]
        for a in args[1:]:
            keep = out >= a if isinstance(e, sympy.Max) else out <= a
            out = z3.If(keep, out, a)
        return out
    if isinstance(e, sympy.Abs):
        a = _z3_expr(e.args[0], env)
        return z3.If(a >= 0, a, -a)
    raise _Untranslatable(type(e).__name__)


def z3_valid(exprs: list, domain: str, goal: Callable) -> bool:
    """True when z3 shows `goal(*z3 terms of exprs)` for every value of their (finite) free
    symbols in the domain. False when it cannot (untranslatable, unknown, timeout) or z3 is
    not installed: callers then fall back to sympy. Never a disproof."""
    try:
        import z3
    except ImportError:
        return False

    symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=str)
    env = {sym: z3.Real(str(sym)) for sym in symbols}
    try:
        claim = goal(*(_z3_expr(e, env) for e in exprs))
    except _Untranslatable:
        return False
    solver = z3.Solver()
    solver.set("timeout", 3000)
    for v in env.values():
        if domain in ("nonneg", "unit_interval"):
            solver.add(v >= 0)
        if domain == "positive":
            solver.add(v > 0)
        if domain == "unit_interval":
            solver.add(v <= 1)
    solver.add(z3.Not(claim))
    return solver.check() == z3.unsat


def _z3_proves(lhs: sympy.Expr, rhs: sympy.Expr, domain: str) -> bool:
    """True when z3 shows lhs == rhs for every value of the symbols in the domain."""
    return z3_valid([sympy.sympify(lhs), sympy.sympify(rhs)], domain, lambda u, v: u == v)


def is_undefined(e: sympy.Expr) -> bool:
    """Does e contain nan or zoo (complex infinity): undefined somewhere or everywhere?"""
    return e.has(sympy.nan, sympy.zoo) or e is sympy.nan or e is sympy.zoo


def is_inf(e: sympy.Expr) -> bool:
    """Is e exactly +oo or -oo?"""
    return e in (sympy.oo, -sympy.oo)


def apply_op(op: sympy.Expr, u: sympy.Expr, v: sympy.Expr) -> sympy.Expr:
    """op(u, v) symbolically; at ±∞ by substitution in either order, then by limits.
    nan when every route is undefined (Max(zoo, y) even raises: undefined too)."""
    routes = [lambda: op.xreplace({X: u, Y: v}),
              lambda: op.xreplace({X: u}).xreplace({Y: v}),
              lambda: op.xreplace({Y: v}).xreplace({X: u})]
    for route in routes:
        try:
            r = route()
        except (ValueError, TypeError):
            continue
        if not is_undefined(r):
            return r
    for (s1, v1), (s2, v2) in (((X, u), (Y, v)), ((Y, v), (X, u))):
        if is_inf(v1):
            try:
                r = sympy.limit(op.xreplace({s2: v2}), s1, v1)
            except (NotImplementedError, ValueError, TypeError):
                continue
            if not is_undefined(r):
                return r
    return sympy.nan


def prove_equal(lhs: sympy.Expr, rhs: sympy.Expr, domain: str) -> str | None:
    """How lhs == rhs was proved for all finite values of the symbols (whose assumptions
    encode the domain), or None. Never a disproof."""
    if is_undefined(lhs) or is_undefined(rhs):
        return None
    # An infinity left inside an expression (oo*y, unevaluated because y's sign is unknown)
    # may be undefined for some y: only a bare ±oo on both sides counts.
    if any(e.has(sympy.oo, -sympy.oo) and not is_inf(e) for e in (lhs, rhs)):
        return None
    if lhs == rhs:
        return "identical"
    if is_inf(lhs) or is_inf(rhs):
        return None
    diff = lhs - rhs
    if sympy.expand(diff) == 0:
        return "expand"
    if _z3_proves(lhs, rhs, domain):
        return "z3"
    # simplify's time grows steeply with size, and folding Piecewise exponentially with the
    # number of Max/Min: past these budgets the law stays unproven rather than making
    # `madc check` hang.
    if sympy.count_ops(diff) > SIMPLIFY_MAX_OPS:
        return None
    if diff.has(sympy.Max, sympy.Min):
        if len(diff.atoms(sympy.Max, sympy.Min)) > PIECEWISE_MAX_NODES:
            return None
        diff = sympy.piecewise_fold(diff.rewrite(sympy.Piecewise))
        if sympy.count_ops(diff) > SIMPLIFY_MAX_OPS:
            return None
    try:
        if sympy.simplify(diff) == 0:
            return "sympy"
    except (TypeError, ValueError, NotImplementedError, RecursionError):
        return None
    return None
