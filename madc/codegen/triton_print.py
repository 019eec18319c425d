"""Printers from sympy (semiring operations, derived adjoint coefficients) to Triton and torch.

One printer class, one op -> spelling table per target (`TRITON`, `TORCH`). An unsupported
node raises `PrintError`: never partial code. Semiring `add`/`mul` are spelled through
`semiring_op`, which picks a numerically safe spelling from the semiring's derived facts
(`add_is_logaddexp` -> a max-shifted logaddexp) and falls back to printing the sympy expression.

Laws the spellings rely on (checked in `tests/test_triton_vector.py`):
  Heaviside(u - v) == where(u > v, 1, where(u == v, 1/2, 0))   (sympy's H(0) = 1/2)
  log(exp(x) + exp(y)) == max(x, y) + log1p(exp(-|x - y|)), and -inf where both are -inf
"""

from __future__ import annotations

import sympy

from madc.ir import SEMIRING_X, SEMIRING_Y, Semiring


class PrintError(ValueError):
    """An expression the printer cannot spell in the target language."""


#: Triton spellings. `INF` is a module-level `tl.constexpr` in every emitted module.
TRITON = {
    "exp": "tl.exp({0})", "log": "tl.log({0})", "max": "tl.maximum({0}, {1})",
    "min": "tl.minimum({0}, {1})", "where": "tl.where({0}, {1}, {2})", "inf": "INF",
    "logaddexp": "_logaddexp({0}, {1})", "sqrt": "tl.sqrt({0})", "abs": "tl.abs({0})",
}

#: torch spellings (used by the emitted torch prologue/readout code).
TORCH = {
    "exp": "torch.exp({0})", "log": "torch.log({0})", "max": "torch.maximum({0}, {1})",
    "min": "torch.minimum({0}, {1})", "where": "torch.where({0}, {1}, {2})",
    "inf": "math.inf", "logaddexp": "torch.logaddexp({0}, {1})", "sqrt": "torch.sqrt({0})",
    "abs": "torch.abs({0})",
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
