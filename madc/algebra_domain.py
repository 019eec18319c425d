"""The carrier is closed: a ⊕ b and a ⊗ b lie in the carrier for every a, b in it.

The axioms are only checked on carrier values, so they say nothing about a semiring whose
operations leave the carrier: `(+, ×) over boolean` satisfies every axiom on {0, 1}, yet
1 ⊕ 1 = 2. The carrier is the domain plus the semiring's zero and one (see
`algebra_semiring`). Checked like a law: a numeric search over carrier pairs (re-evaluated at
50 digits), then a proof per operation — exhaustive on {0, 1}, sympy's assumptions
(`is_real`, `is_nonnegative`, `is_positive`) or z3 on the domain's bounds, with the adjoined
zero/one substituted as in the axioms.
"""

from __future__ import annotations

import itertools
import math
import random
from functools import lru_cache

import mpmath
import numpy as np
import sympy

from madc.algebra_prove import apply_op, is_undefined, z3_valid
from madc.algebra_semiring import (
    RANDOM_TRIALS,
    _carrier,
    _extras,
    _float,
    _in_domain,
    _mp_ops,
    _mp_value,
    _numpy_ops,
    _symbols,
    _wide,
    ill_formed,
    semiring_key,
)
from madc.algebra_verdict import PROVED, REFUTED, UNPROVEN, Check, plain
from madc.ir import Semiring

NAME = "semiring.domain_closed"
LAW = "a ⊕ b and a ⊗ b lie in the carrier"

# What the domain asks of a value, for sympy's assumptions and for z3.
_SYMPY_FACT = {"reals": "is_real", "extended_reals": "is_real", "nonneg": "is_nonnegative",
               "positive": "is_positive"}
_Z3_GOAL = {
    "nonneg": lambda r: r >= 0,
    "positive": lambda r: r > 0,
    "unit_interval": lambda r: _both(r >= 0, r <= 1),
}


def _both(p, q):
    import z3

    return z3.And(p, q)


def _member(s: Semiring, v: float) -> bool:
    """Is the float v in the carrier (the domain plus zero and one)?"""
    if math.isnan(v):
        return False
    if any(v == _float(e) for e in _extras(s)):
        return True
    return math.isfinite(v) and bool(_in_domain(s.domain, v))


def _search(s: Semiring) -> tuple[dict | None, int]:
    """The first pair that leaves the carrier as a counterexample {op, a, b, result} (None if
    none did), and the number of pairs tried."""
    carrier = _carrier(s)
    pairs = sorted(itertools.product(range(len(carrier)), repeat=2), key=sum)
    values = [(carrier[i], carrier[j]) for i, j in pairs]
    rng = random.Random(0)
    if s.domain != "boolean":
        values += [(_wide(s, rng), _wide(s, rng)) for _ in range(RANDOM_TRIALS)]
    a, b = np.array(values, dtype=np.float64).T
    mp_add, mp_mul = _mp_ops(s)
    huge = np.zeros(len(a), dtype=bool)
    for sign, op, mp_op in zip("⊕⊗", _numpy_ops(s, huge), (mp_add, mp_mul)):
        huge[:] = False
        with np.errstate(all="ignore"):
            results = op(a, b)
        for k, r in enumerate(results):
            if huge[k] or _member(s, float(r)):
                continue  # beyond 1e100 from finite inputs: a float artefact, not evidence
            with mpmath.workdps(50):
                try:
                    exact = _mp_value(mp_op(mpmath.mpf(a[k]), mpmath.mpf(b[k])))
                except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                    exact = math.nan
            if not _member(s, exact):
                cex = {"op": sign, "a": plain(a[k]), "b": plain(b[k]), "result": plain(exact)}
                return cex, len(values)
    return None, len(values)


def _op_in_carrier(s: Semiring, op: sympy.Expr) -> str | None:
    """How op(x, y) was shown to stay in the carrier for every x, y in it, or None."""
    x, y = _symbols(s.domain, "xy")
    methods = set()
    for u, v in itertools.product([None, *_extras(s)], repeat=2):
        r = apply_op(op, x if u is None else u, y if v is None else v)
        if is_undefined(r):
            return None
        if r in _extras(s):
            methods.add("identical")
            continue
        if not r.free_symbols:
            if r.is_real and _in_domain(s.domain, r):
                methods.add("evaluation")
                continue
            return None
        fact = _SYMPY_FACT.get(s.domain)
        if fact and getattr(r, fact) is True:
            methods.add("sympy")
        elif s.domain in _Z3_GOAL and z3_valid([r], s.domain, _Z3_GOAL[s.domain]):
            methods.add("z3")
        else:
            return None
    return "+".join(sorted(methods))


@lru_cache(maxsize=256)
def _cached(key: tuple) -> Check:
    domain, add, mul, zero, one = key
    s = Semiring("", domain, add, mul, zero, one)
    why = ill_formed(s)
    if why:
        # Not evaluable anywhere: refuted at the smallest carrier pair, where it is undefined.
        a = b = plain(_carrier(s)[0])
        cex = {"op": "⊕" if "⊕" in why else "⊗", "a": a, "b": b, "result": "nan"}
        if why.startswith(("zero", "one")) or "mentions" in why:
            return Check(NAME, UNPROVEN, None, f"{LAW}: not checked: {why}")
        return Check(NAME, REFUTED, cex, f"{LAW} fails: {why}")
    cex, trials = _search(s)
    if cex is not None:
        return Check(NAME, REFUTED, cex, f"{LAW} fails: {cex['a']} {cex['op']} {cex['b']} = "
                     f"{cex['result']} is not in the {domain} carrier")
    if domain == "boolean":
        return Check(NAME, PROVED, None, f"{LAW}: exhaustive over {{0, 1}}^2")
    hows = [_op_in_carrier(s, op) for op in (add, mul)]
    if all(hows):
        return Check(NAME, PROVED, None, f"{LAW}: ⊕ by {hows[0]}, ⊗ by {hows[1]}")
    return Check(NAME, UNPROVEN, None, f"{LAW}: could not prove it for "
                 f"{'⊕' if not hows[0] else '⊗'}; no counterexample in {trials} pairs")


def check_domain(s: Semiring) -> Check:
    """`semiring.domain_closed`: ⊕ and ⊗ map carrier pairs into the carrier (cached)."""
    return _cached(semiring_key(s))
