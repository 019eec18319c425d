"""Semiring declarations for `sema`: built-ins and user definitions -> `ir.Semiring`.

A user definition's `add(x, y)`/`mul(x, y)` bodies are translated to sympy in
`ir.SEMIRING_X`/`ir.SEMIRING_Y` (`max`/`min` -> `Max`/`Min`, `inf` -> `oo`,
`logaddexp(x, y)` -> `log(exp(x) + exp(y))`); `madc.semiring.define` derives the facts.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import sympy

from madc import ast, ir, semiring
from madc.sema_expr import fail

#: Largest numeric exponent in a semiring definition, and largest definition (AST nodes):
#: the algebra checker reasons about these expressions symbolically.
MAX_EXPONENT = 64
MAX_NODES = 40

_UNARY = {"exp": sympy.exp, "log": sympy.log, "abs": sympy.Abs, "sqrt": sympy.sqrt,
          "log1p": lambda v: sympy.log(1 + v), "expm1": lambda v: sympy.exp(v) - 1}
_BINARY = {"max": sympy.Max, "min": sympy.Min, "maximum": sympy.Max, "minimum": sympy.Min,
           "logaddexp": lambda a, b: sympy.log(sympy.exp(a) + sympy.exp(b))}


def _number(e: ast.Number):
    if not math.isfinite(e.value) or abs(e.value) > 1e300:
        fail(e.span, "E0212", f"number `{e.text[:20]}` is too large")
    if e.value.is_integer() and "e" not in e.text.lower() and "." not in e.text:
        return sympy.Integer(int(e.text))
    return sympy.Rational(e.text)


def to_sympy(e: ast.Expr, names: dict):
    """A semiring-definition expression as sympy; `names` maps parameter names to symbols."""
    if isinstance(e, ast.Number):
        return _number(e)
    if isinstance(e, ast.Name):
        if e.name in names:
            return names[e.name]
        if e.name in ("inf", "oo"):
            return sympy.oo
        hint = (f"the parameters here are {', '.join(names)}" if names
                else "a constant is a number, inf or -inf")
        fail(e.span, "E0201", f"unknown name `{e.name}` in a semiring definition", hint)
    if isinstance(e, ast.Neg):
        return -to_sympy(e.x, names)
    if isinstance(e, ast.BinOp):
        ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
               "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
               "pow": lambda a, b: a ** b}
        if e.op not in ops:
            fail(e.span, "E0209", "a semiring definition is written in real arithmetic "
                 "(+ - * / ** and functions)")
        x, y = to_sympy(e.x, names), to_sympy(e.y, names)
        # sympy evaluates numeric powers exactly: 10 ** 10 ** 10 would never finish.
        if e.op == "pow" and y.is_number and (y.is_infinite or abs(y) > MAX_EXPONENT):
            fail(e.y.span, "E0212", f"the exponent is too large (limit {MAX_EXPONENT})")
        return ops[e.op](x, y)
    if isinstance(e, ast.Call):
        if e.keywords:
            fail(e.keywords[0].span, "E0305", f"`{e.fn}` takes no keyword arguments here")
        args = [to_sympy(a, names) for a in e.args]
        if e.fn in _UNARY and len(args) == 1:
            return _UNARY[e.fn](args[0])
        if e.fn in _BINARY and len(args) == 2:
            return _BINARY[e.fn](*args)
        fail(e.fn_span, "E0209", f"`{e.fn}` with {len(args)} argument(s) is not available in a "
             "semiring definition", "use + - * / **, exp, log, log1p, expm1, abs, sqrt, "
             "max(x, y), min(x, y), logaddexp(x, y)")
    fail(e.span, "E0209", "unsupported expression in a semiring definition")


def _size(e) -> int:
    """Number of AST nodes in a semiring-definition expression."""
    if isinstance(e, ast.Neg):
        return 1 + _size(e.x)
    if isinstance(e, ast.BinOp):
        return 1 + _size(e.x) + _size(e.y)
    if isinstance(e, ast.Call):
        return 1 + sum(_size(a) for a in e.args)
    return 1


# Deriving a semiring's facts runs sympy.simplify (about 0.4 s); specs share a handful of
# semirings, so both constructors are memoised and the span is attached afterwards.
@functools.lru_cache(maxsize=64)
def _builtin(name: str) -> ir.Semiring:
    return semiring.builtin(name)


@functools.lru_cache(maxsize=256)
def _define(name, domain, add, mul, zero, one) -> ir.Semiring:
    return semiring.define(name, domain, add, mul, zero, one)


def builtin_semiring(stmt: ast.SemiringBuiltin) -> ir.Semiring:
    """`semiring NAME [over DOMAIN]`."""
    span = stmt.span
    name = stmt.name.name
    if name not in semiring.BUILTIN_NAMES:
        fail(stmt.name.span, "E0209", f"unknown semiring `{name}`",
             f"built-ins: {', '.join(semiring.BUILTIN_NAMES)}; or define one with "
             "`semiring NAME over DOMAIN { add(x, y) = ... }`")
    s = _builtin(name)
    if stmt.domain is not None:
        domain = _domain(stmt.domain)
        if domain != s.domain:
            s = _define(name, domain, s.add, s.mul, s.zero, s.one)
    return dataclasses.replace(s, span=span)


def _domain(ident: ast.Ident) -> str:
    if ident.name not in semiring.DOMAINS:
        fail(ident.span, "E0209", f"unknown domain `{ident.name}`",
             f"domains: {', '.join(semiring.DOMAINS)}")
    return ident.name


def defined_semiring(stmt: ast.SemiringDef, errors: list) -> ir.Semiring | None:
    """`semiring NAME [over DOMAIN] { add(x, y) = ...; mul; zero; one }`. Each bad item adds
    a diagnostic to `errors` (via SemaError) and the result is None."""
    from madc.sema_expr import SemaError

    domain = "reals"
    found: dict = {}
    ok = True
    try:
        if stmt.domain is not None:
            domain = _domain(stmt.domain)
    except SemaError as err:
        errors.append(err.diag)
        ok = False
    for item in stmt.items:
        try:
            found[item.name.name] = _item(item, found)
        except SemaError as err:
            errors.append(err.diag)
            ok = False
    missing = [k for k in ("add", "mul", "zero", "one") if k not in found]
    if ok and missing:
        from madc.errors import Diagnostic

        errors.append(Diagnostic(stmt.name.span, "E0209", f"semiring `{stmt.name.name}` does "
                                 f"not define {', '.join(missing)}",
                                 "a semiring needs add(x, y), mul(x, y), zero and one"))
        ok = False
    if not ok:
        return None
    s = _define(stmt.name.name, domain, found["add"], found["mul"], found["zero"], found["one"])
    return dataclasses.replace(s, span=stmt.span)


def _item(item, found: dict):
    key = item.name.name
    if _size(item.expr) > MAX_NODES:
        fail(item.expr.span, "E0209", f"this definition is too large to check (more than "
             f"{MAX_NODES} operations)")
    if key in found:
        fail(item.name.span, "E0202", f"`{key}` is defined twice in this semiring")
    if isinstance(item, ast.SemiringOp):
        if key not in ("add", "mul"):
            fail(item.name.span, "E0209", f"unknown semiring operation `{key}`",
                 "a semiring defines add(x, y), mul(x, y), zero and one")
        p, q = item.params
        if p.name == q.name:
            fail(q.span, "E0202", f"parameter `{q.name}` is named twice")
        return to_sympy(item.expr, {p.name: ir.SEMIRING_X, q.name: ir.SEMIRING_Y})
    if key not in ("zero", "one"):
        fail(item.name.span, "E0209", f"unknown semiring constant `{key}`",
             "a semiring defines add(x, y), mul(x, y), zero and one")
    value = to_sympy(item.expr, {})
    if value.is_extended_real is not True:
        fail(item.expr.span, "E0209", f"`{key}` must be a real constant or ±inf, got {value}")
    return value
