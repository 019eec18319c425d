"""Closure of transition structure classes: the verdicts issue 2 asks for, and every refuted
class's two matrices re-checked independently with numpy (product and non-membership)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy

from madc.algebra import CLASSES, check_closure
from madc.algebra_closure import _Arith, _monarch_member
from madc.semiring import builtin

REAL = builtin("real")
TROPICAL = builtin("tropical")

CLOSED = ["identity", "scalar", "diagonal", "block_diagonal", "permutation", "monomial",
          "column_onehot", "column_onehot_diagonal", "signed_permutation", "circulant", "dense"]
NOT_CLOSED = ["toeplitz", "monarch", "circulant_diagonal", "identity_minus_rank1"]


def test_every_class_has_a_verdict():
    assert set(CLOSED) | set(NOT_CLOSED) == set(CLASSES)


@pytest.mark.parametrize("kind", CLOSED)
def test_closed_classes_are_proved_in_the_real_semiring(kind):
    c = check_closure(kind, REAL)
    assert c.name == f"closure.{kind}"
    assert c.verdict == "proved", c.detail


@pytest.mark.parametrize("kind", ["identity", "diagonal", "block_diagonal", "permutation",
                                  "monomial", "column_onehot_diagonal", "circulant"])
@pytest.mark.parametrize("semiring", ["tropical", "log", "boolean", "max_times"])
def test_pattern_classes_are_closed_in_every_semiring(kind, semiring):
    assert check_closure(kind, builtin(semiring)).verdict == "proved"


def _rank(m: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(np.asarray(m, dtype=np.float64), tol=1e-9))


def _independently_not_in_class(kind: str, c: np.ndarray) -> bool:
    n = c.shape[0]
    if kind == "toeplitz":
        return any(c[i, j] != c[i + 1, j + 1] for i in range(n - 1) for j in range(n - 1))
    if kind == "identity_minus_rank1":
        return _rank(np.eye(n) - c) > 1
    if kind == "monarch":
        t = c.reshape(2, 2, 2, 2)  # [i1, i2, j1, j2]
        return any(_rank(t[:, i2, j1, :]) > 1 for i2 in range(2) for j1 in range(2))
    if kind == "circulant_diagonal":
        assert (c != 0).all()
        ratio = np.roll(c, (-1, -1), axis=(0, 1)) / c
        return _rank(ratio) > 1
    raise KeyError(kind)


def _independently_in_class(kind: str, m: np.ndarray, parts: dict) -> bool:
    """The counterexample's A and B really are built from their stated parameters."""
    n = m.shape[0]
    if kind == "toeplitz":
        c = parts["c"]
        return (m == np.array([[c[i - j + n - 1] for j in range(n)] for i in range(n)])).all()
    if kind == "identity_minus_rank1":
        return (m == np.eye(n) - np.outer(parts["u"], parts["w"])).all()
    if kind == "circulant_diagonal":
        c = np.array([[parts["c"][(i - j) % n] for j in range(n)] for i in range(n)])
        return (m == np.diag(parts["d1"]) @ c @ np.diag(parts["d2"])).all()
    if kind == "monarch":
        perm = np.eye(4)[[0, 2, 1, 3]]  # the (2, 2) reshape-transpose, its own inverse
        bd = lambda blocks: np.block([[np.asarray(blocks[0]), np.zeros((2, 2))],  # noqa: E731
                                      [np.zeros((2, 2)), np.asarray(blocks[1])]])
        return (m == perm.T @ bd(parts["L"]) @ perm @ bd(parts["R"])).all()
    raise KeyError(kind)


@pytest.mark.parametrize("kind", NOT_CLOSED)
def test_non_closed_classes_are_refuted_with_two_matrices(kind):
    c = check_closure(kind, REAL)
    assert c.verdict == "refuted", c.detail
    cex = c.counterexample
    a, b, product = (np.array(cex[k], dtype=np.float64) for k in ("A", "B", "product"))
    assert cex["class"] == kind and a.shape == b.shape == (cex["n"], cex["n"])
    assert (a @ b == product).all()
    assert _independently_in_class(kind, a, cex["A_from"])
    assert _independently_in_class(kind, b, cex["B_from"])
    assert _independently_not_in_class(kind, product)
    assert np.abs(a).max() <= 12 and np.abs(b).max() <= 12  # small numbers


def test_monarch_member_formula_matches_its_definition():
    """The entry formula L[i2][i1][j1] * R[j1][i2][j2] is P^T blockdiag(L) P blockdiag(R)."""
    import random

    m, parts = _monarch_member(_Arith(REAL), 4, random.Random(3))
    assert _independently_in_class("monarch", np.array(m, dtype=np.float64), parts)


def _maxplus(a, b):
    return np.max(a[:, :, None] + b[None, :, :], axis=1)


def test_toeplitz_refuted_in_the_tropical_semiring():
    c = check_closure("toeplitz", TROPICAL)
    assert c.verdict == "refuted"
    a, b, p = (np.array(c.counterexample[k], dtype=np.float64) for k in ("A", "B", "product"))
    assert (_maxplus(a, b) == p).all()
    assert _independently_not_in_class("toeplitz", p)


def test_signed_permutation_outside_a_ring_is_refuted():
    # s in {1, -1} as tropical elements: 1 (*) 1 = 2 leaves the class.
    c = check_closure("signed_permutation", TROPICAL)
    assert c.verdict == "refuted"
    a, b, p = (np.array(c.counterexample[k], dtype=np.float64) for k in ("A", "B", "product"))
    assert (_maxplus(a, b) == p).all()
    finite = p[np.isfinite(p)]
    assert not np.isin(finite, [1.0, -1.0]).all()


def test_unknown_or_undefined_classes_are_unproven():
    assert check_closure("hexagonal", REAL).verdict == "unproven"
    c = check_closure("identity_minus_rank1", TROPICAL)
    assert c.verdict == "unproven" and "subtraction" in c.detail


def test_circulant_proof_is_a_polynomial_identity():
    """The law the free-semiring proof relies on, checked at n=5 independently."""
    n = 5
    a, b = sympy.symbols(f"a0:{n}"), sympy.symbols(f"b0:{n}")
    ca = sympy.Matrix(n, n, lambda i, j: a[(i - j) % n])
    cb = sympy.Matrix(n, n, lambda i, j: b[(i - j) % n])
    p = ca * cb
    assert all(sympy.expand(p[i, j] - p[(i + 1) % n, (j + 1) % n]) == 0
               for i, j in itertools.product(range(n), repeat=2))
