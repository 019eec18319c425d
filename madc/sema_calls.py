"""Real builtin calls for `sema`: argument counts, keyword `axis=`, result shapes."""

from __future__ import annotations

from madc import ast, ir
from madc.sema_expr import (
    CONSTRUCTORS,
    ELEMENTWISE,
    REDUCTIONS,
    ExprChecker,
    Mode,
    _int_literal,
    _num_literal,
    fail,
)
from madc.sema_shapes import broadcast, fmt_shape


def _no_keywords(call: ast.Call):
    if call.keywords:
        fail(call.keywords[0].span, "E0305",
             f"`{call.fn}` takes no keyword argument `{call.keywords[0].name}`")


def _nargs(call: ast.Call, n: int, usage: str):
    if len(call.args) != n:
        fail(call.span, "E0305", f"`{call.fn}` takes {n} argument{'s' * (n != 1)}, got "
             f"{len(call.args)}", f"usage: {usage}")


def _bcast_all(call: ast.Call, args: list) -> tuple:
    shape: tuple | None = ()
    for a in args:
        shape = broadcast(shape, a.shape)
        if shape is None:
            fail(call.span, "E0301", f"the arguments of `{call.fn}` do not broadcast: "
                 + ", ".join(fmt_shape(x.shape) for x in args))
    return shape


def real_call(ck: ExprChecker, e: ast.Call, mode: Mode):
    """Check a builtin call in a real line and return its `ir.Call` (or `ir.Num`)."""
    fn = e.fn
    if fn in ELEMENTWISE:
        _no_keywords(e)
        _nargs(e, 1, f"{fn}(x)")
        x = ck.real(e.args[0], mode)
        return ir.Call(fn, (x,), x.shape, x.varying)
    if fn in ("max", "min", "maximum", "minimum"):
        _no_keywords(e)
        if len(e.args) == 1:
            fail(e.span, "E0305", f"`{fn}` of one value is a reduction: write "
                 f"{'amax' if fn.startswith('max') else 'amin'}(x, axis=k)")
        _nargs(e, 2, f"{fn}(x, y)")
        args = [ck.real(a, mode) for a in e.args]
        name = "maximum" if fn.startswith("max") else "minimum"
        return ir.Call(name, tuple(args), _bcast_all(e, args), any(a.varying for a in args))
    if fn == "clamp":
        _no_keywords(e)
        _nargs(e, 3, "clamp(x, lo, hi)")
        args = [ck.real(a, mode) for a in e.args]
        return ir.Call(fn, tuple(args), _bcast_all(e, args), any(a.varying for a in args))
    if fn in REDUCTIONS or fn == "hardmax":
        _nargs(e, 1, f"{fn}(x, axis=k)")
        x = ck.real(e.args[0], mode)
        if not x.shape:
            fail(e.span, "E0303", f"`{fn}` needs a value with at least one axis")
        ax = ck.axis(e, len(x.shape))
        if fn == "hardmax":
            shape = x.shape
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i - len(x.shape) != ax)
        return ir.Call(fn, (x,), shape, x.varying, axis=ax)
    if fn == "stack":
        if len(e.args) < 1:
            fail(e.span, "E0305", "`stack` takes one or more values and `axis=`")
        args = [ck.real(a, mode) for a in e.args]
        shape = _bcast_all(e, args)
        ax = ck.axis(e, len(shape) + 1)
        pos = len(shape) + 1 + ax
        out = shape[:pos] + (len(args),) + shape[pos:]
        return ir.Call(fn, tuple(args), out, any(a.varying for a in args), axis=ax)
    if fn == "roll":
        _nargs(e, 2, "roll(x, shift, axis=k)")
        x = ck.real(e.args[0], mode)
        shift = _int_literal(e.args[1])
        if shift is None:
            fail(e.args[1].span, "E0305", "the shift of `roll` must be an integer literal")
        if not x.shape:
            fail(e.span, "E0303", "`roll` needs a value with at least one axis")
        ax = ck.axis(e, len(x.shape))
        return ir.Call(fn, (x,), x.shape, x.varying, axis=ax, extra=(shift,))
    if fn in ("eye", "arange"):
        _no_keywords(e)
        _nargs(e, 1, f"{fn}(n)")
        n, arg = ck.dim_arg(e.args[0], mode, fn)
        shape = (n, n) if fn == "eye" else (n,)
        return ir.Call(fn, (arg,), shape, False, extra=(n,))
    if fn in ("randn", "uniform"):
        return _init_call(e, mode)
    if fn == "outer":
        fail(e.fn_span, "E0401", "`outer` is semiring arithmetic (⊗ of two vectors)",
             "in a real line write u[:, None] * v[None, :]")
    if fn in CONSTRUCTORS:
        fail(e.fn_span, "E0502", f"`{fn}(...)` is a transition constructor; it is only valid "
             "applied to the state with @ in a state update")
    fail(e.fn_span, "E0306", f"unknown function `{fn}`",
         "see docs/language.md for the builtins")


def _init_call(e: ast.Call, mode: Mode):
    if mode.line != "param init":
        fail(e.fn_span, "E0404", f"`{e.fn}` is only available in a param's init")
    _no_keywords(e)
    if e.fn == "randn":
        _nargs(e, 0, "randn()")
        return ir.Call("randn", (), mode.param_shape, False)
    _nargs(e, 2, "uniform(lo, hi)")
    lo, hi = (_num_literal(a) for a in e.args)
    if lo is None or hi is None:
        fail(e.span, "E0305", "`uniform` takes two number literals: uniform(lo, hi)")
    if not (abs(lo) < 1e300 and abs(hi) < 1e300 and lo <= hi):
        fail(e.span, "E0305", f"`uniform({lo}, {hi})` needs finite lo <= hi")
    return ir.Call("uniform", (ir.Num(lo), ir.Num(hi)), mode.param_shape, False)

