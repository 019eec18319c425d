"""Semiring axioms and scan-combine associativity: every verdict issue 2 asks for, with each
refutation's counterexample re-evaluated independently (`madc.semiring.evaluate`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from madc.algebra import (
    SEMIRING_LAWS,
    Check,
    Report,
    check_combine,
    check_domain,
    check_semiring,
    prove_equal,
)
from madc.algebra_semiring import COMBINE_LAW
from madc.algebra_verdict import parse_plain, plain
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.semiring import builtin, define, evaluate

OO = sympy.oo
LSE = sympy.log(sympy.exp(X) + sympy.exp(Y))

SEMIRINGS = {
    "real": builtin("real"),
    "log": builtin("log"),
    "tropical": builtin("tropical"),
    "min_plus": builtin("min_plus"),
    "boolean": builtin("boolean"),
    "max_times_nonneg": builtin("max_times"),
    "min_max": define("min_max", "extended_reals", sympy.Min(X, Y), sympy.Max(X, Y), OO, -OO),
    "max_times_reals": define("mt", "reals", sympy.Max(X, Y), X * Y, sympy.Integer(0),
                              sympy.Integer(1)),
    "logaddexp_times": define("lt", "reals", LSE, X * Y, -OO, sympy.Integer(1)),
    "plus_max": define("pm", "reals", X + Y, sympy.Max(X, Y), sympy.Integer(0), -OO),
    "max_plus_wrong_zero": define("mw", "extended_reals", sympy.Max(X, Y), X + Y, OO,
                                  sympy.Integer(0)),
}
PROVED_ALL = ["real", "log", "tropical", "min_plus", "boolean", "max_times_nonneg", "min_max"]

# Which laws must be refuted in the non-semirings (others may be proved).
REFUTED = {
    "max_times_reals": ["semiring.left_distributive", "semiring.right_distributive",
                        "semiring.zero_add_identity"],
    "logaddexp_times": ["semiring.left_distributive", "semiring.right_distributive"],
    "plus_max": ["semiring.left_distributive", "semiring.right_distributive"],
    "max_plus_wrong_zero": ["semiring.zero_add_identity"],
}


def _ops(s):
    def add(u, v):
        return evaluate(s.add, u, v)

    def mul(u, v):
        return evaluate(s.mul, u, v)

    return add, mul


def _fails(lhs: float, rhs: float) -> bool:
    if math.isnan(lhs) or math.isnan(rhs):
        return True
    if math.isinf(lhs) or math.isinf(rhs):
        return lhs != rhs
    return abs(lhs - rhs) > 1e-6 * max(1.0, abs(lhs), abs(rhs))


def _reevaluate(s, law, cex) -> bool:
    """Does the counterexample make the law fail, evaluated with `madc.semiring.evaluate`?"""
    names, build = law[2], law[3]
    values = [parse_plain(cex[n]) for n in names]
    add, mul = _ops(s)
    zero, one = evaluate(s.zero, 0, 0), evaluate(s.one, 0, 0)
    try:
        pairs = build(add, mul, zero, one, *values)
    except (ValueError, TypeError):
        return True  # undefined in the semiring: a failure too
    return any(_fails(lhs, rhs) for lhs, rhs in pairs)


@pytest.mark.parametrize("key", PROVED_ALL)
def test_semirings_are_proved(key):
    checks = check_semiring(SEMIRINGS[key]) + (check_combine(SEMIRINGS[key]),)
    assert [c.name for c in checks] == [law[0] for law in SEMIRING_LAWS] + [
        "combine.associative"]
    bad = [(c.name, c.verdict, c.detail) for c in checks if c.verdict != "proved"]
    assert bad == []


@pytest.mark.parametrize("key", sorted(REFUTED))
def test_non_semirings_are_refuted_with_failing_counterexamples(key):
    s = SEMIRINGS[key]
    checks = {c.name: c for c in check_semiring(s)}
    for name in REFUTED[key]:
        assert checks[name].verdict == "refuted", (name, checks[name].detail)
    laws = {law[0]: law for law in SEMIRING_LAWS}
    for c in checks.values():
        if c.verdict == "refuted":
            assert _reevaluate(s, laws[c.name], c.counterexample), (c.name, c.counterexample)
        else:
            assert c.counterexample is None


def test_counterexamples_are_small():
    c = {c.name: c for c in check_semiring(SEMIRINGS["max_times_reals"])}
    cex = c["semiring.left_distributive"].counterexample
    assert all(abs(parse_plain(cex[n])) <= 3 for n in "abc")


@pytest.mark.parametrize("key", ["max_times_reals", "logaddexp_times", "plus_max"])
def test_combine_refuted_is_reevaluated(key):
    s = SEMIRINGS[key]
    c = check_combine(s)
    assert c.verdict == "refuted"
    assert _reevaluate(s, COMBINE_LAW, c.counterexample)


def test_log_semiring_infinite_cases_are_proved():
    checks = {c.name: c for c in check_semiring(SEMIRINGS["log"])}
    # 3 variables, each finite or -inf: 8 cases, log(0) evaluated as a limit.
    assert "8 case(s)" in checks["semiring.left_distributive"].detail


def test_prove_equal_never_disproves():
    a, b = sympy.symbols("a b", real=True)
    assert prove_equal(sympy.Max(a, b) + 1, sympy.Max(a + 1, b + 1), "reals") is not None
    assert prove_equal(a * b, a + b, "reals") is None
    # True for nonnegatives only: within nonneg proved, over the reals merely not proved.
    lhs, rhs = a * sympy.Max(a, b), sympy.Max(a * a, a * b)
    assert prove_equal(lhs, rhs, "nonneg") == "z3"
    assert prove_equal(lhs, rhs, "reals") is None


def test_check_requires_counterexample_exactly_when_refuted():
    with pytest.raises(ValueError):
        Check("x", "refuted", None, "")
    with pytest.raises(ValueError):
        Check("x", "proved", {"a": 1}, "")
    with pytest.raises(ValueError):
        Check("x", "maybe", None, "")


def test_report_status_and_json():
    ok = Check("a", "proved", None, "")
    maybe = Check("b", "unproven", None, "")
    bad = Check("c", "refuted", {"a": 1}, "")
    assert Report("s", "p", (ok,)).status == "proved"
    assert Report("s", "p", (ok, maybe)).status == "unproven"
    assert Report("s", "p", (ok, maybe, bad)).status == "refuted"
    data = Report("s", "p", (bad,)).to_json()
    assert data == {"path": "p", "spec": "s", "status": "refuted", "checks": [
        {"name": "c", "verdict": "refuted", "counterexample": {"a": 1}, "detail": ""}]}


def test_plain_values_are_json_safe():
    assert [plain(v) for v in (2.0, 0.5, math.inf, -math.inf, 3)] == [2, 0.5, "inf", "-inf", 3]
    assert parse_plain("-inf") == -math.inf


DOMAIN_CASES = {
    # (+, ×) satisfies every axiom on {0, 1}, but 1 ⊕ 1 = 2 leaves the carrier.
    "plus_times_boolean": (define("pb", "boolean", X + Y, X * Y, sympy.Integer(0),
                                  sympy.Integer(1)), "refuted"),
    "plus_times_unit": (define("pu", "unit_interval", X + Y, X * Y, sympy.Integer(0),
                               sympy.Integer(1)), "refuted"),
    "minus_nonneg": (define("mn", "nonneg", X - Y, X * Y, sympy.Integer(0),
                            sympy.Integer(1)), "refuted"),
    "probabilistic_or": (define("po", "unit_interval", X + Y - X * Y, X * Y, sympy.Integer(0),
                                sympy.Integer(1)), "proved"),
    "plus_times_positive_with_zero": (define("pp", "positive", X + Y, X * Y, sympy.Integer(0),
                                             sympy.Integer(1)), "proved"),
}


@pytest.mark.parametrize("key", PROVED_ALL)
def test_builtin_carriers_are_closed(key):
    c = check_domain(SEMIRINGS[key])
    assert (c.name, c.verdict) == ("semiring.domain_closed", "proved"), c.detail


@pytest.mark.parametrize("key", sorted(DOMAIN_CASES))
def test_carrier_closure(key):
    s, expected = DOMAIN_CASES[key]
    c = check_domain(s)
    assert c.verdict == expected, c.detail
    if expected == "refuted":
        cex = c.counterexample
        op = s.add if cex["op"] == "⊕" else s.mul
        r = evaluate(op, parse_plain(cex["a"]), parse_plain(cex["b"]))
        lo, hi = {"boolean": (0, 1), "unit_interval": (0, 1), "nonneg": (0, math.inf)}[s.domain]
        assert r == parse_plain(cex["result"]) and not (lo <= r <= hi and
                                                        (s.domain != "boolean" or r in (0, 1)))


# --------------------------------------------------------------------------- property test
# Random (add, mul, zero, one, domain): a "proved" law must survive an independent numeric
# evaluation (other values, `madc.semiring.evaluate`), a "refuted" one must fail at its
# counterexample, and nothing may raise.

_OPS = [X + Y, X * Y, sympy.Max(X, Y), sympy.Min(X, Y), LSE, X + Y + X * Y, X - Y,
        sympy.Abs(X - Y), X * Y / 2, sympy.Max(X, Y) + 1]
_CONSTS = [sympy.Integer(0), sympy.Integer(1), OO, -OO, sympy.Integer(-1)]
_DOMAIN_VALUES = {"reals": [i / 4 for i in range(-20, 21)],
                  "extended_reals": [i / 4 for i in range(-20, 21)],
                  "nonneg": [i / 4 for i in range(0, 21)],
                  "positive": [i / 4 for i in range(1, 21)],
                  "unit_interval": [i / 8 for i in range(0, 9)], "boolean": [0.0, 1.0]}


def _oracle(expr, u, v):
    # numpy's logaddexp is right at +inf too (the max-shift form gives inf - inf = nan there).
    return float(np.logaddexp(u, v)) if expr == LSE else evaluate(expr, u, v)


def _safe(f, *args):
    try:
        return f(*args)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return math.nan


@settings(max_examples=30, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate])  # shrinking re-runs the checker: slow
@given(st.sampled_from(_OPS), st.sampled_from(_OPS), st.sampled_from(_CONSTS),
       st.sampled_from(_CONSTS), st.sampled_from(sorted(_DOMAIN_VALUES)),
       st.randoms(use_true_random=False))
def test_random_semirings_get_sound_verdicts(add, mul, zero, one, domain, rnd):
    s = define("random", domain, add, mul, zero, one)
    laws = {law[0]: law for law in SEMIRING_LAWS}
    pool = _DOMAIN_VALUES[domain] + [evaluate(v, 0, 0) for v in (zero, one)]

    def A(u, v):
        return _safe(_oracle, add, u, v)

    def M(u, v):
        return _safe(_oracle, mul, u, v)

    z, o = evaluate(zero, 0, 0), evaluate(one, 0, 0)
    for c in check_semiring(s):
        names, build = laws[c.name][2], laws[c.name][3]
        if c.verdict == "refuted":
            assert _reevaluate(s, laws[c.name], c.counterexample)
        elif c.verdict == "proved":
            for _ in range(15):
                values = [rnd.choice(pool) for _ in names]
                pairs = build(A, M, z, o, *values)
                assert not any(_fails(lhs, rhs) for lhs, rhs in pairs), (c.name, values)


def test_infinities_left_inside_expressions_are_not_proofs():
    # oo*y is undefined at y = 0: two identical such sides prove nothing.
    y = sympy.Symbol("y", real=True)
    assert prove_equal(OO * y, OO * y, "reals") is None
    assert prove_equal(-OO, -OO, "extended_reals") == "identical"


@pytest.mark.timeout(120)  # a hang guard: each case takes about a second
def test_ill_formed_and_expensive_semirings_end_in_verdicts():
    """User definitions the front end accepts must never raise or hang the checker."""
    cases = [
        define("zoo", "positive", sympy.zoo * sympy.log(2 * sympy.exp(X)), X,
               sympy.Integer(0), sympy.Integer(1)),
        define("nested", "extended_reals", sympy.Integer(2), sympy.Min(
            sympy.Rational(1, 2), X, sympy.log(sympy.exp(sympy.Max(X, Y)) + 1)), OO, -OO),
        define("tower", "extended_reals", sympy.sqrt(X),
               sympy.exp((sympy.exp(X) - 1) ** (sympy.exp(X) - 1)), OO, -OO),
        define("branch", "unit_interval", sympy.exp((-2) ** Y * X), sympy.Integer(0),
               sympy.Integer(0), sympy.Integer(1)),
    ]
    for s in cases:
        checks = (check_domain(s), *check_semiring(s), check_combine(s))
        assert all(c.verdict in ("proved", "refuted", "unproven") for c in checks)
    zoo = check_domain(cases[0])
    assert zoo.verdict == "refuted" and "undefined" in zoo.detail
