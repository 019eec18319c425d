"""Expression checking for `sema`: AST expressions -> typed IR expressions.

Two modes, chosen by the keyword that starts the line (see docs/language.md):

* real (`let`, `output`, `param ... init`): `Binary`/`Unary`/`Call`/`Index`, numbers, dims.
* semiring (state update, `readout`): `SAdd`/`SMul`/`SSum`/`SMatmul`/`SOuter` over refs and
  indexed refs only; function calls belong in a `let`.

The first mistake in an expression raises `SemaError` (one diagnostic per line); `Poisoned`
means the line uses a name whose own declaration already failed, so nothing more is said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from madc import ast, ir
from madc.errors import Diagnostic
from madc.sema_shapes import broadcast, fmt_shape, matmul_shape, normalise_axis, outer_shape

ELEMENTWISE = ("exp", "log", "log1p", "expm1", "softplus", "sigmoid", "tanh", "relu", "silu",
               "sqrt", "abs", "cos", "sin", "hardsign")
REDUCTIONS = ("sum", "mean", "amax", "amin", "logsumexp")
CONSTRUCTORS = ("diag", "perm", "onehot", "signed_perm", "block_diag", "circulant", "toeplitz",
                "dense", "monarch")
# Every name a spec may call in a real line (max/min are spelled maximum/minimum in the IR).
REAL_CALLABLE = frozenset(ELEMENTWISE + REDUCTIONS + (
    "max", "min", "maximum", "minimum", "clamp", "hardmax", "stack", "roll", "eye", "arange",
    "randn", "uniform"))


class SemaError(Exception):
    """One diagnostic, raised out of the expression being checked."""

    def __init__(self, diag: Diagnostic):
        super().__init__(diag.message)
        self.diag = diag


class Poisoned(Exception):
    """The expression uses a name whose declaration already produced a diagnostic."""


def fail(span, code: str, message: str, hint: str | None = None):
    """Raise a `SemaError` (never returns)."""
    raise SemaError(Diagnostic(span, code, message, hint))


@dataclass(frozen=True, slots=True)
class Entry:
    """What a name in scope denotes. `shape` None marks a poisoned (failed) declaration."""

    kind: str  # input param let state readout dim output
    shape: tuple | None
    varying: bool
    span: ir.Span | None


@dataclass(frozen=True, slots=True)
class Mode:
    """What a line may mention: `kinds` of names, whether dims may include the heads dim."""

    arith: str  # "real" | "semiring"
    line: str  # "let", "output", "param init", "update", "readout", "transition argument"
    kinds: frozenset
    allow_heads: bool = False
    param_shape: tuple = ()  # param init: the full shape randn()/uniform() produce


def _int_literal(e: ast.Expr) -> int | None:
    """An integer literal, possibly negated; None otherwise."""
    if isinstance(e, ast.Neg):
        v = _int_literal(e.x)
        return None if v is None else -v
    if isinstance(e, ast.Number) and e.value.is_integer() and abs(e.value) < 2**31:
        return int(e.value)
    return None


def _num_literal(e: ast.Expr) -> float | None:
    if isinstance(e, ast.Neg):
        v = _num_literal(e.x)
        return None if v is None else -v
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Name) and e.name == "inf":
        return math.inf
    return None


class ExprChecker:
    """Checks expressions against a scope (`dict[str, Entry]`), dims and the heads dim."""

    def __init__(self, scope: dict, dims: dict, heads: str | None):
        self.scope = scope
        self.dims = dims
        self.heads = heads

    # ------------------------------------------------------------------ shared pieces
    def ref(self, e: ast.Name, mode: Mode):
        """A name as an IR value, checking it is visible on this line."""
        name = e.name
        if name == "None":
            fail(e.span, "E0304", "`None` is only meaningful inside a subscript",
                 "write x[:, None] to insert an axis")
        if name in ("inf", "oo"):
            if mode.arith == "semiring":
                fail(e.span, "E0403", "a number cannot appear in a semiring line",
                     "define it in a `let` line and use that name")
            return ir.Num(math.inf)
        if name == "identity":
            fail(e.span, "E0502", "`identity` is only valid as `identity - outer(u, w)` in a "
                 "state update's transition")
        entry = self.scope.get(name)
        if entry is None:
            fail(e.span, "E0201", f"unknown name `{name}`", self._did_you_mean(name))
        if entry.shape is None:
            raise Poisoned()
        if entry.kind not in mode.kinds:
            fail(e.span, "E0404", f"{_kind_words(entry.kind)} `{name}` cannot be used in "
                 f"{_a(mode.line)} line", _where_hint(entry.kind, mode.line))
        if entry.kind == "dim":
            if mode.arith == "semiring":
                fail(e.span, "E0403", "a dim cannot appear in a semiring line",
                     "define a `let` with the value and use that name")
            if name == self.heads and not mode.allow_heads:
                fail(e.span, "E0208", f"the heads dim `{name}` is not a value here",
                     "only a param's init may use the heads dim")
            return ir.Ref(name, "dim", (), False)
        return ir.Ref(name, entry.kind, entry.shape, entry.varying)

    def _did_you_mean(self, name: str) -> str | None:
        import difflib

        close = difflib.get_close_matches(name, list(self.scope), n=1)
        return f"did you mean `{close[0]}`?" if close else None

    def dim_arg(self, e: ast.Expr, mode: Mode, fn: str):
        """`n` of `eye(n)`/`arange(n)`: a dim name or a positive integer literal."""
        if isinstance(e, ast.Name) and self.scope.get(e.name, Entry("", (), False, None)).kind \
                == "dim":
            if e.name == self.heads and not mode.allow_heads:
                fail(e.span, "E0208", f"`{fn}({e.name})` uses the heads dim outside a param init",
                     "shapes never mention the heads dim; declare a param [H, ...] instead")
            return e.name, ir.Ref(e.name, "dim", (), False)
        n = _int_literal(e)
        if n is None or n <= 0 or n > 2**20:
            fail(e.span, "E0305", f"`{fn}` takes a dim name or a positive integer literal")
        return n, ir.Num(float(n))

    def axis(self, call: ast.Call, ndim: int, required: bool = True) -> int | None:
        kws = {k.name: k for k in call.keywords}
        unknown = [k for k in call.keywords if k.name != "axis"]
        if unknown:
            fail(unknown[0].span, "E0305", f"`{call.fn}` has no argument `{unknown[0].name}`")
        if "axis" not in kws:
            if required:
                fail(call.span, "E0305", f"`{call.fn}` needs `axis=`",
                     f"e.g. {call.fn}(x, axis=0); axes count the per-token shape")
            return None
        k = _int_literal(kws["axis"].value)
        if k is None:
            fail(kws["axis"].span, "E0303", "`axis=` must be an integer literal")
        neg = normalise_axis(k, ndim)
        if neg is None:
            fail(kws["axis"].span, "E0303",
                 f"axis {k} is out of range for a value with {ndim} "
                 f"ax{'i' if ndim == 1 else 'e'}s")
        return neg

    def index(self, e: ast.Subscript, x, mode: Mode):
        """`x[items]` -> `ir.Index` with one item per axis (trailing `:` made explicit)."""
        items, shape, pos = [], [], 0
        ndim = len(x.shape)
        for it in e.items:
            if isinstance(it, ast.SliceAll):
                if pos >= ndim:
                    fail(it.span, "E0304", f"too many indices for a value of shape "
                         f"{fmt_shape(x.shape)}")
                items.append("slice")
                shape.append(x.shape[pos])
                pos += 1
            elif isinstance(it, ast.Name) and it.name == "None":
                items.append("newaxis")
                shape.append(1)
            else:
                k = _int_literal(it)
                if k is None:
                    fail(it.span, "E0304", "an index must be `:`, `None` or an integer literal",
                         "gather/slicing by values is not supported")
                if pos >= ndim:
                    fail(it.span, "E0304", f"too many indices for a value of shape "
                         f"{fmt_shape(x.shape)}")
                d = x.shape[pos]
                if isinstance(d, int) and not -d <= k < d:
                    fail(it.span, "E0304", f"index {k} is out of range for an axis of size {d}")
                items.append(k)
                pos += 1
        while pos < ndim:
            items.append("slice")
            shape.append(x.shape[pos])
            pos += 1
        return ir.Index(x, tuple(items), tuple(shape), x.varying)

    # ------------------------------------------------------------------ real arithmetic
    def real(self, e: ast.Expr, mode: Mode):
        """A real-arithmetic expression."""
        if isinstance(e, ast.Number):
            if not math.isfinite(e.value) or abs(e.value) > 1e300:
                fail(e.span, "E0212", f"number `{e.text[:20]}` is too large")
            return ir.Num(e.value)
        if isinstance(e, ast.Name):
            return self.ref(e, mode)
        if isinstance(e, ast.Neg):
            x = self.real(e.x, mode)
            if isinstance(x, ir.Num):
                return ir.Num(-x.value)
            return ir.Unary("neg", x, x.shape, x.varying)
        if isinstance(e, ast.BinOp):
            return self._real_binop(e, mode)
        if isinstance(e, ast.Subscript):
            return self.index(e, self.real(e.x, mode), mode)
        if isinstance(e, ast.Call):
            from madc.sema_calls import real_call

            return real_call(self, e, mode)
        fail(getattr(e, "span", None), "E0101", "unexpected expression")  # pragma: no cover

    def _real_binop(self, e: ast.BinOp, mode: Mode):
        if e.op in ("oplus", "otimes"):
            sym = "⊕" if e.op == "oplus" else "⊗"
            fail(e.span, "E0402", f"`{sym}` is semiring arithmetic, but {_a(mode.line)} line "
                 "is real arithmetic", "use `+`/`*` here; ⊕/⊗ belong in a state update or "
                 "readout")
        x = self.real(e.x, mode)
        y = self.real(e.y, mode)
        if e.op == "matmul":
            shape = matmul_shape(x.shape, y.shape)
            if shape is None:
                fail(e.span, "E0302", f"cannot multiply shapes {fmt_shape(x.shape)} @ "
                     f"{fmt_shape(y.shape)}", "the last axis of the left operand must match "
                     "the first (or second-to-last) axis of the right one")
        else:
            shape = broadcast(x.shape, y.shape)
            if shape is None:
                fail(e.span, "E0301", f"cannot broadcast shapes {fmt_shape(x.shape)} and "
                     f"{fmt_shape(y.shape)}", "index with `[:, None]` to add an axis")
        return ir.Binary(e.op, x, y, shape, x.varying or y.varying)

    # ------------------------------------------------------------------ semiring arithmetic
    def semiring(self, e: ast.Expr, mode: Mode):
        """A semiring-arithmetic expression (update inject/coefficients, readouts)."""
        if isinstance(e, ast.Number):
            fail(e.span, "E0403", "a number cannot appear in a semiring line",
                 "define it in a `let` line and use that name")
        if isinstance(e, ast.Name):
            return self.ref(e, mode)
        if isinstance(e, ast.Subscript):
            if not isinstance(e.x, ast.Name):
                fail(e.span, "E0403", "only a name can be indexed in a semiring line",
                     "compute the value in a `let` line, then index that name")
            return self.index(e, self.ref(e.x, mode), mode)
        if isinstance(e, ast.BinOp):
            return self._semiring_binop(e, mode)
        if isinstance(e, ast.Neg):
            fail(e.span, "E0403", "unary `-` is not a semiring operation",
                 "negate in a `let` line; a semiring line only uses ⊕ (+), ⊗ (*) and @")
        if isinstance(e, ast.Call):
            return self._semiring_call(e, mode)
        fail(getattr(e, "span", None), "E0101", "unexpected expression")  # pragma: no cover

    def _semiring_binop(self, e: ast.BinOp, mode: Mode):
        if e.op in ("sub", "div", "pow"):
            sym = {"sub": "-", "div": "/", "pow": "**"}[e.op]
            fail(e.span, "E0403", f"`{sym}` is not a semiring operation",
                 "compute it in a `let` line; a semiring line only uses ⊕ (+), ⊗ (*) and @")
        x = self.semiring(e.x, mode)
        y = self.semiring(e.y, mode)
        varying = x.varying or y.varying
        if e.op == "matmul":
            shape = matmul_shape(x.shape, y.shape)
            if shape is None:
                fail(e.span, "E0302", f"cannot multiply shapes {fmt_shape(x.shape)} @ "
                     f"{fmt_shape(y.shape)}")
            return ir.SMatmul(x, y, shape, varying)
        shape = broadcast(x.shape, y.shape)
        if shape is None:
            fail(e.span, "E0301", f"cannot broadcast shapes {fmt_shape(x.shape)} and "
                 f"{fmt_shape(y.shape)}", "index with `[:, None]` to add an axis")
        node = ir.SAdd if e.op in ("add", "oplus") else ir.SMul
        return node(x, y, shape, varying)

    def _semiring_call(self, e: ast.Call, mode: Mode):
        if e.fn == "sum":
            if len(e.args) != 1:
                fail(e.span, "E0305", "`sum` takes one value and `axis=`")
            x = self.semiring(e.args[0], mode)
            ax = self.axis(e, len(x.shape))
            shape = tuple(d for i, d in enumerate(x.shape) if i - len(x.shape) != ax)
            return ir.SSum(x, ax, shape, x.varying)
        if e.fn == "outer":
            if len(e.args) != 2 or e.keywords:
                fail(e.span, "E0305", "`outer` takes two values: outer(u, v)")
            x = self.semiring(e.args[0], mode)
            y = self.semiring(e.args[1], mode)
            shape = outer_shape(x.shape, y.shape)
            if shape is None:
                fail(e.span, "E0301", f"outer needs two values with at least one axis, got "
                     f"{fmt_shape(x.shape)} and {fmt_shape(y.shape)}")
            return ir.SOuter(x, y, shape, x.varying or y.varying)
        if e.fn in CONSTRUCTORS:
            fail(e.fn_span, "E0502", f"`{e.fn}(...)` is a transition constructor; it is only "
                 "valid applied to the state with @ in a state update", "e.g. h = diag(a) @ h + b")
        if e.fn in REAL_CALLABLE:
            fail(e.fn_span, "E0401", f"`{e.fn}(...)` is real arithmetic and cannot be called in "
                 f"{_a(mode.line)} line", "move it into a `let`: let t = "
                 f"{e.fn}(...), then use t here")
        fail(e.fn_span, "E0306", f"unknown function `{e.fn}`",
             "a semiring line may only call sum(x, axis=k) and outer(u, v)")


def _a(line: str) -> str:
    return ("an " if line[0] in "aeiou" else "a ") + f"`{line}`" if " " not in line else \
        ("an " if line[0] in "aeiou" else "a ") + line


def _kind_words(kind: str) -> str:
    return {"input": "input", "param": "param", "let": "let", "state": "state",
            "readout": "readout", "dim": "dim", "output": "output"}.get(kind, kind)


def _where_hint(kind: str, line: str) -> str | None:
    if kind == "state":
        return "states are read in `readout` lines; add `readout r = ...` and use r"
    if kind == "readout":
        return "readouts are used in `output` lines"
    if kind == "output":
        return "outputs are final; compute shared values in a `let`"
    if line == "param init":
        return "a param's init may only use dims, numbers and init functions"
    return None
