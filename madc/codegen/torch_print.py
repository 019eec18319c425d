"""Printers: ScanIR expressions -> PyTorch source text, for every backend's torch side (the
reference/chunked package and the Triton backends, which choose names, semiring spellings and
the dtype/device source through `TorchPrinter`'s options).

Dispatch is on the IR node (`_print_<Node>`, as sympy's printers do) and on one op -> spelling
table per arithmetic. An unsupported node or function raises `CodegenError`: a printer never
emits partial code.

Conventions of the printed code (see `madc/ir.py`):

* A per-token value is a tensor `[B, T, (H,) *shape]` (or `[B, (H,) *shape]` inside a
  sequential step); a static value is `[(H,) *shape]`. IR axes are negative, so reductions,
  indexing and stacking print the same way in every context.
* Right-aligned broadcasting lines up per-token axes only when both operands carry the same
  leading axes. When an operand with leading axes (per-token, or a per-head static) has a
  smaller per-token rank than the result, the printer inserts `None` axes right after the
  leading axes (`x[..., None, :]`), which is what numpy broadcasting of the per-token shapes
  means.
* Semiring nodes are spelled from `Semiring.facts`, never from its name; a semiring whose
  operations match no fact is printed from its sympy `add`/`mul` (reductions become folds over
  the axis, `fold` in the emitted `semiring.py`).
"""

from __future__ import annotations

import keyword
import math

import sympy

from madc.ir import (
    SEMIRING_NODES,
    SEMIRING_X,
    SEMIRING_Y,
    Binary,
    Call,
    Index,
    Num,
    Ref,
    SAdd,
    ScanIR,
    SMatmul,
    SMul,
    SOuter,
    SSum,
    Unary,
)


class CodegenError(Exception):
    """The IR holds something a backend cannot print (an internal error, not a user mistake:
    sema and the algebra checker should have refused the spec first)."""


#: Names that the emitted functions use themselves; spec names that collide get a `_` suffix.
RESERVED = frozenset(
    {"torch", "F", "sr", "prologue", "inputs", "params", "dims", "env", "states", "readouts",
     "dtype", "device", "math", "float", "int", "len", "range", "tuple", "dict", "list",
     "min", "max", "sum", "abs", "lead", "step", "h", "out", "like", "shape", "value", "fill",
     "hardmax", "hardsign"}
)


#: Source of the helpers that printed code calls (`hardmax`, `hardsign`), for emitted modules
#: that do not import the package's `prologue.py` (the Triton backends). Forward values are
#: exactly the prologue's (`hard + (soft - soft.detach())` adds an exact 0), gradients the same
#: straight-through ones (softmax's, tanh's).
HELPERS_SOURCE = '''
def hardmax(x, axis):
    """One-hot of the argmax over `axis`, with the gradient of softmax (straight-through)."""
    soft = torch.softmax(x, dim=axis)
    hard = torch.zeros_like(x).scatter_(axis, x.argmax(dim=axis, keepdim=True), 1.0)
    return hard + (soft - soft.detach())


def hardsign(x):
    """+-1 (+1 at 0), with the gradient of tanh (straight-through)."""
    soft = torch.tanh(x)
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype) + (soft - soft.detach())
'''.strip("\n")


def py_name(name: str) -> str:
    """The Python identifier that spec name `name` gets in emitted code."""
    if keyword.iskeyword(name) or name in RESERVED or name.startswith("_"):
        return name + "_"
    return name


def float_literal(value: float) -> str:
    """A float as Python source (`float("inf")` for infinities)."""
    value = float(value)
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    if math.isnan(value):
        return 'float("nan")'
    return repr(value)


# Real elementwise builtins: name -> torch spelling.
_REAL_UNARY = {
    "exp": "torch.exp", "log": "torch.log", "log1p": "torch.log1p", "expm1": "torch.expm1",
    "softplus": "F.softplus", "sigmoid": "torch.sigmoid", "tanh": "torch.tanh",
    "relu": "torch.relu", "silu": "F.silu", "sqrt": "torch.sqrt", "abs": "torch.abs",
    "cos": "torch.cos", "sin": "torch.sin", "neg": "torch.neg", "hardsign": "hardsign",
}
_REAL_REDUCE = {
    "sum": "torch.sum", "mean": "torch.mean", "amax": "torch.amax", "amin": "torch.amin",
    "logsumexp": "torch.logsumexp",
}
_REAL_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


class SympyTorchPrinter:
    """Prints a sympy expression in `x`/`y` (a user semiring's add or mul) as torch code with
    the operands substituted. Only the operations a semiring definition may use."""

    _FUNCS = {sympy.exp: "torch.exp", sympy.log: "torch.log", sympy.Abs: "torch.abs"}

    def __init__(self, x: str, y: str):
        self.names = {SEMIRING_X: x, SEMIRING_Y: y}

    def doprint(self, e: sympy.Expr) -> str:
        """Torch source for `e`."""
        if e in self.names:
            return self.names[e]
        if e.is_Number or e in (sympy.oo, -sympy.oo):
            return float_literal(float(e))
        if isinstance(e, sympy.Add):
            return "(" + " + ".join(self.doprint(a) for a in e.args) + ")"
        if isinstance(e, sympy.Mul):
            return "(" + " * ".join(self.doprint(a) for a in e.args) + ")"
        if isinstance(e, sympy.Pow):
            return f"({self.doprint(e.base)} ** {self.doprint(e.exp)})"
        if isinstance(e, (sympy.Max, sympy.Min)):
            fn = "torch.maximum" if isinstance(e, sympy.Max) else "torch.minimum"
            out = self.doprint(e.args[0])
            for a in e.args[1:]:
                out = f"{fn}({out}, {self.doprint(a)})"
            return out
        for cls, spelling in self._FUNCS.items():
            if isinstance(e, cls):
                return f"{spelling}({self.doprint(e.args[0])})"
        raise CodegenError(f"cannot print semiring operation {e} for torch")


class SemiringSpelling:
    """How the semiring's add, mul, sum and constants are written in torch, chosen from
    `Semiring.facts`. `generic` is True when no fact matched and the sympy form is used; the
    reduction is then `fold` (a format string of `x` and the axis `a`)."""

    def __init__(self, semiring, guarded: bool = False, fold: str = "sr.fold({x}, {a})"):
        self.semiring = semiring
        facts = semiring.facts
        self.is_real = "add_is_plus" in facts and "mul_is_times" in facts
        self.zero = float_literal(float(semiring.zero))
        self.one = float_literal(float(semiring.one))
        if "add_is_plus" in facts:
            self._add, self._sum = "({x} + {y})", "torch.sum({x}, dim={a})"
        elif "add_is_logaddexp" in facts and guarded:
            # the emitted semiring.py's versions: zero (not NaN) gradients at -inf (+) -inf
            self._add, self._sum = "sr.logaddexp({x}, {y})", "sr.logsumexp({x}, {a})"
        elif "add_is_logaddexp" in facts:
            self._add, self._sum = "torch.logaddexp({x}, {y})", "torch.logsumexp({x}, dim={a})"
        elif "add_is_max" in facts:
            self._add, self._sum = "torch.maximum({x}, {y})", "torch.amax({x}, dim={a})"
        elif "add_is_min" in facts:
            self._add, self._sum = "torch.minimum({x}, {y})", "torch.amin({x}, dim={a})"
        else:
            self._add, self._sum = None, fold
        if "mul_is_times" in facts:
            self._mul = "({x} * {y})"
        elif "mul_is_plus" in facts:
            self._mul = "({x} + {y})"
        elif "mul_is_max" in facts:
            self._mul = "torch.maximum({x}, {y})"
        elif "mul_is_min" in facts:
            self._mul = "torch.minimum({x}, {y})"
        else:
            self._mul = None
        self.generic = self._add is None or self._mul is None

    def add(self, x: str, y: str) -> str:
        """Source for x (+) y."""
        if self._add is None:
            return SympyTorchPrinter(x, y).doprint(self.semiring.add)
        return _fill(self._add, x, y)

    def mul(self, x: str, y: str) -> str:
        """Source for x (*) y."""
        if self._mul is None:
            return SympyTorchPrinter(x, y).doprint(self.semiring.mul)
        return _fill(self._mul, x, y)

    def sum(self, x: str, axis: int) -> str:
        """Source for the (+)-reduction of x over `axis`."""
        return self._sum.format(x=strip_parens(x), a=axis)


class HelperSpelling:
    """Semiring nodes spelled as calls of helper functions that the emitted module defines
    (`add(x, y)`, `mul(x, y)`, `sum(x, axis)`; the Triton backends' torch side)."""

    def __init__(self, add: str, mul: str, sum: str):
        self._names = (add, mul, sum)

    def add(self, x: str, y: str) -> str:
        """Source for x (+) y."""
        return f"{self._names[0]}({strip_parens(x)}, {strip_parens(y)})"

    def mul(self, x: str, y: str) -> str:
        """Source for x (*) y."""
        return f"{self._names[1]}({strip_parens(x)}, {strip_parens(y)})"

    def sum(self, x: str, axis: int) -> str:
        """Source for the (+)-reduction of x over `axis`."""
        return f"{self._names[2]}({strip_parens(x)}, {axis})"


def _fill(spelling: str, x: str, y: str) -> str:
    """A binary spelling with its operands; a function call's arguments lose their redundant
    parentheses (an infix spelling keeps them: they carry precedence)."""
    if not spelling.startswith("("):
        x, y = strip_parens(x), strip_parens(y)
    return spelling.format(x=x, y=y)


def strip_parens(code: str) -> str:
    """`(a + b)` -> `a + b` when the outer parentheses enclose the whole text (for function
    arguments, where they are redundant)."""
    if not (code.startswith("(") and code.endswith(")")):
        return code
    depth = 0
    for i, ch in enumerate(code):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(code) - 1:
            return code
    return code[1:-1]


def pad_axes(code: str, rank: int, extra: int) -> str:
    """Insert `extra` new per-token axes in front of the `rank` per-token axes of `code`."""
    if extra <= 0:
        return code
    items = ["None"] * extra + [":"] * rank
    return f"{code}[..., {', '.join(items)}]"


class TorchPrinter:
    """Prints IR expressions of one spec as torch source.

    `names` maps a `Ref` to the source that reads it (default: its `py_name`). With
    `guarded`, log-semiring sums are spelled with the emitted package's `sr.logaddexp` /
    `sr.logsumexp` (zero gradients where every term is -inf) instead of torch's. `semiring`
    replaces the spelling of semiring nodes (e.g. a `HelperSpelling`); with
    `allow_semiring=False` a semiring node is an error (real-arithmetic contexts). `dtype` and
    `device` are the source of the working dtype and device that constants and constructors
    take (the emitted packages: variables `dtype`, `device`)."""

    def __init__(self, ir: ScanIR, names=None, shape_code: str | None = None,
                 guarded: bool = False, semiring=None, allow_semiring: bool = True,
                 dtype: str = "dtype", device: str = "device"):
        self.ir = ir
        self.sr = semiring or SemiringSpelling(ir.semiring, guarded=guarded)
        self.allow_semiring = allow_semiring
        self.names = names or (lambda ref: py_name(ref.name))
        self.lead = LeadInfo(ir)
        # the full shape (as source) a `randn()`/`uniform()` in a param init fills
        self.shape_code = shape_code
        self.like = f"dtype={dtype}, device={device}"

    def doprint(self, expr) -> str:
        """Torch source for `expr`."""
        method = getattr(self, "_print_" + type(expr).__name__, None)
        if method is None:
            raise CodegenError(f"the torch printer has no rule for {type(expr).__name__}")
        if not self.allow_semiring and isinstance(expr, SEMIRING_NODES):
            raise CodegenError(f"semiring {type(expr).__name__} inside real arithmetic")
        return method(expr)

    # ---------------------------------------------------------------- helpers

    def aligned(self, expr, rank: int) -> str:
        """`expr` printed, with new axes so its per-token rank is `rank` when it carries
        leading axes (see the module doc)."""
        code = self.doprint(expr)
        if self.lead.has_lead(expr):
            return pad_axes(code, len(expr.shape), rank - len(expr.shape))
        return code

    def tensor(self, expr) -> str:
        """`expr` printed as a tensor (constants wrapped with the working dtype/device)."""
        code = self.doprint(expr)
        if not self.lead.is_tensor(expr):
            return f"torch.as_tensor({strip_parens(code)}, {self.like})"
        return strip_parens(code)

    def dim_code(self, item) -> str:
        """A dim (name, int, `Ref` of kind dim or `Num`) as source for an int."""
        if isinstance(item, Ref):
            item = item.name
        if isinstance(item, Num):
            return str(int(item.value))
        if isinstance(item, str):
            return f'dims["{item}"]'
        return str(int(item))

    # ---------------------------------------------------------------- leaves

    def _print_Ref(self, e: Ref) -> str:
        if e.kind == "dim":
            return self.dim_code(e.name)
        return self.names(e)

    def _print_Num(self, e: Num) -> str:
        return float_literal(e.value)

    # ---------------------------------------------------------------- real nodes

    def _print_Unary(self, e: Unary) -> str:
        if e.op != "neg":
            raise CodegenError(f"unknown unary op {e.op!r}")
        return f"(-{self.doprint(e.x)})"

    def _print_Binary(self, e: Binary) -> str:
        if e.op == "matmul":
            return self._matmul(e, real=True)
        if e.op not in _REAL_BINARY:
            raise CodegenError(f"unknown binary op {e.op!r}")
        rank = len(e.shape)
        x, y = self.aligned(e.x, rank), self.aligned(e.y, rank)
        return f"({x} {_REAL_BINARY[e.op]} {y})"

    def _print_Index(self, e: Index) -> str:
        items = []
        for item in e.items:
            if item == "slice":
                items.append(":")
            elif item == "newaxis":
                items.append("None")
            elif isinstance(item, int):
                items.append(str(item))
            else:
                raise CodegenError(f"unknown index item {item!r}")
        return f"{self.doprint(e.x)}[..., {', '.join(items)}]"

    def _print_Call(self, e: Call) -> str:
        fn = e.fn
        rank = len(e.shape)
        if fn in _REAL_UNARY:
            return f"{_REAL_UNARY[fn]}({self.tensor(e.args[0])})"
        if fn in _REAL_REDUCE:
            return f"{_REAL_REDUCE[fn]}({self.tensor(e.args[0])}, dim={e.axis})"
        if fn == "hardmax":
            return f"hardmax({self.tensor(e.args[0])}, {e.axis})"
        if fn in ("maximum", "minimum"):
            x, y = (self._aligned_tensor(a, rank) for a in e.args)
            return f"torch.{fn}({x}, {y})"
        if fn == "clamp":
            x, lo, hi = (self._aligned_tensor(a, rank) for a in e.args)
            return f"torch.clamp({x}, {lo}, {hi})"
        if fn == "stack":
            parts = ", ".join(self._aligned_tensor(a, rank - 1) for a in e.args)
            same = len({(tuple(a.shape), self.lead.has_lead(a)) for a in e.args}) == 1
            if same and all(self.lead.is_tensor(a) for a in e.args):
                return f"torch.stack([{parts}], dim={e.axis})"
            return f"torch.stack(torch.broadcast_tensors({parts}), dim={e.axis})"
        if fn == "roll":
            shift = e.extra[0] if e.extra else e.args[1]
            shift = int(shift.value) if isinstance(shift, Num) else int(shift)
            return f"torch.roll({self.tensor(e.args[0])}, shifts={shift}, dims={e.axis})"
        if fn in ("eye", "arange"):
            n = self.dim_code(e.extra[0] if e.extra else e.args[0])
            return f"torch.{fn}({n}, {self.like})"
        if fn in ("randn", "uniform"):
            return self._random(e)
        raise CodegenError(f"the torch printer does not know the function {fn!r}")

    def _aligned_tensor(self, expr, rank: int) -> str:
        if not self.lead.is_tensor(expr):
            return self.tensor(expr)
        return strip_parens(self.aligned(expr, rank))

    def _random(self, e: Call) -> str:
        if self.shape_code is None:
            raise CodegenError(f"{e.fn}() is only allowed in a param init")
        if e.fn == "randn":
            return f"torch.randn({self.shape_code}, {self.like})"
        lo, hi = (self.doprint(a) for a in e.args)
        rand = f"torch.rand({self.shape_code}, {self.like})"
        return f"({lo} + ({hi} - {lo}) * {rand})"

    def _matmul(self, e, real: bool) -> str:
        """numpy `@` on per-token shapes, real or in the semiring."""
        rx, ry = len(e.x.shape), len(e.y.shape)
        x, y = self.doprint(e.x), self.doprint(e.y)
        if real:
            if rx == 2 and ry == 2:
                return f"({x} @ {y})"
            if rx == 2 and ry == 1:
                return f"({x} @ {y}[..., :, None])[..., 0]"
            if rx == 1 and ry == 2:
                return f"({x}[..., None, :] @ {y})[..., 0, :]"
            if rx == 1 and ry == 1:
                return f"torch.sum({x} * {y}, dim=-1)"
        else:
            mul, total = self.sr.mul, self.sr.sum
            if rx == 2 and ry == 2:
                return total(mul(f"{x}[..., :, :, None]", f"{y}[..., None, :, :]"), -2)
            if rx == 2 and ry == 1:
                return total(mul(x, f"{y}[..., None, :]"), -1)
            if rx == 1 and ry == 2:
                return total(mul(f"{x}[..., :, None]", y), -2)
            if rx == 1 and ry == 1:
                return total(mul(x, y), -1)
        raise CodegenError(f"matmul of per-token ranks {rx} and {ry} is not supported")

    # ---------------------------------------------------------------- semiring nodes

    def _print_SAdd(self, e: SAdd) -> str:
        rank = len(e.shape)
        return self.sr.add(self.aligned(e.x, rank), self.aligned(e.y, rank))

    def _print_SMul(self, e: SMul) -> str:
        rank = len(e.shape)
        return self.sr.mul(self.aligned(e.x, rank), self.aligned(e.y, rank))

    def _print_SSum(self, e: SSum) -> str:
        return self.sr.sum(self.doprint(e.x), e.axis)

    def _print_SMatmul(self, e: SMatmul) -> str:
        return self._matmul(e, real=False)

    def _print_SOuter(self, e: SOuter) -> str:
        x, y = self.doprint(e.x), self.doprint(e.y)
        return self.sr.mul(f"{x}[..., :, None]", f"{y}[..., None, :]")


class LeadInfo:
    """Which expressions carry leading axes at run time: per-token values (`varying`) and
    statics that depend on a per-head param (stored `[H, *shape]`)."""

    def __init__(self, ir: ScanIR):
        self.per_head_params = {p.name for p in ir.params if p.per_head}
        self.per_head_lets: set[str] = set()
        for let in ir.lets:
            if self.per_head(let.expr):
                self.per_head_lets.add(let.name)

    def per_head(self, expr) -> bool:
        """True when `expr` depends on a per-head param."""
        if isinstance(expr, Ref):
            return (expr.kind == "param" and expr.name in self.per_head_params) or (
                expr.kind == "let" and expr.name in self.per_head_lets)
        return any(self.per_head(c) for c in children(expr))

    def has_lead(self, expr) -> bool:
        """True when the runtime tensor of `expr` has axes before its per-token axes."""
        if isinstance(expr, Ref) and expr.kind in ("state", "readout"):
            return True
        return bool(getattr(expr, "varying", False)) or self.per_head(expr)

    def is_tensor(self, expr) -> bool:
        """False for expressions that print as Python numbers (literals and dims)."""
        if isinstance(expr, Num):
            return False
        if isinstance(expr, Ref):
            return expr.kind != "dim"
        if isinstance(expr, Call) and expr.fn in ("eye", "arange", "randn", "uniform"):
            return True
        kids = children(expr)
        return any(self.is_tensor(c) for c in kids)


def children(expr) -> tuple:
    """The sub-expressions of an IR expression."""
    if isinstance(expr, (Ref, Num)):
        return ()
    if isinstance(expr, Call):
        return tuple(a for a in expr.args if not isinstance(a, (int, str)))
    if isinstance(expr, (Unary, Index, SSum)):
        return (expr.x,)
    if isinstance(expr, (Binary, SAdd, SMul, SMatmul, SOuter)):
        return (expr.x, expr.y)
    raise CodegenError(f"unknown IR node {type(expr).__name__}")


def refs(expr) -> list:
    """Every `Ref` in `expr`, in first-seen order, without repeats."""
    out: list = []
    stack = [expr]
    while stack:
        e = stack.pop(0)
        if isinstance(e, Ref):
            if e not in out:
                out.append(e)
        else:
            stack[0:0] = list(children(e))
    return out
