"""Semirings: the built-ins, user definitions, and the facts the compiler derives from them.

A semiring is (domain, add, mul, zero, one) with add/mul as sympy expressions in the two
symbols `x` and `y`. The facts in `Semiring.facts` are derived by pattern-matching the sympy
expressions, never from the name, so a user-defined `(max, +)` gets the tropical lowerings.
"""

from __future__ import annotations

import sympy

from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Semiring, Span

DOMAINS = ("reals", "extended_reals", "nonneg", "positive", "unit_interval", "boolean")

_LOGADDEXP = sympy.log(sympy.exp(X) + sympy.exp(Y))

# name -> (domain, add, mul, zero, one)
_BUILTINS = {
    "real": ("reals", X + Y, X * Y, sympy.Integer(0), sympy.Integer(1)),
    "log": ("extended_reals", _LOGADDEXP, X + Y, -sympy.oo, sympy.Integer(0)),
    "tropical": ("extended_reals", sympy.Max(X, Y), X + Y, -sympy.oo, sympy.Integer(0)),
    "min_plus": ("extended_reals", sympy.Min(X, Y), X + Y, sympy.oo, sympy.Integer(0)),
    "max_times": ("nonneg", sympy.Max(X, Y), X * Y, sympy.Integer(0), sympy.Integer(1)),
    "boolean": ("boolean", sympy.Max(X, Y), sympy.Min(X, Y), sympy.Integer(0), sympy.Integer(1)),
}

BUILTIN_NAMES = tuple(_BUILTINS)


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Equality up to swapping x and y (every form we recognise is commutative). Max/Min do
    not cancel under simplify, so those are compared structurally."""
    swapped = b.xreplace({X: Y, Y: X})
    if a == b or a == swapped:
        return True
    if a.has(sympy.Max, sympy.Min) or b.has(sympy.Max, sympy.Min):
        return False
    return sympy.simplify(a - b) == 0 or sympy.simplify(a - swapped) == 0


def derive_facts(add: sympy.Expr, mul: sympy.Expr, domain: str) -> frozenset:
    """Facts that select lowerings: which known operation add and mul are."""
    facts = set()
    if _same(add, X + Y):
        facts.add("add_is_plus")
        if domain == "reals":
            facts.add("has_additive_inverse")
    if _same(add, sympy.Max(X, Y)):
        facts |= {"add_is_max", "idempotent_add"}
    if _same(add, sympy.Min(X, Y)):
        facts |= {"add_is_min", "idempotent_add"}
    if _same(add, _LOGADDEXP):
        facts.add("add_is_logaddexp")
    if _same(mul, X * Y):
        facts.add("mul_is_times")
    if _same(mul, X + Y):
        facts.add("mul_is_plus")
    if _same(mul, sympy.Min(X, Y)):
        facts.add("mul_is_min")
    if _same(mul, sympy.Max(X, Y)):
        facts.add("mul_is_max")
    return frozenset(facts)


def builtin(name: str, span: Span | None = None) -> Semiring:
    """The built-in semiring `name` (one of `BUILTIN_NAMES`)."""
    domain, add, mul, zero, one = _BUILTINS[name]
    return Semiring(name, domain, add, mul, zero, one, derive_facts(add, mul, domain), span)


def define(name: str, domain: str, add: sympy.Expr, mul: sympy.Expr, zero: sympy.Expr,
           one: sympy.Expr, span: Span | None = None) -> Semiring:
    """A user-defined semiring. `add`/`mul` must be sympy expressions in `ir.SEMIRING_X` and
    `ir.SEMIRING_Y` only; `zero`/`one` constants (sympy `oo`/`-oo` allowed)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    return Semiring(name, domain, add, mul, zero, one, derive_facts(add, mul, domain), span)


def evaluate(expr: sympy.Expr, x: float, y: float) -> float:
    """Evaluate a semiring operation at floats (inf allowed), as the backends would."""
    import math

    if expr.has(sympy.log) and expr.has(sympy.exp) and _same(expr, _LOGADDEXP):
        m = max(x, y)
        if math.isinf(m):  # both -inf, or either +inf: the max shift would compute inf - inf
            return m
        return m + math.log(math.exp(x - m) + math.exp(y - m))
    value = expr.xreplace({X: sympy.Float(x) if math.isfinite(x) else (sympy.oo if x > 0
                           else -sympy.oo),
                           Y: sympy.Float(y) if math.isfinite(y) else (sympy.oo if y > 0
                           else -sympy.oo)})
    value = sympy.sympify(value)
    if value is sympy.nan:
        return math.nan
    return float(value)
