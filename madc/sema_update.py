"""State-update normalisation for `sema`: `h = ...` -> `ir.Update(h, Transition, inject)`.

The update must be affine in the state: split into ⊕-terms, exactly one term mentions the
state, and that term is `h`, `c ⊗ h` (elementwise coefficient), `A @ h` or `h @ A` with `A` a
written product of transition constructors. The structure class is read off the written
factors (never guessed from values); the algebra checker proves or refutes its closure.
"""

from __future__ import annotations

from madc import ast, ir
from madc.sema_expr import CONSTRUCTORS, ExprChecker, Mode, fail
from madc.sema_shapes import broadcast, fmt_shape

_SINGLE_CLASS = {
    "diag": "diagonal", "perm": "permutation", "onehot": "column_onehot",
    "signed_perm": "signed_permutation", "block_diag": "block_diagonal",
    "circulant": "circulant", "toeplitz": "toeplitz", "dense": "dense", "monarch": "monarch",
    "identity_minus_outer": "identity_minus_rank1",
}
# Products of one non-diagonal kind (repeated) with any number of diagonals.
_WITH_DIAG = {
    "perm": "monomial", "signed_perm": "monomial", "onehot": "column_onehot_diagonal",
    "circulant": "circulant_diagonal",
}
_SAME_KIND = {"perm": "permutation", "signed_perm": "signed_permutation",
              "onehot": "column_onehot", "block_diag": "block_diagonal",
              "circulant": "circulant"}


def _mentions(e, name: str) -> bool:
    if isinstance(e, ast.Name):
        return e.name == name
    if isinstance(e, (ast.Neg,)):
        return _mentions(e.x, name)
    if isinstance(e, ast.BinOp):
        return _mentions(e.x, name) or _mentions(e.y, name)
    if isinstance(e, ast.Subscript):
        return _mentions(e.x, name) or any(_mentions(i, name) for i in e.items)
    if isinstance(e, ast.Call):
        return any(_mentions(a, name) for a in e.args) or any(
            _mentions(k.value, name) for k in e.keywords)
    if isinstance(e, ast.Keyword):
        return _mentions(e.value, name)
    return False


def _flatten(e, ops: tuple) -> list:
    if isinstance(e, ast.BinOp) and e.op in ops:
        return _flatten(e.x, ops) + _flatten(e.y, ops)
    return [e]


def _is_state(e, name: str) -> bool:
    return isinstance(e, ast.Name) and e.name == name


def check_update(ck: ExprChecker, stmt: ast.UpdateStmt, state: ir.State, mode: Mode,
                 real_mode: Mode, facts: frozenset) -> ir.Update:
    """Normalise one state update (raises `SemaError` on the first problem)."""
    name = state.name
    terms = _flatten(stmt.expr, ("add", "oplus"))
    with_state = [t for t in terms if _mentions(t, name)]
    if not with_state:
        fail(stmt.expr.span, "E0501", f"the update of `{name}` does not use `{name}`",
             f"a scan update is affine in the state: {name} = a * {name} + b")
    if len(with_state) > 1:
        fail(with_state[1].span, "E0501", f"`{name}` appears in more than one ⊕-term; the "
             "update must be affine in the state", f"write it as {name} = a * {name} + b")
    transition = _transition(ck, with_state[0], state, mode, real_mode, facts)
    inject = None
    for t in terms:
        if t is with_state[0]:
            continue
        v = ck.semiring(t, mode)
        inject = v if inject is None else ir.SAdd(
            inject, v, broadcast(inject.shape, v.shape) or (), inject.varying or v.varying)
        shape = broadcast(inject.shape, state.shape)
        if shape is None or shape != tuple(state.shape):
            fail(t.span, "E0504", f"this term has shape {fmt_shape(inject.shape)}, which does "
                 f"not broadcast to the state's shape {fmt_shape(state.shape)}")
    return ir.Update(name, transition, inject, stmt.span)


def _transition(ck, term, state, mode, real_mode, facts) -> ir.Transition:
    name = state.name
    if _is_state(term, name):
        return ir.Transition("identity", "elementwise")
    if isinstance(term, ast.BinOp) and term.op in ("mul", "otimes"):
        factors = _flatten(term, ("mul", "otimes"))
        hs = [f for f in factors if _is_state(f, name)]
        bad = [f for f in factors if not _is_state(f, name) and _mentions(f, name)]
        if bad or len(hs) != 1:
            fail((bad or factors)[0].span if bad else term.span, "E0501",
                 f"`{name}` must appear exactly once, linearly, in its update",
                 f"write {name} = a * {name} + b")
        coeff = None
        for f in factors:
            if f is hs[0]:
                continue
            v = ck.semiring(f, mode)
            if coeff is None:
                coeff = v
            else:
                shape = broadcast(coeff.shape, v.shape)
                if shape is None:
                    fail(f.span, "E0301", f"cannot broadcast shapes {fmt_shape(coeff.shape)} "
                         f"and {fmt_shape(v.shape)}")
                coeff = ir.SMul(coeff, v, shape, coeff.varying or v.varying)
        shape = broadcast(coeff.shape, state.shape)
        if shape is None or shape != tuple(state.shape):
            fail(term.span, "E0504", f"the coefficient has shape {fmt_shape(coeff.shape)}, "
                 f"which does not broadcast to the state's shape {fmt_shape(state.shape)}",
                 "index with [:, None] to line axes up")
        structure = "scalar" if coeff.shape == () else "diagonal"
        return ir.Transition(structure, "elementwise", coeff=coeff)
    if isinstance(term, ast.BinOp) and term.op == "matmul":
        return _matmul_transition(ck, term, state, real_mode, facts)
    if isinstance(term, (ast.BinOp, ast.Neg)):
        ck.semiring(term, mode)  # reports `-`, `/`, `**` as not semiring operations
    fail(term.span, "E0501", f"this term is not affine in `{name}`",
         f"write {name} = a * {name} + b, {name} = A @ {name} + b or {name} = {name} @ A + b")


def _matmul_transition(ck, term, state, real_mode, facts) -> ir.Transition:
    name = state.name
    chain = _flatten(term, ("matmul",))
    positions = [i for i, f in enumerate(chain) if _is_state(f, name)]
    bad = [f for f in chain if not _is_state(f, name) and _mentions(f, name)]
    if bad or len(positions) != 1:
        fail(bad[0].span if bad else term.span, "E0501",
             f"`{name}` must appear exactly once, linearly, in its update")
    pos = positions[0]
    if 0 < pos < len(chain) - 1:
        fail(term.span, "E0505", "a transition acts on one side of the state",
             f"write A @ {name} or {name} @ A, not both")
    side = "left" if pos == len(chain) - 1 else "right"
    written = chain[:-1] if side == "left" else chain[1:]
    factors = [_factor(ck, f, real_mode, facts) for f in written]
    if side == "left":
        acted = tuple(state.shape[:2]) if factors[0][2] == 2 else tuple(state.shape[:1])
    else:
        acted = tuple(state.shape[-2:]) if factors[0][2] == 2 else tuple(state.shape[-1:])
    for factor, size, naxes, span in factors:
        if naxes == 2 and len(state.shape) < 2 or size != acted:
            fail(span, "E0504", f"this `{factor.kind}` acts on {_size_words(size)}, but the "
                 f"{side} side of `{name}` {fmt_shape(state.shape)} has {_size_words(acted)}")
    structure = _product_class(term.span, [f[0].kind for f in factors])
    size = acted if len(acted) == 2 else acted[0]
    return ir.Transition(structure, side, factors=tuple(f[0] for f in factors), size=size)


def _size_words(size: tuple) -> str:
    if len(size) == 2:
        return f"[{size[0]}, {size[1]}] (blocks)"
    return f"size {size[0]}" if size else "no axis"


def _product_class(span, kinds: list) -> str:
    if len(kinds) == 1:
        return _SINGLE_CLASS[kinds[0]]
    if "dense" in kinds:
        return "dense"
    rest = [k for k in kinds if k != "diag"]
    if not rest:
        return "diagonal"
    if len(set(rest)) == 1 and rest[0] in _WITH_DIAG and len(rest) < len(kinds):
        if rest[0] == "circulant" and len(rest) > 1:
            fail(span, "E0505", "unsupported product of transition constructors")
        return _WITH_DIAG[rest[0]]
    if len(rest) == len(kinds) and len(set(rest)) == 1 and rest[0] in _SAME_KIND:
        return _SAME_KIND[rest[0]]
    if set(rest) <= {"perm", "signed_perm"} and len(rest) == len(kinds):
        return "signed_permutation"
    if set(rest) <= {"perm", "signed_perm"}:
        return "monomial"
    fail(span, "E0505", "unsupported product of transition constructors: "
         + " @ ".join(kinds), "write dense(M) for a general matrix")


def _factor(ck, f, real_mode: Mode, facts: frozenset):
    """One written constructor -> (ir.Factor, acted size, number of state axes, span)."""
    if isinstance(f, ast.BinOp) and f.op == "sub" and isinstance(f.x, ast.Name) \
            and f.x.name == "identity":
        if not (isinstance(f.y, ast.Call) and f.y.fn == "outer" and len(f.y.args) == 2
                and not f.y.keywords):
            fail(f.y.span, "E0502", "`identity - ...` needs an outer product: "
                 "identity - outer(u, w)")
        if "has_additive_inverse" not in facts:
            fail(f.span, "E0503", "`identity - outer(u, w)` needs additive inverses, which "
                 "this semiring does not have", "use `semiring real`")
        u, w = (ck.real(a, real_mode) for a in f.y.args)
        for a, src in ((u, f.y.args[0]), (w, f.y.args[1])):
            if len(a.shape) != 1:
                fail(src.span, "E0504", f"outer(u, w) in a transition needs vectors, got "
                     f"{fmt_shape(a.shape)}")
        if u.shape != w.shape:
            fail(f.span, "E0504", f"outer(u, w) needs u and w of one size, got "
                 f"{fmt_shape(u.shape)} and {fmt_shape(w.shape)}")
        return ir.Factor("identity_minus_outer", (u, w)), u.shape, 1, f.span
    if not isinstance(f, ast.Call) or f.fn not in CONSTRUCTORS:
        fail(f.span, "E0502", "a transition matrix must be written with a constructor",
             "diag(d), perm(P), onehot(P), signed_perm(P, s), block_diag(M), circulant(c), "
             "toeplitz(c), dense(M), monarch(L, R) or identity - outer(u, w)")
    if f.keywords:
        fail(f.keywords[0].span, "E0305", f"`{f.fn}` takes no keyword arguments")
    arity = {"signed_perm": 2, "monarch": 2}.get(f.fn, 1)
    if len(f.args) != arity:
        fail(f.span, "E0305", f"`{f.fn}` takes {arity} argument{'s' * (arity > 1)}, got "
             f"{len(f.args)}")
    args = tuple(ck.real(a, real_mode) for a in f.args)
    shapes = [a.shape for a in args]
    return ir.Factor(f.fn, args), *_constructor_size(f, shapes), f.span


def _constructor_size(f, shapes) -> tuple:
    fn, s0 = f.fn, shapes[0]
    if fn in ("diag", "circulant"):
        if len(s0) != 1:
            fail(f.args[0].span, "E0504", f"`{fn}` takes a vector, got {fmt_shape(s0)}")
        return s0, 1
    if fn == "toeplitz":
        if len(s0) != 1:
            fail(f.args[0].span, "E0504", f"`toeplitz` takes a vector of 2n-1 coefficients, "
                 f"got {fmt_shape(s0)}")
        if not isinstance(s0[0], int) or s0[0] % 2 == 0:
            fail(f.args[0].span, "E0504", "`toeplitz(c)` needs c of odd literal size 2n-1")
        return ((s0[0] + 1) // 2,), 1
    if fn in ("perm", "onehot", "dense", "signed_perm"):
        if len(s0) != 2 or s0[0] != s0[1]:
            fail(f.args[0].span, "E0504", f"`{fn}` takes a square matrix, got {fmt_shape(s0)}")
        if fn == "signed_perm" and tuple(shapes[1]) != (s0[0],):
            fail(f.args[1].span, "E0504", f"the signs of `signed_perm` must have shape "
                 f"[{s0[0]}], got {fmt_shape(shapes[1])}")
        return (s0[0],), 1
    if fn == "block_diag":
        if len(s0) != 3 or s0[1] != s0[2]:
            fail(f.args[0].span, "E0504", f"`block_diag` takes blocks [nb, k, k], got "
                 f"{fmt_shape(s0)}")
        return (s0[0], s0[1]), 2
    # monarch(L, R): L, R [b, b, b] acting on a state whose two axes [b, b] hold b*b entries
    for s, a in zip(shapes, f.args):
        if len(s) != 3 or not s[0] == s[1] == s[2]:
            fail(a.span, "E0504", f"`monarch` takes blocks [b, b, b], got {fmt_shape(s)}")
    if shapes[0] != shapes[1]:
        fail(f.span, "E0504", "the two factors of `monarch` must have one shape")
    return (s0[0], s0[0]), 2
