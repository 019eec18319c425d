"""Semiring axioms and the scan combine, checked three-valued (see `algebra_verdict`).

Every law is an equation between compositions of ⊕ and ⊗. A law is checked in three steps:

1. **Refute** by a seeded numeric search: every tuple of small carrier values (small integers
   and halves, ±∞ where the carrier has them), smallest first, then seeded wider values. A
   failure is re-evaluated at 50 digits with mpmath before it is reported, so a refutation is
   never a rounding artefact.
2. **Prove** for finite values symbolically: structural equality, `expand`, z3 for polynomial
   and piecewise-linear forms (Max/Min/Abs become `If`; z3's nonlinear real arithmetic is
   complete for these), then `simplify` (Max/Min rewritten to Piecewise and folded).
3. **Prove the infinite cases**: every variable that the carrier lets be ±∞ is substituted by
   it (all subsets) and the rest is proved as in step 2. ⊕/⊗ at ±∞ are evaluated by
   substitution and, where that is undefined (log(0) in the log semiring), by limits.

The carrier of a semiring is its domain plus its zero and one ("adjoined" when outside the
domain, and then substituted in step 3 like the infinities). In particular `extended_reals`
holds exactly the infinities the semiring names as zero or one: the tropical semiring is
ℝ ∪ {−∞}, min-plus ℝ ∪ {+∞}. (With both infinities `x ⊗ y = ∞ − ∞` would be undefined.)
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np
import sympy

from madc.algebra_prove import apply_op, is_inf, prove_equal
from madc.algebra_verdict import PROVED, REFUTED, UNPROVEN, Check, plain
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Semiring

# Small carrier values per domain, smallest first: the first counterexample found is small.
_SMALL = {
    "reals": (0, 1, -1, 0.5, -0.5, 2, -2, 1.5, -1.5, 3, -3),
    "extended_reals": (0, 1, -1, 0.5, -0.5, 2, -2, 1.5, -1.5, 3, -3),
    "nonneg": (0, 1, 0.5, 2, 1.5, 3),
    "positive": (1, 0.5, 2, 1.5, 3, 0.25),
    "unit_interval": (0, 1, 0.5, 0.25, 0.75),
    "boolean": (0, 1),
}
_ASSUMPTIONS = {
    "reals": {"real": True},
    "extended_reals": {"real": True},
    "nonneg": {"nonnegative": True, "real": True},
    "positive": {"positive": True},
    "unit_interval": {"nonnegative": True, "real": True},
}
RANDOM_TRIALS = 400
COMBINE_TRIALS = 3000
_REL_FAIL = 1e-6
MAX_CONFIRMATIONS = 200
_HUGE = 1e100


def semiring_key(s: Semiring) -> tuple:
    """What a semiring's verdicts depend on (not its name or span): the cache key."""
    return (s.domain, s.add, s.mul, s.zero, s.one)


# --------------------------------------------------------------------------- the laws
# Each law: (check name, equation as printed, variable names, builder). A builder takes
# (add, mul, zero, one, *vars) and returns the (lhs, rhs) pairs that must all be equal, so one
# definition serves the numeric search (floats), the confirmation (mpmath) and the proof (sympy).

def _assoc_add(A, M, z, o, a, b, c):
    return [(A(A(a, b), c), A(a, A(b, c)))]


def _comm_add(A, M, z, o, a, b):
    return [(A(a, b), A(b, a))]


def _assoc_mul(A, M, z, o, a, b, c):
    return [(M(M(a, b), c), M(a, M(b, c)))]


def _left_dist(A, M, z, o, a, b, c):
    return [(M(a, A(b, c)), A(M(a, b), M(a, c)))]


def _right_dist(A, M, z, o, a, b, c):
    return [(M(A(a, b), c), A(M(a, c), M(b, c)))]


def _zero_identity(A, M, z, o, a):
    return [(A(z, a), a), (A(a, z), a)]


def _zero_annihilates(A, M, z, o, a):
    return [(M(z, a), z), (M(a, z), z)]


def _one_identity(A, M, z, o, a):
    return [(M(o, a), a), (M(a, o), a)]


# The scan combine (A1, b1) • (A2, b2) = (A2 ⊗ A1, A2 ⊗ b1 ⊕ b2): element 1 happens first.
def _combine(A, M, e1, e2):
    return (M(e2[0], e1[0]), A(M(e2[0], e1[1]), e2[1]))


def _combine_assoc(A, M, z, o, a1, b1, a2, b2, a3, b3):
    e1, e2, e3 = (a1, b1), (a2, b2), (a3, b3)
    left = _combine(A, M, _combine(A, M, e1, e2), e3)
    right = _combine(A, M, e1, _combine(A, M, e2, e3))
    return [(left[0], right[0]), (left[1], right[1])]


SEMIRING_LAWS = (
    ("semiring.add_associative", "(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)", "abc", _assoc_add),
    ("semiring.add_commutative", "a ⊕ b = b ⊕ a", "ab", _comm_add),
    ("semiring.mul_associative", "(a ⊗ b) ⊗ c = a ⊗ (b ⊗ c)", "abc", _assoc_mul),
    ("semiring.left_distributive", "a ⊗ (b ⊕ c) = (a ⊗ b) ⊕ (a ⊗ c)", "abc", _left_dist),
    ("semiring.right_distributive", "(a ⊕ b) ⊗ c = (a ⊗ c) ⊕ (b ⊗ c)", "abc", _right_dist),
    ("semiring.zero_add_identity", "0̄ ⊕ a = a = a ⊕ 0̄", "a", _zero_identity),
    ("semiring.zero_annihilates", "0̄ ⊗ a = 0̄ = a ⊗ 0̄", "a", _zero_annihilates),
    ("semiring.one_mul_identity", "1̄ ⊗ a = a = a ⊗ 1̄", "a", _one_identity),
)
COMBINE_LAW = ("combine.associative",
               "(e1•e2)•e3 = e1•(e2•e3) for (A1,b1)•(A2,b2) = (A2⊗A1, A2⊗b1 ⊕ b2)",
               ("A1", "b1", "A2", "b2", "A3", "b3"), _combine_assoc)


# --------------------------------------------------------------------------- evaluation


def _float(v: sympy.Expr) -> float:
    if v == sympy.oo:
        return math.inf
    if v == -sympy.oo:
        return -math.inf
    return float(v)


def _carrier(s: Semiring) -> tuple:
    """Small carrier values (floats), smallest first, zero and one included."""
    values = [float(v) for v in _SMALL.get(s.domain, _SMALL["reals"])]
    for special in (s.zero, s.one):
        try:
            f = _float(special)
        except (TypeError, ValueError):
            continue
        if f not in values:
            values.append(f)
    return tuple(values)


def _wide(s: Semiring, rng: random.Random) -> float:
    """One seeded value from a wider range of the domain (halves up to 8)."""
    d = s.domain
    if d == "boolean":
        return float(rng.randint(0, 1))
    if d == "unit_interval":
        return rng.randint(0, 16) / 16
    if d in ("nonneg", "positive"):
        return rng.randint(1 if d == "positive" else 0, 16) / 2
    return rng.randint(-16, 16) / 2


def _numpy_ops(s: Semiring, huge: np.ndarray | None = None) -> tuple[Callable, Callable]:
    """⊕, ⊗ on float64 arrays as the backends compute them; a complex result is nan. Where
    finite inputs give a result beyond 1e100 (or an overflow), `huge` is set: such values are
    float artefacts, and re-evaluating them at 50 digits could take forever (exp(2980**2980))."""
    fa = sympy.lambdify((X, Y), s.add, modules="numpy")
    fm = sympy.lambdify((X, Y), s.mul, modules="numpy")

    def wrap(f):
        def op(u, v):
            r = np.asarray(f(u, v))
            if np.iscomplexobj(r):
                r = np.where(np.imag(r) == 0, np.real(r), np.nan)
            r = np.broadcast_to(np.asarray(r, dtype=np.float64), np.shape(u))
            if huge is not None:
                huge[...] |= (np.isfinite(u) & np.isfinite(v) & ~(np.abs(r) <= _HUGE)
                              & ~np.isnan(r))
            return r

        return op

    return wrap(fa), wrap(fm)


def _mp_ops(s: Semiring) -> tuple[Callable, Callable]:
    fa = sympy.lambdify((X, Y), s.add, modules="mpmath")
    fm = sympy.lambdify((X, Y), s.mul, modules="mpmath")
    return fa, fm


def _fails(lhs: float, rhs: float) -> bool:
    """A clear failure: undefined (nan), different infinities, or a relative gap > 1e-6."""
    if math.isnan(lhs) or math.isnan(rhs):
        return True
    if math.isinf(lhs) or math.isinf(rhs):
        return lhs != rhs
    return abs(lhs - rhs) > _REL_FAIL * max(1.0, abs(lhs), abs(rhs))


def _mp_value(v) -> float:
    """An mpmath result as a float; complex (e.g. log of a negative) counts as undefined."""
    if isinstance(v, mpmath.mpc):
        return float(v.real) if v.imag == 0 else math.nan
    return float(v)


def _confirm(s: Semiring, build: Callable, values: tuple, ops: tuple) -> tuple | None:
    """Re-evaluate a candidate at 50 digits with the mpmath `ops`; the failing (lhs, rhs) or
    None."""
    add, mul = ops
    with mpmath.workdps(50):
        args = [mpmath.mpf(v) for v in values]
        zero, one = mpmath.mpf(_float(s.zero)), mpmath.mpf(_float(s.one))
        try:
            pairs = build(add, mul, zero, one, *args)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return (math.nan, math.nan)  # undefined there (e.g. max of a complex number)
        for lhs, rhs in pairs:
            lf, rf = _mp_value(lhs), _mp_value(rhs)
            if _fails(lf, rf):
                return (lf, rf)
    return None


@dataclass(frozen=True, slots=True)
class Search:
    """What a numeric search found: the failing values and sides (None if nothing failed),
    how many tuples it tried, and whether they covered the whole (finite) carrier."""

    values: tuple | None
    sides: tuple | None
    trials: int
    exhaustive: bool


def _search(s: Semiring, build: Callable, arity: int, random_trials: int) -> Search:
    """Numeric counterexample search over carrier tuples, smallest first."""
    carrier = _carrier(s)
    if len(carrier) ** arity <= 20000:
        grid = sorted(itertools.product(range(len(carrier)), repeat=arity), key=sum)
        tuples = [tuple(carrier[i] for i in t) for t in grid]
        exhaustive = True
    else:
        rng = random.Random(1)
        picks = sorted((tuple(rng.randrange(len(carrier)) for _ in range(arity))
                        for _ in range(random_trials)), key=sum)
        tuples = [tuple(carrier[i] for i in t) for t in picks]
        exhaustive = False
    rng = random.Random(0)
    if s.domain != "boolean":
        tuples += [tuple(_wide(s, rng) for _ in range(arity)) for _ in range(random_trials)]
    cols = np.array(tuples, dtype=np.float64).T
    huge = np.zeros(cols.shape[1], dtype=bool)
    add, mul = _numpy_ops(s, huge)
    zero = np.full(cols.shape[1], _float(s.zero))
    one = np.full(cols.shape[1], _float(s.one))
    bad = np.zeros(cols.shape[1], dtype=bool)
    with np.errstate(all="ignore"):
        for lhs, rhs in build(add, mul, zero, one, *cols):
            lhs, rhs = np.broadcast_to(lhs, bad.shape), np.broadcast_to(rhs, bad.shape)
            both_inf = np.isinf(lhs) | np.isinf(rhs)
            gap = np.abs(lhs - rhs) > _REL_FAIL * np.maximum(1.0, np.maximum(abs(lhs), abs(rhs)))
            bad |= np.isnan(lhs) | np.isnan(rhs) | np.where(both_inf, lhs != rhs, gap)
    mp_ops = _mp_ops(s)
    # Float failures that 50 digits do not confirm are rounding or branch artefacts; a
    # bounded number are re-evaluated, then the law is left to the proof (or unproven).
    for i in np.flatnonzero(bad & ~huge)[:MAX_CONFIRMATIONS]:
        confirmed = _confirm(s, build, tuples[i], mp_ops)
        if confirmed is not None:
            return Search(tuples[i], confirmed, len(tuples), exhaustive)
    return Search(None, None, len(tuples), exhaustive and s.domain == "boolean")


def _in_domain(domain: str, v) -> bool | None:
    """Is the constant v in the domain proper (infinities never are)? None if not a number."""
    if is_inf(v):
        return False
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return {"reals": True, "extended_reals": True, "nonneg": f >= 0, "positive": f > 0,
            "unit_interval": 0 <= f <= 1, "boolean": f in (0.0, 1.0)}.get(domain, True)


def _extras(s: Semiring) -> list:
    """The zero/one that the carrier adjoins to the domain (±∞, or 0 for `positive`)."""
    return list(dict.fromkeys(v for v in (s.zero, s.one) if _in_domain(s.domain, v) is False))


def _symbols(domain: str, names) -> tuple:
    assumptions = _ASSUMPTIONS.get(domain, {"real": True})
    return tuple(sympy.Symbol(f"{n}_", **assumptions) for n in names)


def _prove_law(s: Semiring, build: Callable, names, with_infinities: bool) -> tuple:
    """(proved?, methods used, cases) for the law over the carrier, symbolically."""
    syms = _symbols(s.domain, names)

    def A(u, v):
        return apply_op(s.add, u, v)

    def M(u, v):
        return apply_op(s.mul, u, v)

    extras = _extras(s)
    assignments = [{}]
    if with_infinities and extras:
        assignments = []
        for choice in itertools.product([None, *extras], repeat=len(syms)):
            assignments.append({sym: c for sym, c in zip(syms, choice) if c is not None})
    methods = set()
    for assignment in assignments:
        args = [assignment.get(sym, sym) for sym in syms]
        for lhs, rhs in build(A, M, s.zero, s.one, *args):
            how = prove_equal(lhs, rhs, s.domain)
            if how is None:
                where = ", ".join(f"{str(k)[:-1]}={v}" for k, v in assignment.items())
                return False, methods, f"could not prove {lhs} = {rhs}" + (
                    f" at {where}" if where else "")
            methods.add(how)
    return True, methods, f"{len(assignments)} case(s)"


def _refuted(name: str, law: str, names, values, sides) -> Check:
    counterexample = {n: plain(v) for n, v in zip(names, values)}
    counterexample.update(lhs=plain(sides[0]), rhs=plain(sides[1]))
    shown = ", ".join(f"{n}={plain(v)}" for n, v in zip(names, values))
    lhs, rhs = (plain(v) for v in sides)
    if "nan" in (lhs, rhs):
        undefined = " and ".join(side for side, v in (("lhs", lhs), ("rhs", rhs)) if v == "nan")
        why = f"{undefined} undefined (nan; lhs={lhs}, rhs={rhs})"
    else:
        why = f"{lhs} != {rhs}"
    return Check(name, REFUTED, counterexample, f"{law} fails at {shown}: {why}")


def check_law(s: Semiring, name: str, law: str, names, build: Callable,
              random_trials: int = RANDOM_TRIALS, infinities: bool = True) -> Check:
    """Check one law of semiring `s`: refute numerically, else prove symbolically."""
    found = _search(s, build, len(names), random_trials)
    if found.values is not None:
        return _refuted(name, law, names, found.values, found.sides)
    trials = found.trials
    if found.exhaustive:
        return Check(name, PROVED, None, f"{law}: exhaustive over {{0, 1}}^{len(names)}")
    try:
        ok, methods, cases = _prove_law(s, build, names, infinities)
    except (TypeError, ValueError, NotImplementedError, RecursionError) as err:
        ok, methods, cases = False, set(), f"sympy failed ({type(err).__name__})"
    if ok:
        return Check(name, PROVED, None, f"{law}: by {'+'.join(sorted(methods))}, {cases}")
    return Check(name, UNPROVEN, None,
                 f"{law}: {cases}; no counterexample in {trials} numeric trials")


def ill_formed(s: Semiring) -> str | None:
    """Why the semiring's expressions cannot be evaluated at all (None when they can): an
    undefined constant such as zoo (from x / 0), or a name other than x and y."""
    for what, e in (("⊕", s.add), ("⊗", s.mul), ("zero", s.zero), ("one", s.one)):
        e = sympy.sympify(e)
        if e.has(sympy.nan, sympy.zoo, sympy.I):
            return f"{what} = {e} is undefined or complex (nan, zoo or I)"
        extra = e.free_symbols - ({X, Y} if what in ("⊕", "⊗") else set())
        if extra:
            return f"{what} = {e} mentions {', '.join(sorted(map(str, extra)))}"
    return None


@lru_cache(maxsize=256)
def _semiring_checks(key: tuple) -> tuple:
    domain, add, mul, zero, one = key
    s = Semiring("", domain, add, mul, zero, one)
    why = ill_formed(s)
    if why:
        return tuple(Check(name, UNPROVEN, None, f"{law}: not checked: {why}")
                     for name, law, _, _ in SEMIRING_LAWS)
    return tuple(check_law(s, name, law, names, build)
                 for name, law, names, build in SEMIRING_LAWS)


def check_semiring(s: Semiring) -> tuple:
    """The eight semiring axioms of `s` within its domain, as `Check`s named
    `semiring.<axiom>` (cached per (domain, add, mul, zero, one))."""
    return _semiring_checks(semiring_key(s))


@lru_cache(maxsize=256)
def _combine_check(key: tuple) -> Check:
    domain, add, mul, zero, one = key
    s = Semiring("", domain, add, mul, zero, one)
    name, law, names, build = COMBINE_LAW
    why = ill_formed(s)
    if why:
        return Check(name, UNPROVEN, None, f"not checked: {why}")
    check = check_law(s, name, law, names, build, COMBINE_TRIALS, infinities=False)
    if check.verdict != PROVED or domain == "boolean" or not _extras(s):
        return check
    # The cases at an adjoined zero/one (±∞) follow from laws already checked with them:
    # first components by ⊗-associativity; second components,
    #   A3⊗(A2⊗b1 ⊕ b2) ⊕ b3 = (A3⊗A2)⊗b1 ⊕ (A3⊗b2 ⊕ b3),
    # by left distributivity, ⊗-associativity and ⊕-associativity.
    needed = ("semiring.mul_associative", "semiring.left_distributive",
              "semiring.add_associative")
    axioms = {c.name: c.verdict for c in _semiring_checks(key)}
    if all(axioms[n] == PROVED for n in needed):
        return Check(name, PROVED, None, check.detail + "; at the adjoined zero/one from "
                     "⊗-assoc, left distributivity and ⊕-assoc (proved there)")
    return Check(name, UNPROVEN, None, check.detail + "; domain values only: the cases at the "
                 "adjoined zero/one need ⊗-assoc, left distributivity and ⊕-assoc, not all "
                 "proved")


def check_combine(s: Semiring) -> Check:
    """Associativity of the scan combine (A1, b1) • (A2, b2) = (A2 ⊗ A1, A2 ⊗ b1 ⊕ b2) for
    scalar A, b in the carrier of `s`, checked directly (named `combine.associative`)."""
    return _combine_check(semiring_key(s))
