"""Semiring facts are derived from the operations, never the name; evaluate handles infinities."""

import math

import pytest
import sympy

from madc import semiring
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y


@pytest.mark.parametrize("name, facts", [
    ("real", {"add_is_plus", "mul_is_times", "has_additive_inverse"}),
    ("log", {"add_is_logaddexp", "mul_is_plus"}),
    ("tropical", {"add_is_max", "idempotent_add", "mul_is_plus"}),
    ("min_plus", {"add_is_min", "idempotent_add", "mul_is_plus"}),
    ("max_times", {"add_is_max", "idempotent_add", "mul_is_times"}),
    ("boolean", {"add_is_max", "idempotent_add", "mul_is_min"}),
])
def test_builtin_facts(name, facts):
    assert semiring.builtin(name).facts == facts


def test_user_definition_gets_facts_from_its_operations():
    # (max, +) written by hand, arguments swapped: the tropical lowerings apply.
    s = semiring.define("mine", "extended_reals", sympy.Max(Y, X), Y + X, -sympy.oo,
                        sympy.Integer(0))
    assert {"add_is_max", "mul_is_plus"} <= s.facts
    # logaddexp spelled differently still simplifies to the same operation.
    lae = sympy.log(sympy.exp(Y) + sympy.exp(X))
    assert "add_is_logaddexp" in semiring.define("l", "extended_reals", lae, X + Y,
                                                 -sympy.oo, sympy.Integer(0)).facts
    # (+, max) is nothing we know: no lowering facts for add.
    odd = semiring.define("odd", "reals", X + Y, sympy.Max(X, Y), sympy.Integer(0),
                          sympy.Integer(0))
    assert "add_is_max" not in odd.facts and "mul_is_max" in odd.facts


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="unknown domain"):
        semiring.define("s", "complex", X + Y, X * Y, sympy.Integer(0), sympy.Integer(1))


@pytest.mark.parametrize("x, y, want", [
    (0.0, 0.0, math.log(2.0)),
    (-math.inf, -math.inf, -math.inf),
    (1.0, math.inf, math.inf),
    (-math.inf, 3.0, 3.0),
    (1000.0, 1000.0, 1000.0 + math.log(2.0)),   # no overflow: max-shifted
])
def test_evaluate_logaddexp(x, y, want):
    got = semiring.evaluate(semiring.builtin("log").add, x, y)
    assert got == pytest.approx(want) if math.isfinite(want) else got == want


def test_evaluate_tropical_with_minus_inf():
    trop = semiring.builtin("tropical")
    assert semiring.evaluate(trop.add, -math.inf, 2.0) == 2.0
    assert semiring.evaluate(trop.mul, -math.inf, 2.0) == -math.inf
