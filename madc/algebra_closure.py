"""Closure of transition structure classes under composition (`Transition.structure` names).

A class is closed when the product of two of its matrices is again in it; only then can a
scan carry one O(class size) transition per chunk. Three methods, chosen per class:

* **Free-semiring symbolic** (scalar, identity, diagonal, block_diagonal, circulant, toeplitz):
  generic members with distinct symbols, multiplied as polynomials with natural-number
  coefficients (entries a_ik·b_kj, A's symbol always first) at n = 2, 3, 4, then the class's
  defining equations are checked with `expand`. A polynomial identity of ℕ[x] holds in *every*
  semiring whose axioms hold, so one proof serves all semirings.
* **Enumeration** (permutation, column_onehot, monomial, column_onehot_diagonal,
  signed_permutation): every member (or every support pattern, entries generic) at n = 2..4,
  multiplied with integer matrices counting the terms of each entry: a count of 0 is the
  semiring zero, a count of 1 of one ⊗ one is one. Signed permutations need -1: in a ring
  they are enumerated with integers, elsewhere in the spec's semiring.
* **Random membership** (monarch, circulant_diagonal, identity_minus_rank1, and toeplitz once
  its equations fail): random small-integer members multiplied in the spec's semiring (exactly,
  with integers, in the real semiring) and tested against a characterisation of the class; a
  failing pair is re-multiplied and re-tested before it is reported.

The general-n arguments behind the proved classes are in `docs/checker.md`.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from functools import cache, lru_cache

import numpy as np
import sympy

from madc.algebra_semiring import ill_formed, semiring_key
from madc.algebra_verdict import PROVED, REFUTED, UNPROVEN, Check, plain
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Semiring
from madc.semiring import derive_facts

SIZES = (2, 3, 4)
SEARCH_TRIALS = 200

# --------------------------------------------------------------------------- free semiring


def _generic(kind: str, n: int, tag: str, block: int = 2) -> sympy.Matrix:
    """A generic member with symbols `tag`0, `tag`1, ... (zero entries are the semiring zero)."""
    s = sympy.symbols(f"{tag}0:{2 * n}")
    if kind == "identity":
        return sympy.eye(n)
    if kind == "scalar":
        return s[0] * sympy.eye(n)
    if kind == "diagonal":
        return sympy.diag(*s[:n])
    if kind == "circulant":
        return sympy.Matrix(n, n, lambda i, j: s[(i - j) % n])
    if kind == "toeplitz":
        return sympy.Matrix(n, n, lambda i, j: s[i - j + n - 1])
    if kind == "block_diagonal":
        m = sympy.symbols(f"{tag}0:{n * block}")
        return sympy.Matrix(n, n, lambda i, j: m[i * block + j % block]
                            if i // block == j // block else 0)
    raise KeyError(kind)


def _equations(kind: str, m: sympy.Matrix, block: int = 2) -> list:
    """(lhs, rhs, where) triples a member must satisfy."""
    n = m.rows
    eqs = []
    for i, j in itertools.product(range(n), repeat=2):
        if kind in ("diagonal", "scalar", "identity") and i != j:
            eqs.append((m[i, j], 0, f"[{i}][{j}]"))
        if kind == "scalar" and i == j and i > 0:
            eqs.append((m[i, i], m[0, 0], f"[{i}][{i}] vs [0][0]"))
        if kind == "identity" and i == j:
            eqs.append((m[i, i], 1, f"[{i}][{i}]"))
        if kind == "block_diagonal" and i // block != j // block:
            eqs.append((m[i, j], 0, f"[{i}][{j}]"))
        if kind == "circulant":
            eqs.append((m[i, j], m[(i + 1) % n, (j + 1) % n], f"[{i}][{j}] vs shifted"))
        if kind == "toeplitz" and i + 1 < n and j + 1 < n:
            eqs.append((m[i, j], m[i + 1, j + 1], f"[{i}][{j}] vs [{i + 1}][{j + 1}]"))
    return eqs


@cache
def _free_closure(kind: str) -> tuple[bool, str]:
    """Prove closure in the free semiring at the sizes checked; (closed?, detail)."""
    shapes = [(n, 2) for n in SIZES] if kind != "block_diagonal" else [(4, 2), (6, 2), (6, 3)]
    for n, block in shapes:
        product = _generic(kind, n, "a", block) * _generic(kind, n, "b", block)
        for lhs, rhs, where in _equations(kind, product, block):
            if sympy.expand(lhs - rhs) != 0:
                return False, f"n={n}: product{where} is not an identity ({lhs} vs {rhs})"
    sizes = ", ".join(f"n={n}" + (f" blocks of {b}" if kind == "block_diagonal" else "")
                      for n, b in shapes)
    return True, f"generic symbolic members in the free semiring at {sizes}"


# --------------------------------------------------------------------------- enumeration


def _perms(n: int) -> np.ndarray:
    return np.array([np.eye(n, dtype=np.int64)[list(p)].T
                     for p in itertools.permutations(range(n))])


def _onehots(n: int) -> np.ndarray:
    eye = np.eye(n, dtype=np.int64)
    return np.array([eye[:, list(f)] for f in itertools.product(range(n), repeat=n)])


def _signed(n: int) -> np.ndarray:
    signs = np.array(list(itertools.product((1, -1), repeat=n)), dtype=np.int64)
    return np.array([p * s[None, :] for p in _perms(n) for s in signs])


def _member_mask(kind: str, c: np.ndarray) -> np.ndarray:
    """Which of the stacked count (or integer) matrices c[k] are in the class."""
    nz = c != 0
    rows, cols = nz.sum(axis=2), nz.sum(axis=1)
    if kind == "permutation":
        return ((c == 0) | (c == 1)).all(axis=(1, 2)) & (rows == 1).all(1) & (cols == 1).all(1)
    if kind == "column_onehot":
        return ((c == 0) | (c == 1)).all(axis=(1, 2)) & (cols == 1).all(1)
    if kind == "signed_permutation":
        return (np.abs(c) <= 1).all(axis=(1, 2)) & (rows == 1).all(1) & (cols == 1).all(1)
    if kind == "monomial":
        return (rows <= 1).all(1) & (cols <= 1).all(1)
    if kind == "column_onehot_diagonal":
        return (cols <= 1).all(1)
    raise KeyError(kind)


_MEMBERS = {"permutation": _perms, "column_onehot": _onehots, "signed_permutation": _signed,
            "monomial": _perms, "column_onehot_diagonal": _onehots}


@cache
def _enumerated_closure(kind: str) -> tuple[bool, str, tuple | None]:
    """Every pair of members (supports) at n = 2..4; (closed?, detail, failing pair)."""
    counted = 0
    for n in SIZES:
        members = _MEMBERS[kind](n)
        products = np.einsum("aij,bjk->abik", members, members).reshape(-1, n, n)
        ok = _member_mask(kind, products)
        counted += len(products)
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            return False, f"n={n}", (members[k // len(members)], members[k % len(members)])
    what = "supports (entries generic)" if kind in ("monomial", "column_onehot_diagonal") \
        else "members"
    return True, f"all {counted} pairs of {what} at n=2..4", None


# --------------------------------------------------------------------------- concrete search


def _real(f, u, v) -> float:
    """f(u, v) as the backends compute it (log(0) = -inf); complex results are nan."""
    with np.errstate(all="ignore"):
        r = complex(f(np.float64(u), np.float64(v)))
    return r.real if r.imag == 0 else float("nan")


@lru_cache(maxsize=256)
def _facts(add: sympy.Expr, mul: sympy.Expr, domain: str) -> frozenset:
    return derive_facts(add, mul, domain)


class _Arith:
    """Semiring arithmetic on concrete values: exact integers in the real semiring, floats
    through the sympy-lambdified operations otherwise."""

    def __init__(self, s: Semiring):
        facts = _facts(s.add, s.mul, s.domain)
        self.ring = {"add_is_plus", "mul_is_times"} <= facts
        self.mul_is_plus = "mul_is_plus" in facts
        self.zero = 0 if self.ring else float(s.zero)
        self.one = 1 if self.ring else float(s.one)
        self._add = sympy.lambdify((X, Y), s.add, modules="numpy")
        self._mul = sympy.lambdify((X, Y), s.mul, modules="numpy")
        self.domain = s.domain

    def add(self, u, v):
        if self.ring:
            return u + v
        return _real(self._add, u, v)

    def mul(self, u, v):
        if self.ring:
            return u * v
        return _real(self._mul, u, v)

    def matmul(self, a: list, b: list) -> list:
        n = len(a)
        out = []
        for i in range(n):
            row = []
            for j in range(n):
                acc = self.zero
                for k in range(n):
                    acc = self.add(acc, self.mul(a[i][k], b[k][j]))
                row.append(acc)
            out.append(row)
        return out

    def value(self, rng: random.Random, nonzero: bool = False):
        pool = {"boolean": (0, 1), "unit_interval": (0, 0.5, 1), "nonneg": (0, 1, 2, 3),
                "positive": (1, 2, 3)}.get(self.domain, (-2, -1, 0, 1, 2))
        if nonzero:
            pool = tuple(v for v in pool if v != self.zero) or pool
        v = rng.choice(pool)
        return v if self.ring else float(v)

    def same(self, u, v) -> bool:
        if self.ring:
            return u == v
        return u == v or abs(u - v) <= 1e-6 * max(1.0, abs(u), abs(v))


def _toeplitz_member(ar: _Arith, n: int, rng: random.Random):
    c = [ar.value(rng) for _ in range(2 * n - 1)]
    return [[c[i - j + n - 1] for j in range(n)] for i in range(n)], {"c": c}


def _monarch_member(ar: _Arith, n: int, rng: random.Random):
    b = 2
    L = [[[ar.value(rng) for _ in range(b)] for _ in range(b)] for _ in range(b)]
    R = [[[ar.value(rng) for _ in range(b)] for _ in range(b)] for _ in range(b)]
    # P^T blockdiag(L) P blockdiag(R) [i1*b+i2, j1*b+j2] = L[i2][i1][j1] (*) R[j1][i2][j2]
    m = [[ar.mul(L[i % b][i // b][j // b], R[j // b][i % b][j % b]) for j in range(b * b)]
         for i in range(b * b)]
    return m, {"L": L, "R": R}


def _cd_member(ar: _Arith, n: int, rng: random.Random):
    d1 = [ar.value(rng, nonzero=True) for _ in range(n)]
    c = [ar.value(rng, nonzero=True) for _ in range(n)]
    d2 = [ar.value(rng, nonzero=True) for _ in range(n)]
    m = [[ar.mul(ar.mul(d1[i], c[(i - j) % n]), d2[j]) for j in range(n)] for i in range(n)]
    return m, {"d1": d1, "c": c, "d2": d2}


def _imr1_member(ar: _Arith, n: int, rng: random.Random):
    u = [ar.value(rng) for _ in range(n)]
    w = [ar.value(rng) for _ in range(n)]
    return [[int(i == j) - u[i] * w[j] for j in range(n)] for i in range(n)], {"u": u, "w": w}


def _rank_gt1(m: list, ar: _Arith) -> str | None:
    """Where a matrix (in the semiring's sense) has rank > 1: a 2x2 minor that is nonzero in a
    ring, or a ⊗-factorisation u_i ⊗ v_j that fails when ⊗ is + (tropical-like)."""
    rows, cols = len(m), len(m[0])
    for i, k in itertools.combinations(range(rows), 2):
        for j, l in itertools.combinations(range(cols), 2):
            if ar.ring and m[i][j] * m[k][l] != m[i][l] * m[k][j]:
                return f"minor rows {i},{k} cols {j},{l} = {m[i][j] * m[k][l] - m[i][l] * m[k][j]}"
            if ar.mul_is_plus and not ar.same(m[i][j] + m[k][l], m[i][l] + m[k][j]):
                return f"[{i}][{j}]+[{k}][{l}] != [{i}][{l}]+[{k}][{j}]"
    return None


def _violation(kind: str, c: list, ar: _Arith) -> str | None:
    """Why the concrete matrix c is not in the class, or None when it is."""
    n = len(c)
    if kind == "toeplitz":
        for i, j in itertools.product(range(n - 1), repeat=2):
            if not ar.same(c[i][j], c[i + 1][j + 1]):
                return f"product[{i}][{j}]={plain(c[i][j])} != " \
                       f"product[{i + 1}][{j + 1}]={plain(c[i + 1][j + 1])}: not Toeplitz"
        return None
    if kind == "monarch":
        b = 2
        for i2, j1 in itertools.product(range(b), repeat=2):
            block = [[c[i1 * b + i2][j1 * b + j2] for j2 in range(b)] for i1 in range(b)]
            why = _rank_gt1(block, ar)
            if why:
                return f"block (i2={i2}, j1={j1}) of the product has rank 2 ({why}); a " \
                       "Monarch matrix has every such block of rank 1"
        return None
    if kind == "circulant_diagonal":
        if any(v == ar.zero for row in c for v in row):
            return None  # the ratio test needs nonzero entries; the search draws again
        ratio = [[Fraction(c[(i + 1) % n][(j + 1) % n], c[i][j]) if ar.ring else
                  c[(i + 1) % n][(j + 1) % n] - c[i][j] for j in range(n)] for i in range(n)]
        why = _rank_gt1(ratio, ar)
        if why:
            op = "/" if ar.ring else "⊘"
            return f"the ratios R[i][j] = product[i+1][j+1] {op} product[i][j] (indices mod " \
                   f"n) are not of rank 1 ({why}); for D1 C D2 they are (d1[i+1] {op} d1[i]) " \
                   f"⊗ (d2[j+1] {op} d2[j])"
        return None
    if kind == "identity_minus_rank1":
        rank = sympy.Matrix(n, n, lambda i, j: int(i == j) - c[i][j]).rank()
        return f"I - product has rank {rank} > 1" if rank > 1 else None
    raise KeyError(kind)


_SAMPLERS = {"toeplitz": (_toeplitz_member, 3), "monarch": (_monarch_member, 4),
             "circulant_diagonal": (_cd_member, 3), "identity_minus_rank1": (_imr1_member, 3)}


def _search_supported(kind: str, ar: _Arith) -> str | None:
    """Why the membership test is not available in this semiring (None when it is)."""
    if kind == "identity_minus_rank1" and not ar.ring:
        return "identity - outer(u, w) needs the real semiring's subtraction"
    if kind in ("monarch", "circulant_diagonal") and not (ar.ring or ar.mul_is_plus):
        return "its membership test needs ⊗ to be real × or + (a ⊗-inverse)"
    return None


def _concrete_search(kind: str, s: Semiring, trials: int = SEARCH_TRIALS):
    """Two random small members whose product leaves the class: (counterexample, trials)."""
    ar = _Arith(s)
    sample, n = _SAMPLERS[kind]
    rng = random.Random(0)
    for trial in range(1, trials + 1):
        (a, a_from), (b, b_from) = sample(ar, n, rng), sample(ar, n, rng)
        product = ar.matmul(a, b)
        if not ar.ring and any(v != v for row in product for v in row):
            continue  # nan: the operations are undefined there (semiring.domain_closed says so)
        why = _violation(kind, product, ar)
        # Re-multiply from scratch and re-test before reporting: the refutation must stand.
        if why and _violation(kind, ar.matmul(a, b), ar) == why:
            return {"class": kind, "n": len(a), "A": _nested_plain(a), "B": _nested_plain(b),
                    "product": _nested_plain(product), "A_from": _args(a_from),
                    "B_from": _args(b_from), "violation": why}, trial
    return None, trials


def _nested_plain(v):
    """Nested lists of numbers as a counterexample shows them (see `plain`)."""
    return [_nested_plain(x) for x in v] if isinstance(v, list) else plain(v)


def _args(parts: dict) -> dict:
    return {k: _nested_plain(v) for k, v in parts.items()}


def _enumeration_in_semiring(s: Semiring) -> tuple[bool, str, dict | None]:
    """Signed permutations outside a ring: P diag(s), s in {1, -1} as carrier values, every
    pair at n=2..3 multiplied in the semiring; a member has one nonzero per row and column,
    each 1 or -1."""
    ar = _Arith(s)
    for n in (2, 3):
        members = []
        for p in itertools.permutations(range(n)):
            for signs in itertools.product((1.0, -1.0), repeat=n):
                members.append([[signs[j] if p[j] == i else ar.zero for j in range(n)]
                                for i in range(n)])
        for a, b in itertools.product(members, repeat=2):
            c = ar.matmul(a, b)
            if any(v != v for row in c for v in row):
                continue  # nan: the operations are undefined there (see domain_closed)
            nz = [[v != ar.zero for v in row] for row in c]
            ok = all(sum(r) == 1 for r in nz) and all(sum(col) == 1 for col in zip(*nz)) \
                and all(v in (1.0, -1.0) for row in c for v in row if v != ar.zero)
            if not ok:
                return False, f"n={n}", {
                    "class": "signed_permutation", "n": n, "A": _nested_plain(a),
                    "B": _nested_plain(b), "product": _nested_plain(c),
                    "violation": "the product's nonzero entries are not all 1 or -1"}
    return True, "all pairs of members at n=2..3, multiplied in the semiring", None


# --------------------------------------------------------------------------- the check

FREE = ("identity", "scalar", "diagonal", "block_diagonal", "circulant", "toeplitz")
ENUMERATED = ("permutation", "column_onehot", "monomial", "column_onehot_diagonal",
              "signed_permutation")
SEARCHED = ("monarch", "circulant_diagonal", "identity_minus_rank1")
CLASSES = FREE + ENUMERATED + SEARCHED + ("dense",)
_EVERY = " (holds in every semiring whose axioms hold)"


def _check(kind: str, s: Semiring) -> Check:
    name = f"closure.{kind}"
    if kind not in CLASSES:
        return Check(name, UNPROVEN, None, f"{kind}: unknown structure class; known: "
                     f"{', '.join(CLASSES)}")
    if kind == "dense":
        return Check(name, PROVED, None, "dense: an n×n product of n×n matrices is n×n")
    if kind == "signed_permutation" and not _Arith(s).ring:
        ok, detail, cex = _enumeration_in_semiring(s)
        if ok:
            return Check(name, PROVED, None, f"{kind}: {detail}")
        return Check(name, REFUTED, cex, f"{kind}: {cex['violation']} ({detail})")
    if kind in FREE:
        ok, detail = _free_closure(kind)
        if ok:
            return Check(name, PROVED, None, f"{kind}: {detail}{_EVERY}")
        free_detail = detail
    elif kind in ENUMERATED:
        ok, detail, _ = _enumerated_closure(kind)
        if ok:
            return Check(name, PROVED, None, f"{kind}: {detail}{_EVERY}")
        return Check(name, UNPROVEN, None, f"{kind}: enumeration failed at {detail}")
    else:
        free_detail = "no pattern description; random membership test"
    unsupported = _search_supported(kind, _Arith(s))
    if unsupported:
        return Check(name, UNPROVEN, None, f"{kind}: {free_detail}; {unsupported}")
    cex, trials = _concrete_search(kind, s)
    if cex is not None:
        return Check(name, REFUTED, cex, f"{kind}: the product of two members leaves the class "
                     f"(trial {trials}): {cex['violation']}")
    return Check(name, UNPROVEN, None, f"{kind}: {free_detail}; no counterexample in {trials} "
                 "random pairs")


@lru_cache(maxsize=512)
def _cached(kind: str, key: tuple) -> Check:
    domain, add, mul, zero, one = key
    s = Semiring("", domain, add, mul, zero, one)
    why = ill_formed(s)
    if why:
        return Check(f"closure.{kind}", UNPROVEN, None, f"{kind}: not checked: {why}")
    return _check(kind, s)


def check_closure(structure: str, s: Semiring) -> Check:
    """Closure of the transition class `structure` (a `Transition.structure` name) under
    products in semiring `s`, named `closure.<structure>` (cached per class and semiring)."""
    return _cached(structure, semiring_key(s))
