"""Printers from sympy (semiring operations, derived adjoint coefficients) and IR tiles to Triton.

One printer class over an op -> spelling table (`TRITON`). An unsupported node raises
`PrintError`: never partial code. Semiring `add`/`mul` are spelled through `semiring_op`, which
picks a numerically safe spelling from the semiring's derived facts (`add_is_logaddexp` -> a
max-shifted logaddexp) and falls back to printing the sympy expression. The torch side of the
Triton backends is printed by `madc.codegen.torch_print` (`TorchPrinter`, `SemiringSpelling`,
`SympyTorchPrinter`).

Laws the spellings rely on (checked in `tests/test_triton_vector.py`):
  Heaviside(u - v) == where(u > v, 1, where(u == v, 1/2, 0))   (sympy's H(0) = 1/2)
  log(exp(x) + exp(y)) == max(x, y) + log1p(exp(-|x - y|)), and -inf where both are -inf
"""

from __future__ import annotations

import sympy

from madc.codegen.torch_print import CodegenError
from madc.ir import SEMIRING_X, SEMIRING_Y, Semiring


class PrintError(CodegenError, ValueError):
    """An expression the printer cannot spell in the target language."""


#: Triton spellings. `INF` is a module-level `tl.constexpr` in every emitted module.
TRITON = {
    "exp": "tl.exp({0})", "log": "tl.log({0})", "max": "tl.maximum({0}, {1})",
    "min": "tl.minimum({0}, {1})", "where": "tl.where({0}, {1}, {2})", "inf": "INF",
    "logaddexp": "_logaddexp({0}, {1})", "sqrt": "tl.sqrt({0})", "abs": "tl.abs({0})",
}


class SympyPrinter:
    """Print a sympy expression with `names` (Symbol -> code) in one target table."""

    def __init__(self, table: dict, names: dict):
        self.table = table
        self.names = names

    def __call__(self, expr: sympy.Expr) -> str:
        return self.print(sympy.sympify(expr))

    def print(self, e: sympy.Expr) -> str:
        method = getattr(self, "_print_" + type(e).__name__, None)
        if method is None:
            for cls in type(e).__mro__:
                method = getattr(self, "_print_" + cls.__name__, None)
                if method is not None:
                    break
        if method is None:
            raise PrintError(f"cannot print {type(e).__name__} ({e}) for this target")
        return method(e)

    def _fn(self, key: str, *args: str) -> str:
        return self.table[key].format(*args)

    def _print_Symbol(self, e):
        if e not in self.names:
            raise PrintError(f"unbound symbol {e} in {sorted(map(str, self.names))}")
        return self.names[e]

    def _print_Integer(self, e):
        return f"{float(e)!r}"

    def _print_Rational(self, e):
        return f"{float(e)!r}"

    def _print_Float(self, e):
        return f"{float(e)!r}"

    def _print_Infinity(self, e):
        return self._fn("inf")

    def _print_NegativeInfinity(self, e):
        return "(-" + self._fn("inf") + ")"

    def _print_Add(self, e):
        return "(" + " + ".join(self.print(a) for a in e.args) + ")"

    def _print_Mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return "(-" + self.print(rest) + ")"
        return "(" + " * ".join(self.print(a) for a in e.args) + ")"

    def _print_Pow(self, e):
        base, exp = e.args
        if exp == -1:
            return f"(1.0 / {self.print(base)})"
        if exp == sympy.Rational(1, 2):
            return self._fn("sqrt", self.print(base))
        if exp.is_Integer and 1 < int(exp) <= 4:
            return "(" + " * ".join([self.print(base)] * int(exp)) + ")"
        raise PrintError(f"cannot print power {e}")

    def _print_exp(self, e):
        return self._fn("exp", self.print(e.args[0]))

    def _print_log(self, e):
        return self._fn("log", self.print(e.args[0]))

    def _print_Abs(self, e):
        return self._fn("abs", self.print(e.args[0]))

    def _fold(self, key, args):
        out = self.print(args[0])
        for a in args[1:]:
            out = self._fn(key, out, self.print(a))
        return out

    def _print_Max(self, e):
        return self._fold("max", e.args)

    def _print_Min(self, e):
        return self._fold("min", e.args)

    def _split(self, arg):
        """u - v -> (u, v): Heaviside/Eq arguments compared without subtracting infinities."""
        pos = [t for t in sympy.Add.make_args(arg) if not t.could_extract_minus_sign()]
        neg = [-t for t in sympy.Add.make_args(arg) if t.could_extract_minus_sign()]
        return self.print(sympy.Add(*pos)), self.print(sympy.Add(*neg))

    def _print_Heaviside(self, e):
        u, v = self._split(e.args[0])
        half = self._fn("where", f"{u} == {v}", "0.5", "0.0")
        return self._fn("where", f"{u} > {v}", "1.0", half)

    def _print_Equality(self, e):
        return f"({self.print(e.lhs)} == {self.print(e.rhs)})"

    def _print_Piecewise(self, e):
        *cases, (last, cond) = e.args
        if cond is not sympy.true:
            raise PrintError(f"Piecewise without a default branch: {e}")
        out = self.print(last)
        for value, c in reversed(cases):
            out = self._fn("where", self.print(c), self.print(value), out)
        return out


def semiring_op(semiring: Semiring, which: str, x: str, y: str, table: dict) -> str:
    """Spell `semiring.add` or `.mul` applied to the code strings `x`, `y`."""
    facts = semiring.facts
    if which == "add":
        if "add_is_plus" in facts:
            return f"({x} + {y})"
        if "add_is_max" in facts:
            return table["max"].format(x, y)
        if "add_is_min" in facts:
            return table["min"].format(x, y)
        if "add_is_logaddexp" in facts:
            return table["logaddexp"].format(x, y)
        expr = semiring.add
    else:
        if "mul_is_times" in facts:
            return f"({x} * {y})"
        if "mul_is_plus" in facts:
            return f"({x} + {y})"
        if "mul_is_min" in facts:
            return table["min"].format(x, y)
        if "mul_is_max" in facts:
            return table["max"].format(x, y)
        expr = semiring.mul
    return SympyPrinter(table, {SEMIRING_X: x, SEMIRING_Y: y})(expr)


def constant(value: sympy.Expr) -> float:
    """A semiring constant (zero/one) as a Python float (inf allowed)."""
    value = sympy.sympify(value)
    if value is sympy.oo:
        return float("inf")
    if value is -sympy.oo:
        return float("-inf")
    return float(value)


# IR -> Triton tiles, for the fused forward kernel. A value of per-token shape (s1..sk) is a
# tile [BT or 1, e1..ek]: BT rows of time (1 for static values), the channel dim as the
# program's block BC, other dims padded to a power of two (masked in reductions and stores).

_TILE_UNARY = {
    "exp": "tl.exp({})", "log": "_log({})", "sigmoid": "tl.sigmoid({})",
    "tanh": "(2.0 * tl.sigmoid(2.0 * {0}) - 1.0)", "relu": "tl.maximum({}, 0.0)",
    "silu": "({0} * tl.sigmoid({0}))", "sqrt": "tl.sqrt({})", "abs": "tl.abs({})",
    "neg": "(-{})", "softplus": "_softplus({})",
}
_TILE_REDUCE = {"sum": ("tl.sum", "0.0"), "amax": ("tl.max", "-INF"),
                "amin": ("tl.min", "INF")}


def held_axis(rank: int, axis: int, swap: bool) -> int:
    """Which of the dims a rank-`rank` value's tile holds (after time) is its axis `axis`
    (>= 0): with `swap` a rank-2 value is held with its two axes exchanged."""
    return rank - 1 - axis if swap and rank == 2 else axis


def held_axes(dims, swap: bool, split=None) -> list:
    """[(dim, first tile axis after time, width)] of a value of IR dims `dims`, in the order
    its tile holds them: with `swap` a rank-2 value's two dims exchanged, and the dim `split`
    held on two axes [H, S] (element h + s * H of the dim at [h, s]; S lanes share it). A
    swapped rank-2 value holds whatever stands in the split dim's place (it, or a size-1
    dim) on two axes, so that every rank-2 tile has the same rank."""
    swapped = swap and len(dims) == 2
    order = list(dims)[::-1] if swapped else list(dims)
    out, at = [], 0
    for i, d in enumerate(order):
        width = 2 if split is not None and (d == split or swapped and i == 0) else 1
        out.append((d, at, width))
        at += width
    return out


def place(vec: str, rank: int, axis: int, width: int = 1) -> str:
    """`vec` (of `width` axes) indexed onto axes axis..axis + width - 1 of a rank-`rank`
    tile."""
    items = [":" if axis <= i < axis + width else "None" for i in range(rank)]
    return f"{vec}[{', '.join(items)}]"


class TilePrinter:
    """Print real and semiring IR expressions as Triton tile code for the fused kernel.

    `names` maps a Ref name to its tile variable; `channel` is the dim the program blocks;
    `mask(dim, rank, axis, width)` returns the code of a validity mask of `dim` placed on
    tile axes axis..axis + width - 1 of a rank-`rank` tile. `swap`: a value of rank 2 is held
    with its two axes exchanged (tile [BT, e2, e1]), so that a state whose channel dim comes
    first still has the channel on the tile's last axis (`_fused_for`); `split`: a dim held
    on two axes (`held_axes`). Anything outside the supported subset raises PrintError (the
    backend then runs the unfused path)."""

    def __init__(self, semiring: Semiring, names: dict, channel: str, mask, swap=False,
                 split=None):
        self.semiring = semiring
        self.names = names
        self.channel = channel
        self.mask = mask
        self.swap = swap
        self.split = split

    def axes(self, dims) -> int:
        """The number of tile axes (after time) of a value of IR dims `dims`."""
        return sum(width for _, _, width in held_axes(dims, self.swap, self.split))


    def __call__(self, node) -> str:
        method = getattr(self, "_print_" + type(node).__name__, None)
        if method is None:
            raise PrintError(f"no Triton tile spelling for {type(node).__name__}")
        for d in node.shape:
            if not isinstance(d, str) and d != 1:
                raise PrintError("literal-size axes are not fused")
        return method(node)

    def _op(self, child, shape) -> str:
        """`child` broadcast (numpy's trailing alignment) to a value of IR dims `shape`."""
        code = self(child)
        rank, k = len(shape), len(child.shape)
        if type(child).__name__ == "Num":
            return code
        if k == rank:
            if self.axes(child.shape) != self.axes(shape):  # a size-1 dim against a split one
                raise PrintError("a size-1 dim is not fused against a split one")
            return code
        if self.swap and rank == 2 and k == 1:  # broadcast along the first axis, held last
            have = self.axes(child.shape)
            return f"{code}[{', '.join([':'] * (1 + have) + ['None'] * (self.axes(shape) - have))}]"
        return f"{code}[{', '.join([':'] + ['None'] * (rank - k) + [':'] * k)}]"

    def _print_Ref(self, n):
        if n.name not in self.names:
            raise PrintError(f"{n.kind} {n.name!r} is not available in the fused kernel")
        return self.names[n.name]

    def _print_Num(self, n):
        v = float(n.value)
        return ("INF" if v > 0 else "(-INF)") if v in (float("inf"), float("-inf")) else repr(v)

    def _print_Unary(self, n):
        return f"(-{self(n.x)})"

    def _print_Binary(self, n):
        if n.op == "pow":
            if type(n.y).__name__ != "Num":
                raise PrintError("only constant powers are fused")
            x, e = self(n.x), float(n.y.value)
            return {2.0: f"({x} * {x})", 0.5: f"tl.sqrt({x})", -1.0: f"(1.0 / {x})",
                    1.0: x}.get(e) or f"tl.exp({e!r} * tl.log({x}))"
        if n.op == "matmul":
            raise PrintError("real matmul is not fused")
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[n.op]
        return f"({self._op(n.x, n.shape)} {sym} {self._op(n.y, n.shape)})"

    def _print_Call(self, n):
        arg = n.args[0] if n.args else None
        if n.fn == "exp" and type(arg).__name__ == "Binary" and arg.op == "mul" and (
                arg.x.varying != arg.y.varying):
            # exp(varying * static) -> exp2(varying * (static * log2 e)): the static factor
            # is loop-invariant, so each element costs one multiply, not two, before ex2
            vary, static = (arg.x, arg.y) if arg.x.varying else (arg.y, arg.x)
            return (f"_exp2({self._op(vary, n.shape)} * ({self._op(static, n.shape)} * "
                    f"1.4426950408889634), MIX)")
        if n.fn in _TILE_UNARY:
            return _TILE_UNARY[n.fn].format(self(n.args[0]))
        if n.fn in ("maximum", "minimum"):
            return f"tl.{n.fn}({self._op(n.args[0], n.shape)}, {self._op(n.args[1], n.shape)})"
        if n.fn == "clamp":
            x, lo, hi = (self._op(a, n.shape) for a in n.args)
            return f"tl.minimum(tl.maximum({x}, {lo}), {hi})"
        if n.fn in _TILE_REDUCE or n.fn == "mean":
            fn, pad = _TILE_REDUCE.get(n.fn, ("tl.sum", "0.0"))
            out = self._reduce(n.args[0], n.axis, fn, pad)
            if n.fn == "mean":
                out = f"({out} / {self.names['#size:' + n.args[0].shape[n.axis]]})"
            return out
        raise PrintError(f"the builtin {n.fn!r} is not fused")

    def _reduce(self, x, axis: int, fn: str, pad: str) -> str:
        k = len(x.shape)
        dim = x.shape[axis]
        if dim == self.channel:
            raise PrintError("a reduction over the channel dim is not fused")
        held = held_axes(x.shape, self.swap, self.split)
        _, start, width = held[held_axis(k, axis % k, self.swap)]
        ax = 1 + start
        out = self(x) if dim == 1 else (
            f"tl.where({self.mask(dim, 1 + self.axes(x.shape), ax, width)}, {self(x)}, {pad})")
        for _ in range(width):  # an axis held on two: its in-lane part, then across lanes
            out = f"{fn}({out}, {ax})"
        return out

    def _print_Index(self, n):
        items = [":" if i == "slice" else "None" if i == "newaxis" else "#" for i in n.items]
        if "#" in items:
            raise PrintError("integer indexing is not fused")
        items += [":"] * (len(n.shape) - len(items))  # the axes the index leaves implicit
        if self.swap and len(n.shape) == 2:
            if len(n.x.shape) == 2 and items != [":", ":"]:
                raise PrintError("this index of a rank-2 value is not fused")
            items.reverse()
        # an axis held on two (`held_axes`) takes its item twice
        items = [i for item, (_, _, width) in zip(items, held_axes(n.shape, self.swap, self.split))
                 for i in [item] * width]
        return f"{self(n.x)}[{', '.join([':'] + items)}]"

    def _print_SAdd(self, n):
        x, y = self._op(n.x, n.shape), self._op(n.y, n.shape)
        return semiring_op(self.semiring, "add", x, y, TRITON)

    def _print_SMul(self, n):
        x, y = self._op(n.x, n.shape), self._op(n.y, n.shape)
        return semiring_op(self.semiring, "mul", x, y, TRITON)

    def _print_SSum(self, n):
        facts = self.semiring.facts
        for fact, fn in (("add_is_plus", "tl.sum"), ("add_is_max", "tl.max"),
                         ("add_is_min", "tl.min")):
            if fact in facts:
                zero = constant(self.semiring.zero)
                pad = "INF" if zero == float("inf") else "(-INF)" if zero == float(
                    "-inf") else repr(zero)
                return self._reduce(n.x, n.axis, fn, pad)
        raise PrintError("this semiring's (+)-reduction is not fused")
